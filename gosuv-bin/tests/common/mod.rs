//! Shared helpers of the binary's tests: a temp dir with a config, the real `gosuv` binary,
//! a raw HTTP client (to send what the CLI never would), and a guard that always stops the
//! server a test started.

#![allow(dead_code)]

pub mod tmux;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_gosuv");

/// Settings a test's config.yml differs in.
#[derive(Clone, Debug, Default)]
pub struct Setup {
    /// Serve HTTP on this loopback port.
    pub http_port: Option<u16>,
    /// Turn the unix socket off.
    pub no_unix: bool,
    /// Require basic auth with admin / secret.
    pub auth: bool,
    /// The client talks HTTP instead of the socket.
    pub client_http: bool,
    /// The ipfile's text.
    pub ipfile: Option<String>,
    /// The HTTP address, when not 127.0.0.1:port.
    pub http_addr: Option<String>,
    /// More keys of `server.unixserver` (YAML lines indented by four spaces).
    pub unix_extra: Option<String>,
}

/// A temp dir with config.yml (and programs.yml when given).
pub struct Env {
    pub dir: tempfile::TempDir,
    pub setup: Setup,
}

impl Env {
    pub fn new(setup: Setup) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("gs")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let env = Env { dir, setup };
        env.write_config();
        env
    }

    /// An env with the default unix-socket config.
    pub fn unix() -> Env {
        Env::new(Setup::default())
    }

    /// An env serving HTTP on a free port (and the socket), the client on HTTP.
    pub fn http(auth: bool) -> Env {
        Env::new(Setup {
            http_port: Some(free_port()),
            auth,
            client_http: true,
            ..Setup::default()
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn conf(&self) -> PathBuf {
        self.path("config.yml")
    }

    pub fn write_config(&self) {
        let s = &self.setup;
        let port = s.http_port.unwrap_or(1);
        let addr = s
            .http_addr
            .clone()
            .unwrap_or_else(|| format!("127.0.0.1:{port}"));
        let url = if s.client_http {
            format!("http://127.0.0.1:{port}")
        } else {
            "unix://.gosuv.sock".into()
        };
        let ipfile = if let Some(text) = &s.ipfile {
            std::fs::write(self.path("allow.txt"), text).unwrap();
            "allow.txt"
        } else {
            ""
        };
        let unix_extra = s.unix_extra.as_deref().unwrap_or("");
        let text = format!(
            "server:\n  httpserver:\n    enabled: {}\n    addr: \"{addr}\"\n  unixserver:\n    enabled: {}\n    sockfile: .gosuv.sock\n{unix_extra}  auth:\n    enabled: {}\n    username: admin\n    password: secret\n    ipfile: \"{ipfile}\"\n  log:\n    level: debug\nclient:\n  server_url: \"{url}\"\n  username: admin\n  password: secret\n",
            s.http_port.is_some() || s.http_addr.is_some(),
            !s.no_unix,
            s.auth,
        );
        std::fs::write(self.conf(), text).unwrap();
        let mut perm = std::fs::metadata(self.conf()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o600);
        std::fs::set_permissions(self.conf(), perm).unwrap();
    }

    pub fn programs(&self, yaml: &str) {
        std::fs::write(self.path("programs.yml"), yaml).unwrap();
    }

    /// Runs `gosuv -c config.yml ARGS` in the env's dir.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run gosuv")
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.current_dir(self.dir.path())
            .arg("-c")
            .arg(self.conf())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gosuv {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.server_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs and asserts exit code 1; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "gosuv {args:?} should fail:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// The whole of gosuv.log (for a search: [`Env::server_log`] is its end only).
    pub fn server_log_all(&self) -> String {
        std::fs::read_to_string(self.path("logs/gosuv.log")).unwrap_or_default()
    }

    pub fn server_log(&self) -> String {
        let text = std::fs::read_to_string(self.path("logs/gosuv.log")).unwrap_or_default();
        let start = text.len().saturating_sub(3000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("--- gosuv.log (end) ---\n{}", &text[start..])
    }

    /// Starts the server in the background (the real `start-server`) and returns a guard.
    pub fn start(&self) -> Server<'_> {
        let out = self.ok(&["start-server"]);
        assert!(out.contains("server started, listening"), "{out}");
        Server { env: self }
    }

    pub fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path(".gosuv.pid"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    pub fn sock(&self) -> PathBuf {
        self.path(".gosuv.sock")
    }

    /// A raw request over the socket.
    pub fn unix_req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut s = UnixStream::connect(self.sock()).expect("connect socket");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        raw(&mut s, "localhost", method, path, headers, body)
    }

    /// A JSON request over the socket with the headers the CLI sends (the credentials too,
    /// when the env has auth on).
    pub fn api(&self, method: &str, path: &str, body: &str) -> Resp {
        let auth = admin();
        let mut headers = vec![("Content-Type", "application/json")];
        if self.setup.auth {
            headers.push(("Authorization", auth.as_str()));
        }
        self.unix_req(method, path, &headers, body)
    }

    /// A raw request over HTTP.
    pub fn http_req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let port = self.setup.http_port.expect("http port");
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect http");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        raw(
            &mut s,
            &format!("127.0.0.1:{port}"),
            method,
            path,
            headers,
            body,
        )
    }

    /// Waits until a program is in `state`.
    pub fn wait_state(&self, name: &str, state: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let r = self.api("GET", &format!("/api/programs/{name}"), "");
            if r.status == 200 && r.json()["state"] == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {state}: {}",
                r.body
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The `Authorization` header of basic auth.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// The `Authorization` header for the credentials every test config has (admin / secret).
pub fn admin() -> String {
    basic("admin", "secret")
}

/// Runs a command as the user `nobody` (another local user than the root the tests run
/// as), with no supplementary groups.
pub fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run setpriv")
}

/// The uid of `nobody`.
pub fn nobody_uid() -> u32 {
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The server a test started: shut down on drop (killed if that fails), whatever happened.
pub struct Server<'a> {
    pub env: &'a Env,
}

impl Server<'_> {
    /// Stops it now (gracefully) and checks it went.
    pub fn shutdown(self) {
        let out = self.env.ok(&["shutdown"]);
        assert!(out.contains("server stopped"), "{out}");
        std::mem::forget(self);
    }
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        stop_server(self.env);
    }
}

/// Shuts the env's server down, or kills it if it does not go within seconds.
pub fn stop_server(env: &Env) {
    let pid = env.pid();
    let mut child = match env
        .command(&["shutdown"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
        }
    }
    if let Some(pid) = pid {
        if Path::new(&format!("/proc/{pid}")).exists() && env.path(".gosuv.pid").exists() {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// Sends a signal to a pid.
pub fn signal(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    unsafe { libc::kill(pid, sig) };
}

/// A free loopback TCP port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` message of an error answer.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

pub fn raw<S: Read + Write>(
    s: &mut S,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            out.push_str(&rest[..n.min(rest.len())]);
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Polls `f` until it returns true, up to `secs` seconds.
pub fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a process exists and can still run: not a zombie, and not exiting (`PF_EXITING`:
/// the kernel takes an exiting process out of its cgroup a moment before it becomes a
/// zombie, while `/proc` still says `R` or `D`).
pub fn alive(pid: i32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(s) = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
    else {
        return false;
    };
    let Some((_, rest)) = s.rsplit_once(')') else {
        return false;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state = f.first().and_then(|s| s.chars().next());
    let flags = f.get(6).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    !matches!(state, None | Some('Z' | 'X' | 'x')) && flags & PF_EXITING == 0
}

/// What `/proc/<pid>/stat` says of a process: state, ppid, process group, session, start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub pgrp: i32,
    pub session: i32,
    pub start_time: u64,
}

pub fn stat(pid: i32) -> Option<Stat> {
    let text = std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        pgrp: f.get(2)?.parse().ok()?,
        session: f.get(3)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// Every pid in /proc.
pub fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// The environment variable tests put in their programs' `environ` to find them in /proc.
pub const MARK_VAR: &str = "GOSUV_TEST_MARK";

/// Live (non-zombie) processes whose environment has `GOSUV_TEST_MARK=<mark>`: (pid, stat).
pub fn marked(mark: &str) -> Vec<(i32, Stat)> {
    let needle = format!("{MARK_VAR}={mark}");
    all_pids()
        .into_iter()
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|kv| kv == needle.as_bytes())
                .then_some(())?;
            let st = stat(pid)?;
            (st.state != 'Z' && st.state != 'X').then_some((pid, st))
        })
        .collect()
}

/// The process groups running each marked program, by program (its `PROGRAM` variable, as
/// the tests set it), counted from /proc.
pub fn groups_by_program(mark: &str) -> std::collections::BTreeMap<String, Vec<i32>> {
    let mut out: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for (pid, st) in marked(mark) {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let name = env
            .split(|b| *b == 0)
            .find_map(|kv| kv.strip_prefix(b"PROGRAM="))
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .unwrap_or_default();
        let groups = out.entry(name).or_default();
        if !groups.contains(&st.pgrp) {
            groups.push(st.pgrp);
        }
    }
    out
}

/// Kills (SIGKILL) every process marked with its mark when dropped, so a failing test that
/// left programs without a server does not leave them running.
pub struct KillMarked(pub String);

impl Drop for KillMarked {
    fn drop(&mut self) {
        for (pid, _) in marked(&self.0) {
            signal(pid, libc::SIGKILL);
        }
    }
}

/// Children of `pid` that are zombies.
pub fn zombie_children(pid: i32) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|p| stat(*p).is_some_and(|s| s.ppid == pid && s.state == 'Z'))
        .collect()
}

/// Open descriptors of a process.
pub fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Resident memory of a process in bytes (VmRSS).
pub fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time (user + system) a process has used, in clock ticks.
pub fn cpu_ticks(pid: i32) -> u64 {
    std::fs::read(format!("/proc/{pid}/stat"))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .ok()
        .and_then(|t| {
            let (_, rest) = t.rsplit_once(')')?;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// Clock ticks per second.
pub fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf reads a constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Makes `path` a device that is always full (what /dev/full is: character device 1,7),
/// not a link to it (gosuv follows no link). Needs the right to make devices (root); says
/// so and returns false where it is missing.
pub fn full_device(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    // SAFETY: mknod with a NUL-terminated path; makes a device node or fails.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 7)) };
    if r != 0 {
        eprintln!(
            "SKIPPED the disk-full part: cannot make a full device at {} ({})",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    r == 0
}

/// The `Authorization` header of the user every test config has (admin / secret).
pub const ADMIN_AUTH: &str = "Basic YWRtaW46c2VjcmV0";

/// A TCP connection to `127.0.0.1:port` from the loopback address `from` (127.0.0.2 and so
/// on: any 127/8 address is this machine's), so that the server sees another client than
/// 127.0.0.1. Fails after `timeout` if the server does not take the connection.
pub fn connect_from(
    from: std::net::Ipv4Addr,
    port: u16,
    timeout: Duration,
) -> std::io::Result<std::net::TcpStream> {
    connect_from_with_buffer(from, port, timeout, None)
}

/// [`connect_from`], with the socket's receive buffer set to `rcvbuf` bytes (the kernel
/// doubles it) instead of growing on its own: a client that never reads then holds little.
pub fn connect_from_with_buffer(
    from: std::net::Ipv4Addr,
    port: u16,
    timeout: Duration,
    rcvbuf: Option<i32>,
) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: a plain socket(2); the descriptor is owned by the TcpStream from here on.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket nobody else owns.
    let stream = unsafe { std::net::TcpStream::from_raw_fd(fd) };
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(from).to_be(),
        },
        sin_zero: [0; 8],
    };
    if let Some(size) = rcvbuf {
        // SAFETY: setsockopt(2) with an int of the right size.
        let r = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                std::ptr::addr_of!(size).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // SAFETY: bind(2) with a sockaddr_in of the right size.
    let r = unsafe {
        libc::bind(
            stream.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // connect_timeout needs a socket it makes itself: connect a bound one without blocking,
    // then wait for it to be writable.
    stream.set_nonblocking(true)?;
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: connect(2) with a sockaddr_in of the right size.
    let r = unsafe {
        libc::connect(
            stream.as_raw_fd(),
            std::ptr::addr_of!(to).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll(2) on one pollfd we own.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ));
        }
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// curl's arguments that print only the status of the answer (within 20 s).
pub const CURL_STATUS: [&str; 7] = [
    "-sS",
    "--max-time",
    "20",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
];

/// A curl command line (`curl`, then [`CURL_STATUS`], then `args`) that prints only the
/// status of the answer.
pub fn curl_args<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["curl"];
    all.extend(CURL_STATUS);
    all.extend_from_slice(args);
    all
}

/// The HTTP status curl gets with `args` (the URL among them), as text.
pub fn curl_status(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(CURL_STATUS)
        .args(args)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A live `GET /api/events` stream on the env's socket.
pub struct EventStream {
    reader: std::io::BufReader<UnixStream>,
}

impl Env {
    /// Opens `/api/events`; the subscription exists once this returns (its head was read).
    pub fn events(&self) -> EventStream {
        let mut s = UnixStream::connect(self.sock()).expect("connect socket");
        let auth = if self.setup.auth {
            format!("Authorization: {}\r\n", admin())
        } else {
            String::new()
        };
        s.write_all(
            format!("GET /api/events HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n").as_bytes(),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut reader = std::io::BufReader::new(s);
        let mut line = String::new();
        loop {
            line.clear();
            let n = std::io::BufRead::read_line(&mut reader, &mut line).expect("event stream head");
            assert!(n > 0, "the event stream ended before its head");
            if line == "\r\n" {
                return EventStream { reader };
            }
        }
    }
}

impl EventStream {
    /// The next `state` event (its JSON) that `accept` takes, within `secs`; every event
    /// read before it is skipped.
    pub fn next_matching(
        &mut self,
        secs: u64,
        what: &str,
        mut accept: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        let mut line = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no event {what} within {secs}s; saw {seen:?}"
            );
            self.reader.get_ref().set_read_timeout(Some(left)).unwrap();
            line.clear();
            match std::io::BufRead::read_line(&mut self.reader, &mut line) {
                Ok(0) => panic!("the event stream ended before an event {what}; saw {seen:?}"),
                Ok(_) => {}
                Err(e) => panic!("no event {what} within {secs}s ({e}); saw {seen:?}"),
            }
            // Chunked framing and SSE fields: only `data:` lines carry an event.
            let Some(data) = line.trim_end().strip_prefix("data: ") else {
                continue;
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(data) else {
                continue;
            };
            if accept(&v) {
                return v;
            }
            seen.push(v);
        }
    }
}
