//! Hands an accepted event to the actions function: an async `Invoke`
//! (`InvocationType=Event`) with `{"event_id": ...}`. Lambda queues the invocation
//! durably once the call returns, retries failed runs, then sends them to the
//! on-failure destination.

use crate::error::store_error;
use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use inlet_core::store::{ActionDispatcher, StoreError};

pub struct LambdaDispatcher {
    pub client: Client,
    pub function: String,
}

/// What the actions function receives.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActionsInvocation {
    pub event_id: String,
}

#[async_trait]
impl ActionDispatcher for LambdaDispatcher {
    async fn dispatch(&self, event_id: &str) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(&ActionsInvocation {
            event_id: event_id.to_string(),
        })
        .expect("a plain struct serialises");
        self.client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| store_error("Lambda Invoke (actions)", e))?;
        Ok(())
    }
}
