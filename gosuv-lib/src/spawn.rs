//! Starting a program's process: its own session and process group, environment, working
//! directory, user, umask, stdin from /dev/null, output into pipes, and no inherited
//! descriptor of gosuv's. Also the one small wrapper that signals a whole group.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

use crate::config::ProgramConfig;
use crate::reaper::{reaper, ExitSender};

/// A spawned program's leader and the read ends of its output pipes.
pub(crate) struct Spawned {
    pub pid: u32,
    pub stdout: OwnedFd,
    /// `None` when stderr goes to the stdout pipe.
    pub stderr: Option<OwnedFd>,
}

/// Options of the supervisor that shape every spawn.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpawnOptions {
    /// Have the guardian kill each program's group if this process dies.
    pub kill_on_parent_death: bool,
    /// The RLIMIT_NOFILE soft limit to give children (gosuv raises its own).
    pub child_nofile: Option<libc::rlimit>,
}

struct UserSwitch {
    uid: Uid,
    gid: Gid,
    groups: Vec<Gid>,
}

/// Resolves `user` into what the child needs, or says why it cannot run as that user.
fn user_switch(name: &str, cmd: &mut std::process::Command) -> Result<Option<UserSwitch>, String> {
    let user = User::from_name(name)
        .map_err(|e| format!("cannot look up user '{name}': {e}"))?
        .ok_or_else(|| format!("user '{name}' does not exist on this machine"))?;
    cmd.env("HOME", &user.dir)
        .env("USER", &user.name)
        .env("LOGNAME", &user.name);
    let me = Uid::effective();
    if user.uid == me {
        return Ok(None);
    }
    if !me.is_root() {
        return Err(format!(
            "cannot run as user '{name}': gosuv runs as uid {me}, and only root can switch users \
             (run gosuv as root or remove `user`)"
        ));
    }
    let cname = CString::new(name).map_err(|_| format!("user name {name:?} contains NUL"))?;
    let groups = nix::unistd::getgrouplist(&cname, user.gid)
        .map_err(|e| format!("cannot read the groups of user '{name}': {e}"))?;
    Ok(Some(UserSwitch {
        uid: user.uid,
        gid: user.gid,
        groups,
    }))
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC)?)
}

/// Spawns the program described by `config`, registering it with the reaper so its exit
/// reaches `exits`.
///
/// # Errors
/// A message fit for `last_error`: no such command, bad directory, unknown user, ...
pub(crate) fn spawn(
    config: &ProgramConfig,
    base_dir: &Path,
    opts: &SpawnOptions,
    exits: ExitSender,
) -> Result<Spawned, String> {
    let argv = config.command.argv();
    let Some((program, args)) = argv.split_first() else {
        return Err("the command is empty".into());
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    for (k, v) in &config.environ {
        cmd.env(k, v);
    }
    let dir = config.directory.as_deref().unwrap_or(base_dir);
    cmd.current_dir(dir);
    if !dir.is_dir() {
        return Err(format!(
            "working directory {} does not exist: create it or fix `directory`",
            dir.display()
        ));
    }
    let switch = match &config.user {
        Some(name) => user_switch(name, &mut cmd)?,
        None => None,
    };
    let io_err = |what: &str, e: std::io::Error| format!("cannot {what}: {e}");
    let (out_r, out_w) = pipe().map_err(|e| io_err("create the stdout pipe", e))?;
    let err_pipe = if config.redirect_stderr {
        None
    } else {
        Some(pipe().map_err(|e| io_err("create the stderr pipe", e))?)
    };
    let err_w = match &err_pipe {
        Some((_, w)) => w.try_clone(),
        None => out_w.try_clone(),
    }
    .map_err(|e| io_err("duplicate the stderr pipe", e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w));

    let umask = config.umask;
    let nofile = opts.child_nofile;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (setsid, umask, setgroups, setgid, setuid, setrlimit,
    // sigaction, sigprocmask, close_range/fcntl) on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            reset_signals();
            if let Some(rl) = nofile {
                libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
            }
            if let Some(m) = umask {
                libc::umask(m as libc::mode_t);
            }
            if let Some(sw) = &switch {
                nix::unistd::setgroups(&sw.groups)?;
                nix::unistd::setgid(sw.gid)?;
                nix::unistd::setuid(sw.uid)?;
            }
            mark_fds_cloexec();
            Ok(())
        });
    }
    let (pid, ()) = reaper()
        .spawn_registered(exits, || {
            let child = cmd.spawn()?;
            Ok((child.id(), ()))
        })
        .map_err(|e| spawn_error(program, dir, e))?;
    // The parent's copies of the write ends close with `cmd` here, so EOF comes when the
    // child and everything it started have closed theirs.
    drop(cmd);
    Ok(Spawned {
        pid,
        stdout: out_r,
        stderr: err_pipe.map(|(r, _)| r),
    })
}

fn spawn_error(program: &str, dir: &Path, e: std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!(
                "cannot run '{program}': no such file or command (searched PATH from {})",
                dir.display()
            )
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("cannot run '{program}': permission denied (is it executable?)")
        }
        _ => format!("cannot run '{program}': {e}"),
    }
}

/// Restores default dispositions and an empty mask: gosuv's host may ignore or block signals
/// (Python ignores SIGPIPE) and a child must not inherit that.
fn reset_signals() {
    // SAFETY: sigaction/sigprocmask with stack-allocated, zero-initialised structs.
    unsafe {
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
}

/// Marks every descriptor above stderr close-on-exec, so that nothing a host program (or
/// gosuv) opened without `O_CLOEXEC` leaks into the child.
fn mark_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if rc == 0 {
        return;
    }
    // Older kernels: walk the descriptor table up to the soft limit.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a stack struct.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } == 0 {
        rl.rlim_cur.min(1 << 16) as i32
    } else {
        1024
    };
    for fd in 3..max {
        // SAFETY: fcntl on a descriptor that may not exist just fails with EBADF.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// Sends `sig` to the process group `pgid`. Returns `false` when no process is left in it.
pub(crate) fn signal_group(pgid: u32, sig: Signal) -> bool {
    match killpg(Pid::from_raw(pgid as i32), sig) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(e) => {
            tracing::warn!(pgid, "cannot signal process group: {e}");
            true
        }
    }
}

/// Whether any live process is left in the group `pgid`. Zombies do not count: they have
/// ended, and whoever adopted them (init, when gosuv is not a subreaper) may be slow to reap.
pub(crate) fn group_alive(pgid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let rc = unsafe { libc::kill(-(pgid as i32), 0) };
    if rc != 0 && Errno::last() == Errno::ESRCH {
        return false;
    }
    crate::stats::scan()
        .iter()
        .any(|p| p.pgrp == pgid && !p.zombie)
}

/// Raises this process's RLIMIT_NOFILE soft limit to at least `want` (or to the hard limit
/// when `want` is `None`), and returns the limit children should get back.
///
/// # Errors
/// `want` is above the hard limit (EPERM), or the limits cannot be read or set.
pub(crate) fn raise_nofile(want: Option<u64>) -> std::io::Result<Option<libc::rlimit>> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The limit the process had before any supervisor raised it: what children get.
        static ORIGINAL: std::sync::OnceLock<libc::rlimit> = std::sync::OnceLock::new();
        let original = *ORIGINAL.get_or_init(|| rl);
        if want.is_some_and(|w| w > rl.rlim_max) {
            return Err(std::io::Error::from_raw_os_error(libc::EPERM));
        }
        let target = want.map_or(rl.rlim_max, |w| w.max(rl.rlim_cur));
        if target > rl.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok((original.rlim_cur < target).then_some(original))
    }
}

/// Marks `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn a_group_of_zombies_is_gone_but_a_live_group_is_not() {
        let mut live = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn");
        assert!(group_alive(live.id()));
        let mut dead = std::process::Command::new("true")
            .process_group(0)
            .spawn()
            .expect("spawn");
        let pid = dead.id();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        // Not waited for yet: a zombie, still in its group as far as kill(2) is concerned.
        while crate::stats::scan()
            .iter()
            .all(|p| p.pid != pid || !p.zombie)
        {
            assert!(std::time::Instant::now() < deadline, "no zombie");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // SAFETY: kill with signal 0 only checks for existence.
        assert_eq!(unsafe { libc::kill(-(pid as i32), 0) }, 0);
        assert!(!group_alive(pid));
        dead.wait().expect("reap");
        let _ = live.kill();
        live.wait().expect("reap");
        assert!(!group_alive(live.id()));
    }
}
