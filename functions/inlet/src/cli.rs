//! The `inlet` command line. Each command returns an exit code; problems are printed
//! for people (what is wrong and what to do), not as debug dumps.

use crate::server::{self, DevOptions, webhook_urls};
use crate::sqlite::SqliteStore;
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::config::load_dir;
use inlet_core::script::{ScriptEngine, ScriptLimits};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "inlet",
    version,
    about = "Self-hosted webhook sources: receive, verify, dedupe, log and map webhooks to actions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Inlet locally: HTTP server, SQLite store, config reloaded on change.
    Dev(DevArgs),
    /// Validate source config and compile every script; print all problems.
    Check {
        /// Directory of `<key>.yaml` source files.
        #[arg(default_value = "infra/sources")]
        dir: PathBuf,
    },
    /// Print the webhook URL of every source environment (creating tokens if needed).
    Urls(UrlsArgs),
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Directory of `<key>.yaml` source files.
    #[arg(long, default_value = "infra/sources")]
    pub sources: PathBuf,
    /// SQLite database file (created if missing).
    #[arg(long, default_value = ".inlet/inlet.db")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,
    /// JSON file of variables (`{"NAME": "value"}`); `INLET_VAR_<NAME>` overrides.
    #[arg(long)]
    pub vars: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = inlet_core::defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Do not reload config when files change.
    #[arg(long)]
    pub no_watch: bool,
}

#[derive(Debug, Args)]
pub struct UrlsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Base URL the dev server is reached at.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub base_url: String,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Print URLs only, one per line (for scripts).
    #[arg(long, short)]
    pub quiet: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Check { dir } => Ok(check(dir)),
        Command::Urls(args) => urls(args).await,
    }
}

async fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    let options = DevOptions {
        addr: args.addr,
        sources_dir: args.store.sources,
        vars_file: args.vars,
        db_path: args.store.db,
        max_body_bytes: args.max_body_bytes,
        busy_timeout: Duration::from_secs(5),
        watch: !args.no_watch,
    };
    let server = server::start(options.clone(), shutdown_signal()).await?;
    println!(
        "Inlet dev server on http://{} (store {})",
        server.addr,
        options.db_path.display()
    );
    println!("Webhook URLs:");
    for u in &server.urls {
        println!(
            "  {:<28} {}",
            format!("{}/{}", u.source, u.environment),
            u.url
        );
    }
    println!("Press Ctrl-C to stop.");
    server.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn check(dir: PathBuf) -> ExitCode {
    let engine = ScriptEngine::new(ScriptLimits::default());
    match load_dir(&dir, &engine) {
        Ok(catalog) => {
            let envs = catalog.environments().count();
            let scripts = catalog
                .sources
                .iter()
                .flat_map(|s| s.environments.values())
                .filter(|e| e.script.is_some())
                .count();
            let mappings: usize = catalog
                .sources
                .iter()
                .flat_map(|s| s.environments.values())
                .map(|e| e.mappings.values().map(Vec::len).sum::<usize>())
                .sum();
            println!(
                "OK: {} source(s), {envs} environment(s), {scripts} script(s), {mappings} mapping(s) in {}",
                catalog.sources.len(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("\n{} problem(s) found.", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

async fn urls(args: UrlsArgs) -> anyhow::Result<ExitCode> {
    let engine = ScriptEngine::new(ScriptLimits::default());
    let catalog = load_dir(&args.store.sources, &engine)
        .map_err(|errors| anyhow::anyhow!("the source config has problems:\n{errors}"))?;
    let store = SqliteStore::open(&args.store.db, Duration::from_secs(5))
        .with_context(|| format!("opening the store {}", args.store.db.display()))?;
    let tokens = store.ensure_tokens(&catalog, SystemClock.now_ms()).await?;
    let matching: Vec<_> = webhook_urls(&args.base_url, &tokens)
        .into_iter()
        .filter(|u| args.source.as_ref().is_none_or(|s| *s == u.source))
        .filter(|u| args.env.as_ref().is_none_or(|e| *e == u.environment))
        .collect();
    if matching.is_empty() {
        eprintln!("no source environment matches; `inlet urls` without filters lists them all");
        return Ok(ExitCode::FAILURE);
    }
    for u in matching {
        if args.quiet {
            println!("{}", u.url);
        } else {
            println!(
                "{:<28} {}",
                format!("{}/{}", u.source, u.environment),
                u.url
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
