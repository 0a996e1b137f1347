//! The directory actions apply to: users, objects, tenants, subscriptions,
//! audiences and workflow runs of one environment.
//!
//! Changes arrive as [`DirectoryChange`]s, grouped per action and keyed by
//! [`ActionKey`] (event id + action index). [`Directory::apply`] applies one group in one
//! transaction and records the key with the action's result, so applying the same key
//! again changes nothing and returns the stored result: an action re-run after a crash is
//! never applied twice. Properties merge like Knock's REST API: only the fields sent
//! change; deletes cascade (a deleted user leaves no subscriptions or audience
//! memberships, a deleted object loses its subscriptions).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Identifies one action of one event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ActionKey {
    pub event_id: String,
    pub index: usize,
}

/// One action's changes as [`Directory::apply`] takes them: applied together, at most
/// once under `key`, in `environment`'s directory.
#[derive(Debug, Clone, Copy)]
pub struct ActionChanges<'a> {
    pub environment: &'a str,
    pub key: &'a ActionKey,
    pub changes: &'a [DirectoryChange],
    /// Stored with the key: a later apply of the same key returns it.
    pub result: &'a Value,
    pub now_ms: i64,
}

/// A reference to a recipient: a user id, or an object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientRef {
    User(String),
    Object { collection: String, id: String },
}

impl RecipientRef {
    pub fn to_json(&self) -> Value {
        match self {
            RecipientRef::User(id) => Value::String(id.clone()),
            RecipientRef::Object { collection, id } => {
                serde_json::json!({"collection": collection, "id": id})
            }
        }
    }
}

/// The id of the run action `index` of event `event_id` records: derived from the action
/// key, so that every delivery of the action names the same run.
pub fn run_id(event_id: &str, index: usize) -> String {
    format!("wr_{event_id}_{index}")
}

/// A stored workflow run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub id: String,
    pub workflow_key: String,
    pub recipients: Vec<RecipientRef>,
    pub actor: Option<RecipientRef>,
    pub tenant: Option<String>,
    pub data: Map<String, Value>,
    pub cancellation_key: Option<String>,
    /// `triggered` or `cancelled`.
    pub status: String,
    pub event_id: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DirectoryChange {
    /// Upsert users, merging properties.
    IdentifyUser {
        id: String,
        properties: Map<String, Value>,
    },
    DeleteUser {
        id: String,
    },
    SetObject {
        collection: String,
        id: String,
        properties: Map<String, Value>,
    },
    DeleteObject {
        collection: String,
        id: String,
    },
    SetTenant {
        id: String,
        properties: Map<String, Value>,
    },
    DeleteTenant {
        id: String,
    },
    Subscribe {
        collection: String,
        id: String,
        recipients: Vec<RecipientRef>,
        properties: Map<String, Value>,
    },
    Unsubscribe {
        collection: String,
        id: String,
        recipients: Vec<RecipientRef>,
    },
    AddAudienceMembers {
        key: String,
        members: Vec<String>,
        tenant: Option<String>,
        create_if_missing: bool,
    },
    RemoveAudienceMembers {
        key: String,
        members: Vec<String>,
        tenant: Option<String>,
    },
    RecordWorkflowRun(WorkflowRun),
    /// Marks `triggered` runs of `workflow_key` with this cancellation key `cancelled`
    /// (only those including one of `recipients`, when given).
    CancelWorkflowRuns {
        workflow_key: String,
        cancellation_key: String,
        recipients: Option<Vec<RecipientRef>>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The directory could not be reached (throttled, an outage, a write racing
    /// another); retrying may succeed.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// The store failed in a way retrying will not cure (an item it cannot read back, a
    /// request it refuses as malformed or too large).
    #[error("directory store failed: {0}")]
    Failed(String),
    /// The change cannot apply as asked (e.g. an audience that does not exist);
    /// retrying will not help.
    #[error("{0}")]
    Rejected(String),
}

/// What applying a key did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The changes were applied now.
    Now,
    /// The key had been applied before; the stored result is returned.
    Before(Value),
}

/// A user, object or tenant as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub id: String,
    pub properties: Map<String, Value>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[async_trait]
pub trait Directory: Send + Sync {
    /// Applies `changes` atomically, once per `key`; `result` is stored with the key.
    async fn apply(&self, action: ActionChanges<'_>) -> Result<Applied, DirectoryError>;

    /// Which of `ids` are known users.
    async fn known_users(
        &self,
        environment: &str,
        ids: &[String],
    ) -> Result<Vec<String>, DirectoryError>;

    async fn user(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError>;
    async fn object(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<Entity>, DirectoryError>;
    async fn tenant(&self, environment: &str, id: &str) -> Result<Option<Entity>, DirectoryError>;
    /// Subscribers of an object, with the subscription properties.
    async fn subscriptions(
        &self,
        environment: &str,
        collection: &str,
        id: &str,
    ) -> Result<Vec<(RecipientRef, Map<String, Value>)>, DirectoryError>;
    /// Members of an audience (user ids), or `None` if it does not exist.
    async fn audience_members(
        &self,
        environment: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, DirectoryError>;
    async fn workflow_run(
        &self,
        environment: &str,
        id: &str,
    ) -> Result<Option<WorkflowRun>, DirectoryError>;
    /// Runs of one workflow (or all), newest first.
    async fn workflow_runs(
        &self,
        environment: &str,
        workflow_key: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, DirectoryError>;
}

/// Merges `update` into `target`: only the keys sent change (Knock's merge semantics).
pub fn merge_properties(target: &mut Map<String, Value>, update: &Map<String, Value>) {
    for (key, value) in update {
        target.insert(key.clone(), value.clone());
    }
}
