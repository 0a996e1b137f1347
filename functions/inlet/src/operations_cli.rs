//! `inlet rehearse`, `inlet replay` and `inlet token rotate`: the admin API's operations
//! (see `inlet_admin::operations`) from the command line. Each goes to the running
//! `inlet dev` (`--server`), or, with `--aws-env`, to a deployed stack: the stack's admin
//! router runs in this process with the user's AWS credentials (the same code the admin
//! function runs), so nothing needs the admin API's URL or IAM-signed requests.
//! `inlet token rotate` without a running dev server rotates in the database file
//! (`--db`); the server reads it at its next start.

use crate::output::time_of;
use crate::sqlite::SqliteStore;
use anyhow::Context;
use axum::body::Body;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::tokens::{Rotation, TokenStore};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tower::ServiceExt;

/// Where an admin request goes.
#[derive(Debug, Clone)]
pub enum AdminTarget {
    /// The `inlet dev` at this base URL.
    Server(String),
    /// The stack of this environment; `host` (from `--base-url`) makes URLs absolute.
    Stack { env: String, host: Option<String> },
}

impl AdminTarget {
    pub fn new(server: &str, aws_env: Option<&str>, base_url: Option<&str>) -> Self {
        match aws_env {
            Some(env) => AdminTarget::Stack {
                env: env.to_string(),
                host: base_url.and_then(host_of),
            },
            None => AdminTarget::Server(server.trim_end_matches('/').to_string()),
        }
    }
}

/// The host of a stack's `WebhookBaseUrl` (`https://HOST/...`), which the admin code
/// builds webhook URLs with.
pub fn host_of(base_url: &str) -> Option<String> {
    base_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::to_string)
}

/// POSTs `body` to the admin API at `path`; see [`admin_call`].
pub async fn admin_post(
    target: &AdminTarget,
    path: &str,
    query: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    admin_call(target, axum::http::Method::POST, path, query, &[], body).await
}

/// Sends a request (with `headers`) to the admin API at `path`; answers the status and
/// the JSON body. Errors say where the request could not go; an error answer is
/// returned as it is.
pub async fn admin_call(
    target: &AdminTarget,
    method: axum::http::Method,
    path: &str,
    query: &[(&str, String)],
    headers: &[(&str, String)],
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut uri = path.to_string();
    if !query.is_empty() {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
            .finish();
        uri = format!("{uri}?{encoded}");
    }
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, bytes) = match target {
        AdminTarget::Server(server) => {
            let url = format!("{server}{uri}");
            let mut request = reqwest::Client::new()
                .request(method.clone(), &url)
                .header("content-type", "application/json");
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = request
                .body(payload)
                .send()
                .await
                .with_context(|| {
                    format!("cannot reach {server}; is `inlet dev` running? (--server sets the address, --aws-env asks a deployed stack)")
                })?;
            (response.status().as_u16(), response.bytes().await?.to_vec())
        }
        AdminTarget::Stack { env, host } => {
            let names = inlet_aws::StackNames::for_environment(env);
            let clients =
                inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI)
                    .await;
            let router = inlet_admin::router(inlet_admin::on_aws::state(&names, &clients));
            let mut request = axum::http::Request::builder()
                .method(method)
                .uri(&uri)
                .header("content-type", "application/json");
            if let Some(host) = host {
                request = request.header("host", host);
            }
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let response = router.oneshot(request.body(Body::from(payload))?).await?;
            let status = response.status().as_u16();
            let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024).await?;
            (status, bytes.to_vec())
        }
    };
    let value: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{uri} did not answer JSON ({status})"))?;
    Ok((status, value))
}

/// The answer's JSON if it is a success; its error message otherwise.
pub fn success(status: u16, body: Value) -> anyhow::Result<Value> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let message = body["error"]["message"].as_str().unwrap_or("no message");
    let code = body["error"]["code"].as_str().unwrap_or("error");
    anyhow::bail!("{status} {code}: {message}")
}

/// `inlet rehearse FILE --source K --env E [-H ...]`. Exit status 0 when the request
/// would be answered 2xx, 1 otherwise (so a script can require a payload to pass).
pub async fn rehearse(
    target: &AdminTarget,
    file: &PathBuf,
    source: &str,
    env: &str,
    headers: &[String],
    json_output: bool,
) -> anyhow::Result<ExitCode> {
    let body =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut header_map = serde_json::Map::new();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("`{header}` is not a header; write -H 'Name: value'"))?;
        header_map.insert(name.trim().to_string(), json!(value.trim()));
    }
    header_map
        .entry("content-type")
        .or_insert_with(|| json!("application/json"));
    let (status, answer) = admin_post(
        target,
        &format!("/admin/sources/{source}/rehearse"),
        &[("env", env.to_string())],
        Some(json!({"body": body, "headers": header_map})),
    )
    .await?;
    let rehearsal = success(status, answer)?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&rehearsal)?);
    } else {
        print!("{}", rehearsal_text(&rehearsal));
    }
    let would = rehearsal["http_status"].as_u64().unwrap_or(0);
    Ok(if (200..300).contains(&would) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A rehearsal for people.
pub fn rehearsal_text(r: &Value) -> String {
    let e = &r["event"];
    let mut out = format!(
        "DRY RUN (nothing was stored): would answer {} {}\n",
        r["http_status"],
        r["answer"].as_str().unwrap_or_default()
    );
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<13} {value}\n"));
    line(
        "verification",
        e["verification"].as_str().unwrap_or("?").to_string(),
    );
    line(
        "event type",
        e["event_type"].as_str().unwrap_or("-").to_string(),
    );
    line(
        "occurred",
        format!(
            "{} UTC",
            time_of(e["occurred_at_ms"].as_i64().unwrap_or_default())
        ),
    );
    match (e["idempotency_key"].as_str(), r["duplicate_of"].as_str()) {
        (Some(key), Some(original)) => line(
            "idempotency",
            format!("{key} (held by event {original}: a duplicate)"),
        ),
        (Some(key), None) => line("idempotency", format!("{key} (new)")),
        (None, _) => line("idempotency", "no key".into()),
    }
    for text in e["script_console"].as_array().into_iter().flatten() {
        line("console", text.as_str().unwrap_or_default().to_string());
    }
    for text in e["warnings"].as_array().into_iter().flatten() {
        line("warning", text.as_str().unwrap_or_default().to_string());
    }
    if let Some(error) = e["error"].as_str() {
        line("error", error.to_string());
    }
    for action in e["actions"].as_array().into_iter().flatten() {
        let name = action["action"].as_str().unwrap_or("?");
        let what = match action["skipped"].as_str() {
            Some(reason) => format!("skipped: {reason}"),
            None => format!("runs with {}", action["payload"]),
        };
        line(
            &format!("action {}", action["index"]),
            format!("{name}  {what}"),
        );
    }
    if e["actions"].as_array().is_none_or(Vec::is_empty) && e["status"].as_str() == Some("accepted")
    {
        line("actions", "none mapped for this event type".into());
    }
    out
}

/// How many times `inlet replay` asks when the answer is lost or a 5xx.
const REPLAY_ATTEMPTS: u32 = 3;

/// `inlet replay EVENT_ID`. The request carries a key of its own (`Idempotency-Key`),
/// so when an answer is lost or is a 5xx the command asks again without replaying the
/// event twice (the admin API answers the replay the key made).
pub async fn replay(target: &AdminTarget, id: &str, json_output: bool) -> anyhow::Result<ExitCode> {
    let path = format!("/admin/events/{id}/replay");
    let key = [("idempotency-key", inlet_core::store::new_event_id())];
    let mut attempt = 1;
    let (status, answer) = loop {
        let result = admin_call(target, axum::http::Method::POST, &path, &[], &key, None).await;
        match result {
            Ok((status, answer)) if status < 500 || attempt == REPLAY_ATTEMPTS => {
                break (status, answer);
            }
            Err(error) if attempt == REPLAY_ATTEMPTS => return Err(error),
            Ok((status, _)) => tracing::warn!(
                status,
                attempt,
                "replay answered 5xx; asking again with the same key"
            ),
            Err(error) => {
                tracing::warn!(%error, attempt, "replay not answered; asking again with the same key")
            }
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let replayed = success(status, answer)?;
    if json_output {
        println!("{}", serde_json::to_string_pretty(&replayed)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "Replayed {id} as {}: {}, {} action(s) to run",
        replayed["event_id"].as_str().unwrap_or("?"),
        replayed["status"].as_str().unwrap_or("?"),
        replayed["actions"]
    );
    if replayed["repeated"] == true {
        println!("  (made by an earlier attempt of this command, whose answer was lost)");
    }
    if let Some(error) = replayed["error"].as_str() {
        println!("  error  {error}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `inlet token rotate --source K --env E [--overlap 24h]`. With `db` and no server
/// answering, the rotation is made in the database file.
pub async fn rotate(
    target: &AdminTarget,
    source: &str,
    env: &str,
    overlap: &str,
    db: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let query = [("env", env.to_string()), ("overlap", overlap.to_string())];
    let path = format!("/admin/sources/{source}/tokens/rotate");
    let rotated = match (admin_post(target, &path, &query, None).await, target, db) {
        (Ok((status, answer)), ..) => success(status, answer)?,
        (Err(unreachable), AdminTarget::Server(server), Some(db)) => {
            let overlap_ms = humantime::parse_duration(overlap)
                .with_context(|| {
                    format!("`--overlap` must be a duration such as 24h, got `{overlap}`")
                })?
                .as_millis() as i64;
            tracing::debug!(error = %unreachable, "no dev server; rotating in the database file");
            let store = SqliteStore::open(db, Duration::from_secs(5))
                .with_context(|| format!("opening the store {}", db.display()))?;
            let tokens = store
                .rotate(Rotation {
                    source,
                    environment: env,
                    now_ms: SystemClock.now_ms(),
                    overlap_ms,
                })
                .await?;
            let urls = crate::server::webhook_urls(server, &tokens);
            println!(
                "(no `inlet dev` answers at {server}; rotated in {})",
                db.display()
            );
            json!({
                "url": urls.last().map(|u| u.url.clone()),
                "retiring": urls.iter().filter_map(|u| u.retires_at_ms.map(|at| json!({"url": u.url, "retires_at_ms": at}))).collect::<Vec<_>>(),
            })
        }
        (Err(error), ..) => return Err(error),
    };
    println!(
        "New webhook URL of {source}/{env}: {}",
        rotated["url"].as_str().unwrap_or("?")
    );
    for old in rotated["retiring"].as_array().into_iter().flatten() {
        println!(
            "  the old URL {} works until {} UTC, then answers 404",
            old["url"].as_str().unwrap_or("?"),
            time_of(old["retires_at_ms"].as_i64().unwrap_or_default())
        );
    }
    Ok(ExitCode::SUCCESS)
}
