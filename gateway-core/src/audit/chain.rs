//! The hash chain: how an event is canonicalised and hashed, and how a
//! sequence of stored events is checked.
//!
//! Canonical form of an event (what `hash` covers): the event serialised as
//! JSON (the exact field names of [`AuditEvent`], record fields flattened,
//! absent optionals as `null`), with the `hash` member removed, object keys
//! sorted recursively by their UTF-8 bytes, no insignificant whitespace,
//! strings and numbers as `serde_json` writes them. `hash` is the lowercase
//! hex SHA-256 of those bytes; `prev_hash` is the previous event's `hash`,
//! or [`GENESIS_HASH`] (64 zeros) for seq 1. One exception to "absent as
//! `null`": `recording` is left out when the call has none, so events
//! recorded before recordings existed keep their hashes; when present, its
//! `{bytes, sha256}` is hashed like any member, and the stored file it names
//! is checked by [`recording_problem`].
//!
//! Sorting is explicit because the workspace enables serde_json's
//! `preserve_order`: a `Value` keeps insertion order, which is not canonical.
//!
//! The verifier does not read storage; stores feed it events in seq order.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{AuditEvent, AuditRecord};
use crate::recording::RecordingRef;

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Canonical JSON of any value: keys sorted recursively, no whitespace.
pub fn canonical_json(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    write_canonical(value, &mut out);
    into_string(out)
}

/// The writers below only ever emit whole UTF-8 sequences.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("canonical JSON is UTF-8")
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => write_list(items, out, write_canonical),
        Value::String(s) => write_string(s, out),
        // null, bool and numbers have one compact serde_json form.
        other => serde_json::to_writer(&mut *out, other).expect("a scalar always serialises"),
    }
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("a str always serialises");
}

/// `[a,b,...]`, each item written by `item`.
fn write_list<T>(items: &[T], out: &mut Vec<u8>, item: impl Fn(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(x, out);
    }
    out.push(b']');
}

fn write_strings(items: &[String], out: &mut Vec<u8>) {
    write_list(items, out, |s, out| write_string(s, out));
}

fn write_u64(n: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Writes one JSON object whose keys the caller gives in sorted order.
struct Object<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Object<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, first: true }
    }

    /// Start member `key`; the caller writes its value into the returned buffer.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        write_string(key, self.out);
        self.out.push(b':');
        self.out
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// The canonical form of an event without `hash`, written straight from the
/// struct (no intermediate `Value`): members in byte order of their names,
/// exactly as [`canonical_json`] of the serialised event would order them.
/// `canonical_matches_the_generic_form` (tests) holds the two together.
fn write_event(e: &AuditEvent, out: &mut Vec<u8>) {
    let r = &e.record;
    let mut o = Object::open(out);
    match &r.approval {
        None => o.key("approval").extend_from_slice(b"null"),
        Some(a) => {
            let mut ao = Object::open(o.key("approval"));
            write_strings(&a.approvers, ao.key("approvers"));
            write_string(&a.id, ao.key("id"));
            write_string(&a.state, ao.key("state"));
            ao.close();
        }
    }
    write_canonical(&r.arguments, o.key("arguments"));
    match &r.connection {
        None => o.key("connection").extend_from_slice(b"null"),
        Some(c) => write_string(c, o.key("connection")),
    }
    write_string(&r.decision, o.key("decision"));
    write_string(&e.id, o.key("id"));
    // Absent on intents and on calls that never executed (as `recording`).
    if let Some(intent) = &r.intent {
        write_string(intent, o.key("intent"));
    }
    {
        // BTreeMap<String, _> iterates in byte order of the keys already.
        let mut mo = Object::open(o.key("masked"));
        for (k, n) in &r.masked {
            write_u64(*n, mo.key(k));
        }
        mo.close();
    }
    {
        let oc = &r.outcome;
        let mut oo = Object::open(o.key("outcome"));
        write_u64(oc.duration_ms, oo.key("duration_ms"));
        match &oc.error {
            None => oo.key("error").extend_from_slice(b"null"),
            Some(m) => write_string(m, oo.key("error")),
        }
        match oc.rows {
            None => oo.key("rows").extend_from_slice(b"null"),
            Some(n) => write_u64(n, oo.key("rows")),
        }
        write_string(&oc.status, oo.key("status"));
        oo.close();
    }
    write_string(&e.prev_hash, o.key("prev_hash"));
    {
        let mut po = Object::open(o.key("principal"));
        write_strings(&r.principal.groups, po.key("groups"));
        write_string(&r.principal.sub, po.key("sub"));
        po.close();
    }
    // Absent when the call has none (serde skips it), so events recorded
    // before recordings existed keep their hashes.
    if let Some(rec) = &r.recording {
        let mut ro = Object::open(o.key("recording"));
        write_u64(rec.bytes, ro.key("bytes"));
        write_string(&rec.sha256, ro.key("sha256"));
        ro.close();
    }
    write_list(&r.requests, o.key("requests"), |q, out| {
        let mut qo = Object::open(out);
        write_string(&q.action, qo.key("action"));
        write_string(&q.decision, qo.key("decision"));
        write_strings(&q.policies, qo.key("policies"));
        write_string(&q.resource, qo.key("resource"));
        qo.close();
    });
    write_canonical(&r.result_preview, o.key("result_preview"));
    write_u64(e.seq, o.key("seq"));
    write_string(&e.time, o.key("time"));
    write_string(&r.tool, o.key("tool"));
    o.close();
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

// === impl AuditEvent ===

impl AuditEvent {
    /// Number and chain `record`: the only way a store should build an event.
    pub fn seal(
        record: AuditRecord,
        id: String,
        seq: u64,
        time: String,
        prev_hash: String,
    ) -> AuditEvent {
        let mut event = AuditEvent {
            id,
            seq,
            time,
            record,
            prev_hash,
            hash: String::new(),
        };
        event.hash = event.compute_hash();
        event
    }

    /// The canonical JSON the hash covers (the event without `hash`).
    pub fn canonical(&self) -> String {
        let mut out = Vec::with_capacity(1024);
        write_event(self, &mut out);
        into_string(out)
    }

    /// SHA-256 of [`AuditEvent::canonical`], as stored in `hash`.
    pub fn compute_hash(&self) -> String {
        sha256_hex(self.canonical().as_bytes())
    }
}

/// What is wrong at the first break of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BreakKind {
    /// The event's content does not match its `hash`: it was edited after it
    /// was recorded (or its row swapped with another).
    HashMismatch {
        /// `hash` as stored.
        stored: String,
        /// `hash` recomputed from the content.
        computed: String,
    },
    /// `prev_hash` is not the previous event's `hash`: the previous event was
    /// replaced, or events were removed/reordered and re-hashed.
    PrevHashMismatch {
        /// `prev_hash` as stored.
        stored: String,
        /// The previous event's hash.
        expected: String,
    },
    /// The sequence skips: events `expected..found` are missing (deleted) or
    /// out of order.
    SeqGap {
        /// Seq that should have come next.
        expected: u64,
        /// Seq that came.
        found: u64,
    },
    /// The sequence goes backwards or repeats (reordered or duplicated).
    SeqOutOfOrder {
        /// Seq that should have come next.
        expected: u64,
        /// Seq that came.
        found: u64,
    },
    /// The stored event cannot even be decoded.
    Unreadable {
        /// Why.
        reason: String,
    },
    /// The store's recorded chain head is beyond the last event: events at
    /// the end were deleted.
    TruncatedTail {
        /// Head seq the store recorded.
        recorded_seq: u64,
        /// Last event present.
        last_seq: u64,
    },
    /// The store's recorded chain head does not match the event at that seq.
    HeadMismatch {
        /// Head hash the store recorded.
        recorded_hash: String,
        /// Hash of the event at that seq.
        event_hash: String,
    },
    /// The event names a recording (`recording: {sha256, bytes}`) that the
    /// store no longer holds unchanged: missing, or its content or size
    /// differs (see [`recording_problem`]).
    RecordingMismatch {
        /// SHA-256 the event records.
        sha256: String,
        /// What is wrong with the stored recording.
        reason: String,
    },
}

impl BreakKind {
    /// The break an event's recording makes, if any: see
    /// [`recording_problem`].
    pub fn of_recording(reference: &RecordingRef, body: Option<&[u8]>) -> Option<BreakKind> {
        recording_problem(reference, body).map(|reason| BreakKind::RecordingMismatch {
            sha256: reference.sha256.clone(),
            reason,
        })
    }
}

/// The first place a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainBreak {
    /// Seq at which the break is detected.
    pub seq: u64,
    /// Id of the event at that seq, when it could be read.
    pub id: Option<String>,
    /// What is wrong.
    #[serde(flatten)]
    pub kind: BreakKind,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}", self.seq)?;
        if let Some(id) = &self.id {
            write!(f, " (id {id})")?;
        }
        match &self.kind {
            BreakKind::HashMismatch { stored, computed } => write!(
                f,
                ": content does not match its hash (stored {stored}, computed {computed}): the event was modified"
            ),
            BreakKind::PrevHashMismatch { stored, expected } => write!(
                f,
                ": prev_hash {stored} is not the hash of seq {} ({expected}): an earlier event was replaced or removed",
                self.seq.saturating_sub(1)
            ),
            BreakKind::SeqGap { expected, found } => {
                write!(
                    f,
                    ": expected seq {expected}, found {found}: seq {expected}..{found} missing (deleted)"
                )
            }
            BreakKind::SeqOutOfOrder { expected, found } => {
                write!(
                    f,
                    ": expected seq {expected}, found {found}: events reordered or duplicated"
                )
            }
            BreakKind::Unreadable { reason } => write!(f, ": stored event unreadable: {reason}"),
            BreakKind::TruncatedTail {
                recorded_seq,
                last_seq,
            } => write!(
                f,
                ": the store recorded head seq {recorded_seq} but the last event is seq {last_seq}: events at the end were deleted"
            ),
            BreakKind::HeadMismatch {
                recorded_hash,
                event_hash,
            } => write!(
                f,
                ": the store recorded head hash {recorded_hash} but the event hashes to {event_hash}"
            ),
            BreakKind::RecordingMismatch { sha256, reason } => {
                write!(f, ": the event's recording {sha256} {reason}")
            }
        }
    }
}

/// Result of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Events checked (up to and including the first break).
    pub checked: u64,
    /// Write-ahead intents checked whose call's event is not (yet) in the
    /// chain: calls in flight while verifying, or left by a crash that the
    /// server has not closed yet (it does at start).
    #[serde(default)]
    pub open_intents: u64,
    /// Events that close an intent with outcome `unknown`: the server
    /// stopped between a call's intent and its outcome, so whether it took
    /// effect is not recorded.
    #[serde(default)]
    pub outcomes_unknown: u64,
    /// Seq of the last intact event, if any.
    pub last_seq: Option<u64>,
    /// Hash of the last intact event, if any.
    pub last_hash: Option<String>,
    /// The first break, if the chain is broken.
    pub first_break: Option<ChainBreak>,
}

impl VerifyReport {
    /// No break found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.first_break {
            None => write!(f, "chain intact: {} events checked", self.checked)?,
            Some(b) => write!(f, "chain BROKEN at {b} ({} events checked)", self.checked)?,
        }
        if self.outcomes_unknown > 0 {
            write!(
                f,
                "; {} call(s) with outcome unknown (the server stopped after their intent was recorded)",
                self.outcomes_unknown
            )?;
        }
        if self.open_intents > 0 {
            write!(
                f,
                "; {} intent(s) without an outcome yet (in flight, or closed at the next start)",
                self.open_intents
            )?;
        }
        Ok(())
    }
}

/// Incremental chain check: push events in seq order, then
/// [`ChainVerifier::finish`]. Stops checking at the first break.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: String,
    checked: u64,
    last_seq: Option<u64>,
    first_break: Option<ChainBreak>,
    /// Ids of intents seen whose event has not come yet.
    open_intents: std::collections::HashSet<String>,
    outcomes_unknown: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self::new()
    }
}

// === impl ChainVerifier ===

impl ChainVerifier {
    /// A verifier expecting seq 1 with `prev_hash` = [`GENESIS_HASH`].
    pub fn new() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_string(),
            checked: 0,
            last_seq: None,
            first_break: None,
            open_intents: Default::default(),
            outcomes_unknown: 0,
        }
    }

    /// A verifier that continues a chain already checked up to `seq`
    /// (whose event hashes to `hash`): it expects `seq + 1` with that
    /// `prev_hash`. `after(0, GENESIS_HASH)` is [`ChainVerifier::new`].
    /// Used to extend a signed checkpoint without reading the whole chain.
    pub fn after(seq: u64, hash: impl Into<String>) -> Self {
        ChainVerifier {
            next_seq: seq.saturating_add(1),
            prev_hash: hash.into(),
            checked: 0,
            last_seq: (seq > 0).then_some(seq),
            first_break: None,
            open_intents: Default::default(),
            outcomes_unknown: 0,
        }
    }

    /// Check one event. Returns `false` once the chain is broken (further
    /// pushes are ignored).
    pub fn push(&mut self, event: &AuditEvent) -> bool {
        self.push_checked(event, None)
    }

    /// [`ChainVerifier::push`], plus what the store found wrong beside the
    /// chain for this event (its recording, see [`recording_problem`]):
    /// `Some(kind)` is a break at this event, reported only when the event's
    /// own content and links hold (an edited event is a `HashMismatch`).
    pub fn push_checked(&mut self, event: &AuditEvent, beside: Option<BreakKind>) -> bool {
        if self.first_break.is_some() {
            return false;
        }
        self.checked += 1;
        let brk = |kind| ChainBreak {
            seq: event.seq,
            id: Some(event.id.clone()),
            kind,
        };
        let expected = self.next_seq;
        if event.seq != expected {
            let kind = if event.seq > expected {
                BreakKind::SeqGap {
                    expected,
                    found: event.seq,
                }
            } else {
                BreakKind::SeqOutOfOrder {
                    expected,
                    found: event.seq,
                }
            };
            self.first_break = Some(brk(kind));
            return false;
        }
        let computed = event.compute_hash();
        if computed != event.hash {
            self.first_break = Some(brk(BreakKind::HashMismatch {
                stored: event.hash.clone(),
                computed,
            }));
            return false;
        }
        if event.prev_hash != self.prev_hash {
            self.first_break = Some(brk(BreakKind::PrevHashMismatch {
                stored: event.prev_hash.clone(),
                expected: self.prev_hash.clone(),
            }));
            return false;
        }
        if let Some(kind) = beside {
            self.first_break = Some(brk(kind));
            return false;
        }
        self.next_seq = expected + 1;
        self.prev_hash = event.hash.clone();
        self.last_seq = Some(event.seq);
        let record = &event.record;
        if record.is_intent() {
            self.open_intents.insert(event.id.clone());
        } else if let Some(intent) = &record.intent {
            // An intent before a checkpoint the check resumed from is not
            // in the set; that is fine: only open ones are counted.
            self.open_intents.remove(intent);
            if record.outcome.status == super::intent::UNKNOWN_STATUS {
                self.outcomes_unknown += 1;
            }
        }
        true
    }

    /// Record that the event at `seq` could not be decoded (a break).
    pub fn push_unreadable(&mut self, seq: u64, reason: impl Into<String>) -> bool {
        if self.first_break.is_some() {
            return false;
        }
        self.checked += 1;
        self.first_break = Some(ChainBreak {
            seq,
            id: None,
            kind: BreakKind::Unreadable {
                reason: reason.into(),
            },
        });
        false
    }

    /// Whether a break was found so far.
    pub fn is_broken(&self) -> bool {
        self.first_break.is_some()
    }

    /// Finish, optionally against the head (seq, hash) the store recorded
    /// separately, which catches deletion of the newest events.
    pub fn finish(mut self, recorded_head: Option<(u64, &str)>) -> VerifyReport {
        if self.first_break.is_none()
            && let Some((recorded_seq, recorded_hash)) = recorded_head
        {
            let last_seq = self.last_seq.unwrap_or(0);
            if recorded_seq > last_seq {
                self.first_break = Some(ChainBreak {
                    seq: last_seq + 1,
                    id: None,
                    kind: BreakKind::TruncatedTail {
                        recorded_seq,
                        last_seq,
                    },
                });
            } else if recorded_seq == last_seq
                && recorded_seq > 0
                && recorded_hash != self.prev_hash
            {
                self.first_break = Some(ChainBreak {
                    seq: last_seq,
                    id: None,
                    kind: BreakKind::HeadMismatch {
                        recorded_hash: recorded_hash.to_string(),
                        event_hash: self.prev_hash.clone(),
                    },
                });
            }
        }
        let last_hash = self.last_seq.map(|_| self.prev_hash.clone());
        VerifyReport {
            checked: self.checked,
            open_intents: self.open_intents.len() as u64,
            outcomes_unknown: self.outcomes_unknown,
            last_seq: self.last_seq,
            last_hash,
            first_break: self.first_break,
        }
    }
}

/// What is wrong with the stored body of an event's recording, or `None`
/// when it is there, has the recorded size and hashes to the recorded
/// SHA-256. Stores call it from `verify`; readers (`audit replay`, the
/// API) call it before handing a recording out.
pub fn recording_problem(reference: &RecordingRef, body: Option<&[u8]>) -> Option<String> {
    let Some(body) = body else {
        return Some("is missing from the store: it was deleted".into());
    };
    let computed = sha256_hex(body);
    if computed != reference.sha256 {
        return Some(format!(
            "was modified: the stored file hashes to {computed} ({} bytes)",
            body.len()
        ));
    }
    if body.len() as u64 != reference.bytes {
        return Some(format!(
            "was modified: the stored file has {} bytes where the event records {}",
            body.len(),
            reference.bytes
        ));
    }
    None
}

/// Check a whole chain of events given in seq order.
pub fn verify<'a>(events: impl IntoIterator<Item = &'a AuditEvent>) -> VerifyReport {
    let mut v = ChainVerifier::new();
    for e in events {
        if !v.push(e) {
            break;
        }
    }
    v.finish(None)
}
