//! SPEC §7 in one middleware: the allow-list, then basic auth, then the cross-site checks
//! (a foreign `Origin`, a state-changing request without a JSON content type).

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

    fn check_auth(&self, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
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
        let ok = given
            .as_deref()
            .and_then(|g| g.split_once(':'))
            .is_some_and(|(u, p)| {
                let user_ok = u.as_bytes().ct_eq(user.as_bytes());
                let pass_ok = p.as_bytes().ct_eq(password.as_bytes());
                bool::from(user_ok & pass_ok)
            });
        if ok {
            Ok(Some(user.clone()))
        } else {
            Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication required: send the user and password of server.auth (basic auth)",
            ))
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

/// The middleware in front of every route.
pub async fn guard(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let transport = req.extensions().get::<Transport>().copied();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
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
        Err(e) => {
            let mut resp = e.into_response();
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"gosuv\", charset=\"UTF-8\""),
            );
            return resp;
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
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state && !is_json(req.headers()) {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "requests that change state must send Content-Type: application/json",
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
