//! The outbox: the durable hand-off of committed events to the action worker.

use super::SqliteStore;
use async_trait::async_trait;
use inlet_core::store::{Outbox, OutboxItem, StoreError};
use rusqlite::params;

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

    async fn retry_at(&self, item: &OutboxItem, at_ms: i64, error: &str) -> Result<(), StoreError> {
        let (event_id, attempts, error) = (item.event_id.clone(), item.attempts, error.to_string());
        self.writer.queue_early("scheduling an event's retry", move |conn| {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = ?2, next_attempt_at_ms = ?3, last_error = ?4 WHERE event_id = ?1",
            )?
            .execute(params![event_id, attempts as i64, at_ms, error])
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

#[async_trait]
impl inlet_admin::OutboxView for SqliteStore {
    async fn outbox(&self, event_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        Ok(self.outbox_state(event_id).await?.map(|(state, attempts, error)| {
            serde_json::json!({"state": state, "attempts": attempts, "last_error": error})
        }))
    }
}
