//! Exactly once at every crash point, on the memory, SQLite and DynamoDB (emulator)
//! stores.
//!
//! One delivery of an event with an idempotency key and two actions goes through the
//! ingest pipeline, then through the action executor (the outbox worker locally, the
//! stream-triggered actions function on AWS). A wrapper around the stores counts every
//! call the two make, and the suite enumerates them: for each call N it runs the
//! scenario again on fresh stores with a crash at call N, once *before* the call takes
//! effect and once *after* it took effect but before its caller saw the result. From
//! the crash on, every call fails (the process is dead) and the sender sees no answer.
//! Then the process restarts (SQLite: the file is opened again), the sender retries the
//! same delivery, and the executor runs until it is done (on AWS, Lambda delivers the
//! batch again). After each run:
//!
//! - exactly one event with the key is accepted, and every other one is its duplicate;
//! - every 2xx the sender saw names that accepted event;
//! - the retry after the restart is answered 202 or 200, never 409 or 5xx;
//! - each action is applied exactly once: the user exists, one workflow run exists,
//!   derived from the accepted event, and the action log says `succeeded`;
//! - nothing is left to hand over (outbox drained / no batch left to retry).

mod common;

use async_trait::async_trait;
use inlet::sqlite::SqliteStore;
use inlet::targets::HttpTargets;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::config::load_dir;
use inlet_core::directory::{
    ActionChanges, Applied, Directory, DirectoryError, Entity, RecipientRef, WorkflowRun,
};
use inlet_core::executor::ActionExecutor;
use inlet_core::memory::{MemoryStore, StaticVars};
use inlet_core::outbox::OutboxWorker;
use inlet_core::pipeline::{InboundRequest, Pipeline, PipelineSettings, Route};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::store::{
    ActionLogEntry, ActionStatus, ActionUpdate, CommitError, CommitResult, EventLog, EventPage,
    EventQuery, EventRecord, EventStatus, EventTypeStats, IdempotencyClaim, Outbox, OutboxItem,
    StoreError,
};
use serde_json::{Map, Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENV: &str = "development";
const KEY: &str = "delivery-0001";

const SOURCE: &str = r#"
key: shop
name: Shop
environments:
  development:
    event_type_path: body.type
    idempotency: { key_path: body.id }
    mappings:
      customer.created:
        - action: users_identify
          params: { id: data.user, name: data.name }
        - action: workflows_trigger
          params:
            key: { value: welcome }
            recipients: data.user
"#;

const BODY: &str = r#"{"type": "customer.created", "id": "delivery-0001", "data": {"user": "u-1", "name": "Ada"}}"#;

// ---- The crashing wrapper ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// The call never reaches the store.
    Before,
    /// The call took effect; its caller never learns.
    After,
}

/// Counts calls to the stores and crashes at one of them.
struct Crashing {
    events: Arc<dyn EventLog>,
    directory: Arc<dyn Directory>,
    outbox: Option<Arc<dyn Outbox>>,
    crash_at: Option<(usize, When)>,
    calls: AtomicUsize,
    crashed: AtomicBool,
    trace: Mutex<Vec<&'static str>>,
}

enum Step {
    Run,
    /// Run the call, then fail.
    RunThenCrash,
    Fail,
}

impl Crashing {
    fn new(
        events: Arc<dyn EventLog>,
        directory: Arc<dyn Directory>,
        outbox: Option<Arc<dyn Outbox>>,
        crash_at: Option<(usize, When)>,
    ) -> Self {
        Crashing {
            events,
            directory,
            outbox,
            crash_at,
            calls: AtomicUsize::new(0),
            crashed: AtomicBool::new(false),
            trace: Mutex::new(Vec::new()),
        }
    }

    fn step(&self, name: &'static str) -> Step {
        if self.crashed.load(Ordering::SeqCst) {
            return Step::Fail;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.trace.lock().unwrap().push(name);
        match self.crash_at {
            Some((at, when)) if at == n => {
                self.crashed.store(true, Ordering::SeqCst);
                match when {
                    When::Before => Step::Fail,
                    When::After => Step::RunThenCrash,
                }
            }
            _ => Step::Run,
        }
    }

    fn down() -> StoreError {
        StoreError::Unavailable("the process crashed".into())
    }

    /// Runs one store call through the crash point.
    async fn call<T, F>(&self, name: &'static str, call: F) -> Result<T, StoreError>
    where
        F: std::future::Future<Output = Result<T, StoreError>>,
    {
        match self.step(name) {
            Step::Run => call.await,
            Step::RunThenCrash => {
                let _ = call.await;
                Err(Self::down())
            }
            Step::Fail => Err(Self::down()),
        }
    }

    async fn directory_call<T, F>(&self, name: &'static str, call: F) -> Result<T, DirectoryError>
    where
        F: std::future::Future<Output = Result<T, DirectoryError>>,
    {
        let down = || DirectoryError::Unavailable("the process crashed".into());
        match self.step(name) {
            Step::Run => call.await,
            Step::RunThenCrash => {
                let _ = call.await;
                Err(down())
            }
            Step::Fail => Err(down()),
        }
    }

    fn outbox(&self) -> &dyn Outbox {
        self.outbox.as_deref().expect("this store has an outbox")
    }
}

#[async_trait]
impl EventLog for Crashing {
    async fn commit(&self, event: EventRecord, claim: Option<&IdempotencyClaim>) -> CommitResult {
        match self.step("commit") {
            Step::Run => self.events.commit(event, claim).await,
            Step::RunThenCrash => {
                let _ = self.events.commit(event.clone(), claim).await;
                Err(CommitError::new(Self::down(), event))
            }
            Step::Fail => Err(CommitError::new(Self::down(), event)),
        }
    }
    async fn get(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        self.call("get", self.events.get(id)).await
    }
    async fn event_types(&self, s: &str, e: &str) -> Result<Vec<EventTypeStats>, StoreError> {
        self.call("event_types", self.events.event_types(s, e))
            .await
    }
    async fn list(&self, q: &EventQuery) -> Result<EventPage, StoreError> {
        self.call("list", self.events.list(q)).await
    }
    async fn action_log(&self, id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        self.call("action_log", self.events.action_log(id)).await
    }
    async fn update_action(&self, id: &str, u: &ActionUpdate) -> Result<(), StoreError> {
        self.call("update_action", self.events.update_action(id, u))
            .await
    }
}

#[async_trait]
impl Outbox for Crashing {
    async fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.call("due", self.outbox().due(now_ms, limit)).await
    }
    async fn retry_at(&self, item: &OutboxItem, at_ms: i64, error: &str) -> Result<(), StoreError> {
        self.call("retry_at", self.outbox().retry_at(item, at_ms, error))
            .await
    }
    async fn finish(&self, id: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.call("finish", self.outbox().finish(id, error)).await
    }
}

#[async_trait]
impl Directory for Crashing {
    async fn apply(&self, action: ActionChanges<'_>) -> Result<Applied, DirectoryError> {
        self.directory_call("apply", self.directory.apply(action))
            .await
    }
    async fn known_users(&self, env: &str, ids: &[String]) -> Result<Vec<String>, DirectoryError> {
        self.directory_call("known_users", self.directory.known_users(env, ids))
            .await
    }
    async fn user(&self, env: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.directory_call("user", self.directory.user(env, id))
            .await
    }
    async fn object(&self, env: &str, c: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.directory_call("object", self.directory.object(env, c, id))
            .await
    }
    async fn tenant(&self, env: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.directory_call("tenant", self.directory.tenant(env, id))
            .await
    }
    async fn subscriptions(
        &self,
        env: &str,
        c: &str,
        id: &str,
    ) -> Result<Vec<(RecipientRef, Map<String, Value>)>, DirectoryError> {
        self.directory_call("subscriptions", self.directory.subscriptions(env, c, id))
            .await
    }
    async fn audience_members(
        &self,
        env: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        self.directory_call(
            "audience_members",
            self.directory.audience_members(env, key),
        )
        .await
    }
    async fn workflow_run(
        &self,
        env: &str,
        id: &str,
    ) -> Result<Option<WorkflowRun>, DirectoryError> {
        self.directory_call("workflow_run", self.directory.workflow_run(env, id))
            .await
    }
    async fn workflow_runs(
        &self,
        env: &str,
        key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, DirectoryError> {
        self.directory_call(
            "workflow_runs",
            self.directory.workflow_runs(env, key, limit),
        )
        .await
    }
}

// ---- The backends ----

/// One store kind: its stores survive restarts, its processes do not.
#[async_trait]
trait Backend: Send {
    /// The stores as a process sees them after a (re)start.
    async fn stores(
        &mut self,
    ) -> (
        Arc<dyn EventLog>,
        Arc<dyn Directory>,
        Option<Arc<dyn Outbox>>,
    );
    /// Runs the executor of the process whose stores are `stores` until it is done or
    /// crashed.
    async fn run_actions(&mut self, stores: &Arc<Crashing>);
    /// Whether anything is left for the executor.
    async fn left_over(&mut self) -> bool;
}

fn local_worker(stores: &Arc<Crashing>) -> OutboxWorker {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    OutboxWorker {
        events: stores.clone(),
        outbox: stores.clone(),
        executor: ActionExecutor {
            directory: stores.clone(),
            targets: Arc::new(HttpTargets::new(Default::default())),
            clock: clock.clone(),
        },
        clock,
        max_attempts: 3,
        backoff: Duration::ZERO,
    }
}

/// Drains what is due (retries of a failed run come due at once: no backoff).
async fn drain(worker: &OutboxWorker) {
    for _ in 0..10 {
        match worker.run_due().await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// The memory store (event log, idempotency records, outbox), with its directory in a
/// SQLite file: the memory store has no directory of its own.
struct Memory {
    store: Arc<MemoryStore>,
    _dir: tempfile::TempDir,
    directory: Arc<SqliteStore>,
}

impl Memory {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let directory = Arc::new(
            SqliteStore::open(&dir.path().join("directory.db"), Duration::from_secs(5)).unwrap(),
        );
        Memory {
            store: Arc::new(MemoryStore::new()),
            _dir: dir,
            directory,
        }
    }
}

#[async_trait]
impl Backend for Memory {
    async fn stores(
        &mut self,
    ) -> (
        Arc<dyn EventLog>,
        Arc<dyn Directory>,
        Option<Arc<dyn Outbox>>,
    ) {
        (
            self.store.clone(),
            self.directory.clone(),
            Some(self.store.clone()),
        )
    }
    async fn run_actions(&mut self, stores: &Arc<Crashing>) {
        drain(&local_worker(stores)).await;
    }
    async fn left_over(&mut self) -> bool {
        !self.store.due(i64::MAX, 10).await.unwrap().is_empty()
    }
}

struct Sqlite {
    dir: tempfile::TempDir,
    current: Option<Arc<SqliteStore>>,
}

impl Sqlite {
    fn open(&self) -> Arc<SqliteStore> {
        Arc::new(
            SqliteStore::open(&self.dir.path().join("inlet.db"), Duration::from_secs(5)).unwrap(),
        )
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn stores(
        &mut self,
    ) -> (
        Arc<dyn EventLog>,
        Arc<dyn Directory>,
        Option<Arc<dyn Outbox>>,
    ) {
        // A restart: the old connection goes, the file is opened again.
        self.current = None;
        let store = self.open();
        self.current = Some(store.clone());
        (store.clone(), store.clone(), Some(store))
    }
    async fn run_actions(&mut self, stores: &Arc<Crashing>) {
        drain(&local_worker(stores)).await;
    }
    async fn left_over(&mut self) -> bool {
        !self.open().due(i64::MAX, 10).await.unwrap().is_empty()
    }
}

struct Dynamo {
    stack: common::aws::Stack,
    /// A batch Lambda would deliver again (it failed, or was never answered).
    retry: Option<aws_lambda_events::event::dynamodb::Event>,
}

#[async_trait]
impl Backend for Dynamo {
    async fn stores(
        &mut self,
    ) -> (
        Arc<dyn EventLog>,
        Arc<dyn Directory>,
        Option<Arc<dyn Outbox>>,
    ) {
        (
            Arc::new(self.stack.events.clone()),
            self.stack.directory.clone(),
            None,
        )
    }
    async fn run_actions(&mut self, stores: &Arc<Crashing>) {
        let function = inlet_aws::actions::ActionsFunction {
            executor: ActionExecutor {
                directory: stores.clone(),
                targets: Arc::new(inlet_aws::targets::AwsTargets::new(
                    &inlet_aws::clients::AwsClients::new(&self.stack.sdk),
                    Default::default(),
                )),
                clock: Arc::new(SystemClock),
            },
            events: stores.clone(),
            backoff: Duration::ZERO,
            // A crash ends the invocation: Lambda runs the record again.
            store_patience: Duration::ZERO,
        };
        let mut batch = self.stack.stream.next_batch().await;
        if let Some(mut earlier) = self.retry.take() {
            earlier.records.append(&mut batch.records);
            batch = earlier;
        }
        if batch.records.is_empty() {
            return;
        }
        let response = function.handle(batch.clone()).await;
        if !response.batch_item_failures.is_empty() || stores.crashed.load(Ordering::SeqCst) {
            self.retry = Some(batch);
        }
    }
    async fn left_over(&mut self) -> bool {
        self.retry.is_some()
    }
}

// ---- The scenario ----

fn route(dir: &std::path::Path) -> (Route, Arc<ScriptEngine>) {
    std::fs::write(dir.join("shop.yaml"), SOURCE).unwrap();
    let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
    let catalog = load_dir(dir, &engine).unwrap();
    (Route::of(&catalog, "shop", ENV).unwrap(), engine)
}

fn delivery() -> InboundRequest {
    InboundRequest {
        method: "POST".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        query: String::new(),
        body: BODY.as_bytes().to_vec(),
    }
}

/// A process: the pipeline and the executor on the wrapped stores.
async fn process(backend: &mut dyn Backend, crash_at: Option<(usize, When)>) -> Arc<Crashing> {
    let (events, directory, outbox) = backend.stores().await;
    Arc::new(Crashing::new(events, directory, outbox, crash_at))
}

fn pipeline(stores: &Arc<Crashing>, engine: &Arc<ScriptEngine>) -> Pipeline {
    Pipeline {
        engine: engine.clone(),
        events: stores.clone(),
        vars: Arc::new(StaticVars::default()),
        clock: Arc::new(SystemClock),
        settings: PipelineSettings::default(),
        script_pool: None,
    }
}

/// One life until the crash (or the end), then a restart, the sender's retry and the
/// executor to completion. Returns the calls the first life made.
async fn scenario(
    backend: &mut dyn Backend,
    crash_at: Option<(usize, When)>,
) -> (Vec<&'static str>, Vec<(u16, Value)>) {
    let dir = tempfile::tempdir().unwrap();
    let (route, engine) = route(dir.path());
    let mut seen = Vec::new();

    let first = process(backend, crash_at).await;
    let reply = pipeline(&first, &engine)
        .ingest(Some(&route), delivery())
        .await
        .reply;
    if !first.crashed.load(Ordering::SeqCst) {
        // A crashed process answers nothing: the sender sees the connection drop.
        seen.push((reply.status, serde_json::from_str(&reply.body).unwrap()));
    }
    backend.run_actions(&first).await;
    let trace = first.trace.lock().unwrap().clone();

    let second = process(backend, None).await;
    let reply = pipeline(&second, &engine)
        .ingest(Some(&route), delivery())
        .await
        .reply;
    assert!(
        matches!(reply.status, 200 | 202),
        "the retry after a restart is answered {} {}",
        reply.status,
        reply.body
    );
    seen.push((reply.status, serde_json::from_str(&reply.body).unwrap()));
    backend.run_actions(&second).await;
    backend.run_actions(&second).await;
    (trace, seen)
}

/// The invariants after a scenario, read from the stores directly.
async fn check(
    backend: &mut dyn Backend,
    events: &dyn EventLog,
    directory: &dyn Directory,
    seen: &[(u16, Value)],
    label: &str,
) {
    let page = events
        .list(&EventQuery {
            source: Some("shop".into()),
            environment: Some(ENV.into()),
            limit: 100,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    let with_key: Vec<&EventRecord> = page
        .events
        .iter()
        .filter(|e| e.idempotency_key.as_deref() == Some(KEY))
        .collect();
    let accepted: Vec<&&EventRecord> = with_key
        .iter()
        .filter(|e| e.status == EventStatus::Accepted)
        .collect();
    assert_eq!(accepted.len(), 1, "{label}: accepted events {with_key:#?}");
    let original = accepted[0].id.clone();
    for e in &with_key {
        assert!(
            e.id == original
                || (e.status == EventStatus::Duplicate
                    && e.duplicate_of.as_deref() == Some(original.as_str())),
            "{label}: {e:#?}"
        );
    }
    for (status, body) in seen {
        assert!(
            *status == 202 || *status == 200,
            "{label}: the sender saw {status} {body}"
        );
        assert_eq!(body["event_id"], original.as_str(), "{label}: {body}");
    }
    let log = events.action_log(&original).await.unwrap();
    assert_eq!(
        log.iter().map(|a| a.status).collect::<Vec<_>>(),
        [ActionStatus::Succeeded, ActionStatus::Succeeded],
        "{label}: {log:#?}"
    );
    let user = directory.user(ENV, "u-1").await.unwrap();
    assert_eq!(
        user.map(|u| u.properties["name"].clone()),
        Some(json!("Ada")),
        "{label}"
    );
    let runs = directory
        .workflow_runs(ENV, Some("welcome"), 10)
        .await
        .unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [format!("wr_{original}_1")],
        "{label}: the trigger ran once, for the accepted event"
    );
    assert!(!backend.left_over().await, "{label}: work left over");
}

/// Runs the scenario without a crash to list the calls, then once per call and mode.
/// Returns how many crash points were enumerated.
async fn every_crash_point<B: Backend>(
    mut fresh: impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = B> + Send>>,
    stores_of: impl Fn(&mut B) -> (Arc<dyn EventLog>, Arc<dyn Directory>),
) -> usize {
    let mut backend = fresh().await;
    let (trace, seen) = scenario(&mut backend, None).await;
    let (events, directory) = stores_of(&mut backend);
    check(
        &mut backend,
        events.as_ref(),
        directory.as_ref(),
        &seen,
        "no crash",
    )
    .await;
    assert!(
        trace.contains(&"commit") && trace.contains(&"apply") && trace.contains(&"update_action"),
        "{trace:?}"
    );
    eprintln!("{} store calls: {trace:?}", trace.len());
    let mut points = 0;
    for (n, call) in trace.iter().enumerate() {
        for when in [When::Before, When::After] {
            let label = format!("crash {when:?} call {n} ({call})");
            let mut backend = fresh().await;
            let (_, seen) = scenario(&mut backend, Some((n, when))).await;
            let (events, directory) = stores_of(&mut backend);
            check(
                &mut backend,
                events.as_ref(),
                directory.as_ref(),
                &seen,
                &label,
            )
            .await;
            points += 1;
        }
    }
    eprintln!("{points} crash points enumerated");
    points
}

#[tokio::test]
async fn every_crash_point_memory() {
    let points = every_crash_point(
        || Box::pin(async { Memory::new() }),
        |b: &mut Memory| {
            (
                b.store.clone() as Arc<dyn EventLog>,
                b.directory.clone() as Arc<dyn Directory>,
            )
        },
    )
    .await;
    assert!(points >= 16, "{points}");
}

#[tokio::test]
async fn every_crash_point_sqlite() {
    let points = every_crash_point(
        || {
            Box::pin(async {
                Sqlite {
                    dir: tempfile::tempdir().unwrap(),
                    current: None,
                }
            })
        },
        |b: &mut Sqlite| {
            let store = b.open();
            (
                store.clone() as Arc<dyn EventLog>,
                store as Arc<dyn Directory>,
            )
        },
    )
    .await;
    assert!(points >= 16, "{points}");
}

#[tokio::test]
async fn every_crash_point_dynamodb() {
    let points = every_crash_point(
        || {
            Box::pin(async {
                Dynamo {
                    stack: common::aws::Stack::new("crash").await,
                    retry: None,
                }
            })
        },
        |b: &mut Dynamo| {
            (
                Arc::new(b.stack.events.clone()) as Arc<dyn EventLog>,
                b.stack.directory.clone() as Arc<dyn Directory>,
            )
        },
    )
    .await;
    assert!(points >= 12, "{points}");
}
