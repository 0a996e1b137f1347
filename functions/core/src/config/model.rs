//! The loaded configuration: a [`Catalog`] of sources, each with its environments,
//! their verification, idempotency and mappings, as the pipeline reads them; and the
//! [`ConfigError`] every problem is reported as.

use crate::catalog::ActionKind;
use crate::path::FieldPath;
use crate::script::CompiledScript;
use crate::verify::Scheme;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Default idempotency window (published in docs/http-contract.md).
pub const DEFAULT_IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 3600;

/// One problem in one config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}\n    fix: {}",
            self.file.display(),
            self.line,
            self.message,
            self.fix
        )
    }
}

/// Every problem found while loading a config directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// All sources of one config directory, sorted by key.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: Vec<Arc<SourceConfig>>,
}

impl Catalog {
    pub fn source(&self, key: &str) -> Option<&Arc<SourceConfig>> {
        self.sources.iter().find(|s| s.key == key)
    }

    /// Every (source key, environment name) pair, in a stable order.
    pub fn environments(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources.iter().flat_map(|s| {
            s.environments
                .keys()
                .map(move |env| (s.key.as_str(), env.as_str()))
        })
    }
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub file: PathBuf,
    pub environments: BTreeMap<String, Arc<EnvironmentConfig>>,
}

#[derive(Debug, Clone)]
pub struct EnvironmentConfig {
    pub script: Option<Arc<CompiledScript>>,
    /// Declarative signature verification, checked before the script runs.
    pub verify: Option<VerifyConfig>,
    pub enforce_verification: bool,
    /// A production environment: `inlet rehearse` refuses it.
    pub production: bool,
    pub event_type_path: FieldPath,
    pub timestamp_path: Option<FieldPath>,
    pub idempotency: IdempotencySettings,
    /// Event type → its mappings, in config order.
    pub mappings: BTreeMap<String, Vec<MappingConfig>>,
    /// `forward_to_event_bus`: every accepted event also goes to this EventBridge bus
    /// (an `events_forward` action after its mapped ones).
    pub forward_to_event_bus: Option<String>,
}

/// `verify:` — a scheme of [`crate::verify`], the var holding its secret (a string, or
/// a JSON array of strings during a rotation) and the timestamp tolerance.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    pub scheme: Scheme,
    pub secret_var: String,
    pub tolerance_secs: u64,
}

impl EnvironmentConfig {
    /// The vars this environment cannot run without: those its script reads (without
    /// testing for them) and the secret of its `verify:` check, sorted.
    pub fn required_vars(&self) -> Vec<String> {
        let mut vars: Vec<String> = self
            .script
            .iter()
            .flat_map(|s| s.required_vars.iter().cloned())
            .chain(self.verify.iter().map(|v| v.secret_var.clone()))
            .collect();
        vars.sort();
        vars.dedup();
        vars
    }
}

#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    pub enabled: bool,
    pub key_path: Option<FieldPath>,
    pub window_secs: u64,
}

#[derive(Debug, Clone)]
pub struct MappingConfig {
    pub action: ActionKind,
    pub active: bool,
    pub line: usize,
    pub params: Vec<MappingParam>,
    /// `params` as the user wrote them, built once at load and shared by every action
    /// log entry.
    pub params_json: Arc<Value>,
}

#[derive(Debug, Clone)]
pub struct MappingParam {
    /// `key`, `recipients`, or a dotted merge target such as `data.task_id`.
    pub name: String,
    pub source: ParamSource,
}

#[derive(Debug, Clone)]
pub enum ParamSource {
    Path(FieldPath),
    Literal(Value),
}

impl ParamSource {
    /// How the param is sourced, for skip reasons.
    pub fn describe(&self) -> String {
        match self {
            ParamSource::Path(p) => format!("path `{p}`"),
            ParamSource::Literal(_) => "literal value".to_string(),
        }
    }
}

impl MappingConfig {
    /// `params` are kept with whole-value params (`data: body.data`) before dotted merges
    /// (`data.x: ...`), the order the plan applies them in, so that the more specific
    /// mapping wins whatever order the YAML uses.
    pub fn new(
        action: ActionKind,
        active: bool,
        line: usize,
        mut params: Vec<MappingParam>,
    ) -> Self {
        let params_json = Arc::new(params_as_json(&params));
        params.sort_by_key(|p| p.name.contains('.'));
        MappingConfig {
            action,
            active,
            line,
            params,
            params_json,
        }
    }
}

/// The mapping as the user wrote it, for the action log's `params`.
fn params_as_json(params: &[MappingParam]) -> Value {
    {
        let params: Map<String, Value> = params
            .iter()
            .map(|p| {
                let v = match &p.source {
                    ParamSource::Path(path) => Value::String(path.to_string()),
                    ParamSource::Literal(value) => serde_json::json!({ "value": value }),
                };
                (p.name.clone(), v)
            })
            .collect();
        Value::Object(params)
    }
}
