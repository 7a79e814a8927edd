//! One program's settings: the keys of `programs.yml`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Serialize, Serializer};
use serde_yaml::Value;

use super::lines::{LineIndex, Seg};
use super::{parse_size, parse_yaml, resolve_path, Collector, ConfigErrors};

/// How a program is run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Command {
    /// A shell command line. One simple command (words and quotes, no other shell syntax)
    /// is split as the shell would and exec'd directly; one command that needs the shell
    /// (`$VAR`, a redirection, a glob) runs as `/bin/sh -c 'exec ...'`; anything else
    /// (lists, pipes, assignments, builtins) runs as written by `/bin/sh -c`. So the pid
    /// shown, and a signal sent to it, is the program's own wherever the shell allows.
    Shell(String),
    /// Exec'd directly: the program and its arguments.
    Argv(Vec<String>),
}

impl Command {
    /// The argv as written: a string as `/bin/sh -c` runs it (gosuv may exec it directly,
    /// see [`Command::Shell`]).
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            Command::Argv(v) => v.clone(),
        }
    }
}

/// When a program that was running and exited is started again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Autorestart {
    /// Always.
    #[default]
    Always,
    /// Never.
    Never,
    /// Only when its exit code is not one of `exit_codes` (a death by signal is unexpected).
    Unexpected,
}

impl Serialize for Autorestart {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Autorestart::Always => s.serialize_bool(true),
            Autorestart::Never => s.serialize_bool(false),
            Autorestart::Unexpected => s.serialize_str("unexpected"),
        }
    }
}

/// Whether a program's processes are owned through a cgroup of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// A cgroup where gosuv can make one, else its process group.
    #[default]
    Auto,
    /// Never a cgroup: its process group.
    Off,
    /// A cgroup, or the start fails.
    Required,
}

impl FromStr for CgroupMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" => Ok(CgroupMode::Auto),
            "off" | "false" => Ok(CgroupMode::Off),
            "required" => Ok(CgroupMode::Required),
            _ => Err(format!("'{s}' is not auto, off or required")),
        }
    }
}

/// The longest duration a program key takes (`start_seconds`, `stop_timeout`): one day.
/// Longer is surely a mistake, and bounds every sum gosuv makes of them.
pub const MAX_DURATION_SECS: u64 = 86_400;

/// The most failed starts in a row a program may be given before `fatal`.
pub const MAX_START_RETRIES: u32 = 1_000;

/// The most instances one entry may run (`numprocs`).
pub const MAX_NUMPROCS: u32 = 1_000;

/// The most programs `numprocs` entries may make in one file, all entries together: a small
/// file must not ask for a million programs.
pub const MAX_INSTANCES: usize = 10_000;

/// The range a numeric key of a program takes, as error messages say it.
pub(crate) fn numeric_bound(key: &str) -> Option<String> {
    match key {
        "start_seconds" | "stop_timeout" => {
            Some(format!("of seconds from 0 to {MAX_DURATION_SECS} (1 day)"))
        }
        "start_retries" => Some(format!("from 0 to {MAX_START_RETRIES}")),
        "numprocs" => Some(format!("from 1 to {MAX_NUMPROCS}")),
        "log_backups" => Some("from 0 to 1000".into()),
        "log_max_bytes" | "memory_max" => Some("of bytes, or a size such as 50MB".into()),
        _ => None,
    }
}

/// The signal that asks a program to stop, written without `SIG` (`TERM`, `INT`, `HUP`...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopSignal(pub Signal);

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal(Signal::SIGTERM)
    }
}

impl StopSignal {
    /// The name without `SIG`.
    pub fn name(&self) -> &'static str {
        let full = self.0.as_str();
        full.strip_prefix("SIG").unwrap_or(full)
    }

    /// The name without `SIG` of signal number `sig`, as `stop_signal` is written; `None` for
    /// a number that is no signal (or a real-time one). Whether it may stop a program is
    /// for the parser to say.
    pub fn name_of(sig: i32) -> Option<&'static str> {
        Signal::try_from(sig).ok().map(|s| StopSignal(s).name())
    }
}

impl FromStr for StopSignal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let up = s.trim().to_ascii_uppercase();
        let full = if up.starts_with("SIG") {
            up.clone()
        } else {
            format!("SIG{up}")
        };
        let sig = Signal::from_str(&full).map_err(|_| {
            format!("'{s}' is not a signal name: use TERM, INT, QUIT, HUP, KILL, USR1 or USR2")
        })?;
        // Signals that never end a program: they suspend it, or are ignored unless handled.
        use Signal::*;
        if matches!(sig, SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU | SIGCONT) {
            return Err(format!(
                "'{s}' suspends or resumes a program, it never stops it: use TERM, INT, QUIT, \
                 HUP, KILL, USR1 or USR2"
            ));
        }
        if matches!(sig, SIGCHLD | SIGWINCH | SIGURG) {
            return Err(format!(
                "'{s}' is ignored by a program that does not handle it, so it would never stop: \
                 use TERM, INT, QUIT, HUP, KILL, USR1 or USR2"
            ));
        }
        Ok(StopSignal(sig))
    }
}

impl Serialize for StopSignal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// When exits of a running program are a crash loop (`start_limit`): `burst` exits within
/// `interval`. Such a program waits in `backoff` (1 s, 2 s, 4 s ... then 60 s each time)
/// before each restart instead of restarting at once, until one run stays up for `interval`
/// (the time spent in backoff does not count); it never goes `fatal` for it (that is
/// `start_retries`, for failed starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartLimit {
    /// Exits that make a crash loop: 0 turns the limit off (restarts always at once), else
    /// 2 or more (the config refuses 1).
    pub burst: u32,
    /// The window the exits are counted in (more than zero; at most a day).
    pub interval: Duration,
}

/// The most exits `start_limit.burst` may count.
pub const MAX_START_BURST: u32 = 1_000;

impl Default for StartLimit {
    fn default() -> Self {
        StartLimit {
            burst: 5,
            interval: Duration::from_secs(60),
        }
    }
}

impl Serialize for StartLimit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("burst", &self.burst)?;
        m.serialize_entry("interval", &super::format_duration(self.interval))?;
        m.end()
    }
}

/// One program, with every key of `programs.yml` and its default filled in.
///
/// Serializes with the same keys as `programs.yml`, so it can be written back to the file or
/// sent over the API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProgramConfig {
    /// Unique name, also the log files' name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
    pub name: String,
    /// What to run.
    pub command: Command,
    /// Variables added to gosuv's environment, in order.
    #[serde(serialize_with = "ser_environ")]
    pub environ: Vec<(String, String)>,
    /// Working directory (absolute once parsed); `None` means the config file's directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// Start when the supervisor starts and when `reload` adds it.
    pub start_auto: bool,
    /// Seconds it must stay up to count as started.
    pub start_seconds: u64,
    /// Failed starts in a row before `fatal`.
    pub start_retries: u32,
    /// Whether to restart it after it exits.
    pub autorestart: Autorestart,
    /// Expected exit codes.
    pub exit_codes: Vec<i32>,
    /// Signal sent to the program's process group to stop it.
    pub stop_signal: StopSignal,
    /// Seconds between the stop signal and SIGKILL to the group.
    pub stop_timeout: u64,
    /// Run as this user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The child's umask.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_umask")]
    pub umask: Option<u32>,
    /// Send stderr to the stdout log.
    pub redirect_stderr: bool,
    /// Keep output in memory only (for tail and followers); write no file.
    pub log_disable: bool,
    /// Rotate a log file when it reaches this size; 0 never rotates.
    pub log_max_bytes: u64,
    /// Rotated files kept.
    pub log_backups: u32,
    /// Restart the program when it uses more memory than this (bytes): its cgroup's memory
    /// where the kernel enforces it, else the RSS of its processes, measured every second.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "ser_size")]
    pub memory_max: Option<u64>,
    /// Whether its processes are owned through a cgroup of its own.
    pub cgroup: CgroupMode,
    /// What says a start succeeded; without it, staying up `start_seconds`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<super::ReadyProbe>,
    /// What says a running program is still well.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<super::HealthProbe>,
    /// What must be running (or have run) before it starts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<super::Dependency>,
    /// How many instances the entry runs (`NAME-0 .. NAME-(N-1)`). An instance's own config
    /// has 1: see [`ProgramConfig::instances`].
    #[serde(skip_serializing_if = "is_one")]
    pub numprocs: u32,
    /// For an instance of a `numprocs` entry: the entry's name and this instance's number.
    #[serde(skip)]
    pub instance_of: Option<(String, u32)>,
    /// A dotenv file (`KEY=VALUE` lines, `#` comments, blank lines, optional single or double
    /// quotes around the value, `export KEY=VALUE`) read at each start, so a change takes
    /// effect at the next start without a reload; `environ` wins over it. Relative to the
    /// config file's directory. A missing or unreadable file, or a bad line, is a failed
    /// start whose `last_error` names the file and the line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// The stdout log's path instead of `<logpath>/<name>.stdout.log` (relative to the config
    /// file's directory, or absolute); rotated as the default one is, never written through
    /// a symlink. Two programs may not share a log file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout_logfile: Option<PathBuf>,
    /// The stderr log's path instead of `<logpath>/<name>.stderr.log`, as `stdout_logfile`.
    /// Unused with `redirect_stderr` (stderr goes to the stdout log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr_logfile: Option<PathBuf>,
    /// Prefix every line written to the log files with the UTC time it was read, RFC 3339
    /// with milliseconds, and a space (`2026-12-01T11:22:33.456Z `). A line that arrives in
    /// several pieces gets one prefix, at its start. The in-memory tail and live followers
    /// get the output as the program wrote it, without prefixes.
    pub log_timestamps: bool,
    /// Exits of a running program that make a crash loop: `{burst, interval}`, default 5 in
    /// 60s; `burst: 0` turns it off. A program that has run past `start_seconds` (or was
    /// ready) and exits `burst` times within `interval` waits in `backoff` (1 s, 2 s, 4 s ...
    /// then 60 s each time) before each restart while the loop lasts, with `last_error`
    /// `crash loop: 5 exits in 60s (last: exit 1)`; it is never made `fatal` for it. The
    /// loop (and that `last_error`) ends once a run has stayed up for `interval`. A start or
    /// restart by hand starts it at once and forgets the exits counted so far.
    pub start_limit: StartLimit,
    /// Its standard input, and where its output goes besides the log: an option of a
    /// program embedded in a host process, not a key of `programs.yml` (never serialized).
    #[serde(skip)]
    pub io: super::ProgramIo,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

fn ser_size<S: Serializer>(size: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match size {
        Some(n) => s.serialize_str(&super::format_size(*n)),
        None => s.serialize_none(),
    }
}

fn ser_environ<S: Serializer>(env: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(env.iter().map(|(k, v)| format!("{k}={v}")))
}

fn ser_umask<S: Serializer>(umask: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
    match umask {
        Some(m) => s.serialize_str(&format!("{m:03o}")),
        None => s.serialize_none(),
    }
}

impl ProgramConfig {
    /// A number that changes when what a running process was started with changes: its
    /// command, environment, directory, user, umask, pipes, cgroup and memory limit, and
    /// whether it gets a `$NOTIFY_SOCKET` (FNV-1a of their JSON form, the same in every
    /// build, and in a later gosuv that adds keys). How a server tells whether a program
    /// that a previous server left running can be taken over: what else changed (restart
    /// policy, probes, stop signal, logs) applies to the run taken over. Never 0.
    pub fn fingerprint(&self) -> u64 {
        let notify = matches!(
            self.ready.as_ref().map(|r| &r.check),
            Some(super::ProbeCheck::Notify)
        );
        let cgroup = match self.cgroup {
            CgroupMode::Auto => "auto",
            CgroupMode::Required => "required",
            CgroupMode::Off => "off",
        };
        let what = (
            &self.command,
            &self.environ,
            &self.directory,
            &self.user,
            self.umask,
            self.redirect_stderr,
            self.memory_max,
            cgroup,
            notify,
        );
        let mut bytes = match serde_json::to_vec(&what) {
            Ok(b) => b,
            // Never taken for the same as another config.
            Err(_) => return u64::MAX,
        };
        // Where the environment comes from, only when set, so that a program without it keeps
        // the number an earlier gosuv gave it. (The log keys are not here: the server that
        // takes a run over drains its pipes into the files it is configured with.)
        if let Some(f) = &self.env_file {
            bytes.extend_from_slice(b"env_file=");
            bytes.extend_from_slice(f.as_os_str().as_encoded_bytes());
        }
        // Library-only streams (never in a programs file, so never on a run a server takes
        // over): a run with a stdin pipe or a copy to a host descriptor is never another's.
        if !self.io.is_default() {
            bytes.extend_from_slice(format!("io={:?}", self.io).as_bytes());
        }
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h.max(1)
    }

    /// A program with every default.
    pub fn new(name: impl Into<String>, command: Command) -> Self {
        ProgramConfig {
            name: name.into(),
            command,
            environ: Vec::new(),
            directory: None,
            start_auto: false,
            start_seconds: 1,
            start_retries: 3,
            autorestart: Autorestart::Always,
            exit_codes: vec![0],
            stop_signal: StopSignal::default(),
            stop_timeout: 10,
            user: None,
            umask: None,
            redirect_stderr: false,
            log_disable: false,
            log_max_bytes: 50 << 20,
            log_backups: 10,
            memory_max: None,
            cgroup: CgroupMode::Auto,
            ready: None,
            health: None,
            depends_on: Vec::new(),
            numprocs: 1,
            instance_of: None,
            env_file: None,
            stdout_logfile: None,
            stderr_logfile: None,
            log_timestamps: false,
            start_limit: StartLimit::default(),
            io: super::ProgramIo::default(),
        }
    }

    /// The programs this entry runs: itself when `numprocs` is 1, else `numprocs` instances
    /// named `NAME-0 .. NAME-(N-1)`, each with `{n}` in `command`, `environ` values,
    /// `directory`, `env_file` and the log paths replaced by its number, `numprocs` 1 and `instance_of` set. Instance
    /// names are not checked here ([`parse_programs`] does).
    pub fn instances(&self) -> Vec<ProgramConfig> {
        if self.numprocs <= 1 {
            return vec![self.clone()];
        }
        (0..self.numprocs)
            .map(|n| {
                let num = n.to_string();
                let sub = |s: &str| s.replace("{n}", &num);
                let mut p = self.clone();
                p.name = format!("{}-{n}", self.name);
                p.command = match &self.command {
                    Command::Shell(s) => Command::Shell(sub(s)),
                    Command::Argv(v) => Command::Argv(v.iter().map(|a| sub(a)).collect()),
                };
                p.environ = self
                    .environ
                    .iter()
                    .map(|(k, v)| (k.clone(), sub(v)))
                    .collect();
                let sub_path = |d: &PathBuf| {
                    d.to_str()
                        .map_or_else(|| d.clone(), |s| PathBuf::from(sub(s)))
                };
                p.directory = self.directory.as_ref().map(sub_path);
                // Each instance its own log files (two may not share one).
                p.stdout_logfile = self.stdout_logfile.as_ref().map(sub_path);
                p.stderr_logfile = self.stderr_logfile.as_ref().map(sub_path);
                p.env_file = self.env_file.as_ref().map(sub_path);
                p.numprocs = 1;
                p.instance_of = Some((self.name.clone(), n));
                p
            })
            .collect()
    }

    /// A program run by `/bin/sh -c command`, with every default.
    pub fn shell(name: impl Into<String>, command: impl Into<String>) -> Self {
        Self::new(name, Command::Shell(command.into()))
    }

    /// `start_seconds` as a duration.
    pub fn start_duration(&self) -> Duration {
        Duration::from_secs(self.start_seconds)
    }

    /// `stop_timeout` as a duration.
    pub fn stop_duration(&self) -> Duration {
        Duration::from_secs(self.stop_timeout)
    }

    /// Checks what `parse_program_value` checks, for a config built in code.
    ///
    /// # Errors
    /// Every problem found, without lines.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let value = serde_yaml::to_value(self)
            .map_err(|e| ConfigErrors::single(None, format!("cannot represent program: {e}")))?;
        let base = self.directory.clone().unwrap_or_else(|| PathBuf::from("/"));
        parse_program_value(value, &base)?;
        self.check_io()
    }

    /// Whether its output reaches its log at all: not when every stream it writes is
    /// discarded.
    pub fn logs_output(&self) -> bool {
        use super::OutputMode::Discard;
        self.io.stdout != Discard || (!self.redirect_stderr && self.io.stderr != Discard)
    }

    /// Checks the standard streams against the keys: a `log` ready probe needs output.
    fn check_io(&self) -> Result<(), ConfigErrors> {
        let log_probe = matches!(
            self.ready.as_ref().map(|r| &r.check),
            Some(super::ProbeCheck::Log(_))
        );
        if log_probe && !self.logs_output() {
            return Err(ConfigErrors(vec![super::ConfigError {
                file: None,
                line: None,
                key: "ready".into(),
                message: format!(
                    "a `log` probe reads the output of '{}', which is discarded: keep stdout \
                     or stderr in the log, or use another probe",
                    self.name
                ),
            }]));
        }
        let error = |key: &str, message: String| {
            Err(ConfigErrors(vec![super::ConfigError {
                file: None,
                line: None,
                key: key.into(),
                message,
            }]))
        };
        if self.redirect_stderr && self.io.stderr != super::OutputMode::Log {
            return error(
                "redirect_stderr",
                format!(
                    "'{}' has redirect_stderr, so its stderr goes where its stdout goes: \
                     choose the output for stdout, or turn redirect_stderr off",
                    self.name
                ),
            );
        }
        for (stream, mode) in [("stdout", &self.io.stdout), ("stderr", &self.io.stderr)] {
            if let super::OutputMode::Tee(fd) = mode {
                if let Err(why) = fd.check_writable() {
                    return error(
                        stream,
                        format!("the {stream} of '{}' cannot be copied to {why}", self.name),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Checks a program name: `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`. The name becomes a file name,
/// so this is what keeps `../x` out of the log directory.
///
/// # Errors
/// A message that says what a name may contain.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() {
        Err("a program needs a non-empty name".into())
    } else if name.len() > 64 {
        Err(format!(
            "name '{}…' is {} characters long: at most 64 are allowed",
            &name[..name.char_indices().nth(16).map_or(name.len(), |(i, _)| i)],
            name.len()
        ))
    } else if !ok_first || !ok_rest {
        Err(format!(
            "invalid name {name:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        ))
    } else {
        Ok(())
    }
}

/// What a programs file holds: its programs (a `numprocs` entry as its instances) and the
/// warnings that do not make it invalid (a `directory` or `user` that does not exist:
/// starting that program fails, the others run).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadedPrograms {
    /// The programs, in file order.
    pub programs: Vec<ProgramConfig>,
    /// Each with the file and line, in file order.
    pub warnings: Vec<super::ConfigError>,
}

/// Parses the text of a programs file: a YAML list of programs (an empty or missing list is
/// no programs). As [`parse_programs_checked`], without the warnings.
///
/// # Errors
/// Every error of the file, each with `file`, its line and its key.
pub fn parse_programs(
    text: &str,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Vec<ProgramConfig>, ConfigErrors> {
    parse_programs_checked(text, file, base_dir).map(|l| l.programs)
}

/// Parses the text of a programs file: a YAML list of programs (an empty or missing list is
/// no programs). `${VAR}`, `${VAR:-default}` and `$$` in every string value are replaced
/// from gosuv's environment, then from the entry's `env_file`; relative paths resolve
/// against `base_dir`; an entry with `numprocs` N gives N instances.
///
/// # Errors
/// Every error of the file, each with `file`, its line and its key.
pub fn parse_programs_checked(
    text: &str,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<LoadedPrograms, ConfigErrors> {
    let value = parse_yaml(text, file)?;
    let index = LineIndex::new(text);
    let mut c = Collector::new(file, Some(&index));
    let mut items = match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items,
        _ => {
            c.error(
                &[],
                "a programs file is a YAML list of programs (`- name: ...`)",
            );
            return c.finish(LoadedPrograms::default());
        }
    };
    let expanded: Vec<bool> = items
        .iter_mut()
        .enumerate()
        .map(|(i, item)| {
            !item.is_mapping()
                || super::interpolate::expand_program(&mut c, &[Seg::Index(i)], item, base_dir)
        })
        .collect();
    let line_of = |i: usize| index.line(&[Seg::Index(i)]).unwrap_or(i + 1);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let Some(name) = item.get("name").and_then(Value::as_str) else {
            continue;
        };
        if validate_name(name).is_err() {
            continue;
        }
        if let Some(first) = seen.get(name) {
            c.error(
                &[Seg::Index(i), Seg::Key("name".into())],
                format!(
                    "duplicate name '{name}': program {first} already uses it; names must be unique"
                ),
            );
        } else {
            seen.insert(name.to_string(), i);
        }
    }
    let mut programs = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    // The instance names of each numprocs entry, for a `depends_on` naming the entry.
    let mut instances_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut instance_count = 0usize;
    for (i, item) in items.into_iter().enumerate() {
        if !expanded[i] {
            continue;
        }
        let Some(entry) = program_from_value(&mut c, &[Seg::Index(i)], item, base_dir) else {
            continue;
        };
        if entry.numprocs > 1 {
            let numprocs_key = [Seg::Index(i), Seg::Key("numprocs".into())];
            instance_count += entry.numprocs as usize;
            if instance_count > MAX_INSTANCES {
                c.error(
                    &numprocs_key,
                    format!(
                        "the numprocs of this file's entries add up to {instance_count} programs so far: at most {MAX_INSTANCES}; lower numprocs"
                    ),
                );
                continue;
            }
        }
        let instances = entry.instances();
        if entry.numprocs > 1 {
            let numprocs_key = [Seg::Index(i), Seg::Key("numprocs".into())];
            let last = format!("{}-{}", entry.name, entry.numprocs - 1);
            if let Err(e) = validate_name(&last) {
                c.error(
                    &numprocs_key,
                    format!(
                        "numprocs {} names the last instance '{last}', which is not a valid name ({e}): shorten `name`",
                        entry.numprocs
                    ),
                );
                continue;
            }
            let mut clash = false;
            for inst in &instances {
                if let Some(&other) = seen.get(&inst.name) {
                    clash = true;
                    c.error(
                        &numprocs_key,
                        format!(
                            "instance '{}' of '{}' (numprocs {}, line {}) has the name of program '{}' (line {}): rename one of them",
                            inst.name,
                            entry.name,
                            entry.numprocs,
                            line_of(i),
                            inst.name,
                            line_of(other)
                        ),
                    );
                }
            }
            if clash {
                continue;
            }
            instances_of.insert(
                entry.name.clone(),
                instances.iter().map(|p| p.name.clone()).collect(),
            );
        }
        for p in instances {
            programs.push(p);
            at.push(i);
        }
    }
    // A dependency on a numprocs entry is one on every instance.
    if !instances_of.is_empty() {
        for p in &mut programs {
            if p.depends_on
                .iter()
                .any(|d| instances_of.contains_key(&d.name))
            {
                p.depends_on = std::mem::take(&mut p.depends_on)
                    .into_iter()
                    .flat_map(|d| match instances_of.get(&d.name) {
                        Some(names) => names
                            .iter()
                            .map(|n| super::Dependency {
                                name: n.clone(),
                                condition: d.condition,
                            })
                            .collect(),
                        None => vec![d],
                    })
                    .collect();
            }
        }
    }
    // Only among programs that parsed: one that did not has its own error already.
    let failed: std::collections::BTreeSet<String> = seen
        .keys()
        .filter(|n| !programs.iter().any(|p| &p.name == *n) && !instances_of.contains_key(*n))
        .cloned()
        .collect();
    let refs: Vec<&ProgramConfig> = programs.iter().collect();
    for (i, msg) in super::check_dependencies(&refs, &failed) {
        c.error(&[Seg::Index(at[i]), Seg::Key("depends_on".into())], msg);
    }
    for (i, msg) in shared_log_files(&refs) {
        c.error(&[Seg::Index(at[i])], msg);
    }
    for (p, &i) in programs.iter().zip(&at) {
        for (key, message) in missing_on_host(p) {
            c.warn(&[Seg::Index(i), Seg::Key(key.into())], message);
        }
        if let Some(why) = reserved_name(&p.name) {
            c.warn(
                &[Seg::Index(i), Seg::Key("name".into())],
                format!("{why}: rename it here and run 'gosuv reload' (until then, 'all' on the command line means every program, not this one)"),
            );
        }
    }
    let mut warnings = c.take_warnings();
    // The instances of one entry that share a directory share its warning.
    warnings.dedup();
    c.finish(LoadedPrograms { programs, warnings })
}

/// Why a name cannot be given to a new program: `all`, which on the command line means
/// every program. A programs file that has one still loads (with a warning): refusing it
/// would keep a server with that file from starting at all.
pub fn reserved_name(name: &str) -> Option<String> {
    (name == "all").then(|| {
        "the name 'all' is reserved: on the command line it means every program (gosuv stop \
         all stops them all); choose another name"
            .to_string()
    })
}

/// What of a program's `directory` and `user` this host lacks, by key: starting it will fail
/// with that reason, but that is its own problem, not the whole file's (the directory may be
/// made, the user added, later). It stats and looks users up: call it where blocking is fine.
pub fn missing_on_host(p: &ProgramConfig) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    // An entry's instances share one warning where they share the directory or user.
    let name = p.instance_of.as_ref().map_or(&p.name, |(entry, _)| entry);
    if let Some(dir) = &p.directory {
        if !dir.is_dir() {
            let what = if dir.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            out.push((
                "directory",
                format!(
                    "directory {} {what}: '{}' will fail to start until it does (create it or fix `directory`)",
                    dir.display(),
                    name
                ),
            ));
        }
    }
    if let Some(user) = &p.user {
        match nix::unistd::User::from_name(user) {
            Ok(Some(_)) => {}
            Ok(None) => out.push((
                "user",
                format!(
                    "user '{user}' does not exist on this machine: '{}' will fail to start until it does (add the user or fix `user`)",
                    name
                ),
            )),
            Err(e) => out.push((
                "user",
                format!(
                    "cannot look user '{user}' up ({e}): '{}' may fail to start",
                    name
                ),
            )),
        }
    }
    out
}

/// Parses one program from a value (a JSON body converted to YAML's value, say), with no
/// line numbers. Relative directories resolve against `base_dir`.
///
/// # Errors
/// Every problem found, each naming its key.
pub fn parse_program_value(value: Value, base_dir: &Path) -> Result<ProgramConfig, ConfigErrors> {
    let mut c = Collector::new(None, None);
    let p = program_from_value(&mut c, &[], value, base_dir);
    // What could not be read back from a programs file is not taken either (its strings
    // holding more unclosed brackets than a file may have).
    if let Some(p) = &p {
        if let Ok(text) = serde_yaml::to_string(p) {
            if super::check_nesting(&text, None).is_err() {
                c.error(
                    &[],
                    format!(
                        "its strings hold more than {} unclosed [ or {{: a programs file with it could not be read back",
                        super::MAX_FLOW_NESTING
                    ),
                );
            }
        }
    }
    match p {
        Some(p) => c.finish(p),
        None => {
            let fallback = ProgramConfig::shell("", "");
            c.finish(fallback)
        }
    }
}

fn program_from_value(
    c: &mut Collector<'_>,
    path: &[Seg],
    value: Value,
    base_dir: &Path,
) -> Option<ProgramConfig> {
    let map = match value {
        Value::Mapping(m) => m,
        _ => {
            c.error(
                path,
                "a program is a mapping with at least `name` and `command`",
            );
            return None;
        }
    };
    let before = c.errors.len();
    let mut p = ProgramConfig::shell("", "");
    let mut name = None;
    let mut command = None;
    for (k, v) in map {
        let Some(key) = k.as_str().map(str::to_owned) else {
            c.error(path, format!("keys must be strings, not {}", describe(&k)));
            continue;
        };
        let kp: Vec<Seg> = path
            .iter()
            .cloned()
            .chain([Seg::Key(key.clone())])
            .collect();
        match key.as_str() {
            "name" => {
                if let Some(s) = want_string(c, &kp, &v) {
                    match validate_name(&s) {
                        Ok(()) => name = Some(s),
                        Err(e) => c.error(&kp, e),
                    }
                }
            }
            "command" => command = parse_command(c, &kp, v),
            "environ" => {
                if let Some(env) = parse_environ(c, &kp, v) {
                    p.environ = env;
                }
            }
            // Whether the directory and the user exist is checked apart (`missing_on_host`):
            // a start fails on them, the file stays valid.
            "directory" => {
                if let Some(s) = want_string(c, &kp, &v) {
                    if s.trim().is_empty() {
                        c.error(&kp, "`directory` is empty: give a path, or leave the key out for the config's directory");
                    } else {
                        p.directory = Some(resolve_path(base_dir, Path::new(&s)));
                    }
                }
            }
            "numprocs" => {
                let n = match &v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n @ 1..) if n <= u64::from(MAX_NUMPROCS) => p.numprocs = n as u32,
                    _ => c.error(
                        &kp,
                        format!(
                            "expected a number of instances from 1 to {MAX_NUMPROCS}, found {}",
                            short(&v)
                        ),
                    ),
                }
            }
            "start_auto" => set(&mut p.start_auto, want_bool(c, &kp, &v)),
            "start_seconds" => set(&mut p.start_seconds, want_secs(c, &kp, &v)),
            "start_retries" => set(
                &mut p.start_retries,
                want_uint(c, &kp, &v, u64::from(MAX_START_RETRIES)).map(|n| n as u32),
            ),
            "stop_timeout" => set(&mut p.stop_timeout, want_secs(c, &kp, &v)),
            "log_backups" => set(
                &mut p.log_backups,
                want_uint(c, &kp, &v, 1_000).map(|n| n as u32),
            ),
            "autorestart" => set(&mut p.autorestart, parse_autorestart(c, &kp, &v)),
            "exit_codes" => set(&mut p.exit_codes, parse_exit_codes(c, &kp, v)),
            "stop_signal" => {
                if let Some(s) = want_string(c, &kp, &v) {
                    match s.parse::<StopSignal>() {
                        Ok(sig) => p.stop_signal = sig,
                        Err(e) => c.error(&kp, e),
                    }
                }
            }
            "user" => {
                if let Some(s) = want_string(c, &kp, &v) {
                    if s.trim().is_empty() {
                        c.error(&kp, "`user` is empty: give a user name, or leave the key out to run as gosuv's user");
                    } else {
                        p.user = Some(s);
                    }
                }
            }
            "umask" => set(&mut p.umask, parse_umask(c, &kp, &v).map(Some)),
            "redirect_stderr" => set(&mut p.redirect_stderr, want_bool(c, &kp, &v)),
            "log_disable" => set(&mut p.log_disable, want_bool(c, &kp, &v)),
            "log_max_bytes" => set(&mut p.log_max_bytes, want_size(c, &kp, &v)),
            "memory_max" => match &v {
                Value::Null => p.memory_max = None,
                _ => match want_size(c, &kp, &v) {
                    Some(0) => c.error(&kp, "memory_max of 0 would restart it at once: give a size such as 512MB, or leave it out"),
                    Some(n) => p.memory_max = Some(n),
                    None => {}
                },
            },
            "ready" => {
                if let Some(r) = super::ready::parse_ready(c, &kp, &v, base_dir) {
                    p.ready = r;
                }
            }
            "health" => {
                if let Some(h) = super::ready::parse_health(c, &kp, &v, base_dir) {
                    p.health = h;
                }
            }
            "depends_on" => {
                if let Some(d) = super::ready::parse_depends_on(c, &kp, &v) {
                    p.depends_on = d;
                }
            }
            "env_file" => set(&mut p.env_file, want_path(c, &kp, &v, base_dir).map(Some)),
            "stdout_logfile" => set(
                &mut p.stdout_logfile,
                want_path(c, &kp, &v, base_dir).map(Some),
            ),
            "stderr_logfile" => set(
                &mut p.stderr_logfile,
                want_path(c, &kp, &v, base_dir).map(Some),
            ),
            "log_timestamps" => set(&mut p.log_timestamps, want_bool(c, &kp, &v)),
            "start_limit" => set(&mut p.start_limit, parse_start_limit(c, &kp, &v)),
            "cgroup" => {
                let text = match &v {
                    Value::Bool(false) => Some("off".to_string()),
                    other => want_string(c, &kp, other),
                };
                if let Some(t) = text {
                    match t.parse::<CgroupMode>() {
                        Ok(m) => p.cgroup = m,
                        Err(e) => c.error(&kp, e),
                    }
                }
            }
            other => c.error(&kp, super::keys::unknown_program_key(other)),
        }
    }
    match name {
        Some(n) => p.name = n,
        None if c.errors.len() == before
            || !c.errors[before..].iter().any(|e| e.key.ends_with("name")) =>
        {
            c.error(
                &key_path(path, "name"),
                "missing `name`: every program needs a unique name",
            )
        }
        None => {}
    }
    match command {
        Some(cmd) => p.command = cmd,
        None if !c.errors[before..]
            .iter()
            .any(|e| e.key.ends_with("command")) =>
        {
            c.error(
                &key_path(path, "command"),
                "missing `command`: give a shell string or a list of argv",
            )
        }
        None => {}
    }
    (c.errors.len() == before).then_some(p)
}

fn key_path(path: &[Seg], key: &str) -> Vec<Seg> {
    path.iter().cloned().chain([Seg::Key(key.into())]).collect()
}

fn set<T>(slot: &mut T, v: Option<T>) {
    if let Some(v) = v {
        *slot = v;
    }
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(crate) fn want_string(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<String> {
    match v {
        Value::String(s) if s.contains('\0') => {
            c.error(path, NUL_REFUSED);
            None
        }
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => {
            c.error(path, format!("expected a string, found {}", describe(v)));
            None
        }
    }
}

pub(crate) fn want_bool(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
        _ => {
            c.error(
                path,
                format!("expected true or false, found {}", describe(v)),
            );
            None
        }
    }
}

pub(crate) fn want_uint(c: &mut Collector<'_>, path: &[Seg], v: &Value, max: u64) -> Option<u64> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match (n, v) {
        (Some(n), _) if n <= max => Some(n),
        (_, Value::Number(num)) if num.as_i64().is_some_and(|i| i < 0) => {
            c.error(
                path,
                format!("{num} is negative: expected a whole number from 0 to {max}"),
            );
            None
        }
        _ => {
            c.error(
                path,
                format!(
                    "expected a whole number from 0 to {max}, found {}",
                    short(v)
                ),
            );
            None
        }
    }
}

/// A number of seconds from 0 to [`MAX_DURATION_SECS`].
fn want_secs(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<u64> {
    // With a unit (`30s`, `2m`, `1h`): whole seconds.
    if let Value::String(s) = v {
        if s.trim().ends_with(|ch: char| ch.is_ascii_alphabetic()) {
            return match super::parse_duration(v) {
                Ok(d) if d.subsec_nanos() == 0 => Some(d.as_secs()),
                Ok(_) => {
                    c.error(path, format!("'{s}' is not a whole number of seconds"));
                    None
                }
                Err(e) => {
                    c.error(path, e);
                    None
                }
            };
        }
    }
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match (n, v) {
        (Some(n), _) if n <= MAX_DURATION_SECS => Some(n),
        (_, Value::Number(num)) if num.as_i64().is_some_and(|i| i < 0) => {
            c.error(
                path,
                format!(
                    "{num} is negative: expected a whole number {}",
                    numeric_bound("stop_timeout").unwrap_or_default()
                ),
            );
            None
        }
        _ => {
            c.error(
                path,
                format!(
                    "expected a whole number {}, found {}",
                    numeric_bound("stop_timeout").unwrap_or_default(),
                    short(v)
                ),
            );
            None
        }
    }
}

pub(crate) fn want_size(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<u64> {
    let r = match v {
        Value::Number(n) => match n.as_u64() {
            Some(u) => Ok(u),
            None => Err(format!(
                "{n} is not a size: use 0 or more bytes, or 10KB/50MB/1GB"
            )),
        },
        Value::String(s) => parse_size(s),
        _ => Err(format!(
            "expected a size such as 50MB, found {}",
            describe(v)
        )),
    };
    r.map_err(|e| c.error(path, e)).ok()
}

fn short(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{s}'"),
        Value::Bool(b) => b.to_string(),
        other => describe(other).to_string(),
    }
}

/// What a NUL byte in a string that reaches the kernel gets.
const NUL_REFUSED: &str =
    "contains a NUL byte (\\0), which no command, argument, path or environment value can hold";

pub(crate) fn parse_command(c: &mut Collector<'_>, path: &[Seg], v: Value) -> Option<Command> {
    match v {
        Value::String(s) if s.contains('\0') => {
            c.error(path, NUL_REFUSED);
            None
        }
        Value::String(s) if !s.trim().is_empty() => Some(Command::Shell(s)),
        Value::Sequence(items) if !items.is_empty() => {
            let mut argv = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let ip: Vec<Seg> = path.iter().cloned().chain([Seg::Index(i)]).collect();
                match item {
                    Value::String(s) if s.contains('\0') => c.error(&ip, NUL_REFUSED),
                    Value::String(s) if i == 0 && s.trim().is_empty() => {
                        c.error(&ip, "the first item is the program to run, and it is empty")
                    }
                    Value::String(s) => argv.push(s.clone()),
                    Value::Number(n) => argv.push(n.to_string()),
                    Value::Bool(b) => argv.push(b.to_string()),
                    other => c.error(
                        &ip,
                        format!("argv items are strings, found {}", describe(other)),
                    ),
                }
            }
            (argv.len() == items.len()).then_some(Command::Argv(argv))
        }
        Value::String(_) | Value::Sequence(_) => {
            c.error(path, "`command` is empty: give what to run");
            None
        }
        other => {
            c.error(
                path,
                format!(
                    "`command` is a string (run by /bin/sh -c) or a list (argv), found {}",
                    describe(&other)
                ),
            );
            None
        }
    }
}

fn valid_env_key(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

fn parse_environ(c: &mut Collector<'_>, path: &[Seg], v: Value) -> Option<Vec<(String, String)>> {
    let before = c.errors.len();
    let mut env = Vec::new();
    match v {
        Value::Null => {}
        Value::Sequence(items) => {
            for (i, item) in items.into_iter().enumerate() {
                let ip: Vec<Seg> = path.iter().cloned().chain([Seg::Index(i)]).collect();
                match item.as_str().and_then(|s| s.split_once('=')) {
                    Some((_, val)) if val.contains('\0') => c.error(&ip, NUL_REFUSED),
                    Some((k, val)) if valid_env_key(k) => env.push((k.into(), val.into())),
                    _ => c.error(&ip, "each environ item is \"KEY=VALUE\""),
                }
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let key = k.as_str().map(str::to_owned).unwrap_or_default();
                let kp: Vec<Seg> = path
                    .iter()
                    .cloned()
                    .chain([Seg::Key(key.clone())])
                    .collect();
                if !valid_env_key(&key) {
                    c.error(&kp, "environment keys are non-empty strings without '='");
                    continue;
                }
                let value = match val {
                    Value::String(s) if s.contains('\0') => {
                        c.error(&kp, NUL_REFUSED);
                        continue;
                    }
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    Value::Null => String::new(),
                    other => {
                        c.error(
                            &kp,
                            format!("environment values are strings, found {}", describe(&other)),
                        );
                        continue;
                    }
                };
                env.push((key, value));
            }
        }
        other => c.error(
            path,
            format!(
                "`environ` is a list of \"KEY=VALUE\" or a mapping, found {}",
                describe(&other)
            ),
        ),
    }
    (c.errors.len() == before).then_some(env)
}

fn parse_autorestart(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<Autorestart> {
    match v {
        Value::Bool(true) => Some(Autorestart::Always),
        Value::Bool(false) => Some(Autorestart::Never),
        Value::String(s) => match s.as_str() {
            "true" => Some(Autorestart::Always),
            "false" => Some(Autorestart::Never),
            "unexpected" => Some(Autorestart::Unexpected),
            _ => {
                c.error(path, format!("'{s}' is not true, false or unexpected"));
                None
            }
        },
        other => {
            c.error(
                path,
                format!("expected true, false or unexpected, found {}", short(other)),
            );
            None
        }
    }
}

fn parse_exit_codes(c: &mut Collector<'_>, path: &[Seg], v: Value) -> Option<Vec<i32>> {
    let items = match v {
        Value::Sequence(items) => items,
        n @ Value::Number(_) => vec![n],
        other => {
            c.error(
                path,
                format!(
                    "expected a list of exit codes (0-255), found {}",
                    describe(&other)
                ),
            );
            return None;
        }
    };
    if items.is_empty() {
        c.error(
            path,
            "no exit code: list at least one expected exit code (0-255), such as [0]".to_string(),
        );
        return None;
    }
    let before = c.errors.len();
    let mut codes = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let ip: Vec<Seg> = path.iter().cloned().chain([Seg::Index(i)]).collect();
        match item.as_u64() {
            Some(n) if n <= 255 => codes.push(n as i32),
            _ => c.error(&ip, format!("{} is not an exit code (0-255)", short(item))),
        }
    }
    (c.errors.len() == before).then_some(codes)
}

fn parse_umask(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<u32> {
    // YAML reads `022` as the number 22, so a number's decimal digits are taken as octal.
    let text = match v {
        Value::Number(n) if n.as_u64().is_some() => n.to_string(),
        Value::String(s) => s.trim().trim_start_matches("0o").to_string(),
        _ => String::new(),
    };
    match u32::from_str_radix(&text, 8) {
        Ok(m) if m <= 0o777 && !text.is_empty() => Some(m),
        _ => {
            c.error(
                path,
                format!("{} is not an octal umask such as 022 or 077", short(v)),
            );
            None
        }
    }
}

/// A file path (not empty), resolved against `base_dir`.
fn want_path(c: &mut Collector<'_>, path: &[Seg], v: &Value, base_dir: &Path) -> Option<PathBuf> {
    let s = want_string(c, path, v)?;
    if s.trim().is_empty() {
        c.error(
            path,
            "the path is empty: give a file's path, or leave the key out",
        );
        return None;
    }
    Some(resolve_path(base_dir, Path::new(&s)))
}

fn parse_start_limit(c: &mut Collector<'_>, path: &[Seg], v: &Value) -> Option<StartLimit> {
    let map = match v {
        Value::Null => return Some(StartLimit::default()),
        Value::Mapping(m) => m,
        other => {
            c.error(
                path,
                format!(
                    "`start_limit` is a mapping such as {{burst: 5, interval: 60s}}, found {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    let before = c.errors.len();
    let mut limit = StartLimit::default();
    for (k, v) in map {
        let key = k.as_str().unwrap_or_default().to_owned();
        let kp: Vec<Seg> = path
            .iter()
            .cloned()
            .chain([Seg::Key(key.clone())])
            .collect();
        match key.as_str() {
            "burst" => set(
                &mut limit.burst,
                want_uint(c, &kp, v, u64::from(MAX_START_BURST)).map(|n| n as u32),
            ),
            "interval" => match super::parse_duration(v) {
                Ok(d) => limit.interval = d,
                Err(e) => c.error(&kp, e),
            },
            _ => c.error(
                &kp,
                format!("unknown key `{key}`; `start_limit` has `burst` and `interval`"),
            ),
        }
    }
    if limit.burst == 1 {
        c.error(
            path,
            "burst: 1 would make every exit a crash loop: give 2 or more (default 5), or burst: 0 to turn the limit off (see docs/config.md)",
        );
    }
    if limit.burst > 0 && limit.interval.is_zero() {
        c.error(
            path,
            "an interval of 0 never counts an exit: give a duration such as 60s, or burst: 0 to turn the limit off",
        );
    }
    (c.errors.len() == before).then_some(limit)
}

/// Two programs (or a program's two streams) writing one log file: each pair, as the index
/// of the program to blame and the message. Only the paths set with `stdout_logfile` and
/// `stderr_logfile` are compared (where the default ones go is not known here: the
/// supervisor compares those, see [`shared_log_files_by`]).
pub(crate) fn shared_log_files(programs: &[&ProgramConfig]) -> Vec<(usize, String)> {
    shared_log_files_by(programs, None, |p, key| match key {
        "stdout_logfile" => p.stdout_logfile.clone(),
        _ => p.stderr_logfile.clone(),
    })
}

/// [`shared_log_files`] with the file of each stream as `path_of(program, key)` says
/// (`key` is `stdout_logfile` or `stderr_logfile`), and `reserved` (gosuv's own log) taken
/// by none. Paths are compared lexically normalised: `x/../a.log` is `a.log`.
pub(crate) fn shared_log_files_by(
    programs: &[&ProgramConfig],
    reserved: Option<&Path>,
    path_of: impl Fn(&ProgramConfig, &'static str) -> Option<PathBuf>,
) -> Vec<(usize, String)> {
    let mut owners: BTreeMap<PathBuf, (&str, &str)> = BTreeMap::new();
    let reserved = reserved.map(lexical);
    let mut out = Vec::new();
    for (i, p) in programs.iter().enumerate() {
        if p.log_disable {
            continue;
        }
        for key in ["stdout_logfile", "stderr_logfile"] {
            if key == "stderr_logfile" && p.redirect_stderr {
                continue;
            }
            let Some(file) = path_of(p, key) else {
                continue;
            };
            let file = lexical(&file);
            if reserved.as_ref() == Some(&file) {
                out.push((i, own_log_message(key, &p.name, &file)));
                continue;
            }
            match owners.get(&file) {
                Some((name, other)) => {
                    out.push((i, log_clash_message(key, &p.name, &file, other, name)));
                }
                None => {
                    owners.insert(file, (&p.name, key));
                }
            }
        }
    }
    out
}

/// The message for the `key` file of program `name`, `file`, being gosuv's own log.
pub(crate) fn own_log_message(key: &str, name: &str, file: &Path) -> String {
    format!(
        "the {key} of '{name}', {}, is gosuv's own log: give the program another file",
        file.display()
    )
}

/// The message for the `key` file of program `name`, `file`, being also the `other_key`
/// file of program `other`.
pub(crate) fn log_clash_message(
    key: &str,
    name: &str,
    file: &Path,
    other_key: &str,
    other: &str,
) -> String {
    format!(
        "the {key} of '{name}', {}, is also the {other_key} of '{other}': give each log its own file (redirect_stderr puts a program's stderr in its stdout log)",
        file.display()
    )
}

/// `p` with `.` dropped and each `..` taking off the component before it, without looking
/// at the disk (a link in the path could make two such paths different files: comparing
/// them as one errs on the side of refusing).
pub(crate) fn lexical(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push(c);
                }
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn all_is_reserved_for_new_programs_and_a_warning_in_a_file() {
        let e = reserved_name("all").unwrap();
        assert!(
            e.contains("'all' is reserved") && e.contains("every program"),
            "{e}"
        );
        assert!(reserved_name("all-1").is_none() && reserved_name("ALL").is_none());
        // A file that has one still loads: a server with it must start.
        let loaded = parse_programs_checked(
            "- name: all\n  command: echo\n- name: web\n  command: echo\n",
            None,
            Path::new("/"),
        )
        .expect("loads");
        assert_eq!(loaded.programs.len(), 2);
        assert!(
            loaded
                .warnings
                .iter()
                .any(|w| w.to_string().contains("'all' is reserved")),
            "{:?}",
            loaded.warnings
        );
    }

    use super::*;

    fn parse(text: &str) -> Result<Vec<ProgramConfig>, ConfigErrors> {
        parse_programs(text, Some(Path::new("programs.yml")), Path::new("/tmp"))
    }

    fn messages(text: &str) -> Vec<String> {
        parse(text)
            .expect_err("expected errors")
            .0
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_and_forms() {
        let ps = parse(
            "- name: a\n  command: sleep 10\n- name: b\n  command: [sleep, 10]\n  environ: {X: 1, Y: two}\n  autorestart: unexpected\n  umask: 022\n  log_max_bytes: 10KB\n  exit_codes: [0, 2]\n  stop_signal: int\n  directory: .\n",
        )
        .expect("valid");
        assert_eq!(ps.len(), 2);
        let a = &ps[0];
        assert_eq!(a.command, Command::Shell("sleep 10".into()));
        assert_eq!(a.start_seconds, 1);
        assert_eq!(a.start_retries, 3);
        assert_eq!(a.stop_timeout, 10);
        assert_eq!(a.log_max_bytes, 50 << 20);
        assert_eq!(a.autorestart, Autorestart::Always);
        assert_eq!(a.stop_signal.name(), "TERM");
        let b = &ps[1];
        assert_eq!(b.command.argv(), vec!["sleep", "10"]);
        assert_eq!(
            b.environ,
            vec![("X".into(), "1".into()), ("Y".into(), "two".into())]
        );
        assert_eq!(b.autorestart, Autorestart::Unexpected);
        assert_eq!(b.umask, Some(0o22));
        assert_eq!(b.log_max_bytes, 10 * 1024);
        assert_eq!(b.exit_codes, vec![0, 2]);
        assert_eq!(b.stop_signal.0, Signal::SIGINT);
        assert_eq!(b.directory.as_deref(), Some(Path::new("/tmp")));
    }

    #[test]
    fn empty_and_null_files_are_no_programs() {
        assert_eq!(parse("").expect("empty"), vec![]);
        assert_eq!(parse("# nothing\n").expect("comment"), vec![]);
        assert_eq!(parse("[]").expect("list"), vec![]);
    }

    #[test]
    fn environ_list_form() {
        let ps = parse("- name: a\n  command: x\n  environ: [\"A=1\", \"B=x=y\"]\n").expect("ok");
        assert_eq!(
            ps[0].environ,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
    }

    #[test]
    fn collects_every_error_with_line_and_key() {
        let text = "- name: ok\n  command: x\n- name: ../x\n  command: y\n- name: ok\n  command: z\n  colour: red\n- command: w\n- name: n\n  stop_signal: NOPE\n  start_retries: -1\n";
        let errs = messages(text);
        assert_eq!(errs.len(), 7, "{errs:#?}");
        assert!(
            errs[0].starts_with("programs.yml:3: [1].name: invalid name \"../x\""),
            "{}",
            errs[0]
        );
        assert!(
            errs[1].starts_with("programs.yml:5: [2].name: duplicate name 'ok'"),
            "{}",
            errs[1]
        );
        assert!(
            errs[2].starts_with("programs.yml:7: [2].colour: unknown key `colour`"),
            "{}",
            errs[2]
        );
        assert!(
            errs[3].starts_with("programs.yml:8: [3].name: missing `name`"),
            "{}",
            errs[3]
        );
        assert!(
            errs[4].starts_with("programs.yml:9: [4].command: missing `command`"),
            "{}",
            errs[4]
        );
        assert!(
            errs[5].starts_with("programs.yml:10: [4].stop_signal: 'NOPE' is not a signal name"),
            "{}",
            errs[5]
        );
        assert!(
            errs[6].starts_with("programs.yml:11: [4].start_retries: -1 is negative"),
            "{}",
            errs[6]
        );
    }

    #[test]
    fn invalid_names() {
        for bad in ["../x", "", ".hidden", "a/b", "a b", &"x".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["a", "web-1", "A.b_c", &"x".repeat(64)] {
            assert!(validate_name(good).is_ok(), "{good:?} should be accepted");
        }
        let errs = messages("- name: \"\"\n  command: x\n");
        assert!(errs[0].contains("non-empty name"), "{errs:?}");
    }

    #[test]
    fn an_empty_exit_codes_list_is_refused() {
        let errs = messages("- name: a\n  command: 'true'\n  exit_codes: []\n");
        assert!(
            errs.iter()
                .any(|e| e.contains("[0].exit_codes: no exit code")),
            "{errs:?}"
        );
    }

    #[test]
    fn bad_values() {
        let errs = messages(
            "- name: a\n  command: []\n  environ: [\"NOEQUALS\"]\n  autorestart: maybe\n  exit_codes: [300]\n  umask: 089\n  log_max_bytes: 5XB\n  start_auto: yes please\n",
        );
        let joined = errs.join("\n");
        for needle in [
            ":2: [0].command: `command` is empty",
            ":3: [0].environ[0]: each environ item",
            ":4: [0].autorestart: 'maybe' is not",
            ":5: [0].exit_codes[0]: 300 is not an exit code",
            ":6: [0].umask:",
            ":7: [0].log_max_bytes: '5XB' is not a size",
            ":8: [0].start_auto: expected true or false",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in\n{joined}");
        }
    }

    #[test]
    fn syntax_error_has_a_line() {
        let errs = messages("- name: a\n  command: [x\n- name: b\n");
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("programs.yml:"), "{}", errs[0]);
        assert!(errs[0].contains("not valid YAML"), "{}", errs[0]);
    }

    #[test]
    fn not_a_list() {
        let errs = messages("name: a\n");
        assert!(errs[0].contains("YAML list of programs"), "{errs:?}");
    }

    #[test]
    fn round_trips_through_yaml() {
        let mut p = ProgramConfig::shell("web", "python3 -m http.server");
        p.environ = vec![("PORT".into(), "8080".into())];
        p.umask = Some(0o27);
        p.autorestart = Autorestart::Unexpected;
        p.stop_signal = "INT".parse().expect("signal");
        p.memory_max = Some(300 << 20);
        p.cgroup = CgroupMode::Off;
        let text = serde_yaml::to_string(&vec![p.clone()]).expect("yaml");
        let back = parse(&text).expect("parses back");
        assert_eq!(back, vec![p]);
    }
}
