//! Inlet's core: everything between "an HTTP request arrived" and "its action plan is
//! stored", with no AWS and no Lambda dependency.
//!
//! - [`config`]: source files and their validation; [`path`]: field paths;
//! - [`script`]: the sandboxed Rhai engine, its `ctx` and helpers; [`vars`]: the
//!   variables scripts read, and where they come from; [`verify`]: signature schemes;
//!   [`presets`]: the providers a source can name instead of writing a script;
//! - [`catalog`]: the actions Inlet knows, their params and typed payloads;
//!   [`actions`]: plan resolution; [`executor`]: running one action against the
//!   [`directory`] and outside targets;
//! - [`store`]: the traits the pipeline stores through, and [`status`] the statuses
//!   they keep; [`tokens`]: where webhook tokens lead; [`memory`]: in-memory versions
//!   for tests, benchmarks and dry runs; [`outbox`]: the worker that drains the local
//!   hand-off to the executor;
//! - [`pipeline`]: the ingest steps; [`outcome`]: what became of a request (for
//!   metrics); [`reply`]: the one place errors become HTTP answers; [`clock`]:
//!   injectable time.

pub mod actions;
pub mod catalog;
pub mod clock;
pub mod config;
pub mod directory;
pub mod executor;
pub mod memory;
pub mod outbox;
pub mod outcome;
pub mod path;
pub mod pipeline;
pub mod presets;
pub mod reply;
pub mod script;
pub mod status;
pub mod store;
pub mod targets;
pub mod tokens;
pub mod vars;
pub mod verify;
mod yaml;

/// The core's own tests count script memory as the binaries do.
#[cfg(test)]
#[global_allocator]
static ALLOCATOR: script::CountingAllocator = script::CountingAllocator(std::alloc::System);

/// Published defaults; docs/http-contract.md lists them.
pub mod defaults {
    /// Largest accepted request body.
    pub const MAX_BODY_BYTES: usize = 256 * 1024;
    /// Event and action log retention.
    pub const RETENTION_DAYS: i64 = 30;
    /// Longest idempotency key accepted.
    pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;
    /// `Retry-After` sent with 503 answers.
    pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;
}
