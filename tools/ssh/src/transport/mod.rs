//! SSH transport: authenticated russh sessions to pinned hosts, pooled per
//! connection, that run one already-quoted command line per call.
//!
//! What it guarantees:
//! - The server's host key is checked against a pin (one public key line, or
//!   a known_hosts file with hashed entries and `[host]:port`) before any
//!   credential is offered; a mismatch, a `@revoked` key or a host missing
//!   from known_hosts is refused, naming the fingerprints. There is no
//!   trust-on-first-use, ever.
//! - Output is capped over stdout + stderr together; a timeout, a
//!   cancellation or the cap ends the remote command (the channel `signal`
//!   request, `TERM` then `KILL`, then the channel is closed), so nothing is
//!   left running on the host. No pty is allocated: stdout and stderr stay
//!   apart.
//! - Private keys appear in no error and no `Debug` output.
//!
//! What it does not do: decide what may run (the caller has analysed and
//! quoted the command line) or mask output.
//!
//! Modules: [`pin`] (host key pins and their check), [`known_hosts`] (lookup
//! in a known_hosts file), [`key`] (client credentials), `connect` (one
//! authenticated session), `pool` (sessions and channels per connection),
//! `exec` (one command on one channel, and how it is ended).

mod connect;
mod exec;
pub mod key;
pub mod known_hosts;
pub mod pin;
mod pool;

#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use exec::TERM_GRACE;
pub use key::ClientKey;
pub use pin::HostKeyPin;
pub use pool::{CHANNELS_PER_SESSION, PoolStats, SshPool};

/// Where and how to reach one host: address, login, credential and pin.
#[derive(Debug, Clone)]
pub struct HostSpec {
    /// Host name or IP address.
    pub host: String,
    /// TCP port (22 usually).
    pub port: u16,
    /// Remote login.
    pub user: String,
    /// The server-held credential (never shown to agents).
    pub key: ClientKey,
    /// What the server's host key must be.
    pub pin: HostKeyPin,
    /// Bound on TCP connect + key exchange + authentication.
    pub connect_timeout: Duration,
}

impl HostSpec {
    /// `host:port`, as errors name the host.
    pub fn label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A progress callback: called with each kept piece of output.
pub type ChunkSink = Box<dyn FnMut(&OutputChunk) + Send>;

/// One command to run.
pub struct ExecRequest {
    /// The command line, already quoted by the caller; sent as the `exec`
    /// request's command (the remote login shell interprets it).
    pub command_line: String,
    /// Bytes written to the command's stdin; EOF is sent after them (and
    /// at once when `None`).
    pub stdin: Option<Vec<u8>>,
    /// Cap on stdout + stderr together; past it the command is ended and
    /// the outcome is `truncated`.
    pub max_output_bytes: usize,
    /// Deadline for the whole call (connecting included); past it the
    /// command is ended and the call fails with [`TransportError::Timeout`].
    pub timeout: Duration,
    /// Cancelling ends the command and fails the call with
    /// [`TransportError::Cancelled`].
    pub cancel: CancellationToken,
    /// Called with each kept piece of output as it arrives (progress).
    pub on_chunk: Option<ChunkSink>,
}

impl ExecRequest {
    /// A request with no stdin, no progress callback and a fresh token.
    pub fn new(
        command_line: impl Into<String>,
        max_output_bytes: usize,
        timeout: Duration,
    ) -> Self {
        ExecRequest {
            command_line: command_line.into(),
            stdin: None,
            max_output_bytes,
            timeout,
            cancel: CancellationToken::new(),
            on_chunk: None,
        }
    }
}

impl fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecRequest")
            .field("command_line", &self.command_line)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("max_output_bytes", &self.max_output_bytes)
            .field("timeout", &self.timeout)
            .field("cancelled", &self.cancel.is_cancelled())
            .field("on_chunk", &self.on_chunk.is_some())
            .finish()
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The command's stdout (channel data).
    Stdout,
    /// The command's stderr (extended data, type 1).
    Stderr,
}

/// A piece of kept output with its arrival time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// Time since the call started.
    pub at: Duration,
    /// The stream.
    pub stream: Stream,
    /// The bytes (possibly cut mid-character at the cap).
    pub data: Vec<u8>,
}

/// What a command did. A non-zero exit is an outcome, not an error.
#[derive(Debug, Clone, Default)]
pub struct ExecOutcome {
    /// The exit status, when the command exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it (`TERM`, `KILL`, ...), when one did.
    pub exit_signal: Option<String>,
    /// Kept stdout.
    pub stdout: Vec<u8>,
    /// Kept stderr.
    pub stderr: Vec<u8>,
    /// True when output went past the cap: the rest was dropped and the
    /// command ended (as a closed pipe would).
    pub truncated: bool,
    /// Wall time of the call.
    pub duration: Duration,
    /// The kept output with timing (for recordings), within the cap.
    pub chunks: Vec<OutputChunk>,
}

/// Why a call failed. None of these carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The server presented a host key other than the pinned one(s).
    #[error(
        "host key mismatch for {host}: expected {expected_fingerprint}, the server presented {presented_fingerprint}; connection refused"
    )]
    HostKeyMismatch {
        /// `host:port`.
        host: String,
        /// Fingerprint(s) of the pinned key(s) (`SHA256:...`, comma-separated).
        expected_fingerprint: String,
        /// Fingerprint of the key the server presented.
        presented_fingerprint: String,
    },
    /// The host has no entry in the known_hosts file.
    #[error(
        "{host} is not in known_hosts file {known_hosts} (the server presented {presented_fingerprint}); connection refused (no trust on first use)"
    )]
    UnknownHost {
        /// `host:port`.
        host: String,
        /// The known_hosts file searched.
        known_hosts: String,
        /// Fingerprint of the key the server presented.
        presented_fingerprint: String,
    },
    /// The presented key is marked `@revoked` in the known_hosts file.
    #[error(
        "the host key of {host} ({fingerprint}) is marked @revoked in {known_hosts}; connection refused"
    )]
    HostKeyRevoked {
        /// `host:port`.
        host: String,
        /// The known_hosts file.
        known_hosts: String,
        /// Fingerprint of the revoked key.
        fingerprint: String,
    },
    /// The server refused the credential (or the agent could not sign).
    #[error("SSH authentication failed: {0}")]
    Auth(String),
    /// No SSH session could be set up (network, handshake, connect timeout).
    #[error("cannot reach SSH server {0}")]
    Unreachable(String),
    /// The call's deadline passed; the remote command was ended.
    #[error("the SSH command timed out after {ms} ms and was ended")]
    Timeout {
        /// The deadline, in milliseconds.
        ms: u64,
    },
    /// The call was cancelled; the remote command was ended.
    #[error("the SSH command was cancelled and ended")]
    Cancelled,
    /// The session or channel failed (refused, lost mid-command).
    #[error("SSH channel error: {0}")]
    Channel(String),
    /// The pin or credential given is unusable.
    #[error("SSH configuration error: {0}")]
    Config(String),
}
