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

use pyo3::IntoPyObjectExt;

use crate::aio::{AioHub, Emitter, Finish, Held};
use crate::errors::{PROGRAM_NOT_FOUND, SUPERVISOR_CLOSED, TIMEOUT};
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
    lines: Lines,
}

/// A program's output cut into lines: the kept output, then what a follower receives.
pub(crate) struct Lines {
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
        Ok(LineSource {
            follower,
            lines: Lines::new(&kept),
        })
    }

    /// The next complete line already received; at the end of the stream, what is left.
    pub(crate) fn next_line(&mut self) -> Option<String> {
        self.lines.next_line()
    }

    /// Whether the stream has ended (the program was removed, or the supervisor shut down)
    /// and every line has been taken.
    pub(crate) fn ended(&self) -> bool {
        self.lines.ended()
    }

    /// Waits at most `wait` for more output (without the GIL).
    pub(crate) fn receive(&mut self, sup: &blocking::Supervisor, wait: Duration) {
        let got = self.follower.recv_timeout(wait);
        self.lines.feed(got, sup.as_async());
    }
}

impl Lines {
    /// The lines of `kept` (the last [`TAIL_BYTES`] of a stream, or less), then nothing yet.
    fn new(kept: &[u8]) -> Self {
        let mut text = kept;
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
        Lines {
            kept: lines.into_iter(),
            partial: partial.to_vec(),
            skip_line,
            closed: false,
        }
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

    /// Takes what a follower's receive gave (`Timeout`: nothing in a slice of waiting).
    fn feed(&mut self, got: Recv<LogEvent>, sup: &gosuv::Supervisor) {
        match got {
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
            Recv::Timeout if sup.is_shut_down() => self.closed = true,
            Recv::Timeout => {}
        }
    }
}

/// Why a wait for a line ended without one.
pub(crate) enum NoLine {
    /// The stream ended; whether because the supervisor shut down.
    Ended { shut_down: bool },
    /// The timeout passed; the program's state then.
    Timeout(Option<gosuv::ProgramState>),
}

/// What identifies a wait for a line in its errors.
#[derive(Clone)]
pub(crate) struct Wanted {
    pub(crate) name: String,
    pub(crate) stream: Stream,
    /// The regex's pattern, as Python's `repr`.
    pub(crate) regex: String,
    pub(crate) timeout: Option<Duration>,
}

impl Wanted {
    /// The repr of a compiled regex's pattern, for messages.
    pub(crate) fn regex_repr(pattern: &Bound<'_, PyAny>) -> String {
        pattern
            .getattr("pattern")
            .and_then(|p| p.repr())
            .map(|r| r.to_string())
            .unwrap_or_else(|_| "?".into())
    }

    /// The exception of a wait that ended without a line.
    pub(crate) fn error(&self, py: Python<'_>, why: NoLine) -> PyErr {
        let Wanted {
            name,
            stream,
            regex,
            timeout,
        } = self;
        let output = format!("{name}'s {}", stream.as_str());
        let program = || PyString::new(py, name).into_any().unbind();
        match why {
            NoLine::Ended { shut_down: true } => SUPERVISOR_CLOSED.err(
                py,
                format!("the supervisor shut down before a line of {output} matched {regex}"),
                &[],
            ),
            NoLine::Ended { shut_down: false } => PROGRAM_NOT_FOUND.err(
                py,
                format!("{name} was removed before a line of {output} matched {regex}"),
                &[("program", program())],
            ),
            NoLine::Timeout(state) => {
                let state = state
                    .and_then(|s| crate::convert::state(py, s).ok())
                    .unwrap_or_else(|| py.None());
                let waited = timeout.unwrap_or_default();
                TIMEOUT.err(
                    py,
                    format!("no line of {output} matched {regex} within {waited:?}"),
                    &[("program", program()), ("state", state)],
                )
            }
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
) -> PyResult<String> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut source = py
        .detach(|| LineSource::open(sup, name, stream))
        .map_err(|e| crate::errors::to_py(py, e))?;
    let wanted = Wanted {
        name: name.to_string(),
        stream,
        regex: Wanted::regex_repr(pattern),
        timeout,
    };
    loop {
        while let Some(line) = source.next_line() {
            if !pattern.call_method1("search", (&line,))?.is_none() {
                return Ok(line);
            }
        }
        if source.ended() {
            let shut_down = sup.as_async().is_shut_down();
            return Err(wanted.error(py, NoLine::Ended { shut_down }));
        }
        let Some(wait) = slice_until(deadline) else {
            let state = sup.status(name).ok().map(|s| s.state);
            return Err(wanted.error(py, NoLine::Timeout(state)));
        };
        py.detach(|| source.receive(sup, wait));
        py.check_signals()?;
    }
}

/// `wait_for_line` for `gosuv.aio`, made by `Supervisor._line_wait`: one task of
/// gosuv.aio's runtime (`_aio_start`) follows the program's output and hands its lines to
/// the event loop's thread in batches, where the regex matches them (Python's `re`, as the
/// blocking `wait_for_line`). It hands the next batch once the loop asks for it
/// (`_aio_more`), so a chatty program costs a wake-up of the loop per batch, never a thread
/// or a task. It ends at once when the loop abandons it (a match, a cancelled await, the
/// shutdown of the gosuv.aio supervisor), and with an error at the timeout or when the
/// stream ends.
#[pyclass(frozen, module = "gosuv._native")]
pub struct LineWait {
    sup: Arc<blocking::Supervisor>,
    wanted: Wanted,
    deadline: Option<Instant>,
    /// A permit for the task to hand its next batch.
    more: Arc<tokio::sync::Notify>,
}

impl LineWait {
    pub(crate) fn new(sup: Arc<blocking::Supervisor>, wanted: Wanted) -> Self {
        let deadline = wanted.timeout.map(|t| Instant::now() + t);
        LineWait {
            sup,
            wanted,
            deadline,
            more: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// The shortest time between two batches of a wait for a line: a chatty program's lines
/// wake the loop's thread at most 100 times a second, and a match comes at most this late.
const BATCH_SPACING: Duration = Duration::from_millis(10);

/// How many pieces of output already received a batch takes at most.
const MORE_EVENTS: usize = 256;

/// The wait's task: batches of lines through `emitter`, until the stream ends or the
/// deadline passes (then the error is its result), or the task is aborted.
async fn follow_lines(
    sup: Held,
    wanted: Wanted,
    deadline: Option<Instant>,
    more: Arc<tokio::sync::Notify>,
    emitter: Emitter,
) -> Finish {
    let fail =
        |why: NoLine, wanted: Wanted| -> Finish { Box::new(move |py| Err(wanted.error(py, why))) };
    let core = sup.as_async();
    let (kept, mut follower) = match core.tail_and_follow(&wanted.name, wanted.stream, TAIL_BYTES) {
        Ok(opened) => opened,
        Err(e) => return Box::new(move |py| Err(crate::errors::to_py(py, e))),
    };
    let mut lines = Lines::new(&kept);
    drop(kept);
    loop {
        let batch: Vec<String> = std::iter::from_fn(|| lines.next_line()).collect();
        if !batch.is_empty() {
            let next = tokio::time::Instant::now() + BATCH_SPACING;
            emitter.emit(Box::new(move |py| batch.into_py_any(py)));
            // The loop asks for more once it has looked at this batch (or abandons the wait);
            // the lines written meanwhile make the next batch.
            more.notified().await;
            let next = deadline.map_or(next, |d| next.min(tokio::time::Instant::from_std(d)));
            tokio::time::sleep_until(next).await;
            continue;
        }
        if lines.ended() {
            let shut_down = core.is_shut_down();
            return fail(NoLine::Ended { shut_down }, wanted);
        }
        let Some(wait) = slice_until(deadline) else {
            let state = core.status(&wanted.name).ok().map(|s| s.state);
            return fail(NoLine::Timeout(state), wanted);
        };
        let got = match tokio::time::timeout(wait, follower.recv()).await {
            Ok(Some(event)) => Recv::Item(event),
            Ok(None) => Recv::Closed,
            Err(_) => Recv::Timeout,
        };
        let more_data = matches!(got, Recv::Item(_));
        lines.feed(got, core);
        // What else has come already goes into the same batch (a bounded amount).
        for _ in 0..MORE_EVENTS {
            if !more_data {
                break;
            }
            match tokio::time::timeout(Duration::ZERO, follower.recv()).await {
                Ok(Some(event)) => lines.feed(Recv::Item(event), core),
                Ok(None) => {
                    lines.feed(Recv::Closed, core);
                    break;
                }
                Err(_) => break,
            }
        }
    }
}

#[pymethods]
impl LineWait {
    /// Starts the wait's task on `hub`; returns the call's id. Its results: batches of lines
    /// (lists of `str`, never empty, each one after `_aio_more`), then, last, the exception
    /// of `wait_for_line` when the stream ends or the timeout passes. Started once.
    fn _aio_start(&self, py: Python<'_>, hub: &AioHub) -> PyResult<u64> {
        let sup = Held::new(self.sup.clone());
        let wanted = self.wanted.clone();
        let deadline = self.deadline;
        let more = self.more.clone();
        hub.submit_stream(py, move |emitter| {
            Box::pin(follow_lines(sup, wanted, deadline, more, emitter))
        })
    }

    /// Lets the task hand its next batch (the loop's thread found no match in the last).
    fn _aio_more(&self) {
        self.more.notify_one();
    }
}
