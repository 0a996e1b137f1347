//! Building a part's transaction: each change of an event's part becomes the writes of
//! one [`Batch`] (profiles created or merged, links and their reverses, audience
//! members, workflow runs), and a profile keeps its recent action keys (`applied`),
//! spilling the oldest when the map would outgrow its item.

use super::keys::*;
use super::table::*;
use crate::item::{Item, get_s, n, s};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use inlet_core::directory::{DirectoryChange, DirectoryError, RecipientRef, WorkflowRun};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The entries of a profile's `applied` map: (action key, applied at, stored result).
pub(super) fn recent_keys(profile: &Item) -> Vec<(String, i64, Option<String>)> {
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
pub(super) fn spill_recent_keys(
    batch: &mut Batch<'_>,
    profile: &Item,
) -> Result<(), DirectoryError> {
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
pub(super) struct Batch<'a> {
    pub(super) table: &'a str,
    pub(super) env: &'a str,
    pub(super) now_ms: i64,
    pub(super) writes: Vec<TransactWriteItem>,
    /// Index of each audience condition check, to tell its failure apart.
    pub(super) audience_checks: Vec<(usize, String)>,
    /// The profiles (pks) among those the part upserts that exist, read up front.
    pub(super) existing: HashSet<String>,
}

impl Batch<'_> {
    pub(super) fn put(&mut self, item: Item) -> Result<(), DirectoryError> {
        let put = Put::builder()
            .table_name(self.table)
            .set_item(Some(item))
            .build()
            .map_err(build)?;
        self.writes
            .push(TransactWriteItem::builder().put(put).build());
        Ok(())
    }

    pub(super) fn delete(&mut self, pk: String, sk: String) -> Result<(), DirectoryError> {
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
    pub(super) fn upsert(
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
    pub(super) fn merge_profile(
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
    pub(super) fn ensure_audience(&mut self, pk: String) -> Result<(), DirectoryError> {
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

impl DynamoDirectory {
    /// The profiles a part upserts whose existence decides how (create or merge).
    pub(super) fn profiles_to_check(env: &str, part: &[DirectoryChange]) -> Vec<String> {
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

    pub(super) async fn plan(
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
}
