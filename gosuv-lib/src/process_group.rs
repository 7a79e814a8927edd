//! One program run's processes: the only way gosuv signals, kills, waits for or looks at
//! them.
//!
//! A [`ProcessGroup`] holds the leader (which leads its own session and process group) by a
//! pidfd, so the leader's exit is seen whoever reaps it: a host whose `SIGCHLD` handler
//! reaps every child takes the exit status (then reported as unknown), never the exit. The
//! leader is reaped only once nothing of the program is left, so its number, which is also
//! its process group's and session's, cannot be given to another process while gosuv may
//! still signal the group by it.
//!
//! What belongs to the program depends on its ownership:
//! - [`Ownership::Cgroup`]: everything in its cgroup, wherever it went (`setsid`, double
//!   forks). Stopped means the cgroup is empty.
//! - [`Ownership::Group`] (no cgroup could be made): its process group, its session, their
//!   descendants found in `/proc` when gosuv looks (at a stop, and until the program is
//!   gone), and, when gosuv is the subreaper, every orphan reparented to gosuv whose
//!   environment names the program (`GOSUV_PROGRAM`). Each such process is then held by a
//!   pidfd of its own, so a reused pid is never signalled.
//!
//! A group that is dropped before it was finished (a panic, a runtime that goes away) kills
//! what it holds and leaves the leader to [`crate::reaper::reap_later`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::cgroup::Cgroup;
use crate::events::ExitStatus;
use crate::procfs::{ProcStat, Snapshot};
use crate::reaper;
use crate::spawn::{self, RUN_VAR};

/// How gosuv owns a program's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    /// By a cgroup of its own: every process the program starts, wherever it goes.
    Cgroup,
    /// By its process group and session (and, when gosuv is the subreaper, its orphans).
    Group,
}

impl Ownership {
    /// `cgroup` or `group`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ownership::Cgroup => "cgroup",
            Ownership::Group => "group",
        }
    }
}

impl std::fmt::Display for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A program run's processes as an observer sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// The program.
    pub program: String,
    /// The leader's pid, which is also its process group's and session's id.
    pub leader: u32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22): with
    /// the pid, it tells this process from a later one that got the same number.
    pub start_time: u64,
    /// The program's cgroup directory, when it is owned by one.
    pub cgroup: Option<PathBuf>,
    /// The signal that stops it.
    pub stop_signal: i32,
    /// How long it may take to stop before it is killed.
    pub stop_timeout: Duration,
    /// [`crate::ProgramConfig::fingerprint`] of the config it was started with: whether a
    /// later config is the same.
    pub fingerprint: u64,
    /// The program's restarts when this run began.
    pub restarts: u64,
    /// When this run began (kept from the first server for an adopted run).
    pub started_at: SystemTime,
}

/// What a run is recorded with besides its processes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunMeta {
    pub fingerprint: u64,
    pub restarts: u64,
    pub started_at: SystemTime,
}

/// A run gosuv did not start in this process but takes over: a program a previous server
/// (killed, crashed, or re-executed) left running, with its output pipes. See
/// [`crate::Supervisor::add_all_adopting`].
#[derive(Debug)]
pub struct Adoption {
    /// The program it is a run of.
    pub program: String,
    /// Its leader (its process group's and session's id).
    pub pid: u32,
    /// The leader's start time in clock ticks since boot (`/proc/<pid>/stat` field 22), as
    /// recorded when it started: a process that got the number since is not taken.
    pub start_time: u64,
    /// The read end of its stdout pipe.
    pub stdout: OwnedFd,
    /// The read end of its stderr pipe (`None` with `redirect_stderr`).
    pub stderr: Option<OwnedFd>,
    /// Its cgroup, when it is owned by one.
    pub cgroup: Option<PathBuf>,
    /// When it started.
    pub started_at: SystemTime,
    /// The program's restarts so far.
    pub restarts: u64,
}

/// Told when a program's processes start and when none of them is left: how the guardian,
/// the `gosuv` server's crash-recovery record and others follow the groups without looking
/// for pids themselves. Called on a runtime worker: both calls must return at once (hand the
/// work to a thread or a task), and must not call back into the supervisor.
pub trait GroupObserver: Send + Sync + 'static {
    /// A program run's leader exists.
    fn started(&self, group: &GroupInfo);
    /// Nothing of that run is left (or gosuv let go of it after killing it).
    fn ended(&self, group: &GroupInfo);
    /// The read ends of the run's output pipes, just after `started`, for an observer that
    /// keeps them open (the `gosuv` server's holder, so that a program outlives the server
    /// without dying of SIGPIPE). The descriptors are gosuv's: duplicate one to keep it.
    fn pipes(&self, _group: &GroupInfo, _pipes: &[RunPipe<'_>]) {}
}

/// One output pipe of a run (its read end), and where its output is logged.
#[derive(Debug)]
pub struct RunPipe<'a> {
    /// Which stream (stdout carries stderr too with `redirect_stderr`).
    pub stream: crate::logs::Stream,
    /// The read end.
    pub fd: std::os::fd::BorrowedFd<'a>,
    /// The log file, `None` with `log_disable`.
    pub log: Option<PathBuf>,
    /// Rotation: the size at which the file is rotated.
    pub max_bytes: u64,
    /// Rotation: how many old files are kept.
    pub backups: u32,
    /// Each line written to the log file starts with its time (`log_timestamps`).
    pub timestamps: bool,
}

/// What stats need of a run: who leads it and where its processes are.
#[derive(Debug)]
pub(crate) struct GroupView {
    pub leader: u32,
    pub cgroup: Option<Arc<Cgroup>>,
}

impl GroupView {
    pub(crate) fn ownership(&self) -> Ownership {
        if self.cgroup.is_some() {
            Ownership::Cgroup
        } else {
            Ownership::Group
        }
    }

    /// The live processes of the run, leader first: its cgroup's, read one by one, or its
    /// tree in `snap` (which must be younger than the run).
    pub(crate) fn members(&self, snap: Option<&Snapshot>) -> Vec<ProcStat> {
        let mut out: Vec<ProcStat> = match (&self.cgroup, snap) {
            (Some(cg), _) => cg
                .all_pids()
                .into_iter()
                .filter_map(ProcStat::read)
                .collect(),
            (None, Some(snap)) => snap
                .tree(Some(self.leader), &[])
                .into_iter()
                .copied()
                .collect(),
            (None, None) => Vec::new(),
        };
        out.retain(|p| !p.is_zombie());
        out.sort_by_key(|p| (p.pid != self.leader, p.pid));
        out
    }
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn pidfd_signal(fd: RawFd, sig: i32) {
    // SAFETY: pidfd_send_signal with no siginfo; an exited process just gives ESRCH.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd,
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
}

/// Whether the process behind a pidfd has ended (its pidfd is readable).
fn pidfd_ended(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one descriptor we own, without waiting.
    unsafe { libc::poll(&mut p, 1, 0) == 1 }
}

/// The leader's exit, read without reaping it (`WNOWAIT`): `None` while it runs.
fn peek_exit(fd: RawFd) -> Option<ExitStatus> {
    // SAFETY: waitid on a pidfd we own with a zeroed siginfo we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let rc = libc::waitid(
            libc::P_PIDFD,
            fd as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        if rc < 0 {
            // ECHILD: someone else reaped it and took its status with it.
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ECHILD) => Some(ExitStatus::Unknown),
                _ => None,
            };
        }
        if info.si_pid() == 0 {
            return None;
        }
        Some(match info.si_code {
            libc::CLD_EXITED => ExitStatus::Code(info.si_status()),
            _ => ExitStatus::Signal(info.si_status()),
        })
    }
}

/// A process outside the leader's group, held by a pidfd.
struct Member {
    pid: u32,
    pidfd: OwnedFd,
}

impl Member {
    /// Whether it ended; an ended one that is this process's child (an adopted orphan) is
    /// reaped, so it is no zombie for long.
    fn ended(&self) -> bool {
        if !pidfd_ended(self.pidfd.as_raw_fd()) {
            return false;
        }
        // SAFETY: waitid on a pidfd we own; ECHILD (not our child) is fine.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PIDFD,
                self.pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            );
        }
        true
    }
}

/// What a [`ProcessGroup`] is made of, its leader not watched yet.
struct Parts<'a> {
    program: &'a str,
    leader: u32,
    start_time: u64,
    cgroup: Option<Arc<Cgroup>>,
    stop_signal: i32,
    stop_timeout: Duration,
    meta: RunMeta,
    run: String,
    subreaper: bool,
    own_child: bool,
    observers: Arc<[Arc<dyn GroupObserver>]>,
}

/// A recorded leader held by a pidfd and checked, before its run is taken over (see
/// [`claim`]); registered with the reaper until dropped or adopted.
pub(crate) struct Claimed {
    pid: u32,
    pidfd: Option<OwnedFd>,
    own_child: bool,
    run: String,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        if self.pidfd.is_some() {
            reaper::leader_gone(self.pid);
        }
    }
}

/// Holds the recorded leader `pid` by a pidfd, checked against its recorded start time
/// after the open (so the pidfd names that very process, never one that got the number
/// since), and registers it with the reaper (a child leader's exit status stays for its
/// group). Blocking (it reads `/proc`): many are claimed on blocking threads at once.
///
/// # Errors
/// The leader is gone, has exited, or is another process now.
pub(crate) fn claim(pid: u32, start_time: u64, in_cgroup: bool) -> Result<Claimed, String> {
    // No reaping between the look and the registration.
    let spawning = reaper::spawning();
    let pidfd = pidfd_open(pid).map_err(|e| format!("process {pid} is gone: {e}"))?;
    let stat = ProcStat::read(pid).ok_or_else(|| format!("process {pid} is gone"))?;
    if stat.start_time != start_time || stat.is_zombie() {
        return Err(format!(
            "process {pid} is not the one that was recorded (it started at another time, or has exited)"
        ));
    }
    let own_child = stat.ppid == std::process::id();
    reaper::register_leader(pid);
    drop(spawning);
    // Its orphans (when this process is their subreaper) are known by the run's id; a
    // cgroup holds them all without it.
    let run = if in_cgroup {
        String::new()
    } else {
        crate::procfs::environ_value(pid, RUN_VAR).unwrap_or_default()
    };
    Ok(Claimed {
        pid,
        pidfd: Some(pidfd),
        own_child,
        run,
    })
}

/// One program run's processes. See the module documentation.
pub(crate) struct ProcessGroup {
    info: GroupInfo,
    /// The run's `GOSUV_RUN`: how its orphans adopted by this process are known.
    run: String,
    pidfd: Option<AsyncFd<OwnedFd>>,
    view: Arc<GroupView>,
    exit: Option<ExitStatus>,
    members: Vec<Member>,
    /// Sessions of members that left the leader's, given to the reaper while the run lasts.
    sessions: Vec<u32>,
    /// Whether orphans reparented to this process may be the program's.
    subreaper: bool,
    /// Whether the leader is this process's child (not so for a run adopted after a
    /// server died): only a child's exit status can be read.
    own_child: bool,
    /// When the exit of a leader that is not this process's child was seen (clock ticks
    /// since boot): from then on its number is the run's only while no other process has
    /// it (the kernel gives no process the number of a group or session that still exists).
    gone_at: Option<u64>,
    /// Killing has begun: every process found from now on is killed at once.
    killing: bool,
    observers: Arc<[Arc<dyn GroupObserver>]>,
    /// The observers and the reaper were told the run is over.
    released: bool,
    finished: bool,
}

/// What the child's spawn gives besides the group: the parent's ends of its pipes.
pub(crate) struct Pipes {
    /// `None` when stdout goes to `/dev/null`.
    pub stdout: Option<OwnedFd>,
    /// `None` when stderr goes where stdout goes, or to `/dev/null`.
    pub stderr: Option<OwnedFd>,
    /// The write end of its stdin pipe, when it has one.
    pub stdin: Option<OwnedFd>,
}

pub(crate) use crate::spawn::SpawnFailure;

impl ProcessGroup {
    /// What observers are told of this run.
    pub(crate) fn info(&self) -> &GroupInfo {
        &self.info
    }

    /// Spawns `cmd` as a new run of `program`, in `cgroup` when given.
    ///
    /// # Errors
    /// The spawn failed: a message fit for `last_error`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn spawn(
        program: &str,
        run: &str,
        cmd: &spawn::Command,
        streams: spawn::Streams,
        cgroup: Option<Arc<Cgroup>>,
        stop_signal: i32,
        stop_timeout: Duration,
        subreaper: bool,
        observers: Arc<[Arc<dyn GroupObserver>]>,
        meta: RunMeta,
    ) -> Result<(ProcessGroup, Pipes), SpawnFailure> {
        let dir = cgroup
            .as_ref()
            .map(|c| c.open_dir())
            .transpose()
            .map_err(|e| SpawnFailure {
                message: format!("cannot open the program's cgroup: {e}"),
                in_cgroup: true,
            })?;
        let child = {
            let _spawning = reaper::spawning();
            let child = spawn::spawn(cmd, streams, dir.as_ref())?;
            reaper::register_leader(child.pid);
            child
        };
        // The leader is unreaped: its /proc entry is surely its own.
        let start_time = ProcStat::read(child.pid).map_or(0, |s| s.start_time);
        let mut group = ProcessGroup::from_parts(Parts {
            program,
            leader: child.pid,
            start_time,
            cgroup,
            stop_signal,
            stop_timeout,
            meta,
            run: run.to_string(),
            subreaper,
            own_child: true,
            observers,
        });
        group.tell_started();
        // SAFETY: the pidfd moves into the AsyncFd and stays open, on the same process, until
        // it is taken out again.
        match unsafe { AsyncFd::register_with_interest(child.pidfd, Interest::READABLE) } {
            Ok(fd) => group.pidfd = Some(fd),
            Err(e) => {
                // Dropping the group kills it and leaves the leader to be reaped later.
                return Err(SpawnFailure {
                    message: format!("cannot watch the new process (is the tokio runtime built with enable_io?): {e}"),
                    in_cgroup: false,
                });
            }
        }
        Ok((
            group,
            Pipes {
                stdout: child.stdout,
                stderr: child.stderr,
                stdin: child.stdin,
            },
        ))
    }

    /// Takes over a run a previous server left: the leader is held by a pidfd opened now
    /// and checked against the recorded start time after the open, so a process that got
    /// the number since is never taken. A leader that is not this process's child (its
    /// server died) has an unknown exit status.
    ///
    /// # Errors
    /// The leader is gone or is another process now; the pidfd cannot be watched.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn adopt(
        program: &str,
        pid: u32,
        start_time: u64,
        cgroup: Option<Arc<Cgroup>>,
        stop_signal: i32,
        stop_timeout: Duration,
        subreaper: bool,
        observers: Arc<[Arc<dyn GroupObserver>]>,
        meta: RunMeta,
        claimed: Result<Claimed, String>,
    ) -> Result<ProcessGroup, String> {
        let mut claimed = claimed?;
        let pidfd = claimed
            .pidfd
            .take()
            .ok_or_else(|| format!("process {pid} was claimed twice (a bug)"))?;
        let own_child = claimed.own_child;
        let run = std::mem::take(&mut claimed.run);
        let mut group = ProcessGroup::from_parts(Parts {
            program,
            leader: pid,
            start_time,
            cgroup,
            stop_signal,
            stop_timeout,
            meta,
            run,
            subreaper,
            own_child,
            observers,
        });
        // SAFETY: the pidfd moves into the AsyncFd and stays open, on the same process, until
        // it is taken out again.
        match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
            Ok(fd) => group.pidfd = Some(fd),
            Err(e) => {
                // Not ours yet: nothing is killed, nobody was told.
                group.finished = true;
                reaper::leader_gone(pid);
                return Err(format!("cannot watch process {pid}: {e}"));
            }
        }
        group.tell_started();
        Ok(group)
    }

    /// A run's group, its leader not watched yet.
    fn from_parts(p: Parts<'_>) -> ProcessGroup {
        let info = GroupInfo {
            program: p.program.to_string(),
            leader: p.leader,
            start_time: p.start_time,
            cgroup: p.cgroup.as_ref().map(|c| c.path().to_path_buf()),
            stop_signal: p.stop_signal,
            stop_timeout: p.stop_timeout,
            fingerprint: p.meta.fingerprint,
            restarts: p.meta.restarts,
            started_at: p.meta.started_at,
        };
        let view = Arc::new(GroupView {
            leader: p.leader,
            cgroup: p.cgroup,
        });
        ProcessGroup {
            info,
            run: p.run,
            pidfd: None,
            view,
            exit: None,
            members: Vec::new(),
            sessions: Vec::new(),
            subreaper: p.subreaper,
            own_child: p.own_child,
            gone_at: None,
            killing: false,
            observers: p.observers,
            released: false,
            finished: false,
        }
    }

    /// Tells the observers the run exists. One that panics is reported and does not stop
    /// the others.
    fn tell_started(&self) {
        for o in self.observers.iter() {
            let told =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.started(&self.info)));
            if told.is_err() {
                tracing::error!(program = %self.info.program, "an observer of program runs panicked");
            }
        }
    }

    /// The leader's pid.
    pub(crate) fn leader(&self) -> u32 {
        self.info.leader
    }

    /// What stats need of the run.
    pub(crate) fn view(&self) -> &Arc<GroupView> {
        &self.view
    }

    fn raw_pidfd(&self) -> Option<RawFd> {
        self.pidfd.as_ref().map(|a| a.get_ref().as_raw_fd())
    }

    /// The leader's exit if it has exited, without waiting.
    pub(crate) fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.raw_pidfd().and_then(|fd| self.peek(fd));
            if self.exit.is_some() && !self.own_child {
                self.gone_at = Some(crate::procfs::boot_ticks_now());
            }
        }
        self.exit
    }

    /// The leader's exit: read without reaping from a child, unknown for another's process
    /// once its pidfd says it ended.
    fn peek(&self, fd: RawFd) -> Option<ExitStatus> {
        if self.own_child {
            peek_exit(fd)
        } else {
            pidfd_ended(fd).then_some(ExitStatus::Unknown)
        }
    }

    /// Waits for the leader's exit (at once if it has exited). Cancel-safe.
    pub(crate) async fn exited(&mut self) -> ExitStatus {
        loop {
            if let Some(e) = self.try_exit() {
                return e;
            }
            let Some(fd) = self.pidfd.as_ref() else {
                return ExitStatus::Unknown;
            };
            match fd.readable().await {
                Ok(mut guard) => {
                    let raw = fd.get_ref().as_raw_fd();
                    let exited = if self.own_child {
                        peek_exit(raw)
                    } else {
                        pidfd_ended(raw).then_some(ExitStatus::Unknown)
                    };
                    if exited.is_none() {
                        guard.clear_ready();
                    }
                }
                Err(e) => {
                    tracing::error!(program = %self.info.program, "cannot watch the leader: {e}");
                    self.exit = Some(ExitStatus::Unknown);
                }
            }
        }
    }

    /// Sends `sig` to every process of the run gosuv knows of (in group ownership, looks in
    /// `/proc` first for processes that left the group).
    pub(crate) async fn signal(&mut self, sig: i32) {
        if self.view.cgroup.is_none() {
            self.discover().await;
        }
        self.send(sig);
    }

    /// Whether the leader's number is still its own: it is while the leader runs or gosuv
    /// holds it unreaped. A leader someone else reaped may have left its number free.
    fn number_is_ours(&mut self) -> bool {
        self.try_exit() != Some(ExitStatus::Unknown)
    }

    /// Sends `sig` without looking in `/proc` again.
    fn send(&mut self, sig: i32) {
        if let Some(cg) = &self.view.cgroup {
            cg.signal(sig);
            return;
        }
        if self.number_is_ours() {
            // SAFETY: kill(2) on a negative pid signals a process group.
            unsafe { libc::kill(-(self.info.leader as i32), sig) };
        }
        for m in &self.members {
            pidfd_signal(m.pidfd.as_raw_fd(), sig);
        }
    }

    /// Kills every process of the run, and from now on every one found later: `cgroup.kill`,
    /// or SIGKILL to the group and every process found with it.
    pub(crate) async fn kill(&mut self) {
        self.kill_now();
        if self.view.cgroup.is_none() {
            // Whatever `/proc` shows besides the group is killed as it is found.
            self.discover().await;
        }
    }

    /// Kills what can be killed without looking in `/proc`: the cgroup, or the group and the
    /// processes already known; from now on every process found is killed too.
    pub(crate) fn kill_now(&mut self) {
        self.killing = true;
        match &self.view.cgroup {
            Some(cg) => cg.kill(),
            None => self.send(libc::SIGKILL),
        }
    }

    /// Group ownership: finds the run's processes outside its process group in a fresh pass
    /// over `/proc` (one shared with whoever else asks at the time), and holds each new one
    /// by a pidfd; once killing has begun, kills each at once. Returns whether the pass could
    /// be made.
    async fn discover(&mut self) -> bool {
        // A leader another process reaped (an adopted run's, after its server died) leaves
        // its number to its group and session while one of them lives: what started before
        // its exit was seen is the run's.
        let (leader, window) = if self.number_is_ours() {
            (Some(self.info.leader), None)
        } else if let Some(gone) = self.gone_at.filter(|_| !self.own_child) {
            (Some(self.info.leader), Some((self.info.start_time, gone)))
        } else {
            (None, None)
        };
        let number = self.info.leader;
        let known: Vec<u32> = self.members.iter().map(|m| m.pid).collect();
        let run = self.run.clone();
        let subreaper = self.subreaper;
        // On the pass thread, with a pass made after this call: the few files read besides
        // (environments, a pidfd each) go with it, off the runtime.
        let found = crate::procfs::with_snapshot(Instant::now(), move |snap| {
            let snap = snap?;
            let me = std::process::id();
            let mut roots = known.clone();
            if subreaper {
                // Orphans of this very run, adopted by this process as their subreaper.
                roots.extend(
                    snap.children(me)
                        .filter(|p| {
                            !p.is_zombie()
                                && !reaper::is_leader(p.pid)
                                && crate::procfs::environ_has(p.pid, RUN_VAR, &run)
                        })
                        .map(|p| p.pid),
                );
            }
            // The number given to another process since (its group and session gone with
            // the run's last process): none of its processes is the run's.
            let leader = match window {
                Some((start, _)) if snap.get(number).is_some_and(|p| p.start_time != start) => None,
                _ => leader,
            };
            // Processes taken so far (a child of one is the run's whenever it started).
            let mut taken: std::collections::HashSet<u32> = known.iter().copied().collect();
            let mut new = Vec::new();
            for p in snap.tree(leader, &roots) {
                if Some(p.pid) == leader || p.is_zombie() || known.contains(&p.pid) {
                    continue;
                }
                if let Some((from, to)) = window {
                    // Found by the number: the run's if it started while the run did (a
                    // later one may be a stranger's whose number got reused), or if its
                    // parent is the run's.
                    if (p.pgrp == number || p.session == number)
                        && (p.start_time < from || (p.start_time > to && !taken.contains(&p.ppid)))
                    {
                        continue;
                    }
                }
                taken.insert(p.pid);
                let Ok(fd) = pidfd_open(p.pid) else { continue };
                // The pidfd holds the process now; make sure it is the one the pass saw.
                if ProcStat::read(p.pid).is_some_and(|s| s.start_time == p.start_time) {
                    new.push((
                        Member {
                            pid: p.pid,
                            pidfd: fd,
                        },
                        p.session,
                    ));
                }
            }
            Some(new)
        })
        .await
        .flatten();
        let Some(found) = found else {
            return false;
        };
        for (m, session) in found {
            if self.killing {
                pidfd_signal(m.pidfd.as_raw_fd(), libc::SIGKILL);
            }
            // Its session's zombies are this run's too (when they come to this process).
            if session != self.info.leader && !self.sessions.contains(&session) {
                reaper::add_session(session);
                self.sessions.push(session);
            }
            self.members.push(m);
        }
        true
    }

    /// Whether nothing of the run is left: the leader has exited, and the cgroup is empty or
    /// no process of the group, its session, their descendants or its known members is
    /// alive. Group ownership makes a pass over `/proc`. Once killing has begun, what is
    /// left is killed again (a process forked meanwhile escapes no kill).
    pub(crate) async fn is_empty(&mut self) -> bool {
        if self.try_exit().is_none() {
            return false;
        }
        if let Some(cg) = &self.view.cgroup {
            let populated = cg.populated();
            if populated && self.killing {
                cg.kill();
            }
            return !populated;
        }
        self.members.retain(|m| !m.ended());
        if self.members.is_empty() {
            // Every live process of the run that the pass finds becomes a member.
            if !self.discover().await {
                return false;
            }
            self.members.retain(|m| !m.ended());
        }
        if !self.members.is_empty() && self.killing {
            self.send(libc::SIGKILL);
        }
        self.members.is_empty()
    }

    /// Waits until [`ProcessGroup::is_empty`], looking again at growing intervals (a pass over
    /// `/proc` for group ownership: from 10 ms). Cancel-safe.
    pub(crate) async fn emptied(&mut self) {
        let mut pause = if self.view.cgroup.is_some() {
            Duration::from_millis(1)
        } else {
            Duration::from_millis(10)
        };
        let max = if self.view.cgroup.is_some() {
            Duration::from_millis(50)
        } else {
            Duration::from_millis(200)
        };
        loop {
            if self.try_exit().is_none() {
                self.exited().await;
                continue;
            }
            if self.is_empty().await {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(max);
        }
    }

    /// Whether the kernel killed a process of the run for lack of memory since `before`
    /// kills were counted.
    pub(crate) fn oom_kills(&self) -> u64 {
        self.view.cgroup.as_ref().map_or(0, |c| c.oom_kills())
    }

    /// Reaps the leader (once nothing of the run is left), removes the run's cgroup, and
    /// tells the observers.
    pub(crate) fn finish(mut self) {
        self.finished = true;
        if let Some(cg) = &self.view.cgroup {
            cg.remove();
        }
        // Told while the leader is still unreaped, so its number cannot start another run
        // before the observers forget this one.
        self.release();
        if let Some(fd) = self.pidfd.take() {
            let fd = fd.into_inner();
            if self.exit.is_some() {
                reaper::reap_if_ended(&fd);
            } else {
                reaper::reap_later(fd);
            }
        }
    }

    /// Lets go of the run without a word to the observers and without killing it: it goes
    /// on, for another process to take over. Its leader stays registered with the reaper
    /// (this process is about to be replaced by one that adopts it).
    pub(crate) fn let_go(mut self) {
        self.finished = true;
        self.released = true;
        self.pidfd.take();
    }

    /// Tells the observers and the reaper that the run is over (once). An observer that
    /// panics is reported and does not stop the others, nor the program's task.
    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        for s in self.sessions.drain(..) {
            reaper::remove_session(s);
        }
        for o in self.observers.iter() {
            let told =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.ended(&self.info)));
            if told.is_err() {
                tracing::error!(program = %self.info.program, "an observer of program runs panicked");
            }
        }
        reaper::leader_gone(self.info.leader);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        tracing::warn!(program = %self.info.program, "a program's processes were let go of: killing them");
        self.kill_now();
        if let Some(fd) = self.pidfd.take() {
            reaper::reap_later(fd.into_inner());
        }
        self.release();
    }
}

/// Kills what is left of a run that could not be taken over (its leader ended, or its
/// config no longer fits): everything in its cgroup, or every process of its group and
/// session that started no earlier than its leader (the kernel gives no process the number
/// of a group or session that still exists, so those are the run's), each held by a pidfd
/// first. A program must never run twice.
pub(crate) fn abandon(adoption: &Adoption) {
    if let Some(path) = &adoption.cgroup {
        Cgroup::existing(path.clone()).kill();
        return;
    }
    let n = adoption.pid;
    // The number taken by a process that is not the recorded leader: no group or session
    // of the run existed when it got it, so none of theirs is the run's.
    if ProcStat::read(n).is_some_and(|s| s.start_time != adoption.start_time) {
        return;
    }
    let Ok(procs) = crate::procfs::scan() else {
        return;
    };
    for p in procs {
        if (p.pgrp != n && p.session != n) || p.start_time < adoption.start_time || p.is_zombie() {
            continue;
        }
        let Ok(fd) = pidfd_open(p.pid) else { continue };
        if ProcStat::read(p.pid).is_some_and(|s| s.start_time == p.start_time) {
            pidfd_signal(fd.as_raw_fd(), libc::SIGKILL);
        }
    }
}
