//! Signature verification against the providers' own signing libraries.
//!
//! Requests are signed by `tests/providers/sign.py` (stripe, standardwebhooks and
//! slack_sdk from PyPI; Python's hmac for the schemes whose providers publish no signing
//! code) and `tests/providers/github_sign.mjs` (@octokit/webhooks-methods), which
//! tests/run installs. Each scheme, configured declaratively (`verify:`), must accept a
//! genuine request, accept one signed with the previous secret while both are
//! configured (rotation), and reject a tampered body, a wrong secret, a stale and a
//! future timestamp and a missing header, each with its reason in the event log. The
//! script helpers (`verify_stripe(ctx, ...)`) are checked the same way.

mod common;

use common::{Workspace, post, repo_root};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs a signer with `cases` on stdin and returns the header maps it prints.
fn run_signer(mut command: Command, cases: &Value) -> Vec<serde_json::Map<String, Value>> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start the provider signer ({e}); run tests/run, which installs it")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(cases.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the provider signer failed (tests/run installs its libraries): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signed: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    signed
        .into_iter()
        .map(|h| h.as_object().unwrap().clone())
        .collect()
}

/// Headers for each case, from the provider's own library.
fn provider_headers(cases: &[Case]) -> Vec<serde_json::Map<String, Value>> {
    let providers = repo_root().join("tests/providers");
    let (github, others): (Vec<_>, Vec<_>) = cases
        .iter()
        .enumerate()
        .partition(|(_, c)| c.scheme == "github");
    let mut headers = vec![serde_json::Map::new(); cases.len()];
    if !others.is_empty() {
        let mut python = Command::new(repo_root().join(".venv/bin/python"));
        python.arg(providers.join("sign.py"));
        let input =
            json!(
            others
                .iter()
                .map(|(_, c)| json!({"scheme": c.scheme, "secret": c.secret, "body": c.signed_body,
                                     "timestamp": c.timestamp, "id": c.id}))
                .collect::<Vec<_>>()
        );
        for ((index, _), signed) in others.iter().zip(run_signer(python, &input)) {
            headers[*index] = signed;
        }
    }
    if !github.is_empty() {
        let mut node = Command::new("node");
        node.arg(providers.join("github_sign.mjs"));
        let input = json!(
            github
                .iter()
                .map(|(_, c)| json!({"secret": c.secret, "body": c.signed_body}))
                .collect::<Vec<_>>()
        );
        for ((index, _), signed) in github.iter().zip(run_signer(node, &input)) {
            headers[*index] = signed;
        }
    }
    headers
}

struct Case {
    source: String,
    scheme: &'static str,
    what: &'static str,
    secret: String,
    signed_body: String,
    sent_body: String,
    timestamp: i64,
    id: String,
    drop_header: bool,
    /// `None`: accepted (202); else the reason the event log must name.
    rejected_for: Option<&'static str>,
}

/// One provider: its source key, scheme (for the signer), its `verify:` scheme, the
/// secrets it rotates from and to, and whether it signs a timestamp.
struct Provider {
    key: &'static str,
    signer: &'static str,
    scheme: &'static str,
    old: &'static str,
    new: &'static str,
    timestamped: bool,
    /// What signs, when it is not what is configured (ed25519 private keys for the
    /// configured public keys): old, new, and one that is not configured.
    signing: Option<(&'static str, &'static str, &'static str)>,
}

const PROVIDERS: [Provider; 9] = [
    Provider {
        key: "standard-v1a",
        signer: "standard-webhooks-v1a",
        scheme: "standard-webhooks",
        old: "whpk_GAW5oqrehq599zG+ECWK5wrX4pW5ju5GxV59C0I2hoo=",
        new: "whpk_3JDTHwQAsuKSJUlQFDu5IU7Vp0OAVxqUMRNv/klFq8Q=",
        timestamped: true,
        // The seeds "old-ed25519-seed-0123456789abcde", "new-..." and "wrong-ed25519-seed-0123456789abc".
        signing: Some((
            "whsk_b2xkLWVkMjU1MTktc2VlZC0wMTIzNDU2Nzg5YWJjZGU=",
            "whsk_bmV3LWVkMjU1MTktc2VlZC0wMTIzNDU2Nzg5YWJjZGU=",
            "whsk_d3JvbmctZWQyNTUxOS1zZWVkLTAxMjM0NTY3ODlhYmM=",
        )),
    },
    Provider {
        key: "stripe",
        signer: "stripe",
        scheme: "stripe",
        old: "whsec_old_stripe_secret",
        new: "whsec_new_stripe_secret",
        timestamped: true,
        signing: None,
    },
    Provider {
        key: "github",
        signer: "github",
        scheme: "github",
        old: "old-github-secret",
        new: "new-github-secret",
        timestamped: false,
        signing: None,
    },
    Provider {
        key: "standard",
        signer: "standard-webhooks",
        scheme: "standard-webhooks",
        // base64 of "old-standard-key-0123456789" and "new-standard-key-0123456789"
        old: "whsec_b2xkLXN0YW5kYXJkLWtleS0wMTIzNDU2Nzg5",
        new: "whsec_bmV3LXN0YW5kYXJkLWtleS0wMTIzNDU2Nzg5",
        timestamped: true,
        signing: None,
    },
    Provider {
        key: "clerk",
        signer: "svix",
        scheme: "standard-webhooks",
        old: "whsec_b2xkLXN2aXgta2V5LTAxMjM0NTY3ODk=",
        new: "whsec_bmV3LXN2aXgta2V5LTAxMjM0NTY3ODk=",
        timestamped: true,
        signing: None,
    },
    Provider {
        key: "slack",
        signer: "slack",
        scheme: "slack",
        old: "old-slack-signing-secret",
        new: "new-slack-signing-secret",
        timestamped: true,
        signing: None,
    },
    Provider {
        key: "shopify",
        signer: "shopify",
        scheme: "shopify",
        old: "old-shopify-secret",
        new: "new-shopify-secret",
        timestamped: false,
        signing: None,
    },
    Provider {
        key: "segment",
        signer: "segment",
        scheme: "segment",
        old: "old-segment-secret",
        new: "new-segment-secret",
        timestamped: false,
        signing: None,
    },
    Provider {
        key: "workos",
        signer: "workos",
        scheme: "workos",
        old: "old-workos-secret",
        new: "new-workos-secret",
        timestamped: true,
        signing: None,
    },
];

fn var_name(key: &str) -> String {
    format!("{}_SECRET", key.to_ascii_uppercase())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn cases() -> Vec<Case> {
    let now = now();
    let mut cases = Vec::new();
    let mut n = 0;
    for p in &PROVIDERS {
        let mut case = |what, secret: &str, timestamp, tamper: bool, drop_header, rejected_for| {
            n += 1;
            let body = format!(r#"{{"id":"evt_{n}","type":"customer.created","n":{n}}}"#);
            let sent = if tamper {
                body.replace("customer.created", "customer.deleted")
            } else {
                body.clone()
            };
            cases.push(Case {
                source: p.key.to_string(),
                scheme: p.signer,
                what,
                secret: secret.to_string(),
                signed_body: body,
                sent_body: sent,
                timestamp,
                id: format!("msg_{n}"),
                drop_header,
                rejected_for,
            });
        };
        let (old, new) = p.signing.map_or((p.old, p.new), |(old, new, _)| (old, new));
        case("genuine", new, now, false, false, None);
        case(
            "signed with the previous secret",
            old,
            now,
            false,
            false,
            None,
        );
        case(
            "tampered body",
            new,
            now,
            true,
            false,
            Some("signature_mismatch"),
        );
        case(
            "wrong secret",
            if let Some((_, _, another)) = p.signing {
                another
            } else if p.signer == "standard-webhooks" || p.signer == "svix" {
                "whsec_d3Jvbmcta2V5LXdyb25nLWtleQ=="
            } else {
                "not-the-secret"
            },
            now,
            false,
            false,
            Some("signature_mismatch"),
        );
        case(
            "signature header missing",
            new,
            now,
            false,
            true,
            Some("missing_header"),
        );
        if p.timestamped {
            case(
                "stale timestamp",
                new,
                now - 400,
                false,
                false,
                Some("timestamp_out_of_range"),
            );
            case(
                "future timestamp",
                new,
                now + 400,
                false,
                false,
                Some("timestamp_out_of_range"),
            );
        }
    }
    cases
}

/// The signature header a case drops for its "missing" variant.
fn signature_header(headers: &serde_json::Map<String, Value>) -> String {
    headers
        .keys()
        .find(|k| k.contains("signature") || k.contains("hmac") || k.as_str() == "x-signature")
        .cloned()
        .unwrap()
}

fn write_sources(ws: &Workspace) {
    let mut vars = json!({ "TASK_APP_SECRET": common::SECRET });
    for p in &PROVIDERS {
        let var = var_name(p.key);
        std::fs::write(
            ws.sources().join(format!("{}.yaml", p.key)),
            format!(
                "key: {key}\nname: {key}\nenvironments:\n  development:\n    verify: {{ scheme: {scheme}, secret_var: {var}, tolerance: 5m }}\n    script: {key}.rhai\n",
                key = p.key,
                scheme = p.scheme,
            ),
        )
        .unwrap();
        // A script after the declared check: preprocessing only (no `verified`).
        std::fs::write(
            ws.sources().join(format!("{}.rhai", p.key)),
            "fn main(ctx) { #{ checked_by: \"verify\" } }\n",
        )
        .unwrap();
        vars[var] = json!([p.old, p.new]);
    }
    // The script helper, returning its result as `verified`.
    std::fs::write(
        ws.sources().join("scripted.yaml"),
        "key: scripted\nname: scripted\nenvironments:\n  development:\n    script: scripted.rhai\n",
    )
    .unwrap();
    std::fs::write(
        ws.sources().join("scripted.rhai"),
        "fn main(ctx) {\n  let result = verify_stripe(ctx, ctx.vars.STRIPE_SECRET);\n  #{ verified: result, reason_seen: result.reason }\n}\n",
    )
    .unwrap();
    std::fs::write(ws.dir.path().join("vars.json"), vars.to_string()).unwrap();
}

fn last_event(ws: &Workspace, source: &str) -> Value {
    ws.query_one(
        "SELECT status, verification, error, preprocess FROM events WHERE source = ?1 ORDER BY rowid DESC LIMIT 1",
        &[&source],
    )
}

#[tokio::test]
async fn every_scheme_checks_requests_signed_by_the_providers_libraries() {
    let ws = Workspace::new();
    write_sources(&ws);
    let server = ws.start().await;
    let cases = cases();
    let headers = provider_headers(&cases);
    let mut failures = Vec::new();
    for (case, signed) in cases.iter().zip(headers) {
        let mut signed = signed;
        if case.drop_header {
            let name = signature_header(&signed);
            signed.remove(&name);
        }
        let pairs: Vec<(String, String)> = signed
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .chain([("content-type".to_string(), "application/json".to_string())])
            .collect();
        let pairs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let url = server.url(&case.source, "development").unwrap();
        let answer = post(url, &case.sent_body, &pairs).await;
        let logged = last_event(&ws, &case.source);
        let label = format!("{} / {}", case.source, case.what);
        match case.rejected_for {
            None => {
                if answer.status != StatusCode::ACCEPTED
                    || logged["verification"] != "enforced:verified"
                    || logged["preprocess"]["checked_by"] != "verify"
                {
                    failures.push(format!(
                        "{label}: expected 202, got {} {} / {logged}",
                        answer.status, answer.body
                    ));
                }
            }
            Some(reason) => {
                let error = logged["error"].as_str().unwrap_or_default();
                let expected = format!(
                    "unverified: {}: {reason}",
                    PROVIDERS
                        .iter()
                        .find(|p| p.key == case.source)
                        .unwrap()
                        .scheme
                );
                if answer.status != StatusCode::UNAUTHORIZED
                    || logged["status"] != "rejected"
                    || !error.starts_with(&expected)
                {
                    failures.push(format!(
                        "{label}: expected 401 with `{expected}`, got {} / {logged}",
                        answer.status
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(cases.len() >= 57, "{} cases", cases.len());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_script_helper_result_decides_and_its_reason_is_logged() {
    let ws = Workspace::new();
    write_sources(&ws);
    let server = ws.start().await;
    let url = server.url("scripted", "development").unwrap().to_string();
    let body = r#"{"id":"evt_s","type":"invoice.paid"}"#;
    let case = |secret: &str, timestamp| Case {
        source: "scripted".into(),
        scheme: "stripe",
        what: "",
        secret: secret.into(),
        signed_body: body.into(),
        sent_body: body.into(),
        timestamp,
        id: String::new(),
        drop_header: false,
        rejected_for: None,
    };
    let signed = provider_headers(&[
        case("whsec_new_stripe_secret", now()),
        case("whsec_new_stripe_secret", now() - 1000),
    ]);
    let header = |i: usize| signed[i]["stripe-signature"].as_str().unwrap().to_string();

    let ok = post(&url, body, &[("stripe-signature", &header(0))]).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    let logged = last_event(&ws, "scripted");
    assert_eq!(logged["verification"], "enforced:verified");
    assert_eq!(logged["preprocess"]["reason_seen"], Value::Null);

    let stale = post(&url, body, &[("stripe-signature", &header(1))]).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let logged = last_event(&ws, "scripted");
    let error = logged["error"].as_str().unwrap();
    assert!(
        error.starts_with("unverified: stripe: timestamp_out_of_range: the signed timestamp is 10")
            && error.contains("s before the receive time; at most 300 s is accepted"),
        "{error}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn form_encoded_bodies_are_verified_over_their_raw_bytes_and_read_as_a_map() {
    let ws = Workspace::new();
    write_sources(&ws);
    std::fs::write(
        ws.sources().join("slash.yaml"),
        "key: slash\nname: slash commands\nenvironments:\n  development:\n    verify: { scheme: slack, secret_var: SLACK_SECRET }\n    event_type_path: body.command\n",
    )
    .unwrap();
    let server = ws.start().await;
    let url = server.url("slash", "development").unwrap().to_string();
    // A Slack slash command: form-encoded, signed over the bytes as sent.
    let body = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&command=%2Fdeploy&text=prod+now&user_id=U2147483697";
    let signed = provider_headers(&[Case {
        source: "slash".into(),
        scheme: "slack",
        what: "",
        secret: "new-slack-signing-secret".into(),
        signed_body: body.into(),
        sent_body: body.into(),
        timestamp: now(),
        id: String::new(),
        drop_header: false,
        rejected_for: None,
    }]);
    let headers: Vec<(String, String)> = signed[0]
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .chain([(
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        )])
        .collect();
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let answer = post(&url, body, &pairs).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.body);
    let logged = ws.query_one(
        "SELECT event_type, verification FROM events WHERE source = 'slash'",
        &[],
    );
    assert_eq!(logged["event_type"], "/deploy");
    assert_eq!(logged["verification"], "enforced:verified");

    // The same fields in another order are other bytes: refused.
    let reordered = "team_id=T0001&token=gIkuvaNzQIHg97ATvDxqgjtO&command=%2Fdeploy&text=prod+now&user_id=U2147483697";
    let answer = post(&url, reordered, &pairs).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    server.shutdown().await.unwrap();
}
