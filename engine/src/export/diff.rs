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

#[cfg(test)]
mod tests {
    //! Property: for random stores A and B, applying diff(A, B) to A's record set gives
    //! exactly B's; and the incrementally maintained root of B equals the root of B's
    //! record set built from scratch.
    use std::collections::BTreeMap;

    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::apply::{commit, plan, Mutation};
    use crate::ids::ObjectId;
    use crate::model::Tenant;
    use crate::store::RecordEntry;

    type Model = BTreeMap<(Collection, String), (String, ObjectId)>;

    fn entry(subject: &str, object: ObjectId) -> RecordEntry {
        RecordEntry {
            subject: subject.into(),
            object,
            modified: None,
            source: "t".into(),
            derived: Vec::new(),
        }
    }

    fn apply_model(store: &Store, tenant: &Tenant, before: &Model, after: &Model) -> StateNode {
        let mut m = Mutation::default();
        for (k, (s, o)) in after {
            if before.get(k) != Some(&(s.clone(), *o)) {
                m.upserts.insert(k.clone(), entry(s, *o));
            }
        }
        for k in before.keys() {
            if !after.contains_key(k) {
                m.deletes.insert(k.clone());
            }
        }
        let p = plan(store, tenant, &m).unwrap();
        commit(store, &p, &m, &[]).unwrap();
        store.state(tenant).unwrap()
    }

    fn random_model(rng: &mut rand::rngs::StdRng, n: usize) -> Model {
        let mut m = Model::new();
        for _ in 0..n {
            let c = Collection::ALL[rng.gen_range(0..3)];
            let id = format!("ID-{}", rng.gen_range(0..400));
            let subject = format!("pkg:x/{}", rng.gen_range(0..60));
            m.insert((c, id), (subject, ObjectId::of(&rng.gen::<[u8; 8]>())));
        }
        m
    }

    fn mutate(rng: &mut rand::rngs::StdRng, a: &Model) -> Model {
        let mut b = a.clone();
        for k in a.keys() {
            match rng.gen_range(0..10) {
                0 => {
                    b.remove(k);
                }
                1 => b.get_mut(k).unwrap().1 = ObjectId::of(&rng.gen::<[u8; 8]>()),
                2 => b.get_mut(k).unwrap().0 = format!("pkg:x/{}", rng.gen_range(0..60)),
                _ => {}
            }
        }
        b.extend(random_model(rng, 30));
        b
    }

    #[test]
    fn applying_the_diff_of_a_and_b_to_a_gives_b() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("s")).unwrap();
        for seed in 0..25u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let tenant = Tenant::new(&format!("t{seed}")).unwrap();
            let a = random_model(&mut rng, 200);
            let b = mutate(&mut rng, &a);
            let sa = apply_model(&store, &tenant, &Model::new(), &a);
            let sb = apply_model(&store, &tenant, &a, &b);
            let mut got = a.clone();
            for ch in diff(&store, &sa, &sb).unwrap() {
                let key = (ch.collection, ch.id.clone());
                match ch.new {
                    Some((s, l)) => {
                        got.insert(key, (s, l.object));
                    }
                    None => {
                        got.remove(&key);
                    }
                }
            }
            assert_eq!(got, b, "seed {seed}");
            // From scratch in another tenant of the same name gives the same root.
            let fresh = Store::open(&t.path().join(format!("fresh{seed}"))).unwrap();
            let sf = apply_model(&fresh, &tenant, &Model::new(), &b);
            assert_eq!(
                sf.root(),
                sb.root(),
                "seed {seed}: incremental root equals from-scratch root"
            );
            assert!(diff(&store, &sb, &sb).unwrap().is_empty());
        }
    }
}
