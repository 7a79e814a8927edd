//! A program's stdin pipe ([`crate::config::StdinMode::Pipe`]): the host writes to it
//! through [`crate::Supervisor::write_stdin`] and closes it with
//! [`crate::Supervisor::close_stdin`].
//!
//! The write end is non-blocking and watched by the runtime, and every write runs in the
//! caller's future, never in the program's task: a program that does not read its stdin
//! makes the writer wait, never the supervisor. The run owns the pipe (it closes when the
//! run ends, and the next run gets a fresh one); the program's slot only points at it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, Weak};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// The write end of one run's stdin pipe.
#[derive(Debug)]
pub(crate) struct StdinPipe {
    /// `None` once closed. Held across a whole write, so two writes never interleave.
    fd: tokio::sync::Mutex<Option<AsyncFd<OwnedFd>>>,
    /// Cancelled by a close: a write waiting for room gives up at once.
    closing: CancellationToken,
}

impl StdinPipe {
    /// Takes the write end of a new run's stdin pipe.
    ///
    /// # Errors
    /// It cannot be made non-blocking, or the runtime cannot watch it.
    pub(crate) fn new(fd: OwnedFd) -> io::Result<Arc<StdinPipe>> {
        crate::spawn::set_nonblocking(&fd)?;
        // SAFETY: the OwnedFd moves into the AsyncFd and stays open, the same pipe, until
        // it is dropped with it.
        let afd = unsafe { AsyncFd::register_with_interest(fd, Interest::WRITABLE) }?;
        Ok(Arc::new(StdinPipe {
            fd: tokio::sync::Mutex::new(Some(afd)),
            closing: CancellationToken::new(),
        }))
    }

    /// Writes all of `data`, waiting for room as long as it takes, and counts what was
    /// written in `written` (so a caller that gives up on the future knows how much went).
    ///
    /// # Errors
    /// The pipe is closed ([`Error::Invalid`]), or the write failed ([`Error::Io`]: `EPIPE`
    /// once the program and its children closed their end).
    pub(crate) async fn write(
        &self,
        program: &str,
        data: &[u8],
        written: &mut usize,
    ) -> Result<(), Error> {
        let closed = || {
            Error::Invalid(format!(
                "the stdin of '{program}' is closed: it gets a new one when it is restarted"
            ))
        };
        let guard = tokio::select! {
            biased;
            () = self.closing.cancelled() => return Err(closed()),
            g = self.fd.lock() => g,
        };
        let afd = guard.as_ref().ok_or_else(closed)?;
        let failed = |e: io::Error, after: usize| {
            Error::io(
                format!("cannot write to the stdin of '{program}' (after {after} bytes)"),
                e,
            )
        };
        // Tried before waiting: a fresh pipe has room, and its readiness is not yet known.
        while *written < data.len() {
            match write_without_sigpipe(afd.get_ref().as_raw_fd(), &data[*written..]) {
                Ok(n) => *written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(failed(e, *written)),
            }
        }
        while *written < data.len() {
            let mut ready = tokio::select! {
                biased;
                () = self.closing.cancelled() => return Err(closed()),
                r = afd.writable() => r.map_err(|e| failed(e, *written))?,
            };
            let rest = &data[*written..];
            match ready.try_io(|fd| write_without_sigpipe(fd.get_ref().as_raw_fd(), rest)) {
                Ok(Ok(n)) => *written += n,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(failed(e, *written)),
                // No room after all: readiness was cleared, wait again.
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    /// Closes the pipe: the program reads end-of-file once it has read what was written. A
    /// write waiting for room gives up.
    pub(crate) async fn close(&self) {
        self.closing.cancel();
        self.fd.lock().await.take();
    }
}

/// A program's slot for its current run's stdin pipe.
#[derive(Debug, Default)]
pub(crate) struct StdinSlot(Mutex<Weak<StdinPipe>>);

impl StdinSlot {
    /// Points at a new run's pipe (the run keeps it alive).
    pub(crate) fn set(&self, pipe: &Arc<StdinPipe>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(pipe);
    }

    /// The current run's pipe, while the run lasts.
    pub(crate) fn get(&self) -> Option<Arc<StdinPipe>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).upgrade()
    }
}

/// `write(2)` that never raises SIGPIPE (which kills a C host that did not ignore it): the
/// signal is blocked on this thread for the write, and one the write raised is taken before
/// it is unblocked.
pub(crate) fn write_without_sigpipe(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: signal-set calls on sets we own, on this thread only; a write from a buffer of
    // its length.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGPIPE);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let n = libc::write(fd, buf.as_ptr().cast(), buf.len());
        let result = if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
        if !was_pending && matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE)) {
            let zero = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&set, std::ptr::null_mut(), &zero);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With SIGPIPE's default action (a C host's), a write to a pipe nobody reads fails with
    /// EPIPE and the process lives on, with no SIGPIPE left pending. Checked in a process of
    /// its own (this test binary, running [`sigpipe_child`] alone): the default action is
    /// process-wide, and would kill this one if any other test raised SIGPIPE meanwhile.
    #[test]
    fn a_write_to_a_closed_pipe_fails_without_killing_the_process() {
        let exe = std::env::current_exe().expect("the test binary");
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "stdin::tests::sigpipe_child",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(SIGPIPE_CHILD, "1")
            .output()
            .expect("run the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{:?}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 passed"), "{stdout}");
    }

    /// Set for the process [`a_write_to_a_closed_pipe_fails_without_killing_the_process`]
    /// starts.
    const SIGPIPE_CHILD: &str = "GOSUV_TEST_SIGPIPE_CHILD";

    /// The check itself, in the child only (elsewhere it does nothing).
    #[test]
    fn sigpipe_child() {
        if std::env::var_os(SIGPIPE_CHILD).is_none() {
            return;
        }
        let (r, w) = nix::unistd::pipe().expect("pipe");
        drop(r);
        // SAFETY: the default action of SIGPIPE, in this process of a single test.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let r = write_without_sigpipe(w.as_raw_fd(), b"x");
        // SAFETY: the signal's pending set, into a set we own.
        let pending = unsafe {
            let mut p: libc::sigset_t = std::mem::zeroed();
            libc::sigpending(&mut p);
            libc::sigismember(&p, libc::SIGPIPE) == 1
        };
        assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EPIPE));
        assert!(!pending, "a SIGPIPE was left pending");
    }
}
