//! Crash recovery without duplicates.
//!
//! While the server runs, it keeps the runs of its programs in a small file beside the
//! pidfile (`<pidfile>.groups`, JSON), rewritten atomically (temporary file + rename)
//! whenever the set changes. The core tells it of each run's start and end
//! ([`gosuv::GroupObserver`]), with the leader's start time and, for a program owned by a
//! cgroup, the cgroup. A clean shutdown removes the file. When `start-server` takes the
//! pidfile's lock and finds the file still listing runs, the previous server died uncleanly
//! (`kill -9`, a crash, the OOM killer) and those runs may still go on: each one that is
//! provably a leftover of ours is stopped (its `stop_signal`, SIGKILL after its
//! `stop_timeout`) before any program starts, so two copies of a service never run at once.
//!
//! A run owned by a cgroup is stopped whole, whatever its processes did (`setsid`, double
//! forks): every process in the recorded cgroup gets the signal, then `cgroup.kill`. A cgroup
//! is gosuv's when its directory is one gosuv makes (`gosuv-<pid>-<n>/prog-<name>`) and is
//! owned by this server's user.
//!
//! A run owned by its process group is ours when its leader is alive and started at the
//! recorded time (field 22 of `/proc/<pid>/stat`, clock ticks since boot), so a recycled pid
//! is never signalled. A group whose leader is gone but whose members live is ours when
//! every member is in the group's session and started no earlier than the recorded leader:
//! the kernel does not reuse a pid while a process group of that number exists. A file
//! written before a reboot (another `boot_id`) is ignored: nothing of that boot survived.
//!
//! The file is not fsync'ed: it only matters while the kernel that ran those groups is up,
//! and a crashed process's writes are in the page cache, which survives it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gosuv::procfs::ProcStat;
use gosuv::{GroupInfo, GroupObserver};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The longest a leftover group is given to stop gracefully, whatever its `stop_timeout`.
pub const MAX_GRACE: Duration = Duration::from_secs(60);

/// How long SIGKILLed leftovers are waited for before the server goes on anyway.
const KILL_WAIT: Duration = Duration::from_secs(5);

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
    /// The program's cgroup, when the run was owned by one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<PathBuf>,
    /// The fingerprint of the config it was started with (0: never adopted, as a probe's).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fingerprint: u64,
    /// The program's restarts when it started.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub restarts: u64,
    /// When it started, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub started_ms: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl GroupRecord {
    /// The record of a run the core reports.
    pub fn of(group: &GroupInfo) -> GroupRecord {
        GroupRecord {
            pgid: group.leader,
            program: group.program.clone(),
            start_time: group.start_time,
            stop_signal: group.stop_signal,
            stop_timeout: group.stop_timeout.as_secs(),
            cgroup: group.cgroup.clone(),
            fingerprint: group.fingerprint,
            restarts: group.restarts,
            started_ms: group
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// When it started.
    pub fn started_at(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + Duration::from_millis(self.started_ms)
    }
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
    /// On disk only: the directory the records' cgroups are relative to (every program of the
    /// server has its cgroup in the same one), so each record stays short: the file is
    /// rewritten at every start of a program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_root: Option<PathBuf>,
}

impl GroupsFile {
    /// The records' cgroups as full paths again.
    fn expand(mut self) -> GroupsFile {
        if let Some(root) = self.cgroup_root.take() {
            for g in &mut self.groups {
                if let Some(c) = g.cgroup.take() {
                    // An absolute path stays as it is.
                    g.cgroup = Some(root.join(c));
                }
            }
        }
        self
    }
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
    write_bytes(
        path,
        &to_disk(&file.boot_id, file.server_pid, &file.groups)?,
    )
}

/// One record as it is written: its cgroup relative to the file's `cgroup_root`.
#[derive(Serialize)]
struct DiskRecord<'a> {
    pgid: u32,
    program: &'a str,
    start_time: u64,
    stop_signal: i32,
    stop_timeout: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    cgroup: Option<&'a Path>,
    #[serde(skip_serializing_if = "is_zero")]
    fingerprint: u64,
    #[serde(skip_serializing_if = "is_zero")]
    restarts: u64,
    #[serde(skip_serializing_if = "is_zero")]
    started_ms: u64,
}

/// The file's text, with every record's cgroup relative to one root (every program of a
/// server has its cgroup in the same directory), so each record stays short.
fn to_disk<'a>(
    boot_id: &str,
    server_pid: u32,
    groups: impl IntoIterator<Item = &'a GroupRecord> + Clone,
) -> std::io::Result<Vec<u8>> {
    let root = groups
        .clone()
        .into_iter()
        .find_map(|g| g.cgroup.as_deref()?.parent());
    let records = groups
        .into_iter()
        .map(|g| disk_record(g, root))
        .collect::<std::io::Result<Vec<_>>>()?;
    assemble(boot_id, server_pid, root, records.iter().map(|r| &**r))
}

/// One record's text, its cgroup relative to `root` when it is under it. Kept for as long
/// as the run lasts: no spare capacity (the encoder's buffer doubles as it grows).
fn disk_record(g: &GroupRecord, root: Option<&Path>) -> std::io::Result<Box<[u8]>> {
    serde_json::to_vec(&DiskRecord {
        pgid: g.pgid,
        program: &g.program,
        start_time: g.start_time,
        stop_signal: g.stop_signal,
        stop_timeout: g.stop_timeout,
        cgroup: g
            .cgroup
            .as_deref()
            .map(|c| root.and_then(|r| c.strip_prefix(r).ok()).unwrap_or(c)),
        fingerprint: g.fingerprint,
        restarts: g.restarts,
        started_ms: g.started_ms,
    })
    .map(Vec::into_boxed_slice)
    .map_err(std::io::Error::other)
}

/// The file's text from records already made by `disk_record` against `root`: the server
/// keeps each record's text from its start, so a rewrite at every start of a program copies
/// bytes instead of encoding every record again.
fn assemble<'a>(
    boot_id: &str,
    server_pid: u32,
    root: Option<&Path>,
    records: impl IntoIterator<Item = &'a [u8]>,
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"boot_id\":");
    out.extend_from_slice(&serde_json::to_vec(boot_id).map_err(std::io::Error::other)?);
    out.extend_from_slice(format!(",\"server_pid\":{server_pid}").as_bytes());
    if let Some(root) = root {
        out.extend_from_slice(b",\"cgroup_root\":");
        out.extend_from_slice(&serde_json::to_vec(root).map_err(std::io::Error::other)?);
    }
    out.extend_from_slice(b",\"groups\":[");
    for (i, r) in records.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(r);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Writes `body` to `path` atomically: a temporary file beside it (mode 0600, made
/// exclusively), then rename. Not synced to disk: it matters only after a crash of the
/// server on the same boot, and it is written at every start of a program.
fn write_bytes(path: &Path, body: &[u8]) -> std::io::Result<()> {
    gosuv::files::write_atomic(path, body, 0o600, false)
}

/// Reads a groups file; `None` when it is missing or unreadable (a torn file cannot exist:
/// it is only ever replaced by rename).
pub fn read_groups(path: &Path) -> Option<GroupsFile> {
    if !path.exists() {
        return None;
    }
    // Only what this server's user wrote: a file another user planted could name any of
    // this user's processes for it to kill. (Checked on the open file: no swap between.)
    let text = match gosuv::files::read_trusted(path) {
        Ok(t) => t,
        Err(why) => {
            tracing::warn!("{why}: the groups file is not trusted, and ignored");
            return None;
        }
    };
    match serde_json::from_slice::<GroupsFile>(&text) {
        Ok(f) => Some(f.expand()),
        Err(e) => {
            tracing::warn!("ignoring {}: not a groups file ({e})", path.display());
            None
        }
    }
}

/// Every live (non-zombie) process, by pid; `None` when `/proc` cannot be read.
fn live_processes() -> Option<BTreeMap<u32, ProcStat>> {
    match gosuv::procfs::scan() {
        Ok(procs) => Some(
            procs
                .into_iter()
                .filter(|s| !s.is_zombie())
                .map(|s| (s.pid, s))
                .collect(),
        ),
        Err(e) => {
            tracing::error!("cannot read /proc to find leftovers: {e}");
            None
        }
    }
}

/// Whether the live processes of `record`'s group prove it is the recorded one.
/// `members` are the live processes whose process group is `record.pgid`.
pub fn is_our_group(record: &GroupRecord, members: &[(u32, ProcStat)]) -> bool {
    if members.is_empty() {
        return false;
    }
    let pgid = record.pgid;
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
    // Unrecorded runs in the dead server's cgroups get the default grace.
    let unrecorded = (!gosuv::populated_leftovers(file.server_pid).is_empty())
        .then_some(Duration::from_secs(UNRECORDED_GRACE));
    file.groups
        .iter()
        .map(|g| Duration::from_secs(g.stop_timeout).min(MAX_GRACE))
        .chain(unrecorded)
        .max()
        .map_or(Duration::ZERO, |d| d + KILL_WAIT)
}

/// The `stop_timeout` given to a run found in a dead server's cgroup but not in its file.
const UNRECORDED_GRACE: u64 = 10;

fn members_by_group(procs: &BTreeMap<u32, ProcStat>) -> BTreeMap<u32, Vec<(u32, ProcStat)>> {
    let mut by: BTreeMap<u32, Vec<(u32, ProcStat)>> = BTreeMap::new();
    for (pid, st) in procs {
        by.entry(st.pgrp).or_default().push((*pid, *st));
    }
    by
}

fn killpg(pgid: u32, sig: i32) {
    // Never group 0 (this process's own) or 1, nor a number kill(2) would read otherwise.
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid < 2 {
        return;
    }
    // SAFETY: kill(2) on a negative pid signals a process group; no memory is touched.
    unsafe { libc::kill(-pgid, sig) };
}

/// A recorded cgroup that gosuv made: `.../gosuv-<pid>-<n>/prog-<name>`, owned by this user
/// and not writable by others. Anything else is never signalled.
fn our_cgroup(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("prog-"))
        && path
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("gosuv-"));
    let owned = std::fs::symlink_metadata(path).is_ok_and(|m| {
        // SAFETY: geteuid has no arguments and cannot fail.
        m.is_dir() && m.uid() == unsafe { libc::geteuid() } && m.mode() & 0o022 == 0
    });
    named && owned
}

/// The processes in a cgroup now (none when it is gone).
fn cgroup_pids(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

fn signal_cgroup(path: &Path, sig: i32) {
    for pid in cgroup_pids(path) {
        // SAFETY: kill(2) only sends a signal.
        unsafe { libc::kill(pid as i32, sig) };
    }
}

fn kill_cgroup(path: &Path) {
    if std::fs::write(path.join("cgroup.kill"), "1").is_err() {
        signal_cgroup(path, libc::SIGKILL);
    }
}

/// Whether a recorded run still has live processes that are provably ours. A group whose
/// leader is gone must also carry the program's name in every member's environment
/// (`GOSUV_PROGRAM`), so that a stranger's daemon that got the number is left alone.
fn run_alive(g: &GroupRecord, by_group: &BTreeMap<u32, Vec<(u32, ProcStat)>>) -> bool {
    match &g.cgroup {
        Some(cg) => our_cgroup(cg) && !cgroup_pids(cg).is_empty(),
        None => by_group.get(&g.pgid).is_some_and(|members| {
            let leader_alive = members.iter().any(|(pid, _)| *pid == g.pgid);
            is_our_group(g, members)
                && (leader_alive
                    || members.iter().all(|(pid, _)| {
                        gosuv::procfs::environ_has(*pid, gosuv::PROGRAM_VAR, &g.program)
                    }))
        }),
    }
}

fn signal_run(g: &GroupRecord, sig: i32) {
    match &g.cgroup {
        Some(cg) => signal_cgroup(cg, sig),
        None => killpg(g.pgid, sig),
    }
}

/// What the groups file beside `pidfile` lists that still runs: the runs the next server
/// may take over (the program is in `programs` with the config the run was started with,
/// same fingerprint; the leader still runs and started at the recorded time, on this boot,
/// in a cgroup of gosuv's when it had one; one run a program at most, the latest), and the
/// programs left running with another config (stopped as leftovers, they are to run again
/// with the new one, as a reload restarts a changed program, `start_auto` or not).
pub fn runs_left(
    pidfile: &Path,
    programs: &[gosuv::ProgramConfig],
) -> (Vec<GroupRecord>, Vec<String>) {
    let Some(file) = read_groups(&groups_path(pidfile)) else {
        return (Vec::new(), Vec::new());
    };
    if file.boot_id != boot_id() {
        return (Vec::new(), Vec::new());
    }
    let mut changed = Vec::new();
    let wanted: BTreeMap<&str, u64> = programs
        .iter()
        .map(|p| (p.name.as_str(), p.fingerprint()))
        .collect();
    let mut best: BTreeMap<String, GroupRecord> = BTreeMap::new();
    for g in file.groups {
        let Some(fingerprint) = wanted.get(g.program.as_str()) else {
            continue;
        };
        if g.fingerprint == 0 {
            continue;
        }
        let alive = ProcStat::read(g.pgid)
            .is_some_and(|s| s.start_time == g.start_time && !s.is_zombie() && s.pgrp == g.pgid);
        let cgroup_ok = g.cgroup.as_deref().is_none_or(our_cgroup);
        if !alive || !cgroup_ok {
            continue;
        }
        if *fingerprint != g.fingerprint {
            changed.push(g.program.clone());
            continue;
        }
        match best.get(&g.program) {
            Some(b) if b.started_ms >= g.started_ms => {}
            _ => {
                best.insert(g.program.clone(), g);
            }
        }
    }
    (best.into_values().collect(), changed)
}

/// Stops the leftover runs that the groups file beside `pidfile` lists, if the server
/// that wrote it died uncleanly on this boot, except the runs whose leader is in `keep`
/// (taken over by this server); then removes the file (kept when some runs are: the new
/// server's record replaces it). Call it with the pidfile's lock held, before any program
/// starts.
pub fn stop_leftovers(pidfile: &Path, keep: &[u32]) -> Recovery {
    let path = groups_path(pidfile);
    let mut out = Recovery::default();
    let Some(mut file) = read_groups(&path) else {
        let _ = std::fs::remove_file(&path);
        return out;
    };
    let kept: Vec<PathBuf> = file
        .groups
        .iter()
        .filter(|g| keep.contains(&g.pgid))
        .filter_map(|g| g.cgroup.clone())
        .collect();
    file.groups.retain(|g| !keep.contains(&g.pgid));
    let remove_file = |path: &Path| {
        if keep.is_empty() {
            let _ = std::fs::remove_file(path);
        }
    };
    out.listed = file.groups.len();
    if file.groups.is_empty() {
        remove_file(&path);
        return out;
    }
    if file.boot_id != boot_id() {
        tracing::info!(
            "{} was written before a reboot: its {} process groups are long gone",
            path.display(),
            file.groups.len()
        );
        remove_file(&path);
        return out;
    }
    tracing::warn!(
        "the previous server (pid {}) did not shut down cleanly: looking for the {} process groups it left",
        file.server_pid,
        file.groups.len()
    );
    let Some(procs) = live_processes() else {
        remove_file(&path);
        return out;
    };
    let by_group = members_by_group(&procs);
    // Each leftover, its grace's end, and when it was SIGKILLed.
    let mut pending: Vec<(GroupRecord, Instant, Option<Instant>)> = Vec::new();
    let now = Instant::now();
    // Runs in cgroups of the dead server that the file did not record yet (it is written a
    // moment after each start): stopped too, with TERM and the default grace.
    let recorded: Vec<PathBuf> = file
        .groups
        .iter()
        .filter_map(|g| g.cgroup.clone())
        .collect();
    let mut groups = file.groups;
    for cg in gosuv::populated_leftovers(file.server_pid) {
        if recorded.contains(&cg) || kept.contains(&cg) || !our_cgroup(&cg) {
            continue;
        }
        let program = cg
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("prog-"))
            .unwrap_or_default()
            .to_string();
        groups.push(GroupRecord {
            pgid: 0,
            program,
            start_time: 0,
            stop_signal: libc::SIGTERM,
            stop_timeout: UNRECORDED_GRACE,
            cgroup: Some(cg),
            fingerprint: 0,
            restarts: 0,
            started_ms: 0,
        });
    }
    out.listed = groups.len();
    for g in groups {
        let exists = match &g.cgroup {
            Some(cg) => !cgroup_pids(cg).is_empty(),
            None => by_group.get(&g.pgid).is_some_and(|m| !m.is_empty()),
        };
        if !exists {
            continue;
        }
        if !run_alive(&g, &by_group) {
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
            "stopping a leftover process group of {}{}",
            g.program,
            g.cgroup
                .as_ref()
                .map(|c| format!(" (cgroup {})", c.display()))
                .unwrap_or_default()
        );
        signal_run(&g, g.stop_signal);
        signal_run(&g, libc::SIGCONT);
        let grace = Duration::from_secs(g.stop_timeout).min(MAX_GRACE);
        pending.push((g, now + grace, None));
    }
    while !pending.is_empty() {
        std::thread::sleep(Duration::from_millis(20));
        // A pass that fails proves nothing is gone: look again.
        let Some(procs) = live_processes() else {
            continue;
        };
        let by_group = members_by_group(&procs);
        let now = Instant::now();
        pending.retain_mut(|(g, deadline, killed_at)| {
            if !run_alive(g, &by_group) {
                out.stopped.push(g.clone());
                return false;
            }
            match killed_at {
                None if now >= *deadline => {
                    tracing::warn!(
                        pgid = g.pgid,
                        program = %g.program,
                        "the leftover group of {} outlived its stop_timeout: SIGKILL",
                        g.program
                    );
                    match &g.cgroup {
                        Some(cg) => kill_cgroup(cg),
                        None => killpg(g.pgid, libc::SIGKILL),
                    }
                    *killed_at = Some(now);
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
    // The emptied cgroups go (the next supervisor sweeps their parents).
    for g in &out.stopped {
        if let Some(cg) = g.cgroup.as_ref().filter(|cg| our_cgroup(cg)) {
            let _ = std::fs::remove_dir(cg);
        }
    }
    remove_file(&path);
    out
}

/// What the core tells the recorder.
enum Change {
    Started(GroupRecord),
    Ended(u32),
}

/// The core's observer of runs: hands each start and end to the recorder's task, at once.
struct Observer(mpsc::UnboundedSender<Change>);

impl GroupObserver for Observer {
    fn started(&self, group: &GroupInfo) {
        let _ = self.0.send(Change::Started(GroupRecord::of(group)));
    }

    fn ended(&self, group: &GroupInfo) {
        let _ = self.0.send(Change::Ended(group.leader));
    }
}

/// Keeps the groups file of a running server up to date: one task, fed by the core's
/// observer (bursts coalesced into one write).
#[derive(Debug)]
pub struct GroupRecorder {
    task: tokio::task::JoinHandle<()>,
    stop: tokio_util::sync::CancellationToken,
    path: PathBuf,
}

impl GroupRecorder {
    /// Starts recording into the groups file of `pidfile`, with the runs `initial` (taken
    /// over from the last server); returns the recorder and the observer to give the
    /// supervisor (`SupervisorOptions::observer`).
    pub fn start(
        pidfile: &Path,
        initial: &[GroupRecord],
    ) -> (GroupRecorder, Arc<dyn GroupObserver>) {
        let path = groups_path(pidfile);
        let (tx, rx) = mpsc::unbounded_channel();
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(record(rx, path.clone(), stop.clone(), initial.to_vec()));
        (GroupRecorder { task, stop, path }, Arc::new(Observer(tx)))
    }

    /// Before the server re-executes itself (every program let go of, still running):
    /// writes what is not written yet and stops, leaving the file for the new image.
    pub async fn keep(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// After a clean shutdown (every program stopped): stops recording and removes the file.
    pub async fn finish(self) {
        self.stop.cancel();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
    }
}

/// How long a write that only forgets groups may wait to be merged with the next one: a
/// forgotten group left in the file costs nothing (recovery skips a group that is gone, and
/// one whose number was reused does not match its start time), a new one must be on disk
/// at once.
const FORGET_DELAY: Duration = Duration::from_secs(1);

async fn record(
    mut changes: mpsc::UnboundedReceiver<Change>,
    path: PathBuf,
    stop: tokio_util::sync::CancellationToken,
    initial: Vec<GroupRecord>,
) {
    let boot_id = boot_id();
    let server_pid = std::process::id();
    // Each record's text, made once when its group starts (a rewrite copies these).
    let mut groups: BTreeMap<u32, Box<[u8]>> = BTreeMap::new();
    // The directory of the programs' cgroups (one per server): set by the first record that
    // has a cgroup, the records' cgroups are written relative to it.
    let mut root: Option<PathBuf> = None;
    // Runs taken over from the last server are in the first write, before they are told
    // again as they are adopted: never a moment when the file does not list them.
    for g in initial {
        if root.is_none() {
            root = g
                .cgroup
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf);
        }
        if let Ok(text) = disk_record(&g, root.as_deref()) {
            groups.insert(g.pgid, text);
        }
    }
    let mut pending = true;
    let mut forget_due: Option<tokio::time::Instant> = None;
    let mut write_failed = false;
    loop {
        if pending || forget_due.is_some_and(|d| tokio::time::Instant::now() >= d) {
            // Made here from the records' texts; written on a blocking thread.
            let body = assemble(
                &boot_id,
                server_pid,
                root.as_deref(),
                groups.values().map(|r| &**r),
            );
            let written = match body {
                Ok(body) => {
                    let p = path.clone();
                    tokio::task::spawn_blocking(move || write_bytes(&p, &body)).await
                }
                Err(e) => Ok(Err(e)),
            };
            match written {
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
        let retry = write_failed.then(|| tokio::time::Instant::now() + Duration::from_secs(1));
        let wake_at = match (forget_due, retry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            () = stop.cancelled() => {
                // What was told before the stop is written (a re-executing server leaves
                // the file to the next image).
                let mut changed = false;
                while let Ok(c) = changes.try_recv() {
                    changed = true;
                    match c {
                        Change::Started(g) => {
                            if let Ok(text) = disk_record(&g, root.as_deref()) {
                                groups.insert(g.pgid, text);
                            }
                        }
                        Change::Ended(pgid) => {
                            groups.remove(&pgid);
                        }
                    }
                }
                if changed || pending {
                    if let Ok(body) = assemble(&boot_id, server_pid, root.as_deref(), groups.values().map(|r| &**r)) {
                        let p = path.clone();
                        let written =
                            tokio::task::spawn_blocking(move || write_bytes(&p, &body)).await;
                        if !matches!(written, Ok(Ok(()))) {
                            tracing::error!(
                                "cannot write {}: the new server will not know the runs started last (they may run twice)",
                                path.display()
                            );
                        }
                    }
                }
                return;
            }
            change = changes.recv() => {
                let mut next = change;
                // A burst of changes is applied, then written once.
                loop {
                    match next {
                        None => return,
                        Some(Change::Started(g)) => {
                            if root.is_none() {
                                root = g.cgroup.as_deref().and_then(Path::parent).map(Path::to_path_buf);
                            }
                            match disk_record(&g, root.as_deref()) {
                                // A run taken over is told again as it was recorded: the
                                // file already says so.
                                Ok(text) if groups.get(&g.pgid) == Some(&text) => {}
                                Ok(text) => {
                                    groups.insert(g.pgid, text);
                                    pending = true;
                                }
                                Err(e) => tracing::error!(
                                    "cannot record the process group {} of {}: {e}; a crash now would leave it running",
                                    g.pgid, g.program
                                ),
                            }
                        }
                        Some(Change::Ended(pgid)) => {
                            if groups.remove(&pgid).is_some() && forget_due.is_none() {
                                forget_due = Some(tokio::time::Instant::now() + FORGET_DELAY);
                            }
                        }
                    }
                    match changes.try_recv() {
                        Ok(c) => next = Some(c),
                        Err(_) => break,
                    }
                }
            }
            () = tokio::time::sleep_until(wake_at.unwrap_or_else(tokio::time::Instant::now)), if wake_at.is_some() => {
                pending |= write_failed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pgrp: u32, session: u32, start: u64) -> ProcStat {
        ProcStat {
            pid: 0,
            state: 'S',
            ppid: 1,
            pgrp,
            session,
            ticks: 0,
            start_time: start,
            rss_pages: 0,
        }
    }

    #[test]
    fn only_the_recorded_group_is_ours() {
        let g = GroupRecord {
            pgid: 100,
            program: "web".into(),
            start_time: 5000,
            stop_signal: libc::SIGTERM,
            stop_timeout: 10,
            cgroup: None,
            fingerprint: 0,
            restarts: 0,
            started_ms: 0,
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
        let record = |pgid, cgroup: Option<&str>| GroupRecord {
            pgid,
            program: "a".into(),
            start_time: 1,
            stop_signal: 15,
            stop_timeout: 3,
            cgroup: cgroup.map(PathBuf::from),
            fingerprint: 0,
            restarts: 0,
            started_ms: 0,
        };
        let file = GroupsFile {
            boot_id: boot_id(),
            server_pid: 1,
            groups: vec![
                record(7, Some("/sys/fs/cgroup/gosuv-1-0/prog-a")),
                record(8, None),
                record(9, Some("/elsewhere/prog-b")),
            ],
            cgroup_root: None,
        };
        write_groups(&path, &file).unwrap();
        assert_eq!(read_groups(&path), Some(file));
        // On disk the cgroups are relative to one root: each record stays short.
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches("/sys/fs/cgroup/gosuv-1-0").count(),
            1,
            "{text}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(pending_grace(&pidfile), Duration::from_secs(3) + KILL_WAIT);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
