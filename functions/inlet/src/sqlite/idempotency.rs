//! Reads of the idempotency records each event's commit writes.

use super::SqliteStore;
use async_trait::async_trait;
use inlet_core::store::{IdempotencyRecord, IdempotencyScope, IdempotencyStore, StoreError};
use rusqlite::{Connection, OptionalExtension, params};

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
pub(super) fn holder(
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
