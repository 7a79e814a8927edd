//! The one result code, the crate's error type, the calling thread's last error message,
//! and the guard that turns every exported body into a result code, panics included.

use std::cell::RefCell;
use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use gosuv_core::Error as CoreError;

/// What a gosuv function returned. The numbers are stable: new codes are only ever added.
///
/// `gosuv_error_message()` turns a code into a message that says what went wrong and what to
/// do; right after a call failed on the same thread, that message is the detailed one.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_result {
    /// Success.
    Ok = 0,
    /// A pointer argument that must not be NULL was NULL.
    NullArgument = 1,
    /// An argument is invalid: a string that is not UTF-8, an unknown enum value, a zero
    /// buffer length, a `timeout_ms` over one day (86,400,000) but `GOSUV_WAIT_FOREVER`, a
    /// struct whose `size` is smaller than its first version's, a supervisor without a config
    /// file for `gosuv_supervisor_reload_file`. Nothing was done.
    InvalidArgument = 2,
    /// A program or config is invalid (the message names every problem, with its key and
    /// line). Nothing was changed.
    Config = 3,
    /// No program has that name.
    NotFound = 4,
    /// A program with that name exists already.
    Exists = 5,
    /// The program could not be brought to `running` (the message says why its last start
    /// failed).
    StartFailed = 6,
    /// A stop (or remove) came before the program reached `running`.
    StoppedBeforeRunning = 7,
    /// The wait ran out; the program carries on towards the wanted state.
    Timeout = 8,
    /// The supervisor is shutting down or has shut down: it accepts no more changes.
    ShuttingDown = 9,
    /// An operating-system call failed (the message names it and the OS error).
    Io = 10,
    /// A panic inside gosuv (a bug) was caught at the C boundary. The supervisor may still
    /// be used, but the failed call may have been half done.
    Panic = 11,
    /// gosuv failed inside without a panic reaching the C boundary (a bug): the task that
    /// runs a program failed, and that program was stopped and marked `fatal` (its last
    /// error says so); or another part of gosuv that should not fail did. The supervisor may
    /// still be used; start the program again, or free the supervisor, and report the
    /// message.
    Internal = 12,
}

impl gosuv_result {
    /// Every code, in number order.
    pub(crate) const ALL: [gosuv_result; 13] = [
        gosuv_result::Ok,
        gosuv_result::NullArgument,
        gosuv_result::InvalidArgument,
        gosuv_result::Config,
        gosuv_result::NotFound,
        gosuv_result::Exists,
        gosuv_result::StartFailed,
        gosuv_result::StoppedBeforeRunning,
        gosuv_result::Timeout,
        gosuv_result::ShuttingDown,
        gosuv_result::Io,
        gosuv_result::Panic,
        gosuv_result::Internal,
    ];

    fn from_u32(n: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| *c as u32 == n)
    }

    /// The general meaning of a code, for when no detailed message is at hand.
    fn description(self) -> &'static str {
        match self {
            gosuv_result::Ok => "success",
            gosuv_result::NullArgument => {
                "a pointer argument was NULL: pass a valid pointer (see the function's documentation)"
            }
            gosuv_result::InvalidArgument => {
                "an argument is invalid: check strings are UTF-8, enum values are known and \
                 timeouts are at most one day (86400000 ms) or GOSUV_WAIT_FOREVER"
            }
            gosuv_result::Config => "the program or config is invalid; nothing was changed",
            gosuv_result::NotFound => "no program has that name: list the programs to see them",
            gosuv_result::Exists => {
                "a program with that name already exists: choose another name or update it"
            }
            gosuv_result::StartFailed => {
                "the program could not start: see its last error (gosuv_supervisor_program_error)"
            }
            gosuv_result::StoppedBeforeRunning => {
                "the program was stopped before it reached running"
            }
            gosuv_result::Timeout => {
                "timed out waiting for the program's state; it carries on, wait again or stop it"
            }
            gosuv_result::ShuttingDown => {
                "the supervisor is shutting down: no more changes are accepted"
            }
            gosuv_result::Io => "an operating-system call failed",
            gosuv_result::Panic => "a panic inside gosuv (a bug) was caught: please report it",
            gosuv_result::Internal => {
                "gosuv failed inside (a bug): if a program's task failed, that program was \
                 stopped and marked fatal; start it again or free the supervisor, and please \
                 report it"
            }
        }
    }
}

/// Everything that can go wrong at the C boundary.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A required pointer was NULL.
    #[error("argument `{0}` is NULL: pass a valid pointer")]
    Null(&'static str),
    /// A string argument is not UTF-8.
    #[error("argument `{0}` is not valid UTF-8: pass UTF-8 text")]
    NotUtf8(&'static str),
    /// Any other invalid argument.
    #[error("{0}")]
    Invalid(String),
    /// A call ran out of its `timeout_ms` (the message says what was done).
    #[error("{0}")]
    Timeout(String),
    /// The core refused or failed.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A panic was caught.
    #[error("a panic inside gosuv was caught at the C boundary (a bug; please report it): {0}")]
    Panic(String),
}

impl From<gosuv_core::ConfigErrors> for Error {
    fn from(e: gosuv_core::ConfigErrors) -> Self {
        Error::Core(CoreError::Config(e))
    }
}

impl Error {
    pub(crate) fn code(&self) -> gosuv_result {
        match self {
            Error::Null(_) => gosuv_result::NullArgument,
            Error::NotUtf8(_) | Error::Invalid(_) => gosuv_result::InvalidArgument,
            Error::Panic(_) => gosuv_result::Panic,
            Error::Timeout(_) => gosuv_result::Timeout,
            Error::Core(e) => match e {
                CoreError::NotFound(_) => gosuv_result::NotFound,
                CoreError::Exists(_) => gosuv_result::Exists,
                CoreError::Config(_) => gosuv_result::Config,
                CoreError::StartFailed { .. } => gosuv_result::StartFailed,
                CoreError::StoppedBeforeRunning(_) => gosuv_result::StoppedBeforeRunning,
                CoreError::Timeout { .. } => gosuv_result::Timeout,
                CoreError::ShuttingDown => gosuv_result::ShuttingDown,
                CoreError::Io { .. } => gosuv_result::Io,
                CoreError::Invalid(_) => gosuv_result::InvalidArgument,
                // A C supervisor has no store, so `Store` cannot come from one; were it to,
                // it too is a failure the caller cannot fix by changing the call.
                CoreError::TaskFailed(_) | CoreError::Internal(_) | CoreError::Store(_) => {
                    gosuv_result::Internal
                }
            },
        }
    }
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

thread_local! {
    /// The last failure on this thread: its code and its message.
    static LAST_ERROR: RefCell<Option<(gosuv_result, String)>> = const { RefCell::new(None) };
}

fn set_last_error(code: gosuv_result, message: String) {
    LAST_ERROR.with(|e| *e.borrow_mut() = Some((code, message)));
}

fn clear_last_error() {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
}

/// The text of a caught panic's payload.
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Runs an exported function's body: catches panics, and turns an error into its code after
/// keeping its message for `gosuv_error_message`.
pub(crate) fn guard(body: impl FnOnce() -> Result<()>) -> gosuv_result {
    clear_last_error();
    let err = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return gosuv_result::Ok,
        Ok(Err(e)) => e,
        Err(payload) => Error::Panic(panic_text(payload.as_ref())),
    };
    let code = err.code();
    set_last_error(code, err.to_string());
    code
}

/// Runs a body that cannot fail but must not unwind into C either; a panic gives `fallback`.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// Copies `text` into a caller's buffer like `snprintf`: at most `len - 1` bytes (cut at a
/// character boundary) and a NUL. Returns the length of the whole text.
///
/// # Safety
/// `buf` is NULL or valid for `len` bytes of writes.
pub(crate) unsafe fn copy_text(text: &str, buf: *mut c_char, len: usize) -> usize {
    if !buf.is_null() && len > 0 {
        let mut n = text.len().min(len - 1);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        // SAFETY: the caller promises `buf` holds `len` bytes; `n + 1 <= len`, and the source
        // is a Rust string that cannot overlap a caller's buffer.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
            *buf.add(n) = 0;
        }
    }
    text.len()
}

/// Writes the message for `code` into `buf`, `snprintf`-style, and returns the length of the
/// whole message (not counting the NUL).
///
/// When the last gosuv call that failed on the calling thread failed with `code`, and no
/// gosuv call has succeeded on this thread since, the message is that call's detailed one
/// (for example `no program named 'web': check the name ...`). Otherwise it is the general
/// meaning of `code`. An unknown code gives a message that says so.
///
/// At most `len - 1` bytes and a terminating NUL are written, cut at a UTF-8 character
/// boundary. With `buf` NULL or `len` 0 nothing is written: call it so to learn the size to
/// allocate (the result plus one). A 512-byte buffer holds almost every message.
///
/// # Safety
/// `buf` is NULL or points to at least `len` writable bytes. Thread-safe: each thread has its
/// own last error. Does not change the last error.
#[no_mangle]
pub unsafe extern "C" fn gosuv_error_message(code: u32, buf: *mut c_char, len: usize) -> usize {
    guard_value(0, || {
        let text = match gosuv_result::from_u32(code) {
            None => format!("{code} is not a gosuv_result code"),
            Some(c) => LAST_ERROR
                .with(|e| match &*e.borrow() {
                    Some((last, message)) if *last == c => Some(message.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| c.description().to_string()),
        };
        // SAFETY: the caller's promise about `buf` and `len` is passed on.
        unsafe { copy_text(&text, buf, len) }
    })
}

/// The name of a result code as a static string (`"GOSUV_RESULT_NOT_FOUND"`), or
/// `"GOSUV_RESULT_UNKNOWN"` for a number that is not a code.
///
/// # Safety
/// Always safe to call, from any thread. The string is static: never free it.
#[no_mangle]
pub extern "C" fn gosuv_result_name(code: u32) -> *const c_char {
    guard_value(c"GOSUV_RESULT_UNKNOWN".as_ptr(), || {
        result_name(code).as_ptr()
    })
}

fn result_name(code: u32) -> &'static CStr {
    match gosuv_result::from_u32(code) {
        Some(gosuv_result::Ok) => c"GOSUV_RESULT_OK",
        Some(gosuv_result::NullArgument) => c"GOSUV_RESULT_NULL_ARGUMENT",
        Some(gosuv_result::InvalidArgument) => c"GOSUV_RESULT_INVALID_ARGUMENT",
        Some(gosuv_result::Config) => c"GOSUV_RESULT_CONFIG",
        Some(gosuv_result::NotFound) => c"GOSUV_RESULT_NOT_FOUND",
        Some(gosuv_result::Exists) => c"GOSUV_RESULT_EXISTS",
        Some(gosuv_result::StartFailed) => c"GOSUV_RESULT_START_FAILED",
        Some(gosuv_result::StoppedBeforeRunning) => c"GOSUV_RESULT_STOPPED_BEFORE_RUNNING",
        Some(gosuv_result::Timeout) => c"GOSUV_RESULT_TIMEOUT",
        Some(gosuv_result::ShuttingDown) => c"GOSUV_RESULT_SHUTTING_DOWN",
        Some(gosuv_result::Io) => c"GOSUV_RESULT_IO",
        Some(gosuv_result::Panic) => c"GOSUV_RESULT_PANIC",
        Some(gosuv_result::Internal) => c"GOSUV_RESULT_INTERNAL",
        None => c"GOSUV_RESULT_UNKNOWN",
    }
}

/// Panics inside Rust on purpose and returns `GOSUV_RESULT_PANIC`, with `message` in the
/// detailed error message. A debugging aid: it lets a C program (and gosuv's own tests)
/// check that a panic in gosuv reaches it as an error code rather than aborting the process,
/// for example that the library was not built with `panic = "abort"`. The panic is reported
/// on standard error by Rust's panic hook, like any panic.
///
/// # Safety
/// `message` is NULL (a default message is used) or a NUL-terminated UTF-8 string, only read
/// during the call. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_debug_panic(message: *const c_char) -> gosuv_result {
    guard(|| {
        let text = if message.is_null() {
            "gosuv_debug_panic was called".to_string()
        } else {
            // SAFETY: the caller promises a NUL-terminated string.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        panic!("{text}");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_numbered_in_order_without_gaps() {
        for (n, code) in gosuv_result::ALL.into_iter().enumerate() {
            assert_eq!(code as u32 as usize, n, "{code:?}");
            assert_eq!(gosuv_result::from_u32(code as u32), Some(code));
        }
        assert_eq!(gosuv_result::from_u32(gosuv_result::ALL.len() as u32), None);
    }

    /// The names and numbers the C side sees are the header's: a new code gets a name here.
    #[test]
    fn every_code_has_the_name_and_number_of_the_header() {
        let header = include_str!("../../include/gosuv.h");
        for code in gosuv_result::ALL {
            let name = result_name(code as u32).to_str().expect("names are ASCII");
            assert_ne!(name, "GOSUV_RESULT_UNKNOWN", "{code:?} has no name");
            let line = format!("    {name} = {},", code as u32);
            assert!(
                header.contains(&line),
                "include/gosuv.h has no line {line:?}"
            );
            assert!(!code.description().is_empty());
        }
    }

    #[test]
    fn core_errors_map_to_their_codes() {
        let code = |e: CoreError| Error::Core(e).code();
        assert_eq!(
            code(CoreError::Invalid("x".into())),
            gosuv_result::InvalidArgument
        );
        for e in [
            CoreError::TaskFailed("web".into()),
            CoreError::Internal("x".into()),
            CoreError::Store("x".into()),
        ] {
            assert_eq!(code(e), gosuv_result::Internal);
        }
    }
}
