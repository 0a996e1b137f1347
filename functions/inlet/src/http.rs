//! The HTTP listener of `inlet dev`: hyper's server with the limits a webhook endpoint
//! needs, and error answers that are always JSON.
//!
//! - **Timeouts.** A request's head (request line and headers) must arrive within
//!   [`HttpLimits::header_read_timeout`]; the same timer closes a kept-alive connection
//!   that sends nothing for that long. Its body must arrive within
//!   [`HttpLimits::body_read_timeout`] (the receive handler enforces it, answering 408).
//!   So a slow or silent client (slowloris) cannot hold a connection open.
//! - **A connection cap.** At most [`HttpLimits::max_connections`] are served at once;
//!   one more is answered 503 `busy` and closed at once, so a flood of idle sockets
//!   cannot exhaust file descriptors while `/healthz` and real requests wait.
//! - **Size limits** on the URI and the headers, answered 414 and 431 in JSON by
//!   [`limit_request_head`]. The HTTP parser's own buffer is larger: a request beyond
//!   it (over [`PARSER_BUFFER_BYTES`] of headers, or [`PARSER_MAX_HEADERS`] headers),
//!   one it cannot parse, or a head that arrives late is answered by
//!   [`crate::malformed`], in JSON too, and the connection closed.
//! - **JSON errors.** [`json_errors`] turns every error answer the routers produce
//!   without a JSON body (an extractor's 400, a 405 on an admin route, ...) into
//!   `{"error": {"code", "message"}}`, keeping its status and headers.
//! - **Graceful shutdown.** On stop the listener closes and in-flight requests finish.

use crate::malformed;
use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use inlet_core::reply::Reply;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// The parser's buffer for a request head; requests within [`HttpLimits`] stay far
/// below it, so they get Inlet's JSON 414/431.
pub const PARSER_BUFFER_BYTES: usize = 1024 * 1024;
/// The most headers the parser takes.
pub const PARSER_MAX_HEADERS: usize = 1000;

/// Limits of the HTTP server; the defaults are published in docs/http-contract.md.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// For a request's head to arrive, and for a kept-alive connection to send one.
    pub header_read_timeout: Duration,
    /// For a request's body to arrive once its head has.
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    pub max_uri_bytes: usize,
    /// All header names and values together.
    pub max_header_bytes: usize,
    pub max_headers: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

/// Serves `app` on `listener` until `stop` completes, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(PARSER_BUFFER_BYTES)
        .max_headers(PARSER_MAX_HEADERS);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(
                max = limits.max_connections,
                "connection refused: too many open connections"
            );
            tokio::spawn(refuse(stream));
            continue;
        };
        let app = app.clone();
        let first_byte = limits.header_read_timeout;
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            app.clone().oneshot(request.map(Body::new))
        });
        // The parser's header timer starts with the first byte (it first reads to
        // tell HTTP/1 from HTTP/2), so a connection that sends nothing is timed here.
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let head_limits = malformed::HeadLimits {
            max_headers: limits.max_headers,
            max_header_bytes: limits.max_header_bytes,
            max_uri_bytes: limits.max_uri_bytes,
            header_read_timeout: limits.header_read_timeout,
        };
        tokio::spawn(async move {
            let _permit = permit;
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                return;
            }
            let (stream, returned) = malformed::Guarded::new(stream);
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, "connection ended with an error");
                malformed::answer_after(&*error, &returned, &head_limits).await;
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(stream: TcpStream) {
    let body = Reply::error(
        503,
        "busy",
        "the server has too many open connections; retry later",
    )
    .body;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: {}\r\nconnection: close\r\n\r\n{body}",
        body.len(),
        inlet_core::defaults::UNAVAILABLE_RETRY_AFTER_SECS
    );
    malformed::write_and_close(stream, &answer).await;
}

/// An error answer in the one shape every error has.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = Reply::error(status.as_u16(), code, message).body;
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Refuses a request whose URI or headers are over [`HttpLimits`], before routing.
pub async fn limit_request_head(
    axum::extract::State(limits): axum::extract::State<Arc<HttpLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let uri_bytes = request.uri().to_string().len();
    if uri_bytes > limits.max_uri_bytes {
        tracing::warn!(path = %redacted_path(request.uri().path()), uri_bytes, limit = limits.max_uri_bytes, "request refused: URI too long (414)");
        return error_response(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            &format!(
                "the URI is {uri_bytes} bytes; at most {} are accepted",
                limits.max_uri_bytes
            ),
        );
    }
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > limits.max_headers || header_bytes > limits.max_header_bytes {
        tracing::warn!(path = %redacted_path(request.uri().path()), headers = headers.len(), header_bytes, "request refused: headers too large (431)");
        return error_response(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            &format!(
                "the request has {} headers, {header_bytes} bytes in all; at most {} headers and {} bytes in all are accepted",
                headers.len(),
                limits.max_headers,
                limits.max_header_bytes
            ),
        );
    }
    next.run(request).await
}

/// A request path as a log line may show it: a webhook token (the segment after
/// `/receive/`, a credential) is cut to its first 6 characters.
pub fn redacted_path(path: &str) -> String {
    match path.split_once("/receive/") {
        Some((before, rest)) => {
            let (token, after) = rest.split_once('/').map_or((rest, ""), |(t, a)| (t, a));
            let shown: String = token.chars().take(6).collect();
            let slash = if after.is_empty() && !rest.contains('/') {
                ""
            } else {
                "/"
            };
            format!("{before}/receive/{shown}…{slash}{after}")
        }
        None => path.to_string(),
    }
}

/// Gives every error answer that is not JSON already the `{"error": {...}}` body,
/// keeping its status and headers; a plain-text message becomes the message. The
/// console's error pages (HTML) are left as they are.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let already_shaped =
        content_type.starts_with("application/json") || content_type.starts_with("text/html");
    if status.as_u16() < 400 || already_shaped {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("error");
    let message = if text.is_empty() {
        reason.to_string()
    } else {
        text
    };
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed".to_string(),
        _ => reason.to_ascii_lowercase().replace([' ', '-'], "_"),
    };
    let fresh = error_response(status, &code, &message);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

#[cfg(test)]
mod redaction_tests {
    #[test]
    fn a_webhook_token_is_cut_in_a_logged_path() {
        assert_eq!(
            super::redacted_path("/receive/487a4e718cfcacda8e6cb0cf9da323a4"),
            "/receive/487a4e…"
        );
        assert_eq!(super::redacted_path("/receive/abc/x"), "/receive/abc…/x");
        assert_eq!(super::redacted_path("/healthz"), "/healthz");
    }
}
