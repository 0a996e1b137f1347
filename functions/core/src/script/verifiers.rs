//! The `verify_*` helpers: each scheme of [`crate::verify`] as a script function.
//!
//! `verify_stripe(ctx, secret)`, `verify_github`, `verify_standard_webhooks`,
//! `verify_workos`, `verify_shopify`, `verify_slack`, `verify_segment`, `verify_bearer`,
//! `verify_basic` take `ctx` and a secret or an array of secrets (any of them may have
//! signed: rotation), optionally a map of options (`tolerance`, in seconds, default
//! 300); `verify_hmac(ctx, secret, options)` takes the generic scheme's options
//! (`header`, `prefix`, `encoding`: hex|base64, `algorithm`: sha1|sha256|sha512,
//! `signed_content` with `{body}`, `{timestamp}`, `{id}`, `timestamp_header`,
//! `timestamp_unit`: s|ms, `id_header`, `tolerance`). They check `ctx.rawBody` and
//! `ctx.headers` against `ctx.received_at` and return
//! `#{ verified: bool, scheme, reason, detail }` (`reason` and `detail` are `()` when
//! verified), which a script may return as its `verified` directly. The last failure of
//! a run is kept: if the request is refused, the event log stores it as the reason.

use super::{bounds, run_state};
use crate::verify::{
    self, Algorithm, DEFAULT_TOLERANCE_SECS, Encoding, HMAC_OPTION_NAMES, HmacScheme, Scheme,
    SignedRequest, TimestampUnit,
};
use rhai::{Dynamic, Engine, EvalAltResult, Map};

use super::ScriptContext;

type HelperResult<T> = Result<T, Box<EvalAltResult>>;

fn error(helper: &str, problem: impl std::fmt::Display) -> Box<EvalAltResult> {
    format!("{helper}: {problem}").into()
}

/// A secret or an array of secrets, as strings.
fn secrets(helper: &str, secret: Dynamic) -> HelperResult<Vec<String>> {
    let secret = secret.flatten();
    if secret.is_string() {
        return Ok(vec![secret.into_string().expect("checked")]);
    }
    if secret.is_array() {
        let list = secret.cast::<rhai::Array>();
        let strings = list
            .into_iter()
            .map(|item| item.flatten().into_string().ok())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| error(helper, "every secret in the array must be a string"))?;
        if strings.is_empty() {
            return Err(error(helper, "the array of secrets is empty"));
        }
        return Ok(strings);
    }
    Err(error(
        helper,
        format!(
            "the secret must be a string or an array of strings, it was {}",
            secret.type_name()
        ),
    ))
}

fn option_str(options: &Map, key: &str, helper: &str) -> HelperResult<Option<String>> {
    match options.get(key) {
        None => Ok(None),
        Some(value) if value.is_unit() => Ok(None),
        Some(value) => value
            .clone()
            .flatten()
            .into_string()
            .map(Some)
            .map_err(|t| {
                error(
                    helper,
                    format!("option `{key}` must be a string, it was {t}"),
                )
            }),
    }
}

fn tolerance(options: &Map, helper: &str) -> HelperResult<u64> {
    match options.get("tolerance") {
        None => Ok(DEFAULT_TOLERANCE_SECS),
        Some(value) => value
            .as_int()
            .ok()
            .and_then(|seconds| u64::try_from(seconds).ok())
            .ok_or_else(|| {
                error(
                    helper,
                    "option `tolerance` must be a whole number of seconds",
                )
            }),
    }
}

/// The generic scheme from a script's options map.
fn hmac_scheme(options: &Map, helper: &str) -> HelperResult<HmacScheme> {
    let known = |key: &str| key == "tolerance" || HMAC_OPTION_NAMES.contains(&key);
    if let Some(unknown) = options.keys().find(|k| !known(k.as_str())) {
        return Err(error(
            helper,
            format!(
                "unknown option `{unknown}`; known: tolerance, {}",
                HMAC_OPTION_NAMES.join(", ")
            ),
        ));
    }
    let mut scheme = HmacScheme::default();
    if let Some(header) = option_str(options, "header", helper)? {
        scheme.header = header.to_ascii_lowercase();
    }
    if let Some(prefix) = option_str(options, "prefix", helper)? {
        scheme.prefix = prefix;
    }
    if let Some(encoding) = option_str(options, "encoding", helper)? {
        scheme.encoding = parse_encoding(&encoding).map_err(|e| error(helper, e))?;
    }
    if let Some(algorithm) = option_str(options, "algorithm", helper)? {
        scheme.algorithm = parse_algorithm(&algorithm).map_err(|e| error(helper, e))?;
    }
    if let Some(content) = option_str(options, "signed_content", helper)? {
        scheme.signed_content = content;
    }
    scheme.timestamp_header =
        option_str(options, "timestamp_header", helper)?.map(|h| h.to_ascii_lowercase());
    if let Some(unit) = option_str(options, "timestamp_unit", helper)? {
        scheme.timestamp_unit = parse_unit(&unit).map_err(|e| error(helper, e))?;
    }
    scheme.id_header = option_str(options, "id_header", helper)?.map(|h| h.to_ascii_lowercase());
    Ok(scheme)
}

pub(crate) fn parse_encoding(text: &str) -> Result<Encoding, String> {
    match text {
        "hex" => Ok(Encoding::Hex),
        "base64" => Ok(Encoding::Base64),
        other => Err(format!("encoding `{other}` is not hex or base64")),
    }
}

pub(crate) fn parse_algorithm(text: &str) -> Result<Algorithm, String> {
    match text {
        "sha1" => Ok(Algorithm::Sha1),
        "sha256" => Ok(Algorithm::Sha256),
        "sha512" => Ok(Algorithm::Sha512),
        other => Err(format!("algorithm `{other}` is not sha1, sha256 or sha512")),
    }
}

pub(crate) fn parse_unit(text: &str) -> Result<TimestampUnit, String> {
    match text {
        "s" | "seconds" => Ok(TimestampUnit::Seconds),
        "ms" | "milliseconds" => Ok(TimestampUnit::Milliseconds),
        other => Err(format!("timestamp unit `{other}` is not s or ms")),
    }
}

/// Runs one check and turns its outcome into the map scripts get.
fn run(
    helper: &str,
    ctx: &mut ScriptContext,
    scheme: &Scheme,
    secret: Dynamic,
    tolerance: u64,
) -> HelperResult<Map> {
    bounds::time_left()?;
    let secrets = secrets(helper, secret)?;
    let (headers, raw_body, received_at) = ctx.signed_parts();
    let request = SignedRequest {
        headers: &headers,
        body: raw_body.as_bytes(),
        received_at,
    };
    let outcome = verify::verify(scheme, &request, &secrets, tolerance);
    let mut result = Map::new();
    result.insert("verified".into(), outcome.is_ok().into());
    result.insert("scheme".into(), scheme.name().into());
    match outcome {
        Ok(()) => {
            result.insert("reason".into(), Dynamic::UNIT);
            result.insert("detail".into(), Dynamic::UNIT);
        }
        Err(failure) => {
            // The detail names headers and counts, never a secret.
            run_state::record_verify_failure(format!("{}: {failure}", scheme.name()));
            result.insert("reason".into(), failure.reason().into());
            result.insert("detail".into(), failure.to_string().into());
        }
    }
    Ok(result)
}

pub(super) fn register(engine: &mut Engine) {
    let fixed: [(&'static str, Scheme); 9] = [
        ("verify_stripe", Scheme::Stripe),
        ("verify_github", Scheme::Github),
        ("verify_standard_webhooks", Scheme::StandardWebhooks),
        ("verify_workos", Scheme::Workos),
        ("verify_shopify", Scheme::Shopify),
        ("verify_slack", Scheme::Slack),
        ("verify_segment", Scheme::Segment),
        ("verify_bearer", Scheme::Bearer),
        ("verify_basic", Scheme::Basic),
    ];
    for (name, scheme) in fixed {
        let with_default = scheme.clone();
        engine.register_fn(
            name,
            move |ctx: &mut ScriptContext, secret: Dynamic| -> HelperResult<Map> {
                run(name, ctx, &with_default, secret, DEFAULT_TOLERANCE_SECS)
            },
        );
        engine.register_fn(
            name,
            move |ctx: &mut ScriptContext, secret: Dynamic, options: Map| -> HelperResult<Map> {
                if let Some(unknown) = options.keys().find(|k| k.as_str() != "tolerance") {
                    return Err(error(
                        name,
                        format!("unknown option `{unknown}`; the only option is `tolerance`"),
                    ));
                }
                let tolerance = tolerance(&options, name)?;
                run(name, ctx, &scheme, secret, tolerance)
            },
        );
    }
    engine.register_fn(
        "verify_hmac",
        |ctx: &mut ScriptContext, secret: Dynamic, options: Map| -> HelperResult<Map> {
            let scheme = Scheme::Hmac(hmac_scheme(&options, "verify_hmac")?);
            let tolerance = tolerance(&options, "verify_hmac")?;
            run("verify_hmac", ctx, &scheme, secret, tolerance)
        },
    );
}
