//! `kill -9` of the real `inlet dev` process in the middle of a burst, repeated.
//!
//! Each cycle sends 300 events with their own idempotency keys at concurrency 16 and
//! SIGKILLs the server once a different share of the answers has come back (so the kill
//! lands at a different point each cycle), restarts it on the same database, and sends
//! every event of the cycle again. Then, for every event sent so far:
//!
//! - its key has exactly one accepted event;
//! - every 2xx the sender saw, before or after the kill, names that event;
//! - every answer after the restart is 202 or 200 (no 409, no 5xx);
//! - its workflow ran exactly once (one run, derived from the accepted event), and the
//!   outbox drains.

mod common;

use common::*;
use reqwest::StatusCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const EVENTS_PER_CYCLE: usize = 300;
const CONCURRENCY: usize = 16;
const CYCLES: usize = 5;

fn event_body(key: &str) -> String {
    sample("task-assigned.json").replace("evt_task_assigned_0001", key)
}

/// Sends `keys` at [`CONCURRENCY`]; returns each key's answer (`None`: no answer, the
/// connection failed). `answered` counts answers as they come.
async fn burst(
    url: &str,
    keys: &[String],
    answered: Arc<AtomicUsize>,
) -> Vec<(String, Option<(StatusCode, serde_json::Value)>)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let queue = Arc::new(std::sync::Mutex::new(keys.to_vec()));
    let mut workers = Vec::new();
    for _ in 0..CONCURRENCY {
        let (client, url, queue, answered) = (
            client.clone(),
            url.to_string(),
            queue.clone(),
            answered.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut results = Vec::new();
            loop {
                let Some(key) = queue.lock().unwrap().pop() else {
                    return results;
                };
                let sent = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-webhook-secret", SECRET)
                    .body(event_body(&key))
                    .send()
                    .await;
                let result = match sent {
                    Ok(response) => {
                        let status = response.status();
                        match response.json::<serde_json::Value>().await {
                            Ok(body) => Some((status, body)),
                            Err(_) => None,
                        }
                    }
                    Err(_) => None,
                };
                answered.fetch_add(1, Ordering::SeqCst);
                results.push((key, result));
            }
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_during_bursts_accepts_each_event_once_and_runs_its_actions_once() {
    let binary = inlet_binary();
    let ws = Workspace::new();
    let port = free_port();
    // Every 2xx a sender saw: key → event ids named.
    let mut seen: HashMap<String, Vec<String>> = HashMap::new();
    let mut all_keys: Vec<String> = Vec::new();
    let mut killed_mid_burst = 0;

    for cycle in 0..CYCLES {
        let keys: Vec<String> = (0..EVENTS_PER_CYCLE)
            .map(|i| format!("evt-{cycle}-{i:03}"))
            .collect();
        all_keys.extend(keys.iter().cloned());
        let mut server = spawn_dev(&binary, &ws, port, &[]);

        // The kill lands after 1/6, 2/6, ... of the answers.
        let kill_after = EVENTS_PER_CYCLE * (cycle + 1) / (CYCLES + 1);
        let answered = Arc::new(AtomicUsize::new(0));
        let sending = tokio::spawn({
            let (url, keys, answered) = (server.url.clone(), keys.clone(), answered.clone());
            async move { burst(&url, &keys, answered).await }
        });
        while answered.load(Ordering::SeqCst) < kill_after {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        let first = sending.await.unwrap();
        let unanswered = first.iter().filter(|(_, r)| r.is_none()).count();
        if unanswered > 0 {
            killed_mid_burst += 1;
        }
        for (key, result) in &first {
            if let Some((status, body)) = result
                && status.is_success()
            {
                seen.entry(key.clone())
                    .or_default()
                    .push(body["event_id"].as_str().unwrap().to_string());
            }
        }

        // Restart and send every event of the cycle again.
        let server = spawn_dev(&binary, &ws, port, &[]);
        let again = burst(&server.url, &keys, Arc::new(AtomicUsize::new(0))).await;
        for (key, result) in &again {
            let (status, body) = result
                .as_ref()
                .unwrap_or_else(|| panic!("cycle {cycle}: no answer for {key} after the restart"));
            assert!(
                *status == StatusCode::ACCEPTED || *status == StatusCode::OK,
                "cycle {cycle}: {key} answered {status} {body} after the restart"
            );
            seen.entry(key.clone())
                .or_default()
                .push(body["event_id"].as_str().unwrap().to_string());
        }

        // The worker drains the outbox.
        let mut drained = false;
        for _ in 0..600 {
            if ws.count("SELECT COUNT(*) FROM outbox WHERE state != 'done'") == 0 {
                drained = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(drained, "cycle {cycle}: the outbox did not drain in 30 s");
        let mut server = server;
        server.child.kill().unwrap();
        server.child.wait().unwrap();

        // Every key so far: one accepted event, named by every 2xx, whose run ran once.
        let conn = ws.db_conn();
        let mut accepted: HashMap<String, Vec<String>> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT idempotency_key, id FROM events WHERE status = 'accepted'")
            .unwrap();
        for row in stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
        {
            let (key, id) = row.unwrap();
            accepted.entry(key).or_default().push(id);
        }
        let mut runs: HashMap<String, usize> = HashMap::new();
        let mut stmt = conn
            .prepare("SELECT json_extract(run, '$.event_id') FROM workflow_runs")
            .unwrap();
        for row in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            *runs.entry(row.unwrap()).or_default() += 1;
        }
        for key in &all_keys {
            let ids = accepted.get(key).cloned().unwrap_or_default();
            assert_eq!(ids.len(), 1, "cycle {cycle}: {key} accepted as {ids:?}");
            let id = &ids[0];
            for named in &seen[key] {
                assert_eq!(named, id, "cycle {cycle}: a 2xx for {key} named {named}");
            }
            assert_eq!(
                runs.get(id),
                Some(&1),
                "cycle {cycle}: runs of {key} ({id})"
            );
        }
        assert_eq!(
            runs.values().sum::<usize>(),
            all_keys.len(),
            "cycle {cycle}: one run per event, none for duplicates"
        );
        eprintln!(
            "cycle {cycle}: killed after {kill_after} answers, {unanswered} deliveries unanswered; {} events accepted so far",
            accepted.len()
        );
    }
    assert!(
        killed_mid_burst >= CYCLES - 1,
        "the kill landed mid-burst in only {killed_mid_burst} of {CYCLES} cycles"
    );
}
