//! Write-ahead audit: nothing takes effect unrecorded.
//!
//! A call that reaches execution leaves two entries in the chain:
//!
//! 1. its **intent** (`outcome.status` = `intent`): who, what (the masked
//!    arguments), the policy decisions and the approval, appended with full
//!    durability ([`AuditStore::append`]) *before* the call can take effect.
//!    When the intent is durable depends on the family
//!    ([`IntentOrder`](crate::connector::IntentOrder)): before the request
//!    leaves (Kubernetes, SSH, SQL that may act outside its transaction), or
//!    overlapping the statement with the transaction's COMMIT waiting for it
//!    (SQL whose every effect is transactional);
//! 2. its **event** (the one event per call of the contract), naming the
//!    intent in `intent`, appended with [`AuditStore::append_written`]:
//!    handed to the operating system before the result is returned, so a
//!    killed process loses nothing, while the disk flush is shared with the
//!    next durable append.
//!
//! If the server stops between the two (killed, power lost), the intent stays
//! open. At the next start [`close_unfinished`] appends, for every intent
//! left by a server that is no longer running, an event with
//! `outcome.status` = `unknown` naming it: the chain stays verifiable and
//! says which calls may have taken effect without a recorded outcome;
//! `tollgate audit verify` reports how many. While the server runs, an event
//! that could not be written (the store's disk full, say) is kept in memory
//! ([`LateOutcomes`]) and written by the next append that succeeds, saying
//! that the caller got an error instead of the output; only what a stop
//! loses is left for the next start. Listings of events
//! (`/api/audit`, `audit list`) show events, not intents; exports and
//! verification see every entry.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::store::{AuditStore, StoreError};
use super::{AuditEvent, AuditRecord};

/// `outcome.status` of an intent entry.
pub const INTENT_STATUS: &str = "intent";
/// `outcome.status` of the event closing an intent whose outcome was lost.
pub const UNKNOWN_STATUS: &str = "unknown";

/// The event that closes `intent` when its call's outcome was lost.
pub fn unknown_outcome(intent: &AuditEvent) -> AuditRecord {
    let mut record = intent.record.clone();
    record.outcome.status = UNKNOWN_STATUS.into();
    record.outcome.rows = None;
    record.outcome.error = Some(format!(
        "the server stopped after recording this call's intent (seq {}, {}) and before its \
         outcome: whether it took effect is unknown; check the target",
        intent.seq, intent.time
    ));
    record.result_preview = serde_json::Value::Null;
    record.intent = Some(intent.id.clone());
    record
}

/// Close every intent a stopped server left open (see the module docs):
/// one `unknown` event each, in the order of the intents. Returns how many.
/// Run at start, before calls are served.
pub async fn close_unfinished(store: &dyn AuditStore) -> Result<u64, StoreError> {
    let open = store.unfinished_intents().await?;
    let mut closed = 0;
    for intent in &open {
        store.append(unknown_outcome(intent)).await?;
        closed += 1;
    }
    if closed > 0 {
        tracing::warn!(
            closed,
            "closed write-ahead intents of calls whose outcome was lost (the server stopped mid-call); \
             their events say outcome `unknown`"
        );
    }
    Ok(closed)
}

/// Events of executed calls that could not be written while the server
/// runs, kept (at most [`LateOutcomes::MAX`]) until an append succeeds again.
/// Each is rewritten to say what the caller saw: an error, no output.
#[derive(Debug, Default)]
pub struct LateOutcomes {
    pending: Mutex<VecDeque<AuditRecord>>,
}

impl LateOutcomes {
    /// The most events kept; beyond it an intent stays open until the next
    /// start closes it as `unknown` (the chain still says the call may have
    /// run).
    pub const MAX: usize = 10_000;

    /// Keep `record` (an event naming its intent) whose append failed with
    /// `error`. Records without an intent are not kept: nothing of theirs
    /// took effect.
    pub fn keep(&self, mut record: AuditRecord, error: &str) {
        if record.intent.is_none() {
            return;
        }
        let was = std::mem::take(&mut record.outcome.error);
        let status = std::mem::replace(&mut record.outcome.status, "error".into());
        record.outcome.error = Some(format!(
            "recorded late: this event (outcome `{status}`{}) could not be written when the \
             call ended ({error}), so the caller got `audit_unavailable` and no output",
            was.map(|w| format!(": {w}")).unwrap_or_default()
        ));
        record.result_preview = serde_json::Value::Null;
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() < Self::MAX {
            pending.push_back(record);
        } else {
            tracing::warn!(
                "more than {} events wait to be written; this call's intent stays open until \
                 the next start closes it as `unknown`",
                Self::MAX
            );
        }
    }

    /// Whether any event waits.
    pub fn is_empty(&self) -> bool {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Write the waiting events, oldest first; on the first failure the
    /// rest wait for the next try. Returns how many were written.
    pub async fn write(&self, store: &dyn AuditStore) -> usize {
        let waiting: Vec<AuditRecord> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.drain(..).collect()
        };
        let mut written = 0;
        let mut rest = waiting.into_iter();
        for record in rest.by_ref() {
            if let Err(e) = store.append(record.clone()).await {
                tracing::warn!(error = %e, "a late event still cannot be written; kept for the next try");
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let back: Vec<_> = std::iter::once(record).chain(rest).collect();
                for r in back.into_iter().rev() {
                    pending.push_front(r);
                }
                return written;
            }
            written += 1;
        }
        if written > 0 {
            tracing::info!(
                written,
                "wrote events that could not be written when their calls ended"
            );
        }
        written
    }
}
