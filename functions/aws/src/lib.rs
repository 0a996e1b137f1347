//! Inlet on AWS: the only crate that names the AWS SDK.
//!
//! It implements the core's traits on AWS services and holds the Lambda handlers:
//!
//! - [`events::DynamoEventLog`] implements [`EventLog`](inlet_core::store::EventLog) (the
//!   one commit per event, the event log, action log and event-type registry) on
//!   DynamoDB; its module docs explain the commit, the hand-off to the actions function
//!   through the events table's stream, and how large events are stored;
//! - [`registry::Registry`]: the event-type registry, counted per execution
//!   environment and written at most once per type every 5 s; [`shard`]: the keys every
//!   event of a source would write, split 32 ways;
//! - [`idempotency::DynamoIdempotency`] implements [`IdempotencyStore`](inlet_core::store::IdempotencyStore)
//!   (reads of the idempotency records the commit writes);
//! - [`vars::SsmVars`]: [`VarsProvider`](inlet_core::vars::VarsProvider) on SSM Parameter
//!   Store, cached;
//! - [`config_table::ConfigTable`]: source config and webhook tokens, written by
//!   `inlet config push`, cached per execution environment;
//! - [`directory::DynamoDirectory`] implements [`Directory`](inlet_core::directory::Directory);
//! - [`ingest`] and [`actions`]: the handlers of the ingest function (API Gateway) and
//!   of the actions function (the events table's stream).
//!
//! Every SDK error becomes a core [`StoreError`](inlet_core::store::StoreError):
//! throttling, 5xx and transport failures are `Unavailable` (503 with `Retry-After` at
//! the edge), the rest `Failed` (500). No SDK type crosses into core. Endpoints, regions
//! and credentials come from the standard AWS configuration chain, so tests point the
//! real SDK at an emulator with `AWS_ENDPOINT_URL` and nothing else.
//!
//! # Tables and access patterns
//!
//! All tables are on-demand, with string keys `pk` and `sk`, and TTL on `expires_at`
//! (unix seconds) where items expire. Every list is a `Query`, never a `Scan`. Every
//! item of the idempotency and events tables carries `fv`, the format version it was
//! written in; [`format`] lists the versions and how each is read.
//!
//! | table | item | pk | sk | notes |
//! |---|---|---|---|---|
//! | idempotency | record | scope key (source, env, type, key; length-prefixed) | `CLAIM` | `event_id`, `status` (`completed`), `expires_at_ms`; TTL `expires_at` |
//! | events | event | `EVENT#<id>` | `EVENT` | the record with its action plan as deflated JSON in `z` (or, when large, in `PART#` items); `gsi1pk` = `<source>#<env>#<shard>` (one of 32, from the id: [`shard`]), `gsi1sk` = id (UUIDv7, time-ordered) for listing, with `status`, `etype`, `at` (the index projects only these); `queue` = `actions` when its actions are to run; TTL; stream `NEW_IMAGE` |
//! | events | part | `EVENT#<id>` | `PART#<n, 5 digits>` | a chunk of a large event's deflated JSON (binary); TTL |
//! | events | action update | `EVENT#<id>` | `ACTION#<index, 5 digits>` | the executor's latest update of one action; TTL |
//! | events | event type | `TYPES#<source>#<env>` | event type | `count` (ADD, accepted events, coalesced per execution environment: [`registry`]), first/last seen, last event id (its sample is read from the event) |
//! | config | bundle | `CONFIG` | `BUNDLE` | every file of `infra/sources` (YAML and scripts) |
//! | config | token | `TOKEN` | token | `source`, `environment`, `created_at_ms` |
//!
//! Access patterns: commit an event = a `GetItem` of its idempotency record, a
//! conditional `PutItem` of the record, a conditional `PutItem` of the event (a
//! transaction only with parts) and, at most once per type every 5 s per execution
//! environment, an `UpdateItem` of the registry count (see [`events`], [`registry`]);
//! one event with its plan and action updates = one `Query` on `EVENT#<id>`; events of
//! a source = a `Query` of each shard of `gsi1` newest first with `id < cursor`, merged,
//! then one `BatchGetItem` of the page; event types = `Query` on
//! `TYPES#…`; config = one `GetItem` for the bundle and one per token lookup, both
//! cached 30 s.

pub mod actions;
pub mod clients;
pub mod config_table;
pub mod directory;
pub mod error;
mod event_key;
pub mod events;
pub mod format;
pub mod idempotency;
pub mod ingest;
pub mod item;
pub mod metrics;
pub mod provision;
pub mod registry;
pub mod shard;
pub mod targets;
pub mod vars;

/// Table and function names of one stack, from the environment the template sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNames {
    pub environment: String,
    pub idempotency_table: String,
    pub events_table: String,
    pub config_table: String,
    pub directory_table: String,
}

impl StackNames {
    /// The names the SAM template gives a stack's tables and functions
    /// (`inlet-<env>-events`, ...), so the CLI needs only the environment.
    pub fn for_environment(environment: &str) -> Self {
        StackNames {
            environment: environment.to_string(),
            idempotency_table: format!("inlet-{environment}-idempotency"),
            events_table: format!("inlet-{environment}-events"),
            config_table: format!("inlet-{environment}-config"),
            directory_table: format!("inlet-{environment}-directory"),
        }
    }

    /// Reads `INLET_ENVIRONMENT`, `INLET_IDEMPOTENCY_TABLE`, `INLET_EVENTS_TABLE`,
    /// `INLET_CONFIG_TABLE` and `INLET_DIRECTORY_TABLE`.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| {
                format!("{name} is not set; the SAM template sets it for every function")
            })
        };
        Ok(StackNames {
            environment: var("INLET_ENVIRONMENT")?,
            idempotency_table: var("INLET_IDEMPOTENCY_TABLE")?,
            events_table: var("INLET_EVENTS_TABLE")?,
            config_table: var("INLET_CONFIG_TABLE")?,
            directory_table: var("INLET_DIRECTORY_TABLE")?,
        })
    }
}
