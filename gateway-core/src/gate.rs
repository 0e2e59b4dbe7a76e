//! The pipeline's side of the approval gate: the exact call a reviewer is
//! asked about (the ticket), waiting for the decision, binding a resumed call
//! to its approval, and telling the gate the approved call ran.

use serde_json::Value;

use crate::approval::{ApprovalStatus, ApprovalTicket, CallContext, Execution};
use crate::connector::{ExecuteError, Plan, ToolOutput};
use crate::gateway::Gateway;
use crate::mask::FieldScope;
use crate::policy::{ApprovalRequirement, RequestDecision, Verdict};
use crate::record::Trace;

/// The exact call a reviewer is asked about.
pub(crate) fn ticket(
    gw: &Gateway,
    args: &Value,
    trace: &Trace,
    plan: &Plan,
    requests: &[RequestDecision],
    requirements: Vec<ApprovalRequirement>,
) -> ApprovalTicket {
    let connection = args
        .get("connection")
        .and_then(Value::as_str)
        .and_then(|name| gw.connection(name));
    let scope = connection
        .map(|c| FieldScope::from(c.info()))
        .unwrap_or_default();
    ApprovalTicket {
        requester: trace.principal().clone(),
        tool: trace.tool().to_string(),
        connection: args
            .get("connection")
            .and_then(Value::as_str)
            .map(str::to_string),
        arguments: args.clone(),
        arguments_masked: trace.arguments().clone(),
        // The review quotes literals and field values from the call:
        // reviewers see it masked, part by part where the family gave the
        // parts, field values by the field rules of the call's connection.
        review: plan.review.masked(&gw.masker, scope).0,
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

/// Tell the gate how an approved call ended (and the items it counted).
pub(crate) async fn mark_executed(
    gw: &Gateway,
    trace: &Trace,
    executed: &Result<ToolOutput, ExecuteError>,
) {
    if let (Some(gate), Some(id)) = (&gw.approvals, trace.approval_id()) {
        let execution = match executed {
            Ok(output) => Execution::Succeeded {
                items: output.items,
            },
            Err(_) => Execution::Failed,
        };
        gate.mark_executed(&id, execution).await;
    }
}
