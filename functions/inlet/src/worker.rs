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
use inlet_core::executor::{ActionExecutor, PlanRun};
use inlet_core::store::{EventLog, StoreError};
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

    /// Runs the remaining actions of one event and settles its outbox row.
    pub async fn run_event(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let Some(event) = self.store.get(&item.event_id).await? else {
            return self
                .store
                .outbox_finish(&item.event_id, Some("the event no longer exists"))
                .await;
        };
        match self
            .executor
            .run_plan(self.store.as_ref(), &event, self.max_attempts)
            .await?
        {
            PlanRun::Finished { failed } => {
                self.store.outbox_finish(&event.id, failed.as_deref()).await
            }
            PlanRun::RetryLater { attempts, error } => {
                let delay = self.backoff * 2u32.saturating_pow(attempts - 1);
                let next = self.clock.now_ms() + delay.as_millis() as i64;
                self.store
                    .outbox_retry_at(&event.id, attempts, next, &error)
                    .await
            }
        }
    }
}
