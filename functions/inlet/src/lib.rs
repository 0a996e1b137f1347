//! `inlet`: the command-line tool and the local dev server.
//!
//! - [`cli`]: the `inlet` commands (`dev`, `check`, `urls`);
//! - [`server`]: the HTTP server of `inlet dev`; [`http`]: its listener (timeouts,
//!   connection cap, JSON errors);
//! - [`sqlite`] and [`directory`]: the embedded store that implements the core's store
//!   and directory traits;
//! - [`targets`]: HTTP targets for workflow runs and `lambda_invoke` (the background
//!   action executor is the core's `outbox` worker, run on the SQLite store);
//! - [`aws_cli`]: the commands against a deployed stack (the admin API is the
//!   `inlet_admin` crate, served by [`server`]);
//! - [`vars`]: local variables from a file and the environment.

pub mod aws_cli;
pub mod cli;
pub mod console_cli;
pub mod directory;
pub mod http;
pub mod malformed;
pub mod operations_cli;
pub mod server;
pub mod sqlite;
pub mod targets;
pub mod vars;
mod writer;
