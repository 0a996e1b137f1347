//! The admin API on AWS: the same router on the stack's DynamoDB tables, with the
//! config and tokens from the config table. Webhook URLs are built from the request's
//! Host (the HTTP API's domain), since the function cannot know its API's URL at
//! deploy time without a circular reference.

use crate::{AdminError, AdminState, SourceCatalog, WebhookUrl};
use inlet_aws::StackNames;
use inlet_aws::config_table::ConfigTable;
use inlet_aws::directory::DynamoDirectory;
use inlet_aws::provision::{AwsClients, clients_from_env};
use inlet_core::clock::SystemClock;
use inlet_core::config::Catalog;
use inlet_core::script::{ScriptEngine, ScriptLimits};
use std::sync::Arc;

struct ConfigTableSources {
    config: ConfigTable,
    environment: String,
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
        let base = host
            .map(|h| format!("https://{h}/receive"))
            .unwrap_or_else(|| "/receive".into());
        Ok(self
            .config
            .tokens()
            .await?
            .into_iter()
            .filter(|t| t.environment == self.environment)
            .map(|t| WebhookUrl {
                url: format!("{base}/{}", t.token),
                source: t.source,
                environment: t.environment,
            })
            .collect())
    }
}

/// Builds the admin state from the stack's environment variables.
pub async fn state_from_env() -> Result<Arc<AdminState>, String> {
    let state = state(&StackNames::from_env()?, &clients_from_env().await);
    // Warm the DynamoDB connection and the config cache during init.
    if let Err(e) = state.sources.catalog().await {
        tracing::warn!(error = %e, "config not readable during init");
    }
    Ok(state)
}

/// The admin state of one stack.
pub fn state(names: &StackNames, clients: &AwsClients) -> Arc<AdminState> {
    let config = ConfigTable::new(
        clients.dynamodb.clone(),
        names.config_table.clone(),
        Arc::new(ScriptEngine::new(ScriptLimits::default())),
        Arc::new(SystemClock),
    );
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
    })
}
