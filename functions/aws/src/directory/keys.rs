//! How directory records are keyed: partition and sort keys per record kind (users,
//! tenants, objects, subscriptions, audiences, workflow runs and their shards, applied
//! actions), key parts that never hold a separator, and value conversions.

use crate::error::store_error;
use crate::item::{Item, n, s};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use inlet_core::directory::{
    ActionKey, DirectoryChange, DirectoryError, RecipientRef, WorkflowRun,
};
use inlet_core::store::StoreError;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A store error as a directory error: throttling, outages and transport failures may
/// pass if retried; what DynamoDB refuses (or an item that cannot be read) will not.
pub(super) fn unavailable(e: StoreError) -> DirectoryError {
    match e {
        StoreError::Unavailable(m) => DirectoryError::Unavailable(m),
        StoreError::Failed(m) => DirectoryError::Failed(m),
    }
}

pub(super) fn build(e: aws_sdk_dynamodb::error::BuildError) -> DirectoryError {
    DirectoryError::Failed(format!("building a DynamoDB request: {e}"))
}

pub(super) fn to_av(value: &Value) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).unwrap_or(AttributeValue::Null(true))
}

pub(super) fn from_av(value: &AttributeValue) -> Value {
    serde_dynamo::from_attribute_value(value.clone()).unwrap_or(Value::Null)
}

/// One part of a key, escaped so that it contains no `#`.
pub(super) fn part(text: &str) -> Cow<'_, str> {
    if text.contains(['%', '#']) {
        Cow::Owned(text.replace('%', "%25").replace('#', "%23"))
    } else {
        Cow::Borrowed(text)
    }
}

/// The text of an escaped key part.
pub(super) fn unpart(text: &str) -> String {
    text.replace("%23", "#").replace("%25", "%")
}

/// Joins escaped parts with `#`.
macro_rules! key {
    ($($piece:expr),+ $(,)?) => {{
        let parts: Vec<Cow<'_, str>> = vec![$($piece),+];
        parts.join("#")
    }};
}

pub(super) fn user_pk(env: &str, id: &str) -> String {
    key!(part(env), "USER".into(), part(id))
}
pub(super) fn tenant_pk(env: &str, id: &str) -> String {
    key!(part(env), "TENANT".into(), part(id))
}
pub(super) fn object_pk(env: &str, collection: &str, id: &str) -> String {
    key!(part(env), "OBJECT".into(), part(collection), part(id))
}
pub(super) fn recipient_pk(env: &str, r: &RecipientRef) -> String {
    match r {
        RecipientRef::User(id) => user_pk(env, id),
        RecipientRef::Object { collection, id } => object_pk(env, collection, id),
    }
}
/// A recipient in a sort key: its JSON, which is the rest of the key after `SUB#`, so
/// it needs no escaping.
pub(super) fn recipient_key(r: &RecipientRef) -> String {
    r.to_json().to_string()
}
pub(super) fn audience_pk(env: &str, key: &str) -> String {
    key!(part(env), "AUDIENCE".into(), part(key))
}
pub(super) fn workflow_pk(env: &str, workflow_key: &str) -> String {
    key!(part(env), "WORKFLOW".into(), part(workflow_key))
}
pub(super) fn run_pk(env: &str, run_id: &str) -> String {
    key!(part(env), "RUN".into(), part(run_id))
}
pub(super) fn run_sk(run_id: &str) -> String {
    key!("RUN".into(), part(run_id))
}
pub(super) fn subscribed_to_sk(collection: &str, id: &str) -> String {
    key!("SUBOF".into(), part(collection), part(id))
}
pub(super) fn member_sk(tenant: &str, user: &str) -> String {
    key!("MEMBER".into(), part(tenant), part(user))
}
pub(super) fn member_of_sk(audience: &str, tenant: &str) -> String {
    key!("MEMBEROF".into(), part(audience), part(tenant))
}
pub(super) fn applied_pk(env: &str, event_id: &str) -> String {
    key!(part(env), "APPLIED".into(), part(event_id))
}
/// The marker of a whole action, and the prefix of its parts' markers.
pub(super) fn applied_sk(index: usize) -> String {
    format!("{index:05}")
}
pub(super) fn part_marker_sk(index: usize, part: usize) -> String {
    format!("{index:05}.{part:04}")
}

/// The two parts after a prefix, unescaped: `SUBOF#<a>#<b>` → `(a, b)`.
pub(super) fn two_parts(sk: &str, prefix: &str) -> Option<(String, String)> {
    let (a, b) = sk.strip_prefix(prefix)?.split_once('#')?;
    Some((unpart(a), unpart(b)))
}

/// The profile an upsert writes, and its properties.
pub(super) fn upsert_target<'a>(
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
pub(super) fn run_partition(env: &str, run: &WorkflowRun) -> String {
    let spread_by = run.cancellation_key.as_deref().unwrap_or(&run.id);
    crate::shard::sharded(&workflow_pk(env, &run.workflow_key), spread_by)
}

/// Every partition that may hold a run of workflow `workflow_key`.
pub(super) fn run_partitions(env: &str, workflow_key: &str) -> Vec<String> {
    crate::shard::every_key(&workflow_pk(env, workflow_key))
}

/// The partitions that may hold the runs of `workflow_key` with `cancellation_key`: its
/// shard, and the unsharded partition earlier versions wrote.
pub(super) fn cancellable_partitions(
    env: &str,
    workflow_key: &str,
    cancellation_key: &str,
) -> Vec<String> {
    let base = workflow_pk(env, workflow_key);
    vec![crate::shard::sharded(&base, cancellation_key), base]
}

/// A workflow run's items: the run in (a shard of) its workflow's partition, and the
/// pointer by id, which names that partition.
pub(super) fn run_items(env: &str, run: &WorkflowRun) -> (Item, Item) {
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
pub(super) fn condition_failed_or<E, R>(error: SdkError<E, R>) -> Option<StoreError>
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
pub(super) fn stored_or(stored: Option<&str>, fallback: &Value) -> Value {
    stored
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_else(|| fallback.clone())
}

/// The key of an action in a profile's `applied` map.
pub(super) fn applied_entry(key: &ActionKey) -> String {
    format!("{}#{}", key.event_id, key.index)
}
