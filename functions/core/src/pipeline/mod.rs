//! The ingest pipeline: one request in, one [`Reply`] out (with its [`Outcome`]).
//!
//! Its rooms: `routes.rs` (where a token leads), `request.rs` (reading a request, the
//! redaction of secrets, the timestamp, the bounded body of a rejected request),
//! `verification.rs` (the declared check and the script, inline or on the pool),
//! `dry_run.rs` (rehearsals and replays); this file runs the steps.
//!
//! `Pipeline::process` reads as its steps: route and request checks (404/405/413/400)
//! → verification and preprocessing by the script (401) → event type (202
//! `invalid_event_type` when missing) → timestamp → idempotency scope → action plan →
//! **one commit** → reply (202 accepted, 200 duplicate). Every path that logs an event
//! ends in exactly one call to [`EventLog::commit`], which stores the event, its plan,
//! its idempotency record and its hand-off to the action executor (see the commit's
//! promise in [`crate::store`]). A crash before the commit leaves nothing (the sender
//! got no 2xx, and its retry is processed as new), a crash after it leaves the whole
//! event (the retry is answered as a duplicate of it), and a commit stopped part-way
//! (DynamoDB's few writes) is completed or undone by the next delivery. Nothing is
//! ever "in progress", so a sender never waits for a claim to expire and is never told
//! 409.
//!
//! Failures of the commit: a store that may recover ([`StoreError::Unavailable`]) is
//! answered 503 with `Retry-After` (the retry is processed as new, or as the duplicate
//! of an event whose write applied although its answer was lost); a permanent failure
//! ([`StoreError::Failed`]) is answered 500 `not_stored` without `Retry-After`, and the
//! pipeline stores what it can: the event with status `error`, the reason, and without
//! its action plan (which is what makes an event too large for a store), under an id
//! of its own (named in the answer), so the operator can find and replay it.
//!
//! Decisions made here (docs/http-contract.md documents them):
//! - 404/405/413/400 answers are not written to the event log (no source-level event
//!   exists yet); they are logged with `tracing` at warn level.
//! - A script's `http_response` is sent only if the request passed verification (or
//!   verification is not enforced); such a request is answered by the script and not
//!   processed further or logged as an event (it is a handshake, not an event).
//! - Duplicates are decided inside the commit, not by an earlier claim: two concurrent
//!   deliveries of the same event both run the script, one commits as accepted and the
//!   other as its duplicate (200). There is no `in_progress` claim and no 409 answer:
//!   a claim written before the event is what left events stored with their claim
//!   stuck in progress after a crash.
//! - A rejected (401) request whose log entry cannot be written is still answered 401:
//!   the answer does not depend on the log, and the failure is logged at error level.
//! - `actions` in the 202 body counts the actions that will run (not skipped ones).
//! - A script that reads a var that is not set is a configuration problem, not a bad
//!   request (other script errors are a 401): the sender gets 503 with
//!   `Retry-After`, so its retries succeed once the var is set, and the event is logged
//!   with status `error` and a message naming the var and where to set it.

mod dry_run;
mod request;
mod routes;
mod verification;

pub use dry_run::{REPLAY_KEY_WINDOW_MS, Rehearsal, Replayed};
use verification::Verified;

pub use request::{InboundRequest, REJECTED_BODY_BYTES, redact_headers, redact_query};
use request::{JSON_SENT_AS_FORM, Parsed, Received, parse_request, read_timestamp, scalar_string};
pub use routes::{Route, RouteTable, TokenEntry};

use crate::actions::{forward_action, plan_actions};
use crate::clock::Clock;
use crate::defaults;
use crate::outcome::Outcome;
use crate::path::{FieldPath, PathRoots};
use crate::reply::{IngestError, Reply};
use crate::script::{ScriptEngine, ScriptPool};
use crate::store::{
    CommitError, Committed, EventLog, EventRecord, EventStatus, IdempotencyClaim, IdempotencyScope,
    StoreError,
};
use crate::vars::VarsProvider;
use serde_json::json;
use std::sync::Arc;

/// The target of the log line each request to `/receive` ends in (`event accepted`,
/// `webhook refused`): a server that takes thousands a second can budget these lines
/// apart from the rest (`inlet dev` does).
pub const EVENT_LOG_TARGET: &str = "inlet::event";

#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub max_body_bytes: usize,
    pub retention_days: i64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            max_body_bytes: defaults::MAX_BODY_BYTES,
            retention_days: defaults::RETENTION_DAYS,
        }
    }
}

/// The stores and services the pipeline runs on.
#[derive(Clone)]
pub struct Pipeline {
    pub engine: Arc<ScriptEngine>,
    /// Where each request's one commit goes (the event log, with the idempotency
    /// records and the hand-off to the action executor).
    pub events: Arc<dyn EventLog>,
    pub vars: Arc<dyn VarsProvider>,
    pub clock: Arc<dyn Clock>,
    pub settings: PipelineSettings,
    /// Where scripts run: on a bounded pool of blocking threads (a server with many
    /// requests at once), or, with `None`, inline on the calling task (a Lambda
    /// execution environment, which serves one request at a time; tests; dry runs).
    pub script_pool: Option<Arc<ScriptPool>>,
}

/// An evaluated request: the event as it would be logged, and how its request ends.
struct Evaluated {
    event: EventRecord,
    ending: Ending,
}

enum Ending {
    /// The script answered the sender itself (a handshake): logged, no actions.
    Answered(Reply),
    /// Refused: logged as it stands, answered with this error.
    Refused(IngestError),
    /// No event type: logged, answered 202 `invalid_event_type` with this message.
    NoEventType(String),
    /// To be committed (with its idempotency claim, if any) and answered 202 or 200.
    Ready {
        event_type: String,
        claim: Option<IdempotencyClaim>,
    },
}

/// A request's answer and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    pub reply: Reply,
    pub outcome: Outcome,
}

impl Pipeline {
    /// Handles one request to `/receive/{token}`; `route` is the token's route, if any.
    pub async fn ingest(&self, route: Option<&Route>, request: InboundRequest) -> Ingested {
        match self.process(route, request).await {
            Ok((reply, outcome)) => Ingested { reply, outcome },
            Err(error) => {
                if error.status() < 500 {
                    tracing::warn!(target: EVENT_LOG_TARGET, status = error.status(), code = error.code(), %error, "webhook refused");
                }
                let outcome = Outcome::of_error(error.status());
                Ingested {
                    reply: error.into_reply(),
                    outcome,
                }
            }
        }
    }

    async fn process(
        &self,
        route: Option<&Route>,
        request: InboundRequest,
    ) -> Result<(Reply, Outcome), IngestError> {
        // Step 1: route and request checks; nothing is logged for these.
        let route = route.ok_or(IngestError::UnknownToken)?;
        let Evaluated { event, ending } = self.evaluate(route, request, None).await?;
        let (event_type, claim) = match ending {
            Ending::Answered(reply) => {
                // Logged like any request (a handshake shows in the log), with no actions.
                self.commit(event, None).await?;
                return Ok((reply, Outcome::Answered));
            }
            Ending::Refused(error) => {
                self.log_refused(event).await;
                return Err(error);
            }
            Ending::NoEventType(message) => {
                let event_id = event.id.clone();
                self.commit(event, None).await?;
                let reply = Reply::json(
                    202,
                    json!({"status": "invalid_event_type", "event_id": event_id, "message": message}),
                );
                return Ok((reply, Outcome::InvalidEventType));
            }
            Ending::Ready { event_type, claim } => (event_type, claim),
        };

        // Step 7: the one commit, then the answer.
        let runnable = event.runnable_actions();
        match self.commit(event, claim.as_ref()).await? {
            Committed::Duplicate { original_event_id } => Ok((
                Reply::json(
                    200,
                    json!({"status": "duplicate", "event_id": original_event_id}),
                )
                .with_header("inlet-duplicate", "true"),
                Outcome::Duplicate,
            )),
            Committed::Stored { event_id } => {
                tracing::info!(target: EVENT_LOG_TARGET, source = %route.source.key, environment = %route.environment, %event_id, %event_type, actions = runnable, "event accepted");
                #[derive(serde::Serialize)]
                struct Accepted<'a> {
                    status: &'static str,
                    event_id: &'a str,
                    event_type: &'a str,
                    actions: usize,
                }
                let reply = Reply::json(
                    202,
                    Accepted {
                        status: "accepted",
                        event_id: &event_id,
                        event_type: &event_type,
                        actions: runnable,
                    },
                );
                Ok((reply, Outcome::Accepted))
            }
        }
    }

    /// Steps 2–6 of a request (verification and preprocessing, event type, timestamp,
    /// idempotency scope, action plan): the event as it would be logged and how its
    /// request ends, with nothing stored. With `replay_of`, the request is a stored
    /// event run again: its verification result is kept (the declared check is skipped
    /// and the script's `verified` ignored; the script still preprocesses) and so is its
    /// receive time.
    async fn evaluate(
        &self,
        route: &Route,
        request: InboundRequest,
        replay_of: Option<&EventRecord>,
    ) -> Result<Evaluated, IngestError> {
        let (mut event, parsed) = self.receive(route, request)?;
        let vars =
            self.vars
                .vars(&route.environment)
                .await
                .map_err(|e| IngestError::Unavailable {
                    detail: e.to_string(),
                })?;
        event.headers = redact_headers(std::mem::take(&mut event.headers), &vars);
        event.query = redact_query(&event.query, &vars);
        // A replay runs its script as the original ran (the receive time it read then,
        // for timestamp checks); the replay itself is received now, so that listings by
        // time show it where it happened.
        let replayed_at_ms = event.received_at_ms;
        if let Some(original) = replay_of {
            event.received_at_ms = original.received_at_ms;
            event.occurred_at_ms = original.received_at_ms;
            event.replay_of = Some(original.id.clone());
        }

        // Step 2: verification and preprocessing.
        let preprocess = match self
            .verify(route, &parsed, vars, &mut event, replay_of.is_some())
            .await
        {
            Verified::Passed(preprocess) => preprocess,
            Verified::Answered(reply) => {
                event.status = EventStatus::Answered;
                return Ok(Evaluated {
                    event,
                    ending: Ending::Answered(reply),
                });
            }
            Verified::NotRun(error) => return Err(error),
            Verified::Refused(error) => {
                return Ok(Evaluated {
                    event,
                    ending: Ending::Refused(error),
                });
            }
        };
        if let Some(original) = replay_of {
            event.verification = original.verification;
            event.received_at_ms = replayed_at_ms;
            event.occurred_at_ms = original.occurred_at_ms;
        }
        let roots = PathRoots {
            body: &parsed.body,
            headers: &parsed.headers,
            preprocess: &preprocess,
        };
        let env = &route.env;

        // Step 3: event type.
        if parsed.json_sent_as_form {
            event.warnings.push(JSON_SENT_AS_FORM.to_string());
        }
        let Some(event_type) = env.event_type_path.resolve(&roots).and_then(scalar_string) else {
            let mut message = format!(
                "no event type: `{}` has no string value in this event",
                env.event_type_path
            );
            if parsed.json_sent_as_form {
                message = format!("{message}; {JSON_SENT_AS_FORM}");
            }
            event.status = EventStatus::InvalidEventType;
            event.warnings.push(message.clone());
            return Ok(Evaluated {
                event,
                ending: Ending::NoEventType(message),
            });
        };

        // Step 4: timestamp.
        read_timestamp(env, &roots, &mut event);

        // Step 5: idempotency scope; step 6: the action plan.
        let claim = self.idempotency_claim(route, &roots, &event_type, &mut event);
        let mappings = env.mappings.get(&event_type).map_or(&[][..], Vec::as_slice);
        event.actions = plan_actions(mappings, &roots);
        if let Some(bus) = &env.forward_to_event_bus {
            event.actions.push(forward_action(event.actions.len(), bus));
        }
        event.event_type = Some(event_type.clone());
        Ok(Evaluated {
            event,
            ending: Ending::Ready { event_type, claim },
        })
    }

    /// Checks the method and the body size, parses the body, and starts the event's log
    /// record (headers not yet redacted: that needs the vars).
    fn receive(
        &self,
        route: &Route,
        request: InboundRequest,
    ) -> Result<(EventRecord, Parsed), IngestError> {
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
        let mut method = request.method;
        method.make_ascii_uppercase();
        let Received {
            raw_body,
            header_list,
            parsed,
        } = parse_request(request.headers, &request.query, request.body)?;
        let retention_ms = self.settings.retention_days * 86_400_000;
        let event = EventRecord {
            method,
            query: request.query,
            headers: header_list,
            raw_body,
            ..EventRecord::received(
                &route.source.key,
                &route.environment,
                received_at_ms,
                received_at_ms + retention_ms,
            )
        };
        Ok((event, parsed))
    }

    /// Logs a refused request (401, or 503 for a missing var). The answer does not
    /// depend on it, so a failure to log is itself logged, at error level.
    async fn log_refused(&self, event: EventRecord) {
        if let Err(failed) = self.events.commit(event, None).await {
            tracing::error!(error = %failed.error, event_id = %failed.event.id, status = failed.event.status.as_str(), "could not log a refused request");
        }
    }

    /// The one commit of an event, with its failures turned into answers: 503 when the
    /// store may recover (nothing was stored, so the retry is processed as new), 500
    /// `not_stored` when the store refused the event for good, after storing what it
    /// can (the event as `error`, with the reason and without its plan).
    async fn commit(
        &self,
        event: EventRecord,
        claim: Option<&IdempotencyClaim>,
    ) -> Result<Committed, IngestError> {
        let CommitError { error, event } = match self.events.commit(event, claim).await {
            Ok(committed) => return Ok(committed),
            Err(failed) => failed,
        };
        let event_id = event.id.clone();
        match error {
            StoreError::Unavailable(detail) => Err(IngestError::Unavailable {
                detail: format!("committing event {event_id}: {detail}"),
            }),
            StoreError::Failed(detail) => {
                let reason = format!("the event could not be stored as received: {detail}");
                let logged = event.into_error(reason);
                let logged_id = logged.id.clone();
                if let Err(again) = self.events.commit(logged, None).await {
                    tracing::error!(%event_id, error = %again.error, "could not log the failure either");
                }
                Err(IngestError::NotStored {
                    event_id: logged_id,
                    detail,
                })
            }
        }
    }

    /// The idempotency record this event claims in its commit, or `None` (with a warning
    /// on the event) when idempotency is off or the key is missing or invalid.
    fn idempotency_claim(
        &self,
        route: &Route,
        roots: &PathRoots<'_>,
        event_type: &str,
        event: &mut EventRecord,
    ) -> Option<IdempotencyClaim> {
        let settings = &route.env.idempotency;
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
        let now_ms = self.clock.now_ms();
        Some(IdempotencyClaim {
            scope: IdempotencyScope {
                source: route.source.key.clone(),
                environment: route.environment.clone(),
                event_type: event_type.to_string(),
                key,
            },
            now_ms,
            expires_at_ms: now_ms + settings.window_secs as i64 * 1000,
        })
    }
}

#[cfg(test)]
mod pipeline_tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::config::load_dir;
    use crate::memory::{MemoryStore, StaticVars};
    use crate::script::ScriptLimits;
    use crate::store::{
        ActionLogEntry, ActionUpdate, CommitResult, EventPage, EventQuery, EventTypeStats,
        VerificationStatus,
    };
    use crate::vars::Vars;
    use async_trait::async_trait;
    use serde_json::Value;

    /// A memory store whose commits can be made to fail, once each time it is armed.
    #[derive(Default)]
    struct Flaky {
        inner: MemoryStore,
        fail_next: std::sync::Mutex<Option<StoreError>>,
    }

    impl Flaky {
        fn fail_next_commit(&self, error: StoreError) {
            *self.fail_next.lock().unwrap() = Some(error);
        }
    }

    #[async_trait]
    impl EventLog for Flaky {
        async fn commit(
            &self,
            event: EventRecord,
            claim: Option<&IdempotencyClaim>,
        ) -> CommitResult {
            if let Some(error) = self.fail_next.lock().unwrap().take() {
                return Err(CommitError::new(error, event));
            }
            self.inner.commit(event, claim).await
        }
        async fn get(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
            self.inner.get(id).await
        }
        async fn event_types(&self, s: &str, e: &str) -> Result<Vec<EventTypeStats>, StoreError> {
            self.inner.event_types(s, e).await
        }
        async fn list(&self, q: &EventQuery) -> Result<EventPage, StoreError> {
            self.inner.list(q).await
        }
        async fn action_log(&self, id: &str) -> Result<Vec<ActionLogEntry>, StoreError> {
            self.inner.action_log(id).await
        }
        async fn update_action(&self, id: &str, u: &ActionUpdate) -> Result<(), StoreError> {
            self.inner.update_action(id, u).await
        }
    }

    const YAML: &str = r#"
key: shop
name: Shop
environments:
  development:
    script: shop.rhai
    enforce_verification: ENFORCE
    event_type_path: body.type
    idempotency: { key_path: body.id }
    mappings:
      order.paid:
        - action: users_identify
          params: { id: body.user }
"#;

    struct Harness {
        pipeline: Pipeline,
        store: Arc<Flaky>,
        clock: Arc<ManualClock>,
        route: Route,
        _dir: tempfile::TempDir,
    }

    impl Harness {
        /// The answer to a request with `body`.
        async fn send(&self, body: &str) -> Reply {
            self.pipeline
                .ingest(Some(&self.route), request(body))
                .await
                .reply
        }
    }

    fn harness(script: &str, enforce: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shop.yaml"),
            YAML.replace("ENFORCE", &enforce.to_string()),
        )
        .unwrap();
        std::fs::write(dir.path().join("shop.rhai"), script).unwrap();
        let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
        let catalog = load_dir(dir.path(), &engine).unwrap();
        let store = Arc::new(Flaky::default());
        let clock = Arc::new(ManualClock::new(1_700_000_000_000));
        let pipeline = Pipeline {
            engine,
            events: store.clone(),
            vars: Arc::new(StaticVars::default()),
            clock: clock.clone(),
            settings: PipelineSettings::default(),
            script_pool: None,
        };
        Harness {
            route: Route::of(&catalog, "shop", "development").unwrap(),
            pipeline,
            store,
            clock,
            _dir: dir,
        }
    }

    fn request(body: &str) -> InboundRequest {
        InboundRequest {
            method: "POST".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            query: String::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    const PAID: &str = r#"{"type": "order.paid", "id": "o1", "user": "u1"}"#;
    const OK_SCRIPT: &str = "fn main(ctx) { #{ verified: true, tag: 1 } }";

    #[tokio::test]
    async fn an_unavailable_store_answers_503_stores_nothing_and_the_retry_succeeds() {
        let h = harness(OK_SCRIPT, true);
        h.store
            .fail_next_commit(StoreError::Unavailable("disk full".into()));
        let ingested = h.pipeline.ingest(Some(&h.route), request(PAID)).await;
        assert_eq!(ingested.outcome, Outcome::Unavailable);
        let reply = ingested.reply;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("5"));
        assert!(h.store.inner.events().is_empty());
        let ingested = h.pipeline.ingest(Some(&h.route), request(PAID)).await;
        assert_eq!(ingested.outcome, Outcome::Accepted);
        let reply = ingested.reply;
        assert_eq!(reply.status, 202, "{}", reply.body);
        let events = h.store.inner.events();
        assert_eq!(events.len(), 1);
        assert_eq!(h.store.inner.queued(), [(events[0].id.clone(), false)]);
    }

    #[tokio::test]
    async fn a_permanent_failure_answers_500_and_stores_the_event_as_error_without_its_plan() {
        let h = harness(OK_SCRIPT, true);
        h.store
            .fail_next_commit(StoreError::Failed("item too large".into()));
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("retry-after"), None);
        let body: Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], "not_stored");
        assert!(!reply.body.contains("too large"), "details stay in the log");
        let events = h.store.inner.events();
        assert_eq!(events.len(), 1, "what could be stored was");
        let logged = &events[0];
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&logged.id)
        );
        assert_eq!(logged.status, EventStatus::Error);
        assert!(logged.actions.is_empty());
        assert_eq!(logged.raw_body, PAID);
        assert!(
            logged.error.as_deref().unwrap().contains("item too large"),
            "{:?}",
            logged.error
        );
        assert!(h.store.inner.queued().is_empty(), "nothing runs for it");
        // It holds no idempotency record: a retry (should the cause go away) is new.
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
    }

    #[tokio::test]
    async fn idempotency_window_expires_with_the_clock() {
        let h = harness(OK_SCRIPT, true);
        assert_eq!(h.send(PAID).await.status, 202);
        h.clock.advance_ms(24 * 3600 * 1000 - 1);
        assert_eq!(h.send(PAID).await.status, 200);
        h.clock.advance_ms(1);
        assert_eq!(h.send(PAID).await.status, 202);
    }

    #[tokio::test]
    async fn script_errors_reject_when_enforced_and_are_logged_when_not() {
        let broken = "fn main(ctx) { throw \"kaboom\"; }";
        let h = harness(broken, true);
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 401);
        assert!(
            !reply.body.contains("kaboom"),
            "script internals stay in the log"
        );
        let logged = &h.store.inner.events()[0];
        assert_eq!(logged.status, EventStatus::Rejected);
        assert!(logged.error.as_deref().unwrap().contains("kaboom"));

        let h = harness(broken, false);
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 202);
        let logged = &h.store.inner.events()[0];
        assert_eq!(
            logged.verification,
            VerificationStatus::UnenforcedUnverified
        );
        assert_eq!(logged.preprocess, None);
        assert!(logged.error.as_deref().unwrap().contains("kaboom"));
    }

    #[tokio::test]
    async fn a_missing_var_answers_503_and_logs_which() {
        let mut h = harness(
            "fn main(ctx) { #{ verified: secure_eq(ctx.vars.SHOP_SECRET, \"s\") } }",
            true,
        );
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("5"));
        assert!(!reply.body.contains("SHOP_SECRET"), "{}", reply.body);
        let logged = &h.store.inner.events()[0];
        assert_eq!(logged.status, EventStatus::Error);
        assert_eq!(logged.verification, VerificationStatus::EnforcedUnverified);
        let error = logged.error.as_deref().unwrap();
        assert!(
            error.contains("var `SHOP_SECRET` is not set")
                && error.contains("shop.rhai")
                && error.contains("set var `SHOP_SECRET` for environment `development`"),
            "{error}"
        );
        assert!(h.store.inner.queued().is_empty());

        h.pipeline.vars = Arc::new(StaticVars(Arc::new(Vars::new([(
            "SHOP_SECRET".to_string(),
            "s".to_string(),
        )]))));
        let reply = h.send(PAID).await;
        assert_eq!(reply.status, 202, "the retry succeeds once the var is set");
    }

    #[tokio::test]
    async fn http_response_answers_handshakes() {
        let h = harness(
            r#"fn main(ctx) { #{ verified: true, http_response: #{ status: 200, headers: #{ "x-echo": "1" }, body: ctx.body.challenge } } }"#,
            true,
        );
        let reply = h.send(r#"{"challenge": "abc"}"#).await;
        assert_eq!(
            (reply.status, reply.body.as_str(), reply.header("x-echo")),
            (200, "abc", Some("1"))
        );
        // Logged as answered, with nothing queued.
        let events = h.store.inner.events();
        // What a source answers is its own: a body that reads like Inlet's "accepted"
        // is still an answer of the source's (what the metrics count).
        let h2 = harness(
            r#"fn main(ctx) { #{ verified: true, http_response: #{ status: 202, body: `{"status":"accepted"}` } } }"#,
            true,
        );
        let ingested = h2.pipeline.ingest(Some(&h2.route), request(PAID)).await;
        assert_eq!(ingested.reply.body, r#"{"status":"accepted"}"#);
        assert_eq!(ingested.outcome, Outcome::Answered);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].status, EventStatus::Answered);
        assert!(events[0].actions.is_empty() && !events[0].is_queued());
    }

    #[tokio::test]
    async fn integer_keys_dedupe_and_overlong_keys_do_not() {
        let h = harness(OK_SCRIPT, true);
        let numeric = r#"{"type": "order.paid", "id": 42, "user": "u1"}"#;
        assert_eq!(h.send(numeric).await.status, 202);
        assert_eq!(h.send(numeric).await.status, 200);
        let long = format!(
            r#"{{"type": "order.paid", "id": "{}", "user": "u1"}}"#,
            "k".repeat(256)
        );
        assert_eq!(h.send(&long).await.status, 202);
        assert_eq!(h.send(&long).await.status, 202);
        let last = h.store.inner.events().pop().unwrap();
        assert_eq!(last.idempotency_key, None);
        assert!(last.warnings[0].contains("longer than 255 characters"));
    }
}
