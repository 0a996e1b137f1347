//! `inlet`: the command-line tool and the local dev server (DESIGN §1, §7).
//!
//! - [`cli`]: the `inlet` commands (`dev`, `check`, `urls`);
//! - [`server`]: the HTTP server of `inlet dev`;
//! - [`sqlite`]: the embedded store that implements the core's store traits;
//! - [`vars`]: local variables from a file and the environment.

pub mod cli;
pub mod server;
pub mod sqlite;
pub mod vars;
