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
//! trips in these times are real ones, to a local emulator (a few ms each). The
//! function reaches the emulator through a pass-through here that times every request,
//! so the report gives the round trips (count and time) apart from the function's own
//! time. The function's stdout and stderr (what Lambda sends to CloudWatch Logs) are
//! counted per phase: the bytes an invocation logs are what the cost model prices.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use inlet_aws::StackNames;
use inlet_aws::config_table::{ConfigTable, StoredToken};
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use serde_json::{Value, json};
use std::io::Read;
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
    /// Emulator round trips during init and during the invocation: (count, time).
    init_trips: (usize, Duration),
    invocation_trips: (usize, Duration),
    /// Log bytes written during the invocation.
    invocation_log_bytes: usize,
    peak_rss_kb: u64,
    answer: Value,
}

/// A pass-through to the emulator that times each request.
struct Recorder {
    upstream: String,
    client: reqwest::Client,
    calls: Mutex<Vec<(Instant, Duration)>>,
}

impl Recorder {
    /// Round trips that started in `[from, to)`: count and summed time.
    fn within(&self, from: Instant, to: Instant) -> (usize, Duration) {
        let calls = self.calls.lock().unwrap();
        let inside: Vec<&(Instant, Duration)> = calls
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .collect();
        (inside.len(), inside.iter().map(|(_, d)| *d).sum())
    }
}

async fn forward(
    State(recorder): State<Arc<Recorder>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let started = Instant::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = recorder
        .client
        .request(method, format!("{}{path}", recorder.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = request.send().await.unwrap();
    let status = answer.status();
    let answer_headers = answer.headers().clone();
    let bytes = answer.bytes().await.unwrap();
    recorder
        .calls
        .lock()
        .unwrap()
        .push((started, started.elapsed()));
    let mut response = axum::response::Response::new(axum::body::Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &answer_headers {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// Starts the pass-through; answers its address.
async fn recorder(upstream: &str) -> (String, Arc<Recorder>) {
    let recorder = Arc::new(Recorder {
        upstream: upstream.trim_end_matches('/').to_string(),
        client: reqwest::Client::new(),
        calls: Mutex::default(),
    });
    let app = Router::new().fallback(forward).with_state(recorder.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), recorder)
}

/// Counts what a stream of the child writes, with the time of each read.
fn count_output(mut stream: impl Read + Send + 'static) -> Arc<Mutex<Vec<(Instant, usize)>>> {
    let chunks = Arc::new(Mutex::new(Vec::new()));
    let sink = chunks.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok(n) = stream.read(&mut buffer) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().push((Instant::now(), n));
        }
    });
    chunks
}

async fn measure(binary: &std::path::Path, names: &StackNames, event: Value) -> Measured {
    let emulator = std::env::var("AWS_ENDPOINT_URL").unwrap();
    let (endpoint, trips) = recorder(&emulator).await;
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
        .env("AWS_ENDPOINT_URL", &endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    let stdout = count_output(child.stdout.take().unwrap());
    let stderr = count_output(child.stderr.take().unwrap());
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
    // Lines still on their way to the pipe (a logging thread) get a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    server.abort();
    let seen = api.seen.lock().unwrap();
    if let Some(failed) = &seen.failed {
        panic!("{} reported an error: {failed}", binary.display());
    }
    let (responded, answer) = seen.responded.clone().unwrap();
    let (first_next, handed_out) = (seen.first_next.unwrap(), seen.handed_out.unwrap());
    let invocation_log_bytes = [stdout, stderr]
        .iter()
        .flat_map(|chunks| chunks.lock().unwrap().clone())
        .filter(|(at, _)| *at >= handed_out)
        .map(|(_, n)| n)
        .sum();
    Measured {
        init: first_next - started,
        first_invocation: responded - handed_out,
        init_trips: trips.within(started, first_next),
        invocation_trips: trips.within(handed_out, responded),
        invocation_log_bytes,
        peak_rss_kb,
        answer,
    }
}

/// One function's figures (medians over the runs; round-trip counts are the most seen).
struct Row {
    function: &'static str,
    init: Duration,
    first: Duration,
    init_trips: (usize, Duration),
    call_trips: (usize, Duration),
    log_bytes: usize,
    rss: u64,
    size: u64,
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
        let (mut init_trips, mut call_trips, mut logs) = (Vec::new(), Vec::new(), Vec::new());
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
            init_trips.push(measured.init_trips);
            call_trips.push(measured.invocation_trips);
            logs.push(measured.invocation_log_bytes);
            rss = rss.max(measured.peak_rss_kb);
        }
        let size = std::fs::metadata(release.join(function))
            .map(|m| m.len())
            .unwrap_or(0);
        let trips = |all: &[(usize, Duration)]| {
            (
                all.iter().map(|t| t.0).max().unwrap_or(0),
                median(all.iter().map(|t| t.1).collect()),
            )
        };
        logs.sort();
        rows.push(Row {
            function,
            init: median(inits),
            first: median(firsts),
            init_trips: trips(&init_trips),
            call_trips: trips(&call_trips),
            log_bytes: logs[logs.len() / 2],
            rss,
            size,
        });
    }
    println!(
        "| function | init (median of {runs}) | of which emulator round trips | first invocation | of which emulator round trips | own time (init / invocation) | log bytes per invocation | peak RSS | binary (x86_64) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for r in rows {
        println!(
            "| {} | {:.1} ms | {} in {:.1} ms | {:.1} ms | {} in {:.1} ms | {:.1} / {:.1} ms | {} B | {:.1} MB | {:.1} MB |",
            r.function,
            ms(r.init),
            r.init_trips.0,
            ms(r.init_trips.1),
            ms(r.first),
            r.call_trips.0,
            ms(r.call_trips.1),
            ms(r.init.saturating_sub(r.init_trips.1)),
            ms(r.first.saturating_sub(r.call_trips.1)),
            r.log_bytes,
            r.rss as f64 / 1024.0,
            r.size as f64 / 1_048_576.0
        );
    }
}
