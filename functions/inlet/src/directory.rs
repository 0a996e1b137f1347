//! The directory on SQLite: users, objects, tenants, subscriptions, audiences and
//! workflow runs, per environment, in the same file as the event log.
//!
//! [`Directory::apply`] runs one action's changes and records its key in
//! `applied_actions` in a single transaction, so an action is applied exactly once
//! however often the executor re-runs it.

use crate::sqlite::{Cached, SqliteStore, from_json, json_text};
use async_trait::async_trait;
use inlet_core::directory::{
    ActionChanges, Applied, Directory, DirectoryChange, DirectoryError, Entity, RecipientRef,
    WorkflowRun, merge_properties,
};
use inlet_core::store::StoreError;
use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};

fn directory_error(e: StoreError) -> DirectoryError {
    match e {
        StoreError::Unavailable(m) => DirectoryError::Unavailable(m),
        StoreError::Failed(m) => DirectoryError::Failed(m),
    }
}

/// A rejected change, carried through rusqlite's error type out of the transaction.
#[derive(Debug)]
struct Rejected(String);
impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Rejected {}

fn rejected(message: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(Rejected(message)))
}

fn recipient_key(r: &RecipientRef) -> String {
    json_text(&r.to_json())
}

/// Inserts or merges an entity row of `table` (users, tenants) keyed by (environment, id).
fn upsert_entity(
    tx: &rusqlite::Connection,
    table: &str,
    environment: &str,
    id: &str,
    update: &Map<String, Value>,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let existing: Option<String> = tx
        .row(
            &format!("SELECT properties FROM {table} WHERE environment = ?1 AND id = ?2"),
            params![environment, id],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(text) => {
            let mut properties: Map<String, Value> = from_json(&text)?;
            merge_properties(&mut properties, update);
            tx.exec(
                &format!("UPDATE {table} SET properties = ?3, updated_at_ms = ?4 WHERE environment = ?1 AND id = ?2"),
                params![environment, id, json_text(&properties), now_ms],
            )?;
        }
        None => {
            tx.exec(
                &format!("INSERT INTO {table} (environment, id, properties, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?4, ?4)"),
                params![environment, id, json_text(update), now_ms],
            )?;
        }
    }
    Ok(())
}

fn apply_change(
    tx: &rusqlite::Connection,
    env: &str,
    change: &DirectoryChange,
    now_ms: i64,
) -> rusqlite::Result<()> {
    match change {
        DirectoryChange::IdentifyUser { id, properties } => {
            upsert_entity(tx, "users", env, id, properties, now_ms)?;
        }
        DirectoryChange::DeleteUser { id } => {
            tx.exec(
                "DELETE FROM users WHERE environment = ?1 AND id = ?2",
                params![env, id],
            )?;
            tx.exec(
                "DELETE FROM subscriptions WHERE environment = ?1 AND recipient = ?2",
                params![env, recipient_key(&RecipientRef::User(id.clone()))],
            )?;
            tx.exec(
                "DELETE FROM audience_members WHERE environment = ?1 AND user_id = ?2",
                params![env, id],
            )?;
        }
        DirectoryChange::SetObject {
            collection,
            id,
            properties,
        } => {
            let existing: Option<String> = tx
                .row(
                    "SELECT properties FROM objects WHERE environment = ?1 AND collection = ?2 AND id = ?3",
                    params![env, collection, id],
                    |r| r.get(0),
                )
                .optional()?;
            let mut merged: Map<String, Value> = match existing {
                Some(text) => from_json(&text)?,
                None => Map::new(),
            };
            merge_properties(&mut merged, properties);
            tx.exec(
                "INSERT INTO objects (environment, collection, id, properties, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT (environment, collection, id) DO UPDATE SET
                    properties = excluded.properties, updated_at_ms = excluded.updated_at_ms",
                params![env, collection, id, json_text(&merged), now_ms],
            )?;
        }
        DirectoryChange::DeleteObject { collection, id } => {
            tx.exec(
                "DELETE FROM objects WHERE environment = ?1 AND collection = ?2 AND id = ?3",
                params![env, collection, id],
            )?;
            tx.exec(
                "DELETE FROM subscriptions WHERE environment = ?1 AND collection = ?2 AND object_id = ?3",
                params![env, collection, id],
            )?;
            tx.exec(
                "DELETE FROM subscriptions WHERE environment = ?1 AND recipient = ?2",
                params![
                    env,
                    recipient_key(&RecipientRef::Object {
                        collection: collection.clone(),
                        id: id.clone()
                    })
                ],
            )?;
        }
        DirectoryChange::SetTenant { id, properties } => {
            upsert_entity(tx, "tenants", env, id, properties, now_ms)?;
        }
        DirectoryChange::DeleteTenant { id } => {
            tx.exec(
                "DELETE FROM tenants WHERE environment = ?1 AND id = ?2",
                params![env, id],
            )?;
        }
        DirectoryChange::Subscribe {
            collection,
            id,
            recipients,
            properties,
        } => {
            let exists: bool = tx.row(
                "SELECT EXISTS (SELECT 1 FROM objects WHERE environment = ?1 AND collection = ?2 AND id = ?3)",
                params![env, collection, id],
                |r| r.get(0),
            )?;
            if !exists {
                // Knock's subscribe upserts the object; so does Inlet.
                tx.exec(
                    "INSERT INTO objects (environment, collection, id, properties, created_at_ms, updated_at_ms)
                     VALUES (?1, ?2, ?3, '{}', ?4, ?4)",
                    params![env, collection, id, now_ms],
                )?;
            }
            for r in recipients {
                tx.exec(
                    "INSERT INTO subscriptions (environment, collection, object_id, recipient, properties)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO UPDATE SET properties = excluded.properties",
                    params![env, collection, id, recipient_key(r), json_text(properties)],
                )?;
            }
        }
        DirectoryChange::Unsubscribe {
            collection,
            id,
            recipients,
        } => {
            for r in recipients {
                tx.exec(
                    "DELETE FROM subscriptions WHERE environment = ?1 AND collection = ?2 AND object_id = ?3 AND recipient = ?4",
                    params![env, collection, id, recipient_key(r)],
                )?;
            }
        }
        DirectoryChange::AddAudienceMembers {
            key,
            members,
            tenant,
            create_if_missing,
        } => {
            let exists: bool = tx.row(
                "SELECT EXISTS (SELECT 1 FROM audiences WHERE environment = ?1 AND key = ?2)",
                params![env, key],
                |r| r.get(0),
            )?;
            if !exists {
                if !create_if_missing {
                    return Err(rejected(format!(
                        "audience `{key}` does not exist; create it first or map `create_if_missing: {{ value: true }}`"
                    )));
                }
                tx.exec(
                    "INSERT INTO audiences (environment, key, created_at_ms) VALUES (?1, ?2, ?3)",
                    params![env, key, now_ms],
                )?;
            }
            for user in members {
                tx.exec(
                    "INSERT OR IGNORE INTO audience_members (environment, key, user_id, tenant) VALUES (?1, ?2, ?3, ?4)",
                    params![env, key, user, tenant.clone().unwrap_or_default()],
                )?;
            }
        }
        DirectoryChange::RemoveAudienceMembers {
            key,
            members,
            tenant,
        } => {
            for user in members {
                tx.exec(
                    "DELETE FROM audience_members WHERE environment = ?1 AND key = ?2 AND user_id = ?3 AND tenant = ?4",
                    params![env, key, user, tenant.clone().unwrap_or_default()],
                )?;
            }
        }
        DirectoryChange::RecordWorkflowRun(run) => {
            tx.exec(
                "INSERT INTO workflow_runs (environment, id, workflow_key, run, cancellation_key, status, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![env, run.id, run.workflow_key, json_text(run), run.cancellation_key, run.status, run.created_at_ms],
            )?;
        }
        DirectoryChange::CancelWorkflowRuns {
            workflow_key,
            cancellation_key,
            recipients,
        } => {
            let mut stmt = tx.prepare(
                "SELECT id, run FROM workflow_runs
                 WHERE environment = ?1 AND workflow_key = ?2 AND cancellation_key = ?3 AND status = 'triggered'",
            )?;
            let runs: Vec<(String, String)> = stmt
                .query_map(params![env, workflow_key, cancellation_key], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            for (id, text) in runs {
                let mut run: WorkflowRun = from_json(&text)?;
                let included = recipients
                    .as_ref()
                    .is_none_or(|only| run.recipients.iter().any(|r| only.contains(r)));
                if included {
                    run.status = "cancelled".into();
                    tx.exec(
                        "UPDATE workflow_runs SET status = 'cancelled', run = ?3 WHERE environment = ?1 AND id = ?2",
                        params![env, id, json_text(&run)],
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn read_entity(row: &rusqlite::Row<'_>) -> rusqlite::Result<Entity> {
    Ok(Entity {
        id: row.get(0)?,
        properties: from_json(&row.get::<_, String>(1)?)?,
        created_at_ms: row.get(2)?,
        updated_at_ms: row.get(3)?,
    })
}

impl SqliteStore {
    async fn dir<T, F>(&self, f: F) -> Result<T, DirectoryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.call(f).await.map_err(directory_error)
    }

    /// One user, tenant or object from `table`, by its key: environment and id, or for
    /// objects environment, collection and id.
    async fn entity(
        &self,
        table: &'static str,
        key: &[&str],
    ) -> Result<Option<Entity>, DirectoryError> {
        let key_columns = match key.len() {
            2 => "environment = ?1 AND id = ?2",
            _ => "environment = ?1 AND collection = ?2 AND id = ?3",
        };
        let sql = format!(
            "SELECT id, properties, created_at_ms, updated_at_ms FROM {table} WHERE {key_columns}"
        );
        let key: Vec<String> = key.iter().map(|k| k.to_string()).collect();
        self.dir(move |conn| {
            conn.row(&sql, rusqlite::params_from_iter(key), read_entity)
                .optional()
        })
        .await
    }
}

#[async_trait]
impl Directory for SqliteStore {
    async fn apply(&self, action: ActionChanges<'_>) -> Result<Applied, DirectoryError> {
        let (env, key, changes, result, now_ms) = (
            action.environment.to_string(),
            action.key.clone(),
            action.changes.to_vec(),
            action.result.clone(),
            action.now_ms,
        );
        self.writer()
            .write_early(move |tx| {
                let before: Option<String> = tx
                    .row(
                        "SELECT result FROM applied_actions WHERE environment = ?1 AND event_id = ?2 AND idx = ?3",
                        params![env, key.event_id, key.index as i64],
                        |r| r.get(0),
                    )
                    .optional()?;
                if let Some(text) = before {
                    return Ok(Ok(Applied::Before(from_json(&text)?)));
                }
                for change in &changes {
                    match apply_change(tx, &env, change, now_ms) {
                        Ok(()) => {}
                        Err(rusqlite::Error::ToSqlConversionFailure(e)) if e.is::<Rejected>() => {
                            return Ok(Err(DirectoryError::Rejected(e.to_string())));
                        }
                        Err(e) => return Err(e),
                    }
                }
                tx.exec(
                    "INSERT INTO applied_actions (environment, event_id, idx, result, applied_at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![env, key.event_id, key.index as i64, json_text(&result), now_ms],
                )?;
                Ok(Ok(Applied::Now))
            })
            .await
            .map_err(directory_error)?
    }

    async fn known_users(
        &self,
        environment: &str,
        ids: &[String],
    ) -> Result<Vec<String>, DirectoryError> {
        let (env, ids) = (environment.to_string(), ids.to_vec());
        // Through the writer, in the worker's order: it sees the users the plan's earlier
        // actions identified, even before they commit.
        self.writer()
            .write_early(move |conn| {
                let mut stmt = conn.prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE environment = ?1 AND id = ?2)",
                )?;
                let mut known = Vec::new();
                for id in ids {
                    if stmt.query_row(params![env, id], |r| r.get::<_, bool>(0))? {
                        known.push(id);
                    }
                }
                Ok(known)
            })
            .await
            .map_err(directory_error)
    }

    async fn user(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.entity("users", &[environment, id]).await
    }

    async fn object(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Entity>, DirectoryError> {
        self.entity("objects", &[environment, collection, id]).await
    }

    async fn tenant(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError> {
        self.entity("tenants", &[environment, id]).await
    }

    async fn subscriptions(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(RecipientRef, Map<String, Value>)>, DirectoryError> {
        let (env, collection, id) = (
            environment.to_string(),
            collection.to_string(),
            id.to_string(),
        );
        self.dir(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT recipient, properties FROM subscriptions
                 WHERE environment = ?1 AND collection = ?2 AND object_id = ?3 ORDER BY recipient",
            )?;
            let rows = stmt.query_map(params![env, collection, id], |r| {
                Ok((
                    from_json(&r.get::<_, String>(0)?)?,
                    from_json(&r.get::<_, String>(1)?)?,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn audience_members(
        &self,
        environment: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError> {
        let (env, key) = (environment.to_string(), key.to_string());
        self.dir(move |conn| {
            let exists: bool = conn.row(
                "SELECT EXISTS (SELECT 1 FROM audiences WHERE environment = ?1 AND key = ?2)",
                params![env, key],
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(None);
            }
            let mut stmt = conn.prepare(
                "SELECT DISTINCT user_id FROM audience_members WHERE environment = ?1 AND key = ?2 ORDER BY user_id",
            )?;
            let rows = stmt.query_map(params![env, key], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>().map(Some)
        })
        .await
    }

    async fn workflow_run(
        &self,
        environment: &str,
        id: &str,
    ) -> Result<Option<WorkflowRun>, DirectoryError> {
        let (env, id) = (environment.to_string(), id.to_string());
        self.dir(move |conn| {
            let text: Option<String> = conn
                .row(
                    "SELECT run FROM workflow_runs WHERE environment = ?1 AND id = ?2",
                    params![env, id],
                    |r| r.get(0),
                )
                .optional()?;
            text.as_deref().map(from_json).transpose()
        })
        .await
    }

    async fn workflow_runs(
        &self,
        environment: &str,
        workflow_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, DirectoryError> {
        let (env, key) = (environment.to_string(), workflow_key.map(str::to_string));
        self.dir(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT run FROM workflow_runs WHERE environment = ?1 AND (?2 IS NULL OR workflow_key = ?2)
                 ORDER BY created_at_ms DESC, id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![env, key, limit as i64], |r| {
                from_json::<WorkflowRun>(&r.get::<_, String>(0)?)
            })?;
            rows.collect()
        })
        .await
    }
}
