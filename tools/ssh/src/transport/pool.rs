//! Sessions and channels for one connection: calls share authenticated
//! sessions as multiplexed channels, up to `max_sessions` sessions.
//!
//! A session carries at most [`CHANNELS_PER_SESSION`] channels at once
//! (OpenSSH's `MaxSessions` default); a server that refuses a channel
//! earlier lowers that session's limit to what it accepted. When every
//! session is full a new one is connected (one connect at a time), and at
//! `max_sessions` callers wait for a channel to free up. Sessions that died
//! (server restart, network) are dropped and replaced on the next call; a
//! freshly connected session that fails is an error, so a call reconnects
//! at most once per dead session it meets and never loops.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use russh::Channel;
use russh::client::Msg;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::connect::{self, Session};
use super::{ExecOutcome, ExecRequest, HostSpec, TransportError};

/// Channels per session before another session is opened (OpenSSH's
/// default `MaxSessions`).
pub const CHANNELS_PER_SESSION: usize = 10;

/// Callers waiting for a free channel look again at least this often.
const RECHECK: Duration = Duration::from_millis(500);

/// The pooled sessions of one connection. Cheap to clone (shared).
#[derive(Clone)]
pub struct SshPool {
    inner: Arc<Inner>,
}

struct Inner {
    spec: HostSpec,
    max_sessions: usize,
    sessions: Mutex<Vec<Arc<Conn>>>,
    /// Serialises connects, so a burst of calls opens sessions one by one
    /// (and stays under sshd's `MaxStartups`).
    connecting: tokio::sync::Mutex<()>,
    /// Woken when a channel slot is released.
    freed: Notify,
    connects: AtomicU64,
}

/// One authenticated session and its channel accounting.
struct Conn {
    id: u64,
    session: Session,
    /// Channels reserved or open.
    open: AtomicUsize,
    /// Channels the server accepted and that are not released yet.
    established: AtomicUsize,
    /// Channels this session may carry.
    cap: AtomicUsize,
    dead: AtomicBool,
}

impl Conn {
    fn usable(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && !self.session.is_closed()
    }
}

/// A reserved channel on a session; released (and waiters woken) on drop.
pub(crate) struct Slot {
    conn: Arc<Conn>,
    pool: Arc<Inner>,
    established: bool,
}

impl Slot {
    /// The session this slot is on failed: drop it from the pool.
    pub(crate) fn mark_dead(&self) {
        self.conn.dead.store(true, Ordering::Release);
    }
    /// The session's id (one per connect).
    pub(crate) fn session_id(&self) -> u64 {
        self.conn.id
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conn.open.fetch_sub(1, Ordering::AcqRel);
        if self.established {
            self.conn.established.fetch_sub(1, Ordering::AcqRel);
        }
        self.pool.freed.notify_waiters();
    }
}

/// Counters for probes and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Sessions connected (and authenticated) since the pool was made.
    pub connects: u64,
    /// Live sessions held now.
    pub sessions: usize,
    /// Channels reserved or open now.
    pub channels: usize,
}

impl SshPool {
    /// A pool for `spec` holding up to `max_sessions` sessions (at least
    /// one). Nothing connects until the first call.
    pub fn new(spec: HostSpec, max_sessions: usize) -> Self {
        SshPool {
            inner: Arc::new(Inner {
                spec,
                max_sessions: max_sessions.max(1),
                sessions: Mutex::new(Vec::new()),
                connecting: tokio::sync::Mutex::new(()),
                freed: Notify::new(),
                connects: AtomicU64::new(0),
            }),
        }
    }

    /// The host this pool reaches.
    pub fn spec(&self) -> &HostSpec {
        &self.inner.spec
    }

    /// Run one command line on a pooled session (see [`ExecRequest`]).
    pub async fn exec(&self, req: ExecRequest) -> Result<ExecOutcome, TransportError> {
        super::exec::run(self, req).await
    }

    /// Connect, check the host key and authenticate now (a fresh session,
    /// kept for later calls when the pool has room).
    pub async fn check(&self) -> Result<(), TransportError> {
        let session = connect::open(&self.inner.spec).await?;
        let id = self.inner.connects.fetch_add(1, Ordering::AcqRel) + 1;
        let mut sessions = self.inner.lock();
        if sessions.len() < self.inner.max_sessions {
            sessions.push(Arc::new(Conn::new(id, session, 0)));
        }
        Ok(())
    }

    /// Counters: connects so far, live sessions, channels in use.
    pub fn stats(&self) -> PoolStats {
        let mut sessions = self.inner.lock();
        sessions.retain(|c| c.usable());
        PoolStats {
            connects: self.inner.connects.load(Ordering::Acquire),
            sessions: sessions.len(),
            channels: sessions
                .iter()
                .map(|c| c.open.load(Ordering::Acquire))
                .sum(),
        }
    }

    /// Disconnect every idle session (sessions with channels in use close
    /// when their calls end and the pool is dropped).
    pub async fn close_idle(&self) {
        let idle: Vec<Arc<Conn>> = {
            let mut sessions = self.inner.lock();
            let (idle, busy) = sessions
                .drain(..)
                .partition(|c| c.open.load(Ordering::Acquire) == 0);
            *sessions = busy;
            idle
        };
        for c in idle {
            let _ = c
                .session
                .disconnect(russh::Disconnect::ByApplication, "", "en")
                .await;
        }
    }

    /// A channel on a live session, with its slot, unless `cancel` or
    /// `deadline` comes first (then `Cancelled` or `timeout`). Dead sessions
    /// met on the way are dropped; a fresh session that cannot open a
    /// channel is an error. Nothing runs remotely yet, so giving up needs no
    /// clean-up, except that a session left with an unanswered channel open
    /// is dropped (the server frees the channel when the connection closes).
    pub(crate) async fn open_channel(
        &self,
        cancel: &CancellationToken,
        deadline: tokio::time::Instant,
        timeout: &TransportError,
    ) -> Result<(Channel<Msg>, Slot), TransportError> {
        let label = self.inner.spec.label();
        let mut refusals = 0;
        // Each refusal lowers a session's limit; this bounds the retries
        // should a server refuse channels erratically.
        let max_refusals = 2 * self.inner.max_sessions * CHANNELS_PER_SESSION;
        loop {
            let (slot, fresh) = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(TransportError::Cancelled),
                _ = tokio::time::sleep_until(deadline) => return Err(timeout.clone()),
                r = self.reserve() => r?,
            };
            let opened = tokio::select! {
                biased;
                _ = cancel.cancelled() => {
                    slot.mark_dead();
                    return Err(TransportError::Cancelled);
                }
                _ = tokio::time::sleep_until(deadline) => {
                    slot.mark_dead();
                    return Err(timeout.clone());
                }
                r = slot.conn.session.channel_open_session() => r,
            };
            match opened {
                Ok(channel) => {
                    let mut slot = slot;
                    slot.conn.established.fetch_add(1, Ordering::AcqRel);
                    slot.established = true;
                    return Ok((channel, slot));
                }
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    // Refused with nothing else open or opening on the
                    // session: the server refuses channels outright.
                    refusals += 1;
                    if slot.conn.open.load(Ordering::Acquire) <= 1 || refusals > max_refusals {
                        return Err(TransportError::Channel(format!(
                            "{label} refused a session channel ({reason:?})"
                        )));
                    }
                    // The server's MaxSessions is lower than assumed: this
                    // session carries what it has open now.
                    let established = slot.conn.established.load(Ordering::Acquire).max(1);
                    slot.conn.cap.fetch_min(established, Ordering::AcqRel);
                    tracing::debug!(host = %label, cap = established, "SSH server refused a channel; lowering this session's channel limit");
                }
                Err(e) => {
                    slot.mark_dead();
                    if fresh {
                        return Err(TransportError::Channel(format!(
                            "{label}: cannot open a channel on a new session: {e}"
                        )));
                    }
                    tracing::debug!(host = %label, session = slot.conn.id, error = %e, "SSH session is dead; reconnecting");
                }
            }
        }
    }

    /// Reserve a channel slot: on the least busy live session with room,
    /// else on a new session, else wait for one to free up. `true` when
    /// the session was connected for this call.
    async fn reserve(&self) -> Result<(Slot, bool), TransportError> {
        let inner = &self.inner;
        loop {
            let notified = inner.freed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_reserve() {
                Reserve::Got(slot) => return Ok((slot, false)),
                Reserve::Full => {
                    let _ = tokio::time::timeout(RECHECK, notified).await;
                    continue;
                }
                Reserve::Room => {}
            }
            let _connecting = inner.connecting.lock().await;
            // Another caller may have connected while this one waited.
            match self.try_reserve() {
                Reserve::Got(slot) => return Ok((slot, false)),
                Reserve::Full => {
                    drop(_connecting);
                    let _ = tokio::time::timeout(RECHECK, notified).await;
                    continue;
                }
                Reserve::Room => {}
            }
            let session = connect::open(&inner.spec).await?;
            let id = inner.connects.fetch_add(1, Ordering::AcqRel) + 1;
            let conn = Arc::new(Conn::new(id, session, 1));
            inner.lock().push(conn.clone());
            return Ok((
                Slot {
                    conn,
                    pool: inner.clone(),
                    established: false,
                },
                true,
            ));
        }
    }

    fn try_reserve(&self) -> Reserve {
        let mut sessions = self.inner.lock();
        sessions.retain(|c| c.usable());
        let best = sessions
            .iter()
            .filter(|c| c.open.load(Ordering::Acquire) < c.cap.load(Ordering::Acquire))
            .min_by_key(|c| c.open.load(Ordering::Acquire));
        if let Some(conn) = best {
            conn.open.fetch_add(1, Ordering::AcqRel);
            return Reserve::Got(Slot {
                conn: conn.clone(),
                pool: self.inner.clone(),
                established: false,
            });
        }
        if sessions.len() < self.inner.max_sessions {
            Reserve::Room
        } else {
            Reserve::Full
        }
    }
}

enum Reserve {
    Got(Slot),
    /// No session has a free channel, but another session may be opened.
    Room,
    /// No free channel and no room for another session.
    Full,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Conn>>> {
        // The list stays consistent even if a holder panicked.
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Conn {
    fn new(id: u64, session: Session, open: usize) -> Self {
        Conn {
            id,
            session,
            open: AtomicUsize::new(open),
            established: AtomicUsize::new(0),
            cap: AtomicUsize::new(CHANNELS_PER_SESSION),
            dead: AtomicBool::new(false),
        }
    }
}

impl std::fmt::Debug for SshPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshPool")
            .field("host", &self.inner.spec.label())
            .field("user", &self.inner.spec.user)
            .field("max_sessions", &self.inner.max_sessions)
            .field("stats", &self.stats())
            .finish()
    }
}
