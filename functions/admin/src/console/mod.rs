//! The web console: server-rendered HTML pages over the admin API's own handlers (so
//! they show exactly what the API answers, and work wherever the admin router runs:
//! `inlet dev`, and `inlet console --aws-env E` against a stack). Every value is
//! HTML-escaped by the templates (`maud`); no external asset, so pages work offline.
//! Secrets never reach a page: events are shown as the log keeps them (header values
//! holding a var redacted). One small script (`console.js`, served from the binary)
//! adds copy buttons and the live events list; every page works without it.
//!
//! | page | shows |
//! |---|---|
//! | `/console` | sources: environments, webhook URLs (copy buttons), verification, mapped event types |
//! | `/console/events?source=&env=&type=&status=&since=&cursor=` | events, newest first, filtered (the filters are the query string, so a page can be bookmarked), next page; the first page updates live |
//! | `/console/events/{id}` | one event: its fields, raw body, headers, preprocess output, script console, action log; a replay button |
//! | `/console/event-types?source=&env=` | event types received per source environment: count, first/last seen, last sample, whether mapped |
//! | `/console/rehearse?source=&env=` | a form to dry-run a payload and headers, and what would happen ([`rehearse`]) |
//! | `/console/directory/...` | users, tenants, objects with subscriptions, workflow runs ([`directory`]) |
//!
//! Forms that change something (replay) are POSTs, refused when they come from another
//! site (see `crate::refuse_cross_site`).

pub mod directory;
pub mod rehearse;

use crate::{AdminError, AdminState};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde_json::Value;
use std::sync::Arc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a}\
header{background:#12343b;color:#fff;padding:.6rem 1rem}header a{color:#fff;margin-right:1rem}\
main{padding:1rem}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #ddd;vertical-align:top}\
pre{background:#f5f5f5;padding:.5rem;overflow:auto;margin:0}code{overflow-wrap:anywhere}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}dd{margin:0}\
.status{padding:.1rem .4rem;border-radius:.3rem;font-size:.85em}\
.accepted,.succeeded{background:#d4f4dd}.duplicate,.planned{background:#e4e4f7}.rejected,.failed,.error{background:#f9d6d5}\
.invalid_event_type,.skipped{background:#fbeec1}.answered{background:#dbeefa}\
form{display:flex;gap:.8rem;flex-wrap:wrap;align-items:end;margin-bottom:1rem}label{display:flex;flex-direction:column;font-size:.85em}";

/// The console's script (see its header comment).
pub(crate) async fn script() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("console.js"),
    )
        .into_response()
}

pub(crate) fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — Inlet" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    nav aria-label="Console" {
                        a href="/console" { "Sources" }
                        a href="/console/events" { "Events" }
                        a href="/console/event-types" { "Event types" }
                        a href="/console/rehearse" { "Rehearse" }
                        a href="/console/directory" { "Directory" }
                    }
                }
                main { h1 { (title) } (body) }
                script src="/console/console.js" defer {}
            }
        }
    }
}

/// An admin error as a page with the same status.
pub(crate) fn error_page(error: AdminError) -> Response {
    let (status, _, message) = error.answer();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        page("Not available", html! { p role="alert" { (message) } }),
    )
        .into_response()
}

/// The events page filtered by these (name, value) pairs, URL-encoded.
fn events_link(filters: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in filters {
        query.append_pair(name, value);
    }
    format!("/console/events?{}", query.finish())
}

pub(crate) fn status_badge(status: &str) -> Markup {
    html! { span class={ "status " (status) } { (status) } }
}

pub(crate) fn time(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| "-".into())
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A body pretty-printed when it is JSON, as sent otherwise.
pub(crate) fn pretty(raw: &str) -> String {
    serde_json::from_str::<Value>(raw)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| raw.to_string())
}

pub(crate) async fn sources(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let body = match crate::sources(State(state), headers).await {
        Ok(axum::Json(body)) => body,
        Err(error) => return error_page(error),
    };
    let sources = body["sources"].as_array().cloned().unwrap_or_default();
    page(
        "Sources",
        html! {
            @if sources.is_empty() { p { "No sources are configured." } }
            @for source in &sources {
                section aria-labelledby={ "source-" (text(&source["key"])) } {
                    h2 id={ "source-" (text(&source["key"])) } {
                        (text(&source["name"])) " " small { code { (text(&source["key"])) } }
                    }
                    @if let Some(description) = source["description"].as_str() { p { (description) } }
                    table {
                        thead { tr { th { "Environment" } th { "Webhook URLs" } th { "Verification" } th { "Mapped event types" } } }
                        tbody {
                            @for env in source["environments"].as_array().into_iter().flatten() {
                                tr {
                                    td {
                                        a href=(events_link(&[("source", &text(&source["key"])), ("env", &text(&env["name"]))])) { (text(&env["name"])) }
                                        @if env["production"] == true { " (production)" }
                                    }
                                    td {
                                        @for url in env["urls"].as_array().into_iter().flatten() {
                                            div { code { (text(url)) } " " button type="button" data-copy=(text(url)) aria-label="Copy the webhook URL" { "Copy" } }
                                        }
                                        @for retiring in env["retiring"].as_array().into_iter().flatten() {
                                            div { small { "retires " (time(retiring["retires_at_ms"].as_i64())) ": " code { (text(&retiring["url"])) } } }
                                        }
                                    }
                                    td {
                                        @match env["verify"]["scheme"].as_str() {
                                            Some(scheme) => (scheme),
                                            None => @if env["script"].is_string() { "script " code { (text(&env["script"])) } } @else { "none" },
                                        }
                                        @if env["enforce_verification"] == true { " (enforced)" }
                                    }
                                    td {
                                        @for t in env["mapped_event_types"].as_array().into_iter().flatten() {
                                            code { (text(t)) } " "
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}

const STATUSES: [&str; 6] = [
    "accepted",
    "duplicate",
    "rejected",
    "invalid_event_type",
    "error",
    "answered",
];

/// The query with empty form fields dropped (an empty field means "any").
fn without_empty_fields(query: crate::EventsQuery) -> crate::EventsQuery {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    crate::EventsQuery {
        source: non_empty(query.source),
        env: non_empty(query.env),
        event_type: non_empty(query.event_type),
        status: non_empty(query.status),
        since: non_empty(query.since),
        until: non_empty(query.until),
        cursor: non_empty(query.cursor),
        limit: non_empty(query.limit),
    }
}

/// The filters of `query` as a query string, with `extra` pairs first.
fn filters_query(query: &crate::EventsQuery, extra: &[(&str, &str)]) -> String {
    let mut pairs = form_urlencoded::Serializer::new(String::new());
    for (name, value) in extra {
        pairs.append_pair(name, value);
    }
    for (name, value) in [
        ("source", &query.source),
        ("env", &query.env),
        ("type", &query.event_type),
        ("status", &query.status),
        ("since", &query.since),
    ] {
        if let Some(value) = value {
            pairs.append_pair(name, value);
        }
    }
    pairs.finish()
}

/// The rows of the events table (also what the live list fetches).
fn event_rows(events: &[Value]) -> Markup {
    html! {
        @if events.is_empty() { tr { td colspan="6" { "No events match." } } }
        @for e in events {
            tr {
                td { (time(e["received_at_ms"].as_i64())) }
                td { a href={ "/console/events/" (text(&e["id"])) } { code { (text(&e["id"])) } } }
                td { (text(&e["source"])) "/" (text(&e["environment"])) }
                td { (text(&e["event_type"])) }
                td { (status_badge(e["status"].as_str().unwrap_or("?"))) }
                td { (text(&e["verification"])) }
            }
        }
    }
}

/// One page of events as the admin API lists them.
async fn list_events(
    state: Arc<AdminState>,
    query: crate::EventsQuery,
) -> Result<(Vec<Value>, Option<String>), AdminError> {
    // Without action counts: the list does not show them, and on a stack each count
    // is a read of the event's partition, at every live refresh.
    let page = crate::event_log::listed(&state, query).await?;
    let body = serde_json::to_value(page).expect("a page serialises");
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let next = body["next_cursor"].as_str().map(str::to_string);
    Ok((events, next))
}

pub(crate) async fn events(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<crate::EventsQuery>,
) -> Response {
    let filters = without_empty_fields(query);
    // How often the live list asks again: every 2 s from the local store; every 10 s
    // from a stack's tables, where each refresh is billed read units (a stack's admin
    // state names its environment).
    let refresh_ms = if state.environment.is_some() {
        10_000
    } else {
        2_000
    };
    let (events, next) = match list_events(state, filters.clone()).await {
        Ok(page) => page,
        Err(error) => return error_page(error),
    };
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    // The first page follows new events; an older page stays as it is.
    let live = filters
        .cursor
        .is_none()
        .then(|| format!("/console/live/events?{}", filters_query(&filters, &[])));
    page(
        "Events",
        html! {
            form method="get" action="/console/events" aria-label="Filter events" {
                label { "Source" input name="source" value=(value(&filters.source)); }
                label { "Environment" input name="env" value=(value(&filters.env)); }
                label { "Event type" input name="type" value=(value(&filters.event_type)); }
                label { "Status"
                    select name="status" {
                        option value="" { "any" }
                        @for s in STATUSES {
                            option value=(s) selected[filters.status.as_deref() == Some(s)] { (s) }
                        }
                    }
                }
                label { "Since (RFC 3339 or unix ms)" input name="since" value=(value(&filters.since)); }
                button type="submit" { "Filter" }
            }
            p id="live-status" aria-live="polite" {
                @if live.is_some() { "Live: new events appear here as they arrive." }
                @else { "An older page: " a href={ "/console/events?" (filters_query(&filters, &[])) } { "newest events" } }
            }
            table {
                thead { tr { th { "Received" } th { "Event" } th { "Source/env" } th { "Type" } th { "Status" } th { "Verification" } } }
                tbody id="event-rows" data-live=[live] data-refresh-ms=(refresh_ms) { (event_rows(&events)) }
            }
            @if let Some(next) = next {
                p { a href={ "/console/events?" (filters_query(&filters, &[("cursor", &next)])) } rel="next" { "Older events" } }
            }
        },
    )
    .into_response()
}

/// The rows of the events list's first page, for the live list (`console.js`).
pub(crate) async fn live_events(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<crate::EventsQuery>,
) -> Response {
    let mut filters = without_empty_fields(query);
    filters.cursor = None;
    match list_events(state, filters).await {
        Ok((events, _)) => event_rows(&events).into_response(),
        Err(error) => error_page(error),
    }
}

/// The replay button: runs the event again and shows the new one.
pub(crate) async fn replay(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    form: axum::body::Bytes,
) -> Response {
    // The page's key for this replay (see the form), if the form sent one.
    let key = form_urlencoded::parse(&form)
        .find(|(name, _)| name == "request_key")
        .map(|(_, key)| key.into_owned());
    match crate::operations::replay_event(&state, &id, key.as_deref()).await {
        Ok((_, axum::Json(replayed))) => axum::response::Redirect::to(&format!(
            "/console/events/{}",
            text(&replayed["event_id"])
        ))
        .into_response(),
        Err(error) => error_page(error),
    }
}

pub(crate) async fn event(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Response {
    let body = match crate::event_log::event(State(state.clone()), Path(id.clone())).await {
        Ok(axum::Json(body)) => body,
        Err(error) => return error_page(error),
    };
    let e = &body["event"];
    let actions = body["actions"].as_array().cloned().unwrap_or_default();
    // Where the platform runs its pipeline, and the event was not refused at the door.
    // (Not a duplicate either: the event it repeats is the one to replay.)
    let replayable =
        state.operations.is_some() && e["status"] != "rejected" && e["status"] != "duplicate";
    page(
        &format!("Event {id}"),
        html! {
            dl {
                dt { "Status" } dd { (status_badge(e["status"].as_str().unwrap_or("?"))) }
                dt { "Source/environment" } dd { (text(&e["source"])) "/" (text(&e["environment"])) }
                dt { "Event type" } dd { (text(&e["event_type"])) }
                dt { "Verification" } dd { (text(&e["verification"])) }
                dt { "Received" } dd { (time(e["received_at_ms"].as_i64())) }
                dt { "Occurred" } dd { (time(e["occurred_at_ms"].as_i64())) }
                dt { "Idempotency key" } dd { (text(&e["idempotency_key"])) }
                @if let Some(original) = e["duplicate_of"].as_str() {
                    dt { "Duplicate of" } dd { a href={ "/console/events/" (original) } { code { (original) } } }
                }
                @if let Some(original) = e["replay_of"].as_str() {
                    dt { "Replay of" } dd { a href={ "/console/events/" (original) } { code { (original) } } }
                }
                @if let Some(error) = e["error"].as_str() { dt { "Error" } dd role="alert" { (error) } }
                @for warning in e["warnings"].as_array().into_iter().flatten() { dt { "Warning" } dd { (text(warning)) } }
            }
            @if replayable {
                form method="post" action={ "/console/events/" (id) "/replay" } {
                    // One key per page: a second click (or a resent form) answers the
                    // replay the first one made.
                    input type="hidden" name="request_key" value=(inlet_core::store::new_event_id());
                    button type="submit" { "Replay through the current config" }
                    " (stores a new event that points to this one and runs its actions)"
                }
            }
            h2 { "Actions" }
            @if actions.is_empty() { p { "No actions were planned for this event." } }
            @else {
                table {
                    thead { tr { th { "#" } th { "Action" } th { "Status" } th { "Attempts" } th { "Payload (resolved params)" } th { "Result or reason" } } }
                    tbody {
                        @for a in &actions {
                            tr id={ "action-" (text(&a["index"])) } {
                                td { (text(&a["index"])) }
                                td { code { (text(&a["action"])) } }
                                td { (status_badge(a["status"].as_str().unwrap_or("?"))) }
                                td { (text(&a["attempts"])) }
                                td {
                                    pre { (serde_json::to_string_pretty(&a["payload"]).unwrap_or_default()) }
                                    details { summary { "mapping" } pre { (serde_json::to_string_pretty(&a["params"]).unwrap_or_default()) } }
                                }
                                td {
                                    @if let Some(error) = a["error"].as_str() { (error) }
                                    @else { pre { (serde_json::to_string_pretty(&a["result"]).unwrap_or_default()) } }
                                    @if let Some(run) = a["result"]["workflow_run_id"].as_str() {
                                        a href={ "/console/directory/workflow-runs/" (directory::segment(run)) "?env=" (directory::segment(&text(&e["environment"]))) } { "the workflow run" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Body" }
            pre { (pretty(e["raw_body"].as_str().unwrap_or_default())) }
            h2 { "Headers" }
            table {
                thead { tr { th { "Name" } th { "Value" } } }
                tbody {
                    @for pair in e["headers"].as_array().into_iter().flatten() {
                        tr { td { code { (text(&pair[0])) } } td { code { (text(&pair[1])) } } }
                    }
                }
            }
            @if !e["preprocess"].is_null() {
                h2 { "Preprocess output" }
                pre { (serde_json::to_string_pretty(&e["preprocess"]).unwrap_or_default()) }
            }
            @if e["script_console"].as_array().is_some_and(|c| !c.is_empty()) {
                h2 { "Script console" }
                pre { @for line in e["script_console"].as_array().into_iter().flatten() { (text(line)) "\n" } }
            }
        },
    )
    .into_response()
}

pub(crate) async fn event_types(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let listing = match crate::sources(State(state.clone()), headers).await {
        Ok(axum::Json(body)) => body,
        Err(error) => return error_page(error),
    };
    let wanted = |key: &str, env: &str| {
        query.get("source").is_none_or(|s| s.is_empty() || s == key)
            && query.get("env").is_none_or(|e| e.is_empty() || e == env)
    };
    let mut sections = Vec::new();
    for source in listing["sources"].as_array().into_iter().flatten() {
        let key = text(&source["key"]);
        for env in source["environments"].as_array().into_iter().flatten() {
            let name = text(&env["name"]);
            if !wanted(&key, &name) {
                continue;
            }
            let mut one = std::collections::HashMap::new();
            one.insert("env".to_string(), name.clone());
            let types =
                match crate::event_types(State(state.clone()), Path(key.clone()), Query(one)).await
                {
                    Ok(axum::Json(body)) => {
                        body["event_types"].as_array().cloned().unwrap_or_default()
                    }
                    Err(error) => return error_page(error),
                };
            let mapped: Vec<String> = env["mapped_event_types"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            sections.push((key.clone(), name, types, mapped));
        }
    }
    page(
        "Event types",
        html! {
            @for (key, env, types, mapped) in &sections {
                section {
                    h2 { (key) "/" (env) }
                    @if types.is_empty() { p { "No events received yet." } }
                    @else {
                        table {
                            thead { tr { th { "Event type" } th { "Count" } th { "First seen" } th { "Last seen" } th { "Mapped" } th { "Last sample" } } }
                            tbody {
                                @for t in types {
                                    tr {
                                        td {
                                            a href=(events_link(&[("source", key), ("env", env), ("type", &text(&t["event_type"]))])) { code { (text(&t["event_type"])) } }
                                        }
                                        td { (text(&t["count"])) }
                                        td { (time(t["first_seen_ms"].as_i64())) }
                                        td { (time(t["last_seen_ms"].as_i64())) }
                                        td { @if mapped.contains(&text(&t["event_type"])) { "yes" } @else { "no" } }
                                        td { details { summary { "sample" } pre { (pretty(t["last_sample"].as_str().unwrap_or_default())) } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
    .into_response()
}
