//! Detection: find typed spans of sensitive data in one string.
//!
//! One value is scanned in at most three steps, cheapest first:
//! 1. a byte pass counts digits, `@`, `:`, `=`, dots, dashes and capitals;
//!    each detector states what it needs (a card needs 13 digits, an email an
//!    `@`), and a value no detector can match is done (most clean text);
//! 2. one [`RegexSet`] pass over the value tells which patterns match at all;
//! 3. only those patterns run again to locate candidates, and each candidate
//!    must pass its validator (Luhn, mod-97, ranges...) and a boundary check
//!    (a card inside a longer digit run is not a card).
//!
//! Overlaps are resolved by type priority (the order of [`BUILTIN_TYPES`],
//! then custom detectors): a password inside a connection string is a
//! `SECRET`, not an `EMAIL`. Does not replace anything; see `text`.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::{Regex, RegexSet, RegexSetBuilder};

use super::config::Validator;
use super::validate;

/// Built-in types, highest priority first (overlaps go to the earlier one).
pub const BUILTIN_TYPES: [&str; 10] = [
    "PRIVATE_KEY",
    "SECRET",
    "JWT",
    "AWS_ACCESS_KEY",
    "CREDIT_CARD",
    "IBAN",
    "EMAIL",
    "US_SSN",
    "IP_ADDRESS",
    "PHONE",
];

/// Index of `SECRET` in [`BUILTIN_TYPES`] (and in the masker's type table).
pub const SECRET: usize = 1;

/// A typed span `[start, end)` (byte offsets) in the scanned string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// Index into the masker's type table; also the priority.
    pub ty: usize,
    /// Start byte.
    pub start: usize,
    /// End byte (exclusive).
    pub end: usize,
}

#[derive(Debug, Clone, Copy)]
enum Check {
    Email,
    Phone,
    Card,
    Iban,
    Ssn,
    SsnBare,
    Ipv4,
    Ipv6,
    Jwt,
    Aws,
    PrivateKey,
    SecretKv,
    SecretUrl,
    Custom(Option<Validator>),
}

/// What a value must contain before a pattern can match (prefilter).
#[derive(Debug, Clone, Copy, Default)]
struct Need {
    digits: u32,
    at: bool,
    colons: u32,
    /// `:`, `=` or a quote (key/value shapes).
    kv: bool,
    dots: u32,
    dashes: u32,
    upper: u32,
    len: usize,
}

#[derive(Debug, Clone, Copy, Default)]
struct Features {
    digits: u32,
    at: bool,
    colons: u32,
    eq: bool,
    quote: bool,
    keyword: bool,
    dots: u32,
    dashes: u32,
    upper: u32,
    len: usize,
}

impl Features {
    fn of(s: &str) -> Features {
        let mut f = Features {
            len: s.len(),
            ..Features::default()
        };
        for &b in s.as_bytes() {
            match b {
                b'0'..=b'9' => f.digits += 1,
                b'A'..=b'Z' => f.upper += 1,
                b'@' => f.at = true,
                b':' => f.colons += 1,
                b'=' => f.eq = true,
                b'"' | b'\'' => f.quote = true,
                b'.' => f.dots += 1,
                b'-' => f.dashes += 1,
                _ => {}
            }
        }
        f
    }

    fn satisfies(&self, n: &Need) -> bool {
        self.digits >= n.digits
            && (!n.at || self.at)
            && self.colons >= n.colons
            && (!n.kv || self.keyword)
            && self.dots >= n.dots
            && self.dashes >= n.dashes
            && self.upper >= n.upper
            && self.len >= n.len
    }
}

#[derive(Debug)]
struct Pattern {
    ty: usize,
    regex: Regex,
    check: Check,
    need: Need,
    /// Bytes a match is cut at (custom regexes only; see [`custom_stops`]).
    stops: Vec<u8>,
}

/// Where a custom regex's match is cut: at a line break, and at a quote
/// character the regex itself does not name. A custom `secret:.*` then masks
/// to the end of the quoted value it starts in, not over the `' OR id > 0`
/// that follows; a regex written for quotes (`"ssn": "\d+"`) keeps them.
fn custom_stops(re: &str) -> Vec<u8> {
    let mut stops = vec![b'\n', b'\r'];
    stops.extend(
        [b'\'', b'"', b'`']
            .into_iter()
            .filter(|q| !re.as_bytes().contains(q)),
    );
    stops
}

/// Compiled detectors of one masker.
#[derive(Debug)]
pub(crate) struct Engine {
    patterns: Vec<Pattern>,
    set: RegexSet,
    /// Credential words that must appear before `SECRET` key/value runs.
    keywords: AhoCorasick,
    words: Vec<(usize, AhoCorasick)>,
}

/// A custom detector after config validation.
pub(crate) struct CustomSpec<'a> {
    /// Type index.
    pub ty: usize,
    /// Regex, if any.
    pub regex: Option<&'a str>,
    /// Validator of regex matches.
    pub validator: Option<Validator>,
    /// Word list, if any.
    pub words: &'a [String],
}

const EMAIL_RE: &str =
    r"[A-Za-z0-9][A-Za-z0-9._%+\-]*@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}";
const PHONE_E164_RE: &str = r"\+[1-9][0-9 .\-()]{5,22}[0-9]";
const PHONE_NANP_RE: &str =
    r"(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[0-9]{3}[ .\-][0-9]{4}";
const PHONE_TRUNK_RE: &str = r"0[1-9][0-9]{0,3}(?:[ \-][0-9]{2,8}){1,4}|0[1-9](?:\.[0-9]{2}){4}";
const CARD_RE: &str = r"[0-9](?:[ \-]?[0-9]){12,22}";
const IBAN_RE: &str = r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{1,4}){3,9}";
const SSN_RE: &str = r"[0-9]{3}-[0-9]{2}-[0-9]{4}|[0-9]{3} [0-9]{2} [0-9]{4}";
const SSN_BARE_RE: &str = r"[0-9]{9}";
const IPV4_RE: &str = r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}";
const IPV6_RE: &str =
    r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?::[0-9]{1,3}(?:\.[0-9]{1,3}){3})?";
const JWT_RE: &str = r"eyJ[A-Za-z0-9_\-]{4,}\.eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]*";
const AWS_RE: &str = r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z2-7]{16}";
/// A PEM private key: the BEGIN line, optional RFC 1421 header lines
/// (`Proc-Type: 4,ENCRYPTED`, `DEK-Info: ...`, PGP `Version: ...`), then only
/// what a PEM body can hold (base64, `=`, whitespace, and `\` for keys
/// pasted with escaped line breaks), then the END line if
/// there is one. Never "to the end of the text": a truncated block stops at
/// the first character that cannot be part of a key (a quote, a `)`, `>`...),
/// so `'-----BEGIN PRIVATE KEY-----' OR id > 0` keeps ` OR id > 0` visible.
const PEM_RE: &str = concat!(
    r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----",
    r"(?:[ \t]*(?:\r?\n|\\n)[A-Za-z][A-Za-z0-9\-]{0,30}:[ A-Za-z0-9,.\-()/+]{0,200})*",
    r"[A-Za-z0-9+/=\s\\]*",
    r"(?:-----END[ A-Z0-9]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
);
const SECRET_KV_RE: &str = concat!(
    r#"(?i)([a-z0-9_.\-]*(?:password|passwd|passphrase|pass|pwd|pw|secret|token|key|credentials?|authorization))["']?"#,
    r#"(?:[ \t]*[:=][ \t]*(?:"([^"\r\n]*)"|'([^'\r\n]*)'|((?:bearer |basic |token )?[^ \t\r\n"',;&<>}\])]+))"#,
    r#"|[ \t]+(?:is[ \t]+|was[ \t]+)?(?:"([^"\r\n]+)"|'([^'\r\n]+)'))"#,
);
const SECRET_URL_RE: &str = r#"[A-Za-z][A-Za-z0-9+.\-]{1,20}://[^:/?#@ \t\r\n"']*:([^@/?#\s"']+)@"#;

fn need(f: impl FnOnce(&mut Need)) -> Need {
    let mut n = Need::default();
    f(&mut n);
    n
}

impl Engine {
    /// Compile the enabled built-ins (`enabled[i]` for `BUILTIN_TYPES[i]`,
    /// type index `i`) and the custom detectors.
    pub(crate) fn new(enabled: &[bool; 10], custom: &[CustomSpec<'_>]) -> Result<Engine, String> {
        let builtin: [(usize, &str, Check, Need); 15] = [
            (0, PEM_RE, Check::PrivateKey, need(|n| n.dashes = 10)),
            (1, SECRET_KV_RE, Check::SecretKv, need(|n| n.kv = true)),
            (
                1,
                SECRET_URL_RE,
                Check::SecretUrl,
                need(|n| {
                    n.at = true;
                    n.colons = 2;
                }),
            ),
            (
                2,
                JWT_RE,
                Check::Jwt,
                need(|n| {
                    n.dots = 2;
                    n.len = 20;
                }),
            ),
            (
                3,
                AWS_RE,
                Check::Aws,
                need(|n| {
                    n.upper = 4;
                    n.len = 20;
                }),
            ),
            (4, CARD_RE, Check::Card, need(|n| n.digits = 13)),
            (
                5,
                IBAN_RE,
                Check::Iban,
                need(|n| {
                    n.digits = 2;
                    n.upper = 2;
                    n.len = 15;
                }),
            ),
            (6, EMAIL_RE, Check::Email, need(|n| n.at = true)),
            (7, SSN_RE, Check::Ssn, need(|n| n.digits = 9)),
            (7, SSN_BARE_RE, Check::SsnBare, need(|n| n.digits = 9)),
            (
                8,
                IPV4_RE,
                Check::Ipv4,
                need(|n| {
                    n.digits = 4;
                    n.dots = 3;
                }),
            ),
            (8, IPV6_RE, Check::Ipv6, need(|n| n.colons = 2)),
            (9, PHONE_E164_RE, Check::Phone, need(|n| n.digits = 8)),
            (9, PHONE_NANP_RE, Check::Phone, need(|n| n.digits = 10)),
            (9, PHONE_TRUNK_RE, Check::Phone, need(|n| n.digits = 9)),
        ];
        let mut patterns = Vec::new();
        for (ty, re, check, need) in builtin {
            if enabled[ty] {
                let regex =
                    Regex::new(re).map_err(|e| format!("built-in {}: {e}", BUILTIN_TYPES[ty]))?;
                patterns.push(Pattern {
                    ty,
                    regex,
                    check,
                    need,
                    stops: Vec::new(),
                });
            }
        }
        let mut words = Vec::new();
        for c in custom {
            if let Some(re) = c.regex {
                let regex = Regex::new(re).map_err(|e| format!("regex: {e}"))?;
                patterns.push(Pattern {
                    ty: c.ty,
                    regex,
                    check: Check::Custom(c.validator),
                    need: Need::default(),
                    stops: custom_stops(re),
                });
            }
            if !c.words.is_empty() {
                let ac = AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostLongest)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(c.words)
                    .or_else(|_| {
                        AhoCorasickBuilder::new()
                            .ascii_case_insensitive(true)
                            .match_kind(MatchKind::LeftmostLongest)
                            .build(c.words)
                    })
                    .map_err(|e| format!("words: {e}"))?;
                words.push((c.ty, ac));
            }
        }
        // A large lazy-DFA cache: the union of all patterns has many states,
        // and a thrashing cache makes the engine fall back to a slower one.
        let set = RegexSetBuilder::new(patterns.iter().map(|p| p.regex.as_str()))
            .dfa_size_limit(64 << 20)
            .build()
            .map_err(|e| e.to_string())?;
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .build([
                "pass",
                "pwd",
                "pw",
                "secret",
                "token",
                "key",
                "credential",
                "authorization",
            ])
            .map_err(|e| e.to_string())?;
        Ok(Engine {
            patterns,
            set,
            keywords,
            words,
        })
    }

    /// True when no detector is active.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty() && self.words.is_empty()
    }

    /// Find spans in `s`, non-overlapping, sorted by start, into `out`
    /// (cleared first).
    pub(crate) fn find(&self, s: &str, out: &mut Vec<Span>) {
        let remainders = self.find_once(s, out);
        // What of a detection lies outside the spans that won is looked at
        // again on its own: a value there (an e-mail glued to a card
        // number) is masked too; a piece that is no value alone (the
        // `@host` of `user:pass@host`) is left as it is.
        if remainders.is_empty() {
            return;
        }
        let mut inner = Vec::new();
        for piece in remainders {
            self.find_once(&s[piece.start..piece.end], &mut inner);
            out.extend(inner.iter().map(|sp| Span {
                start: sp.start + piece.start,
                end: sp.end + piece.start,
                ..*sp
            }));
        }
        out.sort_by_key(|sp| sp.start);
    }

    /// One detection pass: spans into `out`, and the pieces of partly
    /// overlapped detections left outside the winners.
    fn find_once(&self, s: &str, out: &mut Vec<Span>) -> Vec<Span> {
        out.clear();
        if s.is_empty() {
            return vec![];
        }
        let mut features = Features::of(s);
        if features.colons > 0 || features.eq || features.quote {
            features.keyword = self.keywords.is_match(s);
        }
        let eligible = self
            .patterns
            .iter()
            .filter(|p| features.satisfies(&p.need))
            .count();
        if eligible > 0 {
            let matched = self.set.matches(s);
            if matched.matched_any() {
                for i in matched.iter() {
                    let p = &self.patterns[i];
                    if features.satisfies(&p.need) {
                        find_pattern(p, s, out);
                    }
                }
            }
        }
        for (ty, ac) in &self.words {
            let b = s.as_bytes();
            for m in ac.find_iter(s) {
                let left = m.start() == 0 || !is_word(b[m.start() - 1]);
                let right = m.end() >= b.len() || !is_word(b[m.end()]);
                if left && right {
                    out.push(Span {
                        ty: *ty,
                        start: m.start(),
                        end: m.end(),
                    });
                }
            }
        }
        resolve_overlaps(out)
    }
}

/// Keep non-overlapping spans, higher priority first. A credential partly
/// covered by a winner is masked outside it as a secret still; the pieces
/// of any other detection outside the winners are returned, to be looked at
/// on their own.
fn resolve_overlaps(out: &mut Vec<Span>) -> Vec<Span> {
    if out.len() < 2 {
        return vec![];
    }
    out.sort_by_key(|s| (s.ty, s.start));
    let mut kept: Vec<Span> = Vec::with_capacity(out.len());
    let mut remainders = vec![];
    for s in out.iter() {
        if !kept.iter().any(|k| s.start < k.end && k.start < s.end) {
            kept.push(*s);
        } else {
            // What of it lies outside the spans that won
            // (`password=x-----BEGIN PRIVATE KEY...` would leave `x`; an
            // e-mail glued to a card number its tail).
            let pieces = outside(*s, &kept);
            if s.ty == SECRET {
                // A credential is never shown in part.
                kept.extend(pieces);
            } else {
                remainders.extend(pieces);
            }
        }
    }
    kept.sort_by_key(|s| s.start);
    // Cut by every span kept (some were kept after a piece was cut), and
    // merge pieces of different detections that overlap.
    let mut pieces: Vec<Span> = remainders
        .into_iter()
        .flat_map(|r| outside(r, &kept))
        .collect();
    pieces.sort_by_key(|p| p.start);
    let mut merged: Vec<Span> = Vec::with_capacity(pieces.len());
    for p in pieces {
        match merged.last_mut() {
            Some(m) if p.start < m.end => m.end = m.end.max(p.end),
            _ => merged.push(p),
        }
    }
    *out = kept;
    merged
}

/// The parts of `span` outside every span of `kept`.
fn outside(span: Span, kept: &[Span]) -> Vec<Span> {
    let mut pieces = vec![span];
    for k in kept {
        pieces = pieces
            .into_iter()
            .flat_map(|p| {
                [
                    Span {
                        end: p.end.min(k.start),
                        ..p
                    },
                    Span {
                        start: p.start.max(k.end),
                        ..p
                    },
                ]
            })
            .filter(|p| p.start < p.end)
            .collect();
    }
    pieces
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn prev(b: &[u8], i: usize) -> Option<u8> {
    if i == 0 { None } else { b.get(i - 1).copied() }
}

/// Left edge of a number-like match: no letter, digit or joiner before it.
fn left_ok(b: &[u8], start: usize, joiners: &[u8]) -> bool {
    match prev(b, start) {
        None => true,
        Some(c) => !is_word(c) && !joiners.contains(&c),
    }
}

/// Right edge: no letter or digit after, and no joiner followed by a digit
/// (`1.2.3.4.5`, `123-45-6789-01`).
fn right_ok(b: &[u8], end: usize, joiners: &[u8]) -> bool {
    match b.get(end) {
        None => true,
        Some(&c) if is_word(c) => false,
        Some(&c) if joiners.contains(&c) => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

fn lookback_has(b: &[u8], start: usize, window: usize, needles: &[&str]) -> bool {
    let from = start.saturating_sub(window);
    let hay: Vec<u8> = b[from..start].iter().map(u8::to_ascii_lowercase).collect();
    needles
        .iter()
        .any(|n| hay.windows(n.len()).any(|w| w == n.as_bytes()))
}

fn find_pattern(p: &Pattern, s: &str, out: &mut Vec<Span>) {
    let b = s.as_bytes();
    match p.check {
        Check::SecretKv => {
            for c in p.regex.captures_iter(s) {
                let Some(key) = c.get(1) else { continue };
                if !is_secret_key(key.as_str()) {
                    continue;
                }
                let Some(v) = (2..=6).find_map(|i| c.get(i)) else {
                    continue;
                };
                let (mut start, end) = (v.start(), v.end());
                let lower = v.as_str().to_ascii_lowercase();
                for prefix in ["bearer ", "basic ", "token "] {
                    if lower.starts_with(prefix) {
                        start += prefix.len();
                    }
                }
                if start < end && is_secret_value(&s[start..end]) {
                    out.push(Span {
                        ty: p.ty,
                        start,
                        end,
                    });
                }
            }
        }
        Check::SecretUrl => {
            for c in p.regex.captures_iter(s) {
                if let Some(v) = c.get(1)
                    && is_secret_value(v.as_str())
                {
                    out.push(Span {
                        ty: p.ty,
                        start: v.start(),
                        end: v.end(),
                    });
                }
            }
        }
        _ => {
            for m in p.regex.find_iter(s) {
                let end = match b[m.start()..m.end()]
                    .iter()
                    .position(|c| p.stops.contains(c))
                {
                    Some(i) => m.start() + i,
                    None => m.end(),
                };
                if let Some((start, end)) = accept(p.check, b, s, m.start(), end) {
                    out.push(Span {
                        ty: p.ty,
                        start,
                        end,
                    });
                }
            }
        }
    }
}

/// Validate one candidate; may narrow it (cards in longer runs, IBANs
/// followed by words). Returns the accepted span.
fn accept(check: Check, b: &[u8], s: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let m = &s[start..end];
    let ok = |v: bool| v.then_some((start, end));
    match check {
        Check::Email => {
            let (local, domain) = m.split_once('@')?;
            let tld = domain.rsplit('.').next().unwrap_or("");
            let file_ext = [
                "png", "jpg", "jpeg", "gif", "svg", "webp", "css", "js", "ico", "pdf",
            ];
            ok(right_ok(b, end, b"")
                && !local.contains("..")
                && !local.ends_with('.')
                && !file_ext.contains(&tld.to_ascii_lowercase().as_str()))
        }
        Check::Phone => ok(left_ok(b, start, b"-./#_+")
            && right_ok(b, end, b"-./")
            && validate::phone(m)
            && balanced_parens(m)
            && !m.contains("  ")),
        Check::Card => card_in(b, start, end),
        Check::Iban => {
            if !left_ok(b, start, b"") {
                return None;
            }
            let len = validate::iban_length(&m[..2])?;
            let mut count = 0;
            let mut cut = None;
            for (i, c) in m.bytes().enumerate() {
                if c != b' ' {
                    count += 1;
                }
                if count == len {
                    cut = Some(start + i + 1);
                    break;
                }
            }
            let cut = cut?;
            let compact: String = s[start..cut].chars().filter(|c| *c != ' ').collect();
            (right_ok(b, cut, b"") && validate::iban(&compact)).then_some((start, cut))
        }
        Check::Ssn => {
            ok(left_ok(b, start, b"-./#") && right_ok(b, end, b"-./") && validate::us_ssn(m))
        }
        Check::SsnBare => ok(left_ok(b, start, b"-./#")
            && right_ok(b, end, b"-./")
            && validate::us_ssn(m)
            && lookback_has(b, start, 32, &["ssn", "social security", "ss#"])),
        Check::Ipv4 => ok(left_ok(b, start, b".")
            && right_ok(b, end, b".")
            && validate::ipv4(m)
            && !lookback_has(b, start, 10, &["version", "ver ", "ver.", "release", "oid"])),
        Check::Ipv6 => {
            let prev_ok =
                prev(b, start).is_none_or(|c| !c.is_ascii_alphanumeric() && c != b':' && c != b'_');
            let next_ok = b
                .get(end)
                .is_none_or(|c| !c.is_ascii_alphanumeric() && *c != b'_');
            ok(prev_ok && next_ok && validate::ipv6(m))
        }
        Check::Jwt => ok(left_ok(b, start, b"-") && right_ok(b, end, b"") && validate::jwt(m)),
        Check::Aws => ok(left_ok(b, start, b"") && right_ok(b, end, b"")),
        // Trailing whitespace is not part of the key.
        Check::PrivateKey => Some((start, start + m.trim_end().len())),
        Check::Custom(v) => ok(end > start
            && match v {
                None => true,
                Some(Validator::Luhn) => validate::luhn(m),
                Some(Validator::Mod97) => validate::mod97(m),
            }),
        Check::SecretKv | Check::SecretUrl => None,
    }
}

fn balanced_parens(s: &str) -> bool {
    let open = s.bytes().filter(|c| *c == b'(').count();
    let close = s.bytes().filter(|c| *c == b')').count();
    open == close && open <= 1
}

/// A card candidate: try the whole run, then (when it has separators) every
/// run of whole groups, longest first, so `order 2024 4111 1111 1111 1111`
/// still finds the card and `4111...1111 99` does not hide it.
fn card_in(b: &[u8], start: usize, end: usize) -> Option<(usize, usize)> {
    if !card_left_ok(b, start) {
        return None;
    }
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut g_start = start;
    for (i, c) in b.iter().enumerate().take(end).skip(start) {
        if !c.is_ascii_digit() {
            groups.push((g_start, i));
            g_start = i + 1;
        }
    }
    groups.push((g_start, end));
    let digits = |a: usize, z: usize| groups[a..=z].iter().map(|(s, e)| e - s).sum::<usize>();
    let text = |a: usize, z: usize| std::str::from_utf8(&b[groups[a].0..groups[z].1]).unwrap_or("");
    let n = groups.len();
    let mut best: Option<(usize, usize)> = None;
    for a in 0..n {
        for z in a..n {
            let d = digits(a, z);
            if !(13..=19).contains(&d) {
                continue;
            }
            let (s0, e0) = (groups[a].0, groups[z].1);
            // Letters may touch a compact run (`k4111111111111111`), never a
            // grouped one: `#46644 2026-06-13T10:57` is a number and a date.
            let compact = a == z;
            let left = match (a, compact) {
                (0, true) => true, // checked above
                (0, false) => left_ok(b, s0, b"-._"),
                _ => left_ok(b, s0, b""),
            };
            let right = z < n - 1
                || if compact {
                    card_right_ok(b, e0)
                } else {
                    right_ok(b, e0, b"-._")
                };
            if !left || !right {
                continue;
            }
            if validate::credit_card(text(a, z)) && best.is_none_or(|(bs, be)| e0 - s0 > be - bs) {
                best = Some((s0, e0));
            }
        }
    }
    best
}

/// Left edge of a compact card (digits only): not inside a longer number
/// (no digit before it, nor a digit and a joiner: `0.4111...`, `12.4111...`).
/// A letter or `_` glued to it is fine (`k4111111111111111` from `'k' || card`, `card_4111...`):
/// Luhn and the issuer table keep look-alikes out, except in long hex
/// strings (hashes), which are not cards.
fn card_left_ok(b: &[u8], start: usize) -> bool {
    match prev(b, start) {
        None => true,
        Some(c) if c.is_ascii_digit() => false,
        Some(b'-' | b'.') => !prev(b, start - 1).is_some_and(|c| c.is_ascii_digit()),
        Some(c) if is_word(c) => !in_hex_token(b, start),
        Some(_) => true,
    }
}

/// Right edge of a card: no digit after it, nor a joiner and a digit; a
/// glued letter is fine unless the whole token is a long hex string.
fn card_right_ok(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_digit() => false,
        Some(b'-' | b'.' | b'_') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(&c) if is_word(c) => !in_hex_token(b, end),
        Some(_) => true,
    }
}

/// Is the alphanumeric token around byte `at` a hex string of 20 or more
/// characters (a hash, a key id), whose digit runs are not cards?
fn in_hex_token(b: &[u8], at: usize) -> bool {
    let is_tok = |c: &u8| c.is_ascii_alphanumeric();
    let from = b[..at.min(b.len())]
        .iter()
        .rposition(|c| !is_tok(c))
        .map_or(0, |i| i + 1);
    let to = b[at.min(b.len())..]
        .iter()
        .position(|c| !is_tok(c))
        .map_or(b.len(), |i| at + i);
    to - from >= 20 && b[from..to].iter().all(u8::is_ascii_hexdigit)
}

/// Is this key/column name one whose value is a credential? Matches
/// `password`, `db_password`, `api_key`, `client_secret`, `access_token`,
/// `authorization`... but not `tokens`, `password_hash` or `monkey`.
pub fn is_secret_key(key: &str) -> bool {
    // Normalise byte-wise (only ASCII bytes change, so UTF-8 stays valid),
    // on the stack for the usual short key: this runs for every key of every
    // JSON object in every result.
    let mut stack = [0u8; 64];
    let mut heap = Vec::new();
    let buf: &mut [u8] = if key.len() <= stack.len() {
        &mut stack[..key.len()]
    } else {
        heap.resize(key.len(), 0);
        &mut heap
    };
    for (out, b) in buf.iter_mut().zip(key.bytes()) {
        *out = match b {
            b'-' | b'.' | b' ' => b'_',
            b => b.to_ascii_lowercase(),
        };
    }
    let Ok(k) = std::str::from_utf8(buf) else {
        return false;
    };
    let k = k.trim_matches(|c: char| c == '_' || c == '"' || c == '\'');
    const SUFFIXES: &[&str] = &[
        "password",
        "passwd",
        "passphrase",
        "secret",
        "token",
        "apikey",
        "api_key",
        "accesskey",
        "access_key",
        "secretkey",
        "secret_key",
        "privatekey",
        "private_key",
        "signing_key",
        "encryption_key",
        "master_key",
        "credentials",
        "credential",
        "authorization",
        "secret_access_key",
    ];
    const EXACT_OR_SEPARATED: &[&str] = &["pass", "pwd", "pw"];
    if SUFFIXES.iter().any(|s| k.ends_with(s)) {
        return true;
    }
    EXACT_OR_SEPARATED
        .iter()
        .any(|w| k == *w || k.strip_suffix(w).is_some_and(|head| head.ends_with('_')))
}

/// A value worth masking: not empty, not a placeholder, not already masked.
fn is_secret_value(v: &str) -> bool {
    let t = v.trim();
    if t.is_empty() || !t.chars().any(char::is_alphanumeric) {
        return false;
    }
    let lower = t.to_ascii_lowercase();
    const PLACEHOLDERS: &[&str] = &[
        "null",
        "none",
        "nil",
        "true",
        "false",
        "undefined",
        "redacted",
        "[redacted]",
        "<redacted>",
        "xxx",
        "xxxx",
        "required",
    ];
    if PLACEHOLDERS.contains(&lower.as_str()) || t.starts_with("${") {
        return false;
    }
    // Already masked by us (`[SECRET]`, `[SECRET][PRIVATE_KEY]`; an
    // unquoted value stops before `]`).
    !(t.starts_with('[')
        && t.bytes()
            .all(|c| c.is_ascii_uppercase() || matches!(c, b'_' | b'[' | b']')))
}

#[cfg(test)]
mod tests;
