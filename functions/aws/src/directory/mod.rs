//! The directory on DynamoDB (one table per stack, `pk`/`sk`).
//!
//! Its rooms: `table.rs` (the table and the limits its writes keep to), `keys.rs` (how
//! each record is keyed), `partition.rs` (cutting an event's changes into parts that
//! fit a transaction), `plan.rs` (the writes of each part), `write.rs` (applying the
//! parts), `read.rs` (the `Directory` trait: apply and every read).
//!
//! | item | pk | sk |
//! |---|---|---|
//! | user / tenant / object | `<env>#USER#<id>` / `<env>#TENANT#<id>` / `<env>#OBJECT#<collection>#<id>` | `PROFILE` (`properties` as a map) |
//! | subscription | the object's pk | `SUB#<recipient JSON>` (`properties`) |
//! | … its reverse | the recipient's pk | `SUBOF#<collection>#<id>` |
//! | audience | `<env>#AUDIENCE#<key>` | `META` |
//! | member | the audience's pk | `MEMBER#<tenant>#<user>` |
//! | … its reverse | the user's pk | `MEMBEROF#<key>#<tenant>` |
//! | workflow run | `<env>#WORKFLOW#<key>#<shard>` (one of 32, from the run's cancellation key, else its id: [`crate::shard`]; runs an earlier version wrote are under `<env>#WORKFLOW#<key>`) | `RUN#<id>` (the run as JSON, `status`, `cancellation_key`) |
//! | run by id | `<env>#RUN#<id>` | `RUN` (`workflow_key`, `partition`: the run item's pk) |
//! | applied action | `<env>#APPLIED#<event id>` | `<index, 5 digits>` (`result`); `<index>.<part, 4 digits>` for the parts of a large action |
//!
//! **Keys.** Every part of a key that comes from a request (ids, collections, keys,
//! tenants) is escaped (`%` → `%25`, `#` → `%23`), so `#` only ever separates parts:
//! any string id round-trips, and no id can collide with another or make a cascade
//! delete reach the wrong items (an id `a#b` is stored as `a%23b`). Ids without `%` or
//! `#` are stored as they are.
//!
//! **Exactly once, in the changed item.** An action that is one upsert of one profile
//! (`users_identify`, `objects_set`, `tenants_set`: the usual case) is one conditional
//! write of that profile, which records the action in its own `applied` map (action key
//! → when, and the result) on condition that the key is not there yet: one write unit
//! instead of a two-item transaction (which DynamoDB charges twice). A redelivered
//! action finds its key and is answered with the stored result. The map keeps the keys
//! of the last [`RECENT_WINDOW_MS`] (a stream record is redelivered within 24 hours;
//! older keys are removed by the next write) and at most [`RECENT_KEYS`] of them, so the
//! item stays small; a profile with more recent actions takes the marker path below. A
//! delete of the profile first copies its recent keys into applied-action markers, so
//! that a redelivered upsert of a deleted profile does not bring it back.
//!
//! **Exactly once, in the run's own items.** A trigger whose only change is its run
//! (recipients given by id: the usual case) needs no marker: the run's id is made of
//! the action key (`wr_<event id>_<index>`), so its two items are the action's record.
//! The run-by-id item, holding the action's result, is put first, then the run item,
//! each on condition that it does not exist yet: two write units instead of a
//! three-item transaction (six). A redelivery — after a crash between the two puts or
//! after both — writes what is missing, changes nothing that is there (a run cancelled
//! since stays cancelled) and is answered with the stored result.
//!
//! **Exactly once, with markers.** Every other action: [`Directory::apply`] turns its
//! changes into
//! `TransactWriteItems` whose first item puts an applied-action marker on condition
//! that it does not exist: the changes and the marker commit together, and a re-run is
//! refused by the condition and answered with the stored result. A transaction holds at
//! most 100 items, so an action with more writes (a trigger to 1,000 inline recipients,
//! a subscription of 100 recipients, 1,000 audience members) is split into parts in an
//! order fixed by its changes alone: recipient lists are cut into fixed-size chunks and
//! the changes packed greedily by their largest write count. Each part commits with its
//! own marker, the last one with the action's marker and result, so a re-run after a
//! crash skips the parts already applied and applies the rest: every part, and so the
//! whole action, exactly once. Deletes (which cascade to links whose number only a read
//! tells) and workflow cancellations (which touch the runs matching when they run) go
//! in a part of their own; if that part has more writes than a transaction holds, the
//! excess (deleting links, marking runs cancelled, both idempotent) is written first,
//! and the last 99 writes commit with the marker.
//!
//! Property merges are `SET properties.#k = :v` updates, so only the fields sent change
//! without a read of the values; whether a profile exists (a map attribute cannot be
//! created and written into in one expression) is read for a whole part with
//! `BatchGetItem`. Deletes read the reverse items first and remove both sides.

mod keys;
mod partition;
mod plan;
mod read;
mod table;
mod write;

pub use table::{DynamoDirectory, RECENT_KEYS, RECENT_WINDOW_MS};

#[cfg(test)]
mod tests {

    use super::keys::*;
    use super::partition::*;
    use super::table::*;
    use inlet_core::directory::{DirectoryChange, RecipientRef};
    use serde_json::Map;

    #[test]
    fn key_parts_round_trip_and_never_hold_a_separator() {
        for id in ["plain", "a#b", "100%", "%23", "#", "x y/z", "ünï#%"] {
            assert!(!part(id).contains('#'), "{id}");
            assert_eq!(unpart(&part(id)), id);
        }
        // `a#b` as one id and `a`, `b` as two parts give different keys.
        assert_ne!(object_pk("e", "a#b", "c"), object_pk("e", "a", "b#c"));
        assert_eq!(
            two_parts(&subscribed_to_sk("a#b", "c%d"), "SUBOF#"),
            Some(("a#b".into(), "c%d".into()))
        );
        assert_eq!(user_pk("development", "u1"), "development#USER#u1");
    }

    #[test]
    fn large_actions_are_cut_into_parts_that_fit_a_transaction() {
        let inline: Vec<DirectoryChange> = (0..1000)
            .map(|i| DirectoryChange::IdentifyUser {
                id: format!("u{i}"),
                properties: Map::new(),
            })
            .chain([DirectoryChange::Subscribe {
                collection: "c".into(),
                id: "o".into(),
                recipients: (0..100)
                    .map(|i| RecipientRef::User(format!("u{i}")))
                    .collect(),
                properties: Map::new(),
            }])
            .collect();
        let cut = parts(&inline);
        let pieces = |p: &Vec<DirectoryChange>| -> usize { p.iter().map(cut_writes).sum() };
        assert!(
            cut.iter().all(|p| pieces(p) <= PART_WRITES),
            "{}",
            cut.len()
        );
        assert_eq!(
            cut.len(),
            14,
            "1000 upserts in 11 parts, then 3 parts of subscriptions"
        );
        assert_eq!(parts(&inline).len(), cut.len(), "the same parts every time");
        assert_eq!(
            parts(&[]).len(),
            1,
            "an action without changes still has its marker"
        );
    }

    fn cut_writes(change: &DirectoryChange) -> usize {
        cut(change.clone()).iter().map(|(_, w)| w).sum()
    }
}
