//! Everything `start-server` checks before it starts anything, in one place, so that the
//! commands that must not act on a config that could not start run exactly the same checks:
//! `start-server`, `restart-server` (before it stops the running server), `conftest`, and a
//! reload (`gosuv reload`, `POST /api/reload`, SIGHUP).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use gosuv::{ProgramConfig, ServerConfig};

use super::security::Security;
use crate::{CliResult, Failure};

/// A config that `start-server` would start: config.yml, the programs of its programs file,
/// and the security settings (with the ipfile read).
#[derive(Debug)]
pub struct Startable {
    /// config.yml.
    pub config: ServerConfig,
    /// The programs file's programs.
    pub programs: Vec<ProgramConfig>,
    /// `server.auth` with the allow-list loaded.
    pub security: Security,
    /// What will fail one program's start but not the server's (a `directory` or `user`
    /// that does not exist), each `file:line: message`.
    pub warnings: Vec<String>,
}

/// Reads config.yml and its programs file and runs every check of [`check_server`]. The
/// programs' warnings are logged (where the server's log is set up: at a reload) and kept
/// in [`Startable::warnings`].
///
/// # Errors
/// Every error of config.yml (with its line), else every problem [`check_server`] finds,
/// else every error of the programs file.
pub fn check_startable(conf: &Path) -> CliResult<Startable> {
    let config = ServerConfig::load(conf)?;
    let security = check_server(&config).map_err(|p| Failure::new(p.join("\n")))?;
    let loaded = config.load_programs_checked()?;
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Startable {
        config,
        programs: loaded.programs,
        security,
        warnings,
    })
}

/// What the server refuses in a config.yml that parses: no listener; HTTP without auth (on
/// any address: on loopback every local user can connect); auth with an empty user name or
/// password; an ipfile that cannot be read or has a bad line; a `client.server_url` the CLI
/// cannot use. Returns the security settings when there is no problem.
///
/// # Errors
/// Every problem, each a message that says what to change.
pub fn check_server(config: &ServerConfig) -> Result<Security, Vec<String>> {
    let s = &config.server;
    let mut problems = Vec::new();
    if !s.httpserver.enabled && !s.unixserver.enabled {
        problems.push(
            "neither server.unixserver nor server.httpserver is enabled: enable one in config.yml"
                .to_string(),
        );
    }
    if s.httpserver.enabled && !s.auth.enabled {
        problems.push(format!(
            "refusing to serve HTTP on {} without auth: any local user (and anyone who can reach \
             that address) could run any command as {} through the API; set \
             server.auth.enabled: true with a username and password in config.yml (and the same \
             in client.username and client.password for the gosuv command)",
            s.httpserver.addr,
            server_user()
        ));
    }
    if s.auth.enabled && s.auth.password.is_empty() {
        problems.push(
            "server.auth is enabled with an empty password: set server.auth.password (and the \
             same in client.password)"
                .to_string(),
        );
    }
    if s.auth.enabled && s.auth.username.contains(':') {
        problems.push(
            "server.auth.username contains ':', which basic auth cannot carry (no one could \
             log in): choose a name without it"
                .to_string(),
        );
    }
    if s.auth.enabled && s.auth.username.is_empty() {
        problems.push(
            "server.auth is enabled with an empty username: set server.auth.username (and the \
             same in client.username)"
                .to_string(),
        );
    }
    problems.extend(listener_problems(config));
    problems.extend(writable_problems(config));
    if let Err(e) = crate::client::parse_url(&config.resolved_server_url()) {
        problems.push(format!("client.server_url: {}", e.message));
    }
    let security = match Security::from_config(&s.auth) {
        Ok(sec) => Some(sec),
        Err(e) => {
            problems.push(format!("server.auth.ipfile: {e}"));
            None
        }
    };
    match security {
        Some(sec) if problems.is_empty() => Ok(sec),
        _ => Err(problems),
    }
}

/// What would stop a listener from being made: a socket path longer than a unix socket
/// address holds, a socket path taken by something else than a socket, an HTTP host name
/// that does not resolve.
fn listener_problems(config: &ServerConfig) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let s = &config.server;
    let mut out = Vec::new();
    if s.unixserver.enabled {
        let sock = &s.unixserver.sockfile;
        // sun_path holds 108 bytes with the final NUL.
        let len = sock.as_os_str().len();
        if len > 107 {
            out.push(format!(
                "server.unixserver.sockfile {} is {len} bytes long: a unix socket path holds at most 107; choose a shorter path",
                sock.display()
            ));
        }
        if let Ok(meta) = std::fs::symlink_metadata(sock) {
            if !meta.file_type().is_socket() {
                out.push(format!(
                    "server.unixserver.sockfile {} exists and is not a socket: move it away or change server.unixserver.sockfile",
                    sock.display()
                ));
            }
        }
    }
    if s.httpserver.enabled {
        let addr = match s.httpserver.addr.strip_prefix(':') {
            Some(port) => format!("0.0.0.0:{port}"),
            None => s.httpserver.addr.clone(),
        };
        if let Err(e) = std::net::ToSocketAddrs::to_socket_addrs(&addr.as_str()) {
            out.push(format!(
                "server.httpserver.addr {}: cannot resolve it ({e}): use an IP address or a host name of this machine",
                s.httpserver.addr
            ));
        }
    }
    out
}

/// `minfds`/`minprocs` above a hard limit of this process that cannot be raised: only root
/// may raise one, and not even root past the kernel's `fs.nr_open` for open files. Only
/// what starts a server from this process asks it (start-server, conftest): a running
/// server's limits are its own (a service manager may have granted it more).
pub fn limit_problems(config: &ServerConfig) -> Vec<String> {
    use nix::sys::resource::{getrlimit, Resource, RLIM_INFINITY};
    let root = nix::unistd::geteuid().is_root();
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let mut out = Vec::new();
    for (res, want, key, what, ulimit, ceiling) in [
        (
            Resource::RLIMIT_NOFILE,
            config.server.minfds,
            "minfds",
            "open files",
            "ulimit -Hn",
            nr_open,
        ),
        (
            Resource::RLIMIT_NPROC,
            config.server.minprocs,
            "minprocs",
            "processes",
            "ulimit -Hu",
            None,
        ),
    ] {
        let Ok((_, hard)) = getrlimit(res) else {
            continue;
        };
        if want == 0 || hard == RLIM_INFINITY || want <= hard {
            continue;
        }
        // The same words as the server's own refusal, where this check was first met.
        if !root {
            out.push(format!(
                "cannot raise the {what} limit to {want} (server.{key}): the hard limit is {hard} and only root can raise it; lower server.{key} or raise the hard limit ({ulimit})"
            ));
        } else if let Some(max) = ceiling.filter(|m| want > *m) {
            out.push(format!(
                "cannot raise the {what} limit to {want} (server.{key}): the kernel allows at most {max} (fs.nr_open); lower server.{key}"
            ));
        }
    }
    out
}

/// Where the server must create files and cannot: a log directory or pidfile whose path
/// runs into something else than a directory.
fn writable_problems(config: &ServerConfig) -> Vec<String> {
    let s = &config.server;
    let mut out = Vec::new();
    let logpath = &s.log.logpath;
    if logpath.exists() && !logpath.is_dir() {
        out.push(format!(
            "server.log.logpath {} is not a directory: move it away or change server.log.logpath",
            logpath.display()
        ));
    } else if let Some(blocker) = non_directory_ancestor(logpath) {
        out.push(format!(
            "server.log.logpath {} cannot be created: {} is not a directory",
            logpath.display(),
            blocker.display()
        ));
    }
    if s.pidfile.is_dir() {
        out.push(format!(
            "server.pidfile {} is a directory: name a file",
            s.pidfile.display()
        ));
    } else if let Some(blocker) = s.pidfile.parent().and_then(non_directory_ancestor) {
        out.push(format!(
            "server.pidfile {} cannot be created: {} is not a directory",
            s.pidfile.display(),
            blocker.display()
        ));
    }
    out
}

/// The nearest existing ancestor of `path` (itself included) when it is not a directory.
fn non_directory_ancestor(path: &Path) -> Option<&Path> {
    let existing = path.ancestors().find(|p| p.exists())?;
    (!existing.is_dir()).then_some(existing)
}

/// The user the server runs as, for messages: `name (uid N)`.
fn server_user() -> String {
    let uid = nix::unistd::geteuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// What in the server's files other users could read or change: a config.yml that holds
/// the password and others can read; a log directory others can write to (they could plant
/// files or links where gosuv writes). One warning each, for the log and for `conftest`.
pub fn permission_warnings(config: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(path) = config.path.as_ref() {
        let mode = std::fs::metadata(path).map_or(0, |m| m.permissions().mode());
        if config.server.auth.enabled && mode & 0o044 != 0 {
            out.push(format!(
                "{} holds the auth password and other users can read it: run 'chmod 600 {}'",
                path.display(),
                path.display()
            ));
        }
    }
    out.extend(gosuv::files::loose_dir_warning(&config.server.log.logpath));
    out
}

/// The URL that opens the web page logged in (the credentials of `server.auth` in it), for
/// the HTTP address among `listening` (`http://HOST:PORT` as the server reports it). An
/// address on every interface is shown as loopback. `None` without HTTP or auth.
pub fn login_url(config: &ServerConfig, listening: &[String]) -> Option<String> {
    let auth = &config.server.auth;
    if !auth.enabled {
        return None;
    }
    let addr: SocketAddr = listening
        .iter()
        .find_map(|l| l.strip_prefix("http://"))?
        .parse()
        .ok()?;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Some(format!(
        "http://{}:{}@{}/",
        userinfo_escape(&auth.username),
        userinfo_escape(&auth.password),
        SocketAddr::new(ip, addr.port())
    ))
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so any user name or
/// password is one part of a URL's userinfo.
fn userinfo_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ServerConfig {
        ServerConfig::parse(text, None, Path::new("/srv")).unwrap()
    }

    #[test]
    fn http_needs_auth_on_every_address() {
        for addr in ["127.0.0.1:1", "[::1]:1", "localhost:1", ":1", "0.0.0.0:1"] {
            let c = config(&format!(
                "server:\n  httpserver:\n    enabled: true\n    addr: \"{addr}\"\n"
            ));
            let p = check_server(&c).unwrap_err();
            assert_eq!(p.len(), 1, "{p:?}");
            assert!(p[0].contains("any local user"), "{p:?}");
        }
        let c = config(
            "server:\n  httpserver:\n    enabled: true\n  auth:\n    enabled: true\n    password: pw\n",
        );
        assert!(check_server(&c).is_ok());
        let c = config("server:\n  httpserver:\n    enabled: true\n  auth:\n    enabled: true\n");
        let p = check_server(&c).unwrap_err();
        assert!(p[0].contains("empty password"), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported() {
        let c = config(
            "server:\n  httpserver:\n    enabled: true\n  unixserver:\n    enabled: false\n  auth:\n    ipfile: /nonexistent/allow\n",
        );
        let p = check_server(&c).unwrap_err();
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[1].contains("cannot read the ipfile /nonexistent/allow"));
    }

    #[test]
    fn login_urls() {
        let c = config(
            "server:\n  auth:\n    enabled: true\n    username: ad min\n    password: \"p@ss:w/rd%\"\n",
        );
        let url = |l: &str| login_url(&c, &["unix:///x".into(), l.into()]);
        assert_eq!(
            url("http://127.0.0.1:11333").unwrap(),
            "http://ad%20min:p%40ss%3Aw%2Frd%25@127.0.0.1:11333/"
        );
        assert_eq!(
            url("http://0.0.0.0:80").unwrap(),
            "http://ad%20min:p%40ss%3Aw%2Frd%25@127.0.0.1:80/"
        );
        assert_eq!(
            url("http://[::]:80").unwrap(),
            "http://ad%20min:p%40ss%3Aw%2Frd%25@[::1]:80/"
        );
        assert_eq!(login_url(&c, &["unix:///x".into()]), None);
    }
}
