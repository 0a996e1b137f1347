//! The [`Directory`] trait on the table: applying an action (through the write paths)
//! and every read.

use super::keys::*;
use super::partition::*;
use super::table::*;
use super::write::*;
use crate::item::get_s;
use async_trait::async_trait;
use inlet_core::directory::{
    ActionChanges, Applied, Directory, DirectoryChange, DirectoryError, Entity, RecipientRef,
    WorkflowRun,
};
use serde_json::{Map, Value};
use std::collections::HashSet;

#[async_trait]
impl Directory for DynamoDirectory {
    async fn apply(&self, action: ActionChanges<'_>) -> Result<Applied, DirectoryError> {
        let ActionChanges {
            environment,
            key,
            changes,
            result,
            now_ms,
        } = action;
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
        self.profile(&user_pk(environment, id), id).await
    }

    async fn object(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Entity>, DirectoryError> {
        self.profile(&object_pk(environment, collection, id), id)
            .await
    }

    async fn tenant(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.profile(&tenant_pk(environment, id), id).await
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

impl DynamoDirectory {
    /// A user's, tenant's or object's profile item under `pk`, as an entity.
    async fn profile(&self, pk: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        let Some(item) = self.get(pk, "PROFILE").await? else {
            return Ok(None);
        };
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
        Ok(Some(Entity {
            id: id.to_string(),
            properties,
            created_at_ms: number("created_at_ms"),
            updated_at_ms: number("updated_at_ms"),
        }))
    }
}
