//! The action plan: [`plan_actions`] turns an event's mappings into
//! an ordered [`ActionPlan`], checking each resolved param against the schema in
//! [`crate::catalog`]. Knock runs actions of one event in a fixed order (identify before
//! trigger, so a triggered workflow sees the identified user); Inlet keeps that order
//! whatever order the YAML lists them in, with `lambda_invoke` last. A mapping whose
//! required param is missing or has the wrong type becomes a `skipped` entry with the
//! reason, and the rest of the plan still runs.

use crate::catalog::{ActionKind, ParamSpec, ParamType};
use crate::config::{MappingConfig, ParamSource};
use crate::path::PathRoots;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One entry of an event's plan: what to run, with what, or why it was skipped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedAction {
    /// Position in the plan; (event id, index) identifies the action for idempotent runs.
    pub index: usize,
    pub action: ActionKind,
    /// The mapping as configured (param name → path or `{value: ...}`), shared with the
    /// config.
    pub params: Arc<Value>,
    /// The values resolved from this event.
    pub payload: Value,
    /// `None` when the action is to run; the reason when it was skipped.
    pub skipped: Option<String>,
}

/// The ordered actions for one event.
pub type ActionPlan = Vec<PlannedAction>;

/// Resolves `mappings` (those of the event's type) against one request into a plan in
/// Knock's fixed action order. Inactive mappings are left out.
pub fn plan_actions(mappings: &[MappingConfig], roots: &PathRoots<'_>) -> ActionPlan {
    let mut active: Vec<&MappingConfig> = mappings.iter().filter(|m| m.active).collect();
    // A stable sort keeps config order among mappings of the same action.
    active.sort_by_key(|m| m.action);
    active
        .into_iter()
        .enumerate()
        .map(|(index, mapping)| {
            let (payload, problems) = resolve_mapping(mapping, roots);
            PlannedAction {
                index,
                action: mapping.action,
                params: mapping.params_json.clone(),
                payload,
                skipped: (!problems.is_empty()).then(|| problems.join("; ")),
            }
        })
        .collect()
}

/// The `events_forward` action `forward_to_event_bus` adds at `index` (after the mapped
/// actions): the whole event to `bus`.
pub fn forward_action(index: usize, bus: &str) -> PlannedAction {
    let params = serde_json::json!({ "event_bus": bus });
    PlannedAction {
        index,
        action: ActionKind::EventsForward,
        params: std::sync::Arc::new(params.clone()),
        payload: params,
        skipped: None,
    }
}

/// Resolves every param of one mapping; returns the payload and the problems that make
/// the action unrunnable (missing required params, wrong types).
fn resolve_mapping(mapping: &MappingConfig, roots: &PathRoots<'_>) -> (Value, Vec<String>) {
    let mut payload = Map::new();
    let mut problems = Vec::new();
    // Whole-object params come first (`MappingConfig::new` orders them), so dotted merges
    // land on top of them.
    for param in &mapping.params {
        let value = match &param.source {
            ParamSource::Literal(value) => Some(value.clone()),
            ParamSource::Path(path) => path.resolve(roots).cloned(),
        };
        let Some(value) = value else { continue };
        match param.name.split_once('.') {
            None => {
                payload.insert(param.name.clone(), value);
            }
            Some((head, rest)) => {
                let slot = payload
                    .entry(head.to_string())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    problems.push(format!(
                        "param `{head}` resolved to {} but `{}` merges fields into it, so it must be an object",
                        type_name(slot),
                        param.name
                    ));
                    continue;
                }
                insert_nested(slot, rest, value);
            }
        }
    }
    for &spec in mapping.action.params() {
        let source_of = |name: &str| {
            mapping
                .params
                .iter()
                .find(|p| p.name == name || p.name.starts_with(&format!("{name}.")))
                .map(|p| p.source.describe())
                .unwrap_or_else(|| "not mapped".to_string())
        };
        // A scan, not a hash lookup: payloads have a handful of keys.
        let resolved = payload
            .iter_mut()
            .find(|(name, _)| name.as_str() == spec.name)
            .map(|(_, value)| value);
        match resolved {
            None if spec.required => {
                // `key: task-assigned` reads a field `task-assigned`; a fixed value
                // needs `{ value: ... }`.
                let literal = mapping
                    .params
                    .iter()
                    .find(|p| p.name == spec.name)
                    .and_then(|p| match &p.source {
                        ParamSource::Path(path) => {
                            let text = path.to_string();
                            (!text.contains(['.', '['])).then_some(text)
                        }
                        ParamSource::Literal(_) => None,
                    });
                let hint = literal
                    .map(|text| format!("; did you mean the literal `{{ value: {text} }}`?"))
                    .unwrap_or_default();
                problems.push(format!(
                    "required param `{}` did not resolve ({}){hint}",
                    spec.name,
                    source_of(spec.name)
                ))
            }
            None => {}
            Some(value) => {
                if let Err(problem) = check_type(spec, value) {
                    problems.push(format!(
                        "param `{}` ({}) {problem}",
                        spec.name,
                        source_of(spec.name)
                    ));
                }
            }
        }
    }
    (Value::Object(payload), problems)
}

fn insert_nested(target: &mut Value, dotted: &str, value: Value) {
    let mut current = target;
    let mut parts = dotted.split('.').peekable();
    while let Some(part) = parts.next() {
        let Value::Object(map) = current else { return };
        if parts.peek().is_none() {
            map.insert(part.to_string(), value);
            return;
        }
        current = map
            .entry(part.to_string())
            .and_modify(|v| {
                if !v.is_object() {
                    *v = Value::Object(Map::new());
                }
            })
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Checks (and normalises, for ids given as integers) one resolved value.
fn check_type(spec: ParamSpec, value: &mut Value) -> Result<(), String> {
    use ParamType::*;
    let got = type_name(value);
    match spec.ty {
        Id => {
            normalise_id(value).map_err(|()| format!("must be a string or integer id, got {got}"))
        }
        Text => match value {
            Value::String(s) if !s.is_empty() => Ok(()),
            Value::String(_) => Err("must be a non-empty string, got an empty string".into()),
            _ => Err(format!("must be a string, got {got}")),
        },
        Bool => value
            .is_boolean()
            .then_some(())
            .ok_or_else(|| format!("must be true or false, got {got}")),
        Object => value
            .is_object()
            .then_some(())
            .ok_or_else(|| format!("must be an object, got {got}")),
        Recipient => check_recipient(value),
        Recipients { max } => {
            if !value.is_array() {
                *value = Value::Array(vec![value.take()]);
            }
            let Value::Array(items) = value else {
                unreachable!()
            };
            if items.is_empty() {
                return Err("must list at least one recipient, got an empty list".into());
            }
            if items.len() > max {
                return Err(format!(
                    "lists {} recipients; at most {max} are allowed per action",
                    items.len()
                ));
            }
            for (i, item) in items.iter_mut().enumerate() {
                check_recipient(item).map_err(|e| format!("item {i}: {e}"))?;
            }
            Ok(())
        }
        IdOrObject => match value {
            Value::Object(map) => match map.get_mut("id") {
                Some(id) => normalise_id(id).map_err(|()| "must have a string `id`".to_string()),
                None => Err("is an object without an `id`".into()),
            },
            other => normalise_id(other)
                .map_err(|()| format!("must be an id string or an object with an `id`, got {got}")),
        },
        Any => Ok(()),
    }
}

fn normalise_id(value: &mut Value) -> Result<(), ()> {
    match value {
        Value::String(s) if !s.is_empty() => Ok(()),
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            *value = Value::String(n.to_string());
            Ok(())
        }
        _ => Err(()),
    }
}

/// A recipient is a user id, an inline user `{id, ...}` or an inline object
/// `{id, collection, ...}`.
fn check_recipient(value: &mut Value) -> Result<(), String> {
    let got = type_name(value);
    match value {
        Value::Object(map) => {
            let id = map
                .get_mut("id")
                .ok_or_else(|| "an inline recipient needs an `id`".to_string())?;
            normalise_id(id)
                .map_err(|()| "an inline recipient's `id` must be a string".to_string())?;
            match map.get("collection") {
                None | Some(Value::String(_)) => Ok(()),
                Some(_) => Err("an inline object's `collection` must be a string".into()),
            }
        }
        other => normalise_id(other)
            .map_err(|()| format!("must be a user id or an inline recipient object, got {got}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MappingParam, ParamSource};
    use crate::path::FieldPath;
    use serde_json::json;

    fn mapping(action: ActionKind, params: &[(&str, &str)]) -> MappingConfig {
        MappingConfig::new(
            action,
            true,
            1,
            params
                .iter()
                .map(|(name, src)| MappingParam {
                    name: name.to_string(),
                    source: match src.strip_prefix('=') {
                        Some(lit) => ParamSource::Literal(serde_json::from_str(lit).unwrap()),
                        None => ParamSource::Path(FieldPath::parse(src).unwrap()),
                    },
                })
                .collect(),
        )
    }

    fn plan(mappings: &[MappingConfig], body: Value) -> ActionPlan {
        let empty = json!({});
        plan_actions(
            mappings,
            &PathRoots {
                body: &body,
                headers: &empty,
                preprocess: &empty,
            },
        )
    }

    fn task_body() -> Value {
        json!({"event_type": "task.assigned", "data": {"task_id": "task_123", "title": "Ship it",
               "assigned_to": "user_456", "assigned_by": "user_789", "meta": {"a": 1}}})
    }

    #[test]
    fn trigger_payload_merges_data_fields() {
        let m = mapping(
            ActionKind::WorkflowsTrigger,
            &[
                ("key", "=\"task-assigned\""),
                ("recipients", "data.assigned_to"),
                ("actor", "body.data.assigned_by"),
                ("data.task_id", "data.task_id"),
                ("data.title", "data.title"),
                ("data", "data.meta"),
            ],
        );
        let plan = plan(&[m], task_body());
        assert_eq!(plan.len(), 1);
        assert_eq!(plan[0].skipped, None);
        assert_eq!(
            plan[0].payload,
            json!({"key": "task-assigned", "recipients": ["user_456"], "actor": "user_789",
                   "data": {"a": 1, "task_id": "task_123", "title": "Ship it"}})
        );
    }

    #[test]
    fn fixed_order_whatever_the_config_order() {
        let plan = plan(
            &[
                mapping(
                    ActionKind::WorkflowsTrigger,
                    &[("key", "=\"w\""), ("recipients", "data.assigned_to")],
                ),
                mapping(ActionKind::UsersIdentify, &[("id", "data.assigned_to")]),
            ],
            task_body(),
        );
        let order: Vec<_> = plan.iter().map(|a| (a.index, a.action)).collect();
        assert_eq!(
            order,
            vec![
                (0, ActionKind::UsersIdentify),
                (1, ActionKind::WorkflowsTrigger)
            ]
        );
    }

    #[test]
    fn missing_required_param_skips_only_that_action() {
        let plan = plan(
            &[
                mapping(ActionKind::UsersIdentify, &[("id", "data.nobody")]),
                mapping(
                    ActionKind::WorkflowsTrigger,
                    &[("key", "=\"w\""), ("recipients", "data.assigned_to")],
                ),
            ],
            task_body(),
        );
        assert_eq!(
            plan[0].skipped.as_deref(),
            Some("required param `id` did not resolve (path `data.nobody`)")
        );
        assert_eq!(plan[1].skipped, None);
    }

    #[test]
    fn a_dotless_path_that_resolves_to_nothing_suggests_the_literal() {
        let plan = plan(
            &[mapping(
                ActionKind::WorkflowsTrigger,
                &[("key", "task-assigned"), ("recipients", "data.assigned_to")],
            )],
            task_body(),
        );
        assert_eq!(
            plan[0].skipped.as_deref(),
            Some(
                "required param `key` did not resolve (path `task-assigned`); \
                 did you mean the literal `{ value: task-assigned }`?"
            )
        );
    }

    #[test]
    fn type_errors_name_the_param_and_the_type() {
        let body = json!({"n": 3.5, "list": ["a", 7, {"name": "x"}], "obj": "str"});
        let p = plan(
            &[mapping(ActionKind::UsersDelete, &[("id", "n")])],
            body.clone(),
        );
        assert_eq!(
            p[0].skipped.as_deref(),
            Some("param `id` (path `n`) must be a string or integer id, got a number")
        );
        let p = plan(
            &[mapping(
                ActionKind::WorkflowsTrigger,
                &[("key", "=\"w\""), ("recipients", "list")],
            )],
            body.clone(),
        );
        assert_eq!(
            p[0].skipped.as_deref(),
            Some("param `recipients` (path `list`) item 2: an inline recipient needs an `id`")
        );
        let p = plan(
            &[mapping(
                ActionKind::TenantsSet,
                &[("id", "=\"t1\""), ("properties", "obj")],
            )],
            body,
        );
        assert_eq!(
            p[0].skipped.as_deref(),
            Some("param `properties` (path `obj`) must be an object, got a string")
        );
    }

    #[test]
    fn recipient_limits() {
        let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
        let p = plan(
            &[mapping(
                ActionKind::ObjectsSubscribe,
                &[
                    ("collection", "=\"projects\""),
                    ("id", "=\"p1\""),
                    ("recipients", "many"),
                ],
            )],
            json!({ "many": many }),
        );
        assert_eq!(
            p[0].skipped.as_deref(),
            Some(
                "param `recipients` (path `many`) lists 101 recipients; at most 100 are allowed per action"
            )
        );
    }

    #[test]
    fn integer_ids_become_strings_and_inactive_mappings_are_dropped() {
        let mut inactive = mapping(ActionKind::UsersDelete, &[("id", "id")]);
        inactive.active = false;
        let p = plan(
            &[
                mapping(ActionKind::UsersIdentify, &[("id", "id")]),
                inactive,
            ],
            json!({"id": 42}),
        );
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].payload, json!({"id": "42"}));
    }

    fn literal(ty: ParamType, valid: bool) -> &'static str {
        use ParamType::*;
        match (ty, valid) {
            (Bool, true) => "=true",
            (Bool, false) => "=\"yes\"",
            (Object, true) => "={}",
            (Recipients { .. }, true) => "=[\"u1\"]",
            (Any, _) => "=1",
            (_, true) => "=\"x\"",
            (_, false) => "=true",
        }
    }

    #[test]
    fn every_required_param_and_every_type_of_every_action_is_checked() {
        for &kind in ActionKind::ALL {
            let specs = kind.params();
            let required: Vec<&ParamSpec> = specs.iter().filter(|p| p.required).collect();
            for missing in &required {
                let params: Vec<(&str, &str)> = required
                    .iter()
                    .map(|p| {
                        (
                            p.name,
                            if p.name == missing.name {
                                "body.nothing"
                            } else {
                                literal(p.ty, true)
                            },
                        )
                    })
                    .collect();
                let p = plan(&[mapping(kind, &params)], json!({}));
                assert_eq!(
                    p[0].skipped.as_deref(),
                    Some(
                        format!(
                            "required param `{}` did not resolve (path `body.nothing`)",
                            missing.name
                        )
                        .as_str()
                    ),
                    "{kind:?}"
                );
            }
            let all_valid: Vec<(&str, &str)> = specs
                .iter()
                .map(|p| (p.name, literal(p.ty, true)))
                .collect();
            assert_eq!(
                plan(&[mapping(kind, &all_valid)], json!({}))[0].skipped,
                None,
                "{kind:?}"
            );
            for wrong in specs.iter().filter(|p| p.ty != ParamType::Any) {
                let params: Vec<(&str, &str)> = specs
                    .iter()
                    .map(|p| (p.name, literal(p.ty, p.name != wrong.name)))
                    .collect();
                let reason = plan(&[mapping(kind, &params)], json!({}))[0]
                    .skipped
                    .clone();
                let reason = reason
                    .unwrap_or_else(|| panic!("{kind:?}.{} accepted a wrong type", wrong.name));
                assert!(
                    reason.starts_with(&format!("param `{}` (literal value)", wrong.name)),
                    "{kind:?}: {reason}"
                );
            }
        }
    }
}
