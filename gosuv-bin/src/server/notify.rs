//! systemd's readiness protocol for the server itself (`Type=notify` units): `READY=1` once
//! it serves, `STOPPING=1` when it begins to shut down, each a datagram to the socket
//! `$NOTIFY_SOCKET` names (a path, or `@name` for an abstract socket). Without the variable
//! nothing is sent. Programs never see the variable (the spawn leaves it out).

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`READY=1`, `STOPPING=1` ...) to `$NOTIFY_SOCKET`; returns whether it was
/// sent. A failure is logged, never fatal: the unit's own timeout tells systemd.
pub fn notify(state: &str) -> bool {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let sent = send(&target, state.as_bytes());
    if let Err(e) = &sent {
        tracing::warn!(
            "cannot tell the service manager {state} on NOTIFY_SOCKET={}: {e}",
            target.to_string_lossy()
        );
    }
    sent.is_ok()
}

fn send(target: &std::ffi::OsStr, msg: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    let bytes = target.as_bytes();
    let n = match bytes.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(&bytes[1..])?;
            sock.send_to_addr(msg, &addr)?
        }
        Some(b'/') => sock.send_to(msg, std::path::Path::new(target))?,
        _ => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not an absolute path or an @abstract name",
            ))
        }
    };
    if n != msg.len() {
        return Err(std::io::Error::other("the message was cut short"));
    }
    Ok(())
}

/// `CLOCK_MONOTONIC` in microseconds, as `RELOADING=1` wants it beside.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1_000)
}
