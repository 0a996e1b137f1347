//! Cutting an event's directory changes into parts that each fit one transaction
//! (pure: no I/O), after coalescing changes to the same record.

use super::keys::*;
use super::table::*;
use inlet_core::directory::DirectoryChange;

/// One transaction may touch an item once: upserts of the same user, object or tenant
/// (an inline recipient who is also the actor, say) are merged into the first one, later
/// fields winning.
pub(super) fn coalesce(changes: &[DirectoryChange]) -> Vec<DirectoryChange> {
    let mut out: Vec<DirectoryChange> = Vec::with_capacity(changes.len());
    for change in changes {
        let target = |c: &DirectoryChange| match c {
            DirectoryChange::IdentifyUser { id, .. } => Some(format!("u{id}")),
            DirectoryChange::SetObject { collection, id, .. } => {
                Some(format!("o{}#{}", part(collection), part(id)))
            }
            DirectoryChange::SetTenant { id, .. } => Some(format!("t{id}")),
            _ => None,
        };
        let existing =
            target(change).and_then(|t| out.iter_mut().find(|c| target(c).as_ref() == Some(&t)));
        match (existing, change) {
            (
                Some(DirectoryChange::IdentifyUser { properties, .. })
                | Some(DirectoryChange::SetObject { properties, .. })
                | Some(DirectoryChange::SetTenant { properties, .. }),
                DirectoryChange::IdentifyUser {
                    properties: more, ..
                }
                | DirectoryChange::SetObject {
                    properties: more, ..
                }
                | DirectoryChange::SetTenant {
                    properties: more, ..
                },
            ) => inlet_core::directory::merge_properties(properties, more),
            _ => out.push(change.clone()),
        }
    }
    out
}

/// A change cut so that each piece fits one part, each with the most writes it can need.
/// Deletes and cancellations count as a whole part: their writes depend on what a read
/// finds.
pub(super) fn cut(change: DirectoryChange) -> Vec<(DirectoryChange, usize)> {
    fn chunks<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
        if items.is_empty() {
            return vec![Vec::new()];
        }
        items.chunks(LINKS_PER_PART).map(<[T]>::to_vec).collect()
    }
    match change {
        DirectoryChange::IdentifyUser { .. }
        | DirectoryChange::SetObject { .. }
        | DirectoryChange::SetTenant { .. }
        | DirectoryChange::DeleteTenant { .. } => vec![(change, 1)],
        DirectoryChange::RecordWorkflowRun(_) => vec![(change, 2)],
        DirectoryChange::DeleteUser { .. }
        | DirectoryChange::DeleteObject { .. }
        | DirectoryChange::CancelWorkflowRuns { .. } => vec![(change, PART_WRITES)],
        DirectoryChange::Subscribe {
            collection,
            id,
            recipients,
            properties,
        } => chunks(&recipients)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len() + 1;
                let piece = DirectoryChange::Subscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients: chunk,
                    properties: properties.clone(),
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::Unsubscribe {
            collection,
            id,
            recipients,
        } => chunks(&recipients)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len();
                let piece = DirectoryChange::Unsubscribe {
                    collection: collection.clone(),
                    id: id.clone(),
                    recipients: chunk,
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::AddAudienceMembers {
            key,
            members,
            tenant,
            create_if_missing,
        } => chunks(&members)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len() + 1;
                let piece = DirectoryChange::AddAudienceMembers {
                    key: key.clone(),
                    members: chunk,
                    tenant: tenant.clone(),
                    create_if_missing,
                };
                (piece, writes)
            })
            .collect(),
        DirectoryChange::RemoveAudienceMembers {
            key,
            members,
            tenant,
        } => chunks(&members)
            .into_iter()
            .map(|chunk| {
                let writes = 2 * chunk.len();
                let piece = DirectoryChange::RemoveAudienceMembers {
                    key: key.clone(),
                    members: chunk,
                    tenant: tenant.clone(),
                };
                (piece, writes)
            })
            .collect(),
    }
}

/// The parts of one action: its changes cut and packed in order, each part within one
/// transaction (with its marker). Fixed by the changes alone, so a re-run cuts the same
/// parts. Never empty: an action without changes still commits its marker.
pub(super) fn parts(changes: &[DirectoryChange]) -> Vec<Vec<DirectoryChange>> {
    let mut parts: Vec<Vec<DirectoryChange>> = vec![Vec::new()];
    let mut used = 0;
    for (piece, writes) in coalesce(changes).into_iter().flat_map(cut) {
        let current = parts.last_mut().expect("never empty");
        if !current.is_empty() && used + writes > PART_WRITES {
            parts.push(Vec::new());
            used = 0;
        }
        parts.last_mut().expect("never empty").push(piece);
        used += writes;
    }
    parts
}
