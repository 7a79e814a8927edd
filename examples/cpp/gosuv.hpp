// gosuv.hpp: a small C++17 RAII wrapper over libgosuv's C API (gosuv.h).
//
// gosuv::Supervisor owns a gosuv_supervisor and frees it (stopping every program) when it
// goes out of scope; gosuv::Subscription owns a callback registration. Failures throw
// gosuv::Error, which carries the gosuv_result code and gosuv's message.
#ifndef GOSUV_HPP
#define GOSUV_HPP

#include <chrono>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <gosuv.h>

namespace gosuv {

// A failed gosuv call: its code and its message.
class Error : public std::runtime_error {
public:
    Error(gosuv_result code, const std::string &message)
        : std::runtime_error(message), code_(code) {}
    gosuv_result code() const noexcept { return code_; }
    const char *code_name() const noexcept { return gosuv_result_name(code_); }

private:
    gosuv_result code_;
};

// Throws the message of a failed call. Must run on the thread that made the call, right
// after it: gosuv keeps the detailed message per thread.
inline void check(gosuv_result r) {
    if (r == GOSUV_RESULT_OK) {
        return;
    }
    std::string message(gosuv_error_message(r, nullptr, 0), '\0');
    gosuv_error_message(r, message.data(), message.size() + 1);
    throw Error(r, message);
}

// A string gosuv allocated, freed on scope exit.
struct OwnedString {
    char *p = nullptr;
    ~OwnedString() { gosuv_string_free(p); }
    std::string str() const { return p ? std::string(p) : std::string(); }
};

// A callback registration. Destroying it waits until the callback is no longer running.
class Subscription {
public:
    Subscription() = default;
    explicit Subscription(gosuv_subscription *p) noexcept : p_(p) {}
    Subscription(Subscription &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Subscription &operator=(Subscription &&o) noexcept {
        if (this != &o) {
            gosuv_subscription_free(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Subscription(const Subscription &) = delete;
    Subscription &operator=(const Subscription &) = delete;
    ~Subscription() { gosuv_subscription_free(p_); }

private:
    gosuv_subscription *p_ = nullptr;
};

using EventFn = std::function<void(const gosuv_event &)>;
using LineFn = std::function<void(const std::string &)>;

namespace detail {
// The callbacks run on gosuv's threads and must not throw into it.
template <typename Fn, typename Arg> void call(void *userdata, const Arg *arg) noexcept {
    try {
        (*static_cast<Fn *>(userdata))(*arg);
    } catch (...) {
        // A callback's exception cannot go anywhere useful: it is dropped.
    }
}
inline void call_line(void *userdata, const gosuv_log_line *line) noexcept {
    try {
        (*static_cast<LineFn *>(userdata))(std::string(line->text, line->len));
    } catch (...) {
    }
}
template <typename Fn> void destroy(void *userdata) noexcept { delete static_cast<Fn *>(userdata); }
} // namespace detail

// A supervisor and its programs. Move-only; destroying it stops every program.
class Supervisor {
public:
    // A supervisor with no programs, running them from `base_dir` and logging to
    // `base_dir/logs`, with the library's other defaults (gosuv_supervisor_options_default():
    // no subreaper, programs die with this process).
    explicit Supervisor(const std::string &base_dir) {
        gosuv_supervisor_options options = gosuv_supervisor_options_default();
        options.base_dir = base_dir.c_str();
        check(gosuv_supervisor_new(&options, &p_));
    }
    Supervisor(Supervisor &&o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Supervisor &operator=(Supervisor &&o) noexcept {
        if (this != &o) {
            gosuv_supervisor_free(p_);
            p_ = std::exchange(o.p_, nullptr);
        }
        return *this;
    }
    Supervisor(const Supervisor &) = delete;
    Supervisor &operator=(const Supervisor &) = delete;
    ~Supervisor() { gosuv_supervisor_free(p_); }

    // Adds a program given as YAML (the keys of one programs.yml entry).
    void add(const std::string &program_yaml) { check(gosuv_supervisor_add(p_, program_yaml.c_str())); }
    void remove(const std::string &name) { check(gosuv_supervisor_remove(p_, name.c_str())); }

    gosuv_program_status start(const std::string &name, std::chrono::milliseconds wait) {
        gosuv_program_status st;
        check(gosuv_supervisor_start(p_, name.c_str(), ms(wait), &st));
        return st;
    }
    gosuv_program_status stop(const std::string &name, std::chrono::milliseconds wait) {
        gosuv_program_status st;
        check(gosuv_supervisor_stop(p_, name.c_str(), ms(wait), &st));
        return st;
    }
    gosuv_program_status restart(const std::string &name, std::chrono::milliseconds wait) {
        gosuv_program_status st;
        check(gosuv_supervisor_restart(p_, name.c_str(), ms(wait), &st));
        return st;
    }
    // Waits until a program is running (ready, with a `ready` probe), at most `timeout`
    // (0 only looks), without starting it. Throws gosuv::Error: GOSUV_RESULT_START_FAILED
    // with its last error when it goes fatal, GOSUV_RESULT_TIMEOUT when the time runs out.
    gosuv_program_status wait(const std::string &name, std::chrono::milliseconds timeout) const {
        gosuv_program_status st;
        check(gosuv_supervisor_wait(p_, name.c_str(), ms(timeout), &st));
        return st;
    }
    gosuv_program_status status(const std::string &name) const {
        gosuv_program_status st;
        check(gosuv_supervisor_status(p_, name.c_str(), &st));
        return st;
    }
    // Every program's status as a JSON array.
    std::string status_json() const {
        OwnedString s;
        check(gosuv_supervisor_status_json(p_, &s.p));
        return s.str();
    }
    // The last `lines` lines of a program's output.
    std::string tail(const std::string &name, gosuv_stream stream, std::size_t lines) const {
        std::string buf(64 * 1024, '\0');
        std::size_t n = 0;
        check(gosuv_supervisor_tail(p_, name.c_str(), stream, lines, buf.data(), buf.size(), &n));
        buf.resize(n);
        return buf;
    }

    // Calls `fn` with every state change, on a gosuv thread, until the subscription ends.
    Subscription on_event(EventFn fn) {
        auto owned = std::make_unique<EventFn>(std::move(fn));
        gosuv_subscription *sub = nullptr;
        check(gosuv_supervisor_on_event(p_, detail::call<EventFn, gosuv_event>, owned.get(),
                                        detail::destroy<EventFn>, &sub));
        owned.release(); // gosuv's finalizer deletes it now
        return Subscription(sub);
    }
    // Calls `fn` with every line a program writes to `stream`, on a gosuv thread.
    Subscription on_log(const std::string &name, gosuv_stream stream, LineFn fn) {
        auto owned = std::make_unique<LineFn>(std::move(fn));
        gosuv_subscription *sub = nullptr;
        check(gosuv_supervisor_on_log(p_, name.c_str(), stream, detail::call_line, owned.get(),
                                      detail::destroy<LineFn>, &sub));
        owned.release();
        return Subscription(sub);
    }

    // The C handle, for calls this wrapper does not cover.
    const gosuv_supervisor *get() const noexcept { return p_; }

private:
    // A wait as gosuv takes it: a negative one does not wait, and one too long for a
    // uint32_t stays too long, so gosuv refuses it (over one day) rather than waiting less.
    static uint32_t ms(std::chrono::milliseconds d) {
        if (d.count() <= 0) {
            return 0;
        }
        if (d.count() > static_cast<std::chrono::milliseconds::rep>(
                            std::numeric_limits<uint32_t>::max())) {
            return std::numeric_limits<uint32_t>::max();
        }
        return static_cast<uint32_t>(d.count());
    }
    gosuv_supervisor *p_ = nullptr;
};

} // namespace gosuv

#endif // GOSUV_HPP
