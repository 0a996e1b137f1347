//! The traits the pipeline stores through, and the records they speak.
//!
//! Each trait has a local implementation (SQLite, in the `inlet` crate) and an AWS one
//! (DynamoDB/SSM/Lambda, in `functions/aws`); a test-and-rehearsal implementation in
//! memory lives in [`crate::memory`]. Store errors say whether a retry may succeed:
//! [`StoreError::Unavailable`] becomes a 503 with `Retry-After` at the edge.

use crate::actions::ActionPlan;
use crate::catalog::ActionKind;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or is throttling; the same call may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered but the operation failed for good (corrupt row, bad schema).
    #[error("store error: {0}")]
    Failed(String),
}

/// What an idempotency record is scoped to: key + event type + source + environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyScope {
    pub source: String,
    pub environment: String,
    pub event_type: String,
    pub key: String,
}

impl IdempotencyScope {
    /// One string that identifies the scope (a primary key). Parts are length-prefixed
    /// so that no choice of key can collide with another scope.
    pub fn storage_key(&self) -> String {
        use std::fmt::Write;
        let parts = [&self.source, &self.environment, &self.event_type];
        let mut key = String::with_capacity(
            parts.iter().map(|p| p.len() + 6).sum::<usize>() + self.key.len(),
        );
        for part in parts {
            let _ = write!(key, "{}:", part.len());
            key.push_str(part);
            key.push('|');
        }
        key.push_str(&self.key);
        key
    }
}

/// Times and lifetimes of one claim, all in unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTimes {
    pub now_ms: i64,
    /// When a completed record stops deduplicating (claim time + window).
    pub expires_at_ms: i64,
    /// When an `in_progress` claim is considered abandoned (a crashed request).
    pub in_progress_until_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request owns the key now.
    Claimed,
    /// An earlier event with this key completed within the window.
    Duplicate { original_event_id: String },
    /// An earlier event with this key is still being processed.
    InFlight {
        original_event_id: String,
        retry_after_ms: i64,
    },
}

/// The idempotency state machine: absent → `in_progress` (claim) → `completed`, or back
/// to absent (release). A record whose `expires_at` is past, or an `in_progress` record
/// whose `in_progress_until` is past, counts as absent on every read and condition: TTL
/// deletion is lazy on every store Inlet supports.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError>;

    /// Marks the claim held by `event_id` completed. A no-op if the claim is not held.
    async fn complete(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Removes the `in_progress` claim held by `event_id`, so a retry can claim again.
    async fn release(&self, scope: &IdempotencyScope, event_id: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    InProgress,
    Completed,
}

impl ClaimState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClaimState::InProgress => "in_progress",
            ClaimState::Completed => "completed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "in_progress" => Some(ClaimState::InProgress),
            "completed" => Some(ClaimState::Completed),
            _ => None,
        }
    }
}

/// A stored idempotency record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub event_id: String,
    pub state: ClaimState,
    pub expires_at_ms: i64,
    pub in_progress_until_ms: i64,
}

impl IdempotencyRecord {
    /// What a new claim meets when this record exists: `None` if the record no longer
    /// counts (expired, or an abandoned `in_progress` claim) and may be overwritten.
    /// Stores that evaluate the condition themselves (DynamoDB) encode the same rule.
    pub fn blocks_claim(&self, now_ms: i64) -> Option<ClaimOutcome> {
        if self.expires_at_ms <= now_ms {
            return None;
        }
        match self.state {
            ClaimState::Completed => Some(ClaimOutcome::Duplicate {
                original_event_id: self.event_id.clone(),
            }),
            ClaimState::InProgress if self.in_progress_until_ms > now_ms => {
                Some(ClaimOutcome::InFlight {
                    original_event_id: self.event_id.clone(),
                    retry_after_ms: self.in_progress_until_ms - now_ms,
                })
            }
            ClaimState::InProgress => None,
        }
    }

    pub fn new_claim(event_id: &str, times: ClaimTimes) -> Self {
        IdempotencyRecord {
            event_id: event_id.to_string(),
            state: ClaimState::InProgress,
            expires_at_ms: times.expires_at_ms,
            in_progress_until_ms: times.in_progress_until_ms,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Accepted,
    Duplicate,
    Rejected,
    InvalidEventType,
    Error,
}

impl EventStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Accepted => "accepted",
            EventStatus::Duplicate => "duplicate",
            EventStatus::Rejected => "rejected",
            EventStatus::InvalidEventType => "invalid_event_type",
            EventStatus::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            EventStatus::Accepted,
            EventStatus::Duplicate,
            EventStatus::Rejected,
            EventStatus::InvalidEventType,
            EventStatus::Error,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// Whether verification was enforced and what the script said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerificationStatus {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "enforced:verified")]
    EnforcedVerified,
    #[serde(rename = "enforced:unverified")]
    EnforcedUnverified,
    #[serde(rename = "unenforced:verified")]
    UnenforcedVerified,
    #[serde(rename = "unenforced:unverified")]
    UnenforcedUnverified,
}

impl VerificationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VerificationStatus::None => "none",
            VerificationStatus::EnforcedVerified => "enforced:verified",
            VerificationStatus::EnforcedUnverified => "enforced:unverified",
            VerificationStatus::UnenforcedVerified => "unenforced:verified",
            VerificationStatus::UnenforcedUnverified => "unenforced:unverified",
        }
    }

    pub fn from_parts(enforced: bool, verified: bool) -> Self {
        match (enforced, verified) {
            (true, true) => VerificationStatus::EnforcedVerified,
            (true, false) => VerificationStatus::EnforcedUnverified,
            (false, true) => VerificationStatus::UnenforcedVerified,
            (false, false) => VerificationStatus::UnenforcedUnverified,
        }
    }
}

/// One received request as the event log keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// A UUIDv7: unique and ordered by receive time.
    pub id: String,
    pub source: String,
    pub environment: String,
    pub status: EventStatus,
    pub verification: VerificationStatus,
    pub event_type: Option<String>,
    pub received_at_ms: i64,
    /// From `timestamp_path`, else the receive time.
    pub occurred_at_ms: i64,
    pub idempotency_key: Option<String>,
    /// For duplicates: the event this one repeats.
    pub duplicate_of: Option<String>,
    pub method: String,
    pub query: String,
    /// Lower-cased names; secret values replaced by `[redacted]`.
    pub headers: Vec<(String, String)>,
    pub raw_body: String,
    pub preprocess: Option<Map<String, Value>>,
    pub script_console: Vec<String>,
    /// What went wrong (script error, dispatch error), for operators; never sent to the
    /// client.
    pub error: Option<String>,
    pub warnings: Vec<String>,
    pub actions: ActionPlan,
    /// Retention: the record may be deleted after this time.
    pub expires_at_ms: i64,
}

/// One row of the event-type registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventTypeStats {
    pub source: String,
    pub environment: String,
    pub event_type: String,
    pub count: u64,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub last_event_id: String,
    /// The raw body of the last event of this type.
    pub last_sample: String,
}

/// Where an action of the plan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Waiting for the executor (or for a retry).
    Planned,
    Succeeded,
    Skipped,
    Failed,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Skipped => "skipped",
            ActionStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            ActionStatus::Planned,
            ActionStatus::Succeeded,
            ActionStatus::Skipped,
            ActionStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One action log entry (DESIGN §6).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionLogEntry {
    pub index: usize,
    pub action: ActionKind,
    /// The mapping as configured.
    pub params: Arc<Value>,
    /// The values resolved from the event.
    pub payload: Value,
    pub status: ActionStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: u32,
    pub updated_at_ms: i64,
}

impl ActionLogEntry {
    /// The entry a planned action starts with: `planned`, or `skipped` with its reason.
    pub fn planned(action: &crate::actions::PlannedAction, at_ms: i64) -> Self {
        ActionLogEntry {
            index: action.index,
            action: action.action,
            params: action.params.clone(),
            payload: action.payload.clone(),
            status: if action.skipped.is_some() {
                ActionStatus::Skipped
            } else {
                ActionStatus::Planned
            },
            result: None,
            error: action.skipped.clone(),
            attempts: 0,
            updated_at_ms: at_ms,
        }
    }
}

/// A change to one action log entry, written by the executor.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionUpdate {
    pub index: usize,
    pub status: ActionStatus,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: u32,
    pub now_ms: i64,
}

/// Filters for listing events, newest first; `cursor` is the last id of the previous
/// page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventQuery {
    pub source: Option<String>,
    pub environment: Option<String>,
    pub event_type: Option<String>,
    pub status: Option<EventStatus>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub cursor: Option<String>,
    pub limit: usize,
}

impl EventQuery {
    pub fn matches(&self, e: &EventRecord) -> bool {
        self.source.as_ref().is_none_or(|s| *s == e.source)
            && self
                .environment
                .as_ref()
                .is_none_or(|s| *s == e.environment)
            && self
                .event_type
                .as_ref()
                .is_none_or(|t| Some(t) == e.event_type.as_ref())
            && self.status.is_none_or(|s| s == e.status)
            && self.since_ms.is_none_or(|t| e.received_at_ms >= t)
            && self.until_ms.is_none_or(|t| e.received_at_ms < t)
            && self
                .cursor
                .as_ref()
                .is_none_or(|c| e.id.as_str() < c.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventPage {
    /// Events without their action plans (see [`EventLog::action_log`]).
    pub events: Vec<EventRecord>,
    pub next_cursor: Option<String>,
}

impl EventPage {
    /// A page of the first `limit` of `events` (sorted newest first, possibly one or more
    /// beyond the limit to show that another page exists).
    pub fn first(mut events: Vec<EventRecord>, limit: usize) -> Self {
        let more = events.len() > limit;
        events.truncate(limit);
        let next_cursor = more.then(|| events.last().map(|e| e.id.clone())).flatten();
        EventPage {
            events,
            next_cursor,
        }
    }
}

/// The event log, action log and event-type registry.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Stores the event and its planned actions, and bumps the event-type registry for
    /// accepted and duplicate events. Implementations whose dispatch is a local outbox
    /// write the outbox row in the same transaction (see [`ActionDispatcher`]). The
    /// record is handed over, so no store has to copy it.
    async fn record(&self, event: EventRecord) -> Result<(), StoreError>;

    /// Marks a recorded event failed (e.g. its dispatch failed after it was stored).
    async fn mark_failed(&self, event_id: &str, error: &str) -> Result<(), StoreError>;

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError>;

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError>;

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The action log of one event, in plan order.
    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError>;

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError>;
}

/// Lists events of several sources (each listed on its own, which every store can do
/// with its index) and merges them newest first into one page.
pub async fn list_across(
    log: &dyn EventLog,
    sources: &[String],
    query: &EventQuery,
) -> Result<EventPage, StoreError> {
    let mut events: Vec<EventRecord> = Vec::new();
    for source in sources {
        let one = EventQuery {
            source: Some(source.clone()),
            ..query.clone()
        };
        events.extend(log.list(&one).await?.events);
    }
    events.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(EventPage::first(events, query.limit))
}

/// Hands an accepted event's action plan to the executor, durably: once `dispatch`
/// returns `Ok`, the actions will run at least once. On AWS this is an async invoke of
/// the actions function; locally the outbox row was already written by
/// [`EventLog::record`] in the event's transaction, and dispatch wakes the worker.
#[async_trait]
pub trait ActionDispatcher: Send + Sync {
    async fn dispatch(&self, event_id: &str) -> Result<(), StoreError>;
}

/// A new random webhook token: 192 bits from the OS, hex-encoded (48 characters).
pub fn new_webhook_token() -> Result<String, StoreError> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| StoreError::Failed(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keys_do_not_collide() {
        let a = IdempotencyScope {
            source: "a|b".into(),
            environment: "e".into(),
            event_type: "t".into(),
            key: "k".into(),
        };
        let b = IdempotencyScope {
            source: "a".into(),
            environment: "b|e".into(),
            event_type: "t".into(),
            key: "k".into(),
        };
        assert_ne!(a.storage_key(), b.storage_key());
        // Stored keys must not change between versions.
        assert_eq!(a.storage_key(), "3:a|b|1:e|1:t|k");
    }
}
