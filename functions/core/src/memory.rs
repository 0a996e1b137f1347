//! In-memory implementations of the store traits.
//!
//! They keep the same semantics as the SQLite and DynamoDB stores (the contract tests run
//! against all of them) and serve where nothing must persist: unit tests, the pipeline
//! benchmark, and dry runs. They are not a production store: nothing survives the process.

use crate::store::{
    ActionDispatcher, ActionLogEntry, ActionUpdate, ClaimOutcome, ClaimState, ClaimTimes, EventLog,
    EventPage, EventQuery, EventRecord, EventStatus, EventTypeStats, IdempotencyRecord,
    IdempotencyScope, IdempotencyStore, StoreError, Vars, VarsError, VarsProvider,
};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct MemoryStore {
    claims: Mutex<HashMap<String, IdempotencyRecord>>,
    events: Mutex<Vec<EventRecord>>,
    types: Mutex<HashMap<(String, String, String), EventTypeStats>>,
    actions: Mutex<HashMap<String, Vec<ActionLogEntry>>>,
    dispatched: Mutex<Vec<String>>,
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
        self.events.lock().unwrap().clone()
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

#[async_trait]
impl EventLog for MemoryStore {
    async fn record(&self, event: &EventRecord) -> Result<(), StoreError> {
        self.events.lock().unwrap().push(event.clone());
        let log = event
            .actions
            .iter()
            .map(|a| ActionLogEntry::planned(a, event.received_at_ms))
            .collect();
        self.actions.lock().unwrap().insert(event.id.clone(), log);
        if let (Some(event_type), EventStatus::Accepted | EventStatus::Duplicate) =
            (&event.event_type, event.status)
        {
            let key = (
                event.source.clone(),
                event.environment.clone(),
                event_type.clone(),
            );
            let mut types = self.types.lock().unwrap();
            let stats = types.entry(key).or_insert_with(|| EventTypeStats {
                source: event.source.clone(),
                environment: event.environment.clone(),
                event_type: event_type.clone(),
                count: 0,
                first_seen_ms: event.received_at_ms,
                last_seen_ms: event.received_at_ms,
                last_event_id: event.id.clone(),
                last_sample: String::new(),
            });
            stats.count += 1;
            stats.last_seen_ms = event.received_at_ms;
            stats.last_event_id = event.id.clone();
            stats.last_sample = event.raw_body.clone();
        }
        Ok(())
    }

    async fn mark_failed(&self, event_id: &str, error: &str) -> Result<(), StoreError> {
        for e in self
            .events
            .lock()
            .unwrap()
            .iter_mut()
            .filter(|e| e.id == event_id)
        {
            e.status = EventStatus::Error;
            e.error = Some(error.to_string());
        }
        Ok(())
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(self
            .events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.id == event_id)
            .cloned())
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let mut out: Vec<_> = self
            .types
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.source == source && s.environment == environment)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.event_type.cmp(&b.event_type));
        Ok(out)
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let mut events: Vec<EventRecord> = self
            .events
            .lock()
            .unwrap()
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
        Ok(self
            .actions
            .lock()
            .unwrap()
            .get(event_id)
            .cloned()
            .unwrap_or_default())
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let mut actions = self.actions.lock().unwrap();
        let entry = actions
            .get_mut(event_id)
            .and_then(|log| log.iter_mut().find(|a| a.index == update.index))
            .ok_or_else(|| {
                StoreError::Failed(format!("no action {} on event {event_id}", update.index))
            })?;
        entry.status = update.status;
        entry.result = update.result.clone();
        entry.error = update.error.clone();
        entry.attempts = update.attempts;
        entry.updated_at_ms = update.now_ms;
        Ok(())
    }
}

#[async_trait]
impl ActionDispatcher for MemoryStore {
    async fn dispatch(&self, event: &EventRecord) -> Result<(), StoreError> {
        self.dispatched.lock().unwrap().push(event.id.clone());
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
