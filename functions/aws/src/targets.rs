//! Outside effects on AWS: `lambda_invoke` calls the user's function synchronously
//! (`RequestResponse`) and keeps its answer. The function must be named
//! `inlet-<env>-target-*`: the actions function's IAM policy allows no other. A
//! function error or throttling is retryable; a function that does not exist is not.
//! Workflow runs have no delivery target on AWS yet: they are recorded in the directory.

use crate::error::store_error;
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use inlet_core::directory::WorkflowRun;
use inlet_core::executor::{InvokeError, TargetInvoker};
use inlet_core::store::StoreError;
use serde_json::Value;

pub struct LambdaTargets {
    pub client: Client,
}

#[async_trait]
impl TargetInvoker for LambdaTargets {
    async fn invoke_function(&self, function: &str, payload: &Value) -> Result<Value, InvokeError> {
        let response = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(
                serde_json::to_vec(payload).expect("JSON serialises"),
            ))
            .send()
            .await
            .map_err(|e| match store_error(&format!("invoke `{function}`"), e) {
                StoreError::Unavailable(m) => InvokeError::Retryable(m),
                StoreError::Failed(m) => InvokeError::Permanent(m),
            })?;
        let body = response.payload.map(|b| b.into_inner()).unwrap_or_default();
        let answer = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        match response.function_error {
            Some(kind) => Err(InvokeError::Retryable(format!(
                "function `{function}` failed ({kind}): {answer}"
            ))),
            None => Ok(serde_json::json!({ "status": response.status_code, "body": answer })),
        }
    }

    async fn deliver_run(&self, _run: &WorkflowRun) -> Result<Option<Value>, InvokeError> {
        Ok(None)
    }
}
