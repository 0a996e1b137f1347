//! The directory's routes: users, tenants, objects and their subscriptions, audiences,
//! workflow runs (`GET /admin/directory/...`).

use crate::{AdminError, AdminResult, AdminState, environment};
use axum::extract::{Path, Query, State};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

fn found<T: serde::Serialize>(what: String, value: Option<T>) -> AdminResult {
    match value {
        Some(v) => Ok(axum::Json(
            serde_json::to_value(v).expect("directory records serialise"),
        )),
        None => Err(AdminError::NotFound(format!("no {what}"))),
    }
}

pub(crate) async fn user(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    // Knock's shape: `email`, `name`, … and custom properties at the top level.
    let user = state.directory.user(&env, &id).await?.map(|user| {
        let mut shaped = serde_json::Map::new();
        shaped.insert("id".into(), json!(user.id));
        for (key, value) in user.properties {
            if !matches!(key.as_str(), "id" | "created_at_ms" | "updated_at_ms") {
                shaped.insert(key, value);
            }
        }
        shaped.insert("created_at_ms".into(), json!(user.created_at_ms));
        shaped.insert("updated_at_ms".into(), json!(user.updated_at_ms));
        Value::Object(shaped)
    });
    found(format!("user `{id}` in {env}"), user)
}

pub(crate) async fn tenant(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    found(
        format!("tenant `{id}` in {env}"),
        state.directory.tenant(&env, &id).await?,
    )
}

pub(crate) async fn object(
    State(state): State<Arc<AdminState>>,
    Path((collection, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    found(
        format!("object `{collection}/{id}` in {env}"),
        state.directory.object(&env, &collection, &id).await?,
    )
}

pub(crate) async fn subscriptions(
    State(state): State<Arc<AdminState>>,
    Path((collection, id)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    let subs: Vec<Value> = state
        .directory
        .subscriptions(&env, &collection, &id)
        .await?
        .into_iter()
        .map(|(recipient, properties)| json!({"recipient": recipient.to_json(), "properties": properties}))
        .collect();
    // Like the object itself: an object that does not exist (and has no subscriptions
    // either) is a 404, not an empty list that reads as "exists, no subscribers".
    if subs.is_empty()
        && state
            .directory
            .object(&env, &collection, &id)
            .await?
            .is_none()
    {
        return Err(AdminError::NotFound(format!(
            "no object `{collection}/{id}` in {env}"
        )));
    }
    Ok(axum::Json(
        json!({ "collection": collection, "id": id, "subscriptions": subs }),
    ))
}

pub(crate) async fn audience(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    let members = state.directory.audience_members(&env, &key).await?;
    found(
        format!("audience `{key}` in {env}"),
        members.map(|m| json!({"key": key, "members": m})),
    )
}

pub(crate) async fn workflow_run(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    found(
        format!("workflow run `{id}` in {env}"),
        state.directory.workflow_run(&env, &id).await?,
    )
}

pub(crate) async fn workflow_runs(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let env = environment(&state, &query).await?;
    let runs = state
        .directory
        .workflow_runs(&env, query.get("key").map(String::as_str), 100)
        .await?;
    Ok(axum::Json(json!({ "workflow_runs": runs })))
}
