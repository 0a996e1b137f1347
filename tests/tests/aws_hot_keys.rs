//! Writes per partition key when one source is busy: DynamoDB takes at most about 1,000
//! write units a second on one partition key (of a table or of a global secondary
//! index, whose throttling throttles the table's writes too), so a key that every
//! event of a source writes caps the source near 1,000 events a second, whatever
//! on-demand capacity the table has.
//!
//! The ingest and actions functions run 2,000 requests of one source and one event type
//! on the emulator, which records the partition key of every write
//! (`tests/emulator/usage.py`); no key of any table or index may take more than one
//! write per 20 requests: at 10,000 events a second, at most 500 writes a second on
//! one key, half DynamoDB's limit. Three workloads: accepted events (each with its own
//! assignee, as real traffic has), 2,000 deliveries of one idempotency key (a sender
//! retrying), and 2,000 rejected requests (an attacker holding one webhook URL). The
//! hottest keys of each are printed (`--no-capture`).

mod common;

use common::aws::{SECRET, Stack, apigw_with, example_files, ingest_function, usage};
use inlet_aws::ingest::IngestFunction;
use serde_json::Value;
use std::collections::BTreeMap;

const REQUESTS: usize = 2_000;
/// At most one write per this many requests on any one key.
const REQUESTS_PER_WRITE: usize = 20;

/// Write units per partition key (`table pk` or `table/index key`), the tables named by
/// their role (`events`, `idem`, `directory`, `config`).
fn writes_per_key(records: &[Value]) -> BTreeMap<String, f64> {
    let mut keys = BTreeMap::new();
    for record in records {
        let Some(pk) = record["pk"].as_str() else {
            continue;
        };
        let table = record["table"].as_str().unwrap();
        let role = table.split('-').next().unwrap();
        *keys.entry(format!("{role} {pk}")).or_default() +=
            record["write_units"].as_f64().unwrap_or(0.0);
        for index in record["index_keys"].as_array().into_iter().flatten() {
            *keys
                .entry(format!(
                    "{role}/{} {}",
                    index[0].as_str().unwrap(),
                    index[1].as_str().unwrap()
                ))
                .or_default() += 1.0;
        }
    }
    keys
}

/// Prints the hottest keys and returns the problems: keys over the limit.
fn hottest(workload: &str, keys: &BTreeMap<String, f64>) -> Vec<String> {
    let mut sorted: Vec<(&String, &f64)> = keys.iter().collect();
    sorted.sort_by(|a, b| b.1.total_cmp(a.1));
    let limit = (REQUESTS / REQUESTS_PER_WRITE) as f64;
    println!("{workload}: {} keys written; the hottest:", keys.len());
    for (key, writes) in sorted.iter().take(5) {
        println!("  {writes:>6} write units  {key}");
    }
    sorted
        .iter()
        .filter(|(_, writes)| **writes > limit)
        .map(|(key, writes)| {
            format!("{workload}: {key} took {writes} write units for {REQUESTS} requests (at most {limit})")
        })
        .collect()
}

fn delivery(token: &str, key: &str, assignee: &str, secret: &str) -> lambda_http::Request {
    let body = common::sample("task-assigned.json")
        .replace("evt_task_assigned_0001", key)
        .replace("user_456", assignee);
    apigw_with(token, &body, &[("x-webhook-secret".into(), secret.into())])
}

async fn status(function: &IngestFunction, request: lambda_http::Request) -> u16 {
    function.handle(request).await.unwrap().status().as_u16()
}

/// A stack with the example task-app source, and its ingest function (one warm
/// execution environment).
async fn task_app(prefix: &str) -> (Stack, IngestFunction, String) {
    let stack = Stack::new(prefix).await;
    let (function, tokens) = ingest_function(&stack, example_files(), &["task-app"]).await;
    (stack, function, tokens[0].clone())
}

#[tokio::test]
async fn accepted_events_of_one_source_and_type_write_no_key_hot() {
    let (mut stack, function, token) = task_app("hot-accepted").await;
    for i in 0..REQUESTS {
        let request = delivery(&token, &format!("evt-{i}"), &format!("user-{i}"), SECRET);
        assert_eq!(status(&function, request).await, 202);
        if i % 100 == 99 {
            // Lambda hands the stream to the actions function in batches.
            stack.deliver().await;
        }
    }
    let problems = hottest("accepted", &writes_per_key(&usage(&stack).await));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn deliveries_of_one_key_write_no_key_hot() {
    let (mut stack, function, token) = task_app("hot-duplicate").await;
    for i in 0..REQUESTS {
        let expected = if i == 0 { 202 } else { 200 };
        let request = delivery(&token, "evt-again", "user-1", SECRET);
        assert_eq!(status(&function, request).await, expected);
    }
    stack.deliver().await;
    let problems = hottest("duplicate", &writes_per_key(&usage(&stack).await));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test]
async fn rejected_requests_on_one_url_write_no_key_hot() {
    let (stack, function, token) = task_app("hot-rejected").await;
    for i in 0..REQUESTS {
        let request = delivery(&token, &format!("evt-{i}"), "user-1", "wrong-secret");
        assert_eq!(status(&function, request).await, 401);
    }
    let problems = hottest("rejected", &writes_per_key(&usage(&stack).await));
    assert!(problems.is_empty(), "{problems:#?}");
}

/// A stack upgraded in place: events and workflow runs an earlier version wrote under
/// the unsharded keys are still listed, read and cancelled; nothing is migrated.
#[tokio::test]
async fn items_written_under_the_unsharded_keys_are_still_listed_and_read() {
    use aws_sdk_dynamodb::types::AttributeValue;
    use inlet_core::directory::{
        ActionChanges, ActionKey, Directory, DirectoryChange, RecipientRef, WorkflowRun,
    };
    use inlet_core::store::{EventLog, EventQuery};
    let (stack, function, token) = task_app("hot-legacy").await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let request = delivery(&token, &format!("evt-legacy-{i}"), "user-1", SECRET);
        let response = function.handle(request).await.unwrap();
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    // The first event as an earlier version indexed it.
    stack
        .dynamo
        .update_item()
        .table_name(&stack.names.events_table)
        .key("pk", AttributeValue::S(format!("EVENT#{}", ids[0])))
        .key("sk", AttributeValue::S("EVENT".into()))
        .update_expression("SET gsi1pk = :old")
        .expression_attribute_values(":old", AttributeValue::S("task-app#development".into()))
        .send()
        .await
        .unwrap();
    let page = stack
        .events
        .list(&EventQuery {
            source: Some("task-app".into()),
            environment: Some("development".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let listed: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first);
    // A page of two, then the rest from the cursor.
    let first = stack
        .events
        .list(&EventQuery {
            source: Some("task-app".into()),
            environment: Some("development".into()),
            limit: 2,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first.events.len(), 2);
    let rest = stack
        .events
        .list(&EventQuery {
            source: Some("task-app".into()),
            environment: Some("development".into()),
            limit: 2,
            cursor: first.next_cursor.clone(),
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        rest.events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [ids[0].as_str()]
    );

    // A run as an earlier version stored it: in the workflow's one partition, its
    // pointer without the partition.
    let run = WorkflowRun {
        id: "wr_legacy_0".into(),
        workflow_key: "legacy".into(),
        recipients: vec![RecipientRef::User("user-1".into())],
        actor: None,
        tenant: None,
        data: Default::default(),
        cancellation_key: Some("c1".into()),
        status: "triggered".into(),
        event_id: "legacy".into(),
        created_at_ms: 1,
    };
    for (pk, sk, extra) in [
        ("development#WORKFLOW#legacy", "RUN#wr_legacy_0", true),
        ("development#RUN#wr_legacy_0", "RUN", false),
    ] {
        let mut put = stack
            .dynamo
            .put_item()
            .table_name(&stack.names.directory_table)
            .item("pk", AttributeValue::S(pk.into()))
            .item("sk", AttributeValue::S(sk.into()));
        put = if extra {
            put.item(
                "run",
                AttributeValue::S(serde_json::to_string(&run).unwrap()),
            )
            .item("status", AttributeValue::S("triggered".into()))
            .item("cancellation_key", AttributeValue::S("c1".into()))
            .item("created_at_ms", AttributeValue::N("1".into()))
        } else {
            put.item("workflow_key", AttributeValue::S("legacy".into()))
        };
        put.send().await.unwrap();
    }
    let directory = &stack.directory;
    assert_eq!(
        directory
            .workflow_run("development", "wr_legacy_0")
            .await
            .unwrap(),
        Some(run.clone())
    );
    let listed = directory
        .workflow_runs("development", Some("legacy"), 10)
        .await
        .unwrap();
    assert_eq!(listed, [run]);
    directory
        .apply(ActionChanges {
            environment: "development",
            key: &ActionKey {
                event_id: "cancel-legacy".into(),
                index: 0,
            },
            changes: &[DirectoryChange::CancelWorkflowRuns {
                workflow_key: "legacy".into(),
                cancellation_key: "c1".into(),
                recipients: None,
            }],
            result: &serde_json::json!({}),
            now_ms: 2,
        })
        .await
        .unwrap();
    let cancelled = directory
        .workflow_run("development", "wr_legacy_0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cancelled.status, "cancelled");
}
