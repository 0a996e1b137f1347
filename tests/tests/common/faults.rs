//! Faults between the AWS SDK and the emulator: what the network and AWS do that the
//! emulator never does on its own.
//!
//! [`Injector::http_client`] is the HTTP client an SDK config is built with. It sits
//! under the SDK's retry loop, so it sees every attempt the SDK makes (its own retries
//! included) as the real signed request, and passes each on to the emulator through
//! the SDK's default client — except the one it is armed for ([`Injector::arm`]: the
//! Nth request, counted from 0 over every client of the injector), which gets a
//! [`Fault`]:
//!
//! | fault | the request | what the SDK sees |
//! |---|---|---|
//! | `RefuseServerError` | not applied | 500 `InternalServerError` (retried) |
//! | `RefuseThrottled` | not applied | 400 `ProvisionedThroughputExceededException` (`ThrottlingException` on SSM, 429 on Lambda; a transaction is cancelled with reason `ThrottlingError`, as DynamoDB does) |
//! | `RefusePermanent` | not applied | 400 `ValidationException` (not retried) |
//! | `LoseAnswer` | applied | the connection closes before the answer (an I/O error, retried) |
//! | `AppliedThen500` | applied | 500 `InternalServerError` (retried) |
//! | `Crash` | applied | nothing: the process stops ([`Injector::crashed`] resolves; the test drops the function's future, and every later request of that process hangs) |
//! | `Hold` | applied | no answer until the client's attempt timeout cuts it (retried) |
//!
//! Each request is labelled with the function whose client sent it, and says what IAM
//! must allow for it, so that a test can hold the template's policies to every request
//! the functions make (the emulator checks no permission).
//!
//! A request can also be made to wait at a pause point ([`Injector::pause`]), before
//! it is sent or after it applied, so that two deliveries interleave at exactly chosen
//! steps.

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use serde_json::Value;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// What happens to the armed request (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    RefuseServerError,
    RefuseThrottled,
    RefusePermanent,
    LoseAnswer,
    AppliedThen500,
    Crash,
    Hold,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::RefuseServerError,
        Fault::RefuseThrottled,
        Fault::RefusePermanent,
        Fault::LoseAnswer,
        Fault::AppliedThen500,
        Fault::Crash,
        Fault::Hold,
    ];

    /// Whether the request reaches the emulator (and applies).
    pub fn applies(self) -> bool {
        !matches!(
            self,
            Fault::RefuseServerError | Fault::RefuseThrottled | Fault::RefusePermanent
        )
    }
}

/// One request as the injector saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// `dynamodb`, `ssm`, `lambda`, ...
    pub service: String,
    /// `PutItem`, `GetParameters`, `Invoke`, ...
    pub operation: String,
    /// The tables (or function) it names, each once.
    pub targets: Vec<String>,
    /// The items of a transaction (1 for other requests).
    pub items: usize,
    /// The client that sent it ([`Injector::http_client_for`]).
    pub client: &'static str,
    /// What IAM must allow for it: (action, table or function, index).
    pub iam: Vec<(String, String, Option<String>)>,
}

impl fmt::Display for Seen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.service, self.operation)?;
        if !self.targets.is_empty() {
            write!(f, "({})", self.targets.join(","))?;
        }
        Ok(())
    }
}

/// Where a paused request waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseAt {
    /// Before it is sent: nothing applied yet.
    Before,
    /// After it applied, before its caller sees the answer.
    After,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    armed: Option<(usize, Fault)>,
    fired: Option<(usize, Fault, Seen)>,
    pause: Option<(usize, PauseAt)>,
    /// The process generation whose clients still run (a crash ends one).
    generation: u64,
    crashed: bool,
    /// Held answers: how many the hold began for (the request applied and was answered
    /// while its caller still waited), and how many of those the caller gave up on
    /// before the hold ended (the attempt timeout).
    holds_begun: usize,
    holds_cut: usize,
}

/// Faults for every client built on [`Injector::http_client`] (module docs).
pub struct Injector {
    state: Mutex<State>,
    inner: SharedHttpClient,
    crash: Notify,
    /// Sends `true` while a request waits at the pause point.
    paused: watch::Sender<bool>,
    resume: Notify,
}

/// How long a held answer is held at most (far beyond every client's attempt timeout;
/// a hold that lasts this long means the client has none).
const HOLD: Duration = Duration::from_secs(20);

impl Injector {
    pub fn new() -> Arc<Injector> {
        Arc::new(Injector {
            state: Mutex::new(State::default()),
            inner: aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
            crash: Notify::new(),
            paused: watch::channel(false).0,
            resume: Notify::new(),
        })
    }

    /// Gives request `at` (counted from 0, every attempt counts) the fault `fault`.
    pub fn arm(&self, at: usize, fault: Fault) {
        self.state.lock().unwrap().armed = Some((at, fault));
    }

    /// Makes request `at` wait at `when` until [`Injector::resume`].
    pub fn pause(&self, at: usize, when: PauseAt) {
        self.state.lock().unwrap().pause = Some((at, when));
    }

    /// Waits until a request waits at the pause point; `false` if none came within
    /// `within` (the process took another path).
    pub async fn wait_paused(&self, within: Duration) -> bool {
        let mut paused = self.paused.subscribe();
        tokio::time::timeout(within, paused.wait_for(|p| *p))
            .await
            .is_ok()
    }

    pub fn resume(&self) {
        self.state.lock().unwrap().pause = None;
        self.resume.notify_waiters();
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// The fault that fired, with the request it hit.
    pub fn fired(&self) -> Option<(usize, Fault, Seen)> {
        self.state.lock().unwrap().fired.clone()
    }

    /// How many answers were held, and how many of those the client stopped waiting for.
    pub fn holds(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap();
        (state.holds_begun, state.holds_cut)
    }

    pub fn has_crashed(&self) -> bool {
        self.state.lock().unwrap().crashed
    }

    /// Resolves when the process crashes (at once if it has).
    pub async fn crashed(&self) {
        loop {
            let notified = self.crash.notified();
            if self.has_crashed() {
                return;
            }
            notified.await;
        }
    }

    /// A new process: clients made from now on run; the crashed one's never answer.
    pub fn restart(&self) {
        let mut state = self.state.lock().unwrap();
        state.generation += 1;
        state.crashed = false;
    }

    /// The HTTP client to build an SDK config with, for the function named `client`
    /// (its requests are labelled with it).
    pub fn http_client_for(self: &Arc<Self>, client: &'static str) -> SharedHttpClient {
        SharedHttpClient::new(Client {
            injector: self.clone(),
            label: client,
        })
    }

    /// Runs `future` as the process runs it: `None` if the process crashed first.
    pub async fn run<T>(&self, future: impl std::future::Future<Output = T>) -> Option<T> {
        tokio::select! {
            biased;
            () = self.crashed() => None,
            out = future => Some(out),
        }
    }
}

#[derive(Clone)]
struct Client {
    injector: Arc<Injector>,
    label: &'static str,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultInjectingClient")
    }
}

impl HttpClient for Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let generation = self.injector.state.lock().unwrap().generation;
        SharedHttpConnector::new(Connector {
            injector: self.injector.clone(),
            inner: self.injector.inner.http_connector(settings, components),
            generation,
            label: self.label,
        })
    }
}

struct Connector {
    injector: Arc<Injector>,
    inner: SharedHttpConnector,
    generation: u64,
    label: &'static str,
}

impl fmt::Debug for Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FaultInjectingConnector")
    }
}

/// What to do with one request.
struct Plan {
    fault: Option<Fault>,
    pause: Option<PauseAt>,
    dead: bool,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let injector = self.injector.clone();
        let inner = self.inner.clone();
        let seen = describe(&request, self.label);
        let plan = {
            let mut state = injector.state.lock().unwrap();
            let dead = state.crashed || state.generation != self.generation;
            let index = state.seen.len();
            state.seen.push(seen.clone());
            let fault = match state.armed {
                Some((at, fault)) if at == index && !dead => {
                    state.armed = None;
                    state.fired = Some((index, fault, seen.clone()));
                    Some(fault)
                }
                _ => None,
            };
            let pause = match state.pause {
                Some((at, when)) if at == index && !dead => Some(when),
                _ => None,
            };
            Plan { fault, pause, dead }
        };
        HttpConnectorFuture::new(async move {
            if plan.dead {
                // A stopped process sends nothing more.
                std::future::pending::<()>().await;
            }
            if plan.pause == Some(PauseAt::Before) {
                wait_resumed(&injector).await;
            }
            let refusal = match plan.fault {
                Some(Fault::RefuseServerError) => Some(server_error()),
                Some(Fault::RefuseThrottled) => Some(throttled(&seen)),
                Some(Fault::RefusePermanent) => Some(permanent(&seen)),
                _ => None,
            };
            if let Some(response) = refusal {
                return Ok(response);
            }
            let response = inner.call(request).await?;
            // The emulator applies a request before it answers; reading the whole answer
            // makes sure it has.
            let (status, headers, body) = read(response).await?;
            if plan.pause == Some(PauseAt::After) {
                wait_resumed(&injector).await;
            }
            match plan.fault {
                Some(Fault::LoseAnswer) => Err(ConnectorError::io(
                    "connection reset by peer (the fault injector lost the answer)".into(),
                )),
                Some(Fault::AppliedThen500) => Ok(server_error()),
                Some(Fault::Crash) => {
                    injector.state.lock().unwrap().crashed = true;
                    injector.crash.notify_waiters();
                    std::future::pending().await
                }
                Some(Fault::Hold) => {
                    injector.state.lock().unwrap().holds_begun += 1;
                    let mut guard = HoldGuard {
                        injector: injector.clone(),
                        done: false,
                    };
                    tokio::time::sleep(HOLD).await;
                    guard.done = true;
                    Ok(rebuild(status, headers, body))
                }
                _ => Ok(rebuild(status, headers, body)),
            }
        })
    }
}

/// Counts a held answer the caller stopped waiting for.
struct HoldGuard {
    injector: Arc<Injector>,
    done: bool,
}

impl Drop for HoldGuard {
    fn drop(&mut self) {
        if !self.done {
            self.injector.state.lock().unwrap().holds_cut += 1;
        }
    }
}

async fn wait_resumed(injector: &Injector) {
    let resumed = injector.resume.notified();
    tokio::pin!(resumed);
    resumed.as_mut().enable();
    injector.paused.send_replace(true);
    resumed.await;
    injector.paused.send_replace(false);
}

async fn read(
    response: HttpResponse,
) -> Result<(u16, Vec<(String, String)>, Vec<u8>), ConnectorError> {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let body = aws_smithy_types::byte_stream::ByteStream::new(response.into_body())
        .collect()
        .await
        .map_err(|e| ConnectorError::io(e.into()))?
        .to_vec();
    Ok((status, headers, body))
}

fn rebuild(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> HttpResponse {
    let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
    for (name, value) in headers {
        response.headers_mut().append(name, value);
    }
    response
}

fn error_response(status: u16, code: &str, message: &str, extra: Option<Value>) -> HttpResponse {
    let mut body = serde_json::json!({ "__type": code, "message": message });
    if let Some(Value::Object(extra)) = extra {
        body.as_object_mut().unwrap().extend(extra);
    }
    let mut response =
        HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()));
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
        .headers_mut()
        .insert("x-amzn-errortype", code.to_string());
    response
}

fn server_error() -> HttpResponse {
    error_response(
        500,
        "InternalServerError",
        "Internal server error (injected)",
        None,
    )
}

fn throttled(seen: &Seen) -> HttpResponse {
    match (seen.service.as_str(), seen.operation.as_str()) {
        ("dynamodb", "TransactWriteItems") => {
            // DynamoDB cancels a throttled transaction with a reason per item.
            let reasons: Vec<Value> = (0..seen.items)
                .map(|i| {
                    if i == 0 {
                        serde_json::json!({"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity of your table or index."})
                    } else {
                        serde_json::json!({"Code": "None"})
                    }
                })
                .collect();
            error_response(
                400,
                "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                "Transaction cancelled, please refer cancellation reasons for specific reasons [ThrottlingError] (injected)",
                Some(serde_json::json!({ "CancellationReasons": reasons })),
            )
        }
        ("dynamodb", _) => error_response(
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded (injected)",
            None,
        ),
        ("lambda", _) => error_response(
            429,
            "TooManyRequestsException",
            "Rate exceeded (injected)",
            None,
        ),
        _ => error_response(400, "ThrottlingException", "Rate exceeded (injected)", None),
    }
}

fn permanent(seen: &Seen) -> HttpResponse {
    match seen.service.as_str() {
        "lambda" => error_response(
            400,
            "InvalidParameterValueException",
            "One or more parameters are invalid (injected)",
            None,
        ),
        "dynamodb" => error_response(
            400,
            "com.amazon.coral.validate#ValidationException",
            "One or more parameter values were invalid (injected)",
            None,
        ),
        _ => error_response(
            400,
            "ValidationException",
            "One or more parameter values were invalid (injected)",
            None,
        ),
    }
}

/// Service, operation and the tables a request names, from its target header, path
/// and JSON body.
fn describe(request: &HttpRequest, client: &'static str) -> Seen {
    let body: Value = request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice(b).ok())
        .unwrap_or(Value::Null);
    let (service, operation) = match request.headers().get("x-amz-target") {
        Some(target) => {
            let (prefix, operation) = target.split_once('.').unwrap_or((target, ""));
            let service = if prefix.starts_with("DynamoDBStreams") {
                "dynamodbstreams"
            } else if prefix.starts_with("DynamoDB") {
                "dynamodb"
            } else if prefix.starts_with("AmazonSSM") {
                "ssm"
            } else {
                prefix
            };
            (service.to_string(), operation.to_string())
        }
        None if request.uri().contains("/functions/") => {
            let function = request
                .uri()
                .split("/functions/")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .unwrap_or_default()
                .to_string();
            return Seen {
                service: "lambda".into(),
                operation: "Invoke".into(),
                iam: vec![("lambda:InvokeFunction".into(), function.clone(), None)],
                targets: vec![function],
                items: 1,
                client,
            };
        }
        None => ("other".into(), request.method().to_string()),
    };
    let mut targets: Vec<String> = Vec::new();
    let mut iam = Vec::new();
    let mut items = 1;
    let action = |op: &str| format!("{service}:{op}");
    if let Some(table) = body.get("TableName").and_then(Value::as_str) {
        targets.push(table.to_string());
        let index = body
            .get("IndexName")
            .and_then(Value::as_str)
            .map(str::to_string);
        iam.push((action(&operation), table.to_string(), index));
    }
    if let Some(Value::Object(requested)) = body.get("RequestItems") {
        targets.extend(requested.keys().cloned());
        for table in requested.keys() {
            iam.push((action(&operation), table.clone(), None));
        }
    }
    if service == "ssm" {
        iam.push((action(&operation), String::new(), None));
    }
    if let Some(Value::Array(transaction)) = body.get("TransactItems") {
        items = transaction.len();
        for item in transaction {
            let Some((kind, Value::Object(op))) = item.as_object().and_then(|o| o.iter().next())
            else {
                continue;
            };
            if let Some(table) = op.get("TableName").and_then(Value::as_str) {
                targets.push(table.to_string());
                let op_action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    _ => "GetItem",
                };
                iam.push((action(op_action), table.to_string(), None));
            }
        }
    }
    targets.sort();
    targets.dedup();
    iam.sort();
    iam.dedup();
    Seen {
        service,
        operation,
        targets,
        items,
        client,
        iam,
    }
}
