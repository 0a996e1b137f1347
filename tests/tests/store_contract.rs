//! One contract for every store implementation. Each check is written once, against the
//! core traits, and run on every store: in memory, SQLite, and DynamoDB through the real
//! AWS SDK against the emulator that `tests/run` starts (moto's server).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use inlet::sqlite::SqliteStore;
use inlet_aws::events::DynamoEventLog;
use inlet_aws::idempotency::DynamoIdempotency;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::memory::MemoryStore;
use inlet_core::store::{
    ActionStatus, ActionUpdate, Committed, EventLog, EventQuery, EventRecord, EventStatus,
    IdempotencyClaim, IdempotencyRecord, IdempotencyScope, IdempotencyStore, StoreError,
    VerificationStatus,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WINDOW_MS: i64 = 86_400_000;

fn scope(key: &str) -> IdempotencyScope {
    IdempotencyScope {
        source: "task-app".into(),
        environment: "development".into(),
        event_type: "task.assigned".into(),
        key: key.into(),
    }
}

fn claim(key: &str, now_ms: i64) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: scope(key),
        now_ms,
        expires_at_ms: now_ms + WINDOW_MS,
    }
}

/// Idempotency through the commit: the first event of a scope is stored and holds it,
/// later ones within the window are stored as its duplicates, expiry is compared with
/// the stored time, and a commit that fails writes no record.
async fn idempotency_contract(log: &dyn EventLog, records: &dyn IdempotencyStore) {
    let t0 = 1_700_000_000_000;
    let accepted = |id: &str, at: i64| event(id, EventStatus::Accepted, Some("task.assigned"), at);
    assert_eq!(
        log.commit(accepted("i1", t0), Some(&claim("k1", t0)))
            .await
            .unwrap(),
        Committed::Stored {
            event_id: "i1".into()
        }
    );
    assert_eq!(
        records.holder(&scope("k1"), t0 + 1).await.unwrap(),
        Some(IdempotencyRecord {
            event_id: "i1".into(),
            expires_at_ms: t0 + WINDOW_MS
        })
    );
    assert_eq!(
        log.commit(accepted("i2", t0 + 1_000), Some(&claim("k1", t0 + 1_000)))
            .await
            .unwrap(),
        Committed::Duplicate {
            original_event_id: "i1".into()
        }
    );
    let duplicate = log.get("i2").await.unwrap().unwrap();
    assert_eq!(
        (
            duplicate.status,
            duplicate.duplicate_of.as_deref(),
            duplicate.actions.len()
        ),
        (EventStatus::Duplicate, Some("i1"), 0),
        "a duplicate is logged without actions"
    );
    assert!(log.action_log("i2").await.unwrap().is_empty());
    assert_eq!(
        records
            .holder(&scope("k1"), t0 + 2)
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "i1",
        "a duplicate does not take the scope over"
    );

    // Other scopes are independent: another key, type, source or environment.
    let mut other_type = claim("k1", t0);
    other_type.scope.event_type = "task.completed".into();
    let mut other_env = claim("k1", t0);
    other_env.scope.environment = "production".into();
    let mut other_source = claim("k1", t0);
    other_source.scope.source = "other-app".into();
    for (i, other) in [claim("k2", t0), other_type, other_env, other_source]
        .iter()
        .enumerate()
    {
        assert_eq!(
            log.commit(accepted(&format!("i3{i}"), t0), Some(other))
                .await
                .unwrap(),
            Committed::Stored {
                event_id: format!("i3{i}")
            }
        );
    }

    // Expiry is compared with the stored expiry, whatever the backend's TTL does.
    let expired = t0 + WINDOW_MS;
    assert_eq!(records.holder(&scope("k1"), expired).await.unwrap(), None);
    assert_eq!(
        log.commit(accepted("i4", expired), Some(&claim("k1", expired)))
            .await
            .unwrap(),
        Committed::Stored {
            event_id: "i4".into()
        }
    );
    assert_eq!(
        records
            .holder(&scope("k1"), expired)
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "i4"
    );

    // A commit that fails (here: an event id that is already stored) writes nothing,
    // not even its idempotency record, and hands the event back.
    let again = accepted("i1", t0 + 5);
    let failed = log
        .commit(again.clone(), Some(&claim("k-fresh", t0 + 5)))
        .await
        .unwrap_err();
    assert!(matches!(failed.error, StoreError::Failed(_)), "{failed}");
    assert_eq!(*failed.event, again);
    assert_eq!(
        records.holder(&scope("k-fresh"), t0 + 6).await.unwrap(),
        None
    );
    assert_eq!(log.get("i1").await.unwrap().unwrap().received_at_ms, t0);
}

fn event(
    id: &str,
    status: EventStatus,
    event_type: Option<&str>,
    received_at_ms: i64,
) -> EventRecord {
    EventRecord {
        id: id.into(),
        source: "task-app".into(),
        environment: "development".into(),
        status,
        verification: VerificationStatus::EnforcedVerified,
        event_type: event_type.map(str::to_string),
        received_at_ms,
        occurred_at_ms: received_at_ms - 5,
        idempotency_key: Some("k".into()),
        duplicate_of: None,
        replay_of: None,
        method: "POST".into(),
        query: "a=1".into(),
        headers: vec![("x-secret".into(), "[redacted]".into())],
        raw_body: format!("{{\"n\":\"{id}\"}}"),
        preprocess: Some(serde_json::from_value(json!({"p": 1})).unwrap()),
        script_console: vec!["hello".into()],
        error: None,
        warnings: vec!["w".into()],
        actions: vec![
            PlannedAction {
                index: 0,
                action: ActionKind::UsersIdentify,
                params: Arc::new(json!({"id": "body.user"})),
                payload: json!({"id": "u1"}),
                skipped: None,
            },
            PlannedAction {
                index: 1,
                action: ActionKind::WorkflowsTrigger,
                params: Arc::new(json!({"key": {"value": "w"}, "recipients": "body.nobody"})),
                payload: json!({"key": "w"}),
                skipped: Some("required param `recipients` did not resolve".into()),
            },
        ],
        expires_at_ms: received_at_ms + 30 * 86_400_000,
    }
}

async fn event_log_contract(log: &dyn EventLog) {
    list_contract(log).await;
    let first = event("e1", EventStatus::Accepted, Some("task.assigned"), 1_000);
    log.commit(first.clone(), Some(&claim("log-key", 1_000)))
        .await
        .unwrap();
    assert_eq!(
        log.get("e1").await.unwrap(),
        Some(first.clone()),
        "a record reads back whole"
    );
    assert_eq!(log.get("missing").await.unwrap(), None);

    let dup = event("e2", EventStatus::Accepted, Some("task.assigned"), 2_000);
    log.commit(dup, Some(&claim("log-key", 2_000)))
        .await
        .unwrap();
    log.commit(event("e3", EventStatus::Rejected, None, 3_000), None)
        .await
        .unwrap();
    log.commit(
        event("e4", EventStatus::Accepted, Some("task.completed"), 4_000),
        None,
    )
    .await
    .unwrap();

    let types = log.event_types("task-app", "development").await.unwrap();
    let summary: Vec<_> = types
        .iter()
        .map(|t| {
            (
                t.event_type.as_str(),
                t.count,
                t.first_seen_ms,
                t.last_seen_ms,
                t.last_event_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("task.assigned", 1, 1_000, 1_000, "e1"),
            ("task.completed", 1, 4_000, 4_000, "e4")
        ]
    );
    // The duplicate is not counted: it is the same event again.
    assert_eq!(types[0].last_sample, "{\"n\":\"e1\"}");
    assert!(
        log.event_types("task-app", "production")
            .await
            .unwrap()
            .is_empty()
    );
}

/// Paging and filters (listing by source and environment, which every store supports).
async fn list_contract(log: &dyn EventLog) {
    for (i, status) in [
        EventStatus::Accepted,
        EventStatus::Rejected,
        EventStatus::Accepted,
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(
            &format!("l{i}"),
            status,
            Some("list.type"),
            10_000 + i as i64,
        );
        e.source = "lister".into();
        log.commit(e, None).await.unwrap();
    }
    let query = |cursor: Option<String>, status: Option<EventStatus>| EventQuery {
        source: Some("lister".into()),
        environment: Some("development".into()),
        status,
        cursor,
        limit: 2,
        ..EventQuery::default()
    };
    let first = log.list(&query(None, None)).await.unwrap();
    let ids: Vec<&str> = first.events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["l2", "l1"], "newest first");
    assert!(first.events.iter().all(|e| e.actions.is_empty()));
    let second = log
        .list(&query(first.next_cursor.clone(), None))
        .await
        .unwrap();
    assert_eq!(
        second
            .events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["l0"]
    );
    assert_eq!(second.next_cursor, None);
    let accepted = log
        .list(&query(None, Some(EventStatus::Accepted)))
        .await
        .unwrap();
    assert_eq!(
        accepted
            .events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["l2", "l0"]
    );
    // Requests without a type (rejected ones) between the typed events do not cut a
    // page filtered by type short.
    for (id, status, event_type) in [
        ("l3", EventStatus::Rejected, None),
        ("l4", EventStatus::Rejected, None),
        ("l5", EventStatus::Accepted, Some("list.type")),
    ] {
        let mut e = event(id, status, event_type, 10_010);
        e.source = "lister".into();
        log.commit(e, None).await.unwrap();
    }
    let typed = |cursor: Option<String>| EventQuery {
        event_type: Some("list.type".into()),
        ..query(cursor, None)
    };
    let first = log.list(&typed(None)).await.unwrap();
    assert_eq!(
        first
            .events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["l5", "l2"]
    );
    let rest = log.list(&typed(first.next_cursor.clone())).await.unwrap();
    assert_eq!(
        rest.events
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["l1", "l0"]
    );

    // The action log and its updates.
    let entries = log.action_log("l0").await.unwrap();
    assert_eq!(
        entries.iter().map(|a| a.status).collect::<Vec<_>>(),
        [ActionStatus::Planned, ActionStatus::Skipped]
    );
    let update = ActionUpdate {
        index: 0,
        status: ActionStatus::Succeeded,
        result: Some(json!({"user_id": "u1"})),
        error: None,
        attempts: 1,
        now_ms: 20_000,
    };
    log.update_action("l0", &update).await.unwrap();
    let entry = log.action_log("l0").await.unwrap().remove(0);
    assert_eq!(
        (entry.status, entry.attempts, entry.result),
        (ActionStatus::Succeeded, 1, Some(json!({"user_id": "u1"})))
    );

    // Reading several events with their action logs at once (the action worker's
    // round) answers what reading them one by one does, in the order asked, with
    // nothing for an unknown id.
    let ids = ["l2", "nope", "l0"].map(String::from);
    let together = log.get_with_logs(&ids).await.unwrap();
    assert_eq!(together.len(), 3);
    for ((event, actions), id) in together.iter().zip(&ids) {
        let alone = log.get(id).await.unwrap();
        assert_eq!(
            event.as_ref().map(|e| &e.id),
            alone.as_ref().map(|e| &e.id),
            "{id}"
        );
        assert_eq!(
            event.as_ref().map(|e| e.status),
            alone.as_ref().map(|e| e.status)
        );
        let alone_log = log.action_log(id).await.unwrap();
        assert_eq!(
            actions
                .iter()
                .map(|a| (a.index, a.status, a.attempts))
                .collect::<Vec<_>>(),
            alone_log
                .iter()
                .map(|a| (a.index, a.status, a.attempts))
                .collect::<Vec<_>>(),
            "{id}"
        );
    }
    assert!(together[1].0.is_none() && together[1].1.is_empty());
    assert_eq!(together[2].1[0].status, ActionStatus::Succeeded);
}

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db"), Duration::from_secs(5)).unwrap();
    (dir, store)
}

#[tokio::test]
async fn idempotency_memory() {
    let store = MemoryStore::new();
    idempotency_contract(&store, &store).await;
}

#[tokio::test]
async fn idempotency_sqlite() {
    let (_dir, store) = sqlite();
    idempotency_contract(&store, &store).await;
}

#[tokio::test]
async fn event_log_memory() {
    event_log_contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn event_log_sqlite() {
    let (_dir, store) = sqlite();
    event_log_contract(&store).await;
}

/// Many simultaneous deliveries of one event (distinct event ids, one idempotency
/// scope), spread over `logs` (several handles on one backend, as several processes or
/// Lambda instances would have): exactly one is stored as accepted, every other as its
/// duplicate.
async fn one_winner(logs: Vec<Arc<dyn EventLog>>) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let log = logs[i % logs.len()].clone();
            tokio::spawn(async move {
                let id = format!("c{i:02}");
                let e = event(&id, EventStatus::Accepted, Some("task.assigned"), 1_000);
                (
                    id,
                    log.commit(e, Some(&claim("contended", 1_000)))
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut originals = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (_, Committed::Stored { event_id }) => winners.push(event_id),
            (_, Committed::Duplicate { original_event_id }) => originals.push(original_event_id),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(originals.len(), 31);
    assert!(originals.iter().all(|o| *o == winners[0]), "{originals:?}");
    let winner = logs[0].get(&winners[0]).await.unwrap().unwrap();
    assert_eq!(winner.status, EventStatus::Accepted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_memory() {
    one_winner(vec![Arc::new(MemoryStore::new())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_sqlite_across_connections() {
    let (dir, a) = sqlite();
    let b = SqliteStore::open(&dir.path().join("contract.db"), Duration::from_secs(5)).unwrap();
    one_winner(vec![Arc::new(a), Arc::new(b)]).await;
}

/// An `in_progress` claim left by an earlier version that crashed between claiming and
/// completing: opening the file completes it if its event was stored as accepted and
/// removes it otherwise, so a sender's retry is a duplicate or new, never blocked.
#[tokio::test]
async fn sqlite_resolves_claims_left_in_progress_at_open() {
    let (dir, store) = sqlite();
    let t0 = 1_700_000_000_000;
    store
        .commit(
            event("stored", EventStatus::Accepted, Some("task.assigned"), t0),
            None,
        )
        .await
        .unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("contract.db")).unwrap();
    for (key, event_id) in [("k-stored", "stored"), ("k-lost", "never-stored")] {
        conn.execute(
            "INSERT INTO idempotency (scope_key, event_id, state, expires_at_ms, in_progress_until_ms)
             VALUES (?1, ?2, 'in_progress', ?3, ?4)",
            rusqlite::params![scope(key).storage_key(), event_id, t0 + WINDOW_MS, t0 + 60_000],
        )
        .unwrap();
    }
    drop(conn);
    let store = SqliteStore::open(&dir.path().join("contract.db"), Duration::from_secs(5)).unwrap();
    assert_eq!(
        store
            .holder(&scope("k-stored"), t0 + 1)
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "stored"
    );
    assert_eq!(store.holder(&scope("k-lost"), t0 + 1).await.unwrap(), None);
    let retry = event(
        "retry",
        EventStatus::Accepted,
        Some("task.assigned"),
        t0 + 2,
    );
    assert_eq!(
        store
            .commit(retry, Some(&claim("k-lost", t0 + 2)))
            .await
            .unwrap(),
        Committed::Stored {
            event_id: "retry".into()
        }
    );
}

/// Fresh tables with a unique prefix, so tests do not see each other's items.
async fn dynamo() -> (DynamoIdempotency, DynamoEventLog) {
    common::require_emulator();
    let unique = common::unique_name("contract");
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    let names = inlet_aws::StackNames {
        environment: "development".into(),
        idempotency_table: format!("claims-{unique}"),
        events_table: format!("events-{unique}"),
        config_table: String::new(),
        directory_table: String::new(),
    };
    inlet_aws::provision::create_table(
        &clients.dynamodb,
        &names.idempotency_table,
        inlet_aws::provision::TableKind::Idempotency,
    )
    .await
    .unwrap();
    inlet_aws::provision::create_table(
        &clients.dynamodb,
        &names.events_table,
        inlet_aws::provision::TableKind::Events,
    )
    .await
    .unwrap();
    (
        DynamoIdempotency::new(clients.dynamodb.clone(), &names),
        DynamoEventLog::new(clients.dynamodb, &names),
    )
}

#[tokio::test]
async fn idempotency_dynamodb() {
    let (records, log) = dynamo().await;
    idempotency_contract(&log, &records).await;
}

#[tokio::test]
async fn event_log_dynamodb() {
    let (_, events) = dynamo().await;
    event_log_contract(&events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_dynamodb() {
    let (_, log) = dynamo().await;
    let second = log.clone();
    one_winner(vec![Arc::new(log), Arc::new(second)]).await;
}

/// Writes an idempotency record item as a release of Inlet might have: `scope(key)`
/// held by `event_id` in `status` until `expires_at_ms`, with `more` attributes.
async fn put_record(
    records: &DynamoIdempotency,
    key: &str,
    event_id: &str,
    status: &str,
    expires_at_ms: i64,
    more: &[(&str, AttributeValue)],
) {
    let mut put = records
        .client
        .put_item()
        .table_name(&records.table)
        .item("pk", AttributeValue::S(scope(key).storage_key()))
        .item("sk", AttributeValue::S("CLAIM".into()))
        .item("event_id", AttributeValue::S(event_id.into()))
        .item("status", AttributeValue::S(status.into()))
        .item(
            "expires_at_ms",
            AttributeValue::N(expires_at_ms.to_string()),
        );
    for (name, value) in more {
        put = put.item(*name, value.clone());
    }
    put.send().await.unwrap();
}

/// An `in_progress` claim item left by an earlier version does not block: the scope
/// counts as free.
#[tokio::test]
async fn dynamodb_ignores_claims_left_in_progress() {
    let (records, log) = dynamo().await;
    let t0 = 1_700_000_000_000;
    put_record(
        &records,
        "k-old",
        "never-stored",
        "in_progress",
        t0 + WINDOW_MS,
        &[(
            "in_progress_until_ms",
            AttributeValue::N((t0 + 60_000).to_string()),
        )],
    )
    .await;
    assert_eq!(records.holder(&scope("k-old"), t0 + 1).await.unwrap(), None);
    let retry = event(
        "retry",
        EventStatus::Accepted,
        Some("task.assigned"),
        t0 + 2,
    );
    assert_eq!(
        log.commit(retry, Some(&claim("k-old", t0 + 2)))
            .await
            .unwrap(),
        Committed::Stored {
            event_id: "retry".into()
        }
    );
}

/// The crash the DynamoDB commit's two writes allow: the process dies after claiming the
/// key (the record names event `lost`) and before storing the event. The record does not
/// hold the key (its event is not stored); the next delivery of the key is stored under
/// the claimed id and holds it; the one after is its duplicate. A delivery whose own id
/// a takeover already used (its claim came after the record was gone) is that event's
/// duplicate, logged under a new id.
#[tokio::test]
async fn dynamodb_completes_a_commit_that_stopped_after_its_claim() {
    let (records, log) = dynamo().await;
    let t0 = 1_700_000_000_000;
    let record = |event_id: &str| {
        records
            .client
            .put_item()
            .table_name(&records.table)
            .item("pk", AttributeValue::S(scope("k-crash").storage_key()))
            .item("sk", AttributeValue::S("CLAIM".into()))
            .item("event_id", AttributeValue::S(event_id.into()))
            .item("status", AttributeValue::S("completed".into()))
            .item(
                "expires_at_ms",
                AttributeValue::N((t0 + WINDOW_MS).to_string()),
            )
            .send()
    };
    record("lost").await.unwrap();
    assert_eq!(
        records.holder(&scope("k-crash"), t0 + 1).await.unwrap(),
        None
    );

    let retry = event(
        "retry",
        EventStatus::Accepted,
        Some("task.assigned"),
        t0 + 2,
    );
    assert_eq!(
        log.commit(retry.clone(), Some(&claim("k-crash", t0 + 2)))
            .await
            .unwrap(),
        Committed::Stored {
            event_id: "lost".into()
        }
    );
    let stored = log.get("lost").await.unwrap().unwrap();
    assert_eq!(
        (stored.status, &stored.raw_body),
        (EventStatus::Accepted, &retry.raw_body)
    );
    assert_eq!(stored.actions, retry.actions, "stored with its plan");
    assert_eq!(log.get("retry").await.unwrap(), None);
    assert_eq!(
        records
            .holder(&scope("k-crash"), t0 + 3)
            .await
            .unwrap()
            .unwrap()
            .event_id,
        "lost"
    );
    let again = event(
        "again",
        EventStatus::Accepted,
        Some("task.assigned"),
        t0 + 4,
    );
    assert_eq!(
        log.commit(again, Some(&claim("k-crash", t0 + 4)))
            .await
            .unwrap(),
        Committed::Duplicate {
            original_event_id: "lost".into()
        }
    );
    assert_eq!(
        log.get("again")
            .await
            .unwrap()
            .unwrap()
            .duplicate_of
            .as_deref(),
        Some("lost")
    );

    // The delivery that claimed `lost` finally commits, after its record was replaced
    // (here: deleted): its id is taken by the takeover, so it is the duplicate.
    records
        .client
        .delete_item()
        .table_name(&records.table)
        .key("pk", AttributeValue::S(scope("k-crash").storage_key()))
        .key("sk", AttributeValue::S("CLAIM".into()))
        .send()
        .await
        .unwrap();
    let late = event("lost", EventStatus::Accepted, Some("task.assigned"), t0 + 5);
    assert_eq!(
        log.commit(late, Some(&claim("k-crash", t0 + 5)))
            .await
            .unwrap(),
        Committed::Duplicate {
            original_event_id: "lost".into()
        }
    );
    let page = log
        .list(&EventQuery {
            source: Some("task-app".into()),
            environment: Some("development".into()),
            status: Some(EventStatus::Duplicate),
            limit: 10,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 2, "{:?}", page.events);
    assert!(
        page.events
            .iter()
            .all(|e| e.duplicate_of.as_deref() == Some("lost"))
    );
    assert_eq!(
        log.get("lost").await.unwrap().unwrap().status,
        EventStatus::Accepted
    );
}

/// Events written by an earlier version (the plan in `ACTION#` items, not in the event)
/// still read whole.
#[tokio::test]
async fn dynamodb_reads_events_of_the_earlier_layout() {
    let (_, log) = dynamo().await;
    let mut old = event("old", EventStatus::Accepted, Some("task.assigned"), 5_000);
    let plan = std::mem::take(&mut old.actions);
    let put = |sk: String, data: String| {
        log.client
            .put_item()
            .table_name(&log.table)
            .item("pk", AttributeValue::S("EVENT#old".into()))
            .item("sk", AttributeValue::S(sk))
            .item("data", AttributeValue::S(data))
            .send()
    };
    put("EVENT".into(), serde_json::to_string(&old).unwrap())
        .await
        .unwrap();
    for action in &plan {
        let mut entry = inlet_core::store::ActionLogEntry::planned(action, 5_000);
        if action.index == 0 {
            entry.status = ActionStatus::Succeeded;
            entry.attempts = 1;
        }
        put(
            format!("ACTION#{:05}", action.index),
            serde_json::to_string(&entry).unwrap(),
        )
        .await
        .unwrap();
    }
    let read = log.get("old").await.unwrap().unwrap();
    assert_eq!(read.actions, plan);
    let entries = log.action_log("old").await.unwrap();
    assert_eq!(
        entries.iter().map(|e| e.status).collect::<Vec<_>>(),
        [ActionStatus::Succeeded, ActionStatus::Skipped]
    );
}

/// Every item the commit and the executor write carries the current format version, and
/// the readers go by it: a format 1 item keeps being read as format 1 (`data` JSON), a
/// current item is not read by format 1's rules, and an item of a newer format is
/// refused with an error that says so (a stack rolled back past a format change).
#[tokio::test]
async fn dynamodb_items_carry_their_format_version_and_are_read_by_it() {
    let (records, log) = dynamo().await;
    let t0 = 1_700_000_000_000;
    let stored = event("now", EventStatus::Accepted, Some("task.assigned"), t0);
    let claim = claim("k-now", t0);
    log.commit(stored.clone(), Some(&claim)).await.unwrap();
    log.update_action(
        "now",
        &inlet_core::store::ActionUpdate {
            index: 0,
            status: ActionStatus::Succeeded,
            result: None,
            error: None,
            attempts: 1,
            now_ms: t0 + 1,
        },
    )
    .await
    .unwrap();
    let version = |item: &std::collections::HashMap<String, AttributeValue>| {
        item.get(inlet_aws::format::ATTRIBUTE).cloned()
    };
    let current = Some(AttributeValue::N(inlet_aws::format::CURRENT.to_string()));
    let items = log
        .client
        .query()
        .table_name(&log.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("EVENT#now".into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    for item in &items {
        assert_eq!(version(item), current, "{item:?}");
    }
    let record = records
        .client
        .get_item()
        .table_name(&records.table)
        .key("pk", AttributeValue::S(scope("k-now").storage_key()))
        .key("sk", AttributeValue::S("CLAIM".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(version(&record), current);

    // A record in `data` is format 1's: read without a version, not with the current one.
    let put = |id: &str, version: Option<i64>| {
        let old = event(id, EventStatus::Accepted, Some("task.assigned"), t0);
        let mut put = log
            .client
            .put_item()
            .table_name(&log.table)
            .item("pk", AttributeValue::S(format!("EVENT#{id}")))
            .item("sk", AttributeValue::S("EVENT".into()))
            .item(
                "data",
                AttributeValue::S(serde_json::to_string(&old).unwrap()),
            );
        if let Some(version) = version {
            put = put.item("fv", AttributeValue::N(version.to_string()));
        }
        put.send()
    };
    put("v1", None).await.unwrap();
    assert_eq!(log.get("v1").await.unwrap().unwrap().id, "v1");
    put("v2", Some(2)).await.unwrap();
    let error = log.get("v2").await.unwrap_err().to_string();
    assert!(
        error.contains("format 2") && error.contains("holds no record"),
        "{error}"
    );
    put("v3", Some(3)).await.unwrap();
    let error = log.get("v3").await.unwrap_err().to_string();
    assert!(
        error.contains("format 3") && error.contains("newer Inlet"),
        "{error}"
    );

    // An idempotency record of a newer format is refused, not taken as free or held.
    put_record(
        &records,
        "k-v3",
        "now",
        "completed",
        t0 + WINDOW_MS,
        &[("fv", AttributeValue::N("3".into()))],
    )
    .await;
    let error = records
        .holder(&scope("k-v3"), t0 + 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("format 3"), "{error}");
}
