//! Approval stage: a call whose allowing permit carries `@approval` waits
//! here until enough distinct reviewers decide. The gate (store, reviewers'
//! channels, notifications) is behind [`ApprovalGate`]; the pipeline only
//! asks [`ApprovalGate::await_decision`] and acts on the answer.
//!
//! - [`record`]: the approval record and its state machine (pure rules:
//!   distinct approvers, no self-approval, expiry, one claim).
//! - [`store`]: the [`ApprovalStore`] boundary (compare-and-swap updates).
//! - [`service`]: [`ApprovalService`], the gate over a store, recording
//!   every transition in the audit chain.
//!
//! Invariant: an approval authorises one execution of exactly the approved
//! arguments by exactly the requester, and only while policy (evaluated
//! again at execution) still allows it.

pub mod record;
pub mod service;
pub mod store;

#[cfg(test)]
mod tests;

pub use record::{Approval, ApprovalState, DecideError, Requirement};
pub use service::{ApprovalChange, ApprovalConfig, ApprovalService, Notifier, ReviewError};
pub use store::{ApprovalStore, ApprovalStoreError};

use async_trait::async_trait;
use serde_json::Value;

use crate::identity::Principal;
use crate::policy::{ApprovalRequirement, RequestDecision};
use crate::review::ReviewSummary;

/// Everything that identifies the exact call to be approved.
#[derive(Debug, Clone)]
pub struct ApprovalTicket {
    /// Who asks.
    pub requester: Principal,
    /// Tool.
    pub tool: String,
    /// Connection.
    pub connection: Option<String>,
    /// Exact arguments (raw; the gate stores a hash and a masked copy).
    pub arguments: Value,
    /// Masked arguments, for reviewers.
    pub arguments_masked: Value,
    /// What the call will do, for reviewers, already masked (literal by
    /// literal): produced by the tool family, shown by every renderer.
    pub review: ReviewSummary,
    /// Policy requests and decisions.
    pub requests: Vec<RequestDecision>,
    /// Who must approve.
    pub requirements: Vec<ApprovalRequirement>,
}

/// How an approved call ended, for its approval record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// It ran; `items` is what the tool counted (rows/items returned or
    /// changed), when it counts.
    Succeeded {
        /// Items returned or changed.
        items: Option<u64>,
    },
    /// It ran and failed (or was refused at execution).
    Failed,
}

/// Progress reporting back to the agent while it waits (MCP progress
/// notifications, task status). Implemented by the transport.
pub trait ProgressSink: Send + Sync {
    /// Report a status message.
    fn progress(&self, message: &str);
}

/// The agent's cancellation (MCP `notifications/cancelled`, `tasks/cancel`),
/// implemented by the transport.
pub trait CancelSignal: Send + Sync {
    /// Resolves once the agent cancelled the call.
    fn cancelled(&self) -> futures::future::BoxFuture<'_, ()>;
}

/// Per-call context from the transport.
#[derive(Clone, Copy, Default)]
pub struct CallContext<'a> {
    /// Where to report progress while waiting on humans.
    pub progress: Option<&'a dyn ProgressSink>,
    /// How long to block for a decision (None: the gate's default).
    pub wait: Option<std::time::Duration>,
    /// The agent's cancellation: cancels a pending approval.
    pub cancel: Option<&'a dyn CancelSignal>,
    /// Fires when the caller cancels the call or goes away (the transport's
    /// request cancellation): a running execution stops its work on the
    /// target (see [`crate::connector::ExecLimits::cancel`]).
    pub cancellation: Option<&'a tokio_util::sync::CancellationToken>,
    /// Set by `approval_wait`: this call resumes that approval, and only it.
    pub resume: Option<&'a str>,
}

/// What the gate answers.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalStatus {
    /// Approved and claimed for this execution: the call may run now. The
    /// gate hands out `Approved` once per approval (exactly-once execution).
    Approved {
        /// Approval id.
        id: String,
        /// Who approved.
        approvers: Vec<String>,
    },
    /// Still waiting: the pending object for the agent.
    Pending {
        /// Approval id.
        id: String,
        /// The pending object of the contract.
        pending: crate::outcome::PendingApproval,
    },
    /// Denied, expired or cancelled.
    Refused {
        /// Approval id.
        id: String,
        /// denied | expired | cancelled.
        state: String,
        /// Why, for the agent.
        message: String,
    },
}

/// The approval gate.
#[async_trait]
pub trait ApprovalGate: Send + Sync {
    /// Find or create the approval for this exact call and wait up to the
    /// configured time for a decision.
    async fn await_decision(&self, ticket: ApprovalTicket, ctx: &CallContext<'_>)
    -> ApprovalStatus;

    /// The tool and raw arguments of approval `id`, if `principal` requested
    /// it: otherwise [`CallError::NotYourApproval`](crate::CallError::NotYourApproval)
    /// (audited as a denial), or another error if the store cannot say.
    async fn original_call(
        &self,
        id: &str,
        principal: &Principal,
    ) -> Result<(String, Value), crate::CallError>;

    /// Record how the approved call `id` ended.
    async fn mark_executed(&self, id: &str, execution: Execution);

    /// The reviewers' side of this gate, when it has one (REST API, UI).
    fn service(&self) -> Option<&ApprovalService> {
        None
    }
}

/// JSON Schema of the pending object a call returns while it waits for
/// humans (`status: pending_approval`).
pub fn pending_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "status": {"const": "pending_approval"},
            "approval_id": {"type": "string"},
            "expires_at": {"type": "string", "description": "RFC 3339"},
            "review_url": {"type": "string"},
            "reviewers": {"type": "array", "items": {"type": "string"}, "description": "Groups whose members may approve"},
            "message": {"type": "string"}
        },
        "required": ["status", "approval_id", "expires_at", "review_url", "reviewers"]
    })
}

/// A tool's output schema widened to also admit the pending object: any
/// call of a connector tool may wait on humans, and clients validate
/// `structuredContent` of non-error results against `outputSchema`.
pub fn or_pending(schema: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let mut out = serde_json::Map::new();
    out.insert("type".into(), Value::String("object".into()));
    out.insert(
        "anyOf".into(),
        Value::Array(vec![Value::Object(schema.clone()), pending_schema()]),
    );
    out
}
