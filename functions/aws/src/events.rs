//! The event log, action log and event-type registry on DynamoDB (key design in the
//! crate docs). Recording an event is one transaction: the event, its planned actions
//! and the registry bump land together or not at all.

use crate::error::store_error;
use crate::item::{Item, get_json, get_n, get_s, json, n, s, ttl};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem, Update};
use inlet_core::actions::PlannedAction;
use inlet_core::store::{
    ActionLogEntry, ActionStatus, ActionUpdate, EventLog, EventPage, EventQuery, EventRecord,
    EventStatus, EventTypeStats, StoreError,
};

/// DynamoDB allows 100 items per transaction: the event, the registry bump and 98
/// actions.
const MAX_ACTIONS_PER_EVENT: usize = 98;

#[derive(Clone)]
pub struct DynamoEventLog {
    pub client: Client,
    pub table: String,
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(format!("building a DynamoDB request: {e}"))
}

fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

fn action_sk(index: usize) -> String {
    format!("ACTION#{index:05}")
}

impl DynamoEventLog {
    fn event_item(&self, event: &EventRecord) -> Item {
        let summary = EventRecord {
            actions: Vec::new(),
            ..event.clone()
        };
        Item::from([
            ("pk".to_string(), s(event_pk(&event.id))),
            ("sk".to_string(), s("EVENT")),
            ("data".to_string(), json(&summary)),
            (
                "gsi1pk".to_string(),
                s(format!("{}#{}", event.source, event.environment)),
            ),
            ("gsi1sk".to_string(), s(event.id.clone())),
            ("status".to_string(), s(event.status.as_str())),
            ("expires_at".to_string(), ttl(event.expires_at_ms)),
        ])
    }

    async fn put_action(
        &self,
        event_id: &str,
        entry: &ActionLogEntry,
        expires_at_ms: i64,
    ) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(event_pk(event_id)))
            .item("sk", s(action_sk(entry.index)))
            .item("data", json(entry))
            .item("expires_at", ttl(expires_at_ms))
            .send()
            .await
            .map_err(|e| store_error("put action", e))?;
        Ok(())
    }

    /// The event item and its action items.
    async fn event_items(&self, event_id: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(event_pk(event_id)))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("query event", e))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }
}

#[async_trait]
impl EventLog for DynamoEventLog {
    async fn record(&self, event: EventRecord) -> Result<(), StoreError> {
        let event = &event;
        if event.actions.len() > MAX_ACTIONS_PER_EVENT {
            return Err(StoreError::Failed(format!(
                "an event may plan at most {MAX_ACTIONS_PER_EVENT} actions on AWS; this one plans {}",
                event.actions.len()
            )));
        }
        let mut writes = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.table)
                        .set_item(Some(self.event_item(event)))
                        .condition_expression("attribute_not_exists(pk)")
                        .build()
                        .map_err(build_error)?,
                )
                .build(),
        ];
        for action in &event.actions {
            let item = Item::from([
                ("pk".to_string(), s(event_pk(&event.id))),
                ("sk".to_string(), s(action_sk(action.index))),
                (
                    "data".to_string(),
                    json(&ActionLogEntry::planned(action, event.received_at_ms)),
                ),
                ("expires_at".to_string(), ttl(event.expires_at_ms)),
            ]);
            writes.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(item))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            );
        }
        if let (Some(event_type), EventStatus::Accepted | EventStatus::Duplicate) =
            (&event.event_type, event.status)
        {
            writes.push(
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.table)
                            .key("pk", s(format!("TYPES#{}#{}", event.source, event.environment)))
                            .key("sk", s(event_type.clone()))
                            .update_expression(
                                "ADD #count :one SET first_seen_ms = if_not_exists(first_seen_ms, :at), \
                                 last_seen_ms = :at, last_event_id = :id, last_sample = :sample",
                            )
                            .expression_attribute_names("#count", "count")
                            .expression_attribute_values(":one", n(1))
                            .expression_attribute_values(":at", n(event.received_at_ms))
                            .expression_attribute_values(":id", s(event.id.clone()))
                            .expression_attribute_values(":sample", s(event.raw_body.clone()))
                            .build()
                            .map_err(build_error)?,
                    )
                    .build(),
            );
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map_err(|e| store_error("record event", e))?;
        Ok(())
    }

    async fn mark_failed(&self, event_id: &str, error: &str) -> Result<(), StoreError> {
        let Some(mut event) = self.get(event_id).await? else {
            return Ok(());
        };
        event.status = EventStatus::Error;
        event.error = Some(error.to_string());
        event.actions.clear();
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.event_item(&event)))
            .send()
            .await
            .map_err(|e| store_error("mark event failed", e))?;
        Ok(())
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let items = self.event_items(event_id).await?;
        let Some(event_item) = items.iter().find(|i| get_s(i, "sk").ok() == Some("EVENT")) else {
            return Ok(None);
        };
        let mut event: EventRecord = get_json(event_item, "data")?;
        for item in items
            .iter()
            .filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with("ACTION#")))
        {
            let entry: ActionLogEntry = get_json(item, "data")?;
            event.actions.push(PlannedAction {
                index: entry.index,
                action: entry.action,
                params: entry.params,
                payload: entry.payload,
                skipped: (entry.status == ActionStatus::Skipped)
                    .then(|| entry.error.unwrap_or_default()),
            });
        }
        event.actions.sort_by_key(|a| a.index);
        Ok(Some(event))
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(format!("TYPES#{source}#{environment}")))
            .send()
            .await
            .map_err(|e| store_error("query event types", e))?;
        page.items
            .unwrap_or_default()
            .iter()
            .map(|item| {
                Ok(EventTypeStats {
                    source: source.to_string(),
                    environment: environment.to_string(),
                    event_type: get_s(item, "sk")?.to_string(),
                    count: get_n(item, "count")? as u64,
                    first_seen_ms: get_n(item, "first_seen_ms")?,
                    last_seen_ms: get_n(item, "last_seen_ms")?,
                    last_event_id: get_s(item, "last_event_id")?.to_string(),
                    last_sample: get_s(item, "last_sample")?.to_string(),
                })
            })
            .collect()
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let (Some(source), Some(environment)) = (&query.source, &query.environment) else {
            return Err(StoreError::Failed(
                "listing events on AWS needs a source and an environment (they are the index key)"
                    .into(),
            ));
        };
        let mut events = Vec::new();
        let mut start = None;
        let upper = query.cursor.clone().unwrap_or_else(|| "~".into());
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :pk AND gsi1sk < :upper")
                .expression_attribute_values(":pk", s(format!("{source}#{environment}")))
                .expression_attribute_values(":upper", s(upper.clone()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| store_error("list events", e))?;
            for item in page.items.unwrap_or_default() {
                let event: EventRecord = get_json(&item, "data")?;
                if query.matches(&event) {
                    events.push(event);
                }
                if events.len() > query.limit {
                    break;
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() || events.len() > query.limit {
                break;
            }
        }
        Ok(EventPage::first(events, query.limit))
    }

    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        let items = self.event_items(event_id).await?;
        let mut entries: Vec<ActionLogEntry> = items
            .iter()
            .filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with("ACTION#")))
            .map(|i| get_json(i, "data"))
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.index);
        Ok(entries)
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let entries = self.action_log(event_id).await?;
        let mut entry = entries
            .into_iter()
            .find(|e| e.index == update.index)
            .ok_or_else(|| {
                StoreError::Failed(format!("no action {} on event {event_id}", update.index))
            })?;
        entry.status = update.status;
        entry.result = update.result.clone();
        entry.error = update.error.clone();
        entry.attempts = update.attempts;
        entry.updated_at_ms = update.now_ms;
        let expires = self
            .get(event_id)
            .await?
            .map(|e| e.expires_at_ms)
            .unwrap_or(update.now_ms + inlet_core::defaults::RETENTION_DAYS * 86_400_000);
        self.put_action(event_id, &entry, expires).await
    }
}
