//! Program states and the state-change events every front end shows.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A program's state: supervisord's model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ProgramState {
    /// Not running, and not asked to run.
    Stopped = 0,
    /// Spawned, not yet up for `start_seconds`.
    Starting = 1,
    /// Up for at least `start_seconds`.
    Running = 2,
    /// A start failed; waiting before the next try.
    Backoff = 3,
    /// The stop signal was sent; waiting for the whole process group to go.
    Stopping = 4,
    /// Was running and exited; `autorestart` decided not to start it again.
    Exited = 5,
    /// `start_retries` starts in a row failed; given up until the next `start`.
    Fatal = 6,
    /// Asked to start, waiting for its `depends_on` to be satisfied.
    Waiting = 7,
}

impl ProgramState {
    /// Every state, in number order.
    pub const ALL: [ProgramState; 8] = [
        ProgramState::Stopped,
        ProgramState::Starting,
        ProgramState::Running,
        ProgramState::Backoff,
        ProgramState::Stopping,
        ProgramState::Exited,
        ProgramState::Fatal,
        ProgramState::Waiting,
    ];

    /// The lowercase name used in the API, the CLI and events.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramState::Stopped => "stopped",
            ProgramState::Starting => "starting",
            ProgramState::Running => "running",
            ProgramState::Backoff => "backoff",
            ProgramState::Stopping => "stopping",
            ProgramState::Exited => "exited",
            ProgramState::Fatal => "fatal",
            ProgramState::Waiting => "waiting",
        }
    }
}

impl fmt::Display for ProgramState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ProgramState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ProgramState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("'{s}' is not a state: stopped, waiting, starting, running, backoff, stopping, exited or fatal")
            })
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// It exited, but its status is lost: another part of the process (an embedding host
    /// that reaps every child) took it first, or it was not this process's child (a run a
    /// server took over from the server before it).
    Unknown,
}

impl ExitStatus {
    /// The exit code, when it exited normally.
    pub fn code(self) -> Option<i32> {
        match self {
            ExitStatus::Code(c) => Some(c),
            ExitStatus::Signal(_) | ExitStatus::Unknown => None,
        }
    }

    /// The signal that killed it, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Signal(s) => Some(s),
            ExitStatus::Code(_) | ExitStatus::Unknown => None,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|sig| sig.as_str())
                    .unwrap_or("unknown signal");
                write!(f, "signal {s} ({name})")
            }
            ExitStatus::Unknown => write!(
                f,
                "an unknown status (another process reaped it, or it was not gosuv's child: a run taken over from an earlier server)"
            ),
        }
    }
}

/// One state change of one program.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// The program's name.
    pub program: String,
    /// The state it left.
    pub from: ProgramState,
    /// The state it entered.
    pub to: ProgramState,
    /// The process concerned, when there is one.
    pub pid: Option<u32>,
    /// The exit code, on a change caused by an exit.
    pub exit_code: Option<i32>,
    /// The signal that killed the process, on a change caused by one.
    pub exit_signal: Option<i32>,
    /// When it happened.
    #[serde(serialize_with = "ser_time")]
    pub at: SystemTime,
    /// Why, where gosuv knows more than the states say: the probe that found it ready, the
    /// dependency that made it `fatal`, a health check that failed. An event whose `from`
    /// and `to` are both `running` reports a failed health check that did not (yet) restart
    /// it.
    pub reason: Option<String>,
}

pub(crate) fn ser_time<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

pub(crate) fn ser_opt_time<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// Formats a time as RFC 3339 in UTC with milliseconds (`2026-11-25T04:33:17.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, min, sec, ms) = (rem / 3600, rem % 3600 / 60, rem % 60, d.subsec_millis());
    if year > 9999 {
        return format!("{year:04}-{month:02}-{day:02}T{h:02}:{min:02}:{sec:02}.{ms:03}Z");
    }
    // Digit by digit: a list of thousands of programs writes two times each, and the
    // formatting machinery was a tenth of its cost.
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year as u64);
    put(5, 2, month as u64);
    put(8, 2, day as u64);
    put(11, 2, h as u64);
    put(14, 2, min as u64);
    put(17, 2, sec as u64);
    put(20, 3, u64::from(ms));
    String::from_utf8_lossy(&b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_times() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_795_000_000_123);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
        let end = UNIX_EPOCH + Duration::from_millis(253_402_300_799_999); // the last of 9999
        assert_eq!(rfc3339(end), "9999-12-31T23:59:59.999Z");
        let after = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(rfc3339(after), "10000-01-01T00:00:00.000Z");
    }

    #[test]
    fn state_names_round_trip() {
        for s in ProgramState::ALL {
            assert_eq!(s.as_str().parse::<ProgramState>(), Ok(s));
        }
        assert!("bogus".parse::<ProgramState>().is_err());
    }
}
