//! Vars from SSM Parameter Store: every parameter under `/inlet/{env}/vars/`, decrypted
//! (SecureString), paged, cached for 300 s. If SSM fails and a cached copy exists, the
//! stale copy is used with a warning, so an SSM hiccup does not turn into 503s.

use crate::error::store_error;
use async_trait::async_trait;
use aws_sdk_ssm::Client;
use inlet_core::clock::Clock;
use inlet_core::vars::{Vars, VarsError, VarsProvider};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const VARS_CACHE_MS: i64 = 300_000;

pub struct SsmVars {
    pub client: Client,
    pub clock: Arc<dyn Clock>,
    pub cache_ms: i64,
    cache: Mutex<HashMap<String, (i64, Arc<Vars>)>>,
}

impl SsmVars {
    pub fn new(client: Client, clock: Arc<dyn Clock>) -> Self {
        SsmVars {
            client,
            clock,
            cache_ms: VARS_CACHE_MS,
            cache: Mutex::default(),
        }
    }

    /// The parameter path of an environment's vars.
    pub fn path(environment: &str) -> String {
        format!("/inlet/{environment}/vars/")
    }

    async fn fetch(&self, environment: &str) -> Result<Vars, VarsError> {
        let prefix = Self::path(environment);
        let mut pairs = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(&prefix)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| VarsError(store_error("SSM GetParametersByPath", e).to_string()))?;
            for p in page.parameters.unwrap_or_default() {
                if let (Some(name), Some(value)) = (p.name, p.value) {
                    pairs.push((name.trim_start_matches(&prefix).to_string(), value));
                }
            }
            token = page.next_token;
            if token.is_none() {
                return Ok(Vars::new(pairs));
            }
        }
    }
}

#[async_trait]
impl VarsProvider for SsmVars {
    fn how_to_set(&self, environment: &str, name: &str) -> String {
        format!(
            "create the SSM parameter {}{name} (SecureString; `infra/put-vars` writes a vars file there); \
             running functions see it within {} s",
            Self::path(environment),
            self.cache_ms / 1000
        )
    }

    async fn vars(&self, environment: &str) -> Result<Arc<Vars>, VarsError> {
        let now = self.clock.now_ms();
        let cached = self
            .cache
            .lock()
            .expect("vars cache poisoned")
            .get(environment)
            .cloned();
        if let Some((at, vars)) = &cached
            && now - at < self.cache_ms
        {
            return Ok(vars.clone());
        }
        match self.fetch(environment).await {
            Ok(vars) => {
                let vars = Arc::new(vars);
                self.cache
                    .lock()
                    .expect("vars cache poisoned")
                    .insert(environment.to_string(), (now, vars.clone()));
                Ok(vars)
            }
            Err(error) => match cached {
                Some((_, stale)) => {
                    tracing::warn!(%error, "SSM unavailable; using the cached vars");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }
}
