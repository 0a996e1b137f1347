//! Webhook tokens: the secret part of each source environment's URL
//! (`/receive/<token>`). One trait, [`TokenStore`], with an implementation per platform
//! (the SQLite file of `inlet dev`, the config table of a stack) and one contract suite
//! (`tests/tests/tokens_contract.rs`) that runs against both.
//!
//! A pair (source, environment) has one **current** token and, for a while after a
//! rotation, **retiring** ones that still work until their time. A token is 192 random
//! bits ([`crate::store::new_webhook_token`]), created where a pair has no current one.

use crate::pipeline::TokenEntry;
use crate::store::StoreError;

#[async_trait::async_trait]
pub trait TokenStore: Send + Sync {
    /// Every token still working at `now_ms` (current and retiring), sorted by source,
    /// environment and creation (a pair's current token last).
    async fn active(&self, now_ms: i64) -> Result<Vec<TokenEntry>, StoreError>;

    /// Gives each (source, environment) of `pairs` that has no current token a new one;
    /// returns how many it created (none when asked again).
    async fn ensure(&self, pairs: &[(String, String)], now_ms: i64) -> Result<usize, StoreError>;

    /// A new current token for the rotation's pair; its working tokens retire at
    /// `now_ms + overlap_ms` (one already retiring earlier keeps its time). Returns the
    /// pair's working tokens, the new one last. The new token is written first, so a
    /// rotation cut short leaves one token too many, never a pair without a working one.
    async fn rotate(&self, rotation: Rotation<'_>) -> Result<Vec<TokenEntry>, StoreError>;
}

/// A token rotation of one (source, environment) pair, asked at `now_ms`.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub source: &'a str,
    pub environment: &'a str,
    pub now_ms: i64,
    /// How long the pair's tokens before this one keep working.
    pub overlap_ms: i64,
}

impl Rotation<'_> {
    /// When the pair's earlier tokens stop working.
    pub fn retires_at_ms(&self) -> i64 {
        self.now_ms + self.overlap_ms
    }
}
