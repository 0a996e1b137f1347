//! A request as the pipeline reads it: the [`InboundRequest`] an adapter hands over, its
//! parsing (headers lower-cased and sorted, the body as JSON or a form, the query string),
//! the redaction of secrets from what the log keeps, the event's timestamp, and the
//! bounded body a rejected request keeps.

use crate::config::EnvironmentConfig;
use crate::path::PathRoots;
use crate::reply::IngestError;
use crate::store::EventRecord;
use crate::vars::Vars;
use aho_corasick::AhoCorasick;
use serde_json::{Map, Value};
use std::sync::{Arc, LazyLock};

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

/// A request as read: the raw body and header list the log keeps, and the parsed parts.
pub(super) struct Received {
    pub(super) raw_body: String,
    /// Lower-cased names, sorted; not yet redacted.
    pub(super) header_list: Vec<(String, String)>,
    pub(super) parsed: Parsed,
}

/// The parsed parts of a request that scripts and paths read.
pub(super) struct Parsed {
    pub(super) body: Arc<Value>,
    pub(super) headers: Arc<Value>,
    pub(super) query: Arc<Value>,
    /// The body was read as a form (its Content-Type says so) but is a JSON document:
    /// almost always curl's `--data` without `-H 'content-type: application/json'`.
    pub(super) json_sent_as_form: bool,
}

/// What the event and the answer say when [`Parsed::json_sent_as_form`].
pub(super) const JSON_SENT_AS_FORM: &str = "the body is JSON but was read as a form, because its Content-Type is application/x-www-form-urlencoded (curl's default for --data); send it with Content-Type: application/json";

/// How much of a rejected request's body the log keeps: enough to see what was sent,
/// not enough for a flood of unsigned requests to fill the disk.
pub const REJECTED_BODY_BYTES: usize = 4 * 1024;

/// Trims a rejected event's body to its first [`REJECTED_BODY_BYTES`] (at a character
/// boundary), noting the full size and SHA-256 in a warning.
pub(super) fn keep_bounded_body(event: &mut EventRecord) {
    use sha2::{Digest, Sha256};
    let size = event.raw_body.len();
    if size <= REJECTED_BODY_BYTES {
        return;
    }
    let digest = hex::encode(Sha256::digest(event.raw_body.as_bytes()));
    let mut end = REJECTED_BODY_BYTES;
    while !event.raw_body.is_char_boundary(end) {
        end -= 1;
    }
    event.raw_body.truncate(end);
    event.warnings.push(format!(
        "body of {size} bytes (sha256 {digest}); a rejected request keeps its first {REJECTED_BODY_BYTES} bytes"
    ));
}

/// Sets the event's time from `timestamp_path`, or warns and keeps the receive time.
pub(super) fn read_timestamp(
    env: &EnvironmentConfig,
    roots: &PathRoots<'_>,
    event: &mut EventRecord,
) {
    let Some(path) = &env.timestamp_path else {
        return;
    };
    match path.resolve(roots).map(parse_timestamp_ms) {
        Some(Some(ms)) => event.occurred_at_ms = ms,
        Some(None) => event.warnings.push(format!(
            "`{path}` is not an ISO-8601 time or unix seconds/milliseconds; using the receive time"
        )),
        None => event
            .warnings
            .push(format!("`{path}` has no value; using the receive time")),
    }
}

/// A non-empty string, or an integer as its decimal text.
pub(super) fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// ISO-8601/RFC 3339 text, or unix seconds or milliseconds (numbers or numeric strings;
/// values above 10^11 are taken as milliseconds, i.e. after 1973 in ms / year 5138 in s).
pub(super) fn parse_timestamp_ms(value: &Value) -> Option<i64> {
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

/// Lower-cases and sorts the headers, and parses the body (JSON, or a form) and the
/// query string.
pub(super) fn parse_request(
    headers: Vec<(String, String)>,
    query: &str,
    body: Vec<u8>,
) -> Result<Received, IngestError> {
    let mut header_list: Vec<(String, String)> = headers
        .into_iter()
        .map(|(mut name, value)| {
            name.make_ascii_lowercase();
            (name, value)
        })
        .collect();
    header_list.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header_map = Map::new();
    for (name, value) in &header_list {
        match header_map.get_mut(name) {
            // Repeated headers are joined the way HTTP allows them to be combined.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(value);
            }
            _ => {
                header_map.insert(name.clone(), Value::String(value.clone()));
            }
        }
    }
    let raw_body = String::from_utf8(body).map_err(|e| IngestError::InvalidBody {
        code: "invalid_encoding",
        message: format!(
            "the body is not UTF-8 text (invalid byte at offset {}); send UTF-8 JSON",
            e.utf8_error().valid_up_to()
        ),
    })?;
    const FORM: &str = "application/x-www-form-urlencoded";
    let is_form = header_map
        .get("content-type")
        .and_then(Value::as_str)
        .and_then(|content_type| content_type.get(..FORM.len()))
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(FORM));
    let json_sent_as_form = is_form
        && raw_body.trim_start().starts_with(['{', '['])
        && serde_json::from_str::<serde::de::IgnoredAny>(&raw_body).is_ok();
    let body = if raw_body.trim().is_empty() {
        return Err(IngestError::InvalidBody {
            code: "invalid_json",
            message: "the body is empty; send a JSON document with Content-Type: application/json (or a form)"
                .into(),
        });
    } else if is_form {
        Value::Object(
            form_urlencoded::parse(raw_body.as_bytes())
                .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
                .collect(),
        )
    } else {
        serde_json::from_str(&raw_body).map_err(|e| IngestError::InvalidBody {
            code: "invalid_json",
            message: format!(
                "the body is not valid JSON: {e}; send a JSON document (or a form with Content-Type: application/x-www-form-urlencoded)"
            ),
        })?
    };
    let query = Value::Object(
        form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect(),
    );
    Ok(Received {
        raw_body,
        header_list,
        parsed: Parsed {
            body: Arc::new(body),
            headers: Arc::new(Value::Object(header_map)),
            query: Arc::new(query),
            json_sent_as_form,
        },
    })
}

/// Lower-case name fragments that mark a header or query parameter as sensitive,
/// matched in one pass.
static SENSITIVE_NAMES: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::new([
        "token", "secret", "password", "api-key", "api_key", "apikey", "session",
    ])
    .expect("fixed patterns build")
});

const REDACTED: &str = "[redacted]";

/// The headers as the event log keeps them: the values of `authorization`, `cookie`,
/// and of names containing token/secret/password/api-key are replaced, and so is any
/// value that contains a var's value (a secret sent as a header, e.g. `Bearer <secret>`);
/// a name that contains a var's value is replaced too (a secret sent as a header's
/// name), with its value.
pub fn redact_headers(headers: Vec<(String, String)>, vars: &Vars) -> Vec<(String, String)> {
    headers
        .into_iter()
        .map(|(name, value)| {
            if vars.appears_in(&name) {
                return (REDACTED.to_string(), REDACTED.to_string());
            }
            let sensitive_name = matches!(
                name.as_str(),
                "authorization" | "cookie" | "set-cookie" | "proxy-authorization"
            ) || SENSITIVE_NAMES.is_match(&name);
            if sensitive_name || vars.appears_in(&value) {
                (name, REDACTED.to_string())
            } else {
                (name, value)
            }
        })
        .collect()
}

/// The query string as the event log keeps it, redacted like the headers: the value of
/// a parameter whose name marks it sensitive (the header fragments, and `key`, `sig`,
/// `signature`, `auth`, `code`), or that contains a var's value, is replaced, and a
/// parameter whose name contains a var's value is replaced whole. The rest keeps its
/// original encoding.
pub fn redact_query(query: &str, vars: &Vars) -> String {
    if query.is_empty() {
        return String::new();
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |text: &str| -> String {
                form_urlencoded::parse(format!("x={text}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            let decoded_name = decode(name);
            if vars.appears_in(&decoded_name) {
                // A secret sent as a parameter's name (`?<secret>`).
                return REDACTED.to_string();
            }
            let lower = decoded_name.to_ascii_lowercase();
            let sensitive = SENSITIVE_NAMES.is_match(&lower)
                || matches!(
                    lower.as_str(),
                    "key" | "sig" | "signature" | "auth" | "code"
                );
            if sensitive || vars.appears_in(&decode(value)) {
                format!("{name}={REDACTED}")
            } else {
                pair.to_string()
            }
        })
        .collect();
    redacted.join("&")
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
    fn query_redaction_keeps_the_rest_as_sent() {
        let vars = Vars::new([("SECRET".to_string(), "hunter22".to_string())]);
        assert_eq!(
            redact_query(
                "page=2&access_token=abc&api%5Fkey=z&sig=1&x=hunter22&y=a%20hunter22&q=a%2Bb&flag",
                &vars
            ),
            "page=2&access_token=[redacted]&api%5Fkey=[redacted]&sig=[redacted]&x=[redacted]&y=[redacted]&q=a%2Bb&flag"
        );
        assert_eq!(redact_query("", &vars), "");
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
        let redacted = redact_headers(headers, &vars);
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
