//! Events and actions beyond DynamoDB's per-item (400 KB) and per-transaction (100 items,
//! 4 MB) limits, through the ingest function's handler on API Gateway events and the
//! actions function on the events table's stream, in the emulator:
//!
//! - a 256 KiB body (the documented limit) that doubles when escaped is accepted,
//!   stored in parts, read back whole, and its actions run;
//! - an event mapped to 120 actions, and a trigger to 1,000 inline recipients, run;
//! - an event whose action plan is too large for one transaction is answered 500
//!   `not_stored` and logged as `error` without its plan (and nothing runs);
//! - an action cut into several transactions that crashes between two of them resumes
//!   without applying a part twice.

mod common;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use common::aws::{
    SECRET, Stack, answer, apigw, example_files, ingest_function, padded_task_event, source,
};
use inlet_aws::directory::DynamoDirectory;
use inlet_core::directory::{
    ActionChanges, ActionKey, Applied, Directory, DirectoryChange, RecipientRef,
};
use inlet_core::store::{ActionStatus, EventLog, EventQuery, EventStatus};
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The example sources, with task-app's trigger also copying the body's `notes` into
/// its data (so the action plan holds a second copy of a large body).
fn files_copying_notes() -> Vec<(String, String)> {
    example_files()
        .into_iter()
        .map(|(name, text)| {
            let text = if name == "task-app.yaml" {
                text.replacen(
                    "            data.title: data.title\n",
                    "            data.title: data.title\n            data.notes: notes\n",
                    1,
                )
            } else {
                text
            };
            (name, text)
        })
        .collect()
}

#[tokio::test]
async fn a_256_kib_event_is_accepted_stored_whole_and_run() {
    let mut stack = Stack::new("big-event").await;
    let (function, tokens) = ingest_function(&stack, files_copying_notes(), &["task-app"]).await;
    let body = padded_task_event("evt-big-1", 256 * 1024);
    let secret_body = body.clone();
    let request = {
        let mut request = apigw(&tokens[0], &secret_body);
        request
            .headers_mut()
            .insert("x-webhook-secret", SECRET.parse().unwrap());
        request
    };
    let response = function.handle(request).await.unwrap();
    assert_eq!(response.status(), 202, "{:?}", response.body());
    let accepted: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
    let event_id = accepted["event_id"].as_str().unwrap().to_string();

    // Stored in parts (the record, deflated, is still over one item), read back whole.
    let items = stack
        .dynamo
        .query()
        .table_name(&stack.names.events_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("EVENT#{event_id}")),
        )
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    let parts = items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("PART#"))
        .count();
    assert!(parts >= 2, "{parts} parts");
    let stored = stack.events.get(&event_id).await.unwrap().unwrap();
    assert_eq!(stored.raw_body, body);
    assert_eq!(stored.status, EventStatus::Accepted);
    assert_eq!(stored.actions.len(), 1);
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
    assert_eq!(page.events[0].raw_body, body, "listing reads the parts too");
    let types = stack
        .events
        .event_types("task-app", "development")
        .await
        .unwrap();
    assert_eq!(
        types[0].last_sample, body,
        "a large sample is read from its event"
    );

    // The stream hands it to the actions function, which runs its trigger.
    let batch = stack.deliver().await;
    assert_eq!(batch.records.len(), 1);
    let run = stack
        .directory
        .workflow_run("development", &format!("wr_{event_id}_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.recipients, [RecipientRef::User("user_456".into())]);
    let log = stack.events.action_log(&event_id).await.unwrap();
    assert_eq!(log[0].status, ActionStatus::Succeeded);

    // Its duplicate is a duplicate.
    let mut again = apigw(&tokens[0], &body);
    again
        .headers_mut()
        .insert("x-webhook-secret", SECRET.parse().unwrap());
    let response = function.handle(again).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_expired_event_whose_parts_ttl_deleted_first_is_gone_not_broken() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let stack = Stack::new("big-expired").await;
    let (function, tokens) = ingest_function(&stack, files_copying_notes(), &["task-app"]).await;
    let mut ids = Vec::new();
    for key in ["evt-expired-1", "evt-kept-2"] {
        let mut request = apigw(&tokens[0], &padded_task_event(key, 256 * 1024));
        request
            .headers_mut()
            .insert("x-webhook-secret", SECRET.parse().unwrap());
        let response = function.handle(request).await.unwrap();
        assert_eq!(response.status(), 202);
        let body: Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        ids.push(body["event_id"].as_str().unwrap().to_string());
    }
    // TTL deletes items one by one, in no order: the first event's parts are gone and
    // its head, past its expiry, is still there.
    let pk = AttributeValue::S(format!("EVENT#{}", ids[0]));
    let items = stack
        .dynamo
        .query()
        .table_name(&stack.names.events_table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", pk.clone())
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    for item in items
        .iter()
        .filter(|i| i["sk"].as_s().unwrap().starts_with("PART#"))
    {
        stack
            .dynamo
            .delete_item()
            .table_name(&stack.names.events_table)
            .key("pk", pk.clone())
            .key("sk", item["sk"].clone())
            .send()
            .await
            .unwrap();
    }
    let listing = EventQuery {
        source: Some("task-app".into()),
        environment: Some("development".into()),
        limit: 10,
        ..EventQuery::default()
    };
    // Not yet expired: parts missing is a broken event, said as such.
    let error = stack.events.get(&ids[0]).await.unwrap_err();
    assert!(error.to_string().contains("incomplete"), "{error}");
    stack
        .dynamo
        .update_item()
        .table_name(&stack.names.events_table)
        .key("pk", pk.clone())
        .key("sk", AttributeValue::S("EVENT".into()))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N("1000".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(stack.events.get(&ids[0]).await.unwrap(), None);
    let page = stack.events.list(&listing).await.unwrap();
    let listed: Vec<&str> = page.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(listed, [ids[1].as_str()], "the expired one is skipped");
}

#[tokio::test]
async fn an_event_with_120_actions_and_a_trigger_to_1000_inline_recipients_run() {
    let mut stack = Stack::new("big-plan").await;
    let many: String = (0..120)
        .map(|i| {
            format!(
                "        - action: users_identify\n          params: {{ id: {{ value: member-{i:03} }}, name: body.name }}\n"
            )
        })
        .collect();
    let crowd = "        - action: workflows_trigger\n          params: { key: { value: crowd }, recipients: body.people }\n";
    let (function, tokens) = ingest_function(
        &stack,
        vec![source("many", &many), source("crowd", crowd)],
        &["many", "crowd"],
    )
    .await;

    let (status, body) = answer(
        &function,
        &tokens[0],
        r#"{"type": "go", "id": "m1", "name": "Grace"}"#,
    )
    .await;
    assert_eq!((status, &body["actions"]), (202, &json!(120)), "{body}");
    let many_id = body["event_id"].as_str().unwrap().to_string();
    let people: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("p{i:04}"), "name": format!("Person {i}")}))
        .collect();
    let (status, body) = answer(
        &function,
        &tokens[1],
        &json!({"type": "go", "id": "c1", "people": people}).to_string(),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let crowd_id = body["event_id"].as_str().unwrap().to_string();

    let batch = stack.deliver().await;
    assert_eq!(batch.records.len(), 2);
    let log = stack.events.action_log(&many_id).await.unwrap();
    assert_eq!(log.len(), 120);
    assert!(
        log.iter()
            .all(|a| a.status == ActionStatus::Succeeded && a.attempts == 1),
        "{log:?}"
    );
    for i in [0, 59, 119] {
        let user = stack
            .directory
            .user("development", &format!("member-{i:03}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(user.properties["name"], "Grace");
    }
    let run = stack
        .directory
        .workflow_run("development", &format!("wr_{crowd_id}_0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.recipients.len(), 1000);
    let last = stack
        .directory
        .user("development", "p0999")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.properties["name"], "Person 999");

    // Lambda delivering the batch again applies nothing twice.
    let response = stack.actions.handle(batch).await;
    assert!(response.batch_item_failures.is_empty());
    let log = stack.events.action_log(&many_id).await.unwrap();
    assert!(log.iter().all(|a| a.attempts == 1));
}

#[tokio::test]
async fn an_event_too_large_for_one_transaction_is_answered_500_and_logged_without_its_plan() {
    let mut stack = Stack::new("too-large").await;
    // Twenty actions, each carrying a copy of a ~240 KB object: a plan of ~5 MB.
    let copies: String = (0..20)
        .map(|i| {
            format!(
                "        - action: lambda_invoke\n          params: {{ function: {{ value: inlet-development-target-{i} }}, payload: body.data }}\n"
            )
        })
        .collect();
    let (function, tokens) =
        ingest_function(&stack, vec![source("copies", &copies)], &["copies"]).await;
    let body = json!({"type": "go", "id": "x1", "data": {"blob": "y".repeat(240_000)}}).to_string();
    let (status, answer_body) = answer(&function, &tokens[0], &body).await;
    assert_eq!(status, 500, "{answer_body}");
    assert_eq!(answer_body["error"]["code"], "not_stored");
    let message = answer_body["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("4 MB"),
        "details stay in the log: {message}"
    );

    let page = stack
        .events
        .list(&EventQuery {
            source: Some("copies".into()),
            environment: Some("development".into()),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 1);
    let logged = stack.events.get(&page.events[0].id).await.unwrap().unwrap();
    assert!(message.contains(&logged.id), "{message}");
    assert_eq!(logged.status, EventStatus::Error);
    assert!(logged.actions.is_empty());
    assert_eq!(logged.raw_body, body, "the body is kept");
    let error = logged.error.as_deref().unwrap();
    assert!(error.contains("4 MB") && error.contains("bytes"), "{error}");
    assert!(
        stack.deliver().await.records.is_empty(),
        "nothing runs for it"
    );
}

/// Fails the `nth` `TransactWriteItems` after DynamoDB committed it, as a crash of the
/// function right after that write would.
#[derive(Debug, Default)]
struct CrashAfterTransaction {
    nth: usize,
    transactions: AtomicUsize,
    current_is_transaction: AtomicBool,
}

impl Intercept for CrashAfterTransaction {
    fn name(&self) -> &'static str {
        "CrashAfterTransaction"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let is_transaction = context
            .input()
            .downcast_ref::<TransactWriteItemsInput>()
            .is_some();
        self.current_is_transaction
            .store(is_transaction, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        if self.current_is_transaction.load(Ordering::SeqCst)
            && self.transactions.fetch_add(1, Ordering::SeqCst) + 1 == self.nth
        {
            return Err("the function crashed after this transaction committed".into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_large_action_that_crashed_between_its_parts_resumes_without_reapplying_a_part() {
    let stack = Stack::new("parts").await;
    let crashing = DynamoDirectory {
        client: aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&stack.sdk)
                .interceptor(CrashAfterTransaction {
                    nth: 1,
                    ..CrashAfterTransaction::default()
                })
                .build(),
        ),
        table: stack.names.directory_table.clone(),
    };
    let env = "development";
    // 100 subscribers: three transactions (45, 45, 10 subscribers with their reverse
    // items).
    let recipients: Vec<RecipientRef> = (0..100)
        .map(|i| RecipientRef::User(format!("s{i:03}")))
        .collect();
    let subscribe = [DirectoryChange::Subscribe {
        collection: "teams".into(),
        id: "t1".into(),
        recipients,
        properties: Map::new(),
    }];
    let key = ActionKey {
        event_id: "e-sub".into(),
        index: 0,
    };
    let result = json!({"recipients": 100});
    let crashed = crashing
        .apply(changes(env, &key, &subscribe, &result, 1_000))
        .await
        .unwrap_err();
    assert!(crashed.to_string().contains("crashed"), "{crashed}");
    let count = || async {
        stack
            .directory
            .subscriptions(env, "teams", "t1")
            .await
            .unwrap()
            .len()
    };
    assert_eq!(count().await, 45, "the first part committed, alone");

    // Another event unsubscribes s000 (from the applied part) before the retry.
    let unsubscribe = [DirectoryChange::Unsubscribe {
        collection: "teams".into(),
        id: "t1".into(),
        recipients: vec![RecipientRef::User("s000".into())],
    }];
    let other = ActionKey {
        event_id: "e-unsub".into(),
        index: 0,
    };
    stack
        .directory
        .apply(changes(env, &other, &unsubscribe, &json!({}), 2_000))
        .await
        .unwrap();

    // The retry applies the two parts left, not the first one again.
    assert_eq!(
        stack
            .directory
            .apply(changes(env, &key, &subscribe, &result, 3_000))
            .await
            .unwrap(),
        Applied::Now
    );
    assert_eq!(count().await, 99, "s000 stays unsubscribed");
    let subscribers: Vec<RecipientRef> = stack
        .directory
        .subscriptions(env, "teams", "t1")
        .await
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(!subscribers.contains(&RecipientRef::User("s000".into())));
    assert_eq!(
        stack
            .directory
            .apply(changes(
                env,
                &key,
                &subscribe,
                &json!({"other": true}),
                4_000
            ))
            .await
            .unwrap(),
        Applied::Before(result),
        "applied once; the stored result answers"
    );
}

fn changes<'a>(
    environment: &'a str,
    key: &'a ActionKey,
    changes: &'a [DirectoryChange],
    result: &'a Value,
    now_ms: i64,
) -> ActionChanges<'a> {
    ActionChanges {
        environment,
        key,
        changes,
        result,
        now_ms,
    }
}
