//! The embedded SQLite store of `inlet dev`.
//!
//! One database file (default `.inlet/inlet.db`) holds webhook tokens, idempotency
//! records, the event log, planned actions, the event-type registry, the action outbox
//! and the directory. It implements the core traits [`IdempotencyStore`](inlet_core::store::IdempotencyStore),
//! [`EventLog`](inlet_core::store::EventLog), [`Outbox`](inlet_core::store::Outbox) and [`Directory`](inlet_core::directory::Directory) with the same
//! semantics as the DynamoDB store:
//!
//! - [`EventLog::commit`](inlet_core::store::EventLog::commit) is one `BEGIN IMMEDIATE` transaction: the idempotency check and
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
//! Every write goes through one writer thread (`crate::writer`: group commit, one fsync
//! per batch); reads use a connection of their own (WAL: they never wait for the
//! writer). Its rooms: `schema.rs` (the schema and what opening an older file brings
//! up to date), `events.rs` (the commit and the event log), `idempotency.rs`,
//! `outbox.rs`, `tokens.rs`; the directory is `crate::directory`.

mod events;
mod idempotency;
mod outbox;
mod schema;
mod tokens;

pub(crate) use crate::connection::Cached;
use crate::connection::{Handle, connect, store_error};
use crate::writer::Writer;
use inlet_core::config::Catalog;
use inlet_core::store::StoreError;
use inlet_core::tokens::TokenStore;
use rusqlite::{Connection, OptionalExtension};
use schema::{migrate, resolve_abandoned_claims};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

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
        migrate(&conn)?;
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
