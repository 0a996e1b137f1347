//! Per-event log lines, at most [`PER_SECOND`] a second.
//!
//! `inlet dev` logs a line for each request it accepts or refuses (the core's
//! [`EVENT_LOG_TARGET`]): what a developer sending a few test events wants to see. At
//! thousands of events a second those lines are a flood no one reads that costs about
//! a tenth of the server's CPU (docs/benchmarks.md). So past [`PER_SECOND`] lines in a
//! second they are counted, not written, and [`report_suppressed`] logs one line a
//! second saying how many were left out; `inlet logs` lists every event. Other log
//! lines (config reloads, failures) are never held back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tracing::Metadata;
use tracing::subscriber::Interest;
use tracing_subscriber::filter::DynFilterFn;

pub use inlet_core::pipeline::EVENT_LOG_TARGET;

/// Per-event lines written each second, at most.
pub const PER_SECOND: u64 = 50;

/// The count of per-event lines of the current second, and of those left out.
#[derive(Debug)]
pub struct LogBudget {
    started: Instant,
    /// The current second (since `started`) in the high 32 bits, the lines it admitted
    /// in the low ones: one atomic, so admitting a line is one compare-and-swap.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl Default for LogBudget {
    fn default() -> Self {
        LogBudget {
            started: Instant::now(),
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }
}

impl LogBudget {
    /// Whether a per-event line may be written at `now`; a line that may not is
    /// counted as suppressed.
    pub fn admit(&self, now: Instant) -> bool {
        let second = now.saturating_duration_since(self.started).as_secs() & 0xFFFF_FFFF;
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (window, admitted) = (current >> 32, current & 0xFFFF_FFFF);
            let next = if window == second {
                if admitted >= PER_SECOND {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                current + 1
            } else {
                (second << 32) | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(seen) => current = seen,
            }
        }
    }

    /// The lines left out since the last call.
    pub fn take_suppressed(&self) -> u64 {
        self.suppressed.swap(0, Ordering::Relaxed)
    }

    /// The per-layer filter that holds back per-event lines past the budget (every other
    /// line passes).
    pub fn filter<S>(
        budget: Arc<Self>,
    ) -> DynFilterFn<
        S,
        impl Fn(&Metadata<'_>, &tracing_subscriber::layer::Context<'_, S>) -> bool,
        impl Fn(&'static Metadata<'static>) -> Interest,
    > {
        DynFilterFn::new(
            move |meta: &Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>| {
                meta.target() != EVENT_LOG_TARGET || budget.admit(Instant::now())
            },
        )
        // Decided per line for the per-event lines, once per callsite for the rest.
        .with_callsite_filter(|meta: &'static Metadata<'static>| {
            if meta.target() == EVENT_LOG_TARGET {
                Interest::sometimes()
            } else {
                Interest::always()
            }
        })
    }
}

/// Logs, once a second while lines are being left out, how many were.
pub fn report_suppressed(budget: Arc<LogBudget>) {
    std::thread::Builder::new()
        .name("inlet-log-budget".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                let left_out = budget.take_suppressed();
                if left_out > 0 {
                    tracing::info!(
                        left_out,
                        "more events than {PER_SECOND} a second: {left_out} not logged one by one in the last second (`inlet logs` lists every event)"
                    );
                }
            }
        })
        .expect("starting a thread");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_the_budget_a_second_and_the_rest_counted() {
        let budget = LogBudget::default();
        let t0 = budget.started;
        let admitted = (0..120).filter(|_| budget.admit(t0)).count();
        assert_eq!(admitted as u64, PER_SECOND);
        assert_eq!(budget.take_suppressed(), 120 - PER_SECOND);
        assert_eq!(budget.take_suppressed(), 0);
        // A new second starts a new budget.
        let t1 = t0 + Duration::from_millis(1_500);
        assert!(budget.admit(t1));
        let admitted = 1 + (0..100).filter(|_| budget.admit(t1)).count();
        assert_eq!(admitted as u64, PER_SECOND);
        assert_eq!(budget.take_suppressed(), 101 - PER_SECOND);
    }
}
