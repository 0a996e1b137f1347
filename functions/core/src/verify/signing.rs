//! Signing as a sender would: the headers each scheme adds to a body signed with a
//! secret, so `inlet send --sign` (and tests) can post requests [`super::verify`]
//! accepts.

use super::{Algorithm, mac};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The scheme names [`sign_headers`] takes: each of [`SCHEME_NAMES`](super::SCHEME_NAMES) but `hmac`, plus
/// `svix` and `clerk` (Standard Webhooks with the `svix-*` header names).
pub const SIGNING_NAMES: [&str; 12] = [
    "hmac",
    "stripe",
    "github",
    "standard-webhooks",
    "svix",
    "clerk",
    "workos",
    "shopify",
    "slack",
    "segment",
    "bearer",
    "basic",
];

/// The headers a sender using `scheme` adds to `body` signed with `secret` at `now`
/// (unix s), `id` naming the message where the scheme signs one — what [`verify`](super::verify)
/// checks. `inlet send --sign` uses it to post samples the way the provider would.
pub fn sign_headers(
    scheme: &str,
    secret: &str,
    body: &[u8],
    now: i64,
    id: &str,
) -> Result<Vec<(String, String)>, String> {
    let hmac_hex =
        |algorithm, parts: &[&[u8]]| hex::encode(mac(algorithm, secret.as_bytes(), parts));
    let pair = |name: &str, value: String| (name.to_string(), value);
    Ok(match scheme {
        "stripe" => {
            let signature = hmac_hex(Algorithm::Sha256, &[format!("{now}.").as_bytes(), body]);
            vec![pair("stripe-signature", format!("t={now},v1={signature}"))]
        }
        "github" => vec![pair(
            "x-hub-signature-256",
            format!("sha256={}", hmac_hex(Algorithm::Sha256, &[body])),
        )],
        "standard-webhooks" | "svix" | "clerk" => {
            let family = if scheme == "standard-webhooks" {
                "webhook"
            } else {
                "svix"
            };
            let key = STANDARD
                .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
                .map_err(|_| {
                    "a Standard Webhooks secret is `whsec_` followed by base64".to_string()
                })?;
            let signed = mac(
                Algorithm::Sha256,
                &key,
                &[format!("{id}.{now}.").as_bytes(), body],
            );
            vec![
                pair(&format!("{family}-id"), id.to_string()),
                pair(&format!("{family}-timestamp"), now.to_string()),
                pair(
                    &format!("{family}-signature"),
                    format!("v1,{}", STANDARD.encode(signed)),
                ),
            ]
        }
        "workos" => {
            let ms = now * 1000;
            let signature = hmac_hex(Algorithm::Sha256, &[format!("{ms}.").as_bytes(), body]);
            vec![pair("workos-signature", format!("t={ms}, v1={signature}"))]
        }
        "shopify" => vec![pair(
            "x-shopify-hmac-sha256",
            STANDARD.encode(mac(Algorithm::Sha256, secret.as_bytes(), &[body])),
        )],
        "slack" => {
            let signature = hmac_hex(Algorithm::Sha256, &[format!("v0:{now}:").as_bytes(), body]);
            vec![
                pair("x-slack-signature", format!("v0={signature}")),
                pair("x-slack-request-timestamp", now.to_string()),
            ]
        }
        "segment" => vec![pair("x-signature", hmac_hex(Algorithm::Sha1, &[body]))],
        // The generic form a hand-written script checks (the example task-app source):
        // `x-webhook-signature: sha256=<hex HMAC-SHA256 of the raw body>`.
        "hmac" => vec![pair(
            "x-webhook-signature",
            format!("sha256={}", hmac_hex(Algorithm::Sha256, &[body])),
        )],
        "bearer" => vec![pair("authorization", format!("Bearer {secret}"))],
        "basic" => vec![pair(
            "authorization",
            format!("Basic {}", STANDARD.encode(secret)),
        )],
        other => {
            return Err(format!(
                "cannot sign with `{other}`; signing schemes: {}",
                SIGNING_NAMES.join(", ")
            ));
        }
    })
}
