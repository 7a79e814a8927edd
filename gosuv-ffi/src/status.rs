//! Plain C structs and enums for a program's state, status and resource use.

use std::ffi::{c_char, CStr};
use std::time::{SystemTime, UNIX_EPOCH};

use gosuv_core::{ProcessStats, ProgramState, ProgramStatus, Stream};

use crate::error::{guard_value, Error, Result};

/// A program's state (supervisord's model). The numbers are stable and equal to the core's.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_state {
    /// Not running, and not asked to run.
    Stopped = 0,
    /// Spawned, not yet up for `start_seconds` (or, with a `ready` probe, not yet ready).
    Starting = 1,
    /// Up for at least `start_seconds`, or, with a `ready` probe, ready.
    Running = 2,
    /// A start failed; waiting before the next try.
    Backoff = 3,
    /// The stop signal was sent; waiting for all of its processes to go.
    Stopping = 4,
    /// Was running and exited; `autorestart` decided not to start it again.
    Exited = 5,
    /// `start_retries` starts in a row failed; given up until the next start.
    Fatal = 6,
    /// Asked to start, waiting for its `depends_on` to be satisfied.
    Waiting = 7,
}

impl From<ProgramState> for gosuv_state {
    fn from(s: ProgramState) -> Self {
        match s {
            ProgramState::Stopped => gosuv_state::Stopped,
            ProgramState::Starting => gosuv_state::Starting,
            ProgramState::Running => gosuv_state::Running,
            ProgramState::Backoff => gosuv_state::Backoff,
            ProgramState::Stopping => gosuv_state::Stopping,
            ProgramState::Exited => gosuv_state::Exited,
            ProgramState::Fatal => gosuv_state::Fatal,
            ProgramState::Waiting => gosuv_state::Waiting,
        }
    }
}

/// The core's state for a number a C caller passed.
pub(crate) fn state_arg(n: u32) -> Result<ProgramState> {
    ProgramState::ALL
        .into_iter()
        .find(|s| *s as u8 as u32 == n)
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{n} is not a gosuv_state: use GOSUV_STATE_STOPPED (0) to GOSUV_STATE_WAITING (7)"
            ))
        })
}

/// Which output of a program.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_stream {
    /// Standard output (and standard error with `redirect_stderr`).
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

/// The core's stream for a number a C caller passed.
pub(crate) fn stream_arg(n: u32) -> Result<Stream> {
    match n {
        0 => Ok(Stream::Stdout),
        1 => Ok(Stream::Stderr),
        _ => Err(Error::Invalid(format!(
            "{n} is not a gosuv_stream: use GOSUV_STREAM_STDOUT (0) or GOSUV_STREAM_STDERR (1)"
        ))),
    }
}

impl From<Stream> for gosuv_stream {
    fn from(s: Stream) -> Self {
        match s {
            Stream::Stdout => gosuv_stream::Stdout,
            Stream::Stderr => gosuv_stream::Stderr,
        }
    }
}

/// Milliseconds since the Unix epoch (negative before it).
pub(crate) fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// One program's status: a plain value the caller owns; it holds no pointers. How gosuv owns
/// the program's processes (cgroup or process group), and its readiness (when it became
/// ready, its health checks, its `STATUS=` text, the dependencies it waits for) are in
/// `gosuv_supervisor_status_json()`.
///
/// The caller allocates it and gosuv writes all of it, so its size is part of the ABI: a new
/// field would overrun the struct of a program built against an older `gosuv.h`, and none
/// is added.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gosuv_program_status {
    /// Its state.
    pub state: gosuv_state,
    /// The leader's pid while a process exists, else 0.
    pub pid: u32,
    /// Whether `exit_code` holds the exit code of the last process that exited normally.
    /// Neither this nor `exit_signal` is set when the exit was seen but its status is unknown
    /// (another process, such as a host that reaps every child, reaped it first).
    pub has_exit_code: bool,
    /// The exit code of the last process that exited normally (valid when `has_exit_code`).
    pub exit_code: i32,
    /// The signal that killed the last process, or 0 (also when its status is unknown).
    pub exit_signal: i32,
    /// Automatic restarts and retries since the program was added.
    pub restarts: u64,
    /// Seconds since the current process started, or 0 when there is none.
    pub uptime_secs: f64,
    /// When the current process started, in milliseconds since the Unix epoch, or 0.
    pub started_at_ms: i64,
    /// Failed writes to its log files.
    pub log_errors: u64,
    /// Whether the program has a last error (why its last start failed); read it with
    /// `gosuv_supervisor_program_error()`.
    pub has_last_error: bool,
}

impl From<&ProgramStatus> for gosuv_program_status {
    fn from(s: &ProgramStatus) -> Self {
        gosuv_program_status {
            state: s.state.into(),
            pid: s.pid.unwrap_or(0),
            has_exit_code: s.exit_code.is_some(),
            exit_code: s.exit_code.unwrap_or(0),
            exit_signal: s.exit_signal.unwrap_or(0),
            restarts: s.restarts,
            uptime_secs: s.uptime_secs.unwrap_or(0.0),
            started_at_ms: s.started_at.map_or(0, unix_ms),
            log_errors: s.log_errors,
            has_last_error: s.last_error.is_some(),
        }
    }
}

/// CPU and memory of all of a program's processes: a plain value the caller owns.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct gosuv_process_stats {
    /// The program's processes (0 when it has none).
    pub processes: u32,
    /// CPU use in percent of one core since the previous sample of this program (the first
    /// sample gives the average since the process started); may pass 100 on several cores.
    pub cpu_percent: f64,
    /// Resident memory of the program, in bytes: its cgroup's memory where the kernel
    /// counts it, else the sum of its processes' RSS.
    pub rss_bytes: u64,
    /// User plus system CPU time of the live processes, in seconds.
    pub cpu_seconds: f64,
}

impl From<&ProcessStats> for gosuv_process_stats {
    fn from(s: &ProcessStats) -> Self {
        gosuv_process_stats {
            processes: u32::try_from(s.pids.len()).unwrap_or(u32::MAX),
            cpu_percent: s.cpu_percent,
            rss_bytes: s.rss_bytes,
            cpu_seconds: s.cpu_seconds,
        }
    }
}

/// The lowercase name of a state (`"running"`), or `"unknown"` for a number that is not one.
///
/// # Safety
/// Always safe to call, from any thread. The string is static: never free it.
#[no_mangle]
pub extern "C" fn gosuv_state_name(state: u32) -> *const c_char {
    guard_value(c"unknown".as_ptr(), || state_name(state).as_ptr())
}

fn state_name(state: u32) -> &'static CStr {
    match state_arg(state) {
        Ok(ProgramState::Stopped) => c"stopped",
        Ok(ProgramState::Starting) => c"starting",
        Ok(ProgramState::Running) => c"running",
        Ok(ProgramState::Backoff) => c"backoff",
        Ok(ProgramState::Stopping) => c"stopping",
        Ok(ProgramState::Exited) => c"exited",
        Ok(ProgramState::Fatal) => c"fatal",
        Ok(ProgramState::Waiting) => c"waiting",
        Err(_) => c"unknown",
    }
}
