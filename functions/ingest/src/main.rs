//! The ingest Lambda function: API Gateway HTTP API → Inlet's pipeline.

use inlet_aws::ingest::IngestFunction;
use lambda_http::{Error, run, service_fn, tracing};
use std::sync::Arc;

/// Counts the memory each script run holds, so its budget is enforced.
#[global_allocator]
static ALLOCATOR: inlet_core::script::CountingAllocator =
    inlet_core::script::CountingAllocator(std::alloc::System);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber(); // JSON when AWS_LAMBDA_LOG_FORMAT=JSON
    let function = Arc::new(IngestFunction::from_env().await?);
    run(service_fn(move |request| {
        let function = function.clone();
        async move { function.handle(request).await }
    }))
    .await
}
