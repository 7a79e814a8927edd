//! What each CLI command does. Everything but `start-server`, `conftest`, `edit`, `kill` and
//! `version` is a request to the server's API.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use hyper::Method;
use serde_json::Value;

use crate::cli::{Cli, Command, Target};
use crate::client::{Client, ClientError};
use crate::daemon;
use crate::{CliResult, Failure};

/// Runs one command.
///
/// # Errors
/// The command failed; the message says what to do.
pub fn run(cli: Cli) -> CliResult {
    let conf = crate::server::absolute(&cli.conf);
    let Some(command) = cli.command else {
        if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return crate::shell::run(&conf);
        }
        return Err(Failure::new(
            "no command given: 'gosuv help' lists them ('gosuv shell' reads them from standard input)",
        ));
    };
    match command {
        Command::StartServer {
            foreground,
            daemon_child,
            pidfile_fd,
            reexecuted,
        } => {
            crate::daemon::inherit_pidfile(pidfile_fd, reexecuted);
            start_server(&conf, foreground, daemon_child)
        }
        Command::Shutdown => shutdown(&conf).map(|_| println!("server stopped")),
        Command::StatusServer => status_server(&conf),
        Command::RestartServer { programs } => restart_server(&conf, programs),
        Command::Kill { force } => kill(&conf, force),
        Command::Reload => reload(&conf),
        Command::Conftest => conftest(&conf),
        Command::Edit => edit(&conf),
        Command::Status { names, json } => status(&conf, &names, json),
        Command::Start(t) => act(&conf, "start", &t),
        Command::Stop(t) => act(&conf, "stop", &t),
        Command::Restart(t) => act(&conf, "restart", &t),
        Command::Signal { signal, names } => send_signal(&conf, &signal, &names),
        Command::Tail {
            name,
            follow,
            lines,
            stderr,
        } => tail(&conf, &name, follow, lines, stderr),
        Command::Logs {
            names,
            follow,
            lines,
        } => logs(&conf, &names, follow, lines),
        Command::Shell => crate::shell::run(&conf),
        Command::Top => crate::top::run(&conf),
        Command::Wait { names, timeout } => wait(&conf, &names, timeout),
        Command::Completions { shell } => crate::docs::completions(shell),
        Command::Man => crate::docs::man(),
        Command::Help { command } => crate::docs::help(&command),
        Command::Names => {
            crate::docs::print_names(&conf);
            Ok(())
        }
        Command::Version => version(&conf),
        Command::Holder => crate::holder::run(),
    }
}

fn load(conf: &Path) -> CliResult<gosuv::ServerConfig> {
    if !conf.exists() {
        return Err(Failure::new(format!(
            "no config file at {}: run 'gosuv start-server' there (it writes one), or pass -c PATH",
            conf.display()
        )));
    }
    Ok(gosuv::ServerConfig::load(conf)?)
}

fn client(conf: &Path) -> CliResult<(gosuv::ServerConfig, Client)> {
    let config = load(conf)?;
    let client = Client::from_config(&config)?;
    Ok((config, client))
}

/// config.yml for a command that needs only `keys` of it (`client` for the settings the
/// client uses, `server.pidfile`): an error elsewhere in the file (an unknown key, a broken
/// server section, a bad programs include) is a warning, so it cannot lock the operator out
/// of a running server. An error on one of `keys`, or one that spoils the whole file (YAML
/// that does not parse), is still an error.
fn load_for(conf: &Path, keys: &[&str]) -> CliResult<gosuv::ServerConfig> {
    if !conf.exists() {
        return load(conf);
    }
    let (config, errors) = gosuv::ServerConfig::load_lenient(conf)?;
    let Some(errors) = errors else {
        return Ok(config);
    };
    let concerns = |key: &str| {
        key.is_empty()
            || keys.iter().any(|k| {
                key == *k
                    || key
                        .strip_prefix(k)
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
                    || k.strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('.'))
            })
    };
    let blocking: Vec<String> = errors
        .0
        .iter()
        .filter(|e| concerns(&e.key))
        .map(ToString::to_string)
        .collect();
    if !blocking.is_empty() {
        return Err(Failure::new(blocking.join("\n")));
    }
    eprintln!(
        "warning: {} has {} error{} this command does not depend on (see 'gosuv conftest')",
        conf.display(),
        errors.0.len(),
        if errors.0.len() == 1 { "" } else { "s" }
    );
    Ok(config)
}

/// [`load_for`] the client settings, and a client.
pub(crate) fn lenient_client(conf: &Path) -> CliResult<(gosuv::ServerConfig, Client)> {
    let config = load_for(conf, &["client"])?;
    let client = Client::from_config(&config)?;
    Ok((config, client))
}

fn start_server(conf: &Path, foreground: bool, daemon_child: bool) -> CliResult {
    limit_malloc_arenas();
    // The server's programs start in bursts (the config, `start all`): give back after each
    // what it freed (a library host decides for itself).
    gosuv::trim_memory_after_start_bursts(true);
    if !conf.exists() && daemon::write_default_config(conf)? {
        eprintln!("wrote the default config to {}", conf.display());
        // Beside it, as its `include` says, so that `conftest` passes on a fresh install.
        let programs = conf.with_file_name("programs.yml");
        if write_default_programs(&programs)? {
            eprintln!("wrote an empty programs file to {}", programs.display());
        }
    }
    // Everything the server would refuse, checked here so it is reported on the terminal
    // (and before a background start).
    let checked = crate::server::checks::check_startable(conf)?;
    // The daemon child's stderr is not the terminal: warn once, from the command run.
    if !daemon_child {
        for w in &checked.warnings {
            eprintln!("warning: {w}");
        }
    }
    for w in crate::server::checks::permission_warnings(&checked.config) {
        eprintln!("warning: {w}");
    }
    if foreground {
        // Before anything starts the core's reaper, which notes gosuv's session.
        crate::server::become_init();
        gosuv::enable_subreaper()
            .map_err(|e| Failure::new(format!("cannot become a child subreaper: {e}")))?;
        crate::server::run(checked, !daemon_child)
    } else {
        daemon::start_background(conf, &checked.config)
    }
}

/// Gives the server's threads two malloc heaps to share (glibc), unless the user chose a
/// number (`MALLOC_ARENA_MAX`, `GLIBC_TUNABLES`). By default glibc makes a heap for each
/// thread up to 8 per core, and every blocking thread that prepared a start keeps its own
/// heap of freed memory: at 5,000 idle programs the server held 71 MB resident, 54-56 MB
/// with one or two heaps. Called before the server makes any thread.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let chosen = |k: &str| std::env::var_os(k).is_some();
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("arena_max"));
        if !chosen("MALLOC_ARENA_MAX") && !tuned {
            // SAFETY: mallopt only sets a parameter of the allocator (under its lock).
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
        }
    }
}

/// Asks the server to shut down and waits until it has exited. Returns whether a server
/// was running.
fn shutdown(conf: &Path) -> CliResult<bool> {
    let (config, client) = lenient_client(conf)?;
    let status = client.json(Method::GET, "/api/status", None)?;
    let pidfile = status["pidfile"]
        .as_str()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| config.server.pidfile.clone());
    // Held from before the request, so the wait below is for this server's exit.
    let server = daemon::ServerProcess::find(&pidfile);
    client.json(Method::POST, "/api/shutdown", None)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    loop {
        match client.send(Method::GET, "/api/status", None) {
            Err(ClientError::Unreachable { .. }) => break,
            Err(ClientError::Interrupted) => {
                return Err(Failure::new(format!(
                    "{}: the server goes on shutting down (see 'gosuv status-server')",
                    crate::client::INTERRUPTED
                )))
            }
            _ if std::time::Instant::now() > deadline => {
                return Err(Failure::new(
                    "the server is still shutting down after 10 minutes: see gosuv.log",
                ))
            }
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    let exited = match &server {
        Some(server) => server.wait_exit(Duration::from_secs(30)),
        None => daemon::wait_pidfile_free(&pidfile, Duration::from_secs(30)),
    };
    if !exited && crate::interrupt::pressed() {
        return Err(Failure::new(format!(
            "{}: the server stopped answering and is exiting",
            crate::client::INTERRUPTED
        )));
    }
    if !exited {
        return Err(Failure::new(format!(
            "the server stopped answering but still holds {}: see gosuv.log",
            pidfile.display()
        )));
    }
    Ok(true)
}

fn status_server(conf: &Path) -> CliResult {
    let (_, client) = lenient_client(conf)?;
    match client.json(Method::GET, "/api/status", None) {
        Ok(_) => {
            println!("server is running");
            Ok(())
        }
        Err(ClientError::Unreachable { url, .. }) => Err(Failure::new(format!(
            "server is not running: nothing answers at {url} (start it with 'gosuv start-server')"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn restart_server(conf: &Path, programs: bool) -> CliResult {
    // Nothing is stopped for a config that could not start.
    if conf.exists() {
        crate::server::checks::check_startable(conf)?;
    }
    if !programs {
        let (config, client) = lenient_client(conf)?;
        let before = match client.json(Method::GET, "/api/status", None) {
            Ok(v) => Some(v),
            Err(ClientError::Unreachable { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(before) = before {
            let exe = std::env::current_exe()
                .map_err(|e| Failure::new(format!("cannot find this gosuv binary: {e}")))?;
            let body = serde_json::json!({ "exe": exe });
            match client.json(Method::POST, "/api/server/restart", Some(&body)) {
                Ok(_) => return wait_restarted(&client, &config, &before, &exe),
                // A server older than restarting in place: the old way.
                Err(ClientError::Api { status, .. }) if status == hyper::StatusCode::NOT_FOUND => {
                    println!("the running server cannot restart in place: stopping and starting it with its programs");
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    // Nothing is stopped for a server that could not start again from here.
    if conf.exists() {
        let config = gosuv::ServerConfig::load(conf)?;
        let limits = crate::server::checks::limit_problems(&config);
        if !limits.is_empty() {
            return Err(Failure::new(limits.join("\n")));
        }
    }
    match shutdown(conf) {
        Ok(_) => println!("server stopped"),
        Err(e) if e.message.starts_with("cannot reach") => {
            println!("server was not running");
        }
        Err(e) => return Err(e),
    }
    start_server(conf, false, false)
}

/// Waits until the server that answered `before` answers again as a new image (another
/// `started_at`), and says so.
fn wait_restarted(
    client: &crate::client::Client,
    config: &gosuv::ServerConfig,
    before: &Value,
    exe: &Path,
) -> CliResult {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        match client.json(Method::GET, "/api/status", None) {
            Ok(v) if v["started_at"] != before["started_at"] => {
                let listening = daemon::listening_of(&v);
                println!(
                    "server restarted (pid {}, {}), listening {}; programs kept running",
                    v["pid"],
                    exe.display(),
                    listening.join(", ")
                );
                if let Some(url) = crate::server::checks::login_url(config, &listening) {
                    println!("web page: {url}");
                }
                return Ok(());
            }
            Ok(_) | Err(ClientError::Unreachable { .. } | ClientError::Protocol { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                "the server did not come back within 2 minutes after restarting: see gosuv.log (its programs keep running; 'gosuv start-server' takes them over)",
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn kill(conf: &Path, force: bool) -> CliResult {
    let config = load_for(conf, &["server.pidfile"])?;
    let pidfile = &config.server.pidfile;
    let Some(server) = daemon::ServerProcess::find(pidfile) else {
        return Err(Failure::new(format!(
            "gosuv is not running: no live server holds {}",
            pidfile.display()
        )));
    };
    let pid = server.pid;
    let signal = if force {
        nix::sys::signal::Signal::SIGKILL
    } else {
        nix::sys::signal::Signal::SIGTERM
    };
    server
        .signal(signal)
        .map_err(|e| Failure::new(format!("cannot signal pid {pid}: {e}")))?;
    // Its exit, not only its pidfile's release (which comes a little earlier).
    if !server.wait_exit(Duration::from_secs(600)) {
        if crate::interrupt::pressed() {
            return Err(Failure::new(format!(
                "{}: pid {pid} was sent {signal} and is still exiting",
                crate::client::INTERRUPTED
            )));
        }
        return Err(Failure::new(format!(
            "pid {pid} is still running after SIGTERM: try 'gosuv kill -9'"
        )));
    }
    if force {
        println!("server killed (pid {pid}); its programs were not stopped");
    } else {
        println!("server stopped (pid {pid})");
    }
    Ok(())
}

fn reload(conf: &Path) -> CliResult {
    let (_, client) = client(conf)?;
    let r = client.json(Method::POST, "/api/reload", None)?;
    println!("load config success");
    let mut any = false;
    for key in ["added", "changed", "removed"] {
        let names: Vec<&str> = r[key]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !names.is_empty() {
            any = true;
            println!("{key}: {}", names.join(", "));
        }
    }
    if !any {
        println!("no changes");
    }
    Ok(())
}

/// Writes the commented programs file of a fresh install at `path`, unless something is
/// there already. Returns whether it wrote it.
fn write_default_programs(path: &Path) -> CliResult<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    // 0600: programs added through the API may put secrets in its `environ`.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => {
            return Err(Failure::new(format!(
                "cannot create {}: {e}",
                path.display()
            )))
        }
    };
    file.write_all(gosuv::config::default_programs_yml().as_bytes())
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    Ok(true)
}

/// Checks both files and runs every check `start-server` runs; prints every problem, and
/// the warnings (what fails one program's start, not the server's) on stderr.
fn conftest(conf: &Path) -> CliResult {
    let (server, errors) = gosuv::ServerConfig::load_lenient(conf)?;
    let mut problems: Vec<String> = match errors {
        Some(e) => e.0.iter().map(ToString::to_string).collect(),
        // The server's checks only on a config.yml that parses: on one with errors they
        // would report the defaults its bad keys left.
        None => {
            let mut p = crate::server::checks::check_server(&server)
                .err()
                .unwrap_or_default();
            // A start-server run from here would be refused (a service manager may grant
            // the server more: LimitNOFILE= of a systemd unit).
            p.extend(
                crate::server::checks::limit_problems(&server)
                    .into_iter()
                    .map(|m| format!("{m} (this shell's limit)")),
            );
            p
        }
    };
    // The programs file is checked whatever config.yml has (with the `include` that could
    // be read), so one run shows everything to fix. start-server runs without one; a test
    // of the config says it is missing, as it is most likely a wrong `include`.
    let include = &server.include;
    if let Err(e) = std::fs::metadata(include) {
        if e.kind() == std::io::ErrorKind::NotFound {
            problems.push(format!(
                "{}: the programs file does not exist: create it (an empty file, or one of comments only, means no programs) or fix `include` in {}",
                include.display(),
                conf.display()
            ));
        }
    }
    let loaded = server.load_programs_checked().unwrap_or_else(|e| {
        problems.extend(e.0.iter().map(ToString::to_string));
        gosuv::config::LoadedPrograms::default()
    });
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    for w in crate::server::checks::permission_warnings(&server) {
        eprintln!("warning: {w}");
    }
    if !problems.is_empty() {
        return Err(Failure::new(problems.join("\n")));
    }
    let programs = loaded.programs;
    println!(
        "config ok: {} and {} ({} program{})",
        conf.display(),
        server.include.display(),
        programs.len(),
        if programs.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn edit(conf: &Path) -> CliResult {
    let config = load(conf)?;
    let editor = std::env::var("EDITOR")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let before = std::fs::read(&config.include).ok();
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&config.include)
        .status()
        .map_err(|e| Failure::new(format!("cannot run the editor '{editor}': {e}")))?;
    if !status.success() {
        return Err(Failure::new(format!(
            "the editor '{editor}' failed ({status}); set $EDITOR to another editor"
        )));
    }
    if std::fs::read(&config.include).ok() == before {
        let file = config.include.file_name().map_or_else(
            || config.include.display().to_string(),
            |f| f.to_string_lossy().into_owned(),
        );
        println!("{file} unchanged");
        return Ok(());
    }
    conftest(conf)?;
    println!("run 'gosuv reload' to apply the changes");
    Ok(())
}

/// `1d 2h`, `3h 4m`, `5m 6s`, `7s`.
pub fn format_uptime(secs: f64) -> String {
    Uptime(secs).to_string()
}

/// Seconds written as [`format_uptime`] does.
struct Uptime(f64);

impl std::fmt::Display for Uptime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0.max(0.0) as u64;
        let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
        if d > 0 {
            write!(f, "{d}d {h}h")
        } else if h > 0 {
            write!(f, "{h}h {m}m")
        } else if m > 0 {
            write!(f, "{m}m {sec}s")
        } else {
            write!(f, "{sec}s")
        }
    }
}

/// The fields of a program that `status` shows (the rest of the answer is skipped unread).
#[derive(Debug, serde::Deserialize)]
pub struct StatusRow {
    /// The program.
    pub name: String,
    /// Its state.
    pub state: String,
    /// Its leader's pid.
    pub pid: Option<u32>,
    /// Seconds since its process started.
    pub uptime_secs: Option<f64>,
    /// Why its last start failed.
    pub last_error: Option<String>,
    /// Failed writes to its log files (a full or failing disk).
    #[serde(default)]
    pub log_errors: u64,
    /// How gosuv owns its processes: `cgroup` or `group` (none before a first start).
    #[serde(default)]
    pub ownership: Option<String>,
    /// When its process started (RFC 3339).
    #[serde(default)]
    pub started_at: Option<String>,
    /// When the current run became `running` (RFC 3339).
    #[serde(default)]
    pub ready_at: Option<String>,
    /// Its `ready` probe (config), when it has one.
    #[serde(default)]
    pub ready: Option<Value>,
    /// Its `health` probe (config), when it has one.
    #[serde(default)]
    pub health: Option<Value>,
    /// What its health probe has found.
    #[serde(default)]
    pub health_status: Option<HealthRecord>,
    /// In `waiting`: the dependencies not yet satisfied.
    #[serde(default)]
    pub waiting_for: Vec<String>,
    /// Restarts since it was added.
    #[serde(default)]
    pub restarts: u64,
    /// CPU use of its processes, in % of one core.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Memory (resident) of its processes.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
    /// The exit code of its last run.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// The signal that ended its last run.
    #[serde(default)]
    pub exit_signal: Option<i32>,
}

/// A program's `health_status`.
#[derive(Debug, Default, serde::Deserialize)]
pub struct HealthRecord {
    /// Failed attempts since the program was added.
    #[serde(default)]
    pub failures: u64,
    /// Failed attempts in a row now.
    #[serde(default)]
    pub failing: u64,
    /// The last failure.
    #[serde(default)]
    pub last_error: Option<String>,
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the server writes it
/// (`2026-11-25T04:33:17.123Z`); `None` for anything else.
fn rfc3339_millis(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !t.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| t.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = t.get(19..t.len() - 1).unwrap_or("");
    let ms = match frac.strip_prefix('.') {
        Some(f) if !f.is_empty() => {
            let digits: String = f.chars().chain("00".chars()).take(3).collect();
            digits.parse::<i64>().ok()?
        }
        _ => 0,
    };
    // Days since the epoch of a civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + min) * 60_000 + sec * 1000 + ms)
}

/// A short duration: `0.52s`, `12.3s`, then as [`format_uptime`].
fn format_short(secs: f64) -> String {
    if secs < 1.0 {
        format!("{secs:.2}s")
    } else if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format_uptime(secs)
    }
}

/// A size in bytes as people read it: `512B`, `3.4K`, `12.0M`, `1.5G` (powers of 1024).
pub fn human_size(bytes: u64) -> String {
    Size(bytes).to_string()
}

/// A size written as [`human_size`] does.
struct Size(u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 4] = ["K", "M", "G", "T"];
        let bytes = self.0;
        if bytes < 1024 {
            return write!(f, "{bytes}B");
        }
        let mut v = bytes as f64 / 1024.0;
        let mut unit = 0;
        while v >= 1024.0 && unit + 1 < UNITS.len() {
            v /= 1024.0;
            unit += 1;
        }
        write!(f, "{v:.1}{}", UNITS[unit])
    }
}

/// A signal's name (`SIGSEGV`, `SIGRTMIN+2`), or its number when it has none.
pub fn signal_name(sig: i32) -> String {
    gosuv::signal_name(sig)
}

/// What a program's `last_error` is when the core slowed a crash loop down.
const CRASH_LOOP: &str = "crash loop:";

impl StatusRow {
    fn running(&self) -> bool {
        self.state == "running" && self.pid.is_some()
    }

    /// Whether it is in backoff because it exits again and again.
    pub(crate) fn crash_loop(&self) -> Option<&str> {
        self.last_error
            .as_deref()
            .filter(|e| self.state == "backoff" && e.starts_with(CRASH_LOOP))
    }

    /// The STATE cell: the state, with why for a crash loop.
    fn state_cell(&self, out: &mut String) {
        out.push_str(&self.state);
        if let Some(e) = self.crash_loop() {
            out.push_str(" (");
            push_one_line(out, e);
            out.push(')');
        }
    }

    /// The LAST EXIT cell: `exit 3`, `SIGSEGV`, or `-`.
    fn exit_cell(&self, out: &mut String) {
        match (self.exit_signal, self.exit_code) {
            (Some(sig), _) => out.push_str(&signal_name(sig)),
            (None, Some(code)) => {
                let _ = write!(out, "exit {code}");
            }
            (None, None) => out.push('-'),
        }
    }

    /// The READY IN cell: how long the current run took from its spawn to ready.
    fn ready_cell(&self, out: &mut String) {
        let (Some(start), Some(ready)) = (&self.started_at, &self.ready_at) else {
            out.push('-');
            return;
        };
        match (rfc3339_millis(start), rfc3339_millis(ready)) {
            (Some(s), Some(r)) if self.pid.is_some() && r >= s => {
                out.push_str(&format_short((r - s) as f64 / 1000.0));
            }
            _ => out.push('-'),
        }
    }

    /// The HEALTH cell: `ok`, `ok (N failed)`, or `failing N/LIMIT` (failed attempts in a
    /// row of the `failures` that restart it), with the total when it is more.
    fn health_cell(&self, out: &mut String) {
        if self.health.is_none() || !self.running() {
            out.push('-');
            return;
        }
        let h = self.health_status.as_ref();
        let (failing, total) = h.map_or((0, 0), |h| (h.failing, h.failures));
        if failing == 0 {
            if total == 0 {
                out.push_str("ok");
            } else {
                let _ = write!(out, "ok ({total} failed)");
            }
            return;
        }
        let limit = self.health.as_ref().and_then(|v| v["failures"].as_u64());
        let _ = match limit {
            Some(l) => write!(out, "failing {failing}/{l}"),
            None => write!(out, "failing {failing}"),
        };
        if total > failing {
            let _ = write!(out, " ({total} failed)");
        }
    }

    /// The LAST ERROR cell: what it waits for, why the last start failed, why its health
    /// check fails, and failed log writes, as far as each applies.
    fn error_cell(&self, out: &mut String) {
        let start = out.len();
        let part = |out: &mut String| {
            if out.len() > start {
                out.push_str("; ");
            }
        };
        if self.state == "waiting" && !self.waiting_for.is_empty() {
            part(out);
            out.push_str("waiting for ");
            for (i, w) in self.waiting_for.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_one_line(out, w);
            }
        }
        if let Some(e) = self
            .last_error
            .as_ref()
            .filter(|_| self.crash_loop().is_none())
        {
            part(out);
            push_one_line(out, e);
        }
        if let Some(e) = self
            .health_status
            .as_ref()
            .filter(|h| h.failing > 0 && self.running())
            .and_then(|h| h.last_error.as_ref())
        {
            part(out);
            out.push_str("health check: ");
            push_one_line(out, e);
        }
        if self.log_errors > 0 {
            part(out);
            let _ = write!(
                out,
                "{} log write{} failed (see gosuv.log)",
                self.log_errors,
                if self.log_errors == 1 { "" } else { "s" }
            );
        }
        if out.len() == start {
            out.push('-');
        }
    }
}

/// `text` with its line breaks made spaces, so a cell stays on its line.
fn push_one_line(out: &mut String, text: &str) {
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line);
    }
}

/// The `status` table: name, state, pid, uptime, the time to ready (when a program has a
/// `ready` probe), the health check (when one has a `health` probe), how its processes are
/// owned (cgroup or group), last error (and what a waiting program waits for, failed log
/// writes); columns aligned.
pub fn status_table(programs: &[StatusRow]) -> String {
    let with_ready = programs.iter().any(|p| p.ready.is_some());
    let with_health = programs.iter().any(|p| p.health.is_some());
    let mut header = vec![
        "NAME",
        "STATE",
        "PID",
        "UPTIME",
        "RESTARTS",
        "CPU",
        "MEM",
        "LAST EXIT",
    ];
    if with_ready {
        header.push("READY IN");
    }
    if with_health {
        header.push("HEALTH");
    }
    header.extend(["OWNED BY", "LAST ERROR"]);
    // Every cell's text one after the other in one string, and where each cell ends: a
    // table of thousands of programs without a string a cell.
    let mut cells = String::with_capacity(programs.len() * 64);
    let mut ends: Vec<usize> = Vec::with_capacity(programs.len() * header.len());
    for p in programs {
        let mut end = |cells: &mut String| ends.push(cells.len());
        let live = p.pid.is_some();
        cells.push_str(&p.name);
        end(&mut cells);
        p.state_cell(&mut cells);
        end(&mut cells);
        match p.pid {
            Some(pid) => {
                let _ = write!(cells, "{pid}");
            }
            None => cells.push('-'),
        }
        end(&mut cells);
        match p.uptime_secs.filter(|_| live) {
            Some(s) => {
                let _ = write!(cells, "{}", Uptime(s));
            }
            None => cells.push('-'),
        }
        end(&mut cells);
        let _ = write!(cells, "{}", p.restarts);
        end(&mut cells);
        match p.cpu_percent.filter(|_| live) {
            Some(c) => {
                let _ = write!(cells, "{c:.1}%");
            }
            None => cells.push('-'),
        }
        end(&mut cells);
        match p.rss_bytes.filter(|_| live) {
            Some(b) => {
                let _ = write!(cells, "{}", Size(b));
            }
            None => cells.push('-'),
        }
        end(&mut cells);
        p.exit_cell(&mut cells);
        end(&mut cells);
        if with_ready {
            p.ready_cell(&mut cells);
            end(&mut cells);
        }
        if with_health {
            p.health_cell(&mut cells);
            end(&mut cells);
        }
        cells.push_str(p.ownership.as_deref().unwrap_or("-"));
        end(&mut cells);
        p.error_cell(&mut cells);
        end(&mut cells);
    }
    let cols = header.len();
    let cell = |i: usize| &cells[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for i in 0..ends.len() {
        let w = &mut widths[i % cols];
        *w = (*w).max(cell(i).chars().count());
    }
    let mut out =
        String::with_capacity(cells.len() + (programs.len() + 1) * widths.iter().sum::<usize>());
    let mut line = |texts: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, c) in texts.enumerate() {
            out.push_str(c);
            if i + 1 < cols {
                let pad = widths[i] - c.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in 0..programs.len() {
        line(&mut (row * cols..(row + 1) * cols).map(cell));
    }
    out
}

/// The keys of a program that [`StatusRow`] reads: all `status` asks the server for.
pub const STATUS_FIELDS: &str = "name,ready,health,state,pid,started_at,uptime_secs,exit_code,exit_signal,restarts,last_error,log_errors,cpu_percent,rss_bytes,ownership,ready_at,health_status,waiting_for";

/// The path of the program list with the keys [`StatusRow`] reads (a server older than
/// `fields=` sends every key, which reads the same).
pub fn status_list_path() -> String {
    format!("/api/programs?fields={STATUS_FIELDS}")
}

/// The program list as the server sends it, parsed as `T`: with CPU and memory when
/// `stats`, each program's `fields` only (a comma-separated list of keys) when given.
fn program_list<T: serde::de::DeserializeOwned>(
    client: &Client,
    stats: bool,
    fields: Option<&str>,
) -> CliResult<Vec<T>> {
    let mut path = String::from("/api/programs");
    let mut sep = '?';
    if !stats {
        path.push_str("?stats=false");
        sep = '&';
    }
    if let Some(f) = fields {
        path.push(sep);
        path.push_str("fields=");
        path.push_str(f);
    }
    let body = client.get_bytes(&path)?;
    serde_json::from_slice(&body).map_err(|e| {
        Failure::new(format!(
            "gosuv at {} sent a program list this command cannot read: {e}",
            client.url()
        ))
    })
}

/// A program's name, all that some commands read of the list.
#[derive(serde::Deserialize)]
struct Named {
    name: String,
}

/// A program's name and the pid of its current run, if any.
#[derive(serde::Deserialize)]
struct NamedRun {
    name: String,
    pid: Option<u32>,
    #[serde(default)]
    state: String,
}

/// Every program's name, in the server's order.
pub(crate) fn names_of(client: &Client) -> CliResult<Vec<String>> {
    Ok(program_list::<Named>(client, false, Some("name"))?
        .into_iter()
        .map(|n| n.name)
        .collect())
}

/// The programs `patterns` select among `names`.
fn resolve(patterns: &[String], names: &[String]) -> CliResult<Vec<String>> {
    crate::select::select(patterns, names).map_err(|e| Failure::new(e.to_string()))
}

/// Whether a pattern may select more than itself (a glob, or `all`).
fn is_glob(p: &str) -> bool {
    p == "all" || p.contains(['*', '?', '['])
}

fn status(conf: &Path, names: &[String], json: bool) -> CliResult {
    let (_, client) = client(conf)?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut programs: Vec<Value> = program_list(&client, true, None)?;
        if !names.is_empty() {
            let all: Vec<String> = programs
                .iter()
                .map(|p| p["name"].as_str().unwrap_or_default().to_string())
                .collect();
            let chosen: std::collections::HashSet<String> =
                resolve(names, &all)?.into_iter().collect();
            programs.retain(|p| p["name"].as_str().is_some_and(|n| chosen.contains(n)));
        }
        let text = serde_json::to_string_pretty(&programs)
            .map_err(|e| Failure::new(format!("cannot write the programs as JSON: {e}")))?;
        let _ = writeln!(out, "{text}");
        return Ok(());
    }
    let mut programs: Vec<StatusRow> = program_list(&client, true, Some(STATUS_FIELDS))?;
    if !names.is_empty() {
        let all: Vec<String> = programs.iter().map(|p| p.name.clone()).collect();
        let chosen: std::collections::HashSet<String> = resolve(names, &all)?.into_iter().collect();
        programs.retain(|p| chosen.contains(&p.name));
    }
    if programs.is_empty() {
        println!("no programs: add some to the programs file, then run 'gosuv reload'");
        return Ok(());
    }
    let text = status_table(&programs);
    let _ = out.write_all(text.as_bytes());
    Ok(())
}

/// `NAME: STATE (pid N)`, what a start, stop or restart answers with.
pub(crate) fn describe(p: &Value) -> String {
    let mut s = format!(
        "{}: {}",
        p["name"].as_str().unwrap_or("?"),
        p["state"].as_str().unwrap_or("?")
    );
    if let Some(pid) = p["pid"].as_u64() {
        s.push_str(&format!(" (pid {pid})"));
    }
    s
}

/// A query value with everything but unreserved characters percent-encoded.
fn query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `names=a,w-*` for the API, each pattern encoded.
fn names_query(patterns: &[String]) -> String {
    let list: Vec<String> = patterns.iter().map(|p| query_value(p)).collect();
    format!("names={}", list.join(","))
}

fn act(conf: &Path, action: &str, t: &Target) -> CliResult {
    let (_, client) = client(conf)?;
    if let [name] = t.names.as_slice() {
        if !is_glob(name) {
            gosuv::config::validate_name(name).map_err(Failure::new)?;
            let query = if t.no_wait { "?wait=false" } else { "" };
            let v = client.json(
                Method::POST,
                &format!("/api/programs/{name}/{action}{query}"),
                None,
            )?;
            println!("{}", describe(&v));
            return Ok(());
        }
    }
    // The server selects (with the same rule): one request, which it refuses as a whole
    // when a pattern matches nothing.
    let mut query: Vec<String> = Vec::new();
    if t.names.iter().all(|n| n != "all") {
        query.push(names_query(&t.names));
    }
    if t.no_wait {
        query.push("wait=false".into());
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let v = client.json(Method::POST, &format!("/api/all/{action}{query}"), None)?;
    let mut failed = 0;
    for r in v.as_array().cloned().unwrap_or_default() {
        if r["ok"].as_bool() == Some(true) {
            println!("{}", describe(&r));
        } else {
            failed += 1;
            eprintln!(
                "{}: {}",
                r["name"].as_str().unwrap_or("?"),
                r["error"].as_str().unwrap_or("failed")
            );
        }
    }
    if failed > 0 {
        return Err(Failure::new(format!(
            "{action} failed for {failed} program(s)"
        )));
    }
    Ok(())
}

fn send_signal(conf: &Path, signal: &str, patterns: &[String]) -> CliResult {
    let sig = gosuv::parse_signal(signal).map_err(|e| Failure::new(e.to_string()))?;
    let (_, client) = client(conf)?;
    let listed = program_list::<NamedRun>(&client, false, Some("name,pid,state"))?;
    let all: Vec<String> = listed.iter().map(|p| p.name.clone()).collect();
    let names = resolve(patterns, &all)?;
    let pids: std::collections::HashMap<&str, Option<u32>> =
        listed.iter().map(|p| (p.name.as_str(), p.pid)).collect();
    let mut failed = 0;
    for n in &names {
        // The pid this list showed: a run that restarted since is not sent the signal meant
        // for the one seen (the server refuses it).
        // One listed without a process is not sent it either: a run started since is not
        // the one the user saw.
        let Some(pid) = pids.get(n.as_str()).copied().flatten() else {
            failed += 1;
            let state = listed
                .iter()
                .find(|p| p.name == *n)
                .map_or("gone", |p| p.state.as_str());
            eprintln!("{n}: {state}, no process: nothing sent (start it first)");
            continue;
        };
        let body = serde_json::json!({ "signal": sig, "pid": pid });
        match client.json(
            Method::POST,
            &format!("/api/programs/{n}/signal"),
            Some(&body),
        ) {
            Ok(v) => println!(
                "{}: {} sent",
                describe(&v),
                v["signal"].as_str().unwrap_or(signal)
            ),
            Err(ClientError::Interrupted) => {
                return Err(Failure::new(format!(
                    "{}: the signal may have reached {n}; not sent to the programs after it",
                    crate::client::INTERRUPTED
                )));
            }
            // The server's message names the program.
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        return Err(Failure::new(format!(
            "the signal was not sent to {failed} program(s)"
        )));
    }
    Ok(())
}

/// One request waits at most this long (the client's own limit is a little longer); a longer
/// wait asks again.
const WAIT_PER_REQUEST: f64 = 300.0;

fn wait(conf: &Path, patterns: &[String], timeout: Option<f64>) -> CliResult {
    for n in patterns.iter().filter(|p| !is_glob(p)) {
        gosuv::config::validate_name(n).map_err(Failure::new)?;
    }
    let total = timeout.unwrap_or(30.0);
    if !(total > 0.0 && total <= gosuv::MAX_WAIT.as_secs_f64()) {
        return Err(Failure::new(format!(
            "--timeout {total}: give a number of seconds above 0 and at most {} (1 day)",
            gosuv::MAX_WAIT.as_secs()
        )));
    }
    let (_, client) = client(conf)?;
    let names = if patterns.iter().any(|p| is_glob(p)) {
        resolve(patterns, &names_of(&client)?)?
    } else {
        patterns.to_vec()
    };
    let started = std::time::Instant::now();
    loop {
        let left = total - started.elapsed().as_secs_f64();
        let now = left.clamp(0.001, WAIT_PER_REQUEST);
        let path = format!("/api/wait?names={}&timeout={now}", names.join(","));
        match client.json(Method::GET, &path, None) {
            Ok(v) => {
                for s in v["running"].as_array().cloned().unwrap_or_default() {
                    println!("{}: running", s["name"].as_str().unwrap_or("?"));
                }
                return Ok(());
            }
            Err(crate::client::ClientError::Api { status, .. })
                if status == hyper::StatusCode::GATEWAY_TIMEOUT && left > WAIT_PER_REQUEST => {}
            Err(e) => return Err(e.into()),
        }
    }
}

fn tail(conf: &Path, pattern: &str, follow: bool, lines: usize, stderr: bool) -> CliResult {
    let (_, client) = client(conf)?;
    let name = if is_glob(pattern) {
        match resolve(&[pattern.to_string()], &names_of(&client)?)?.as_slice() {
            [one] => one.clone(),
            many => {
                return Err(Failure::new(format!(
                    "'{pattern}' matches {} programs ({}): tail shows one; use 'gosuv logs' for several",
                    many.len(),
                    many.join(", ")
                )))
            }
        }
    } else {
        gosuv::config::validate_name(pattern).map_err(Failure::new)?;
        pattern.to_string()
    };
    let name = name.as_str();
    let stream = if stderr { "stderr" } else { "stdout" };
    if !follow {
        let body = client.get_bytes(&format!(
            "/api/programs/{name}/log?stream={stream}&lines={lines}"
        ))?;
        let _ = std::io::stdout().lock().write_all(&body);
        return Ok(());
    }
    let path = format!("/api/programs/{name}/log/follow?stream={stream}&lines={lines}");
    client.events(&path, |event, data| {
        match event {
            "log" => {
                if let Ok(text) = serde_json::from_str::<String>(data) {
                    let mut out = std::io::stdout().lock();
                    if out
                        .write_all(text.as_bytes())
                        .and_then(|()| out.flush())
                        .is_err()
                    {
                        return false;
                    }
                }
            }
            "missed" => eprintln!("[gosuv: output was skipped: {data}]"),
            _ => {}
        }
        true
    })?;
    Ok(())
}

fn logs(conf: &Path, patterns: &[String], follow: bool, lines: usize) -> CliResult {
    if lines > 1000 {
        return Err(Failure::new(format!(
            "-n {lines}: at most 1000 lines of each stream (use 'gosuv tail' or the log files for more)"
        )));
    }
    let (_, client) = client(conf)?;
    // Checked here, so a name that matches nothing is reported before anything is printed;
    // the server selects again with the same rule.
    let all = names_of(&client)?;
    let chosen = if patterns.is_empty() {
        all
    } else {
        resolve(patterns, &all)?
    };
    let width = chosen.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut printer =
        crate::log_printer::LogPrinter::new(width, crate::log_printer::LogPrinter::wants_colour());
    let mut query = vec![format!("lines={lines}")];
    if !patterns.is_empty() {
        query.push(names_query(patterns));
    }
    let query = query.join("&");
    if !follow {
        let v = client.json(Method::GET, &format!("/api/logs?{query}"), None)?;
        let mut out = String::new();
        for p in v.as_array().cloned().unwrap_or_default() {
            if let Some(notice) = p["notice"].as_str() {
                eprintln!("[gosuv: {notice}]");
                continue;
            }
            let (Some(name), Some(stream), Some(text)) =
                (p["name"].as_str(), p["stream"].as_str(), p["text"].as_str())
            else {
                continue;
            };
            out.push_str(&printer.lines(name, stream, text));
            out.push_str(&printer.rest());
        }
        let _ = std::io::stdout().lock().write_all(out.as_bytes());
        return Ok(());
    }
    // A reader that went away (`| head`) ends the follow quietly.
    let mut reader_gone = false;
    let ended = client.events(&format!("/api/logs/follow?{query}"), |event, data| {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return true;
        };
        let name = v["name"].as_str().unwrap_or("?");
        let stream = v["stream"].as_str().unwrap_or("stdout");
        match event {
            "log" => {
                let text = printer.lines(name, stream, v["text"].as_str().unwrap_or(""));
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    reader_gone = true;
                    return false;
                }
            }
            "notice" => eprintln!("[gosuv: {}]", v["text"].as_str().unwrap_or_default()),
            "missed" => {
                printer.missed(name, stream);
                eprintln!(
                    "[gosuv: {} bytes of {name}'s {stream} were skipped: this terminal fell behind]",
                    v["bytes"]
                );
            }
            _ => {}
        }
        true
    });
    if reader_gone {
        return Ok(());
    }
    let _ = std::io::stdout()
        .lock()
        .write_all(printer.rest().as_bytes());
    match ended {
        Ok(()) => {
            eprintln!(
                "[gosuv: nothing more to follow: the programs were removed, or the server stopped]"
            );
            Ok(())
        }
        // A connection that broke is not an end: a script must tell a crash from it.
        Err(e @ ClientError::Protocol { .. }) => Err(Failure::new(format!(
            "{e}: the connection broke before the server ended the follow (did it crash? see 'gosuv status-server')"
        ))),
        Err(e) => Err(e.into()),
    }
}

fn version(conf: &Path) -> CliResult {
    println!("gosuv {}", env!("CARGO_PKG_VERSION"));
    if let Ok((_, client)) = client(conf) {
        if let Ok(v) = client.json(Method::GET, "/api/status", None) {
            println!(
                "server {} (pid {})",
                v["version"].as_str().unwrap_or("?"),
                v["pid"]
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptimes() {
        assert_eq!(format_uptime(7.9), "7s");
        assert_eq!(format_uptime(306.0), "5m 6s");
        assert_eq!(format_uptime(3.0 * 3600.0 + 240.0), "3h 4m");
        assert_eq!(format_uptime(86_400.0 * 2.0 + 3600.0), "2d 1h");
    }

    #[test]
    fn table_is_aligned() {
        let rows: Vec<StatusRow> = serde_json::from_value(serde_json::json!([
            {"name": "web", "state": "running", "pid": 42, "uptime_secs": 65.0, "command": "x",
             "ownership": "cgroup", "restarts": 2, "cpu_percent": 12.34, "rss_bytes": 5_400_000,
             "exit_code": null, "exit_signal": 11},
            {"name": "worker-long", "state": "fatal", "pid": null, "last_error": "exit code 1",
             "ownership": "group", "exit_code": 1, "cpu_percent": 1.0, "rss_bytes": 1},
            {"name": "disk", "state": "running", "pid": 7, "uptime_secs": 1.0, "log_errors": 3,
             "cpu_percent": 0.0, "rss_bytes": 900},
        ]))
        .unwrap();
        let t = status_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME         STATE    PID  UPTIME  RESTARTS  CPU    MEM   LAST EXIT  OWNED BY  LAST ERROR",
                "web          running  42   1m 5s   2         12.3%  5.1M  SIGSEGV    cgroup    -",
                "worker-long  fatal    -    -       0         -      -     exit 1     group     exit code 1",
                "disk         running  7    1s      0         0.0%   900B  -          -         3 log writes failed (see gosuv.log)",
            ]
        );
    }

    /// A crash loop shows in the state; its reason is not repeated as the last error.
    #[test]
    fn a_crash_loop_shows_in_the_state() {
        let rows: Vec<StatusRow> = serde_json::from_value(serde_json::json!([
            {"name": "flaky", "state": "backoff", "pid": null, "restarts": 5, "exit_code": 1,
             "last_error": "crash loop: 5 exits in 60s"},
            {"name": "slow", "state": "backoff", "pid": null, "last_error": "exited after 0.1s"},
        ]))
        .unwrap();
        let t = status_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[1],
            "flaky  backoff (crash loop: 5 exits in 60s)  -    -       5         -    -    exit 1     -         -"
        );
        assert!(lines[2].starts_with("slow   backoff  "), "{t}");
        assert!(lines[2].ends_with("exited after 0.1s"), "{t}");
    }

    /// `status` asks the server for exactly the keys a [`StatusRow`] reads: a key added to
    /// the row and not asked for would always be missing.
    #[test]
    fn status_asks_for_every_key_it_reads() {
        use serde::de::Error as _;
        /// Collects the field names a struct's `Deserialize` asks for.
        struct Names<'a>(&'a mut Vec<&'static str>);
        impl<'de> serde::Deserializer<'de> for Names<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(Self::Error::custom("only a struct's names"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _: &'static str,
                fields: &'static [&'static str],
                _: V,
            ) -> Result<V::Value, Self::Error> {
                self.0.extend_from_slice(fields);
                Err(Self::Error::custom("only a struct's names"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut read = Vec::new();
        let _ = <StatusRow as serde::Deserialize>::deserialize(Names(&mut read));
        read.sort_unstable();
        let mut asked: Vec<&str> = STATUS_FIELDS.split(',').collect();
        asked.sort_unstable();
        assert_eq!(read, asked);
    }

    #[test]
    fn sizes_and_signals_read_as_people_say_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1023), "1023B");
        assert_eq!(human_size(1024), "1.0K");
        assert_eq!(human_size(1536 * 1024), "1.5M");
        assert_eq!(human_size(3 << 30), "3.0G");
        assert_eq!(human_size(u64::MAX), "16777216.0T");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(200), "signal 200");
    }

    #[test]
    fn times_from_the_server() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2026-11-18T11:06:40.123Z"),
            Some(1_795_000_000_123)
        );
        assert_eq!(
            rfc3339_millis("2000-02-29T00:00:00Z"),
            Some(951_782_400_000)
        );
        assert_eq!(
            rfc3339_millis("2000-02-29T00:00:00.5Z"),
            Some(951_782_400_500)
        );
        assert_eq!(rfc3339_millis("yesterday"), None);
        assert_eq!(format_short(0.5234), "0.52s");
        assert_eq!(format_short(12.34), "12.3s");
        assert_eq!(format_short(61.0), "1m 1s");
    }

    /// With probes, READY IN and HEALTH columns; a waiting program says what it waits for.
    #[test]
    fn table_shows_readiness_health_and_waiting() {
        let rows: Vec<StatusRow> = serde_json::from_value(serde_json::json!([
            {"name": "db", "state": "running", "pid": 40, "uptime_secs": 3.0,
             "started_at": "2026-11-18T11:06:40.000Z", "ready_at": "2026-11-18T11:06:40.517Z",
             "ready": {"log": "up"}, "ownership": "cgroup"},
            {"name": "api", "state": "running", "pid": 41, "uptime_secs": 2.0,
             "started_at": "2026-11-18T11:06:41.000Z", "ready_at": "2026-11-18T11:06:42.250Z",
             "health": {"tcp": "127.0.0.1:1", "failures": 3},
             "health_status": {"failures": 5, "failing": 2, "last_error": "connection refused"},
             "ownership": "cgroup"},
            {"name": "cache", "state": "running", "pid": 42, "uptime_secs": 2.0,
             "health": {"tcp": "127.0.0.1:2", "failures": 3},
             "health_status": {"failures": 1, "failing": 0, "last_error": "timed out"},
             "ownership": "group"},
            {"name": "web", "state": "waiting", "pid": null, "waiting_for": ["api", "db"],
             "depends_on": ["api", "db"]},
        ]))
        .unwrap();
        let t = status_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines,
            [
                "NAME   STATE    PID  UPTIME  RESTARTS  CPU  MEM  LAST EXIT  READY IN  HEALTH                  OWNED BY  LAST ERROR",
                "db     running  40   3s      0         -    -    -          0.52s     -                       cgroup    -",
                "api    running  41   2s      0         -    -    -          1.2s      failing 2/3 (5 failed)  cgroup    health check: connection refused",
                "cache  running  42   2s      0         -    -    -          -         ok (1 failed)           group     -",
                "web    waiting  -    -       0         -    -    -          -         -                       -         waiting for api, db",
            ]
        );
    }
}
