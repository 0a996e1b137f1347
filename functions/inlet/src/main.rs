//! The `inlet` binary: sets up logging, parses the command line, runs the command.

use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// mimalloc (the server allocates and frees per request on several threads, which it
/// does several times faster than glibc's malloc), counting the memory each script run
/// holds so its budget is enforced.
#[global_allocator]
static ALLOCATOR: inlet_core::script::CountingAllocator<mimalloc::MiMalloc> =
    inlet_core::script::CountingAllocator(mimalloc::MiMalloc);

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match inlet::cli::run(inlet::cli::Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
