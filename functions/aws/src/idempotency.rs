//! Idempotency records on DynamoDB: one item per scope in the idempotency table,
//! written only by the event's commit (a conditional `PutItem` before the event's own,
//! see [`crate::events`]) and read here. A record holds its scope only once the event it
//! names is stored (a commit that stopped between the two writes leaves a record whose
//! event the next delivery stores). DynamoDB deletes expired items lazily (within days,
//! and emulators never), so reads and the commit's condition compare the stored expiry
//! with now themselves.

use crate::error::store_error;
use crate::item::{Item, get_n, get_s, n, s, ttl};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use inlet_core::store::{IdempotencyRecord, IdempotencyScope, IdempotencyStore, StoreError};

/// The commit's condition on the scope's record: absent, expired, or an `in_progress`
/// claim an earlier version of Inlet left (this version writes records `completed`,
/// with the claim itself, before the event's own write: see [`crate::events`]). Uses
/// `#status`, `:now` and `:completed`.
pub const SCOPE_IS_FREE: &str =
    "attribute_not_exists(pk) OR expires_at_ms <= :now OR #status <> :completed";

pub struct DynamoIdempotency {
    pub client: Client,
    pub table: String,
    /// The events table, where the event a record names must be stored.
    pub events_table: String,
}

impl DynamoIdempotency {
    /// The idempotency records of a stack's tables.
    pub fn new(client: Client, names: &crate::StackNames) -> Self {
        DynamoIdempotency {
            client,
            table: names.idempotency_table.clone(),
            events_table: names.events_table.clone(),
        }
    }
}

/// The record an item holds, if it holds its scope at `now_ms` (written `completed` and
/// not expired; `in_progress` items a format 1 release left do not); an error for an
/// item of a newer format ([`crate::format`]).
pub(crate) fn holder_of(item: &Item, now_ms: i64) -> Result<Option<IdempotencyRecord>, StoreError> {
    crate::format::version_of(item, "an idempotency record")?;
    if get_s(item, "status").ok() != Some("completed") {
        return Ok(None);
    }
    let record = IdempotencyRecord {
        event_id: get_s(item, "event_id")?.to_string(),
        expires_at_ms: get_n(item, "expires_at_ms")?,
    };
    Ok(record.holds(now_ms).then_some(record))
}

/// The item of a record held by `event_id` until `expires_at_ms`.
pub(crate) fn record_item(scope: &IdempotencyScope, event_id: &str, expires_at_ms: i64) -> Item {
    Item::from([
        ("pk".to_string(), s(scope.storage_key())),
        ("sk".to_string(), s("CLAIM")),
        ("event_id".to_string(), s(event_id)),
        ("status".to_string(), s("completed")),
        ("expires_at_ms".to_string(), n(expires_at_ms)),
        ("expires_at".to_string(), ttl(expires_at_ms)),
        crate::format::stamp(),
    ])
}

#[async_trait]
impl IdempotencyStore for DynamoIdempotency {
    async fn holder(
        &self,
        scope: &IdempotencyScope,
        now_ms: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(scope.storage_key()))
            .key("sk", s("CLAIM"))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("idempotency read", e))?
            .item;
        let Some(item) = item else {
            return Ok(None);
        };
        let Some(record) = holder_of(&item, now_ms)? else {
            return Ok(None);
        };
        let stored =
            crate::event_key::is_stored(&self.client, &self.events_table, &record.event_id).await?;
        Ok(stored.then_some(record))
    }
}
