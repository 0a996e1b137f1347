//! Rehearse, replay and token rotation on a stack in the emulator: through the admin
//! function's router (on the stack's tables, SSM vars and config table) and through the
//! `inlet` binary's `--aws-env`, with events sent to the ingest function's handler and
//! actions run by the actions function from the events table's stream.

mod common;

use axum::body::Body;
use common::aws::{SECRET, Stack, apigw_with, example_files, fresh_ingest, ingest_function};
use common::run_inlet;
use inlet_aws::ingest::IngestFunction;
use inlet_core::directory::Directory;
use inlet_core::store::{EventLog, EventStatus};
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

/// POSTs to the admin function's router on the stack.
async fn admin(stack: &Stack, path: &str, body: Value) -> (u16, Value) {
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    let router = inlet_admin::router(inlet_admin::on_aws::state(&stack.names, &clients));
    let request = axum::http::Request::post(path)
        .header("content-type", "application/json")
        .header("host", "api.example.com")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn send(function: &IngestFunction, token: &str, body: &str) -> (u16, Value) {
    let headers = [("x-webhook-secret".to_string(), SECRET.to_string())];
    let response = function
        .handle(apigw_with(token, body, &headers))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (
        status,
        serde_json::from_slice(response.body().as_ref()).unwrap(),
    )
}

/// The ingest function on `stack` with the example task-app source pushed under the
/// stack's environment; the source's tokens.
async fn task_app_ingest(stack: &Stack) -> (IngestFunction, Vec<String>) {
    let env = &stack.names.environment;
    let files: Vec<(String, String)> = example_files()
        .into_iter()
        .map(|(name, text)| (name, text.replace("  development:", &format!("  {env}:"))))
        .collect();
    ingest_function(stack, files, &["task-app"]).await
}

async fn stored_events(stack: &Stack) -> usize {
    common::aws::task_app_events(stack).await.len()
}

#[tokio::test]
async fn rehearse_replay_and_rotation_on_a_stack() {
    let mut stack = Stack::for_environment("ops").await;
    let env = stack.names.environment.clone();
    let (function, tokens) = task_app_ingest(&stack).await;
    let body = common::sample("task-assigned.json");
    let (status, accepted) = send(&function, &tokens[0], &body).await;
    assert_eq!(status, 202, "{accepted}");
    let original = accepted["event_id"].as_str().unwrap().to_string();
    stack.deliver().await;

    // Rehearse: the stored key makes it a duplicate; a new key would be accepted; the
    // event log is unchanged.
    let rehearse_path = format!("/admin/sources/task-app/rehearse?env={env}");
    let (status, dry) = admin(
        &stack,
        &rehearse_path,
        json!({"body": body, "headers": {"x-webhook-secret": SECRET}}),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["http_status"], 200);
    assert_eq!(dry["duplicate_of"], original.as_str());
    let (_, fresh) = admin(
        &stack,
        &rehearse_path,
        json!({"body": body.replace("0001", "0009"), "headers": {"x-webhook-secret": SECRET}}),
    )
    .await;
    assert_eq!(fresh["http_status"], 202, "{fresh}");
    assert_eq!(fresh["event"]["verification"], "enforced:verified");
    assert_eq!(
        fresh["event"]["actions"][0]["payload"]["key"],
        "task-assigned"
    );
    assert_eq!(stored_events(&stack).await, 1, "a rehearsal stores nothing");

    // Replay through the router: a new event pointing to the original, whose action
    // runs from the stream.
    let (status, replayed) = admin(
        &stack,
        &format!("/admin/events/{original}/replay"),
        json!(null),
    )
    .await;
    assert_eq!(status, 202, "{replayed}");
    let copy = replayed["event_id"].as_str().unwrap().to_string();
    let stored = stack.events.get(&copy).await.unwrap().unwrap();
    assert_eq!(stored.replay_of.as_deref(), Some(original.as_str()));
    assert_eq!(stored.status, EventStatus::Accepted);
    let batch = stack.deliver().await;
    assert_eq!(batch.records.len(), 1);
    assert!(
        stack
            .directory
            .workflow_run(&env, &format!("wr_{copy}_0"))
            .await
            .unwrap()
            .is_some(),
        "the replay's trigger ran"
    );
    let first = stack.events.get(&original).await.unwrap().unwrap();
    assert_eq!(first.replay_of, None);
    assert_eq!(first.status, EventStatus::Accepted);

    // The same through the command line.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body.replace("0001", "0010")).unwrap();
    let (code, out, err) = run_inlet(&[
        "rehearse",
        file.path().to_str().unwrap(),
        "--source",
        "task-app",
        "--env",
        &env,
        "-H",
        &format!("x-webhook-secret: {SECRET}"),
        "--aws-env",
        &env,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("would answer 202 accepted"), "{out}");
    let (code, out, err) = run_inlet(&["replay", &original, "--aws-env", &env]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(": accepted, 1 action(s) to run"), "{out}");
    assert_eq!(stored_events(&stack).await, 3);
    let (code, out, err) = run_inlet(&["event", &copy, "--aws-env", &env]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("replay of  {original}")), "{out}");

    // Rotation with an overlap: both URLs work, `inlet urls` shows both, then the old
    // one is refused.
    let (code, out, err) = run_inlet(&[
        "token",
        "rotate",
        "--source",
        "task-app",
        "--env",
        &env,
        "--overlap",
        "2s",
        "--aws-env",
        &env,
        "--base-url",
        "https://api.example.com/",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let new_url = out
        .lines()
        .next()
        .and_then(|l| l.split(": ").nth(1))
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    assert!(
        new_url.starts_with("https://api.example.com/receive/"),
        "{out}"
    );
    let new_token = new_url.rsplit('/').next().unwrap().to_string();
    assert!(out.contains(&tokens[0]), "the old URL is named: {out}");
    let (code, urls, _) = run_inlet(&["urls", "--aws-env", &env]).await;
    assert_eq!(code, 0);
    assert!(
        urls.contains(&format!("{}  (retires ", tokens[0])),
        "{urls}"
    );
    assert!(urls.contains(&new_token), "{urls}");

    let warm = fresh_ingest(&stack);
    let (status, _) = send(&warm, &tokens[0], &body.replace("0001", "0011")).await;
    assert_eq!(status, 202, "the old URL works during the overlap");
    let (status, _) = send(&warm, &new_token, &body.replace("0001", "0012")).await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (status, refused) = send(&warm, &tokens[0], &body.replace("0001", "0013")).await;
    assert_eq!(
        status, 404,
        "a cached token is refused once it retires: {refused}"
    );
    let (status, _) = send(&warm, &new_token, &body.replace("0001", "0014")).await;
    assert_eq!(status, 202);
    let (_, urls, _) = run_inlet(&["urls", "--aws-env", &env]).await;
    assert!(!urls.contains(&tokens[0]), "{urls}");

    // Through the router, with no overlap.
    let (status, rotated) = admin(
        &stack,
        &format!("/admin/sources/task-app/tokens/rotate?env={env}&overlap=0s"),
        json!(null),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert!(
        rotated["url"]
            .as_str()
            .unwrap()
            .starts_with("https://api.example.com/receive/")
    );
    let (status, _) = send(&fresh_ingest(&stack), &new_token, &body).await;
    assert_eq!(status, 404);
}

/// `inlet console --aws-env E` serves the stack's console on loopback: the sources with
/// the stack's webhook URLs (`--base-url`), its events, an event with the action log the
/// actions function wrote, its workflow runs; a non-loopback address is refused.
#[tokio::test]
async fn inlet_console_serves_a_stacks_pages_on_loopback() {
    let mut stack = Stack::for_environment("console").await;
    let env = stack.names.environment.clone();
    let (function, tokens) = task_app_ingest(&stack).await;
    let (status, accepted) =
        send(&function, &tokens[0], &common::sample("task-assigned.json")).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["event_id"].as_str().unwrap().to_string();
    stack.deliver().await;

    let (code, _, err) = run_inlet(&["console", "--aws-env", &env, "--addr", "0.0.0.0:0"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("listens on loopback only"), "{err}");

    let port = common::free_port();
    let mut console = tokio::process::Command::new(common::inlet_binary())
        .args([
            "console",
            "--aws-env",
            &env,
            "--addr",
            &format!("127.0.0.1:{port}"),
            "--base-url",
            "https://abc123.execute-api.us-east-1.amazonaws.com/",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = console.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let banner = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the console starts within 30 s")
        .unwrap()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(
        banner,
        format!("Console of stack `{env}` on {base}/console")
    );
    let get = |path: String| {
        let base = base.clone();
        async move {
            let response = reqwest::get(format!("{base}{path}")).await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    let (status, sources) = get("/console".into()).await;
    assert_eq!(status, 200);
    assert!(
        sources.contains(&format!(
            "https://abc123.execute-api.us-east-1.amazonaws.com/receive/{}",
            tokens[0]
        )),
        "{sources}"
    );
    let (_, events) = get("/console/events".into()).await;
    assert!(
        events.contains("data-refresh-ms=\"10000\""),
        "a stack's list refreshes every 10 s"
    );
    assert!(
        events.contains(&format!("href=\"/console/events/{id}\"")),
        "{events}"
    );
    let (status, event) = get(format!("/console/events/{id}")).await;
    assert_eq!(status, 200);
    assert!(
        event.contains("workflows_trigger") && event.contains("class=\"status succeeded\""),
        "the actions function's log: {event}"
    );
    let (status, asks) = get("/console/directory/workflow-runs".into()).await;
    assert_eq!(
        status, 200,
        "DynamoDB lists runs per workflow: the page asks for the key"
    );
    assert!(asks.contains("pass a workflow key"), "{asks}");
    let (_, runs) = get("/console/directory/workflow-runs?key=task-assigned".into()).await;
    assert!(runs.contains(&format!("wr_{id}_0")), "{runs}");
    let (status, missing) = get("/console/events/no-such-event".into()).await;
    assert_eq!(status, 404);
    assert!(
        missing.starts_with("<!DOCTYPE html>") && missing.contains("no event `no-such-event`"),
        "an error is a page, not JSON: {missing}"
    );
    let other_host = reqwest::Client::new()
        .get(format!("{base}/console"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap();
    assert_eq!(other_host.status(), 403, "only loopback names are served");
    console.kill().await.unwrap();
}
