//! The variables of one environment (secrets and settings scripts read as `ctx.vars`),
//! and the [`VarsProvider`] trait each runtime implements (a vars file and `INLET_VAR_*`
//! locally, SSM Parameter Store on AWS). Var values are never logged: [`Vars`] finds them
//! in text so that logged and stored text can be redacted.

use aho_corasick::AhoCorasick;
use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

/// The variables of one environment. A value that parses as JSON is given to scripts as
/// that value, else as a string.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    for_scripts: Map<String, Value>,
    /// Every secret string the vars hold, found once here rather than per request.
    secrets: Vec<String>,
    /// Finds the secrets of at least [`Vars::MIN_REDACTED_CHARS`] in a text, in one pass.
    secret_finder: Option<AhoCorasick>,
}

impl PartialEq for Vars {
    fn eq(&self, other: &Self) -> bool {
        self.for_scripts == other.for_scripts && self.secrets == other.secrets
    }
}

impl Vars {
    pub fn new(raw: impl IntoIterator<Item = (String, String)>) -> Self {
        let raw: Vec<(String, String)> = raw.into_iter().collect();
        let for_scripts: Map<String, Value> = raw
            .iter()
            .map(|(k, v)| {
                let value = serde_json::from_str::<Value>(v)
                    .ok()
                    .filter(|parsed| !parsed.is_string() || v.starts_with('"'))
                    .unwrap_or_else(|| Value::String(v.clone()));
                (k.clone(), value)
            })
            .collect();
        fn strings(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::String(s) => out.push(s.clone()),
                Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
                Value::Object(map) => map.values().for_each(|i| strings(i, out)),
                _ => {}
            }
        }
        let mut secrets: Vec<String> = raw.into_iter().map(|(_, v)| v).collect();
        for_scripts.values().for_each(|v| strings(v, &mut secrets));
        secrets.retain(|s| !s.is_empty());
        secrets.sort();
        secrets.dedup();
        // Case-insensitive (ASCII): HTTP header names arrive lower-cased, so a secret
        // sent as (part of) a header's name no longer matches its own case.
        let secret_finder = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(
                secrets
                    .iter()
                    .filter(|s| s.chars().count() >= Self::MIN_REDACTED_CHARS),
            )
            .ok();
        Vars {
            for_scripts,
            secrets,
            secret_finder,
        }
    }

    /// Shorter var values (`42`, `true`) are not searched for in logged text: they are
    /// rarely secrets and would redact half of every header.
    pub const MIN_REDACTED_CHARS: usize = 4;

    /// Whether `text` contains the value of a var (of at least
    /// [`Vars::MIN_REDACTED_CHARS`]), so that it must be redacted before it is logged.
    pub fn appears_in(&self, text: &str) -> bool {
        self.secret_finder
            .as_ref()
            .is_some_and(|finder| finder.is_match(text))
    }

    /// `text` with every var value (of at least [`Vars::MIN_REDACTED_CHARS`]) replaced by
    /// `[redacted]`, for text that is logged or stored (script console, script errors).
    pub fn redact(&self, text: &str) -> String {
        match &self.secret_finder {
            Some(finder) if finder.is_match(text) => {
                let mut out = String::with_capacity(text.len());
                finder.replace_all_with(text, &mut out, |_, _, out| {
                    out.push_str("[redacted]");
                    true
                });
                out
            }
            _ => text.to_string(),
        }
    }

    /// The values as scripts see them (`ctx.vars`).
    pub fn for_scripts(&self) -> &Map<String, Value> {
        &self.for_scripts
    }

    /// Every secret string a var holds (the raw value, and each string inside a JSON
    /// value), for redaction.
    pub fn secret_strings(&self) -> &[String] {
        &self.secrets
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VarsError(pub String);

#[async_trait]
pub trait VarsProvider: Send + Sync {
    async fn vars(&self, environment: &str) -> Result<Arc<Vars>, VarsError>;

    /// Where an operator sets var `name` for `environment`, for the message when a
    /// script reads a var that is not set. Each implementation names its own source.
    fn how_to_set(&self, environment: &str, name: &str) -> String {
        format!("set var `{name}` for environment `{environment}`")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_parse_json_values_and_list_secrets() {
        let vars = Vars::new([
            ("A".to_string(), "plain secret".to_string()),
            ("B".to_string(), r#"["old","new"]"#.to_string()),
            ("N".to_string(), "42".to_string()),
        ]);
        assert_eq!(
            Value::Object(vars.for_scripts().clone()),
            serde_json::json!({"A": "plain secret", "B": ["old", "new"], "N": 42})
        );
        let secrets = vars.secret_strings();
        assert_eq!(
            secrets,
            ["42", "[\"old\",\"new\"]", "new", "old", "plain secret"]
        );
    }

    #[test]
    fn redaction_replaces_every_long_enough_var_value() {
        let vars = Vars::new([
            ("A".to_string(), "hunter22".to_string()),
            ("B".to_string(), r#"["old-key","new-key"]"#.to_string()),
            ("N".to_string(), "42".to_string()),
        ]);
        assert!(vars.appears_in("x hunter22 y") && !vars.appears_in("answer 42"));
        assert_eq!(
            vars.redact("a=hunter22 b=new-key, 42"),
            "a=[redacted] b=[redacted], 42"
        );
        assert_eq!(Vars::new([]).redact("anything"), "anything");
    }
}
