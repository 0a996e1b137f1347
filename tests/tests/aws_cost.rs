//! What an event costs in DynamoDB on AWS: the ingest and actions functions run on the
//! emulator, which records every DynamoDB request with its item sizes and prices it by
//! DynamoDB's published rules (tests/emulator/usage.py: 1 write unit per KB of the
//! larger image, twice that in a transaction, another write per global secondary index
//! the item is in; reads per 4 KB). Prints the table per request kind (run with
//! `--nocapture` to see it) and holds each kind to its ceiling, so a change that makes
//! an event dearer fails here.

mod common;

use inlet_core::clock::{Clock, SystemClock};
use serde_json::{Value, json};

const SECRET: &str = "cost-test-secret";

use common::aws::usage;

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Units {
    write: f64,
    index_write: f64,
    read: f64,
    requests: usize,
}

fn units(records: &[Value]) -> Units {
    let mut total = Units::default();
    for r in records {
        total.write += r["write_units"].as_f64().unwrap_or(0.0);
        total.index_write += r["index_write_units"].as_f64().unwrap_or(0.0);
        total.read += r["read_units"].as_f64().unwrap_or(0.0);
        total.requests += 1;
    }
    total
}

fn request(token: &str, body: &str, secret: &str) -> lambda_http::Request {
    let now = SystemClock.now_ms() / 1000;
    let signed =
        inlet_core::verify::sign_headers("github", secret, body.as_bytes(), now, "").unwrap();
    common::aws::apigw_with(token, body, &signed)
}

const SOURCE: &str = r#"key: cost
name: cost
environments:
  development:
    verify: { scheme: github, secret_var: COST_SECRET }
    event_type_path: body.type
    idempotency: { key_path: body.id }
    mappings:
      user.signed_up:
        - action: users_identify
          params:
            id: body.user.id
            email: body.user.email
      task.assigned:
        - action: workflows_trigger
          params:
            key: { value: task-assigned }
            recipients: body.recipients
"#;

#[tokio::test]
async fn write_units_per_event_at_ingest_and_in_the_actions_function() {
    let mut stack = common::aws::Stack::new("cost").await;
    common::aws::put_var(&stack, "COST_SECRET", SECRET).await;
    let (function, tokens) =
        common::aws::ingest_function(&stack, vec![("cost.yaml".into(), SOURCE.into())], &["cost"])
            .await;
    let token = &tokens[0];
    let identify = json!({"id": "evt_identify", "type": "user.signed_up",
                          "user": {"id": "u1", "email": "ada@example.com", "name": "Ada Lovelace"},
                          "padding": "x".repeat(600)})
    .to_string();
    let trigger = json!({"id": "evt_trigger", "type": "task.assigned",
                         "recipients": ["u1", "u2", "u3"], "task": {"id": "t1", "title": "Review the draft"},
                         "padding": "x".repeat(600)})
    .to_string();

    let mut rows: Vec<(&str, Units, Units)> = Vec::new();
    // A first request warms the function's config and vars (read once per container).
    let warm = json!({"id": "evt_warm", "type": "unmapped"}).to_string();
    assert_eq!(
        function
            .handle(request(token, &warm, SECRET))
            .await
            .unwrap()
            .status(),
        202
    );

    for (label, body, secret, status, runs_actions) in [
        ("accepted, users_identify", &identify, SECRET, 202, true),
        (
            "accepted, workflows_trigger to 3",
            &trigger,
            SECRET,
            202,
            true,
        ),
        ("duplicate", &identify, SECRET, 200, false),
        ("rejected (401)", &identify, "not-the-secret", 401, false),
    ] {
        let before = usage(&stack).await.len();
        let response = function.handle(request(token, body, secret)).await.unwrap();
        assert_eq!(response.status(), status, "{label}");
        let after_ingest = usage(&stack).await;
        let ingest = units(&after_ingest[before..]);
        let actions = if runs_actions {
            stack.deliver().await;
            let after_actions = usage(&stack).await;
            units(&after_actions[after_ingest.len()..])
        } else {
            Units::default()
        };
        rows.push((label, ingest, actions));
    }

    println!(
        "| request | ingest writes (table + index) | ingest reads | actions writes (table + index) | actions reads |"
    );
    println!("|---|---|---|---|---|");
    for (label, ingest, actions) in &rows {
        println!(
            "| {label} | {} + {} | {} | {} + {} | {} |",
            ingest.write,
            ingest.index_write,
            ingest.read,
            actions.write,
            actions.index_write,
            actions.read
        );
    }

    // The cost budgets: accepted ≤ 4 write units at ingest, duplicate ≤ 2, rejected ≤ 2;
    // ≤ 3 per simple action in the actions function, a trigger included (its run's two
    // items, each put only if new, and the action log).
    // Reads are held where they are too: the actions function reads the event's
    // partition once (the event with its action log), then the directory.
    let ceilings = [
        ("accepted, users_identify", 4.0, 3.0),
        ("accepted, workflows_trigger to 3", 4.0, 3.0),
        ("duplicate", 2.0, 0.0),
        ("rejected (401)", 2.0, 0.0),
    ];
    let read_ceilings = [(0.5, 3.0), (0.5, 2.5), (1.5, 0.0), (0.0, 0.0)];
    for (
        ((label, ingest, actions), (name, ingest_max, actions_max)),
        (ingest_reads, actions_reads),
    ) in rows.iter().zip(ceilings).zip(read_ceilings)
    {
        assert_eq!(*label, name);
        assert!(
            ingest.read <= ingest_reads && actions.read <= actions_reads,
            "{label}: {} read units at ingest (ceiling {ingest_reads}), {} in the actions function (ceiling {actions_reads})",
            ingest.read,
            actions.read
        );
        let ingest_writes = ingest.write + ingest.index_write;
        let actions_writes = actions.write + actions.index_write;
        assert!(
            ingest_writes > 0.0 && ingest_writes <= ingest_max,
            "{label}: {ingest_writes} write units at ingest, ceiling {ingest_max}"
        );
        assert!(
            actions_writes <= actions_max,
            "{label}: {actions_writes} write units in the actions function, ceiling {actions_max}"
        );
    }
}
