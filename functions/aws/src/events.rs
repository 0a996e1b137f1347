//! The event log, action log and event-type registry on DynamoDB (key design in the
//! crate docs), and the one commit per event.
//!
//! # The commit
//!
//! [`EventLog::commit`] is a single `TransactWriteItems` (a single `PutItem` when it has
//! one item): the idempotency record (a `Put` on the idempotency table, conditional on
//! the scope being free: absent, expired, or an `in_progress` claim an earlier version
//! left), the event item with its whole action plan, the parts of a large event, and
//! the event-type count. DynamoDB applies all of them or none, so an event is never
//! stored without its idempotency record, and the record never points to an event that
//! was not stored. The idempotency write is the transaction's first item, with
//! `ReturnValuesOnConditionCheckFailure=ALL_OLD`: when its condition fails, the old
//! record names the original event, and the event is written as its duplicate in a
//! second transaction. Concurrent transactions on the same items are cancelled with
//! `TransactionConflict`; the commit retries those a few times with backoff.
//!
//! # The hand-off to the actions function
//!
//! An event that is queued ([`EventRecord::is_queued`]) carries `queue = "actions"` on
//! its item. The events table has a stream (`NEW_IMAGE`), and the actions function's
//! event source mapping takes the `INSERT` records of items with that attribute (a
//! filter in the template; [`queued_event_id`] applies the same test in the function).
//! The stream record is written by DynamoDB as part of the commit itself, so once the
//! commit returns, the actions run without anything else having to succeed: no
//! `Invoke` that could fail after the event is stored, no sweeper. Lambda retries a
//! failing batch (bisecting it), then sends it to the on-failure queue; the actions
//! function is idempotent per (event, action), so redelivery applies nothing twice.
//!
//! # Large events
//!
//! A DynamoDB item holds at most 400 KB. A 256 KiB body, JSON-escaped, with its headers,
//! preprocess output, console and an action plan whose payloads copy parts of it, does
//! not always fit. The event's JSON is kept whole in `data` when it is at most
//! [`INLINE_BYTES`]; a larger one is split into `PART#<n>` items of the same partition
//! (binary chunks, written in the same transaction), and `data` holds the event without
//! its large fields, so that listing pages stay small. A transaction carries at most
//! 4 MB, which bounds an event with its plan to [`MAX_EVENT_BYTES`]; a larger one is a
//! permanent failure (the pipeline then stores it without its plan). The registry keeps
//! the last sample inline only up to [`SAMPLE_INLINE_BYTES`], and reads a larger one
//! from its event.

use crate::error::store_error;
use crate::item::{Item, get_json, get_n, get_s, json, n, s, ttl};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use inlet_core::store::{
    ActionLogEntry, ActionStatus, ActionUpdate, CommitError, Committed, EventLog, EventPage,
    EventQuery, EventRecord, EventTypeStats, IdempotencyClaim, StoreError,
};
use std::time::Duration;

/// The largest event JSON kept whole in the event item (DynamoDB's item limit is
/// 400 KB, attribute names and the other attributes included).
pub const INLINE_BYTES: usize = 350_000;
/// The largest event JSON (with its plan) one commit can write: a transaction carries
/// at most 4 MB, and the idempotency record and registry count share it.
pub const MAX_EVENT_BYTES: usize = 3_800_000;
/// The largest body the registry keeps as the last sample of an event type.
pub const SAMPLE_INLINE_BYTES: usize = 64 * 1024;
/// How many times a commit cancelled by a concurrent transaction is tried again.
const CONFLICT_RETRIES: u32 = 4;

#[derive(Clone)]
pub struct DynamoEventLog {
    pub client: Client,
    /// The events table (events, their parts, action log updates, registry counts).
    pub table: String,
    /// The idempotency table, whose records commit in the event's transaction.
    pub idempotency_table: String,
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(format!("building a DynamoDB request: {e}"))
}

pub(crate) fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

fn action_sk(index: usize) -> String {
    format!("ACTION#{index:05}")
}

fn part_sk(index: usize) -> String {
    format!("PART#{index:05}")
}

fn put(item: Item, table: &str) -> Result<Put, StoreError> {
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(build_error)
}

/// The stream's mark on an event item whose actions are to run.
pub const QUEUE_ATTRIBUTE: &str = "queue";
pub const QUEUE_ACTIONS: &str = "actions";

/// Why a write of one commit did not go through.
enum WriteFailure {
    /// The condition of write `index` failed; `old` is the item it met, if any.
    Condition {
        index: usize,
        old: Option<Item>,
    },
    /// A concurrent transaction touched the same items; trying again may pass.
    Conflict,
    Store(StoreError),
}

impl DynamoEventLog {
    /// The event log of a stack's tables.
    pub fn new(client: Client, names: &crate::StackNames) -> Self {
        DynamoEventLog {
            client,
            table: names.events_table.clone(),
            idempotency_table: names.idempotency_table.clone(),
        }
    }

    /// The items an event is stored as: the event item, then its parts, then the
    /// registry count.
    fn event_writes(&self, event: &EventRecord) -> Result<Vec<TransactWriteItem>, StoreError> {
        let full = serde_json::to_string(event)
            .map_err(|e| StoreError::Failed(format!("serialising event {}: {e}", event.id)))?;
        if full.len() > MAX_EVENT_BYTES {
            return Err(StoreError::Failed(format!(
                "event {} with its action plan is {} bytes; one DynamoDB transaction carries at most 4 MB \
                 (map fewer or smaller params, e.g. not the whole body into every action)",
                event.id,
                full.len()
            )));
        }
        let mut item = Item::from([
            ("pk".to_string(), s(event_pk(&event.id))),
            ("sk".to_string(), s("EVENT")),
            (
                "gsi1pk".to_string(),
                s(format!("{}#{}", event.source, event.environment)),
            ),
            ("gsi1sk".to_string(), s(event.id.clone())),
            ("status".to_string(), s(event.status.as_str())),
            ("expires_at".to_string(), ttl(event.expires_at_ms)),
        ]);
        if event.is_queued() {
            item.insert(QUEUE_ATTRIBUTE.into(), s(QUEUE_ACTIONS));
        }
        let mut parts = Vec::new();
        if full.len() <= INLINE_BYTES {
            item.insert("data".into(), s(full));
        } else {
            let head = EventRecord {
                raw_body: String::new(),
                headers: Vec::new(),
                preprocess: None,
                script_console: Vec::new(),
                actions: Vec::new(),
                ..event.clone()
            };
            item.insert("data".into(), json(&head));
            for (i, chunk) in full.as_bytes().chunks(INLINE_BYTES).enumerate() {
                parts.push(Item::from([
                    ("pk".to_string(), s(event_pk(&event.id))),
                    ("sk".to_string(), s(part_sk(i))),
                    ("chunk".to_string(), AttributeValue::B(Blob::new(chunk))),
                    ("expires_at".to_string(), ttl(event.expires_at_ms)),
                ]));
            }
            item.insert("parts".into(), n(parts.len() as i64));
        }
        let event_put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let mut writes = vec![TransactWriteItem::builder().put(event_put).build()];
        for part in parts {
            writes.push(
                TransactWriteItem::builder()
                    .put(put(part, &self.table)?)
                    .build(),
            );
        }
        if let Some(event_type) = event.counts_in_registry() {
            writes.push(
                TransactWriteItem::builder()
                    .update(self.registry_update(event, event_type)?)
                    .build(),
            );
        }
        Ok(writes)
    }

    /// The registry count of one accepted or duplicate event.
    fn registry_update(&self, event: &EventRecord, event_type: &str) -> Result<Update, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .key("pk", s(types_pk(&event.source, &event.environment)))
            .key("sk", s(event_type))
            .expression_attribute_names("#count", "count")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":at", n(event.received_at_ms))
            .expression_attribute_values(":id", s(event.id.clone()));
        let set = "ADD #count :one SET first_seen_ms = if_not_exists(first_seen_ms, :at), \
                   last_seen_ms = :at, last_event_id = :id";
        update = if event.raw_body.len() <= SAMPLE_INLINE_BYTES {
            update
                .update_expression(format!("{set}, last_sample = :sample"))
                .expression_attribute_values(":sample", s(event.raw_body.clone()))
        } else {
            // Read from the event when asked for (see `event_types`).
            update.update_expression(format!("{set} REMOVE last_sample"))
        };
        update.build().map_err(build_error)
    }

    /// The idempotency record of a claim, written on condition that the scope is free.
    fn claim_put(&self, event_id: &str, claim: &IdempotencyClaim) -> Result<Put, StoreError> {
        Put::builder()
            .table_name(&self.idempotency_table)
            .set_item(Some(crate::idempotency::record_item(
                &claim.scope,
                event_id,
                claim.expires_at_ms,
            )))
            .condition_expression(crate::idempotency::SCOPE_IS_FREE)
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":now", n(claim.now_ms))
            .expression_attribute_values(":completed", s("completed"))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(build_error)
    }

    /// Writes `writes` all or nothing: one `PutItem` for a single put, else a
    /// transaction.
    async fn write(&self, mut writes: Vec<TransactWriteItem>) -> Result<(), WriteFailure> {
        if writes.len() == 1
            && let Some(single) = writes[0].put.take()
        {
            let result = self
                .client
                .put_item()
                .table_name(single.table_name)
                .set_item(Some(single.item))
                .set_condition_expression(single.condition_expression)
                .set_expression_attribute_names(single.expression_attribute_names)
                .set_expression_attribute_values(single.expression_attribute_values)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            return match result {
                Ok(_) => Ok(()),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() =>
                {
                    let old = match e.into_err() {
                        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    };
                    Err(WriteFailure::Condition { index: 0, old })
                }
                Err(e) => Err(WriteFailure::Store(store_error("write event", e))),
            };
        }
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                {
                    let reasons = cancelled.cancellation_reasons();
                    if let Some(index) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        return Err(WriteFailure::Condition {
                            index,
                            old: reasons[index].item.clone(),
                        });
                    }
                    if reasons
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict"))
                    {
                        return Err(WriteFailure::Conflict);
                    }
                }
                Err(WriteFailure::Store(store_error("commit event", error)))
            }
        }
    }

    /// [`Self::write`], trying again while concurrent transactions conflict.
    async fn write_retrying(
        &self,
        build: impl Fn() -> Result<Vec<TransactWriteItem>, StoreError>,
    ) -> Result<(), WriteFailure> {
        let mut attempt = 0;
        loop {
            let writes = build().map_err(WriteFailure::Store)?;
            match self.write(writes).await {
                Err(WriteFailure::Conflict) if attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                }
                Err(WriteFailure::Conflict) => {
                    return Err(WriteFailure::Store(StoreError::Unavailable(
                        "the commit kept conflicting with concurrent transactions".into(),
                    )));
                }
                other => return other,
            }
        }
    }

    async fn commit_event(
        &self,
        event: &EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Committed, StoreError> {
        let first = self
            .write_retrying(|| {
                let mut writes = Vec::new();
                if let Some(claim) = claim {
                    writes.push(
                        TransactWriteItem::builder()
                            .put(self.claim_put(&event.id, claim)?)
                            .build(),
                    );
                }
                writes.extend(self.event_writes(event)?);
                Ok(writes)
            })
            .await;
        let original = match first {
            Ok(()) => return Ok(Committed::Stored),
            Err(WriteFailure::Condition { index: 0, old }) if claim.is_some() => old
                .as_ref()
                .and_then(|item| get_s(item, "event_id").ok().map(str::to_string))
                .ok_or_else(|| {
                    StoreError::Failed(
                        "the idempotency condition failed without returning the record".into(),
                    )
                })?,
            Err(WriteFailure::Condition { .. }) => {
                return Err(StoreError::Failed(format!(
                    "event {} is already stored",
                    event.id
                )));
            }
            Err(WriteFailure::Conflict) => unreachable!("retried by write_retrying"),
            Err(WriteFailure::Store(e)) => return Err(e),
        };
        let duplicate = event.clone().into_duplicate(&original);
        match self.write_retrying(|| self.event_writes(&duplicate)).await {
            Ok(()) => Ok(Committed::Duplicate {
                original_event_id: original,
            }),
            Err(WriteFailure::Store(e)) => Err(e),
            Err(_) => Err(StoreError::Failed(format!(
                "event {} is already stored",
                event.id
            ))),
        }
    }

    /// The items of one event's partition: the event, its parts, its action updates.
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

    /// The event (with its plan) and its action updates, from its partition's items.
    fn assemble(items: &[Item]) -> Result<Option<(EventRecord, Vec<ActionUpdate>)>, StoreError> {
        let Some(head) = items.iter().find(|i| get_s(i, "sk").ok() == Some("EVENT")) else {
            return Ok(None);
        };
        let event = if head.contains_key("parts") {
            let mut chunks: Vec<(&str, &[u8])> = items
                .iter()
                .filter_map(|i| {
                    let sk = get_s(i, "sk").ok()?;
                    let chunk = i.get("chunk")?.as_b().ok()?;
                    sk.starts_with("PART#").then_some((sk, chunk.as_ref()))
                })
                .collect();
            chunks.sort_by_key(|(sk, _)| *sk);
            if chunks.len() as i64 != get_n(head, "parts")? {
                return Err(StoreError::Failed(
                    "an event's stored parts are incomplete".into(),
                ));
            }
            let bytes: Vec<u8> = chunks
                .iter()
                .flat_map(|(_, chunk)| chunk.iter().copied())
                .collect();
            serde_json::from_slice::<EventRecord>(&bytes).map_err(|e| {
                StoreError::Failed(format!("an event's parts are not its JSON: {e}"))
            })?
        } else {
            get_json::<EventRecord>(head, "data")?
        };
        let mut event = event;
        let mut updates: Vec<ActionUpdate> = Vec::new();
        for item in items
            .iter()
            .filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with("ACTION#")))
        {
            if item.contains_key("update") {
                updates.push(get_json::<StoredUpdate>(item, "update")?.into());
            } else {
                // Written by an earlier version, which kept the plan in these items.
                let entry: ActionLogEntry = get_json(item, "data")?;
                updates.push(ActionUpdate {
                    index: entry.index,
                    status: entry.status,
                    result: entry.result.clone(),
                    error: entry.error.clone(),
                    attempts: entry.attempts,
                    now_ms: entry.updated_at_ms,
                });
                if !event.actions.iter().any(|a| a.index == entry.index) {
                    event.actions.push(inlet_core::actions::PlannedAction {
                        index: entry.index,
                        action: entry.action,
                        params: entry.params,
                        payload: entry.payload,
                        skipped: (entry.status == ActionStatus::Skipped)
                            .then(|| entry.error.unwrap_or_default()),
                    });
                }
            }
        }
        event.actions.sort_by_key(|a| a.index);
        Ok(Some((event, updates)))
    }
}

fn types_pk(source: &str, environment: &str) -> String {
    format!("TYPES#{source}#{environment}")
}

/// An executor update as an action item keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredUpdate {
    index: usize,
    status: ActionStatus,
    result: Option<serde_json::Value>,
    error: Option<String>,
    attempts: u32,
    updated_at_ms: i64,
}

impl From<StoredUpdate> for ActionUpdate {
    fn from(u: StoredUpdate) -> Self {
        ActionUpdate {
            index: u.index,
            status: u.status,
            result: u.result,
            error: u.error,
            attempts: u.attempts,
            now_ms: u.updated_at_ms,
        }
    }
}

/// The event id of a stream record that hands an event to the actions function: the
/// `INSERT` of an event item marked `queue = "actions"`. The template's filter on the
/// event source mapping applies the same test, so only these records invoke the
/// function; the function checks again rather than trust the filter.
/// `pk` and `sk` are the record's keys, `queue` the new image's mark.
pub fn queued_event_id(
    event_name: &str,
    pk: Option<&str>,
    sk: Option<&str>,
    queue: Option<&str>,
) -> Option<String> {
    if event_name != "INSERT" || sk != Some("EVENT") || queue != Some(QUEUE_ACTIONS) {
        return None;
    }
    pk?.strip_prefix("EVENT#").map(str::to_string)
}

#[async_trait]
impl EventLog for DynamoEventLog {
    async fn commit(
        &self,
        event: EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Committed, CommitError> {
        self.commit_event(&event, claim)
            .await
            .map_err(|error| CommitError::new(error, event))
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(Self::assemble(&self.event_items(event_id).await?)?.map(|(event, _)| event))
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
            .expression_attribute_values(":pk", s(types_pk(source, environment)))
            .send()
            .await
            .map_err(|e| store_error("query event types", e))?;
        let mut out = Vec::new();
        for item in page.items.unwrap_or_default() {
            let last_event_id = get_s(&item, "last_event_id")?.to_string();
            let last_sample = match get_s(&item, "last_sample") {
                Ok(sample) => sample.to_string(),
                // A large sample stays with its event.
                Err(_) => self
                    .get(&last_event_id)
                    .await?
                    .map(|e| e.raw_body)
                    .unwrap_or_default(),
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
                let mut event: EventRecord = get_json(&item, "data")?;
                if !query.matches(&event) {
                    continue;
                }
                if item.contains_key("parts")
                    && let Some(whole) = self.get(&event.id).await?
                {
                    event = whole;
                }
                event.actions.clear();
                events.push(event);
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
        let Some((event, updates)) = Self::assemble(&self.event_items(event_id).await?)? else {
            return Ok(Vec::new());
        };
        Ok(event
            .actions
            .iter()
            .map(|a| {
                let mut entry = ActionLogEntry::planned(a, event.received_at_ms);
                if let Some(update) = updates.iter().find(|u| u.index == a.index) {
                    entry.apply(update);
                }
                entry
            })
            .collect())
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let stored = StoredUpdate {
            index: update.index,
            status: update.status,
            result: update.result.clone(),
            error: update.error.clone(),
            attempts: update.attempts,
            updated_at_ms: update.now_ms,
        };
        let retention_ms = inlet_core::defaults::RETENTION_DAYS * 86_400_000;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(event_pk(event_id)))
            .item("sk", s(action_sk(update.index)))
            .item("update", json(&stored))
            .item("expires_at", ttl(update.now_ms + retention_ms))
            .send()
            .await
            .map_err(|e| store_error("update action", e))?;
        Ok(())
    }
}
