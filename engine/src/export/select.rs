//! Applying export selectors to subjects and records.
use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::model::{parse_time, Leaf};
use crate::store::catalog::Selectors;

/// Compiled selectors. Subjects match if any product glob matches (or none is given);
/// records match if their modification time is in `[from, to)` (or no window is given;
/// with a window, records without a modification time are excluded).
pub struct Filter {
    globs: Option<GlobSet>,
    from: Option<i64>,
    to: Option<i64>,
    all: bool,
}

impl Filter {
    pub fn new(s: &Selectors) -> Result<Self, String> {
        let globs = if s.products.is_empty() {
            None
        } else {
            let mut b = GlobSetBuilder::new();
            for p in &s.products {
                b.add(Glob::new(p).map_err(|e| format!("bad --product glob {p:?}: {e}"))?);
            }
            Some(b.build().map_err(|e| e.to_string())?)
        };
        let t = |v: &Option<String>, flag: &str| -> Result<Option<i64>, String> {
            v.as_ref()
                .map(|s| parse_time(s).ok_or_else(|| format!("{flag} {s:?} is not an RFC 3339 time")))
                .transpose()
        };
        Ok(Self {
            globs,
            from: t(&s.from, "--from")?,
            to: t(&s.to, "--to")?,
            all: s.is_all(),
        })
    }

    pub fn selects_all(&self) -> bool {
        self.all
    }

    pub fn has_time_window(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }

    pub fn subject(&self, subject: &str) -> bool {
        self.globs.as_ref().is_none_or(|g| g.is_match(subject))
    }

    pub fn leaf(&self, leaf: &Leaf) -> bool {
        if self.from.is_none() && self.to.is_none() {
            return true;
        }
        let Some(m) = leaf.modified else { return false };
        self.from.is_none_or(|f| m >= f) && self.to.is_none_or(|t| m < t)
    }
}

/// Normalise selectors: globs sorted and deduplicated, times re-rendered as UTC seconds.
pub fn normalize(mut s: Selectors) -> Result<Selectors, String> {
    s.products.sort();
    s.products.dedup();
    for (v, flag) in [(&mut s.from, "--from"), (&mut s.to, "--to")] {
        if let Some(t) = v.as_ref() {
            let secs = parse_time(t).ok_or_else(|| format!("{flag} {t:?} is not an RFC 3339 time"))?;
            *v = Some(crate::model::format_time(secs));
        }
    }
    Filter::new(&s)?;
    Ok(s)
}
