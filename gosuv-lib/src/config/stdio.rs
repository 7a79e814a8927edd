//! Where a program's standard input comes from and where its output goes, besides the log:
//! options of a program embedded in a host process (the C, Rust and Python libraries), not
//! keys of `programs.yml`. They name the host's own descriptors (its stdin, a descriptor it
//! passes) or a pipe the host writes through a call, none of which a server started from a
//! programs file has to give, and none of which a server that takes a run over after a
//! restart could carry.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Where a program's standard input comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StdinMode {
    /// `/dev/null`: a read gets end-of-file at once.
    #[default]
    Null,
    /// The host process's own standard input (`/dev/null` when the host's is closed). Two
    /// programs that inherit it read from the same file in turn.
    Inherit,
    /// A pipe the host writes to with [`crate::Supervisor::write_stdin`] and closes with
    /// [`crate::Supervisor::close_stdin`]. Each run gets a fresh pipe; it closes when the run
    /// ends.
    Pipe,
}

/// Where one output stream of a program goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OutputMode {
    /// To its log: the file (unless `log_disable`), the in-memory tail and the followers.
    #[default]
    Log,
    /// To its log, and a copy of every byte to this descriptor of the host (its own stderr,
    /// say), like `tee`: written by a log-writer thread, in order. The copy never holds up
    /// the program, its log or its removal: what the descriptor does not take within a
    /// second (a full pipe nobody reads) is dropped, and from then on what it does not take
    /// at once, until it takes output again; once the program is being removed, what it
    /// does not take at once is dropped. A failed or dropped copy is counted with the log's
    /// write errors, the bytes in [`crate::logs::LogCounters::tee_dropped`].
    Tee(HostFd),
    /// Nowhere: the program writes to `/dev/null`. No file, no tail, no follower line, no
    /// `log` ready probe.
    Discard,
}

/// A program's standard streams: stdin, and where stdout and stderr go besides (or
/// instead of) the log. With `redirect_stderr`, stderr goes where stdout goes, and `stderr`
/// must be [`OutputMode::Log`] (anything else is a config error naming `redirect_stderr`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProgramIo {
    /// Its standard input.
    pub stdin: StdinMode,
    /// Its standard output.
    pub stdout: OutputMode,
    /// Its standard error.
    pub stderr: OutputMode,
}

impl ProgramIo {
    /// Whether everything is as a programs file has it: stdin from `/dev/null`, output to
    /// the log only.
    pub fn is_default(&self) -> bool {
        *self == ProgramIo::default()
    }
}

/// A descriptor of the host, held by gosuv as a copy of its own (close-on-exec, above 2),
/// so the host may close the one it passed. Two are equal when they are the same copy, or
/// copies of the same file open the same way (the same device, inode and access mode: the
/// host's stderr passed twice).
#[derive(Clone, Debug)]
pub struct HostFd(Arc<OwnedFd>);

impl HostFd {
    /// Copies `fd` (`F_DUPFD_CLOEXEC`): the copy is gosuv's, `fd` stays the caller's.
    ///
    /// # Errors
    /// `fd` is not an open descriptor (`EBADF`), or no descriptor is left (`EMFILE`).
    pub fn dup(fd: BorrowedFd<'_>) -> io::Result<HostFd> {
        // SAFETY: fcntl on a descriptor the caller lends; the result is a new descriptor
        // nobody else owns.
        let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `n` is the new descriptor just made.
        Ok(HostFd(Arc::new(unsafe { OwnedFd::from_raw_fd(n) })))
    }

    /// Copies the descriptor numbered `fd` of this process, as [`HostFd::dup`].
    ///
    /// # Errors
    /// As [`HostFd::dup`]; a negative number is `EBADF`.
    pub fn dup_raw(fd: RawFd) -> io::Result<HostFd> {
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: only borrowed for the `fcntl` of `dup`, which fails with EBADF when `fd`
        // is not open.
        HostFd::dup(unsafe { BorrowedFd::borrow_raw(fd) })
    }

    /// Whether output can be written to it: refused when it is open for reading only (a
    /// pipe's read end), or no longer open.
    ///
    /// # Errors
    /// A phrase naming the descriptor and why (`descriptor 5: it is open for reading only`).
    pub fn check_writable(&self) -> Result<(), String> {
        let fd = self.0.as_raw_fd();
        // SAFETY: fcntl F_GETFL on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 {
            return Err(format!("descriptor {fd}: {}", io::Error::last_os_error()));
        }
        if flags & libc::O_ACCMODE == libc::O_RDONLY {
            return Err(format!(
                "descriptor {fd}: it is open for reading only (a pipe's read end?): pass one \
                 open for writing"
            ));
        }
        Ok(())
    }

    /// The file it is (device, inode) and how it is open (both ends of a pipe are one
    /// inode), for equality.
    fn identity(&self) -> Option<(u64, u64, i32)> {
        let fd = self.0.as_raw_fd();
        // SAFETY: fstat into a zeroed struct we own, and fcntl, on a descriptor we own.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            (libc::fstat(fd, &mut st) == 0 && flags >= 0).then_some((
                st.st_dev as u64,
                st.st_ino as u64,
                flags & libc::O_ACCMODE,
            ))
        }
    }
}

impl AsFd for HostFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl PartialEq for HostFd {
    fn eq(&self, other: &HostFd) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
            || self
                .identity()
                .is_some_and(|id| Some(id) == other.identity())
    }
}

impl Eq for HostFd {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_of_one_file_are_equal_and_of_two_are_not() {
        let (r, w) = nix::unistd::pipe().expect("pipe");
        let a = HostFd::dup(w.as_fd()).expect("dup");
        let b = HostFd::dup(w.as_fd()).expect("dup");
        assert_ne!(a.as_fd().as_raw_fd(), w.as_raw_fd());
        assert!(a.as_fd().as_raw_fd() > 2);
        assert_eq!(a, b);
        assert_ne!(a, HostFd::dup(r.as_fd()).expect("dup"));
        drop(w);
        // The copy is its own: the pipe's write end is still open through it.
        // SAFETY: a write of one byte from a stack buffer to a descriptor we own.
        let n = unsafe { libc::write(a.as_fd().as_raw_fd(), b"x".as_ptr().cast(), 1) };
        assert_eq!(n, 1);
    }

    #[test]
    fn a_descriptor_that_is_not_open_is_refused() {
        assert!(HostFd::dup_raw(-1).is_err());
        assert_eq!(
            HostFd::dup_raw(1_000_000)
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(libc::EBADF)
        );
    }
}
