//! Runaway scripts: `cargo bench -p inlet --bench sandbox`.
//!
//! Prints, on a release build with the counting allocator installed (as the `inlet`
//! binary has it):
//! - for each runaway script (the sandbox's known hard cases), how long it ran before
//!   the sandbox stopped it, against the 50 ms budget (target: within 2×), and why;
//! - the process's peak memory (VmHWM) after all of them (target: under 256 MB);
//! - `/healthz` latency on `inlet dev` while 8 clients send requests whose script runs
//!   away, for 3 s (target: under 50 ms).

use inlet::server::{self, DevOptions};
use inlet_core::script::{CountingAllocator, ScriptEngine, ScriptInput, ScriptLimits};
use inlet_core::vars::Vars;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator(std::alloc::System);

/// A 1 MiB string, built by doubling.
const MIB: &str = r#"let big = "x"; while big.len() < 1048576 { big += big; }"#;

fn cases() -> Vec<(&'static str, String)> {
    vec![
        ("loop", "fn main(ctx) { let i = 0; loop { i += 1; } }".into()),
        (
            "replace by 1 MiB",
            format!(
                r#"fn main(ctx) {{ {MIB} let s = "a"; while s.len() < 1000 {{ s += s; }} s.replace("a", big); #{{}} }}"#
            ),
        ),
        (
            "hmac_sha512 of 1 MiB, looped",
            format!("fn main(ctx) {{ {MIB} loop {{ hmac_sha512(big, big); }} }}"),
        ),
        (
            "form_decode of 500 KB",
            r#"fn main(ctx) { let s = "k=v&"; while s.len() < 500000 { s += s; } form_decode(s); #{} }"#.into(),
        ),
        (
            "split(\"\") of 1 MiB",
            format!(r#"fn main(ctx) {{ {MIB} big.split(""); #{{}} }}"#),
        ),
        (
            "512 KiB strings held in every call frame",
            r#"fn f(s) { let t = s + "z"; f(t) } fn main(ctx) { let s = "x"; while s.len() < 524288 { s += s; } f(s) }"#.into(),
        ),
    ]
}

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let limits = ScriptLimits::default();
    println!(
        "budget: {} ms wall time, {} MiB memory",
        limits.wall_time.as_millis(),
        limits.max_memory_bytes >> 20
    );
    let engine = ScriptEngine::new(limits);
    let vars = Arc::new(Vars::default());
    for (name, code) in cases() {
        let script = engine.compile(name, &code).unwrap();
        let started = Instant::now();
        let outcome = engine.run(
            &script,
            ScriptInput {
                vars: vars.clone(),
                body: Arc::new(json!({})),
                raw_body: "{}",
                headers: Arc::new(json!({})),
                query: Arc::new(json!({})),
                method: "POST",
                received_at: 0,
                now_ms: 0,
            },
        );
        let took = started.elapsed();
        let why = match outcome {
            Ok(_) => "finished".to_string(),
            Err(e) => e.message,
        };
        println!(
            "{name:<42} stopped after {:>7.1} ms: {why}",
            took.as_secs_f64() * 1000.0
        );
    }
    println!("peak memory of the process: {:.0} MB", peak_rss_mb());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(healthz_under_load());
}

async fn healthz_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let sources = dir.path().join("sources");
    std::fs::create_dir(&sources).unwrap();
    std::fs::write(
        sources.join("runaway.yaml"),
        "key: runaway\nname: Runaway\nenvironments:\n  development:\n    script: runaway.rhai\n",
    )
    .unwrap();
    std::fs::write(
        sources.join("runaway.rhai"),
        "fn main(ctx) { let i = 0; loop { i += 1; } }",
    )
    .unwrap();
    let mut options = DevOptions::new(sources, dir.path().join("inlet.db"));
    options.addr = "127.0.0.1:0".parse().unwrap();
    options.watch = false;
    let server = server::start(options, std::future::pending())
        .await
        .unwrap();
    let url = server.url("runaway", "development").unwrap().to_string();
    let health = format!("http://{}/healthz", server.addr);
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(3);
    let mut load = Vec::new();
    for _ in 0..8 {
        let (client, url) = (client.clone(), url.clone());
        load.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < until {
                let _ = client.post(&url).body("{}").send().await;
                sent += 1;
            }
            sent
        }));
    }
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        let answer = client.get(&health).send().await.unwrap();
        assert!(answer.status().is_success());
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut runaway_requests = 0;
    for task in load {
        runaway_requests += task.await.unwrap();
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "/healthz during {runaway_requests} runaway requests from 8 clients: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} probes)",
        ms(latencies[latencies.len() / 2]),
        ms(latencies[latencies.len() * 99 / 100]),
        ms(*latencies.last().unwrap()),
        latencies.len()
    );
    server.shutdown().await.unwrap();
}
