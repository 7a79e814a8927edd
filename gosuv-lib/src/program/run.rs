//! One run's processes as the program task sees them ([`Process`]), and what makes runs
//! ([`Launcher`]): the real ones spawn a process group, in its cgroup when it can have one,
//! with its pipes drained into the program's logs; the task's tests use fakes.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::{ProgramLogs, Shared, CGROUP_EMPTY_WAIT, EXIT_OUTPUT_WAIT, MEMORY_CHECK};
use crate::config::{CgroupMode, ProgramConfig};
use crate::events::ExitStatus;
use crate::logs::{drain, Stream};
use crate::process_group::{Adoption, GroupView, Ownership, ProcessGroup, RunMeta};
use crate::spawn::{lookup_user, Command as SpawnCommand};
use crate::stdin::StdinPipe;

/// What the task needs of one run's processes. The real one is [`RealProcess`]; tests use
/// a fake.
pub(crate) trait Process: Send + Sync + 'static {
    /// The leader's pid.
    fn pid(&self) -> u32;
    /// What stats need, when there is something to measure.
    fn view(&self) -> Option<Arc<GroupView>>;
    /// How the run is owned.
    fn ownership(&self) -> Ownership;
    /// Waits for the leader's exit (at once if it exited). Cancel-safe.
    fn exited(&mut self) -> impl Future<Output = ExitStatus> + Send + '_;
    /// The leader's exit, if it exited.
    fn exit(&mut self) -> Option<ExitStatus>;
    /// Asks every process of the run to stop: `sig`, then SIGCONT for a stopped one.
    fn stop(&mut self, sig: i32) -> impl Future<Output = ()> + Send + '_;
    /// Kills every process of the run.
    fn kill(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// Sends `sig` to every process of the run, and nothing else (no SIGCONT: a SIGSTOP
    /// asked for must stay). The task's fakes take no signals.
    fn signal(&mut self, sig: i32) -> impl Future<Output = ()> + Send + '_ {
        let _ = sig;
        std::future::ready(())
    }
    /// Waits until the leader exited and nothing of the run is left. Cancel-safe.
    fn emptied(&mut self) -> impl Future<Output = ()> + Send + '_;
    /// After the leader exited on its own: kills the rest, waits (briefly) for the output to
    /// reach the files, and finishes the run (now or in the background). Returns the pipe
    /// drains still reading.
    fn after_exit(self) -> impl Future<Output = Vec<JoinHandle<()>>> + Send;
    /// Once emptied: waits (briefly) for the output, reaps. Returns the drains still reading.
    fn finish(self) -> impl Future<Output = Vec<JoinHandle<()>>> + Send;
    /// The memory the run uses now, in bytes.
    fn memory(&self) -> impl Future<Output = Option<u64>> + Send + '_;
    /// Whether the kernel enforces `memory_max` for this run.
    fn kernel_enforces_memory(&self) -> bool;
    /// Whether the kernel killed a process of the run for lack of memory.
    fn oom_killed(&self) -> bool;
    /// Lets go of the run without touching it: stops reading its pipes once what was read
    /// is written, tells nobody it ended, kills nothing.
    fn let_go(self) -> impl Future<Output = ()> + Send;
}

/// Spawns runs of programs.
pub(crate) trait Launcher: Send + Sync + 'static {
    /// One run's processes.
    type Proc: Process;
    /// Spawns a run of `config`, its output into `logs`; `meta` is what observers are told
    /// of it besides its processes.
    fn launch(
        &self,
        config: &ProgramConfig,
        logs: &Arc<ProgramLogs>,
        meta: RunMeta,
    ) -> impl Future<Output = Result<Self::Proc, String>> + Send;
}

/// The real launcher: process groups, cgroups, pipes into the log sinks.
pub(crate) struct RealLauncher {
    pub shared: Arc<Shared>,
    /// A start's preparation outlived [`PREPARE_WAIT`] and is still blocked (its thread
    /// cannot be stopped): the next start fails at once instead of leaving another thread.
    pub hung: Arc<std::sync::atomic::AtomicBool>,
}

impl RealLauncher {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RealLauncher {
            shared,
            hung: Arc::default(),
        }
    }
}

/// A real run: its processes and the tasks that drain its pipes.
pub(crate) struct RealProcess {
    group: ProcessGroup,
    drains: Vec<JoinHandle<()>>,
    logs: Arc<ProgramLogs>,
    oom_before: u64,
    tracker: TaskTracker,
    /// The write end of its stdin pipe, when it has one: closed when the run is dropped
    /// (the program's slot only points at it).
    _stdin: Option<Arc<StdinPipe>>,
}

/// The longest a start waits for its files (directory, program, `env_file`) to be read.
const PREPARE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How many starts may be between their preparation and their spawn at once, in the whole
/// process. Preparing (a blocking thread) is faster than spawning (the runtime's workers):
/// when thousands of programs start together, unbounded, every program's prepared command
/// (its argv, its copy of the environment, the paths to try: a few KiB each) would be made
/// before the first few are spawned, 30 MB for 5,000 programs all at once, spread over the
/// heaps of as many blocking threads, and the server would keep that memory after. This
/// many keep both sides busy: the spawns are what limit the rate.
const STARTS_IN_FLIGHT: usize = 16;

/// A preparation that takes longer than this (a stat or a read under a hung mount) gives
/// its place back: it holds no prepared command yet, and the places must not all be taken
/// by starts stuck for [`PREPARE_WAIT`] while every other program of the process waits.
const PREPARE_QUICK: std::time::Duration = std::time::Duration::from_millis(100);

static IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(STARTS_IN_FLIGHT);

/// How many preparations may be on blocking threads at once, in the whole process: a
/// quarter of tokio's default pool of 512. Each holds its thread until its reads return,
/// and under a hung mount that is until the mount answers: unbounded, as many programs
/// under it would fill the pool, and every other blocking call of the process (the
/// programs file, stats, user lookups) would wait for ever. Past this many stuck, further
/// starts wait (at most [`PREPARE_WAIT`], then fail saying why).
const PREPARING_MAX: usize = 128;

static PREPARING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PREPARING_MAX);

/// One start between its preparation and its spawn; counted when it is done.
struct InFlight {
    _permit: tokio::sync::SemaphorePermit<'static>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        give_back::start_done();
    }
}

/// Whether the process gives the memory a burst of starts freed back to the system, once
/// the burst is over (glibc only; off unless turned on).
///
/// After thousands of starts glibc's malloc keeps tens of MB of free memory between live
/// objects for ever; `malloc_trim(0)` gives it back (measured with 5,000 idle programs:
/// 71.5 MB resident without, 56 MB with). It walks every heap of the process and holds
/// each heap's lock meanwhile, so it is the host's choice: the `gosuv` server turns it on;
/// a C, C++ or Python host that wants it calls this (or `malloc_trim` itself).
pub fn trim_memory_after_start_bursts(on: bool) {
    give_back::ENABLED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Hands the memory a burst of starts freed back to the system, once the burst is over,
/// where the host asked for it ([`trim_memory_after_start_bursts`]).
///
/// glibc's malloc keeps what a program frees for its next allocations: after thousands of
/// starts (each one's command, pipes and buffers made and freed on whichever thread, among
/// what every program keeps) the server holds tens of MB of free memory for ever, in pieces
/// between live objects that only `malloc_trim` returns (it gives back every free page,
/// not only a heap's top). Measured at 5,000 idle sleeps: 83 MB resident, 61 MB after
/// one trim. It walks every heap (a few ms for 100 MB), on a blocking thread, one planned
/// at a time and only after a burst: never on a start's path.
mod give_back {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A burst: this many starts since the last trim.
    const BURST: usize = 256;
    /// The burst is over when no start was made for this long.
    const QUIET: Duration = Duration::from_secs(1);

    pub(super) static ENABLED: AtomicBool = AtomicBool::new(false);
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    static PLANNED: AtomicBool = AtomicBool::new(false);

    /// Counts a start; after a burst, plans a trim for when the starts stop.
    pub(super) fn start_done() {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) || !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let n = STARTS.fetch_add(1, Ordering::Relaxed) + 1;
        if n < BURST || PLANNED.swap(true, Ordering::AcqRel) {
            return;
        }
        // Made before the task: a task the runtime drops unrun (it is ending) drops it
        // too, and the next burst plans its own.
        let planned = Planned;
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let _planned = planned;
            loop {
                let seen = STARTS.load(Ordering::Relaxed);
                tokio::time::sleep(QUIET).await;
                if STARTS.load(Ordering::Relaxed) == seen {
                    break;
                }
            }
            STARTS.store(0, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(trim).await;
        });
    }

    struct Planned;

    impl Drop for Planned {
        fn drop(&mut self) {
            PLANNED.store(false, Ordering::Release);
        }
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn trim() {
        // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
        unsafe { libc::malloc_trim(0) };
    }

    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    fn trim() {}
}

impl Launcher for RealLauncher {
    type Proc = RealProcess;

    async fn launch(
        &self,
        config: &ProgramConfig,
        logs: &Arc<ProgramLogs>,
        meta: RunMeta,
    ) -> Result<RealProcess, String> {
        let sh = &self.shared;
        let user = match &config.user {
            // The user database may be a network service: never on a runtime worker.
            Some(name) => {
                let name = name.clone();
                let found = tokio::task::spawn_blocking(move || lookup_user(&name))
                    .await
                    .map_err(|e| format!("cannot look up the user: {e}"))??;
                Some(found)
            }
            None => None,
        };
        // Given back by the preparation's thread when its reads return.
        let preparing = match tokio::time::timeout(PREPARE_WAIT, PREPARING.acquire()).await {
            Ok(permit) => permit.map_err(|e| format!("cannot start: {e}"))?,
            Err(_) => {
                return Err(format!(
                    "{PREPARING_MAX} starts have been reading their working directory, program \
                     or env_file for over {}s: is a mount hung? fix it or the paths",
                    PREPARE_WAIT.as_secs()
                ))
            }
        };
        // Held from the preparation to the spawn: see [`STARTS_IN_FLIGHT`].
        let mut in_flight = Some(InFlight {
            _permit: IN_FLIGHT
                .acquire()
                .await
                .map_err(|e| format!("cannot start: {e}"))?,
        });
        let run = crate::spawn::new_run_id();
        let cmd = {
            let (config, base, opts, run) = (
                config.clone(),
                sh.base_dir.clone(),
                sh.spawn.clone(),
                run.clone(),
            );
            // It stats the program and reads `env_file`: never on a runtime worker.
            // Bounded: a hung mount under the directory or `env_file` must not hold the
            // program's task (its stop, its removal, the shutdown) for ever.
            use std::sync::atomic::Ordering;
            if self.hung.load(Ordering::SeqCst) {
                return Err(format!(
                    "the last start's read of the working directory, the program or env_file \
                     (over {}s ago) has not returned yet: is a mount hung? fix it or the path",
                    PREPARE_WAIT.as_secs()
                ));
            }
            let mut prepared = tokio::task::spawn_blocking(move || {
                let _preparing = preparing;
                SpawnCommand::prepare(&config, &base, &opts, user.as_ref(), &run)
            });
            let quick = tokio::time::timeout(PREPARE_QUICK, &mut prepared).await;
            let done = match quick {
                Ok(done) => Ok(done),
                Err(_) => {
                    // Slow: its place goes to the others (see [`PREPARE_QUICK`]).
                    drop(in_flight.take());
                    tokio::time::timeout(PREPARE_WAIT.saturating_sub(PREPARE_QUICK), &mut prepared)
                        .await
                }
            };
            match done {
                Ok(done) => {
                    let cmd = done.map_err(|e| format!("cannot prepare the command: {e}"))??;
                    if in_flight.is_none() {
                        // A slow one counts again between its preparation and its spawn.
                        let permit = IN_FLIGHT
                            .acquire()
                            .await
                            .map_err(|e| format!("cannot start: {e}"))?;
                        in_flight.replace(InFlight { _permit: permit });
                    }
                    cmd
                }
                Err(_) => {
                    // One such thread per program at most: cleared when it returns.
                    self.hung.store(true, Ordering::SeqCst);
                    let hung = self.hung.clone();
                    tokio::spawn(async move {
                        let _ = prepared.await;
                        hung.store(false, Ordering::SeqCst);
                    });
                    return Err(format!(
                        "reading the working directory, the program or env_file took over {}s: \
                         is a mount hung? fix it or the path",
                        PREPARE_WAIT.as_secs()
                    ));
                }
            }
        };
        let cgroup = match config.cgroup {
            CgroupMode::Off => None,
            mode => match sh
                .cgroup_root()
                .and_then(|root| root.program(&config.name, config.memory_max))
            {
                Ok(cg) => Some(Arc::new(cg)),
                Err(e) if mode == CgroupMode::Required => {
                    return Err(format!("{e} (the program has `cgroup: required`)"))
                }
                Err(e) => {
                    tracing::debug!(program = %config.name, "no cgroup, owned by its process group: {e}");
                    None
                }
            },
        };
        let spawn = |cgroup| {
            ProcessGroup::spawn(
                &config.name,
                &run,
                &cmd,
                crate::spawn::Streams::of(config),
                cgroup,
                config.stop_signal.0 as i32,
                config.stop_duration(),
                sh.subreaper,
                sh.observers.clone(),
                meta,
            )
        };
        let (group, pipes) = match spawn(cgroup.clone()) {
            Ok(g) => g,
            Err(f) if f.in_cgroup && config.cgroup == CgroupMode::Auto => {
                tracing::warn!(program = %config.name, "{}: owned by its process group instead", f.message);
                spawn(None).map_err(|f| f.message)?
            }
            Err(f) => return Err(f.message),
        };
        Ok(RealProcess::with_pipes(sh, config, group, pipes, logs))
    }
}

impl RealLauncher {
    /// Takes over a run a previous server left (see [`Adoption`]): its processes, and its
    /// pipes drained into `logs` from now on.
    pub(crate) fn adopt(
        &self,
        config: &ProgramConfig,
        logs: &Arc<ProgramLogs>,
        adoption: Adoption,
        claimed: Result<crate::process_group::Claimed, String>,
    ) -> Result<RealProcess, String> {
        let sh = &self.shared;
        let cgroup = adoption
            .cgroup
            .clone()
            .map(|p| Arc::new(crate::cgroup::Cgroup::existing(p)));
        let group = ProcessGroup::adopt(
            &config.name,
            adoption.pid,
            adoption.start_time,
            cgroup.clone(),
            config.stop_signal.0 as i32,
            config.stop_duration(),
            sh.subreaper,
            sh.observers.clone(),
            RunMeta {
                fingerprint: config.fingerprint(),
                restarts: adoption.restarts,
                started_at: adoption.started_at,
            },
            claimed,
        )
        .inspect_err(|_| {
            // Its leader is gone, but what else the run left is the run's: killed, so that
            // the program never runs twice.
            crate::process_group::abandon(&adoption);
        })?;
        let pipes = crate::process_group::Pipes {
            stdout: Some(adoption.stdout),
            stderr: adoption.stderr,
            stdin: None,
        };
        Ok(RealProcess::with_pipes(sh, config, group, pipes, logs))
    }
}

impl RealProcess {
    /// A run whose pipes are drained into `logs` from now on, shown to the observers that
    /// keep them.
    fn with_pipes(
        sh: &Shared,
        config: &ProgramConfig,
        group: ProcessGroup,
        pipes: crate::process_group::Pipes,
        logs: &Arc<ProgramLogs>,
    ) -> RealProcess {
        tell_pipes(sh, config, &group, &pipes);
        let mut drains = Vec::with_capacity(2);
        if let Some(out) = pipes.stdout {
            drains.push(tokio::spawn(drain(out, logs.stdout.clone())));
        }
        if let Some(err) = pipes.stderr {
            drains.push(tokio::spawn(drain(err, logs.stderr.clone())));
        }
        let stdin = pipes.stdin.and_then(|fd| match StdinPipe::new(fd) {
            Ok(pipe) => {
                logs.stdin.set(&pipe);
                Some(pipe)
            }
            Err(e) => {
                // The pipe is closed (dropped): the program reads end-of-file.
                tracing::error!(program = %config.name, "cannot watch the stdin pipe: {e}");
                None
            }
        });
        let oom_before = group.oom_kills();
        RealProcess {
            group,
            drains,
            logs: logs.clone(),
            oom_before,
            tracker: sh.tracker.clone(),
            _stdin: stdin,
        }
    }
}

impl Process for RealProcess {
    fn pid(&self) -> u32 {
        self.group.leader()
    }

    fn view(&self) -> Option<Arc<GroupView>> {
        Some(self.group.view().clone())
    }

    fn ownership(&self) -> Ownership {
        self.group.view().ownership()
    }

    fn exited(&mut self) -> impl Future<Output = ExitStatus> + Send + '_ {
        self.group.exited()
    }

    fn exit(&mut self) -> Option<ExitStatus> {
        self.group.try_exit()
    }

    async fn stop(&mut self, sig: i32) {
        self.group.signal(sig).await;
        // A stopped (SIGSTOP) process must run to act on the signal.
        self.group.signal(libc::SIGCONT).await;
    }

    fn kill(&mut self) -> impl Future<Output = ()> + Send + '_ {
        self.group.kill()
    }

    fn signal(&mut self, sig: i32) -> impl Future<Output = ()> + Send + '_ {
        self.group.signal(sig)
    }

    fn emptied(&mut self) -> impl Future<Output = ()> + Send + '_ {
        self.group.emptied()
    }

    async fn after_exit(mut self) -> Vec<JoinHandle<()>> {
        // A program's processes live and die with its leader: leftovers would run twice once
        // it restarts.
        self.group.kill_now();
        if self.group.view().cgroup.is_some() {
            // Wait until the killed ones are gone, so the run's cgroup can be removed and
            // nothing of this run is still about when the next one starts.
            if tokio::time::timeout(CGROUP_EMPTY_WAIT, self.group.emptied())
                .await
                .is_err()
            {
                tracing::warn!(
                    pid = self.group.leader(),
                    "processes of an exited program outlive SIGKILL"
                );
            }
            self.logs.settle(&mut self.drains, EXIT_OUTPUT_WAIT).await;
            self.group.finish();
        } else {
            self.logs.settle(&mut self.drains, EXIT_OUTPUT_WAIT).await;
            // What left the group is found in /proc, killed and waited for in the
            // background: the next run has a group of its own.
            let mut group = self.group;
            self.tracker.spawn(async move {
                group.kill().await;
                group.emptied().await;
                group.finish();
            });
        }
        self.drains
    }

    async fn finish(mut self) -> Vec<JoinHandle<()>> {
        // This run's pipes only: an earlier run's may be held open by a process that left
        // the program, and would make every stop wait the whole time.
        self.logs.settle(&mut self.drains, EXIT_OUTPUT_WAIT).await;
        self.group.finish();
        self.drains
    }

    async fn memory(&self) -> Option<u64> {
        let view = self.group.view();
        if let Some(m) = view.cgroup.as_ref().and_then(|c| c.memory_current()) {
            return Some(m);
        }
        let snap = match view.cgroup {
            Some(_) => None,
            None => Some(crate::procfs::snapshot(MEMORY_CHECK / 2, None).await?),
        };
        let view = view.clone();
        let pages: u64 = tokio::task::spawn_blocking(move || {
            view.members(snap.as_deref())
                .iter()
                .map(|p| p.rss_pages)
                .sum()
        })
        .await
        .unwrap_or(0);
        Some(pages.saturating_mul(crate::procfs::page_size()))
    }

    fn kernel_enforces_memory(&self) -> bool {
        self.group
            .view()
            .cgroup
            .as_ref()
            .is_some_and(|c| c.enforces_memory())
    }

    fn oom_killed(&self) -> bool {
        self.group.oom_kills() > self.oom_before
    }

    async fn let_go(mut self) {
        // A drain is cancelled between reads: what it read is in the sink, and the sink's
        // writers finish it.
        for d in self.drains.drain(..) {
            d.abort();
            let _ = d.await;
        }
        // A disk that hangs does not hold the restart up for ever.
        let flushed = tokio::time::timeout(super::FLUSH_WAIT, async {
            self.logs.stdout.flushed().await;
            self.logs.stderr.flushed().await;
        })
        .await;
        if flushed.is_err() {
            tracing::warn!(
                pid = self.group.leader(),
                "output still unwritten after {:?}: let go of anyway",
                super::FLUSH_WAIT
            );
        }
        self.group.let_go();
    }
}

/// Shows the run's pipes to the observers that keep them (see [`GroupObserver::pipes`]).
fn tell_pipes(
    sh: &Shared,
    config: &ProgramConfig,
    group: &ProcessGroup,
    pipes: &crate::process_group::Pipes,
) {
    use std::os::fd::AsFd;
    let log = |stream: Stream| super::log_path(config, stream, &sh.base_dir, &sh.log_dir);
    let mut all = Vec::with_capacity(2);
    if let Some(out) = &pipes.stdout {
        all.push(crate::process_group::RunPipe {
            stream: Stream::Stdout,
            fd: out.as_fd(),
            log: log(Stream::Stdout),
            max_bytes: config.log_max_bytes,
            backups: config.log_backups,
            timestamps: config.log_timestamps,
        });
    }
    if let Some(err) = &pipes.stderr {
        all.push(crate::process_group::RunPipe {
            stream: Stream::Stderr,
            fd: err.as_fd(),
            log: log(Stream::Stderr),
            max_bytes: config.log_max_bytes,
            backups: config.log_backups,
            timestamps: config.log_timestamps,
        });
    }
    for o in sh.observers.iter() {
        let _ =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| o.pipes(group.info(), &all)));
    }
}
