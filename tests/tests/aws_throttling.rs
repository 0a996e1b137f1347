//! What a provisioned table's throttling (`TableCapacity: Provisioned`, a burst above the
//! capacity) does, with the emulator answering `ProvisionedThroughputExceededException`
//! (`common::aws::throttle`) to the real SDK: the ingest function answers 503 with
//! `Retry-After` and accepts nothing, and the sender's retry is accepted once; the
//! actions function fails no action for it, leaves it `planned` and hands the record back
//! to Lambda, and runs it once when the table answers again.

mod common;

use common::aws::{
    SECRET, Stack, apigw_event, example_files, ingest_function, task_app_events, throttle,
};
use inlet_core::directory::Directory;
use inlet_core::store::{ActionStatus, EventLog, EventStatus};
use serde_json::Value;

fn json_body(response: &lambda_http::Response<lambda_http::Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

#[tokio::test]
async fn a_throttled_events_table_is_answered_503_and_the_retry_is_accepted_once() {
    let mut stack = Stack::new("throttle-ingest").await;
    let (_, tokens) = ingest_function(&stack, example_files(), &["task-app"]).await;
    // The ingest function as deployed: its client settings (3 attempts, short backoff).
    let function = inlet_aws::ingest::IngestFunction::new(
        &inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::INGEST)
            .await,
        &stack.names,
    );
    let send = || function.handle(apigw_event("task-assigned.json", &tokens[0], SECRET));

    // Every write of the event is refused, whatever the SDK's retries do. The sender
    // gets its 503 after three quick attempts, not after seconds of backoff (the time
    // printed includes the cold caches' reads of the token, config and vars).
    throttle(&stack.names.events_table, &["PutItem"], 1000).await;
    let started = std::time::Instant::now();
    let refused = send().await.unwrap();
    println!(
        "a throttled events table is answered {} after {:.0} ms",
        refused.status(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body = json_body(&refused);
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert!(
        !body.to_string().contains("Throughput"),
        "the detail goes to the log, not to the sender: {body}"
    );
    assert!(task_app_events(&stack).await.is_empty(), "nothing accepted");

    // The table answers again: the sender's retry is accepted, once.
    throttle(&stack.names.events_table, &[], 0).await;
    let accepted = send().await.unwrap();
    assert_eq!(accepted.status(), 202);
    let event_id = json_body(&accepted)["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let again = send().await.unwrap();
    assert_eq!(again.status(), 200);
    let answer = json_body(&again);
    assert_eq!(
        (answer["status"].as_str(), answer["event_id"].as_str()),
        (Some("duplicate"), Some(event_id.as_str())),
        "the duplicate names the accepted event"
    );
    let statuses: Vec<(EventStatus, Option<String>)> = task_app_events(&stack)
        .await
        .into_iter()
        .map(|e| (e.status, e.duplicate_of))
        .collect();
    assert_eq!(
        statuses,
        [
            (EventStatus::Duplicate, Some(event_id.clone())),
            (EventStatus::Accepted, None)
        ]
    );
    assert_eq!(stack.deliver().await.records.len(), 1);
    assert!(
        stack
            .directory
            .workflow_run("development", &format!("wr_{event_id}_0"))
            .await
            .unwrap()
            .is_some()
    );

    // A throttled idempotency table: refused before anything is written.
    throttle(&stack.names.idempotency_table, &[], 1000).await;
    let other = apigw_event("task-completed.json", &tokens[0], SECRET);
    assert_eq!(function.handle(other).await.unwrap().status(), 503);
    throttle(&stack.names.idempotency_table, &[], 0).await;
    assert_eq!(task_app_events(&stack).await.len(), 2);
}

#[tokio::test]
async fn a_throttled_directory_fails_no_action_and_the_record_runs_once_when_it_answers() {
    let mut stack = Stack::new("throttle-actions").await;
    let (function, tokens) = ingest_function(&stack, example_files(), &["task-app"]).await;
    let accepted = function
        .handle(apigw_event("task-assigned.json", &tokens[0], SECRET))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let event_id = json_body(&accepted)["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    let run_id = format!("wr_{event_id}_0");
    let batch = stack.stream.next_batch().await;
    assert_eq!(batch.records.len(), 1);

    // Throttled for longer than the invocation's patience: the record goes back to
    // Lambda; the action is neither failed nor charged an attempt.
    throttle(&stack.names.directory_table, &[], 1000).await;
    let response = stack.actions.handle(batch.clone()).await;
    assert_eq!(response.batch_item_failures.len(), 1, "{response:?}");
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        batch.records[0].change.sequence_number
    );
    let log = stack.events.action_log(&event_id).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts),
        (ActionStatus::Planned, 0),
        "{log:?}"
    );
    throttle(&stack.names.directory_table, &[], 0).await;
    assert!(
        stack
            .directory
            .workflow_run("development", &run_id)
            .await
            .unwrap()
            .is_none()
    );

    // Lambda's retry while the table is still throttled for a few requests (more than
    // the SDK's three attempts): the invocation waits it out and runs the action once.
    throttle(&stack.names.directory_table, &[], 4).await;
    let response = stack.actions.handle(batch.clone()).await;
    assert!(response.batch_item_failures.is_empty(), "{response:?}");
    let log = stack.events.action_log(&event_id).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts),
        (ActionStatus::Succeeded, 1),
        "{log:?}"
    );
    let run = stack
        .directory
        .workflow_run("development", &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, "triggered");

    // Delivered again (Lambda's at-least-once): nothing applies twice.
    let response = stack.actions.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    let log = stack.events.action_log(&event_id).await.unwrap();
    assert_eq!(log[0].attempts, 1);
    let runs = stack
        .directory
        .workflow_runs("development", Some("task-assigned"), 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
}
