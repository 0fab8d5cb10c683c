//! The erasure fence: an erasure is linearizable with enrichment. Once
//! `Erase` has answered, no enrichment answers with the person's data, and
//! none leaves an entry of theirs in the cache, even one that started before.
//!
//! An enrichment, holding the person's stripe for reading, checks the
//! suppression list again before it records and answers. An erasure holds
//! the stripe for writing while it purges and suppresses. So an enrichment
//! either answers before the erasure begins, or sees it and answers as for
//! a suppressed person, removing what it cached on the way. (An erasure by
//! another process sharing the ledger is seen by the same check; only the
//! purge of this process's cache needs the stripe.)
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Stripes of locks: two subjects rarely share one, and then only wait.
const STRIPES: usize = 256;

pub struct ErasureFence {
    stripes: Vec<RwLock<()>>,
}

impl Default for ErasureFence {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| RwLock::new(())).collect(),
        }
    }
}

impl ErasureFence {
    fn stripe(&self, subject: &str) -> &RwLock<()> {
        let mut h = DefaultHasher::new();
        subject.hash(&mut h);
        &self.stripes[(h.finish() as usize) % STRIPES]
    }

    /// Held by an enrichment while it checks, records and answers.
    pub async fn read(&self, subject: &str) -> RwLockReadGuard<'_, ()> {
        self.stripe(subject).read().await
    }

    /// Held by an erasure while it purges and suppresses.
    pub async fn erase(&self, subject: &str) -> RwLockWriteGuard<'_, ()> {
        self.stripe(subject).write().await
    }
}
