//! The admin API of the dev server, JSON over HTTP under `/admin`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/sources` | sources, their environments and webhook URLs |
//! | `GET /admin/sources/{key}/event-types?env=` | the event-type registry |
//! | `GET /admin/events?source=&env=&type=&status=&since=&until=&cursor=&limit=` | events, newest first, `next_cursor` for the next page |
//! | `GET /admin/events/{id}` | one event with its action log and outbox state |
//! | `GET /admin/directory/users/{id}?env=` | a user (likewise `tenants/{id}`, `objects/{collection}/{id}`, `objects/{collection}/{id}/subscriptions`, `audiences/{key}`, `workflow-runs/{id}`, `workflow-runs?key=`) |
//!
//! The event log's routes are in `event_log.rs`, the directory's in `directory.rs`;
//! rehearse, replay and token rotation are in [`operations`]; the web console's pages
//! (`/console/...`, HTML over these same handlers) in [`console`]. Requests that change
//! something are refused when a browser marks them as coming from another site (see
//! `refuse_cross_site`).
//!
//! `since`/`until` take RFC 3339 times or unix milliseconds; `limit` is 1–500 (default
//! 50). `env` defaults to the only environment when the config has one.
//!
//! The router works on the core traits, so the same code serves `inlet dev` (SQLite; on
//! loopback only unless `--expose-admin`) and the admin Lambda function (DynamoDB, behind
//! API Gateway's IAM auth; see [`on_aws`]).

pub mod console;
mod directory;
mod event_log;
pub mod on_aws;
pub mod operations;

use directory::{audience, object, subscriptions, tenant, user, workflow_run, workflow_runs};
pub use event_log::page_with_counts;
use event_log::{event, events};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use inlet_core::config::Catalog;
use inlet_core::directory::{Directory, DirectoryError};
use inlet_core::reply::Reply;
use inlet_core::store::{EventLog, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Why an admin request failed; the one place admin errors become HTTP answers.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The pipeline refused a rehearsal or replay: answered as the ingest path answers.
    #[error(transparent)]
    Refused(inlet_core::reply::IngestError),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

impl From<DirectoryError> for AdminError {
    fn from(e: DirectoryError) -> Self {
        match e {
            // The directory cannot answer as asked (say, runs of every workflow on
            // DynamoDB): the request must change, retrying will not help.
            DirectoryError::Rejected(message) => AdminError::BadRequest(message),
            DirectoryError::Unavailable(_) | DirectoryError::Failed(_) => {
                AdminError::Unavailable(e.to_string())
            }
        }
    }
}

impl AdminError {
    /// The status, code and message this error is answered with, as JSON by the API and
    /// as a page by the console; a 5xx's detail goes to the log, not to the client.
    pub(crate) fn answer(&self) -> (u16, &'static str, String) {
        match self {
            AdminError::BadRequest(message) => (400, "bad_request", message.clone()),
            AdminError::NotFound(message) => (404, "not_found", message.clone()),
            AdminError::Unavailable(detail) => {
                tracing::error!(error = %detail, "admin request failed");
                (
                    503,
                    "unavailable",
                    "the store could not be read; retry later".into(),
                )
            }
            AdminError::Refused(refused) => {
                if refused.status() >= 500 {
                    tracing::error!(error = ?refused, "admin operation failed");
                }
                (refused.status(), refused.code(), refused.message())
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        if let AdminError::Refused(error) = self {
            // The ingest path's own answer, with its headers (`retry-after`, `allow`).
            return to_response(error.into_reply());
        }
        let (status, code, message) = self.answer();
        to_response(Reply::error(status, code, &message))
    }
}

type AdminResult = Result<axum::Json<Value>, AdminError>;

/// One webhook URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub source: String,
    pub environment: String,
    pub url: String,
    /// Set on a URL a token rotation replaced: it stops working at this time.
    pub retires_at_ms: Option<i64>,
}

/// Where the admin API finds the config and the webhook URLs. Most routes need only the
/// catalog; the URLs (tokens) are read for `/admin/sources` alone.
#[async_trait::async_trait]
pub trait SourceCatalog: Send + Sync {
    async fn catalog(&self) -> Result<Arc<Catalog>, AdminError>;
    /// `host` is the request's Host header, for absolute URLs.
    async fn urls(&self, host: Option<&str>) -> Result<Vec<WebhookUrl>, AdminError>;
}

/// The local outbox, when there is one (AWS has Lambda's queue instead).
#[async_trait::async_trait]
pub trait OutboxView: Send + Sync {
    async fn outbox(&self, event_id: &str) -> Result<Option<Value>, StoreError>;
}

pub struct AdminState {
    /// Set on AWS, where a stack serves one environment: the default for every query.
    pub environment: Option<String>,
    pub events: Arc<dyn EventLog>,
    pub directory: Arc<dyn Directory>,
    pub sources: Arc<dyn SourceCatalog>,
    pub outbox: Option<Arc<dyn OutboxView>>,
    /// Rehearse, replay and token rotation, where the platform runs its pipeline.
    pub operations: Option<Arc<dyn operations::Operations>>,
    /// The host webhook URLs are shown with, when it is not the request's own (`inlet
    /// console --aws-env` serves a stack's pages on loopback; its URLs are the stack's).
    pub webhook_host: Option<String>,
}

/// A core `Reply` as an axum response (the one conversion, shared with `inlet dev`).
pub fn to_response(reply: Reply) -> Response {
    reply.into_http()
}

fn host(headers: &HeaderMap) -> Option<&str> {
    headers.get("host").and_then(|h| h.to_str().ok())
}

/// The admin routes with their state.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/admin/sources", get(sources))
        .route("/admin/sources/{key}/event-types", get(event_types))
        .route("/admin/events", get(events))
        .route("/admin/events/{id}", get(event))
        .route("/console", get(console::sources))
        .route("/console/console.js", get(console::script))
        .route("/console/events", get(console::events))
        .route("/console/live/events", get(console::live_events))
        .route("/console/events/{id}", get(console::event))
        .route("/console/events/{id}/replay", post(console::replay))
        .route("/console/event-types", get(console::event_types))
        .route(
            "/console/rehearse",
            get(console::rehearse::form).post(console::rehearse::run),
        )
        .route("/console/directory", get(console::directory::lookup))
        .route(
            "/console/directory/users/{id}",
            get(console::directory::user),
        )
        .route(
            "/console/directory/tenants/{id}",
            get(console::directory::tenant),
        )
        .route(
            "/console/directory/objects/{collection}/{id}",
            get(console::directory::object),
        )
        .route(
            "/console/directory/workflow-runs",
            get(console::directory::workflow_runs),
        )
        .route(
            "/console/directory/workflow-runs/{id}",
            get(console::directory::workflow_run),
        )
        .route("/admin/events/{id}/replay", post(operations::replay))
        .route("/admin/sources/{key}/rehearse", post(operations::rehearse))
        .route(
            "/admin/sources/{key}/tokens/rotate",
            post(operations::rotate),
        )
        .route("/admin/directory/users/{id}", get(user))
        .route("/admin/directory/tenants/{id}", get(tenant))
        .route("/admin/directory/objects/{collection}/{id}", get(object))
        .route(
            "/admin/directory/objects/{collection}/{id}/subscriptions",
            get(subscriptions),
        )
        .route("/admin/directory/audiences/{key}", get(audience))
        .route("/admin/directory/workflow-runs", get(workflow_runs))
        .route("/admin/directory/workflow-runs/{id}", get(workflow_run))
        .layer(axum::middleware::from_fn(refuse_cross_site))
        .layer(axum::middleware::from_fn(guard_pages))
        .with_state(state)
}

/// What a browser may do with the console's pages: no framing (a framed replay button
/// could be clicked through), scripts and fetches from the console itself only, forms
/// posting only to it; the one inline `<style>` is allowed, nothing inline runs.
pub const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// Adds the console's browser protections to every answer under `/console`.
async fn guard_pages(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let console = request.uri().path().starts_with("/console");
    let mut response = next.run(request).await;
    if console {
        use axum::http::HeaderValue;
        let headers = response.headers_mut();
        headers.insert(
            "content-security-policy",
            HeaderValue::from_static(CONSOLE_CSP),
        );
        headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
        headers.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
    }
    response
}

/// Refuses a request that changes something (any method but GET/HEAD) when a browser
/// says it comes from another site: its `Origin` (or, without one, its `Referer`) names
/// a different host than the request's `Host`, its `Origin` is `null` (a sandboxed or
/// opaque page), or `Sec-Fetch-Site` is `cross-site`. Without this, any web page open
/// in the user's browser could post a replay or a token rotation to the admin API on
/// 127.0.0.1 (a form post or a `no-cors` fetch needs no permission). Clients that are
/// not browsers (the CLI, curl) send neither header and are not affected.
async fn refuse_cross_site(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    // Decided before the request moves on: a borrow of it must not live across `.await`.
    let cross_site = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_ascii_lowercase)
        };
        // `scheme://host[:port]/...` → `host[:port]`.
        let host_of = |url: String| {
            let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            rest.split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .to_string()
        };
        // A browser that sends no `Origin` (older ones, some form posts) still names the
        // page in `Referer`.
        let page_host = header("origin")
            .filter(|o| o != "null")
            .or_else(|| header("referer"))
            .map(host_of);
        header("sec-fetch-site").as_deref() == Some("cross-site")
            || header("origin").as_deref() == Some("null")
            || page_host.is_some_and(|page| Some(page) != header("host"))
    };
    if cross_site {
        return to_response(Reply::error(
            403,
            "cross_site_request",
            "the admin API does not take changes from pages of other sites; use the console at /console, the CLI, or a client that sends no Origin header",
        ));
    }
    next.run(request).await
}

pub(crate) async fn sources(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
) -> AdminResult {
    let catalog = state.sources.catalog().await?;
    let host = state.webhook_host.as_deref().or(host(&headers));
    let urls = state.sources.urls(host).await?;
    let sources: Vec<Value> = catalog
        .sources
        .iter()
        .map(|s| {
            let environments: Vec<Value> = s
                .environments
                .iter()
                .map(|(name, env)| {
                    let mine: Vec<&WebhookUrl> = urls
                        .iter()
                        .filter(|u| u.source == s.key && u.environment == *name)
                        .collect();
                    // Every working URL, and those a rotation replaced with when they stop.
                    let retiring: Vec<Value> = mine
                        .iter()
                        .filter_map(|u| {
                            u.retires_at_ms
                                .map(|at| json!({"url": u.url, "retires_at_ms": at}))
                        })
                        .collect();
                    json!({
                        "name": name,
                        "urls": mine.iter().map(|u| u.url.as_str()).collect::<Vec<_>>(),
                        "retiring": retiring,
                        "production": env.production,
                        "script": env.script.as_ref().map(|s| s.name.clone()),
                        "enforce_verification": env.enforce_verification,
                        "verify": env.verify.as_ref().map(|v| json!({
                            "scheme": v.scheme.name(),
                            "secret_var": v.secret_var,
                            "tolerance_secs": v.tolerance_secs,
                        })),
                        "event_type_path": env.event_type_path.as_str(),
                        "mapped_event_types": env.mappings.keys().collect::<Vec<_>>(),
                    })
                })
                .collect();
            json!({"key": s.key, "name": s.name, "description": s.description, "environments": environments})
        })
        .collect();
    Ok(axum::Json(json!({ "sources": sources })))
}

/// `env` from the query, or the only environment the config has.
async fn environment(
    state: &AdminState,
    query: &HashMap<String, String>,
) -> Result<String, AdminError> {
    if let Some(env) = query.get("env").or(state.environment.as_ref()) {
        return Ok(env.clone());
    }
    let catalog = state.sources.catalog().await?;
    let mut names: Vec<&str> = catalog.environments().map(|(_, e)| e).collect();
    names.sort();
    names.dedup();
    match names.as_slice() {
        [only] => Ok(only.to_string()),
        _ => Err(AdminError::BadRequest(format!(
            "say which environment with ?env= (one of: {})",
            names.join(", ")
        ))),
    }
}

pub(crate) async fn event_types(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    if state.sources.catalog().await?.source(&key).is_none() {
        return Err(AdminError::NotFound(format!(
            "no source `{key}`; GET /admin/sources lists them"
        )));
    }
    let env = environment(&state, &query).await?;
    let types = state.events.event_types(&key, &env).await?;
    Ok(axum::Json(
        json!({ "source": key, "environment": env, "event_types": types }),
    ))
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EventsQuery {
    pub(crate) source: Option<String>,
    pub(crate) env: Option<String>,
    #[serde(rename = "type")]
    pub(crate) event_type: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<String>,
}

/// RFC 3339 or unix milliseconds.
pub fn parse_time(name: &str, text: &str) -> Result<i64, AdminError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(chrono::Utc::now().timestamp_millis() - ago.as_millis() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            AdminError::BadRequest(format!(
                "`{name}` must be a time back from now (90m, 1h, 2d), an RFC 3339 time (2024-09-15T14:30:00Z) or unix milliseconds, got `{text}`"
            ))
        })
}
