//! Property tests of the parts that read untrusted input: the request parser (random
//! bytes and random JSON through the whole pipeline), the path parser and the config
//! loader. None may panic; every answer is a documented status with a JSON body; every
//! config problem is reported with a message. A fixed number of cases each, so the run
//! stays short.

use inlet_core::clock::SystemClock;
use inlet_core::config::{SourceFile, load_sources};
use inlet_core::memory::{MemoryStore, StaticVars};
use inlet_core::path::FieldPath;
use inlet_core::pipeline::{InboundRequest, Pipeline, PipelineSettings, Route};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

const SOURCE: &str = r#"key: shop
name: Shop
environments:
  development:
    script: shop.rhai
    enforce_verification: false
    event_type_path: body.type
    timestamp_path: body.ts
    idempotency: { key_path: body.id }
    mappings:
      order.paid:
        - action: users_identify
          params: { id: body.user, name: body.name, properties: body.extra }
        - action: workflows_trigger
          params:
            key: { value: paid }
            recipients: body.to
            data: body
"#;

const SCRIPT: &str = r#"fn main(ctx) {
    let t = ctx.body.type;
    #{ verified: ctx.headers["x-sig"] == "ok", kind: t, size: ctx.rawBody.len(), q: ctx.query }
}"#;

fn files(yaml: &str) -> Vec<SourceFile> {
    vec![SourceFile {
        path: PathBuf::from("shop.yaml"),
        text: yaml.to_string(),
    }]
}

fn read_script(_: &std::path::Path) -> std::io::Result<String> {
    Ok(SCRIPT.to_string())
}

static ENGINE: LazyLock<Arc<ScriptEngine>> =
    LazyLock::new(|| Arc::new(ScriptEngine::new(ScriptLimits::default())));

static ROUTE: LazyLock<Route> = LazyLock::new(|| {
    let catalog = load_sources(&files(SOURCE), &read_script, &ENGINE).unwrap();
    Route::of(&catalog, "shop", "development").unwrap()
});

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Random JSON, nested a few levels, with the keys the config reads showing up often.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[a-z0-9 .é\"\\\\]{0,12}".prop_map(Value::String),
        Just(Value::String("order.paid".into())),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("type".to_string()),
                        Just("id".to_string()),
                        Just("user".to_string()),
                        Just("to".to_string()),
                        Just("ts".to_string()),
                        Just("extra".to_string()),
                        "[a-z]{1,6}",
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        json().prop_map(|v| v.to_string().into_bytes()),
        // Valid JSON cut short, or with a byte changed.
        (json(), any::<prop::sample::Index>(), any::<u8>()).prop_map(|(v, at, byte)| {
            let mut bytes = v.to_string().into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                if byte % 2 == 0 {
                    bytes.truncate(i);
                } else {
                    bytes[i] = byte;
                }
            }
            bytes
        }),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("content-type".to_string()),
                Just("x-sig".to_string()),
                "[A-Za-z-]{1,16}",
            ],
            prop_oneof![
                Just("application/x-www-form-urlencoded".to_string()),
                Just("ok".to_string()),
                "[ -~]{0,24}",
            ],
        ),
        0..6,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_request_gets_a_documented_status_and_a_json_body(
        method in prop_oneof![Just("POST"), Just("post"), Just("GET"), Just("PUT")],
        headers in headers(),
        query in "[a-z0-9=&%+.]{0,24}",
        body in body(),
    ) {
        let pipeline = Pipeline {
            engine: ENGINE.clone(),
            events: Arc::new(MemoryStore::new()),
            vars: Arc::new(StaticVars::default()),
            clock: Arc::new(SystemClock),
            settings: PipelineSettings::default(),
            script_pool: None,
        };
        let request = InboundRequest { method: method.into(), headers, query, body };
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let reply = runtime.block_on(pipeline.ingest(Some(&ROUTE), request)).reply;
        prop_assert!(
            [200, 202, 400, 401, 405, 413].contains(&reply.status),
            "{} {}", reply.status, reply.body
        );
        let answer: Value = serde_json::from_str(&reply.body).expect("a JSON body");
        prop_assert!(
            answer.get("status").is_some() || answer["error"]["code"].is_string(),
            "{answer}"
        );
    }

    #[test]
    fn any_text_parses_as_a_path_or_is_refused_with_a_reason(
        text in "[a-z0-9._\\[\\]$\"' -]{0,24}",
    ) {
        match FieldPath::parse(&text) {
            Ok(path) => {
                let again = FieldPath::parse(path.as_str()).expect("a parsed path parses again");
                prop_assert_eq!(again.as_str(), path.as_str());
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn any_config_text_loads_or_names_its_problems(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<char>(), any::<bool>()), 0..6),
        random in "[ -~\n]{0,200}",
        use_random in any::<bool>(),
    ) {
        let text = if use_random {
            random
        } else {
            let mut chars: Vec<char> = SOURCE.chars().collect();
            for (at, c, insert) in edits {
                let i = at.index(chars.len());
                if insert { chars.insert(i, c) } else { chars.remove(i); }
            }
            chars.into_iter().collect()
        };
        match load_sources(&files(&text), &read_script, &ENGINE) {
            Ok(catalog) => prop_assert!(!catalog.sources.is_empty()),
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for error in &errors.0 {
                    prop_assert!(!error.message.is_empty(), "{error:?}");
                }
            }
        }
    }
}
