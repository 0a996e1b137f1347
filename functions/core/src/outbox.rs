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
//!
//! When the store itself fails (disk full, database locked, file read-only), the worker
//! backs off: 100 ms, doubling up to 5 s, with ±25 % jitter, until two rounds in a row
//! go through (one is not enough: SQLite answers the worker's writes before it commits
//! them, so a full disk fails every other round). The outage is logged when it starts,
//! then at most every 30 s with the number of failed rounds, and once when it ends, so a
//! long outage neither spins a core nor floods the log.

use crate::clock::Clock;
use crate::executor::{ActionExecutor, PlanRun};
use crate::store::{ActionLogEntry, EventLog, EventRecord, Outbox, OutboxItem, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Rows read from the outbox per round.
const ROWS_PER_ROUND: usize = 128;
/// The first wait after a store error, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const LONGEST_BACKOFF: Duration = Duration::from_secs(5);
/// How often an ongoing outage is logged again.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(30);

/// A run of failed rounds: how long to wait next, and when it was last logged.
#[derive(Default)]
struct Outage {
    failed_rounds: u64,
    since_logged: u64,
    backoff: Option<Duration>,
    logged_at: Option<Instant>,
    /// Rounds that went through since the last failure. One is not a recovery: a store
    /// that answers writes before it commits them (SQLite's early writes) reports their
    /// failure to the next round, so a full disk alternates between the two.
    good_rounds: u32,
}

impl Outage {
    /// Records a failed round; returns how long to wait before the next one.
    fn failed(&mut self, error: &StoreError) -> Duration {
        self.good_rounds = 0;
        self.failed_rounds += 1;
        self.since_logged += 1;
        let now = Instant::now();
        match self.logged_at {
            None => {
                tracing::error!(%error, "the store failed; the action worker backs off until it recovers");
                self.logged_at = Some(now);
                self.since_logged = 0;
            }
            Some(at) if now.duration_since(at) >= OUTAGE_LOG_EVERY => {
                tracing::error!(%error, failed_rounds = self.since_logged, "the store is still failing");
                self.logged_at = Some(now);
                self.since_logged = 0;
            }
            Some(_) => {}
        }
        let next = self
            .backoff
            .map_or(FIRST_BACKOFF, |b| (b * 2).min(LONGEST_BACKOFF));
        self.backoff = Some(next);
        jittered(next)
    }

    /// Records a round that went through; the outage ends with the second in a row.
    fn succeeded(&mut self) {
        if self.failed_rounds == 0 {
            return;
        }
        self.good_rounds += 1;
        if self.good_rounds < 2 {
            return;
        }
        tracing::info!(
            failed_rounds = self.failed_rounds,
            "the store works again; the action worker resumes"
        );
        *self = Outage::default();
    }
}

/// `base` ± 25 %.
fn jittered(base: Duration) -> Duration {
    let spread = base.as_millis() as u64 / 2;
    let offset = getrandom::u64().unwrap_or(0) % (spread + 1);
    base - base / 4 + Duration::from_millis(offset)
}

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
        stop: watch::Receiver<bool>,
        poll: Duration,
    ) -> JoinHandle<()> {
        tokio::spawn(self.run(wakeup, stop, poll))
    }

    /// What [`OutboxWorker::spawn`] runs, for a caller that drives it on a runtime of
    /// its own.
    pub async fn run(self, wakeup: Arc<Notify>, mut stop: watch::Receiver<bool>, poll: Duration) {
        {
            let mut outage = Outage::default();
            loop {
                if *stop.borrow() {
                    break;
                }
                let wait = match self.round(&stop).await {
                    Ok(0) => {
                        outage.succeeded();
                        None
                    }
                    Ok(_) => {
                        outage.succeeded();
                        continue;
                    }
                    Err(error) => Some(outage.failed(&error)),
                };
                match wait {
                    None => tokio::select! {
                        _ = wakeup.notified() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = stop.changed() => {}
                    },
                    Some(backoff) => tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => {}
                    },
                }
            }
        }
    }

    /// One round: the rows due now (up to [`ROWS_PER_ROUND`]), each run in turn; stops
    /// at the first store error. Returns how many rows were due.
    ///
    /// The round's events and action logs are read before any of them runs, so a store
    /// that commits the worker's writes in batches (SQLite) need not commit between
    /// events: the round's writes share commits.
    async fn round(&self, stop: &watch::Receiver<bool>) -> Result<usize, StoreError> {
        let due = self.outbox.due(self.clock.now_ms(), ROWS_PER_ROUND).await?;
        let ids: Vec<String> = due.iter().map(|item| item.event_id.clone()).collect();
        let found = self.events.get_with_logs(&ids).await?;
        for (item, (event, log)) in due.iter().zip(found) {
            if *stop.borrow() {
                break;
            }
            self.settle_event(item, event, &log).await?;
        }
        Ok(due.len())
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
        let event = self.events.get(&item.event_id).await?;
        let log = match &event {
            Some(event) => self.events.action_log(&event.id).await?,
            None => Vec::new(),
        };
        self.settle_event(item, event, &log).await
    }

    /// Runs an event's remaining actions from its action log, and settles its row.
    async fn settle_event(
        &self,
        item: &OutboxItem,
        event: Option<EventRecord>,
        log: &[ActionLogEntry],
    ) -> Result<(), StoreError> {
        let Some(event) = event else {
            return self
                .outbox
                .finish(&item.event_id, Some("the event no longer exists"))
                .await;
        };
        match self
            .executor
            .run_logged_plan(self.events.as_ref(), &event, log, self.max_attempts)
            .await?
        {
            PlanRun::Finished { failed } => self.outbox.finish(&event.id, failed.as_deref()).await,
            PlanRun::RetryLater { attempts, error } => {
                let delay = self.backoff * 2u32.saturating_pow(attempts - 1);
                let next = self.clock.now_ms() + delay.as_millis() as i64;
                let row = OutboxItem {
                    event_id: event.id.clone(),
                    attempts,
                };
                self.outbox.retry_at(&row, next, &error).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::directory::{
        ActionChanges, Applied, Directory, DirectoryError, Entity, RecipientRef, WorkflowRun,
    };
    use crate::store::{
        ActionLogEntry, ActionUpdate, CommitError, CommitResult, EventPage, EventQuery,
        EventRecord, EventTypeStats, IdempotencyClaim,
    };
    use crate::targets::{Delivered, InvokeError, TargetInvoker};
    use async_trait::async_trait;
    use serde_json::{Map, Value};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A store whose outbox always has a row due and whose event log always fails, as
    /// a full disk does.
    struct FullDisk {
        reads: AtomicUsize,
        /// Stops a worker that spins, so the test fails instead of hanging.
        stop: watch::Sender<bool>,
    }

    fn full() -> StoreError {
        StoreError::Unavailable("database or disk is full".into())
    }

    #[async_trait]
    impl Outbox for FullDisk {
        async fn due(&self, _: i64, _: usize) -> Result<Vec<OutboxItem>, StoreError> {
            Ok(vec![OutboxItem {
                event_id: "e1".into(),
                attempts: 0,
            }])
        }
        async fn retry_at(&self, _: &OutboxItem, _: i64, _: &str) -> Result<(), StoreError> {
            Err(full())
        }
        async fn finish(&self, _: &str, _: Option<&str>) -> Result<(), StoreError> {
            Err(full())
        }
    }

    #[async_trait]
    impl EventLog for FullDisk {
        async fn commit(&self, event: EventRecord, _: Option<&IdempotencyClaim>) -> CommitResult {
            Err(CommitError::new(full(), event))
        }
        async fn get(&self, _: &str) -> Result<Option<EventRecord>, StoreError> {
            if self.reads.fetch_add(1, Ordering::SeqCst) == 1_000 {
                let _ = self.stop.send(true);
            }
            Err(full())
        }
        async fn event_types(&self, _: &str, _: &str) -> Result<Vec<EventTypeStats>, StoreError> {
            Err(full())
        }
        async fn list(&self, _: &EventQuery) -> Result<EventPage, StoreError> {
            Err(full())
        }
        async fn action_log(&self, _: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
            Err(full())
        }
        async fn update_action(&self, _: &str, _: &ActionUpdate) -> Result<(), StoreError> {
            Err(full())
        }
    }

    struct NoDirectory;

    #[async_trait]
    impl Directory for NoDirectory {
        async fn apply(&self, _: ActionChanges<'_>) -> Result<Applied, DirectoryError> {
            unreachable!()
        }
        async fn known_users(&self, _: &str, _: &[String]) -> Result<Vec<String>, DirectoryError> {
            unreachable!()
        }
        async fn user(&self, _: &str, _: &str) -> Result<Option<Entity>, DirectoryError> {
            unreachable!()
        }
        async fn object(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<Option<Entity>, DirectoryError> {
            unreachable!()
        }
        async fn tenant(&self, _: &str, _: &str) -> Result<Option<Entity>, DirectoryError> {
            unreachable!()
        }
        async fn subscriptions(
            &self,
            _: &str,
            _: &str,
            _: &str,
        ) -> Result<Vec<(RecipientRef, Map<String, Value>)>, DirectoryError> {
            unreachable!()
        }
        async fn audience_members(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<Vec<String>>, DirectoryError> {
            unreachable!()
        }
        async fn workflow_run(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<WorkflowRun>, DirectoryError> {
            unreachable!()
        }
        async fn workflow_runs(
            &self,
            _: &str,
            _: Option<&str>,
            _: usize,
        ) -> Result<Vec<WorkflowRun>, DirectoryError> {
            unreachable!()
        }
    }

    struct NoTargets;

    #[async_trait]
    impl TargetInvoker for NoTargets {
        async fn invoke_function(&self, _: &str, _: &Value) -> Result<Value, InvokeError> {
            unreachable!()
        }
        async fn deliver_run(&self, _: &str, _: &WorkflowRun) -> Delivered {
            unreachable!()
        }
    }

    /// A worker on `events` and `outbox`, with nothing to apply actions to (the tests
    /// below fail before any action runs), 3 attempts and a 1 s backoff.
    fn worker_on(events: Arc<dyn EventLog>, outbox: Arc<dyn Outbox>) -> OutboxWorker {
        OutboxWorker {
            events,
            outbox,
            executor: ActionExecutor {
                directory: Arc::new(NoDirectory),
                targets: Arc::new(NoTargets),
                clock: Arc::new(SystemClock),
            },
            clock: Arc::new(SystemClock),
            max_attempts: 3,
            backoff: Duration::from_secs(1),
        }
    }

    /// While the store fails, the worker waits longer and longer between rounds instead
    /// of retrying at once: over a minute (of virtual time) it tries about fifteen
    /// times, not millions.
    #[tokio::test(start_paused = true)]
    async fn a_failing_store_is_retried_with_backoff() {
        let (stop, stopped) = watch::channel(false);
        let store = Arc::new(FullDisk {
            reads: AtomicUsize::new(0),
            stop: stop.clone(),
        });
        let worker = worker_on(store.clone(), store.clone());
        let handle = worker.spawn(Arc::new(Notify::new()), stopped, Duration::from_millis(500));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.send(true).unwrap();
        handle.await.unwrap();
        let rounds = store.reads.load(Ordering::SeqCst);
        // 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 3.2 + 5 s x 10 ≈ 56 s, with jitter.
        assert!((10..=20).contains(&rounds), "{rounds} rounds in a minute");
    }

    /// A full disk under SQLite's early writes: reads work, a round's writes are
    /// answered, and their failure comes with the next round. Every other round goes
    /// through; the worker still backs off (not 100 ms after each), and the outage is
    /// one outage.
    struct EveryOtherRound {
        rounds: AtomicUsize,
    }

    #[async_trait]
    impl Outbox for EveryOtherRound {
        async fn due(&self, _: i64, _: usize) -> Result<Vec<OutboxItem>, StoreError> {
            if self.rounds.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
                return Err(full());
            }
            Ok(vec![OutboxItem {
                event_id: "gone".into(),
                attempts: 0,
            }])
        }
        async fn retry_at(&self, _: &OutboxItem, _: i64, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        async fn finish(&self, _: &str, _: Option<&str>) -> Result<(), StoreError> {
            Ok(()) // answered; its commit fails, reported by the next round
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_that_fails_every_other_round_is_still_backed_off() {
        let (stop, stopped) = watch::channel(false);
        let store = Arc::new(EveryOtherRound {
            rounds: AtomicUsize::new(0),
        });
        // The event log is not reached: `gone` has no event, so its row is closed.
        let worker = worker_on(Arc::new(crate::memory::MemoryStore::new()), store.clone());
        let handle = worker.spawn(Arc::new(Notify::new()), stopped, Duration::from_millis(500));
        tokio::time::sleep(Duration::from_secs(60)).await;
        stop.send(true).unwrap();
        handle.await.unwrap();
        let rounds = store.rounds.load(Ordering::SeqCst);
        // Twice the rounds of a store that always fails; at 100 ms each it was ~1,000.
        assert!((20..=42).contains(&rounds), "{rounds} rounds in a minute");
    }
}
