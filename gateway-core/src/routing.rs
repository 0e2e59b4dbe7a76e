//! Small steps the pipeline delegates: finding the connection a call is for,
//! building the approval ticket, talking to the approval gate, and shaping
//! the caller's result. Kept out of `pipeline.rs` so that file reads as the
//! order of stages only.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::approval::{ApprovalStatus, ApprovalTicket, CallContext};
use crate::connector::{Connector, Plan};
use crate::gateway::Gateway;
use crate::identity::Principal;
use crate::mask::MaskCounts;
use crate::outcome::{CallError, CallResult};
use crate::policy::{ApprovalRequirement, RequestDecision, Verdict};
use crate::record::Trace;

/// The connection a tool call is for: its `connection` argument, which must
/// name a configured connection that serves `tool`.
pub(crate) fn connection<'a>(
    gw: &'a Gateway,
    tool: &str,
    args: &Value,
) -> Result<&'a Arc<dyn Connector>, CallError> {
    if !gw.tools.iter().any(|t| t.name == tool) {
        return Err(CallError::UnknownTool(tool.to_string()));
    }
    let name = match args.get("connection") {
        Some(Value::String(s)) => s,
        Some(_) => {
            return Err(CallError::InvalidArguments(
                "invalid arguments: `connection` must be a string".into(),
            ));
        }
        None => {
            return Err(CallError::InvalidArguments(
                "invalid arguments: `connection` is required".into(),
            ));
        }
    };
    match (gw.connections.get(name), gw.tools_by_connection.get(name)) {
        (Some(c), Some(tools)) if tools.contains(tool) => Ok(c),
        _ => Err(CallError::UnknownConnection(name.clone())),
    }
}

/// The exact call a reviewer is asked about.
pub(crate) fn ticket(
    gw: &Gateway,
    args: &Value,
    trace: &Trace,
    plan: &Plan,
    requests: &[RequestDecision],
    requirements: Vec<ApprovalRequirement>,
) -> ApprovalTicket {
    ApprovalTicket {
        requester: trace.principal().clone(),
        tool: trace.tool().to_string(),
        connection: args
            .get("connection")
            .and_then(Value::as_str)
            .map(str::to_string),
        arguments: args.clone(),
        arguments_masked: trace.arguments().clone(),
        // The summary can quote literals from the call: reviewers see it
        // masked, literal by literal where the connector gave the parts.
        summary: crate::review::masked_summary(&gw.masker, &plan.summary, &plan.review).0,
        requests: requests.to_vec(),
        requirements,
    }
}

/// Ask the gate; without a gate, a call that needs approval cannot run.
pub(crate) async fn await_approval(
    gw: &Gateway,
    ticket: ApprovalTicket,
    ctx: &CallContext<'_>,
) -> ApprovalStatus {
    match &gw.approvals {
        Some(gate) => gate.await_decision(ticket, ctx).await,
        None => ApprovalStatus::Refused {
            id: String::new(),
            state: "unavailable".into(),
            message: "policy requires human approval for this call, but this server has no approval service configured".into(),
        },
    }
}

/// A call resumed by `approval_wait` always goes through the approval it
/// names, even if policy would now allow it outright: the approval is
/// consumed by its one execution and cannot be replayed.
pub(crate) fn bind_resumed(verdict: Verdict, ctx: &CallContext<'_>) -> Verdict {
    match verdict {
        Verdict::Allow if ctx.resume.is_some() => Verdict::NeedsApproval(vec![]),
        v => v,
    }
}

/// Tell the gate an approved call ran.
pub(crate) async fn mark_executed(gw: &Gateway, trace: &Trace, ok: bool) {
    if let (Some(gate), Some(id)) = (&gw.approvals, trace.approval_id()) {
        gate.mark_executed(&id, ok).await;
    }
}

/// `approval_wait`: pick up a paused call by re-running it; the gate finds
/// the existing approval for the same requester and arguments.
pub(crate) async fn approval_wait(
    gw: &Gateway,
    principal: &Principal,
    args: &Value,
    ctx: &CallContext<'_>,
) -> CallResult {
    // Errors of approval_wait itself leave masked like every other error
    // (a resumed call's own errors go through `Gateway::finish`).
    let refuse = |e: CallError| {
        let (message, _) = gw.masker.mask_text(&e.to_string());
        CallResult::error(&e, message)
    };
    let Some(gate) = &gw.approvals else {
        return refuse(CallError::InvalidArguments(
            "this server has no approval service configured".into(),
        ));
    };
    let Some(id) = args.get("approval_id").and_then(Value::as_str) else {
        return refuse(CallError::InvalidArguments(
            "invalid arguments: `approval_id` (string) is required".into(),
        ));
    };
    let wait = args
        .get("timeout_seconds")
        .and_then(Value::as_u64)
        .map(std::time::Duration::from_secs)
        .or(ctx.wait);
    let ctx = CallContext {
        wait,
        resume: Some(id),
        ..*ctx
    };
    match gate.original_call(id, principal).await {
        Ok((tool, call_args)) => Box::pin(gw.call(principal, &tool, call_args, &ctx)).await,
        Err(message) => refuse(CallError::InvalidArguments(message)),
    }
}

/// Add `masked` counts (and keep `truncated`) on an object result.
pub(crate) fn with_masked_counts(mut value: Value, counts: &MaskCounts, truncated: bool) -> Value {
    if let Value::Object(map) = &mut value {
        map.insert("masked".into(), json!(counts));
        if truncated {
            map.insert("truncated".into(), Value::Bool(true));
        }
    }
    value
}
