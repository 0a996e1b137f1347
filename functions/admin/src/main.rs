//! The admin Lambda function: `/admin/*` behind API Gateway's IAM authorizer.

use lambda_http::{Error, run, tracing};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing::init_default_subscriber(); // JSON when AWS_LAMBDA_LOG_FORMAT=JSON
    let state = inlet_admin::on_aws::state_from_env().await?;
    run(inlet_admin::router(state)).await
}
