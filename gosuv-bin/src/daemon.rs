//! The pidfile (locked while the server lives, so a `kill -9` leaves nothing that blocks
//! the next start) and the background start: re-exec `gosuv -c CONFIG start-server -f` in a
//! new session with its output in gosuv.log, then wait until it answers.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
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

impl PidFile {
    /// Locks the pidfile and writes this process's pid in it.
    ///
    /// # Errors
    /// Another live server holds it, or it cannot be written.
    pub fn acquire(path: &Path) -> CliResult<Self> {
        if let Some(dir) = path.parent() {
            let _ = gosuv::files::create_dir_all(dir);
        }
        // Never through a link: one planted there would have the server truncate whatever
        // it points to.
        let mut file = gosuv::files::options(0o644)
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
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
    let mut file = File::open(path).ok()?;
    // SAFETY: flock on a descriptor we own; a shared lock we get is dropped with the file.
    let free = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0;
    if free {
        return None;
    }
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Waits until no server holds the pidfile, up to `timeout`. Returns whether it is free.
pub fn wait_pidfile_free(path: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if running_pid(path).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Writes the commented default config.yml at `path` (mode 0600: it holds a password).
///
/// # Errors
/// The file cannot be created.
pub fn write_default_config(path: &Path) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        gosuv::files::create_dir_all(dir)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut f = gosuv::files::options(0o600)
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            Failure::new(format!(
                "cannot write the default config {}: {e}",
                path.display()
            ))
        })?;
    f.write_all(gosuv::config::DEFAULT_CONFIG_YML.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            Failure::new(format!(
                "cannot write the default config {}: {e}",
                path.display()
            ))
        })
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
    // A server that first stops what a crashed one left running answers only after that.
    let timeout = START_TIMEOUT + crate::server::recovery::pending_grace(&config.server.pidfile);
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let why = read_from(&log_path, log_start);
            return Err(Failure::new(format!(
                "the server did not start ({status}):\n{}",
                why.trim_end()
            )));
        }
        match client.json(hyper::Method::GET, "/api/status", None) {
            Ok(v) => {
                let listening: Vec<String> = v["listening"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                println!("server started, listening {}", listening.join(", "));
                return Ok(());
            }
            Err(ClientError::Unreachable { .. }) => {}
            Err(e) => {
                println!(
                    "server started (pid {}), but this client cannot use it: {e}",
                    child.id()
                );
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(Failure::new(format!(
                "the server (pid {}) did not answer at {} within {}s: check client.server_url in {} and {}",
                child.id(),
                client.url(),
                timeout.as_secs(),
                config_path.display(),
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
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
