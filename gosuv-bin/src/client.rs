//! The CLI's HTTP client: HTTP/1.1 over a unix socket or TCP, per `client.server_url`.
//!
//! It is hyper's low-level connection API (hyper is in the build for axum already) on a
//! current-thread runtime: one connection per request, no pool, nothing to tune, and it
//! starts in well under a millisecond, which `gosuv status` needs. The `*_async` methods
//! (and [`Client::open_events`]) make the same requests on the caller's own runtime, for a
//! front end that has one (`gosuv top`).

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::{CliResult, Failure};

/// Where the server is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` over TCP.
    Tcp(String),
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers at the address.
    #[error(
        "cannot reach gosuv at {url}: is the server running? try 'gosuv start-server' ({cause})"
    )]
    Unreachable {
        /// The server URL.
        url: String,
        /// The connect error.
        cause: String,
    },
    /// The server answered with an error status.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The server's `error` message (what to do included).
        message: String,
    },
    /// Ctrl-C, in the interactive shell: the command was abandoned ([`crate::interrupt`]).
    #[error("{INTERRUPTED}")]
    Interrupted,
    /// The connection broke or the answer was not understood.
    #[error("talking to gosuv at {url}: {cause}")]
    Protocol {
        /// The server URL.
        url: String,
        /// What went wrong.
        cause: String,
    },
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::new(e.to_string())
    }
}

/// A client of one gosuv server.
pub struct Client {
    endpoint: Endpoint,
    url: String,
    authorization: Option<String>,
    rt: tokio::runtime::Runtime,
    /// The whole of one request, connect included (not a stream of events).
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("url", &self.url).finish()
    }
}

/// The message of [`ClientError::Interrupted`].
pub const INTERRUPTED: &str = "interrupted";

/// How long a plain request may take (start/stop waits set their own, longer, timeout).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(330);

impl Client {
    /// A client for `url` (`unix:///path` or `http://host:port`), sending basic auth when
    /// `credentials` are given.
    ///
    /// # Errors
    /// The URL is neither form.
    pub fn new(url: &str, credentials: Option<(&str, &str)>) -> CliResult<Self> {
        let endpoint = parse_url(url)?;
        let authorization = credentials.map(|(u, p)| {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            format!("Basic {token}")
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| Failure::new(format!("cannot start the client runtime: {e}")))?;
        Ok(Client {
            endpoint,
            url: url.to_string(),
            authorization,
            rt,
            timeout: REQUEST_TIMEOUT,
        })
    }

    /// A client for a loaded config's `client` section.
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn from_config(config: &gosuv::ServerConfig) -> CliResult<Self> {
        let c = &config.client;
        Client::new(
            &config.resolved_server_url(),
            Some((c.username.as_str(), c.password.as_str())),
        )
    }

    /// The same client with each request (connect included) given at most `timeout`, for
    /// callers that must not hang on a server that accepts and never answers (shell
    /// completion).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs a request to its end, or, in the shell, until Ctrl-C ([`crate::interrupt`]).
    fn block_on<T>(
        &self,
        fut: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        self.rt
            .block_on(crate::interrupt::cancellable(fut))
            .unwrap_or(Err(ClientError::Interrupted))
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends a request and returns the status and the whole body.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::Protocol`]; an error status is not an
    /// error here.
    pub fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        self.block_on(self.send_async(method, path, body))
    }

    /// [`Client::send`] for a caller on its own tokio runtime (`gosuv top`): the client's
    /// runtime is not used.
    ///
    /// # Errors
    /// As [`Client::send`].
    pub async fn send_async(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let fut = async {
            let resp = self.start(method, path, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.protocol(e))?
                .to_bytes();
            Ok((status, bytes))
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .unwrap_or_else(|_| Err(self.protocol("no answer in time")))
    }

    /// Sends a request and parses a JSON answer; an error status becomes
    /// [`ClientError::Api`] with the server's message.
    ///
    /// # Errors
    /// As [`Client::send`], and [`ClientError::Api`].
    pub fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = self.send(method, path, body)?;
        self.json_answer(status, &bytes)
    }

    /// [`Client::json`] on the caller's runtime (see [`Client::send_async`]).
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn json_async(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = self.send_async(method, path, body).await?;
        self.json_answer(status, &bytes)
    }

    fn json_answer(&self, status: StatusCode, bytes: &[u8]) -> Result<Value, ClientError> {
        check(status, bytes)?;
        serde_json::from_slice(bytes).map_err(|e| self.protocol(format!("bad JSON answer: {e}")))
    }

    /// Sends a GET and returns the body of a successful answer.
    ///
    /// # Errors
    /// As [`Client::json`].
    pub fn get_bytes(&self, path: &str) -> Result<Bytes, ClientError> {
        let (status, bytes) = self.send(Method::GET, path, None)?;
        check(status, &bytes)?;
        Ok(bytes)
    }

    /// [`Client::get_bytes`] on the caller's runtime (see [`Client::send_async`]).
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn get_bytes_async(&self, path: &str) -> Result<Bytes, ClientError> {
        let (status, bytes) = self.send_async(Method::GET, path, None).await?;
        check(status, &bytes)?;
        Ok(bytes)
    }

    /// Reads a Server-Sent Events stream, calling `on_event(event, data)` for each event
    /// until the stream ends or `on_event` returns false.
    ///
    /// # Errors
    /// As [`Client::json`].
    pub fn events(
        &self,
        path: &str,
        on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), ClientError> {
        self.block_on(self.events_async(path, on_event))
    }

    /// [`Client::events`] on the caller's runtime (see [`Client::send_async`]).
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn events_async(
        &self,
        path: &str,
        mut on_event: impl FnMut(&str, &str) -> bool,
    ) -> Result<(), ClientError> {
        let mut events = self.open_events(path).await?;
        while let Some((event, data)) = events.next().await? {
            if !on_event(&event, &data) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Opens a Server-Sent Events stream on the caller's runtime: once this returns, the
    /// server has answered and the stream is live; [`EventReader::next`] reads its events.
    ///
    /// # Errors
    /// As [`Client::json`].
    pub async fn open_events(&self, path: &str) -> Result<EventReader, ClientError> {
        // Until the answer's head: a server that accepts and never answers is given up on.
        let resp = tokio::time::timeout(EVENTS_IDLE, self.start(Method::GET, path, None))
            .await
            .map_err(|_| self.protocol("no answer in time"))??;
        let status = resp.status();
        let body = resp.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .map_err(|e| self.protocol(e))?
                .to_bytes();
            check(status, &bytes)?;
            return Err(self.protocol(format!("the server answered {status}")));
        }
        Ok(EventReader {
            body,
            buf: Vec::new(),
            pos: 0,
            url: self.url.clone(),
        })
    }

    async fn start(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let host = match &self.endpoint {
            Endpoint::Unix(_) => "localhost".to_string(),
            Endpoint::Tcp(hp) => hp.clone(),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(hyper::header::HOST, host)
            .header(
                hyper::header::USER_AGENT,
                concat!("gosuv/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(a) = &self.authorization {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let payload = match body {
            Some(v) => Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
            None => Bytes::new(),
        };
        if method != Method::GET && method != Method::HEAD {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(Full::new(payload)).map_err(|e| self.protocol(e))?;
        let mut sender = match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| self.unreachable(e))?;
                // The credentials go only to a server of this user's (or root's): another
                // user's process listening at the path would get them.
                let cred = stream.peer_cred().map_err(|e| self.protocol(e))?;
                // SAFETY: geteuid has no arguments and cannot fail.
                let me = unsafe { libc::geteuid() };
                if cred.uid() != me && cred.uid() != 0 {
                    return Err(ClientError::Protocol {
                        url: self.url.clone(),
                        cause: format!(
                            "the process at this socket runs as uid {}, not as you or root: \
                             not sending it your credentials (is another user's program \
                             listening at this path?)",
                            cred.uid()
                        ),
                    });
                }
                self.handshake(stream).await?
            }
            Endpoint::Tcp(hp) => {
                let stream = tokio::net::TcpStream::connect(hp.as_str())
                    .await
                    .map_err(|e| self.unreachable(e))?;
                let _ = stream.set_nodelay(true);
                self.handshake(stream).await?
            }
        };
        sender.send_request(req).await.map_err(|e| self.protocol(e))
    }

    async fn handshake<S>(
        &self,
        stream: S,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Unreachable {
            url: self.url.clone(),
            cause: e.to_string(),
        }
    }

    fn protocol(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol {
            url: self.url.clone(),
            cause: e.to_string(),
        }
    }
}

/// A live Server-Sent Events stream (see [`Client::open_events`]).
pub struct EventReader {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    /// Where the events not yet returned start in `buf`.
    pos: usize,
    url: String,
}

/// The server sends a keep-alive comment every 15 s on an idle stream: this long without a
/// byte, the connection is taken for dead (a network cut, a suspended laptop, a NAT that
/// forgot it), so the stream is opened again instead of staying silent for ever.
const EVENTS_IDLE: Duration = Duration::from_secs(45);

/// The longest event read: a server that never ends one does not fill the memory.
const MAX_EVENT: usize = 16 << 20;

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("url", &self.url)
            .finish()
    }
}

impl EventReader {
    /// The next event: its name (empty for the default) and its data lines joined by
    /// newlines; `None` once the server has ended the stream.
    ///
    /// # Errors
    /// [`ClientError::Protocol`]: the connection broke.
    pub async fn next(&mut self) -> Result<Option<(String, String)>, ClientError> {
        let broke = |url: &str, cause: String| ClientError::Protocol {
            url: url.to_string(),
            cause,
        };
        loop {
            // Events are taken from `pos` on, and the buffer is moved once a read, not once
            // an event: a read of many events costs its length, not its square.
            while let Some((end, sep)) = find_event_end(&self.buf[self.pos..]) {
                let text =
                    String::from_utf8_lossy(&self.buf[self.pos..self.pos + end]).into_owned();
                self.pos += end + sep;
                let (event, data) = parse_sse(&text);
                if !data.is_empty() || !event.is_empty() {
                    return Ok(Some((event, data)));
                }
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            if self.buf.len() > MAX_EVENT {
                return Err(broke(&self.url, "an event of more than 16 MiB".to_string()));
            }
            let Ok(frame) = tokio::time::timeout(EVENTS_IDLE, self.body.frame()).await else {
                return Err(broke(
                    &self.url,
                    format!(
                        "nothing from the server in {} s, not even its keep-alive",
                        EVENTS_IDLE.as_secs()
                    ),
                ));
            };
            let Some(frame) = frame else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| ClientError::Protocol {
                url: self.url.clone(),
                cause: e.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }
}

fn check(status: StatusCode, body: &[u8]) -> Result<(), ClientError> {
    if status.is_success() {
        return Ok(());
    }
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| {
            format!(
                "the server answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            )
        });
    let message = if status == StatusCode::UNAUTHORIZED {
        format!("{message} (the client sends client.username and client.password of config.yml)")
    } else {
        message
    };
    Err(ClientError::Api { status, message })
}

/// Parses `unix:///path` or `http://host:port[/]`.
///
/// # Errors
/// Any other form.
pub fn parse_url(url: &str) -> CliResult<Endpoint> {
    if let Some(p) = url.strip_prefix("unix://") {
        if p.is_empty() {
            return Err(Failure::new(format!(
                "'{url}' names no socket: write unix:///path/to/.gosuv.sock"
            )));
        }
        return Ok(Endpoint::Unix(PathBuf::from(p)));
    }
    if let Some(rest) = url.strip_prefix("http://") {
        let hp = rest.trim_end_matches('/');
        if hp.is_empty() || hp.contains('/') {
            return Err(Failure::new(format!("'{url}' is not http://HOST:PORT")));
        }
        let hp = if hp.contains(':') && !hp.ends_with(']') {
            hp.to_string()
        } else {
            format!("{hp}:80")
        };
        let hp = match hp.strip_prefix(':') {
            Some(port) => format!("127.0.0.1:{port}"),
            None => hp,
        };
        return Ok(Endpoint::Tcp(hp));
    }
    Err(Failure::new(format!(
        "'{url}' is not a gosuv server URL: write unix://PATH or http://HOST:PORT"
    )))
}

/// The end of the first complete event in `buf`: (where its text ends, the separator's length).
fn find_event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let lf = buf.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2));
    // A CRLF end can only come first if it starts before the LF one.
    let upto = lf.map_or(buf.len(), |(i, _)| (i + 4).min(buf.len()));
    let crlf = buf[..upto]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// One SSE event's name (empty for the default) and its data lines joined by newlines.
fn parse_sse(text: &str) -> (String, String) {
    let mut event = String::new();
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = v.trim_start().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    (event, data.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("unix:///tmp/x.sock").unwrap(),
            Endpoint::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            parse_url("http://127.0.0.1:11333").unwrap(),
            Endpoint::Tcp("127.0.0.1:11333".into())
        );
        assert_eq!(
            parse_url("http://:9/").unwrap(),
            Endpoint::Tcp("127.0.0.1:9".into())
        );
        assert_eq!(
            parse_url("http://host").unwrap(),
            Endpoint::Tcp("host:80".into())
        );
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("unix://").is_err());
    }

    #[test]
    fn sse_events() {
        let buf = b"event: log\ndata: \"a\\n\"\n\n: keep\n\nrest";
        let (end, sep) = find_event_end(buf).unwrap();
        let (ev, data) = parse_sse(std::str::from_utf8(&buf[..end]).unwrap());
        assert_eq!(ev, "log");
        assert_eq!(data, "\"a\\n\"");
        assert_eq!(&buf[end + sep..end + sep + 8], b": keep\n\n");
    }
}
