//! Which TCP sockets listen on this machine, read from the kernel's socket table (the
//! `sock_diag` netlink interface, as `ss -ltn` does), for `tcp` probes to a loopback
//! address.
//!
//! A connect to a loopback address succeeds exactly when a socket listens on that address
//! and port (or on the wildcard address) and its accept queue is not full: the kernel
//! completes the handshake without the program's help. Both facts are in the table, so a
//! probe reads them there instead of connecting: one table read serves every probe due in
//! the same few milliseconds, where a thousand programs probed ten times a second would
//! otherwise cost ten thousand connects (and their teardown) a second of the supervisor's
//! CPU. Anything the table cannot answer (no netlink, a remote address) is probed by a
//! real connect.

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The older request, `TCPDIAG_GETSOCK`: unlike `SOCK_DIAG_BY_FAMILY`, it answers for
/// both families in one walk of the kernel's table of listening sockets (the walk, not the
/// answer, is the cost).
const TCPDIAG_GETSOCK: u16 = 18;
const TCP_LISTEN: u32 = 10;
const INET_DIAG_SKV6ONLY: u16 = 11;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SockId {
    sport: u16,
    dport: u16,
    src: [u32; 4],
    dst: [u32; 4],
    interface: u32,
    cookie: [u32; 2],
}

/// `struct inet_diag_req` (the request of `TCPDIAG_GETSOCK`).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Req {
    family: u8,
    src_len: u8,
    dst_len: u8,
    ext: u8,
    id: SockId,
    states: u32,
    dbs: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DiagMsg {
    family: u8,
    state: u8,
    timer: u8,
    retrans: u8,
    id: SockId,
    expires: u32,
    rqueue: u32,
    wqueue: u32,
    uid: u32,
    inode: u32,
}

/// `struct nlmsghdr`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct MsgHeader {
    len: u32,
    kind: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Request {
    header: MsgHeader,
    req: Req,
}

/// One listening socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Listener {
    addr: IpAddr,
    port: u16,
    v6only: bool,
    /// Connections waiting to be accepted.
    queued: u32,
    /// The most that may wait.
    backlog: u32,
}

/// What the table says of a connect to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// A connect would succeed.
    Accepts,
    /// Nothing listens there: a connect would be refused.
    Refused,
    /// Something listens, but its accept queue is full: a connect would hang.
    Full { queued: u32, backlog: u32 },
}

/// The listening sockets at one moment, by port.
#[derive(Debug, Default)]
pub(crate) struct Table {
    by_port: std::collections::HashMap<u16, Vec<Listener>>,
}

impl Table {
    fn new(listeners: Vec<Listener>) -> Self {
        let mut by_port: std::collections::HashMap<u16, Vec<Listener>> =
            std::collections::HashMap::with_capacity(listeners.len());
        for l in listeners {
            by_port.entry(l.port).or_default().push(l);
        }
        Table { by_port }
    }

    /// What a connect to `ip:port` would find.
    pub(crate) fn answer(&self, ip: IpAddr, port: u16) -> Answer {
        let mapped = match ip {
            IpAddr::V4(v4) => Some(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => None,
        };
        let reaches = |l: &Listener| {
            l.port == port
                && match (ip, l.addr) {
                    (IpAddr::V4(_), IpAddr::V4(a)) => a.is_unspecified() || l.addr == ip,
                    (IpAddr::V6(_), IpAddr::V6(a)) => a.is_unspecified() || l.addr == ip,
                    // A dual-stack IPv6 socket takes IPv4 connections too.
                    (IpAddr::V4(_), IpAddr::V6(a)) => {
                        !l.v6only && (a.is_unspecified() || Some(a) == mapped)
                    }
                    (IpAddr::V6(_), IpAddr::V4(_)) => false,
                }
        };
        let mut full = None;
        let on_port = self.by_port.get(&port).map_or(&[][..], Vec::as_slice);
        for l in on_port.iter().filter(|l| reaches(l)) {
            // The kernel drops a new connection only once more wait than the backlog.
            if l.queued <= l.backlog {
                return Answer::Accepts;
            }
            full = Some(Answer::Full {
                queued: l.queued,
                backlog: l.backlog,
            });
        }
        full.unwrap_or(Answer::Refused)
    }
}

static CACHE: RwLock<Option<(Instant, Arc<Table>)>> = RwLock::new(None);

/// What a connect to `ip:port` would find, when `ip` is a loopback address and the table
/// can be read; `None` otherwise (probe with a real connect). The table is one read at or
/// after `not_before` (the time the attempt was due): the probes due in the same tick of
/// the runtime's timer share one read, and none is answered by a table older than its
/// own due time.
pub(crate) fn answer(ip: IpAddr, port: u16, not_before: Instant) -> Option<Answer> {
    if !ip.is_loopback() && !is_mapped_loopback(ip) {
        return None;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    Some(table_since(not_before)?.answer(ip, port))
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()))
}

/// The table, read again unless the last read began at or after `not_before`. The lock
/// is held only to look and to store, never across the read.
pub(crate) fn table_since(not_before: Instant) -> Option<Arc<Table>> {
    {
        let cache = CACHE.read().unwrap_or_else(|p| p.into_inner());
        if let Some((at, t)) = cache.as_ref() {
            if *at >= not_before {
                return Some(t.clone());
            }
        }
    }
    let at = Instant::now();
    let table = Arc::new(read_table().ok()?);
    let mut cache = CACHE.write().unwrap_or_else(|p| p.into_inner());
    if cache.as_ref().is_none_or(|(t, _)| *t < at) {
        *cache = Some((at, table.clone()));
    }
    Some(table)
}

fn read_table() -> io::Result<Table> {
    // SAFETY: socket() takes flags and returns a new descriptor we own, or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // The kernel answers a dump at once; a read that waits longer is given up (the probes
    // then connect), never left to hold a runtime thread.
    let limit = libc::timeval {
        tv_sec: 1,
        tv_usec: 0,
    };
    // SAFETY: setsockopt on a descriptor we own, with a timeval of its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&limit as *const libc::timeval).cast(),
            size_of::<libc::timeval>() as u32,
        )
    };
    let mut listeners = Vec::new();
    dump(&sock, &mut listeners)?;
    Ok(Table::new(listeners))
}

/// Asks for every listening TCP socket, IPv4 and IPv6, and reads the answer to its end.
fn dump(sock: &OwnedFd, out: &mut Vec<Listener>) -> io::Result<()> {
    let req = Request {
        header: MsgHeader {
            len: size_of::<Request>() as u32,
            kind: TCPDIAG_GETSOCK,
            flags: (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
            seq: 1,
            pid: 0,
        },
        req: Req {
            // Both families in one walk (the kernel ignores the family of this request).
            family: libc::AF_INET as u8,
            // The kernel adds INET_DIAG_SKV6ONLY to every IPv6 socket unasked.
            ext: 0,
            states: 1 << TCP_LISTEN,
            ..Req::default()
        },
    };
    // SAFETY: sends the bytes of a plain repr(C) struct to the kernel (address: the kernel).
    let sent = unsafe {
        let mut kernel: libc::sockaddr_nl = std::mem::zeroed();
        kernel.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            sock.as_raw_fd(),
            (&req as *const Request).cast(),
            size_of::<Request>(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // SAFETY: reads into a buffer we own, of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let n = n as usize;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "netlink closed",
            ));
        }
        if parse(&buf[..n], out)? {
            return Ok(());
        }
    }
}

fn read_at<T: Copy + Default>(bytes: &[u8], at: usize) -> Option<T> {
    let end = at.checked_add(size_of::<T>())?;
    let src = bytes.get(at..end)?;
    let mut v = T::default();
    // SAFETY: copies size_of::<T>() bytes into a plain repr(C) value of integers, for
    // which every bit pattern is valid.
    unsafe {
        std::ptr::copy_nonoverlapping(
            src.as_ptr(),
            (&mut v as *mut T).cast::<u8>(),
            size_of::<T>(),
        )
    };
    Some(v)
}

const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Reads the messages of one datagram; returns whether the dump is complete.
fn parse(bytes: &[u8], out: &mut Vec<Listener>) -> io::Result<bool> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "a malformed sock_diag answer");
    let mut at = 0;
    while at + size_of::<MsgHeader>() <= bytes.len() {
        let h: MsgHeader = read_at(bytes, at).ok_or_else(bad)?;
        let len = h.len as usize;
        if len < size_of::<MsgHeader>() || at + len > bytes.len() {
            return Err(bad());
        }
        let body = at + align4(size_of::<MsgHeader>());
        match i32::from(h.kind) {
            libc::NLMSG_DONE => return Ok(true),
            libc::NLMSG_ERROR => {
                let code: i32 = read_at(bytes, body).ok_or_else(bad)?;
                return Err(io::Error::from_raw_os_error(code.saturating_neg()));
            }
            t if t == i32::from(TCPDIAG_GETSOCK) => {
                // Read within this message only.
                let this = &bytes[..at + len];
                let msg: DiagMsg = read_at(this, body).ok_or_else(bad)?;
                let mut v6only = false;
                let mut attr = body + align4(size_of::<DiagMsg>());
                while attr + 4 <= at + len {
                    let alen: u16 = read_at(this, attr).ok_or_else(bad)?;
                    let atype: u16 = read_at(this, attr + 2).ok_or_else(bad)?;
                    if alen < 4 {
                        break;
                    }
                    if atype == INET_DIAG_SKV6ONLY {
                        v6only = read_at::<u8>(this, attr + 4).is_some_and(|b| b != 0);
                    }
                    attr += align4(usize::from(alen));
                }
                let addr = if msg.family == libc::AF_INET as u8 {
                    IpAddr::V4(Ipv4Addr::from(u32::from_be(msg.id.src[0])))
                } else {
                    let mut o = [0u8; 16];
                    for (i, w) in msg.id.src.iter().enumerate() {
                        o[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
                    }
                    IpAddr::V6(Ipv6Addr::from(o))
                };
                out.push(Listener {
                    addr,
                    port: u16::from_be(msg.id.sport),
                    v6only,
                    queued: msg.rqueue,
                    backlog: msg.wqueue,
                });
            }
            // NLMSG_NOOP, NLMSG_OVERRUN and anything else: nothing about sockets.
            _ => {}
        }
        at += align4(len);
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Duration;

    #[test]
    fn a_listener_on_loopback_is_found_and_a_closed_port_is_not() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Read afresh: the cache may predate the bind.
        let t = read_table().expect("sock_diag");
        assert_eq!(t.answer(lo, port), Answer::Accepts);
        assert_eq!(
            t.answer(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), port),
            Answer::Refused
        );
        drop(l);
        let t = read_table().expect("sock_diag");
        assert_eq!(t.answer(lo, port), Answer::Refused);
        assert_eq!(
            answer(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), port, Instant::now()),
            None
        );
    }

    #[test]
    fn an_ipv6_listener_is_found() {
        let l = TcpListener::bind("[::1]:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let t = read_table().expect("sock_diag");
        assert_eq!(
            t.answer(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
            Answer::Accepts
        );
        assert_eq!(
            t.answer(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
            Answer::Refused
        );
    }

    #[test]
    fn the_wildcard_and_dual_stack_reach_loopback() {
        let t = Table::new(vec![
            Listener {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                port: 80,
                v6only: false,
                queued: 0,
                backlog: 128,
            },
            Listener {
                addr: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                port: 81,
                v6only: true,
                queued: 0,
                backlog: 128,
            },
            Listener {
                addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                port: 82,
                v6only: false,
                queued: 129,
                backlog: 128,
            },
        ]);
        let lo4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(t.answer(lo4, 80), Answer::Accepts);
        assert_eq!(t.answer(lo6, 80), Answer::Accepts);
        assert_eq!(t.answer(lo4, 81), Answer::Refused);
        assert_eq!(t.answer(lo6, 81), Answer::Accepts);
        assert_eq!(
            t.answer(lo4, 82),
            Answer::Full {
                queued: 129,
                backlog: 128
            }
        );
        assert_eq!(t.answer(lo6, 82), Answer::Refused);
    }

    #[test]
    fn an_accept_queue_that_overflows_is_full() {
        // A listener that never accepts, with a backlog of 1: fill it with connects.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        // SAFETY: listen() on a socket we own, with a new backlog.
        assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 1) }, 0);
        let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut conns = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let t = read_table().expect("sock_diag");
            if let Answer::Full { queued, backlog } = t.answer(lo, port) {
                assert!(queued > backlog);
                break;
            }
            assert!(Instant::now() < deadline, "the queue never filled");
            let c = std::net::TcpStream::connect_timeout(
                &std::net::SocketAddr::new(lo, port),
                Duration::from_millis(200),
            );
            conns.extend(c.ok());
        }
    }
}
