//! Reading what a script returned: a map whose `verified` decides acceptance, whose
//! `http_response` (checked: status, header names and values, no framing headers)
//! answers the sender, and whose other keys become `preprocess.<key>`.

use super::context::dynamic_to_json;
use super::{ScriptErrorKind, ScriptHttpResponse, ScriptOutput, ScriptRunError};
use rhai::Dynamic;
use serde_json::Map;

fn bad_return(message: String, console: Vec<String>) -> ScriptRunError {
    ScriptRunError {
        kind: ScriptErrorKind::BadReturn,
        message,
        console,
    }
}

pub(super) fn read_output(
    value: Dynamic,
    mut console: Vec<String>,
) -> Result<ScriptOutput, ScriptRunError> {
    // A script may return (parts of) `ctx`, which are shared values; read them through.
    let value = value.flatten();
    let type_name = value.type_name();
    let Some(mut map) = value.try_cast::<rhai::Map>() else {
        return Err(bad_return(
            format!(
                "main must return a map such as #{{ verified: true }}, it returned {type_name}"
            ),
            console,
        ));
    };
    let verified = match map.remove("verified").map(Dynamic::flatten) {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => match v.as_bool() {
            Ok(b) => Some(b),
            // What a `verify_*` helper returns: `#{ verified: bool, reason, ... }`.
            Err(_) if v.is_map() => {
                let result = v.cast::<rhai::Map>();
                match result.get("verified").map(Dynamic::as_bool) {
                    Some(Ok(b)) => Some(b),
                    _ => {
                        return Err(bad_return(
                            "`verified` must be true or false (or what a verify_* helper returns), it was a map without a boolean `verified`".into(),
                            console,
                        ));
                    }
                }
            }
            Err(t) => {
                return Err(bad_return(
                    format!("`verified` must be true or false, it was {t}"),
                    console,
                ));
            }
        },
    };
    let http_response = match map.remove("http_response").map(Dynamic::flatten) {
        None => None,
        Some(v) if v.is_unit() => None,
        Some(v) => match read_http_response(v, &mut console) {
            Ok(r) => Some(r),
            Err(message) => return Err(bad_return(message, console)),
        },
    };
    let mut preprocess = Map::new();
    for (key, value) in map {
        match dynamic_to_json(&value) {
            Ok(json) => {
                preprocess.insert(key.to_string(), json);
            }
            Err(e) => {
                return Err(bad_return(
                    format!("`{key}` cannot be turned into JSON: {e}"),
                    console,
                ));
            }
        }
    }
    Ok(ScriptOutput {
        verified,
        verify_failure: None,
        http_response,
        preprocess,
        console,
    })
}

/// Headers that frame the message or concern one connection: the server sets them
/// from the answer it sends, so a script's values (a `content-length` that does not
/// match the body, `transfer-encoding: chunked`, `connection: upgrade`) would break
/// HTTP. They are dropped, with a note in the console.
const FRAMING_HEADERS: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
];

/// An HTTP header name: a non-empty token.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// An HTTP header value: no control characters but tab.
fn is_header_value(value: &str) -> bool {
    value.chars().all(|c| c == '\t' || !c.is_control())
}

fn read_http_response(
    value: Dynamic,
    console: &mut Vec<String>,
) -> Result<ScriptHttpResponse, String> {
    let t = value.type_name();
    let mut map = value.try_cast::<rhai::Map>().ok_or_else(|| {
        format!("`http_response` must be a map #{{status, headers, body}}, it was {t}")
    })?;
    let status = match map.remove("status").map(Dynamic::flatten) {
        None => 200,
        Some(s) => s
            .as_int()
            .ok()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (200..=599).contains(s))
            .ok_or("`http_response.status` must be an integer from 200 to 599 (1xx answers switch protocols, which a webhook endpoint does not)")?,
    };
    let mut headers = Vec::new();
    if let Some(h) = map.remove("headers").map(Dynamic::flatten) {
        let h = h
            .try_cast::<rhai::Map>()
            .ok_or("`http_response.headers` must be a map of strings")?;
        for (name, value) in h {
            let name = name.to_ascii_lowercase();
            let value = value.to_string();
            if !is_header_name(&name) {
                return Err(format!(
                    "`http_response.headers` has `{name}`, which is not an HTTP header name"
                ));
            }
            if !is_header_value(&value) {
                return Err(format!(
                    "`http_response.headers.{name}` holds a control character (a line break?); header values are one line"
                ));
            }
            if FRAMING_HEADERS.contains(&name.as_str()) {
                console.push(format!(
                    "[inlet] dropped `{name}` from http_response: the server sets it for the answer it sends"
                ));
                continue;
            }
            headers.push((name, value));
        }
    }
    let body = match map.remove("body").map(Dynamic::flatten) {
        None => String::new(),
        Some(b) if b.is_string() => b.into_string().unwrap_or_default(),
        Some(b) => {
            let json = dynamic_to_json(&b)
                .map_err(|e| format!("`http_response.body` cannot be turned into JSON: {e}"))?;
            if !headers.iter().any(|(n, _)| n == "content-type") {
                headers.push(("content-type".into(), "application/json".into()));
            }
            json.to_string()
        }
    };
    if matches!(status, 204 | 304) && !body.is_empty() {
        return Err(format!(
            "an http_response with status {status} carries no body; remove `body` or use 200"
        ));
    }
    if let Some(extra) = map.keys().next() {
        return Err(format!(
            "`http_response` has an unknown key `{extra}`; use status, headers and body"
        ));
    }
    Ok(ScriptHttpResponse {
        status,
        headers,
        body,
    })
}
