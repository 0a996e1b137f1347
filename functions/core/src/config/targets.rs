//! The targets file of `inlet dev` (`--targets`): where workflow runs and
//! `lambda_invoke` go on a laptop.

use super::model::*;
use crate::yaml::{self, Kind};
use std::collections::BTreeMap;
use std::path::Path;

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
