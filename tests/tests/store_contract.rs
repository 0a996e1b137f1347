//! One contract for every store implementation. Each check is written once, against the
//! core traits, and run on every store: in memory, SQLite, and DynamoDB through the real
//! AWS SDK against the emulator that `tests/run` starts (moto's server).

mod common;

use inlet::sqlite::SqliteStore;
use inlet_core::actions::PlannedAction;
use inlet_core::catalog::ActionKind;
use inlet_core::memory::MemoryStore;
use inlet_core::store::{
    ActionStatus, ActionUpdate, ClaimOutcome, ClaimTimes, EventLog, EventQuery, EventRecord,
    EventStatus, IdempotencyScope, IdempotencyStore, VerificationStatus,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const WINDOW_MS: i64 = 86_400_000;
const IN_PROGRESS_MS: i64 = 60_000;

fn scope(key: &str) -> IdempotencyScope {
    IdempotencyScope {
        source: "task-app".into(),
        environment: "development".into(),
        event_type: "task.assigned".into(),
        key: key.into(),
    }
}

fn times(now_ms: i64) -> ClaimTimes {
    ClaimTimes {
        now_ms,
        expires_at_ms: now_ms + WINDOW_MS,
        in_progress_until_ms: now_ms + IN_PROGRESS_MS,
    }
}

async fn idempotency_contract(store: &dyn IdempotencyStore) {
    let s = scope("k1");
    let t0 = 1_700_000_000_000;
    assert_eq!(
        store.claim(&s, "e1", times(t0)).await.unwrap(),
        ClaimOutcome::Claimed
    );
    assert_eq!(
        store.claim(&s, "e2", times(t0 + 1_000)).await.unwrap(),
        ClaimOutcome::InFlight {
            original_event_id: "e1".into(),
            retry_after_ms: 59_000
        }
    );
    // Other scopes are independent: another key, type, source or environment.
    let mut other_type = s.clone();
    other_type.event_type = "task.completed".into();
    let mut other_env = s.clone();
    other_env.environment = "production".into();
    for other in [scope("k2"), other_type, other_env] {
        assert_eq!(
            store.claim(&other, "x", times(t0)).await.unwrap(),
            ClaimOutcome::Claimed
        );
    }
    // Release gives the key back, but only to the holder.
    store.release(&s, "e2").await.unwrap();
    assert!(matches!(
        store.claim(&s, "e3", times(t0 + 2_000)).await.unwrap(),
        ClaimOutcome::InFlight { .. }
    ));
    store.release(&s, "e1").await.unwrap();
    assert_eq!(
        store.claim(&s, "e3", times(t0 + 3_000)).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // Complete turns it into a duplicate marker; completing with another id does nothing.
    store.complete(&s, "e9", t0 + 4_000).await.unwrap();
    assert!(matches!(
        store.claim(&s, "e4", times(t0 + 5_000)).await.unwrap(),
        ClaimOutcome::InFlight { .. }
    ));
    store.complete(&s, "e3", t0 + 4_000).await.unwrap();
    assert_eq!(
        store.claim(&s, "e4", times(t0 + 5_000)).await.unwrap(),
        ClaimOutcome::Duplicate {
            original_event_id: "e3".into()
        }
    );
    store.release(&s, "e3").await.unwrap();
    assert_eq!(
        store.claim(&s, "e4", times(t0 + 6_000)).await.unwrap(),
        ClaimOutcome::Duplicate {
            original_event_id: "e3".into()
        },
        "a completed claim is never released"
    );
    // Expiry is compared with the stored expiry, whatever the backend's TTL does.
    let expired = t0 + 3_000 + WINDOW_MS;
    assert_eq!(
        store.claim(&s, "e5", times(expired)).await.unwrap(),
        ClaimOutcome::Claimed
    );
    // An abandoned in-progress claim stops blocking after its in-progress time.
    let abandoned = expired + IN_PROGRESS_MS;
    assert_eq!(
        store.claim(&s, "e6", times(abandoned)).await.unwrap(),
        ClaimOutcome::Claimed
    );
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
    log.record(first.clone()).await.unwrap();
    assert_eq!(
        log.get("e1").await.unwrap(),
        Some(first.clone()),
        "a record reads back whole"
    );
    assert_eq!(log.get("missing").await.unwrap(), None);

    let mut dup = event("e2", EventStatus::Duplicate, Some("task.assigned"), 2_000);
    dup.actions.clear();
    dup.duplicate_of = Some("e1".into());
    log.record(dup).await.unwrap();
    log.record(event("e3", EventStatus::Rejected, None, 3_000))
        .await
        .unwrap();
    log.record(event(
        "e4",
        EventStatus::Accepted,
        Some("task.completed"),
        4_000,
    ))
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
            ("task.assigned", 2, 1_000, 2_000, "e2"),
            ("task.completed", 1, 4_000, 4_000, "e4")
        ]
    );
    assert_eq!(types[0].last_sample, "{\"n\":\"e2\"}");
    assert!(
        log.event_types("task-app", "production")
            .await
            .unwrap()
            .is_empty()
    );

    log.mark_failed("e4", "dispatch failed").await.unwrap();
    let failed = log.get("e4").await.unwrap().unwrap();
    assert_eq!(
        (failed.status, failed.error.as_deref()),
        (EventStatus::Error, Some("dispatch failed"))
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
        log.record(e).await.unwrap();
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
    assert!(
        log.update_action("l0", &ActionUpdate { index: 7, ..update })
            .await
            .is_err()
    );
}

fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("contract.db"), Duration::from_secs(5)).unwrap();
    (dir, store)
}

#[tokio::test]
async fn idempotency_memory() {
    idempotency_contract(&MemoryStore::new()).await;
}

#[tokio::test]
async fn idempotency_sqlite() {
    let (_dir, store) = sqlite();
    idempotency_contract(&store).await;
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

/// Many simultaneous claims of one key, spread over `stores` (several handles on one
/// backend, as several processes would have): exactly one wins.
async fn one_winner(stores: Vec<Arc<dyn IdempotencyStore>>) {
    let s = scope("contended");
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, s) = (stores[i % stores.len()].clone(), s.clone());
            tokio::spawn(async move {
                store
                    .claim(&s, &format!("e{i}"), times(1_000))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut claimed = 0;
    for task in tasks {
        if task.await.unwrap() == ClaimOutcome::Claimed {
            claimed += 1;
        }
    }
    assert_eq!(claimed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_memory() {
    one_winner(vec![Arc::new(MemoryStore::new())]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_sqlite_across_connections() {
    let (dir, a) = sqlite();
    let b = SqliteStore::open(&dir.path().join("contract.db"), Duration::from_secs(5)).unwrap();
    one_winner(vec![Arc::new(a), Arc::new(b)]).await;
}

/// Fresh tables with a unique prefix, so tests do not see each other's items.
async fn dynamo() -> (
    inlet_aws::idempotency::DynamoIdempotency,
    inlet_aws::events::DynamoEventLog,
) {
    common::require_emulator();
    let unique = common::unique_name("contract");
    let clients = inlet_aws::provision::clients_from_env().await;
    let (claims, events) = (format!("claims-{unique}"), format!("events-{unique}"));
    inlet_aws::provision::create_table(&clients.dynamodb, &claims, false)
        .await
        .unwrap();
    inlet_aws::provision::create_table(&clients.dynamodb, &events, true)
        .await
        .unwrap();
    (
        inlet_aws::idempotency::DynamoIdempotency {
            client: clients.dynamodb.clone(),
            table: claims,
        },
        inlet_aws::events::DynamoEventLog {
            client: clients.dynamodb,
            table: events,
        },
    )
}

#[tokio::test]
async fn idempotency_dynamodb() {
    let (claims, _) = dynamo().await;
    idempotency_contract(&claims).await;
}

#[tokio::test]
async fn event_log_dynamodb() {
    let (_, events) = dynamo().await;
    event_log_contract(&events).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_dynamodb() {
    let (claims, _) = dynamo().await;
    let second = inlet_aws::idempotency::DynamoIdempotency {
        client: claims.client.clone(),
        table: claims.table.clone(),
    };
    one_winner(vec![Arc::new(claims), Arc::new(second)]).await;
}
