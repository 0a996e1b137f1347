//! The event log, action log and event-type registry on DynamoDB (key design in the
//! crate docs), and the one commit per event.
//!
//! Its rooms: `items.rs` (how an event and its action updates are stored as items, and
//! read back from the items of every format version), `scope.rs` (the commit's
//! idempotency record: read, claimed, given up), `listing.rs` (the sharded listing
//! index read newest first and merged); this file holds the commit, the reads of one
//! event and the action updates.
//!
//! # The commit
//!
//! Each write is priced (1 write unit per KB of item; a transaction doubles it; every
//! index the item is in costs another write), so the commit of an accepted event is two
//! single-item conditional writes and a counter, never a transaction. Each step is a
//! request that can be refused, applied with its answer lost (the SDK then sends it
//! again), or followed by the process stopping; what happens then is said at each step
//! (`tests/tests/aws_faults.rs` injects every one of these at every request):
//!
//! 1. **Read the scope's record** (eventually consistent; a read costs a fraction of a
//!    write, and a conditional write that fails still costs a write). A record that
//!    holds names the event that holds the scope; go to 4. *Stopped here*: nothing
//!    written.
//! 2. **Claim the scope**: a `PutItem` of the idempotency record naming this event, on
//!    condition that the scope is free (absent, expired, or an `in_progress` record an
//!    earlier version left), with `ReturnValuesOnConditionCheckFailure=ALL_OLD`. If the
//!    condition fails, the old record names the holder; go to 4 — unless it names this
//!    very event (the claim applied, its answer was lost, the SDK sent it again): then
//!    the claim is this commit's. *Stopped after it*: the scope names an event that is
//!    not stored; the next delivery completes it (4).
//! 3. **Store the event**: a `PutItem` of the event item (with its whole action plan, its
//!    JSON deflated, and a nonce of this write, `writer`), on condition that no item has
//!    its key, returning the item that has it when the condition fails. Stored:
//!    answered 202. If the condition fails on an item with this write's nonce, this
//!    write stored it (answer lost, sent again): answered 202 all the same. If it fails
//!    on an item another delivery stored for this scope (4), this delivery is its
//!    duplicate. A write refused for good (a 400) gives the claim up — one transaction
//!    that deletes the record on condition that it still names this event and that no
//!    item was stored under the id for this scope meanwhile — and the sender gets 500:
//!    its retry is processed as new. *Stopped after it*: the event is stored and
//!    queued; the retry finds it (4) and is its duplicate.
//! 4. **The scope is held** by event X. If X is stored, this delivery is its duplicate
//!    (stored as such, answered 200). If X is *not* stored, X's commit stopped between
//!    2 and 3 (the process died, or it is still running): this delivery stores itself
//!    *as X* (step 3 with X's id, the item marked with the scope). Whichever of the two
//!    puts of X comes first is the accepted event; the other one's condition fails and
//!    it becomes X's duplicate. So a crash between two writes never loses the event and
//!    never accepts it twice, and a 2xx is only sent once the event item is stored.
//!
//! An answer that is not 2xx may follow a write that applied (the SDK's attempts ran
//! out after the first one applied): that is why a 503 says "send it again", not
//! "nothing was stored" — the retry is then the stored event's duplicate. An event
//! without an idempotency key has no such guard: its retry is a new event.
//!
//! The event-type registry count runs beside step 3, outside any transaction, and is
//! coalesced per execution environment ([`crate::registry`]): it is **approximate** (a
//! crash between the event and its count leaves the count short; a lost race of step 3,
//! or a count whose answer was lost, counts too many). The registry counts accepted
//! events only (a duplicate is the same event again).
//!
//! The listing index's key is sharded ([`crate::shard`]): each event's entry goes to
//! one of 32 keys of its source environment, chosen from its id, so no key takes more
//! than a 32nd of a busy source's writes; a listing reads the shards at once.
//!
//! An event's item outlives its idempotency record (the event expires at the later of
//! its retention and the record's window), so a record never outlives the event it
//! names and step 4 never mistakes an expired event for an unfinished commit. TTL
//! deletes an event's items one by one: an expired event whose `PART#` items went
//! first reads as gone, not as broken.
//!
//! # The hand-off to the actions function
//!
//! An event that is queued ([`EventRecord::is_queued`]) carries `queue = "actions"` on
//! its item. The events table has a stream (`NEW_IMAGE`), and the actions function's
//! event source mapping takes the `INSERT` records of items with that attribute (a
//! filter in the template; [`queued_event_id`] applies the same test in the function).
//! The stream record is written by DynamoDB as part of the event's `PutItem` itself, so
//! once it returns, the actions run without anything else having to succeed: no
//! `Invoke` that could fail after the event is stored, no sweeper. Lambda retries a
//! failing batch (bisecting it), then sends it to the on-failure queue; the actions
//! function is idempotent per (event, action), so redelivery applies nothing twice.
//!
//! # Size: deflated records, a small index, large events in parts
//!
//! The event's JSON (with its plan) is deflated into the binary attribute `z`: webhook
//! JSON shrinks 3–10×, which keeps a typical event under the 1 KB of one write unit.
//! The listing index `gsi1` projects only the keys, `status`, `etype` and `at` (what a
//! listing filters on); a listing reads the page's items with one `BatchGetItem`.
//! A DynamoDB item holds at most 400 KB: a deflated record larger than
//! [`INLINE_BYTES`] is split into `PART#<n>` items of the same partition (written with
//! the event item in one transaction, the one case that needs one). A transaction
//! carries at most 4 MB, which bounds an event with its plan to [`MAX_EVENT_BYTES`]
//! (counted before deflating); a larger one is a permanent failure (the pipeline then
//! stores it without its plan). Every item carries its format version (`fv`); items an
//! earlier version wrote are still read, and the versions are listed in
//! [`crate::format`].

mod items;
mod listing;
mod scope;

use items::{EncodedEvent, SCOPE_ATTRIBUTE, WRITER_ATTRIBUTE, action_log_of};
pub use items::{INLINE_BYTES, MAX_EVENT_BYTES, QUEUE_ACTIONS, QUEUE_ATTRIBUTE};
use scope::Claim;

use crate::error::store_error;
use crate::event_key::{event_pk, is_stored};
use crate::item::{Item, get_s, s};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use inlet_core::store::{
    ActionLogEntry, ActionUpdate, CommitError, CommitResult, Committed, EventLog, EventPage,
    EventQuery, EventRecord, EventTypeStats, EventWithLog, IdempotencyClaim, StoreError,
};
use std::collections::HashMap;
use std::time::Duration;

/// How many times a large event's transaction cancelled by a concurrent one is tried
/// again.
const CONFLICT_RETRIES: u32 = 4;
/// The attributes the listing index projects besides its keys.
pub const LISTING_ATTRIBUTES: [&str; 3] = ["status", "etype", "at"];

#[derive(Clone)]
pub struct DynamoEventLog {
    pub client: Client,
    /// The events table (events, their parts, action log updates, registry counts).
    pub table: String,
    /// The idempotency table, whose records the commit claims.
    pub idempotency_table: String,
    /// The event-type registry (in the events table), with this execution
    /// environment's counts not written yet.
    pub registry: crate::registry::Registry,
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Failed(format!("building a DynamoDB request: {e}"))
}

/// What a conditional put of an event item found.
#[derive(Debug, PartialEq, Eq)]
enum Written {
    /// This write stored the item: its condition held, or it failed on the item an
    /// earlier attempt of this same write stored (the answer to that one was lost and
    /// the SDK sent it again).
    Stored,
    /// Another write's item has the key; `scope` is the idempotency scope that write
    /// stored it for, when it completed another delivery's claim (step 4).
    Taken { scope: Option<String> },
}

impl Written {
    /// The outcome of a put of `writer`'s item whose condition failed on `old`.
    fn of_old_item(writer: &str, old: Option<&Item>) -> Written {
        let text = |name| {
            old.and_then(|item| get_s(item, name).ok())
                .map(str::to_string)
        };
        if text(WRITER_ATTRIBUTE).as_deref() == Some(writer) {
            Written::Stored
        } else {
            Written::Taken {
                scope: text(SCOPE_ATTRIBUTE),
            }
        }
    }
}

impl DynamoEventLog {
    /// The event log of a stack's tables.
    pub fn new(client: Client, names: &crate::StackNames) -> Self {
        DynamoEventLog {
            registry: crate::registry::Registry::new(client.clone(), names.events_table.clone()),
            client,
            table: names.events_table.clone(),
            idempotency_table: names.idempotency_table.clone(),
        }
    }

    /// Stores an encoded event on condition that its key is free: one `PutItem`, or one
    /// transaction with its parts. The condition's failure returns the item that has the
    /// key (`ALL_OLD`, no extra read), which tells this write's own earlier attempt
    /// (stored, answer lost) from another write.
    async fn put_event(&self, event: EncodedEvent) -> Result<Written, StoreError> {
        if event.parts.is_empty() {
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(event.item))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Written::Stored),
                Err(SdkError::ServiceError(e))
                    if e.err().is_conditional_check_failed_exception() =>
                {
                    let old = match e.into_err() {
                        PutItemError::ConditionalCheckFailedException(c) => c.item,
                        _ => None,
                    };
                    Ok(Written::of_old_item(&event.writer, old.as_ref()))
                }
                Err(e) => Err(store_error("write event", e)),
            };
        }
        let build = || -> Result<Vec<TransactWriteItem>, StoreError> {
            let head = Put::builder()
                .table_name(&self.table)
                .set_item(Some(event.item.clone()))
                .condition_expression("attribute_not_exists(pk)")
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(build_error)?;
            let mut writes = vec![TransactWriteItem::builder().put(head).build()];
            for part in &event.parts {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(part.clone()))
                    .build()
                    .map_err(build_error)?;
                writes.push(TransactWriteItem::builder().put(put).build());
            }
            Ok(writes)
        };
        let mut attempt = 0;
        loop {
            // One `send` is one client request token: the SDK's own retries of it are
            // idempotent on DynamoDB (and the head's condition catches them elsewhere).
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(build()?))
                .send()
                .await;
            let Err(error) = result else {
                return Ok(Written::Stored);
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                error.as_service_error()
            {
                let reasons = cancelled.cancellation_reasons();
                if let Some(head) = reasons
                    .first()
                    .filter(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    return Ok(Written::of_old_item(&event.writer, head.item.as_ref()));
                }
                if attempt < CONFLICT_RETRIES
                    && reasons
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict"))
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 << attempt)).await;
                    continue;
                }
            }
            return Err(store_error("write event", error));
        }
    }

    async fn commit_event(
        &self,
        event: &EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Committed, StoreError> {
        let collision = || {
            StoreError::Failed(format!(
                "event id {} is already taken by another event",
                event.id
            ))
        };
        let Some(claim) = claim else {
            let (stored, ()) = tokio::join!(
                self.put_event(items::encode(event, event.expires_at_ms)?),
                self.registry.count(event)
            );
            return match stored? {
                Written::Stored => Ok(Committed::Stored {
                    event_id: event.id.clone(),
                }),
                Written::Taken { .. } => Err(collision()),
            };
        };
        // The event outlives its record (see the module docs).
        let expires_at_ms = event.expires_at_ms.max(claim.expires_at_ms);
        let encoded = items::encode(event, expires_at_ms)?;
        let holder = match self.read_holder(claim).await? {
            Some(holder) => holder,
            None => match self.claim(&event.id, claim, expires_at_ms).await? {
                // A claim that names this event is this commit's own (an attempt whose
                // answer was lost and that the SDK sent again).
                Claim::Won => event.id.clone(),
                Claim::HeldBy(holder) => holder,
            },
        };
        if holder == event.id {
            let writer = encoded.writer.clone();
            let (stored, ()) = tokio::join!(self.put_event(encoded), self.registry.count(event));
            let stored = match stored {
                Ok(stored) => stored,
                Err(StoreError::Failed(detail)) => {
                    // Refused for good: the scope is given up, so that a retry (or the
                    // next delivery) is processed as new rather than as a duplicate of
                    // an event that will never be stored.
                    if let Err(error) = self.release(claim, &event.id, &writer).await {
                        tracing::warn!(event_id = %event.id, %error, "the idempotency record of a refused event stays; the next delivery stores itself in its place");
                    }
                    return Err(StoreError::Failed(detail));
                }
                Err(unavailable) => return Err(unavailable),
            };
            return match stored {
                Written::Stored => Ok(Committed::Stored {
                    event_id: event.id.clone(),
                }),
                // Another delivery of the same event saw the claim and completed it
                // (step 4): this one is its duplicate, logged under a new id.
                Written::Taken { scope } if scope == Some(claim.scope.storage_key()) => {
                    self.store_duplicate(event, &event.id).await
                }
                Written::Taken { .. } => {
                    self.release(claim, &event.id, &writer).await?;
                    Err(collision())
                }
            };
        }
        if !is_stored(&self.client, &self.table, &holder).await? {
            // The holder's commit stopped after its claim: complete it as the holder.
            let as_holder = EventRecord {
                id: holder.clone(),
                ..event.clone()
            };
            tracing::warn!(%holder, "the event holding this idempotency key was never stored (its commit stopped after the claim); storing this delivery as it");
            let mut encoded = items::encode(&as_holder, expires_at_ms)?;
            // Marks the item as stored for this scope (see the `holder == event.id` case).
            encoded
                .item
                .insert(SCOPE_ATTRIBUTE.into(), s(claim.scope.storage_key()));
            let (stored, ()) =
                tokio::join!(self.put_event(encoded), self.registry.count(&as_holder));
            if stored? == Written::Stored {
                return Ok(Committed::Stored { event_id: holder });
            }
            // The holder's own write, or another delivery's, came first.
        }
        self.store_duplicate(event, &holder).await
    }

    /// Logs `event` as a duplicate of `holder` (under its own id).
    async fn store_duplicate(
        &self,
        event: &EventRecord,
        holder: &str,
    ) -> Result<Committed, StoreError> {
        // Under the delivery's own id, unless that is the holder's (its claim was
        // completed by another delivery).
        let id = if event.id == holder {
            inlet_core::store::new_event_id()
        } else {
            event.id.clone()
        };
        let duplicate = EventRecord {
            id,
            ..event.clone().into_duplicate(holder)
        };
        match self
            .put_event(items::encode(&duplicate, duplicate.expires_at_ms)?)
            .await?
        {
            Written::Stored => Ok(Committed::Duplicate {
                original_event_id: holder.to_string(),
            }),
            Written::Taken { .. } => Err(StoreError::Failed(format!(
                "event id {} is already taken by another event",
                duplicate.id
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

    /// The event items of `ids` (by id), read with `BatchGetItem` (100 keys a call,
    /// unprocessed keys asked again).
    async fn read_events(&self, ids: &[String]) -> Result<HashMap<String, Item>, StoreError> {
        let mut found = HashMap::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| {
                    Item::from([
                        ("pk".to_string(), s(event_pk(id))),
                        ("sk".to_string(), s("EVENT")),
                    ])
                })
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .build()
                    .map_err(build_error)?,
            );
            let mut attempt = 0u32;
            while let Some(keys) = request.take() {
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| store_error("read events", e))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    let id = get_s(&item, "pk")?.trim_start_matches("EVENT#").to_string();
                    found.insert(id, item);
                }
                request = answer
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .filter(|k| !k.keys.is_empty());
                if request.is_some() {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                }
            }
        }
        Ok(found)
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
    async fn commit(&self, event: EventRecord, claim: Option<&IdempotencyClaim>) -> CommitResult {
        self.commit_event(&event, claim)
            .await
            .map_err(|error| CommitError::new(error, event))
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        Ok(items::assemble(&self.event_items(event_id).await?)?.map(|(event, _)| event))
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        self.registry
            .list(source, environment, |id| async move {
                Ok(self.get(&id).await?.map(|e| e.raw_body).unwrap_or_default())
            })
            .await
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        self.list_page(query).await
    }

    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        let Some((event, updates)) = items::assemble(&self.event_items(event_id).await?)? else {
            return Ok(Vec::new());
        };
        Ok(action_log_of(&event, &updates))
    }

    /// One `Query` of each event's partition gives both the event and its action log
    /// (the default would read the partition twice: one read unit more per event in the
    /// actions function).
    async fn get_with_logs(&self, event_ids: &[String]) -> Result<Vec<EventWithLog>, StoreError> {
        let mut found = Vec::with_capacity(event_ids.len());
        for event_id in event_ids {
            found.push(match items::assemble(&self.event_items(event_id).await?)? {
                Some((event, updates)) => {
                    let log = action_log_of(&event, &updates);
                    (Some(event), log)
                }
                None => (None, Vec::new()),
            });
        }
        Ok(found)
    }

    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(items::update_item(event_id, update)))
            .send()
            .await
            .map_err(|e| store_error("update action", e))?;
        Ok(())
    }
}
