//! The actions Lambda function: batches of the events table's stream records.

use inlet_aws::actions::ActionsFunction;
use lambda_runtime::{Error, LambdaEvent, run, service_fn, tracing};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber(); // JSON when AWS_LAMBDA_LOG_FORMAT=JSON
    let function = Arc::new(ActionsFunction::from_env().await?);
    run(service_fn(move |batch: LambdaEvent<_>| {
        let function = function.clone();
        async move { Ok::<_, Error>(function.handle(batch.payload).await) }
    }))
    .await
}
