//! Program output: the pipe drain, the rotating log file, the in-memory tail and live
//! followers.
//!
//! The drain task reads a pipe (in reads of up to 1 MiB once the pipe has grown to 1 MiB for a
//! chatty program) and gives each chunk to the stream's tail and followers at once. Big
//! chunks are handed, buffer and all, to a log-writer thread, so that reading the pipe and
//! writing the file overlap on two cores; small ones are written right there when the runtime
//! can spare the worker (see `Inline`), else copied to a writer, so a file that is slow or
//! hangs never holds up the runtime. Once `MAX_PENDING` (2 MiB) of a
//! stream waits for the file, the pipe is left unread and the program waits, as it would on
//! a full pipe, so a slow disk costs memory only up to that bound and nothing is dropped. A
//! failing write is counted and the bytes still go to the tail and the followers; a follower
//! that falls behind is skipped ahead and told how many bytes it missed. A program's state
//! changes on an exit or a stop, and a removal is answered, only once its last output has
//! reached the file (waiting a little at most).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::{broadcast, Notify};

use crate::config::HostFd;
use crate::spawn::set_nonblocking;

/// Bytes of each stream kept in memory for `tail`.
pub const TAIL_BYTES: usize = 64 * 1024;

/// Chunks a follower may fall behind before it is skipped ahead. With chunks of at most
/// [`FOLLOW_CHUNK`] bytes this bounds what a stuck follower can hold to 8 MiB a stream (a
/// line-buffered writer's chunks are far smaller).
const FOLLOW_QUEUE: usize = 128;

/// The largest chunk a follower is sent: a bigger read goes out in pieces of this size.
const FOLLOW_CHUNK: usize = 64 * 1024;

/// The largest single read from a pipe: all of a [`BIG_PIPE`], so a chatty child's output
/// costs one wakeup and one file write per pipe-full.
const READ_CHUNK: usize = 1 << 20;

/// A pipe that was found at least half full (the default pipe holds 64 KiB) gets this much
/// room, so that a chatty child rarely waits on it. Only chatty streams grow: the kernel
/// charges a pipe's full size to the user's pipe quota (`fs.pipe-user-pages-soft`), and when
/// that is spent the pipe just keeps its size.
const BIG_PIPE: libc::c_int = 1 << 20;

/// A read at least this big means the pipe was at least half full.
const GROW_AT: usize = 32 * 1024;

/// Chunks at least this big are handed to a log-writer thread in their read buffer (see
/// [`LogSink::take`]); smaller ones are copied. Only a stream that keeps a grown pipe well
/// filled reads this much: a one-off burst is cheaper copied than handed over in a 1 MiB
/// buffer.
const HANDOFF_AT: usize = 256 * 1024;

/// A file write that takes this long marks its file slow: see [`inline`].
const SLOW_WRITE: Duration = Duration::from_millis(10);

/// Small chunks are copied into buffers of at least this size, so that a line-by-line writer's
/// output queued behind a busy writer makes one write, not one a line.
const COPY_CHUNK: usize = 64 * 1024;

/// Output of one stream that may wait for the file before its pipe is left unread: one
/// chunk being written, one queued, and the next one being read.
const MAX_PENDING: usize = 2 * READ_CHUNK;

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

/// How often a log file being written is checked against its path, to notice rotation by
/// another tool (see [`RotatingFile`]).
const MOVED_CHECK: Duration = Duration::from_secs(1);

/// A log file that is rotated at a size into `.1 .. .N`.
///
/// It also follows rotation done by another tool (logrotate, or a user's `mv` or `rm`): at
/// most once a second while it is written, the path is compared with the open file. If the
/// file was moved away or deleted, the next write creates a new one at the path (what was
/// written before went with the old file); if it was truncated in place (`copytruncate`),
/// the size counted towards `max_bytes` starts again from the file's size.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    max_bytes: u64,
    backups: u32,
    /// Device and inode of the open file.
    id: (u64, u64),
    /// When the path was last compared with the open file.
    checked: Instant,
    /// Bytes that failed to reach the file since the last write that did, and why: said in
    /// one line (`[gosuv: N bytes lost: why]`) before the next write that gets through.
    lost: u64,
    lost_why: String,
    /// Refuse anything but a regular file at the path (gosuv's own log).
    strict: bool,
    /// The file's last byte is inside a line (a write that ended mid-line, or failed
    /// there): a marker starts on a line of its own.
    torn: bool,
    /// Each line starts with the time it was written (`log_timestamps`).
    timestamps: bool,
    /// The next byte given starts a line (for `timestamps`): the last one given was `\n`.
    line_start: bool,
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
            id: (0, 0),
            checked: Instant::now(),
            lost: 0,
            lost_why: String::new(),
            torn: false,
            strict: false,
            timestamps: false,
            line_start: true,
        }
    }

    /// A file whose every line starts with the UTC time it was written, RFC 3339 with
    /// milliseconds, and a space. A line written in several pieces gets one, at its start.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// `data` with the time before each line that starts in it.
    fn stamped(&mut self, data: &[u8]) -> Vec<u8> {
        let stamp = crate::events::rfc3339(std::time::SystemTime::now());
        let lines = data.iter().filter(|b| **b == b'\n').count() + 1;
        let mut out = Vec::with_capacity(data.len() + lines * (stamp.len() + 1));
        for piece in data.split_inclusive(|b| *b == b'\n') {
            if self.line_start {
                out.extend_from_slice(stamp.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(piece);
            self.line_start = piece.ends_with(b"\n");
        }
        out
    }

    /// A file that must be a regular file: no FIFO at its path is written (for a log whose
    /// writes must never wait, gosuv's own).
    pub fn strict(mut self) -> Self {
        self.strict = true;
        self
    }

    /// The current file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&mut self) -> io::Result<&mut File> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                crate::files::create_dir_all(dir)?;
            }
            // Never through a link: one planted at a log's path would have a root gosuv
            // append to whatever it points to. A FIFO at a program's log is written like a
            // slow or hung disk (that wait is for the log-writer threads, see `LogSink`);
            // one at gosuv.log (`strict`) is refused: the server's own log must not hang.
            let fifo = !self.strict
                && std::fs::symlink_metadata(&self.path).is_ok_and(|m| {
                    use std::os::unix::fs::FileTypeExt;
                    m.file_type().is_fifo()
                });
            let f = if fifo {
                std::fs::OpenOptions::new()
                    .append(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&self.path)?
            } else {
                crate::files::open_append(&self.path, 0o640)?
            };
            let m = f.metadata()?;
            self.size = m.len();
            self.id = (m.dev(), m.ino());
            self.checked = Instant::now();
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
        let r = if self.timestamps {
            let stamped = self.stamped(data);
            self.try_write(&stamped)
        } else {
            self.try_write(data)
        };
        if r.is_err() {
            self.file = None;
        }
        r
    }

    /// Like [`RotatingFile::write`], with the error as a message that names the file.
    fn write_or_say(&mut self, data: &[u8]) -> Option<String> {
        self.write(data)
            .err()
            .map(|e| crate::files::describe(&self.path, &e))
    }

    /// Notices a rotation by another tool: see [`RotatingFile`].
    fn check_moved(&mut self) {
        self.checked = Instant::now();
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => {
                if m.len() < self.size {
                    self.size = m.len();
                }
            }
            // Moved away or deleted (or the path cannot be read, which reopening will tell):
            // the size that counts is the next file's, which opening it reads.
            _ => {
                self.file = None;
                self.size = 0;
            }
        }
    }

    fn try_write(&mut self, data: &[u8]) -> io::Result<()> {
        let r = self.write_through(data);
        let written = match &r {
            Ok(()) => data.len(),
            Err((written, e)) => {
                self.lost = self
                    .lost
                    .saturating_add(data.len().saturating_sub(*written) as u64);
                self.lost_why = e.to_string();
                *written
            }
        };
        if written > 0 {
            self.torn = data[written - 1] != b'\n';
        }
        r.map_err(|(_, e)| e)
    }

    /// Writes the marker of what was lost (if anything was), then `data`; on failure, how
    /// much of `data` got into the file.
    fn write_through(&mut self, data: &[u8]) -> Result<(), (usize, io::Error)> {
        if self.file.is_some() && self.checked.elapsed() >= MOVED_CHECK {
            self.check_moved();
        }
        let marker = (self.lost > 0).then(|| {
            format!(
                "{}[gosuv: {} bytes lost: {}]\n",
                if self.torn { "\n" } else { "" },
                self.lost,
                self.lost_why
            )
        });
        let extra = marker.as_ref().map_or(0, |m| m.len() as u64);
        if self.max_bytes > 0
            && self.size > 0
            && self.size + extra + data.len() as u64 > self.max_bytes
        {
            self.rotate().map_err(|e| (0, e))?;
        }
        let f = self.open().map_err(|e| (0, e))?;
        if let Some(m) = &marker {
            let r = write_counted(f, m.as_bytes());
            let n = match &r {
                Ok(()) => m.len(),
                Err((n, _)) => *n,
            };
            self.size += n as u64;
            if n > 0 {
                self.torn = m.as_bytes()[n - 1] != b'\n';
            }
            r.map_err(|(_, e)| (0, e))?;
            self.lost = 0;
            self.torn = false;
        }
        let f = self.open().map_err(|e| (0, e))?;
        let r = write_counted(f, data);
        let written = match &r {
            Ok(()) => data.len(),
            Err((n, _)) => *n,
        };
        self.size += written as u64;
        r
    }
}

/// `write_all`, saying on failure how much got written.
fn write_counted(f: &mut File, data: &[u8]) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    while done < data.len() {
        match f.write(&data[done..]) {
            Ok(0) => return Err((done, io::Error::from(io::ErrorKind::WriteZero))),
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err((done, e)),
        }
    }
    Ok(())
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
    tail: VecDeque<u8>,
    total: u64,
    write_errors: u64,
    last_write_error: Option<String>,
    tee_dropped: u64,
    /// Created by the first follower: most streams never have one, and the channel's
    /// buffer is not small.
    followers: Option<broadcast::Sender<Chunk>>,
    /// Output waiting for a log-writer thread, oldest first.
    pending: VecDeque<Pending>,
    /// Bytes in `pending` plus those a log writer is writing now.
    pending_bytes: usize,
    /// A log writer owns this stream's file writes until `pending` is empty.
    writing: bool,
    /// A write took [`SLOW_WRITE`] or more: no more writes on the runtime until a log
    /// writer finds the file fast again.
    slow: bool,
    /// New file settings, for the log writer to take before its next write.
    /// Boxed: rarely set, and every stream of every program has this state.
    reconfigure: Option<Box<Option<RotatingFile>>>,
    /// A host descriptor every byte is copied to (`OutputMode::Tee`), by the log writers
    /// only: it may block for as long as its reader likes, so never on the runtime.
    tee: Option<HostFd>,
}

/// Output on its way to the file: the first `len` bytes of `buf`.
#[derive(Debug)]
struct Pending {
    buf: Vec<u8>,
    len: usize,
}

/// One stream of one program: its file, its tail and its followers. Lives as long as the
/// program, across restarts.
#[derive(Debug)]
pub(crate) struct LogSink {
    state: Mutex<SinkState>,
    /// Taken only to write (or to change the file): never while waiting for `state`, so a
    /// slow disk holds up the file alone, never the tail, the followers or the counters.
    file: Mutex<Option<RotatingFile>>,
    /// Woken whenever a log writer has written a batch or finished.
    written: Notify,
    /// The program is being removed: a copy to the tee writes only what it takes at once
    /// (see [`copy_to`]).
    tee_stop: AtomicBool,
    /// The tee took nothing for a while: see [`copy_to`].
    tee_stalled: AtomicBool,
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
    /// Bytes not copied to the stream's tee descriptor because it did not take them (a
    /// pipe nobody reads), or the program was being removed. Each batch dropped also counts
    /// as a write error.
    pub tee_dropped: u64,
}

impl LogSink {
    pub(crate) fn new(file: Option<RotatingFile>) -> Self {
        LogSink {
            state: Mutex::new(SinkState::default()),
            file: Mutex::new(file),
            written: Notify::new(),
            tee_stop: AtomicBool::new(false),
            tee_stalled: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_file(&self) -> MutexGuard<'_, Option<RotatingFile>> {
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes output that was read into the first `len` bytes of `buf`: the tail and the
    /// followers get it at once; the file gets it here when it is small, nothing of this
    /// stream is queued and `here` allows it (see [`Inline`]), else through a log-writer
    /// thread, so that reading the pipe and writing the file go on side by side, and a file
    /// that is slow or hangs outright holds up neither the runtime nor (with a thread for each
    /// stream being written) the other streams. A big chunk is handed over, `buf` getting a
    /// fresh buffer, rather than copied. Returns whether so much now waits for the file that the pipe should be left
    /// unread for a while (see [`LogSink::wait_for_room`]).
    pub(crate) fn take(self: &Arc<Self>, buf: &mut Vec<u8>, len: usize, here: Inline) -> bool {
        let data = &buf[..len];
        let mut st = self.lock();
        let keep = len.min(TAIL_BYTES);
        let excess = (st.tail.len() + keep).saturating_sub(TAIL_BYTES);
        st.tail.drain(..excess);
        st.tail.extend(&data[len - keep..]);
        let offset = st.total;
        st.total += len as u64;
        if let Some(tx) = &st.followers {
            if tx.receiver_count() > 0 {
                // Pieces of their own: a stuck follower then pins what it holds, not the
                // whole read around it.
                for (i, piece) in data.chunks(FOLLOW_CHUNK).enumerate() {
                    let _ = tx.send(Chunk {
                        offset: offset + (i * FOLLOW_CHUNK) as u64,
                        data: Bytes::copy_from_slice(piece),
                    });
                }
            } else {
                // The last follower left: free what the channel still holds.
                st.followers = None;
            }
        }
        let entered = (len < HANDOFF_AT && !st.writing && !st.slow && st.tee.is_none())
            .then(|| here.enter())
            .flatten();
        if let Some(entered) = entered {
            // Nothing is queued, so writing here keeps the order.
            let new_file = st.reconfigure.take();
            drop(st);
            let started = Instant::now();
            let failed = {
                let mut file = self.lock_file();
                if let Some(new) = new_file {
                    apply_file(&mut file, *new);
                }
                file.as_mut().and_then(|f| f.write_or_say(data))
            };
            drop(entered);
            let slow = started.elapsed() >= SLOW_WRITE;
            if failed.is_some() || slow {
                let mut st = self.lock();
                st.slow |= slow;
                if let Some(msg) = failed {
                    st.count_error(msg);
                }
            }
            return false;
        }
        if len < HANDOFF_AT {
            // Into the last queued copy when it has room (a handed-over buffer never has:
            // its length is its capacity).
            match st.pending.back_mut() {
                Some(last)
                    if last.buf.len() == last.len && last.buf.capacity() - last.len >= len =>
                {
                    last.buf.extend_from_slice(data);
                    last.len += len;
                }
                _ => {
                    let mut copy = Vec::with_capacity(len.max(COPY_CHUNK));
                    copy.extend_from_slice(data);
                    st.pending.push_back(Pending { buf: copy, len });
                }
            }
        } else {
            st.pending.push_back(Pending {
                buf: std::mem::replace(buf, buffers::get()),
                len,
            });
        }
        st.pending_bytes += len;
        let backlogged = st.pending_bytes >= MAX_PENDING;
        let idle = !st.writing;
        st.writing = true;
        drop(st);
        if idle {
            writers::submit(self.clone());
        }
        backlogged
    }

    /// Waits until less than [`MAX_PENDING`] waits for the file.
    async fn wait_for_room(&self) {
        self.wait_until(|st| st.pending_bytes < MAX_PENDING).await;
    }

    /// Waits until `done` holds of the state, checked after each batch a writer finishes.
    async fn wait_until(&self, done: impl Fn(&SinkState) -> bool) {
        loop {
            let woken = self.written.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if done(&self.lock()) {
                return;
            }
            woken.await;
        }
    }

    /// Waits until everything taken so far is in the file (or failed to get there).
    pub(crate) async fn flushed(&self) {
        self.wait_until(|st| !st.writing).await;
    }

    /// On a log-writer thread: writes what is pending, oldest first, until nothing is.
    fn write_pending(&self) {
        loop {
            let (batch, new_file, tee): (Vec<Pending>, _, _) = {
                let mut st = self.lock();
                if st.pending.is_empty() {
                    st.writing = false;
                    drop(st);
                    self.written.notify_waiters();
                    return;
                }
                let batch = st.pending.drain(..).collect();
                (batch, st.reconfigure.take(), st.tee.clone())
            };
            let mut errors = Vec::new();
            let mut tee_dropped = 0;
            let mut bytes = 0;
            let started = Instant::now();
            {
                let mut file = self.lock_file();
                if let Some(new) = new_file {
                    apply_file(&mut file, *new);
                }
                for p in &batch {
                    bytes += p.len;
                    if let Some(msg) = file.as_mut().and_then(|f| f.write_or_say(&p.buf[..p.len])) {
                        errors.push(msg);
                    }
                }
            }
            if let Some(tee) = &tee {
                let mut lost = 0;
                let mut why = None;
                for p in &batch {
                    let data = &p.buf[..p.len];
                    if why.is_some() {
                        // The rest of a batch the descriptor did not take is dropped too.
                        lost += data.len();
                    } else if let Err(d) = copy_to(tee, data, &self.tee_stop, &self.tee_stalled) {
                        lost += d.bytes;
                        why = Some(d.why);
                    }
                }
                if let Some(why) = why {
                    tee_dropped = lost as u64;
                    errors.push(format!(
                        "output not copied to descriptor {}: {why}",
                        tee.as_fd().as_raw_fd()
                    ));
                }
            }
            let fast = started.elapsed() < SLOW_WRITE;
            {
                let mut st = self.lock();
                st.pending_bytes -= bytes;
                st.tee_dropped = st.tee_dropped.saturating_add(tee_dropped);
                if fast {
                    st.slow = false;
                }
                for e in errors {
                    st.count_error(e);
                }
            }
            self.written.notify_waiters();
            for p in batch {
                buffers::put(p.buf);
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
            tee_dropped: st.tee_dropped,
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

    /// The last `max_bytes` kept, and a follower that starts right after them: taken
    /// together, so nothing written in between is missed or seen twice.
    pub(crate) fn tail_and_follow(&self, max_bytes: usize) -> (Vec<u8>, LogFollower) {
        let mut st = self.lock();
        let n = max_bytes.min(st.tail.len());
        let tail = st.tail.range(st.tail.len() - n..).copied().collect();
        let next = st.total;
        let tx = st
            .followers
            .get_or_insert_with(|| broadcast::channel(FOLLOW_QUEUE).0);
        let follower = LogFollower {
            rx: tx.subscribe(),
            next,
            pending: None,
        };
        (tail, follower)
    }

    /// Copies every byte taken from now on to `tee` too (`None`: to no descriptor).
    pub(crate) fn with_tee(self, tee: Option<HostFd>) -> Self {
        self.set_tee(tee);
        self
    }

    /// Copies every byte taken from now on to `tee` too (`None`: to no descriptor).
    pub(crate) fn set_tee(&self, tee: Option<HostFd>) {
        self.lock().tee = tee;
    }

    /// From now on, copies to the tee write only what it takes at once and drop the rest
    /// (the program is being removed): a host descriptor nobody reads never holds up the
    /// removal, nor a log-writer thread, nor the descriptor past it.
    pub(crate) fn stop_tee(&self) {
        self.tee_stop.store(true, Ordering::Release);
    }

    /// Ends every follower (the program is gone).
    pub(crate) fn close_followers(&self) {
        self.lock().followers = None;
    }

    /// Changes rotation settings (and the file, when `log_disable` changed), from the next
    /// write on (on the runtime or by a log writer): output still queued is written with the
    /// new settings. Never waits for the file (a log writer may be stuck on it).
    pub(crate) fn reconfigure(&self, file: Option<RotatingFile>) {
        self.lock().reconfigure = Some(Box::new(file));
    }
}

/// How long a copy to a host descriptor waits for it to take more before the rest of the
/// batch is dropped and the descriptor is marked stalled (see [`copy_to`]).
const TEE_STALL: Duration = Duration::from_secs(1);

/// How often a copy waiting for its descriptor checks whether the stream is being removed.
const TEE_POLL: Duration = Duration::from_millis(50);

/// A copy to a host descriptor that waited longer than [`TEE_STALL`], or that a removal cut
/// short, and what it dropped.
#[derive(Debug)]
struct TeeDropped {
    bytes: usize,
    why: String,
}

/// Writes `data` to a host descriptor, on a log-writer thread, never raising SIGPIPE, and
/// never holding the thread for long: it waits for room at most [`TEE_STALL`] (checking
/// `stop` every [`TEE_POLL`]), then drops the rest and marks the descriptor `stalled`; while
/// it is stalled, or once `stop` is set (the program is being removed), only what it takes
/// at once is written. A descriptor that takes a write again is no longer stalled. A pipe is
/// written at most `PIPE_BUF` bytes at a time, once `poll` says it has room, so a write to a
/// blocking pipe never waits either.
fn copy_to(
    fd: &HostFd,
    mut data: &[u8],
    stop: &AtomicBool,
    stalled: &AtomicBool,
) -> Result<(), TeeDropped> {
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: fstat into a zeroed struct we own, on a descriptor we hold.
    let regular = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(raw, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFREG
    };
    let piece = if regular { data.len() } else { libc::PIPE_BUF };
    let mut waiting_since: Option<Instant> = None;
    let dropped = |bytes: usize, why: String| Err(TeeDropped { bytes, why });
    while !data.is_empty() {
        let hurry = stop.load(Ordering::Acquire) || stalled.load(Ordering::Acquire);
        let wait = if hurry {
            0
        } else {
            let waited = waiting_since.map_or(Duration::ZERO, |t| t.elapsed());
            TEE_POLL.min(TEE_STALL.saturating_sub(waited)).as_millis() as libc::c_int
        };
        let mut p = libc::pollfd {
            fd: raw,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: poll on one descriptor we hold.
        let n = unsafe { libc::poll(&mut p, 1, wait) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return dropped(data.len(), e.to_string());
        }
        if n == 0 {
            if hurry {
                return dropped(data.len(), "it takes no more output".into());
            }
            let since = *waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= TEE_STALL {
                stalled.store(true, Ordering::Release);
                return dropped(
                    data.len(),
                    format!("it took no output for {TEE_STALL:?}: dropping what it does not take at once until it does"),
                );
            }
            continue;
        }
        // Ready, or an error or hang-up the write reports.
        let len = data.len().min(piece);
        match crate::stdin::write_without_sigpipe(raw, &data[..len]) {
            Ok(0) => {
                return dropped(
                    data.len(),
                    io::Error::from(io::ErrorKind::WriteZero).to_string(),
                )
            }
            Ok(n) => {
                data = &data[n..];
                waiting_since = None;
                stalled.store(false, Ordering::Release);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) => {}
            Err(e) => return dropped(data.len(), e.to_string()),
        }
    }
    Ok(())
}

/// Puts new settings in a stream's file slot, keeping the open file when the path is the same.
fn apply_file(slot: &mut Option<RotatingFile>, file: Option<RotatingFile>) {
    match (slot, file) {
        (Some(cur), Some(new)) if cur.path == new.path => {
            cur.max_bytes = new.max_bytes;
            cur.backups = new.backups;
            cur.timestamps = new.timestamps;
        }
        (slot, new) => *slot = new,
    }
}

impl SinkState {
    fn count_error(&mut self, msg: String) {
        if self.last_write_error.as_deref() != Some(msg.as_str()) {
            tracing::warn!("log write failed: {msg}");
        }
        self.write_errors += 1;
        self.last_write_error = Some(msg);
    }
}

/// Whether a drain may write to the file itself, on the runtime. A small write straight to
/// the page cache costs about 5 us of CPU there against 9 through a log-writer thread (the
/// wake-up), which matters for hundreds of line-by-line programs. But a file that hangs
/// outright would hold the worker thread that writes to it for ever, so at most one worker
/// fewer than the runtime has may be in such a write at a time (none on a one-thread
/// runtime): a hung disk can take one worker, never the whole runtime. A stream whose write
/// was slow ([`SLOW_WRITE`]) goes through the writers until they find its file fast again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Inline {
    /// Writes that may be in progress on the runtime at once.
    allowed: usize,
}

/// Writes in progress on the runtime (on any runtime of the process).
static INLINE_WRITES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Inline {
    /// For a drain on the current runtime (none outside one).
    pub(crate) fn here() -> Inline {
        let allowed = tokio::runtime::Handle::try_current()
            .map(|h| h.metrics().num_workers().saturating_sub(1))
            .unwrap_or(0);
        Inline { allowed }
    }

    /// Never on the runtime: every write through a log writer.
    #[cfg(test)]
    pub(crate) const NEVER: Inline = Inline { allowed: 0 };

    /// A write may be made here now, counted until the result is dropped.
    fn enter(self) -> Option<InlineWrite> {
        use std::sync::atomic::Ordering;
        INLINE_WRITES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.allowed).then_some(n + 1)
            })
            .ok()
            .map(|_| InlineWrite)
    }
}

/// A write in progress on the runtime.
struct InlineWrite;

impl Drop for InlineWrite {
    fn drop(&mut self) {
        INLINE_WRITES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// The log-writer threads: process-wide, started as needed, so queued output reaches its
/// file even when the runtime that read it is gone. Each stream is with at most one of them
/// at a time, which keeps its output in order. A stream with output waiting gets a thread
/// of its own rather than waiting behind another stream's file, which may be slow or hang
/// outright, up to [`MAX_THREADS`](writers::MAX_THREADS); a thread idle for
/// [`IDLE_END`](writers::IDLE_END) ends, and every idle one ends when no supervisor is left
/// ([`end_idle_writers`]).
mod writers {
    use std::collections::VecDeque;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::Duration;

    use super::LogSink;

    /// Streams written at once. Past it, a stream waits for the next writer to be free.
    pub(super) const MAX_THREADS: usize = 64;

    /// How long a writer with nothing to do waits before it ends.
    pub(super) const IDLE_END: Duration = Duration::from_secs(10);

    struct Queue {
        sinks: VecDeque<Arc<LogSink>>,
        threads: usize,
        idle: usize,
        /// Idle writers are to end now.
        quit: bool,
        /// The writers started, joined when they are told to end.
        handles: Vec<std::thread::JoinHandle<()>>,
    }

    static QUEUE: Mutex<Queue> = Mutex::new(Queue {
        sinks: VecDeque::new(),
        threads: 0,
        idle: 0,
        quit: false,
        handles: Vec::new(),
    });
    static READY: Condvar = Condvar::new();
    /// Signalled when a writer ends.
    static ENDED: Condvar = Condvar::new();

    /// Ends every writer once the output queued for it is written, waiting at most `limit`
    /// (a writer held by a hung file stays), and joins them.
    pub(super) fn end_idle(limit: Duration) {
        let deadline = std::time::Instant::now() + limit;
        let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
        q.quit = true;
        READY.notify_all();
        while q.threads > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            q = ENDED
                .wait_timeout(q, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        q.quit = false;
        let all_ended = q.threads == 0;
        let (ended, running): (Vec<_>, Vec<_>) = std::mem::take(&mut q.handles)
            .into_iter()
            .partition(|h| all_ended || h.is_finished());
        q.handles = running;
        drop(q);
        for h in ended {
            let _ = h.join();
        }
    }

    /// Has a writer write `sink`'s pending output.
    pub(super) fn submit(sink: Arc<LogSink>) {
        let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
        q.sinks.push_back(sink);
        if q.sinks.len() <= q.idle || q.threads >= MAX_THREADS {
            // An idle writer takes it (or, at the limit, the first one to be done).
            READY.notify_one();
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("gosuv-logwriter".into())
            .spawn(run);
        match spawned {
            Ok(h) => {
                q.threads += 1;
                // Those that ended idle are done: nothing to join them for.
                q.handles.retain(|h| !h.is_finished());
                q.handles.push(h);
            }
            Err(e) if q.threads == 0 => {
                // No writer at all: write here rather than never.
                tracing::error!("cannot start a log-writer thread: {e}");
                let sinks: Vec<_> = q.sinks.drain(..).collect();
                drop(q);
                for s in sinks {
                    s.write_pending();
                }
            }
            Err(e) => {
                tracing::warn!("cannot start another log-writer thread: {e}");
                READY.notify_one();
            }
        }
    }

    fn run() {
        loop {
            let sink = {
                let mut q = QUEUE.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if let Some(s) = q.sinks.pop_front() {
                        break s;
                    }
                    if q.quit {
                        q.threads -= 1;
                        ENDED.notify_all();
                        return;
                    }
                    q.idle += 1;
                    let (guard, waited) = READY
                        .wait_timeout(q, IDLE_END)
                        .unwrap_or_else(|p| p.into_inner());
                    q = guard;
                    q.idle -= 1;
                    if (waited.timed_out() || q.quit) && q.sinks.is_empty() {
                        q.threads -= 1;
                        ENDED.notify_all();
                        return;
                    }
                }
            };
            sink.write_pending();
        }
    }
}

/// Ends the idle log-writer threads and joins them (at most `limit` for those still
/// writing). Called when no supervisor is left; the next output starts new ones.
pub(crate) fn end_idle_writers(limit: Duration) {
    writers::end_idle(limit);
}

/// Read buffers of [`READ_CHUNK`] bytes, handed from the drain to a log writer and back.
mod buffers {
    use std::sync::Mutex;

    use super::READ_CHUNK;

    /// Spare buffers kept for the next big read: enough for one chatty stream's round trip.
    const KEEP: usize = 2;

    static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

    /// A buffer of [`READ_CHUNK`] bytes (new ones cost no memory until written).
    pub(super) fn get() -> Vec<u8> {
        SPARE
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(|| vec![0; READ_CHUNK])
    }

    /// Gives a read buffer back (other buffers are just freed).
    pub(super) fn put(buf: Vec<u8>) {
        if buf.len() != READ_CHUNK {
            return;
        }
        let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < KEEP {
            spare.push(buf);
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
    let here = Inline::here();
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
            let mut backlogged = false;
            let r = READ_BUF.with_borrow_mut(|buf| {
                let n = read_fd(afd.get_ref(), buf)?;
                if n > 0 {
                    backlogged = sink.take(buf, n, here);
                }
                Ok::<usize, io::Error>(n)
            });
            if backlogged {
                // The disk is slower than the program: stop reading, so the program waits
                // on its pipe, until the file has caught up.
                sink.wait_for_room().await;
            }
            match r {
                Ok(0) => return,
                Ok(n) => {
                    if !grown && n >= GROW_AT {
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
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(buffers::get());
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

    /// Hands `data` to `sink` the way the drain does.
    fn take(sink: &Arc<LogSink>, data: &[u8]) {
        let mut buf = data.to_vec();
        sink.take(&mut buf, data.len(), Inline::NEVER);
    }

    #[test]
    fn tail_keeps_the_last_bytes() {
        let sink = Arc::new(LogSink::new(None));
        take(&sink, &vec![b'a'; TAIL_BYTES]);
        take(&sink, b"xyz");
        let t = sink.tail(usize::MAX);
        assert_eq!(t.len(), TAIL_BYTES);
        assert_eq!(&t[t.len() - 3..], b"xyz");
        assert_eq!(sink.tail(2), b"yz");
        take(&sink, &vec![b'q'; TAIL_BYTES * 2]);
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
    fn timestamps_start_every_line_once_across_writes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let mut f = RotatingFile::new(path.clone(), 0, 0).timestamps(true);
        for chunk in [&b"ab"[..], b"c\nd", b"\n", b"", b"\n\ne"] {
            f.write(chunk).expect("write");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        let stamp = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ").expect("re");
        assert_eq!(
            stamp.replace_all(&text, "T "),
            "T abc\nT d\nT \nT \nT e",
            "{text:?}"
        );
        // Settings changed on the same path keep the line's state.
        let mut slot = Some(f);
        apply_file(
            &mut slot,
            Some(RotatingFile::new(path.clone(), 0, 3).timestamps(true)),
        );
        slot.as_mut().expect("file").write(b"f\n").expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with("Z ef\n"), "{text:?}");
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

    #[tokio::test]
    async fn failed_writes_are_counted_and_the_tail_still_fills() {
        let sink = Arc::new(LogSink::new(Some(RotatingFile::new(
            "/dev/full".into(),
            0,
            0,
        ))));
        take(&sink, b"hello\n");
        sink.flushed().await;
        take(&sink, b"again\n");
        sink.flushed().await;
        let c = sink.counters();
        assert_eq!(c.write_errors, 2);
        assert!(c.last_write_error.is_some());
        assert_eq!(sink.tail(100), b"hello\nagain\n");
    }

    #[tokio::test]
    async fn big_chunks_reach_the_file_in_order_through_the_writers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.log");
        let sink = Arc::new(LogSink::new(Some(RotatingFile::new(path.clone(), 0, 0))));
        let mut expected = Vec::new();
        for i in 0..40u8 {
            // Big chunks go to a writer thread, small ones queue behind them.
            let len = if i % 3 == 0 {
                100
            } else {
                HANDOFF_AT + i as usize
            };
            let chunk = vec![b'a' + i % 26; len];
            expected.extend_from_slice(&chunk);
            let mut buf = buffers::get();
            buf[..len].copy_from_slice(&chunk);
            sink.take(&mut buf, len, Inline::NEVER);
            assert_eq!(buf.len(), READ_CHUNK, "the drain keeps a full-size buffer");
        }
        sink.flushed().await;
        assert!(std::fs::read(&path).expect("read") == expected);
        assert_eq!(sink.counters().bytes, expected.len() as u64);
    }
}
