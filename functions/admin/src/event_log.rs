//! The event log's routes: `GET /admin/events` (a page of events, newest first, with
//! each one's action counts) and `GET /admin/events/{id}` (one event with its action log
//! and outbox state).

use crate::{AdminError, AdminResult, AdminState, EventsQuery, parse_time};
use axum::extract::{Path, Query, State};
use inlet_core::store::{EventQuery, EventStatus, list_across};
use serde_json::{Value, json};
use std::sync::Arc;

/// A page cursor is the last event id of the previous page (a UUID); anything else is
/// refused rather than answered with an arbitrary page.
fn cursor(text: String) -> Result<String, AdminError> {
    let is_uuid = text.len() == 36
        && text.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if is_uuid {
        Ok(text)
    } else {
        Err(AdminError::BadRequest(format!(
            "`cursor` must be the `next_cursor` of a previous page (an event id), got `{text}`"
        )))
    }
}

pub(crate) async fn events(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<EventsQuery>,
) -> AdminResult {
    let page = listed(&state, q).await?;
    Ok(axum::Json(
        page_with_counts(state.events.as_ref(), page).await?,
    ))
}

/// One page of events (without their plans) for the query's filters.
pub(crate) async fn listed(
    state: &AdminState,
    q: EventsQuery,
) -> Result<inlet_core::store::EventPage, AdminError> {
    let status = match q.status.as_deref() {
        None => None,
        Some(text) => Some(EventStatus::parse(text).ok_or_else(|| {
            AdminError::BadRequest(format!(
                "unknown status `{text}`; use accepted, duplicate, rejected, invalid_event_type, error or answered"
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
        environment: q.env.or_else(|| state.environment.clone()),
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
        cursor: q.cursor.map(cursor).transpose()?,
        limit,
    };
    Ok(match &query.source {
        Some(_) => state.events.list(&query).await?,
        None => {
            let catalog = state.sources.catalog().await?;
            let keys: Vec<String> = catalog.sources.iter().map(|s| s.key.clone()).collect();
            list_across(state.events.as_ref(), &keys, &query).await?
        }
    })
}

/// A page of events as the API lists them: each event (without its plan) with
/// `action_counts` (planned, succeeded, failed, skipped) from its action log.
pub async fn page_with_counts(
    events: &dyn inlet_core::store::EventLog,
    page: inlet_core::store::EventPage,
) -> Result<Value, inlet_core::store::StoreError> {
    let ids: Vec<String> = page.events.iter().map(|e| e.id.clone()).collect();
    let counts = events.action_counts(&ids).await?;
    let mut value = serde_json::to_value(page).expect("a page serialises");
    if let Some(listed) = value["events"].as_array_mut() {
        for (event, counts) in listed.iter_mut().zip(counts) {
            if let Some(fields) = event.as_object_mut() {
                fields.remove("actions");
                fields.insert("action_counts".into(), json!(counts));
            }
        }
    }
    Ok(value)
}

pub(crate) async fn event(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> AdminResult {
    let Some(mut event) = state.events.get(&id).await? else {
        return Err(AdminError::NotFound(format!(
            "no event `{id}` (events are kept 30 days)"
        )));
    };
    event.actions.clear();
    let actions = state.events.action_log(&id).await?;
    let outbox = match &state.outbox {
        Some(view) => view.outbox(&id).await?,
        None => None,
    };
    // The plan is shown once, as the action log beside the event (an empty `actions`
    // inside the event would read as "no actions").
    let mut event = serde_json::to_value(&event).expect("an event serialises");
    if let Some(fields) = event.as_object_mut() {
        fields.remove("actions");
    }
    Ok(axum::Json(
        json!({ "event": event, "actions": actions, "outbox": outbox }),
    ))
}
