//! The admin API on AWS: the same router on the stack's DynamoDB tables, with the
//! config and tokens from the config table. Webhook URLs are built from the request's
//! Host (the HTTP API's domain), since the function cannot know its API's URL at
//! deploy time without a circular reference.
//!
//! Rehearse and replay run the ingest function's pipeline here (the same config, vars
//! from SSM, the same commit); a replay's event reaches the actions function through
//! the events table's stream like any other. A token rotation writes the config table;
//! warm ingest containers learn a new token within their 30 s token cache.

use crate::operations::Operations;
use crate::{AdminError, AdminState, SourceCatalog, WebhookUrl};
use inlet_aws::StackNames;
use inlet_aws::clients::{AwsClients, ClientSettings};
use inlet_aws::config_table::ConfigTable;
use inlet_aws::directory::DynamoDirectory;
use inlet_aws::idempotency::DynamoIdempotency;
use inlet_aws::vars::SsmVars;
use inlet_core::clock::Clock;
use inlet_core::clock::SystemClock;
use inlet_core::config::Catalog;
use inlet_core::pipeline::{Pipeline, PipelineSettings};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use inlet_core::store::IdempotencyStore;
use inlet_core::tokens::{Rotation, TokenStore};
use std::sync::Arc;

struct ConfigTableSources {
    config: Arc<ConfigTable>,
    environment: String,
}

fn url_of(
    base: &str,
    token: String,
    source: String,
    environment: String,
    retires_at_ms: Option<i64>,
) -> WebhookUrl {
    WebhookUrl {
        url: format!("{base}/{token}"),
        source,
        environment,
        retires_at_ms,
    }
}

fn base_url(host: Option<&str>) -> String {
    host.map(|h| format!("https://{h}/receive"))
        .unwrap_or_else(|| "/receive".into())
}

/// The operations on a stack: its pipeline, idempotency records and config table.
struct StackOperations {
    pipeline: Pipeline,
    idempotency: DynamoIdempotency,
    config: Arc<ConfigTable>,
}

#[async_trait::async_trait]
impl Operations for StackOperations {
    fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    fn idempotency(&self) -> &dyn IdempotencyStore {
        &self.idempotency
    }

    async fn rotate_token(
        &self,
        rotation: Rotation<'_>,
        host: Option<&str>,
    ) -> Result<Vec<WebhookUrl>, AdminError> {
        let pair = self.config.rotate(rotation).await?;
        let base = base_url(host);
        Ok(pair
            .into_iter()
            .map(|t| url_of(&base, t.token, t.source, t.environment, t.retires_at_ms))
            .collect())
    }
}

#[async_trait::async_trait]
impl SourceCatalog for ConfigTableSources {
    async fn catalog(&self) -> Result<Arc<Catalog>, AdminError> {
        self.config
            .catalog()
            .await
            .map_err(|e| AdminError::Unavailable(e.to_string()))
    }

    async fn urls(&self, host: Option<&str>) -> Result<Vec<WebhookUrl>, AdminError> {
        let base = base_url(host);
        let now = self.config.clock.now_ms();
        let mut tokens = self.config.tokens().await?;
        tokens.sort_by_key(|t| t.created_at_ms);
        Ok(tokens
            .into_iter()
            .filter(|t| t.environment == self.environment)
            .filter(|t| t.retires_at_ms.is_none_or(|at| at > now))
            .map(|t| url_of(&base, t.token, t.source, t.environment, t.retires_at_ms))
            .collect())
    }
}

/// Builds the admin state from the stack's environment variables.
pub async fn state_from_env() -> Result<Arc<AdminState>, String> {
    let state = state(
        &StackNames::from_env()?,
        &AwsClients::from_env(&ClientSettings::ADMIN).await,
    );
    // Warm the DynamoDB connection and the config cache during init.
    if let Err(e) = state.sources.catalog().await {
        tracing::warn!(error = %e, "config not readable during init");
    }
    Ok(state)
}

/// The admin state of one stack.
pub fn state(names: &StackNames, clients: &AwsClients) -> Arc<AdminState> {
    let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = Arc::new(ConfigTable::new(
        clients.dynamodb.clone(),
        names.config_table.clone(),
        engine.clone(),
        clock.clone(),
    ));
    let operations = StackOperations {
        pipeline: Pipeline {
            engine,
            events: Arc::new(clients.event_log(names)),
            vars: Arc::new(SsmVars::new(clients.ssm.clone(), clock.clone())),
            clock,
            settings: PipelineSettings::default(),
            script_pool: None,
        },
        idempotency: DynamoIdempotency::new(clients.dynamodb.clone(), names),
        config: config.clone(),
    };
    Arc::new(AdminState {
        environment: Some(names.environment.clone()),
        events: Arc::new(clients.event_log(names)),
        directory: Arc::new(DynamoDirectory {
            client: clients.dynamodb.clone(),
            table: names.directory_table.clone(),
        }),
        sources: Arc::new(ConfigTableSources {
            config,
            environment: names.environment.clone(),
        }),
        outbox: None,
        operations: Some(Arc::new(operations)),
        webhook_host: None,
    })
}
