//! The HTTP server of both listeners, with limits on connections: at most
//! [`MAX_CONNECTIONS`] open at once on a listener (past it, new ones wait in the kernel's
//! backlog), and a connection must send each request head within [`HEAD_TIMEOUT`]: the first
//! one from when it opens, each later one from when the answer before it is written. A
//! connection that stalls mid-head, or sits idle between requests, is closed.
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
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a connection may take to send a request head: from when it opens, and from the
/// end of each answer (so this is also how long an idle keep-alive connection is kept).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener with [`MAX_CONNECTIONS`] and [`HEAD_TIMEOUT`].
#[derive(Debug)]
pub struct Guarded<L> {
    inner: L,
    permits: Arc<Semaphore>,
    warned: Arc<AtomicBool>,
    what: String,
}

impl<L> Guarded<L> {
    /// Guards `inner`; `what` names it in the server log.
    pub fn new(inner: L, what: impl Into<String>) -> Self {
        Guarded {
            inner,
            permits: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            warned: Arc::new(AtomicBool::new(false)),
            what: what.into(),
        }
    }
}

impl<L: Listener> Listener for Guarded<L> {
    type Io = GuardedIo<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
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
            self.warned.store(false, Ordering::Relaxed);
        }
        let (io, addr) = self.inner.accept().await;
        (
            GuardedIo {
                io,
                _permit: permit,
            },
            addr,
        )
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection of a [`Guarded`] listener: it holds a slot while open.
#[derive(Debug)]
pub struct GuardedIo<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
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
    L::Addr: Peer,
{
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT);
    loop {
        let (io, addr) = tokio::select! {
            c = listener.accept() => c,
            () = stop.cancelled() => break,
        };
        let peer = addr.peer();
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let mut req = req.map(Body::new);
            if let Some(p) = peer {
                req.extensions_mut().insert(ConnectInfo(p));
            }
            app.clone().oneshot(req)
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
