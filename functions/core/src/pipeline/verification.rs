//! Verification and preprocessing: the environment's declared `verify:` check, then its
//! script — inline for its first millisecond, then, if it needs more, again with its
//! whole budget on the script pool — and what they decided ([`Verified`]).

use super::request::{Parsed, keep_bounded_body};
use super::{Pipeline, Route};
use crate::config::VerifyConfig;
use crate::reply::{IngestError, Reply};
use crate::script::{
    CompiledScript, OwnedScriptInput, ScriptErrorKind, ScriptInput, ScriptOutput, ScriptPool,
    ScriptRunError, SliceSpent,
};
use crate::store::{EventRecord, EventStatus, VerificationStatus};
use crate::vars::Vars;
use crate::verify::{self, SignedRequest};
use serde_json::{Map, Value};
use std::sync::Arc;

/// How long a script may run on the thread that serves its request before it is run
/// again, with its whole budget, on the script pool (see [`ScriptEngine::run_slice`]).
const INLINE_SLICE: std::time::Duration = std::time::Duration::from_millis(1);

/// What verification and preprocessing decided.
pub(super) enum Verified {
    /// Go on; the script's output for `preprocess.*` paths (empty without a script).
    Passed(Value),
    /// The script answered the sender itself (a handshake); nothing is logged.
    Answered(Reply),
    /// Log the event as it stands, then answer with this error.
    Refused(IngestError),
    /// The script did not run (the pool is full): answer with this error, log nothing.
    NotRun(IngestError),
}

impl Pipeline {
    /// Runs the environment's script, if any, and records on `event` what it said.
    pub(super) async fn verify(
        &self,
        route: &Route,
        parsed: &Parsed,
        vars: Arc<Vars>,
        event: &mut EventRecord,
        replaying: bool,
    ) -> Verified {
        let env = &route.env;
        let mut preprocess = Value::Object(Map::new());
        // A declared `verify:` check decides first; a script after it preprocesses (and
        // may still refuse with `verified: false`). A replay keeps the original's result.
        let declared = match &env.verify {
            Some(_) if replaying => Some(true),
            Some(check) => match self.check_declared(check, route, parsed, &vars, event) {
                Ok(verified) => Some(verified),
                Err(refused) => return refused,
            },
            None => None,
        };
        let Some(script) = &env.script else {
            if let Some(verified) = declared {
                event.verification =
                    VerificationStatus::from_parts(env.enforce_verification, verified);
            }
            return Verified::Passed(preprocess);
        };
        let received_at = event.received_at_ms.div_euclid(1000);
        let input = ScriptInput {
            vars: vars.clone(),
            body: parsed.body.clone(),
            raw_body: &event.raw_body,
            headers: parsed.headers.clone(),
            query: parsed.query.clone(),
            method: &event.method,
            received_at,
            now_ms: self.clock.now_ms(),
        };
        let outcome = match &self.script_pool {
            None => self.engine.run(script, input),
            Some(pool) => match self.engine.run_slice(script, input, INLINE_SLICE) {
                Ok(outcome) => outcome,
                Err(SliceSpent) => {
                    match self
                        .run_on_pool(pool, script, vars, parsed, event, received_at)
                        .await
                    {
                        Ok(outcome) => outcome,
                        Err(busy) => return Verified::NotRun(busy),
                    }
                }
            },
        };
        let mut verify_failure = None;
        let verified = match outcome {
            Ok(output) => {
                event.script_console = output.console;
                let verified = match declared {
                    // The declared check passed or is not enforced: the script objects
                    // only by saying `verified: false`.
                    Some(declared) => declared && output.verified != Some(false),
                    None => output.verified == Some(true),
                };
                verify_failure = output.verify_failure;
                if let Some(custom) = output.http_response
                    && (verified || !env.enforce_verification)
                {
                    tracing::info!(source = %event.source, status = custom.status, "answered by the script's http_response");
                    return Verified::Answered(Reply {
                        status: custom.status,
                        headers: custom.headers,
                        body: custom.body,
                    });
                }
                if !output.preprocess.is_empty() {
                    preprocess = Value::Object(output.preprocess.clone());
                    event.preprocess = Some(output.preprocess);
                }
                verified
            }
            Err(error) => {
                let message = format!("{error} ({})", script.name);
                event.script_console = error.console;
                if let ScriptErrorKind::MissingVar(name) = &error.kind {
                    // A configuration problem, not a bad request: answer 503 so the
                    // sender retries (and nothing is lost) once the var is set.
                    let detail = format!(
                        "{message}; {}",
                        self.vars.how_to_set(&route.environment, name)
                    );
                    event.status = EventStatus::Error;
                    event.verification =
                        VerificationStatus::from_parts(env.enforce_verification, false);
                    event.error = Some(detail.clone());
                    return Verified::Refused(IngestError::Unavailable { detail });
                }
                if error.kind == ScriptErrorKind::Overloaded {
                    // Not the script's fault nor the sender's: nothing is stored and the
                    // sender retries.
                    return Verified::NotRun(IngestError::Busy { detail: message });
                }
                tracing::warn!(source = %event.source, error = %message, "script failed");
                event.error = Some(message);
                false
            }
        };
        event.verification = VerificationStatus::from_parts(env.enforce_verification, verified);
        if env.enforce_verification && !verified && !replaying {
            if event.error.is_none() {
                // Why: the last failed `verify_*` check of the script, if it made one.
                event.error = Some(match verify_failure {
                    Some(failure) => format!("unverified: {failure}"),
                    None => "unverified: the script did not return `verified: true`".into(),
                });
            }
            event.status = EventStatus::Rejected;
            keep_bounded_body(event);
            return Verified::Refused(IngestError::Unverified);
        }
        Verified::Passed(preprocess)
    }

    /// The environment's declared `verify:` check. `Ok(verified)` to go on (a failure
    /// that is not enforced is kept as a warning); `Err` answers the request: 401 when
    /// enforced and the check failed, 503 when the secret's var is not set (a
    /// configuration problem: the sender retries once it is).
    fn check_declared(
        &self,
        check: &VerifyConfig,
        route: &Route,
        parsed: &Parsed,
        vars: &Vars,
        event: &mut EventRecord,
    ) -> Result<bool, Verified> {
        let env = &route.env;
        let Some(secret) = vars.for_scripts().get(&check.secret_var) else {
            let detail = format!(
                "var `{}` (the secret of `verify: {{ scheme: {} }}`) is not set; {}",
                check.secret_var,
                check.scheme.name(),
                self.vars.how_to_set(&route.environment, &check.secret_var)
            );
            event.status = EventStatus::Error;
            event.verification = VerificationStatus::from_parts(env.enforce_verification, false);
            event.error = Some(detail.clone());
            return Err(Verified::Refused(IngestError::Unavailable { detail }));
        };
        let secrets: Vec<String> = match secret {
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            Value::String(s) => vec![s.clone()],
            other => vec![other.to_string()],
        };
        let empty = Map::new();
        let request = SignedRequest {
            headers: parsed.headers.as_object().unwrap_or(&empty),
            body: event.raw_body.as_bytes(),
            received_at: event.received_at_ms.div_euclid(1000),
        };
        match verify::verify(&check.scheme, &request, &secrets, check.tolerance_secs) {
            Ok(()) => Ok(true),
            Err(failure) => {
                let reason = format!("unverified: {}: {failure}", check.scheme.name());
                if env.enforce_verification {
                    event.verification = VerificationStatus::EnforcedUnverified;
                    event.error = Some(reason);
                    event.status = EventStatus::Rejected;
                    keep_bounded_body(event);
                    return Err(Verified::Refused(IngestError::Unverified));
                }
                event.warnings.push(reason);
                Ok(false)
            }
        }
    }

    /// Runs a script that needed more than its inline slice on a pool thread, with its
    /// whole budget (from the start: scripts have no side effects).
    async fn run_on_pool(
        &self,
        pool: &ScriptPool,
        script: &Arc<CompiledScript>,
        vars: Arc<Vars>,
        parsed: &Parsed,
        event: &mut EventRecord,
        received_at: i64,
    ) -> Result<Result<ScriptOutput, ScriptRunError>, IngestError> {
        let input = OwnedScriptInput {
            vars,
            body: parsed.body.clone(),
            raw_body: std::mem::take(&mut event.raw_body),
            headers: parsed.headers.clone(),
            query: parsed.query.clone(),
            method: event.method.clone(),
            received_at,
            now_ms: self.clock.now_ms(),
        };
        match pool.run(script.clone(), input).await {
            Ok((outcome, raw_body)) => {
                event.raw_body = raw_body;
                Ok(outcome)
            }
            Err(full) => Err(IngestError::Busy {
                detail: full.to_string(),
            }),
        }
    }
}
