//! Reaping what no program task reaps: orphans of programs, when gosuv is their subreaper, and
//! processes whose owner let go of them.
//!
//! A program's leader is watched and reaped through its pidfd by its process group (see
//! `process_group`), so its exit is seen whoever reaps it, and nothing here is needed for it.
//! Two things remain:
//!
//! - With [`enable_subreaper`] (the `gosuv` server; off by default for embedders), the
//!   orphans of programs are reparented to this process. A thread woken by SIGCHLD reaps
//!   those that are gosuv's to reap: processes of a session gosuv started, or of a cgroup it
//!   made, or anything but a program's leader when the whole process is gosuv's (the
//!   server, PID 1). A child the host started itself, in its own session or in a new one, is
//!   never touched. Spawns hold a lock across the fork that the thread takes before it reaps,
//!   so a new leader is registered before the thread can see its exit.
//! - Leaders and helper processes whose owner is gone (a supervisor dropped mid-stop, the
//!   guardian) are handed to [`reap_later`]: one thread polls their pidfds and reaps each as
//!   it ends, so no zombie is left behind. That thread is ended when no supervisor is left
//!   and it has nothing to wait for (see `process_wide`), and started again when needed.

use std::collections::BTreeSet;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};

/// What a [`Registry`] forgets after [`ENDING_GRACE`].
enum Ending {
    Session(u32),
    ExtraSession(u32),
    Cgroup(PathBuf),
}

/// How long the zombies of a session or cgroup that ended are still gosuv's to reap: the
/// processes killed with a run are zombies by then, unless stuck in the kernel.
const ENDING_GRACE: Duration = Duration::from_secs(2);

/// The sets are B-trees, not hash sets: a hash table is reached only through a pointer into
/// the middle of its memory, which valgrind reports as "possibly lost" at the host's exit.
#[derive(Default)]
struct Registry {
    /// Leaders still unreaped by their process group: never taken here.
    leaders: BTreeSet<u32>,
    /// Sessions gosuv started (a leader's pid) whose leader is unreaped.
    sessions: BTreeSet<u32>,
    /// Sessions that processes of running programs moved to.
    extra_sessions: BTreeSet<u32>,
    /// Cgroups gosuv made for its supervisors.
    cgroups: Vec<PathBuf>,
    /// Sessions and cgroups whose owner is done with them, forgotten by the thread
    /// [`ENDING_GRACE`] later, once it has reaped their zombies (an orphan killed with its
    /// run may not even be a zombie yet).
    ending: Vec<(std::time::Instant, Ending)>,
    /// Whether this whole process is gosuv's (the server): every zombie child that is no
    /// leader is an orphan of a program.
    reap_all: bool,
    subreaper: bool,
}

struct Reaper {
    /// Held shared by spawns across their fork and registration, exclusively while reaping.
    spawning: RwLock<()>,
    registry: Mutex<Registry>,
    /// Wakes the subreaper thread (SIGCHLD, a leader reaped by its group).
    wake: OnceLock<UnixStream>,
}

static REAPER: std::sync::LazyLock<Reaper> = std::sync::LazyLock::new(|| Reaper {
    spawning: RwLock::new(()),
    registry: Mutex::new(Registry::default()),
    wake: OnceLock::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REAPER.registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes this process a child subreaper, so that the orphans of supervised programs are
/// reparented here and reaped instead of becoming init's.
///
/// # Errors
/// The `prctl` call failed, or SIGCHLD cannot be watched.
pub fn enable_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes one integer argument and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The flag once the thread runs: what it defers needs the thread to be forgotten.
    start_thread()?;
    registry().subreaper = true;
    Ok(())
}

/// Declares that every child of this process that is not a program's leader is an orphan of
/// a program: what the `gosuv` server (which starts nothing else) and PID 1 do, so that a
/// daemon that left its program's session and cgroup is reaped too. Not for embedders.
pub fn reap_every_orphan() {
    registry().reap_all = true;
}

/// Held across a fork and the registration of the new leader.
pub(crate) fn spawning() -> RwLockReadGuard<'static, ()> {
    REAPER.spawning.read().unwrap_or_else(|p| p.into_inner())
}

/// A new leader (call with [`spawning`] held): its session is gosuv's, and the leader is its
/// process group's to reap.
pub(crate) fn register_leader(pid: u32) {
    let mut reg = registry();
    reg.leaders.insert(pid);
    reg.sessions.insert(pid);
}

/// Spawns a helper process that the caller waits for itself (its exit status is the
/// caller's): never reaped here, even in a process that reaps every orphan. Call
/// [`forget_helper`] once it was waited for.
///
/// # Errors
/// The spawn failed.
pub fn spawn_helper(cmd: &mut std::process::Command) -> std::io::Result<std::process::Child> {
    let _spawning = spawning();
    let child = cmd.spawn()?;
    registry().leaders.insert(child.id());
    Ok(child)
}

/// A helper of [`spawn_helper`] was waited for.
pub fn forget_helper(pid: u32) {
    registry().leaders.remove(&pid);
}

/// A session that processes of a run moved to (`setsid`): its zombies are gosuv's to reap
/// while the run lasts.
pub(crate) fn add_session(sid: u32) {
    registry().extra_sessions.insert(sid);
}

/// Forgets `what` now, or after [`ENDING_GRACE`] when this process is a subreaper that
/// reaps only what is gosuv's (its orphans may still come).
fn forget(reg: &mut Registry, what: Ending) {
    if reg.subreaper && !reg.reap_all {
        reg.ending.push((std::time::Instant::now(), what));
        return;
    }
    match what {
        Ending::Session(sid) => {
            reg.sessions.remove(&sid);
        }
        Ending::ExtraSession(sid) => {
            reg.extra_sessions.remove(&sid);
        }
        Ending::Cgroup(dir) => {
            if let Some(i) = reg.cgroups.iter().position(|d| *d == dir) {
                reg.cgroups.swap_remove(i);
            }
        }
    }
}

/// Forgets a session given by [`add_session`].
pub(crate) fn remove_session(sid: u32) {
    forget(&mut registry(), Ending::ExtraSession(sid));
}

/// Whether `pid` is a program's leader that its process group has not reaped yet.
pub(crate) fn is_leader(pid: u32) -> bool {
    registry().leaders.contains(&pid)
}

/// The leader's process group reaped it (or let go of it).
pub(crate) fn leader_gone(pid: u32) {
    let mut reg = registry();
    reg.leaders.remove(&pid);
    forget(&mut reg, Ending::Session(pid));
    let wake = reg.subreaper;
    drop(reg);
    if wake {
        // A zombie orphan may have waited behind this leader.
        poke();
    }
}

/// A cgroup gosuv made: the zombies in it are its to reap.
pub(crate) fn register_cgroup(dir: PathBuf) {
    registry().cgroups.push(dir);
}

/// Forgets a cgroup gosuv removed.
pub(crate) fn unregister_cgroup(dir: &std::path::Path) {
    forget(&mut registry(), Ending::Cgroup(dir.to_path_buf()));
}

/// Forgets the sessions and cgroups that ended [`ENDING_GRACE`] ago, after reaping every
/// zombie child that is still gosuv's through them; returns when to look again.
fn forget_ended() -> Option<Duration> {
    let now = std::time::Instant::now();
    let due = |t: &std::time::Instant| now.saturating_duration_since(*t) >= ENDING_GRACE;
    let next = |ending: &[(std::time::Instant, Ending)]| {
        ending
            .iter()
            .map(|(t, _)| (*t + ENDING_GRACE).saturating_duration_since(now))
            .min()
    };
    {
        let reg = registry();
        if !reg.ending.iter().any(|(t, _)| due(t)) {
            return next(&reg.ending);
        }
    }
    reap_found_in_proc();
    let mut reg = registry();
    let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut reg.ending)
        .into_iter()
        .partition(|(t, _)| due(t));
    reg.ending = kept;
    for (_, what) in gone {
        match what {
            // Not if its number is a new leader's meanwhile.
            Ending::Session(sid) if !reg.leaders.contains(&sid) => {
                reg.sessions.remove(&sid);
            }
            Ending::Session(_) => {}
            Ending::ExtraSession(sid) => {
                reg.extra_sessions.remove(&sid);
            }
            Ending::Cgroup(dir) => {
                if let Some(i) = reg.cgroups.iter().position(|d| *d == dir) {
                    reg.cgroups.swap_remove(i);
                }
            }
        }
    }
    next(&reg.ending)
}

fn poke() {
    if let Some(w) = REAPER.wake.get() {
        let _ = w.write_nonblocking();
    }
}

trait WriteNonblocking {
    fn write_nonblocking(self) -> std::io::Result<()>;
}

impl WriteNonblocking for &UnixStream {
    fn write_nonblocking(self) -> std::io::Result<()> {
        // SAFETY: a one-byte send on a socket we own; MSG_DONTWAIT so a full socket (the
        // thread has wake-ups queued already) never blocks.
        let rc = unsafe {
            libc::send(
                self.as_raw_fd(),
                b"!".as_ptr().cast(),
                1,
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

fn start_thread() -> std::io::Result<()> {
    if REAPER.wake.get().is_some() {
        return Ok(());
    }
    let (mut rx, tx) = UnixStream::pair()?;
    let sig_tx = tx.try_clone()?;
    if REAPER.wake.set(tx).is_err() {
        return Ok(()); // another thread started it meanwhile
    }
    signal_hook::low_level::pipe::register(libc::SIGCHLD, sig_tx)?;
    std::thread::Builder::new()
        .name("gosuv-reaper".into())
        .spawn(move || {
            let mut buf = [0u8; 64];
            let mut blocked_since = None;
            loop {
                let timeout = reap_orphans(&mut blocked_since);
                let timeout = match (timeout, forget_ended()) {
                    (Some(a), Some(b)) => Some(a.min(b).max(Duration::from_millis(1))),
                    (a, b) => a.or(b).map(|t| t.max(Duration::from_millis(1))),
                };
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
                        tracing::error!("the reaper's wake-up socket failed: {e}");
                        return;
                    }
                }
            }
        })?;
    Ok(())
}

/// What is known of a zombie child, read from `/proc` (which keeps a zombie's session and
/// cgroup).
struct ZombieInfo {
    session: Option<u32>,
    cgroup: Option<String>,
}

impl ZombieInfo {
    fn read(pid: u32) -> ZombieInfo {
        ZombieInfo {
            session: crate::procfs::ProcStat::read(pid).map(|s| s.session),
            cgroup: crate::procfs::cgroup_of(pid),
        }
    }
}

/// Whether gosuv may reap zombie child `pid`: anything but a leader when the whole process
/// is gosuv's (the server), else a process of a session gosuv started (or that a program's
/// process moved to) or of a cgroup it made. Never a child the host started itself.
fn is_ours(reg: &Registry, pid: u32, info: &ZombieInfo) -> bool {
    if reg.leaders.contains(&pid) {
        return false;
    }
    if reg.reap_all {
        return true;
    }
    if info
        .session
        .is_some_and(|s| reg.sessions.contains(&s) || reg.extra_sessions.contains(&s))
    {
        return true;
    }
    info.cgroup.as_deref().is_some_and(|cg| {
        reg.cgroups
            .iter()
            .any(|d| d.to_str().is_some_and(|d| cg_in(d, cg)))
    })
}

/// Whether the cgroup path `cg` (as `/proc/<pid>/cgroup` shows it) is `dir` or under it.
fn cg_in(dir: &str, cg: &str) -> bool {
    // `dir` is a mounted path (`/sys/fs/cgroup/.../gosuv-1-0`), `cg` the path inside the
    // hierarchy (`/.../gosuv-1-0/prog-web`): compare by the supervisor's own directory name.
    let Some(name) = dir.rsplit('/').next() else {
        return false;
    };
    cg.split('/').any(|seg| seg == name)
}

/// How long a zombie gosuv may not take (a leader its group reaps in a moment, or the host's
/// own child) may hide the others before they are looked for one by one.
const BLOCKED_GRACE: Duration = Duration::from_millis(100);

/// Reaps every zombie child that is gosuv's to reap; returns when to look again (`None`:
/// at the next SIGCHLD).
///
/// A peek (`waitid(P_ALL, WNOWAIT)`) shows only the first zombie. When that one may not be
/// taken, the others are found in `/proc` after [`BLOCKED_GRACE`], and reaped by pid.
fn reap_orphans(blocked_since: &mut Option<std::time::Instant>) -> Option<Duration> {
    let blocked = {
        let _no_spawn = REAPER.spawning.write().unwrap_or_else(|p| p.into_inner());
        loop {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
            let peeked = match waitid(Id::All, flags) {
                Ok(WaitStatus::StillAlive) | Err(_) => break false,
                Ok(status) => status,
            };
            let Some(pid) = peeked.pid() else {
                break false;
            };
            let raw = pid.as_raw() as u32;
            let info = ZombieInfo::read(raw);
            if !is_ours(&registry(), raw, &info) {
                break true;
            }
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(_) => tracing::debug!(pid = raw, "reaped an orphan of a supervised program"),
                Err(Errno::ECHILD) => {}
                Err(_) => break false,
            }
        }
    };
    if !blocked {
        *blocked_since = None;
        return None;
    }
    let since = *blocked_since.get_or_insert_with(std::time::Instant::now);
    if since.elapsed() >= BLOCKED_GRACE {
        reap_found_in_proc();
    }
    Some(BLOCKED_GRACE)
}

/// Finds this process's zombie children in `/proc` and reaps, one by one, those that are
/// gosuv's. The pass runs without the spawn lock; each reap takes it and looks again.
fn reap_found_in_proc() {
    let me = std::process::id();
    let Ok(procs) = crate::procfs::scan() else {
        return;
    };
    for p in procs.iter().filter(|p| p.ppid == me && p.is_zombie()) {
        let _no_spawn = REAPER.spawning.write().unwrap_or_else(|e| e.into_inner());
        // Read again under the lock: an unreaped zombie keeps its pid.
        if !crate::procfs::ProcStat::read(p.pid).is_some_and(|s| s.ppid == me && s.is_zombie()) {
            continue;
        }
        let info = ZombieInfo::read(p.pid);
        if is_ours(&registry(), p.pid, &info) {
            let _ = waitpid(
                nix::unistd::Pid::from_raw(p.pid as i32),
                Some(WaitPidFlag::WNOHANG),
            );
        }
    }
}

/// Processes nobody waits for any more, until they end and are reaped: handed to the
/// thread, which polls them.
struct Orphanage {
    /// Handed over and not yet taken by the thread (each: whether it is expected to end
    /// soon).
    pending: Vec<(OwnedFd, bool)>,
    /// Handed over and not yet reaped.
    waiting: usize,
    /// Of those, expected to end soon (the guardian told to end): only for these does the
    /// end of the thread wait.
    expected: usize,
    /// Wakes the thread.
    wake: UnixStream,
    /// The thread is to end once it waits for nothing.
    quit: bool,
    /// The thread has ended (it is joined by whoever sees this).
    ended: bool,
    thread: Option<std::thread::JoinHandle<()>>,
}

static ORPHANAGE: Mutex<Option<Orphanage>> = Mutex::new(None);

/// Signalled when the orphanage's thread ends or reaps a process expected to end.
static ORPHANAGE_CHANGED: std::sync::Condvar = std::sync::Condvar::new();

fn orphanage() -> MutexGuard<'static, Option<Orphanage>> {
    ORPHANAGE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reaps the process behind `pidfd` once it ends, on a thread of its own, so that a process
/// whose owner is gone is never left a zombie.
pub(crate) fn reap_later(pidfd: OwnedFd) {
    hand_over(pidfd, false);
}

/// As [`reap_later`], for a process told to end that is expected to exit at once (the
/// guardian): the end of the thread ([`end_orphanage`]) waits for it.
pub(crate) fn reap_expected(pidfd: OwnedFd) {
    hand_over(pidfd, true);
}

fn hand_over(pidfd: OwnedFd, expected: bool) {
    let mut o = orphanage();
    // What a thread that failed left is taken over by the next one.
    let mut left = Vec::new();
    if o.as_ref().is_some_and(|o| o.ended) {
        if let Some(old) = o.take() {
            left = old.pending;
            if let Some(h) = old.thread {
                // It has ended (said so as its last act): the join is at once.
                let _ = h.join();
            }
        }
    }
    if o.is_none() {
        let (rx, tx) = match UnixStream::pair() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("cannot start the orphan reaper: {e}");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("gosuv-orphans".into())
            .spawn(move || orphanage_loop(rx));
        match spawned {
            Ok(h) => {
                let expected = left.iter().filter(|(_, e)| *e).count();
                *o = Some(Orphanage {
                    waiting: left.len(),
                    expected,
                    pending: left,
                    wake: tx,
                    quit: false,
                    ended: false,
                    thread: Some(h),
                })
            }
            Err(e) => {
                tracing::error!("cannot start the orphan reaper: {e}");
                return;
            }
        }
    }
    if let Some(o) = o.as_mut() {
        o.pending.push((pidfd, expected));
        o.waiting += 1;
        o.expected += usize::from(expected);
        o.quit = false;
        let _ = (&o.wake).write_nonblocking();
    }
}

/// Ends the orphan reaper's thread once it waits for nothing, and joins it. It waits at
/// most `limit`, and only when everything the thread waits for is expected to end (the
/// guardian just told to): a process still running otherwise keeps the thread going
/// without delaying the caller. Past `limit`, the thread still ends once it has reaped what
/// it waits for. Called when no supervisor is left.
pub(crate) fn end_orphanage(limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    let mut o = orphanage();
    let Some(orph) = o.as_mut() else {
        return;
    };
    if orph.waiting > orph.expected {
        return;
    }
    orph.quit = true;
    let _ = (&orph.wake).write_nonblocking();
    loop {
        match o.as_mut() {
            Some(orph) if orph.ended => break,
            // Something not expected to end was handed over meanwhile.
            Some(orph) if orph.waiting > orph.expected || !orph.quit => {
                orph.quit = false;
                return;
            }
            Some(_) => {}
            None => return,
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            // Still told to end: it does once it has reaped them (joined by the next call).
            return;
        }
        o = ORPHANAGE_CHANGED
            .wait_timeout(o, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    let Some(orph) = o.take() else {
        return;
    };
    drop(o);
    if !orph.pending.is_empty() {
        // A thread that failed: its processes go to a new one.
        for (fd, expected) in orph.pending {
            hand_over(fd, expected);
        }
    }
    if let Some(h) = orph.thread {
        let _ = h.join();
    }
}

/// Takes the exit of the process behind `pidfd` if it has ended (never waits); ECHILD
/// (someone else reaped it) is fine.
pub(crate) fn reap_if_ended(pidfd: &OwnedFd) {
    // SAFETY: waitid on a pidfd we own, with a zeroed siginfo we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG,
        );
    }
}

fn orphanage_loop(mut wake: UnixStream) {
    let mut watched: Vec<(OwnedFd, bool)> = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        {
            let mut o = orphanage();
            if let Some(o) = o.as_mut() {
                watched.append(&mut o.pending);
                if o.quit && watched.is_empty() {
                    o.ended = true;
                    ORPHANAGE_CHANGED.notify_all();
                    return;
                }
            }
        }
        let mut fds: Vec<libc::pollfd> = std::iter::once(wake.as_raw_fd())
            .chain(watched.iter().map(|(fd, _)| fd.as_raw_fd()))
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll on descriptors we own, with the length of the vector.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            tracing::error!("the orphan reaper failed: {}", Errno::last());
            // The next handed-over process starts another thread, which takes these over.
            let mut o = orphanage();
            if let Some(o) = o.as_mut() {
                o.pending.append(&mut watched);
                o.ended = true;
            }
            ORPHANAGE_CHANGED.notify_all();
            return;
        }
        if fds[0].revents != 0 {
            let _ = wake.set_nonblocking(true);
            let _ = wake.read(&mut buf);
        }
        let ended: Vec<bool> = fds[1..].iter().map(|p| p.revents != 0).collect();
        let mut i = 0;
        let (mut reaped, mut reaped_expected) = (0, 0);
        watched.retain(|(fd, expected)| {
            let done = ended[i];
            i += 1;
            if done {
                reap_if_ended(fd);
                reaped += 1;
                reaped_expected += usize::from(*expected);
            }
            !done
        });
        if reaped > 0 {
            if let Some(o) = orphanage().as_mut() {
                o.waiting = o.waiting.saturating_sub(reaped);
                o.expected = o.expected.saturating_sub(reaped_expected);
            }
            ORPHANAGE_CHANGED.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cgroup_path_is_matched_by_the_supervisors_directory() {
        assert!(cg_in(
            "/sys/fs/cgroup/unified/gosuv-7-0",
            "/gosuv-7-0/prog-web"
        ));
        assert!(!cg_in(
            "/sys/fs/cgroup/unified/gosuv-7-0",
            "/gosuv-7-01/prog-web"
        ));
        assert!(!cg_in("/sys/fs/cgroup/unified/gosuv-7-0", "/user.slice"));
    }
}
