//! Ctrl-C in the interactive shell: it abandons the command under way (a `logs -f`, a
//! `wait`) and the prompt comes back, instead of ending the process.
//!
//! Once [`enable`]d, SIGINT is counted by a handler that also writes a byte to a pipe. Each
//! command starts an epoch ([`begin_command`]); a request of the client ([`cancellable`])
//! ends with [`Interrupted`] as soon as the count passes the epoch, whether the Ctrl-C came
//! during the request or between two requests of the same command. A Ctrl-C from before
//! the command never abandons it (the count, not the pipe's bytes, is the truth).

use std::future::Future;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

/// SIGINTs received since [`enable`].
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The count when the current command began.
static EPOCH: AtomicU64 = AtomicU64::new(0);
/// The pipe's ends: the handler writes, requests wait for it to be readable.
static WRITE_END: AtomicI32 = AtomicI32::new(-1);
static READ_END: AtomicI32 = AtomicI32::new(-1);
static ENABLED: AtomicBool = AtomicBool::new(false);

/// A request abandoned by Ctrl-C.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

extern "C" fn on_sigint(_: libc::c_int) {
    // Async-signal-safe only: a lock-free atomic and write(2), errno kept.
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let saved = unsafe { *libc::__errno_location() };
    COUNT.fetch_add(1, Ordering::SeqCst);
    let fd = WRITE_END.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: a one-byte buffer that lives through the call; a full pipe (EAGAIN) is
        // fine, the count is what matters.
        let _ = unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// Counts SIGINT from now on instead of dying of it (for the life of the process).
///
/// # Errors
/// The pipe or the handler could not be made.
pub fn enable() -> std::io::Result<()> {
    if ENABLED.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
    // The ends live as long as the process: the handler may write at any time.
    WRITE_END.store(into_raw(write), Ordering::SeqCst);
    READ_END.store(into_raw(read), Ordering::SeqCst);
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_sigint),
        nix::sys::signal::SaFlags::SA_RESTART,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only touches atomics and calls write(2).
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGINT, &action) }?;
    ENABLED.store(true, Ordering::SeqCst);
    Ok(())
}

fn into_raw(fd: OwnedFd) -> RawFd {
    std::os::fd::IntoRawFd::into_raw_fd(fd)
}

/// A new command begins: a Ctrl-C from before it does not abandon it.
pub fn begin_command() {
    EPOCH.store(COUNT.load(Ordering::SeqCst), Ordering::SeqCst);
}

/// Whether Ctrl-C was pressed since the command began.
fn pressed() -> bool {
    COUNT.load(Ordering::SeqCst) > EPOCH.load(Ordering::SeqCst)
}

/// `fut`, or [`Interrupted`] once Ctrl-C is pressed (only after [`enable`]; else `fut` as
/// it is). Must run inside a tokio runtime with I/O enabled.
pub async fn cancellable<T>(fut: impl Future<Output = T>) -> Result<T, Interrupted> {
    if !ENABLED.load(Ordering::SeqCst) {
        return Ok(fut.await);
    }
    if pressed() {
        return Err(Interrupted);
    }
    let raw = READ_END.load(Ordering::SeqCst);
    // SAFETY: the read end is open for the life of the process (see `enable`).
    let borrowed = unsafe { BorrowedFd::borrow_raw(raw) };
    // A descriptor of this request's own, so that its runtime can watch it.
    let Ok(own) = borrowed.try_clone_to_owned() else {
        return Ok(fut.await);
    };
    // SAFETY: the AsyncFd owns the descriptor, which stays open and the same until it
    // is dropped. (Inside a runtime with I/O: see the function's contract.)
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(own, tokio::io::Interest::READABLE)
    };
    let Ok(watched) = registered else {
        return Ok(fut.await);
    };
    let wait = async {
        loop {
            let Ok(mut ready) = watched.readable().await else {
                // Nothing to watch with: wait for the request alone.
                std::future::pending::<()>().await;
                return;
            };
            drain(watched.get_ref().as_raw_fd());
            ready.clear_ready();
            if pressed() {
                return;
            }
        }
    };
    tokio::select! {
        r = fut => Ok(r),
        () = wait => Err(Interrupted),
    }
}

/// Reads what the pipe holds (non-blocking).
fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    // SAFETY: reads into a local buffer of its size; the pipe is non-blocking.
    while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ctrl_c_abandons_the_request_of_its_command_only() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Before enable: SIGINT's own default, and the future runs as it is.
        assert_eq!(rt.block_on(cancellable(async { 7 })), Ok(7));
        enable().unwrap();
        begin_command();
        // A request that never ends is abandoned by a SIGINT sent during it.
        let r = rt.block_on(cancellable(async {
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).unwrap();
            std::future::pending::<()>().await
        }));
        assert_eq!(r, Err(Interrupted));
        // The same command's next request: abandoned at once.
        assert_eq!(rt.block_on(cancellable(async { 1 })), Err(Interrupted));
        // The next command: a Ctrl-C of before does not count, its byte still in the pipe
        // or not.
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).unwrap();
        begin_command();
        assert_eq!(rt.block_on(cancellable(async { 2 })), Ok(2));
        let r = rt.block_on(cancellable(async {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            3
        }));
        assert_eq!(r, Ok(3));
    }
}
