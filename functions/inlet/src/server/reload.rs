//! Reloading while the server runs: the sources directory and the vars file are
//! watched, and each valid edit swaps in a new route table or new vars (a broken one is
//! logged with every problem, and the last good one stays live).

use super::{AppState, DevOptions, LiveConfig, configured_urls, load_catalog};
use crate::sqlite::SqliteStore;
use crate::vars::{LocalVars, load_local_vars};
use anyhow::Context;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::pipeline::RouteTable;
use inlet_core::script::ScriptEngine;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Watches the sources directory and the vars file; swaps in a new route table after
/// each valid edit of the sources, and new vars after each valid edit of the vars file
/// (a broken one is logged and the last good vars stay). Either way, each var the
/// config needs and the vars do not provide is warned about, as at start.
#[allow(clippy::too_many_arguments)]
pub(super) fn spawn_config_watcher(
    options: DevOptions,
    engine: Arc<ScriptEngine>,
    store: Arc<SqliteStore>,
    state: Arc<AppState>,
    base: String,
    mut known_urls: std::collections::HashSet<String>,
    vars: LocalVars,
) -> anyhow::Result<()> {
    use notify::Watcher;
    let sources_dir = options
        .sources_dir
        .canonicalize()
        .unwrap_or_else(|_| options.sources_dir.clone());
    let vars_file = options
        .vars_file
        .as_deref()
        .and_then(|f| f.canonicalize().ok());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let watched = (sources_dir.clone(), vars_file.clone());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only the sources and the vars file: the vars file's directory may hold other
        // files that change all the time (the database, say).
        let ours = |path: &std::path::PathBuf| {
            path.starts_with(&watched.0) || watched.1.as_ref() == Some(path)
        };
        if event.is_ok_and(|e| !e.kind.is_access() && e.paths.iter().any(ours)) {
            let _ = tx.send(());
        }
    })?;
    watcher
        .watch(&sources_dir, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", sources_dir.display()))?;
    // The vars file's directory: editors replace a file rather than write it in place.
    if let Some(dir) = vars_file.as_deref().and_then(std::path::Path::parent) {
        watcher
            .watch(dir, notify::RecursiveMode::NonRecursive)
            .with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    let read_vars = |file: Option<&std::path::Path>| -> Option<inlet_core::vars::Vars> {
        file.map(|f| load_local_vars(Some(f), std::env::vars()))
            .and_then(|loaded| match loaded {
                Ok(vars) => Some(vars),
                Err(e) => {
                    tracing::error!("vars reload failed; keeping the last good vars: {e}");
                    None
                }
            })
    };
    tokio::spawn(async move {
        let _watcher = watcher; // dropping it would stop the notifications
        let mut vars_text = options
            .vars_file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok());
        while rx.recv().await.is_some() {
            // Editors write in several steps; wait for the burst to settle.
            tokio::time::sleep(Duration::from_millis(200)).await;
            while rx.try_recv().is_ok() {}
            let now_text = options
                .vars_file
                .as_deref()
                .and_then(|f| std::fs::read(f).ok());
            if now_text != vars_text
                && let Some(fresh) = read_vars(options.vars_file.as_deref())
            {
                vars_text = now_text;
                vars.replace(fresh);
                tracing::info!("vars reloaded");
                for missing in state.live().catalog.missing_vars(&vars.current()) {
                    tracing::warn!("{missing}");
                }
            }
            let catalog = match load_catalog(&options, &engine).await {
                Ok(catalog) => catalog,
                Err(e) => {
                    tracing::error!("config reload failed; keeping the last good config\n{e:#}");
                    continue;
                }
            };
            match store.ensure_tokens(&catalog, SystemClock.now_ms()).await {
                Ok(tokens) => {
                    let urls = configured_urls(&base, &tokens, &catalog);
                    for u in &urls {
                        if known_urls.insert(u.url.clone()) {
                            tracing::info!(source = %u.source, environment = %u.environment, url = %u.url, "new webhook URL");
                        }
                    }
                    tracing::info!(sources = catalog.sources.len(), "config reloaded");
                    for missing in catalog.missing_vars(&vars.current()) {
                        tracing::warn!("{missing}");
                    }
                    let live = LiveConfig {
                        routes: RouteTable::new(&catalog, &tokens),
                        catalog: Arc::new(catalog),
                        urls,
                    };
                    *state.live.write().expect("config lock poisoned") = Arc::new(live);
                }
                Err(e) => {
                    tracing::error!(error = %e, "config reload could not read tokens; keeping the last good config")
                }
            }
        }
    });
    Ok(())
}
