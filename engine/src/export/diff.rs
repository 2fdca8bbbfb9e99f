//! The Merkle diff of two snapshots: walk both trees together and descend only where
//! hashes differ, so the cost follows the number of changed records (times the depth),
//! not the store's size.
use std::collections::BTreeMap;

use rayon::prelude::*;

use rocksdb::DBPinnableSlice;

use crate::ids::NodeHash;
use crate::merkle::{empty_shard_root, LeafView, NodeView, StateNode, SubjectRefView};
use crate::model::{Collection, Leaf};
use crate::store::{NodeTag, Store, StoreError};

/// A record that differs between base and target, with where it was and is.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub collection: Collection,
    pub id: String,
    pub old: Option<(String, Leaf)>,
    pub new: Option<(String, Leaf)>,
}

/// Every record that differs between `base` and `target`, keyed by (collection, id):
/// a record that moved to another subject is one change.
pub fn diff(store: &Store, base: &StateNode, target: &StateNode) -> Result<Vec<Change>, StoreError> {
    Ok(diff_keeping_shards(store, base, target)?.0)
}

/// The target root of every subject the diff found changed (`None`: the subject is gone),
/// by (collection, subject): the delta's index names them.
pub type SubjectRoots = BTreeMap<(Collection, String), Option<NodeHash>>;

/// [`diff`], also returning the target roots of the subjects that changed. Differing
/// shards are walked in parallel; nodes are decoded as borrowed views and the sorted
/// subject and leaf lists of the two sides are merged, so only changes allocate.
pub fn diff_keeping_shards(
    store: &Store,
    base: &StateNode,
    target: &StateNode,
) -> Result<(Vec<Change>, SubjectRoots), StoreError> {
    let mut work = Vec::new();
    for c in Collection::ALL {
        let (bk, tk) = (base.kind(c), target.kind(c));
        if bk.root == tk.root {
            continue;
        }
        let (bkind, tkind) = (store.kind_node(bk)?, store.kind_node(tk)?);
        for shard in 0..=255u8 {
            let (br, tr) = (bkind.shards[shard as usize], tkind.shards[shard as usize]);
            if br != tr {
                work.push((c, shard, br, tr));
            }
        }
    }
    let per_shard: Vec<(ShardDiff, Collection)> = work
        .into_par_iter()
        .map(|(c, shard, br, tr)| {
            let (bb, tb) = (shard_bytes(store, shard, &br)?, shard_bytes(store, shard, &tr)?);
            let (bs, ts) = (shard_subjects(bb.as_deref(), &br)?, shard_subjects(tb.as_deref(), &tr)?);
            Ok((diff_shard(store, c, &bs, &ts)?, c))
        })
        .collect::<Result<_, StoreError>>()?;
    let mut out: BTreeMap<(Collection, String), Change> = BTreeMap::new();
    let mut roots = SubjectRoots::new();
    for (
        ShardDiff {
            changes,
            roots: subject_roots,
        },
        c,
    ) in per_shard
    {
        for ch in changes {
            // A record that moved between subjects of different shards shows up in both.
            match out.entry((ch.collection, ch.id.clone())) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(ch);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let merged = o.get_mut();
                    if ch.old.is_some() {
                        merged.old = ch.old;
                    }
                    if ch.new.is_some() {
                        merged.new = ch.new;
                    }
                }
            }
        }
        roots.extend(subject_roots.into_iter().map(|(s, r)| ((c, s), r)));
    }
    Ok((out.into_values().collect(), roots))
}

fn shard_bytes<'s>(store: &'s Store, shard: u8, root: &NodeHash) -> Result<Option<DBPinnableSlice<'s>>, StoreError> {
    if *root == empty_shard_root(shard) {
        return Ok(None);
    }
    store.node_bytes(NodeTag::Shard, root).map(Some)
}

fn shard_subjects<'b>(bytes: Option<&'b [u8]>, root: &NodeHash) -> Result<Vec<SubjectRefView<'b>>, StoreError> {
    match bytes.map(NodeView::decode) {
        None => Ok(Vec::new()),
        Some(Some(NodeView::Shard(s))) => Ok(s.subjects),
        Some(_) => Err(StoreError::Corrupt(format!("{root} is not a shard node"))),
    }
}

/// The changes inside one shard (subjects whose roots differ, record by record), and the
/// target roots of those subjects.
struct ShardDiff {
    changes: Vec<Change>,
    roots: Vec<(String, Option<NodeHash>)>,
}

fn diff_shard(
    store: &Store,
    c: Collection,
    bs: &[SubjectRefView<'_>],
    ts: &[SubjectRefView<'_>],
) -> Result<ShardDiff, StoreError> {
    // Subjects are sorted in shard nodes: merge the two lists.
    let mut pairs: Vec<(&str, Option<&NodeHash>, Option<&NodeHash>)> = Vec::new();
    merge_sorted(
        bs,
        ts,
        |x, y| x.subject.cmp(y.subject),
        |b, t| match (b, t) {
            (Some(b), Some(t)) if b.root == t.root => {}
            _ => pairs.push((
                b.or(t).expect("one side").subject,
                b.map(|x| &x.root),
                t.map(|x| &x.root),
            )),
        },
    );
    let mut out: BTreeMap<String, Change> = BTreeMap::new();
    let mut note = |subject: &str, old: Option<&LeafView<'_>>, new: Option<&LeafView<'_>>| {
        let id = old.or(new).expect("one side").id.to_string();
        // Keyed by id: a record that moved between two subjects of this shard is one change.
        let ch = out.entry(id.clone()).or_insert_with(|| Change {
            collection: c,
            id,
            old: None,
            new: None,
        });
        if let Some(o) = old {
            ch.old = Some((subject.to_string(), o.to_leaf()));
        }
        if let Some(n) = new {
            ch.new = Some((subject.to_string(), n.to_leaf()));
        }
    };
    let mut roots = Vec::with_capacity(pairs.len());
    for (subject, b, t) in pairs {
        // Leaves are sorted by id (the subject root is defined over the sorted list), so
        // the two versions are merged without building maps: hot subjects hold thousands.
        let (bb, tb) = (subject_bytes(store, b)?, subject_bytes(store, t)?);
        let (bl, tl) = (sorted_leaves(bb.as_deref(), b)?, sorted_leaves(tb.as_deref(), t)?);
        merge_sorted(
            &bl,
            &tl,
            |x, y| x.id.cmp(y.id),
            |o, n| match (o, n) {
                (Some(o), Some(n)) if o.object == n.object => {}
                _ => note(subject, o, n),
            },
        );
        roots.push((subject.to_string(), t.copied()));
    }
    Ok(ShardDiff {
        changes: out.into_values().collect(),
        roots,
    })
}

/// Walk two lists sorted by `cmp` together: `f` receives each item with its equal on the
/// other side, or alone.
fn merge_sorted<'x, T>(
    a: &'x [T],
    b: &'x [T],
    cmp: impl Fn(&T, &T) -> std::cmp::Ordering,
    mut f: impl FnMut(Option<&'x T>, Option<&'x T>),
) {
    let (mut i, mut j) = (0, 0);
    loop {
        let order = match (a.get(i), b.get(j)) {
            (None, None) => return,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => cmp(x, y),
        };
        match order {
            std::cmp::Ordering::Less => {
                f(a.get(i), None);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                f(None, b.get(j));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                f(a.get(i), b.get(j));
                i += 1;
                j += 1;
            }
        }
    }
}

fn subject_bytes<'s>(store: &'s Store, root: Option<&NodeHash>) -> Result<Option<DBPinnableSlice<'s>>, StoreError> {
    root.map(|r| store.node_bytes(NodeTag::Subject, r)).transpose()
}

/// A subject's leaves in id order (as stored; sorted here should a node not be).
fn sorted_leaves<'b>(bytes: Option<&'b [u8]>, root: Option<&NodeHash>) -> Result<Vec<LeafView<'b>>, StoreError> {
    let mut leaves = match bytes.map(NodeView::decode) {
        None => Vec::new(),
        Some(Some(NodeView::Subject(s))) => s.leaves,
        Some(_) => {
            let root = root.map(|r| r.to_string()).unwrap_or_default();
            return Err(StoreError::Corrupt(format!("{root} is not a subject node")));
        }
    };
    if !leaves.is_sorted_by(|a, b| a.id <= b.id) {
        leaves.sort_by(|a, b| a.id.cmp(b.id));
    }
    Ok(leaves)
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
