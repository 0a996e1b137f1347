//! The write paths: one event's changes applied in transactions of parts, each part
//! with its marker (so a part applied before is recognised), and the reads they make
//! on the way (the profiles a part changes, the runs a cancel reaches). Each part's
//! writes are built in `plan.rs`.

use super::keys::*;
use super::plan::{Batch, recent_keys, spill_recent_keys};
use super::table::*;
use crate::error::store_error;
use crate::item::{Item, get_s, n, s};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use inlet_core::directory::{
    ActionKey, Applied, DirectoryChange, DirectoryError, RecipientRef, WorkflowRun,
};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// What committing one part found.
pub(super) enum PartOutcome {
    Applied,
    /// Its marker was there: another run applied it.
    AppliedBefore,
}

impl DynamoDirectory {
    pub(super) async fn query(
        &self,
        pk: &str,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<Item>, DirectoryError> {
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
    pub(super) async fn runs_in(&self, partitions: &[String]) -> Result<Vec<Item>, DirectoryError> {
        let found =
            futures::future::try_join_all(partitions.iter().map(|pk| self.query(pk, Some("RUN#"))))
                .await?;
        Ok(found.into_iter().flatten().collect())
    }

    pub(super) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, DirectoryError> {
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
    pub(super) async fn existing_profiles(
        &self,
        pks: &[String],
    ) -> Result<HashSet<String>, DirectoryError> {
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
    pub(super) async fn delete_with_links(
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

    pub(super) async fn transact(
        &self,
        writes: Vec<TransactWriteItem>,
    ) -> Result<(), DirectoryError> {
        self.client
            .transact_write_items()
            .set_transact_items(Some(writes))
            .send()
            .await
            .map(drop)
            .map_err(|e| unavailable(store_error("apply directory changes", e)))
    }

    /// Commits one part of an action with its marker (`result` on the last part).
    pub(super) async fn apply_part(
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
    pub(super) async fn apply_in_profile(
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
    pub(super) async fn apply_run(
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
    pub(super) async fn put_if_new(&self, item: Item) -> Result<Option<Item>, DirectoryError> {
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
    pub(super) fn stored_result(marker: &Item) -> Result<Value, DirectoryError> {
        Ok(
            serde_json::from_str(get_s(marker, "result").map_err(unavailable)?)
                .unwrap_or(Value::Null),
        )
    }
}
