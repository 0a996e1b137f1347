//! Checks of a loaded catalog that are warnings, not errors: vars an environment needs
//! that are not provided, and params that look like a text written as a path (what
//! `inlet check` and `inlet dev` print).

use super::model::*;

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
