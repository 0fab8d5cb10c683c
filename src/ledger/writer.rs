//! Group commit: records go through one writer task that commits whatever
//! has queued up in one transaction. Each caller still waits until its own
//! record is committed, but concurrent calls share the commit.
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::{COLUMNS, LedgerError, Record, json};

/// Most records committed in one transaction.
const GROUP: usize = 256;

type Pending = (Record, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Pending>,
}

impl Writer {
    pub(super) fn start(pool: AnyPool) -> Self {
        let (queue, pending) = mpsc::channel(4 * GROUP);
        tokio::spawn(write_loop(pool, pending));
        Self { queue }
    }

    pub(super) async fn write(&self, record: Record) -> Result<(), LedgerError> {
        let stopped = || LedgerError::Write("the ledger writer stopped".into());
        let (reply, done) = oneshot::channel();
        self.queue
            .send((record, reply))
            .await
            .map_err(|_| stopped())?;
        done.await
            .map_err(|_| stopped())?
            .map_err(LedgerError::Write)
    }
}

async fn commit(pool: &AnyPool, group: &[Pending]) -> Result<(), sqlx::Error> {
    let insert = format!(
        "INSERT INTO ledger ({COLUMNS}) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)"
    );
    let mut tx = pool.begin().await?;
    for (r, _) in group {
        sqlx::query(&insert)
            .bind(&r.id)
            .bind(r.at_ms)
            .bind(&r.caller)
            .bind(&r.purpose)
            .bind(&r.lawful_basis)
            .bind(&r.consent_ref)
            .bind(&r.lia_ref)
            .bind(&r.contract_ref)
            .bind(&r.subject)
            .bind(json(&r.sources))
            .bind(json(&r.field_categories))
            .bind(r.outcome.as_str())
            .bind(r.retain_until_ms)
            .bind(i64::from(r.redacted))
            .bind(&r.caller_id)
            .bind(&r.on_behalf_of)
            .bind(&r.reference)
            .bind(&r.detail)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

async fn write_loop(pool: AnyPool, mut queue: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP);
    while queue.recv_many(&mut group, GROUP).await > 0 {
        let result = commit(&pool, &group).await.map_err(|e| e.to_string());
        for (_, reply) in group.drain(..) {
            let _ = reply.send(result.clone());
        }
    }
}
