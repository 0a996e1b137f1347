//! The local dev server behind `inlet dev`: an axum HTTP server that runs the core
//! pipeline on the SQLite store.
//!
//! Its rooms: `reload.rs` (watching the sources and vars, swapping them in),
//! `workers.rs` (the action worker's thread, the hourly purge); this file starts the
//! server and answers its routes.
//!
//! - `POST /receive/{token}`: webhooks. The token is looked up first (unknown → 404), then
//!   the method (405), then the body is read with the size limit (413); the pipeline
//!   does the rest. Every answer, errors included, comes from the core's `Reply`.
//! - `GET /healthz`: 200 when the server is up.
//! - Config is reloaded when a file under the sources directory changes. A reload that
//!   fails validation is logged with every problem and the last good config stays live.
//! - `/admin/*`: the admin API (`inlet_admin`), on loopback only by default.
//! - The action worker (the core's `OutboxWorker`) drains the outbox in the background.
//! - Shutdown is graceful: the listener closes, in-flight requests finish (their events
//!   are committed before their 2xx is written), then the process exits.

mod reload;
mod workers;

use crate::http::HttpLimits;
use crate::sqlite::{SqliteStore, TokenEntry};
use crate::targets::HttpTargets;
use crate::vars::{LocalVars, load_local_vars};
use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::routing::{any, get};
use inlet_admin::to_response;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::config::{Catalog, load_dir};
use inlet_core::executor::ActionExecutor;
use inlet_core::outbox::OutboxWorker;
use inlet_core::pipeline::{InboundRequest, Pipeline, PipelineSettings, RouteTable};
use inlet_core::reply::{IngestError, Reply};
use inlet_core::script::{ScriptEngine, ScriptLimits, ScriptPool};
use inlet_core::tokens::{Rotation, TokenStore};
use reload::spawn_config_watcher;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use workers::{spawn_action_thread, spawn_purger};

/// Everything `inlet dev` can be told.
#[derive(Debug, Clone)]
pub struct DevOptions {
    pub addr: SocketAddr,
    pub sources_dir: PathBuf,
    pub vars_file: Option<PathBuf>,
    pub db_path: PathBuf,
    pub max_body_bytes: usize,
    /// How long a store call waits on a lock held elsewhere before answering 503.
    pub busy_timeout: Duration,
    /// Reload config when files change.
    pub watch: bool,
    /// Targets for workflow runs and `lambda_invoke` (see `inlet_core::config::Targets`).
    pub targets_file: Option<PathBuf>,
    /// Accept and queue events but do not run actions (they run at the next start).
    pub pause_actions: bool,
    /// Serve `/admin` even when listening on a non-loopback address.
    pub expose_admin: bool,
    /// Sandbox limits; `None`: the published defaults for `max_body_bytes`.
    pub script_limits: Option<ScriptLimits>,
    /// Timeouts, the connection cap and request-head limits.
    pub http: HttpLimits,
}

impl DevOptions {
    pub fn new(sources_dir: PathBuf, db_path: PathBuf) -> Self {
        DevOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8787)),
            sources_dir,
            vars_file: None,
            db_path,
            max_body_bytes: inlet_core::defaults::MAX_BODY_BYTES,
            busy_timeout: Duration::from_secs(5),
            watch: true,
            targets_file: None,
            pause_actions: false,
            expose_admin: false,
            script_limits: None,
            http: HttpLimits::default(),
        }
    }
}

pub use inlet_admin::WebhookUrl;

pub fn webhook_urls(base: &str, tokens: &[TokenEntry]) -> Vec<WebhookUrl> {
    tokens
        .iter()
        .map(|t| WebhookUrl {
            source: t.source.clone(),
            environment: t.environment.clone(),
            url: format!("{}/receive/{}", base.trim_end_matches('/'), t.token),
            retires_at_ms: t.retires_at_ms,
        })
        .collect()
}

/// The webhook URLs of the source environments `catalog` configures: the database keeps
/// the tokens of sources and environments removed from the config (they answer 404), and
/// those are neither printed nor listed.
fn configured_urls(base: &str, tokens: &[TokenEntry], catalog: &Catalog) -> Vec<WebhookUrl> {
    webhook_urls(base, tokens)
        .into_iter()
        .filter(|u| {
            catalog
                .source(&u.source)
                .is_some_and(|s| s.environments.contains_key(&u.environment))
        })
        .collect()
}

/// The config in force: swapped whole on reload.
pub struct LiveConfig {
    pub catalog: Arc<Catalog>,
    pub routes: RouteTable,
    pub urls: Vec<WebhookUrl>,
}

type Live = Arc<RwLock<Arc<LiveConfig>>>;

pub struct AppState {
    pub pipeline: Pipeline,
    pub store: Arc<SqliteStore>,
    live: Live,
    max_body_bytes: usize,
    body_read_timeout: Duration,
}

impl AppState {
    pub fn live(&self) -> Arc<LiveConfig> {
        self.live.read().expect("config lock poisoned").clone()
    }
}

/// The admin API's operations on the dev server: the serving pipeline, the SQLite
/// idempotency records, and token rotation that takes effect at once (the live route
/// table is rebuilt; a replaced token is refused from its retirement time on).
struct DevOperations {
    pipeline: Pipeline,
    store: Arc<SqliteStore>,
    live: Live,
    base: String,
}

#[async_trait::async_trait]
impl inlet_admin::operations::Operations for DevOperations {
    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn idempotency(&self) -> &dyn inlet_core::store::IdempotencyStore {
        self.store.as_ref()
    }

    async fn rotate_token(
        &self,
        rotation: Rotation<'_>,
        _host: Option<&str>,
    ) -> Result<Vec<WebhookUrl>, inlet_admin::AdminError> {
        let Rotation {
            source,
            environment,
            now_ms: now,
            overlap_ms,
        } = rotation;
        let pair = self.store.rotate(rotation).await?;
        let catalog = self
            .live
            .read()
            .expect("config lock poisoned")
            .catalog
            .clone();
        let tokens = self.store.ensure_tokens(&catalog, now).await?;
        let live = LiveConfig {
            routes: RouteTable::new(&catalog, &tokens),
            urls: configured_urls(&self.base, &tokens, &catalog),
            catalog,
        };
        *self.live.write().expect("config lock poisoned") = Arc::new(live);
        tracing::info!(%source, %environment, overlap_ms, "webhook token rotated");
        Ok(webhook_urls(&self.base, &pair))
    }
}

/// The admin API's view of the live config.
struct LiveSources(Live);

#[async_trait::async_trait]
impl inlet_admin::SourceCatalog for LiveSources {
    async fn catalog(&self) -> Result<Arc<Catalog>, inlet_admin::AdminError> {
        Ok(self.0.read().expect("config lock poisoned").catalog.clone())
    }

    async fn urls(&self, _host: Option<&str>) -> Result<Vec<WebhookUrl>, inlet_admin::AdminError> {
        // A URL whose rotation overlap has ended no longer works: not listed.
        let now = SystemClock.now_ms();
        let live = self.0.read().expect("config lock poisoned").urls.clone();
        Ok(live
            .into_iter()
            .filter(|u| u.retires_at_ms.is_none_or(|at| at > now))
            .collect())
    }
}

/// A running dev server.
pub struct DevServer {
    pub addr: SocketAddr,
    pub urls: Vec<WebhookUrl>,
    pub store: Arc<SqliteStore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    worker: Option<(watch::Sender<bool>, oneshot::Receiver<()>)>,
}

impl DevServer {
    /// The webhook URL of one source environment.
    pub fn url(&self, source: &str, environment: &str) -> Option<&str> {
        self.urls
            .iter()
            .find(|u| u.source == source && u.environment == environment)
            .map(|u| u.url.as_str())
    }

    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server ends (after its shutdown signal fired), then stops the
    /// action worker after its current action.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("server task panicked")??;
        if let Some((stop, handle)) = self.worker {
            let _ = stop.send(true);
            handle
                .await
                .map_err(|_| anyhow::anyhow!("the action worker's thread panicked"))?;
        }
        Ok(())
    }
}

/// Loads config and store, binds, and serves until `stop` completes or
/// [`DevServer::shutdown`] is called.
pub async fn start(
    options: DevOptions,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<DevServer> {
    let limits = options
        .script_limits
        .clone()
        .unwrap_or_else(|| ScriptLimits::for_body_limit(options.max_body_bytes));
    let engine = Arc::new(ScriptEngine::new(limits));
    if !inlet_core::script::memory_budget_enforced() {
        tracing::warn!(
            "the script memory budget is not enforced: this binary does not count allocations"
        );
    }
    let catalog = load_catalog(&options, &engine).await?;
    let vars = load_local_vars(options.vars_file.as_deref(), std::env::vars())?;
    // Found now rather than at the first request, which would be answered 503.
    for missing in catalog.missing_vars(&vars) {
        tracing::warn!("{missing}");
    }
    let targets = match &options.targets_file {
        Some(file) => inlet_core::config::load_targets(file)
            .map_err(|errors| anyhow::anyhow!("the targets file has problems:\n{errors}"))?,
        None => Default::default(),
    };
    let forwards = catalog
        .sources
        .iter()
        .flat_map(|s| s.environments.values())
        .any(|e| e.forward_to_event_bus.is_some());
    let targets = if forwards || HttpTargets::need_aws(&targets) {
        let clients =
            inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI)
                .await;
        let aws = inlet_aws::targets::AwsTargets::new(&clients, targets.clone());
        HttpTargets::new(targets).with_aws(aws)
    } else {
        HttpTargets::new(targets)
    };
    let store = Arc::new(
        SqliteStore::open(&options.db_path, options.busy_timeout)
            .with_context(|| format!("opening the store {}", options.db_path.display()))?,
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let tokens = store.ensure_tokens(&catalog, clock.now_ms()).await?;
    match store.purge_expired(clock.now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(rows = n, "purged records past retention"),
        Err(e) => tracing::warn!(error = %e, "could not purge expired records"),
    }

    let local_vars = LocalVars::new(vars);
    let pipeline = Pipeline {
        engine: engine.clone(),
        events: store.clone(),
        vars: Arc::new(local_vars.clone()),
        clock: clock.clone(),
        settings: PipelineSettings {
            max_body_bytes: options.max_body_bytes,
            ..PipelineSettings::default()
        },
        // Scripts run off the async threads, so a slow one cannot hold up other
        // requests (`/healthz` included).
        script_pool: Some(Arc::new(ScriptPool::for_this_machine(engine.clone()))),
    };
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .with_context(|| format!("cannot listen on {}; pass another --addr", options.addr))?;
    let addr = listener.local_addr()?;
    let base = format!("http://{addr}");
    let urls = configured_urls(&base, &tokens, &catalog);
    let live = LiveConfig {
        routes: RouteTable::new(&catalog, &tokens),
        catalog: Arc::new(catalog),
        urls: urls.clone(),
    };
    let live: Live = Arc::new(RwLock::new(Arc::new(live)));
    let state = Arc::new(AppState {
        pipeline,
        store: store.clone(),
        live: live.clone(),
        max_body_bytes: options.max_body_bytes,
        body_read_timeout: options.http.body_read_timeout,
    });
    let admin = Arc::new(inlet_admin::AdminState {
        environment: None,
        events: store.clone(),
        directory: store.clone(),
        sources: Arc::new(LiveSources(live.clone())),
        outbox: Some(store.clone()),
        operations: Some(Arc::new(DevOperations {
            pipeline: state.pipeline.clone(),
            store: store.clone(),
            live,
            base: base.clone(),
        })),
        webhook_host: None,
    });
    let worker = (!options.pause_actions).then(|| {
        let (stop_tx, stop_rx) = watch::channel(false);
        let worker = OutboxWorker {
            events: store.clone(),
            outbox: store.clone(),
            executor: ActionExecutor {
                directory: store.clone(),
                targets: Arc::new(targets),
                clock: clock.clone(),
            },
            clock: clock.clone(),
            max_attempts: 3,
            backoff: Duration::from_secs(1),
        };
        let done = spawn_action_thread(worker, store.outbox_wakeup(), stop_rx)?;
        Ok::<_, anyhow::Error>((stop_tx, done))
    });
    let worker = worker.transpose()?;

    if options.watch {
        let known = urls.iter().map(|u| u.url.clone()).collect();
        spawn_config_watcher(
            options.clone(),
            engine,
            store.clone(),
            state.clone(),
            base,
            known,
            local_vars,
        )?;
    }
    spawn_purger(store.clone(), clock);

    let mut app = Router::new()
        .route("/receive/{token}", any(receive))
        .route("/healthz", get(healthz))
        .with_state(state);
    if options.expose_admin {
        app = app.merge(inlet_admin::router(admin));
    } else if addr.ip().is_loopback() {
        app = app.merge(
            inlet_admin::router(admin).layer(axum::middleware::from_fn_with_state(
                addr,
                loopback_host_only,
            )),
        );
    } else {
        tracing::warn!(
            "not on a loopback address: /admin and /console are off (pass --expose-admin to serve them)"
        );
        app = app
            .route("/admin", any(admin_off))
            .route("/admin/{*rest}", any(admin_off))
            .route("/console", any(admin_off))
            .route("/console/{*rest}", any(admin_off));
    }
    let app = app
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(options.http.clone()),
            crate::http::limit_request_head,
        ))
        .layer(axum::middleware::from_fn(crate::http::json_errors));
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let http_limits = options.http.clone();
    let task = tokio::spawn(async move {
        crate::http::serve(listener, app, http_limits, async move {
            tokio::select! {
                _ = stop => {},
                _ = shutdown_rx => {},
            }
        })
        .await
    });
    Ok(DevServer {
        addr,
        urls,
        store,
        shutdown: Some(shutdown_tx),
        task,
        worker,
    })
}

async fn load_catalog(options: &DevOptions, engine: &Arc<ScriptEngine>) -> anyhow::Result<Catalog> {
    let (dir, engine) = (options.sources_dir.clone(), engine.clone());
    tokio::task::spawn_blocking(move || load_dir(&dir, &engine))
        .await?
        .map_err(|errors| anyhow::anyhow!("the source config has problems:\n{errors}"))
}

async fn receive(
    State(state): State<Arc<AppState>>,
    UrlPath(token): UrlPath<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let live = state.live();
    let route = live.routes.get(&token, state.pipeline.clock.now_ms());
    let mut request = InboundRequest {
        method: method.to_string(),
        ..InboundRequest::default()
    };
    // Unknown tokens and wrong methods are answered without reading the body.
    if let Some(route) = route.as_ref().filter(|_| method == Method::POST) {
        // Logged by source, never by token (a token is a credential).
        let (source, environment) = (&route.source.key, &route.environment);
        let too_large = || {
            tracing::warn!(target: inlet_core::pipeline::EVENT_LOG_TARGET, %source, %environment, limit_bytes = state.max_body_bytes, "request refused: body too large (413)");
            to_response(
                IngestError::PayloadTooLarge {
                    limit_bytes: state.max_body_bytes,
                }
                .into_reply(),
            )
        };
        // A declared length over the limit is answered at once, without waiting for
        // (or, with `Expect: 100-continue`, inviting) a body that would be refused.
        let declared = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
            return too_large();
        }
        let read = axum::body::to_bytes(body, state.max_body_bytes);
        request.body = match tokio::time::timeout(state.body_read_timeout, read).await {
            Ok(Ok(bytes)) => bytes.to_vec(),
            Ok(Err(_)) => return too_large(),
            Err(_) => {
                tracing::warn!(target: inlet_core::pipeline::EVENT_LOG_TARGET, %source, %environment, "request refused: the body did not arrive in time (408)");
                return crate::http::error_response(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    &format!(
                        "the body did not arrive within {} s; send it at once",
                        state.body_read_timeout.as_secs()
                    ),
                );
            }
        };
        request.query = uri.query().unwrap_or("").to_string();
        request.headers = headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
    }
    to_response(state.pipeline.ingest(route, request).await.reply)
}

/// The admin API on loopback answers only requests addressed to a loopback name: a web
/// page on another site that rebinds its DNS name to 127.0.0.1 sends its own name as
/// `Host`, and is refused (403) instead of reading events. `--expose-admin` lifts this.
pub(crate) async fn loopback_host_only(
    State(addr): State<SocketAddr>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.to_ascii_lowercase());
    let allowed = match host.as_deref() {
        // HTTP/1.0 clients may send none; a browser always does.
        None => true,
        Some(host) => {
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.rsplit_once(':').map_or(host, |(name, _)| name),
            };
            name == "localhost"
                || name.ends_with(".localhost")
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback() || ip == addr.ip())
        }
    };
    if allowed {
        next.run(request).await
    } else {
        crate::http::error_response(
            axum::http::StatusCode::FORBIDDEN,
            "forbidden_host",
            "the admin API answers requests addressed to localhost or a loopback address only; pass --expose-admin to serve it under other names",
        )
    }
}

/// 200 `{"status":"ok"}` when the store can be written (a rolled-back write), 503 with
/// the reason when it cannot (a full disk, a read-only file, a lock held elsewhere).
async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.writable().await {
        Ok(()) => to_response(Reply::json(200, serde_json::json!({"status": "ok"}))),
        Err(e) => crate::http::error_response(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            &format!("the store cannot be written: {e}"),
        ),
    }
}

/// `/admin` on a non-loopback address without `--expose-admin`: say why and how.
async fn admin_off() -> Response {
    to_response(Reply::error(
        404,
        "admin_disabled",
        "the admin API is off because `inlet dev` listens on a non-loopback address; it has no authentication, so enable it with `--expose-admin` only on a network you trust (or listen on 127.0.0.1)",
    ))
}

async fn not_found(uri: Uri) -> Response {
    to_response(Reply::error(
        404,
        "not_found",
        &format!(
            "nothing at {}; webhooks go to POST /receive/{{token}}",
            uri.path()
        ),
    ))
}
