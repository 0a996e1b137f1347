//! `ctx`, the one argument of a script's `main`, and the conversions between JSON and
//! Rhai values.
//!
//! `ctx` behaves like an object map — `ctx.body`, `ctx["body"]`, assignment of any key,
//! `keys`, `values`, `len`, `contains` and `in`, printing — but it is a custom type
//! whose JSON parts (`body`, `headers`, `query`) become Rhai values only when the
//! script first reads them. Turning a body into Rhai maps costs more than a typical
//! signature check, and a verification script usually reads only `rawBody` and
//! `headers`, so the conversion is skipped whenever it is not needed. A converted part is
//! kept as a shared value, so reading `ctx.body.a` and then `ctx.body.b` converts once
//! and copies nothing; writes (`ctx.body.a = 1`, `ctx.extra = 2`) work as on a map.
//!
//! `ctx.vars` is a custom type too ([`ScriptVars`]): a var is converted when read, and
//! reading one that is not set is an error naming it ([`MissingVar`]).
//!
//! Printing `ctx` (`print(ctx)`, `` `${ctx}` ``) shows every part but hides the values of
//! vars: they are secrets, and the console is stored in the event log.

use crate::vars::Vars;
use rhai::{Dynamic, Engine, EvalAltResult, ImmutableString, Position};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What one request looks like to a script (`ctx`). The JSON parts are shared, not
/// borrowed, because `ctx` turns them into Rhai values only when the script first reads
/// them (see [`ScriptContext`]).
#[derive(Debug, Clone)]
pub struct ScriptInput<'a> {
    pub vars: Arc<Vars>,
    pub body: Arc<Value>,
    pub raw_body: &'a str,
    pub headers: Arc<Value>,
    pub query: Arc<Value>,
    pub method: &'a str,
    /// Unix seconds at receipt.
    pub received_at: i64,
    /// The clock's current time, for `now()`.
    pub now_ms: i64,
}

/// The name `type_of(ctx)` returns.
pub const CONTEXT_TYPE_NAME: &str = "Context";
/// The name `type_of(ctx.vars)` returns.
pub const VARS_TYPE_NAME: &str = "Vars";

/// The fixed parts of `ctx`, in the order `keys(ctx)` lists them.
const PARTS: [&str; 7] = [
    "vars",
    "body",
    "rawBody",
    "headers",
    "query",
    "method",
    "received_at",
];

/// One part of `ctx`: still JSON, or already a Rhai value.
#[derive(Debug, Clone)]
enum Part {
    Vars(Arc<Vars>),
    Json(Arc<Value>),
    /// The headers, read case-insensitively (see [`ScriptHeaders`]).
    Headers(Arc<Value>),
    Ready(Dynamic),
}

impl Part {
    /// The part as a Rhai value, converting (once) on first use. The converted value is
    /// shared, so handing it out again is a reference-count increment, not a copy.
    fn get(&mut self) -> Dynamic {
        let converted = match self {
            Part::Ready(value) => return value.clone(),
            // Nothing to convert up front: each var is converted when read.
            Part::Vars(vars) => {
                return Dynamic::from(ScriptVars {
                    vars: vars.clone(),
                    assigned: rhai::Map::new(),
                });
            }
            Part::Json(json) => json_to_dynamic(json),
            Part::Headers(json) => Dynamic::from(ScriptHeaders(match json.as_ref() {
                Value::Object(map) => json_map_to_rhai(map),
                _ => rhai::Map::new(),
            })),
        };
        let shared = converted.into_shared();
        *self = Part::Ready(shared.clone());
        shared
    }
}

/// `ctx`; see the module documentation.
#[derive(Debug, Clone)]
pub struct ScriptContext {
    vars: Part,
    body: Part,
    raw_body: Dynamic,
    headers: Part,
    query: Part,
    method: Dynamic,
    received_at: Dynamic,
    /// Keys the script added (`ctx.note = ...`).
    added: rhai::Map,
}

impl ScriptContext {
    pub fn new(input: &ScriptInput<'_>) -> Self {
        ScriptContext {
            vars: Part::Vars(input.vars.clone()),
            body: Part::Json(input.body.clone()),
            raw_body: ImmutableString::from(input.raw_body).into(),
            headers: Part::Headers(input.headers.clone()),
            query: Part::Json(input.query.clone()),
            method: ImmutableString::from(input.method).into(),
            received_at: Dynamic::from_int(input.received_at),
            added: rhai::Map::new(),
        }
    }

    /// What the `verify_*` helpers check: the headers as JSON (as the script may have
    /// changed them), `rawBody` and `received_at`.
    pub(super) fn signed_parts(
        &self,
    ) -> (
        std::borrow::Cow<'_, Map<String, Value>>,
        ImmutableString,
        i64,
    ) {
        use std::borrow::Cow;
        let headers = match &self.headers {
            Part::Json(json) | Part::Headers(json) => json.as_object().map(Cow::Borrowed),
            Part::Ready(value) => match dynamic_to_json(value) {
                Ok(Value::Object(map)) => Some(Cow::Owned(map)),
                _ => None,
            },
            Part::Vars(_) => None,
        };
        let raw_body = self
            .raw_body
            .clone()
            .into_immutable_string()
            .unwrap_or_default();
        let received_at = self.received_at.as_int().unwrap_or(0);
        (headers.unwrap_or_default(), raw_body, received_at)
    }

    fn get(&mut self, key: &str) -> Dynamic {
        match key {
            "vars" => self.vars.get(),
            "body" => self.body.get(),
            "rawBody" => self.raw_body.clone(),
            "headers" => self.headers.get(),
            "query" => self.query.get(),
            "method" => self.method.clone(),
            "received_at" => self.received_at.clone(),
            other => self.added.get(other).cloned().unwrap_or(Dynamic::UNIT),
        }
    }

    fn set(&mut self, key: &str, value: Dynamic) {
        match key {
            "vars" => self.vars = Part::Ready(value),
            "body" => self.body = Part::Ready(value),
            "rawBody" => self.raw_body = value,
            "headers" => self.headers = Part::Ready(value),
            "query" => self.query = Part::Ready(value),
            "method" => self.method = value,
            "received_at" => self.received_at = value,
            other => {
                self.added.insert(other.into(), value);
            }
        }
    }

    fn keys(&self) -> impl Iterator<Item = &str> {
        PARTS
            .into_iter()
            .chain(self.added.keys().map(|k| k.as_str()))
    }

    fn contains(&self, key: &str) -> bool {
        PARTS.contains(&key) || self.added.contains_key(key)
    }

    /// Every part as a map, for printing: var values replaced by `"[hidden]"`.
    fn for_display(&mut self) -> rhai::Map {
        let keys: Vec<String> = self.keys().map(str::to_string).collect();
        keys.into_iter()
            .map(|key| {
                let value = if key == "vars" {
                    hide_values(self.get("vars"))
                } else {
                    let value = self.get(&key).flatten_clone();
                    match value.read_lock::<ScriptHeaders>() {
                        Some(headers) => Dynamic::from_map(headers.0.clone()),
                        None => value.clone(),
                    }
                };
                (key.into(), value)
            })
            .collect()
    }
}

/// `ctx.vars` for printing: the names, each with the value `"[hidden]"`.
fn hide_values(vars: Dynamic) -> Dynamic {
    let vars = vars.flatten_clone();
    if let Some(vars) = vars.read_lock::<ScriptVars>() {
        hidden(vars.names())
    } else if let Some(map) = vars.read_lock::<rhai::Map>() {
        hidden(map.keys().map(|k| k.to_string()).collect())
    } else {
        Dynamic::from("[hidden]")
    }
}

fn hidden(names: Vec<String>) -> Dynamic {
    Dynamic::from_map(
        names
            .into_iter()
            .map(|name| (name.into(), Dynamic::from("[hidden]")))
            .collect(),
    )
}

/// `ctx.headers`: the request's headers by lower-case name, read case-insensitively as
/// HTTP header names are (`ctx.headers["X-Signature"]` finds `x-signature`), with the
/// map functions (`keys`, `values`, `len`, `in`, printing). `type_of` says `"Headers"`.
#[derive(Debug, Clone, Default)]
pub struct ScriptHeaders(rhai::Map);

/// The name `type_of(ctx.headers)` returns.
pub const HEADERS_TYPE_NAME: &str = "Headers";

impl ScriptHeaders {
    fn key(name: &str) -> std::borrow::Cow<'_, str> {
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            name.to_ascii_lowercase().into()
        } else {
            name.into()
        }
    }
}

/// `ctx.vars`: the environment's vars, each converted when read. Reading a var that is
/// not set raises [`MissingVar`] naming it — a configuration problem the pipeline
/// answers with 503, so that the sender retries once the var is set — where a map would
/// give `()` and the script would fail later with an unrelated message.
/// `"NAME" in ctx.vars` tests for an optional var. Assignments (`ctx.vars.X = ...`, and
/// the write-back Rhai does after a method call such as `ctx.vars.KEYS.len()`) stay
/// within the run, as on a map.
#[derive(Debug, Clone)]
pub struct ScriptVars {
    vars: Arc<Vars>,
    assigned: rhai::Map,
}

/// The error value a script raises by reading a var that is not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar(pub String);

impl ScriptVars {
    fn get(&self, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
        if let Some(value) = self.assigned.get(name) {
            return Ok(value.clone());
        }
        match self.vars.for_scripts().get(name) {
            Some(value) => Ok(json_to_dynamic(value)),
            None => Err(EvalAltResult::ErrorRuntime(
                Dynamic::from(MissingVar(name.to_string())),
                Position::NONE,
            )
            .into()),
        }
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.vars.for_scripts().keys().cloned().collect();
        for name in self.assigned.keys() {
            if !self.vars.for_scripts().contains_key(name.as_str()) {
                names.push(name.to_string());
            }
        }
        names
    }

    fn contains(&self, name: &str) -> bool {
        self.assigned.contains_key(name) || self.vars.for_scripts().contains_key(name)
    }
}

/// Registers `ctx`'s type: a getter and setter per fixed part (found directly, where the
/// indexer would be found only after a failed getter lookup), the string indexer (which
/// Rhai also uses for properties without a getter, i.e. keys a script added) and the
/// map-like functions.
pub(crate) fn register(engine: &mut Engine) {
    register_headers(engine);
    engine.register_type_with_name::<ScriptContext>(CONTEXT_TYPE_NAME);
    for part in PARTS {
        engine
            .register_get(part, move |ctx: &mut ScriptContext| ctx.get(part))
            .register_set(part, move |ctx: &mut ScriptContext, value: Dynamic| {
                ctx.set(part, value)
            });
    }
    engine
        .register_indexer_get(|ctx: &mut ScriptContext, key: &str| ctx.get(key))
        .register_indexer_set(|ctx: &mut ScriptContext, key: &str, value: Dynamic| {
            ctx.set(key, value)
        })
        .register_fn("keys", |ctx: &mut ScriptContext| -> rhai::Array {
            ctx.keys().map(|k| Dynamic::from(k.to_string())).collect()
        })
        .register_fn("values", |ctx: &mut ScriptContext| -> rhai::Array {
            let keys: Vec<String> = ctx.keys().map(str::to_string).collect();
            keys.iter().map(|k| ctx.get(k)).collect()
        })
        .register_fn("len", |ctx: &mut ScriptContext| -> i64 {
            (PARTS.len() + ctx.added.len()) as i64
        })
        .register_fn("contains", |ctx: &mut ScriptContext, key: &str| {
            ctx.contains(key)
        })
        .register_fn("to_string", |ctx: &mut ScriptContext| -> String {
            Dynamic::from_map(ctx.for_display()).to_string()
        })
        .register_fn("to_debug", |ctx: &mut ScriptContext| -> String {
            format!("{:?}", Dynamic::from_map(ctx.for_display()))
        });
    engine
        .register_type_with_name::<ScriptVars>(VARS_TYPE_NAME)
        .register_indexer_get(|vars: &mut ScriptVars, name: &str| vars.get(name))
        .register_indexer_set(|vars: &mut ScriptVars, name: &str, value: Dynamic| {
            vars.assigned.insert(name.into(), value);
        })
        .register_fn("keys", |vars: &mut ScriptVars| -> rhai::Array {
            vars.names().into_iter().map(Dynamic::from).collect()
        })
        .register_fn("len", |vars: &mut ScriptVars| vars.names().len() as i64)
        .register_fn("contains", |vars: &mut ScriptVars, name: &str| {
            vars.contains(name)
        })
        .register_fn("to_string", |vars: &mut ScriptVars| -> String {
            hidden(vars.names()).to_string()
        })
        .register_fn("to_debug", |vars: &mut ScriptVars| -> String {
            format!("{:?}", hidden(vars.names()))
        });
}

fn register_headers(engine: &mut Engine) {
    engine
        .register_type_with_name::<ScriptHeaders>(HEADERS_TYPE_NAME)
        .register_indexer_get(|h: &mut ScriptHeaders, name: &str| {
            h.0.get(ScriptHeaders::key(name).as_ref())
                .cloned()
                .unwrap_or(Dynamic::UNIT)
        })
        .register_indexer_set(|h: &mut ScriptHeaders, name: &str, value: Dynamic| {
            h.0.insert(ScriptHeaders::key(name).as_ref().into(), value);
        })
        .register_fn("contains", |h: &mut ScriptHeaders, name: &str| {
            h.0.contains_key(ScriptHeaders::key(name).as_ref())
        })
        .register_fn("keys", |h: &mut ScriptHeaders| -> rhai::Array {
            h.0.keys().map(|k| Dynamic::from(k.to_string())).collect()
        })
        .register_fn("values", |h: &mut ScriptHeaders| -> rhai::Array {
            h.0.values().cloned().collect()
        })
        .register_fn("len", |h: &mut ScriptHeaders| h.0.len() as i64)
        .register_fn("is_empty", |h: &mut ScriptHeaders| h.0.is_empty())
        .register_fn("to_string", |h: &mut ScriptHeaders| -> String {
            Dynamic::from_map(h.0.clone()).to_string()
        })
        .register_fn("to_debug", |h: &mut ScriptHeaders| -> String {
            format!("{:?}", Dynamic::from_map(h.0.clone()))
        });
}

/// JSON → Rhai value, directly (much cheaper than going through serde, and this runs
/// on every request that reads the body). Integers beyond `i64` become floats, as in
/// JavaScript.
pub fn json_to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => ImmutableString::from(s.as_str()).into(),
        Value::Array(items) => Dynamic::from_array(items.iter().map(json_to_dynamic).collect()),
        Value::Object(map) => Dynamic::from_map(json_map_to_rhai(map)),
    }
}

fn json_map_to_rhai(map: &Map<String, Value>) -> rhai::Map {
    map.iter()
        .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
        .collect()
}

/// Rhai value → JSON, for script output and `json_stringify`. Shared values (such as a
/// part of `ctx` placed in the output) are read through; blobs become arrays of bytes,
/// characters strings, `()` null. Anything else (a function pointer, `ctx` itself, a
/// non-finite float) is an error naming the type.
pub fn dynamic_to_json(value: &Dynamic) -> Result<Value, String> {
    if value.is_shared() {
        return dynamic_to_json(&value.flatten_clone());
    }
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = value.as_float() {
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} is not a finite number, which JSON cannot hold"));
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if let Some(s) = value.read_lock::<ImmutableString>() {
        return Ok(Value::String(s.to_string()));
    }
    if let Some(items) = value.read_lock::<rhai::Array>() {
        return items
            .iter()
            .map(dynamic_to_json)
            .collect::<Result<_, _>>()
            .map(Value::Array);
    }
    if let Some(headers) = value.read_lock::<ScriptHeaders>() {
        return dynamic_to_json(&Dynamic::from_map(headers.0.clone()));
    }
    if let Some(map) = value.read_lock::<rhai::Map>() {
        return map
            .iter()
            .map(|(k, v)| Ok((k.to_string(), dynamic_to_json(v)?)))
            .collect::<Result<Map<_, _>, String>>()
            .map(Value::Object);
    }
    if let Some(blob) = value.read_lock::<rhai::Blob>() {
        return Ok(Value::Array(blob.iter().map(|b| Value::from(*b)).collect()));
    }
    Err(format!(
        "a value of type {} cannot be turned into JSON",
        value.type_name()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{ScriptEngine, ScriptInput, ScriptLimits};
    use serde_json::json;

    fn input(raw: &str) -> ScriptInput<'_> {
        ScriptInput {
            vars: Arc::new(Vars::new([("SECRET".to_string(), "s3cret".to_string())])),
            body: Arc::new(serde_json::from_str(raw).unwrap()),
            raw_body: raw,
            headers: Arc::new(json!({"x-sig": "abc"})),
            query: Arc::new(json!({})),
            method: "POST",
            received_at: 1_700_000_000,
            now_ms: 1_700_000_000_000,
        }
    }

    fn run(code: &str) -> Result<crate::script::ScriptOutput, crate::script::ScriptRunError> {
        let engine = ScriptEngine::new(ScriptLimits::default());
        let script = engine.compile("t.rhai", code).unwrap();
        engine.run(
            &script,
            input(r#"{"type":"a","data":{"id":"u1","tags":["x","y"],"n":3}}"#),
        )
    }

    #[test]
    fn parts_convert_only_when_read() {
        let raw = r#"{"type":"a"}"#;
        let mut ctx = ScriptContext::new(&input(raw));
        assert_eq!(ctx.get("rawBody").into_string().unwrap(), raw);
        assert!(matches!(ctx.body, Part::Json(_)), "body converted unread");
        assert!(matches!(ctx.vars, Part::Vars(_)), "vars converted unread");
        let first = ctx.get("body");
        assert!(first.is_shared() && matches!(ctx.body, Part::Ready(_)));
        // A second read hands out the same shared value, not a copy.
        let mut second = ctx.get("body");
        second
            .write_lock::<rhai::Map>()
            .unwrap()
            .insert("seen".into(), Dynamic::TRUE);
        assert!(first.read_lock::<rhai::Map>().unwrap().contains_key("seen"));
    }

    #[test]
    fn behaves_like_a_map() {
        let out = run(r#"
            fn main(ctx) {
                ctx.body.data.id = "u2";
                ctx.note = "added";
                ctx["other"] = 1;
                let keys = ctx.keys();
                #{
                    verified: true,
                    by_property: ctx.body.data.id,
                    by_index: ctx["body"]["type"],
                    header: ctx.headers["x-sig"],
                    missing: ctx.nothing,
                    note: ctx.note,
                    other: ctx.other,
                    has_body: "body" in ctx,
                    has_nope: "nope" in ctx,
                    len: ctx.len(),
                    first_keys: keys.extract(0, 3),
                    last_key: keys[-1],
                    type: type_of(ctx),
                    vars_secret: ctx.vars.SECRET,
                    tags: ctx.body.data.tags,
                    whole_data: ctx.body.data,
                    stringified: json_stringify(ctx.body.data.tags),
                }
            }"#)
        .unwrap();
        assert_eq!(
            Value::Object(out.preprocess),
            json!({
                "by_property": "u2", "by_index": "a", "header": "abc", "missing": null,
                "note": "added", "other": 1, "has_body": true, "has_nope": false, "len": 9,
                "first_keys": ["vars", "body", "rawBody"], "last_key": "other",
                "type": "Context", "vars_secret": "s3cret", "tags": ["x", "y"],
                "whole_data": {"id": "u2", "tags": ["x", "y"], "n": 3},
                "stringified": "[\"x\",\"y\"]",
            })
        );
    }

    #[test]
    fn whole_parts_can_be_returned_and_replaced() {
        let out = run(r#"
            fn main(ctx) {
                let original = ctx.body;
                ctx.body = #{ replaced: true };
                #{ verified: true, original: original, now_body: ctx.body, json: json_stringify(original) }
            }"#)
        .unwrap();
        let data = json!({"id": "u1", "tags": ["x", "y"], "n": 3});
        assert_eq!(
            out.preprocess["original"],
            json!({"type": "a", "data": data})
        );
        assert_eq!(out.preprocess["now_body"], json!({"replaced": true}));
        assert_eq!(
            serde_json::from_str::<Value>(out.preprocess["json"].as_str().unwrap()).unwrap(),
            json!({"type": "a", "data": data})
        );
    }

    #[test]
    fn printing_ctx_hides_var_values() {
        let out =
            run(r#"fn main(ctx) { print(ctx); debug(ctx); print(`${ctx}`); #{ verified: true } }"#)
                .unwrap();
        assert_eq!(out.console.len(), 3, "{:?}", out.console);
        for line in &out.console {
            assert!(!line.contains("s3cret"), "var value printed: {line}");
            assert!(line.contains("[hidden]"), "{line}");
            assert!(line.contains("u1"), "body missing from {line}");
        }
    }

    #[test]
    fn sandbox_size_limits_hold_through_shared_parts() {
        let cases = [
            "fn main(ctx) { loop { ctx.body.data.tags.push(1); } }",
            "fn main(ctx) { let tags = ctx.body.data.tags; loop { tags.push(1); } }",
            "fn main(ctx) { let i = 0; loop { ctx.body[`k${i}`] = i; i += 1; } }",
            "fn main(ctx) { loop { ctx.body.data.id += ctx.body.data.id; } }",
        ];
        // Small limits, so each case stops on its size limit quickly (each write through
        // a part re-measures the part), and a generous wall time, so that nothing else
        // stops it first in an unoptimised build.
        let engine = ScriptEngine::new(ScriptLimits {
            max_array_len: 100,
            max_map_len: 100,
            max_string_bytes: 10_000,
            wall_time: std::time::Duration::from_secs(30),
            ..ScriptLimits::default()
        });
        for code in cases {
            let script = engine.compile("t.rhai", code).unwrap();
            let err = engine
                .run(&script, input(r#"{"data":{"id":"u1","tags":[]}}"#))
                .unwrap_err();
            assert_eq!(
                err.kind,
                crate::script::ScriptErrorKind::Limit,
                "{code}: {err}"
            );
            assert!(
                err.message.contains("Size of") || err.message.contains("Length of"),
                "{code}: {err}"
            );
        }
    }

    #[test]
    fn vars_read_like_a_map_and_a_missing_one_is_named() {
        let out = run(r#"
            fn main(ctx) {
                #{
                    verified: true,
                    secret: ctx.vars.SECRET,
                    by_index: ctx.vars["SECRET"],
                    has: "SECRET" in ctx.vars,
                    has_not: "NOPE" in ctx.vars,
                    names: ctx.vars.keys(),
                    len: ctx.vars.len(),
                    type: type_of(ctx.vars),
                    shown: `${ctx.vars}`,
                }
            }"#)
        .unwrap();
        assert_eq!(
            Value::Object(out.preprocess),
            json!({"secret": "s3cret", "by_index": "s3cret", "has": true, "has_not": false,
                   "names": ["SECRET"], "len": 1, "type": "Vars",
                   "shown": "#{\"SECRET\": \"[hidden]\"}"})
        );

        let err =
            run("fn main(ctx) {\n  let s = ctx.vars.NOPE;\n  #{ verified: true }\n}").unwrap_err();
        assert_eq!(
            err.kind,
            crate::script::ScriptErrorKind::MissingVar("NOPE".into())
        );
        assert!(err.message.contains("var `NOPE` is not set"), "{err}");
        assert!(err.message.contains("line 2"), "{err}");

        // Assignments stay within the run, as on a map.
        let out = run(
            "fn main(ctx) { ctx.vars.SECRET = \"x\"; ctx.vars.NEW = 1; #{ s: ctx.vars.SECRET, n: ctx.vars.NEW, len: ctx.vars.len() } }",
        )
        .unwrap();
        assert_eq!(
            Value::Object(out.preprocess),
            json!({"s": "x", "n": 1, "len": 2})
        );
    }

    #[test]
    fn ctx_itself_is_not_json() {
        let err = run("fn main(ctx) { #{ verified: true, all: ctx } }").unwrap_err();
        assert!(
            err.message.contains("`all` cannot be turned into JSON")
                && err.message.contains("Context"),
            "{err}"
        );
    }

    #[test]
    fn json_round_trip() {
        let value =
            json!({"a": [1, 2.5, "x", null, true, {"b": {}}], "big": 18446744073709551615_u64});
        let back = dynamic_to_json(&json_to_dynamic(&value)).unwrap();
        assert_eq!(back["a"], value["a"]);
        assert_eq!(back["big"], json!(18446744073709551615_f64));
        assert!(
            dynamic_to_json(&Dynamic::from_float(f64::NAN))
                .unwrap_err()
                .contains("finite")
        );
        assert_eq!(
            dynamic_to_json(&Dynamic::from_blob(vec![1, 2])).unwrap(),
            json!([1, 2])
        );
    }
}
