//! VEX consensus: one derived record per (vulnerability, product) that VEX statements
//! (`vex.normalized`, any format) talk about. The rules are in docs/consensus.md; in
//! short: each source's latest statement counts, the strongest status across sources
//! wins (affected > fixed > justified not_affected > under_investigation > bare
//! not_affected), and disagreements are written into the record.
//!
//! Invariants:
//! * A consensus record is a pure function of the pair's live statements (content
//!   only, never wall-clock or ingest order), so two stores with the same statements
//!   hold byte-identical consensus records and the Merkle roots agree.
//! * It is recomputed only for the pairs whose statements an ingest or remove adds,
//!   changes or deletes ([`extend`]); import carries consensus records like any other.
//! * Statement ids are `<vulnerability>|<product>|<document>`, so a pair's statements
//!   are one key range. Vulnerability and product may themselves contain `|`, so the
//!   range is filtered on the statements' own fields.
//! * Consensus records carry the empty source: `ingest --complete` needs a non-empty
//!   source, so no source's complete set can sweep them.
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::apply::Mutation;
use crate::ids::ObjectId;
use crate::model::{parse_time, Collection};
use crate::store::staging::RecordView;
use crate::store::{ObjectKey, RecordEntry, Store, StoreError};

/// The source field of every consensus record (see the module invariants).
pub const CONSENSUS_SOURCE: &str = "";

/// The fields of a normalized statement that consensus reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub object: ObjectId,
    pub subject: String,
    pub vulnerability: String,
    pub product: String,
    pub status: String,
    pub justification: Option<String>,
    pub impact: Option<String>,
    pub timestamp: Option<i64>,
    pub document: String,
    /// Who stands behind it: the author (OpenVEX `author`, CSAF publisher, CycloneDX
    /// manufacturer/supplier), else the document. A source's newer word replaces its
    /// older one; different sources are weighed against each other.
    pub source: String,
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

impl Statement {
    /// Read a `stellamirror.vex.v1` statement; None if the bytes are not one.
    pub fn parse(object: ObjectId, subject: &str, bytes: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let document = text(&v, "document").unwrap_or_default();
        Some(Self {
            object,
            subject: subject.to_string(),
            vulnerability: text(&v, "vulnerability")?,
            product: text(&v, "product")?,
            status: text(&v, "status")?,
            justification: text(&v, "justification"),
            impact: text(&v, "impactStatement"),
            timestamp: v.get("timestamp").and_then(Value::as_str).and_then(parse_time),
            source: text(&v, "author")
                .map(|a| a.trim().to_string())
                .unwrap_or_else(|| document.clone()),
            document,
        })
    }

    /// A not_affected claim counts as justified when it says why (OpenVEX requires a
    /// justification or an impact statement; CSAF a flag or an impact threat).
    fn justified(&self) -> bool {
        self.justification.is_some() || self.impact.is_some()
    }

    /// Precedence across sources, highest wins (docs/consensus.md).
    pub fn rank(&self) -> u8 {
        match self.status.as_str() {
            "affected" => 5,
            "fixed" => 4,
            "not_affected" if self.justified() => 3,
            "under_investigation" => 2,
            _ => 1,
        }
    }

    /// Order within one source: latest timestamp (a statement without one is oldest),
    /// then document and object id so that ties break the same way everywhere.
    fn recency(&self) -> (Option<i64>, &str, &ObjectId) {
        (self.timestamp, &self.document, &self.object)
    }
}

/// The consensus of one pair: (record bytes, subject, modified). None without statements.
pub fn compute(statements: &[Statement]) -> Option<(Vec<u8>, String, Option<i64>)> {
    let first = statements.first()?;
    let mut by_source: BTreeMap<&str, Vec<&Statement>> = BTreeMap::new();
    for s in statements {
        by_source.entry(&s.source).or_default().push(s);
    }
    let mut current: Vec<&Statement> = Vec::new();
    let mut superseded: BTreeSet<ObjectId> = BTreeSet::new();
    for list in by_source.values_mut() {
        list.sort_by(|a, b| a.recency().cmp(&b.recency()));
        let latest = list.pop().expect("groups are never empty");
        superseded.extend(list.iter().map(|s| s.object));
        current.push(latest);
    }
    let decided = *current
        .iter()
        .max_by(|a, b| (a.rank(), a.recency()).cmp(&(b.rank(), b.recency())))
        .expect("at least one source");
    let statuses: BTreeSet<&str> = current.iter().map(|s| s.status.as_str()).collect();
    let rule = if statements.len() == 1 {
        "single-statement"
    } else if current.len() == 1 {
        "latest-per-source"
    } else if statuses.len() == 1 {
        "unanimous"
    } else {
        "precedence"
    };
    let mut conflicts = Vec::new();
    if statuses.len() > 1 {
        conflicts.push(json!({"field": "status", "values": statuses}));
    }
    // Sources that agree on not_affected but not on why: recorded, not resolved.
    let reasons: BTreeSet<&str> = current
        .iter()
        .filter(|s| s.status == decided.status)
        .filter_map(|s| s.justification.as_deref())
        .collect();
    if reasons.len() > 1 {
        conflicts.push(json!({"field": "justification", "values": reasons}));
    }
    let mut listed: Vec<&Statement> = statements.iter().collect();
    listed.sort_by(|a, b| (&a.source, a.recency()).cmp(&(&b.source, b.recency())));
    let listed: Vec<Value> = listed
        .iter()
        .map(|s| {
            json!({
                "object": s.object.to_prefixed(),
                "source": s.source,
                "document": s.document,
                "status": s.status,
                "justification": s.justification,
                "timestamp": s.timestamp.map(crate::model::format_time),
                "superseded": superseded.contains(&s.object),
            })
        })
        .collect();
    let modified = statements.iter().filter_map(|s| s.timestamp).max();
    let record = json!({
        "schema": "stellamirror.consensus.v1",
        "vulnerability": first.vulnerability,
        "product": first.product,
        "status": decided.status,
        "justification": decided.justification,
        "impactStatement": decided.impact,
        "rule": rule,
        "decidedBy": decided.object.to_prefixed(),
        "sources": current.len(),
        "statements": listed,
        "conflicts": conflicts,
        "modified": modified.map(crate::model::format_time),
    });
    let bytes = serde_json::to_vec(&record).expect("JSON values always serialize");
    Some((bytes, decided.subject.clone(), modified))
}

/// Bytes of a statement object: from this run's new objects, else from the store.
fn statement_bytes(store: &Store, new: &HashMap<ObjectId, &[u8]>, e: &RecordEntry) -> Result<Vec<u8>, StoreError> {
    match new.get(&e.object) {
        Some(b) => Ok(b.to_vec()),
        None => stored_statement(store, e),
    }
}

fn stored_statement(store: &Store, e: &RecordEntry) -> Result<Vec<u8>, StoreError> {
    store.object_required(&ObjectKey::new(Collection::VexNormalized, &e.subject, &e.object))
}

/// Extend `m` with the consensus changes its VEX statement changes imply, against the
/// records `view` shows. `new` holds the bytes of the statement objects `m` introduces
/// that may not be stored yet. Returns the consensus objects the extended mutation needs
/// (the caller writes those not stored).
pub fn extend(
    store: &Store,
    view: &dyn RecordView,
    m: &mut Mutation,
    new: &HashMap<ObjectId, &[u8]>,
) -> Result<Vec<(ObjectId, Vec<u8>)>, StoreError> {
    const VN: Collection = Collection::VexNormalized;
    // 1. Pairs touched: statements upserted with new content, or deleted.
    let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
    let mut note = |e: &RecordEntry, bytes: &[u8]| {
        if let Some(s) = Statement::parse(e.object, &e.subject, bytes) {
            touched.insert((s.vulnerability, s.product));
        }
    };
    for ((c, id), e) in m.upserts.range((VN, String::new())..) {
        if *c != VN {
            break;
        }
        let live = view.record(VN, id)?;
        if live
            .as_ref()
            .is_some_and(|l| l.object == e.object && l.subject == e.subject)
        {
            continue;
        }
        note(e, &statement_bytes(store, new, e)?);
        if let Some(l) = live {
            note(&l, &stored_statement(store, &l)?);
        }
    }
    for (c, id) in m.deletes.range((VN, String::new())..) {
        if *c != VN {
            break;
        }
        if m.upserts.contains_key(&(VN, id.clone())) {
            continue;
        }
        if let Some(l) = view.record(VN, id)? {
            note(&l, &stored_statement(store, &l)?);
        }
    }
    // 2. Each pair's statements after `m`: live ones not deleted or replaced, plus upserts.
    let mut out = Vec::new();
    for (vuln, product) in touched {
        let prefix = format!("{vuln}|{product}|");
        let mut found: Vec<Statement> = Vec::new();
        for (id, e) in view.records_with_prefix(VN, &prefix)? {
            let gone = m.deletes.contains(&(VN, id.clone()));
            if gone || m.upserts.contains_key(&(VN, id)) {
                continue;
            }
            found.extend(Statement::parse(e.object, &e.subject, &stored_statement(store, &e)?));
        }
        for ((c, id), e) in m.upserts.range((VN, prefix.clone())..) {
            if *c != VN || !id.starts_with(&prefix) {
                break;
            }
            found.extend(Statement::parse(e.object, &e.subject, &statement_bytes(store, new, e)?));
        }
        found.retain(|s| s.vulnerability == vuln && s.product == product);
        let cid = (Collection::Consensus, format!("{vuln}|{product}"));
        match compute(&found) {
            None => {
                m.deletes.insert(cid);
            }
            Some((bytes, subject, modified)) => {
                let object = ObjectId::of(&bytes);
                let entry = RecordEntry {
                    subject,
                    object,
                    modified,
                    source: CONSENSUS_SOURCE.to_string(),
                    derived: Vec::new(),
                };
                m.upserts.insert(cid, entry);
                out.push((object, bytes));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(n: u8, source: &str, status: &str, just: Option<&str>, ts: i64) -> Statement {
        Statement {
            object: ObjectId([n; 32]),
            subject: "pkg:x/p".into(),
            vulnerability: "CVE-1".into(),
            product: "pkg:x/p@1".into(),
            status: status.into(),
            justification: just.map(str::to_string),
            impact: None,
            timestamp: Some(ts),
            document: format!("doc-{n}"),
            source: source.into(),
        }
    }

    fn run(s: &[Statement]) -> Value {
        serde_json::from_slice(&compute(s).expect("statements").0).expect("json")
    }

    #[test]
    fn latest_statement_of_a_source_wins() {
        let v = run(&[
            st(1, "a", "under_investigation", None, 10),
            st(2, "a", "fixed", None, 20),
        ]);
        assert_eq!(
            (v["status"].as_str(), v["rule"].as_str()),
            (Some("fixed"), Some("latest-per-source"))
        );
        assert_eq!(v["decidedBy"], ObjectId([2; 32]).to_prefixed());
        assert_eq!(v["statements"][0]["superseded"], true);
        assert_eq!(v["conflicts"], json!([]));
    }

    #[test]
    fn precedence_across_sources_records_the_conflict() {
        let v = run(&[
            st(1, "a", "not_affected", Some("component_not_present"), 30),
            st(2, "b", "under_investigation", None, 40),
        ]);
        assert_eq!(
            (v["status"].as_str(), v["rule"].as_str()),
            (Some("not_affected"), Some("precedence"))
        );
        assert_eq!(
            v["conflicts"][0],
            json!({"field": "status", "values": ["not_affected", "under_investigation"]})
        );
        let v = run(&[
            st(1, "a", "not_affected", Some("x"), 30),
            st(2, "b", "affected", None, 10),
        ]);
        assert_eq!(v["status"], "affected");
        // A bare not_affected does not outweigh an investigation still running.
        let v = run(&[
            st(1, "a", "not_affected", None, 30),
            st(2, "b", "under_investigation", None, 10),
        ]);
        assert_eq!(v["status"], "under_investigation");
    }

    #[test]
    fn result_does_not_depend_on_input_order() {
        let a = [
            st(1, "a", "fixed", None, 1),
            st(2, "b", "fixed", None, 1),
            st(3, "a", "affected", None, 1),
        ];
        let b = [a[2].clone(), a[0].clone(), a[1].clone()];
        assert_eq!(compute(&a), compute(&b));
        // Source a's statements tie on time: the document id breaks the tie (doc-3).
        assert_eq!(
            (run(&a)["status"].as_str(), run(&a)["rule"].as_str()),
            (Some("affected"), Some("precedence"))
        );
    }

    #[test]
    fn unanimous_status_with_different_reasons_is_a_conflict() {
        let v = run(&[
            st(1, "a", "not_affected", Some("x"), 1),
            st(2, "b", "not_affected", Some("y"), 2),
        ]);
        assert_eq!(v["rule"], "unanimous");
        assert_eq!(
            v["conflicts"],
            json!([{"field": "justification", "values": ["x", "y"]}])
        );
        assert_eq!(v["justification"], "y");
    }
}

/// `cargo test --release -p stellamirror-engine --lib consensus::bench -- --ignored --nocapture`:
/// consensus recomputation after a 1% change of the Rancher VEX Hub statements
/// (../shared/data), against recomputing every pair. Reported in docs/benchmarks.md.
#[cfg(test)]
mod bench {
    use std::path::Path;
    use std::time::Instant;

    use super::*;
    use crate::audit::NoProgress;
    use crate::ingest::formats::{parse_document, ParseContext};
    use crate::ingest::{ingest, IngestOptions};

    /// The mutation (statement upserts only) and statement bytes of a directory's documents.
    fn mutation_of(dir: &Path) -> (Mutation, Vec<(ObjectId, Vec<u8>)>) {
        let mut m = Mutation::default();
        let mut bytes = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let v: Value = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            let name = e.file_name().to_string_lossy().to_string();
            for r in parse_document(v, &ParseContext::default(), Some(&name))
                .unwrap()
                .derived
            {
                let object = ObjectId::of(&r.bytes);
                let entry = RecordEntry {
                    subject: r.subject,
                    object,
                    modified: r.modified,
                    source: "rancher".into(),
                    derived: Vec::new(),
                };
                m.upserts.insert((r.collection, r.id), entry);
                bytes.push((object, r.bytes));
            }
        }
        (m, bytes)
    }

    /// Time `extend` alone: (seconds, consensus records produced).
    fn time_extend(store: &Store, tenant: &crate::model::Tenant, dir: &Path) -> (f64, usize) {
        let (mut m, bytes) = mutation_of(dir);
        let new: HashMap<ObjectId, &[u8]> = bytes.iter().map(|(o, b)| (*o, b.as_slice())).collect();
        let t = Instant::now();
        let view = crate::store::staging::LiveView::new(store, tenant).unwrap();
        let n = extend(store, &view, &mut m, &new).unwrap().len();
        (t.elapsed().as_secs_f64(), n)
    }

    #[test]
    #[ignore = "benchmark on ../shared/data"]
    fn bench_one_percent_of_rancher_statements() {
        let root = std::env::var("STELLAMIRROR_SHARED_DATA")
            .unwrap_or_else(|_| format!("{}/../../shared/data", env!("CARGO_MANIFEST_DIR")));
        let hub = Path::new(&root).join("vex/openvex/rancher-vexhub");
        if !hub.exists() {
            eprintln!("{} absent: nothing to measure", hub.display());
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(&t.path().join("store")).unwrap();
        let tenant = crate::model::Tenant::new("bench").unwrap();
        let opts = IngestOptions::new(tenant.clone(), "rancher");
        // Every pair, on the empty store: what a full recomputation would cost.
        let (all_secs, all_pairs) = time_extend(&store, &tenant, &hub);
        let t0 = Instant::now();
        let full = ingest(&store, std::slice::from_ref(&hub), &opts, &NoProgress).unwrap();
        let full_secs = t0.elapsed().as_secs_f64();
        let statements = full.counts[&Collection::VexNormalized].added;
        // Flip every 100th statement that is the last word on its (vulnerability,
        // products) in its document, keeping `@id` so the others stay byte-identical.
        let changed_dir = t.path().join("changed");
        std::fs::create_dir_all(&changed_dir).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&hub)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        let (mut seen, mut docs) = (0usize, 0usize);
        for n in &names {
            let mut doc: Value = serde_json::from_slice(&std::fs::read(hub.join(n)).unwrap()).unwrap();
            let sts = doc["statements"].as_array_mut().unwrap();
            let key = |s: &Value| (s["vulnerability"].to_string(), s["products"].to_string());
            let mut touched = false;
            for i in 0..sts.len() {
                if sts[i + 1..].iter().any(|s| key(s) == key(&sts[i])) {
                    continue;
                }
                seen += 1;
                if seen % 100 == 0 {
                    let s = sts[i].as_object_mut().unwrap();
                    let to = if s["status"] == "affected" {
                        "under_investigation"
                    } else {
                        "affected"
                    };
                    s.insert("status".into(), to.into());
                    s.remove("justification");
                    touched = true;
                }
            }
            if touched {
                docs += 1;
                std::fs::write(changed_dir.join(n), serde_json::to_vec(&doc).unwrap()).unwrap();
            }
        }
        let (delta_secs, delta_pairs) = time_extend(&store, &tenant, &changed_dir);
        let t2 = Instant::now();
        let r = ingest(&store, &[changed_dir], &opts, &NoProgress).unwrap();
        let ingest_secs = t2.elapsed().as_secs_f64();
        let changed = r.counts[&Collection::VexNormalized].changed;
        eprintln!(
            "rancher: {} documents, {statements} statement records, {all_pairs} pairs\n\
             consensus of every pair (empty store): {:.1} ms; full ingest incl. consensus: {full_secs:.2} s\n\
             1% change: {changed} statement records in {docs} documents -> {delta_pairs} consensus records \
             recomputed in {:.1} ms; ingest of the changed documents incl. consensus: {ingest_secs:.2} s",
            names.len(),
            all_secs * 1000.0,
            delta_secs * 1000.0,
        );
        assert_eq!(delta_pairs as u64, r.counts[&Collection::Consensus].changed);
    }
}
