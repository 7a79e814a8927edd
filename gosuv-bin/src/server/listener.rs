//! The HTTP server of both listeners, with limits on connections: at most
//! [`MAX_CONNECTIONS`] open at once on a listener (past it, new ones wait in the kernel's
//! backlog), at most [`MAX_CONNECTIONS_PER_CLIENT`] of them from one client (past it, a new
//! one is refused at once with a 429, so one client cannot take a listener's every slot),
//! and a connection must send each request head within [`HEAD_TIMEOUT`]: the first one from
//! when it opens, each later one from when the answer before it is written. A connection
//! that stalls mid-head, or sits idle between requests, is closed. Each request's body is
//! then read whole, within its own deadline, before it is handled ([`super::request`]), and
//! a connection whose client stops reading what it is sent is closed
//! ([`super::connection`]).
//!
//! Why: auth and the allow-list apply to requests, not to connections. Without these limits
//! anyone who can connect could open connections that never send a byte (or send one request
//! and then keep the connection idle) until the server's descriptors run out, and a supervisor
//! without descriptors cannot create the pipes of the programs it restarts. With them, such a
//! client can at worst make the API wait, never stop supervision.
//!
//! The deadline is hyper's header-read timeout, which axum's `serve` does not set; hence
//! [`serve`] here. It runs only while the connection waits for a head: a slow handler (a stop
//! that waits for a program) or a long answer (a log or event stream) is never cut by it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::os::fd::AsRawFd;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::clients::{
    Client, ClientKey, PerClient, MAX_CONNECTIONS_PER_CLIENT, MAX_STREAMS_PER_CLIENT,
};
use super::connection::Connection;
use super::request::{read_whole, MAX_HEAD};

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may take to send a request head: from when it opens, and from the
/// end of each answer (so this is also how long an idle keep-alive connection is kept).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How often at most a refused connection is logged (the others are counted).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Who a connection is from.
pub trait ClientOf: std::os::fd::AsRawFd {
    /// The client, for the per-client limits.
    fn client(&self) -> ClientKey;

    /// Settings of a new connection's socket.
    fn tune(&self) {}

    /// Sends `answer` now if the socket takes it whole, without waiting (a refusal at
    /// accept: tokio's own write would wait for a readiness a new socket does not have yet).
    fn send_now(&self, answer: &[u8]) {
        // SAFETY: send on a descriptor we own, from a buffer we own; never blocks or raises
        // SIGPIPE.
        unsafe {
            libc::send(
                self.as_raw_fd(),
                answer.as_ptr().cast(),
                answer.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            );
        }
    }
}

impl ClientOf for tokio::net::TcpStream {
    fn client(&self) -> ClientKey {
        self.peer_addr()
            .map_or(ClientKey::Unknown, |a| ClientKey::of_ip(a.ip()))
    }

    /// A peer that vanished (a laptop asleep, a network gone) is found within about half a
    /// minute, not the kernel's quarter of an hour of retransmits: its stream slots are freed.
    fn tune(&self) {
        let fd = self.as_raw_fd();
        let set = |level: libc::c_int, name: libc::c_int, value: libc::c_int| {
            // SAFETY: setsockopt with an int on a socket we own.
            unsafe {
                libc::setsockopt(
                    fd,
                    level,
                    name,
                    std::ptr::addr_of!(value).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        };
        set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 15);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
        set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
        set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, 30_000);
    }
}

impl ClientOf for tokio::net::UnixStream {
    fn client(&self) -> ClientKey {
        self.peer_cred()
            .map_or(ClientKey::Unknown, |c| ClientKey::Uid(c.uid()))
    }
}

/// A listener with [`MAX_CONNECTIONS`], [`MAX_CONNECTIONS_PER_CLIENT`] and
/// [`HEAD_TIMEOUT`].
#[derive(Debug)]
pub struct Guarded<L> {
    inner: L,
    permits: Arc<Semaphore>,
    per_client: Arc<PerClient>,
    streams: Arc<PerClient>,
    warned: bool,
    refused: u64,
    refusal_logged: Option<Instant>,
    what: String,
}

impl<L> Guarded<L> {
    /// Guards `inner`; `what` names it in the server log.
    pub fn new(inner: L, what: impl Into<String>) -> Self {
        Guarded {
            inner,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            per_client: PerClient::new(MAX_CONNECTIONS_PER_CLIENT),
            streams: PerClient::new(MAX_STREAMS_PER_CLIENT),
            warned: false,
            refused: 0,
            refusal_logged: None,
            what: what.into(),
        }
    }

    /// Logs a connection refused for its client's cap: the first at once, then at most one
    /// line every [`REFUSAL_LOG_INTERVAL`] with the count since the last.
    fn log_refusal(&mut self, client: ClientKey) {
        self.refused += 1;
        if self
            .refusal_logged
            .is_some_and(|t| t.elapsed() < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            "refused {} connection(s) on {}: {client} (the last refused) already has {} open, the most one client may have",
            self.refused,
            self.what,
            MAX_CONNECTIONS_PER_CLIENT
        );
        self.refused = 0;
        self.refusal_logged = Some(Instant::now());
    }
}

/// The answer to a connection refused for its client's cap. It is written without reading
/// the request (the connection is closed right after), so a client that has already sent
/// one may see the connection reset instead.
fn refusal(client: ClientKey) -> Vec<u8> {
    let body = serde_json::json!({
        "error": format!(
            "{client} has {MAX_CONNECTIONS_PER_CLIENT} connections open to gosuv, the most one client may have: close some, or reuse them (keep-alive)"
        )
    })
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<L> Listener for Guarded<L>
where
    L: Listener,
    L::Io: ClientOf,
{
    type Io = Connection<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    if !self.warned {
                        self.warned = true;
                        tracing::warn!(
                            "{} connections are open on {}: new ones wait until one closes",
                            MAX_CONNECTIONS,
                            self.what
                        );
                    }
                    // The semaphore is never closed.
                    match self.permits.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => std::future::pending().await,
                    }
                }
            };
            if self.permits.available_permits() > MAX_CONNECTIONS / 2 {
                self.warned = false;
            }
            let (io, addr) = self.inner.accept().await;
            io.tune();
            let client = io.client();
            match self.per_client.try_take(client) {
                Some(slot) => return (Connection::new(io, client, permit, slot), addr),
                None => {
                    // A fresh socket's buffer takes the short answer at once; a client that
                    // does not even take that gets the close alone.
                    let answer = refusal(client);
                    io.send_now(&answer);
                    self.log_refusal(client);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// The peer address of an HTTP connection over TCP, as `ConnectInfo<PeerAddr>` in each
/// request's extensions (what `ConnectInfo<SocketAddr>` is with axum's own `serve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// What a listener's address tells the handlers about the peer.
pub trait Peer {
    /// The peer's address, where it has one the allow-list can check.
    fn peer(&self) -> Option<PeerAddr>;
}

impl Peer for SocketAddr {
    fn peer(&self) -> Option<PeerAddr> {
        Some(PeerAddr(*self))
    }
}

impl Peer for tokio::net::unix::SocketAddr {
    fn peer(&self) -> Option<PeerAddr> {
        None
    }
}

/// Serves `app` on `listener` until `stop` is cancelled; then accepts no more connections,
/// asks the open ones to close once their current answer is written, and waits for them.
pub async fn serve<L>(mut listener: Guarded<L>, app: Router, stop: CancellationToken)
where
    L: Listener,
    L::Io: ClientOf,
    L::Addr: Peer,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_header_size(MAX_HEAD);
    let streams = listener.streams.clone();
    loop {
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            () = stop.cancelled() => break,
        };
        let peer = addr.peer();
        let client = Client::new(io.client(), streams.clone());
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let client = client.clone();
            async move {
                let mut req = match read_whole(req).await {
                    Ok(req) => req,
                    Err(answer) => return Ok(answer),
                };
                if let Some(p) = peer {
                    req.extensions_mut().insert(ConnectInfo(p));
                }
                req.extensions_mut().insert(client);
                app.oneshot(req).await
            }
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(io), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                // A closed or timed-out connection: nothing the server has to act on.
                tracing::debug!("connection ended: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
