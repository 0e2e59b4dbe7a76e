//! Route: the connection a tool call is for, taken from its `connection`
//! argument; a tool or connection the gateway does not serve ends here.

use std::sync::Arc;

use serde_json::Value;

use crate::connector::Connector;
use crate::gateway::Gateway;
use crate::outcome::CallError;

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
