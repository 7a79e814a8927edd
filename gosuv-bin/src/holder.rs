//! The holder: a small process the server starts (`gosuv __holder`, in a session of its
//! own) that keeps a second read end of every program's output pipes.
//!
//! While the server lives, the holder only holds them: the server reads and logs as
//! always. When the server dies (`kill -9`, a crash, the OOM killer), its end of the control
//! socket closes, and the holder drains every pipe into the same log files with the same
//! rotation: the programs keep running and logging, and none dies of SIGPIPE at its next
//! write. The next server stops those programs gracefully (their output still drained
//! here), waits for the holder to write the last of it and exit, and only then starts
//! anything, so two writers never share a log file.
//!
//! Protocol (a `SOCK_SEQPACKET` socket pair, one message per datagram): `A leader stream
//! max_bytes backups path` with the pipe's descriptor attached (`-` for no log file), and
//! `D leader` when a run has ended (its descriptors are closed).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use gosuv::logs::RotatingFile;
use gosuv::{GroupInfo, GroupObserver, RunPipe};
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

/// The descriptor the holder finds its control socket at.
const CONTROL_FD: RawFd = 3;

/// The longest control message.
const MAX_MESSAGE: usize = 8192;

/// Where the server records its holder: `<pidfile>.holder`, `pid start_time`.
pub fn record_path(pidfile: &Path) -> PathBuf {
    let mut s = pidfile.as_os_str().to_owned();
    s.push(".holder");
    PathBuf::from(s)
}

enum Msg {
    Add {
        leader: u32,
        stream: &'static str,
        log: Option<PathBuf>,
        max_bytes: u64,
        backups: u32,
        fd: OwnedFd,
    },
    Del {
        leader: u32,
    },
}

/// The server's side: an observer that passes each run's pipes to the holder. Its calls
/// return at once; a thread of its own sends.
pub struct Keeper {
    tx: Mutex<mpsc::Sender<Msg>>,
}

impl Keeper {
    /// Starts the holder process and records it beside the pidfile.
    ///
    /// # Errors
    /// The socket, the process or the record could not be made.
    pub fn start(pidfile: &Path) -> Result<Arc<Keeper>, String> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| format!("cannot make the holder's socket: {e}"))?;
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find gosuv's own binary: {e}"))?;
        let mut cmd = std::process::Command::new(exe);
        // No stdio of the server's: a pipe the server's output goes to (foreground mode)
        // must close when the server dies.
        cmd.arg("__holder")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let theirs_raw = theirs.as_raw_fd();
        // SAFETY: between fork and exec only async-signal-safe calls: dup2 (which clears
        // close-on-exec on the copy) and setsid.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                if libc::dup2(theirs_raw, CONTROL_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::setsid();
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the holder: {e}"))?;
        drop(theirs);
        let pid = child.id();
        // Not waited for here: it outlives this server when this server dies; the reaper of
        // the server's orphans (it is its subreaper) or init reaps it.
        drop(child);
        let start = gosuv::procfs::ProcStat::read(pid).map_or(0, |s| s.start_time);
        gosuv::files::write_atomic(
            &record_path(pidfile),
            format!("{pid} {start}\n").as_bytes(),
            0o600,
            false,
        )
        .map_err(|e| format!("cannot record the holder: {e}"))?;
        // A send waits a little for room (a burst of starts fills the socket before the
        // holder reads), never long (a holder that stopped reading must not make
        // descriptors pile up here).
        let limit = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: setsockopt on a descriptor we own, with a timeval of its size.
        unsafe {
            libc::setsockopt(
                ours.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDTIMEO,
                (&limit as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        let (tx, rx) = mpsc::channel::<Msg>();
        std::thread::Builder::new()
            .name("gosuv-holder".into())
            .spawn(move || send_loop(ours, rx))
            .map_err(|e| format!("cannot start the holder's thread: {e}"))?;
        Ok(Arc::new(Keeper { tx: Mutex::new(tx) }))
    }

    fn send(&self, m: Msg) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(m);
    }
}

fn send_loop(sock: OwnedFd, rx: mpsc::Receiver<Msg>) {
    let mut gone = false;
    for m in rx {
        let (text, fd) = match m {
            Msg::Add {
                leader,
                stream,
                log,
                max_bytes,
                backups,
                fd,
            } => {
                let path = log.map_or_else(|| "-".to_string(), |p| p.display().to_string());
                (
                    format!("A {leader} {stream} {max_bytes} {backups} {path}"),
                    Some(fd),
                )
            }
            Msg::Del { leader } => (format!("D {leader}"), None),
        };
        let iov = [std::io::IoSlice::new(text.as_bytes())];
        let raw = fd.as_ref().map(|f| [f.as_raw_fd()]);
        let cmsg: Vec<ControlMessage<'_>> = raw
            .as_ref()
            .map(|r| vec![ControlMessage::ScmRights(r)])
            .unwrap_or_default();
        // Waits at most SO_SNDTIMEO: what cannot be sent by then is dropped (that run is
        // then not kept by the holder), and said, each time.
        let sent = sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None);
        match sent {
            Ok(_) => {}
            Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => {
                if !gone {
                    gone = true;
                    tracing::error!("the holder is gone: programs die of SIGPIPE if this server dies before its next start");
                }
            }
            Err(e) => tracing::warn!("the holder did not take a message ({e}): {text}"),
        }
        // Our copy of the descriptor closes here: the holder has its own.
    }
}

impl GroupObserver for Keeper {
    fn started(&self, _group: &GroupInfo) {}

    fn ended(&self, group: &GroupInfo) {
        self.send(Msg::Del {
            leader: group.leader,
        });
    }

    fn pipes(&self, group: &GroupInfo, pipes: &[RunPipe<'_>]) {
        for p in pipes {
            let Ok(fd) = p.fd.try_clone_to_owned() else {
                continue;
            };
            self.send(Msg::Add {
                leader: group.leader,
                stream: p.stream.as_str(),
                log: p.log.clone(),
                max_bytes: p.max_bytes,
                backups: p.backups,
                fd,
            });
        }
    }
}

/// Observers the server gives the supervisor, told in turn.
pub struct Observers(pub Vec<Arc<dyn GroupObserver>>);

impl GroupObserver for Observers {
    fn started(&self, group: &GroupInfo) {
        for o in &self.0 {
            o.started(group);
        }
    }
    fn ended(&self, group: &GroupInfo) {
        for o in &self.0 {
            o.ended(group);
        }
    }
    fn pipes(&self, group: &GroupInfo, pipes: &[RunPipe<'_>]) {
        for o in &self.0 {
            o.pipes(group, pipes);
        }
    }
}

/// One pipe the holder keeps.
struct Held {
    fd: OwnedFd,
    file: Option<RotatingFile>,
}

/// The holder process (`gosuv __holder`): holds, then drains, then exits.
pub fn run() -> ! {
    // SAFETY: fd 3 was set up by the server for this process; nothing else owns it.
    let control = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    let mut held: HashMap<(u32, String), Held> = HashMap::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let r = recvmsg::<()>(
            control.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        );
        let msg = match r {
            Ok(m) if m.bytes == 0 => break,
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        };
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for c in cmsgs {
                if let ControlMessageOwned::ScmRights(r) = c {
                    // SAFETY: descriptors the kernel just installed in this process.
                    fds.extend(r.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
                }
            }
        }
        let n = msg.bytes;
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        apply(&text, fds, &mut held);
    }
    drain(held);
    std::process::exit(0);
}

fn apply(text: &str, fds: Vec<OwnedFd>, held: &mut HashMap<(u32, String), Held>) {
    let mut parts = text.splitn(6, ' ');
    match parts.next() {
        Some("A") => {
            let (Some(leader), Some(stream), Some(max), Some(backups), Some(path)) = (
                parts.next().and_then(|s| s.parse::<u32>().ok()),
                parts.next(),
                parts.next().and_then(|s| s.parse::<u64>().ok()),
                parts.next().and_then(|s| s.parse::<u32>().ok()),
                parts.next(),
            ) else {
                return;
            };
            let Some(fd) = fds.into_iter().next() else {
                return;
            };
            let file = (path != "-").then(|| RotatingFile::new(PathBuf::from(path), max, backups));
            held.insert((leader, stream.to_string()), Held { fd, file });
        }
        Some("D") => {
            if let Some(leader) = parts.next().and_then(|s| s.parse::<u32>().ok()) {
                held.retain(|(l, _), _| *l != leader);
            }
        }
        _ => {}
    }
}

/// The server is gone: every pipe is read to its end, into its log file.
fn drain(mut held: HashMap<(u32, String), Held>) {
    let mut buf = vec![0u8; 64 * 1024];
    while !held.is_empty() {
        let keys: Vec<(u32, String)> = held.keys().cloned().collect();
        let mut polls: Vec<libc::pollfd> = keys
            .iter()
            .filter_map(|k| held.get(k))
            .map(|h| libc::pollfd {
                fd: h.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on descriptors we own, with an array of their count.
        let r = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, -1) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        for (k, p) in keys.iter().zip(&polls) {
            if p.revents == 0 {
                continue;
            }
            let Some(h) = held.get_mut(k) else { continue };
            // SAFETY: read into a buffer we own, of its length, from a descriptor we own.
            let n = unsafe { libc::read(h.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                if let Some(f) = h.file.as_mut() {
                    let _ = f.write(&buf[..n as usize]);
                }
            } else if n == 0
                || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                held.remove(k);
            }
        }
    }
}

/// Waits, after the leftovers of a dead server were stopped, for that server's holder to
/// write the last of their output and exit (at most `limit`; then it is killed, and what it
/// still held is lost). Nothing to do when there was no holder, or it is gone.
pub fn wait_old_holder(pidfile: &Path, limit: Duration) {
    let path = record_path(pidfile);
    let Ok(text) = gosuv::files::read_trusted(&path) else {
        return;
    };
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8_lossy(&text);
    let mut it = text.split_whitespace();
    let (Some(pid), Some(start)) = (
        it.next().and_then(|s| s.parse::<u32>().ok()),
        it.next().and_then(|s| s.parse::<u64>().ok()),
    ) else {
        return;
    };
    // The same process (not a later one with its number), and a holder.
    let same = gosuv::procfs::ProcStat::read(pid).is_some_and(|s| s.start_time == start);
    let is_holder = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__holder"));
    if !same || !is_holder {
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: a new descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    if !crate::daemon::wait_pidfd(fd.as_fd(), limit) {
        tracing::warn!(pid, "the last server's holder still held output after {limit:?}: killed (what it held is lost)");
        // SAFETY: pidfd_send_signal on a descriptor we own, with no siginfo.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd.as_raw_fd(),
                libc::SIGKILL,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }
}
