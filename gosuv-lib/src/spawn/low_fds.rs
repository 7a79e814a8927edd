//! Low descriptor numbers kept for children's standard streams, so that a child copies a
//! few descriptors, not the supervisor's whole table.
//!
//! A child made by `clone` without `CLONE_FILES` gets a copy of the supervisor's descriptor
//! table, and `execve` then closes every close-on-exec entry of it one by one. With three
//! descriptors a program (two pipes and a pidfd), both grow with the number of programs:
//! at 5,000 programs a profile of the server starting them showed a third of its time in
//! the kernel's `dup_fd` and `do_close_on_exec`, so starting n programs cost O(n²).
//!
//! Instead the child shares the table (`CLONE_FILES`, as it shares the memory), and its
//! first system call is `close_range(top, ~0, CLOSE_RANGE_UNSHARE)`: it takes a table of
//! its own holding only the descriptors below `top`. Everything the child needs is placed
//! below `top` before the clone: in a [`Block`] of descriptor numbers reserved low when the
//! table was still small, each held by a close-on-exec copy of `/dev/null` when no child is
//! being made with it (so the kernel never hands the number out for anything else).

use std::io;
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How many descriptors a child may need: stdin, stdout, stderr, its cgroup's
/// `cgroup.procs` and the status pipe.
pub(super) const SLOTS: usize = 5;

/// Blocks kept: one a spawn in flight. A spawn beyond that many at once waits for one (they
/// are held for a few microseconds each) for at most [`WAIT`], then makes the usual copy of
/// the table (the blocks may all be held by children stuck before `execve`).
const BLOCKS: usize = 8;

/// How long a spawn waits for a free block.
const WAIT: Duration = Duration::from_millis(20);

/// A block of reserved descriptor numbers, held by one spawn.
pub(super) struct Block {
    pub fds: [RawFd; SLOTS],
    /// One above the highest of them: the child keeps the descriptors below it.
    pub top: RawFd,
    /// The descriptor copied back into each slot when the spawn is done.
    placeholder: RawFd,
}

struct Pool {
    free: Vec<Block>,
    made: usize,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    made: 0,
});

/// Signalled when a block is given back.
static FREED: Condvar = Condvar::new();

impl Block {
    /// A block for one spawn: a free one, else a new one if fewer than [`BLOCKS`] exist
    /// (its numbers are the lowest free ones now), else the first given back within
    /// [`WAIT`]; `None` when none comes or none can be made. `placeholder` is a
    /// close-on-exec descriptor of `/dev/null` that stays open.
    pub(super) fn take(placeholder: RawFd) -> Option<Block> {
        let mut pool = POOL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let end = Instant::now() + WAIT;
        while pool.free.is_empty() && pool.made >= BLOCKS {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            pool = FREED
                .wait_timeout(pool, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        if let Some(b) = pool.free.pop() {
            return Some(b);
        }
        let block = Block::make(placeholder)?;
        pool.made += 1;
        Some(block)
    }

    /// Makes every block not made yet, keeping them for later spawns: done while this
    /// process's descriptor table is still small, so that their numbers are low.
    pub(super) fn reserve(placeholder: RawFd) {
        let mut pool = POOL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while pool.made < BLOCKS {
            let Some(block) = Block::make(placeholder) else {
                return;
            };
            pool.made += 1;
            pool.free.push(block);
        }
    }

    /// A new block at the lowest free numbers, held by copies of `placeholder`.
    fn make(placeholder: RawFd) -> Option<Block> {
        let mut fds = [-1; SLOTS];
        for i in 0..SLOTS {
            // SAFETY: F_DUPFD_CLOEXEC of an open descriptor returns a new one, ours.
            let fd = unsafe { libc::fcntl(placeholder, libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                for &made in &fds[..i] {
                    // SAFETY: closing the descriptors just made here.
                    unsafe { libc::close(made) };
                }
                return None;
            }
            fds[i] = fd;
        }
        let top = fds.iter().copied().max().unwrap_or(2) + 1;
        Some(Block {
            fds,
            top,
            placeholder,
        })
    }

    /// Moves the child's descriptors of `io` into this block, and tells the child to keep
    /// only those below its top. `io` is left as it was when one cannot be moved.
    pub(super) fn hold(&self, io: &mut super::ChildIo) -> io::Result<()> {
        let moved = super::ChildIo {
            stdin: self.place(0, io.stdin)?,
            stdout: self.place(1, io.stdout)?,
            stderr: self.place(2, io.stderr)?,
            cgroup_procs: match io.cgroup_procs {
                Some(fd) => Some(self.place(3, fd)?),
                None => None,
            },
            errors: self.place(4, io.errors)?,
            own_files_below: Some(self.top),
        };
        *io = moved;
        Ok(())
    }

    /// Puts a close-on-exec copy of `fd` in slot `i`, replacing what was there in one step;
    /// returns the slot's number.
    pub(super) fn place(&self, i: usize, fd: RawFd) -> io::Result<RawFd> {
        let slot = self.fds[i];
        // SAFETY: dup3 onto a descriptor this block holds: what it held is closed.
        if unsafe { libc::dup3(fd, slot, libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(slot)
    }
}

impl Drop for Block {
    /// Lets go of what the spawn placed (the child has its own copies by now) and gives the
    /// block back.
    fn drop(&mut self) {
        for &slot in &self.fds {
            // SAFETY: dup3 of the placeholder onto a descriptor this block holds. It fails
            // only for a bad descriptor, which neither is.
            unsafe { libc::dup3(self.placeholder, slot, libc::O_CLOEXEC) };
        }
        let block = Block {
            fds: self.fds,
            top: self.top,
            placeholder: self.placeholder,
        };
        // Not dropped again: `block` goes into the pool, and a pool's blocks are never
        // dropped (they live as long as the process).
        POOL.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .free
            .push(block);
        FREED.notify_one();
    }
}
