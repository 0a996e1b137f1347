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
//!   network failure, SQLite unable to write), or an AWS target's service throttling or
//!   not answering ([`InvokeError::Unavailable`]), is not the action's failure: it counts no
//!   attempt and leaves the action `planned`, and the run stops with a store error, which
//!   the caller handles as it handles the event log failing (the action worker backs
//!   off and runs the event again; the actions function has Lambda retry the record).
//!   A store that recovers runs the action then, so an outage never turns into failed
//!   actions.

use crate::actions::PlannedAction;
use crate::catalog::{
    Action, AudiencesAddMember, AudiencesRemoveMember, Id, IdOrObject, ObjectsDelete,
    ObjectsSubscribe, ObjectsUnsubscribe, Recipient, Recipients, TenantsDelete, UsersDelete,
    WorkflowsCancel, properties_of,
};
use crate::clock::Clock;
use crate::directory::{
    ActionChanges, ActionKey, Directory, DirectoryChange, DirectoryError, RecipientRef, WorkflowRun,
};
use crate::store::{ActionLogEntry, ActionStatus, ActionUpdate, EventLog, EventRecord, StoreError};
use crate::targets::{InvokeError, TargetInvoker};
use serde_json::{Map, Value, json};
use std::sync::Arc;

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
        DirectoryError::Unavailable(m) => {
            ActionOutcome::StoreUnavailable(format!("directory: {m}"))
        }
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
        InvokeError::Unavailable(error) => {
            ActionOutcome::StoreUnavailable(format!("target: {error}"))
        }
    }
}

/// How many of a workflow's newest runs a cancellation looks at to tell their targets.
const MAX_CANCELLED_RUNS: usize = 1_000;

/// The work one action amounts to.
struct Work {
    changes: Vec<DirectoryChange>,
    result: Value,
    run: Option<WorkflowRun>,
    /// A cancellation's change, whose runs' targets are told once it is applied.
    cancel: Option<DirectoryChange>,
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
                        "action {} ({}): {detail}",
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
        let Value::Object(fields) = &action.payload else {
            return permanent("the action payload is not an object");
        };
        let payload = match Action::from_payload(action.action, &action.payload) {
            Ok(payload) => payload,
            Err(problem) => return permanent(problem),
        };
        let env = event.environment.as_str();
        let key = ActionKey {
            event_id: event.id.clone(),
            index: action.index,
        };
        if let Action::LambdaInvoke(invoke) = &payload {
            let input = invoke.payload.clone().unwrap_or(Value::Null);
            return match self.targets.invoke_function(&invoke.function, &input).await {
                Ok(answer) => ActionOutcome::Succeeded(
                    json!({ "function": invoke.function, "response": answer }),
                ),
                Err(e) => from_invoke(e),
            };
        }
        if let Action::EventsForward(forward) = &payload {
            return match self.targets.forward_event(&forward.event_bus, event).await {
                Ok(answer) => ActionOutcome::Succeeded(answer),
                Err(e) => from_invoke(e),
            };
        }
        let work = match self.plan_work(event, &key, payload, fields).await {
            Ok(work) => work,
            Err(outcome) => return outcome,
        };
        if (work.run.is_some() || work.cancel.is_some())
            && let Err(e) = self.targets.prepare().await
        {
            return from_invoke(e);
        }
        let applied = self
            .directory
            .apply(ActionChanges {
                environment: env,
                key: &key,
                changes: &work.changes,
                result: &work.result,
                now_ms: self.clock.now_ms(),
            })
            .await;
        let mut result = match applied {
            Ok(crate::directory::Applied::Now) => work.result,
            Ok(crate::directory::Applied::Before(stored)) => stored,
            Err(e) => return from_directory(e),
        };
        if let Some(run) = &work.run {
            match self.targets.deliver_run(&event.source, run).await {
                Ok(Some(answer)) => result["delivery"] = answer,
                Ok(None) => {}
                Err(e) => return from_invoke(e),
            }
        }
        if let Some(cancel) = &work.cancel {
            match self.tell_cancelled(env, &event.source, cancel).await {
                Ok(Some(answer)) => result["stopped"] = answer,
                Ok(None) => {}
                Err(outcome) => return outcome,
            }
        }
        ActionOutcome::Succeeded(result)
    }

    /// Tells the target of a cancellation's workflow to stop the runs it marked
    /// `cancelled` (of its workflow and cancellation key, and including one of its
    /// recipients when it names them); a redelivered cancellation finds the same runs,
    /// and their target is told again. The runs are looked up only for a target that
    /// can stop them.
    async fn tell_cancelled(
        &self,
        environment: &str,
        source: &str,
        cancel: &DirectoryChange,
    ) -> Result<Option<Value>, ActionOutcome> {
        let DirectoryChange::CancelWorkflowRuns {
            workflow_key,
            cancellation_key,
            recipients,
        } = cancel
        else {
            return Ok(None);
        };
        if !self
            .targets
            .stops_runs(workflow_key)
            .await
            .map_err(from_invoke)?
        {
            return Ok(None);
        }
        let runs = self
            .directory
            .workflow_runs(environment, Some(workflow_key), MAX_CANCELLED_RUNS)
            .await
            .map_err(from_directory)?;
        let cancelled: Vec<WorkflowRun> = runs
            .into_iter()
            .filter(|run| {
                run.status == "cancelled"
                    && run.cancellation_key.as_ref() == Some(cancellation_key)
                    && recipients
                        .as_ref()
                        .is_none_or(|only| run.recipients.iter().any(|r| only.contains(r)))
            })
            .collect();
        self.targets
            .cancel_runs(source, &cancelled)
            .await
            .map_err(from_invoke)
    }

    /// The directory changes (and the workflow run, if any) one action amounts to, and
    /// its result.
    async fn plan_work(
        &self,
        event: &EventRecord,
        key_of_action: &ActionKey,
        payload: Action,
        fields: &Map<String, Value>,
    ) -> Result<Work, ActionOutcome> {
        let mut changes = Vec::new();
        let mut run = None;
        let mut cancel = None;
        let result = match payload {
            Action::UsersIdentify(user) => {
                let properties = properties_of(fields, &["id"]);
                let Id(id) = user.id;
                changes.push(DirectoryChange::IdentifyUser {
                    id: id.clone(),
                    properties,
                });
                json!({ "user_id": id })
            }
            Action::UsersDelete(UsersDelete { id: Id(id) }) => {
                changes.push(DirectoryChange::DeleteUser { id: id.clone() });
                json!({ "user_id": id, "deleted": true })
            }
            Action::ObjectsSet(object) => {
                let properties = properties_of(fields, &["collection", "id"]);
                let (collection, Id(id)) = (object.collection, object.id);
                changes.push(DirectoryChange::SetObject {
                    collection: collection.clone(),
                    id: id.clone(),
                    properties,
                });
                json!({ "collection": collection, "id": id })
            }
            Action::ObjectsDelete(ObjectsDelete {
                collection,
                id: Id(id),
            }) => {
                changes.push(DirectoryChange::DeleteObject {
                    collection: collection.clone(),
                    id: id.clone(),
                });
                json!({ "collection": collection, "id": id, "deleted": true })
            }
            Action::TenantsSet(tenant) => {
                let properties = properties_of(fields, &["id"]);
                let Id(id) = tenant.id;
                changes.push(DirectoryChange::SetTenant {
                    id: id.clone(),
                    properties,
                });
                json!({ "tenant_id": id })
            }
            Action::TenantsDelete(TenantsDelete { id: Id(id) }) => {
                changes.push(DirectoryChange::DeleteTenant { id: id.clone() });
                json!({ "tenant_id": id, "deleted": true })
            }
            Action::ObjectsSubscribe(ObjectsSubscribe {
                collection,
                id: Id(id),
                recipients: list,
                properties,
            }) => {
                let recipients = recipients(&list, &mut changes);
                let count = recipients.len();
                changes.push(DirectoryChange::Subscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients,
                    properties: properties.unwrap_or_default(),
                });
                json!({ "collection": collection, "id": id, "recipients": count })
            }
            Action::ObjectsUnsubscribe(ObjectsUnsubscribe {
                collection,
                id: Id(id),
                recipients: list,
            }) => {
                let recipients = recipients(&list, &mut changes);
                let count = recipients.len();
                changes.push(DirectoryChange::Unsubscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients,
                });
                json!({ "collection": collection, "id": id, "recipients": count })
            }
            Action::AudiencesAddMember(AudiencesAddMember {
                key,
                members,
                tenant,
                create_if_missing,
            }) => {
                let members = users_among(recipients(&members, &mut changes));
                let count = members.len();
                changes.push(DirectoryChange::AddAudienceMembers {
                    key: key.clone(),
                    members,
                    tenant: tenant.map(|Id(id)| id),
                    create_if_missing: create_if_missing.unwrap_or(true),
                });
                json!({ "audience": key, "members": count })
            }
            Action::AudiencesRemoveMember(AudiencesRemoveMember {
                key,
                members,
                tenant,
            }) => {
                let members = users_among(recipients(&members, &mut changes));
                let count = members.len();
                changes.push(DirectoryChange::RemoveAudienceMembers {
                    key: key.clone(),
                    members,
                    tenant: tenant.map(|Id(id)| id),
                });
                json!({ "audience": key, "members": count })
            }
            Action::WorkflowsCancel(WorkflowsCancel {
                key,
                cancellation_key,
                recipients: list,
            }) => {
                // Cancelling changes no recipient: inline ones are not identified.
                let recipients = list.map(|list| recipients(&list, &mut Vec::new()));
                let change = DirectoryChange::CancelWorkflowRuns {
                    workflow_key: key.clone(),
                    cancellation_key: cancellation_key.clone(),
                    recipients,
                };
                cancel = Some(change.clone());
                changes.push(change);
                json!({ "workflow": key, "cancellation_key": cancellation_key })
            }
            Action::WorkflowsTrigger(trigger) => {
                let recipients_list = recipients(&trigger.recipients, &mut changes);
                let actor = trigger
                    .actor
                    .as_ref()
                    .and_then(|a| recipient(a, &mut changes));
                let tenant = match trigger.tenant {
                    Some(IdOrObject::Object(t)) => {
                        let id = Id::in_map(&t);
                        if let Some(Id(id)) = &id {
                            changes.push(DirectoryChange::SetTenant {
                                id: id.clone(),
                                properties: properties_of(&t, &["id"]),
                            });
                        }
                        id.map(|Id(id)| id)
                    }
                    Some(IdOrObject::Id(Id(id))) => Some(id),
                    None => None,
                };
                let bare: Vec<String> = trigger
                    .recipients
                    .0
                    .iter()
                    .filter_map(|r| match r {
                        Recipient::User(Id(id)) => Some(id.clone()),
                        Recipient::Inline(_) => None,
                    })
                    .collect();
                let known = self
                    .directory
                    .known_users(&event.environment, &bare)
                    .await
                    .map_err(from_directory)?;
                let unknown: Vec<&String> = bare.iter().filter(|id| !known.contains(id)).collect();
                let workflow_run = WorkflowRun {
                    id: crate::directory::run_id(&key_of_action.event_id, key_of_action.index),
                    workflow_key: trigger.key.clone(),
                    recipients: recipients_list,
                    actor,
                    tenant,
                    data: trigger.data.unwrap_or_default(),
                    cancellation_key: trigger.cancellation_key,
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
            Action::LambdaInvoke(_) | Action::EventsForward(_) => {
                unreachable!("handled before")
            }
        };
        Ok(Work {
            changes,
            result,
            run,
            cancel,
        })
    }
}

/// The user ids among `recipients` (audiences hold users only).
fn users_among(recipients: Vec<RecipientRef>) -> Vec<String> {
    recipients
        .into_iter()
        .filter_map(|r| match r {
            RecipientRef::User(id) => Some(id),
            RecipientRef::Object { .. } => None,
        })
        .collect()
}

/// Recipient references; inline recipients add the identify/set change that must
/// precede the action.
fn recipients(list: &Recipients, changes: &mut Vec<DirectoryChange>) -> Vec<RecipientRef> {
    list.0
        .iter()
        .filter_map(|r| recipient(r, changes))
        .collect()
}

fn recipient(recipient: &Recipient, changes: &mut Vec<DirectoryChange>) -> Option<RecipientRef> {
    let map = match recipient {
        Recipient::User(Id(id)) => return Some(RecipientRef::User(id.clone())),
        Recipient::Inline(map) => map,
    };
    let Id(id) = Id::in_map(map)?;
    match map.get("collection").and_then(Value::as_str) {
        Some(collection) => {
            changes.push(DirectoryChange::SetObject {
                collection: collection.to_string(),
                id: id.clone(),
                properties: properties_of(map, &["id", "collection"]),
            });
            Some(RecipientRef::Object {
                collection: collection.to_string(),
                id,
            })
        }
        None => {
            changes.push(DirectoryChange::IdentifyUser {
                id: id.clone(),
                properties: properties_of(map, &["id"]),
            });
            Some(RecipientRef::User(id))
        }
    }
}
