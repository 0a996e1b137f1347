//! The action catalog: every action Inlet knows, in the order actions of
//! one event run, with its parameter schema (which params exist, which are required and
//! what type each must resolve to). The config loader checks mappings against it at load
//! time and the planner ([`crate::actions`]) at request time; it depends on nothing else
//! in the crate.

use serde::{Deserialize, Serialize};

/// All actions, in the order they run within one event. A kind's name (config, storage,
/// the API) is derived from the variant's, once, by `strum`; serde uses it too.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
)]
#[serde(into = "&'static str", try_from = "String")]
#[strum(serialize_all = "snake_case")]
pub enum ActionKind {
    UsersIdentify,
    UsersDelete,
    ObjectsSet,
    ObjectsDelete,
    TenantsSet,
    TenantsDelete,
    ObjectsSubscribe,
    ObjectsUnsubscribe,
    AudiencesAddMember,
    AudiencesRemoveMember,
    WorkflowsCancel,
    WorkflowsTrigger,
    LambdaInvoke,
}

/// The type a param value must have once resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A string; an integer is accepted and turned into its decimal string, since many
    /// senders use numeric ids.
    Id,
    Text,
    Bool,
    Object,
    /// A user id string or an inline user/object `{id, ...}`.
    Recipient,
    /// One recipient or a list of them, at most `max`.
    Recipients {
        max: usize,
    },
    /// A tenant id string or an inline tenant object.
    IdOrObject,
    Any,
}

#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
}

const fn req(name: &'static str, ty: ParamType) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        required: true,
    }
}
const fn opt(name: &'static str, ty: ParamType) -> ParamSpec {
    ParamSpec {
        name,
        ty,
        required: false,
    }
}

use ParamType::*;

/// `id` plus the user fields Knock's identify takes.
const USERS_IDENTIFY: &[ParamSpec] = &[
    req("id", Id),
    opt("properties", Object),
    opt("name", Text),
    opt("email", Text),
    opt("phone_number", Text),
    opt("avatar", Text),
    opt("locale", Text),
    opt("timezone", Text),
    opt("created_at", Any),
    opt("channel_data", Object),
    opt("preferences", Object),
];
const OBJECTS_SET: &[ParamSpec] = &[
    req("collection", Text),
    req("id", Id),
    opt("properties", Object),
    opt("name", Text),
    opt("email", Text),
    opt("phone_number", Text),
    opt("avatar", Text),
    opt("locale", Text),
    opt("timezone", Text),
    opt("created_at", Any),
    opt("channel_data", Object),
    opt("preferences", Object),
];
const ID_ONLY: &[ParamSpec] = &[req("id", Id)];
const OBJECTS_DELETE: &[ParamSpec] = &[req("collection", Text), req("id", Id)];
const TENANTS_SET: &[ParamSpec] = &[
    req("id", Id),
    opt("properties", Object),
    opt("name", Text),
    opt("settings", Object),
    opt("channel_data", Object),
];
const OBJECTS_SUBSCRIBE: &[ParamSpec] = &[
    req("collection", Text),
    req("id", Id),
    req("recipients", Recipients { max: 100 }),
    opt("properties", Object),
];
const OBJECTS_UNSUBSCRIBE: &[ParamSpec] = &[
    req("collection", Text),
    req("id", Id),
    req("recipients", Recipients { max: 100 }),
];
const AUDIENCES_ADD_MEMBER: &[ParamSpec] = &[
    req("key", Text),
    req("members", Recipients { max: 1000 }),
    opt("tenant", Id),
    opt("create_if_missing", Bool),
];
const AUDIENCES_REMOVE_MEMBER: &[ParamSpec] = &[
    req("key", Text),
    req("members", Recipients { max: 1000 }),
    opt("tenant", Id),
];
const WORKFLOWS_CANCEL: &[ParamSpec] = &[
    req("key", Text),
    req("cancellation_key", Text),
    opt("recipients", Recipients { max: 1000 }),
];
const WORKFLOWS_TRIGGER: &[ParamSpec] = &[
    req("key", Text),
    req("recipients", Recipients { max: 1000 }),
    opt("actor", Recipient),
    opt("tenant", IdOrObject),
    opt("data", Object),
    opt("cancellation_key", Text),
];
const LAMBDA_INVOKE: &[ParamSpec] = &[req("function", Text), opt("payload", Any)];

impl TryFrom<String> for ActionKind {
    type Error = strum::ParseError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl ActionKind {
    /// Every kind, in the order they run within one event.
    pub const ALL: &'static [ActionKind] = <ActionKind as strum::VariantArray>::VARIANTS;

    pub fn name(self) -> &'static str {
        self.into()
    }

    pub fn from_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }

    /// The params this action takes.
    pub fn params(self) -> &'static [ParamSpec] {
        match self {
            ActionKind::UsersIdentify => USERS_IDENTIFY,
            ActionKind::UsersDelete | ActionKind::TenantsDelete => ID_ONLY,
            ActionKind::ObjectsSet => OBJECTS_SET,
            ActionKind::ObjectsDelete => OBJECTS_DELETE,
            ActionKind::TenantsSet => TENANTS_SET,
            ActionKind::ObjectsSubscribe => OBJECTS_SUBSCRIBE,
            ActionKind::ObjectsUnsubscribe => OBJECTS_UNSUBSCRIBE,
            ActionKind::AudiencesAddMember => AUDIENCES_ADD_MEMBER,
            ActionKind::AudiencesRemoveMember => AUDIENCES_REMOVE_MEMBER,
            ActionKind::WorkflowsCancel => WORKFLOWS_CANCEL,
            ActionKind::WorkflowsTrigger => WORKFLOWS_TRIGGER,
            ActionKind::LambdaInvoke => LAMBDA_INVOKE,
        }
    }

    pub fn param(self, name: &str) -> Option<ParamSpec> {
        self.params().iter().find(|p| p.name == name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::ActionKind;

    #[test]
    fn action_names_are_the_ones_configs_and_stores_use() {
        let names: Vec<&str> = ActionKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "users_identify",
                "users_delete",
                "objects_set",
                "objects_delete",
                "tenants_set",
                "tenants_delete",
                "objects_subscribe",
                "objects_unsubscribe",
                "audiences_add_member",
                "audiences_remove_member",
                "workflows_cancel",
                "workflows_trigger",
                "lambda_invoke"
            ]
        );
        for kind in ActionKind::ALL {
            assert_eq!(ActionKind::from_name(kind.name()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        assert!(serde_json::from_value::<ActionKind>("users-identify".into()).is_err());
    }
}
