//! Making the child: a new process with a pidfd from birth, placed in its cgroup by the
//! kernel where it has one, without copying the supervisor.
//!
//! The child shares the supervisor's memory until `execve` (`CLONE_VM | CLONE_VFORK`, as
//! `posix_spawn` does): no page table is copied and no page of the supervisor is made
//! copy-on-write, so a spawn costs the same whatever the supervisor's size, and the
//! supervisor's own writes after it take no fault. The calling thread sleeps until the
//! child has called `execve` (or exited); the child runs on a stack of its own from a small
//! pool, and makes only system calls on data prepared before (see `child_main`).
//!
//! A child that never reaches `execve` (a working directory or a program on a hung network
//! file system) would hold its thread for ever: a watchdog thread kills it through its
//! pidfd once [`super::EXEC_DEADLINE`] has passed, and the start fails as stuck.
//!
//! Where the shared-memory clone is not available (`clone3` refused and a cgroup to start
//! in, or an architecture without the few instructions below), the child is a copy of the
//! supervisor as with `fork`, and the caller bounds the wait on its status pipe instead.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::process_wide::{Generation, SaysEnded, END_LIMIT};

/// `clone3`'s arguments (linux/sched.h), up to `cgroup`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Set once `clone3` turned out to be refused here (a seccomp filter, an old kernel).
static NO_CLONE3: AtomicBool = AtomicBool::new(false);

/// Set once a shared-memory clone was refused (a seccomp filter that allows only fork's
/// flags): every later child is a copy.
static NO_SHARED: AtomicBool = AtomicBool::new(false);

/// Set once a shared-memory clone that also shared the descriptor table was refused (a
/// filter that allows `posix_spawn`'s flags only): such children copy the table.
static NO_SHARED_FILES: AtomicBool = AtomicBool::new(false);

/// `CLONE_INTO_CGROUP` (linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// A child just made.
pub(super) struct Forked {
    pub pid: u32,
    pub pidfd: OwnedFd,
    /// The watchdog killed it before it reached `execve`.
    pub killed: bool,
    /// It shared this process's memory: it has called `execve` or exited by now.
    pub shared: bool,
}

/// Makes a child with `CLONE_PIDFD` (and `CLONE_INTO_CGROUP` into the cgroup whose
/// directory is `cgroup`) that runs `child`, which must never return; returns its pid and
/// pidfd. Every signal is blocked around the clone, so no handler of the host runs in the
/// child before it has reset them. When the child shares this process's memory, this
/// returns once it has called `execve` or exited, or was killed after `deadline`. With
/// `share_files`, such a child shares this process's descriptor table too (`CLONE_FILES`):
/// `child` must then take a table of its own before it changes any descriptor. (A copy has
/// a copy of the table anyway.)
///
/// # Errors
/// `EINVAL` with a cgroup: this kernel cannot start a child in a cgroup (before 5.7), or
/// `clone3` is refused (then the child cannot be placed by the kernel either).
///
/// # Safety
/// `child` runs in a process where only this thread exists, which may share this process's
/// memory: it may only make system calls (no allocation, no lock, no panic), must not
/// write to anything but its own stack and must end with `execve` or `_exit`.
pub(super) unsafe fn clone_child(
    cgroup: Option<RawFd>,
    share_files: bool,
    deadline: Duration,
    child: impl FnOnce(),
) -> io::Result<Forked> {
    // The watchdog's thread is started before every signal is blocked: a thread inherits its
    // maker's mask, and one with glibc's signal 33 blocked would hang every later setuid()
    // of the host (glibc waits for each thread to answer that signal).
    let _ = watchdog();
    // The system call: glibc's `pthread_sigmask` leaves its own two signals (32 and 33)
    // unblocked, and their handlers must not run in the child either.
    let all: u64 = !0;
    let mut old: u64 = 0;
    sigprocmask(libc::SIG_SETMASK, &all, &mut old);
    let mut child = Some(child);
    let shared = if NO_SHARED.load(Ordering::Relaxed) {
        None
    } else {
        clone_shared(cgroup, share_files, deadline, &mut child)
    };
    let r = match shared {
        Some(r) => r,
        None => match child.take() {
            Some(f) => clone_copy(cgroup, f),
            None => Err(io::Error::from_raw_os_error(libc::EINVAL)),
        },
    };
    sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    r.map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => io::Error::new(
            e.kind(),
            format!("{e} (gosuv needs Linux 5.4 or later for pidfds)"),
        ),
        _ => e,
    })
}

/// `rt_sigprocmask` itself, on the kernel's 64-bit signal set.
///
/// # Safety
/// `set` and `old` must be null or point to a `u64`.
pub(super) unsafe fn sigprocmask(how: libc::c_int, set: *const u64, old: *mut u64) {
    libc::syscall(
        libc::SYS_rt_sigprocmask,
        how,
        set,
        old,
        std::mem::size_of::<u64>(),
    );
}

/// The error of the last failed call, as an errno.
fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::ENOSYS)
}

/// The child of a shared-memory clone: runs the closure `arg` points to, then exits.
extern "C" fn shared_child<F: FnOnce()>(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `Option<F>` of `clone_shared`'s caller, whose thread sleeps until
    // this child has called `execve` or exited (CLONE_VFORK): nothing else touches it.
    let f = unsafe { (*arg.cast::<Option<F>>()).take() };
    if let Some(f) = f {
        f();
    }
    // SAFETY: ends this child only.
    unsafe { libc::_exit(127) }
}

/// The shared-memory clone; `None` when this kernel or its filter refuses one (the caller
/// then makes a copy). Takes the closure out of `child` only when it ran.
unsafe fn clone_shared<F: FnOnce()>(
    cgroup: Option<RawFd>,
    share_files: bool,
    deadline: Duration,
    child: &mut Option<F>,
) -> Option<io::Result<Forked>> {
    if cgroup.is_some() && (NO_CLONE3.load(Ordering::Relaxed) || !HAVE_CLONE3_SHARED) {
        return None;
    }
    let share_files = share_files && !NO_SHARED_FILES.load(Ordering::Relaxed);
    let stack = match Stack::take() {
        Ok(s) => s,
        Err(e) => return Some(Err(e)),
    };
    let arg: *mut libc::c_void = (child as *mut Option<F>).cast();
    let watch = Watch::start(deadline);
    let files = if share_files { libc::CLONE_FILES } else { 0 };
    let (ret, err) = match cgroup {
        Some(dir) => {
            let args = CloneArgs {
                flags: (libc::CLONE_PIDFD | libc::CLONE_VM | libc::CLONE_VFORK | files) as u64
                    | CLONE_INTO_CGROUP,
                pidfd: watch.slot() as u64,
                exit_signal: libc::SIGCHLD as u64,
                stack: stack.base as u64,
                stack_size: stack.len as u64,
                cgroup: dir as u64,
                ..CloneArgs::default()
            };
            let ret = clone3_shared(&args, shared_child::<F>, arg);
            if ret < 0 {
                (-1, (-ret) as i32)
            } else {
                (ret, 0)
            }
        }
        None => {
            let ret = libc::clone(
                shared_child::<F>,
                stack.top(),
                libc::CLONE_PIDFD | libc::CLONE_VM | libc::CLONE_VFORK | files | libc::SIGCHLD,
                arg,
                watch.slot(),
            );
            (
                libc::c_long::from(ret),
                if ret < 0 { last_errno() } else { 0 },
            )
        }
    };
    let (pidfd, killed) = watch.finish();
    stack.give_back();
    if ret > 0 {
        return Some(Ok(Forked {
            pid: ret as u32,
            pidfd: OwnedFd::from_raw_fd(pidfd),
            killed,
            shared: true,
        }));
    }
    match err {
        // The same without the shared table: if that is taken, the shared table was what
        // was refused (not clone3 itself, say), and is not asked for again.
        libc::EPERM | libc::EINVAL | libc::ENOSYS if share_files => {
            let again = clone_shared(cgroup, false, deadline, child);
            if matches!(again, Some(Ok(_))) {
                NO_SHARED_FILES.store(true, Ordering::Relaxed);
            }
            again
        }
        // clone3 unknown or filtered: where a cgroup was wanted, the caller moves the child
        // itself (and the next try takes clone(2)).
        libc::ENOSYS | libc::EPERM if cgroup.is_some() => {
            NO_CLONE3.store(true, Ordering::Relaxed);
            Some(Err(io::Error::from_raw_os_error(libc::EINVAL)))
        }
        // CLONE_INTO_CGROUP unknown (before 5.7: 5.4-5.6 refuse the longer struct with E2BIG
        // before looking at any flag): the caller moves the child itself.
        libc::EINVAL | libc::E2BIG if cgroup.is_some() => {
            Some(Err(io::Error::from_raw_os_error(libc::EINVAL)))
        }
        // A filter that refuses these flags: copies from now on.
        libc::EPERM | libc::EINVAL | libc::ENOSYS => {
            NO_SHARED.store(true, Ordering::Relaxed);
            tracing::debug!(
                "no shared-memory clone here ({}); children are copies",
                io::Error::from_raw_os_error(err)
            );
            None
        }
        _ => Some(Err(io::Error::from_raw_os_error(err))),
    }
}

/// Whether this architecture has [`clone3_shared`].
const HAVE_CLONE3_SHARED: bool = cfg!(target_arch = "x86_64");

/// `clone3` with a new stack: the child starts on it and calls `entry(arg)`, which never
/// returns. Returns the child's pid, or `-errno`. (glibc has no `clone3` wrapper; the child
/// cannot return into this function's frame, which is on the parent's stack.)
///
/// # Safety
/// `args` must name a stack the child may use and `entry` must end the child.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_shared(
    args: &CloneArgs,
    entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    arg: *mut libc::c_void,
) -> libc::c_long {
    let ret: libc::c_long;
    std::arch::asm!(
        "syscall",
        "test rax, rax",
        "jnz 2f",
        // The child, on its new stack (16-byte aligned: the kernel puts the stack pointer at
        // its top). No frame to return to: clear the frame pointer, call, and exit if it
        // ever returns.
        "xor ebp, ebp",
        "mov rdi, r12",
        "call r13",
        "mov edi, 127",
        "mov eax, {exit}",
        "syscall",
        "ud2",
        "2:",
        exit = const libc::SYS_exit_group,
        inlateout("rax") libc::SYS_clone3 => ret,
        in("rdi") std::ptr::from_ref(args),
        in("rsi") std::mem::size_of::<CloneArgs>(),
        in("r12") arg,
        in("r13") entry,
        lateout("rcx") _,
        lateout("r11") _,
        options(nostack),
    );
    ret
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_shared(
    _args: &CloneArgs,
    _entry: extern "C" fn(*mut libc::c_void) -> libc::c_int,
    _arg: *mut libc::c_void,
) -> libc::c_long {
    -libc::c_long::from(libc::ENOSYS)
}

/// A stack for a shared-memory child: an anonymous mapping with a guard page at its bottom.
struct Stack {
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: a mapping nobody else refers to while it is out of the pool.
unsafe impl Send for Stack {}

/// A child's stack: it only makes system calls, so a few pages are touched.
const STACK_LEN: usize = 256 * 1024;

/// Stacks kept for the next spawns (one per thread spawning at the same time).
const STACKS_KEPT: usize = 8;

static STACKS: Mutex<Vec<Stack>> = Mutex::new(Vec::new());

impl Stack {
    fn take() -> io::Result<Stack> {
        if let Some(s) = STACKS.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(s);
        }
        // SAFETY: a new private mapping; on success its lowest page becomes the guard.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let stack = Stack {
                base,
                len: STACK_LEN,
            };
            let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
            if libc::mprotect(base, page, libc::PROT_NONE) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(stack)
        }
    }

    /// Its highest address, where a stack starts.
    fn top(&self) -> *mut libc::c_void {
        // SAFETY: one past the end of the mapping.
        unsafe { self.base.cast::<u8>().add(self.len).cast() }
    }

    fn give_back(self) {
        let mut pool = STACKS.lock().unwrap_or_else(PoisonError::into_inner);
        if pool.len() < STACKS_KEPT {
            pool.push(self);
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which no child uses any more.
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// The watchdog's list of children between clone and `execve`.
struct InFlight {
    id: u64,
    due: Instant,
    /// Where the kernel puts the child's pidfd (before the child runs); in the frame of a
    /// thread that is asleep in clone until the entry is removed.
    slot: *const AtomicI32,
    killed: bool,
}

// SAFETY: `slot` is only read under the list's lock, while its owner is registered.
unsafe impl Send for InFlight {}

struct Watchdog {
    list: Mutex<Vec<InFlight>>,
    more: Condvar,
    /// Its thread, while one runs: ended when no supervisor is left ([`end_watchdog`]).
    /// Held while an entry is added, so the thread is not ended in between.
    thread: Mutex<Option<DogThread>>,
}

struct DogThread {
    handle: std::thread::JoinHandle<()>,
    /// Told to end under the list's lock, when the list is empty.
    generation: Arc<Generation>,
}

static DOG: Watchdog = Watchdog {
    list: Mutex::new(Vec::new()),
    more: Condvar::new(),
    thread: Mutex::new(None),
};

/// The watchdog, its thread started if none runs; `None` if it cannot be started.
fn watchdog() -> Option<&'static Watchdog> {
    let dog = &DOG;
    let mut thread = dog.thread.lock().unwrap_or_else(PoisonError::into_inner);
    running(dog, &mut thread).then_some(dog)
}

/// Starts the watchdog's thread if none runs (`thread`: its locked slot); whether one runs.
fn running(dog: &'static Watchdog, thread: &mut Option<DogThread>) -> bool {
    if thread.is_some() {
        return true;
    }
    let generation = Arc::new(Generation::default());
    let g = generation.clone();
    // A thread that could not be started is tried again at the next spawn (a passing limit
    // on threads must not leave every later stuck child unwatched).
    match std::thread::Builder::new()
        .name("gosuv-spawn-watch".into())
        .spawn(move || watch_loop(dog, &g))
    {
        Ok(handle) => {
            *thread = Some(DogThread { handle, generation });
            true
        }
        Err(e) => {
            tracing::error!(
                "cannot start the thread that kills children stuck before running their \
                 program: {e}; such a child would hold its thread"
            );
            false
        }
    }
}

/// Ends the watchdog's thread if no child is in its list, and joins it (at most
/// [`END_LIMIT`]). Called when no supervisor is left; the next spawn starts a new thread.
/// Nothing is held while it waits: a spawn meanwhile starts a thread of its own.
pub(crate) fn end_watchdog() {
    let dog = &DOG;
    let ending = {
        let mut thread = dog.thread.lock().unwrap_or_else(PoisonError::into_inner);
        let list = dog.list.lock().unwrap_or_else(PoisonError::into_inner);
        if !list.is_empty() {
            return;
        }
        let Some(t) = thread.take() else {
            return;
        };
        t.generation.quit();
        t
    };
    dog.more.notify_all();
    ending.generation.join_within(ending.handle, END_LIMIT);
}

fn watch_loop(dog: &'static Watchdog, generation: &Generation) {
    let _says = SaysEnded(generation);
    // glibc's own two signals (cancellation, and the setuid() broadcast every thread must
    // answer) are never to be blocked here, whatever mask this thread was made with.
    let glibc: u64 = (1 << (32 - 1)) | (1 << (33 - 1));
    // SAFETY: changes this thread's mask only.
    unsafe { sigprocmask(libc::SIG_UNBLOCK, &glibc, std::ptr::null_mut()) };
    let mut list = dog.list.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        // Told to end with the list empty: an entry added since went with a new thread.
        if generation.is_quit() {
            return;
        }
        let now = Instant::now();
        for e in list.iter_mut().filter(|e| !e.killed && e.due <= now) {
            // SAFETY: the slot's owner is asleep in clone while its entry is listed, and
            // removes it under this lock before its frame ends.
            let fd = unsafe { (*e.slot).load(Ordering::Acquire) };
            if fd >= 0 {
                // SAFETY: pidfd_send_signal on the pidfd of a child that has not reached
                // execve; the descriptor stays open while the entry is listed.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd,
                        libc::SIGKILL,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
                // The kernel writes the number before it installs the descriptor: a clone
                // that slow gets another try on the next round.
                e.killed = r == 0 || last_errno() == libc::ESRCH;
            }
        }
        let next = list
            .iter()
            .filter(|e| !e.killed)
            .map(|e| e.due.max(now + Duration::from_millis(10)))
            .min();
        list = match next {
            Some(t) => {
                dog.more
                    .wait_timeout(list, t.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => dog.more.wait(list).unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// One child's entry with the watchdog, and the slot for its pidfd.
struct Watch {
    id: u64,
    slot: Box<AtomicI32>,
    dog: Option<&'static Watchdog>,
}

impl Watch {
    fn start(deadline: Duration) -> Watch {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let slot = Box::new(AtomicI32::new(-1));
        let dog = &DOG;
        // Held until the entry is in: the thread cannot be ended in between.
        let mut thread = dog.thread.lock().unwrap_or_else(PoisonError::into_inner);
        let dog = running(dog, &mut thread).then_some(dog);
        if let Some(dog) = dog {
            let due = Instant::now() + deadline;
            let mut list = dog.list.lock().unwrap_or_else(PoisonError::into_inner);
            // The dog sleeps until the earliest due entry: it needs waking only when this
            // one is due sooner (spawns all have the same deadline: it rarely is).
            let wake = list
                .iter()
                .filter(|e| !e.killed)
                .map(|e| e.due)
                .min()
                .is_none_or(|first| due < first);
            list.push(InFlight {
                id,
                due,
                slot: &*slot,
                killed: false,
            });
            drop(list);
            drop(thread);
            if wake {
                dog.more.notify_one();
            }
        }
        Watch { id, slot, dog }
    }

    /// Where the kernel writes the pidfd, as clone's `parent_tid` / clone3's `pidfd`.
    fn slot(&self) -> *mut libc::c_int {
        self.slot.as_ptr()
    }

    /// Leaves the list; returns the pidfd and whether the watchdog killed the child.
    fn finish(self) -> (RawFd, bool) {
        let killed = self.dog.is_some_and(|dog| {
            let mut list = dog.list.lock().unwrap_or_else(PoisonError::into_inner);
            match list.iter().position(|e| e.id == self.id) {
                Some(i) => list.swap_remove(i).killed,
                None => false,
            }
        });
        (self.slot.load(Ordering::Acquire), killed)
    }
}

/// A copy of this process, as `fork`: where a shared-memory clone is not available.
unsafe fn clone_copy(cgroup: Option<RawFd>, child: impl FnOnce()) -> io::Result<Forked> {
    let mut pidfd: libc::c_int = -1;
    let mut ret: libc::c_long = -1;
    let mut err = libc::ENOSYS;
    if !NO_CLONE3.load(Ordering::Relaxed) {
        let args = CloneArgs {
            flags: libc::CLONE_PIDFD as u64 | cgroup.map_or(0, |_| CLONE_INTO_CGROUP),
            pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup.map_or(0, |fd| fd as u64),
            ..CloneArgs::default()
        };
        ret = libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of!(args),
            std::mem::size_of::<CloneArgs>(),
        );
        if ret < 0 {
            err = last_errno();
            if matches!(err, libc::ENOSYS | libc::EPERM) {
                NO_CLONE3.store(true, Ordering::Relaxed);
            }
            // No CLONE_INTO_CGROUP (5.4-5.6 refuse the longer struct): the caller moves
            // the child itself.
            if err == libc::E2BIG && cgroup.is_some() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
        }
    }
    if ret < 0 && NO_CLONE3.load(Ordering::Relaxed) {
        if cgroup.is_some() {
            // clone(2) cannot place a child in a cgroup: the caller moves it instead.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        ret = legacy_clone(&mut pidfd);
        if ret < 0 {
            err = last_errno();
        }
    }
    if ret == 0 {
        child();
        libc::_exit(127);
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(Forked {
        pid: ret as u32,
        pidfd: OwnedFd::from_raw_fd(pidfd),
        killed: false,
        shared: false,
    })
}

/// `clone(CLONE_PIDFD | SIGCHLD)` with fork's semantics: the pidfd lands in `*pidfd` (the
/// `parent_tid` argument, third on every architecture gosuv builds for).
///
/// # Safety
/// As `fork`.
#[cfg(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
))]
unsafe fn legacy_clone(pidfd: &mut libc::c_int) -> libc::c_long {
    libc::syscall(
        libc::SYS_clone,
        (libc::CLONE_PIDFD | libc::SIGCHLD) as libc::c_ulong,
        0 as libc::c_ulong,
        pidfd as *mut libc::c_int,
        0 as libc::c_ulong,
        0 as libc::c_ulong,
    )
}

#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64"
)))]
unsafe fn legacy_clone(_pidfd: &mut libc::c_int) -> libc::c_long {
    *libc::__errno_location() = libc::ENOSYS;
    -1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that never reaches `execve` is killed by the watchdog once its deadline has
    /// passed, and the clone returns.
    #[test]
    fn a_child_stuck_before_execve_is_killed() {
        let t = Instant::now();
        // SAFETY: the child only makes system calls: it pauses until killed.
        let forked = unsafe {
            clone_child(None, false, Duration::from_millis(300), || loop {
                libc::syscall(libc::SYS_pause);
            })
        }
        .expect("clone");
        let took = t.elapsed();
        if NO_SHARED.load(Ordering::Relaxed) {
            eprintln!("SKIPPED: no shared-memory clone here; children are copies");
            // SAFETY: our own child.
            unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    std::os::fd::AsRawFd::as_raw_fd(&forked.pidfd),
                    libc::SIGKILL,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                );
            }
        } else {
            assert!(forked.killed, "the watchdog killed it");
            assert!(took >= Duration::from_millis(300), "{took:?}");
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
        // Its exit: killed by SIGKILL.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child's pidfd.
        let r = unsafe {
            libc::waitid(
                libc::P_PIDFD,
                std::os::fd::AsRawFd::as_raw_fd(&forked.pidfd) as libc::id_t,
                &mut info,
                libc::WEXITED,
            )
        };
        assert_eq!(r, 0);
        // SAFETY: a CLD_KILLED siginfo carries the signal in si_status.
        assert_eq!(unsafe { info.si_status() }, libc::SIGKILL);
    }
}

#[cfg(test)]
mod ending {
    use super::*;
    use std::sync::mpsc::channel;

    /// Registers a watch, due at once, on a `sleep` child of ours: the watchdog (whichever
    /// thread runs it) must kill it. Returns whether it did, within 10 s.
    fn a_due_watch_is_killed() -> bool {
        let mut child = match std::process::Command::new("sleep").arg("30").spawn() {
            Ok(c) => c,
            Err(e) => panic!("cannot start sleep: {e}"),
        };
        // SAFETY: pidfd_open on our own unreaped child.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        assert!(fd >= 0, "pidfd_open");
        // SAFETY: a new descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        let watch = Watch::start(Duration::ZERO);
        watch
            .slot
            .store(std::os::fd::AsRawFd::as_raw_fd(&fd), Ordering::Release);
        // The slot was empty when the watch began: wake the dog for another look.
        DOG.more.notify_all();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = false;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                killed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = watch.finish();
        let _ = child.kill();
        let _ = child.wait();
        killed
    }

    /// The last supervisor's end racing spawns: never a hang (it was a deadlock: the end
    /// joined the thread holding the lock the spawn needed, while the spawn's entry kept
    /// the thread going), and every spawn is watched, by whichever thread runs.
    #[test]
    fn ending_the_watchdog_while_spawns_register_never_hangs() {
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            let ender = std::thread::spawn(|| {
                for _ in 0..300 {
                    end_watchdog();
                }
            });
            let spawner = std::thread::spawn(|| {
                for _ in 0..300 {
                    let w = Watch::start(Duration::from_secs(30));
                    let _ = w.finish();
                }
            });
            let _ = ender.join();
            let _ = spawner.join();
            let _ = tx.send(a_due_watch_is_killed());
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(killed) => assert!(killed, "a due child was not killed after the ends"),
            Err(_) => panic!("ending the watchdog while spawns registered hung for 60 s"),
        }
    }

    /// A watch registered right after an end goes to a new thread, which kills it when due.
    #[test]
    fn a_watch_after_an_end_is_still_watched() {
        end_watchdog();
        assert!(
            a_due_watch_is_killed(),
            "a due child was not killed after an end"
        );
    }
}
