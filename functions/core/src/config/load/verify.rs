//! The `verify:` block of an environment: a declared scheme (`hmac`, `svix`, …) with
//! its secret var, tolerance and the `hmac` scheme's options, checked like the rest of
//! the file (every problem reported, with the fix).

use super::{FileLoader, VERIFY_KEYS, strsim_closest};
use crate::config::model::*;
use crate::verify::{DEFAULT_TOLERANCE_SECS, HMAC_OPTION_NAMES, SCHEME_NAMES, Scheme};
use crate::yaml::Node;

impl FileLoader<'_> {
    pub(super) fn verify(&mut self, node: &Node) -> Option<VerifyConfig> {
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
}
