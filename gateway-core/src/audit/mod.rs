//! Audit stage: one tamper-evident event per tool call, hash-chained, written
//! durably before the result is returned.
//!
//! - The record types below are the public contract (`/api/audit`,
//!   `tollgate audit export --format jsonl`): field names are fixed.
//! - [`chain`]: canonical JSON, hashes, and the verifier that finds the first
//!   break (edited, deleted, reordered events).
//! - [`checkpoint`]: signed checkpoints of the chain head, kept outside the
//!   store, so that deleting the newest events (which the chain alone cannot
//!   show) is detected.
//! - [`intent`]: the write-ahead model: an intent entry is durable before a
//!   call can take effect, its event follows and names it; intents left
//!   open by a crash are closed as "outcome unknown" when the server starts.
//! - [`store`]: the [`AuditStore`] trait. Nothing store-specific lives in the
//!   core; the embedded SQLite store is in the server crate.
//!
//! Invariant: an event is in the chain only if it was durably written; a
//! failed write leaves the chain as it was and the caller gets an error.

pub mod chain;
pub mod checkpoint;
pub mod intent;
pub mod store;

pub use chain::{
    BreakKind, ChainBreak, ChainVerifier, GENESIS_HASH, VerifyReport, canonical_json, sha256_hex,
    verify,
};
pub use store::{AuditFilter, AuditStore, EventStream, ListOrder, StoreError, format_time};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Principal;

/// One policy request and its decision, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Action id, e.g. `sql:delete`.
    pub action: String,
    /// Resource entity uid, e.g. `Tollgate::Table::"shop/public.orders"`.
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// Ids of the policies that decided it.
    pub policies: Vec<String>,
}

/// The approval a call waited on, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    /// Approval id.
    pub id: String,
    /// pending | approved | denied | expired | cancelled | executed | failed.
    pub state: String,
    /// Who approved.
    pub approvers: Vec<String>,
}

/// What happened when the call ran (or did not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// ok | denied | pending | error; `intent` on a write-ahead intent
    /// entry; `unknown` on the event that closes an intent whose call's
    /// outcome was lost (the server stopped between the two).
    pub status: String,
    /// Wall time of the whole call.
    pub duration_ms: u64,
    /// Rows/items returned.
    pub rows: Option<u64>,
    /// Error message (masked).
    pub error: Option<String>,
}

/// An audit event before the store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Who called.
    pub principal: Principal,
    /// Tool name.
    pub tool: String,
    /// Connection, when the tool has one.
    pub connection: Option<String>,
    /// Arguments as masked as the caller saw them.
    pub arguments: Value,
    /// Policy requests and decisions.
    pub requests: Vec<RequestRecord>,
    /// allow | deny | pending | error.
    pub decision: String,
    /// Approval, when the call needed one.
    pub approval: Option<ApprovalRecord>,
    /// Outcome.
    pub outcome: OutcomeRecord,
    /// A bounded, masked preview of the result.
    pub result_preview: Value,
    /// Counts of masked values per type.
    pub masked: BTreeMap<String, u64>,
    /// The call's terminal recording (SSH output as asciicast v2), stored
    /// beside the audit store: its SHA-256 and size. Absent for calls
    /// without one (and then not part of the hashed event, so events
    /// recorded before recordings existed keep their hashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<crate::recording::RecordingRef>,
    /// On the event of a call that executed: the id of its write-ahead
    /// intent (the entry recorded durably before the call could take
    /// effect, see [`intent`]). Absent on intents themselves and on calls
    /// that never reached execution (and then not part of the hashed
    /// event, so older events keep their hashes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
}

impl AuditRecord {
    /// True for a write-ahead intent entry (`outcome.status` = `intent`),
    /// false for the one event per call.
    pub fn is_intent(&self) -> bool {
        self.outcome.status == intent::INTENT_STATUS
    }
}

/// A stored audit event: the record plus id, sequence, time and chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique id.
    pub id: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// RFC 3339 time of recording.
    pub time: String,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// Hash of the previous event (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 over the canonical event without `hash`.
    pub hash: String,
}
