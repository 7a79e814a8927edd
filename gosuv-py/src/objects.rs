//! The immutable objects calls return: a program's status (with its health record), its
//! stats, a reload's report and a state-change event.

use pyo3::prelude::*;

use crate::convert;

fn opt_repr<T: std::fmt::Debug>(v: &Option<T>) -> String {
    match v {
        Some(v) => format!("{v:?}"),
        None => "None".into(),
    }
}

fn state_repr(py: Python<'_>, s: &Py<PyAny>) -> String {
    s.bind(py)
        .repr()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A program's status at one moment.
#[pyclass(frozen, get_all, module = "gosuv")]
pub struct Status {
    /// The program's name.
    name: String,
    /// Its state, a `gosuv.State`.
    state: Py<PyAny>,
    /// The leader's pid while a process exists.
    pid: Option<u32>,
    /// When the current process started (an aware `datetime` in UTC).
    started_at: Option<Py<PyAny>>,
    /// Seconds since the current process started.
    uptime: Option<f64>,
    /// The exit code of the last process that exited normally.
    exit_code: Option<i32>,
    /// The signal that killed the last process, if one did. Both are `None` after an exit
    /// whose status another part of the process took (a host that reaps every child).
    exit_signal: Option<i32>,
    /// Automatic restarts and retries since the program was added.
    restarts: u64,
    /// Why the last start failed, until the program next reaches `running`; or why gosuv last
    /// restarted it (over `memory_max`).
    last_error: Option<String>,
    /// Failed writes to its log files.
    log_errors: u64,
    /// How gosuv owns the processes of its current (or last) run: `"cgroup"` (a cgroup of its
    /// own) or `"group"` (its process group); `None` before its first start.
    ownership: Option<String>,
    /// When the current run became `running` (ready, with a `ready` probe), an aware
    /// `datetime` in UTC; `None` while it is not running.
    ready_at: Option<Py<PyAny>>,
    /// What the program last said with `STATUS=` on `$NOTIFY_SOCKET`.
    status_text: Option<String>,
    /// Its health probe's record, when it has a `health` probe.
    health: Option<Py<HealthStatus>>,
    /// In `waiting`: the dependencies not yet satisfied, by name (empty otherwise).
    waiting_for: Vec<String>,
}

impl Status {
    pub(crate) fn new(py: Python<'_>, s: gosuv::ProgramStatus) -> PyResult<Self> {
        Ok(Status {
            state: convert::state(py, s.state)?,
            started_at: s.started_at.map(|t| convert::datetime(py, t)).transpose()?,
            name: s.name,
            pid: s.pid,
            uptime: s.uptime_secs,
            exit_code: s.exit_code,
            exit_signal: s.exit_signal,
            restarts: s.restarts,
            last_error: s.last_error,
            log_errors: s.log_errors,
            ownership: s.ownership.map(|o| o.as_str().to_owned()),
            ready_at: s.ready_at.map(|t| convert::datetime(py, t)).transpose()?,
            status_text: s.status_text,
            health: s
                .health
                .map(|h| Py::new(py, HealthStatus::from(h)))
                .transpose()?,
            waiting_for: s.waiting_for,
        })
    }
}

#[pymethods]
impl Status {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Status(name={:?}, state={}, pid={}, exit_code={}, exit_signal={}, restarts={}, last_error={}, ownership={}, waiting_for={:?})",
            self.name,
            state_repr(py, &self.state),
            opt_repr(&self.pid),
            opt_repr(&self.exit_code),
            opt_repr(&self.exit_signal),
            self.restarts,
            opt_repr(&self.last_error),
            opt_repr(&self.ownership),
            self.waiting_for,
        )
    }
}

/// The record of a program's health probe.
#[pyclass(frozen, get_all, module = "gosuv")]
pub struct HealthStatus {
    /// Failed attempts since the program was added.
    failures: u64,
    /// Failed attempts in a row now; the probe's `failures` in a row restart the program.
    failing: u32,
    /// The last failure, worded for a user.
    last_error: Option<String>,
}

impl From<gosuv::HealthStatus> for HealthStatus {
    fn from(h: gosuv::HealthStatus) -> Self {
        HealthStatus {
            failures: h.failures,
            failing: h.failing,
            last_error: h.last_error,
        }
    }
}

#[pymethods]
impl HealthStatus {
    fn __repr__(&self) -> String {
        format!(
            "HealthStatus(failures={}, failing={}, last_error={})",
            self.failures,
            self.failing,
            opt_repr(&self.last_error),
        )
    }
}

/// CPU and memory of a program's whole process tree.
#[pyclass(frozen, get_all, module = "gosuv")]
pub struct Stats {
    /// Every process of the tree, leader first (empty when it has no process).
    pids: Vec<u32>,
    /// CPU use in percent of one core since the previous sample of this program.
    cpu_percent: f64,
    /// Resident memory of the tree, in bytes.
    rss_bytes: u64,
    /// User plus system CPU time of the live processes, in seconds.
    cpu_seconds: f64,
}

impl From<gosuv::ProcessStats> for Stats {
    fn from(s: gosuv::ProcessStats) -> Self {
        Stats {
            pids: s.pids,
            cpu_percent: s.cpu_percent,
            rss_bytes: s.rss_bytes,
            cpu_seconds: s.cpu_seconds,
        }
    }
}

#[pymethods]
impl Stats {
    fn __repr__(&self) -> String {
        format!(
            "Stats(pids={:?}, cpu_percent={:.1}, rss_bytes={}, cpu_seconds={:.2})",
            self.pids, self.cpu_percent, self.rss_bytes, self.cpu_seconds
        )
    }
}

/// What a reload did, by program name.
#[pyclass(frozen, get_all, module = "gosuv")]
pub struct ReloadReport {
    /// Programs that were not there before.
    added: Vec<String>,
    /// Programs whose config changed (restarted if they had a process).
    changed: Vec<String>,
    /// Programs that are gone (stopped first).
    removed: Vec<String>,
}

impl From<gosuv::ReloadReport> for ReloadReport {
    fn from(r: gosuv::ReloadReport) -> Self {
        ReloadReport {
            added: r.added,
            changed: r.changed,
            removed: r.removed,
        }
    }
}

#[pymethods]
impl ReloadReport {
    fn __repr__(&self) -> String {
        format!(
            "ReloadReport(added={:?}, changed={:?}, removed={:?})",
            self.added, self.changed, self.removed
        )
    }
}

/// One state change of one program.
#[pyclass(frozen, get_all, module = "gosuv")]
pub struct Event {
    /// The program's name.
    program: String,
    /// The state it left.
    from_state: Py<PyAny>,
    /// The state it entered.
    to_state: Py<PyAny>,
    /// The process concerned, when there is one.
    pid: Option<u32>,
    /// The exit code, on a change caused by an exit.
    exit_code: Option<i32>,
    /// The signal that killed the process, on a change caused by one. Both are `None` on an
    /// exit whose status another part of the process took (a host that reaps every child).
    exit_signal: Option<i32>,
    /// When it happened (an aware `datetime` in UTC).
    at: Py<PyAny>,
    /// Why, where gosuv knows more than the states say: the probe that found it ready, the
    /// dependency that made it `fatal`, a failed health check (an event from `running` to
    /// `running`).
    reason: Option<String>,
}

impl Event {
    pub(crate) fn new(py: Python<'_>, e: gosuv::Event) -> PyResult<Self> {
        Ok(Event {
            from_state: convert::state(py, e.from)?,
            to_state: convert::state(py, e.to)?,
            at: convert::datetime(py, e.at)?,
            program: e.program,
            pid: e.pid,
            exit_code: e.exit_code,
            exit_signal: e.exit_signal,
            reason: e.reason,
        })
    }
}

#[pymethods]
impl Event {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Event(program={:?}, from_state={}, to_state={}, pid={}, exit_code={}, exit_signal={}, reason={})",
            self.program,
            state_repr(py, &self.from_state),
            state_repr(py, &self.to_state),
            opt_repr(&self.pid),
            opt_repr(&self.exit_code),
            opt_repr(&self.exit_signal),
            opt_repr(&self.reason),
        )
    }
}
