//! The process-wide threads and the guardian process that supervisors share, and their end
//! when no supervisor is left.
//!
//! Every supervisor, async ([`crate::Supervisor`], counted as long as its programs' tasks
//! live) or blocking ([`crate::blocking::Supervisor`], which the C ABI and the Python module
//! use, counted until its runtime is gone), holds an [`InUse`]. When the last one is
//! released, each shared thread that has nothing to do is told to end and joined: the
//! guardian (told to exit without killing anything, so that only the host's death makes it
//! kill), the log writers (once what is queued is written), the spawn watchdog, the `/proc`
//! pass thread and, last, the orphan reaper (once the guardian just ended is reaped). So a
//! host that freed every supervisor has no gosuv thread left, and a leak checker such as
//! valgrind finds nothing of gosuv's at its exit. Whatever still has work (a program run
//! still listed with the guardian, output to a hung file, a process the reaper waits for)
//! keeps its thread: the releasing thread waits only for what is expected to end, and at
//! most [`END_LIMIT`] for each. Each is started again when it is next needed.
//!
//! Nothing here is held while the threads are ended: a supervisor made meanwhile is not
//! blocked, and the ending stops at the next step (each thread's end is checked under that
//! thread's own lock, so a thread is never ended under a user that started it again).
//!
//! A forked child inherits the count but none of the threads: a release in a child does
//! nothing. The guardian's socket is close-on-exec; a child that neither execs nor exits
//! keeps it open, and with it the guardian, as long as it lives (the host's choice).
//!
//! The subreaper thread of [`crate::enable_subreaper`] (the `gosuv` server, not embedders)
//! runs until the process exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Live holders of an [`InUse`], and how many were ever made (so that an end under way
/// sees that a supervisor was made since it began).
struct Users {
    count: usize,
    generation: u64,
}

static USERS: Mutex<Users> = Mutex::new(Users {
    count: 0,
    generation: 0,
});

/// Runs one end at a time (a second releaser waits for the first, at most its bounded
/// waits).
static ENDING: Mutex<()> = Mutex::new(());

/// How long the releasing thread waits for each thread (or process) that is expected to
/// end: the log writers to write what is queued, the guardian to exit, a thread to return.
pub(crate) const END_LIMIT: Duration = Duration::from_secs(2);

/// Held by every supervisor: the shared threads end when the last one is dropped.
#[derive(Debug)]
pub(crate) struct InUse {
    /// The process that made it (a forked child releases nothing).
    pid: u32,
}

impl InUse {
    pub(crate) fn new() -> InUse {
        let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.count += 1;
        users.generation += 1;
        InUse {
            pid: std::process::id(),
        }
    }
}

impl Drop for InUse {
    fn drop(&mut self) {
        if self.pid != std::process::id() {
            // A forked child: the threads to end are the parent's.
            return;
        }
        let generation = {
            let mut users = USERS.lock().unwrap_or_else(|p| p.into_inner());
            users.count = users.count.saturating_sub(1);
            if users.count > 0 {
                return;
            }
            users.generation
        };
        let _one = ENDING.lock().unwrap_or_else(|p| p.into_inner());
        end_idle_threads(&Idle { generation });
    }
}

/// No supervisor is left, and none was made since the end began.
pub(crate) struct Idle {
    generation: u64,
}

impl Idle {
    pub(crate) fn still(&self) -> bool {
        let users = USERS.lock().unwrap_or_else(|p| p.into_inner());
        users.count == 0 && users.generation == self.generation
    }
}

/// Ends every shared thread that has nothing to do (see the module's text); stops as soon
/// as a supervisor is made.
fn end_idle_threads(idle: &Idle) {
    // Told to exit (killing nothing): the one thing the orphan reaper is to wait for.
    if let Some(guardian) = crate::guardian::end_if_idle(idle) {
        crate::reaper::reap_expected(guardian);
    }
    let steps: [&dyn Fn(); 4] = [
        &|| crate::logs::end_idle_writers(END_LIMIT),
        &crate::spawn::end_watchdog,
        &crate::procfs::end_passes,
        &crate::spawn::release_low_fds,
    ];
    for step in steps {
        if !idle.still() {
            return;
        }
        step();
    }
    if idle.still() {
        crate::reaper::end_orphanage(END_LIMIT);
    }
}

/// One generation of a shared thread: told to end by its own flag (so that a thread started
/// after it is not), and saying when it has ended.
#[derive(Default)]
pub(crate) struct Generation {
    quit: AtomicBool,
    ended: Mutex<bool>,
    ended_cv: Condvar,
}

impl Generation {
    pub(crate) fn quit(&self) {
        self.quit.store(true, Ordering::Release);
    }

    pub(crate) fn is_quit(&self) -> bool {
        self.quit.load(Ordering::Acquire)
    }

    /// Called by the thread as it returns.
    pub(crate) fn ended(&self) {
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.ended_cv.notify_all();
    }

    /// Joins `thread` if it ends within `limit`; else leaves it running (it ends by itself
    /// once what holds it is done). Returns whether it was joined.
    pub(crate) fn join_within(&self, thread: JoinHandle<()>, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        while !*ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::debug!("a gosuv thread did not end in time; it is left running");
                return false;
            }
            ended = self
                .ended_cv
                .wait_timeout(ended, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        drop(ended);
        // It has said so as its last act: the join is at once.
        let _ = thread.join();
        true
    }
}

/// Calls [`Generation::ended`] when dropped: a thread says it ended however it returns.
pub(crate) struct SaysEnded<'a>(pub(crate) &'a Generation);

impl Drop for SaysEnded<'_> {
    fn drop(&mut self) {
        self.0.ended();
    }
}
