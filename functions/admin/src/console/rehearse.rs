//! `/console/rehearse`: paste a payload and its headers, pick a source environment, and
//! see what would happen — the answer the sender would get, verification and its
//! reason, the script's console and preprocess output, the event type, whether it would
//! be a duplicate (and of which event), and each action's resolved payload or skip
//! reason. It runs the admin API's rehearse operation, so nothing is stored; a
//! production environment refuses, as the API does. `?source=&env=` preselect the
//! target, so a rehearsal form can be bookmarked.

use super::{error_page, page, pretty, status_badge, text};
use crate::operations::RehearseRequest;
use crate::{AdminError, AdminState};
use axum::extract::{Form, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The form's fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RehearseForm {
    #[serde(default)]
    source: String,
    #[serde(default)]
    env: String,
    /// `Name: value`, one per line.
    #[serde(default)]
    headers: String,
    #[serde(default)]
    body: String,
}

/// `Name: value` lines as a header map; a line without a colon is an error naming it.
fn parse_headers(lines: &str) -> Result<BTreeMap<String, String>, AdminError> {
    let mut headers = BTreeMap::new();
    for (number, line) in lines.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(AdminError::BadRequest(format!(
                "header line {} `{line}` is not `Name: value` (e.g. `X-Signature: abc123`)",
                number + 1
            )));
        };
        headers.insert(name.trim().to_string(), value.trim().to_string());
    }
    Ok(headers)
}

pub(crate) async fn form(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let fields = RehearseForm {
        source: query.get("source").cloned().unwrap_or_default(),
        env: query.get("env").cloned().unwrap_or_default(),
        ..Default::default()
    };
    render(state, headers, fields, None).await
}

pub(crate) async fn run(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    Form(fields): Form<RehearseForm>,
) -> Response {
    let outcome = rehearse(state.clone(), &fields).await;
    render(state, headers, fields, Some(outcome)).await
}

async fn rehearse(state: Arc<AdminState>, fields: &RehearseForm) -> Result<Value, AdminError> {
    if fields.source.is_empty() {
        return Err(AdminError::BadRequest("pick a source to rehearse".into()));
    }
    let request = RehearseRequest {
        body: Value::String(fields.body.clone()),
        headers: parse_headers(&fields.headers)?,
        query: String::new(),
    };
    let mut query = HashMap::new();
    if !fields.env.is_empty() {
        query.insert("env".to_string(), fields.env.clone());
    }
    crate::operations::rehearse_request(&state, &fields.source, &query, request).await
}

/// The form (keeping what was entered) and, after a run, its outcome.
async fn render(
    state: Arc<AdminState>,
    headers: HeaderMap,
    fields: RehearseForm,
    outcome: Option<Result<Value, AdminError>>,
) -> Response {
    if state.operations.is_none() {
        return error_page(AdminError::NotFound(
            "rehearsal is not available here: this admin API does not run the pipeline".into(),
        ));
    }
    let listing = match crate::sources(State(state), headers).await {
        Ok(axum::Json(body)) => body,
        Err(error) => return error_page(error),
    };
    let mut targets = Vec::new();
    for source in listing["sources"].as_array().into_iter().flatten() {
        for env in source["environments"].as_array().into_iter().flatten() {
            targets.push((
                text(&source["key"]),
                text(&env["name"]),
                env["production"] == true,
            ));
        }
    }
    let mut env_names: Vec<&str> = targets.iter().map(|(_, env, _)| env.as_str()).collect();
    env_names.sort();
    env_names.dedup();
    let mut source_keys: Vec<&str> = targets.iter().map(|(key, _, _)| key.as_str()).collect();
    source_keys.dedup();
    page(
        "Rehearse",
        html! {
            p { "A dry run through the current config: nothing is stored, no action runs. Production environments refuse." }
            form method="post" action="/console/rehearse" aria-label="Rehearse a payload" {
                label { "Source"
                    select name="source" required {
                        @for key in &source_keys { option value=(key) selected[*key == fields.source] { (key) } }
                    }
                }
                label { "Environment"
                    select name="env" {
                        @for env in &env_names {
                            option value=(env) selected[*env == fields.env] {
                                (env)
                                @if targets.iter().any(|(_, e, production)| e == env && *production) { " (production)" }
                            }
                        }
                    }
                }
                label style="flex-basis:100%" { "Headers, one `Name: value` per line (signatures included)"
                    textarea name="headers" rows="4" cols="80" { (fields.headers) }
                }
                label style="flex-basis:100%" { "Payload, exactly as the provider sends it"
                    textarea name="body" rows="12" cols="80" required { (fields.body) }
                }
                button type="submit" { "Rehearse" }
            }
            @match &outcome {
                None => {}
                Some(Err(error)) => { p role="alert" { (error.answer().2) } }
                Some(Ok(rehearsal)) => { (outcome_markup(rehearsal)) }
            }
        },
    )
    .into_response()
}

fn outcome_markup(r: &Value) -> Markup {
    let e = &r["event"];
    html! {
        section aria-labelledby="outcome" {
            h2 id="outcome" { "What would happen" }
            dl {
                dt { "Answer to the sender" } dd { strong { (text(&r["http_status"])) } " " (text(&r["answer"])) }
                dt { "Status" } dd { (status_badge(e["status"].as_str().unwrap_or("?"))) }
                dt { "Verification" } dd { (text(&e["verification"])) }
                dt { "Event type" } dd { (text(&e["event_type"])) }
                dt { "Idempotency key" } dd { (text(&e["idempotency_key"])) }
                @if let Some(original) = r["duplicate_of"].as_str() {
                    dt { "Duplicate of" } dd { a href={ "/console/events/" (original) } { code { (original) } } }
                }
                dt { "Actions that would run" } dd { (text(&r["runnable_actions"])) }
                @if let Some(error) = e["error"].as_str() { dt { "Error" } dd role="alert" { (error) } }
                @for warning in e["warnings"].as_array().into_iter().flatten() { dt { "Warning" } dd { (text(warning)) } }
            }
            h3 { "Actions" }
            table {
                thead { tr { th { "#" } th { "Action" } th { "Payload" } th { "Skipped because" } } }
                tbody {
                    @for a in e["actions"].as_array().into_iter().flatten() {
                        tr {
                            td { (text(&a["index"])) }
                            td { code { (text(&a["action"])) } }
                            td { pre { (serde_json::to_string_pretty(&a["payload"]).unwrap_or_default()) } }
                            td { (text(&a["skipped"])) }
                        }
                    }
                }
            }
            @if !e["preprocess"].is_null() {
                h3 { "Preprocess output" }
                pre { (serde_json::to_string_pretty(&e["preprocess"]).unwrap_or_default()) }
            }
            @if e["script_console"].as_array().is_some_and(|c| !c.is_empty()) {
                h3 { "Script console" }
                pre { @for line in e["script_console"].as_array().into_iter().flatten() { (text(line)) "\n" } }
            }
            h3 { "Payload as read" }
            pre { (pretty(e["raw_body"].as_str().unwrap_or_default())) }
        }
    }
}
