//! Helpers shared by the integration tests: a supervisor in a temp dir, waits with
//! deadlines, and looks into /proc.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gosuv::{EventNotice, Events, ProgramConfig, ProgramState, Supervisor, SupervisorOptions};

pub const WAIT: Option<Duration> = Some(Duration::from_secs(10));

pub struct Env {
    pub dir: tempfile::TempDir,
    pub sup: Supervisor,
}

impl Env {
    pub fn new() -> Env {
        Env::with(|_| {})
    }

    /// A supervisor whose options `f` changes first.
    pub fn with(f: impl FnOnce(&mut SupervisorOptions)) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut opts = SupervisorOptions::new(dir.path());
        f(&mut opts);
        let sup = Supervisor::new(opts).expect("supervisor");
        Env { dir, sup }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn log(&self, name: &str, stream: &str) -> PathBuf {
        self.path()
            .join("logs")
            .join(format!("{name}.{stream}.log"))
    }
}

/// A shell program that counts as started at once.
pub fn quick(name: &str, cmd: &str) -> ProgramConfig {
    let mut p = ProgramConfig::shell(name, cmd);
    p.start_seconds = 0;
    p.stop_timeout = 5;
    p
}

/// Polls `f` until it returns true, failing the test after `secs` seconds.
pub fn poll(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A runtime as the async tests have (two workers), for a test that must do something
/// before it exists (a process-wide setting) or runs in a process of its own.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Async version of [`poll`].
pub async fn poll_async(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Collects state changes of `program` until one enters `to`; returns them all.
pub async fn events_until(
    events: &mut Events,
    program: &str,
    to: ProgramState,
    secs: u64,
) -> Vec<gosuv::Event> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no `{to}` event for {program} in {secs}s; saw {seen:?}"));
        match ev {
            Some(EventNotice::Changed(e)) if e.program == program => {
                let done = e.to == to;
                seen.push(e);
                if done {
                    return seen;
                }
            }
            Some(_) => {}
            None => panic!("event stream closed"),
        }
    }
}

/// The (from, to) pairs of a list of events.
pub fn pairs(events: &[gosuv::Event]) -> Vec<(ProgramState, ProgramState)> {
    events.iter().map(|e| (e.from, e.to)).collect()
}

/// Whether a process exists (a zombie counts).
pub fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The state letter of a process (`R`, `S`, `Z` ...), if it exists.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.trim_start().chars().next()
}

/// Whether a process can no longer run: it does not exist, is a zombie, or has begun to exit
/// (`PF_EXITING`). The kernel takes an exiting process out of its cgroup (`populated 0`)
/// a moment before it becomes a zombie; in that moment `/proc` still says `R` or `D`, though
/// its memory and files are already gone.
pub fn proc_dead(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    else {
        return true;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return true;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first().and_then(|s| s.chars().next());
    let flags = f.get(6).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    matches!(state, None | Some('Z' | 'X' | 'x')) || flags & PF_EXITING != 0
}

/// Every process whose `/proc/<pid>/stat` field `field` (after the command name: 1 is the
/// parent, 2 the process group) is `value`.
fn procs_where(field: usize, value: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
        {
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                if f.get(field).and_then(|s| s.parse::<u32>().ok()) == Some(value) {
                    out.push(pid);
                }
            }
        }
    }
    out
}

/// Every process whose parent is `ppid`.
pub fn children_of(ppid: u32) -> Vec<u32> {
    procs_where(1, ppid)
}

/// Every process in process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    procs_where(2, pgid)
}

/// The live (not dead or exiting, see [`proc_dead`]) processes of process group `pgid`.
pub fn live_group_members(pgid: u32) -> Vec<u32> {
    group_members(pgid)
        .into_iter()
        .filter(|p| !proc_dead(*p))
        .collect()
}

/// Zombie children of this test process.
pub fn zombie_children() -> Vec<u32> {
    children_of(std::process::id())
        .into_iter()
        .filter(|p| proc_state(*p) == Some('Z'))
        .collect()
}

/// Reads a file written by a program once it holds `needle`.
pub fn wait_file_contains(path: &Path, needle: &str, secs: u64) -> String {
    let mut text = String::new();
    poll(secs, &format!("{needle:?} in {}", path.display()), || {
        text = std::fs::read_to_string(path).unwrap_or_default();
        text.contains(needle)
    });
    text
}

/// A marker unique to this test run, to find its processes by their command lines
/// (`sleep 300.<marker>` is a valid duration).
pub fn unique_marker() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}{:03}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Live processes (not dead or exiting, see [`proc_dead`]) with an argument that contains `marker`.
pub fn procs_with_arg(marker: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmdline
            .split(|b| *b == 0)
            .any(|arg| String::from_utf8_lossy(arg).contains(marker))
            && !proc_dead(pid)
        {
            out.push(pid);
        }
    }
    out
}

/// Where the cgroup v2 hierarchy is mounted ("" when it is not).
pub fn own_cgroup_mount() -> String {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|mount| {
            mount.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                (right.split_whitespace().next()? == "cgroup2")
                    .then(|| left.split_whitespace().nth(4).map(str::to_owned))?
            })
        })
        .unwrap_or_default()
}

/// This process's cgroup v2 directory, if the hierarchy is mounted.
pub fn own_cgroup_dir() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let point = Some(own_cgroup_mount()).filter(|p| !p.is_empty())?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(Path::new(&point).join(rel.trim_start_matches('/')))
}

/// Whether this machine lets gosuv own programs by cgroup (a writable cgroup v2 under this
/// process's own); when not, says why on stderr so a skipped check is never silent.
pub fn cgroups_available(test: &str) -> bool {
    let ok = own_cgroup_dir().is_some_and(|dir| {
        let probe = dir.join(format!("gosuv-probe-{}", std::process::id()));
        let made = std::fs::create_dir(&probe).is_ok();
        let _ = std::fs::remove_dir(&probe);
        made
    });
    if !ok {
        eprintln!(
            "SKIPPED the cgroup part of {test}: no writable cgroup v2 here (gosuv needs root, a \
             container or a delegated subtree to own programs by cgroup)"
        );
    }
    ok
}

/// The cgroup directories of this process's supervisors (`gosuv-<pid>-<n>`).
pub fn own_supervisor_cgroups() -> Vec<PathBuf> {
    let prefix = format!("gosuv-{}-", std::process::id());
    own_cgroup_dir()
        .and_then(|d| std::fs::read_dir(d).ok())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Makes `path` a device that is always full (what /dev/full is: character device 1,7),
/// not a link to it (gosuv follows no link). Needs the right to make devices (root); says
/// so and returns false where it is missing.
pub fn full_device(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mknod with a NUL-terminated path; makes a device node or fails.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 7)) };
    if r != 0 {
        eprintln!(
            "SKIPPED the disk-full part: cannot make a full device at {} ({})",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    r == 0
}
