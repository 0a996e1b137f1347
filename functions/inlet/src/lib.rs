//! `inlet`: the command-line tool and the local dev server.
//!
//! - [`cli`]: the `inlet` commands (`dev`, `check`, `urls`, `logs`, `event`, `send`,
//!   `rehearse`, `replay`, `token rotate`, `config push`, `console`; their arguments in
//!   `cli/args.rs`), with [`operations_cli`] (rehearse, replay and token rotation, through the dev
//!   server's admin API or a stack's admin code), [`aws_cli`] (config push, tokens and
//!   listings of a deployed stack), [`console_cli`] (a stack's console on loopback) and
//!   [`output`] (how events and times are printed);
//! - [`server`]: `inlet dev` (the pipeline, the admin API and console, the action
//!   worker, config and vars reloading); [`http`]: its listener (timeouts, connection
//!   cap, size limits, JSON errors) with [`malformed`] (JSON answers for requests the
//!   HTTP parser refuses);
//! - [`sqlite`] and [`directory`]: the embedded store that implements the core's store
//!   and directory traits, every write through one writer thread (group commit), each
//!   holding a connection of its own (`connection`);
//! - [`targets`]: HTTP targets for workflow runs and `lambda_invoke`;
//! - [`vars`]: local variables from a file and the environment;
//! - [`log_budget`]: at most 50 per-event log lines a second, the rest counted.

pub mod aws_cli;
pub mod cli;
mod connection;
pub mod console_cli;
pub mod directory;
pub mod http;
pub mod log_budget;
pub mod malformed;
pub mod operations_cli;
pub mod output;
pub mod server;
pub mod sqlite;
pub mod targets;
pub mod vars;
mod writer;
