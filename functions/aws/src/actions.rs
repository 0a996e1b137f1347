//! The actions function: triggered by the events table's stream, it runs the actions of
//! each event the ingest function committed as queued, against the DynamoDB directory.
//!
//! Each record of a batch that hands over an event ([`queued_event_id`]) is run in
//! stream order: the event's remaining actions, in plan order. Idempotent per (event,
//! action): settled actions are skipped, and directory changes are applied once per
//! action key, so a redelivered record (Lambda retries, a crash mid-batch, a timeout)
//! applies nothing twice. A retryable action failure is retried in the invocation with
//! the local executor's backoff (1 s, then 2 s; 3 attempts in all); after the last one
//! the action is `failed` in the action log and the stream moves on. If the store
//! itself fails, the function reports that record as a batch item failure: Lambda
//! retries the batch from it (bisecting, at most twice), then sends the batch's
//! location to the stack's on-failure queue, while the action log shows which actions
//! are still `planned`.

use crate::StackNames;
use crate::directory::DynamoDirectory;
use crate::events::{DynamoEventLog, QUEUE_ATTRIBUTE, queued_event_id};
use crate::targets::LambdaTargets;
use aws_lambda_events::event::dynamodb::{Event, EventRecord as StreamRecord};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::executor::{ActionExecutor, PlanRun};
use inlet_core::store::{EventLog, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// Attempts per action.
pub const MAX_ATTEMPTS: u32 = 3;

pub struct ActionsFunction {
    pub executor: ActionExecutor,
    /// The event log (the stack's events table; a trait object so tests can wrap it).
    pub events: Arc<dyn EventLog>,
    /// The wait before the second attempt of a failed action (doubled before each later
    /// one).
    pub backoff: Duration,
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
                    table: names.directory_table.clone(),
                }),
                targets: Arc::new(LambdaTargets {
                    client: aws_sdk_lambda::Client::new(&aws),
                }),
                clock,
            },
            events: Arc::new(DynamoEventLog::new(dynamo, &names)),
            backoff: Duration::from_secs(1),
        })
    }

    /// Runs the events a batch of stream records hands over. Stops at the first record
    /// the store fails on and reports it (with `ReportBatchItemFailures`, Lambda takes
    /// the batch up again from there).
    pub async fn handle(&self, batch: Event) -> DynamoDbEventResponse {
        let mut response = DynamoDbEventResponse::default();
        for record in &batch.records {
            let Some(event_id) = event_id_of(record) else {
                continue;
            };
            if let Err(error) = self.run(&event_id).await {
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
