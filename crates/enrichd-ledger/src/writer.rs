//! Group commit: records go through one writer task that commits whatever
//! has queued up as one multi-row INSERT (one statement, one transaction).
//! Each caller still waits until its own record is committed, but concurrent
//! calls share the commit; if the group fails, it is tried once more on a
//! new connection (a lost connection costs no caller anything), then each
//! record alone, so one bad record fails only its own call. If the task
//! ever stops, `running` says so (health turns NOT_SERVING).
//!
//! Before a group is committed, the calls whose tasks are already running
//! get one pass of the scheduler to add their records: a commit writes the
//! same few pages whether it carries three records or seven, and under load
//! this pass doubled the records a commit carries (`enrichd-bench hot`: 3.0
//! -> 6.8 a commit, 12,100 -> 14,200 calls/s on SQLite). Alone, a record
//! waits for that one pass only.
//!
//! The writer keeps one connection of its own, out of the pool: a pooled
//! connection is pinged each time it goes back (a round trip to the worker
//! thread on SQLite, to the server on PostgreSQL), which cost more than the
//! insert of a small group. A connection that fails is dropped and the next
//! group opens another.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool};
use tokio::sync::{mpsc, oneshot};

use super::suppressions::Suppressions;
use super::{COLUMNS, LedgerError, LedgerOutcome, Record, json};

/// Most records committed in one transaction.
const GROUP: usize = 256;

type Pending = (Record, oneshot::Sender<Result<(), LedgerError>>);

#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Pending>,
    /// True while the writer task runs; false (for good) once it ended.
    running: Arc<tokio::sync::watch::Sender<bool>>,
    /// Groups committed so far (the metrics count them for operators).
    #[cfg(test)]
    commits: Arc<AtomicU64>,
}

/// Marks the writer stopped when its task ends, panics included.
struct Running(Arc<tokio::sync::watch::Sender<bool>>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_replace(false);
        metrics::gauge!("enrichd_ledger_writer_up").set(0.0);
        // A panic is a fault; otherwise the ledger was dropped or the
        // runtime is shutting down (every CLI command ends so).
        if std::thread::panicking() {
            tracing::error!("the ledger writer stopped: no call can be recorded or answered");
        } else {
            tracing::debug!("the ledger writer stopped");
        }
    }
}

impl Writer {
    /// `postgres`: the guard share-locks the suppression counter's row;
    /// `own`: the writer keeps a connection of its own (not for an
    /// in-memory database, which is the pool's one connection).
    pub(super) fn start(
        pool: AnyPool,
        suppressed: Arc<Suppressions>,
        postgres: bool,
        own: bool,
    ) -> Self {
        let (queue, pending) = mpsc::channel(4 * GROUP);
        let running = Arc::new(tokio::sync::watch::Sender::new(true));
        metrics::gauge!("enrichd_ledger_writer_up").set(1.0);
        let guard = Running(running.clone());
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        tokio::spawn(async move {
            let _guard = guard;
            write_loop(pool, pending, suppressed, postgres, own, counted).await;
        });
        Self {
            queue,
            running,
            #[cfg(test)]
            commits,
        }
    }

    /// Groups committed so far (each one transaction).
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub(super) fn running(&self) -> bool {
        *self.running.borrow()
    }

    /// Whether the writer runs, as it changes.
    pub(super) fn running_changes(&self) -> tokio::sync::watch::Receiver<bool> {
        self.running.subscribe()
    }

    pub(super) async fn write(&self, record: Record) -> Result<(), LedgerError> {
        let stopped = || LedgerError::Write("the ledger writer stopped".into());
        let (reply, done) = oneshot::channel();
        self.queue
            .send((record, reply))
            .await
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?
    }
}

/// The version of the suppression list a group is written under, and how
/// the guard reads it: on PostgreSQL the counter's row is share-locked, so an
/// erasure's bump waits for this insert to commit (and its redaction then
/// sees these rows) or this insert waits for the erasure and then finds the
/// counter moved; SQLite serialises writers and needs no lock.
struct Guard<'a> {
    version: &'a str,
    postgres: bool,
}

/// One multi-row INSERT for the whole group (18 bound values a row: 256
/// rows stay within SQLite's and PostgreSQL's limits), written only if the
/// suppression list is still at `guard.version`. Returns the rows written:
/// none when the list moved.
async fn insert(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    records: &[&Record],
    guard: &Guard<'_>,
) -> Result<u64, sqlx::Error> {
    // PostgreSQL numbers its parameters (`$1`); SQLite is given anonymous
    // ones (`?`), bound in order: for a numbered one sqlx asks SQLite its
    // name, a linear search, so binding a group grew with its square.
    let param = |n: usize| {
        if guard.postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    let mut sql = format!("INSERT INTO ledger ({COLUMNS}) SELECT * FROM (VALUES ");
    for i in 0..records.len() {
        let first = i * 18;
        let row: Vec<String> = (1..=18).map(|n| param(first + n)).collect();
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&row.join(", "));
        sql.push(')');
    }
    sql.push_str(&format!(
        ") AS v WHERE EXISTS (SELECT 1 FROM ledger_meta \
         WHERE name = 'suppression_version' AND value = {}{})",
        param(records.len() * 18 + 1),
        if guard.postgres { " FOR SHARE" } else { "" }
    ));
    let mut query = sqlx::query(&sql);
    for r in records {
        query = query
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
            .bind(&r.detail);
    }
    let done = query.bind(guard.version).execute(conn).await?;
    Ok(done.rows_affected())
}

/// Records of people suppressed (by the list as this process knows it) are
/// answered as such and left out.
fn drop_suppressed(group: &mut Vec<Pending>, list: &Suppressions) {
    let (stopped, go): (Vec<Pending>, Vec<Pending>) = group.drain(..).partition(|(r, _)| {
        matches!(
            r.outcome,
            LedgerOutcome::Enriched | LedgerOutcome::NotFound | LedgerOutcome::Incomplete
        ) && list.stops(&r.subject, &r.purpose)
    });
    for (_, reply) in stopped {
        let _ = reply.send(Err(LedgerError::SuppressedMeanwhile));
    }
    *group = go;
}

fn fail_all(group: &mut Vec<Pending>, why: &str) {
    for (_, reply) in group.drain(..) {
        let _ = reply.send(Err(LedgerError::Write(why.to_owned())));
    }
}

/// Erasure wins across processes: a group of processings is recorded (and
/// so answered) only under the suppression list as this process holds it,
/// checked in the INSERT itself (one statement a group). When another
/// process changed the list meanwhile, nothing is written: the list is read
/// again, the records of people suppressed meanwhile are dropped (their
/// callers answer as for a suppressed person), and the rest tried again.
async fn write_loop(
    pool: AnyPool,
    mut queue: mpsc::Receiver<Pending>,
    list: Arc<Suppressions>,
    postgres: bool,
    own: bool,
    commits: Arc<AtomicU64>,
) {
    let mut group = Vec::with_capacity(GROUP);
    let mut conn: Option<Conn> = None;
    while queue.recv_many(&mut group, GROUP).await > 0 {
        join_the_group(&mut queue, &mut group).await;
        drop_suppressed(&mut group, &list);
        let mut reconnected = false;
        while !group.is_empty() {
            let db = match connection(&pool, &mut conn, own).await {
                Ok(db) => db,
                Err(e) => {
                    fail_all(&mut group, &format!("cannot reach the ledger: {e}"));
                    break;
                }
            };
            let version = list.version();
            let guard = Guard {
                version: &version,
                postgres,
            };
            let records: Vec<&Record> = group.iter().map(|(r, _)| r).collect();
            match insert(&mut *db, &records, &guard).await {
                Ok(0) => {
                    match list.follow_once(&pool).await {
                        Err(e) => fail_all(
                            &mut group,
                            &format!("cannot check the suppression list: {e}"),
                        ),
                        // Nothing written although the list did not move:
                        // never spin on it.
                        Ok(_) if list.version() == version => {
                            fail_all(&mut group, "the ledger wrote none of the records")
                        }
                        Ok(_) => drop_suppressed(&mut group, &list),
                    }
                }
                Ok(_) => {
                    commits.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("enrichd_ledger_commits_total").increment(1);
                    metrics::counter!("enrichd_ledger_committed_records_total")
                        .increment(group.len() as u64);
                    for (_, reply) in group.drain(..) {
                        let _ = reply.send(Ok(()));
                    }
                }
                // The connection may be what failed (the server restarted or
                // failed over, the backend was killed): the group once more,
                // on a new one, before anyone is told.
                Err(e) if !reconnected => {
                    tracing::warn!(error = %e, "ledger write failed; trying the group again on a new connection");
                    conn = None;
                    reconnected = true;
                }
                // One bad record must not fail the others: each again, alone
                // (a list that moved meanwhile sends it round once more).
                Err(_) if group.len() > 1 => {
                    let mut retry = Vec::new();
                    let mut failed = false;
                    for (record, reply) in group.drain(..) {
                        match insert(&mut *db, &[&record], &guard).await {
                            Ok(0) => retry.push((record, reply)),
                            Ok(_) => drop(reply.send(Ok(()))),
                            Err(e) => {
                                failed = true;
                                drop(reply.send(Err(LedgerError::Write(e.to_string()))))
                            }
                        }
                    }
                    if failed {
                        // The connection may be what failed: the next
                        // group opens another.
                        conn = None;
                    }
                    group = retry;
                }
                Err(e) => {
                    // The connection may be what failed: the next group
                    // opens another.
                    conn = None;
                    fail_all(&mut group, &e.to_string())
                }
            }
        }
        // An in-memory database's one connection goes back to the pool as
        // soon as the group is written: others read on it meanwhile (it was
        // kept until the next group came, and a read waited for the pool's
        // timeout).
        if matches!(conn, Some(Conn::Pooled(_))) {
            conn = None;
        }
    }
}

/// One pass of the scheduler for records on their way (see the module's
/// notes), then whatever they queued joins `group`.
async fn join_the_group(queue: &mut mpsc::Receiver<Pending>, group: &mut Vec<Pending>) {
    if group.len() >= GROUP {
        return;
    }
    tokio::task::yield_now().await;
    while group.len() < GROUP {
        match queue.try_recv() {
            Ok(pending) => group.push(pending),
            Err(_) => return,
        }
    }
}

/// The connection a group is written on.
enum Conn {
    /// The writer's own, detached from the pool: it never goes back.
    Own(sqlx::AnyConnection),
    /// Borrowed for one group: an in-memory SQLite database lives in the
    /// pool's one connection, which others need too.
    Pooled(PoolConnection<Any>),
}

impl Conn {
    fn get(&mut self) -> &mut sqlx::AnyConnection {
        match self {
            Conn::Own(c) => c,
            Conn::Pooled(c) => c,
        }
    }
}

/// The writer's own connection, opened when it has none (or the pool's one
/// for an in-memory database).
async fn connection<'c>(
    pool: &AnyPool,
    conn: &'c mut Option<Conn>,
    own: bool,
) -> Result<&'c mut sqlx::AnyConnection, sqlx::Error> {
    if conn.is_none() {
        // An idle pooled connection may have died with the server it was
        // open to (a restart, a failover): tried first, and closed if dead
        // so that the pool opens a new one. Only when the writer (re)opens.
        let mut left = pool.options().get_max_connections() + 1;
        let pooled: PoolConnection<Any> = loop {
            let mut pooled = pool.acquire().await?;
            match sqlx::Connection::ping(&mut *pooled).await {
                Ok(()) => break pooled,
                Err(e) if left <= 1 => return Err(e),
                Err(_) => {
                    left -= 1;
                    let _ = pooled.close().await;
                }
            }
        };
        *conn = Some(if own {
            Conn::Own(pooled.detach())
        } else {
            Conn::Pooled(pooled)
        });
    }
    Ok(conn.as_mut().expect("just opened").get())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::Notify;

    use super::super::sqlite::fold_wal;
    use super::super::{Ledger, LedgerOutcome, Record};

    fn record(id: &str) -> Record {
        Record {
            id: id.to_owned(),
            at_ms: 1_764_000_000_000,
            caller: "test".into(),
            caller_id: String::new(),
            on_behalf_of: String::new(),
            purpose: "fraud_prevention".into(),
            lawful_basis: "legitimate_interests".into(),
            consent_ref: String::new(),
            lia_ref: "LIA-1".into(),
            contract_ref: String::new(),
            subject: format!("subject-{id}"),
            sources: vec!["github".into()],
            field_categories: vec!["profiles".into()],
            outcome: LedgerOutcome::Enriched,
            retain_until_ms: 1_800_000_000_000,
            redacted: false,
            reference: String::new(),
            detail: String::new(),
        }
    }

    /// A call whose record is on its way when the writer wakes (its task was
    /// woken after the writer's) joins the group: one commit, not two.
    #[tokio::test(flavor = "current_thread")]
    async fn a_record_on_its_way_joins_the_group_being_committed() {
        let ledger = Ledger::open("sqlite::memory:").await.unwrap();
        let before = ledger.writer.commits();
        let go = Arc::new(Notify::new());
        // In the order they first run: `late` waits; `first` queues its
        // record (the writer is woken, behind `waker`); `waker` wakes `late`,
        // which now runs after the writer's first turn.
        let late = tokio::spawn({
            let (ledger, go) = (ledger.clone(), go.clone());
            async move {
                go.notified().await;
                ledger.record(record("late")).await
            }
        });
        tokio::task::yield_now().await;
        let first = tokio::spawn({
            let ledger = ledger.clone();
            async move { ledger.record(record("first")).await }
        });
        let waker = tokio::spawn(async move { go.notify_one() });
        first.await.unwrap().unwrap();
        late.await.unwrap().unwrap();
        waker.await.unwrap();
        assert_eq!(ledger.records("subject-first").await.unwrap().len(), 1);
        assert_eq!(ledger.records("subject-late").await.unwrap().len(), 1);
        assert_eq!(
            ledger.writer.commits() - before,
            1,
            "both records in one commit"
        );
    }

    /// Under writes that never pause, a PASSIVE checkpoint never finds the
    /// whole log copied, and the log only grew (675 MB in 14 s of load):
    /// past its threshold the checkpoint restarts it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_write_ahead_log_starts_over_under_writes_that_never_pause() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        let ledger = Ledger::open(&url).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let (ledger, stop) = (ledger.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        ledger.record(record(&format!("{w}-{n}"))).await.unwrap();
                    }
                })
            })
            .collect();
        // The log's length at each checkpoint, writes going on throughout.
        let mut lengths = Vec::new();
        while lengths.len() < 60 {
            let pages = fold_wal(&ledger.pool, 50).await.unwrap();
            if pages > 0 {
                lengths.push(pages);
            }
            tokio::task::yield_now().await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for w in writers {
            w.await.unwrap();
        }
        // Past the threshold (50 pages here) a RESTART makes the next write
        // start the log over; PASSIVE alone let it grow at every sample.
        let past = lengths
            .iter()
            .position(|&pages| pages > 50)
            .unwrap_or_else(|| panic!("the log never passed 50 pages: {lengths:?}"));
        assert!(
            lengths[past..].windows(2).any(|w| w[1] < w[0]),
            "the log never started over: {lengths:?}"
        );
    }
}
