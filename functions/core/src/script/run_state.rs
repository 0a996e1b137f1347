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
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    static CPU_MARK: Cell<Option<CpuMark>> = const { Cell::new(None) };
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

/// How long a run goes before its thread's CPU time is first read (see [`CpuMark`]).
const CPU_MARK_AFTER: Duration = Duration::from_millis(1);

/// The thread's CPU time, read once a run has gone [`CPU_MARK_AFTER`] (at the first
/// deadline check after it), and the wall time the run had gone by then.
///
/// Why not read it at the start: reading a thread's CPU clock is a system call (no
/// vDSO), two per run cost ~9% of the pipeline's time for every event, and the figure
/// is needed only by a run that overran its wall time, to tell a slow script from a
/// busy machine. Such a run went 50 ms, checking its deadline every 16 operations, so
/// it is marked at ~1 ms; the CPU it used before the mark is counted as at most
/// [`CPU_MARK_AFTER`] (a run starved before its first check is the busy machine's).
#[derive(Clone, Copy)]
struct CpuMark {
    cpu: Duration,
    wall_before: Duration,
}

/// Arms the wall-time budget (after `ctx` is built, which is the engine's work).
pub(super) fn start_clock(deadline: Instant) {
    DEADLINE.with(|d| d.set(Some(deadline)));
    STARTED.with(|s| s.set(Some(Instant::now())));
    CPU_MARK.with(|m| m.set(None));
}

/// About the CPU time this run used so far (a run never leaves its thread): exact after
/// its [`CpuMark`], up to [`CPU_MARK_AFTER`] short before it. `None` where the platform
/// has no thread CPU clock.
pub(super) fn cpu_used() -> Option<Duration> {
    match CPU_MARK.with(Cell::get) {
        Some(mark) => {
            Some(thread_cpu_time()?.saturating_sub(mark.cpu) + mark.wall_before.min(CPU_MARK_AFTER))
        }
        // Not marked: the run ended before its first check past CPU_MARK_AFTER.
        None if cfg!(unix) => Some(STARTED.with(Cell::get)?.elapsed().min(CPU_MARK_AFTER)),
        None => None,
    }
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
    let Some(deadline) = DEADLINE.with(Cell::get) else {
        return false;
    };
    let now = Instant::now();
    if CPU_MARK.with(Cell::get).is_none()
        && let Some(started) = STARTED.with(Cell::get)
        && now.duration_since(started) >= CPU_MARK_AFTER
    {
        let wall_before = now.duration_since(started);
        let mark = thread_cpu_time().map(|cpu| CpuMark { cpu, wall_before });
        CPU_MARK.with(|m| m.set(mark));
    }
    now >= deadline
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// Works, checking the deadline as a run does, until the thread used `cpu`.
    fn work(cpu: Duration) {
        let until = thread_cpu_time().unwrap() + cpu;
        while thread_cpu_time().unwrap() < until {
            std::hint::black_box(past_deadline());
        }
    }

    /// A run that checks its deadline while it works is charged the CPU it used.
    #[test]
    fn a_working_run_is_charged_its_cpu_time() {
        let before = thread_cpu_time().unwrap();
        start_clock(Instant::now() + Duration::from_secs(5));
        work(Duration::from_millis(20));
        let used = cpu_used().unwrap();
        let spent = thread_cpu_time().unwrap() - before;
        // Exact after the mark; the first millisecond is counted as wall time.
        assert!(
            used + CPU_MARK_AFTER >= spent && used <= spent + CPU_MARK_AFTER,
            "{used:?} of {spent:?}"
        );
        end();
    }

    /// A run whose thread waited (as a starved one waits for a CPU) before its first
    /// check is charged at most the first millisecond of the wait.
    #[test]
    fn a_run_starved_before_its_first_check_is_not_charged_the_wait() {
        let before = thread_cpu_time().unwrap();
        start_clock(Instant::now() + Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(30));
        work(Duration::from_millis(2));
        let used = cpu_used().unwrap();
        let spent = thread_cpu_time().unwrap() - before;
        assert!(used <= spent + CPU_MARK_AFTER, "{used:?} of {spent:?}");
        assert!(used < Duration::from_millis(10), "{used:?}");
        end();
    }
}
