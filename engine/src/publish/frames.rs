//! Sharded data files of the published bundle layout, one zstd frame per subject. A file
//! is the concatenation of its subjects' frames in shard order; it decompresses (zstd
//! reads concatenated frames) to exactly the lines of the single-frame bundle file. After
//! a delta, a changed shard is rewritten by copying the compressed frames and index
//! entries of its unchanged subjects from the previous version and compressing only the
//! changed subjects: a 1% delta touches nearly every shard, and recompressing whole
//! shards cost as much as publishing from scratch.
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::docs::Context;
use super::{write_file, PublishError, SIDECAR};
use crate::bundle::layout::{layout, shard_path, FileLayout};
use crate::export::units::{entry_text, run_unit, Body, UnitContext, UnitInput, UnitOutput};
use crate::export::ExportError;
use crate::ids::NodeHash;
use crate::model::Collection;

/// Where a subject's frame and index entry are in a unit's data and part files.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Frame {
    subject: String,
    root: String,
    data: (usize, usize),
    index: (usize, usize),
}

pub fn frames_rel(c: Collection, shard: u8) -> String {
    format!("{SIDECAR}/frames/{}-{shard:02x}.json", c.name())
}

pub fn part_rel(c: Collection, shard: u8) -> String {
    format!("{SIDECAR}/index/{}-{shard:02x}.part", c.name())
}

/// The previous version's frames, data and part bytes of a unit, when it has them.
fn previous(prev: &Path, c: Collection, shard: u8, data_rel: &str) -> Option<(Vec<Frame>, Vec<u8>, Vec<u8>)> {
    let frames: Vec<Frame> = serde_json::from_slice(&std::fs::read(prev.join(frames_rel(c, shard))).ok()?).ok()?;
    let data = std::fs::read(prev.join(data_rel)).ok()?;
    let part = std::fs::read(prev.join(part_rel(c, shard))).ok()?;
    let fits = frames
        .iter()
        .all(|f| f.data.0 + f.data.1 <= data.len() && f.index.0 + f.index.1 <= part.len());
    fits.then_some((frames, data, part))
}

/// Write one sharded unit (data file, index part, frame list); returns its output for the
/// index files.
pub fn write_unit(
    ctx: &Context<'_>,
    c: Collection,
    shard: u8,
    root: &NodeHash,
    level: i32,
) -> Result<UnitOutput, PublishError> {
    let FileLayout::Sharded(dir) = layout(c) else {
        unreachable!("only sharded collections are framed")
    };
    let data_rel = shard_path(dir, shard);
    let node = ctx.store.shard_node(shard, root)?;
    let prev = ctx.prev.and_then(|p| previous(&p.dir, c, shard, &data_rel));
    let identity = |_: &str, b: Vec<u8>| -> Result<Vec<u8>, ExportError> { Ok(b) };
    let uctx = UnitContext {
        store: ctx.store,
        staging: ctx.out,
        prefix: "",
        zstd_level: level,
        seal: &identity,
        in_memory: true,
        index_version: crate::bundle::format::INDEX_FORMAT_VERSION_1,
    };
    let (mut data, mut part, mut frames) = (Vec::new(), Vec::new(), Vec::new());
    let by_subject: HashMap<&str, &Frame> = prev
        .as_ref()
        .map(|(pf, _, _)| pf.iter().map(|f| (f.subject.as_str(), f)).collect())
        .unwrap_or_default();
    for s in &node.subjects {
        let root_text = s.root.to_prefixed();
        let reused = prev.as_ref().and_then(|(_, pd, pp)| {
            let f = by_subject.get(s.subject.as_str()).filter(|f| f.root == root_text)?;
            Some((
                pd[f.data.0..f.data.0 + f.data.1].to_vec(),
                pp[f.index.0..f.index.0 + f.index.1].to_vec(),
            ))
        });
        let (frame, entry) = match reused {
            Some(r) => r,
            None => {
                let leaves = ctx.store.subject_node(&s.root)?.leaves;
                let input = UnitInput {
                    collection: c,
                    shard,
                    subjects: vec![(s.subject.clone(), leaves)],
                };
                let o = run_unit(&uctx, input)?;
                let frame = match o.files.into_iter().next() {
                    Some((_, Body::Sealed(b))) => b,
                    _ => Vec::new(),
                };
                let mut entry = Vec::new();
                for e in &o.index {
                    entry_text(e, &mut entry);
                }
                (frame, entry)
            }
        };
        if !part.is_empty() {
            part.push(b',');
        }
        frames.push(Frame {
            subject: s.subject.clone(),
            root: root_text,
            data: (data.len(), frame.len()),
            index: (part.len(), entry.len()),
        });
        data.extend_from_slice(&frame);
        part.extend_from_slice(&entry);
    }
    write_file(ctx.out, &data_rel, &data)?;
    write_file(ctx.out, &part_rel(c, shard), &part)?;
    write_file(
        ctx.out,
        &frames_rel(c, shard),
        &serde_json::to_vec(&frames).expect("json"),
    )?;
    let records = node.subjects.iter().map(|s| s.records).sum();
    Ok(UnitOutput {
        collection: c,
        shard,
        files: Vec::new(),
        lines: Vec::new(),
        subjects: node.subjects,
        index: Vec::new(),
        index_part: Some(ctx.out.join(part_rel(c, shard))),
        records,
    })
}
