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
//! When the next server adopts programs that still run, it takes their pipes back instead
//! of letting the holder drain them: it connects to the holder's socket (abstract,
//! `gosuv-holder-<pid>`; the holder answers only its own user, the server checks the
//! socket is the recorded holder's), sends `T`, and gets every pipe the holder still keeps,
//! then `E`; the holder exits. What the holder read it has written by then (one thread:
//! read, write, then the next event), and what it did not read is still in the pipe, so
//! each log file gets every byte once and in order.
//!
//! Protocol (a `SOCK_SEQPACKET` socket pair, one message per datagram): `A leader stream
//! max_bytes backups path` with the pipe's descriptor attached (`-` for no log file), and
//! `D leader` when a run has ended (its descriptors are closed). A take is answered with
//! the same `A` messages.

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
        timestamps: bool,
        fd: OwnedFd,
    },
    Del {
        leader: u32,
    },
    /// Answered once every message before it was sent.
    Sync(mpsc::Sender<()>),
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
        set_timeouts(&ours, &[libc::SO_SNDTIMEO], Duration::from_millis(200));
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

    /// Waits until the holder was sent every pipe shown so far (`limit` at most): before
    /// the server re-executes itself, so that no run is left without a reader.
    pub fn sync(&self, limit: Duration) -> bool {
        let (tx, rx) = mpsc::channel();
        self.send(Msg::Sync(tx));
        rx.recv_timeout(limit).is_ok()
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
                timestamps,
                fd,
            } => {
                let path = log.map_or_else(|| "-".to_string(), |p| p.display().to_string());
                let stream = stream_token(stream, timestamps);
                (
                    format!("A {leader} {stream} {max_bytes} {backups} {path}"),
                    Some(fd),
                )
            }
            Msg::Del { leader } => (format!("D {leader}"), None),
            Msg::Sync(done) => {
                let _ = done.send(());
                continue;
            }
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
                timestamps: p.timestamps,
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
pub struct Held {
    /// The pipe's read end.
    pub fd: OwnedFd,
    /// The log file, with its rotation (none with `log_disable`).
    pub file: Option<RotatingFile>,
    /// The log file's path and rotation, as told (`-` for none).
    told: String,
    /// Its lines are written with their time (`log_timestamps`).
    timestamps: bool,
}

/// The pipes a holder keeps, by the leader of their run and their stream.
pub type HeldPipes = HashMap<(u32, String), Held>;

/// The abstract socket name a holder takes requests on.
fn take_name(holder: u32) -> String {
    format!("gosuv-holder-{holder}")
}

/// The holder's listening socket (abstract: nothing on disk to plant or leave behind).
fn listen() -> Option<OwnedFd> {
    use nix::sys::socket::{bind, listen as listen_on, socket, Backlog, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let addr = UnixAddr::new_abstract(take_name(std::process::id()).as_bytes()).ok()?;
    bind(fd.as_raw_fd(), &addr).ok()?;
    listen_on(&fd, Backlog::new(4).ok()?).ok()?;
    Some(fd)
}

/// The uid and pid of a unix socket's peer.
fn peer(fd: &OwnedFd) -> Option<(u32, u32)> {
    let cred = nix::sys::socket::getsockopt(fd, nix::sys::socket::sockopt::PeerCredentials).ok()?;
    Some((cred.uid(), u32::try_from(cred.pid()).ok()?))
}

/// Answers one take request: every pipe held, then `E`. Returns whether it was answered
/// (then the holder exits: the pipes are the new server's).
fn answer_take(listener: &OwnedFd, held: &HeldPipes) -> bool {
    let Ok(raw) = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) else {
        return false;
    };
    // SAFETY: a new descriptor nobody else owns.
    let conn = unsafe { OwnedFd::from_raw_fd(raw) };
    // Only this holder's user (its server's): another local user gets nothing.
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if peer(&conn).is_none_or(|(uid, _)| uid != me) {
        return false;
    }
    set_timeouts(
        &conn,
        &[libc::SO_RCVTIMEO, libc::SO_SNDTIMEO],
        Duration::from_secs(5),
    );
    let mut buf = [0u8; 16];
    let got = {
        let mut iov = [IoSliceMut::new(&mut buf)];
        recvmsg::<()>(conn.as_raw_fd(), &mut iov, None, MsgFlags::empty()).map(|m| m.bytes)
    };
    if got != Ok(1) || buf[0] != b'T' {
        return false;
    }
    for ((leader, stream), h) in held {
        let text = format!(
            "A {leader} {} {}",
            stream_token(stream, h.timestamps),
            h.told
        );
        let iov = [std::io::IoSlice::new(text.as_bytes())];
        let fds = [h.fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        if sendmsg::<()>(conn.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None).is_err() {
            return false;
        }
    }
    let iov = [std::io::IoSlice::new(b"E")];
    sendmsg::<()>(conn.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None).is_ok()
}

/// Takes every pipe the last server's holder (recorded beside `pidfile`) still keeps; the
/// holder then exits. `None` when there is no such holder or it does not answer. The
/// holder must be draining (its server gone).
pub fn take_pipes(pidfile: &Path) -> Option<HeldPipes> {
    use nix::sys::socket::{connect, socket, UnixAddr};
    let (pid, _) = recorded_holder(pidfile)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let addr = UnixAddr::new_abstract(take_name(pid).as_bytes()).ok()?;
    // Every wait bounded, the connect's too (a backlog someone keeps full).
    set_timeouts(
        &fd,
        &[libc::SO_RCVTIMEO, libc::SO_SNDTIMEO],
        Duration::from_secs(5),
    );
    connect(fd.as_raw_fd(), &addr).ok()?;
    // The name is anyone's to take: the socket must be the recorded holder's, of this user.
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if peer(&fd).is_none_or(|(uid, p)| p != pid || uid != me) {
        tracing::warn!(
            pid,
            "the socket of the last server's holder is not the holder's: ignored"
        );
        return None;
    }
    let iov = [std::io::IoSlice::new(b"T")];
    sendmsg::<()>(fd.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None).ok()?;
    let mut held = HeldPipes::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        match receive(&fd, &mut buf) {
            Ok(Some((text, _))) if text == "E" => return Some(held),
            Ok(Some((text, fds))) => apply(&text, fds, &mut held),
            // Cut short: nothing is taken (the holder still has every pipe, and goes on
            // draining them; two readers of one pipe would reorder its lines).
            Ok(None) | Err(_) => {
                tracing::warn!(
                    "the last server's holder stopped answering after {} pipes: none taken",
                    held.len()
                );
                return None;
            }
        }
    }
}

/// One message and the descriptors it carries (close-on-exec); `None` at the end of the
/// stream. Retried on EINTR.
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> nix::Result<Option<(String, Vec<OwnedFd>)>> {
    loop {
        let mut iov = [IoSliceMut::new(buf)];
        let mut space = nix::cmsg_space!([RawFd; 4]);
        let msg = match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        if msg.bytes == 0 {
            return Ok(None);
        }
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
        return Ok(Some((String::from_utf8_lossy(&buf[..n]).into_owned(), fds)));
    }
}

/// A thread draining pipes handed over by the last server's holder.
pub struct Drainer {
    thread: std::thread::JoinHandle<()>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drainer {
    /// Waits until every pipe closed, `limit` at most; then the thread stops (what is still
    /// open is closed: a writer left gets SIGPIPE), so it never writes a log file that a
    /// new run of the same program writes too.
    pub fn finish_within(self, limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        while !self.thread.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if !self.thread.is_finished() {
            tracing::warn!(
                "output of stopped leftovers still open after {limit:?}: no longer read"
            );
        }
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

/// Drains `held` into their log files on a thread of its own until every pipe is closed
/// or it is told to stop (the runs of the last server being stopped, after the holder
/// handed them over).
pub fn drain_in_thread(held: HeldPipes) -> Option<Drainer> {
    if held.is_empty() {
        return None;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::Builder::new()
        .name("gosuv-leftover-logs".into())
        .spawn(move || drain(held, None, Some(&flag)))
        .ok()
        .map(|thread| Drainer { thread, stop })
}

/// The holder process (`gosuv __holder`): holds, then drains, then exits.
pub fn run() -> ! {
    // SAFETY: fd 3 was set up by the server for this process; nothing else owns it.
    let control = unsafe { OwnedFd::from_raw_fd(CONTROL_FD) };
    // Made first: a next server may ask for the pipes as soon as this one is gone.
    let listener = listen();
    let mut held = HeldPipes::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    // Until the server's end closes (it died, or re-executed itself).
    while let Ok(Some((text, fds))) = receive(&control, &mut buf) {
        apply(&text, fds, &mut held);
    }
    drain(held, listener.as_ref(), None);
    std::process::exit(0);
}

/// A stream as the holder protocol names it: `+ts` marks one whose lines get their time.
fn stream_token(stream: &str, timestamps: bool) -> String {
    if timestamps {
        format!("{stream}+ts")
    } else {
        stream.to_string()
    }
}

fn apply(text: &str, fds: Vec<OwnedFd>, held: &mut HeldPipes) {
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
            // `stdout+ts`: its lines are written with their time (a holder that does not
            // know the mark keeps it in the stream's name and writes them without).
            let (stream, timestamps) = match stream.strip_suffix("+ts") {
                Some(s) => (s, true),
                None => (stream, false),
            };
            let file = (path != "-").then(|| {
                RotatingFile::new(PathBuf::from(path), max, backups).timestamps(timestamps)
            });
            let told = format!("{max} {backups} {path}");
            held.insert(
                (leader, stream.to_string()),
                Held {
                    fd,
                    file,
                    told,
                    timestamps,
                },
            );
        }
        Some("D") => {
            if let Some(leader) = parts.next().and_then(|s| s.parse::<u32>().ok()) {
                held.retain(|(l, _), _| *l != leader);
            }
        }
        _ => {}
    }
}

/// The server is gone: every pipe is read to its end, into its log file, unless the next
/// server takes them first (a request on `listener`).
fn drain(
    mut held: HeldPipes,
    listener: Option<&OwnedFd>,
    stop: Option<&std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    // One epoll set: a wakeup costs what is ready, not the number of pipes (a poll over
    // 2,000 pipes for each line of 1,000 programs took a third of a core).
    // SAFETY: epoll_create1 takes flags and returns a new descriptor we own.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return;
    }
    // SAFETY: a new descriptor nobody else owns.
    let ep = unsafe { OwnedFd::from_raw_fd(ep) };
    const LISTENER: u64 = u64::MAX;
    let keys: Vec<(u32, String)> = held.keys().cloned().collect();
    let add = |fd: RawFd, token: u64| {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: token,
        };
        // SAFETY: epoll_ctl on descriptors we own, with an event we own.
        unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) }
    };
    for (i, k) in keys.iter().enumerate() {
        if let Some(h) = held.get(k) {
            if add(h.fd.as_raw_fd(), i as u64) < 0 {
                held.remove(k);
            }
        }
    }
    if let Some(l) = listener {
        add(l.as_raw_fd(), LISTENER);
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    // Told to stop: looked at between waits of at most 50 ms.
    let wait = if stop.is_some() { 50 } else { -1 };
    while !held.is_empty() {
        if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
            return;
        }
        // SAFETY: epoll_wait into a buffer we own, of its length.
        let n = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                wait,
            )
        };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for ev in &events[..n as usize] {
            let token = ev.u64;
            if token == LISTENER {
                // Everything read so far is written: the pipes can go to the next server.
                if let Some(l) = listener {
                    if answer_take(l, &held) {
                        return;
                    }
                }
                continue;
            }
            let Some(k) = keys.get(token as usize) else {
                continue;
            };
            let Some(h) = held.get_mut(k) else { continue };
            // SAFETY: read into a buffer we own, of its length, from a descriptor we own.
            let r = unsafe { libc::read(h.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if r > 0 {
                if let Some(f) = h.file.as_mut() {
                    let _ = f.write(&buf[..r as usize]);
                }
                continue;
            }
            let gone = r == 0
                || !matches!(
                    std::io::Error::last_os_error().kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
                );
            if gone {
                // Out of the set first: the pipe may live on in another process.
                // SAFETY: epoll_ctl on descriptors we own.
                unsafe {
                    libc::epoll_ctl(
                        ep.as_raw_fd(),
                        libc::EPOLL_CTL_DEL,
                        h.fd.as_raw_fd(),
                        std::ptr::null_mut(),
                    )
                };
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
    let holder = recorded_holder(pidfile);
    let _ = std::fs::remove_file(&path);
    let Some((pid, _)) = holder else {
        return;
    };
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

/// The holder recorded beside `pidfile`, if that very process (not a later one with its
/// number) still runs: its pid and start time.
fn recorded_holder(pidfile: &Path) -> Option<(u32, u64)> {
    let text = gosuv::files::read_trusted(&record_path(pidfile)).ok()?;
    let text = String::from_utf8_lossy(&text);
    let mut it = text.split_whitespace();
    let pid = it.next()?.parse::<u32>().ok()?;
    let start = it.next()?.parse::<u64>().ok()?;
    let same = gosuv::procfs::ProcStat::read(pid).is_some_and(|s| s.start_time == start);
    let is_holder = std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__holder"));
    (same && is_holder).then_some((pid, start))
}

/// Whether a holder of the last server is recorded beside `pidfile` and still runs.
pub fn has_holder(pidfile: &Path) -> bool {
    recorded_holder(pidfile).is_some()
}

/// Bounds the socket's waits (`SO_RCVTIMEO`, `SO_SNDTIMEO` in `opts`) to `limit`.
fn set_timeouts(fd: &OwnedFd, opts: &[i32], limit: Duration) {
    let tv = libc::timeval {
        tv_sec: limit.as_secs() as libc::time_t,
        tv_usec: limit.subsec_micros() as libc::suseconds_t,
    };
    for &opt in opts {
        // SAFETY: setsockopt on a descriptor we own, with a timeval of its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
    }
}
