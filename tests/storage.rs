//! State that cannot be lost by accident: one data directory, a ledger that
//! refuses another hash key, private files, a database file that is whole
//! after a clean stop, and a backup taken while the server runs.
mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use enrichd::ledger::Ledger;

/// The binary with its state in `data_dir` (no hash key configured: the key
/// file in the data directory is used, as on a real install).
fn enrichd(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_enrichd"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env("ENRICHD__DNS__ENABLED", "false")
        .env(
            "ENRICHD__SOURCES__CATALOG",
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/empty-catalog"),
        )
        .env_remove("ENRICHD__LEDGER__URL")
        .env_remove("ENRICHD__PRIVACY__HASH_KEY")
        .env_remove("ENRICHD_DATA_DIR")
        .env_remove("RUST_LOG")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("runs")
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
