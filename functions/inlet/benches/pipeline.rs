//! Pipeline overhead: `cargo bench -p inlet --bench pipeline`.
//!
//! Measures, on a 1.4 KB event with an HMAC-verifying script and two mappings:
//! - `ingest/memory`: the whole in-process pipeline (parse, script, event type,
//!   idempotency scope, plan, the one commit) on the in-memory store, so the figure is
//!   Inlet's own work (a fresh store every 2,000 events, see [`PER_ROUND`]);
//! - `ingest/floor`: the least any verifier must do: serde_json parse + HMAC-SHA256 of
//!   the raw body + resolving the same paths natively (taking and dropping the request
//!   like the pipeline does);
//! - `ingest/sqlite`: the pipeline on the real SQLite store (WAL, `synchronous=FULL`,
//!   so one fsync per accepted event dominates), for information.
//!
//! After criterion's runs it prints the memory/floor ratio (target ≤ 2).
//!
//! Both run on the `inlet` binary's allocator (mimalloc, counting each script run's
//! memory), so the figure is the pipeline as it is shipped.

use criterion::{BatchSize, Criterion};
use hmac::{Hmac, Mac};
use inlet::sqlite::SqliteStore;
use inlet_core::clock::SystemClock;
use inlet_core::config::load_dir;
use inlet_core::memory::{MemoryStore, StaticVars};
use inlet_core::path::{FieldPath, PathRoots};
use inlet_core::pipeline::{InboundRequest, Pipeline, PipelineSettings, Route};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::vars::Vars;
use serde_json::{Value, json};
use sha2::Sha256;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The `inlet` binary's allocator (functions/inlet/src/main.rs).
#[global_allocator]
static ALLOCATOR: inlet_core::script::CountingAllocator<mimalloc::MiMalloc> =
    inlet_core::script::CountingAllocator(mimalloc::MiMalloc);

const SECRET: &str = "bench-secret";

const YAML: &str = r#"
key: bench
name: Bench
environments:
  development:
    script: bench.rhai
    event_type_path: body.event_type
    timestamp_path: body.timestamp
    idempotency: { key_path: body.event_id }
    mappings:
      task.assigned:
        - action: users_identify
          params:
            id: data.assigned_to
            email: data.assignee_email
        - action: workflows_trigger
          params:
            key: { value: task-assigned }
            recipients: data.assigned_to
            actor: data.assigned_by
            data.task_id: data.task_id
            data.title: data.title
"#;

const SCRIPT: &str = r#"
fn main(ctx) {
    let expected = "sha256=" + hmac_sha256_hex(ctx.vars.SECRET, ctx.rawBody);
    #{ verified: secure_eq(expected, ctx.headers["x-webhook-signature"]) }
}
"#;

/// Paths the floor resolves: the same ones the config uses.
const PATHS: [&str; 9] = [
    "body.event_type",
    "body.timestamp",
    "body.event_id",
    "data.assigned_to",
    "data.assignee_email",
    "data.assigned_to",
    "data.assigned_by",
    "data.task_id",
    "data.title",
];

fn body(n: u64) -> String {
    let text = json!({
        "event_type": "task.assigned",
        "event_id": format!("evt_{n:012}"),
        "timestamp": "2024-09-15T14:30:00Z",
        "data": {
            "task_id": "task_123",
            "title": "Write the launch announcement for the new release",
            "assigned_to": "user_456",
            "assignee_email": "user456@example.com",
            "assigned_by": "user_789",
            "project": {"id": "proj_42", "name": "Launch", "tags": ["q4", "marketing", "blog"]},
            "description": "x".repeat(1033),
        }
    })
    .to_string();
    assert!(
        (1300..1500).contains(&text.len()),
        "event is {} bytes",
        text.len()
    );
    text
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn request(n: u64) -> InboundRequest {
    let body = body(n);
    InboundRequest {
        method: "POST".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-webhook-signature".into(), sign(&body)),
            ("user-agent".into(), "bench/1.0".into()),
        ],
        query: String::new(),
        body: body.into_bytes(),
    }
}

fn route_and_engine(dir: &std::path::Path) -> (Route, Arc<ScriptEngine>) {
    std::fs::write(dir.join("bench.yaml"), YAML).unwrap();
    std::fs::write(dir.join("bench.rhai"), SCRIPT).unwrap();
    let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
    let catalog = load_dir(dir, &engine).unwrap();
    (Route::of(&catalog, "bench", "development").unwrap(), engine)
}

fn pipeline(engine: Arc<ScriptEngine>, events: Arc<dyn inlet_core::store::EventLog>) -> Pipeline {
    Pipeline {
        engine,
        events,
        vars: Arc::new(StaticVars(Arc::new(Vars::new([(
            "SECRET".to_string(),
            SECRET.to_string(),
        )])))),
        clock: Arc::new(SystemClock),
        settings: PipelineSettings::default(),
        script_pool: None,
    }
}

/// The floor: parse, HMAC, native path resolution (paths parsed once, as Inlet does at
/// config load).
fn floor(request: &InboundRequest, paths: &[FieldPath]) -> usize {
    let value: Value = serde_json::from_slice(&request.body).unwrap();
    let signature = sign(std::str::from_utf8(&request.body).unwrap());
    let headers = json!({});
    let empty = json!({});
    let roots = PathRoots {
        body: &value,
        headers: &headers,
        preprocess: &empty,
    };
    let found = paths.iter().filter(|p| p.resolve(&roots).is_some()).count();
    black_box(signature).len() + found
}

/// Requests per round: each round's requests, and for the pipeline a fresh memory store,
/// are built outside the timed part. A store kept across rounds would grow the heap by
/// ~4 KB an event, and the page faults of that growth (a cost no real store has: SQLite
/// and DynamoDB keep events outside the process heap) would be counted as pipeline time.
const PER_ROUND: u64 = 2_000;

/// Runs `iterations` requests through `f` in rounds of up to [`PER_ROUND`], each round's
/// state and requests from `setup` (untimed); returns the time spent in `f`. Criterion's
/// groups and the printed ratio both measure through this, so they agree.
fn timed_rounds<S>(
    iterations: u64,
    mut setup: impl FnMut(u64) -> (S, Vec<InboundRequest>),
    mut f: impl FnMut(&S, InboundRequest),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iterations;
    while left > 0 {
        let size = left.min(PER_ROUND);
        left -= size;
        let (state, requests) = setup(size);
        let started = Instant::now();
        for request in requests {
            f(&state, request);
        }
        total += started.elapsed();
        drop(state);
    }
    total
}

/// Median over `rounds` rounds of the mean time per request (for the printed ratio).
fn median_ns(rounds: usize, mut round: impl FnMut() -> Duration) -> f64 {
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| round().as_nanos() as f64 / PER_ROUND as f64)
        .collect();
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    samples[rounds / 2]
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (route, engine) = route_and_engine(dir.path());
    let sqlite =
        Arc::new(SqliteStore::open(&dir.path().join("bench.db"), Duration::from_secs(5)).unwrap());
    let on_sqlite = pipeline(engine.clone(), sqlite);
    let on_fresh_memory = || pipeline(engine.clone(), Arc::new(MemoryStore::new()));

    // Every request carries a fresh event id, so each one takes the accepted path.
    let counter = AtomicU64::new(0);
    let next = || counter.fetch_add(1, Ordering::Relaxed);
    let batch = |size: u64| (0..size).map(|_| request(next())).collect::<Vec<_>>();
    let check = runtime
        .block_on(on_fresh_memory().ingest(Some(&route), request(next())))
        .reply;
    assert_eq!(check.status, 202, "{}", check.body);
    assert!(check.body.contains("\"actions\":2"), "{}", check.body);

    let paths: Vec<FieldPath> = PATHS.iter().map(|p| FieldPath::parse(p).unwrap()).collect();
    let run_pipeline = |iterations: u64| {
        timed_rounds(
            iterations,
            |size| (on_fresh_memory(), batch(size)),
            |pipeline, request| {
                let reply = runtime
                    .block_on(pipeline.ingest(Some(&route), request))
                    .reply;
                assert_eq!(reply.status, 202);
            },
        )
    };
    let run_floor = |iterations: u64| {
        timed_rounds(
            iterations,
            |size| ((), batch(size)),
            |_, request| {
                black_box(floor(&request, &paths));
            },
        )
    };

    let mut criterion = Criterion::default()
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    let mut group = criterion.benchmark_group("ingest");
    group.bench_function("memory", |b| b.iter_custom(run_pipeline));
    group.bench_function("floor", |b| b.iter_custom(run_floor));
    group.sample_size(20).bench_function("sqlite", |b| {
        b.iter_batched(
            || request(next()),
            |req| runtime.block_on(on_sqlite.ingest(Some(&route), req)).reply,
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The ratio, measured once more: the median of 9 rounds each.
    let floor_ns = median_ns(9, || run_floor(PER_ROUND));
    let pipeline_ns = median_ns(9, || run_pipeline(PER_ROUND));
    println!(
        "\npipeline (memory stores): {:.1} µs/event\nfloor (parse + HMAC + paths): {:.1} µs/event\nratio: {:.2} (target ≤ 2)",
        pipeline_ns / 1000.0,
        floor_ns / 1000.0,
        pipeline_ns / floor_ns
    );
}
