//! Programs added from builders, and what a host does to a running program besides start
//! and stop: a signal, its stdin.

use std::ffi::{c_char, c_int, c_void};

use gosuv_core::config::validate_name;
use gosuv_core::ProgramConfig;

use crate::args::{arg_ref, out_ptr, timeout_arg, write_opt};
use crate::error::{gosuv_result, guard, Error, Result};
use crate::program::gosuv_program;
use crate::supervisor::{gosuv_supervisor, sup_and_name};

/// The programs one builder describes: itself, or its `numprocs` instances.
pub(crate) fn instances(config: ProgramConfig) -> Result<Vec<ProgramConfig>> {
    if config.numprocs <= 1 {
        return Ok(vec![config]);
    }
    let all = config.instances();
    if let Some(last) = all.last() {
        validate_name(&last.name).map_err(|e| {
            Error::from(gosuv_core::ConfigErrors(vec![gosuv_core::ConfigError {
                file: None,
                line: None,
                key: "numprocs".into(),
                message: format!(
                    "numprocs {} names the last instance '{}', which is not a valid name ({e}): \
                     shorten the name",
                    config.numprocs, last.name
                ),
            }]))
        })?;
    }
    Ok(all)
}

/// Adds the program a builder describes, stopped (started without waiting with
/// `start_auto`), checked as a `programs.yml` entry is. With `numprocs` N, its N instances
/// `NAME-0` .. are added all or none, in one change: no other call sees some of them. The builder is only read: free it or use it again.
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem of the program, each naming its key: no
/// command, a dependency that does not exist, a log file another program writes ...),
/// `GOSUV_RESULT_EXISTS`, `GOSUV_RESULT_SHUTTING_DOWN`, `GOSUV_RESULT_NULL_ARGUMENT`. On
/// failure nothing was added.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `prog` is NULL or a live builder, which no other
/// thread changes during the call. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_add_program(
    sup: *const gosuv_supervisor,
    prog: *const gosuv_program,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor and builder.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: as above.
        let p = unsafe { arg_ref(prog, "prog") }?;
        let all = instances(p.config(s.base_dir())?)?;
        s.sup.add_group(all)?;
        Ok(())
    })
}

/// Replaces the config of the program a builder names (each instance, with `numprocs`) with
/// what the builder describes. A program whose config changed and had a process is
/// restarted with the new config (stopped with the old `stop_signal`); `*out_restarted`,
/// when `out_restarted` is not NULL, tells whether one was.
///
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_SHUTTING_DOWN`,
/// `GOSUV_RESULT_NULL_ARGUMENT`. An invalid builder, or one instance missing or invalid,
/// changes nothing: the instances are updated all or none, in one change.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `prog` is NULL or a live builder, which no other
/// thread changes during the call; `out_restarted` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_update_program(
    sup: *const gosuv_supervisor,
    prog: *const gosuv_program,
    out_restarted: *mut bool,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { write_opt(out_restarted, false) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor and builder.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: as above.
        let p = unsafe { arg_ref(prog, "prog") }?;
        let all = instances(p.config(s.base_dir())?)?;
        let restarted = s.sup.update_group(all)?;
        // SAFETY: the caller promises NULL or a writable bool.
        unsafe { write_opt(out_restarted, restarted) };
        Ok(())
    })
}

/// Sends signal `sig` (a number: `SIGUSR1`, `SIGHUP`, `SIGRTMIN + 2` ...) to every process
/// of a program's current run, the way its stop signal goes: to its cgroup, or to its
/// process group (never to a pid that may have been reused). It changes nothing else: a
/// signal that ends the program is an exit like any other.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (`sig` is not a signal number; the program has
/// no process, `starting`, `running` and `stopping` have one: the message names its state),
/// `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_signal(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    sig: c_int,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        s.sup.signal(name, sig)?;
        Ok(())
    })
}

/// Writes `len` bytes of `buf` to the stdin pipe of a program (one with
/// `GOSUV_STDIN_PIPE`), waiting for room at most `timeout_ms` (0: only what the pipe takes
/// now; `GOSUV_WAIT_FOREVER`: until all is written). The wait is the calling thread's: a
/// program that does not read holds up this call, never the supervisor. Writes from several
/// threads go one after the other, never interleaved. `*out_written`, when `out_written` is
/// not NULL, receives how many bytes were written, also with `GOSUV_RESULT_IO` (what went
/// before the pipe broke).
///
/// Errors: `GOSUV_RESULT_TIMEOUT` (not all was written in time: `*out_written` says how
/// much), `GOSUV_RESULT_INVALID_ARGUMENT` (the program has no stdin pipe, or no process now,
/// or its pipe was closed by `gosuv_supervisor_close_stdin()`; `timeout_ms` over one day;
/// `len` over `PTRDIFF_MAX`),
/// `GOSUV_RESULT_IO` (the program closed its stdin, or exited: a broken pipe; never a
/// SIGPIPE), `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT` (`buf` NULL with `len`
/// over 0).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string; `buf` is
/// NULL or valid for reads of `len` bytes (read during the call only); `out_written` is NULL
/// or valid for writes. Thread-safe; blocks the calling thread for at most `timeout_ms`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_write_stdin(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    buf: *const c_void,
    len: usize,
    timeout_ms: u64,
    out_written: *mut usize,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { write_opt(out_written, 0) };
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let data: &[u8] = if len == 0 {
            &[]
        } else if len > isize::MAX as usize {
            return Err(Error::Invalid(format!(
                "argument `len` is {len}: more than any buffer holds"
            )));
        } else {
            let buf = out_ptr(buf.cast_mut(), "buf")?;
            // SAFETY: the caller promises `len` readable bytes at `buf`.
            unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len) }
        };
        let timeout = timeout_arg(timeout_ms)?;
        let mut written = 0;
        let r = s.sup.write_stdin_counted(name, data, timeout, &mut written);
        // SAFETY: the caller promises NULL or a writable size_t.
        unsafe { write_opt(out_written, written) };
        r?;
        if written < data.len() {
            return Err(Error::Timeout(format!(
                "wrote {written} of {} bytes to the stdin of '{name}' in {timeout_ms} ms: it \
                 does not read fast enough; write the rest later",
                data.len()
            )));
        }
        Ok(())
    })
}

/// Closes a program's stdin pipe: it reads end-of-file once it has read what was written
/// (a `cat` then exits). A write waiting for room gives up. Closing it again, or when the
/// program has no process (its pipe closed with its run), does nothing; the program's next
/// run gets a new pipe.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (no stdin pipe: the program's stdin is not
/// `GOSUV_STDIN_PIPE`, or its run was taken over from an earlier server),
/// `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string (read
/// during the call only). Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_close_stdin(
    sup: *const gosuv_supervisor,
    name: *const c_char,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        s.sup.close_stdin(name)?;
        Ok(())
    })
}
