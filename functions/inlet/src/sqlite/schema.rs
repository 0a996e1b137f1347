//! The file's schema, and what opening an older file brings up to date: columns added
//! since, and idempotency claims an earlier version left in progress.

use crate::connection::store_error;
use inlet_core::store::StoreError;
use rusqlite::{Connection, TransactionBehavior};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS tokens (
    token          TEXT PRIMARY KEY,
    source         TEXT NOT NULL,
    environment    TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    -- set when the token is rotated out; it keeps working until then (overlap period)
    retires_at_ms  INTEGER
);
CREATE INDEX IF NOT EXISTS tokens_by_source ON tokens (source, environment);

-- One row per idempotency scope, written in the commit of the event that holds it.
-- `state` is always 'completed' now; earlier versions wrote 'in_progress' claims first
-- (resolved at open), and `in_progress_until_ms` is kept for their files.
CREATE TABLE IF NOT EXISTS idempotency (
    scope_key             TEXT PRIMARY KEY,
    event_id              TEXT NOT NULL,
    state                 TEXT NOT NULL,
    expires_at_ms         INTEGER NOT NULL,
    in_progress_until_ms  INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS events (
    id               TEXT PRIMARY KEY,
    source           TEXT NOT NULL,
    environment      TEXT NOT NULL,
    status           TEXT NOT NULL,
    verification     TEXT NOT NULL,
    event_type       TEXT,
    received_at_ms   INTEGER NOT NULL,
    occurred_at_ms   INTEGER NOT NULL,
    idempotency_key  TEXT,
    duplicate_of     TEXT,
    method           TEXT NOT NULL,
    query            TEXT NOT NULL,
    headers          TEXT NOT NULL,
    raw_body         TEXT NOT NULL,
    preprocess       TEXT,
    script_console   TEXT NOT NULL,
    error            TEXT,
    warnings         TEXT NOT NULL,
    expires_at_ms    INTEGER NOT NULL,
    replay_of        TEXT
);
CREATE INDEX IF NOT EXISTS events_by_source ON events (source, environment, id);
CREATE INDEX IF NOT EXISTS events_by_expiry ON events (expires_at_ms);

CREATE TABLE IF NOT EXISTS actions (
    event_id       TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    action         TEXT NOT NULL,
    params         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    -- planned | skipped (the executor moves planned actions on)
    status         TEXT NOT NULL,
    error          TEXT,
    result         TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    updated_at_ms  INTEGER NOT NULL,
    expires_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (event_id, idx)
);

CREATE TABLE IF NOT EXISTS outbox (
    event_id            TEXT PRIMARY KEY,
    -- pending | done | dead
    state               TEXT NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms  INTEGER NOT NULL,
    last_error          TEXT,
    created_at_ms       INTEGER NOT NULL
);
-- The worker's queue: only pending rows, in the order they come due.
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (next_attempt_at_ms, event_id)
    WHERE state = 'pending';

CREATE TABLE IF NOT EXISTS users (
    environment    TEXT NOT NULL,
    id             TEXT NOT NULL,
    properties     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (environment, id)
);
CREATE TABLE IF NOT EXISTS objects (
    environment    TEXT NOT NULL,
    collection     TEXT NOT NULL,
    id             TEXT NOT NULL,
    properties     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (environment, collection, id)
);
CREATE TABLE IF NOT EXISTS tenants (
    environment    TEXT NOT NULL,
    id             TEXT NOT NULL,
    properties     TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    updated_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (environment, id)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    environment    TEXT NOT NULL,
    collection     TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    -- the recipient as JSON: "user-id" or {"collection":..,"id":..}
    recipient      TEXT NOT NULL,
    properties     TEXT NOT NULL,
    PRIMARY KEY (environment, collection, object_id, recipient)
);
CREATE INDEX IF NOT EXISTS subscriptions_by_recipient ON subscriptions (environment, recipient);
CREATE TABLE IF NOT EXISTS audiences (
    environment    TEXT NOT NULL,
    key            TEXT NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (environment, key)
);
CREATE TABLE IF NOT EXISTS audience_members (
    environment    TEXT NOT NULL,
    key            TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    tenant         TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (environment, key, user_id, tenant)
);
CREATE INDEX IF NOT EXISTS audience_members_by_user ON audience_members (environment, user_id);
CREATE TABLE IF NOT EXISTS workflow_runs (
    environment       TEXT NOT NULL,
    id                TEXT NOT NULL,
    workflow_key      TEXT NOT NULL,
    run               TEXT NOT NULL,
    cancellation_key  TEXT,
    status            TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (environment, id)
);
CREATE INDEX IF NOT EXISTS workflow_runs_by_key ON workflow_runs (environment, workflow_key, created_at_ms);
-- Directory changes applied per action: the key that makes re-runs no-ops.
CREATE TABLE IF NOT EXISTS applied_actions (
    environment    TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    result         TEXT NOT NULL,
    applied_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (environment, event_id, idx)
);

CREATE TABLE IF NOT EXISTS event_types (
    source         TEXT NOT NULL,
    environment    TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    count          INTEGER NOT NULL,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    last_event_id  TEXT NOT NULL,
    last_sample    TEXT NOT NULL,
    PRIMARY KEY (source, environment, event_type)
);
"#;

/// The schema version this Inlet writes (`PRAGMA user_version`). Files from before
/// versioning read 0; every schema the repository shipped before (fixtures in
/// `tests/fixtures/sqlite-schemas/`) is brought up to this one by [`migrate`]. Raise it
/// with each change of the schema, and add the step to [`migrate`].
pub(super) const VERSION: i64 = 1;

/// Brings the file's schema to [`VERSION`]: the tables and indexes (created where
/// missing), then each step after the file's version. A file of a newer version is
/// refused, naming both versions: this Inlet cannot know what changed.
pub(super) fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(store_error)?;
    if version > VERSION {
        return Err(StoreError::Failed(format!(
            "the database file has schema version {version}, written by a newer Inlet; this one reads up to version {VERSION}: run that version, or give another --db"
        )));
    }
    let step = store_error;
    conn.execute_batch(SCHEMA).map_err(step)?;
    if version < 1 {
        // Version 0 is every file from before versioning: the one column added since
        // the first release is added where missing.
        add_missing_columns(conn).map_err(step)?;
    }
    // Written only when it changes: a file of the current version opened read-only
    // (its permissions may be fixed later) must still open and serve reads.
    if version < VERSION {
        conn.pragma_update(None, "user_version", VERSION)
            .map_err(step)?;
    }
    Ok(())
}

/// Columns added after a database file may have been created: added to older files.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    let has_replay_of: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('events') WHERE name = 'replay_of')",
        [],
        |r| r.get(0),
    )?;
    if !has_replay_of {
        conn.execute("ALTER TABLE events ADD COLUMN replay_of TEXT", [])?;
    }
    Ok(())
}

/// Resolves idempotency claims left `in_progress` by an earlier version of Inlet that
/// crashed between claiming a key and completing it: a claim whose event was stored as
/// accepted is completed, any other is removed. (This version never writes such claims:
/// the record is part of the event's commit.)
pub(super) fn resolve_abandoned_claims(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let completed = tx.execute(
        "UPDATE idempotency SET state = 'completed', in_progress_until_ms = 0
         WHERE state = 'in_progress'
           AND event_id IN (SELECT id FROM events WHERE status = 'accepted')",
        [],
    )?;
    let released = tx.execute("DELETE FROM idempotency WHERE state = 'in_progress'", [])?;
    tx.commit()?;
    if completed + released > 0 {
        tracing::info!(
            completed,
            released,
            "resolved idempotency claims a crashed process left in progress"
        );
    }
    Ok(())
}
