//! Readiness and health probes: the primitives behind a program's `ready` and `health`
//! checks (`ready` is one of http/tcp/exec/log/notify, `health` one of http/tcp/exec).
//!
//! Each primitive stands alone and knows nothing of the config types: the config layer
//! validates a value with the `check_*` function of its kind, the program task runs the probe.
//! Errors are plain strings worded for a program's `last_error`, each naming what was tried
//! ("GET http://127.0.0.1:8080/healthz: connection refused"). Exec probes need the spawn
//! machinery and live with it.
//!
//! The HTTP probe speaks plain HTTP/1.1 only: the core carries no TLS.

// Nothing outside the tests calls these until the program task runs probes.
#![cfg_attr(not(test), allow(dead_code))]

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::http::uri::PathAndQuery;
use hyper::{header, Request, StatusCode};
use hyper_util::rt::TokioIo;
use nix::sys::socket::{
    self, sockopt, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr,
    UnixCredentials,
};
use nix::sys::stat::{fchmodat, FchmodatFlags, Mode};
use regex::Regex;
use tokio::io::Interest;
use tokio::net::{lookup_host, TcpStream, UnixDatagram, UnixStream};

// ---------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------

/// A host as written in a probe: an address to use as is, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Ip(IpAddr),
    Name(String),
}

/// A TCP endpoint: a host and a port (never 0).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: Host,
    port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}:{}", self.port),
            Host::Name(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

/// Reads a host: `[IPv6]`, an IPv4 address, or a DNS name.
fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("'{host}' lacks the closing ']'"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| format!("'{inner}' is not an IPv6 address"));
    }
    if host.is_empty() {
        return Err("the host is missing".into());
    }
    if host.contains(':') {
        return Err(format!(
            "'{host}' looks like an IPv6 address: write it in brackets, as [{host}]"
        ));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if host.len() > 253 || !host.chars().all(name_char) {
        return Err(format!("'{host}' is not a host name"));
    }
    Ok(Host::Name(host.to_string()))
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("'{port}' is not a port (1 to 65535)")),
    }
}

/// Reads `host:port` or `[IPv6]:port`; without a port, `default_port` if there is one.
fn parse_host_port(text: &str, default_port: Option<u16>) -> Result<HostPort, String> {
    let (host, port) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => match &text[end + 1..] {
                "" => (&text[..=end], None),
                rest => match rest.strip_prefix(':') {
                    Some(port) => (&text[..=end], Some(port)),
                    None => return Err(format!("unexpected '{rest}' after the IPv6 address")),
                },
            },
            None => return Err(format!("'{text}' lacks the closing ']'")),
        }
    } else {
        match text.split_once(':') {
            // Two colons or more: an IPv6 address without brackets, which parse_host explains.
            Some((_, rest)) if rest.contains(':') => (text, None),
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let host = parse_host(host)?;
    let port = match (port, default_port) {
        (Some(port), _) => parse_port(port)?,
        (None, Some(port)) => port,
        (None, None) => return Err(format!("'{text}' has no port (write host:port)")),
    };
    Ok(HostPort { host, port })
}

/// Connects to the first address of `target` that accepts. Names are resolved with tokio's
/// resolver (a blocking thread), never on a runtime worker.
/// What `localhost` means to a probe, without asking the resolver.
const LOCALHOST: [std::net::IpAddr; 2] = [
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
];

async fn connect_host_port(target: &HostPort) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = match &target.host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, target.port)],
        // The commonest name is not looked up: no resolver thread for it.
        Host::Name(name) if name.eq_ignore_ascii_case("localhost") => LOCALHOST
            .iter()
            .map(|ip| SocketAddr::new(*ip, target.port))
            .collect(),
        Host::Name(name) => lookup_host((name.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot resolve {name}: {}", io_reason(&e)))?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => io_reason(&e),
        None => format!("{} resolves to no address", target.host_text()),
    })
}

impl HostPort {
    fn host_text(&self) -> String {
        match &self.host {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }
}

/// An I/O error in the words of a `last_error`: "connection refused", not
/// "Connection refused (os error 111)".
fn io_reason(e: &io::Error) -> String {
    use io::ErrorKind as K;
    let said = match e.kind() {
        K::ConnectionRefused => "connection refused",
        K::ConnectionReset => "connection reset",
        K::ConnectionAborted => "connection aborted",
        K::NotFound => "no such file",
        K::PermissionDenied => "permission denied",
        K::TimedOut => "timed out",
        K::AddrNotAvailable => "address not available",
        K::HostUnreachable => "host unreachable",
        K::NetworkUnreachable => "network unreachable",
        K::UnexpectedEof => "connection closed",
        _ => {
            let text = e.to_string();
            let text = match text.rfind(" (os error ") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            let mut chars = text.chars();
            return match chars.next() {
                Some(first) => first.to_lowercase().chain(chars).collect(),
                None => "unknown error".to_string(),
            };
        }
    };
    said.to_string()
}

/// `2s`, `1500ms`: how a timeout reads in an error.
fn duration_text(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// A checked `http://` URL, split into what the request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HttpTarget {
    endpoint: HostPort,
    /// The `Host` header: the URL's authority as written.
    host_header: String,
    path: PathAndQuery,
}

/// Reads `http://host[:port][/path][?query]`; the fragment, never sent, is dropped.
fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("it does not start with http://")?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err(
            "https is not supported (the probe speaks plain HTTP: gosuv's core has no \
                    TLS); probe a plain http:// port, or use a tcp probe"
                .into(),
        );
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(format!("the scheme is '{scheme}', not http"));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("a user or password in the URL is not supported".into());
    }
    if authority.is_empty() {
        return Err("the host is missing".into());
    }
    let endpoint = parse_host_port(authority, Some(80))?;
    let tail = tail.split_once('#').map_or(tail, |(before, _)| before);
    let path = match tail {
        "" => "/".to_string(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_string(),
    };
    let path = PathAndQuery::try_from(path.as_str()).map_err(|_| {
        format!("'{path}' is not a valid path (spaces and controls must be %-encoded)")
    })?;
    Ok(HttpTarget {
        endpoint,
        host_header: authority.to_string(),
        path,
    })
}

/// Checks that `url` is one [`http_get`] can probe: `http://` (not https), a host (IPv4,
/// `[IPv6]` or a name) with an optional port (80 without), and a valid path.
///
/// Errors: `invalid URL "<url>": <reason>`.
pub(crate) fn check_http_url(url: &str) -> Result<(), String> {
    parse_http_url(url)
        .map(drop)
        .map_err(|reason| format!("invalid URL \"{url}\": {reason}"))
}

/// One HTTP/1.1 `GET url`: succeeds on any 2xx or 3xx status (redirects are not followed).
///
/// The whole attempt (name resolution, connect, request, response head) is bounded by
/// `timeout`; the body is never read and the connection is closed on return.
///
/// Errors, each starting `GET <url>: `: the URL is invalid (see [`check_http_url`]); the
/// name does not resolve; the connect fails ("connection refused"); the peer does not speak
/// HTTP; the status is another ("503 Service Unavailable"); or "no answer within 2s".
pub(crate) async fn http_get(url: &str, timeout: Duration) -> Result<(), String> {
    let target = parse_http_url(url).map_err(|e| format!("GET {url}: {e}"))?;
    match tokio::time::timeout(timeout, get_status(&target)).await {
        Err(_) => Err(format!(
            "GET {url}: no answer within {}",
            duration_text(timeout)
        )),
        Ok(Err(reason)) => Err(format!("GET {url}: {reason}")),
        Ok(Ok(status)) if status.is_success() || status.is_redirection() => Ok(()),
        Ok(Ok(status)) => Err(format!("GET {url}: {}", status_text(status))),
    }
}

async fn get_status(target: &HttpTarget) -> Result<StatusCode, String> {
    let stream = connect_host_port(&target.endpoint).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| hyper_reason(&e))?;
    let request = Request::get(target.path.clone())
        .header(header::HOST, target.host_header.as_str())
        .header(
            header::USER_AGENT,
            concat!("gosuv/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("cannot build the request: {e}"))?;
    // The connection is driven here, not in a spawned task, so a timeout drops it with the
    // request and nothing outlives the probe.
    let mut connection = pin!(connection);
    let mut response = pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        r = &mut response => r,
        // The connection ends before the response only on a failure, which hyper hands to
        // the pending request as well.
        _ = &mut connection => response.await,
    };
    response.map(|r| r.status()).map_err(|e| hyper_reason(&e))
}

fn hyper_reason(e: &hyper::Error) -> String {
    if e.is_parse() || e.is_parse_status() {
        return format!("the answer is not HTTP ({e})");
    }
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return "connection closed before a response".into();
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return io_reason(io);
        }
        source = s.source();
    }
    e.to_string()
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// TCP and unix stream connects
// ---------------------------------------------------------------------------------------

/// A unix socket path must fit `sockaddr_un.sun_path` with its NUL.
const MAX_UNIX_PATH: usize = 107;

#[derive(Debug, Clone, PartialEq, Eq)]
enum StreamTarget {
    Tcp(HostPort),
    Unix(PathBuf),
}

fn parse_stream_target(target: &str) -> Result<StreamTarget, String> {
    if let Some(path) = target.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err(format!("'{path}' is not an absolute path"));
        }
        if path.contains('\0') {
            return Err("the path contains a NUL byte".into());
        }
        if path.len() > MAX_UNIX_PATH {
            return Err(format!(
                "the path is {} bytes long; a unix socket path holds at most {MAX_UNIX_PATH}",
                path.len()
            ));
        }
        return Ok(StreamTarget::Unix(PathBuf::from(path)));
    }
    parse_host_port(target, None).map(StreamTarget::Tcp)
}

/// Checks that `target` is one [`tcp_connect`] can probe: `host:port` (IPv4, `[IPv6]` or a
/// name; port 1 to 65535) or `unix:/absolute/path`.
///
/// Errors: `invalid target "<target>": <reason>`.
pub(crate) fn check_tcp_target(target: &str) -> Result<(), String> {
    parse_stream_target(target)
        .map(drop)
        .map_err(|reason| format!("invalid target \"{target}\": {reason}"))
}

/// Connects to `target` (`host:port` over TCP, or `unix:/path`, a unix stream socket) and
/// closes the connection at once: success means something accepts there.
///
/// The whole attempt, name resolution included, is bounded by `timeout`. Errors, each
/// starting `connect <target>: `: the target is invalid (see [`check_tcp_target`]), the
/// name does not resolve, the connect fails ("connection refused", "no such file"), or
/// "no answer within 2s".
pub(crate) async fn tcp_connect(target: &str, timeout: Duration) -> Result<(), String> {
    TcpTarget::parse(target)?
        .probe(timeout, std::time::Instant::now())
        .await
}

/// A `tcp` probe's target, parsed once for all its attempts.
pub(crate) struct TcpTarget {
    text: String,
    parsed: StreamTarget,
}

impl TcpTarget {
    /// Errors: `connect <target>: <why it is invalid>`.
    pub(crate) fn parse(target: &str) -> Result<Self, String> {
        let parsed = parse_stream_target(target).map_err(|e| format!("connect {target}: {e}"))?;
        Ok(TcpTarget {
            text: target.to_string(),
            parsed,
        })
    }

    /// The addresses and port of a loopback target (`localhost` is two addresses), which
    /// the table of listening sockets can answer for.
    pub(crate) fn loopback(&self) -> Option<(Vec<std::net::IpAddr>, u16)> {
        let StreamTarget::Tcp(endpoint) = &self.parsed else {
            return None;
        };
        let ips = match &endpoint.host {
            // A v4-mapped address is the IPv4 address to the kernel's table.
            Host::Ip(std::net::IpAddr::V6(v6)) => vec![v6
                .to_ipv4_mapped()
                .map_or(std::net::IpAddr::V6(*v6), std::net::IpAddr::V4)],
            Host::Ip(ip) => vec![*ip],
            Host::Name(n) if n.eq_ignore_ascii_case("localhost") => LOCALHOST.to_vec(),
            Host::Name(_) => return None,
        };
        let loopback = ips.iter().all(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
        });
        loopback.then_some((ips, endpoint.port))
    }

    /// One attempt, bounded by `timeout`. A loopback target that the kernel's table of
    /// listening sockets (a read made at or after `since`) shows accepting passes at once,
    /// without a connect; anything else is a real connect (the table cannot see NAT on
    /// loopback, and a full queue may drain).
    pub(crate) async fn probe(
        &self,
        timeout: Duration,
        since: std::time::Instant,
    ) -> Result<(), String> {
        if let StreamTarget::Tcp(endpoint) = &self.parsed {
            if accepting(endpoint, since) {
                return Ok(());
            }
        }
        self.connect(timeout).await
    }

    /// One attempt by a real connect, bounded by `timeout`.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<(), String> {
        let target = &self.text;
        let attempt = async {
            match &self.parsed {
                StreamTarget::Tcp(endpoint) => connect_host_port(endpoint).await.map(drop),
                StreamTarget::Unix(path) => UnixStream::connect(path)
                    .await
                    .map(drop)
                    .map_err(|e| io_reason(&e)),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(format!(
                "connect {target}: no answer within {}",
                duration_text(timeout)
            )),
            Ok(Err(reason)) => Err(format!("connect {target}: {reason}")),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// Whether the table of listening sockets shows a socket accepting connections at
/// `endpoint`, a loopback address (or `localhost`); false when it does not, or cannot say.
fn accepting(endpoint: &HostPort, since: std::time::Instant) -> bool {
    let ips: &[std::net::IpAddr] = match &endpoint.host {
        Host::Ip(ip) => std::slice::from_ref(ip),
        Host::Name(n) if n.eq_ignore_ascii_case("localhost") => &LOCALHOST,
        Host::Name(_) => return false,
    };
    ips.iter().any(|ip| {
        crate::listening::answer(*ip, endpoint.port, since)
            == Some(crate::listening::Answer::Accepts)
    })
}

// ---------------------------------------------------------------------------------------
// Log lines
// ---------------------------------------------------------------------------------------

/// The longest line [`LineMatcher`] buffers; a longer one is matched in pieces of this size.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Compiles the regex of a `log` readiness probe.
///
/// Errors: the pattern is empty (it would match the first line, whatever it says), or it
/// does not compile: `invalid log regex "<pattern>": <the regex crate's reason>`.
pub(crate) fn check_log_regex(pattern: &str) -> Result<Regex, String> {
    if pattern.is_empty() {
        return Err("the log regex is empty: it would match any line".into());
    }
    Regex::new(pattern).map_err(|e| {
        // A syntax error spans lines (the pattern, a caret, "error: ..."): keep the reason.
        let text = e.to_string();
        let reason = match text.lines().rev().find_map(|l| l.strip_prefix("error: ")) {
            Some(reason) => reason.to_string(),
            None => text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        format!("invalid log regex \"{pattern}\": {reason}")
    })
}

/// Finds a line matching a regex in a program's output, fed as it arrives in chunks that
/// split lines anywhere.
///
/// A line ends at `\n`; a trailing `\r` is dropped and the bytes are decoded as UTF-8,
/// invalid sequences replaced. A partial line waits for the rest, up to [`MAX_LINE`] bytes:
/// past that, the buffered bytes count as a line of their own.
#[derive(Debug)]
pub(crate) struct LineMatcher {
    regex: Regex,
    partial: Vec<u8>,
}

impl LineMatcher {
    pub(crate) fn new(regex: Regex) -> Self {
        Self {
            regex,
            partial: Vec::new(),
        }
    }

    /// Forgets the unfinished line (output was lost after it).
    pub(crate) fn reset(&mut self) {
        self.partial.clear();
    }

    /// Takes the next chunk of output; true when a line completed by this chunk matches.
    pub(crate) fn feed(&mut self, mut chunk: &[u8]) -> bool {
        let mut matched = false;
        while !chunk.is_empty() {
            if self.partial.len() == MAX_LINE {
                // A newline right after a full buffer ends that line, not an empty one.
                if chunk[0] == b'\n' {
                    chunk = &chunk[1..];
                }
                matched |= self.end_line(!matched);
                continue;
            }
            let room = MAX_LINE - self.partial.len();
            let window = &chunk[..chunk.len().min(room)];
            match window.iter().position(|&b| b == b'\n') {
                Some(at) => {
                    self.partial.extend_from_slice(&window[..at]);
                    matched |= self.end_line(!matched);
                    chunk = &chunk[at + 1..];
                }
                None => {
                    self.partial.extend_from_slice(window);
                    chunk = &chunk[window.len()..];
                }
            }
        }
        matched
    }

    /// Ends the buffered line; matches it only if `check` (one match per chunk is enough).
    fn end_line(&mut self, check: bool) -> bool {
        let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
        let hit = check && self.regex.is_match(&String::from_utf8_lossy(line));
        self.partial.clear();
        hit
    }
}

// ---------------------------------------------------------------------------------------
// sd_notify
// ---------------------------------------------------------------------------------------

/// The largest notification taken; a longer datagram is dropped whole, as systemd does.
pub(crate) const MAX_NOTIFY: usize = 4096;

/// One sd_notify datagram: who sent it and what it says.
///
/// Unknown keys are ignored; when a key repeats, its last value counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NotifyMessage {
    /// The sender's pid, from the kernel (`SCM_CREDENTIALS`), not from the message.
    pub(crate) pid: u32,
    /// `READY=1`: start-up is finished.
    pub(crate) ready: bool,
    /// `RELOADING=1`: reloading its configuration.
    pub(crate) reloading: bool,
    /// `STOPPING=1`: shutting down.
    pub(crate) stopping: bool,
    /// `STATUS=...`, control characters replaced by spaces; `Some("")` clears the status.
    pub(crate) status: Option<String>,
    /// `MAINPID=n`: the pid the sender says is the main process.
    pub(crate) main_pid: Option<u32>,
}

impl NotifyMessage {
    /// Reads the newline-separated `KEY=VALUE` assignments of one datagram from `pid`.
    fn parse(pid: u32, data: &[u8]) -> Self {
        let mut message = Self {
            pid,
            ..Self::default()
        };
        let text = String::from_utf8_lossy(data);
        for (key, value) in text.split('\n').filter_map(|line| line.split_once('=')) {
            match key {
                "READY" => message.ready = value == "1",
                "RELOADING" => message.reloading = value == "1",
                "STOPPING" => message.stopping = value == "1",
                "STATUS" => {
                    let clean = value.chars().map(|c| if c.is_control() { ' ' } else { c });
                    message.status = Some(clean.collect());
                }
                "MAINPID" => message.main_pid = value.parse().ok().filter(|&p: &u32| p != 0),
                _ => {}
            }
        }
        message
    }
}

/// The socket a program's `notify` readiness probe listens on: the `NOTIFY_SOCKET` the
/// program is given.
///
/// A unix datagram socket, mode 0600, with `SO_PASSCRED` on, so every message carries its
/// sender's pid from the kernel. Anyone who can write to the socket can send, so **the
/// caller must ignore messages whose [`NotifyMessage::pid`] is not the program's** (or, if it
/// chooses, one of its process group). Dropping it removes the socket file, if the file is
/// still the one it bound.
#[derive(Debug)]
pub(crate) struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
    /// The socket file's device and inode, to remove only that file on drop.
    file_id: (u64, u64),
}

impl NotifySocket {
    /// Binds a notify socket at `path`, which should lie in a directory only the supervisor
    /// can write to. A stale socket or symlink at `path` is removed first (the link itself,
    /// never what it points to); any other file there is left alone and is an error.
    ///
    /// Must be called within a tokio runtime. Errors: the path is too long for a unix socket
    /// address, another kind of file holds it, or a system call fails; each message names
    /// the path.
    pub(crate) fn bind(path: &Path) -> io::Result<Self> {
        let context = |e: io::Error| {
            io::Error::new(e.kind(), format!("notify socket {}: {e}", path.display()))
        };
        remove_stale(path).map_err(context)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| context(e.into()))?;
        // On before bind, so no message can arrive without its credentials.
        socket::setsockopt(&fd, sockopt::PassCred, &true).map_err(|e| context(e.into()))?;
        let addr = UnixAddr::new(path).map_err(|e| context(e.into()))?;
        socket::bind(fd.as_raw_fd(), &addr).map_err(|e| context(e.into()))?;
        match Self::finish_bind(fd, path) {
            Ok(me) => Ok(me),
            Err(e) => {
                // Ours since bind succeeded: a failed setup leaves nothing behind.
                let _ = std::fs::remove_file(path);
                Err(context(e))
            }
        }
    }

    fn finish_bind(fd: OwnedFd, path: &Path) -> io::Result<Self> {
        // bind() creates the file by the umask; narrow it without following a link that may
        // have replaced it.
        fchmodat(
            nix::fcntl::AT_FDCWD,
            path,
            Mode::S_IRUSR | Mode::S_IWUSR,
            FchmodatFlags::NoFollowSymlink,
        )?;
        let meta = std::fs::symlink_metadata(path)?;
        if !meta.file_type().is_socket() {
            return Err(io::Error::other(
                "replaced by another file right after bind",
            ));
        }
        let socket = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))?;
        Ok(Self {
            socket,
            path: path.to_path_buf(),
            file_id: (meta.dev(), meta.ino()),
        })
    }

    /// Where the socket is bound: the value of the program's `NOTIFY_SOCKET`.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next notification.
    ///
    /// Datagrams over [`MAX_NOTIFY`] bytes, or without the sender's credentials (a visible
    /// pid), are dropped and waited past. Cancel-safe: a message is either returned or still
    /// queued. Errors: a receive fails (other than would-block).
    pub(crate) async fn recv(&self) -> io::Result<NotifyMessage> {
        loop {
            let got = self
                .socket
                .async_io(Interest::READABLE, || self.recv_datagram())
                .await?;
            if let Some(message) = got {
                return Ok(message);
            }
        }
    }

    /// Reads one datagram; `None` when it is dropped.
    fn recv_datagram(&self) -> io::Result<Option<NotifyMessage>> {
        let mut buf = [0u8; MAX_NOTIFY];
        // Room for the credentials only: the kernel discards any descriptors sent along.
        let mut control = nix::cmsg_space!(UnixCredentials);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = socket::recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_TRUNC | MsgFlags::MSG_CMSG_CLOEXEC,
        )?;
        let len = msg.bytes;
        let mut pid = None;
        match msg.cmsgs() {
            Ok(cmsgs) => {
                for cmsg in cmsgs {
                    match cmsg {
                        ControlMessageOwned::ScmCredentials(creds) => pid = Some(creds.pid()),
                        ControlMessageOwned::ScmRights(fds) => {
                            for fd in fds {
                                let _ = nix::unistd::close(fd);
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Truncated control data: descriptors were sent along; the sender is no sd_notify
            // client we serve.
            Err(_) => pid = None,
        }
        // Not a warning: anyone who can reach the socket could fill the log with them.
        if len > MAX_NOTIFY {
            tracing::debug!(
                socket = %self.path.display(),
                pid,
                bytes = len,
                "notify message over {MAX_NOTIFY} bytes dropped"
            );
            return Ok(None);
        }
        let pid = match pid.and_then(|p| u32::try_from(p).ok()).filter(|&p| p != 0) {
            Some(pid) => pid,
            None => {
                tracing::debug!(socket = %self.path.display(), "notify message without a sender pid dropped");
                return Ok(None);
            }
        };
        Ok(Some(NotifyMessage::parse(pid, &buf[..len])))
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if (meta.dev(), meta.ino()) == self.file_id {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Removes a socket or symlink left at `path`; refuses to remove anything else.
fn remove_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.file_type().is_socket() || meta.file_type().is_symlink() => {
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "another kind of file is there (not a socket); it is left alone",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    /// A generous bound for anything that should take milliseconds.
    const PATIENCE: Duration = Duration::from_secs(10);

    /// Serves one connection on 127.0.0.1: reads the request head, answers `response` (or
    /// nothing, holding the connection open, if `None`), and returns the request head.
    async fn serve_once(response: Option<&'static str>) -> (String, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            match response {
                Some(response) => stream.write_all(response.as_bytes()).await.unwrap(),
                None => std::future::pending::<()>().await,
            }
            String::from_utf8(head).unwrap()
        });
        (format!("127.0.0.1:{port}"), task)
    }

    /// A port on 127.0.0.1 where nothing listens (it was just released).
    async fn closed_port() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn http_2xx_and_3xx_succeed_and_send_host_and_path() {
        let (addr, server) =
            serve_once(Some("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")).await;
        http_get(&format!("http://{addr}/healthz?deep=1#frag"), PATIENCE)
            .await
            .unwrap();
        let head = server.await.unwrap();
        assert!(
            head.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("host: {addr}\r\n")),
            "{head}"
        );

        let (addr, _server) = serve_once(Some(
            "HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n",
        ))
        .await;
        http_get(&format!("http://{addr}"), PATIENCE).await.unwrap();
    }

    #[tokio::test]
    async fn http_resolves_a_name() {
        let (addr, _server) = serve_once(Some("HTTP/1.1 204 No Content\r\n\r\n")).await;
        let port = addr.rsplit_once(':').unwrap().1;
        // localhost may resolve to ::1 first, where nothing listens: the next address is tried.
        http_get(&format!("http://localhost:{port}/"), PATIENCE)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn http_other_status_is_an_error_naming_it() {
        let (addr, _server) = serve_once(Some(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
        ))
        .await;
        let url = format!("http://{addr}/healthz");
        let err = http_get(&url, PATIENCE).await.unwrap_err();
        assert_eq!(err, format!("GET {url}: 503 Service Unavailable"));
    }

    #[tokio::test]
    async fn http_silent_server_times_out() {
        let (addr, _server) = serve_once(None).await;
        let url = format!("http://{addr}/");
        let err = http_get(&url, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(err, format!("GET {url}: no answer within 300ms"));
    }

    #[tokio::test]
    async fn http_refused_and_not_http() {
        let url = format!("http://127.0.0.1:{}/healthz", closed_port().await);
        let err = http_get(&url, PATIENCE).await.unwrap_err();
        assert_eq!(err, format!("GET {url}: connection refused"));

        let (addr, _server) = serve_once(Some("SSH-2.0-OpenSSH\r\n\r\n")).await;
        let err = http_get(&format!("http://{addr}/"), PATIENCE)
            .await
            .unwrap_err();
        assert!(err.contains("the answer is not HTTP"), "{err}");
    }

    #[tokio::test]
    async fn http_bad_urls_are_refused_before_any_connect() {
        let err = http_get("https://127.0.0.1:1/", PATIENCE)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("GET https://127.0.0.1:1/: https is not supported"),
            "{err}"
        );
        for bad in [
            "127.0.0.1:80/x",
            "ftp://host/",
            "http://",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://::1/",
            "http://[::1/",
            "http://[nope]:80/",
            "http://user:pw@host/",
            "http://ho st/",
            "http://host/a b",
        ] {
            let err = check_http_url(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid URL \"{bad}\": ")),
                "{err}"
            );
        }
        for good in [
            "http://127.0.0.1:8080/healthz",
            "HTTP://localhost/",
            "http://[::1]:8080",
            "http://[::1]",
            "http://db.internal_1:80/?q=1",
        ] {
            check_http_url(good).unwrap();
        }
        let t = parse_http_url("http://[::1]/x?y").unwrap();
        assert_eq!(t.endpoint.to_string(), "[::1]:80");
        assert_eq!(t.host_header, "[::1]");
        assert_eq!(t.path.as_str(), "/x?y");
    }

    #[tokio::test]
    async fn tcp_to_listening_and_closed_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap().to_string();
        tcp_connect(&target, PATIENCE).await.unwrap();

        let target = format!("127.0.0.1:{}", closed_port().await);
        let err = tcp_connect(&target, PATIENCE).await.unwrap_err();
        assert_eq!(err, format!("connect {target}: connection refused"));
    }

    /// `localhost` is loopback without a look-up, on either family.
    #[tokio::test]
    async fn tcp_to_localhost() {
        let listener = TcpListener::bind("[::1]:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tcp_connect(&format!("localhost:{port}"), PATIENCE)
            .await
            .unwrap();
        drop(listener);
        let target = format!("localhost:{}", closed_port().await);
        let err = tcp_connect(&target, PATIENCE).await.unwrap_err();
        assert_eq!(err, format!("connect {target}: connection refused"));
    }

    #[tokio::test]
    async fn tcp_to_a_unix_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sock");
        let target = format!("unix:{}", path.display());
        let err = tcp_connect(&target, PATIENCE).await.unwrap_err();
        assert_eq!(err, format!("connect {target}: no such file"));

        let _listener = tokio::net::UnixListener::bind(&path).unwrap();
        tcp_connect(&target, PATIENCE).await.unwrap();
    }

    #[test]
    fn tcp_targets_checked() {
        for good in [
            "127.0.0.1:5432",
            "[::1]:5432",
            "db:5432",
            "unix:/run/db.sock",
        ] {
            check_tcp_target(good).unwrap();
        }
        let long = format!("unix:/{}", "a".repeat(200));
        for bad in [
            "db",
            "db:",
            ":5432",
            "::1:5432",
            "unix:db.sock",
            &long,
            "db:65536",
        ] {
            let err = check_tcp_target(bad).unwrap_err();
            assert!(
                err.starts_with(&format!("invalid target \"{bad}\": ")),
                "{err}"
            );
        }
    }

    fn matcher(pattern: &str) -> LineMatcher {
        LineMatcher::new(check_log_regex(pattern).unwrap())
    }

    #[test]
    fn lines_split_across_chunks_match_once_complete() {
        let mut m = matcher("^listening on :[0-9]+$");
        assert!(!m.feed(b"starting\nlisten"));
        assert!(!m.feed(b"ing on :80"));
        assert!(m.feed(b"80\r\nmore"));
        assert!(!m.feed(b" output\n"));
        assert!(!m.feed(b"listening on :1 and more\n"));
    }

    #[test]
    fn crlf_and_invalid_utf8() {
        let mut m = matcher("^ready$");
        assert!(m.feed(b"ready\r\n"));
        let mut m = matcher("^r.ady$");
        assert!(m.feed(b"r\xffady\n"));
    }

    #[test]
    fn a_line_over_64k_is_matched_in_pieces() {
        let mut m = matcher("^x+$");
        // Exactly MAX_LINE bytes, then its newline in the next chunk: one line, no empty one.
        let full = vec![b'x'; MAX_LINE];
        assert!(!m.feed(&full));
        assert!(m.feed(b"\n"));
        assert!(m.partial.is_empty());

        let mut m = matcher("^y+$");
        let mut long = vec![b'x'; MAX_LINE];
        long.extend_from_slice(b"yyy");
        // The first MAX_LINE bytes become a line once a byte past them arrives.
        assert!(!m.feed(&long));
        assert_eq!(m.partial, b"yyy");
        assert!(m.feed(b"y\n"));

        let mut m = matcher("^xx");
        assert!(m.feed(&vec![b'x'; MAX_LINE + 1]));
    }

    #[test]
    fn log_regex_errors_quote_the_reason() {
        let err = check_log_regex("(ready").unwrap_err();
        assert_eq!(err, "invalid log regex \"(ready\": unclosed group");
        assert!(check_log_regex("").is_err());
    }

    #[test]
    fn notify_messages_parse() {
        let m = NotifyMessage::parse(
            7,
            b"READY=1\nSTATUS=serving\x1b[31m\nMAINPID=42\nX_UNKNOWN=1\nnonsense\n",
        );
        assert_eq!(
            m,
            NotifyMessage {
                pid: 7,
                ready: true,
                status: Some("serving [31m".into()),
                main_pid: Some(42),
                ..NotifyMessage::default()
            }
        );
        let m = NotifyMessage::parse(7, b"STOPPING=1\nREADY=0\nSTATUS=\nMAINPID=0");
        assert!(m.stopping && !m.ready);
        assert_eq!(m.status.as_deref(), Some(""));
        assert_eq!(m.main_pid, None);
    }

    async fn recv_in_time(socket: &NotifySocket) -> NotifyMessage {
        tokio::time::timeout(PATIENCE, socket.recv())
            .await
            .expect("a notification in time")
            .unwrap()
    }

    #[tokio::test]
    async fn notify_from_a_child_carries_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = NotifySocket::bind(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let mut child = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import socket, sys\n\
                 s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                 s.sendto(b'READY=1\\nSTATUS=x', sys.argv[1])\n",
            )
            .arg(&path)
            .spawn()
            .unwrap();
        let child_pid = child.id();
        let message = recv_in_time(&socket).await;
        // Reaped only after the receive, so its pid cannot be reused meanwhile.
        let status = tokio::task::spawn_blocking(move || child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success());
        assert_eq!(message.pid, child_pid);
        assert!(message.ready);
        assert_eq!(message.status.as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn notify_from_this_process_and_oversized_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = NotifySocket::bind(&path).unwrap();
        let sender = std::os::unix::net::UnixDatagram::unbound().unwrap();
        sender.send_to(&vec![b'a'; MAX_NOTIFY + 1], &path).unwrap();
        sender.send_to(b"STOPPING=1\n", &path).unwrap();
        let message = recv_in_time(&socket).await;
        assert_eq!(message.pid, std::process::id());
        assert!(message.stopping && !message.ready);
    }

    #[tokio::test]
    async fn notify_socket_replaces_stale_files_and_links_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");

        // A socket left by a previous run.
        drop(std::os::unix::net::UnixDatagram::bind(&path).unwrap());
        let socket = NotifySocket::bind(&path).unwrap();
        assert_eq!(socket.path(), path);
        drop(socket);
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "drop removes the file"
        );

        // A link: removed itself, its target untouched.
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let socket = NotifySocket::bind(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket());
        drop(socket);

        // Any other file is not ours to remove.
        std::fs::write(&path, "data").unwrap();
        let err = NotifySocket::bind(&path).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }
}
