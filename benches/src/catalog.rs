//! The synthetic universe the evidence talks about: packages, advisory identities, dates.
//!
//! Invariant: each item is a pure function of `(seed, index)` (see `rng`), so the generator and
//! the churn step can re-derive a package or an advisory identity without reading anything,
//! and identifiers are unique by construction (they embed the index bijectively), never by luck.

use crate::rng::{hash64, stream, Rng};

/// 2026-01-01T00:00:00Z: the first churn generation is stamped at this instant plus one hour
/// per generation, strictly later than any generated `published`/`modified` date.
pub const GENERATION_EPOCH: i64 = 1_767_225_600;
/// Window for `published`: 2016-01-01 .. 2025-10-31.
const PUBLISHED_FROM: i64 = 1_451_606_400;
const PUBLISHED_SPAN: i64 = 1_761_868_800 - PUBLISHED_FROM;

/// Ecosystems with rough OSV-like weights (npm, PyPI, Maven, Go most common).
const ECOSYSTEMS: [(&str, u32); 8] = [
    ("npm", 22),
    ("PyPI", 18),
    ("Maven", 16),
    ("Go", 14),
    ("Packagist", 8),
    ("crates.io", 8),
    ("NuGet", 7),
    ("RubyGems", 7),
];

const CONSONANTS: &[u8; 14] = b"bdfgklmnprstvz";
const VOWELS: &[u8; 5] = b"aeiou";
const SUFFIXES: [&str; 20] = [
    "", "", "", "", "", "-core", "-utils", "-client", "-server", "-parser", "-http", "-io", "-auth", "-cli", "-sdk",
    "-plugin", "-tools", "-db", "-async", "-common",
];

/// Two-letter syllables (70 of them): fixed width, so concatenations never collide.
fn syllables(mut x: u64, count: usize, out: &mut String) {
    for _ in 0..count {
        let s = (x % 70) as usize;
        x /= 70;
        out.push(CONSONANTS[s / 5] as char);
        out.push(VOWELS[s % 5] as char);
    }
}

/// A unique lowercase base name for `p`: 3 syllables for the first 70^3 indices, then 4, then
/// 5 (lengths differ, so the ranges cannot collide with each other).
fn base_name(p: u64) -> String {
    let mut s = String::with_capacity(12);
    const L3: u64 = 70 * 70 * 70;
    const L4: u64 = L3 * 70;
    // Within each length class, scramble by an affine bijection (7919 is coprime with 70^k) so
    // that the most popular packages (low indices) do not all get the "bababa"-like names.
    let scramble = |x: u64, m: u64| (x % m * 7919 + 12_345) % m;
    if p < L3 {
        syllables(scramble(p, L3), 3, &mut s);
    } else if p < L3 + L4 {
        syllables(scramble(p - L3, L4), 4, &mut s);
    } else {
        syllables(p - L3 - L4, 5, &mut s);
    }
    s
}

/// One of 600 organisations (not unique per package: orgs own many packages).
pub fn org_name(h: u64) -> String {
    let mut s = String::new();
    syllables(h % 600 + 4_900, 2 + (h % 2) as usize, &mut s);
    s
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

#[derive(Clone, Debug)]
pub struct Package {
    pub ecosystem: &'static str,
    pub name: String,
    /// purl without version (the advisory subject).
    pub purl: String,
    /// Source repository path `org/name` (for reference URLs).
    pub repo: String,
    /// Released versions, ascending.
    pub versions: Vec<String>,
}

impl Package {
    /// The purl of one version (npm scopes are already percent-encoded in `purl`).
    pub fn purl_at(&self, version: &str) -> String {
        format!("{}@{}", self.purl, version)
    }
}

/// Package number `p` of the universe.
pub fn package(seed: u64, p: u64) -> Package {
    let mut rng = Rng::new(seed, stream::PACKAGE, p);
    let eco_weights: Vec<u32> = ECOSYSTEMS.iter().map(|e| e.1).collect();
    let ecosystem = ECOSYSTEMS[rng.weighted(&eco_weights)].0;
    let base = base_name(p) + *rng.pick(&SUFFIXES);
    let org = org_name(rng.next_u64());
    let (name, purl) = match ecosystem {
        "npm" if rng.chance(0.2) => (format!("@{org}/{base}"), format!("pkg:npm/%40{org}/{base}")),
        "npm" => (base.clone(), format!("pkg:npm/{base}")),
        "PyPI" => (base.clone(), format!("pkg:pypi/{base}")),
        "Maven" => (format!("org.{org}:{base}"), format!("pkg:maven/org.{org}/{base}")),
        "Go" => (
            format!("github.com/{org}/{base}"),
            format!("pkg:golang/github.com/{org}/{base}"),
        ),
        "Packagist" => (format!("{org}/{base}"), format!("pkg:composer/{org}/{base}")),
        "crates.io" => (base.clone(), format!("pkg:cargo/{base}")),
        "NuGet" => {
            let n = format!("{}.{}", capitalise(&org), capitalise(&base));
            (n.clone(), format!("pkg:nuget/{n}"))
        }
        _ => (base.clone(), format!("pkg:gem/{base}")),
    };
    let count = 3 + rng.below(30) as usize;
    let (mut major, mut minor, mut patch) = (rng.below(3), rng.below(5), 0u64);
    let mut versions = Vec::with_capacity(count);
    for _ in 0..count {
        versions.push(format!("{major}.{minor}.{patch}"));
        let r = rng.below(100);
        if r < 70 {
            patch += 1;
        } else if r < 95 {
            minor += 1;
            patch = 0;
        } else {
            major += 1;
            minor = 0;
            patch = 0;
        }
    }
    Package {
        ecosystem,
        name,
        purl,
        repo: format!("{org}/{base}"),
        versions,
    }
}

/// How many package indices advisories are spread over for `n` advisories. With the skew in
/// `assign_package` about 70% of indices receive at least one advisory, which gives the
/// "one package per 3–5 advisories" of the issue (measured: see docs/benchmarks.md).
pub fn package_space(n: u64) -> u64 {
    (n * 3 / 10).max(1)
}

/// The package an advisory (or an SBOM component draw) falls on: index `floor(space * u^2.5)`,
/// a power law that gives a few packages thousands of advisories (at 1M) and most packages one
/// or two.
pub fn skewed_package(rng: &mut Rng, space: u64) -> u64 {
    let u = rng.unit();
    ((space as f64) * u * u * u.sqrt()) as u64
}

pub fn assign_package(seed: u64, serial: u64, space: u64) -> u64 {
    skewed_package(&mut Rng::new(seed, stream::ASSIGN, serial), space)
}

/// `GHSA-xxxx-xxxx-xxxx` for a serial: a bijection on 50 bits (add, multiply by odd, xorshift)
/// written in GitHub's 20-letter alphabet, so distinct serials give distinct ids.
pub fn ghsa(seed: u64, serial: u64) -> String {
    const MASK: u64 = (1 << 50) - 1;
    const ALPHABET: &[u8; 20] = b"23456789cfghjmpqrvwx";
    let mut x = serial.wrapping_add(hash64(&seed.to_le_bytes())) & MASK;
    x = x.wrapping_mul(0x5851_F42D_4C95_7F2D) & MASK;
    x ^= x >> 23;
    x = x.wrapping_mul(0x1405_7B7E_F767_814F) & MASK;
    x ^= x >> 25;
    let mut chars = [0u8; 12];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(x % 20) as usize];
        x /= 20;
    }
    let s = std::str::from_utf8(&chars).unwrap_or_default();
    format!("GHSA-{}-{}-{}", &s[0..4], &s[4..8], &s[8..12])
}

/// What identifies an advisory, derivable from its serial alone.
#[derive(Clone, Debug)]
pub struct Identity {
    pub id: String,
    pub cve: Option<String>,
    /// The GHSA id when it is an alias rather than the id.
    pub ghsa_alias: Option<String>,
    pub published: i64,
}

impl Identity {
    /// The name VEX statements and policy evaluations use: the CVE when there is one.
    pub fn vuln_name(&self) -> &str {
        self.cve.as_deref().unwrap_or(&self.id)
    }
}

pub fn identity(seed: u64, serial: u64, ecosystem: &str) -> Identity {
    let mut rng = Rng::new(seed, stream::IDENTITY, serial);
    let published = PUBLISHED_FROM + rng.below(PUBLISHED_SPAN as u64) as i64;
    let year = civil(published).0;
    let cve = rng.chance(0.85).then(|| format!("CVE-{year}-{}", 10_000 + serial));
    let g = ghsa(seed, serial);
    let native = match ecosystem {
        "Go" => Some(format!("GO-{year}-{serial:04}")),
        "crates.io" => Some(format!("RUSTSEC-{year}-{serial:04}")),
        "PyPI" if rng.chance(0.5) => Some(format!("PYSEC-{year}-{serial}")),
        _ => None,
    };
    match native {
        Some(id) => Identity {
            id,
            cve,
            ghsa_alias: Some(g),
            published,
        },
        None => Identity {
            id: g,
            cve,
            ghsa_alias: None,
            published,
        },
    }
}

/// (year, month, day, hh, mm, ss) of a UNIX time (proleptic Gregorian, UTC).
pub fn civil(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400) as u32;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
}

/// RFC 3339 UTC timestamp with second precision.
pub fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The instant stamped on records touched by churn generation `g` (g >= 1), plus a per-record
/// offset below one hour so that timestamps differ between records yet stay in their hour.
pub fn generation_time(generation: u64, offset: u64) -> i64 {
    GENERATION_EPOCH + (generation as i64) * 3600 + (offset % 3600) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_ids() {
        assert_eq!(rfc3339(GENERATION_EPOCH), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        let ids: std::collections::HashSet<String> = (0..5000).map(|k| ghsa(3, k)).collect();
        assert_eq!(ids.len(), 5000);
        let names: std::collections::HashSet<String> = (0..400_000).map(base_name).collect();
        assert_eq!(names.len(), 400_000);
    }
}
