//! The dev server's background work: the action worker on a thread of its own at a
//! lower CPU priority, and the hourly purge of records past retention.

use crate::sqlite::SqliteStore;
use anyhow::Context;
use inlet_core::clock::Clock;
use inlet_core::outbox::OutboxWorker;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Deletes records past retention once an hour.
pub(super) fn spawn_purger(store: Arc<SqliteStore>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = store.purge_expired(clock.now_ms()).await {
                tracing::warn!(error = %e, "could not purge expired records");
            }
        }
    });
}

/// The nice value of the action worker's thread (see [`spawn_action_thread`]).
const ACTION_WORKER_NICE: i32 = 10;

/// Runs the action worker on a thread and runtime of its own, at a lower CPU priority
/// than the threads answering senders. When the machine is saturated, acknowledging
/// webhooks wins and the outbox grows instead (it is on disk: nothing is lost, each
/// event still runs once); the worker drains it with the CPU that is left, and at full
/// speed once the load drops. Its blocking store reads run on its runtime's own pool,
/// whose threads inherit the priority. The receiver fires when the worker has stopped.
pub(super) fn spawn_action_thread(
    worker: OutboxWorker,
    wakeup: Arc<tokio::sync::Notify>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<oneshot::Receiver<()>> {
    let (done_tx, done_rx) = oneshot::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("inlet-actions-io")
        .on_thread_start(lower_this_threads_priority)
        .build()
        .context("building the action worker's runtime")?;
    std::thread::Builder::new()
        .name("inlet-actions".into())
        .spawn(move || {
            lower_this_threads_priority();
            runtime.block_on(worker.run(wakeup, stop, Duration::from_millis(500)));
            let _ = done_tx.send(());
        })
        .context("starting the action worker's thread")?;
    Ok(done_rx)
}

/// Gives the calling thread the nice value [`ACTION_WORKER_NICE`]. On Linux the nice
/// value belongs to a thread, and `setpriority(PRIO_PROCESS, 0, ..)` names the calling
/// one; elsewhere it would name the whole process, so there it does nothing.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours.
        let failed = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, ACTION_WORKER_NICE) };
        if failed != 0 {
            tracing::debug!(
                error = %std::io::Error::last_os_error(),
                "the action worker keeps the normal CPU priority"
            );
        }
    }
}
