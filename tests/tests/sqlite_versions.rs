//! Every SQLite schema the repository has shipped (`tests/fixtures/sqlite-schemas/`)
//! opens with today's store: a file made with each (holding a webhook token, as every
//! running `inlet dev` has) is brought to the current schema version, keeps its token,
//! and takes an event through the one commit and reads it back. A file of a newer
//! version is refused with a message naming both versions.

mod common;

use inlet::sqlite::SqliteStore;
use inlet_core::store::{EventLog, EventRecord, VerificationStatus};
use inlet_core::tokens::TokenStore;
use std::time::Duration;

const NOW: i64 = 1_800_000_000_000;

fn event() -> EventRecord {
    EventRecord {
        verification: VerificationStatus::EnforcedVerified,
        event_type: Some("task.assigned".into()),
        replay_of: Some("01a22fae-49e9-7486-900d-02974c777388".into()),
        headers: vec![("content-type".into(), "application/json".into())],
        raw_body: "{}".into(),
        ..EventRecord::received("task-app", "development", NOW, NOW + 86_400_000)
    }
}

#[tokio::test]
async fn every_schema_ever_shipped_opens_and_works() {
    let dir = common::repo_root().join("tests/fixtures/sqlite-schemas");
    let mut fixtures: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 5, "{fixtures:?}");
    for fixture in fixtures {
        let scratch = tempfile::tempdir().unwrap();
        let db = scratch.path().join("inlet.db");
        {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(&std::fs::read_to_string(&fixture).unwrap())
                .unwrap();
            conn.execute(
                "INSERT INTO tokens (token, source, environment, created_at_ms) VALUES ('old-token-of-this-file', 'task-app', 'development', 1)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&db, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
        let version: i64 = rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1, "{}", fixture.display());
        let tokens = store.active(NOW).await.unwrap();
        assert_eq!(tokens.len(), 1, "{}", fixture.display());
        assert_eq!(tokens[0].token, "old-token-of-this-file");
        let event = event();
        store.commit(event.clone(), None).await.unwrap();
        let stored = store.get(&event.id).await.unwrap().expect("stored");
        assert_eq!(stored.replay_of, event.replay_of, "{}", fixture.display());
        drop(store);
        // Opening again changes nothing.
        SqliteStore::open(&db, Duration::from_secs(5)).unwrap();
    }
}

#[tokio::test]
async fn a_file_of_a_newer_version_is_refused_saying_why() {
    let scratch = tempfile::tempdir().unwrap();
    let db = scratch.path().join("inlet.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", 7)
        .unwrap();
    let error = match SqliteStore::open(&db, Duration::from_secs(5)) {
        Ok(_) => panic!("a file of version 7 was opened"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("schema version 7") && error.contains("reads up to version 1"),
        "{error}"
    );
}
