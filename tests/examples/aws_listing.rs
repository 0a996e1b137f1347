//! How fast a stack lists its events with the listing index sharded (by hand, not in
//! CI): 10,000 events of one source environment are committed to a new stack's tables
//! in the emulator (`AWS_ENDPOINT_URL`; 80% `task.assigned`, 10% `task.completed`, 10%
//! rejected), then each page the console asks for is listed 20 times and its median
//! printed against the console's target of 100 ms (docs/benchmarks.md has figures). Each listing queries the 32 shards
//! of the index key and the unsharded key at once, merges them newest first and reads
//! the page's events with one `BatchGetItem`.
//!
//! ```sh
//! .venv/bin/python tests/emulator/serve.py 127.0.0.1 5111 &
//! AWS_ENDPOINT_URL=http://127.0.0.1:5111 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
//!   AWS_REGION=us-east-1 cargo run --release -p inlet-tests --example aws_listing
//! ```
//!
//! It prints the stack's environment; give it as the argument to list that stack again
//! without filling a new one.

use inlet_aws::StackNames;
use inlet_aws::clients::{AwsClients, ClientSettings};
use inlet_core::store::{EventLog, EventQuery, EventRecord, EventStatus, VerificationStatus};
use std::time::{Duration, Instant};

const EVENTS: usize = 10_000;
const RUNS: usize = 20;

fn event(i: usize, now_ms: i64) -> EventRecord {
    let (status, event_type) = match i % 10 {
        0 => (EventStatus::Rejected, None),
        1 => (EventStatus::Accepted, Some("task.completed")),
        _ => (EventStatus::Accepted, Some("task.assigned")),
    };
    EventRecord {
        status,
        verification: VerificationStatus::EnforcedVerified,
        event_type: event_type.map(str::to_string),
        headers: vec![("content-type".into(), "application/json".into())],
        raw_body: format!(
            r#"{{"event_type": "{}", "event_id": "evt-{i}", "data": {{"task_id": "t{i}", "title": "Task {i}"}}}}"#,
            event_type.unwrap_or("task.assigned")
        ),
        ..EventRecord::received("task-app", "development", now_ms, now_ms + 86_400_000)
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::main]
async fn main() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL").is_ok(),
        "set AWS_ENDPOINT_URL to the emulator (see the module docs)"
    );
    let clients = AwsClients::from_env(&ClientSettings::CLI).await;
    let (names, fill) = match std::env::args().nth(1) {
        Some(env) => (StackNames::for_environment(&env), false),
        None => {
            let unique = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            (
                StackNames::for_environment(&format!("listing-{unique}")),
                true,
            )
        }
    };
    println!("stack environment {}", names.environment);
    let log = clients.event_log(&names);
    if fill {
        inlet_aws::provision::create_tables(&clients.dynamodb, &names)
            .await
            .unwrap();
        let started = Instant::now();
        let now_ms = inlet_core::clock::Clock::now_ms(&inlet_core::clock::SystemClock);
        for i in 0..EVENTS {
            log.commit(event(i, now_ms + i as i64), None).await.unwrap();
        }
        println!(
            "filled {EVENTS} events in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let query = |status: Option<EventStatus>, event_type: Option<&str>| EventQuery {
        source: Some("task-app".into()),
        environment: Some("development".into()),
        status,
        event_type: event_type.map(str::to_string),
        limit: 50,
        ..EventQuery::default()
    };
    let pages = [
        ("newest 50", query(None, None)),
        (
            "status=rejected (one in ten)",
            query(Some(EventStatus::Rejected), None),
        ),
        (
            "type=task.completed (one in ten)",
            query(None, Some("task.completed")),
        ),
    ];
    println!("| page | median of {RUNS} | target |");
    println!("|---|---|---|");
    for (name, query) in pages {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            let at = Instant::now();
            let page = log.list(&query).await.unwrap();
            times.push(at.elapsed());
            assert_eq!(page.events.len(), 50, "{name}");
        }
        println!(
            "| {name} | {:.1} ms | 100 ms |",
            median(times).as_secs_f64() * 1000.0
        );
    }
}
