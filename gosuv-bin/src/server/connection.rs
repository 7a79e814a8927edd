//! One accepted connection, as hyper reads and writes it ([`Connection`]). It holds the
//! connection's slots (one of the listener's, one of its client's) while open, and on the
//! way out it does two things hyper cannot be told to do:
//!
//! - **A write that makes no progress for [`WRITE_STALL_TIMEOUT`] ends the connection.** A
//!   client that stops reading an answer (a log stream it never reads, a large list it
//!   leaves half-read) would otherwise keep its connection, and the server's memory for what
//!   is queued to it, for as long as it likes.
//! - **hyper's own error answers get a JSON body.** hyper answers a request it cannot parse
//!   itself, before any service sees it: 400 (a bad request line, header or
//!   `Content-Length`), 431 (a head over [`super::request::MAX_HEAD`] bytes or with more than
//!   [`super::request::MAX_HEADERS`] headers) and 414 (a URL over 65,534 bytes, which the
//!   head limit makes a 431 first). hyper 1 has no option to change that answer (its
//!   `on_error` writes a bare head with `content-length: 0`, then closes the connection), so
//!   that head is recognized here and replaced by the same status with
//!   `{"error": "..."}`, like every other refusal. What is recognized: a write that is one
//!   bare head of status 400, 414 or 431 with `content-length: 0`, with nothing written since
//!   the connection last read (hyper answers right after reading the head it cannot parse).
//!   The API's own error answers always have a body, and a body written on its own (a log
//!   tail that happens to read like such a head) follows its own head, written after the
//!   request was read.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;

use super::clients::{ClientKey, Slot};
use super::request::{MAX_HEAD, MAX_HEADERS};

/// How long a write to a client may make no progress before the connection is closed.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection with its slots, its stall deadline and the rewriting of hyper's
/// own error answers.
#[derive(Debug)]
pub struct Connection<T> {
    io: T,
    client: ClientKey,
    _permit: OwnedSemaphorePermit,
    _slot: Slot,
    /// The stall deadline, made at the first write that had to wait.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Whether the deadline runs (a write is waiting since it was set).
    stalled: bool,
    /// A JSON answer being written in place of hyper's bare one.
    replacement: Option<Replacement>,
    /// Whether anything was written since data was last read.
    wrote_since_read: bool,
}

#[derive(Debug)]
struct Replacement {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's buffer, reported written once the replacement is.
    replaces: usize,
}

impl<T> Connection<T> {
    /// A connection from `client`, holding a listener slot and a client slot.
    pub fn new(io: T, client: ClientKey, permit: OwnedSemaphorePermit, slot: Slot) -> Self {
        Connection {
            io,
            client,
            _permit: permit,
            _slot: slot,
            stall: None,
            stalled: false,
            replacement: None,
            wrote_since_read: false,
        }
    }

    /// Who it is from.
    pub fn client(&self) -> ClientKey {
        self.client
    }

    /// After a write that could not proceed: starts the stall deadline if it does not run
    /// yet, and fails once it has passed.
    fn check_stall(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let deadline = tokio::time::Instant::now() + WRITE_STALL_TIMEOUT;
        let sleep = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.stalled {
            sleep.as_mut().reset(deadline);
            self.stalled = true;
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the client read nothing for {} s",
                    WRITE_STALL_TIMEOUT.as_secs()
                ),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The result of a write: progress stops the stall deadline, waiting runs it.
    fn progress(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Pending => self.check_stall(cx),
            Poll::Ready(Ok(n)) if n > 0 => {
                self.stalled = false;
                self.wrote_since_read = true;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> Connection<T> {
    /// Writes the replacement of hyper's answer; done, it reports hyper's buffer written.
    fn write_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        loop {
            let Some(r) = &mut self.replacement else {
                return Poll::Ready(Ok(0));
            };
            if r.written == r.bytes.len() {
                let n = r.replaces;
                self.replacement = None;
                return Poll::Ready(Ok(n));
            }
            let w = Pin::new(&mut self.io).poll_write(cx, &r.bytes[r.written..]);
            match self.progress(cx, w) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => {
                    if let Some(r) = &mut self.replacement {
                        r.written += n;
                    }
                }
                other => return other,
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.wrote_since_read = false;
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() && !this.wrote_since_read {
            if let Some(bytes) = json_for_automatic_answer(buf) {
                this.replacement = Some(Replacement {
                    bytes,
                    written: 0,
                    replaces: buf.len(),
                });
            }
        }
        if this.replacement.is_some() {
            return this.write_replacement(cx);
        }
        let w = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(cx, w)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if this.replacement.is_none() && !this.wrote_since_read {
            // hyper writes its own answer as one buffer: the head alone.
            let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (nonempty.next(), nonempty.next()) {
                if let Some(bytes) = json_for_automatic_answer(only) {
                    this.replacement = Some(Replacement {
                        bytes,
                        written: 0,
                        replaces: only.len(),
                    });
                }
            }
        }
        if this.replacement.is_some() {
            return this.write_replacement(cx);
        }
        let w = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(cx, w)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.check_stall(cx).map_ok(|_| ()),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// If `buf` is hyper's own answer to a request it could not parse (a status line of 400,
/// 414 or 431, `content-length: 0`, nothing after the head), the same answer with a JSON
/// body that says what to fix.
pub fn json_for_automatic_answer(buf: &[u8]) -> Option<Vec<u8>> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ")?;
    let (status, message) = match rest.get(..4)? {
        b"400 " => (
            "400 Bad Request",
            "the request is not valid HTTP/1.1: check the request line (METHOD /path HTTP/1.1), \
             each header line (Name: value) and Content-Length (one decimal number, or copies of \
             the same one)"
                .to_string(),
        ),
        b"414 " => (
            "414 URI Too Long",
            "the URL is longer than the server accepts: program names are at most 64 characters, \
             and no query needs more"
                .to_string(),
        ),
        b"431 " => (
            "431 Request Header Fields Too Large",
            format!(
                "the request head is larger than {MAX_HEAD} bytes or has more than {MAX_HEADERS} \
                 headers: send fewer or smaller headers"
            ),
        ),
        _ => return None,
    };
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..head_end];
    let bodyless = head
        .windows(21)
        .any(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length: 0\r\n"))
        && head_end == buf.len();
    if !bodyless {
        return None;
    }
    let body = serde_json::json!({ "error": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_answers_get_a_json_body_and_others_are_left_alone() {
        let hyper_400 =
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Tue, 01 Dec 2026 04:05:31 GMT\r\n\r\n";
        let out = String::from_utf8(json_for_automatic_answer(hyper_400).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("Content-Length"));
        let hyper_431 =
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert!(json_for_automatic_answer(hyper_431).is_some());
        // The API's own answers: a body, another status, or more than a head.
        for own in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 12\r\n\r\n{\"error\":\"\"}"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nmore",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 05\r\n\r\n",
            b"data: {}\n\n",
        ] {
            assert!(json_for_automatic_answer(own).is_none());
        }
    }
}
