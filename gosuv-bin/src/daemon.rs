//! The pidfile (locked while the server lives, so a `kill -9` leaves nothing that blocks
//! the next start) and the background start: re-exec `gosuv -c CONFIG start-server -f` in a
//! new session with its output in gosuv.log, then wait until it answers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError};
use crate::{CliResult, Failure};

/// The pidfile of a running server, locked (`flock`) for as long as the server lives.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

/// The locked pidfile a server that re-executed itself passed to its new image.
static INHERITED: std::sync::Mutex<Option<File>> = std::sync::Mutex::new(None);

/// Takes the pidfile descriptor a re-executing server passed (`--pidfile-fd`): it is
/// close-on-exec again at once, and [`PidFile::acquire`] uses it when it is that pidfile.
pub fn inherit_pidfile(fd: Option<i32>, reexecuted: bool) {
    REEXECUTED.store(reexecuted, std::sync::atomic::Ordering::Relaxed);
    let Some(fd) = fd else { return };
    // Only a descriptor that is open here, and a regular file.
    // SAFETY: fcntl(F_GETFD) on any number is harmless.
    if fd < 3 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return;
    }
    // SAFETY: the descriptor was passed to this process for this use; nothing else owns it.
    let file = unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: fcntl on a descriptor we own.
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    if file.metadata().is_ok_and(|m| m.is_file()) {
        *INHERITED.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    }
}

static REEXECUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process is a server that re-executed itself (`restart-server`).
pub fn reexecuted() -> bool {
    REEXECUTED.load(std::sync::atomic::Ordering::Relaxed)
}

impl PidFile {
    /// The pidfile's descriptor (kept open across the exec of a server that re-executes
    /// itself, so its lock is never let go of).
    pub fn raw_fd(&self) -> i32 {
        self._file.as_raw_fd()
    }

    /// Locks the pidfile and writes this process's pid in it.
    ///
    /// # Errors
    /// Another live server holds it, or it cannot be written.
    pub fn acquire(path: &Path) -> CliResult<Self> {
        if let Some(dir) = path.parent() {
            let _ = gosuv::files::create_dir_all(dir);
        }
        // A server that re-executed itself kept the file locked: the same file, the same lock.
        let inherited = INHERITED.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(file) = inherited {
            use std::os::unix::fs::MetadataExt;
            let same = match (file.metadata(), std::fs::symlink_metadata(path)) {
                (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino() && b.is_file(),
                _ => false,
            };
            // SAFETY: flock on a descriptor we own (this open file already holds the lock).
            if same && unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0
            {
                return Ok(PidFile {
                    path: path.to_path_buf(),
                    _file: file,
                });
            }
        }
        // Never through a link: one planted there would have the server truncate whatever
        // it points to.
        let mut file = gosuv::files::options(0o644)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .and_then(gosuv::files::checked)
            .map_err(|e| {
                Failure::new(format!(
                    "cannot open the pidfile: {}",
                    gosuv::files::describe(path, &e)
                ))
            })?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(Failure::new(format!(
                "gosuv is already running (pid {}, pidfile {}): stop it first with 'gosuv shutdown'",
                text.trim(),
                path.display()
            )));
        }
        let pid = format!("{}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .and_then(|()| file.sync_all());
        written.map_err(|e| {
            Failure::new(format!("cannot write the pidfile {}: {e}", path.display()))
        })?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _file: file,
        })
    }

    /// Removes the pidfile. The lock is kept until the process exits, so whoever waits
    /// for the lock to go (`shutdown`, `kill`) waits for the exit itself.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
        std::mem::forget(self);
    }
}

impl Drop for PidFile {
    /// A server that fails after taking the pidfile removes it and lets the lock go.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The pid in a pidfile that a live server holds locked; `None` when no server holds it
/// (missing file, or a stale one left by `kill -9`).
pub fn running_pid(path: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    // Never through a link, never a FIFO; only a file this user (or root) owns: a pidfile
    // someone else made, in a shared directory, must not direct `kill` at their choice.
    let mut file = gosuv::files::options(0)
        .read(true)
        .open(path)
        .and_then(gosuv::files::checked)
        .ok()?;
    let owner = file.metadata().ok()?.uid();
    // SAFETY: geteuid has no arguments and cannot fail.
    if owner != unsafe { libc::geteuid() } && owner != 0 {
        return None;
    }
    // SAFETY: flock on a descriptor we own; a shared lock we get is dropped with the file.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        return None;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    // And the pid is a gosuv server's.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_server = cmdline.split(|b| *b == 0).any(|a| a == b"start-server");
    is_server.then_some(pid)
}

/// A running server, held by a pidfd: signals reach this process even if its pid is
/// reused, and its exit (not only the release of its pidfile, which comes a little
/// earlier) can be waited for.
#[derive(Debug)]
pub struct ServerProcess {
    pub pid: u32,
    fd: std::os::fd::OwnedFd,
}

impl ServerProcess {
    /// The server that holds `pidfile`, if one does.
    pub fn find(pidfile: &Path) -> Option<Self> {
        use std::os::fd::FromRawFd;
        let pid = running_pid(pidfile)?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as std::os::fd::RawFd) };
        // The pid read may have been recycled between the read and the open: the pidfile
        // still naming it, locked, after the open means the descriptor is the server's.
        (running_pid(pidfile) == Some(pid)).then_some(Self { pid, fd })
    }

    /// Sends `signal` to the server.
    ///
    /// # Errors
    /// The kernel refused (the server has exited: ESRCH; another user's: EPERM).
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> std::io::Result<()> {
        // SAFETY: pidfd_send_signal on a descriptor we own, with no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.as_raw_fd(),
                signal as libc::c_int,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits until the server process has exited, up to `timeout`. Returns whether it has.
    pub fn wait_exit(&self, timeout: Duration) -> bool {
        wait_pidfd(self.fd.as_fd(), timeout)
    }
}

/// Waits until the process of a pidfd has exited (the pidfd polls readable), up to
/// `timeout`. Returns whether it has.
pub fn wait_pidfd(fd: std::os::fd::BorrowedFd<'_>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: poll on one pollfd of a descriptor the caller owns.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r > 0 {
            return true;
        }
        if r == 0 || Instant::now() >= deadline || crate::interrupt::pressed() {
            return false;
        }
        // EINTR (but Ctrl-C in the shell): poll again for what is left.
    }
}

/// Waits until no server holds the pidfile, up to `timeout`. Returns whether it is free.
pub fn wait_pidfile_free(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if running_pid(path).is_none() {
            return true;
        }
        if Instant::now() >= deadline || crate::interrupt::pressed() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes the commented default config.yml at `path`, with auth on and a random password
/// (for the server and the client alike). The file holds a password: it is created mode
/// 0600, complete or not at all (a temporary file beside it, fsync, then moved into place
/// only if nothing is at `path`), and never through a symlink. Returns false when another
/// `start-server` wrote one first (then that one is used).
///
/// # Errors
/// The file cannot be written, or a dangling symlink is at `path`.
pub fn write_default_config(path: &Path) -> CliResult<bool> {
    let fail = |e: &dyn std::fmt::Display| {
        Failure::new(format!(
            "cannot write the default config {}: {e}",
            path.display()
        ))
    };
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            gosuv::files::create_dir_all(dir)
                .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
            dir
        }
        None => Path::new("."),
    };
    let password = random_password().map_err(|e| fail(&e))?;
    let text = gosuv::config::default_config_yml(&password);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.yml".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{name}.tmp-{}-{nanos}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| fail(&format!("cannot create {}: {e}", tmp.display())))?;
    let written = (|| -> std::io::Result<()> {
        // The umask may only have taken bits away; this is the mode whatever it was.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    })();
    drop(f);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(&e));
    }
    let placed = move_no_replace(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match placed {
        Ok(()) => {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if path.exists() {
                Ok(false)
            } else {
                Err(Failure::new(format!(
                    "{} is a symlink to nothing: remove it, or pass another file with -c",
                    path.display()
                )))
            }
        }
        Err(e) => Err(fail(&e)),
    }
}

/// Moves `from` to `to` unless something (a symlink included) is at `to`: `renameat2` with
/// `RENAME_NOREPLACE`, or a hard link where the file system lacks that flag.
///
/// # Errors
/// `AlreadyExists` when something is at `to`; any other failure to move.
fn move_no_replace(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
    };
    let (cfrom, cto) = (c(from)?, c(to)?);
    // SAFETY: two NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => std::fs::hard_link(from, to),
        _ => Err(e),
    }
}

/// A password of 24 URL-safe characters (144 bits from the kernel's random source).
///
/// # Errors
/// No random bytes can be read.
fn random_password() -> std::io::Result<String> {
    use base64::Engine;
    let mut bytes = [0u8; 18];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        // SAFETY: writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            // A kernel without getrandom(2): its device.
            File::open("/dev/urandom")
                .and_then(|mut f| f.read_exact(&mut bytes))
                .map_err(|u| {
                    std::io::Error::other(format!(
                        "no random bytes for the password (getrandom: {e}; /dev/urandom: {u})"
                    ))
                })?;
            break;
        }
        filled += n.unsigned_abs();
    }
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// How long a background start waits for the server to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Starts the server in the background and waits until it answers. Prints
/// `server started, listening ...`.
///
/// # Errors
/// A server already runs, the server exited (its last log lines are quoted), or it did not
/// answer in time.
pub fn start_background(config_path: &Path, config: &gosuv::ServerConfig) -> CliResult {
    if let Some(pid) = running_pid(&config.server.pidfile) {
        return Err(Failure::new(format!(
            "gosuv is already running (pid {pid}, pidfile {}): use 'gosuv restart-server' to restart it",
            config.server.pidfile.display()
        )));
    }
    let logdir = &config.server.log.logpath;
    gosuv::files::create_dir_all(logdir).map_err(|e| {
        Failure::new(format!(
            "cannot create the log directory {}: {e}",
            logdir.display()
        ))
    })?;
    let log_path = logdir.join("gosuv.log");
    let log = gosuv::files::open_append(&log_path, 0o640).map_err(|e| {
        Failure::new(format!(
            "cannot open {}",
            gosuv::files::describe(&log_path, &e)
        ))
    })?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let err = log
        .try_clone()
        .map_err(|e| Failure::new(format!("cannot open {}: {e}", log_path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::new(format!("cannot find the gosuv executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.arg("-c")
        .arg(config_path)
        .args(["start-server", "-f", "--daemon-child"])
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err));
    // SAFETY: setsid is async-signal-safe; the child gets a new session and so no
    // controlling terminal.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("cannot start the server: {e}")))?;
    let client = Client::from_config(config)?;
    let started = child.id();
    // A server that first stops what a crashed one left running answers only after that.
    let timeout = START_TIMEOUT + crate::server::recovery::pending_grace(&config.server.pidfile);
    let deadline = Instant::now() + timeout;
    // What answers at the address when it is not the server started here: another gosuv
    // (a lost start race), or a stranger on the socket path.
    let mut foreign: Option<String> = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let why = read_from(&log_path, log_start);
            let mut message = format!("the server did not start ({status}):\n{}", why.trim_end());
            if let Some(f) = &foreign {
                message.push_str(&format!("\n{f}"));
            }
            return Err(Failure::new(message));
        }
        match client.json(hyper::Method::GET, "/api/status", None) {
            Ok(v) if v["pid"].as_u64() == Some(u64::from(started)) => {
                let listening = listening_of(&v);
                println!("server started, listening {}", listening.join(", "));
                if let Some(url) = crate::server::checks::login_url(config, &listening) {
                    println!("web page: {url}");
                }
                return Ok(());
            }
            Ok(v) => {
                foreign = Some(format!(
                    "another process answers at {} (pid {}), not the server this command started (pid {started})",
                    client.url(),
                    v["pid"]
                ));
            }
            Err(ClientError::Unreachable { .. }) => {}
            Err(ClientError::Interrupted) => {
                return Err(Failure::new(format!(
                    "{}: the server (pid {started}) may still be starting: see 'gosuv status-server'",
                    crate::client::INTERRUPTED
                )));
            }
            Err(e) => match socket_owner(&client) {
                // Its own server, which this client cannot use (wrong credentials in
                // client.*): the server runs, but nothing this command was for works.
                Some(pid) if pid == started => {
                    return Err(Failure::new(format!(
                        "the server started (pid {started}) and runs, but this client cannot use it: {e}"
                    )));
                }
                owner => {
                    foreign = Some(format!(
                        "{} answers at {}: {e}",
                        owner.map_or("another process".to_string(), |p| format!(
                            "another process (pid {p})"
                        )),
                        client.url()
                    ));
                }
            },
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "the server (pid {started}) did not answer at {} within {}s{}: check client.server_url in {} and {}",
                client.url(),
                timeout.as_secs(),
                foreign.map(|f| format!(" ({f})")).unwrap_or_default(),
                config_path.display(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The pid of the process listening on the client's unix socket (`SO_PEERCRED` of a
/// connection to it); `None` over TCP or when it cannot be told.
fn socket_owner(client: &Client) -> Option<u32> {
    let crate::client::Endpoint::Unix(path) = crate::client::parse_url(client.url()).ok()? else {
        return None;
    };
    let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which lives across the call.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then(|| u32::try_from(cred.pid).ok()).flatten()
}

/// What was appended to a file after `offset` (the last 4 KiB of it).
fn read_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let start = offset.max(len.saturating_sub(4096));
        let _ = f.seek(SeekFrom::Start(start));
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The addresses a server's `GET /api/status` says it listens on.
pub fn listening_of(status: &serde_json::Value) -> Vec<String> {
    status["listening"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
