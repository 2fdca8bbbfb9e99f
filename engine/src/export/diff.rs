//! The Merkle diff of two snapshots: walk both trees together and descend only where
//! hashes differ, so the cost follows the number of changed records (times the depth),
//! not the store's size.
use std::collections::BTreeMap;

use crate::ids::NodeHash;
use crate::merkle::{StateNode, SubjectRef};
use crate::model::{Collection, Leaf};
use crate::store::{Store, StoreError};

/// A record that differs between base and target, with where it was and is.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub collection: Collection,
    pub id: String,
    pub old: Option<(String, Leaf)>,
    pub new: Option<(String, Leaf)>,
}

fn leaves_of(store: &Store, r: Option<&SubjectRef>) -> Result<Vec<Leaf>, StoreError> {
    match r {
        None => Ok(Vec::new()),
        Some(r) => Ok(store.subject_node(&r.root)?.leaves),
    }
}

/// Every record that differs between `base` and `target`, keyed by (collection, id):
/// a record that moved to another subject is one change.
pub fn diff(store: &Store, base: &StateNode, target: &StateNode) -> Result<Vec<Change>, StoreError> {
    let mut out: BTreeMap<(Collection, String), Change> = BTreeMap::new();
    for c in Collection::ALL {
        let (bk, tk) = (base.kind(c), target.kind(c));
        if bk.root == tk.root {
            continue;
        }
        let (bkind, tkind) = (store.kind_node(bk)?, store.kind_node(tk)?);
        for shard in 0..=255u8 {
            let (br, tr): (&NodeHash, &NodeHash) = (&bkind.shards[shard as usize], &tkind.shards[shard as usize]);
            if br == tr {
                continue;
            }
            let bs = store.shard_node(shard, br)?;
            let ts = store.shard_node(shard, tr)?;
            let mut subjects: BTreeMap<&str, (Option<&SubjectRef>, Option<&SubjectRef>)> = BTreeMap::new();
            for s in &bs.subjects {
                subjects.entry(&s.subject).or_default().0 = Some(s);
            }
            for s in &ts.subjects {
                subjects.entry(&s.subject).or_default().1 = Some(s);
            }
            for (subject, (b, t)) in subjects {
                if let (Some(b), Some(t)) = (b, t) {
                    if b.root == t.root {
                        continue;
                    }
                }
                let mut ids: BTreeMap<String, (Option<Leaf>, Option<Leaf>)> = BTreeMap::new();
                for l in leaves_of(store, b)? {
                    let id = l.id.clone();
                    ids.entry(id).or_default().0 = Some(l);
                }
                for l in leaves_of(store, t)? {
                    let id = l.id.clone();
                    ids.entry(id).or_default().1 = Some(l);
                }
                for (id, (ol, nl)) in ids {
                    if let (Some(o), Some(n)) = (&ol, &nl) {
                        if o.object == n.object {
                            continue;
                        }
                    }
                    let ch = out.entry((c, id.clone())).or_insert_with(|| Change {
                        collection: c,
                        id,
                        old: None,
                        new: None,
                    });
                    if let Some(o) = ol {
                        ch.old = Some((subject.to_string(), o));
                    }
                    if let Some(n) = nl {
                        ch.new = Some((subject.to_string(), n));
                    }
                }
            }
        }
    }
    Ok(out.into_values().collect())
}
