//! In-memory implementations of the store traits.
//!
//! They keep the same semantics as the SQLite and DynamoDB stores (the contract tests run
//! against all of them) and serve where nothing must persist: unit tests, the pipeline
//! benchmark, and dry runs. They are not a production store: nothing survives the process.

use crate::store::{
    ActionDispatcher, ActionLogEntry, ActionUpdate, ClaimOutcome, ClaimState, ClaimTimes, EventLog,
    EventPage, EventQuery, EventRecord, EventStatus, EventTypeStats, IdempotencyRecord,
    IdempotencyScope, IdempotencyStore, StoreError,
};
use crate::vars::{Vars, VarsError, VarsProvider};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct MemoryStore {
    claims: Mutex<HashMap<String, IdempotencyRecord>>,
    log: Mutex<EventsInMemory>,
    dispatched: Mutex<Vec<String>>,
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

    /// Ids of the events handed to [`ActionDispatcher::dispatch`], in order.
    pub fn dispatched(&self) -> Vec<String> {
        self.dispatched.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        self.log.lock().unwrap().events.clone()
    }

    pub fn claim_record(&self, scope: &IdempotencyScope) -> Option<IdempotencyRecord> {
        self.claims
            .lock()
            .unwrap()
            .get(&scope.storage_key())
            .cloned()
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        times: ClaimTimes,
    ) -> Result<ClaimOutcome, StoreError> {
        let mut claims = self.claims.lock().unwrap();
        let key = scope.storage_key();
        if let Some(blocked) = claims.get(&key).and_then(|r| r.blocks_claim(times.now_ms)) {
            return Ok(blocked);
        }
        claims.insert(key, IdempotencyRecord::new_claim(event_id, times));
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete(
        &self,
        scope: &IdempotencyScope,
        event_id: &str,
        _now_ms: i64,
    ) -> Result<(), StoreError> {
        if let Some(record) = self.claims.lock().unwrap().get_mut(&scope.storage_key())
            && record.event_id == event_id
        {
            record.state = ClaimState::Completed;
        }
        Ok(())
    }

    async fn release(&self, scope: &IdempotencyScope, event_id: &str) -> Result<(), StoreError> {
        let mut claims = self.claims.lock().unwrap();
        let key = scope.storage_key();
        if claims
            .get(&key)
            .is_some_and(|r| r.event_id == event_id && r.state == ClaimState::InProgress)
        {
            claims.remove(&key);
        }
        Ok(())
    }
}

/// The value under `key`, inserted if missing; unlike `entry`, a hit allocates no key.
fn slot<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

#[async_trait]
impl EventLog for MemoryStore {
    async fn record(&self, event: EventRecord) -> Result<(), StoreError> {
        let mut log = self.log.lock().unwrap();
        let position = log.events.len();
        log.by_id.insert(event.id.clone(), position);
        if let (Some(event_type), EventStatus::Accepted | EventStatus::Duplicate) =
            (&event.event_type, event.status)
        {
            let per_source = slot(&mut log.types, &event.source);
            let per_type = slot(per_source, &event.environment);
            match per_type.get_mut(event_type.as_str()) {
                Some(stats) => {
                    stats.count += 1;
                    stats.last_seen_ms = event.received_at_ms;
                    stats.last_event = position;
                }
                None => {
                    per_type.insert(
                        event_type.clone(),
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
        log.events.push(event);
        Ok(())
    }

    async fn mark_failed(&self, event_id: &str, error: &str) -> Result<(), StoreError> {
        let mut log = self.log.lock().unwrap();
        if let Some(&position) = log.by_id.get(event_id) {
            let event = &mut log.events[position];
            event.status = EventStatus::Error;
            event.error = Some(error.to_string());
        }
        Ok(())
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let log = self.log.lock().unwrap();
        Ok(log.by_id.get(event_id).map(|&p| log.events[p].clone()))
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let log = self.log.lock().unwrap();
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
            .log
            .lock()
            .unwrap()
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
        let log = self.log.lock().unwrap();
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
                    entry.status = u.status;
                    entry.result = u.result.clone();
                    entry.error = u.error.clone();
                    entry.attempts = u.attempts;
                    entry.updated_at_ms = u.now_ms;
                }
                entry
            })
            .collect())
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let mut log = self.log.lock().unwrap();
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
impl ActionDispatcher for MemoryStore {
    async fn dispatch(&self, event_id: &str) -> Result<(), StoreError> {
        self.dispatched.lock().unwrap().push(event_id.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> IdempotencyScope {
        IdempotencyScope {
            source: "s".into(),
            environment: "development".into(),
            event_type: "t".into(),
            key: "k".into(),
        }
    }

    fn times(now_ms: i64) -> ClaimTimes {
        ClaimTimes {
            now_ms,
            expires_at_ms: now_ms + 86_400_000,
            in_progress_until_ms: now_ms + 60_000,
        }
    }

    /// The state machine, walked with explicit times (the "injected clock").
    #[tokio::test]
    async fn idempotency_state_machine() {
        let store = MemoryStore::new();
        let s = scope();
        assert_eq!(
            store.claim(&s, "e1", times(0)).await.unwrap(),
            ClaimOutcome::Claimed
        );
        assert_eq!(
            store.claim(&s, "e2", times(10_000)).await.unwrap(),
            ClaimOutcome::InFlight {
                original_event_id: "e1".into(),
                retry_after_ms: 50_000
            }
        );
        // An abandoned claim (crash before complete/release) stops blocking after 60 s.
        assert_eq!(
            store.claim(&s, "e3", times(60_000)).await.unwrap(),
            ClaimOutcome::Claimed
        );
        // Only the holder can complete or release.
        store.complete(&s, "e1", 60_001).await.unwrap();
        assert_eq!(
            store.claim_record(&s).unwrap().state,
            ClaimState::InProgress
        );
        store.complete(&s, "e3", 60_001).await.unwrap();
        assert_eq!(
            store.claim(&s, "e4", times(120_000)).await.unwrap(),
            ClaimOutcome::Duplicate {
                original_event_id: "e3".into()
            }
        );
        store.release(&s, "e3").await.unwrap();
        assert!(
            store.claim_record(&s).is_some(),
            "a completed claim is never released"
        );
        // Expiry is compared on read: the record is still there, but past the window.
        assert_eq!(
            store
                .claim(&s, "e5", times(60_000 + 86_400_000))
                .await
                .unwrap(),
            ClaimOutcome::Claimed
        );
        store.release(&s, "e5").await.unwrap();
        assert!(store.claim_record(&s).is_none());
    }
}
