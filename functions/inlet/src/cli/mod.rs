//! The `inlet` command line. Each command returns an exit code; problems are printed
//! for people (what is wrong and what to do), not as debug dumps.

mod args;
mod check;

use crate::output::{event_header, event_line, time_of};
use crate::server::{self, DevOptions, webhook_urls};
use crate::sqlite::SqliteStore;
use anyhow::Context;
pub use args::*;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::config::load_dir;
use inlet_core::script::{ScriptEngine, ScriptLimits};
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Dev(args) => dev(args).await,
        Command::Check {
            dir,
            vars,
            targets,
            env,
        } => check::run(dir, vars, targets, env.as_deref()),
        Command::Urls(args) => urls(args).await,
        Command::Logs(args) => logs(args).await,
        Command::Event(args) => event(args).await,
        Command::Send(args) => send(args).await,
        Command::Config(ConfigCommand::Push(args)) => config_push(args).await,
        Command::Console(args) => {
            crate::console_cli::serve(
                &args.aws_env,
                args.addr,
                args.base_url.as_deref(),
                shutdown_signal(),
            )
            .await
        }
        Command::Rehearse(args) => {
            crate::operations_cli::rehearse(
                &args.target.target(),
                &args.file,
                &args.source,
                &args.env,
                &args.headers,
                args.json,
            )
            .await
        }
        Command::Replay(args) => {
            crate::operations_cli::replay(&args.target.target(), &args.id, args.json).await
        }
        Command::Token(TokenCommand::Rotate(args)) => {
            crate::operations_cli::rotate(
                &args.target.target(),
                &args.source,
                &args.env,
                &args.overlap,
                Some(&args.db),
            )
            .await
        }
    }
}

async fn config_push(args: PushArgs) -> anyhow::Result<ExitCode> {
    let names = inlet_aws::StackNames::for_environment(&args.env);
    let report = crate::aws_cli::push(&args.sources, args.targets.as_deref(), &names).await?;
    println!(
        "Pushed {} file(s) to {}; {} new token(s).",
        report.files, names.config_table, report.new_tokens
    );
    if let Some(targets) = &report.targets {
        println!(
            "Pushed the targets: {} workflow(s), {} function(s).",
            targets.workflows.len(),
            targets.functions.len()
        );
    }
    for problem in &report.unreachable {
        println!("warning: {problem}");
    }
    print_stack_urls(&report.tokens, args.base_url.as_deref(), &args.env);
    Ok(ExitCode::SUCCESS)
}

fn print_stack_urls(tokens: &[(String, String)], base_url: Option<&str>, env: &str) {
    for (source, token) in tokens {
        match base_url {
            Some(base) => println!(
                "  {:<28} {}/{token}",
                format!("{source}/{env}"),
                base.trim_end_matches('/')
            ),
            None => println!(
                "  {:<28} <WebhookBaseUrl>{token}",
                format!("{source}/{env}")
            ),
        }
    }
    if base_url.is_none() {
        println!("(pass --base-url with the stack's WebhookBaseUrl output to print full URLs)");
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
        targets_file: args.targets,
        pause_actions: args.pause_actions,
        expose_admin: args.expose_admin,
        script_limits: None,
        http: Default::default(),
    };
    let server = server::start(options.clone(), shutdown_signal()).await?;
    // The banner is written whatever became of stdout: a server whose output was piped
    // into a reader that went away (`inlet dev | head`) keeps serving.
    let mut banner = format!(
        "Inlet dev server on http://{} (store {})\nWebhook URLs:\n",
        server.addr,
        options.db_path.display()
    );
    for u in &server.urls {
        banner.push_str(&format!(
            "  {:<28} {}\n",
            format!("{}/{}", u.source, u.environment),
            u.url
        ));
    }
    banner.push_str("Press Ctrl-C to stop.\n");
    let mut stdout = std::io::stdout();
    let _ = std::io::Write::write_all(&mut stdout, banner.as_bytes())
        .and_then(|()| std::io::Write::flush(&mut stdout));
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

async fn urls(args: UrlsArgs) -> anyhow::Result<ExitCode> {
    if let Some(env) = &args.aws_env {
        let names = inlet_aws::StackNames::for_environment(env);
        let tokens = crate::aws_cli::tokens(&names).await?;
        let base = (args.base_url != "http://127.0.0.1:8787").then_some(args.base_url.as_str());
        print_stack_urls(&tokens, base, env);
        return Ok(ExitCode::SUCCESS);
    }
    let all = match server_urls(&args.base_url).await {
        Ok(urls) => urls,
        Err(_) => {
            let engine = ScriptEngine::new(ScriptLimits::default());
            let catalog = load_dir(&args.store.sources, &engine).map_err(|errors| {
                anyhow::anyhow!(
                    "no `inlet dev` answers at {} and the source config in {} has problems:\n{errors}",
                    args.base_url,
                    args.store.sources.display()
                )
            })?;
            let store = SqliteStore::open(&args.store.db, Duration::from_secs(5))
                .with_context(|| format!("opening the store {}", args.store.db.display()))?;
            let tokens = store.ensure_tokens(&catalog, SystemClock.now_ms()).await?;
            // Tokens of sources or environments no longer in the config answer 404.
            webhook_urls(&args.base_url, &tokens)
                .into_iter()
                .filter(|u| {
                    catalog
                        .source(&u.source)
                        .is_some_and(|s| s.environments.contains_key(&u.environment))
                })
                .map(|u| (u.source, u.environment, u.url, u.retires_at_ms))
                .collect()
        }
    };
    let mut matching: Vec<_> = all
        .into_iter()
        .map(
            |(source, environment, url, retires_at_ms)| crate::server::WebhookUrl {
                source,
                environment,
                url,
                retires_at_ms,
            },
        )
        .filter(|u| args.source.as_ref().is_none_or(|s| *s == u.source))
        .filter(|u| args.env.as_ref().is_none_or(|e| *e == u.environment))
        .collect();
    if matching.is_empty() {
        eprintln!("no source environment matches; `inlet urls` without filters lists them all");
        return Ok(ExitCode::FAILURE);
    }
    // Each source environment's current URL first, then any retiring after a rotation
    // (stable: the environments keep their order). `--quiet` prints the current ones
    // only, so `URL=$(inlet urls --quiet ...)` is always one URL per environment.
    matching.sort_by_key(|u| {
        (
            u.source.clone(),
            u.environment.clone(),
            u.retires_at_ms.is_some(),
        )
    });
    for u in matching {
        let retires = u
            .retires_at_ms
            .map(|at| format!("  (retiring: works until {} UTC)", time_of(at)))
            .unwrap_or_default();
        if args.quiet {
            if u.retires_at_ms.is_none() {
                println!("{}", u.url);
            }
        } else {
            println!(
                "{:<28} {}{retires}",
                format!("{}/{}", u.source, u.environment),
                u.url
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// GET `path` from the admin API; errors carry the API's own message.
async fn admin_get(
    server: &str,
    path: &str,
    query: &[(&str, String)],
) -> anyhow::Result<serde_json::Value> {
    let mut url = format!("{}{path}", server.trim_end_matches('/'));
    if !query.is_empty() {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        url = format!("{url}?{encoded}");
    }
    let response = reqwest::Client::new()
        .get(&url)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach {server}; is `inlet dev` running? (--server sets the address)")
        })?;
    let status = response.status();
    let body: serde_json::Value = response
        .json()
        .await
        .with_context(|| format!("{url} did not answer JSON"))?;
    if !status.is_success() {
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("{url} answered {status}: {message}");
    }
    Ok(body)
}

async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let mut query: Vec<(&str, String)> = vec![("limit", args.limit.to_string())];
    for (name, value) in [
        ("source", &args.source),
        ("env", &args.env),
        ("type", &args.event_type),
        ("status", &args.status),
        ("since", &args.since),
    ] {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    }
    let mut newest: Option<String> = None;
    loop {
        let page = match &args.server.aws_env {
            Some(env) => {
                let names = inlet_aws::StackNames::for_environment(env);
                let status = args
                    .status
                    .as_deref()
                    .map(|s| {
                        inlet_core::store::EventStatus::parse(s)
                            .ok_or_else(|| anyhow::anyhow!("unknown status `{s}`"))
                    })
                    .transpose()?;
                let since_ms = args
                    .since
                    .as_deref()
                    .map(|t| {
                        inlet_admin::parse_time("since", t).map_err(|e| anyhow::anyhow!("{e}"))
                    })
                    .transpose()?;
                let query = inlet_core::store::EventQuery {
                    source: args.source.clone(),
                    event_type: args.event_type.clone(),
                    status,
                    since_ms,
                    limit: args.limit,
                    ..Default::default()
                };
                crate::aws_cli::list(&names, query).await?
            }
            None => admin_get(&args.server.server, "/admin/events", &query).await?,
        };
        let events = page["events"].as_array().cloned().unwrap_or_default();
        // The API lists newest first; print oldest first, each event once.
        for e in events.iter().rev() {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            if newest.as_ref().is_some_and(|n| id <= *n) {
                continue;
            }
            if args.server.json {
                println!("{e}");
            } else {
                if newest.is_none() {
                    println!("{}", event_header());
                }
                println!("{}", event_line(e));
            }
            newest = Some(id);
        }
        if !args.follow {
            if events.is_empty() && !args.server.json {
                eprintln!("no events match");
            }
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn event(args: EventArgs) -> anyhow::Result<ExitCode> {
    let path = format!("/admin/events/{}", args.id);
    let body = match &args.server.aws_env {
        // The stack's admin router, run here with the user's credentials.
        Some(env) => {
            let target = crate::operations_cli::AdminTarget::new("", Some(env), None);
            let (status, body) = crate::operations_cli::admin_call(
                &target,
                axum::http::Method::GET,
                &path,
                &[],
                &[],
                None,
            )
            .await?;
            crate::operations_cli::success(status, body)?
        }
        None => admin_get(&args.server.server, &path, &[]).await?,
    };
    if args.server.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The header line as `inlet logs` prints it, the counts from the action log below.
    let mut e = body["event"].clone();
    let log: Vec<inlet_core::store::ActionLogEntry> =
        serde_json::from_value(body["actions"].clone()).unwrap_or_default();
    e["action_counts"] = serde_json::json!(inlet_core::store::ActionCounts::of(&log));
    let e = &e;
    println!("{}", event_line(e));
    println!(
        "  received  {}",
        time_of(e["received_at_ms"].as_i64().unwrap_or(0))
    );
    println!(
        "  occurred  {}",
        time_of(e["occurred_at_ms"].as_i64().unwrap_or(0))
    );
    if let Some(key) = e["idempotency_key"].as_str() {
        println!("  idempotency key  {key}");
    }
    if let Some(original) = e["duplicate_of"].as_str() {
        println!("  duplicate of  {original}");
    }
    if let Some(original) = e["replay_of"].as_str() {
        println!("  replay of  {original}");
    }
    if let Some(error) = e["error"].as_str() {
        println!("  error  {error}");
    }
    for w in e["warnings"].as_array().into_iter().flatten() {
        println!("  warning  {}", w.as_str().unwrap_or_default());
    }
    for line in e["script_console"].as_array().into_iter().flatten() {
        println!("  console  {}", line.as_str().unwrap_or_default());
    }
    if !e["preprocess"].is_null() {
        println!("  preprocess  {}", e["preprocess"]);
    }
    println!("  body  {}", e["raw_body"].as_str().unwrap_or_default());
    let actions = body["actions"].as_array().cloned().unwrap_or_default();
    println!("actions ({}):", actions.len());
    for a in &actions {
        println!(
            "  {} {:<24} {:<10} attempts {}  {}",
            a["index"],
            a["action"].as_str().unwrap_or("?"),
            a["status"].as_str().unwrap_or("?"),
            a["attempts"],
            match a["error"].as_str() {
                Some(error) => format!("error: {error}"),
                None => format!("payload {} result {}", a["payload"], a["result"]),
            }
        );
    }
    if let Some(outbox) = body["outbox"].as_object() {
        // The outbox row is the event's hand-off to the executor: its attempts count
        // re-runs of the whole plan, not of one action (those are per action above).
        println!(
            "outbox  {}, plan re-run {} time(s){}",
            outbox["state"].as_str().unwrap_or("?"),
            outbox["attempts"].as_u64().unwrap_or(0),
            outbox["last_error"]
                .as_str()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `inlet send`: reads the sample, signs it (the secret comes from the vars, as the
/// server reads it), posts it and prints the answer; exits non-zero unless it is a 2xx.
async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let body = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let url = match (&args.url, &args.source) {
        (Some(url), _) => url.clone(),
        (None, Some(source)) => server_urls(&args.server)
            .await?
            .into_iter()
            // The current URL, not one a rotation is retiring.
            .find(|(key, env, _, retires)| key == source && *env == args.env && retires.is_none())
            .map(|(_, _, url, _)| url)
            .with_context(|| {
                format!(
                    "the server at {} has no source `{source}` with environment `{}` (or no webhook URL for it yet)",
                    args.server, args.env
                )
            })?,
        (None, None) => anyhow::bail!("give --source (or --url)"),
    };
    let mut headers: Vec<(String, String)> = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("header `{header}` is not `Name: value`"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    if let Some(scheme) = &args.sign {
        if !inlet_core::verify::SIGNING_NAMES.contains(&scheme.as_str()) {
            anyhow::bail!(
                "cannot sign with `{scheme}`; --sign takes one of: {}",
                inlet_core::verify::SIGNING_NAMES.join(", ")
            );
        }
        let var = match (&args.secret_var, inlet_core::presets::preset(scheme)) {
            (Some(var), _) => var.clone(),
            (None, Some(preset)) if !preset.secret_var.is_empty() => preset.secret_var.to_string(),
            _ => anyhow::bail!(
                "give --secret-var: the var holding the secret the source checks `{scheme}` signatures with (TASK_APP_SECRET for the example task-app source)"
            ),
        };
        let vars = crate::vars::load_local_vars(args.vars.as_deref(), std::env::vars())?;
        let secret = match vars.for_scripts().get(&var) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(items)) => match items.last() {
                Some(serde_json::Value::String(s)) => s.clone(),
                _ => anyhow::bail!("var `{var}` holds an array without a string at its end"),
            },
            Some(other) => other.to_string(),
            None => anyhow::bail!(
                "var `{var}` is not set; put it in the --vars file or set INLET_VAR_{var}"
            ),
        };
        let now = SystemClock.now_ms().div_euclid(1000);
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let signed = inlet_core::verify::sign_headers(scheme, &secret, &body, now, &id)
            .map_err(|e| anyhow::anyhow!(e))?;
        headers.extend(signed);
    }
    if !headers.iter().any(|(name, _)| name == "content-type") {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let mut request = reqwest::Client::new().post(&url).body(body);
    for (name, value) in &headers {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}; is `inlet dev` running?"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    println!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    println!("{text}");
    // A 202 that accepted nothing: the event has no type (say, a header the preset reads
    // the type from was not sent). Logged, but nothing runs: not a success for a test.
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    if answer["status"] == "invalid_event_type" {
        eprintln!(
            "the event was logged but has no event type, so no action runs: {}",
            answer["message"].as_str().unwrap_or("see `inlet event`")
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(if status.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The webhook URLs the `inlet dev` running at `base` serves (its live config, at its
/// address), as (source, environment, url); an error says it cannot be reached.
/// (source, environment, URL, retirement time of a URL a rotation replaced).
type UrlRow = (String, String, String, Option<i64>);

async fn server_urls(base: &str) -> anyhow::Result<Vec<UrlRow>> {
    let body = admin_get(base, "/admin/sources", &[]).await?;
    let mut urls = Vec::new();
    for source in body["sources"].as_array().into_iter().flatten() {
        let key = source["key"].as_str().unwrap_or_default();
        for env in source["environments"].as_array().into_iter().flatten() {
            let name = env["name"].as_str().unwrap_or_default();
            let retiring = env["retiring"].as_array();
            for url in env["urls"].as_array().into_iter().flatten() {
                if let Some(url) = url.as_str() {
                    let retires_at = retiring
                        .into_iter()
                        .flatten()
                        .find(|r| r["url"] == url)
                        .and_then(|r| r["retires_at_ms"].as_i64());
                    urls.push((
                        key.to_string(),
                        name.to_string(),
                        url.to_string(),
                        retires_at,
                    ));
                }
            }
        }
    }
    Ok(urls)
}
