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
//! program does. When no supervisor is left and no program run is listed with it, it is
//! ended (see `process_wide`): its socket is closed, so it exits at once with nothing to
//! kill, and its thread is joined; the next supervisor that wants one starts a new one. Telling it never blocks and never raises SIGPIPE: [`Guardian`] (a
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

/// One variable a group (`gosuv_pg_<pgid>`): adding and removing one is a hash-table
/// operation in the shell, whatever the number of groups (a list in one string made each
/// removal cost the length of the whole list, and a thousand programs' runs slowed the host's
/// machine). The shell starts with an empty environment, so every such variable is one gosuv
/// set; a group number is digits only, without a leading zero, and above 1 (`kill -- -1`
/// would signal every process, `-0` the guardian's own group). With no group listed and no
/// program cgroup left under its roots (the socket closed by the last supervisor's end) it
/// exits at once, without the second's wait.
const SCRIPT: &str = r#"trap '' INT HUP TERM QUIT PIPE
roots=""
nl='
'
while IFS= read -r line; do
  case "$line" in
    "+g "*) pg=${line#+g }
            case "$pg" in ""|*[!0-9]*|0*|1) ;; *) eval "gosuv_pg_$pg=1" ;; esac ;;
    "-g "*) pg=${line#-g }
            case "$pg" in ""|*[!0-9]*|0*|1) ;; *) unset "gosuv_pg_$pg" ;; esac ;;
    "+r "*) roots="$roots${line#+r }$nl" ;;
  esac
done
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
}

/// The running guardian, if any, and its thread.
struct Running {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

/// Calls `f` with the running guardian, started if none runs. The guardian cannot be
/// ended meanwhile, so a run listed by `f` is never told to one that is ending.
fn with_guardian<T>(f: impl FnOnce(&Shared) -> T) -> T {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = running.as_ref() {
        return f(&r.shared);
    }
    let socket = match start() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!("cannot start the guardian /bin/sh: {e}; programs will outlive this process if it dies");
            None
        }
    };
    let s = Arc::new(Shared {
        queue: Mutex::new(Queue {
            dead: socket.is_none(),
            ..Queue::default()
        }),
        socket,
        more: Condvar::new(),
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
    *running = Some(Running { shared: s, writer });
    result
}

/// Starts the process-wide guardian if it is not running yet (a supervisor with
/// `kill_on_parent_death` calls it when it is made, before any program starts).
pub(crate) fn ensure_started() {
    with_guardian(|_| ());
}

/// Ends the guardian if no program run is listed with it and nothing is left to tell it:
/// closes its socket (it then exits at once, with nothing to kill; the orphan reaper reaps
/// it) and joins its thread. Called when no supervisor is left.
pub(crate) fn end_if_idle() {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    let Some(r) = running.as_ref() else {
        return;
    };
    {
        let mut q = r.shared.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.live > 0 || !q.lines.is_empty() || q.sending {
            return;
        }
        q.quit = true;
    }
    r.shared.more.notify_all();
    let Some(r) = running.take() else {
        return;
    };
    drop(running);
    if let Some(h) = r.writer {
        let _ = h.join();
    }
    // The last reference: the socket closes here.
    drop(r.shared);
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

/// Starts the guardian process; returns the (non-blocking) socket to write to.
fn start() -> std::io::Result<OwnedFd> {
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
    // Nobody waits for the guardian; whoever reaps it (this process's reaper of last resort,
    // or a host that reaps every child) just keeps it from staying a zombie.
    // SAFETY: pidfd_open on our own unreaped child; the result is a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
    if fd >= 0 {
        // SAFETY: a new descriptor nobody else owns.
        crate::reaper::reap_later(unsafe {
            <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32)
        });
    }
    tracing::debug!(pid = child.id(), "guardian started");
    Ok(OwnedFd::from(ours))
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
