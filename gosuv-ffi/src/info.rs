//! Typed answers that need no JSON: the programs' names, one program's status with its
//! readiness and health, and what a reload did.

use std::ffi::{c_char, CString};

use gosuv_core::{Ownership, ProgramStatus, ReloadReport};

use crate::args::{arg_ref, arg_str, clear_out, out_ptr, write_opt};
use crate::control::instances;
use crate::error::{gosuv_result, guard, guard_value, Error, Result};
use crate::program::gosuv_program;
use crate::status::{gosuv_state, unix_ms};
use crate::supervisor::{check_size, gosuv_supervisor, init_sized, sup_and_name, write_sized};

/// A NULL-terminated array of strings the caller frees with `gosuv_string_array_free()`.
fn string_array(items: &[String]) -> Result<*mut *mut c_char> {
    let mut out: Vec<*mut c_char> = Vec::with_capacity(items.len() + 1);
    for s in items {
        match CString::new(s.as_str()) {
            Ok(c) => out.push(c.into_raw()),
            Err(_) => {
                // SAFETY: each made just above by CString::into_raw, given back once.
                out.into_iter()
                    .for_each(|p| drop(unsafe { CString::from_raw(p) }));
                return Err(Error::Invalid("a name to return holds a NUL byte".into()));
            }
        }
    }
    out.push(std::ptr::null_mut());
    Ok(Box::into_raw(out.into_boxed_slice()).cast::<*mut c_char>())
}

/// Frees a NULL-terminated array of strings from gosuv (`gosuv_supervisor_names()`, a
/// `gosuv_reload_report`), the strings with it. NULL is ignored.
///
/// # Safety
/// `array` is NULL or an array from gosuv not freed yet; it is dangling afterwards.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_string_array_free(array: *mut *mut c_char) {
    if array.is_null() {
        return;
    }
    guard_value((), || {
        let mut n = 0;
        // SAFETY: gosuv made it NULL-terminated; each string by CString::into_raw.
        unsafe {
            while !(*array.add(n)).is_null() {
                drop(CString::from_raw(*array.add(n)));
                n += 1;
            }
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                array,
                n + 1,
            )));
        }
    });
}

/// Writes the names of every program, sorted, to `*out_names` (a NULL-terminated array the
/// caller frees with `gosuv_string_array_free()`), and their number to `*out_count` when
/// `out_count` is not NULL. On failure `*out_names` is NULL.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `sup` is NULL or a live supervisor; `out_names` and `out_count` are NULL or valid for
/// writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_names(
    sup: *const gosuv_supervisor,
    out_names: *mut *mut *mut c_char,
    out_count: *mut usize,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe {
        clear_out(out_names);
        write_opt(out_count, 0);
    }
    guard(|| {
        let out = out_ptr(out_names, "out_names")?;
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        let names = s.sup.as_async().names();
        let array = string_array(&names)?;
        // SAFETY: checked non-NULL / the caller promises NULL or writable.
        unsafe {
            out.write(array);
            write_opt(out_count, names.len());
        }
        Ok(())
    })
}

/// How gosuv owns a program's processes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_ownership {
    /// Not known: it has not run yet.
    None = 0,
    /// Its process group and session (no cgroup could be made).
    Group = 1,
    /// A cgroup of its own: every process it starts is stopped with it.
    Cgroup = 2,
}

/// One program's status with its readiness and health: a plain value the caller allocates,
/// versioned by its size (later versions add fields at its end). Fill one with
/// `gosuv_program_info_init()`, which sets `size`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gosuv_program_info {
    /// `sizeof(gosuv_program_info)` as the caller's header has it.
    pub size: usize,
    /// Its state.
    pub state: gosuv_state,
    /// The leader's pid while a process exists, else 0.
    pub pid: u32,
    /// Whether `exit_code` holds the exit code of the last process that exited normally.
    pub has_exit_code: bool,
    /// The exit code of the last process that exited normally (valid when `has_exit_code`).
    pub exit_code: i32,
    /// The signal that killed the last process, or 0.
    pub exit_signal: i32,
    /// Automatic restarts and retries since the program was added.
    pub restarts: u64,
    /// Seconds since the current process started, or 0.
    pub uptime_secs: f64,
    /// When the current process started, in milliseconds since the Unix epoch, or 0.
    pub started_at_ms: i64,
    /// Failed writes to its log files (and copies to a tee descriptor).
    pub log_errors: u64,
    /// Whether it has a last error (read it with `gosuv_supervisor_program_error()`).
    pub has_last_error: bool,
    /// Whether its current run is ready: it reached `running` (its ready probe passed, or
    /// it stayed up `start_seconds`).
    pub ready: bool,
    /// When its current run became ready, in milliseconds since the Unix epoch, or 0.
    pub ready_at_ms: i64,
    /// How gosuv owns the processes of its current (or last) run.
    pub ownership: gosuv_ownership,
    /// Whether it has a health record (a health probe, and it reached `running` once).
    pub has_health: bool,
    /// Failed health checks since it was added.
    pub health_failures: u64,
    /// Failed health checks in a row now.
    pub health_failing: u32,
    /// In `waiting`: how many of its dependencies are not yet satisfied (their names are
    /// in `gosuv_supervisor_status_json()`).
    pub waiting_for: u32,
}

/// The size of the first version of `gosuv_program_info`: a literal, so that a field added
/// later never raises the size an older caller must pass.
#[cfg(target_pointer_width = "64")]
const INFO_V1_SIZE: usize = 104;
#[cfg(all(target_pointer_width = "32", target_arch = "x86"))]
const INFO_V1_SIZE: usize = 92;
#[cfg(all(target_pointer_width = "32", not(target_arch = "x86")))]
const INFO_V1_SIZE: usize = 96;

// The first version ends with `waiting_for` (padded to the struct's alignment).
const _: () = assert!(
    std::mem::offset_of!(gosuv_program_info, waiting_for) + 4 <= INFO_V1_SIZE
        && INFO_V1_SIZE - (std::mem::offset_of!(gosuv_program_info, waiting_for) + 4)
            < std::mem::align_of::<gosuv_program_info>()
        && std::mem::size_of::<gosuv_program_info>() >= INFO_V1_SIZE
);

const DEFAULT_INFO: gosuv_program_info = gosuv_program_info {
    size: std::mem::size_of::<gosuv_program_info>(),
    state: gosuv_state::Stopped,
    pid: 0,
    has_exit_code: false,
    exit_code: 0,
    exit_signal: 0,
    restarts: 0,
    uptime_secs: 0.0,
    started_at_ms: 0,
    log_errors: 0,
    has_last_error: false,
    ready: false,
    ready_at_ms: 0,
    ownership: gosuv_ownership::None,
    has_health: false,
    health_failures: 0,
    health_failing: 0,
    waiting_for: 0,
};

impl From<&ProgramStatus> for gosuv_program_info {
    fn from(s: &ProgramStatus) -> Self {
        let health = s.health.as_ref();
        gosuv_program_info {
            size: std::mem::size_of::<gosuv_program_info>(),
            state: s.state.into(),
            pid: s.pid.unwrap_or(0),
            has_exit_code: s.exit_code.is_some(),
            exit_code: s.exit_code.unwrap_or(0),
            exit_signal: s.exit_signal.unwrap_or(0),
            restarts: s.restarts,
            uptime_secs: s.uptime_secs.unwrap_or(0.0),
            started_at_ms: s.started_at.map_or(0, unix_ms),
            log_errors: s.log_errors,
            has_last_error: s.last_error.is_some(),
            ready: s.state == gosuv_core::ProgramState::Running,
            ready_at_ms: s.ready_at.map_or(0, unix_ms),
            ownership: match s.ownership {
                None => gosuv_ownership::None,
                Some(Ownership::Group) => gosuv_ownership::Group,
                Some(Ownership::Cgroup) => gosuv_ownership::Cgroup,
            },
            has_health: health.is_some(),
            health_failures: health.map_or(0, |h| h.failures),
            health_failing: health.map_or(0, |h| h.failing),
            waiting_for: u32::try_from(s.waiting_for.len()).unwrap_or(u32::MAX),
        }
    }
}

/// Fills the caller's `*out` with zeros and sets `out->size` to `size`, which is
/// `sizeof(gosuv_program_info)`: exactly `size` bytes are written, so a library newer than
/// the caller's header never writes past the caller's struct.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT` (`out`), `GOSUV_RESULT_INVALID_ARGUMENT` (`size`
/// smaller than the first version's: nothing is written).
///
/// # Safety
/// `out` is NULL or valid for writes of `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_info_init(
    out: *mut gosuv_program_info,
    size: usize,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    guard(|| unsafe { init_sized(out, size, "out", INFO_V1_SIZE, &DEFAULT_INFO) })
}

/// Writes one program's status, readiness and health to `*out_info`, as far as its `size`
/// goes (the caller sets `size`, see `gosuv_program_info_init()`). Does not block.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`size` smaller than the first version's: nothing is
/// written).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `name` is NULL or a NUL-terminated string; `out_info`
/// is NULL or valid for writes of its `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_program_info(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    out_info: *mut gosuv_program_info,
) -> gosuv_result {
    guard(|| {
        let out = out_ptr(out_info, "out_info")?;
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        // Checked before the program is looked up: a bad size fails whatever the name.
        // SAFETY: the caller promises the struct's `size` readable bytes.
        unsafe { check_size(out.cast_const(), "out_info", INFO_V1_SIZE) }?;
        let info = gosuv_program_info::from(&s.sup.status(name)?);
        // SAFETY: the caller promises the struct's `size` writable bytes.
        unsafe { write_sized(out, "out_info", INFO_V1_SIZE, &info) }
    })
}

/// What a reload did, by program name: NULL-terminated arrays, sorted, with their lengths.
/// The caller allocates it (see `gosuv_reload_report_init()`, which sets `size`); gosuv
/// fills it; `gosuv_reload_report_free()` frees the arrays. Versioned by its size.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct gosuv_reload_report {
    /// `sizeof(gosuv_reload_report)` as the caller's header has it.
    pub size: usize,
    /// Programs that were not there before (started with `start_auto`).
    pub added: *mut *mut c_char,
    /// Programs whose config changed (restarted if they had a process).
    pub changed: *mut *mut c_char,
    /// Programs that are gone (stopped first).
    pub removed: *mut *mut c_char,
    /// Programs left as they were.
    pub unchanged: *mut *mut c_char,
    /// The number of names in `added`.
    pub added_count: usize,
    /// The number of names in `changed`.
    pub changed_count: usize,
    /// The number of names in `removed`.
    pub removed_count: usize,
    /// The number of names in `unchanged`.
    pub unchanged_count: usize,
}

/// The size of the first version of `gosuv_reload_report`: a literal, so that a field added
/// later never raises the size an older caller must pass.
const REPORT_V1_SIZE: usize = 9 * std::mem::size_of::<usize>();

// The first version ends with `unchanged_count`.
const _: () = assert!(
    std::mem::offset_of!(gosuv_reload_report, unchanged_count) + std::mem::size_of::<usize>()
        == REPORT_V1_SIZE
        && std::mem::size_of::<gosuv_reload_report>() >= REPORT_V1_SIZE
);

const EMPTY_REPORT: gosuv_reload_report = gosuv_reload_report {
    size: std::mem::size_of::<gosuv_reload_report>(),
    added: std::ptr::null_mut(),
    changed: std::ptr::null_mut(),
    removed: std::ptr::null_mut(),
    unchanged: std::ptr::null_mut(),
    added_count: 0,
    changed_count: 0,
    removed_count: 0,
    unchanged_count: 0,
};

/// Makes the caller's `*out` an empty report (NULL arrays, zero counts) and sets `out->size`
/// to `size`, which is `sizeof(gosuv_reload_report)`: exactly `size` bytes are written, so
/// a library newer than the caller's header never writes past the caller's struct. It does
/// not free arrays `*out` held: call `gosuv_reload_report_free()` for those.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT` (`out`), `GOSUV_RESULT_INVALID_ARGUMENT` (`size`
/// smaller than the first version's: nothing is written).
///
/// # Safety
/// `out` is NULL or valid for writes of `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_reload_report_init(
    out: *mut gosuv_reload_report,
    size: usize,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    guard(|| unsafe { init_sized(out, size, "out", REPORT_V1_SIZE, &EMPTY_REPORT) })
}

/// Frees the arrays of a report gosuv filled and sets them to NULL (their counts to 0), so
/// freeing twice is harmless. NULL is ignored.
///
/// # Safety
/// `report` is NULL or a report whose arrays are NULL or gosuv's, not freed yet.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_reload_report_free(report: *mut gosuv_reload_report) {
    // SAFETY: the caller promises NULL or a valid report.
    let Some(r) = (unsafe { report.as_mut() }) else {
        return;
    };
    for (array, count) in [
        (&mut r.added, &mut r.added_count),
        (&mut r.changed, &mut r.changed_count),
        (&mut r.removed, &mut r.removed_count),
        (&mut r.unchanged, &mut r.unchanged_count),
    ] {
        // SAFETY: NULL or gosuv's array, as the caller promises.
        unsafe { gosuv_string_array_free(*array) };
        *array = std::ptr::null_mut();
        *count = 0;
    }
}

/// Fills a caller's report from the core's, with the unchanged names from `wanted`.
///
/// # Safety
/// `out` is NULL or valid for writes of its `size` bytes.
unsafe fn give_report(
    out: *mut gosuv_reload_report,
    report: &ReloadReport,
    wanted: &[String],
) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    let mut unchanged: Vec<String> = wanted
        .iter()
        .filter(|n| !report.added.contains(n) && !report.changed.contains(n))
        .cloned()
        .collect();
    unchanged.sort();
    let filled = gosuv_reload_report {
        size: std::mem::size_of::<gosuv_reload_report>(),
        added: string_array(&report.added)?,
        changed: string_array(&report.changed)?,
        removed: string_array(&report.removed)?,
        unchanged: string_array(&unchanged)?,
        added_count: report.added.len(),
        changed_count: report.changed.len(),
        removed_count: report.removed.len(),
        unchanged_count: unchanged.len(),
    };
    // SAFETY: the caller promises the struct's `size` writable bytes.
    let written = unsafe { write_sized(out, "out_report", REPORT_V1_SIZE, &filled) };
    if written.is_err() {
        let mut f = filled;
        // SAFETY: the arrays were made just above and given to nobody.
        unsafe { gosuv_reload_report_free(&mut f) };
    }
    written
}

/// Checks a caller's report before a reload, so that a bad `size` fails before anything
/// changes, and clears its arrays.
///
/// # Safety
/// `out` is NULL or valid for reads and writes of its `size` bytes.
unsafe fn check_report(out: *mut gosuv_reload_report) -> Result<()> {
    if out.is_null() {
        return Ok(());
    }
    // SAFETY: the caller's promise is passed on.
    unsafe {
        check_size(out.cast_const(), "out_report", REPORT_V1_SIZE)?;
        write_sized(out, "out_report", REPORT_V1_SIZE, &EMPTY_REPORT)
    }
}

/// Makes the set of programs equal to `count` builders: adds the new ones (starting those
/// with `start_auto`), updates the changed ones (restarting those that had a process),
/// removes the others (stopping them first), leaves the unchanged ones alone. An invalid
/// builder, or two with one name, change nothing. `*out_report`, when `out_report` is not
/// NULL, receives what was done (free it with `gosuv_reload_report_free()`).
///
/// Errors: `GOSUV_RESULT_CONFIG` (every problem), `GOSUV_RESULT_SHUTTING_DOWN`,
/// `GOSUV_RESULT_NULL_ARGUMENT` (`programs` NULL with `count` over 0, or a NULL entry),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`count` over 1048576),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (the report's `size` too small: nothing is done).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `programs` is NULL or points to `count` pointers to
/// live builders (read during the call only); `out_report` is NULL or valid for reads and
/// writes of its `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_reload_programs(
    sup: *const gosuv_supervisor,
    programs: *const *const gosuv_program,
    count: usize,
    out_report: *mut gosuv_reload_report,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: the caller promises NULL or a report of its `size`.
        unsafe { check_report(out_report) }?;
        crate::args::count_arg(count, crate::args::MAX_PROGRAMS, "count", "programs")?;
        if programs.is_null() && count > 0 {
            return Err(Error::Null("programs"));
        }
        let mut configs = Vec::new();
        for i in 0..count {
            // SAFETY: the caller promises `count` readable pointers, each NULL or live.
            let p = unsafe { (*programs.add(i)).as_ref() }.ok_or(Error::Null("programs[i]"))?;
            configs.extend(instances(p.config(s.base_dir())?)?);
        }
        let wanted: Vec<String> = configs.iter().map(|c| c.name.clone()).collect();
        let report = s.sup.reload(configs)?;
        // SAFETY: the caller promises NULL or a report of its `size`.
        unsafe { give_report(out_report, &report, &wanted) }
    })
}

/// As `gosuv_supervisor_reload()` (a programs-file text), with a typed report.
///
/// Errors: as `gosuv_supervisor_reload()`, and `GOSUV_RESULT_INVALID_ARGUMENT` (the
/// report's `size` too small: nothing is done).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `programs_yaml` is NULL or a NUL-terminated string
/// (read during the call only); `out_report` is NULL or valid for reads and writes of its
/// `size` bytes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_reload_yaml(
    sup: *const gosuv_supervisor,
    programs_yaml: *const c_char,
    out_report: *mut gosuv_reload_report,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let text = unsafe { arg_str(programs_yaml, "programs_yaml") }?;
        // SAFETY: the caller promises NULL or a report of its `size`.
        unsafe { check_report(out_report) }?;
        let programs = gosuv_core::config::parse_programs(text, None, s.base_dir())?;
        let wanted: Vec<String> = programs.iter().map(|c| c.name.clone()).collect();
        let report = s.sup.reload(programs)?;
        // SAFETY: the caller promises NULL or a report of its `size`.
        unsafe { give_report(out_report, &report, &wanted) }
    })
}
