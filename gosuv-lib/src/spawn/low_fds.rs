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
//! below `top` before the clone: in a [`Block`] of descriptor numbers reserved low when a
//! supervisor is made (while the table is still small), each held by a close-on-exec copy
//! of a placeholder (a memfd of ours) when no child is being made with it, so that the
//! kernel never hands the number out for anything else.
//!
//! Only on Linux 6.11 and later: before, copying a part of a table could carry stale
//! bookkeeping into the child (CVE-2024-45025), or the last few descriptors of the part
//! without their bits (kernels before 5.18). Elsewhere every child copies the whole table.
//! Not under Valgrind either: it stops the whole process at a `clone` that shares the
//! table (it knows only threads, `fork` and `vfork`), so a host checked with it would die
//! at its first start.
//!
//! The blocks are given back (their descriptors closed) when the last supervisor goes. A
//! block whose descriptors are no longer ours (a host that closed descriptors it did not
//! open, and opened files of its own on those numbers) is never written over: it is
//! forgotten and a new one is made.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How many descriptors a child may need: stdin, stdout, stderr, its cgroup's
/// `cgroup.procs` and the status pipe.
pub(super) const SLOTS: usize = 5;

/// Blocks kept: one a spawn in flight. A spawn beyond that many at once waits for one (they
/// are held for a few microseconds each) for at most [`WAIT`], then makes the usual copy of
/// the table (the blocks may all be held by children stuck before `execve`).
const BLOCKS: usize = 8;

/// How long a spawn waits for a free block.
const WAIT: Duration = Duration::from_millis(2);

/// A block of reserved descriptor numbers, held by one spawn.
pub(super) struct Block {
    pub fds: [RawFd; SLOTS],
    /// Above the highest of them, rounded up to a multiple of 64: the child keeps the
    /// descriptors below it.
    pub top: RawFd,
    placeholder: Placeholder,
}

/// The descriptor copied into each free slot, and its identity (a slot holding anything
/// else is not ours any more).
#[derive(Clone, Copy)]
struct Placeholder {
    fd: RawFd,
    dev: u64,
    ino: u64,
}

struct Pool {
    free: Vec<Block>,
    made: usize,
    placeholder: Option<Placeholder>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    free: Vec::new(),
    made: 0,
    placeholder: None,
});

/// Signalled when a block is given back.
static FREED: Condvar = Condvar::new();

fn lock() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this kernel copies a part of a shared table correctly (Linux 6.11 or later),
/// and nothing between us and it would refuse the clone that shares the table.
pub(super) fn usable() -> bool {
    static USABLE: OnceLock<bool> = OnceLock::new();
    *USABLE.get_or_init(|| kernel_at_least(6, 11) && !under_valgrind())
}

/// Whether this process runs under Valgrind, which ends it (rather than failing the call)
/// at a `clone` with `CLONE_FILES` but without `CLONE_THREAD`. Asked of Valgrind itself
/// where we know its client request (x86-64, AArch64): a statically linked host has no
/// preload library to see. Elsewhere, and as a second opinion: Valgrind maps its
/// `vgpreload_*.so` into every dynamically linked process it runs, whatever the process
/// does to `LD_PRELOAD`.
fn under_valgrind() -> bool {
    if valgrind_says_so() {
        return true;
    }
    // Bytes, not text: any path of the process may be other than UTF-8.
    let preloaded = |bytes: &[u8]| bytes.windows(11).any(|w| w == b"/vgpreload_");
    if std::env::var_os("LD_PRELOAD").is_some_and(|v| preloaded(v.as_encoded_bytes())) {
        return true;
    }
    std::fs::read("/proc/self/maps").is_ok_and(|maps| preloaded(&maps))
}

/// Valgrind's `RUNNING_ON_VALGRIND` client request: a sequence of rotations that leave the
/// register as it was and a no-op exchange, which the real CPU runs as nothing (the answer
/// stays the default 0) and Valgrind's CPU answers with its nesting depth.
fn valgrind_says_so() -> bool {
    /// `VG_USERREQ__RUNNING_ON_VALGRIND` of valgrind.h.
    const RUNNING_ON_VALGRIND: usize = 0x1001;
    let args: [usize; 6] = [RUNNING_ON_VALGRIND, 0, 0, 0, 0, 0];
    #[allow(unused_mut)]
    let mut depth: usize = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: four rotations of rdi by 128 bits in all and `xchg rbx, rbx` change no
    // register and no memory on a real CPU; under Valgrind the request reads `args` (six
    // words, alive for the call) and writes only rdx.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") depth,
            in("rax") args.as_ptr(),
            inout("rdi") 0usize => _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: as above: four rotations of x12 by 128 bits in all and `orr x10, x10, x10`
    // change nothing on a real CPU; Valgrind reads `args` through x4 and writes x3.
    unsafe {
        std::arch::asm!(
            "ror x12, x12, #3",
            "ror x12, x12, #13",
            "ror x12, x12, #51",
            "ror x12, x12, #61",
            "orr x10, x10, x10",
            inout("x3") depth,
            in("x4") args.as_ptr(),
            inout("x12") 0usize => _,
            options(nostack, preserves_flags),
        );
    }
    let _ = &args;
    depth != 0
}

fn kernel_at_least(major: u32, minor: u32) -> bool {
    // SAFETY: uname fills the struct it is given.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return false;
    }
    // SAFETY: uname NUL-terminates `release`.
    let release = unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) };
    let mut parts = release
        .to_str()
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (maj, min) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (maj, min) >= (major, minor)
}

/// `fd`'s device and inode, if it is open.
fn identity(fd: RawFd) -> Option<(u64, u64)> {
    // SAFETY: fstat fills the struct it is given; a closed descriptor fails with EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

impl Placeholder {
    /// Whether `fd` holds this placeholder.
    fn holds(&self, fd: RawFd) -> bool {
        identity(fd) == Some((self.dev, self.ino))
    }

    /// The pool's placeholder, made if there is none or it is no longer ours.
    fn of(pool: &mut Pool) -> Option<Placeholder> {
        if let Some(p) = pool.placeholder {
            if p.holds(p.fd) {
                return Some(p);
            }
            // Not ours any more: neither it nor the blocks it fills can be trusted.
            pool.placeholder = None;
            for b in pool.free.drain(..) {
                std::mem::forget(b);
            }
            pool.made = 0;
        }
        // SAFETY: memfd_create with a NUL-terminated name returns a new descriptor, ours.
        let fd = unsafe { libc::memfd_create(c"gosuv-fd-slot".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        let Some((dev, ino)) = identity(fd) else {
            // SAFETY: just made here.
            unsafe { libc::close(fd) };
            return None;
        };
        let p = Placeholder { fd, dev, ino };
        pool.placeholder = Some(p);
        Some(p)
    }
}

impl Block {
    /// A block for one spawn: a free one, else a new one if fewer than [`BLOCKS`] exist
    /// (its numbers are the lowest free ones now), else the first given back within
    /// [`WAIT`]; `None` when none comes or none can be made.
    pub(super) fn take() -> Option<Block> {
        let mut pool = lock();
        let placeholder = Placeholder::of(&mut pool)?;
        let end = Instant::now() + WAIT;
        loop {
            while let Some(b) = pool.free.pop() {
                if b.fds.iter().all(|&fd| placeholder.holds(fd)) {
                    return Some(b);
                }
                // Some number is someone else's now: forgotten, never written over.
                pool.made -= 1;
                std::mem::forget(b);
            }
            if pool.made < BLOCKS {
                let block = Block::make(placeholder)?;
                pool.made += 1;
                return Some(block);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            pool = FREED
                .wait_timeout(pool, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Makes every block not made yet, keeping them for later spawns: done while this
    /// process's descriptor table is still small, so that their numbers are low.
    pub(super) fn reserve() {
        if !usable() {
            return;
        }
        let mut pool = lock();
        let Some(placeholder) = Placeholder::of(&mut pool) else {
            return;
        };
        while pool.made < BLOCKS {
            let Some(block) = Block::make(placeholder) else {
                return;
            };
            pool.made += 1;
            pool.free.push(block);
        }
    }

    /// Closes the free blocks' descriptors that are still ours, and the placeholder: when
    /// no supervisor is left (a block still held is given back as usual and closed with
    /// the next release).
    pub(crate) fn release() {
        let mut pool = lock();
        let free = std::mem::take(&mut pool.free);
        for b in free {
            for &fd in &b.fds {
                if b.placeholder.holds(fd) {
                    // SAFETY: a descriptor of ours (it holds our placeholder).
                    unsafe { libc::close(fd) };
                }
            }
            pool.made -= 1;
            std::mem::forget(b);
        }
        if pool.made == 0 {
            if let Some(p) = pool.placeholder.take() {
                if p.holds(p.fd) {
                    // SAFETY: our placeholder.
                    unsafe { libc::close(p.fd) };
                }
            }
        }
    }

    /// A new block at the lowest free numbers, held by copies of `placeholder`.
    fn make(placeholder: Placeholder) -> Option<Block> {
        let mut fds = [-1; SLOTS];
        for i in 0..SLOTS {
            // SAFETY: F_DUPFD_CLOEXEC of an open descriptor returns a new one, ours.
            let fd = unsafe { libc::fcntl(placeholder.fd, libc::F_DUPFD_CLOEXEC, 3) };
            if fd < 0 {
                for &made in &fds[..i] {
                    // SAFETY: closing the descriptors just made here.
                    unsafe { libc::close(made) };
                }
                return None;
            }
            fds[i] = fd;
        }
        let highest = fds.iter().copied().max().unwrap_or(2);
        Some(Block {
            fds,
            top: (highest / 64 + 1) * 64,
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
        let p = self.placeholder;
        let mut whole = p.holds(p.fd);
        for &slot in &self.fds {
            // SAFETY: dup3 of our placeholder onto a descriptor this block holds.
            if !whole || unsafe { libc::dup3(p.fd, slot, libc::O_CLOEXEC) } < 0 {
                // What the spawn placed must not stay open here (a pipe would never end):
                // closed, and the block is not kept.
                // SAFETY: a descriptor this block holds.
                unsafe { libc::close(slot) };
                whole = false;
            }
        }
        let mut pool = lock();
        // The pool may have been started again meanwhile (its placeholder was lost): then
        // this block is not one of its own.
        let same = pool
            .placeholder
            .is_some_and(|q| (q.fd, q.dev, q.ino) == (p.fd, p.dev, p.ino));
        if whole && same {
            pool.free.push(Block {
                fds: self.fds,
                top: self.top,
                placeholder: p,
            });
        } else if same {
            pool.made = pool.made.saturating_sub(1);
        }
        drop(pool);
        FREED.notify_one();
    }
}
