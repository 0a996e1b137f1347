//! The ingest function's handler on real API Gateway (HTTP API v2) events from
//! `events/apigw/`, with DynamoDB and SSM in the emulator through the real SDK; the
//! events table's stream, read through the Streams API and filtered as the template's
//! event source mapping filters it, is delivered to the actions function's handler,
//! which runs against the DynamoDB directory.

mod common;

use inlet_core::clock::{Clock, SystemClock};
use inlet_core::directory::Directory;
use inlet_core::store::{EventLog, EventStatus, VerificationStatus};
use serde_json::{Value, json};

fn item_size(
    item: &std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + v.as_s()
                    .map(String::len)
                    .or_else(|_| v.as_n().map(String::len))
                    .unwrap_or(8)
        })
        .sum()
}

#[tokio::test]
async fn ingest_handler_on_api_gateway_events() {
    let mut stack = common::aws::Stack::new("ingest").await;
    let (dynamo, names) = (stack.dynamo.clone(), stack.names.clone());
    let (function, tokens) =
        common::aws::ingest_function(&stack, common::aws::example_files(), &["task-app"]).await;
    let token = tokens[0].clone();
    let clock = SystemClock;
    let directory = stack.directory.clone();
    let events = stack.events.clone();

    let started_s = clock.now_ms() / 1000;
    let accepted = send(
        &function,
        "task-assigned.json",
        &token,
        "demo-secret-change-me",
    )
    .await;
    assert_eq!(accepted.status(), 202);
    let body: Value = serde_json::from_slice(accepted.body().as_ref()).unwrap();
    assert_eq!(body["status"], "accepted");
    let event_id = body["event_id"].as_str().unwrap().to_string();

    // The hand-off: the event item's stream record, the only one passing the filter.
    let batch = stack.deliver().await;
    assert_eq!(batch.records.len(), 1, "{batch:?}");
    assert_eq!(batch.records[0].event_name, "INSERT");

    // The actions function ran on it: the run is in the directory.
    let run = directory
        .workflow_run("development", &format!("wr_{event_id}_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        run.recipients,
        vec![inlet_core::directory::RecipientRef::User("user_456".into())]
    );
    assert_eq!(
        run.actor,
        Some(inlet_core::directory::RecipientRef::User("user_789".into()))
    );
    assert_eq!(
        Value::Object(run.data),
        json!({"task_id": "task_123", "title": "Write the launch announcement"})
    );
    let log = events.action_log(&event_id).await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts),
        (inlet_core::store::ActionStatus::Succeeded, 1)
    );
    // A second delivery of the same record (Lambda is at-least-once) changes nothing.
    let response = stack.actions.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        directory
            .workflow_runs("development", Some("task-assigned"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // The idempotency item: completed, TTL about now + 24 h.
    let scope = inlet_core::store::IdempotencyScope {
        source: "task-app".into(),
        environment: "development".into(),
        event_type: "task.assigned".into(),
        key: "evt_task_assigned_0001".into(),
    };
    let claim = dynamo
        .get_item()
        .table_name(&names.idempotency_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(scope.storage_key()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("CLAIM".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(claim["status"].as_s().unwrap(), "completed");
    assert_eq!(claim["event_id"].as_s().unwrap(), &event_id);
    let ttl: i64 = claim["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(
        (ttl - (started_s + 86_400)).abs() <= 60,
        "TTL {ttl} vs now {started_s} + 24 h"
    );

    // The event log item.
    let stored = events.get(&event_id).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Accepted);
    assert_eq!(stored.verification, VerificationStatus::EnforcedVerified);
    assert!(
        stored
            .headers
            .contains(&("x-webhook-secret".to_string(), "[redacted]".to_string()))
    );
    assert_eq!(stored.actions.len(), 1);
    assert_eq!(stored.actions[0].payload["recipients"], json!(["user_456"]));

    // Duplicate and rejected requests.
    let duplicate = send(
        &function,
        "task-assigned.json",
        &token,
        "demo-secret-change-me",
    )
    .await;
    assert_eq!(duplicate.status(), 200);
    assert_eq!(duplicate.headers()["inlet-duplicate"], "true");
    let rejected = send(&function, "task-completed.json", &token, "wrong").await;
    assert_eq!(rejected.status(), 401);
    let unknown = send(&function, "task-completed.json", "not-a-token", "x").await;
    assert_eq!(unknown.status(), 404);
    let rest = stack.deliver().await;
    assert!(
        rest.records.is_empty(),
        "only the accepted event is handed to the actions function: {rest:?}"
    );

    // The admin function's router on an API Gateway event (IAM-authorized route).
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    let admin = inlet_admin::router(inlet_admin::on_aws::state(&names, &clients));
    let text = std::fs::read_to_string(common::repo_root().join("events/apigw/admin-events.json"))
        .unwrap();
    let request = lambda_http::request::from_str(&text).unwrap();
    let response = tower::ServiceExt::oneshot(admin.clone(), request)
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let page: Value = serde_json::from_slice(&bytes).unwrap();
    let listed: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["rejected", "duplicate", "accepted"], "{page}");
    let detail = text
        .replace("/admin/events\"", &format!("/admin/events/{event_id}\""))
        .replace("source=task-app&limit=5", "");
    let response =
        tower::ServiceExt::oneshot(admin, lambda_http::request::from_str(&detail).unwrap())
            .await
            .unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let detail: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(detail["actions"][0]["status"], "succeeded", "{detail}");

    // Item sizes, for the write-cost figures in the docs.
    let all = dynamo
        .scan()
        .table_name(&names.events_table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    for item in &all {
        eprintln!(
            "events item {} / {}: {} bytes",
            item["pk"].as_s().unwrap(),
            item["sk"].as_s().unwrap(),
            item_size(item)
        );
    }
    eprintln!("idempotency item: {} bytes", item_size(&claim));
}

/// The ingest function answers a script's `http_response` through the same conversion
/// as the dev server: framing headers dropped, invalid answers refused as script errors
/// (never a panic of the function).
/// The Lambda function URL event of a sample (`IngestEndpoint: FunctionUrl`): the same
/// payload format as the HTTP API's, with no route and no path parameters.
fn function_url_event(name: &str, token: &str) -> lambda_http::Request {
    let text = std::fs::read_to_string(common::repo_root().join("events/function-url").join(name))
        .unwrap();
    let text = text.replace("REPLACE-WITH-TOKEN-FROM-inlet-config-push", token);
    let event: Value = serde_json::from_str(&text).unwrap();
    assert!(event.get("pathParameters").is_none());
    lambda_http::request::from_str(&text).unwrap()
}

#[tokio::test]
async fn ingest_handler_on_function_url_events() {
    let mut stack = common::aws::Stack::new("fnurl").await;
    let (function, tokens) =
        common::aws::ingest_function(&stack, common::aws::example_files(), &["task-app"]).await;

    // The token is the path's last segment.
    let accepted = function
        .handle(function_url_event("task-assigned.json", &tokens[0]))
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let body: Value = serde_json::from_slice(accepted.body().as_ref()).unwrap();
    assert_eq!(body["status"], "accepted");
    let event_id = body["event_id"].as_str().unwrap();
    let stored = stack.events.get(event_id).await.unwrap().unwrap();
    assert_eq!(stored.status, EventStatus::Accepted);
    assert_eq!(stored.source, "task-app");
    assert_eq!(stored.event_type.as_deref(), Some("task.assigned"));
    assert_eq!(
        stack.deliver().await.records.len(),
        1,
        "its actions are handed over"
    );

    // A delivery again is its duplicate; a token no source has is refused.
    let again = function
        .handle(function_url_event("task-assigned.json", &tokens[0]))
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    let unknown = function
        .handle(function_url_event("task-assigned.json", "not-a-token"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = serde_json::from_slice(unknown.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "unknown_token", "{body}");
}

#[tokio::test]
async fn a_scripts_http_response_through_the_ingest_function() {
    let stack = common::aws::Stack::new("hooks").await;
    let (function, tokens) =
        common::aws::ingest_function(&stack, common::http_response_source().to_vec(), &["hooks"])
            .await;
    let response = function
        .handle(common::aws::apigw(&tokens[0], r#"{"kind": "framing"}"#))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ok"], "1");
    assert!(response.headers().get("content-length").is_none());
    assert!(response.headers().get("transfer-encoding").is_none());
    assert_eq!(
        std::str::from_utf8(response.body().as_ref()).unwrap(),
        "challenge-accepted"
    );
    for case in ["switch", "empty", "crlf"] {
        let (status, body) =
            common::aws::answer(&function, &tokens[0], &format!(r#"{{"kind": "{case}"}}"#)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &json!("unverified")),
            "{case}"
        );
    }
}

/// The slack preset through the ingest function: the URL handshake is answered with its
/// challenge and logged as `answered` in DynamoDB, a signed event callback is accepted,
/// and a tampered one is refused with the reason in the event log. Signed with
/// `inlet_core::verify::sign_headers`, which the verification tests check against the
/// providers' own libraries.
#[tokio::test]
async fn the_slack_preset_handshake_and_verification_through_the_ingest_function() {
    let stack = common::aws::Stack::new("slackp").await;
    common::aws::put_var(
        &stack,
        "SLACK_SIGNING_SECRET",
        "slack-signing-secret-on-aws",
    )
    .await;
    let files = vec![(
        "slack.yaml".to_string(),
        "key: slack\nname: Slack\nenvironments:\n  development:\n    preset: slack\n".to_string(),
    )];
    let (function, tokens) = common::aws::ingest_function(&stack, files, &["slack"]).await;
    let signed = |body: &str, sent: &str| {
        let now = SystemClock.now_ms() / 1000;
        let headers = inlet_core::verify::sign_headers(
            "slack",
            "slack-signing-secret-on-aws",
            body.as_bytes(),
            now,
            "",
        )
        .unwrap();
        common::aws::apigw_with(&tokens[0], sent, &headers)
    };

    let handshake = std::fs::read_to_string(
        common::repo_root().join("events/examples/slack-url-verification.json"),
    )
    .unwrap();
    let response = function
        .handle(signed(&handshake, &handshake))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let callback =
        std::fs::read_to_string(common::repo_root().join("events/examples/slack.json")).unwrap();
    let response = function.handle(signed(&callback, &callback)).await.unwrap();
    assert_eq!(response.status(), 202);
    let tampered = callback.replace("hello", "goodbye");
    let response = function.handle(signed(&callback, &tampered)).await.unwrap();
    assert_eq!(response.status(), 401);

    let mut query = inlet_core::store::EventQuery {
        source: Some("slack".into()),
        environment: Some("development".into()),
        limit: 10,
        ..Default::default()
    };
    let logged = stack.events.list(&query).await.unwrap().events;
    let statuses: Vec<&str> = logged.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    for status in ["answered", "accepted", "rejected"] {
        assert!(statuses.contains(&status), "{statuses:?}");
    }
    query.status = Some(EventStatus::Rejected);
    let rejected = stack.events.list(&query).await.unwrap().events;
    assert!(
        rejected[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("unverified: slack: signature_mismatch"),
        "{:?}",
        rejected[0].error
    );
    query.status = Some(EventStatus::Accepted);
    let accepted = stack.events.list(&query).await.unwrap().events;
    assert_eq!(accepted[0].event_type.as_deref(), Some("app_mention"));
    assert_eq!(
        accepted[0].verification,
        VerificationStatus::EnforcedVerified
    );
}

/// The ingest function's answer to `event` (a file of `events/`) sent with `token` and
/// `secret`.
async fn send(
    function: &inlet_aws::ingest::IngestFunction,
    event: &str,
    token: &str,
    secret: &str,
) -> lambda_http::Response<lambda_http::Body> {
    function
        .handle(common::aws::apigw_event(event, token, secret))
        .await
        .unwrap()
}
