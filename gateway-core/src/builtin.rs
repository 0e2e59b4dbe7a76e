//! Tools the gateway itself serves, whatever connectors are enabled:
//! `list_connections` and `approval_wait`: their specs, their argument
//! checks, and serving them (they pass identity and audit like every call,
//! but no connector).

use std::time::Duration;

use serde_json::{Value, json};

use crate::approval::CallContext;
use crate::connector::ToolSpec;
use crate::gateway::Gateway;
use crate::identity::Principal;
use crate::outcome::{CallError, CallResult};
use crate::record::Trace;

/// Name of the connection listing tool.
pub const LIST_CONNECTIONS: &str = "list_connections";
/// Name of the tool that picks up a paused call.
pub const APPROVAL_WAIT: &str = "approval_wait";
/// Longest `approval_wait` blocks (`timeout_seconds` maximum, as declared in
/// its input schema); larger values are refused, not clamped.
pub const MAX_WAIT_SECONDS: u64 = 3600;

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("literal schemas are objects"),
    }
}

/// Specs of the built-in tools.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: LIST_CONNECTIONS.into(),
            description: "List the connections (databases and other targets) you may use, with their kind and description. \
                          Pass a connection's name as the `connection` argument of the other tools."
                .into(),
            input_schema: object(json!({"type": "object", "properties": {}, "additionalProperties": false})),
            output_schema: object(json!({
                "type": "object",
                "properties": {"connections": {"type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}, "kind": {"type": "string"}, "description": {"type": "string"}},
                    "required": ["name", "kind", "description"]}}},
                "required": ["connections"]
            })),
            read_only: true,
        },
        ToolSpec {
            name: APPROVAL_WAIT.into(),
            description: "Wait for a human decision on a call that returned `status: pending_approval`, then get that call's result \
                          (it runs once, exactly as approved). Returns the pending object again while undecided."
                .into(),
            input_schema: object(json!({
                "type": "object",
                "properties": {
                    "approval_id": {"type": "string", "description": "`approval_id` from the pending result"},
                    "timeout_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "description": "How long to block for a decision, 0 to 3600 seconds (default: the server's approval.wait_seconds)"}
                },
                "required": ["approval_id"],
                "additionalProperties": false
            })),
            output_schema: object(json!({"type": "object"})),
            read_only: false,
        },
    ]
}

impl Gateway {
    /// Serve `tool` when it is a built-in: `Some(result)`, audited; `None`
    /// for every other tool (a connector's, or an unknown one).
    pub(crate) async fn serve_builtin(
        &self,
        principal: &Principal,
        tool: &str,
        args: &Value,
        ctx: &CallContext<'_>,
    ) -> Option<CallResult> {
        let trace = || Trace::start(principal, tool, args, &self.masker);
        match tool {
            LIST_CONNECTIONS => {
                // Its schema declares no arguments (`additionalProperties: false`).
                if let Some(k) = args.as_object().and_then(|o| o.keys().next()) {
                    let e = CallError::InvalidArguments(format!(
                        "invalid arguments: list_connections takes no arguments (got {k:?})"
                    ));
                    return Some(self.finish(trace(), Err(e)).await);
                }
                let listed = json!({"connections": self.visible_connections(principal)});
                Some(self.finish(trace(), Ok((listed, None))).await)
            }
            APPROVAL_WAIT => {
                // Bad arguments or someone else's approval id end audited here;
                // a resumed call is audited as the call it resumes.
                let resumed = match wait_arguments(self, args) {
                    Ok((id, wait)) => approval_wait(self, principal, id, wait, ctx).await,
                    Err(e) => Err(e),
                };
                Some(match resumed {
                    Ok(result) => result,
                    Err(e) => self.finish(trace(), Err(e)).await,
                })
            }
            _ => None,
        }
    }
}

/// The arguments of `approval_wait`, checked against its declared input
/// schema: `approval_id` (string, required) and `timeout_seconds` (integer,
/// 0 to [`MAX_WAIT_SECONDS`]), nothing else.
/// Out-of-range values are refused, never clamped or turned into a panic.
fn wait_arguments<'a>(
    gw: &Gateway,
    args: &'a Value,
) -> Result<(&'a str, Option<Duration>), CallError> {
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
async fn approval_wait(
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
    let (tool, call_args) = gate.original_call(id, principal).await?;
    Ok(Box::pin(gw.call(principal, &tool, call_args, &ctx)).await)
}
