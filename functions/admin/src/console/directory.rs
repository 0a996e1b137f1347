//! `/console/directory/...`: what the actions wrote, per environment — a user, a tenant,
//! an object with its subscriptions, workflow runs — read through the admin API's
//! directory routes (so a page shows what `/admin/directory/...` answers).
//!
//! | page | shows |
//! |---|---|
//! | `/console/directory?kind=&id=&collection=&env=` | a lookup form; with `kind` and `id` it goes to the record's page |
//! | `/console/directory/users/{id}?env=` | a user's properties |
//! | `/console/directory/tenants/{id}?env=` | a tenant's properties |
//! | `/console/directory/objects/{collection}/{id}?env=` | an object's properties and its subscriptions |
//! | `/console/directory/workflow-runs?env=&key=` | the newest workflow runs (100), optionally of one workflow |
//! | `/console/directory/workflow-runs/{id}?env=` | one run: recipients, actor, tenant, data, the event that triggered it |
//!
//! `env` may be left out where the config has a single environment (on a stack, it is
//! the stack's). The forms offer the environments of the config as a list, so a lookup
//! cannot miss for a mistyped name.

use super::{error_page, page, text, time};
use crate::directory::EnvDirectory;
use crate::{AdminError, AdminResult, AdminState};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use inlet_core::catalog::ActionKind;
use inlet_core::store::{ActionLogEntry, ActionStatus};
use maud::{Markup, html};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

type Params = HashMap<String, String>;

/// A path segment, percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `?env=...` when the page was given one, so links stay in the same environment.
fn env_query(params: &Params) -> String {
    match params.get("env").filter(|e| !e.is_empty()) {
        Some(env) => format!("?env={}", segment(env)),
        None => String::new(),
    }
}

fn user_link(id: &str, params: &Params) -> String {
    format!(
        "/console/directory/users/{}{}",
        segment(id),
        env_query(params)
    )
}

fn object_link(collection: &str, id: &str, params: &Params) -> String {
    format!(
        "/console/directory/objects/{}/{}{}",
        segment(collection),
        segment(id),
        env_query(params)
    )
}

/// A recipient (a user id, or `{collection, id}`) as a link to its page.
fn recipient(value: &Value, params: &Params) -> Markup {
    match (
        value.as_str(),
        value["collection"].as_str(),
        value["id"].as_str(),
    ) {
        (Some(user), _, _) => html! { a href=(user_link(user, params)) { code { (user) } } },
        (None, Some(collection), Some(id)) => {
            html! { a href=(object_link(collection, id, params)) { code { (collection) "/" (id) } } }
        }
        _ => html! { code { (value.to_string()) } },
    }
}

/// A record's fields as a definition list: times readable, nested values as JSON.
fn record(value: &Value) -> Markup {
    html! {
        dl {
            @for (key, field) in value.as_object().into_iter().flatten() {
                dt { code { (key) } }
                dd {
                    @if key.ends_with("_at_ms") { (time(field.as_i64())) }
                    @else if field.is_object() || field.is_array() {
                        pre { (serde_json::to_string_pretty(field).unwrap_or_default()) }
                    }
                    @else { (text(field)) }
                }
            }
        }
    }
}

/// The environments a form offers: the stack's own on AWS, else every environment of
/// the config (sorted, each once). An unknown `env` given in the query is kept as an
/// option, so the form shows what was asked for.
async fn environments(state: &AdminState, params: &Params) -> Result<Vec<String>, AdminError> {
    let mut names: Vec<String> = match &state.environment {
        Some(env) => vec![env.clone()],
        None => {
            let catalog = state.sources.catalog().await?;
            catalog
                .environments()
                .map(|(_, env)| env.to_string())
                .collect()
        }
    };
    if let Some(asked) = params.get("env").filter(|e| !e.is_empty()) {
        names.push(asked.clone());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The environment field of a form: a list of the config's environments.
fn environment_field(names: &[String], params: &Params) -> Markup {
    let asked = params.get("env").map(String::as_str).unwrap_or_default();
    html! {
        label { "Environment"
            select name="env" {
                @for name in names { option value=(name) selected[name == asked] { (name) } }
            }
        }
    }
}

/// The directory's landing page: a lookup form; a filled-in lookup goes to its page.
pub(crate) async fn lookup(
    State(state): State<Arc<AdminState>>,
    Query(params): Query<Params>,
) -> Response {
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    let (kind, id) = (field("kind"), field("id").trim());
    let env = Params::from_iter(params.get("env").map(|e| ("env".to_string(), e.clone())));
    let target = match kind {
        "user" if !id.is_empty() => Some(user_link(id, &env)),
        "tenant" if !id.is_empty() => Some(format!(
            "/console/directory/tenants/{}{}",
            segment(id),
            env_query(&env)
        )),
        "object" if !id.is_empty() && !field("collection").is_empty() => {
            Some(object_link(field("collection"), id, &env))
        }
        "workflow-run" if !id.is_empty() => Some(format!(
            "/console/directory/workflow-runs/{}{}",
            segment(id),
            env_query(&env)
        )),
        _ => None,
    };
    if let Some(target) = target {
        return Redirect::to(&target).into_response();
    }
    let incomplete = !kind.is_empty();
    let environments = match environments(&state, &params).await {
        Ok(names) => names,
        Err(error) => return error_page(error),
    };
    page(
        "Directory",
        html! {
            p { "Users, tenants, objects and workflow runs, as the actions wrote them." }
            @if incomplete {
                p role="alert" { "Give an id (and, for an object, its collection) to look one up." }
            }
            form method="get" action="/console/directory" aria-label="Look up a record" {
                label { "Kind"
                    select name="kind" {
                        @for (value, label) in [("user", "user"), ("tenant", "tenant"), ("object", "object"), ("workflow-run", "workflow run")] {
                            option value=(value) selected[kind == value] { (label) }
                        }
                    }
                }
                label { "Collection (objects)" input name="collection" value=(field("collection")); }
                label { "Id" input name="id" value=(id); }
                (environment_field(&environments, &params))
                button type="submit" { "Look up" }
            }
            p { a href={ "/console/directory/workflow-runs" (env_query(&env)) } { "Newest workflow runs" } }
        },
    )
    .into_response()
}

/// What the admin API's `lookup` answers in the request's environment, or why the
/// environment is not known.
async fn look_up<F: Future<Output = AdminResult>>(
    at: InEnvironment,
    lookup: impl FnOnce(EnvDirectory) -> F,
) -> AdminResult {
    lookup(at?).await
}

/// The request's environment's directory, or the error that says how to name one.
type InEnvironment = Result<EnvDirectory, AdminError>;

/// A record page, or the admin API's error as a page.
fn record_page(title: String, answer: AdminResult) -> Response {
    match answer {
        Ok(axum::Json(value)) => page(&title, record(&value)).into_response(),
        Err(error) => error_page(error),
    }
}

pub(crate) async fn user(at: InEnvironment, Path(id): Path<String>) -> Response {
    let answer = look_up(at, |at| crate::directory::user(at, Path(id.clone())));
    record_page(format!("User {id}"), answer.await)
}

pub(crate) async fn tenant(at: InEnvironment, Path(id): Path<String>) -> Response {
    let answer = look_up(at, |at| crate::directory::tenant(at, Path(id.clone())));
    record_page(format!("Tenant {id}"), answer.await)
}

pub(crate) async fn object(
    at: InEnvironment,
    Path((collection, id)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> Response {
    let at = match at {
        Ok(at) => at,
        Err(error) => return error_page(error),
    };
    let key = Path((collection.clone(), id.clone()));
    let object = match crate::directory::object(at.clone(), key).await {
        Ok(axum::Json(object)) => object,
        Err(error) => return error_page(error),
    };
    let key = Path((collection.clone(), id.clone()));
    let subscriptions = match crate::directory::subscriptions(at, key).await {
        Ok(axum::Json(body)) => body["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        Err(error) => return error_page(error),
    };
    page(
        &format!("Object {collection}/{id}"),
        html! {
            (record(&object))
            h2 { "Subscriptions" }
            @if subscriptions.is_empty() { p { "No subscribers." } }
            @else {
                table {
                    thead { tr { th { "Recipient" } th { "Properties" } } }
                    tbody {
                        @for s in &subscriptions {
                            tr {
                                td { (recipient(&s["recipient"], &params)) }
                                td { pre { (serde_json::to_string_pretty(&s["properties"]).unwrap_or_default()) } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

pub(crate) async fn workflow_runs(
    State(state): State<Arc<AdminState>>,
    at: InEnvironment,
    Query(params): Query<Params>,
) -> Response {
    let environments = match environments(&state, &params).await {
        Ok(names) => names,
        Err(error) => return error_page(error),
    };
    // A store that lists runs per workflow only asks for the key: the form says so.
    let query = Query(params.clone());
    let answer = look_up(at, |at| crate::directory::workflow_runs(at, query));
    let (runs, refused) = match answer.await {
        Ok(axum::Json(body)) => (
            body["workflow_runs"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None,
        ),
        Err(AdminError::BadRequest(message)) => (Vec::new(), Some(message)),
        Err(error) => return error_page(error),
    };
    page(
        "Workflow runs",
        html! {
            form method="get" action="/console/directory/workflow-runs" aria-label="Filter workflow runs" {
                label { "Workflow key" input name="key" value=(params.get("key").cloned().unwrap_or_default()); }
                (environment_field(&environments, &params))
                button type="submit" { "Filter" }
            }
            @if let Some(message) = &refused { p role="alert" { (message) } }
            @else if runs.is_empty() { p { "No workflow runs." } }
            @else {
                table {
                    thead { tr { th { "Created" } th { "Run" } th { "Workflow" } th { "Status" } th { "Recipients" } th { "Event" } } }
                    tbody {
                        @for run in &runs {
                            tr {
                                td { (time(run["created_at_ms"].as_i64())) }
                                td { a href={ "/console/directory/workflow-runs/" (segment(&text(&run["id"]))) (env_query(&params)) } { code { (text(&run["id"])) } } }
                                td { code { (text(&run["workflow_key"])) } }
                                td { (text(&run["status"])) }
                                td { @for r in run["recipients"].as_array().into_iter().flatten() { (recipient(r, &params)) " " } }
                                td { a href={ "/console/events/" (text(&run["event_id"])) } { "event" } }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

pub(crate) async fn workflow_run(
    State(state): State<Arc<AdminState>>,
    at: InEnvironment,
    Path(id): Path<String>,
    Query(params): Query<Params>,
) -> Response {
    let key = Path(id.clone());
    let run = match look_up(at, |at| crate::directory::workflow_run(at, key)).await {
        Ok(axum::Json(run)) => run,
        Err(error) => return error_page(error),
    };
    let event_id = text(&run["event_id"]);
    // The trigger action that recorded the run: its status, attempts and delivery.
    let trigger = match state.events.action_log(&event_id).await {
        Ok(log) => log.into_iter().find(|a| {
            a.action == ActionKind::WorkflowsTrigger
                && inlet_core::directory::run_id(&event_id, a.index) == id
        }),
        Err(error) => return error_page(error.into()),
    };
    page(
        &format!("Workflow run {id}"),
        html! {
            dl {
                dt { "Workflow" } dd { code { (text(&run["workflow_key"])) } }
                dt { "Status" } dd { (text(&run["status"])) }
                dt { "Created" } dd { (time(run["created_at_ms"].as_i64())) }
                dt { "Recipients" } dd { @for r in run["recipients"].as_array().into_iter().flatten() { (recipient(r, &params)) " " } }
                @if !run["actor"].is_null() { dt { "Actor" } dd { (recipient(&run["actor"], &params)) } }
                @if let Some(tenant) = run["tenant"].as_str() {
                    dt { "Tenant" } dd { a href={ "/console/directory/tenants/" (segment(tenant)) (env_query(&params)) } { code { (tenant) } } }
                }
                @if let Some(key) = run["cancellation_key"].as_str() { dt { "Cancellation key" } dd { code { (key) } } }
                dt { "Triggered by" } dd { a href={ "/console/events/" (text(&run["event_id"])) } { code { (text(&run["event_id"])) } } }
            }
            h2 { "Delivery" }
            (delivery(&event_id, trigger.as_ref()))
            h2 { "Data" }
            pre { (serde_json::to_string_pretty(&run["data"]).unwrap_or_default()) }
        },
    )
    .into_response()
}

/// Where a run went, from the action that triggered it: its status and attempts, the
/// target's answer (execution ARN, event id or message id), or its error.
fn delivery(event_id: &str, trigger: Option<&ActionLogEntry>) -> Markup {
    let Some(action) = trigger else {
        return html! { p { "The action that triggered this run is not in its event's log (past retention?)." } };
    };
    let delivered = action
        .result
        .as_ref()
        .map(|r| &r["delivery"])
        .filter(|d| !d.is_null());
    html! {
        dl {
            dt { "Action" }
            dd { a href={ "/console/events/" (event_id) "#action-" (action.index) } { "#" (action.index) " workflows_trigger" } }
            dt { "Status" } dd { (action.status.as_str()) }
            dt { "Attempts" } dd { (action.attempts) }
            @if let Some(d) = delivered {
                dt { "Target" } dd { (text(&d["target"])) }
                @for field in ["execution_arn", "event_id", "message_id", "bus", "queue", "function"] {
                    @if let Some(value) = d[field].as_str() { dt { (field) } dd { code { (value) } } }
                }
                @if d["already_started"] == true { dt { "Note" } dd { "already started by an earlier delivery of this run" } }
            } @else if action.status == ActionStatus::Succeeded {
                dt { "Target" } dd { "none: the workflow has no target, the run is recorded only" }
            }
            @if let Some(error) = &action.error { dt { "Error" } dd { (error) } }
        }
    }
}
