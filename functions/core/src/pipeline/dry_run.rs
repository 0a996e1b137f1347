//! Dry runs and replays: [`Pipeline::rehearse`] runs a request through an environment's
//! current config and says what Inlet would answer and log, writing nothing;
//! [`Pipeline::replay`] runs a stored event again as a new event (its verification
//! result kept), idempotent per request key.

use super::{Ending, Evaluated, InboundRequest, Pipeline, Route};
use crate::reply::IngestError;
use crate::store::{
    Committed, EventRecord, EventStatus, IdempotencyClaim, IdempotencyScope, IdempotencyStore,
    VerificationStatus,
};
use serde::Serialize;

/// What a dry run found ([`Pipeline::rehearse`]).
#[derive(Debug, Clone, Serialize)]
pub struct Rehearsal {
    /// Always `true`: nothing was stored.
    pub dry_run: bool,
    /// The status the sender would get.
    pub http_status: u16,
    /// What that answer would say (`accepted`, `duplicate of …`, `unverified: …`).
    pub answer: String,
    /// The event that holds the idempotency key, if this would be its duplicate.
    pub duplicate_of: Option<String>,
    /// The actions that would run (not skipped).
    pub runnable_actions: usize,
    /// The event as it would be logged, with its plan (each action's resolved params
    /// and payload, or why it would be skipped).
    pub event: EventRecord,
}

/// A replayed event ([`Pipeline::replay`]).
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    pub event_id: String,
    pub replay_of: String,
    pub status: EventStatus,
    /// The actions that will run.
    pub actions: usize,
    /// Why the replay did not get as far as its actions, if it did not.
    pub error: Option<String>,
    /// The request key was used before: `event_id` is the replay that request made,
    /// and nothing new was stored.
    pub repeated: bool,
}

/// How long a replay's request key answers the replay it made.
pub const REPLAY_KEY_WINDOW_MS: i64 = 24 * 3_600_000;

impl Pipeline {
    /// A dry run of `request` through `route`'s current config: what Inlet would answer
    /// and log (verification and its reason, the script's console, event type,
    /// timestamp, idempotency key and whether it is held — read from `idempotency` —
    /// and each action with its resolved params or why it would be skipped), writing
    /// nothing. Refused for a production environment.
    pub async fn rehearse(
        &self,
        route: &Route,
        request: InboundRequest,
        idempotency: &dyn IdempotencyStore,
    ) -> Result<Rehearsal, IngestError> {
        if route.env.production {
            return Err(IngestError::ProductionRehearsal {
                source_key: route.source.key.clone(),
                environment: route.environment.clone(),
            });
        }
        let Evaluated { mut event, ending } = self.evaluate(route, request, None).await?;
        let (http_status, answer, duplicate_of) = match ending {
            Ending::Answered(reply) => (
                reply.status,
                "answered by the script's http_response".to_string(),
                None,
            ),
            Ending::Refused(error) => (error.status(), format!("{}: {error}", error.code()), None),
            Ending::NoEventType(message) => (202, format!("invalid_event_type: {message}"), None),
            Ending::Ready { claim, .. } => {
                let held = match &claim {
                    Some(claim) => idempotency
                        .holder(&claim.scope, claim.now_ms)
                        .await
                        .map_err(|e| IngestError::Unavailable {
                            detail: e.to_string(),
                        })?,
                    None => None,
                };
                match held {
                    Some(record) => {
                        event = event.into_duplicate(&record.event_id);
                        (
                            200,
                            format!("duplicate of {}", record.event_id),
                            Some(record.event_id),
                        )
                    }
                    None => (202, "accepted".to_string(), None),
                }
            }
        };
        Ok(Rehearsal {
            dry_run: true,
            http_status,
            answer,
            duplicate_of,
            runnable_actions: event.runnable_actions(),
            event,
        })
    }

    /// Runs a stored event again through `route`'s current config, as a new event that
    /// points to it (`replay_of`): its verification result and occurred time are kept
    /// (the script sees the original's receive time), the replay is received now, the
    /// source's idempotency window is bypassed on purpose (a replay is always
    /// processed), and the original is unchanged. A rejected event is not replayed (its
    /// verification result would reject it again, and its body was kept only in part),
    /// nor a duplicate (the event it repeats is the one to replay).
    ///
    /// `request_key` makes the replay itself idempotent: the same key (for a replay of
    /// the same event) within [`REPLAY_KEY_WINDOW_MS`] answers the replay it made
    /// (`repeated`), so a caller whose answer was lost can ask again without running
    /// the event's actions a second time. Without a key, every call is a new replay.
    pub async fn replay(
        &self,
        route: &Route,
        original: &EventRecord,
        request_key: Option<&str>,
    ) -> Result<Replayed, IngestError> {
        if original.status == EventStatus::Rejected
            || original.verification == VerificationStatus::EnforcedUnverified
        {
            return Err(IngestError::NotReplayable {
                event_id: original.id.clone(),
                reason: "it was rejected (not verified); a replay keeps its verification result, so it would be rejected again".into(),
            });
        }
        if let Some(accepted) = original
            .duplicate_of
            .as_deref()
            .filter(|_| original.status == EventStatus::Duplicate)
        {
            // The sender's repeat of an event: replaying it would run that event's
            // actions once more, as a third copy. The event it repeats is the one to
            // replay.
            return Err(IngestError::NotReplayable {
                event_id: original.id.clone(),
                reason: format!("it is a duplicate of event {accepted}; replay that event instead"),
            });
        }
        let request = InboundRequest {
            method: original.method.clone(),
            headers: original.headers.clone(),
            query: original.query.clone(),
            body: original.raw_body.clone().into_bytes(),
        };
        let Evaluated { event, ending } = self.evaluate(route, request, Some(original)).await?;
        let status = event.status;
        let runnable = event.runnable_actions();
        let error = event.error.clone();
        let claim = request_key.map(|key| {
            let now_ms = self.clock.now_ms();
            IdempotencyClaim {
                scope: IdempotencyScope::replay(original, key),
                now_ms,
                expires_at_ms: now_ms + REPLAY_KEY_WINDOW_MS,
            }
        });
        let mut repeated = false;
        let event_id = match ending {
            Ending::Ready { .. } => match self.commit(event, claim.as_ref()).await? {
                Committed::Stored { event_id } => event_id,
                Committed::Duplicate { original_event_id } => {
                    repeated = true;
                    original_event_id
                }
            },
            _ => {
                let event_id = event.id.clone();
                self.commit(event, None).await?;
                event_id
            }
        };
        tracing::info!(%event_id, replay_of = %original.id, status = status.as_str(), repeated, "event replayed");
        Ok(Replayed {
            event_id,
            replay_of: original.id.clone(),
            status,
            actions: runnable,
            error,
            repeated,
        })
    }
}
