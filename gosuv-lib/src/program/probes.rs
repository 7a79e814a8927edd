//! A run's `ready` and `health` probes, each a task of its own that reports to the program's
//! task over a channel: the program task's wait on it is cancel-safe (it is polled again on
//! every command), attempts never overlap (one loop makes them one after another), and
//! dropping the probe ends it at once (with whatever process an `exec` attempt runs).
//!
//! `http`, `tcp` and `exec` are asked `interval` after the last attempt ended, each attempt
//! bounded by `timeout` (the whole of `ready`'s, or `health`'s per attempt); `log` and `notify` are told: a line of the run's
//! output that matches, a `READY=1` datagram from one of the run's processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{ProgramLogs, Shared};
use crate::config::{ProbeCheck, ProgramConfig};
use crate::logs::{LogEvent, LogFollower};
use crate::process_group::ProcessGroup;
use crate::spawn::{lookup_user, Command as SpawnCommand};

/// What a probe says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Report {
    /// The check passed.
    Passed,
    /// One attempt failed, and why (worded for `last_error`).
    Failed(String),
    /// The program said `STATUS=...` (notify).
    Status(String),
}

/// A running probe. Dropping it ends it.
pub(crate) struct Probe {
    rx: mpsc::Receiver<Report>,
    /// Its own task; none for a probe of the batch (which drops it once `rx` is gone).
    task: Option<JoinHandle<()>>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl Probe {
    /// The next report; never returns once the probe has nothing more to say. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Report {
        match self.rx.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }
}

/// The next report of `probe`, if there is one (else never). Cancel-safe.
pub(crate) async fn next_of(probe: &mut Option<Box<Probe>>) -> Report {
    match probe {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

/// What a `log` or `notify` probe needs before the run is spawned, so that nothing the run
/// says early is missed: followers of its output, or the socket `$NOTIFY_SOCKET` names.
pub(crate) enum Early {
    None,
    Log([LogFollower; 2]),
    Notify(crate::probe::NotifySocket, PathBuf),
}

impl Early {
    /// Prepares what `config`'s ready check needs; `Err` when the notify socket cannot be
    /// made.
    pub(crate) async fn prepare(
        config: &ProgramConfig,
        logs: &ProgramLogs,
    ) -> Result<Early, String> {
        match config.ready.as_ref().map(|r| &r.check) {
            Some(ProbeCheck::Log(_)) => {
                Ok(Early::Log([logs.stdout.follow(), logs.stderr.follow()]))
            }
            Some(ProbeCheck::Notify) => {
                let dir = notify_dir()?;
                let path = dir.join(format!("{}.sock", config.name));
                let sock = crate::probe::NotifySocket::bind(&path).map_err(|e| e.to_string())?;
                // A program run as another user must be able to send to it.
                if let Some(user) = &config.user {
                    let name = user.clone();
                    let uid = tokio::task::spawn_blocking(move || lookup_user(&name))
                        .await
                        .map_err(|e| format!("cannot look up the user: {e}"))??
                        .uid;
                    nix::unistd::fchownat(
                        nix::fcntl::AT_FDCWD,
                        &path,
                        Some(nix::unistd::Uid::from_raw(uid)),
                        None,
                        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| {
                        format!(
                            "cannot hand the notify socket {} to {user}: {e}",
                            path.display()
                        )
                    })?;
                }
                Ok(Early::Notify(sock, path))
            }
            _ => Ok(Early::None),
        }
    }

    /// The path to give the program as `$NOTIFY_SOCKET`.
    pub(crate) fn notify_path(&self) -> Option<&std::path::Path> {
        match self {
            Early::Notify(_, p) => Some(p),
            _ => None,
        }
    }
}

/// The directory of this process's notify sockets: made once, in the temporary directory
/// (every user can reach it), with a name nobody can guess or take first, mode 0711 (a
/// program run as another user reaches its own socket and lists nothing).
fn notify_dir() -> Result<PathBuf, String> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if let Some(d) = DIR.get() {
        return Ok(d.clone());
    }
    let _one = MAKING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(d) = DIR.get() {
        return Ok(d.clone());
    }
    let mut last = String::new();
    for _ in 0..8 {
        let mut r = [0u8; 8];
        // SAFETY: getrandom fills a buffer we own.
        if unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) } != 8 {
            return Err("cannot make the notify directory: no random bytes".into());
        }
        let dir = std::env::temp_dir().join(format!(
            "gosuv-notify-{}-{:016x}",
            std::process::id(),
            u64::from_ne_bytes(r)
        ));
        // Made here, so ours: a name taken first by someone else fails and is not used.
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))
                    .map_err(|e| format!("cannot set up {}: {e}", dir.display()))?;
                let _ = DIR.set(dir.clone());
                return Ok(dir);
            }
            Err(e) => last = format!("cannot make {}: {e}", dir.display()),
        }
    }
    Err(last)
}

/// Starts the probe for a run whose leader is `leader` (and whose processes are its
/// session, or its cgroup `cgroup`). An asked probe makes its first attempt after
/// `first_after`, then one every `interval`, each limited to `bound`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn start(
    check: &ProbeCheck,
    first_after: Duration,
    interval: Duration,
    bound: Duration,
    early: Early,
    sh: Arc<Shared>,
    config: Arc<ProgramConfig>,
    leader: u32,
    cgroup: Option<PathBuf>,
) -> Probe {
    let (tx, rx) = mpsc::channel(16);
    // A tcp probe to a loopback address joins the supervisor's batch, when the kernel's
    // table of listening sockets can be read here.
    if let ProbeCheck::Tcp(target) = check {
        let parsed = crate::probe::TcpTarget::parse(target).ok().map(Arc::new);
        let lo = parsed
            .as_ref()
            .and_then(|t| t.loopback().map(|(ips, port)| (t.clone(), ips, port)));
        let readable = || {
            let recent = std::time::Instant::now()
                .checked_sub(Duration::from_secs(1))
                .unwrap_or_else(std::time::Instant::now);
            crate::listening::table_since(recent).is_some()
        };
        if let Some((parsed, ips, port)) = lo.filter(|_| readable()) {
            let entry = super::tcp_batch::Entry {
                ips,
                port,
                target: parsed,
                timeout: bound,
                first_at: tokio::time::Instant::now() + first_after,
                interval,
                // Ready attempts to the millisecond; health attempts share wake-ups.
                grid: if first_after.is_zero() {
                    Duration::ZERO
                } else {
                    super::tcp_batch::health_grid(interval)
                },
                reports: tx.clone(),
            };
            if sh
                .tcp_batch
                .get_or_init(super::tcp_batch::Batch::start)
                .add(entry)
            {
                return Probe { rx, task: None };
            }
        }
    }
    let check = check.clone();
    let task = tokio::spawn(async move {
        match (check, early) {
            (ProbeCheck::Log(re), Early::Log(followers)) => log_loop(&re, followers, tx).await,
            (ProbeCheck::Notify, Early::Notify(sock, _)) => {
                notify_loop(sock, leader, cgroup, tx).await;
            }
            (check, _) => asked_loop(check, first_after, interval, bound, sh, config, tx).await,
        }
    });
    Probe {
        rx,
        task: Some(task),
    }
}

/// How much older than its due time the table of listening sockets answering a `tcp`
/// ready attempt to a loopback address may be.
const TABLE_SLACK: Duration = Duration::from_millis(2);

/// http, tcp or exec, every `interval`, each attempt within `bound`.
async fn asked_loop(
    check: ProbeCheck,
    first_after: Duration,
    interval: Duration,
    bound: Duration,
    sh: Arc<Shared>,
    config: Arc<ProgramConfig>,
    tx: mpsc::Sender<Report>,
) {
    let mut next = tokio::time::Instant::now() + first_after;
    let mut passing = false;
    let tcp = match &check {
        ProbeCheck::Tcp(target) => Some(crate::probe::TcpTarget::parse(target)),
        _ => None,
    };
    // A ready attempt counts to the millisecond (readiness is reported within a few ms of
    // the fact); a health attempt may share a read from a tenth of its interval before.
    let slack = if first_after.is_zero() {
        TABLE_SLACK
    } else {
        (interval / 10).clamp(TABLE_SLACK, Duration::from_millis(100))
    };
    loop {
        tokio::time::sleep_until(next).await;
        let r = match &check {
            ProbeCheck::Http(url) => crate::probe::http_get(url, bound).await,
            ProbeCheck::Tcp(_) => match &tcp {
                Some(Ok(t)) => {
                    // A read of the listening sockets up to `slack` older than this
                    // attempt's due time answers it: attempts due close together share one.
                    let due = next.into_std();
                    t.probe(bound, due.checked_sub(slack).unwrap_or(due)).await
                }
                Some(Err(e)) => Err(e.clone()),
                None => Ok(()),
            },
            ProbeCheck::Exec(cmd) => exec_once(cmd, bound, &sh, &config).await,
            // Told, not asked: never here.
            ProbeCheck::Log(_) | ProbeCheck::Notify => return,
        };
        next = tokio::time::Instant::now() + interval;
        let report = match r {
            // A pass after a pass changes nothing: not sent (a thousand health probes
            // would wake their tasks ten thousand times a second for nothing).
            Ok(()) if passing => continue,
            Ok(()) => Report::Passed,
            Err(e) => Report::Failed(e),
        };
        passing = report == Report::Passed;
        if tx.send(report).await.is_err() {
            return;
        }
    }
}

/// Runs `cmd` as the program would run (its environment, directory and user), in a process
/// group of its own that is killed when the attempt ends or is dropped.
async fn exec_once(
    cmd: &crate::config::Command,
    bound: Duration,
    sh: &Shared,
    config: &ProgramConfig,
) -> Result<(), String> {
    // As written: a string may be exec'd directly, not under `/bin/sh -c`.
    let shown = match cmd {
        crate::config::Command::Shell(s) => s.clone(),
        crate::config::Command::Argv(v) => v.join(" "),
    };
    let mut probe_config = config.clone();
    probe_config.command = cmd.clone();
    let user = match &config.user {
        Some(name) => {
            let name = name.clone();
            Some(
                tokio::task::spawn_blocking(move || lookup_user(&name))
                    .await
                    .map_err(|e| format!("cannot look up the user: {e}"))??,
            )
        }
        None => None,
    };
    let run = crate::spawn::new_run_id();
    let prepared = {
        let (base, opts, run) = (sh.base_dir.clone(), sh.spawn.clone(), run.clone());
        tokio::task::spawn_blocking(move || {
            SpawnCommand::prepare(&probe_config, &base, &opts, user.as_ref(), &run)
        })
        .await
        .map_err(|e| format!("cannot prepare the command: {e}"))??
    };
    let (mut group, pipes) = ProcessGroup::spawn(
        &config.name,
        &run,
        &prepared,
        crate::spawn::Streams::MERGED,
        None,
        libc::SIGKILL,
        Duration::ZERO,
        // Like the program's runs: known to the guardian (killed if the host dies) and,
        // under a subreaper, what it leaves behind is found.
        sh.subreaper,
        sh.observers.clone(),
        // Never adopted by a later server (no config is its own).
        crate::process_group::RunMeta {
            fingerprint: 0,
            restarts: 0,
            started_at: std::time::SystemTime::now(),
        },
    )
    .map_err(|f| format!("{shown}: {}", f.message))?;
    let Some(stdout) = pipes.stdout else {
        return Err(format!("{shown}: its output has no pipe"));
    };
    let output = tokio::spawn(read_tail(stdout));
    let status = tokio::time::timeout(bound, group.exited()).await;
    group.kill_now();
    let _ = tokio::time::timeout(Duration::from_secs(1), group.emptied()).await;
    group.finish();
    let said = tokio::time::timeout(Duration::from_millis(100), output)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    match status {
        Err(_) => Err(format!(
            "{shown}: no result within {}",
            crate::config::format_duration(bound)
        )),
        Ok(s) if s.code() == Some(0) => Ok(()),
        Ok(s) => Err(format!(
            "{shown}: {s}{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        )),
    }
}

/// The last line an exec probe wrote (at most 200 characters).
async fn read_tail(fd: std::os::fd::OwnedFd) -> String {
    use tokio::io::AsyncReadExt;
    let Ok(mut f) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return String::new();
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match f.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 8192 {
                    buf.drain(..buf.len() - 4096);
                }
            }
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.chars().take(200).collect()
}

/// Matches every line of the run's stdout and stderr against `re`.
async fn log_loop(re: &str, followers: [LogFollower; 2], tx: mpsc::Sender<Report>) {
    let Ok(re) = crate::probe::check_log_regex(re) else {
        return;
    };
    let [mut out, mut err] = followers;
    let mut m_out = crate::probe::LineMatcher::new(re.clone());
    let mut m_err = crate::probe::LineMatcher::new(re);
    loop {
        let (ev, m) = tokio::select! {
            e = out.recv() => (e, &mut m_out),
            e = err.recv() => (e, &mut m_err),
        };
        match ev {
            Some(LogEvent::Data(d)) => {
                if m.feed(&d) {
                    let _ = tx.send(Report::Passed).await;
                    return;
                }
            }
            // Output was lost between two chunks: a line is not joined across the gap.
            Some(LogEvent::Missed(n)) => {
                tracing::warn!("the log readiness check skipped {n} chunk(s) of output it could not keep up with");
                m.reset();
            }
            // The program is gone.
            None => return,
        }
    }
}

/// Waits for `READY=1` from one of the run's processes; passes `STATUS=` on.
async fn notify_loop(
    sock: crate::probe::NotifySocket,
    leader: u32,
    cgroup: Option<PathBuf>,
    tx: mpsc::Sender<Report>,
) {
    // STATUS= is passed on at most every STATUS_EVERY, the latest text winning: a program
    // that reports progress in a tight loop must not keep the program's task from its
    // commands and timers.
    const STATUS_EVERY: Duration = Duration::from_millis(50);
    let mut told = false;
    let mut pending: Option<String> = None;
    let mut next_status = tokio::time::Instant::now();
    loop {
        let msg = tokio::select! {
            m = sock.recv() => m,
            () = tokio::time::sleep_until(next_status), if pending.is_some() => {
                if let Some(s) = pending.take() {
                    if tx.send(Report::Status(s)).await.is_err() {
                        return;
                    }
                }
                next_status = tokio::time::Instant::now() + STATUS_EVERY;
                continue;
            }
        };
        let Ok(msg) = msg else {
            return;
        };
        if !is_the_runs(msg.pid, leader, cgroup.as_deref()) {
            // Once a run: a sender that exits at once (systemd-notify) is often gone before
            // it can be checked, and the user should learn why READY=1 went unheard.
            if !told {
                told = true;
                tracing::warn!(
                    pid = msg.pid,
                    "a notify message from a process that is not (or no longer) one of the program's was ignored: send it from a process of the program that is still running"
                );
            }
            continue;
        }
        if let Some(s) = msg.status.clone() {
            pending = Some(s);
        }
        // Due now, or said with READY=1 (the status that goes with it comes first).
        if pending.is_some() && (msg.ready || tokio::time::Instant::now() >= next_status) {
            if let Some(s) = pending.take() {
                if tx.send(Report::Status(s)).await.is_err() {
                    return;
                }
            }
            next_status = tokio::time::Instant::now() + STATUS_EVERY;
        }
        if msg.ready && tx.send(Report::Passed).await.is_err() {
            return;
        }
    }
}

/// Whether the cgroup path `sender` (as `/proc/<pid>/cgroup` shows it, inside the
/// hierarchy) is the run's cgroup `run` (a mounted path, `.../gosuv-P-N/prog-web`) or one
/// under it. The two last names identify the run: the supervisor's cgroup is named after
/// its process, which no one else can create but root.
fn in_run_cgroup(run: &std::path::Path, sender: &str) -> bool {
    let mut names = run.iter().rev().filter_map(|c| c.to_str());
    let (Some(prog), Some(root)) = (names.next(), names.next()) else {
        return false;
    };
    let segs: Vec<&str> = sender.split('/').collect();
    segs.windows(2).any(|w| w[0] == root && w[1] == prog)
}

/// Whether `pid` is one of the run's processes: in its cgroup, or in its session (every
/// run leads a session of its own).
fn is_the_runs(pid: u32, leader: u32, cgroup: Option<&std::path::Path>) -> bool {
    if pid == leader {
        return true;
    }
    if let Some(cg) = cgroup {
        if crate::procfs::cgroup_of(pid).is_some_and(|own| in_run_cgroup(cg, &own)) {
            return true;
        }
    }
    crate::procfs::ProcStat::read(pid).is_some_and(|s| s.session == leader)
}

#[cfg(test)]
mod tests {
    use super::in_run_cgroup;
    use std::path::Path;

    #[test]
    fn a_sender_is_in_the_run_only_in_its_cgroup_or_under_it() {
        let run = Path::new("/sys/fs/cgroup/unified/system.slice/gosuv-7-0/prog-web.2");
        assert!(in_run_cgroup(run, "/system.slice/gosuv-7-0/prog-web.2"));
        assert!(in_run_cgroup(
            run,
            "/system.slice/gosuv-7-0/prog-web.2/worker"
        ));
        // A cgroup of the same last name elsewhere, or another run of the program.
        assert!(!in_run_cgroup(run, "/prog-web.2"));
        assert!(!in_run_cgroup(run, "/system.slice/gosuv-7-0/prog-web.3"));
        assert!(!in_run_cgroup(run, "/system.slice/gosuv-8-0/prog-web.2"));
        assert!(!in_run_cgroup(run, "/"));
    }
}
