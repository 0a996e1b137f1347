//! The state of the script run on this thread: its wall-time deadline, its console, the
//! clock `now()` reads and the vars whose values are redacted from console lines. It is
//! per thread because Rhai's callbacks (`on_progress`, `on_print`) are engine-wide and
//! take no per-run argument; a run never awaits, so the thread is the run.

use crate::vars::Vars;
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Console lines kept per run, and the length of each, so a chatty script cannot bloat
/// the event log.
const MAX_CONSOLE_LINES: usize = 100;
const MAX_CONSOLE_LINE_CHARS: usize = 1000;

thread_local! {
    static DEADLINE: Cell<Option<Instant>> = const { Cell::new(None) };
    static CPU_AT_START: Cell<Option<Duration>> = const { Cell::new(None) };
    static CONSOLE: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static NOW_MS: Cell<i64> = const { Cell::new(0) };
    static VARS: RefCell<Option<Arc<Vars>>> = const { RefCell::new(None) };
    static VERIFY_FAILURE: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Starts a run: an empty console, the clock `now()` reads, the vars to redact.
pub(super) fn begin(now_ms: i64, vars: Arc<Vars>) {
    CONSOLE.with(|c| c.borrow_mut().clear());
    VERIFY_FAILURE.with(|f| f.borrow_mut().take());
    NOW_MS.with(|n| n.set(now_ms));
    VARS.with(|v| *v.borrow_mut() = Some(vars));
}

/// Arms the wall-time budget (after `ctx` is built, which is the engine's work), and
/// notes the thread's CPU time, so that an overrun can tell a slow script from a busy
/// machine ([`cpu_used`]).
pub(super) fn start_clock(deadline: Instant) {
    DEADLINE.with(|d| d.set(Some(deadline)));
    CPU_AT_START.with(|c| c.set(thread_cpu_time()));
}

/// The CPU time this thread spent since [`start_clock`] (a run never leaves its thread).
pub(super) fn cpu_used() -> Option<Duration> {
    let start = CPU_AT_START.with(Cell::get)?;
    Some(thread_cpu_time()?.saturating_sub(start))
}

/// The CPU time this thread has used.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec for the call to fill.
        let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        (status == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Ends the run and hands back its console.
pub(super) fn end() -> Vec<String> {
    DEADLINE.with(|d| d.set(None));
    VARS.with(|v| v.borrow_mut().take());
    CONSOLE.with(|c| std::mem::take(&mut *c.borrow_mut()))
}

pub(super) fn past_deadline() -> bool {
    DEADLINE
        .with(Cell::get)
        .is_some_and(|deadline| Instant::now() >= deadline)
}

/// The time `now()` returns inside a script run (set from the pipeline's clock).
pub(super) fn now_ms() -> i64 {
    NOW_MS.with(Cell::get)
}

/// `text` with the current run's var values redacted (var values are never written to
/// logs).
pub(super) fn redacted(text: &str) -> String {
    VARS.with(|v| match &*v.borrow() {
        Some(vars) => vars.redact(text),
        None => text.to_string(),
    })
}

pub(super) fn push_console(line: String) {
    CONSOLE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < MAX_CONSOLE_LINES {
            c.push(line.chars().take(MAX_CONSOLE_LINE_CHARS).collect());
        } else if c.len() == MAX_CONSOLE_LINES {
            c.push("[console truncated]".into());
        }
    });
}

/// Notes why the run's last failed `verify_*` call failed (the event log keeps it as the
/// rejection reason if the script then refuses the request).
pub(super) fn record_verify_failure(reason: String) {
    VERIFY_FAILURE.with(|f| *f.borrow_mut() = Some(reason));
}

/// Why the run's last failed `verify_*` call failed, if one did.
pub(super) fn take_verify_failure() -> Option<String> {
    VERIFY_FAILURE.with(|f| f.borrow_mut().take())
}
