//! Runs one planned action: turns its resolved payload into directory
//! changes, applies them once per (event, action index), and performs the action's
//! outside effect (delivering a workflow run to its target, invoking a function).
//!
//! - Inline recipients (`{id, ...}` users, `{id, collection, ...}` objects) are
//!   identified/set in the same transaction as the action itself, before it.
//! - Bare user ids that were never identified are reported in the result
//!   (`unknown_recipients`); the run still records them.
//! - Directory changes are exactly-once per action key. Outside effects are
//!   at-least-once: a crash after a delivery but before its success is logged causes
//!   one more delivery. A workflow run's id is derived from the action key, so a target
//!   can de-duplicate.
//! - Errors are `retryable` (a target unreachable) or not (the change cannot apply, e.g.
//!   an unknown audience without `create_if_missing`); the caller retries the former
//!   with backoff, a few times, then the action has `failed`.
//! - Inlet's own directory being unavailable (DynamoDB throttling a provisioned table, a
//!   network failure, SQLite unable to write) is not the action's failure: it counts no
//!   attempt and leaves the action `planned`, and the run stops with a store error, which
//!   the caller handles as it handles the event log failing (the action worker backs
//!   off and runs the event again; the actions function has Lambda retry the record).
//!   A store that recovers runs the action then, so an outage never turns into failed
//!   actions.

use crate::actions::PlannedAction;
use crate::catalog::ActionKind;
use crate::clock::Clock;
use crate::directory::{
    ActionKey, Directory, DirectoryChange, DirectoryError, RecipientRef, WorkflowRun,
};
use crate::store::{ActionLogEntry, ActionStatus, ActionUpdate, EventLog, EventRecord, StoreError};
use async_trait::async_trait;
use serde_json::{Map, Value, json};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    Permanent(String),
}

/// Outside effects: the user's functions and workflow targets.
#[async_trait]
pub trait TargetInvoker: Send + Sync {
    /// `lambda_invoke`: calls `function` with `payload`, returns its answer.
    async fn invoke_function(&self, function: &str, payload: &Value) -> Result<Value, InvokeError>;
    /// Delivers a run to its workflow's target; `Ok(None)` when the workflow has none.
    async fn deliver_run(&self, run: &WorkflowRun) -> Result<Option<Value>, InvokeError>;
}

#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome {
    Succeeded(Value),
    Failed {
        error: String,
        retryable: bool,
    },
    /// The directory could not be reached: nothing of the action is known to have
    /// applied, and nothing is the action's fault (see the module docs).
    StoreUnavailable(String),
}

pub struct ActionExecutor {
    pub directory: Arc<dyn Directory>,
    pub targets: Arc<dyn TargetInvoker>,
    pub clock: Arc<dyn Clock>,
}

fn permanent(error: impl Into<String>) -> ActionOutcome {
    ActionOutcome::Failed {
        error: error.into(),
        retryable: false,
    }
}

fn from_directory(e: DirectoryError) -> ActionOutcome {
    match e {
        DirectoryError::Unavailable(m) => ActionOutcome::StoreUnavailable(m),
        DirectoryError::Failed(m) => permanent(format!("directory store failed: {m}")),
        DirectoryError::Rejected(m) => permanent(m),
    }
}

fn from_invoke(e: InvokeError) -> ActionOutcome {
    match e {
        InvokeError::Retryable(error) => ActionOutcome::Failed {
            error,
            retryable: true,
        },
        InvokeError::Permanent(error) => permanent(error),
    }
}

/// The work one action amounts to.
struct Work {
    changes: Vec<DirectoryChange>,
    result: Value,
    run: Option<WorkflowRun>,
}

/// How one run over an event's remaining plan ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanRun {
    /// Every action is settled; `failed` names the first that failed for good, if any.
    Finished { failed: Option<String> },
    /// An action failed retryably with attempts left; the rest waits (order is kept).
    RetryLater { attempts: u32, error: String },
}

impl ActionExecutor {
    /// Runs the actions of `event` still `planned` in its action log, in order,
    /// recording each outcome. Actions already settled are not run again.
    pub async fn run_plan(
        &self,
        events: &dyn EventLog,
        event: &EventRecord,
        max_attempts: u32,
    ) -> Result<PlanRun, StoreError> {
        let log = events.action_log(&event.id).await?;
        self.run_logged_plan(events, event, &log, max_attempts)
            .await
    }

    /// [`Self::run_plan`] with the event's action log already read (a worker that reads
    /// a round of events at once).
    pub async fn run_logged_plan(
        &self,
        events: &dyn EventLog,
        event: &EventRecord,
        log: &[ActionLogEntry],
        max_attempts: u32,
    ) -> Result<PlanRun, StoreError> {
        let mut failed: Option<String> = None;
        for entry in log.iter().filter(|e| e.status == ActionStatus::Planned) {
            let Some(planned) = event.actions.iter().find(|a| a.index == entry.index) else {
                continue;
            };
            let attempts = entry.attempts + 1;
            let outcome = self.execute(event, planned).await;
            let now_ms = self.clock.now_ms();
            let update = |status, result, error| ActionUpdate {
                index: entry.index,
                status,
                result,
                error,
                attempts,
                now_ms,
            };
            match outcome {
                ActionOutcome::StoreUnavailable(detail) => {
                    // Left as it is (planned, attempts unchanged): the caller runs the
                    // event again once the store answers.
                    return Err(StoreError::Unavailable(format!(
                        "directory, for action {} ({}): {detail}",
                        entry.index,
                        planned.action.name()
                    )));
                }
                ActionOutcome::Succeeded(result) => {
                    // debug: one info line per event (its acceptance) is enough at load.
                    tracing::debug!(event_id = %event.id, action = planned.action.name(), "action succeeded");
                    events
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Succeeded, Some(result), None),
                        )
                        .await?;
                }
                ActionOutcome::Failed {
                    error,
                    retryable: true,
                } if attempts < max_attempts => {
                    tracing::warn!(event_id = %event.id, action = planned.action.name(), attempts, %error, "action failed; will retry");
                    events
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Planned, None, Some(error.clone())),
                        )
                        .await?;
                    return Ok(PlanRun::RetryLater { attempts, error });
                }
                ActionOutcome::Failed { error, .. } => {
                    tracing::error!(event_id = %event.id, action = planned.action.name(), attempts, %error, "action failed");
                    events
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Failed, None, Some(error.clone())),
                        )
                        .await?;
                    failed.get_or_insert(format!(
                        "action {} ({}): {error}",
                        entry.index,
                        planned.action.name()
                    ));
                }
            }
        }
        Ok(PlanRun::Finished { failed })
    }

    pub async fn execute(&self, event: &EventRecord, action: &PlannedAction) -> ActionOutcome {
        if let Some(reason) = &action.skipped {
            return permanent(format!("skipped: {reason}"));
        }
        let Value::Object(payload) = &action.payload else {
            return permanent("the action payload is not an object");
        };
        let env = event.environment.as_str();
        let key = ActionKey {
            event_id: event.id.clone(),
            index: action.index,
        };
        if action.action == ActionKind::LambdaInvoke {
            let function = text(payload, "function").unwrap_or_default();
            let input = payload.get("payload").cloned().unwrap_or(Value::Null);
            return match self.targets.invoke_function(&function, &input).await {
                Ok(answer) => {
                    ActionOutcome::Succeeded(json!({ "function": function, "response": answer }))
                }
                Err(e) => from_invoke(e),
            };
        }
        let work = match self.plan_work(event, &key, action.action, payload).await {
            Ok(work) => work,
            Err(outcome) => return outcome,
        };
        let applied = self
            .directory
            .apply(env, &key, &work.changes, &work.result, self.clock.now_ms())
            .await;
        let mut result = match applied {
            Ok(crate::directory::Applied::Now) => work.result,
            Ok(crate::directory::Applied::Before(stored)) => stored,
            Err(e) => return from_directory(e),
        };
        if let Some(run) = &work.run {
            match self.targets.deliver_run(run).await {
                Ok(Some(answer)) => result["delivery"] = answer,
                Ok(None) => {}
                Err(e) => return from_invoke(e),
            }
        }
        ActionOutcome::Succeeded(result)
    }

    async fn plan_work(
        &self,
        event: &EventRecord,
        key_of_action: &ActionKey,
        kind: ActionKind,
        payload: &Map<String, Value>,
    ) -> Result<Work, ActionOutcome> {
        let mut changes = Vec::new();
        let mut run = None;
        let result = match kind {
            ActionKind::UsersIdentify => {
                let id = required(payload, "id")?;
                changes.push(DirectoryChange::IdentifyUser {
                    id: id.clone(),
                    properties: properties(payload, &["id"]),
                });
                json!({ "user_id": id })
            }
            ActionKind::UsersDelete => {
                let id = required(payload, "id")?;
                changes.push(DirectoryChange::DeleteUser { id: id.clone() });
                json!({ "user_id": id, "deleted": true })
            }
            ActionKind::ObjectsSet => {
                let (collection, id) = (required(payload, "collection")?, required(payload, "id")?);
                changes.push(DirectoryChange::SetObject {
                    collection: collection.clone(),
                    id: id.clone(),
                    properties: properties(payload, &["collection", "id"]),
                });
                json!({ "collection": collection, "id": id })
            }
            ActionKind::ObjectsDelete => {
                let (collection, id) = (required(payload, "collection")?, required(payload, "id")?);
                changes.push(DirectoryChange::DeleteObject {
                    collection: collection.clone(),
                    id: id.clone(),
                });
                json!({ "collection": collection, "id": id, "deleted": true })
            }
            ActionKind::TenantsSet => {
                let id = required(payload, "id")?;
                changes.push(DirectoryChange::SetTenant {
                    id: id.clone(),
                    properties: properties(payload, &["id"]),
                });
                json!({ "tenant_id": id })
            }
            ActionKind::TenantsDelete => {
                let id = required(payload, "id")?;
                changes.push(DirectoryChange::DeleteTenant { id: id.clone() });
                json!({ "tenant_id": id, "deleted": true })
            }
            ActionKind::ObjectsSubscribe | ActionKind::ObjectsUnsubscribe => {
                let (collection, id) = (required(payload, "collection")?, required(payload, "id")?);
                let recipients = recipients(payload.get("recipients"), &mut changes);
                let count = recipients.len();
                changes.push(if kind == ActionKind::ObjectsSubscribe {
                    DirectoryChange::Subscribe {
                        collection: collection.clone(),
                        id: id.clone(),
                        recipients,
                        properties: object(payload, "properties"),
                    }
                } else {
                    DirectoryChange::Unsubscribe {
                        collection: collection.clone(),
                        id: id.clone(),
                        recipients,
                    }
                });
                json!({ "collection": collection, "id": id, "recipients": count })
            }
            ActionKind::AudiencesAddMember | ActionKind::AudiencesRemoveMember => {
                let key = required(payload, "key")?;
                let members: Vec<String> = recipients(payload.get("members"), &mut changes)
                    .into_iter()
                    .filter_map(|r| match r {
                        RecipientRef::User(id) => Some(id),
                        RecipientRef::Object { .. } => None,
                    })
                    .collect();
                let tenant = text(payload, "tenant");
                let count = members.len();
                changes.push(if kind == ActionKind::AudiencesAddMember {
                    DirectoryChange::AddAudienceMembers {
                        key: key.clone(),
                        members,
                        tenant,
                        create_if_missing: payload
                            .get("create_if_missing")
                            .and_then(Value::as_bool)
                            .unwrap_or(true),
                    }
                } else {
                    DirectoryChange::RemoveAudienceMembers {
                        key: key.clone(),
                        members,
                        tenant,
                    }
                });
                json!({ "audience": key, "members": count })
            }
            ActionKind::WorkflowsCancel => {
                let key = required(payload, "key")?;
                let cancellation_key = required(payload, "cancellation_key")?;
                let recipients = payload
                    .get("recipients")
                    .map(|r| recipients(Some(r), &mut Vec::new()));
                changes.push(DirectoryChange::CancelWorkflowRuns {
                    workflow_key: key.clone(),
                    cancellation_key: cancellation_key.clone(),
                    recipients,
                });
                json!({ "workflow": key, "cancellation_key": cancellation_key })
            }
            ActionKind::WorkflowsTrigger => {
                let key = required(payload, "key")?;
                let recipients = recipients(payload.get("recipients"), &mut changes);
                let actor = payload
                    .get("actor")
                    .and_then(|a| recipients_of(a, &mut changes).into_iter().next());
                let tenant = match payload.get("tenant") {
                    Some(Value::Object(t)) => {
                        let id = text(t, "id");
                        if let Some(id) = &id {
                            changes.push(DirectoryChange::SetTenant {
                                id: id.clone(),
                                properties: properties(t, &["id"]),
                            });
                        }
                        id
                    }
                    Some(Value::String(id)) => Some(id.clone()),
                    _ => None,
                };
                let bare: Vec<String> = payload
                    .get("recipients")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r.as_str().map(str::to_string))
                    .collect();
                let known = self
                    .directory
                    .known_users(&event.environment, &bare)
                    .await
                    .map_err(from_directory)?;
                let unknown: Vec<&String> = bare.iter().filter(|id| !known.contains(id)).collect();
                let workflow_run = WorkflowRun {
                    id: format!("wr_{}_{}", key_of_action.event_id, key_of_action.index),
                    workflow_key: key.clone(),
                    recipients,
                    actor,
                    tenant,
                    data: object(payload, "data"),
                    cancellation_key: text(payload, "cancellation_key"),
                    status: "triggered".into(),
                    event_id: event.id.clone(),
                    created_at_ms: self.clock.now_ms(),
                };
                let mut result = json!({
                    "workflow_run_id": workflow_run.id,
                    "recipients": workflow_run.recipients.len(),
                });
                if !unknown.is_empty() {
                    result["unknown_recipients"] = json!(unknown);
                }
                changes.push(DirectoryChange::RecordWorkflowRun(workflow_run.clone()));
                run = Some(workflow_run);
                result
            }
            ActionKind::LambdaInvoke => unreachable!("handled before"),
        };
        Ok(Work {
            changes,
            result,
            run,
        })
    }
}

fn text(map: &Map<String, Value>, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn required(map: &Map<String, Value>, key: &str) -> Result<String, ActionOutcome> {
    text(map, key).ok_or_else(|| permanent(format!("required param `{key}` is missing")))
}

fn object(map: &Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.get(key) {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    }
}

/// The payload minus `exclude`, with the entries of a `properties` object merged in at
/// the top level (as Knock stores custom properties).
fn properties(payload: &Map<String, Value>, exclude: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in payload {
        if exclude.contains(&k.as_str()) || k == "properties" {
            continue;
        }
        out.insert(k.clone(), v.clone());
    }
    if let Some(Value::Object(extra)) = payload.get("properties") {
        for (k, v) in extra {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Recipient references from a payload value; inline recipients add the identify/set
/// change that must precede the action.
fn recipients(value: Option<&Value>, changes: &mut Vec<DirectoryChange>) -> Vec<RecipientRef> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .flat_map(|i| recipients_of(i, changes))
            .collect(),
        Some(other) => recipients_of(other, changes),
        None => Vec::new(),
    }
}

fn recipients_of(value: &Value, changes: &mut Vec<DirectoryChange>) -> Vec<RecipientRef> {
    match value {
        Value::String(id) => vec![RecipientRef::User(id.clone())],
        Value::Object(map) => {
            let Some(id) = text(map, "id") else {
                return Vec::new();
            };
            match text(map, "collection") {
                Some(collection) => {
                    changes.push(DirectoryChange::SetObject {
                        collection: collection.clone(),
                        id: id.clone(),
                        properties: properties(map, &["id", "collection"]),
                    });
                    vec![RecipientRef::Object { collection, id }]
                }
                None => {
                    changes.push(DirectoryChange::IdentifyUser {
                        id: id.clone(),
                        properties: properties(map, &["id"]),
                    });
                    vec![RecipientRef::User(id)]
                }
            }
        }
        _ => Vec::new(),
    }
}
