//! Per-source counts as CloudWatch metrics, through the embedded metric format (EMF):
//! one JSON line per outcome in the function's log, which CloudWatch Logs turns into
//! metrics in namespace `Inlet` with the dimensions `Environment` and `Source` — no
//! CloudWatch API call, no extra latency, nothing to pay but the log bytes. The line is
//! a JSON object on stdout, which Lambda passes through as is with the JSON log format
//! the template sets.
//!
//! Metrics: `accepted`, `duplicate`, `rejected`, `invalid_event_type`, `answered`
//! (ingest, from the pipeline's [`Outcome`]), `unavailable` (ingest answered 5xx; the sender
//! retries) and `action_failures` (the actions function, per action that failed for
//! good).

use inlet_core::outcome::Outcome;
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

/// The metric an ingest request counts toward, from what the pipeline decided (requests
/// refused before processing — unknown token, wrong method, too large — count toward
/// none).
pub fn ingest_metric(outcome: Outcome) -> Option<&'static str> {
    match outcome {
        Outcome::Refused => None,
        counted => Some(counted.as_str()),
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
    fn outcomes_map_to_metrics() {
        for (outcome, metric) in [
            (Outcome::Accepted, Some("accepted")),
            (Outcome::Duplicate, Some("duplicate")),
            (Outcome::InvalidEventType, Some("invalid_event_type")),
            (Outcome::Answered, Some("answered")),
            (Outcome::Rejected, Some("rejected")),
            (Outcome::Unavailable, Some("unavailable")),
            (Outcome::Refused, None),
        ] {
            assert_eq!(ingest_metric(outcome), metric, "{outcome:?}");
        }
    }
}
