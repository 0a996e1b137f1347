//! In-memory implementations of the store traits.
//!
//! They keep the same semantics as the SQLite and DynamoDB stores (the contract tests run
//! against all of them) and serve where nothing must persist: unit tests, the pipeline
//! benchmark, and dry runs. They are not a production store: nothing survives the process.

use crate::store::{
    ActionLogEntry, ActionUpdate, CommitError, CommitResult, Committed, EventLog, EventPage,
    EventQuery, EventRecord, EventTypeStats, IdempotencyClaim, IdempotencyRecord, IdempotencyScope,
    IdempotencyStore, Outbox, OutboxItem, StoreError,
};
use crate::vars::{Vars, VarsError, VarsProvider};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// Everything behind one lock, so that a commit is atomic like a transaction.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    outbox_wakeup: Arc<Notify>,
}

#[derive(Debug, Default)]
struct MemoryState {
    claims: HashMap<String, IdempotencyRecord>,
    log: EventsInMemory,
    /// Event id → its outbox row.
    outbox: BTreeMap<String, OutboxRow>,
}

#[derive(Debug, Clone)]
struct OutboxRow {
    done: bool,
    error: Option<String>,
    attempts: u32,
    next_attempt_at_ms: i64,
}

/// The event log, kept lean: each event is stored once, and what derives from it (its
/// action log entries, the registry's last sample) is built when read.
#[derive(Debug, Default)]
struct EventsInMemory {
    events: Vec<EventRecord>,
    by_id: HashMap<String, usize>,
    /// Executor updates by (event position, action index), over the planned entries.
    updates: HashMap<(usize, usize), ActionUpdate>,
    /// source → environment → event type → counts.
    types: HashMap<String, HashMap<String, HashMap<String, TypeCount>>>,
}

#[derive(Debug, Clone, Copy)]
struct TypeCount {
    count: u64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_event: usize,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, MemoryState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every event, in commit order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.state().log.events.clone()
    }

    /// Ids of the events queued for the action executor, in commit order, with whether
    /// their row is closed.
    pub fn queued(&self) -> Vec<(String, bool)> {
        let state = self.state();
        let mut rows: Vec<(usize, String, bool)> = state
            .outbox
            .iter()
            .map(|(id, row)| (state.log.by_id[id], id.clone(), row.done))
            .collect();
        rows.sort();
        rows.into_iter().map(|(_, id, done)| (id, done)).collect()
    }

    /// Signalled after each commit that queued an event.
    pub fn outbox_wakeup(&self) -> Arc<Notify> {
        self.outbox_wakeup.clone()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn holder(
        &self,
        scope: &IdempotencyScope,
        now_ms: i64,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self
            .state()
            .claims
            .get(&scope.storage_key())
            .filter(|r| r.holds(now_ms))
            .cloned())
    }
}

/// The value under `key`, inserted if missing; unlike `entry`, a hit allocates no key.
fn slot<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl EventsInMemory {
    fn insert(&mut self, event: EventRecord) {
        let position = self.events.len();
        self.by_id.insert(event.id.clone(), position);
        if let Some(event_type) = event.counts_in_registry() {
            let per_source = slot(&mut self.types, &event.source);
            let per_type = slot(per_source, &event.environment);
            match per_type.get_mut(event_type) {
                Some(stats) => {
                    stats.count += 1;
                    stats.last_seen_ms = event.received_at_ms;
                    stats.last_event = position;
                }
                None => {
                    per_type.insert(
                        event_type.to_string(),
                        TypeCount {
                            count: 1,
                            first_seen_ms: event.received_at_ms,
                            last_seen_ms: event.received_at_ms,
                            last_event: position,
                        },
                    );
                }
            }
        }
        self.events.push(event);
    }
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn commit(
        &self,
        mut event: EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> CommitResult {
        let mut state = self.state();
        if state.log.by_id.contains_key(&event.id) {
            let error = StoreError::Failed(format!("event {} is already stored", event.id));
            return Err(CommitError::new(error, event));
        }
        let mut committed = Committed::Stored {
            event_id: event.id.clone(),
        };
        if let Some(claim) = claim {
            let key = claim.scope.storage_key();
            match state.claims.get(&key).filter(|r| r.holds(claim.now_ms)) {
                Some(held) => {
                    let original = held.event_id.clone();
                    event = event.into_duplicate(&original);
                    committed = Committed::Duplicate {
                        original_event_id: original,
                    };
                }
                None => {
                    state.claims.insert(
                        key,
                        IdempotencyRecord {
                            event_id: event.id.clone(),
                            expires_at_ms: claim.expires_at_ms,
                        },
                    );
                }
            }
        }
        let queued = event.is_queued();
        if queued {
            state.outbox.insert(
                event.id.clone(),
                OutboxRow {
                    done: false,
                    error: None,
                    attempts: 0,
                    next_attempt_at_ms: event.received_at_ms,
                },
            );
        }
        state.log.insert(event);
        drop(state);
        if queued {
            self.outbox_wakeup.notify_one();
        }
        Ok(committed)
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let state = self.state();
        let log = &state.log;
        Ok(log.by_id.get(event_id).map(|&p| log.events[p].clone()))
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let state = self.state();
        let log = &state.log;
        let Some(per_type) = log.types.get(source).and_then(|e| e.get(environment)) else {
            return Ok(Vec::new());
        };
        let mut out: Vec<EventTypeStats> = per_type
            .iter()
            .map(|(event_type, c)| {
                let last = &log.events[c.last_event];
                EventTypeStats {
                    source: source.to_string(),
                    environment: environment.to_string(),
                    event_type: event_type.clone(),
                    count: c.count,
                    first_seen_ms: c.first_seen_ms,
                    last_seen_ms: c.last_seen_ms,
                    last_event_id: last.id.clone(),
                    last_sample: last.raw_body.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        Ok(out)
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let mut events: Vec<EventRecord> = self
            .state()
            .log
            .events
            .iter()
            .filter(|e| query.matches(e))
            .map(|e| EventRecord {
                actions: Vec::new(),
                ..e.clone()
            })
            .collect();
        events.sort_by(|a, b| b.id.cmp(&a.id));
        Ok(EventPage::first(events, query.limit))
    }

    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        let state = self.state();
        let log = &state.log;
        let Some(&position) = log.by_id.get(event_id) else {
            return Ok(Vec::new());
        };
        let event = &log.events[position];
        Ok(event
            .actions
            .iter()
            .map(|a| {
                let mut entry = ActionLogEntry::planned(a, event.received_at_ms);
                if let Some(u) = log.updates.get(&(position, a.index)) {
                    entry.apply(u);
                }
                entry
            })
            .collect())
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let mut state = self.state();
        let log = &mut state.log;
        let position = log
            .by_id
            .get(event_id)
            .copied()
            .filter(|&p| {
                log.events[p]
                    .actions
                    .iter()
                    .any(|a| a.index == update.index)
            })
            .ok_or_else(|| {
                StoreError::Failed(format!("no action {} on event {event_id}", update.index))
            })?;
        log.updates.insert((position, update.index), update.clone());
        Ok(())
    }
}

#[async_trait]
impl Outbox for MemoryStore {
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let state = self.state();
        let mut due: Vec<(i64, usize, OutboxItem)> = state
            .outbox
            .iter()
            .filter(|(_, row)| !row.done && row.next_attempt_at_ms <= now_ms)
            .map(|(id, row)| {
                (
                    row.next_attempt_at_ms,
                    state.log.by_id[id],
                    OutboxItem {
                        event_id: id.clone(),
                        attempts: row.attempts,
                    },
                )
            })
            .collect();
        due.sort_by_key(|(at, position, _)| (*at, *position));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(_, _, item)| item)
            .collect())
    }

    async fn retry_at(&self, item: &OutboxItem, at_ms: i64, error: &str) -> Result<(), StoreError> {
        if let Some(row) = self.state().outbox.get_mut(&item.event_id) {
            row.attempts = item.attempts;
            row.next_attempt_at_ms = at_ms;
            row.error = Some(error.to_string());
        }
        Ok(())
    }

    async fn finish(&self, event_id: &str, error: Option<&str>) -> Result<(), StoreError> {
        if let Some(row) = self.state().outbox.get_mut(event_id) {
            row.done = true;
            row.error = error.map(str::to_string);
        }
        Ok(())
    }
}

/// Fixed vars, the same for every environment.
#[derive(Debug, Default, Clone)]
pub struct StaticVars(pub Arc<Vars>);

#[async_trait]
impl VarsProvider for StaticVars {
    async fn vars(&self, _environment: &str) -> Result<Arc<Vars>, VarsError> {
        Ok(self.0.clone())
    }
}
