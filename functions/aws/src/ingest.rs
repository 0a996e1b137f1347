//! The ingest function: API Gateway HTTP API (payload v2), or the function's own Lambda
//! function URL (the template's `IngestEndpoint: FunctionUrl`; the same payload, without
//! a route or path parameters) → the core pipeline.
//!
//! Clients, the script engine and the config are built once per execution environment
//! ([`IngestFunction::from_env`]), and the config is loaded during init so the first
//! request does not pay for it. Each request is turned into the core's
//! `InboundRequest`; the core's `Reply` is turned back into the HTTP response.

use crate::StackNames;
use crate::clients::{AwsClients, ClientSettings};
use crate::config_table::ConfigTable;
use crate::vars::SsmVars;
use inlet_core::clock::{Clock, SystemClock};
use inlet_core::pipeline::{InboundRequest, Pipeline, PipelineSettings};
use inlet_core::reply::{IngestError, Reply};
use inlet_core::script::{ScriptEngine, ScriptLimits};
use lambda_http::{Body, Request, RequestExt, Response};
use std::sync::Arc;

pub struct IngestFunction {
    pub pipeline: Pipeline,
    pub config: ConfigTable,
    pub environment: String,
}

impl IngestFunction {
    /// Builds everything from the standard AWS config (with the ingest client settings)
    /// and the stack's environment variables, and warms the config cache.
    pub async fn from_env() -> Result<Self, String> {
        let names = StackNames::from_env()?;
        let function = Self::new(&AwsClients::from_env(&ClientSettings::INGEST).await, &names);
        if let Err(e) = function.config.catalog().await {
            // Not fatal: the config may be pushed after the deploy; requests say so.
            tracing::warn!(error = %e, "config not loaded during init");
        }
        Ok(function)
    }

    /// The ingest function of a stack's tables, with empty caches.
    pub fn new(clients: &AwsClients, names: &StackNames) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let engine = Arc::new(ScriptEngine::new(ScriptLimits::default()));
        IngestFunction {
            pipeline: Pipeline {
                engine: engine.clone(),
                events: Arc::new(clients.event_log(names)),
                vars: Arc::new(SsmVars::new(clients.ssm.clone(), clock.clone())),
                clock: clock.clone(),
                settings: PipelineSettings::default(),
                script_pool: None,
            },
            config: ConfigTable::new(
                clients.dynamodb.clone(),
                names.config_table.clone(),
                engine,
                clock,
            ),
            environment: names.environment.clone(),
        }
    }

    pub async fn handle(&self, request: Request) -> Result<Response<Body>, lambda_http::Error> {
        // The route's `{token}` on the HTTP API; a function URL has no route, so the
        // path's last segment (`/receive/<token>`).
        let token = request
            .path_parameters_ref()
            .and_then(|p| p.first("token"))
            .map(str::to_string)
            .or_else(|| request.uri().path().rsplit('/').next().map(str::to_string))
            .unwrap_or_default();
        let route = match self.config.route(&token, &self.environment).await {
            Ok(route) => route,
            // No config pushed, an invalid one, or DynamoDB unreachable: the sender must
            // retry later; the detail goes to the log only.
            Err(e) => {
                return Ok(to_response(
                    IngestError::Unavailable {
                        detail: e.to_string(),
                    }
                    .into_reply(),
                ));
            }
        };
        let inbound = InboundRequest {
            method: request.method().to_string(),
            headers: request
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            query: request.uri().query().unwrap_or("").to_string(),
            body: match request.body() {
                Body::Empty => Vec::new(),
                Body::Text(text) => text.as_bytes().to_vec(),
                Body::Binary(bytes) => bytes.clone(),
                _ => Vec::new(),
            },
        };
        let ingested = self.pipeline.ingest(route.as_ref(), inbound).await;
        if let Some(route) = &route
            && let Some(outcome) = crate::metrics::ingest_metric(ingested.outcome)
        {
            crate::metrics::emit(
                &self.environment,
                &route.source.key,
                outcome,
                self.pipeline.clock.now_ms(),
            );
        }
        Ok(to_response(ingested.reply))
    }
}

pub fn to_response(reply: Reply) -> Response<Body> {
    reply.into_http()
}
