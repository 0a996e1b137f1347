//! Rehearse, replay and token rotation on the dev server, through the admin API and the
//! `inlet` binary, asserting on the answers and on what the SQLite file holds (a dry run
//! stores nothing; a replay stores a new event and runs its actions; a rotated-out URL
//! answers 404 once its overlap ends).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn admin_post(base: &str, path: &str, body: Value) -> Answer {
    post(&format!("{base}{path}"), &body.to_string(), &[]).await
}

/// Sources besides the task-app example: one whose only environment is production, and
/// one that maps a fixed workflow key without `{ value: ... }`.
fn add_sources(ws: &Workspace) {
    std::fs::write(
        ws.sources().join("payments.yaml"),
        "key: payments\nname: Payments\nenvironments:\n  production:\n    event_type_path: body.type\n",
    )
    .unwrap();
    std::fs::write(
        ws.sources().join("crm.yaml"),
        "key: crm\nname: CRM\nenvironments:\n  development:\n    event_type_path: body.type\n    mappings:\n      deal.won:\n        - action: workflows_trigger\n          params:\n            key: deal-won\n            recipients: body.owner\n",
    )
    .unwrap();
}

#[tokio::test]
async fn rehearse_shows_what_would_happen_and_stores_nothing() {
    let ws = Workspace::new();
    add_sources(&ws);
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let body = sample("task-assigned.json");
    let rehearse = |headers: Value| {
        let base = base.clone();
        let body = body.clone();
        async move {
            admin_post(
                &base,
                "/admin/sources/task-app/rehearse?env=development",
                json!({"body": body, "headers": headers}),
            )
            .await
        }
    };

    let dry = rehearse(json!({"x-webhook-secret": SECRET})).await;
    assert_eq!(dry.status, StatusCode::OK, "{:?}", dry.body);
    assert_eq!(dry.body["dry_run"], true);
    assert_eq!(dry.body["http_status"], 202);
    assert_eq!(dry.body["answer"], "accepted");
    assert_eq!(dry.body["duplicate_of"], Value::Null);
    let event = &dry.body["event"];
    assert_eq!(event["verification"], "enforced:verified");
    assert_eq!(event["event_type"], "task.assigned");
    assert_eq!(event["idempotency_key"], "evt_task_assigned_0001");
    assert_eq!(event["occurred_at_ms"], 1_726_410_600_000_i64);
    assert_eq!(event["actions"][0]["action"], "workflows_trigger");
    assert_eq!(
        event["actions"][0]["payload"]["recipients"],
        json!(["user_456"])
    );
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM events") + ws.count("SELECT COUNT(*) FROM idempotency"),
        0,
        "a rehearsal stores nothing"
    );

    // Unverified: the reason, and still nothing stored.
    let refused = rehearse(json!({"x-webhook-secret": "wrong"})).await;
    assert_eq!(refused.body["http_status"], 401);
    assert_eq!(refused.body["event"]["status"], "rejected");
    assert!(
        refused.body["answer"]
            .as_str()
            .unwrap()
            .starts_with("unverified"),
        "{:?}",
        refused.body
    );
    assert_eq!(ws.count("SELECT COUNT(*) FROM events"), 0);

    // Once the event is stored, the same payload would be its duplicate.
    let url = server.url("task-app", "development").unwrap().to_string();
    let sent = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    let stored_id = sent.body["event_id"].as_str().unwrap().to_string();
    let again = rehearse(json!({"x-webhook-secret": SECRET})).await;
    assert_eq!(again.body["http_status"], 200);
    assert_eq!(again.body["duplicate_of"], stored_id.as_str());
    assert_eq!(ws.count("SELECT COUNT(*) FROM events"), 1);

    // A fixed value written as a path: skipped, with the literal suggested.
    let hint = admin_post(
        &base,
        "/admin/sources/crm/rehearse?env=development",
        json!({"body": {"type": "deal.won", "owner": "u1"}}),
    )
    .await;
    assert_eq!(hint.status, StatusCode::OK, "{:?}", hint.body);
    assert_eq!(hint.body["runnable_actions"], 0);
    assert_eq!(
        hint.body["event"]["actions"][0]["skipped"],
        "required param `key` did not resolve (path `deal-won`); did you mean the literal `{ value: deal-won }`?"
    );

    // Production is never rehearsed; unknown sources and environments are named.
    let production = admin_post(
        &base,
        "/admin/sources/payments/rehearse?env=production",
        json!({"body": "{}"}),
    )
    .await;
    assert_eq!(production.status, StatusCode::FORBIDDEN);
    assert_eq!(production.body["error"]["code"], "production_environment");
    assert!(
        production.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("production: false"),
        "{:?}",
        production.body
    );
    let unknown = admin_post(
        &base,
        "/admin/sources/task-app/rehearse?env=staging",
        json!({"body": "{}"}),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has no environment `staging` (it has: development)"),
        "{:?}",
        unknown.body
    );
    let malformed = post(
        &format!("{base}/admin/sources/task-app/rehearse?env=development"),
        "not json",
        &[],
    )
    .await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    // The command line: the same dry run, for people; exit 0 when it would be a 2xx.
    let file = ws.dir.path().join("assigned.json");
    std::fs::write(&file, body.replace("0001", "0002")).unwrap();
    let (code, out, err) = run_inlet(&[
        "rehearse",
        file.to_str().unwrap(),
        "--source",
        "task-app",
        "-H",
        &format!("x-webhook-secret: {SECRET}"),
        "--server",
        &base,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("DRY RUN (nothing was stored): would answer 202 accepted"),
        "{out}"
    );
    assert!(
        out.contains("idempotency   evt_task_assigned_0002 (new)"),
        "{out}"
    );
    assert!(
        out.contains("action 0      workflows_trigger  runs with {"),
        "{out}"
    );
    let (code, out, _) = run_inlet(&[
        "rehearse",
        file.to_str().unwrap(),
        "--source",
        "task-app",
        "--server",
        &base,
    ])
    .await;
    assert_eq!(code, 1, "an unverified rehearsal exits 1: {out}");
    assert!(out.contains("would answer 401 unverified"), "{out}");
    assert_eq!(ws.count("SELECT COUNT(*) FROM events"), 1);
}

#[tokio::test]
async fn replay_stores_a_new_event_that_runs_its_actions_and_leaves_the_original() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let body = sample("task-assigned.json");
    let sent = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    let original = sent.body["event_id"].as_str().unwrap().to_string();
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 1).await;
    let before = ws.query_one("SELECT * FROM events WHERE id = ?1", &[&original]);

    // Through the admin API: the idempotency key does not stop a replay.
    let replayed = admin_post(
        &base,
        &format!("/admin/events/{original}/replay"),
        json!(null),
    )
    .await;
    assert_eq!(replayed.status, StatusCode::ACCEPTED, "{:?}", replayed.body);
    assert_eq!(replayed.body["replay_of"], original.as_str());
    assert_eq!(replayed.body["status"], "accepted");
    assert_eq!(replayed.body["actions"], 1);
    let copy = replayed.body["event_id"].as_str().unwrap().to_string();
    assert_ne!(copy, original);
    let stored = ws.query_one("SELECT * FROM events WHERE id = ?1", &[&copy]);
    assert_eq!(stored["replay_of"], original.as_str());
    assert_eq!(stored["verification"], "enforced:verified");
    // Received now (listed where it happened), occurred when the original did.
    assert!(
        stored["received_at_ms"].as_i64() > before["received_at_ms"].as_i64(),
        "{stored}"
    );
    assert_eq!(stored["occurred_at_ms"], before["occurred_at_ms"]);
    assert_eq!(stored["raw_body"], before["raw_body"]);
    let (_, listed, _) = run_inlet(&["logs", "--server", &base, "--since", "1m", "--json"]).await;
    let order: Vec<String> = listed
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        order,
        [original.clone(), copy.clone()],
        "oldest first, the replay last"
    );
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 2).await;
    assert_eq!(
        ws.query_one("SELECT * FROM events WHERE id = ?1", &[&original]),
        before,
        "the original is unchanged"
    );

    // Through the command line.
    let (code, out, err) = run_inlet(&["replay", &original, "--server", &base]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("Replayed {original} as ")),
        "{out}"
    );
    assert!(out.contains(": accepted, 1 action(s) to run"), "{out}");
    wait_for_count(&ws, "SELECT COUNT(*) FROM workflow_runs", 3).await;
    assert_eq!(
        ws.count(&format!(
            "SELECT COUNT(*) FROM events WHERE replay_of = '{original}'"
        )),
        2
    );

    // A duplicate is not replayed (the event it repeats is): its actions would run a
    // third time.
    let repeat = post(&url, &body, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(repeat.status, StatusCode::OK);
    let duplicate_id: String = ws
        .db_conn()
        .query_row(
            "SELECT id FROM events WHERE status = 'duplicate'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let refused = admin_post(
        &base,
        &format!("/admin/events/{duplicate_id}/replay"),
        json!(null),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{:?}", refused.body);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "it is a duplicate of event {original}; replay that event instead"
            )),
        "{:?}",
        refused.body
    );

    // A rejected event is not replayed; an unknown one is named.
    let rejected = post(&url, &body, &[("x-webhook-secret", "wrong")]).await;
    assert_eq!(rejected.status, StatusCode::UNAUTHORIZED);
    let rejected_id: String = ws
        .db_conn()
        .query_row("SELECT id FROM events WHERE status = 'rejected'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let refused = admin_post(
        &base,
        &format!("/admin/events/{rejected_id}/replay"),
        json!(null),
    )
    .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error"]["code"], "not_replayable");
    let (code, _, err) = run_inlet(&["replay", "no-such-event", "--server", &base]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404 not_found: no event `no-such-event`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_rotated_token_works_until_its_overlap_ends_then_answers_404() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let old = server.url("task-app", "development").unwrap().to_string();
    let body = sample("task-assigned.json");

    let (code, out, err) = run_inlet(&[
        "token",
        "rotate",
        "--source",
        "task-app",
        "--env",
        "development",
        "--overlap",
        "2s",
        "--server",
        &base,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let new = out
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("New webhook URL of task-app/development: "))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert_ne!(new, old);
    assert!(
        out.contains(&format!("the old URL {old} works until")),
        "{out}"
    );

    // Both work during the overlap, and `inlet urls` lists both.
    let via_old = post(&old, &body, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(via_old.status, StatusCode::ACCEPTED, "{:?}", via_old.body);
    let via_new = post(
        &new,
        &body.replace("0001", "0002"),
        &[("x-webhook-secret", SECRET)],
    )
    .await;
    assert_eq!(via_new.status, StatusCode::ACCEPTED, "{:?}", via_new.body);
    let (code, urls, _) = run_inlet(&["urls", "--base-url", &base, "--source", "task-app"]).await;
    assert_eq!(code, 0);
    // The current URL first, the retiring one after it, marked.
    let lines: Vec<&str> = urls.lines().collect();
    assert!(lines[0].ends_with(&new), "{urls}");
    assert!(
        lines[1].contains(&format!("{old}  (retiring: works until ")),
        "{urls}"
    );
    // `--quiet` is the one URL a script can use (`--server`, as the other commands
    // name the running server).
    let (code, quiet, _) = run_inlet(&[
        "urls",
        "--server",
        &base,
        "--source",
        "task-app",
        "--env",
        "development",
        "--quiet",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(quiet.trim(), new, "{quiet}");

    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let late = post(
        &old,
        &body.replace("0001", "0003"),
        &[("x-webhook-secret", SECRET)],
    )
    .await;
    assert_eq!(late.status, StatusCode::NOT_FOUND, "{:?}", late.body);
    assert_eq!(late.body["error"]["code"], "unknown_token");
    let (_, urls, _) = run_inlet(&["urls", "--base-url", &base, "--source", "task-app"]).await;
    assert!(!urls.contains(&old), "{urls}");
    assert!(urls.contains(&new), "{urls}");

    // Through the admin API, with no overlap: the previous URL stops at once, and the
    // server keeps the new one after a restart.
    let rotated = admin_post(
        &base,
        "/admin/sources/task-app/tokens/rotate?env=development&overlap=0s",
        json!(null),
    )
    .await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    let newest = rotated.body["url"].as_str().unwrap().to_string();
    let refused = post(&new, &body, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    let bad = admin_post(
        &base,
        "/admin/sources/task-app/tokens/rotate?env=development&overlap=soon",
        json!(null),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    server.shutdown().await.unwrap();
    let restarted = ws.start().await;
    let token = |url: &str| url.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        token(restarted.url("task-app", "development").unwrap()),
        token(&newest)
    );

    // Without a running server: rotated in the database file.
    restarted.shutdown().await.unwrap();
    let (code, out, err) = run_inlet(&[
        "token",
        "rotate",
        "--source",
        "task-app",
        "--db",
        ws.db().to_str().unwrap(),
        "--server",
        "http://127.0.0.1:9",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rotated in"), "{out}");
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM tokens WHERE source = 'task-app' AND retires_at_ms IS NULL"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_since_a_time_back_from_now() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let sent = post_sample(&url, "task-assigned.json").await;
    let id = sent.body["event_id"].as_str().unwrap().to_string();
    for since in ["1h", "2d", "90m"] {
        let (code, out, err) = run_inlet(&["logs", "--since", since, "--server", &base]).await;
        assert_eq!(code, 0, "{since}: {err}");
        assert!(out.contains(&id), "{since}: {out}");
    }
    // Since now: nothing.
    let (code, out, _) = run_inlet(&["logs", "--since", "0s", "--server", &base, "--json"]).await;
    assert_eq!(code, 0);
    assert!(!out.contains(&id), "{out}");
    let (code, _, err) = run_inlet(&["logs", "--since", "yesterday", "--server", &base]).await;
    assert_ne!(code, 0);
    assert!(err.contains("a time back from now (90m, 1h, 2d)"), "{err}");
    server.shutdown().await.unwrap();
}

/// `inlet send --sign hmac` signs the way the example task-app script checks
/// (`x-webhook-signature: sha256=<hex>`), with the secret from the vars file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_signs_with_the_generic_hmac_the_example_source_checks() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let vars = ws.dir.path().join("vars.json");
    let sample = repo_root().join("events/task-assigned.json");
    let (code, out, err) = run_inlet(&[
        "send",
        sample.to_str().unwrap(),
        "--source",
        "task-app",
        "--sign",
        "hmac",
        "--secret-var",
        "TASK_APP_SECRET",
        "--vars",
        vars.to_str().unwrap(),
        "--server",
        &base,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("202"), "{out}");
    server.shutdown().await.unwrap();
}

/// `inlet logs` shows each event's actions (ran of all, and any failed or waiting), in
/// the table and as `action_counts` in `--json`; `inlet event`'s first line too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_each_event_s_action_counts() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let sent = post_sample(&url, "task-assigned.json").await;
    let id = sent.body["event_id"].as_str().unwrap().to_string();
    wait_for_count(
        &ws,
        "SELECT COUNT(*) FROM actions WHERE status = 'succeeded'",
        1,
    )
    .await;
    let (code, table, err) = run_inlet(&["logs", "--server", &base]).await;
    assert_eq!(code, 0, "{err}");
    let line = table.lines().find(|l| l.contains(&id)).unwrap();
    let at = table.lines().next().unwrap().find("ACTIONS").unwrap();
    assert_eq!(&line[at..at + 4], "1/1 ", "{table}");
    let (_, json_lines, _) = run_inlet(&["logs", "--server", &base, "--json"]).await;
    let listed: Value = serde_json::from_str(json_lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        listed["action_counts"],
        json!({"planned": 0, "succeeded": 1, "failed": 0, "skipped": 0})
    );
    let (_, shown, _) = run_inlet(&["event", &id, "--server", &base]).await;
    let first = shown.lines().next().unwrap();
    assert!(first.contains(" 1/1 "), "{shown}");
    server.shutdown().await.unwrap();
}
