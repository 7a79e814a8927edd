//! The public handle: a cheap, cloneable [`Supervisor`] that sends commands to one task per
//! program.
//!
//! Changes to the set of programs (add, update, remove, reload) are serialized by one async
//! lock, so a reload is all or nothing and a shutdown never races an add. A change runs to
//! its end in a task of its own even when its caller drops the future (a timeout around
//! the call, a client that went away): never half made. Every program task and every run
//! still being finished is tracked, and shutdown waits for all of them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde::Serialize;
use tokio::sync::{broadcast, oneshot, watch};
use tokio_util::task::TaskTracker;

use crate::config::{ProgramConfig, ServerConfig};
use crate::error::{Error, Result};
use crate::events::{Event, ProgramState};
use crate::logs::{LogCounters, LogFollower, Stream};
use crate::process_group::GroupObserver;
use crate::process_group::{Adoption, Claimed};
use crate::program::{launch, launch_adopted, Cmd, Left, ProgramHandle, ProgramStatus, Shared};
use crate::spawn::{raise_nofile, SpawnOptions};
use crate::stats::{ProcessStats, Sampler};

mod log_index;
use log_index::{clashes, files_of, Files, LogIndex};

/// Events a subscriber may fall behind before it is told it missed some.
const EVENT_QUEUE: usize = 4096;

/// How long one pass over `/proc` answers stats questions. It bounds the cost of frequent
/// status requests with many programs, and gives CPU % a window long enough to mean something.
pub const STATS_MAX_AGE: Duration = Duration::from_millis(500);

/// The longest a call may be asked to wait (one day): longer is surely a mistake, except
/// [`WAIT_FOREVER`].
pub const MAX_WAIT: Duration = Duration::from_secs(crate::config::MAX_DURATION_SECS);

/// A wait with no end, taken by every call that takes a wait or a timeout: it returns when
/// what it waits for happens (or fails), never with [`Error::Timeout`].
pub const WAIT_FOREVER: Duration = Duration::MAX;

/// A wait given in seconds, as the front ends take it: a number from 0 to one day.
///
/// # Errors
/// [`Error::Invalid`] for a negative, infinite, NaN or too long wait, naming the bound.
pub fn wait_limit(secs: f64) -> Result<Duration> {
    if secs.is_finite() && (0.0..=MAX_WAIT.as_secs_f64()).contains(&secs) {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(Error::Invalid(format!(
            "timeout {secs:?}: give a number of seconds from 0 to {} (1 day)",
            MAX_WAIT.as_secs()
        )))
    }
}

/// Every signal [`Supervisor::signal`] sends, by name without `SIG`; of the real-time ones
/// `RTMIN` and `RTMAX` (the others are `RTMIN+n` and `RTMAX-n`).
pub fn signal_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = nix::sys::signal::Signal::iterator()
        .map(|s| s.as_str().trim_start_matches("SIG"))
        .collect();
    names.extend(["RTMIN", "RTMAX"]);
    names
}

/// The real-time signals this system has (`SIGRTMIN..=SIGRTMAX`, 34..=64 on Linux with
/// glibc).
fn realtime() -> std::ops::RangeInclusive<i32> {
    libc::SIGRTMIN()..=libc::SIGRTMAX()
}

/// A real-time signal written `RTMIN`, `RTMIN+n`, `RTMAX-n` or `RTMAX` (without `SIG`).
fn parse_realtime(up: &str) -> Option<i32> {
    let rt = realtime();
    let offset = |t: &str| -> Option<i32> {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        t.parse::<u8>().ok().map(i32::from)
    };
    let n = if let Some(t) = up.strip_prefix("RTMIN") {
        match t {
            "" => *rt.start(),
            _ => rt.start().checked_add(offset(t.strip_prefix('+')?)?)?,
        }
    } else if let Some(t) = up.strip_prefix("RTMAX") {
        match t {
            "" => *rt.end(),
            _ => rt.end().checked_sub(offset(t.strip_prefix('-')?)?)?,
        }
    } else {
        return None;
    };
    rt.contains(&n).then_some(n)
}

/// A signal's name: `SIGHUP`, `SIGRTMIN+2`; `signal N` for a number that has none.
pub fn signal_name(sig: i32) -> String {
    if let Ok(s) = nix::sys::signal::Signal::try_from(sig) {
        return s.as_str().to_string();
    }
    let rt = realtime();
    if !rt.contains(&sig) {
        format!("signal {sig}")
    } else if sig == *rt.start() {
        "SIGRTMIN".into()
    } else if sig == *rt.end() {
        "SIGRTMAX".into()
    } else {
        format!("SIGRTMIN+{}", sig - rt.start())
    }
}

/// Whether `sig` is a signal [`Supervisor::signal`] sends.
fn is_signal(sig: i32) -> bool {
    nix::sys::signal::Signal::try_from(sig).is_ok() || realtime().contains(&sig)
}

/// A signal as an operator writes it: `HUP`, `SIGHUP`, `hup`, a number (`1`), or a
/// real-time one (`RTMIN+2`, `SIGRTMAX-1`, `36`).
///
/// # Errors
/// [`Error::Invalid`] naming it and listing the signals.
pub fn parse_signal(text: &str) -> Result<i32> {
    use nix::sys::signal::Signal;
    let t = text.trim();
    let sig = match t.parse::<i32>() {
        Ok(n) => is_signal(n).then_some(n),
        Err(_) => {
            let up = t.to_ascii_uppercase();
            let bare = up.strip_prefix("SIG").unwrap_or(&up);
            parse_realtime(bare).or_else(|| {
                format!("SIG{bare}")
                    .parse::<Signal>()
                    .ok()
                    .map(|s| s as i32)
            })
        }
    };
    sig.ok_or_else(|| {
        Error::Invalid(format!(
            "'{text}' is not a signal: use a name or its number, one of {} (and RTMIN+n, RTMAX-n)",
            signal_names().join(", ")
        ))
    })
}

fn check_wait(wait: Option<Duration>) -> Result<()> {
    match wait {
        Some(w) if w > MAX_WAIT && w != WAIT_FOREVER => Err(Error::Invalid(format!(
            "timeout {:.1}s: at most {} seconds (1 day), or for ever",
            w.as_secs_f64(),
            MAX_WAIT.as_secs()
        ))),
        _ => Ok(()),
    }
}

/// The last stats pass of a supervisor: when, for which runs, and what it found.
struct StatsCache {
    at: Instant,
    leaders: Vec<(String, u32)>,
    stats: BTreeMap<String, ProcessStats>,
}

/// Where a supervisor saves its programs after each change made through it (the `gosuv`
/// server's programs.yml): called with every program's config, on a blocking thread, under
/// the supervisor's change lock, so saves come in the order of the changes.
#[derive(Clone)]
pub struct Store(pub Arc<StoreFn>);

/// What a [`Store`] calls: saves every program's config (the supervisor's own, shared: keep
/// them rather than copies), or says why it could not.
pub type StoreFn = dyn Fn(&[Arc<ProgramConfig>]) -> std::result::Result<(), String> + Send + Sync;

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store(..)")
    }
}

/// How a supervisor is set up.
#[derive(Clone)]
pub struct SupervisorOptions {
    /// Where relative program directories resolve, and the default working directory.
    pub base_dir: PathBuf,
    /// Where `<name>.stdout.log` and `<name>.stderr.log` are written.
    pub log_dir: PathBuf,
    /// Make this process a child subreaper, so orphans of daemonising programs are reaped
    /// here. gosuv then reaps only processes of the sessions and cgroups it started, never a
    /// child the host started itself. Off by default; the `gosuv` server turns it on.
    pub subreaper: bool,
    /// Start a guardian process that stops every program if this process dies, even by
    /// SIGKILL (SIGTERM, then SIGKILL a second later, to each program's process group or
    /// cgroup). On by default: an embedder's programs die with it. The `gosuv` server turns
    /// it off: its programs are meant to be stopped by it.
    pub kill_on_parent_death: bool,
    /// Raise the open-files soft limit to at least this (`None`: to the hard limit); an
    /// error when the hard limit is lower. Children get the original limit back.
    pub min_fds: Option<u64>,
    /// Told when each program run starts and ends (the server's crash-recovery record).
    pub observer: Option<Arc<dyn GroupObserver>>,
    /// Saves the programs after each add, update and remove.
    pub store: Option<Store>,
}

impl std::fmt::Debug for SupervisorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorOptions")
            .field("base_dir", &self.base_dir)
            .field("log_dir", &self.log_dir)
            .field("subreaper", &self.subreaper)
            .field("kill_on_parent_death", &self.kill_on_parent_death)
            .field("min_fds", &self.min_fds)
            .field("observer", &self.observer.is_some())
            .field("store", &self.store.is_some())
            .finish()
    }
}

impl SupervisorOptions {
    /// Options for programs run from `base_dir`, logging into `base_dir/logs`, with the
    /// library's defaults: no subreaper, programs die with this process.
    pub fn new(base_dir: impl Into<PathBuf>) -> Self {
        let base_dir = base_dir.into();
        SupervisorOptions {
            log_dir: base_dir.join("logs"),
            base_dir,
            subreaper: false,
            kill_on_parent_death: true,
            min_fds: None,
            observer: None,
            store: None,
        }
    }

    /// Options from a loaded `config.yml`: its directory, its `logpath` and `minfds`, with
    /// the library's defaults otherwise.
    pub fn from_config(config: &ServerConfig) -> Self {
        SupervisorOptions {
            log_dir: config.server.log.logpath.clone(),
            min_fds: Some(config.server.minfds),
            ..Self::new(config.dir.clone())
        }
    }

    /// Sets `log_dir`.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = dir.into();
        self
    }
}

impl Default for SupervisorOptions {
    fn default() -> Self {
        Self::new(std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")))
    }
}

/// What a reload did, by program name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Programs that were not there before.
    pub added: Vec<String>,
    /// Programs whose config changed (restarted if they had a process).
    pub changed: Vec<String>,
    /// Programs that are gone (stopped first).
    pub removed: Vec<String>,
}

/// One item from [`Events::recv`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventNotice {
    /// A state change.
    Changed(Event),
    /// The subscriber fell behind and this many events were dropped.
    Missed(u64),
}

/// A subscription to every program's state changes.
#[derive(Debug)]
pub struct Events {
    rx: broadcast::Receiver<Event>,
    closed: watch::Receiver<bool>,
}

impl Events {
    /// The next event, or `None` once the supervisor has shut down (after the events of the
    /// shutdown itself) or is gone.
    pub async fn recv(&mut self) -> Option<EventNotice> {
        let notice = |r: Result<Event, broadcast::error::RecvError>| match r {
            Ok(ev) => Some(EventNotice::Changed(ev)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(EventNotice::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        };
        tokio::select! {
            biased;
            r = self.rx.recv() => notice(r),
            _ = self.closed.wait_for(|c| *c) => match self.rx.try_recv() {
                Ok(ev) => Some(EventNotice::Changed(ev)),
                Err(broadcast::error::TryRecvError::Lagged(n)) => Some(EventNotice::Missed(n)),
                Err(_) => None,
            },
        }
    }
}

/// Log counters of one program, both streams.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogStatus {
    /// Standard output.
    pub stdout: LogCounters,
    /// Standard error.
    pub stderr: LogCounters,
}

struct Inner {
    shared: Arc<Shared>,
    programs: RwLock<BTreeMap<String, ProgramHandle>>,
    /// The log files of `programs`, kept with them (changed under `changes`).
    log_files: Mutex<LogIndex>,
    /// Held by every change of the set of programs, and by shutdown.
    changes: tokio::sync::Mutex<()>,
    store: Option<Store>,
    /// The CPU sampler and the last pass: an async lock, held across the pass (on a blocking
    /// thread), so concurrent askers wait for one pass without holding a worker.
    sampler: Arc<tokio::sync::Mutex<(Sampler, Option<StatsCache>)>>,
    shutting_down: AtomicBool,
    /// Set once shutdown has stopped every program: ends every event subscription.
    closed: watch::Sender<bool>,
    started: Instant,
    started_wall: SystemTime,
}

/// A process supervisor. Cloning it is cheap; every clone drives the same programs.
///
/// It must be created and used inside a tokio runtime with its IO and time drivers enabled
/// (see [`crate::blocking`] for a supervisor that owns one).
///
/// A change of the program set ([`Supervisor::add`], `add_all`, `update`, `add_group`,
/// `update_group`, `remove`, `reload`) runs to its end even if the future it returns is
/// dropped before (a timeout around the call): a removal that stopped its program also
/// forgets it and saves the programs.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("programs", &self.names())
            .finish()
    }
}

/// Validates `config` on a blocking thread: it may look a user up (NSS can be a network
/// service) and stat a directory.
async fn validated(config: ProgramConfig) -> Result<ProgramConfig> {
    tokio::task::spawn_blocking(move || config.validate().map(|()| config))
        .await
        .map_err(|e| Error::Internal(format!("validation failed: {e}")))?
        .map_err(Error::Config)
}

/// Validates a whole set of programs (each one, unique names, dependencies among them) on
/// a blocking thread; every problem at once.
async fn validated_set(programs: Vec<ProgramConfig>) -> Result<Vec<ProgramConfig>> {
    tokio::task::spawn_blocking(move || {
        crate::config::check_set(&programs)
            .map(|()| programs)
            .map_err(Error::Config)
    })
    .await
    .map_err(|e| Error::Internal(format!("validation failed: {e}")))?
}

/// What [`Supervisor::release`] left without a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Programs with no run and none wanted (stopped, exited, fatal): not to be started by
    /// whoever takes over.
    pub idle: Vec<String>,
    /// Programs with no run that want one (in backoff, waiting, a restart whose stop was
    /// finished first): to be started by whoever takes over.
    pub wanted: Vec<String>,
}

impl Supervisor {
    /// A supervisor with no programs.
    ///
    /// # Errors
    /// The log directory cannot be created, the subreaper cannot be set, or the open-files
    /// limit cannot reach `min_fds`.
    pub fn new(options: SupervisorOptions) -> Result<Self> {
        // First: the guardian below is not ended while this supervisor lives.
        let in_use = crate::process_wide::InUse::new();
        crate::files::create_dir_all(&options.log_dir).map_err(|e| {
            Error::io(
                format!(
                    "cannot create the log directory {}",
                    options.log_dir.display()
                ),
                e,
            )
        })?;
        if options.subreaper {
            crate::reaper::enable_subreaper()
                .map_err(|e| Error::io("cannot become a child subreaper", e))?;
        }
        crate::spawn::reserve_low_fds();
        let child_nofile = raise_nofile(options.min_fds).map_err(|e| {
            Error::io(
                format!(
                    "cannot raise the open files limit to {} (minfds): lower it or raise the \
                     hard limit (ulimit -Hn)",
                    options.min_fds.unwrap_or(0)
                ),
                e,
            )
        })?;
        let mut observers: Vec<Arc<dyn GroupObserver>> = Vec::new();
        if options.kill_on_parent_death {
            // Running before any program starts, so none is ever unguarded.
            crate::guardian::ensure_started();
            observers.push(Arc::new(crate::guardian::Guardian));
        }
        observers.extend(options.observer.clone());
        let shared = Arc::new(Shared {
            events: broadcast::channel(EVENT_QUEUE).0,
            base_dir: options.base_dir,
            log_dir: options.log_dir,
            spawn: SpawnOptions { child_nofile },
            observers: observers.into(),
            subreaper: options.subreaper,
            cgroups: Mutex::new(None),
            tracker: TaskTracker::new(),
            peers: Default::default(),
            tcp_batch: Default::default(),
            _in_use: in_use,
        });
        Ok(Supervisor {
            inner: Arc::new(Inner {
                shared,
                programs: RwLock::new(BTreeMap::new()),
                log_files: Mutex::default(),
                changes: tokio::sync::Mutex::new(()),
                store: options.store,
                sampler: Arc::new(tokio::sync::Mutex::new((Sampler::default(), None))),
                shutting_down: AtomicBool::new(false),
                closed: watch::channel(false).0,
                started: Instant::now(),
                started_wall: SystemTime::now(),
            }),
        })
    }

    /// A supervisor for a loaded `config.yml` and its programs; programs with `start_auto`
    /// are started (without waiting for them).
    ///
    /// # Errors
    /// As [`Supervisor::new`] and [`Supervisor::add`].
    pub async fn from_config(config: &ServerConfig, programs: Vec<ProgramConfig>) -> Result<Self> {
        Self::with_programs(SupervisorOptions::from_config(config), programs).await
    }

    /// A supervisor with `options` and `programs`; programs with `start_auto` are started
    /// (without waiting for them). Use it with [`SupervisorOptions::from_config`] changed as
    /// needed.
    ///
    /// # Errors
    /// As [`Supervisor::new`] and [`Supervisor::add`].
    pub async fn with_programs(
        options: SupervisorOptions,
        programs: Vec<ProgramConfig>,
    ) -> Result<Self> {
        // The whole set is checked before anything is added: a bad program must not leave
        // the others started and then killed again.
        let programs = validated_set(programs).await?;
        let sup = Supervisor::new(options)?;
        if let Some((_, e)) = sup.add_all(programs).await?.into_iter().next() {
            return Err(e);
        }
        Ok(sup)
    }

    /// Reads `config.yml` (and its programs file) and builds a supervisor from them.
    ///
    /// # Errors
    /// Every config error, or as [`Supervisor::new`].
    pub async fn from_config_file(path: &Path) -> Result<Self> {
        let config = ServerConfig::load(path)?;
        let programs = config.load_programs()?;
        Self::from_config(&config, programs).await
    }

    /// The directory of the program logs.
    pub fn log_dir(&self) -> &Path {
        &self.inner.shared.log_dir
    }

    /// The directory relative paths resolve against.
    pub fn base_dir(&self) -> &Path {
        &self.inner.shared.base_dir
    }

    /// When the supervisor was created.
    pub fn started_at(&self) -> SystemTime {
        self.inner.started_wall
    }

    /// How long the supervisor has existed.
    pub fn uptime(&self) -> Duration {
        self.inner.started.elapsed()
    }

    fn programs(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ProgramHandle>> {
        self.inner
            .programs
            .read()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn programs_mut(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ProgramHandle>> {
        self.inner
            .programs
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.shutting_down.load(Ordering::SeqCst) {
            Err(Error::ShuttingDown)
        } else {
            Ok(())
        }
    }

    fn with_handle<T>(&self, name: &str, f: impl FnOnce(&ProgramHandle) -> T) -> Result<T> {
        let map = self.programs();
        map.get(name)
            .map(f)
            .ok_or_else(|| Error::NotFound(name.to_string()))
    }

    /// Why a program's task did not answer: the program went, everything went, or its task
    /// failed (and was replaced).
    fn gone(&self, name: &str) -> Error {
        if self.is_shut_down() {
            return Error::ShuttingDown;
        }
        // A task that ended was removed; one that lives dropped the reply when it failed.
        match self.with_handle(name, |h| h.cmds.is_closed()) {
            Ok(false) => Error::TaskFailed(name.to_string()),
            _ => Error::NotFound(name.to_string()),
        }
    }

    async fn send(&self, name: &str, cmd: Cmd) -> Result<()> {
        let tx = self.with_handle(name, |h| h.cmds.clone())?;
        tx.send(cmd).await.map_err(|_| self.gone(name))
    }

    /// Runs a change of the program set to its end even when the caller stops waiting
    /// for it (drops the future: a client that went away, a timeout around the call): a
    /// change half made (a program stopped but still listed with no task, a change live
    /// but not saved) would be worse than one finished late. The caller still gets the
    /// outcome when it waits.
    async fn to_the_end<T, F, Fut>(&self, change: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Supervisor) -> Fut,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        tokio::spawn(change(self.clone()))
            .await
            .map_err(|e| Error::Internal(format!("a change of the programs failed: {e}")))?
    }

    /// The names of every program, sorted.
    pub fn names(&self) -> Vec<String> {
        let map = self.programs();
        map.keys().cloned().collect()
    }

    /// How many programs there are (without copying their names).
    pub fn program_count(&self) -> usize {
        self.programs().len()
    }

    /// Whether there is a program of this name.
    pub fn has_program(&self, name: &str) -> bool {
        self.programs().contains_key(name)
    }

    /// Saves the programs through the store hook, if there is one.
    async fn store(&self) -> Result<()> {
        let Some(store) = self.inner.store.clone() else {
            return Ok(());
        };
        let configs = self.configs_shared();
        tokio::task::spawn_blocking(move || (store.0)(&configs))
            .await
            .map_err(|e| Error::Store(e.to_string()))?
            .map_err(Error::Store)
    }

    /// Adds a program, stopped; it is started (without waiting) when `start_auto` is set.
    /// Its `depends_on` must name programs that exist.
    ///
    /// # Errors
    /// [`Error::Config`] when the program is invalid or depends on a program that does not
    /// exist, [`Error::Exists`] when the name is taken, [`Error::ShuttingDown`],
    /// [`Error::Store`] when it was added but not saved.
    pub async fn add(&self, config: ProgramConfig) -> Result<()> {
        self.to_the_end(|s| async move { s.add_made(config).await })
            .await
    }

    async fn add_made(&self, config: ProgramConfig) -> Result<()> {
        let _changes = self.inner.changes.lock().await;
        let auto = config.start_auto.then(|| config.name.clone());
        self.add_locked(config).await?;
        self.start_auto(auto.into_iter().collect()).await;
        self.store().await
    }

    /// Adds programs that may depend on each other (a whole programs file), then starts
    /// those with `start_auto`, dependencies first. One that cannot be added is skipped
    /// with its error (and so is one that depends on it); the others are added.
    ///
    /// # Errors
    /// [`Error::Store`] when they were added but not saved; each program's own error is
    /// in the list returned.
    pub async fn add_all(&self, programs: Vec<ProgramConfig>) -> Result<Vec<(String, Error)>> {
        Ok(self.add_all_adopting(programs, Vec::new(), &[]).await?.0)
    }

    /// [`Supervisor::add_all`], taking over runs a previous process left running (a server
    /// that died or re-executed itself, see [`Adoption`]): a program with an adoption is
    /// `running` at once with that run, same pid, same uptime and restarts, its pipes
    /// drained from now on, and is not started. An adoption of a program not in `programs`
    /// is refused. The caller must make sure the run was started with the same config
    /// ([`ProgramConfig::fingerprint`]). Returns the programs that could not be added, and
    /// the adoptions refused with why (their run ended or is not the recorded one: the
    /// program is started as usual when it has `start_auto`). The programs named in
    /// `idle` are not started even with `start_auto` (they were stopped before the restart).
    ///
    /// # Errors
    /// [`Error::Store`] when they were added but not saved.
    pub async fn add_all_adopting(
        &self,
        programs: Vec<ProgramConfig>,
        adoptions: Vec<Adoption>,
        idle: &[String],
    ) -> Result<(Vec<(String, Error)>, Vec<(String, String)>)> {
        let idle = idle.to_vec();
        self.to_the_end(
            |s| async move { s.add_all_adopting_made(programs, adoptions, &idle).await },
        )
        .await
    }

    async fn add_all_adopting_made(
        &self,
        programs: Vec<ProgramConfig>,
        adoptions: Vec<Adoption>,
        idle: &[String],
    ) -> Result<(Vec<(String, Error)>, Vec<(String, String)>)> {
        let _changes = self.inner.changes.lock().await;
        let mut adoptions: HashMap<String, Adoption> = adoptions
            .into_iter()
            .map(|a| (a.program.clone(), a))
            .collect();
        let mut refused = Vec::new();
        let mut failed = Vec::new();
        let mut auto = Vec::new();
        // Dependencies first (in layers, one sort of the whole set): a program is added
        // after every program it depends on, or refused with why when one is missing.
        let by_name: BTreeMap<String, Arc<ProgramConfig>> = programs
            .iter()
            .map(|p| (p.name.clone(), Arc::new(p.clone())))
            .collect();
        let mut order = dependency_layers(&by_name);
        order.reverse();
        let mut rank: HashMap<&str, usize> = HashMap::new();
        for (i, name) in order.iter().flatten().enumerate() {
            rank.insert(name.as_str(), i);
        }
        let mut programs = programs;
        programs.sort_by_key(|p| rank.get(p.name.as_str()).copied().unwrap_or(usize::MAX));
        // The programs taken over are validated in one go (one trip to a blocking thread, not
        // one each: the server is unavailable while it takes its programs over).
        let mut valid: HashMap<String, Result<ProgramConfig>> = HashMap::new();
        if !adoptions.is_empty() {
            let adopted: Vec<ProgramConfig> = programs
                .iter()
                .filter(|p| adoptions.contains_key(&p.name))
                .cloned()
                .collect();
            // In two halves, on two blocking threads (both cores).
            let mut adopted = adopted;
            let second = adopted.split_off(adopted.len() / 2);
            let check = |part: Vec<ProgramConfig>| {
                tokio::task::spawn_blocking(move || {
                    part.into_iter()
                        .map(|c| {
                            let name = c.name.clone();
                            (name, c.validate().map(|()| c).map_err(Error::Config))
                        })
                        .collect::<Vec<_>>()
                })
            };
            let (a, b) = tokio::join!(check(adopted), check(second));
            for part in [a, b] {
                valid.extend(part.map_err(|e| Error::Internal(format!("validation failed: {e}")))?);
            }
        }
        // The leaders are claimed (a pidfd each, checked in /proc) on two blocking threads.
        let mut claims: HashMap<String, std::result::Result<Claimed, String>> = HashMap::new();
        if !adoptions.is_empty() {
            let mut all: Vec<(String, u32, u64, bool)> = adoptions
                .values()
                .map(|a| (a.program.clone(), a.pid, a.start_time, a.cgroup.is_some()))
                .collect();
            let second = all.split_off(all.len() / 2);
            let claim_all = |part: Vec<(String, u32, u64, bool)>| {
                tokio::task::spawn_blocking(move || {
                    part.into_iter()
                        .map(|(name, pid, start, cg)| {
                            (name, crate::process_group::claim(pid, start, cg))
                        })
                        .collect::<Vec<_>>()
                })
            };
            let (a, b) = tokio::join!(claim_all(all), claim_all(second));
            for part in [a, b] {
                claims.extend(part.map_err(|e| Error::Internal(format!("claiming failed: {e}")))?);
            }
        }
        for p in programs {
            let name = p.name.clone();
            let start = p.start_auto;
            let added = match adoptions.remove(&name) {
                Some(a) => match self.adopt_locked(
                    valid.remove(&name).unwrap_or(Ok(p)),
                    a,
                    claims
                        .remove(&name)
                        .unwrap_or_else(|| Err("not claimed (a bug)".into())),
                ) {
                    Ok(Ok(())) => {
                        continue;
                    }
                    Ok(Err(why)) => {
                        refused.push((name.clone(), why));
                        Ok(())
                    }
                    Err((e, a)) => {
                        // Not taken over, and not left running beside a new run.
                        crate::process_group::abandon(&a);
                        Err(e)
                    }
                },
                None => self.add_locked(p).await,
            };
            match added {
                Ok(()) if start && !idle.contains(&name) => auto.push(name),
                Ok(()) => {}
                Err(e) => failed.push((name, e)),
            }
        }
        for (name, a) in adoptions {
            crate::process_group::abandon(&a);
            refused.push((name, "no such program in the config: killed".to_string()));
        }
        self.start_auto(auto).await;
        self.store().await?;
        Ok((failed, refused))
    }

    /// Adds a program with the run it takes over; `Ok(Err(why))` when the run could not be
    /// taken (the program is added, stopped).
    #[allow(clippy::result_large_err)]
    fn adopt_locked(
        &self,
        config: Result<ProgramConfig>,
        adoption: Adoption,
        claimed: std::result::Result<Claimed, String>,
    ) -> std::result::Result<std::result::Result<(), String>, (Error, Adoption)> {
        let checked = self.check_open().and(config).and_then(|config| {
            if self.programs().contains_key(&config.name) {
                return Err(Error::Exists(config.name));
            }
            self.check_dependencies_of(&config)?;
            Ok(config)
        });
        let config = match checked {
            Ok(c) => c,
            Err(e) => return Err((e, adoption)),
        };
        let name = config.name.clone();
        let files = self.files_of(&config);
        let (handle, adopted) =
            launch_adopted(self.inner.shared.clone(), config, adoption, claimed);
        self.programs_mut().insert(name.clone(), handle);
        self.log_files().set(&name, files);
        Ok(adopted)
    }

    /// Sends a start (not waited for) to each of `names`, dependencies first.
    async fn start_auto(&self, names: Vec<String>) {
        // The order matters only where a program depends on another (and then each waits
        // for its dependencies anyway): otherwise, as given, at no cost per program.
        let configs = if names.len() > 1 {
            self.configs_shared()
        } else {
            Vec::new()
        };
        let ordered = if configs.iter().any(|c| !c.depends_on.is_empty()) {
            let wanted: std::collections::HashSet<&str> =
                names.iter().map(String::as_str).collect();
            let by_name: BTreeMap<String, Arc<ProgramConfig>> = configs
                .iter()
                .map(|c| (c.name.clone(), c.clone()))
                .collect();
            let mut layers = dependency_layers(&by_name);
            layers.reverse();
            layers
                .into_iter()
                .flatten()
                .filter(|n| wanted.contains(n.as_str()))
                .collect()
        } else {
            names
        };
        for name in &ordered {
            // Not waited for, not even until handled: adding many programs should keep
            // both runtime workers forking in parallel.
            let (tx, _rx) = oneshot::channel();
            if let Err(e) = self.send(name, Cmd::Start(tx)).await {
                tracing::warn!(program = %name, "cannot start: {e}");
            }
        }
    }

    /// Checks that `config`'s dependencies exist and that it closes no cycle with the
    /// programs there are. Costs what its dependencies reach, not the number of programs.
    fn check_dependencies_of(&self, config: &ProgramConfig) -> Result<()> {
        self.check_dependencies_with(config, &[])
    }

    /// [`Supervisor::check_dependencies_of`], with the programs of `batch` (added or
    /// changed together with `config`) as they will be.
    fn check_dependencies_with(
        &self,
        config: &ProgramConfig,
        batch: &[ProgramConfig],
    ) -> Result<()> {
        if config.depends_on.is_empty() {
            return Ok(());
        }
        let config_of = |n: &str| match batch.iter().find(|c| c.name == n) {
            Some(c) => Some(Arc::new(c.clone())),
            None => self
                .with_handle(n, |h| h.published.borrow().config.clone())
                .ok(),
        };
        let mut problems = Vec::new();
        for d in &config.depends_on {
            if d.name == config.name {
                problems.push(format!("'{}' depends on itself", config.name));
                continue;
            }
            match config_of(&d.name) {
                None => problems.push(format!(
                    "depends on '{}', which is no program: add it or remove the dependency",
                    d.name
                )),
                Some(dep)
                    if d.condition == crate::config::Condition::ExitedOk
                        && dep.autorestart == crate::config::Autorestart::Always =>
                {
                    problems.push(format!(
                        "depends on '{}' exiting (exited_ok), but it restarts after every exit (autorestart: always): give '{}' autorestart: false or unexpected",
                        d.name, d.name
                    ));
                }
                Some(_) => {}
            }
        }
        // A cycle: a path from one of its dependencies back to it.
        let mut path: Vec<String> = vec![config.name.clone()];
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut stack: Vec<(Vec<String>, usize)> = vec![(
            config.depends_on.iter().map(|d| d.name.clone()).collect(),
            0,
        )];
        while let Some((deps, next)) = stack.last_mut() {
            let Some(name) = deps.get(*next).cloned() else {
                stack.pop();
                path.pop();
                continue;
            };
            *next += 1;
            if name == config.name {
                let mut cycle = path.clone();
                cycle.push(name);
                problems.push(format!("dependency cycle: {}", cycle.join(" -> ")));
                break;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(c) = config_of(&name) {
                path.push(name);
                stack.push((c.depends_on.iter().map(|d| d.name.clone()).collect(), 0));
            }
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(Error::Config(crate::config::ConfigErrors(
            problems
                .into_iter()
                .map(|m| crate::config::ConfigError {
                    file: None,
                    line: None,
                    key: "depends_on".into(),
                    message: m,
                })
                .collect(),
        )))
    }

    async fn add_locked(&self, config: ProgramConfig) -> Result<()> {
        self.check_open()?;
        let config = validated(config).await?;
        if self.programs().contains_key(&config.name) {
            return Err(Error::Exists(config.name));
        }
        self.check_dependencies_of(&config)?;
        self.check_log_files(&config)?;
        self.insert(config)
    }

    /// Refuses `config` when one of its log files, where it would really be written, is
    /// another program's (one it does not replace) or gosuv's own log. Costs O(log n) in
    /// the number of programs: they are looked up in the index kept with them.
    fn check_log_files(&self, config: &ProgramConfig) -> Result<()> {
        self.check_group_log_files(std::slice::from_ref(config))
    }

    /// [`Supervisor::check_log_files`] for programs added or changed together: each is
    /// checked against the others of `group` as they will be, and against the programs
    /// there are but those of `group` (which it replaces).
    fn check_group_log_files(&self, group: &[ProgramConfig]) -> Result<()> {
        let reserved = crate::config::lexical(&self.inner.shared.log_dir.join("gosuv.log"));
        let names: std::collections::HashSet<&str> =
            group.iter().map(|p| p.name.as_str()).collect();
        let mut together = LogIndex::default();
        let mut errors = Vec::new();
        {
            let index = self.log_files();
            for p in group {
                let files = self.files_of(p);
                let writer = |file: &Path| {
                    index
                        .writer(file, &p.name, |n| names.contains(n))
                        .or_else(|| together.writer(file, &p.name, |_| false))
                };
                let messages = clashes(&p.name, &files, &reserved, writer);
                errors.extend(
                    messages
                        .into_iter()
                        .map(|message| crate::config::ConfigError {
                            file: None,
                            line: None,
                            key: format!("{}.log", p.name),
                            message,
                        }),
                );
                together.set(&p.name, files);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(crate::config::ConfigErrors(errors)))
        }
    }

    /// Where `config`'s streams are really written.
    fn files_of(&self, config: &ProgramConfig) -> Files {
        let sh = &self.inner.shared;
        files_of(config, &sh.base_dir, &sh.log_dir)
    }

    fn log_files(&self) -> std::sync::MutexGuard<'_, LogIndex> {
        self.inner
            .log_files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Two of `programs` writing one log file, or gosuv's own: an error naming them (only the
    /// programs from index `blame_from` on are blamed).
    fn log_clashes(&self, programs: &[&ProgramConfig], blame_from: usize) -> Result<()> {
        let sh = &self.inner.shared;
        let own = sh.log_dir.join("gosuv.log");
        let clashes = crate::config::shared_log_files_by(programs, Some(&own), |p, key| {
            let stream = if key == "stdout_logfile" {
                crate::logs::Stream::Stdout
            } else {
                crate::logs::Stream::Stderr
            };
            crate::program::log_path(p, stream, &sh.base_dir, &sh.log_dir)
        });
        let errors: Vec<crate::config::ConfigError> = clashes
            .into_iter()
            .filter(|(i, _)| *i >= blame_from)
            .map(|(i, message)| crate::config::ConfigError {
                file: None,
                line: None,
                key: format!("{}.log", programs[i].name),
                message,
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(crate::config::ConfigErrors(errors)))
        }
    }

    /// Refuses a reload in which a program takes a log file another program writes now
    /// (one changed or removed by the same reload): the changes are applied one by one, so
    /// for a moment both would write it. Done in two reloads, it is safe.
    fn log_handovers(
        &self,
        current: &HashMap<String, ProgramConfig>,
        new: &[ProgramConfig],
    ) -> Result<()> {
        let sh = &self.inner.shared;
        let paths = |p: &ProgramConfig| {
            [crate::logs::Stream::Stdout, crate::logs::Stream::Stderr]
                .into_iter()
                .filter_map(|s| crate::program::log_path(p, s, &sh.base_dir, &sh.log_dir))
                .collect::<Vec<_>>()
        };
        let mut in_use: HashMap<std::path::PathBuf, &str> = HashMap::new();
        for (name, c) in current {
            for path in paths(c) {
                in_use.insert(path, name);
            }
        }
        let mut errors = Vec::new();
        for p in new {
            if current.get(&p.name) == Some(p) {
                continue;
            }
            for path in paths(p) {
                match in_use.get(&path) {
                    Some(holder) if *holder != p.name => errors.push(crate::config::ConfigError {
                        file: None,
                        line: None,
                        key: format!("{}.log", p.name),
                        message: format!(
                            "'{}' would write {}, which '{holder}' writes until this reload \
                             changes it: give one of them another file first, reload, then \
                             make the change",
                            p.name,
                            path.display()
                        ),
                    }),
                    _ => {}
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(crate::config::ConfigErrors(errors)))
        }
    }

    /// Adds a program of a set whose dependencies were checked as a whole (a reload).
    async fn add_unchecked_locked(&self, config: ProgramConfig) -> Result<()> {
        self.check_open()?;
        let config = validated(config).await?;
        self.insert(config)
    }

    fn insert(&self, config: ProgramConfig) -> Result<()> {
        let name = config.name.clone();
        let mut map = self.programs_mut();
        if map.contains_key(&name) {
            return Err(Error::Exists(name));
        }
        let files = self.files_of(&config);
        map.insert(name.clone(), launch(self.inner.shared.clone(), config));
        drop(map);
        self.log_files().set(&name, files);
        Ok(())
    }

    /// Replaces a program's config. If it changed and the program had a process, it is
    /// restarted with the new config (stopped with the old `stop_signal`). Returns whether
    /// it is restarted.
    ///
    /// # Errors
    /// [`Error::Config`], [`Error::NotFound`], [`Error::Store`] when it was changed but not
    /// saved.
    pub async fn update(&self, config: ProgramConfig) -> Result<bool> {
        self.to_the_end(|s| async move { s.update_made(config).await })
            .await
    }

    async fn update_made(&self, config: ProgramConfig) -> Result<bool> {
        let _changes = self.inner.changes.lock().await;
        let restarted = self.update_locked(config, true).await?;
        self.store().await?;
        Ok(restarted)
    }

    /// Adds several programs (the instances of one `numprocs` program, say) all or none,
    /// under one change: each is checked as [`Supervisor::add`] checks one, with the others
    /// of `programs` counted as there (for `depends_on` and log files); if any fails,
    /// nothing is added, and nobody ever sees a part of them. Those with `start_auto` are
    /// then started (without waiting).
    ///
    /// # Errors
    /// As [`Supervisor::add`] (the first problem found); [`Error::Config`] for two programs
    /// of one name.
    pub async fn add_group(&self, programs: Vec<ProgramConfig>) -> Result<()> {
        self.to_the_end(|s| async move { s.add_group_made(programs).await })
            .await
    }

    async fn add_group_made(&self, programs: Vec<ProgramConfig>) -> Result<()> {
        let _changes = self.inner.changes.lock().await;
        self.check_open()?;
        let programs = self.checked_group(programs, false).await?;
        let auto: Vec<String> = programs
            .iter()
            .filter(|p| p.start_auto)
            .map(|p| p.name.clone())
            .collect();
        for p in programs {
            self.insert(p)?;
        }
        self.start_auto(auto).await;
        self.store().await
    }

    /// Replaces the configs of several programs (the instances of one `numprocs` program,
    /// say) all or none, under one change: every one is checked (it exists, it is valid,
    /// its dependencies and log files with the others as they will be) before any changes.
    /// Returns whether any was restarted.
    ///
    /// # Errors
    /// As [`Supervisor::update`] (the first problem found; nothing changed);
    /// [`Error::Config`] for two programs of one name.
    pub async fn update_group(&self, programs: Vec<ProgramConfig>) -> Result<bool> {
        self.to_the_end(|s| async move { s.update_group_made(programs).await })
            .await
    }

    async fn update_group_made(&self, programs: Vec<ProgramConfig>) -> Result<bool> {
        let _changes = self.inner.changes.lock().await;
        self.check_open()?;
        let programs = self.checked_group(programs, true).await?;
        let mut restarted = false;
        for p in programs {
            restarted |= self.update_locked(p, false).await?;
        }
        self.store().await?;
        Ok(restarted)
    }

    /// Validates programs to add (`existing` false: none may exist yet) or update (all
    /// must exist), checking their dependencies and log files with the others of the group
    /// as they will be. Called with the changes lock held.
    async fn checked_group(
        &self,
        programs: Vec<ProgramConfig>,
        existing: bool,
    ) -> Result<Vec<ProgramConfig>> {
        let mut valid = Vec::new();
        let mut names = std::collections::HashSet::new();
        for p in programs {
            let p = validated(p).await?;
            if !names.insert(p.name.clone()) {
                return Err(Error::Config(crate::config::ConfigErrors::single(
                    None,
                    format!("'{}' is given twice: each program once", p.name),
                )));
            }
            let there = self.programs().contains_key(&p.name);
            if there && !existing {
                return Err(Error::Exists(p.name));
            }
            if !there && existing {
                return Err(Error::NotFound(p.name));
            }
            valid.push(p);
        }
        for p in &valid {
            self.check_dependencies_with(p, &valid)?;
        }
        self.check_group_log_files(&valid)?;
        Ok(valid)
    }

    /// Updates a program; its dependencies are checked against the others unless the
    /// caller checked the whole new set (a reload).
    async fn update_locked(&self, config: ProgramConfig, check_deps: bool) -> Result<bool> {
        self.check_open()?;
        let config = validated(config).await?;
        let name = config.name.clone();
        if !self.programs().contains_key(&name) {
            return Err(Error::NotFound(name));
        }
        if check_deps {
            self.check_dependencies_of(&config)?;
            self.check_log_files(&config)?;
        }
        let files = self.files_of(&config);
        let (tx, rx) = oneshot::channel();
        self.send(&name, Cmd::Update(Box::new(config), tx)).await?;
        // Sent: the task applies it, even if this caller goes away before the answer.
        self.log_files().set(&name, files);
        rx.await.map_err(|_| self.gone(&name))
    }

    /// Stops a program (waiting until nothing of it is left) and removes it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Store`] when it was removed but not saved.
    pub async fn remove(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.to_the_end(|s| async move { s.remove_made(&name).await })
            .await
    }

    async fn remove_made(&self, name: &str) -> Result<()> {
        let _changes = self.inner.changes.lock().await;
        self.check_no_dependents(name)?;
        self.remove_locked(name).await?;
        self.store().await
    }

    /// Refuses to remove a program others depend on: they would wait for nothing, and a
    /// saved programs file would no longer load.
    fn check_no_dependents(&self, name: &str) -> Result<()> {
        let dependents: Vec<String> = self
            .configs_shared()
            .iter()
            .filter(|c| c.name != name && c.depends_on.iter().any(|d| d.name == name))
            .map(|c| c.name.clone())
            .collect();
        if dependents.is_empty() {
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "'{name}' is a dependency of {}: remove {} first, or take '{name}' out of their depends_on",
            dependents.join(", "),
            if dependents.len() == 1 { "it" } else { "them" }
        )))
    }

    async fn remove_locked(&self, name: &str) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Remove(tx)).await?;
        let _ = rx.await;
        self.forget(name).await;
        Ok(())
    }

    /// The supervisor's cgroup, if one was made.
    fn cgroup_root(&self) -> Option<Arc<crate::cgroup::CgroupRoot>> {
        self.inner
            .shared
            .cgroups
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drops a program whose task ended: its followers end, its cgroup goes.
    async fn forget(&self, name: &str) {
        let handle = self.programs_mut().remove(name);
        self.log_files().remove(name);
        self.inner
            .shared
            .peers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        if let Some(h) = handle {
            h.logs.stdout.close_followers();
            h.logs.stderr.close_followers();
            // The last sender goes first: a task that lost its removal (a panic) ends when
            // nobody can send it anything any more.
            let ProgramHandle { cmds, task, .. } = h;
            drop(cmds);
            let _ = task.await;
        }
        self.inner.sampler.lock().await.0.forget(name);
        let root = self.cgroup_root();
        if let Some(root) = root {
            root.remove_program(name);
        }
    }

    /// Starts a program. With `wait`, returns once it is `running` (after `start_seconds`),
    /// or the error that made its starts fail; without, once the start has been handled (the
    /// status returned shows `starting`, or later).
    ///
    /// # Errors
    /// [`Error::StartFailed`] (with the reason of the last failure), [`Error::Timeout`] (the
    /// program carries on trying), [`Error::StoppedBeforeRunning`], [`Error::NotFound`],
    /// [`Error::Invalid`] for a wait over [`MAX_WAIT`].
    pub async fn start(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        self.check_open()?;
        check_wait(wait)?;
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Start(tx)).await?;
        self.await_reply(name, "running", wait, rx).await
    }

    /// Restarts a program: stops it if it has a process, then starts it, as one request.
    /// Waits like [`Supervisor::start`].
    ///
    /// # Errors
    /// As [`Supervisor::start`].
    pub async fn restart(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        self.check_open()?;
        check_wait(wait)?;
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Restart(tx)).await?;
        self.await_reply(name, "running", wait, rx).await
    }

    /// Stops a program: `stop_signal` to its processes, SIGKILL after `stop_timeout`. With
    /// `wait`, returns once nothing of it is left.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::NotFound`], [`Error::Invalid`] for a wait over
    /// [`MAX_WAIT`].
    pub async fn stop(&self, name: &str, wait: Option<Duration>) -> Result<ProgramStatus> {
        check_wait(wait)?;
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Stop(tx)).await?;
        self.await_reply(name, "stopped", wait, rx).await
    }

    /// Sends `signal` (a signal number, see [`parse_signal`]) to every process of a
    /// program's current run, the way its `stop_signal` goes: to its cgroup, or to its process
    /// group and the processes gosuv found outside it. Never to a bare pid that may have been
    /// reused: the program's task holds the run's leader by a pidfd. Changes nothing else
    /// (a signal that ends the program is an exit like any other).
    ///
    /// # Errors
    /// [`Error::Invalid`] for a number that is no signal, or when the program has no process
    /// (`starting`, `running` and `stopping` have one; the message names its state);
    /// [`Error::NotFound`].
    pub async fn signal(&self, name: &str, signal: i32) -> Result<()> {
        self.signal_run(name, signal, None).await
    }

    /// As [`Supervisor::signal`], but only to the run whose leader is `pid` when given: an
    /// operator who saw pid M means that run, and a restart meanwhile (a new run still
    /// setting up its signal handlers) must not get a signal meant for the old one.
    ///
    /// # Errors
    /// As [`Supervisor::signal`]; [`Error::Invalid`] also when the current run's leader is
    /// not `pid` (or there is no run), and then nothing was sent.
    pub async fn signal_run(&self, name: &str, signal: i32, pid: Option<u32>) -> Result<()> {
        if !is_signal(signal) {
            return Err(Error::Invalid(format!(
                "{signal} is not a signal number: use one of {}",
                signal_names().join(", ")
            )));
        }
        let (tx, rx) = oneshot::channel();
        self.send(name, Cmd::Signal(signal, pid, tx)).await?;
        rx.await.map_err(|_| self.gone(name))?
    }

    /// Waits until a program is `running` (ready, with a `ready` probe), without starting
    /// it: returns at once when it is; fails when it goes `fatal`, or is removed, or after
    /// `timeout` (it carries on).
    ///
    /// # Errors
    /// [`Error::StartFailed`] with its `last_error` when it goes `fatal`,
    /// [`Error::Timeout`], [`Error::NotFound`], [`Error::Invalid`] for a timeout over
    /// [`MAX_WAIT`].
    pub async fn wait(&self, name: &str, timeout: Duration) -> Result<ProgramStatus> {
        check_wait(Some(timeout))?;
        let mut rx = self.with_handle(name, |h| h.published.clone())?;
        let until_running = async {
            loop {
                let (state, why) = {
                    let p = rx.borrow_and_update();
                    (p.state, p.last_error.clone())
                };
                match state {
                    ProgramState::Running => return Ok(()),
                    ProgramState::Fatal => {
                        return Err(Error::StartFailed {
                            name: name.to_string(),
                            reason: why.unwrap_or_else(|| "it is fatal".into()),
                        })
                    }
                    _ => {}
                }
                if rx.changed().await.is_err() {
                    return Err(Error::NotFound(name.to_string()));
                }
            }
        };
        match tokio::time::timeout(timeout, until_running).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout {
                    name: name.to_string(),
                    wanted: "running".into(),
                    state: self.status(name).map_or(ProgramState::Stopped, |s| s.state),
                    timeout,
                })
            }
        }
        self.status(name)
    }

    async fn await_reply(
        &self,
        name: &str,
        wanted: &str,
        wait: Option<Duration>,
        rx: oneshot::Receiver<Result<()>>,
    ) -> Result<ProgramStatus> {
        if wait.is_none() {
            // Not waiting for the state, but for the command to be handled, so that the
            // status returned already shows its effect (`starting`, `stopping` ...).
            let (tx, synced) = oneshot::channel();
            self.send(name, Cmd::Sync(tx)).await?;
            let _ = synced.await;
        }
        if let Some(timeout) = wait {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(r)) => r?,
                Ok(Err(_)) => return Err(self.gone(name)),
                Err(_) => {
                    return Err(Error::Timeout {
                        name: name.to_string(),
                        wanted: wanted.to_string(),
                        state: self.status(name).map_or(ProgramState::Stopped, |s| s.state),
                        timeout,
                    })
                }
            }
        }
        self.status(name)
    }

    /// Starts every program that is not running, concurrently; one result per program.
    pub async fn start_all(&self, wait: Option<Duration>) -> Vec<(String, Result<ProgramStatus>)> {
        let names = self.names();
        let results = join_all(names.iter().map(|n| self.start(n, wait))).await;
        names.into_iter().zip(results).collect()
    }

    /// Stops every program; one result per program. Dependents are stopped before what
    /// they depend on (each layer waited for, except the last, which waits as `wait`
    /// says); programs with no dependencies between them are stopped concurrently.
    pub async fn stop_all(&self, wait: Option<Duration>) -> Vec<(String, Result<ProgramStatus>)> {
        let layers = self.stop_layers();
        let last = layers.len().saturating_sub(1);
        let mut out = Vec::new();
        for (i, layer) in layers.into_iter().enumerate() {
            // A layer is waited for as long as its stops take (then SIGKILL, and a little
            // more): one stuck program does not keep what it depends on from stopping.
            let wait = if i < last {
                Some(self.layer_stop_bound(&layer))
            } else {
                wait
            };
            let results = join_all(layer.iter().map(|n| self.stop(n, wait))).await;
            out.extend(layer.into_iter().zip(results));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every program in the order they stop, in layers: the programs nothing depends on
    /// first, then those only they depend on, and so on (each layer's programs may stop
    /// together). Reversed, the order they start in.
    pub fn stop_order(&self) -> Vec<Vec<String>> {
        self.stop_layers()
    }

    /// How long the stops of `layer` take at most: its longest `stop_timeout`, then the
    /// SIGKILL and a few seconds for the processes to go.
    fn layer_stop_bound(&self, layer: &[String]) -> Duration {
        layer
            .iter()
            .filter_map(|n| {
                self.with_handle(n, |h| h.published.borrow().config.stop_duration())
                    .ok()
            })
            .max()
            .unwrap_or(Duration::ZERO)
            .saturating_add(Duration::from_secs(10))
            .min(MAX_WAIT)
    }

    /// Every program in the order they stop: dependents before what they depend on.
    fn stop_layers(&self) -> Vec<Vec<String>> {
        let configs: BTreeMap<String, Arc<ProgramConfig>> = self
            .configs_shared()
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        dependency_layers(&configs)
    }

    /// Restarts every program, concurrently; one result per program.
    pub async fn restart_all(
        &self,
        wait: Option<Duration>,
    ) -> Vec<(String, Result<ProgramStatus>)> {
        let names = self.names();
        let results = join_all(names.iter().map(|n| self.restart(n, wait))).await;
        names.into_iter().zip(results).collect()
    }

    /// Waits until a program is in `state` (returns at once if it is), up to `timeout`.
    /// A state held only for an instant (`exited` just before an automatic restart) still
    /// counts: transitions are watched, not just the latest state.
    ///
    /// # Errors
    /// [`Error::Timeout`], [`Error::NotFound`] (also when it is removed meanwhile),
    /// [`Error::Invalid`] for a wait over [`MAX_WAIT`].
    pub async fn wait_for(
        &self,
        name: &str,
        state: ProgramState,
        timeout: Duration,
    ) -> Result<ProgramStatus> {
        check_wait(Some(timeout))?;
        // Subscribe before looking, so no transition falls between the look and the wait.
        let mut events = self.subscribe();
        let mut published = self.with_handle(name, |h| h.published.clone())?;
        let r = tokio::time::timeout(timeout, async {
            if published.borrow_and_update().state == state {
                return Ok(());
            }
            loop {
                tokio::select! {
                    ev = events.recv() => match ev {
                        Some(EventNotice::Changed(e)) if e.program == name && e.to == state => {
                            return Ok(())
                        }
                        Some(EventNotice::Missed(_)) if published.borrow().state == state => {
                            return Ok(())
                        }
                        Some(_) => {}
                        None => return Err(Error::ShuttingDown),
                    },
                    changed = published.changed() => {
                        if changed.is_err() {
                            return Err(Error::NotFound(name.to_string()));
                        }
                    }
                }
            }
        })
        .await;
        match r {
            Ok(Ok(())) => self.status(name),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout {
                name: name.to_string(),
                wanted: state.to_string(),
                state: self.status(name)?.state,
                timeout,
            }),
        }
    }

    /// One program's status.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn status(&self, name: &str) -> Result<ProgramStatus> {
        self.with_handle(name, ProgramHandle::status)
    }

    /// Every program's status, sorted by name.
    pub fn list(&self) -> Vec<ProgramStatus> {
        let map = self.programs();
        map.values().map(ProgramHandle::status).collect()
    }

    /// One program's config (the new one, while a restart for an update is under way).
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn config(&self, name: &str) -> Result<ProgramConfig> {
        self.with_handle(name, |h| (*h.published.borrow().config).clone())
    }

    /// Every program's config, sorted by name, shared: a config is never changed in place (an
    /// update publishes a new one), so a caller may key a cache on [`Arc::ptr_eq`].
    pub fn configs_shared(&self) -> Vec<Arc<ProgramConfig>> {
        let map = self.programs();
        map.values()
            .map(|h| h.published.borrow().config.clone())
            .collect()
    }

    /// Every program's config, sorted by name.
    pub fn configs(&self) -> Vec<ProgramConfig> {
        let map = self.programs();
        map.values()
            .map(|h| (*h.published.borrow().config).clone())
            .collect()
    }

    /// Makes the set of programs equal to `programs`: adds the new ones (starting those
    /// with `start_auto`), updates the changed ones (restarting those that had a process)
    /// and removes the missing ones (stopping them first). Unchanged programs are not
    /// touched. An invalid list changes nothing; concurrent reloads (and other changes) are
    /// applied one after the other. The store hook is not called: the list came from where
    /// it is stored.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid list (duplicate or invalid programs),
    /// [`Error::ShuttingDown`].
    pub async fn reload(&self, programs: Vec<ProgramConfig>) -> Result<ReloadReport> {
        self.to_the_end(|s| async move { s.reload_made(programs).await })
            .await
    }

    async fn reload_made(&self, programs: Vec<ProgramConfig>) -> Result<ReloadReport> {
        let _changes = self.inner.changes.lock().await;
        self.check_open()?;
        let programs = validated_set(programs).await?;
        // The new set as a whole: what it replaces writes nothing once it is applied.
        self.log_clashes(&programs.iter().collect::<Vec<_>>(), 0)?;
        let current: HashMap<String, ProgramConfig> = self
            .configs()
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let wanted: std::collections::HashSet<&str> =
            programs.iter().map(|p| p.name.as_str()).collect();
        self.log_handovers(&current, &programs)?;
        let mut report = ReloadReport::default();
        let removed: Vec<String> = current
            .keys()
            .filter(|n| !wanted.contains(n.as_str()))
            .cloned()
            .collect();
        // New programs first (all added before any starts: one may depend on another added
        // after it), then the changed ones (a program waiting for one that goes no longer
        // names it), then the removals, dependents first: at each step, every dependency
        // named exists.
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for p in programs {
            match current.get(&p.name) {
                None => added.push(p),
                Some(old) if *old != p => changed.push(p),
                Some(_) => {}
            }
        }
        let mut auto = Vec::new();
        for p in added {
            report.added.push(p.name.clone());
            if p.start_auto {
                auto.push(p.name.clone());
            }
            self.add_unchecked_locked(p).await?;
        }
        for p in changed {
            report.changed.push(p.name.clone());
            self.update_locked(p, false).await?;
        }
        let going: std::collections::HashSet<&str> = removed.iter().map(String::as_str).collect();
        for layer in self.stop_layers() {
            let removals: Vec<_> = layer
                .iter()
                .filter(|n| going.contains(n.as_str()))
                .map(|n| self.remove_locked(n))
                .collect();
            for r in join_all(removals).await {
                // Removed meanwhile by nobody else (the lock is held): only a task that failed.
                if let Err(e) = r {
                    tracing::warn!("reload: {e}");
                }
            }
        }
        report.removed = removed;
        self.start_auto(auto).await;
        report.added.sort();
        report.changed.sort();
        report.removed.sort();
        Ok(report)
    }

    /// Writes all of `data` to a program's stdin pipe (a program whose
    /// [`ProgramIo::stdin`](crate::ProgramIo) is [`StdinMode::Pipe`](crate::StdinMode)),
    /// waiting for room as long as the program takes to read. Concurrent writes go one after
    /// the other, never interleaved. The wait is the caller's: a program that does not read
    /// holds up this call, never the supervisor. Cancelling the future may leave a first
    /// part of `data` written: [`Supervisor::write_stdin_within`] says how much.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`] when the program has no stdin pipe, has no
    /// process (the message names its state), or its pipe was closed
    /// ([`Supervisor::close_stdin`]; its next run gets a new one); [`Error::Io`] when the
    /// write fails (a broken pipe: the program and its children closed their stdin, or
    /// exited).
    pub async fn write_stdin(&self, name: &str, data: &[u8]) -> Result<()> {
        let pipe = self.stdin_pipe(name)?;
        pipe.write(name, data, &mut 0).await
    }

    /// As [`Supervisor::write_stdin`], for at most `timeout` ([`WAIT_FOREVER`]: for as long
    /// as it takes; zero: only what the pipe takes now). Returns the bytes written: fewer than
    /// `data.len()` when the time ran out.
    ///
    /// # Errors
    /// As [`Supervisor::write_stdin`]; [`Error::Invalid`] for a timeout over [`MAX_WAIT`]
    /// (but [`WAIT_FOREVER`]).
    pub async fn write_stdin_within(
        &self,
        name: &str,
        data: &[u8],
        timeout: Duration,
    ) -> Result<usize> {
        let mut written = 0;
        self.write_stdin_counted(name, data, timeout, &mut written)
            .await
            .map(|()| written)
    }

    /// As [`Supervisor::write_stdin_within`], counting the bytes written in `written` (set
    /// to 0 first), also when the write fails part way: a pipe that breaks after some of
    /// `data` went ([`Error::Io`]) leaves in `written` what the program got. Running out of
    /// time is not an error: `written` is then below `data.len()`.
    ///
    /// # Errors
    /// As [`Supervisor::write_stdin_within`].
    pub async fn write_stdin_counted(
        &self,
        name: &str,
        data: &[u8],
        timeout: Duration,
        written: &mut usize,
    ) -> Result<()> {
        *written = 0;
        check_wait(Some(timeout))?;
        let pipe = self.stdin_pipe(name)?;
        match tokio::time::timeout(timeout, pipe.write(name, data, written)).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    }

    /// Closes a program's stdin pipe: it reads end-of-file once it has read what was
    /// written. A write waiting for room gives up. Closing it again, or when the program
    /// has no process (the pipe closed with its run), does nothing; the next run gets a new
    /// pipe.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Invalid`] when the program has no stdin pipe (its
    /// stdin mode is not `pipe`, or its run was taken over from an earlier server or its
    /// pipe could not be made).
    pub async fn close_stdin(&self, name: &str) -> Result<()> {
        match self.stdin_pipe(name) {
            Ok(pipe) => {
                pipe.close().await;
                Ok(())
            }
            Err(StdinMissing::NoRun(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The stdin pipe of a program's current run.
    fn stdin_pipe(
        &self,
        name: &str,
    ) -> std::result::Result<Arc<crate::stdin::StdinPipe>, StdinMissing> {
        let (pipe, piped, state, pid) = self
            .with_handle(name, |h| {
                let p = h.published.borrow();
                (
                    h.logs.stdin.get(),
                    p.config.io.stdin == crate::config::StdinMode::Pipe,
                    p.state,
                    p.pid,
                )
            })
            .map_err(StdinMissing::Other)?;
        match pipe {
            Some(pipe) => Ok(pipe),
            None if !piped => Err(StdinMissing::Other(Error::Invalid(format!(
                "'{name}' has no stdin pipe (its stdin is /dev/null or the host's): give it \
                 the stdin mode `pipe`"
            )))),
            None if pid.is_some() => Err(StdinMissing::Other(Error::Invalid(format!(
                "'{name}' is {state} but its process has no stdin pipe (the run was taken \
                 over from an earlier server, or its pipe could not be made): restart it to \
                 get one"
            )))),
            None => Err(StdinMissing::NoRun(Error::Invalid(format!(
                "'{name}' is {state}, not running: it has no process to write to (start it first)"
            )))),
        }
    }

    /// Subscribes to every program's state changes from now on.
    pub fn subscribe(&self) -> Events {
        Events {
            rx: self.inner.shared.events.subscribe(),
            closed: self.inner.closed.subscribe(),
        }
    }

    /// The last `max_bytes` (at most 64 KiB) of a program's stream. See
    /// [`crate::logs::last_lines`] to cut it to lines.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn tail(&self, name: &str, stream: Stream, max_bytes: usize) -> Result<Vec<u8>> {
        self.with_handle(name, |h| h.logs.sink(stream).tail(max_bytes))
    }

    /// Follows a program's stream live, from now on, across restarts.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn follow(&self, name: &str, stream: Stream) -> Result<LogFollower> {
        self.with_handle(name, |h| h.logs.sink(stream).follow())
    }

    /// The last `max_bytes` (at most 64 KiB) of a program's stream and a follower that
    /// starts right after them, taken together: a search of what was said, then of what is
    /// said next, misses nothing and sees nothing twice.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn tail_and_follow(
        &self,
        name: &str,
        stream: Stream,
        max_bytes: usize,
    ) -> Result<(Vec<u8>, LogFollower)> {
        self.with_handle(name, |h| h.logs.sink(stream).tail_and_follow(max_bytes))
    }

    /// Log counters of a program: bytes received, failed writes, the last write error.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub fn log_status(&self, name: &str) -> Result<LogStatus> {
        self.with_handle(name, |h| {
            let [stdout, stderr] = h.logs.counters();
            LogStatus { stdout, stderr }
        })
    }

    /// Every program's log counters, sorted by name: one pass over the programs (not a
    /// search by name for each).
    pub fn log_status_all(&self) -> Vec<(String, LogStatus)> {
        let map = self.programs();
        map.iter()
            .map(|(n, h)| {
                let [stdout, stderr] = h.logs.counters();
                (n.clone(), LogStatus { stdout, stderr })
            })
            .collect()
    }

    /// CPU % and RSS of a program's processes (empty when it has no process). Answered from
    /// a pass over `/proc` at most [`STATS_MAX_AGE`] old, made on a blocking thread.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn stats(&self, name: &str) -> Result<ProcessStats> {
        self.with_handle(name, |_| ())?;
        Ok(self.stats_all().await.remove(name).unwrap_or_default())
    }

    /// Stats of every program that has a process, from one pass over `/proc` at most
    /// [`STATS_MAX_AGE`] old (a new pass is made sooner when a program's process changed).
    /// The pass is shared with every other supervisor of this process.
    pub async fn stats_all(&self) -> BTreeMap<String, ProcessStats> {
        let runs: Vec<_> = {
            let map = self.programs();
            map.iter()
                .filter_map(|(n, h)| {
                    let p = h.published.borrow();
                    Some((n.clone(), p.view.clone()?, p.started?.0))
                })
                .collect()
        };
        let leaders: Vec<(String, u32)> =
            runs.iter().map(|(n, v, _)| (n.clone(), v.leader)).collect();
        let mut guard = self.inner.sampler.clone().lock_owned().await;
        if let Some(c) = guard.1.as_ref() {
            if c.at.elapsed() < STATS_MAX_AGE && c.leaders == leaders {
                return c.stats.clone();
            }
        }
        if runs.is_empty() {
            return BTreeMap::new();
        }
        // A pass over /proc only for runs owned by their process group, and younger than
        // the youngest of them.
        let youngest = runs
            .iter()
            .filter(|(_, v, _)| v.cgroup.is_none())
            .map(|(_, _, since)| *since)
            .max();
        let snap = match youngest {
            Some(t) => crate::procfs::snapshot(STATS_MAX_AGE / 5, Some(t)).await,
            None => None,
        };
        // Cgroup counters and cgroup.procs are small reads, but many: off the runtime too,
        // and spread over the cores when there are many (a few per program, each a walk
        // of the cgroup file system: ~40 µs a program).
        tokio::task::spawn_blocking(move || {
            let (sampler, cache) = &mut *guard;
            let readings = crate::stats::read_all(&runs, snap.as_deref());
            let stats: BTreeMap<String, ProcessStats> = runs
                .iter()
                .zip(readings)
                .map(|((n, view, since), read)| {
                    (n.clone(), sampler.apply(n, view.leader, *since, read))
                })
                .collect();
            *cache = Some(StatsCache {
                at: Instant::now(),
                leaders,
                stats: stats.clone(),
            });
            stats
        })
        .await
        .unwrap_or_else(|e| {
            tracing::error!("the stats pass failed: {e}");
            BTreeMap::new()
        })
    }

    /// Stops every program concurrently and waits until nothing of any is left. After it,
    /// the supervisor accepts no more changes; a change under way finishes first.
    pub async fn shutdown(&self) {
        let _changes = self.inner.changes.lock().await;
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        // Dependents go before what they depend on; a layer is waited for as long as its
        // stops take (one stuck program does not keep the next layer from its graceful
        // stop), and what is still going is waited for at the end.
        let mut late = Vec::new();
        for layer in self.stop_layers() {
            let bound = self.layer_stop_bound(&layer);
            let txs: Vec<(String, crate::program::mailbox::Sender<Cmd>)> = {
                let map = self.programs();
                layer
                    .iter()
                    .filter_map(|n| map.get(n).map(|h| (n.clone(), h.cmds.clone())))
                    .collect()
            };
            let mut waits = Vec::with_capacity(txs.len());
            for (name, tx) in txs {
                let (rtx, rrx) = oneshot::channel();
                if tx.send(Cmd::Remove(rtx)).await.is_ok() {
                    waits.push((name, rrx));
                }
            }
            // Holds only the removals not yet done.
            let mut pending: futures_util::stream::FuturesUnordered<_> = waits
                .into_iter()
                .map(|(name, rx)| async move {
                    let _ = rx.await;
                    self.forget(&name).await;
                })
                .collect();
            let drained =
                async { while futures_util::StreamExt::next(&mut pending).await.is_some() {} };
            if tokio::time::timeout(bound, drained).await.is_err() {
                tracing::warn!("programs still stopping after {bound:?}: stopping what they depend on meanwhile");
                late.push(pending);
            }
        }
        for mut pending in late {
            while futures_util::StreamExt::next(&mut pending).await.is_some() {}
        }
        // Runs still being finished in the background (group ownership) end too.
        let tracker = &self.inner.shared.tracker;
        tracker.close();
        tracker.wait().await;
        if let Some(root) = self.cgroup_root() {
            root.remove();
            crate::reaper::unregister_cgroup(root.dir());
        }
        self.inner.closed.send_replace(true);
    }

    /// Lets go of every program without stopping any: each program's task ends, its
    /// output read so far written to its log files, and its processes go on, for the
    /// process that replaces this one (a server re-executing itself) to take over with
    /// [`Supervisor::add_all_adopting`]; a stop under way is finished first. Observers are
    /// not told the runs ended. Returns the programs left without a run. After it, the
    /// supervisor accepts no more changes. Not for embedders: a host
    /// that lets go of its programs and does not take them over leaves them running.
    pub async fn release(&self) -> Released {
        let _changes = self.inner.changes.lock().await;
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        let txs: Vec<(String, crate::program::mailbox::Sender<Cmd>)> = self
            .programs()
            .iter()
            .map(|(n, h)| (n.clone(), h.cmds.clone()))
            .collect();
        let mut waits = Vec::with_capacity(txs.len());
        for (name, tx) in txs {
            let (rtx, rrx) = oneshot::channel();
            if tx.send(Cmd::Release(rtx)).await.is_ok() {
                waits.push((name, rrx));
            }
        }
        let mut idle = Vec::new();
        let mut wanted = Vec::new();
        for (name, rx) in waits {
            match rx.await.unwrap_or(Left::Idle) {
                Left::Run => {}
                Left::Idle => idle.push(name.clone()),
                Left::Wanted => wanted.push(name.clone()),
            }
            self.programs_mut().remove(&name);
        }
        self.log_files().clear();
        // Their cgroups stay with them.
        if let Some(root) = self.cgroup_root() {
            root.keep();
        }
        self.inner.closed.send_replace(true);
        Released { idle, wanted }
    }

    /// Whether [`Supervisor::shutdown`] has been called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }
}

/// Programs in the order they stop: the first layer is what nothing depends on, each next
/// layer what only earlier layers depend on. (Reversed, the order they start in.) A
/// dependency on a program not in `configs` is left out; a cycle (refused at load) would
/// end up whole in the last layer.
fn dependency_layers(configs: &BTreeMap<String, Arc<ProgramConfig>>) -> Vec<Vec<String>> {
    // How many programs still to stop depend on each (a dependency listed twice by one
    // program counts once: the config refuses that anyway).
    let mut dependents: HashMap<&str, usize> = configs.keys().map(|n| (n.as_str(), 0)).collect();
    for c in configs.values() {
        for d in &c.depends_on {
            if let Some(n) = dependents.get_mut(d.name.as_str()) {
                *n += 1;
            }
        }
    }
    let mut layer: Vec<&str> = configs
        .keys()
        .map(String::as_str)
        .filter(|n| dependents.get(n) == Some(&0))
        .collect();
    let mut done = 0;
    let mut layers = Vec::new();
    while !layer.is_empty() {
        done += layer.len();
        let mut next = Vec::new();
        for name in &layer {
            if let Some(c) = configs.get(*name) {
                for d in &c.depends_on {
                    if let Some(n) = dependents.get_mut(d.name.as_str()) {
                        *n = n.saturating_sub(1);
                        if *n == 0 {
                            next.push(d.name.as_str());
                        }
                    }
                }
            }
        }
        next.sort_unstable();
        next.dedup();
        layers.push(layer.iter().map(|n| n.to_string()).collect());
        layer = next;
    }
    // A cycle (refused at load) is left over: it goes last, whole.
    if done < configs.len() {
        let placed: std::collections::HashSet<&str> =
            layers.iter().flatten().map(String::as_str).collect();
        layers.push(
            configs
                .keys()
                .filter(|n| !placed.contains(n.as_str()))
                .cloned()
                .collect(),
        );
    }
    layers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_time_signals_parse_by_name_and_number() {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        assert_eq!(parse_signal("RTMIN").ok(), Some(min));
        assert_eq!(parse_signal("sigrtmin+2").ok(), Some(min + 2));
        assert_eq!(parse_signal("SIGRTMAX-1").ok(), Some(max - 1));
        assert_eq!(parse_signal("RTMAX").ok(), Some(max));
        assert_eq!(parse_signal(&min.to_string()).ok(), Some(min));
        assert_eq!(parse_signal(&max.to_string()).ok(), Some(max));
        assert_eq!(signal_name(min + 2), "SIGRTMIN+2");
        assert_eq!(signal_name(1), "SIGHUP");
        // Beyond the range, or written oddly: refused.
        for bad in [
            "RTMIN+99", "RTMAX-99", "RTMIN+", "RTMIN++1", "RTMIN-1", "RTMAX+1", "65", "0",
        ] {
            assert!(parse_signal(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_signal("hup").ok(), Some(1));
    }
}

/// Why a program has no stdin pipe to use now.
#[derive(Debug)]
enum StdinMissing {
    /// A `pipe` program without a process: a write fails, a close does nothing.
    NoRun(Error),
    /// Anything else: no such program, no stdin pipe at all.
    Other(Error),
}

impl From<StdinMissing> for Error {
    fn from(m: StdinMissing) -> Error {
        match m {
            StdinMissing::NoRun(e) | StdinMissing::Other(e) => e,
        }
    }
}
