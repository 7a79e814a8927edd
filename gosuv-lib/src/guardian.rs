//! The guardian: a tiny watchdog process that stops every supervised program when the host
//! process dies, however it dies (`os._exit`, SIGKILL, a crash).
//!
//! It is `/bin/sh` running a short script in a session of its own, reading a socket whose
//! other end only this process holds (close-on-exec). gosuv tells it `+g PGID` when a
//! program run owned by its process group starts and `-g PGID` when it is gone, and
//! `+r DIR` for a supervisor's cgroup, under which every program owned by a cgroup runs.
//! When this process dies the kernel closes its end, the guardian reads end-of-file, sends
//! SIGTERM to every listed group and to every process of the cgroups, and a second later
//! SIGKILL to the groups and `cgroup.kill` to the cgroups. `PR_SET_PDEATHSIG` is not used
//! for this: it follows the *thread* that forked, and it would reach only the leader.
//!
//! The guardian is started with the first supervisor that wants it, so it runs before any
//! program does, and it is never ended while a supervisor lives. When no supervisor is
//! left and no program run is listed with it, it is ended (see `process_wide`): it is told
//! `q`, on which it exits at once without killing anything (end-of-file alone means the
//! host died), its socket is closed, and its thread is joined; the next supervisor that
//! wants one starts a new one. Telling it never blocks and never raises SIGPIPE: [`Guardian`] (a
//! [`GroupObserver`]) sends each line at once with a non-blocking `send(MSG_NOSIGNAL)`, so it
//! is in the socket before the program's spawn returns; only when the socket is full (a
//! guardian that does not read) are lines queued for a thread of its own that waits until it
//! can write. The queue holds at most one line per live group (a start and an end not yet
//! said cancel out).

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::process_group::{GroupInfo, GroupObserver};
use crate::process_wide::{Generation, Idle, SaysEnded, END_LIMIT};

/// One variable a group (`gosuv_pg_<pgid>`): adding and removing one is a hash-table
/// operation in the shell, whatever the number of groups (a list in one string made each
/// removal cost the length of the whole list, and a thousand programs' runs slowed the host's
/// machine). The shell starts with an empty environment, so every such variable is one gosuv
/// set; a group number is digits only, without a leading zero, and above 1 (`kill -- -1`
/// would signal every process, `-0` the guardian's own group). `q` (the last supervisor's
/// end; at end-of-file too, should its newline not have been sent) ends it without killing
/// anything. With no group listed and no program cgroup left under its roots it exits at
/// once, without the second's wait.
const SCRIPT: &str = r#"trap '' INT HUP TERM QUIT PIPE
roots=""
nl='
'
while IFS= read -r line; do
  case "$line" in
    q) exit 0 ;;
    "+g "*) pg=${line#+g }
            case "$pg" in ""|*[!0-9]*|0*|1) ;; *) eval "gosuv_pg_$pg=1" ;; esac ;;
    "-g "*) pg=${line#-g }
            case "$pg" in ""|*[!0-9]*|0*|1) ;; *) unset "gosuv_pg_$pg" ;; esac ;;
    "+r "*) roots="$roots${line#+r }$nl" ;;
  esac
done
[ "$line" = q ] && exit 0
groups=$(set | while IFS='=' read -r k v; do
  case "$k" in
    gosuv_pg_*) pg=${k#gosuv_pg_}
                case "$pg" in ""|*[!0-9]*|0*|1) ;; *) printf '%s ' "$pg" ;; esac ;;
  esac
done)
each_cgroup() {
  printf '%s' "$roots" | while IFS= read -r root; do
    for cg in "$root"/prog-*; do
      [ -d "$cg" ] && "$1" "$cg"
    done
  done
}
term_cgroup() {
  while IFS= read -r p; do kill -s TERM "$p" 2>/dev/null; done < "$1/cgroup.procs"
}
kill_cgroup() {
  echo 1 2>/dev/null > "$1/cgroup.kill" ||
    while IFS= read -r p; do kill -s KILL "$p" 2>/dev/null; done < "$1/cgroup.procs"
}
[ -n "$groups$(each_cgroup echo)" ] || exit 0
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
each_cgroup term_cgroup
sleep 1
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
each_cgroup kill_cgroup
"#;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    AddGroup(u32),
    RemoveGroup(u32),
    AddRoot(PathBuf),
    /// The end of a line the socket took only part of.
    Rest(String),
}

impl Line {
    fn text(&self) -> String {
        match self {
            Line::AddGroup(g) => format!("+g {g}\n"),
            Line::RemoveGroup(g) => format!("-g {g}\n"),
            Line::AddRoot(r) => format!("+r {}\n", r.display()),
            Line::Rest(t) => t.clone(),
        }
    }
}

#[derive(Default)]
struct Queue {
    /// Lines not sent yet, in order.
    lines: Vec<Line>,
    /// The thread is sending lines it took from here: new ones must wait behind them.
    sending: bool,
    /// Roots said already (each is said once).
    roots: Vec<PathBuf>,
    /// The guardian could not be started or is gone: nothing more is said.
    dead: bool,
    /// Program runs started and not yet ended: the guardian may end only with none.
    live: usize,
    /// The thread is to end (the guardian is being ended).
    quit: bool,
}

/// The process-wide guardian: its socket, what is still to be told, and the thread that
/// tells it when the socket is full.
struct Shared {
    socket: Option<OwnedFd>,
    queue: Mutex<Queue>,
    more: Condvar,
    /// The thread says here when it has ended.
    thread: Generation,
}

/// The running guardian, if any, its process and its thread.
struct Running {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    /// The guardian process, handed to the orphan reaper once told to end (not before: the
    /// reaper would then have a process to wait for that is not meant to end).
    pidfd: Option<OwnedFd>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Calls `f` with the running guardian, started if none runs. The guardian cannot be
/// ended meanwhile, so a run listed by `f` is never told to one that is ending.
fn with_guardian<T>(f: impl FnOnce(&Shared) -> T) -> T {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = running.as_ref() {
        return f(&r.shared);
    }
    let (socket, pidfd) = match start() {
        Ok((s, pidfd)) => (Some(s), pidfd),
        Err(e) => {
            tracing::error!("cannot start the guardian /bin/sh: {e}; programs will outlive this process if it dies");
            (None, None)
        }
    };
    let s = Arc::new(Shared {
        queue: Mutex::new(Queue {
            dead: socket.is_none(),
            ..Queue::default()
        }),
        socket,
        more: Condvar::new(),
        thread: Generation::default(),
    });
    let mut writer = None;
    if s.socket.is_some() {
        let thread = s.clone();
        let spawned = std::thread::Builder::new()
            .name("gosuv-guardian".into())
            .spawn(move || self::writer(&thread));
        match spawned {
            Ok(h) => writer = Some(h),
            Err(e) => {
                tracing::error!("cannot start the guardian's thread: {e}; a guardian that falls behind will not be told everything");
            }
        }
    }
    let result = f(&s);
    *running = Some(Running {
        shared: s,
        writer,
        pidfd,
    });
    result
}

/// Starts the process-wide guardian if it is not running yet (a supervisor with
/// `kill_on_parent_death` calls it when it is made, before any program starts).
pub(crate) fn ensure_started() {
    with_guardian(|_| ());
}

/// Ends the guardian if no supervisor is left (`idle`, checked under the lock that starting
/// one takes), no program run is listed with it and nothing is left to tell it: tells it `q`
/// (it exits without killing anything), closes its socket and joins its thread. Returns the
/// guardian process, for the orphan reaper to reap (it is exiting). A guardian whose socket
/// is full (it does not read) is left as it is: closing it would make it kill.
pub(crate) fn end_if_idle(idle: &Idle) -> Option<OwnedFd> {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let r = running.as_ref()?;
    if !idle.still() {
        return None;
    }
    {
        let mut q = r.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.live > 0 || !q.lines.is_empty() || q.sending {
            return None;
        }
        if let (Some(fd), false) = (&r.shared.socket, q.dead) {
            match send_now(fd, b"q\n") {
                // `q` alone ends it too, at end-of-file.
                Sent::All | Sent::Failed(_) => {}
                Sent::Part(n) if n > 0 => {}
                Sent::Part(_) => return None,
            }
        }
        q.quit = true;
    }
    r.shared.more.notify_all();
    let r = running.take()?;
    drop(running);
    if let Some(h) = r.writer {
        r.shared.thread.join_within(h, END_LIMIT);
    }
    // The last reference (unless the thread was left): the socket closes here.
    drop(r.shared);
    r.pidfd
}

/// How a non-blocking send went.
enum Sent {
    All,
    /// This many bytes went; the socket is full.
    Part(usize),
    Failed(std::io::Error),
}

/// Sends what the socket takes now, without ever raising SIGPIPE.
fn send_now(fd: &OwnedFd, text: &[u8]) -> Sent {
    let mut done = 0;
    while done < text.len() {
        // SAFETY: send from a buffer we own, of its length.
        let n = unsafe {
            libc::send(
                fd.as_raw_fd(),
                text[done..].as_ptr().cast(),
                text.len() - done,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.kind() {
                std::io::ErrorKind::Interrupted => continue,
                std::io::ErrorKind::WouldBlock => return Sent::Part(done),
                _ => return Sent::Failed(e),
            }
        }
        done += n as usize;
    }
    Sent::All
}

fn gone(q: &mut Queue, e: &std::io::Error) {
    if !q.dead {
        tracing::error!(
            "the guardian is gone ({e}): programs will outlive this process if it dies"
        );
    }
    q.dead = true;
    q.lines.clear();
}

impl Shared {
    #[cfg(test)]
    fn push(&self, line: Line) {
        let q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.dead {
            return;
        }
        self.say(q, line);
    }

    /// Says `line` (queued behind earlier lines, if any); `q` is the locked queue.
    fn say(&self, mut q: std::sync::MutexGuard<'_, Queue>, line: Line) {
        match &line {
            Line::RemoveGroup(g) => {
                // Not yet said that it started: say neither.
                if let Some(i) = q.lines.iter().position(|l| *l == Line::AddGroup(*g)) {
                    q.lines.remove(i);
                    return;
                }
            }
            Line::AddRoot(r) => {
                if q.roots.contains(r) {
                    return;
                }
                q.roots.push(r.clone());
            }
            Line::AddGroup(_) | Line::Rest(_) => {}
        }
        // At once, unless earlier lines still wait (order matters: `-g` after `+g`).
        if q.lines.is_empty() && !q.sending {
            if let Some(fd) = &self.socket {
                let text = line.text();
                match send_now(fd, text.as_bytes()) {
                    Sent::All => return,
                    Sent::Part(n) => {
                        q.lines.push(Line::Rest(text[n..].to_string()));
                        drop(q);
                        self.more.notify_one();
                        return;
                    }
                    Sent::Failed(e) => return gone(&mut q, &e),
                }
            }
        }
        q.lines.push(line);
        drop(q);
        self.more.notify_one();
    }
}

/// Starts the guardian process; returns the (non-blocking) socket to write to, and a pidfd
/// of the process if one could be opened.
fn start() -> std::io::Result<(OwnedFd, Option<OwnedFd>)> {
    let (ours, theirs) = UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let mut cmd = std::process::Command::new("/bin/sh");
    // Nothing of the host's environment but where `sleep` is: its variables could look like
    // the script's own.
    let mut path = std::env::var_os("PATH").unwrap_or_default();
    path.push(if path.is_empty() { "" } else { ":" });
    path.push("/usr/sbin:/usr/bin:/sbin:/bin");
    cmd.env_clear()
        .env("PATH", path)
        .arg("-c")
        .arg(SCRIPT)
        .arg("gosuv-guardian")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; it keeps terminal signals meant for the host
    // (Ctrl-C) away from the guardian.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    // Nobody waits for the guardian; whoever reaps it once it is ended (the orphan reaper,
    // or a host that reaps every child) just keeps it from staying a zombie.
    // SAFETY: pidfd_open on our own unreaped child; the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    // SAFETY: a new descriptor nobody else owns.
    let pidfd =
        (fd >= 0).then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) });
    tracing::debug!(pid = child.id(), "guardian started");
    Ok((OwnedFd::from(ours), pidfd))
}

/// Waits until the socket can take more (the guardian read some), or fails.
fn wait_writable(fd: &OwnedFd) {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: poll on one descriptor we own.
    unsafe { libc::poll(&mut p, 1, -1) };
}

/// The guardian's thread: says what is queued whenever the socket takes it.
fn writer(shared: &Shared) {
    let _says = SaysEnded(&shared.thread);
    let Some(fd) = shared.socket.as_ref() else {
        return;
    };
    loop {
        let lines = {
            let mut q = shared.queue.lock().unwrap_or_else(|p| p.into_inner());
            while q.lines.is_empty() {
                q.sending = false;
                if q.quit {
                    return;
                }
                q = shared.more.wait(q).unwrap_or_else(|p| p.into_inner());
            }
            q.sending = true;
            std::mem::take(&mut q.lines)
        };
        let text: String = lines.iter().map(Line::text).collect();
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            match send_now(fd, rest) {
                Sent::All => rest = &[],
                Sent::Part(n) => {
                    rest = &rest[n..];
                    wait_writable(fd);
                }
                Sent::Failed(e) => {
                    gone(
                        &mut shared.queue.lock().unwrap_or_else(|p| p.into_inner()),
                        &e,
                    );
                    return;
                }
            }
        }
    }
}

/// The guardian as a [`GroupObserver`]: every program run started is listed with it until
/// it is gone.
#[derive(Debug, Default)]
pub(crate) struct Guardian;

impl GroupObserver for Guardian {
    fn started(&self, group: &GroupInfo) {
        let line = match group.cgroup.as_ref().and_then(|c| c.parent()) {
            Some(root) => Line::AddRoot(root.to_path_buf()),
            None => Line::AddGroup(group.leader),
        };
        with_guardian(|s| s.started(line));
    }

    fn ended(&self, group: &GroupInfo) {
        let line = group
            .cgroup
            .is_none()
            .then_some(Line::RemoveGroup(group.leader));
        with_guardian(|s| s.ended(line));
    }
}

impl Shared {
    /// A program run started: it is listed until it ends (even with a dead guardian, so
    /// that the count stays right).
    fn started(&self, line: Line) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.live += 1;
        if !q.dead {
            self.say(q, line);
        }
    }

    /// A program run ended (`line`: what to tell the guardian, if anything).
    fn ended(&self, line: Option<Line>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.live = q.live.saturating_sub(1);
        if let Some(line) = line.filter(|_| !q.dead) {
            self.say(q, line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_and_an_end_not_yet_said_cancel_out() {
        // No socket: every line waits in the queue.
        let s = Shared {
            socket: None,
            queue: Mutex::new(Queue::default()),
            more: Condvar::new(),
            thread: Generation::default(),
        };
        s.push(Line::AddGroup(7));
        s.push(Line::AddRoot("/cg/gosuv-1-0".into()));
        s.push(Line::AddGroup(8));
        s.push(Line::RemoveGroup(7));
        s.push(Line::AddRoot("/cg/gosuv-1-0".into()));
        let q = s.queue.lock().unwrap();
        assert_eq!(
            q.lines,
            vec![Line::AddRoot("/cg/gosuv-1-0".into()), Line::AddGroup(8)]
        );
    }
}

#[cfg(test)]
mod ending {
    use super::*;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};

    /// A guardian told of a root whose `prog-a` lists `victim` (a plain directory: the
    /// script reads `cgroup.procs` and writes `cgroup.kill` as in a cgroup). `end` is what
    /// ends its input; returns the guardian's exit code and how long it took to exit.
    fn guardian_with_a_victim(victim: u32, end: &[u8]) -> (i32, Duration) {
        let root = tempfile::tempdir().expect("tempdir");
        let prog = root.path().join("prog-a");
        std::fs::create_dir(&prog).expect("prog-a");
        std::fs::write(prog.join("cgroup.procs"), format!("{victim}\n")).expect("procs");
        let (socket, pidfd) = start().expect("guardian");
        let pidfd = pidfd.expect("pidfd");
        let mut s = UnixStream::from(socket);
        s.set_nonblocking(false).expect("blocking");
        let said = format!("+r {}\n", root.path().display());
        s.write_all(said.as_bytes()).expect("+r");
        s.write_all(end).expect("end");
        let t = Instant::now();
        drop(s);
        let mut p = libc::pollfd {
            fd: pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one descriptor we own.
        let n = unsafe { libc::poll(&mut p, 1, 10_000) };
        assert_eq!(n, 1, "the guardian did not exit within 10 s");
        let took = t.elapsed();
        // SAFETY: waitid on a pidfd we own, into a zeroed siginfo we own.
        let code = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PIDFD,
                pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED,
            );
            assert_eq!(r, 0, "waitid on the guardian");
            info.si_status()
        };
        (code, took)
    }

    /// The end of the last supervisor (`q`) kills nothing, at once, even with a program
    /// cgroup left under a root it knows (a run cloned and not yet counted, or a leftover).
    #[test]
    fn told_q_the_guardian_exits_at_once_and_kills_nothing() {
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let (code, took) = guardian_with_a_victim(victim.id(), b"q\n");
        // Nothing else would have reached it: the guardian's kill comes a second later.
        let alive = victim.try_wait().expect("try_wait").is_none();
        let _ = victim.kill();
        let _ = victim.wait();
        assert_eq!(code, 0, "guardian's exit");
        assert!(alive, "the guardian told q killed a listed process");
        assert!(
            took < Duration::from_millis(900),
            "the guardian took {took:?} to exit"
        );
    }

    /// `q` without its newline (a send the socket took only part of) ends it cleanly too.
    #[test]
    fn a_q_cut_short_ends_it_cleanly_too() {
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let (code, _) = guardian_with_a_victim(victim.id(), b"q");
        let alive = victim.try_wait().expect("try_wait").is_none();
        let _ = victim.kill();
        let _ = victim.wait();
        assert_eq!(code, 0, "guardian's exit");
        assert!(alive, "the guardian killed a listed process after a bare q");
    }

    /// The control: end-of-file alone (the host died) kills what the roots hold.
    #[test]
    fn at_end_of_file_the_guardian_kills_what_its_roots_hold() {
        let mut victim = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let _ = guardian_with_a_victim(victim.id(), b"");
        let status = victim.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGTERM), "victim: {status:?}");
    }
}
