//! Plan-then-apply for record mutations (ingest, remove, import).
//!
//! [`plan`] reads the live entries it replaces and computes the new Merkle state
//! without writing anything, so a dry run is free and a refused plan leaves the store
//! untouched. [`commit`] writes the plan's nodes and the record, source and head
//! changes in one synced batch.
use std::collections::{BTreeMap, BTreeSet};

use rocksdb::WriteBatch;

use crate::ids::NodeHash;
use crate::merkle::StateNode;
use crate::model::{Collection, Leaf, Tenant};
use crate::store::tree::ChangeSet;
use crate::store::{
    encode_entry, head_key, record_key, source_key, RecordEntry, Store, StoreError, CF_META, CF_RECORDS, CF_SOURCES,
};

/// Record-level changes for one tenant.
#[derive(Default, Debug)]
pub struct Mutation {
    /// New or replaced records. An entry equal to the live one is a no-op.
    pub upserts: BTreeMap<(Collection, String), RecordEntry>,
    /// Records to remove (absent ones are ignored).
    pub deletes: BTreeSet<(Collection, String)>,
    /// Drop every record of the tenant first (full import, reset baseline).
    pub reset: bool,
}

/// Per-collection counts of what a plan does.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChangeCounts {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
}

pub struct Plan {
    pub tenant: Tenant,
    pub base: StateNode,
    pub new_state: StateNode,
    pub counts: BTreeMap<Collection, ChangeCounts>,
    nodes: Vec<(NodeHash, Vec<u8>)>,
    /// Keys of `Mutation::upserts` to write, with the source they had (entries are not
    /// copied: at a million records the copies would double the memory).
    puts: Vec<((Collection, String), Option<String>)>,
    dels: Vec<(Collection, String, String)>,
    reset: bool,
}

impl Plan {
    pub fn root(&self) -> NodeHash {
        self.new_state.root()
    }
    pub fn is_noop(&self) -> bool {
        !self.reset && self.puts.is_empty() && self.dels.is_empty()
    }

    /// Objects of the records this plan writes (they must be stored before `commit`).
    pub fn objects<'a>(&'a self, m: &'a Mutation) -> impl Iterator<Item = crate::ids::ObjectId> + 'a {
        self.puts.iter().filter_map(|(k, _)| m.upserts.get(k).map(|e| e.object))
    }
}

fn leaf_of(id: &str, e: &RecordEntry) -> Leaf {
    Leaf {
        id: id.to_string(),
        object: e.object,
        modified: e.modified,
    }
}

/// Compute the effect of `m` on the tenant's current state.
pub fn plan(store: &Store, tenant: &Tenant, m: &Mutation) -> Result<Plan, StoreError> {
    let current = store.state(tenant)?;
    let base = if m.reset {
        StateNode::empty(tenant.as_str())
    } else {
        current.clone()
    };
    let mut changes = ChangeSet::default();
    let mut counts: BTreeMap<Collection, ChangeCounts> = BTreeMap::new();
    let mut puts = Vec::new();
    let mut dels = Vec::new();
    for ((c, id), entry) in &m.upserts {
        let old = if m.reset { None } else { store.record(tenant, *c, id)? };
        // (new entry, old source) — the source index entry moves with the record.
        match &old {
            Some(o) if o.object == entry.object && o.subject == entry.subject => {
                if o.source != entry.source || o.derived != entry.derived {
                    puts.push(((*c, id.clone()), Some(o.source.clone())));
                }
                continue;
            }
            Some(o) => {
                if o.subject != entry.subject {
                    changes.delete(*c, &o.subject, id);
                }
                counts.entry(*c).or_default().changed += 1;
            }
            None => counts.entry(*c).or_default().added += 1,
        }
        changes.upsert(*c, &entry.subject, leaf_of(id, entry));
        puts.push(((*c, id.clone()), old.map(|o| o.source)));
    }
    if !m.reset {
        for (c, id) in &m.deletes {
            if m.upserts.contains_key(&(*c, id.clone())) {
                continue;
            }
            if let Some(o) = store.record(tenant, *c, id)? {
                changes.delete(*c, &o.subject, id);
                counts.entry(*c).or_default().removed += 1;
                dels.push((*c, id.clone(), o.source));
            }
        }
    }
    if m.reset {
        // Everything live that the new set does not hold counts as removed.
        for k in &current.kinds {
            let kept = m.upserts.keys().filter(|(c, _)| *c == k.collection).count() as u64;
            if k.records > kept {
                counts.entry(k.collection).or_default().removed += k.records - kept;
            }
        }
    }
    let update = store.apply_changes(&base, &changes)?;
    Ok(Plan {
        tenant: tenant.clone(),
        base: current,
        new_state: update.state,
        counts,
        nodes: update.nodes,
        puts,
        dels,
        reset: m.reset,
    })
}

/// Write a plan atomically, together with `extra` meta entries (catalog, history).
/// `m` is the mutation the plan was made from.
pub fn commit(store: &Store, plan: &Plan, m: &Mutation, extra: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
    let t = plan.tenant.as_str();
    // Nodes are immutable and content-addressed: write them ahead, unreferenced.
    for chunk in plan.nodes.chunks(20_000) {
        let mut b = WriteBatch::default();
        store.batch_nodes(&mut b, chunk);
        store.write_unreferenced(b)?;
    }
    let mut b = WriteBatch::default();
    if plan.reset {
        let lo = format!("{t}\0").into_bytes();
        let hi = format!("{t}\u{1}").into_bytes();
        b.delete_range_cf(store.cf(CF_RECORDS), &lo, &hi);
        b.delete_range_cf(store.cf(CF_SOURCES), &lo, &hi);
    }
    for (c, id, old_source) in &plan.dels {
        store.batch_delete(&mut b, CF_RECORDS, &record_key(t, *c, id));
        store.batch_delete(&mut b, CF_SOURCES, &source_key(t, old_source, *c, id));
    }
    for ((c, id), old_source) in &plan.puts {
        let entry = m
            .upserts
            .get(&(*c, id.clone()))
            .expect("plans are committed with their mutation");
        if let Some(s) = old_source {
            store.batch_delete(&mut b, CF_SOURCES, &source_key(t, s, *c, id));
        }
        store.batch_put(&mut b, CF_RECORDS, &record_key(t, *c, id), &encode_entry(entry));
        if c.is_primary() {
            store.batch_put(&mut b, CF_SOURCES, &source_key(t, &entry.source, *c, id), b"");
        }
    }
    store.batch_put(&mut b, CF_META, &head_key(t), plan.root().as_bytes());
    for (k, v) in extra {
        store.batch_put(&mut b, CF_META, k, v);
    }
    store.commit(b)
}
