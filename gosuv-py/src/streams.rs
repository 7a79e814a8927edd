//! Live streams as Python iterators: state-change events and a program's output lines.
//!
//! Each waits in short slices without the GIL and checks for signals between them, so that
//! `for line in sup.follow("web")` stops on Ctrl-C. A stream holds only a weak reference to
//! its supervisor: it ends when the supervisor shuts down or is dropped, and never keeps the
//! programs alive.
//!
//! The streams are the core's blocking ones (`gosuv::blocking::Events`, `LogFollower`),
//! received in slices with `recv_timeout`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use gosuv::blocking::{self, Recv};
use gosuv::{EventNotice, LogEvent};
use pyo3::prelude::*;
use pyo3::IntoPyObjectExt;

use crate::aio::{self, AioHub};
use crate::convert;
use crate::interrupt::SLICE;
use crate::objects::Event;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The wait of one slice, at most until `deadline`; `None` when the deadline has passed.
pub(crate) fn slice_until(deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(SLICE),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            (!left.is_zero()).then(|| left.min(SLICE))
        }
    }
}

/// What one slice of waiting gave.
enum Slice<T> {
    Item(T),
    Nothing,
    Closed,
}

/// Every program's state changes from the moment `Supervisor.events()` was called.
///
/// Iterating blocks until the next event and ends when the supervisor shuts down; `get`
/// waits at most a timeout. Events a slow reader missed are counted in `missed`.
#[pyclass(frozen, module = "gosuv")]
pub struct Events {
    core: Arc<EventsCore>,
}

/// The state of an `Events`, shared with the threads of `gosuv.aio`'s waits.
struct EventsCore {
    /// `None` once closed.
    inner: Mutex<Option<blocking::Events>>,
    sup: Weak<blocking::Supervisor>,
    missed: AtomicU64,
    closed: AtomicBool,
}

impl Events {
    pub(crate) fn new(inner: blocking::Events, sup: Weak<blocking::Supervisor>) -> PyResult<Self> {
        Ok(Events {
            core: Arc::new(EventsCore {
                inner: Mutex::new(Some(inner)),
                sup,
                missed: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        })
    }
}

impl EventsCore {
    fn one_slice(&self, wait: Duration) -> Slice<gosuv::Event> {
        let Some(sup) = self.sup.upgrade() else {
            return Slice::Closed;
        };
        let mut guard = lock(&self.inner);
        let Some(inner) = guard.as_mut() else {
            return Slice::Closed;
        };
        if self.closed.load(Ordering::Relaxed) {
            *guard = None;
            return Slice::Closed;
        }
        self.receive(inner, wait, &sup)
    }

    fn receive(
        &self,
        inner: &mut blocking::Events,
        wait: Duration,
        sup: &blocking::Supervisor,
    ) -> Slice<gosuv::Event> {
        match inner.recv_timeout(wait) {
            Recv::Item(EventNotice::Changed(ev)) => Slice::Item(ev),
            Recv::Item(EventNotice::Missed(n)) => {
                self.missed.fetch_add(n, Ordering::Relaxed);
                Slice::Nothing
            }
            Recv::Closed => Slice::Closed,
            // Buffered events come before a timeout, so a shut-down supervisor has none left.
            Recv::Timeout if sup.as_async().is_shut_down() => Slice::Closed,
            Recv::Timeout => Slice::Nothing,
        }
    }

    /// The next event, until `deadline` or `abandoned` (a `gosuv.aio` thread; no GIL).
    fn wait_event(
        &self,
        deadline: Option<Instant>,
        abandoned: &AtomicBool,
    ) -> Option<gosuv::Event> {
        loop {
            if self.closed.load(Ordering::Relaxed) || abandoned.load(Ordering::Relaxed) {
                return None;
            }
            match self.one_slice(slice_until(deadline)?) {
                Slice::Item(ev) => return Some(ev),
                Slice::Nothing => {}
                Slice::Closed => self.closed.store(true, Ordering::Relaxed),
            }
        }
    }

    fn next_event(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Option<Event>> {
        loop {
            if self.closed.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let Some(wait) = slice_until(deadline) else {
                return Ok(None);
            };
            match py.detach(|| self.one_slice(wait)) {
                Slice::Item(ev) => return Event::new(py, ev).map(Some),
                Slice::Nothing => py.check_signals()?,
                Slice::Closed => self.closed.store(true, Ordering::Relaxed),
            }
        }
    }
}

#[pymethods]
impl Events {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        self.core.next_event(py, None)
    }

    /// The next event, waiting at most `timeout` seconds (`None`: no limit). Returns `None`
    /// when none came in time or the stream has ended (see `closed`).
    #[pyo3(signature = (timeout = None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Event>> {
        let deadline = convert::optional_timeout(py, timeout)?.map(|t| Instant::now() + t);
        self.core.next_event(py, deadline)
    }

    /// An event already received, without waiting; `None` when there is none now (or a
    /// wait of another thread is reading). For `gosuv.aio`, which must not block its loop.
    fn _poll(&self, py: Python<'_>) -> PyResult<Option<Event>> {
        if self.core.closed.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let Ok(mut guard) = self.core.inner.try_lock() else {
            return Ok(None);
        };
        let (Some(inner), Some(sup)) = (guard.as_mut(), self.core.sup.upgrade()) else {
            self.core.closed.store(true, Ordering::Relaxed);
            return Ok(None);
        };
        match self.core.receive(inner, Duration::ZERO, &sup) {
            Slice::Item(ev) => Event::new(py, ev).map(Some),
            Slice::Nothing => Ok(None),
            Slice::Closed => {
                self.core.closed.store(true, Ordering::Relaxed);
                Ok(None)
            }
        }
    }

    /// Submits the wait for the next event (`None`: none within `timeout` seconds, the
    /// stream ended, or the wait was abandoned) to `hub`, for `gosuv.aio`; returns the
    /// call's id.
    fn _aio_get(&self, py: Python<'_>, hub: &AioHub, timeout: Option<f64>) -> PyResult<u64> {
        let deadline = convert::optional_timeout(py, timeout)?.map(|t| Instant::now() + t);
        let core = self.core.clone();
        hub.submit(
            py,
            Box::new(move |abandoned| {
                let got = core.wait_event(deadline, abandoned);
                drop(core);
                Box::new(move |py| match got {
                    Some(ev) => Event::new(py, ev)?.into_py_any(py),
                    None => Ok(py.None()),
                })
            }),
        )
    }

    /// Ends the stream: iterating stops, `get` returns `None`, and the subscription is let
    /// go. Calling it again does nothing.
    fn close(&self) {
        self.core.closed.store(true, Ordering::Relaxed);
        // A wait of another thread holds the lock for one slice at most; it lets go then.
        if let Ok(mut guard) = self.core.inner.try_lock() {
            *guard = None;
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }

    /// How many events were dropped because this reader fell more than 4096 behind.
    #[getter]
    fn missed(&self) -> u64 {
        self.core.missed.load(Ordering::Relaxed)
    }

    /// Whether the stream has ended: the supervisor has shut down or is gone.
    #[getter]
    fn closed(&self) -> bool {
        self.core.closed.load(Ordering::Relaxed)
    }
}

struct FollowState {
    /// `None` once closed.
    inner: Option<blocking::LogFollower>,
    /// Output received after the last complete line.
    partial: Vec<u8>,
    closed: bool,
}

impl FollowState {
    /// The next complete line, without its line ending; at the end, what is left.
    fn take_line(&mut self) -> Option<String> {
        if let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
            let rest = self.partial.split_off(pos + 1);
            let mut line = std::mem::replace(&mut self.partial, rest);
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
        if self.closed && !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            return Some(String::from_utf8_lossy(&line).into_owned());
        }
        None
    }
}

/// One program's output as lines (`str`, without the line ending), from the moment
/// `Supervisor.follow()` was called, across restarts.
///
/// Iterating blocks until the next line and ends when the program is removed or the
/// supervisor shuts down; `get` waits at most a timeout. Bytes that are not UTF-8 are
/// replaced by U+FFFD. Output a slow reader missed is counted, in bytes, in `missed`.
#[pyclass(frozen, module = "gosuv")]
pub struct LogFollower {
    core: Arc<FollowerCore>,
}

/// The state of a `LogFollower`, shared with the threads of `gosuv.aio`'s waits.
struct FollowerCore {
    state: Mutex<FollowState>,
    sup: Weak<blocking::Supervisor>,
    missed: AtomicU64,
    /// Set by `close()`: the next wait lets go of the subscription.
    shut: AtomicBool,
    /// Whether the stream has ended and every line has been read: kept outside `state` so
    /// that reading `closed` never waits for the lock a wait of another thread holds.
    ended: AtomicBool,
}

impl LogFollower {
    pub(crate) fn new(
        inner: blocking::LogFollower,
        sup: Weak<blocking::Supervisor>,
    ) -> PyResult<Self> {
        Ok(LogFollower {
            core: Arc::new(FollowerCore {
                state: Mutex::new(FollowState {
                    inner: Some(inner),
                    partial: Vec::new(),
                    closed: false,
                }),
                sup,
                missed: AtomicU64::new(0),
                shut: AtomicBool::new(false),
                ended: AtomicBool::new(false),
            }),
        })
    }
}

impl FollowerCore {
    /// The next line, until `deadline` or `abandoned` (a `gosuv.aio` thread; no GIL).
    fn wait_line(&self, deadline: Option<Instant>, abandoned: &AtomicBool) -> Option<String> {
        loop {
            if abandoned.load(Ordering::Relaxed) {
                return None;
            }
            match self.one_slice(slice_until(deadline)) {
                Slice::Item(line) => return Some(line),
                Slice::Closed => return None,
                Slice::Nothing => {}
            }
        }
    }

    fn one_slice(&self, wait: Option<Duration>) -> Slice<String> {
        let mut st = lock(&self.state);
        let got = self.slice_locked(&mut st, wait);
        self.publish(&st);
        got
    }

    /// Records in `ended` whether the stream has ended and every line has been read (once
    /// true, it stays true: nothing is received after the end). Called before each unlock.
    fn publish(&self, st: &FollowState) {
        if st.closed && st.partial.is_empty() {
            self.ended.store(true, Ordering::Relaxed);
        }
    }

    fn slice_locked(&self, st: &mut FollowState, wait: Option<Duration>) -> Slice<String> {
        if self.shut.load(Ordering::Relaxed) {
            st.inner = None;
            st.partial.clear();
            st.closed = true;
        }
        if let Some(line) = st.take_line() {
            return Slice::Item(line);
        }
        if st.closed {
            return Slice::Closed;
        }
        let Some(wait) = wait else {
            // The deadline has passed and no complete line is there.
            return Slice::Closed;
        };
        self.receive(st, wait);
        Slice::Nothing
    }

    /// Waits at most `wait` for more output.
    fn receive(&self, st: &mut FollowState, wait: Duration) {
        let (Some(sup), Some(inner)) = (self.sup.upgrade(), st.inner.as_mut()) else {
            st.closed = true;
            return;
        };
        match inner.recv_timeout(wait) {
            Recv::Item(LogEvent::Data(bytes)) => st.partial.extend_from_slice(&bytes),
            Recv::Item(LogEvent::Missed(n)) => {
                self.missed.fetch_add(n, Ordering::Relaxed);
            }
            Recv::Closed => st.closed = true,
            Recv::Timeout if sup.as_async().is_shut_down() => st.closed = true,
            Recv::Timeout => {}
        }
    }

    fn next_line(&self, py: Python<'_>, deadline: Option<Instant>) -> PyResult<Option<String>> {
        loop {
            let wait = slice_until(deadline);
            match py.detach(|| self.one_slice(wait)) {
                Slice::Item(line) => return Ok(Some(line)),
                Slice::Closed => return Ok(None),
                Slice::Nothing => py.check_signals()?,
            }
        }
    }
}

#[pymethods]
impl LogFollower {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<String>> {
        self.core.next_line(py, None)
    }

    /// The next line, waiting at most `timeout` seconds (`None`: no limit). Returns `None`
    /// when no complete line came in time or the stream has ended (see `closed`).
    #[pyo3(signature = (timeout = None))]
    fn get(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<String>> {
        let deadline = convert::optional_timeout(py, timeout)?.map(|t| Instant::now() + t);
        self.core.next_line(py, deadline)
    }

    /// A line already received, without waiting; `None` when there is none now (or a wait
    /// of another thread is reading). For `gosuv.aio`, which must not block its loop.
    fn _poll(&self) -> Option<String> {
        if self.core.shut.load(Ordering::Relaxed) {
            return None;
        }
        let mut st = self.core.state.try_lock().ok()?;
        let mut line = st.take_line();
        if line.is_none() && !st.closed {
            self.core.receive(&mut st, Duration::ZERO);
            line = st.take_line();
        }
        self.core.publish(&st);
        line
    }

    /// Submits the wait for the next line (`None`: none within `timeout` seconds, the stream
    /// ended, or the wait was abandoned) to `hub`, for `gosuv.aio`; returns the call's id.
    fn _aio_get(&self, py: Python<'_>, hub: &AioHub, timeout: Option<f64>) -> PyResult<u64> {
        let deadline = convert::optional_timeout(py, timeout)?.map(|t| Instant::now() + t);
        let core = self.core.clone();
        hub.submit(
            py,
            Box::new(move |abandoned| {
                let got = core.wait_line(deadline, abandoned);
                drop(core);
                aio::give(got)
            }),
        )
    }

    /// Ends the stream: iterating stops, `get` returns `None`, and the subscription is let
    /// go (lines received and not yet read are dropped). Calling it again does nothing.
    fn close(&self) {
        self.core.shut.store(true, Ordering::Relaxed);
        // A wait of another thread holds the lock for one slice at most; it lets go then.
        if let Ok(mut st) = self.core.state.try_lock() {
            st.inner = None;
            st.partial.clear();
            st.closed = true;
            self.core.publish(&st);
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> bool {
        self.close();
        false
    }

    /// How many bytes of output were skipped because this reader fell behind.
    #[getter]
    fn missed(&self) -> u64 {
        self.core.missed.load(Ordering::Relaxed)
    }

    /// Whether the stream has ended and every line has been read. Never waits (a wait of
    /// another thread may hold the follower's state).
    #[getter]
    fn closed(&self) -> bool {
        self.core.shut.load(Ordering::Relaxed) || self.core.ended.load(Ordering::Relaxed)
    }
}
