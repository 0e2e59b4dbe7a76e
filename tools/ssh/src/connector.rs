//! The SSH connector: the one [`Connector`] of the family. Analysis turns
//! an `ssh_exec` call into the words that will run (or a raw shell call)
//! and one `ssh:exec` / `ssh:shell` request on the Connection with the
//! contract's context; execution sends exactly the analysed command line
//! over a pooled, authenticated session to the pinned host, within the
//! byte and time caps, reports progress while it runs, and returns the
//! result with its recording.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use gateway_core::connector::{
    AnalysisError, ConnectionInfo, Connector, ExecLimits, ExecuteError, Plan, ToolOutput, ToolSpec,
};
use gateway_core::review::{ReviewItem, ReviewSummary, ReviewText, TextPart};
use serde_json::Value;
use tokio::time::Instant;

use crate::command::{self, CommandError, Invocation};
use crate::config::{CONNECT_TIMEOUT, HostKeySource, KeySource, SshConfig};
use crate::output;
use crate::tool;
use crate::transport::{ClientKey, ExecRequest, HostKeyPin, HostSpec, SshPool, TransportError};
use crate::vocabulary;

/// How often a running command reports progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// One SSH connection (one host).
pub struct SshConnector {
    info: ConnectionInfo,
    cfg: SshConfig,
    pool: SshPool,
}

/// What analysis hands execution.
#[derive(Debug)]
struct Prepared {
    /// Exactly what the exec request carries.
    remote_command: String,
    /// What reviewers and the recording show.
    line: String,
    stdin: Option<String>,
    timeout: Option<Duration>,
}

impl SshConnector {
    /// A connector for `cfg`; the key and the host-key pin are checked now,
    /// the host is contacted on the first call.
    pub fn new(cfg: SshConfig) -> Result<Self, String> {
        let ctx = |m: String| format!("connection `{}` (ssh): {m}", cfg.name);
        let key = match &cfg.key {
            KeySource::Private { pem, passphrase } => {
                ClientKey::from_openssh(pem.expose(), passphrase.as_ref().map(|p| p.expose()))
                    .map_err(|e| ctx(format!("`private_key`: {e}")))?
            }
            KeySource::Agent(path) => ClientKey::Agent(path.clone()),
        };
        let pin = match &cfg.host_key {
            HostKeySource::Line(line) => {
                HostKeyPin::parse_line(line).map_err(|e| ctx(format!("`host_key`: {e}")))?
            }
            HostKeySource::KnownHosts(path) => {
                if !path.is_file() {
                    return Err(ctx(format!(
                        "`known_hosts` {} is not a readable file",
                        path.display()
                    )));
                }
                HostKeyPin::KnownHosts(path.clone())
            }
        };
        let spec = HostSpec {
            host: cfg.host.clone(),
            port: cfg.port,
            user: cfg.user.clone(),
            key,
            pin,
            connect_timeout: CONNECT_TIMEOUT.min(cfg.timeout),
        };
        Ok(SshConnector {
            info: ConnectionInfo {
                name: cfg.name.clone(),
                kind: "ssh".into(),
                description: cfg.description.clone(),
            },
            pool: SshPool::new(spec, cfg.max_sessions),
            cfg,
        })
    }
}

/// The review text of what runs: for an argv, the program as code and
/// every argument as its own literal (masked on its own); a raw shell call
/// is one code part.
fn review_text(inv: &Invocation, line: &str) -> ReviewText {
    match inv {
        Invocation::Shell(_) => ReviewText::code(line),
        Invocation::Argv(words) => {
            let mut parts = Vec::with_capacity(words.len() * 2);
            for (i, w) in words.iter().enumerate() {
                let quoted = command::quote_line(std::slice::from_ref(w));
                if i == 0 {
                    parts.push(TextPart::Code(quoted));
                } else {
                    parts.push(TextPart::Code(" ".into()));
                    parts.push(TextPart::Literal(quoted));
                }
            }
            ReviewText { parts }
        }
    }
}

fn analysis_error(e: CommandError) -> AnalysisError {
    AnalysisError::InvalidArguments(e.to_string())
}

/// A transport failure as the pipeline reports it (no credential in any).
fn execute_error(e: TransportError) -> ExecuteError {
    match e {
        TransportError::Timeout { ms } => ExecuteError::Timeout(ms),
        TransportError::Cancelled => ExecuteError::Cancelled,
        TransportError::Channel(m) => ExecuteError::Target(m),
        TransportError::Config(m) => ExecuteError::Other(m),
        other => ExecuteError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Connector for SshConnector {
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    fn tools(&self) -> Vec<ToolSpec> {
        vec![tool::spec()]
    }

    fn analyse(&self, tool_name: &str, args: &Value) -> Result<Plan, AnalysisError> {
        if tool_name != "ssh_exec" {
            return Err(AnalysisError::UnknownTool(tool_name.into()));
        }
        let a = tool::parse(args)?;
        let inv = command::invocation(a.argv, a.command).map_err(analysis_error)?;
        let facts = command::analyse(&inv).map_err(analysis_error)?;
        let request = vocabulary::request(&self.info.name, &facts);
        let line = facts.argv_line.clone();
        let place = format!("{}@{}", self.cfg.user, self.info.name);
        let (label, title) = if facts.raw_shell {
            ("shell", format!("raw shell call on {place}: {line}"))
        } else {
            ("exec", format!("run `{line}` on {place}"))
        };
        let connection = format!("Connection {}", self.info.name);
        let review = ReviewSummary {
            title,
            runs: vec![ReviewItem {
                label: label.into(),
                resources: vec![connection.clone()],
                text: review_text(&inv, &line),
            }],
            resources: vec![connection],
            diff: None,
        };
        let prepared: Box<dyn Any + Send + Sync> = Box::new(Prepared {
            remote_command: command::remote_command(&inv),
            line,
            stdin: a.stdin,
            timeout: a.timeout_seconds.map(Duration::from_secs),
        });
        Ok(Plan {
            requests: vec![request],
            review,
            read_only: false,
            prepared,
        })
    }

    async fn execute(&self, plan: &Plan, limits: ExecLimits) -> Result<ToolOutput, ExecuteError> {
        let p = plan
            .prepared
            .downcast_ref::<Prepared>()
            .ok_or_else(|| ExecuteError::Other("plan was not made by the SSH connector".into()))?;
        limits.check()?;
        let own = p
            .timeout
            .map_or(self.cfg.timeout, |t| t.min(self.cfg.timeout));
        let budget = limits.timeout_within(own);
        let cap = limits.bytes_within(self.cfg.max_output_bytes);
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = bytes.clone();
        let request = ExecRequest {
            command_line: p.remote_command.clone(),
            stdin: p.stdin.clone().map(String::into_bytes),
            max_output_bytes: cap,
            timeout: budget,
            cancel: limits.cancel.clone(),
            on_chunk: Some(Box::new(move |c| {
                counted.fetch_add(c.data.len() as u64, Ordering::Relaxed);
            })),
        };
        let started = Instant::now();
        let run = self.pool.exec(request);
        tokio::pin!(run);
        let mut tick = tokio::time::interval_at(started + PROGRESS_EVERY, PROGRESS_EVERY);
        let outcome = loop {
            tokio::select! {
                r = &mut run => break r,
                _ = tick.tick() => {
                    if let Some(progress) = &limits.progress {
                        progress.report(format!(
                            "running on {} for {} s, {} bytes of output so far",
                            self.info.name,
                            started.elapsed().as_secs(),
                            bytes.load(Ordering::Relaxed)
                        ));
                    }
                }
            }
        }
        .map_err(execute_error)?;
        let title = format!("ssh_exec on {}", self.info.name);
        Ok(output::tool_output(outcome, &p.line, &title, started_unix))
    }
}
