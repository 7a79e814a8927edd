//! Limits on connections, in front of axum: at most [`MAX_CONNECTIONS`] open at once on a
//! listener (past it, new ones wait in the kernel's backlog), and a connection must send its
//! first request head within [`HEAD_TIMEOUT`] or it is closed.
//!
//! Why: auth and the allow-list apply to requests, not to connections. Without these limits
//! anyone who can connect could open connections that never send a byte until the server's
//! descriptors run out, and a supervisor without descriptors cannot create the pipes of the
//! programs it restarts. With them, such a client can at worst make the API wait, never stop
//! supervision.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections open at once on one listener.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a new connection may take to send its first request head.
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
        let io = GuardedIo {
            io,
            _permit: permit,
            head: HeadWatch::default(),
            deadline: Some(Box::pin(tokio::time::sleep(HEAD_TIMEOUT))),
        };
        (io, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// Finds the end of the first request head (`\r\n\r\n`) in a stream of bytes.
#[derive(Debug, Default)]
struct HeadWatch {
    matched: usize,
}

impl HeadWatch {
    /// Feeds bytes; returns whether the head is complete.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        const END: &[u8] = b"\r\n\r\n";
        for b in bytes {
            self.matched = if *b == END[self.matched] {
                self.matched + 1
            } else if *b == b'\r' {
                1
            } else {
                0
            };
            if self.matched == END.len() {
                return true;
            }
        }
        false
    }
}

/// A connection of a [`Guarded`] listener: it holds a slot while open, and fails its reads
/// once [`HEAD_TIMEOUT`] has passed without a complete first request head.
#[derive(Debug)]
pub struct GuardedIo<T> {
    io: T,
    _permit: OwnedSemaphorePermit,
    head: HeadWatch,
    /// Until the first head is complete.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> GuardedIo<T> {
    /// The connection itself.
    pub fn get_ref(&self) -> &T {
        &self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Some(deadline) = this.deadline.as_mut() {
            if let Poll::Ready(Ok(())) = r {
                if this.head.feed(&buf.filled()[before..]) {
                    this.deadline = None;
                    return r;
                }
            }
            if deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no request head within the time allowed",
                )));
            }
        }
        r
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

/// The peer address of an HTTP connection through a [`Guarded`] TCP listener (what
/// `ConnectInfo<SocketAddr>` is for a plain one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, Guarded<tokio::net::TcpListener>>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, Guarded<tokio::net::TcpListener>>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_a_head_across_reads() {
        let mut w = HeadWatch::default();
        assert!(!w.feed(b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!w.feed(b"\n\r"));
        assert!(w.feed(b"\nbody"));
        let mut w = HeadWatch::default();
        assert!(!w.feed(b"\r\n\r\r\n\r"));
        assert!(w.feed(b"\n"));
    }
}
