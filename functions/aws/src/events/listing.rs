//! Listing a source environment's events through the sharded listing index: each shard
//! read newest first, a few entries at once, merged, and read further only while it may
//! still hold an entry of the page; then the page's events read from the table.

use super::DynamoEventLog;
use super::items::{assemble, listing_key};
use crate::error::store_error;
use crate::item::{Item, get_n, get_s, n, s};
use inlet_core::store::{EventLog, EventPage, EventQuery, StoreError};

impl DynamoEventLog {
    /// A page of a source environment's events, newest first (see the module doc).
    pub(super) async fn list_page(&self, query: &EventQuery) -> Result<EventPage, StoreError> {
        let (Some(source), Some(environment)) = (&query.source, &query.environment) else {
            return Err(StoreError::Failed(
                "listing events on AWS needs a source and an environment (they are the index key)"
                    .into(),
            ));
        };
        // The index holds the keys and what a listing filters on. Its key is sharded
        // ([`crate::shard`]): each shard is read newest first, a few entries at once,
        // and merged; a shard is read further only while it may still hold one of the
        // page's entries (its last entry read is newer than the page's oldest so far).
        // The first reads take `limit / shards + 2` entries a shard (four times that
        // when filtered), which nearly always settles an unfiltered page; a shard read
        // again reads four times as many as before. The page's events are then read
        // from the table.
        let upper = query.cursor.clone().unwrap_or_else(|| "~".into());
        let mut shards: Vec<ShardRead> = crate::shard::every_key(&listing_key(source, environment))
            .into_iter()
            .map(ShardRead::new)
            .collect();
        let filtered = query.status.is_some()
            || query.event_type.is_some()
            || query.since_ms.is_some()
            || query.until_ms.is_some();
        let wanted = query.limit + 1;
        // The first read of each shard; a shard read again reads four times as many
        // (filtered, DynamoDB applies the limit before the filter).
        let per_shard = (wanted.div_ceil(crate::shard::SHARDS as usize) + 2) as i32;
        let mut page_limit = if filtered { per_shard * 4 } else { per_shard };
        let mut ids: Vec<String>;
        loop {
            let cutoff = {
                ids = shards.iter().flat_map(|s| s.ids.iter().cloned()).collect();
                ids.sort_unstable_by(|a, b| b.cmp(a));
                ids.dedup();
                ids.get(query.limit).cloned()
            };
            let reads = shards.iter_mut().filter(|shard| {
                !shard.done
                    && match (&cutoff, &shard.last_read) {
                        (Some(cutoff), Some(last)) => last > cutoff,
                        _ => true,
                    }
            });
            let reads: Vec<_> = reads
                .map(|shard| self.read_shard(shard, &upper, query, Some(page_limit)))
                .collect();
            if reads.is_empty() {
                break;
            }
            futures::future::try_join_all(reads).await?;
            page_limit = (page_limit * 4).min(1_000);
        }
        ids.truncate(wanted);
        let mut items = self.read_events(&ids).await?;
        let mut events = Vec::new();
        for id in ids {
            let Some(item) = items.remove(&id) else {
                continue; // expired between the index and the read
            };
            let whole = if item.contains_key("zparts") || item.contains_key("parts") {
                self.get(&id).await?
            } else {
                assemble(std::slice::from_ref(&item))?.map(|(event, _)| event)
            };
            if let Some(mut event) = whole.filter(|e| query.matches(e)) {
                event.actions.clear();
                events.push(event);
            }
        }
        Ok(EventPage::first(events, query.limit))
    }

    /// One more page of one key of the listing index (below `upper`, newest first, at
    /// most `limit` entries), into `shard`.
    async fn read_shard(
        &self,
        shard: &mut ShardRead,
        upper: &str,
        query: &EventQuery,
        limit: Option<i32>,
    ) -> Result<(), StoreError> {
        let mut request = self
            .client
            .query()
            .table_name(&self.table)
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :pk AND gsi1sk < :upper")
            .expression_attribute_values(":pk", s(&shard.key))
            .expression_attribute_values(":upper", s(upper))
            .scan_index_forward(false)
            .set_limit(limit)
            .set_exclusive_start_key(shard.start.take());
        // The filters on the projected attributes, applied by DynamoDB (the entries read
        // are paid for all the same, but only the matches come back). An entry without
        // the attribute (written by an early version) passes: its event is checked.
        let mut filters = Vec::new();
        if let Some(status) = query.status {
            filters.push("(attribute_not_exists(#status) OR #status = :status)");
            request = request
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status.as_str()));
        }
        if let Some(event_type) = &query.event_type {
            filters.push("(attribute_not_exists(#status) OR etype = :etype)");
            request = request
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":etype", s(event_type));
        }
        if let Some(since) = query.since_ms {
            filters.push("(attribute_not_exists(#at) OR #at >= :since)");
            request = request.expression_attribute_values(":since", n(since));
        }
        if let Some(until) = query.until_ms {
            filters.push("(attribute_not_exists(#at) OR #at < :until)");
            request = request.expression_attribute_values(":until", n(until));
        }
        if query.since_ms.is_some() || query.until_ms.is_some() {
            request = request.expression_attribute_names("#at", "at");
        }
        if !filters.is_empty() {
            request = request.filter_expression(filters.join(" AND "));
        }
        let page = request
            .send()
            .await
            .map_err(|e| store_error("list events", e))?;
        for item in page.items.unwrap_or_default() {
            let id = get_s(&item, "gsi1sk")?.to_string();
            if listing_matches(&item, query) {
                shard.ids.push(id.clone());
            }
            shard.last_read = Some(id);
        }
        // Entries the filter left out were read too: the page ends at its last key.
        if let Some(last) = page
            .last_evaluated_key
            .as_ref()
            .and_then(|key| get_s(key, "gsi1sk").ok())
        {
            shard.last_read = Some(last.to_string());
        }
        shard.start = page.last_evaluated_key;
        shard.done = shard.start.is_none();
        Ok(())
    }
}

/// Whether an index entry can match `query` (the event itself is checked again).
fn listing_matches(item: &Item, query: &EventQuery) -> bool {
    let text = |name| {
        item.get(name)
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
    };
    let at = get_n(item, "at").ok();
    query
        .status
        .is_none_or(|status| text("status").is_none_or(|s| s == status.as_str()))
        // An entry with a status but no type is an event without one (a rejected
        // request); one with neither was indexed before the index projected them.
        && query
            .event_type
            .as_deref()
            .is_none_or(|t| text("etype") == Some(t) || text("status").is_none())
        && query.since_ms.is_none_or(|t| at.is_none_or(|at| at >= t))
        && query.until_ms.is_none_or(|t| at.is_none_or(|at| at < t))
}

/// What a listing has read of one key of the listing index.
struct ShardRead {
    key: String,
    /// The matching ids read, newest first.
    ids: Vec<String>,
    /// The oldest id read (matching or not).
    last_read: Option<String>,
    start: Option<Item>,
    done: bool,
}

impl ShardRead {
    fn new(key: String) -> Self {
        ShardRead {
            key,
            ids: Vec::new(),
            last_read: None,
            start: None,
            done: false,
        }
    }
}
