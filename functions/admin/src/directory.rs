//! The directory's routes: users, tenants, objects and their subscriptions, audiences,
//! workflow runs (`GET /admin/directory/...`).

use crate::{AdminError, AdminResult, AdminState, environment};
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use inlet_core::directory::Directory;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The directory of the environment a request reads (`?env=`, else the stack's, else
/// the only one configured), taken from the request before its handler runs.
#[derive(Clone)]
pub(crate) struct EnvDirectory {
    directory: Arc<dyn Directory>,
    env: String,
}

impl FromRequestParts<Arc<AdminState>> for EnvDirectory {
    type Rejection = AdminError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AdminState>,
    ) -> Result<Self, AdminError> {
        let Query(query) = Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| AdminError::BadRequest(e.body_text()))?;
        Ok(EnvDirectory {
            directory: state.directory.clone(),
            env: environment(state, &query).await?,
        })
    }
}

impl EnvDirectory {
    /// `value` as the answer, or a 404 that says which `what` is missing where.
    fn found<T: serde::Serialize>(&self, what: String, value: Option<T>) -> AdminResult {
        match value {
            Some(v) => Ok(axum::Json(
                serde_json::to_value(v).expect("directory records serialise"),
            )),
            None => Err(AdminError::NotFound(format!("no {what} in {}", self.env))),
        }
    }
}

pub(crate) async fn user(at: EnvDirectory, Path(id): Path<String>) -> AdminResult {
    // Knock's shape: `email`, `name`, … and custom properties at the top level.
    let user = at.directory.user(&at.env, &id).await?.map(|user| {
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
    at.found(format!("user `{id}`"), user)
}

pub(crate) async fn tenant(at: EnvDirectory, Path(id): Path<String>) -> AdminResult {
    let tenant = at.directory.tenant(&at.env, &id).await?;
    at.found(format!("tenant `{id}`"), tenant)
}

pub(crate) async fn object(
    at: EnvDirectory,
    Path((collection, id)): Path<(String, String)>,
) -> AdminResult {
    let object = at.directory.object(&at.env, &collection, &id).await?;
    at.found(format!("object `{collection}/{id}`"), object)
}

pub(crate) async fn subscriptions(
    at: EnvDirectory,
    Path((collection, id)): Path<(String, String)>,
) -> AdminResult {
    let EnvDirectory { directory, env } = &at;
    let subs: Vec<Value> = directory
        .subscriptions(env, &collection, &id)
        .await?
        .into_iter()
        .map(|(recipient, properties)| json!({"recipient": recipient.to_json(), "properties": properties}))
        .collect();
    // Like the object itself: an object that does not exist (and has no subscriptions
    // either) is a 404, not an empty list that reads as "exists, no subscribers".
    if subs.is_empty() && directory.object(env, &collection, &id).await?.is_none() {
        return Err(AdminError::NotFound(format!(
            "no object `{collection}/{id}` in {env}"
        )));
    }
    Ok(axum::Json(
        json!({ "collection": collection, "id": id, "subscriptions": subs }),
    ))
}

pub(crate) async fn audience(at: EnvDirectory, Path(key): Path<String>) -> AdminResult {
    let members = at.directory.audience_members(&at.env, &key).await?;
    let audience = members.map(|m| json!({"key": key, "members": m}));
    at.found(format!("audience `{key}`"), audience)
}

pub(crate) async fn workflow_run(at: EnvDirectory, Path(id): Path<String>) -> AdminResult {
    let run = at.directory.workflow_run(&at.env, &id).await?;
    at.found(format!("workflow run `{id}`"), run)
}

pub(crate) async fn workflow_runs(
    at: EnvDirectory,
    Query(query): Query<HashMap<String, String>>,
) -> AdminResult {
    let key = query.get("key").map(String::as_str);
    let runs = at.directory.workflow_runs(&at.env, key, 100).await?;
    Ok(axum::Json(json!({ "workflow_runs": runs })))
}
