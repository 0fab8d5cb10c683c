//! State that cannot be lost by accident: one data directory, a ledger that
//! refuses another hash key, private files, a database file that is whole
//! after a clean stop, and a backup taken while the server runs.
use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use enrichd::ledger::Ledger;

/// The binary with its state in `data_dir` (no hash key configured: the key
/// file in the data directory is used, as on a real install).
fn enrichd(data_dir: &Path, args: &[&str]) -> Output {
    enrichd_keyed(data_dir, None, args)
}

/// The binary with its state in `data_dir` and, if given, an inline
/// `privacy.hash_key`.
fn enrichd_keyed(data_dir: &Path, hash_key: Option<&str>, args: &[&str]) -> Output {
    let key = hash_key.map(|k| ("ENRICHD__PRIVACY__HASH_KEY", k));
    enrichd_with(data_dir, key.as_slice(), args)
}

/// The binary with its state in `data_dir` and these environment variables.
fn enrichd_with(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_enrichd"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env(
            "ENRICHD__SOURCES__CATALOG",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/disabled-catalog"
            ),
        )
        .env_remove("ENRICHD__LEDGER__URL")
        .env_remove("ENRICHD__PRIVACY__HASH_KEY")
        .env_remove("ENRICHD_DATA_DIR")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir());
    command.envs(env.iter().copied());
    command.output().expect("runs")
}

fn enrich_args() -> Vec<&'static str> {
    vec![
        "enrich",
        "--email",
        "ann@example.test",
        "--purpose",
        "marketing",
        "--basis",
        "legitimate_interests",
        "--lia-ref",
        "LIA-1",
    ]
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn access_and_erase_refuse_a_data_directory_that_holds_no_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("not-the-data-dir");
    for command in [
        vec!["access", "--email", "ann@example.test"],
        vec![
            "erase",
            "--email",
            "ann@example.test",
            "--reference",
            "DSR-1",
        ],
    ] {
        let out = enrichd(&elsewhere, &command);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{command:?} answered from an empty ledger"
        );
        assert!(
            err.contains("no ledger at") && err.contains(&elsewhere.display().to_string()),
            "{err}"
        );
    }
    assert!(!elsewhere.exists(), "nothing was created");
}

#[test]
fn state_lives_in_the_data_directory_privately_and_another_key_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    let out = enrichd(&data, &enrich_args());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (db, key) = (data.join("ledger.db"), data.join("hash.key"));
    assert!(db.exists() && key.exists(), "both in the data directory");
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&db), 0o600);
    for side in ["ledger.db-wal", "ledger.db-shm"] {
        let path = data.join(side);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{side}");
        }
    }

    // Erase Ann, then lose the key file: a new key would silently undo the
    // erasure, so enrichd refuses to start with it.
    let erased = enrichd(
        &data,
        &[
            "erase",
            "--email",
            "ann@example.test",
            "--reference",
            "DSR-2",
        ],
    );
    assert!(erased.status.success());
    std::fs::rename(&key, data.join("hash.key.moved")).unwrap();
    let out = enrichd(&data, &enrich_args());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "enriched with another key: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("another hash key"), "{err}");

    // With the right key back, Ann is still suppressed.
    std::fs::remove_file(&key).ok();
    std::fs::rename(data.join("hash.key.moved"), &key).unwrap();
    let out = enrichd(&data, &enrich_args());
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(answer["compliance"]["identifierSuppressed"], true);
}

#[tokio::test]
async fn after_a_clean_stop_the_database_file_alone_holds_everything_and_a_live_backup_is_whole() {
    let mut app = common::TestApp::spawn("[dns]\nenabled = false\n").await;
    let mut client = app.client().await;
    client
        .enrich(common::email_request("ann@example.test"))
        .await
        .unwrap();

    // A backup while the server runs.
    let copy = app.dir.path().join("backup.db");
    let out = Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(["ledger", "backup"])
        .arg(&copy)
        .env("ENRICHD__LEDGER__URL", &app.ledger_url)
        .env("ENRICHD__PRIVACY__HASH_KEY", common::TEST_HASH_KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = |path: &Path| {
        let url = format!("sqlite://{}?mode=ro", path.display());
        async move {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let row = sqlx::query("SELECT COUNT(*) AS n FROM ledger")
                .fetch_one(&mut conn)
                .await
                .unwrap();
            sqlx::Row::try_get::<i64, _>(&row, "n").unwrap()
        }
    };
    sqlx::any::install_default_drivers();
    assert_eq!(records(&copy).await, 1, "the backup holds the record");
    assert_eq!(mode(&copy), 0o600, "the backup is as private as the ledger");

    // A clean stop folds the write-ahead log into the file.
    app.stop();
    (&mut app.handle).await.unwrap().unwrap();
    let db = enrichd::ledger::sqlite_file(&app.ledger_url).unwrap();
    let alone = app.dir.path().join("alone");
    std::fs::create_dir(&alone).unwrap();
    std::fs::copy(&db, alone.join("ledger.db")).unwrap();
    assert_eq!(
        records(&alone.join("ledger.db")).await,
        1,
        "the .db alone is complete"
    );
    drop(Ledger::open(&app.ledger_url).await.unwrap());
}

/// How many ledger rows and suppression rows carry `subject`.
async fn rows_for(db: &Path, subject: &str) -> (i64, i64) {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", db.display());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let mut counts = [0; 2];
    for (i, table) in ["ledger", "suppression"].iter().enumerate() {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE subject = $1"
        ))
        .bind(subject)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        counts[i] = sqlx::Row::try_get::<i64, _>(&row, "n").unwrap();
    }
    (counts[0], counts[1])
}

#[tokio::test]
async fn rotating_the_hash_key_rekeys_every_subject_keeps_erasures_and_api_keys_and_retires_the_old_key()
 {
    use enrichd::privacy::KeyedHasher;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    let run = |args: &[&str]| {
        let out = enrichd(&data, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&enrich_args());
    run(&[
        "erase",
        "--email",
        "ann@example.test",
        "--reference",
        "DSR-7",
    ]);
    let created = run(&["keys", "create", "--name", "crm", "--scopes", "enrich"]);
    let secret = created.lines().last().unwrap().to_owned();
    let (db, key) = (data.join("ledger.db"), data.join("hash.key"));
    let old_key = std::fs::read_to_string(&key).unwrap();
    let old = KeyedHasher::parse_file(&old_key).unwrap();
    let old_subject = old.hash("email:ann@example.test");
    let (records, suppressed) = rows_for(&db, &old_subject).await;
    assert!(records >= 2 && suppressed == 1, "{records} {suppressed}");

    let said = run(&["keys", "rotate-hash"]);
    assert!(said.contains("re-keyed 1 subject(s)"), "{said}");
    let new = KeyedHasher::parse_file(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert_eq!(new.generation(), 2);
    assert_eq!(mode(&key), 0o600);
    assert!(!data.join("hash.key.next").exists());
    // Every record and the suppression moved to the new reference; none is
    // left under the old one.
    assert_eq!(rows_for(&db, &old_subject).await, (0, 0));
    let new_subject = new.hash("email:ann@example.test");
    assert_eq!(rows_for(&db, &new_subject).await, (records, 1));

    // Ann stays erased, and the API key still opens.
    let out = run(&enrich_args());
    let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["compliance"]["identifierSuppressed"], true);
    let ledger = Ledger::open(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let keys =
        enrichd::auth::keys::Keys::new(ledger.clone(), &new, enrichd::clock::SharedClock::system());
    let caller = keys.authenticate(&secret).await.unwrap();
    assert!(caller.is_ok(), "the API key survives the rotation");

    // The old key alone is refused.
    std::fs::write(&key, &old_key).unwrap();
    let out = enrichd(&data, &enrich_args());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another hash key"));

    // A rotation cut off after the ledger moved but before the key file was
    // replaced: rerunning the command finishes it.
    std::fs::write(data.join("hash.key.next"), new.file_text()).unwrap();
    let said = run(&["keys", "rotate-hash"]);
    assert!(said.contains("finished an interrupted rotation"), "{said}");
    let out = run(&enrich_args());
    let answer: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["compliance"]["identifierSuppressed"], true);
}

#[test]
fn rotating_an_inline_hash_key_needs_a_file_for_the_new_value() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    let inline = "an-inline-hash-key-of-more-than-32-characters";
    let with_inline = |args: &[&str]| enrichd_keyed(&data, Some(inline), args);
    assert!(with_inline(&enrich_args()).status.success());
    let out = with_inline(&["keys", "rotate-hash"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--out"));

    let file = tmp.path().join("new-key");
    let out = with_inline(&["keys", "rotate-hash", "--out", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&file), 0o600);
    let value = std::fs::read_to_string(&file).unwrap();
    assert!(value.trim().starts_with(inline) && value.trim().contains(' '));
    // The old value is refused now; the new one works.
    assert!(!with_inline(&enrich_args()).status.success());
    let out = enrichd_keyed(&data, Some(value.trim()), &enrich_args());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A one-shot `enrichd erase` whose answer came before the redaction was
/// done (`ledger.erase_wait` is zero here) finishes it before it exits.
#[tokio::test]
async fn a_one_shot_erase_finishes_the_redaction_before_it_exits() {
    use sqlx::Connection;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    assert!(enrichd(&data, &enrich_args()).status.success());
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}", data.join("ledger.db").display());
    let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO ledger (id, at_ms, caller, purpose, lawful_basis, consent_ref, lia_ref, \
         contract_ref, subject, sources, field_categories, outcome, retain_until_ms, redacted, \
         caller_id, on_behalf_of, reference, detail) SELECT printf('copy%028x', n.i), l.at_ms - n.i, l.caller, l.purpose, \
         l.lawful_basis, l.consent_ref, l.lia_ref, l.contract_ref, l.subject, l.sources, \
         l.field_categories, l.outcome, l.retain_until_ms, l.redacted, l.caller_id, \
         l.on_behalf_of, l.reference, l.detail FROM n, (SELECT * FROM ledger LIMIT 1) AS l",
    )
    .execute(&mut db)
    .await
    .unwrap();
    db.close().await.unwrap();

    let erased = enrichd_with(
        &data,
        &[("ENRICHD__LEDGER__ERASE_WAIT", "0s")],
        &[
            "erase",
            "--email",
            "ann@example.test",
            "--reference",
            "DSR-9",
        ],
    );
    assert!(
        erased.status.success(),
        "{}",
        String::from_utf8_lossy(&erased.stderr)
    );
    let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
    let left: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM ledger WHERE redacted = 0 AND purpose <> 'data_subject_request'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(left.0, 0, "every record redacted");
    let pending: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pending_purge")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(pending.0, 0);
}

/// A rotation while a server runs would leave it hashing with the old key,
/// and the erasures it then took would be found by no one: `rotate-hash`
/// refuses, naming the server, until the server stops (its lease is given
/// back at a clean stop).
#[tokio::test]
async fn a_hash_key_rotation_is_refused_while_a_server_holds_the_ledger() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("state");
    assert!(enrichd(&data, &enrich_args()).status.success());
    // It serves once it holds its lease.
    let mut server = common::serve(|cmd| {
        cmd.arg("--data-dir")
            .arg(&data)
            .env("ENRICHD__DNS__ENABLED", "false")
            .env("ENRICHD__AUTH__REQUIRED", "false")
            .env_remove("ENRICHD__LEDGER__URL")
            .env_remove("ENRICHD__PRIVACY__HASH_KEY");
    });
    let pid = server.child.0.id().to_string();
    let refused = enrichd(&data, &["keys", "rotate-hash"]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("1 server(s) serve from this ledger") && said.contains(&pid),
        "{said}"
    );
    assert!(!data.join("hash.key.next").exists(), "nothing was changed");

    let stopped = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(stopped.success());
    common::eventually("the server stops", || {
        let exited = server.child.0.try_wait().unwrap();
        async move { exited }
    })
    .await;
    let done = enrichd(&data, &["keys", "rotate-hash"]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}
