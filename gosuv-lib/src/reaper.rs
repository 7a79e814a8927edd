//! The process-wide child reaper: the one place that calls `waitpid`.
//!
//! Every program a supervisor spawns is registered here while a shared lock is held *across
//! the fork*, and the reaper takes that lock exclusively before it collects anything, so a
//! child that exits at once cannot be collected before anyone waits for it. Spawns on
//! different threads share the lock and fork in parallel. A thread woken by SIGCHLD collects
//! exits and hands each to the program task that owns it.
//!
//! With [`enable_subreaper`], gosuv is also a child subreaper: orphans of a daemonising
//! program are reparented to this process, and the reaper collects them too. It never takes a
//! child it did not start and that is no supervised program's orphan: a zombie is looked at
//! with `WNOWAIT` first, and one that sits in gosuv's own session (forked by the host program,
//! by `tokio::process` or `std::process`, say; every supervised program runs in a session of
//! its own) is left for whoever waits for it.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::sync::mpsc::UnboundedSender;

use crate::events::ExitStatus;

/// Where an exit is delivered: the owning program task's channel.
pub(crate) type ExitSender = UnboundedSender<(u32, ExitStatus)>;

struct Registry {
    waiters: HashMap<i32, ExitSender>,
    subreaper: bool,
    /// Set when a host child's zombie hides the others from a `WNOWAIT` peek: the reaper
    /// then looks again shortly, since no new SIGCHLD may come.
    recheck: bool,
}

pub(crate) struct Reaper {
    /// Held shared by spawns across their fork, exclusively by the reaper while it reaps.
    spawning: RwLock<()>,
    registry: Mutex<Registry>,
    own_sid: Option<Pid>,
}

static REAPER: OnceLock<Reaper> = OnceLock::new();

/// The reaper, started on first use.
pub(crate) fn reaper() -> &'static Reaper {
    REAPER.get_or_init(|| {
        let reaper = Reaper {
            spawning: RwLock::new(()),
            registry: Mutex::new(Registry {
                waiters: HashMap::new(),
                subreaper: false,
                recheck: false,
            }),
            own_sid: nix::unistd::getsid(None).ok(),
        };
        start_thread();
        reaper
    })
}

/// Makes this process a child subreaper, so that the orphans of supervised programs are
/// reparented here and reaped instead of becoming init's.
///
/// # Errors
/// The `prctl` call failed.
pub fn enable_subreaper() -> std::io::Result<()> {
    let r = reaper();
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    r.lock().subreaper = true;
    Ok(())
}

fn start_thread() {
    let (mut rx, tx) = match UnixStream::pair() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot create the SIGCHLD pipe: {e}; exits will not be seen");
            return;
        }
    };
    if let Err(e) = signal_hook::low_level::pipe::register(libc::SIGCHLD, tx) {
        tracing::error!("cannot handle SIGCHLD: {e}; exits will not be seen");
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("gosuv-reaper".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                let r = REAPER.get().map(Reaper::reap_all);
                let timeout = r.unwrap_or(false).then(|| Duration::from_millis(100));
                let _ = rx.set_read_timeout(timeout);
                match rx.read(&mut buf) {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) => {}
                    Err(e) => {
                        tracing::error!("SIGCHLD pipe failed: {e}");
                        return;
                    }
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the reaper thread: {e}");
    }
}

fn to_exit(status: WaitStatus) -> Option<(i32, ExitStatus)> {
    match status {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), ExitStatus::Code(code))),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), ExitStatus::Signal(sig as i32))),
        _ => None,
    }
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `fork` (which spawns a child and returns its pid) and registers the pid so that
    /// its exit reaches `exits`, with no window in which the reaper could collect it first.
    pub(crate) fn spawn_registered<T>(
        &self,
        exits: ExitSender,
        fork: impl FnOnce() -> std::io::Result<(u32, T)>,
    ) -> std::io::Result<(u32, T)> {
        let _spawning = self.spawning.read().unwrap_or_else(|p| p.into_inner());
        let (pid, extra) = fork()?;
        self.lock().waiters.insert(pid as i32, exits);
        Ok((pid, extra))
    }

    /// Collects every exit that is ready. Returns whether it should look again soon.
    fn reap_all(&self) -> bool {
        let _no_spawn = self.spawning.write().unwrap_or_else(|p| p.into_inner());
        let mut reg = self.lock();
        reg.recheck = false;
        if reg.subreaper {
            self.reap_peeking(&mut reg);
        }
        if !reg.subreaper || reg.recheck {
            Self::reap_registered(&mut reg);
        }
        reg.recheck
    }

    /// `waitpid` on each registered pid: never touches a child it does not know.
    fn reap_registered(reg: &mut Registry) {
        let pids: Vec<i32> = reg.waiters.keys().copied().collect();
        for pid in pids {
            match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => {
                    if let Some((pid, exit)) = to_exit(status) {
                        deliver(reg, pid, exit);
                    }
                }
                Err(Errno::ECHILD) => {
                    // Someone else reaped it: the exit status is gone.
                    deliver(reg, pid, ExitStatus::Code(-1));
                }
                Err(_) => {}
            }
        }
    }

    /// Peeks at each zombie child and reaps it when it is ours or an orphan of ours.
    fn reap_peeking(&self, reg: &mut Registry) {
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let peeked = match waitid(Id::All, flags) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => status,
            };
            let Some(pid) = peeked.pid() else { return };
            let ours = reg.waiters.contains_key(&pid.as_raw());
            if !ours && self.in_own_session(pid) {
                // A child of the host program: leave it to its owner.
                reg.recheck = true;
                return;
            }
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(status) => {
                    if let Some((pid, exit)) = to_exit(status) {
                        if ours {
                            deliver(reg, pid, exit);
                        } else {
                            tracing::debug!(pid, "reaped an orphan of a supervised program");
                        }
                    }
                }
                Err(_) => return,
            }
        }
    }

    fn in_own_session(&self, pid: Pid) -> bool {
        // As PID 1 (a container's init) every process that ends up here is ours to reap, and
        // sessions from outside the namespace all read as 0.
        if std::process::id() == 1 {
            return false;
        }
        match (self.own_sid, nix::unistd::getsid(Some(pid))) {
            (Some(own), Ok(sid)) => own == sid,
            // A zombie's session can still be read; when it cannot, be safe and leave it.
            _ => true,
        }
    }
}

fn deliver(reg: &mut Registry, pid: i32, exit: ExitStatus) {
    if let Some(tx) = reg.waiters.remove(&pid) {
        let _ = tx.send((pid as u32, exit));
    }
}
