//! The sandboxed Rhai script engine.
//!
//! One [`ScriptEngine`] is built at start-up and shared. Scripts are compiled once per
//! content hash and cached, so a config reload that leaves a script unchanged reuses its
//! AST. A script defines `fn main(ctx)` and returns a map: `verified` decides acceptance,
//! `http_response` (optional) answers the sender directly, every other key becomes
//! `preprocess.<key>`.
//!
//! The sandbox: Rhai has no file or network access of its own; `eval` and `import` are
//! disabled and no module resolver is installed; operations, call depth, expression
//! depth and string/array/map sizes are capped; and a wall-time budget is enforced from
//! the progress callback, which Rhai calls on every operation (checked every 16
//! operations, so the check costs nothing measurable). `print` and `debug` go to
//! `tracing` and into the run's console, which the event log keeps. Per-run state
//! (deadline, console, clock) lives in thread-locals because Rhai's callbacks are
//! engine-wide; a run never awaits, so the thread is the run.
//!
//! Its rooms: `context.rs` (`ctx`, converted lazily), `helpers.rs` and `verifiers.rs`
//! (the functions scripts call), `bounds.rs` (size and time checks inside helpers),
//! `run_state.rs` (the per-run thread-locals), `memory.rs` (the memory budget),
//! `pool.rs` (the threads long runs move to), `output.rs` (reading what a run
//! returned); this file builds the engine, compiles and runs scripts, and describes
//! their failures.

mod bounds;
mod context;
mod helpers;
mod memory;
mod output;
mod pool;
mod run_state;
mod verifiers;

pub use context::{CONTEXT_TYPE_NAME, ScriptContext, ScriptInput, VARS_TYPE_NAME};
pub use helpers::hmac_sha256;
pub use memory::{CountingAllocator, installed as memory_budget_enforced};
use output::read_output;
pub use pool::{OwnedScriptInput, PoolFull, ScriptPool};
pub(crate) use verifiers::{parse_algorithm, parse_encoding, parse_unit};

/// Whether a run stopped at its wall time `budget` after `cpu_used` of CPU was starved
/// by a busy machine (less than half the budget on the CPU) rather than slow itself.
fn overloaded(cpu_used: Option<Duration>, budget: Duration) -> bool {
    cpu_used.is_some_and(|cpu| cpu * 2 < budget)
}

/// The token a run is terminated with when its wall time is spent.
const WALL_TIME_SPENT: &str = "wall time budget exhausted";
/// The token a run is terminated with when it holds more memory than its budget.
const MEMORY_SPENT: &str = "memory budget exhausted";

use context::MissingVar;
use rhai::{AST, Dynamic, Engine, EvalAltResult, Scope};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sandbox limits; the defaults are the published ones (docs/scripts.md lists them).
///
/// The size limits are sized to the body limit ([`ScriptLimits::for_body_limit`]): any
/// payload a sender may send converts to `ctx.body` whole (an array of `[0,0,…]` has at
/// most half as many items as the body has bytes), so the sender's shape never makes a
/// request fail. What a script *builds* is bounded by the memory budget, the wall time
/// and the operation count, and every helper or built-in that could make a result much
/// larger than its inputs in one call checks the result's size before building it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptLimits {
    pub max_operations: u64,
    pub max_call_depth: usize,
    /// Longest string a script may build, in bytes. At least four times the body limit,
    /// so that `rawBody` and strings derived from it fit.
    pub max_string_bytes: usize,
    pub max_array_len: usize,
    pub max_map_len: usize,
    /// Memory a run may hold at once (enforced where the binary installs
    /// [`CountingAllocator`], as `inlet` and the ingest function do).
    pub max_memory_bytes: usize,
    pub wall_time: Duration,
}

impl ScriptLimits {
    /// The limits for requests of at most `max_body_bytes`.
    pub fn for_body_limit(max_body_bytes: usize) -> Self {
        ScriptLimits {
            max_operations: 1_000_000,
            max_call_depth: 32,
            max_string_bytes: (4 * max_body_bytes).max(1024 * 1024),
            max_array_len: max_body_bytes / 2 + 1,
            max_map_len: max_body_bytes / 2 + 1,
            max_memory_bytes: 64 * 1024 * 1024,
            wall_time: Duration::from_millis(50),
        }
    }
}

impl Default for ScriptLimits {
    fn default() -> Self {
        Self::for_body_limit(crate::defaults::MAX_BODY_BYTES)
    }
}

/// A script ran out of its time slice (see [`ScriptEngine::run_slice`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceSpent;

/// A compiled script, ready to run.
pub struct CompiledScript {
    /// Where the script came from (its file), for messages.
    pub name: String,
    /// SHA-256 of the source, hex.
    pub hash: String,
    /// The vars it reads without first testing for them (see [`required_vars`]).
    pub required_vars: Vec<String>,
    ast: AST,
}

impl std::fmt::Debug for CompiledScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledScript")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .finish()
    }
}

/// A script that does not compile, or has no usable `main`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub message: String,
    pub fix: String,
}

/// A custom answer to the sender (handshakes, challenges).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptHttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What a successful run returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScriptOutput {
    pub verified: Option<bool>,
    /// Why the run's last failed `verify_*` call failed (`stripe: signature_mismatch:
    /// ...`), kept as the rejection reason when the request is refused.
    pub verify_failure: Option<String>,
    pub http_response: Option<ScriptHttpResponse>,
    pub preprocess: Map<String, Value>,
    pub console: Vec<String>,
}

/// Why a run failed. The message is for logs and the event record, never for the sender.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ScriptRunError {
    pub kind: ScriptErrorKind,
    pub message: String,
    pub console: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptErrorKind {
    /// A sandbox limit was hit.
    Limit,
    /// The script raised an error (`throw`, a failed helper, a type error...).
    Runtime,
    /// `main` returned something that is not the documented map.
    BadReturn,
    /// The script read this var, which is not set: a configuration problem, not a bad
    /// request.
    MissingVar(String),
    /// The wall-time budget ran out while the script had used less than half of it on
    /// the CPU: the machine was busy (other requests, other processes), not the script
    /// slow. Answered 503 with `Retry-After`, not refused: the same request passes when
    /// the load passes.
    Overloaded,
}

impl std::fmt::Display for ScriptErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScriptErrorKind::Limit => "script limit exceeded",
            ScriptErrorKind::Runtime => "script error",
            ScriptErrorKind::BadReturn => "script returned an invalid value",
            ScriptErrorKind::MissingVar(_) => "script configuration error",
            ScriptErrorKind::Overloaded => "script not run to its end: the server is busy",
        })
    }
}

pub struct ScriptEngine {
    engine: Engine,
    limits: ScriptLimits,
    cache: Mutex<HashMap<String, Arc<CompiledScript>>>,
}

impl std::fmt::Debug for ScriptEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptEngine")
            .field("limits", &self.limits)
            .finish()
    }
}

impl ScriptEngine {
    pub fn new(limits: ScriptLimits) -> Self {
        let mut engine = Engine::new();
        engine
            .set_max_operations(limits.max_operations)
            .set_max_call_levels(limits.max_call_depth)
            .set_max_expr_depths(64, 32)
            .set_max_string_size(limits.max_string_bytes)
            .set_max_array_size(limits.max_array_len)
            .set_max_map_size(limits.max_map_len)
            .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
        engine.disable_symbol("eval");
        engine.disable_symbol("import");
        // Checked every 16 operations: `Instant::now` and a thread-local read cost well
        // under a microsecond, and calls that do much work at once check for themselves.
        let max_memory = limits.max_memory_bytes;
        engine.on_progress(move |ops| {
            if ops % 16 != 0 {
                return None;
            }
            if run_state::past_deadline() {
                return Some(Dynamic::from(WALL_TIME_SPENT));
            }
            if memory::held() > max_memory {
                return Some(Dynamic::from(MEMORY_SPENT));
            }
            None
        });
        engine.on_print(|text| {
            let text = run_state::redacted(text);
            tracing::debug!(target: "inlet::script", "print: {text}");
            run_state::push_console(text);
        });
        engine.on_debug(|text, _source, pos| {
            let text = run_state::redacted(text);
            tracing::debug!(target: "inlet::script", "debug at {pos}: {text}");
            run_state::push_console(format!("[debug {pos}] {text}"));
        });
        helpers::register(&mut engine);
        bounds::register(&mut engine);
        context::register(&mut engine);
        verifiers::register(&mut engine);
        ScriptEngine {
            engine,
            limits,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Compiles `code` (named `name` in messages), or returns the cached compilation of
    /// identical source.
    pub fn compile(&self, name: &str, code: &str) -> Result<Arc<CompiledScript>, CompileError> {
        let hash = hex::encode(Sha256::digest(code.as_bytes()));
        if let Some(hit) = self.cache.lock().expect("script cache poisoned").get(&hash) {
            return Ok(hit.clone());
        }
        let ast = self.engine.compile(code).map_err(|e| {
            let column = e
                .1
                .position()
                .map(|c| format!(", column {c}"))
                .unwrap_or_default();
            CompileError {
                line: e.1.line().unwrap_or(1),
                message: format!("script does not compile{column}: {}", e.0),
                fix: if looks_like_javascript(code) {
                    "scripts are Rhai, not JavaScript: write `fn main(ctx) { ... }` and maps as `#{ verified: true }` (no `function`, `return {...}` or `const`)".into()
                } else {
                    "fix the Rhai syntax here or just before (see docs/scripts.md)"
                        .into()
                },
            }
        })?;
        let has_main = ast
            .iter_functions()
            .any(|f| f.name == "main" && f.params.len() == 1);
        if !has_main {
            return Err(CompileError {
                line: 1,
                message: "the script has no `fn main(ctx)`".into(),
                fix: "define `fn main(ctx) { #{ verified: true } }` returning a map".into(),
            });
        }
        let compiled = Arc::new(CompiledScript {
            name: name.to_string(),
            hash: hash.clone(),
            required_vars: required_vars(code),
            ast,
        });
        self.cache
            .lock()
            .expect("script cache poisoned")
            .insert(hash, compiled.clone());
        Ok(compiled)
    }

    /// Runs `main(ctx)` under the sandbox limits.
    pub fn run(
        &self,
        script: &CompiledScript,
        input: ScriptInput<'_>,
    ) -> Result<ScriptOutput, ScriptRunError> {
        self.run_within(script, input, self.limits.wall_time)
            .unwrap_or_else(|SliceSpent| unreachable!("the whole budget is no slice"))
    }

    /// Runs `main(ctx)` with only `slice` of wall time: the outcome if it finished (or
    /// failed) within it, [`SliceSpent`] if it needs longer. A server runs every script
    /// this way on the thread that serves the request, with a slice of a millisecond,
    /// and gives the few that need longer to a [`ScriptPool`] thread with the whole
    /// budget: scripts have no side effects, so running one again from the start is
    /// safe, and the common case pays no thread hand-off.
    pub fn run_slice(
        &self,
        script: &CompiledScript,
        input: ScriptInput<'_>,
        slice: Duration,
    ) -> Result<Result<ScriptOutput, ScriptRunError>, SliceSpent> {
        self.run_within(script, input, slice.min(self.limits.wall_time))
    }

    fn run_within(
        &self,
        script: &CompiledScript,
        input: ScriptInput<'_>,
        wall_time: Duration,
    ) -> Result<Result<ScriptOutput, ScriptRunError>, SliceSpent> {
        run_state::begin(input.now_ms, input.vars.clone());
        memory::start();
        let ctx = Dynamic::from(ScriptContext::new(&input));
        run_state::start_clock(Instant::now() + wall_time);
        let result = self
            .engine
            .call_fn::<Dynamic>(&mut Scope::new(), &script.ast, "main", (ctx,));
        // Only a failed run says how much CPU it used (see run_state::CpuMark).
        let cpu_used = result.as_ref().err().and_then(|_| run_state::cpu_used());
        memory::stop();
        let console = run_state::end();
        let verify_failure = run_state::take_verify_failure();
        if wall_time < self.limits.wall_time
            && let Err(err) = &result
            && let EvalAltResult::ErrorTerminated(token, _) = root_cause(err)
            && token.clone().into_string().ok().as_deref() == Some(WALL_TIME_SPENT)
        {
            return Err(SliceSpent);
        }
        let outcome = match result {
            Ok(value) => read_output(value, console).map(|mut output| {
                output.verify_failure = verify_failure;
                output
            }),
            Err(err) => Err(self.describe_failure(&err, console, cpu_used)),
        };
        // An error message may quote a value the script built from a var
        // (`throw ctx.vars.SECRET`, a type error showing it); it is logged and stored.
        Ok(outcome.map_err(|mut error| {
            error.message = input.vars.redact(&error.message);
            error
        }))
    }

    fn describe_failure(
        &self,
        err: &EvalAltResult,
        console: Vec<String>,
        cpu_used: Option<Duration>,
    ) -> ScriptRunError {
        let limits = &self.limits;
        // Where it happened; calls refused before they run have no position.
        let at = |pos: &rhai::Position| {
            if pos.is_none() {
                String::new()
            } else {
                format!(" at {pos}")
            }
        };
        let (kind, message) = match root_cause(err) {
            EvalAltResult::ErrorRuntime(value, pos) if value.is::<MissingVar>() => {
                let MissingVar(name) = value.clone_cast::<MissingVar>();
                (
                    ScriptErrorKind::MissingVar(name.clone()),
                    format!(
                        "var `{name}` is not set (read at {pos}); set it, or test for an optional var with `\"{name}\" in ctx.vars`"
                    ),
                )
            }
            EvalAltResult::ErrorTooManyOperations(pos) => (
                ScriptErrorKind::Limit,
                format!("more than {} operations{}", limits.max_operations, at(pos)),
            ),
            EvalAltResult::ErrorStackOverflow(pos) => (
                ScriptErrorKind::Limit,
                format!("call depth over {}{}", limits.max_call_depth, at(pos)),
            ),
            EvalAltResult::ErrorDataTooLarge(what, pos) => (
                ScriptErrorKind::Limit,
                format!(
                    "{what}{} (strings ≤ {} bytes, arrays ≤ {} items, maps ≤ {} entries)",
                    at(pos),
                    limits.max_string_bytes,
                    limits.max_array_len,
                    limits.max_map_len
                ),
            ),
            EvalAltResult::ErrorTerminated(token, pos)
                if token.clone().into_string().ok().as_deref() == Some(MEMORY_SPENT) =>
            {
                (
                    ScriptErrorKind::Limit,
                    format!(
                        "memory over {} MiB{}",
                        limits.max_memory_bytes / (1024 * 1024),
                        at(pos)
                    ),
                )
            }
            EvalAltResult::ErrorTerminated(_, pos) if overloaded(cpu_used, limits.wall_time) => (
                ScriptErrorKind::Overloaded,
                format!(
                    "wall time over {} ms{} with {} ms of it on the CPU: the machine was busy",
                    limits.wall_time.as_millis(),
                    at(pos),
                    cpu_used.unwrap_or_default().as_millis()
                ),
            ),
            EvalAltResult::ErrorTerminated(_, pos) => (
                ScriptErrorKind::Limit,
                format!(
                    "wall time over {} ms{}",
                    limits.wall_time.as_millis(),
                    at(pos)
                ),
            ),
            _ => (ScriptErrorKind::Runtime, err.to_string()),
        };
        ScriptRunError {
            kind,
            message,
            console,
        }
    }
}

/// Errors raised inside `main` arrive wrapped as "error in function call"; the limit
/// that was hit is the innermost error.
fn root_cause(err: &EvalAltResult) -> &EvalAltResult {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => root_cause(inner),
        other => other,
    }
}

/// The var names a script reads as `ctx.vars.NAME` or `ctx.vars["NAME"]`, less those
/// it tests for with `"NAME" in ctx.vars` (optional vars), sorted. Found in the source
/// text, so that a var no vars file provides is reported at load, not at the first
/// request (which answers 503 for it).
pub fn required_vars(code: &str) -> Vec<String> {
    let mut read = std::collections::BTreeSet::new();
    for (at, _) in code.match_indices("ctx.vars") {
        let rest = &code[at + "ctx.vars".len()..];
        let name = if let Some(after) = rest.strip_prefix('.') {
            after
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .next()
                .unwrap_or_default()
        } else if let Some(after) = rest.strip_prefix("[\"") {
            after.split('"').next().unwrap_or_default()
        } else {
            ""
        };
        // `ctx.vars.len()` and friends are calls on the map, not vars.
        let is_call = rest
            .strip_prefix('.')
            .and_then(|after| after.get(name.len()..))
            .is_some_and(|after| after.trim_start().starts_with('('));
        if !name.is_empty() && !is_call {
            read.insert(name.to_string());
        }
    }
    read.into_iter()
        .filter(|name| {
            !code.contains(&format!("\"{name}\" in ctx.vars"))
                && !code.contains(&format!("'{name}' in ctx.vars"))
        })
        .collect()
}

/// Whether code that failed to compile was written as JavaScript (as Knock's scripts
/// are): `function main(`, `return {`, `const x =`, `=>`.
fn looks_like_javascript(code: &str) -> bool {
    code.lines().map(str::trim_start).any(|line| {
        line.starts_with("function ")
            || line.starts_with("const ")
            || line.starts_with("export ")
            || line.contains("return {")
            || line.contains(") => ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vars::Vars;
    use serde_json::json;

    fn engine() -> ScriptEngine {
        ScriptEngine::new(ScriptLimits::default())
    }

    fn run_with(
        engine: &ScriptEngine,
        code: &str,
        body: Value,
    ) -> Result<ScriptOutput, ScriptRunError> {
        let script = engine.compile("test.rhai", code).expect("compiles");
        let vars = Vars::new([
            ("SECRET".to_string(), "s3cret".to_string()),
            ("KEYS".to_string(), r#"["a", "b"]"#.to_string()),
        ]);
        let raw = body.to_string();
        engine.run(
            &script,
            ScriptInput {
                vars: Arc::new(vars),
                body: Arc::new(body),
                raw_body: &raw,
                headers: Arc::new(json!({"x-webhook-secret": "s3cret"})),
                query: Arc::new(json!({"q": "1"})),
                method: "POST",
                received_at: 1_700_000_000,
                now_ms: 1_700_000_000_500,
            },
        )
    }

    fn run(code: &str) -> Result<ScriptOutput, ScriptRunError> {
        run_with(&engine(), code, json!({"type": "a.b", "n": 2}))
    }

    #[test]
    fn contract_fields_and_preprocess() {
        let out = run(r#"
            fn main(ctx) {
                print("hello " + ctx.method);
                #{
                    verified: ctx.headers["x-webhook-secret"] == ctx.vars.SECRET,
                    normalized_event: `${ctx.body.type}.v2`,
                    keys: ctx.vars.KEYS.len(),
                    raw_len: ctx.rawBody.len(),
                    q: ctx.query.q,
                    at: ctx.received_at,
                    now: now(),
                }
            }"#)
        .unwrap();
        assert_eq!(out.verified, Some(true));
        assert_eq!(out.http_response, None);
        assert_eq!(
            Value::Object(out.preprocess),
            json!({"normalized_event": "a.b.v2", "keys": 2, "raw_len": 20, "q": "1",
                   "at": 1_700_000_000, "now": 1_700_000_000})
        );
        assert_eq!(out.console, vec!["hello POST".to_string()]);
    }

    #[test]
    fn headers_are_read_case_insensitively_and_behave_like_a_map() {
        let out = run(r#"
            fn main(ctx) {
                ctx.headers["X-Added"] = "yes";
                #{
                    verified: ctx.headers["X-Webhook-Secret"] == ctx.headers["x-webhook-secret"]
                        && ctx.headers["x-webhook-secret"] != (),
                    found: "X-WEBHOOK-SECRET" in ctx.headers,
                    missing: ctx.headers["X-Nope"],
                    added: ctx.headers["x-added"],
                    kind: type_of(ctx.headers),
                    count: ctx.headers.len(),
                    all: ctx.headers,
                }
            }"#)
        .unwrap();
        assert_eq!(out.verified, Some(true));
        let p = Value::Object(out.preprocess);
        assert_eq!(
            (&p["found"], &p["missing"], &p["added"], &p["kind"]),
            (&json!(true), &Value::Null, &json!("yes"), &json!("Headers"))
        );
        assert_eq!(p["all"]["x-added"], "yes");
        assert_eq!(p["count"], p["all"].as_object().unwrap().len());
    }

    #[test]
    fn the_vars_a_script_needs_are_found_in_its_text() {
        let code = r#"
            fn main(ctx) {
                let a = ctx.vars.SHOP_SECRET;
                let b = ctx.vars["OTHER-KEY"];
                let n = ctx.vars.len();
                if "OPTIONAL" in ctx.vars { print(ctx.vars.OPTIONAL); }
                #{ verified: a == b }
            }"#;
        assert_eq!(required_vars(code), ["OTHER-KEY", "SHOP_SECRET"]);
    }

    #[test]
    fn javascript_is_recognised_and_syntax_errors_give_a_column() {
        let engine = engine();
        let js = "function main(ctx) {\n  return {verified: true};\n}\n";
        let err = engine.compile("knock.js.rhai", js).err().unwrap();
        assert!(
            err.fix
                .starts_with("scripts are Rhai, not JavaScript: write `fn main(ctx)"),
            "{}",
            err.fix
        );
        let err = engine
            .compile("x.rhai", "fn main(ctx) {\n  let x = ;\n}\n")
            .err()
            .unwrap();
        assert_eq!(err.line, 2);
        assert!(
            err.message.starts_with("script does not compile, column "),
            "{}",
            err.message
        );
        assert!(!err.fix.contains("JavaScript"));
    }

    #[test]
    fn helpers_given_a_missing_value_say_so() {
        // The scripts doc's example without its signature header: not verified, no error.
        let out = run(r#"fn main(ctx) { #{ verified: secure_eq("sha256=ab", ctx.headers["x-webhook-signature"]) } }"#)
            .unwrap();
        assert_eq!(out.verified, Some(false));
        let err = run(
            r#"fn main(ctx) { #{ x: hmac_sha256_hex(ctx.headers["x-missing"], ctx.rawBody) } }"#,
        )
        .unwrap_err();
        assert!(
            err.message
                .contains("hmac_sha256_hex: its first argument is () — a missing value"),
            "{}",
            err.message
        );
        let err = run(r#"fn main(ctx) { #{ x: hmac_sha1(ctx.rawBody, 42) } }"#).unwrap_err();
        assert!(
            err.message
                .contains("hmac_sha1: its second argument is a i64; pass a string or a blob"),
            "{}",
            err.message
        );
    }

    #[test]
    fn verified_missing_or_wrong_type() {
        assert_eq!(run("fn main(ctx) { #{ x: 1 } }").unwrap().verified, None);
        let err = run("fn main(ctx) { #{ verified: \"yes\" } }").unwrap_err();
        assert_eq!(err.kind, ScriptErrorKind::BadReturn);
        assert!(
            err.message.contains("`verified` must be true or false"),
            "{err}"
        );
        let err = run("fn main(ctx) { 42 }").unwrap_err();
        assert!(err.message.contains("main must return a map"), "{err}");
    }

    #[test]
    fn http_response() {
        let out = run(r#"fn main(ctx) { #{ verified: true, http_response: #{ status: 200, body: #{ challenge: "c" } } } }"#).unwrap();
        assert_eq!(
            out.http_response,
            Some(ScriptHttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body: r#"{"challenge":"c"}"#.into()
            })
        );
        let err = run(r#"fn main(ctx) { #{ http_response: #{ status: 99 } } }"#).unwrap_err();
        assert!(err.message.contains("200 to 599"), "{err}");
    }

    #[test]
    fn calls_whose_result_would_be_too_large_are_refused_before_they_run() {
        let e = ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_secs(30),
            ..ScriptLimits::default()
        });
        let cases = [
            // 1,000 'a's each replaced by 1 MiB: a 1 GB string, refused up front.
            (
                r#"fn main(ctx) { let big = "b"; while big.len() < 1048576 { big += big; } let s = "a"; while s.len() < 1000 { s += s; } s.replace("a", big); #{} }"#,
                "Length of string",
            ),
            (
                r#"fn main(ctx) { let s = "a"; while s.len() < 1048576 { s += s; } s.split(""); #{} }"#,
                "Size of array",
            ),
            (
                r#"fn main(ctx) { let s = "a"; while s.len() < 1048576 { s += s; } s.to_chars(); #{} }"#,
                "Size of array",
            ),
            (
                r#"fn main(ctx) { let s = "k=v&"; while s.len() < 600000 { s += s; } form_decode(s); #{} }"#,
                "Size of object map",
            ),
        ];
        for (code, needle) in cases {
            let err = run_with(&e, code, json!({})).unwrap_err();
            assert_eq!(err.kind, ScriptErrorKind::Limit, "{code}: {err}");
            assert!(err.message.contains(needle), "{code}: {err}");
        }
        // The replaced built-ins still do their job.
        let out = run_with(
            &e,
            r#"fn main(ctx) { let a = "banana"; a.replace("a", "o"); let f = "banana"; f.replace('a', "0"); #{ a: a, b: "a,b,,c".split(","), c: "x y".split(), d: "ab".to_chars().len(), e: "a-b".split_rev("-"), f: f, g: "x=1&y=2".split('&') } }"#,
            json!({}),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out.preprocess),
            json!({"a": "bonono", "b": ["a", "b", "", "c"], "c": ["x", "y"], "d": 2, "e": ["b", "a"], "f": "b0n0n0", "g": ["x=1", "y=2"]})
        );
    }

    #[test]
    fn memory_held_by_a_run_is_bounded() {
        assert!(
            memory_budget_enforced(),
            "the tests install the counting allocator"
        );
        let e = ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_secs(30),
            max_memory_bytes: 8 * 1024 * 1024,
            ..ScriptLimits::default()
        });
        // Rhai bounds the data reachable from one value (the sizes inside a container
        // add up), but not what separate values hold: here each call frame holds its own
        // copy of a 512 KiB string, well within the call depth, 8 MiB in 16 frames.
        let code = r#"fn f(s) { let t = s + "z"; f(t) } fn main(ctx) { let s = "x"; while s.len() < 524288 { s += s; } f(s) }"#;
        let err = run_with(&e, code, json!({})).unwrap_err();
        assert_eq!(err.kind, ScriptErrorKind::Limit, "{err}");
        assert!(err.message.contains("memory over 8 MiB"), "{err}");
    }

    /// A script stopped at its wall time while the machine was too busy to give it the
    /// CPU (here: its thread in the idle scheduling class, every core taken by a spinning
    /// thread) is not refused for it: the kind says "overloaded" (503, retry), while the
    /// same script given the CPU and still over its budget is the script's own fault.
    #[test]
    fn a_busy_machine_is_not_the_script_s_fault() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let engine = Arc::new(ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_millis(50),
            max_operations: 0,
            ..ScriptLimits::default()
        }));
        let spin = "fn main(ctx) { let x = 0; loop { x += 1; } }";
        let stop = Arc::new(AtomicBool::new(false));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hogs: Vec<_> = (0..cores * 2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        let starved = std::thread::spawn({
            let engine = engine.clone();
            move || {
                let idle = libc::sched_param { sched_priority: 0 };
                // SAFETY: sets this thread's own scheduling class; `idle` is valid.
                let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) };
                assert_eq!(set, 0, "SCHED_IDLE");
                run_with(&engine, spin, json!({})).unwrap_err()
            }
        })
        .join()
        .unwrap();
        stop.store(true, Ordering::Relaxed);
        hogs.into_iter().for_each(|h| h.join().unwrap());
        assert_eq!(starved.kind, ScriptErrorKind::Overloaded, "{starved}");
        assert!(
            starved.message.contains("the machine was busy"),
            "{starved}"
        );
        // The rule itself: less than half the budget on the CPU is the machine's doing.
        assert!(overloaded(
            Some(Duration::from_millis(24)),
            Duration::from_millis(50)
        ));
        assert!(!overloaded(
            Some(Duration::from_millis(26)),
            Duration::from_millis(50)
        ));
        assert!(!overloaded(None, Duration::from_millis(50)));
    }

    #[test]
    fn helpers_that_work_per_byte_stop_at_the_wall_time() {
        let e = ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_millis(20),
            ..ScriptLimits::default()
        });
        let code = r#"fn main(ctx) { let s = "x"; while s.len() < 1048576 { s += s; } loop { hmac_sha512(s, s); } }"#;
        let err = run_with(&e, code, json!({})).unwrap_err();
        assert!(err.message.contains("wall time over 20 ms"), "{err}");
    }

    #[test]
    fn every_limit_is_enforced() {
        // A generous wall time, so that each other limit is what stops the script even
        // in an unoptimised build.
        // Array and map limits sized to a small body, so that they, not the operation
        // count, stop the loops.
        let e = ScriptEngine::new(ScriptLimits {
            wall_time: Duration::from_secs(30),
            max_array_len: 1_000,
            max_map_len: 1_000,
            ..ScriptLimits::default()
        });
        let cases = [
            ("fn main(ctx) { let x = 0; loop { x += 1; } }", "operations"),
            ("fn f(n) { f(n + 1) } fn main(ctx) { f(0) }", "call depth"),
            (
                "fn main(ctx) { let s = \"x\"; loop { s += s; } }",
                "Length of string",
            ),
            (
                "fn main(ctx) { let a = []; loop { a.push(1); } }",
                "Size of array",
            ),
            (
                "fn main(ctx) { let m = #{}; let i = 0; loop { m += #{ k: i }; m[`k${i}`] = i; i += 1; } }",
                "Size of object map",
            ),
        ];
        for (code, needle) in cases {
            let err = run_with(&e, code, json!({})).unwrap_err();
            assert_eq!(err.kind, ScriptErrorKind::Limit, "{code}: {err}");
            assert!(err.message.contains(needle), "{code}: {err}");
        }
    }

    #[test]
    fn wall_time_budget() {
        let e = ScriptEngine::new(ScriptLimits {
            max_operations: u64::MAX / 2,
            wall_time: Duration::from_millis(20),
            ..ScriptLimits::default()
        });
        let started = Instant::now();
        // A run the machine kept off the CPU (another test, a build) is `Overloaded`,
        // by design; the budget's own verdict needs a run that had the CPU, so try again.
        let mut err = None;
        for attempt in 0..10 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
            let run = run_with(
                &e,
                "fn main(ctx) { let x = 0; loop { x += 1; } }",
                json!({}),
            )
            .unwrap_err();
            let starved = run.kind == ScriptErrorKind::Overloaded;
            err = Some(run);
            if !starved {
                break;
            }
        }
        let err = err.unwrap();
        assert_eq!(err.kind, ScriptErrorKind::Limit, "{err}");
        assert!(err.message.contains("wall time over 20 ms"), "{err}");
        // The budget stops the loop; generous bound only guards against "never stops".
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn eval_and_import_are_unavailable() {
        let e = engine();
        assert!(e.compile("x", "fn main(ctx) { eval(\"1\") }").is_err());
        assert!(
            e.compile("x", "import \"fs\" as fs; fn main(ctx) { 1 }")
                .is_err()
        );
    }

    #[test]
    fn compile_errors_and_missing_main() {
        let e = engine();
        let err = e.compile("x", "fn main(ctx) {\n let = 1;\n}").unwrap_err();
        assert_eq!(err.line, 2);
        let err = e.compile("x", "fn other(ctx) { 1 }").unwrap_err();
        assert!(err.message.contains("no `fn main(ctx)`"));
    }

    #[test]
    fn compiled_once_per_content_hash() {
        let e = engine();
        let a = e.compile("a.rhai", "fn main(ctx) { #{} }").unwrap();
        let b = e.compile("b.rhai", "fn main(ctx) { #{} }").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = e.compile("c.rhai", "fn main(ctx) { #{ x: 1 } }").unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[test]
    fn var_values_are_redacted_from_console_and_errors() {
        let err = run(r#"fn main(ctx) {
                print("secret is " + ctx.vars.SECRET);
                debug(ctx.vars.SECRET);
                throw "bad " + ctx.vars.SECRET;
            }"#)
        .unwrap_err();
        assert_eq!(
            err.console,
            vec![
                "secret is [redacted]".to_string(),
                "[debug line 3, position 17] \"[redacted]\"".to_string()
            ]
        );
        assert!(!err.message.contains("s3cret"), "{err}");
        assert!(err.message.contains("bad [redacted]"), "{err}");
    }

    #[test]
    fn runtime_errors_keep_console() {
        let err = run("fn main(ctx) { print(\"before\"); throw \"boom\"; }").unwrap_err();
        assert_eq!(err.kind, ScriptErrorKind::Runtime);
        assert!(err.message.contains("boom"));
        assert_eq!(err.console, vec!["before".to_string()]);
    }
}
