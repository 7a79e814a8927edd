//! Callbacks: state-change events and output lines, each delivered on a thread of its own.

use std::cell::Cell;
use std::ffi::{c_char, c_void, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use gosuv_core::{Error as CoreError, EventNotice, Events, LogEvent, LogFollower, Stream};
use tokio::runtime::Runtime;

use crate::args::{arg_ref, clear_out, out_ptr};
use crate::error::{gosuv_result, guard, panic_text, Error, Result};
use crate::status::{gosuv_state, gosuv_stream, stream_arg, unix_ms};
use crate::supervisor::{gosuv_supervisor, sup_and_name};

/// How long a subscription thread waits for an item before it looks at its flags again.
const POLL: Duration = Duration::from_millis(50);

/// A line longer than this is delivered in pieces of this size.
const MAX_LINE: usize = 64 * 1024;

/// One state change, as passed to a `gosuv_event_callback`. Only valid during the callback:
/// copy what you need.
///
/// gosuv allocates it and the callback only reads it through a pointer, so later versions
/// of the library may add fields, always at its end; a program built against an older
/// `gosuv.h` reads the fields it knows.
#[repr(C)]
#[derive(Debug)]
pub struct gosuv_event {
    /// The program's name (NUL-terminated, valid during the callback only).
    pub program: *const c_char,
    /// The state it left.
    pub from: gosuv_state,
    /// The state it entered.
    pub to: gosuv_state,
    /// The process concerned, or 0.
    pub pid: u32,
    /// Whether `exit_code` holds an exit code (on a change caused by a normal exit). Neither
    /// this nor `exit_signal` is set on a change caused by an exit whose status is unknown
    /// (another process, such as a host that reaps every child, reaped it first).
    pub has_exit_code: bool,
    /// The exit code, when `has_exit_code`.
    pub exit_code: i32,
    /// The signal that killed the process, on a change caused by one; else 0.
    pub exit_signal: i32,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Events dropped just before this one because the callback fell behind (thousands
    /// queued); usually 0.
    pub missed_before: u64,
    /// Why, where gosuv knows more than the states say, or NULL (NUL-terminated, valid
    /// during the callback only): the probe that found the program ready (`"ready: its log
    /// probe passed after 0.512s"`), the dependencies it waits for (`"waiting for db"`), the
    /// dependency that made it `fatal`, a failed health check. An event whose `from` and `to`
    /// are both `GOSUV_STATE_RUNNING` reports a failed health check that did not (yet)
    /// restart the program.
    pub reason: *const c_char,
}

/// One line of a program's output, as passed to a `gosuv_log_callback`. Only valid during
/// the callback: copy what you need.
#[repr(C)]
#[derive(Debug)]
pub struct gosuv_log_line {
    /// The program's name (NUL-terminated, valid during the callback only).
    pub program: *const c_char,
    /// Which output it came from.
    pub stream: gosuv_stream,
    /// The line without its `\n`, followed by a NUL (valid during the callback only). The
    /// output may itself contain NUL bytes: `len` is the true length.
    pub text: *const c_char,
    /// The length of `text` in bytes, not counting the NUL.
    pub len: usize,
    /// Bytes of output lost just before this line because the callback fell behind; usually
    /// 0.
    pub skipped_bytes: u64,
}

/// Called with each state change of every program. Runs on a thread gosuv owns (one per
/// subscription, named `gosuv-events`), never on the thread that subscribed; calls of one
/// subscription never overlap and come in order. It may call any gosuv function, but while
/// it runs, later events wait: keep it short. It must not unwind (throw a C++ exception)
/// into gosuv.
pub type gosuv_event_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, event: *const gosuv_event)>;

/// Called with each line of a program's output. Runs on a thread gosuv owns (one per
/// subscription, named `gosuv-log`), with the same rules as `gosuv_event_callback`.
pub type gosuv_log_callback =
    Option<unsafe extern "C" fn(userdata: *mut c_void, line: *const gosuv_log_line)>;

/// Called once with a subscription's `userdata` after its last callback, on the
/// subscription's thread, so the caller can free what `userdata` points to. May be NULL.
pub type gosuv_finalizer = Option<unsafe extern "C" fn(userdata: *mut c_void)>;

/// A live subscription: a callback that gosuv calls on a thread of its own. Opaque.
///
/// Made by `gosuv_supervisor_on_event()` or `gosuv_supervisor_on_log()`; the caller owns it
/// and frees it with `gosuv_subscription_free()`, before or after freeing the supervisor.
pub struct gosuv_subscription {
    control: Arc<Control>,
}

/// What a subscription's thread looks at between two waits.
#[derive(Default)]
struct Flags {
    /// End now.
    stop: AtomicBool,
    /// Deliver what is queued, then end.
    drain: AtomicBool,
}

thread_local! {
    /// On a subscription's thread, its flags: a callback that ends its own subscription must
    /// not wait for its own thread.
    static OWN_FLAGS: Cell<*const Flags> = const { Cell::new(std::ptr::null()) };
}

/// Whether a subscription's thread has ended: set as the last thing the thread does, after
/// the finalizer.
#[derive(Default)]
struct Ended {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Ended {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.changed.notify_all();
    }

    /// Does not block: the lock is only ever held to read or set the flag.
    fn is_set(&self) -> bool {
        *self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait(&self) {
        let mut done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        while !*done {
            done = self
                .changed
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Sets [`Ended`] when dropped, so the thread sets it whichever way it ends.
struct SetOnDrop(Arc<Ended>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// The handle on a subscription's thread. The supervisor keeps one too, so that a thread
/// that was told to end from inside its own callback is still joined, when the supervisor
/// is freed.
///
/// No lock is held while waiting for the thread: its callback may call back into gosuv
/// meanwhile (subscribe again, which looks at every `Control` of the supervisor).
pub(crate) struct Control {
    flags: Arc<Flags>,
    /// The thread's handle, until the first caller of [`Control::join`] takes it.
    thread: Mutex<Option<JoinHandle<()>>>,
    ended: Arc<Ended>,
}

impl Control {
    /// Ends the subscription at once (what is queued is dropped) and waits for its thread,
    /// unless called from a subscription's thread (from a callback): then it does not wait,
    /// and the thread ends as soon as its callback under way returns.
    fn end(&self) {
        self.flags.stop.store(true, Ordering::SeqCst);
        // On any subscription's thread (inside a callback), waiting for another
        // subscription's thread could wait for ever: that one may be waiting for this one
        // (two callbacks freeing each other's subscriptions). It is told to end and is
        // joined later (by the next subscription made, or when the supervisor is freed).
        if OWN_FLAGS.with(Cell::get).is_null() {
            self.join();
        }
    }

    /// Ends the subscription of a supervisor being freed: what is queued (the shutdown's
    /// events) is delivered first, and the thread is waited for, from any thread, callbacks
    /// included, except the subscription's own: a callback that frees its supervisor ends
    /// its own subscription, which ends as soon as that callback returns.
    fn drain_and_join(&self) {
        if OWN_FLAGS.with(Cell::get) == Arc::as_ptr(&self.flags) {
            self.flags.stop.store(true, Ordering::SeqCst);
            return;
        }
        self.flags.drain.store(true, Ordering::SeqCst);
        self.join();
    }

    /// Waits until the thread has ended (its finalizer has run). The first caller takes the
    /// handle out of its lock and joins the thread outside it; a caller that finds the
    /// handle gone waits for the thread's [`Ended`] flag instead. Never call it on the
    /// subscription's own thread.
    pub(crate) fn join(&self) {
        let handle = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match handle {
            Some(h) => {
                let _ = h.join();
            }
            None => self.ended.wait(),
        }
    }

    /// Whether the thread has ended, so [`Control::join`] does not wait. Never blocks.
    pub(crate) fn is_finished(&self) -> bool {
        self.ended.is_set()
    }
}

/// Ends every subscription of a supervisor that is being freed, after its shutdown,
/// including those that callbacks make meanwhile: each delivers what is queued and is waited
/// for (but the calling callback's own, when a callback frees the supervisor).
pub(crate) fn end_all(sup: &gosuv_supervisor) {
    loop {
        let controls: Vec<Arc<Control>> = {
            let mut subs = sup
                .subscriptions
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *subs)
        };
        if controls.is_empty() {
            return;
        }
        for c in controls {
            c.drain_and_join();
        }
    }
}

/// The caller's `userdata`, handed to a gosuv thread.
struct UserData(*mut c_void);

// SAFETY: the caller of `gosuv_supervisor_on_*` is told that `userdata` is used on another
// thread, and promises that this is safe for what it points to.
unsafe impl Send for UserData {}

impl UserData {
    fn get(&self) -> *mut c_void {
        self.0
    }
}

/// Something a subscription receives from, until it returns `None`.
trait Source: Send + 'static {
    type Item;
    fn next(&mut self) -> impl std::future::Future<Output = Option<Self::Item>> + Send + '_;
}

impl Source for Events {
    type Item = EventNotice;
    fn next(&mut self) -> impl std::future::Future<Output = Option<EventNotice>> + Send + '_ {
        self.recv()
    }
}

impl Source for LogFollower {
    type Item = LogEvent;
    fn next(&mut self) -> impl std::future::Future<Output = Option<LogEvent>> + Send + '_ {
        self.recv()
    }
}

/// Waits for items and hands each to `deliver` until the flags or the source say to end.
///
/// The waiting runs on a small runtime of the subscription's own thread rather than the
/// supervisor's, so a subscription never touches the supervisor's runtime, which may be gone
/// while the thread winds down (a supervisor freed from inside a callback).
fn pump<S: Source>(flags: &Flags, rt: &Runtime, source: &mut S, mut deliver: impl FnMut(S::Item)) {
    loop {
        if flags.stop.load(Ordering::SeqCst) {
            return;
        }
        let draining = flags.drain.load(Ordering::SeqCst);
        let wait = if draining { Duration::ZERO } else { POLL };
        match rt.block_on(async { tokio::time::timeout(wait, source.next()).await }) {
            Ok(Some(item)) => deliver(item),
            Ok(None) => return,
            Err(_) if draining => return,
            Err(_) => {}
        }
    }
}

/// How a new subscription thread tells its creator whether it could start.
#[derive(Default)]
struct Ready {
    outcome: Mutex<Option<std::io::Result<()>>>,
    changed: Condvar,
}

impl Ready {
    fn set(&self, outcome: std::io::Result<()>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.changed.notify_all();
    }

    fn wait(&self) -> std::io::Result<()> {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(o) = outcome.take() {
                return o;
            }
            outcome = self
                .changed
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// Starts a subscription's thread: `body` runs, then the finalizer, whatever happens.
///
/// The thread makes its small runtime itself (making it here would tie memory to the
/// caller's thread for good) and says whether that worked before this returns; if not,
/// neither the callback nor the finalizer is called.
fn spawn(
    sup: &gosuv_supervisor,
    thread_name: &'static str,
    userdata: UserData,
    finalizer: gosuv_finalizer,
    body: impl FnOnce(&Flags, &Runtime, *mut c_void) + Send + 'static,
) -> Result<*mut gosuv_subscription> {
    let io_error = |source| {
        Error::Core(CoreError::Io {
            context: format!("cannot start the {thread_name} thread"),
            source,
        })
    };
    let flags = Arc::new(Flags::default());
    let thread_flags = flags.clone();
    // A mutex and a condition variable rather than a channel: a channel's blocking receive
    // ties memory to the caller's thread for good (std's handle of the current thread).
    let ready = Arc::new(Ready::default());
    let thread_ready = ready.clone();
    let ended = Arc::new(Ended::default());
    // Declared first in the thread, so dropped last: after the finalizer.
    let set_ended = SetOnDrop(ended.clone());
    let handle = thread::Builder::new()
        .name(thread_name.into())
        .spawn(move || {
            let _set_ended = set_ended;
            let userdata = userdata;
            let rt = catch_unwind(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
            });
            let rt = match rt {
                Ok(Ok(rt)) => rt,
                Ok(Err(e)) => {
                    thread_ready.set(Err(e));
                    return;
                }
                Err(payload) => {
                    let e = std::io::Error::other(panic_text(payload.as_ref()));
                    thread_ready.set(Err(e));
                    return;
                }
            };
            thread_ready.set(Ok(()));
            OWN_FLAGS.with(|f| f.set(Arc::as_ptr(&thread_flags)));
            let run = catch_unwind(AssertUnwindSafe(|| {
                body(&thread_flags, &rt, userdata.get());
            }));
            if let Err(payload) = run {
                eprintln!(
                    "gosuv: a panic ended a {thread_name} subscription (a bug; please report it): {}",
                    panic_text(payload.as_ref())
                );
            }
            // Everything of this thread goes before the finalizer, which tells the caller
            // that the subscription is over.
            drop(rt);
            if let Some(finalize) = finalizer {
                // SAFETY: the caller gave this finalizer for this userdata, to be called once
                // after the last callback, on this thread.
                unsafe { finalize(userdata.get()) };
            }
        })
        .map_err(io_error)?;
    if let Err(e) = ready.wait() {
        let _ = handle.join();
        return Err(io_error(e));
    }
    let control = Arc::new(Control {
        flags,
        thread: Mutex::new(Some(handle)),
        ended,
    });
    sup.remember(control.clone());
    Ok(Box::into_raw(Box::new(gosuv_subscription { control })))
}

/// Calls `callback` with every state change of every program from now on, until the
/// subscription or the supervisor is freed.
///
/// `callback` runs on a gosuv thread (see `gosuv_event_callback`) with `userdata` as its
/// first argument. `finalizer`, if not NULL, is called once with `userdata` after the last
/// callback, on that same thread: at the latest before `gosuv_subscription_free()` or
/// `gosuv_supervisor_free()` returns (or, when `gosuv_subscription_free()` is called from
/// inside any callback, or `gosuv_supervisor_free()` from inside this subscription's own
/// callback, as soon as that callback returns). When the supervisor is freed, the events of
/// its shutdown are delivered first, even when it is freed from inside another callback.
///
/// On success `*out` is a new subscription the caller owns and frees with
/// `gosuv_subscription_free()`; on failure `*out` is NULL and neither `callback` nor
/// `finalizer` is ever called.
///
/// Errors: `GOSUV_RESULT_NULL_ARGUMENT` (`sup`, `callback`, `out`), `GOSUV_RESULT_IO` (the
/// thread cannot start).
///
/// # Safety
/// `sup` is NULL or a live supervisor; `callback` and `finalizer` are NULL or functions that
/// are safe to call with `userdata` from another thread until the finalizer has run;
/// `out` is NULL or valid for writes. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_on_event(
    sup: *const gosuv_supervisor,
    callback: gosuv_event_callback,
    userdata: *mut c_void,
    finalizer: gosuv_finalizer,
    out: *mut *mut gosuv_subscription,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises NULL or a live supervisor.
        let s = unsafe { arg_ref(sup, "sup") }?;
        let callback = callback.ok_or(Error::Null("callback"))?;
        let events = s.sup.as_async().subscribe();
        let sub = spawn(
            s,
            "gosuv-events",
            UserData(userdata),
            finalizer,
            move |flags, rt, userdata| deliver_events(flags, rt, events, callback, userdata),
        )?;
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(sub) };
        Ok(())
    })
}

fn deliver_events(
    flags: &Flags,
    rt: &Runtime,
    mut events: Events,
    callback: unsafe extern "C" fn(*mut c_void, *const gosuv_event),
    userdata: *mut c_void,
) {
    let mut missed = 0u64;
    pump(flags, rt, &mut events, |notice| match notice {
        EventNotice::Missed(n) => missed += n,
        EventNotice::Changed(ev) => {
            // Program names cannot hold NUL bytes: they are validated letters and digits.
            let program = CString::new(ev.program).unwrap_or_default();
            // A reason may quote a program's output, which may hold NUL bytes.
            let reason = ev
                .reason
                .map(|r| CString::new(r.replace('\0', "\u{fffd}")).unwrap_or_default());
            let event = gosuv_event {
                program: program.as_ptr(),
                from: ev.from.into(),
                to: ev.to.into(),
                pid: ev.pid.unwrap_or(0),
                has_exit_code: ev.exit_code.is_some(),
                exit_code: ev.exit_code.unwrap_or(0),
                exit_signal: ev.exit_signal.unwrap_or(0),
                at_ms: unix_ms(ev.at),
                missed_before: std::mem::take(&mut missed),
                reason: reason.as_ref().map_or(std::ptr::null(), |r| r.as_ptr()),
            };
            // SAFETY: the caller of gosuv_supervisor_on_event promised the callback is safe
            // to call with this userdata on this thread; `event` outlives the call.
            unsafe { callback(userdata, &event) };
        }
    });
}

/// Cuts a stream of output into lines.
#[derive(Debug, Default)]
struct LineSplitter {
    partial: Vec<u8>,
    skipped: u64,
}

impl LineSplitter {
    /// Adds output; `emit` gets each complete line (without `\n`) and the bytes skipped
    /// before it.
    fn push(&mut self, mut data: &[u8], emit: &mut impl FnMut(&[u8], u64)) {
        while let Some(i) = data.iter().position(|b| *b == b'\n') {
            let line = &data[..i];
            if self.partial.is_empty() {
                emit(line, std::mem::take(&mut self.skipped));
            } else {
                self.partial.extend_from_slice(line);
                emit(&self.partial, std::mem::take(&mut self.skipped));
                self.partial.clear();
            }
            data = &data[i + 1..];
        }
        self.partial.extend_from_slice(data);
        while self.partial.len() >= MAX_LINE {
            emit(&self.partial[..MAX_LINE], std::mem::take(&mut self.skipped));
            self.partial.drain(..MAX_LINE);
        }
    }

    /// Notes that `n` bytes were lost: a partial line is delivered as it is.
    fn missed(&mut self, n: u64, emit: &mut impl FnMut(&[u8], u64)) {
        self.flush(emit);
        self.skipped += n;
    }

    /// Delivers a partial line, if there is one.
    fn flush(&mut self, emit: &mut impl FnMut(&[u8], u64)) {
        if !self.partial.is_empty() {
            emit(&self.partial, std::mem::take(&mut self.skipped));
            self.partial.clear();
        }
    }
}

/// Calls `callback` with every line a program writes to `stream` (a `gosuv_stream` value)
/// from now on, across its restarts, until the subscription or the supervisor is freed or
/// the program is removed.
///
/// A line is delivered once its `\n` arrives; a last line without one is delivered when the
/// subscription ends, and a line longer than 64 KiB is delivered in pieces. If the callback
/// falls far behind, output is skipped and the next line says how much
/// (`skipped_bytes`). `callback`, `userdata` and `finalizer` follow the rules of
/// `gosuv_supervisor_on_event()`; the thread is named `gosuv-log`.
///
/// On success `*out` is a new subscription the caller owns and frees with
/// `gosuv_subscription_free()`; on failure `*out` is NULL and neither `callback` nor
/// `finalizer` is ever called.
///
/// Errors: `GOSUV_RESULT_NOT_FOUND`, `GOSUV_RESULT_NULL_ARGUMENT` (`sup`, `name`,
/// `callback`, `out`), `GOSUV_RESULT_INVALID_ARGUMENT` (unknown `stream`, `name` not UTF-8),
/// `GOSUV_RESULT_IO` (the thread cannot start).
///
/// # Safety
/// As `gosuv_supervisor_on_event()`; `name` is NULL or a NUL-terminated string (read during
/// the call only).
#[no_mangle]
pub unsafe extern "C" fn gosuv_supervisor_on_log(
    sup: *const gosuv_supervisor,
    name: *const c_char,
    stream: u32,
    callback: gosuv_log_callback,
    userdata: *mut c_void,
    finalizer: gosuv_finalizer,
    out: *mut *mut gosuv_subscription,
) -> gosuv_result {
    // SAFETY: the caller promises NULL or writable.
    unsafe { clear_out(out) };
    guard(|| {
        let out = out_ptr(out, "out")?;
        // SAFETY: the caller promises NULL or a live supervisor, and a NUL-terminated name.
        let (s, name) = unsafe { sup_and_name(sup, name) }?;
        let stream = stream_arg(stream)?;
        let callback = callback.ok_or(Error::Null("callback"))?;
        let follower = s.sup.as_async().follow(name, stream)?;
        let program = CString::new(name).unwrap_or_default();
        let sub = spawn(
            s,
            "gosuv-log",
            UserData(userdata),
            finalizer,
            move |flags, rt, userdata| {
                deliver_lines(flags, rt, follower, &program, stream, callback, userdata);
            },
        )?;
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(sub) };
        Ok(())
    })
}

fn deliver_lines(
    flags: &Flags,
    rt: &Runtime,
    mut follower: LogFollower,
    program: &CString,
    stream: Stream,
    callback: unsafe extern "C" fn(*mut c_void, *const gosuv_log_line),
    userdata: *mut c_void,
) {
    let mut text = Vec::new();
    let mut emit = |line: &[u8], skipped: u64| {
        text.clear();
        text.extend_from_slice(line);
        text.push(0);
        let line = gosuv_log_line {
            program: program.as_ptr(),
            stream: stream.into(),
            text: text.as_ptr().cast::<c_char>(),
            len: line.len(),
            skipped_bytes: skipped,
        };
        // SAFETY: the caller of gosuv_supervisor_on_log promised the callback is safe to
        // call with this userdata on this thread; `line` and its text outlive the call.
        unsafe { callback(userdata, &line) };
    };
    let mut lines = LineSplitter::default();
    pump(flags, rt, &mut follower, |ev| match ev {
        LogEvent::Data(data) => lines.push(&data, &mut emit),
        LogEvent::Missed(n) => lines.missed(n, &mut emit),
    });
    lines.flush(&mut emit);
}

/// Ends a subscription and frees it. When it returns, the callback is not running and will
/// not be called again, and the finalizer has run. Called from inside a callback (of this
/// subscription or of another), it does not wait, since two callbacks could then wait for
/// each other: the callback stops being called and the finalizer runs as soon as the
/// callback under way (if any) returns. While it waits for the
/// callback to return, that callback may call any gosuv function (subscribe again, say):
/// no gosuv lock is held meanwhile. Output or events not yet delivered are dropped. NULL is
/// ignored. Works the same before or after the supervisor was freed.
///
/// # Safety
/// `sub` is NULL or a subscription that was not freed yet; it is dangling afterwards.
/// Thread-safe, but a subscription is freed once.
#[no_mangle]
pub unsafe extern "C" fn gosuv_subscription_free(sub: *mut gosuv_subscription) {
    if sub.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: made by Box::into_raw in `spawn`; the caller gives it back once.
        let sub = unsafe { Box::from_raw(sub) };
        sub.control.end();
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<(String, u64)> {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        let mut emit = |l: &[u8], skipped| out.push((String::from_utf8_lossy(l).into(), skipped));
        for c in chunks {
            s.push(c, &mut emit);
        }
        s.flush(&mut emit);
        out
    }

    #[test]
    fn lines_are_joined_across_chunks() {
        let got = split(&[b"a\nb", b"c\n", b"\nd"]);
        let want = [("a", 0), ("bc", 0), ("", 0), ("d", 0)];
        assert_eq!(got, want.map(|(s, n)| (s.to_string(), n)));
    }

    #[test]
    fn long_lines_come_in_pieces() {
        let long = vec![b'x'; MAX_LINE + 10];
        let got = split(&[&long, b"\n"]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), MAX_LINE);
        assert_eq!(got[1].0.len(), 10);
    }

    #[test]
    fn skipped_bytes_go_with_the_next_line() {
        let mut out = Vec::new();
        let mut s = LineSplitter::default();
        let mut emit = |l: &[u8], skipped| out.push((l.to_vec(), skipped));
        s.push(b"par", &mut emit);
        s.missed(7, &mut emit);
        s.push(b"tial\nnext\n", &mut emit);
        assert_eq!(
            out,
            vec![
                (b"par".to_vec(), 0),
                (b"tial".to_vec(), 7),
                (b"next".to_vec(), 0)
            ]
        );
    }
}
