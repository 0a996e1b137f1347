//! The directory on DynamoDB (one table per stack, `pk`/`sk`).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | user / tenant / object | `<env>#USER#<id>` / `<env>#TENANT#<id>` / `<env>#OBJECT#<collection>#<id>` | `PROFILE` (`properties` as a map) |
//! | subscription | the object's pk | `SUB#<recipient JSON>` (`properties`) |
//! | … its reverse | the recipient's pk | `SUBOF#<collection>#<id>` |
//! | audience | `<env>#AUDIENCE#<key>` | `META` |
//! | member | the audience's pk | `MEMBER#<tenant>#<user>` |
//! | … its reverse | the user's pk | `MEMBEROF#<key>#<tenant>` |
//! | workflow run | `<env>#WORKFLOW#<key>#<shard>` (one of 32, from the run's cancellation key, else its id: [`crate::shard`]; runs an earlier version wrote are under `<env>#WORKFLOW#<key>`) | `RUN#<id>` (the run as JSON, `status`, `cancellation_key`) |
//! | run by id | `<env>#RUN#<id>` | `RUN` (`workflow_key`, `partition`: the run item's pk) |
//! | applied action | `<env>#APPLIED#<event id>` | `<index, 5 digits>` (`result`); `<index>.<part, 4 digits>` for the parts of a large action |
//!
//! **Keys.** Every part of a key that comes from a request (ids, collections, keys,
//! tenants) is escaped (`%` → `%25`, `#` → `%23`), so `#` only ever separates parts:
//! any string id round-trips, and no id can collide with another or make a cascade
//! delete reach the wrong items (an id `a#b` is stored as `a%23b`). Ids without `%` or
//! `#` are stored as they are.
//!
//! **Exactly once, in the changed item.** An action that is one upsert of one profile
//! (`users_identify`, `objects_set`, `tenants_set`: the usual case) is one conditional
//! write of that profile, which records the action in its own `applied` map (action key
//! → when, and the result) on condition that the key is not there yet: one write unit
//! instead of a two-item transaction (which DynamoDB charges twice). A redelivered
//! action finds its key and is answered with the stored result. The map keeps the keys
//! of the last [`RECENT_WINDOW_MS`] (a stream record is redelivered within 24 hours;
//! older keys are removed by the next write) and at most [`RECENT_KEYS`] of them, so the
//! item stays small; a profile with more recent actions takes the marker path below. A
//! delete of the profile first copies its recent keys into applied-action markers, so
//! that a redelivered upsert of a deleted profile does not bring it back.
//!
//! **Exactly once, in the run's own items.** A trigger whose only change is its run
//! (recipients given by id: the usual case) needs no marker: the run's id is made of
//! the action key (`wr_<event id>_<index>`), so its two items are the action's record.
//! The run-by-id item, holding the action's result, is put first, then the run item,
//! each on condition that it does not exist yet: two write units instead of a
//! three-item transaction (six). A redelivery — after a crash between the two puts or
//! after both — writes what is missing, changes nothing that is there (a run cancelled
//! since stays cancelled) and is answered with the stored result.
//!
//! **Exactly once, with markers.** Every other action: [`Directory::apply`] turns its
//! changes into
//! `TransactWriteItems` whose first item puts an applied-action marker on condition
//! that it does not exist: the changes and the marker commit together, and a re-run is
//! refused by the condition and answered with the stored result. A transaction holds at
//! most 100 items, so an action with more writes (a trigger to 1,000 inline recipients,
//! a subscription of 100 recipients, 1,000 audience members) is split into parts in an
//! order fixed by its changes alone: recipient lists are cut into fixed-size chunks and
//! the changes packed greedily by their largest write count. Each part commits with its
//! own marker, the last one with the action's marker and result, so a re-run after a
//! crash skips the parts already applied and applies the rest: every part, and so the
//! whole action, exactly once. Deletes (which cascade to links whose number only a read
//! tells) and workflow cancellations (which touch the runs matching when they run) go
//! in a part of their own; if that part has more writes than a transaction holds, the
//! excess (deleting links, marking runs cancelled, both idempotent) is written first,
//! and the last 99 writes commit with the marker.
//!
//! Property merges are `SET properties.#k = :v` updates, so only the fields sent change
//! without a read of the values; whether a profile exists (a map attribute cannot be
//! created and written into in one expression) is read for a whole part with
//! `BatchGetItem`. Deletes read the reverse items first and remove both sides.

use crate::error::store_error;
use crate::item::{Item, get_s, n, s};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use inlet_core::directory::{
    ActionKey, Applied, Directory, DirectoryChange, DirectoryError, Entity, RecipientRef,
    WorkflowRun,
};
use inlet_core::store::StoreError;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

/// How long a profile keeps the key of an action applied to it (see the module docs).
pub const RECENT_WINDOW_MS: i64 = 48 * 3_600_000;
/// The most recent action keys a profile keeps; beyond, actions take the marker path.
pub const RECENT_KEYS: usize = 8;

/// DynamoDB's limit of items per transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// Writes of one part besides its marker.
const PART_WRITES: usize = MAX_TRANSACTION_ITEMS - 1;
/// DynamoDB's limit of keys per `BatchGetItem`.
const MAX_BATCH_GET: usize = 100;
/// Recipients (subscriptions) and members (audiences) per part: two items each (the
/// link and its reverse), plus the object or audience item.
const LINKS_PER_PART: usize = 45;

pub struct DynamoDirectory {
    pub client: Client,
    pub table: String,
}

/// A store error as a directory error: throttling, outages and transport failures may
/// pass if retried; what DynamoDB refuses (or an item that cannot be read) will not.
fn unavailable(e: StoreError) -> DirectoryError {
    match e {
        StoreError::Unavailable(m) => DirectoryError::Unavailable(m),
        StoreError::Failed(m) => DirectoryError::Failed(m),
    }
}

fn build(e: aws_sdk_dynamodb::error::BuildError) -> DirectoryError {
    DirectoryError::Failed(format!("building a DynamoDB request: {e}"))
}

fn to_av(value: &Value) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).unwrap_or(AttributeValue::Null(true))
}

fn from_av(value: &AttributeValue) -> Value {
    serde_dynamo::from_attribute_value(value.clone()).unwrap_or(Value::Null)
}

/// One part of a key, escaped so that it contains no `#`.
fn part(text: &str) -> Cow<'_, str> {
    if text.contains(['%', '#']) {
        Cow::Owned(text.replace('%', "%25").replace('#', "%23"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The text of an escaped key part.
fn unpart(text: &str) -> String {
    text.replace("%23", "#").replace("%25", "%")
}

/// Joins escaped parts with `#`.
macro_rules! key {
    ($($piece:expr),+ $(,)?) => {{
        let parts: Vec<Cow<'_, str>> = vec![$($piece),+];
        parts.join("#")
    }};
}

fn user_pk(env: &str, id: &str) -> String {
    key!(part(env), "USER".into(), part(id))
}
fn tenant_pk(env: &str, id: &str) -> String {
    key!(part(env), "TENANT".into(), part(id))
}
fn object_pk(env: &str, collection: &str, id: &str) -> String {
    key!(part(env), "OBJECT".into(), part(collection), part(id))
}
fn recipient_pk(env: &str, r: &RecipientRef) -> String {
    match r {
        RecipientRef::User(id) => user_pk(env, id),
        RecipientRef::Object { collection, id } => object_pk(env, collection, id),
    }
}
/// A recipient in a sort key: its JSON, which is the rest of the key after `SUB#`, so
/// it needs no escaping.
fn recipient_key(r: &RecipientRef) -> String {
    r.to_json().to_string()
}
fn audience_pk(env: &str, key: &str) -> String {
    key!(part(env), "AUDIENCE".into(), part(key))
}
fn workflow_pk(env: &str, workflow_key: &str) -> String {
    key!(part(env), "WORKFLOW".into(), part(workflow_key))
}
fn run_pk(env: &str, run_id: &str) -> String {
    key!(part(env), "RUN".into(), part(run_id))
}
fn run_sk(run_id: &str) -> String {
    key!("RUN".into(), part(run_id))
}
fn subscribed_to_sk(collection: &str, id: &str) -> String {
    key!("SUBOF".into(), part(collection), part(id))
}
fn member_sk(tenant: &str, user: &str) -> String {
    key!("MEMBER".into(), part(tenant), part(user))
}
fn member_of_sk(audience: &str, tenant: &str) -> String {
    key!("MEMBEROF".into(), part(audience), part(tenant))
}
fn applied_pk(env: &str, event_id: &str) -> String {
    key!(part(env), "APPLIED".into(), part(event_id))
}
/// The marker of a whole action, and the prefix of its parts' markers.
fn applied_sk(index: usize) -> String {
    format!("{index:05}")
}
fn part_marker_sk(index: usize, part: usize) -> String {
    format!("{index:05}.{part:04}")
}

/// The two parts after a prefix, unescaped: `SUBOF#<a>#<b>` → `(a, b)`.
fn two_parts(sk: &str, prefix: &str) -> Option<(String, String)> {
    let (a, b) = sk.strip_prefix(prefix)?.split_once('#')?;
    Some((unpart(a), unpart(b)))
}

/// The profile an upsert writes, and its properties.
fn upsert_target<'a>(
    env: &str,
    change: &'a DirectoryChange,
) -> Option<(String, &'a Map<String, Value>)> {
    match change {
        DirectoryChange::IdentifyUser { id, properties } => Some((user_pk(env, id), properties)),
        DirectoryChange::SetObject {
            collection,
            id,
            properties,
        } => Some((object_pk(env, collection, id), properties)),
        DirectoryChange::SetTenant { id, properties } => Some((tenant_pk(env, id), properties)),
        _ => None,
    }
}

/// The partition of a workflow's runs that holds `run`: one of the workflow's shards
/// ([`crate::shard`]), chosen from the run's cancellation key when it has one (so that a
/// cancellation reads one shard, not all of them), else from its id.
fn run_partition(env: &str, run: &WorkflowRun) -> String {
    let spread_by = run.cancellation_key.as_deref().unwrap_or(&run.id);
    crate::shard::sharded(&workflow_pk(env, &run.workflow_key), spread_by)
}

/// Every partition that may hold a run of workflow `workflow_key`.
fn run_partitions(env: &str, workflow_key: &str) -> Vec<String> {
    crate::shard::every_key(&workflow_pk(env, workflow_key))
}

/// The partitions that may hold the runs of `workflow_key` with `cancellation_key`: its
/// shard, and the unsharded partition earlier versions wrote.
fn cancellable_partitions(env: &str, workflow_key: &str, cancellation_key: &str) -> Vec<String> {
    let base = workflow_pk(env, workflow_key);
    vec![crate::shard::sharded(&base, cancellation_key), base]
}

/// A workflow run's items: the run in (a shard of) its workflow's partition, and the
/// pointer by id, which names that partition.
fn run_items(env: &str, run: &WorkflowRun) -> (Item, Item) {
    let partition = run_partition(env, run);
    let mut item = Item::from([
        ("pk".to_string(), s(partition.clone())),
        ("sk".to_string(), s(run_sk(&run.id))),
        (
            "run".to_string(),
            s(serde_json::to_string(run).expect("a run serialises")),
        ),
        ("status".to_string(), s(run.status.clone())),
        ("created_at_ms".to_string(), n(run.created_at_ms)),
    ]);
    if let Some(key) = &run.cancellation_key {
        item.insert("cancellation_key".into(), s(key.clone()));
    }
    let by_id = Item::from([
        ("pk".to_string(), s(run_pk(env, &run.id))),
        ("sk".to_string(), s("RUN")),
        ("workflow_key".to_string(), s(run.workflow_key.clone())),
        ("partition".to_string(), s(partition)),
    ]);
    (item, by_id)
}

/// A write's failure: `None` when its condition failed (the caller reads again), else
/// the store error.
fn condition_failed_or<E, R>(error: SdkError<E, R>) -> Option<StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let condition = error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
        == Some("ConditionalCheckFailedException");
    (!condition).then(|| store_error("directory write", error))
}

/// A stored result (JSON text), or `fallback` when there is none.
fn stored_or(stored: Option<&str>, fallback: &Value) -> Value {
    stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| fallback.clone())
}

/// The key of an action in a profile's `applied` map.
fn applied_entry(key: &ActionKey) -> String {
    format!("{}#{}", key.event_id, key.index)
}

/// The entries of a profile's `applied` map: (action key, applied at, stored result).
fn recent_keys(profile: &Item) -> Vec<(String, i64, Option<String>)> {
    let Some(AttributeValue::M(map)) = profile.get("applied") else {
        return Vec::new();
    };
    map.iter()
        .map(|(entry, value)| {
            let fields = value.as_m().ok();
            let at = fields
                .and_then(|f| f.get("t"))
                .and_then(|t| t.as_n().ok())
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let result = fields
                .and_then(|f| f.get("r"))
                .and_then(|r| r.as_s().ok())
                .cloned();
            (entry.clone(), at, result)
        })
        .collect()
}

/// Before a profile is deleted: its recent action keys become applied-action markers,
/// so a redelivered upsert finds it was applied (and does not recreate the profile).
fn spill_recent_keys(batch: &mut Batch<'_>, profile: &Item) -> Result<(), DirectoryError> {
    for (entry, at, result) in recent_keys(profile) {
        let Some((event_id, index)) = entry.rsplit_once('#') else {
            continue;
        };
        let Ok(index) = index.parse::<usize>() else {
            continue;
        };
        let mut marker = Item::from([
            ("pk".to_string(), s(applied_pk(batch.env, event_id))),
            ("sk".to_string(), s(applied_sk(index))),
            ("applied_at_ms".to_string(), n(at)),
        ]);
        if let Some(result) = result {
            marker.insert("result".into(), s(result));
        }
        batch.put(marker)?;
    }
    Ok(())
}

/// Writes of one transaction.
struct Batch<'a> {
    table: &'a str,
    env: &'a str,
    now_ms: i64,
    writes: Vec<TransactWriteItem>,
    /// Index of each audience condition check, to tell its failure apart.
    audience_checks: Vec<(usize, String)>,
    /// The profiles (pks) among those the part upserts that exist, read up front.
    existing: HashSet<String>,
}

impl Batch<'_> {
    fn put(&mut self, item: Item) -> Result<(), DirectoryError> {
        let put = Put::builder()
            .table_name(self.table)
            .set_item(Some(item))
            .build()
            .map_err(build)?;
        self.writes
            .push(TransactWriteItem::builder().put(put).build());
        Ok(())
    }

    fn delete(&mut self, pk: String, sk: String) -> Result<(), DirectoryError> {
        let delete = Delete::builder()
            .table_name(self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .build()
            .map_err(build)?;
        self.writes
            .push(TransactWriteItem::builder().delete(delete).build());
        Ok(())
    }

    /// Upserts a profile: merges into an existing one, or creates it whole.
    fn upsert(
        &mut self,
        pk: String,
        properties: &Map<String, Value>,
    ) -> Result<(), DirectoryError> {
        if properties.is_empty() || self.existing.contains(&pk) {
            return self.merge_profile(pk, properties);
        }
        self.put(Item::from([
            ("pk".to_string(), s(pk)),
            ("sk".to_string(), s("PROFILE")),
            (
                "properties".to_string(),
                to_av(&Value::Object(properties.clone())),
            ),
            ("created_at_ms".to_string(), n(self.now_ms)),
            ("updated_at_ms".to_string(), n(self.now_ms)),
        ]))
    }

    /// Upserts a profile, merging `properties` key by key (the profile must exist when
    /// there are properties: see [`Batch::upsert`]).
    fn merge_profile(
        &mut self,
        pk: String,
        properties: &Map<String, Value>,
    ) -> Result<(), DirectoryError> {
        let mut expression = String::from(
            "SET created_at_ms = if_not_exists(created_at_ms, :now), updated_at_ms = :now",
        );
        let mut update = Update::builder()
            .table_name(self.table)
            .key("pk", s(pk.clone()))
            .key("sk", s("PROFILE"))
            .expression_attribute_values(":now", n(self.now_ms));
        if properties.is_empty() {
            expression.push_str(", properties = if_not_exists(properties, :empty)");
            update =
                update.expression_attribute_values(":empty", AttributeValue::M(HashMap::new()));
        } else {
            // A map attribute cannot be created and written into in one expression, so
            // the fields are merged only into a profile that exists (checked by the
            // condition: a delete racing the action makes it retry).
            for (i, (key, value)) in properties.iter().enumerate() {
                expression.push_str(&format!(", properties.#k{i} = :v{i}"));
                update = update
                    .expression_attribute_names(format!("#k{i}"), key)
                    .expression_attribute_values(format!(":v{i}"), to_av(value));
            }
            update = update.condition_expression("attribute_exists(properties)");
        }
        let update = update
            .update_expression(expression)
            .build()
            .map_err(build)?;
        self.writes
            .push(TransactWriteItem::builder().update(update).build());
        Ok(())
    }

    /// Creates an audience if missing, without touching an existing one.
    fn ensure_audience(&mut self, pk: String) -> Result<(), DirectoryError> {
        let update = Update::builder()
            .table_name(self.table)
            .key("pk", s(pk))
            .key("sk", s("META"))
            .update_expression("SET created_at_ms = if_not_exists(created_at_ms, :now)")
            .expression_attribute_values(":now", n(self.now_ms))
            .build()
            .map_err(build)?;
        self.writes
            .push(TransactWriteItem::builder().update(update).build());
        Ok(())
    }
}

/// One transaction may touch an item once: upserts of the same user, object or tenant
/// (an inline recipient who is also the actor, say) are merged into the first one, later
/// fields winning.
fn coalesce(changes: &[DirectoryChange]) -> Vec<DirectoryChange> {
    let mut out: Vec<DirectoryChange> = Vec::with_capacity(changes.len());
    for change in changes {
        let target = |c: &DirectoryChange| match c {
            DirectoryChange::IdentifyUser { id, .. } => Some(format!("u{id}")),
            DirectoryChange::SetObject { collection, id, .. } => {
                Some(format!("o{}#{}", part(collection), part(id)))
            }
            DirectoryChange::SetTenant { id, .. } => Some(format!("t{id}")),
            _ => None,
        };
        let existing =
            target(change).and_then(|t| out.iter_mut().find(|c| target(c).as_ref() == Some(&t)));
        match (existing, change) {
            (
                Some(DirectoryChange::IdentifyUser { properties, .. })
                | Some(DirectoryChange::SetObject { properties, .. })
                | Some(DirectoryChange::SetTenant { properties, .. }),
                DirectoryChange::IdentifyUser {
                    properties: more, ..
                }
                | DirectoryChange::SetObject {
                    properties: more, ..
                }
                | DirectoryChange::SetTenant {
                    properties: more, ..
                },
            ) => inlet_core::directory::merge_properties(properties, more),
            _ => out.push(change.clone()),
        }
    }
    out
}

/// A change cut so that each piece fits one part, each with the most writes it can need.
/// Deletes and cancellations count as a whole part: their writes depend on what a read
/// finds.
fn cut(change: DirectoryChange) -> Vec<(DirectoryChange, usize)> {
    fn chunks<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        items.chunks(LINKS_PER_PART).map(<[T]>::to_vec).collect()
    }
    match change {
        DirectoryChange::IdentifyUser { .. }
        | DirectoryChange::SetObject { .. }
        | DirectoryChange::SetTenant { .. }
        | DirectoryChange::DeleteTenant { .. } => vec![(change, 1)],
        DirectoryChange::RecordWorkflowRun(_) => vec![(change, 2)],
        DirectoryChange::DeleteUser { .. }
        | DirectoryChange::DeleteObject { .. }
        | DirectoryChange::CancelWorkflowRuns { .. } => vec![(change, PART_WRITES)],
        DirectoryChange::Subscribe {
            collection,
            id,
            recipients,
            properties,
        } => chunks(&recipients)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len() + 1;
                let piece = DirectoryChange::Subscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients: chunk,
                    properties: properties.clone(),
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::Unsubscribe {
            collection,
            id,
            recipients,
        } => chunks(&recipients)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len();
                let piece = DirectoryChange::Unsubscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients: chunk,
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::AddAudienceMembers {
            key,
            members,
            tenant,
            create_if_missing,
        } => chunks(&members)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len() + 1;
                let piece = DirectoryChange::AddAudienceMembers {
                    key: key.clone(),
                    members: chunk,
                    tenant: tenant.clone(),
                    create_if_missing,
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::RemoveAudienceMembers {
            key,
            members,
            tenant,
        } => chunks(&members)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len();
                let piece = DirectoryChange::RemoveAudienceMembers {
                    key: key.clone(),
                    members: chunk,
                    tenant: tenant.clone(),
                };
                (piece, writes)
            })
            .collect(),
    }
}

/// The parts of one action: its changes cut and packed in order, each part within one
/// transaction (with its marker). Fixed by the changes alone, so a re-run cuts the same
/// parts. Never empty: an action without changes still commits its marker.
fn parts(changes: &[DirectoryChange]) -> Vec<Vec<DirectoryChange>> {
    let mut parts: Vec<Vec<DirectoryChange>> = vec![Vec::new()];
    let mut used = 0;
    for (piece, writes) in coalesce(changes).into_iter().flat_map(cut) {
        let current = parts.last_mut().expect("never empty");
        if !current.is_empty() && used + writes > PART_WRITES {
            parts.push(Vec::new());
            used = 0;
        }
        parts.last_mut().expect("never empty").push(piece);
        used += writes;
    }
    parts
}

/// What committing one part found.
enum PartOutcome {
    Applied,
    /// Its marker was there: another run applied it.
    AppliedBefore,
}

impl DynamoDirectory {
    async fn query(&self, pk: &str, sk_prefix: Option<&str>) -> Result<Vec<Item>, DirectoryError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let mut request = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk))
                .set_exclusive_start_key(start);
            request = match sk_prefix {
                Some(prefix) => request
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => request.key_condition_expression("pk = :pk"),
            };
            let page = request
                .send()
                .await
                .map_err(|e| unavailable(store_error("directory query", e)))?;
            items.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(items);
            }
        }
    }

    /// The run items in `partitions`, read at once.
    async fn runs_in(&self, partitions: &[String]) -> Result<Vec<Item>, DirectoryError> {
        let found =
            futures::future::try_join_all(partitions.iter().map(|pk| self.query(pk, Some("RUN#"))))
                .await?;
        Ok(found.into_iter().flatten().collect())
    }

    async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DirectoryError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map(|r| r.item)
            .map_err(|e| unavailable(store_error("directory get", e)))
    }

    /// Which of the profiles `pks` exist: `BatchGetItem`s of up to 100 keys, consistent.
    async fn existing_profiles(&self, pks: &[String]) -> Result<HashSet<String>, DirectoryError> {
        let mut found = HashSet::new();
        let mut unique: Vec<&String> = pks.iter().collect();
        unique.sort();
        unique.dedup();
        for chunk in unique.chunks(MAX_BATCH_GET) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|pk| Item::from([("pk".into(), s(pk.as_str())), ("sk".into(), s("PROFILE"))]))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .projection_expression("pk")
                    .consistent_read(true)
                    .build()
                    .map_err(build)?,
            );
            let mut rounds = 0;
            while let Some(wanted) = request.take() {
                rounds += 1;
                if rounds > 1 {
                    // Unprocessed keys (throttling): back off before asking again.
                    tokio::time::sleep(std::time::Duration::from_millis(25 << rounds.min(6))).await;
                }
                let answer = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .send()
                    .await
                    .map_err(|e| unavailable(store_error("directory batch get", e)))?;
                for item in answer
                    .responses
                    .unwrap_or_default()
                    .remove(&self.table)
                    .unwrap_or_default()
                {
                    if let Ok(pk) = get_s(&item, "pk") {
                        found.insert(pk.to_string());
                    }
                }
                request = answer
                    .unprocessed_keys
                    .unwrap_or_default()
                    .remove(&self.table)
                    .filter(|k| !k.keys.is_empty());
                if request.is_some() && rounds >= 8 {
                    return Err(DirectoryError::Unavailable(
                        "the directory kept throttling reads".into(),
                    ));
                }
            }
        }
        Ok(found)
    }

    /// Deletes a profile and every subscription and membership that points to or from
    /// it. `who` is the user or object whose profile `pk` is.
    async fn delete_with_links(
        &self,
        batch: &mut Batch<'_>,
        who: &RecipientRef,
    ) -> Result<(), DirectoryError> {
        let pk = recipient_pk(batch.env, who);
        for item in self.query(&pk, None).await? {
            let sk = get_s(&item, "sk").map_err(unavailable)?.to_string();
            if let Some((collection, id)) = two_parts(&sk, "SUBOF#") {
                // The object side of a subscription of `who`.
                batch.delete(
                    object_pk(batch.env, &collection, &id),
                    format!("SUB#{}", recipient_key(who)),
                )?;
            } else if let Some((audience, tenant)) = two_parts(&sk, "MEMBEROF#") {
                if let RecipientRef::User(user) = who {
                    batch.delete(audience_pk(batch.env, &audience), member_sk(&tenant, user))?;
                }
            } else if sk == "PROFILE" {
                spill_recent_keys(batch, &item)?;
            } else if let Some(recipient) = sk.strip_prefix("SUB#") {
                // A subscriber of the object `who`: its reverse item.
                let recipient: RecipientRef = serde_json::from_str(recipient)
                    .map_err(|e| DirectoryError::Failed(e.to_string()))?;
                if let RecipientRef::Object { collection, id } = who {
                    batch.delete(
                        recipient_pk(batch.env, &recipient),
                        subscribed_to_sk(collection, id),
                    )?;
                }
            }
            batch.delete(pk.clone(), sk)?;
        }
        Ok(())
    }

    /// The profiles a part upserts whose existence decides how (create or merge).
    fn profiles_to_check(env: &str, part: &[DirectoryChange]) -> Vec<String> {
        part.iter()
            .filter_map(|change| match change {
                DirectoryChange::IdentifyUser { id, properties } if !properties.is_empty() => {
                    Some(user_pk(env, id))
                }
                DirectoryChange::SetObject {
                    collection,
                    id,
                    properties,
                } if !properties.is_empty() => Some(object_pk(env, collection, id)),
                DirectoryChange::SetTenant { id, properties } if !properties.is_empty() => {
                    Some(tenant_pk(env, id))
                }
                DirectoryChange::Subscribe { collection, id, .. } => {
                    Some(object_pk(env, collection, id))
                }
                _ => None,
            })
            .collect()
    }

    async fn plan(
        &self,
        batch: &mut Batch<'_>,
        change: &DirectoryChange,
    ) -> Result<(), DirectoryError> {
        let env = batch.env;
        match change {
            DirectoryChange::IdentifyUser { id, properties } => {
                batch.upsert(user_pk(env, id), properties)?
            }
            DirectoryChange::SetObject {
                collection,
                id,
                properties,
            } => batch.upsert(object_pk(env, collection, id), properties)?,
            DirectoryChange::SetTenant { id, properties } => {
                batch.upsert(tenant_pk(env, id), properties)?
            }
            DirectoryChange::DeleteUser { id } => {
                self.delete_with_links(batch, &RecipientRef::User(id.clone()))
                    .await?
            }
            DirectoryChange::DeleteObject { collection, id } => {
                let object = RecipientRef::Object {
                    collection: collection.clone(),
                    id: id.clone(),
                };
                self.delete_with_links(batch, &object).await?
            }
            DirectoryChange::DeleteTenant { id } => {
                let pk = tenant_pk(env, id);
                if let Some(profile) = self.get(&pk, "PROFILE").await? {
                    spill_recent_keys(batch, &profile)?;
                }
                batch.delete(pk, "PROFILE".into())?
            }
            DirectoryChange::Subscribe {
                collection,
                id,
                recipients,
                properties,
            } => {
                let object = object_pk(env, collection, id);
                if !batch.existing.contains(&object) {
                    batch.merge_profile(object.clone(), &Map::new())?;
                }
                for r in recipients {
                    batch.put(Item::from([
                        ("pk".to_string(), s(object.clone())),
                        ("sk".to_string(), s(format!("SUB#{}", recipient_key(r)))),
                        (
                            "properties".to_string(),
                            to_av(&Value::Object(properties.clone())),
                        ),
                    ]))?;
                    batch.put(Item::from([
                        ("pk".to_string(), s(recipient_pk(env, r))),
                        ("sk".to_string(), s(subscribed_to_sk(collection, id))),
                    ]))?;
                }
            }
            DirectoryChange::Unsubscribe {
                collection,
                id,
                recipients,
            } => {
                for r in recipients {
                    batch.delete(
                        object_pk(env, collection, id),
                        format!("SUB#{}", recipient_key(r)),
                    )?;
                    batch.delete(recipient_pk(env, r), subscribed_to_sk(collection, id))?;
                }
            }
            DirectoryChange::AddAudienceMembers {
                key,
                members,
                tenant,
                create_if_missing,
            } => {
                let audience = audience_pk(env, key);
                if *create_if_missing {
                    batch.ensure_audience(audience.clone())?;
                } else {
                    let check = ConditionCheck::builder()
                        .table_name(batch.table)
                        .key("pk", s(audience.clone()))
                        .key("sk", s("META"))
                        .condition_expression("attribute_exists(pk)")
                        .build()
                        .map_err(build)?;
                    batch
                        .audience_checks
                        .push((batch.writes.len(), key.clone()));
                    batch
                        .writes
                        .push(TransactWriteItem::builder().condition_check(check).build());
                }
                let tenant = tenant.clone().unwrap_or_default();
                for user in members {
                    batch.put(Item::from([
                        ("pk".to_string(), s(audience.clone())),
                        ("sk".to_string(), s(member_sk(&tenant, user))),
                        ("user_id".to_string(), s(user.clone())),
                    ]))?;
                    batch.put(Item::from([
                        ("pk".to_string(), s(user_pk(env, user))),
                        ("sk".to_string(), s(member_of_sk(key, &tenant))),
                    ]))?;
                }
            }
            DirectoryChange::RemoveAudienceMembers {
                key,
                members,
                tenant,
            } => {
                let tenant = tenant.clone().unwrap_or_default();
                for user in members {
                    batch.delete(audience_pk(env, key), member_sk(&tenant, user))?;
                    batch.delete(user_pk(env, user), member_of_sk(key, &tenant))?;
                }
            }
            DirectoryChange::RecordWorkflowRun(run) => {
                let (run_item, by_id) = run_items(env, run);
                batch.put(run_item)?;
                batch.put(by_id)?;
            }
            DirectoryChange::CancelWorkflowRuns {
                workflow_key,
                cancellation_key,
                recipients,
            } => {
                for item in self
                    .runs_in(&cancellable_partitions(env, workflow_key, cancellation_key))
                    .await?
                {
                    let mut run: WorkflowRun =
                        serde_json::from_str(get_s(&item, "run").map_err(unavailable)?)
                            .map_err(|e| DirectoryError::Failed(e.to_string()))?;
                    let matches = run.status == "triggered"
                        && run.cancellation_key.as_deref() == Some(cancellation_key.as_str())
                        && recipients
                            .as_ref()
                            .is_none_or(|only| run.recipients.iter().any(|r| only.contains(r)));
                    if matches {
                        run.status = "cancelled".into();
                        let mut updated = item.clone();
                        updated.insert(
                            "run".into(),
                            s(serde_json::to_string(&run).expect("a run serialises")),
                        );
                        updated.insert("status".into(), s("cancelled"));
                        batch.put(updated)?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn transact(&self, writes: Vec<TransactWriteItem>) -> Result<(), DirectoryError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable(store_error("apply directory changes", e)))
    }

    /// Commits one part of an action with its marker (`result` on the last part).
    async fn apply_part(
        &self,
        env: &str,
        marker: (&str, String, Option<&Value>),
        changes: &[DirectoryChange],
        now_ms: i64,
    ) -> Result<PartOutcome, DirectoryError> {
        let (marker_pk, marker_sk, result) = marker;
        let mut batch = Batch {
            table: &self.table,
            env,
            now_ms,
            writes: Vec::new(),
            audience_checks: Vec::new(),
            existing: self
                .existing_profiles(&Self::profiles_to_check(env, changes))
                .await?,
        };
        let mut marker_put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(marker_pk))
            .item("sk", s(marker_sk))
            .item("applied_at_ms", n(now_ms))
            .condition_expression("attribute_not_exists(pk)");
        if let Some(result) = result {
            marker_put = marker_put.item("result", s(result.to_string()));
        }
        batch.writes.push(
            TransactWriteItem::builder()
                .put(marker_put.build().map_err(build)?)
                .build(),
        );
        for change in changes {
            self.plan(&mut batch, change).await?;
        }
        if batch.writes.len() > MAX_TRANSACTION_ITEMS {
            // Only a part of one delete or cancellation gets here (see `cut`); its
            // writes are idempotent, so all but the last ones go first, and those commit
            // with the marker.
            let excess = batch.writes.len() - MAX_TRANSACTION_ITEMS;
            let first: Vec<TransactWriteItem> = batch.writes.drain(1..=excess).collect();
            for chunk in first.chunks(MAX_TRANSACTION_ITEMS) {
                self.transact(chunk.to_vec()).await?;
            }
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(batch.writes))
            .send()
            .await;
        let Err(error) = sent else {
            return Ok(PartOutcome::Applied);
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            let failed =
                |i: usize| reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed");
            if failed(0) {
                return Ok(PartOutcome::AppliedBefore);
            }
            if let Some((_, key)) = batch.audience_checks.iter().find(|(i, _)| failed(*i)) {
                return Err(DirectoryError::Rejected(format!(
                    "audience `{key}` does not exist; create it first or map `create_if_missing: {{ value: true }}`"
                )));
            }
            if reasons
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                // A profile merge raced a delete; the retry reads again.
                return Err(DirectoryError::Unavailable(
                    "a directory item changed during the action; retrying".into(),
                ));
            }
        }
        Err(unavailable(store_error("apply directory changes", error)))
    }

    /// Applies an upsert of one profile as one conditional write that records the
    /// action in the profile (see the module docs). `None` when the profile holds too
    /// many recent keys (the caller takes the marker path).
    async fn apply_in_profile(
        &self,
        pk: &str,
        properties: &Map<String, Value>,
        key: &ActionKey,
        result: &Value,
        now_ms: i64,
    ) -> Result<Option<Applied>, DirectoryError> {
        let entry = applied_entry(key);
        let profile = self.get(pk, "PROFILE").await?;
        let recent = profile.as_ref().map(recent_keys).unwrap_or_default();
        if let Some((_, _, stored)) = recent.iter().find(|(e, _, _)| *e == entry) {
            return Ok(Some(Applied::Before(stored_or(stored.as_deref(), result))));
        }
        let (young, stale): (Vec<_>, Vec<_>) = recent
            .iter()
            .partition(|(_, at, _)| *at > now_ms - RECENT_WINDOW_MS);
        if young.len() >= RECENT_KEYS {
            return Ok(None);
        }
        let record = AttributeValue::M(HashMap::from([
            ("t".to_string(), n(now_ms)),
            ("r".to_string(), s(result.to_string())),
        ]));
        let written = match &profile {
            None => {
                let item = Item::from([
                    ("pk".to_string(), s(pk)),
                    ("sk".to_string(), s("PROFILE")),
                    (
                        "properties".to_string(),
                        to_av(&Value::Object(properties.clone())),
                    ),
                    ("created_at_ms".to_string(), n(now_ms)),
                    ("updated_at_ms".to_string(), n(now_ms)),
                    (
                        "applied".to_string(),
                        AttributeValue::M(HashMap::from([(entry.clone(), record)])),
                    ),
                ]);
                self.client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .send()
                    .await
                    .map(drop)
                    .map_err(condition_failed_or)
            }
            Some(existing) => {
                let mut set = vec![
                    "created_at_ms = if_not_exists(created_at_ms, :now)".to_string(),
                    "updated_at_ms = :now".to_string(),
                ];
                let mut update = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", s(pk))
                    .key("sk", s("PROFILE"))
                    .expression_attribute_values(":now", n(now_ms));
                if properties.is_empty() {
                    set.push("properties = if_not_exists(properties, :empty)".into());
                    update = update
                        .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()));
                }
                for (i, (name, value)) in properties.iter().enumerate() {
                    set.push(format!("properties.#k{i} = :v{i}"));
                    update = update
                        .expression_attribute_names(format!("#k{i}"), name)
                        .expression_attribute_values(format!(":v{i}"), to_av(value));
                }
                let condition = if existing.contains_key("applied") {
                    // DynamoDB refuses names an expression does not use: only here.
                    set.push("applied.#entry = :record".into());
                    update = update
                        .expression_attribute_names("#entry", &entry)
                        .expression_attribute_values(":record", record);
                    "attribute_exists(pk) AND attribute_not_exists(applied.#entry)"
                } else {
                    set.push("applied = :applied".into());
                    update = update.expression_attribute_values(
                        ":applied",
                        AttributeValue::M(HashMap::from([(entry.clone(), record)])),
                    );
                    "attribute_exists(pk) AND attribute_not_exists(applied)"
                };
                let mut expression = format!("SET {}", set.join(", "));
                if !stale.is_empty() {
                    let removed: Vec<String> =
                        (0..stale.len()).map(|i| format!("applied.#s{i}")).collect();
                    expression.push_str(&format!(" REMOVE {}", removed.join(", ")));
                    for (i, (old, _, _)) in stale.iter().enumerate() {
                        update = update.expression_attribute_names(format!("#s{i}"), old);
                    }
                }
                update
                    .update_expression(expression)
                    .condition_expression(condition)
                    .send()
                    .await
                    .map(drop)
                    .map_err(condition_failed_or)
            }
        };
        match written {
            Ok(()) => Ok(Some(Applied::Now)),
            Err(None) => {
                // Another run of this action, or a create or delete of the profile, came
                // first: read again.
                let again = self.get(pk, "PROFILE").await?;
                if let Some((_, _, stored)) = again
                    .as_ref()
                    .map(recent_keys)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|(e, _, _)| *e == entry)
                {
                    return Ok(Some(Applied::Before(stored_or(stored.as_deref(), result))));
                }
                Err(DirectoryError::Unavailable(
                    "a directory item changed during the action; retrying".into(),
                ))
            }
            Err(Some(error)) => Err(unavailable(error)),
        }
    }

    /// Records a run as its own two items, each put only if new (see the module docs):
    /// the pointer by id with the action's result first, then the run.
    async fn apply_run(
        &self,
        env: &str,
        run: &WorkflowRun,
        result: &Value,
        now_ms: i64,
    ) -> Result<Applied, DirectoryError> {
        let (run_item, mut by_id) = run_items(env, run);
        by_id.insert("result".into(), s(result.to_string()));
        by_id.insert("applied_at_ms".into(), n(now_ms));
        let earlier = self.put_if_new(by_id).await?;
        self.put_if_new(run_item).await?;
        match earlier {
            None => Ok(Applied::Now),
            Some(pointer) => Ok(Applied::Before(stored_or(
                get_s(&pointer, "result").ok(),
                &Value::Null,
            ))),
        }
    }

    /// Puts `item` on condition that it does not exist; answers the item already there
    /// when it does.
    async fn put_if_new(&self, item: Item) -> Result<Option<Item>, DirectoryError> {
        let sent = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(None),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                match e.into_err() {
                    PutItemError::ConditionalCheckFailedException(failed) => {
                        Ok(Some(failed.item.unwrap_or_default()))
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Err(e) => Err(unavailable(store_error("directory write", e))),
        }
    }

    /// The result stored with an action's marker.
    fn stored_result(marker: &Item) -> Result<Value, DirectoryError> {
        Ok(
            serde_json::from_str(get_s(marker, "result").map_err(unavailable)?)
                .unwrap_or(Value::Null),
        )
    }

    fn entity(&self, item: &Item, id: &str) -> Result<Entity, DirectoryError> {
        let properties = match item.get("properties").map(from_av) {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        let number = |name: &str| {
            item.get(name)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Ok(Entity {
            id: id.to_string(),
            properties,
            created_at_ms: number("created_at_ms"),
            updated_at_ms: number("updated_at_ms"),
        })
    }
}

#[async_trait]
impl Directory for DynamoDirectory {
    async fn apply(
        &self,
        environment: &str,
        key: &ActionKey,
        changes: &[DirectoryChange],
        result: &Value,
        now_ms: i64,
    ) -> Result<Applied, DirectoryError> {
        let marker_pk = applied_pk(environment, &key.event_id);
        let whole = applied_sk(key.index);
        // The action's markers: the whole action's, and those of parts applied so far.
        let markers = self.query(&marker_pk, Some(&whole)).await?;
        if let Some(done) = markers.iter().find(|m| get_s(m, "sk").ok() == Some(&whole)) {
            return Ok(Applied::Before(Self::stored_result(done)?));
        }
        if let [DirectoryChange::RecordWorkflowRun(run)] = changes {
            return self.apply_run(environment, run, result, now_ms).await;
        }
        if let [change] = changes
            && let Some((pk, properties)) = upsert_target(environment, change)
            && let Some(applied) = self
                .apply_in_profile(&pk, properties, key, result, now_ms)
                .await?
        {
            return Ok(applied);
        }
        let done: HashSet<String> = markers
            .iter()
            .filter_map(|m| get_s(m, "sk").ok().map(str::to_string))
            .collect();
        let parts = parts(changes);
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let marker_sk = if i == last {
                whole.clone()
            } else {
                part_marker_sk(key.index, i)
            };
            if i < last && done.contains(&marker_sk) {
                continue;
            }
            let stored_result = (i == last).then_some(result);
            let outcome = self
                .apply_part(
                    environment,
                    (&marker_pk, marker_sk.clone(), stored_result),
                    part,
                    now_ms,
                )
                .await?;
            if let (PartOutcome::AppliedBefore, true) = (outcome, i == last) {
                // Another run of this action committed first.
                let marker = self
                    .get(&marker_pk, &marker_sk)
                    .await?
                    .ok_or_else(|| DirectoryError::Unavailable("applied marker vanished".into()))?;
                return Ok(Applied::Before(Self::stored_result(&marker)?));
            }
        }
        Ok(Applied::Now)
    }

    async fn known_users(
        &self,
        environment: &str,
        ids: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        let pks: Vec<String> = ids.iter().map(|id| user_pk(environment, id)).collect();
        let existing = self.existing_profiles(&pks).await?;
        Ok(ids
            .iter()
            .zip(&pks)
            .filter(|(_, pk)| existing.contains(*pk))
            .map(|(id, _)| id.clone())
            .collect())
    }

    async fn user(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.get(&user_pk(environment, id), "PROFILE")
            .await?
            .map(|i| self.entity(&i, id))
            .transpose()
    }

    async fn object(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Entity>, DirectoryError> {
        self.get(&object_pk(environment, collection, id), "PROFILE")
            .await?
            .map(|i| self.entity(&i, id))
            .transpose()
    }

    async fn tenant(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.get(&tenant_pk(environment, id), "PROFILE")
            .await?
            .map(|i| self.entity(&i, id))
            .transpose()
    }

    async fn subscriptions(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(RecipientRef, Map<String, Value>)>, DirectoryError> {
        let mut out = Vec::new();
        for item in self
            .query(&object_pk(environment, collection, id), Some("SUB#"))
            .await?
        {
            let sk = get_s(&item, "sk").map_err(unavailable)?;
            let recipient: RecipientRef = serde_json::from_str(&sk["SUB#".len()..])
                .map_err(|e| DirectoryError::Failed(e.to_string()))?;
            let properties = match item.get("properties").map(from_av) {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            out.push((recipient, properties));
        }
        out.sort_by_key(|a| recipient_key(&a.0));
        Ok(out)
    }

    async fn audience_members(
        &self,
        environment: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        let items = self.query(&audience_pk(environment, key), None).await?;
        if !items.iter().any(|i| get_s(i, "sk").ok() == Some("META")) {
            return Ok(None);
        }
        let mut members: Vec<String> = items
            .iter()
            .filter_map(|i| i.get("user_id").and_then(|v| v.as_s().ok()).cloned())
            .collect();
        members.sort();
        members.dedup();
        Ok(Some(members))
    }

    async fn workflow_run(
        &self,
        environment: &str,
        id: &str,
    ) -> Result<Option<WorkflowRun>, DirectoryError> {
        let Some(pointer) = self.get(&run_pk(environment, id), "RUN").await? else {
            return Ok(None);
        };
        // Runs an earlier version wrote sit in the workflow's unsharded partition.
        let partition = match get_s(&pointer, "partition") {
            Ok(partition) => partition.to_string(),
            Err(_) => workflow_pk(
                environment,
                get_s(&pointer, "workflow_key").map_err(unavailable)?,
            ),
        };
        let Some(item) = self.get(&partition, &run_sk(id)).await? else {
            return Ok(None);
        };
        serde_json::from_str(get_s(&item, "run").map_err(unavailable)?)
            .map(Some)
            .map_err(|e| DirectoryError::Failed(e.to_string()))
    }

    async fn workflow_runs(
        &self,
        environment: &str,
        workflow_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, DirectoryError> {
        let Some(key) = workflow_key else {
            return Err(DirectoryError::Rejected(
                "on AWS, runs are listed per workflow: pass a workflow key".into(),
            ));
        };
        let mut runs: Vec<WorkflowRun> = self
            .runs_in(&run_partitions(environment, key))
            .await?
            .iter()
            .filter_map(|i| {
                get_s(i, "run")
                    .ok()
                    .and_then(|r| serde_json::from_str(r).ok())
            })
            .collect();
        runs.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        runs.truncate(limit);
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_round_trip_and_never_hold_a_separator() {
        for id in ["plain", "a#b", "100%", "%23", "#", "x y/z", "ünï#%"] {
            assert!(!part(id).contains('#'), "{id}");
            assert_eq!(unpart(&part(id)), id);
        }
        // `a#b` as one id and `a`, `b` as two parts give different keys.
        assert_ne!(object_pk("e", "a#b", "c"), object_pk("e", "a", "b#c"));
        assert_eq!(
            two_parts(&subscribed_to_sk("a#b", "c%d"), "SUBOF#"),
            Some(("a#b".into(), "c%d".into()))
        );
        assert_eq!(user_pk("development", "u1"), "development#USER#u1");
    }

    #[test]
    fn large_actions_are_cut_into_parts_that_fit_a_transaction() {
        let inline: Vec<DirectoryChange> = (0..1000)
            .map(|i| DirectoryChange::IdentifyUser {
                id: format!("u{i}"),
                properties: Map::new(),
            })
            .chain([DirectoryChange::Subscribe {
                collection: "c".into(),
                id: "o".into(),
                recipients: (0..100)
                    .map(|i| RecipientRef::User(format!("u{i}")))
                    .collect(),
                properties: Map::new(),
            }])
            .collect();
        let cut = parts(&inline);
        let pieces = |p: &Vec<DirectoryChange>| -> usize { p.iter().map(cut_writes).sum() };
        assert!(
            cut.iter().all(|p| pieces(p) <= PART_WRITES),
            "{}",
            cut.len()
        );
        assert_eq!(
            cut.len(),
            14,
            "1000 upserts in 11 parts, then 3 parts of subscriptions"
        );
        assert_eq!(parts(&inline).len(), cut.len(), "the same parts every time");
        assert_eq!(
            parts(&[]).len(),
            1,
            "an action without changes still has its marker"
        );
    }

    fn cut_writes(change: &DirectoryChange) -> usize {
        super::cut(change.clone()).iter().map(|(_, w)| w).sum()
    }
}
