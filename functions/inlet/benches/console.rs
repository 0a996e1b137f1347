//! The console's pages with 10,000 stored events: `cargo bench -p inlet --bench console`.
//!
//! Starts the real dev server (SQLite file, the example `task-app` source), sends it
//! 10,000 events over HTTP (80% `task.assigned` accepted, 10% `task.completed` accepted,
//! 10% rejected for a wrong secret; actions paused, so only the log grows), then times
//! whole page loads over a kept-alive HTTP connection, as a browser makes them:
//! - `events`: `/console/events`, the newest 50 of every source;
//! - `events_rejected`: `/console/events?status=rejected`, a filter that matches one in ten;
//! - `events_completed`: `/console/events?source=task-app&env=development&type=task.completed`;
//! - `live_rows`: `/console/live/events`, what an open events page fetches every 2 s;
//! - `event`: `/console/events/{id}`, one event with its action log.
//!
//! It prints each page's median at the end against the target: < 100 ms.

use criterion::Criterion;
use inlet::server::{self, DevOptions};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: usize = 10_000;
const SECRET: &str = "bench-secret";
const TARGET_MS: f64 = 100.0;

fn payload(n: usize, event_type: &str) -> String {
    serde_json::json!({
        "event_type": event_type,
        "event_id": format!("evt_{n:08}"),
        "timestamp": "2024-09-15T14:30:00Z",
        "data": {
            "task_id": format!("task_{n}"),
            "title": "Write the launch announcement",
            "assigned_to": format!("user_{}", n % 500),
            "assigned_by": "user_789",
            "project": {"id": "proj_42", "name": "Launch"}
        }
    })
    .to_string()
}

/// Sends the events, 16 at a time; returns the id of one accepted in the last batch.
async fn fill(url: &str) -> String {
    let client = reqwest::Client::new();
    let url: Arc<str> = url.into();
    let mut last = String::new();
    let started = Instant::now();
    for chunk in (0..EVENTS).collect::<Vec<_>>().chunks(16) {
        let mut sends = tokio::task::JoinSet::new();
        for &n in chunk {
            let (client, url) = (client.clone(), url.clone());
            sends.spawn(async move {
                let (event_type, secret) = match n % 10 {
                    0 => ("task.completed", SECRET),
                    1 => ("task.assigned", "wrong-secret"),
                    _ => ("task.assigned", SECRET),
                };
                let response = client
                    .post(&*url)
                    .header("content-type", "application/json")
                    .header("x-webhook-secret", secret)
                    .body(payload(n, event_type))
                    .send()
                    .await
                    .expect("the dev server answers");
                let status = response.status().as_u16();
                let body: serde_json::Value = response.json().await.unwrap();
                assert!(
                    status == 202 || (status == 401 && secret != SECRET),
                    "{status} {body}"
                );
                body["event_id"].as_str().map(str::to_string)
            });
        }
        while let Some(sent) = sends.join_next().await {
            if let Some(id) = sent.unwrap() {
                last = id;
            }
        }
    }
    eprintln!(
        "stored {EVENTS} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    last
}

fn setup_sources(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sources = dir.join("sources");
    std::fs::create_dir_all(&sources).unwrap();
    for name in ["task-app.yaml", "task-app.rhai"] {
        std::fs::copy(root.join("infra/sources").join(name), sources.join(name)).unwrap();
    }
    let vars = dir.join("vars.json");
    std::fs::write(&vars, format!("{{\"TASK_APP_SECRET\": \"{SECRET}\"}}")).unwrap();
    (sources, vars)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sources, vars) = setup_sources(dir.path());
    let mut options = DevOptions::new(sources, dir.path().join("inlet.db"));
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.vars_file = Some(vars);
    options.pause_actions = true;
    options.watch = false;
    let server = runtime
        .block_on(server::start(options, std::future::pending()))
        .unwrap();
    let url = server.url("task-app", "development").unwrap().to_string();
    let last = runtime.block_on(fill(&url));
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let load = |path: &str| {
        let response = runtime
            .block_on(client.get(format!("{base}{path}")).send())
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = runtime.block_on(response.text()).unwrap();
        assert!(html.contains("<tr>"), "{path} lists something");
        html.len()
    };
    let pages = [
        ("events", "/console/events".to_string()),
        (
            "events_rejected",
            "/console/events?status=rejected".to_string(),
        ),
        (
            "events_completed",
            "/console/events?source=task-app&env=development&type=task.completed".to_string(),
        ),
        ("live_rows", "/console/live/events".to_string()),
        ("event", format!("/console/events/{last}")),
    ];

    let mut criterion = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    let mut group = criterion.benchmark_group("console_10k_events");
    for (name, path) in &pages {
        group.bench_function(*name, |b| b.iter(|| load(path)));
    }
    group.finish();

    println!("\npage loads with {EVENTS} stored events (median of 31; target < {TARGET_MS} ms):");
    for (name, path) in &pages {
        let mut samples: Vec<f64> = (0..31)
            .map(|_| {
                let started = Instant::now();
                load(path);
                started.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let median = samples[15];
        println!(
            "  {name:<17} {median:>7.2} ms  {}  {path}",
            if median < TARGET_MS {
                "ok"
            } else {
                "OVER TARGET"
            }
        );
    }
}
