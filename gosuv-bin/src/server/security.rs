//! Who may use the API. [`guard`], one middleware in front of every route: the allow-list,
//! then basic auth, then the cross-site checks (a foreign `Origin`; over HTTP, a POST or PUT
//! with neither a JSON content type nor `X-Gosuv: 1`). [`PeerChecked`], in front of the unix
//! socket's connections: the peer's user (`SO_PEERCRED`), whatever the socket's file mode.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;

/// How a request arrived: the unix socket has no peer address, and is protected by its
/// file mode instead of the allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// The unix socket.
    Unix,
    /// HTTP over TCP (the peer address comes from `ConnectInfo<SocketAddr>`).
    Tcp,
}

/// Who made a request, for the server log.
#[derive(Clone, Debug)]
pub struct Caller {
    /// `unix` or the peer's address.
    pub peer: String,
    /// The authenticated user, when auth is on.
    pub user: Option<String>,
}

/// The allow-list of `server.auth.ipfile`.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// Parses the file's text: one IP or CIDR a line; blank lines and `#` comments are
    /// skipped.
    ///
    /// # Errors
    /// Every bad line, with its number.
    pub fn parse(text: &str, file: &Path) -> Result<Self, String> {
        let mut nets = Vec::new();
        let mut errors = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if let Ok(net) = line.parse::<IpNet>() {
                nets.push(canonical_net(net));
            } else if let Ok(ip) = line.parse::<IpAddr>() {
                nets.push(canonical_net(IpNet::from(ip)));
            } else {
                errors.push(format!(
                    "{}:{}: '{line}' is not an IP address or CIDR (10.0.0.0/8)",
                    file.display(),
                    i + 1
                ));
            }
        }
        if errors.is_empty() {
            Ok(AllowList { nets })
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Reads and parses the file.
    ///
    /// # Errors
    /// The file cannot be read, or as [`AllowList::parse`].
    pub fn load(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read the ipfile {}: {e}", file.display()))?;
        Self::parse(&text, file)
    }

    /// Whether `ip` is allowed. IPv4-mapped IPv6 addresses count as IPv4, in the list and
    /// in `ip` alike: a peer of a dual-stack listener (`[::]`) that connected over IPv4 is
    /// `::ffff:a.b.c.d`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

/// An entry in the IPv4-mapped range (`::ffff:a.b.c.d`, `::ffff:a.b.0.0/112`) as the IPv4
/// address or network it maps; any other entry as it is.
fn canonical_net(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else { return net };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(v4), Some(prefix)) => ipnet::Ipv4Net::new(v4, prefix)
            .map(IpNet::V4)
            .unwrap_or(net),
        _ => net,
    }
}

/// The security settings the middleware applies.
#[derive(Clone, Debug, Default)]
pub struct Security {
    /// `Some((user, password))` when basic auth is required.
    pub credentials: Option<(String, String)>,
    /// The allow-list for TCP peers, when there is one.
    pub allow: Option<AllowList>,
}

impl Security {
    /// The settings of `server.auth`.
    ///
    /// # Errors
    /// The ipfile cannot be read or has a bad line.
    pub fn from_config(auth: &gosuv::config::AuthConfig) -> Result<Self, String> {
        let allow = match &auth.ipfile {
            Some(f) => Some(AllowList::load(f)?),
            None => None,
        };
        Ok(Security {
            credentials: auth
                .enabled
                .then(|| (auth.username.clone(), auth.password.clone())),
            allow,
        })
    }

    fn check_auth(&self, headers: &HeaderMap) -> Result<Option<String>, AuthFailure> {
        let Some((user, password)) = &self.credentials else {
            return Ok(None);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(basic_token)
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|raw| String::from_utf8(raw).ok());
        let (given_user, given_pass) = given
            .as_deref()
            .and_then(|g| g.split_once(':'))
            .unwrap_or(("", ""));
        // Both are compared whatever the first gives (`&`, not `&&`): the time taken does
        // not tell a right user name from a wrong one.
        let ok = secret_eq(given_user.as_bytes(), user.as_bytes())
            & secret_eq(given_pass.as_bytes(), password.as_bytes());
        if bool::from(ok) && given.is_some() {
            Ok(Some(user.clone()))
        } else {
            Err(AuthFailure {
                sent: given.is_some(),
                user: given_user.chars().take(64).collect(),
            })
        }
    }
}

/// The token of an `Authorization: Basic <token>` value. The scheme is compared without
/// regard to case (RFC 7235: `BASIC`, `basic`), and any spaces may follow it.
fn basic_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("basic")
        .then(|| token.trim_matches([' ', '\t']))
}

/// Compares a secret with what a client sent in time that depends only on the lengths of
/// both, never on where they first differ: every byte of `expected` is looked at, and the
/// differences are folded with [`subtle`]'s constant-time operations. (`ct_eq` on slices
/// returns early when the lengths differ; here a length mismatch is folded in as well.)
pub fn secret_eq(given: &[u8], expected: &[u8]) -> subtle::Choice {
    let mut same = given.len().ct_eq(&expected.len());
    for (i, e) in expected.iter().enumerate() {
        // A shorter input is compared against zeros; its length already made it unequal.
        let g = given.get(i).copied().unwrap_or(0);
        same &= g.ct_eq(e);
    }
    same
}

/// Why a request was refused by basic auth: the same answer in every case (401 with the
/// same body), but the server log tells a missing header from a wrong password.
#[derive(Debug)]
pub struct AuthFailure {
    /// Credentials were sent (and were wrong).
    pub sent: bool,
    /// The user name sent (cut to 64 characters), for the log.
    pub user: String,
}

/// The one answer to a request without the right credentials.
fn unauthorized() -> Response {
    // Closed after: a client without the password keeps no connection (it could otherwise
    // hold its share of them by asking again and again).
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication required: send the user and password of server.auth (basic auth)",
    )
    .closing()
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"gosuv\", charset=\"UTF-8\""),
    );
    resp
}

/// A budget of log lines for something a client can repeat at will (a failed login, a
/// refused connection): up to [`LogBudget::BURST`] lines a second; past that, events are
/// counted, and the count goes with the next line logged, so a flood is on record without
/// filling the disk.
#[derive(Debug, Default)]
pub struct LogBudget {
    window: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

/// What [`LogBudget::take`] allows for one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Budget {
    /// Log it, with the number of events counted but not logged since the last line.
    Log {
        /// Events not logged one by one before this one.
        unlogged: u64,
    },
    /// The first event over the budget this second: log that the next ones are counted.
    Exhausted,
    /// Counted only.
    Counted,
}

impl LogBudget {
    /// Lines a second before events are only counted.
    pub const BURST: u32 = 20;

    /// Spends the budget on one event.
    pub fn take(&self) -> Budget {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let (start, logged, suppressed) = &mut *w;
        if start.is_none_or(|s| now.duration_since(s).as_secs() >= 1) {
            *start = Some(now);
            *logged = 0;
        }
        if *logged >= Self::BURST {
            *suppressed += 1;
            return if *suppressed == 1 {
                Budget::Exhausted
            } else {
                Budget::Counted
            };
        }
        *logged += 1;
        Budget::Log {
            unlogged: std::mem::take(suppressed),
        }
    }
}

/// Failed logins, for the server log, within a [`LogBudget`].
#[derive(Debug, Default)]
pub struct FailedLogins {
    budget: LogBudget,
}

impl FailedLogins {
    /// Lines a second before failures are only counted.
    pub const BURST: u32 = LogBudget::BURST;

    /// Records a failed login from `peer` for `path`.
    pub fn record(&self, peer: &str, failure: &AuthFailure, method: &Method, path: &str) {
        let more = match self.budget.take() {
            Budget::Log { unlogged } => unlogged,
            Budget::Exhausted => {
                tracing::warn!(peer = %peer, "more than {} failed logins in a second (a brute force?): the next ones are counted, and the count is logged with the next failed login", Self::BURST);
                return;
            }
            Budget::Counted => return,
        };
        let what = if failure.sent {
            "wrong user or password"
        } else {
            "no credentials"
        };
        if more > 0 {
            tracing::warn!(peer = %peer, user = %failure.user, "failed login ({what}): {method} {path}; {more} more failed logins were not logged one by one");
        } else {
            tracing::warn!(peer = %peer, user = %failure.user, "failed login ({what}): {method} {path}");
        }
    }
}

/// Whether `origin` names the same host as `host` (the `Host` header).
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    rest.is_some_and(|r| r.trim_end_matches('/').eq_ignore_ascii_case(host))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether the header `X-Gosuv: 1` was sent: a page of another site cannot send a custom
/// header without a CORS preflight, which gosuv never answers.
fn has_x_gosuv(headers: &HeaderMap) -> bool {
    headers
        .get("x-gosuv")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

/// Whether a request with this method could come from a page of another site if its
/// content type were not checked: anything but GET, HEAD, OPTIONS (which change nothing) and
/// DELETE (which no page can send without a CORS preflight, and gosuv answers none).
fn could_be_forged(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::DELETE
    )
}

/// The middleware in front of every route.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let transport = req.extensions().get::<Transport>().copied();
    let peer = req
        .extensions()
        .get::<ConnectInfo<super::listener::PeerAddr>>()
        .map(|c| c.0 .0)
        .or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
    let security = state.security();
    // The allow-list comes first: a refused address learns nothing, not even that auth exists.
    let peer_text = match (transport, peer) {
        (Some(Transport::Unix), _) => "unix".to_string(),
        (_, Some(addr)) => {
            if let Some(allow) = &security.allow {
                if !allow.allows(addr.ip()) {
                    tracing::warn!(peer = %addr, "refused by the ipfile allow-list: {} {}", req.method(), req.uri().path());
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "{} is not in the allow-list (server.auth.ipfile)",
                            addr.ip()
                        ),
                    )
                    .closing()
                    .into_response();
                }
            }
            addr.to_string()
        }
        (_, None) => {
            if security.allow.is_some() {
                return ApiError::new(
                    StatusCode::FORBIDDEN,
                    "the peer address is unknown and an allow-list is set",
                )
                .into_response();
            }
            "unknown".to_string()
        }
    };
    // A container's liveness and readiness probes: no auth, and they say nothing but that
    // the server serves and which programs are not ready.
    if req.method() == axum::http::Method::GET && matches!(req.uri().path(), "/healthz" | "/readyz")
    {
        return next.run(req).await;
    }
    // The page's icon: browsers may fetch it without the page's credentials; it says nothing.
    if matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) && req.uri().path() == "/favicon.ico"
    {
        return next.run(req).await;
    }
    let user = match security.check_auth(req.headers()) {
        Ok(u) => u,
        Err(failure) => {
            state
                .failed_logins()
                .record(&peer_text, &failure, req.method(), req.uri().path());
            return unauthorized();
        }
    };
    if transport == Some(Transport::Tcp) && security.credentials.is_none() {
        // The server does not start so (every local user can reach even 127.0.0.1); this is
        // the second line of that rule, for a state built by other code.
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "the API over HTTP needs server.auth: enable it with a password and restart gosuv",
        )
        .into_response();
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        let origin = origin.to_str().unwrap_or("null");
        if !same_origin(origin, host) {
            tracing::warn!(peer = %peer_text, origin, "refused a cross-site request: {} {}", req.method(), req.uri().path());
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "requests from {origin} are refused: gosuv's API answers its own page only"
                ),
            )
            .closing()
            .into_response();
        }
    }
    // A body announced larger than any route accepts is refused before a byte of it is read.
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > super::api::BODY_LIMIT as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            super::request::too_large_message(),
        )
        .into_response();
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if transport != Some(Transport::Unix)
        && could_be_forged(req.method())
        && !is_json(req.headers())
        && !has_x_gosuv(req.headers())
    {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change state over HTTP must send Content-Type: application/json or the header X-Gosuv: 1 (a page of another site can send neither)",
        )
        .into_response();
    }
    let caller = Caller {
        peer: peer_text,
        user,
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    if changes_state {
        tracing::info!(
            peer = %caller.peer,
            user = caller.user.as_deref().unwrap_or("-"),
            status = resp.status().as_u16(),
            "api {method} {path}"
        );
    }
    resp
}

/// Who may use the unix socket: the server's own user and root, and the users and groups of
/// `server.unixserver.allow_uids` / `allow_gids`. The socket is made 0600, but its mode is not
/// the only gate: a mode widened by hand, or a socket made in a directory others can reach
/// with a looser mode, must not open the API to every local user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerPolicy {
    /// The server's effective uid.
    pub own_uid: u32,
    /// More users allowed.
    pub allow_uids: Vec<u32>,
    /// Groups allowed (a peer's primary group, as `SO_PEERCRED` reports it).
    pub allow_gids: Vec<u32>,
}

impl PeerPolicy {
    /// The policy of config.yml for a server running as this process's user.
    pub fn from_config(config: &gosuv::ServerConfig) -> Self {
        PeerPolicy {
            own_uid: nix::unistd::geteuid().as_raw(),
            allow_uids: config.server.unixserver.allow_uids.clone(),
            allow_gids: config.server.unixserver.allow_gids.clone(),
        }
    }

    /// Whether a peer with these credentials may use the API.
    pub fn admits(&self, uid: u32, gid: u32) -> bool {
        uid == self.own_uid
            || uid == 0
            || self.allow_uids.contains(&uid)
            || self.allow_gids.contains(&gid)
    }
}

/// Why a connection on the unix socket was refused.
#[derive(Debug)]
pub struct PeerRefusal {
    /// The peer's credentials, when they could be read: (uid, gid, pid).
    pub peer: Option<(u32, u32, Option<i32>)>,
    /// The message of the 403 answer.
    pub message: String,
}

/// Checks the credentials of a peer of the unix socket (`SO_PEERCRED`: the uid and gid of
/// the process that connected, as they were when it connected).
///
/// # Errors
/// The peer is not admitted by `policy`, or its credentials cannot be read (then nobody is
/// admitted: a check that cannot be made fails closed).
pub fn check_peer(stream: &tokio::net::UnixStream, policy: &PeerPolicy) -> Result<(), PeerRefusal> {
    let cred = stream.peer_cred().map_err(|e| PeerRefusal {
        peer: None,
        message: format!("the peer's credentials cannot be read ({e})"),
    })?;
    let (uid, gid) = (cred.uid(), cred.gid());
    if policy.admits(uid, gid) {
        return Ok(());
    }
    Err(PeerRefusal {
        peer: Some((uid, gid, cred.pid())),
        message: format!(
            "uid {uid} (gid {gid}) may not use this socket: only the server's user (uid {}) and \
             root may; to let others in on purpose, list them in server.unixserver.allow_uids or \
             allow_gids of config.yml",
            policy.own_uid
        ),
    })
}

/// How many refused connections are answered at once; past that, new refused ones are
/// closed without an answer (a refused user cannot hold the server's descriptors).
const MAX_REFUSALS: usize = 16;

/// The unix socket's listener with [`check_peer`] on every connection it accepts: a refused
/// peer is answered 403 (with a JSON `error`) on a connection of its own and never reaches
/// the API; only admitted connections are handed on.
#[derive(Debug)]
pub struct PeerChecked {
    inner: tokio::net::UnixListener,
    policy: Arc<PeerPolicy>,
    refusals: Arc<tokio::sync::Semaphore>,
    log: LogBudget,
}

impl PeerChecked {
    /// Checks the peers of `inner` against `policy`.
    pub fn new(inner: tokio::net::UnixListener, policy: PeerPolicy) -> Self {
        PeerChecked {
            inner,
            policy: Arc::new(policy),
            refusals: Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS)),
            log: LogBudget::default(),
        }
    }

    /// Logs a refused connection (within the log budget), answers it 403 and closes it,
    /// within the head deadline.
    fn refuse(&self, stream: tokio::net::UnixStream, why: PeerRefusal) {
        match (self.log.take(), why.peer) {
            (Budget::Log { unlogged }, Some((uid, gid, pid))) => {
                let pid = pid.map_or("?".to_string(), |p| p.to_string());
                tracing::warn!(uid, gid, pid = %pid, unlogged, "refused a connection on the unix socket: not the server's user, root, or in allow_uids/allow_gids");
            }
            (Budget::Log { unlogged }, None) => {
                tracing::warn!(
                    unlogged,
                    "refused a connection on the unix socket: {}",
                    why.message
                );
            }
            (Budget::Exhausted, _) => {
                tracing::warn!("more than {} refused connections on the unix socket in a second: the next ones are counted, and the count is logged with the next one", LogBudget::BURST);
            }
            (Budget::Counted, _) => {}
        }
        let Ok(permit) = self.refusals.clone().try_acquire_owned() else {
            return;
        };
        let body = Arc::new(why.message);
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |_req| {
                let body = body.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(
                        ApiError::new(StatusCode::FORBIDDEN, body.as_str()).into_response(),
                    )
                }
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(super::listener::HEAD_TIMEOUT)
                .keep_alive(false);
            let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Bounded however the peer behaves: at worst a peer that reads nothing.
            let _ = tokio::time::timeout(super::listener::HEAD_TIMEOUT * 2, conn).await;
        });
    }
}

impl axum::serve::Listener for PeerChecked {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            match check_peer(&stream, &self.policy) {
                Ok(()) => return (stream, addr),
                Err(why) => self.refuse(stream, why),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list() {
        let a = AllowList::parse(
            "# ops\n127.0.0.1\n10.1.0.0/16 # lab\n\n::1\n",
            Path::new("ip"),
        )
        .unwrap();
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("10.1.200.3".parse().unwrap()));
        assert!(!a.allows("10.2.0.1".parse().unwrap()));
        assert!(a.allows("::1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        let e = AllowList::parse("1.2.3.4\nnope\n", Path::new("ip")).unwrap_err();
        assert!(e.contains("ip:2: 'nope'"), "{e}");
    }

    #[test]
    fn mapped_entries_match_both_forms() {
        let a = AllowList::parse(
            "::ffff:127.0.0.1\n::ffff:10.1.0.0/112\n::ffff:0:0/95\n",
            Path::new("ip"),
        )
        .unwrap();
        assert!(a.allows("127.0.0.1".parse().unwrap()));
        assert!(a.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.allows("127.0.0.2".parse().unwrap()));
        assert!(a.allows("10.1.9.9".parse().unwrap()));
        assert!(a.allows("::ffff:10.1.9.9".parse().unwrap()));
        assert!(!a.allows("10.2.0.1".parse().unwrap()));
        // A network wider than the mapped range stays IPv6 (and holds no IPv4 peer).
        assert!(!a.allows("192.0.2.1".parse().unwrap()));
        assert!(a.allows("::fffe:1:2".parse().unwrap()));
    }

    #[test]
    fn socket_peers() {
        let p = PeerPolicy {
            own_uid: 1000,
            allow_uids: vec![1001],
            allow_gids: vec![50],
        };
        assert!(p.admits(1000, 1000));
        assert!(p.admits(0, 0));
        assert!(p.admits(1001, 1001));
        assert!(p.admits(1002, 50));
        assert!(!p.admits(1002, 1002));
        assert!(!p.admits(65534, 65534));
    }

    #[test]
    fn basic_scheme_is_case_insensitive() {
        assert_eq!(basic_token("Basic abc"), Some("abc"));
        assert_eq!(basic_token("BASIC abc"), Some("abc"));
        assert_eq!(basic_token("bAsIc   abc "), Some("abc"));
        assert_eq!(basic_token("basic\tabc"), Some("abc"));
        assert_eq!(basic_token("Basicabc"), None);
        assert_eq!(basic_token("Bearer abc"), None);
        assert_eq!(basic_token("Basic"), None);
    }

    #[test]
    fn secrets_compare_by_value_and_length() {
        let eq = |a: &str, b: &str| bool::from(secret_eq(a.as_bytes(), b.as_bytes()));
        assert!(eq("secret", "secret"));
        assert!(eq("", ""));
        assert!(!eq("secreT", "secret"));
        assert!(!eq("secret", "secret2"));
        assert!(!eq("secret2", "secret"));
        assert!(!eq("", "secret"));
        assert!(!eq("secret", ""));
        // A prefix padded with the zeros a short input is compared against is still wrong.
        assert!(!eq("sec", "sec\0\0\0"));
    }

    #[test]
    fn origins() {
        assert!(same_origin(
            "http://127.0.0.1:11333",
            Some("127.0.0.1:11333")
        ));
        assert!(!same_origin("http://evil.example", Some("127.0.0.1:11333")));
        assert!(!same_origin("null", Some("127.0.0.1:11333")));
        assert!(!same_origin("http://127.0.0.1:11333", None));
    }
}
