//! The records a delta carries: the Merkle diff classified under the selectors (added,
//! changed, removed), upserts grouped into units, the removed lines, and the delta index's
//! subject roots. Used by `export delta` and by the published tree's bundle-layout deltas.
use std::collections::BTreeMap;

use super::diff::{diff_keeping_shards, Change, SubjectRoots};
use super::select::Filter;
use super::units::{UnitInput, UnitOutput};
use super::ExportError;
use crate::bundle::format::RemovedLine;
use crate::merkle::StateNode;
use crate::model::{shard_of, Collection, Leaf};
use crate::store::Store;

/// The kinds a delta's `removed/<kind>.jsonl` files are named after.
pub const KINDS: [&str; 5] = ["advisories", "vex", "sboms", "policy", "consensus"];

pub type DeltaSets = (
    BTreeMap<Collection, u64>,
    BTreeMap<Collection, u64>,
    BTreeMap<Collection, u64>,
    Vec<UnitInput>,
    Vec<RemovedLine>,
    SubjectRoots,
);

/// Classify the Merkle diff under the selectors and group upserts into units.
pub fn delta_sets(
    store: &Store,
    base: &StateNode,
    target: &StateNode,
    filter: &Filter,
) -> Result<DeltaSets, ExportError> {
    let (changes, known) = diff_keeping_shards(store, base, target)?;
    let (added, changed, removed, units, removed_lines) = classify_changes(&changes, filter);
    Ok((added, changed, removed, units, removed_lines, known))
}

/// Added, changed and removed counts, the upserts grouped into units, and the removed lines
/// of a Merkle diff under the selectors (also the published tree's bundle-layout deltas).
pub type Classified = (
    BTreeMap<Collection, u64>,
    BTreeMap<Collection, u64>,
    BTreeMap<Collection, u64>,
    Vec<UnitInput>,
    Vec<RemovedLine>,
);

pub fn classify_changes(changes: &[Change], filter: &Filter) -> Classified {
    let mut added = BTreeMap::new();
    let mut changed = BTreeMap::new();
    let mut removed = BTreeMap::new();
    let mut upserts: BTreeMap<(Collection, u8), BTreeMap<String, Vec<Leaf>>> = BTreeMap::new();
    let mut removed_lines = Vec::new();
    let sel = |x: &Option<(String, Leaf)>| x.clone().filter(|(s, l)| filter.subject(s) && filter.leaf(l));
    for ch in changes {
        let (o, n) = (sel(&ch.old), sel(&ch.new));
        match (&o, &n) {
            (None, None) => continue,
            (Some((os, _)), None) => {
                *removed.entry(ch.collection).or_insert(0u64) += 1;
                removed_lines.push(RemovedLine {
                    kind: ch.collection.name().into(),
                    subject: os.clone(),
                    id: ch.id.clone(),
                });
                continue;
            }
            (None, Some(_)) => *added.entry(ch.collection).or_insert(0u64) += 1,
            (Some((os, ol)), Some((ns, nl))) => {
                if os == ns && ol.object == nl.object {
                    continue;
                }
                *changed.entry(ch.collection).or_insert(0u64) += 1;
            }
        }
        let (subject, leaf) = n.expect("upserts have a new side");
        upserts
            .entry((ch.collection, shard_of(&subject)))
            .or_default()
            .entry(subject)
            .or_default()
            .push(leaf);
    }
    removed_lines.sort();
    let units = upserts
        .into_iter()
        .map(|((c, shard), subjects)| UnitInput {
            collection: c,
            shard,
            subjects: subjects
                .into_iter()
                .map(|(s, mut l)| {
                    l.sort_by(|a, b| a.id.cmp(&b.id));
                    (s, l)
                })
                .collect(),
        })
        .collect();
    (added, changed, removed, units, removed_lines)
}

/// A delta's `removed/<kind>.jsonl` files (one per kind, empty ones too).
pub fn removed_files(lines: &[RemovedLine]) -> Vec<(String, Vec<u8>)> {
    KINDS
        .iter()
        .map(|k| {
            let mut body = Vec::new();
            for l in lines
                .iter()
                .filter(|l| Collection::from_name(&l.kind).is_some_and(|c| c.kind() == *k))
            {
                body.extend_from_slice(&serde_json::to_vec(l).expect("json"));
                body.push(b'\n');
            }
            (format!("removed/{k}.jsonl"), body)
        })
        .collect()
}

/// Delta indexes name each affected subject's root in the target (filtered) state,
/// not the root of the changed records alone. The diff reported the target root of every
/// subject whose records changed, so no shard node is read again here.
pub fn fix_delta_index(
    store: &Store,
    filter: &Filter,
    outputs: &mut [UnitOutput],
    known: &SubjectRoots,
) -> Result<(), ExportError> {
    for o in outputs.iter_mut() {
        for e in o.index.iter_mut() {
            let stored = *known.get(&(o.collection, e.subject.clone())).ok_or_else(|| {
                ExportError::Layout(format!(
                    "{} subject {:?} has changed records the Merkle diff did not report",
                    o.collection.name(),
                    e.subject
                ))
            })?;
            e.root = match stored {
                None => None,
                // Without a time window a subject is exported whole: its stored root is it.
                Some(r) if !filter.has_time_window() => filter.subject(&e.subject).then_some(r),
                Some(r) => {
                    let leaves: Vec<Leaf> = store
                        .subject_node(&r)?
                        .leaves
                        .into_iter()
                        .filter(|l| filter.leaf(l))
                        .collect();
                    (!leaves.is_empty() && filter.subject(&e.subject))
                        .then(|| crate::merkle::subject_root(&e.subject, &leaves))
                }
            };
        }
    }
    Ok(())
}
