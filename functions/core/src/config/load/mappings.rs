//! The `mappings:` of an environment: event type → actions, each action's params
//! checked against the action catalog ([`crate::catalog`]): known params, object
//! params merged with `name.field`, paths or `{ value: … }` literals.

use super::{FileLoader, MAPPING_KEYS, strsim_closest};
use crate::catalog::{ActionKind, ParamType};
use crate::config::model::*;
use crate::yaml::{Kind, Node};
use std::collections::BTreeMap;

impl FileLoader<'_> {
    pub(super) fn mappings(&mut self, n: &Node) -> BTreeMap<String, Vec<MappingConfig>> {
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
