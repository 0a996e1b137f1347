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
//! | workflow run | `<env>#WORKFLOW#<key>` | `RUN#<id>` (the run as JSON, `status`, `cancellation_key`) |
//! | run by id | `<env>#RUN#<id>` | `RUN` (`workflow_key`) |
//! | applied action | `<env>#APPLIED#<event id>` | `<index, 5 digits>` (`result`) |
//!
//! [`Directory::apply`] turns one action's changes into a single `TransactWriteItems`
//! whose first item puts the applied-action marker on condition that it does not exist:
//! the changes and the marker commit together, and a re-run is refused by the condition
//! and answered with the stored result. Property merges are `SET properties.#k = :v`
//! updates, so only the fields sent change without a read. Deletes read the reverse
//! items first and remove both sides in the same transaction.

use crate::error::store_error;
use crate::item::{Item, get_s, n, s};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use inlet_core::directory::{
    ActionKey, Applied, Directory, DirectoryChange, DirectoryError, Entity, RecipientRef,
    WorkflowRun,
};
use inlet_core::store::StoreError;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// DynamoDB's limit of items per transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

pub struct DynamoDirectory {
    pub client: Client,
    pub table: String,
}

fn unavailable(e: StoreError) -> DirectoryError {
    DirectoryError::Unavailable(e.to_string())
}

fn build(e: aws_sdk_dynamodb::error::BuildError) -> DirectoryError {
    DirectoryError::Unavailable(format!("building a DynamoDB request: {e}"))
}

fn to_av(value: &Value) -> AttributeValue {
    serde_dynamo::to_attribute_value(value).unwrap_or(AttributeValue::Null(true))
}

fn from_av(value: &AttributeValue) -> Value {
    serde_dynamo::from_attribute_value(value.clone()).unwrap_or(Value::Null)
}

fn user_pk(env: &str, id: &str) -> String {
    format!("{env}#USER#{id}")
}
fn tenant_pk(env: &str, id: &str) -> String {
    format!("{env}#TENANT#{id}")
}
fn object_pk(env: &str, collection: &str, id: &str) -> String {
    format!("{env}#OBJECT#{collection}#{id}")
}
fn recipient_pk(env: &str, r: &RecipientRef) -> String {
    match r {
        RecipientRef::User(id) => user_pk(env, id),
        RecipientRef::Object { collection, id } => object_pk(env, collection, id),
    }
}
fn recipient_key(r: &RecipientRef) -> String {
    r.to_json().to_string()
}
fn audience_pk(env: &str, key: &str) -> String {
    format!("{env}#AUDIENCE#{key}")
}

/// Writes of one transaction, with the reads some of them need done first.
struct Batch<'a> {
    table: &'a str,
    env: &'a str,
    now_ms: i64,
    writes: Vec<TransactWriteItem>,
    /// Index of the audience condition check, if any, to tell its failure apart.
    audience_checks: Vec<(usize, String)>,
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

    /// Upserts a profile, merging `properties` key by key.
    fn merge_profile(
        &mut self,
        pk: String,
        properties: &Map<String, Value>,
    ) -> Result<(), DirectoryError> {
        let mut expression = String::from(
            "SET created_at_ms = if_not_exists(created_at_ms, :now), updated_at_ms = :now, \
             properties = if_not_exists(properties, :empty)",
        );
        let mut update = Update::builder()
            .table_name(self.table)
            .key("pk", s(pk.clone()))
            .key("sk", s("PROFILE"))
            .expression_attribute_values(":now", n(self.now_ms))
            .expression_attribute_values(":empty", AttributeValue::M(HashMap::new()));
        // A map attribute cannot be created and written into in one expression, so the
        // fields go in a second update of the same transaction only when the profile
        // already exists; a new profile gets them whole.
        if !properties.is_empty() {
            expression = String::from(
                "SET created_at_ms = if_not_exists(created_at_ms, :now), updated_at_ms = :now",
            );
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
                Some(format!("o{collection}#{id}"))
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

    async fn profile_exists(&self, pk: &str) -> Result<bool, DirectoryError> {
        Ok(self.get(pk, "PROFILE").await?.is_some())
    }

    /// Upserts a profile: merges into an existing one, or creates it whole.
    async fn upsert(
        &self,
        batch: &mut Batch<'_>,
        pk: String,
        properties: &Map<String, Value>,
    ) -> Result<(), DirectoryError> {
        if properties.is_empty() || self.profile_exists(&pk).await? {
            return batch.merge_profile(pk, properties);
        }
        batch.put(Item::from([
            ("pk".to_string(), s(pk)),
            ("sk".to_string(), s("PROFILE")),
            (
                "properties".to_string(),
                to_av(&Value::Object(properties.clone())),
            ),
            ("created_at_ms".to_string(), n(batch.now_ms)),
            ("updated_at_ms".to_string(), n(batch.now_ms)),
        ]))
    }

    /// Deletes a profile and every subscription/membership that points to or from it.
    async fn delete_with_links(
        &self,
        batch: &mut Batch<'_>,
        pk: String,
    ) -> Result<(), DirectoryError> {
        for item in self.query(&pk, None).await? {
            let sk = get_s(&item, "sk").map_err(unavailable)?.to_string();
            if let Some(rest) = sk.strip_prefix("SUBOF#") {
                // rest = <collection>#<id>: the object side of a subscription.
                let (collection, id) = rest.split_once('#').unwrap_or((rest, ""));
                let recipient = self.recipient_of_pk(batch.env, &pk);
                batch.delete(
                    object_pk(batch.env, collection, id),
                    format!("SUB#{}", recipient_key(&recipient)),
                )?;
            } else if let Some(rest) = sk.strip_prefix("MEMBEROF#") {
                let (key, tenant) = rest.split_once('#').unwrap_or((rest, ""));
                let user = pk.rsplit("#USER#").next().unwrap_or_default();
                batch.delete(
                    audience_pk(batch.env, key),
                    format!("MEMBER#{tenant}#{user}"),
                )?;
            } else if let Some(recipient) = sk.strip_prefix("SUB#") {
                let recipient: RecipientRef = serde_json::from_str(recipient)
                    .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
                let (collection, id) = pk
                    .split_once("#OBJECT#")
                    .map(|(_, r)| r)
                    .and_then(|r| r.split_once('#'))
                    .unwrap_or_default();
                batch.delete(
                    recipient_pk(batch.env, &recipient),
                    format!("SUBOF#{collection}#{id}"),
                )?;
            }
            batch.delete(pk.clone(), sk)?;
        }
        Ok(())
    }

    fn recipient_of_pk(&self, env: &str, pk: &str) -> RecipientRef {
        let rest = pk.strip_prefix(&format!("{env}#")).unwrap_or(pk);
        match rest.strip_prefix("USER#") {
            Some(id) => RecipientRef::User(id.to_string()),
            None => {
                let rest = rest.strip_prefix("OBJECT#").unwrap_or(rest);
                let (collection, id) = rest.split_once('#').unwrap_or((rest, ""));
                RecipientRef::Object {
                    collection: collection.into(),
                    id: id.into(),
                }
            }
        }
    }

    async fn plan(
        &self,
        batch: &mut Batch<'_>,
        change: &DirectoryChange,
    ) -> Result<(), DirectoryError> {
        let env = batch.env;
        match change {
            DirectoryChange::IdentifyUser { id, properties } => {
                self.upsert(batch, user_pk(env, id), properties).await?
            }
            DirectoryChange::SetObject {
                collection,
                id,
                properties,
            } => {
                self.upsert(batch, object_pk(env, collection, id), properties)
                    .await?
            }
            DirectoryChange::SetTenant { id, properties } => {
                self.upsert(batch, tenant_pk(env, id), properties).await?
            }
            DirectoryChange::DeleteUser { id } => {
                self.delete_with_links(batch, user_pk(env, id)).await?
            }
            DirectoryChange::DeleteObject { collection, id } => {
                self.delete_with_links(batch, object_pk(env, collection, id))
                    .await?
            }
            DirectoryChange::DeleteTenant { id } => {
                batch.delete(tenant_pk(env, id), "PROFILE".into())?
            }
            DirectoryChange::Subscribe {
                collection,
                id,
                recipients,
                properties,
            } => {
                let object = object_pk(env, collection, id);
                if !self.profile_exists(&object).await? {
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
                        ("sk".to_string(), s(format!("SUBOF#{collection}#{id}"))),
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
                    batch.delete(recipient_pk(env, r), format!("SUBOF#{collection}#{id}"))?;
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
                    batch.put(Item::from([
                        ("pk".to_string(), s(audience.clone())),
                        ("sk".to_string(), s("META")),
                        ("created_at_ms".to_string(), n(batch.now_ms)),
                    ]))?;
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
                        ("sk".to_string(), s(format!("MEMBER#{tenant}#{user}"))),
                        ("user_id".to_string(), s(user.clone())),
                    ]))?;
                    batch.put(Item::from([
                        ("pk".to_string(), s(user_pk(env, user))),
                        ("sk".to_string(), s(format!("MEMBEROF#{key}#{tenant}"))),
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
                    batch.delete(audience_pk(env, key), format!("MEMBER#{tenant}#{user}"))?;
                    batch.delete(user_pk(env, user), format!("MEMBEROF#{key}#{tenant}"))?;
                }
            }
            DirectoryChange::RecordWorkflowRun(run) => {
                let mut item = Item::from([
                    (
                        "pk".to_string(),
                        s(format!("{env}#WORKFLOW#{}", run.workflow_key)),
                    ),
                    ("sk".to_string(), s(format!("RUN#{}", run.id))),
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
                batch.put(item)?;
                batch.put(Item::from([
                    ("pk".to_string(), s(format!("{env}#RUN#{}", run.id))),
                    ("sk".to_string(), s("RUN")),
                    ("workflow_key".to_string(), s(run.workflow_key.clone())),
                ]))?;
            }
            DirectoryChange::CancelWorkflowRuns {
                workflow_key,
                cancellation_key,
                recipients,
            } => {
                for item in self
                    .query(&format!("{env}#WORKFLOW#{workflow_key}"), Some("RUN#"))
                    .await?
                {
                    let mut run: WorkflowRun =
                        serde_json::from_str(get_s(&item, "run").map_err(unavailable)?)
                            .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
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
        let applied_pk = format!("{environment}#APPLIED#{}", key.event_id);
        let applied_sk = format!("{:05}", key.index);
        if let Some(before) = self.get(&applied_pk, &applied_sk).await? {
            return Ok(Applied::Before(
                serde_json::from_str(get_s(&before, "result").map_err(unavailable)?)
                    .unwrap_or(Value::Null),
            ));
        }
        let mut batch = Batch {
            table: &self.table,
            env: environment,
            now_ms,
            writes: Vec::new(),
            audience_checks: Vec::new(),
        };
        let marker = Put::builder()
            .table_name(&self.table)
            .item("pk", s(applied_pk.clone()))
            .item("sk", s(applied_sk.clone()))
            .item("result", s(result.to_string()))
            .item("applied_at_ms", n(now_ms))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        batch
            .writes
            .push(TransactWriteItem::builder().put(marker).build());
        for change in &coalesce(changes) {
            self.plan(&mut batch, change).await?;
        }
        if batch.writes.len() > MAX_TRANSACTION_ITEMS {
            return Err(DirectoryError::Rejected(format!(
                "this action needs {} writes; DynamoDB takes at most {MAX_TRANSACTION_ITEMS} in one transaction (send fewer recipients per event)",
                batch.writes.len()
            )));
        }
        let sent = self
            .client
            .transact_write_items()
            .set_transact_items(Some(batch.writes))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(Applied::Now),
            Err(error) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    error.as_service_error()
                {
                    let reasons = cancelled.cancellation_reasons();
                    let failed = |i: usize| {
                        reasons.get(i).and_then(|r| r.code()) == Some("ConditionalCheckFailed")
                    };
                    if failed(0) {
                        // Another run of this action committed first.
                        let before =
                            self.get(&applied_pk, &applied_sk).await?.ok_or_else(|| {
                                DirectoryError::Unavailable("applied marker vanished".into())
                            })?;
                        return Ok(Applied::Before(
                            serde_json::from_str(get_s(&before, "result").map_err(unavailable)?)
                                .unwrap_or(Value::Null),
                        ));
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
        }
    }

    async fn known_users(
        &self,
        environment: &str,
        ids: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        let mut known = Vec::new();
        for id in ids {
            if self.profile_exists(&user_pk(environment, id)).await? {
                known.push(id.clone());
            }
        }
        Ok(known)
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
                .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
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
        let Some(pointer) = self.get(&format!("{environment}#RUN#{id}"), "RUN").await? else {
            return Ok(None);
        };
        let key = get_s(&pointer, "workflow_key").map_err(unavailable)?;
        let Some(item) = self
            .get(
                &format!("{environment}#WORKFLOW#{key}"),
                &format!("RUN#{id}"),
            )
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_str(get_s(&item, "run").map_err(unavailable)?)
            .map(Some)
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))
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
            .query(&format!("{environment}#WORKFLOW#{key}"), Some("RUN#"))
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
