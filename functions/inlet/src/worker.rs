//! The action executor of `inlet dev`: drains the outbox in the background.
//!
//! Each pending outbox row is one accepted event. Its plan runs in order; an action
//! already `succeeded`, `skipped` or `failed` is not run again, and directory changes are
//! applied once per (event, action index), so a restart after a crash resumes where it
//! stopped without applying anything twice. A retryable failure stops the event's run
//! and schedules another attempt with exponential backoff (1 s, 2 s, ...); after
//! `max_attempts` the action is `failed` and, once the rest of the plan has run, the
//! outbox row is `dead` with the error.

use crate::sqlite::{OutboxItem, SqliteStore};
use inlet_core::clock::Clock;
use inlet_core::executor::{ActionExecutor, ActionOutcome};
use inlet_core::store::{ActionStatus, ActionUpdate, EventLog, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub struct Worker {
    pub store: Arc<SqliteStore>,
    pub executor: ActionExecutor,
    pub clock: Arc<dyn Clock>,
    pub max_attempts: u32,
    pub backoff: Duration,
}

impl Worker {
    /// Runs until `stop` turns true, waking on `wakeup` or every `poll`.
    pub fn spawn(
        self,
        wakeup: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
        poll: Duration,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if *stop.borrow() {
                    break;
                }
                let due = match self.store.due_outbox(self.clock.now_ms(), 32).await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the outbox; retrying");
                        Vec::new()
                    }
                };
                for item in &due {
                    if *stop.borrow() {
                        break;
                    }
                    if let Err(e) = self.run_event(item).await {
                        tracing::error!(event_id = %item.event_id, error = %e, "action run interrupted by a store error; it resumes later");
                    }
                }
                if due.is_empty() {
                    tokio::select! {
                        _ = wakeup.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        })
    }

    /// Runs the remaining actions of one event.
    pub async fn run_event(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let Some(event) = self.store.get(&item.event_id).await? else {
            return self
                .store
                .outbox_finish(&item.event_id, Some("the event no longer exists"))
                .await;
        };
        let log = self.store.action_log(&event.id).await?;
        let mut dead: Option<String> = None;
        for entry in log.iter().filter(|e| e.status == ActionStatus::Planned) {
            let Some(planned) = event.actions.iter().find(|a| a.index == entry.index) else {
                continue;
            };
            let attempts = entry.attempts + 1;
            let outcome = self.executor.execute(&event, planned).await;
            let now_ms = self.clock.now_ms();
            let update = |status, result, error| ActionUpdate {
                index: entry.index,
                status,
                result,
                error,
                attempts,
                now_ms,
            };
            match outcome {
                ActionOutcome::Succeeded(result) => {
                    tracing::info!(event_id = %event.id, action = planned.action.name(), "action succeeded");
                    self.store
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Succeeded, Some(result), None),
                        )
                        .await?;
                }
                ActionOutcome::Failed {
                    error,
                    retryable: true,
                } if attempts < self.max_attempts => {
                    let delay = self.backoff * 2u32.saturating_pow(attempts - 1);
                    tracing::warn!(event_id = %event.id, action = planned.action.name(), attempts, %error, "action failed; retrying in {delay:?}");
                    self.store
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Planned, None, Some(error.clone())),
                        )
                        .await?;
                    let next = now_ms + delay.as_millis() as i64;
                    return self
                        .store
                        .outbox_retry_at(&event.id, attempts, next, &error)
                        .await;
                }
                ActionOutcome::Failed { error, .. } => {
                    tracing::error!(event_id = %event.id, action = planned.action.name(), attempts, %error, "action failed");
                    self.store
                        .update_action(
                            &event.id,
                            &update(ActionStatus::Failed, None, Some(error.clone())),
                        )
                        .await?;
                    dead.get_or_insert(format!(
                        "action {} ({}): {error}",
                        entry.index,
                        planned.action.name()
                    ));
                }
            }
        }
        self.store.outbox_finish(&event.id, dead.as_deref()).await
    }
}
