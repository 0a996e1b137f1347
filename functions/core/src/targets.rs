//! Outside effects, the trait both platforms implement: where `lambda_invoke` calls,
//! workflow runs, their cancellations and forwarded events go, and how a target's
//! failure counts (see [`InvokeError`]). Its implementations: `inlet dev`'s (URLs, and
//! the AWS kinds through the SDK) and a stack's (`inlet_aws::targets`); the targets file
//! they read is [`crate::config::Targets`].

use crate::directory::WorkflowRun;
use crate::store::EventRecord;
use async_trait::async_trait;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    /// The target failed in a way a later try may not (a 5xx, a function's error):
    /// counts an attempt.
    #[error("{0}")]
    Retryable(String),
    #[error("{0}")]
    Permanent(String),
    /// The service in front of the target throttled or did not answer (an AWS target's
    /// `ThrottlingException`, a lost connection): not the action's failure, handled like
    /// the directory being unavailable (no attempt counted, the action stays planned).
    #[error("{0}")]
    Unavailable(String),
}

/// What a target answered a delivery (or a cancellation) with; `None` when there is no
/// target to tell.
pub type Delivered = Result<Option<Value>, InvokeError>;

/// Outside effects: the user's functions and workflow targets.
#[async_trait]
pub trait TargetInvoker: Send + Sync {
    /// `lambda_invoke`: calls `function` with `payload`, returns its answer.
    async fn invoke_function(&self, function: &str, payload: &Value) -> Result<Value, InvokeError>;
    /// Delivers a run (of an event of `source`) to its workflow's target; `Ok(None)` when
    /// the workflow has none.
    async fn deliver_run(&self, source: &str, run: &WorkflowRun) -> Delivered;
    /// `events_forward`: puts `event` on `bus`; the answer says where it went.
    async fn forward_event(&self, bus: &str, _event: &EventRecord) -> Result<Value, InvokeError> {
        Err(InvokeError::Permanent(format!(
            "forwarding events to bus `{bus}` needs AWS: run on a stack, or give `inlet dev` AWS credentials"
        )))
    }
    /// Called before the directory changes of an action that will tell a target
    /// (trigger, cancel) apply: targets that must be looked up (a stack's, in its config
    /// table) are looked up here, so that failing to learn them fails the action before
    /// anything of it is recorded.
    async fn prepare(&self) -> Result<(), InvokeError> {
        Ok(())
    }
    /// Whether `workflow_key`'s target can stop runs (a state machine): only then does
    /// a cancellation look its runs up and call [`Self::cancel_runs`].
    async fn stops_runs(&self, _workflow_key: &str) -> Result<bool, InvokeError> {
        Ok(false)
    }
    /// Tells the targets of `runs` (all of one workflow, just cancelled in the
    /// directory) to stop them; `Ok(None)` when their target cannot stop anything.
    async fn cancel_runs(&self, _source: &str, _runs: &[WorkflowRun]) -> Delivered {
        Ok(None)
    }
}
