//! Opening PostgreSQL sessions through a [`FrameGuard`]: the socket is
//! connected here (tokio-postgres' own `connect` owns its socket and offers
//! no hook), then handed to `Config::connect_raw` with a TLS connector whose
//! plaintext is guarded too. Hosts, host addresses, ports, the connect
//! timeout, TCP keepalives and `TCP_NODELAY` follow tokio-postgres' rules;
//! `sslmode` is applied by `connect_raw` itself. `load_balance_hosts` is
//! not applied (hosts are tried in order; the first that accepts a
//! connection is used); `target_session_attrs` is refused when the
//! connection is configured.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use deadpool_postgres::Connect;
use futures::future::BoxFuture;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio_postgres::config::Host;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio_postgres::{Client, Config, Connection, Error};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::wire_guard::FrameGuard;

/// A connected socket: TCP or a Unix domain socket.
pub enum RawSocket {
    /// TCP.
    Tcp(TcpStream),
    /// A Unix domain socket (`host=/var/run/postgresql`).
    Unix(UnixStream),
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            RawSocket::Tcp($s) => $e,
            RawSocket::Unix($s) => $e,
        }
    };
}

impl AsyncRead for RawSocket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for RawSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// The socket as the driver sees it (guarded when not TLS).
pub type GuardedSocket = FrameGuard<RawSocket>;

type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<GuardedSocket>>::Stream;
type RustlsConnect = <MakeRustlsConnect as MakeTlsConnect<GuardedSocket>>::TlsConnect;

/// rustls with its plaintext guarded.
pub struct GuardedTls {
    inner: RustlsConnect,
    limit: usize,
}

impl TlsConnect<GuardedSocket> for GuardedTls {
    type Stream = FrameGuard<RustlsStream>;
    type Error = <RustlsConnect as TlsConnect<GuardedSocket>>::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Stream, Self::Error>> + Send>>;

    fn connect(self, stream: GuardedSocket) -> Self::Future {
        let limit = self.limit;
        let handshake = self.inner.connect(stream);
        Box::pin(async move { Ok(FrameGuard::framed(handshake.await?, limit)) })
    }
}

/// A guarded session and the future that drives it.
pub type GuardedConnection = (Client, Connection<GuardedSocket, FrameGuard<RustlsStream>>);

/// Connects sessions whose backend messages are capped at `limit` bytes.
#[derive(Clone)]
pub struct GuardedConnect {
    /// The TLS connector (`sslmode` decides whether it is used).
    pub tls: MakeRustlsConnect,
    /// The largest backend message a session accepts.
    pub limit: usize,
}

impl GuardedConnect {
    /// Open a session as `config` says (first host that answers).
    pub async fn connect(&self, config: &Config) -> Result<GuardedConnection, Error> {
        let (target, socket) = self.first_socket(config).await?;
        config.connect_raw(socket, self.tls_for(&target)).await
    }

    /// Send a cancel request for `token`'s statement to the first host
    /// that answers.
    pub async fn cancel(
        &self,
        config: &Config,
        token: &tokio_postgres::CancelToken,
    ) -> Result<(), Error> {
        let (target, socket) = self.first_socket(config).await?;
        token.cancel_query_raw(socket, self.tls_for(&target)).await
    }

    /// The first of `config`'s hosts that accepts a connection, and its
    /// guarded socket.
    async fn first_socket(&self, config: &Config) -> Result<(Target, GuardedSocket), Error> {
        let mut last = invalid("the URL names no host");
        let targets = match targets(config) {
            Ok(t) => t,
            Err(e) => return Err(io_error(e).await),
        };
        for target in targets {
            match open(config, &target).await {
                Ok(socket) => return Ok((target, FrameGuard::new(socket, self.limit))),
                Err(e) => last = e,
            }
        }
        Err(io_error(last).await)
    }

    fn tls_for(&self, target: &Target) -> GuardedTls {
        let mut make = self.tls.clone();
        let hostname = target.hostname.as_deref().unwrap_or("localhost");
        let Ok(inner) = <MakeRustlsConnect as MakeTlsConnect<GuardedSocket>>::make_tls_connect(
            &mut make, hostname,
        );
        GuardedTls {
            inner,
            limit: self.limit,
        }
    }
}

impl Connect for GuardedConnect {
    fn connect(
        &self,
        pg_config: &Config,
    ) -> BoxFuture<'_, Result<(Client, tokio::task::JoinHandle<()>), Error>> {
        let pg_config = pg_config.clone();
        Box::pin(async move {
            let (client, connection) = GuardedConnect::connect(self, &pg_config).await?;
            let driver = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "PostgreSQL session ended");
                }
            });
            Ok((client, driver))
        })
    }
}

/// One place to connect to.
struct Target {
    addr: Addr,
    port: u16,
    /// The name TLS checks the certificate against.
    hostname: Option<String>,
}

enum Addr {
    Tcp(String),
    Unix(std::path::PathBuf),
}

/// tokio-postgres' `Error` has no public constructor; the one way to turn an
/// io error into one is to let `connect_raw` meet it on a stream that fails
/// with it ("error communicating with the server: ...").
async fn io_error(e: io::Error) -> Error {
    struct Failing(Option<io::Error>);
    impl Failing {
        fn take(&mut self) -> io::Error {
            self.0
                .take()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }
    impl AsyncRead for Failing {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(self.get_mut().take()))
        }
    }
    impl AsyncWrite for Failing {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(self.get_mut().take()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Err(self.get_mut().take()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }
    let mut config = Config::new();
    config.ssl_mode(tokio_postgres::config::SslMode::Disable);
    match config
        .connect_raw(Failing(Some(e)), tokio_postgres::NoTls)
        .await
    {
        Err(err) => err,
        Ok(_) => unreachable!("a stream that fails every write cannot start a session"),
    }
}

/// Where `config` says to connect, in order (tokio-postgres' rules: hosts and
/// host addresses pair up; one port for all or one per host).
fn targets(config: &Config) -> io::Result<Vec<Target>> {
    let hosts = config.get_hosts();
    let addrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let n = hosts.len().max(addrs.len());
    if n == 0 {
        return Err(invalid("the URL names no host"));
    }
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        return Err(invalid("the numbers of hosts and hostaddrs differ"));
    }
    if ports.len() > 1 && ports.len() != n {
        return Err(invalid("the numbers of hosts and ports differ"));
    }
    Ok((0..n)
        .map(|i| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let host = hosts.get(i);
            let hostname = match host {
                Some(Host::Tcp(h)) => Some(h.clone()),
                _ => None,
            };
            let addr = match (addrs.get(i), host) {
                (Some(ip), _) => Addr::Tcp(ip.to_string()),
                (None, Some(Host::Tcp(h))) => Addr::Tcp(h.clone()),
                (None, Some(Host::Unix(p))) => Addr::Unix(p.clone()),
                (None, None) => Addr::Tcp("localhost".into()),
            };
            Target {
                addr,
                port,
                hostname,
            }
        })
        .collect())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message.to_string())
}

async fn within<T>(
    timeout: Option<&Duration>,
    f: impl Future<Output = io::Result<T>>,
) -> io::Result<T> {
    match timeout {
        Some(t) => tokio::time::timeout(*t, f).await.unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection timed out",
            ))
        }),
        None => f.await,
    }
}

/// Connect the socket for `target` with `config`'s timeout and TCP options.
async fn open(config: &Config, target: &Target) -> io::Result<RawSocket> {
    let timeout = config.get_connect_timeout();
    let socket = match &target.addr {
        Addr::Unix(dir) => {
            let path = Path::new(dir).join(format!(".s.PGSQL.{}", target.port));
            RawSocket::Unix(within(timeout, UnixStream::connect(path)).await?)
        }
        Addr::Tcp(host) => {
            let mut last = None;
            let addrs = tokio::net::lookup_host((host.as_str(), target.port)).await?;
            let mut found = None;
            for addr in addrs {
                match within(timeout, TcpStream::connect(addr)).await {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            let stream = match found {
                Some(s) => s,
                None => {
                    return Err(last.unwrap_or_else(|| invalid("could not resolve any addresses")));
                }
            };
            stream.set_nodelay(true)?;
            let sock = SockRef::from(&stream);
            if let Some(t) = config.get_tcp_user_timeout() {
                sock.set_tcp_user_timeout(Some(*t))?;
            }
            if config.get_keepalives() {
                let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
                if let Some(i) = config.get_keepalives_interval() {
                    keepalive = keepalive.with_interval(i);
                }
                if let Some(r) = config.get_keepalives_retries() {
                    keepalive = keepalive.with_retries(r);
                }
                sock.set_tcp_keepalive(&keepalive)?;
            }
            RawSocket::Tcp(stream)
        }
    };
    Ok(socket)
}

impl TlsStream for RawSocket {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
