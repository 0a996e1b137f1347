//! A local endpoint speaking Lambda's Invoke API, standing where Lambda runs the actions
//! function: shared by the tests of the ingest handler and of the dispatcher contract.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use inlet_aws::actions::ActionsFunction;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// Each invocation: function name, `X-Amz-Invocation-Type`, payload.
pub type Invocations = Arc<Mutex<Vec<(String, String, Value)>>>;
type Runs = tokio::sync::mpsc::UnboundedSender<Result<Value, String>>;

#[derive(Clone)]
struct Endpoint {
    seen: Invocations,
    actions: Arc<ActionsFunction>,
    runs: Runs,
}

/// A local endpoint implementing Lambda's Invoke API: records each call, answers 202
/// like Lambda does for `InvocationType=Event`, and then runs the actions handler
/// in-process on the payload, as Lambda would run the actions function.
pub async fn endpoint(
    actions: Arc<ActionsFunction>,
) -> (
    String,
    Invocations,
    tokio::sync::mpsc::UnboundedReceiver<Result<Value, String>>,
) {
    let seen: Invocations = Arc::default();
    let (runs, finished) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{name}/invocations",
            post(
                |State(endpoint): State<Endpoint>,
                 Path(name): Path<String>,
                 headers: HeaderMap,
                 body: String| async move {
                    let kind = headers
                        .get("x-amz-invocation-type")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    let payload: Value = serde_json::from_str(&body).unwrap();
                    endpoint
                        .seen
                        .lock()
                        .unwrap()
                        .push((name, kind, payload.clone()));
                    tokio::spawn(async move {
                        let invocation = serde_json::from_value(payload).unwrap();
                        let outcome = endpoint
                            .actions
                            .handle(invocation)
                            .await
                            .map_err(|e| e.to_string());
                        let _ = endpoint.runs.send(outcome);
                    });
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        )
        .with_state(Endpoint {
            seen: seen.clone(),
            actions,
            runs,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen, finished)
}
