//! The `inlet` commands' arguments, as clap reads them: one struct per command, with
//! the help text each flag shows.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "inlet",
    version,
    about = "Self-hosted webhook sources: receive, verify, dedupe, log and map webhooks to actions"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run Inlet locally: HTTP server, SQLite store, config reloaded on change.
    Dev(DevArgs),
    /// Validate source config and compile every script; print all problems.
    Check {
        /// Directory of `<key>.yaml` source files.
        #[arg(default_value = "infra/sources")]
        dir: PathBuf,
        /// Also warn about each var a script or `verify:` needs that this vars file (and
        /// INLET_VAR_*) does not provide.
        #[arg(long)]
        vars: Option<PathBuf>,
        /// Also validate this targets file (where workflow runs go).
        #[arg(long)]
        targets: Option<PathBuf>,
        /// With `--targets`: warn about the targets a stack of this environment may not
        /// reach (its IAM allows state machines, buses and queues named `inlet-<env>-*`).
        #[arg(long, requires = "targets")]
        env: Option<String>,
    },
    /// Print the webhook URL of every source environment (creating tokens if needed).
    Urls(UrlsArgs),
    /// List recent events (newest last); `--follow` keeps printing new ones.
    Logs(LogsArgs),
    /// Show one event with its action log.
    Event(EventArgs),
    /// Post a sample webhook to a source, signed the way its provider would sign it, and
    /// print the answer.
    Send(SendArgs),
    /// Dry-run a payload through a source's current config: verification, script
    /// console, event type, idempotency, and each action's params or skip reason.
    /// Nothing is stored. Exits 1 when the request would not be answered 2xx.
    Rehearse(RehearseArgs),
    /// Run a stored event again through the current config, as a new event that
    /// points to it (its verification result and receive time are kept; the
    /// idempotency window is bypassed on purpose).
    Replay(ReplayArgs),
    /// Webhook tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Source config on a deployed stack.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Serve the web console of a deployed stack on loopback, with your AWS credentials
    /// (`inlet dev` serves its own console at /console).
    Console(ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct ConsoleArgs {
    /// The stack's environment.
    #[arg(long)]
    pub aws_env: String,
    /// Loopback address to serve the console on.
    #[arg(long, default_value = "127.0.0.1:8788")]
    pub addr: SocketAddr,
    /// The stack's `WebhookBaseUrl` output, to show whole webhook URLs.
    #[arg(long)]
    pub base_url: Option<String>,
}

/// Where an operation runs: the dev server, or a deployed stack.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Where `inlet dev` runs.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub server: String,
    /// A deployed stack of this environment instead (with your AWS credentials).
    #[arg(long)]
    pub aws_env: Option<String>,
    /// With --aws-env: the stack's `WebhookBaseUrl` output, to print full URLs.
    #[arg(long, requires = "aws_env")]
    pub base_url: Option<String>,
}

impl TargetArgs {
    pub(crate) fn target(&self) -> crate::operations_cli::AdminTarget {
        crate::operations_cli::AdminTarget::new(
            &self.server,
            self.aws_env.as_deref(),
            self.base_url.as_deref(),
        )
    }
}

#[derive(Debug, Args)]
pub struct RehearseArgs {
    /// The payload, as it would be sent (e.g. events/task-assigned.json).
    pub file: PathBuf,
    #[arg(long)]
    pub source: String,
    #[arg(long, default_value = "development")]
    pub env: String,
    /// A header of the request, `Name: value` (repeatable), e.g. a signature.
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Print the rehearsal as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The stored event's id (from `inlet logs`).
    pub id: String,
    #[command(flatten)]
    pub target: TargetArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Give a source environment a new webhook URL; the old one keeps working for
    /// `--overlap`, then answers 404.
    Rotate(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[arg(long)]
    pub source: String,
    #[arg(long, default_value = "development")]
    pub env: String,
    /// How long the old URL keeps working (`24h`, `90m`, `0s`).
    #[arg(long, default_value = inlet_admin::operations::DEFAULT_OVERLAP)]
    pub overlap: String,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Without a running `inlet dev`: rotate in this database file.
    #[arg(long, default_value = ".inlet/inlet.db")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The body to send, as it is (e.g. events/examples/stripe.json).
    pub file: PathBuf,
    /// The source to send to (its webhook URL is asked from the running `inlet dev`).
    #[arg(long, required_unless_present = "url")]
    pub source: Option<String>,
    /// Its environment.
    #[arg(long, default_value = "development")]
    pub env: String,
    /// Sign the request like this provider: stripe, github, standard-webhooks, svix,
    /// clerk, workos, shopify, slack, segment, bearer, basic; or `hmac`, the generic
    /// `x-webhook-signature: sha256=<hex>` a hand-written script checks (task-app's).
    #[arg(long)]
    pub sign: Option<String>,
    /// The var holding the secret (default: the preset's, e.g. STRIPE_WEBHOOK_SECRET).
    /// A var holding a JSON array signs with its last (newest) secret.
    #[arg(long, requires = "sign")]
    pub secret_var: Option<String>,
    /// Vars file to read the secret from (INLET_VAR_<NAME> overrides it), as for
    /// `inlet dev`.
    #[arg(long)]
    pub vars: Option<PathBuf>,
    /// An extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// Post to this webhook URL instead (a deployed stack's, for instance).
    #[arg(long)]
    pub url: Option<String>,
    /// Where `inlet dev` runs.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub server: String,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate like `inlet check`, write the sources to the stack's config table, create
    /// tokens for new source environments, and print the webhook URLs.
    Push(PushArgs),
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The stack's environment (tables `inlet-<env>-*`).
    #[arg(long)]
    pub env: String,
    /// Directory of `<key>.yaml` source files.
    #[arg(long, default_value = "infra/sources")]
    pub sources: PathBuf,
    /// The stack's `WebhookBaseUrl` output, to print full URLs.
    #[arg(long)]
    pub base_url: Option<String>,
    /// A targets file (where workflow runs go: state machines, event buses, queues,
    /// functions), validated and stored for the actions function. Without it the
    /// stack keeps the targets it has.
    #[arg(long)]
    pub targets: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Where `inlet dev` runs.
    #[arg(long, default_value = "http://127.0.0.1:8787")]
    pub server: String,
    /// Read a deployed stack of this environment instead (its DynamoDB tables, with your
    /// AWS credentials).
    #[arg(long, conflicts_with = "server")]
    pub aws_env: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long)]
    pub env: Option<String>,
    /// Event type.
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// accepted, duplicate, rejected, invalid_event_type, error or answered.
    #[arg(long)]
    pub status: Option<String>,
    /// Events received since: a time back from now (90m, 1h, 2d), an RFC 3339 time
    /// (2024-09-15T14:30:00Z) or unix milliseconds.
    #[arg(long)]
    pub since: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Keep polling and print new events as they arrive.
    #[arg(long, short)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct EventArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The event id (from `inlet logs` or a 202 answer).
    pub id: String,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Directory of `<key>.yaml` source files.
    #[arg(long, default_value = "infra/sources")]
    pub sources: PathBuf,
    /// SQLite database file (created if missing).
    #[arg(long, default_value = ".inlet/inlet.db")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub addr: SocketAddr,
    /// JSON file of variables (`{"NAME": "value"}`); `INLET_VAR_<NAME>` overrides.
    #[arg(long)]
    pub vars: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = inlet_core::defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Do not reload config when files change.
    #[arg(long)]
    pub no_watch: bool,
    /// YAML file of targets for workflow runs and `lambda_invoke` (`workflows:` / `functions:`).
    #[arg(long)]
    pub targets: Option<PathBuf>,
    /// Accept and queue events without running their actions (they run at the next start).
    #[arg(long)]
    pub pause_actions: bool,
    /// Serve /admin on a non-loopback --addr too (it has no authentication).
    #[arg(long)]
    pub expose_admin: bool,
}

#[derive(Debug, Args)]
pub struct UrlsArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Base URL the dev server is reached at (`--server`, as the other commands name it,
    /// works too). A server running there is asked first (its live config and address);
    /// without one, the URLs come from `--sources` and `--db`.
    #[arg(
        long,
        visible_alias = "server",
        default_value = "http://127.0.0.1:8787"
    )]
    pub base_url: String,
    /// Only this source.
    #[arg(long)]
    pub source: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub env: Option<String>,
    /// Print URLs only, one per line (for scripts).
    #[arg(long, short)]
    pub quiet: bool,
    /// List the tokens of a deployed stack of this environment instead.
    #[arg(long)]
    pub aws_env: Option<String>,
}

impl Cli {
    /// Whether the command is a server (it writes to sockets, not to a pipe it ends
    /// with).
    pub fn serves(&self) -> bool {
        matches!(self.command, Command::Dev(_) | Command::Console(_))
    }
}
