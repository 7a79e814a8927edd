//! One program's state machine (SPEC §3) and the task that runs it.
//!
//! The task owns the child and is the only writer of the program's state. Commands arrive on
//! a bounded channel, exits from the reaper on another, and one timer covers `start_seconds`,
//! the backoff delay and `stop_timeout`; nothing polls while a program simply runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use crate::config::{Autorestart, ProgramConfig};
use crate::error::Error;
use crate::events::{ser_opt_time, Event, ExitStatus, ProgramState};
use crate::logs::{drain, LogCounters, LogSink, RotatingFile, Stream};
use crate::reaper::ExitSender;
use crate::spawn::{group_alive, signal_group, spawn, SpawnOptions};

/// The longest backoff between two starts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before retry number `failures` (1-based): 1 s, 2 s, 4 s ... capped at 60 s.
pub fn backoff_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// How often a stopping program's process group is checked once its leader is gone: first
/// soon, then less often while something in it lingers.
const GROUP_POLL_FIRST: Duration = Duration::from_millis(10);
const GROUP_POLL_MAX: Duration = Duration::from_millis(200);

/// How long an exit (or the end of a stop) waits for the program's last output to be read
/// from its pipes and written to its log files before the state changes, so that whoever
/// sees `exited`, `stopped`, `backoff` or `fatal` finds every byte in the files (and a failed
/// start can quote its last words in `last_error`). Longer only when something outside the
/// process group still holds a pipe, or the disk is slow.
const EXIT_OUTPUT_WAIT: Duration = Duration::from_millis(250);

/// How long a removal waits for the program's last output to reach its log files (longer
/// only when something outside the process group still holds a pipe, or the disk hangs).
const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Settings every program task shares.
pub(crate) struct Shared {
    pub events: broadcast::Sender<Event>,
    pub base_dir: PathBuf,
    pub log_dir: PathBuf,
    pub spawn: SpawnOptions,
}

/// A program's two output streams.
#[derive(Debug)]
pub(crate) struct ProgramLogs {
    pub stdout: Arc<LogSink>,
    pub stderr: Arc<LogSink>,
}

impl ProgramLogs {
    fn files(config: &ProgramConfig, log_dir: &std::path::Path) -> [Option<RotatingFile>; 2] {
        if config.log_disable {
            return [None, None];
        }
        let file = |stream: Stream| {
            RotatingFile::new(
                log_dir.join(format!("{}.{}.log", config.name, stream.as_str())),
                config.log_max_bytes,
                config.log_backups,
            )
        };
        let stderr = (!config.redirect_stderr).then(|| file(Stream::Stderr));
        [Some(file(Stream::Stdout)), stderr]
    }

    pub(crate) fn new(config: &ProgramConfig, log_dir: &std::path::Path) -> Self {
        let [out, err] = Self::files(config, log_dir);
        ProgramLogs {
            stdout: Arc::new(LogSink::new(out)),
            stderr: Arc::new(LogSink::new(err)),
        }
    }

    fn reconfigure(&self, config: &ProgramConfig, log_dir: &std::path::Path) {
        let [out, err] = Self::files(config, log_dir);
        self.stdout.reconfigure(out);
        self.stderr.reconfigure(err);
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
}

/// A program's live status as the task publishes it.
#[derive(Clone, Debug)]
pub(crate) struct Published {
    pub config: Arc<ProgramConfig>,
    pub state: ProgramState,
    pub pid: Option<u32>,
    pub started: Option<(Instant, SystemTime)>,
    pub last_exit: Option<ExitStatus>,
    pub restarts: u64,
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
    /// Why the last start failed, until the program next reaches `running`.
    pub last_error: Option<String>,
    /// Failed writes to its log files.
    pub log_errors: u64,
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
        }
    }
}

/// What a program task is asked to do.
pub(crate) enum Cmd {
    /// Start; the reply comes once it is `running` (or could not get there).
    Start(oneshot::Sender<Result<(), Error>>),
    /// Stop; the reply comes once the whole process group is gone.
    Stop(oneshot::Sender<Result<(), Error>>),
    /// Stop if needed, then start; replies like `Start`.
    Restart(oneshot::Sender<Result<(), Error>>),
    /// Replace the config; restarts it when it had a process. Replies whether it restarted.
    Update(Box<ProgramConfig>, oneshot::Sender<bool>),
    /// Stop, then end the task; the reply comes when it is gone.
    Remove(oneshot::Sender<Result<(), Error>>),
    /// Replies once every command sent before it has been handled.
    Sync(oneshot::Sender<()>),
}

/// The handle the supervisor keeps for each program.
pub(crate) struct ProgramHandle {
    pub cmds: mpsc::Sender<Cmd>,
    pub published: watch::Receiver<Published>,
    pub logs: Arc<ProgramLogs>,
}

impl ProgramHandle {
    pub(crate) fn status(&self) -> ProgramStatus {
        ProgramStatus::from_published(&self.published.borrow(), self.logs.write_errors())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Timer {
    /// `start_seconds` are up.
    Started,
    /// The backoff delay is over.
    Retry,
    /// `stop_timeout` is up: SIGKILL the group.
    Kill,
    /// Look again whether the stopping group is gone.
    GroupPoll,
}

struct Leader {
    pid: u32,
    started: Instant,
    started_wall: SystemTime,
    drains: Vec<JoinHandle<()>>,
}

struct Task {
    shared: Arc<Shared>,
    config: ProgramConfig,
    pending_config: Option<ProgramConfig>,
    published: watch::Sender<Published>,
    logs: Arc<ProgramLogs>,
    exits: ExitSender,
    state: ProgramState,
    leader: Option<Leader>,
    /// The process group being stopped, kept until it is empty.
    group: Option<u32>,
    last_pid: Option<u32>,
    last_exit: Option<ExitStatus>,
    last_error: Option<String>,
    failures: u32,
    restarts: u64,
    timer: Option<(Instant, Timer)>,
    kill_at: Option<Instant>,
    killed: bool,
    group_poll: Duration,
    start_waiters: Vec<oneshot::Sender<Result<(), Error>>>,
    stop_waiters: Vec<oneshot::Sender<Result<(), Error>>>,
    start_after_stop: bool,
    remove_after_stop: bool,
    done: bool,
    /// Pipe drains of earlier runs that may still be reading.
    old_drains: Vec<JoinHandle<()>>,
    /// Pipe drains of the run being stopped, whose leader has exited: `check_group` waits for
    /// them once the group is gone.
    exit_drains: Vec<JoinHandle<()>>,
}

/// Starts the task of one program and returns its handle.
pub(crate) fn launch(shared: Arc<Shared>, config: ProgramConfig) -> ProgramHandle {
    let logs = Arc::new(ProgramLogs::new(&config, &shared.log_dir));
    let (cmd_tx, cmd_rx) = mpsc::channel(64);
    let (exit_tx, exit_rx) = mpsc::unbounded_channel();
    let (pub_tx, pub_rx) = watch::channel(Published {
        config: Arc::new(config.clone()),
        state: ProgramState::Stopped,
        pid: None,
        started: None,
        last_exit: None,
        restarts: 0,
        last_error: None,
    });
    let task = Task {
        shared,
        config,
        pending_config: None,
        published: pub_tx,
        logs: logs.clone(),
        exits: exit_tx,
        state: ProgramState::Stopped,
        leader: None,
        group: None,
        last_pid: None,
        last_exit: None,
        last_error: None,
        failures: 0,
        restarts: 0,
        timer: None,
        kill_at: None,
        killed: false,
        group_poll: GROUP_POLL_FIRST,
        start_waiters: Vec::new(),
        stop_waiters: Vec::new(),
        start_after_stop: false,
        remove_after_stop: false,
        done: false,
        old_drains: Vec::new(),
        exit_drains: Vec::new(),
    };
    tokio::spawn(task.run(cmd_rx, exit_rx));
    ProgramHandle {
        cmds: cmd_tx,
        published: pub_rx,
        logs,
    }
}

impl Task {
    async fn run(
        mut self,
        mut cmds: mpsc::Receiver<Cmd>,
        mut exits: mpsc::UnboundedReceiver<(u32, ExitStatus)>,
    ) {
        let mut cmds_open = true;
        while !self.done {
            let deadline = self.timer.map(|(at, _)| at);
            tokio::select! {
                biased;
                Some((pid, status)) = exits.recv() => self.on_exit(pid, status).await,
                cmd = cmds.recv(), if cmds_open => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    None => {
                        // Every handle is gone: stop the program rather than orphan it.
                        cmds_open = false;
                        self.remove_after_stop = true;
                        self.begin_stop();
                    }
                },
                () = sleep_until(deadline.unwrap_or_else(Instant::now).into()), if deadline.is_some() => {
                    self.on_timer().await;
                }
            }
        }
        // Removed: its last output goes to the files before the removal is answered.
        let mut drains = std::mem::take(&mut self.old_drains);
        drains.append(&mut self.exit_drains);
        if let Some(leader) = self.leader.take() {
            drains.extend(leader.drains);
        }
        if !self.settle_output(&mut drains, FLUSH_WAIT).await {
            tracing::warn!(program = %self.name(), "output still unwritten {FLUSH_WAIT:?} after removal");
        }
        for w in self.stop_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    fn name(&self) -> &str {
        &self.config.name
    }

    fn publish(&self) {
        let config = Arc::new(
            self.pending_config
                .clone()
                .unwrap_or_else(|| self.config.clone()),
        );
        self.published.send_replace(Published {
            config,
            state: self.state,
            pid: self.leader.as_ref().map(|l| l.pid),
            started: self.leader.as_ref().map(|l| (l.started, l.started_wall)),
            last_exit: self.last_exit,
            restarts: self.restarts,
            last_error: self.last_error.clone(),
        });
    }

    fn transition(&mut self, to: ProgramState, exit: Option<ExitStatus>) {
        let from = self.state;
        self.state = to;
        self.publish();
        let pid = self.leader.as_ref().map(|l| l.pid).or(self.last_pid);
        tracing::info!(program = %self.config.name, %from, %to, pid, "state change");
        let _ = self.shared.events.send(Event {
            program: self.config.name.clone(),
            from,
            to,
            pid,
            exit_code: exit.and_then(ExitStatus::code),
            exit_signal: exit.and_then(ExitStatus::signal),
            at: SystemTime::now(),
        });
    }

    fn on_command(&mut self, cmd: Cmd) {
        use ProgramState::*;
        match cmd {
            Cmd::Start(reply) => match self.state {
                Running => {
                    let _ = reply.send(Ok(()));
                }
                Starting | Backoff => self.start_waiters.push(reply),
                Stopping => {
                    self.start_waiters.push(reply);
                    self.start_after_stop = true;
                }
                Stopped | Exited | Fatal => {
                    self.start_waiters.push(reply);
                    self.failures = 0;
                    self.begin_start();
                }
            },
            Cmd::Stop(reply) => {
                self.stop_waiters.push(reply);
                self.start_after_stop = false;
                self.begin_stop();
            }
            Cmd::Restart(reply) => {
                self.start_waiters.push(reply);
                self.restart();
            }
            Cmd::Update(config, reply) => {
                let current = self.pending_config.as_ref().unwrap_or(&self.config);
                if *current == *config {
                    let _ = reply.send(false);
                } else if self.state == Stopping {
                    // A stop is under way: the new config waits for the next start, which
                    // happens only if a restart was already asked for.
                    self.pending_config = Some(*config);
                    self.publish();
                    let _ = reply.send(self.start_after_stop);
                } else if matches!(self.state, Starting | Running | Backoff) {
                    self.pending_config = Some(*config);
                    self.publish();
                    self.restart();
                    let _ = reply.send(true);
                } else {
                    self.apply_config(*config);
                    self.publish();
                    let _ = reply.send(false);
                }
            }
            Cmd::Remove(reply) => {
                self.stop_waiters.push(reply);
                self.remove_after_stop = true;
                self.start_after_stop = false;
                self.begin_stop();
            }
            Cmd::Sync(reply) => {
                let _ = reply.send(());
            }
        }
    }

    fn restart(&mut self) {
        use ProgramState::*;
        match self.state {
            Starting | Running | Backoff | Stopping => {
                self.start_after_stop = true;
                self.begin_stop();
            }
            Stopped | Exited | Fatal => {
                self.failures = 0;
                self.begin_start();
            }
        }
    }

    fn apply_config(&mut self, config: ProgramConfig) {
        self.logs.reconfigure(&config, &self.shared.log_dir);
        self.config = config;
    }

    fn begin_start(&mut self) {
        if let Some(cfg) = self.pending_config.take() {
            self.apply_config(cfg);
        }
        self.timer = None;
        match spawn(
            &self.config,
            &self.shared.base_dir,
            &self.shared.spawn,
            self.exits.clone(),
        ) {
            Ok(sp) => {
                let mut drains = vec![tokio::spawn(drain(sp.stdout, self.logs.stdout.clone()))];
                if let Some(err) = sp.stderr {
                    drains.push(tokio::spawn(drain(err, self.logs.stderr.clone())));
                }
                self.leader = Some(Leader {
                    pid: sp.pid,
                    started: Instant::now(),
                    started_wall: SystemTime::now(),
                    drains,
                });
                self.group = Some(sp.pid);
                if self.shared.spawn.kill_on_parent_death {
                    crate::guardian::watch(sp.pid);
                }
                self.last_pid = Some(sp.pid);
                self.transition(ProgramState::Starting, None);
                if self.config.start_seconds == 0 {
                    self.on_started();
                } else {
                    self.timer = Some((
                        Instant::now() + self.config.start_duration(),
                        Timer::Started,
                    ));
                }
            }
            Err(msg) => {
                tracing::warn!(program = %self.config.name, "spawn failed: {msg}");
                self.last_error = Some(msg);
                self.transition(ProgramState::Starting, None);
                self.failed_start(None);
            }
        }
    }

    fn on_started(&mut self) {
        self.failures = 0;
        self.last_error = None;
        self.transition(ProgramState::Running, None);
        for w in self.start_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
    }

    fn failed_start(&mut self, exit: Option<ExitStatus>) {
        self.failures += 1;
        if self.failures >= self.config.start_retries.max(1) {
            self.transition(ProgramState::Fatal, exit);
            let reason = self
                .last_error
                .clone()
                .unwrap_or_else(|| "it exited too soon".into());
            let reason = format!(
                "{reason} ({} failed start{} in a row; fix it and start it again)",
                self.failures,
                if self.failures == 1 { "" } else { "s" }
            );
            for w in self.start_waiters.drain(..) {
                let _ = w.send(Err(Error::StartFailed {
                    name: self.config.name.clone(),
                    reason: reason.clone(),
                }));
            }
        } else {
            self.transition(ProgramState::Backoff, exit);
            self.timer = Some((Instant::now() + backoff_delay(self.failures), Timer::Retry));
        }
    }

    async fn on_exit(&mut self, pid: u32, status: ExitStatus) {
        if self.leader.as_ref().map(|l| l.pid) != Some(pid) {
            return;
        }
        let Some(leader) = self.leader.take() else {
            return;
        };
        let mut drains = leader.drains;
        self.last_exit = Some(status);
        match self.state {
            ProgramState::Starting => {
                self.timer = None;
                let ran = leader.started.elapsed().as_secs_f64();
                // The output often says why: wait briefly for the pipes to drain (the group
                // killed first, so nothing left in it holds them open).
                signal_group(pid, Signal::SIGKILL);
                self.settle_output(&mut drains, EXIT_OUTPUT_WAIT).await;
                let words = self.last_words();
                self.last_error = Some(format!(
                    "exited with {status} after {ran:.2}s, before start_seconds ({}s){}",
                    self.config.start_seconds,
                    words.map(|w| format!(": {w}")).unwrap_or_default()
                ));
                self.group_gone();
                self.failed_start(Some(status));
            }
            ProgramState::Running => {
                // A program's process group lives and dies with its leader: leftovers would
                // run twice once it restarts.
                signal_group(pid, Signal::SIGKILL);
                self.group_gone();
                self.settle_output(&mut drains, EXIT_OUTPUT_WAIT).await;
                let expected = status
                    .code()
                    .is_some_and(|c| self.config.exit_codes.contains(&c));
                self.transition(ProgramState::Exited, Some(status));
                let again = match self.config.autorestart {
                    Autorestart::Always => true,
                    Autorestart::Never => false,
                    Autorestart::Unexpected => !expected,
                };
                if again {
                    self.restarts += 1;
                    self.begin_start();
                }
            }
            ProgramState::Stopping => {
                self.publish();
                // `check_group` waits for them once the group is gone.
                self.exit_drains.append(&mut drains);
                self.check_group().await;
            }
            _ => {}
        }
        // Grandchildren may hold the pipes open: their output is still the program's.
        self.old_drains.retain(|d| !d.is_finished());
        drains.retain(|d| !d.is_finished());
        self.old_drains.append(&mut drains);
    }

    /// Waits, for at most `limit`, until `drains` have read their pipes to the end and what
    /// they read is in the log files; returns whether all of it got there. Finished drains
    /// are dropped from `drains`.
    async fn settle_output(&self, drains: &mut Vec<JoinHandle<()>>, limit: Duration) -> bool {
        let logs = &self.logs;
        let settled = tokio::time::timeout(limit, async {
            for d in drains.iter_mut() {
                if !d.is_finished() {
                    let _ = d.await;
                }
            }
            logs.stdout.flushed().await;
            logs.stderr.flushed().await;
        })
        .await
        .is_ok();
        drains.retain(|d| !d.is_finished());
        settled
    }

    /// The last line the program wrote to stderr (or stdout), for a failed start's message.
    fn last_words(&self) -> Option<String> {
        let tail = |s: Stream| self.logs.sink(s).tail(512);
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

    fn begin_stop(&mut self) {
        use ProgramState::*;
        match self.state {
            Starting | Running => {
                if !self.start_after_stop {
                    for w in self.start_waiters.drain(..) {
                        let _ = w.send(Err(Error::StoppedBeforeRunning(self.config.name.clone())));
                    }
                }
                self.transition(Stopping, None);
                if let Some(pgid) = self.group {
                    signal_group(pgid, self.config.stop_signal.0);
                    // A stopped (SIGSTOP) process must run to act on the signal.
                    signal_group(pgid, Signal::SIGCONT);
                }
                let kill_at = Instant::now() + self.config.stop_duration();
                self.kill_at = Some(kill_at);
                self.killed = false;
                self.group_poll = GROUP_POLL_FIRST;
                self.timer = Some((kill_at, Timer::Kill));
            }
            Backoff => {
                self.timer = None;
                self.transition(Stopped, None);
                self.after_stopped();
            }
            Stopping => {}
            Stopped | Exited | Fatal => self.after_stopped(),
        }
    }

    async fn on_timer(&mut self) {
        let Some((_, timer)) = self.timer.take() else {
            return;
        };
        match (timer, self.state) {
            (Timer::Started, ProgramState::Starting) => self.on_started(),
            (Timer::Retry, ProgramState::Backoff) => {
                self.restarts += 1;
                self.begin_start();
            }
            (Timer::Kill | Timer::GroupPoll, ProgramState::Stopping) => self.check_group().await,
            _ => {}
        }
    }

    /// While stopping: SIGKILL the group once `stop_timeout` is up, and finish the stop once
    /// the leader has been reaped and no process is left in its group (and its last output
    /// is in the files).
    async fn check_group(&mut self) {
        let now = Instant::now();
        if !self.killed && self.kill_at.is_some_and(|at| now >= at) {
            if let Some(pgid) = self.group {
                tracing::warn!(program = %self.config.name, "stop_timeout passed: SIGKILL to the process group");
                signal_group(pgid, Signal::SIGKILL);
            }
            self.killed = true;
        }
        if self.leader.is_some() {
            // The exit will come from the reaper; until then only the kill deadline matters.
            if !self.killed {
                self.timer = self.kill_at.map(|at| (at, Timer::Kill));
            }
            return;
        }
        if self.group.is_some_and(group_alive) {
            let next = now + self.group_poll;
            self.group_poll = (self.group_poll * 2).min(GROUP_POLL_MAX);
            let at = match self.kill_at {
                Some(k) if !self.killed => next.min(k),
                _ => next,
            };
            self.timer = Some((at, Timer::GroupPoll));
            return;
        }
        self.group_gone();
        self.kill_at = None;
        // This run's pipes only: an earlier run's may be held open by a process that left
        // the group, and would make every stop wait the whole time.
        let mut drains = std::mem::take(&mut self.exit_drains);
        self.settle_output(&mut drains, EXIT_OUTPUT_WAIT).await;
        self.old_drains.append(&mut drains);
        self.transition(ProgramState::Stopped, self.last_exit);
        self.after_stopped();
    }

    /// The current process group has been killed or found empty.
    fn group_gone(&mut self) {
        if let Some(pgid) = self.group.take() {
            if self.shared.spawn.kill_on_parent_death {
                crate::guardian::unwatch(pgid);
            }
        }
    }

    fn after_stopped(&mut self) {
        if !self.remove_after_stop {
            // A removal is answered once the output is written (see `run`).
            for w in self.stop_waiters.drain(..) {
                let _ = w.send(Ok(()));
            }
        }
        if self.remove_after_stop {
            for w in self.start_waiters.drain(..) {
                let _ = w.send(Err(Error::StoppedBeforeRunning(self.config.name.clone())));
            }
            self.done = true;
        } else if self.start_after_stop {
            self.start_after_stop = false;
            self.failures = 0;
            self.begin_start();
        } else {
            for w in self.start_waiters.drain(..) {
                let _ = w.send(Err(Error::StoppedBeforeRunning(self.config.name.clone())));
            }
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // The runtime is going away with a process still up: do not leave it behind.
        if let Some(pgid) = self.group {
            tracing::warn!(program = %self.name(), "supervisor dropped while running: SIGKILL to the process group");
            signal_group(pgid, Signal::SIGKILL);
            self.group_gone();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff_delay(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff_delay(0).as_secs(), 1);
        assert_eq!(backoff_delay(u32::MAX), MAX_BACKOFF);
    }
}
