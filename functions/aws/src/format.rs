//! The format version of the items Inlet writes to the events and idempotency tables.
//!
//! Every such item carries `fv` = [`CURRENT`]. A reader asks [`version_of`] first and
//! reads each version it knows with that version's reader, so an item an earlier Inlet
//! wrote is still read (a stack is upgraded in place: its items are not rewritten), and
//! an item a later Inlet wrote is refused with an error that says so, rather than
//! misread (a stack rolled back past a format change).
//!
//! The versions:
//! - **1**: items without `fv` (every release before format versions). An event item
//!   holds the event (with its plan) as deflated JSON in `z`, or in `PART#` items
//!   counted by `zparts`; still earlier releases wrote undeflated parts counted by
//!   `parts`, or JSON in `data`. An action item holds the executor's latest `update`,
//!   or (earlier) its whole log entry in `data`, the plan then living in these items.
//!   An idempotency record is `completed`, or an `in_progress` claim an earlier release
//!   left. An event-type item may hold the last event's body as `last_sample`.
//! - **2** (current): an event item holds `z` or `zparts`; an action item holds
//!   `update`; an idempotency record is `completed`; an event-type item names its last
//!   event, whose body is the sample.
//!
//! The directory and config tables carry no `fv` yet: their items have only ever had
//! one format, so a missing `fv` already reads as their version 1, and the first change
//! to one of them adds `fv` = 2 to its writers and a version check to its readers, as
//! here. (Until then, an Inlet rolled back past such a change could not refuse the new
//! items; that is the one case this leaves open.)
//!
//! Changing what an item holds means a new version here, its writer, and a reader for
//! each older version still in the window of stored items (events are kept for the
//! retention period, so a reader may go once no item of its version can be left).

use crate::item::{Item, get_n};
use aws_sdk_dynamodb::types::AttributeValue;
use inlet_core::store::StoreError;

/// The attribute that holds an item's format version.
pub const ATTRIBUTE: &str = "fv";
/// The version this Inlet writes.
pub const CURRENT: i64 = 2;

/// The `fv` attribute of an item written now.
pub fn stamp() -> (String, AttributeValue) {
    (
        ATTRIBUTE.to_string(),
        AttributeValue::N(CURRENT.to_string()),
    )
}

/// The format version of `item` (`what` names it in the error): 1 without `fv`, an
/// error for a version newer than [`CURRENT`].
pub fn version_of(item: &Item, what: &str) -> Result<i64, StoreError> {
    if !item.contains_key(ATTRIBUTE) {
        return Ok(1);
    }
    let version = get_n(item, ATTRIBUTE)?;
    if version > CURRENT {
        return Err(StoreError::Failed(format!(
            "{what} is stored in format {version}, which this Inlet does not read (it reads \
             formats 1 to {CURRENT}): it was written by a newer Inlet; deploy that version \
             (or a later one) again"
        )));
    }
    if version < 1 {
        return Err(StoreError::Failed(format!(
            "{what} has `{ATTRIBUTE}` = {version}, which no Inlet writes (formats start at 1): \
             the item was written by something else"
        )));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::s;

    #[test]
    fn an_item_without_a_version_is_format_1_and_a_newer_one_is_refused() {
        let mut item = Item::from([("pk".to_string(), s("EVENT#e1"))]);
        assert_eq!(version_of(&item, "event e1").unwrap(), 1);
        item.extend([stamp()]);
        assert_eq!(version_of(&item, "event e1").unwrap(), CURRENT);
        item.insert(
            ATTRIBUTE.into(),
            AttributeValue::N((CURRENT + 1).to_string()),
        );
        let error = version_of(&item, "event e1").unwrap_err().to_string();
        assert!(
            error.contains("event e1")
                && error.contains("format 3")
                && error.contains("newer Inlet"),
            "{error}"
        );
    }
}
