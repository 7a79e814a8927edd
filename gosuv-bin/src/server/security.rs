//! SPEC §7 in one middleware: the allow-list, then basic auth, then the cross-site checks
//! (a foreign `Origin`; over HTTP, a POST or PUT with neither a JSON content type nor
//! `X-Gosuv: 1`).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

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
                nets.push(net);
            } else if let Ok(ip) = line.parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
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

    /// Whether `ip` is allowed (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
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
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
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
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication required: send the user and password of server.auth (basic auth)",
    )
    .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Basic realm=\"gosuv\", charset=\"UTF-8\""),
    );
    resp
}

/// Failed logins, for the server log: each one is logged, up to [`FailedLogins::BURST`] a
/// second; past that they are counted and the count is logged with the next line, so a
/// brute force is on record without filling the disk.
#[derive(Debug, Default)]
pub struct FailedLogins {
    window: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

impl FailedLogins {
    /// Lines a second before failures are only counted.
    pub const BURST: u32 = 20;

    /// Records a failed login from `peer` for `path`.
    pub fn record(&self, peer: &str, failure: &AuthFailure, method: &Method, path: &str) {
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        let now = std::time::Instant::now();
        let (start, logged, suppressed) = &mut *w;
        if start.is_none_or(|s| now.duration_since(s).as_secs() >= 1) {
            *start = Some(now);
            *logged = 0;
        }
        if *logged >= Self::BURST {
            if *suppressed == 0 {
                tracing::warn!(peer = %peer, "more than {} failed logins in a second (a brute force?): the next ones are counted, and the count is logged with the next failed login", Self::BURST);
            }
            *suppressed += 1;
            return;
        }
        *logged += 1;
        let more = std::mem::take(suppressed);
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

/// Whether a `Host` header names this machine by address or as `localhost`. Without auth, a
/// page whose DNS name was rebound to 127.0.0.1 would otherwise pass the `Origin` check
/// (its origin and `Host` agree); with auth, the browser has no password to send to it.
fn host_is_local_name(host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    let name = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok()
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
    let user = match security.check_auth(req.headers()) {
        Ok(u) => u,
        Err(failure) => {
            state
                .failed_logins()
                .record(&peer_text, &failure, req.method(), req.uri().path());
            return unauthorized();
        }
    };
    if transport != Some(Transport::Unix) && security.credentials.is_none() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok());
        if !host_is_local_name(host) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "requests for host {} are refused without auth: use http://127.0.0.1:PORT, or enable server.auth",
                    host.unwrap_or("(none)")
                ),
            )
            .into_response();
        }
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
    fn local_hosts() {
        assert!(host_is_local_name(Some("127.0.0.1:11333")));
        assert!(host_is_local_name(Some("localhost:80")));
        assert!(host_is_local_name(Some("[::1]:80")));
        assert!(host_is_local_name(Some("10.1.2.3")));
        assert!(!host_is_local_name(Some("evil.example:11333")));
        assert!(!host_is_local_name(None));
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
