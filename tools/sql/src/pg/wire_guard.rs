//! A size cap on PostgreSQL backend messages as they arrive, before the
//! driver buffers them.
//!
//! tokio-postgres reads one whole backend message (a DataRow holding a 400 MB
//! value, say) into memory before a row reaches the connector's byte cap, so
//! the cap alone bounds what is *decoded*, not what is *received*. A
//! [`FrameGuard`] sits between the socket (or the TLS stream) and the driver
//! and reads the protocol's framing: every backend message starts with a type
//! byte and a 4-byte length. A message longer than the guard's limit never
//! reaches the driver: in its place the driver reads a synthetic
//! `ErrorResponse` with SQLSTATE [`WIRE_CAP_SQLSTATE`], then end of stream, so
//! the call sees an error it can recognise, the session is closed (the
//! server stops sending and rolls the transaction back) and at most the
//! guard's limit of any one message is ever held.
//!
//! The guard learns the connection's phase from the client's first write:
//! an `SSLRequest` is answered by one unframed byte (`S` means TLS follows,
//! and the guard then passes the ciphertext through: a second guard wraps the
//! TLS stream's plaintext); a TLS ClientHello (direct negotiation) is passed
//! through; anything else is a startup message, after which every byte is
//! framed.
//!
//! Hand-rolled: no crate frames the PostgreSQL protocol as a stream adapter
//! (postgres-protocol parses whole buffered messages, which is the problem).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsStream};

/// SQLSTATE of the synthetic error a guard reports in place of a message
/// over its limit (class `TG`: not used by PostgreSQL).
pub const WIRE_CAP_SQLSTATE: &str = "TG001";

/// Bytes a guard keeps between reads (message headers and small messages).
const BUFFER: usize = 16 * 1024;

/// The 8-byte `SSLRequest`: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing written yet.
    Start,
    /// An `SSLRequest` was sent: the next byte read is its one-byte answer.
    SslAnswer,
    /// Backend messages: framed and checked.
    Framed,
    /// Not PostgreSQL framing (TLS ciphertext): passed through untouched.
    Through,
    /// A message was over the limit: the synthetic error, then end of stream.
    Tripped,
}

/// A stream adapter that refuses backend messages longer than `limit`.
pub struct FrameGuard<S> {
    inner: S,
    limit: usize,
    phase: Phase,
    /// Bytes read from `inner` not yet handed on: `buf[start..end]`, of which
    /// `buf[start..checked]` are checked and may be handed on.
    buf: Box<[u8]>,
    start: usize,
    checked: usize,
    end: usize,
    /// Body bytes of the current (checked) message still to come.
    body_left: usize,
    /// The synthetic error still to hand on once tripped.
    error: Vec<u8>,
}

impl<S> FrameGuard<S> {
    /// Guard `inner`: a backend message longer than `limit` bytes is refused.
    pub fn new(inner: S, limit: usize) -> Self {
        FrameGuard {
            inner,
            limit,
            phase: Phase::Start,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            checked: 0,
            end: 0,
            body_left: 0,
            error: Vec::new(),
        }
    }

    /// Guard a stream that already carries backend messages (a TLS stream's
    /// plaintext, after the handshake).
    pub fn framed(inner: S, limit: usize) -> Self {
        let mut guard = FrameGuard::new(inner, limit);
        guard.phase = Phase::Framed;
        guard
    }

    /// Move `checked` over whole headers and bodies in the buffer; trip on a
    /// message over the limit.
    fn check(&mut self) -> io::Result<()> {
        while self.checked < self.end {
            if self.body_left > 0 {
                let take = self.body_left.min(self.end - self.checked);
                self.checked += take;
                self.body_left -= take;
                continue;
            }
            if self.end - self.checked < 5 {
                break;
            }
            let at = self.checked;
            let len = u32::from_be_bytes([
                self.buf[at + 1],
                self.buf[at + 2],
                self.buf[at + 3],
                self.buf[at + 4],
            ]) as usize;
            if len < 4 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "invalid PostgreSQL message length",
                ));
            }
            if len.saturating_add(1) > self.limit {
                self.trip(self.buf[at], len + 1);
                return Ok(());
            }
            self.checked += 5;
            self.body_left = len - 4;
        }
        Ok(())
    }

    /// Replace the message (and everything after it) with a synthetic
    /// `ErrorResponse`.
    fn trip(&mut self, kind: u8, size: usize) {
        let what = if kind == b'D' {
            "a result row"
        } else {
            "a message"
        };
        let message = format!(
            "{what} of {size} bytes from the database is over the {} bytes a message may \
             take on this connection (the byte cap + 64 KiB); the session was closed before \
             it was read and its transaction rolled back",
            self.limit
        );
        self.error = error_response(WIRE_CAP_SQLSTATE, &message);
        self.phase = Phase::Tripped;
        // Bytes from the header on are dropped; what was checked is still
        // handed on first.
        self.end = self.checked;
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.checked -= self.start;
            self.end -= self.start;
            self.start = 0;
        }
    }
}

/// A backend `ErrorResponse` message: severity, SQLSTATE and message fields.
fn error_response(code: &str, message: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 32);
    for (field, value) in [
        (b'S', "ERROR"),
        (b'V', "ERROR"),
        (b'C', code),
        (b'M', message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(b'E');
    out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Hand `buf[start..upto]` on to `out`.
fn hand_on(src: &[u8], start: &mut usize, upto: usize, out: &mut ReadBuf<'_>) {
    let n = (upto - *start).min(out.remaining());
    out.put_slice(&src[*start..*start + n]);
    *start += n;
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.phase {
                Phase::Start | Phase::Through => {
                    return Pin::new(&mut this.inner).poll_read(cx, out);
                }
                Phase::SslAnswer => {
                    // One byte, unframed: `S` hands the stream to TLS.
                    let mut one = [0u8; 1];
                    let mut rb = ReadBuf::new(&mut one);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    if rb.filled().is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    this.phase = if one[0] == b'S' {
                        Phase::Through
                    } else {
                        Phase::Framed
                    };
                    out.put_slice(&one);
                    return Poll::Ready(Ok(()));
                }
                Phase::Framed | Phase::Tripped => {}
            }
            // Checked bytes go first, tripped or not.
            if this.start < this.checked {
                let upto = this.checked;
                hand_on(&this.buf, &mut this.start, upto, out);
                return Poll::Ready(Ok(()));
            }
            if this.phase == Phase::Tripped {
                // The synthetic error, then end of stream: the driver closes
                // the session.
                let n = this.error.len().min(out.remaining());
                out.put_slice(&this.error[..n]);
                this.error.drain(..n);
                return Poll::Ready(Ok(()));
            }
            if this.start == this.end {
                this.start = 0;
                this.checked = 0;
                this.end = 0;
                if this.body_left > 0 {
                    // Inside a checked body with nothing buffered: read
                    // straight into the caller's buffer, at most the body.
                    let want = this.body_left.min(out.remaining());
                    let mut direct = ReadBuf::new(out.initialize_unfilled_to(want));
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                    let n = direct.filled().len();
                    out.advance(n);
                    this.body_left -= n;
                    return Poll::Ready(Ok(()));
                }
            } else if this.end == this.buf.len() {
                this.compact();
            }
            let mut rb = ReadBuf::new(&mut this.buf[this.end..]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
            let n = rb.filled().len();
            if n == 0 {
                // End of stream (a partial header, if any, is dropped).
                return Poll::Ready(Ok(()));
            }
            this.end += n;
            this.check()?;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.phase == Phase::Start && !buf.is_empty() {
            if buf.starts_with(&SSL_REQUEST) {
                this.phase = Phase::SslAnswer;
            } else if buf[0] == 0x16 {
                // A TLS handshake record: direct TLS negotiation.
                this.phase = Phase::Through;
            } else if buf.len() >= 8 {
                this.phase = Phase::Framed;
            }
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for FrameGuard<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn message(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Feed `server` bytes to a framed guard in chunks of `chunk` and read
    /// everything the driver would see.
    async fn through_guard(server: Vec<u8>, limit: usize, chunk: usize) -> Vec<u8> {
        let (mut far, near) = tokio::io::duplex(chunk.max(1));
        let mut guard = FrameGuard::framed(near, limit);
        let feed = tokio::spawn(async move {
            for part in server.chunks(chunk.max(1)) {
                if far.write_all(part).await.is_err() {
                    return;
                }
            }
            // Keep the far end open until the guard is done reading: end of
            // stream must come from the guard itself when it trips.
            let _ = far.shutdown().await;
        });
        let mut seen = Vec::new();
        guard.read_to_end(&mut seen).await.unwrap();
        feed.abort();
        seen
    }

    #[tokio::test]
    async fn messages_under_the_limit_pass_unchanged_whatever_the_chunking() {
        let mut server = Vec::new();
        for i in 0..50u8 {
            server.extend(message(b'D', &vec![i; (i as usize) * 97]));
        }
        server.extend(message(b'Z', b"I"));
        for chunk in [1, 3, 5, 7, 4096, 100_000] {
            assert_eq!(
                through_guard(server.clone(), 6_000, chunk).await,
                server,
                "chunk {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_becomes_an_error_and_end_of_stream() {
        let before = message(b'T', b"columns");
        let mut server = before.clone();
        server.extend(message(b'D', &vec![b'x'; 200_000]));
        server.extend(message(b'C', b"SELECT 1\0"));
        server.extend(message(b'Z', b"T"));
        for chunk in [1, 2, 5, 64, 65_536] {
            let seen = through_guard(server.clone(), 100_000, chunk).await;
            assert!(seen.starts_with(&before), "chunk {chunk}");
            let rest = &seen[before.len()..];
            assert_eq!(rest[0], b'E', "chunk {chunk}");
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            assert_eq!(
                rest.len(),
                len + 1,
                "nothing after the error (chunk {chunk})"
            );
            let text = String::from_utf8_lossy(rest);
            assert!(text.contains(WIRE_CAP_SQLSTATE), "{text}");
            assert!(text.contains("a result row of 200005 bytes"), "{text}");
            assert!(!rest.windows(16).any(|w| w == [b'x'; 16]), "no row bytes");
        }
    }

    #[tokio::test]
    async fn the_ssl_answer_is_one_unframed_byte() {
        for (answer, framed) in [(b'N', true), (b'S', false)] {
            let (mut far, near) = tokio::io::duplex(1024);
            let mut guard = FrameGuard::new(near, 100);
            guard.write_all(&SSL_REQUEST).await.unwrap();
            let mut got = [0u8; 8];
            far.read_exact(&mut got).await.unwrap();
            assert_eq!(got, SSL_REQUEST);
            // The answer, then 400 bytes that are framed (N: an oversized
            // message) or ciphertext (S: passed through).
            let mut next = vec![answer];
            next.extend(message(b'R', &[7u8; 396]));
            far.write_all(&next).await.unwrap();
            drop(far);
            let mut seen = Vec::new();
            guard.read_to_end(&mut seen).await.unwrap();
            assert_eq!(seen[0], answer);
            if framed {
                assert_eq!(seen[1], b'E', "over the limit after N");
            } else {
                assert_eq!(seen, next, "passed through after S");
            }
        }
    }

    #[tokio::test]
    async fn a_length_below_four_is_an_error() {
        let (mut far, near) = tokio::io::duplex(64);
        let mut guard = FrameGuard::framed(near, 1000);
        far.write_all(&[b'D', 0, 0, 0, 2]).await.unwrap();
        let mut seen = Vec::new();
        let err = guard.read_to_end(&mut seen).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
