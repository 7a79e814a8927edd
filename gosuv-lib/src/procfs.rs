//! What `/proc` says of processes: the one parser of `/proc/<pid>/stat`, and one process-wide
//! snapshot of every process that stats, stopping groups and the server share.
//!
//! A pass over `/proc` reads one file per process of the machine, so it runs on a blocking
//! thread, and concurrent askers share one pass: the snapshot is taken again only when the
//! one there is older than what the asker accepts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::process_wide::{Generation, SaysEnded, END_LIMIT};

/// What `/proc/<pid>/stat` says of a process: the fields gosuv uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The process id.
    pub pid: u32,
    /// The state letter (`R`, `S`, `D`, `Z`, ...).
    pub state: char,
    /// The parent's pid (0 for a process whose parent is outside its pid namespace).
    pub ppid: u32,
    /// The process group.
    pub pgrp: u32,
    /// The session.
    pub session: u32,
    /// User plus system CPU time, in clock ticks.
    pub ticks: u64,
    /// When it started, in clock ticks since boot: with the pid, what identifies a process
    /// for good (a pid is reused, a pid and a start time are not).
    pub start_time: u64,
    /// Resident pages.
    pub rss_pages: u64,
}

impl ProcStat {
    /// Parses the text of `/proc/<pid>/stat`. The command name is in parentheses and may hold
    /// anything, spaces and parentheses included, so fields are counted from the last `)`.
    pub fn parse(text: &str) -> Option<ProcStat> {
        Self::parse_bytes(text.as_bytes())
    }

    /// [`ProcStat::parse`] of the file's bytes: the command name may hold any bytes but
    /// NUL and need not be UTF-8 (it is the executable's name, or whatever the process set);
    /// every field after it is ASCII.
    pub fn parse_bytes(bytes: &[u8]) -> Option<ProcStat> {
        let close = bytes.iter().rposition(|b| *b == b')')?;
        let head = std::str::from_utf8(bytes[..close].split(|b| *b == b'(').next()?).ok()?;
        let rest = std::str::from_utf8(&bytes[close + 1..]).ok()?;
        let pid = head.split_whitespace().next()?.parse().ok()?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        // f[0] is field 3 of proc(5) (the state), so field n is f[n - 3].
        let num = |n: usize| f.get(n - 3).and_then(|s| s.parse::<u64>().ok());
        let small = |n: usize| f.get(n - 3).and_then(|s| s.parse::<i64>().ok());
        Some(ProcStat {
            pid,
            state: f.first()?.chars().next()?,
            ppid: u32::try_from(small(4)?).unwrap_or(0),
            pgrp: u32::try_from(small(5)?).unwrap_or(0),
            session: u32::try_from(small(6)?).unwrap_or(0),
            ticks: num(14)?.saturating_add(num(15)?),
            start_time: num(22)?,
            rss_pages: num(24)?,
        })
    }

    /// Reads `/proc/<pid>/stat`; `None` when there is no such process.
    pub fn read(pid: u32) -> Option<ProcStat> {
        Self::parse_bytes(&read_pseudo_bytes(format!("/proc/{pid}/stat").as_ref()).ok()?)
    }

    /// Whether it has ended and waits to be reaped (a zombie runs nothing).
    pub fn is_zombie(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Reads a file of `/proc` or of a cgroup whole. Such a file has no size: `read_to_string`
/// of a `File` asks for one anyway (a `statx`) and starts with a 32-byte probe, 5 to 6
/// calls a file where this makes 4 (open, a read into a page, the read that finds the end,
/// close). A stats pass reads three files a program: strace of a pass over 5,000 programs
/// counted 21 calls a program, 13 with this.
pub(crate) fn read_pseudo(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::with_capacity(4096);
    // Through `Take`, whose `read_to_string` is the plain one: it does not ask the size.
    file.take(u64::MAX).read_to_string(&mut text)?;
    Ok(text)
}

/// [`read_pseudo`] of a file that may hold bytes that are not UTF-8 (`/proc/<pid>/stat`,
/// whose command name is any bytes).
pub(crate) fn read_pseudo_bytes(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::with_capacity(4096);
    file.take(u64::MAX).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Every process of the machine, read in one pass over `/proc`.
///
/// # Errors
/// `/proc` cannot be listed (out of descriptors, say): then nothing is known, which callers
/// must not take for "no process".
pub fn scan() -> std::io::Result<Vec<ProcStat>> {
    let dir = std::fs::read_dir("/proc")?;
    let mut out = Vec::new();
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Some(st) = ProcStat::read(pid) {
            out.push(st);
        }
    }
    Ok(out)
}

/// Whether the environment a process started with holds `key=value` (`/proc/<pid>/environ`;
/// unreadable for a zombie, or another user's process when gosuv is not root).
pub fn environ_has(pid: u32, key: &str, value: &str) -> bool {
    let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    env.split(|b| *b == 0).any(|kv| {
        kv.len() == key.len() + 1 + value.len()
            && kv.starts_with(key.as_bytes())
            && kv[key.len()] == b'='
            && kv.ends_with(value.as_bytes())
    })
}

/// The value of variable `key` in a process's environment (as it was at its exec).
pub fn environ_value(pid: u32, key: &str) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    env.split(|b| *b == 0).find_map(|kv| {
        let rest = kv.strip_prefix(key.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(rest).into_owned())
    })
}

/// The cgroup v2 path of a process (`0::/path` in `/proc/<pid>/cgroup`), zombies included.
pub fn cgroup_of(pid: u32) -> Option<String> {
    let bytes = read_pseudo_bytes(format!("/proc/{pid}/cgroup").as_ref()).ok()?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

/// One pass over `/proc`, indexed by parent, process group and session, so that finding a
/// program's processes costs the size of the program, not of the machine.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// When the pass began: a process that started later may be missing.
    pub taken: Instant,
    procs: Vec<ProcStat>,
    by_pid: HashMap<u32, usize>,
    children: HashMap<u32, Vec<usize>>,
    groups: HashMap<u32, Vec<usize>>,
    sessions: HashMap<u32, Vec<usize>>,
}

impl Snapshot {
    pub(crate) fn new(procs: Vec<ProcStat>, taken: Instant) -> Snapshot {
        let mut s = Snapshot {
            taken,
            by_pid: HashMap::with_capacity(procs.len()),
            children: HashMap::new(),
            groups: HashMap::new(),
            sessions: HashMap::new(),
            procs,
        };
        for (i, p) in s.procs.iter().enumerate() {
            s.by_pid.insert(p.pid, i);
            s.children.entry(p.ppid).or_default().push(i);
            s.groups.entry(p.pgrp).or_default().push(i);
            s.sessions.entry(p.session).or_default().push(i);
        }
        s
    }

    /// A process by pid.
    pub(crate) fn get(&self, pid: u32) -> Option<&ProcStat> {
        self.by_pid.get(&pid).map(|i| &self.procs[*i])
    }

    fn at<'a>(&'a self, idx: &'a [usize]) -> impl Iterator<Item = &'a ProcStat> + 'a {
        idx.iter().map(|i| &self.procs[*i])
    }

    /// The children of `pid`.
    pub(crate) fn children(&self, pid: u32) -> impl Iterator<Item = &ProcStat> {
        self.at(self.children.get(&pid).map_or(&[][..], Vec::as_slice))
    }

    /// Every process that is `leader`, sits in its session or process group, or descends
    /// from one of those, plus `extra` roots and their descendants: the processes of a
    /// program whose leader is `leader` (zombies included; callers filter). Without a leader,
    /// the `extra` roots alone.
    pub(crate) fn tree(&self, leader: Option<u32>, extra: &[u32]) -> Vec<&ProcStat> {
        let mut out: Vec<&ProcStat> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut stack: Vec<&ProcStat> = Vec::new();
        if let Some(leader) = leader {
            stack.extend(self.get(leader));
            for map in [&self.groups, &self.sessions] {
                if let Some(idx) = map.get(&leader) {
                    stack.extend(self.at(idx));
                }
            }
        }
        stack.extend(extra.iter().filter_map(|p| self.get(*p)));
        while let Some(p) = stack.pop() {
            if !seen.insert(p.pid) {
                continue;
            }
            out.push(p);
            stack.extend(self.children(p.pid));
        }
        out.sort_by_key(|p| (Some(p.pid) != leader, p.pid));
        out
    }
}

/// A job for the pass thread, given the pass's snapshot (`None` when `/proc` cannot be read).
type Job = Box<dyn FnOnce(Option<&Arc<Snapshot>>) + Send>;

/// Work for the pass thread: answered with a snapshot taken no earlier than `not_before`.
struct Request {
    not_before: Instant,
    job: Job,
}

/// The process-wide pass thread: one pass over `/proc` at a time, however many ask. Every
/// request that comes while a pass runs is answered by the next one, so a thousand programs
/// stopping at once cost a few passes, not a thousand, and no more than one thread.
struct Passes {
    queue: Mutex<Vec<Request>>,
    more: std::sync::Condvar,
    last: Mutex<Option<Arc<Snapshot>>>,
    /// The thread, while one runs, and its generation: ended when no supervisor is left
    /// ([`end_passes`]).
    thread: Mutex<Option<PassThread>>,
}

struct PassThread {
    handle: std::thread::JoinHandle<()>,
    generation: Arc<Generation>,
}

static PASSES: Passes = Passes {
    queue: Mutex::new(Vec::new()),
    more: std::sync::Condvar::new(),
    last: Mutex::new(None),
    thread: Mutex::new(None),
};

/// The pass thread's state, the thread started if none runs; `None` if it cannot be.
fn passes() -> Option<&'static Passes> {
    let p = &PASSES;
    let mut thread = p.thread.lock().unwrap_or_else(|e| e.into_inner());
    if thread.is_some() {
        return Some(p);
    }
    // A thread that could not be started is tried again at the next call (a passing limit on
    // threads must not leave the process without /proc for good).
    let generation = Arc::new(Generation::default());
    let g = generation.clone();
    match std::thread::Builder::new()
        .name("gosuv-proc".into())
        .spawn(move || pass_loop(p, &g))
    {
        Ok(handle) => {
            *thread = Some(PassThread { handle, generation });
            Some(p)
        }
        Err(e) => {
            tracing::error!("cannot start the thread that reads /proc: {e}");
            None
        }
    }
}

/// Ends the pass thread if no request waits, and joins it (a pass under way is finished
/// first, if it ends within [`END_LIMIT`]; one that hangs leaves its thread, which ends
/// after it). Called when no supervisor is left; the next request starts a new thread.
/// Nothing is held while it waits: a request meanwhile starts a thread of its own.
pub(crate) fn end_passes() {
    let p = &PASSES;
    let ending = {
        let mut thread = p.thread.lock().unwrap_or_else(|e| e.into_inner());
        let q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
        if !q.is_empty() {
            return;
        }
        let Some(t) = thread.take() else {
            return;
        };
        t.generation.quit();
        t
    };
    p.more.notify_all();
    if ending.generation.join_within(ending.handle, END_LIMIT) {
        let thread = p.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            *p.last.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }
}

fn pass_loop(p: &'static Passes, generation: &Generation) {
    let _says = SaysEnded(generation);
    loop {
        let batch = {
            let mut q = p.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                // Ended: a request from now on goes to the thread started after this one.
                if generation.is_quit() {
                    return;
                }
                if !q.is_empty() {
                    break;
                }
                q = p.more.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::take(&mut *q)
        };
        let last = p.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let latest_wanted = batch.iter().map(|r| r.not_before).max();
        let snap = match (last, latest_wanted) {
            (Some(s), Some(t)) if s.taken >= t => Some(s),
            _ => {
                let taken = Instant::now();
                let pass = std::panic::catch_unwind(|| scan().map(|p| Snapshot::new(p, taken)));
                match pass {
                    Ok(Ok(snap)) => {
                        let s = Arc::new(snap);
                        *p.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(s.clone());
                        Some(s)
                    }
                    Ok(Err(e)) => {
                        tracing::warn!("cannot read /proc: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::error!("a pass over /proc panicked; this round has no answer");
                        None
                    }
                }
            }
        };
        for r in batch {
            // A job that panics loses its own answer (its caller sees `None`), not the thread
            // every other caller depends on.
            let job = r.job;
            let snap = snap.as_ref();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(snap))).is_err() {
                tracing::error!("a job on the /proc thread panicked; its caller gets no answer");
            }
        }
    }
}

fn cached(max_age: Duration, not_before: Option<Instant>) -> Option<Arc<Snapshot>> {
    let last = PASSES.last.lock().unwrap_or_else(|p| p.into_inner());
    last.as_ref()
        .filter(|s| s.taken.elapsed() <= max_age && not_before.is_none_or(|t| s.taken >= t))
        .cloned()
}

/// Runs `f` on the pass thread with a snapshot taken no earlier than `not_before` (`None`
/// when `/proc` cannot be read). For work that goes with a pass (reading a few more files of
/// the processes it found): it runs off the runtime, one job after another.
pub(crate) async fn with_snapshot<T: Send + 'static>(
    not_before: Instant,
    f: impl FnOnce(Option<&Arc<Snapshot>>) -> T + Send + 'static,
) -> Option<T> {
    let p = passes()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    p.queue
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Request {
            not_before,
            job: Box::new(move |s| {
                let _ = tx.send(f(s));
            }),
        });
    p.more.notify_one();
    // The thread may have been ended (no supervisor left) since it was looked at.
    passes()?;
    // A pass takes milliseconds; one that does not end (a process whose memory is locked in
    // the kernel, read for its environment) must not hang its callers for ever.
    match tokio::time::timeout(PASS_WAIT, rx).await {
        Ok(answer) => answer.ok(),
        Err(_) => {
            tracing::warn!(
                "no answer from the /proc thread within {} s (a process that cannot be read?)",
                PASS_WAIT.as_secs()
            );
            None
        }
    }
}

/// How long a caller waits for the pass thread.
const PASS_WAIT: Duration = Duration::from_secs(10);

/// A snapshot of every process, at most `max_age` old and taken no earlier than
/// `not_before`; `None` when `/proc` cannot be read. Made on the pass thread; concurrent
/// callers share passes.
pub(crate) async fn snapshot(
    max_age: Duration,
    not_before: Option<Instant>,
) -> Option<Arc<Snapshot>> {
    if let Some(s) = cached(max_age, not_before) {
        return Some(s);
    }
    // Fresh enough for `max_age` means taken after now - max_age.
    let floor = Instant::now()
        .checked_sub(max_age)
        .unwrap_or_else(Instant::now);
    let wanted = not_before.map_or(floor, |t| t.max(floor));
    with_snapshot(wanted, |s| s.cloned()).await.flatten()
}

/// The number of clock ticks a second (`sysconf(_SC_CLK_TCK)`).
/// Now, in clock ticks since boot: the unit of a process's start time.
pub fn boot_ticks_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let ticks = clock_ticks();
    (ts.tv_sec.max(0) as u64)
        .saturating_mul(ticks)
        .saturating_add(ts.tv_nsec.max(0) as u64 * ticks / 1_000_000_000)
}

pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The size of a memory page in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small pseudo-file and a file of several pages are read whole.
    #[test]
    fn pseudo_files_are_read_whole() {
        let stat = read_pseudo("/proc/self/stat".as_ref()).unwrap();
        assert_eq!(ProcStat::parse(&stat).unwrap().pid, std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let text: String = (0..3000).map(|i| format!("{i}\n")).collect();
        assert!(text.len() > 3 * 4096);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(read_pseudo(&path).unwrap(), text);
        assert!(read_pseudo(&dir.path().join("none")).is_err());
    }

    #[test]
    fn parses_a_stat_line_with_odd_names() {
        let line = "4242 (we ird) (na)me) S 1 4242 4243 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 12345 1000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let p = ProcStat::parse(line).expect("parses");
        assert_eq!(p.pid, 4242);
        assert_eq!(p.state, 'S');
        assert_eq!(p.ppid, 1);
        assert_eq!(p.pgrp, 4242);
        assert_eq!(p.session, 4243);
        assert_eq!(p.ticks, 10);
        assert_eq!(p.start_time, 12345);
        assert_eq!(p.rss_pages, 250);
        assert!(!p.is_zombie());
        assert!(ProcStat::parse("12 (x) Z 1 2").is_none());
        assert!(ProcStat::parse("").is_none());
        // A name in bytes that are not UTF-8 (the link `\xffsleep` to sleep runs as that).
        let mut bytes = b"4242 (\xff)\xfe".to_vec();
        bytes.extend_from_slice(&line.as_bytes()[line.find(") S").expect("state")..]);
        assert_eq!(ProcStat::parse_bytes(&bytes), Some(p));
    }

    #[test]
    fn the_tree_follows_parents_groups_and_sessions() {
        let p = |pid, ppid, pgrp, session| ProcStat {
            pid,
            state: 'S',
            ppid,
            pgrp,
            session,
            ticks: 1,
            start_time: 1,
            rss_pages: 1,
        };
        // 10 leads; 11 is its child; 12 its grandchild in a new session; 13 an orphan still in
        // group 10; 14 an orphan in session 10 but another group; 30 an extra root with a
        // child 31; 20 is unrelated.
        let snap = Snapshot::new(
            vec![
                p(10, 1, 10, 10),
                p(11, 10, 10, 10),
                p(12, 11, 12, 12),
                p(13, 1, 10, 10),
                p(14, 1, 14, 10),
                p(30, 1, 30, 30),
                p(31, 30, 30, 30),
                p(20, 1, 20, 20),
            ],
            Instant::now(),
        );
        let pids: Vec<u32> = snap.tree(Some(10), &[30]).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![10, 11, 12, 13, 14, 30, 31]);
        let pids: Vec<u32> = snap.tree(None, &[30]).iter().map(|p| p.pid).collect();
        assert_eq!(pids, vec![30, 31]);
    }

    #[test]
    fn scan_sees_this_process() {
        let me = std::process::id();
        let all = scan().expect("/proc");
        let mine = all.iter().find(|p| p.pid == me).expect("this process");
        assert_eq!(
            ProcStat::read(me).map(|p| p.start_time),
            Some(mine.start_time)
        );
        assert!(environ_has(
            me,
            "PATH",
            &std::env::var("PATH").unwrap_or_default()
        ));
        assert!(!environ_has(me, "PATH", "/nowhere-at-all"));
    }
}

#[cfg(test)]
mod ending {
    use super::*;
    use std::sync::mpsc::channel;

    fn push(p: &Passes, job: impl FnOnce() + Send + 'static) {
        p.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Request {
                not_before: Instant::now(),
                job: Box::new(move |_| job()),
            });
        p.more.notify_all();
    }

    /// A pass that does not end (what PASS_WAIT exists for) while the last supervisor ends:
    /// the end returns within its limit and other callers are not held (it joined with no
    /// limit, holding the lock every caller takes); a request then gets an answer.
    #[test]
    fn ending_with_a_hung_pass_is_bounded_and_holds_nobody() {
        // Counted as a user of the process-wide threads: another test's last supervisor,
        // ending meanwhile, would end the pass thread this test ends itself.
        let _in_use = crate::process_wide::InUse::new();
        let p = passes().expect("pass thread");
        let (go_tx, go_rx) = channel::<()>();
        let (in_tx, in_rx) = channel::<()>();
        push(p, move || {
            let _ = in_tx.send(());
            let _ = go_rx.recv();
        });
        in_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the hung job runs");
        let hung = p
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|t| t.generation.clone())
            .expect("the thread of the hung job");
        let (done_tx, done_rx) = channel();
        std::thread::spawn(move || {
            let t = Instant::now();
            end_passes();
            let _ = done_tx.send(t.elapsed());
        });
        // A caller while the end waits (once it has taken the thread: a request queued
        // before would rightly keep the thread, and wait behind the hung pass).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !hung.is_quit() {
            assert!(
                Instant::now() < deadline,
                "end_passes did not end the thread"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let (c_tx, c_rx) = channel();
        std::thread::spawn(move || {
            let t = Instant::now();
            let p = passes();
            let answered = p.is_some_and(|p| {
                let (a_tx, a_rx) = channel();
                push(p, move || {
                    let _ = a_tx.send(());
                });
                passes().is_some() && a_rx.recv_timeout(Duration::from_secs(10)).is_ok()
            });
            let _ = c_tx.send((t.elapsed(), answered));
        });
        let ended = done_rx.recv_timeout(END_LIMIT + Duration::from_secs(5));
        let caller = c_rx.recv_timeout(Duration::from_secs(15));
        let _ = go_tx.send(());
        let took = ended.expect("end_passes did not return");
        assert!(
            took < END_LIMIT + Duration::from_secs(2),
            "end_passes took {took:?}"
        );
        let (waited, answered) = caller.expect("a caller of passes() was held");
        assert!(
            answered,
            "a request made while the end waited got no answer"
        );
        assert!(
            waited < Duration::from_secs(9),
            "a caller waited {waited:?}"
        );
    }
}
