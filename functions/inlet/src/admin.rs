//! The admin API of the dev server (DESIGN §7), JSON over HTTP under `/admin`:
//!
//! | route | answer |
//! |---|---|
//! | `GET /admin/sources` | sources, their environments and webhook URLs |
//! | `GET /admin/sources/{key}/event-types?env=` | the event-type registry |
//! | `GET /admin/events?source=&env=&type=&status=&since=&until=&cursor=&limit=` | events, newest first, `next_cursor` for the next page |
//! | `GET /admin/events/{id}` | one event with its action log and outbox state |
//! | `GET /admin/directory/users/{id}?env=` | a user (likewise `tenants/{id}`, `objects/{collection}/{id}`, `objects/{collection}/{id}/subscriptions`, `audiences/{key}`, `workflow-runs/{id}`, `workflow-runs?key=`) |
//!
//! `since`/`until` take RFC 3339 times or unix milliseconds; `limit` is 1–500 (default
//! 50). `env` defaults to the only environment when the config has one. The routes are
//! served only when the server listens on a loopback address, unless `--expose-admin`.

use crate::server::AppState;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inlet_core::directory::{Directory, DirectoryError};
use inlet_core::reply::Reply;
use inlet_core::store::{EventLog, EventQuery, EventStatus, StoreError};
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
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

impl From<DirectoryError> for AdminError {
    fn from(e: DirectoryError) -> Self {
        AdminError::Unavailable(e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            AdminError::BadRequest(_) => (400, "bad_request"),
            AdminError::NotFound(_) => (404, "not_found"),
            AdminError::Unavailable(detail) => {
                tracing::error!(error = %detail, "admin request failed");
                (503, "unavailable")
            }
        };
        let message = match &self {
            AdminError::Unavailable(_) => "the store could not be read; retry later".to_string(),
            other => other.to_string(),
        };
        crate::server::to_response(Reply::json(
            status,
            json!({"error": {"code": code, "message": message}}),
        ))
    }
}

type AdminResult = Result<axum::Json<Value>, AdminError>;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/admin/sources", get(sources))
        .route("/admin/sources/{key}/event-types", get(event_types))
        .route("/admin/events", get(events))
        .route("/admin/events/{id}", get(event))
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
}

async fn sources(State(state): State<Arc<AppState>>) -> AdminResult {
    let live = state.live();
    let sources: Vec<Value> = live
        .catalog
        .sources
        .iter()
        .map(|s| {
            let environments: Vec<Value> = s
                .environments
                .iter()
                .map(|(name, env)| {
                    let urls: Vec<&str> = live
                        .urls
                        .iter()
                        .filter(|u| u.source == s.key && u.environment == *name)
                        .map(|u| u.url.as_str())
                        .collect();
                    json!({
                        "name": name,
                        "urls": urls,
                        "script": env.script.as_ref().map(|s| s.name.clone()),
                        "enforce_verification": env.enforce_verification,
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
fn environment(state: &AppState, query: &HashMap<String, String>) -> Result<String, AdminError> {
    if let Some(env) = query.get("env") {
        return Ok(env.clone());
    }
    let live = state.live();
    let mut names: Vec<&str> = live.catalog.environments().map(|(_, e)| e).collect();
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

async fn event_types(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    if state.live().catalog.source(&key).is_none() {
        return Err(AdminError::NotFound(format!(
            "no source `{key}`; GET /admin/sources lists them"
        )));
    }
    let env = environment(&state, &query)?;
    let types = state.store.event_types(&key, &env).await?;
    Ok(axum::Json(
        json!({ "source": key, "environment": env, "event_types": types }),
    ))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    source: Option<String>,
    env: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

/// RFC 3339 or unix milliseconds.
pub fn parse_time(name: &str, text: &str) -> Result<i64, AdminError> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            AdminError::BadRequest(format!(
                "`{name}` must be an RFC 3339 time (2024-09-15T14:30:00Z) or unix milliseconds, got `{text}`"
            ))
        })
}

async fn events(State(state): State<Arc<AppState>>, Query(q): Query<EventsQuery>) -> AdminResult {
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(EventStatus::parse(text).ok_or_else(|| {
            AdminError::BadRequest(format!(
                "unknown status `{text}`; use accepted, duplicate, rejected, invalid_event_type or error"
            ))
        })?),
    };
    let limit = match q.limit.as_deref() {
        None => 50,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .ok_or_else(|| {
                AdminError::BadRequest(format!(
                    "`limit` must be a number from 1 to 500, got `{text}`"
                ))
            })?,
    };
    let query = EventQuery {
        source: q.source,
        environment: q.env,
        event_type: q.event_type,
        status,
        since_ms: q
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?,
        until_ms: q
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?,
        cursor: q.cursor,
        limit,
    };
    let page = state.store.list(&query).await?;
    Ok(axum::Json(
        serde_json::to_value(page).expect("a page serialises"),
    ))
}

async fn event(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> AdminResult {
    let Some(mut event) = state.store.get(&id).await? else {
        return Err(AdminError::NotFound(format!(
            "no event `{id}` (events are kept 30 days)"
        )));
    };
    event.actions.clear();
    let actions = state.store.action_log(&id).await?;
    let outbox = state.store.outbox_state(&id).await?.map(|(state, attempts, error)| {
        json!({"state": state, "attempts": attempts, "last_error": error})
    });
    Ok(axum::Json(
        json!({ "event": event, "actions": actions, "outbox": outbox }),
    ))
}

fn found<T: serde::Serialize>(what: String, value: Option<T>) -> AdminResult {
    match value {
        Some(v) => Ok(axum::Json(
            serde_json::to_value(v).expect("directory records serialise"),
        )),
        None => Err(AdminError::NotFound(format!("no {what}"))),
    }
}

async fn user(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    found(
        format!("user `{id}` in {env}"),
        state.store.user(&env, &id).await?,
    )
}

async fn tenant(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    found(
        format!("tenant `{id}` in {env}"),
        state.store.tenant(&env, &id).await?,
    )
}

async fn object(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    found(
        format!("object `{collection}/{id}` in {env}"),
        state.store.object(&env, &collection, &id).await?,
    )
}

async fn subscriptions(
    State(state): State<Arc<AppState>>,
    Path((collection, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    let subs: Vec<Value> = state
        .store
        .subscriptions(&env, &collection, &id)
        .await?
        .into_iter()
        .map(|(recipient, properties)| json!({"recipient": recipient.to_json(), "properties": properties}))
        .collect();
    Ok(axum::Json(
        json!({ "collection": collection, "id": id, "subscriptions": subs }),
    ))
}

async fn audience(
    State(state): State<Arc<AppState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    let members = state.store.audience_members(&env, &key).await?;
    found(
        format!("audience `{key}` in {env}"),
        members.map(|m| json!({"key": key, "members": m})),
    )
}

async fn workflow_run(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    found(
        format!("workflow run `{id}` in {env}"),
        state.store.workflow_run(&env, &id).await?,
    )
}

async fn workflow_runs(
    State(state): State<Arc<AppState>>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query)?;
    let runs = state
        .store
        .workflow_runs(&env, query.get("key").map(String::as_str), 100)
        .await?;
    Ok(axum::Json(json!({ "workflow_runs": runs })))
}
