//! A program described without YAML: the `gosuv_program` builder and its setters.
//!
//! The builder keeps the keys set so far as a programs-file entry (a YAML value built from
//! typed arguments, never from text), and every setter checks its key with the core's own
//! parser, as the entry of a programs file is checked: a bad value is refused at the setter
//! with the message a programs file would get, and the builder keeps what it had. Adding
//! the program checks the whole entry again, with the same parser. A string is one value
//! whatever it holds: a quote, a newline or `stop_signal: KILL` in an argument stays in
//! that argument.

use std::ffi::{c_char, c_int};
use std::os::fd::RawFd;
use std::path::Path;

use gosuv_core::config::{parse_program_value, validate_name};
use gosuv_core::{HostFd, OutputMode, ProgramConfig, ProgramIo, StdinMode};
use serde_yaml::{Mapping, Value};

use crate::args::{arg_opt_str, arg_str, clear_out, out_ptr, write_opt};
use crate::error::{gosuv_result, guard, Error, Result};
use crate::status::stream_arg;

/// When a program that was running and exited is started again (`autorestart`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_autorestart {
    /// Always (`true`, the default).
    Always = 0,
    /// Never (`false`).
    Never = 1,
    /// Only after an exit code not in its exit codes, or a death by signal (`unexpected`).
    Unexpected = 2,
}

/// How a program's processes are owned (`cgroup`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_cgroup_mode {
    /// A cgroup of its own where gosuv can make one, else its process group (the default).
    Auto = 0,
    /// Its process group.
    Off = 1,
    /// A cgroup of its own, or the start fails.
    Required = 2,
}

/// What a dependency (`depends_on`) must be before the program starts.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_condition {
    /// `running`, which with a ready probe means ready.
    Ready = 0,
    /// Its process exists.
    Started = 1,
    /// It ran and exited with one of its exit codes.
    ExitedOk = 2,
}

/// Where a program's standard input comes from.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_stdin {
    /// `/dev/null` (the default).
    Null = 0,
    /// The host process's own standard input (`/dev/null` when it is closed).
    Inherit = 1,
    /// A pipe the host writes to with `gosuv_supervisor_write_stdin()` and closes with
    /// `gosuv_supervisor_close_stdin()`; each run gets a fresh one.
    Pipe = 2,
}

/// Where one output stream of a program goes.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum gosuv_output {
    /// To its log: the file (unless `log_disable`), the tail and the followers (the
    /// default).
    Log = 0,
    /// To its log, and a copy of every byte to a descriptor of the host, like `tee`.
    Tee = 1,
    /// Nowhere: the program writes to `/dev/null`; no file, no tail, no follower line.
    Discard = 2,
}

/// Reads a C enum passed as a number: one of its variants, or an error listing them.
macro_rules! enum_arg {
    ($ty:ident, $what:literal, [$($v:ident),+]) => {
        impl $ty {
            fn from_arg(n: u32) -> Result<$ty> {
                [$($ty::$v),+]
                    .into_iter()
                    .find(|v| *v as u32 == n)
                    .ok_or_else(|| Error::Invalid(format!("{n} is not a {}: use {}", stringify!($ty), $what)))
            }
        }
    };
}

enum_arg!(
    gosuv_autorestart,
    "GOSUV_AUTORESTART_ALWAYS (0), _NEVER (1) or _UNEXPECTED (2)",
    [Always, Never, Unexpected]
);
enum_arg!(
    gosuv_cgroup_mode,
    "GOSUV_CGROUP_MODE_AUTO (0), _OFF (1) or _REQUIRED (2)",
    [Auto, Off, Required]
);
enum_arg!(
    gosuv_condition,
    "GOSUV_CONDITION_READY (0), _STARTED (1) or _EXITED_OK (2)",
    [Ready, Started, ExitedOk]
);
enum_arg!(
    gosuv_stdin,
    "GOSUV_STDIN_NULL (0), _INHERIT (1) or _PIPE (2)",
    [Null, Inherit, Pipe]
);
enum_arg!(
    gosuv_output,
    "GOSUV_OUTPUT_LOG (0), _TEE (1) or _DISCARD (2)",
    [Log, Tee, Discard]
);

/// A program being described, to add with `gosuv_supervisor_add_program()` or apply with
/// `gosuv_supervisor_update_program()`. Opaque.
///
/// Made by `gosuv_program_new()`, changed by the `gosuv_program_set_*` functions (each
/// replaces what was set for its key; a failed one changes nothing), freed by
/// `gosuv_program_free()`. Adding it copies it: the builder may be changed and added again
/// under another name, or freed at once.
///
/// Thread safety: a builder may move between threads, but must not be used by two at once.
pub struct gosuv_program {
    name: String,
    /// Every key set but `name`, as a programs-file entry has them.
    keys: Mapping,
    io: ProgramIo,
}

impl gosuv_program {
    /// The program's config, read by the core's parser as a programs-file entry is
    /// (relative paths against `base_dir`), with its streams.
    pub(crate) fn config(&self, base_dir: &Path) -> Result<ProgramConfig> {
        let mut entry = Mapping::new();
        entry.insert("name".into(), self.name.clone().into());
        for (k, v) in &self.keys {
            entry.insert(k.clone(), v.clone());
        }
        let mut config = parse_program_value(Value::Mapping(entry), base_dir)?;
        config.io = self.io.clone();
        Ok(config)
    }

    /// Sets `key` after the core's parser took it on its own (with a stand-in command when
    /// the key is not the command): the same checks and messages as a programs file.
    fn set(&mut self, key: &str, value: Value) -> Result<()> {
        let mut probe = Mapping::new();
        probe.insert("name".into(), self.name.clone().into());
        if key != "command" {
            probe.insert("command".into(), Value::Sequence(vec!["true".into()]));
        }
        probe.insert(key.into(), value.clone());
        parse_program_value(Value::Mapping(probe), Path::new("/"))?;
        self.keys.insert(key.into(), value);
        Ok(())
    }

    fn unset(&mut self, key: &str) {
        self.keys.remove(key);
    }
}

/// Runs a setter's body on a builder that must not be NULL.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
unsafe fn with_program(
    prog: *mut gosuv_program,
    body: impl FnOnce(&mut gosuv_program) -> Result<()>,
) -> gosuv_result {
    guard(|| {
        // SAFETY: the caller promises NULL or a live builder, not used elsewhere now.
        let p = unsafe { prog.as_mut() }.ok_or(Error::Null("prog"))?;
        body(p)
    })
}

/// An array of `count` strings as YAML strings. NULL with `count` 0 is an empty list.
///
/// # Safety
/// `items` is NULL or points to `count` pointers, each NULL or a NUL-terminated string.
unsafe fn string_list(
    items: *const *const c_char,
    count: usize,
    name: &'static str,
) -> Result<Vec<Value>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if items.is_null() {
        return Err(Error::Null(name));
    }
    let count_name = if name == "argv" { "argc" } else { "count" };
    crate::args::count_arg(count, crate::args::MAX_STRINGS, count_name, "strings")?;
    (0..count)
        .map(|i| {
            // SAFETY: the caller promises `count` readable pointers.
            let ptr = unsafe { *items.add(i) };
            if ptr.is_null() {
                return Err(Error::Invalid(format!(
                    "argument `{name}[{i}]` is NULL: pass {count} strings"
                )));
            }
            // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
            let s = unsafe { arg_str(ptr, name) }?;
            Ok(Value::String(s.to_string()))
        })
        .collect()
}

/// A number of milliseconds as a duration a programs file takes (`250ms`).
fn millis(ms: u64) -> Value {
    Value::String(format!("{ms}ms"))
}

/// A probe mapping: the check, and `interval` and `timeout` when not 0 (0: the default).
fn probe(check: &str, target: Value, interval_ms: u64, timeout_ms: u64) -> Mapping {
    let mut m = Mapping::new();
    m.insert(check.into(), target);
    if interval_ms > 0 {
        m.insert("interval".into(), millis(interval_ms));
    }
    if timeout_ms > 0 {
        m.insert("timeout".into(), millis(timeout_ms));
    }
    m
}

/// Makes a builder for a program named `name`, with every default and no command yet (set
/// one with `gosuv_program_set_argv()` or `gosuv_program_set_shell_command()`). On success
/// `*out` is a new builder the caller owns and frees with `gosuv_program_free()`; on failure
/// it is NULL.
///
/// Errors: `GOSUV_RESULT_CONFIG` (a name that is not letters, digits, `.`, `_` and `-`
/// starting with a letter or digit, at most 64 characters), `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT` (not UTF-8).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string (read during the call only); `out` is NULL or
/// valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_new(
    name: *const c_char,
    out: *mut *mut gosuv_program,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises NULL or a NUL-terminated string.
        let name = unsafe { arg_str(name, "name") }?;
        validate_name(name).map_err(|e| {
            Error::from(gosuv_core::ConfigErrors(vec![gosuv_core::ConfigError {
                file: None,
                line: None,
                key: "name".into(),
                message: e,
            }]))
        })?;
        let prog = Box::new(gosuv_program {
            name: name.to_string(),
            keys: Mapping::new(),
            io: ProgramIo::default(),
        });
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { write_opt(out, Box::into_raw(prog)) };
        Ok(())
    })
}

/// Frees a builder. NULL is ignored.
///
/// # Safety
/// `prog` is NULL or a builder from `gosuv_program_new()` not freed yet, used by no other
/// thread; it is dangling afterwards.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_free(prog: *mut gosuv_program) {
    if prog.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: made by Box::into_raw in gosuv_program_new and given back once.
        drop(unsafe { Box::from_raw(prog) });
        Ok(())
    });
}

/// Sets the command as an argv, exec'd directly with no shell: `argv[0]` is the program
/// (searched in `PATH` when it has no `/`), the others its arguments, each passed as it is
/// (quotes, spaces, newlines, `$` included). `argc` must be at least 1.
///
/// Errors: `GOSUV_RESULT_CONFIG` (`argc` 0, an empty `argv[0]`),
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT` (a NULL entry, not UTF-8,
/// `argc` over 1048576).
///
/// # Safety
/// `prog` is NULL or a live builder; `argv` is NULL or points to `argc` pointers, each NULL
/// or a NUL-terminated string (read during the call only).
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_argv(
    prog: *mut gosuv_program,
    argv: *const *const c_char,
    argc: usize,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let items = string_list(argv, argc, "argv")?;
            p.set("command", Value::Sequence(items))
        })
    }
}

/// Sets the command as a shell command line, as `command:` with a string in `programs.yml`:
/// one simple command is split as `/bin/sh` would and exec'd directly, anything else runs
/// under `/bin/sh -c`. Quote as for the shell; prefer `gosuv_program_set_argv()` for
/// arguments that come from elsewhere.
///
/// Errors: `GOSUV_RESULT_CONFIG` (an empty command), `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `command` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_shell_command(
    prog: *mut gosuv_program,
    command: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let command = arg_str(command, "command")?;
            p.set("command", Value::String(command.to_string()))
        })
    }
}

/// Sets the variables the program gets on top of the host's environment (`environ`):
/// `count` strings `"KEY=VALUE"`, in order (a later one wins). It replaces the list set
/// before (by this call or `gosuv_program_add_env()`); the host's own variables are always
/// there unless overridden. `count` 0 clears the list.
///
/// Errors: `GOSUV_RESULT_CONFIG` (an entry without `=`, or an empty key),
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT` (a NULL entry, `count`
/// over 1048576).
///
/// # Safety
/// `prog` is NULL or a live builder; `env` is NULL or points to `count` pointers to
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_env(
    prog: *mut gosuv_program,
    env: *const *const c_char,
    count: usize,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let items = string_list(env, count, "env")?;
            if items.is_empty() {
                p.unset("environ");
                return Ok(());
            }
            p.set("environ", Value::Sequence(items))
        })
    }
}

/// Adds one variable to the list of `gosuv_program_set_env()`: `key` and `value` apart, so
/// `value` may hold anything (`=`, quotes, newlines).
///
/// Errors: `GOSUV_RESULT_CONFIG` (an empty key, or one holding `=`),
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `key` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_add_env(
    prog: *mut gosuv_program,
    key: *const c_char,
    value: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let key = arg_str(key, "key")?;
            let value = arg_str(value, "value")?;
            if key.is_empty() || key.contains('=') {
                return Err(Error::from(gosuv_core::ConfigErrors(vec![
                    gosuv_core::ConfigError {
                        file: None,
                        line: None,
                        key: "environ".into(),
                        message: format!(
                            "{key:?} is not a variable name: give a non-empty name without '='"
                        ),
                    },
                ])));
            }
            let mut items = match p.keys.get("environ") {
                Some(Value::Sequence(items)) => items.clone(),
                _ => Vec::new(),
            };
            items.push(Value::String(format!("{key}={value}")));
            p.set("environ", Value::Sequence(items))
        })
    }
}

/// A key that takes a path, or is left out for NULL.
///
/// # Safety
/// `prog` is NULL or a live builder; `path` is NULL or a NUL-terminated string.
unsafe fn set_opt_path(
    prog: *mut gosuv_program,
    key: &'static str,
    path: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| match arg_opt_str(path, key)? {
            Some(s) => p.set(key, Value::String(s.to_string())),
            None => {
                p.unset(key);
                Ok(())
            }
        })
    }
}

/// Sets the working directory (`directory`); relative to the supervisor's base directory.
/// NULL: the base directory (the default). One that does not exist is not an error here:
/// the program's start fails.
///
/// Errors: `GOSUV_RESULT_CONFIG` (an empty path), `GOSUV_RESULT_NULL_ARGUMENT` (`prog`),
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `directory` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_directory(
    prog: *mut gosuv_program,
    directory: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_opt_path(prog, "directory", directory) }
}

/// Sets `env_file`: a dotenv file read at each start (relative to the base directory);
/// `environ` wins over it. NULL: none.
///
/// Errors: as `gosuv_program_set_directory()`.
///
/// # Safety
/// As `gosuv_program_set_directory()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_env_file(
    prog: *mut gosuv_program,
    path: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_opt_path(prog, "env_file", path) }
}

/// Sets another file for one stream's log (`stdout_logfile` or `stderr_logfile`; `stream`
/// a `gosuv_stream`), relative to the base directory. NULL: `<log_dir>/<name>.<stream>.log`.
///
/// Errors: as `gosuv_program_set_directory()`; `GOSUV_RESULT_INVALID_ARGUMENT` (unknown
/// `stream`).
///
/// # Safety
/// As `gosuv_program_set_directory()`.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_logfile(
    prog: *mut gosuv_program,
    stream: u32,
    path: *const c_char,
) -> gosuv_result {
    let key = match stream_arg(stream) {
        Ok(gosuv_core::Stream::Stdout) => "stdout_logfile",
        Ok(gosuv_core::Stream::Stderr) => "stderr_logfile",
        Err(e) => return guard(|| Err(e)),
    };
    // SAFETY: the caller's promises are passed on.
    unsafe { set_opt_path(prog, key, path) }
}

/// Sets the user the program runs as (`user`); NULL: the host's user.
///
/// Errors: `GOSUV_RESULT_CONFIG` (an empty name), `GOSUV_RESULT_NULL_ARGUMENT` (`prog`),
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `user` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_user(
    prog: *mut gosuv_program,
    user: *const c_char,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| match arg_opt_str(user, "user")? {
            Some(u) => p.set("user", Value::String(u.to_string())),
            None => {
                p.unset("user");
                Ok(())
            }
        })
    }
}

/// Sets `start_auto`: start it when it is added (and when a reload adds it). Default:
/// false. Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_start_auto(
    prog: *mut gosuv_program,
    on: bool,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("start_auto", Value::Bool(on))) }
}

/// Sets `start_seconds`: how long it must stay up for a start to count (whole seconds,
/// 0 to 86400). Default: 1. Errors: `GOSUV_RESULT_CONFIG` (over a day),
/// `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_start_seconds(
    prog: *mut gosuv_program,
    secs: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("start_seconds", Value::from(secs))) }
}

/// Sets `start_retries`: failed starts in a row before `fatal` (0 to 1000). Default: 3.
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_start_retries(
    prog: *mut gosuv_program,
    n: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("start_retries", Value::from(n))) }
}

/// Sets `stop_timeout`: seconds between the stop signal and SIGKILL (0 to 86400).
/// Default: 10. Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_stop_timeout(
    prog: *mut gosuv_program,
    secs: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("stop_timeout", Value::from(secs))) }
}

/// Sets `redirect_stderr`: stderr goes where stdout goes. Default: false.
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_redirect_stderr(
    prog: *mut gosuv_program,
    on: bool,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("redirect_stderr", Value::Bool(on))) }
}

/// Sets `log_disable`: keep the output in memory only (tail, followers), write no
/// file. Default: false. Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_log_disable(
    prog: *mut gosuv_program,
    on: bool,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("log_disable", Value::Bool(on))) }
}

/// Sets `log_timestamps`: prefix each line written to the log files with its UTC time.
/// Default: false. Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_log_timestamps(
    prog: *mut gosuv_program,
    on: bool,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("log_timestamps", Value::Bool(on))) }
}

/// Sets `log_max_bytes`: rotate a log file at this size; 0 never rotates. Default:
/// 50 MiB. Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_log_max_bytes(
    prog: *mut gosuv_program,
    bytes: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("log_max_bytes", Value::from(bytes))) }
}

/// Sets `log_backups`: rotated files kept (0 to 1000). Default: 10.
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_log_backups(
    prog: *mut gosuv_program,
    n: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("log_backups", Value::from(n))) }
}

/// Sets `numprocs`: run N instances named `NAME-0` .. `NAME-(N-1)` (1 to 1000); `{n}`
/// in the command, the environment values, the directory and the log files is the
/// instance's number. `gosuv_supervisor_add_program()` adds every instance. Default: 1.
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_numprocs(
    prog: *mut gosuv_program,
    n: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("numprocs", Value::from(n))) }
}

/// Sets `umask`, as a number (`0022`, `0077`; at most `0777`). Default: the host's.
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_umask(
    prog: *mut gosuv_program,
    mask: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe { with_program(prog, |p| p.set("umask", Value::String(format!("{mask:o}")))) }
}

/// Sets `autorestart` (`mode` a `gosuv_autorestart`).
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `mode`), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_autorestart(
    prog: *mut gosuv_program,
    mode: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            let value = match gosuv_autorestart::from_arg(mode)? {
                gosuv_autorestart::Always => Value::Bool(true),
                gosuv_autorestart::Never => Value::Bool(false),
                gosuv_autorestart::Unexpected => Value::String("unexpected".into()),
            };
            p.set("autorestart", value)
        })
    }
}

/// Sets `cgroup` (`mode` a `gosuv_cgroup_mode`).
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `mode`), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_cgroup(
    prog: *mut gosuv_program,
    mode: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            let value = match gosuv_cgroup_mode::from_arg(mode)? {
                gosuv_cgroup_mode::Auto => "auto",
                gosuv_cgroup_mode::Off => "off",
                gosuv_cgroup_mode::Required => "required",
            };
            p.set("cgroup", value.into())
        })
    }
}

/// The most exit codes `gosuv_program_set_exit_codes()` takes: each of 0 to 255 once.
const MAX_EXIT_CODES: usize = 256;

/// Sets `exit_codes`: the expected exit codes (0 to 255), for `GOSUV_AUTORESTART_UNEXPECTED`
/// and `GOSUV_CONDITION_EXITED_OK`. Default: {0}.
///
/// Errors: `GOSUV_RESULT_CONFIG` (a code out of 0..255; `count` 0: at least one code is
/// expected, as in YAML), `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT` (`count` over 256).
///
/// # Safety
/// `prog` is NULL or a live builder; `codes` is NULL or points to `count` ints.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_exit_codes(
    prog: *mut gosuv_program,
    codes: *const i32,
    count: usize,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            crate::args::count_arg(
                count,
                MAX_EXIT_CODES,
                "count",
                "exit codes (0 to 255, each once)",
            )?;
            if codes.is_null() && count > 0 {
                return Err(Error::Null("codes"));
            }
            let list = (0..count)
                // SAFETY: the caller promises `count` readable ints.
                .map(|i| Value::from(*codes.add(i)))
                .collect();
            p.set("exit_codes", Value::Sequence(list))
        })
    }
}

/// Sets `stop_signal`, by number (`SIGTERM`, `SIGINT`, `SIGHUP` ...). Default: SIGTERM.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (not a signal number),
/// `GOSUV_RESULT_CONFIG` (a signal that never ends a program: `SIGSTOP`, `SIGCHLD` ...),
/// `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_stop_signal(
    prog: *mut gosuv_program,
    sig: c_int,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            let name = gosuv_core::config::StopSignal::name_of(sig).ok_or_else(|| {
                Error::Invalid(format!(
                    "{sig} is not a signal number a program can be stopped with: use SIGTERM, \
                     SIGINT, SIGQUIT, SIGHUP, SIGKILL, SIGUSR1 or SIGUSR2"
                ))
            })?;
            p.set("stop_signal", name.into())
        })
    }
}

/// Sets `memory_max`: restart the program when it uses more than `bytes`. 0: no limit (the
/// default).
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_memory_max(
    prog: *mut gosuv_program,
    bytes: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            if bytes == 0 {
                p.unset("memory_max");
                return Ok(());
            }
            p.set("memory_max", Value::from(bytes))
        })
    }
}

/// Sets `start_limit`: `burst` exits within `interval_ms` of a running program make a crash
/// loop (waits in `backoff` before each restart). `burst` 0 turns it off, else 2 to 1000;
/// `interval_ms` more than 0, at most a day. Default: 5 in 60 s.
///
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_start_limit(
    prog: *mut gosuv_program,
    burst: u32,
    interval_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            let mut m = Mapping::new();
            m.insert("burst".into(), Value::from(burst));
            m.insert("interval".into(), millis(interval_ms));
            p.set("start_limit", Value::Mapping(m))
        })
    }
}

/// # Safety
/// `prog` is NULL or a live builder; `target` is NULL or a NUL-terminated string.
unsafe fn set_probe(
    prog: *mut gosuv_program,
    key: &'static str,
    check: &'static str,
    target: *const c_char,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let target = arg_str(target, check)?;
            let mut m = probe(check, target.into(), interval_ms, timeout_ms);
            if failures > 0 {
                m.insert("failures".into(), Value::from(failures));
            }
            p.set(key, Value::Mapping(m))
        })
    }
}

/// Sets the `ready` probe to a line of the program's output (stdout or stderr) matching
/// `regex`: the start succeeds once one does. `timeout_ms`: not ready within this of the
/// start is a failed start (0: 60 s).
///
/// Errors: `GOSUV_RESULT_CONFIG` (an invalid regex, a timeout over a day),
/// `GOSUV_RESULT_NULL_ARGUMENT`, `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `regex` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_ready_log(
    prog: *mut gosuv_program,
    regex: *const c_char,
    timeout_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_probe(prog, "ready", "log", regex, 0, timeout_ms, 0) }
}

/// Sets the `ready` probe to a connection to `address` (`HOST:PORT`, or `unix:/path`)
/// succeeding, tried every `interval_ms` (0: 100 ms) for at most `timeout_ms` (0: 60 s).
///
/// Errors: as `gosuv_program_set_ready_log()`.
///
/// # Safety
/// `prog` is NULL or a live builder; `address` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_ready_tcp(
    prog: *mut gosuv_program,
    address: *const c_char,
    interval_ms: u64,
    timeout_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_probe(prog, "ready", "tcp", address, interval_ms, timeout_ms, 0) }
}

/// Sets the `ready` probe to an HTTP GET of `url` (`http://...`) answering 2xx or 3xx,
/// tried as `gosuv_program_set_ready_tcp()`.
///
/// Errors: as `gosuv_program_set_ready_log()`.
///
/// # Safety
/// `prog` is NULL or a live builder; `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_ready_http(
    prog: *mut gosuv_program,
    url: *const c_char,
    interval_ms: u64,
    timeout_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_probe(prog, "ready", "http", url, interval_ms, timeout_ms, 0) }
}

/// Sets the `ready` probe to `READY=1` on `$NOTIFY_SOCKET` (sd_notify), within
/// `timeout_ms` (0: 60 s).
///
/// Errors: `GOSUV_RESULT_CONFIG` (a timeout over a day), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_ready_notify(
    prog: *mut gosuv_program,
    timeout_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            p.set(
                "ready",
                Value::Mapping(probe("notify", Value::Bool(true), 0, timeout_ms)),
            )
        })
    }
}

/// # Safety
/// `prog` is NULL or a live builder; `argv` is NULL or `argc` NUL-terminated strings.
unsafe fn set_exec_probe(
    prog: *mut gosuv_program,
    key: &'static str,
    argv: *const *const c_char,
    argc: usize,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let items = string_list(argv, argc, "argv")?;
            let mut m = probe("exec", Value::Sequence(items), interval_ms, timeout_ms);
            if failures > 0 {
                m.insert("failures".into(), Value::from(failures));
            }
            p.set(key, Value::Mapping(m))
        })
    }
}

/// Sets the `ready` probe to a command (an argv, exec'd directly with the program's
/// environment, directory and user) exiting 0, tried as `gosuv_program_set_ready_tcp()`.
///
/// Errors: as `gosuv_program_set_argv()`, and a timeout over a day.
///
/// # Safety
/// `prog` is NULL or a live builder; `argv` is NULL or points to `argc` NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_ready_exec(
    prog: *mut gosuv_program,
    argv: *const *const c_char,
    argc: usize,
    interval_ms: u64,
    timeout_ms: u64,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe { set_exec_probe(prog, "ready", argv, argc, interval_ms, timeout_ms, 0) }
}

/// Removes the `ready` probe: a start succeeds after `start_seconds`.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_clear_ready(prog: *mut gosuv_program) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            p.unset("ready");
            Ok(())
        })
    }
}

/// Sets the `health` probe to a connection to `address` succeeding, checked every
/// `interval_ms` (0: 10 s), each attempt at most `timeout_ms` (0: 2 s); `failures` failed
/// attempts in a row (0: 3) restart the program.
///
/// Errors: `GOSUV_RESULT_CONFIG`, `GOSUV_RESULT_NULL_ARGUMENT`,
/// `GOSUV_RESULT_INVALID_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `address` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_health_tcp(
    prog: *mut gosuv_program,
    address: *const c_char,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        set_probe(
            prog,
            "health",
            "tcp",
            address,
            interval_ms,
            timeout_ms,
            failures,
        )
    }
}

/// Sets the `health` probe to an HTTP GET of `url`, as `gosuv_program_set_health_tcp()`.
///
/// # Safety
/// `prog` is NULL or a live builder; `url` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_health_http(
    prog: *mut gosuv_program,
    url: *const c_char,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        set_probe(
            prog,
            "health",
            "http",
            url,
            interval_ms,
            timeout_ms,
            failures,
        )
    }
}

/// Sets the `health` probe to a command exiting 0, as `gosuv_program_set_health_tcp()`.
///
/// # Safety
/// `prog` is NULL or a live builder; `argv` is NULL or points to `argc` NUL-terminated
/// strings.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_health_exec(
    prog: *mut gosuv_program,
    argv: *const *const c_char,
    argc: usize,
    interval_ms: u64,
    timeout_ms: u64,
    failures: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        set_exec_probe(
            prog,
            "health",
            argv,
            argc,
            interval_ms,
            timeout_ms,
            failures,
        )
    }
}

/// Removes the `health` probe.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_clear_health(prog: *mut gosuv_program) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            p.unset("health");
            Ok(())
        })
    }
}

/// Adds a dependency (`depends_on`): program `name` must meet `condition` (a
/// `gosuv_condition`) before this one starts. The program must exist when this one is
/// added.
///
/// Errors: `GOSUV_RESULT_CONFIG` (the same name twice, an invalid name),
/// `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `condition`), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder; `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_add_dependency(
    prog: *mut gosuv_program,
    name: *const c_char,
    condition: u32,
) -> gosuv_result {
    // SAFETY: the caller's promises are passed on.
    unsafe {
        with_program(prog, |p| {
            let name = arg_str(name, "name")?;
            let condition = match gosuv_condition::from_arg(condition)? {
                gosuv_condition::Ready => "ready",
                gosuv_condition::Started => "started",
                gosuv_condition::ExitedOk => "exited_ok",
            };
            let mut items = match p.keys.get("depends_on") {
                Some(Value::Sequence(items)) => items.clone(),
                _ => Vec::new(),
            };
            let mut dep = Mapping::new();
            dep.insert("name".into(), name.into());
            dep.insert("condition".into(), condition.into());
            items.push(Value::Mapping(dep));
            p.set("depends_on", Value::Sequence(items))
        })
    }
}

/// Removes every dependency.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_clear_dependencies(
    prog: *mut gosuv_program,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            p.unset("depends_on");
            Ok(())
        })
    }
}

/// Sets where the program's standard input comes from (`mode` a `gosuv_stdin`). Not a key
/// of `programs.yml`: it is not in `gosuv_supervisor_config_json()`.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `mode`), `GOSUV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_stdin(
    prog: *mut gosuv_program,
    mode: u32,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            p.io.stdin = match gosuv_stdin::from_arg(mode)? {
                gosuv_stdin::Null => StdinMode::Null,
                gosuv_stdin::Inherit => StdinMode::Inherit,
                gosuv_stdin::Pipe => StdinMode::Pipe,
            };
            Ok(())
        })
    }
}

/// Sets where one output stream (`stream` a `gosuv_stream`) goes (`mode` a `gosuv_output`).
/// With `GOSUV_OUTPUT_TEE`, `fd` is the host's descriptor to copy to (its stderr: 2, a
/// pipe's write end ...): gosuv copies it at once (close-on-exec), so the caller may close
/// its own; else `fd` is not read (pass -1). With `redirect_stderr`, stderr goes where
/// stdout goes, and a choice other than `GOSUV_OUTPUT_LOG` for stderr is refused. The copy never holds up the program, its log file or a removal: what the
/// descriptor does not take within a second (a full pipe nobody reads) is dropped, and
/// from then on what it does not take at once, until it takes output again; a removal
/// drops what it does not take at once. Dropped bytes count in `log_errors`. Not a key of `programs.yml`: it is not in
/// `gosuv_supervisor_config_json()`.
///
/// Errors: `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `stream` or `mode`; `fd` not an open
/// descriptor, or open for reading only), `GOSUV_RESULT_IO` (no descriptor left to copy
/// `fd` to), `GOSUV_RESULT_NULL_ARGUMENT`. At `gosuv_supervisor_add_program()`:
/// `GOSUV_RESULT_CONFIG` for a choice for stderr with `redirect_stderr`.
///
/// # Safety
/// `prog` is NULL or a live builder used by no other thread.
#[no_mangle]
pub unsafe extern "C" fn gosuv_program_set_output(
    prog: *mut gosuv_program,
    stream: u32,
    mode: u32,
    fd: c_int,
) -> gosuv_result {
    // SAFETY: the caller's promise is passed on.
    unsafe {
        with_program(prog, |p| {
            let stream = stream_arg(stream)?;
            let mode = match gosuv_output::from_arg(mode)? {
                gosuv_output::Log => OutputMode::Log,
                gosuv_output::Tee => {
                    let host = HostFd::dup_raw(fd as RawFd).map_err(|e| {
                        if e.raw_os_error() == Some(libc::EBADF) {
                            Error::Invalid(format!(
                                "argument `fd` is {fd}, not an open descriptor: pass one open \
                                 for writing (2 for the host's stderr)"
                            ))
                        } else {
                            Error::Core(gosuv_core::Error::Io {
                                context: format!(
                                    "cannot copy descriptor {fd} to tee the output to"
                                ),
                                source: e,
                            })
                        }
                    })?;
                    host.check_writable().map_err(|why| {
                        Error::Invalid(format!(
                            "argument `fd` is {fd}: cannot copy output to {why}"
                        ))
                    })?;
                    OutputMode::Tee(host)
                }
                gosuv_output::Discard => OutputMode::Discard,
            };
            match stream {
                gosuv_core::Stream::Stdout => p.io.stdout = mode,
                gosuv_core::Stream::Stderr => p.io.stderr = mode,
            }
            Ok(())
        })
    }
}
