//! The local action executor loop: drains the [`Outbox`] in the background (`inlet dev`
//! runs it on the SQLite store; tests and dry runs on the memory store).
//!
//! Each pending outbox row is one accepted event, written in the event's own commit. Its
//! plan runs in order; an action already `succeeded`, `skipped` or `failed` is not run
//! again, and directory changes are applied once per (event, action index), so a restart
//! after a crash (at any point: before an action, between its directory change and its
//! log entry, before the row is closed) resumes where it stopped without applying
//! anything twice. A retryable failure stops the event's run and schedules another
//! attempt with exponential backoff (1 s, 2 s, ...); after `max_attempts` the action is
//! `failed` and, once the rest of the plan has run, the outbox row is `dead` with the
//! error.

use crate::clock::Clock;
use crate::executor::{ActionExecutor, PlanRun};
use crate::store::{EventLog, Outbox, OutboxItem, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Rows read from the outbox per round.
const ROWS_PER_ROUND: usize = 32;

pub struct OutboxWorker {
    pub events: Arc<dyn EventLog>,
    pub outbox: Arc<dyn Outbox>,
    pub executor: ActionExecutor,
    pub clock: Arc<dyn Clock>,
    pub max_attempts: u32,
    pub backoff: Duration,
}

impl OutboxWorker {
    /// Runs until `stop` turns true, waking on `wakeup` (signalled by commits that queue
    /// an event) or every `poll` (for retries that come due).
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
                let due = match self.outbox.due(self.clock.now_ms(), ROWS_PER_ROUND).await {
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

    /// Runs every row that is due now, once, and returns how many there were.
    pub async fn run_due(&self) -> Result<usize, StoreError> {
        let due = self.outbox.due(self.clock.now_ms(), usize::MAX).await?;
        for item in &due {
            self.run_event(item).await?;
        }
        Ok(due.len())
    }

    /// Runs the remaining actions of one event and settles its outbox row.
    pub async fn run_event(&self, item: &OutboxItem) -> Result<(), StoreError> {
        let Some(event) = self.events.get(&item.event_id).await? else {
            return self
                .outbox
                .finish(&item.event_id, Some("the event no longer exists"))
                .await;
        };
        match self
            .executor
            .run_plan(self.events.as_ref(), &event, self.max_attempts)
            .await?
        {
            PlanRun::Finished { failed } => self.outbox.finish(&event.id, failed.as_deref()).await,
            PlanRun::RetryLater { attempts, error } => {
                let delay = self.backoff * 2u32.saturating_pow(attempts - 1);
                let next = self.clock.now_ms() + delay.as_millis() as i64;
                self.outbox
                    .retry_at(&event.id, attempts, next, &error)
                    .await
            }
        }
    }
}
