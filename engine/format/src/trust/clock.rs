//! Durations (`7d`, `36h`, `1d12h`, `90m`, `3600s`) and the clock freshness checks use.
//!
//! The engine never reads the wall clock for a freshness decision itself: the caller
//! passes a [`Clock`], so tests and "would this bundle be accepted on date X" checks
//! can fix it (the CLI's `STELLAMIRROR_NOW`).
use crate::model::{format_time, parse_time};

/// The time a freshness decision is made at, and whether it is the real clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    /// Unix seconds.
    pub now: i64,
    /// True when the operator fixed the time instead of reading the system clock.
    pub overridden: bool,
}

impl Clock {
    pub fn system() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self { now, overridden: false }
    }
    /// A fixed time given as RFC 3339.
    pub fn fixed(rfc3339: &str) -> Option<Self> {
        parse_time(rfc3339).map(|now| Self { now, overridden: true })
    }
    pub fn rfc3339(&self) -> String {
        format_time(self.now)
    }
}

const UNITS: [(char, u64); 5] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// Parse `<n><unit>…` with units w, d, h, m, s (e.g. `7d`, `1d12h`). At least one
/// second, at most 100 years.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("duration {s:?}: use a number and a unit (w, d, h, m, s), e.g. 7d or 36h");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for ch in s.trim().chars() {
        if ch.is_ascii_digit() {
            digits.push(ch);
            continue;
        }
        let (_, mult) = UNITS.iter().find(|(u, _)| *u == ch).ok_or_else(bad)?;
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(*mult)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    if total > 100 * 366 * 86_400 {
        return Err(format!("duration {s:?} is longer than 100 years"));
    }
    Ok(total)
}

/// The largest units first: `30d`, `1d12h`, `45s`.
pub fn format_duration(mut secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (u, mult) in UNITS.iter().filter(|(u, _)| *u != 'w') {
        if secs >= *mult {
            out.push_str(&format!("{}{u}", secs / mult));
            secs %= mult;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("1d12h"), Ok(36 * 3_600));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400));
        assert_eq!(parse_duration("90s"), Ok(90));
        for bad in ["", "7", "d", "7x", "0s", "-1d", "1.5d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
        }
        assert_eq!(format_duration(36 * 3_600), "1d12h");
        assert_eq!(format_duration(30 * 86_400), "30d");
        assert_eq!(format_duration(61), "1m1s");
    }
}
