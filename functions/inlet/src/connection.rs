//! The SQLite connection as the store uses it: opened with the store's settings (WAL,
//! `synchronous=FULL`, savepoint journals in memory, a statement cache for the hot
//! paths), errors sorted into those a retry may get past and the rest, and a handle
//! that opens the file again after an error only a new connection recovers from. The
//! reader ([`crate::sqlite`]) and the writer thread ([`crate::writer`]) each hold one.

use inlet_core::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

/// Errors that may pass: a busy or locked file, a full disk, an I/O error, a file that
/// cannot be opened or written (its permissions may be fixed) — a retry may succeed.
pub(crate) fn store_error(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(
            DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen | OutOfMemory
            | ReadOnly | PermissionDenied,
        ) => StoreError::Unavailable(e.to_string()),
        _ => StoreError::Failed(e.to_string()),
    }
}

/// Errors after which the connection is opened again: SQLite decides at open whether a
/// file is writable, so a connection opened while the file was read-only stays
/// read-only after its permissions are fixed.
pub(crate) fn needs_reopen(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(ReadOnly | CannotOpen | PermissionDenied | SystemIoFailure)
    )
}

/// Statements through the connection's prepared-statement cache: the hot paths run the
/// same few statements for every event, and parsing them each time showed in profiles.
pub(crate) trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }
    fn row<T, P, F>(&self, sql: &str, params: P, map: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, map)
    }
}

/// Opens the file with the store's settings (WAL, `synchronous=FULL`).
pub(crate) fn connect(path: &Path, busy_timeout: Duration) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // The writer runs each write of a batch in a savepoint, whose journal of the pages
    // it changed is a temporary file by default: a write syscall per page, the largest
    // cost in profiles. In memory it is a copy.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Room for every statement of the hot paths (the default keeps 16).
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// The connection, and whether it must be opened again before its next use: after an
/// error a new connection may not have (see `needs_reopen`), the next call reopens the
/// file first, so it sees the file as it is then.
pub(crate) struct Handle {
    conn: Connection,
    stale: bool,
}

impl Handle {
    pub(crate) fn new(conn: Connection) -> Self {
        Handle { conn, stale: false }
    }

    pub(crate) fn mark_stale(&mut self) {
        self.stale = true;
    }

    /// The connection to use now, opened again first if the last call left it stale.
    pub(crate) fn ready(&mut self, path: &Path, busy_timeout: Duration) -> &mut Connection {
        if self.stale {
            match connect(path, busy_timeout) {
                Ok(fresh) => {
                    tracing::info!("the store's file was opened again");
                    self.conn = fresh;
                    self.stale = false;
                }
                Err(e) => tracing::warn!(error = %e, "the store's file cannot be opened again yet"),
            }
        }
        &mut self.conn
    }

    pub(crate) fn failed(&mut self, error: &rusqlite::Error) {
        if needs_reopen(error) {
            self.stale = true;
        }
    }
}
