//! The supervisor handle: creating it, its programs, and freeing it.

use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use gosuv_core::blocking;
use gosuv_core::config::{parse_program_value, parse_programs};
use gosuv_core::logs::{last_lines, TAIL_BYTES};
use gosuv_core::{Error as CoreError, ProgramConfig, ServerConfig, SupervisorOptions};

use crate::args::{
    absolute_path, arg_opt_str, arg_ref, arg_str, clear_out, out_ptr, owned_c_string, timeout_arg,
    wait_arg, write_opt,
};
use crate::error::{copy_text, gosuv_result, guard, Error, Result};
use crate::status::{gosuv_process_stats, gosuv_program_status, state_arg, stream_arg};
use crate::subscription::Control;

/// A process supervisor: its programs, their processes, logs and events, and the threads
/// that run them (a runtime of two `gosuv-worker` threads, plus one thread per
/// subscription). Opaque: only used through pointers.
///
/// Some threads are the process's, shared by every supervisor, started when first needed
/// and left running until the process exits: `gosuv-guardian` (tells the guardian process
/// of `kill_on_parent_death` which programs run), `gosuv-orphans` (reaps processes whose
/// supervisor let go of them), `gosuv-reaper` (with `subreaper`), and `gosuv-logwriter`
/// threads (each ends after 10 s idle).
///
/// Made by `gosuv_supervisor_new()`, `gosuv_supervisor_from_yaml()` or
/// `gosuv_supervisor_from_config_file()`; freed by `gosuv_supervisor_free()`.
///
/// Thread safety: every function that takes a `const gosuv_supervisor *` may be called from
/// any thread, concurrently with the others, including from inside a callback.
/// `gosuv_supervisor_free()` must be the last call on it.
pub struct gosuv_supervisor {
    pub(crate) sup: blocking::Supervisor,
    /// The `config.yml` it was made from, for `gosuv_supervisor_reload_file`.
    config_path: Option<PathBuf>,
    /// Its subscriptions whose threads may still run, ended and joined when it is freed.
    pub(crate) subscriptions: Mutex<Vec<Arc<Control>>>,
}

impl gosuv_supervisor {
    fn boxed(sup: blocking::Supervisor, config_path: Option<PathBuf>) -> *mut gosuv_supervisor {
        Box::into_raw(Box::new(gosuv_supervisor {
            sup,
            config_path,
            subscriptions: Mutex::new(Vec::new()),
        }))
    }

    pub(crate) fn base_dir(&self) -> &Path {
        self.sup.as_async().base_dir()
    }

    /// Keeps a new subscription's handle, and lets go of those whose threads have ended
    /// (joined after the lock is released: nothing waits for a thread under it).
    pub(crate) fn remember(&self, control: Arc<Control>) {
        let ended: Vec<Arc<Control>> = {
            let mut subs = self
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (ended, live) = std::mem::take(&mut *subs)
                .into_iter()
                .partition(|c| c.is_finished());
            *subs = live;
            subs.push(control);
            ended
        };
        for c in ended {
            c.join();
        }
    }
}

/// How a supervisor made in code is set up. Fill one with `gosuv_supervisor_options_init()`
/// and change the fields you need. The strings are only read during the call they are passed
/// to; the caller keeps owning them.
///
/// Versioned by its size: later versions of the library add fields at its end only. A
/// program built against an older `gosuv.h` passes a smaller `size`, and the fields it does
/// not have keep their defaults; one built against a newer header passes a larger one, and
/// the fields this library does not know are not read.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gosuv_supervisor_options {
    /// `sizeof(gosuv_supervisor_options)` as the caller's header has it: set by
    /// `gosuv_supervisor_options_init()`. Smaller than the first version's (40 bytes on
    /// 64-bit systems) is `GOSUV_RESULT_INVALID_ARGUMENT`.
    pub size: usize,
    /// The directory relative program directories resolve against, and the programs' default
    /// working directory. NULL: the current directory. A relative path is made absolute at
    /// once.
    pub base_dir: *const c_char,
    /// Where `<name>.stdout.log` and `<name>.stderr.log` are written; created if missing.
    /// NULL: `<base_dir>/logs`. A relative path resolves against `base_dir`.
    pub log_dir: *const c_char,
    /// Make this process a child subreaper, so that the orphans of daemonising programs (a
    /// child that double-forks or calls `setsid`) are reparented to it and reaped by gosuv
    /// (a `gosuv-reaper` thread woken by SIGCHLD). gosuv reaps only processes of the sessions
    /// and cgroups it started, never a child the host program started itself. It changes
    /// the whole process (`PR_SET_CHILD_SUBREAPER`): every orphan of every descendant comes
    /// to it. Default: false.
    pub subreaper: bool,
    /// Start a guardian process (`/bin/sh`, named `gosuv-guardian` in its command line) that
    /// stops every program when this process dies, however it dies (even by SIGKILL): it
    /// sends SIGTERM, then SIGKILL a second later, to each program's process group, or to
    /// every process of the program's cgroup. Default: true, so programs die with their host.
    /// Turn it off only for programs meant to outlive this process.
    pub kill_on_parent_death: bool,
    /// Raise the open-files soft limit to at least this; 0 raises it to the hard limit.
    /// Programs get the original limit back. Default: 0.
    pub min_fds: u64,
}

/// Fills the caller's `*out` with the default options, the same as the Rust and Python
/// libraries': current directory, `./logs`, subreaper off, programs die with this process
/// (`kill_on_parent_death` on), open-files limit raised to the hard limit; `out->size` is set
/// to `size`. Passing NULL options to a constructor gives the same defaults.
///
/// Pass `sizeof(gosuv_supervisor_options)` as `size`: exactly `size` bytes are written, so a
/// library newer than the caller's header never writes past the caller's struct; fields of a
/// newer header that this library does not know are zeroed.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT` (`out`), `GOSUV_RESULT_INVALID_ARGUMENT` (`size`
/// smaller than the first version's: nothing is written).
///
/// # Safety
/// `out` is NULL or valid for writes of `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_options_init(
    out: *mut gosuv_supervisor_options,
    size: usize,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    guard(|| unsafe { init_sized(out, size, "out", OPTIONS_V1_SIZE, &DEFAULT_OPTIONS) })
}

/// The core's defaults (`SupervisorOptions::new`; a unit test keeps them equal).
const DEFAULT_OPTIONS: gosuv_supervisor_options = gosuv_supervisor_options {
    size: std::mem::size_of::<gosuv_supervisor_options>(),
    base_dir: std::ptr::null(),
    log_dir: std::ptr::null(),
    subreaper: false,
    kill_on_parent_death: true,
    min_fds: 0,
};

fn io_error(context: &str, source: std::io::Error) -> Error {
    Error::Core(CoreError::Io {
        context: context.to_string(),
        source,
    })
}

/// # Safety
/// `options` is NULL or points to valid options whose strings are NULL or NUL-terminated.
unsafe fn supervisor_options(
    options: *const gosuv_supervisor_options,
) -> Result<SupervisorOptions> {
    let o = if options.is_null() {
        RawOptions::DEFAULT
    } else {
        // SAFETY: non-NULL, and the caller promises it is valid for `size` bytes, and the
        // first field is always there.
        unsafe {
            read_sized(
                options.cast::<RawOptions>(),
                "options",
                OPTIONS_V1_SIZE,
                RawOptions::DEFAULT,
            )
        }?
    };
    let subreaper = bool_field(o.subreaper, "options->subreaper")?;
    let kill_on_parent_death = bool_field(o.kill_on_parent_death, "options->kill_on_parent_death")?;
    // SAFETY: the caller promises the strings are NULL or NUL-terminated.
    let base_dir = unsafe { arg_opt_str(o.base_dir, "options->base_dir") }?;
    // SAFETY: as above.
    let log_dir = unsafe { arg_opt_str(o.log_dir, "options->log_dir") }?;
    let base = match base_dir {
        Some(dir) => absolute_path(dir, "options->base_dir")?,
        None => {
            std::env::current_dir().map_err(|e| io_error("cannot read the current directory", e))?
        }
    };
    let mut opts = SupervisorOptions::new(&base);
    if let Some(dir) = log_dir {
        if dir.is_empty() {
            return Err(Error::Invalid(
                "argument `options->log_dir` is an empty path: pass NULL for <base_dir>/logs"
                    .into(),
            ));
        }
        opts.log_dir = base.join(dir);
    }
    opts.subreaper = subreaper;
    opts.kill_on_parent_death = kill_on_parent_death;
    opts.min_fds = (o.min_fds > 0).then_some(o.min_fds);
    Ok(opts)
}

/// The size of the first version of `gosuv_supervisor_options` (the one with `size`): its
/// fields are all read, from any caller. A literal, so that a field added later never
/// raises the size an older caller must pass.
#[cfg(target_pointer_width = "64")]
const OPTIONS_V1_SIZE: usize = 40;
#[cfg(target_pointer_width = "32")]
const OPTIONS_V1_SIZE: usize = 24;

// The first version ends with `min_fds`, and the struct holds at least that.
const _: () = assert!(
    std::mem::offset_of!(gosuv_supervisor_options, min_fds) + 8 == OPTIONS_V1_SIZE
        && std::mem::size_of::<gosuv_supervisor_options>() >= OPTIONS_V1_SIZE
);

/// `gosuv_supervisor_options` as the caller's bytes are: its bools as the raw bytes they
/// are (a C `bool` is one byte), checked before they are taken as bools.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawOptions {
    size: usize,
    base_dir: *const c_char,
    log_dir: *const c_char,
    subreaper: u8,
    kill_on_parent_death: u8,
    min_fds: u64,
}

const _: () = assert!(
    std::mem::size_of::<RawOptions>() == std::mem::size_of::<gosuv_supervisor_options>()
        && std::mem::offset_of!(RawOptions, subreaper)
            == std::mem::offset_of!(gosuv_supervisor_options, subreaper)
        && std::mem::offset_of!(RawOptions, kill_on_parent_death)
            == std::mem::offset_of!(gosuv_supervisor_options, kill_on_parent_death)
        && std::mem::offset_of!(RawOptions, min_fds)
            == std::mem::offset_of!(gosuv_supervisor_options, min_fds)
);

impl RawOptions {
    const DEFAULT: RawOptions = RawOptions {
        size: OPTIONS_V1_SIZE,
        base_dir: DEFAULT_OPTIONS.base_dir,
        log_dir: DEFAULT_OPTIONS.log_dir,
        subreaper: DEFAULT_OPTIONS.subreaper as u8,
        kill_on_parent_death: DEFAULT_OPTIONS.kill_on_parent_death as u8,
        min_fds: DEFAULT_OPTIONS.min_fds,
    };
}

// SAFETY: integers and raw pointers only: every bit pattern is one of its values.
unsafe impl AnyBits for RawOptions {}

/// A caller's bool byte: 0 or 1, anything else refused.
fn bool_field(byte: u8, name: &str) -> Result<bool> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        n => Err(Error::Invalid(format!(
            "`{name}` holds {n}: set it to true or false (start from the struct its _init() function \
             filled)"
        ))),
    }
}

/// A type every bit pattern of its size is a value of (integers, raw pointers), so that a
/// caller's bytes may be copied into it: never a bool, an enum or a reference.
///
/// # Safety
/// Implement it only for such types.
pub(crate) unsafe trait AnyBits: Copy {}

/// Checks the `size` a caller's struct starts with: smaller than `min` (its first
/// version's) is refused. Nothing else of the struct is read.
///
/// # Safety
/// `ptr` is valid for reads of a `usize`.
pub(crate) unsafe fn check_size<T>(ptr: *const T, name: &str, min: usize) -> Result<usize> {
    // SAFETY: the caller promises the first field, a size_t, is readable.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    if size < min {
        return Err(Error::Invalid(format!(
            "`{name}->size` is {size}: set it to sizeof the struct (at least {min}), as \
             its _init() function does"
        )));
    }
    Ok(size)
}

/// Reads a caller's struct that starts with its `size`: a smaller size than `min` (its first
/// version's) is refused, the bytes up to the caller's size (at most ours) are read, and the
/// fields past it keep `defaults`. `T` takes any bytes (see [`AnyBits`]): fields of other
/// types are checked after.
///
/// # Safety
/// `ptr` is valid for reads of a `usize`, and of `size` bytes as that field says.
pub(crate) unsafe fn read_sized<T: AnyBits>(
    ptr: *const T,
    name: &str,
    min: usize,
    defaults: T,
) -> Result<T> {
    // SAFETY: the caller's promise is passed on.
    let size = unsafe { check_size(ptr, name, min) }?;
    let mut out = defaults;
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: the caller's struct holds `size` >= `n` readable bytes; ours `n` writable
    // ones; they cannot overlap (ours is on the stack); any bytes are a `T`.
    unsafe {
        std::ptr::copy_nonoverlapping(ptr.cast::<u8>(), (&mut out as *mut T).cast::<u8>(), n)
    };
    Ok(out)
}

/// Writes `value` to a caller's struct that starts with its `size`, as far as that size
/// (and ours) goes; its `size` is left as the caller set it. A smaller size than `min` is
/// refused.
///
/// # Safety
/// `ptr` is valid for reads of a `usize`, and for writes of `size` bytes as that field says.
pub(crate) unsafe fn write_sized<T>(ptr: *mut T, name: &str, min: usize, value: &T) -> Result<()> {
    // SAFETY: the caller's promise is passed on.
    let size = unsafe { check_size(ptr.cast_const(), name, min) }?;
    let skip = std::mem::size_of::<usize>();
    let n = size.min(std::mem::size_of::<T>());
    // SAFETY: the caller's struct holds `size` >= `n` writable bytes; the source is ours;
    // the size field is not overwritten.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (value as *const T).cast::<u8>().add(skip),
            ptr.cast::<u8>().add(skip),
            n - skip,
        )
    };
    Ok(())
}

/// Initialises a caller's size-versioned struct of `size` bytes: `value` as far as both sizes
/// go, zeros past ours, and `size` in its first field. NULL and a size smaller than `min`
/// are refused before anything is written.
///
/// # Safety
/// `ptr` is NULL or valid for writes of `size` bytes.
pub(crate) unsafe fn init_sized<T>(
    ptr: *mut T,
    size: usize,
    name: &'static str,
    min: usize,
    value: &T,
) -> Result<()> {
    let ptr = out_ptr(ptr, name)?;
    if size < min {
        return Err(Error::Invalid(format!(
            "`size` is {size}: pass sizeof the struct (at least {min})"
        )));
    }
    let n = size.min(std::mem::size_of::<T>());
    let bytes = ptr.cast::<u8>();
    // SAFETY: the caller's struct holds `size` >= `n` writable bytes; ours is readable and
    // cannot overlap it; `size` >= `min` > the size field, written unaligned-safe.
    unsafe {
        std::ptr::copy_nonoverlapping((value as *const T).cast::<u8>(), bytes, n);
        std::ptr::write_bytes(bytes.add(n), 0, size - n);
        bytes.cast::<usize>().write_unaligned(size);
    }
    Ok(())
}

/// Writes a new supervisor to `*out`, or NULL on failure.
///
/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn give(out: *mut *mut gosuv_supervisor, sup: blocking::Supervisor, path: Option<PathBuf>) {
    // SAFETY: passed on from the caller.
    unsafe { write_opt(out, gosuv_supervisor::boxed(sup, path)) };
}

/// Creates a supervisor with no programs.
///
/// `options` may be NULL for the defaults (see `gosuv_supervisor_options_init()`).
/// On success `*out` is a new supervisor the caller owns and frees with
/// `gosuv_supervisor_free()`; on failure `*out` is NULL.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT` (`out`), `GOSUV_RESULT_INVALID_ARGUMENT` (a path
/// that is not UTF-8 or is empty, `size` smaller than the first version's, a bool field
/// holding neither `true` nor `false`), `GOSUV_RESULT_IO` (the log directory cannot be created,
/// the subreaper cannot be set, the open-files limit cannot be raised to `min_fds`, the
/// runtime cannot start).
///
/// # Safety
/// `options` is NULL or valid options (read during the call only); `out` is NULL or valid
/// for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_new(
    options: *const gosuv_supervisor_options,
    out: *mut *mut gosuv_supervisor,
) -> gosuv_result {
    // SAFETY: `out` is NULL or valid, as the caller promises.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises `options` is NULL or valid.
        let opts = unsafe { supervisor_options(options) }?;
        let sup = blocking::Supervisor::new(opts)?;
        // SAFETY: `out` was checked non-NULL; the caller promises it is writable.
        unsafe { give(out, sup, None) };
        Ok(())
    })
}

/// Creates a supervisor for programs given as the text of a programs file: a YAML list of
/// programs with the keys of `programs.yml`. Programs with `start_auto: true` are started
/// (without waiting for them).
///
/// `options` may be NULL for the defaults. On success `*out` is a new supervisor the caller
/// owns and frees with `gosuv_supervisor_free()`; on failure `*out` is NULL.
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem of the text, each with its line and key),
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT`, `GOSUV_RESULT_IO`.
///
/// # Safety
/// `programs_yaml` is NULL or a NUL-terminated UTF-8 string (read during the call only);
/// `options` as for `gosuv_supervisor_new()`; `out` is NULL or valid for writes.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_from_yaml(
    programs_yaml: *const c_char,
    options: *const gosuv_supervisor_options,
    out: *mut *mut gosuv_supervisor,
) -> gosuv_result {
    // SAFETY: `out` is NULL or valid, as the caller promises.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises a NUL-terminated string or NULL.
        let text = unsafe { arg_str(programs_yaml, "programs_yaml") }?;
        // SAFETY: the caller promises `options` is NULL or valid.
        let opts = unsafe { supervisor_options(options) }?;
        let sup = blocking::Supervisor::from_programs_yaml(text, opts)?;
        // SAFETY: `out` was checked non-NULL; the caller promises it is writable.
        unsafe { give(out, sup, None) };
        Ok(())
    })
}

/// Creates a supervisor from a `config.yml` file and the programs file it names (see the
/// README): relative paths resolve against the config file's directory, logs go to its
/// `server.log.logpath`, and programs with `start_auto: true` are started (without
/// waiting). The HTTP and unix-socket servers of the `gosuv` command are not started.
///
/// On success `*out` is a new supervisor the caller owns and frees with
/// `gosuv_supervisor_free()`; on failure `*out` is NULL.
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem of both files, each with file, line and
/// key), `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT`, `GOSUV_RESULT_IO`.
///
/// # Safety
/// `config_path` is NULL or a NUL-terminated UTF-8 string (read during the call only);
/// `out` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_from_config_file(
    config_path: *const c_char,
    out: *mut *mut gosuv_supervisor,
) -> gosuv_result {
    // SAFETY: `out` is NULL or valid, as the caller promises.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises a NUL-terminated string or NULL.
        let path = unsafe { arg_str(config_path, "config_path") }?;
        let path = absolute_path(path, "config_path")?;
        let sup = blocking::Supervisor::from_config_file(&path)?;
        // SAFETY: `out` was checked non-NULL; the caller promises it is writable.
        unsafe { give(out, sup, Some(path)) };
        Ok(())
    })
}

/// Stops every program, waits until none of their processes is left, ends every
/// subscription (after delivering the events of the shutdown to its callback; a
/// subscription's finalizer has run when this returns) and frees the supervisor. NULL is
/// ignored.
///
/// Blocks for as long as the programs take to stop (at most their `stop_timeout` before
/// SIGKILL), then for the subscriptions' callbacks to finish.
///
/// May be called from inside a callback (of this supervisor or of another). The other
/// subscriptions are ended as from any thread: the shutdown's events are delivered to them
/// and their finalizers have run when this returns, so their callbacks must not wait for the
/// calling one meanwhile (two callbacks freeing each other's supervisors at once would
/// wait for each other). The calling callback's own subscription is the exception: it
/// receives no more events, and its finalizer runs as soon as that callback returns.
///
/// # Safety
/// `sup` is NULL or a supervisor from a `gosuv_supervisor_*` constructor that was not freed
/// yet. No other thread may be using it or start using it (callbacks that are running on
/// gosuv threads may, until this returns). After the call, `sup` is dangling.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_free(sup: *mut gosuv_supervisor) {
    if sup.is_null() {
        return;
    }
    let _ = guard(|| {
        {
            // SAFETY: non-NULL, made by a constructor and not freed yet, as the caller
            // promises. Shared references only, since callbacks may still use it.
            let s = unsafe { &*sup };
            s.sup.shutdown();
            crate::subscription::end_all(s);
        }
        // SAFETY: made by Box::into_raw in a constructor; the caller gives it back once,
        // and every subscription thread that could use it has ended (or is the current
        // thread, which does not use it after this call).
        drop(unsafe { Box::from_raw(sup) });
        Ok(())
    });
}

/// Stops every program concurrently, waits until none of their processes is left, and
/// removes them. Afterwards the supervisor has no programs and accepts no more changes
/// (they fail with `GOSUV_RESULT_SHUTTING_DOWN`); subscriptions stay until freed. It must
/// still be freed.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_shutdown(sup: *const gosuv_supervisor) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        s.sup.shutdown();
        Ok(())
    })
}

fn parse_one_program(text: &str, base_dir: &Path) -> Result<ProgramConfig> {
    let value = gosuv_core::config::parse_yaml(text, None)?;
    Ok(parse_program_value(value, base_dir)?)
}

/// Adds one program, stopped, given as YAML (or JSON, which is YAML too): a mapping with the
/// keys of one `programs.yml` entry, for example
/// `"name: web\ncommand: python3 -m http.server 8000\nstart_seconds: 2"`. Relative
/// directories resolve against the supervisor's base directory. A program with
/// `start_auto: true` is started (without waiting).
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem, each naming its key),
/// `GOSUV_RESULT_EXISTS`, `GOSUV_RESULT_SHUTTING_DOWN`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `program_yaml` is NULL or a NUL-terminated string
/// (read during the call only). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_add(
    sup: *const gosuv_supervisor,
    program_yaml: *const c_char,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let text = unsafe { arg_str(program_yaml, "program_yaml") }?;
        let config = parse_one_program(text, s.base_dir())?;
        s.sup.add(config)?;
        Ok(())
    })
}

/// Replaces a program's config, given as for `gosuv_supervisor_add()` (its `name` says which
/// program). If the config changed and the program had a process, it is restarted with the
/// new config (stopped with the old `stop_signal`). `*out_restarted`, when `out_restarted`
/// is not NULL, tells whether it was restarted.
///
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_SHUTTING_DOWN`,
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `program_yaml` is NULL or a NUL-terminated string
/// (read during the call only); `out_restarted` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_update(
    sup: *const gosuv_supervisor,
    program_yaml: *const c_char,
    out_restarted: *mut bool,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let text = unsafe { arg_str(program_yaml, "program_yaml") }?;
        let config = parse_one_program(text, s.base_dir())?;
        let restarted = s.sup.update(config)?;
        // SAFETY: the caller promises NULL or a writable bool.
        unsafe { write_opt(out_restarted, restarted) };
        Ok(())
    })
}

/// Stops a program (waiting until none of its processes is left) and removes it. Its log
/// subscriptions end.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_remove(
    sup: *const gosuv_supervisor,
    name: *const c_char,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        s.sup.remove(name)?;
        Ok(())
    })
}

/// The supervisor and the program name most calls begin with.
///
/// # Safety
/// `sup` is NULL or a live supervisor and `name` NULL or a NUL-terminated string, both
/// valid for `'a`.
pub(crate) unsafe fn sup_and_name<'a>(
    sup: *const gosuv_supervisor,
    name: *const c_char,
) -> Result<(&'a gosuv_supervisor, &'a str)> {
    // SAFETY: passed on from the caller.
    let s = unsafe { arg_ref(sup, "sup") }?;
    // SAFETY: passed on from the caller.
    let name = unsafe { arg_str(name, "name") }?;
    Ok((s, name))
}

/// What `start`, `stop` and `restart` ask for.
#[derive(Clone, Copy)]
enum Request {
    Start,
    Stop,
    Restart,
}

/// # Safety
/// As the exported functions that call it.
unsafe fn request(
    which: Request,
    sup: *const gosuv_supervisor,
    name: *const c_char,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let wait = wait_arg(timeout_ms)?;
        let status = match which {
            Request::Start => s.sup.start(name, wait),
            Request::Stop => s.sup.stop(name, wait),
            Request::Restart => s.sup.restart(name, wait),
        }?;
        // SAFETY: the caller promises NULL or a writable status.
        unsafe { write_opt(out_status, gosuv_program_status::from(&status)) };
        Ok(())
    })
}

/// Starts a program. With `timeout_ms` > 0, waits until it is `running` (up for its
/// `start_seconds`, or, with a `ready` probe, once the probe passed) or its starts failed,
/// at most `timeout_ms` (at most 86,400,000: one day, or `GOSUV_WAIT_FOREVER`); with 0,
/// returns once the start has begun (`gosuv_supervisor_wait()` waits for it later). A
/// program with `depends_on` first waits in `waiting` until its dependencies are satisfied,
/// starting those not started. `*out_status`, when `out_status` is not NULL, receives its
/// status on success. Starting a running program does nothing.
///
/// Errors: `GOSUV_RESULT_START_FAILED` (the message says why the last start failed: a
/// `ready` probe's last failure, a dependency that went `fatal` ...),
/// `GOSUV_RESULT_TIMEOUT` (it carries on trying), `GOSUV_RESULT_STOPPED_BEFORE_RUNNING`,
/// `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_SHUTTING_DOWN`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`name` not UTF-8, `timeout_ms` over one day: nothing is
/// done), `GOSUV_RESULT_INTERNAL` (the program's task failed: it is now `fatal`).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `out_status` is NULL or valid for writes. Thread-safe; blocks the
/// calling thread for at most `timeout_ms`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_start(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    // SAFETY: the caller's promises are the same.
    unsafe { request(Request::Start, sup, name, timeout_ms, out_status) }
}

/// Stops a program: its `stop_signal` to its processes (its process group, or every process
/// of its cgroup), SIGKILL to them after its `stop_timeout`. In `backoff`, cancels the
/// pending retry. With `timeout_ms` > 0, waits until none of its processes is left, at most
/// `timeout_ms` (at most 86,400,000: one day, or `GOSUV_WAIT_FOREVER`); with 0, returns once
/// the stop has begun.
/// `*out_status`, when `out_status` is not NULL, receives its status on success.
///
/// Errors: `GOSUV_RESULT_TIMEOUT` (the stop carries on), `GOSUV_RESULT_NOT_FOUND`,
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT` (`name` not UTF-8,
/// `timeout_ms` over one day: nothing is done), `GOSUV_RESULT_INTERNAL` (the program's task
/// failed: it is now `fatal`).
///
/// # Safety
/// As `gosuv_supervisor_start()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_stop(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    // SAFETY: the caller's promises are the same.
    unsafe { request(Request::Stop, sup, name, timeout_ms, out_status) }
}

/// Restarts a program: stops it if it has a process, then starts it, as one request. Waits
/// and fails like `gosuv_supervisor_start()`.
///
/// # Safety
/// As `gosuv_supervisor_start()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_restart(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    // SAFETY: the caller's promises are the same.
    unsafe { request(Request::Restart, sup, name, timeout_ms, out_status) }
}

/// Waits until a program is in `state` (a `gosuv_state` value; returns at once if it is),
/// at most `timeout_ms` (at most 86,400,000: one day, or `GOSUV_WAIT_FOREVER`; 0 only
/// looks). `*out_status`, when `out_status` is not NULL, receives its status on success.
///
/// Errors: `GOSUV_RESULT_TIMEOUT` (the message names the state it is in),
/// `GOSUV_RESULT_NOT_FOUND` (also when it is removed meanwhile),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`state` is not a `gosuv_state`, `timeout_ms` over one
/// day), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// As `gosuv_supervisor_start()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_wait_for(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    state: u32,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let state = state_arg(state)?;
        let timeout = timeout_arg(timeout_ms)?;
        let status = s.sup.wait_for(name, state, timeout)?;
        // SAFETY: the caller promises NULL or a writable status.
        unsafe { write_opt(out_status, gosuv_program_status::from(&status)) };
        Ok(())
    })
}

/// Waits until a program is `running`, that is ready: its `ready` probe passed, or without
/// one it stayed up for its `start_seconds`. It does not start the program (a `stopped`
/// program stays so, and the wait runs out); it only watches a start made elsewhere, by
/// `gosuv_supervisor_start()` with `timeout_ms` 0, `start_auto`, a reload, or a dependent's
/// start. Returns at once if the program is `running`, and fails at once if it is `fatal`.
/// Waits at most `timeout_ms` (at most 86,400,000: one day, or `GOSUV_WAIT_FOREVER`); 0
/// only looks: the result is `GOSUV_RESULT_OK` if it is `running` now,
/// `GOSUV_RESULT_START_FAILED` if it is `fatal`, else `GOSUV_RESULT_TIMEOUT`. `*out_status`, when `out_status` is not NULL, receives its
/// status on success.
///
/// Errors: `GOSUV_RESULT_START_FAILED` (it went, or was, `fatal`: the message quotes its last
/// error, such as its `ready` probe's last failure or the dependency that failed it; the
/// same text as `gosuv_supervisor_program_error()`), `GOSUV_RESULT_TIMEOUT` (the message
/// names the state it is in; it carries on), `GOSUV_RESULT_NOT_FOUND` (also when it is
/// removed meanwhile), `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT` (`name`
/// not UTF-8, `timeout_ms` over one day: nothing is done).
///
/// # Safety
/// As `gosuv_supervisor_start()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_wait(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    timeout_ms: u64,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let timeout = timeout_arg(timeout_ms)?;
        let status = s.sup.wait(name, timeout)?;
        // SAFETY: the caller promises NULL or a writable status.
        unsafe { write_opt(out_status, gosuv_program_status::from(&status)) };
        Ok(())
    })
}

/// Writes one program's status to `*out_status`. Does not block.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `out_status` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_status(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    out_status: *mut gosuv_program_status,
) -> gosuv_result {
    guard(|| {
        let out = out_ptr(out_status, "out_status")?;
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let status = s.sup.status(name)?;
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(gosuv_program_status::from(&status)) };
        Ok(())
    })
}

/// Copies why a program's last start failed into `buf`, like `gosuv_error_message()`: at
/// most `len - 1` bytes and a NUL. An empty string when it has no last error (it clears when
/// the program reaches `running`). `*out_len`, when `out_len` is not NULL, receives the
/// length of the whole text (more than `len - 1` means it was cut).
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT` (`buf` NULL),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`len` 0).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `buf` is NULL or valid for `len` bytes of writes; `out_len` is NULL
/// or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_program_error(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> gosuv_result {
    guard(|| {
        let buf = out_ptr(buf, "buf")?;
        if len == 0 {
            return Err(Error::Invalid(
                "argument `len` is 0: pass the size of `buf`".into(),
            ));
        }
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let text = s.sup.status(name)?.last_error.unwrap_or_default();
        // SAFETY: the caller promises `buf` holds `len` bytes.
        let full = unsafe { copy_text(&text, buf, len) };
        // SAFETY: the caller promises NULL or a writable size_t.
        unsafe { write_opt(out_len, full) };
        Ok(())
    })
}

/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn give_string(out: *mut *mut c_char, text: String) -> Result<()> {
    let out = out_ptr(out, "out_json")?;
    let s = owned_c_string(text)?;
    // SAFETY: checked non-NULL; the caller promises it is writable.
    unsafe { out.write(s) };
    Ok(())
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::Invalid(format!("cannot represent the answer as JSON: {e}")))
}

/// Writes every program's status, sorted by name, as a JSON array to `*out_json`: objects with
/// `name`, `state` (lowercase), `pid`, `started_at` (RFC 3339), `uptime_secs`, `exit_code`,
/// `exit_signal`, `restarts`, `last_error`, `log_errors`, `ownership`, `ready_at` (RFC 3339:
/// when the current run became `running`), `status_text` (its last `STATUS=` on
/// `$NOTIFY_SOCKET`), `health_status` (null until it first became `running` with a health probe; then
/// `{"failures": failed checks since it was added, "failing": failed checks in a row now,
/// "last_error": the last failure}`) and `waiting_for` (in `waiting`: the dependencies not yet
/// satisfied; else empty); null where not known. `ownership` says how gosuv owns the processes
/// of the current (or last) run: `"cgroup"` (a cgroup of the program's own: every process it
/// starts, even one that calls `setsid` or double-forks, is stopped with it) or `"group"` (its
/// process group and session, where no cgroup could be made); null before its first run.
/// `exit_code` and `exit_signal` are both null after an exit whose status is unknown (another
/// process, such as a host that reaps every child, reaped it first). The caller frees the
/// string with `gosuv_string_free()`; on failure `*out_json` is NULL.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `out_json` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_status_json(
    sup: *const gosuv_supervisor,
    out_json: *mut *mut c_char,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out_json) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        let json = to_json(&s.sup.list())?;
        // SAFETY: the caller promises NULL or writable.
        unsafe { give_string(out_json, json) }
    })
}

/// Writes one program's config as a JSON object with the keys of `programs.yml` (defaults
/// filled in) to `*out_json`. The caller frees it with `gosuv_string_free()`; on failure
/// `*out_json` is NULL.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `out_json` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_config_json(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    out_json: *mut *mut c_char,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out_json) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let json = to_json(&s.sup.config(name)?)?;
        // SAFETY: the caller promises NULL or writable.
        unsafe { give_string(out_json, json) }
    })
}

/// # Safety
/// `out` is NULL or valid for writes.
unsafe fn reload(
    s: &gosuv_supervisor,
    programs: Vec<ProgramConfig>,
    out_report_json: *mut *mut c_char,
) -> Result<()> {
    let report = s.sup.reload(programs)?;
    if !out_report_json.is_null() {
        // SAFETY: non-NULL; the caller promises it is writable.
        unsafe { give_string(out_report_json, to_json(&report)?) }?;
    }
    Ok(())
}

/// Makes the set of programs equal to a programs-file text (a YAML list): adds the new ones
/// (starting those with `start_auto`), updates the changed ones (restarting those that had a
/// process), removes the missing ones (stopping them first), leaves the unchanged ones
/// alone. An invalid text changes nothing.
///
/// `*out_report_json`, when `out_report_json` is not NULL, receives
/// `{"added":[...],"changed":[...],"removed":[...]}` (names, sorted), which the caller frees
/// with `gosuv_string_free()`; it is NULL on failure.
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem with its line and key),
/// `GOSUV_RESULT_SHUTTING_DOWN`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `programs_yaml` is NULL or a NUL-terminated string
/// (read during the call only); `out_report_json` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_reload(
    sup: *const gosuv_supervisor,
    programs_yaml: *const c_char,
    out_report_json: *mut *mut c_char,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out_report_json) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let text = unsafe { arg_str(programs_yaml, "programs_yaml") }?;
        let programs = parse_programs(text, None, s.base_dir())?;
        // SAFETY: the caller promises NULL or writable.
        unsafe { reload(s, programs, out_report_json) }
    })
}

/// Re-reads the `config.yml` a supervisor was made from (`gosuv_supervisor_from_config_file()`)
/// and its programs file, and reloads the programs as `gosuv_supervisor_reload()` does.
/// Server settings other than the programs file's name are not applied.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (the supervisor was not made from a config file),
/// `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_SHUTTING_DOWN`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `out_report_json` is NULL or valid for writes.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_reload_file(
    sup: *const gosuv_supervisor,
    out_report_json: *mut *mut c_char,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out_report_json) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        let path = s.config_path.as_deref().ok_or_else(|| {
            Error::Invalid(
                "this supervisor was not made from a config file: use gosuv_supervisor_reload \
                 with the programs' YAML instead"
                    .into(),
            )
        })?;
        let programs = ServerConfig::load(path)?.load_programs()?;
        // SAFETY: the caller promises NULL or writable.
        unsafe { reload(s, programs, out_report_json) }
    })
}

/// Copies the end of a program's output into `buf`: the last `max_lines` lines (0: no line
/// limit) of the last 64 KiB gosuv keeps of `stream` (a `gosuv_stream` value), cut further
/// from the front to `len - 1` bytes, then a NUL. `*out_len`, when `out_len` is not NULL,
/// receives the number of bytes copied, not counting the NUL (output may itself hold NUL
/// bytes). Does not block.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT` (`buf` NULL),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`len` 0, unknown `stream`).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `buf` is NULL or valid for `len` bytes of writes; `out_len` is NULL
/// or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_tail(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    stream: u32,
    max_lines: usize,
    buf: *mut c_char,
    len: usize,
    out_len: *mut usize,
) -> gosuv_result {
    guard(|| {
        let buf = out_ptr(buf, "buf")?;
        if len == 0 {
            return Err(Error::Invalid(
                "argument `len` is 0: pass the size of `buf`".into(),
            ));
        }
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let stream = stream_arg(stream)?;
        let all = s.sup.tail(name, stream, TAIL_BYTES)?;
        let lines = if max_lines > 0 {
            last_lines(&all, max_lines)
        } else {
            &all[..]
        };
        let part = &lines[lines.len().saturating_sub(len - 1)..];
        // SAFETY: the caller promises `buf` holds `len` bytes, and `part.len() + 1 <= len`;
        // the source is Rust memory, which cannot overlap the caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(part.as_ptr(), buf.cast::<u8>(), part.len());
            *buf.add(part.len()) = 0;
        }
        // SAFETY: the caller promises NULL or a writable size_t.
        unsafe { write_opt(out_len, part.len()) };
        Ok(())
    })
}

/// Writes the CPU and memory use of all of a program's processes (its cgroup, or its
/// process tree) to `*out_stats` (all zero when it has no process). Answered from a pass
/// over `/proc` at most 500 ms old; does not wait for the program.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only); `out_stats` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_stats(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    out_stats: *mut gosuv_process_stats,
) -> gosuv_result {
    guard(|| {
        let out = out_ptr(out_stats, "out_stats")?;
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let stats = s.sup.stats(name)?;
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(gosuv_process_stats::from(&stats)) };
        Ok(())
    })
}

/// Writes the stats of every program that has a process as a JSON object to `*out_json`:
/// `{"name": {"pids": [...], "cpu_percent": .., "rss_bytes": .., "cpu_seconds": ..}, ...}`.
/// The caller frees it with `gosuv_string_free()`; on failure `*out_json` is NULL.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `out_json` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_stats_json(
    sup: *const gosuv_supervisor,
    out_json: *mut *mut c_char,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out_json) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        let json = to_json(&s.sup.stats_all())?;
        // SAFETY: the caller promises NULL or writable.
        unsafe { give_string(out_json, json) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_are_the_cores() {
        let core = SupervisorOptions::new("/base");
        assert_eq!(DEFAULT_OPTIONS.subreaper, core.subreaper);
        assert_eq!(
            DEFAULT_OPTIONS.kill_on_parent_death,
            core.kill_on_parent_death
        );
        assert_eq!(DEFAULT_OPTIONS.min_fds, core.min_fds.unwrap_or(0));
        assert!(DEFAULT_OPTIONS.base_dir.is_null() && DEFAULT_OPTIONS.log_dir.is_null());
        assert_eq!(DEFAULT_OPTIONS.size, OPTIONS_V1_SIZE);
        assert_eq!(core.log_dir, Path::new("/base/logs"));
    }

    #[test]
    fn null_options_give_the_defaults() {
        // SAFETY: NULL options are allowed.
        let opts = unsafe { supervisor_options(std::ptr::null()) }.expect("NULL options");
        let core = SupervisorOptions::new(&opts.base_dir);
        assert_eq!(opts.subreaper, core.subreaper);
        assert_eq!(opts.kill_on_parent_death, core.kill_on_parent_death);
        assert_eq!(opts.min_fds, core.min_fds);
        assert_eq!(opts.log_dir, core.log_dir);
    }
}
