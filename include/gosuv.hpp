/*
 * gosuv.hpp: libgosuv for C++17, header-only, over the C API of gosuv.h.
 *
 * Link as for C (-lgosuv, see gosuv-ffi/README.md); nothing else to build. Every function of
 * gosuv.h has a counterpart here, except gosuv_debug_panic (a debugging aid for C).
 *
 * - gosuv::Supervisor owns a gosuv_supervisor. Destroying it stops every program, delivers
 *   the events of that shutdown to every subscriber, then ends the subscriptions it owns.
 *   gosuv::SupervisorRef (sup.ref()) is a non-owning view that survives moves of the
 *   Supervisor: what callbacks that use their supervisor capture.
 * - gosuv::Subscription owns one callback registration: destroying it ends it at once (the
 *   callback is not running and will not run again when the destructor returns, unless
 *   it is destroyed inside a gosuv callback or finalizer, see gosuv_subscription_free).
 * - gosuv::Program describes a program without YAML (a gosuv_program builder).
 * - Failures throw gosuv::Error: the gosuv_result code and gosuv's detailed message.
 * - Callbacks run on gosuv's threads. An exception a callback throws never reaches gosuv:
 *   it is caught and passed to the handler set with gosuv::set_callback_error_handler()
 *   (by default, a line on standard error).
 * - Durations are std::chrono durations of any type (gosuv::Duration): rounded up to whole
 *   milliseconds, never overflowing; a wait of zero or less does not wait; start, restart,
 *   wait and wait_for wait longer than gosuv's one day in several calls; gosuv::forever
 *   and hours::max() wait for as long as it takes (see gosuv::timeout_ms()).
 * - Defaults are the C library's (gosuv_supervisor_options_init()).
 *
 * Handles are move-only with noexcept moves; a moved-from handle is empty, and calls on an
 * empty one throw gosuv::Error with GOSUV_RESULT_NULL_ARGUMENT.
 */
#ifndef GOSUV_HPP
#define GOSUV_HPP

#include <gosuv.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <limits>
#include <initializer_list>
#include <ratio>
#include <memory>
#include <mutex>
#include <new>
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

// Any std::chrono duration, as gosuv takes it: whole milliseconds, rounded up (1us is
// 1 ms, never 0), computed without overflow for any representation and period
// (hours::max() and counts wider than 64 bits included: such a duration saturates instead
// of wrapping). A floating-point count is taken as the whole milliseconds it is meant to
// be when it is within its type's precision (or half a nanosecond) of them: 0.1 s is
// 100 ms and 0.3f s 300 ms, not 101 ms from their inexact binary values. Converts
// implicitly from every std::chrono::duration; each call says what it does with zero,
// negative and huge durations.
class Duration {
public:
    // Zero.
    constexpr Duration() noexcept = default;

    template <class Rep, class Period>
    Duration(std::chrono::duration<Rep, Period> d) noexcept { // NOLINT: implicit by design
        // The factor from a count of Period to milliseconds, as a reduced fraction.
        using ToMs = std::ratio_divide<Period, std::milli>;
        constexpr std::uintmax_t num = static_cast<std::uintmax_t>(ToMs::num);
        constexpr std::uintmax_t den = static_cast<std::uintmax_t>(ToMs::den);
        if constexpr (std::is_floating_point_v<Rep>) {
            const long double ms = static_cast<long double>(d.count()) *
                                   static_cast<long double>(num) / static_cast<long double>(den);
            if (std::isnan(ms)) {
                kind_ = Kind::not_a_number;
            } else if (ms < 0) {
                kind_ = Kind::negative;
            } else if (ms >= static_cast<long double>(saturated)) {
                ms_ = saturated;
            } else {
                // The whole milliseconds within the count's precision (relative, of Rep) or
                // half a nanosecond of it are meant; anything further rounds up.
                const long double nearest = std::round(ms);
                const long double precision =
                    ms * 2 * static_cast<long double>(std::numeric_limits<Rep>::epsilon());
                const long double tolerance = precision > 0.5e-6L ? precision : 0.5e-6L;
                if (std::fabs(ms - nearest) <= tolerance && (nearest > 0 || ms == 0)) {
                    ms_ = static_cast<std::uint64_t>(nearest);
                } else {
                    ms_ = static_cast<std::uint64_t>(std::ceil(ms));
                }
            }
        } else {
            if constexpr (sizeof(Rep) > sizeof(std::uintmax_t)) {
                // A count wider than uintmax_t (__int128): out of its range is negative or
                // saturated, never truncated.
                if (d.count() < static_cast<Rep>(0)) {
                    kind_ = Kind::negative;
                    return;
                }
                if (d.count() > static_cast<Rep>(~static_cast<std::uintmax_t>(0))) {
                    ms_ = saturated;
                    return;
                }
            }
            if constexpr (std::is_signed_v<Rep>) {
                if (d.count() < 0) {
                    kind_ = Kind::negative;
                    return;
                }
            }
            // ceil(count * num / den), exactly, in unsigned integers: count = q * den + r.
            const std::uintmax_t count = static_cast<std::uintmax_t>(d.count());
            const std::uintmax_t q = count / den;
            const std::uintmax_t r = count % den;
            const std::uintmax_t max = saturated;
            if (q > max / num) {
                ms_ = saturated;
                return;
            }
            std::uintmax_t ms = q * num;
            std::uintmax_t rest = 0; // ceil(r * num / den), which is at most num
            if (r != 0) {
                if (num <= max / r) {
                    rest = (r * num) / den + ((r * num) % den != 0 ? 1 : 0);
                } else {
                    rest = static_cast<std::uintmax_t>(
                        std::ceil(static_cast<long double>(r) * static_cast<long double>(num) /
                                  static_cast<long double>(den)));
                }
            }
            ms_ = rest > max - ms ? saturated : static_cast<std::uint64_t>(ms + rest);
        }
    }

    // Whether it is below zero (a negative count, or minus infinity).
    constexpr bool negative() const noexcept { return kind_ == Kind::negative; }
    // Whether it is a floating-point NaN.
    constexpr bool is_nan() const noexcept { return kind_ == Kind::not_a_number; }
    // Its milliseconds, rounded up: 0 when negative or NaN, UINT64_MAX when too long to
    // count.
    constexpr std::uint64_t milliseconds() const noexcept { return ms_; }

private:
    static constexpr std::uint64_t saturated = ~static_cast<std::uint64_t>(0);
    enum class Kind { number, negative, not_a_number };
    std::uint64_t ms_ = 0;
    Kind kind_ = Kind::number;
};

// The longest wait gosuv counts, in milliseconds (one day); longer waits are
// GOSUV_WAIT_FOREVER.
inline constexpr std::uint64_t max_timeout_ms = 86400000;

// Wait for as long as it takes (GOSUV_WAIT_FOREVER).
inline constexpr std::chrono::milliseconds forever = std::chrono::milliseconds::max();

// A wait as gosuv's `timeout_ms`: rounded up to a whole millisecond; 0 (do not wait, only
// look) for zero or negative durations; GOSUV_WAIT_FOREVER for any duration longer than
// gosuv counts (max_timeout_ms, one day), gosuv::forever and hours::max() included, so a
// long wait is never cut short. A NaN throws gosuv::Error (GOSUV_RESULT_INVALID_ARGUMENT).
inline std::uint64_t timeout_ms(Duration d) {
    if (d.is_nan()) {
        detail::invalid("a timeout is NaN: give a duration");
    }
    if (d.milliseconds() > max_timeout_ms) {
        return GOSUV_WAIT_FOREVER;
    }
    return d.milliseconds();
}

namespace detail {
// A setting's duration (a probe's interval or timeout, a limit's interval) in milliseconds:
// zero means the setting's default in gosuv; negative or NaN is refused here, too long is
// refused by gosuv with the setting's name.
inline std::uint64_t setting_ms(Duration d, const char *what) {
    if (d.negative() || d.is_nan()) {
        invalid(std::string(what) + " is negative or NaN: give a duration of 0 (the default) "
                                    "or more");
    }
    // GOSUV_WAIT_FOREVER is not a setting: one millisecond less is still over any limit.
    return d.milliseconds() == GOSUV_WAIT_FOREVER ? GOSUV_WAIT_FOREVER - 1 : d.milliseconds();
}

// A duration in whole seconds, rounded up (start_seconds, stop_timeout).
inline std::uint64_t setting_seconds(Duration d, const char *what) {
    const std::uint64_t ms = setting_ms(d, what);
    return ms / 1000 + (ms % 1000 != 0 ? 1 : 0);
}
} // namespace detail

namespace detail {
// The C library's default options, from gosuv_supervisor_options_init() (which writes
// exactly sizeof this header's struct, however new the library is).
inline gosuv_supervisor_options default_options() {
    gosuv_supervisor_options c{};
    check(gosuv_supervisor_options_init(&c, sizeof c));
    return c;
}
} // namespace detail

// How a supervisor is set up. A default-constructed Options holds the C library's defaults
// (gosuv_supervisor_options_init()); change the fields you need.
struct Options {
    // The directory relative program directories resolve against, and the programs'
    // default working directory. nullopt: the current directory.
    std::optional<std::string> base_dir;
    // Where <name>.stdout.log and <name>.stderr.log go. nullopt: <base_dir>/logs.
    std::optional<std::string> log_dir;
    // Make this process a child subreaper (see gosuv.h).
    bool subreaper;
    // Start a guardian process that stops every program when this process dies.
    bool kill_on_parent_death;
    // Raise the open-files soft limit to at least this; 0: to the hard limit.
    std::uint64_t min_fds;

    Options() : Options(detail::default_options()) {}
    explicit Options(const gosuv_supervisor_options &c)
        : base_dir(c.base_dir != nullptr ? std::optional<std::string>(c.base_dir)
                                         : std::nullopt),
          log_dir(c.log_dir != nullptr ? std::optional<std::string>(c.log_dir) : std::nullopt),
          subreaper(c.subreaper), kill_on_parent_death(c.kill_on_parent_death),
          min_fds(c.min_fds) {}

    // The C struct, starting from the C defaults so that a field this header does not know
    // keeps its default. Its strings point into this Options: use it while this lives.
    gosuv_supervisor_options c_options() const {
        gosuv_supervisor_options c = detail::default_options();
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
// A time from gosuv in milliseconds since the epoch; beyond what system_clock counts
// (+-292 years with nanoseconds), the nearest time it counts.
inline std::optional<std::chrono::system_clock::time_point> time_from_ms(std::int64_t ms) {
    if (ms == 0) {
        return std::nullopt;
    }
    using Clock = std::chrono::system_clock;
    constexpr std::int64_t most = static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::max()).count());
    constexpr std::int64_t least = static_cast<std::int64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::duration::min()).count());
    ms = ms > most ? most : ms < least ? least : ms;
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

// How gosuv owns a program's processes; the numbers of gosuv_ownership.
enum class Ownership : std::uint32_t {
    none = GOSUV_OWNERSHIP_NONE,     // not known: it has not run yet
    group = GOSUV_OWNERSHIP_GROUP,   // its process group and session
    cgroup = GOSUV_OWNERSHIP_CGROUP, // a cgroup of its own
};

// One program's status, readiness, health and ownership (Supervisor::info()).
struct ProgramInfo : ProgramStatus {
    // Whether its current run is ready (it reached running).
    bool ready = false;
    // When its current run became ready.
    std::optional<std::chrono::system_clock::time_point> ready_at;
    Ownership ownership = Ownership::none;
    // With a health probe, once it reached running: failed checks since it was added, and
    // in a row now.
    struct Health {
        std::uint64_t failures = 0;
        std::uint32_t failing = 0;
    };
    std::optional<Health> health;
    // In waiting: how many of its dependencies are not yet satisfied.
    std::uint32_t waiting_for = 0;

    ProgramInfo() = default;
    explicit ProgramInfo(const gosuv_program_info &c)
        : ProgramStatus(status_of(c)), ready(c.ready),
          ready_at(detail::time_from_ms(c.ready_at_ms)),
          ownership(static_cast<Ownership>(c.ownership)),
          health(c.has_health ? std::optional<Health>(Health{c.health_failures, c.health_failing})
                              : std::nullopt),
          waiting_for(c.waiting_for) {}

private:
    static ProgramStatus status_of(const gosuv_program_info &c) {
        gosuv_program_status st{};
        st.state = c.state;
        st.pid = c.pid;
        st.has_exit_code = c.has_exit_code;
        st.exit_code = c.exit_code;
        st.exit_signal = c.exit_signal;
        st.restarts = c.restarts;
        st.uptime_secs = c.uptime_secs;
        st.started_at_ms = c.started_at_ms;
        st.log_errors = c.log_errors;
        st.has_last_error = c.has_last_error;
        return ProgramStatus(st);
    }
};

// What a reload did, names sorted.
struct ReloadReport {
    std::vector<std::string> added;     // new (started with start_auto)
    std::vector<std::string> changed;   // config changed (restarted if they had a process)
    std::vector<std::string> removed;   // gone (stopped first)
    std::vector<std::string> unchanged; // left as they were
};

namespace detail {

// Copies `count` strings of an array from gosuv, then frees it.
inline std::vector<std::string> take_string_array(char **array, std::size_t count) {
    struct Free {
        char **a;
        ~Free() { gosuv_string_array_free(a); }
    } guard{array};
    std::vector<std::string> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count && array != nullptr && array[i] != nullptr; ++i) {
        out.emplace_back(array[i]);
    }
    return out;
}

// A gosuv_reload_report whose arrays are freed on scope exit.
struct OwnedReport {
    gosuv_reload_report c{};
    OwnedReport() { check(gosuv_reload_report_init(&c, sizeof c)); }
    OwnedReport(const OwnedReport &) = delete;
    OwnedReport &operator=(const OwnedReport &) = delete;
    ~OwnedReport() { gosuv_reload_report_free(&c); }

    ReloadReport take() const {
        ReloadReport r;
        r.added = copy(c.added, c.added_count);
        r.changed = copy(c.changed, c.changed_count);
        r.removed = copy(c.removed, c.removed_count);
        r.unchanged = copy(c.unchanged, c.unchanged_count);
        return r;
    }

private:
    static std::vector<std::string> copy(char *const *array, std::size_t count) {
        std::vector<std::string> out;
        out.reserve(count);
        for (std::size_t i = 0; i < count && array != nullptr && array[i] != nullptr; ++i) {
            out.emplace_back(array[i]);
        }
        return out;
    }
};

// NUL-terminated copies of strings and the array of their pointers, for a `const char
// *const *` argument.
class CStrings {
public:
    template <class Strings> CStrings(const Strings &strings, const char *what) {
        for (const auto &s : strings) {
            copies_.push_back(c_string(std::string_view(s), what));
        }
        for (const std::string &s : copies_) {
            pointers_.push_back(s.c_str());
        }
    }
    const char *const *data() const noexcept { return pointers_.data(); }
    std::size_t size() const noexcept { return pointers_.size(); }

private:
    std::vector<std::string> copies_;
    std::vector<const char *> pointers_;
};

// An optional string argument: NULL when absent.
class OptionalCString {
public:
    OptionalCString(std::optional<std::string_view> s, const char *what) {
        if (s) {
            copy_ = c_string(*s, what);
        }
    }
    const char *get() const noexcept { return copy_ ? copy_->c_str() : nullptr; }

private:
    std::optional<std::string> copy_;
};

} // namespace detail

// When a program that was running and exited is started again; gosuv_autorestart.
enum class Autorestart : std::uint32_t {
    always = GOSUV_AUTORESTART_ALWAYS,
    never = GOSUV_AUTORESTART_NEVER,
    unexpected = GOSUV_AUTORESTART_UNEXPECTED, // after an exit code not in its exit codes
};

// How a program's processes are owned (`cgroup`); gosuv_cgroup_mode.
enum class CgroupMode : std::uint32_t {
    automatic = GOSUV_CGROUP_MODE_AUTO, // a cgroup where gosuv can make one (the default)
    off = GOSUV_CGROUP_MODE_OFF,
    required = GOSUV_CGROUP_MODE_REQUIRED,
};

// What a dependency must be before the program starts; gosuv_condition.
enum class Condition : std::uint32_t {
    ready = GOSUV_CONDITION_READY,
    started = GOSUV_CONDITION_STARTED,
    exited_ok = GOSUV_CONDITION_EXITED_OK,
};

// Where a program's standard input comes from; gosuv_stdin.
enum class StdinMode : std::uint32_t {
    null = GOSUV_STDIN_NULL,       // /dev/null (the default)
    inherit = GOSUV_STDIN_INHERIT, // the host's own standard input
    pipe = GOSUV_STDIN_PIPE,       // Supervisor::write_stdin() and close_stdin()
};

// Where one output stream of a program goes; gosuv_output.
enum class Output : std::uint32_t {
    log = GOSUV_OUTPUT_LOG,         // its log file, tail and followers (the default)
    tee = GOSUV_OUTPUT_TEE,         // the log, and a copy to a descriptor of the host
    discard = GOSUV_OUTPUT_DISCARD, // nowhere
};

// A program described without YAML: a gosuv_program builder. Each setter checks its value
// as a programs.yml entry would be checked and throws gosuv::Error (GOSUV_RESULT_CONFIG
// naming the key, GOSUV_RESULT_INVALID_ARGUMENT) on a bad one, keeping what was set
// before; setters return *this, so they chain. Strings are plain values: quotes, newlines
// and `key: value` text in an argument stay in that argument. Durations follow
// gosuv::Duration: rounded up; zero is the setting's default where the C function says so;
// negative ones throw. Move-only.
//
//   gosuv::Program web("web");
//   web.set_argv({"python3", "-m", "http.server", "8000"})
//       .set_ready_tcp("127.0.0.1:8000")
//       .set_stop_signal(SIGINT);
//   sup.add(web);
class Program {
public:
    // A program named `name`, with every default and no command yet.
    explicit Program(std::string_view name) {
        const std::string n = detail::c_string(name, "the program name");
        detail::check(gosuv_program_new(n.c_str(), &p_));
    }
    Program(Program &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Program &operator=(Program &&o) noexcept {
        if (this != &o) {
            gosuv_program_free(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Program(const Program &) = delete;
    Program &operator=(const Program &) = delete;
    ~Program() { gosuv_program_free(p_); }

    explicit operator bool() const noexcept { return p_ != nullptr; }
    // The C builder (NULL when moved from).
    gosuv_program *get() const noexcept { return p_; }

    // The command as an argv, exec'd directly (no shell); argv[0] is searched in PATH.
    Program &set_argv(std::initializer_list<std::string_view> argv) { return set_argv_of(argv); }
    Program &set_argv(const std::vector<std::string> &argv) { return set_argv_of(argv); }
    // The command as a shell command line (as `command:` with a string).
    Program &set_shell_command(std::string_view command) {
        const std::string c = detail::c_string(command, "the command");
        return done(gosuv_program_set_shell_command(p_, c.c_str()));
    }
    // The variables added to the host's environment, "KEY=VALUE" each; empty clears them.
    Program &set_env(std::initializer_list<std::string_view> env) { return set_env_of(env); }
    Program &set_env(const std::vector<std::string> &env) { return set_env_of(env); }
    // Adds one variable; `value` may hold anything.
    Program &add_env(std::string_view key, std::string_view value) {
        const std::string k = detail::c_string(key, "the variable's name");
        const std::string v = detail::c_string(value, "the variable's value");
        return done(gosuv_program_add_env(p_, k.c_str(), v.c_str()));
    }
    // The working directory (relative to the base directory); nullopt: the base directory.
    Program &set_directory(std::optional<std::string_view> directory) {
        const detail::OptionalCString d(directory, "the directory");
        return done(gosuv_program_set_directory(p_, d.get()));
    }
    // A dotenv file read at each start; nullopt: none.
    Program &set_env_file(std::optional<std::string_view> path) {
        const detail::OptionalCString f(path, "the env file");
        return done(gosuv_program_set_env_file(p_, f.get()));
    }
    // Another log file for `stream`; nullopt: <log_dir>/<name>.<stream>.log.
    Program &set_logfile(Stream stream, std::optional<std::string_view> path) {
        const detail::OptionalCString f(path, "the log file");
        return done(
            gosuv_program_set_logfile(p_, static_cast<std::uint32_t>(stream), f.get()));
    }
    // Run as this user; nullopt: as this process.
    Program &set_user(std::optional<std::string_view> user) {
        const detail::OptionalCString u(user, "the user");
        return done(gosuv_program_set_user(p_, u.get()));
    }
    Program &set_start_auto(bool on) { return done(gosuv_program_set_start_auto(p_, on)); }
    // How long it must stay up for a start to count, in whole seconds (rounded up).
    Program &set_start_seconds(Duration d) {
        return done(gosuv_program_set_start_seconds(
            p_, detail::setting_seconds(d, "start_seconds")));
    }
    Program &set_start_retries(std::uint32_t n) {
        return done(gosuv_program_set_start_retries(p_, n));
    }
    // Between the stop signal and SIGKILL, in whole seconds (rounded up).
    Program &set_stop_timeout(Duration d) {
        return done(
            gosuv_program_set_stop_timeout(p_, detail::setting_seconds(d, "stop_timeout")));
    }
    Program &set_redirect_stderr(bool on) {
        return done(gosuv_program_set_redirect_stderr(p_, on));
    }
    Program &set_log_disable(bool on) { return done(gosuv_program_set_log_disable(p_, on)); }
    Program &set_log_timestamps(bool on) {
        return done(gosuv_program_set_log_timestamps(p_, on));
    }
    Program &set_log_max_bytes(std::uint64_t bytes) {
        return done(gosuv_program_set_log_max_bytes(p_, bytes));
    }
    Program &set_log_backups(std::uint32_t n) {
        return done(gosuv_program_set_log_backups(p_, n));
    }
    Program &set_numprocs(std::uint32_t n) { return done(gosuv_program_set_numprocs(p_, n)); }
    // As a number: 0022, 0077 (at most 0777).
    Program &set_umask(std::uint32_t mask) { return done(gosuv_program_set_umask(p_, mask)); }
    Program &set_autorestart(Autorestart mode) {
        return done(gosuv_program_set_autorestart(p_, static_cast<std::uint32_t>(mode)));
    }
    Program &set_cgroup(CgroupMode mode) {
        return done(gosuv_program_set_cgroup(p_, static_cast<std::uint32_t>(mode)));
    }
    Program &set_exit_codes(const std::vector<std::int32_t> &codes) {
        return done(gosuv_program_set_exit_codes(p_, codes.data(), codes.size()));
    }
    // By number (SIGTERM, SIGINT, SIGHUP ...).
    Program &set_stop_signal(int sig) { return done(gosuv_program_set_stop_signal(p_, sig)); }
    // Restart it over this many bytes; 0: no limit.
    Program &set_memory_max(std::uint64_t bytes) {
        return done(gosuv_program_set_memory_max(p_, bytes));
    }
    // `burst` exits within `interval` make a crash loop; burst 0 turns it off.
    Program &set_start_limit(std::uint32_t burst, Duration interval) {
        return done(gosuv_program_set_start_limit(
            p_, burst, detail::setting_ms(interval, "the start limit's interval")));
    }
    // Ready once a line of its output matches `regex`; not ready within `timeout` (0: the
    // default, 60 s) is a failed start.
    Program &set_ready_log(std::string_view regex, Duration timeout = {}) {
        const std::string r = detail::c_string(regex, "the ready regex");
        return done(gosuv_program_set_ready_log(
            p_, r.c_str(), detail::setting_ms(timeout, "the ready timeout")));
    }
    // Ready once a connection to `address` (HOST:PORT or unix:/path) succeeds, tried every
    // `interval` (0: 100 ms) for at most `timeout` (0: 60 s).
    Program &set_ready_tcp(std::string_view address, Duration interval = {},
                           Duration timeout = {}) {
        const std::string a = detail::c_string(address, "the ready address");
        return done(gosuv_program_set_ready_tcp(
            p_, a.c_str(), detail::setting_ms(interval, "the ready interval"),
            detail::setting_ms(timeout, "the ready timeout")));
    }
    // Ready once an HTTP GET of `url` answers 2xx or 3xx, tried as set_ready_tcp().
    Program &set_ready_http(std::string_view url, Duration interval = {},
                            Duration timeout = {}) {
        const std::string u = detail::c_string(url, "the ready URL");
        return done(gosuv_program_set_ready_http(
            p_, u.c_str(), detail::setting_ms(interval, "the ready interval"),
            detail::setting_ms(timeout, "the ready timeout")));
    }
    // Ready on READY=1 through $NOTIFY_SOCKET, within `timeout` (0: 60 s).
    Program &set_ready_notify(Duration timeout = {}) {
        return done(gosuv_program_set_ready_notify(
            p_, detail::setting_ms(timeout, "the ready timeout")));
    }
    // Ready once a command exits 0, tried as set_ready_tcp().
    Program &set_ready_exec(const std::vector<std::string> &argv, Duration interval = {},
                            Duration timeout = {}) {
        const detail::CStrings a(argv, "the ready command");
        return done(gosuv_program_set_ready_exec(
            p_, a.data(), a.size(), detail::setting_ms(interval, "the ready interval"),
            detail::setting_ms(timeout, "the ready timeout")));
    }
    // No ready probe: a start succeeds after start_seconds.
    Program &clear_ready() { return done(gosuv_program_clear_ready(p_)); }
    // Health: a connection to `address`, every `interval` (0: 10 s), each at most
    // `timeout` (0: 2 s); `failures` in a row (0: 3) restart it.
    Program &set_health_tcp(std::string_view address, Duration interval = {},
                            Duration timeout = {}, std::uint32_t failures = 0) {
        const std::string a = detail::c_string(address, "the health address");
        return done(gosuv_program_set_health_tcp(
            p_, a.c_str(), detail::setting_ms(interval, "the health interval"),
            detail::setting_ms(timeout, "the health timeout"), failures));
    }
    // Health: an HTTP GET of `url`, as set_health_tcp().
    Program &set_health_http(std::string_view url, Duration interval = {},
                             Duration timeout = {}, std::uint32_t failures = 0) {
        const std::string u = detail::c_string(url, "the health URL");
        return done(gosuv_program_set_health_http(
            p_, u.c_str(), detail::setting_ms(interval, "the health interval"),
            detail::setting_ms(timeout, "the health timeout"), failures));
    }
    // Health: a command exiting 0, as set_health_tcp().
    Program &set_health_exec(const std::vector<std::string> &argv, Duration interval = {},
                             Duration timeout = {}, std::uint32_t failures = 0) {
        const detail::CStrings a(argv, "the health command");
        return done(gosuv_program_set_health_exec(
            p_, a.data(), a.size(), detail::setting_ms(interval, "the health interval"),
            detail::setting_ms(timeout, "the health timeout"), failures));
    }
    // No health probe.
    Program &clear_health() { return done(gosuv_program_clear_health(p_)); }
    // Program `name` must meet `condition` before this one starts.
    Program &add_dependency(std::string_view name, Condition condition = Condition::ready) {
        const std::string n = detail::c_string(name, "the dependency's name");
        return done(gosuv_program_add_dependency(p_, n.c_str(),
                                                 static_cast<std::uint32_t>(condition)));
    }
    Program &clear_dependencies() { return done(gosuv_program_clear_dependencies(p_)); }
    // Where its standard input comes from.
    Program &set_stdin(StdinMode mode) {
        return done(gosuv_program_set_stdin(p_, static_cast<std::uint32_t>(mode)));
    }
    // Where `stream` goes; with Output::tee, `fd` is the host's descriptor to copy to
    // (gosuv duplicates it at once).
    Program &set_output(Stream stream, Output mode, int fd = -1) {
        return done(gosuv_program_set_output(p_, static_cast<std::uint32_t>(stream),
                                             static_cast<std::uint32_t>(mode), fd));
    }

private:
    Program &done(gosuv_result r) {
        detail::check(r);
        return *this;
    }
    template <class Strings> Program &set_argv_of(const Strings &argv) {
        const detail::CStrings a(argv, "an argv entry");
        return done(gosuv_program_set_argv(p_, a.data(), a.size()));
    }
    template <class Strings> Program &set_env_of(const Strings &env) {
        const detail::CStrings e(env, "an environment entry");
        return done(gosuv_program_set_env(p_, e.data(), e.size()));
    }

    gosuv_program *p_ = nullptr;
};

// Told of an exception that a callback threw: the exception, and which callback threw it
// ("event callback", "log callback of 'web' (stdout)"). Runs on the callback's thread.
using CallbackErrorHandler = std::function<void(std::exception_ptr, std::string_view)>;

namespace detail {

// The process's handler of callback exceptions. Never destroyed (built in static storage,
// not on the heap): a gosuv thread whose callback throws while the process exits still
// finds it.
struct CallbackErrorSlot {
    std::mutex lock;
    std::shared_ptr<const CallbackErrorHandler> handler;
};

inline CallbackErrorSlot &callback_error_slot() noexcept {
    alignas(CallbackErrorSlot) static unsigned char storage[sizeof(CallbackErrorSlot)];
    static CallbackErrorSlot *slot = new (storage) CallbackErrorSlot();
    return *slot;
}

// The default handler: one line on standard error. Throws nothing.
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
            CallbackErrorSlot &slot = callback_error_slot();
            std::lock_guard<std::mutex> lock(slot.lock);
            handler = slot.handler;
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

// Set when a subscription has ended (its finalizer ran).
using EndedFlag = std::shared_ptr<std::atomic<bool>>;

template <class F> struct EventHolder {
    F fn;
    EndedFlag ended; // may be null
    static void call(void *userdata, const gosuv_event *event) noexcept {
        try {
            static_cast<EventHolder *>(userdata)->fn(Event(*event));
        } catch (...) {
            report_callback_error(std::current_exception(), "event callback");
        }
    }
    static void finalize(void *userdata) noexcept {
        auto *self = static_cast<EventHolder *>(userdata);
        if (self->ended) {
            *self->ended = true;
        }
        delete self;
    }
};

template <class F> struct LogHolder {
    F fn;
    std::string where;
    EndedFlag ended; // may be null
    static void call(void *userdata, const gosuv_log_line *line) noexcept {
        auto *self = static_cast<LogHolder *>(userdata);
        try {
            self->fn(LogLine(*line));
        } catch (...) {
            report_callback_error(std::current_exception(), self->where);
        }
    }
    static void finalize(void *userdata) noexcept {
        auto *self = static_cast<LogHolder *>(userdata);
        if (self->ended) {
            *self->ended = true;
        }
        delete self;
    }
};

} // namespace detail

// Sets who is told of an exception thrown by a callback (event or log), for every
// supervisor of the process, and returns the previous handler. An empty handler restores
// the default, which writes one line to standard error. The handler runs on the thread of
// the callback that threw, so it may run on several threads at once: it must be
// thread-safe. An exception it throws itself is written to standard error. If copying the
// previous handler throws, that exception escapes and nothing changes.
inline CallbackErrorHandler set_callback_error_handler(CallbackErrorHandler handler) {
    auto next = handler ? std::make_shared<const CallbackErrorHandler>(std::move(handler))
                        : nullptr;
    detail::CallbackErrorSlot &slot = detail::callback_error_slot();
    std::shared_ptr<const CallbackErrorHandler> previous_handler;
    CallbackErrorHandler previous;
    {
        std::lock_guard<std::mutex> lock(slot.lock);
        if (slot.handler) {
            previous = *slot.handler; // may throw: then nothing has changed
        }
        previous_handler = std::exchange(slot.handler, std::move(next));
    }
    return previous;
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

namespace detail {

// What a Supervisor owns, at an address that does not change when the Supervisor moves:
// the C handle, and the subscriptions of on_event()/on_log().
struct SupervisorShared {
    struct Owned {
        gosuv_subscription *sub = nullptr;
        EndedFlag ended;
    };
    gosuv_supervisor *sup = nullptr;
    std::mutex lock;
    std::vector<Owned> owned;
};

// The longest single wait the wrapper asks gosuv for (max_timeout_ms, a day); a longer
// wait is made of several. Only tests change it.
inline std::atomic<std::uint64_t> max_wait_chunk_ms{max_timeout_ms};

// Waits longer than this (100 years) are for as long as it takes (GOSUV_WAIT_FOREVER).
inline constexpr std::uint64_t forever_above_ms = 100ULL * 366 * 86400000;

} // namespace detail

class Supervisor;

// A non-owning view of a Supervisor, with all its operations: copyable, and it stays
// valid when the Supervisor moves (it refers to what the Supervisor owns, not to the
// Supervisor object) until the Supervisor is destroyed. Callbacks that use their
// supervisor capture one by value: sup.on_event([s = sup.ref()](const gosuv::Event &) {
// s.names(); }). Its member functions may be called from any thread at once, callbacks
// included.
class SupervisorRef {
public:
    // Empty: every call throws GOSUV_RESULT_NULL_ARGUMENT.
    SupervisorRef() noexcept = default;

    explicit operator bool() const noexcept { return s_ != nullptr && s_->sup != nullptr; }
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

    // Adds the program a builder describes (each instance, with numprocs), stopped unless
    // it has start_auto. The builder is only read.
    void add(const Program &program) const {
        detail::check(gosuv_supervisor_add_program(get(), program.get()));
    }

    // Replaces the config of the program a builder names; returns whether it (or one of
    // its instances) was restarted.
    bool update(const Program &program) const {
        bool restarted = false;
        detail::check(gosuv_supervisor_update_program(get(), program.get(), &restarted));
        return restarted;
    }

    // Starts a program; waits until it is running (see gosuv_supervisor_start), at most
    // `timeout`: zero returns once the start has begun; a wait longer than gosuv's longest
    // (a day) goes on waiting (as wait()) up to `timeout`; gosuv::forever, or more than
    // 100 years, waits for as long as it takes.
    ProgramStatus start(std::string_view name, Duration timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        return chunked(timeout, gosuv_supervisor_start, n, [&](std::uint64_t ms, auto *st) {
            return gosuv_supervisor_wait(get(), n.c_str(), ms, st);
        });
    }
    // Stops a program; waits until none of its processes is left, at most `timeout` (one
    // over a day, as timeout_ms(), waits for as long as it takes).
    ProgramStatus stop(std::string_view name, Duration timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        gosuv_program_status st{};
        detail::check(gosuv_supervisor_stop(get(), n.c_str(), timeout_ms(timeout), &st));
        return ProgramStatus(st);
    }
    // Stops a program if it has a process, then starts it; waits like start().
    ProgramStatus restart(std::string_view name, Duration timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        return chunked(timeout, gosuv_supervisor_restart, n, [&](std::uint64_t ms, auto *st) {
            return gosuv_supervisor_wait(get(), n.c_str(), ms, st);
        });
    }
    // Waits until a program is running (ready), without starting it; zero only looks; as
    // long as asked (see start()). Throws GOSUV_RESULT_START_FAILED when it is or goes
    // fatal, GOSUV_RESULT_TIMEOUT.
    ProgramStatus wait(std::string_view name, Duration timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        return chunked(timeout, gosuv_supervisor_wait, n, [&](std::uint64_t ms, auto *st) {
            return gosuv_supervisor_wait(get(), n.c_str(), ms, st);
        });
    }
    // Waits until a program is in `state`; zero only looks; as long as asked (see start()).
    ProgramStatus wait_for(std::string_view name, State state, Duration timeout) const {
        const std::string n = detail::c_string(name, "the program name");
        const auto once = [&](std::uint64_t ms, gosuv_program_status *st) {
            return gosuv_supervisor_wait_for(get(), n.c_str(), static_cast<std::uint32_t>(state),
                                             ms, st);
        };
        return chunked(
            timeout,
            [&](const gosuv_supervisor *, const char *, std::uint64_t ms,
                gosuv_program_status *st) { return once(ms, st); },
            n, once);
    }

    // One program's status. Does not block.
    ProgramStatus status(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        gosuv_program_status st{};
        detail::check(gosuv_supervisor_status(get(), n.c_str(), &st));
        return ProgramStatus(st);
    }

    // One program's status, readiness, health and ownership. Does not block.
    ProgramInfo info(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        gosuv_program_info c{};
        detail::check(gosuv_program_info_init(&c, sizeof c));
        detail::check(gosuv_supervisor_program_info(get(), n.c_str(), &c));
        return ProgramInfo(c);
    }

    // The names of every program, sorted.
    std::vector<std::string> names() const {
        char **names = nullptr;
        std::size_t count = 0;
        detail::check(gosuv_supervisor_names(get(), &names, &count));
        return detail::take_string_array(names, count);
    }

    // Sends signal `sig` (SIGUSR1, SIGHUP, SIGRTMIN + 2 ...) to every process of a
    // program's current run, as its stop signal goes. Throws GOSUV_RESULT_INVALID_ARGUMENT
    // when it has no process.
    void signal(std::string_view name, int sig) const {
        const std::string n = detail::c_string(name, "the program name");
        detail::check(gosuv_supervisor_signal(get(), n.c_str(), sig));
    }

    // Writes `data` (any bytes) to the stdin pipe of a program set up with
    // Program::set_stdin(StdinMode::pipe), waiting for room at most `timeout` (as
    // timeout_ms(); zero: only what the pipe takes now). Returns how many bytes were
    // written: all of them, or fewer when the timeout ran out. Throws GOSUV_RESULT_IO when
    // the program closed its stdin or exited, GOSUV_RESULT_INVALID_ARGUMENT when it has no
    // stdin pipe or no process.
    std::size_t write_stdin(std::string_view name, std::string_view data,
                            Duration timeout = forever) const {
        const std::string n = detail::c_string(name, "the program name");
        const std::uint64_t ms = timeout_ms(timeout);
        std::size_t written = 0;
        const gosuv_result r = gosuv_supervisor_write_stdin(get(), n.c_str(), data.data(),
                                                            data.size(), ms, &written);
        if (r == GOSUV_RESULT_TIMEOUT) {
            return written;
        }
        detail::check(r);
        return written;
    }

    // Closes a program's stdin pipe: it reads end-of-file after what was written.
    void close_stdin(std::string_view name) const {
        const std::string n = detail::c_string(name, "the program name");
        detail::check(gosuv_supervisor_close_stdin(get(), n.c_str()));
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

    // Makes the programs equal to a programs-file text (a YAML list): adds the new ones,
    // updates the changed ones, removes the missing ones. An invalid text changes nothing.
    ReloadReport reload(std::string_view programs_yaml) const {
        const std::string yaml = detail::c_string(programs_yaml, "the programs text");
        detail::OwnedReport report;
        detail::check(gosuv_supervisor_reload_yaml(get(), yaml.c_str(), &report.c));
        return report.take();
    }

    // Makes the programs equal to the programs these builders describe, as reload():
    // sup.reload({web, db}).
    ReloadReport
    reload(std::initializer_list<std::reference_wrapper<const Program>> programs) const {
        return reload_builders(programs);
    }
    ReloadReport reload(const std::vector<Program> &programs) const {
        return reload_builders(programs);
    }

    // As reload(programs_yaml), the report as JSON
    // ({"added":[...],"changed":[...],"removed":[...]}).
    std::string reload_json(std::string_view programs_yaml) const {
        const std::string yaml = detail::c_string(programs_yaml, "the programs text");
        detail::OwnedString s;
        detail::check(gosuv_supervisor_reload(get(), yaml.c_str(), s.out()));
        return s.str();
    }

    // Re-reads the config file this supervisor was made from, and reloads; the report as
    // reload_json()'s.
    std::string reload_file_json() const {
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
    // supervisor (declare it before the supervisor). To use the supervisor in `fn`, capture
    // ref() by value, never the Supervisor object's address, which changes when it moves.
    template <class F> void on_event(F &&fn) const {
        auto ended = std::make_shared<std::atomic<bool>>(false);
        own(subscribe_events(std::forward<F>(fn), ended), ended);
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
        auto ended = std::make_shared<std::atomic<bool>>(false);
        own(subscribe_log(name, stream, std::forward<F>(fn), ended), ended);
    }

    // How many subscriptions of on_event()/on_log() the supervisor holds. Those that
    // ended (their program was removed) are let go of at the next on_event()/on_log().
    std::size_t owned_subscriptions() const {
        if (s_ == nullptr) {
            return 0;
        }
        std::lock_guard<std::mutex> g(s_->lock);
        return s_->owned.size();
    }

private:
    friend class Supervisor;
    explicit SupervisorRef(detail::SupervisorShared *s) noexcept : s_(s) {}

    // Keeps a subscription of on_event()/on_log() until the supervisor goes, and lets go of
    // those that ended (outside the lock).
    void own(gosuv_subscription *sub, detail::EndedFlag ended) const {
        Subscription guard(sub); // ends it if the vector cannot grow
        if (!s_) {
            return;
        }
        std::vector<gosuv_subscription *> done;
        {
            std::lock_guard<std::mutex> g(s_->lock);
            auto &owned = s_->owned;
            done.reserve(owned.size());
            owned.reserve(owned.size() + 1);
            std::size_t kept = 0;
            for (auto &o : owned) {
                if (o.ended && *o.ended) {
                    done.push_back(o.sub);
                } else {
                    owned[kept++] = std::move(o);
                }
            }
            owned.resize(kept);
            owned.push_back(detail::SupervisorShared::Owned{sub, std::move(ended)});
            guard.release();
        }
        for (gosuv_subscription *d : done) {
            gosuv_subscription_free(d);
        }
    }

    template <class F>
    gosuv_subscription *subscribe_events(F &&fn, detail::EndedFlag ended = nullptr) const {
        using Holder = detail::EventHolder<std::decay_t<F>>;
        static_assert(std::is_invocable_v<std::decay_t<F> &, const Event &>,
                      "an event callback is called as fn(const gosuv::Event &)");
        auto holder = std::make_unique<Holder>(Holder{std::forward<F>(fn), std::move(ended)});
        gosuv_subscription *sub = nullptr;
        detail::check(gosuv_supervisor_on_event(get(), &Holder::call, holder.get(),
                                                &Holder::finalize, &sub));
        holder.release(); // the finalizer deletes it
        return sub;
    }

    template <class F>
    gosuv_subscription *subscribe_log(std::string_view name, Stream stream, F &&fn,
                                      detail::EndedFlag ended = nullptr) const {
        using Holder = detail::LogHolder<std::decay_t<F>>;
        static_assert(std::is_invocable_v<std::decay_t<F> &, const LogLine &>,
                      "a log callback is called as fn(const gosuv::LogLine &)");
        const std::string n = detail::c_string(name, "the program name");
        auto holder = std::make_unique<Holder>(Holder{
            std::forward<F>(fn),
            "log callback of '" + n + "' (" + to_string(stream) + ")",
            std::move(ended),
        });
        gosuv_subscription *sub = nullptr;
        detail::check(gosuv_supervisor_on_log(get(), n.c_str(),
                                              static_cast<std::uint32_t>(stream), &Holder::call,
                                              holder.get(), &Holder::finalize, &sub));
        holder.release();
        return sub;
    }

    template <class Programs> ReloadReport reload_builders(const Programs &programs) const {
        std::vector<const gosuv_program *> c;
        c.reserve(programs.size());
        for (const Program &p : programs) {
            c.push_back(p.get());
        }
        detail::OwnedReport report;
        detail::check(gosuv_supervisor_reload_programs(get(), c.data(), c.size(), &report.c));
        return report.take();
    }

    // A wait of `timeout`: one call of `first` when gosuv can wait that long in one (at
    // most max_wait_chunk_ms) or for ever, else `first` then `next` in chunks until it
    // succeeds, fails otherwise, or the time is up.
    template <class First, class Next>
    ProgramStatus chunked(Duration timeout, First first, const std::string &name,
                          Next next) const {
        const std::uint64_t asked = timeout_ms(timeout) == GOSUV_WAIT_FOREVER
                                        ? timeout.milliseconds()
                                        : timeout_ms(timeout);
        const std::uint64_t chunk = detail::max_wait_chunk_ms.load();
        gosuv_program_status st{};
        if (asked <= chunk || asked > detail::forever_above_ms) {
            const std::uint64_t ms = asked <= chunk ? asked : GOSUV_WAIT_FOREVER;
            detail::check(first(get(), name.c_str(), ms, &st));
            return ProgramStatus(st);
        }
        const auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(asked);
        gosuv_result r = first(get(), name.c_str(), chunk, &st);
        while (r == GOSUV_RESULT_TIMEOUT) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                break;
            }
            const std::uint64_t ms = static_cast<std::uint64_t>(left.count());
            r = next(ms < chunk ? ms : chunk, &st);
        }
        detail::check(r);
        return ProgramStatus(st);
    }

    detail::SupervisorShared *s_ = nullptr;
};

// A supervisor: its programs, their processes, logs and events; it has every operation of
// SupervisorRef. Move-only: moving it keeps the C supervisor, its callbacks and every
// SupervisorRef of it; but a callback that captured the Supervisor object itself (`&sup`,
// `this`) then refers to the moved-from, empty object: capture ref() instead. Its member
// functions may be called from any thread at once, callbacks included (not the
// destructor nor the move operations).
class Supervisor : public SupervisorRef {
public:
    // A supervisor with no programs.
    explicit Supervisor(const Options &options = Options())
        : Supervisor(new detail::SupervisorShared()) {
        // Delegated: the destructor frees what was allocated if this throws.
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
        // Allocated before the C supervisor exists, so nothing can leak it.
        Supervisor result(new detail::SupervisorShared());
        detail::check(gosuv_supervisor_from_yaml(yaml.c_str(), &c, &result.s_->sup));
        return result;
    }

    // A supervisor from a config.yml and the programs file it names.
    static Supervisor from_config_file(std::string_view config_path) {
        const std::string path = detail::c_string(config_path, "the config path");
        Supervisor result(new detail::SupervisorShared());
        detail::check(gosuv_supervisor_from_config_file(path.c_str(), &result.s_->sup));
        return result;
    }

    // Takes over a supervisor made through the C API (NULL gives an empty Supervisor). If
    // memory runs out, `sup` is freed and std::bad_alloc thrown.
    static Supervisor adopt(gosuv_supervisor *sup) {
        if (sup == nullptr) {
            return Supervisor(static_cast<detail::SupervisorShared *>(nullptr));
        }
        detail::SupervisorShared *shared = nullptr;
        try {
            shared = new detail::SupervisorShared();
        } catch (...) {
            gosuv_supervisor_free(sup);
            throw;
        }
        shared->sup = sup;
        return Supervisor(shared);
    }

    Supervisor(Supervisor &&o) noexcept : SupervisorRef(std::exchange(o.s_, nullptr)) {}
    Supervisor &operator=(Supervisor &&o) noexcept {
        if (this != &o) {
            close();
            s_ = std::exchange(o.s_, nullptr);
        }
        return *this;
    }
    Supervisor(const Supervisor &) = delete;
    Supervisor &operator=(const Supervisor &) = delete;

    // Stops every program and waits for their processes, delivers the events of that
    // shutdown to every subscriber (those of on_event()/on_log() and Subscriptions still
    // alive), then ends the subscriptions this supervisor owns. Inside one of its own
    // callbacks, it waits for every other callback to finish (they must not wait for this
    // one); that callback's own subscription ends when it returns (see
    // gosuv_supervisor_free).
    ~Supervisor() { close(); }

    // A view that stays valid when this Supervisor moves, until it is destroyed.
    SupervisorRef ref() const noexcept { return SupervisorRef(s_); }

private:
    explicit Supervisor(detail::SupervisorShared *s) noexcept : SupervisorRef(s) {}

    void close() noexcept {
        if (s_ == nullptr) {
            return;
        }
        // Not under the lock: callbacks run during the shutdown and may subscribe.
        gosuv_supervisor_free(s_->sup);
        s_->sup = nullptr;
        std::vector<detail::SupervisorShared::Owned> owned;
        {
            std::lock_guard<std::mutex> g(s_->lock);
            owned.swap(s_->owned);
        }
        for (auto &o : owned) {
            gosuv_subscription_free(o.sub);
        }
        delete std::exchange(s_, nullptr);
    }
};

} // namespace gosuv

#endif // GOSUV_HPP
