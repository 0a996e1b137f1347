//! Local variables for `inlet dev`: a JSON file (`--vars FILE`) overlaid with
//! `INLET_VAR_<NAME>` environment variables. Locally every environment sees
//! the same vars; on AWS each environment has its own SSM path.
//!
//! The file is one JSON object. String values are used as they are; any other value
//! (e.g. an array of secrets during a rotation) is kept as its JSON text, which scripts
//! then receive parsed.

use async_trait::async_trait;
use inlet_core::vars::{Vars, VarsError, VarsProvider};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum VarsFileError {
    #[error("cannot read vars file {path}: {source}; pass an existing JSON file to --vars")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "vars file {path} is not a JSON object ({problem}); write {{\"NAME\": \"value\", ...}}"
    )]
    Shape { path: String, problem: String },
}

/// Reads the vars file (if any) and the `INLET_VAR_*` variables of `env`.
pub fn load_local_vars(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vars, VarsFileError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(path) = file {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| VarsFileError::Read {
            path: shown.clone(),
            source,
        })?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| VarsFileError::Shape {
                path: shown.clone(),
                problem: e.to_string(),
            })?;
        let serde_json::Value::Object(map) = value else {
            return Err(VarsFileError::Shape {
                path: shown,
                problem: "the top level is not an object".into(),
            });
        };
        for (name, value) in map {
            let text = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            pairs.push((name, text));
        }
    }
    for (name, value) in env {
        if let Some(var) = name.strip_prefix("INLET_VAR_").filter(|v| !v.is_empty()) {
            pairs.retain(|(n, _)| n != var);
            pairs.push((var.to_string(), value));
        }
    }
    Ok(Vars::new(pairs))
}

/// The same vars for every environment; `inlet dev` replaces them when the vars file
/// changes ([`LocalVars::replace`]).
#[derive(Debug, Clone)]
pub struct LocalVars(Arc<std::sync::RwLock<Arc<Vars>>>);

impl LocalVars {
    pub fn new(vars: Vars) -> Self {
        LocalVars(Arc::new(std::sync::RwLock::new(Arc::new(vars))))
    }

    /// The vars requests see from now on.
    pub fn replace(&self, vars: Vars) {
        *self.0.write().expect("vars lock poisoned") = Arc::new(vars);
    }

    pub fn current(&self) -> Arc<Vars> {
        self.0.read().expect("vars lock poisoned").clone()
    }
}

#[async_trait]
impl VarsProvider for LocalVars {
    async fn vars(&self, _environment: &str) -> Result<Arc<Vars>, VarsError> {
        Ok(self.current())
    }

    fn how_to_set(&self, _environment: &str, name: &str) -> String {
        format!(
            "add `{name}` to the --vars file (`inlet dev` reads it again when it changes) or set INLET_VAR_{name} and restart `inlet dev`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vars.json");
        std::fs::write(
            &path,
            r#"{"A": "from-file", "KEYS": ["k1", "k2"], "B": "b"}"#,
        )
        .unwrap();
        let vars = load_local_vars(
            Some(&path),
            [
                ("INLET_VAR_A".to_string(), "from-env".to_string()),
                ("PATH".to_string(), "/bin".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(
            serde_json::Value::Object(vars.for_scripts().clone()),
            serde_json::json!({"KEYS": ["k1", "k2"], "B": "b", "A": "from-env"})
        );
    }

    #[test]
    fn bad_files_say_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_local_vars(Some(&dir.path().join("nope.json")), []).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("pass an existing JSON file to --vars")
        );
        let path = dir.path().join("v.json");
        std::fs::write(&path, "[1]").unwrap();
        let shape = load_local_vars(Some(&path), []).unwrap_err();
        assert!(
            shape.to_string().contains("is not a JSON object"),
            "{shape}"
        );
    }
}
