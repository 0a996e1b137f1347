//! Per-source counts as CloudWatch metrics, through the embedded metric format (EMF):
//! one JSON line per outcome in the function's log, which CloudWatch Logs turns into
//! metrics in namespace `Inlet` with the dimensions `Environment` and `Source` — no
//! CloudWatch API call, no extra latency, nothing to pay but the log bytes. The line is
//! a JSON object on stdout, which Lambda passes through as is with the JSON log format
//! the template sets.
//!
//! Metrics: `accepted`, `duplicate`, `rejected`, `invalid_event_type`, `answered`
//! (ingest, from the answer given), `unavailable` (ingest answered 5xx; the sender
//! retries) and `action_failures` (the actions function, per action that failed for
//! good).

use inlet_core::reply::Reply;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "Inlet";

/// The EMF document counting one `metric` for `source`.
pub fn document(environment: &str, source: &str, metric: &str, timestamp_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Environment", "Source"]],
                "Metrics": [{ "Name": metric, "Unit": "Count" }],
            }],
        },
        "Environment": environment,
        "Source": source,
        metric: 1,
    })
}

/// Writes the document to stdout (the function's log), as one line.
pub fn emit(environment: &str, source: &str, metric: &str, timestamp_ms: i64) {
    println!("{}", document(environment, source, metric, timestamp_ms));
}

/// The metric an ingest answer counts toward, read from the answer itself (its status
/// and, for 2xx JSON answers, their `status` field).
pub fn ingest_outcome(reply: &Reply) -> Option<&'static str> {
    match reply.status {
        401 => Some("rejected"),
        500..=599 => Some("unavailable"),
        200..=299 => {
            let body: Value = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
            Some(match body["status"].as_str() {
                Some("accepted") => "accepted",
                Some("duplicate") => "duplicate",
                Some("invalid_event_type") => "invalid_event_type",
                // A source's own answer (a handshake, a challenge).
                _ => "answered",
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_is_what_cloudwatch_reads_as_a_metric() {
        let doc = document("production", "stripe", "accepted", 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "Inlet");
        assert_eq!(directive["Dimensions"], json!([["Environment", "Source"]]));
        assert_eq!(directive["Metrics"][0]["Name"], "accepted");
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        // Every dimension and metric named in the directive is a top-level member.
        assert_eq!(
            (&doc["Environment"], &doc["Source"], &doc["accepted"]),
            (&json!("production"), &json!("stripe"), &json!(1))
        );
        assert!(!doc.to_string().contains('\n'));
    }

    #[test]
    fn answers_map_to_outcomes() {
        let reply = |status, body: Value| Reply {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        };
        assert_eq!(
            ingest_outcome(&reply(202, json!({"status": "accepted"}))),
            Some("accepted")
        );
        assert_eq!(
            ingest_outcome(&reply(200, json!({"status": "duplicate"}))),
            Some("duplicate")
        );
        assert_eq!(
            ingest_outcome(&reply(202, json!({"status": "invalid_event_type"}))),
            Some("invalid_event_type")
        );
        assert_eq!(
            ingest_outcome(&reply(200, json!({"challenge": "x"}))),
            Some("answered")
        );
        assert_eq!(ingest_outcome(&reply(401, json!({}))), Some("rejected"));
        assert_eq!(ingest_outcome(&reply(503, json!({}))), Some("unavailable"));
        assert_eq!(ingest_outcome(&reply(413, json!({}))), None);
    }
}
