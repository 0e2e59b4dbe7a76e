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
//! `tollgate audit verify` reports how many. Listings of events
//! (`/api/audit`, `audit list`) show events, not intents; exports and
//! verification see every entry.

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
