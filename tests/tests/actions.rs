//! Every action through the real executor, on both directories (SQLite, and DynamoDB in
//! the emulator): happy paths, merge semantics, cascades, exactly-once application, and
//! outside targets on a real local HTTP server. Each check is written once and run on
//! both stores (the directory contract).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Json;
use axum::routing::post;
use inlet::sqlite::SqliteStore;
use inlet::targets::HttpTargets;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::clock::ManualClock;
use inlet_core::config::{Target, Targets};
use inlet_core::directory::{
    ActionChanges, Applied, Directory, DirectoryError, Entity, RecipientRef, WorkflowRun,
};
use inlet_core::executor::{ActionExecutor, ActionOutcome, PlanRun};
use inlet_core::memory::MemoryStore;
use inlet_core::store::{ActionStatus, EventLog, EventRecord, StoreError};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ENV: &str = "development";

#[derive(Clone, Copy, Debug)]
enum Store {
    Sqlite,
    Dynamo,
}

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<dyn Directory>,
    executor: ActionExecutor,
    /// The DynamoDB table, for tests that reach past the directory.
    table: Option<String>,
}

async fn harness(kind: Store, targets: Targets) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut dynamo_table = None;
    let store: Arc<dyn Directory> = match kind {
        Store::Sqlite => {
            Arc::new(SqliteStore::open(&dir.path().join("a.db"), Duration::from_secs(5)).unwrap())
        }
        Store::Dynamo => {
            common::require_emulator();
            let table = common::unique_name("directory");
            let clients =
                inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI)
                    .await;
            inlet_aws::provision::create_table(
                &clients.dynamodb,
                &table,
                inlet_aws::provision::TableKind::Directory,
            )
            .await
            .unwrap();
            dynamo_table = Some(table.clone());
            Arc::new(inlet_aws::directory::DynamoDirectory {
                client: clients.dynamodb,
                table,
            })
        }
    };
    let executor = ActionExecutor {
        directory: store.clone(),
        targets: Arc::new(HttpTargets::new(targets)),
        clock: Arc::new(ManualClock::new(1_700_000_000_000)),
    };
    Harness {
        _dir: dir,
        store,
        executor,
        table: dynamo_table,
    }
}

/// Runs one contract check on both directories.
macro_rules! on_both_stores {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn sqlite() {
                super::$check(super::Store::Sqlite).await;
            }
            #[tokio::test]
            async fn dynamodb() {
                super::$check(super::Store::Dynamo).await;
            }
        }
    };
}

on_both_stores!(users_identify_merges_and_delete_cascades);
on_both_stores!(objects_and_tenants);
on_both_stores!(subscriptions_and_audiences);
on_both_stores!(trigger_records_runs_once_and_cancel_marks_them);
on_both_stores!(targets_receive_runs_and_function_calls);
on_both_stores!(ids_with_separators_spaces_and_non_ascii_never_collide);
on_both_stores!(a_trigger_to_1000_inline_recipients_applies_whole);
on_both_stores!(subscriptions_of_100_and_1000_audience_members_apply_whole);
on_both_stores!(deleting_a_user_with_100_links_removes_them_all);
on_both_stores!(a_redelivered_trigger_answers_its_result_and_leaves_a_cancelled_run_cancelled);
on_both_stores!(a_redelivered_upsert_applies_nothing_after_later_changes_or_a_delete);
on_both_stores!(
    a_directory_that_does_not_answer_fails_no_action_and_one_that_refuses_fails_it_once
);

fn event(id: &str) -> EventRecord {
    EventRecord {
        id: id.into(),
        event_type: Some("t".into()),
        raw_body: "{}".into(),
        ..EventRecord::received("s", ENV, 0, i64::MAX)
    }
}

impl Harness {
    async fn run(
        &self,
        event_id: &str,
        index: usize,
        action: ActionKind,
        payload: Value,
    ) -> ActionOutcome {
        let planned = PlannedAction {
            index,
            action,
            params: Default::default(),
            payload,
            skipped: None,
        };
        self.executor.execute(&event(event_id), &planned).await
    }

    async fn ok(&self, event_id: &str, index: usize, action: ActionKind, payload: Value) -> Value {
        match self.run(event_id, index, action, payload).await {
            ActionOutcome::Succeeded(result) => result,
            other => panic!("{action:?} failed: {other:?}"),
        }
    }

    async fn user(&self, id: &str) -> Option<Value> {
        self.store
            .user(ENV, id)
            .await
            .unwrap()
            .map(|u| Value::Object(u.properties))
    }
}

async fn users_identify_merges_and_delete_cascades(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    h.ok(
        "e1",
        0,
        ActionKind::UsersIdentify,
        json!({"id": "u1", "name": "Ada", "email": "a@x.io", "properties": {"plan": "free"}}),
    )
    .await;
    h.ok(
        "e2",
        0,
        ActionKind::UsersIdentify,
        json!({"id": "u1", "properties": {"plan": "pro"}}),
    )
    .await;
    assert_eq!(
        h.user("u1").await,
        Some(json!({"name": "Ada", "email": "a@x.io", "plan": "pro"})),
        "only the fields sent change"
    );

    h.ok("e3", 0, ActionKind::ObjectsSubscribe, json!({"collection": "projects", "id": "p1", "recipients": ["u1", "u2"], "properties": {"role": "watcher"}})).await;
    h.ok(
        "e4",
        0,
        ActionKind::AudiencesAddMember,
        json!({"key": "beta", "members": ["u1", "u2"]}),
    )
    .await;
    h.ok("e5", 0, ActionKind::UsersDelete, json!({"id": "u1"}))
        .await;
    assert_eq!(h.user("u1").await, None);
    let subs = h.store.subscriptions(ENV, "projects", "p1").await.unwrap();
    assert_eq!(
        subs.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
        vec![RecipientRef::User("u2".into())]
    );
    assert_eq!(
        subs[0].1,
        serde_json::from_value::<serde_json::Map<String, Value>>(json!({"role": "watcher"}))
            .unwrap()
    );
    assert_eq!(
        h.store.audience_members(ENV, "beta").await.unwrap(),
        Some(vec!["u2".to_string()])
    );
}

/// A redelivered action (its run crashed before the action log said `succeeded`) is
/// answered with its first result and changes nothing: not after a later change of
/// the same profile, not after the profile was deleted (it does not come back), and not
/// on a profile busier than the number of action keys DynamoDB keeps in a profile.
async fn a_redelivered_upsert_applies_nothing_after_later_changes_or_a_delete(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    let ada = json!({"id": "u1", "name": "Ada"});
    let first = h.ok("r1", 0, ActionKind::UsersIdentify, ada.clone()).await;
    h.ok(
        "r2",
        0,
        ActionKind::UsersIdentify,
        json!({"id": "u1", "name": "Grace"}),
    )
    .await;
    assert_eq!(h.ok("r1", 0, ActionKind::UsersIdentify, ada).await, first);
    assert_eq!(h.user("u1").await, Some(json!({"name": "Grace"})));

    h.ok("r3", 0, ActionKind::UsersDelete, json!({"id": "u1"}))
        .await;
    h.ok(
        "r2",
        0,
        ActionKind::UsersIdentify,
        json!({"id": "u1", "name": "Grace"}),
    )
    .await;
    assert_eq!(
        h.user("u1").await,
        None,
        "a redelivery must not recreate the user"
    );

    let object = json!({"collection": "projects", "id": "p1", "name": "Apollo"});
    h.ok("o1", 0, ActionKind::ObjectsSet, object.clone()).await;
    h.ok(
        "o2",
        0,
        ActionKind::ObjectsDelete,
        json!({"collection": "projects", "id": "p1"}),
    )
    .await;
    h.ok("o1", 0, ActionKind::ObjectsSet, object).await;
    assert!(
        h.store
            .object(ENV, "projects", "p1")
            .await
            .unwrap()
            .is_none()
    );

    let tenant = json!({"id": "acme", "name": "Acme"});
    h.ok("t1", 0, ActionKind::TenantsSet, tenant.clone()).await;
    h.ok("t2", 0, ActionKind::TenantsDelete, json!({"id": "acme"}))
        .await;
    h.ok("t1", 0, ActionKind::TenantsSet, tenant).await;
    assert!(h.store.tenant(ENV, "acme").await.unwrap().is_none());

    // More actions on one profile than it keeps keys for; redelivered newest first, so
    // any re-applied one would leave its older value behind.
    let count = inlet_aws::directory::RECENT_KEYS + 4;
    for i in 0..count {
        h.ok(
            &format!("b{i}"),
            0,
            ActionKind::UsersIdentify,
            json!({"id": "busy", "n": i}),
        )
        .await;
    }
    for i in (0..count).rev() {
        h.ok(
            &format!("b{i}"),
            0,
            ActionKind::UsersIdentify,
            json!({"id": "busy", "n": i}),
        )
        .await;
    }
    assert_eq!(h.user("busy").await, Some(json!({"n": count - 1})));
}

async fn objects_and_tenants(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    h.ok(
        "e1",
        0,
        ActionKind::ObjectsSet,
        json!({"collection": "projects", "id": "p1", "name": "Launch", "properties": {"stage": 1}}),
    )
    .await;
    h.ok(
        "e2",
        0,
        ActionKind::ObjectsSet,
        json!({"collection": "projects", "id": "p1", "properties": {"stage": 2}}),
    )
    .await;
    let object = h
        .store
        .object(ENV, "projects", "p1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Value::Object(object.properties),
        json!({"name": "Launch", "stage": 2})
    );
    h.ok("e3", 0, ActionKind::ObjectsSubscribe, json!({"collection": "teams", "id": "t1", "recipients": [{"id": "p1", "collection": "projects"}]})).await;
    h.ok(
        "e4",
        0,
        ActionKind::ObjectsDelete,
        json!({"collection": "projects", "id": "p1"}),
    )
    .await;
    assert!(
        h.store
            .object(ENV, "projects", "p1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.store
            .subscriptions(ENV, "teams", "t1")
            .await
            .unwrap()
            .is_empty(),
        "a deleted object leaves no subscriptions"
    );

    h.ok(
        "e5",
        0,
        ActionKind::TenantsSet,
        json!({"id": "acme", "name": "Acme", "settings": {"branding": {"primary": "#000"}}}),
    )
    .await;
    h.ok(
        "e6",
        0,
        ActionKind::TenantsSet,
        json!({"id": "acme", "properties": {"tier": "gold"}}),
    )
    .await;
    let tenant = h.store.tenant(ENV, "acme").await.unwrap().unwrap();
    assert_eq!(
        Value::Object(tenant.properties),
        json!({"name": "Acme", "settings": {"branding": {"primary": "#000"}}, "tier": "gold"})
    );
    h.ok("e7", 0, ActionKind::TenantsDelete, json!({"id": "acme"}))
        .await;
    assert!(h.store.tenant(ENV, "acme").await.unwrap().is_none());
}

async fn subscriptions_and_audiences(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    h.ok("e1", 0, ActionKind::ObjectsSubscribe, json!({"collection": "projects", "id": "p1", "recipients": [{"id": "u9", "email": "n@x.io"}, "u2"]})).await;
    assert_eq!(
        h.user("u9").await,
        Some(json!({"email": "n@x.io"})),
        "inline recipients are identified"
    );
    h.ok(
        "e2",
        0,
        ActionKind::ObjectsUnsubscribe,
        json!({"collection": "projects", "id": "p1", "recipients": ["u2"]}),
    )
    .await;
    let subs: Vec<_> = h
        .store
        .subscriptions(ENV, "projects", "p1")
        .await
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert_eq!(subs, vec![RecipientRef::User("u9".into())]);

    match h
        .run(
            "e3",
            0,
            ActionKind::AudiencesAddMember,
            json!({"key": "vip", "members": ["u1"], "create_if_missing": false}),
        )
        .await
    {
        ActionOutcome::Failed { error, retryable } => {
            assert!(!retryable);
            assert!(error.contains("audience `vip` does not exist"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        h.store.audience_members(ENV, "vip").await.unwrap(),
        None,
        "a rejected action changes nothing"
    );
    h.ok(
        "e4",
        0,
        ActionKind::AudiencesAddMember,
        json!({"key": "vip", "members": ["u1", "u2", "u3"]}),
    )
    .await;
    h.ok(
        "e5",
        0,
        ActionKind::AudiencesRemoveMember,
        json!({"key": "vip", "members": ["u2"]}),
    )
    .await;
    assert_eq!(
        h.store.audience_members(ENV, "vip").await.unwrap(),
        Some(vec!["u1".to_string(), "u3".to_string()])
    );
}

async fn trigger_records_runs_once_and_cancel_marks_them(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    h.ok("e0", 0, ActionKind::UsersIdentify, json!({"id": "known"}))
        .await;
    let trigger = json!({"key": "welcome", "recipients": ["known", "stranger", {"id": "inline", "name": "In"}],
                         "actor": {"id": "boss", "name": "B"}, "tenant": {"id": "acme", "name": "Acme"},
                         "data": {"x": 1}, "cancellation_key": "c1"});
    let result = h
        .ok("e1", 2, ActionKind::WorkflowsTrigger, trigger.clone())
        .await;
    assert_eq!(result["workflow_run_id"], "wr_e1_2");
    assert_eq!(
        result["unknown_recipients"],
        json!(["stranger"]),
        "bare ids never identified are reported"
    );
    let run = h.store.workflow_run(ENV, "wr_e1_2").await.unwrap().unwrap();
    assert_eq!(
        run.recipients,
        vec![
            RecipientRef::User("known".into()),
            RecipientRef::User("stranger".into()),
            RecipientRef::User("inline".into())
        ]
    );
    assert_eq!(run.actor, Some(RecipientRef::User("boss".into())));
    assert_eq!(run.tenant.as_deref(), Some("acme"));
    assert_eq!(Value::Object(run.data.clone()), json!({"x": 1}));
    assert_eq!(h.user("inline").await, Some(json!({"name": "In"})));
    assert_eq!(h.user("boss").await, Some(json!({"name": "B"})));
    assert!(h.store.tenant(ENV, "acme").await.unwrap().is_some());

    // The same action again (a re-run after a crash) applies nothing new.
    let again = h.ok("e1", 2, ActionKind::WorkflowsTrigger, trigger).await;
    assert_eq!(again, result);
    assert_eq!(
        h.store
            .workflow_runs(ENV, Some("welcome"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    h.ok(
        "e2",
        0,
        ActionKind::WorkflowsTrigger,
        json!({"key": "welcome", "recipients": ["other"], "cancellation_key": "c2"}),
    )
    .await;
    h.ok(
        "e3",
        0,
        ActionKind::WorkflowsCancel,
        json!({"key": "welcome", "cancellation_key": "c1"}),
    )
    .await;
    let statuses: Vec<(String, String)> = h
        .store
        .workflow_runs(ENV, Some("welcome"), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    assert!(
        statuses.contains(&("wr_e1_2".into(), "cancelled".into())),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&("wr_e2_0".into(), "triggered".into())),
        "{statuses:?}"
    );
}

/// A local HTTP target that records what it receives and answers with `status`.
async fn target(status: u16) -> (String, Arc<Mutex<Vec<Value>>>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |Json(body): Json<Value>| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(body);
                (
                    axum::http::StatusCode::from_u16(status).unwrap(),
                    Json(json!({"ok": status < 300})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn targets_receive_runs_and_function_calls(kind: Store) {
    let (ok_url, ok_seen) = target(200).await;
    let (bad_url, _) = target(503).await;
    let mut targets = Targets::default();
    targets
        .workflows
        .insert("welcome".into(), Target::Url(ok_url.clone()));
    targets
        .workflows
        .insert("flaky".into(), Target::Url(bad_url));
    targets
        .functions
        .insert("enrich".into(), Target::Url(ok_url));
    let h = harness(kind, targets).await;

    let result = h
        .ok(
            "e1",
            0,
            ActionKind::WorkflowsTrigger,
            json!({"key": "welcome", "recipients": ["u1"]}),
        )
        .await;
    assert_eq!(
        result["delivery"],
        json!({"status": 200, "body": {"ok": true}})
    );
    assert_eq!(ok_seen.lock().unwrap()[0]["id"], "wr_e1_0");

    match h
        .run(
            "e2",
            0,
            ActionKind::WorkflowsTrigger,
            json!({"key": "flaky", "recipients": ["u1"]}),
        )
        .await
    {
        ActionOutcome::Failed { error, retryable } => {
            assert!(retryable && error.contains("503"), "{error}")
        }
        other => panic!("{other:?}"),
    }

    let result = h
        .ok(
            "e3",
            0,
            ActionKind::LambdaInvoke,
            json!({"function": "enrich", "payload": {"order": 7}}),
        )
        .await;
    assert_eq!(result["response"]["status"], 200);
    assert_eq!(ok_seen.lock().unwrap()[1], json!({"order": 7}));
    match h
        .run(
            "e4",
            0,
            ActionKind::LambdaInvoke,
            json!({"function": "missing"}),
        )
        .await
    {
        ActionOutcome::Failed { error, retryable } => {
            assert!(!retryable);
            assert!(
                error.contains("no target for function `missing`"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Ids are any strings: `#` (DynamoDB's key separator), `%` (its escape), `/`, spaces
/// and non-ASCII round-trip, and ids that would collide if joined naively stay apart,
/// through cascading deletes too.
async fn ids_with_separators_spaces_and_non_ascii_never_collide(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    let users = ["a#b", "a", "b", "100%", "%23", "x y/z", "ünïcødé 用户"];
    for (i, id) in users.iter().enumerate() {
        h.ok(
            &format!("u{i}"),
            0,
            ActionKind::UsersIdentify,
            json!({"id": id, "name": format!("user {i}")}),
        )
        .await;
    }
    for (i, id) in users.iter().enumerate() {
        assert_eq!(
            h.user(id).await,
            Some(json!({"name": format!("user {i}")})),
            "{id}"
        );
    }
    // Objects whose (collection, id) would join to the same `c#d#e`.
    h.ok(
        "o1",
        0,
        ActionKind::ObjectsSubscribe,
        json!({"collection": "c#d", "id": "e", "recipients": ["a#b"]}),
    )
    .await;
    h.ok(
        "o2",
        0,
        ActionKind::ObjectsSubscribe,
        json!({"collection": "c", "id": "d#e", "recipients": ["a"]}),
    )
    .await;
    h.ok(
        "o3",
        0,
        ActionKind::AudiencesAddMember,
        json!({"key": "k#1", "members": ["a#b", "b"], "tenant": "t#x"}),
    )
    .await;
    h.ok(
        "o4",
        0,
        ActionKind::AudiencesAddMember,
        json!({"key": "k", "members": ["a"], "tenant": "1#t"}),
    )
    .await;
    let subscribers = |collection: &'static str, id: &'static str| {
        let store = h.store.clone();
        async move {
            store
                .subscriptions(ENV, collection, id)
                .await
                .unwrap()
                .into_iter()
                .map(|(r, _)| r)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        subscribers("c#d", "e").await,
        [RecipientRef::User("a#b".into())]
    );
    assert_eq!(
        subscribers("c", "d#e").await,
        [RecipientRef::User("a".into())]
    );

    // Deleting `a` leaves `a#b` and its links alone, and the other way round.
    h.ok("d1", 0, ActionKind::UsersDelete, json!({"id": "a"}))
        .await;
    assert_eq!(h.user("a").await, None);
    assert!(h.user("a#b").await.is_some());
    assert!(subscribers("c", "d#e").await.is_empty());
    assert_eq!(
        subscribers("c#d", "e").await,
        [RecipientRef::User("a#b".into())]
    );
    assert_eq!(
        h.store.audience_members(ENV, "k").await.unwrap(),
        Some(vec![])
    );
    assert_eq!(
        h.store.audience_members(ENV, "k#1").await.unwrap(),
        Some(vec!["a#b".to_string(), "b".to_string()])
    );
    h.ok(
        "d2",
        0,
        ActionKind::ObjectsDelete,
        json!({"collection": "c#d", "id": "e"}),
    )
    .await;
    assert!(subscribers("c#d", "e").await.is_empty());
    h.ok("d3", 0, ActionKind::UsersDelete, json!({"id": "a#b"}))
        .await;
    assert_eq!(
        h.store.audience_members(ENV, "k#1").await.unwrap(),
        Some(vec!["b".to_string()])
    );
    assert_eq!(h.user("b").await, Some(json!({"name": "user 2"})));

    // Workflow keys and runs with separators.
    h.ok(
        "w1",
        0,
        ActionKind::WorkflowsTrigger,
        json!({"key": "wf#1", "recipients": ["x y/z"], "cancellation_key": "c#1"}),
    )
    .await;
    h.ok(
        "w2",
        0,
        ActionKind::WorkflowsTrigger,
        json!({"key": "wf", "recipients": ["b"], "cancellation_key": "c#1"}),
    )
    .await;
    h.ok(
        "w3",
        0,
        ActionKind::WorkflowsCancel,
        json!({"key": "wf#1", "cancellation_key": "c#1"}),
    )
    .await;
    let runs = h.store.workflow_runs(ENV, Some("wf#1"), 10).await.unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.id.as_str(), r.status.as_str()))
            .collect::<Vec<_>>(),
        [("wr_w1_0", "cancelled")]
    );
    assert_eq!(
        h.store
            .workflow_run(ENV, "wr_w2_0")
            .await
            .unwrap()
            .unwrap()
            .status,
        "triggered"
    );
}

/// Actions larger than one DynamoDB transaction (100 items) apply whole, once.
async fn a_trigger_to_1000_inline_recipients_applies_whole(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    let people: Vec<Value> = (0..1000)
        .map(|i| json!({"id": format!("p{i:04}"), "name": format!("Person {i}")}))
        .collect();
    let result = h
        .ok(
            "big",
            0,
            ActionKind::WorkflowsTrigger,
            json!({"key": "welcome", "recipients": people}),
        )
        .await;
    assert_eq!(result["recipients"], 1000);
    assert_eq!(h.user("p0999").await, Some(json!({"name": "Person 999"})));
    assert_eq!(h.user("p0000").await, Some(json!({"name": "Person 0"})));
    let run = h
        .store
        .workflow_run(ENV, "wr_big_0")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.recipients.len(), 1000);
    // The same action again applies nothing and answers what it answered.
    let again = json!({"key": "welcome", "recipients": [{"id": "p0000", "name": "Changed"}]});
    assert_eq!(
        h.ok("big", 0, ActionKind::WorkflowsTrigger, again).await,
        result
    );
    assert_eq!(h.user("p0000").await, Some(json!({"name": "Person 0"})));
}

async fn subscriptions_of_100_and_1000_audience_members_apply_whole(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    let hundred: Vec<String> = (0..100).map(|i| format!("p{i:04}")).collect();
    let subscribe = json!({"collection": "teams", "id": "t1", "recipients": hundred});
    h.ok("sub", 0, ActionKind::ObjectsSubscribe, subscribe)
        .await;
    assert_eq!(
        h.store
            .subscriptions(ENV, "teams", "t1")
            .await
            .unwrap()
            .len(),
        100
    );
    let thousand: Vec<String> = (0..1000).map(|i| format!("p{i:04}")).collect();
    let add = json!({"key": "everyone", "members": thousand});
    h.ok("aud", 0, ActionKind::AudiencesAddMember, add).await;
    assert_eq!(
        h.store
            .audience_members(ENV, "everyone")
            .await
            .unwrap()
            .unwrap()
            .len(),
        1000
    );
}

async fn deleting_a_user_with_100_links_removes_them_all(kind: Store) {
    let h = harness(kind, Targets::default()).await;
    for i in 0..50 {
        let room =
            json!({"collection": "rooms", "id": format!("r{i}"), "recipients": ["p0", "p1"]});
        h.ok(&format!("s{i}"), 0, ActionKind::ObjectsSubscribe, room)
            .await;
        let audience = json!({"key": format!("a{i}"), "members": ["p0"]});
        h.ok(
            &format!("a{i}"),
            0,
            ActionKind::AudiencesAddMember,
            audience,
        )
        .await;
    }
    h.ok("gone", 0, ActionKind::UsersDelete, json!({"id": "p0"}))
        .await;
    assert_eq!(h.user("p0").await, None);
    for i in [0, 25, 49] {
        let subscribers: Vec<RecipientRef> = h
            .store
            .subscriptions(ENV, "rooms", &format!("r{i}"))
            .await
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(subscribers, [RecipientRef::User("p1".into())]);
        assert_eq!(
            h.store
                .audience_members(ENV, &format!("a{i}"))
                .await
                .unwrap(),
            Some(vec![])
        );
    }
}

/// A trigger by recipient ids (on DynamoDB, two conditional puts and no marker) applied
/// again after its run was cancelled: the same result, one run, still cancelled.
async fn a_redelivered_trigger_answers_its_result_and_leaves_a_cancelled_run_cancelled(
    kind: Store,
) {
    let h = harness(kind, Targets::default()).await;
    let trigger = json!({"key": "digest", "recipients": ["a", "b"], "cancellation_key": "k"});
    let result = h
        .ok("e5", 1, ActionKind::WorkflowsTrigger, trigger.clone())
        .await;
    assert_eq!(result["workflow_run_id"], "wr_e5_1");
    assert_eq!(result["unknown_recipients"], json!(["a", "b"]));
    h.ok(
        "e6",
        0,
        ActionKind::WorkflowsCancel,
        json!({"key": "digest", "cancellation_key": "k"}),
    )
    .await;
    let again = h.ok("e5", 1, ActionKind::WorkflowsTrigger, trigger).await;
    assert_eq!(again, result, "the stored result");
    let runs = h
        .store
        .workflow_runs(ENV, Some("digest"), 10)
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "cancelled", "a redelivery changes nothing");
}

/// On DynamoDB a trigger's run is two puts; a crash between them leaves the pointer by
/// id without the run. The redelivery writes the run and answers the stored result.
#[tokio::test]
async fn dynamodb_completes_a_trigger_that_stopped_between_its_two_puts() {
    let h = harness(Store::Dynamo, Targets::default()).await;
    let trigger = json!({"key": "digest", "recipients": ["a"], "data": {"n": 1}});
    let result = h
        .ok("e7", 0, ActionKind::WorkflowsTrigger, trigger.clone())
        .await;
    let run = h.store.workflow_run(ENV, "wr_e7_0").await.unwrap().unwrap();
    // The crash: the run item is not there, its pointer is.
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    let table = h.table.clone().unwrap();
    clients
        .dynamodb
        .delete_item()
        .table_name(&table)
        .key(
            "pk",
            AttributeValue::S(inlet_aws::shard::sharded(
                &format!("{ENV}#WORKFLOW#digest"),
                "wr_e7_0",
            )),
        )
        .key("sk", AttributeValue::S("RUN#wr_e7_0".into()))
        .send()
        .await
        .unwrap();
    assert!(
        h.store
            .workflow_run(ENV, "wr_e7_0")
            .await
            .unwrap()
            .is_none()
    );
    let again = h.ok("e7", 0, ActionKind::WorkflowsTrigger, trigger).await;
    assert_eq!(again, result);
    let restored = h.store.workflow_run(ENV, "wr_e7_0").await.unwrap().unwrap();
    assert_eq!(restored.recipients, run.recipients);
    assert_eq!(restored.data, run.data);
    assert_eq!(
        h.store
            .workflow_runs(ENV, Some("digest"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// The store's directory, whose next `apply` calls fail with a chosen error.
struct FailingApply {
    inner: Arc<dyn Directory>,
    next_failures: Mutex<Vec<DirectoryError>>,
    applies: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl Directory for FailingApply {
    async fn apply(&self, action: ActionChanges<'_>) -> Result<Applied, DirectoryError> {
        self.applies
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if let Some(error) = self.next_failures.lock().unwrap().pop() {
            return Err(error);
        }
        self.inner.apply(action).await
    }
    async fn known_users(&self, e: &str, ids: &[String]) -> Result<Vec<String>, DirectoryError> {
        self.inner.known_users(e, ids).await
    }
    async fn user(&self, e: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.inner.user(e, id).await
    }
    async fn object(&self, e: &str, c: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.inner.object(e, c, id).await
    }
    async fn tenant(&self, e: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.inner.tenant(e, id).await
    }
    async fn subscriptions(
        &self,
        e: &str,
        c: &str,
        id: &str,
    ) -> Result<Vec<(RecipientRef, serde_json::Map<String, Value>)>, DirectoryError> {
        self.inner.subscriptions(e, c, id).await
    }
    async fn audience_members(
        &self,
        e: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        self.inner.audience_members(e, key).await
    }
    async fn workflow_run(&self, e: &str, id: &str) -> Result<Option<WorkflowRun>, DirectoryError> {
        self.inner.workflow_run(e, id).await
    }
    async fn workflow_runs(
        &self,
        e: &str,
        key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, DirectoryError> {
        self.inner.workflow_runs(e, key, limit).await
    }
}

/// Inlet's own store not answering is not the action's failure: the action stays
/// `planned` with no attempt counted and the run stops with a store error (the worker
/// backs off, Lambda retries the record), then applies once when the store answers. A
/// store that refuses the change for good fails the action at its first attempt, so
/// one bad action cannot hold the events behind it.
async fn a_directory_that_does_not_answer_fails_no_action_and_one_that_refuses_fails_it_once(
    kind: Store,
) {
    let h = harness(kind, Targets::default()).await;
    let directory = Arc::new(FailingApply {
        inner: h.store.clone(),
        next_failures: Mutex::new(vec![DirectoryError::Unavailable("throttled".into())]),
        applies: Default::default(),
    });
    let executor = ActionExecutor {
        directory: directory.clone(),
        targets: h.executor.targets.clone(),
        clock: h.executor.clock.clone(),
    };
    let events = MemoryStore::new();
    let identify = |event_id: &str, user: &str| EventRecord {
        actions: vec![PlannedAction {
            index: 0,
            action: ActionKind::UsersIdentify,
            params: Default::default(),
            payload: json!({"id": user, "name": "Ada"}),
            skipped: None,
        }],
        ..event(event_id)
    };
    let first = identify("e-throttled", "u-throttled");
    events.commit(first.clone(), None).await.unwrap();

    let stopped = executor.run_plan(&events, &first, 3).await;
    assert!(
        matches!(&stopped, Err(StoreError::Unavailable(m)) if m.contains("throttled")),
        "{stopped:?}"
    );
    let log = events.action_log("e-throttled").await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts, log[0].error.clone()),
        (ActionStatus::Planned, 0, None)
    );
    assert_eq!(h.user("u-throttled").await, None);

    // The store answers: the next run applies it, once.
    let finished = executor.run_plan(&events, &first, 3).await.unwrap();
    assert_eq!(finished, PlanRun::Finished { failed: None });
    let log = events.action_log("e-throttled").await.unwrap();
    assert_eq!(
        (log[0].status, log[0].attempts),
        (ActionStatus::Succeeded, 1)
    );
    assert_eq!(h.user("u-throttled").await.unwrap()["name"], "Ada");

    // Refused for good: failed at the first attempt, not retried.
    directory
        .next_failures
        .lock()
        .unwrap()
        .push(DirectoryError::Failed(
            "item size has exceeded the maximum".into(),
        ));
    let applies_before = directory.applies.load(std::sync::atomic::Ordering::SeqCst);
    let refused = identify("e-refused", "u-refused");
    events.commit(refused.clone(), None).await.unwrap();
    let finished = executor.run_plan(&events, &refused, 3).await.unwrap();
    assert!(
        matches!(&finished, PlanRun::Finished { failed: Some(m) } if m.contains("exceeded")),
        "{finished:?}"
    );
    let log = events.action_log("e-refused").await.unwrap();
    assert_eq!((log[0].status, log[0].attempts), (ActionStatus::Failed, 1));
    assert!(
        log[0]
            .error
            .as_deref()
            .unwrap()
            .contains("directory store failed")
    );
    assert_eq!(
        directory.applies.load(std::sync::atomic::Ordering::SeqCst),
        applies_before + 1
    );
    assert_eq!(h.user("u-refused").await, None);
}
