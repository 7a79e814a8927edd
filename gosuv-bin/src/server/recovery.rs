//! Crash recovery without duplicates.
//!
//! While the server runs, it keeps the process groups of its programs in a small file beside
//! the pidfile (`<pidfile>.groups`, JSON), rewritten atomically (temporary file + rename)
//! whenever the set changes. A clean shutdown removes it. When `start-server` takes the
//! pidfile's lock and finds the file still listing groups, the previous server died
//! uncleanly (`kill -9`, a crash, the OOM killer) and those groups may still run: each one
//! that is provably a leftover of ours is stopped (its `stop_signal`, SIGKILL after its
//! `stop_timeout`) before any program starts, so two copies of a service never run at once.
//!
//! A group is ours when its leader is alive and started at the recorded time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot), so a recycled pid is never signalled. A group
//! whose leader is gone but whose members live is ours when every member is in the group's
//! session and started no earlier than the recorded leader: the kernel does not reuse a pid
//! while a process group of that number exists. A file written before a reboot (another
//! `boot_id`) is ignored: nothing of that boot survived.
//!
//! The file is not fsync'ed: it only matters while the kernel that ran those groups is up,
//! and a crashed process's writes are in the page cache, which survives it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gosuv::{EventNotice, Supervisor};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// The longest a leftover group is given to stop gracefully, whatever its `stop_timeout`.
pub const MAX_GRACE: Duration = Duration::from_secs(60);

/// How long SIGKILLed leftovers are waited for before the server goes on anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How often the recorder looks again at groups whose leader is gone but members remain.
const RECHECK: Duration = Duration::from_secs(1);

/// One process group the server had.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct GroupRecord {
    /// The process group id (= the leader's pid: every program leads its own session).
    pub pgid: u32,
    /// The program it belongs to.
    pub program: String,
    /// The leader's start time, in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_time: u64,
    /// The signal that stops it gracefully.
    pub stop_signal: i32,
    /// Seconds before SIGKILL.
    pub stop_timeout: u64,
}

/// The contents of the groups file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupsFile {
    /// `/proc/sys/kernel/random/boot_id` when it was written.
    pub boot_id: String,
    /// The server that wrote it.
    pub server_pid: u32,
    /// Its programs' process groups.
    pub groups: Vec<GroupRecord>,
}

/// The groups file that belongs to a pidfile: `<pidfile>.groups`.
pub fn groups_path(pidfile: &Path) -> PathBuf {
    let mut s = pidfile.as_os_str().to_owned();
    s.push(".groups");
    PathBuf::from(s)
}

/// This boot's id (empty when it cannot be read).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Writes `file` to `path` atomically: a temporary file beside it (mode 0600), then rename.
///
/// # Errors
/// The temporary file cannot be written or renamed.
pub fn write_groups(path: &Path, file: &GroupsFile) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gosuv.groups".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let body = serde_json::to_vec(file).map_err(std::io::Error::other)?;
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&body))
        .and_then(|()| std::fs::rename(&tmp, path));
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// Reads a groups file; `None` when it is missing or unreadable (a torn file cannot exist:
/// it is only ever replaced by rename).
pub fn read_groups(path: &Path) -> Option<GroupsFile> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("ignoring {}: not a groups file ({e})", path.display());
            None
        }
    }
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z`, ...).
    pub state: char,
    /// The parent's pid.
    pub ppid: i32,
    /// The process group.
    pub pgrp: i32,
    /// The session.
    pub session: i32,
    /// Start time in clock ticks since boot.
    pub start_time: u64,
}

impl ProcStat {
    /// Parses the text of `/proc/<pid>/stat`. The command name may hold spaces and
    /// parentheses, so fields are counted from the last `)`.
    pub fn parse(text: &str) -> Option<ProcStat> {
        let (_, rest) = text.rsplit_once(')')?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] is field 3 (state), so field N is f[N - 3].
        Some(ProcStat {
            state: f.first()?.chars().next()?,
            ppid: f.get(1)?.parse().ok()?,
            pgrp: f.get(2)?.parse().ok()?,
            session: f.get(3)?.parse().ok()?,
            start_time: f.get(19)?.parse().ok()?,
        })
    }

    /// Reads `/proc/<pid>/stat`.
    pub fn read(pid: i32) -> Option<ProcStat> {
        Self::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Whether the process has exited (a zombie waiting to be reaped runs nothing).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Every live (non-zombie) process, by pid.
fn live_processes() -> BTreeMap<i32, ProcStat> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if let Some(st) = ProcStat::read(pid).filter(|s| !s.is_zombie()) {
            out.insert(pid, st);
        }
    }
    out
}

/// Whether the live processes of `record`'s group prove it is the recorded one.
/// `members` are the live processes whose process group is `record.pgid`.
pub fn is_our_group(record: &GroupRecord, members: &[(i32, ProcStat)]) -> bool {
    if members.is_empty() {
        return false;
    }
    let pgid = record.pgid as i32;
    match members.iter().find(|(pid, _)| *pid == pgid) {
        Some((_, leader)) => leader.start_time == record.start_time,
        None => members
            .iter()
            .all(|(_, m)| m.session == pgid && m.start_time >= record.start_time),
    }
}

/// What [`stop_leftovers`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Groups the file listed.
    pub listed: usize,
    /// Leftover groups found running and stopped.
    pub stopped: Vec<GroupRecord>,
    /// Of those, the ones that needed SIGKILL.
    pub killed: usize,
    /// Listed groups whose number now belongs to someone else (left alone).
    pub foreign: usize,
    /// Groups still running after SIGKILL and five more seconds (should never happen).
    pub survivors: usize,
}

/// How long a background start should wait for a server that first stops what the groups
/// file of `pidfile` lists.
pub fn pending_grace(pidfile: &Path) -> Duration {
    let Some(file) = read_groups(&groups_path(pidfile)) else {
        return Duration::ZERO;
    };
    if file.boot_id != boot_id() {
        return Duration::ZERO;
    }
    file.groups
        .iter()
        .map(|g| Duration::from_secs(g.stop_timeout).min(MAX_GRACE))
        .max()
        .map_or(Duration::ZERO, |d| d + KILL_WAIT)
}

fn members_by_group(procs: &BTreeMap<i32, ProcStat>) -> BTreeMap<i32, Vec<(i32, ProcStat)>> {
    let mut by: BTreeMap<i32, Vec<(i32, ProcStat)>> = BTreeMap::new();
    for (pid, st) in procs {
        by.entry(st.pgrp).or_default().push((*pid, *st));
    }
    by
}

fn killpg(pgid: u32, sig: i32) {
    // SAFETY: kill(2) on a negative pid signals a process group; no memory is touched.
    unsafe { libc::kill(-(pgid as i32), sig) };
}

/// Stops the leftover groups that the groups file beside `pidfile` lists, if the server
/// that wrote it died uncleanly on this boot; then removes the file. Call it with the
/// pidfile's lock held, before any program starts.
pub fn stop_leftovers(pidfile: &Path) -> Recovery {
    let path = groups_path(pidfile);
    let mut out = Recovery::default();
    let Some(file) = read_groups(&path) else {
        let _ = std::fs::remove_file(&path);
        return out;
    };
    out.listed = file.groups.len();
    if file.groups.is_empty() {
        let _ = std::fs::remove_file(&path);
        return out;
    }
    if file.boot_id != boot_id() {
        tracing::info!(
            "{} was written before a reboot: its {} process groups are long gone",
            path.display(),
            file.groups.len()
        );
        let _ = std::fs::remove_file(&path);
        return out;
    }
    tracing::warn!(
        "the previous server (pid {}) did not shut down cleanly: looking for the {} process groups it left",
        file.server_pid,
        file.groups.len()
    );
    let procs = live_processes();
    let by_group = members_by_group(&procs);
    let mut pending: Vec<(GroupRecord, Instant)> = Vec::new();
    let now = Instant::now();
    for g in file.groups {
        let members = by_group
            .get(&(g.pgid as i32))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        if members.is_empty() {
            continue;
        }
        if !is_our_group(&g, members) {
            tracing::info!(
                pgid = g.pgid,
                program = %g.program,
                "process group {} now belongs to another process: left alone",
                g.pgid
            );
            out.foreign += 1;
            continue;
        }
        tracing::warn!(
            pgid = g.pgid,
            program = %g.program,
            "stopping a leftover process group of {} ({} processes)",
            g.program,
            members.len()
        );
        killpg(g.pgid, g.stop_signal);
        killpg(g.pgid, libc::SIGCONT);
        let grace = Duration::from_secs(g.stop_timeout).min(MAX_GRACE);
        pending.push((g, now + grace));
    }
    let mut killed_at: BTreeMap<u32, Instant> = BTreeMap::new();
    while !pending.is_empty() {
        std::thread::sleep(Duration::from_millis(20));
        let by_group = members_by_group(&live_processes());
        let now = Instant::now();
        pending.retain(|(g, deadline)| {
            let alive = by_group
                .get(&(g.pgid as i32))
                .is_some_and(|m| is_our_group(g, m));
            if !alive {
                out.stopped.push(g.clone());
                return false;
            }
            match killed_at.get(&g.pgid) {
                None if now >= *deadline => {
                    tracing::warn!(
                        pgid = g.pgid,
                        program = %g.program,
                        "the leftover group of {} outlived its stop_timeout: SIGKILL",
                        g.program
                    );
                    killpg(g.pgid, libc::SIGKILL);
                    killed_at.insert(g.pgid, now);
                    out.killed += 1;
                    true
                }
                Some(at) if now.duration_since(*at) >= KILL_WAIT => {
                    tracing::error!(
                        pgid = g.pgid,
                        program = %g.program,
                        "the leftover group of {} survived SIGKILL; going on",
                        g.program
                    );
                    out.survivors += 1;
                    false
                }
                _ => true,
            }
        });
    }
    if !out.stopped.is_empty() {
        tracing::warn!(
            "stopped {} leftover process groups of the previous server ({} needed SIGKILL)",
            out.stopped.len(),
            out.killed
        );
    }
    let _ = std::fs::remove_file(&path);
    out
}

/// Keeps the groups file of a running server up to date: one task, woken by every state
/// change (bursts coalesced) and once a second while a group outlives its leader.
#[derive(Debug)]
pub struct GroupRecorder {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl GroupRecorder {
    /// Starts recording `sup`'s groups into the groups file of `pidfile`.
    pub fn start(sup: Supervisor, pidfile: &Path) -> GroupRecorder {
        let path = groups_path(pidfile);
        let stop = CancellationToken::new();
        let task = tokio::spawn(record(sup, path.clone(), stop.clone()));
        GroupRecorder { stop, task, path }
    }

    /// After a clean shutdown (every program stopped): stops recording and removes the file.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The groups of a running server, kept up to date from its events.
struct Tracker {
    sup: Supervisor,
    own_pid: i32,
    groups: BTreeMap<u32, GroupRecord>,
    /// Groups whose program left its process behind (a leader gone, its group dying):
    /// looked at again every [`RECHECK`] until they are empty.
    lingering: std::collections::BTreeSet<u32>,
}

/// Whether a process group has any process left (zombies included).
fn group_exists(pgid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks that the group has a process.
    unsafe { libc::kill(-(pgid as i32), 0) == 0 }
}

impl Tracker {
    /// Records `pid` as `program`'s group if it is one: a child of this server that leads
    /// its own group. (An event may name the last pid of a program whose spawn failed; that
    /// number may belong to anyone by now and must never be recorded.) Returns whether it
    /// was added.
    fn add(&mut self, program: &str, pid: u32) -> bool {
        if self.groups.contains_key(&pid) {
            return false;
        }
        let Some(stat) = ProcStat::read(pid as i32) else {
            return false;
        };
        if stat.ppid != self.own_pid || stat.pgrp != pid as i32 || stat.is_zombie() {
            return false;
        }
        let (stop_signal, stop_timeout) =
            self.sup.config(program).map_or((libc::SIGTERM, 10), |c| {
                (c.stop_signal.0 as i32, c.stop_timeout)
            });
        self.groups.insert(
            pid,
            GroupRecord {
                pgid: pid,
                program: program.to_string(),
                start_time: stat.start_time,
                stop_signal,
                stop_timeout,
            },
        );
        true
    }

    /// Forgets the groups (of `program`, or all) that have no process left; the others are
    /// marked lingering. Returns whether any was forgotten.
    fn prune(&mut self, program: Option<&str>) -> bool {
        let before = self.groups.len();
        let lingering = &mut self.lingering;
        self.groups.retain(|pgid, g| {
            if program.is_some_and(|p| p != g.program) {
                return true;
            }
            let exists = group_exists(*pgid);
            if exists {
                lingering.insert(*pgid);
            } else {
                lingering.remove(pgid);
            }
            exists
        });
        self.groups.len() != before
    }

    /// Looks again at the lingering groups. Returns whether any was forgotten.
    fn prune_lingering(&mut self) -> bool {
        let gone: Vec<u32> = self
            .lingering
            .iter()
            .copied()
            .filter(|pgid| !group_exists(*pgid))
            .collect();
        for pgid in &gone {
            self.lingering.remove(pgid);
            self.groups.remove(pgid);
        }
        !gone.is_empty()
    }

    /// Rebuilds the set from every program's status (after missed events).
    fn resync(&mut self) -> bool {
        let mut changed = self.prune(None);
        for s in self.sup.list() {
            if let Some(pid) = s.pid {
                changed |= self.add(&s.name, pid);
            }
        }
        changed
    }

    /// Applies one state change. Returns (a group was added, a group was forgotten).
    fn apply(&mut self, ev: &gosuv::Event) -> (bool, bool) {
        use gosuv::ProgramState as S;
        match (ev.to, ev.pid) {
            (S::Starting | S::Running | S::Stopping, Some(pid)) => {
                (self.add(&ev.program, pid), false)
            }
            (S::Stopped | S::Exited | S::Backoff | S::Fatal, _) => {
                (false, self.prune(Some(&ev.program)))
            }
            _ => (false, false),
        }
    }

    fn file(&self, boot_id: &str) -> GroupsFile {
        GroupsFile {
            boot_id: boot_id.to_string(),
            server_pid: self.own_pid as u32,
            groups: self.groups.values().cloned().collect(),
        }
    }
}

/// How long a write that only forgets groups may wait to be merged with the next one: a
/// forgotten group left in the file costs nothing (recovery skips a group that is gone, and
/// one whose number was reused does not match its start time), a new one must be on disk
/// at once.
const FORGET_DELAY: Duration = Duration::from_secs(1);

async fn record(sup: Supervisor, path: PathBuf, stop: CancellationToken) {
    use futures_util::FutureExt;
    let mut events = sup.subscribe();
    let boot_id = boot_id();
    let mut tracker = Tracker {
        sup,
        own_pid: std::process::id() as i32,
        groups: BTreeMap::new(),
        lingering: Default::default(),
    };
    tracker.resync();
    let mut pending = true;
    let mut forget_due: Option<tokio::time::Instant> = None;
    let mut write_failed = false;
    loop {
        if pending || forget_due.is_some_and(|d| tokio::time::Instant::now() >= d) {
            let file = tracker.file(&boot_id);
            let p = path.clone();
            match tokio::task::spawn_blocking(move || write_groups(&p, &file)).await {
                Ok(Ok(())) => {
                    if write_failed {
                        tracing::info!("{} is written again", path.display());
                    }
                    write_failed = false;
                    pending = false;
                    forget_due = None;
                }
                Ok(Err(e)) => {
                    if !write_failed {
                        tracing::error!(
                            "cannot write {}: {e}; a crash now could leave programs running twice",
                            path.display()
                        );
                    }
                    write_failed = true;
                }
                Err(_) => return,
            }
        }
        let recheck = write_failed || !tracker.lingering.is_empty();
        let forget_at = forget_due.unwrap_or_else(|| tokio::time::Instant::now() + RECHECK);
        tokio::select! {
            () = stop.cancelled() => return,
            ev = events.recv() => {
                let mut next = ev;
                // A burst of changes is applied, then written once.
                loop {
                    match next {
                        None => return,
                        Some(EventNotice::Changed(e)) => {
                            let (added, forgot) = tracker.apply(&e);
                            pending |= added;
                            if forgot && forget_due.is_none() {
                                forget_due = Some(tokio::time::Instant::now() + FORGET_DELAY);
                            }
                        }
                        Some(EventNotice::Missed(_)) => pending |= tracker.resync(),
                    }
                    match events.recv().now_or_never() {
                        Some(n) => next = n,
                        None => break,
                    }
                }
            }
            () = tokio::time::sleep_until(forget_at), if forget_due.is_some() => {}
            () = tokio::time::sleep(RECHECK), if recheck => {
                if tracker.prune_lingering() && forget_due.is_none() {
                    forget_due = Some(tokio::time::Instant::now());
                }
                pending |= write_failed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pgrp: i32, session: i32, start: u64) -> ProcStat {
        ProcStat {
            state: 'S',
            ppid: 1,
            pgrp,
            session,
            start_time: start,
        }
    }

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 1 0 0 0 3 4 0 0 20 0 1 0 987654 1 2 3";
        let st = ProcStat::parse(text).unwrap();
        assert_eq!(st, stat(4242, 4242, 987654));
        assert!(ProcStat::parse("12 (x) Z 1 2").is_none());
        let me = ProcStat::read(std::process::id() as i32).unwrap();
        assert!(!me.is_zombie());
    }

    #[test]
    fn only_the_recorded_group_is_ours() {
        let g = GroupRecord {
            pgid: 100,
            program: "web".into(),
            start_time: 5000,
            stop_signal: libc::SIGTERM,
            stop_timeout: 10,
        };
        // The leader is alive and started when recorded.
        assert!(is_our_group(
            &g,
            &[(100, stat(100, 100, 5000)), (101, stat(100, 100, 5100))]
        ));
        // A recycled pid: same number, later start.
        assert!(!is_our_group(&g, &[(100, stat(100, 100, 9000))]));
        // The leader is gone; its children carry on in its session.
        assert!(is_our_group(&g, &[(105, stat(100, 100, 5200))]));
        // Members from another session, or older than the leader: not ours.
        assert!(!is_our_group(&g, &[(105, stat(100, 7, 5200))]));
        assert!(!is_our_group(&g, &[(105, stat(100, 100, 10))]));
        assert!(!is_our_group(&g, &[]));
    }

    #[test]
    fn the_file_round_trips_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join(".gosuv.pid");
        let path = groups_path(&pidfile);
        assert_eq!(path, dir.path().join(".gosuv.pid.groups"));
        let file = GroupsFile {
            boot_id: boot_id(),
            server_pid: 1,
            groups: vec![GroupRecord {
                pgid: 7,
                program: "a".into(),
                start_time: 1,
                stop_signal: 15,
                stop_timeout: 3,
            }],
        };
        write_groups(&path, &file).unwrap();
        assert_eq!(read_groups(&path), Some(file));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(pending_grace(&pidfile), Duration::from_secs(3) + KILL_WAIT);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
