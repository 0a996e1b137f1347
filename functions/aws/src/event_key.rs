//! The key of an event's item in the events table (`pk` = `EVENT#<id>`, `sk` =
//! `EVENT`), and whether that item is stored: what both the event log (a duplicate's
//! holder must exist) and the idempotency records (a record names a stored event) ask.

use crate::error::store_error;
use crate::item::s;
use aws_sdk_dynamodb::Client;
use inlet_core::store::StoreError;

/// The `pk` of event `id`'s item.
pub(crate) fn event_pk(id: &str) -> String {
    format!("EVENT#{id}")
}

/// Whether event `event_id`'s item is stored (a strongly consistent read of its key).
pub(crate) async fn is_stored(
    client: &Client,
    table: &str,
    event_id: &str,
) -> Result<bool, StoreError> {
    let found = client
        .get_item()
        .table_name(table)
        .key("pk", s(event_pk(event_id)))
        .key("sk", s("EVENT"))
        .projection_expression("pk")
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| store_error("read event", e))?
        .item;
    Ok(found.is_some())
}
