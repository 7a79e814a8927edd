//! The REST API: [`router`] builds it; it is served unchanged on the unix socket
//! and over HTTP, and tests drive it without a socket.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Extension, Json, Router};
use futures_util::Stream;
use gosuv::events::rfc3339;
use gosuv::{EventNotice, LogEvent, ProcessStats, ProgramConfig, ProgramState, ProgramStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::clients::{Client, Slot};
use super::error::{ApiError, ApiResult};
use super::security::{self, Caller};
use super::{listing, metrics, AppState};

/// The largest request body accepted (one program's JSON is a few hundred bytes).
pub const BODY_LIMIT: usize = 64 * 1024;

/// The longest a start/stop/restart request waits for the resulting state.
const MAX_WAIT: Duration = Duration::from_secs(300);

/// Keys of a program as read back that are status, not config: accepted and ignored in a
/// request body, so that a program read with GET can be edited and sent back with PUT.
pub const STATUS_KEYS: [&str; 16] = [
    "state",
    "pid",
    "started_at",
    "uptime_secs",
    "exit_code",
    "exit_signal",
    "restarts",
    "last_error",
    "log_errors",
    "cpu_percent",
    "rss_bytes",
    "ownership",
    "ready_at",
    "status_text",
    "health_status",
    "waiting_for",
];

/// The web page (issue 6 replaces the file).
const INDEX_HTML: &str = include_str!("../../web/index.html");

/// The OpenAPI document of this API.
pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

/// Every route behind the security middleware, with `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/metrics", get(metrics::metrics))
        .route("/api/openapi.json", get(openapi))
        .route("/api/status", get(server_status))
        .route("/api/reload", post(reload))
        .route("/api/shutdown", post(shutdown))
        .route("/api/server/restart", post(restart_server))
        .route("/api/programs", get(list).post(create))
        .route(
            "/api/programs/{name}",
            get(read).put(replace).delete(remove),
        )
        .route("/api/programs/{name}/start", post(start))
        .route("/api/programs/{name}/stop", post(stop))
        .route("/api/programs/{name}/restart", post(restart))
        .route("/api/programs/{name}/log", get(log))
        .route("/api/programs/{name}/log/follow", get(follow))
        .route("/api/programs/{name}/stats", get(stats))
        .route("/api/programs/{name}/signal", post(signal))
        .route("/api/logs", get(logs))
        .route("/api/logs/follow", get(logs_follow))
        .route("/api/all/{action}", post(all))
        .route("/api/events", get(events))
        .route("/api/wait", get(wait_ready))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/favicon.ico", get(favicon))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::guard,
        ))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route: see /api/openapi.json for the API",
    )
}

async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on this route: see /api/openapi.json for the API"),
    )
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(INDEX_HTML),
    )
        .into_response()
}

/// The page's icon: SVG, which every current browser takes as a favicon, at the path
/// browsers ask for by themselves.
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

/// `GET /favicon.ico`: the icon (no auth: browsers may ask for it without the page's
/// credentials, and it tells nothing about the server).
async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        FAVICON_SVG,
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

/// A path parameter as text. Axum's own rejection (a name that is not UTF-8 once decoded)
/// is plain text; this one is a JSON 400 like every other error.
pub struct Param(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match <Path<String> as axum::extract::FromRequestParts<S>>::from_request_parts(parts, state).await {
            Ok(Path(s)) => Ok(Param(s)),
            Err(e) => Err(ApiError::bad_request(format!(
                "the name in the URL cannot be read ({}): program names are [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}",
                e.body_text()
            ))),
        }
    }
}

/// A name from a path, checked before it is used anywhere.
fn checked(name: &str) -> ApiResult<&str> {
    gosuv::config::validate_name(name).map_err(ApiError::bad_request)?;
    Ok(name)
}

/// An answer for a request on a program that was removed while it waited: the core reports
/// the program's ended task as shutting down (503); unless the server really is, that is a
/// 404.
fn removed_meanwhile(st: &AppState, name: &str, e: ApiError) -> ApiError {
    if e.status == StatusCode::SERVICE_UNAVAILABLE
        && !st.sup().is_shut_down()
        && !st.is_shutting_down()
    {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no program named '{name}': it was removed while this request was under way"),
        );
    }
    e
}

/// A program as read back: its config with the programs.yml keys, then its live status.
#[derive(Serialize)]
pub struct ProgramView<'a> {
    #[serde(flatten)]
    config: &'a ProgramConfig,
    #[serde(flatten)]
    status: StatusView<'a>,
}

/// The live part of a [`ProgramView`].
#[derive(Serialize)]
pub struct StatusView<'a> {
    state: ProgramState,
    pid: Option<u32>,
    started_at: Option<Rfc3339>,
    uptime_secs: Option<f64>,
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    restarts: u64,
    last_error: Option<&'a str>,
    log_errors: u64,
    cpu_percent: Option<f64>,
    rss_bytes: Option<u64>,
    ownership: Option<gosuv::Ownership>,
    /// When the current run became `running` (ready); only while it runs.
    ready_at: Option<Rfc3339>,
    /// What it last said with `STATUS=` (sd_notify).
    status_text: Option<&'a str>,
    /// Its health probe's record. Not `health`: that key is the probe's config.
    health_status: Option<&'a gosuv::HealthStatus>,
    /// In `waiting`: the dependencies not yet satisfied.
    waiting_for: &'a [String],
}

/// A time, written as RFC 3339 only if it is serialized (a list asked for some fields
/// only has no use for the text).
struct Rfc3339(std::time::SystemTime);

impl Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

impl<'a> StatusView<'a> {
    /// A status, with its stats when it has a process.
    pub fn new(status: &'a ProgramStatus, stats: Option<&'a ProcessStats>) -> Self {
        StatusView {
            state: status.state,
            pid: status.pid,
            started_at: status.started_at.map(Rfc3339),
            uptime_secs: status.uptime_secs.map(|s| (s * 1000.0).round() / 1000.0),
            exit_code: status.exit_code,
            exit_signal: status.exit_signal,
            restarts: status.restarts,
            last_error: status.last_error.as_deref(),
            log_errors: status.log_errors,
            cpu_percent: stats
                .filter(|_| status.pid.is_some())
                .map(|s| (s.cpu_percent * 10.0).round() / 10.0),
            rss_bytes: stats.filter(|_| status.pid.is_some()).map(|s| s.rss_bytes),
            ownership: status.ownership,
            // The core keeps the last run's time after it ends; it says nothing then.
            ready_at: status
                .ready_at
                .filter(|_| status.pid.is_some())
                .map(Rfc3339),
            status_text: status.status_text.as_deref(),
            health_status: status.health.as_ref(),
            waiting_for: &status.waiting_for,
        }
    }
}

impl<'a> ProgramView<'a> {
    /// Joins a config, its status and its stats (when it has a process).
    pub fn new(
        config: &'a ProgramConfig,
        status: &'a ProgramStatus,
        stats: Option<&'a ProcessStats>,
    ) -> Self {
        ProgramView {
            config,
            status: StatusView::new(status, stats),
        }
    }
}

async fn one_program(st: &AppState, name: &str) -> ApiResult<Value> {
    let config = st.sup().config(name)?;
    let status = st.sup().status(name)?;
    let stats = match status.pid {
        Some(_) => Some(st.sup().stats(name).await?),
        None => None,
    };
    serde_json::to_value(ProgramView::new(&config, &status, stats.as_ref()))
        .map_err(|e| ApiError::internal(format!("cannot encode the program: {e}")))
}

async fn server_status(State(st): State<AppState>) -> Json<Value> {
    let sup = st.sup();
    Json(json!({
        "state": if st.is_shutting_down() { "shutting_down" } else { "running" },
        "version": gosuv::VERSION,
        "pid": std::process::id(),
        "started_at": rfc3339(sup.started_at()),
        "uptime_secs": (sup.uptime().as_secs_f64() * 1000.0).round() / 1000.0,
        "programs": sup.program_count(),
        "listening": st.listening(),
        "config": st.config().path.as_ref().map(|p| p.display().to_string()),
        "programs_file": st.config().include.display().to_string(),
        "pidfile": st.config().server.pidfile.display().to_string(),
    }))
}

async fn reload(State(st): State<AppState>) -> ApiResult<Json<gosuv::ReloadReport>> {
    Ok(Json(st.reload().await?))
}

async fn shutdown(State(st): State<AppState>) -> (StatusCode, Json<Value>) {
    st.request_shutdown();
    (
        StatusCode::ACCEPTED,
        Json(json!({ "shutting_down": true, "pid": std::process::id() })),
    )
}

/// `POST /api/server/restart`, body `{"exe": "/path/to/gosuv"}` (optional: this server's
/// own binary by default). Checks that the binary runs and accepts this server's config
/// (its `conftest`), and only then re-executes the server as that binary, keeping every
/// program: a refused binary or config changes nothing.
async fn restart_server(
    State(st): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body?;
    let exe = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let v = crate::server::strict_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| {
            ApiError::bad_request("the body must be an object: {\"exe\": \"/path/to/gosuv\"}")
        })?;
        if let Some(k) = obj.keys().find(|k| *k != "exe") {
            return Err(ApiError::bad_request(format!(
                "unknown key '{k}': the only key is 'exe'"
            )));
        }
        match obj.get("exe") {
            None => None,
            Some(Value::String(p)) => Some(std::path::PathBuf::from(p)),
            Some(_) => return Err(ApiError::bad_request("'exe' must be a path")),
        }
    };
    let exe = match exe {
        Some(p) => p,
        None => std::env::current_exe()
            .map_err(|e| ApiError::internal(format!("cannot find this server's binary: {e}")))?,
    };
    if st.is_shutting_down() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the server is shutting down: start it again with 'gosuv start-server'",
        ));
    }
    let config = st.config().path.clone();
    let pidfile = st.config().server.pidfile.clone();
    let checked =
        tokio::task::spawn_blocking(move || check_new_binary(&exe, config.as_deref(), &pidfile))
            .await
            .map_err(|e| ApiError::internal(format!("the check failed: {e}")))?;
    // The checked file where it really is: what is executed, not a path that may change.
    let (exe, keeps_lock) = checked.map_err(ApiError::bad_request)?;
    // A run in the middle of a start or a stop would be taken over as running: its stop, or
    // its readiness, would be lost.
    let busy: Vec<String> = st
        .sup()
        .names()
        .into_iter()
        .filter(|n| {
            st.sup().status(n).is_ok_and(|s| {
                matches!(
                    s.state,
                    gosuv::ProgramState::Starting | gosuv::ProgramState::Stopping
                )
            })
        })
        .collect();
    if !busy.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "{} {} starting or stopping: restart the server once {} running or stopped",
                busy.join(", "),
                if busy.len() == 1 { "is" } else { "are" },
                if busy.len() == 1 { "it is" } else { "they are" }
            ),
        ));
    }
    if !st.request_reexec(exe.clone(), keeps_lock) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "the server is shutting down: start it again with 'gosuv start-server'",
        ));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(
            json!({ "restarting": true, "pid": std::process::id(), "exe": exe.display().to_string() }),
        ),
    ))
}

/// Whether `exe` may replace this server: an absolute path to an executable regular file
/// that only root or this server's user can change (another local user must not be able
/// to put code in it), and that runs and accepts `config` (its `conftest` passes).
fn check_new_binary(
    exe: &std::path::Path,
    config: Option<&std::path::Path>,
    pidfile: &std::path::Path,
) -> Result<(std::path::PathBuf, bool), String> {
    use std::os::unix::fs::MetadataExt;
    if !exe.is_absolute() {
        return Err(format!(
            "{}: the binary must be an absolute path",
            exe.display()
        ));
    }
    // Checked where it really is, every directory on the way too: another user who can
    // change any of them could swap the binary between this check and the exec.
    let real = std::fs::canonicalize(exe).map_err(|e| format!("{}: {e}", exe.display()))?;
    let meta = std::fs::metadata(&real).map_err(|e| format!("{}: {e}", real.display()))?;
    // SAFETY: geteuid has no arguments and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.mode() & 0o111 == 0 {
        return Err(format!("{} is not an executable file", exe.display()));
    }
    if meta.mode() & 0o6000 != 0 {
        return Err(format!("{} is setuid or setgid: refused", real.display()));
    }
    let owned = |m: &std::fs::Metadata| m.uid() == 0 || m.uid() == me;
    if !owned(&meta) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} can be changed by another user (owner uid {}, mode {:o}): refused; make it owned by root or by this server's user and not writable by others",
            real.display(),
            meta.uid(),
            meta.mode() & 0o7777
        ));
    }
    for dir in real.ancestors().skip(1) {
        let m = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // A sticky directory (/tmp) lets others add files, never replace one of ours.
        if !owned(&m) || (m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0) {
            return Err(format!(
                "{} is in {}, which another user can change (owner uid {}, mode {:o}): refused",
                real.display(),
                dir.display(),
                m.uid(),
                m.mode() & 0o7777
            ));
        }
    }
    let exe = real.as_path();
    let mut cmd = std::process::Command::new(exe);
    if let Some(c) = config {
        cmd.arg("-c").arg(c);
    }
    cmd.arg("conftest")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // Its exit status is ours to read: the server's reaper of orphans leaves it alone.
    let child =
        gosuv::spawn_helper(&mut cmd).map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    let pid = child.id();
    let out = wait_output(child, Duration::from_secs(30));
    gosuv::forget_helper(pid);
    let out = out.ok_or_else(|| format!("{} conftest did not finish within 30s", exe.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} refuses the config, nothing was restarted:\n{}{}",
            exe.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The new image finds the runs to take over beside the pidfile: another pidfile in the
    // new config would start every program beside its running copy.
    if let Some(c) = config {
        // Leniently: a key only the new binary knows is its conftest's business.
        let (new, _) =
            gosuv::ServerConfig::load_lenient(c).map_err(|e| format!("{}: {e}", c.display()))?;
        if crate::server::absolute(&new.server.pidfile) != crate::server::absolute(pidfile) {
            return Err(format!(
                "the config moves server.pidfile ({} -> {}): the programs cannot be taken over; use 'gosuv restart-server --programs'",
                pidfile.display(),
                new.server.pidfile.display()
            ));
        }
    }
    // Whether the binary takes the locked pidfile over the exec (an older gosuv does not
    // know the option: it gets the lock the usual way).
    let keeps_lock = match gosuv::spawn_helper(
        std::process::Command::new(exe)
            .args(["start-server", "--pidfile-fd=-1", "--reexecuted", "--help"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    ) {
        Ok(child) => {
            let pid = child.id();
            let ok =
                wait_output(child, Duration::from_secs(10)).is_some_and(|o| o.status.success());
            gosuv::forget_helper(pid);
            ok
        }
        Err(_) => false,
    };
    Ok((real.clone(), keeps_lock))
}

/// A child's output, or `None` (the child killed) when it runs past `limit`.
fn wait_output(mut child: std::process::Child, limit: Duration) -> Option<std::process::Output> {
    use std::io::Read;
    // Read on threads of their own, so a full pipe cannot block the child.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // At most 64 KiB of each is kept; the rest is read and dropped.
    fn keep_some(r: Option<&mut impl Read>) -> Vec<u8> {
        let mut b = Vec::new();
        if let Some(r) = r {
            let _ = r.take(64 * 1024).read_to_end(&mut b);
            let _ = std::io::copy(r, &mut std::io::sink());
        }
        b
    }
    let t_out = std::thread::spawn(move || keep_some(out.as_mut()));
    let t_err = std::thread::spawn(move || keep_some(err.as_mut()));
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    // A daemon the binary left holding its output must not keep the answer waiting.
    let joined = |t: std::thread::JoinHandle<Vec<u8>>| {
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while !t.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if t.is_finished() {
            t.join().unwrap_or_default()
        } else {
            Vec::new()
        }
    };
    Some(std::process::Output {
        status,
        stdout: joined(t_out),
        stderr: joined(t_err),
    })
}

/// `?stats=false` leaves out CPU and memory, which saves a pass over `/proc`;
/// `?fields=name,state` keeps only those keys of each program.
#[derive(Debug, Deserialize)]
struct ListQuery {
    stats: Option<bool>,
    fields: Option<String>,
}

async fn list(
    State(st): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let fields = q
        .fields
        .as_deref()
        .map(listing::Fields::parse)
        .transpose()?;
    if q.stats == Some(false) {
        return listing::without_stats(&st, fields.as_ref());
    }
    st.program_list(fields.as_ref()).await
}

/// Parses a JSON body into a program; `path_name` is the name in the URL, if any. The
/// checks that may look a user up (NSS can be a network service) or stat a directory run
/// on a blocking thread.
async fn program_from_body(
    st: &AppState,
    body: &[u8],
    path_name: Option<&str>,
) -> ApiResult<ProgramConfig> {
    let value = super::strict_json::from_slice(body).map_err(|e| {
        if e.classify() == serde_json::error::Category::Data {
            ApiError::bad_request(format!("the body is refused: {e}"))
        } else {
            ApiError::bad_request(format!("the body is not valid JSON: {e}"))
        }
    })?;
    let Value::Object(mut map) = value else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object with the programs.yml keys (at least name and command)",
        ));
    };
    for k in STATUS_KEYS {
        map.remove(k);
    }
    match (path_name, map.get("name")) {
        (Some(p), None) => {
            map.insert("name".into(), Value::String(p.to_string()));
        }
        (Some(p), Some(n)) if n.as_str() != Some(p) => {
            return Err(ApiError::bad_request(format!(
                "the body names {n} but the URL names '{p}': a program cannot be renamed; delete it and add it again"
            )));
        }
        (None, Some(Value::String(n))) => {
            gosuv::config::validate_name(n).map_err(ApiError::bad_request)?;
            if let Some(why) = gosuv::config::reserved_name(n) {
                return Err(ApiError::bad_request(why));
            }
        }
        _ => {}
    }
    let yaml = serde_yaml::to_value(Value::Object(map))
        .map_err(|e| ApiError::bad_request(format!("cannot read the program: {e}")))?;
    let base = st.sup().base_dir().to_path_buf();
    let parsed =
        tokio::task::spawn_blocking(move || gosuv::config::parse_program_value(yaml, &base))
            .await
            .map_err(|e| ApiError::internal(format!("reading the program failed: {e}")))?;
    let parsed = parsed?;
    if parsed.numprocs > 1 {
        return Err(ApiError::bad_request(format!(
            "numprocs {} would make {} programs: the API adds and changes one program at a \
             time; write the entry in programs.yml and run 'gosuv reload'",
            parsed.numprocs, parsed.numprocs
        )));
    }
    Ok(parsed)
}

/// Refuses to change or remove one instance of a `numprocs` entry alone: programs.yml could
/// not say it.
fn not_an_instance(st: &AppState, name: &str) -> ApiResult<()> {
    match st.sup().config(name)?.instance_of {
        Some((entry, _)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "'{name}' is an instance of '{entry}' (numprocs in programs.yml): change or \
                 remove '{entry}' there and run 'gosuv reload'"
            ),
        )),
        None => Ok(()),
    }
}

async fn create(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let config = program_from_body(&st, &body?, None).await?;
    let name = config.name.clone();
    let change = super::Change::Add(Box::new(config.clone()));
    st.mutate(&caller, change, |sup| async move { sup.add(config).await })
        .await?;
    Ok((StatusCode::CREATED, Json(one_program(&st, &name).await?)))
}

async fn read(State(st): State<AppState>, Param(name): Param) -> ApiResult<Json<Value>> {
    Ok(Json(one_program(&st, checked(&name)?).await?))
}

async fn replace(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = checked(&name)?.to_string();
    let body = body?;
    st.sup().status(&name)?;
    not_an_instance(&st, &name)?;
    let config = program_from_body(&st, &body, Some(&name)).await?;
    let n = name.clone();
    let restarted = st
        .mutate(
            &caller,
            super::Change::Update(Box::new(config.clone())),
            |sup| async move { sup.update(config).await },
        )
        .await
        .map_err(|e| removed_meanwhile(&st, &n, e))?;
    let mut v = one_program(&st, &name).await?;
    if let Value::Object(m) = &mut v {
        m.insert("restarted".into(), Value::Bool(restarted));
    }
    Ok(Json(v))
}

async fn remove(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
) -> ApiResult<Json<Value>> {
    let name = checked(&name)?.to_string();
    st.sup().status(&name)?;
    not_an_instance(&st, &name)?;
    let n = name.clone();
    st.mutate(
        &caller,
        super::Change::Remove(name.clone()),
        |sup| async move { sup.remove(&n).await },
    )
    .await
    .map_err(|e| removed_meanwhile(&st, &name, e))?;
    Ok(Json(json!({ "removed": name })))
}

/// `?wait=false` returns at once; `?timeout=SECS` bounds the wait.
#[derive(Debug, Deserialize)]
struct WaitQuery {
    wait: Option<bool>,
    timeout: Option<f64>,
}

impl WaitQuery {
    fn wait(&self, default: Duration) -> ApiResult<Option<Duration>> {
        if self.wait == Some(false) {
            return Ok(None);
        }
        match self.timeout {
            None => Ok(Some(default.min(MAX_WAIT))),
            Some(t) if t > 0.0 => gosuv::wait_limit(t).map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "timeout={t}: give a number of seconds above 0 and at most {} (1 day)",
                    gosuv::MAX_WAIT.as_secs()
                ))
            }),
            Some(t) => Err(ApiError::bad_request(format!(
                "timeout={t}: give a number of seconds above 0 and at most {} (1 day)",
                gosuv::MAX_WAIT.as_secs()
            ))),
        }
    }
}

/// How long a start may take by default: each try (`start_seconds`, or the `ready` probe's
/// timeout), the backoff between them, what its dependencies may take to start first (they
/// start at once, but a chain starts one after the other), and a margin. The keys are
/// bounded (a day, a thousand retries), and the sum saturates anyway. `config_of` finds a
/// dependency's config.
fn start_wait(
    config: &ProgramConfig,
    config_of: &dyn Fn(&str) -> Option<ProgramConfig>,
) -> Duration {
    fn own(config: &ProgramConfig) -> Duration {
        let tries = u64::from(config.start_retries) + 1;
        // The backoff is capped at a minute: past the first few retries, each costs that.
        let backoff: u64 = (1..=config.start_retries.min(8))
            .map(|f| gosuv::backoff_delay(f).as_secs())
            .sum::<u64>()
            .saturating_add(
                u64::from(config.start_retries.saturating_sub(8))
                    .saturating_mul(gosuv::backoff_delay(u32::MAX).as_secs()),
            );
        // A ready probe replaces start_seconds: a try lasts until it passes or times out.
        let try_secs = match &config.ready {
            Some(r) => r.timeout.as_secs().saturating_add(1),
            None => config.start_seconds,
        };
        Duration::from_secs(try_secs.saturating_mul(tries).saturating_add(backoff))
    }
    // `config`'s own time plus the longest chain of its dependencies: a walk without
    // recursion (a long chain must not exhaust the stack), each program's figure computed
    // once (a graph of diamonds must not take exponential time); a program already on the
    // path (a cycle, which the core refuses anyway) is not followed.
    let mut memo: std::collections::HashMap<String, Duration> = std::collections::HashMap::new();
    let mut on_path: std::collections::HashSet<String> = std::collections::HashSet::new();
    on_path.insert(config.name.clone());
    let mut stack: Vec<(ProgramConfig, usize)> = vec![(config.clone(), 0)];
    while let Some((c, next)) = stack.last_mut() {
        if let Some(d) = c.depends_on.get(*next) {
            *next += 1;
            let name = d.name.clone();
            if memo.contains_key(&name) || on_path.contains(&name) {
                continue;
            }
            if let Some(dc) = config_of(&name) {
                on_path.insert(name);
                stack.push((dc, 0));
            }
            continue;
        }
        let Some((c, _)) = stack.pop() else { break };
        let deps = c
            .depends_on
            .iter()
            .filter_map(|d| memo.get(&d.name))
            .max()
            .copied()
            .unwrap_or(Duration::ZERO);
        on_path.remove(&c.name);
        memo.insert(c.name.clone(), own(&c).saturating_add(deps));
    }
    memo.get(&config.name)
        .copied()
        .unwrap_or_else(|| own(config))
        .saturating_add(Duration::from_secs(10))
}

fn stop_wait(config: &ProgramConfig) -> Duration {
    Duration::from_secs(config.stop_timeout.saturating_add(10))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
}

impl Action {
    fn parse(s: &str) -> ApiResult<Self> {
        match s {
            "start" => Ok(Action::Start),
            "stop" => Ok(Action::Stop),
            "restart" => Ok(Action::Restart),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no action '{s}': use start, stop or restart"),
            )),
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
        }
    }

    async fn run(self, st: &AppState, name: &str, q: &WaitQuery) -> ApiResult<ProgramStatus> {
        let config = st.sup().config(name)?;
        let sup = st.sup();
        let config_of = |n: &str| sup.config(n).ok();
        let to_start = start_wait(&config, &config_of);
        let r = match self {
            Action::Start => sup.start(name, q.wait(to_start)?).await,
            Action::Stop => sup.stop(name, q.wait(stop_wait(&config))?).await,
            Action::Restart => {
                sup.restart(name, q.wait(to_start.saturating_add(stop_wait(&config)))?)
                    .await
            }
        };
        r.map_err(|e| removed_meanwhile(st, name, e.into()))
    }
}

async fn act(
    st: AppState,
    caller: Caller,
    name: String,
    q: Result<Query<WaitQuery>, QueryRejection>,
    action: Action,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let name = checked(&name)?;
    tracing::info!(peer = %caller.peer, user = caller.user.as_deref().unwrap_or("-"), "{} {name}", action.as_str());
    let done = action.run(&st, name, &q).await;
    st.touch();
    done?;
    Ok(Json(one_program(&st, name).await?))
}

async fn start(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    act(st, caller, name, q, Action::Start).await
}

async fn stop(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    act(st, caller, name, q, Action::Stop).await
}

async fn restart(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
    q: Result<Query<WaitQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    act(st, caller, name, q, Action::Restart).await
}

/// `GET /api/wait?names=a,b&timeout=SECS`: waits until every named program is `running`
/// (ready); 409 as soon as one goes `fatal` (with its last error), 504 when the timeout (30 s
/// by default, at most a day) passes, 404 for an unknown name. Starts nothing.
#[derive(Debug, Deserialize)]
struct WaitAllQuery {
    names: Option<String>,
    timeout: Option<f64>,
}

async fn wait_ready(
    State(st): State<AppState>,
    q: Result<Query<WaitAllQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let q = q
        .map_err(|e| ApiError::bad_request(format!("bad query: {}", e.body_text())))?
        .0;
    let names: Vec<String> = q
        .names
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request(
            "names=a,b: give the programs to wait for",
        ));
    }
    let bound = || {
        ApiError::bad_request(format!(
            "timeout: give a number of seconds above 0 and at most {} (1 day)",
            gosuv::MAX_WAIT.as_secs()
        ))
    };
    let timeout = match q.timeout {
        None => Duration::from_secs(30),
        Some(t) if t > 0.0 => gosuv::wait_limit(t).map_err(|_| bound())?,
        Some(_) => return Err(bound()),
    };
    let sup = st.sup();
    let waits = names.iter().map(|n| {
        let sup = sup.clone();
        async move { sup.wait(n, timeout).await }
    });
    let mut statuses = Vec::new();
    // The first to fail answers for all (the others carry on, unwatched).
    let mut pending: futures_util::stream::FuturesUnordered<_> = waits.collect();
    while let Some(r) = futures_util::StreamExt::next(&mut pending).await {
        match r {
            Ok(s) => statuses.push(s),
            Err(e @ gosuv::Error::StartFailed { .. }) => {
                return Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
    }
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(json!({ "running": statuses })))
}

/// `GET /healthz`: 200 while the server serves (no auth).
async fn healthz() -> Json<Value> {
    Json(json!({ "ok": true }))
}

/// `GET /readyz`: 200 when every `start_auto` program is `running`, else 503 naming those
/// that are not (no auth; names only).
async fn readyz(State(st): State<AppState>) -> Response {
    let sup = st.sup();
    // A one-shot that ran and exited with one of its exit codes is done, not unready.
    let mut not_ready: Vec<String> = sup
        .list()
        .into_iter()
        .filter(|s| s.state != ProgramState::Running)
        .filter(|s| {
            sup.config(&s.name).is_ok_and(|c| {
                let done = s.state == ProgramState::Exited
                    && s.exit_code.is_some_and(|code| c.exit_codes.contains(&code));
                c.start_auto && !done
            })
        })
        .map(|s| s.name)
        .collect();
    not_ready.sort();
    if not_ready.is_empty() {
        Json(json!({ "ready": true })).into_response()
    } else {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}", not_ready.join(", ")),
        )
        .into_response();
        *r.body_mut() = axum::body::Body::from(
            json!({ "error": format!("not ready: {}", not_ready.join(", ")), "not_ready": not_ready })
                .to_string(),
        );
        r
    }
}

/// The programs a `names=a,w-*` query selects (every program without one): 404 naming the
/// patterns that select nothing, and then nothing is done.
fn selected(
    st: &AppState,
    names: Option<&str>,
) -> ApiResult<Option<std::collections::HashSet<String>>> {
    let Some(list) = names else {
        return Ok(None);
    };
    let patterns = crate::select::split_list(list);
    crate::select::select(&patterns, &st.sup().names())
        .map(|v| Some(v.into_iter().collect()))
        .map_err(|e| match e {
            crate::select::SelectError::Unmatched(_) => {
                ApiError::new(StatusCode::NOT_FOUND, e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        })
}

/// `?names=` of `POST /api/all/{action}`, besides [`WaitQuery`]'s keys.
#[derive(Debug, Deserialize)]
struct AllQuery {
    wait: Option<bool>,
    timeout: Option<f64>,
    names: Option<String>,
}

/// `POST /api/all/{start|stop|restart}`: every program at once, or those `?names=a,w-*`
/// selects (a stop, dependents first); one result each.
async fn all(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(action): Param,
    q: Result<Query<AllQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let action = Action::parse(&action)?;
    let Query(q) = q?;
    let chosen = selected(&st, q.names.as_deref())?;
    let q = WaitQuery {
        wait: q.wait,
        timeout: q.timeout,
    };
    tracing::info!(peer = %caller.peer, user = caller.user.as_deref().unwrap_or("-"), "{} {}", action.as_str(), chosen.as_ref().map_or("all".to_string(), |c| format!("{} programs", c.len())));
    // Stop goes dependents first: each layer but the last is waited for (as long as its
    // stops take), whatever `wait` says; start and restart go all at once (a dependent
    // waits for its dependencies by itself).
    let mut layers = match action {
        Action::Stop => st.sup().stop_order(),
        Action::Start | Action::Restart => vec![st.sup().names()],
    };
    if let Some(chosen) = &chosen {
        for l in &mut layers {
            l.retain(|n| chosen.contains(n));
        }
        layers.retain(|l| !l.is_empty());
    }
    let last = layers.len().saturating_sub(1);
    let mut names = Vec::new();
    let mut results = Vec::new();
    for (i, layer) in layers.into_iter().enumerate() {
        let waited = WaitQuery {
            wait: None,
            timeout: None,
        };
        let q = if i < last { &waited } else { &q };
        let done =
            futures_util::future::join_all(layer.iter().map(|n| action.run(&st, n, q))).await;
        names.extend(layer);
        results.extend(done);
    }
    st.touch();
    let out: Vec<Value> = names
        .iter()
        .zip(results)
        .map(|(n, r)| match r {
            Ok(s) => json!({ "name": n, "ok": true, "state": s.state, "pid": s.pid }),
            Err(e) => json!({
                "name": n,
                "ok": false,
                "state": st.sup().status(n).ok().map(|s| s.state),
                "error": e.message,
            }),
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    stream: Option<String>,
    lines: Option<usize>,
}

impl LogQuery {
    fn stream(&self) -> ApiResult<gosuv::Stream> {
        match self.stream.as_deref() {
            None | Some("stdout") => Ok(gosuv::Stream::Stdout),
            Some("stderr") => Ok(gosuv::Stream::Stderr),
            Some(s) => Err(ApiError::bad_request(format!(
                "stream={s}: use stdout or stderr"
            ))),
        }
    }
}

fn tail_text(st: &AppState, name: &str, q: &LogQuery, default_lines: usize) -> ApiResult<Vec<u8>> {
    let all = st.sup().tail(name, q.stream()?, gosuv::logs::TAIL_BYTES)?;
    Ok(gosuv::logs::last_lines(&all, q.lines.unwrap_or(default_lines)).to_vec())
}

async fn log(
    State(st): State<AppState>,
    Param(name): Param,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q?;
    let text = tail_text(&st, checked(&name)?, &q, 100)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        text,
    )
        .into_response())
}

/// A slot for a live stream of the request's client (none for a router driven without a
/// socket).
fn stream_slot(client: Option<Extension<Client>>) -> ApiResult<Option<Slot>> {
    client.map(|Extension(c)| c.open_stream()).transpose()
}

/// A stream that ends when the server shuts down, holding its client's stream slot while
/// it lasts.
fn until_shutdown<S>(
    st: &AppState,
    s: S,
    slot: Option<Slot>,
) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    S: Stream<Item = Result<SseEvent, Infallible>>,
{
    let token = st.streams_token();
    futures_util::stream::unfold(
        (Box::pin(s), token, slot),
        |(mut s, token, slot)| async move {
            use futures_util::StreamExt;
            tokio::select! {
                item = s.next() => item.map(|i| (i, (s, token, slot))),
                () = token.cancelled() => None,
            }
        },
    )
}

async fn follow(
    State(st): State<AppState>,
    Param(name): Param,
    q: Result<Query<LogQuery>, QueryRejection>,
    client: Option<Extension<Client>>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let Query(q) = q?;
    let name = checked(&name)?;
    // The tail and the follower taken at once: nothing written between them is lost or
    // repeated (and a character cut at the tail's end is completed by the follower's bytes).
    let (all, follower) = st
        .sup()
        .tail_and_follow(name, q.stream()?, gosuv::logs::TAIL_BYTES)?;
    let slot = stream_slot(client)?;
    let mut carry = Utf8Carry::default();
    let first = carry.text(gosuv::logs::last_lines(&all, q.lines.unwrap_or(0)));
    let first = (!first.is_empty()).then(|| log_event(&first));
    let live = futures_util::stream::unfold((follower, carry), |(mut f, mut carry)| async move {
        loop {
            let ev = match f.recv().await? {
                LogEvent::Data(b) => {
                    let text = carry.text(&b);
                    if text.is_empty() {
                        continue;
                    }
                    log_event(&text)
                }
                LogEvent::Missed(n) => {
                    carry.clear();
                    SseEvent::default()
                        .event("missed")
                        .data(json!({ "bytes": n }).to_string())
                }
            };
            return Some((Ok(ev), (f, carry)));
        }
    });
    let s = futures_util::StreamExt::chain(futures_util::stream::iter(first.map(Ok)), live);
    Ok(Sse::new(until_shutdown(&st, s, slot)).keep_alive(KeepAlive::default()))
}

fn log_event(text: &str) -> SseEvent {
    SseEvent::default()
        .event("log")
        .data(Value::String(text.to_string()).to_string())
}

async fn events(
    State(st): State<AppState>,
    client: Option<Extension<Client>>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let slot = stream_slot(client)?;
    let sub = st.sup().subscribe();
    let s = futures_util::stream::unfold(sub, |mut sub| async move {
        let ev = match sub.recv().await? {
            EventNotice::Changed(e) => SseEvent::default()
                .event("state")
                .data(serde_json::to_string(&e).unwrap_or_default()),
            EventNotice::Missed(n) => SseEvent::default()
                .event("missed")
                .data(json!({ "events": n }).to_string()),
        };
        Some((Ok(ev), sub))
    });
    Ok(Sse::new(until_shutdown(&st, s, slot)).keep_alive(KeepAlive::default()))
}

/// `POST /api/programs/{name}/signal` with `{"signal": "HUP"}` (a name, with or without
/// `SIG`, or a number), and optionally `"pid": N`: sends it to every process of the
/// program's current run; with `pid`, only if that run's leader is still N (409 and nothing
/// sent after a restart).
async fn signal(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Param(name): Param,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let name = checked(&name)?;
    let body = body?;
    let value = super::strict_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not valid JSON: {e} (send {{\"signal\": \"HUP\"}})"
        ))
    })?;
    let sig =
        match value.get("signal") {
            Some(Value::String(t)) => {
                gosuv::parse_signal(t).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            Some(Value::Number(n)) => {
                let t = n.to_string();
                gosuv::parse_signal(&t).map_err(|e| ApiError::bad_request(e.to_string()))?
            }
            _ => return Err(ApiError::bad_request(
                "the body must be {\"signal\": NAME} with a signal name (HUP, SIGUSR1) or number",
            )),
        };
    let pid = match value.get("pid") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_u64().and_then(|p| u32::try_from(p).ok()) {
            Some(p) if p > 0 => Some(p),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "pid {n}: give the program's pid as listed (a positive number), or leave it out"
                )))
            }
        },
        Some(_) => {
            return Err(ApiError::bad_request(
                "\"pid\" must be a number: the pid of the run the signal is meant for",
            ))
        }
    };
    let sig_name = gosuv::signal_name(sig);
    tracing::info!(peer = %caller.peer, user = caller.user.as_deref().unwrap_or("-"), "signal {sig_name} {name}");
    // The signal was checked above: an invalid argument now is a program with no process,
    // or not the run with that pid.
    st.sup()
        .signal_run(name, sig, pid)
        .await
        .map_err(|e| match e {
            gosuv::Error::Invalid(m) => ApiError::new(StatusCode::CONFLICT, m),
            e => removed_meanwhile(&st, name, e.into()),
        })?;
    let mut v = one_program(&st, name).await?;
    if let Value::Object(m) = &mut v {
        m.insert("signal".into(), Value::String(sig_name));
    }
    Ok(Json(v))
}

/// `?names=a,w-*&lines=N` of the merged logs.
#[derive(Debug, Deserialize)]
struct LogsQuery {
    names: Option<String>,
    lines: Option<usize>,
}

/// The most lines of each stream a merged request asks for.
const MAX_LINES: usize = 1000;

/// The most bytes of tails one merged request sends (before its live output): past it, the
/// tails of the remaining streams are left out, and a notice says so.
const MAX_TAIL_BYTES: usize = 4 * 1024 * 1024;

/// The tails of a program a merged follow takes up later (added, or added again) at most.
const LATER_TAIL_BYTES: usize = 256 * 1024;

/// The most programs one merged follow holds (two streams each): a connection's cost stays
/// bounded however many programs there are.
const MAX_FOLLOWED: usize = 1024;

impl LogsQuery {
    fn lines(&self) -> ApiResult<usize> {
        match self.lines {
            None => Ok(10),
            Some(n) if n <= MAX_LINES => Ok(n),
            Some(n) => Err(ApiError::bad_request(format!(
                "lines={n}: at most {MAX_LINES} lines of each stream (use 'gosuv tail' or the log files for more)"
            ))),
        }
    }
}

/// The text of one followed stream: a UTF-8 character split across two reads stays whole,
/// its first bytes (at most 3) waiting for the next piece, instead of becoming two U+FFFD.
#[derive(Default)]
struct Utf8Carry {
    held: Vec<u8>,
}

impl Utf8Carry {
    /// `bytes` after what was held, as text; an unfinished character at the end is held.
    fn text(&mut self, bytes: &[u8]) -> String {
        let mut buf = std::mem::take(&mut self.held);
        buf.extend_from_slice(bytes);
        let keep = unfinished_char(&buf);
        self.held = buf.split_off(buf.len() - keep);
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Forgets what was held: after skipped output it begins nothing that follows.
    fn clear(&mut self) {
        self.held.clear();
    }
}

/// How many bytes at the end of `b` begin a UTF-8 character that is not finished yet (0 to
/// 3); bytes that can never become one are not held.
fn unfinished_char(b: &[u8]) -> usize {
    for back in (1..=3.min(b.len())).rev() {
        if let Err(e) = std::str::from_utf8(&b[b.len() - back..]) {
            if e.valid_up_to() == 0 && e.error_len().is_none() {
                return back;
            }
        }
    }
    0
}

/// One piece of a program's output as the merged logs send it.
fn log_piece(name: &str, stream: gosuv::Stream, text: &str) -> Value {
    json!({
        "name": name,
        "stream": stream_name(stream),
        "text": text,
    })
}

fn stream_name(stream: gosuv::Stream) -> &'static str {
    match stream {
        gosuv::Stream::Stdout => "stdout",
        gosuv::Stream::Stderr => "stderr",
    }
}

/// The programs a logs query names, sorted (every program without `names`).
fn logs_names(st: &AppState, names: Option<&str>) -> ApiResult<Vec<String>> {
    if let Some(list) = names {
        let n = crate::select::split_list(list).len();
        if n > crate::select::MAX_PATTERNS {
            return Err(ApiError::bad_request(
                crate::select::SelectError::TooMany(n).to_string(),
            ));
        }
    }
    let all = st.sup().names();
    Ok(match selected(st, names)? {
        Some(chosen) => all.into_iter().filter(|n| chosen.contains(n)).collect(),
        None => all,
    })
}

/// What a merged request says when the tails of `cut` streams were left out.
fn tails_cut(cut: usize) -> String {
    format!(
        "the last lines of {cut} stream(s) were left out: one request sends at most {} MiB of them (ask for fewer lines= or fewer names=)",
        MAX_TAIL_BYTES / (1024 * 1024)
    )
}

/// `GET /api/logs?names=a,w-*&lines=N`: the last N (10, at most 1000) lines of each stream
/// of each program, `[{name, stream, text}]`; past 4 MiB of them, the rest are left out and
/// a last `{notice}` says so.
async fn logs(
    State(st): State<AppState>,
    q: Result<Query<LogsQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(q) = q?;
    let lines = q.lines()?;
    let mut out = Vec::new();
    let mut budget = MAX_TAIL_BYTES;
    let mut cut = 0;
    for name in logs_names(&st, q.names.as_deref())? {
        for stream in [gosuv::Stream::Stdout, gosuv::Stream::Stderr] {
            // A program removed meanwhile has nothing more to say.
            let Ok(all) = st.sup().tail(&name, stream, gosuv::logs::TAIL_BYTES) else {
                continue;
            };
            let text = gosuv::logs::last_lines(&all, lines);
            if text.len() > budget {
                cut += 1;
                continue;
            }
            budget -= text.len();
            if !text.is_empty() {
                out.push(log_piece(&name, stream, &String::from_utf8_lossy(text)));
            }
        }
    }
    if cut > 0 {
        out.push(json!({ "notice": tails_cut(cut) }));
    }
    Ok(Json(Value::Array(out)))
}

/// What one followed stream of the merged logs yields: events, then its end (the program
/// was removed), so that a program added again under the same name is followed again.
enum Piece {
    Event(SseEvent),
    Ended(String),
}

/// One followed stream of the merged logs.
type PieceStream = std::pin::Pin<Box<dyn Stream<Item = Piece> + Send>>;

/// The last `lines` of one stream of `name` (within what is left of `budget`, else counted
/// in `cut`), then its output as it comes, as SSE events.
fn follow_piece(
    st: &AppState,
    name: &str,
    stream: gosuv::Stream,
    lines: usize,
    budget: &mut usize,
    cut: &mut usize,
) -> Option<PieceStream> {
    use futures_util::StreamExt;
    let (tail, follower) = st
        .sup()
        .tail_and_follow(name, stream, gosuv::logs::TAIL_BYTES)
        .ok()?;
    let mut carry = Utf8Carry::default();
    let mut first = gosuv::logs::last_lines(&tail, lines);
    if first.len() > *budget {
        *cut += 1;
        first = &[];
    }
    *budget -= first.len();
    let first = carry.text(first);
    let first = (!first.is_empty()).then(|| Piece::Event(piece_event(name, stream, &first)));
    let n = name.to_string();
    let live = futures_util::stream::unfold(
        (follower, n, carry),
        move |(mut f, n, mut carry)| async move {
            loop {
                let ev = match f.recv().await? {
                    LogEvent::Data(b) => {
                        let text = carry.text(&b);
                        if text.is_empty() {
                            continue;
                        }
                        piece_event(&n, stream, &text)
                    }
                    LogEvent::Missed(bytes) => {
                        carry.clear();
                        SseEvent::default().event("missed").data(
                            json!({ "name": n, "stream": stream_name(stream), "bytes": bytes })
                                .to_string(),
                        )
                    }
                };
                return Some((Piece::Event(ev), (f, n, carry)));
            }
        },
    );
    let end = futures_util::stream::iter([Piece::Ended(name.to_string())]);
    Some(Box::pin(
        futures_util::stream::iter(first).chain(live).chain(end),
    ))
}

/// What one merged follow holds: its streams, how many streams of each program are still
/// followed, and what is left of its tails' budget.
struct Merged {
    streams: futures_util::stream::SelectAll<PieceStream>,
    followed: HashMap<String, u8>,
    lines: usize,
    budget: usize,
    cut: usize,
    /// Whether programs were left out for [`MAX_FOLLOWED`] (said once).
    full: bool,
}

impl Merged {
    /// Follows both streams of `name` (a program removed meanwhile is skipped); false when
    /// the follow holds [`MAX_FOLLOWED`] programs already.
    fn follow(&mut self, st: &AppState, name: &str) -> bool {
        if self.followed.len() >= MAX_FOLLOWED {
            return false;
        }
        for stream in [gosuv::Stream::Stdout, gosuv::Stream::Stderr] {
            if let Some(p) = follow_piece(
                st,
                name,
                stream,
                self.lines,
                &mut self.budget,
                &mut self.cut,
            ) {
                self.streams.push(p);
                *self.followed.entry(name.to_string()).or_default() += 1;
            }
        }
        true
    }

    /// Follows `name` unless it is followed already; a notice (once) when the follow is full.
    fn follow_new(
        &mut self,
        st: &AppState,
        name: &str,
        notices: &mut std::collections::VecDeque<SseEvent>,
    ) {
        if self.followed.contains_key(name) {
            return;
        }
        // A program followed later gets a budget of its own for its tails (the first one
        // is spent by the first burst).
        self.budget = LATER_TAIL_BYTES;
        if self.follow(st, name) || self.full {
            return;
        }
        self.full = true;
        notices.push_back(notice(&format!(
            "'{name}' and programs added after it are not followed: one follow holds at most {MAX_FOLLOWED} programs (follow fewer with names=)"
        )));
    }

    /// A notice for the tails left out since the last one.
    fn take_cut(&mut self) -> Option<SseEvent> {
        let cut = std::mem::take(&mut self.cut);
        (cut > 0).then(|| notice(&tails_cut(cut)))
    }
}

fn notice(text: &str) -> SseEvent {
    SseEvent::default()
        .event("notice")
        .data(json!({ "text": text }).to_string())
}

fn piece_event(name: &str, stream: gosuv::Stream, text: &str) -> SseEvent {
    SseEvent::default()
        .event("log")
        .data(log_piece(name, stream, text).to_string())
}

/// `GET /api/logs/follow?names=a,w-*&lines=N`: the output of every program (or of those
/// named), stdout and stderr, as one SSE stream of `log` events `{name, stream, text}` in
/// the order it arrives, the last N (10, at most 1000) lines of each stream first (at most
/// 4 MiB of them; a `notice` event `{text}` says what was left out). Without `names`,
/// programs added meanwhile are followed too, a program removed and added again under the
/// same name included. One connection for up to 1024 programs.
async fn logs_follow(
    State(st): State<AppState>,
    q: Result<Query<LogsQuery>, QueryRejection>,
    client: Option<Extension<Client>>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    use futures_util::StreamExt;
    let Query(q) = q?;
    let lines = q.lines()?;
    let every = q.names.is_none();
    // Subscribed first: a program added after the list below is seen by its event.
    let events = every.then(|| st.sup().subscribe());
    let names = logs_names(&st, q.names.as_deref())?;
    if names.len() > MAX_FOLLOWED {
        return Err(ApiError::bad_request(format!(
            "{} programs: one follow holds at most {MAX_FOLLOWED} (follow fewer with names=)",
            names.len()
        )));
    }
    let slot = stream_slot(client)?;
    let mut merged = Merged {
        streams: futures_util::stream::SelectAll::new(),
        followed: HashMap::new(),
        lines,
        budget: MAX_TAIL_BYTES,
        cut: 0,
        full: false,
    };
    for name in &names {
        merged.follow(&st, name);
    }
    let notices: std::collections::VecDeque<SseEvent> = merged.take_cut().into_iter().collect();
    let s = futures_util::stream::unfold(
        (merged, events, st.clone(), notices),
        move |(mut merged, mut events, st, mut notices)| async move {
            loop {
                if let Some(ev) = notices.pop_front() {
                    return Some((Ok(ev), (merged, events, st, notices)));
                }
                tokio::select! {
                    piece = merged.streams.next(), if !merged.streams.is_empty() => match piece {
                        Some(Piece::Event(ev)) => {
                            return Some((Ok(ev), (merged, events, st, notices)));
                        }
                        Some(Piece::Ended(name)) => {
                            let gone = merged.followed.get_mut(&name).is_some_and(|n| {
                                *n = n.saturating_sub(1);
                                *n == 0
                            });
                            if gone {
                                merged.followed.remove(&name);
                                // Its events were passed over while its last output was
                                // still queued: a program added again under its name is
                                // followed from here.
                                if events.is_some() && st.sup().has_program(&name) {
                                    merged.follow_new(&st, &name, &mut notices);
                                }
                            }
                        }
                        None => {}
                    },
                    notice = async {
                        match events.as_mut() {
                            Some(e) => e.recv().await,
                            None => None,
                        }
                    }, if events.is_some() => match notice {
                        Some(EventNotice::Changed(e)) => {
                            merged.follow_new(&st, &e.program, &mut notices);
                        }
                        // Events were skipped: an addition among them is found in the list.
                        Some(EventNotice::Missed(_)) => {
                            for name in st.sup().names() {
                                merged.follow_new(&st, &name, &mut notices);
                            }
                        }
                        None => events = None,
                    },
                    // Named programs all removed, or every program and the server's events
                    // ended: nothing more will come.
                    else => return None,
                }
                notices.extend(merged.take_cut());
            }
        },
    );
    Ok(Sse::new(until_shutdown(&st, s, slot)).keep_alive(KeepAlive::default()))
}

async fn stats(State(st): State<AppState>, Param(name): Param) -> ApiResult<Json<ProcessStats>> {
    Ok(Json(st.sup().stats(checked(&name)?).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start waits for the `ready` probe's timeout (not `start_seconds`) on each try, and
    /// for its dependencies to start first, the longest chain of them.
    #[test]
    fn a_start_waits_for_its_ready_timeout_and_its_dependencies() {
        let program = |yaml: &str| {
            let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
            gosuv::config::parse_program_value(v, std::path::Path::new("/")).unwrap()
        };
        let db =
            program("{name: db, command: x, start_retries: 0, ready: {log: up, timeout: 40s}}");
        let cache = program("{name: cache, command: x, start_retries: 0, start_seconds: 2}");
        let api = program("{name: api, command: x, start_retries: 0, depends_on: [db, cache]}");
        let web = program("{name: web, command: x, start_retries: 1, depends_on: [api]}");
        let all = [db.clone(), cache.clone(), api.clone(), web.clone()];
        let config_of = |n: &str| all.iter().find(|c| c.name == n).cloned();
        let secs = |c: &ProgramConfig| start_wait(c, &config_of).as_secs();
        // One try of 41 s (the timeout and a second), and the margin of 10 s.
        assert_eq!(secs(&db), 51);
        assert_eq!(secs(&cache), 12);
        // Its own second, then db's 41 (longer than cache's 2).
        assert_eq!(secs(&api), 1 + 41 + 10);
        // Two tries of a second, a second of backoff, then api's chain.
        assert_eq!(secs(&web), 2 + 1 + 1 + 41 + 10);
    }

    #[test]
    fn a_character_split_across_pieces_stays_whole() {
        let mut c = Utf8Carry::default();
        let e = "é".as_bytes();
        assert_eq!(c.text(&[b'a', e[0]]), "a");
        assert_eq!(c.text(&[e[1], b'\n']), "é\n");
        let cat = "😀".as_bytes();
        assert_eq!(c.text(&cat[..1]), "");
        assert_eq!(c.text(&cat[1..3]), "");
        assert_eq!(c.text(&cat[3..]), "😀");
        // Bytes that can never be a character are not held.
        assert_eq!(c.text(&[0xff]), "\u{fffd}");
        assert_eq!(c.text(b"x\x80"), "x\u{fffd}");
        // Skipped output: what was held begins nothing.
        assert_eq!(c.text(&e[..1]), "");
        c.clear();
        assert_eq!(c.text(b"z"), "z");
    }

    /// The published document names every route of [`router`], and nothing else.
    #[test]
    fn openapi_lists_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI_JSON).expect("valid JSON");
        assert_eq!(doc["info"]["version"], gosuv::VERSION);
        let mut paths: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        paths.sort_unstable();
        let mut routes = vec![
            "/",
            "/metrics",
            "/api/openapi.json",
            "/api/status",
            "/api/reload",
            "/api/shutdown",
            "/api/programs",
            "/api/programs/{name}",
            "/api/programs/{name}/start",
            "/api/programs/{name}/stop",
            "/api/programs/{name}/restart",
            "/api/programs/{name}/log",
            "/api/programs/{name}/log/follow",
            "/api/programs/{name}/stats",
            "/api/programs/{name}/signal",
            "/api/logs",
            "/api/logs/follow",
            "/api/all/{action}",
            "/api/events",
            "/api/wait",
            "/healthz",
            "/readyz",
            "/favicon.ico",
        ];
        routes.sort_unstable();
        assert_eq!(paths, routes);
    }
}
