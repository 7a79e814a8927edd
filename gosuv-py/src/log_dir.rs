//! Where a supervisor writes its programs' log files, and who else may write there.
//!
//! Without `log_dir`, each supervisor gets a temp dir of its own (`mkdtemp`), so two
//! supervisors, or two pytest-xdist workers, with programs of the same name never write the
//! same file. It is removed when the supervisor shuts down cleanly, and kept when the `with`
//! block around it raised: the run that failed is the one whose logs are wanted, and its
//! path is added to the exception.
//!
//! An explicit `log_dir` is locked (`flock` of `.gosuv.lock` in it) for as long as the
//! supervisor lives, so a second supervisor given the same directory, in this process or
//! another, is refused with an error instead of writing into the first one's files.

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::io::FromRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;
use std::sync::Once;

use pyo3::prelude::*;

use crate::errors::GOSUV_ERROR;

/// The name of the lock file in an explicit log directory.
pub(crate) const LOCK_FILE: &str = ".gosuv.lock";

/// A supervisor's log directory.
pub(crate) struct LogDir {
    path: PathBuf,
    /// Made for this supervisor: removed at shutdown unless kept.
    temp: bool,
    keep: AtomicBool,
    removed: AtomicBool,
    /// The locked `.gosuv.lock` of an explicit directory, until shutdown.
    lock: Mutex<Option<File>>,
}

impl LogDir {
    /// A new temp dir `gosuv-logs-XXXXXX` under `$TMPDIR` (else `/tmp`), mode 0700.
    pub(crate) fn temp(py: Python<'_>) -> PyResult<Self> {
        let template = std::env::temp_dir().join("gosuv-logs-XXXXXX");
        let mut bytes = template.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        let made = CString::from_vec_with_nul(bytes).ok().and_then(|c| {
            let raw = c.into_raw();
            // SAFETY: `raw` is a NUL-terminated buffer we own; mkdtemp rewrites the XXXXXX in
            // place and returns it, or NULL; CString::from_raw takes the buffer back either way.
            let ok = !unsafe { libc::mkdtemp(raw) }.is_null();
            let back = unsafe { CString::from_raw(raw) };
            ok.then(|| PathBuf::from(std::ffi::OsStr::from_bytes(back.as_bytes())))
        });
        let Some(path) = made else {
            let e = std::io::Error::last_os_error();
            return Err(GOSUV_ERROR.err(
                py,
                format!(
                    "cannot create a log directory in {}: {e}; pass log_dir= to choose one",
                    template.parent().unwrap_or(Path::new("/")).display()
                ),
                &[],
            ));
        };
        Ok(LogDir {
            path,
            temp: true,
            keep: AtomicBool::new(false),
            removed: AtomicBool::new(false),
            lock: Mutex::new(None),
        })
    }

    /// An explicit directory (made if missing), locked for this supervisor.
    pub(crate) fn explicit(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        let err = |what: String| GOSUV_ERROR.err(py, what, &[]);
        std::fs::create_dir_all(&path).map_err(|e| {
            err(format!(
                "cannot create the log directory {}: {e}",
                path.display()
            ))
        })?;
        let lock_path = path.join(LOCK_FILE);
        let mut file = open_lock(&lock_path).map_err(err)?;
        // SAFETY: flock on a descriptor we own. An flock belongs to the open file, so a
        // second supervisor of this same process is refused too.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            let by = if holder.is_empty() {
                String::new()
            } else {
                format!(" (process {holder})")
            };
            return Err(err(format!(
                "the log directory {} is in use by another gosuv supervisor{by}: two \
                 supervisors with programs of the same name would write the same files; give \
                 each its own log_dir, or leave log_dir out for a temp dir of its own",
                path.display()
            )));
        }
        let _ = file.set_len(0);
        let _ = writeln!(file, "{}", std::process::id());
        forget_in_forked_children(file.as_raw_fd());
        Ok(LogDir {
            path,
            temp: false,
            keep: AtomicBool::new(true),
            removed: AtomicBool::new(false),
            lock: Mutex::new(Some(file)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is a temp dir made for the supervisor.
    pub(crate) fn is_temp(&self) -> bool {
        self.temp
    }

    /// Keeps a temp dir after shutdown.
    pub(crate) fn keep(&self) {
        self.keep.store(true, Ordering::SeqCst);
    }

    /// Whether the directory stays after shutdown.
    pub(crate) fn kept(&self) -> bool {
        self.keep.load(Ordering::SeqCst)
    }

    /// After the supervisor has shut down: unlocks an explicit directory, removes a temp
    /// one unless kept. Calling it again does nothing.
    pub(crate) fn release(&self) {
        let lock = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(file) = lock {
            // The lock file stays (removing it could race with another supervisor taking it);
            // closing it releases the lock.
            unregister(file.as_raw_fd());
            let _ = file.set_len(0);
            drop(file);
        }
        if self.temp && !self.kept() && !self.removed.swap(true, Ordering::SeqCst) {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Opens (creating it, mode 0600) the lock file of an explicit log directory, which must be
/// a regular file of the effective user: not a symlink (gosuv would write its pid into, then
/// truncate, the file it points to), a FIFO, a device or someone else's file.
fn open_lock(lock_path: &Path) -> Result<File, String> {
    let refuse = |what: &str| {
        format!(
            "the lock file {} {what}: gosuv writes only to a regular file of its own there; \
             remove it (rm {}) or choose another log_dir",
            lock_path.display(),
            lock_path.display()
        )
    };
    let c_path = CString::new(lock_path.as_os_str().as_bytes()).map_err(|_| {
        format!(
            "the log directory {} contains a NUL byte",
            lock_path.display()
        )
    })?;
    let flags =
        libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
    // SAFETY: a NUL-terminated path; the descriptor returned, if any, is ours.
    let fd = unsafe { libc::open(c_path.as_ptr(), flags, 0o600 as libc::c_uint) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ELOOP) {
            return Err(refuse("is a symbolic link"));
        }
        return Err(format!("cannot open {}: {e}", lock_path.display()));
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    let file = unsafe { File::from_raw_fd(fd) };
    // SAFETY: an all-zero stat is a valid value for fstat to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat of a descriptor we own into a stat we own.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("cannot stat {}: {e}", lock_path.display()));
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(refuse("is not a regular file"));
    }
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if st.st_uid != me {
        return Err(refuse(&format!(
            "belongs to user {}, not to this process's user {me}",
            st.st_uid
        )));
    }
    Ok(file)
}

/// The descriptors of the locks held by this process's supervisors, for the fork handler:
/// -1 is a free slot. Atomics, as a fork handler may take no lock.
static LOCK_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];
static AT_FORK: Once = Once::new();

/// In a child made by fork() (os.fork), the locks' descriptors are let go: an flock belongs
/// to the open file, so a child that kept a copy would keep the log directory locked after
/// the parent's supervisor shut down. Each is pointed at /dev/null (dup2), which drops the
/// child's reference to the lock and leaves the number valid for the File that owns it.
extern "C" fn release_locks_in_child() {
    // SAFETY: open, dup2 and close are async-signal-safe, as a fork handler needs.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        for slot in &LOCK_FDS {
            let fd = slot.swap(-1, Ordering::SeqCst);
            if fd >= 0 {
                if null >= 0 {
                    libc::dup3(null, fd, libc::O_CLOEXEC);
                } else {
                    libc::close(fd);
                }
            }
        }
        if null >= 0 {
            libc::close(null);
        }
    }
}

fn forget_in_forked_children(fd: i32) {
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only runs async-signal-safe calls.
        unsafe { libc::pthread_atfork(None, None, Some(release_locks_in_child)) };
    });
    for slot in &LOCK_FDS {
        if slot
            .compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            return;
        }
    }
}

fn unregister(fd: i32) {
    for slot in &LOCK_FDS {
        let _ = slot.compare_exchange(fd, -1, Ordering::SeqCst, Ordering::SeqCst);
    }
}
