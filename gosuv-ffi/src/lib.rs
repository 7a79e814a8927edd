//! libgosuv: the C ABI over the gosuv supervisor (`include/gosuv.h`).
//!
//! Conventions, after rustls-ffi:
//! - Every function is `gosuv_<object>_<verb>` and, unless it frees or only names something,
//!   returns a `gosuv_result`; `gosuv_error_message()` says what went wrong.
//! - Handles (`gosuv_supervisor`, `gosuv_subscription`, `gosuv_program`) are opaque; each
//!   has one function that frees it, which ignores NULL.
//! - A struct the caller allocates and gosuv reads or fills (`gosuv_supervisor_options`,
//!   `gosuv_program_info`, `gosuv_reload_report`) starts with its `size`, set by its
//!   `_init(ptr, sizeof *ptr)` function (never returned by value, so that a newer library
//!   never writes past an older caller's struct): a smaller size than its first version's
//!   is refused, a larger one (a newer header) is read and written as far as this library
//!   knows.
//! - A NULL pointer where one is required is `GOSUV_RESULT_NULL_ARGUMENT`, never a crash.
//! - Strings in are NUL-terminated UTF-8, only read during the call. Strings out are either
//!   copied into a caller's buffer or returned as `char *` that the caller frees with
//!   `gosuv_string_free()`.
//! - No panic crosses into C: every body runs under `catch_unwind`, and a panic becomes
//!   `GOSUV_RESULT_PANIC`.
//! - Callbacks take a `void *userdata` and an optional finalizer (wasmtime's C API), and run
//!   on threads gosuv owns.
//!
//! The functions block the calling thread until done; none may be called from inside a
//! tokio runtime the host program runs itself.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

// Declared in the order cbindgen writes their items into the header.
mod error;

mod status;

mod supervisor;

mod program;

mod control;

mod info;

mod subscription;

mod args;

use std::ffi::{c_char, CStr, CString};

use crate::error::guard_value;

/// The library's version.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(v) => v,
        Err(_) => panic!("the version holds a NUL byte"),
    };

/// The library's version, `"MAJOR.MINOR.PATCH"`.
///
/// # Safety
/// Always safe to call, from any thread. The string is static: never free it.
#[no_mangle]
pub extern "C" fn gosuv_version() -> *const c_char {
    guard_value(VERSION.as_ptr(), || VERSION.as_ptr())
}

/// Frees a string that a gosuv function returned through a `char **` out-parameter. NULL is
/// ignored.
///
/// # Safety
/// `s` is NULL or a string from gosuv that was not freed yet (never one from elsewhere, nor
/// a static one such as `gosuv_version()`'s); it is dangling afterwards. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_value((), || {
        // SAFETY: made by CString::into_raw in gosuv, and given back once, as the caller
        // promises.
        drop(unsafe { CString::from_raw(s) });
    });
}
