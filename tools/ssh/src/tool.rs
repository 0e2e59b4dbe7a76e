//! `ssh_exec`: its arguments (parsed strictly: unknown keys and wrong types
//! refused, so nothing an agent passes is silently ignored) and its input
//! and output schemas.

use gateway_core::connector::{AnalysisError, ToolSpec};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// Longest `timeout_seconds` accepted (the connection's timeout caps it too).
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Most bytes of `stdin`.
pub const MAX_STDIN_BYTES: usize = 1 << 20;

/// `ssh_exec` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// The words to run, each quoted for the remote shell.
    pub argv: Option<Vec<String>>,
    /// A command line: plain words and quotes become an argv; anything
    /// else is a raw shell call.
    pub command: Option<String>,
    /// Written to the command's standard input, then end of file.
    pub stdin: Option<String>,
    /// Time budget of the command (the connection's timeout caps it).
    pub timeout_seconds: Option<u64>,
}

/// Parse `ssh_exec` arguments.
pub fn parse(args: &Value) -> Result<ExecArgs, AnalysisError> {
    let a: ExecArgs = serde_json::from_value(args.clone())
        .map_err(|e| AnalysisError::InvalidArguments(e.to_string()))?;
    if let Some(s) = &a.stdin
        && s.len() > MAX_STDIN_BYTES
    {
        return Err(AnalysisError::InvalidArguments(format!(
            "`stdin` is {} bytes, more than {MAX_STDIN_BYTES}",
            s.len()
        )));
    }
    if let Some(t) = a.timeout_seconds
        && !(1..=MAX_TIMEOUT_SECONDS).contains(&t)
    {
        return Err(AnalysisError::InvalidArguments(format!(
            "`timeout_seconds` must be between 1 and {MAX_TIMEOUT_SECONDS}"
        )));
    }
    Ok(a)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The tool an SSH connection serves.
pub fn spec() -> ToolSpec {
    ToolSpec {
        name: "ssh_exec".into(),
        description: "Run a command on a host over SSH with the server's key. Give `argv` (the exact words to run, each quoted for the remote shell) or `command` (a line of plain words and quotes is split as a POSIX shell would and runs as that argv; any other shell syntax — ; | & $ backticks, redirections, globs, newlines — makes it a raw shell call, which policy must permit separately). Policy sees every program the call starts, through sudo, env, timeout, xargs, find -exec, sh -c and the like. Returns the exit code (a non-zero one is a result, not an error), stdout and stderr (capped and masked) and the duration; the command is ended on the host when `timeout_seconds` (or the connection's timeout) passes or the call is cancelled. Output is recorded for audit replay.".into(),
        input_schema: object(json!({
            "type": "object",
            "properties": {
                "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                    "description": "The program and its arguments, e.g. [\"systemctl\", \"status\", \"nginx\"]. Exactly one of argv or command."},
                "command": {"type": "string", "description": "A command line, e.g. `df -h /var`. Exactly one of argv or command."},
                "stdin": {"type": "string", "description": "Written to the command's standard input, then end of file."},
                "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS}
            },
            "required": ["connection"],
            "additionalProperties": false
        })),
        output_schema: object(json!({
            "type": "object",
            "properties": {
                "exit_code": {"type": ["integer", "null"], "description": "null when the command was ended by a signal or at the byte cap."},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "truncated": {"type": "boolean"},
                "duration_ms": {"type": "integer"}
            },
            "required": ["exit_code", "stdout", "stderr", "truncated", "duration_ms"]
        })),
        read_only: false,
    }
}
