/*
 * gosuv.hpp: libgosuv for C++17, header-only, over the C API of gosuv.h.
 *
 * Link as for C (-lgosuv, see gosuv-ffi/README.md); nothing else to build. Every function of
 * gosuv.h has a counterpart here, except gosuv_debug_panic (a debugging aid for C).
 *
 * - gosuv::Supervisor owns a gosuv_supervisor. Destroying it stops every program, delivers
 *   the events of that shutdown to every subscriber, then ends the subscriptions it owns.
 * - gosuv::Subscription owns one callback registration: destroying it ends it at once (the
 *   callback is not running and will not run again when the destructor returns).
 * - Failures throw gosuv::Error: the gosuv_result code and gosuv's detailed message.
 * - Callbacks run on gosuv's threads. An exception a callback throws never reaches gosuv:
 *   it is caught and passed to the handler set with gosuv::set_callback_error_handler()
 *   (by default, a line on standard error).
 * - Timeouts are std::chrono durations of any type: rounded up to whole milliseconds,
 *   negative ones do not wait, and ones longer than gosuv accepts are clamped
 *   (see gosuv::timeout_ms()).
 * - Defaults are the C library's (gosuv_supervisor_options_default()).
 *
 * Handles are move-only; a moved-from handle is empty, and calls on an empty Supervisor
 * throw gosuv::Error with GOSUV_RESULT_NULL_ARGUMENT.
 */
#ifndef GOSUV_HPP
#define GOSUV_HPP

#include <gosuv.h>

#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace gosuv {

// The library's version, "MAJOR.MINOR.PATCH".
inline std::string_view version() noexcept { return gosuv_version(); }

// A program's state; the same numbers as gosuv_state.
enum class State : std::uint32_t {
    stopped = GOSUV_STATE_STOPPED,
    starting = GOSUV_STATE_STARTING,
    running = GOSUV_STATE_RUNNING,
    backoff = GOSUV_STATE_BACKOFF,
    stopping = GOSUV_STATE_STOPPING,
    exited = GOSUV_STATE_EXITED,
    fatal = GOSUV_STATE_FATAL,
    waiting = GOSUV_STATE_WAITING,
};

// Its lowercase name ("running"), or "unknown".
inline const char *to_string(State state) noexcept {
    return gosuv_state_name(static_cast<std::uint32_t>(state));
}

// Which output of a program; the same numbers as gosuv_stream.
enum class Stream : std::uint32_t {
    out = GOSUV_STREAM_STDOUT, // standard output (and standard error with redirect_stderr)
    err = GOSUV_STREAM_STDERR, // standard error
};

// "stdout" or "stderr".
inline const char *to_string(Stream stream) noexcept {
    return stream == Stream::err ? "stderr" : "stdout";
}

// The name of a result code ("GOSUV_RESULT_NOT_FOUND").
inline const char *result_name(gosuv_result code) noexcept { return gosuv_result_name(code); }

// The message for a code: the detailed one of the last call that failed on this thread if
// it failed with `code` and no call has succeeded on this thread since, else the general
// meaning of `code`.
inline std::string result_message(gosuv_result code) {
    std::size_t n = gosuv_error_message(code, nullptr, 0);
    std::string message(n, '\0');
    if (n > 0) {
        // std::string keeps room for its NUL: gosuv writes n bytes and the NUL.
        gosuv_error_message(code, message.data(), n + 1);
    }
    return message;
}

// A failed call: its code and gosuv's message (what went wrong, and what to do).
class Error : public std::runtime_error {
public:
    Error(gosuv_result code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    gosuv_result code() const noexcept { return code_; }
    // "GOSUV_RESULT_NOT_FOUND".
    const char *code_name() const noexcept { return gosuv_result_name(code_); }

private:
    gosuv_result code_;
};

namespace detail {

// Throws the detailed message of a failed call. Must run on the calling thread right after
// the call, before any other gosuv call: gosuv keeps the message per thread.
inline void check(gosuv_result r) {
    if (r != GOSUV_RESULT_OK) {
        throw Error(r, result_message(r));
    }
}

[[noreturn]] inline void invalid(const std::string &message) {
    throw Error(GOSUV_RESULT_INVALID_ARGUMENT, message);
}

// A NUL-terminated copy of `s`, for the C API. A NUL inside would cut the string short in
// C, so it is refused.
inline std::string c_string(std::string_view s, const char *what) {
    if (s.find('\0') != std::string_view::npos) {
        invalid(std::string(what) + " holds a NUL byte: remove it");
    }
    return std::string(s);
}

// A string gosuv allocated, freed on scope exit.
class OwnedString {
public:
    OwnedString() = default;
    OwnedString(const OwnedString &) = delete;
    OwnedString &operator=(const OwnedString &) = delete;
    ~OwnedString() { gosuv_string_free(p_); }
    char **out() noexcept { return &p_; }
    std::string str() const { return p_ != nullptr ? std::string(p_) : std::string(); }

private:
    char *p_ = nullptr;
};

} // namespace detail

// The longest wait gosuv takes, in milliseconds (one day).
inline constexpr std::uint32_t max_timeout_ms = 86400000;

// Wait as long as gosuv allows (see timeout_ms()).
inline constexpr std::chrono::milliseconds forever = std::chrono::milliseconds::max();

// A duration as gosuv's `timeout_ms`: rounded up to a whole millisecond (1us waits 1 ms,
// never 0), 0 for zero or negative durations (do not wait: only look), and clamped to
// max_timeout_ms for longer ones (hours::max() included; no overflow). A floating-point
// duration that is NaN throws gosuv::Error (GOSUV_RESULT_INVALID_ARGUMENT).
template <class Rep, class Period>
std::uint32_t timeout_ms(std::chrono::duration<Rep, Period> d) {
    using Millis = std::chrono::duration<long double, std::milli>;
    if constexpr (std::is_floating_point_v<Rep>) {
        const Millis ms = d;
        if (std::isnan(ms.count())) {
            detail::invalid("a timeout is NaN: give a number of (milli)seconds");
        }
        if (!(ms.count() > 0)) {
            return 0;
        }
        if (ms.count() >= static_cast<long double>(max_timeout_ms)) {
            return max_timeout_ms;
        }
        // Below max_timeout_ms, an integer: its ceiling is at most max_timeout_ms.
        return static_cast<std::uint32_t>(std::ceil(ms.count()));
    } else {
        if (d <= std::chrono::duration<Rep, Period>::zero()) {
            return 0;
        }
        // Compared as long double first, so that a huge count is never multiplied out in
        // an integer type; below a day, the exact integer ceiling cannot overflow.
        if (Millis(d).count() >= static_cast<long double>(max_timeout_ms)) {
            return max_timeout_ms;
        }
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
        return ms >= static_cast<decltype(ms)>(max_timeout_ms)
                   ? max_timeout_ms
                   : static_cast<std::uint32_t>(ms);
    }
}

// How a supervisor is set up. A default-constructed Options holds the C library's defaults
// (gosuv_supervisor_options_default()); change the fields you need.
struct Options {
    // The directory relative program directories resolve against, and the programs'
    // default working directory. Empty: the current directory.
    std::optional<std::string> base_dir;
    // Where <name>.stdout.log and <name>.stderr.log go. Empty: <base_dir>/logs.
    std::optional<std::string> log_dir;
    // Make this process a child subreaper (see gosuv.h).
    bool subreaper;
    // Start a guardian process that stops every program when this process dies.
    bool kill_on_parent_death;
    // Raise the open-files soft limit to at least this; 0: to the hard limit.
    std::uint64_t min_fds;

    Options() : Options(gosuv_supervisor_options_default()) {}
    explicit Options(const gosuv_supervisor_options &c)
        : base_dir(c.base_dir != nullptr ? std::optional<std::string>(c.base_dir)
                                         : std::nullopt),
          log_dir(c.log_dir != nullptr ? std::optional<std::string>(c.log_dir) : std::nullopt),
          subreaper(c.subreaper), kill_on_parent_death(c.kill_on_parent_death),
          min_fds(c.min_fds) {}

    // The C struct, starting from the C defaults so that a field this header does not know
    // keeps its default. Its strings point into this Options: use it while this lives.
    gosuv_supervisor_options c_options() const {
        gosuv_supervisor_options c = gosuv_supervisor_options_default();
        c.base_dir = base_dir ? base_dir->c_str() : nullptr;
        c.log_dir = log_dir ? log_dir->c_str() : nullptr;
        c.subreaper = subreaper;
        c.kill_on_parent_death = kill_on_parent_death;
        c.min_fds = min_fds;
        return c;
    }

private:
    void check_strings() const {
        if (base_dir) {
            detail::c_string(*base_dir, "options.base_dir");
        }
        if (log_dir) {
            detail::c_string(*log_dir, "options.log_dir");
        }
    }
    friend class Supervisor;
};

namespace detail {
inline std::optional<std::chrono::system_clock::time_point> time_from_ms(std::int64_t ms) {
    if (ms == 0) {
        return std::nullopt;
    }
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::milliseconds(ms)));
}
} // namespace detail

// One program's status.
struct ProgramStatus {
    State state = State::stopped;
    // The leader's pid while a process exists, else 0.
    std::uint32_t pid = 0;
    // The exit code of the last process that exited normally, if known.
    std::optional<std::int32_t> exit_code;
    // The signal that killed the last process, or 0.
    std::int32_t exit_signal = 0;
    // Automatic restarts and retries since the program was added.
    std::uint64_t restarts = 0;
    // How long the current process has been up (zero without one).
    std::chrono::duration<double> uptime{0};
    // When the current process started, if there is one.
    std::optional<std::chrono::system_clock::time_point> started_at;
    // Failed writes to its log files.
    std::uint64_t log_errors = 0;
    // Whether it has a last error (Supervisor::last_error() reads it).
    bool has_last_error = false;

    ProgramStatus() = default;
    explicit ProgramStatus(const gosuv_program_status &c)
        : state(static_cast<State>(c.state)), pid(c.pid),
          exit_code(c.has_exit_code ? std::optional<std::int32_t>(c.exit_code) : std::nullopt),
          exit_signal(c.exit_signal), restarts(c.restarts), uptime(c.uptime_secs),
          started_at(detail::time_from_ms(c.started_at_ms)), log_errors(c.log_errors),
          has_last_error(c.has_last_error) {}
};

// CPU and memory of all of a program's processes.
struct ProcessStats {
    std::uint32_t processes = 0;
    // Percent of one core since the previous sample (may pass 100 on several cores).
    double cpu_percent = 0;
    std::uint64_t rss_bytes = 0;
    // User plus system CPU time of the live processes.
    double cpu_seconds = 0;

    ProcessStats() = default;
    explicit ProcessStats(const gosuv_process_stats &c)
        : processes(c.processes), cpu_percent(c.cpu_percent), rss_bytes(c.rss_bytes),
          cpu_seconds(c.cpu_seconds) {}
};

// One state change of a program, copied out of gosuv's event.
struct Event {
    std::string program;
    State from = State::stopped;
    State to = State::stopped;
    // The process concerned, or 0.
    std::uint32_t pid = 0;
    // The exit code, on a change caused by a normal exit whose status is known.
    std::optional<std::int32_t> exit_code;
    // The signal that killed the process, on a change caused by one; else 0.
    std::int32_t exit_signal = 0;
    std::chrono::system_clock::time_point at;
    // Events dropped just before this one because the callback fell behind.
    std::uint64_t missed_before = 0;
    // Why, where gosuv knows more than the states say (see gosuv_event.reason).
    std::optional<std::string> reason;

    Event() = default;
    explicit Event(const gosuv_event &c)
        : program(c.program != nullptr ? c.program : ""), from(static_cast<State>(c.from)),
          to(static_cast<State>(c.to)), pid(c.pid),
          exit_code(c.has_exit_code ? std::optional<std::int32_t>(c.exit_code) : std::nullopt),
          exit_signal(c.exit_signal),
          at(detail::time_from_ms(c.at_ms).value_or(std::chrono::system_clock::time_point())),
          missed_before(c.missed_before),
          reason(c.reason != nullptr ? std::optional<std::string>(c.reason) : std::nullopt) {}
};

// One line of a program's output, without its newline (it may hold NUL bytes).
struct LogLine {
    std::string program;
    Stream stream = Stream::out;
    std::string text;
    // Bytes of output lost just before this line because the callback fell behind.
    std::uint64_t skipped_bytes = 0;

    LogLine() = default;
    explicit LogLine(const gosuv_log_line &c)
        : program(c.program != nullptr ? c.program : ""), stream(static_cast<Stream>(c.stream)),
          text(c.text != nullptr ? std::string(c.text, c.len) : std::string()),
          skipped_bytes(c.skipped_bytes) {}
};

// Told of an exception that a callback threw: the exception, and which callback threw it
// ("event callback", "log callback of 'web' (stdout)"). Runs on the callback's thread.
using CallbackErrorHandler = std::function<void(std::exception_ptr, std::string_view)>;

namespace detail {

inline std::mutex callback_error_mutex;
inline std::shared_ptr<const CallbackErrorHandler> callback_error_handler;

// The default handler: one line on standard error. Allocates nothing, throws nothing.
inline void write_callback_error(std::exception_ptr error, std::string_view where) noexcept {
    const char *what = "an exception that is not a std::exception";
    try {
        if (error) {
            std::rethrow_exception(error);
        }
    } catch (const std::exception &e) {
        what = e.what();
    } catch (...) {
    }
    flockfile(stderr);
    std::fputs("gosuv: caught an exception thrown by the ", stderr);
    std::fwrite(where.data(), 1, where.size(), stderr);
    std::fputs(": ", stderr);
    std::fputs(what, stderr);
    std::fputc('\n', stderr);
    std::fflush(stderr);
    funlockfile(stderr);
}

// Reports a callback's exception to the handler; nothing escapes.
inline void report_callback_error(std::exception_ptr error, std::string_view where) noexcept {
    try {
        std::shared_ptr<const CallbackErrorHandler> handler;
        {
            std::lock_guard<std::mutex> lock(callback_error_mutex);
            handler = callback_error_handler;
        }
        if (handler && *handler) {
            (*handler)(error, where);
            return;
        }
    } catch (...) {
        write_callback_error(std::current_exception(), "callback error handler");
    }
    write_callback_error(error, where);
}

template <class F> struct EventHolder {
    F fn;
    static void call(void *userdata, const gosuv_event *event) noexcept {
        try {
            static_cast<EventHolder *>(userdata)->fn(Event(*event));
        } catch (...) {
            report_callback_error(std::current_exception(), "event callback");
        }
    }
    static void finalize(void *userdata) noexcept { delete static_cast<EventHolder *>(userdata); }
};

template <class F> struct LogHolder {
    F fn;
    std::string where;
    static void call(void *userdata, const gosuv_log_line *line) noexcept {
        auto *self = static_cast<LogHolder *>(userdata);
        try {
            self->fn(LogLine(*line));
        } catch (...) {
            report_callback_error(std::current_exception(), self->where);
        }
    }
    static void finalize(void *userdata) noexcept { delete static_cast<LogHolder *>(userdata); }
};

} // namespace detail

// Sets who is told of an exception thrown by a callback (event or log), for every
// supervisor of the process, and returns the previous handler. An empty handler restores
// the default, which writes one line to standard error. The handler runs on the thread of
// the callback that threw; an exception it throws itself is written to standard error.
inline CallbackErrorHandler set_callback_error_handler(CallbackErrorHandler handler) {
    auto next = handler ? std::make_shared<const CallbackErrorHandler>(std::move(handler))
                        : nullptr;
    std::lock_guard<std::mutex> lock(detail::callback_error_mutex);
    std::shared_ptr<const CallbackErrorHandler> previous =
        std::exchange(detail::callback_error_handler, std::move(next));
    return previous ? *previous : CallbackErrorHandler();
}

// A callback registration that ends when this is destroyed or reset(): then the callback is
// not running (unless the destruction happens inside a gosuv callback, see
// gosuv_subscription_free) and is never called again. Move-only.
class Subscription {
public:
    Subscription() noexcept = default;
    // Takes over a subscription made through the C API.
    explicit Subscription(gosuv_subscription *sub) noexcept : p_(sub) {}
    Subscription(Subscription &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Subscription &operator=(Subscription &&o) noexcept {
        if (this != &o) {
            reset();
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Subscription(const Subscription &) = delete;
    Subscription &operator=(const Subscription &) = delete;
    ~Subscription() { reset(); }

    // Ends the subscription now (nothing if empty).
    void reset() noexcept { gosuv_subscription_free(std::exchange(p_, nullptr)); }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    gosuv_subscription *get() const noexcept { return p_; }
    // Gives up ownership: the caller frees it with gosuv_subscription_free().
    gosuv_subscription *release() noexcept { return std::exchange(p_, nullptr); }

private:
    gosuv_subscription *p_ = nullptr;
};

// A supervisor: its programs, their processes, logs and events. Move-only. Its member
// functions may be called from any thread at once, callbacks included (not the destructor
// nor the move operations).
class Supervisor {
public:
    // A supervisor with no programs.
    explicit Supervisor(const Options &options = Options()) : s_(std::make_unique<Shared>()) {
        options.check_strings();
        const gosuv_supervisor_options c = options.c_options();
        detail::check(gosuv_supervisor_new(&c, &s_->sup));
    }

    // A supervisor for the programs of a programs-file text (a YAML list); those with
    // start_auto are started, without waiting.
    static Supervisor from_yaml(std::string_view programs_yaml,
                                const Options &options = Options()) {
        options.check_strings();
        const std::string yaml = detail::c_string(programs_yaml, "the programs text");
        const gosuv_supervisor_options c = options.c_options();
        gosuv_supervisor *sup = nullptr;
        detail::check(gosuv_supervisor_from_yaml(yaml.c_str(), &c, &sup));
        return Supervisor(sup);
    }

    // A supervisor from a config.yml and the programs file it names.
    static Supervisor from_config_file(std::string_view config_path) {
        const std::string path = detail::c_string(config_path, "the config path");
        gosuv_supervisor *sup = nullptr;
        detail::check(gosuv_supervisor_from_config_file(path.c_str(), &sup));
        return Supervisor(sup);
    }

    // Takes over a supervisor made through the C API.
    static Supervisor adopt(gosuv_supervisor *sup) noexcept { return Supervisor(sup); }

    Supervisor(Supervisor &&) noexcept = default;
    Supervisor &operator=(Supervisor &&o) noexcept {
        if (this != &o) {
            close();
            s_ = std::move(o.s_);
        }
        return *this;
    }
    Supervisor(const Supervisor &) = delete;
    Supervisor &operator=(const Supervisor &) = delete;

    // Stops every program and waits for their processes, delivers the events of that
    // shutdown to every subscriber (those of on_event()/on_log() and Subscriptions still
    // alive), then ends the subscriptions this supervisor owns.
    ~Supervisor() { close(); }

    explicit operator bool() const noexcept { return s_ != nullptr; }
    // The C handle (NULL when empty), for the C API.
    gosuv_supervisor *get() const noexcept { return s_ ? s_->sup : nullptr; }

    // Stops every program and removes them; afterwards changes fail with
    // GOSUV_RESULT_SHUTTING_DOWN. Subscribers see the shutdown's events.
    void shutdown() const { detail::check(gosuv_supervisor_shutdown(get())); }

    // Adds one program given as YAML or JSON (the keys of one programs.yml entry).
    void add(std::string_view program_yaml) const {
        const std::string yaml = detail::c_string(program_yaml, "the program text");
        detail::check(gosuv_supervisor_add(get(), yaml.c_str()));
    }

    // Replaces a program's config; returns whether it was restarted.
    bool update(std::string_view program_yaml) const {
        const std::string yaml = detail::c_string(program_yaml, "the program text");
        bool restarted = false;
        detail::check(gosuv_supervisor_update(get(), yaml.c_str(), &restarted));
        return restarted;
    }

    // Stops a program (waiting for its processes) and removes it.
    void remove(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        detail::check(gosuv_supervisor_remove(get(), n.c_str()));
    }

    // Starts a program; with a positive timeout waits until it is running (see
    // gosuv_supervisor_start), with zero returns once the start has begun.
    template <class Rep, class Period>
    ProgramStatus start(std::string_view name, std::chrono::duration<Rep, Period> timeout) const {
        return wait_call(gosuv_supervisor_start, name, timeout);
    }
    // Stops a program; with a positive timeout waits until none of its processes is left.
    template <class Rep, class Period>
    ProgramStatus stop(std::string_view name, std::chrono::duration<Rep, Period> timeout) const {
        return wait_call(gosuv_supervisor_stop, name, timeout);
    }
    // Stops a program if it has a process, then starts it; waits like start().
    template <class Rep, class Period>
    ProgramStatus restart(std::string_view name,
                          std::chrono::duration<Rep, Period> timeout) const {
        return wait_call(gosuv_supervisor_restart, name, timeout);
    }
    // Waits until a program is running (ready), without starting it; zero only looks.
    // Throws GOSUV_RESULT_START_FAILED when it is or goes fatal, GOSUV_RESULT_TIMEOUT.
    template <class Rep, class Period>
    ProgramStatus wait(std::string_view name, std::chrono::duration<Rep, Period> timeout) const {
        return wait_call(gosuv_supervisor_wait, name, timeout);
    }
    // Waits until a program is in `state`; zero only looks.
    template <class Rep, class Period>
    ProgramStatus wait_for(std::string_view name, State state,
                           std::chrono::duration<Rep, Period> timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        const std::uint32_t ms = timeout_ms(timeout);
        gosuv_program_status st{};
        detail::check(gosuv_supervisor_wait_for(get(), n.c_str(),
                                                static_cast<std::uint32_t>(state), ms, &st));
        return ProgramStatus(st);
    }

    // One program's status. Does not block.
    ProgramStatus status(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        gosuv_program_status st{};
        detail::check(gosuv_supervisor_status(get(), n.c_str(), &st));
        return ProgramStatus(st);
    }

    // Why a program's last start failed; empty when it has no last error.
    std::string last_error(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        std::string text(256, '\0');
        for (;;) {
            std::size_t len = 0;
            detail::check(gosuv_supervisor_program_error(get(), n.c_str(), text.data(),
                                                         text.size() + 1, &len));
            if (len <= text.size()) {
                text.resize(len);
                return text;
            }
            // The error may have changed in between: ask again with room for this one.
            text.assign(len, '\0');
        }
    }

    // Every program's status, as gosuv_supervisor_status_json's JSON array.
    std::string status_json() const {
        detail::OwnedString s;
        detail::check(gosuv_supervisor_status_json(get(), s.out()));
        return s.str();
    }

    // One program's config as JSON, defaults filled in.
    std::string config_json(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        detail::OwnedString s;
        detail::check(gosuv_supervisor_config_json(get(), n.c_str(), s.out()));
        return s.str();
    }

    // Makes the programs equal to a programs-file text; returns the report as JSON
    // ({"added":[...],"changed":[...],"removed":[...]}).
    std::string reload(std::string_view programs_yaml) const {
        const std::string yaml = detail::c_string(programs_yaml, "the programs text");
        detail::OwnedString s;
        detail::check(gosuv_supervisor_reload(get(), yaml.c_str(), s.out()));
        return s.str();
    }

    // Re-reads the config file this supervisor was made from, and reloads; the report as
    // reload()'s.
    std::string reload_file() const {
        detail::OwnedString s;
        detail::check(gosuv_supervisor_reload_file(get(), s.out()));
        return s.str();
    }

    // The end of a program's output kept in memory: the last `max_lines` lines (0: all of
    // the last 64 KiB), newlines included. Does not block.
    std::string tail(std::string_view name, Stream stream, std::size_t max_lines = 0) const {
        const std::string n = detail::c_string(name, "the program name");
        std::string buf(64 * 1024, '\0');
        for (;;) {
            std::size_t len = 0;
            detail::check(gosuv_supervisor_tail(get(), n.c_str(),
                                                static_cast<std::uint32_t>(stream), max_lines,
                                                buf.data(), buf.size() + 1, &len));
            if (len < buf.size()) {
                buf.resize(len);
                return buf;
            }
            // It filled the buffer, so it may have been cut: try with twice the room.
            buf.assign(buf.size() * 2, '\0');
        }
    }

    // CPU and memory of all of a program's processes.
    ProcessStats stats(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        gosuv_process_stats st{};
        detail::check(gosuv_supervisor_stats(get(), n.c_str(), &st));
        return ProcessStats(st);
    }

    // Every program's stats, as gosuv_supervisor_stats_json's JSON object.
    std::string stats_json() const {
        detail::OwnedString s;
        detail::check(gosuv_supervisor_stats_json(get(), s.out()));
        return s.str();
    }

    // Calls `fn(const gosuv::Event &)` with every state change from now on, on a gosuv
    // thread, until the returned Subscription ends. Destroying the Subscription ends it at
    // once: when it is declared after the supervisor, it ends before the supervisor's own
    // shutdown, whose events it then does not see; to see them, call shutdown() first, or
    // use on_event().
    template <class F> [[nodiscard]] Subscription subscribe(F &&fn) const {
        return Subscription(subscribe_events(std::forward<F>(fn)));
    }

    // Calls `fn(const gosuv::Event &)` with every state change from now on, on a gosuv
    // thread, for as long as this supervisor lives: it sees the events of the shutdown
    // that destroying the supervisor makes. What `fn` refers to must outlive the
    // supervisor (declare it before the supervisor).
    template <class F> void on_event(F &&fn) const {
        own(subscribe_events(std::forward<F>(fn)));
    }

    // Calls `fn(const gosuv::LogLine &)` with every line a program writes to `stream` from
    // now on, across its restarts, until the returned Subscription ends or the program is
    // removed. Ending as subscribe()'s.
    template <class F>
    [[nodiscard]] Subscription follow(std::string_view name, Stream stream, F &&fn) const {
        return Subscription(subscribe_log(name, stream, std::forward<F>(fn)));
    }

    // As follow(), for as long as this supervisor lives (or until the program is
    // removed): it sees the last lines written during the supervisor's shutdown. What `fn`
    // refers to must outlive the supervisor.
    template <class F> void on_log(std::string_view name, Stream stream, F &&fn) const {
        own(subscribe_log(name, stream, std::forward<F>(fn)));
    }

private:
    struct Shared {
        gosuv_supervisor *sup = nullptr;
        std::mutex lock;
        // Subscriptions of on_event()/on_log(), ended after the supervisor is freed.
        std::vector<gosuv_subscription *> owned;
    };

    explicit Supervisor(gosuv_supervisor *sup) : s_(std::make_unique<Shared>()) {
        s_->sup = sup;
    }

    void close() noexcept {
        if (!s_) {
            return;
        }
        // Not under the lock: callbacks run during the shutdown and may subscribe.
        gosuv_supervisor_free(s_->sup);
        s_->sup = nullptr;
        std::vector<gosuv_subscription *> owned;
        {
            std::lock_guard<std::mutex> g(s_->lock);
            owned.swap(s_->owned);
        }
        for (gosuv_subscription *sub : owned) {
            gosuv_subscription_free(sub);
        }
        s_.reset();
    }

    void own(gosuv_subscription *sub) const {
        Subscription guard(sub); // ends it if the vector cannot grow
        if (!s_) {
            return;
        }
        std::lock_guard<std::mutex> g(s_->lock);
        s_->owned.push_back(sub);
        guard.release();
    }

    template <class F> gosuv_subscription *subscribe_events(F &&fn) const {
        using Holder = detail::EventHolder<std::decay_t<F>>;
        static_assert(std::is_invocable_v<std::decay_t<F> &, const Event &>,
                      "an event callback is called as fn(const gosuv::Event &)");
        auto holder = std::make_unique<Holder>(Holder{std::forward<F>(fn)});
        gosuv_subscription *sub = nullptr;
        detail::check(gosuv_supervisor_on_event(get(), &Holder::call, holder.get(),
                                                &Holder::finalize, &sub));
        holder.release(); // the finalizer deletes it
        return sub;
    }

    template <class F>
    gosuv_subscription *subscribe_log(std::string_view name, Stream stream, F &&fn) const {
        using Holder = detail::LogHolder<std::decay_t<F>>;
        static_assert(std::is_invocable_v<std::decay_t<F> &, const LogLine &>,
                      "a log callback is called as fn(const gosuv::LogLine &)");
        const std::string n = detail::c_string(name, "the program name");
        auto holder = std::make_unique<Holder>(Holder{
            std::forward<F>(fn),
            "log callback of '" + n + "' (" + to_string(stream) + ")",
        });
        gosuv_subscription *sub = nullptr;
        detail::check(gosuv_supervisor_on_log(get(), n.c_str(),
                                              static_cast<std::uint32_t>(stream), &Holder::call,
                                              holder.get(), &Holder::finalize, &sub));
        holder.release();
        return sub;
    }

    template <class Fn, class Rep, class Period>
    ProgramStatus wait_call(Fn fn, std::string_view name,
                            std::chrono::duration<Rep, Period> timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        const std::uint32_t ms = timeout_ms(timeout);
        gosuv_program_status st{};
        detail::check(fn(get(), n.c_str(), ms, &st));
        return ProgramStatus(st);
    }

    std::unique_ptr<Shared> s_;
};

} // namespace gosuv

#endif // GOSUV_HPP
