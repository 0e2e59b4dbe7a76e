//! # gateway-core
//!
//! The transport- and connector-agnostic heart of Tollgate. Every tool call an
//! agent makes passes one pipeline ([`pipeline`]), in this order:
//!
//! identity → analysis → policy → approval → execute → mask → audit
//!
//! This crate knows no transport (MCP, HTTP, stdio live in `server/`) and no
//! connector (SQL, Kubernetes, SSH live in `tools/`). Connectors plug in through
//! one trait, [`connector::Connector`]; stores plug in through
//! [`audit::AuditStore`].
//!
//! Invariant protected here: nothing executes unless the analysis understood
//! the call, policy permitted every request it produced, any approval the
//! policy asked for was granted, and the audit store is able to record it.
#![deny(missing_docs)]

pub mod access;
pub mod access_log;
pub mod approval;
pub mod audit;
pub mod builtin;
pub mod classify;
pub mod connector;
pub mod disclosure;
pub mod duration;
mod gate;
pub mod gateway;
pub mod guards;
pub mod identity;
pub mod limits;
pub mod mask;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod policy;
pub mod record;
pub mod recording;
pub mod review;
mod route;
pub mod secret;
pub mod section;
pub mod stages;
pub mod text;

pub use access::{AccessRequest, ContextValue, Resource};
pub use connector::{ConnectionInfo, Connector, ExecLimits, Plan, ToolOutput, ToolSpec};
pub use gateway::{Gateway, GatewayBuilder};
pub use identity::Principal;
pub use outcome::{CallError, CallOutcome, CallResult, ErrorCode, PendingApproval};

#[cfg(any(test, feature = "test-util"))]
pub mod test_util;

#[cfg(test)]
mod pipeline_tests;
