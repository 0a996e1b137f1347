//! Lambda init and first-invocation times of the three functions' release binaries,
//! run by `tests/lambda/init-time` (by hand, not in CI).
//!
//! A stand-in for the Lambda Runtime API (the HTTP interface a custom runtime polls)
//! serves one invocation: the binary is started as Lambda starts it
//! (`AWS_LAMBDA_RUNTIME_API` and the function's environment), and the harness notes the
//! time from process start to its first `GET /runtime/invocation/next` (init: clients
//! built, config and vars loaded) and from handing it the event to its posted response
//! (the first invocation), then its peak RSS. The stack's tables live in the emulator
//! (`AWS_ENDPOINT_URL`) with the example config pushed, so the DynamoDB and SSM round
//! trips in these times are real ones, to a local emulator (a few ms each).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use inlet_aws::StackNames;
use inlet_aws::config_table::{ConfigTable, StoredToken};
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// What the stand-in saw.
#[derive(Default)]
struct Seen {
    first_next: Option<Instant>,
    handed_out: Option<Instant>,
    responded: Option<(Instant, Value)>,
    failed: Option<String>,
}

struct RuntimeApi {
    event: Value,
    seen: Mutex<Seen>,
    done: Notify,
}

async fn next(State(api): State<Arc<RuntimeApi>>) -> (HeaderMap, String) {
    let first = {
        let mut seen = api.seen.lock().unwrap();
        let now = Instant::now();
        if seen.first_next.is_none() {
            seen.first_next = Some(now);
            seen.handed_out = Some(now);
            true
        } else {
            false
        }
    };
    if !first {
        // One invocation only: the harness stops the process.
        std::future::pending::<()>().await;
    }
    let mut headers = HeaderMap::new();
    headers.insert("lambda-runtime-aws-request-id", "req-1".parse().unwrap());
    let deadline = SystemClock.now_ms() + 10_000;
    headers.insert(
        "lambda-runtime-deadline-ms",
        deadline.to_string().parse().unwrap(),
    );
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:inlet-bench"
            .parse()
            .unwrap(),
    );
    headers.insert("lambda-runtime-trace-id", "Root=1-0-0".parse().unwrap());
    (headers, api.event.to_string())
}

async fn response(State(api): State<Arc<RuntimeApi>>, body: String) -> &'static str {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    api.seen.lock().unwrap().responded = Some((Instant::now(), value));
    api.done.notify_one();
    "{}"
}

async fn error(
    State(api): State<Arc<RuntimeApi>>,
    Path(_id): Path<String>,
    body: String,
) -> &'static str {
    api.seen.lock().unwrap().failed = Some(body);
    api.done.notify_one();
    "{}"
}

async fn init_error(State(api): State<Arc<RuntimeApi>>, body: String) -> &'static str {
    api.seen.lock().unwrap().failed = Some(format!("init: {body}"));
    api.done.notify_one();
    "{}"
}

struct Measured {
    init: Duration,
    first_invocation: Duration,
    peak_rss_kb: u64,
    answer: Value,
}

async fn measure(binary: &std::path::Path, names: &StackNames, event: Value) -> Measured {
    let api = Arc::new(RuntimeApi {
        event,
        seen: Mutex::default(),
        done: Notify::new(),
    });
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let started = Instant::now();
    let mut child = Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "inlet-bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/inlet-bench")
        .env("INLET_ENVIRONMENT", &names.environment)
        .env("INLET_IDEMPOTENCY_TABLE", &names.idempotency_table)
        .env("INLET_EVENTS_TABLE", &names.events_table)
        .env("INLET_CONFIG_TABLE", &names.config_table)
        .env("INLET_DIRECTORY_TABLE", &names.directory_table)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    tokio::time::timeout(Duration::from_secs(20), api.done.notified())
        .await
        .expect("the function neither answered nor failed within 20 s");
    let peak_rss_kb = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse().ok())
        })
        .unwrap_or(0);
    child.kill().unwrap();
    child.wait().unwrap();
    server.abort();
    let seen = api.seen.lock().unwrap();
    if let Some(failed) = &seen.failed {
        panic!("{} reported an error: {failed}", binary.display());
    }
    let (responded, answer) = seen.responded.clone().unwrap();
    Measured {
        init: seen.first_next.unwrap() - started,
        first_invocation: responded - seen.handed_out.unwrap(),
        peak_rss_kb,
        answer,
    }
}

fn sample(path: &str) -> Value {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    serde_json::from_str(&std::fs::read_to_string(root.join(path)).unwrap()).unwrap()
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    std::env::var("AWS_ENDPOINT_URL")
        .expect("AWS_ENDPOINT_URL: run through tests/lambda/init-time");
    let sdk = aws_config::load_from_env().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let unique = format!("init-{}", SystemClock.now_ms());
    let names = StackNames {
        environment: "development".into(),
        idempotency_table: format!("idem-{unique}"),
        events_table: format!("events-{unique}"),
        config_table: format!("config-{unique}"),
        directory_table: format!("directory-{unique}"),
    };
    inlet_aws::provision::create_tables(&dynamo, &names)
        .await
        .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = ConfigTable::new(
        dynamo.clone(),
        names.config_table.clone(),
        Arc::new(ScriptEngine::new(ScriptLimits::default())),
        clock.clone(),
    );
    let mut files = Vec::new();
    for entry in std::fs::read_dir(root.join("infra/sources")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            files.push((
                path.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    config.push_bundle(&files).await.unwrap();
    let token = inlet_core::store::new_webhook_token().unwrap();
    config
        .put_token(&StoredToken {
            token: token.clone(),
            source: "task-app".into(),
            environment: "development".into(),
            created_at_ms: clock.now_ms(),
            retires_at_ms: None,
        })
        .await
        .unwrap();
    let secret = "init-bench-secret";
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name("/inlet/development/vars/TASK_APP_SECRET")
        .value(secret)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let release = root.join("target/release");
    let mut rows = Vec::new();
    let mut committed: Option<String> = None;
    for function in ["ingest", "actions", "admin"] {
        let (mut inits, mut firsts, mut rss) = (Vec::new(), Vec::new(), 0);
        for run in 0..runs {
            let event = match function {
                "ingest" => {
                    let mut event = sample("events/apigw/task-assigned.json");
                    let path = format!("/receive/{token}");
                    event["rawPath"] = json!(path);
                    event["requestContext"]["http"]["path"] = json!(path);
                    event["pathParameters"]["token"] = json!(token);
                    event["headers"]["x-webhook-secret"] = json!(secret);
                    // A new event each run (the sample's idempotency key made unique).
                    let body = event["body"].as_str().unwrap().replace(
                        "\"event_id\": \"",
                        &format!("\"event_id\": \"init-{unique}-{run}-"),
                    );
                    event["headers"]["content-length"] = json!(body.len().to_string());
                    event["body"] = json!(body);
                    event
                }
                "actions" => {
                    let id = committed.as_deref().expect("ingest ran first");
                    let text =
                        std::fs::read_to_string(root.join("events/stream/event-committed.json"))
                            .unwrap()
                            .replace("REPLACE-WITH-A-COMMITTED-EVENT-ID", id);
                    serde_json::from_str(&text).unwrap()
                }
                _ => sample("events/apigw/admin-events.json"),
            };
            let measured = measure(&release.join(function), &names, event).await;
            if function == "ingest" {
                let body: Value =
                    serde_json::from_str(measured.answer["body"].as_str().unwrap_or("{}"))
                        .unwrap_or(Value::Null);
                assert_eq!(measured.answer["statusCode"], 202, "{}", measured.answer);
                committed = body["event_id"].as_str().map(str::to_string);
            }
            inits.push(measured.init);
            firsts.push(measured.first_invocation);
            rss = rss.max(measured.peak_rss_kb);
        }
        let size = std::fs::metadata(release.join(function))
            .map(|m| m.len())
            .unwrap_or(0);
        rows.push((function, median(inits), median(firsts), rss, size));
    }
    println!(
        "| function | init (median of {runs}) | first invocation | peak RSS | binary (x86_64, unstripped) |"
    );
    println!("|---|---|---|---|---|");
    for (function, init, first, rss, size) in rows {
        println!(
            "| {function} | {:.1} ms | {:.1} ms | {:.1} MB | {:.1} MB |",
            init.as_secs_f64() * 1000.0,
            first.as_secs_f64() * 1000.0,
            rss as f64 / 1024.0,
            size as f64 / 1_048_576.0
        );
    }
}
