//! Criterion micro-benchmarks of the engine's kernels: canonical encoding + blake3,
//! Merkle diff of two snapshots at 1% churn, shard materialisation, signature checks.
use std::collections::BTreeMap;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use stellamirror_engine::apply::{commit, plan, Mutation};
use stellamirror_engine::export::diff::diff;
use stellamirror_engine::export::select::Filter;
use stellamirror_engine::export::units::{load_unit, run_unit, UnitContext};
use stellamirror_engine::export::ExportError;
use stellamirror_engine::ids::ObjectId;
use stellamirror_engine::ingest::formats::{parse_document, ParseContext};
use stellamirror_engine::merkle::empty_shard_root;
use stellamirror_engine::model::{Collection, Tenant};
use stellamirror_engine::store::catalog::Selectors;
use stellamirror_engine::store::{ObjectKey, RecordEntry, Store};

fn osv_lines() -> Vec<String> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/osv/go-new.jsonl");
    std::fs::read_to_string(p)
        .expect("test data")
        .lines()
        .map(str::to_string)
        .collect()
}

fn encode_and_hash(c: &mut Criterion) {
    let lines = osv_lines();
    let bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let mut g = c.benchmark_group("canonical_encoding");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("osv_parse_normalize_blake3", |b| {
        b.iter(|| {
            for l in &lines {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let doc = parse_document(v, &ParseContext::default(), None).unwrap();
                std::hint::black_box(ObjectId::of(&doc.primary.bytes));
                for d in &doc.derived {
                    std::hint::black_box(ObjectId::of(&d.bytes));
                }
            }
        })
    });
    g.finish();
}

/// A store with `n` synthetic records (real-sized documents) for tenant `t`.
fn synthetic_store(dir: &Path, n: usize) -> (Store, Tenant, BTreeMap<(Collection, String), RecordEntry>) {
    let store = Store::open(&dir.join("s")).unwrap();
    let tenant = Tenant::new("bench").unwrap();
    let lines = osv_lines();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut m = Mutation::default();
    let mut batch = store.new_batch();
    for i in 0..n {
        let doc = format!("{{\"n\":{i},\"body\":{}}}", lines[i % lines.len()]);
        let id = ObjectId::of(doc.as_bytes());
        let subject = format!("pkg:golang/example.com/mod{}", rng.gen_range(0..n / 4));
        store.put_object(
            &mut batch,
            &ObjectKey::new(Collection::AdvisoriesRaw, &subject, &id),
            doc.as_bytes(),
        );
        let e = RecordEntry {
            subject,
            object: id,
            modified: Some(i as i64),
            source: "bench".into(),
            derived: Vec::new(),
        };
        m.upserts.insert((Collection::AdvisoriesRaw, format!("GO-{i:07}")), e);
    }
    store.write_unreferenced(batch).unwrap();
    let p = plan(&store, &tenant, &m).unwrap();
    commit(&store, &p, &m, &[]).unwrap();
    (store, tenant, m.upserts)
}

fn merkle_diff(c: &mut Criterion) {
    let t = tempfile::tempdir().unwrap();
    let n = 100_000;
    let (store, tenant, records) = synthetic_store(t.path(), n);
    let a = store.state(&tenant).unwrap();
    // 1% churn: 0.7% changed, 0.2% added, 0.1% removed.
    let mut m = Mutation::default();
    for (i, ((c, id), e)) in records.iter().enumerate().filter(|(i, _)| i % 100 < 1) {
        let mut e = e.clone();
        e.object = ObjectId::of(format!("changed {i}").as_bytes());
        // Of every 8 touched records, 7 change and 1 is removed (0.7% / 0.1%).
        if (i / 100) % 8 != 7 {
            m.upserts.insert((*c, id.clone()), e);
        } else {
            m.deletes.insert((*c, id.clone()));
        }
    }
    for i in 0..n / 500 {
        let e = RecordEntry {
            subject: format!("pkg:golang/new/{i}"),
            object: ObjectId::of(format!("new {i}").as_bytes()),
            modified: None,
            source: "bench".into(),
            derived: Vec::new(),
        };
        m.upserts.insert((Collection::AdvisoriesRaw, format!("NEW-{i}")), e);
    }
    let p = plan(&store, &tenant, &m).unwrap();
    commit(&store, &p, &m, &[]).unwrap();
    let b = store.state(&tenant).unwrap();
    let changed = diff(&store, &a, &b).unwrap().len();
    let mut g = c.benchmark_group("merkle_diff");
    g.throughput(Throughput::Elements(changed as u64));
    g.bench_function(format!("100k_records_1pct_churn_{changed}_changes"), |bch| {
        bch.iter(|| diff(&store, &a, &b).unwrap())
    });
    g.finish();
}

fn shard_materialisation(c: &mut Criterion) {
    let t = tempfile::tempdir().unwrap();
    let (store, tenant, _) = synthetic_store(t.path(), 50_000);
    let state = store.state(&tenant).unwrap();
    let kind = store.kind_node(state.kind(Collection::AdvisoriesRaw)).unwrap();
    let shard = (0..=255u8)
        .find(|s| kind.shards[*s as usize] != empty_shard_root(*s))
        .unwrap();
    let filter = Filter::new(&Selectors::default()).unwrap();
    let identity = |_: &str, b: Vec<u8>| -> Result<Vec<u8>, ExportError> { Ok(b) };
    let staging = t.path().join("staging");
    let ctx = UnitContext {
        store: &store,
        staging: &staging,
        prefix: "",
        zstd_level: 3,
        seal: &identity,
        in_memory: false,
        index_version: stellamirror_engine::bundle::format::INDEX_FORMAT_VERSION,
    };
    let input = load_unit(
        &store,
        Collection::AdvisoriesRaw,
        shard,
        &kind.shards[shard as usize],
        &filter,
    )
    .unwrap();
    let records: u64 = input.subjects.iter().map(|(_, l)| l.len() as u64).sum();
    let mut g = c.benchmark_group("shard_materialisation");
    g.throughput(Throughput::Elements(records));
    g.bench_function("one_shard_of_50k_records_zstd3", |b| {
        b.iter_batched(
            || {
                load_unit(
                    &store,
                    Collection::AdvisoriesRaw,
                    shard,
                    &kind.shards[shard as usize],
                    &filter,
                )
                .unwrap()
            },
            |u| run_unit(&ctx, u).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn signature_verification(c: &mut Criterion) {
    let t = tempfile::tempdir().unwrap();
    let (private, _, _) = stellamirror_engine::bundle::signing::keygen(&t.path().join("k")).unwrap();
    let key = stellamirror_engine::bundle::signing::SignKey::load(&private).unwrap();
    let manifest = vec![b'a'; 256 * 1024];
    let sig = key.sign(&manifest);
    let public = key.public();
    let mut g = c.benchmark_group("signature");
    g.throughput(Throughput::Bytes(manifest.len() as u64));
    g.bench_function("ed25519_verify_256KiB_manifest", |b| {
        b.iter(|| assert!(public.verify(&manifest, &sig)))
    });
    g.finish();
}

criterion_group!(
    benches,
    encode_and_hash,
    merkle_diff,
    shard_materialisation,
    signature_verification
);
criterion_main!(benches);
