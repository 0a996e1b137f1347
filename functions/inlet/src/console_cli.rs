//! `inlet console --aws-env E`: the web console of a deployed stack, served on loopback
//! by this process with the user's AWS credentials. The pages are the same as on
//! `inlet dev` (`inlet_admin::console`); they run over the stack's admin router in this
//! process (the code the admin function runs), so the stack needs no public console and
//! no new endpoint. Only a loopback address is accepted: the pages act with the user's
//! credentials and have no login of their own.

use anyhow::Context;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

/// Serves the console of the stack of `environment` on `addr` until `stop`.
/// `base_url` (the stack's `WebhookBaseUrl` output) makes the webhook URLs shown whole.
pub async fn serve(
    environment: &str,
    addr: SocketAddr,
    base_url: Option<&str>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<ExitCode> {
    if !addr.ip().is_loopback() {
        anyhow::bail!(
            "the console of a stack acts with your AWS credentials and has no login, so it listens on loopback only; use an address such as 127.0.0.1:{}",
            addr.port()
        );
    }
    let names = inlet_aws::StackNames::for_environment(environment);
    let clients =
        inlet_aws::clients::AwsClients::from_env(&inlet_aws::clients::ClientSettings::CLI).await;
    let mut state = inlet_admin::on_aws::state(&names, &clients);
    Arc::get_mut(&mut state)
        .expect("the state was just built")
        .webhook_host = base_url.and_then(crate::operations_cli::host_of);
    // Fail now, with the reason, rather than on every page.
    state
        .sources
        .catalog()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the config of stack `{environment}` (table {}): {e}; check your AWS credentials and region, and that `inlet config push --env {environment}` ran", names.config_table))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; pass --addr with a free port"))?;
    let addr = listener.local_addr()?;
    let app = inlet_admin::router(state)
        .layer(axum::middleware::from_fn_with_state(
            addr,
            crate::server::loopback_host_only,
        ))
        .layer(axum::middleware::from_fn(crate::http::json_errors));
    println!("Console of stack `{environment}` on http://{addr}/console\nPress Ctrl-C to stop.");
    crate::http::serve(listener, app, Default::default(), stop).await?;
    Ok(ExitCode::SUCCESS)
}
