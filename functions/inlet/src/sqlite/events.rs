//! The event log: the one commit per event (idempotency record, event, plan, outbox
//! row and registry count in one transaction), and every read of events and actions.

use super::idempotency::holder;
use super::{SqliteStore, from_json, json_text};
use async_trait::async_trait;
use inlet_core::catalog::ActionKind;
use inlet_core::store::{
    ActionLogEntry, ActionUpdate, CommitError, CommitResult, Committed, EventLog, EventPage,
    EventQuery, EventRecord, EventStatus, EventTypeStats, EventWithLog, IdempotencyClaim,
    StoreError,
};
use rusqlite::{Connection, OptionalExtension, params};
use std::sync::Arc;

/// One event's commit, inside the caller's transaction: the idempotency check and
/// record, then the event as given or as the duplicate of the scope's holder.
fn commit_event(
    tx: &Connection,
    event: &EventRecord,
    claim: Option<&IdempotencyClaim>,
) -> rusqlite::Result<Committed> {
    let mut duplicate_of = None;
    if let Some(claim) = claim {
        let key = claim.scope.storage_key();
        match holder(tx, &key, claim.now_ms)? {
            Some(held) => duplicate_of = Some(held.event_id),
            None => {
                // The transaction holds the write lock since BEGIN IMMEDIATE, so no
                // other commit can have claimed the scope since the read above.
                tx.prepare_cached(
                    "INSERT INTO idempotency (scope_key, event_id, state, expires_at_ms, in_progress_until_ms)
                     VALUES (?1, ?2, 'completed', ?3, 0)
                     ON CONFLICT (scope_key) DO UPDATE SET
                         event_id = excluded.event_id, state = 'completed',
                         expires_at_ms = excluded.expires_at_ms, in_progress_until_ms = 0",
                )?
                .execute(params![key, event.id, claim.expires_at_ms])?;
            }
        }
    }
    insert_event(tx, event, duplicate_of.as_deref())?;
    Ok(match duplicate_of {
        Some(original_event_id) => Committed::Duplicate { original_event_id },
        None => Committed::Stored {
            event_id: event.id.clone(),
        },
    })
}

/// Writes the event, its planned actions, its outbox row (if queued) and its registry
/// count. With `duplicate_of`, it is written as that event's duplicate: status
/// `duplicate`, no actions, not queued.
fn insert_event(
    tx: &Connection,
    event: &EventRecord,
    duplicate_of: Option<&str>,
) -> rusqlite::Result<()> {
    let status = match duplicate_of {
        Some(_) => EventStatus::Duplicate,
        None => event.status,
    };
    tx.prepare_cached(
        "INSERT INTO events (id, source, environment, status, verification, event_type,
            received_at_ms, occurred_at_ms, idempotency_key, duplicate_of, method, query,
            headers, raw_body, preprocess, script_console, error, warnings, expires_at_ms, replay_of)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
    )?
    .execute(params![
        event.id,
        event.source,
        event.environment,
        status.as_str(),
        event.verification.as_str(),
        event.event_type,
        event.received_at_ms,
        event.occurred_at_ms,
        event.idempotency_key,
        duplicate_of.or(event.duplicate_of.as_deref()),
        event.method,
        event.query,
        json_text(&event.headers),
        event.raw_body,
        event.preprocess.as_ref().map(json_text),
        json_text(&event.script_console),
        event.error,
        json_text(&event.warnings),
        event.expires_at_ms,
        event.replay_of,
    ])?;
    if duplicate_of.is_none() {
        let mut insert_action = tx.prepare_cached(
            "INSERT INTO actions (event_id, idx, action, params, payload, status, error,
                updated_at_ms, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        for action in &event.actions {
            insert_action.execute(params![
                event.id,
                action.index as i64,
                action.action.name(),
                json_text(&action.params),
                json_text(&action.payload),
                if action.skipped.is_some() {
                    "skipped"
                } else {
                    "planned"
                },
                action.skipped,
                event.received_at_ms,
                event.expires_at_ms,
            ])?;
        }
        if event.is_queued() {
            tx.prepare_cached(
                "INSERT INTO outbox (event_id, state, next_attempt_at_ms, created_at_ms)
                 VALUES (?1, 'pending', ?2, ?2)",
            )?
            .execute(params![event.id, event.received_at_ms])?;
        }
    }
    // The registry counts accepted events (see `EventRecord::counts_in_registry`).
    if let (Some(event_type), EventStatus::Accepted) = (&event.event_type, status) {
        tx.prepare_cached(
            "INSERT INTO event_types (source, environment, event_type, count, first_seen_ms,
                last_seen_ms, last_event_id, last_sample)
             VALUES (?1, ?2, ?3, 1, ?4, ?4, ?5, ?6)
             ON CONFLICT (source, environment, event_type) DO UPDATE SET
                count = count + 1, last_seen_ms = excluded.last_seen_ms,
                last_event_id = excluded.last_event_id, last_sample = excluded.last_sample",
        )?
        .execute(params![
            event.source,
            event.environment,
            event_type,
            event.received_at_ms,
            event.id,
            event.raw_body
        ])?;
    }
    Ok(())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn commit(&self, event: EventRecord, claim: Option<&IdempotencyClaim>) -> CommitResult {
        let queued = event.is_queued();
        // Shared with the write, which drops its copy once it ran, so the event can be
        // handed back whole if the commit fails.
        let event = Arc::new(event);
        let (written, claim) = (event.clone(), claim.cloned());
        let outcome = self
            .writer
            .write(move |conn| commit_event(conn, &written, claim.as_ref()))
            .await;
        match outcome {
            Ok(committed) => {
                if queued && matches!(committed, Committed::Stored { .. }) {
                    self.outbox_wakeup.notify_one();
                }
                Ok(committed)
            }
            Err(error) => {
                let event = Arc::try_unwrap(event).unwrap_or_else(|shared| (*shared).clone());
                Err(CommitError::new(error, event))
            }
        }
    }

    async fn get(&self, event_id: &str) -> Result<Option<EventRecord>, StoreError> {
        let event_id = event_id.to_string();
        self.call(move |conn| read_event(conn, &event_id)).await
    }

    async fn event_types(
        &self,
        source: &str,
        environment: &str,
    ) -> Result<Vec<EventTypeStats>, StoreError> {
        let (source, environment) = (source.to_string(), environment.to_string());
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT source, environment, event_type, count, first_seen_ms, last_seen_ms,
                        last_event_id, last_sample
                 FROM event_types WHERE source = ?1 AND environment = ?2 ORDER BY event_type",
            )?;
            let rows = stmt.query_map(params![source, environment], |r| {
                Ok(EventTypeStats {
                    source: r.get(0)?,
                    environment: r.get(1)?,
                    event_type: r.get(2)?,
                    count: r.get::<_, i64>(3)? as u64,
                    first_seen_ms: r.get(4)?,
                    last_seen_ms: r.get(5)?,
                    last_event_id: r.get(6)?,
                    last_sample: r.get(7)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    async fn list(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let query = query.clone();
        self.call(move |conn| {
            let mut sql = String::from("SELECT id FROM events WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut filter = |clause: &str, value: rusqlite::types::Value| {
                args.push(value);
                sql.push_str(&format!(" AND {clause} ?{}", args.len()));
            };
            if let Some(v) = &query.source {
                filter("source =", v.clone().into());
            }
            if let Some(v) = &query.environment {
                filter("environment =", v.clone().into());
            }
            if let Some(v) = &query.event_type {
                filter("event_type =", v.clone().into());
            }
            if let Some(v) = query.status {
                filter("status =", v.as_str().to_string().into());
            }
            if let Some(v) = query.since_ms {
                filter("received_at_ms >=", v.into());
            }
            if let Some(v) = query.until_ms {
                filter("received_at_ms <", v.into());
            }
            if let Some(v) = &query.cursor {
                filter("id <", v.clone().into());
            }
            sql.push_str(&format!(" ORDER BY id DESC LIMIT {}", query.limit + 1));
            let ids: Vec<String> = conn
                .prepare(&sql)?
                .query_map(rusqlite::params_from_iter(args), |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut events = Vec::with_capacity(ids.len());
            for id in &ids {
                if let Some(mut event) = read_event(conn, id)? {
                    event.actions.clear();
                    events.push(event);
                }
            }
            Ok(EventPage::first(events, query.limit))
        })
        .await
    }

    async fn action_log(&self, event_id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
        let event_id = event_id.to_string();
        self.call(move |conn| read_action_log(conn, &event_id))
            .await
    }

    /// One read for the worker's whole round.
    async fn get_with_logs(&self, event_ids: &[String]) -> Result<Vec<EventWithLog>, StoreError> {
        let event_ids = event_ids.to_vec();
        self.call(move |conn| {
            event_ids
                .iter()
                .map(|id| {
                    let event = read_event(conn, id)?;
                    let log = match &event {
                        Some(_) => read_action_log(conn, id)?,
                        None => Vec::new(),
                    };
                    Ok((event, log))
                })
                .collect()
        })
        .await
    }

    /// Queued on the worker's session (see [`Writer::queue_early`]): a failure surfaces
    /// at the worker's next round, with nothing after it committed.
    async fn update_action(&self, event_id: &str, update: &ActionUpdate) -> Result<(), StoreError> {
        let (event_id, update) = (event_id.to_string(), update.clone());
        self.writer.queue_early("recording an action's outcome", move |conn| {
            let changed = conn
                .prepare_cached(
                    "UPDATE actions SET status = ?3, result = ?4, error = ?5, attempts = ?6, updated_at_ms = ?7
                     WHERE event_id = ?1 AND idx = ?2",
                )?
                .execute(params![
                    event_id,
                    update.index as i64,
                    update.status.as_str(),
                    update.result.as_ref().map(json_text),
                    update.error,
                    update.attempts as i64,
                    update.now_ms
                ])?;
            match changed {
                0 => Err(rusqlite::Error::ToSqlConversionFailure(
                    format!("no action {} on event {event_id}", update.index).into(),
                )),
                _ => Ok(()),
            }
        });
        Ok(())
    }
}

/// A stored status read back as its type: a name none has is an error that names it
/// (a damaged or newer file), never taken for another status.
fn stored_name<T: std::str::FromStr>(column: usize, text: String) -> rusqlite::Result<T> {
    text.parse().map_err(|_| {
        let what = std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("status");
        rusqlite::Error::FromSqlConversionFailure(
            column,
            rusqlite::types::Type::Text,
            format!("`{text}` is not a {what} this version of Inlet knows").into(),
        )
    })
}

fn read_action_log(conn: &Connection, event_id: &str) -> rusqlite::Result<Vec<ActionLogEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT idx, action, params, payload, status, result, error, attempts, updated_at_ms
         FROM actions WHERE event_id = ?1 ORDER BY idx",
    )?;
    let rows = stmt.query_map([event_id], |r| {
        let action: String = r.get(1)?;
        let status: String = r.get(4)?;
        let result: Option<String> = r.get(5)?;
        Ok(ActionLogEntry {
            index: r.get::<_, i64>(0)? as usize,
            action: ActionKind::from_name(&action).ok_or_else(|| {
                rusqlite::Error::InvalidColumnType(1, action.clone(), rusqlite::types::Type::Text)
            })?,
            params: from_json(&r.get::<_, String>(2)?)?,
            payload: from_json(&r.get::<_, String>(3)?)?,
            status: stored_name(4, status)?,
            result: result.as_deref().map(from_json).transpose()?,
            error: r.get(6)?,
            attempts: r.get::<_, i64>(7)? as u32,
            updated_at_ms: r.get(8)?,
        })
    })?;
    rows.collect()
}

fn read_event(conn: &Connection, event_id: &str) -> rusqlite::Result<Option<EventRecord>> {
    let event = conn
        .prepare_cached(
            "SELECT id, source, environment, status, verification, event_type, received_at_ms,
                    occurred_at_ms, idempotency_key, duplicate_of, method, query, headers, raw_body,
                    preprocess, script_console, error, warnings, expires_at_ms, replay_of
             FROM events WHERE id = ?1",
        )?
        .query_row([event_id], |r| {
            let status: String = r.get(3)?;
            let verification: String = r.get(4)?;
            let preprocess: Option<String> = r.get(14)?;
            Ok(EventRecord {
                id: r.get(0)?,
                source: r.get(1)?,
                environment: r.get(2)?,
                status: stored_name(3, status)?,
                verification: stored_name(4, verification)?,
                event_type: r.get(5)?,
                received_at_ms: r.get(6)?,
                occurred_at_ms: r.get(7)?,
                idempotency_key: r.get(8)?,
                duplicate_of: r.get(9)?,
                replay_of: r.get(19)?,
                method: r.get(10)?,
                query: r.get(11)?,
                headers: from_json(&r.get::<_, String>(12)?)?,
                raw_body: r.get(13)?,
                preprocess: preprocess.as_deref().map(from_json).transpose()?,
                script_console: from_json(&r.get::<_, String>(15)?)?,
                error: r.get(16)?,
                warnings: from_json(&r.get::<_, String>(17)?)?,
                actions: Vec::new(),
                expires_at_ms: r.get(18)?,
            })
        })
        .optional()?;
    let Some(mut event) = event else {
        return Ok(None);
    };
    event.actions = read_action_log(conn, event_id)?
        .iter()
        .map(ActionLogEntry::planned_action)
        .collect();
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::stored_name;
    use inlet_core::store::{ActionStatus, EventStatus, VerificationStatus};

    #[test]
    fn a_stored_name_none_has_is_an_error_not_another_status() {
        assert_eq!(
            stored_name::<ActionStatus>(4, "failed".into()).unwrap(),
            ActionStatus::Failed
        );
        assert_eq!(
            stored_name::<VerificationStatus>(4, "enforced:verified".into()).unwrap(),
            VerificationStatus::EnforcedVerified
        );
        let damaged = stored_name::<EventStatus>(3, "acepted".into()).unwrap_err();
        assert!(
            damaged
                .to_string()
                .contains("`acepted` is not a EventStatus"),
            "{damaged}"
        );
        assert!(stored_name::<ActionStatus>(4, "done".into()).is_err());
    }
}
