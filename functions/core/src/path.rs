//! Field paths: the dot-notation addresses that mappings, event-type, timestamp and
//! idempotency settings use to pick values out of a request.
//!
//! A path is parsed once, when the config is loaded, into a [`FieldPath`]; resolving it at
//! request time is a walk over already-split segments with no string parsing. Three
//! namespaces exist: `body.*` (the parsed body), `headers.*` (lower-cased header names)
//! and `preprocess.*` (the script's output). A path without a namespace means `body.`,
//! because Knock's custom-source docs write `data.assigned_to`. A segment that is a
//! non-negative integer indexes an array; on an object it is an ordinary key, so
//! `body.codes.0` works on both `{"codes":["a"]}` and `{"codes":{"0":"a"}}`.

use serde_json::Value;
use std::fmt;

/// Which part of the request a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Body,
    Headers,
    Preprocess,
}

/// A validated, pre-split path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPath {
    namespace: Namespace,
    segments: Vec<Segment>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    key: String,
    index: Option<usize>,
}

/// Why a path string is not a valid path; `fix` tells the user what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid path `{path}`: {problem}")]
pub struct PathError {
    pub path: String,
    pub problem: String,
    pub fix: String,
}

/// `a[0].b[12]` as `a.0.b.12`; `None` if a bracket holds anything but digits or does
/// not close.
fn numeric_brackets_to_dots(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        if before.contains(']') {
            return None;
        }
        out.push_str(before);
        let close = after.find(']')?;
        let index = &after[1..close];
        if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        out.push('.');
        out.push_str(index);
        rest = &after[close + 1..];
    }
    if rest.contains(']') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// A best guess at the dot path meant by a JSONPath or bracket spelling, for the fix.
fn dot_path(text: &str) -> String {
    let trimmed = text.trim_start_matches('$').trim_start_matches('.');
    let mut out = String::new();
    for c in trimmed.chars() {
        match c {
            '[' => out.push('.'),
            ']' | '"' | '\'' => {}
            other => out.push(other),
        }
    }
    let out = out.replace("..", ".");
    let out = out.trim_matches('.');
    if out.starts_with("body") || out.starts_with("headers") || out.starts_with("preprocess") {
        out.to_string()
    } else {
        format!("body.{out}")
    }
}

/// The three roots a path can start from, borrowed from one request.
#[derive(Debug, Clone, Copy)]
pub struct PathRoots<'a> {
    pub body: &'a Value,
    pub headers: &'a Value,
    pub preprocess: &'a Value,
}

impl FieldPath {
    /// Parses `text`. Empty segments, whitespace and upper-case header names are errors.
    pub fn parse(text: &str) -> Result<Self, PathError> {
        let err = |problem: &str, fix: &str| PathError {
            path: text.to_string(),
            problem: problem.to_string(),
            fix: fix.to_string(),
        };
        if text.is_empty() {
            return Err(err(
                "the path is empty",
                "write a dot path such as `body.event_type`",
            ));
        }
        // Knock users write `items[0]` for `items.0`: the same path. JSONPath (`$.x`) and
        // quoted brackets (`data["x"]`) are not paths here; say what to write.
        if text.starts_with('$') || text.contains("[\"") || text.contains("['") {
            return Err(err(
                "JSONPath and quoted brackets are not supported",
                &format!("write the dot path `{}`", dot_path(text)),
            ));
        }
        let normalized;
        let text_for_segments = if text.contains('[') || text.contains(']') {
            match numeric_brackets_to_dots(text) {
                Some(dots) => {
                    normalized = dots;
                    normalized.as_str()
                }
                None => {
                    return Err(err(
                        "brackets may only hold an array index, as in `items[0]`",
                        &format!("write the dot path `{}`", dot_path(text)),
                    ));
                }
            }
        } else {
            text
        };
        if text.chars().any(char::is_whitespace) {
            return Err(err(
                "paths cannot contain whitespace",
                "remove the spaces; segments are separated by `.` only",
            ));
        }
        let parts: Vec<&str> = text_for_segments.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(err(
                "the path has an empty segment (a leading, trailing or doubled `.`)",
                "write segments separated by single dots, e.g. `body.data.id`",
            ));
        }
        let (namespace, rest) = match parts[0] {
            "body" => (Namespace::Body, &parts[1..]),
            "headers" => (Namespace::Headers, &parts[1..]),
            "preprocess" => (Namespace::Preprocess, &parts[1..]),
            _ => (Namespace::Body, &parts[..]),
        };
        if namespace == Namespace::Headers
            && let Some(name) = rest.first()
            && name.chars().any(|c| c.is_ascii_uppercase())
        {
            return Err(err(
                "header names are matched in lower case",
                &format!("write `headers.{}`", name.to_ascii_lowercase()),
            ));
        }
        let segments = rest
            .iter()
            .map(|part| Segment {
                key: (*part).to_string(),
                index: part.parse::<usize>().ok().filter(|_| {
                    // "01" is a key, not index 1: only canonical integers index arrays.
                    part.len() == 1 || !part.starts_with('0')
                }),
            })
            .collect();
        Ok(FieldPath {
            namespace,
            segments,
            text: text.to_string(),
        })
    }

    /// The path as the user wrote it.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value at this path, or `None` when any segment is missing. JSON `null` counts
    /// as missing, since a sender that writes `null` means "no value".
    pub fn resolve<'a>(&self, roots: &PathRoots<'a>) -> Option<&'a Value> {
        let mut current = match self.namespace {
            Namespace::Body => roots.body,
            Namespace::Headers => roots.headers,
            Namespace::Preprocess => roots.preprocess,
        };
        for segment in &self.segments {
            current = match current {
                Value::Object(map) => map.get(&segment.key)?,
                Value::Array(items) => items.get(segment.index?)?,
                _ => return None,
            };
        }
        (!current.is_null()).then_some(current)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resolve(path: &str, body: Value) -> Option<Value> {
        let headers = json!({"x-shopify-topic": "orders/create"});
        let preprocess = json!({"normalized_event": "task.done"});
        let roots = PathRoots {
            body: &body,
            headers: &headers,
            preprocess: &preprocess,
        };
        FieldPath::parse(path).unwrap().resolve(&roots).cloned()
    }

    #[test]
    fn namespaces_and_bare_paths() {
        let body = json!({"data": {"assigned_to": "user_456"}, "type": "t"});
        assert_eq!(
            resolve("body.data.assigned_to", body.clone()),
            Some(json!("user_456"))
        );
        assert_eq!(
            resolve("data.assigned_to", body.clone()),
            Some(json!("user_456"))
        );
        assert_eq!(
            resolve("headers.x-shopify-topic", body.clone()),
            Some(json!("orders/create"))
        );
        assert_eq!(
            resolve("preprocess.normalized_event", body.clone()),
            Some(json!("task.done"))
        );
        assert_eq!(resolve("body", json!({"a": 1})), Some(json!({"a": 1})));
    }

    #[test]
    fn arrays_objects_and_missing_values() {
        let body = json!({"items": [{"id": "a"}, {"id": "b"}], "codes": {"0": "zero"}, "n": null});
        assert_eq!(resolve("body.items.1.id", body.clone()), Some(json!("b")));
        assert_eq!(resolve("body.codes.0", body.clone()), Some(json!("zero")));
        assert_eq!(
            resolve("body.items", body.clone()),
            Some(json!([{"id": "a"}, {"id": "b"}]))
        );
        assert_eq!(resolve("body.items.2.id", body.clone()), None);
        assert_eq!(resolve("body.items.x", body.clone()), None);
        assert_eq!(resolve("body.n", body.clone()), None);
        assert_eq!(resolve("body.items.0.id.deeper", body.clone()), None);
        assert_eq!(resolve("body.items.01", body), None);
    }

    #[test]
    fn case_sensitive() {
        assert_eq!(resolve("body.Type", json!({"type": "x"})), None);
    }

    #[test]
    fn malformed_paths_are_rejected_with_a_fix() {
        for bad in [
            "",
            "body..x",
            ".body",
            "body.",
            "body.a b",
            "headers.X-Shopify-Topic",
        ] {
            let err = FieldPath::parse(bad).unwrap_err();
            assert!(!err.fix.is_empty(), "{bad}: {err}");
        }
        assert_eq!(
            FieldPath::parse("headers.X-Id").unwrap_err().fix,
            "write `headers.x-id`"
        );
    }

    #[test]
    fn index_brackets_are_dots_and_jsonpath_is_refused_with_the_dot_path() {
        let body = json!({"data": [{"ts": 5}, {"ts": 7}], "items": [[1, 2]]});
        assert_eq!(resolve("body.data[1].ts", body.clone()), Some(json!(7)));
        assert_eq!(resolve("data[0].ts", body.clone()), Some(json!(5)));
        assert_eq!(resolve("items[0][1]", body), Some(json!(2)));
        assert_eq!(
            FieldPath::parse("data[0].ts").unwrap().as_str(),
            "data[0].ts"
        );
        for (bad, fix) in [
            ("$.event_type", "write the dot path `body.event_type`"),
            (
                "data[\"assigned_by\"]",
                "write the dot path `body.data.assigned_by`",
            ),
            ("$.data['a'][0]", "write the dot path `body.data.a.0`"),
            ("data[x]", "write the dot path `body.data.x`"),
            ("data[0", "write the dot path `body.data.0`"),
            ("headers['x-id']", "write the dot path `headers.x-id`"),
        ] {
            let err = FieldPath::parse(bad).unwrap_err();
            assert_eq!(err.fix, fix, "{bad}: {err}");
        }
    }
}
