//! `Supervisor.wait_for_line`: the first line of a program's output that matches a regex,
//! looked for in the output kept in memory first, then in what the program writes next.
//!
//! The kept output and the follower are taken together (one lock in the core), so the
//! follower starts exactly where the kept output ends: nothing written in between is lost
//! or seen twice, and a line cut in two by that moment is joined whole.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gosuv::blocking::{self, Recv};
use gosuv::{LogEvent, Stream};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::errors::{GOSUV_ERROR, PROGRAM_NOT_FOUND, SUPERVISOR_CLOSED, TIMEOUT};
use crate::streams::slice_until;

/// How much output the core keeps in memory per stream.
pub(crate) const TAIL_BYTES: usize = 64 * 1024;

/// The longest line taken whole; a longer one comes in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// A line as text, without its line ending; bytes that are not UTF-8 become U+FFFD.
fn line_text(mut line: &[u8]) -> String {
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    String::from_utf8_lossy(line).into_owned()
}

/// A program's output as lines: those kept in memory, then those it writes.
pub(crate) struct LineSource {
    follower: blocking::LogFollower,
    /// Complete lines of the kept output, oldest first, not yet looked at.
    kept: std::vec::IntoIter<String>,
    /// Output received after the last complete line.
    partial: Vec<u8>,
    /// Output up to the next newline is the rest of a line whose start was lost (the
    /// follower fell behind), and is dropped.
    skip_line: bool,
    closed: bool,
}

impl LineSource {
    /// What is kept of a stream, and a follower of what comes next.
    ///
    /// # Errors
    /// [`gosuv::Error::NotFound`].
    pub(crate) fn open(
        sup: &blocking::Supervisor,
        name: &str,
        stream: Stream,
    ) -> gosuv::Result<Self> {
        let (kept, follower) = sup.tail_and_follow(name, stream, TAIL_BYTES)?;
        let mut text = kept.as_slice();
        let mut skip_line = false;
        // A full buffer has lost the stream's start: it may begin inside a line.
        if text.len() >= TAIL_BYTES {
            // The kept output starts inside a line: leave that piece out.
            match text.iter().position(|&b| b == b'\n') {
                Some(i) => text = &text[i + 1..],
                None => {
                    text = &[];
                    skip_line = true;
                }
            }
        }
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let (whole, partial) = text.split_at(complete);
        let lines: Vec<String> = match whole.strip_suffix(b"\n") {
            Some(body) => body.split(|&b| b == b'\n').map(line_text).collect(),
            None => Vec::new(),
        };
        Ok(LineSource {
            follower,
            kept: lines.into_iter(),
            partial: partial.to_vec(),
            skip_line,
            closed: false,
        })
    }

    /// The next complete line already received; at the end of the stream, what is left.
    pub(crate) fn next_line(&mut self) -> Option<String> {
        if let Some(line) = self.kept.next() {
            return Some(line);
        }
        if let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let rest = self.partial.split_off(pos + 1);
            let mut line = std::mem::replace(&mut self.partial, rest);
            line.pop();
            return Some(line_text(&line));
        }
        // A line longer than the core keeps whole is taken in pieces of that size (as the
        // core's own log check does), so output without newlines stays bounded.
        if self.partial.len() >= MAX_LINE {
            let rest = self.partial.split_off(MAX_LINE);
            let line = std::mem::replace(&mut self.partial, rest);
            return Some(line_text(&line));
        }
        if self.closed && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            return Some(line_text(&line));
        }
        None
    }

    /// Whether the stream has ended (the program was removed, or the supervisor shut down)
    /// and every line has been taken.
    pub(crate) fn ended(&self) -> bool {
        self.closed && self.partial.is_empty() && self.kept.len() == 0
    }

    /// Waits at most `wait` for more output (without the GIL).
    pub(crate) fn receive(&mut self, sup: &blocking::Supervisor, wait: Duration) {
        match self.follower.recv_timeout(wait) {
            Recv::Item(LogEvent::Data(bytes)) => {
                let mut data: &[u8] = &bytes;
                if self.skip_line {
                    match data.iter().position(|&b| b == b'\n') {
                        Some(i) => {
                            data = &data[i + 1..];
                            self.skip_line = false;
                        }
                        None => data = &[],
                    }
                }
                self.partial.extend_from_slice(data);
            }
            Recv::Item(LogEvent::Missed(_)) => {
                // What was received of the line being written is no longer a line.
                self.partial.clear();
                self.skip_line = true;
            }
            Recv::Closed => self.closed = true,
            // Buffered output comes before a timeout, so a shut-down supervisor has none left.
            Recv::Timeout if sup.as_async().is_shut_down() => self.closed = true,
            Recv::Timeout => {}
        }
    }
}

/// The first line of `name`'s `stream` that `pattern` (a compiled Python regex) finds with
/// `search`, looked for in the kept output first, then in new output until `timeout`.
pub(crate) fn wait_for_line(
    py: Python<'_>,
    sup: &Arc<blocking::Supervisor>,
    name: &str,
    stream: Stream,
    pattern: &Bound<'_, PyAny>,
    timeout: Option<Duration>,
    abandoned: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut source = py
        .detach(|| LineSource::open(sup, name, stream))
        .map_err(|e| crate::errors::to_py(py, e))?;
    let regex = pattern
        .getattr("pattern")
        .and_then(|p| p.repr())
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into());
    let output = format!("{name}'s {}", stream.as_str());
    let program = || PyString::new(py, name).into_any().unbind();
    loop {
        while let Some(line) = source.next_line() {
            if !pattern.call_method1("search", (&line,))?.is_none() {
                return Ok(line);
            }
        }
        if source.ended() {
            return Err(if sup.as_async().is_shut_down() {
                SUPERVISOR_CLOSED.err(
                    py,
                    format!("the supervisor shut down before a line of {output} matched {regex}"),
                    &[],
                )
            } else {
                PROGRAM_NOT_FOUND.err(
                    py,
                    format!("{name} was removed before a line of {output} matched {regex}"),
                    &[("program", program())],
                )
            });
        }
        let Some(wait) = slice_until(deadline) else {
            let state = sup
                .status(name)
                .ok()
                .and_then(|s| crate::convert::state(py, s.state).ok())
                .unwrap_or_else(|| py.None());
            let waited = timeout.unwrap_or_default();
            return Err(TIMEOUT.err(
                py,
                format!("no line of {output} matched {regex} within {waited:?}"),
                &[("program", program()), ("state", state)],
            ));
        };
        py.detach(|| source.receive(sup, wait));
        py.check_signals()?;
        if let Some(flag) = abandoned {
            if flag.call_method0("is_set")?.is_truthy()? {
                return Err(GOSUV_ERROR.err(py, "the wait was abandoned".into(), &[]));
            }
        }
    }
}
