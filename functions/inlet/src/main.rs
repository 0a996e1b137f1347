//! The `inlet` binary: sets up logging, parses the command line, runs the command.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// mimalloc (the server allocates and frees per request on several threads, which it
/// does several times faster than glibc's malloc), counting the memory each script run
/// holds so its budget is enforced.
#[global_allocator]
static ALLOCATOR: inlet_core::script::CountingAllocator<mimalloc::MiMalloc> =
    inlet_core::script::CountingAllocator(mimalloc::MiMalloc);

#[tokio::main]
async fn main() -> ExitCode {
    // Log lines are written to stderr by a thread of their own, several per write when
    // they come fast (`inlet dev` logs a line per event): formatting stays on the thread
    // that logs, the write syscalls do not. Not lossy: a full buffer makes the logger
    // wait rather than drop lines. The guard flushes what is left when it drops.
    let (stderr, flush_on_drop) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("inlet-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let cli = inlet::cli::Cli::parse();
    if !cli.serves() {
        // A command's output piped into `head` ends when the reader does, as `cat`'s
        // would: Rust ignores SIGPIPE (for sockets), which turns a closed pipe into a
        // panic at the next print. The servers keep ignoring it.
        // SAFETY: called before any other thread writes; resets one signal's handler.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    // A server writes at most 50 per-event lines a second, and says how many it left out.
    let budget = std::sync::Arc::new(inlet::log_budget::LogBudget::default());
    let lines = tracing_subscriber::fmt::layer()
        // Colours only on a terminal: a log written to a file keeps no escape codes.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(stderr)
        .with_filter(inlet::log_budget::LogBudget::filter(budget.clone()));
    tracing_subscriber::registry()
        // The SDK's credential and region providers warn at each fallback they try (no
        // profile, no instance metadata on a laptop); the command's own error says what
        // is missing, once.
        .with(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,aws_config=error")),
        )
        .with(lines)
        .init();
    if cli.serves() {
        inlet::log_budget::report_suppressed(budget);
    }
    let outcome = inlet::cli::run(cli).await;
    drop(flush_on_drop);
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
