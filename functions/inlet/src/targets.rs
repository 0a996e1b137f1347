//! Outside effects for `inlet dev`: workflow runs and `lambda_invoke` calls are POSTed
//! as JSON to the URLs of the targets file (`--targets FILE`).
//!
//! A 2xx answer is success (its JSON, or text, becomes the action result). Connection
//! failures, timeouts, 429 and 5xx are retryable; other 4xx answers are not.

use async_trait::async_trait;
use inlet_core::config::{Target, Targets};
use inlet_core::directory::WorkflowRun;
use inlet_core::executor::{InvokeError, TargetInvoker};
use serde_json::Value;
use std::time::Duration;

pub struct HttpTargets {
    targets: Targets,
    client: reqwest::Client,
}

impl HttpTargets {
    pub fn new(targets: Targets) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        HttpTargets { targets, client }
    }

    async fn post(&self, what: &str, target: &Target, body: &Value) -> Result<Value, InvokeError> {
        let url = match target {
            Target::Url(url) => url,
            Target::Function(name) => {
                return Err(InvokeError::Permanent(format!(
                    "{what} names Lambda function `{name}`, which `inlet dev` cannot call; give it a `url` in the targets file"
                )));
            }
        };
        let response = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| InvokeError::Retryable(format!("{what}: POST {url} failed: {e}")))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let answer = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(serde_json::json!({ "status": status.as_u16(), "body": answer }))
        } else if status.is_server_error() || status.as_u16() == 429 {
            Err(InvokeError::Retryable(format!(
                "{what}: {url} answered {status}"
            )))
        } else {
            Err(InvokeError::Permanent(format!(
                "{what}: {url} answered {status}: {answer}"
            )))
        }
    }
}

#[async_trait]
impl TargetInvoker for HttpTargets {
    async fn invoke_function(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        let target = self.targets.functions.get(function).ok_or_else(|| {
            InvokeError::Permanent(format!(
                "no target for function `{function}`; add `functions: {{ {function}: {{ url: http://... }} }}` to the targets file (--targets)"
            ))
        })?;
        self.post(&format!("function `{function}`"), target, payload)
            .await
    }

    async fn deliver_run(&self, run: &WorkflowRun) -> Result<Option<Value>, InvokeError> {
        let Some(target) = self.targets.workflows.get(&run.workflow_key) else {
            return Ok(None);
        };
        let body = serde_json::to_value(run).expect("a run serialises");
        self.post(&format!("workflow `{}`", run.workflow_key), target, &body)
            .await
            .map(Some)
    }
}
