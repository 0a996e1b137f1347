//! Write sharding of the partition keys that every event of a source environment would
//! otherwise write: the listing index's key (events) and a workflow's runs (directory).
//!
//! DynamoDB takes at most about 1,000 write units a second on one partition key, of a
//! table or of a global secondary index (a throttled index throttles the table's writes
//! too), so one such key caps a source near 1,000 events a second. Each of these keys
//! is split into [`SHARDS`] keys (`<key>#00` … `<key>#31`), the shard chosen from the id
//! of what is written (an event's, a run's): at 10,000 events a second a shard takes
//! about 310 writes a second. Reads that list (events newest first, a workflow's runs)
//! query every shard and merge; there is one more key to read, the unsharded one that
//! versions before the sharding wrote, so a stack upgraded in place lists its earlier
//! items until they expire (nothing to migrate, no index to rebuild).

/// How many keys one sharded key is split into.
pub const SHARDS: u32 = 32;

/// The shard of the item with id `id` (FNV-1a of the id: ids are random enough, and the
/// shard must be the same in every version and on every machine).
pub fn shard_of(id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in id.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

/// `base` with the shard of `id`.
pub fn sharded(base: &str, id: &str) -> String {
    with_shard(base, shard_of(id))
}

/// `base` with shard `shard`.
pub fn with_shard(base: &str, shard: u32) -> String {
    format!("{base}#{shard:02}")
}

/// Every key a read must query for `base`: its shards, then the unsharded key earlier
/// versions wrote.
pub fn every_key(base: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|shard| with_shard(base, shard))
        .chain([base.to_string()])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_spread_evenly_over_the_shards() {
        let mut counts = [0u32; SHARDS as usize];
        for _ in 0..32_000 {
            counts[shard_of(&inlet_core::store::new_event_id()) as usize] += 1;
        }
        // 1,000 each on average; no shard near twice that.
        assert!(
            counts.iter().all(|c| (800..1_200).contains(c)),
            "{counts:?}"
        );
        assert_eq!(sharded("a#b", "x"), format!("a#b#{:02}", shard_of("x")));
        assert_eq!(every_key("k").len(), SHARDS as usize + 1);
        assert_eq!(every_key("k").last().unwrap(), "k");
    }
}
