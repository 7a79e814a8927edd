//! `config.yml`: the server's and the client's settings.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::lines::{LineIndex, Seg};
use super::program::{want_bool, want_size, want_string, want_uint};
use super::{
    parse_programs_checked, parse_yaml, resolve_path, Collector, ConfigErrors, LoadedPrograms,
    ProgramConfig,
};

/// The commented default `config.yml` that `gosuv start-server` writes when there is none,
/// with `password` as the password of `server.auth` and of `client` (the CLI reads the same
/// file). Auth is on: HTTP, once enabled, is never open to other local users.
pub fn default_config_yml(password: &str) -> String {
    let quoted = format!(
        "\"{}\"",
        password.replace('\\', "\\\\").replace('"', "\\\"")
    );
    DEFAULT_CONFIG_TEMPLATE.replace("@PASSWORD@", &quoted)
}

/// The commented programs file that `gosuv start-server` writes beside the default
/// `config.yml`: no programs, and an example to copy.
pub fn default_programs_yml() -> &'static str {
    DEFAULT_PROGRAMS
}

const DEFAULT_PROGRAMS: &str = r#"# gosuv programs: a YAML list, one entry per program. This file has none yet; an empty
# file (or one of comments only) means no programs. Every key is in docs/config.md.
# After an edit: 'gosuv conftest' checks it, 'gosuv reload' applies it.
#
# - name: web                      # unique; also the name of its log files
#   command: python3 -m http.server 8080
#   directory: /srv/www            # default: the directory of config.yml
#   environ: ["PORT=8080"]
#   start_auto: true               # start with the server (and when reload adds it)
#   autorestart: true              # true, false or unexpected
"#;

const DEFAULT_CONFIG_TEMPLATE: &str = r#"# gosuv server and client settings. This file holds the password: keep it mode 0600.
# Relative paths below resolve against the directory of this file.

# The programs file (a YAML list of programs); default: programs.yml beside this file.
include: ./programs.yml

server:
  httpserver:
    # The REST API and the web page over HTTP (basic auth with server.auth, always: on
    # 127.0.0.1 too, as every local user can connect there). ":11333" listens on every
    # interface.
    enabled: false
    addr: 127.0.0.1:11333
  unixserver:
    # The REST API over a unix socket, created with mode 0600; only this user and root may
    # use it, unless allow_uids / allow_gids (lists of numeric ids) name others.
    enabled: true
    sockfile: .gosuv.sock
  auth:
    # Basic auth for HTTP and the socket. HTTP refuses to start without it.
    enabled: true
    username: admin
    password: @PASSWORD@
    # Allow-list file for HTTP clients: one IP or CIDR a line; empty allows every address.
    ipfile: ""
  pidfile: .gosuv.pid
  log:
    # gosuv.log and every program's output live here.
    logpath: logs
    level: info
    # gosuv.log is rotated at this size (bytes, or 10KB / 50MB / 1GB).
    filemax: 50MB
    backups: 10
  # Raise the soft limits of open files and processes to at least these.
  minfds: 1024
  minprocs: 1024

client:
  # How the gosuv command reaches the server: unix://PATH or http://HOST:PORT
  server_url: unix://.gosuv.sock
  # The same user and password as server.auth.
  username: admin
  password: @PASSWORD@
"#;

/// `server.httpserver`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpServerConfig {
    /// Serve HTTP.
    pub enabled: bool,
    /// `host:port`; a bare `:port` means every interface.
    pub addr: String,
}

/// `server.unixserver`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnixServerConfig {
    /// Serve on a unix socket.
    pub enabled: bool,
    /// The socket's path (absolute once loaded).
    pub sockfile: PathBuf,
    /// Users (by uid) allowed on the socket besides the server's own user and root.
    pub allow_uids: Vec<u32>,
    /// Groups (by gid, matched against a peer's primary group) allowed on the socket.
    pub allow_gids: Vec<u32>,
}

/// `server.auth`. When the key is missing, auth is off with an empty password (a config
/// that serves HTTP must set both, so there is never a well-known password in force).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthConfig {
    /// Require basic auth.
    pub enabled: bool,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The allow-list file (absolute once loaded), if any.
    pub ipfile: Option<PathBuf>,
}

/// `server.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerLogConfig {
    /// Directory of `gosuv.log` and every program's logs (absolute once loaded).
    pub logpath: PathBuf,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// Rotation size of `gosuv.log` in bytes.
    pub filemax: u64,
    /// Rotated `gosuv.log` files kept.
    pub backups: u32,
}

/// `server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSection {
    /// HTTP listener.
    pub httpserver: HttpServerConfig,
    /// Unix socket listener.
    pub unixserver: UnixServerConfig,
    /// Authentication and allow-list.
    pub auth: AuthConfig,
    /// The pid file (absolute once loaded).
    pub pidfile: PathBuf,
    /// The server's own log.
    pub log: ServerLogConfig,
    /// Raise RLIMIT_NOFILE's soft limit to at least this.
    pub minfds: u64,
    /// Raise RLIMIT_NPROC's soft limit to at least this.
    pub minprocs: u64,
}

/// `client`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// `unix://PATH` (relative to the config's directory) or `http://HOST:PORT`.
    pub server_url: String,
    /// Basic auth user.
    pub username: String,
    /// Basic auth password.
    pub password: String,
}

/// A loaded `config.yml`, every relative path resolved against its directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The config file, when it came from one.
    pub path: Option<PathBuf>,
    /// The directory relative paths resolve against.
    pub dir: PathBuf,
    /// The programs file.
    pub include: PathBuf,
    /// Server settings.
    pub server: ServerSection,
    /// Client settings.
    pub client: ClientConfig,
}

impl ServerConfig {
    /// Every default, with paths resolved against `dir`.
    pub fn defaults(dir: &Path) -> Self {
        ServerConfig {
            path: None,
            dir: dir.to_path_buf(),
            include: dir.join("programs.yml"),
            server: ServerSection {
                httpserver: HttpServerConfig {
                    enabled: false,
                    addr: "127.0.0.1:11333".into(),
                },
                unixserver: UnixServerConfig {
                    enabled: true,
                    sockfile: dir.join(".gosuv.sock"),
                    allow_uids: Vec::new(),
                    allow_gids: Vec::new(),
                },
                auth: AuthConfig {
                    enabled: false,
                    username: "admin".into(),
                    password: String::new(),
                    ipfile: None,
                },
                pidfile: dir.join(".gosuv.pid"),
                log: ServerLogConfig {
                    logpath: dir.join("logs"),
                    level: "info".into(),
                    filemax: 50 << 20,
                    backups: 10,
                },
                minfds: 1024,
                minprocs: 1024,
            },
            client: ClientConfig {
                server_url: "unix://.gosuv.sock".into(),
                username: "admin".into(),
                password: String::new(),
            },
        }
    }

    /// Reads and validates a `config.yml`.
    ///
    /// # Errors
    /// The file cannot be read, or every error in it with its line and key.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        match Self::load_lenient(path)? {
            (cfg, None) => Ok(cfg),
            (_, Some(e)) => Err(e),
        }
    }

    /// Reads a `config.yml`: the config with every valid key applied (defaults elsewhere),
    /// and its errors. For commands that need only a few keys (the client settings, the
    /// pidfile), so that an error elsewhere in the file does not lock them out: they check
    /// the errors on their own keys (each [`ConfigError`](super::ConfigError) names its key).
    ///
    /// # Errors
    /// Only when the file cannot be read.
    pub fn load_lenient(path: &Path) -> Result<(Self, Option<ConfigErrors>), ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors::single(Some(path), format!("cannot read the config file: {e}"))
        })?;
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let dir = abs
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        let (mut cfg, errors) = Self::parse_lenient(&text, Some(path), &dir);
        cfg.path = Some(abs);
        Ok((cfg, errors))
    }

    /// Parses `config.yml` text; relative paths resolve against `dir`.
    ///
    /// # Errors
    /// Every error in the text with its line and key.
    pub fn parse(text: &str, file: Option<&Path>, dir: &Path) -> Result<Self, ConfigErrors> {
        let (cfg, errors) = Self::parse_lenient(text, file, dir);
        match errors {
            Some(e) => Err(e),
            None => Ok(cfg),
        }
    }

    /// Parses as much as it can: the config with every valid key applied, and the errors.
    pub(crate) fn parse_lenient(
        text: &str,
        file: Option<&Path>,
        dir: &Path,
    ) -> (Self, Option<ConfigErrors>) {
        let mut cfg = ServerConfig::defaults(dir);
        let value = match parse_yaml(text, file) {
            Ok(v) => v,
            Err(e) => return (cfg, Some(e)),
        };
        let index = LineIndex::new(text);
        let mut c = Collector::new(file, Some(&index));
        let top = match value {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m,
            _ => {
                c.error(&[], "config.yml is a mapping with `server:` and `client:`");
                return (cfg, c.finish(()).err());
            }
        };
        for_each_key(&mut c, &[], top, |c, path, key, v| match key {
            "include" => {
                if let Some(s) = want_string(c, path, &v) {
                    if !s.is_empty() {
                        cfg.include = resolve_path(dir, Path::new(&s));
                    }
                }
                true
            }
            "server" => {
                section(c, path, v, &mut |c, path, key, v| {
                    server_key(c, path, key, v, &mut cfg.server, dir)
                });
                true
            }
            "client" => {
                section(c, path, v, &mut |c, path, key, v| {
                    client_key(c, path, key, v, &mut cfg.client)
                });
                true
            }
            _ => false,
        });
        (cfg, c.finish(()).err())
    }

    /// Reads the programs file named by `include`; a missing file is no programs. Logs each
    /// warning (see [`ServerConfig::load_programs_checked`]) at `warn`, so the server's log
    /// shows them at every start and reload.
    ///
    /// # Errors
    /// The file exists but cannot be read, or every error in it.
    pub fn load_programs(&self) -> Result<Vec<ProgramConfig>, ConfigErrors> {
        let loaded = self.load_programs_checked()?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        Ok(loaded.programs)
    }

    /// Reads the programs file named by `include`, with its warnings (a program whose
    /// `directory` or `user` does not exist); a missing file is no programs.
    ///
    /// # Errors
    /// The file exists but cannot be read, or every error in it.
    pub fn load_programs_checked(&self) -> Result<LoadedPrograms, ConfigErrors> {
        match std::fs::read(&self.include) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => parse_programs_checked(&text, Some(&self.include), &self.dir),
                Err(e) => Err(ConfigErrors::single(
                    Some(&self.include),
                    format!(
                        "the programs file is not UTF-8 text (invalid byte at offset {}): save it as UTF-8",
                        e.utf8_error().valid_up_to()
                    ),
                )),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(LoadedPrograms::default()),
            Err(e) => Err(ConfigErrors::single(
                Some(&self.include),
                format!("cannot read the programs file: {e}"),
            )),
        }
    }

    /// `client.server_url` with a relative unix socket path resolved against the config's
    /// directory.
    pub fn resolved_server_url(&self) -> String {
        match self.client.server_url.strip_prefix("unix://") {
            Some(p) => format!("unix://{}", resolve_path(&self.dir, Path::new(p)).display()),
            None => self.client.server_url.clone(),
        }
    }
}

type KeyFn<'f> = dyn FnMut(&mut Collector<'_>, &[Seg], &str, Value) -> bool + 'f;

/// Calls `f` for every key of `map`; a key `f` does not know is reported as unknown.
fn for_each_key(
    c: &mut Collector<'_>,
    path: &[Seg],
    map: Mapping,
    mut f: impl FnMut(&mut Collector<'_>, &[Seg], &str, Value) -> bool,
) {
    for (k, v) in map {
        let Some(key) = k.as_str().map(str::to_owned) else {
            c.error(path, "keys must be strings");
            continue;
        };
        let kp: Vec<Seg> = path
            .iter()
            .cloned()
            .chain([Seg::Key(key.clone())])
            .collect();
        if !f(c, &kp, &key, v) {
            let section: Vec<&str> = path
                .iter()
                .filter_map(|s| match s {
                    Seg::Key(k) => Some(k.as_str()),
                    Seg::Index(_) => None,
                })
                .collect();
            c.error(&kp, super::keys::unknown_server_key(&section, &key));
        }
    }
}

fn section(c: &mut Collector<'_>, path: &[Seg], v: Value, f: &mut KeyFn<'_>) {
    match v {
        Value::Null => {}
        Value::Mapping(m) => for_each_key(c, path, m, f),
        _ => c.error(path, "expected a mapping of settings"),
    }
}

fn server_key(
    c: &mut Collector<'_>,
    path: &[Seg],
    key: &str,
    v: Value,
    s: &mut ServerSection,
    dir: &Path,
) -> bool {
    match key {
        "httpserver" => section(c, path, v, &mut |c, p, k, v| match k {
            "enabled" => assign(&mut s.httpserver.enabled, want_bool(c, p, &v)),
            "addr" => {
                if let Some(a) = want_string(c, p, &v) {
                    if is_listen_addr(&a) {
                        s.httpserver.addr = a;
                    } else {
                        c.error(
                            p,
                            format!(
                                "'{a}' is not HOST:PORT (127.0.0.1:11333, [::1]:11333, localhost:11333 or :11333)"
                            ),
                        );
                    }
                }
                true
            }
            _ => false,
        }),
        "unixserver" => section(c, path, v, &mut |c, p, k, v| match k {
            "enabled" => assign(&mut s.unixserver.enabled, want_bool(c, p, &v)),
            "sockfile" => assign(&mut s.unixserver.sockfile, want_path(c, p, &v, dir)),
            "allow_uids" => assign(&mut s.unixserver.allow_uids, want_ids(c, p, &v, "uid")),
            "allow_gids" => assign(&mut s.unixserver.allow_gids, want_ids(c, p, &v, "gid")),
            _ => false,
        }),
        "auth" => section(c, path, v, &mut |c, p, k, v| match k {
            "enabled" => assign(&mut s.auth.enabled, want_bool(c, p, &v)),
            "username" => assign(&mut s.auth.username, want_string(c, p, &v)),
            "password" => assign(&mut s.auth.password, want_string(c, p, &v)),
            "ipfile" => {
                if let Some(f) = want_string(c, p, &v) {
                    s.auth.ipfile = (!f.is_empty()).then(|| resolve_path(dir, Path::new(&f)));
                }
                true
            }
            _ => false,
        }),
        "pidfile" => {
            assign(&mut s.pidfile, want_path(c, path, &v, dir));
        }
        "log" => section(c, path, v, &mut |c, p, k, v| match k {
            "logpath" => assign(&mut s.log.logpath, want_path(c, p, &v, dir)),
            "level" => {
                if let Some(l) = want_string(c, p, &v) {
                    let l = l.to_ascii_lowercase();
                    if ["error", "warn", "info", "debug", "trace"].contains(&l.as_str()) {
                        s.log.level = l;
                    } else {
                        c.error(
                            p,
                            format!("'{l}' is not a level: error, warn, info, debug or trace"),
                        );
                    }
                }
                true
            }
            "filemax" => assign(&mut s.log.filemax, want_size(c, p, &v)),
            "backups" => assign(
                &mut s.log.backups,
                want_uint(c, p, &v, 1000).map(|n| n as u32),
            ),
            _ => false,
        }),
        "minfds" => {
            assign(&mut s.minfds, want_uint(c, path, &v, u64::from(u32::MAX)));
        }
        "minprocs" => {
            assign(&mut s.minprocs, want_uint(c, path, &v, u64::from(u32::MAX)));
        }
        _ => return false,
    }
    true
}

fn client_key(
    c: &mut Collector<'_>,
    path: &[Seg],
    key: &str,
    v: Value,
    cl: &mut ClientConfig,
) -> bool {
    match key {
        "server_url" => {
            if let Some(u) = want_string(c, path, &v) {
                if u.starts_with("unix://") || u.starts_with("http://") {
                    cl.server_url = u;
                } else {
                    c.error(
                        path,
                        format!("'{u}' is not unix://PATH or http://HOST:PORT"),
                    );
                }
            }
            true
        }
        "username" => assign(&mut cl.username, want_string(c, path, &v)),
        "password" => assign(&mut cl.password, want_string(c, path, &v)),
        _ => false,
    }
}

fn assign<T>(slot: &mut T, v: Option<T>) -> bool {
    if let Some(v) = v {
        *slot = v;
    }
    true
}

/// A list of numeric user or group ids (`[1000, 1001]`); an empty list or null is none.
fn want_ids(c: &mut Collector<'_>, path: &[Seg], v: &Value, what: &str) -> Option<Vec<u32>> {
    let items = match v {
        Value::Null => return Some(Vec::new()),
        Value::Sequence(items) => items,
        _ => {
            c.error(
                path,
                format!("expected a list of numeric {what}s ([1000, 1001])"),
            );
            return None;
        }
    };
    let mut ids = Vec::with_capacity(items.len());
    let mut ok = true;
    for item in items {
        match item.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(id) => ids.push(id),
            None => {
                ok = false;
                let shown = serde_yaml::to_string(item).unwrap_or_default();
                c.error(
                    path,
                    format!(
                        "'{}' is not a numeric {what}: write the number (`id -u NAME` shows a user's uid, `getent group NAME` a group's gid)",
                        shown.trim()
                    ),
                );
            }
        }
    }
    ok.then_some(ids)
}

/// Whether `addr` is `HOST:PORT` with a port, and a host that is an IP address (IPv6 in
/// brackets), a host name, or empty (every interface).
pub fn is_listen_addr(addr: &str) -> bool {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return false;
    };
    if port.parse::<u16>().is_err() {
        return false;
    }
    if host.is_empty() {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    // A host name (RFC 1123): labels of letters, digits and hyphens, not starting or
    // ending with a hyphen.
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn want_path(c: &mut Collector<'_>, path: &[Seg], v: &Value, dir: &Path) -> Option<PathBuf> {
    let s = want_string(c, path, v)?;
    if s.is_empty() {
        c.error(path, "expected a path, found an empty string");
        return None;
    }
    Some(resolve_path(dir, Path::new(&s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_text_parses_to_defaults_with_auth_on() {
        let dir = Path::new("/srv/app");
        let text = default_config_yml("Zx-9_q");
        let cfg = ServerConfig::parse(&text, None, dir).expect("valid default");
        let mut want = ServerConfig::defaults(dir);
        want.server.auth.enabled = true;
        want.server.auth.password = "Zx-9_q".into();
        want.client.password = "Zx-9_q".into();
        assert_eq!(cfg, want);
        assert_eq!(cfg.include, Path::new("/srv/app/programs.yml"));
        assert_eq!(cfg.resolved_server_url(), "unix:///srv/app/.gosuv.sock");
        let programs = crate::config::parse_programs(default_programs_yml(), None, dir);
        assert_eq!(programs, Ok(Vec::new()));
        // Any password stays one YAML string.
        let odd = "a\"b\\c: #d";
        let cfg = ServerConfig::parse(&default_config_yml(odd), None, dir).expect("valid");
        assert_eq!(cfg.server.auth.password, odd);
        assert_eq!(cfg.client.password, odd);
    }

    #[test]
    fn listen_addresses() {
        for ok in [
            "127.0.0.1:11333",
            ":11333",
            "[::]:80",
            "[::1]:80",
            "localhost:1",
            "gosuv.example.org:8080",
            "0.0.0.0:0",
        ] {
            assert!(is_listen_addr(ok), "{ok}");
        }
        for bad in [
            "11333",
            "127.0.0.1",
            "127.0.0.1:99999",
            "::1:80",
            "[nope]:80",
            "no such host!:80",
            "-bad-.example:80",
            "a..b:80",
            "127.0.0.1:port",
        ] {
            assert!(!is_listen_addr(bad), "{bad}");
        }
    }

    #[test]
    fn socket_allow_lists() {
        let cfg = ServerConfig::parse(
            "server:\n  unixserver:\n    allow_uids: [1000, 65534]\n    allow_gids: [27]\n",
            None,
            Path::new("/"),
        )
        .expect("valid");
        assert_eq!(cfg.server.unixserver.allow_uids, [1000, 65534]);
        assert_eq!(cfg.server.unixserver.allow_gids, [27]);
        let errs = ServerConfig::parse(
            "server:\n  unixserver:\n    allow_uids: [bob, -1, 4294967296]\n    allow_gids: 7\n",
            Some(Path::new("c.yml")),
            Path::new("/"),
        )
        .expect_err("invalid");
        let all = errs.to_string();
        assert_eq!(errs.0.len(), 4, "{all}");
        assert!(
            all.contains("c.yml:3: server.unixserver.allow_uids: 'bob' is not a numeric uid"),
            "{all}"
        );
        assert!(
            all.contains("c.yml:4: server.unixserver.allow_gids: expected a list"),
            "{all}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_config_dir() {
        let cfg = ServerConfig::parse(
            "include: conf/progs.yml\nserver:\n  pidfile: run/g.pid\n  log:\n    logpath: /var/log/g\n",
            None,
            Path::new("/etc/gosuv"),
        )
        .expect("valid");
        assert_eq!(cfg.include, Path::new("/etc/gosuv/conf/progs.yml"));
        assert_eq!(cfg.server.pidfile, Path::new("/etc/gosuv/run/g.pid"));
        assert_eq!(cfg.server.log.logpath, Path::new("/var/log/g"));
    }

    #[test]
    fn unknown_keys_are_errors_with_lines() {
        let errs = ServerConfig::parse(
            "server:\n  httpserver:\n    enabled: true\n    adress: x\n  pidfil: y\nclient:\n  server_url: ftp://x\nextra: 1\n",
            Some(Path::new("config.yml")),
            Path::new("/"),
        )
        .expect_err("invalid");
        let all: Vec<String> = errs.0.iter().map(ToString::to_string).collect();
        assert_eq!(all.len(), 4, "{all:#?}");
        assert!(all[0].starts_with("config.yml:4: server.httpserver.adress: unknown key"));
        assert!(all[1].starts_with("config.yml:5: server.pidfil: unknown key"));
        assert!(all[2].starts_with("config.yml:7: client.server_url: 'ftp://x'"));
        assert!(all[3].starts_with("config.yml:8: extra: unknown key"));
    }

    #[test]
    fn bad_values() {
        let errs = ServerConfig::parse(
            "server:\n  httpserver:\n    addr: nope\n  log:\n    filemax: lots\n    level: loud\n  minfds: -5\n",
            Some(Path::new("c.yml")),
            Path::new("/"),
        )
        .expect_err("invalid");
        assert_eq!(errs.0.len(), 4, "{errs}");
        assert_eq!(errs.0[0].line, Some(3));
        assert_eq!(errs.0[3].line, Some(7));
    }
}
