//! How an event is stored as items of the events table, and read back from the items
//! of every format version ([`crate::format`]): the event item (its record deflated
//! into `z`, or into `PART#` items when large), the action items (the executor's latest
//! update of each action), and the readers of the items earlier versions wrote.

use crate::event_key::event_pk;
use crate::format;
use crate::item::{Item, get_json, get_n, get_s, json, n, s, ttl};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use inlet_core::store::{ActionLogEntry, ActionStatus, ActionUpdate, EventRecord, StoreError};
use std::io::{Read, Write};

/// The largest deflated event JSON kept whole in the event item (DynamoDB's item limit
/// is 400 KB, attribute names and the other attributes included).
pub const INLINE_BYTES: usize = 350_000;
/// The largest event JSON (with its plan, before deflating) one commit can write: a
/// transaction carries at most 4 MB.
pub const MAX_EVENT_BYTES: usize = 3_800_000;

/// On an event item stored by a delivery that completed another one's claim (step 4):
/// the scope it was stored for.
pub(super) const SCOPE_ATTRIBUTE: &str = "scope";

/// The stream's mark on an event item whose actions are to run.
pub const QUEUE_ATTRIBUTE: &str = "queue";
pub const QUEUE_ACTIONS: &str = "actions";

/// On every event item: a nonce of the commit that wrote it, so that a write whose
/// answer was lost recognises its own item when the SDK sends it again.
pub(super) const WRITER_ATTRIBUTE: &str = "writer";

/// An event as the items it is stored as, built before anything is written (so that a
/// too-large event fails before its scope is claimed).
pub(super) struct EncodedEvent {
    pub(super) item: Item,
    pub(super) parts: Vec<Item>,
    /// This write's nonce (the item's [`WRITER_ATTRIBUTE`]).
    pub(super) writer: String,
}

fn action_sk(index: usize) -> String {
    format!("ACTION#{index:05}")
}

fn part_sk(index: usize) -> String {
    format!("PART#{index:05}")
}

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

fn inflate(bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| {
            StoreError::Failed(format!("an event's stored record is not deflate data: {e}"))
        })?;
    Ok(out)
}

/// The items `event` is stored as, expiring at `expires_at_ms`.
pub(super) fn encode(event: &EventRecord, expires_at_ms: i64) -> Result<EncodedEvent, StoreError> {
    let full = serde_json::to_vec(event)
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
            s(crate::shard::sharded(
                &listing_key(&event.source, &event.environment),
                &event.id,
            )),
        ),
        ("gsi1sk".to_string(), s(event.id.clone())),
        ("status".to_string(), s(event.status.as_str())),
        ("at".to_string(), n(event.received_at_ms)),
        ("expires_at".to_string(), ttl(expires_at_ms)),
    ]);
    item.extend([format::stamp()]);
    let writer = inlet_core::store::new_event_id();
    item.insert(WRITER_ATTRIBUTE.into(), s(writer.clone()));
    if let Some(event_type) = &event.event_type {
        item.insert("etype".into(), s(event_type.clone()));
    }
    if event.is_queued() {
        item.insert(QUEUE_ATTRIBUTE.into(), s(QUEUE_ACTIONS));
    }
    let deflated = deflate(&full);
    let mut parts = Vec::new();
    if deflated.len() <= INLINE_BYTES {
        item.insert("z".into(), AttributeValue::B(Blob::new(deflated)));
    } else {
        for (i, chunk) in deflated.chunks(INLINE_BYTES).enumerate() {
            parts.push(Item::from([
                ("pk".to_string(), s(event_pk(&event.id))),
                ("sk".to_string(), s(part_sk(i))),
                ("chunk".to_string(), AttributeValue::B(Blob::new(chunk))),
                ("expires_at".to_string(), ttl(expires_at_ms)),
                format::stamp(),
            ]));
        }
        item.insert("zparts".into(), n(parts.len() as i64));
    }
    Ok(EncodedEvent {
        item,
        parts,
        writer,
    })
}

/// The item of the executor's latest update of one action of `event_id`.
pub(super) fn update_item(event_id: &str, update: &ActionUpdate) -> Item {
    let stored = StoredUpdate {
        index: update.index,
        status: update.status,
        result: update.result.clone(),
        error: update.error.clone(),
        attempts: update.attempts,
        updated_at_ms: update.now_ms,
    };
    let retention_ms = inlet_core::defaults::RETENTION_DAYS * 86_400_000;
    Item::from([
        ("pk".to_string(), s(event_pk(event_id))),
        ("sk".to_string(), s(action_sk(update.index))),
        ("update".to_string(), json(&stored)),
        ("expires_at".to_string(), ttl(update.now_ms + retention_ms)),
        format::stamp(),
    ])
}

/// An event from its stored JSON; `pk` names it in the error.
fn decode(pk: &str, json: &[u8]) -> Result<EventRecord, StoreError> {
    serde_json::from_slice(json)
        .map_err(|e| StoreError::Failed(format!("the stored record of {pk} is not an event: {e}")))
}

/// The event (with its plan) and its action updates, from its partition's items, of
/// whichever format versions they are; `None` when there is no event item (or only
/// what TTL left of an expired one).
pub(super) fn assemble(
    items: &[Item],
) -> Result<Option<(EventRecord, Vec<ActionUpdate>)>, StoreError> {
    let Some(head) = items.iter().find(|i| get_s(i, "sk").ok() == Some("EVENT")) else {
        return Ok(None);
    };
    let pk = event_pk_of(head)?;
    let version = format::version_of(head, pk)?;
    let Some(mut event) = read_record(head, items, version)? else {
        return Ok(None);
    };
    let mut updates: Vec<ActionUpdate> = Vec::new();
    for item in items
        .iter()
        .filter(|i| get_s(i, "sk").is_ok_and(|sk| sk.starts_with("ACTION#")))
    {
        let what = format!("an action item of {pk}");
        match format::version_of(item, &what)? {
            1 if !item.contains_key("update") => {
                read_logged_action(item, &mut event, &mut updates)?
            }
            _ => updates.push(get_json::<StoredUpdate>(item, "update")?.into()),
        }
    }
    event.actions.sort_by_key(|a| a.index);
    Ok(Some((event, updates)))
}

/// The record an event item holds: deflated whole (`z`) or in deflated parts
/// (`zparts`), in every version; in version 1 also undeflated parts (`parts`) or JSON
/// (`data`). `None` for an expired event whose parts TTL already deleted.
fn read_record(
    head: &Item,
    items: &[Item],
    version: i64,
) -> Result<Option<EventRecord>, StoreError> {
    let pk = event_pk_of(head)?;
    if let Some(zipped) = head.get("z").and_then(|v| v.as_b().ok()) {
        return decode(pk, &inflate(zipped.as_ref())?).map(Some);
    }
    let (count_attribute, deflated) = if head.contains_key("zparts") {
        ("zparts", true)
    } else if version == 1 && head.contains_key("parts") {
        ("parts", false)
    } else if version == 1 && head.contains_key("data") {
        return get_json::<EventRecord>(head, "data").map(Some);
    } else {
        return Err(StoreError::Failed(format!(
            "the event item {pk} (format {version}) holds no record (`z` or `zparts`)"
        )));
    };
    let count = get_n(head, count_attribute)?;
    let mut chunks: Vec<(&str, &[u8])> = items
        .iter()
        .filter_map(|i| {
            let sk = get_s(i, "sk").ok()?;
            let chunk = i.get("chunk")?.as_b().ok()?;
            sk.starts_with("PART#").then_some((sk, chunk.as_ref()))
        })
        .collect();
    chunks.sort_by_key(|(sk, _)| *sk);
    if chunks.len() as i64 != count {
        // TTL deletes an event's items one by one, in no order: an expired event's
        // head may outlive its parts. That event is gone, not broken.
        if expired(head) {
            return Ok(None);
        }
        return Err(StoreError::Failed(format!(
            "the stored parts of {pk} are incomplete ({} of {count})",
            chunks.len()
        )));
    }
    let bytes: Vec<u8> = chunks
        .iter()
        .flat_map(|(_, chunk)| chunk.iter().copied())
        .collect();
    let bytes = if deflated { inflate(&bytes)? } else { bytes };
    decode(pk, &bytes).map(Some)
}

/// A version 1 action item that holds its whole log entry (`data`): its update, and its
/// planned action, which such events kept here rather than in the event item.
fn read_logged_action(
    item: &Item,
    event: &mut EventRecord,
    updates: &mut Vec<ActionUpdate>,
) -> Result<(), StoreError> {
    let entry: ActionLogEntry = get_json(item, "data")?;
    updates.push(entry.as_update());
    if !event.actions.iter().any(|a| a.index == entry.index) {
        event.actions.push(entry.planned_action());
    }
    Ok(())
}

/// The action log of `event`: its plan, each action with its latest stored update.
pub(super) fn action_log_of(event: &EventRecord, updates: &[ActionUpdate]) -> Vec<ActionLogEntry> {
    event
        .actions
        .iter()
        .map(|a| {
            let mut entry = ActionLogEntry::planned(a, event.received_at_ms);
            if let Some(update) = updates.iter().find(|u| u.index == a.index) {
                entry.apply(update);
            }
            entry
        })
        .collect()
}

/// Whether an item's TTL has passed (DynamoDB deletes such items within days, not at
/// once).
fn expired(item: &Item) -> bool {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    get_n(item, "expires_at").is_ok_and(|at| at <= now_s)
}

/// The `pk` of an event item.
fn event_pk_of(item: &Item) -> Result<&str, StoreError> {
    get_s(item, "pk")
}

/// The listing index's key of a source environment, before sharding
/// ([`crate::shard`]).
pub(super) fn listing_key(source: &str, environment: &str) -> String {
    format!("{source}#{environment}")
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
