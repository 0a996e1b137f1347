//! The statuses the stores keep, each an enum whose stored names are written once: an
//! event's status, its verification result, and where each action of its plan stands.
//! A stored value that is none of an enum's names is an error where it is read, never
//! taken for another status.

use serde::{Deserialize, Serialize};

/// An enum of stored names: each variant's name is written once, in its `strum`
/// attribute (or the enum's `serialize_all`), and serde, `as_str` and `parse` all use it
/// (a stored value that is none of them is an error where it is read, never taken for
/// another status).
macro_rules! stored_names {
    ($(#[$meta:meta])* pub enum $name:ident { $($body:tt)* }) => {
        #[derive(
            Debug,
            Clone,
            Copy,
            PartialEq,
            Eq,
            Serialize,
            Deserialize,
            strum::IntoStaticStr,
            strum::EnumString,
        )]
        #[serde(into = "&'static str", try_from = "String")]
        $(#[$meta])*
        pub enum $name { $($body)* }

        impl $name {
            /// The name stored and shown.
            pub fn as_str(self) -> &'static str {
                self.into()
            }

            /// The status of a stored name, or `None` for a name none has.
            pub fn parse(text: &str) -> Option<Self> {
                text.parse().ok()
            }
        }

        impl TryFrom<String> for $name {
            type Error = strum::ParseError;
            fn try_from(text: String) -> Result<Self, strum::ParseError> {
                text.parse()
            }
        }
    };
}

stored_names! {
    #[strum(serialize_all = "snake_case")]
    pub enum EventStatus {
        Accepted,
        Duplicate,
        Rejected,
        InvalidEventType,
        Error,
        /// Answered by the source itself (a script's or preset's `http_response`: a
        /// handshake or challenge); logged, runs no actions.
        Answered,
    }
}

stored_names! {
    /// Whether verification was enforced and what the script said.
    pub enum VerificationStatus {
        #[strum(serialize = "none")]
        None,
        #[strum(serialize = "enforced:verified")]
        EnforcedVerified,
        #[strum(serialize = "enforced:unverified")]
        EnforcedUnverified,
        #[strum(serialize = "unenforced:verified")]
        UnenforcedVerified,
        #[strum(serialize = "unenforced:unverified")]
        UnenforcedUnverified,
    }
}

impl VerificationStatus {
    pub fn from_parts(enforced: bool, verified: bool) -> Self {
        match (enforced, verified) {
            (true, true) => VerificationStatus::EnforcedVerified,
            (true, false) => VerificationStatus::EnforcedUnverified,
            (false, true) => VerificationStatus::UnenforcedVerified,
            (false, false) => VerificationStatus::UnenforcedUnverified,
        }
    }
}

stored_names! {
    /// Where an action of the plan stands.
    #[strum(serialize_all = "snake_case")]
    pub enum ActionStatus {
        /// Waiting for the executor (or for a retry).
        Planned,
        Succeeded,
        Skipped,
        Failed,
    }
}
