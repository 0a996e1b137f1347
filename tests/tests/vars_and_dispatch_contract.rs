//! One contract each for the two traits whose implementations live outside the stores,
//! run against the local and the AWS implementation:
//! - `VarsProvider`: the vars file overlaid with `INLET_VAR_*` (`inlet dev`), and SSM
//!   Parameter Store in the emulator (Lambda);
//! - `ActionDispatcher`: the SQLite outbox drained by the `inlet dev` worker, and the
//!   async Lambda Invoke of the actions function, answered by a local endpoint speaking
//!   the Invoke API that runs the actions handler on the DynamoDB directory.

mod common;

use async_trait::async_trait;
use inlet::sqlite::SqliteStore;
use inlet::targets::HttpTargets;
use inlet::vars::{LocalVars, load_local_vars};
use inlet::worker::Worker;
use inlet_aws::actions::ActionsFunction;
use inlet_aws::directory::DynamoDirectory;
use inlet_aws::dispatch::LambdaDispatcher;
use inlet_aws::events::DynamoEventLog;
use inlet_aws::targets::LambdaTargets;
use inlet_aws::vars::SsmVars;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::directory::Directory;
use inlet_core::executor::ActionExecutor;
use inlet_core::store::{
    ActionDispatcher, ActionStatus, EventLog, EventRecord, EventStatus, VerificationStatus,
};
use inlet_core::vars::VarsProvider;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

const ENV: &str = "development";

// ---- VarsProvider ----

/// What every provider gives scripts for the vars listed in `local` and `ssm`.
async fn vars_contract(provider: &dyn VarsProvider, environment: &str) {
    let vars = provider.vars(environment).await.unwrap();
    assert_eq!(
        Value::Object(vars.for_scripts().clone()),
        json!({
            "PLAIN": "plain secret",
            "ROTATING": ["old-secret", "new-secret"],
            "NUMBER": 42,
            "JSON_TEXT": {"a": 1},
        })
    );
    // Every secret string is found for redaction, including each of a rotation list.
    for secret in ["plain secret", "old-secret", "new-secret"] {
        assert!(vars.appears_in(&format!("sig={secret};")), "{secret}");
    }
    assert_eq!(vars.redact("v1=new-secret"), "v1=[redacted]");
    assert!(
        !vars.appears_in("answer 42"),
        "short values are not redacted"
    );
    // Asked again (a cache or not), the same vars.
    assert_eq!(*provider.vars(environment).await.unwrap(), *vars);
    // Where to set a var that a script misses names the var.
    assert!(
        provider
            .how_to_set(environment, "UNSET_ONE")
            .contains("UNSET_ONE")
    );
}

#[tokio::test]
async fn vars_local_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vars.json");
    std::fs::write(
        &path,
        r#"{"PLAIN": "overridden below", "ROTATING": ["old-secret", "new-secret"],
            "NUMBER": 42, "JSON_TEXT": "{\"a\":1}"}"#,
    )
    .unwrap();
    let vars = load_local_vars(
        Some(&path),
        [("INLET_VAR_PLAIN".to_string(), "plain secret".to_string())],
    )
    .unwrap();
    let provider = LocalVars(Arc::new(vars));
    vars_contract(&provider, ENV).await;
    assert!(provider.how_to_set(ENV, "X").contains("INLET_VAR_X"));
}

#[tokio::test]
async fn vars_ssm() {
    common::require_emulator();
    let sdk = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let environment = common::unique_name("contract");
    let put = |environment: String, name: &'static str, value: &'static str, secure: bool| {
        let ssm = ssm.clone();
        async move {
            ssm.put_parameter()
                .name(format!("/inlet/{environment}/vars/{name}"))
                .value(value)
                .r#type(if secure {
                    aws_sdk_ssm::types::ParameterType::SecureString
                } else {
                    aws_sdk_ssm::types::ParameterType::String
                })
                .overwrite(true)
                .send()
                .await
                .unwrap();
        }
    };
    put(environment.clone(), "PLAIN", "plain secret", true).await;
    put(
        environment.clone(),
        "ROTATING",
        r#"["old-secret","new-secret"]"#,
        true,
    )
    .await;
    put(environment.clone(), "NUMBER", "42", false).await;
    put(environment.clone(), "JSON_TEXT", r#"{"a":1}"#, false).await;
    // Another environment's vars stay out.
    put(format!("{environment}-other"), "OTHER", "not mine", true).await;
    let provider = SsmVars::new(ssm.clone(), Arc::new(SystemClock) as Arc<dyn Clock>);
    vars_contract(&provider, &environment).await;
    assert!(
        provider
            .how_to_set(&environment, "X")
            .contains(&format!("/inlet/{environment}/vars/X"))
    );
}

// ---- ActionDispatcher ----

/// The executor behind a dispatcher, as the contract observes it.
#[async_trait]
trait Executor: Send + Sync {
    /// Waits until every hand-off of `event_id` so far has been processed.
    async fn settle(&self, event_id: &str);
}

/// Once `dispatch` returns, the event's actions run, once; handing the same event off
/// again (a retried dispatch, a redelivered invocation) applies nothing twice.
async fn dispatch_contract(
    log: &dyn EventLog,
    dispatcher: &dyn ActionDispatcher,
    directory: &dyn Directory,
    executor: &dyn Executor,
) {
    let event_id = common::unique_name("evt");
    let user_id = common::unique_name("user");
    log.record(accepted_event(&event_id, &user_id))
        .await
        .unwrap();
    dispatcher.dispatch(&event_id).await.unwrap();
    executor.settle(&event_id).await;

    let entries = log.action_log(&event_id).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, ActionStatus::Succeeded, "{entries:?}");
    assert_eq!(entries[0].attempts, 1);
    let user = directory.user(ENV, &user_id).await.unwrap().unwrap();
    assert_eq!(user.properties["name"], json!("Ada"));

    dispatcher.dispatch(&event_id).await.unwrap();
    executor.settle(&event_id).await;
    let again = log.action_log(&event_id).await.unwrap();
    assert_eq!(again[0].attempts, 1, "{again:?}");
    assert_eq!(
        directory.user(ENV, &user_id).await.unwrap().unwrap(),
        user,
        "the user was written again"
    );
}

/// An accepted event whose plan identifies one user.
fn accepted_event(event_id: &str, user_id: &str) -> EventRecord {
    let now = SystemClock.now_ms();
    EventRecord {
        id: event_id.into(),
        source: "task-app".into(),
        environment: ENV.into(),
        status: EventStatus::Accepted,
        verification: VerificationStatus::EnforcedVerified,
        event_type: Some("user.created".into()),
        received_at_ms: now,
        occurred_at_ms: now,
        idempotency_key: None,
        duplicate_of: None,
        method: "POST".into(),
        query: String::new(),
        headers: Vec::new(),
        raw_body: "{}".into(),
        preprocess: None,
        script_console: Vec::new(),
        error: None,
        warnings: Vec::new(),
        actions: vec![PlannedAction {
            index: 0,
            action: ActionKind::UsersIdentify,
            params: Arc::new(json!({"id": "body.user", "name": "body.name"})),
            payload: json!({"id": user_id, "name": "Ada"}),
            skipped: None,
        }],
        expires_at_ms: now + 86_400_000,
    }
}

/// The `inlet dev` worker, draining the outbox of a SQLite file.
struct OutboxWorker {
    store: Arc<SqliteStore>,
}

#[async_trait]
impl Executor for OutboxWorker {
    async fn settle(&self, event_id: &str) {
        for _ in 0..200 {
            let state = self.store.outbox_state(event_id).await.unwrap();
            if state.as_ref().is_some_and(|(state, _, _)| state == "done") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the outbox row of {event_id} is not done after 10 s");
    }
}

#[tokio::test]
async fn dispatch_sqlite_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("inlet.db"), Duration::from_secs(5)).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = Worker {
        store: store.clone(),
        executor: ActionExecutor {
            directory: store.clone(),
            targets: Arc::new(HttpTargets::new(Default::default())),
            clock: clock.clone(),
        },
        clock,
        max_attempts: 3,
        backoff: Duration::from_secs(1),
    }
    .spawn(store.outbox_wakeup(), stopped, Duration::from_secs(30));
    dispatch_contract(
        store.as_ref(),
        store.as_ref(),
        store.as_ref(),
        &OutboxWorker {
            store: store.clone(),
        },
    )
    .await;
    stop.send(true).unwrap();
    worker.await.unwrap();
}

/// The actions function behind the local Invoke endpoint.
struct InvokedFunction {
    finished: Mutex<tokio::sync::mpsc::UnboundedReceiver<Result<Value, String>>>,
    invocations: common::lambda::Invocations,
    settled: Mutex<usize>,
}

#[async_trait]
impl Executor for InvokedFunction {
    async fn settle(&self, event_id: &str) {
        let mut settled = self.settled.lock().await;
        let invoked = self.invocations.lock().unwrap().len();
        while *settled < invoked {
            let run = tokio::time::timeout(Duration::from_secs(20), async {
                self.finished.lock().await.recv().await
            })
            .await
            .expect("the actions function finished within 20 s")
            .expect("the endpoint is running");
            assert_eq!(run, Ok(json!({"event_id": event_id, "status": "done"})));
            *settled += 1;
        }
        for (function, invocation_type, payload) in self.invocations.lock().unwrap().iter() {
            assert_eq!(function, "inlet-development-actions");
            assert_eq!(invocation_type, "Event", "asynchronous invocation");
            assert_eq!(*payload, json!({"event_id": event_id}));
        }
    }
}

#[tokio::test]
async fn dispatch_lambda_invoke() {
    common::require_emulator();
    let sdk = aws_config::load_from_env().await;
    let clients = inlet_aws::provision::clients_from_env().await;
    let (events_table, directory_table) = (
        common::unique_name("events"),
        common::unique_name("directory"),
    );
    inlet_aws::provision::create_table(&clients.dynamodb, &events_table, true)
        .await
        .unwrap();
    inlet_aws::provision::create_table(&clients.dynamodb, &directory_table, false)
        .await
        .unwrap();
    let events = DynamoEventLog {
        client: clients.dynamodb.clone(),
        table: events_table,
    };
    let directory = Arc::new(DynamoDirectory {
        client: clients.dynamodb.clone(),
        table: directory_table,
    });
    let actions = Arc::new(ActionsFunction {
        executor: ActionExecutor {
            directory: directory.clone(),
            targets: Arc::new(LambdaTargets {
                client: aws_sdk_lambda::Client::new(&sdk),
            }),
            clock: Arc::new(SystemClock),
        },
        events: events.clone(),
    });
    let (url, invocations, finished) = common::lambda::endpoint(actions).await;
    let dispatcher = LambdaDispatcher {
        client: aws_sdk_lambda::Client::from_conf(
            aws_sdk_lambda::config::Builder::from(&sdk)
                .endpoint_url(&url)
                .build(),
        ),
        function: "inlet-development-actions".into(),
    };
    dispatch_contract(
        &events,
        &dispatcher,
        directory.as_ref(),
        &InvokedFunction {
            finished: Mutex::new(finished),
            invocations,
            settled: Mutex::new(0),
        },
    )
    .await;
}
