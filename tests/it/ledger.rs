//! The ledger and the suppression list on both backends: SQLite (a file) and
//! the real PostgreSQL server on 127.0.0.1:5432 (database `test`; `.ci/run`
//! starts it). The PostgreSQL tests fail, never skip, when it is down.
use crate::common;

use enrichd::compliance::suppression::{ALL_PURPOSES, MARKETING};
use enrichd::ledger::{Ledger as Store, LedgerError, LedgerOutcome, Record};
use enrichd::proto::v1 as pb;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// PostgreSQL in a fresh schema of its own, so tests never see each other's rows.
async fn postgres() -> Store {
    Store::open(&common::postgres_url().await)
        .await
        .expect("opens and migrates")
}

async fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::open(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("l.db").display()
    ))
    .await
    .expect("opens and migrates")
}

fn record(
    id: &str,
    subject: &str,
    at_ms: i64,
    retain_until_ms: i64,
    outcome: LedgerOutcome,
) -> Record {
    Record {
        id: id.into(),
        at_ms,
        caller: "crm".into(),
        purpose: "marketing".into(),
        lawful_basis: "consent".into(),
        consent_ref: "C-1".into(),
        subject: subject.into(),
        sources: vec!["gravatar".into()],
        field_categories: vec!["profiles".into()],
        outcome,
        retain_until_ms,
        lia_ref: String::new(),
        contract_ref: String::new(),
        redacted: false,
        caller_id: "k1".into(),
        on_behalf_of: "Jo at the front desk".into(),
        reference: String::new(),
        detail: String::new(),
    }
}

/// `records` written by concurrent callers (sharing group commits).
async fn at_once(
    store: &Store,
    records: impl Iterator<Item = Record>,
) -> Vec<Result<(), enrichd::ledger::LedgerError>> {
    futures::future::join_all(records.map(|r| {
        let store = store.clone();
        async move { store.record(r).await }
    }))
    .await
}

async fn behaves(store: Store) {
    store
        .record(record("a", "s1", 1_000, 10_000, LedgerOutcome::Enriched))
        .await
        .unwrap();
    store
        .record(record("b", "s1", 2_000, 20_000, LedgerOutcome::NotFound))
        .await
        .unwrap();
    store
        .record(record("c", "s2", 1_500, 10_000, LedgerOutcome::Enriched))
        .await
        .unwrap();

    let rows = store.records("s1").await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(rows[0].sources, ["gravatar"]);
    assert_eq!(rows[0].consent_ref, "C-1");
    assert_eq!(store.first_enriched_ms("s1").await.unwrap(), Some(1_000));
    assert_eq!(store.first_enriched_ms("nobody").await.unwrap(), None);

    // Erasure keeps the tombstone and drops the rest.
    let progress = std::sync::atomic::AtomicU64::new(0);
    assert_eq!(
        store.purge("s1", &progress).await.unwrap().records_redacted,
        2
    );
    assert_eq!(
        store.purge("s1", &progress).await.unwrap().records_redacted,
        0,
        "idempotent"
    );
    let rows = store.records("s1").await.unwrap();
    assert!(rows.iter().all(|r| r.redacted
        && r.subject == "s1"
        && r.caller.is_empty()
        && r.consent_ref.is_empty()
        && r.sources.is_empty()));
    assert!(!store.records("s2").await.unwrap()[0].redacted);

    store
        .suppress("s1", ALL_PURPOSES, "DSR-1", 3_000)
        .await
        .unwrap();
    store
        .suppress("s1", ALL_PURPOSES, "DSR-1", 3_001)
        .await
        .unwrap();
    store
        .suppress("s2", MARKETING, "OBJ-1", 3_000)
        .await
        .unwrap();
    assert_eq!(store.suppressions("s1").unwrap(), ["all"]);
    assert_eq!(store.suppressions("s2").unwrap(), ["marketing"]);
    assert!(store.suppressions("s3").unwrap().is_empty());

    // Retention: rows past their retain-until go, a bounded batch at a
    // time, the earliest expired first; the rest stay.
    for (n, until) in [(1, 13_000), (2, 11_000), (3, 12_000)] {
        store
            .record(record(
                &format!("x{n}"),
                "s3",
                1_000,
                until,
                LedgerOutcome::Enriched,
            ))
            .await
            .unwrap();
    }
    assert_eq!(store.sweep_at_most(15_000, 3).await.unwrap(), 3);
    let left: Vec<String> = store
        .records("s3")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, ["x1", "x3"], "a and c (10,000), then x2 (11,000)");
    assert_eq!(store.sweep(15_000).await.unwrap(), 2);
    assert!(store.records("s3").await.unwrap().is_empty());
    assert_eq!(
        store
            .records("s1")
            .await
            .unwrap()
            .iter()
            .map(|r| r.id.as_str())
            .collect::<Vec<_>>(),
        ["b"]
    );
    assert!(store.records("s2").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sqlite_ledger_records_redacts_suppresses_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    behaves(sqlite(&dir).await).await;
}

#[tokio::test]
async fn the_postgres_ledger_records_redacts_suppresses_and_expires() {
    behaves(postgres().await).await;
}

#[tokio::test]
async fn reopening_a_ledger_keeps_its_records() {
    let dir = tempfile::tempdir().unwrap();
    sqlite(&dir)
        .await
        .record(record("a", "s1", 1, 10, LedgerOutcome::Enriched))
        .await
        .unwrap();
    assert_eq!(
        sqlite(&dir).await.records("s1").await.unwrap().len(),
        1,
        "migrations run again harmlessly"
    );
}

#[tokio::test]
async fn erase_and_access_work_end_to_end_on_postgres() {
    let url = common::postgres_url().await;
    let app = common::TestApp::spawn(&format!(
        "[dns]\nenabled = false\n[ledger]\nurl = \"{url}\"\n"
    ))
    .await;
    let mut client = app.client().await;
    client
        .enrich(common::email_request("pg@example.test"))
        .await
        .unwrap();
    let erased = client
        .erase(pb::EraseRequest {
            identifier: Some(pb::erase_request::Identifier::Email(
                "pg@example.test".into(),
            )),
            kind: pb::erase_request::Kind::Erasure.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(erased.ledger_records_redacted, 1);
    let resp = client
        .enrich(common::email_request("pg@example.test"))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.compliance.unwrap().identifier_suppressed);
    let held = client
        .access(pb::AccessRequest {
            identifier: Some(pb::access_request::Identifier::Email(
                "pg@example.test".into(),
            )),
            default_region: String::new(),
            reference: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let outcomes: Vec<&str> = held.ledger.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["incomplete (redacted)", "erasure", "suppressed"]);
}

#[tokio::test]
async fn a_failed_group_commit_fails_every_record_in_it_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    store
        .record(record("before", "s1", 1, 10, LedgerOutcome::Enriched))
        .await
        .unwrap();
    // Break the table under the writer, as a full disk or a lost database would.
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("ALTER TABLE ledger RENAME TO ledger_away")
        .execute(&mut conn)
        .await
        .unwrap();
    let results = at_once(
        &store,
        (0..20).map(|i| record(&format!("r{i}"), "s2", 2, 10, LedgerOutcome::Enriched)),
    )
    .await;
    assert!(
        results.iter().all(|r| r.is_err()),
        "no caller is told its record was kept: {results:?}"
    );
    // Once the table is back, the same writer commits again.
    sqlx::query("ALTER TABLE ledger_away RENAME TO ledger")
        .execute(&mut conn)
        .await
        .unwrap();
    store
        .record(record("after", "s2", 3, 10, LedgerOutcome::Enriched))
        .await
        .expect("the writer survived the failed commit");
    let ids: Vec<String> = store
        .records("s2")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["after"]);
}

#[tokio::test]
async fn one_bad_record_fails_only_its_own_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    store
        .record(record("taken", "s0", 1, 10, LedgerOutcome::Enriched))
        .await
        .unwrap();
    // 40 concurrent records share group commits; one reuses a taken id.
    let results = at_once(
        &store,
        (0..40).map(|i| {
            let id = if i == 17 {
                "taken".to_owned()
            } else {
                format!("r{i}")
            };
            record(&id, "s1", 2, 10, LedgerOutcome::Enriched)
        }),
    )
    .await;
    let failed: Vec<usize> = (0..40).filter(|&i| results[i].is_err()).collect();
    assert_eq!(failed, [17], "{results:?}");
    assert_eq!(store.records("s1").await.unwrap().len(), 39);
}

#[tokio::test]
async fn a_lost_postgres_connection_costs_no_caller_a_record() {
    // The store's connections carry a name of their own, so this test ends
    // only them, as a server restart or a failover would.
    let name = format!("enrichd-test-{}", hex::encode(rand::random::<[u8; 6]>()));
    let url = format!("{}&application_name={name}", common::postgres_url().await);
    let store = Store::open(&url).await.expect("opens and migrates");
    store
        .record(record("before", "s1", 1, 10, LedgerOutcome::Enriched))
        .await
        .unwrap();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(
        url.split_once('?').map_or(url.as_str(), |(base, _)| base),
    )
    .await
    .unwrap();
    let ended: Vec<(bool,)> = sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(!ended.is_empty(), "the writer's connection was found");
    // pg_terminate_backend only signals: wait until they are gone.
    tokio::time::timeout(common::HUNG, async {
        loop {
            let (left,): (i64,) =
                sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                    .bind(&name)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if left == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the backends end");
    // Concurrent callers share the first group after the loss: none fails.
    let results = at_once(
        &store,
        (0..8).map(|i| record(&format!("after{i}"), "s1", 2, 10, LedgerOutcome::Enriched)),
    )
    .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(store.records("s1").await.unwrap().len(), 9);
}

/// Another process's erasure reaches this one's in-memory suppression list
/// through the database's change counter.
async fn suppression_is_followed_across_processes(url: &str) {
    let here = Store::open(url).await.unwrap();
    let there = Store::open(url).await.unwrap();
    assert!(here.suppressions("p1").unwrap().is_empty());
    there
        .suppress("p1", ALL_PURPOSES, "ERASE-1", 5)
        .await
        .unwrap();
    assert_eq!(
        there.suppressions("p1").unwrap(),
        [ALL_PURPOSES],
        "at once where it was made"
    );
    common::eventually("the other process sees the erasure", || async {
        (!here.suppressions("p1").unwrap().is_empty()).then_some(())
    })
    .await;
    assert_eq!(here.suppressions("p1").unwrap(), [ALL_PURPOSES]);
    // A third process starts with it.
    let later = Store::open(url).await.unwrap();
    assert_eq!(later.suppressions("p1").unwrap(), [ALL_PURPOSES]);
}

#[tokio::test]
async fn the_sqlite_suppression_list_is_followed_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    suppression_is_followed_across_processes(&url).await;
}

#[tokio::test]
async fn the_postgres_suppression_list_is_followed_across_processes() {
    suppression_is_followed_across_processes(&common::postgres_url().await).await;
}

#[tokio::test]
async fn the_servers_sweep_deletes_records_past_their_retention_on_its_clock() {
    let clock = enrichd::clock::ManualClock::new();
    let app = common::TestApp::with_clock(
        "[dns]\nenabled = false\n[ledger]\nsweep_every = \"20ms\"\n",
        enrichd::catalog::Catalog::default(),
        clock.shared(),
    )
    .await;
    let mut client = app.client().await;
    client
        .enrich(common::email_request("old@example.test"))
        .await
        .unwrap();
    let access = || pb::AccessRequest {
        identifier: Some(pb::access_request::Identifier::Email(
            "old@example.test".into(),
        )),
        default_region: String::new(),
        reference: String::new(),
        ..Default::default()
    };
    let held = |client: &mut pb::enrichment_client::EnrichmentClient<_>| {
        let mut client = client.clone();
        async move {
            client
                .access(access())
                .await
                .unwrap()
                .into_inner()
                .ledger
                .iter()
                .filter(|r| r.outcome != "access")
                .count()
        }
    };
    assert_eq!(held(&mut client).await, 1);
    // Marketing keeps records 180 days; past that on the server's clock, the
    // sweep (every 20 ms of real time) deletes it.
    clock.advance(std::time::Duration::from_secs(180 * 86_400 + 1));
    common::eventually("the record is swept", || {
        let count = held(&mut client);
        async move { (count.await == 0).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_sweep_keeps_records_until_their_retain_until_and_deletes_them_after() {
    use enrichd::ledger::retention;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let clock = enrichd::clock::ManualClock::new();
    let shared = clock.shared();
    let until = shared.utc().timestamp_millis() + 1_000;
    store
        .record(record("a", "s1", 0, until, LedgerOutcome::Enriched))
        .await
        .unwrap();
    clock.advance(std::time::Duration::from_millis(1_000));
    assert_eq!(
        retention::sweep(&store, &shared).await,
        0,
        "kept until then"
    );
    clock.advance(std::time::Duration::from_millis(1));
    assert_eq!(retention::sweep(&store, &shared).await, 1, "gone after");
    assert!(store.records("s1").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_later_processing_never_extends_the_retention_of_an_earlier_one() {
    let clock = enrichd::clock::ManualClock::new();
    let app = common::TestApp::with_clock(
        "[dns]\nenabled = false\n[ledger]\nsweep_every = \"20ms\"\n",
        enrichd::catalog::Catalog::default(),
        clock.shared(),
    )
    .await;
    let mut client = app.client().await;
    let day = std::time::Duration::from_secs(86_400);
    client
        .enrich(common::email_request("old@example.test"))
        .await
        .unwrap();
    clock.advance(100 * day);
    // The same person again (a refresh): a new record with its own retention.
    client
        .enrich(common::email_request("old@example.test"))
        .await
        .unwrap();
    let kept = |client: &mut pb::enrichment_client::EnrichmentClient<_>| {
        let mut client = client.clone();
        async move {
            client
                .access(pb::AccessRequest {
                    identifier: Some(pb::access_request::Identifier::Email(
                        "old@example.test".into(),
                    )),
                    default_region: String::new(),
                    reference: String::new(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .ledger
                .into_iter()
                .filter(|r| r.outcome != "access")
                .map(|r| r.at.unwrap().seconds)
                .collect::<Vec<_>>()
        }
    };
    let both = kept(&mut client).await;
    assert_eq!(both.len(), 2);
    // 180 days after the first processing, the first record goes and the
    // second (80 days old) stays.
    clock.advance(80 * day + std::time::Duration::from_secs(1));
    let left = common::eventually("the first record is swept", || {
        let left = kept(&mut client);
        async move { Some(left.await).filter(|left| left.len() == 1) }
    })
    .await;
    assert_eq!(left[0], both[1], "the later record is the one kept");
}

/// A running job (submitted at 1,000 ms) of as many rows as `rows`.
fn job(id: &str, rows: usize) -> enrichd::ledger::JobRow {
    enrichd::ledger::JobRow {
        id: id.into(),
        caller: "{}".into(),
        caller_id: String::new(),
        template: "{}".into(),
        webhook_url: String::new(),
        state: "running".into(),
        reason: String::new(),
        rows_total: i64::try_from(rows).unwrap(),
        created_ms: 1_000,
        finished_ms: 0,
        webhook_state: "none".into(),
        key_generation: 1,
    }
}

/// Pending rows of a job, one for each subject.
fn job_rows(subjects: impl Iterator<Item = String>) -> Vec<enrichd::ledger::JobRowInput> {
    subjects
        .zip(0..)
        .map(|(subject, number)| enrichd::ledger::JobRowInput {
            number,
            subject,
            input: "{}".into(),
            request: String::new(),
            answered: None,
        })
        .collect()
}

/// A finished job of 1,201 rows (more than one sweep batch) and a running
/// one: the sweep deletes the finished job with every row, a batch at a
/// time, and leaves the running one whole.
async fn sweeps_a_large_job(store: Store) {
    let rows = job_rows((0..1_201).map(|n| format!("s{n}")));
    store
        .insert_job(&job("done", rows.len()), &rows)
        .await
        .unwrap();
    store
        .insert_job(&job("busy", rows.len()), &rows)
        .await
        .unwrap();
    store.finish_job("done", "done", "", 2_000).await.unwrap();
    assert_eq!(store.sweep_jobs(3_000).await.unwrap(), 1);
    assert!(store.job("done").await.unwrap().is_none());
    assert!(
        store
            .job_rows("done", -1, 2_000, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.job("busy").await.unwrap().is_some());
    assert_eq!(
        store.job_rows("busy", -1, 2_000, None).await.unwrap().len(),
        1_201
    );
}

#[tokio::test]
async fn the_sqlite_sweep_deletes_a_large_finished_job_a_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    sweeps_a_large_job(sqlite(&dir).await).await;
}

#[tokio::test]
async fn the_postgres_sweep_deletes_a_large_finished_job_a_batch_at_a_time() {
    sweeps_a_large_job(postgres().await).await;
}

/// A hash-key rotation moves every reference to a person, batch job rows
/// included: after it, erasure and access find them under the new key.
async fn rekeys_every_reference(store: Store) {
    use enrichd::privacy::KeyedHasher;
    let old = KeyedHasher::new(b"rotation-test-key".to_vec());
    let new = old.rotated();
    let (ann, bob) = (old.hash("email:ann@example.test"), old.hash("b"));
    store.bind_hash_key(&old.fingerprint()).await.unwrap();
    store
        .record(record("r1", &ann, 1_000, 10_000, LedgerOutcome::Enriched))
        .await
        .unwrap();
    store
        .suppress(&bob, ALL_PURPOSES, "DSR-1", 1_000)
        .await
        .unwrap();
    let rows = job_rows([ann.clone(), bob.clone(), ann.clone()].into_iter());
    store
        .insert_job(&job("j", rows.len()), &rows)
        .await
        .unwrap();

    // A server holding the ledger with the old key stops the rotation
    // until its lease is given back or lapses.
    let now = Arc::new(AtomicI64::new(1_000));
    let clock = now.clone();
    let lease = store
        .hold(&old.fingerprint(), move || clock.load(Ordering::SeqCst))
        .await
        .unwrap();
    match store.rekey(&old.fingerprint(), &new, 2_000).await {
        Err(LedgerError::Held(holders)) => {
            assert_eq!(holders.len(), 1);
            assert_eq!(holders[0].pid, i64::from(std::process::id()));
        }
        other => panic!("a rotation under a live lease: {other:?}"),
    }
    lease.release().await;
    let lease = store
        .hold(&old.fingerprint(), move || now.load(Ordering::SeqCst))
        .await
        .unwrap();
    let lapsed = 1_000 + enrichd::ledger::LEASE_FOR.as_millis() as i64 + 1;
    assert_eq!(
        store.rekey(&old.fingerprint(), &new, lapsed).await.unwrap(),
        2
    );
    // This handle still hashes with the old key: its erasure is refused,
    // not written where no one would find it.
    assert!(matches!(
        store.erase(&ann, "DSR-2", 3_000).await,
        Err(LedgerError::HashKeyChanged { .. })
    ));
    drop(lease);
    let ann_now = new.hash("email:ann@example.test");
    assert_eq!(store.records(&ann_now).await.unwrap().len(), 1);
    assert_eq!(
        store
            .job_rows_of(&ann_now, i64::MAX, 0, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(
        store
            .job_rows_of(&ann, i64::MAX, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.suppressions(&new.hash("b")).unwrap(), ["all"]);
    assert_eq!(store.erase_job_rows(&ann_now).await.unwrap(), 2);
}

#[tokio::test]
async fn the_sqlite_rotation_rekeys_batch_rows_too() {
    let dir = tempfile::tempdir().unwrap();
    rekeys_every_reference(sqlite(&dir).await).await;
}

#[tokio::test]
async fn the_postgres_rotation_rekeys_batch_rows_too() {
    rekeys_every_reference(postgres().await).await;
}

/// Every table with a `subject` column is one a rotation moves: a table
/// added later and left out would hide people from erasure after it.
#[tokio::test]
async fn every_table_holding_a_subject_is_one_a_rotation_moves() {
    use sqlx::Row;
    let dir = tempfile::tempdir().unwrap();
    drop(sqlite(&dir).await);
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut holding: Vec<String> = sqlx::query(
        "SELECT m.name AS name FROM sqlite_master m, pragma_table_info(m.name) c \
         WHERE m.type = 'table' AND c.name = 'subject'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get("name").unwrap())
    .collect();
    holding.sort();
    let mut moved = enrichd::ledger::SUBJECT_TABLES.to_vec();
    moved.sort();
    assert_eq!(holding, moved);
}

/// A purge redacts every record of the person, however many and of however
/// many outcomes, a batch at a time (6,000 records of one millisecond, more
/// than a batch, included); it leaves the records of their requests whole,
/// everyone else's alone, and empties their batch job rows.
async fn purges_in_batches(store: Store) {
    use enrichd::ledger::{Purged, REQUEST_PURPOSE};
    let same_ms = (0..6_000).map(|n| {
        record(
            &format!("e{n:05}"),
            "p",
            1_000,
            i64::MAX,
            LedgerOutcome::Enriched,
        )
    });
    let spread = (0..5_500).map(|n| {
        record(
            &format!("n{n:05}"),
            "p",
            2_000 + n,
            i64::MAX,
            LedgerOutcome::NotFound,
        )
    });
    let mut request = record("q", "p", 9_000, i64::MAX, LedgerOutcome::Erasure);
    request.purpose = REQUEST_PURPOSE.into();
    let others = [
        record("o", "other", 1_000, i64::MAX, LedgerOutcome::Enriched),
        request,
    ];
    for result in at_once(&store, same_ms.chain(spread).chain(others)).await {
        result.unwrap();
    }
    let rows = job_rows(["p".to_owned(), "other".to_owned()].into_iter());
    store
        .insert_job(&job("j", rows.len()), &rows)
        .await
        .unwrap();

    store.erase("p", "DSR-9", 10_000).await.unwrap();
    assert_eq!(store.suppressions("p").unwrap(), ["all"]);
    let progress = std::sync::atomic::AtomicU64::new(0);
    assert_eq!(
        store.purge("p", &progress).await.unwrap(),
        Purged {
            records_redacted: 11_500,
            job_rows_erased: 1
        }
    );
    assert_eq!(progress.load(std::sync::atomic::Ordering::Relaxed), 11_500);
    let records = store.records("p").await.unwrap();
    assert_eq!(records.len(), 11_501);
    for r in &records {
        assert_eq!(r.redacted, r.id != "q", "{}", r.id);
        assert_eq!(r.caller.is_empty(), r.id != "q", "{}", r.id);
    }
    assert!(!store.records("other").await.unwrap()[0].redacted);
    assert!(
        store
            .job_rows_of("p", i64::MAX, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .job_rows_of("other", i64::MAX, 0, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.finish_purges().await.unwrap(),
        0,
        "nothing left pending"
    );
}

#[tokio::test]
async fn the_sqlite_purge_redacts_a_batch_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    purges_in_batches(sqlite(&dir).await).await;
}

#[tokio::test]
async fn the_postgres_purge_redacts_a_batch_at_a_time() {
    purges_in_batches(postgres().await).await;
}

/// An erasure whose purge never ran (its process stopped right after the
/// suppression committed) is finished by the next sweep of any process on
/// the ledger; an objection leaves nothing to purge.
async fn finishes_interrupted_purges(url: &str) {
    let first = Store::open(url).await.unwrap();
    for result in at_once(
        &first,
        (0..3).map(|n| {
            record(
                &format!("r{n}"),
                "p",
                1_000,
                i64::MAX,
                LedgerOutcome::Enriched,
            )
        }),
    )
    .await
    {
        result.unwrap();
    }
    first
        .record(record(
            "k",
            "keeps",
            1_000,
            i64::MAX,
            LedgerOutcome::Enriched,
        ))
        .await
        .unwrap();
    first.erase("p", "DSR-9", 10_000).await.unwrap();
    first
        .suppress("keeps", MARKETING, "OBJ-1", 10_000)
        .await
        .unwrap();
    drop(first);

    let second = Store::open(url).await.unwrap();
    let clock = enrichd::clock::SharedClock::system();
    enrichd::ledger::retention::sweep(&second, &clock).await;
    assert!(
        second
            .records("p")
            .await
            .unwrap()
            .iter()
            .all(|r| r.redacted)
    );
    assert!(!second.records("keeps").await.unwrap()[0].redacted);
    assert_eq!(second.finish_purges().await.unwrap(), 0);
}

#[tokio::test]
async fn the_sqlite_sweep_finishes_an_interrupted_purge() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    finishes_interrupted_purges(&url).await;
}

#[tokio::test]
async fn the_postgres_sweep_finishes_an_interrupted_purge() {
    finishes_interrupted_purges(&common::postgres_url().await).await;
}

/// The history an access report's pages share (how many records, the kinds
/// of processing) is computed for its first page and kept for the next
/// ones; an erasure's purge makes it computed again.
#[tokio::test]
async fn an_access_s_history_is_kept_for_its_pages_and_forgotten_on_erasure() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    store
        .record(record("a", "s1", 1_000, i64::MAX, LedgerOutcome::Enriched))
        .await
        .unwrap();
    let first = store.history("s1", 5_000).await.unwrap();
    assert_eq!(first.records, 1);
    assert_eq!(first.kinds[0].caller, "crm");
    store
        .record(record("b", "s1", 2_000, i64::MAX, LedgerOutcome::Enriched))
        .await
        .unwrap();
    assert_eq!(store.history("s1", 5_000).await.unwrap(), first, "kept");
    assert_eq!(
        store.history("s1", 6_000).await.unwrap().records,
        2,
        "another access"
    );

    let progress = std::sync::atomic::AtomicU64::new(0);
    store.purge("s1", &progress).await.unwrap();
    let after = store.history("s1", 5_000).await.unwrap();
    assert_eq!(after.records, 2);
    assert_eq!(after.kinds.len(), 1);
    assert_eq!(after.kinds[0].caller, "", "redacted");
}

/// What a record's commit guarantees: every call answered has its record
/// committed before the answer leaves, so killing the server (SIGKILL, no
/// chance to flush anything) under load loses none of them. On SQLite the
/// log is written before the commit returns (WAL, `synchronous = NORMAL`:
/// durable across a crash of the process; a power cut may lose the last
/// commits since the log was last synced); on PostgreSQL the commit is
/// durable on the server (`synchronous_commit` on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_call_has_its_record_after_a_kill_9_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    for url in [sqlite, common::postgres_url().await] {
        let answered = answer_then_kill(&url, dir.path()).await;
        assert!(answered.len() >= 200, "under load: {}", answered.len());
        let store = Store::open(&url)
            .await
            .expect("the ledger opens after the kill");
        for id in &answered {
            assert!(
                store.record_by_id(id).await.unwrap().is_some(),
                "{url}: answered {id} has no record ({} answered)",
                answered.len()
            );
        }
    }
}

/// Sixteen clients call a sandbox server on `url` until 200 answers came
/// back, then the server is killed with SIGKILL while they go on; returns
/// the processing ids of every call that was answered.
async fn answer_then_kill(url: &str, dir: &std::path::Path) -> Vec<String> {
    let data = tempfile::tempdir_in(dir).unwrap();
    let mut server = common::serve(|cmd| {
        cmd.args(["--sandbox", "--data-dir"])
            .arg(data.path())
            .env("ENRICHD__LEDGER__URL", url);
    });
    let addr = server.addr.clone();
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let answered = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let (channel, answered) = (channel.clone(), answered.clone());
            tokio::spawn(async move {
                let mut client = pb::enrichment_client::EnrichmentClient::new(channel);
                for n in 0.. {
                    let mut request = common::email_request("jane.doe@example.com");
                    request.request_id = format!("c{c}-{n}");
                    match client.enrich(request).await {
                        Ok(answer) => {
                            let id = answer.into_inner().compliance.unwrap().processing_id;
                            answered.lock().unwrap().push(id);
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    common::eventually("200 calls are answered", || {
        let n = answered.lock().unwrap().len();
        async move { (n >= 200).then_some(()) }
    })
    .await;
    server.child.0.kill().unwrap();
    server.child.0.wait().unwrap();
    for client in clients {
        client.await.unwrap();
    }
    answered.lock().unwrap().clone()
}
