//! Reading and validating source files: [`load_dir`] and [`load_sources`] check every
//! key, path, action, param and script of every file and report all problems at once.

use super::model::*;
use crate::catalog::{ActionKind, ParamType};
use crate::path::FieldPath;
use crate::presets::{self, Preset};
use crate::script::{CompiledScript, ScriptEngine};
use crate::verify::{DEFAULT_TOLERANCE_SECS, HMAC_OPTION_NAMES, SCHEME_NAMES, Scheme};
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
