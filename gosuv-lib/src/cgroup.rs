//! Owning a program's processes through a cgroup v2 (`cgroup: auto|required`).
//!
//! A supervisor makes one cgroup under its own, `gosuv-<pid>-<n>`, the first time a program
//! needs one, and under it one cgroup per run of a program, `prog-<name>` (the prefix keeps a
//! program named `cpu.max` from meeting the kernel's own files). A child is started in its
//! run's cgroup before it runs anything of its own (see `spawn`), so everything it starts
//! stays there whatever it does (`setsid`, double forks): `cgroup.procs` lists them,
//! `cgroup.kill` kills them all at once, and `cgroup.events` says `populated 0` when none is
//! left. CPU comes from `cpu.stat`, and memory from `memory.current` where the memory
//! controller is handed down to gosuv's cgroup (`memory_max` then sets `memory.max`).
//!
//! A run's cgroup is removed once the run is over and made anew for the next run, never
//! reused: on the kernels this was written on (6.18), a child started with
//! `CLONE_INTO_CGROUP` into a cgroup that was once `cgroup.kill`ed is killed at birth. When
//! the old one cannot be removed yet (a process stuck in the kernel), the next run's cgroup
//! gets a suffix (`prog-<name>.1`).
//!
//! Where gosuv's own cgroup is not writable (not root, no delegation) no cgroup is made and
//! programs are owned through their process group instead (see `process_group`).
//!
//! Every call here is a small read or write of a kernel file, which does not sleep on a disk.

use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The prefix of the cgroup a supervisor makes for itself.
const ROOT_PREFIX: &str = "gosuv-";
/// The prefix of a program's cgroup.
const PROGRAM_PREFIX: &str = "prog-";

/// The cgroup v2 mount and this process's cgroup in it.
fn own_cgroup_dir() -> Result<PathBuf, String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
    // Fields: id parent major:minor root mountpoint options [optional...] - fstype source ...
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let f: Vec<&str> = left.split_whitespace().collect();
        Some((unescape(f.get(3)?), unescape(f.get(4)?)))
    });
    let Some((mount_root, mount_point)) = mount else {
        return Err("no cgroup v2 hierarchy is mounted".into());
    };
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
    let own = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2")?;
    // A bind mount of a subtree shows that subtree's path as its root.
    let rel = Path::new(own).strip_prefix(&mount_root).map_err(|_| {
        format!("this process's cgroup {own} is outside the mounted cgroup v2 tree")
    })?;
    Ok(PathBuf::from(mount_point).join(rel))
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).and_then(|d| {
            d.iter()
                .try_fold(0u32, |n, c| {
                    (b'0'..=b'7')
                        .contains(c)
                        .then(|| n * 8 + u32::from(c - b'0'))
                })
                .and_then(|n| u8::try_from(n).ok())
        });
        if let (b'\\', Some(n)) = (b[i], octal) {
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn write_file(path: &Path, text: &str) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(text.as_bytes())
}

fn read_file(path: &Path) -> io::Result<String> {
    crate::procfs::read_pseudo(path)
}

/// The cgroup one supervisor made for itself: its programs' cgroups live under it.
#[derive(Debug)]
pub(crate) struct CgroupRoot {
    dir: PathBuf,
    /// Whether the memory controller is enabled for the programs' cgroups.
    memory: bool,
    /// The highest suffix each program's run cgroups had to take (`prog-<name>.N`), so its
    /// removal finds every one left.
    suffixes: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Left in place when dropped: its programs were let go of, for another process to
    /// take over.
    keep: std::sync::atomic::AtomicBool,
}

impl CgroupRoot {
    /// Makes this supervisor's cgroup under the process's own, after removing the empty
    /// ones that processes now gone left behind.
    ///
    /// # Errors
    /// No writable cgroup v2 here: a message that says why.
    pub(crate) fn create() -> Result<CgroupRoot, String> {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let base = own_cgroup_dir()?;
        remove_leftovers(&base);
        let made = loop {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            let dir = base.join(format!("{ROOT_PREFIX}{}-{seq}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => break dir,
                // An earlier process with this pid (a restarted container's init) left it:
                // take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && seq < 1_000 => {}
                Err(e) => {
                    return Err(format!(
                        "cannot create a cgroup under {}: {e} (gosuv needs root, a container, \
                         or a systemd unit with Delegate=yes to own programs by cgroup)",
                        base.display()
                    ))
                }
            }
        };
        // Memory accounting where gosuv's own cgroup hands the controller down already (a
        // delegated unit, a container): gosuv never changes its parent's settings.
        let has = |dir: &Path, what: &str, c: &str| {
            read_file(&dir.join(what)).is_ok_and(|t| t.split_whitespace().any(|w| w == c))
        };
        if has(&made, "cgroup.controllers", "memory") {
            let _ = write_file(&made.join("cgroup.subtree_control"), "+memory");
        }
        let memory = has(&made, "cgroup.subtree_control", "memory");
        tracing::debug!(dir = %made.display(), memory, "cgroup made for the supervisor");
        Ok(CgroupRoot {
            dir: made,
            memory,
            suffixes: std::sync::Mutex::default(),
            keep: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The supervisor's cgroup directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new cgroup for a run of program `name`, with `memory_max` as `memory.max` where
    /// the memory controller is on.
    ///
    /// # Errors
    /// The directory cannot be made.
    pub(crate) fn program(&self, name: &str, memory_max: Option<u64>) -> Result<Cgroup, String> {
        let base = self.dir.join(format!("{PROGRAM_PREFIX}{name}"));
        let mut path = base.clone();
        let mut n = 0u32;
        loop {
            match std::fs::create_dir(&path) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000 => {
                    // An earlier run's, not removed yet: gone if it is empty now, else the
                    // next name (a cgroup is never reused, see the module's notes).
                    if remove_dir(&path).is_err() {
                        n += 1;
                        path = base.with_file_name(format!("{PROGRAM_PREFIX}{name}.{n}"));
                    }
                }
                Err(e) => return Err(format!("cannot create the cgroup {}: {e}", path.display())),
            }
        }
        if n > 0 {
            let mut suffixes = self.suffixes.lock().unwrap_or_else(|e| e.into_inner());
            let top = suffixes.entry(name.to_string()).or_default();
            *top = (*top).max(n);
        }
        let cg = Cgroup {
            path,
            memory: self.memory,
        };
        if self.memory {
            let max = memory_max.map_or("max".to_string(), |m| m.to_string());
            cg.write("memory.max", &max)
                .map_err(|e| format!("cannot set memory.max of {}: {e}", cg.path.display()))?;
            // An out-of-memory kill takes the whole program, so its leader's exit says so.
            let _ = cg.write("memory.oom.group", "1");
        }
        Ok(cg)
    }

    /// Removes what is left of program `name`'s cgroup (each run removes its own when it
    /// is over; one that could not go then is removed with the supervisor's).
    pub(crate) fn remove_program(&self, name: &str) {
        let top = self
            .suffixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .unwrap_or(0);
        for n in 0..=top {
            let path = if n == 0 {
                self.dir.join(format!("{PROGRAM_PREFIX}{name}"))
            } else {
                self.dir.join(format!("{PROGRAM_PREFIX}{name}.{n}"))
            };
            match remove_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("cannot remove the cgroup {}: {e}", path.display()),
            }
        }
    }

    /// Removes the supervisor's cgroup and what is left of its programs' (the empty ones).
    pub(crate) fn remove(&self) {
        remove_tree(&self.dir);
    }
}

impl CgroupRoot {
    /// Keeps it (and its programs' cgroups) when it is dropped: they were let go of.
    pub(crate) fn keep(&self) {
        self.keep.store(true, Ordering::Relaxed);
    }
}

impl Drop for CgroupRoot {
    fn drop(&mut self) {
        if !self.keep.load(Ordering::Relaxed) {
            self.remove();
        }
    }
}

/// Removes `dir` and its programs' cgroups, leaving any that still holds a process.
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                if let Err(err) = remove_dir(&p) {
                    tracing::warn!("cannot remove the cgroup {}: {err}", p.display());
                }
            }
        }
    }
    match remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("cannot remove the cgroup {}: {e}", dir.display()),
    }
}

/// Removes the cgroup `dir` and, first, the cgroups a program made below it (a cgroup with
/// one below cannot be removed). Fails as `rmdir` does where a process is left.
fn remove_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    // A cgroup directory's link count is 2 plus its subdirectories.
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.nlink() > 2) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    let _ = remove_dir(&e.path());
                }
            }
        }
    }
    std::fs::remove_dir(dir)
}

/// The program cgroups that supervisors of process `owner` made under this process's own
/// cgroup (`gosuv-<owner>-<n>/prog-*`) and that still hold processes: what a crashed
/// `gosuv` server left running, recorded or not.
pub fn populated_leftovers(owner: u32) -> Vec<PathBuf> {
    let Ok(base) = own_cgroup_dir() else {
        return Vec::new();
    };
    let prefix = format!("{ROOT_PREFIX}{owner}-");
    let mut out = Vec::new();
    for root in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        if !root.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        for prog in std::fs::read_dir(root.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let populated = read_file(&prog.path().join("cgroup.events")).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.split_whitespace().eq(["populated", "1"].iter().copied()))
            });
            if prog
                .file_name()
                .to_string_lossy()
                .starts_with(PROGRAM_PREFIX)
                && populated
            {
                out.push(prog.path());
            }
        }
    }
    out
}

/// Removes the cgroups that supervisors of processes now gone left under `base` (a crash),
/// where nothing runs any more. One that still holds a process is left alone: its programs
/// were meant to outlive their host, or the server's crash recovery stops them first.
/// Removes the empty cgroups that earlier images of this very process made (a server that
/// re-executed itself keeps its pid): what still holds a process (a run taken over) stays.
/// Only for a process with no other supervisor.
pub fn remove_own_stale_cgroups() {
    let Ok(base) = own_cgroup_dir() else { return };
    let prefix = format!("{ROOT_PREFIX}{}-", std::process::id());
    let populated = |dir: &Path| {
        read_file(&dir.join("cgroup.events")).map_or(true, |t| {
            t.lines()
                .any(|l| l.split_whitespace().eq(["populated", "1"].iter().copied()))
        })
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for root in entries.flatten() {
            if !root
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                continue;
            }
            // Only what holds no process, and never inside what does (a program's own
            // cgroups below its run's are its own).
            if let Ok(progs) = std::fs::read_dir(root.path()) {
                for prog in progs.flatten() {
                    if prog.file_type().is_ok_and(|t| t.is_dir()) && !populated(&prog.path()) {
                        let _ = remove_dir(&prog.path());
                    }
                }
            }
            if !populated(&root.path()) {
                let _ = std::fs::remove_dir(root.path());
            }
        }
    }
}

fn remove_leftovers(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ROOT_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, seq)| {
                seq.parse::<u32>().ok()?;
                pid.parse::<u32>().ok()
            })
        else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        tracing::info!(
            "removing the cgroup {} left by gosuv process {owner}, which is gone",
            e.path().display()
        );
        remove_tree(&e.path());
    }
}

/// One run's cgroup.
#[derive(Debug)]
pub(crate) struct Cgroup {
    path: PathBuf,
    memory: bool,
}

impl Cgroup {
    /// A run's cgroup that a previous server made (an adopted run).
    pub(crate) fn existing(path: PathBuf) -> Cgroup {
        let memory = path.join("memory.max").exists();
        Cgroup { path, memory }
    }

    /// Its directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, file: &str, text: &str) -> io::Result<()> {
        write_file(&self.path.join(file), text)
    }

    fn read(&self, file: &str) -> io::Result<String> {
        read_file(&self.path.join(file))
    }

    /// Its directory, opened (close-on-exec) to start a child in it.
    pub(crate) fn open_dir(&self) -> io::Result<OwnedFd> {
        Ok(OwnedFd::from(std::fs::File::open(&self.path)?))
    }

    /// The processes in it now, and in any cgroup the program made below it (runc, a nested
    /// systemd). A cgroup directory's link count is 2 plus its subdirectories: one `stat`
    /// says whether there is anything below to look at.
    pub(crate) fn all_pids(&self) -> Vec<u32> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut dirs = vec![self.path.clone()];
        while let Some(dir) = dirs.pop() {
            if let Ok(t) = read_file(&dir.join("cgroup.procs")) {
                out.extend(t.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
            }
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.nlink() <= 2) {
                continue;
            }
            if let Ok(entries) = std::fs::read_dir(&dir) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        out
    }

    /// Whether any process is left in it or below it (`populated` of `cgroup.events`). A
    /// cgroup that is gone is empty; one that cannot be read is not (look again later).
    pub(crate) fn populated(&self) -> bool {
        match self.read("cgroup.events") {
            Ok(t) => t
                .lines()
                .any(|l| l.split_whitespace().eq(["populated", "1"].iter().copied())),
            Err(e) => e.kind() != io::ErrorKind::NotFound,
        }
    }

    /// Removes it, once its run is over (it must be empty).
    pub(crate) fn remove(&self) {
        match remove_dir(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!("cannot remove the cgroup {} yet: {e}", self.path.display()),
        }
    }

    /// Sends `sig` to every process in it. A pid read from `cgroup.procs` could in theory
    /// end and be reused before the signal lands, as with any pid; systemd accepts the same.
    pub(crate) fn signal(&self, sig: i32) {
        for pid in self.all_pids() {
            // SAFETY: kill(2) only sends a signal.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    /// Kills every process in it at once (`cgroup.kill`, Linux 5.14), or one by one on older
    /// kernels.
    pub(crate) fn kill(&self) {
        if let Err(e) = self.write("cgroup.kill", "1") {
            if e.kind() != io::ErrorKind::NotFound {
                tracing::debug!("cgroup.kill of {}: {e}", self.path.display());
            }
            self.signal(libc::SIGKILL);
        }
    }

    /// CPU time used by every process that ever ran in it (`usage_usec` of `cpu.stat`).
    pub(crate) fn cpu_usage_usec(&self) -> Option<u64> {
        let text = self.read("cpu.stat").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("usage_usec "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Memory charged to it (`memory.current`), where the memory controller is on.
    pub(crate) fn memory_current(&self) -> Option<u64> {
        if !self.memory {
            return None;
        }
        self.read("memory.current").ok()?.trim().parse().ok()
    }

    /// How many times the kernel killed a process in it for lack of memory.
    pub(crate) fn oom_kills(&self) -> u64 {
        if !self.memory {
            return 0;
        }
        self.read("memory.events")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Whether `memory_max` is enforced by the kernel here.
    pub(crate) fn enforces_memory(&self) -> bool {
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/a\\"), "/a\\");
        assert_eq!(unescape("/a\\777"), "/a\\777");
    }
}
