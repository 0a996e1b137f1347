//! The schemes that take more than one header and a digest: Stripe's and WorkOS's
//! (`t=…,v1=…`), Slack's (a timestamp header, then the body), Standard Webhooks' (Svix,
//! Clerk: id, timestamp and `v1,` signatures), and the configurable HMAC scheme.

use super::{
    Algorithm, HmacScheme, SignedRequest, TimestampUnit, VerifyFailure, check_time, decode, mac,
    match_any, mismatch, parse_timestamp, render,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use subtle::ConstantTimeEq;

/// Stripe's and WorkOS's scheme: `t=<timestamp>,v1=<hex>` in `header`, HMAC-SHA256 of
/// `{t}.{body}`; they differ in the timestamp's unit.
pub(super) fn timestamp_then_body(
    request: &SignedRequest<'_>,
    secrets: &[String],
    tolerance_secs: u64,
    header: &str,
    unit: TimestampUnit,
) -> Result<(), VerifyFailure> {
    let text = request.require(header)?;
    let (timestamp, signatures) = timestamp_and_v1(text, header)?;
    let value = parse_timestamp(timestamp, header)?;
    let head = format!("{timestamp}.");
    match_any(secrets, &signatures, |secret| {
        mac(
            Algorithm::Sha256,
            secret.as_bytes(),
            &[head.as_bytes(), request.body],
        )
    })
    .map_err(|()| mismatch(header))?;
    check_time(value, unit, request, tolerance_secs)
}

/// `t=<timestamp>,v1=<hex>[,v1=<hex>...]` (spaces around parts allowed; other schemes
/// ignored; a `v1` that is not hex simply matches nothing).
pub(super) fn timestamp_and_v1<'h>(
    header: &'h str,
    name: &str,
) -> Result<(&'h str, Vec<Vec<u8>>), VerifyFailure> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = Some(value.trim()),
            Some(("v1", value)) => signatures.extend(hex::decode(value.trim()).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp
        .ok_or_else(|| VerifyFailure::BadFormat(format!("`{name}` has no `t=` timestamp")))?;
    if signatures.is_empty() {
        return Err(VerifyFailure::BadFormat(format!(
            "`{name}` has no `v1=` signature in hex"
        )));
    }
    Ok((timestamp, signatures))
}

pub(super) fn standard_webhooks(
    request: &SignedRequest<'_>,
    secrets: &[String],
    tolerance_secs: u64,
) -> Result<(), VerifyFailure> {
    // The Standard Webhooks names, or Svix's (Clerk and other Svix users send these).
    let family = if request.header("webhook-id").is_none() && request.header("svix-id").is_some() {
        "svix"
    } else {
        "webhook"
    };
    let id = request.require(&format!("{family}-id"))?;
    let timestamp_name = format!("{family}-timestamp");
    let timestamp = request.require(&timestamp_name)?.trim();
    let signature_name = format!("{family}-signature");
    let header = request.require(&signature_name)?;
    let seconds = parse_timestamp(timestamp, &timestamp_name)?;
    let signed_with = |version: &str| -> Vec<Vec<u8>> {
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix(version))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .collect()
    };
    let (symmetric, asymmetric) = (signed_with("v1,"), signed_with("v1a,"));
    if symmetric.is_empty() && asymmetric.is_empty() {
        return Err(VerifyFailure::BadFormat(format!(
            "`{signature_name}` has no `v1,<base64>` or `v1a,<base64>` signature"
        )));
    }
    let head = format!("{id}.{timestamp}.");
    // `whpk_` secrets are ed25519 public keys (`v1a`); the others HMAC keys (`v1`).
    let (public_keys, hmac_secrets): (Vec<&String>, Vec<&String>) =
        secrets.iter().partition(|s| s.starts_with("whpk_"));
    for key in public_keys {
        let bytes: [u8; 32] = STANDARD
            .decode(&key["whpk_".len()..])
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                VerifyFailure::BadSecret(
                    "a `whpk_` key is base64 of a 32-byte ed25519 public key; this one is not"
                        .into(),
                )
            })?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| {
            VerifyFailure::BadSecret("the `whpk_` key is not a valid ed25519 public key".into())
        })?;
        let message = [head.as_bytes(), request.body].concat();
        let verified = asymmetric.iter().any(|signature| {
            ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|signature| key.verify_strict(&message, &signature).is_ok())
        });
        if verified {
            return check_time(seconds, TimestampUnit::Seconds, request, tolerance_secs);
        }
    }
    let signatures = symmetric;
    let keys = hmac_secrets
        .iter()
        .map(|secret| {
            let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
            STANDARD.decode(encoded).map_err(|_| {
                VerifyFailure::BadSecret(
                    "a Standard Webhooks secret is `whsec_` followed by base64; this one is not base64"
                        .into(),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let matched = keys.iter().any(|key| {
        let expected = mac(Algorithm::Sha256, key, &[head.as_bytes(), request.body]);
        signatures
            .iter()
            .any(|given| bool::from(expected.ct_eq(given)))
    });
    if !matched {
        return Err(mismatch(&signature_name));
    }
    check_time(seconds, TimestampUnit::Seconds, request, tolerance_secs)
}

pub(super) fn generic_hmac(
    options: &HmacScheme,
    request: &SignedRequest<'_>,
    secrets: &[String],
    tolerance_secs: u64,
) -> Result<(), VerifyFailure> {
    let header = request.require(&options.header)?.trim();
    let encoded = header
        .strip_prefix(options.prefix.as_str())
        .ok_or_else(|| {
            VerifyFailure::BadFormat(format!(
                "`{}` does not start with `{}`",
                options.header, options.prefix
            ))
        })?;
    let signature = decode(options.encoding, encoded, &options.header)?;
    let timestamp = match &options.timestamp_header {
        Some(name) => {
            let text = request.require(name)?.trim();
            Some((text, parse_timestamp(text, name)?))
        }
        None => None,
    };
    let id = match &options.id_header {
        Some(name) => Some(request.require(name)?),
        None => None,
    };
    let signed = render(
        &options.signed_content,
        request.body,
        timestamp.map(|(text, _)| text),
        id,
    );
    match_any(secrets, &[signature], |secret| {
        mac(options.algorithm, secret.as_bytes(), &[&signed])
    })
    .map_err(|()| mismatch(&options.header))?;
    match timestamp {
        Some((_, value)) => check_time(value, options.timestamp_unit, request, tolerance_secs),
        None => Ok(()),
    }
}
