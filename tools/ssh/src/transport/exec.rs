//! One command on one channel: `exec` (no pty, so stdout and stderr stay
//! apart), stdin written then EOF, output kept up to the cap with timing,
//! and the remote command ended on timeout, cancellation or the cap.
//!
//! Ending a command: OpenSSH's sshd answers the channel `signal` request
//! with `killpg` on the session's process group (its child runs the command
//! under `setsid`), so `TERM`, then `KILL` after [`TERM_GRACE`], reaches the
//! command and whatever it started in its group; then the channel is
//! closed. Closing alone would not do: a command without a terminal
//! outlives its channel (sshd only closes its pipes); measured on OpenSSH
//! 9.2, where `sleep` stayed after the channel closed without a signal.
//!
//! Limits (sshd's, not this client's): sshd signals the group only while
//! the command's first process lives. A command whose shell has exited but
//! left a background process holding stdout (`sleep 300 &`) keeps the
//! channel open until the deadline, and that process is not ended; nor is
//! one that left the group (`setsid`, daemons). Policy sees `&` as a raw
//! shell call (`ssh:shell`). No pty is used to catch these: it would merge
//! stderr into stdout.

use std::time::{Duration, Instant};

use russh::client::Msg;
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf, Sig};

use super::pool::{Slot, SshPool};
use super::{ChunkSink, ExecOutcome, ExecRequest, OutputChunk, Stream, TransportError};

/// Time a command gets to exit after `TERM` before `KILL`.
pub const TERM_GRACE: Duration = Duration::from_millis(1000);
/// Time allowed for the exit report after `KILL`.
const KILL_GRACE: Duration = Duration::from_millis(1000);
/// Time allowed for the server to close the channel after the command
/// ended (it sends what output is left first).
const CLOSE_GRACE: Duration = Duration::from_millis(1000);

/// Why the read loop stopped early.
enum Stop {
    Timeout,
    Cancelled,
    Capped,
}

/// Run `req` on a channel of `pool` (see [`SshPool::exec`]).
pub(crate) async fn run(
    pool: &SshPool,
    mut req: ExecRequest,
) -> Result<ExecOutcome, TransportError> {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + req.timeout;
    let timeout = TransportError::Timeout {
        ms: u64::try_from(req.timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let label = pool.spec().label();

    // Until the exec request is sent nothing runs remotely: giving up here
    // needs no clean-up. A session that dies between opening the channel
    // and sending the request is replaced once.
    let mut attempt = 0;
    let (channel, slot) = loop {
        attempt += 1;
        let (channel, slot) = pool.open_channel(&req.cancel, deadline, &timeout).await?;
        match channel.exec(true, req.command_line.as_bytes()).await {
            Ok(()) => break (channel, slot),
            Err(e) => {
                slot.mark_dead();
                if attempt >= 2 {
                    return Err(TransportError::Channel(format!(
                        "{label}: cannot send the command: {e}"
                    )));
                }
            }
        }
    };
    tracing::trace!(host = %label, session = slot.session_id(), "SSH exec sent");

    let (mut rd, wr) = channel.split();
    let mut run = Run {
        out: ExecOutcome::default(),
        kept: 0,
        max: req.max_output_bytes,
        started,
        on_chunk: req.on_chunk.take(),
        accepted: false,
        exited: false,
        closed: false,
    };
    let stdin = req.stdin.take().unwrap_or_default();
    let feed = async {
        if !stdin.is_empty() {
            wr.data_bytes(stdin).await?;
        }
        wr.eof().await
    };
    tokio::pin!(feed);
    let mut fed = false;

    let stop = loop {
        tokio::select! {
            biased;
            _ = req.cancel.cancelled() => break Some(Stop::Cancelled),
            _ = tokio::time::sleep_until(deadline) => break Some(Stop::Timeout),
            // A command that exits without reading its stdin makes this
            // fail; that is its business, not an error of the call.
            _ = &mut feed, if !fed => fed = true,
            msg = rd.wait() => match msg {
                None => break None,
                Some(msg) => match run.take(msg) {
                    Ok(Flow::More) => {}
                    Ok(Flow::Done) => break None,
                    Ok(Flow::Capped) => break Some(Stop::Capped),
                    Err(e) => {
                        let _ = wr.close().await;
                        return Err(TransportError::Channel(format!("{label}: {e}")));
                    }
                },
            },
        }
    };

    match stop {
        None => {
            if !run.closed && !run.exited {
                // The session went away under the command.
                slot.mark_dead();
                return Err(TransportError::Channel(format!(
                    "{label}: the connection was lost while the command ran"
                )));
            }
            if !run.closed {
                let _ = wr.close().await;
            }
            run.out.duration = started.elapsed();
            Ok(run.out)
        }
        Some(stop) => {
            end_remote(&wr, &mut rd, &mut run, &slot).await;
            match stop {
                Stop::Timeout => Err(timeout),
                Stop::Cancelled => Err(TransportError::Cancelled),
                Stop::Capped => {
                    run.out.truncated = true;
                    run.out.duration = started.elapsed();
                    Ok(run.out)
                }
            }
        }
    }
}

/// End the remote command: `TERM`, then `KILL` if it has not exited
/// within the grace; then let the server close the channel (it does once
/// the output is drained), closing it here only if it does not.
///
/// Waiting for the server's close matters: russh forgets a channel closed
/// locally without forwarding the server's reply, and keeps its entry
/// until the session ends.
async fn end_remote(
    wr: &ChannelWriteHalf<Msg>,
    rd: &mut ChannelReadHalf,
    run: &mut Run,
    slot: &Slot,
) {
    if !run.exited && !run.closed {
        for (signal, grace) in [(Sig::TERM, TERM_GRACE), (Sig::KILL, KILL_GRACE)] {
            if wr.signal(signal).await.is_err() {
                slot.mark_dead();
                return;
            }
            if drain_until(rd, run, grace, |r| r.exited || r.closed).await {
                break;
            }
        }
    }
    if !run.closed && run.exited {
        drain_until(rd, run, CLOSE_GRACE, |r| r.closed).await;
    }
    if !run.closed && wr.close().await.is_err() {
        slot.mark_dead();
    }
}

/// Read (and drop) channel messages until `done` holds or `grace` passes;
/// whether `done` held.
async fn drain_until(
    rd: &mut ChannelReadHalf,
    run: &mut Run,
    grace: Duration,
    done: impl Fn(&Run) -> bool,
) -> bool {
    let until = tokio::time::Instant::now() + grace;
    while !done(run) {
        match tokio::time::timeout_at(until, rd.wait()).await {
            Err(_) => return false,
            Ok(None) => run.closed = true,
            Ok(Some(msg)) => run.note(msg),
        }
    }
    true
}

enum Flow {
    More,
    Done,
    Capped,
}

/// The state of one running command.
struct Run {
    out: ExecOutcome,
    kept: usize,
    max: usize,
    started: Instant,
    on_chunk: Option<ChunkSink>,
    /// The server accepted the exec request.
    accepted: bool,
    /// An exit status or signal arrived.
    exited: bool,
    /// The channel is closed.
    closed: bool,
}

impl Run {
    /// Handle one message of the running command.
    fn take(&mut self, msg: ChannelMsg) -> Result<Flow, &'static str> {
        let (stream, data) = match msg {
            ChannelMsg::Data { data } => (Stream::Stdout, data),
            ChannelMsg::ExtendedData { data, ext: 1 } => (Stream::Stderr, data),
            ChannelMsg::Failure if !self.accepted => {
                return Err("the server refused to run the command");
            }
            ChannelMsg::Close => {
                self.closed = true;
                return Ok(Flow::Done);
            }
            other => {
                self.note(other);
                return Ok(Flow::More);
            }
        };
        let room = self.max.saturating_sub(self.kept);
        let keep = data.len().min(room);
        if keep > 0 {
            let chunk = OutputChunk {
                at: self.started.elapsed(),
                stream,
                data: data[..keep].to_vec(),
            };
            match stream {
                Stream::Stdout => self.out.stdout.extend_from_slice(&chunk.data),
                Stream::Stderr => self.out.stderr.extend_from_slice(&chunk.data),
            }
            self.kept += keep;
            if let Some(f) = self.on_chunk.as_mut() {
                f(&chunk);
            }
            self.out.chunks.push(chunk);
        }
        Ok(if keep < data.len() {
            Flow::Capped
        } else {
            Flow::More
        })
    }

    /// Record status messages (output is dropped here: past the cap or
    /// while ending the command).
    fn note(&mut self, msg: ChannelMsg) {
        match msg {
            ChannelMsg::Success => self.accepted = true,
            ChannelMsg::ExitStatus { exit_status } => {
                self.exited = true;
                self.out.exit_code = Some(i32::try_from(exit_status).unwrap_or(i32::MAX));
            }
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.exited = true;
                self.out.exit_signal = Some(signal_label(&signal_name));
            }
            ChannelMsg::Close => self.closed = true,
            _ => {}
        }
    }
}

/// `TERM`, `KILL`, ... (RFC 4254 names, without `SIG`).
fn signal_label(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}
