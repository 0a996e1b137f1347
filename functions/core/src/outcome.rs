//! What became of a request to `/receive/{token}`, as the pipeline decided it — given
//! next to the answer ([`crate::pipeline::Ingested`]), so that what counts requests
//! (the AWS metrics) reads the decision instead of guessing it from the answer's body
//! (a source's own answer may say anything).

/// The outcome of one webhook request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Outcome {
    /// Stored; its actions will run (202).
    Accepted,
    /// The duplicate of a stored event (200).
    Duplicate,
    /// Stored without an event type; no actions (202).
    InvalidEventType,
    /// Answered by the source itself (a handshake or challenge); logged.
    Answered,
    /// Not verified (401); logged.
    Rejected,
    /// Refused before it was processed: unknown token, wrong method, a body too large
    /// or not JSON (4xx); not logged.
    Refused,
    /// Not accepted for now (5xx); the sender retries.
    Unavailable,
}

impl Outcome {
    /// The outcome's name (`accepted`, `invalid_event_type`, ...).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The outcome of an error answer with `status`.
    pub fn of_error(status: u16) -> Self {
        match status {
            401 => Outcome::Rejected,
            500.. => Outcome::Unavailable,
            _ => Outcome::Refused,
        }
    }
}
