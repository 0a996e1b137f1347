//! The fault matrix of the AWS paths: every AWS request a path makes × every fault the
//! network and AWS inflict (`common/faults.rs`: refused with a 5xx, throttled or for
//! good; applied and its answer lost; applied and answered 500; applied and the
//! process stopped; applied and the answer held past the client's timeout). After the
//! fault, the sender resends until it gets an answer that is not 5xx (a stopped
//! ingest function is a new execution environment for the resend), and Lambda
//! delivers the events table's stream records to the actions function until the batch
//! succeeds (again in a new environment after a stop). The functions run as deployed:
//! the real handlers, with the client settings of `inlet_aws::clients` (timeouts
//! shortened so that held answers cost less time), on the emulator.
//!
//! Each path first runs without a fault, which lists the requests it makes; then once
//! per (request, fault). After every run the promise is checked on what is stored:
//!
//! - exactly one accepted event per idempotency key, and every 2xx names it;
//! - the last answer is 2xx (401 for a rejected request), and one more delivery of the
//!   key is answered 200 duplicate of that event: no key is left blocked;
//! - one queued stream record per accepted event, none for anything else;
//! - its actions ran once: each directory change is there once (counted: runs of a
//!   workflow, members, subscriptions), the action log says `succeeded` — or, where a
//!   request was refused for good, that action says `failed` and none of it is applied;
//! - a held answer was cut by the client's attempt timeout (not waited out).
//!
//! Then two deliveries of one key, interleaved at every step of each other's commit:
//! the first paused before or after each of its requests, the second run to one of
//! its own pause points (or to its end), the first finished, then the second.
//!
//! The matrix's size and any cell that broke the promise are printed
//! (`cargo nextest run -p inlet-tests --test aws_faults --no-capture`).

mod common;

use aws_config::BehaviorVersion;
use aws_lambda_events::event::dynamodb::Event;
use common::aws::{SECRET, Stack, apigw_with, example_files, ingest_function, padded_task_event};
use common::faults::{Fault, Injector, PauseAt, Seen};
use inlet_aws::actions::ActionsFunction;
use inlet_aws::clients::{AwsClients, ClientSettings};
use inlet_aws::ingest::IngestFunction;
use inlet_core::directory::{Directory, RecipientRef};
use inlet_core::store::{ActionStatus, EventLog, EventRecord, EventStatus};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// The functions' settings with shorter timeouts: a held answer costs the attempt
/// timeout, and the matrix holds one in every row.
fn for_tests(settings: ClientSettings) -> ClientSettings {
    ClientSettings {
        attempt_timeout: Duration::from_millis(600),
        operation_timeout: Duration::from_millis(2_000),
        ..settings
    }
}

/// The clients of one process (execution environment) of `function` (its resource
/// name in the template), through `injector`.
async fn clients(
    injector: &Arc<Injector>,
    settings: ClientSettings,
    function: &'static str,
) -> AwsClients {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(injector.http_client_for(function));
    AwsClients::new(&for_tests(settings).apply(loader).load().await)
}

async fn ingest_process(stack: &Stack, injector: &Arc<Injector>) -> IngestFunction {
    IngestFunction::new(
        &clients(injector, ClientSettings::INGEST, "IngestFunction").await,
        &stack.names,
    )
}

async fn actions_process(stack: &Stack, injector: &Arc<Injector>) -> ActionsFunction {
    ActionsFunction {
        backoff: Duration::from_millis(10),
        store_patience: Duration::from_secs(3),
        ..ActionsFunction::new(
            &clients(injector, ClientSettings::ACTIONS, "ActionsFunction").await,
            &stack.names,
        )
    }
}

/// What the template's IAM policies do not allow of `seen` (each request with the
/// function that made it): the emulator checks no permission, so a request only the
/// rare path makes (a claim given up, say) would first fail in production.
fn not_allowed(stack: &Stack, seen: &[Seen]) -> Vec<String> {
    let template = common::expanded_template();
    let table_resource = |table: &str| {
        let names = &stack.names;
        [
            (&names.idempotency_table, "IdempotencyTable"),
            (&names.events_table, "EventsTable"),
            (&names.config_table, "ConfigTable"),
            (&names.directory_table, "DirectoryTable"),
        ]
        .into_iter()
        .find(|(name, _)| *name == table)
        .map(|(_, resource)| resource)
    };
    let mut problems = std::collections::BTreeSet::new();
    for request in seen {
        let statements: Vec<&Value> =
            template["Resources"][format!("{}Role", request.client)]["Properties"]["Policies"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| {
                    p["PolicyDocument"]["Statement"]
                        .as_array()
                        .into_iter()
                        .flatten()
                })
                .filter(|st| st["Effect"] == "Allow")
                .collect();
        for (action, target, index) in &request.iam {
            let wanted = match (table_resource(target), index) {
                (Some(table), None) => Some(json!({"Fn::GetAtt": [table, "Arn"]})),
                (Some(table), Some(index)) => {
                    Some(json!({"Fn::Sub": format!("${{{table}.Arn}}/index/{index}")}))
                }
                // SSM parameters and target functions: the action is what is checked.
                (None, _) => None,
            };
            let allowed = statements.iter().any(|st| {
                let actions = match &st["Action"] {
                    Value::Array(list) => list.clone(),
                    one => vec![one.clone()],
                };
                let resources = match &st["Resource"] {
                    Value::Array(list) => list.clone(),
                    one => vec![one.clone()],
                };
                actions.contains(&json!(action))
                    && wanted.as_ref().is_none_or(|w| resources.contains(w))
            });
            if !allowed {
                problems.insert(format!(
                    "{} is not allowed {action} on {target}{}",
                    request.client,
                    index
                        .as_deref()
                        .map(|i| format!(" index {i}"))
                        .unwrap_or_default()
                ));
            }
        }
    }
    problems.into_iter().collect()
}

/// What a sender got for one delivery.
#[derive(Debug, Clone)]
enum Answer {
    /// The function stopped before answering (API Gateway answers 502/504).
    None,
    Http(u16, Value),
}

impl Answer {
    fn status(&self) -> Option<u16> {
        match self {
            Answer::None => None,
            Answer::Http(status, _) => Some(*status),
        }
    }

    fn event_id(&self) -> Option<&str> {
        match self {
            Answer::Http(_, body) => body["event_id"].as_str(),
            Answer::None => None,
        }
    }
}

/// A webhook delivery: its body and headers.
#[derive(Clone)]
struct Delivery {
    body: String,
    headers: Vec<(String, String)>,
}

impl Delivery {
    fn signed(body: String) -> Self {
        Delivery {
            body,
            headers: vec![("x-webhook-secret".into(), SECRET.into())],
        }
    }
}

/// Sends `delivery` until it is answered with anything but a 5xx (or no answer), as a
/// sender does; a stopped function is replaced by a new execution environment.
async fn send_until_answered(
    stack: &Stack,
    token: &str,
    delivery: &Delivery,
    injector: &Arc<Injector>,
) -> Vec<Answer> {
    let mut answers = Vec::new();
    let mut function = ingest_process(stack, injector).await;
    for _ in 0..8 {
        let request = apigw_with(token, &delivery.body, &delivery.headers);
        match injector.run(function.handle(request)).await {
            None => {
                answers.push(Answer::None);
                injector.restart();
                function = ingest_process(stack, injector).await;
            }
            Some(response) => {
                let response = response.unwrap();
                let status = response.status().as_u16();
                let body = serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null);
                answers.push(Answer::Http(status, body));
                if status < 500 {
                    break;
                }
            }
        }
    }
    answers
}

/// Delivers the stream records written since the last delivery to the actions
/// function until it takes the whole batch, as Lambda does (a stopped invocation or a
/// reported record has the batch, from that record, delivered again). Returns the
/// queued event ids of the batch and how many deliveries it took.
async fn run_actions(stack: &mut Stack, injector: &Arc<Injector>) -> (Vec<String>, usize) {
    let batch = stack.stream.next_batch().await;
    let queued = queued_ids(&batch);
    let mut pending = batch;
    let mut deliveries = 0;
    while !pending.records.is_empty() && deliveries < 12 {
        deliveries += 1;
        let function = actions_process(stack, injector).await;
        match injector.run(function.handle(pending.clone())).await {
            None => injector.restart(),
            Some(response) => match response.batch_item_failures.first() {
                None => break,
                Some(failure) => {
                    let from = failure.item_identifier.clone();
                    let at = pending
                        .records
                        .iter()
                        .position(|r| r.change.sequence_number == from)
                        .expect("the failure names a record of the batch");
                    pending.records.drain(..at);
                }
            },
        }
    }
    (queued, deliveries)
}

fn queued_ids(batch: &Event) -> Vec<String> {
    batch
        .records
        .iter()
        .filter_map(|r| match r.change.keys.get("pk") {
            Some(serde_dynamo::AttributeValue::S(pk)) => {
                pk.strip_prefix("EVENT#").map(str::to_string)
            }
            _ => None,
        })
        .collect()
}

/// The stored events among `ids` (each once). Every accepted event of these tests has
/// actions, so it is queued: the ids the answers named and the stream records queued
/// name every accepted event there is (a listing would find the same, at the cost of
/// a scan of the whole table in the emulator).
async fn events_named<'a>(
    stack: &Stack,
    ids: impl IntoIterator<Item = &'a str>,
) -> Vec<EventRecord> {
    let mut seen = std::collections::BTreeSet::new();
    let mut events = Vec::new();
    for id in ids {
        if seen.insert(id.to_string())
            && let Some(event) = stack.events.get(id).await.unwrap()
        {
            events.push(event);
        }
    }
    events
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One cell of the matrix: request `at` gets `fault`.
#[derive(Debug, Clone, Copy)]
struct Cell {
    at: usize,
    fault: Fault,
}

/// What one run did.
struct Run {
    seen: Vec<Seen>,
    fired: Option<(usize, Fault, Seen)>,
    /// Answers held, and held answers the client cut.
    holds: (usize, usize),
    /// Problems with the promise; empty when it held.
    problems: Vec<String>,
}

/// A path through the functions that the matrix runs.
trait Path {
    fn name(&self) -> String;
    /// The stack it runs on.
    fn stack(&self) -> &Stack;
    /// Runs the path once, with `cell`'s fault if any.
    async fn run(&mut self, injector: &Arc<Injector>) -> Vec<String>;
}

/// Runs `path` clean, then once per (request, fault); panics listing every cell that
/// broke the promise.
async fn matrix(path: &mut impl Path) {
    let clean = run_cell(path, None).await;
    assert!(
        clean.problems.is_empty(),
        "{} without a fault: {:?}",
        path.name(),
        clean.problems
    );
    let requests = clean.seen;
    println!(
        "{}: {} requests without a fault: {}",
        path.name(),
        requests.len(),
        requests
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" → ")
    );
    let mut broken = Vec::new();
    let mut cells = 0;
    let started = std::time::Instant::now();
    let mut requests_made = 0;
    let mut every_request = requests.clone();
    let mut answers_held = 0;
    for at in 0..requests.len() {
        for fault in Fault::ALL {
            cells += 1;
            let run = run_cell(path, Some(Cell { at, fault })).await;
            let hit = run.fired.as_ref().map_or(
                "nothing (the path took another way)".to_string(),
                |(_, _, s)| s.to_string(),
            );
            let mut problems = run.problems;
            // (A caller that gave up before the answer came, such as the event-type
            // count's own short wait, leaves no answer to hold.)
            let (held, cut) = run.holds;
            answers_held += held;
            if held != cut {
                problems.push(format!(
                    "a held answer was not cut by the client's attempt timeout ({held} held, {cut} cut)"
                ));
            }
            if !problems.is_empty() {
                broken.push(format!(
                    "  request {at} ({hit}) × {fault:?}: {}",
                    problems.join("; ")
                ));
            }
            requests_made += run.seen.len();
            every_request.extend(run.seen);
        }
    }
    println!(
        "{}: {cells} cells ({} requests × {} faults) in {:.1} s ({requests_made} requests of the functions), {} broke the promise",
        path.name(),
        requests.len(),
        Fault::ALL.len(),
        started.elapsed().as_secs_f64(),
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "{}: {} of {cells} cells broke the promise:\n{}",
        path.name(),
        broken.len(),
        broken.join("\n")
    );
    assert!(
        answers_held > 0,
        "{}: no answer was held (the Hold cells test nothing)",
        path.name()
    );
    let refused = not_allowed(path.stack(), &every_request);
    assert!(
        refused.is_empty(),
        "{}: requests the template's IAM policies refuse:\n{}",
        path.name(),
        refused.join("\n")
    );
}

async fn run_cell(path: &mut impl Path, cell: Option<Cell>) -> Run {
    let injector = Injector::new();
    if let Some(cell) = cell {
        injector.arm(cell.at, cell.fault);
    }
    let problems = path.run(&injector).await;
    Run {
        seen: injector.seen(),
        fired: injector.fired(),
        holds: injector.holds(),
        problems,
    }
}

// ---- Deliveries through the ingest function ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A new event with an idempotency key, whose actions run.
    Accepted,
    /// A delivery of a key whose event is stored.
    Duplicate,
    /// A request that fails verification (401).
    Rejected,
    /// An event stored in `PART#` items (one transaction).
    Large,
}

struct Ingest {
    stack: Stack,
    token: String,
    kind: Kind,
    runs: usize,
}

impl Ingest {
    async fn new(kind: Kind) -> Ingest {
        let stack = Stack::new(&format!("faults-{kind:?}").to_lowercase()).await;
        // task-app, whose trigger also identifies the assignee and (for large events)
        // copies the notes into its data, so the plan holds a second copy of the body.
        let files = example_files()
            .into_iter()
            .map(|(name, text)| {
                if name != "task-app.yaml" {
                    return (name, text);
                }
                let text = text.replacen(
                    "            data.title: data.title\n",
                    "            data.title: data.title\n            data.notes: notes\n        - action: users_identify\n          params: { id: data.assigned_to, name: data.title }\n",
                    1,
                );
                (name, text)
            })
            .collect();
        let (_, tokens) = ingest_function(&stack, files, &["task-app"]).await;
        Ingest {
            stack,
            token: tokens[0].clone(),
            kind,
            runs: 0,
        }
    }

    fn delivery(&self, key: &str) -> Delivery {
        let body = match self.kind {
            Kind::Large => padded_task_event(key, 256 * 1024),
            _ => common::sample("task-assigned.json")
                .replace("evt_task_assigned_0001", key)
                .replace("user_456", &format!("user-{key}")),
        };
        let mut delivery = Delivery::signed(body);
        if self.kind == Kind::Rejected {
            delivery.headers = vec![("x-webhook-secret".into(), "wrong".into())];
        }
        delivery
    }
}

impl Path for Ingest {
    fn name(&self) -> String {
        format!("{:?}", self.kind).to_lowercase()
    }

    fn stack(&self) -> &Stack {
        &self.stack
    }

    async fn run(&mut self, injector: &Arc<Injector>) -> Vec<String> {
        self.runs += 1;
        let key = format!("k-{}-{}", self.name(), self.runs);
        let delivery = self.delivery(&key);
        let mut problems = Vec::new();
        let mut original = None;
        if self.kind == Kind::Duplicate {
            let clean = Injector::new();
            let answers = send_until_answered(&self.stack, &self.token, &delivery, &clean).await;
            assert_eq!(answers.last().and_then(Answer::status), Some(202));
            original = answers
                .last()
                .and_then(Answer::event_id)
                .map(str::to_string);
            run_actions(&mut self.stack, &clean).await;
        }
        let answers = send_until_answered(&self.stack, &self.token, &delivery, injector).await;
        let (queued, _) = run_actions(&mut self.stack, injector).await;
        // One more delivery of the same request, without faults.
        let again =
            send_until_answered(&self.stack, &self.token, &delivery, &Injector::new()).await;
        let (late, _) = run_actions(&mut self.stack, &Injector::new()).await;
        let events = events_named(
            &self.stack,
            answers
                .iter()
                .chain(&again)
                .filter_map(Answer::event_id)
                .chain(queued.iter().chain(&late).map(String::as_str))
                .chain(original.as_deref()),
        )
        .await;
        let accepted: Vec<&EventRecord> = events
            .iter()
            .filter(|e| e.status == EventStatus::Accepted)
            .collect();
        let last = answers.last().cloned().unwrap_or(Answer::None);

        if self.kind == Kind::Rejected {
            if !accepted.is_empty() {
                problems.push(format!("{} accepted events", accepted.len()));
            }
            if answers.iter().any(|a| a.status().is_some_and(|s| s < 300)) {
                problems.push(format!("a 2xx to a rejected request: {answers:?}"));
            }
            if last.status() != Some(401) {
                problems.push(format!("the last answer is not 401: {answers:?}"));
            }
            if !queued.is_empty() || !late.is_empty() {
                problems.push(format!("stream records queued: {queued:?} {late:?}"));
            }
            return problems;
        }

        if accepted.len() != 1 {
            problems.push(format!(
                "{} accepted events for one key ({:?}); answers {answers:?}",
                accepted.len(),
                accepted.iter().map(|e| &e.id).collect::<Vec<_>>()
            ));
            return problems;
        }
        let event = accepted[0];
        if let Some(original) = &original
            && original != &event.id
        {
            problems.push(format!(
                "the accepted event changed: {original} → {}",
                event.id
            ));
        }
        for answer in &answers {
            if let Answer::Http(status @ 200..=299, _) = answer
                && answer.event_id() != Some(event.id.as_str())
            {
                problems.push(format!(
                    "a {status} names {:?}, not the accepted {}",
                    answer.event_id(),
                    event.id
                ));
            }
        }
        if !last.status().is_some_and(|s| (200..300).contains(&s)) {
            problems.push(format!("the last answer is not 2xx: {answers:?}"));
        }
        match again.last() {
            Some(Answer::Http(200, body)) if body["event_id"] == event.id.as_str() => {}
            other => problems.push(format!(
                "the key is blocked or free again: one more delivery got {other:?}"
            )),
        }
        let expected_queued: Vec<String> = if original.is_some() {
            Vec::new()
        } else {
            vec![event.id.clone()]
        };
        if queued != expected_queued || !late.is_empty() {
            problems.push(format!(
                "queued stream records {queued:?} then {late:?}, expected {expected_queued:?}"
            ));
        }
        let log = self.stack.events.action_log(&event.id).await.unwrap();
        problems.extend(ran_once(&self.stack, injector, &log, event, &events).await);
        let env = &self.stack.names.environment;
        let assignee = format!("user-{key}");
        let identified = log
            .iter()
            .any(|a| a.action.name() == "users_identify" && a.status == ActionStatus::Succeeded);
        let user = self.stack.directory.user(env, &assignee).await.unwrap();
        if self.kind != Kind::Large && user.is_some() != identified {
            problems.push(format!(
                "user {assignee}: present {}, identify succeeded: {identified}",
                user.is_some()
            ));
        }
        if self.kind == Kind::Large {
            let stored = self.stack.events.get(&event.id).await.unwrap().unwrap();
            if stored.raw_body != delivery.body {
                problems.push("the large event does not read back whole".into());
            }
        }
        problems
    }
}

/// What broke "its actions ran once" for the accepted `event` (task-app's trigger and
/// identify): every action succeeded, or, where a request was refused for good, the
/// action that made it failed (once) and none of it is applied; the workflow ran once
/// for it and for none of the other `events` of the run.
async fn ran_once(
    stack: &Stack,
    injector: &Injector,
    log: &[inlet_core::store::ActionLogEntry],
    event: &EventRecord,
    events: &[EventRecord],
) -> Vec<String> {
    let mut problems = Vec::new();
    let refused_for_good = injector
        .fired()
        .is_some_and(|(_, fault, _)| fault == Fault::RefusePermanent);
    let failed = log
        .iter()
        .filter(|a| a.status == ActionStatus::Failed)
        .count();
    if log.len() != 2
        || log
            .iter()
            .any(|a| !matches!(a.status, ActionStatus::Succeeded | ActionStatus::Failed))
        || failed > usize::from(refused_for_good)
    {
        problems.push(format!(
            "action log: {:?}",
            log.iter()
                .map(|a| (a.status, a.error.clone()))
                .collect::<Vec<_>>()
        ));
    }
    let triggered = log
        .iter()
        .any(|a| a.action.name() == "workflows_trigger" && a.status == ActionStatus::Succeeded);
    let runs = stack
        .directory
        .workflow_runs(&stack.names.environment, Some("task-assigned"), 1000)
        .await
        .unwrap();
    let of_run: Vec<_> = runs
        .iter()
        .filter(|r| events.iter().any(|e| e.id == r.event_id))
        .collect();
    if of_run.len() != usize::from(triggered) || of_run.iter().any(|r| r.event_id != event.id) {
        problems.push(format!(
            "workflow runs: {:?} (trigger succeeded: {triggered})",
            of_run.iter().map(|r| &r.id).collect::<Vec<_>>()
        ));
    }
    problems
}

#[tokio::test]
async fn an_accepted_event_under_every_fault_of_every_request() {
    matrix(&mut Ingest::new(Kind::Accepted).await).await;
}

#[tokio::test]
async fn a_duplicate_under_every_fault_of_every_request() {
    matrix(&mut Ingest::new(Kind::Duplicate).await).await;
}

#[tokio::test]
async fn a_rejected_request_under_every_fault_of_every_request() {
    matrix(&mut Ingest::new(Kind::Rejected).await).await;
}

#[tokio::test]
async fn a_large_event_under_every_fault_of_every_request() {
    matrix(&mut Ingest::new(Kind::Large).await).await;
}

// ---- Every action kind in the actions function ----

/// One event whose plan holds every directory action kind, in pairs on ids of their
/// own (each removal has something to remove), so that what each action leaves can be
/// checked on its own: the thing is there when the first of its pair succeeded and the
/// second did not. (`lambda_invoke` is not here: the emulator runs no functions.)
const EVERY_ACTION: &str = r#"
key: every
name: Every action
environments:
  development:
    event_type_path: body.type
    idempotency: { key_path: body.id }
    mappings:
      go:
        - action: users_identify
          params: { id: body.user, name: { value: Ada } }
        - action: users_delete
          params: { id: body.user }
        - action: objects_set
          params: { collection: { value: projects }, id: body.object, name: { value: Launch } }
        - action: objects_delete
          params: { collection: { value: projects }, id: body.object }
        - action: tenants_set
          params: { id: body.tenant, name: { value: Acme } }
        - action: tenants_delete
          params: { id: body.tenant }
        - action: objects_subscribe
          params: { collection: { value: projects }, id: body.project, recipients: body.subscriber }
        - action: objects_unsubscribe
          params: { collection: { value: projects }, id: body.project, recipients: body.subscriber }
        - action: audiences_add_member
          params: { key: body.audience, members: body.member, create_if_missing: { value: true } }
        - action: audiences_remove_member
          params: { key: body.audience, members: body.member }
        - action: workflows_trigger
          params: { key: body.workflow, recipients: body.recipient, cancellation_key: body.cancel }
        - action: workflows_cancel
          params: { key: body.workflow, cancellation_key: body.cancel }
"#;

/// The ids of [`EVERY_ACTION`]'s event.
const EVERY_ACTION_IDS: [&str; 10] = [
    "user",
    "object",
    "tenant",
    "project",
    "subscriber",
    "audience",
    "member",
    "workflow",
    "recipient",
    "cancel",
];

struct EveryAction {
    stack: Stack,
    token: String,
    runs: usize,
}

impl EveryAction {
    async fn new() -> EveryAction {
        let stack = Stack::new("faults-actions").await;
        let (_, tokens) = ingest_function(
            &stack,
            vec![("every.yaml".into(), EVERY_ACTION.into())],
            &["every"],
        )
        .await;
        EveryAction {
            stack,
            token: tokens[0].clone(),
            runs: 0,
        }
    }

    /// What the actions left that they should not have, given which succeeded.
    async fn state(&self, body: &Value, succeeded: &HashMap<&str, bool>) -> Vec<String> {
        let env = &self.stack.names.environment;
        let d = &self.stack.directory;
        let id = |name: &str| body[name].as_str().unwrap().to_string();
        let ok = |action: &str| succeeded[action];
        let left = |set: &str, remove: &str| ok(set) && !ok(remove);
        let mut problems = Vec::new();
        expect(
            &mut problems,
            format!("user {} (identified, deleted)", id("user")),
            d.user(env, &id("user")).await.unwrap().is_some(),
            left("users_identify", "users_delete"),
        );
        expect(
            &mut problems,
            format!("object {} (set, deleted)", id("object")),
            d.object(env, "projects", &id("object"))
                .await
                .unwrap()
                .is_some(),
            left("objects_set", "objects_delete"),
        );
        expect(
            &mut problems,
            format!("tenant {} (set, deleted)", id("tenant")),
            d.tenant(env, &id("tenant")).await.unwrap().is_some(),
            left("tenants_set", "tenants_delete"),
        );
        let subscribers = d
            .subscriptions(env, "projects", &id("project"))
            .await
            .unwrap();
        let want = if left("objects_subscribe", "objects_unsubscribe") {
            1
        } else {
            0
        };
        if subscribers.len() != want
            || subscribers
                .iter()
                .any(|(r, _)| *r != RecipientRef::User(id("subscriber")))
        {
            problems.push(format!(
                "subscriptions of {} (subscribed, unsubscribed): {subscribers:?}, expected {want}",
                id("project")
            ));
        }
        let members = d
            .audience_members(env, &id("audience"))
            .await
            .unwrap()
            .unwrap_or_default();
        let want = if left("audiences_add_member", "audiences_remove_member") {
            vec![id("member")]
        } else {
            Vec::new()
        };
        if members != want {
            problems.push(format!(
                "members of {} (added, removed): {members:?}, expected {want:?}",
                id("audience")
            ));
        }
        let runs = d
            .workflow_runs(env, Some(&id("workflow")), 100)
            .await
            .unwrap();
        let statuses: Vec<&str> = runs.iter().map(|r| r.status.as_str()).collect();
        // An event's plan runs its cancellations before its triggers (the catalog's
        // order), so this cancellation finds nothing to cancel.
        let want: Vec<&str> = if ok("workflows_trigger") {
            vec!["triggered"]
        } else {
            Vec::new()
        };
        if statuses != want {
            problems.push(format!(
                "runs of {} (triggered, cancelled): {statuses:?}, expected {want:?}",
                id("workflow")
            ));
        }
        problems
    }
}

/// Notes a problem when `what` is `present` but should not be, or the other way round.
fn expect(problems: &mut Vec<String>, what: String, present: bool, want: bool) {
    if present != want {
        problems.push(format!("{what}: present {present}, expected {want}"));
    }
}

impl Path for EveryAction {
    fn name(&self) -> String {
        "every action".into()
    }

    fn stack(&self) -> &Stack {
        &self.stack
    }

    async fn run(&mut self, injector: &Arc<Injector>) -> Vec<String> {
        self.runs += 1;
        let n = format!("{}-{}", self.runs, now_ms());
        let mut body = json!({"type": "go", "id": format!("every-{n}")});
        for name in EVERY_ACTION_IDS {
            body[name] = json!(format!("{name}-{n}"));
        }
        // The event is stored without a fault; the actions function gets them all.
        let clean = Injector::new();
        let delivery = Delivery {
            body: body.to_string(),
            headers: Vec::new(),
        };
        let answers = send_until_answered(&self.stack, &self.token, &delivery, &clean).await;
        let event_id = answers
            .last()
            .and_then(Answer::event_id)
            .expect("the event is accepted")
            .to_string();
        let (queued, _) = run_actions(&mut self.stack, injector).await;
        let mut problems = Vec::new();
        if queued != [event_id.clone()] {
            problems.push(format!("queued {queued:?}"));
        }
        let log = self.stack.events.action_log(&event_id).await.unwrap();
        let fired_permanent = injector
            .fired()
            .is_some_and(|(_, fault, _)| fault == Fault::RefusePermanent);
        let mut succeeded = HashMap::new();
        for entry in &log {
            let ok = match entry.status {
                ActionStatus::Succeeded => true,
                // Only a request refused for good may fail an action, and then once.
                ActionStatus::Failed if fired_permanent => false,
                other => {
                    problems.push(format!(
                        "action {} ({}) is {other:?}: {:?}",
                        entry.index,
                        entry.action.name(),
                        entry.error
                    ));
                    false
                }
            };
            succeeded.insert(entry.action.name(), ok);
        }
        let failed = succeeded.values().filter(|ok| !**ok).count();
        if failed > 1 {
            problems.push(format!("{failed} actions failed"));
        }
        if log.len() != 12 {
            problems.push(format!("{} actions in the log", log.len()));
            return problems;
        }
        problems.extend(self.state(&body, &succeeded).await);
        if !problems.is_empty() {
            problems.push(format!(
                "results: {:?}",
                log.iter()
                    .map(|a| (a.action.name(), a.result.clone()))
                    .collect::<Vec<_>>()
            ));
        }
        problems
    }
}

#[tokio::test]
async fn every_action_kind_under_every_fault_of_every_request() {
    matrix(&mut EveryAction::new().await).await;
}

// ---- Two deliveries of one key, interleaved ----

/// Whether request `seen` is a step of the commit (the idempotency record and the
/// event's writes), where two deliveries of one key can meet.
fn commit_step(stack: &Stack, seen: &Seen) -> bool {
    seen.targets
        .iter()
        .any(|t| *t == stack.names.idempotency_table || *t == stack.names.events_table)
}

#[tokio::test]
async fn two_deliveries_of_one_key_interleaved_at_every_step_of_their_commits() {
    let mut path = Ingest::new(Kind::Accepted).await;
    // The requests of one delivery alone, and which of them are the commit's.
    let probe = Injector::new();
    let delivery = path.delivery("k-interleaved-probe");
    send_until_answered(&path.stack, &path.token, &delivery, &probe).await;
    run_actions(&mut path.stack, &Injector::new()).await;
    let steps: Vec<usize> = probe
        .seen()
        .iter()
        .enumerate()
        .filter(|(_, seen)| commit_step(&path.stack, seen))
        .map(|(i, _)| i)
        .collect();
    let points: Vec<(usize, PauseAt)> = steps
        .iter()
        .flat_map(|&i| [(i, PauseAt::Before), (i, PauseAt::After)])
        .collect();
    let mut broken = Vec::new();
    let mut runs = 0;
    for &first in &points {
        // The second delivery stops at each of its own points, or runs to its end.
        for second in points.iter().copied().map(Some).chain([None]) {
            runs += 1;
            let key = format!("k-interleaved-{runs}");
            let problems = interleave(&mut path, &key, first, second).await;
            if !problems.is_empty() {
                broken.push(format!(
                    "  first paused {first:?}, second {second:?}: {}",
                    problems.join("; ")
                ));
            }
        }
    }
    println!(
        "interleavings: {runs} runs ({} pause points of the commit, each against each and against a whole delivery), {} broke the promise",
        points.len(),
        broken.len()
    );
    assert!(
        broken.is_empty(),
        "{} of {runs} interleavings broke the promise:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// Delivery A pauses at `first`; B runs to `second` (or to its end); A finishes; B
/// finishes. Returns what broke the promise.
async fn interleave(
    path: &mut Ingest,
    key: &str,
    first: (usize, PauseAt),
    second: Option<(usize, PauseAt)>,
) -> Vec<String> {
    let delivery = path.delivery(key);
    let (a_faults, b_faults) = (Injector::new(), Injector::new());
    a_faults.pause(first.0, first.1);
    if let Some((at, when)) = second {
        b_faults.pause(at, when);
    }
    let answers: Vec<Answer> = {
        let stack = &path.stack;
        let a = send_until_answered(stack, &path.token, &delivery, &a_faults);
        tokio::pin!(a);
        let within = Duration::from_secs(10);
        let mut a_answers = tokio::select! {
            answers = &mut a => Some(answers),
            _ = a_faults.wait_paused(within) => None,
        };
        let b = send_until_answered(stack, &path.token, &delivery, &b_faults);
        tokio::pin!(b);
        let mut b_answers = tokio::select! {
            answers = &mut b => Some(answers),
            _ = b_faults.wait_paused(within) => None,
        };
        a_faults.resume();
        if a_answers.is_none() {
            a_answers = Some(a.await);
        }
        b_faults.resume();
        if b_answers.is_none() {
            b_answers = Some(b.await);
        }
        let answers: Vec<Answer> = a_answers
            .unwrap()
            .into_iter()
            .chain(b_answers.unwrap())
            .collect();
        answers
    };
    let (queued, _) = run_actions(&mut path.stack, &Injector::new()).await;
    let events = events_named(
        &path.stack,
        answers
            .iter()
            .filter_map(Answer::event_id)
            .chain(queued.iter().map(String::as_str)),
    )
    .await;
    let accepted: Vec<&EventRecord> = events
        .iter()
        .filter(|e| e.status == EventStatus::Accepted)
        .collect();
    let mut problems = Vec::new();
    if accepted.len() != 1 {
        problems.push(format!(
            "{} accepted events; answers {answers:?}",
            accepted.len()
        ));
        return problems;
    }
    let event = accepted[0];
    let twoxx: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status().is_some_and(|s| (200..300).contains(&s)))
        .collect();
    if twoxx.len() != 2
        || twoxx
            .iter()
            .any(|a| a.event_id() != Some(event.id.as_str()))
    {
        problems.push(format!("answers {answers:?}, accepted {}", event.id));
    }
    if queued != [event.id.clone()] {
        problems.push(format!("queued {queued:?}"));
    }
    let log = path.stack.events.action_log(&event.id).await.unwrap();
    if log.iter().any(|a| a.status != ActionStatus::Succeeded) {
        problems.push(format!("action log {log:?}"));
    }
    problems
}

// ---- Replay and token rotation through the admin function ----

/// POSTs to the admin function's router until it answers anything but a 5xx (a new
/// execution environment after a stop), as the CLI does (with the same
/// `Idempotency-Key` each time, where it sends one).
async fn admin_until_answered(
    stack: &Stack,
    injector: &Arc<Injector>,
    path: &str,
    headers: &[(&str, &str)],
) -> Vec<Answer> {
    use tower::ServiceExt;
    let mut answers = Vec::new();
    let admin = |clients: AwsClients| {
        inlet_admin::router(inlet_admin::on_aws::state(&stack.names, &clients))
    };
    let mut router = admin(clients(injector, ClientSettings::ADMIN, "AdminFunction").await);
    for _ in 0..8 {
        let mut request = axum::http::Request::post(path).header("host", "api.example.com");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(axum::body::Body::empty()).unwrap();
        match injector.run(router.clone().oneshot(request)).await {
            None => {
                answers.push(Answer::None);
                injector.restart();
                router = admin(clients(injector, ClientSettings::ADMIN, "AdminFunction").await);
            }
            Some(response) => {
                let response = response.unwrap();
                let status = response.status().as_u16();
                let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
                    .await
                    .unwrap();
                answers.push(Answer::Http(
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                ));
                if status < 500 {
                    break;
                }
            }
        }
    }
    answers
}

struct Replay {
    ingest: Ingest,
}

impl Path for Replay {
    fn name(&self) -> String {
        "replay".into()
    }

    fn stack(&self) -> &Stack {
        &self.ingest.stack
    }

    async fn run(&mut self, injector: &Arc<Injector>) -> Vec<String> {
        let path = &mut self.ingest;
        path.runs += 1;
        let key = format!("k-replay-{}", path.runs);
        // The original, stored and run without a fault.
        let clean = Injector::new();
        let answers =
            send_until_answered(&path.stack, &path.token, &path.delivery(&key), &clean).await;
        let original = answers
            .last()
            .and_then(Answer::event_id)
            .unwrap()
            .to_string();
        run_actions(&mut path.stack, &clean).await;

        let request_key = format!("replay-request-{}", path.runs);
        let route = format!("/admin/events/{original}/replay");
        let headers = [("idempotency-key", request_key.as_str())];
        let answers = admin_until_answered(&path.stack, injector, &route, &headers).await;
        let (queued, _) = run_actions(&mut path.stack, injector).await;
        let again = admin_until_answered(&path.stack, &Injector::new(), &route, &headers).await;
        let (late, _) = run_actions(&mut path.stack, &Injector::new()).await;
        let events = events_named(
            &path.stack,
            answers
                .iter()
                .chain(&again)
                .filter_map(Answer::event_id)
                .chain(queued.iter().chain(&late).map(String::as_str)),
        )
        .await;
        let replays: Vec<&EventRecord> = events
            .iter()
            .filter(|e| {
                e.status == EventStatus::Accepted && e.replay_of.as_deref() == Some(&original)
            })
            .collect();
        let mut problems = Vec::new();
        if replays.len() != 1 {
            problems.push(format!(
                "{} accepted replays for one request key; answers {answers:?}",
                replays.len()
            ));
            return problems;
        }
        let replay = replays[0];
        for answer in answers.iter().chain(&again) {
            if answer.status().is_some_and(|s| (200..300).contains(&s))
                && answer.event_id() != Some(replay.id.as_str())
            {
                problems.push(format!("{answer:?} does not name the replay {}", replay.id));
            }
        }
        if !answers
            .last()
            .and_then(Answer::status)
            .is_some_and(|s| (200..300).contains(&s))
        {
            problems.push(format!("the last answer is not 2xx: {answers:?}"));
        }
        match again.last() {
            Some(Answer::Http(202, body)) if body["repeated"] == true => {}
            other => problems.push(format!("the key asked again got {other:?}")),
        }
        if queued != [replay.id.clone()] || !late.is_empty() {
            problems.push(format!("queued {queued:?} then {late:?}"));
        }
        let log = path.stack.events.action_log(&replay.id).await.unwrap();
        problems.extend(ran_once(&path.stack, injector, &log, replay, &events).await);
        problems
    }
}

#[tokio::test]
async fn a_replay_under_every_fault_of_every_request() {
    matrix(&mut Replay {
        ingest: Ingest::new(Kind::Accepted).await,
    })
    .await;
}

struct Rotation {
    ingest: Ingest,
}

impl Rotation {
    /// The task-app tokens of the stack's environment.
    async fn tokens(&self) -> Vec<inlet_aws::config_table::StoredToken> {
        config_table(&self.ingest.stack)
            .tokens()
            .await
            .unwrap()
            .into_iter()
            .filter(|t| {
                t.source == "task-app" && t.environment == self.ingest.stack.names.environment
            })
            .collect()
    }
}

/// The stack's config table, read without faults and without a cache.
fn config_table(stack: &Stack) -> inlet_aws::config_table::ConfigTable {
    inlet_aws::config_table::ConfigTable::new(
        stack.dynamo.clone(),
        stack.names.config_table.clone(),
        Arc::new(inlet_core::script::ScriptEngine::new(
            inlet_core::script::ScriptLimits::default(),
        )),
        Arc::new(inlet_core::clock::SystemClock),
    )
}

impl Path for Rotation {
    fn name(&self) -> String {
        "token rotation".into()
    }

    fn stack(&self) -> &Stack {
        &self.ingest.stack
    }

    async fn run(&mut self, injector: &Arc<Injector>) -> Vec<String> {
        let stack = &self.ingest.stack;
        let env = stack.names.environment.clone();
        let now = now_ms();
        let working: Vec<String> = self
            .tokens()
            .await
            .into_iter()
            .filter(|t| t.retires_at_ms.is_none_or(|at| at > now))
            .map(|t| t.token)
            .collect();
        let route = format!("/admin/sources/task-app/tokens/rotate?env={env}&overlap=1h");
        let answers = admin_until_answered(stack, injector, &route, &[]).await;
        let mut problems = Vec::new();
        let Some(Answer::Http(200, body)) = answers.last() else {
            problems.push(format!("the last answer is not 200: {answers:?}"));
            return problems;
        };
        let Some(new) = body["url"].as_str().and_then(|u| u.rsplit('/').next()) else {
            problems.push(format!("no URL in {body}"));
            return problems;
        };
        let config = config_table(stack);
        for token in working.iter().map(String::as_str).chain([new]) {
            if config.route(token, &env).await.unwrap().is_none() {
                problems.push(format!("token {token} no longer routes"));
            }
        }
        let unretired: Vec<String> = self
            .tokens()
            .await
            .into_iter()
            .filter(|t| t.retires_at_ms.is_none())
            .map(|t| t.token)
            .collect();
        if unretired != [new.to_string()] {
            problems.push(format!(
                "tokens without a retirement: {unretired:?}, expected only the new {new}"
            ));
        }
        let later = now_ms() + 3_600_000 + 60_000;
        if self
            .tokens()
            .await
            .iter()
            .any(|t| t.token != new && t.retires_at_ms.is_none_or(|at| at > later))
        {
            problems.push("an old token retires after the overlap".into());
        }
        problems
    }
}

#[tokio::test]
async fn a_token_rotation_under_every_fault_of_every_request() {
    matrix(&mut Rotation {
        ingest: Ingest::new(Kind::Accepted).await,
    })
    .await;
}
