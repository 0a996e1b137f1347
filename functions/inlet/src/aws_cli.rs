//! The CLI against a deployed stack: `inlet config push`, and `inlet logs/event/urls`
//! with `--aws-env`. It talks to the stack's tables directly with the caller's AWS
//! credentials (the standard chain: profile, env vars, SSO...), found by the names the
//! SAM template gives them (`inlet-<env>-config`, `inlet-<env>-events`). Reading needs
//! only `dynamodb:GetItem`/`Query` on those tables; pushing needs `PutItem` on the
//! config table.

use anyhow::Context;
use inlet_aws::StackNames;
use inlet_aws::clients::{AwsClients, ClientSettings};
use inlet_aws::config_table::ConfigTable;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::config::{Targets, load_dir, load_targets};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::store::{EventLog, EventQuery, list_across};
use inlet_core::tokens::TokenStore;
use std::path::Path;
use std::sync::Arc;

/// What `config push` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    pub files: usize,
    pub new_tokens: usize,
    /// (source, token) of every source environment of `environment`.
    pub tokens: Vec<(String, String)>,
    /// The targets pushed, if a targets file was given.
    pub targets: Option<Targets>,
    /// Targets the stack's policy does not let it reach (see
    /// [`inlet_aws::targets::unreachable_from_stack`]).
    pub unreachable: Vec<String>,
}

async fn config_table(names: &StackNames) -> ConfigTable {
    let clients = AwsClients::from_env(&ClientSettings::CLI).await;
    ConfigTable::new(
        clients.dynamodb,
        names.config_table.clone(),
        Arc::new(ScriptEngine::new(ScriptLimits::default())),
        Arc::new(SystemClock),
    )
}

/// Validates `sources` like `inlet check` (and the targets file, if given), writes
/// every file of it (and the targets) to the config table, and creates tokens for
/// source environments of `environment` that have none.
pub async fn push(
    sources: &Path,
    targets_file: Option<&Path>,
    names: &StackNames,
) -> anyhow::Result<PushReport> {
    let engine = ScriptEngine::new(ScriptLimits::default());
    let catalog = load_dir(sources, &engine).map_err(|errors| {
        anyhow::anyhow!("the source config has problems (nothing was pushed):\n{errors}")
    })?;
    let targets = match targets_file {
        Some(file) => {
            let targets = load_targets(file).map_err(|errors| {
                anyhow::anyhow!("the targets file has problems (nothing was pushed):\n{errors}")
            })?;
            let text = std::fs::read_to_string(file)?;
            Some((targets, text))
        }
        None => None,
    };
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(sources).with_context(|| format!("reading {}", sources.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let name = path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            files.push((name, text));
        }
    }
    files.sort();
    let table = config_table(names).await;
    table.push_bundle(&files).await.with_context(|| {
        format!(
            "writing to {} (is the stack deployed, and are AWS credentials set?)",
            names.config_table
        )
    })?;
    if let Some((_, text)) = &targets {
        table.push_targets(text).await?;
    }
    let pairs: Vec<(String, String)> = catalog
        .environments()
        .filter(|(_, e)| *e == names.environment)
        .map(|(s, e)| (s.to_string(), e.to_string()))
        .collect();
    let now = SystemClock.now_ms();
    let new_tokens = table.ensure(&pairs, now).await?;
    // Each environment's current token (the last of its pair).
    let mut current = std::collections::BTreeMap::new();
    for t in table.active(now).await? {
        if t.environment == names.environment {
            current.insert(t.source, t.token);
        }
    }
    let tokens = pairs
        .into_iter()
        .filter_map(|(source, _)| current.get(&source).map(|t| (source, t.clone())))
        .collect();
    Ok(PushReport {
        files: files.len(),
        new_tokens,
        tokens,
        unreachable: targets
            .as_ref()
            .map(|(targets, _)| {
                inlet_aws::targets::unreachable_from_stack(targets, &names.environment)
            })
            .unwrap_or_default(),
        targets: targets.map(|(targets, _)| targets),
    })
}

/// (source, token) pairs of the stack's environment.
pub async fn tokens(names: &StackNames) -> anyhow::Result<Vec<(String, String)>> {
    let table = config_table(names).await;
    let now = SystemClock.now_ms();
    let mut tokens = table.tokens().await?;
    tokens.sort_by_key(|t| t.created_at_ms);
    Ok(tokens
        .into_iter()
        .filter(|t| t.environment == names.environment)
        .filter(|t| t.retires_at_ms.is_none_or(|at| at > now))
        .map(|t| {
            let token = match t.retires_at_ms {
                Some(at) => format!("{}  (retires {})", t.token, crate::output::time_of(at)),
                None => t.token,
            };
            (t.source, token)
        })
        .collect())
}

/// Events of every source (or one) of the stack's environment, newest first, as the
/// admin API lists them (with their action counts).
pub async fn list(names: &StackNames, mut query: EventQuery) -> anyhow::Result<serde_json::Value> {
    let log = AwsClients::from_env(&ClientSettings::CLI)
        .await
        .event_log(names);
    query.environment = Some(names.environment.clone());
    let sources: Vec<String> = match &query.source {
        Some(s) => vec![s.clone()],
        None => config_table(names)
            .await
            .catalog()
            .await?
            .sources
            .iter()
            .map(|s| s.key.clone())
            .collect(),
    };
    let page = list_across(&log, &sources, &query).await?;
    Ok(inlet_admin::page_with_counts(&log, page).await?)
}

/// One event with its action log, as the admin API shapes it.
pub async fn event(names: &StackNames, id: &str) -> anyhow::Result<serde_json::Value> {
    let log = AwsClients::from_env(&ClientSettings::CLI)
        .await
        .event_log(names);
    let mut event = log.get(id).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "no event `{id}` in {} (events are kept 30 days)",
            names.events_table
        )
    })?;
    event.actions.clear();
    let actions = log.action_log(id).await?;
    Ok(serde_json::json!({ "event": event, "actions": actions, "outbox": null }))
}
