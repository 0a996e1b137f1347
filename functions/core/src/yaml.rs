//! A small line-annotated YAML tree, read with `saphyr`.
//!
//! Source configs are validated by walking this tree rather than by serde derive, so one
//! pass can report *every* problem in a file, each with its line, instead of stopping at
//! the first one. The tree keeps only what validation needs: scalars, sequences and
//! mappings with string keys, each node carrying its 1-based line.

use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order: (key, key's line, value).
    Map(Vec<(String, usize, Node)>),
}

/// A YAML problem at a line.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    pub line: usize,
    pub message: String,
}

/// Parses one YAML document. An empty file is an error: a source file must say something.
pub fn parse(text: &str) -> Result<Node, YamlError> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| YamlError {
        line: e.marker().line(),
        message: format!("YAML syntax error: {}", e.info()),
    })?;
    let mut docs = docs.into_iter();
    let first = docs.next().ok_or_else(|| YamlError {
        line: 1,
        message: "the file is empty".into(),
    })?;
    if let Some(second) = docs.next() {
        return Err(YamlError {
            line: second.span.start.line(),
            message: "the file holds more than one YAML document (`---`); keep one source per file"
                .into(),
        });
    }
    convert(first)
}

fn convert(node: MarkedYaml<'_>) -> Result<Node, YamlError> {
    let line = node.span.start.line().max(1);
    let kind = match node.data {
        YamlData::Value(scalar) => scalar_kind(scalar),
        YamlData::Representation(text, ..) => Kind::Str(text.into_owned()),
        YamlData::Sequence(items) => {
            Kind::Seq(items.into_iter().map(convert).collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, value) in map {
                let key_line = key.span.start.line().max(1);
                let key = match convert(key)?.kind {
                    Kind::Str(s) => s,
                    Kind::Int(i) => i.to_string(),
                    Kind::Bool(b) => b.to_string(),
                    _ => {
                        return Err(YamlError {
                            line: key_line,
                            message: "mapping keys must be plain strings".into(),
                        });
                    }
                };
                entries.push((key, key_line, convert(value)?));
            }
            Kind::Map(entries)
        }
        YamlData::Tagged(_, inner) => return convert(*inner),
        YamlData::Alias(_) => {
            return Err(YamlError {
                line,
                message: "YAML aliases (`*name`) are not supported; repeat the value".into(),
            });
        }
        YamlData::BadValue => {
            return Err(YamlError {
                line,
                message: "this value could not be read".into(),
            });
        }
    };
    Ok(Node { line, kind })
}

fn scalar_kind(scalar: Scalar<'_>) -> Kind {
    match scalar {
        Scalar::Null => Kind::Null,
        Scalar::Boolean(b) => Kind::Bool(b),
        Scalar::Integer(i) => Kind::Int(i),
        Scalar::FloatingPoint(f) => Kind::Float(f.into_inner()),
        Scalar::String(s) => Kind::Str(s.into_owned()),
    }
}

impl Node {
    /// The node as JSON, for literal values in mappings.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, _, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "nothing (null)",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept() {
        let node = parse("a: 1\nb:\n  c: [x, y]\n").unwrap();
        let Kind::Map(entries) = node.kind else {
            panic!()
        };
        assert_eq!(entries[0].0, "a");
        assert_eq!(entries[0].1, 1);
        assert_eq!(entries[1].1, 2);
        let Kind::Map(inner) = &entries[1].2.kind else {
            panic!()
        };
        assert_eq!(inner[0].1, 3);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = parse("a: 1\nb: [1, 2\nc: 3\n").unwrap_err();
        assert!(err.line >= 2, "{err:?}");
        assert!(err.message.starts_with("YAML syntax error"));
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert_eq!(err.line, 2);
    }
}
