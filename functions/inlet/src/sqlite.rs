//! The embedded SQLite store of `inlet dev`.
//!
//! One database file (default `.inlet/inlet.db`) holds webhook tokens, idempotency
//! records, the event log, planned actions, the event-type registry, the action outbox
//! and the directory. It implements the core traits [`IdempotencyStore`], [`EventLog`],
//! [`Outbox`] and [`Directory`](inlet_core::directory::Directory) with the same
//! semantics as the DynamoDB store:
//!
//! - [`EventLog::commit`] is one `BEGIN IMMEDIATE` transaction: the idempotency check and
//!   record, the event, its planned actions, its outbox row and the registry count
//!   commit together (one fsync), so there is no window in which an event is stored but
//!   not de-duplicated or not queued;
//! - expiry is compared on every read because rows are only purged lazily;
//! - the file runs in WAL mode with `synchronous=FULL`, so an acknowledged event
//!   survives a crash of the process or the machine;
//! - opening the file resolves idempotency claims that earlier versions of Inlet left
//!   `in_progress` when they crashed between claiming a key and storing its event:
//!   completed if the event was stored, removed if not, so that a sender's retry is a
//!   duplicate or new, never blocked.
//!
//! Calls run on tokio's blocking pool; one connection behind a mutex is plenty for a
//! laptop and keeps transactions trivially serial.

pub(crate) use crate::connection::Cached;
use crate::connection::{Handle, connect, store_error};
use crate::writer::Writer;
use async_trait::async_trait;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::config::Catalog;
use inlet_core::store::{
    ActionLogEntry, ActionUpdate, CommitError, Committed, EventLog, EventPage, EventQuery,
    EventRecord, EventStatus, EventTypeStats, IdempotencyClaim, IdempotencyRecord,
    IdempotencyScope, IdempotencyStore, Outbox, OutboxItem, StoreError,
};
use inlet_core::tokens::TokenStore;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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

pub use inlet_core::pipeline::TokenEntry;

pub struct SqliteStore {
    /// The connection reads go through (WAL: they never wait for the writer).
    reader: Arc<Mutex<Handle>>,
    /// The thread every write goes through (see `crate::writer`).
    writer: Arc<Writer>,
    outbox_wakeup: Arc<Notify>,
    /// Where to open the file again (see `needs_reopen`).
    path: Arc<std::path::PathBuf>,
    busy_timeout: Duration,
}

pub(crate) fn json_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`. `busy_timeout` bounds how long
    /// a call waits for a lock held by another process before it reports the store
    /// unavailable.
    pub fn open(path: &Path, busy_timeout: Duration) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = connect(path, busy_timeout).map_err(store_error)?;
        conn.execute_batch(SCHEMA).map_err(store_error)?;
        add_missing_columns(&conn).map_err(store_error)?;
        if let Err(e) = resolve_abandoned_claims(&mut conn) {
            // A file opened read-only still serves reads; this runs at the next start.
            tracing::warn!(error = %e, "could not resolve claims left in progress");
        }
        let reader = connect(path, busy_timeout).map_err(store_error)?;
        Ok(SqliteStore {
            reader: Arc::new(Mutex::new(Handle::new(reader))),
            writer: Arc::new(Writer::start(conn, path.to_path_buf(), busy_timeout)),
            outbox_wakeup: Arc::new(Notify::new()),
            path: Arc::new(path.to_path_buf()),
            busy_timeout,
        })
    }

    /// Signalled after each commit that queued an event for the action executor.
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wakeup.clone()
    }

    /// A read, on the read connection; it first waits for the worker's early writes to
    /// commit, so it sees them.
    pub(crate) async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.writer.unsettled() {
            self.writer.barrier().await;
        }
        let (conn, path, busy_timeout) =
            (self.reader.clone(), self.path.clone(), self.busy_timeout);
        tokio::task::spawn_blocking(move || {
            let mut handle = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(handle.ready(&path, busy_timeout)).map_err(|e| {
                handle.failed(&e);
                store_error(e)
            })
        })
        .await
        .map_err(|e| StoreError::Failed(format!("store task failed: {e}")))?
    }

    /// Whether the store can be written now: a probe row written and deleted through
    /// the writer (it commits with the next batch). `/healthz` reports it.
    pub async fn writable(&self) -> Result<(), StoreError> {
        self.writer
            .write(|conn| {
                conn.execute(
                    "INSERT INTO tokens (token, source, environment, created_at_ms)
                     VALUES ('health-probe', '', '', 0)",
                    [],
                )?;
                conn.execute("DELETE FROM tokens WHERE token = 'health-probe'", [])
                    .map(drop)
            })
            .await
    }

    /// Gives every (source, environment) of `catalog` a token where it has none (see
    /// [`TokenStore::ensure`]) and returns all working tokens.
    pub async fn ensure_tokens(
        &self,
        catalog: &Catalog,
        now_ms: i64,
    ) -> Result<Vec<TokenEntry>, StoreError> {
        let pairs: Vec<(String, String)> = catalog
            .environments()
            .map(|(s, e)| (s.to_string(), e.to_string()))
            .collect();
        self.ensure(&pairs, now_ms).await?;
        self.active(now_ms).await
    }

    /// Deletes events, actions and idempotency records whose retention has passed.
    pub async fn purge_expired(&self, now_ms: i64) -> Result<usize, StoreError> {
        self.writer.write(move |conn| {
            let mut n = conn.execute("DELETE FROM actions WHERE expires_at_ms <= ?1", [now_ms])?;
            n += conn.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND event_id IN (SELECT id FROM events WHERE expires_at_ms <= ?1)",
                [now_ms],
            )?;
            n += conn.execute("DELETE FROM events WHERE expires_at_ms <= ?1", [now_ms])?;
            n += conn.execute("DELETE FROM idempotency WHERE expires_at_ms <= ?1", [now_ms])?;
            Ok(n)
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn active(&self, now_ms: i64) -> Result<Vec<TokenEntry>, StoreError> {
        self.writer
            .write(move |conn| active_tokens(conn, now_ms))
            .await
    }

    async fn ensure(&self, pairs: &[(String, String)], now_ms: i64) -> Result<usize, StoreError> {
        let mut fresh = Vec::with_capacity(pairs.len());
        for _ in pairs {
            fresh.push(inlet_core::store::new_webhook_token()?);
        }
        let pairs = pairs.to_vec();
        self.writer
            .write(move |conn| {
                let mut created = 0;
                for ((source, environment), token) in pairs.iter().zip(fresh) {
                    let current: bool = conn.query_row(
                        "SELECT EXISTS (SELECT 1 FROM tokens WHERE source = ?1 AND environment = ?2
                           AND retires_at_ms IS NULL)",
                        params![source, environment],
                        |r| r.get(0),
                    )?;
                    if !current {
                        conn.execute(
                            "INSERT INTO tokens (token, source, environment, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
                            params![token, source, environment, now_ms],
                        )?;
                        created += 1;
                    }
                }
                Ok(created)
            })
            .await
    }

    async fn rotate(
        &self,
        source: &str,
        environment: &str,
        now_ms: i64,
        overlap_ms: i64,
    ) -> Result<Vec<TokenEntry>, StoreError> {
        let (source, environment) = (source.to_string(), environment.to_string());
        let fresh = inlet_core::store::new_webhook_token()?;
        self.writer
            .write(move |conn| {
                let retires_at = now_ms + overlap_ms;
                // One transaction: the new token and the retirements commit together.
                conn.execute(
                    "INSERT INTO tokens (token, source, environment, created_at_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![fresh, source, environment, now_ms],
                )?;
                conn.execute(
                    "UPDATE tokens SET retires_at_ms = MIN(COALESCE(retires_at_ms, ?3), ?3)
                     WHERE source = ?1 AND environment = ?2 AND token != ?5
                       AND (retires_at_ms IS NULL OR retires_at_ms > ?4)",
                    params![source, environment, retires_at, now_ms, fresh],
                )?;
                let mut pair: Vec<TokenEntry> = active_tokens(conn, now_ms)?
                    .into_iter()
                    .filter(|t| t.source == source && t.environment == environment)
                    .collect();
                // The new one last, whatever the creation times (same millisecond).
                pair.sort_by_key(|t| t.token == fresh);
                Ok(pair)
            })
            .await
    }
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

fn active_tokens(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<TokenEntry>> {
    let mut stmt = conn.prepare(
        "SELECT token, source, environment, retires_at_ms FROM tokens
         WHERE retires_at_ms IS NULL OR retires_at_ms > ?1
         ORDER BY source, environment, retires_at_ms IS NULL, created_at_ms",
    )?;
    let rows = stmt.query_map([now_ms], |r| {
        Ok(TokenEntry {
            token: r.get(0)?,
            source: r.get(1)?,
            environment: r.get(2)?,
            retires_at_ms: r.get(3)?,
        })
    })?;
    rows.collect()
}

/// Resolves idempotency claims left `in_progress` by an earlier version of Inlet that
/// crashed between claiming a key and completing it: a claim whose event was stored as
/// accepted is completed, any other is removed. (This version never writes such claims:
/// the record is part of the event's commit.)
fn resolve_abandoned_claims(conn: &mut Connection) -> rusqlite::Result<()> {
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

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn holder(
        &self,
        scope: &IdempotencyScope,
        now_ms: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = scope.storage_key();
        self.call(move |conn| holder(conn, &key, now_ms)).await
    }
}

/// The completed, unexpired record of a scope.
fn holder(
    conn: &Connection,
    scope_key: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    conn.prepare_cached(
        "SELECT event_id, expires_at_ms FROM idempotency
         WHERE scope_key = ?1 AND state = 'completed' AND expires_at_ms > ?2",
    )?
    .query_row(params![scope_key, now_ms], |r| {
        Ok(IdempotencyRecord {
            event_id: r.get(0)?,
            expires_at_ms: r.get(1)?,
        })
    })
    .optional()
}

/// One event's commit, inside the caller's transaction: the idempotency check and
/// record, then the event as given or as the duplicate of the scope's holder.
fn commit_event(
    tx: &Connection,
    event: &EventRecord,
    claim: Option<&IdempotencyClaim>,
) -> rusqlite::Result<Committed> {
    let mut duplicate_of = None;
    if let Some(claim) = claim {
        let key = claim.scope.storage_key();
        match holder(tx, &key, claim.now_ms)? {
            Some(held) => duplicate_of = Some(held.event_id),
            None => {
                // The transaction holds the write lock since BEGIN IMMEDIATE, so no
                // other commit can have claimed the scope since the read above.
                tx.prepare_cached(
                    "INSERT INTO idempotency (scope_key, event_id, state, expires_at_ms, in_progress_until_ms)
                     VALUES (?1, ?2, 'completed', ?3, 0)
                     ON CONFLICT (scope_key) DO UPDATE SET
                         event_id = excluded.event_id, state = 'completed',
                         expires_at_ms = excluded.expires_at_ms, in_progress_until_ms = 0",
                )?
                .execute(params![key, event.id, claim.expires_at_ms])?;
            }
        }
    }
    insert_event(tx, event, duplicate_of.as_deref())?;
    Ok(match duplicate_of {
        Some(original_event_id) => Committed::Duplicate { original_event_id },
        None => Committed::Stored {
            event_id: event.id.clone(),
        },
    })
}

/// Writes the event, its planned actions, its outbox row (if queued) and its registry
/// count. With `duplicate_of`, it is written as that event's duplicate: status
/// `duplicate`, no actions, not queued.
fn insert_event(
    tx: &Connection,
    event: &EventRecord,
    duplicate_of: Option<&str>,
) -> rusqlite::Result<()> {
    let status = match duplicate_of {
        Some(_) => EventStatus::Duplicate,
        None => event.status,
    };
    tx.prepare_cached(
        "INSERT INTO events (id, source, environment, status, verification, event_type,
            received_at_ms, occurred_at_ms, idempotency_key, duplicate_of, method, query,
            headers, raw_body, preprocess, script_console, error, warnings, expires_at_ms, replay_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        event.id,
        event.source,
        event.environment,
        status.as_str(),
        event.verification.as_str(),
        event.event_type,
        event.received_at_ms,
        event.occurred_at_ms,
        event.idempotency_key,
        duplicate_of.or(event.duplicate_of.as_deref()),
        event.method,
        event.query,
        json_text(&event.headers),
        event.raw_body,
        event.preprocess.as_ref().map(json_text),
        json_text(&event.script_console),
        event.error,
        json_text(&event.warnings),
        event.expires_at_ms,
        event.replay_of,
    ])?;
    if duplicate_of.is_none() {
        let mut insert_action = tx.prepare_cached(
            "INSERT INTO actions (event_id, idx, action, params, payload, status, error,
                updated_at_ms, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for action in &event.actions {
            insert_action.execute(params![
                event.id,
                action.index as i64,
                action.action.name(),
                json_text(&action.params),
                json_text(&action.payload),
                if action.skipped.is_some() {
                    "skipped"
                } else {
                    "planned"
                },
                action.skipped,
                event.received_at_ms,
                event.expires_at_ms,
            ])?;
        }
        if event.is_queued() {
            tx.prepare_cached(
                "INSERT INTO outbox (event_id, state, next_attempt_at_ms, created_at_ms)
                 VALUES (?1, 'pending', ?2, ?2)",
            )?
            .execute(params![event.id, event.received_at_ms])?;
        }
    }
    // The registry counts accepted events (see `EventRecord::counts_in_registry`).
    if let (Some(event_type), EventStatus::Accepted) = (&event.event_type, status) {
        tx.prepare_cached(
            "INSERT INTO event_types (source, environment, event_type, count, first_seen_ms,
                last_seen_ms, last_event_id, last_sample)
             VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
             ON CONFLICT (source, environment, event_type) DO UPDATE SET
                count = count + 1, last_seen_ms = excluded.last_seen_ms,
                last_event_id = excluded.last_event_id, last_sample = excluded.last_sample",
        )?
        .execute(params![
            event.source,
            event.environment,
            event_type,
            event.received_at_ms,
            event.id,
            event.raw_body
        ])?;
    }
    Ok(())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn commit(
        &self,
        event: EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Committed, CommitError> {
        let queued = event.is_queued();
        // Shared with the write, which drops its copy once it ran, so the event can be
        // handed back whole if the commit fails.
        let event = Arc::new(event);
        let (written, claim) = (event.clone(), claim.cloned());
        let outcome = self
            .writer
            .write(move |conn| commit_event(conn, &written, claim.as_ref()))
            .await;
        match outcome {
            Ok(committed) => {
                if queued && matches!(committed, Committed::Stored { .. }) {
                    self.outbox_wakeup.notify_one();
                }
                Ok(committed)
            }
            Err(error) => {
                let event = Arc::try_unwrap(event).unwrap_or_else(|shared| (*shared).clone());
                Err(CommitError::new(error, event))
            }
        }
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let event_id = event_id.to_string();
        self.call(move |conn| read_event(conn, &event_id)).await
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let (source, environment) = (source.to_string(), environment.to_string());
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT source, environment, event_type, count, first_seen_ms, last_seen_ms,
                        last_event_id, last_sample
                 FROM event_types WHERE source = ?1 AND environment = ?2 ORDER BY event_type",
            )?;
            let rows = stmt.query_map(params![source, environment], |r| {
                Ok(EventTypeStats {
                    source: r.get(0)?,
                    environment: r.get(1)?,
                    event_type: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    first_seen_ms: r.get(4)?,
                    last_seen_ms: r.get(5)?,
                    last_event_id: r.get(6)?,
                    last_sample: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let query = query.clone();
        self.call(move |conn| {
            let mut sql = String::from("SELECT id FROM events WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut filter = |clause: &str, value: rusqlite::types::Value| {
                args.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            };
            if let Some(v) = &query.source {
                filter("source =", v.clone().into());
            }
            if let Some(v) = &query.environment {
                filter("environment =", v.clone().into());
            }
            if let Some(v) = &query.event_type {
                filter("event_type =", v.clone().into());
            }
            if let Some(v) = query.status {
                filter("status =", v.as_str().to_string().into());
            }
            if let Some(v) = query.since_ms {
                filter("received_at_ms >=", v.into());
            }
            if let Some(v) = query.until_ms {
                filter("received_at_ms <", v.into());
            }
            if let Some(v) = &query.cursor {
                filter("id <", v.clone().into());
            }
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", query.limit + 1));
            let ids: Vec<String> = conn
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut events = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(mut event) = read_event(conn, id)? {
                    event.actions.clear();
                    events.push(event);
                }
            }
            Ok(EventPage::first(events, query.limit))
        })
        .await
    }

    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        let event_id = event_id.to_string();
        self.call(move |conn| read_action_log(conn, &event_id))
            .await
    }

    /// One read for the worker's whole round.
    async fn get_with_logs(
        &self,
        event_ids: &[String],
    ) -> Result<Vec<(Option<EventRecord>, Vec<ActionLogEntry>)>, StoreError> {
        let event_ids = event_ids.to_vec();
        self.call(move |conn| {
            event_ids
                .iter()
                .map(|id| {
                    let event = read_event(conn, id)?;
                    let log = match &event {
                        Some(_) => read_action_log(conn, id)?,
                        None => Vec::new(),
                    };
                    Ok((event, log))
                })
                .collect()
        })
        .await
    }

    /// Queued on the worker's session (see [`Writer::queue_early`]): a failure surfaces
    /// at the worker's next round, with nothing after it committed.
    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let (event_id, update) = (event_id.to_string(), update.clone());
        self.writer.queue_early("recording an action's outcome", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE actions SET status = ?3, result = ?4, error = ?5, attempts = ?6, updated_at_ms = ?7
                     WHERE event_id = ?1 AND idx = ?2",
                )?
                .execute(params![
                    event_id,
                    update.index as i64,
                    update.status.as_str(),
                    update.result.as_ref().map(json_text),
                    update.error,
                    update.attempts as i64,
                    update.now_ms
                ])?;
            match changed {
                0 => Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("no action {} on event {event_id}", update.index).into(),
                )),
                _ => Ok(()),
            }
        });
        Ok(())
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        // The worker's writes of its last round commit first (see `crate::writer`).
        self.writer.settle().await?;
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event_id, attempts FROM outbox
                 WHERE state = 'pending' AND next_attempt_at_ms <= ?1
                 ORDER BY next_attempt_at_ms, event_id LIMIT ?2",
            )?;
            let rows =
                stmt.query_map(params![now_ms, limit.min(i64::MAX as usize) as i64], |r| {
                    Ok(OutboxItem {
                        event_id: r.get(0)?,
                        attempts: r.get::<_, i64>(1)? as u32,
                    })
                })?;
            rows.collect()
        })
        .await
    }

    async fn retry_at(
        &self,
        event_id: &str,
        attempts: u32,
        next_attempt_at_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        let (event_id, error) = (event_id.to_string(), error.to_string());
        self.writer.queue_early("scheduling an event's retry", move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_attempt_at_ms = ?3, last_error = ?4 WHERE event_id = ?1",
            )?
            .execute(params![event_id, attempts as i64, next_attempt_at_ms, error])
            .map(drop)
        });
        Ok(())
    }

    async fn finish(&self, event_id: &str, error: Option<&str>) -> Result<(), StoreError> {
        let (event_id, error) = (event_id.to_string(), error.map(str::to_string));
        self.writer
            .queue_early("closing an outbox row", move |conn| {
                conn.prepare_cached(
                    "UPDATE outbox SET state = ?2, last_error = ?3 WHERE event_id = ?1",
                )?
                .execute(params![
                    event_id,
                    if error.is_some() { "dead" } else { "done" },
                    error
                ])
                .map(drop)
            });
        Ok(())
    }
}

impl SqliteStore {
    pub(crate) fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The outbox row of an event: (state, attempts, last error).
    pub async fn outbox_state(
        &self,
        event_id: &str,
    ) -> Result<Option<(String, u32, Option<String>)>, StoreError> {
        let event_id = event_id.to_string();
        self.call(move |conn| {
            conn.query_row(
                "SELECT state, attempts, last_error FROM outbox WHERE event_id = ?1",
                [&event_id],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u32, r.get(2)?)),
            )
            .optional()
        })
        .await
    }
}

/// A stored status read back as its type: a name none has is an error that names it
/// (a damaged or newer file), never taken for another status.
fn stored_name<T: std::str::FromStr>(column: usize, text: String) -> rusqlite::Result<T> {
    text.parse().map_err(|_| {
        let what = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("status");
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("`{text}` is not a {what} this version of Inlet knows").into(),
        )
    })
}

fn read_action_log(conn: &Connection, event_id: &str) -> rusqlite::Result<Vec<ActionLogEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, action, params, payload, status, result, error, attempts, updated_at_ms
         FROM actions WHERE event_id = ?1 ORDER BY idx",
    )?;
    let rows = stmt.query_map([event_id], |r| {
        let action: String = r.get(1)?;
        let status: String = r.get(4)?;
        let result: Option<String> = r.get(5)?;
        Ok(ActionLogEntry {
            index: r.get::<_, i64>(0)? as usize,
            action: ActionKind::from_name(&action).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(1, action.clone(), rusqlite::types::Type::Text)
            })?,
            params: from_json(&r.get::<_, String>(2)?)?,
            payload: from_json(&r.get::<_, String>(3)?)?,
            status: stored_name(4, status)?,
            result: result.as_deref().map(from_json).transpose()?,
            error: r.get(6)?,
            attempts: r.get::<_, i64>(7)? as u32,
            updated_at_ms: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn read_event(conn: &Connection, event_id: &str) -> rusqlite::Result<Option<EventRecord>> {
    let event = conn
        .prepare_cached(
            "SELECT id, source, environment, status, verification, event_type, received_at_ms,
                    occurred_at_ms, idempotency_key, duplicate_of, method, query, headers, raw_body,
                    preprocess, script_console, error, warnings, expires_at_ms, replay_of
             FROM events WHERE id = ?1",
        )?
        .query_row([event_id], |r| {
            let status: String = r.get(3)?;
            let verification: String = r.get(4)?;
            let preprocess: Option<String> = r.get(14)?;
            Ok(EventRecord {
                id: r.get(0)?,
                source: r.get(1)?,
                environment: r.get(2)?,
                status: stored_name(3, status)?,
                verification: stored_name(4, verification)?,
                event_type: r.get(5)?,
                received_at_ms: r.get(6)?,
                occurred_at_ms: r.get(7)?,
                idempotency_key: r.get(8)?,
                duplicate_of: r.get(9)?,
                replay_of: r.get(19)?,
                method: r.get(10)?,
                query: r.get(11)?,
                headers: from_json(&r.get::<_, String>(12)?)?,
                raw_body: r.get(13)?,
                preprocess: preprocess.as_deref().map(from_json).transpose()?,
                script_console: from_json(&r.get::<_, String>(15)?)?,
                error: r.get(16)?,
                warnings: from_json(&r.get::<_, String>(17)?)?,
                actions: Vec::new(),
                expires_at_ms: r.get(18)?,
            })
        })
        .optional()?;
    let Some(mut event) = event else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT idx, action, params, payload, status, error FROM actions WHERE event_id = ?1 ORDER BY idx",
    )?;
    let actions = stmt.query_map([event_id], |r| {
        let action: String = r.get(1)?;
        let status: String = r.get(4)?;
        let error: Option<String> = r.get(5)?;
        Ok(PlannedAction {
            index: r.get::<_, i64>(0)? as usize,
            action: ActionKind::from_name(&action).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(1, action.clone(), rusqlite::types::Type::Text)
            })?,
            params: from_json(&r.get::<_, String>(2)?)?,
            payload: from_json(&r.get::<_, String>(3)?)?,
            skipped: (status == "skipped").then(|| error.unwrap_or_default()),
        })
    })?;
    event.actions = actions.collect::<rusqlite::Result<_>>()?;
    Ok(Some(event))
}

#[async_trait]
impl inlet_admin::OutboxView for SqliteStore {
    async fn outbox(&self, event_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self.outbox_state(event_id).await?.map(|(state, attempts, error)| {
            serde_json::json!({"state": state, "attempts": attempts, "last_error": error})
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::stored_name;
    use inlet_core::store::{ActionStatus, EventStatus, VerificationStatus};

    #[test]
    fn a_stored_name_none_has_is_an_error_not_another_status() {
        assert_eq!(
            stored_name::<ActionStatus>(4, "failed".into()).unwrap(),
            ActionStatus::Failed
        );
        assert_eq!(
            stored_name::<VerificationStatus>(4, "enforced:verified".into()).unwrap(),
            VerificationStatus::EnforcedVerified
        );
        let damaged = stored_name::<EventStatus>(3, "acepted".into()).unwrap_err();
        assert!(
            damaged
                .to_string()
                .contains("`acepted` is not a EventStatus"),
            "{damaged}"
        );
        assert!(stored_name::<ActionStatus>(4, "done".into()).is_err());
    }
}
