//! Replacing a tenant's whole state (full bundles, reset-baseline deltas) with bounded
//! memory and one atomic switch.
//!
//! Records are written into the next records generation (see `store::Keyspace`), which
//! no reader looks at, in chunks; the Merkle tree is built chunk by chunk on top of the
//! empty state (each chunk ends at a shard-file boundary, so every shard node is
//! written once). Only when the final root equals the bundle's target does one synced
//! commit move the head to the new root and generation and drop the old generation.
//! A crash before that leaves the old state untouched; the partial generation is
//! cleared when the next attempt starts.
use std::collections::BTreeMap;

use rocksdb::WriteBatch;

use crate::apply::ChangeCounts;
use crate::ids::NodeHash;
use crate::merkle::StateNode;
use crate::model::{shard_of, Collection, Leaf, Tenant};
use crate::store::tree::ChangeSet;
use crate::store::{
    encode_entry, head_key, head_value, Keyspace, ObjectKey, RecordEntry, Store, StoreError, CF_META, CF_RECORDS,
    CF_SOURCES,
};

const CHUNK_RECORDS: usize = 200_000;
const CHUNK_BYTES: usize = 64 << 20;

pub struct ResetWriter<'a> {
    store: &'a Store,
    tenant: Tenant,
    old: Keyspace,
    new: Keyspace,
    old_state: StateNode,
    state: StateNode,
    changes: ChangeSet,
    batch: WriteBatch,
    pending_records: usize,
    pending_bytes: usize,
    last_unit: Option<(Collection, u8)>,
    source: String,
    pub counts: BTreeMap<Collection, ChangeCounts>,
}

impl<'a> ResetWriter<'a> {
    pub fn new(store: &'a Store, tenant: &Tenant, source: &str) -> Result<Self, StoreError> {
        let old = store.keyspace(tenant)?;
        let new = Keyspace::new(tenant.as_str(), old.generation + 1);
        // Leftovers of an interrupted attempt at this generation.
        let mut b = WriteBatch::default();
        b.delete_range_cf(store.cf(CF_RECORDS), new.prefix(), &new.end());
        b.delete_range_cf(store.cf(CF_SOURCES), new.prefix(), &new.end());
        store.write_unreferenced(b)?;
        Ok(Self {
            store,
            tenant: tenant.clone(),
            old,
            new,
            old_state: store.state(tenant)?,
            state: StateNode::empty(tenant.as_str()),
            changes: ChangeSet::default(),
            batch: WriteBatch::default(),
            pending_records: 0,
            pending_bytes: 0,
            last_unit: None,
            source: source.to_string(),
            counts: BTreeMap::new(),
        })
    }

    pub fn add(&mut self, c: Collection, subject: &str, leaf: Leaf, doc: &[u8]) -> Result<(), StoreError> {
        let unit = (c, shard_of(subject));
        if self.last_unit != Some(unit) && (self.pending_records >= CHUNK_RECORDS || self.pending_bytes >= CHUNK_BYTES)
        {
            self.flush()?;
        }
        self.last_unit = Some(unit);
        let s = self.store;
        s.put_object(&mut self.batch, &ObjectKey::in_shard(c, unit.1, &leaf.object), doc);
        let entry = RecordEntry {
            subject: subject.to_string(),
            object: leaf.object,
            modified: leaf.modified,
            source: self.source.clone(),
            derived: Vec::new(),
        };
        s.batch_put(
            &mut self.batch,
            CF_RECORDS,
            &self.new.record_key(c, &leaf.id),
            &encode_entry(&entry),
        );
        if c.is_primary() {
            s.batch_put(
                &mut self.batch,
                CF_SOURCES,
                &self.new.source_key(&self.source, c, &leaf.id),
                b"",
            );
        }
        self.pending_records += 1;
        self.pending_bytes += doc.len() + 200;
        self.counts.entry(c).or_default().added += 1;
        self.changes.upsert(c, subject, leaf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.store.write_unreferenced(std::mem::take(&mut self.batch))?;
        if !self.changes.is_empty() {
            let update = self
                .store
                .apply_changes(&self.state, &std::mem::take(&mut self.changes))?;
            for chunk in update.nodes.chunks(20_000) {
                let mut b = WriteBatch::default();
                self.store.batch_nodes(&mut b, chunk);
                self.store.write_unreferenced(b)?;
            }
            self.state = update.state;
        }
        self.pending_records = 0;
        self.pending_bytes = 0;
        Ok(())
    }

    /// The root the new state would have (after writing everything added so far).
    pub fn root(&mut self) -> Result<NodeHash, StoreError> {
        self.flush()?;
        Ok(self.state.root())
    }

    /// Switch the tenant to the new state, with `extra` meta entries, in one commit.
    pub fn commit(mut self, extra: &[(Vec<u8>, Vec<u8>)]) -> Result<BTreeMap<Collection, ChangeCounts>, StoreError> {
        let root = self.root()?;
        for k in &self.old_state.kinds {
            if k.records > 0 {
                self.counts.entry(k.collection).or_default().removed += k.records;
            }
        }
        let s = self.store;
        let mut b = WriteBatch::default();
        b.delete_range_cf(s.cf(CF_RECORDS), self.old.prefix(), &self.old.end());
        b.delete_range_cf(s.cf(CF_SOURCES), self.old.prefix(), &self.old.end());
        s.batch_put(
            &mut b,
            CF_META,
            &head_key(self.tenant.as_str()),
            &head_value(&root, &self.new),
        );
        for (k, v) in extra {
            s.batch_put(&mut b, CF_META, k, v);
        }
        s.commit(b)?;
        Ok(self.counts)
    }
}
