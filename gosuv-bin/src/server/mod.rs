//! The server: `gosuv start-server -f`. It owns a [`Supervisor`], serves [`api::router`] on
//! the unix socket and/or over HTTP, and shuts down as detect -> tell -> wait: a signal or
//! `POST /api/shutdown` stops every program, then ends the live streams, then the listeners.

pub mod api;
pub mod checks;
pub mod clients;
pub mod connection;
pub mod error;
pub mod listener;
pub mod listing;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod recovery;
pub mod request;
pub mod security;
pub mod store;
pub mod strict_json;

use std::collections::BTreeMap;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use gosuv::{ProcessStats, ProgramConfig, ServerConfig, Supervisor, SupervisorOptions};
use tokio_util::sync::CancellationToken;

use crate::daemon::PidFile;
use crate::{CliResult, Failure};
use error::{ApiError, ApiResult};
use security::{Caller, Security, Transport};
pub use store::ProgramsFile;

/// How long CPU and memory figures of `GET /api/programs` and `/metrics` are reused: one
/// pass over `/proc` a second at most, however many clients poll.
const STATS_TTL: Duration = Duration::from_secs(1);

/// How long the `GET /api/programs` body is reused when nothing was changed through the API.
const LIST_TTL: Duration = Duration::from_millis(500);

/// How stale the `GET /api/programs` body may be about state changes nobody asked for (a
/// crash, a restart by the retry policy). A change made through the API shows at once; with
/// programs crash-looping all the time, this bounds rebuilds to a few a second however many
/// clients poll.
const EVENT_STALENESS: Duration = Duration::from_millis(250);

/// How long the kept lists, stats and config texts outlive the last request that used
/// them. Past their time to live (at most a second) none of them is answered again, and the
/// config texts only speed up the next list: kept, they held ~7.5 MB at 5,000 programs for
/// as long as the server ran after one `gosuv status`. Three times the web page's read of
/// the list (every 2 s): a page open keeps them, whatever the jitter of its reads.
const KEEP_QUIET: Duration = Duration::from_secs(6);

/// How long the listeners wait for open connections once the programs are stopped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

type StatsMap = Arc<BTreeMap<String, ProcessStats>>;

struct Cached<T> {
    at: Instant,
    value: T,
    generation: u64,
    mutations: u64,
}

/// The header of every `GET /api/programs` answer that names the set of configs it was
/// read after: the same text while no program was added, removed or given another config
/// (through the API or a reload), another one after. A client that asks for status keys
/// only (`?fields=`) reads the configs again when it changes. Opaque: a counter, after this
/// server's start time (a restarted server does not give an earlier text again).
pub const CONFIG_VERSION_HEADER: &str = "gosuv-config-version";

/// A `GET /api/programs` body, with the config version it was built after.
#[derive(Clone)]
struct Listing {
    body: Bytes,
    config_version: String,
}

struct StateInner {
    sup: Supervisor,
    config: ServerConfig,
    /// The programs file: what it held when last loaded or written.
    programs_file: Arc<ProgramsFile>,
    /// Held by each change of the programs file (API changes, reloads), from its check to
    /// its save.
    file_changes: tokio::sync::Mutex<()>,
    /// Replaced by a reload (the allow-list is read again); requests take a snapshot.
    security: std::sync::RwLock<Arc<Security>>,
    failed_logins: security::FailedLogins,
    listening: Vec<String>,
    shutdown: CancellationToken,
    streams: CancellationToken,
    stats: tokio::sync::Mutex<Option<Cached<StatsMap>>>,
    /// The whole list, with the config version it was built after.
    list: tokio::sync::Mutex<Option<Cached<Listing>>>,
    /// The last list of some fields only (`?fields=`), with the fields it holds.
    list_fields: tokio::sync::Mutex<Option<(String, Cached<Listing>)>>,
    /// Each program's config as JSON, for the list (held with `list`).
    config_json: std::sync::Mutex<listing::ConfigJsonCache>,
    generation: std::sync::atomic::AtomicU64,
    mutations: std::sync::atomic::AtomicU64,
    /// Counts the changes of the program set (see [`CONFIG_VERSION_HEADER`]).
    config_changes: std::sync::atomic::AtomicU64,
    /// When this server started (ns since the epoch): the config version's first part.
    started_ns: u128,
    /// When a kept list, stats or config text was last used, in ms since `born`.
    last_use: std::sync::atomic::AtomicU64,
    /// A task is to drop them once they are not used for [`KEEP_QUIET`].
    sweep_planned: std::sync::atomic::AtomicBool,
    born: Instant,
    /// The binary to re-execute instead of shutting down (`restart-server`), and whether it
    /// takes the locked pidfile over the exec.
    reexec: std::sync::Mutex<Option<(PathBuf, bool)>>,
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("listening", &self.inner.listening)
            .finish()
    }
}

impl StateInner {
    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// Drops the kept lists, stats and config texts; false (nothing dropped) when a request
    /// is building one now.
    fn drop_kept(&self) -> bool {
        let (Ok(mut list), Ok(mut fields), Ok(mut stats)) = (
            self.list.try_lock(),
            self.list_fields.try_lock(),
            self.stats.try_lock(),
        ) else {
            return false;
        };
        // Not waited for either: a list being serialised holds it (on a runtime thread).
        let mut json = match self.config_json.try_lock() {
            Ok(json) => json,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return false,
        };
        let kept = (list.take(), fields.take(), stats.take());
        let texts = std::mem::take(&mut *json);
        drop(json);
        drop((list, fields, stats));
        drop((kept, texts));
        true
    }
}

/// Gives the allocator's free memory back to the system (glibc: every free page, not only
/// the top of a heap).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_heap() {
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_heap() {}

impl AppState {
    /// State for a supervisor and its config; `listening` is what `/api/status` reports.
    pub fn new(
        sup: Supervisor,
        config: ServerConfig,
        security: Security,
        listening: Vec<String>,
        programs_file: Arc<ProgramsFile>,
    ) -> Self {
        let st = AppState {
            inner: Arc::new(StateInner {
                sup,
                programs_file,
                file_changes: tokio::sync::Mutex::new(()),
                config,
                security: std::sync::RwLock::new(Arc::new(security)),
                failed_logins: security::FailedLogins::default(),
                listening,
                shutdown: CancellationToken::new(),
                streams: CancellationToken::new(),
                stats: tokio::sync::Mutex::new(None),
                list: tokio::sync::Mutex::new(None),
                list_fields: tokio::sync::Mutex::new(None),
                config_json: std::sync::Mutex::new(listing::ConfigJsonCache::default()),
                generation: std::sync::atomic::AtomicU64::new(0),
                mutations: std::sync::atomic::AtomicU64::new(0),
                config_changes: std::sync::atomic::AtomicU64::new(0),
                started_ns: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0),
                last_use: std::sync::atomic::AtomicU64::new(0),
                sweep_planned: std::sync::atomic::AtomicBool::new(false),
                born: Instant::now(),
                reexec: std::sync::Mutex::new(None),
            }),
        };
        st.watch_events();
        st
    }

    /// Counts state changes, so cached lists are rebuilt (the core logs each change).
    fn watch_events(&self) {
        let mut events = self.inner.sup.subscribe();
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            while let Some(notice) = events.recv().await {
                let Some(inner) = weak.upgrade() else { return };
                inner
                    .generation
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let gosuv::EventNotice::Missed(n) = notice {
                    tracing::debug!("{n} state changes were missed by the list cache");
                }
            }
        });
    }

    /// The supervisor.
    pub fn sup(&self) -> &Supervisor {
        &self.inner.sup
    }

    /// The loaded config.yml.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    /// The security settings in force.
    pub fn security(&self) -> Arc<Security> {
        self.inner
            .security
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts a new allow-list in force (the credentials stay those the server started with).
    fn set_allow_list(&self, allow: Option<security::AllowList>) {
        let mut g = self
            .inner
            .security
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Security::clone(&g);
        next.allow = allow;
        *g = Arc::new(next);
    }

    /// The failed-login log.
    pub fn failed_logins(&self) -> &security::FailedLogins {
        &self.inner.failed_logins
    }

    /// The addresses served.
    pub fn listening(&self) -> &[String] {
        &self.inner.listening
    }

    /// Asks the server to shut down (what `POST /api/shutdown` and SIGTERM do).
    pub fn request_shutdown(&self) {
        let _slot = self.inner.reexec.lock().unwrap_or_else(|p| p.into_inner());
        self.inner.shutdown.cancel();
    }

    /// Asks the server to re-execute itself as `exe`, keeping its programs (what
    /// `restart-server` does): the programs are let go of, not stopped, and taken over by
    /// the new image.
    /// Refused (false) once a shutdown was asked for: a SIGTERM is never turned into a
    /// restart, nor a restart answered and then not made.
    pub fn request_reexec(&self, exe: PathBuf, keeps_lock: bool) -> bool {
        let mut slot = self.inner.reexec.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.shutdown.is_cancelled() {
            return false;
        }
        *slot = Some((exe, keeps_lock));
        self.inner.shutdown.cancel();
        true
    }

    /// The binary a re-execution was asked for, if one was.
    fn take_reexec(&self) -> Option<(PathBuf, bool)> {
        self.inner
            .reexec
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Whether a shutdown was asked for.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_cancelled()
    }

    /// Completes when a shutdown is asked for.
    pub fn shutdown_requested(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.inner.shutdown.cancelled()
    }

    /// Ends every live stream (event and log followers), so the listeners can drain.
    pub fn end_streams(&self) {
        self.inner.streams.cancel();
    }

    /// The token live streams end on.
    pub fn streams_token(&self) -> CancellationToken {
        self.inner.streams.clone()
    }

    /// Marks the program list as changed by a request (the event watcher counts changes
    /// too, but may run after the answer to the request that caused one is sent).
    pub fn touch(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.inner.generation.fetch_add(1, SeqCst);
        self.inner.mutations.fetch_add(1, SeqCst);
    }

    /// Marks the program set as changed (a program added, removed, or given another
    /// config): called once the change is made, so that a list read after the new version
    /// holds the new configs.
    fn configs_changed(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.inner.config_changes.fetch_add(1, SeqCst);
    }

    /// The version of the program set now (see [`CONFIG_VERSION_HEADER`]): to be read
    /// before the configs it goes with.
    pub fn config_version(&self) -> String {
        use std::sync::atomic::Ordering::SeqCst;
        format!(
            "{}.{}",
            self.inner.started_ns,
            self.inner.config_changes.load(SeqCst)
        )
    }

    fn counters(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::SeqCst;
        (
            self.inner.generation.load(SeqCst),
            self.inner.mutations.load(SeqCst),
        )
    }

    /// Stats of every program with a process, at most a second old and taken after the
    /// last change made through the API (the core rescans new leaders on its own).
    /// Concurrent requests for stale stats wait for one pass.
    pub async fn stats_snapshot(&self) -> StatsMap {
        self.used();
        let mut g = self.inner.stats.lock().await;
        let (generation, mutations) = self.counters();
        match &*g {
            Some(c) if c.mutations == mutations && c.at.elapsed() < STATS_TTL => c.value.clone(),
            _ => {
                let value = Arc::new(self.inner.sup.stats_all().await);
                *g = Some(Cached {
                    at: Instant::now(),
                    value: value.clone(),
                    generation,
                    mutations,
                });
                value
            }
        }
    }

    /// Each program's config as JSON, kept for the lists.
    pub fn config_json(&self) -> std::sync::MutexGuard<'_, listing::ConfigJsonCache> {
        self.used();
        self.inner
            .config_json
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The `GET /api/programs` answer, whole or with `fields` only. The JSON is rebuilt
    /// when a program was changed through the API, when one changed state on its own over
    /// 250 ms ago, or after half a second for fresh uptimes and stats. Concurrent requests
    /// for a stale list wait for one rebuild (without holding a thread). One list of some
    /// fields is kept besides the whole one: the last asked for.
    pub async fn program_list(&self, fields: Option<&listing::Fields>) -> ApiResult<Response> {
        self.used();
        let listing = match fields {
            None => {
                let mut g = self.inner.list.lock().await;
                self.fresh_list(&mut g, None).await?
            }
            Some(f) => {
                let mut g = self.inner.list_fields.lock().await;
                let mut slot = match g.take() {
                    Some((key, c)) if key == f.key() => Some(c),
                    _ => None,
                };
                let listing = self.fresh_list(&mut slot, Some(f)).await?;
                *g = slot.map(|c| (f.key().to_string(), c));
                listing
            }
        };
        Ok((
            [
                (header::CONTENT_TYPE, "application/json".to_string()),
                (
                    header::HeaderName::from_static(CONFIG_VERSION_HEADER),
                    listing.config_version,
                ),
            ],
            listing.body,
        )
            .into_response())
    }

    /// The list in `slot` if it is fresh (see [`AppState::program_list`]), else one built
    /// now and kept there; with the config version it was built after.
    async fn fresh_list(
        &self,
        slot: &mut Option<Cached<Listing>>,
        fields: Option<&listing::Fields>,
    ) -> ApiResult<Listing> {
        let (generation, mutations) = self.counters();
        let fresh = |c: &Cached<Listing>| {
            let age = c.at.elapsed();
            c.mutations == mutations
                && age < LIST_TTL
                && (c.generation == generation || age < EVENT_STALENESS)
        };
        if let Some(c) = slot.as_ref().filter(|c| fresh(c)) {
            return Ok(c.value.clone());
        }
        let version = self.config_version();
        let configs = self.inner.sup.configs_shared();
        let statuses = self.inner.sup.list();
        let body = match fields {
            None => {
                let stats = self.stats_snapshot().await;
                Bytes::from(listing::programs_json(
                    &configs,
                    &statuses,
                    &stats,
                    &mut self.config_json(),
                ))
            }
            Some(f) => {
                let stats = if f.wants_stats() {
                    self.stats_snapshot().await
                } else {
                    StatsMap::default()
                };
                Bytes::from(
                    listing::selected_json(&configs, &statuses, &stats, f).map_err(|e| {
                        ApiError::internal(format!("cannot encode the programs: {e}"))
                    })?,
                )
            }
        };
        *slot = Some(Cached {
            at: Instant::now(),
            value: Listing {
                body: body.clone(),
                config_version: version.clone(),
            },
            generation,
            mutations,
        });
        Ok(Listing {
            body,
            config_version: version,
        })
    }

    /// Notes that the kept lists, stats or config texts are used now, and plans their drop
    /// for when they are not used for [`KEEP_QUIET`].
    fn used(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let inner = &self.inner;
        inner.last_use.store(inner.now_ms(), SeqCst);
        if inner.sweep_planned.swap(true, SeqCst) {
            return;
        }
        let weak = Arc::downgrade(inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEP_QUIET).await;
                let Some(inner) = weak.upgrade() else { return };
                let seen = inner.last_use.load(SeqCst);
                let quiet = KEEP_QUIET.as_millis() as u64;
                if inner.now_ms() < seen.saturating_add(quiet) || !inner.drop_kept() {
                    continue;
                }
                inner.sweep_planned.store(false, SeqCst);
                // Used meanwhile, and that use planned nothing (this task was planned): it
                // goes on.
                if inner.last_use.load(SeqCst) != seen && !inner.sweep_planned.swap(true, SeqCst) {
                    continue;
                }
                break;
            }
            // What was freed goes back to the system (glibc keeps it otherwise: a list of
            // thousands of programs is megabytes, between live objects).
            let _ = tokio::task::spawn_blocking(trim_heap).await;
        });
    }

    /// Runs a change of the program set (the core serializes changes and saves the programs
    /// file through its store hook), and logs who made it. The change is first checked
    /// against the programs file: one that could not be saved there (a hand edit not
    /// reloaded, a file that cannot be changed in place) is refused before anything
    /// changes.
    ///
    /// # Errors
    /// The change's error; 409 when the programs file refuses it; a 500 when it is live
    /// but could not be saved.
    ///
    /// The change runs to its end even when the client goes away before the answer (a
    /// dropped request): the core then finishes it all the same, and the lists and the
    /// config version must follow.
    pub async fn mutate<T, F, Fut>(&self, caller: &Caller, change: Change, f: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Supervisor) -> Fut + Send + 'static,
        Fut: Future<Output = gosuv::Result<T>> + Send + 'static,
    {
        let (st, caller) = (self.clone(), caller.clone());
        tokio::spawn(async move { st.mutate_made(&caller, change, f).await })
            .await
            .map_err(|e| ApiError::internal(format!("the change failed: {e}")))?
    }

    async fn mutate_made<T, F, Fut>(&self, caller: &Caller, change: Change, f: F) -> ApiResult<T>
    where
        F: FnOnce(Supervisor) -> Fut,
        Fut: Future<Output = gosuv::Result<T>>,
    {
        // One change of the file at a time, reloads included: the check below stays true
        // until the change is saved.
        let _file = self.inner.file_changes.lock().await;
        let mut after = self.inner.sup.configs();
        change.apply(&mut after);
        let file = self.inner.programs_file.clone();
        tokio::task::spawn_blocking(move || file.check(&after))
            .await
            .map_err(|e| ApiError::internal(format!("checking the programs file failed: {e}")))?
            .map_err(|e| ApiError::new(axum::http::StatusCode::CONFLICT, e.to_string()))?;
        let out = f(self.inner.sup.clone()).await;
        // A change refused before anything was changed leaves the version alone: each new
        // version makes every open page read the whole list.
        let refused = matches!(
            out,
            Err(gosuv::Error::NotFound(_)
                | gosuv::Error::Exists(_)
                | gosuv::Error::Config(_)
                | gosuv::Error::Invalid(_)
                | gosuv::Error::ShuttingDown)
        );
        if !refused {
            self.configs_changed();
            self.touch();
        }
        if !matches!(out, Ok(_) | Err(gosuv::Error::Store(_))) {
            return out.map_err(ApiError::from);
        }
        let (what, name) = change.describe();
        tracing::info!(
            peer = %caller.peer,
            user = caller.user.as_deref().unwrap_or("-"),
            "{what} program {name}"
        );
        out.map_err(|e| {
            tracing::error!("cannot save {}: {e}", self.inner.config.include.display());
            ApiError::from(e)
        })
    }

    /// Re-reads the programs file and the ipfile and applies them (`POST /api/reload`,
    /// SIGHUP). config.yml is checked first as `start-server` would check it, so a config
    /// that could not start is reported now, not at the next restart; of its settings, only
    /// the ipfile is applied live (the rest takes effect at `restart-server`).
    ///
    /// # Errors
    /// 400 with every error of config.yml, of the checks, or of the programs file; nothing
    /// is changed then.
    ///
    /// Runs to its end even when the client goes away before the answer.
    pub async fn reload(&self) -> ApiResult<gosuv::ReloadReport> {
        let st = self.clone();
        tokio::spawn(async move { st.reload_made().await })
            .await
            .map_err(|e| ApiError::internal(format!("the reload failed: {e}")))?
    }

    async fn reload_made(&self) -> ApiResult<gosuv::ReloadReport> {
        let config = self.inner.config.clone();
        let checked = tokio::task::spawn_blocking(move || -> ApiResult<_> {
            match &config.path {
                Some(path) => {
                    let checked = checks::check_startable(path)
                        .map_err(|f| ApiError::bad_request(f.message))?;
                    let programs = if checked.config.include == config.include {
                        checked.programs
                    } else {
                        config.load_programs()?
                    };
                    Ok((programs, Some(checked.security.allow), Some(checked.config)))
                }
                // A state made without a file (the router's tests): the programs file only.
                None => Ok((config.load_programs()?, None, None)),
            }
        })
        .await
        .map_err(|e| ApiError::internal(format!("reading the config files failed: {e}")))??;
        let (programs, allow, on_disk) = checked;
        let loaded = programs.clone();
        let file_change = self.inner.file_changes.lock().await;
        let report = self.inner.sup.reload(programs).await;
        let unchanged = report
            .as_ref()
            .is_ok_and(|r| r.added.is_empty() && r.changed.is_empty() && r.removed.is_empty())
            || matches!(
                report,
                Err(gosuv::Error::Config(_) | gosuv::Error::ShuttingDown)
            );
        if !unchanged {
            self.configs_changed();
            self.touch();
        }
        let report = report?;
        let (file, live) = (
            self.inner.programs_file.clone(),
            self.inner.sup.configs_shared(),
        );
        if tokio::task::spawn_blocking(move || file.loaded(&loaded, &live))
            .await
            .is_err()
        {
            tracing::error!(
                "recording the programs file failed: API changes are refused until the next reload"
            );
        }
        drop(file_change);
        if let Some(allow) = allow {
            self.set_allow_list(allow);
        }
        tracing::info!(
            "reloaded {}: added {:?}, changed {:?}, removed {:?}",
            self.inner.config.include.display(),
            report.added,
            report.changed,
            report.removed
        );
        if let Some(mut on_disk) = on_disk {
            on_disk.server.auth.ipfile = self.inner.config.server.auth.ipfile.clone();
            if on_disk.server != self.inner.config.server
                || on_disk.include != self.inner.config.include
            {
                tracing::warn!(
                    "config.yml has changes besides server.auth.ipfile: they take effect at 'gosuv restart-server'"
                );
            }
        }
        Ok(report)
    }
}

/// A change of the program set, as the programs file will see it.
#[derive(Debug, Clone)]
pub enum Change {
    /// A program added.
    Add(Box<ProgramConfig>),
    /// A program's config replaced.
    Update(Box<ProgramConfig>),
    /// A program removed, by name.
    Remove(String),
}

impl Change {
    fn describe(&self) -> (&'static str, &str) {
        match self {
            Change::Add(p) => ("add", &p.name),
            Change::Update(p) => ("update", &p.name),
            Change::Remove(n) => ("remove", n),
        }
    }

    /// The program set after the change.
    fn apply(&self, set: &mut Vec<ProgramConfig>) {
        match self {
            Change::Add(p) => set.push((**p).clone()),
            Change::Update(p) => {
                for c in set.iter_mut().filter(|c| c.name == p.name) {
                    *c = (**p).clone();
                }
            }
            Change::Remove(n) => set.retain(|c| c.name != *n),
        }
    }
}

/// Raises the soft limits of open files and processes to `minfds`/`minprocs`.
///
/// # Errors
/// A hard limit is lower than asked and cannot be raised.
pub fn raise_limits(config: &ServerConfig) -> CliResult {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let raise = |res: Resource, want: u64, key: &str, what: &str, ulimit: &str| -> CliResult {
        let (soft, hard) = getrlimit(res)
            .map_err(|e| Failure::new(format!("cannot read the {what} limit: {e}")))?;
        if want == 0 || soft == RLIM_INFINITY || soft >= want {
            return Ok(());
        }
        let new_hard = if hard == RLIM_INFINITY || hard >= want {
            hard
        } else {
            want
        };
        setrlimit(res, want, new_hard).map_err(|e| {
            Failure::new(format!(
                "cannot raise the {what} limit to {want} (server.{key}): the hard limit is {hard} ({e}); \
                 lower server.{key} or raise the hard limit ({ulimit})"
            ))
        })
    };
    raise(
        Resource::RLIMIT_NOFILE,
        config.server.minfds,
        "minfds",
        "open files",
        "ulimit -Hn",
    )?;
    raise(
        Resource::RLIMIT_NPROC,
        config.server.minprocs,
        "minprocs",
        "processes",
        "ulimit -Hu",
    )?;
    Ok(())
}

/// Binds the unix socket with mode 0600, replacing a stale socket (one nothing answers on).
///
/// # Errors
/// A live server answers on it, the path is not a socket, or the bind fails.
pub fn bind_unix(path: &Path) -> CliResult<std::os::unix::net::UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Failure::new(format!(
                "{} exists and is not a socket: move it away or change server.unixserver.sockfile",
                path.display()
            )));
        }
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => {
                return Err(Failure::new(format!(
                    "another gosuv server is listening on {}: stop it first ('gosuv shutdown')",
                    path.display()
                )))
            }
            Err(_) => {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    if let Some(dir) = path.parent() {
        let _ = gosuv::files::create_dir_all(dir);
    }
    // The socket is created 0600 (no window where others could connect); no other thread
    // exists yet, so the process-wide umask change is seen by nobody else.
    // SAFETY: umask only swaps the process's file mode mask.
    let old = unsafe { libc::umask(0o177) };
    let r = std::os::unix::net::UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let l = r.map_err(|e| Failure::new(format!("cannot listen on {}: {e}", path.display())))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    l.set_nonblocking(true)
        .map_err(|e| Failure::new(format!("cannot set up {}: {e}", path.display())))?;
    Ok(l)
}

/// Binds the HTTP listener.
///
/// # Errors
/// The address is taken or cannot be bound.
pub fn bind_tcp(addr: &str) -> CliResult<std::net::TcpListener> {
    let addr = match addr.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => addr.to_string(),
    };
    let l = std::net::TcpListener::bind(&addr).map_err(|e| {
        Failure::new(format!(
            "cannot listen on http://{addr}: {e} (change server.httpserver.addr)"
        ))
    })?;
    l.set_nonblocking(true)
        .map_err(|e| Failure::new(format!("cannot set up http://{addr}: {e}")))?;
    Ok(l)
}

/// Runs the server in this process until it is shut down, on a config that
/// [`checks::check_startable`] passed. `log_to_stderr` also logs to the terminal (foreground
/// mode).
///
/// # Errors
/// Another server holds the pidfile or socket, a listener cannot be bound, or a limit cannot
/// be raised. Each message says what to do.
pub fn run(checked: checks::Startable, log_to_stderr: bool) -> CliResult {
    let init = become_init();
    let checks::Startable {
        config,
        programs,
        security,
        warnings,
    } = checked;
    raise_limits(&config)?;
    let pidfile = PidFile::acquire(&config.server.pidfile)?;
    let mut listening = Vec::new();
    let unix = if config.server.unixserver.enabled {
        let l = bind_unix(&config.server.unixserver.sockfile)?;
        listening.push(format!(
            "unix://{}",
            config.server.unixserver.sockfile.display()
        ));
        Some(l)
    } else {
        None
    };
    let tcp = if config.server.httpserver.enabled {
        let l = bind_tcp(&config.server.httpserver.addr)?;
        let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
        listening.push(format!("http://{addr}"));
        Some(l)
    } else {
        None
    };
    logging::init(&config.server.log, log_to_stderr)?;
    for w in &warnings {
        tracing::warn!("{w}");
    }
    for w in checks::permission_warnings(&config) {
        tracing::warn!("{w}");
    }
    if init {
        tracing::info!("running as PID 1: orphans are reaped here, SIGTERM shuts down gracefully");
    }
    // The pidfile's lock is ours, so the server that wrote the groups file is gone, and so
    // is any save it was making: what a kill during one left is removed.
    for state in [
        config.include.clone(),
        recovery::groups_path(&config.server.pidfile),
    ] {
        let n = gosuv::files::remove_stale_temps(&state);
        if n > 0 {
            tracing::info!(
                "removed {n} temporary file(s) of an interrupted save of {}",
                state.display()
            );
        }
    }
    let adoptions = adopt_or_stop_leftovers(&config.server.pidfile, &programs);
    // Programs that were stopped or had exited before a restart-server stay so.
    let (idle, wanted) = if crate::daemon::reexecuted() {
        take_idle(&config.server.pidfile)
    } else {
        let _ = std::fs::remove_file(idle_path(&config.server.pidfile));
        (Vec::new(), Vec::new())
    };
    // What ran with another config, or wanted a run, is started (a start of a program that
    // runs already changes nothing).
    let mut adoptions = adoptions;
    adoptions.2.extend(wanted);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gosuv-server")
        .build()
        .map_err(|e| Failure::new(format!("cannot start the runtime: {e}")))?;
    let served = rt.block_on(serve(
        !log_to_stderr,
        config.clone(),
        programs,
        (adoptions.0, adoptions.1, idle, adoptions.2),
        security,
        unix,
        tcp,
        listening,
    ));
    let result = match served {
        Ok(Some((exe, keeps_lock))) => reexec(&exe, keeps_lock.then(|| pidfile.raw_fd())),
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    if config.server.unixserver.enabled {
        let _ = std::fs::remove_file(&config.server.unixserver.sockfile);
    }
    pidfile.release();
    match &result {
        Ok(()) => tracing::info!("server stopped"),
        Err(e) => tracing::error!("server failed: {e}"),
    }
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// What the last server left running (it died, or re-executed itself): the runs of
/// programs whose config is unchanged are taken over (their pipes taken back from the last
/// server's holder), every other leftover is stopped gracefully, its output drained
/// meanwhile, before anything starts. Returns the runs to adopt and what they were recorded
/// with.
fn adopt_or_stop_leftovers(
    pidfile: &Path,
    programs: &[ProgramConfig],
) -> (
    Vec<gosuv::Adoption>,
    Vec<recovery::GroupRecord>,
    Vec<String>,
) {
    // A run is taken over only with its pipes, so only when the last server's holder kept
    // them: nobody else read its output meanwhile.
    let (mut candidates, changed) = recovery::runs_left(pidfile, programs);
    if !crate::holder::has_holder(pidfile) {
        candidates.clear();
    }
    let keep: Vec<u32> = candidates.iter().map(|g| g.pgid).collect();
    // Every other leftover is stopped first, while the holder still drains every pipe (their
    // last words, and the candidates' output meanwhile, go to the files).
    report_recovery(&recovery::stop_leftovers(pidfile, &keep));
    // Then the pipes: what the holder read is written, the rest is still in the pipes.
    let mut pipes = if keep.is_empty() {
        Default::default()
    } else {
        crate::holder::take_pipes(pidfile).unwrap_or_else(|| {
            tracing::warn!("the last server's holder did not hand its pipes over: its programs are stopped, not taken over");
            Default::default()
        })
    };
    let by_name: std::collections::HashMap<&str, &ProgramConfig> =
        programs.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut adoptions = Vec::new();
    let mut kept = Vec::new();
    for g in candidates {
        let Some(config) = by_name.get(g.program.as_str()) else {
            continue;
        };
        let out = pipes.remove(&(g.pgid, "stdout".to_string()));
        let err = if config.redirect_stderr {
            None
        } else {
            pipes.remove(&(g.pgid, "stderr".to_string()))
        };
        let (Some(out), true) = (out, config.redirect_stderr || err.is_some()) else {
            tracing::warn!(program = %g.program, pid = g.pgid, "its output pipes were not kept: stopped, not taken over");
            continue;
        };
        tracing::info!(program = %g.program, pid = g.pgid, "taking over the run the last server left (config unchanged)");
        adoptions.push(gosuv::Adoption {
            program: g.program.clone(),
            pid: g.pgid,
            start_time: g.start_time,
            stdout: out.fd,
            stderr: err.map(|e| e.fd),
            cgroup: g.cgroup.clone(),
            started_at: g.started_at(),
            restarts: g.restarts,
        });
        kept.push(g);
    }
    // What was handed over besides (pipes still held open by what is left of stopped runs)
    // is drained meanwhile, for a while.
    let drainer = crate::holder::drain_in_thread(pipes);
    if kept.len() < keep.len() {
        // Candidates without their pipes are stopped after all (the holder, when it kept
        // them, still drains them).
        let kept_pids: Vec<u32> = kept.iter().map(|g| g.pgid).collect();
        report_recovery(&recovery::stop_leftovers(pidfile, &kept_pids));
    }
    if let Some(d) = drainer {
        d.finish_within(Duration::from_secs(10));
    }
    // The last server's holder writes the last output of what it still drains (when it
    // could not hand it over), then exits: nothing starts (and writes the same log files)
    // before it is done.
    crate::holder::wait_old_holder(pidfile, Duration::from_secs(10));
    (adoptions, kept, changed)
}

/// Where a re-executing server lists the programs that were not running (`<pidfile>.idle`).
fn idle_path(pidfile: &Path) -> PathBuf {
    let mut s = pidfile.as_os_str().to_owned();
    s.push(".idle");
    PathBuf::from(s)
}

/// The programs the server before the re-exec had stopped (read once, then removed).
/// What the server before the re-exec left without a run (read once, then removed): the
/// programs not to start (stopped, exited, fatal), and those to start (they wanted a run).
fn take_idle(pidfile: &Path) -> (Vec<String>, Vec<String>) {
    let path = idle_path(pidfile);
    let value = gosuv::files::read_trusted(&path)
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    let names = |key: &str| -> Vec<String> {
        value[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    (names("idle"), names("start"))
}

/// Says what stopping the leftovers found wrong.
fn report_recovery(recovered: &recovery::Recovery) {
    if recovered.survivors > 0 {
        tracing::error!(
            "{} leftover process groups survived SIGKILL: their programs may run twice",
            recovered.survivors
        );
    }
}

/// Replaces this process with `exe`, run with this process's own arguments (the same pid:
/// the programs stay its children, the pidfile names it still). Returns only when that
/// fails, after trying this process's own binary instead; then the programs go on without
/// a server (the holder logs their output) until the next `start-server` takes them over.
fn reexec(exe: &Path, pidfile_fd: Option<i32>) -> CliResult {
    use std::os::unix::process::CommandExt;
    // This process's own arguments (`start-server` last), and, for a binary that knows
    // them (`pidfile_fd` is given then), the locked pidfile's descriptor, which stays open
    // across the exec (no moment without the lock), and the mark of a re-execution (it
    // unblocks the signals and keeps stopped programs stopped).
    let mut args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| {
            let a = a.to_string_lossy();
            !a.starts_with("--pidfile-fd") && a != "--reexecuted"
        })
        .collect();
    if let Some(fd) = pidfile_fd {
        args.push(format!("--pidfile-fd={fd}").into());
        args.push("--reexecuted".into());
    }
    // The new image starts from the limits this one started from.
    gosuv::restore_nofile();
    tracing::info!(exe = %exe.display(), "re-executing: the programs keep running");
    let prepare = move || {
        // Just before the exec, in this very process (no child could inherit it): the
        // pidfile's descriptor stays open across it. SAFETY: fcntl only.
        if let Some(fd) = pidfile_fd {
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        }
        // A SIGTERM or SIGHUP arriving from here until the new image handles signals stays
        // pending (a blocked signal survives the exec) instead of killing the server; the
        // new image unblocks them once it handles them (only one that knows to: an older
        // binary would stay deaf). SAFETY: sigprocmask on a set we own.
        if pidfile_fd.is_some() {
            unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                for sig in HANDLED_SIGNALS {
                    libc::sigaddset(&mut set, sig);
                }
                libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
            }
        }
        Ok(())
    };
    // SAFETY: the closure makes async-signal-safe calls only, in this process.
    let err = unsafe {
        std::process::Command::new(exe)
            .args(&args)
            .pre_exec(prepare)
            .exec()
    };
    tracing::error!(exe = %exe.display(), "cannot re-execute: {err}; trying this server's own binary");
    // SAFETY: as above.
    let again = unsafe {
        std::process::Command::new("/proc/self/exe")
            .args(&args)
            .pre_exec(prepare)
            .exec()
    };
    Err(Failure::new(format!(
        "cannot re-execute {} ({err}) nor this server's own binary ({again}): the programs go on; run 'gosuv start-server' to take them over",
        exe.display()
    )))
}

/// The signals the server handles (SIGINT, SIGTERM, SIGQUIT: shut down; SIGHUP: reload).
const HANDLED_SIGNALS: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGQUIT, libc::SIGHUP];

/// Lets the handled signals through again (a server that re-executed itself blocked them
/// across the exec; a pending one is delivered now, to the handlers).
fn unblock_handled_signals() {
    // SAFETY: pthread_sigmask on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in HANDLED_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    quiet: bool,
    config: ServerConfig,
    programs: Vec<ProgramConfig>,
    (adoptions, adopted_records, idle, changed): (
        Vec<gosuv::Adoption>,
        Vec<recovery::GroupRecord>,
        Vec<String>,
        Vec<String>,
    ),
    security: Security,
    unix: Option<std::os::unix::net::UnixListener>,
    tcp: Option<std::net::TcpListener>,
    listening: Vec<String>,
) -> CliResult<Option<(PathBuf, bool)>> {
    let signals = handle_signals();
    // Handled from now on: a signal that came during a re-exec is delivered now.
    unblock_handled_signals();
    // Recording starts before any program does, so every run is in the file.
    let (recorder, observer) =
        recovery::GroupRecorder::start(&config.server.pidfile, &adopted_records);
    // Loading until the programs are added (nothing is saved back meanwhile).
    let programs_file = ProgramsFile::new(config.include.clone(), config.dir.clone());
    let loaded = programs.clone();
    let mut options = supervisor_options(&config, &programs_file);
    // A holder keeps every program's output pipes open, so the programs outlive this
    // server (a kill -9, a crash) without dying of SIGPIPE, and their output is logged.
    let mut observers: Vec<Arc<dyn gosuv::GroupObserver>> = vec![observer];
    let keeper = match crate::holder::Keeper::start(&config.server.pidfile) {
        Ok(k) => {
            observers.push(k.clone());
            Some(k)
        }
        Err(e) => {
            tracing::warn!("{e}: programs will not outlive this server");
            None
        }
    };
    options.observer = Some(Arc::new(crate::holder::Observers(observers)));
    if crate::daemon::reexecuted() {
        // The cgroups earlier images of this process left empty.
        gosuv::remove_own_stale_cgroups();
    }
    let sup = Supervisor::new(options).map_err(|e| Failure::new(e.to_string()))?;
    let state = AppState::new(
        sup.clone(),
        config.clone(),
        security,
        listening.clone(),
        programs_file.clone(),
    );
    // All added before any starts, then started dependencies first.
    let added = sup.add_all_adopting(programs, adoptions, &idle).await;
    let (file, live) = (programs_file.clone(), sup.configs_shared());
    if tokio::task::spawn_blocking(move || file.loaded(&loaded, &live))
        .await
        .is_err()
    {
        tracing::error!(
            "recording the programs file failed: API changes are refused until a reload"
        );
    }
    // Every child of the server is a program's or an orphan of one: reaped from now on (not
    // before the runs taken over were claimed, or a leader's exit would be lost).
    gosuv::reap_every_orphan();
    match added {
        Ok((failed, refused)) => {
            for (name, e) in failed {
                tracing::error!("cannot add {name}: {e}");
            }
            for (name, why) in refused {
                tracing::warn!(program = %name, "the run the last server left was not taken over: {why}");
            }
        }
        Err(e) => tracing::error!("{e}"),
    }
    // What ran with another config runs again with the new one (as a reload would).
    for name in changed {
        let sup = sup.clone();
        tokio::spawn(async move {
            if let Err(e) = sup.start(&name, None).await {
                tracing::warn!(program = %name, "cannot start it again with its new config: {e}");
            }
        });
    }
    let app = api::router(state.clone());
    let stop = CancellationToken::new();
    let mut servers = Vec::new();
    if let Some(l) = unix {
        let l = tokio::net::UnixListener::from_std(l).map_err(|e| Failure::new(e.to_string()))?;
        let l = security::PeerChecked::new(l, security::PeerPolicy::from_config(&config));
        let l = listener::Guarded::new(l, "the unix socket");
        let app = app.clone().layer(Extension(Transport::Unix));
        let stop = stop.clone();
        servers.push(tokio::spawn(listener::serve(l, app, stop)));
    }
    if let Some(l) = tcp {
        let l = tokio::net::TcpListener::from_std(l).map_err(|e| Failure::new(e.to_string()))?;
        let l = listener::Guarded::new(l, "HTTP");
        let app = app.clone().layer(Extension(Transport::Tcp));
        let stop = stop.clone();
        servers.push(tokio::spawn(listener::serve(l, app, stop)));
    }
    let line = format!("server started, listening {}", listening.join(", "));
    tracing::info!(pid = std::process::id(), "{line}");
    notify::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
    if !quiet {
        // The terminal only: the login URL holds the password, gosuv.log never does.
        println!("{line}");
        if let Some(url) = checks::login_url(&config, &listening) {
            println!("web page: {url}");
        }
    }

    wait_for_shutdown(&state, signals).await;
    let reexec = state.take_reexec();
    if reexec.is_some() {
        // The new image says READY=1 again.
        notify::notify(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}",
            notify::monotonic_usec()
        ));
    } else {
        notify::notify("STOPPING=1");
    }
    if let Some(exe) = reexec {
        // Nothing is stopped: every run goes on, listed in the groups file, its pipes
        // kept by the holder, for the new image to take over.
        tracing::info!("restarting: letting go of every program, for the new server to take over");
        stop.cancel();
        state.end_streams();
        // What is stopped, exited or fatal is not started by the new image.
        let released = sup.release().await;
        let path = idle_path(&config.server.pidfile);
        let text = serde_json::to_vec(&serde_json::json!({
            "idle": released.idle,
            "start": released.wanted,
        }))
        .unwrap_or_default();
        let written = tokio::task::spawn_blocking(move || {
            gosuv::files::write_atomic(&path, &text, 0o600, false)
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(
                "cannot record the stopped programs: the new server starts those with start_auto"
            );
        }
        recorder.keep().await;
        // Every pipe shown to the holder is with it before this process is replaced.
        if let Some(k) = &keeper {
            let k = k.clone();
            let synced = tokio::task::spawn_blocking(move || k.sync(Duration::from_secs(2)))
                .await
                .unwrap_or(false);
            if !synced {
                tracing::error!("the holder did not take every pipe: programs started last may die of SIGPIPE before the new server reads them");
            }
        }
        // The answer to the restart request gets out; an idle keep-alive connection does not
        // hold the restart up.
        let _ = tokio::time::timeout(
            Duration::from_millis(500),
            futures_util::future::join_all(servers),
        )
        .await;
        return Ok(Some(exe));
    }
    tracing::info!("shutting down: stopping every program");
    sup.shutdown().await;
    recorder.finish().await;
    state.end_streams();
    stop.cancel();
    for s in servers {
        match tokio::time::timeout(DRAIN_TIMEOUT, s).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("listener task failed: {e}"),
            Err(_) => {
                tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them")
            }
        }
    }
    Ok(None)
}

/// The supervisor options of the server: its programs are its own (a subreaper, and no
/// guardian: they are meant to be stopped by the server), and changes made through the API
/// are saved to the programs file (in place: see [`store::ProgramsFile`]).
pub fn supervisor_options(config: &ServerConfig, file: &Arc<ProgramsFile>) -> SupervisorOptions {
    let mut options = SupervisorOptions::from_config(config);
    options.subreaper = true;
    options.kill_on_parent_death = false;
    let file = file.clone();
    options.store = Some(gosuv::Store(Arc::new(
        move |programs: &[Arc<ProgramConfig>]| {
            file.save(programs)
                .map_err(|e| format!("the change is live but was not saved: {e}"))
        },
    )));
    options
}

/// As PID 1 (a container's entrypoint, `unshare --pid --fork`), becomes a session leader
/// if it is not one; returns whether this process is PID 1. Call it before anything starts
/// the core's reaper: the reaper leaves alone zombies in gosuv's own session (children of an
/// embedding host), and as PID 1 every orphan of the namespace is reparented here; one from
/// a session outside the namespace shows session id 0, which would be gosuv's own too, and
/// would stay a zombie. In a session of its own, every such orphan is reaped.
pub fn become_init() -> bool {
    if std::process::id() != 1 {
        return false;
    }
    // SAFETY: setsid takes no arguments; it fails harmlessly when already a group leader.
    unsafe { libc::setsid() };
    true
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// Handles the signals from now on (before anything answers, so a SIGHUP sent as soon as
/// the server answers is a reload, never the default exit).
fn handle_signals() -> Option<Signals> {
    use tokio::signal::unix::{signal, SignalKind};
    Some(Signals {
        int: signal(SignalKind::interrupt()).ok()?,
        term: signal(SignalKind::terminate()).ok()?,
        quit: signal(SignalKind::quit()).ok()?,
        hup: signal(SignalKind::hangup()).ok()?,
    })
}

/// Waits for SIGINT, SIGTERM, SIGQUIT or `POST /api/shutdown`; reloads on SIGHUP.
async fn wait_for_shutdown(state: &AppState, signals: Option<Signals>) {
    let Some(Signals {
        mut int,
        mut term,
        mut quit,
        mut hup,
    }) = signals
    else {
        tracing::error!("cannot handle signals; only POST /api/shutdown stops the server");
        state.shutdown_requested().await;
        return;
    };
    loop {
        tokio::select! {
            _ = int.recv() => { tracing::info!("SIGINT received"); break }
            _ = term.recv() => { tracing::info!("SIGTERM received"); break }
            _ = quit.recv() => { tracing::info!("SIGQUIT received"); break }
            _ = hup.recv() => {
                tracing::info!("SIGHUP received: reloading the programs file");
                if let Err(e) = state.reload().await {
                    tracing::error!("reload failed, nothing changed: {}", e.message);
                }
            }
            () = state.shutdown_requested() => { tracing::info!("shutdown requested through the API"); break }
        }
    }
    state.request_shutdown();
}

/// The absolute form of a path (without resolving symlinks).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) -> AppState {
        let config = ServerConfig::defaults(dir);
        let file = ProgramsFile::new(config.include.clone(), config.dir.clone());
        file.loaded(&[], &[]);
        let mut options = supervisor_options(&config, &file);
        options.subreaper = false;
        options.kill_on_parent_death = true;
        let sup = Supervisor::new(options).expect("supervisor");
        let security = Security {
            credentials: None,
            allow: None,
        };
        AppState::new(sup, config, security, vec!["test".into()], file)
    }

    fn kept(st: &AppState) -> (bool, bool, usize) {
        let inner = &st.inner;
        let list = inner.list.try_lock().map(|l| l.is_some()).unwrap_or(true);
        let stats = inner.stats.try_lock().map(|s| s.is_some()).unwrap_or(true);
        (list, stats, st.config_json_len())
    }

    impl AppState {
        fn config_json_len(&self) -> usize {
            self.inner
                .config_json
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .len()
        }
    }

    /// A list, its stats and the config texts it was made of are dropped once nobody asked
    /// for a list for a while: they once stayed for as long as the server ran (~7.5 MB at
    /// 5,000 programs after one `gosuv status`).
    #[tokio::test]
    async fn kept_lists_go_once_nobody_asks() {
        let dir = tempfile::tempdir().expect("tmp");
        let st = state(dir.path());
        let mut p = ProgramConfig::new("a", gosuv::Command::Shell("exec sleep 1000".into()));
        p.start_auto = false;
        st.sup().add(p).await.expect("add");
        st.program_list(None).await.expect("list");
        assert_eq!(
            kept(&st),
            (true, true, 1),
            "the list is kept for the next request"
        );
        let deadline = Instant::now() + KEEP_QUIET * 4;
        while kept(&st) != (false, false, 0) {
            assert!(
                Instant::now() < deadline,
                "(list, stats, config texts) still kept {:?} after {:?} without a request",
                kept(&st),
                KEEP_QUIET * 4
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Asked for again, it is made again.
        st.program_list(None).await.expect("list");
        assert_eq!(kept(&st), (true, true, 1));
        st.sup().shutdown().await;
    }
}
