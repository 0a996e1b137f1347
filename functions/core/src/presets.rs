//! Provider presets: `preset: stripe` in a source environment fills in what that
//! provider always needs — the verification scheme and the var holding its secret, the
//! event type path, the idempotency key, for some a built-in script (Slack's URL
//! handshake, Supabase's event type) and for some default mappings. Each is a default:
//! a key the environment sets itself (`verify`, `event_type_path`, `idempotency`,
//! `script`, `mappings`) replaces the preset's.
//!
//! The facts are the providers' own documentation: which header carries the event type
//! (`x-github-event`, `x-shopify-topic`), which value is stable across retries (Stripe's
//! `body.id`, GitHub's `x-github-delivery`, Svix's `svix-id`, Shopify's
//! `x-shopify-webhook-id`, Segment's `messageId`), how each signs (see
//! [`crate::verify`]).

use crate::verify::Scheme;

/// One provider's defaults.
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// The verification scheme; `None` for providers that do not sign (Supabase,
    /// PostHog): verification is then not enforced unless the environment adds it.
    pub scheme: Option<Scheme>,
    /// The var the secret is read from.
    pub secret_var: &'static str,
    pub event_type_path: &'static str,
    pub idempotency_key_path: Option<&'static str>,
    /// A built-in script (Rhai), run after verification.
    pub script: Option<&'static str>,
    /// Default mappings, as the YAML of a `mappings:` block.
    pub mappings: Option<&'static str>,
}

/// Answers Slack's `url_verification` challenge (sent when the request URL is set)
/// with the challenge, after the signature was checked; the handshake is logged as
/// `answered` and runs no actions.
const SLACK_HANDSHAKE: &str = r#"
fn main(ctx) {
    if ctx.body.type == "url_verification" {
        return #{ http_response: #{ status: 200, body: #{ challenge: ctx.body.challenge } } };
    }
    #{}
}
"#;

/// Supabase database webhooks carry `schema`, `table` and `type` (INSERT, UPDATE,
/// DELETE); the event type is `{schema}.{table}:{type}`.
const SUPABASE_EVENT_TYPE: &str = r#"
fn main(ctx) {
    let body = ctx.body;
    if type_of(body) != "map" || !("schema" in body) || !("table" in body) || !("type" in body) {
        return #{};
    }
    #{ event_type: `${body.schema}.${body.table}:${body.type}` }
}
"#;

const STRIPE_MAPPINGS: &str = r#"
customer.created:
  - action: users_identify
    params:
      id: data.object.id
      email: data.object.email
      name: data.object.name
invoice.created:
  - action: workflows_trigger
    params:
      key: { value: invoice-created }
      recipients: data.object.customer
      data: data.object
invoice.paid:
  - action: workflows_trigger
    params:
      key: { value: invoice-paid }
      recipients: data.object.customer
      data: data.object
"#;

const CLERK_MAPPINGS: &str = r#"
user.created:
  - action: users_identify
    params:
      id: data.id
      email: data.email_addresses.0.email_address
user.updated:
  - action: users_identify
    params:
      id: data.id
      email: data.email_addresses.0.email_address
user.deleted:
  - action: users_delete
    params:
      id: data.id
"#;

const SEGMENT_MAPPINGS: &str = r#"
identify:
  - action: users_identify
    params:
      id: userId
      properties: traits
"#;

const POSTHOG_MAPPINGS: &str = r#"
"$identify":
  - action: users_identify
    params:
      id: userId
      properties: properties
"$set":
  - action: users_identify
    params:
      id: userId
      properties: properties
"#;

pub static PRESETS: [Preset; 12] = [
    Preset {
        name: "stripe",
        scheme: Some(Scheme::Stripe),
        secret_var: "STRIPE_WEBHOOK_SECRET",
        event_type_path: "body.type",
        idempotency_key_path: Some("body.id"),
        script: None,
        mappings: Some(STRIPE_MAPPINGS),
    },
    Preset {
        name: "github",
        scheme: Some(Scheme::Github),
        secret_var: "GITHUB_WEBHOOK_SECRET",
        event_type_path: "headers.x-github-event",
        idempotency_key_path: Some("headers.x-github-delivery"),
        script: None,
        mappings: None,
    },
    Preset {
        name: "standard-webhooks",
        scheme: Some(Scheme::StandardWebhooks),
        secret_var: "STANDARD_WEBHOOKS_SECRET",
        event_type_path: "body.type",
        idempotency_key_path: Some("headers.webhook-id"),
        script: None,
        mappings: None,
    },
    Preset {
        name: "svix",
        scheme: Some(Scheme::StandardWebhooks),
        secret_var: "SVIX_WEBHOOK_SECRET",
        event_type_path: "body.type",
        idempotency_key_path: Some("headers.svix-id"),
        script: None,
        mappings: None,
    },
    Preset {
        name: "clerk",
        scheme: Some(Scheme::StandardWebhooks),
        secret_var: "CLERK_WEBHOOK_SECRET",
        event_type_path: "body.type",
        idempotency_key_path: Some("headers.svix-id"),
        script: None,
        mappings: Some(CLERK_MAPPINGS),
    },
    Preset {
        name: "workos",
        scheme: Some(Scheme::Workos),
        secret_var: "WORKOS_WEBHOOK_SECRET",
        event_type_path: "body.event",
        idempotency_key_path: Some("body.id"),
        script: None,
        mappings: None,
    },
    Preset {
        name: "shopify",
        scheme: Some(Scheme::Shopify),
        secret_var: "SHOPIFY_WEBHOOK_SECRET",
        event_type_path: "headers.x-shopify-topic",
        idempotency_key_path: Some("headers.x-shopify-webhook-id"),
        script: None,
        mappings: None,
    },
    Preset {
        name: "slack",
        scheme: Some(Scheme::Slack),
        secret_var: "SLACK_SIGNING_SECRET",
        event_type_path: "body.event.type",
        idempotency_key_path: Some("body.event_id"),
        script: Some(SLACK_HANDSHAKE),
        mappings: None,
    },
    Preset {
        name: "segment",
        scheme: Some(Scheme::Segment),
        secret_var: "SEGMENT_SHARED_SECRET",
        event_type_path: "body.type",
        idempotency_key_path: Some("body.messageId"),
        script: None,
        mappings: Some(SEGMENT_MAPPINGS),
    },
    Preset {
        name: "bearer",
        scheme: Some(Scheme::Bearer),
        secret_var: "WEBHOOK_BEARER_TOKEN",
        event_type_path: "body.type",
        idempotency_key_path: None,
        script: None,
        mappings: None,
    },
    Preset {
        name: "supabase",
        scheme: None,
        secret_var: "",
        event_type_path: "preprocess.event_type",
        idempotency_key_path: None,
        script: Some(SUPABASE_EVENT_TYPE),
        mappings: None,
    },
    Preset {
        name: "posthog",
        scheme: None,
        secret_var: "",
        event_type_path: "body.event",
        idempotency_key_path: Some("body.messageId"),
        script: None,
        mappings: Some(POSTHOG_MAPPINGS),
    },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

pub fn names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}
