//! The stored form of a raw document without building a `serde_json::Value`.
//!
//! Raw records are the document re-serialised compactly by serde_json (`preserve_order`,
//! `arbitrary_precision`): whitespace between tokens dropped, key order and number text
//! kept, strings re-escaped the serde_json way (`"` `\` and control characters only;
//! `\/`, `\u00e9` and the like are written as the characters they stand for).
//! [`compact`] produces exactly those bytes in one pass over the input, and returns
//! `None` whenever it cannot promise that (invalid JSON, a duplicate key — serde_json
//! keeps the first position and the last value —, nesting deeper than serde_json's
//! limit); callers then take the `Value` path, which also produces the precise error.
//! The equivalence is tested on every document of the corpora.

/// serde_json's default recursion limit.
const MAX_DEPTH: usize = 128;

struct Scan<'a> {
    b: &'a [u8],
    i: usize,
    out: Vec<u8>,
}

/// The serde_json compact form of `input`, or `None` (see the module comment).
pub fn compact(input: &[u8]) -> Option<Vec<u8>> {
    let mut s = Scan {
        b: input,
        i: 0,
        out: Vec::with_capacity(input.len()),
    };
    s.ws();
    s.value(0)?;
    s.ws();
    (s.i == s.b.len()).then_some(s.out)
}

impl Scan<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then_some(())?;
        self.out.extend_from_slice(word);
        self.i = end;
        Some(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// JSON number grammar; the text is kept as written (`arbitrary_precision`), except
    /// that serde_json writes the exponent as `e` with an explicit sign (`1E3` → `1e+3`).
    fn number(&mut self) -> Option<()> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            (self.digits() > 0).then_some(())?;
        }
        self.out.extend_from_slice(&self.b[start..self.i]);
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            self.out.push(b'e');
            match self.peek() {
                Some(c @ (b'+' | b'-')) => {
                    self.i += 1;
                    self.out.push(c);
                }
                _ => self.out.push(b'+'),
            }
            let digits = self.i;
            (self.digits() > 0).then_some(())?;
            self.out.extend_from_slice(&self.b[digits..self.i]);
        }
        Some(())
    }

    fn hex4(&mut self) -> Option<u32> {
        let h = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
        let v = u32::from_str_radix(h, 16).ok()?;
        (h.bytes().all(|c| c.is_ascii_hexdigit())).then_some(())?;
        self.i += 4;
        Some(v)
    }

    /// One escape after its backslash, decoded.
    fn escape(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        Some(match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                if (0xDC00..0xE000).contains(&hi) {
                    return None;
                }
                if (0xD800..0xDC00).contains(&hi) {
                    (self.b.get(self.i..self.i + 2)? == b"\\u").then_some(())?;
                    self.i += 2;
                    let lo = self.hex4()?;
                    (0xDC00..0xE000).contains(&lo).then_some(())?;
                    char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
                } else {
                    char::from_u32(hi)?
                }
            }
            _ => return None,
        })
    }

    /// Copy a string in serde_json's escaping; returns its span in `out` (for keys).
    fn string(&mut self) -> Option<(usize, usize)> {
        self.i += 1; // opening quote
        let start_out = self.out.len();
        self.out.push(b'"');
        let mut run = self.i;
        loop {
            let c = self.peek()?;
            match c {
                b'"' => {
                    self.flush_run(run)?;
                    self.i += 1;
                    self.out.push(b'"');
                    return Some((start_out, self.out.len()));
                }
                b'\\' => {
                    self.flush_run(run)?;
                    self.i += 1;
                    let ch = self.escape()?;
                    push_escaped(&mut self.out, ch);
                    run = self.i;
                }
                0x00..=0x1f => return None,
                _ => self.i += 1,
            }
        }
    }

    /// Copy the unescaped bytes `run..i` (valid UTF-8 required, as serde_json does).
    fn flush_run(&mut self, run: usize) -> Option<()> {
        let seg = &self.b[run..self.i];
        std::str::from_utf8(seg).ok()?;
        self.out.extend_from_slice(seg);
        Some(())
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        (depth <= MAX_DEPTH).then_some(())?;
        self.i += 1;
        self.out.push(b'[');
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            self.out.push(b']');
            return Some(());
        }
        loop {
            self.value(depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.out.push(b',');
                    self.ws();
                }
                b']' => {
                    self.i += 1;
                    self.out.push(b']');
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn object(&mut self, depth: usize) -> Option<()> {
        (depth <= MAX_DEPTH).then_some(())?;
        self.i += 1;
        self.out.push(b'{');
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            self.out.push(b'}');
            return Some(());
        }
        let mut keys: Vec<(usize, usize)> = Vec::new();
        loop {
            (self.peek()? == b'"').then_some(())?;
            let k = self.string()?;
            // Escaping is canonical, so equal keys have equal bytes.
            let dup = keys.iter().any(|(a, b)| self.out[*a..*b] == self.out[k.0..k.1]);
            if dup {
                return None;
            }
            keys.push(k);
            self.ws();
            (self.peek()? == b':').then_some(())?;
            self.i += 1;
            self.out.push(b':');
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.peek()? {
                b',' => {
                    self.i += 1;
                    self.out.push(b',');
                    self.ws();
                }
                b'}' => {
                    self.i += 1;
                    self.out.push(b'}');
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// One character as serde_json writes it inside a string.
fn push_escaped(out: &mut Vec<u8>, ch: char) {
    let short = match ch {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    match short {
        Some(c) => out.extend_from_slice(&[b'\\', c]),
        None if (ch as u32) < 0x20 => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let n = ch as usize;
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[n >> 4], HEX[n & 0xf]]);
        }
        None => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(b: &[u8]) -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        Some(serde_json::to_vec(&v).unwrap())
    }

    #[test]
    fn matches_serde_json_on_tricky_documents() {
        let cases: &[&str] = &[
            r#" { "a" : [1, -0.5e+10, 1E3, 0, true, false, null, {}, [] ] , "b":"x\/y\u00e9\n\t\"\\\u0001\ud83d\ude00" } "#,
            r#"{"k":"plain ünïcödé","n":12345678901234567890123,"e":[],"x":[1e5,2E-3,3.5E+7,-0,-0.0]}"#,
            r#"[{"a":{"b":{"c":"\u001f\u007f"}}}]"#,
            r#""just a string""#,
            "17",
        ];
        for c in cases {
            assert_eq!(compact(c.as_bytes()), reference(c.as_bytes()), "{c}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_promise() {
        let cases: &[&str] = &[
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":01}"#,
            r#"{"a":1,}"#,
            r#"{"a":"tab	in string"}"#,
            r#"{"a":1} x"#,
            "",
        ];
        for c in cases {
            assert_eq!(compact(c.as_bytes()), None, "{c}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert_eq!(compact(deep.as_bytes()), None);
    }
}
