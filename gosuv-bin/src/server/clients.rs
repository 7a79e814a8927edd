//! Who a connection is from, and how much of the server each client may hold: at most
//! [`MAX_CONNECTIONS_PER_CLIENT`] open connections and [`MAX_STREAMS_PER_CLIENT`] live
//! streams (`log/follow`, `/api/events`) at once.
//!
//! Why: a listener holds at most 256 connections, and a stream keeps its connection for as
//! long as the client wants. Without a cap per client, one client could take every slot (a
//! few hundred streams it never reads, or requests that never finish) and everyone else
//! would wait. With it, one client holds at most a quarter of a listener.
//!
//! What a client is:
//! - over TCP, its IP address; for IPv6 its /64 network, since one host is usually given a
//!   whole /64 and could otherwise come from as many addresses as it likes;
//! - on the unix socket, its user (the peer's uid from `SO_PEERCRED`), not the socket as a
//!   whole. The users the socket lets in are the server's own, root, and those of
//!   `unixserver.allow_uids`/`allow_gids`. The first two could stop the server anyway, so for
//!   them the cap only keeps a runaway script from locking out the user's own CLI; but a
//!   user let in by `allow_uids` must not be able to lock out the server's user or root,
//!   which one count for the whole socket would allow.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;

use super::error::ApiError;

/// Connections one client may have open at once on one listener.
pub const MAX_CONNECTIONS_PER_CLIENT: usize = 64;

/// Live streams (`log/follow`, `/api/events`) one client may have open at once on one
/// listener (the web page uses one or two per tab).
pub const MAX_STREAMS_PER_CLIENT: usize = 16;

/// Who a connection is from, as far as the per-client limits go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// A TCP client's IPv4 address, or its IPv6 address's /64 network.
    Ip(IpAddr),
    /// A unix-socket client's user.
    Uid(u32),
    /// A client whose address or credentials could not be read (all such are one client).
    Unknown,
}

impl ClientKey {
    /// The client of a TCP peer address (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn of_ip(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::Ip(IpAddr::V4(v4)),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                ClientKey::Ip(IpAddr::V6(Ipv6Addr::new(
                    s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                )))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientKey::Ip(IpAddr::V4(a)) => write!(f, "{a}"),
            ClientKey::Ip(IpAddr::V6(a)) => write!(f, "{a}/64"),
            ClientKey::Uid(u) => write!(f, "uid {u}"),
            ClientKey::Unknown => write!(f, "an unidentified peer"),
        }
    }
}

/// What each client holds of one kind of thing (connections, streams), up to a maximum.
#[derive(Debug)]
pub struct PerClient {
    max: usize,
    held: Mutex<HashMap<ClientKey, usize>>,
}

impl PerClient {
    /// A count of at most `max` for each client.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PerClient {
            max,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The most each client may hold.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes one for `key`, or `None` when it holds the most it may.
    pub fn try_take(self: &Arc<Self>, key: ClientKey) -> Option<Slot> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(key).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            owner: self.clone(),
            key,
        })
    }

    /// How many `key` holds now.
    pub fn held(&self, key: ClientKey) -> usize {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.get(&key).copied().unwrap_or(0)
    }
}

/// One connection or stream of a client: given back when dropped.
#[derive(Debug)]
pub struct Slot {
    owner: Arc<PerClient>,
    key: ClientKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The client of a request, in its extensions (put there by the listener; a router driven
/// without a socket has none, and no stream cap).
#[derive(Clone, Debug)]
pub struct Client {
    /// Who it is.
    pub key: ClientKey,
    streams: Arc<PerClient>,
}

impl Client {
    /// The client `key`, whose streams are counted in `streams`.
    pub fn new(key: ClientKey, streams: Arc<PerClient>) -> Self {
        Client { key, streams }
    }

    /// A slot for one more live stream, held for as long as the stream lasts.
    ///
    /// # Errors
    /// 429 when the client has [`MAX_STREAMS_PER_CLIENT`] streams open; the connection is
    /// closed after it, so a refused stream does not keep a connection slot either.
    pub fn open_stream(&self) -> Result<Slot, ApiError> {
        self.streams.try_take(self.key).ok_or_else(|| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} live streams (log/follow, /api/events) are open from {}, the most one client may have: close one first",
                    self.streams.max(),
                    self.key
                ),
            )
            .closing()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_per_client_and_given_back() {
        let c = PerClient::new(2);
        let a = ClientKey::of_ip("10.0.0.1".parse().unwrap());
        let b = ClientKey::Uid(1000);
        let a1 = c.try_take(a).unwrap();
        let _a2 = c.try_take(a).unwrap();
        assert!(c.try_take(a).is_none());
        let _b1 = c.try_take(b).unwrap();
        drop(a1);
        assert_eq!(c.held(a), 1);
        assert!(c.try_take(a).is_some());
    }

    #[test]
    fn ipv6_clients_are_their_64_network() {
        let one = ClientKey::of_ip("2001:db8:1:2:aaaa::1".parse().unwrap());
        let two = ClientKey::of_ip("2001:db8:1:2:bbbb::9".parse().unwrap());
        let other = ClientKey::of_ip("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(one, two);
        assert_ne!(one, other);
        assert_eq!(one.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            ClientKey::of_ip("::ffff:127.0.0.1".parse().unwrap()),
            ClientKey::of_ip("127.0.0.1".parse().unwrap())
        );
    }
}
