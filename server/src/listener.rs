//! The HTTP listener: accepts TCP connections and serves each with hyper's
//! HTTP/1.1 within the abuse limits of `[server]`:
//!
//! - **Header-read timeout** (`header_timeout`): a connection whose request
//!   headers are not complete this long after it opened, or after its last
//!   response (the keep-alive idle time), is closed by hyper.
//! - **Body timeout** (`body_timeout`): a request body must have arrived
//!   whole this long after its headers; a body that trickles in ends in an
//!   error (the handler answers 400 and the connection closes).
//! - **Connection cap** (`max_connections`): at the cap, a new connection
//!   makes room by closing the oldest idle connection that never
//!   authenticated: first one that never completed a request, then one that
//!   only made unauthenticated requests (`/healthz`, the login page). A
//!   connection that authenticated (a bearer token or UI session accepted
//!   on it) is never closed for room; when every connection is one, or is
//!   busy, the new connection is closed at once. Either way descriptors
//!   stay bounded and a health check on a fresh connection is answered.
//!
//! At start the soft open-files limit is raised to the hard one; a cap the
//! limit cannot hold is lowered to fit (with a warning).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// Descriptors kept free of HTTP connections (the store, target
/// connections, JWKS fetches, logs).
const FD_RESERVE: u64 = 256;

/// How long accepting pauses after an error such as running out of
/// descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy)]
pub struct ListenLimits {
    /// Request headers must be complete within this.
    pub header_timeout: Duration,
    /// A request body must be complete within this after its headers.
    pub body_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// What a connection has shown so far; lower is shed first.
const NEW: u8 = 0;
const SERVED: u8 = 1;
const AUTHENTICATED: u8 = 2;

/// One open connection, as the registry sees it.
struct Conn {
    /// NEW, SERVED or AUTHENTICATED.
    class: AtomicU8,
    /// Requests being answered on it.
    busy: AtomicU32,
    /// Closes it (its task drops the socket).
    close: CancellationToken,
}

/// The open connections, by accept order.
struct Registry {
    conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next: AtomicU64,
    max: usize,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a new connection, closing an unauthenticated idle one if at
    /// the cap; `None`: no room (the caller drops the socket).
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        let mut conns = self.lock();
        if conns.len() >= self.max {
            let idle = |class: u8| {
                conns
                    .iter()
                    .find(|(_, c)| {
                        c.class.load(Ordering::Relaxed) == class
                            && c.busy.load(Ordering::Relaxed) == 0
                    })
                    .map(|(id, _)| *id)
            };
            let victim = idle(NEW).or_else(|| idle(SERVED))?;
            if let Some(c) = conns.remove(&victim) {
                c.close.cancel();
                crate::metrics::connection_shed();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            class: AtomicU8::new(NEW),
            busy: AtomicU32::new(0),
            close: CancellationToken::new(),
        });
        conns.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

tokio::task_local! {
    /// The connection of the request being served.
    static CONN: Arc<Conn>;
}

/// Mark the connection of the request being served as authenticated (it is
/// then never closed to make room). Called where a bearer token or UI
/// session is accepted; outside [`serve`] (a test router) it does nothing.
pub fn note_authenticated() {
    let _ = CONN.try_with(|c| c.class.store(AUTHENTICATED, Ordering::Relaxed));
}

/// Raise the soft open-files limit to the hard one and return the cap on
/// connections that fits it.
fn fit_to_fd_limit(max: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit");
            return max;
        }
    };
    let room = usize::try_from(limit.saturating_sub(FD_RESERVE).max(1)).unwrap_or(usize::MAX);
    if max > room {
        tracing::warn!(
            max_connections = max,
            open_files_limit = limit,
            serving = room,
            "server.max_connections does not fit the open-files limit (ulimit -n) with {FD_RESERVE} \
             descriptors to spare; serving at most {room} connections (raise the limit or lower the setting)"
        );
        room
    } else {
        max
    }
}

/// Serve `app` on `listener` until `shutdown` resolves, then stop accepting,
/// let open connections finish their requests, and return.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Registry {
        conns: Mutex::default(),
        next: AtomicU64::new(0),
        max: fit_to_fd_limit(limits.max_connections),
    });
    let stopping = CancellationToken::new();
    {
        let stopping = stopping.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopping.cancel();
        });
    }
    let tasks = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before it
                    // was accepted: pause a little, never spin.
                    tracing::debug!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stopping.cancelled() => break,
        };
        let Some((id, conn)) = registry.admit() else {
            crate::metrics::connection_refused();
            tracing::debug!(%peer, "connection refused: every connection is authenticated or busy");
            drop(tcp);
            continue;
        };
        tasks.spawn(serve_connection(
            tcp,
            peer,
            app.clone(),
            limits,
            conn,
            stopping.clone(),
            Guard(registry.clone(), id),
        ));
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
}

/// Removes a connection from the registry when its task ends.
struct Guard(Arc<Registry>, u64);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// Counts a request on its connection while it is answered.
struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ListenLimits,
    conn: Arc<Conn>,
    stopping: CancellationToken,
    _registered: Guard,
) {
    // Responses (SSE frames) go out in several writes: without TCP_NODELAY,
    // Nagle + delayed ACK add ~40 ms to every call.
    let _ = tcp.set_nodelay(true);
    let close = conn.close.clone();
    let on_conn = conn.clone();
    let service = tower::service_fn(move |mut req: http::Request<Incoming>| {
        // The peer address reaches handlers (refused authentications are
        // counted per source).
        req.extensions_mut().insert(ConnectInfo(peer));
        let conn = on_conn.clone();
        let _ = conn
            .class
            .compare_exchange(NEW, SERVED, Ordering::Relaxed, Ordering::Relaxed);
        conn.busy.fetch_add(1, Ordering::Relaxed);
        let busy = Busy(conn.clone());
        let app = app.clone();
        CONN.scope(conn, async move {
            let _busy = busy;
            let req = req.map(|b| Body::new(DeadlineBody::new(b, limits.body_timeout)));
            app.oneshot(req).await
        })
    });
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = http1.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
    tokio::pin!(served);
    tokio::select! {
        r = served.as_mut() => {
            if let Err(e) = r {
                tracing::trace!(%peer, error = %e, "connection ended");
            }
        }
        // Shed to make room: dropping the connection closes the socket.
        _ = close.cancelled() => {
            tracing::debug!(%peer, "closed an idle unauthenticated connection to make room");
        }
        _ = stopping.cancelled() => {
            served.as_mut().graceful_shutdown();
            let _ = served.await;
        }
    }
}

/// A request body that must be complete by a deadline: past it, reading
/// fails (a body trickled in a byte at a time holds no connection for long).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// The request body did not arrive within `server.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (server.body_timeout)")]
struct BodyTimeout(Duration);

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout(self.timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
