//! The storage boundary of the audit stage: [`AuditStore`] and its query and
//! error types. Implementations live outside the core (embedded SQLite in
//! `server/src/store/`, a shared PostgreSQL store later); the core holds no
//! database dependency.
//!
//! Contract every implementation keeps:
//! - `append` assigns id, seq (contiguous from 1), time (RFC 3339 UTC),
//!   `prev_hash` and `hash` ([`AuditEvent::seal`]) and returns only once the
//!   event is durable; an `Err` means it was not recorded;
//! - a failed write never advances the chain;
//! - [`AuditStore::healthy`] is `Err` while the store is known unable to
//!   write, so the pipeline can refuse to execute.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::BoxStream;

use super::chain::VerifyReport;
use super::{AuditEvent, AuditRecord};
use crate::recording::RenderedRecording;

/// Default `limit` of [`AuditStore::list`].
pub const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest `limit` honoured by [`AuditStore::list`].
pub const MAX_LIST_LIMIT: u32 = 10_000;

/// Order of [`AuditStore::list`] results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Highest seq first (the default: "what happened lately").
    #[default]
    NewestFirst,
    /// Lowest seq first (paging forward with `after_seq`).
    OldestFirst,
}

/// Filters of `GET /api/audit` and `tollgate audit list`. All set fields must
/// match (AND); unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Exact `principal.sub`.
    pub principal: Option<String>,
    /// Exact tool name.
    pub tool: Option<String>,
    /// Exact connection name.
    pub connection: Option<String>,
    /// `allow` | `deny` | `pending` | `error`.
    pub decision: Option<String>,
    /// Events recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Events recorded at or before this time.
    pub until: Option<DateTime<Utc>>,
    /// At most this many events (default [`DEFAULT_LIST_LIMIT`], capped at [`MAX_LIST_LIMIT`]).
    pub limit: Option<u32>,
    /// Only events with a seq greater than this (paging forward).
    pub after_seq: Option<u64>,
    /// Only events with a seq smaller than this (paging back, newest
    /// first: the keyset of the console's audit search).
    pub before_seq: Option<u64>,
    /// Free text: events whose tool or (masked, recorded) arguments contain
    /// it, ASCII case-insensitive.
    pub text: Option<String>,
    /// Result order.
    pub order: ListOrder,
    /// Include write-ahead intent entries (see [`super::intent`]); by
    /// default a listing shows the one event per call.
    pub intents: bool,
}

impl AuditFilter {
    /// Does `event` match the text filter (tool or arguments contain it,
    /// ASCII case-insensitive)? True when there is none. For stores that
    /// filter in memory; SQL stores say the same with `LIKE`.
    pub fn text_matches(&self, event: &super::AuditEvent) -> bool {
        let Some(t) = self.text.as_deref() else {
            return true;
        };
        let needle = t.to_ascii_lowercase();
        event.record.tool.to_ascii_lowercase().contains(&needle)
            || event
                .record
                .arguments
                .to_string()
                .to_ascii_lowercase()
                .contains(&needle)
    }

    /// The limit to apply.
    pub fn effective_limit(&self) -> u32 {
        self.limit
            .unwrap_or(DEFAULT_LIST_LIMIT)
            .clamp(1, MAX_LIST_LIMIT)
    }
}

/// The stored form of event times: RFC 3339, UTC, microseconds, `Z`
/// (fixed width, so stored times also sort as text).
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Why the audit store could not do something. Messages say what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store could not be opened or migrated.
    #[error("cannot open audit store at {location}: {reason}")]
    Open {
        /// Path or URL (without credentials).
        location: String,
        /// Why.
        reason: String,
    },
    /// A write failed; the event was NOT recorded and the chain did not advance.
    #[error("audit write failed, event NOT recorded (the call must not proceed): {reason}")]
    Write {
        /// Why.
        reason: String,
    },
    /// The store is known unable to record events (a previous write failed and
    /// has not recovered, or the stored chain head is inconsistent).
    #[error("audit store unhealthy: {reason}")]
    Unhealthy {
        /// Why, and what to check.
        reason: String,
    },
    /// A read failed.
    #[error("audit read failed: {reason}")]
    Read {
        /// Why.
        reason: String,
    },
    /// A stored event cannot be decoded (run `tollgate audit verify`).
    #[error("stored audit event seq {seq} is unreadable ({reason}); run `tollgate audit verify`")]
    Corrupt {
        /// Seq of the event.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// The store was shut down.
    #[error("audit store is closed")]
    Closed,
}

/// A stream of events in seq order (export). `'static`: it owns what it reads with.
pub type EventStream = BoxStream<'static, Result<AuditEvent, StoreError>>;

/// Where audit events are recorded. One implementation per backend; the
/// pipeline and the API only see this trait.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Number, chain and durably record `record`. Returns the stored event
    /// only once it is durable; `Err` means it was not recorded.
    async fn append(&self, record: AuditRecord) -> Result<AuditEvent, StoreError>;

    /// Number, chain and record `record` where a crash of this process
    /// cannot lose it (the operating system holds it), without waiting for
    /// the disk: the next [`AuditStore::append`] or [`AuditStore::sync`]
    /// makes it durable. A power loss before then loses it with everything
    /// after it, so the chain stays a verifiable prefix. Used for the event
    /// of a call whose intent is already durable (see [`super::intent`]).
    /// Default: [`AuditStore::append`].
    async fn append_written(&self, record: AuditRecord) -> Result<AuditEvent, StoreError> {
        self.append(record).await
    }

    /// Make everything appended so far durable (before a checkpoint signs
    /// the head, and at shutdown). Default: nothing to do.
    async fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Write-ahead intents without an event naming them, whose writer is no
    /// longer running (for a store shared by several processes, intents of
    /// a live writer are in flight, not lost), in seq order. Default: every
    /// open intent in the chain (a store one process uses at a time).
    async fn unfinished_intents(&self) -> Result<Vec<AuditEvent>, StoreError> {
        use futures::TryStreamExt;
        let mut open: Vec<AuditEvent> = Vec::new();
        let mut events = self.export();
        while let Some(event) = events.try_next().await? {
            if event.record.is_intent() {
                open.push(event);
            } else if let Some(intent) = &event.record.intent {
                open.retain(|i| &i.id != intent);
            }
        }
        Ok(open)
    }

    /// The event with this id.
    async fn get(&self, id: &str) -> Result<Option<AuditEvent>, StoreError>;

    /// Events matching `filter`.
    async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, StoreError>;

    /// Check the whole chain; reports the first break. `Err` only when the
    /// store cannot be read at all.
    async fn verify(&self) -> Result<VerifyReport, StoreError>;

    /// `Ok` unless the store is known unable to record (the pipeline refuses
    /// to execute then). Cheap: reports state, does no I/O.
    fn healthy(&self) -> Result<(), StoreError>;

    /// Every event in seq order (`tollgate audit export --format jsonl`).
    fn export(&self) -> EventStream;

    /// Durably store a call's recording, content-addressed by its SHA-256,
    /// before the event that names it is appended. Storing the same content
    /// twice is a no-op. Default: this store keeps no recordings (the call
    /// that brought one fails closed: its event is not written without it).
    async fn put_recording(&self, _recording: &RenderedRecording) -> Result<(), StoreError> {
        Err(StoreError::Write {
            reason: "this audit store keeps no recordings".into(),
        })
    }

    /// The stored recording with this SHA-256, if any (`tollgate audit
    /// replay`, `GET /api/audit/{id}/recording`). Default: none.
    async fn recording(&self, _sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(None)
    }
}
