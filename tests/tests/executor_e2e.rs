//! Actions that really happen: the dev server's worker runs each accepted event's plan,
//! seen through the admin API and the `inlet` binary, including a SIGKILL between the
//! 202 and the actions.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CRM: &str = r#"
key: crm
name: CRM
environments:
  development:
    event_type_path: type
    mappings:
      customer.created:
        # Listed before the identify on purpose: the identify must still run first.
        - action: workflows_trigger
          params:
            key: { value: welcome }
            recipients: data.id
        - action: users_identify
          params:
            id: data.id
            email: data.email
        - action: objects_set
          params:
            collection: data.company.collection
            id: data.company.id
"#;

#[tokio::test]
async fn the_worked_example_runs_end_to_end() {
    let ws = Workspace::new();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let accepted = post_sample(&url, "task-assigned.json").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let id = accepted.body["event_id"].as_str().unwrap();

    let detail = settled(&base, id).await;
    assert_eq!(detail["actions"][0]["status"], "succeeded", "{detail}");
    assert_eq!(detail["actions"][0]["attempts"], 1);
    assert_eq!(detail["outbox"]["state"], "done");
    let run_id = detail["actions"][0]["result"]["workflow_run_id"]
        .as_str()
        .unwrap();

    let runs = get(&format!(
        "{base}/admin/directory/workflow-runs?key=task-assigned"
    ))
    .await
    .body;
    let run = &runs["workflow_runs"][0];
    assert_eq!(run["id"], run_id);
    assert_eq!(run["recipients"], json!(["user_456"]));
    assert_eq!(run["actor"], "user_789");
    assert_eq!(
        run["data"],
        json!({"task_id": "task_123", "title": "Write the launch announcement"})
    );
    assert_eq!(run["status"], "triggered");
    assert_eq!(
        get(&format!("{base}/admin/directory/workflow-runs/{run_id}"))
            .await
            .body["event_id"],
        id
    );

    let sources = get(&format!("{base}/admin/sources")).await.body;
    assert_eq!(
        sources["sources"][0]["environments"][0]["urls"][0],
        url.as_str()
    );
    let types = get(&format!("{base}/admin/sources/task-app/event-types"))
        .await
        .body;
    assert_eq!(types["event_types"][0]["event_type"], "task.assigned");
    let page = get(&format!(
        "{base}/admin/events?source=task-app&status=accepted&limit=5"
    ))
    .await
    .body;
    assert_eq!(page["events"][0]["id"], id);

    let bad = get(&format!("{base}/admin/events?status=great")).await;
    assert_eq!(
        (bad.status.as_u16(), bad.body["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let missing = get(&format!("{base}/admin/events/nope")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn identify_runs_before_trigger_and_a_skipped_action_spares_the_rest() {
    let ws = Workspace::new();
    std::fs::write(ws.sources().join("crm.yaml"), CRM).unwrap();
    let server = ws.start().await;
    let base = format!("http://{}", server.addr);
    let url = server.url("crm", "development").unwrap().to_string();
    let body =
        json!({"type": "customer.created", "data": {"id": "cus_1", "email": "c@x.io"}}).to_string();
    let accepted = post(&url, &body, &[]).await;
    assert_eq!(accepted.body["actions"], 2, "{:?}", accepted.body);
    let detail = settled(&base, accepted.body["event_id"].as_str().unwrap()).await;
    let actions = detail["actions"].as_array().unwrap();
    let order: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| (a["action"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        order,
        vec![
            ("users_identify", "succeeded"),
            ("objects_set", "skipped"),
            ("workflows_trigger", "succeeded")
        ]
    );
    assert_eq!(
        actions[1]["error"],
        "required param `collection` did not resolve (path `data.company.collection`); required param `id` did not resolve (path `data.company.id`)"
    );
    // The user existed when the trigger ran: identify went first.
    assert!(
        actions[2]["result"].get("unknown_recipients").is_none(),
        "{}",
        actions[2]
    );
    assert!(actions[0]["updated_at_ms"].as_i64() <= actions[2]["updated_at_ms"].as_i64());
    let user = get(&format!("{base}/admin/directory/users/cus_1"))
        .await
        .body;
    // Knock's shape: the fields at the top level.
    assert_eq!(user["email"], "c@x.io", "{user}");
    assert_eq!(user["id"], "cus_1");
    assert!(user.get("properties").is_none(), "{user}");
    assert_eq!(detail["outbox"]["state"], "done");

    // An object's subscriptions: an empty list for an object that exists, 404 (like the
    // object itself) for one that does not.
    let body = json!({"type": "customer.created",
                      "data": {"id": "cus_2", "company": {"collection": "companies", "id": "acme"}}})
    .to_string();
    let accepted = post(&url, &body, &[]).await;
    settled(&base, accepted.body["event_id"].as_str().unwrap()).await;
    let existing = get(&format!(
        "{base}/admin/directory/objects/companies/acme/subscriptions"
    ))
    .await;
    assert_eq!(existing.status, StatusCode::OK, "{}", existing.body);
    assert_eq!(existing.body["subscriptions"], json!([]));
    let missing = get(&format!(
        "{base}/admin/directory/objects/companies/nope/subscriptions"
    ))
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failing_target_is_retried_then_the_action_fails_and_the_outbox_row_dies() {
    let ws = Workspace::new();
    // Nothing listens on this port: every delivery fails, retryably.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = ws
        .start_with_targets(&format!(
            "workflows:\n  task-assigned: {{ url: http://127.0.0.1:{port}/runs }}\n"
        ))
        .await;
    let base = format!("http://{}", server.addr);
    let url = server.url("task-app", "development").unwrap().to_string();
    let accepted = post_sample(&url, "task-assigned.json").await;
    let detail = settled(&base, accepted.body["event_id"].as_str().unwrap()).await;
    let action = &detail["actions"][0];
    assert_eq!(action["status"], "failed");
    assert_eq!(action["attempts"], 3);
    assert!(
        action["error"]
            .as_str()
            .unwrap()
            .contains("POST http://127.0.0.1"),
        "{action}"
    );
    assert_eq!(detail["outbox"]["state"], "dead");
    assert!(
        detail["outbox"]["last_error"]
            .as_str()
            .unwrap()
            .contains("workflows_trigger")
    );
    // The run itself was recorded once, on the first attempt; retries did not add more.
    let runs = get(&format!(
        "{base}/admin/directory/workflow-runs?key=task-assigned"
    ))
    .await
    .body;
    assert_eq!(runs["workflow_runs"].as_array().unwrap().len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn sigkill_after_the_202_loses_nothing_and_runs_every_action_once() {
    let binary = inlet_binary();
    let ws = Workspace::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    // First life: accepts, acknowledges, and is killed before any action runs.
    let mut first = spawn_dev(&binary, &ws, port, &["--pause-actions"]);
    let accepted = post_sample(&first.url, "task-assigned.json").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let id = accepted.body["event_id"].as_str().unwrap().to_string();
    let first_url = first.url.clone();
    first.child.kill().unwrap(); // SIGKILL
    first.child.wait().unwrap();
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"),
        1
    );
    assert_eq!(ws.count("SELECT COUNT(*) FROM workflow_runs"), 0);

    // Second life: resumes the outbox.
    let mut second = spawn_dev(&binary, &ws, port, &[]);
    assert_eq!(second.url, first_url, "same token after a crash");
    let detail = settled(&second.base, &id).await;
    assert_eq!(detail["actions"][0]["status"], "succeeded");
    assert_eq!(detail["actions"][0]["attempts"], 1);
    assert_eq!(ws.count("SELECT COUNT(*) FROM workflow_runs"), 1);
    assert_eq!(ws.count("SELECT COUNT(*) FROM applied_actions"), 1);

    // The action worker runs at a lower CPU priority than the threads that answer
    // senders, so under saturation acknowledging webhooks wins.
    let pid = second.child.id();
    let actions = thread_nice_values(pid, "inlet-actions");
    let serving = thread_nice_values(pid, "tokio-rt-worker");
    assert_eq!(actions, [10], "the worker's thread");
    assert!(
        !serving.is_empty() && serving.iter().all(|nice| *nice == 0),
        "{serving:?}"
    );

    // The CLI sees it through the admin API.
    let shown = Command::new(&binary)
        .args(["event", &id, "--server", &second.base])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        text.contains("workflows_trigger") && text.contains("succeeded"),
        "{text}"
    );
    assert!(
        text.contains("outbox  done, plan re-run 0 time(s)"),
        "{text}"
    );
    // The plan is shown once: as the action log beside the event, not inside it.
    assert!(detail["event"].get("actions").is_none(), "{detail}");
    assert!(text.contains(&id));
    let logs = Command::new(&binary)
        .args(["logs", "--server", &second.base, "--json"])
        .output()
        .unwrap();
    let line: Value = serde_json::from_slice(logs.stdout.split(|b| *b == b'\n').next().unwrap())
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&logs.stderr)));
    assert_eq!(line["id"], id.as_str());
    let unreachable = Command::new(&binary)
        .args(["logs", "--server", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("is `inlet dev` running?"));

    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// The nice values of a process's threads with this name (from `/proc`).
fn thread_nice_values(pid: u32, name: &str) -> Vec<i64> {
    let mut found = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(task.join("comm")) else {
            continue;
        };
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        // The fields after the parenthesised name start at field 3 (state); nice is 19.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        found.push(after_name.split(' ').nth(16).unwrap().parse().unwrap());
    }
    found
}

/// A local HTTPS server with a certificate from a test CA: records each body it gets.
async fn tls_target(dir: &std::path::Path) -> (u16, std::path::PathBuf, Arc<Mutex<Vec<Value>>>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Inlet test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let body = axum::body::to_bytes(
                                axum::body::Body::new(request.into_body()),
                                1 << 20,
                            )
                            .await
                            .unwrap();
                            log.lock()
                                .unwrap()
                                .push(serde_json::from_slice(&body).unwrap());
                            let mut response =
                                hyper::Response::new(axum::body::Body::from(r#"{"ok":true}"#));
                            response
                                .headers_mut()
                                .insert("content-type", "application/json".parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (port, ca_file, seen)
}

/// Workflow runs are delivered to `https://` targets (rustls, with the system's roots,
/// which `SSL_CERT_FILE` extends): here a local server with a test CA's certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_delivered_to_https_targets() {
    let binary = inlet_binary();
    let ws = Workspace::new();
    let (tls_port, ca_file, seen) = tls_target(ws.dir.path()).await;
    let targets = ws.dir.path().join("targets.yaml");
    std::fs::write(
        &targets,
        format!("workflows:\n  task-assigned: {{ url: https://localhost:{tls_port}/runs }}\n"),
    )
    .unwrap();
    let mut server = spawn_dev_with_env(
        &binary,
        &ws,
        free_port(),
        &["--targets", targets.to_str().unwrap()],
        &[("SSL_CERT_FILE", ca_file.to_str().unwrap())],
    );
    let accepted = post_sample(&server.url, "task-assigned.json").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let id = accepted.body["event_id"].as_str().unwrap().to_string();
    let detail = settled(&server.base, &id).await;
    let action = &detail["actions"][0];
    assert_eq!(action["status"], "succeeded", "{action}");
    assert_eq!(
        action["result"]["delivery"],
        json!({"status": 200, "body": {"ok": true}})
    );
    assert_eq!(seen.lock().unwrap()[0]["id"], format!("wr_{id}_0"));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Sets the mode of a file (and leaves everything else).
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Started while its database file is read-only, `inlet dev` answers 503 (nothing is
/// lost: the sender retries) and `/healthz` says the store cannot be written; once the
/// file's permissions are restored, both recover without a restart. As root, the server
/// runs as `nobody`, since root writes read-only files regardless.
#[tokio::test]
async fn a_read_only_database_is_reported_and_recovered_from() {
    use std::os::unix::fs::MetadataExt;
    let binary = inlet_binary();
    let ws = Workspace::new();
    let port = free_port();
    // A first life creates the file and the tokens.
    let mut first = spawn_dev(&binary, &ws, port, &[]);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let user = root.then_some(65534);
    if let Some(uid) = user {
        for entry in walk(ws.dir.path()) {
            std::os::unix::fs::chown(&entry, Some(uid), Some(uid)).unwrap();
        }
    }
    chmod(&ws.db(), 0o444);

    let mut server = spawn_dev_as(&binary, &ws, port, user);
    let body = sample("task-assigned.json");
    let refused = post(&server.url, &body, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    let health = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.body["error"]["code"], "store_unavailable");

    chmod(&ws.db(), 0o644);
    let accepted = post(&server.url, &body, &[("x-webhook-secret", SECRET)]).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.body);
    let health = get(&format!("{}/healthz", server.base)).await;
    assert_eq!(health.status, StatusCode::OK, "{:?}", health.body);
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}

/// Every file and directory under `dir`, `dir` included.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            all.extend(walk(&entry.unwrap().path()));
        }
    }
    all
}

/// A server taking many events a second writes at most 50 of their log lines a second
/// and says how many it left out, so the terminal stays readable (and the lines cost no
/// CPU) at thousands a second; every event is still accepted and listed.
#[tokio::test]
async fn a_busy_server_logs_at_most_50_event_lines_a_second_and_counts_the_rest() {
    let binary = inlet_binary();
    let ws = Workspace::new();
    let log = ws.dir.path().join("dev.log");
    let port = free_port();
    let mut server = spawn_dev_logging_to(&binary, &ws, port, &log);
    let client = reqwest::Client::new();
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..300 {
        let (client, url) = (client.clone(), server.url.clone());
        sends.spawn(async move {
            let body = sample("task-assigned.json")
                .replace("evt_task_assigned_0001", &format!("evt-log-{i}"));
            client
                .post(url)
                .header("content-type", "application/json")
                .header("x-webhook-secret", SECRET)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        });
    }
    let started = std::time::Instant::now();
    let statuses = sends.join_all().await;
    let seconds = started.elapsed().as_secs() + 1;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
        "{statuses:?}"
    );
    // The summary comes within a second of the burst.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines = text
        .lines()
        .filter(|l| l.contains("event accepted"))
        .count() as u64;
    let left_out: u64 = text
        .lines()
        .filter(|l| l.contains("not logged one by one"))
        .map(|l| {
            let at = l.find("left_out=").expect(l) + "left_out=".len();
            l[at..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(
        lines <= 50 * (seconds + 1),
        "{lines} lines in {seconds} s:\n{text}"
    );
    assert_eq!(lines + left_out, 300, "{text}");
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM events WHERE status = 'accepted'"),
        300
    );
}
