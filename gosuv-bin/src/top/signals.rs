//! SIGTERM, SIGHUP and SIGINT while `top` has the terminal: each becomes a message to the
//! drawing loop (which gives the terminal back, then exits), and once `top` returns the
//! process's previous handlers are back (inside `gosuv shell`, SIGTERM ends the shell again
//! and Ctrl-C is the shell's). tokio's own signal handling would stay installed for the life
//! of the process.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The signals watched.
const WATCHED: [Signal; 3] = [Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT];

/// The pipe's write end while a watch is installed (else -1).
static WRITE_END: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    // Async-signal-safe only: an atomic load and write(2), errno kept.
    // SAFETY: __errno_location returns this thread's errno, always valid.
    let saved = unsafe { *libc::__errno_location() };
    let fd = WRITE_END.load(Ordering::SeqCst);
    if fd >= 0 {
        let byte = u8::try_from(sig).unwrap_or(0);
        // SAFETY: a one-byte buffer that lives through the call; the pipe is non-blocking.
        let _ = unsafe { libc::write(fd, (&raw const byte).cast(), 1) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The installed handlers; dropping it puts the previous ones back.
pub struct Watch {
    read: OwnedFd,
    write: RawFd,
    previous: Vec<(Signal, SigAction)>,
}

impl Watch {
    /// Installs the handlers.
    ///
    /// # Errors
    /// The pipe or a handler could not be made.
    pub fn install() -> std::io::Result<Watch> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let write = write.into_raw_fd();
        WRITE_END.store(write, Ordering::SeqCst);
        let mut watch = Watch {
            read,
            write,
            previous: Vec::new(),
        };
        let action = SigAction::new(
            SigHandler::Handler(on_signal),
            SaFlags::SA_RESTART,
            SigSet::empty(),
        );
        for sig in WATCHED {
            // SAFETY: the handler only loads an atomic and calls write(2).
            let old = unsafe { sigaction(sig, &action) }?;
            watch.previous.push((sig, old));
        }
        Ok(watch)
    }

    /// The first signal received (a future to spawn on top's runtime, which has I/O).
    ///
    /// # Errors
    /// The pipe could not be watched.
    pub fn first(&self) -> std::io::Result<impl std::future::Future<Output = i32>> {
        let own = self.read.try_clone()?;
        // SAFETY: the AsyncFd owns its descriptor, which stays open and the same until it
        // is dropped; this runs inside top's runtime (I/O enabled).
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(own, tokio::io::Interest::READABLE)
        }
        .map_err(|e| e.into_parts().1)?;
        Ok(async move {
            loop {
                let Ok(mut ready) = fd.readable().await else {
                    return std::future::pending().await;
                };
                let mut byte = 0u8;
                // SAFETY: reads one byte into a local of that size; the pipe is non-blocking.
                let n = unsafe { libc::read(fd.get_ref().as_raw_fd(), (&raw mut byte).cast(), 1) };
                if n == 1 {
                    return i32::from(byte);
                }
                ready.clear_ready();
            }
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (sig, old) in self.previous.drain(..).rev() {
            // SAFETY: puts back the action that was there before `install`.
            let _ = unsafe { sigaction(sig, &old) };
        }
        WRITE_END.store(-1, Ordering::SeqCst);
        // SAFETY: the write end is ours, no handler uses it any more.
        unsafe { libc::close(self.write) };
    }
}
