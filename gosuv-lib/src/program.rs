//! One program's state machine and the task that runs it.
//!
//! The task is the only writer of the program's state. Commands do not act on the process
//! themselves: they edit what is [`Wanted`] (a process or none, the config, a generation
//! that a restart or a changed config bumps, removal), and one function, [`Task::steer`],
//! moves the [`Phase`] toward it after every command, exit and timer. Each phase carries its
//! own data (the process of a run exists only in the phases that have one), and waiters are
//! answered after every transition from what the phase and the wanted state say, so no flag
//! can be left set by an earlier command and bite a later one.
//!
//! The task is generic over [`Launcher`], what spawns and owns the processes: the real one
//! ([`RealLauncher`], process groups and cgroups) and, in this module's tests, a fake whose
//! exits and stops the test decides, so races are tested without timing luck.
//!
//! A task that panics is caught: its processes are killed (their owner is dropped), the
//! program is marked `fatal` with the panic in `last_error`, and a fresh task takes over the
//! same channels, so the program stays usable.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use serde::Serialize;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};
use tokio_util::task::TaskTracker;

use crate::cgroup::CgroupRoot;
use crate::config::{Autorestart, Condition, Dependency, ProgramConfig};
use crate::error::Error;
use crate::events::{ser_opt_time, Event, ExitStatus, ProgramState};
use crate::logs::{LogCounters, LogSink, RotatingFile, Stream};
use crate::process_group::{GroupObserver, GroupView, Ownership};
use crate::spawn::SpawnOptions;

/// The longest backoff between two starts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How a crash loop's `last_error` (and its event's reason) starts.
const CRASH_LOOP: &str = "crash loop: ";

/// A crash loop's `last_error`: `crash loop: 5 exits in 60s (last: exit 1)`, with how the
/// last run ended (`last` as [`exit_cause`] says it). Front ends show it after the state
/// and match on its start: keep `crash loop: ` first.
pub(crate) fn crash_loop_text(limit: crate::config::StartLimit, last: &str) -> String {
    let d = limit.interval;
    let interval = if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos() % 1_000_000 == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    };
    format!(
        "{CRASH_LOOP}{} exits in {interval} (last: {last})",
        limit.burst
    )
}

/// How a run ended, short: `exit 1`, `SIGSEGV`.
pub(crate) fn exit_cause(status: ExitStatus) -> String {
    match status {
        ExitStatus::Code(c) => format!("exit {c}"),
        ExitStatus::Signal(s) => nix::sys::signal::Signal::try_from(s)
            .map_or_else(|_| format!("signal {s}"), |sig| sig.as_str().to_string()),
        ExitStatus::Unknown => "an unknown status".into(),
    }
}

/// The wait before retry number `failures` (1-based): 1 s, 2 s, 4 s ... 32 s, then 60 s
/// for every retry after.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// How long an exit (or the end of a stop) waits for the program's last output to be read
/// from its pipes and written to its log files before the state changes, so that whoever
/// sees `exited`, `stopped`, `backoff` or `fatal` finds every byte in the files (and a failed
/// start can quote its last words in `last_error`). Longer only when something outside the
/// program still holds a pipe, or the disk is slow.
const EXIT_OUTPUT_WAIT: Duration = Duration::from_millis(250);

/// How long a removal waits for the program's last output to reach its log files.
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// How long a release waits for a stop under way before SIGKILL.
const RELEASE_STOP_WAIT: Duration = Duration::from_secs(3);

/// After a leader exits on its own, how long its cgroup's other processes (killed) are
/// waited for before the program moves on; they cannot outlive a SIGKILL but in a
/// kernel-bound wait, and the next run must not meet them in its cgroup.
const CGROUP_EMPTY_WAIT: Duration = Duration::from_secs(5);

/// How often a program with `memory_max` is measured, where the kernel does not enforce it.
const MEMORY_CHECK: Duration = Duration::from_secs(1);

/// Settings every program task shares.
pub(crate) struct Shared {
    pub events: broadcast::Sender<Event>,
    pub base_dir: PathBuf,
    pub log_dir: PathBuf,
    pub spawn: SpawnOptions,
    /// Told of every run's start and end (the guardian, the server's record).
    pub observers: Arc<[Arc<dyn GroupObserver>]>,
    /// Whether this process is its programs' subreaper.
    pub subreaper: bool,
    /// The supervisor's cgroup, made when a program first needs one.
    pub cgroups: std::sync::Mutex<Option<Arc<CgroupRoot>>>,
    /// Every program task, and the background work of runs being finished.
    pub tracker: TaskTracker,
    /// Every program, as the others see it: how to start it and how to watch it (for
    /// `depends_on`). Weak senders: a supervisor dropped without shutdown still ends its
    /// tasks.
    pub peers: std::sync::RwLock<std::collections::HashMap<String, Peer>>,
    /// The task that runs every `tcp` probe to a loopback address, started on first use.
    pub tcp_batch: std::sync::OnceLock<tcp_batch::Batch>,
    /// Last (dropped after the cgroup): gosuv's shared threads are not ended while any
    /// program task or supervisor holds this.
    pub _in_use: crate::process_wide::InUse,
}

/// How one program task reaches another.
pub(crate) struct Peer {
    pub cmds: mailbox::WeakSender<Cmd>,
    pub published: status_watch::Receiver<Published>,
}

impl Shared {
    /// The supervisor's cgroup, made on first use (a failure is tried again next time).
    pub(crate) fn cgroup_root(&self) -> Result<Arc<CgroupRoot>, String> {
        let mut slot = self.cgroups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(root) = slot.as_ref() {
            return Ok(root.clone());
        }
        let root = Arc::new(CgroupRoot::create()?);
        crate::reaper::register_cgroup(root.dir().to_path_buf());
        *slot = Some(root.clone());
        Ok(root)
    }
}

/// A program's two output streams, and the slot of its current run's stdin pipe.
#[derive(Debug)]
pub(crate) struct ProgramLogs {
    pub stdout: Arc<LogSink>,
    pub stderr: Arc<LogSink>,
    pub stdin: crate::stdin::StdinSlot,
}

/// The file a stream of `config` is written to: its `stdout_logfile`/`stderr_logfile`
/// (relative to `base_dir`), else `<log_dir>/<name>.<stream>.log`; none with `log_disable`,
/// for a discarded stream, nor for stderr with `redirect_stderr`.
pub(crate) fn log_path(
    config: &ProgramConfig,
    stream: Stream,
    base_dir: &std::path::Path,
    log_dir: &std::path::Path,
) -> Option<PathBuf> {
    if config.log_disable || (stream == Stream::Stderr && config.redirect_stderr) {
        return None;
    }
    let mode = match stream {
        Stream::Stdout => &config.io.stdout,
        Stream::Stderr => &config.io.stderr,
    };
    if *mode == crate::config::OutputMode::Discard {
        return None;
    }
    let own = match stream {
        Stream::Stdout => config.stdout_logfile.as_deref(),
        Stream::Stderr => config.stderr_logfile.as_deref(),
    };
    Some(match own {
        Some(p) => crate::config::resolve_path(base_dir, p),
        None => log_dir.join(format!("{}.{}.log", config.name, stream.as_str())),
    })
}

impl ProgramLogs {
    fn files(config: &ProgramConfig, shared: &Shared) -> [Option<RotatingFile>; 2] {
        let file = |stream: Stream| {
            log_path(config, stream, &shared.base_dir, &shared.log_dir).map(|path| {
                RotatingFile::new(path, config.log_max_bytes, config.log_backups)
                    .timestamps(config.log_timestamps)
            })
        };
        [file(Stream::Stdout), file(Stream::Stderr)]
    }

    /// The host descriptors each stream is copied to (`OutputMode::Tee`).
    fn tees(config: &ProgramConfig) -> [Option<crate::config::HostFd>; 2] {
        let tee = |mode: &crate::config::OutputMode| match mode {
            crate::config::OutputMode::Tee(fd) => Some(fd.clone()),
            _ => None,
        };
        // With redirect_stderr, stderr comes through stdout's pipe, and goes where it goes.
        [tee(&config.io.stdout), tee(&config.io.stderr)]
    }

    pub(crate) fn new(config: &ProgramConfig, shared: &Shared) -> Self {
        let [out, err] = Self::files(config, shared);
        let [out_tee, err_tee] = Self::tees(config);
        ProgramLogs {
            stdout: Arc::new(LogSink::new(out).with_tee(out_tee)),
            stderr: Arc::new(LogSink::new(err).with_tee(err_tee)),
            stdin: crate::stdin::StdinSlot::default(),
        }
    }

    fn reconfigure(&self, config: &ProgramConfig, shared: &Shared) {
        let [out, err] = Self::files(config, shared);
        let [out_tee, err_tee] = Self::tees(config);
        self.stdout.reconfigure(out);
        self.stderr.reconfigure(err);
        self.stdout.set_tee(out_tee);
        self.stderr.set_tee(err_tee);
    }

    pub(crate) fn sink(&self, stream: Stream) -> &Arc<LogSink> {
        match stream {
            Stream::Stdout => &self.stdout,
            Stream::Stderr => &self.stderr,
        }
    }

    pub(crate) fn write_errors(&self) -> u64 {
        self.stdout.counters().write_errors + self.stderr.counters().write_errors
    }

    pub(crate) fn counters(&self) -> [LogCounters; 2] {
        [self.stdout.counters(), self.stderr.counters()]
    }

    /// Waits, for at most `limit`, until `drains` have read their pipes to the end and what
    /// they read is in the log files; returns whether all of it got there. Finished drains
    /// are dropped from `drains`.
    async fn settle(&self, drains: &mut Vec<JoinHandle<()>>, limit: Duration) -> bool {
        let settled = tokio::time::timeout(limit, async {
            for d in drains.iter_mut() {
                if !d.is_finished() {
                    let _ = d.await;
                }
            }
            self.stdout.flushed().await;
            self.stderr.flushed().await;
        })
        .await
        .is_ok();
        drains.retain(|d| !d.is_finished());
        settled
    }

    /// The last line the program wrote to stderr (or stdout), for a failed start's message.
    fn last_words(&self) -> Option<String> {
        let tail = |s: Stream| self.sink(s).tail(512);
        let bytes = Some(tail(Stream::Stderr))
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| tail(Stream::Stdout));
        let text = String::from_utf8_lossy(&bytes);
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(|l| l.chars().take(200).collect())
    }
}

/// A program's live status as the task publishes it.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub config: Arc<ProgramConfig>,
    pub state: ProgramState,
    pub pid: Option<u32>,
    pub started: Option<(std::time::Instant, SystemTime)>,
    pub last_exit: Option<ExitStatus>,
    pub restarts: u64,
    pub last_error: Option<String>,
    /// The current run's processes, for stats.
    pub view: Option<Arc<GroupView>>,
    /// How the current or last run is owned.
    pub ownership: Option<Ownership>,
    /// When the current run became ready (its `ready` probe passed, or `start_seconds`).
    pub ready_at: Option<SystemTime>,
    /// What the program last said with `STATUS=` (notify).
    pub status_text: Option<String>,
    /// Its health probe's record, when it has one.
    pub health: Option<HealthStatus>,
    /// It is meant to run (a start was asked for and not given up or stopped).
    pub wanted_run: bool,
    /// It is being removed.
    pub removing: bool,
    /// In `waiting`: the dependencies not yet satisfied.
    pub waiting_for: Vec<String>,
}

impl Published {
    /// A new program's: stopped, never run.
    fn new(config: Arc<ProgramConfig>) -> Self {
        Published {
            config,
            state: ProgramState::Stopped,
            pid: None,
            started: None,
            last_exit: None,
            restarts: 0,
            last_error: None,
            view: None,
            ownership: None,
            ready_at: None,
            status_text: None,
            health: None,
            wanted_run: false,
            removing: false,
            waiting_for: Vec::new(),
        }
    }
}

/// What the health probe has found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HealthStatus {
    /// Failed attempts since the program was added.
    pub failures: u64,
    /// Failed attempts in a row now (`failures` of the config restarts it).
    pub failing: u32,
    /// The last failure, worded for a user.
    pub last_error: Option<String>,
}

/// One program's status: its state and what is known of its process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProgramStatus {
    /// The program's name.
    pub name: String,
    /// Its state.
    pub state: ProgramState,
    /// The leader's pid while a process exists.
    pub pid: Option<u32>,
    /// When the current process started.
    #[serde(serialize_with = "ser_opt_time")]
    pub started_at: Option<SystemTime>,
    /// Seconds since the current process started.
    pub uptime_secs: Option<f64>,
    /// The exit code of the last process that exited normally.
    pub exit_code: Option<i32>,
    /// The signal that killed the last process, if one did.
    pub exit_signal: Option<i32>,
    /// Automatic restarts and retries since the program was added.
    pub restarts: u64,
    /// Why the last start failed, until the program next reaches `running`; or why gosuv
    /// last restarted it (over `memory_max`), until it is next started or restarted by hand;
    /// or, while it is in a crash loop (`start_limit`), `crash loop: 5 exits in 60s`.
    pub last_error: Option<String>,
    /// Failed writes to its log files.
    pub log_errors: u64,
    /// How gosuv owns the processes of its current (or last) run: `cgroup` or `group`.
    pub ownership: Option<Ownership>,
    /// When the current run became `running` (ready).
    #[serde(serialize_with = "ser_opt_time")]
    pub ready_at: Option<SystemTime>,
    /// What the program last said with `STATUS=` on `$NOTIFY_SOCKET`.
    pub status_text: Option<String>,
    /// Its health probe's record, when it has one. Serialized as `health_status` (`health`
    /// is the probe's config in a program's JSON).
    #[serde(rename = "health_status")]
    pub health: Option<HealthStatus>,
    /// What it waits for, in `waiting`: the dependencies not yet satisfied.
    pub waiting_for: Vec<String>,
}

impl ProgramStatus {
    pub(crate) fn from_published(p: &Published, log_errors: u64) -> Self {
        ProgramStatus {
            name: p.config.name.clone(),
            state: p.state,
            pid: p.pid,
            started_at: p.started.map(|(_, wall)| wall),
            uptime_secs: p.started.map(|(at, _)| at.elapsed().as_secs_f64()),
            exit_code: p.last_exit.and_then(ExitStatus::code),
            exit_signal: p.last_exit.and_then(ExitStatus::signal),
            restarts: p.restarts,
            last_error: p.last_error.clone(),
            log_errors,
            ownership: p.ownership,
            ready_at: p.ready_at,
            status_text: p.status_text.clone(),
            health: p.health.clone(),
            waiting_for: p.waiting_for.clone(),
        }
    }
}

/// What a program task is asked to do.
pub(crate) enum Cmd {
    /// Start; the reply comes once it is `running` (or could not get there).
    Start(oneshot::Sender<Result<(), Error>>),
    /// Stop; the reply comes once nothing of it is left.
    Stop(oneshot::Sender<Result<(), Error>>),
    /// Stop if needed, then start; replies like `Start`.
    Restart(oneshot::Sender<Result<(), Error>>),
    /// Replace the config; restarts it when it had a process. Replies whether it restarts.
    Update(Box<ProgramConfig>, oneshot::Sender<bool>),
    /// Stop, then end the task; the reply comes when it is gone and its output written.
    Remove(oneshot::Sender<Result<(), Error>>),
    /// Replies once every command sent before it has been handled.
    Sync(oneshot::Sender<()>),
    /// Sends a signal to every process of the current run; an error (the state in it) when
    /// there is no run.
    Signal(i32, Option<u32>, oneshot::Sender<Result<(), Error>>),
    /// Lets go of the program's run without stopping it (its output read so far written),
    /// then ends the task: for a server that re-executes itself and takes the run over.
    /// The reply says what the program is left with.
    Release(oneshot::Sender<Left>),
}

/// What a program released by [`Cmd::Release`] is left with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Left {
    /// A run, let go of (to be taken over).
    Run,
    /// No run, and none wanted (stopped, exited, fatal).
    Idle,
    /// No run, but one is wanted (in backoff, waiting, or a restart whose stop was
    /// finished first): to be started again.
    Wanted,
}

/// The handle the supervisor keeps for each program.
pub(crate) struct ProgramHandle {
    pub cmds: mailbox::Sender<Cmd>,
    pub published: status_watch::Receiver<Published>,
    pub logs: Arc<ProgramLogs>,
    /// The task; it ends once the program is removed.
    pub task: JoinHandle<()>,
}

impl ProgramHandle {
    pub(crate) fn status(&self) -> ProgramStatus {
        ProgramStatus::from_published(&self.published.borrow(), self.logs.write_errors())
    }
}

/// What the program should be doing: edited by commands, pursued by [`Task::steer`].
#[derive(Debug)]
struct Wanted {
    /// A process should run.
    run: bool,
    /// The config the next run uses.
    config: Arc<ProgramConfig>,
    /// Bumped by a restart and by a changed config: a run of an older generation is
    /// stopped and started again.
    generation: u64,
    /// The program is to go once it has no process.
    remove: bool,
}

/// One run: its processes and what it was started with.
struct Run<P> {
    proc: P,
    generation: u64,
    config: Arc<ProgramConfig>,
    /// The tokio clock (paused in tests), and the wall clock to show.
    started: (Instant, SystemTime),
}

/// Where the program is, with what each place needs.
enum Phase<P> {
    /// No process: `Stopped`, `Exited` or `Fatal`.
    Idle(ProgramState),
    /// A start waiting for its dependencies.
    Waiting(Box<Awaiting>),
    /// A start failed; the next try is at `until`.
    Backoff { until: Instant, generation: u64 },
    /// Spawned; `running` at `up_at`, or, with a `ready` probe, when it passes (a failed
    /// start at `up_at`).
    Starting {
        run: Run<P>,
        up_at: Instant,
        ready: Option<Box<Readying>>,
    },
    /// Up; memory measured next at `check_at` when it has a `memory_max` the kernel does not
    /// enforce; its health probe, and its notify socket (for `STATUS=`), while it has them.
    Running {
        run: Run<P>,
        check_at: Option<Instant>,
        probe: Option<Box<probes::Probe>>,
        /// The notify socket of its `ready` probe, kept for the `STATUS=` it says later.
        told: Option<Box<probes::Probe>>,
    },
    /// The stop signal was sent; SIGKILL at `kill_at` (`None` once sent).
    Stopping {
        run: Run<P>,
        kill_at: Option<Instant>,
    },
}

impl<P> Phase<P> {
    fn state(&self) -> ProgramState {
        match self {
            Phase::Idle(s) => *s,
            Phase::Waiting(_) => ProgramState::Waiting,
            Phase::Backoff { .. } => ProgramState::Backoff,
            Phase::Starting { .. } => ProgramState::Starting,
            Phase::Running { .. } => ProgramState::Running,
            Phase::Stopping { .. } => ProgramState::Stopping,
        }
    }

    fn run(&self) -> Option<&Run<P>> {
        match self {
            Phase::Starting { run, .. }
            | Phase::Running { run, .. }
            | Phase::Stopping { run, .. } => Some(run),
            _ => None,
        }
    }

    /// The next timer of the phase.
    fn deadline(&self) -> Option<Instant> {
        match self {
            Phase::Backoff { until, .. } => Some(*until),
            // Given up on: only its exit is awaited now.
            Phase::Starting { ready: Some(r), .. } if r.gave_up => None,
            Phase::Starting { up_at, .. } => Some(*up_at),
            Phase::Running { check_at, .. } => *check_at,
            Phase::Stopping { kill_at, .. } => *kill_at,
            Phase::Idle(_) | Phase::Waiting(_) => None,
        }
    }
}

/// A start waiting for its `ready` probe.
struct Readying {
    probe: probes::Probe,
    /// Why the last attempt failed.
    last_failure: Option<String>,
    /// Not ready in time: killed, and its exit is a failed start for this reason.
    gave_up: bool,
}

/// A start waiting for its dependencies: each one watched.
struct Awaiting {
    /// The generation of the start.
    generation: u64,
    deps: Vec<DepWatch>,
}

/// One dependency being waited for.
struct DepWatch {
    dep: Dependency,
    rx: status_watch::Receiver<Published>,
    /// Set while the start this program sent it is not yet handled: until then its state is
    /// the one from before (`fatal`, say) and says nothing.
    synced: Option<oneshot::Receiver<()>>,
    /// Its program is gone (its task ended): judged once, never waited for again.
    closed: bool,
}

/// What a dependency's state means for a program waiting for it.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Met,
    Pending,
    Failed(String),
}

impl DepWatch {
    fn verdict(&mut self) -> Verdict {
        if self.synced.is_some() {
            return Verdict::Pending;
        }
        if self.rx.has_changed().is_err() {
            return Verdict::Failed(format!("'{}' was removed", self.dep.name));
        }
        verdict(&self.dep, &self.rx.borrow_and_update())
    }

    /// Until its state changes (or the start sent to it is handled).
    async fn changed(&mut self) {
        match self.synced.as_mut() {
            Some(s) => {
                let _ = s.await;
                self.synced = None;
            }
            None if self.closed => std::future::pending::<()>().await,
            None => {
                if self.rx.changed().await.is_err() {
                    // Removed: this wake judges it; it is never waited for again.
                    self.closed = true;
                }
            }
        }
    }
}

/// Whether `p`, the published state of the dependency `dep`, satisfies it, may yet, or
/// never will without a hand.
fn verdict(dep: &Dependency, p: &Published) -> Verdict {
    let name = &dep.name;
    let exited_ok = p.state == ProgramState::Exited
        && p.last_exit
            .and_then(ExitStatus::code)
            .is_some_and(|c| p.config.exit_codes.contains(&c));
    let met = match dep.condition {
        Condition::Ready => p.state == ProgramState::Running,
        Condition::Started => matches!(p.state, ProgramState::Starting | ProgramState::Running),
        Condition::ExitedOk => exited_ok,
    };
    if met {
        return Verdict::Met;
    }
    if p.removing {
        return Verdict::Failed(format!("'{name}' was removed"));
    }
    if p.wanted_run {
        return Verdict::Pending;
    }
    let why = p
        .last_error
        .as_deref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    match p.state {
        ProgramState::Fatal => Verdict::Failed(format!("'{name}' is fatal{why}")),
        ProgramState::Exited => Verdict::Failed(format!(
            "'{name}' exited with {} and is not restarted",
            p.last_exit
                .map_or_else(|| "an unknown status".into(), |e| e.to_string())
        )),
        ProgramState::Stopped | ProgramState::Stopping => {
            Verdict::Failed(format!("'{name}' was stopped"))
        }
        _ => Verdict::Pending,
    }
}

/// What woke the task.
enum Wake {
    Deps,
    Exited(ExitStatus),
    Emptied,
    Cmd(Option<Cmd>),
    Timer,
    Probe(probes::Report),
}

/// Callers waiting for the program to get somewhere.
#[derive(Default)]
struct Waiters {
    /// For `running` with a run of at least this generation.
    start: Vec<(u64, oneshot::Sender<Result<(), Error>>)>,
    /// For no process.
    stop: Vec<oneshot::Sender<Result<(), Error>>>,
    /// For the task's end.
    remove: Vec<oneshot::Sender<Result<(), Error>>>,
}

/// The task of one program.
struct Task<L: Launcher> {
    name: String,
    shared: Arc<Shared>,
    launcher: Arc<L>,
    logs: Arc<ProgramLogs>,
    published: Arc<status_watch::Sender<Published>>,
    wanted: Wanted,
    phase: Phase<L::Proc>,
    /// The state last published (a failed spawn shows `starting` without a phase of its own).
    state: ProgramState,
    /// The config whose log settings the sinks have.
    logs_config: Arc<ProgramConfig>,
    failures: u32,
    restarts: u64,
    last_exit: Option<ExitStatus>,
    last_error: Option<String>,
    /// `last_error` says why gosuv restarted a running program, not why a start failed: it
    /// stays when the program is up again.
    restart_reason: bool,
    last_pid: Option<u32>,
    ownership: Option<Ownership>,
    waiters: Waiters,
    /// Pipe drains of earlier runs that may still be reading.
    old_drains: Vec<JoinHandle<()>>,
    done: bool,
    ready_at: Option<SystemTime>,
    status_text: Option<String>,
    health: Option<HealthStatus>,
    /// The reason the next event carries.
    why: Option<String>,
    /// The next start may start its dependencies (a start by hand or by `start_auto`); an
    /// automatic restart or retry does not start a dependency someone stopped.
    pull_deps: bool,
    /// Let go of (a release): the task ends without waiting for anything.
    released: bool,
    /// When the last exits of runs that were up happened (at most `start_limit.burst`), to
    /// tell a crash loop.
    exits: std::collections::VecDeque<Instant>,
    /// Backoffs in a row for a crash loop (0: none under way): the next wait's exponent. The
    /// loop lasts until a run stays up for `start_limit.interval`.
    crash_loops: u32,
}

/// Starts the task of one program and returns its handle.
pub(crate) fn launch(shared: Arc<Shared>, config: ProgramConfig) -> ProgramHandle {
    let launcher = Arc::new(RealLauncher::new(shared.clone()));
    launch_with(shared, launcher, config, None)
}

/// Starts the task of one program that takes over a run a previous server left: `running`
/// at once with that run (its pid, its uptime, its restarts). When the run cannot be taken
/// (it ended, or its number is another process's now), the program starts as a new one
/// would, stopped; the error says why.
pub(crate) fn launch_adopted(
    shared: Arc<Shared>,
    config: ProgramConfig,
    adoption: crate::process_group::Adoption,
    claimed: Result<crate::process_group::Claimed, String>,
) -> (ProgramHandle, Result<(), String>) {
    let launcher = Arc::new(RealLauncher::new(shared.clone()));
    let logs = Arc::new(ProgramLogs::new(&config, &shared));
    let started_at = adoption.started_at;
    let restarts = adoption.restarts;
    let adopted = launcher.adopt(&config, &logs, adoption, claimed);
    let mut failed = None;
    let handle = launch_prepared(shared, launcher, config, logs, |task| match adopted {
        Ok(proc) => task.adopted(proc, started_at, restarts),
        Err(e) => failed = Some(e),
    });
    (handle, failed.map_or(Ok(()), Err))
}

/// Starts the task of one program with `launcher`, in `fatal` with `last_error` when given.
fn launch_with<L: Launcher>(
    shared: Arc<Shared>,
    launcher: Arc<L>,
    config: ProgramConfig,
    fatal: Option<String>,
) -> ProgramHandle {
    let logs = Arc::new(ProgramLogs::new(&config, &shared));
    launch_prepared(shared, launcher, config, logs, |task| {
        if let Some(reason) = fatal {
            task.enter_fatal_after_panic(reason);
        }
    })
}

/// Starts the task of one program, `prepare` applied to it before it runs.
fn launch_prepared<L: Launcher>(
    shared: Arc<Shared>,
    launcher: Arc<L>,
    config: ProgramConfig,
    logs: Arc<ProgramLogs>,
    prepare: impl FnOnce(&mut Task<L>),
) -> ProgramHandle {
    let (cmd_tx, cmd_rx) = mailbox::channel(64);
    let config = Arc::new(config);
    let (pub_tx, pub_rx) = status_watch::channel(Published::new(config.clone()));
    shared
        .peers
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            config.name.clone(),
            Peer {
                cmds: cmd_tx.downgrade(),
                published: pub_rx.clone(),
            },
        );
    let mut task = Task::new(
        shared.clone(),
        launcher,
        logs.clone(),
        Arc::new(pub_tx),
        config,
    );
    prepare(&mut task);
    let join = shared.tracker.spawn(supervise(task, cmd_rx));
    ProgramHandle {
        cmds: cmd_tx,
        published: pub_rx,
        logs,
        task: join,
    }
}

/// The text of a panic's payload.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Runs a program's task until the program is removed. A task that panics is replaced by a
/// fresh one in `fatal` on the same channels: the program is never left a ghost.
///
/// The future lives as long as the program: what it holds is memory each program costs. An
/// async block uses the task where it was moved; an `async fn` would copy its arguments
/// into a second place of its own.
#[allow(clippy::manual_async_fn)]
fn supervise<L: Launcher>(
    mut task: Task<L>,
    mut cmds: mailbox::Receiver<Cmd>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        loop {
            let r = std::panic::AssertUnwindSafe(task.run(&mut cmds))
                .catch_unwind()
                .await;
            let Err(payload) = r else { return };
            take_over_after_panic(&mut task, payload.as_ref());
        }
    }
}

/// Replaces a task that panicked with a fresh one in `fatal`, which inherits what was
/// asked of the failed one.
#[inline(never)]
fn take_over_after_panic<L: Launcher>(task: &mut Task<L>, payload: &(dyn std::any::Any + Send)) {
    let why = panic_text(payload);
    tracing::error!(program = %task.name, "the program's task failed: {why} (a bug; please report it)");
    let fresh = Task::new(
        task.shared.clone(),
        task.launcher.clone(),
        task.logs.clone(),
        task.published.clone(),
        task.wanted.config.clone(),
    );
    // The failed task goes: its run's processes are killed. What was asked of it carries
    // over: its waiters are answered by the fresh task, and a removal still happens.
    let mut old = std::mem::replace(task, fresh);
    task.restarts = old.restarts;
    task.state = old.state;
    task.failures = old.failures;
    task.crash_loops = old.crash_loops;
    task.exits = std::mem::take(&mut old.exits);
    task.wanted.remove = old.wanted.remove;
    task.waiters = std::mem::take(&mut old.waiters);
    task.old_drains = std::mem::take(&mut old.old_drains);
    drop(old);
    task.enter_fatal_after_panic(format!(
        "gosuv's task for this program failed ({why}); it was stopped: start it again (a bug; please report it)"
    ));
}

impl<L: Launcher> Task<L> {
    fn new(
        shared: Arc<Shared>,
        launcher: Arc<L>,
        logs: Arc<ProgramLogs>,
        published: Arc<status_watch::Sender<Published>>,
        config: Arc<ProgramConfig>,
    ) -> Self {
        Task {
            name: config.name.clone(),
            shared,
            launcher,
            logs,
            published,
            logs_config: config.clone(),
            wanted: Wanted {
                run: false,
                config,
                generation: 0,
                remove: false,
            },
            phase: Phase::Idle(ProgramState::Stopped),
            state: ProgramState::Stopped,
            failures: 0,
            restarts: 0,
            last_exit: None,
            last_error: None,
            restart_reason: false,
            last_pid: None,
            ownership: None,
            waiters: Waiters::default(),
            old_drains: Vec::new(),
            done: false,
            ready_at: None,
            status_text: None,
            health: None,
            why: None,
            pull_deps: false,
            released: false,
            exits: std::collections::VecDeque::new(),
            crash_loops: 0,
        }
    }

    fn enter_fatal_after_panic(&mut self, why: String) {
        self.last_error = Some(why);
        self.restart_reason = false;
        self.wanted.run = false;
        self.enter(Phase::Idle(ProgramState::Fatal), None);
    }

    async fn run(&mut self, cmds: &mut mailbox::Receiver<Cmd>) {
        let mut cmds_open = true;
        // What a failed task left asked (a removal) is pursued at once.
        Box::pin(self.steer()).await;
        while !self.done {
            let deadline = match (self.phase.deadline(), self.crash_loop_end()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wake = {
                // Only the wait of a run without probes (every idle program's) is part of
                // the task's future; the others are boxed for the time they wait.
                let proc_event = async {
                    match &mut self.phase {
                        Phase::Starting {
                            run,
                            ready: Some(r),
                            ..
                        } => {
                            Box::pin(async {
                                tokio::select! {
                                    biased;
                                    s = run.proc.exited() => Wake::Exited(s),
                                    rep = r.probe.next() => Wake::Probe(rep),
                                }
                            })
                            .await
                        }
                        Phase::Running {
                            run, probe, told, ..
                        } if probe.is_some() || told.is_some() => {
                            Box::pin(async {
                                tokio::select! {
                                    biased;
                                    s = run.proc.exited() => Wake::Exited(s),
                                    rep = probes::next_of(probe) => Wake::Probe(rep),
                                    rep = probes::next_of(told) => Wake::Probe(rep),
                                }
                            })
                            .await
                        }
                        Phase::Starting { run, .. } | Phase::Running { run, .. } => {
                            Wake::Exited(run.proc.exited().await)
                        }
                        Phase::Stopping { run, .. } => {
                            Box::pin(run.proc.emptied()).await;
                            Wake::Emptied
                        }
                        Phase::Waiting(w) if !w.deps.is_empty() => {
                            let changes = w.deps.iter_mut().map(|d| Box::pin(d.changed()));
                            futures_util::future::select_all(changes).await;
                            Wake::Deps
                        }
                        _ => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    w = proc_event => w,
                    c = cmds.recv(), if cmds_open => Wake::Cmd(c),
                    () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Timer,
                }
            };
            let mut update_reply = None;
            // What a wake does is awaited in a box of its own, made for that wake: the
            // task's future, which lives as long as the program, holds only the wait above
            // (each of thousands of idle programs would carry every handler's largest
            // state otherwise: a start's spawn, a stop's waits; see `task_future_size`).
            match wake {
                Wake::Exited(status) => Box::pin(self.on_exit(status)).await,
                Wake::Emptied => Box::pin(self.on_emptied()).await,
                Wake::Cmd(Some(Cmd::Release(reply))) => {
                    let left = Box::pin(self.let_go()).await;
                    let _ = reply.send(left);
                    self.done = true;
                    self.released = true;
                    break;
                }
                Wake::Cmd(Some(Cmd::Signal(sig, pid, reply))) => {
                    let _ = reply.send(Box::pin(self.signal(sig, pid)).await);
                }
                Wake::Cmd(Some(cmd)) => update_reply = self.on_command(cmd),
                Wake::Cmd(None) => {
                    // Every handle is gone: stop the program rather than orphan it.
                    cmds_open = false;
                    self.wanted.remove = true;
                    self.wanted.run = false;
                }
                Wake::Timer => Box::pin(self.on_timer()).await,
                Wake::Probe(rep) => self.on_probe(rep),
                Wake::Deps => Box::pin(self.check_deps()).await,
            }
            Box::pin(self.steer()).await;
            // An update is answered once its restart has begun, so that the status the
            // caller reads next already shows it.
            if let Some((reply, restarts)) = update_reply {
                let _ = reply.send(restarts);
            }
        }
        // Removed. Commands that came meanwhile find no program any more.
        cmds.close();
        while let Some(cmd) = cmds.try_recv() {
            match cmd {
                Cmd::Start(r) | Cmd::Restart(r) | Cmd::Signal(_, _, r) => {
                    let _ = r.send(Err(Error::NotFound(self.name.clone())));
                }
                Cmd::Stop(r) | Cmd::Remove(r) => self.waiters.stop.push(r),
                Cmd::Sync(r) => {
                    let _ = r.send(());
                }
                Cmd::Release(r) => {
                    let _ = r.send(Left::Idle);
                }
                // Its caller is told the program is gone.
                Cmd::Update(..) => {}
            }
        }
        if self.released {
            // Let go of: nothing else to wait for.
            return;
        }
        // Its last output goes to the files before the removal is answered.
        let mut old_drains = std::mem::take(&mut self.old_drains);
        if !Box::pin(self.logs.settle(&mut old_drains, FLUSH_WAIT)).await {
            tracing::warn!(program = %self.name, "output still unwritten {FLUSH_WAIT:?} after removal");
        }
        for w in self.waiters.start.drain(..) {
            let _ =
                w.1.send(Err(Error::StoppedBeforeRunning(self.name.clone())));
        }
        for w in self
            .waiters
            .stop
            .drain(..)
            .chain(self.waiters.remove.drain(..))
        {
            let _ = w.send(Ok(()));
        }
    }

    fn publish(&self) {
        let run = self.phase.run();
        self.published.send_replace(Published {
            config: self.wanted.config.clone(),
            state: self.state,
            pid: run.map(|r| r.proc.pid()),
            started: run.map(|r| (r.started.0.into_std(), r.started.1)),
            last_exit: self.last_exit,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
            view: run.and_then(|r| r.proc.view()),
            ownership: self.ownership,
            ready_at: self.ready_at,
            status_text: self.status_text.clone(),
            health: self.health.clone(),
            wanted_run: self.wanted.run && !self.wanted.remove,
            removing: self.wanted.remove,
            waiting_for: match &self.phase {
                Phase::Waiting(w) => w
                    .deps
                    .iter()
                    .filter(|d| {
                        d.synced.is_some() || verdict(&d.dep, &d.rx.borrow()) != Verdict::Met
                    })
                    .map(|d| d.dep.name.clone())
                    .collect(),
                _ => Vec::new(),
            },
        });
    }

    /// Announces a change of state (an event and the published status).
    fn emit(&mut self, to: ProgramState, exit: Option<ExitStatus>) {
        let from = self.state;
        self.state = to;
        self.publish();
        // The last run's pid goes with the changes its end caused, not with a wait.
        let pid = self
            .phase
            .run()
            .map(|r| r.proc.pid())
            .or(self.last_pid)
            .filter(|_| to != ProgramState::Waiting);
        tracing::info!(program = %self.name, %from, %to, pid, "state change");
        let _ = self.shared.events.send(Event {
            program: self.name.clone(),
            from,
            to,
            pid,
            exit_code: exit.and_then(ExitStatus::code),
            exit_signal: exit.and_then(ExitStatus::signal),
            at: SystemTime::now(),
            reason: self.why.take(),
        });
        self.answer_waiters();
    }

    /// Moves to `phase`, announcing its state.
    fn enter(&mut self, phase: Phase<L::Proc>, exit: Option<ExitStatus>) {
        self.phase = phase;
        self.emit(self.phase.state(), exit);
    }

    /// Answers every waiter whose wait is over.
    fn answer_waiters(&mut self) {
        let state = self.phase.state();
        let running_gen = match &self.phase {
            Phase::Running { run, .. } => Some(run.generation),
            _ => None,
        };
        let abandoned = !self.wanted.run || self.wanted.remove;
        // `fatal` answers the waiters only when it gave up (a start by hand from `fatal` wants
        // a run again, and its waiter waits for it).
        let fatal_reason = (state == ProgramState::Fatal && abandoned).then(|| {
            let reason = self
                .last_error
                .clone()
                .unwrap_or_else(|| "it exited too soon".into());
            if self.failures > 0 {
                format!(
                    "{reason} ({} failed start{} in a row; fix it and start it again)",
                    self.failures,
                    if self.failures == 1 { "" } else { "s" }
                )
            } else {
                reason
            }
        });
        self.answer_start_waiters(running_gen, fatal_reason, abandoned);
        if matches!(self.phase, Phase::Idle(_)) {
            for w in self.waiters.stop.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
    }

    fn answer_start_waiters(
        &mut self,
        running_gen: Option<u64>,
        fatal_reason: Option<String>,
        abandoned: bool,
    ) {
        let mut keep = Vec::new();
        for (min_gen, tx) in self.waiters.start.drain(..) {
            if running_gen.is_some_and(|g| g >= min_gen) {
                let _ = tx.send(Ok(()));
            } else if let Some(reason) = &fatal_reason {
                let _ = tx.send(Err(Error::StartFailed {
                    name: self.name.clone(),
                    reason: reason.clone(),
                }));
            } else if abandoned {
                let _ = tx.send(Err(Error::StoppedBeforeRunning(self.name.clone())));
            } else {
                keep.push((min_gen, tx));
            }
        }
        self.waiters.start = keep;
    }

    /// Handles a command; an update's reply is returned, to be sent once the task has steered.
    fn on_command(&mut self, cmd: Cmd) -> Option<(oneshot::Sender<bool>, bool)> {
        match cmd {
            Cmd::Start(reply) => {
                if matches!(self.phase, Phase::Running { .. }) && self.wanted.run {
                    let _ = reply.send(Ok(()));
                    return None;
                }
                // A start by hand in backoff tries at once, afresh.
                if matches!(self.phase, Phase::Backoff { .. }) {
                    self.wanted.generation += 1;
                }
                self.want_run();
                self.waiters.start.push((self.wanted.generation, reply));
            }
            Cmd::Restart(reply) => {
                self.want_run();
                self.wanted.generation += 1;
                self.waiters.start.push((self.wanted.generation, reply));
            }
            Cmd::Stop(reply) => {
                self.wanted.run = false;
                self.waiters.stop.push(reply);
            }
            Cmd::Update(config, reply) => {
                if *self.wanted.config == *config {
                    return Some((reply, false));
                }
                // Only its dependencies changed: they matter to its next start, not to the
                // process it has (a start still waiting looks at the new ones).
                let only_deps = {
                    let mut c = (*config).clone();
                    c.depends_on = self.wanted.config.depends_on.clone();
                    c == *self.wanted.config
                };
                self.wanted.config = Arc::new(*config);
                if only_deps {
                    if matches!(self.phase, Phase::Waiting(_)) {
                        // The wait starts over with the new dependencies, pulling them as
                        // the start that began it did.
                        self.wanted.generation += 1;
                        self.pull_deps = true;
                    }
                    self.publish();
                    return Some((reply, false));
                }
                let restarts = match &self.phase {
                    Phase::Starting { .. } | Phase::Running { .. } | Phase::Backoff { .. } => {
                        self.wanted.run
                    }
                    // Not a restart (no process): the wait starts over with the new config.
                    Phase::Waiting(_) => {
                        if self.wanted.run {
                            self.wanted.generation += 1;
                            self.pull_deps = true;
                        }
                        false
                    }
                    // A stop under way: the new config waits for the next start, which
                    // happens only if a restart was already asked for.
                    Phase::Stopping { .. } => self.wanted.run,
                    Phase::Idle(_) => false,
                };
                if restarts {
                    self.wanted.generation += 1;
                } else if matches!(self.phase, Phase::Idle(_)) {
                    self.apply_log_config();
                }
                self.publish();
                return Some((reply, restarts));
            }
            Cmd::Remove(reply) => {
                // A host descriptor nobody reads must not hold up the removal.
                self.logs.stdout.stop_tee();
                self.logs.stderr.stop_tee();
                self.wanted.run = false;
                self.wanted.remove = true;
                self.waiters.remove.push(reply);
            }
            // Handled by the task's loop (it ends the task); never here.
            Cmd::Sync(reply) => {
                let _ = reply.send(());
            }
            Cmd::Release(reply) => {
                let _ = reply.send(Left::Run);
            }
            // Handled by the task's loop (it awaits the signal); never here.
            Cmd::Signal(sig, _, reply) => {
                let _ = reply.send(Err(Error::Internal(format!(
                    "signal {sig} reached the wrong handler"
                ))));
            }
        }
        self.answer_waiters();
        None
    }

    /// Sends `sig` to the current run's processes (through its process group or cgroup,
    /// never a bare pid that may have been reused); without a run, an error with the state.
    /// With `expected`, only to the run whose leader it is.
    async fn signal(&mut self, sig: i32, expected: Option<u32>) -> Result<(), Error> {
        let state = self.phase.state();
        match &mut self.phase {
            Phase::Starting { run, .. }
            | Phase::Running { run, .. }
            | Phase::Stopping { run, .. } => {
                if let Some(was) = expected.filter(|&p| p != run.proc.pid()) {
                    return Err(Error::Invalid(format!(
                        "'{}' restarted: its pid is now {} (was {was}); nothing was sent",
                        self.name,
                        run.proc.pid()
                    )));
                }
                tracing::info!(program = %self.name, signal = sig, "signal sent");
                run.proc.signal(sig).await;
                Ok(())
            }
            _ => match expected {
                Some(was) => Err(Error::Invalid(format!(
                    "'{}' is {state} now: the run with pid {was} ended; nothing was sent",
                    self.name
                ))),
                None => Err(Error::Invalid(format!(
                    "'{}' is {state}, not running: it has no process to signal (start it first)",
                    self.name
                ))),
            },
        }
    }

    /// A start or restart by hand: the program should run, and a program that gave up
    /// (`fatal`, `exited`, `stopped`, or waiting out a backoff) tries afresh.
    fn want_run(&mut self) {
        self.wanted.run = true;
        self.pull_deps = true;
        if matches!(self.phase, Phase::Idle(_) | Phase::Backoff { .. }) {
            self.failures = 0;
        }
        // A start by hand is no exit of a crash loop: the loop's count starts over.
        self.exits.clear();
        self.crash_loops = 0;
        if self.restart_reason {
            self.restart_reason = false;
            self.last_error = None;
        }
    }

    fn apply_log_config(&mut self) {
        if !Arc::ptr_eq(&self.logs_config, &self.wanted.config) {
            self.logs.reconfigure(&self.wanted.config, &self.shared);
            self.logs_config = self.wanted.config.clone();
        }
    }

    /// Moves the phase toward what is wanted, until it stands still.
    async fn steer(&mut self) {
        loop {
            let stale = |gen: u64, w: &Wanted| !w.run || w.remove || gen < w.generation;
            match &self.phase {
                Phase::Idle(_) if self.wanted.remove => {
                    self.done = true;
                    return;
                }
                Phase::Idle(_) if self.wanted.run => self.begin_start().await,
                Phase::Backoff { .. } | Phase::Waiting(_)
                    if !self.wanted.run || self.wanted.remove =>
                {
                    self.enter(Phase::Idle(ProgramState::Stopped), None);
                }
                Phase::Backoff { generation, .. } if *generation < self.wanted.generation => {
                    self.failures = 0;
                    self.begin_start().await;
                }
                Phase::Waiting(w) if w.generation < self.wanted.generation => {
                    self.begin_start().await;
                }
                Phase::Starting { run, .. } | Phase::Running { run, .. }
                    if stale(run.generation, &self.wanted) =>
                {
                    self.begin_stop().await;
                    return;
                }
                _ => return,
            }
        }
    }

    /// A start: at once, or `waiting` for the dependencies first (those not started are
    /// asked to start, like `systemctl start`).
    async fn begin_start(&mut self) {
        let config = self.wanted.config.clone();
        let pull = std::mem::take(&mut self.pull_deps);
        if config.depends_on.is_empty() {
            self.start().await;
            return;
        }
        let mut deps = Vec::with_capacity(config.depends_on.len());
        for dep in &config.depends_on {
            let peer = {
                let peers = self.shared.peers.read().unwrap_or_else(|p| p.into_inner());
                peers
                    .get(&dep.name)
                    .map(|p| (p.cmds.clone(), p.published.clone()))
            };
            let Some((cmds, mut rx)) = peer else {
                self.dependency_failed(format!("'{}' is no program", dep.name));
                return;
            };
            let idle = {
                let p = rx.borrow_and_update();
                !p.wanted_run
                    && matches!(
                        p.state,
                        ProgramState::Stopped | ProgramState::Exited | ProgramState::Fatal
                    )
                    && verdict(dep, &p) != Verdict::Met
            };
            let synced = match cmds.upgrade().filter(|_| idle && pull) {
                Some(tx) => {
                    let (sync_tx, sync_rx) = oneshot::channel();
                    // Sent from a task of its own: this one never waits on another's queue.
                    self.shared.tracker.spawn(async move {
                        let (reply, _) = oneshot::channel();
                        if tx.send(Cmd::Start(reply)).await.is_ok() {
                            let _ = tx.send(Cmd::Sync(sync_tx)).await;
                        }
                    });
                    Some(sync_rx)
                }
                None => None,
            };
            deps.push(DepWatch {
                dep: dep.clone(),
                rx,
                synced,
                closed: false,
            });
        }
        let waiting = Box::new(Awaiting {
            generation: self.wanted.generation,
            deps,
        });
        if waiting
            .deps
            .iter()
            .all(|d| d.synced.is_none() && verdict(&d.dep, &d.rx.borrow()) == Verdict::Met)
        {
            self.start().await;
            return;
        }
        let names: Vec<&str> = waiting
            .deps
            .iter()
            .filter(|d| d.synced.is_some() || verdict(&d.dep, &d.rx.borrow()) != Verdict::Met)
            .map(|d| d.dep.name.as_str())
            .collect();
        self.why = Some(format!("waiting for {}", names.join(", ")));
        self.enter(Phase::Waiting(waiting), None);
        self.check_deps().await;
    }

    /// In `waiting`: starts once every dependency is satisfied, goes `fatal` once one
    /// never will be.
    async fn check_deps(&mut self) {
        let Phase::Waiting(w) = &mut self.phase else {
            return;
        };
        let mut all = true;
        let mut failed = None;
        for d in &mut w.deps {
            match d.verdict() {
                Verdict::Met => {}
                Verdict::Pending => all = false,
                Verdict::Failed(why) => {
                    failed = Some(why);
                    break;
                }
            }
        }
        if let Some(why) = failed {
            self.dependency_failed(why);
        } else if all {
            self.why = Some("dependencies satisfied".into());
            self.start().await;
        } else {
            // Which dependencies are left is part of the status.
            self.publish();
        }
    }

    /// A dependency will not be satisfied: `fatal`, saying which and why.
    fn dependency_failed(&mut self, why: String) {
        let msg = format!("dependency {why}");
        tracing::warn!(program = %self.name, "{msg}");
        self.last_error = Some(msg.clone());
        self.restart_reason = false;
        self.wanted.run = false;
        self.why = Some(msg);
        self.enter(Phase::Idle(ProgramState::Fatal), None);
    }

    /// Spawns a run of the wanted config.
    async fn start(&mut self) {
        self.apply_log_config();
        let config = self.wanted.config.clone();
        let generation = self.wanted.generation;
        self.ready_at = None;
        self.status_text = None;
        // What a told probe (log, notify) needs is ready before the run can say anything.
        let early = probes::Early::prepare(&config, &self.logs).await;
        // The same start for the status and for what observers record (a later server that
        // takes the run over shows this start).
        let started = (Instant::now(), SystemTime::now());
        let meta = crate::process_group::RunMeta {
            fingerprint: config.fingerprint(),
            restarts: self.restarts,
            started_at: started.1,
        };
        let launched = match &early {
            Ok(early) => match early.notify_path() {
                Some(path) => {
                    let mut c = (*config).clone();
                    c.environ
                        .push(("NOTIFY_SOCKET".into(), path.display().to_string()));
                    self.launcher.launch(&c, &self.logs, meta).await
                }
                None => self.launcher.launch(&config, &self.logs, meta).await,
            },
            Err(e) => Err(e.clone()),
        };
        match launched {
            Ok(proc) => {
                self.last_pid = Some(proc.pid());
                self.ownership = Some(proc.ownership());
                let cgroup = proc
                    .view()
                    .and_then(|v| v.cgroup.as_ref().map(|c| c.path().to_path_buf()));
                let ready = match (&config.ready, early) {
                    (Some(r), Ok(early)) => Some(Box::new(Readying {
                        // Each attempt may take up to the whole timeout (an attempt slower
                        // than `interval` must still be able to pass); attempts never
                        // overlap, the next starts `interval` after the last ended.
                        probe: probes::start(
                            &r.check,
                            Duration::ZERO,
                            r.interval,
                            r.timeout,
                            early,
                            self.shared.clone(),
                            config.clone(),
                            proc.pid(),
                            cgroup,
                        ),
                        last_failure: None,
                        gave_up: false,
                    })),
                    _ => None,
                };
                let run = Run {
                    started,
                    generation,
                    proc,
                    config: config.clone(),
                };
                let up_at = Instant::now()
                    + config
                        .ready
                        .as_ref()
                        .map_or_else(|| config.start_duration(), |r| r.timeout);
                let at_once = ready.is_none() && config.start_seconds == 0;
                self.enter(Phase::Starting { run, up_at, ready }, None);
                if at_once {
                    self.up();
                }
            }
            Err(msg) => {
                tracing::warn!(program = %self.name, "spawn failed: {msg}");
                self.last_error = Some(msg);
                self.restart_reason = false;
                // A start that could not even spawn: `starting`, then a failed start.
                let from = std::mem::replace(&mut self.phase, Phase::Idle(ProgramState::Stopped));
                drop(from);
                self.emit(ProgramState::Starting, None);
                self.failed_start(None, generation);
            }
        }
    }

    /// `starting` -> `running`.
    fn up(&mut self) {
        let Phase::Starting { .. } = self.phase else {
            return;
        };
        let Phase::Starting { run, ready, .. } =
            std::mem::replace(&mut self.phase, Phase::Idle(ProgramState::Stopped))
        else {
            return;
        };
        let told = ready
            .filter(|_| {
                matches!(
                    run.config.ready.as_ref().map(|r| &r.check),
                    Some(crate::config::ProbeCheck::Notify)
                )
            })
            .map(|r| Box::new(r.probe));
        // Failed starts in a row end here, or, for a run ready sooner than start_seconds,
        // once it has lived that long (an exit before is still a failed start).
        if run.config.ready.is_none() || run.started.0.elapsed() >= run.config.start_duration() {
            self.failures = 0;
        }
        if !self.restart_reason {
            self.last_error = None;
        }
        let ran = run.started.0.elapsed().as_secs_f64();
        // An adopted run says where it came from instead.
        self.why = self.why.take().or_else(|| {
            Some(match &run.config.ready {
                Some(r) => format!("ready: its {} probe passed after {ran:.3}s", r.check.kind()),
                None => format!("up for {ran:.3}s (start_seconds)"),
            })
        });
        self.ready_at = Some(SystemTime::now());
        let check_at = self.memory_check_after(&run);
        // The health probe from now on (its first attempt an interval later).
        let probe = run.config.health.as_ref().map(|h| {
            if self.health.is_none() {
                self.health = Some(HealthStatus::default());
            }
            if let Some(hs) = self.health.as_mut() {
                hs.failing = 0;
            }
            let cgroup = run
                .proc
                .view()
                .and_then(|v| v.cgroup.as_ref().map(|c| c.path().to_path_buf()));
            Box::new(probes::start(
                &h.check,
                h.interval,
                h.interval,
                h.timeout,
                probes::Early::None,
                self.shared.clone(),
                run.config.clone(),
                run.proc.pid(),
                cgroup,
            ))
        });
        self.enter(
            Phase::Running {
                run,
                check_at,
                probe,
                told,
            },
            None,
        );
    }

    /// Lets go of the current run without touching its processes: its pipes are no longer
    /// read (what was read is written first), nobody is told it ended (its record and its
    /// holder's pipes stay), and it is not killed.
    async fn let_go(&mut self) -> Left {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle(self.state));
        let wanted = if self.wanted.run && !self.wanted.remove {
            Left::Wanted
        } else {
            Left::Idle
        };
        let left = match phase {
            Phase::Starting { run, .. } | Phase::Running { run, .. } => {
                run.proc.let_go().await;
                Left::Run
            }
            // A stop under way is finished first (it was asked for, and would be lost), at
            // most a few seconds, then SIGKILL: every other program waits unread meanwhile.
            Phase::Stopping { mut run, kill_at } => {
                let cap = Instant::now() + RELEASE_STOP_WAIT;
                let at = kill_at.map_or(Instant::now(), |k| k.min(cap));
                if tokio::time::timeout_at(at, run.proc.emptied())
                    .await
                    .is_err()
                {
                    run.proc.kill().await;
                    let _ = tokio::time::timeout(CGROUP_EMPTY_WAIT, run.proc.emptied()).await;
                }
                let mut drains = run.proc.finish().await;
                self.old_drains.append(&mut drains);
                wanted
            }
            Phase::Idle(state) => {
                self.phase = Phase::Idle(state);
                wanted
            }
            other => {
                // Backoff or waiting: a run is wanted.
                self.phase = other;
                Left::Wanted
            }
        };
        // Earlier runs' drains (a pipe a leftover still holds): a little time to finish,
        // then what they read is written and they stop.
        let mut old = std::mem::take(&mut self.old_drains);
        if !self.logs.settle(&mut old, EXIT_OUTPUT_WAIT).await {
            for d in old {
                d.abort();
                let _ = d.await;
            }
            let _ = tokio::time::timeout(FLUSH_WAIT, async {
                self.logs.stdout.flushed().await;
                self.logs.stderr.flushed().await;
            })
            .await;
        }
        left
    }

    /// Takes over a running run a previous server left: `running` at once (it was up
    /// there), wanted running, its uptime and restarts kept.
    fn adopted(&mut self, proc: L::Proc, started_at: SystemTime, restarts: u64) {
        let config = self.wanted.config.clone();
        let age = SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default();
        let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
        self.wanted.run = true;
        self.restarts = restarts;
        self.last_pid = Some(proc.pid());
        self.ownership = Some(proc.ownership());
        let pid = proc.pid();
        let run = Run {
            started: (since, started_at),
            generation: self.wanted.generation,
            proc,
            config,
        };
        // Straight to `running` (one event, from `stopped`): it was up already.
        self.phase = Phase::Starting {
            run,
            up_at: Instant::now(),
            ready: None,
        };
        self.why = Some(format!(
            "adopted: pid {pid} kept running from the last server"
        ));
        self.up();
    }

    fn memory_check_after(&self, run: &Run<L::Proc>) -> Option<Instant> {
        (run.config.memory_max.is_some() && !run.proc.kernel_enforces_memory())
            .then(|| Instant::now() + MEMORY_CHECK)
    }

    fn failed_start(&mut self, exit: Option<ExitStatus>, generation: u64) {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.wanted.config.start_retries.max(1) {
            self.wanted.run = false;
            self.enter(Phase::Idle(ProgramState::Fatal), exit);
        } else {
            let until = Instant::now() + backoff_delay(self.failures);
            self.enter(Phase::Backoff { until, generation }, exit);
        }
    }

    async fn on_exit(&mut self, status: ExitStatus) {
        // An exit seen at the same moment as `start_seconds` ended: it lived long enough, so
        // it was up (the exit is looked at first when both are ready).
        if let Phase::Starting {
            up_at, ready: None, ..
        } = &self.phase
        {
            if Instant::now() >= *up_at {
                self.up();
            }
        }
        let phase = std::mem::replace(&mut self.phase, Phase::Idle(self.state));
        self.last_exit = Some(status);
        match phase {
            Phase::Starting { run, ready, .. } => {
                let ran = run.started.0.elapsed().as_secs_f64();
                let generation = run.generation;
                let start_seconds = run.config.start_seconds;
                let ready_probe = run.config.ready.clone();
                // The probe ends here: what it found is all that is kept.
                let (gave_up, probe_said) = match ready {
                    Some(r) => (Some(r.gave_up), r.last_failure.clone()),
                    None => (None, None),
                };
                // The output often says why: the rest of the run is killed and its last
                // output waited for, briefly.
                let mut left = run.proc.after_exit().await;
                self.old_drains.append(&mut left);
                let words = self.logs.last_words();
                let probe_said = probe_said.unwrap_or_else(|| "no answer yet".into());
                self.last_error = Some(match (gave_up, ready_probe) {
                    (Some(true), Some(p)) => format!(
                        "not ready within {} ({} probe): {probe_said}: killed",
                        crate::config::format_duration(p.timeout),
                        p.check.kind()
                    ),
                    (Some(false), Some(p)) => format!(
                        "exited with {status} after {ran:.2}s, before it was ready ({} probe: {probe_said}){}",
                        p.check.kind(),
                        words.map(|w| format!(": {w}")).unwrap_or_default()
                    ),
                    _ => format!(
                        "exited with {status} after {ran:.2}s, before start_seconds ({start_seconds}s){}",
                        words.map(|w| format!(": {w}")).unwrap_or_default()
                    ),
                });
                self.restart_reason = false;
                self.failed_start(Some(status), generation);
            }
            Phase::Running {
                run, probe, told, ..
            } => {
                drop(probe);
                drop(told);
                self.ready_at = None;
                let oom = run.proc.oom_killed();
                let config = run.config.clone();
                let ran = run.started.0.elapsed();
                let generation = run.generation;
                let mut left = run.proc.after_exit().await;
                self.old_drains.append(&mut left);
                // Ready, but dead within start_seconds of its start: a failed start all the
                // same (with backoff, then fatal), or a program that says it is ready and
                // crashes would be restarted at once for ever.
                if config.ready.is_some() && ran < config.start_duration() && !oom {
                    let words = self.logs.last_words();
                    self.last_error = Some(format!(
                        "exited with {status} after {:.2}s, within start_seconds ({}s) although it was ready{}",
                        ran.as_secs_f64(),
                        config.start_seconds,
                        words.map(|w| format!(": {w}")).unwrap_or_default()
                    ));
                    self.restart_reason = false;
                    self.failed_start(Some(status), generation);
                    self.old_drains.retain(|d| !d.is_finished());
                    return;
                }
                // It lived past start_seconds: its start did not fail.
                self.failures = 0;
                let cause = if oom {
                    let why = format!(
                        "killed by the kernel for lack of memory{}",
                        config
                            .memory_max
                            .map(|m| format!(" (memory_max {})", crate::config::human_size(m)))
                            .unwrap_or_default()
                    );
                    self.last_error = Some(why.clone());
                    self.restart_reason = true;
                    why
                } else {
                    exit_cause(status)
                };
                let expected = status
                    .code()
                    .is_some_and(|c| config.exit_codes.contains(&c));
                if status == ExitStatus::Unknown {
                    // Neither a code nor a signal in the event: it says why.
                    self.why = Some(format!("exited with {status}"));
                }
                let again = match config.autorestart {
                    Autorestart::Always => true,
                    Autorestart::Never => false,
                    Autorestart::Unexpected => !expected,
                };
                let crash_loop = (again && self.wanted.run)
                    .then(|| self.count_exit(config.start_limit, ran, &cause))
                    .flatten();
                self.enter(Phase::Idle(ProgramState::Exited), Some(status));
                if let Some(why) = crash_loop.filter(|_| self.wanted.run) {
                    // Not at once: the restart waits out a backoff (counted when it comes).
                    tracing::warn!(program = %self.name, "{why}: restarting after a backoff");
                    self.last_error = Some(why.clone());
                    self.restart_reason = true;
                    self.why = Some(why);
                    let until = Instant::now() + backoff_delay(self.crash_loops);
                    let generation = self.wanted.generation;
                    self.enter(Phase::Backoff { until, generation }, None);
                } else if again && self.wanted.run {
                    self.restarts += 1;
                } else {
                    self.wanted.run = false;
                    // Not restarted: its dependents learn it from this.
                    self.publish();
                    self.answer_waiters();
                }
            }
            other => self.phase = other,
        }
        self.old_drains.retain(|d| !d.is_finished());
    }

    /// Counts an exit of a run that was up `ran`, to be restarted: the crash loop's message
    /// when it makes `limit.burst` exits within `limit.interval`, or when a loop is under way
    /// and this run did not stay up for `interval`. Only such a run ends a loop: the time
    /// spent in backoff spreads the exits, and must not.
    fn count_exit(
        &mut self,
        limit: crate::config::StartLimit,
        ran: Duration,
        cause: &str,
    ) -> Option<String> {
        if self.crash_loops > 0 {
            if limit.burst > 0 && ran < limit.interval {
                self.crash_loops = self.crash_loops.saturating_add(1);
                return Some(crash_loop_text(limit, cause));
            }
            self.end_crash_loop();
        }
        let now = Instant::now();
        let burst = limit.burst as usize;
        self.exits.push_back(now);
        while self.exits.len() > burst {
            self.exits.pop_front();
        }
        let looping = burst > 0
            && self.exits.len() == burst
            && self
                .exits
                .front()
                .is_some_and(|first| now.duration_since(*first) <= limit.interval);
        if looping {
            self.crash_loops = 1;
            return Some(crash_loop_text(limit, cause));
        }
        None
    }

    /// When the run up now will have stayed up long enough to end a crash loop.
    fn crash_loop_end(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Running { run, .. } if self.crash_loops > 0 => {
                Some(run.started.0 + run.config.start_limit.interval)
            }
            _ => None,
        }
    }

    /// Forgets a crash loop (its count, its exits, and the `last_error` it left).
    fn end_crash_loop(&mut self) {
        self.crash_loops = 0;
        self.exits.clear();
        if self.restart_reason
            && self
                .last_error
                .as_deref()
                .is_some_and(|e| e.starts_with(CRASH_LOOP))
        {
            self.restart_reason = false;
            self.last_error = None;
        }
    }

    async fn on_emptied(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle(self.state));
        let Phase::Stopping { mut run, .. } = phase else {
            self.phase = phase;
            return;
        };
        if let Some(e) = run.proc.exit() {
            self.last_exit = Some(e);
        }
        let mut left = run.proc.finish().await;
        self.old_drains.append(&mut left);
        self.old_drains.retain(|d| !d.is_finished());
        // No current run: nothing is ready.
        self.ready_at = None;
        self.enter(Phase::Idle(ProgramState::Stopped), self.last_exit);
    }

    async fn begin_stop(&mut self) {
        let phase = std::mem::replace(&mut self.phase, Phase::Idle(self.state));
        // The probes end first: no attempt of theirs runs against a stopping program.
        let run = match phase {
            Phase::Starting { run, ready, .. } => {
                drop(ready);
                run
            }
            Phase::Running {
                run, probe, told, ..
            } => {
                drop(probe);
                drop(told);
                run
            }
            other => {
                self.phase = other;
                return;
            }
        };
        let kill_at = Instant::now() + run.config.stop_duration();
        let sig = run.config.stop_signal.0 as i32;
        self.enter(
            Phase::Stopping {
                run,
                kill_at: Some(kill_at),
            },
            None,
        );
        if let Phase::Stopping { run, .. } = &mut self.phase {
            run.proc.stop(sig).await;
        }
    }

    /// A probe's report.
    fn on_probe(&mut self, rep: probes::Report) {
        match (&mut self.phase, rep) {
            (_, probes::Report::Status(s)) => {
                self.status_text = Some(s);
                self.publish();
            }
            (Phase::Starting { ready: Some(r), .. }, probes::Report::Passed) if !r.gave_up => {
                self.up();
            }
            (Phase::Starting { ready: Some(r), .. }, probes::Report::Failed(e)) => {
                r.last_failure = Some(e);
            }
            (Phase::Running { run, .. }, probes::Report::Passed) if run.config.health.is_some() => {
                if let Some(h) = self.health.as_mut().filter(|h| h.failing > 0) {
                    h.failing = 0;
                    self.publish();
                }
            }
            (Phase::Running { run, .. }, probes::Report::Failed(e)) => {
                let Some(limit) = run.config.health.as_ref().map(|h| h.failures) else {
                    return;
                };
                let h = self.health.get_or_insert_with(HealthStatus::default);
                h.failures = h.failures.saturating_add(1);
                h.failing = h.failing.saturating_add(1);
                h.last_error = Some(e.clone());
                let failing = h.failing;
                tracing::warn!(program = %self.name, failing, "health check failed: {e}");
                let restart = failing >= limit;
                if restart {
                    self.last_error = Some(format!(
                        "health check failed {failing} times in a row ({e}): restarted"
                    ));
                    self.restart_reason = true;
                    self.restarts += 1;
                    self.wanted.generation += 1;
                }
                // An event of its own (running -> running), so a failing check is seen
                // before it restarts the program.
                self.why = Some(format!(
                    "health check failed ({failing} of {limit} in a row){}: {e}",
                    if restart { ", restarting" } else { "" }
                ));
                self.emit(ProgramState::Running, None);
            }
            _ => {}
        }
    }

    async fn on_timer(&mut self) {
        let now = Instant::now();
        if self.crash_loop_end().is_some_and(|t| now >= t) {
            tracing::info!(program = %self.name, "up for start_limit.interval: the crash loop is over");
            self.end_crash_loop();
            self.publish();
        }
        match &mut self.phase {
            Phase::Starting {
                up_at,
                ready: Some(r),
                run,
            } if now >= *up_at && !r.gave_up => {
                // Not ready in time: a failed start, once its exit is seen.
                r.gave_up = true;
                *up_at = now + Duration::from_secs(crate::config::MAX_DURATION_SECS);
                tracing::warn!(program = %self.name, "not ready in time: killed");
                run.proc.kill().await;
            }
            Phase::Starting { ready: Some(_), .. } => {}
            Phase::Starting { up_at, .. } if now >= *up_at => self.up(),
            Phase::Backoff { until, .. }
                if now >= *until && self.wanted.run && !self.wanted.remove =>
            {
                self.restarts += 1;
                // Its dependencies are looked at again (not started: a retry is no start
                // by hand).
                self.begin_start().await;
            }
            Phase::Stopping { run, kill_at } if kill_at.is_some_and(|t| now >= t) => {
                tracing::warn!(program = %self.name, "stop_timeout passed: SIGKILL to every process of the program");
                *kill_at = None;
                run.proc.kill().await;
            }
            Phase::Running { run, check_at, .. } if check_at.is_some_and(|t| now >= t) => {
                *check_at = Some(now + MEMORY_CHECK);
                let max = run.config.memory_max;
                let used = run.proc.memory().await;
                if let (Some(max), Some(used)) = (max, used) {
                    if used > max {
                        self.last_error = Some(format!(
                            "used {} of memory, over memory_max {}: restarted",
                            crate::config::human_size(used),
                            crate::config::human_size(max)
                        ));
                        self.restart_reason = true;
                        tracing::warn!(program = %self.name, "{}", self.last_error.as_deref().unwrap_or_default());
                        self.restarts += 1;
                        self.wanted.generation += 1;
                    }
                }
            }
            _ => {}
        }
    }
}

pub(crate) mod mailbox;
mod probes;
mod run;
mod status_watch;
mod tcp_batch;
pub use run::trim_memory_after_start_bursts;
use run::{Launcher, Process, RealLauncher};
#[cfg(test)]
mod tests;
