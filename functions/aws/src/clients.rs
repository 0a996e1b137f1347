//! The AWS SDK clients of the functions and the CLI, and the retry and timeout settings
//! each one runs with.
//!
//! The SDK's defaults suit neither a webhook answer nor a stream consumer: no attempt
//! or operation timeout at all (a connection that stops answering holds the request
//! until the function's own timeout kills it, and the sender gets API Gateway's 503
//! with nothing said about the store), and a backoff starting at 1 s (a throttled
//! table makes the sender wait seconds for an answer that is a 503 anyway). So every
//! client is built with a [`ClientSettings`] chosen for where it runs:
//!
//! - **Standard retry mode, 3 attempts** everywhere. Adaptive mode would slow the
//!   client down for the whole execution environment after one throttled request.
//!   Retries are safe for every write Inlet makes: each is conditional (a retried write
//!   that had applied finds its own item, see [`crate::events`] and
//!   [`crate::directory`]) or an idempotent overwrite, and a transaction carries the
//!   SDK's client request token.
//! - **Attempt timeout**: DynamoDB answers a single-item request in single-digit
//!   milliseconds; an attempt that takes hundreds of times that is a lost connection,
//!   so it is cut and tried again on a new one.
//! - **Operation timeout**: bounds each call with its retries, so that the sum of the
//!   calls one request makes stays inside the function's timeout. The ingest function
//!   makes at most [`INGEST_SEQUENTIAL_CALLS`] calls one after the other (the vars, the
//!   token and the config when their caches are cold; the idempotency record, the
//!   claim, the event's write with the registry count beside it; on the rare refused
//!   write, giving the claim up and logging the refused event), so its operation
//!   timeout times that fits in its 10 s timeout with room to answer
//!   (`tests/tests/template.rs` holds the template to it).
//! - **Short backoff at ingest** (20 ms, at most 200 ms): a sender is waiting, and a
//!   table still throttled after three quick attempts is answered 503 with
//!   `Retry-After` at once; the sender's own retry schedule is the long backoff.
//!
//! | client | attempts | backoff (first / most) | connect | attempt | operation | runs inside |
//! |---|---|---|---|---|---|---|
//! | ingest | 3 | 20 ms / 200 ms | 300 ms | 500 ms | 1.1 s | 10 s function timeout (8 calls: 8.8 s) |
//! | actions | 3 | 50 ms / 1 s | 1 s | 2 s | 5 s | 60 s timeout, [`crate::actions::STORE_PATIENCE`] 40 s |
//! | admin | as ingest | | | | | 10 s timeout; a replay is the ingest's calls and a read of the original |
//! | CLI | 3 | 100 ms / 2 s | 2 s | 5 s | 15 s | a person at a terminal |

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, SdkConfig};
use std::time::Duration;

/// Retry and timeout settings of one kind of client (module docs: the table and why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSettings {
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
}

/// The most calls the ingest function makes one after the other for one request.
pub const INGEST_SEQUENTIAL_CALLS: u32 = 8;

const fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

impl ClientSettings {
    /// The ingest function: a sender is waiting.
    pub const INGEST: ClientSettings = ClientSettings {
        max_attempts: 3,
        initial_backoff: ms(20),
        max_backoff: ms(200),
        connect_timeout: ms(300),
        attempt_timeout: ms(500),
        operation_timeout: ms(1_100),
    };
    /// The actions function: nobody waits, but an invocation must end within its
    /// timeout for Lambda to retry it.
    pub const ACTIONS: ClientSettings = ClientSettings {
        max_attempts: 3,
        initial_backoff: ms(50),
        max_backoff: ms(1_000),
        connect_timeout: ms(1_000),
        attempt_timeout: ms(2_000),
        operation_timeout: ms(5_000),
    };
    /// The admin function: the ingest settings, since a replay runs the same pipeline
    /// and commit inside the same 10 s timeout.
    pub const ADMIN: ClientSettings = ClientSettings::INGEST;
    /// The CLI's own calls (config push, table reads): a person waits, patiently.
    pub const CLI: ClientSettings = ClientSettings {
        max_attempts: 3,
        initial_backoff: ms(100),
        max_backoff: ms(2_000),
        connect_timeout: ms(2_000),
        attempt_timeout: ms(5_000),
        operation_timeout: ms(15_000),
    };

    /// `loader` with these settings.
    pub fn apply(&self, loader: ConfigLoader) -> ConfigLoader {
        loader
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(self.max_attempts)
                    .with_initial_backoff(self.initial_backoff)
                    .with_max_backoff(self.max_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.connect_timeout)
                    .operation_attempt_timeout(self.attempt_timeout)
                    .operation_timeout(self.operation_timeout)
                    .build(),
            )
    }

    /// The SDK config from the standard AWS configuration chain (`AWS_ENDPOINT_URL`,
    /// `AWS_REGION`, credentials...) with these settings.
    pub async fn load(&self) -> SdkConfig {
        self.apply(aws_config::defaults(BehaviorVersion::latest()))
            .load()
            .await
    }
}

/// Clients for every service Inlet uses.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub sfn: aws_sdk_sfn::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub sqs: aws_sdk_sqs::Client,
}

impl AwsClients {
    /// The clients of one SDK config.
    pub fn new(config: &SdkConfig) -> Self {
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            ssm: aws_sdk_ssm::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            sfn: aws_sdk_sfn::Client::new(config),
            eventbridge: aws_sdk_eventbridge::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
        }
    }

    /// The clients from the standard AWS configuration chain, with `settings`.
    pub async fn from_env(settings: &ClientSettings) -> Self {
        Self::new(&settings.load().await)
    }

    /// The event log of a stack.
    pub fn event_log(&self, names: &crate::StackNames) -> crate::events::DynamoEventLog {
        crate::events::DynamoEventLog::new(self.dynamodb.clone(), names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_two_attempts_fit_in_every_call() {
        for settings in [
            ClientSettings::INGEST,
            ClientSettings::ACTIONS,
            ClientSettings::ADMIN,
            ClientSettings::CLI,
        ] {
            // At least two attempts fit in the operation timeout.
            assert!(settings.attempt_timeout * 2 <= settings.operation_timeout);
        }
    }
}
