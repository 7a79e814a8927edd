//! Turning C arguments into Rust values, and Rust values into C out-parameters.

use std::ffi::{c_char, CStr, CString};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{Error, Result};

/// A reference from a pointer that must not be NULL.
///
/// # Safety
/// `ptr` is NULL or valid for reads for `'a`.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T> {
    // SAFETY: passed on from the caller.
    unsafe { ptr.as_ref() }.ok_or(Error::Null(name))
}

/// A `&str` from a NUL-terminated UTF-8 string that must not be NULL.
///
/// # Safety
/// `ptr` is NULL or a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::Null(name));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| Error::NotUtf8(name))
}

/// An optional string: NULL is `None`.
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(
    ptr: *const c_char,
    name: &'static str,
) -> Result<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: passed on from the caller.
        unsafe { arg_str(ptr, name) }.map(Some)
    }
}

/// An absolute path from a string (relative ones resolve against the current directory now,
/// so a later `chdir` of the host program does not move them).
pub(crate) fn absolute_path(text: &str, name: &'static str) -> Result<PathBuf> {
    if text.is_empty() {
        return Err(Error::Invalid(format!(
            "argument `{name}` is an empty path: pass a directory or file name"
        )));
    }
    std::path::absolute(text).map_err(|e| {
        Error::Invalid(format!(
            "argument `{name}` ({text:?}) cannot be made absolute: {e}"
        ))
    })
}

/// The `timeout_ms` that waits for as long as it takes: every call that takes a `timeout_ms`
/// accepts it, and then never returns `GOSUV_RESULT_TIMEOUT` (it returns when what it waits
/// for happens or fails). Any other value is at most 86,400,000 (one day); 0 does not wait.
pub const GOSUV_WAIT_FOREVER: u64 = 0xFFFF_FFFF_FFFF_FFFF;

/// A `timeout_ms` argument as a duration: at most the core's longest wait (one day), or
/// [`GOSUV_WAIT_FOREVER`].
/// The most strings an array argument (an argv, an environment list) may hold: more than
/// any `exec` takes.
pub(crate) const MAX_STRINGS: usize = 1 << 20;

/// The most programs one call may describe.
pub(crate) const MAX_PROGRAMS: usize = 1 << 20;

/// Refuses a `count` over `max` before anything is read or allocated: such a number is a
/// mistake (a negative number cast to `size_t`, a length in bytes), never an array.
pub(crate) fn count_arg(count: usize, max: usize, name: &str, what: &str) -> Result<()> {
    if count > max {
        return Err(Error::Invalid(format!(
            "argument `{name}` is {count}: at most {max} {what}"
        )));
    }
    Ok(())
}

pub(crate) fn timeout_arg(timeout_ms: u64) -> Result<Duration> {
    if timeout_ms == GOSUV_WAIT_FOREVER {
        return Ok(gosuv_core::WAIT_FOREVER);
    }
    // Milliseconds up to u64::MAX fit a Duration: no overflow before the check.
    let timeout = Duration::from_millis(timeout_ms);
    if timeout > gosuv_core::MAX_WAIT {
        return Err(Error::Invalid(format!(
            "argument `timeout_ms` is {timeout_ms}: wait at most {} ms (one day), \
             GOSUV_WAIT_FOREVER to wait for as long as it takes, or 0 not to wait",
            gosuv_core::MAX_WAIT.as_millis()
        )));
    }
    Ok(timeout)
}

/// A `timeout_ms` argument of a call that may return without waiting: 0 is "do not wait".
pub(crate) fn wait_arg(timeout_ms: u64) -> Result<Option<Duration>> {
    timeout_arg(timeout_ms).map(|t| (!t.is_zero()).then_some(t))
}

/// Checks an out-pointer that must not be NULL.
pub(crate) fn out_ptr<T>(ptr: *mut T, name: &'static str) -> Result<*mut T> {
    if ptr.is_null() {
        Err(Error::Null(name))
    } else {
        Ok(ptr)
    }
}

/// Writes `value` through `ptr` when it is not NULL (an optional out-parameter).
///
/// # Safety
/// `ptr` is NULL or valid for writes of a `T`.
pub(crate) unsafe fn write_opt<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL, and the caller promises it is valid for writes.
        unsafe { ptr.write(value) };
    }
}

/// A string the caller frees with `gosuv_string_free`.
pub(crate) fn owned_c_string(text: String) -> Result<*mut c_char> {
    CString::new(text)
        .map(CString::into_raw)
        .map_err(|_| Error::Invalid("the text to return holds a NUL byte".into()))
}

/// Sets a `char **` out-parameter to NULL at the start of a call, so a caller may free it
/// whatever the outcome.
///
/// # Safety
/// `ptr` is NULL or valid for writes.
pub(crate) unsafe fn clear_out<T>(ptr: *mut *mut T) {
    // SAFETY: passed on from the caller.
    unsafe { write_opt(ptr, std::ptr::null_mut()) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_of_up_to_one_day_is_taken() {
        assert_eq!(wait_arg(0).ok(), Some(None));
        assert_eq!(timeout_arg(0).ok(), Some(Duration::ZERO));
        assert_eq!(
            wait_arg(86_400_000).ok(),
            Some(Some(Duration::from_secs(86_400)))
        );
    }

    #[test]
    fn a_timeout_over_one_day_is_refused_by_name_and_bound() {
        for ms in [86_400_001, u64::from(u32::MAX), GOSUV_WAIT_FOREVER - 1] {
            let message = match wait_arg(ms) {
                Err(e @ Error::Invalid(_)) => e.to_string(),
                other => panic!("{ms} ms gave {other:?}"),
            };
            assert!(message.contains("`timeout_ms`"), "{message}");
            assert!(message.contains("86400000"), "{message}");
            assert!(timeout_arg(ms).is_err());
        }
    }

    #[test]
    fn wait_forever_is_the_cores() {
        assert_eq!(GOSUV_WAIT_FOREVER, u64::MAX);
        assert_eq!(
            wait_arg(GOSUV_WAIT_FOREVER).ok(),
            Some(Some(gosuv_core::WAIT_FOREVER))
        );
    }
}
