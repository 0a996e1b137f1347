//! The targets file (`inlet dev --targets FILE`): where workflow runs and `lambda_invoke`
//! calls go, and how each kind of target is written and checked.

use super::model::*;
use crate::yaml::{self, Kind, Node};
use std::collections::BTreeMap;
use std::path::Path;

/// Where workflow runs and `lambda_invoke` calls go (`--targets FILE`):
///
/// ```yaml
/// workflows:
///   task-assigned: { url: http://127.0.0.1:9000/runs }
///   order-placed: { state_machine: "arn:aws:states:us-east-1:123456789012:stateMachine:orders" }
///   invoice-paid: { event_bus: billing }
///   task-digest: { queue: "https://sqs.us-east-1.amazonaws.com/123456789012/digests.fifo", group_by: recipient }
///   archive: { function: inlet-production-target-archive }
/// functions:
///   enrich-order: { url: http://127.0.0.1:9000/enrich }
/// ```
///
/// A workflow with no target only records its runs in the directory. What each kind
/// promises on a redelivered run is in [`Target`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub workflows: BTreeMap<String, Target>,
    pub functions: BTreeMap<String, Target>,
}

/// One target. A run is delivered again when its action is (a crash, a redelivered
/// stream record); each kind says what a second delivery of the same run does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An HTTP endpoint that receives the run (or the call's payload) as a JSON POST.
    /// At least once: the run's `id` is in the body.
    Url(String),
    /// A Lambda function by name: `lambda_invoke` calls it and keeps its answer
    /// (`RequestResponse`); a workflow's runs are handed to it asynchronously (`Event`).
    /// At least once: the run's `id` is in the payload.
    Function(String),
    /// A Step Functions state machine (ARN): each run starts one execution named after
    /// the run id, so a second delivery starts nothing (Standard workflows keep names
    /// for 90 days). Express workflows do not check names: at least once.
    StateMachine(String),
    /// An EventBridge bus (name or ARN): each run is put as one event (`Source`
    /// `inlet.<source>`, `DetailType` the workflow key). At least once: the run id is in
    /// the detail.
    EventBus(String),
    /// An SQS queue (URL): each run is one message. On a FIFO queue (`.fifo`) the
    /// message's deduplication id is the run id, so a second delivery within SQS's
    /// 5-minute window leaves one message; elsewhere at least once.
    Queue { url: String, group_by: QueueGroup },
}

/// The message group of a run on a FIFO queue: runs of one group arrive in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueGroup {
    /// The workflow key (the default): one ordered stream per workflow.
    #[default]
    Workflow,
    /// The run's first recipient (the workflow key when it has none): runs of different
    /// recipients do not wait for each other.
    Recipient,
}

impl Target {
    /// Whether the target is an AWS service (reached with the AWS SDK) rather than a URL.
    pub fn on_aws(&self) -> bool {
        !matches!(self, Target::Url(_))
    }
}

/// Reads and validates a targets file; every problem is reported with its line.
pub fn load_targets(file: &Path) -> Result<Targets, ConfigErrors> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: file.to_path_buf(),
            line: 0,
            message: format!("cannot read the targets file: {e}"),
            fix: "pass an existing file to --targets".into(),
        }])
    })?;
    parse_targets(&text, file)
}

/// Validates the text of a targets file (`file` names it in the errors).
pub fn parse_targets(text: &str, file: &Path) -> Result<Targets, ConfigErrors> {
    let fail = |line: usize, message: String, fix: &str| ConfigError {
        file: file.to_path_buf(),
        line,
        message,
        fix: fix.to_string(),
    };
    let root = yaml::parse(text).map_err(|e| {
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
        let (slot, kinds) = match section.as_str() {
            "workflows" => (&mut targets.workflows, WORKFLOW_KINDS),
            "functions" => (&mut targets.functions, FUNCTION_KINDS),
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
            match target_of(target, kinds) {
                Ok(target) => {
                    slot.insert(name.clone(), target);
                }
                Err((problem, fix)) => {
                    errors.push(fail(*line, format!("target `{name}`: {problem}"), &fix))
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(targets)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// The kinds a section takes: `lambda_invoke` calls wait for an answer, which only
/// URLs and functions give.
const WORKFLOW_KINDS: &[&str] = &["url", "function", "state_machine", "event_bus", "queue"];
const FUNCTION_KINDS: &[&str] = &["url", "function"];

/// One target's fields as a [`Target`], or what is wrong and how to fix it.
fn target_of(node: &Node, kinds: &[&str]) -> Result<Target, (String, String)> {
    let one_of = kinds
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let shape = || {
        (
            format!("must be a mapping with one of {one_of}"),
            "write `name: { url: http://127.0.0.1:9000/path }`".to_string(),
        )
    };
    let Kind::Map(fields) = &node.kind else {
        return Err(shape());
    };
    let text = |key: &str| {
        fields
            .iter()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, value)| match &value.kind {
                Kind::Str(v) => Ok(v.clone()),
                _ => Err((
                    format!("`{key}` must be a string"),
                    format!("quote the {key}"),
                )),
            })
            .transpose()
    };
    let kind = fields
        .iter()
        .map(|(k, _, _)| k.as_str())
        .find(|k| kinds.contains(k))
        .ok_or_else(shape)?;
    let allowed: &[&str] = if kind == "queue" {
        &["queue", "group_by"]
    } else {
        &[kind]
    };
    if let Some((extra, _, _)) = fields
        .iter()
        .find(|(k, _, _)| !allowed.contains(&k.as_str()))
    {
        return Err((
            format!("`{extra}` does not go with `{kind}`"),
            format!("keep only {}", allowed.join(" and ")),
        ));
    }
    let value = text(kind)?.unwrap_or_default();
    let bad = |what: &str, example: &str| {
        Err((
            format!("`{kind}` must be {what}, got `{value}`"),
            format!("write `{kind}: {example}`"),
        ))
    };
    match kind {
        "url" if value.starts_with("http://") || value.starts_with("https://") => {
            Ok(Target::Url(value))
        }
        "url" => bad("an http(s) URL", "http://host:port/path"),
        "function" if is_function_name(&value) => Ok(Target::Function(value)),
        "function" => bad(
            "a Lambda function name (letters, digits, - and _)",
            "inlet-<env>-target-<name>",
        ),
        "state_machine" if is_arn(&value, "states", "stateMachine:") => {
            Ok(Target::StateMachine(value))
        }
        "state_machine" => bad(
            "a state machine ARN",
            "\"arn:aws:states:<region>:<account>:stateMachine:<name>\"",
        ),
        "event_bus" if is_bus(&value) => Ok(Target::EventBus(value)),
        "event_bus" => bad("an event bus name or ARN", "<bus name>"),
        "queue" if value.starts_with("https://") || value.starts_with("http://") => {
            let group_by = match text("group_by")?.as_deref() {
                None | Some("workflow") => QueueGroup::Workflow,
                Some("recipient") => QueueGroup::Recipient,
                Some(other) => {
                    return Err((
                        format!("`group_by` must be `workflow` or `recipient`, got `{other}`"),
                        "write `group_by: recipient` or leave it out".into(),
                    ));
                }
            };
            Ok(Target::Queue {
                url: value,
                group_by,
            })
        }
        _ => bad(
            "a queue URL",
            "https://sqs.<region>.amazonaws.com/<account>/<queue>",
        ),
    }
}

fn is_function_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with the resource starting
/// with `resource_prefix`.
fn is_arn(arn: &str, service: &str, resource_prefix: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", _, s, _, _, resource] if *s == service && resource.starts_with(resource_prefix) && resource.len() > resource_prefix.len())
}

pub(super) fn is_bus(bus: &str) -> bool {
    is_arn(bus, "events", "event-bus/")
        || ((1..=256).contains(&bus.len())
            && bus
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Targets, ConfigErrors> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("targets.yaml");
        std::fs::write(&file, text).unwrap();
        load_targets(&file)
    }

    #[test]
    fn every_kind_reads_as_its_target() {
        let targets = load(
            r#"
workflows:
  a: { url: http://127.0.0.1:9000/runs }
  b: { function: inlet-dev-target-b }
  c: { state_machine: "arn:aws:states:us-east-1:123456789012:stateMachine:orders" }
  d: { event_bus: billing }
  e: { queue: "https://sqs.us-east-1.amazonaws.com/123456789012/runs.fifo", group_by: recipient }
  f: { queue: "http://127.0.0.1:5111/123456789012/runs" }
functions:
  g: { url: https://example.com/g }
"#,
        )
        .unwrap();
        assert_eq!(
            targets.workflows["c"],
            Target::StateMachine(
                "arn:aws:states:us-east-1:123456789012:stateMachine:orders".into()
            )
        );
        assert_eq!(targets.workflows["d"], Target::EventBus("billing".into()));
        assert_eq!(
            targets.workflows["e"],
            Target::Queue {
                url: "https://sqs.us-east-1.amazonaws.com/123456789012/runs.fifo".into(),
                group_by: QueueGroup::Recipient
            }
        );
        assert_eq!(
            targets.workflows["f"],
            Target::Queue {
                url: "http://127.0.0.1:5111/123456789012/runs".into(),
                group_by: QueueGroup::Workflow
            }
        );
        assert_eq!(
            targets.functions["g"],
            Target::Url("https://example.com/g".into())
        );
        assert!(!targets.workflows["a"].on_aws() && targets.workflows["b"].on_aws());
    }

    /// The example of docs/sources.md is a valid targets file with every kind.
    #[test]
    fn the_docs_example_reads() {
        let docs = include_str!("../../../../docs/sources.md");
        let example = docs
            .split("```yaml\n")
            .map(|block| block.split("```").next().unwrap())
            .find(|block| block.contains("workflows:") && block.contains("state_machine"))
            .expect("docs/sources.md has a targets example");
        // The block sits in a list item: two spaces deeper than the file.
        let example: String = example
            .lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect();
        let targets = parse_targets(&example, Path::new("docs/sources.md")).unwrap();
        let kinds: Vec<&str> = targets
            .workflows
            .values()
            .map(|t| match t {
                Target::Url(_) => "url",
                Target::Function(_) => "function",
                Target::StateMachine(_) => "state_machine",
                Target::EventBus(_) => "event_bus",
                Target::Queue { .. } => "queue",
            })
            .collect();
        assert_eq!(kinds.len(), 5, "{kinds:?}");
        for kind in WORKFLOW_KINDS {
            assert!(kinds.contains(kind), "the example has no {kind}");
        }
    }

    #[test]
    fn each_bad_target_is_named_with_its_line_and_fix() {
        let errors = load(
            r#"
workflows:
  a: { state_machine: "arn:aws:lambda:us-east-1:1:function:f" }
  b: { queue: "https://q", group_by: tenant }
  c: { url: http://x, group_by: workflow }
  d: { topic: t }
functions:
  e: { event_bus: billing }
"#,
        )
        .unwrap_err()
        .0;
        let said: Vec<(usize, &str)> = errors
            .iter()
            .map(|e| (e.line, e.message.as_str()))
            .collect();
        // `lambda_invoke` waits for an answer: a bus cannot give one (line 8).
        let expected = [
            (3, "a state machine ARN"),
            (4, "`group_by` must be"),
            (5, "`group_by` does not go with `url`"),
            (6, "one of `url`"),
            (8, "one of `url`, `function`"),
        ];
        assert_eq!(said.len(), expected.len(), "{said:?}");
        for ((line, message), (want_line, want)) in said.iter().zip(expected) {
            assert!(*line == want_line && message.contains(want), "{said:?}");
        }
    }
}
