//! Program output: the pipe drain, the rotating log file, the in-memory tail and live
//! followers (SPEC §4).
//!
//! The drain never waits for anything but the pipe: the file write is a plain append to the
//! page cache, a failing write is counted and the bytes go on to the tail and the followers,
//! and a follower that falls behind is skipped ahead and told how many bytes it missed.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::broadcast;

use crate::spawn::set_nonblocking;

/// Bytes of each stream kept in memory for `tail`.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Chunks a follower may fall behind before it is skipped ahead. With reads of at most
/// [`READ_CHUNK`] bytes this bounds what a stuck follower can hold to 32 MiB a stream (a
/// line-buffered writer's chunks are far smaller).
const FOLLOW_QUEUE: usize = 128;

/// The largest single read from a pipe.
const READ_CHUNK: usize = 256 * 1024;

/// A pipe that filled up gets this much room, so that a chatty child rarely waits on it.
const BIG_PIPE: libc::c_int = 1 << 20;

/// Which output of a program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output (and standard error with `redirect_stderr`).
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl std::str::FromStr for Stream {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stdout" => Ok(Stream::Stdout),
            "stderr" => Ok(Stream::Stderr),
            _ => Err(format!("'{s}' is not a stream: use stdout or stderr")),
        }
    }
}

/// What a follower receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// Output, in order.
    Data(Bytes),
    /// The follower fell behind and this many bytes were skipped.
    Missed(u64),
}

#[derive(Clone, Debug)]
struct Chunk {
    /// Bytes of the stream before this chunk.
    offset: u64,
    data: Bytes,
}

/// A log file that is rotated at a size into `.1 .. .N`.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    backups: u32,
}

impl RotatingFile {
    /// A file at `path`, opened on the first write; `max_bytes == 0` never rotates.
    pub fn new(path: PathBuf, max_bytes: u64, backups: u32) -> Self {
        RotatingFile {
            path,
            file: None,
            size: 0,
            max_bytes,
            backups,
        }
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o640)
                .custom_flags(libc::O_CLOEXEC)
                .open(&self.path)?;
            self.size = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("log file not open"))
    }

    fn backup_path(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file = None;
        if self.backups == 0 {
            std::fs::remove_file(&self.path).or_else(ignore_missing)?;
        } else {
            for n in (1..self.backups).rev() {
                std::fs::rename(self.backup_path(n), self.backup_path(n + 1))
                    .or_else(ignore_missing)?;
            }
            std::fs::rename(&self.path, self.backup_path(1)).or_else(ignore_missing)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Appends `data`, rotating first when it would pass `max_bytes`. After a failure the
    /// file is closed and the next write opens it again, so logging resumes as soon as the
    /// fault clears (a failed open or write costs a syscall or two, not a wait).
    ///
    /// # Errors
    /// The open, rotation or write error; the data is then not in the file.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let r = self.try_write(data);
        if r.is_err() {
            self.file = None;
        }
        r
    }

    fn try_write(&mut self, data: &[u8]) -> io::Result<()> {
        if self.max_bytes > 0 && self.size > 0 && self.size + data.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.open()?.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[derive(Debug, Default)]
struct SinkState {
    file: Option<RotatingFile>,
    tail: VecDeque<u8>,
    total: u64,
    write_errors: u64,
    last_write_error: Option<String>,
    /// Created by the first follower: most streams never have one, and the channel's
    /// buffer is not small.
    followers: Option<broadcast::Sender<Chunk>>,
}

/// One stream of one program: its file, its tail and its followers. Lives as long as the
/// program, across restarts.
#[derive(Debug)]
pub(crate) struct LogSink {
    state: Mutex<SinkState>,
}

/// Counters of one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LogCounters {
    /// Bytes received from the program.
    pub bytes: u64,
    /// Writes to the log file that failed.
    pub write_errors: u64,
    /// The last write error, if any.
    pub last_write_error: Option<String>,
}

impl LogSink {
    pub(crate) fn new(file: Option<RotatingFile>) -> Self {
        LogSink {
            state: Mutex::new(SinkState {
                file,
                ..SinkState::default()
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes one chunk of output: file, tail, followers.
    pub(crate) fn write(&self, data: &[u8]) {
        let mut st = self.lock();
        if let Some(file) = st.file.as_mut() {
            if let Err(e) = file.write(data) {
                let msg = format!("{}: {e}", file.path().display());
                if st.last_write_error.as_deref() != Some(msg.as_str()) {
                    tracing::warn!("log write failed: {msg}");
                }
                st.write_errors += 1;
                st.last_write_error = Some(msg);
            }
        }
        let keep = data.len().min(TAIL_BYTES);
        let excess = (st.tail.len() + keep).saturating_sub(TAIL_BYTES);
        st.tail.drain(..excess);
        st.tail.extend(&data[data.len() - keep..]);
        let offset = st.total;
        st.total += data.len() as u64;
        if let Some(tx) = &st.followers {
            if tx.receiver_count() > 0 {
                let _ = tx.send(Chunk {
                    offset,
                    data: Bytes::copy_from_slice(data),
                });
            } else {
                // The last follower left: free what the channel still holds.
                st.followers = None;
            }
        }
    }

    /// The last `max_bytes` (at most [`TAIL_BYTES`]) of the stream.
    pub(crate) fn tail(&self, max_bytes: usize) -> Vec<u8> {
        let st = self.lock();
        let n = max_bytes.min(st.tail.len());
        st.tail.range(st.tail.len() - n..).copied().collect()
    }

    pub(crate) fn counters(&self) -> LogCounters {
        let st = self.lock();
        LogCounters {
            bytes: st.total,
            write_errors: st.write_errors,
            last_write_error: st.last_write_error.clone(),
        }
    }

    pub(crate) fn follow(&self) -> LogFollower {
        let mut st = self.lock();
        let tx = st
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_QUEUE).0);
        LogFollower {
            rx: tx.subscribe(),
            next: st.total,
            pending: None,
        }
    }

    /// Ends every follower (the program is gone).
    pub(crate) fn close_followers(&self) {
        self.lock().followers = None;
    }

    /// Changes rotation settings (and the file, when `log_disable` changed).
    pub(crate) fn reconfigure(&self, file: Option<RotatingFile>) {
        let mut st = self.lock();
        match (&mut st.file, file) {
            (Some(cur), Some(new)) if cur.path == new.path => {
                cur.max_bytes = new.max_bytes;
                cur.backups = new.backups;
            }
            (slot, new) => *slot = new,
        }
    }
}

/// Live output of one stream, from the moment it was created.
#[derive(Debug)]
pub struct LogFollower {
    rx: broadcast::Receiver<Chunk>,
    next: u64,
    pending: Option<Chunk>,
}

impl LogFollower {
    /// The next piece of output, or `None` once the program is removed.
    pub async fn recv(&mut self) -> Option<LogEvent> {
        loop {
            let chunk = match self.pending.take() {
                Some(c) => c,
                None => match self.rx.recv().await {
                    Ok(c) => c,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            let end = chunk.offset + chunk.data.len() as u64;
            if end <= self.next {
                continue;
            }
            if chunk.offset > self.next {
                let missed = chunk.offset - self.next;
                self.next = chunk.offset;
                // Report the gap first; the chunk itself comes on the next call.
                self.pending = Some(chunk);
                return Some(LogEvent::Missed(missed));
            }
            let skip = (self.next - chunk.offset) as usize;
            self.next = end;
            return Some(LogEvent::Data(chunk.data.slice(skip..)));
        }
    }
}

/// Reads a pipe until EOF, passing every chunk to `sink`. Runs as its own task.
pub(crate) async fn drain(fd: OwnedFd, sink: Arc<LogSink>) {
    if let Err(e) = set_nonblocking(&fd) {
        tracing::error!("cannot make a log pipe non-blocking: {e}");
        return;
    }
    // SAFETY: the OwnedFd moves into the AsyncFd and stays open, the same pipe, until it is
    // dropped with it.
    let afd = match unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) } {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("cannot watch a log pipe: {e}");
            return;
        }
    };
    let mut grown = false;
    loop {
        let mut guard = match afd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("log pipe failed: {e}");
                return;
            }
        };
        // Drain everything that is there before waiting again.
        loop {
            let r = READ_BUF.with_borrow_mut(|buf| {
                let n = read_fd(afd.get_ref(), buf)?;
                if n > 0 {
                    sink.write(&buf[..n]);
                }
                Ok::<usize, io::Error>(n)
            });
            match r {
                Ok(0) => return,
                Ok(n) => {
                    if !grown && n >= 64 * 1024 {
                        grown = true;
                        // SAFETY: F_SETPIPE_SZ on our own pipe; failure just keeps the size.
                        unsafe {
                            libc::fcntl(afd.get_ref().as_raw_fd(), libc::F_SETPIPE_SZ, BIG_PIPE)
                        };
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::error!("reading a log pipe failed: {e}");
                    return;
                }
            }
        }
    }
}

thread_local! {
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_CHUNK]);
}

fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: reading into a buffer we own, of its length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The last `n` lines of `bytes` (a final line without a newline counts).
pub fn last_lines(bytes: &[u8], n: usize) -> &[u8] {
    if n == 0 {
        return &bytes[bytes.len()..];
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut seen = 0;
    for (i, b) in body.iter().enumerate().rev() {
        if *b == b'\n' {
            seen += 1;
            if seen == n {
                return &bytes[i + 1..];
            }
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_counts_from_the_end() {
        assert_eq!(last_lines(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(last_lines(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(last_lines(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(last_lines(b"a\nb\n", 0), b"");
        assert_eq!(last_lines(b"", 3), b"");
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let sink = LogSink::new(None);
        sink.write(&vec![b'a'; TAIL_BYTES]);
        sink.write(b"xyz");
        let t = sink.tail(usize::MAX);
        assert_eq!(t.len(), TAIL_BYTES);
        assert_eq!(&t[t.len() - 3..], b"xyz");
        assert_eq!(sink.tail(2), b"yz");
        sink.write(&vec![b'q'; TAIL_BYTES * 2]);
        assert_eq!(sink.tail(usize::MAX), vec![b'q'; TAIL_BYTES]);
        assert_eq!(sink.counters().bytes, TAIL_BYTES as u64 * 3 + 3);
    }

    #[test]
    fn rotates_into_numbered_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.stdout.log");
        let mut f = RotatingFile::new(path.clone(), 10, 2);
        for chunk in [&b"0123456789"[..], b"abcdefghij", b"ABCDEFGHIJ", b"tail"] {
            f.write(chunk).expect("write");
        }
        let read = |p: &Path| std::fs::read(p).expect("read");
        assert_eq!(read(&path), b"tail");
        assert_eq!(read(&dir.path().join("p.stdout.log.1")), b"ABCDEFGHIJ");
        assert_eq!(read(&dir.path().join("p.stdout.log.2")), b"abcdefghij");
        assert!(!dir.path().join("p.stdout.log.3").exists());
    }

    #[test]
    fn zero_max_never_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let mut f = RotatingFile::new(path.clone(), 0, 3);
        for _ in 0..100 {
            f.write(&[b'x'; 1000]).expect("write");
        }
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 100_000);
        assert!(!dir.path().join("p.log.1").exists());
    }

    #[test]
    fn failed_writes_are_counted_and_the_tail_still_fills() {
        let sink = LogSink::new(Some(RotatingFile::new("/dev/full".into(), 0, 0)));
        sink.write(b"hello\n");
        sink.write(b"again\n");
        let c = sink.counters();
        assert_eq!(c.write_errors, 2);
        assert!(c.last_write_error.is_some());
        assert_eq!(sink.tail(100), b"hello\nagain\n");
    }
}
