//! Small steps the pipeline delegates: finding the connection a call is for,
//! building the approval ticket, talking to the approval gate, and shaping
//! the caller's result. Kept out of `pipeline.rs` so that file reads as the
//! order of stages only.

use std::sync::Arc;
use std::time::Duration;

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

/// The arguments of `approval_wait`, checked against its declared input
/// schema: `approval_id` (string, required) and `timeout_seconds` (integer,
/// 0 to [`MAX_WAIT_SECONDS`](crate::builtin::MAX_WAIT_SECONDS)), nothing else.
/// Out-of-range values are refused, never clamped or turned into a panic.
pub(crate) fn wait_arguments<'a>(
    gw: &Gateway,
    args: &'a Value,
) -> Result<(&'a str, Option<Duration>), CallError> {
    use crate::builtin::MAX_WAIT_SECONDS;
    let invalid = |m: String| CallError::InvalidArguments(format!("invalid arguments: {m}"));
    if gw.approvals.is_none() {
        return Err(CallError::InvalidArguments(
            "this server has no approval service configured".into(),
        ));
    }
    let Some(obj) = args.as_object() else {
        return Err(invalid("approval_wait takes an object".into()));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["approval_id", "timeout_seconds"].contains(&k.as_str()))
    {
        return Err(invalid(format!(
            "unknown argument {k:?}; approval_wait takes `approval_id` and `timeout_seconds`"
        )));
    }
    let Some(id) = obj.get("approval_id").and_then(Value::as_str) else {
        return Err(invalid("`approval_id` (string) is required".into()));
    };
    let wait = match obj.get("timeout_seconds") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n <= MAX_WAIT_SECONDS => Some(Duration::from_secs(n)),
            _ => {
                return Err(invalid(format!(
                    "`timeout_seconds` must be an integer from 0 to {MAX_WAIT_SECONDS}"
                )));
            }
        },
    };
    Ok((id, wait))
}

/// `approval_wait`: pick up a paused call by re-running it; the gate finds
/// the existing approval for the same requester and arguments. `Ok` is the
/// re-run call's result (audited under its own tool); `Err` (no gate, an
/// approval id that is not the caller's) is for the caller to audit.
pub(crate) async fn approval_wait(
    gw: &Gateway,
    principal: &Principal,
    id: &str,
    wait: Option<Duration>,
    ctx: &CallContext<'_>,
) -> Result<CallResult, CallError> {
    let Some(gate) = &gw.approvals else {
        return Err(CallError::InvalidArguments(
            "this server has no approval service configured".into(),
        ));
    };
    let ctx = CallContext {
        wait: wait.or(ctx.wait),
        resume: Some(id),
        ..*ctx
    };
    match gate.original_call(id, principal).await {
        Ok((tool, call_args)) => Ok(Box::pin(gw.call(principal, &tool, call_args, &ctx)).await),
        Err(message) => Err(CallError::InvalidArguments(message)),
    }
}

/// Add `masked` counts (and `truncated` when a cap cut the result) to the
/// caller's result. MCP's `structuredContent` is an object, so a result that
/// is not one (a connector returning a bare list or text) is wrapped as
/// `{value, masked, truncated?}`: its counts and cut are never lost.
pub(crate) fn with_masked_counts(value: Value, counts: &MaskCounts, truncated: bool) -> Value {
    let mut map = match value {
        Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other);
            map
        }
    };
    map.insert("masked".into(), json!(counts));
    if truncated {
        map.insert("truncated".into(), Value::Bool(true));
    }
    Value::Object(map)
}
