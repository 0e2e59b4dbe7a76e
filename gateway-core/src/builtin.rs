//! Tools the gateway itself serves, whatever connectors are enabled:
//! `list_connections` and `approval_wait`.

use serde_json::{Value, json};

use crate::connector::ToolSpec;

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
