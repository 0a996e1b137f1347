//! JSON answers for requests the HTTP parser refuses before any handler sees them — a
//! malformed request line or header (a bad method token, `Content-Length: abc`, two
//! differing `Content-Length`s), a head over the parser's limits, a head that does not
//! arrive in time — so that every error answer `inlet dev` gives has the one
//! `{"error": {"code", "message"}}` shape.
//!
//! hyper answers a parse error itself, with a bare head (`400`, `414` or `431` and no
//! body), and closes a connection whose head is late without a word; it has no hook to
//! shape either. So each connection's socket is wrapped in a [`Guarded`] stream:
//!
//! - it recognises hyper's bare error head as it is written (an error status with
//!   `content-length: 0`: the routers never answer an error without a body, see
//!   `json_errors` in [`crate::http`]) and drops it, shutdown included;
//! - when hyper lets go of the connection, the socket comes back through a [`Returned`]
//!   slot, and [`answer_after`] writes the JSON answer for the error the connection ended
//!   with: the same status, and hyper's own words for what it could not read;
//! - a head timeout is answered `408` only when part of a request had arrived: an idle
//!   kept-alive connection is closed silently, since a client may be sending its next
//!   request on it at that moment and would read the `408` as that request's answer.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The limits the answers name (the server's `HttpLimits`).
#[derive(Debug, Clone)]
pub struct HeadLimits {
    pub max_headers: usize,
    pub max_header_bytes: usize,
    pub max_uri_bytes: usize,
    pub header_read_timeout: Duration,
}

/// What a [`Guarded`] stream leaves behind when hyper drops it.
#[derive(Default)]
pub struct Returned {
    stream: Option<TcpStream>,
    /// hyper wrote (and the stream dropped) a bare error head.
    swallowed: Option<u16>,
    /// Bytes of a request had arrived and no answer was written since.
    mid_request: bool,
}

/// A connection's socket as hyper sees it (see the module doc).
pub struct Guarded {
    stream: Option<TcpStream>,
    slot: Arc<Mutex<Returned>>,
    swallowed: Option<u16>,
    mid_request: bool,
}

impl Guarded {
    pub fn new(stream: TcpStream) -> (Self, Arc<Mutex<Returned>>) {
        let slot = Arc::new(Mutex::new(Returned::default()));
        let guarded = Guarded {
            stream: Some(stream),
            slot: slot.clone(),
            swallowed: None,
            mid_request: false,
        };
        (guarded, slot)
    }

    fn stream(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(
            self.stream
                .as_mut()
                .expect("the stream is only taken on drop"),
        )
    }

    /// The status of hyper's own bare error head, when `bytes` is one.
    fn bare_error_head(bytes: &[u8]) -> Option<u16> {
        let head = bytes.strip_prefix(b"HTTP/1.1 ")?;
        let status: u16 = std::str::from_utf8(head.get(..3)?).ok()?.parse().ok()?;
        let empty = bytes
            .windows(b"\r\ncontent-length: 0\r\n".len())
            .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"));
        (status >= 400 && empty && bytes.ends_with(b"\r\n\r\n")).then_some(status)
    }

    /// Called with what hyper writes: an answer ends the request in progress, and
    /// hyper's bare error head is dropped (its length is reported as written).
    fn on_write(&mut self, first: &[u8], total: usize) -> Option<usize> {
        self.mid_request = false;
        if self.swallowed.is_some() {
            return Some(total);
        }
        let status = Self::bare_error_head(first).filter(|_| first.len() == total)?;
        self.swallowed = Some(status);
        Some(total)
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.slot.lock() {
            slot.stream = self.stream.take();
            slot.swallowed = self.swallowed;
            slot.mid_request = self.mid_request;
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = self.stream().poll_read(cx, buf);
        if buf.filled().len() > before {
            self.mid_request = true;
        }
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(written) = self.on_write(buf, buf.len()) {
            return Poll::Ready(Ok(written));
        }
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total = bufs.iter().map(|b| b.len()).sum();
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if let Some(written) = self.on_write(first, total) {
            return Poll::Ready(Ok(written));
        }
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The answer is still to be written: keep the socket open for it.
        if self.swallowed.is_some() {
            return Poll::Ready(Ok(()));
        }
        self.stream().poll_shutdown(cx)
    }
}

/// The answer for a connection that ended with `error`, if it needs one: `(status,
/// code, message)`.
fn answer_for(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    returned: &Returned,
    limits: &HeadLimits,
) -> Option<(u16, &'static str, String)> {
    let hyper_error = error.downcast_ref::<hyper::Error>();
    if let Some(status) = returned.swallowed {
        let detail = hyper_error.map_or_else(|| error.to_string(), ToString::to_string);
        return Some(match status {
            431 => (
                431,
                "headers_too_large",
                format!(
                    "the request's head could not be read ({detail}): at most {} headers and {} bytes of them in all are accepted",
                    limits.max_headers, limits.max_header_bytes
                ),
            ),
            414 => (
                414,
                "uri_too_long",
                format!(
                    "the URI could not be read ({detail}): at most {} bytes are accepted",
                    limits.max_uri_bytes
                ),
            ),
            _ => (
                status,
                "malformed_request",
                format!(
                    "the request is not valid HTTP/1.1 ({detail}); check the request line (`POST /path HTTP/1.1`), each header's name, and that there is at most one Content-Length, a number"
                ),
            ),
        });
    }
    let timed_out = hyper_error.is_some_and(hyper::Error::is_timeout);
    (timed_out && returned.mid_request).then(|| {
        (
            408,
            "request_timeout",
            format!(
                "the request's head did not arrive within {} s; send the request line and headers at once",
                limits.header_read_timeout.as_secs()
            ),
        )
    })
}

/// Writes the JSON answer for the error a connection ended with (see the module doc),
/// then closes the connection.
pub async fn answer_after(
    error: &(dyn std::error::Error + Send + Sync + 'static),
    slot: &Mutex<Returned>,
    limits: &HeadLimits,
) {
    let mut returned = match slot.lock() {
        Ok(mut slot) => std::mem::take(&mut *slot),
        Err(_) => return,
    };
    let Some((status, code, message)) = answer_for(error, &returned, limits) else {
        return;
    };
    let Some(stream) = returned.stream.take() else {
        return;
    };
    tracing::warn!(status, code, %message, "request refused by the HTTP parser");
    let body = inlet_core::reply::Reply::error(status, code, &message).body;
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let answer = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    write_and_close(stream, &answer).await;
}

/// Writes a whole answer (head and body) on a raw connection and closes it, reading
/// what the client still sends for a moment, so that closing does not reset the
/// connection before the client has read the answer.
pub async fn write_and_close(mut stream: TcpStream, answer: &str) {
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::Guarded;

    #[test]
    fn only_a_bare_error_head_is_recognised() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 17:00:00 GMT\r\n\r\n";
        assert_eq!(Guarded::bare_error_head(bare), Some(400));
        let json = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 52\r\n\r\n";
        assert_eq!(Guarded::bare_error_head(json), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(Guarded::bare_error_head(ok), None);
    }
}
