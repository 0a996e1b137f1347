//! Outside effects for `inlet dev`: workflow runs and `lambda_invoke` calls go where
//! the targets file (`--targets FILE`) says. A URL target gets a JSON POST; a state
//! machine, event bus, queue or function is reached through the AWS SDK exactly as a
//! deployed stack reaches it ([`inlet_aws::targets`]), with the credentials and
//! endpoint of the environment (`AWS_PROFILE`, `AWS_ENDPOINT_URL` for an emulator).
//!
//! A URL's 2xx answer is success (its JSON, or text, becomes the action result).
//! Connection failures, timeouts, 429 and 5xx are retryable; other 4xx answers are not.

use async_trait::async_trait;
use inlet_aws::targets::AwsTargets;
use inlet_core::config::{Target, Targets};
use inlet_core::directory::WorkflowRun;
use inlet_core::store::EventRecord;
use inlet_core::targets::{Delivered, InvokeError, TargetInvoker};
use serde_json::Value;
use std::time::Duration;

pub struct HttpTargets {
    targets: Targets,
    client: reqwest::Client,
    /// For the targets on AWS; `None` when the file names none.
    aws: Option<AwsTargets>,
}

impl HttpTargets {
    pub fn new(targets: Targets) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a plain HTTP client builds");
        HttpTargets {
            targets,
            client,
            aws: None,
        }
    }

    /// These targets, reaching the ones on AWS through `aws`.
    pub fn with_aws(mut self, aws: AwsTargets) -> Self {
        self.aws = Some(aws);
        self
    }

    /// Whether any target needs the AWS SDK.
    pub fn need_aws(targets: &Targets) -> bool {
        targets
            .workflows
            .values()
            .chain(targets.functions.values())
            .any(Target::on_aws)
    }

    fn aws(&self, what: &str) -> Result<&AwsTargets, InvokeError> {
        self.aws.as_ref().ok_or_else(|| {
            InvokeError::Permanent(format!(
                "{what} is on AWS, and this server has no AWS client"
            ))
        })
    }

    async fn post(&self, what: &str, target: &Target, body: &Value) -> Result<Value, InvokeError> {
        let Target::Url(url) = target else {
            unreachable!("only URL targets are posted to")
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
        let what = format!("function `{function}`");
        match target {
            Target::Url(_) => self.post(&what, target, payload).await,
            _ => self.aws(&what)?.invoke_function(function, payload).await,
        }
    }

    async fn deliver_run(&self, source: &str, run: &WorkflowRun) -> Delivered {
        let Some(target) = self.targets.workflows.get(&run.workflow_key) else {
            return Ok(None);
        };
        let what = format!("workflow `{}`", run.workflow_key);
        if target.on_aws() {
            return self
                .aws(&what)?
                .deliver(target, source, run)
                .await
                .map(Some);
        }
        let body = serde_json::to_value(run).expect("a run serialises");
        self.post(&what, target, &body).await.map(Some)
    }

    async fn forward_event(&self, bus: &str, event: &EventRecord) -> Result<Value, InvokeError> {
        let what = format!("forwarding to bus `{bus}`");
        self.aws(&what)?.forward_event(bus, event).await
    }

    async fn prepare(&self) -> Result<(), InvokeError> {
        match &self.aws {
            Some(aws) => aws.prepare().await,
            None => Ok(()),
        }
    }

    async fn stops_runs(&self, workflow_key: &str) -> Result<bool, InvokeError> {
        match &self.aws {
            Some(aws) => aws.stops_runs(workflow_key).await,
            None => Ok(false),
        }
    }

    async fn cancel_runs(&self, source: &str, runs: &[WorkflowRun]) -> Delivered {
        match &self.aws {
            Some(aws) => aws.cancel_runs(source, runs).await,
            None => Ok(None),
        }
    }
}
