//! The preset examples (`infra/sources/examples`, one source per preset) with their
//! samples (`events/examples`), served by `inlet dev` and sent with `inlet send --sign`,
//! as docs/verification.md tells a user to try them: each is accepted, verified where the provider
//! signs, with the event type and plan its preset defines; Slack's URL handshake is
//! answered and logged without actions; a request signed with another secret is refused.

mod common;

use common::{Workspace, free_port, inlet_binary, repo_root};
use serde_json::Value;
use std::process::{Command, Stdio};

struct Example {
    preset: &'static str,
    sample: &'static str,
    signed: bool,
    headers: &'static [&'static str],
    event_type: &'static str,
    planned_actions: i64,
}

const EXAMPLES: [Example; 12] = [
    Example {
        preset: "stripe",
        sample: "stripe.json",
        signed: true,
        headers: &[],
        event_type: "customer.created",
        planned_actions: 1,
    },
    Example {
        preset: "github",
        sample: "github.json",
        signed: true,
        headers: &[
            "x-github-event: push",
            "x-github-delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ],
        event_type: "push",
        planned_actions: 0,
    },
    Example {
        preset: "standard-webhooks",
        sample: "standard-webhooks.json",
        signed: true,
        headers: &[],
        event_type: "invoice.paid",
        planned_actions: 0,
    },
    Example {
        preset: "svix",
        sample: "svix.json",
        signed: true,
        headers: &[],
        event_type: "message.sent",
        planned_actions: 0,
    },
    Example {
        preset: "clerk",
        sample: "clerk.json",
        signed: true,
        headers: &[],
        event_type: "user.created",
        planned_actions: 1,
    },
    Example {
        preset: "workos",
        sample: "workos.json",
        signed: true,
        headers: &[],
        event_type: "user.created",
        planned_actions: 0,
    },
    Example {
        preset: "shopify",
        sample: "shopify.json",
        signed: true,
        headers: &[
            "x-shopify-topic: orders/create",
            "x-shopify-webhook-id: b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
        ],
        event_type: "orders/create",
        planned_actions: 0,
    },
    Example {
        preset: "slack",
        sample: "slack.json",
        signed: true,
        headers: &[],
        event_type: "app_mention",
        planned_actions: 0,
    },
    Example {
        preset: "segment",
        sample: "segment.json",
        signed: true,
        headers: &[],
        event_type: "identify",
        planned_actions: 1,
    },
    Example {
        preset: "bearer",
        sample: "bearer.json",
        signed: true,
        headers: &[],
        event_type: "cohort.entered",
        planned_actions: 0,
    },
    Example {
        preset: "supabase",
        sample: "supabase.json",
        signed: false,
        headers: &[],
        event_type: "public.profiles:INSERT",
        planned_actions: 0,
    },
    Example {
        preset: "posthog",
        sample: "posthog.json",
        signed: false,
        headers: &[],
        event_type: "$identify",
        planned_actions: 1,
    },
];

/// `inlet send` against the server; its exit status and what it printed.
fn send(server: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(inlet_binary())
        .arg("send")
        .args(args)
        .args(["--server", server, "--vars"])
        .arg(repo_root().join("infra/vars/examples.json"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn every_preset_example_accepts_its_sample_sent_with_inlet_send() {
    let ws = Workspace::new();
    let port = free_port();
    let mut child = Command::new(inlet_binary())
        .arg("dev")
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .arg("--sources")
        .arg(repo_root().join("infra/sources/examples"))
        .arg("--vars")
        .arg(repo_root().join("infra/vars/examples.json"))
        .arg("--db")
        .arg(ws.db())
        .args(["--no-watch", "--pause-actions"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = format!("http://127.0.0.1:{port}");
    let ready = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert!(ready, "inlet dev did not start");

    let mut failures = Vec::new();
    for example in &EXAMPLES {
        let source = format!("{}-example", example.preset);
        let sample = repo_root().join("events/examples").join(example.sample);
        let mut args = vec![
            sample.to_str().unwrap().to_string(),
            "--source".into(),
            source.clone(),
        ];
        if example.signed {
            args.extend(["--sign".into(), example.preset.to_string()]);
        }
        for header in example.headers {
            args.extend(["-H".into(), header.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, printed) = send(&server, &args);
        if !ok || !printed.starts_with("202") {
            failures.push(format!("{source}: {printed}"));
            continue;
        }
        let logged = ws.query_one(
            "SELECT id, status, verification, event_type FROM events WHERE source = ?1",
            &[&source],
        );
        let expected_verification = if example.signed {
            "enforced:verified"
        } else {
            "none"
        };
        if logged["status"] != "accepted"
            || logged["event_type"] != example.event_type
            || (example.signed && logged["verification"] != expected_verification)
        {
            failures.push(format!("{source}: logged {logged}"));
        }
        let id = logged["id"].as_str().unwrap_or_default().to_string();
        let planned = ws
            .db_conn()
            .query_row(
                "SELECT COUNT(*) FROM actions WHERE event_id = ?1 AND status = 'planned'",
                [&id],
                |r| r.get::<_, i64>(0),
            )
            .unwrap();
        if planned != example.planned_actions {
            failures.push(format!("{source}: {planned} planned actions"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Slack's URL handshake: answered with the challenge, logged, no actions.
    let handshake = repo_root().join("events/examples/slack-url-verification.json");
    let (ok, printed) = send(
        &server,
        &[
            handshake.to_str().unwrap(),
            "--source",
            "slack-example",
            "--sign",
            "slack",
        ],
    );
    assert!(ok && printed.starts_with("200"), "{printed}");
    let answer: Value = serde_json::from_str(printed.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        answer["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    assert_eq!(
        ws.count(
            "SELECT COUNT(*) FROM events WHERE source = 'slack-example' AND status = 'answered'"
        ),
        1
    );

    // Signed with a secret the source does not have: refused, with the reason logged.
    let sample = repo_root().join("events/examples/stripe.json");
    let output = Command::new(inlet_binary())
        .args([
            "send",
            sample.to_str().unwrap(),
            "--source",
            "stripe-example",
            "--sign",
            "stripe",
        ])
        .args(["--server", &server])
        .env("INLET_VAR_STRIPE_WEBHOOK_SECRET", "whsec_someone_else")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() && printed.starts_with("401"),
        "{printed}"
    );
    assert_eq!(
        ws.count("SELECT COUNT(*) FROM events WHERE source = 'stripe-example' AND status = 'rejected' AND error LIKE 'unverified: stripe: signature_mismatch%'"),
        1
    );

    // Shopify without its topic header: logged with no event type, nothing runs, and
    // the command says so and fails (a test that sends it must not pass).
    let sample = repo_root().join("events/examples/shopify.json");
    let output = Command::new(inlet_binary())
        .args([
            "send",
            sample.to_str().unwrap(),
            "--source",
            "shopify-example",
        ])
        .args(["--sign", "shopify", "--server", &server])
        .args([
            "--vars",
            repo_root()
                .join("infra/vars/examples.json")
                .to_str()
                .unwrap(),
        ])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(printed.starts_with("202"), "{printed}");
    assert!(!output.status.success(), "{printed}{said}");
    assert!(
        said.contains("has no event type, so no action runs"),
        "{said}"
    );
    // A scheme `--sign` does not know is named before anything else is asked.
    let output = Command::new(inlet_binary())
        .args([
            "send",
            sample.to_str().unwrap(),
            "--source",
            "shopify-example",
        ])
        .args(["--sign", "nope", "--server", &server])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("cannot sign with `nope`; --sign takes one of: hmac, stripe"),
        "{said}"
    );

    child.kill().unwrap();
    child.wait().unwrap();
}

/// `inlet check --vars` names each var a source needs that the vars do not provide.
#[test]
fn inlet_check_warns_about_vars_nothing_provides() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("vars.json");
    std::fs::write(&empty, "{}").unwrap();
    let examples = repo_root().join("infra/sources/examples");
    let run = |vars: &std::path::Path| {
        let output = Command::new(inlet_binary())
            .arg("check")
            .arg(&examples)
            .arg("--vars")
            .arg(vars)
            .env_remove("INLET_VAR_STRIPE_WEBHOOK_SECRET")
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let warned = run(&empty);
    let lines: Vec<&str> = warned
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    // Every preset that signs needs its secret; supabase and posthog need none.
    assert_eq!(lines.len(), 10, "{warned}");
    assert!(
        warned.contains("`stripe-example/development` needs var `STRIPE_WEBHOOK_SECRET`, which no vars file or INLET_VAR_STRIPE_WEBHOOK_SECRET provides"),
        "{warned}"
    );
    assert_eq!(run(&repo_root().join("infra/vars/examples.json")), "");
}

/// `inlet check` says when a param's text was written as a path (`key: order-shipped`
/// reads a body field that is never there), with the fix; real top-level fields (the
/// examples' `userId`, `traits`) pass quietly.
#[test]
fn inlet_check_warns_about_a_text_written_as_a_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shop.yaml"),
        "key: shop\nname: Shop\nenvironments:\n  development:\n    mappings:\n      order.shipped:\n        - action: workflows_trigger\n          params:\n            key: order-shipped\n            recipients: body.customer\n",
    )
    .unwrap();
    let output = Command::new(inlet_binary())
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    let warned = String::from_utf8_lossy(&output.stderr);
    assert!(
        warned.contains("shop.yaml:7: `shop/development` `order.shipped` → workflows_trigger: param `key: order-shipped` reads the body's top-level field `order-shipped`; if you meant the text, write `key: { value: order-shipped }`"),
        "{warned}"
    );
    let examples = Command::new(inlet_binary())
        .arg("check")
        .arg(repo_root().join("infra/sources/examples"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&examples.stderr), "");
}
