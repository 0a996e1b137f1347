//! Reading and validating source files: [`load_dir`] and [`load_sources`] check every
//! key, path, action, param and script of every file and report all problems at once.
//!
//! Its rooms: `verify.rs` (the `verify:` block), `mappings.rs` (mappings and their
//! params against the action catalog); this file reads the files and the rest of each
//! source and environment.

mod mappings;
mod verify;

use super::model::*;
use crate::path::FieldPath;
use crate::presets::{self, Preset};
use crate::script::{CompiledScript, ScriptEngine};
use crate::verify::DEFAULT_TOLERANCE_SECS;
use crate::yaml::{self, Kind, Node};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
pub(super) struct FileLoader<'a> {
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
    "forward_to_event_bus",
];
const IDEMPOTENCY_KEYS: &[&str] = &["enabled", "key_path", "window"];
/// `verify:`'s own keys; the `hmac` scheme also takes [`HMAC_OPTION_NAMES`].
pub(super) const VERIFY_KEYS: &[&str] = &["scheme", "secret_var", "tolerance"];
pub(super) const MAPPING_KEYS: &[&str] = &["action", "params", "active"];

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
        let forward_to_event_bus = get("forward_to_event_bus").and_then(|n| {
            let bus = self.string(n, "forward_to_event_bus")?;
            if !super::targets::is_bus(&bus) {
                self.error(
                    n.line,
                    format!("`forward_to_event_bus` must be an event bus name or ARN, got `{bus}`"),
                    "write `forward_to_event_bus: inlet-<env>-events`",
                );
            }
            Some(bus)
        });
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
            forward_to_event_bus,
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
}

pub(super) fn strsim_closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
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
