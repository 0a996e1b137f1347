//! The directory table of a stack, and the limits its writes keep to.

use aws_sdk_dynamodb::Client;

/// How long a profile keeps the key of an action applied to it (see the module docs).
pub const RECENT_WINDOW_MS: i64 = 48 * 3_600_000;
/// The most recent action keys a profile keeps; beyond, actions take the marker path.
pub const RECENT_KEYS: usize = 8;

/// DynamoDB's limit of items per transaction.
pub(super) const MAX_TRANSACTION_ITEMS: usize = 100;
/// Writes of one part besides its marker.
pub(super) const PART_WRITES: usize = MAX_TRANSACTION_ITEMS - 1;
/// DynamoDB's limit of keys per `BatchGetItem`.
pub(super) const MAX_BATCH_GET: usize = 100;
/// Recipients (subscriptions) and members (audiences) per part: two items each (the
/// link and its reverse), plus the object or audience item.
pub(super) const LINKS_PER_PART: usize = 45;

pub struct DynamoDirectory {
    pub client: Client,
    pub table: String,
}
