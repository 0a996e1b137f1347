//! The traits the pipeline stores through, and the records they speak.
//!
//! Each trait has a local implementation (SQLite, in the `inlet` crate) and an AWS one
//! (DynamoDB, in `functions/aws`); a test-and-dry-run implementation in memory lives in
//! [`crate::memory`]. One contract test suite runs against all of them.
//!
//! # One commit per event
//!
//! Everything the ingest pipeline writes for a request is one call, [`EventLog::commit`]:
//! the idempotency record, the event with its action plan, the event-type registry and
//! the hand-off to the action executor (a row of the local outbox, drained by a worker;
//! on AWS the event item's stream record, which triggers the actions function). What
//! every store promises of it:
//!
//! - `Ok` means the event is stored and, if accepted with runnable actions, queued;
//! - a failed commit never leaves the scope held by an event that is not stored and
//!   will not be, and never lets a second event be accepted for one scope;
//! - a commit that stopped part-way (a crash, a lost answer) leaves either nothing the
//!   next commit of the scope relies on, or the whole event, which the next commit of
//!   the scope is a duplicate of.
//!
//! SQLite and memory stores make the commit one transaction, so a crash at any point
//! left nothing or everything. DynamoDB makes it a few conditional single-item writes
//! (a transaction costs twice the write units); `inlet_aws::events` says what each
//! step leaves if the process stops after it, and the fault matrix of the AWS tests
//! holds it to that. There is never an "in progress" state a sender has to wait out.
//!
//! Store errors say whether a retry may succeed: [`StoreError::Unavailable`] becomes a
//! 503 with `Retry-After` at the edge, [`StoreError::Failed`] a 500 (retrying the same
//! request will not help, so the sender is not told to).

use crate::actions::ActionPlan;
use crate::catalog::ActionKind;
pub use crate::status::{ActionStatus, EventStatus, VerificationStatus};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached or is throttling; the same call may succeed later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store answered but the operation failed for good (corrupt row, bad schema, an
    /// item over the store's size limits).
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

impl IdempotencyScope {
    /// The scope of the replays of `original` asked with `request_key` (the caller's
    /// key for one replay request; see `Pipeline::replay`).
    pub fn replay(original: &EventRecord, request_key: &str) -> Self {
        IdempotencyScope {
            source: original.source.clone(),
            environment: original.environment.clone(),
            event_type: format!("replay of {}", original.id),
            key: request_key.to_string(),
        }
    }
}

/// The idempotency record an accepted event makes in its commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyClaim {
    pub scope: IdempotencyScope,
    /// The time stored expiries are compared with.
    pub now_ms: i64,
    /// When the record stops de-duplicating (receive time + the source's window).
    pub expires_at_ms: i64,
}

/// A stored idempotency record: `event_id` holds the scope until `expires_at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub event_id: String,
    pub expires_at_ms: i64,
}

impl IdempotencyRecord {
    /// Whether the record still de-duplicates at `now_ms`. Stores delete expired records
    /// lazily (DynamoDB's TTL within days, SQLite's purge hourly), so every read and
    /// every commit condition compares the stored expiry with now.
    pub fn holds(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }
}

/// The read side of idempotency: which event holds a scope. Writes happen only inside
/// [`EventLog::commit`], as part of the event's commit.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The record holding `scope` at `now_ms`, i.e. the event a commit with this scope
    /// would be a duplicate of; `None` when there is none or it expired.
    async fn holder(
        &self,
        scope: &IdempotencyScope,
        now_ms: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;
}

/// A commit that stored nothing: why, and the event handed back, so that the caller
/// can store what it can (see the pipeline's handling of permanent failures).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct CommitError {
    pub error: StoreError,
    pub event: Box<EventRecord>,
}

impl CommitError {
    pub fn new(error: StoreError, event: EventRecord) -> Self {
        CommitError {
            error,
            event: Box::new(event),
        }
    }
}

/// A new event id: a UUIDv7, so ids sort by time (listings page by id).
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What [`EventLog::commit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// The event is stored; an accepted one with runnable actions is queued.
    /// `event_id` is the event's own id, except where a store completes an earlier
    /// delivery's commit that stopped after claiming the key (DynamoDB): the event is
    /// then stored under the id that delivery claimed it for.
    Stored { event_id: String },
    /// Another event holds the idempotency scope: this one was stored as its duplicate
    /// (status `duplicate`, `duplicate_of` set, no actions, not queued).
    Duplicate { original_event_id: String },
}

/// An event as the action worker reads it: the record (`None` when it no longer
/// exists) with its action log.
pub type EventWithLog = (Option<EventRecord>, Vec<ActionLogEntry>);

/// What [`EventLog::commit`] answers.
pub type CommitResult = Result<Committed, CommitError>;

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
    /// For replays: the stored event this one re-ran through the current config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
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

impl EventRecord {
    /// A request as it arrives, before anything is judged of it: a new id, accepted so
    /// far, unverified, occurred when received, an empty `POST` with no type, plan,
    /// output or warnings; kept until `expires_at_ms`. The pipeline fills in the request
    /// and its verdicts.
    pub fn received(
        source: &str,
        environment: &str,
        received_at_ms: i64,
        expires_at_ms: i64,
    ) -> Self {
        EventRecord {
            id: new_event_id(),
            source: source.to_string(),
            environment: environment.to_string(),
            status: EventStatus::Accepted,
            verification: VerificationStatus::None,
            event_type: None,
            received_at_ms,
            occurred_at_ms: received_at_ms,
            idempotency_key: None,
            duplicate_of: None,
            replay_of: None,
            method: "POST".into(),
            query: String::new(),
            headers: Vec::new(),
            raw_body: String::new(),
            preprocess: None,
            script_console: Vec::new(),
            error: None,
            warnings: Vec::new(),
            actions: Vec::new(),
            expires_at_ms,
        }
    }

    /// The actions that will run (those not skipped).
    pub fn runnable_actions(&self) -> usize {
        self.actions.iter().filter(|a| a.skipped.is_none()).count()
    }

    /// Whether committing this event hands it to the action executor: accepted, with at
    /// least one action to run.
    pub fn is_queued(&self) -> bool {
        self.status == EventStatus::Accepted && self.runnable_actions() > 0
    }

    /// This event as a duplicate of `original_event_id`, the way a commit that finds the
    /// idempotency scope held stores it: logged, with no actions.
    pub fn into_duplicate(mut self, original_event_id: &str) -> Self {
        self.status = EventStatus::Duplicate;
        self.duplicate_of = Some(original_event_id.to_string());
        self.actions.clear();
        self
    }

    /// This event as the log keeps one that could not be stored as it was: status
    /// `error` with the reason, without its action plan (what makes an event too large
    /// for a store is almost always its plan's payloads), under a new id. Not under its
    /// own: a store whose commit is several writes (DynamoDB) may have claimed the
    /// event's idempotency key for that id, and an `error` event stored under it would
    /// make every retry a duplicate of an event whose actions never run.
    pub fn into_error(mut self, reason: String) -> Self {
        self.id = new_event_id();
        self.status = EventStatus::Error;
        self.error = Some(reason);
        self.actions.clear();
        self
    }

    /// Whether the event-type registry counts this event: accepted events with a type.
    /// A duplicate is the same event again, so it is not counted (nor its sample kept).
    pub fn counts_in_registry(&self) -> Option<&str> {
        match self.status {
            EventStatus::Accepted => self.event_type.as_deref(),
            _ => None,
        }
    }
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

/// One action log entry.
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

impl ActionLogEntry {
    /// The planned action this entry logs, as the plan had it ([`Self::planned`]'s
    /// inverse: a `skipped` entry is the skipped action, with its reason).
    pub fn planned_action(&self) -> crate::actions::PlannedAction {
        crate::actions::PlannedAction {
            index: self.index,
            action: self.action,
            params: self.params.clone(),
            payload: self.payload.clone(),
            skipped: (self.status == ActionStatus::Skipped)
                .then(|| self.error.clone().unwrap_or_default()),
        }
    }

    /// The entry's state as the executor's update that wrote it.
    pub fn as_update(&self) -> ActionUpdate {
        ActionUpdate {
            index: self.index,
            status: self.status,
            result: self.result.clone(),
            error: self.error.clone(),
            attempts: self.attempts,
            now_ms: self.updated_at_ms,
        }
    }

    /// The entry after an executor update.
    pub fn apply(&mut self, update: &ActionUpdate) {
        self.status = update.status;
        self.result = update.result.clone();
        self.error = update.error.clone();
        self.attempts = update.attempts;
        self.updated_at_ms = update.now_ms;
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
    /// Stores one received event in one commit (its promise is in the module docs),
    /// handing the record over so no store has to copy it:
    ///
    /// - with `claim` (an accepted event with an idempotency key): if an unexpired record
    ///   of the scope exists, the event is stored as its duplicate
    ///   ([`EventRecord::into_duplicate`]) and [`Committed::Duplicate`] is returned;
    ///   otherwise the record is written (replacing an expired one), held by this event;
    /// - the event is stored with its action plan; an event that
    ///   [`EventRecord::is_queued`] is handed to the action executor;
    /// - the event-type registry counts accepted events (approximately on DynamoDB).
    ///
    /// On error the event is handed back; nothing of it holds the scope (a store of
    /// several writes may have stored the event itself when the answer to its write was
    /// lost: the next commit of the scope is then its duplicate).
    async fn commit(&self, event: EventRecord, claim: Option<&IdempotencyClaim>) -> CommitResult;

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError>;

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError>;

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError>;

    /// The action log of one event, in plan order.
    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError>;

    /// Each of `event_ids` with its action log (an empty log when the event does not
    /// exist), in the order asked: what the action worker needs for a round. Stores that
    /// can read them in one go override it.
    async fn get_with_logs(&self, event_ids: &[String]) -> Result<Vec<EventWithLog>, StoreError> {
        let mut found = Vec::with_capacity(event_ids.len());
        for event_id in event_ids {
            let event = self.get(event_id).await?;
            let log = match &event {
                Some(event) => self.action_log(&event.id).await?,
                None => Vec::new(),
            };
            found.push((event, log));
        }
        Ok(found)
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError>;

    /// How many of each event's actions are planned, succeeded, failed and skipped, in
    /// the order asked (what a listing shows beside each event; a listing's events carry
    /// no plan). Reads each event's action log; a store may count in one go.
    async fn action_counts(&self, event_ids: &[String]) -> Result<Vec<ActionCounts>, StoreError> {
        let mut counts = Vec::with_capacity(event_ids.len());
        for event_id in event_ids {
            counts.push(ActionCounts::of(&self.action_log(event_id).await?));
        }
        Ok(counts)
    }
}

/// One event's actions by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionCounts {
    pub planned: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl ActionCounts {
    pub fn of(log: &[ActionLogEntry]) -> Self {
        let mut counts = ActionCounts::default();
        for entry in log {
            match entry.status {
                ActionStatus::Planned => counts.planned += 1,
                ActionStatus::Succeeded => counts.succeeded += 1,
                ActionStatus::Failed => counts.failed += 1,
                ActionStatus::Skipped => counts.skipped += 1,
            }
        }
        counts
    }
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

/// An event waiting in the local outbox for its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub event_id: String,
    /// Runs of the plan so far.
    pub attempts: u32,
}

/// The local hand-off to the action executor: [`EventLog::commit`] writes a row for each
/// queued event in the event's own transaction; the worker ([`crate::outbox`]) drains
/// it. On AWS the events table's stream plays this part.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Pending rows whose next attempt is due, oldest first.
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;

    /// Schedules another run of `item`'s plan at `at_ms`: the row records `item.attempts`
    /// runs so far and the error that ended the last.
    async fn retry_at(&self, item: &OutboxItem, at_ms: i64, error: &str) -> Result<(), StoreError>;

    /// Closes a row: done, or dead with the error that stopped it.
    async fn finish(&self, event_id: &str, error: Option<&str>) -> Result<(), StoreError>;
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
    fn each_status_has_one_name_for_serde_storage_and_display() {
        for (status, name) in [
            (EventStatus::InvalidEventType, "invalid_event_type"),
            (EventStatus::Accepted, "accepted"),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(serde_json::to_value(status).unwrap(), name);
            assert_eq!(EventStatus::parse(name), Some(status));
            assert_eq!(
                serde_json::from_value::<EventStatus>(name.into()).unwrap(),
                status
            );
        }
        let verified = VerificationStatus::UnenforcedVerified;
        assert_eq!(verified.as_str(), "unenforced:verified");
        assert_eq!(
            serde_json::to_value(verified).unwrap(),
            "unenforced:verified"
        );
        assert_eq!(ActionStatus::Skipped.as_str(), "skipped");
        assert_eq!(
            serde_json::to_value(ActionStatus::Skipped).unwrap(),
            "skipped"
        );
        assert!(serde_json::from_value::<ActionStatus>("done".into()).is_err());
        assert_eq!(EventStatus::parse("Accepted"), None);
    }

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
