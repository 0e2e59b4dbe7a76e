//! What a call ends as, and the one place that maps it to the client's
//! result: `structuredContent` plus `isError`, with the error object of the
//! contract (`{error: {code, message, policies}}`). Errors and denials are
//! values here, not panics or transport errors. Beside that JSON, every
//! result carries a typed [`CallOutcome`] that transports branch on (a task
//! for a pending call, a failed task for a refused approval) without reading
//! the JSON back.

use serde::Serialize;
use serde_json::{Value, json};

use crate::approval::Requirement;
use crate::connector::{AnalysisError, ExecuteError};

/// Why a call did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No such tool.
    #[error("unknown tool {0:?}; call tools/list for the tools this server offers")]
    UnknownTool(String),
    /// `connection` names nothing, or nothing the tool serves.
    #[error("unknown connection {0:?}; call list_connections for the connections you may use")]
    UnknownConnection(String),
    /// The arguments do not fit the tool.
    #[error("{0}")]
    InvalidArguments(String),
    /// `approval_wait` on an approval id that is not the caller's (or does
    /// not exist): answered as invalid arguments, audited as a denial.
    #[error("{0}")]
    NotYourApproval(String),
    /// Analysis could not see what the call would do: nothing ran.
    #[error("denied: {0}")]
    Unanalysable(String),
    /// Policy denied it: nothing ran.
    #[error("{message}")]
    Denied {
        /// Why.
        message: String,
        /// Policies that denied.
        policies: Vec<String>,
    },
    /// A reviewer denied it, or the approval expired or was cancelled.
    #[error("{0}")]
    ApprovalRefused(String),
    /// The approval already authorised its one execution (the call ran, or
    /// is running): nothing ran again.
    #[error("{0}")]
    ApprovalUsed(String),
    /// The audit store cannot record: nothing ran (fail closed).
    #[error("the audit store cannot record calls right now, so nothing was executed: {0}")]
    AuditUnavailable(String),
    /// The call ran but could not be recorded: the result is withheld.
    #[error("the call ran but could not be recorded, so its result is withheld: {0}")]
    AuditFailedAfterExecution(String),
    /// The target failed.
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    /// Over a rate or concurrency limit ([`crate::limits`]): nothing ran.
    #[error("over the {kind} limit ({limit}); nothing was run; retry after {retry_after_s}s")]
    RateLimited {
        /// `rate` or `concurrency`.
        kind: &'static str,
        /// The limit, in words.
        limit: String,
        /// Whole seconds to wait before retrying.
        retry_after_s: u64,
    },
    /// A bug: a stage panicked. The call is answered and audited as this
    /// error instead of the panic reaching the transport.
    #[error(
        "internal error: the call stopped unexpectedly ({0}); check the audit log and the target before retrying"
    )]
    Internal(String),
}

impl From<AnalysisError> for CallError {
    fn from(e: AnalysisError) -> Self {
        match e {
            AnalysisError::InvalidArguments(m) => {
                CallError::InvalidArguments(format!("invalid arguments: {m}"))
            }
            AnalysisError::UnknownTool(t) => CallError::UnknownTool(t),
            AnalysisError::Unanalysable(m) => CallError::Unanalysable(m),
        }
    }
}

/// The stable code of a [`CallError`] (`error.code` on the wire, `status`
/// reasons in the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `unknown_tool`.
    UnknownTool,
    /// `unknown_connection`.
    UnknownConnection,
    /// `invalid_arguments`.
    InvalidArguments,
    /// `denied`: policy or analysis refused the call.
    Denied,
    /// `approval_denied`: a reviewer denied it, or it expired or was cancelled.
    ApprovalDenied,
    /// `approval_used`.
    ApprovalUsed,
    /// `audit_unavailable`.
    AuditUnavailable,
    /// `target_unavailable`.
    TargetUnavailable,
    /// `timeout`.
    Timeout,
    /// `cancelled`: the client went away or cancelled the call.
    Cancelled,
    /// `too_many_affected_rows`.
    TooManyAffectedRows,
    /// `target_error`.
    TargetError,
    /// `internal_error`.
    InternalError,
    /// `rate_limited`: over a rate or concurrency limit.
    RateLimited,
}

impl ErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::UnknownTool => "unknown_tool",
            ErrorCode::UnknownConnection => "unknown_connection",
            ErrorCode::InvalidArguments => "invalid_arguments",
            ErrorCode::Denied => "denied",
            ErrorCode::ApprovalDenied => "approval_denied",
            ErrorCode::ApprovalUsed => "approval_used",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::TargetUnavailable => "target_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::TooManyAffectedRows => "too_many_affected_rows",
            ErrorCode::TargetError => "target_error",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl CallError {
    /// The error's code, typed.
    pub fn kind(&self) -> ErrorCode {
        match self {
            CallError::UnknownTool(_) => ErrorCode::UnknownTool,
            CallError::UnknownConnection(_) => ErrorCode::UnknownConnection,
            CallError::InvalidArguments(_) | CallError::NotYourApproval(_) => {
                ErrorCode::InvalidArguments
            }
            CallError::Unanalysable(_) | CallError::Denied { .. } => ErrorCode::Denied,
            CallError::ApprovalRefused(_) => ErrorCode::ApprovalDenied,
            CallError::ApprovalUsed(_) => ErrorCode::ApprovalUsed,
            CallError::AuditUnavailable(_) | CallError::AuditFailedAfterExecution(_) => {
                ErrorCode::AuditUnavailable
            }
            CallError::Execute(ExecuteError::Unavailable(_)) => ErrorCode::TargetUnavailable,
            CallError::Execute(ExecuteError::Timeout(_)) => ErrorCode::Timeout,
            CallError::Execute(ExecuteError::Cancelled) => ErrorCode::Cancelled,
            CallError::Execute(ExecuteError::TooManyAffected { .. }) => {
                ErrorCode::TooManyAffectedRows
            }
            CallError::Execute(_) => ErrorCode::TargetError,
            CallError::Internal(_) => ErrorCode::InternalError,
            CallError::RateLimited { .. } => ErrorCode::RateLimited,
        }
    }

    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The audit `decision` for this error.
    pub fn decision(&self) -> &'static str {
        match self {
            CallError::Unanalysable(_)
            | CallError::Denied { .. }
            | CallError::NotYourApproval(_)
            | CallError::ApprovalRefused(_)
            | CallError::RateLimited { .. } => "deny",
            CallError::AuditUnavailable(_) => "deny",
            _ => "error",
        }
    }

    /// Policies to name in the error object.
    pub fn policies(&self) -> &[String] {
        match self {
            CallError::Denied { policies, .. } => policies,
            _ => &[],
        }
    }
}

/// The `status` of a pending object: always `pending_approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PendingStatus {
    /// The call waits for humans.
    #[serde(rename = "pending_approval")]
    PendingApproval,
}

/// The pending object of the contract ("MCP tools"): the call waits for a
/// human decision. Serialises to the exact wire shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingApproval {
    /// Always [`PendingStatus::PendingApproval`].
    pub status: PendingStatus,
    /// The approval to wait on (`approval_wait`).
    pub approval_id: String,
    /// When the approval expires (RFC 3339).
    pub expires_at: String,
    /// The reviewers' page.
    pub review_url: String,
    /// Groups whose members may approve.
    pub reviewers: Vec<String>,
    /// Who must approve, per group.
    pub required: Vec<Requirement>,
    /// Subs that approved so far.
    pub approvers: Vec<String>,
    /// What the agent should do next.
    pub message: String,
}

impl PendingApproval {
    /// The pending object as JSON.
    pub fn to_value(&self) -> Value {
        // A struct of strings and string lists always serialises.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// How a call ended, for the transport to branch on; the JSON in
/// [`CallResult::structured`] is what the client sees.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutcome {
    /// The call ran (or a built-in answered): `structured` is its result.
    Completed,
    /// The call waits for humans: `structured` is this pending object.
    Pending(PendingApproval),
    /// The call produced no result: `structured` is the error object, and
    /// this is its code.
    Failed(ErrorCode),
}

/// The result handed to the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// `structuredContent` (the text content is the same JSON).
    pub structured: Value,
    /// `isError` (true exactly when `outcome` is [`CallOutcome::Failed`]).
    pub is_error: bool,
    /// How the call ended, typed.
    pub outcome: CallOutcome,
}

impl CallResult {
    /// A successful result.
    pub fn ok(structured: Value) -> Self {
        CallResult {
            structured,
            is_error: false,
            outcome: CallOutcome::Completed,
        }
    }

    /// A call waiting for humans: the pending object.
    pub fn pending(pending: PendingApproval) -> Self {
        CallResult {
            structured: pending.to_value(),
            is_error: false,
            outcome: CallOutcome::Pending(pending),
        }
    }

    /// The error object for `e`, with `message` already masked.
    pub fn error(e: &CallError, message: String) -> Self {
        let mut structured =
            json!({"error": {"code": e.code(), "message": message, "policies": e.policies()}});
        if let CallError::RateLimited { retry_after_s, .. } = e {
            structured["error"]["retry_after_s"] = json!(retry_after_s);
        }
        CallResult {
            structured,
            is_error: true,
            outcome: CallOutcome::Failed(e.kind()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_match_the_wire_shapes() {
        let pending = PendingApproval {
            status: PendingStatus::PendingApproval,
            approval_id: "apr_1".into(),
            expires_at: "2026-12-04T18:00:00Z".into(),
            review_url: "http://x/ui/approvals/apr_1".into(),
            reviewers: vec!["dba".into()],
            required: vec![],
            approvers: vec![],
            message: "wait".into(),
        };
        let r = CallResult::pending(pending.clone());
        assert!(!r.is_error);
        assert_eq!(r.structured["status"], "pending_approval");
        assert_eq!(r.structured["approval_id"], "apr_1");
        let keys: Vec<&String> = r.structured.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "status",
                "approval_id",
                "expires_at",
                "review_url",
                "reviewers",
                "required",
                "approvers",
                "message"
            ]
        );
        assert_eq!(r.outcome, CallOutcome::Pending(pending));

        let e = CallError::ApprovalRefused("denied by bob".into());
        let r = CallResult::error(&e, e.to_string());
        assert!(r.is_error);
        assert_eq!(r.outcome, CallOutcome::Failed(ErrorCode::ApprovalDenied));
        assert_eq!(r.structured["error"]["code"], "approval_denied");

        let r = CallResult::ok(json!({"status": "pending_approval"}));
        assert_eq!(
            r.outcome,
            CallOutcome::Completed,
            "a result is never read back as pending"
        );
    }
}
