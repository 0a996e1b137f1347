//! The actions function: receives `{"event_id"}` from the ingest function's async
//! invoke and runs the event's remaining actions against the DynamoDB directory.
//!
//! Idempotent per (event, action): settled actions are skipped and directory changes
//! are applied once per action key. A retryable failure is recorded and returned as an
//! error, so Lambda retries the invocation (2 retries, matching the 3 attempts of the
//! local executor); an invocation whose actions still fail after the last retry lands
//! in the stack's on-failure queue, while the action log says which action failed and
//! why.

use crate::StackNames;
use crate::directory::DynamoDirectory;
use crate::dispatch::ActionsInvocation;
use crate::events::DynamoEventLog;
use crate::targets::LambdaTargets;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::executor::{ActionExecutor, PlanRun};
use inlet_core::store::EventLog;
use std::sync::Arc;

/// Attempts per action, counting Lambda's retries.
pub const MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum ActionsError {
    #[error("event {0} not found (expired, or written to another stack)")]
    UnknownEvent(String),
    #[error("store error: {0}")]
    Store(#[from] inlet_core::store::StoreError),
    #[error("event {event_id}: {error}; Lambda will retry")]
    Retry { event_id: String, error: String },
    #[error("event {event_id}: {error}")]
    Failed { event_id: String, error: String },
}

pub struct ActionsFunction {
    pub executor: ActionExecutor,
    pub events: DynamoEventLog,
}

impl ActionsFunction {
    pub async fn from_env() -> Result<Self, String> {
        let names = StackNames::from_env()?;
        let aws = aws_config::load_from_env().await;
        let dynamo = aws_sdk_dynamodb::Client::new(&aws);
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        Ok(ActionsFunction {
            executor: ActionExecutor {
                directory: Arc::new(DynamoDirectory {
                    client: dynamo.clone(),
                    table: names.directory_table,
                }),
                targets: Arc::new(LambdaTargets {
                    client: aws_sdk_lambda::Client::new(&aws),
                }),
                clock,
            },
            events: DynamoEventLog {
                client: dynamo,
                table: names.events_table,
            },
        })
    }

    pub async fn handle(
        &self,
        invocation: ActionsInvocation,
    ) -> Result<serde_json::Value, ActionsError> {
        let event = self
            .events
            .get(&invocation.event_id)
            .await?
            .ok_or_else(|| ActionsError::UnknownEvent(invocation.event_id.clone()))?;
        match self
            .executor
            .run_plan(&self.events, &event, MAX_ATTEMPTS)
            .await?
        {
            PlanRun::Finished { failed: None } => {
                Ok(serde_json::json!({ "event_id": event.id, "status": "done" }))
            }
            PlanRun::Finished {
                failed: Some(error),
            } => Err(ActionsError::Failed {
                event_id: event.id,
                error,
            }),
            PlanRun::RetryLater { error, .. } => Err(ActionsError::Retry {
                event_id: event.id,
                error,
            }),
        }
    }
}

/// How a failed run is reported to Lambda (and so to the on-failure queue).
impl From<ActionsError> for lambda_runtime::Diagnostic {
    fn from(error: ActionsError) -> Self {
        let kind = match &error {
            ActionsError::UnknownEvent(_) => "UnknownEvent",
            ActionsError::Store(_) => "StoreUnavailable",
            ActionsError::Retry { .. } => "RetryableActionFailure",
            ActionsError::Failed { .. } => "ActionFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: kind.to_string(),
            error_message: error.to_string(),
        }
    }
}
