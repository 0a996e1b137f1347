//! How the CLI prints events and times: the column layout of `inlet logs` and of the
//! first line of `inlet event`, shared by every command that shows an event or a time
//! (on the dev server and on a stack alike).

/// A time in milliseconds since the epoch, as the CLI prints it (UTC).
pub fn time_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// The column names above [`event_line`]'s lines.
pub fn event_header() -> String {
    columns([
        "RECEIVED (UTC)",
        "EVENT ID",
        "SOURCE/ENV",
        "EVENT TYPE",
        "STATUS",
        "ACTIONS",
        "VERIFICATION",
    ])
}

/// An event's actions in a column: how many of those to run succeeded, then any failed
/// or still planned (`2/2`, `0/1 1 failed`, `1/3 2 planned`); `-` when it has none.
fn actions_column(counts: &serde_json::Value) -> String {
    let n = |name: &str| counts[name].as_u64().unwrap_or(0);
    let (succeeded, failed, planned) = (n("succeeded"), n("failed"), n("planned"));
    let total = succeeded + failed + planned;
    if total == 0 {
        return "-".into();
    }
    let mut text = format!("{succeeded}/{total}");
    if failed > 0 {
        text.push_str(&format!(" {failed} failed"));
    }
    if planned > 0 {
        text.push_str(&format!(" {planned} planned"));
    }
    text
}

/// One line per event, for `inlet logs`.
pub fn event_line(e: &serde_json::Value) -> String {
    let actions = actions_column(&e["action_counts"]);
    columns([
        &time_of(e["received_at_ms"].as_i64().unwrap_or(0)),
        e["id"].as_str().unwrap_or("?"),
        &format!(
            "{}/{}",
            e["source"].as_str().unwrap_or("?"),
            e["environment"].as_str().unwrap_or("?")
        ),
        e["event_type"].as_str().unwrap_or("-"),
        e["status"].as_str().unwrap_or("?"),
        &actions,
        e["verification"].as_str().unwrap_or("?"),
    ])
}

fn columns(values: [&str; 7]) -> String {
    let [
        received,
        id,
        source,
        event_type,
        status,
        actions,
        verification,
    ] = values;
    let (source, event_type, status, actions) = (
        fit(source, 24),
        fit(event_type, 22),
        fit(status, 18),
        fit(actions, 20),
    );
    format!(
        "{received:<23}  {id:<36}  {source:<24} {event_type:<22} {status:<18} {actions:<20} {verification}"
    )
}

/// `value` cut to `width` characters, its last one `…` when cut, so that a long source
/// name or event type does not push the later columns out from under their header
/// (`inlet event ID` shows the whole value).
fn fit(value: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if value.chars().count() <= width {
        return value.into();
    }
    let mut cut: String = value.chars().take(width - 1).collect();
    cut.push('…');
    cut.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_lines_sit_under_their_header() {
        let line = event_line(&json!({
            "received_at_ms": 1_796_000_000_000i64,
            "id": "01a22fae-49e9-7486-900d-02974c777388",
            "source": "task-app", "environment": "development",
            "event_type": "task.assigned", "status": "accepted",
            "action_counts": {"planned": 0, "succeeded": 2, "failed": 0, "skipped": 1},
            "verification": "enforced:verified",
        }));
        let header = event_header();
        for column in ["EVENT ID", "STATUS", "ACTIONS", "VERIFICATION"] {
            let at = header.find(column).unwrap();
            assert_ne!(&line[at..at + 1], " ", "{column}\n{header}\n{line}");
            assert_eq!(&line[at - 1..at], " ", "{column}\n{header}\n{line}");
        }
        let at = header.find("ACTIONS").unwrap();
        assert_eq!(&line[at..at + 3], "2/2");

        // Long names are cut, so the later columns stay under their header.
        let long = event_line(&json!({
            "received_at_ms": 1_796_000_000_000i64,
            "id": "01a22fae-49e9-7486-900d-02974c777388",
            "source": "customer-billing-notifications", "environment": "production-eu-west",
            "event_type": "invoice.payment_action_required", "status": "rejected:verification_failed",
            "action_counts": {"planned": 0, "succeeded": 0, "failed": 0, "skipped": 0},
            "verification": "enforced:failed",
        }));
        let chars: Vec<char> = long.chars().collect();
        let header: Vec<char> = header.chars().collect();
        let column = |name: &str| {
            let name: Vec<char> = name.chars().collect();
            header
                .windows(name.len())
                .position(|w| w == name.as_slice())
                .unwrap()
        };
        for (name, starts) in [
            ("EVENT TYPE", "invoice.payment_actio…"),
            ("STATUS", "rejected:verifica…"),
            ("ACTIONS", "-"),
            ("VERIFICATION", "enforced:failed"),
        ] {
            let at = column(name);
            let text: String = chars[at..].iter().collect();
            assert!(text.starts_with(starts), "{name}: {long}");
            assert_eq!(chars[at - 1], ' ', "{name}: {long}");
        }
        assert!(long.contains("customer-billing-notifi…"), "{long}");
        assert_eq!(
            actions_column(&json!({"planned": 1, "succeeded": 1, "failed": 1, "skipped": 0})),
            "1/3 1 failed 1 planned"
        );
    }
}
