//! One contract each for the two parts whose implementations live outside the stores,
//! run against the local and the AWS implementation:
//! - `VarsProvider`: the vars file overlaid with `INLET_VAR_*` (`inlet dev`), and SSM
//!   Parameter Store in the emulator (Lambda);
//! - the hand-off from the commit to the action executor: the SQLite outbox drained by
//!   the `inlet dev` worker, and the events table's stream delivered to the actions
//!   function (read through the real Streams API, filtered by the template's pattern).

mod common;

use async_trait::async_trait;
use inlet::sqlite::SqliteStore;
use inlet::targets::HttpTargets;
use inlet::vars::{LocalVars, load_local_vars};
use inlet_aws::vars::SsmVars;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::directory::Directory;
use inlet_core::executor::ActionExecutor;
use inlet_core::outbox::OutboxWorker;
use inlet_core::store::{
    ActionStatus, Committed, EventLog, EventRecord, EventStatus, VerificationStatus,
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
    let provider = LocalVars::new(vars);
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

// ---- The hand-off to the action executor ----

/// The executor on the other side of the hand-off, as the contract drives it.
#[async_trait]
trait Consumer: Send + Sync {
    /// Delivers what the commits so far handed off, and waits until it has run.
    async fn deliver(&self);
    /// Delivers the last hand-off once more (a redelivered stream record, an outbox row
    /// run again after a crash before it was closed).
    async fn redeliver(&self);
}

/// Once the commit returns, the event's actions run, once; handing the same event over
/// again applies nothing twice. A committed event that is not queued (here, a
/// duplicate) is not handed over at all.
async fn handoff_contract(log: &dyn EventLog, directory: &dyn Directory, consumer: &dyn Consumer) {
    let event_id = common::unique_name("evt");
    let user_id = common::unique_name("user");
    assert_eq!(
        log.commit(accepted_event(&event_id, &user_id), None)
            .await
            .unwrap(),
        Committed::Stored {
            event_id: event_id.clone()
        }
    );
    consumer.deliver().await;

    let entries = log.action_log(&event_id).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].status, ActionStatus::Succeeded, "{entries:?}");
    assert_eq!(entries[0].attempts, 1);
    let user = directory.user(ENV, &user_id).await.unwrap().unwrap();
    assert_eq!(user.properties["name"], json!("Ada"));

    consumer.redeliver().await;
    let again = log.action_log(&event_id).await.unwrap();
    assert_eq!(again[0].attempts, 1, "{again:?}");
    assert_eq!(
        directory.user(ENV, &user_id).await.unwrap().unwrap(),
        user,
        "the user was written again"
    );

    // A rejected event with a plan is logged, not handed over.
    let mut rejected = accepted_event(&common::unique_name("evt"), &common::unique_name("user"));
    rejected.status = EventStatus::Rejected;
    let rejected_user = rejected.actions[0].payload["id"]
        .as_str()
        .unwrap()
        .to_string();
    log.commit(rejected, None).await.unwrap();
    consumer.deliver().await;
    assert_eq!(directory.user(ENV, &rejected_user).await.unwrap(), None);
}

/// An accepted event whose plan identifies one user.
fn accepted_event(event_id: &str, user_id: &str) -> EventRecord {
    let now = SystemClock.now_ms();
    EventRecord {
        id: event_id.into(),
        verification: VerificationStatus::EnforcedVerified,
        event_type: Some("user.created".into()),
        raw_body: "{}".into(),
        actions: vec![PlannedAction {
            index: 0,
            action: ActionKind::UsersIdentify,
            params: Arc::new(json!({"id": "body.user", "name": "body.name"})),
            payload: json!({"id": user_id, "name": "Ada"}),
            skipped: None,
        }],
        ..EventRecord::received("task-app", ENV, now, now + 86_400_000)
    }
}

/// The `inlet dev` worker, draining the outbox of a SQLite file.
struct LocalWorker {
    worker: OutboxWorker,
    last: Mutex<Option<inlet_core::store::OutboxItem>>,
}

#[async_trait]
impl Consumer for LocalWorker {
    async fn deliver(&self) {
        let due = self.worker.outbox.due(i64::MAX, 100).await.unwrap();
        for item in &due {
            self.worker.run_event(item).await.unwrap();
        }
        if let Some(last) = due.last() {
            *self.last.lock().await = Some(last.clone());
        }
        assert!(
            self.worker
                .outbox
                .due(i64::MAX, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }

    async fn redeliver(&self) {
        let last = self.last.lock().await.clone().expect("delivered before");
        self.worker.run_event(&last).await.unwrap();
    }
}

#[tokio::test]
async fn handoff_sqlite_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(&dir.path().join("inlet.db"), Duration::from_secs(5)).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let consumer = LocalWorker {
        worker: OutboxWorker {
            events: store.clone(),
            outbox: store.clone(),
            executor: ActionExecutor {
                directory: store.clone(),
                targets: Arc::new(HttpTargets::new(Default::default())),
                clock: clock.clone(),
            },
            clock,
            max_attempts: 3,
            backoff: Duration::from_secs(1),
        },
        last: Mutex::new(None),
    };
    handoff_contract(store.as_ref(), store.as_ref(), &consumer).await;
}

/// The events table's stream, delivered to the actions function.
struct StreamDelivery {
    stack: Mutex<common::aws::Stack>,
    last: Mutex<Option<aws_lambda_events::event::dynamodb::Event>>,
}

#[async_trait]
impl Consumer for StreamDelivery {
    async fn deliver(&self) {
        let batch = self.stack.lock().await.deliver().await;
        if !batch.records.is_empty() {
            *self.last.lock().await = Some(batch);
        }
    }

    async fn redeliver(&self) {
        let batch = self.last.lock().await.clone().expect("delivered before");
        let stack = self.stack.lock().await;
        let response = stack.actions.handle(batch).await;
        assert!(response.batch_item_failures.is_empty());
    }
}

#[tokio::test]
async fn handoff_dynamodb_stream() {
    let stack = common::aws::Stack::new("handoff").await;
    let (events, directory) = (stack.events.clone(), stack.directory.clone());
    let consumer = StreamDelivery {
        stack: Mutex::new(stack),
        last: Mutex::new(None),
    };
    handoff_contract(&events, directory.as_ref(), &consumer).await;
    let delivered = consumer.last.lock().await.clone().unwrap();
    assert_eq!(
        delivered.records.len(),
        1,
        "only the queued event's INSERT passes the template's filter: {delivered:?}"
    );
}

/// The sample batch in `events/stream/` (for `sam local invoke ActionsFunction`) has the
/// shape the actions function takes and passes the template's filter: with a committed
/// event's id in it, the function runs that event's actions.
#[tokio::test]
async fn the_sample_stream_batch_runs_a_committed_event() {
    let stack = common::aws::Stack::new("sample").await;
    let event_id = common::unique_name("evt");
    let user_id = common::unique_name("user");
    stack
        .events
        .commit(accepted_event(&event_id, &user_id), None)
        .await
        .unwrap();
    let sample =
        std::fs::read_to_string(common::repo_root().join("events/stream/event-committed.json"))
            .unwrap()
            .replace("REPLACE-WITH-A-COMMITTED-EVENT-ID", &event_id);
    let batch: Value = serde_json::from_str(&sample).unwrap();
    assert!(common::aws::passes_template_filter(&batch["Records"][0]));
    let response = stack
        .actions
        .handle(serde_json::from_value(batch).unwrap())
        .await;
    assert!(response.batch_item_failures.is_empty());
    let entries = stack.events.action_log(&event_id).await.unwrap();
    assert_eq!(entries[0].status, ActionStatus::Succeeded);
    assert!(stack.directory.user(ENV, &user_id).await.unwrap().is_some());
}
