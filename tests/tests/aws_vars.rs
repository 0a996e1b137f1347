//! Vars from SSM in the emulator: SecureString decryption, paging past one page of
//! results, JSON values, the 300 s cache, and the stale copy used when SSM fails. The
//! failure is real: the SDK talks to the emulator through a local forwarding proxy that
//! the test stops.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use inlet_aws::vars::SsmVars;
use inlet_core::clock::{Clock, ManualClock};
use inlet_core::vars::VarsProvider;
use serde_json::{Value, json};
use std::sync::Arc;

/// Forwards every request to `upstream` unchanged (SigV4 signatures stay valid since
/// the SDK signed for the proxy's host, which moto does not check).
async fn proxy(upstream: String) -> (String, tokio::task::JoinHandle<()>) {
    let client = reqwest::Client::new();
    let app = axum::Router::new()
        .route(
            "/",
            post(
                |State((client, upstream)): State<(reqwest::Client, String)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let mut request = client.post(&upstream).body(body.to_vec());
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            request = request.header(name.as_str(), value.as_bytes());
                        }
                    }
                    let response = request.send().await.unwrap();
                    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
                    let content_type = response
                        .headers()
                        .get("content-type")
                        .map(|v| v.to_str().unwrap().to_string())
                        .unwrap_or_default();
                    let body = response.bytes().await.unwrap().to_vec();
                    (status, [("content-type", content_type)], body)
                },
            ),
        )
        .with_state((client, upstream));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, task)
}

#[tokio::test]
async fn ssm_vars_page_decrypt_cache_and_survive_an_outage() {
    let upstream = common::require_emulator();
    let sdk = aws_config::load_from_env().await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let env = format!("vars{}", std::process::id());
    // More than one page: GetParametersByPath returns at most 10 per call.
    for i in 0..13 {
        ssm.put_parameter()
            .name(format!("/inlet/{env}/vars/KEY_{i:02}"))
            .value(format!("secret-{i}"))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    ssm.put_parameter()
        .name(format!("/inlet/{env}/vars/ROTATING"))
        .value(r#"["old","new"]"#)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();

    let (proxy_url, proxy_task) = proxy(upstream).await;
    let through_proxy = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&sdk)
            .endpoint_url(&proxy_url)
            .build(),
    );
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    let vars = SsmVars::new(through_proxy, clock.clone() as Arc<dyn Clock>);

    let first = vars.vars(&env).await.unwrap();
    let seen = Value::Object(first.for_scripts().clone());
    assert_eq!(seen.as_object().unwrap().len(), 14, "{seen}");
    assert_eq!(seen["KEY_12"], json!("secret-12"));
    assert_eq!(seen["ROTATING"], json!(["old", "new"]));

    // Within 300 s the cache answers, even with SSM gone.
    proxy_task.abort();
    let _ = proxy_task.await;
    clock.advance_ms(299_000);
    assert!(Arc::ptr_eq(&first, &vars.vars(&env).await.unwrap()));
    // Past 300 s SSM is asked, fails, and the stale copy is used.
    clock.advance_ms(2_000);
    let stale = vars.vars(&env).await.unwrap();
    assert!(Arc::ptr_eq(&first, &stale));
    // With nothing cached, the failure is an error (the pipeline answers 503).
    let error = vars.vars("other-env").await.unwrap_err();
    assert!(error.0.contains("SSM GetParametersByPath"), "{error}");
}
