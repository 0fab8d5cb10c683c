//! Group commit: records go through one writer task that commits whatever
//! has queued up as one multi-row INSERT (one statement, one transaction).
//! Each caller still waits until its own record is committed, but concurrent
//! calls share the commit; if the group fails, each record is tried alone,
//! so one bad record fails only its own call. If the task ever stops,
//! `running` says so (health turns NOT_SERVING).
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::suppressions::Suppressions;
use super::{COLUMNS, LedgerError, LedgerOutcome, Record, json};

/// Most records committed in one transaction.
const GROUP: usize = 256;

type Pending = (Record, oneshot::Sender<Result<(), LedgerError>>);

#[derive(Clone)]
pub(super) struct Writer {
    queue: mpsc::Sender<Pending>,
    running: Arc<AtomicBool>,
}

/// Marks the writer stopped when its task ends, panics included.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
        metrics::gauge!("enrichd_ledger_writer_up").set(0.0);
        tracing::error!("the ledger writer stopped: no call can be recorded or answered");
    }
}

impl Writer {
    pub(super) fn start(pool: AnyPool, suppressed: Arc<Suppressions>) -> Self {
        let (queue, pending) = mpsc::channel(4 * GROUP);
        let running = Arc::new(AtomicBool::new(true));
        metrics::gauge!("enrichd_ledger_writer_up").set(1.0);
        let guard = Running(running.clone());
        tokio::spawn(async move {
            let _guard = guard;
            write_loop(pool, pending, suppressed).await;
        });
        Self { queue, running }
    }

    pub(super) fn running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
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

/// One multi-row INSERT for the whole group (18 bound values a row: 256
/// rows stay within SQLite's and PostgreSQL's limits).
async fn insert(
    conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    records: &[&Record],
) -> Result<(), sqlx::Error> {
    let mut sql = format!("INSERT INTO ledger ({COLUMNS}) VALUES ");
    for i in 0..records.len() {
        let first = i * 18;
        let row: Vec<String> = (1..=18).map(|n| format!("${}", first + n)).collect();
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        sql.push_str(&row.join(", "));
        sql.push(')');
    }
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
    query.execute(conn).await.map(drop)
}

async fn write_loop(pool: AnyPool, mut queue: mpsc::Receiver<Pending>, list: Arc<Suppressions>) {
    let mut group = Vec::with_capacity(GROUP);
    while queue.recv_many(&mut group, GROUP).await > 0 {
        // Erasure wins across processes: before a group of processings is
        // recorded (and so answered), the suppression list is brought up to
        // date if any process changed it, and the records of people
        // suppressed meanwhile are not written; their callers answer as for
        // a suppressed person. One read of the counter per group.
        if let Err(e) = list.follow_once(&pool).await {
            let why = format!("cannot check the suppression list: {e}");
            for (_, reply) in group.drain(..) {
                let _ = reply.send(Err(LedgerError::Write(why.clone())));
            }
            continue;
        }
        let (stopped, go): (Vec<Pending>, Vec<Pending>) = group.drain(..).partition(|(r, _)| {
            matches!(
                r.outcome,
                LedgerOutcome::Enriched | LedgerOutcome::NotFound | LedgerOutcome::Incomplete
            ) && list.stops(&r.subject, &r.purpose)
        });
        for (_, reply) in stopped {
            let _ = reply.send(Err(LedgerError::SuppressedMeanwhile));
        }
        let records: Vec<&Record> = go.iter().map(|(r, _)| r).collect();
        if records.is_empty() {
            continue;
        }
        if insert(&pool, &records).await.is_ok() {
            for (_, reply) in go {
                let _ = reply.send(Ok(()));
            }
            continue;
        }
        // One bad record must not fail the others: each again, alone.
        for (record, reply) in go {
            let result = insert(&pool, &[&record])
                .await
                .map_err(|e| LedgerError::Write(e.to_string()));
            let _ = reply.send(result);
        }
    }
}
