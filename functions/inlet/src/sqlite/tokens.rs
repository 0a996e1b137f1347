//! Webhook tokens in the file: the [`TokenStore`] contract (`tests/tests/tokens_contract.rs`).

use super::{SqliteStore, TokenEntry};
use async_trait::async_trait;
use inlet_core::store::StoreError;
use inlet_core::tokens::{Rotation, TokenStore};
use rusqlite::{Connection, params};

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

    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Vec<TokenEntry>, StoreError> {
        let (source, environment) = (
            rotation.source.to_string(),
            rotation.environment.to_string(),
        );
        let (now_ms, retires_at) = (rotation.now_ms, rotation.retires_at_ms());
        let fresh = inlet_core::store::new_webhook_token()?;
        self.writer
            .write(move |conn| {
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
