//! Plan-then-apply for record mutations (ingest, remove, delta import).
//!
//! [`plan`] reads the live entries it replaces and computes the new Merkle state
//! without writing anything, so a dry run is free and a refused plan leaves the store
//! untouched. [`commit`] writes the plan's nodes and the record, source and head
//! changes in one synced batch. Replacing a tenant's whole state (full import) goes
//! through `import::bulk` instead, which bulk-loads a new records generation.
use std::collections::{BTreeMap, BTreeSet};

use rocksdb::WriteBatch;

use crate::ids::{InputDigest, NodeHash};
use crate::merkle::StateNode;
use crate::model::{Collection, Leaf, Tenant};
use crate::store::deferred::{DeferredSink, DeferredTree};
use crate::store::staging::{LiveOps, LiveView, RecordOps, RecordView};
use crate::store::tree::{ChangeSet, LeafSink};
use crate::store::{
    encode_entry, head_key, head_value, Keyspace, RecordEntry, Store, StoreError, CF_META, CF_RECORDS, CF_SOURCES,
};

/// Record-level changes for one tenant.
#[derive(Default, Debug)]
pub struct Mutation {
    /// New or replaced records. An entry equal to the live one is a no-op.
    pub upserts: BTreeMap<(Collection, String), RecordEntry>,
    /// Records to remove (absent ones are ignored).
    pub deletes: BTreeSet<(Collection, String)>,
    /// Input digests of upserted primary records (ingest): stored in their source index
    /// entry; an upsert without one stores the empty value (digest unknown).
    pub digests: BTreeMap<(Collection, String), InputDigest>,
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
    keyspace: Keyspace,
    nodes: Vec<(NodeHash, Vec<u8>)>,
    /// Keys of `Mutation::upserts` to write, with the source they had (entries are not
    /// copied: at a million records the copies would double the memory).
    puts: Vec<((Collection, String), Option<String>)>,
    dels: Vec<(Collection, String, String)>,
}

impl Plan {
    pub fn root(&self) -> NodeHash {
        self.new_state.root()
    }
    pub fn is_noop(&self) -> bool {
        self.puts.is_empty() && self.dels.is_empty()
    }

    /// Objects of the records this plan writes (they must be stored before `commit`).
    /// Where each object the plan writes is stored.
    pub fn objects<'a>(&'a self, m: &'a Mutation) -> impl Iterator<Item = crate::store::ObjectKey> + 'a {
        self.puts.iter().filter_map(|(k, _)| {
            m.upserts
                .get(k)
                .map(|e| crate::store::ObjectKey::new(k.0, &e.subject, &e.object))
        })
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
    plan_on(store, &LiveView::new(store, tenant)?, tenant, store.state(tenant)?, m)
}

/// Compute the effect of `m` on `base`, whose records `view` shows (the live ones, or
/// those of a staged ingest's earlier chunks).
pub fn plan_on(
    store: &Store,
    view: &dyn RecordView,
    tenant: &Tenant,
    base: StateNode,
    m: &Mutation,
) -> Result<Plan, StoreError> {
    let mut changes = ChangeSet::default();
    let mut plan = plan_records(view, tenant, base, m, &mut changes)?;
    let update = store.apply_changes(&plan.base, &changes)?;
    plan.new_state = update.state;
    plan.nodes = update.nodes;
    Ok(plan)
}

/// Like [`plan_on`], with the Merkle update left to `tree` (a staged ingest applies all
/// its chunks' leaf changes at once, `store::deferred`): the plan's state is `base`
/// and it writes no nodes.
pub fn plan_deferred(
    view: &dyn RecordView,
    tenant: &Tenant,
    base: StateNode,
    m: &Mutation,
    tree: &mut DeferredTree,
) -> Result<Plan, StoreError> {
    let mut sink = DeferredSink { tree, error: None };
    let plan = plan_records(view, tenant, base, m, &mut sink)?;
    match sink.error {
        Some(e) => Err(e),
        None => Ok(plan),
    }
}

/// The record side of a plan: counts, records to write and delete, their leaf changes
/// into `leaves`. The plan's state is still `base`.
fn plan_records(
    view: &dyn RecordView,
    tenant: &Tenant,
    base: StateNode,
    m: &Mutation,
    leaves: &mut dyn LeafSink,
) -> Result<Plan, StoreError> {
    let keyspace = view.keyspace().clone();
    let mut counts: BTreeMap<Collection, ChangeCounts> = BTreeMap::new();
    let mut puts = Vec::new();
    let mut dels = Vec::new();
    for ((c, id), entry) in &m.upserts {
        let old = view.record(*c, id)?;
        // The source index entry moves with the record (and holds its input digest).
        match &old {
            Some(o) if o.object == entry.object && o.subject == entry.subject => {
                if o.source != entry.source || o.derived != entry.derived || m.digests.contains_key(&(*c, id.clone())) {
                    puts.push(((*c, id.clone()), Some(o.source.clone())));
                }
                continue;
            }
            Some(o) => {
                if o.subject != entry.subject {
                    leaves.delete(*c, &o.subject, id);
                }
                counts.entry(*c).or_default().changed += 1;
            }
            None => counts.entry(*c).or_default().added += 1,
        }
        leaves.upsert(*c, &entry.subject, leaf_of(id, entry));
        puts.push(((*c, id.clone()), old.map(|o| o.source)));
    }
    for (c, id) in &m.deletes {
        if m.upserts.contains_key(&(*c, id.clone())) {
            continue;
        }
        if let Some(o) = view.record(*c, id)? {
            leaves.delete(*c, &o.subject, id);
            counts.entry(*c).or_default().removed += 1;
            dels.push((*c, id.clone(), o.source));
        }
    }
    Ok(Plan {
        tenant: tenant.clone(),
        new_state: base.clone(),
        base,
        counts,
        keyspace,
        nodes: Vec::new(),
        puts,
        dels,
    })
}

/// Write a plan atomically, together with `extra` meta entries (catalog, history).
/// `m` is the mutation the plan was made from.
pub fn commit(store: &Store, plan: &Plan, m: &Mutation, extra: &[(Vec<u8>, Vec<u8>)]) -> Result<(), StoreError> {
    write_nodes(store, plan, false)?;
    commit_records(store, plan, m, extra)
}

/// The Merkle nodes a plan writes (for a caller that stores them itself, e.g. by
/// ingesting SST files, before [`commit_records`]).
pub fn plan_nodes(plan: &Plan) -> &[(NodeHash, Vec<u8>)] {
    &plan.nodes
}

/// [`commit`] without writing the plan's nodes: they must be stored already.
pub fn commit_records(
    store: &Store,
    plan: &Plan,
    m: &Mutation,
    extra: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut b = WriteBatch::default();
    record_ops(plan, m, &mut LiveOps { store, batch: &mut b });
    store.batch_put(
        &mut b,
        CF_META,
        &head_key(plan.tenant.as_str()),
        &head_value(&plan.root(), &plan.keyspace),
    );
    for (k, v) in extra {
        store.batch_put(&mut b, CF_META, k, v);
    }
    store.commit(b)
}

/// Write a plan's Merkle nodes ahead of its commit: they are immutable and
/// content-addressed, so unreferenced until then. `bulk`: as `Store::write_bulk`.
pub fn write_nodes(store: &Store, plan: &Plan, bulk: bool) -> Result<(), StoreError> {
    for chunk in plan.nodes.chunks(20_000) {
        let mut b = WriteBatch::default();
        store.batch_nodes(&mut b, chunk);
        if bulk {
            store.write_bulk(b)?;
        } else {
            store.write_unreferenced(b)?;
        }
    }
    Ok(())
}

/// The record and source-index changes of a plan, into `ops` (a live batch or staging).
pub fn record_ops(plan: &Plan, m: &Mutation, ops: &mut dyn RecordOps) {
    let ks = &plan.keyspace;
    for (c, id, old_source) in &plan.dels {
        ops.delete(CF_RECORDS, &ks.record_key(*c, id));
        ops.delete(CF_SOURCES, &ks.source_key(old_source, *c, id));
    }
    for ((c, id), old_source) in &plan.puts {
        let key = (*c, id.clone());
        let entry = m.upserts.get(&key).expect("plans are committed with their mutation");
        if let Some(s) = old_source.as_ref().filter(|s| **s != entry.source) {
            ops.delete(CF_SOURCES, &ks.source_key(s, *c, id));
        }
        ops.put(CF_RECORDS, &ks.record_key(*c, id), &encode_entry(entry));
        if c.is_primary() {
            let digest = m.digests.get(&key).map(|d| &d.as_bytes()[..]).unwrap_or_default();
            ops.put(CF_SOURCES, &ks.source_key(&entry.source, *c, id), digest);
        }
    }
}
