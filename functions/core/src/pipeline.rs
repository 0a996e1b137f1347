//! The ingest pipeline (DESIGN §5): one request in, one [`Reply`] out.
//!
//! Steps: route and basic checks (404/405/413/400) → script or no verification (401) →
//! event type (202 `invalid_event_type` when missing) → timestamp → idempotency claim
//! (200 duplicate / 409 in flight) → record the event with its action plan → dispatch →
//! complete the claim → 202. If storing or dispatching fails, the claim is released and
//! the sender gets 503 with `Retry-After`, so its retry succeeds; a 2xx is only sent
//! once the event is stored and its actions handed off durably.
//!
//! Decisions where DESIGN is silent:
//! - 404/405/413/400 answers are not written to the event log (no source-level event
//!   exists yet); they are logged with `tracing` at warn level.
//! - A script's `http_response` is sent only if the request passed verification (or
//!   verification is not enforced); such a request is answered by the script and not
//!   processed further or logged as an event (it is a handshake, not an event).
//! - If completing the idempotency claim fails after the event is stored and dispatched,
//!   the sender still gets 202: the event is safe, and the `in_progress` claim keeps
//!   blocking duplicates until it expires (60 s). Answering 503 there would make the
//!   sender's retry create a second event.
//! - `actions` in the 202 body counts the actions that will run (not skipped ones).

use crate::actions::plan_actions;
use crate::clock::Clock;
use crate::config::{Catalog, EnvironmentConfig, SourceConfig};
use crate::defaults;
use crate::path::{FieldPath, PathRoots};
use crate::reply::{IngestError, Reply};
use crate::script::{ScriptEngine, ScriptInput};
use crate::store::{
    ActionDispatcher, ClaimOutcome, ClaimTimes, EventLog, EventRecord, EventStatus,
    IdempotencyScope, IdempotencyStore, Vars, VarsProvider, VerificationStatus,
};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a token leads: one environment of one source.
#[derive(Debug, Clone)]
pub struct Route {
    pub source: Arc<SourceConfig>,
    pub environment: String,
    pub env: Arc<EnvironmentConfig>,
}

/// Token → route, built from a catalog and the stored tokens.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: HashMap<String, Route>,
}

impl RouteTable {
    /// Tokens naming a source or environment absent from `catalog` are ignored (a source
    /// removed from config stops receiving).
    pub fn new<'a>(
        catalog: &Catalog,
        tokens: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Self {
        let routes = tokens
            .into_iter()
            .filter_map(|(token, source_key, environment)| {
                let source = catalog.source(source_key)?;
                let env = source.environments.get(environment)?;
                Some((
                    token.to_string(),
                    Route {
                        source: source.clone(),
                        environment: environment.to_string(),
                        env: env.clone(),
                    },
                ))
            })
            .collect();
        RouteTable { routes }
    }

    pub fn get(&self, token: &str) -> Option<&Route> {
        self.routes.get(token)
    }
}

/// One HTTP request, independent of any HTTP library.
#[derive(Debug, Clone, Default)]
pub struct InboundRequest {
    pub method: String,
    /// Header names in any case; repeated headers may appear more than once.
    pub headers: Vec<(String, String)>,
    /// The raw query string, without `?`.
    pub query: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub max_body_bytes: usize,
    pub in_progress_secs: i64,
    pub retention_days: i64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_body_bytes: defaults::MAX_BODY_BYTES,
            in_progress_secs: defaults::IN_PROGRESS_SECS,
            retention_days: defaults::RETENTION_DAYS,
        }
    }
}

/// The stores and services the pipeline runs on.
#[derive(Clone)]
pub struct Pipeline {
    pub engine: Arc<ScriptEngine>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub events: Arc<dyn EventLog>,
    pub dispatcher: Arc<dyn ActionDispatcher>,
    pub vars: Arc<dyn VarsProvider>,
    pub clock: Arc<dyn Clock>,
    pub settings: PipelineSettings,
}

/// A request whose body has been read and parsed.
struct Parsed {
    raw_body: String,
    body: Value,
    headers: Value,
    header_list: Vec<(String, String)>,
    query: Value,
}

impl Pipeline {
    /// Handles one request to `/receive/{token}`; `route` is the token's route, if any.
    pub async fn ingest(&self, route: Option<&Route>, request: InboundRequest) -> Reply {
        match self.process(route, request).await {
            Ok(reply) => reply,
            Err(error) => {
                if error.status() < 500 {
                    tracing::warn!(status = error.status(), code = error.code(), %error, "webhook refused");
                }
                error.into_reply()
            }
        }
    }

    async fn process(
        &self,
        route: Option<&Route>,
        request: InboundRequest,
    ) -> Result<Reply, IngestError> {
        let route = route.ok_or(IngestError::UnknownToken)?;
        if !request.method.eq_ignore_ascii_case("POST") {
            return Err(IngestError::MethodNotAllowed {
                method: request.method,
            });
        }
        if request.body.len() > self.settings.max_body_bytes {
            return Err(IngestError::PayloadTooLarge {
                limit_bytes: self.settings.max_body_bytes,
            });
        }
        let received_at_ms = self.clock.now_ms();
        let method = request.method.to_ascii_uppercase();
        let query_string = request.query.clone();
        let parsed = parse_request(request)?;
        let vars =
            self.vars
                .vars(&route.environment)
                .await
                .map_err(|e| IngestError::Unavailable {
                    detail: e.to_string(),
                })?;
        let env = &route.env;
        let mut event = EventRecord {
            id: uuid::Uuid::now_v7().to_string(),
            source: route.source.key.clone(),
            environment: route.environment.clone(),
            status: EventStatus::Accepted,
            verification: VerificationStatus::None,
            event_type: None,
            received_at_ms,
            occurred_at_ms: received_at_ms,
            idempotency_key: None,
            duplicate_of: None,
            method: method.clone(),
            query: query_string,
            headers: redact_headers(&parsed.header_list, &vars),
            raw_body: parsed.raw_body.clone(),
            preprocess: None,
            script_console: Vec::new(),
            error: None,
            warnings: Vec::new(),
            actions: Vec::new(),
            expires_at_ms: received_at_ms + self.settings.retention_days * 86_400_000,
        };

        // Step 2: verification and preprocessing.
        let mut preprocess = Value::Object(Map::new());
        if let Some(script) = &env.script {
            let outcome = self.engine.run(
                script,
                ScriptInput {
                    vars: vars.for_scripts(),
                    body: &parsed.body,
                    raw_body: &parsed.raw_body,
                    headers: &parsed.headers,
                    query: &parsed.query,
                    method: &method,
                    received_at: received_at_ms.div_euclid(1000),
                    now_ms: self.clock.now_ms(),
                },
            );
            let verified = match outcome {
                Ok(output) => {
                    event.script_console = output.console;
                    let verified = output.verified == Some(true);
                    if let Some(custom) = output.http_response
                        && (verified || !env.enforce_verification)
                    {
                        tracing::info!(source = %event.source, status = custom.status, "answered by the script's http_response");
                        return Ok(Reply {
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
                    tracing::warn!(source = %event.source, script = %script.name, %error, "script failed");
                    event.script_console = error.console.clone();
                    event.error = Some(format!("{} ({})", error, script.name));
                    false
                }
            };
            event.verification = VerificationStatus::from_parts(env.enforce_verification, verified);
            if env.enforce_verification && !verified {
                event.status = EventStatus::Rejected;
                if let Err(e) = self.events.record(&event).await {
                    tracing::error!(error = %e, event_id = %event.id, "could not log a rejected event");
                }
                return Err(IngestError::Unverified);
            }
        }

        let roots = PathRoots {
            body: &parsed.body,
            headers: &parsed.headers,
            preprocess: &preprocess,
        };

        // Step 3: event type.
        let Some(event_type) = env.event_type_path.resolve(&roots).and_then(scalar_string) else {
            event.status = EventStatus::InvalidEventType;
            let message = format!(
                "no event type: `{}` has no string value in this event",
                env.event_type_path
            );
            event.warnings.push(message.clone());
            self.record_or_unavailable(&event).await?;
            return Ok(Reply::json(
                202,
                json!({"status": "invalid_event_type", "event_id": event.id, "message": message}),
            ));
        };
        event.event_type = Some(event_type.clone());

        // Step 4: timestamp.
        if let Some(path) = &env.timestamp_path {
            match path.resolve(&roots).map(parse_timestamp_ms) {
                Some(Some(ms)) => event.occurred_at_ms = ms,
                Some(None) => event.warnings.push(format!(
                    "`{path}` is not an ISO-8601 time or unix seconds/milliseconds; using the receive time"
                )),
                None => event
                    .warnings
                    .push(format!("`{path}` has no value; using the receive time")),
            }
        }

        // Step 5: idempotency.
        let scope = self.idempotency_scope(route, env, &roots, &event_type, &mut event);
        if let Some(scope) = &scope {
            let now_ms = self.clock.now_ms();
            let times = ClaimTimes {
                now_ms,
                expires_at_ms: now_ms + env.idempotency.window_secs as i64 * 1000,
                in_progress_until_ms: now_ms + self.settings.in_progress_secs * 1000,
            };
            let outcome = self
                .idempotency
                .claim(scope, &event.id, times)
                .await
                .map_err(|e| IngestError::Unavailable {
                    detail: format!("idempotency claim: {e}"),
                })?;
            match outcome {
                ClaimOutcome::Claimed => {}
                ClaimOutcome::Duplicate { original_event_id } => {
                    event.status = EventStatus::Duplicate;
                    event.duplicate_of = Some(original_event_id.clone());
                    // The original is stored; failing to log the repeat loses nothing.
                    if let Err(e) = self.events.record(&event).await {
                        tracing::error!(error = %e, event_id = %event.id, "could not log a duplicate");
                    }
                    return Ok(Reply::json(
                        200,
                        json!({"status": "duplicate", "event_id": original_event_id}),
                    )
                    .with_header("inlet-duplicate", "true"));
                }
                ClaimOutcome::InFlight { retry_after_ms, .. } => {
                    return Err(IngestError::InProgress {
                        retry_after_secs: (retry_after_ms.max(1) as u64).div_ceil(1000),
                    });
                }
            }
        }

        // Steps 6 and 7: record, dispatch, complete.
        let mappings = env
            .mappings
            .get(&event_type)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        event.actions = plan_actions(mappings, &roots);
        let runnable = event.actions.iter().filter(|a| a.skipped.is_none()).count();
        if let Err(e) = self.events.record(&event).await {
            self.release(scope.as_ref(), &event.id).await;
            return Err(IngestError::Unavailable {
                detail: format!("recording event {}: {e}", event.id),
            });
        }
        if runnable > 0
            && let Err(e) = self.dispatcher.dispatch(&event).await
        {
            let detail = format!("dispatching event {}: {e}", event.id);
            if let Err(mark) = self.events.mark_failed(&event.id, &detail).await {
                tracing::error!(error = %mark, event_id = %event.id, "could not mark event failed");
            }
            self.release(scope.as_ref(), &event.id).await;
            return Err(IngestError::Unavailable { detail });
        }
        if let Some(scope) = &scope
            && let Err(e) = self
                .idempotency
                .complete(scope, &event.id, self.clock.now_ms())
                .await
        {
            tracing::warn!(error = %e, event_id = %event.id, "could not complete the idempotency claim; it expires in-progress");
        }
        tracing::info!(source = %event.source, environment = %event.environment, event_id = %event.id, %event_type, actions = runnable, "event accepted");
        Ok(Reply::json(
            202,
            json!({"status": "accepted", "event_id": event.id, "event_type": event_type, "actions": runnable}),
        ))
    }

    /// The idempotency scope for this event, or `None` (with a warning on the event)
    /// when idempotency is off or the key is missing or invalid.
    fn idempotency_scope(
        &self,
        route: &Route,
        env: &EnvironmentConfig,
        roots: &PathRoots<'_>,
        event_type: &str,
        event: &mut EventRecord,
    ) -> Option<IdempotencyScope> {
        let settings = &env.idempotency;
        let path: &FieldPath = settings.key_path.as_ref().filter(|_| settings.enabled)?;
        let key = path.resolve(roots).and_then(scalar_string);
        let problem = match &key {
            None => Some(format!("`{path}` has no string or integer value")),
            Some(k) if k.chars().count() > defaults::MAX_IDEMPOTENCY_KEY_CHARS => Some(format!(
                "`{path}` is longer than {} characters",
                defaults::MAX_IDEMPOTENCY_KEY_CHARS
            )),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            let warning = format!("idempotency key {problem}; processed without de-duplication");
            tracing::warn!(source = %route.source.key, "{warning}");
            event.warnings.push(warning);
            return None;
        }
        let key = key?;
        event.idempotency_key = Some(key.clone());
        Some(IdempotencyScope {
            source: route.source.key.clone(),
            environment: route.environment.clone(),
            event_type: event_type.to_string(),
            key,
        })
    }

    async fn record_or_unavailable(&self, event: &EventRecord) -> Result<(), IngestError> {
        self.events
            .record(event)
            .await
            .map_err(|e| IngestError::Unavailable {
                detail: format!("recording event {}: {e}", event.id),
            })
    }

    async fn release(&self, scope: Option<&IdempotencyScope>, event_id: &str) {
        if let Some(scope) = scope
            && let Err(e) = self.idempotency.release(scope, event_id).await
        {
            // The claim then expires by itself after the in-progress timeout.
            tracing::error!(error = %e, event_id, "could not release the idempotency claim");
        }
    }
}

/// A non-empty string, or an integer as its decimal text.
fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// ISO-8601/RFC 3339 text, or unix seconds or milliseconds (numbers or numeric strings;
/// values above 10^11 are taken as milliseconds, i.e. after 1973 in ms / year 5138 in s).
fn parse_timestamp_ms(value: &Value) -> Option<i64> {
    let from_number = |n: f64| -> Option<i64> {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        Some(if n > 1e11 {
            n as i64
        } else {
            (n * 1000.0) as i64
        })
    };
    match value {
        Value::Number(n) => from_number(n.as_f64()?),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .ok()
            .or_else(|| s.parse::<f64>().ok().and_then(from_number)),
        _ => None,
    }
}

fn parse_request(request: InboundRequest) -> Result<Parsed, IngestError> {
    let mut header_list: Vec<(String, String)> = request
        .headers
        .into_iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v))
        .collect();
    header_list.sort_by(|a, b| a.0.cmp(&b.0));
    let mut headers = Map::new();
    for (name, value) in &header_list {
        match headers.get_mut(name) {
            // Repeated headers are joined the way HTTP allows them to be combined.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                headers.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let raw_body = String::from_utf8(request.body).map_err(|e| IngestError::InvalidBody {
        code: "invalid_encoding",
        message: format!(
            "the body is not UTF-8 text (invalid byte at offset {}); send UTF-8 JSON",
            e.utf8_error().valid_up_to()
        ),
    })?;
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = if content_type.starts_with("application/x-www-form-urlencoded") {
        Value::Object(
            form_urlencoded::parse(raw_body.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else if raw_body.trim().is_empty() {
        return Err(IngestError::InvalidBody {
            code: "invalid_json",
            message: "the body is empty; send a JSON document with Content-Type: application/json"
                .into(),
        });
    } else {
        serde_json::from_str(&raw_body).map_err(|e| IngestError::InvalidBody {
            code: "invalid_json",
            message: format!(
                "the body is not valid JSON: {e}; send a JSON document (or a form with Content-Type: application/x-www-form-urlencoded)"
            ),
        })?
    };
    let query = Value::Object(
        form_urlencoded::parse(request.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    );
    Ok(Parsed {
        raw_body,
        body,
        headers: Value::Object(headers),
        header_list,
        query,
    })
}

/// The headers as the event log keeps them: the values of `authorization`, `cookie`,
/// and of names containing token/secret/password/api-key are replaced, and so is any
/// value that contains a var's value (a secret sent as a header, e.g. `Bearer <secret>`).
pub fn redact_headers(headers: &[(String, String)], vars: &Vars) -> Vec<(String, String)> {
    const SENSITIVE: [&str; 7] = [
        "token", "secret", "password", "api-key", "api_key", "apikey", "session",
    ];
    let secrets: Vec<&str> = vars
        .secret_strings()
        .into_iter()
        .filter(|s| s.len() >= 4)
        .collect();
    headers
        .iter()
        .map(|(name, value)| {
            let sensitive_name = name == "authorization"
                || name == "cookie"
                || name == "set-cookie"
                || name == "proxy-authorization"
                || SENSITIVE.iter().any(|s| name.contains(s));
            let holds_secret = secrets.iter().any(|s| value.contains(s));
            let value = if sensitive_name || holds_secret {
                "[redacted]".to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps() {
        assert_eq!(
            parse_timestamp_ms(&json!("2024-09-15T14:30:00Z")),
            Some(1_726_410_600_000)
        );
        assert_eq!(
            parse_timestamp_ms(&json!("2024-09-15T16:30:00+02:00")),
            Some(1_726_410_600_000)
        );
        assert_eq!(
            parse_timestamp_ms(&json!(1_726_410_600)),
            Some(1_726_410_600_000)
        );
        assert_eq!(
            parse_timestamp_ms(&json!(1_726_410_600_123_i64)),
            Some(1_726_410_600_123)
        );
        assert_eq!(
            parse_timestamp_ms(&json!("1726410600")),
            Some(1_726_410_600_000)
        );
        assert_eq!(parse_timestamp_ms(&json!("yesterday")), None);
        assert_eq!(parse_timestamp_ms(&json!(true)), None);
    }

    #[test]
    fn redaction() {
        let vars = Vars::new([("SECRET".to_string(), "hunter22".to_string())]);
        let headers = vec![
            ("authorization".to_string(), "Bearer abc".to_string()),
            ("x-webhook-secret".to_string(), "whatever".to_string()),
            ("x-custom".to_string(), "sig=hunter22".to_string()),
            ("x-api-key".to_string(), "k".to_string()),
            ("content-type".to_string(), "application/json".to_string()),
        ];
        let redacted = redact_headers(&headers, &vars);
        let values: Vec<&str> = redacted.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "[redacted]",
                "[redacted]",
                "[redacted]",
                "[redacted]",
                "application/json"
            ]
        );
    }
}
