//! Workflow runs delivered to AWS targets (Step Functions, EventBridge, SQS) through
//! the real executor and the real SDK, against the emulator: what each target receives,
//! what a redelivered run (a crash after the delivery, a stream record sent again)
//! leaves behind, and how a missing target fails the action.

mod common;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use inlet::sqlite::SqliteStore;
use inlet::targets::HttpTargets;
use inlet_aws::clients::AwsClients;
use inlet_aws::targets::{AwsTargets, execution_arn};
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::clock::ManualClock;
use inlet_core::config::{QueueGroup, Target, Targets};
use inlet_core::directory::{RecipientRef, WorkflowRun};
use inlet_core::executor::{ActionExecutor, ActionOutcome};
use inlet_core::store::EventRecord;
use inlet_core::targets::{InvokeError, TargetInvoker};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct World {
    clients: AwsClients,
    clock: Arc<ManualClock>,
    executor: ActionExecutor,
    _dir: tempfile::TempDir,
}

/// An executor on a SQLite directory whose workflows go to `targets` on the emulator,
/// reached as `inlet dev --targets` reaches them.
async fn world_of(targets: Targets) -> World {
    common::require_emulator();
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let aws = AwsTargets::new(&clients, targets.clone());
    let executor = ActionExecutor {
        directory: Arc::new(
            SqliteStore::open(&dir.path().join("a.db"), Duration::from_secs(5)).unwrap(),
        ),
        targets: Arc::new(HttpTargets::new(targets).with_aws(aws)),
        clock: clock.clone(),
    };
    World {
        clients,
        clock,
        executor,
        _dir: dir,
    }
}

fn workflows(key: &str, target: Target) -> Targets {
    Targets {
        workflows: [(key.to_string(), target)].into(),
        ..Default::default()
    }
}

/// Runs event `event_id`'s trigger of `workflow` for `u1` (action 0).
async fn trigger(world: &World, event_id: &str, workflow: &str) -> ActionOutcome {
    let payload = json!({"key": workflow, "recipients": ["u1"], "data": {"total": 5}});
    run_action(world, event_id, ActionKind::WorkflowsTrigger, payload).await
}

async fn run_action(
    world: &World,
    event_id: &str,
    action: ActionKind,
    payload: Value,
) -> ActionOutcome {
    let event = EventRecord {
        id: event_id.into(),
        event_type: Some("order.placed".into()),
        ..EventRecord::received("shop", "development", 1_700_000_000_000, i64::MAX)
    };
    let action = PlannedAction {
        index: 0,
        action,
        params: Default::default(),
        payload,
        skipped: None,
    };
    world.executor.execute(&event, &action).await
}

fn delivered(outcome: ActionOutcome) -> Value {
    match outcome {
        ActionOutcome::Succeeded(result) => result["delivery"].clone(),
        other => panic!("the trigger did not succeed: {other:?}"),
    }
}

/// What every target receives of event `event_id`'s run of `workflow`.
fn run_input(event_id: &str, workflow: &str) -> Value {
    json!({
        "run_id": format!("wr_{event_id}_0"),
        "workflow_key": workflow,
        "recipients": ["u1"],
        "actor": null,
        "tenant": null,
        "data": {"total": 5},
        "cancellation_key": null,
        "event_id": event_id,
        "source": "shop",
    })
}

async fn state_machine(clients: &AwsClients) -> String {
    clients
        .sfn
        .create_state_machine()
        .name(common::unique_name("orders"))
        .definition(r#"{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}"#)
        .role_arn("arn:aws:iam::123456789012:role/inlet-test")
        .send()
        .await
        .unwrap()
        .state_machine_arn
}

async fn queue(clients: &AwsClients, name: &str, fifo: bool) -> (String, String) {
    let mut create = clients.sqs.create_queue().queue_name(name);
    if fifo {
        create = create.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let url = create.send().await.unwrap().queue_url.unwrap();
    let arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    (url, arn)
}

/// A new bus named `bus` whose rule routes the events of `inlet.<source>` to a new queue;
/// the queue's URL.
async fn bus_to_queue(clients: &AwsClients, bus: &str, source: &str) -> String {
    clients
        .eventbridge
        .create_event_bus()
        .name(bus)
        .send()
        .await
        .unwrap();
    let (queue_url, queue_arn) = queue(clients, &common::unique_name("bus-queue"), false).await;
    let rule = common::unique_name("inlet-rule");
    clients
        .eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(format!(r#"{{"source": ["inlet.{source}"]}}"#))
        .send()
        .await
        .unwrap();
    clients
        .eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(&queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    queue_url
}

/// Sends the task-app sample to `server` (answered 202) and waits up to 20 s for the
/// messages it leads to in `queue`; the event's id and the messages.
async fn webhook_and_messages(
    server: &inlet::server::DevServer,
    clients: &AwsClients,
    queue: &str,
) -> (String, Vec<(Value, Option<String>)>) {
    let url = server.url("task-app", "development").unwrap().to_string();
    let accepted = common::post_sample(&url, "task-assigned.json").await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let event_id = accepted.body["event_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let received = messages(clients, queue).await;
        if !received.is_empty() || std::time::Instant::now() > deadline {
            return (event_id, received);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every message waiting in `queue`: (body, message group).
async fn messages(clients: &AwsClients, queue: &str) -> Vec<(Value, Option<String>)> {
    let mut all = Vec::new();
    loop {
        let page = clients
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        let received = page.messages.unwrap_or_default();
        if received.is_empty() {
            return all;
        }
        for message in received {
            let group = message
                .attributes
                .as_ref()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId).cloned());
            all.push((
                serde_json::from_str(message.body().unwrap()).unwrap(),
                group,
            ));
        }
    }
}

#[tokio::test]
async fn a_run_starts_one_execution_however_often_it_is_delivered() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let arn = state_machine(&clients).await;
    let world = world_of(workflows("orders", Target::StateMachine(arn.clone()))).await;
    let first = delivered(trigger(&world, "e1", "orders").await);
    let execution = execution_arn(&arn, "wr_e1_0");
    assert_eq!(first["execution_arn"], json!(execution), "{first}");

    // The action again, later (an actions function that crashed after StartExecution,
    // a redelivered stream record): the run is planned anew, and starts nothing new.
    world.clock.advance_ms(60_000);
    let again = delivered(trigger(&world, "e1", "orders").await);
    assert_eq!(again["execution_arn"], json!(execution), "{again}");
    // Once the execution has ended, Step Functions answers ExecutionAlreadyExists:
    // still the same run, already started.
    world
        .clients
        .sfn
        .stop_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap();
    let after_end = delivered(trigger(&world, "e1", "orders").await);
    assert_eq!(after_end["execution_arn"], json!(execution));
    assert_eq!(after_end["already_started"], json!(true));

    let executions = world
        .clients
        .sfn
        .list_executions()
        .state_machine_arn(&arn)
        .send()
        .await
        .unwrap()
        .executions;
    assert_eq!(executions.len(), 1, "{executions:?}");
    let input = world
        .clients
        .sfn
        .describe_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap()
        .input
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&input).unwrap(),
        run_input("e1", "orders")
    );

    // Another event's run is another execution.
    let other = delivered(trigger(&world, "e2", "orders").await);
    assert_eq!(
        other["execution_arn"],
        json!(execution_arn(&arn, "wr_e2_0"))
    );
}

#[tokio::test]
async fn a_state_machine_that_does_not_exist_fails_the_action_once_and_says_so() {
    let missing = "arn:aws:states:us-east-1:123456789012:stateMachine:no-such-machine";
    let world = world_of(workflows("orders", Target::StateMachine(missing.into()))).await;
    match trigger(&world, "e1", "orders").await {
        ActionOutcome::Failed { error, retryable } => {
            assert!(!retryable, "{error}");
            assert!(
                error.contains("no-such-machine") && error.contains("StateMachineDoesNotExist"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_bus_run_reaches_the_queue_its_rule_routes_to_and_refusals_fail_the_action() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let bus = common::unique_name("billing");
    let queue_url = bus_to_queue(&clients, &bus, "shop").await;

    let world = world_of(workflows("invoices", Target::EventBus(bus.clone()))).await;
    let delivery = delivered(trigger(&world, "e1", "invoices").await);
    assert!(delivery["event_id"].is_string(), "{delivery}");
    let received = messages(&clients, &queue_url).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let event = &received[0].0;
    assert_eq!(event["source"], "inlet.shop");
    assert_eq!(event["detail-type"], "invoices");
    assert_eq!(event["id"], delivery["event_id"]);
    assert_eq!(event["detail"], run_input("e1", "invoices"));

    // A bus that does not exist: the request is refused, the action fails at once.
    let nowhere = world_of(workflows(
        "invoices",
        Target::EventBus("no-such-bus".into()),
    ))
    .await;
    match trigger(&nowhere, "e2", "invoices").await {
        ActionOutcome::Failed { error, retryable } => {
            assert!(!retryable && error.contains("no-such-bus"), "{error}");
        }
        other => panic!("{other:?}"),
    }

    // A 200 answer whose entry failed is a failure with the entry's code, not a success.
    let targets = AwsTargets::new(&clients, Targets::default());
    let nameless = WorkflowRun {
        id: "wr_e3_0".into(),
        workflow_key: String::new(),
        recipients: vec![RecipientRef::User("u1".into())],
        actor: None,
        tenant: None,
        data: Default::default(),
        cancellation_key: None,
        status: "triggered".into(),
        event_id: "e3".into(),
        created_at_ms: 0,
    };
    match targets
        .deliver(&Target::EventBus(bus.clone()), "shop", &nameless)
        .await
    {
        Err(InvokeError::Permanent(error)) => {
            assert!(error.contains("InvalidArgument"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    assert!(messages(&clients, &queue_url).await.is_empty());
}

#[tokio::test]
async fn a_fifo_queue_keeps_one_message_per_run_in_the_recipient_s_group() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let (url, _) = queue(
        &clients,
        &format!("{}.fifo", common::unique_name("runs")),
        true,
    )
    .await;
    let world = world_of(workflows(
        "digest",
        Target::Queue {
            url: url.clone(),
            group_by: QueueGroup::Recipient,
        },
    ))
    .await;
    let first = delivered(trigger(&world, "e1", "digest").await);
    assert!(first["message_id"].is_string(), "{first}");
    world.clock.advance_ms(1_000);
    delivered(trigger(&world, "e1", "digest").await);
    delivered(trigger(&world, "e2", "digest").await);
    let received = messages(&clients, &url).await;
    assert_eq!(
        received,
        [
            (run_input("e1", "digest"), Some("u1".to_string())),
            (run_input("e2", "digest"), Some("u1".to_string())),
        ],
        "one message per run, the redelivery dropped"
    );
}

#[tokio::test]
async fn without_a_target_a_run_is_only_recorded() {
    let world = world_of(Targets::default()).await;
    match trigger(&world, "e1", "orders").await {
        ActionOutcome::Succeeded(result) => {
            assert_eq!(result["workflow_run_id"], "wr_e1_0");
            assert!(result.get("delivery").is_none(), "{result}");
        }
        other => panic!("{other:?}"),
    }
    let targets = AwsTargets::new(&world.clients, Targets::default());
    let run = WorkflowRun {
        id: "wr_x_0".into(),
        workflow_key: "orders".into(),
        recipients: Vec::new(),
        actor: None,
        tenant: None,
        data: Default::default(),
        cancellation_key: None,
        status: "triggered".into(),
        event_id: "x".into(),
        created_at_ms: 0,
    };
    assert_eq!(targets.deliver_run("shop", &run).await.unwrap(), None);
}

/// The deployed path: `inlet config push --targets` (the real binary) validates and
/// stores the targets; the stack's actions function reads them from its config table.
#[tokio::test]
async fn a_stack_delivers_runs_to_the_targets_config_push_stored() {
    let stack = common::aws::Stack::for_environment("targets").await;
    let env = stack.names.environment.clone();
    let clients = AwsClients::new(&stack.sdk);
    let arn = state_machine(&clients).await;
    let ws = common::Workspace::new();
    let dir = tempfile::tempdir().unwrap();
    let push = |targets: &str| {
        let file = dir.path().join("targets.yaml");
        std::fs::write(&file, targets).unwrap();
        let out = std::process::Command::new(common::inlet_binary())
            .args(["config", "push", "--env", &env, "--sources"])
            .arg(ws.sources())
            .arg("--targets")
            .arg(&file)
            .output()
            .unwrap();
        common::said(out)
    };
    let (ok, said) = push("workflows:\n  orders: { state_machine: \"arn:aws:lambda:x\" }\n");
    assert!(
        !ok && said.contains("the targets file has problems"),
        "{said}"
    );
    assert!(said.contains("a state machine ARN"), "{said}");
    let (ok, said) = push(&format!(
        "workflows:\n  orders: {{ state_machine: \"{arn}\" }}\n"
    ));
    assert!(ok, "{said}");
    assert!(
        said.contains("Pushed the targets: 1 workflow(s), 0 function(s)."),
        "{said}"
    );
    // The emulator's state machine is not named inlet-<env>-*: a deployed stack's policy
    // would refuse it, and the push says so.
    assert!(
        said.contains("warning: workflow `orders` goes to `")
            && said.contains(&format!("name it `inlet-{env}-*`")),
        "{said}"
    );

    let function = inlet_aws::actions::ActionsFunction::new(&clients, &stack.names);
    let event = EventRecord {
        id: "e1".into(),
        ..EventRecord::received("shop", &env, 1_700_000_000_000, i64::MAX)
    };
    let action = PlannedAction {
        index: 0,
        action: ActionKind::WorkflowsTrigger,
        params: Default::default(),
        payload: json!({"key": "orders", "recipients": ["u1"], "data": {"total": 5}}),
        skipped: None,
    };
    match function.executor.execute(&event, &action).await {
        ActionOutcome::Succeeded(result) => assert_eq!(
            result["delivery"]["execution_arn"],
            json!(execution_arn(&arn, "wr_e1_0")),
            "{result}"
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_cancel_stops_the_executions_of_its_key_and_only_those() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let arn = state_machine(&clients).await;
    let world = world_of(workflows("orders", Target::StateMachine(arn.clone()))).await;
    for (event_id, cancellation_key) in [("e1", "order-1"), ("e2", "order-1"), ("e3", "order-2")] {
        let payload = json!({"key": "orders", "recipients": ["u1"], "data": {"total": 5},
                             "cancellation_key": cancellation_key});
        let outcome = run_action(&world, event_id, ActionKind::WorkflowsTrigger, payload).await;
        assert!(
            matches!(outcome, ActionOutcome::Succeeded(_)),
            "{outcome:?}"
        );
    }
    let cancel = json!({"key": "orders", "cancellation_key": "order-1"});
    let stopped = match run_action(&world, "c1", ActionKind::WorkflowsCancel, cancel.clone()).await
    {
        ActionOutcome::Succeeded(result) => result["stopped"].clone(),
        other => panic!("{other:?}"),
    };
    let mut executions: Vec<String> =
        serde_json::from_value(stopped["executions"].clone()).unwrap();
    executions.sort();
    assert_eq!(
        executions,
        [
            execution_arn(&arn, "wr_e1_0"),
            execution_arn(&arn, "wr_e2_0")
        ]
    );
    let status = |run: &'static str| {
        let execution = execution_arn(&arn, run);
        let sfn = clients.sfn.clone();
        async move {
            sfn.describe_execution()
                .execution_arn(execution)
                .send()
                .await
                .unwrap()
                .status
                .as_str()
                .to_string()
        }
    };
    assert_eq!(status("wr_e1_0").await, "ABORTED");
    assert_eq!(status("wr_e2_0").await, "ABORTED");
    assert_eq!(
        status("wr_e3_0").await,
        "RUNNING",
        "another cancellation key"
    );

    // Delivered again, the cancellation stops nothing new and still succeeds.
    match run_action(&world, "c1", ActionKind::WorkflowsCancel, cancel).await {
        ActionOutcome::Succeeded(_) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(status("wr_e3_0").await, "RUNNING");
}

/// A Step Functions endpoint that throttles every request, as the service does above
/// an account's rate: the run stays undelivered and its action planned, with no
/// attempt counted (like Inlet's own store being unavailable), instead of failing.
#[tokio::test]
async fn a_throttled_target_leaves_the_action_planned_without_counting_an_attempt() {
    use axum::http::StatusCode;
    let app = axum::Router::new().fallback(|| async {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.0")],
            r#"{"__type": "com.amazonaws.swf.base.model#ThrottlingException", "message": "Rate exceeded"}"#,
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
        .load()
        .await;
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:inlet-dev-orders";
    let targets = workflows("orders", Target::StateMachine(machine.into()));
    let mut world = world_of(targets.clone()).await;
    world.executor.targets = Arc::new(
        HttpTargets::new(targets.clone())
            .with_aws(AwsTargets::new(&AwsClients::new(&sdk), targets)),
    );
    match trigger(&world, "e1", "orders").await {
        ActionOutcome::StoreUnavailable(detail) => {
            assert!(detail.contains("ThrottlingException"), "{detail}")
        }
        other => panic!("a throttled target is not the action's failure: {other:?}"),
    }
}

/// `inlet dev --targets` reaches the AWS kinds through the SDK, with the environment's
/// credentials and endpoint (here the emulator's): a webhook's run lands in the queue.
#[tokio::test]
async fn inlet_dev_delivers_a_webhook_s_run_to_a_queue_through_the_sdk() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let (queue_url, _) = queue(&clients, &common::unique_name("dev-runs"), false).await;
    let ws = common::Workspace::new();
    let server = ws
        .start_with_targets(&format!(
            "workflows:\n  task-assigned: {{ queue: \"{queue_url}\" }}\n"
        ))
        .await;
    let (event_id, received) = webhook_and_messages(&server, &clients, &queue_url).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let run = &received[0].0;
    assert_eq!(run["workflow_key"], "task-assigned");
    assert_eq!(run["source"], "task-app");
    assert_eq!(run["event_id"], json!(event_id));
    assert_eq!(run["run_id"], json!(format!("wr_{event_id}_0")));
}

/// `inlet check --targets FILE --env ENV`: every problem with its line and fix (exit 1),
/// and for a valid file the targets a stack of ENV may not reach.
#[test]
fn inlet_check_validates_a_targets_file_and_names_what_a_stack_cannot_reach() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str| {
        let file = dir.path().join("targets.yaml");
        std::fs::write(&file, text).unwrap();
        let out = std::process::Command::new(common::inlet_binary())
            .arg("check")
            .arg(common::repo_root().join("infra/sources"))
            .arg("--targets")
            .arg(&file)
            .args(["--env", "prod"])
            .output()
            .unwrap();
        common::said(out)
    };
    let (ok, said) = check("workflows:\n  a: { state_machine: nope }\n");
    assert!(!ok, "{said}");
    assert!(
        said.contains("targets.yaml:2: target `a`: `state_machine` must be a state machine ARN"),
        "{said}"
    );
    let (ok, said) = check(
        "workflows:\n  a: { state_machine: \"arn:aws:states:us-east-1:1:stateMachine:orders\" }\n  b: { event_bus: inlet-prod-billing }\n",
    );
    assert!(ok, "{said}");
    assert!(
        said.contains("OK: 2 workflow target(s), 0 function target(s)"),
        "{said}"
    );
    assert!(
        said.contains("warning: workflow `a` goes to `orders`") && !said.contains("`b`"),
        "{said}"
    );
}

/// `forward_to_event_bus`, end to end through `inlet dev`: every accepted webhook is put
/// on the bus once (a rule routes it to a queue here) with the event as its detail,
/// after its mapped actions; the action log settles it.
#[tokio::test]
async fn an_environment_forwards_every_accepted_event_to_its_bus_once() {
    let clients = AwsClients::new(&aws_config::load_from_env().await);
    let bus = common::unique_name("inlet-development-events");
    let queue_url = bus_to_queue(&clients, &bus, "task-app").await;

    let ws = common::Workspace::new();
    let yaml = ws.sources().join("task-app.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap().replacen(
        "  development:\n",
        &format!("  development:\n    forward_to_event_bus: {bus}\n"),
        1,
    );
    std::fs::write(&yaml, text).unwrap();
    let server = ws.start().await;
    let (event_id, received) = webhook_and_messages(&server, &clients, &queue_url).await;
    assert_eq!(received.len(), 1, "{received:?}");
    let put = &received[0].0;
    assert_eq!(put["source"], "inlet.task-app");
    assert_eq!(put["detail-type"], "task.assigned");
    let detail = &put["detail"];
    assert_eq!(detail["event_id"], json!(event_id));
    assert_eq!(detail["environment"], "development");
    let sample: Value = serde_json::from_str(&common::sample("task-assigned.json")).unwrap();
    assert_eq!(detail["body"], sample, "the body, parsed");

    // The action log: the mapped trigger first, then the forward, both settled.
    let base = format!("http://{}", server.addr);
    let settled = common::settled(&base, &event_id).await;
    let actions = settled["actions"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("workflows_trigger", "succeeded"),
            ("events_forward", "succeeded")
        ]
    );
    assert!(messages(&clients, &queue_url).await.is_empty(), "put once");
}
