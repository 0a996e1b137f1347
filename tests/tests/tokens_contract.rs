//! One contract for every webhook-token store (`inlet_core::tokens::TokenStore`): the
//! SQLite file of `inlet dev` and a stack's config table (DynamoDB through the real SDK,
//! against the emulator `tests/run` starts). Each check is written once and run on both:
//! a pair gets a token once however often it is ensured; a rotation makes a new current
//! token and retires the pair's others at the end of the overlap, keeping an earlier
//! retirement; a retired token stops working at its time, strictly.

mod common;

use inlet::sqlite::SqliteStore;
use inlet_aws::config_table::ConfigTable;
use inlet_core::clock::SystemClock;
use inlet_core::pipeline::TokenEntry;
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::tokens::{Rotation, TokenStore};
use std::sync::Arc;
use std::time::Duration;

const T0: i64 = 1_800_000_000_000;

fn pair(source: &str, environment: &str) -> (String, String) {
    (source.to_string(), environment.to_string())
}

fn of<'a>(tokens: &'a [TokenEntry], source: &str) -> Vec<&'a TokenEntry> {
    tokens.iter().filter(|t| t.source == source).collect()
}

async fn contract(store: &dyn TokenStore) {
    let pairs = [pair("billing", "development"), pair("crm", "development")];
    assert_eq!(store.ensure(&pairs, T0).await.unwrap(), 2);
    assert_eq!(
        store.ensure(&pairs, T0 + 1).await.unwrap(),
        0,
        "ensured twice"
    );
    let active = store.active(T0 + 2).await.unwrap();
    assert_eq!(active.len(), 2, "{active:?}");
    assert!(active.iter().all(|t| t.retires_at_ms.is_none()));
    assert_ne!(active[0].token, active[1].token);
    assert_eq!(
        (active[0].source.as_str(), active[1].source.as_str()),
        ("billing", "crm"),
        "sorted by source"
    );
    let first = of(&active, "billing")[0].token.clone();
    assert!(first.len() >= 32, "a token of 192 random bits: {first}");

    // A rotation: a new current token, the old one retires after the overlap.
    let rotated = store.rotate(rotation(T0 + 10, 1_000)).await.unwrap();
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    assert_eq!(rotated[0].token, first);
    assert_eq!(rotated[0].retires_at_ms, Some(T0 + 1_010));
    let second = rotated[1].token.clone();
    assert_ne!(second, first);
    assert_eq!(
        rotated[1].retires_at_ms, None,
        "the new one is last and current"
    );
    // Ensuring again creates nothing: the pair has a current token.
    assert_eq!(store.ensure(&pairs, T0 + 20).await.unwrap(), 0);

    // A second rotation before the first overlap ends: the first keeps its earlier
    // time, the second retires at the new overlap's end.
    let again = store.rotate(rotation(T0 + 20, 5_000)).await.unwrap();
    let tokens: Vec<(&str, Option<i64>)> = again
        .iter()
        .map(|t| (t.token.as_str(), t.retires_at_ms))
        .collect();
    assert_eq!(tokens.len(), 3, "{again:?}");
    assert_eq!(
        tokens[..2],
        [
            (first.as_str(), Some(T0 + 1_010)),
            (second.as_str(), Some(T0 + 5_020))
        ]
    );
    assert_eq!(tokens[2].1, None);
    let third = again[2].token.clone();

    // Working until their time, strictly; the current one and the other pair always.
    let billing = |tokens: Vec<TokenEntry>| -> Vec<String> {
        tokens
            .into_iter()
            .filter(|t| t.source == "billing")
            .map(|t| t.token)
            .collect()
    };
    assert_eq!(
        billing(store.active(T0 + 1_009).await.unwrap()),
        [first.clone(), second.clone(), third.clone()],
        "the pair's current token last"
    );
    assert_eq!(
        billing(store.active(T0 + 1_010).await.unwrap()),
        [second.clone(), third.clone()]
    );
    assert_eq!(billing(store.active(T0 + 5_020).await.unwrap()), [third]);
    assert_eq!(of(&store.active(T0 + 9_999).await.unwrap(), "crm").len(), 1);
}

#[tokio::test]
async fn tokens_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("t.db"), Duration::from_secs(5)).unwrap();
    contract(&store).await;
}

#[tokio::test]
async fn tokens_config_table() {
    common::require_emulator();
    let names = inlet_aws::StackNames::for_environment(&common::unique_name("tokens"));
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    inlet_aws::provision::create_table(
        &clients.dynamodb,
        &names.config_table,
        inlet_aws::provision::TableKind::Config,
    )
    .await
    .unwrap();
    let table = ConfigTable::new(
        clients.dynamodb,
        names.config_table,
        Arc::new(ScriptEngine::new(ScriptLimits::default())),
        Arc::new(SystemClock),
    );
    contract(&table).await;
}

/// A rotation of `billing` in development.
fn rotation(now_ms: i64, overlap_ms: i64) -> Rotation<'static> {
    Rotation {
        source: "billing",
        environment: "development",
        now_ms,
        overlap_ms,
    }
}
