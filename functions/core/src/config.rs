//! Source configuration: `infra/sources/<key>.yaml` files and the scripts beside them.
//!
//! [`load_dir`] reads every `*.yaml`/`*.yml` file of a directory, validates it against the
//! schema below and compiles the scripts it names. Validation never stops at the first
//! problem: it returns all of them, each naming the file, the line and the fix, so
//! `inlet check` can print one complete report. Everything that can be checked before a
//! request arrives is checked here (paths, action names, param names, required params,
//! script syntax), so the request path never parses config.
//!
//! Decisions made here (docs/sources.md documents them):
//! - `enforce_verification` defaults to `true` when the environment has a script and to
//!   `false` when it has none; `true` without a script is an error, since nothing could
//!   ever verify a request.
//! - `event_type_path` defaults to `body.type`, Knock's default for custom sources.
//! - `idempotency.window` takes a duration (`24h`, `90m`, `3600s`) or whole seconds.
//! - `production` marks an environment whose payloads must not be rehearsed (a dry run
//!   runs its script with its secrets and shows what the script printed); it defaults to
//!   `true` for an environment named `production` and `false` otherwise.
//! - A mapping that does not map one of its action's required params is a load error
//!   (it could only ever be skipped).

use crate::catalog::{ActionKind, ParamType};
use crate::path::FieldPath;
use crate::presets::{self, Preset};
use crate::script::{CompiledScript, ScriptEngine};
use crate::verify::{DEFAULT_TOLERANCE_SECS, HMAC_OPTION_NAMES, SCHEME_NAMES, Scheme};
use crate::yaml::{self, Kind, Node};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
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

impl Catalog {
    /// One line per var an environment needs that `provided` does not have.
    pub fn missing_vars(&self, provided: &crate::vars::Vars) -> Vec<String> {
        let mut missing = Vec::new();
        for source in &self.sources {
            for (name, env) in &source.environments {
                for var in env.required_vars() {
                    if !provided.for_scripts().contains_key(&var) {
                        missing.push(format!(
                            "{}: `{}/{name}` needs var `{var}`, which no vars file or INLET_VAR_{var} provides; requests will be answered 503 until it is set",
                            source.file.display(),
                            source.key
                        ));
                    }
                }
            }
        }
        missing
    }
}

impl Catalog {
    /// Params that look like a text written as a path (`key: order-shipped`): a path
    /// without a dot or bracket reads a top-level field of the body, and one with a `-`
    /// in it, or given to a workflow's `key` or an object's `collection` (almost always
    /// fixed names), is rarely meant (the runtime skips the action when a required one
    /// resolves to nothing and asks the same question). Top-level fields such as
    /// Segment's `userId` are not flagged. One line each, with file, line and the fix.
    pub fn texts_written_as_paths(&self) -> Vec<String> {
        let mut found = Vec::new();
        for source in &self.sources {
            for (env_name, env) in &source.environments {
                for (event_type, mappings) in &env.mappings {
                    for mapping in mappings {
                        for param in &mapping.params {
                            let ParamSource::Path(path) = &param.source else {
                                continue;
                            };
                            let text = path.to_string();
                            let looks_like_text = text.contains('-')
                                || matches!(param.name.as_str(), "key" | "collection");
                            if text.contains(['.', '[']) || !looks_like_text {
                                continue;
                            }
                            found.push(format!(
                                "{}:{}: `{}/{env_name}` `{event_type}` → {}: param `{}: {text}` reads the body's top-level field `{text}`; if you meant the text, write `{}: {{ value: {text} }}`",
                                source.file.display(),
                                mapping.line,
                                source.key,
                                mapping.action.name(),
                                param.name,
                                param.name,
                            ));
                        }
                    }
                }
            }
        }
        found
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

/// One source file's path and text (read from disk, or from the AWS config table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

/// Reads a script named by a source file (path already joined to the file's directory).
pub type ScriptReader<'a> = &'a dyn Fn(&Path) -> std::io::Result<String>;

/// Loads and validates every source file in `dir`, compiling scripts with `engine`.
pub fn load_dir(dir: &Path, engine: &ScriptEngine) -> Result<Catalog, ConfigErrors> {
    let (files, errors) = read_source_files(dir)?;
    if files.is_empty() && errors.is_empty() {
        return Err(ConfigErrors(vec![ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            message: "no source files (`*.yaml`) found".into(),
            fix: "add a source file such as `infra/sources/task-app.yaml` (see docs/sources.md)"
                .into(),
        }]));
    }
    let result = load_sources(&files, &|p| std::fs::read_to_string(p), engine);
    match (result, errors.is_empty()) {
        (Ok(catalog), true) => Ok(catalog),
        (Ok(_), false) => Err(ConfigErrors(errors)),
        (Err(ConfigErrors(mut more)), _) => {
            more.splice(0..0, errors);
            Err(ConfigErrors(more))
        }
    }
}

/// The `*.yaml`/`*.yml` files of `dir`, sorted, and the ones that could not be read.
pub fn read_source_files(dir: &Path) -> Result<(Vec<SourceFile>, Vec<ConfigError>), ConfigErrors> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: dir.to_path_buf(),
            line: 0,
            message: format!("cannot read the sources directory: {e}"),
            fix: "pass the directory that holds your `<key>.yaml` files (default `infra/sources`)"
                .into(),
        }])
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match std::fs::read_to_string(&path) {
            Ok(text) => files.push(SourceFile { path, text }),
            Err(e) => errors.push(ConfigError {
                file: path,
                line: 0,
                message: format!("cannot read the file: {e}"),
                fix: "check the file's permissions and that it is UTF-8 text".into(),
            }),
        }
    }
    Ok((files, errors))
}

/// Validates `files` (scripts read through `read_script`) into a catalog, reporting
/// every problem.
pub fn load_sources(
    files: &[SourceFile],
    read_script: ScriptReader<'_>,
    engine: &ScriptEngine,
) -> Result<Catalog, ConfigErrors> {
    let mut errors = Vec::new();
    let mut sources: Vec<Arc<SourceConfig>> = Vec::new();
    for SourceFile { path: file, text } in files {
        let mut loader = FileLoader {
            file,
            engine,
            read_script,
            errors: Vec::new(),
        };
        let source = loader.load(text);
        errors.extend(loader.errors);
        if let Some(source) = source {
            if let Some(other) = sources.iter().find(|s| s.key == source.key) {
                errors.push(ConfigError {
                    file: file.clone(),
                    line: 1,
                    message: format!(
                        "source key `{}` is already used by {}",
                        source.key,
                        other.file.display()
                    ),
                    fix: "give every source a unique `key`".into(),
                });
            } else {
                sources.push(Arc::new(source));
            }
        }
    }
    if sources.is_empty() && errors.is_empty() {
        errors.push(ConfigError {
            file: files.first().map(|f| f.path.clone()).unwrap_or_default(),
            line: 0,
            message: "no source files (`*.yaml`) found".into(),
            fix: "add a source file such as `infra/sources/task-app.yaml` (see docs/sources.md)"
                .into(),
        });
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    sources.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Catalog { sources })
}

/// Validates one file; problems accumulate in `errors`.
struct FileLoader<'a> {
    file: &'a Path,
    engine: &'a ScriptEngine,
    read_script: ScriptReader<'a>,
    errors: Vec<ConfigError>,
}

const SOURCE_KEYS: &[&str] = &["key", "name", "description", "environments"];
const ENV_KEYS: &[&str] = &[
    "preset",
    "script",
    "verify",
    "enforce_verification",
    "production",
    "event_type_path",
    "timestamp_path",
    "idempotency",
    "mappings",
];
const IDEMPOTENCY_KEYS: &[&str] = &["enabled", "key_path", "window"];
/// `verify:`'s own keys; the `hmac` scheme also takes [`HMAC_OPTION_NAMES`].
const VERIFY_KEYS: &[&str] = &["scheme", "secret_var", "tolerance"];
const MAPPING_KEYS: &[&str] = &["action", "params", "active"];

impl FileLoader<'_> {
    fn error(&mut self, line: usize, message: impl Into<String>, fix: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            message: message.into(),
            fix: fix.into(),
        });
    }

    /// The entries of a mapping node, reporting keys outside `allowed`.
    fn entries<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<&'n [(String, usize, Node)]> {
        let Kind::Map(entries) = &node.kind else {
            self.error(
                node.line,
                format!("{what} must be a mapping, found {}", node.describe()),
                format!("write {what} as `key: value` lines"),
            );
            return None;
        };
        for (key, line, _) in entries {
            if !allowed.contains(&key.as_str()) {
                let fix = match strsim_closest(key, allowed) {
                    Some(near) => format!(
                        "did you mean `{near}`? allowed keys: {}",
                        allowed.join(", ")
                    ),
                    None => format!("remove it; allowed keys: {}", allowed.join(", ")),
                };
                self.error(*line, format!("unknown key `{key}` in {what}"), fix);
            }
        }
        Some(entries)
    }

    fn string(&mut self, node: &Node, what: &str) -> Option<String> {
        match &node.kind {
            Kind::Str(s) if !s.is_empty() => Some(s.clone()),
            _ => {
                self.error(
                    node.line,
                    format!(
                        "`{what}` must be a non-empty string, found {}",
                        node.describe()
                    ),
                    format!("write `{what}: some text`"),
                );
                None
            }
        }
    }

    fn boolean(&mut self, node: &Node, what: &str) -> Option<bool> {
        match node.kind {
            Kind::Bool(b) => Some(b),
            _ => {
                self.error(
                    node.line,
                    format!("`{what}` must be true or false, found {}", node.describe()),
                    format!("write `{what}: true` or `{what}: false`"),
                );
                None
            }
        }
    }

    fn path(&mut self, node: &Node, what: &str) -> Option<FieldPath> {
        let text = self.string(node, what)?;
        match FieldPath::parse(&text) {
            Ok(path) => Some(path),
            Err(e) => {
                self.error(node.line, format!("`{what}`: {e}"), e.fix);
                None
            }
        }
    }

    fn identifier(&mut self, line: usize, what: &str, text: &str) -> bool {
        let ok = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !ok {
            self.error(
                line,
                format!("{what} `{text}` may only use a-z, 0-9, `-` and `_`"),
                format!("rename it, e.g. `{}`", slug(text)),
            );
        }
        ok
    }

    fn load(&mut self, text: &str) -> Option<SourceConfig> {
        let root = match yaml::parse(text) {
            Ok(root) => root,
            Err(e) => {
                self.error(
                    e.line,
                    e.message,
                    "fix the YAML syntax at this line (indentation, quotes, brackets)",
                );
                return None;
            }
        };
        let entries = self.entries(&root, "the source", SOURCE_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, ..)| k == name).map(|(_, _, v)| v);
        let key = match get("key") {
            Some(node) => self
                .string(node, "key")
                .filter(|k| self.identifier(node.line, "source key", k)),
            None => {
                self.error(
                    1,
                    "the source has no `key`",
                    "add `key: my-source` (a-z, 0-9, `-`, `_`; unique across files)",
                );
                None
            }
        };
        let name = match get("name") {
            Some(node) => self.string(node, "name"),
            None => {
                self.error(1, "the source has no `name`", "add `name: A readable name`");
                None
            }
        };
        let description = get("description").and_then(|n| self.string(n, "description"));
        let mut environments = BTreeMap::new();
        match get("environments") {
            None => self.error(
                1,
                "the source has no `environments`",
                "add `environments:` with at least one environment, e.g. `development:`",
            ),
            Some(node) => match &node.kind {
                Kind::Map(envs) => {
                    if envs.is_empty() {
                        self.error(
                            node.line,
                            "`environments` is empty",
                            "add at least one environment, e.g. `development:`",
                        );
                    }
                    for (env_name, line, env_node) in envs {
                        if !self.identifier(*line, "environment name", env_name) {
                            continue;
                        }
                        if let Some(env) = self.environment(env_node, env_name) {
                            environments.insert(env_name.clone(), Arc::new(env));
                        }
                    }
                }
                _ => self.error(
                    node.line,
                    format!(
                        "`environments` must be a mapping, found {}",
                        node.describe()
                    ),
                    "write `environments:` then one `<name>:` block per environment",
                ),
            },
        }
        Some(SourceConfig {
            key: key?,
            name: name?,
            description,
            file: self.file.to_path_buf(),
            environments,
        })
    }

    fn environment(&mut self, node: &Node, env_name: &str) -> Option<EnvironmentConfig> {
        let what = format!("environment `{env_name}`");
        let entries = self.entries(node, &what, ENV_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, ..)| k == name).map(|(_, _, v)| v);
        let before = self.errors.len();

        let preset = get("preset").and_then(|n| self.preset(n));
        let script = match (
            get("script"),
            preset.and_then(|p| p.script.map(|code| (p, code))),
        ) {
            (Some(n), _) => self.script(n),
            (None, Some((preset, code))) => self.builtin_script(preset, code),
            (None, None) => None,
        };
        let verify = match get("verify") {
            Some(n) => self.verify(n),
            None => preset.and_then(|p| {
                p.scheme.clone().map(|scheme| VerifyConfig {
                    scheme,
                    secret_var: p.secret_var.to_string(),
                    tolerance_secs: DEFAULT_TOLERANCE_SECS,
                })
            }),
        };
        // A preset's own script (a handshake, an event type) does not verify.
        let verifies = get("script").is_some() || get("verify").is_some() || verify.is_some();
        let enforce_verification = match get("enforce_verification") {
            Some(n) => self.boolean(n, "enforce_verification"),
            None => Some(verifies),
        };
        if enforce_verification == Some(true) && !verifies {
            self.error(
                get("enforce_verification").map_or(node.line, |n| n.line),
                format!("{what} enforces verification but has no `verify` or `script` to verify requests"),
                "add `verify: { scheme: ..., secret_var: ... }` or `script: <file>.rhai` that returns `verified`, or set `enforce_verification: false`",
            );
        }
        let production = match get("production") {
            Some(n) => self.boolean(n, "production"),
            None => Some(env_name == "production"),
        };
        let event_type_path = match get("event_type_path") {
            Some(n) => self.path(n, "event_type_path"),
            None => FieldPath::parse(preset.map_or("body.type", |p| p.event_type_path)).ok(),
        };
        let timestamp_path = get("timestamp_path").map(|n| self.path(n, "timestamp_path"));
        let idempotency = match get("idempotency") {
            Some(n) => self.idempotency(n),
            None => {
                let key_path = preset
                    .and_then(|p| p.idempotency_key_path)
                    .and_then(|path| FieldPath::parse(path).ok());
                Some(IdempotencySettings {
                    enabled: key_path.is_some(),
                    key_path,
                    window_secs: DEFAULT_IDEMPOTENCY_WINDOW_SECS,
                })
            }
        };
        let mappings = match (get("mappings"), preset.and_then(|p| p.mappings)) {
            (Some(n), _) => self.mappings(n),
            (None, Some(yaml)) => match yaml::parse(yaml) {
                Ok(node) => self.mappings(&node),
                Err(e) => {
                    self.error(
                        node.line,
                        format!("preset mappings do not parse: {}", e.message),
                        "report this as a bug in Inlet",
                    );
                    BTreeMap::new()
                }
            },
            (None, None) => BTreeMap::new(),
        };
        if self.errors.len() > before {
            return None;
        }
        Some(EnvironmentConfig {
            script,
            verify,
            enforce_verification: enforce_verification?,
            production: production?,
            event_type_path: event_type_path?,
            timestamp_path: timestamp_path.flatten(),
            idempotency: idempotency?,
            mappings,
        })
    }

    fn script(&mut self, node: &Node) -> Option<Arc<CompiledScript>> {
        let relative = self.string(node, "script")?;
        let path = self
            .file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(&relative);
        let code = match (self.read_script)(&path) {
            Ok(code) => code,
            Err(e) => {
                self.error(
                    node.line,
                    format!("cannot read script `{}`: {e}", path.display()),
                    "the script path is relative to this YAML file; create the file or fix the path",
                );
                return None;
            }
        };
        match self.engine.compile(&path.display().to_string(), &code) {
            Ok(script) => Some(script),
            Err(e) => {
                self.errors.push(ConfigError {
                    file: path.clone(),
                    line: e.line,
                    message: e.message,
                    fix: e.fix,
                });
                None
            }
        }
    }

    fn verify(&mut self, node: &Node) -> Option<VerifyConfig> {
        let allowed: Vec<&str> = VERIFY_KEYS
            .iter()
            .chain(HMAC_OPTION_NAMES.iter())
            .copied()
            .collect();
        let entries = self.entries(node, "`verify`", &allowed)?;
        let get = |name: &str| entries.iter().find(|(k, ..)| k == name).map(|(_, _, v)| v);
        let before = self.errors.len();
        let scheme_name = match get("scheme") {
            Some(n) => self.string(n, "verify.scheme"),
            None => {
                self.error(
                    node.line,
                    "`verify` has no `scheme`",
                    format!("add `scheme: <one of {}>`", SCHEME_NAMES.join(", ")),
                );
                None
            }
        };
        let mut scheme = scheme_name.as_deref().and_then(|name| {
            let scheme = Scheme::from_name(name);
            if scheme.is_none() {
                let line = get("scheme").map_or(node.line, |n| n.line);
                let fix = match strsim_closest(name, SCHEME_NAMES) {
                    Some(near) => format!(
                        "did you mean `{near}`? schemes: {}",
                        SCHEME_NAMES.join(", ")
                    ),
                    None => format!("use one of: {}", SCHEME_NAMES.join(", ")),
                };
                self.error(line, format!("unknown verification scheme `{name}`"), fix);
            }
            scheme
        });
        let secret_var = match get("secret_var") {
            Some(n) => self.string(n, "verify.secret_var"),
            None => {
                self.error(
                    node.line,
                    "`verify` has no `secret_var`",
                    "add `secret_var: NAME`, the var holding the signing secret (a JSON array of secrets during a rotation)",
                );
                None
            }
        };
        let tolerance_secs = match get("tolerance") {
            None => Some(DEFAULT_TOLERANCE_SECS),
            Some(n) => self.duration_secs(
                n,
                "verify.tolerance",
                0,
                "write a duration such as `300s`, `5m` or whole seconds",
            ),
        };
        match &mut scheme {
            Some(Scheme::Hmac(options)) => {
                let mut text = std::collections::HashMap::new();
                for key in HMAC_OPTION_NAMES {
                    if let Some(n) = get(key)
                        && let Some(value) = self.string(n, &format!("verify.{key}"))
                    {
                        text.insert(key, (value, n.line));
                    }
                }
                match text.remove("header") {
                    Some((header, _)) => options.header = header.to_ascii_lowercase(),
                    None if get("header").is_none() => self.error(
                        node.line,
                        "the `hmac` scheme needs `header`",
                        "add `header: x-signature`, the header holding the signature",
                    ),
                    None => {}
                }
                if let Some((prefix, _)) = text.remove("prefix") {
                    options.prefix = prefix;
                }
                if let Some((content, _)) = text.remove("signed_content") {
                    options.signed_content = content;
                }
                options.timestamp_header = text
                    .remove("timestamp_header")
                    .map(|(h, _)| h.to_ascii_lowercase());
                options.id_header = text
                    .remove("id_header")
                    .map(|(h, _)| h.to_ascii_lowercase());
                let mut problems = Vec::new();
                if let Some((value, line)) = text.remove("encoding") {
                    match crate::script::parse_encoding(&value) {
                        Ok(v) => options.encoding = v,
                        Err(p) => problems.push((line, "encoding", p)),
                    }
                }
                if let Some((value, line)) = text.remove("algorithm") {
                    match crate::script::parse_algorithm(&value) {
                        Ok(v) => options.algorithm = v,
                        Err(p) => problems.push((line, "algorithm", p)),
                    }
                }
                if let Some((value, line)) = text.remove("timestamp_unit") {
                    match crate::script::parse_unit(&value) {
                        Ok(v) => options.timestamp_unit = v,
                        Err(p) => problems.push((line, "timestamp_unit", p)),
                    }
                }
                for (line, key, problem) in problems {
                    self.error(line, format!("`verify.{key}`: {problem}"), "fix the value");
                }
                let content_line = get("signed_content").map_or(node.line, |n| n.line);
                for (placeholder, key, present) in [
                    (
                        "{timestamp}",
                        "timestamp_header",
                        options.timestamp_header.is_some(),
                    ),
                    ("{id}", "id_header", options.id_header.is_some()),
                ] {
                    if options.signed_content.contains(placeholder) && !present {
                        self.error(
                            content_line,
                            format!(
                                "`signed_content` uses {placeholder} but `verify` has no `{key}`"
                            ),
                            format!("add `{key}: <the header holding it>`"),
                        );
                    }
                }
            }
            Some(other) => {
                for key in HMAC_OPTION_NAMES {
                    if let Some(n) = get(key) {
                        self.error(
                            n.line,
                            format!(
                                "`{key}` is an option of the `hmac` scheme, not of `{}`",
                                other.name()
                            ),
                            "remove it (the scheme fixes it), or use `scheme: hmac`",
                        );
                    }
                }
            }
            None => {}
        }
        if self.errors.len() > before {
            return None;
        }
        Some(VerifyConfig {
            scheme: scheme?,
            secret_var: secret_var?,
            tolerance_secs: tolerance_secs?,
        })
    }

    /// A duration (`300s`, `5m`, `24h`) or whole seconds, at least `min_secs`; `fix`
    /// is the example the error gives.
    fn duration_secs(&mut self, node: &Node, what: &str, min_secs: u64, fix: &str) -> Option<u64> {
        match &node.kind {
            Kind::Int(secs) if *secs >= 0 && *secs as u64 >= min_secs => Some(*secs as u64),
            Kind::Str(text) => match humantime::parse_duration(text) {
                Ok(d) if d.as_secs() >= min_secs => Some(d.as_secs()),
                _ => {
                    self.error(
                        node.line,
                        format!("`{what}` `{text}` is not a duration"),
                        fix,
                    );
                    None
                }
            },
            _ => {
                self.error(
                    node.line,
                    format!("`{what}` must be a duration, found {}", node.describe()),
                    fix,
                );
                None
            }
        }
    }

    fn idempotency(&mut self, node: &Node) -> Option<IdempotencySettings> {
        let entries = self.entries(node, "`idempotency`", IDEMPOTENCY_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, ..)| k == name).map(|(_, _, v)| v);
        let enabled = match get("enabled") {
            Some(n) => self.boolean(n, "idempotency.enabled")?,
            None => true,
        };
        let key_path = match get("key_path") {
            Some(n) => Some(self.path(n, "idempotency.key_path")?),
            None => None,
        };
        if enabled && key_path.is_none() {
            self.error(
                node.line,
                "idempotency is enabled but has no `key_path`",
                "add `key_path: body.event_id` (the field that identifies an event), or `enabled: false`",
            );
            return None;
        }
        let window_secs = match get("window") {
            None => DEFAULT_IDEMPOTENCY_WINDOW_SECS,
            Some(n) => self.duration_secs(
                n,
                "window",
                1,
                "write a duration such as `24h`, `90m` or `3600s`",
            )?,
        };
        Some(IdempotencySettings {
            enabled,
            key_path,
            window_secs,
        })
    }

    fn mappings(&mut self, n: &Node) -> BTreeMap<String, Vec<MappingConfig>> {
        let mut mappings = BTreeMap::new();
        if let Kind::Map(types) = &n.kind {
            for (event_type, _, list) in types {
                let Kind::Seq(items) = &list.kind else {
                    self.error(
                        list.line,
                        format!(
                            "mappings for `{event_type}` must be a list, found {}",
                            list.describe()
                        ),
                        "start each mapping with `- action: <name>`",
                    );
                    continue;
                };
                let parsed: Vec<MappingConfig> = items
                    .iter()
                    .filter_map(|m| self.mapping(m, event_type))
                    .collect();
                mappings.insert(event_type.clone(), parsed);
            }
        } else {
            self.error(
                n.line,
                format!(
                    "`mappings` must map event types to lists, found {}",
                    n.describe()
                ),
                "write `mappings:` then `  task.assigned:` then `    - action: workflows_trigger`",
            );
        }
        mappings
    }

    fn preset(&mut self, node: &Node) -> Option<&'static Preset> {
        let name = self.string(node, "preset")?;
        let found = presets::preset(&name);
        if found.is_none() {
            let names = presets::names();
            let fix = match strsim_closest(&name, &names) {
                Some(near) => format!("did you mean `{near}`? presets: {}", names.join(", ")),
                None => format!("use one of: {}", names.join(", ")),
            };
            self.error(node.line, format!("unknown preset `{name}`"), fix);
        }
        found
    }

    /// A preset's built-in script, compiled like a file's.
    fn builtin_script(&mut self, preset: &Preset, code: &str) -> Option<Arc<CompiledScript>> {
        match self
            .engine
            .compile(&format!("preset:{}", preset.name), code)
        {
            Ok(script) => Some(script),
            Err(e) => {
                self.error(
                    e.line,
                    format!("the `{}` preset's script: {}", preset.name, e.message),
                    "report this as a bug in Inlet",
                );
                None
            }
        }
    }

    fn mapping(&mut self, node: &Node, event_type: &str) -> Option<MappingConfig> {
        let what = format!("a mapping of `{event_type}`");
        let entries = self.entries(node, &what, MAPPING_KEYS)?;
        let get = |name: &str| entries.iter().find(|(k, ..)| k == name).map(|(_, _, v)| v);
        let known = || ActionKind::ALL.iter().map(|a| a.name()).collect::<Vec<_>>();
        let action = match get("action") {
            None => {
                self.error(
                    node.line,
                    format!("{what} has no `action`"),
                    format!("add `action: <name>`; actions: {}", known().join(", ")),
                );
                return None;
            }
            Some(n) => {
                let name = self.string(n, "action")?;
                match ActionKind::from_name(&name) {
                    Some(action) => action,
                    None => {
                        let fix = match strsim_closest(&name, &known()) {
                            Some(near) => format!("did you mean `{near}`?"),
                            None => format!("use one of: {}", known().join(", ")),
                        };
                        self.error(n.line, format!("unknown action `{name}`"), fix);
                        return None;
                    }
                }
            }
        };
        let active = match get("active") {
            Some(n) => self.boolean(n, "active")?,
            None => true,
        };
        let mut params = Vec::new();
        // Names present in the YAML, valid or not: a required param whose mapping is
        // broken is reported once (as broken), not again as missing.
        let mut written: Vec<String> = Vec::new();
        let before = self.errors.len();
        let spec_names: Vec<&str> = action.params().iter().map(|p| p.name).collect();

        if let Some(pnode) = get("params") {
            if let Kind::Map(entries) = &pnode.kind {
                for (name, line, value) in entries {
                    written.push(name.clone());
                    if let Some(param) = self.param(action, &spec_names, name, *line, value) {
                        params.push(param);
                    }
                }
            } else {
                self.error(
                    pnode.line,
                    format!("`params` must be a mapping, found {}", pnode.describe()),
                    "write `params:` then one `name: path` line per param",
                );
            }
        }
        for spec in action.params().iter().filter(|p| p.required) {
            let mapped = written
                .iter()
                .any(|name| name == spec.name || name.starts_with(&format!("{}.", spec.name)));
            if !mapped {
                self.error(
                    node.line,
                    format!(
                        "{} requires param `{}`, which is not mapped",
                        action.name(),
                        spec.name
                    ),
                    format!(
                        "add `{}: <path>` (or `{{ value: ... }}`) under `params`",
                        spec.name
                    ),
                );
            }
        }
        (self.errors.len() == before).then(|| MappingConfig::new(action, active, node.line, params))
    }

    fn param(
        &mut self,
        action: ActionKind,
        spec_names: &[&str],
        name: &str,
        line: usize,
        value: &Node,
    ) -> Option<MappingParam> {
        let head = name.split('.').next().unwrap_or(name);
        let Some(spec) = action.param(head) else {
            let fix = match strsim_closest(head, spec_names) {
                Some(near) => format!(
                    "did you mean `{near}`? {} takes: {}",
                    action.name(),
                    spec_names.join(", ")
                ),
                None => format!("{} takes: {}", action.name(), spec_names.join(", ")),
            };
            self.error(
                line,
                format!("unknown param `{name}` for {}", action.name()),
                fix,
            );
            return None;
        };
        if head != name {
            let mergeable = matches!(spec.ty, ParamType::Object | ParamType::Any);
            if !mergeable || name.split('.').any(str::is_empty) {
                self.error(
                    line,
                    format!("param `{name}` merges into `{head}`, which is not an object param"),
                    format!("map `{head}` directly; only object params (like `data`) take `{head}.field` entries"),
                );
                return None;
            }
        }
        let source = match &value.kind {
            Kind::Str(_) => ParamSource::Path(self.path(value, name)?),
            Kind::Map(entries) if entries.len() == 1 && entries[0].0 == "value" => {
                ParamSource::Literal(entries[0].2.to_json())
            }
            _ => {
                self.error(
                    value.line,
                    format!(
                        "param `{name}` must be a path string or `{{ value: ... }}`, found {}",
                        value.describe()
                    ),
                    format!(
                        "write `{name}: body.some.field` or `{name}: {{ value: \"literal\" }}`"
                    ),
                );
                return None;
            }
        };
        Some(MappingParam {
            name: name.to_string(),
            source,
        })
    }
}

/// Where workflow runs and `lambda_invoke` calls go (`--targets FILE`):
///
/// ```yaml
/// workflows:
///   task-assigned: { url: http://127.0.0.1:9000/runs }
/// functions:
///   enrich-order: { url: http://127.0.0.1:9000/enrich }
/// ```
///
/// Locally a target is an HTTP endpoint that receives a JSON POST; on AWS it is a Lambda
/// function.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub workflows: BTreeMap<String, Target>,
    pub functions: BTreeMap<String, Target>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Url(String),
    Function(String),
}

/// Reads and validates a targets file; every problem is reported with its line.
pub fn load_targets(file: &Path) -> Result<Targets, ConfigErrors> {
    let fail = |line: usize, message: String, fix: &str| ConfigError {
        file: file.to_path_buf(),
        line,
        message,
        fix: fix.to_string(),
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![fail(
            0,
            format!("cannot read the targets file: {e}"),
            "pass an existing file to --targets",
        )])
    })?;
    let root = yaml::parse(&text).map_err(|e| {
        ConfigErrors(vec![fail(
            e.line,
            e.message,
            "fix the YAML syntax at this line",
        )])
    })?;
    let mut errors = Vec::new();
    let mut targets = Targets::default();
    let Kind::Map(sections) = &root.kind else {
        return Err(ConfigErrors(vec![fail(
            root.line,
            "the targets file must be a mapping".into(),
            "write `workflows:` and/or `functions:` sections",
        )]));
    };
    for (section, line, body) in sections {
        let slot = match section.as_str() {
            "workflows" => &mut targets.workflows,
            "functions" => &mut targets.functions,
            other => {
                errors.push(fail(
                    *line,
                    format!("unknown section `{other}`"),
                    "use `workflows:` or `functions:`",
                ));
                continue;
            }
        };
        let Kind::Map(entries) = &body.kind else {
            errors.push(fail(
                body.line,
                format!("`{section}` must map names to targets"),
                "write `name: { url: http://... }`",
            ));
            continue;
        };
        for (name, line, target) in entries {
            let fields = match &target.kind {
                Kind::Map(fields) => fields.as_slice(),
                _ => &[],
            };
            match fields {
                [(kind, _, value)] if kind == "url" || kind == "function" => match &value.kind {
                    Kind::Str(v) if kind == "function" => {
                        slot.insert(name.clone(), Target::Function(v.clone()));
                    }
                    Kind::Str(v) if v.starts_with("http://") || v.starts_with("https://") => {
                        slot.insert(name.clone(), Target::Url(v.clone()));
                    }
                    _ => errors.push(fail(
                        *line,
                        format!("target `{name}` has a bad {kind}"),
                        "write `url: http://host:port/path`",
                    )),
                },
                _ => errors.push(fail(
                    *line,
                    format!("target `{name}` must be `{{ url: ... }}` or `{{ function: ... }}`"),
                    "write `name: { url: http://127.0.0.1:9000/path }`",
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn strsim_closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn slug(text: &str) -> String {
    text.to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{ScriptEngine, ScriptLimits};

    fn load(files: &[(&str, &str)]) -> Result<Catalog, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let engine = ScriptEngine::new(ScriptLimits::default());
        load_dir(dir.path(), &engine).map_err(|mut e| {
            // Paths are temporary; keep only the file name for assertions.
            for err in &mut e.0 {
                err.file = PathBuf::from(err.file.file_name().unwrap());
            }
            e
        })
    }

    const GOOD: &str = r#"
key: task-app
name: Task app
environments:
  development:
    enforce_verification: false
    event_type_path: body.event_type
    timestamp_path: body.timestamp
    idempotency: { enabled: true, key_path: body.event_id, window: 2h }
    mappings:
      task.assigned:
        - action: workflows_trigger
          params:
            key: { value: task-assigned }
            recipients: data.assigned_to
            data.task_id: body.data.task_id
"#;

    #[test]
    fn a_good_file_loads() {
        let catalog = load(&[("task-app.yaml", GOOD)]).unwrap();
        let env = &catalog.sources[0].environments["development"];
        assert!(!env.enforce_verification);
        assert_eq!(env.event_type_path.as_str(), "body.event_type");
        assert_eq!(env.idempotency.window_secs, 7200);
        let m = &env.mappings["task.assigned"][0];
        assert_eq!(m.action, ActionKind::WorkflowsTrigger);
        assert_eq!(
            *m.params_json,
            serde_json::json!({"key": {"value": "task-assigned"}, "recipients": "data.assigned_to",
                               "data.task_id": "body.data.task_id"})
        );
    }

    fn messages(result: Result<Catalog, ConfigErrors>) -> Vec<String> {
        result
            .unwrap_err()
            .0
            .iter()
            .map(|e| format!("{}:{}: {} | {}", e.file.display(), e.line, e.message, e.fix))
            .collect()
    }

    #[test]
    fn every_problem_is_reported_with_file_line_and_fix() {
        let bad = r#"key: Task App
name: x
colour: blue
environments:
  development:
    event_type_pth: body.type
    idempotency: { enabled: true }
    mappings:
      a:
        - action: workflow_trigger
        - action: users_identify
          params:
            id: body..id
            emial: body.email
        - action: users_delete
          params: {}
"#;
        let msgs = messages(load(&[("bad.yaml", bad)]));
        let expected = [
            "bad.yaml:3: unknown key `colour` in the source | remove it; allowed keys: key, name, description, environments",
            "bad.yaml:1: source key `Task App` may only use a-z, 0-9, `-` and `_` | rename it, e.g. `task-app`",
            "bad.yaml:6: unknown key `event_type_pth` in environment `development` | did you mean `event_type_path`? allowed keys: preset, script, verify, enforce_verification, production, event_type_path, timestamp_path, idempotency, mappings",
            "bad.yaml:7: idempotency is enabled but has no `key_path` | add `key_path: body.event_id` (the field that identifies an event), or `enabled: false`",
            "bad.yaml:10: unknown action `workflow_trigger` | did you mean `workflows_trigger`?",
            "bad.yaml:13: `id`: invalid path `body..id`: the path has an empty segment (a leading, trailing or doubled `.`) | write segments separated by single dots, e.g. `body.data.id`",
            "bad.yaml:14: unknown param `emial` for users_identify | did you mean `email`? users_identify takes: id, properties, name, email, phone_number, avatar, locale, timezone, created_at, channel_data, preferences",
            "bad.yaml:15: users_delete requires param `id`, which is not mapped | add `id: <path>` (or `{ value: ... }`) under `params`",
        ];
        for e in expected {
            assert!(msgs.iter().any(|m| m == e), "missing {e}\n got: {msgs:#?}");
        }
        assert_eq!(msgs.len(), expected.len(), "{msgs:#?}");
    }

    #[test]
    fn yaml_syntax_errors_and_duplicates() {
        let msgs = messages(load(&[
            ("a.yaml", GOOD),
            ("b.yaml", GOOD),
            ("c.yaml", "key: [oops\n"),
        ]));
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("b.yaml:1: source key `task-app` is already used by")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("c.yaml:") && m.contains("YAML syntax error")),
            "{msgs:?}"
        );
    }

    #[test]
    fn scripts_missing_or_broken_and_unverifiable_enforcement() {
        let with_script = |script: &str| {
            GOOD.replace(
                "    enforce_verification: false\n",
                &format!("    script: {script}\n"),
            )
        };
        let msgs = messages(load(&[("a.yaml", &with_script("missing.rhai"))]));
        assert!(
            msgs[0].starts_with("a.yaml:6: cannot read script"),
            "{msgs:?}"
        );

        let msgs = messages(load(&[
            ("a.yaml", &with_script("broken.rhai")),
            ("broken.rhai", "fn main(ctx) {\n  let x = ;\n}\n"),
        ]));
        assert!(msgs[0].starts_with("broken.rhai:2: "), "{msgs:?}");

        let enforced = GOOD.replace("enforce_verification: false", "enforce_verification: true");
        let msgs = messages(load(&[("a.yaml", &enforced)]));
        assert!(
            msgs[0].contains("enforces verification but has no `verify` or `script`"),
            "{msgs:?}"
        );
    }

    #[test]
    fn merge_params_only_into_objects_and_literals_need_value() {
        let bad = GOOD.replace(
            "data.task_id: body.data.task_id",
            "key.x: body.a\n            actor: { literal: 1 }",
        );
        let msgs = messages(load(&[("a.yaml", &bad)]));
        assert!(
            msgs.iter().any(
                |m| m.contains("param `key.x` merges into `key`, which is not an object param")
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("param `actor` must be a path string or `{ value: ... }`")),
            "{msgs:?}"
        );
    }

    #[test]
    fn verify_blocks_are_checked_like_every_other_key() {
        let with = |verify: &str| {
            GOOD.replace(
                "    enforce_verification: false\n",
                &format!("    verify: {verify}\n"),
            )
        };
        let msgs = messages(load(&[(
            "v.yaml",
            &with("{ scheme: strip, secret_var: S, tolerance: soon }"),
        )]));
        assert!(
            msgs.iter().any(|m| m.contains("unknown verification scheme `strip` | did you mean `stripe`?")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify.tolerance` `soon` is not a duration")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[("v.yaml", &with("{ scheme: github }"))]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify` has no `secret_var` | add `secret_var: NAME`")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[(
            "v.yaml",
            &with("{ scheme: github, secret_var: S, header: x-sig }"),
        )]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`header` is an option of the `hmac` scheme, not of `github`")),
            "{msgs:#?}"
        );
        let msgs = messages(load(&[(
            "v.yaml",
            &with(
                "{ scheme: hmac, secret_var: S, header: X-Sig, encoding: hex2, signed_content: \"{timestamp}.{body}\" }",
            ),
        )]));
        assert!(
            msgs.iter()
                .any(|m| m.contains("`verify.encoding`: encoding `hex2` is not hex or base64")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains(
                "`signed_content` uses {timestamp} but `verify` has no `timestamp_header`"
            )),
            "{msgs:#?}"
        );

        // A good block: verification is enforced by default, no script needed.
        let catalog = load(&[(
            "v.yaml",
            &with("{ scheme: hmac, secret_var: S, header: X-Sig, prefix: \"sha1=\", algorithm: sha1, encoding: base64, tolerance: 2m, timestamp_header: X-Ts, signed_content: \"{timestamp}:{body}\" }"),
        )])
        .unwrap();
        let env = &catalog.sources[0].environments["development"];
        assert!(env.enforce_verification);
        let verify = env.verify.as_ref().unwrap();
        assert_eq!(verify.secret_var, "S");
        assert_eq!(verify.tolerance_secs, 120);
        let crate::verify::Scheme::Hmac(options) = &verify.scheme else {
            panic!("{:?}", verify.scheme)
        };
        assert_eq!(
            (
                options.header.as_str(),
                options.prefix.as_str(),
                options.timestamp_header.as_deref()
            ),
            ("x-sig", "sha1=", Some("x-ts"))
        );
        assert_eq!(options.algorithm, crate::verify::Algorithm::Sha1);
        assert_eq!(options.encoding, crate::verify::Encoding::Base64);
    }

    #[test]
    fn every_preset_loads_and_its_keys_can_be_overridden() {
        for name in presets::names() {
            let yaml =
                format!("key: p\nname: p\nenvironments:\n  development:\n    preset: {name}\n");
            let catalog = load(&[("p.yaml", &yaml)]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let env = &catalog.sources[0].environments["development"];
            let preset = presets::preset(name).unwrap();
            assert_eq!(
                env.event_type_path.as_str(),
                preset.event_type_path,
                "{name}"
            );
            assert_eq!(env.verify.is_some(), preset.scheme.is_some(), "{name}");
            assert_eq!(env.enforce_verification, preset.scheme.is_some(), "{name}");
            assert_eq!(
                env.idempotency
                    .key_path
                    .as_ref()
                    .map(|p| p.as_str().to_string()),
                preset.idempotency_key_path.map(str::to_string),
                "{name}"
            );
            assert_eq!(env.script.is_some(), preset.script.is_some(), "{name}");
            assert_eq!(
                !env.mappings.is_empty(),
                preset.mappings.is_some(),
                "{name}"
            );
        }
        let stripe = load(&[(
            "p.yaml",
            "key: p\nname: p\nenvironments:\n  development:\n    preset: stripe\n    verify: { scheme: stripe, secret_var: MY_STRIPE, tolerance: 10m }\n    event_type_path: body.kind\n    mappings: {}\n",
        )])
        .unwrap();
        let env = &stripe.sources[0].environments["development"];
        let verify = env.verify.as_ref().unwrap();
        assert_eq!(
            (verify.secret_var.as_str(), verify.tolerance_secs),
            ("MY_STRIPE", 600)
        );
        assert_eq!(env.event_type_path.as_str(), "body.kind");
        assert!(env.mappings.is_empty());
        assert_eq!(
            env.idempotency.key_path.as_ref().unwrap().as_str(),
            "body.id"
        );
        let msgs = messages(load(&[(
            "p.yaml",
            "key: p\nname: p\nenvironments:\n  development:\n    preset: strpe\n",
        )]));
        assert!(
            msgs[0].contains("unknown preset `strpe` | did you mean `stripe`?"),
            "{msgs:?}"
        );
    }

    #[test]
    fn empty_directory_is_an_error() {
        let msgs = messages(load(&[]));
        assert!(msgs[0].contains("no source files"));
    }
}
