//! The event-type registry on DynamoDB: per source environment and event type, how
//! many events were accepted, when first and last, and the last one's id (its sample is
//! read from that event when the registry is listed, so the item stays under 1 KB).
//!
//! One item per (source, environment, type) under `TYPES#<source>#<env>`: every event
//! of a busy source would write the same key, and DynamoDB takes at most about 1,000
//! write units a second on one key. So each execution environment **coalesces** its
//! counts: the first accepted event of a type it sees is written at once (a new type
//! shows up in the registry immediately), and for [`FLUSH_INTERVAL`] after a write the
//! type's events are counted in memory; the next event after the interval writes them
//! all in one `UpdateItem` (`ADD count n`), along with any other type whose interval has
//! passed. At 10,000 events a second spread over a few hundred warm environments, the
//! key takes a write per environment per interval — tens a second — instead of 10,000.
//!
//! The count is **approximate**, by these rules:
//! - the webhook's answer does not wait on it beyond [`REGISTRY_WAIT`], and a registry
//!   write is sent once, never retried by the SDK (a throttled registry must not hold a
//!   sender or use up the retries of the event's own write); a write that fails or is
//!   cut off is kept in memory for the next one, and is counted twice if it had applied;
//! - counts still in memory when Lambda retires an idle execution environment are lost
//!   (at most one interval of that environment's events);
//! - last seen lags by up to one interval per environment.

use crate::error::store_error;
use crate::item::{get_n, get_s, n, s};
use aws_sdk_dynamodb::Client;
use inlet_core::store::{EventRecord, EventTypeStats, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an execution environment counts a type in memory after writing it.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// The longest a webhook's answer waits on a registry write.
pub const REGISTRY_WAIT: Duration = Duration::from_millis(50);

/// (source, environment, event type).
type TypeKey = (String, String, String);

/// What an execution environment has counted of one type and not written yet.
#[derive(Debug, Clone)]
struct Pending {
    count: i64,
    first_seen_ms: i64,
    last_seen_ms: i64,
    last_event_id: String,
    /// When this environment last wrote the type (`None`: not yet, or that write
    /// failed).
    written_at: Option<Instant>,
}

impl Pending {
    fn add(&mut self, other: &Pending) {
        self.count += other.count;
        self.first_seen_ms = self.first_seen_ms.min(other.first_seen_ms);
        if other.last_seen_ms >= self.last_seen_ms {
            self.last_seen_ms = other.last_seen_ms;
            self.last_event_id = other.last_event_id.clone();
        }
    }
}

/// The registry of one events table, with this execution environment's counts.
#[derive(Clone)]
pub struct Registry {
    client: Client,
    table: String,
    pending: Arc<Mutex<HashMap<TypeKey, Pending>>>,
}

fn types_pk(source: &str, environment: &str) -> String {
    format!("TYPES#{source}#{environment}")
}

impl Registry {
    pub fn new(client: Client, table: String) -> Self {
        Registry {
            client,
            table,
            pending: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts an accepted event (module docs: written now, or with a later event).
    /// Never fails: the event is stored whatever happens to its count.
    pub async fn count(&self, event: &EventRecord) {
        let Some(event_type) = event.counts_in_registry() else {
            return;
        };
        let due = self.note(
            (
                event.source.clone(),
                event.environment.clone(),
                event_type.to_string(),
            ),
            event,
            Instant::now(),
        );
        if due.is_empty() {
            return;
        }
        let writes = due.into_iter().map(|(key, counted)| async move {
            let written = tokio::time::timeout(REGISTRY_WAIT, self.write(&key, &counted)).await;
            match written {
                Ok(Ok(())) => {}
                outcome => {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {REGISTRY_WAIT:?}"),
                    };
                    tracing::warn!(source = %key.0, event_type = %key.2, %error, "event-type count not written; kept for the next write");
                    self.restore(key, counted);
                }
            }
        });
        futures::future::join_all(writes).await;
    }

    /// Adds `event` to its type's pending count and takes out every count due to be
    /// written at `now`: its own type's if that was not written within the interval,
    /// and any other whose interval has passed.
    fn note(&self, key: TypeKey, event: &EventRecord, now: Instant) -> Vec<(TypeKey, Pending)> {
        let this = Pending {
            count: 1,
            first_seen_ms: event.received_at_ms,
            last_seen_ms: event.received_at_ms,
            last_event_id: event.id.clone(),
            written_at: None,
        };
        let mut pending = self.pending.lock().expect("registry counts poisoned");
        match pending.get_mut(&key) {
            Some(entry) => entry.add(&this),
            None => {
                pending.insert(key, this);
            }
        }
        let due_at = |p: &Pending| p.written_at.is_none_or(|at| now - at >= FLUSH_INTERVAL);
        let mut due = Vec::new();
        pending.retain(|key, entry| {
            if !due_at(entry) {
                return true;
            }
            if entry.count == 0 {
                return false; // nothing counted for a whole interval: forget the type
            }
            due.push((key.clone(), entry.clone()));
            entry.count = 0;
            entry.first_seen_ms = i64::MAX; // the next event's
            entry.written_at = Some(now);
            true
        });
        due
    }

    /// Puts a count that was not written back, to be written with the next event.
    fn restore(&self, key: TypeKey, counted: Pending) {
        let mut pending = self.pending.lock().expect("registry counts poisoned");
        let entry = pending.entry(key).or_insert_with(|| Pending {
            count: 0,
            ..counted.clone()
        });
        entry.add(&counted);
        entry.written_at = None;
    }

    /// One `UpdateItem` adding `counted`, sent once.
    async fn write(&self, key: &TypeKey, counted: &Pending) -> Result<(), StoreError> {
        let (source, environment, event_type) = key;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(types_pk(source, environment)))
            .key("sk", s(event_type.clone()))
            .update_expression(
                "ADD #count :n SET first_seen_ms = if_not_exists(first_seen_ms, :first), \
                 last_seen_ms = :last, last_event_id = :id, #fv = :fv REMOVE last_sample",
            )
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#fv", crate::format::ATTRIBUTE)
            .expression_attribute_values(":fv", n(crate::format::CURRENT))
            .expression_attribute_values(":n", n(counted.count))
            .expression_attribute_values(":first", n(counted.first_seen_ms))
            .expression_attribute_values(":last", n(counted.last_seen_ms))
            .expression_attribute_values(":id", s(counted.last_event_id.clone()))
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default()
                    .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(|e| store_error("count event type", e))?;
        Ok(())
    }

    /// The registry of a source environment, as stored (without this environment's
    /// counts not written yet). `sample_of` reads an event's body.
    pub async fn list<F, Fut>(
        &self,
        source: &str,
        environment: &str,
        sample_of: F,
    ) -> Result<Vec<EventTypeStats>, StoreError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<String, StoreError>>,
    {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(types_pk(source, environment)))
            .send()
            .await
            .map_err(|e| store_error("query event types", e))?;
        let mut out = Vec::new();
        for item in page.items.unwrap_or_default() {
            let version = crate::format::version_of(&item, "an event-type item")?;
            let last_event_id = get_s(&item, "last_event_id")?.to_string();
            let last_sample = match get_s(&item, "last_sample") {
                // Format 1 kept small samples in the item.
                Ok(sample) if version == 1 => sample.to_string(),
                _ => sample_of(last_event_id.clone()).await?,
            };
            out.push(EventTypeStats {
                source: source.to_string(),
                environment: environment.to_string(),
                event_type: get_s(&item, "sk")?.to_string(),
                count: get_n(&item, "count")? as u64,
                first_seen_ms: get_n(&item, "first_seen_ms")?,
                last_seen_ms: get_n(&item, "last_seen_ms")?,
                last_event_id,
                last_sample,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .build();
        Registry::new(Client::from_conf(config), "events".into())
    }

    fn event(id: &str, event_type: &str, at: i64) -> EventRecord {
        EventRecord {
            id: id.into(),
            event_type: Some(event_type.into()),
            raw_body: "{}".into(),
            ..EventRecord::received("shop", "development", at, at + 1)
        }
    }

    fn key(event_type: &str) -> TypeKey {
        ("shop".into(), "development".into(), event_type.into())
    }

    #[test]
    fn the_first_event_of_a_type_is_written_and_the_rest_once_an_interval() {
        let r = registry();
        let t0 = Instant::now();
        let due = r.note(key("a"), &event("e1", "a", 1), t0);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1.count, 1);
        // Within the interval: counted in memory.
        for (i, at) in [(2, 1), (3, 2), (4, 4)] {
            let due = r.note(
                key("a"),
                &event(&format!("e{i}"), "a", i),
                t0 + Duration::from_secs(at),
            );
            assert!(due.is_empty());
        }
        // A new type is written at once, alone.
        let due = r.note(key("b"), &event("e5", "b", 5), t0 + Duration::from_secs(4));
        assert_eq!(
            due.iter().map(|(k, _)| k.2.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        // After the interval, the next event (of any type) writes what waited.
        let due = r.note(key("b"), &event("e6", "b", 6), t0 + Duration::from_secs(6));
        let a = due.iter().find(|(k, _)| k.2 == "a").unwrap();
        assert_eq!(
            (
                a.1.count,
                a.1.first_seen_ms,
                a.1.last_seen_ms,
                a.1.last_event_id.as_str()
            ),
            (3, 2, 4, "e4")
        );
        assert!(
            !due.iter().any(|(k, _)| k.2 == "b"),
            "b was written 2 s ago"
        );
    }

    #[test]
    fn a_count_not_written_waits_for_the_next_event() {
        let r = registry();
        let t0 = Instant::now();
        let (k, counted) = r.note(key("a"), &event("e1", "a", 1), t0).pop().unwrap();
        r.restore(k, counted);
        let due = r.note(
            key("a"),
            &event("e2", "a", 2),
            t0 + Duration::from_millis(10),
        );
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].1.count, due[0].1.last_event_id.as_str()), (2, "e2"));
    }
}
