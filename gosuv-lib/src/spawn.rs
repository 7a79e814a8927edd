//! Starting a program's process: its own session and process group, its cgroup, environment,
//! working directory, user, umask, stdin from /dev/null (or the host's, or a pipe), output
//! into pipes (or /dev/null), no inherited descriptor of gosuv's, and a pidfd for it from the
//! moment it exists.
//!
//! Everything the child needs is prepared before the clone, in [`Command::prepare`]: argv,
//! the environment, the paths to try for the program, the user's groups. The child is made
//! with `CLONE_PIDFD` (module `clone`), so the pidfd is there before anyone, even a host
//! reaping every child, could take the child's exit; it shares gosuv's memory until
//! `execve`, so no page table is copied however big the host. A program owned by a cgroup is
//! born in it (`CLONE_INTO_CGROUP`, Linux 5.7); only where that is not available does the
//! child move itself in, which takes the kernel's cgroup-wide lock and can wait for an RCU
//! grace period. Between the clone and `execve` the child only makes system calls, one small
//! step each ([`child_main`]): no allocation, no lock, no write to memory but its own stack,
//! nothing a signal could break. A step that fails writes which step and its `errno` to a
//! close-on-exec pipe; the parent reads that pipe to its end, which comes at `execve`, and
//! so knows whether the program runs.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use nix::fcntl::OFlag;

use crate::config::{OutputMode, ProgramConfig, StdinMode};

mod clone;
mod env_file;
mod low_fds;
pub(crate) use clone::end_watchdog;
pub(crate) use env_file::read as read_env_file;
mod shell;

/// The environment variable every program gets with its own name, as supervisord's
/// `SUPERVISOR_PROCESS_NAME`. gosuv also reads it (from `/proc/<pid>/environ`) to know a
/// program's orphans when it is their subreaper.
pub const PROGRAM_VAR: &str = "GOSUV_PROGRAM";

/// The environment variable that tells one run of a program from another (and from a
/// program of the same name under another supervisor): gosuv reads it to know which run an
/// orphan it adopted belongs to.
pub const RUN_VAR: &str = "GOSUV_RUN";

/// A new run id, unique in this process and, with its pid, on this machine.
pub(crate) fn new_run_id() -> String {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options of the supervisor that shape every spawn.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpawnOptions {
    /// The RLIMIT_NOFILE soft limit to give children (gosuv raises its own).
    pub child_nofile: Option<libc::rlimit>,
}

/// Who a program runs as, from the user database.
#[derive(Clone, Debug)]
pub(crate) struct UserInfo {
    name: String,
    pub(crate) uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    home: PathBuf,
    /// Whether the user is this process's own: nothing to switch.
    same: bool,
}

/// Looks `name` up in the user database. Blocking: NSS may ask LDAP or another network
/// service, so callers run it on a blocking thread.
///
/// # Errors
/// A message fit for `last_error`: no such user, or gosuv cannot switch to it.
pub(crate) fn lookup_user(name: &str) -> Result<UserInfo, String> {
    let user = nix::unistd::User::from_name(name)
        .map_err(|e| format!("cannot look up user '{name}': {e}"))?
        .ok_or_else(|| format!("user '{name}' does not exist on this machine"))?;
    let me = nix::unistd::Uid::effective();
    let same = user.uid == me;
    if !same && !me.is_root() {
        return Err(format!(
            "cannot run as user '{name}': gosuv runs as uid {me}, and only root can switch users \
             (run gosuv as root or remove `user`)"
        ));
    }
    let groups = if same {
        Vec::new()
    } else {
        let cname = CString::new(name).map_err(|_| format!("user name {name:?} contains NUL"))?;
        nix::unistd::getgrouplist(&cname, user.gid)
            .map_err(|e| format!("cannot read the groups of user '{name}': {e}"))?
            .into_iter()
            .map(|g| g.as_raw())
            .collect()
    };
    Ok(UserInfo {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        groups,
        home: user.dir,
        same,
    })
}

/// The paths `execve` tries for `program`, in order: itself when it holds a `/`, else each
/// `PATH` entry (an empty one is the working directory), as `execvp` does.
fn search_path(program: &str, path: &OsStr) -> Vec<PathBuf> {
    if program.contains('/') {
        return vec![PathBuf::from(program)];
    }
    std::env::split_paths(path)
        .map(|d| {
            if d.as_os_str().is_empty() {
                PathBuf::from(".").join(program)
            } else {
                d.join(program)
            }
        })
        .collect()
}

/// Whether `path` is a file this process may execute (the PATH search stops at it).
fn is_executable(path: &Path) -> bool {
    nix::unistd::access(path, nix::unistd::AccessFlags::X_OK).is_ok()
        && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// A program ready to be spawned: everything the child needs, in the form the system calls
/// take, made before the clone.
pub(crate) struct Command {
    program: String,
    dir_shown: PathBuf,
    /// Owns what `argv_ptrs` points to.
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const libc::c_char>,
    /// Owns what `envp_ptrs` points to.
    _envp: Vec<CString>,
    envp_ptrs: Vec<*const libc::c_char>,
    /// The paths `execve` tries, in order (the PATH search, done before the clone).
    candidates: Vec<CString>,
    dir: CString,
    user: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
    umask: Option<libc::mode_t>,
    nofile: Option<libc::rlimit>,
}

// SAFETY: the raw pointers point into the CStrings of the same struct, which never change
// after `prepare` and move with it (a CString's bytes are on the heap).
unsafe impl Send for Command {}

/// What `/bin/sh -c` (dash) searches when there is no `PATH`: a command exec'd directly
/// must find the program the shell would.
const SHELL_DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstring(what: &str, bytes: Vec<u8>) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| format!("{what} contains a NUL byte"))
}

fn null_terminated(v: &[CString]) -> Vec<*const libc::c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

impl Command {
    /// Prepares `config` to run from `base_dir`, as `user` when given (looked up by
    /// [`lookup_user`]).
    ///
    /// It stats and reads files (the working directory, the program, `env_file`): call it
    /// where blocking is fine.
    ///
    /// # Errors
    /// A message fit for `last_error`: an empty command, a working directory that does not
    /// exist, an `env_file` that cannot be read or has a bad line, a NUL byte where none may
    /// be.
    pub(crate) fn prepare(
        config: &ProgramConfig,
        base_dir: &Path,
        opts: &SpawnOptions,
        user: Option<&UserInfo>,
        run: &str,
    ) -> Result<Command, String> {
        let dir = config.directory.as_deref().unwrap_or(base_dir);
        if !dir.is_dir() {
            return Err(format!(
                "working directory {} does not exist: create it or fix `directory`",
                dir.display()
            ));
        }
        // Not the host's own sd_notify socket (under systemd, gosuv's): a program would tell
        // systemd it is gosuv that is ready. A program with a `notify` probe gets its own.
        let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| k != "NOTIFY_SOCKET")
            .collect();
        let mut set = |k: &OsStr, v: &OsStr| match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.to_owned(),
            None => env.push((k.to_owned(), v.to_owned())),
        };
        // Read at each start: a change to the file is seen without a reload.
        if let Some(file) = &config.env_file {
            // Read before the switch to `user`: only what that user could read itself.
            let reader = user.filter(|u| !u.same).map(|u| env_file::Reader {
                uid: u.uid,
                gids: std::iter::once(u.gid)
                    .chain(u.groups.iter().copied())
                    .collect(),
            });
            let path = crate::config::resolve_path(base_dir, file);
            for (k, v) in env_file::read_for(&path, reader.as_ref())? {
                set(OsStr::new(&k), OsStr::new(&v));
            }
        }
        for (k, v) in &config.environ {
            set(OsStr::new(k), OsStr::new(v));
        }
        if let Some(u) = user {
            set(OsStr::new("HOME"), u.home.as_os_str());
            set(OsStr::new("USER"), OsStr::new(&u.name));
            set(OsStr::new("LOGNAME"), OsStr::new(&u.name));
        }
        set(OsStr::new(PROGRAM_VAR), OsStr::new(&config.name));
        set(OsStr::new(RUN_VAR), OsStr::new(run));
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| OsString::from(SHELL_DEFAULT_PATH));
        let argv = match &config.command {
            crate::config::Command::Argv(v) => v.clone(),
            crate::config::Command::Shell(s) => {
                let mut plan = shell::plan(s);
                if let shell::Plan::Direct(words) = &plan {
                    // A script without `#!` is the shell's to run, as execvp would.
                    let first = words.first().map(String::as_str).unwrap_or_default();
                    let found = search_path(first, &path)
                        .into_iter()
                        .map(|p| dir.join(p))
                        .find(|p| is_executable(p));
                    if found.is_some_and(|p| !shell::execve_runs(&p)) {
                        plan = shell::Plan::Exec;
                    }
                }
                shell::shell_argv(s, &plan)
            }
        };
        let Some(program) = argv.first().cloned() else {
            return Err("the command is empty".into());
        };
        let candidates = search_path(&program, &path)
            .into_iter()
            .map(|p| cstring("a PATH entry", p.into_os_string().into_vec()))
            .collect::<Result<_, _>>()?;
        let argv = argv
            .into_iter()
            .map(|a| cstring("an argument of the command", a.into_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = env
            .into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstring("an environment variable", kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Command {
            argv_ptrs: null_terminated(&argv),
            envp_ptrs: null_terminated(&envp),
            program,
            dir_shown: dir.to_path_buf(),
            _argv: argv,
            _envp: envp,
            candidates,
            dir: cstring("the working directory", dir.as_os_str().as_bytes().to_vec())?,
            user: user
                .filter(|u| !u.same)
                .map(|u| (u.uid, u.gid, u.groups.clone())),
            umask: config.umask.map(|m| m as libc::mode_t),
            nofile: opts.child_nofile,
        })
    }
}

/// Where a child's standard streams go: what [`spawn`] makes pipes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Streams {
    pub stdin: StdinMode,
    /// Stdout into a pipe; else to `/dev/null`.
    pub stdout: bool,
    pub stderr: StderrTo,
}

/// Where a child's stderr goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StderrTo {
    /// A pipe of its own.
    Pipe,
    /// Where stdout goes (`redirect_stderr`).
    Stdout,
    /// `/dev/null`.
    Null,
}

impl Streams {
    /// Stdin from `/dev/null`, stdout and stderr into one pipe: what a probe's command gets.
    pub(crate) const MERGED: Streams = Streams {
        stdin: StdinMode::Null,
        stdout: true,
        stderr: StderrTo::Stdout,
    };

    /// What a program's config asks for.
    pub(crate) fn of(config: &ProgramConfig) -> Streams {
        let discard = |m: &OutputMode| matches!(m, OutputMode::Discard);
        Streams {
            stdin: config.io.stdin,
            stdout: !discard(&config.io.stdout),
            stderr: if config.redirect_stderr {
                StderrTo::Stdout
            } else if discard(&config.io.stderr) {
                StderrTo::Null
            } else {
                StderrTo::Pipe
            },
        }
    }
}

/// A child that runs: its pid, a pidfd on it, and the parent's ends of its pipes.
pub(crate) struct Child {
    pub pid: u32,
    pub pidfd: OwnedFd,
    /// The read end of its stdout pipe; `None` when stdout goes to `/dev/null`.
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr pipe; `None` when stderr goes where stdout goes, or to
    /// `/dev/null`.
    pub stderr: Option<OwnedFd>,
    /// The write end of its stdin pipe, with [`StdinMode::Pipe`].
    pub stdin: Option<OwnedFd>,
}

/// The step of the child that failed, as written to the error pipe.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Session = 1,
    Cgroup = 2,
    Stdio = 3,
    Directory = 4,
    User = 5,
    Exec = 6,
    Files = 7,
}

impl Step {
    fn from_u32(n: u32) -> Option<Step> {
        [
            Step::Session,
            Step::Cgroup,
            Step::Stdio,
            Step::Directory,
            Step::User,
            Step::Exec,
            Step::Files,
        ]
        .into_iter()
        .find(|s| *s as u32 == n)
    }
}

/// What the child's file descriptors come from: all above 2, so that moving one onto 0, 1
/// or 2 can never overwrite another.
struct ChildIo {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// `cgroup.procs` of its cgroup, when the child must move itself in.
    cgroup_procs: Option<RawFd>,
    errors: RawFd,
    /// The child shares this process's descriptor table, and takes its own with only the
    /// descriptors below this (where all of the above are) before anything else.
    own_files_below: Option<RawFd>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// `fd` itself when it is above 2, else a close-on-exec copy that is.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we own returns a new one we then own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `n` is a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// `/dev/null`, opened once (for reading and writing) for every child's stdin, and the
/// output it discards.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<Result<OwnedFd, i32>> = OnceLock::new();
    let r = NULL.get_or_init(|| {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
            .and_then(|f| {
                above_stdio(OwnedFd::from(f)).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
            })
    });
    match r {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(errno) => Err(io::Error::from_raw_os_error(*errno)),
    }
}

/// Why a spawn failed, and whether placing the child in its cgroup was what failed.
pub(crate) struct SpawnFailure {
    pub message: String,
    pub in_cgroup: bool,
}

impl From<String> for SpawnFailure {
    fn from(message: String) -> SpawnFailure {
        SpawnFailure {
            message,
            in_cgroup: false,
        }
    }
}

/// A pipe whose write end is above 2 (for the child's stdout or stderr).
fn output_pipe(what: &str) -> Result<(OwnedFd, OwnedFd), String> {
    let err = |e: io::Error| format!("cannot create the {what} pipe: {e}");
    let (r, w) = pipe().map_err(err)?;
    Ok((r, above_stdio(w).map_err(err)?))
}

/// The host's stdin as a close-on-exec copy above 2, or `None` when it is closed.
fn host_stdin() -> io::Result<Option<OwnedFd>> {
    // SAFETY: F_DUPFD_CLOEXEC on descriptor 0 returns a new descriptor we then own.
    let n = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if n >= 0 {
        // SAFETY: `n` is a new descriptor nobody else owns.
        return Ok(Some(unsafe { OwnedFd::from_raw_fd(n) }));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EBADF) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// Spawns `cmd` with its standard streams as `streams` says (pipes made here), in the
/// cgroup whose directory is open as `cgroup` when given.
///
/// # Errors
/// A message fit for `last_error` (no such command, permission denied, no such user ...),
/// and whether it was placing the child in its cgroup that failed.
pub(crate) fn spawn(
    cmd: &Command,
    streams: Streams,
    cgroup: Option<&OwnedFd>,
) -> Result<Child, SpawnFailure> {
    let io_err = |what: &str, e: io::Error| format!("cannot {what}: {e}");
    let out_pipe = streams.stdout.then(|| output_pipe("stdout")).transpose()?;
    let err_pipe = (streams.stderr == StderrTo::Pipe)
        .then(|| output_pipe("stderr"))
        .transpose()?;
    // Non-blocking: read at once after a shared-memory child (see below), polled otherwise;
    // the child's one write of 8 bytes into an empty pipe never waits either way.
    let (status_r, status_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .map_err(|e| io_err("create the status pipe", e.into()))?;
    let status_w = above_stdio(status_w).map_err(|e| io_err("create the status pipe", e))?;
    let null = dev_null().map_err(|e| io_err("open /dev/null", e))?;
    // The child's end of its stdin (a pipe's read end, or the host's stdin), and the
    // parent's end of a stdin pipe.
    let (stdin_child, stdin_w) = match streams.stdin {
        StdinMode::Null => (None, None),
        StdinMode::Inherit => (
            host_stdin().map_err(|e| io_err("copy the host's stdin", e))?,
            None,
        ),
        StdinMode::Pipe => {
            let err = |e: io::Error| io_err("create the stdin pipe", e);
            let (r, w) = pipe().map_err(err)?;
            (Some(above_stdio(r).map_err(err)?), Some(w))
        }
    };
    let stdout = out_pipe.as_ref().map_or(null, |(_, w)| w.as_raw_fd());
    // Where the kernel cannot start the child in its cgroup, it moves itself in.
    let procs = match cgroup {
        Some(dir) if NO_INTO_CGROUP.load(Ordering::Relaxed) => {
            Some(open_procs(dir).map_err(|e| SpawnFailure {
                message: io_err("open the program's cgroup", e),
                in_cgroup: true,
            })?)
        }
        _ => None,
    };
    let mut io = ChildIo {
        stdin: stdin_child.as_ref().map_or(null, AsRawFd::as_raw_fd),
        stdout,
        stderr: match (streams.stderr, &err_pipe) {
            (StderrTo::Pipe, Some((_, w))) => w.as_raw_fd(),
            (StderrTo::Stdout, _) => stdout,
            _ => null,
        },
        cgroup_procs: procs.as_ref().map(AsRawFd::as_raw_fd),
        errors: status_w.as_raw_fd(),
        own_files_below: None,
    };
    // The child's descriptors, moved low: it copies those, not the whole table.
    let low = if NO_OWN_FILES.load(Ordering::Relaxed) || !low_fds::usable() {
        None
    } else {
        low_fds::Block::take().and_then(|b| b.hold(&mut io).ok().map(|()| b))
    };
    let into = cgroup.filter(|_| procs.is_none());
    // A credential change in a child that shares this process's memory marks that memory
    // not dumpable (no core dump, no ptrace by the same user): restored once the last such
    // child in flight has run, to what it was before the first.
    let switching = cmd.user.as_ref().map(|_| Switching::enter());
    // SAFETY: in the child, `child_main` makes only system calls on data prepared above and
    // never returns; in the parent, `clone_child` returns the child's pid and pidfd.
    let forked = match unsafe {
        clone::clone_child(
            into.map(AsRawFd::as_raw_fd),
            low.is_some(),
            EXEC_DEADLINE,
            || child_main(cmd, &io),
        )
    } {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) && into.is_some() => {
            // A kernel without CLONE_INTO_CGROUP (before 5.7), or no clone3: the child
            // moves itself in.
            NO_INTO_CGROUP.store(true, Ordering::Relaxed);
            match into.map(open_procs) {
                Some(Ok(procs)) => {
                    io.cgroup_procs = Some(procs.as_raw_fd());
                    if let Some(b) = &low {
                        match b.place(3, procs.as_raw_fd()) {
                            Ok(slot) => io.cgroup_procs = Some(slot),
                            Err(e) => return Err(io_err("open the program's cgroup", e).into()),
                        }
                    }
                    // SAFETY: as above.
                    unsafe {
                        clone::clone_child(None, low.is_some(), EXEC_DEADLINE, || {
                            child_main(cmd, &io)
                        })
                    }
                }
                Some(Err(e)) => Err(e),
                None => Err(e),
            }
        }
        other => other,
    };
    drop(switching);
    // The child has its own copies (or a copy of the whole table) by now.
    drop(low);
    drop(procs);
    let clone::Forked {
        pid,
        pidfd,
        killed,
        shared,
    } = forked.map_err(|e| {
        // Where the kernel was to place it in its cgroup, these say the placing failed (a
        // cgroup removed meanwhile, a controller that refuses it); others (no memory, a
        // limit on processes) are the clone's own.
        let placing = into.is_some()
            && matches!(
                e.raw_os_error(),
                Some(
                    libc::ENOENT
                        | libc::ENODEV
                        | libc::EBUSY
                        | libc::EOPNOTSUPP
                        | libc::EACCES
                        | libc::EPERM
                        | libc::EBADF
                )
            );
        SpawnFailure {
            message: if placing {
                io_err("start a process in the program's cgroup", e)
            } else {
                io_err("start a process", e)
            },
            in_cgroup: placing,
        }
    })?;
    // The parent's copies of the child's ends: EOF on the output pipes comes when the child
    // and everything it started have closed theirs, EOF on the status pipe at `execve`.
    let read_end = |pipe: Option<(OwnedFd, OwnedFd)>| {
        pipe.map(|(r, w)| {
            drop(w);
            r
        })
    };
    let out_r = read_end(out_pipe);
    let err_r = read_end(err_pipe);
    drop(stdin_child);
    drop(status_w);
    // A child that shares our memory has reached `execve` (or exited, or was killed as
    // stuck) when the clone returns: the pipe has all it will ever have. (Its end of the
    // pipe may still be open in a sibling being spawned meanwhile, until that one's execve:
    // no waiting for end-of-file.)
    let status = if killed {
        Status::Stuck
    } else if shared {
        read_status_now(&status_r)
    } else {
        read_status(&status_r)
    };
    match status {
        Status::Running => {}
        Status::Failed(Step::Files, errno)
            if matches!(errno, libc::ENOSYS | libc::EPERM | libc::EINVAL) =>
        {
            // A filter without close_range: the child could not take a table of its own,
            // and made none of its changes. Copies from now on.
            reap_now(&pidfd);
            NO_OWN_FILES.store(true, Ordering::Relaxed);
            tracing::debug!(
                "children copy the whole descriptor table here: close_range failed ({})",
                io::Error::from_raw_os_error(errno)
            );
            return spawn(cmd, streams, cgroup);
        }
        Status::Failed(step, errno) => {
            // It exits at once; take its exit so it is no zombie.
            reap_now(&pidfd);
            return Err(SpawnFailure {
                message: describe_failure(cmd, step, errno),
                in_cgroup: matches!(step, Step::Cgroup),
            });
        }
        Status::Stuck => {
            // SAFETY: pidfd_send_signal on our own child's pidfd.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    pidfd.as_raw_fd(),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            };
            // A child stuck in the kernel (a dead network file system) may not die at once:
            // its exit is taken whenever it comes, not waited for here.
            crate::reaper::reap_later(pidfd);
            return Err(format!(
                "'{}' did not get from its start to running the program within {} s: killed",
                cmd.program,
                EXEC_DEADLINE.as_secs()
            )
            .into());
        }
    }
    Ok(Child {
        pid,
        pidfd,
        stdout: out_r,
        stderr: err_r,
        stdin: stdin_w,
    })
}

/// Children in flight that change their credentials, and this process's dumpable flag from
/// before the first of them.
static SWITCHING: std::sync::Mutex<(usize, i32)> = std::sync::Mutex::new((0, 1));

/// One spawn of a child that changes its credentials, from before its clone until it has
/// run `execve`: the last one out restores the host's dumpable flag.
struct Switching;

impl Switching {
    fn enter() -> Switching {
        let mut s = SWITCHING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.0 == 0 {
            // SAFETY: prctl reads a flag of this process.
            s.1 = unsafe { libc::prctl(libc::PR_GET_DUMPABLE) };
        }
        s.0 += 1;
        Switching
    }
}

impl Drop for Switching {
    fn drop(&mut self) {
        let mut s = SWITCHING
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.0 -= 1;
        // SAFETY: prctl reads and sets a flag of this process.
        if s.0 == 0 && s.1 == 1 && unsafe { libc::prctl(libc::PR_GET_DUMPABLE) } != 1 {
            unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
        }
    }
}

/// Reserves the low descriptor numbers children's streams are moved to before their clone
/// (see `low_fds`), while this process's table is still small: when a supervisor is made.
pub(crate) fn reserve_low_fds() {
    low_fds::Block::reserve();
}

/// Closes the low descriptor numbers kept for children's streams: when no supervisor is
/// left (the next one reserves them again).
pub(crate) fn release_low_fds() {
    low_fds::Block::release();
}

/// Set once a child could not take a descriptor table of its own (`close_range`, Linux
/// 5.9): children copy the whole table from then on.
static NO_OWN_FILES: AtomicBool = AtomicBool::new(false);

/// Set once `CLONE_INTO_CGROUP` turned out to be unknown here (Linux before 5.7).
static NO_INTO_CGROUP: AtomicBool = AtomicBool::new(false);

/// `cgroup.procs` of the cgroup whose directory is open as `dir`, for writing.
fn open_procs(dir: &OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: openat relative to a directory we own, with a NUL-terminated name; the result
    // is a new descriptor we own.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c"cgroup.procs".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// How long a child may take from its start to `execve` before it is taken for stuck: killed,
/// and the start failed. A healthy child takes microseconds.
const EXEC_DEADLINE: std::time::Duration = std::time::Duration::from_secs(10);

/// What the child's status pipe said.
enum Status {
    /// It reached `execve`: the program runs.
    Running,
    /// This step failed with this errno.
    Failed(Step, i32),
    /// Nothing within [`EXEC_DEADLINE`].
    Stuck,
}

/// Reads the child's status pipe to its end, waiting at most [`EXEC_DEADLINE`].
/// What the status pipe (non-blocking) holds now: a failed step, or nothing (the child ran
/// its program).
fn read_status_now(r: &OwnedFd) -> Status {
    let mut buf = [0u8; 8];
    // SAFETY: a non-blocking read into a stack buffer we own; a write of 8 bytes to a pipe
    // is atomic, so it is there whole or not at all.
    let n = unsafe { libc::read(r.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n == 8 {
        decode_status(buf)
    } else {
        Status::Running
    }
}

fn read_status(r: &OwnedFd) -> Status {
    let deadline = std::time::Instant::now() + EXEC_DEADLINE;
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let mut p = libc::pollfd {
            fd: r.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one descriptor we own.
        let ready = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        if ready == 0 {
            return Status::Stuck;
        }
        if ready < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        // SAFETY: reading into the rest of a stack buffer we own.
        let n = unsafe {
            libc::read(
                r.as_raw_fd(),
                buf[got..].as_mut_ptr().cast(),
                buf.len() - got,
            )
        };
        match n {
            0 => break,
            n if n > 0 => got += n as usize,
            _ if matches!(
                io::Error::last_os_error().kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) => {}
            _ => break,
        }
    }
    if got < buf.len() {
        return Status::Running;
    }
    decode_status(buf)
}

/// A failed step and its errno, as the child wrote them.
fn decode_status(buf: [u8; 8]) -> Status {
    let step = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Status::Failed(Step::from_u32(step).unwrap_or(Step::Exec), errno)
}

/// Reaps a child that is exiting, through its pidfd (blocking: it is about to end).
fn reap_now(pidfd: &OwnedFd) {
    // SAFETY: waitid with a zeroed siginfo we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        while libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED,
        ) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

fn describe_failure(cmd: &Command, step: Step, errno: i32) -> String {
    let e = io::Error::from_raw_os_error(errno);
    let program = &cmd.program;
    match step {
        Step::Exec if errno == libc::ENOENT => format!(
            "cannot run '{program}': no such file or command (searched PATH from {})",
            cmd.dir_shown.display()
        ),
        Step::Exec if errno == libc::EACCES => {
            format!("cannot run '{program}': permission denied (is it executable?)")
        }
        Step::Exec => format!("cannot run '{program}': {e}"),
        Step::Session => format!("cannot start a session for '{program}': {e}"),
        Step::Cgroup => format!("cannot move '{program}' into its cgroup: {e}"),
        Step::Stdio => format!("cannot set up the standard streams of '{program}': {e}"),
        Step::Directory => format!(
            "cannot enter working directory {}: {e}",
            cmd.dir_shown.display()
        ),
        Step::User => format!("cannot switch to the user of '{program}': {e}"),
        Step::Files => format!("cannot give '{program}' a descriptor table of its own: {e}"),
    }
}

/// `write` itself: glibc's is a cancellation point, which touches the thread's descriptor
/// (the parent thread's, in a child that shares its memory).
///
/// # Safety
/// `fd` must be a descriptor (a bad one fails with `EBADF`).
unsafe fn raw_write(fd: RawFd, buf: &[u8]) -> libc::c_long {
    libc::syscall(libc::SYS_write, fd, buf.as_ptr(), buf.len())
}

/// Writes the failed step and errno to the status pipe, then exits.
///
/// # Safety
/// Only in the child.
unsafe fn fail(io: &ChildIo, step: Step) -> ! {
    let errno = *libc::__errno_location();
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    raw_write(io.errors, &buf);
    libc::_exit(127);
}

/// The child, between the clone and `execve`. Each step is a system call on what `prepare`
/// made; a failing step reports itself through the status pipe and exits.
///
/// # Safety
/// Only in the child of `clone::clone_child`, which may share this process's memory: it
/// writes nothing but its own stack and `errno` (the sleeping parent thread's, which that
/// thread does not read across the clone), and never allocates, locks or panics.
unsafe fn child_main(cmd: &Command, io: &ChildIo) {
    // First of all, while it still shares this process's descriptor table: a table of its
    // own, with only the low descriptors it needs (see `low_fds`).
    if let Some(below) = io.own_files_below {
        const CLOSE_RANGE_UNSHARE: libc::c_uint = 1 << 1;
        if libc::syscall(libc::SYS_close_range, below, u32::MAX, CLOSE_RANGE_UNSHARE) < 0 {
            fail(io, Step::Files);
        }
    }
    // Default dispositions for every signal: the host may ignore some (Python ignores
    // SIGPIPE) or handle them with code that must not run here. All are still blocked.
    // The system call itself: glibc's `sigaction` refuses the two real-time signals it
    // keeps for itself (32 and 33), and an ignored one would stay ignored in the program.
    // The kernel's struct is the handler, flags, (restorer,) mask: all zero is SIG_DFL with
    // no flags and an empty mask whatever the layout.
    let dfl = [0usize; 4];
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<usize>(),
                std::mem::size_of::<u64>(),
            );
        }
    }
    // A session and process group of its own, led by this process.
    if libc::setsid() < 0 {
        fail(io, Step::Session);
    }
    // Into the program's cgroup before it runs anything, where the kernel did not start it
    // there: "0" moves the writer itself.
    if let Some(fd) = io.cgroup_procs {
        if raw_write(fd, b"0") != 1 {
            fail(io, Step::Cgroup);
        }
    }
    if let Some(m) = cmd.umask {
        libc::umask(m);
    }
    for (from, to) in [(io.stdin, 0), (io.stdout, 1), (io.stderr, 2)] {
        if libc::dup2(from, to) < 0 {
            fail(io, Step::Stdio);
        }
    }
    if libc::chdir(cmd.dir.as_ptr()) < 0 {
        fail(io, Step::Directory);
    }
    // Raw system calls, not glibc's wrappers: those change the credentials of every thread
    // they believe exists, and wait for threads that exist only in the parent.
    if let Some((uid, gid, groups)) = &cmd.user {
        if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
            || libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid) < 0
            || libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid) < 0
        {
            fail(io, Step::User);
        }
    }
    // Before the open-files limit goes down: the fallback walk stops at the limit.
    mark_fds_cloexec();
    if let Some(rl) = &cmd.nofile {
        libc::setrlimit(libc::RLIMIT_NOFILE, rl);
    }
    clone::sigprocmask(libc::SIG_SETMASK, &0, std::ptr::null_mut());
    // The PATH search: like execvp, a file that is not there moves on to the next place; a
    // denied one is remembered and reported if nothing else runs.
    let mut denied = false;
    for path in &cmd.candidates {
        libc::execve(
            path.as_ptr(),
            cmd.argv_ptrs.as_ptr(),
            cmd.envp_ptrs.as_ptr(),
        );
        match *libc::__errno_location() {
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            libc::EACCES => denied = true,
            _ => fail(io, Step::Exec),
        }
    }
    if denied {
        *libc::__errno_location() = libc::EACCES;
    }
    fail(io, Step::Exec);
}

/// Marks every descriptor above stderr close-on-exec, so that nothing a host program (or
/// gosuv) opened without `O_CLOEXEC` leaks into the child.
///
/// # Safety
/// Only in the child.
unsafe fn mark_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC) == 0 {
        return;
    }
    // Older kernels: walk the descriptor table up to the soft limit.
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 {
        rl.rlim_cur.min(1 << 16) as i32
    } else {
        1024
    };
    for fd in 3..max {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// The open-files limit this process had before a supervisor raised it.
static ORIGINAL_NOFILE: OnceLock<libc::rlimit> = OnceLock::new();

/// Puts this process's open-files soft limit back to what it was before a supervisor raised
/// it: for a server about to re-execute itself, so that the new image (and the programs it
/// starts) begin from the same limit as the first.
pub fn restore_nofile() {
    if let Some(original) = ORIGINAL_NOFILE.get() {
        // SAFETY: setrlimit with a struct we own; a failure leaves the limit as it is.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, original) };
    }
}

/// Raises this process's RLIMIT_NOFILE soft limit to at least `want` (or to the hard limit
/// when `want` is `None`), and returns the limit children should get back.
///
/// # Errors
/// `want` is above the hard limit (EPERM), or the limits cannot be read or set.
pub(crate) fn raise_nofile(want: Option<u64>) -> io::Result<Option<libc::rlimit>> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a stack struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return Err(io::Error::last_os_error());
        }
        // The limit the process had before any supervisor raised it: what children get.
        let original = *ORIGINAL_NOFILE.get_or_init(|| rl);
        if want.is_some_and(|w| w > rl.rlim_max) {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        let target = want.map_or(rl.rlim_max, |w| w.max(rl.rlim_cur));
        if target > rl.rlim_cur {
            let raised = libc::rlimit {
                rlim_cur: target,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok((original.rlim_cur < target).then_some(original))
    }
}

/// Marks `fd` non-blocking.
pub(crate) fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_path_the_search_is_the_shells() {
        // The real /bin/sh, with an empty environment, says where it would search.
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", "printf %s \"$PATH\""])
            .env_clear()
            .output()
            .expect("/bin/sh runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            super::SHELL_DEFAULT_PATH
        );
    }

    use super::*;
    use crate::config::Command as Cmd;

    fn run(config: &ProgramConfig) -> Result<(Child, String), String> {
        let cmd = Command::prepare(
            config,
            Path::new("/tmp"),
            &SpawnOptions::default(),
            None,
            &new_run_id(),
        )?;
        let child = spawn(&cmd, Streams::MERGED, None).map_err(|e| e.message)?;
        let mut out = String::new();
        let f = std::fs::File::from(
            child
                .stdout
                .as_ref()
                .expect("a stdout pipe")
                .try_clone()
                .expect("dup"),
        );
        std::io::Read::read_to_string(&mut &f, &mut out).expect("read");
        reap_now(&child.pidfd);
        Ok((child, out))
    }

    #[test]
    fn the_child_leads_its_session_and_gets_its_environment() {
        let mut p = ProgramConfig::new(
            "envy",
            Cmd::Argv(vec![
                "sh".into(),
                "-c".into(),
                "echo $$ $(cut -d' ' -f6 /proc/self/stat) $X $GOSUV_PROGRAM; pwd".into(),
            ]),
        );
        p.environ = vec![("X".into(), "ex".into())];
        let (child, out) = run(&p).expect("runs");
        let mut lines = out.lines();
        let first: Vec<&str> = lines.next().expect("line").split(' ').collect();
        assert_eq!(first[0], child.pid.to_string());
        assert_eq!(first[2..], ["ex", "envy"]);
        assert_eq!(lines.next(), Some("/tmp"));
    }

    #[test]
    fn a_child_gets_its_own_small_table_whatever_the_size_of_ours() {
        // Many descriptors here, some not close-on-exec: the child takes a table of its own
        // with the low ones only (not a copy of all of ours), and has nothing but its streams.
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let many: Vec<OwnedFd> = (0..2000)
            .map(|_| {
                // SAFETY: F_DUPFD (no close-on-exec) of an open descriptor: a new one, ours.
                let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD, 3) };
                assert!(fd >= 0, "dup: {}", io::Error::last_os_error());
                // SAFETY: just made, nobody else owns it.
                unsafe { OwnedFd::from_raw_fd(fd) }
            })
            .collect();
        let p = ProgramConfig::new(
            "fds",
            Cmd::Argv(vec!["ls".into(), "-1".into(), "/proc/self/fd".into()]),
        );
        for _ in 0..3 {
            let (_, out) = run(&p).expect("runs");
            // 3 is ls's own, the directory it lists.
            assert_eq!(
                out.lines().collect::<Vec<_>>(),
                ["0", "1", "2", "3"],
                "{out}"
            );
        }
        drop(many);
    }

    #[test]
    fn a_child_copies_a_few_descriptors_not_our_whole_table() {
        if !low_fds::usable() {
            eprintln!("skipped: before Linux 6.11 children copy the whole table");
            return;
        }
        // Reserved first, as a supervisor does when it is made: low numbers.
        reserve_low_fds();
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let many: Vec<OwnedFd> = (0..3000)
            .map(|_| null.try_clone().expect("dup").into())
            .collect();
        let p = ProgramConfig::new(
            "fds",
            Cmd::Argv(vec![
                "grep".into(),
                "FDSize".into(),
                "/proc/self/status".into(),
            ]),
        );
        let (_, out) = run(&p).expect("runs");
        // The size of the child's table: what it copied (a copy of ours is over 3,000).
        let size: u32 = out
            .trim()
            .strip_prefix("FDSize:")
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no FDSize in {out:?}"));
        assert!(size <= 128, "the child's table has {size} entries: {out}");
        assert!(!NO_OWN_FILES.load(Ordering::Relaxed));
        drop(many);
    }

    #[test]
    fn failures_name_their_cause() {
        let p = ProgramConfig::new("x", Cmd::Argv(vec!["definitely-not-a-command-x".into()]));
        let e = run(&p).err().expect("fails");
        assert!(e.contains("no such file or command"), "{e}");
        let dir = tempfile::tempdir().expect("tmp");
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "#!/bin/sh\n").expect("write");
        let p = ProgramConfig::new("x", Cmd::Argv(vec![plain.display().to_string()]));
        let e = run(&p).err().expect("fails");
        assert!(e.contains("permission denied"), "{e}");
        let mut p = ProgramConfig::shell("x", "true");
        p.directory = Some("/definitely/not/here".into());
        let e = run(&p).err().expect("fails");
        assert!(e.contains("does not exist"), "{e}");
        let mut p = ProgramConfig::shell("x", "true");
        p.environ = vec![("K".into(), "a\0b".into())];
        let e = run(&p).err().expect("fails");
        assert!(e.contains("NUL"), "{e}");
    }
}
