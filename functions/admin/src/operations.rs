//! The admin API's operations beyond reading, where the platform can run its pipeline
//! (the dev server; the admin function on AWS):
//!
//! | route | answer |
//! |---|---|
//! | `POST /admin/sources/{key}/rehearse?env=` | a dry run of a payload: what would be answered and logged, nothing written |
//! | `POST /admin/events/{id}/replay` | the stored event run again through the current config, as a new event (`replay_of`); with an `Idempotency-Key` header, the same key answers the same replay (`repeated: true`) for 24 h |
//! | `POST /admin/sources/{key}/tokens/rotate?env=&overlap=24h` | a new webhook URL; the old one works until the overlap ends |
//!
//! A rehearsal's request body is JSON: `{"body": "<the payload as sent, a string>",
//! "headers": {"name": "value", ...}, "query": "a=1"}` (`headers` and `query` optional;
//! `body` may also be a JSON value, sent as its compact text). The payload is a string
//! so that signatures computed over its exact bytes verify.

use crate::{AdminError, AdminState, WebhookUrl, environment};
use axum::Json;
use axum::extract::{Path, Query, State};
use inlet_core::config::Catalog;
use inlet_core::pipeline::{InboundRequest, Pipeline, Route};
use inlet_core::store::IdempotencyStore;
use inlet_core::tokens::Rotation;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The default overlap of a token rotation: the old URL keeps working this long.
pub const DEFAULT_OVERLAP: &str = "24h";

/// What a platform gives the operations: its pipeline as requests see it now, its
/// idempotency records, and its webhook tokens.
#[async_trait::async_trait]
pub trait Operations: Send + Sync {
    fn pipeline(&self) -> &Pipeline;
    fn idempotency(&self) -> &dyn IdempotencyStore;
    /// Replaces the token of the rotation's pair (see [`inlet_core::tokens::TokenStore::rotate`]). Returns
    /// the pair's working URLs (on `host`), the new one last.
    async fn rotate_token(
        &self,
        rotation: Rotation<'_>,
        host: Option<&str>,
    ) -> Result<Vec<WebhookUrl>, AdminError>;
}

fn operations(state: &AdminState) -> Result<&Arc<dyn Operations>, AdminError> {
    state.operations.as_ref().ok_or_else(|| {
        AdminError::NotFound(
            "this admin API does not run the pipeline (rehearse, replay and token rotation are on `inlet dev` and the stack's admin function)".into(),
        )
    })
}

fn route(catalog: &Catalog, key: &str, env: &str) -> Result<Route, AdminError> {
    Route::of(catalog, key, env).ok_or_else(|| match catalog.source(key) {
        None => AdminError::NotFound(format!("no source `{key}`; GET /admin/sources lists them")),
        Some(source) => AdminError::NotFound(format!(
            "source `{key}` has no environment `{env}` (it has: {})",
            source
                .environments
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )),
    })
}

/// A rehearsal's request.
#[derive(Debug, Deserialize)]
pub struct RehearseRequest {
    pub body: Value,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub query: String,
}

pub(crate) async fn rehearse(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, AdminError> {
    operations(&state)?;
    let request: RehearseRequest = serde_json::from_slice(&body).map_err(|e| {
        AdminError::BadRequest(format!(
            "the body must be JSON {{\"body\": \"<payload>\", \"headers\": {{\"name\": \"value\"}}}}: {e}"
        ))
    })?;
    rehearse_request(&state, &key, &query, request)
        .await
        .map(Json)
}

/// A rehearsal of `request` through source `key`'s environment (`env` in `query`, or the
/// only one): the API route's and the console form's work.
pub(crate) async fn rehearse_request(
    state: &AdminState,
    key: &str,
    query: &HashMap<String, String>,
    request: RehearseRequest,
) -> Result<Value, AdminError> {
    let ops = operations(state)?;
    let env = environment(state, query).await?;
    let catalog = state.sources.catalog().await?;
    let route = route(&catalog, key, &env)?;
    let payload = match request.body {
        Value::String(text) => text,
        other => other.to_string(),
    };
    let inbound = InboundRequest {
        method: "POST".into(),
        headers: request.headers.into_iter().collect(),
        query: request.query,
        body: payload.into_bytes(),
    };
    let rehearsal = ops
        .pipeline()
        .rehearse(&route, inbound, ops.idempotency())
        .await
        .map_err(AdminError::Refused)?;
    serde_json::to_value(rehearsal)
        .map_err(|e| AdminError::Unavailable(format!("serialising the rehearsal: {e}")))
}

/// The most characters of a replay's `Idempotency-Key`.
const MAX_REQUEST_KEY_CHARS: usize = 255;

pub(crate) async fn replay(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<(axum::http::StatusCode, Json<Value>), AdminError> {
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.chars().count() <= MAX_REQUEST_KEY_CHARS)
                .ok_or_else(|| {
                    AdminError::BadRequest(format!(
                        "`Idempotency-Key` must be 1 to {MAX_REQUEST_KEY_CHARS} visible ASCII characters (a UUID, say)"
                    ))
                })?
                .to_string(),
        ),
    };
    replay_event(&state, &id, key.as_deref()).await
}

/// Replays event `id` (with the caller's request key, if any): the API route's and the
/// console form's work.
pub(crate) async fn replay_event(
    state: &AdminState,
    id: &str,
    request_key: Option<&str>,
) -> Result<(axum::http::StatusCode, Json<Value>), AdminError> {
    let ops = operations(state)?;
    let original = state
        .events
        .get(id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no event `{id}`")))?;
    let catalog = state.sources.catalog().await?;
    let route = route(&catalog, &original.source, &original.environment)?;
    let replayed = ops
        .pipeline()
        .replay(&route, &original, request_key)
        .await
        .map_err(AdminError::Refused)?;
    Ok((axum::http::StatusCode::ACCEPTED, Json(json!(replayed))))
}

pub(crate) async fn rotate(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Value>, AdminError> {
    let ops = operations(&state)?;
    let env = environment(&state, &query).await?;
    let catalog = state.sources.catalog().await?;
    route(&catalog, &key, &env)?;
    let overlap_text = query.get("overlap").map_or(DEFAULT_OVERLAP, String::as_str);
    let overlap = humantime::parse_duration(overlap_text).map_err(|e| {
        AdminError::BadRequest(format!(
            "`overlap` must be a duration such as `24h`, `90m` or `0s`, got `{overlap_text}`: {e}"
        ))
    })?;
    let urls = ops
        .rotate_token(
            Rotation {
                source: &key,
                environment: &env,
                now_ms: ops.pipeline().clock.now_ms(),
                overlap_ms: overlap.as_millis() as i64,
            },
            state.webhook_host.as_deref().or(crate::host(&headers)),
        )
        .await?;
    let new_url = urls.last().map(|u| u.url.clone());
    let retiring: Vec<Value> = urls
        .iter()
        .filter_map(|u| {
            u.retires_at_ms
                .map(|at| json!({"url": u.url, "retires_at_ms": at}))
        })
        .collect();
    Ok(Json(json!({
        "source": key,
        "environment": env,
        "url": new_url,
        "retiring": retiring,
    })))
}
