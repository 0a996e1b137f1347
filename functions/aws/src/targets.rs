//! Outside effects through AWS services: `lambda_invoke` calls and the delivery of
//! workflow runs to the targets of a targets file ([`Targets`]).
//!
//! - `lambda_invoke` calls its function synchronously (`RequestResponse`) and keeps the
//!   answer. A `functions:` entry naming a function stands for it; a call with no entry
//!   goes to the function of that name (on a stack the actions function may only call
//!   functions named `inlet-<env>-target-*`).
//! - The targets come from a targets file (`inlet dev --targets`) or, on a stack, from
//!   the one `inlet config push --targets` stored in the config table ([`TargetsFrom`]).
//! - A workflow's run goes to its `workflows:` target; a workflow with none only records
//!   its runs in the directory. What a target receives is [`run_input`]: the same bytes
//!   on every delivery of a run, so a redelivery is recognised where the service can:
//!   - **state machine**: `StartExecution` named after the run id. A second start of the
//!     same run is answered with the running execution, or `ExecutionAlreadyExists` once
//!     it has finished: both mean "already started", and succeed with its ARN. Express
//!     workflows do not check names: at least once, the run id in the input.
//!   - **event bus**: `PutEvents`, `Source` `inlet.<source>`, `DetailType` the workflow
//!     key, the run as `Detail`. A 200 answer can still fail its entry: that entry's
//!     code decides (throttling and internal errors are retried, anything else fails the
//!     action). At least once.
//!   - **queue**: `SendMessage`; on a FIFO queue the deduplication id is the run id (one
//!     message per run within SQS's 5-minute window) and the group is the workflow key
//!     or the first recipient ([`QueueGroup`]). Elsewhere at least once.
//!   - **function**: invoked asynchronously (`Event`): Lambda queues it and retries the
//!     function's own failures. At least once.
//! - `events_forward` (what `forward_to_event_bus` adds to every accepted event) puts the
//!   event ([`event_detail`]) on its bus: `DetailType` the event type. The action log
//!   settles it once it succeeded, so a redelivered record puts nothing again; a crash
//!   between the put and its log entry puts it twice (at least once: `event_id` is in
//!   the detail).
//! - `workflows_cancel` stops the executions of the runs it cancelled when their
//!   workflow's target is a state machine (`StopExecution`; the action's result lists
//!   them under `stopped`); for the other kinds the cancellation is recorded in the
//!   directory only.
//!
//! Errors: throttling, server errors and lost connections are the service's, not the
//! action's ([`InvokeError::Unavailable`]: no attempt counted, the action stays planned
//! and runs when the service answers, see the executor); a function's own error is
//! retryable and counts an attempt; a missing target, a refused permission or a
//! malformed request fails the action at once, with the service's message.

use crate::clients::AwsClients;
use crate::config_table::{ConfigTable, ConfigTableError};
use crate::error::store_error;
use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sfn::error::ProvideErrorMetadata;
use inlet_core::config::{QueueGroup, Target, Targets};
use inlet_core::directory::{RecipientRef, WorkflowRun};
use inlet_core::store::{EventRecord, StoreError};
use inlet_core::targets::{Delivered, InvokeError, TargetInvoker};
use serde_json::{Value, json};
use std::sync::Arc;

/// The codes of an entry of a `PutEvents` answer that may pass if put again.
const RETRYABLE_ENTRY_CODES: [&str; 3] = [
    "ThrottlingException",
    "InternalException",
    "InternalFailure",
];

pub struct AwsTargets {
    pub lambda: aws_sdk_lambda::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub targets: TargetsFrom,
}

/// Where an [`AwsTargets`] learns its targets.
pub enum TargetsFrom {
    /// A targets file, read once (`inlet dev --targets`).
    File(Arc<Targets>),
    /// The targets pushed to a stack's config table, re-read after 30 s.
    Table(Arc<ConfigTable>),
}

impl AwsTargets {
    /// Targets of a file.
    pub fn new(clients: &AwsClients, targets: Targets) -> Self {
        Self::from(clients, TargetsFrom::File(Arc::new(targets)))
    }

    pub fn from(clients: &AwsClients, targets: TargetsFrom) -> Self {
        AwsTargets {
            lambda: clients.lambda.clone(),
            sfn: clients.sfn.clone(),
            eventbridge: clients.eventbridge.clone(),
            sqs: clients.sqs.clone(),
            targets,
        }
    }

    /// The targets now. A config table that does not answer is retryable: the run is
    /// delivered when it answers again.
    async fn current(&self) -> Result<Arc<Targets>, InvokeError> {
        match &self.targets {
            TargetsFrom::File(targets) => Ok(targets.clone()),
            TargetsFrom::Table(table) => table.targets().await.map_err(|e| match e {
                ConfigTableError::Store(e) => invoke_error(e),
                other => InvokeError::Permanent(other.to_string()),
            }),
        }
    }

    /// Delivers `run` (of an event of `source`) to `target`; the answer says where it
    /// went (execution ARN, event id, message id).
    pub async fn deliver(
        &self,
        target: &Target,
        source: &str,
        run: &WorkflowRun,
    ) -> Result<Value, InvokeError> {
        let input = run_input(source, run).to_string();
        match target {
            Target::StateMachine(arn) => self.start_execution(arn, run, input).await,
            Target::EventBus(bus) => self.put_event(bus, source, run, input).await,
            Target::Queue { url, group_by } => self.send_message(url, *group_by, run, input).await,
            Target::Function(name) => {
                let answer = self
                    .invoke(name, InvocationType::Event, input.into_bytes())
                    .await?;
                Ok(json!({ "target": "function", "function": name, "status": answer["status"] }))
            }
            Target::Url(url) => Err(InvokeError::Permanent(format!(
                "workflow `{}` goes to the URL {url}, which only `inlet dev` posts to",
                run.workflow_key
            ))),
        }
    }

    async fn start_execution(
        &self,
        state_machine: &str,
        run: &WorkflowRun,
        input: String,
    ) -> Result<Value, InvokeError> {
        let started = self
            .sfn
            .start_execution()
            .state_machine_arn(state_machine)
            .name(&run.id)
            .input(input)
            .send()
            .await;
        match started {
            Ok(execution) => Ok(json!({
                "target": "state_machine",
                "execution_arn": execution.execution_arn(),
            })),
            Err(error) if error.code() == Some("ExecutionAlreadyExists") => Ok(json!({
                "target": "state_machine",
                "execution_arn": execution_arn(state_machine, &run.id),
                "already_started": true,
            })),
            Err(error) => Err(invoke_error(store_error(
                &format!("start an execution of {state_machine}"),
                error,
            ))),
        }
    }

    async fn put_event(
        &self,
        bus: &str,
        source: &str,
        run: &WorkflowRun,
        input: String,
    ) -> Result<Value, InvokeError> {
        self.put_entry(bus, source, &run.workflow_key, input).await
    }

    /// Puts one event on `bus`: `Source` `inlet.<source>`. A 200 answer whose entry
    /// failed is a failure by the entry's code.
    async fn put_entry(
        &self,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: String,
    ) -> Result<Value, InvokeError> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(bus)
            .source(format!("inlet.{source}"))
            .detail_type(detail_type)
            .detail(detail)
            .build();
        let answer = self
            .eventbridge
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| invoke_error(store_error(&format!("put an event on bus `{bus}`"), e)))?;
        let entry = answer.entries().first();
        match entry.and_then(|e| e.error_code()) {
            None if answer.failed_entry_count() == 0 => Ok(json!({
                "target": "event_bus",
                "bus": bus,
                "event_id": entry.and_then(|e| e.event_id()),
            })),
            code => {
                let code = code.unwrap_or("unknown");
                let message = format!(
                    "bus `{bus}` refused the event: {code}: {}",
                    entry.and_then(|e| e.error_message()).unwrap_or_default()
                );
                Err(if RETRYABLE_ENTRY_CODES.contains(&code) {
                    InvokeError::Unavailable(message)
                } else {
                    InvokeError::Permanent(message)
                })
            }
        }
    }

    async fn send_message(
        &self,
        queue: &str,
        group_by: QueueGroup,
        run: &WorkflowRun,
        input: String,
    ) -> Result<Value, InvokeError> {
        let mut send = self.sqs.send_message().queue_url(queue).message_body(input);
        if queue.ends_with(".fifo") {
            let group = match (group_by, run.recipients.first()) {
                (QueueGroup::Recipient, Some(RecipientRef::User(id))) => id.clone(),
                (QueueGroup::Recipient, Some(RecipientRef::Object { collection, id })) => {
                    format!("{collection}/{id}")
                }
                _ => run.workflow_key.clone(),
            };
            send = send
                .message_deduplication_id(&run.id)
                .message_group_id(group);
        }
        let sent = send
            .send()
            .await
            .map_err(|e| invoke_error(store_error(&format!("send a message to {queue}"), e)))?;
        Ok(json!({ "target": "queue", "queue": queue, "message_id": sent.message_id() }))
    }

    /// Invokes a function; its answer as `{status, body}`.
    async fn invoke(
        &self,
        function: &str,
        invocation: InvocationType,
        payload: Vec<u8>,
    ) -> Result<Value, InvokeError> {
        let response = self
            .lambda
            .invoke()
            .function_name(function)
            .invocation_type(invocation)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| invoke_error(store_error(&format!("invoke `{function}`"), e)))?;
        let body = response.payload.map(|b| b.into_inner()).unwrap_or_default();
        let answer = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        match response.function_error {
            Some(kind) => Err(InvokeError::Retryable(format!(
                "function `{function}` failed ({kind}): {answer}"
            ))),
            None => Ok(json!({ "status": response.status_code, "body": answer })),
        }
    }
}

#[async_trait]
impl TargetInvoker for AwsTargets {
    async fn invoke_function(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        let targets = self.current().await?;
        let name = match targets.functions.get(function) {
            None => function,
            Some(Target::Function(name)) => name,
            Some(other) => {
                return Err(InvokeError::Permanent(format!(
                    "function `{function}` goes to {other:?}, which only `inlet dev` calls"
                )));
            }
        };
        let payload = serde_json::to_vec(payload).expect("JSON serialises");
        self.invoke(name, InvocationType::RequestResponse, payload)
            .await
    }

    async fn deliver_run(&self, source: &str, run: &WorkflowRun) -> Delivered {
        match self.current().await?.workflows.get(&run.workflow_key) {
            Some(target) => self.deliver(target, source, run).await.map(Some),
            None => Ok(None),
        }
    }

    async fn prepare(&self) -> Result<(), InvokeError> {
        self.current().await.map(|_| ())
    }

    async fn forward_event(&self, bus: &str, event: &EventRecord) -> Result<Value, InvokeError> {
        let detail_type = event.event_type.as_deref().unwrap_or("unknown");
        let detail = event_detail(event).to_string();
        self.put_entry(bus, &event.source, detail_type, detail)
            .await
    }

    async fn stops_runs(&self, workflow_key: &str) -> Result<bool, InvokeError> {
        let targets = self.current().await?;
        Ok(matches!(
            targets.workflows.get(workflow_key),
            Some(Target::StateMachine(_))
        ))
    }

    async fn cancel_runs(&self, _source: &str, runs: &[WorkflowRun]) -> Delivered {
        let Some(first) = runs.first() else {
            return Ok(None);
        };
        match self.current().await?.workflows.get(&first.workflow_key) {
            Some(Target::StateMachine(arn)) => self.stop_executions(arn, runs).await.map(Some),
            _ => Ok(None),
        }
    }
}

impl AwsTargets {
    /// Stops the executions of `runs`. Stopping one that has already ended changes
    /// nothing, so a redelivered cancellation stops nothing new; a run whose execution
    /// never started is named as such.
    async fn stop_executions(
        &self,
        state_machine: &str,
        runs: &[WorkflowRun],
    ) -> Result<Value, InvokeError> {
        let (mut stopped, mut never_started) = (Vec::new(), Vec::new());
        for run in runs {
            let execution = execution_arn(state_machine, &run.id);
            match self
                .sfn
                .stop_execution()
                .execution_arn(&execution)
                .send()
                .await
            {
                Ok(_) => stopped.push(execution),
                Err(e) if e.code() == Some("ExecutionDoesNotExist") => {
                    never_started.push(run.id.clone())
                }
                Err(e) => {
                    return Err(invoke_error(store_error(
                        &format!("stop execution {execution}"),
                        e,
                    )));
                }
            }
        }
        Ok(json!({
            "target": "state_machine",
            "executions": stopped,
            "never_started": never_started,
        }))
    }
}

/// The targets a stack of `environment` cannot reach: the actions function's policy
/// (template.yaml) allows state machines, event buses and queues named
/// `inlet-<env>-*` and functions named `inlet-<env>-target-*`, and URLs are for
/// `inlet dev` only. One line per target, saying what to do.
pub fn unreachable_from_stack(targets: &Targets, environment: &str) -> Vec<String> {
    let prefix = format!("inlet-{environment}-");
    let function_prefix = format!("{prefix}target-");
    let mut problems = Vec::new();
    let sections = [
        ("workflow", &targets.workflows),
        ("function", &targets.functions),
    ];
    for (section, entries) in sections {
        for (key, target) in entries {
            let (name, wanted) = match target {
                Target::Url(url) => {
                    problems.push(format!(
                        "{section} `{key}` goes to the URL {url}: a stack cannot post to URLs (only `inlet dev` does)"
                    ));
                    continue;
                }
                Target::Function(name) => (name.as_str(), &function_prefix),
                Target::StateMachine(arn) => (arn.rsplit(':').next().unwrap_or(arn), &prefix),
                Target::EventBus(bus) => (bus.rsplit('/').next().unwrap_or(bus), &prefix),
                Target::Queue { url, .. } => (url.rsplit('/').next().unwrap_or(url), &prefix),
            };
            if !name.starts_with(wanted.as_str()) {
                problems.push(format!(
                    "{section} `{key}` goes to `{name}`, which the stack's actions function may not reach: name it `{wanted}*`, or add a statement for it to ActionsFunction's policy in template.yaml"
                ));
            }
        }
    }
    problems
}

/// What a target receives of a run: what triggered it and for whom, without the
/// directory's bookkeeping (status, the time the run was recorded), so that every
/// delivery of a run sends the same bytes.
pub fn run_input(source: &str, run: &WorkflowRun) -> Value {
    json!({
        "run_id": run.id,
        "workflow_key": run.workflow_key,
        "recipients": run.recipients,
        "actor": run.actor,
        "tenant": run.tenant,
        "data": run.data,
        "cancellation_key": run.cancellation_key,
        "event_id": run.event_id,
        "source": source,
    })
}

/// What `events_forward` puts on a bus of an event: its identity and times, the body
/// (parsed when it is JSON, else the text) and the script's output.
pub fn event_detail(event: &EventRecord) -> Value {
    let body = serde_json::from_str::<Value>(&event.raw_body)
        .unwrap_or_else(|_| Value::String(event.raw_body.clone()));
    json!({
        "event_id": event.id,
        "source": event.source,
        "environment": event.environment,
        "event_type": event.event_type,
        "received_at_ms": event.received_at_ms,
        "occurred_at_ms": event.occurred_at_ms,
        "idempotency_key": event.idempotency_key,
        "body": body,
        "preprocess": event.preprocess,
    })
}

/// The ARN of the execution named `name` of a state machine.
pub fn execution_arn(state_machine: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine.replacen(":stateMachine:", ":execution:", 1)
    )
}

fn invoke_error(error: StoreError) -> InvokeError {
    match error {
        StoreError::Unavailable(m) => InvokeError::Unavailable(m),
        StoreError::Failed(m) => InvokeError::Permanent(m),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_arn_is_its_state_machine_s_with_the_name() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:us-east-1:123456789012:stateMachine:orders",
                "wr_1_0"
            ),
            "arn:aws:states:us-east-1:123456789012:execution:orders:wr_1_0"
        );
    }
}
