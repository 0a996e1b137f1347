//! Helpers shared by the integration tests: a scratch copy of the example config, a
//! real dev server on port 0, HTTP helpers and SQLite queries.
#![allow(dead_code)]

pub mod aws;
pub mod faults;

use hmac::{Hmac, Mac};
use inlet::server::{self, DevOptions, DevServer};
use reqwest::StatusCode;
use rusqlite::Connection;
use serde_json::{Value, json};
use sha2::Sha256;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tempfile::TempDir;

pub const SECRET: &str = "integration-secret";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn sample(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("events").join(name)).unwrap()
}

/// A scratch copy of `infra/sources`, a vars file and a database path.
pub struct Workspace {
    pub dir: TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let sources = dir.path().join("sources");
        std::fs::create_dir(&sources).unwrap();
        for entry in std::fs::read_dir(repo_root().join("infra/sources")).unwrap() {
            let entry = entry.unwrap();
            if entry.path().is_file() {
                std::fs::copy(entry.path(), sources.join(entry.file_name())).unwrap();
            }
        }
        std::fs::write(
            dir.path().join("vars.json"),
            json!({ "TASK_APP_SECRET": SECRET }).to_string(),
        )
        .unwrap();
        Workspace { dir }
    }

    pub fn sources(&self) -> PathBuf {
        self.dir.path().join("sources")
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("store").join("inlet.db")
    }

    pub fn options(&self) -> DevOptions {
        let mut options = DevOptions::new(self.sources(), self.db());
        options.addr = "127.0.0.1:0".parse().unwrap();
        options.vars_file = Some(self.dir.path().join("vars.json"));
        options.busy_timeout = Duration::from_millis(300);
        options
    }

    pub async fn start(&self) -> DevServer {
        self.start_with(self.options()).await
    }

    /// The dev server with a targets file of this text (`--targets`).
    pub async fn start_with_targets(&self, targets: &str) -> DevServer {
        let file = self.dir.path().join("targets.yaml");
        std::fs::write(&file, targets).unwrap();
        let mut options = self.options();
        options.targets_file = Some(file);
        self.start_with(options).await
    }

    pub async fn start_with(&self, options: DevOptions) -> DevServer {
        server::start(options, std::future::pending())
            .await
            .unwrap()
    }

    pub fn db_conn(&self) -> Connection {
        Connection::open(self.db()).unwrap()
    }

    pub fn query_one(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Value {
        let conn = self.db_conn();
        let mut stmt = conn.prepare(sql).unwrap();
        let columns: Vec<String> = stmt.column_names().map(|c| c.to_string()).collect();
        stmt.query_row(params, |row| {
            let mut obj = serde_json::Map::new();
            for (i, name) in columns.iter().enumerate() {
                let v: rusqlite::types::Value = row.get(i)?;
                let v = match v {
                    rusqlite::types::Value::Null => Value::Null,
                    rusqlite::types::Value::Integer(n) => json!(n),
                    rusqlite::types::Value::Real(f) => json!(f),
                    rusqlite::types::Value::Text(t) => {
                        serde_json::from_str(&t).unwrap_or(Value::String(t))
                    }
                    rusqlite::types::Value::Blob(_) => Value::Null,
                };
                obj.insert(name.clone(), v);
            }
            Ok(Value::Object(obj))
        })
        .unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db_conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Asserts that this is a `status` answer with the error `code`, whose message
    /// says `says` (any message for "").
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str, says: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body["error"]["code"].as_str()),
            (status, Some(code)),
            "{}",
            self.body
        );
        let message = self.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
}

/// POSTs the sample `name` (a file of `events/`) to `url` with the source's secret
/// ([`SECRET`]), as the task-app source expects it.
pub async fn post_sample(url: &str, name: &str) -> Answer {
    post(url, &sample(name), &[("x-webhook-secret", SECRET)]).await
}

pub async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = reqwest::Client::new().post(url).body(body.to_string());
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    answer(request.send().await.unwrap()).await
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

pub fn signed(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Polls `sql` (a count) on the workspace's database until it reaches `want`, for at
/// most 10 s.
pub async fn wait_for_count(ws: &Workspace, sql: &str, want: i64) {
    for _ in 0..200 {
        if ws.count(sql) == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ws.count(sql), want, "{sql}");
}

/// Runs the `inlet` binary with `args` without blocking the runtime a test's dev server
/// runs on: exit code, stdout, stderr.
pub async fn run_inlet(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(inlet_binary())
        .args(args)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The `inlet` binary, which `tests/run` builds before the tests (building it from
/// inside a test would fight the test build over the target directory).
pub fn inlet_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("inlet");
    assert!(
        binary.exists(),
        "{} is missing: run tests/run, or `cargo build -p inlet --bin inlet` first",
        binary.display()
    );
    binary
}

/// Fails (rather than skips) when the AWS emulator is not there: those tests are part
/// of the suite, and `tests/run` starts it.
pub fn require_emulator() -> String {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS_ENDPOINT_URL is not set: run the suite with tests/run, which starts the AWS emulator",
    )
}

/// `prefix` plus a suffix no other test, nor an earlier run against the same emulator,
/// uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

/// `inlet dev` running as its own process (so a test can SIGKILL it).
pub struct Process {
    pub child: Child,
    pub base: String,
    /// The task-app development webhook URL it printed.
    pub url: String,
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `inlet dev` on the workspace and waits for its webhook URL.
pub fn spawn_dev(binary: &Path, ws: &Workspace, port: u16, extra: &[&str]) -> Process {
    spawn_dev_with_env(binary, ws, port, extra, &[])
}

/// [`spawn_dev`] with its log (stderr) written to `log`.
pub fn spawn_dev_logging_to(binary: &Path, ws: &Workspace, port: u16, log: &Path) -> Process {
    let file = std::fs::File::create(log).unwrap();
    start_dev_logging(Command::new(binary), ws, port, &[], file.into())
}

/// Starts `command` as `inlet dev`, its log discarded.
fn start_dev(command: Command, ws: &Workspace, port: u16, extra: &[&str]) -> Process {
    start_dev_logging(command, ws, port, extra, Stdio::null())
}

/// [`spawn_dev`] as another user (`Some(uid)`; needs root), or as this one.
pub fn spawn_dev_as(binary: &Path, ws: &Workspace, port: u16, uid: Option<u32>) -> Process {
    let mut command = Command::new(binary);
    if let Some(uid) = uid {
        use std::os::unix::process::CommandExt;
        command.uid(uid).gid(uid);
    }
    start_dev(command, ws, port, &[])
}

/// [`spawn_dev`] with environment variables set for the process.
pub fn spawn_dev_with_env(
    binary: &Path,
    ws: &Workspace,
    port: u16,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Process {
    let mut command = Command::new(binary);
    command.envs(env.iter().copied());
    start_dev(command, ws, port, extra)
}

/// Starts `command` as `inlet dev`, its log (stderr) going to `log`.
fn start_dev_logging(
    mut command: Command,
    ws: &Workspace,
    port: u16,
    extra: &[&str],
    log: Stdio,
) -> Process {
    let mut child = command
        .arg("dev")
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(["--sources", ws.sources().to_str().unwrap()])
        .args(["--db", ws.db().to_str().unwrap()])
        .args(["--vars", ws.dir.path().join("vars.json").to_str().unwrap()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("inlet dev printed no URL").unwrap();
        if line.trim_start().starts_with("task-app/development") {
            break line.split_whitespace().last().unwrap().to_string();
        }
    };
    // Keep reading, so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Process {
        child,
        base: format!("http://127.0.0.1:{port}"),
        url,
    }
}

/// A source whose script answers with the `http_response` that `body.kind` names,
/// including ones that would break HTTP framing (its files: YAML, then the script).
pub fn http_response_source() -> [(String, String); 2] {
    [
        (
            "hooks.yaml".into(),
            "key: hooks\nname: Hooks\nenvironments:\n  development:\n    script: hooks.rhai\n    enforce_verification: true\n    event_type_path: body.type\n".into(),
        ),
        (
            "hooks.rhai".into(),
            r#"fn main(ctx) {
    let which = ctx.body.kind;
    if which == "framing" {
        return #{ verified: true, http_response: #{ status: 200, body: "challenge-accepted",
            headers: #{ "Content-Length": "999", "transfer-encoding": "chunked", "connection": "close", "x-ok": "1" } } };
    }
    if which == "switch" { return #{ verified: true, http_response: #{ status: 101 } }; }
    if which == "empty" { return #{ verified: true, http_response: #{ status: 204, body: "x" } }; }
    if which == "crlf" { return #{ verified: true, http_response: #{ headers: #{ "x-a": "a\r\nb" } } }; }
    if which == "nocontent" { return #{ verified: true, http_response: #{ status: 204 } }; }
    #{ verified: true }
}
"#
            .into(),
        ),
    ]
}

/// The expanded template, translated now from `template.yaml`.
pub fn expanded_template() -> Value {
    let root = repo_root();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run tests/run, which creates .venv with SAM's translator",
        python.display()
    );
    let out = tempfile::NamedTempFile::new().unwrap();
    let status = std::process::Command::new(python)
        .current_dir(&root)
        .args(["tests/emulator/expand_sam.py", "template.yaml"])
        // The translator wants a region; nothing here depends on which.
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "expand_sam.py failed");
    serde_json::from_slice(&std::fs::read(out.path()).unwrap()).unwrap()
}

pub async fn get(url: &str) -> Answer {
    answer(reqwest::get(url).await.unwrap()).await
}

/// Polls the admin API until every action of `event_id` has left `planned` and its
/// outbox row is settled (the worker closes the row just after the last action).
pub async fn settled(base: &str, event_id: &str) -> Value {
    for _ in 0..200 {
        let body = get(&format!("{base}/admin/events/{event_id}")).await.body;
        let actions = body["actions"].as_array().cloned().unwrap_or_default();
        let outbox_settled = body["outbox"].is_null() || body["outbox"]["state"] != "pending";
        if !actions.is_empty() && actions.iter().all(|a| a["status"] != "planned") && outbox_settled
        {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("actions of {event_id} never finished");
}

/// A finished command's success and everything it printed (stdout, then stderr).
pub fn said(output: std::process::Output) -> (bool, String) {
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &*String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}
