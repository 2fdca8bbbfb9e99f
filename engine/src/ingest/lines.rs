//! Reading JSON Lines input while the source's index is still being loaded.
//!
//! A re-ingest must digest every line but parse only the few that changed, and the live
//! digests (`known`) take one pass over the source's index to load. That pass runs on its
//! own thread from the start of the run. Until it is done, the blocks of a JSON Lines file
//! are only digested (in parallel), and each line's digest and place in the file are kept
//! ([`PendingLine`]); once it is, those lines are looked up in input order, and the ones
//! that are not known are read again from the file (adjacent ones in one read) and parsed.
//! The blocks after that are handled as they come. Memory for the pending lines is bounded
//! by what is digested while the index loads.
//!
//! The bytes read again are digested again and must give the digest taken the first time:
//! a file rewritten under a running ingest is refused, never ingested half old, half new.
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::thread::ScopedJoinHandle;

use rayon::prelude::*;

use super::digest::FileDigester;
use super::identity::position;
use super::input::{Block, InputFile};
use super::known::KnownDigests;
use super::{parse_raw, IngestError, Outcome, Run};
use crate::audit::Progress;
use crate::ids::InputDigest;
use crate::ingest::formats::ParseContext;

/// The index load of a run, until it is joined.
pub(super) type Loader<'s> = Option<ScopedJoinHandle<'s, Result<KnownDigests, IngestError>>>;

/// A line digested before the index was ready.
pub(super) struct PendingLine {
    digest: InputDigest,
    offset: u64,
    len: usize,
    line: usize,
}

/// Lines further apart than this are read again separately rather than together.
const READ_GAP: u64 = 64 << 10;

/// Digest every document of `block`, in parallel, into `pending`.
pub(super) fn digest_block(block: &Block, digester: &FileDigester, pending: &mut Vec<PendingLine>) {
    let digested: Vec<PendingLine> = block
        .docs
        .par_iter()
        .map(|d| PendingLine {
            digest: digester.digest(block.bytes(d)),
            offset: block.offset + d.range.start as u64,
            len: d.range.len(),
            line: d.line.unwrap_or(0),
        })
        .collect();
    pending.extend(digested);
}

/// Join the index load (once).
pub(super) fn await_known(run: &mut Run<'_>, loader: &mut Loader<'_>) -> Result<(), IngestError> {
    if let Some(h) = loader.take() {
        run.known = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))?;
    }
    Ok(())
}

/// The file's bytes of the lines `which` (in file order), read again in as few reads as
/// gaps allow: one buffer and each line's range in it.
fn read_again(
    file: &InputFile,
    reader: &mut std::fs::File,
    which: &[&PendingLine],
) -> Result<(Vec<u8>, Vec<Range<usize>>), IngestError> {
    let io = |e: std::io::Error| IngestError::Io {
        path: file.path.clone(),
        message: e.to_string(),
    };
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(which.len());
    let mut i = 0;
    while i < which.len() {
        let start = which[i].offset;
        let mut end = start + which[i].len as u64;
        let mut j = i + 1;
        while j < which.len() && which[j].offset <= end + READ_GAP {
            end = which[j].offset + which[j].len as u64;
            j += 1;
        }
        let base = buf.len();
        buf.resize(base + (end - start) as usize, 0);
        reader.seek(SeekFrom::Start(start)).map_err(io)?;
        reader.read_exact(&mut buf[base..]).map_err(io)?;
        for l in &which[i..j] {
            let at = base + (l.offset - start) as usize;
            ranges.push(at..at + l.len);
        }
        i = j;
    }
    Ok((buf, ranges))
}

impl Run<'_> {
    /// Take the lines digested before the index was ready, in input order: known ones as
    /// unchanged, the others read again, checked and parsed.
    pub(super) fn take_pending(
        &mut self,
        fi: usize,
        file: &InputFile,
        ctx: &ParseContext,
        digester: &FileDigester,
        pending: Vec<PendingLine>,
        progress: &dyn Progress,
    ) -> Result<(), IngestError> {
        if pending.is_empty() {
            return Ok(());
        }
        let mut reader = std::fs::File::open(&file.path).map_err(|e| IngestError::Io {
            path: file.path.clone(),
            message: e.to_string(),
        })?;
        let mut rest = pending.as_slice();
        while !rest.is_empty() {
            // Groups of about a block's bytes bound what is read again at once.
            let mut n = 0;
            let mut bytes = 0;
            while n < rest.len() && (n == 0 || bytes < super::BLOCK_BYTES) {
                bytes += rest[n].len;
                n += 1;
            }
            let (group, tail) = rest.split_at(n);
            rest = tail;
            self.take_group(fi, file, ctx, digester, &mut reader, group)?;
            progress.documents(self.report.parsed, self.report.unchanged);
        }
        Ok(())
    }

    fn take_group(
        &mut self,
        fi: usize,
        file: &InputFile,
        ctx: &ParseContext,
        digester: &FileDigester,
        reader: &mut std::fs::File,
        group: &[PendingLine],
    ) -> Result<(), IngestError> {
        let known = &self.known;
        let found: Vec<_> = group.par_iter().map(|l| known.find(&l.digest)).collect();
        let changed: Vec<&PendingLine> = group
            .iter()
            .zip(&found)
            .filter(|(_, f)| f.is_none())
            .map(|(l, _)| l)
            .collect();
        let (buf, ranges) = read_again(file, reader, &changed)?;
        let parsed: Vec<Outcome> = changed
            .par_iter()
            .zip(ranges.par_iter())
            .map(|(l, r)| {
                let bytes = &buf[r.clone()];
                if digester.digest(bytes) != l.digest {
                    return Err(IngestError::Io {
                        path: file.path.clone(),
                        message: format!(
                            "line {} changed while the file was being read; nothing was ingested: run again once it is complete",
                            l.line
                        ),
                    });
                }
                let line = Some(l.line);
                Ok(Outcome::Parsed(l.digest, parse_raw(file, line, bytes, ctx), position(fi, line)))
            })
            .collect::<Result<_, _>>()?;
        let mut parsed = parsed.into_iter();
        for (l, f) in group.iter().zip(found) {
            let o = match f {
                Some(i) => Outcome::Unchanged(i, position(fi, Some(l.line))),
                None => parsed.next().expect("one outcome per changed line"),
            };
            self.take(o)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::input::FileShape;

    #[test]
    fn lines_read_again_are_exactly_their_bytes_near_or_far_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        // Two neighbours (one read), then one past the gap (a read of its own).
        let far = "x".repeat(READ_GAP as usize + 10);
        let body = format!("{{\"a\":1}}\n{{\"b\":2}}\n{far}\n{{\"c\":3}}\n");
        std::fs::write(&path, &body).unwrap();
        let file = InputFile {
            path: path.clone(),
            shape: FileShape::JsonLines,
            name: "in.jsonl".into(),
        };
        let line = |text: &str, n: usize| PendingLine {
            digest: InputDigest([0; 32]),
            offset: body.find(text).unwrap() as u64,
            len: text.len(),
            line: n,
        };
        let lines = [line("{\"a\":1}", 1), line("{\"b\":2}", 2), line("{\"c\":3}", 4)];
        let which: Vec<&PendingLine> = lines.iter().collect();
        let mut reader = std::fs::File::open(&path).unwrap();
        let (buf, ranges) = read_again(&file, &mut reader, &which).unwrap();
        let got: Vec<&[u8]> = ranges.iter().map(|r| &buf[r.clone()]).collect();
        assert_eq!(got, vec![&b"{\"a\":1}"[..], b"{\"b\":2}", b"{\"c\":3}"]);
        // The far line was not read along with the others.
        assert!(buf.len() < far.len());
    }
}
