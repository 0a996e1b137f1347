//! The one place where ingest errors become HTTP answers.
//!
//! Every error body is `{"error": {"code": "...", "message": "..."}}`. Messages of 4xx
//! answers tell the sender what was wrong and how to fix it; 5xx answers carry a generic
//! message, and their detail goes to the log only.

use crate::defaults::UNAVAILABLE_RETRY_AFTER_SECS;
use serde_json::json;

/// An HTTP answer, independent of any HTTP library; adapters convert it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl serde::Serialize) -> Self {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_string(&body).expect("reply bodies serialize"),
        }
    }

    /// An error answer: the one place its body, `{"error": {"code", "message"}}`, is
    /// written (the ingest errors below, the admin API's, the dev server's HTTP layer).
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Reply::json(status, json!({"error": {"code": code, "message": message}}))
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The answer as an HTTP response, for every adapter (the dev server, the ingest
    /// function): the one place a [`Reply`] meets the `http` types. Scripts' answers are
    /// checked when they are read (status 200–599, header names and one-line values,
    /// framing headers dropped), so nothing here should fail; if it did, the header is
    /// left out (or the answer becomes a 500) with a warning, never a panic.
    pub fn into_http<B: From<String>>(self) -> http::Response<B> {
        let status = http::StatusCode::from_u16(self.status).unwrap_or_else(|_| {
            tracing::warn!(
                status = self.status,
                "invalid status in a reply; answering 500"
            );
            http::StatusCode::INTERNAL_SERVER_ERROR
        });
        let mut response = http::Response::new(B::from(self.body));
        *response.status_mut() = status;
        for (name, value) in self.headers {
            match (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                (Ok(name), Ok(value)) => {
                    response.headers_mut().append(name, value);
                }
                _ => tracing::warn!(header = %name, "invalid header in a reply; left out"),
            }
        }
        response
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IngestError {
    #[error("no source uses this webhook token")]
    UnknownToken,
    #[error("method {method} is not allowed")]
    MethodNotAllowed { method: String },
    #[error("body larger than {limit_bytes} bytes")]
    PayloadTooLarge { limit_bytes: usize },
    #[error("{message}")]
    InvalidBody { code: &'static str, message: String },
    #[error("request not verified")]
    Unverified,
    /// Every script thread is busy and the queue is full; nothing was processed.
    #[error("busy: {detail}")]
    Busy { detail: String },
    /// A store or vars failure that may pass; `detail` is logged, never sent.
    #[error("service unavailable: {detail}")]
    Unavailable { detail: String },
    /// The event cannot be stored and retrying the same request will not change that
    /// (the store refused it for good); `detail` is logged, never sent. `event_id` names
    /// the event log entry that records the failure, if one could be written.
    #[error("event {event_id} not stored: {detail}")]
    NotStored { event_id: String, detail: String },
    /// A dry run asked of an environment marked `production`.
    #[error("environment `{environment}` of source `{source_key}` is production")]
    ProductionRehearsal {
        source_key: String,
        environment: String,
    },
    /// A replay of an event that cannot be replayed.
    #[error("event {event_id} cannot be replayed: {reason}")]
    NotReplayable { event_id: String, reason: String },
}

impl IngestError {
    pub fn status(&self) -> u16 {
        match self {
            IngestError::UnknownToken => 404,
            IngestError::MethodNotAllowed { .. } => 405,
            IngestError::PayloadTooLarge { .. } => 413,
            IngestError::InvalidBody { .. } => 400,
            IngestError::Unverified => 401,
            IngestError::NotStored { .. } => 500,
            IngestError::ProductionRehearsal { .. } => 403,
            IngestError::NotReplayable { .. } => 409,
            IngestError::Busy { .. } => 503,
            IngestError::Unavailable { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            IngestError::UnknownToken => "unknown_token",
            IngestError::MethodNotAllowed { .. } => "method_not_allowed",
            IngestError::PayloadTooLarge { .. } => "payload_too_large",
            IngestError::InvalidBody { code, .. } => code,
            IngestError::Unverified => "unverified",
            IngestError::NotStored { .. } => "not_stored",
            IngestError::ProductionRehearsal { .. } => "production_environment",
            IngestError::NotReplayable { .. } => "not_replayable",
            IngestError::Busy { .. } => "busy",
            IngestError::Unavailable { .. } => "unavailable",
        }
    }

    /// What the client is told (no 5xx detail: that goes to the log).
    pub fn message(&self) -> String {
        match self {
            IngestError::UnknownToken => {
                "no source uses this webhook URL; copy the URL that `inlet urls` (or `inlet dev` at start) prints".into()
            }
            IngestError::MethodNotAllowed { method } => {
                format!("{method} is not accepted here; webhooks must be sent with POST")
            }
            IngestError::PayloadTooLarge { limit_bytes } => format!(
                "the body is larger than the limit of {limit_bytes} bytes; send smaller events"
            ),
            IngestError::InvalidBody { message, .. } => message.clone(),
            IngestError::Unverified => {
                "the request could not be verified; check the signing secret and signature headers the sender uses".into()
            }
            IngestError::NotStored { event_id, .. } => format!(
                "the event could not be stored, and sending it again will not change that; the operator finds the reason in the log under event id {event_id}"
            ),
            IngestError::Unavailable { .. } => {
                "the event was not accepted right now; retry later".into()
            }
            IngestError::Busy { .. } => {
                "the server is busy with other requests and did not process this one; retry later".into()
            }
            IngestError::ProductionRehearsal {
                source_key,
                environment,
            } => format!(
                "environment `{environment}` of source `{source_key}` is marked production, which is never rehearsed (its script would run with its secrets); rehearse in another environment, or set `production: false` on it in infra/sources/{source_key}.yaml"
            ),
            IngestError::NotReplayable { event_id, reason } => {
                format!("event {event_id} cannot be replayed: {reason}")
            }
        }
    }

    /// The answer for this error. Logs 5xx details.
    pub fn into_reply(self) -> Reply {
        match &self {
            IngestError::Unavailable { detail } => {
                tracing::error!(error = %detail, "ingest unavailable");
            }
            IngestError::NotStored { event_id, detail } => {
                tracing::error!(%event_id, error = %detail, "event not stored (permanent failure)");
            }
            IngestError::Busy { detail } => tracing::warn!(%detail, "request refused: busy"),
            _ => {}
        }
        let reply = Reply::error(self.status(), self.code(), &self.message());
        match self {
            IngestError::MethodNotAllowed { .. } => reply.with_header("allow", "POST"),
            IngestError::Unavailable { .. } | IngestError::Busy { .. } => {
                reply.with_header("retry-after", UNAVAILABLE_RETRY_AFTER_SECS.to_string())
            }
            _ => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_hides_detail_and_sets_retry_after() {
        let reply = IngestError::Unavailable {
            detail: "disk I/O error at /secret/path".into(),
        }
        .into_reply();
        assert_eq!(reply.status, 503);
        assert_eq!(reply.header("retry-after"), Some("5"));
        assert!(!reply.body.contains("/secret/path"));
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], "unavailable");
    }

    #[test]
    fn not_stored_is_a_500_without_retry_after_or_detail() {
        let reply = IngestError::NotStored {
            event_id: "e1".into(),
            detail: "ValidationException: item too large".into(),
        }
        .into_reply();
        assert_eq!((reply.status, reply.header("retry-after")), (500, None));
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["code"], "not_stored");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("e1") && !message.contains("ValidationException"));
    }

    #[test]
    fn method_not_allowed_names_post() {
        let reply = IngestError::MethodNotAllowed {
            method: "GET".into(),
        }
        .into_reply();
        assert_eq!((reply.status, reply.header("allow")), (405, Some("POST")));
    }
}
