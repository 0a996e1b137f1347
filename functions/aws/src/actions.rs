//! The actions function: triggered by the events table's stream, it runs the actions of
//! each event the ingest function committed as queued, against the DynamoDB directory.
//!
//! Each record of a batch that hands over an event ([`queued_event_id`]) is run in
//! stream order: the event's remaining actions, in plan order. Idempotent per (event,
//! action): settled actions are skipped, and directory changes are applied once per
//! action key, so a redelivered record (Lambda retries, a crash mid-batch, a timeout)
//! applies nothing twice. A retryable action failure is retried in the invocation with
//! the local executor's backoff (1 s, then 2 s; 3 attempts in all); after the last one
//! the action is `failed` in the action log and the stream moves on. If Inlet's own
//! store does not answer (the event log or the directory: DynamoDB throttling a
//! provisioned table, an outage), no action is failed for it: the function keeps
//! running the record again with backoff for up to [`STORE_PATIENCE`] per invocation,
//! then reports it as a batch item failure; Lambda retries the batch from it (the
//! template allows 10 retries, so about 7 minutes of unavailability are waited out),
//! then sends the batch's location to the stack's on-failure queue, while the action
//! log shows which actions are still `planned`. A store error that retrying cannot
//! cure (a malformed item) is reported at once.
//!
//! Workflow runs and `lambda_invoke` calls go to the targets pushed to the config table
//! ([`crate::targets`]).

use crate::StackNames;
use crate::clients::{AwsClients, ClientSettings};
use crate::config_table::ConfigTable;
use crate::directory::DynamoDirectory;
use crate::events::{QUEUE_ATTRIBUTE, queued_event_id};
use crate::targets::{AwsTargets, TargetsFrom};
use aws_lambda_events::event::dynamodb::{Event, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::executor::{ActionExecutor, PlanRun};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::store::{EventLog, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per action.
pub const MAX_ATTEMPTS: u32 = 3;
/// How long one invocation keeps retrying records whose store does not answer before
/// it hands them back to Lambda (the function's timeout is 60 s).
pub const STORE_PATIENCE: Duration = Duration::from_secs(40);
/// The first wait before running a record again after the store did not answer
/// (doubled each time, at most 5 s).
const STORE_BACKOFF: Duration = Duration::from_millis(500);

pub struct ActionsFunction {
    pub executor: ActionExecutor,
    /// The event log (the stack's events table; a trait object so tests can wrap it).
    pub events: Arc<dyn EventLog>,
    /// The wait before the second attempt of a failed action (doubled before each later
    /// one).
    pub backoff: Duration,
    /// How long an invocation waits out a store that does not answer
    /// ([`STORE_PATIENCE`]; tests shorten it).
    pub store_patience: Duration,
}

impl ActionsFunction {
    /// The actions function of the stack named by the environment variables, with the
    /// actions client settings.
    pub async fn from_env() -> Result<Self, String> {
        let names = StackNames::from_env()?;
        Ok(Self::new(
            &AwsClients::from_env(&ClientSettings::ACTIONS).await,
            &names,
        ))
    }

    /// The actions function of a stack's tables.
    pub fn new(clients: &AwsClients, names: &StackNames) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        ActionsFunction {
            executor: ActionExecutor {
                directory: Arc::new(DynamoDirectory {
                    client: clients.dynamodb.clone(),
                    table: names.directory_table.clone(),
                }),
                targets: Arc::new(AwsTargets::from(
                    clients,
                    TargetsFrom::Table(Arc::new(ConfigTable::new(
                        clients.dynamodb.clone(),
                        names.config_table.clone(),
                        Arc::new(ScriptEngine::new(ScriptLimits::default())),
                        clock.clone(),
                    ))),
                )),
                clock,
            },
            events: Arc::new(clients.event_log(names)),
            backoff: Duration::from_secs(1),
            store_patience: STORE_PATIENCE,
        }
    }

    /// Runs the events a batch of stream records hands over. A record whose store does
    /// not answer is run again with backoff while the invocation's patience lasts; the
    /// first record the store still fails on is reported (with `ReportBatchItemFailures`,
    /// Lambda takes the batch up again from there).
    pub async fn handle(&self, batch: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        let deadline = tokio::time::Instant::now() + self.store_patience;
        for record in &batch.records {
            let Some(event_id) = event_id_of(record) else {
                continue;
            };
            let mut wait = STORE_BACKOFF;
            let outcome = loop {
                match self.run(&event_id).await {
                    Err(StoreError::Unavailable(detail))
                        if tokio::time::Instant::now() + wait < deadline =>
                    {
                        tracing::warn!(%event_id, error = %detail, ?wait, "the store did not answer; running the event again");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    outcome => break outcome,
                }
            };
            if let Err(error) = outcome {
                tracing::error!(%event_id, %error, "actions interrupted by a store error; Lambda retries the batch from this record");
                let mut failure = DynamoDbBatchItemFailure::default();
                failure.item_identifier = record.change.sequence_number.clone();
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }

    /// Runs the remaining actions of one event, retrying retryable failures with backoff.
    pub async fn run(&self, event_id: &str) -> Result<(), StoreError> {
        // The event and its action log in one read; a retry reads the log again.
        let (found, mut log) = self
            .events
            .get_with_logs(&[event_id.to_string()])
            .await?
            .pop()
            .unwrap_or_default();
        let Some(event) = found else {
            tracing::warn!(%event_id, "event not found (expired, or written to another stack); nothing to run");
            return Ok(());
        };
        loop {
            match self
                .executor
                .run_logged_plan(self.events.as_ref(), &event, &log, MAX_ATTEMPTS)
                .await?
            {
                PlanRun::Finished { failed: None } => return Ok(()),
                PlanRun::Finished {
                    failed: Some(error),
                } => {
                    // Recorded in the action log; retrying the record would not help.
                    tracing::error!(%event_id, %error, "an action failed for good");
                    crate::metrics::emit(
                        &event.environment,
                        &event.source,
                        "action_failures",
                        inlet_core::clock::SystemClock.now_ms(),
                    );
                    return Ok(());
                }
                PlanRun::RetryLater { attempts, error } => {
                    let delay = self.backoff * 2u32.saturating_pow(attempts - 1);
                    tracing::warn!(%event_id, %error, attempts, ?delay, "action failed; retrying");
                    tokio::time::sleep(delay).await;
                    log = self.events.action_log(event_id).await?;
                }
            }
        }
    }
}

/// The event a stream record hands over, if it does.
fn event_id_of(record: &StreamRecord) -> Option<String> {
    fn text<'a>(item: &'a serde_dynamo::Item, name: &str) -> Option<&'a str> {
        match item.get(name)? {
            serde_dynamo::AttributeValue::S(value) => Some(value),
            _ => None,
        }
    }
    let change = &record.change;
    queued_event_id(
        &record.event_name,
        text(&change.keys, "pk"),
        text(&change.keys, "sk"),
        text(&change.new_image, QUEUE_ATTRIBUTE),
    )
}
