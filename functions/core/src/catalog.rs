//! The action catalog, the one place actions are described: every kind Inlet knows, in
//! the order actions of one event run, and, declared once per kind in `actions!`, its
//! params. From each declaration come the kind's [`ParamSpec`] table (which params
//! exist, which are required, what type each must resolve to: the config loader checks
//! mappings against it at load time, the planner in [`crate::actions`] at request time),
//! its payload struct and [`Action`] variant (what the executor in [`crate::executor`]
//! reads a planned payload as, instead of looking params up by name), and the param
//! table of docs/sources.md (a test keeps them equal). Adding an action kind means a
//! variant of [`ActionKind`], its declaration here, and its appliers (the executor's
//! arm, and a [`crate::directory::DirectoryChange`] if it changes the directory).
//! It depends on nothing else in the crate.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    EventsForward,
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

/// An id param once resolved: a string (the planner turns integer ids into their
/// decimal string; an integer read from an older plan is turned the same way here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Id(s)),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Id(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "an id must be a string or an integer, got {other}"
            ))),
        }
    }
}

impl Id {
    /// The id of an inline object (`{id, ...}`), if it has one that is an id.
    pub fn in_map(map: &Map<String, Value>) -> Option<Id> {
        Id::deserialize(map.get("id")?).ok()
    }
}

/// A recipient param once resolved: a user id, or an inline user `{id, ...}` or object
/// `{id, collection, ...}` (checked by the planner).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Recipient {
    User(Id),
    Inline(Map<String, Value>),
}

/// A recipients param: a list (the planner turns one recipient into a list of one).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Recipients(pub Vec<Recipient>);

impl<'de> Deserialize<'de> for Recipients {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            Many(Vec<Recipient>),
            One(Recipient),
        }
        Ok(Recipients(match OneOrMany::deserialize(d)? {
            OneOrMany::Many(list) => list,
            OneOrMany::One(one) => vec![one],
        }))
    }
}

/// A tenant param: an id, or an inline tenant object with an `id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IdOrObject {
    Id(Id),
    Object(Map<String, Value>),
}

/// The Rust type a param of [`ParamType`] `$ty` resolves to.
macro_rules! param_value {
    (Id) => { Id };
    (Text) => { String };
    (Bool) => { bool };
    (Object) => { Map<String, Value> };
    (Recipient) => { Recipient };
    (Recipients) => { Recipients };
    (IdOrObject) => { IdOrObject };
    (Any) => { Value };
}

/// The [`ParamType`] of `$ty` (with the list bound of `Recipients`).
macro_rules! param_type {
    (Recipients $max:literal) => {
        ParamType::Recipients { max: $max }
    };
    ($ty:ident) => {
        ParamType::$ty
    };
}

/// Declares every action kind's params once; from each declaration come the kind's
/// payload struct (what the executor reads), its [`ParamSpec`] table (what config
/// validation and the planner check, in this order) and its [`Action`] variant.
macro_rules! actions {
    ($(
        $(#[$doc:meta])*
        $kind:ident {
            required { $($rname:ident: $rty:ident $(($rmax:literal))?),* $(,)? }
            optional { $($oname:ident: $oty:ident $(($omax:literal))?),* $(,)? }
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
            pub struct $kind {
                $(pub $rname: param_value!($rty),)*
                $(
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pub $oname: Option<param_value!($oty)>,
                )*
            }

            impl $kind {
                const PARAMS: &'static [ParamSpec] = &[
                    $(ParamSpec { name: stringify!($rname), ty: param_type!($rty $($rmax)?), required: true },)*
                    $(ParamSpec { name: stringify!($oname), ty: param_type!($oty $($omax)?), required: false },)*
                ];
            }
        )*

        /// A planned action's payload, typed by its kind.
        #[derive(Debug, Clone, PartialEq)]
        pub enum Action {
            $($kind($kind),)*
        }

        impl Action {
            /// Reads a resolved payload (a plan's, as the planner checked it) as `kind`'s
            /// payload; the error says which param does not fit.
            pub fn from_payload(kind: ActionKind, payload: &Value) -> Result<Action, String> {
                let read = |e: serde_json::Error| format!("the {} payload does not fit: {e}", kind.name());
                Ok(match kind {
                    $(ActionKind::$kind => Action::$kind(
                        $kind::deserialize(payload).map_err(read)?,
                    ),)*
                })
            }
        }

        impl ActionKind {
            /// The params this action takes: required ones first, each in declaration order.
            pub fn params(self) -> &'static [ParamSpec] {
                match self {
                    $(ActionKind::$kind => $kind::PARAMS,)*
                }
            }
        }
    };
}

actions! {
    /// `users_identify`: `id` plus the user fields Knock's identify takes.
    UsersIdentify {
        required { id: Id }
        optional {
            properties: Object, name: Text, email: Text, phone_number: Text, avatar: Text,
            locale: Text, timezone: Text, created_at: Any, channel_data: Object,
            preferences: Object,
        }
    }
    UsersDelete {
        required { id: Id }
        optional {}
    }
    ObjectsSet {
        required { collection: Text, id: Id }
        optional {
            properties: Object, name: Text, email: Text, phone_number: Text, avatar: Text,
            locale: Text, timezone: Text, created_at: Any, channel_data: Object,
            preferences: Object,
        }
    }
    ObjectsDelete {
        required { collection: Text, id: Id }
        optional {}
    }
    TenantsSet {
        required { id: Id }
        optional { properties: Object, name: Text, settings: Object, channel_data: Object }
    }
    TenantsDelete {
        required { id: Id }
        optional {}
    }
    ObjectsSubscribe {
        required { collection: Text, id: Id, recipients: Recipients(100) }
        optional { properties: Object }
    }
    ObjectsUnsubscribe {
        required { collection: Text, id: Id, recipients: Recipients(100) }
        optional {}
    }
    AudiencesAddMember {
        required { key: Text, members: Recipients(1000) }
        optional { tenant: Id, create_if_missing: Bool }
    }
    AudiencesRemoveMember {
        required { key: Text, members: Recipients(1000) }
        optional { tenant: Id }
    }
    WorkflowsCancel {
        required { key: Text, cancellation_key: Text }
        optional { recipients: Recipients(1000) }
    }
    WorkflowsTrigger {
        required { key: Text, recipients: Recipients(1000) }
        optional { actor: Recipient, tenant: IdOrObject, data: Object, cancellation_key: Text }
    }
    LambdaInvoke {
        required { function: Text }
        optional { payload: Any }
    }
    /// `events_forward`: puts the whole event on an EventBridge bus (what
    /// `forward_to_event_bus` adds to every accepted event of an environment).
    EventsForward {
        required { event_bus: Text }
        optional {}
    }
}

/// The fields of a payload (or an inline recipient) other than `keys`, with the entries
/// of its `properties` object merged in at the top level (as Knock stores custom
/// properties): what `users_identify`, `objects_set` and `tenants_set` store. It reads
/// the payload's fields rather than its struct's: an upsert stores every field it is
/// given (a plan from a config maps declared params only; a plan built by hand, or an
/// inline recipient, may carry more).
pub fn properties_of(fields: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    let mut out: Map<String, Value> = fields
        .iter()
        .filter(|(name, _)| *name != "properties" && !keys.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    if let Some(Value::Object(extra)) = fields.get("properties") {
        out.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

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

    pub fn param(self, name: &str) -> Option<ParamSpec> {
        self.params().iter().find(|p| p.name == name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The param table of docs/sources.md, as the catalog declares it.
    fn param_table() -> String {
        let listed = |spec: &ParamSpec| {
            let note = match spec.ty {
                ParamType::Object => " (object)".to_string(),
                ParamType::Bool => " (true/false)".to_string(),
                ParamType::Recipients { max } => format!(" (≤ {max})"),
                _ => String::new(),
            };
            format!("`{}`{note}", spec.name)
        };
        let mut table = String::from("| action | required | optional |\n|---|---|---|\n");
        for kind in ActionKind::ALL {
            let (required, optional): (Vec<_>, Vec<_>) =
                kind.params().iter().partition(|p| p.required);
            let join = |specs: Vec<&ParamSpec>| {
                specs.into_iter().map(listed).collect::<Vec<_>>().join(", ")
            };
            table += &format!(
                "| `{}` | {} | {} |\n",
                kind.name(),
                join(required),
                join(optional)
            )
            .replace("|  |", "| |");
        }
        table
    }

    #[test]
    fn the_docs_param_table_is_the_catalog() {
        let docs = include_str!("../../../docs/sources.md");
        let start = docs
            .find("| action | required | optional |")
            .expect("the param table");
        let end = docs[start..]
            .find("\n\n")
            .map_or(docs.len(), |n| start + n + 1);
        assert_eq!(
            &docs[start..end],
            param_table(),
            "docs/sources.md's param table differs from the catalog; replace it with the right side"
        );
    }

    /// Each kind's payload struct reads what the planner resolves, and its fields are
    /// its param table.
    #[test]
    fn payloads_read_resolved_params() {
        let trigger = Action::from_payload(
            ActionKind::WorkflowsTrigger,
            &serde_json::json!({"key": "k", "recipients": ["u1", {"id": 7, "email": "e"}], "tenant": {"id": "t"}}),
        )
        .unwrap();
        let Action::WorkflowsTrigger(trigger) = trigger else {
            panic!("{trigger:?}")
        };
        assert_eq!(trigger.recipients.0[0], Recipient::User(Id("u1".into())));
        assert!(matches!(&trigger.recipients.0[1], Recipient::Inline(m) if m["email"] == "e"));
        assert!(matches!(trigger.tenant, Some(IdOrObject::Object(_))));
        let one = Action::from_payload(
            ActionKind::UsersIdentify,
            &serde_json::json!({"id": 42, "name": "N", "properties": {"plan": "pro"}}),
        )
        .unwrap();
        let Action::UsersIdentify(user) = one else {
            panic!()
        };
        assert_eq!(user.id, Id("42".into()));
        assert_eq!(user.name.as_deref(), Some("N"));
        let error = Action::from_payload(ActionKind::UsersDelete, &serde_json::json!({"id": true}))
            .unwrap_err();
        assert!(
            error.contains("users_delete") && error.contains("an id must be"),
            "{error}"
        );
        let error =
            Action::from_payload(ActionKind::ObjectsDelete, &serde_json::json!({"id": "u"}))
                .unwrap_err();
        assert!(error.contains("collection"), "{error}");
    }

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
                "lambda_invoke",
                "events_forward"
            ]
        );
        for kind in ActionKind::ALL {
            assert_eq!(ActionKind::from_name(kind.name()), Some(*kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.name());
        }
        assert!(serde_json::from_value::<ActionKind>("users-identify".into()).is_err());
    }
}
