//! What a call ends as, and the one place that maps it to the client's
//! result: `structuredContent` plus `isError`, with the error object of the
//! contract (`{error: {code, message, policies}}`). Errors and denials are
//! values here, not panics or transport errors.

use serde_json::{Value, json};

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

impl CallError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CallError::UnknownTool(_) => "unknown_tool",
            CallError::UnknownConnection(_) => "unknown_connection",
            CallError::InvalidArguments(_) => "invalid_arguments",
            CallError::Unanalysable(_) | CallError::Denied { .. } => "denied",
            CallError::ApprovalRefused(_) => "approval_denied",
            CallError::ApprovalUsed(_) => "approval_used",
            CallError::AuditUnavailable(_) | CallError::AuditFailedAfterExecution(_) => {
                "audit_unavailable"
            }
            CallError::Execute(ExecuteError::Unavailable(_)) => "target_unavailable",
            CallError::Execute(ExecuteError::Timeout(_)) => "timeout",
            CallError::Execute(ExecuteError::Cancelled) => "cancelled",
            CallError::Execute(ExecuteError::TooManyAffected { .. }) => "too_many_affected_rows",
            CallError::Execute(_) => "target_error",
            CallError::Internal(_) => "internal_error",
        }
    }

    /// The audit `decision` for this error.
    pub fn decision(&self) -> &'static str {
        match self {
            CallError::Unanalysable(_)
            | CallError::Denied { .. }
            | CallError::ApprovalRefused(_) => "deny",
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

/// The result handed to the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// `structuredContent` (the text content is the same JSON).
    pub structured: Value,
    /// `isError`.
    pub is_error: bool,
}

impl CallResult {
    /// A successful result.
    pub fn ok(structured: Value) -> Self {
        CallResult {
            structured,
            is_error: false,
        }
    }

    /// The error object for `e`, with `message` already masked.
    pub fn error(e: &CallError, message: String) -> Self {
        CallResult {
            structured: json!({"error": {"code": e.code(), "message": message, "policies": e.policies()}}),
            is_error: true,
        }
    }
}
