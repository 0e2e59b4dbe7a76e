//! `k8s_exec`: run an argv in a pod's container through the API server's
//! `pods/exec` subresource (kube-rs `Api::exec`: a WebSocket upgrade the API
//! server proxies to the node's kubelet; channels 1 and 2 carry stdout and
//! stderr, channel 3 the exit status).
//!
//! Analysis takes an argv only (never a shell string), refuses an empty or
//! oversized one, checks the names before policy and yields one `k8s:exec`
//! request on the pod with context `argv` = the argv shell-quoted as one
//! line. Execution opens no TTY and no stdin, reads stdout and stderr up to
//! the byte cap, and takes the exit code from the status channel. At the
//! byte cap, the time budget (the least of `timeout_seconds`, the
//! connection's `timeout` and the gateway's) or the caller's cancellation
//! the stream is closed, and the API server drops its connection to the
//! kubelet. Whether the process in the container then ends is the
//! runtime's business: without a TTY, containerd and CRI-O over runc
//! usually leave it running (kubernetes#89031, runc#3359), so a command
//! that must stop in time should carry its own `timeout`.

use std::any::Any;
use std::collections::BTreeSet;
use std::time::Duration;

use gateway_core::connector::{
    AnalysisError, ExecLimits, ExecuteError, Plan, ToolOutput, ToolSpec,
};
use gateway_core::secret::Secret;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams};
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::Instant;

use crate::client;
use crate::pod::PodTarget;

/// Most stdout + stderr bytes one call returns, whatever the gateway allows.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Most words in an argv.
pub const MAX_ARGV_WORDS: usize = 256;
/// Most bytes of an argv (all words).
pub const MAX_ARGV_BYTES: usize = 16 * 1024;
/// Longest `timeout_seconds` accepted (the connection's timeout caps it too).
pub const MAX_TIMEOUT_SECONDS: u64 = 3600;
/// Buffer between the WebSocket task and the readers, per stream.
const PIPE_BYTES: usize = 64 * 1024;

/// `k8s_exec` arguments.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// Routed by the gateway.
    #[allow(dead_code, reason = "read by the router")]
    pub connection: String,
    /// The pod's namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (None: the pod's only container).
    pub container: Option<String>,
    /// The program and its arguments, run as they are (no shell).
    pub argv: Vec<String>,
    /// Time budget of the command (the connection's timeout caps it).
    pub timeout_seconds: Option<u64>,
}

/// What analysis hands execution.
#[derive(Debug, Clone)]
pub struct Prepared {
    target: PodTarget,
    argv: Vec<String>,
    timeout: Option<Duration>,
}

/// The tool's schemas.
pub fn spec() -> ToolSpec {
    ToolSpec {
        name: "k8s_exec".into(),
        description: "Run a command in a pod's container, as an argv (no shell unless the argv names one), without a TTY or stdin. Returns the exit code (a non-zero one is a result, not an error) and stdout/stderr, capped by the gateway's byte cap and masked by the detectors. The command is ended when `timeout_seconds` (or the connection's timeout) passes, the output reaches the cap (`truncated: true`, `exit_code: null`) or the call is cancelled.".into(),
        input_schema: crate::pod::schema(json!({
            "type": "object",
            "properties": {
                "connection": {"type": "string", "description": "Connection name (see list_connections)."},
                "namespace": {"type": "string"},
                "pod": {"type": "string"},
                "container": {"type": "string", "description": "Required when the pod has several containers."},
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": MAX_ARGV_WORDS,
                    "description": "The program and its arguments, e.g. [\"cat\", \"/etc/hostname\"]. Policy sees it shell-quoted as one line (context `argv`)."},
                "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_SECONDS}
            },
            "required": ["connection", "namespace", "pod", "argv"],
            "additionalProperties": false
        })),
        output_schema: crate::pod::schema(json!({
            "type": "object",
            "properties": {
                "exit_code": {"type": ["integer", "null"], "description": "null when the command was ended at the byte cap."},
                "stdout": {"type": "string"},
                "stderr": {"type": "string"},
                "truncated": {"type": "boolean"}
            },
            "required": ["exit_code", "stdout", "stderr", "truncated"]
        })),
        read_only: false,
    }
}

/// The argv as one POSIX-shell-quoted line (what policy and reviewers see).
pub fn quoted(argv: &[String]) -> String {
    shell_words::join(argv)
}

fn invalid(m: impl Into<String>) -> AnalysisError {
    AnalysisError::InvalidArguments(m.into())
}

/// Analyse a `k8s_exec` call on connection `connection`; `wrap` makes
/// the plan's `prepared` value of what execution receives.
pub fn analyse(
    connection: &str,
    namespaces: Option<&BTreeSet<String>>,
    a: ExecArgs,
    wrap: impl FnOnce(Prepared) -> Box<dyn Any + Send + Sync>,
) -> Result<Plan, AnalysisError> {
    let target = PodTarget::check(
        connection,
        namespaces,
        &a.namespace,
        &a.pod,
        a.container.as_deref(),
    )?;
    match a.argv.first() {
        None => return Err(invalid("`argv` is empty: name the program to run")),
        Some(p) if p.is_empty() => return Err(invalid("`argv[0]` (the program) is empty")),
        Some(_) => {}
    }
    if a.argv.len() > MAX_ARGV_WORDS {
        return Err(invalid(format!(
            "`argv` has {} words, more than {MAX_ARGV_WORDS}",
            a.argv.len()
        )));
    }
    let bytes: usize = a.argv.iter().map(String::len).sum();
    if bytes > MAX_ARGV_BYTES {
        return Err(invalid(format!(
            "`argv` is {bytes} bytes, more than {MAX_ARGV_BYTES}"
        )));
    }
    if a.argv.iter().any(|w| w.contains('\0')) {
        return Err(invalid("`argv` holds a NUL character"));
    }
    let timeout = match a.timeout_seconds {
        Some(s) if !(1..=MAX_TIMEOUT_SECONDS).contains(&s) => {
            return Err(invalid(format!(
                "`timeout_seconds` must be between 1 and {MAX_TIMEOUT_SECONDS}"
            )));
        }
        s => s.map(Duration::from_secs),
    };
    let line = quoted(&a.argv);
    Ok(Plan {
        requests: vec![target.request(connection, "k8s:exec", &line)],
        review: target.review(
            format!("run `{line}` in {}", target.place()),
            "exec",
            line.clone(),
        ),
        read_only: false,
        prepared: wrap(Prepared {
            target,
            argv: a.argv,
            timeout,
        }),
    })
}

/// What one run gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit code; None when the command was ended at the byte cap.
    pub exit_code: Option<i64>,
    /// Standard output (at most the cap with stderr).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The output reached the cap; the command was ended there.
    pub truncated: bool,
}

/// Run the argv; the stream is closed (ending the command) when this
/// returns or is dropped.
pub async fn run(
    client: &kube::Client,
    token: &Secret,
    conn_timeout: Duration,
    p: &Prepared,
    limits: &ExecLimits,
) -> Result<ToolOutput, ExecuteError> {
    let started = Instant::now();
    let own = p.timeout.map_or(conn_timeout, |t| t.min(conn_timeout));
    let budget = limits.timeout_within(own);
    let cap = limits.bytes_within(MAX_OUTPUT_BYTES);
    let work = attach_and_read(client, token, p, cap);
    // When the budget or the cancellation wins, `work` is dropped with the
    // attached process: its WebSocket closes, and so does the command.
    let out = tokio::select! {
        r = work => r?,
        e = limits.stopped(started, Some(budget)) => return Err(e),
    };
    let text = |b: &[u8]| crate::logs::utf8_prefix(b, out.truncated);
    Ok(ToolOutput {
        value: json!({
            "exit_code": out.exit_code,
            "stdout": text(&out.stdout),
            "stderr": text(&out.stderr),
            "truncated": out.truncated,
        }),
        items: None,
        item_list: None,
        truncated: out.truncated,
        field_origins: vec![],
        item_guards: vec![],
        recording: None,
    })
}

async fn attach_and_read(
    client: &kube::Client,
    token: &Secret,
    p: &Prepared,
    cap: usize,
) -> Result<Output, ExecuteError> {
    let api: Api<Pod> = Api::namespaced(client.clone(), &p.target.namespace);
    let ap = AttachParams {
        container: p.target.container.clone(),
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
        max_stdout_buf_size: Some(PIPE_BYTES),
        max_stderr_buf_size: Some(PIPE_BYTES),
        ..AttachParams::default()
    };
    let mut process = api
        .exec(&p.target.pod, p.argv.iter().map(String::as_str), &ap)
        .await
        .map_err(|e| client::target_error(e, token))?;
    let (Some(stdout), Some(stderr), Some(status)) =
        (process.stdout(), process.stderr(), process.take_status())
    else {
        return Err(ExecuteError::Other(
            "the exec stream has no stdout, stderr or status".into(),
        ));
    };
    let broke = |e: std::io::Error| {
        ExecuteError::Unavailable(client::scrub(format!("the exec stream broke: {e}"), token))
    };
    let (stdout, stderr, truncated) = read_both(stdout, stderr, cap).await.map_err(broke)?;
    if truncated {
        // Stop here: dropping the process closes the stream, which ends
        // the command; its exit code is never known.
        drop(process);
        return Ok(Output {
            exit_code: None,
            stdout,
            stderr,
            truncated,
        });
    }
    let exit_code = match status.await {
        Some(s) => exit_code(&s).map_err(|m| ExecuteError::Target(client::scrub(m, token)))?,
        None => {
            let why = match process.join().await {
                Ok(()) => "the stream closed".to_string(),
                Err(e) => e.to_string(),
            };
            return Err(ExecuteError::Unavailable(client::scrub(
                format!("the exec stream ended without an exit status ({why})"),
                token,
            )));
        }
    };
    Ok(Output {
        exit_code: Some(exit_code),
        stdout,
        stderr,
        truncated: false,
    })
}

/// Read stdout and stderr side by side until both end, or until together
/// they pass `cap` bytes (then true, with exactly `cap` bytes kept).
pub async fn read_both<O, E>(
    mut out: O,
    mut err: E,
    cap: usize,
) -> std::io::Result<(Vec<u8>, Vec<u8>, bool)>
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let (mut o, mut e) = (Vec::new(), Vec::new());
    let (mut o_open, mut e_open) = (true, true);
    let (mut ob, mut eb) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    while o_open || e_open {
        // `read` is cancel-safe: the branch that loses loses no bytes.
        let grew = tokio::select! {
            r = out.read(&mut ob), if o_open => match r? {
                0 => { o_open = false; None }
                n => { o.extend_from_slice(&ob[..n]); Some(true) }
            },
            r = err.read(&mut eb), if e_open => match r? {
                0 => { e_open = false; None }
                n => { e.extend_from_slice(&eb[..n]); Some(false) }
            },
        };
        let total = o.len() + e.len();
        if let Some(was_out) = grew
            && total > cap
        {
            // The total was within the cap before this read: trim what it
            // added down to the cap.
            let over = total - cap;
            let last = if was_out { &mut o } else { &mut e };
            last.truncate(last.len() - over);
            return Ok((o, e, true));
        }
    }
    Ok((o, e, false))
}

/// The exit code a status-channel `Status` reports: `Success` is 0;
/// `NonZeroExitCode` carries the code in its `ExitCode` cause. Anything
/// else (the container is gone, the program does not exist) is an error
/// with the kubelet's message.
pub fn exit_code(s: &Status) -> Result<i64, String> {
    let message = s.message.as_deref().unwrap_or("");
    if s.status.as_deref() == Some("Success") {
        return Ok(0);
    }
    if s.reason.as_deref() == Some("NonZeroExitCode") {
        let code = s
            .details
            .as_ref()
            .and_then(|d| d.causes.as_ref())
            .and_then(|c| c.iter().find(|c| c.reason.as_deref() == Some("ExitCode")))
            .and_then(|c| c.message.as_deref()?.trim().parse::<i64>().ok());
        return code
            .ok_or_else(|| format!("the command failed without a readable exit code: {message}"));
    }
    Err(format!("the command could not run: {message}"))
}

#[cfg(test)]
mod tests;
