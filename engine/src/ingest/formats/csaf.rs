//! CSAF 2.0 and 2.1 documents (docs/formats.md#csaf).
//!
//! * `csaf_vex` → raw VEX document + one `stellamirror.vex.v1` statement per
//!   vulnerability × product, id `<vulnerability>|<product>|<tracking id>` (the same
//!   shape as OpenVEX, so consensus reads both alike).
//! * every other category (`csaf_security_advisory`, `csaf_base`,
//!   `csaf_informational_advisory`, `csaf_deprecated_security_advisory`, and the
//!   publisher-defined categories of the base profile) → raw advisory + one
//!   `stellamirror.advisory.v1` record per vulnerability, id
//!   `<vulnerability>|<tracking id>`.
//!
//! Document identity is `document.tracking.id`: CSAF keeps it across revisions (a new
//! revision bumps `tracking.version`), so a newer revision replaces the older one.
//! Product ids are resolved through the product tree: helper purl, else CPE, else the
//! product's full name; an id the tree does not define (a publisher error seen in real
//! documents) stays `csaf:<tracking id>#<product id>` rather than refusing the document.
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{compact, invalid, purl, required_key_str, DocError, NewRecord, ParsedDoc};
use crate::model::{format_time, parse_time, valid_key_text, Collection};

/// `product_status` categories and the VEX status each means, strongest first: when two
/// product ids of one vulnerability resolve to the same product, the first category in
/// this order decides (a document that calls a product both fixed and affected under
/// different ids is read conservatively). `unknown` (CSAF 2.1) is read as
/// under_investigation: neither says whether the product is affected.
const CATEGORIES: [(&str, &str); 9] = [
    ("known_affected", "affected"),
    ("first_affected", "affected"),
    ("last_affected", "affected"),
    ("under_investigation", "under_investigation"),
    ("unknown", "under_investigation"),
    ("fixed", "fixed"),
    ("first_fixed", "fixed"),
    ("recommended", "fixed"),
    ("known_not_affected", "not_affected"),
];

/// A product id resolved to the identifier other sources use for it.
#[derive(Clone)]
struct Product {
    /// purl, CPE, full product name, or `csaf:<tracking id>#<product id>`.
    id: String,
    /// `id` without version: the record subject.
    subject: String,
    is_purl: bool,
    is_cpe: bool,
}

/// A CPE without version and the fields after it: `cpe:/a:v:p:1.0::x` → `cpe:/a:v:p`,
/// `cpe:2.3:a:v:p:1.0:*:…` → `cpe:2.3:a:v:p`.
pub fn cpe_base(cpe: &str) -> String {
    let keep = if cpe.starts_with("cpe:2.3:") { 5 } else { 4 };
    cpe.split(':').take(keep).collect::<Vec<_>>().join(":")
}

/// The product tree, indexed: product id → full product name, group id → product ids,
/// relationship product id → the component it puts on a platform.
struct Tree<'a> {
    names: BTreeMap<&'a str, &'a Value>,
    groups: BTreeMap<&'a str, Vec<&'a str>>,
    components: BTreeMap<&'a str, &'a str>,
    doc: &'a str,
}

fn collect_branches<'a>(b: &'a Value, out: &mut BTreeMap<&'a str, &'a Value>) {
    if let Some(p) = b.get("product") {
        if let Some(id) = p.get("product_id").and_then(Value::as_str) {
            out.entry(id).or_insert(p);
        }
    }
    for c in b.get("branches").and_then(Value::as_array).into_iter().flatten() {
        collect_branches(c, out);
    }
}

fn strs(v: Option<&Value>) -> impl Iterator<Item = &str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

impl<'a> Tree<'a> {
    fn new(v: &'a Value, doc: &'a str) -> Self {
        let mut names = BTreeMap::new();
        let mut groups = BTreeMap::new();
        let mut components = BTreeMap::new();
        if let Some(t) = v.get("product_tree") {
            for p in t
                .get("full_product_names")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = p.get("product_id").and_then(Value::as_str) {
                    names.entry(id).or_insert(p);
                }
            }
            for b in t.get("branches").and_then(Value::as_array).into_iter().flatten() {
                collect_branches(b, &mut names);
            }
            for r in t.get("relationships").and_then(Value::as_array).into_iter().flatten() {
                if let Some(p) = r.get("full_product_name") {
                    if let Some(id) = p.get("product_id").and_then(Value::as_str) {
                        names.entry(id).or_insert(p);
                        if let Some(c) = r.get("product_reference").and_then(Value::as_str) {
                            components.entry(id).or_insert(c);
                        }
                    }
                }
            }
            for g in t.get("product_groups").and_then(Value::as_array).into_iter().flatten() {
                if let Some(id) = g.get("group_id").and_then(Value::as_str) {
                    groups.insert(id, strs(g.get("product_ids")).collect());
                }
            }
        }
        Self {
            names,
            groups,
            components,
            doc,
        }
    }

    /// Resolve a product id: its own helper's purl or CPE; for a "component on a
    /// platform" relationship without a helper, the component's purl (scanners and the
    /// other VEX formats name packages by purl; the platform stays in `productIds`);
    /// else the full product name. Relationships are followed one level only, so a
    /// cyclic product tree cannot recurse.
    fn resolve(&self, pid: &str) -> Product {
        let own = self.names.get(pid);
        if own.and_then(|p| p.get("product_identification_helper")).is_none() {
            if let Some(c) = self.components.get(pid) {
                let comp = self.resolve_own(c);
                if comp.is_purl {
                    return comp;
                }
            }
        }
        self.resolve_own(pid)
    }

    fn resolve_own(&self, pid: &str) -> Product {
        let fpn = self.names.get(pid);
        let helper = fpn.and_then(|p| p.get("product_identification_helper"));
        // CSAF 2.0 has `purl`; CSAF 2.1 has `purls` (the first one identifies).
        let purl = helper
            .and_then(|h| {
                h.get("purl")
                    .and_then(Value::as_str)
                    .or_else(|| strs(h.get("purls")).next())
            })
            .filter(|p| valid_key_text(p));
        if let Some(p) = purl {
            return Product {
                id: p.to_string(),
                subject: purl::strip_version(p),
                is_purl: true,
                is_cpe: false,
            };
        }
        if let Some(c) = helper
            .and_then(|h| h.get("cpe"))
            .and_then(Value::as_str)
            .filter(|c| valid_key_text(c))
        {
            return Product {
                id: c.to_string(),
                subject: cpe_base(c),
                is_purl: false,
                is_cpe: true,
            };
        }
        let id = match fpn
            .and_then(|p| p.get("name"))
            .and_then(Value::as_str)
            .filter(|n| valid_key_text(n))
        {
            Some(name) => name.to_string(),
            None => format!("csaf:{}#{pid}", self.doc),
        };
        Product {
            subject: id.clone(),
            id,
            is_purl: false,
            is_cpe: false,
        }
    }

    /// Product ids named by an object's `product_ids` and `group_ids`.
    fn ids_of(&self, o: &'a Value) -> Vec<&'a str> {
        let mut out: Vec<&str> = strs(o.get("product_ids")).collect();
        for g in strs(o.get("group_ids")) {
            out.extend(self.groups.get(g).into_iter().flatten().copied());
        }
        out
    }
}

/// One product's status for one vulnerability, with the product ids that named it.
struct Status {
    product: Product,
    product_ids: Vec<String>,
    status: &'static str,
    category: &'static str,
}

/// The products of one vulnerability, by resolved product, in document order.
fn statuses(vuln: &Value, tree: &Tree<'_>, p: &str) -> Result<Vec<Status>, DocError> {
    let mut out: Vec<Status> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let Some(ps) = vuln.get("product_status") else {
        return Ok(out);
    };
    if !ps.is_object() {
        return Err(invalid(
            &format!("{p}/product_status"),
            "`product_status` must be an object",
        ));
    }
    for (category, status) in CATEGORIES {
        let ids = match ps.get(category) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(invalid(
                    &format!("{p}/product_status/{category}"),
                    "must be an array of product ids",
                ))
            }
        };
        for (j, id) in ids.iter().enumerate() {
            let pid = id.as_str().filter(|s| valid_key_text(s)).ok_or_else(|| {
                invalid(
                    &format!("{p}/product_status/{category}/{j}"),
                    "product id must be a non-empty string",
                )
            })?;
            let product = tree.resolve(pid);
            match index.get(&product.id) {
                Some(&k) => out[k].product_ids.push(pid.to_string()),
                None => {
                    index.insert(product.id.clone(), out.len());
                    out.push(Status {
                        product,
                        product_ids: vec![pid.to_string()],
                        status,
                        category,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// product id → the first text found for it in `items` (flags, threats, remediations).
fn per_product<'a>(
    tree: &Tree<'a>,
    items: Option<&'a Value>,
    keep: impl Fn(&Value) -> bool,
    text: &str,
) -> BTreeMap<&'a str, &'a Value> {
    let mut out = BTreeMap::new();
    for it in items
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|i| keep(i))
    {
        if let Some(t) = it.get(text) {
            for id in tree.ids_of(it) {
                out.entry(id).or_insert(t);
            }
        }
    }
    out
}

fn first_for<'a>(m: &BTreeMap<&str, &'a Value>, ids: &[String]) -> Option<&'a Value> {
    ids.iter().find_map(|i| m.get(i.as_str()).copied())
}

/// The vulnerability's key: its CVE, else its first `ids` entry, else its position.
fn vuln_key(vuln: &Value, doc: &str, i: usize) -> String {
    let cve = vuln.get("cve").and_then(Value::as_str).filter(|s| valid_key_text(s));
    let first_id = vuln
        .get("ids")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|x| x.get("text"))
        .and_then(Value::as_str)
        .filter(|s| valid_key_text(s));
    cve.or(first_id)
        .map(str::to_string)
        .unwrap_or_else(|| format!("{doc}/vulnerabilities/{i}"))
}

fn aliases(vuln: &Value, key: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let cve = vuln.get("cve").and_then(Value::as_str);
    let ids = vuln.get("ids").and_then(Value::as_array).into_iter().flatten();
    for a in cve
        .into_iter()
        .chain(ids.filter_map(|x| x.get("text").and_then(Value::as_str)))
    {
        if a != key && !out.iter().any(|o| o == a) {
            out.push(a.to_string());
        }
    }
    out
}

/// A CSAF document's identity (docs/formats.md): the publisher's namespace and the
/// tracking id, `<namespace>#<tracking id>`; tracking ids are unique per publisher only.
/// Without a namespace (not valid CSAF, seen in test documents) the tracking id alone.
fn document_id(publisher: Option<&Value>, tid: &str) -> String {
    match publisher.and_then(|p| p.get("namespace")).and_then(Value::as_str) {
        Some(ns) if !ns.is_empty() && crate::model::valid_key_text(&format!("{ns}#{tid}")) => format!("{ns}#{tid}"),
        _ => tid.to_string(),
    }
}

/// `verified_by`: the fingerprint of the publisher key that verified the document's
/// OpenPGP signature, noted in every normalized record (`verifiedBy`).
pub fn parse(v: Value, verified_by: Option<&str>) -> Result<ParsedDoc, DocError> {
    let document = v
        .get("document")
        .filter(|d| d.is_object())
        .ok_or_else(|| invalid("/document", "`document` must be an object"))?;
    let version = document.get("csaf_version").and_then(Value::as_str);
    if !matches!(version, Some("2.0" | "2.1")) {
        return Err(invalid(
            "/document/csaf_version",
            format!("unsupported csaf_version {version:?} (2.0 and 2.1 are)"),
        ));
    }
    let category = required_key_str(document, "category", "/document/category")?.to_string();
    let tracking = document
        .get("tracking")
        .filter(|t| t.is_object())
        .ok_or_else(|| invalid("/document/tracking", "`document.tracking` must be an object"))?;
    let tid = required_key_str(tracking, "id", "/document/tracking/id")?.to_string();
    let current_s = required_key_str(
        tracking,
        "current_release_date",
        "/document/tracking/current_release_date",
    )?;
    let current = parse_time(current_s).ok_or_else(|| {
        invalid(
            "/document/tracking/current_release_date",
            format!("not an RFC 3339 time: {current_s:?}"),
        )
    })?;
    super::optional_time(
        tracking,
        "initial_release_date",
        "/document/tracking/initial_release_date",
    )?;
    let vulns = match v.get("vulnerabilities") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(_) => return Err(invalid("/vulnerabilities", "`vulnerabilities` must be an array")),
    };
    let publisher = document.get("publisher");
    let doc_id = document_id(publisher, &tid);
    let ctx = Ctx {
        tid: &tid,
        doc_id: &doc_id,
        tree: Tree::new(&v, &tid),
        author: publisher.and_then(|p| p.get("name")).cloned().unwrap_or(Value::Null),
        namespace: publisher
            .and_then(|p| p.get("namespace"))
            .cloned()
            .unwrap_or(Value::Null),
        doc_version: tracking.get("version").cloned().unwrap_or(Value::Null),
        current,
        verified_by,
    };
    let is_vex = category == "csaf_vex";
    let mut derived: BTreeMap<String, NewRecord> = BTreeMap::new();
    for (i, vuln) in vulns.iter().enumerate() {
        let p = format!("/vulnerabilities/{i}");
        if !vuln.is_object() {
            return Err(invalid(&p, "a vulnerability must be an object"));
        }
        let key = vuln_key(vuln, &tid, i);
        let sts = statuses(vuln, &ctx.tree, &p)?;
        let records = if is_vex {
            ctx.statements(vuln, &key, sts)
        } else {
            vec![ctx.advisory(document, &category, version.unwrap_or_default(), vuln, &key, sts)]
        };
        // A vulnerability listed twice: the later entry supersedes (as in OpenVEX).
        for r in records {
            derived.insert(r.id.clone(), r);
        }
    }
    let derived: Vec<NewRecord> = derived.into_values().collect();
    let (collection, fallback) = if is_vex {
        (Collection::VexRaw, format!("vex-document:{doc_id}"))
    } else {
        (Collection::AdvisoriesRaw, format!("advisory:{doc_id}"))
    };
    Ok(ParsedDoc {
        primary: NewRecord {
            collection,
            subject: derived.first().map(|d| d.subject.clone()).unwrap_or(fallback),
            id: doc_id,
            bytes: compact(&v),
            modified: Some(current),
        },
        derived,
    })
}

/// What every record of one document shares.
struct Ctx<'a> {
    tid: &'a str,
    /// The document's identity: `<publisher namespace>#<tracking id>`.
    doc_id: &'a str,
    tree: Tree<'a>,
    author: Value,
    namespace: Value,
    doc_version: Value,
    current: i64,
    verified_by: Option<&'a str>,
}

impl Ctx<'_> {
    fn statements(&self, vuln: &Value, key: &str, sts: Vec<Status>) -> Vec<NewRecord> {
        let is_label = |f: &Value| f.get("label").and_then(Value::as_str).is_some();
        let is_impact = |t: &Value| t.get("category").and_then(Value::as_str) == Some("impact");
        let labels = per_product(&self.tree, vuln.get("flags"), is_label, "label");
        let impacts = per_product(&self.tree, vuln.get("threats"), is_impact, "details");
        let actions = per_product(&self.tree, vuln.get("remediations"), |_| true, "details");
        let aliases = aliases(vuln, key);
        let ts = format_time(self.current);
        sts.into_iter()
            .map(|s| {
                // Justifications only qualify not_affected; impact and action texts
                // only the statuses they describe.
                let na = s.status == "not_affected";
                let justification = first_for(&labels, &s.product_ids).filter(|_| na);
                let impact = first_for(&impacts, &s.product_ids).filter(|_| na);
                let action = first_for(&actions, &s.product_ids).filter(|_| s.status == "affected");
                let n = json!({
                    "schema": "stellamirror.vex.v1",
                    "format": "csaf",
                    "document": self.tid,
                    "documentVersion": self.doc_version,
                    "author": self.author,
                    "publisherNamespace": self.namespace,
                    "vulnerability": key,
                    "aliases": aliases,
                    "product": s.product.id,
                    "productIds": s.product_ids,
                    "status": s.status,
                    "csafStatus": s.category,
                    "justification": justification,
                    "impactStatement": impact,
                    "actionStatement": action,
                    "timestamp": ts,
                });
                let id = format!("{key}|{}|{}", s.product.id, self.doc_id);
                NewRecord {
                    collection: Collection::VexNormalized,
                    subject: s.product.subject,
                    id,
                    bytes: compact(&self.noted(n)),
                    modified: Some(self.current),
                }
            })
            .collect()
    }

    /// A normalized record with the verifying key noted, when there is one.
    fn noted(&self, mut n: Value) -> Value {
        if let (Some(fp), Some(o)) = (self.verified_by, n.as_object_mut()) {
            o.insert("verifiedBy".into(), fp.into());
        }
        n
    }

    fn advisory(
        &self,
        document: &Value,
        category: &str,
        version: &str,
        vuln: &Value,
        key: &str,
        sts: Vec<Status>,
    ) -> NewRecord {
        // Subject: the first affected product, else the first product named at all.
        let subject = sts
            .iter()
            .find(|s| s.status == "affected")
            .or(sts.first())
            .map(|s| s.product.subject.clone())
            .unwrap_or_else(|| format!("advisory:{}", self.doc_id));
        let mut packages: Vec<Value> = Vec::new();
        for s in &sts {
            let entry = if s.product.is_purl {
                json!({"purl": s.product.subject})
            } else if s.product.is_cpe {
                json!({"cpe": s.product.subject})
            } else {
                continue;
            };
            if !packages.contains(&entry) {
                packages.push(entry);
            }
        }
        let products: Vec<Value> = sts
            .iter()
            .map(|s| json!({"product": s.product.id, "productIds": s.product_ids, "status": s.status, "csafStatus": s.category}))
            .collect();
        let tracking = &document["tracking"];
        let id = format!("{key}|{}", self.doc_id);
        let n = json!({
            "schema": "stellamirror.advisory.v1",
            "format": "csaf",
            "id": id,
            "document": self.tid,
            "documentVersion": self.doc_version,
            "category": category,
            "csafVersion": version,
            "publisher": self.author,
            "publisherNamespace": self.namespace,
            "title": document.get("title"),
            "vulnerability": key,
            "aliases": aliases(vuln, key),
            "summary": vuln.get("title"),
            "modified": tracking.get("current_release_date"),
            "published": tracking.get("initial_release_date"),
            "withdrawn": Value::Null,
            // CSAF 2.0 `scores`, CSAF 2.1 `metrics`, as written.
            "severity": vuln.get("scores").or_else(|| vuln.get("metrics")).cloned().unwrap_or(json!([])),
            "packages": packages,
            "products": products,
        });
        NewRecord {
            collection: Collection::AdvisoriesNormalized,
            subject,
            id,
            bytes: compact(&self.noted(n)),
            modified: Some(self.current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(category: &str) -> Value {
        json!({
            "document": {"category": category, "csaf_version": "2.0", "title": "t",
                "publisher": {"name": "Example", "namespace": "https://example.com", "category": "vendor"},
                "tracking": {"id": "EX-1", "current_release_date": "2022-03-03T11:00:00.000Z", "version": "2"}},
            "product_tree": {
                "branches": [{"category": "vendor", "name": "E", "branches": [
                    {"category": "product_version", "name": "1", "product": {"name": "E 1", "product_id": "P1",
                        "product_identification_helper": {"purl": "pkg:npm/e@1"}}},
                    {"category": "product_version", "name": "2", "product": {"name": "E 2", "product_id": "P2",
                        "product_identification_helper": {"cpe": "cpe:/a:ex:e:2::x"}}}]}],
                "full_product_names": [{"name": "Other", "product_id": "P3"}],
                "product_groups": [{"group_id": "G", "product_ids": ["P1", "P3"]}],
                "relationships": [{"category": "installed_on", "product_reference": "P1",
                    "relates_to_product_reference": "P3",
                    "full_product_name": {"name": "E 1 on Other", "product_id": "P1:P3"}}]
            },
            "vulnerabilities": [{"cve": "CVE-1", "ids": [{"system_name": "x", "text": "X-1"}],
                "product_status": {"known_not_affected": ["P1", "P3"], "known_affected": ["P2", "P9"]},
                "flags": [{"label": "component_not_present", "group_ids": ["G"]}],
                "remediations": [{"category": "vendor_fix", "details": "update", "product_ids": ["P2"]}]},
                {"cve": "CVE-2", "product_status": {"fixed": ["P1:P3"]}}]
        })
    }

    #[test]
    fn vex_statements_resolve_products_and_flags() {
        let d = parse(doc("csaf_vex"), None).expect("valid");
        assert_eq!(d.primary.collection, Collection::VexRaw);
        let ids: Vec<&str> = d.derived.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "CVE-1|Other|https://example.com#EX-1",
                "CVE-1|cpe:/a:ex:e:2::x|https://example.com#EX-1",
                "CVE-1|csaf:EX-1#P9|https://example.com#EX-1",
                "CVE-1|pkg:npm/e@1|https://example.com#EX-1",
                // A component on a platform is named by the component's purl.
                "CVE-2|pkg:npm/e@1|https://example.com#EX-1"
            ]
        );
        let p1: Value = serde_json::from_slice(&d.derived[3].bytes).expect("json");
        assert_eq!(p1["status"], "not_affected");
        assert_eq!(p1["justification"], "component_not_present");
        assert_eq!(d.derived[3].subject, "pkg:npm/e");
        let p2: Value = serde_json::from_slice(&d.derived[1].bytes).expect("json");
        assert_eq!(
            (p2["status"].as_str(), p2["actionStatement"].as_str()),
            (Some("affected"), Some("update"))
        );
        assert_eq!(d.derived[1].subject, "cpe:/a:ex:e");
    }

    #[test]
    fn advisories_get_one_record_per_vulnerability() {
        let d = parse(doc("csaf_security_advisory"), None).expect("valid");
        assert_eq!(d.primary.collection, Collection::AdvisoriesRaw);
        // The identity is the publisher's namespace + the tracking id.
        assert_eq!(d.primary.id, "https://example.com#EX-1");
        assert_eq!(d.derived.len(), 2);
        assert_eq!(d.derived[0].id, "CVE-1|https://example.com#EX-1");
        assert_eq!(d.derived[1].id, "CVE-2|https://example.com#EX-1");
        assert_eq!(d.derived[0].subject, "cpe:/a:ex:e");
        assert_eq!(d.primary.subject, "cpe:/a:ex:e");
    }

    #[test]
    fn missing_tracking_id_names_its_pointer() {
        let mut v = doc("csaf_vex");
        v["document"]["tracking"].as_object_mut().expect("object").remove("id");
        match parse(v, None) {
            Err(DocError::Invalid { pointer, .. }) => assert_eq!(pointer, "/document/tracking/id"),
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn cpe_bases_drop_the_version() {
        assert_eq!(
            cpe_base("cpe:/o:redhat:enterprise_linux:8::baseos"),
            "cpe:/o:redhat:enterprise_linux"
        );
        assert_eq!(cpe_base("cpe:2.3:a:v:p:1.0:*:*:*:*:*:*:*"), "cpe:2.3:a:v:p");
    }
}
