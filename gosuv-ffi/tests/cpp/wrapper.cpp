// The C++ wrapper include/gosuv.hpp, seen from C++17: start/wait/stop, events (the
// shutdown's included), log followers, callbacks that throw, chrono extremes, errors as
// exceptions, moves. Run by tests/c_examples.rs under AddressSanitizer+UBSan and under
// valgrind. Usage: wrapper DIR (an empty directory). Prints one line per failed check and
// "N passed, N failed"; exits 1 if any failed.
#include <gosuv.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <iostream>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

static int passed, failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                      \
        }                                                                                      \
    } while (0)

// Runs `call`, which must throw gosuv::Error with `code`; returns its message.
template <class F> static std::string expect_error(F call, gosuv_result code, int line) {
    try {
        call();
    } catch (const gosuv::Error &e) {
        if (e.code() == code) {
            passed++;
            return e.what();
        }
        failed++;
        std::printf("FAILED line %d: threw %s (%s), wanted %s\n", line, e.code_name(), e.what(),
                    gosuv_result_name(code));
        return e.what();
    }
    failed++;
    std::printf("FAILED line %d: no exception, wanted %s\n", line, gosuv_result_name(code));
    return "";
}
#define EXPECT_ERROR(call, code) expect_error([&] { call; }, code, __LINE__)

// Prints what a section is doing, so a hang or a crash names it.
static void section(const char *name) {
    std::printf("-- %s\n", name);
    std::fflush(stdout);
}

static bool contains(const std::string &s, const std::string &needle) {
    return s.find(needle) != std::string::npos;
}

// What callbacks saw, behind a lock: they run on gosuv's threads.
class Record {
public:
    void add(std::string item) {
        std::lock_guard<std::mutex> g(lock_);
        items_.push_back(std::move(item));
        changed_.notify_all();
    }
    // Waits (at most 20 s) until `item` was seen.
    bool wait_for(const std::string &item) {
        std::unique_lock<std::mutex> g(lock_);
        return changed_.wait_for(g, 20s, [&] { return has_locked(item); });
    }
    // Waits (at most 20 s) until `n` items were seen.
    bool wait_count(std::size_t n) {
        std::unique_lock<std::mutex> g(lock_);
        return changed_.wait_for(g, 20s, [&] { return items_.size() >= n; });
    }
    bool has(const std::string &item) {
        std::lock_guard<std::mutex> g(lock_);
        return has_locked(item);
    }
    std::size_t size() {
        std::lock_guard<std::mutex> g(lock_);
        return items_.size();
    }
    std::vector<std::string> items() {
        std::lock_guard<std::mutex> g(lock_);
        return items_;
    }

private:
    bool has_locked(const std::string &item) const {
        for (const auto &i : items_) {
            if (i == item) {
                return true;
            }
        }
        return false;
    }
    std::mutex lock_;
    std::condition_variable changed_;
    std::vector<std::string> items_;
};

static std::string describe(const gosuv::Event &e) {
    return e.program + " " + gosuv::to_string(e.from) + " -> " + gosuv::to_string(e.to);
}

static gosuv::Options options_in(const std::string &dir) {
    gosuv::Options o;
    o.base_dir = dir;
    return o;
}

static const char *const sleeper = "{name: sleeper, command: 'exec sleep 300', start_seconds: 0}";

static void defaults_and_names() {
    section("defaults and names");
    gosuv_supervisor_options c{};
    CHECK(gosuv_supervisor_options_init(&c, sizeof c) == GOSUV_RESULT_OK);
    const gosuv::Options o;
    CHECK(o.base_dir.has_value() == (c.base_dir != nullptr));
    CHECK(o.log_dir.has_value() == (c.log_dir != nullptr));
    CHECK(o.subreaper == c.subreaper);
    CHECK(o.kill_on_parent_death == c.kill_on_parent_death);
    CHECK(o.min_fds == c.min_fds);
    const gosuv_supervisor_options back = o.c_options();
    CHECK(back.subreaper == c.subreaper && back.kill_on_parent_death == c.kill_on_parent_death &&
          back.min_fds == c.min_fds);

    CHECK(gosuv::version() == gosuv_version());
    std::printf("version %s\n", std::string(gosuv::version()).c_str());
    CHECK(std::string(gosuv::to_string(gosuv::State::waiting)) == "waiting");
    CHECK(std::string(gosuv::to_string(static_cast<gosuv::State>(99))) == "unknown");
    CHECK(std::string(gosuv::to_string(gosuv::Stream::err)) == "stderr");
    CHECK(std::string(gosuv::result_name(GOSUV_RESULT_NOT_FOUND)) == "GOSUV_RESULT_NOT_FOUND");
    CHECK(!gosuv::result_message(GOSUV_RESULT_TIMEOUT).empty());
}

static void chrono_extremes(const std::string &dir) {
    section("chrono extremes");
    using gosuv::timeout_ms;
    using namespace std::chrono;
    const std::uint64_t forever = GOSUV_WAIT_FOREVER;
    // Longer than a day, or too long to count: for as long as it takes, never cut short.
    CHECK(timeout_ms(hours::max()) == forever);
    CHECK(timeout_ms(nanoseconds::max()) == forever);
    CHECK(timeout_ms(gosuv::forever) == forever);
    CHECK(timeout_ms(duration<std::uint64_t, std::milli>(~0ULL)) == forever);
    CHECK(timeout_ms(duration<std::uint64_t, std::ratio<3600>>(~0ULL)) == forever);
    CHECK(timeout_ms(duration<std::int8_t, std::ratio<86400 * 365>>(100)) == forever);
    CHECK(timeout_ms(milliseconds(86400001)) == forever);
    CHECK(timeout_ms(duration<double>(std::numeric_limits<double>::infinity())) == forever);
    CHECK(timeout_ms(duration<double, std::milli>(1e300)) == forever);
    // Up to a day: exact.
    CHECK(timeout_ms(hours(24)) == gosuv::max_timeout_ms);
    CHECK(timeout_ms(milliseconds(86399999)) == 86399999);
    CHECK(timeout_ms(hours(23)) == 23u * 3600 * 1000);
    CHECK(timeout_ms(milliseconds(7)) == 7);
    CHECK(timeout_ms(nanoseconds(2000000)) == 2);
    // Sub-millisecond waits round up, never down to "do not wait".
    CHECK(timeout_ms(nanoseconds(1)) == 1);
    CHECK(timeout_ms(microseconds(999)) == 1);
    CHECK(timeout_ms(microseconds(1001)) == 2);
    CHECK(timeout_ms(nanoseconds(1000001)) == 2);
    CHECK(timeout_ms(duration<long long, std::atto>(1)) == 1);
    CHECK(timeout_ms(duration<double>(0.0000001)) == 1);
    CHECK(timeout_ms(duration<double, std::milli>(2.5)) == 3);
    CHECK(timeout_ms(duration<int, std::ratio<1, 3>>(1)) == 334);
    CHECK(timeout_ms(duration<int, std::ratio<1, 3>>(3)) == 1000);
    CHECK(timeout_ms(duration<long long, std::ratio<7, 3>>(3)) == 7000);
    // Zero and negative: do not wait.
    CHECK(timeout_ms(seconds(0)) == 0);
    CHECK(timeout_ms(hours::min()) == 0);
    CHECK(timeout_ms(nanoseconds(-1)) == 0);
    CHECK(timeout_ms(duration<double>(-std::numeric_limits<double>::infinity())) == 0);
    EXPECT_ERROR(timeout_ms(duration<double>(std::numeric_limits<double>::quiet_NaN())),
                 GOSUV_RESULT_INVALID_ARGUMENT);
    // A floating-point count is not rounded up from its inexact binary value.
    CHECK(timeout_ms(duration<double>(0.001)) == 1);
    CHECK(timeout_ms(duration<double>(0.1)) == 100);
    CHECK(timeout_ms(duration<float>(0.3f)) == 300);
    CHECK(timeout_ms(duration<double, std::ratio<60>>(0.05)) == 3000);
    CHECK(gosuv::detail::setting_seconds(duration<double, std::ratio<60>>(0.05), "x") == 3);
    CHECK(timeout_ms(duration<double, std::milli>(1.5)) == 2);
    CHECK(timeout_ms(duration<double, std::nano>(0.1)) == 1); // positive: never 0
#ifdef __SIZEOF_INT128__
    {
        // A count wider than 64 bits saturates instead of being truncated.
        __extension__ typedef __int128 i128;
        CHECK(timeout_ms(duration<i128, std::milli>(i128(1) << 64)) == forever);
        CHECK(timeout_ms(duration<i128, std::milli>((i128(1) << 64) + 5)) == forever);
        CHECK(timeout_ms(duration<i128, std::milli>(-(i128(1) << 64))) == 0);
        CHECK(timeout_ms(duration<i128, std::milli>(7)) == 7);
    }
#endif
    // Times from the library beyond what system_clock counts (+-292 years) are clamped.
    {
        gosuv_event ev{};
        ev.program = "x";
        ev.at_ms = std::numeric_limits<std::int64_t>::min();
        CHECK(gosuv::Event(ev).at < system_clock::time_point());
        ev.at_ms = std::numeric_limits<std::int64_t>::max();
        CHECK(gosuv::Event(ev).at > system_clock::time_point());
    }

    // Through gosuv: a huge wait is accepted (C refuses more than a day), not cut short.
    gosuv::Supervisor sup(options_in(dir));
    sup.add(sleeper);
    gosuv::ProgramStatus st = sup.start("sleeper", hours::max());
    CHECK(st.state == gosuv::State::running);
    st = sup.wait_for("sleeper", gosuv::State::running, nanoseconds::max());
    CHECK(st.state == gosuv::State::running);
    sup.stop("sleeper", gosuv::forever);
    // A negative wait only looks; a microsecond one waits a millisecond.
    auto t0 = steady_clock::now();
    EXPECT_ERROR(sup.wait("sleeper", -5s), GOSUV_RESULT_TIMEOUT);
    EXPECT_ERROR(sup.wait("sleeper", 1us), GOSUV_RESULT_TIMEOUT);
    CHECK(steady_clock::now() - t0 < 5s);
    EXPECT_ERROR(sup.wait("sleeper", duration<double>(std::nan(""))),
                 GOSUV_RESULT_INVALID_ARGUMENT);
}

static void errors_as_exceptions(const std::string &dir) {
    section("errors as exceptions");
    gosuv::Supervisor sup(options_in(dir));
    std::string m = EXPECT_ERROR(sup.start("nosuch", 1s), GOSUV_RESULT_NOT_FOUND);
    CHECK(contains(m, "no program named 'nosuch'"));
    m = EXPECT_ERROR(sup.add("{name: bad, command: 'true', start_secondz: 1}"),
                     GOSUV_RESULT_CONFIG);
    CHECK(contains(m, "start_secondz"));
    sup.add(sleeper);
    m = EXPECT_ERROR(sup.add(sleeper), GOSUV_RESULT_EXISTS);
    CHECK(contains(m, "'sleeper' already exists"));
    try {
        sup.remove("nosuch");
        CHECK(false);
    } catch (const gosuv::Error &e) {
        CHECK(std::string(e.code_name()) == "GOSUV_RESULT_NOT_FOUND");
        // The message is the detailed one even though the catch ran other code first.
        CHECK(contains(e.what(), "nosuch"));
    }
    // A NUL inside a string_view would cut it short in C: refused.
    m = EXPECT_ERROR(sup.status(std::string_view("sleeper\0x", 9)),
                     GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(contains(m, "NUL"));
    CHECK(sup.status(std::string_view("sleeper-not-this", 7)).state == gosuv::State::stopped);
    // A program that cannot start: START_FAILED, and its last error.
    sup.add("{name: failing, command: 'exit 3', start_seconds: 1, start_retries: 1, "
            "autorestart: false}");
    m = EXPECT_ERROR(sup.start("failing", 20s), GOSUV_RESULT_START_FAILED);
    CHECK(!m.empty());
    CHECK(sup.status("failing").state == gosuv::State::fatal);
    CHECK(sup.status("failing").has_last_error);
    CHECK(!sup.last_error("failing").empty());
    CHECK(sup.last_error("sleeper").empty());
    EXPECT_ERROR(sup.wait("failing", 0s), GOSUV_RESULT_START_FAILED);
    EXPECT_ERROR(sup.reload_file_json(), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT_ERROR(gosuv::Supervisor::from_config_file(dir + "/no-such-config.yml"),
                 GOSUV_RESULT_CONFIG);
    EXPECT_ERROR(gosuv::Supervisor::from_yaml("- {name: x}\n", options_in(dir)),
                 GOSUV_RESULT_CONFIG);
    gosuv::Options bad = options_in(dir);
    bad.log_dir = std::string("lo\0gs", 5);
    EXPECT_ERROR(gosuv::Supervisor{bad}, GOSUV_RESULT_INVALID_ARGUMENT);
    sup.shutdown();
    m = EXPECT_ERROR(sup.add("{name: late, command: 'true'}"), GOSUV_RESULT_SHUTTING_DOWN);
    CHECK(!m.empty());
}

static void start_wait_stop(const std::string &dir) {
    section("start, wait, stop, status, stats, update, reload");
    gosuv::Supervisor sup = gosuv::Supervisor::from_yaml(
        "- {name: auto, command: 'exec sleep 300', start_auto: true, start_seconds: 0}\n",
        options_in(dir));
    gosuv::ProgramStatus st = sup.wait("auto", 20s);
    CHECK(st.state == gosuv::State::running);
    CHECK(st.pid > 0);
    CHECK(st.started_at.has_value());
    CHECK(!st.exit_code.has_value());

    sup.add(sleeper);
    st = sup.status("sleeper");
    CHECK(st.state == gosuv::State::stopped && st.pid == 0 && !st.started_at);
    st = sup.start("sleeper", 0s);
    st = sup.wait("sleeper", 20s);
    CHECK(st.state == gosuv::State::running);
    const std::uint32_t pid = st.pid;
    CHECK(kill(static_cast<pid_t>(pid), 0) == 0);
    gosuv::ProcessStats stats = sup.stats("sleeper");
    CHECK(stats.processes >= 1);
    CHECK(contains(sup.stats_json(), "\"sleeper\""));
    CHECK(contains(sup.status_json(), "\"auto\""));
    CHECK(contains(sup.config_json("sleeper"), "\"start_seconds\""));
    st = sup.restart("sleeper", 20s);
    CHECK(st.state == gosuv::State::running && st.pid != pid);
    st = sup.stop("sleeper", 20s);
    CHECK(st.state == gosuv::State::stopped);
    CHECK(st.exit_signal == SIGTERM);
    CHECK(!sup.update("{name: sleeper, command: 'exec sleep 300', start_seconds: 0}"));
    sup.start("sleeper", 20s);
    CHECK(sup.update("{name: sleeper, command: 'exec sleep 301', start_seconds: 0}"));
    sup.remove("sleeper");
    EXPECT_ERROR(sup.status("sleeper"), GOSUV_RESULT_NOT_FOUND);
    const std::string report = sup.reload_json("- {name: auto, command: 'exec sleep 300', "
                                               "start_auto: true, start_seconds: 0}\n"
                                               "- {name: added, command: 'exec sleep 300'}\n");
    CHECK(contains(report, "\"added\":[\"added\"]"));
    const gosuv::ReloadReport typed =
        sup.reload("- {name: auto, command: 'exec sleep 300', start_auto: true, "
                   "start_seconds: 0}\n");
    CHECK(typed.removed == std::vector<std::string>{"added"});
    CHECK(typed.unchanged == std::vector<std::string>{"auto"});
    CHECK(typed.added.empty() && typed.changed.empty());
    CHECK(sup.names() == std::vector<std::string>{"auto"});
}

// Reads from `fd` until `needle` arrived (at most 20 s).
static bool read_until(int fd, const std::string &needle) {
    std::string got;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (std::chrono::steady_clock::now() < deadline) {
        pollfd p{fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            char buf[256];
            const ssize_t n = read(fd, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            got.append(buf, static_cast<std::size_t>(n));
            if (contains(got, needle)) {
                return true;
            }
        }
    }
    std::printf("read so far: %s\n", got.c_str());
    return false;
}

static void program_builder(const std::string &dir) {
    section("programs without YAML");
    static_assert(std::is_nothrow_move_constructible_v<gosuv::Program>);
    static_assert(!std::is_copy_constructible_v<gosuv::Program>);
    gosuv::Supervisor sup(options_in(dir));

    // Quotes, newlines and YAML-looking text stay plain values.
    gosuv::Program quoted("quoted");
    quoted
        .set_argv({"sh", "-c", "echo \"it's here: $B\"; exec sleep 300"})
        .set_env({"A=1"})
        .add_env("B", "x'y stop_signal: KILL")
        .set_ready_log("it's here", 20s)
        .set_stop_signal(SIGINT)
        .set_start_limit(5, 500us)
        .set_exit_codes({0, 2});
    EXPECT_ERROR(gosuv::Program("x").set_exit_codes({}), GOSUV_RESULT_CONFIG);
    sup.add(quoted);
    gosuv::ProgramStatus st = sup.start("quoted", 20s);
    CHECK(st.state == gosuv::State::running);
    CHECK(sup.tail("quoted", gosuv::Stream::out) == "it's here: x'y stop_signal: KILL\n");
    const std::string config = sup.config_json("quoted");
    CHECK(contains(config, "\"stop_signal\":\"INT\""));
    const gosuv::ProgramInfo info = sup.info("quoted");
    CHECK(info.state == gosuv::State::running && info.pid == st.pid);
    CHECK(info.ready && info.ready_at.has_value());
    CHECK(info.ownership != gosuv::Ownership::none);
    CHECK(!info.health.has_value());
    CHECK(info.waiting_for == 0);

    // Bad values: an exception naming the key; the builder keeps what it had.
    gosuv::Program bad("bad");
    std::string m = EXPECT_ERROR(bad.set_stop_signal(SIGSTOP), GOSUV_RESULT_CONFIG);
    CHECK(contains(m, "stop_signal"));
    EXPECT_ERROR(bad.set_start_seconds(-1s), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT_ERROR(bad.set_ready_tcp("127.0.0.1:1", 1us, std::chrono::hours::max()),
                 GOSUV_RESULT_CONFIG);
    EXPECT_ERROR(bad.set_argv(std::vector<std::string>{}), GOSUV_RESULT_CONFIG);
    EXPECT_ERROR(bad.set_argv({std::string_view("a\0b", 3)}), GOSUV_RESULT_INVALID_ARGUMENT);
    m = EXPECT_ERROR(sup.add(bad), GOSUV_RESULT_CONFIG); // no command yet
    CHECK(contains(m, "command"));
    EXPECT_ERROR(gosuv::Program("not a name!"), GOSUV_RESULT_CONFIG);
    gosuv::Program moved(std::move(bad));
    CHECK(!bad && moved); // NOLINT: a moved-from builder is empty, by design
    EXPECT_ERROR(bad.set_start_auto(true), GOSUV_RESULT_NULL_ARGUMENT);

    // stdin through a pipe; stdout also copied to a descriptor of ours.
    int fds[2];
    CHECK(pipe(fds) == 0);
    gosuv::Program cat("cat");
    cat.set_argv({"cat"})
        .set_start_seconds(0s)
        .set_autorestart(gosuv::Autorestart::never)
        .set_stdin(gosuv::StdinMode::pipe)
        .set_output(gosuv::Stream::out, gosuv::Output::tee, fds[1]);
    close(fds[1]); // gosuv holds its own copy
    sup.add(cat);
    sup.start("cat", 20s);
    CHECK(sup.write_stdin("cat", "hello\n", 10s) == 6);
    CHECK(read_until(fds[0], "hello\n"));
    sup.close_stdin("cat");
    st = sup.wait_for("cat", gosuv::State::exited, 20s);
    CHECK(st.exit_code == 0);
    m = EXPECT_ERROR(sup.write_stdin("cat", "late\n"), GOSUV_RESULT_INVALID_ARGUMENT);
    close(fds[0]);

    // Signals go to the program's processes.
    Record lines;
    gosuv::Program trapper("trapper");
    trapper.set_shell_command("trap 'echo got USR1' USR1; echo ready; "
                              "while :; do sleep 0.05; done")
        .set_ready_log("^ready$", 20s);
    sup.add(trapper);
    gosuv::Subscription follower = sup.follow(
        "trapper", gosuv::Stream::out, [&](const gosuv::LogLine &l) { lines.add(l.text); });
    sup.start("trapper", 20s);
    sup.signal("trapper", SIGUSR1);
    CHECK(lines.wait_for("got USR1"));
    sup.stop("trapper", 20s);
    EXPECT_ERROR(sup.signal("trapper", SIGUSR1), GOSUV_RESULT_INVALID_ARGUMENT);

    // Dependencies, discarded output, update and reload from builders.
    gosuv::Program db("db");
    db.set_argv({"sleep", "300"}).set_start_seconds(0s).set_output(gosuv::Stream::out,
                                                                   gosuv::Output::discard);
    gosuv::Program app("app");
    app.set_shell_command("echo app; exec sleep 300").set_start_seconds(0s).add_dependency("db");
    sup.add(db);
    sup.add(app);
    sup.start("app", 20s);
    CHECK(sup.status("db").state == gosuv::State::running);
    CHECK(!sup.update(app));
    app.set_env({"CHANGED=1"});
    CHECK(sup.update(app));
    gosuv::Program extra("extra");
    extra.set_argv({"true"});
    const gosuv::ReloadReport report = sup.reload({db, app, extra});
    CHECK(report.added == std::vector<std::string>{"extra"});
    CHECK((report.removed == std::vector<std::string>{"cat", "quoted", "trapper"}));
    CHECK((report.unchanged == std::vector<std::string>{"app", "db"}));
    CHECK((sup.names() == std::vector<std::string>{"app", "db", "extra"}));
    std::vector<gosuv::Program> only;
    only.push_back(std::move(extra));
    CHECK((sup.reload(only).removed == std::vector<std::string>{"app", "db"}));
    CHECK(sup.names() == std::vector<std::string>{"extra"});
}

static void events_and_logs(const std::string &dir) {
    section("events and log followers");
    Record events, lines, ended_lines;
    {
        gosuv::Supervisor sup(options_in(dir));
        sup.on_event([&](const gosuv::Event &e) { events.add(describe(e)); });
        sup.add("{name: echoer, command: 'printf \"one\\ntw\\0o\\n\"; echo three >&2; "
                "exec sleep 300', start_seconds: 0}");
        gosuv::Subscription out =
            sup.follow("echoer", gosuv::Stream::out, [&](const gosuv::LogLine &l) {
                lines.add(l.program + " " + gosuv::to_string(l.stream) + " " +
                          std::to_string(l.text.size()) + " " + l.text);
            });
        sup.on_log("echoer", gosuv::Stream::err,
                   [&](const gosuv::LogLine &l) { lines.add("err " + l.text); });
        sup.start("echoer", 20s);
        CHECK(events.wait_for("echoer stopped -> starting"));
        CHECK(events.wait_for("echoer starting -> running"));
        CHECK(lines.wait_for("echoer stdout 3 one"));
        CHECK(lines.wait_for(std::string("echoer stdout 4 tw\0o", 20)));
        CHECK(lines.wait_for("err three"));
        CHECK(sup.tail("echoer", gosuv::Stream::out, 1) == std::string("tw\0o\n", 5));
        CHECK(sup.tail("echoer", gosuv::Stream::err) == "three\n");

        // A scoped subscription, once reset, is never called again.
        Record scoped;
        gosuv::Subscription sub =
            sup.subscribe([&](const gosuv::Event &e) { scoped.add(describe(e)); });
        CHECK(static_cast<bool>(sub));
        sup.restart("echoer", 20s);
        CHECK(scoped.wait_for("echoer starting -> running"));
        sub.reset();
        CHECK(!sub);
        const std::size_t seen = scoped.size();
        const std::size_t before = events.size();
        sup.restart("echoer", 20s);
        // running -> stopping -> stopped, stopped -> starting -> running
        CHECK(events.wait_count(before + 4));
        CHECK(scoped.size() == seen);
        out.reset();
        // Leaving the scope frees the supervisor with echoer running: on_event sees it stop.
    }
    CHECK(events.has("echoer running -> stopping"));
    CHECK(events.has("echoer stopping -> stopped"));

    section("a subscription declared before the supervisor sees its shutdown");
    Record early;
    {
        gosuv::Subscription sub;
        gosuv::Supervisor sup(options_in(dir));
        sub = sup.subscribe([&](const gosuv::Event &e) { early.add(describe(e)); });
        sup.add(sleeper);
        sup.start("sleeper", 20s);
    }
    CHECK(early.has("sleeper running -> stopping"));
    CHECK(early.has("sleeper stopping -> stopped"));

    section("shutdown() before a scoped subscription ends");
    Record explicit_shutdown;
    {
        gosuv::Supervisor sup(options_in(dir));
        gosuv::Subscription sub =
            sup.subscribe([&](const gosuv::Event &e) { explicit_shutdown.add(describe(e)); });
        sup.add(sleeper);
        sup.start("sleeper", 20s);
        sup.shutdown();
        CHECK(explicit_shutdown.wait_for("sleeper stopping -> stopped"));
    }
}

static void throwing_callbacks(const std::string &dir) {
    section("callbacks that throw");
    struct Caught {
        std::string where, what;
    };
    std::mutex lock;
    std::vector<Caught> caught;
    Record signal;
    gosuv::CallbackErrorHandler previous =
        gosuv::set_callback_error_handler([&](std::exception_ptr e, std::string_view where) {
            Caught c{std::string(where), "not a std::exception"};
            try {
                std::rethrow_exception(e);
            } catch (const std::exception &x) {
                c.what = x.what();
            } catch (...) {
            }
            {
                std::lock_guard<std::mutex> g(lock);
                caught.push_back(c);
            }
            signal.add(c.where + ": " + c.what);
        });
    CHECK(!previous); // the default
    Record after;
    std::atomic<bool> default_handler{false};
    {
        gosuv::Supervisor sup(options_in(dir));
        sup.on_event([&](const gosuv::Event &e) {
            if (e.to == gosuv::State::starting) {
                throw std::runtime_error(default_handler ? "boom for the default handler"
                                                         : "boom from an event callback");
            }
            after.add(describe(e));
        });
        sup.add("{name: talker, command: 'echo hi; exec sleep 300', start_seconds: 0}");
        gosuv::Subscription sub =
            sup.follow("talker", gosuv::Stream::out, [](const gosuv::LogLine &) { throw 42; });
        sup.start("talker", 20s);
        CHECK(signal.wait_for("event callback: boom from an event callback"));
        CHECK(signal.wait_for("log callback of 'talker' (stdout): not a std::exception"));
        // The subscription lives on: later events still arrive.
        CHECK(after.wait_for("talker starting -> running"));

        // A handler that throws itself: written to stderr, nothing escapes.
        gosuv::set_callback_error_handler(
            [](std::exception_ptr, std::string_view) { throw std::runtime_error("handler"); });
        sup.stop("talker", 20s);
        sup.start("talker", 20s);
        CHECK(after.wait_for("talker stopping -> stopped"));

        // The default handler writes a line to standard error (the test harness checks it).
        gosuv::set_callback_error_handler(nullptr);
        default_handler = true;
        const std::size_t seen = after.size();
        sup.restart("talker", 20s);
        CHECK(after.wait_count(seen + 3)); // running -> stopping -> stopped, starting -> running
    }
    std::fflush(stderr);
}

static void moves(const std::string &dir) {
    section("moves");
    static_assert(std::is_nothrow_move_constructible_v<gosuv::Supervisor>);
    static_assert(std::is_nothrow_move_assignable_v<gosuv::Supervisor>);
    static_assert(std::is_nothrow_move_constructible_v<gosuv::Subscription>);
    static_assert(std::is_nothrow_move_assignable_v<gosuv::Subscription>);
    static_assert(!std::is_copy_constructible_v<gosuv::Supervisor>);
    static_assert(!std::is_copy_assignable_v<gosuv::Subscription>);

    Record events;
    gosuv::Supervisor a(options_in(dir));
    a.on_event([&](const gosuv::Event &e) { events.add(describe(e)); });
    a.add(sleeper);
    const std::uint32_t pid = a.start("sleeper", 20s).pid;
    gosuv::Supervisor b(std::move(a));
    CHECK(!a); // NOLINT: a moved-from handle is empty, by design
    CHECK(static_cast<bool>(b));
    std::string m = EXPECT_ERROR(a.status("sleeper"), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(!m.empty());
    EXPECT_ERROR(a.on_event([](const gosuv::Event &) {}), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(b.status("sleeper").pid == pid);

    gosuv::Subscription s1 = b.subscribe([](const gosuv::Event &) {});
    gosuv::Subscription s2(std::move(s1));
    CHECK(!s1 && s2);
    s1 = std::move(s2);
    CHECK(s1 && !s2);

    // Assigning over a live supervisor frees it: its program stops, its subscriber sees it.
    b = gosuv::Supervisor(options_in(dir));
    CHECK(events.has("sleeper stopping -> stopped"));
    CHECK(kill(static_cast<pid_t>(pid), 0) != 0);
    b.add(sleeper);
    CHECK(b.status("sleeper").state == gosuv::State::stopped);
    s1.reset();

    // Adopting a C handle.
    gosuv_supervisor *raw = nullptr;
    const gosuv::Options o = options_in(dir);
    const gosuv_supervisor_options c = o.c_options();
    CHECK(gosuv_supervisor_new(&c, &raw) == GOSUV_RESULT_OK);
    gosuv::Supervisor adopted = gosuv::Supervisor::adopt(raw);
    CHECK(adopted.get() == raw);
    CHECK(adopted.status_json() == "[]");
    gosuv::Supervisor none = gosuv::Supervisor::adopt(nullptr);
    CHECK(!none && none.get() == nullptr);

    // A callback that refers to its supervisor through ref() keeps working when the
    // Supervisor object moves (returned, pushed into a vector).
    Record seen;
    auto make = [&] {
        gosuv::Supervisor s(options_in(dir));
        s.add(sleeper);
        s.on_event([r = s.ref(), &seen](const gosuv::Event &e) {
            seen.add(describe(e) + " with " + std::to_string(r.names().size()));
        });
        return s;
    };
    std::vector<gosuv::Supervisor> many;
    many.push_back(make());
    many.push_back(make());
    many[0].start("sleeper", 20s);
    CHECK(seen.wait_for("sleeper starting -> running with 1"));
    CHECK(gosuv::SupervisorRef(many[1]).get() == many[1].get());
    many.clear();
}

// Waits longer than one wait of gosuv (a day; here lowered to 50 ms) are made of several,
// up to the time asked: neither cut short nor turned into waiting for ever.
static void long_waits(const std::string &dir) {
    section("waits longer than one chunk");
    gosuv::detail::max_wait_chunk_ms = 50;
    gosuv::Supervisor sup(options_in(dir));
    sup.add(sleeper);
    sup.add("{name: slow, command: 'sleep 0.3; echo up; exec sleep 300', start_seconds: 0, "
            "ready: {log: '^up$'}}");
    auto t0 = std::chrono::steady_clock::now();
    EXPECT_ERROR(sup.wait("sleeper", 400ms), GOSUV_RESULT_TIMEOUT);
    EXPECT_ERROR(sup.wait_for("sleeper", gosuv::State::running, 300ms), GOSUV_RESULT_TIMEOUT);
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(took >= 700ms && took < 10s);
    // A start whose readiness comes after several chunks.
    CHECK(sup.start("slow", 20s).state == gosuv::State::running);
    CHECK(sup.restart("slow", 20s).state == gosuv::State::running);
    gosuv::detail::max_wait_chunk_ms = gosuv::max_timeout_ms;
}

// The handler of callback exceptions, and the subscriptions a supervisor keeps.
static void handler_and_owned(const std::string &dir) {
    section("callback error handler and owned subscriptions");
    // A handler whose copy throws: setting the next one fails and changes nothing.
    struct ThrowOnCopy {
        std::shared_ptr<std::atomic<bool>> armed;
        explicit ThrowOnCopy(std::shared_ptr<std::atomic<bool>> a) : armed(std::move(a)) {}
        ThrowOnCopy(ThrowOnCopy &&) = default;
        ThrowOnCopy(const ThrowOnCopy &o) : armed(o.armed) {
            if (*armed) {
                throw std::runtime_error("copy");
            }
        }
        void operator()(std::exception_ptr, std::string_view) const {}
    };
    auto armed = std::make_shared<std::atomic<bool>>(false);
    gosuv::set_callback_error_handler(ThrowOnCopy(armed));
    *armed = true;
    bool threw = false;
    try {
        gosuv::set_callback_error_handler([](std::exception_ptr, std::string_view) {});
    } catch (const std::runtime_error &) {
        threw = true;
    }
    CHECK(threw);
    *armed = false;
    gosuv::CallbackErrorHandler was = gosuv::set_callback_error_handler(nullptr);
    CHECK(was.target<ThrowOnCopy>() != nullptr);

    // on_log subscriptions of removed programs are let go of.
    gosuv::Supervisor sup(options_in(dir));
    for (int i = 0; i < 5; i++) {
        Record gone;
        struct Tell {
            Record *gone;
            ~Tell() {
                if (gone != nullptr) {
                    gone->add("gone");
                }
            }
            explicit Tell(Record *g) : gone(g) {}
            Tell(Tell &&o) noexcept : gone(std::exchange(o.gone, nullptr)) {}
        };
        sup.add(sleeper);
        sup.on_log("sleeper", gosuv::Stream::out,
                   [t = Tell(&gone)](const gosuv::LogLine &) { (void)t; });
        sup.remove("sleeper");
        CHECK(gone.wait_for("gone"));
    }
    sup.on_event([](const gosuv::Event &) {});
    CHECK(sup.owned_subscriptions() == 1);
}

// Deleting a Supervisor inside one of its callbacks: its other subscriptions get every event
// of the shutdown, and have finished, before the delete returns.
static void delete_inside_a_callback(const std::string &dir) {
    section("a supervisor deleted inside a callback");
    auto *sup = new gosuv::Supervisor(options_in(dir));
    Record slow, done;
    std::atomic<bool> deleted{false};
    std::atomic<int> after_delete{0};
    std::mutex lock;
    std::condition_variable changed;
    bool main_done = false;
    sup->add(sleeper);
    // A slow subscriber that uses the supervisor in each call.
    sup->on_event([&, sup](const gosuv::Event &e) {
        std::this_thread::sleep_for(50ms);
        if (deleted) {
            after_delete++;
            return;
        }
        (void)sup->names(); // the shutdown removes the programs: the list may be empty
        slow.add(describe(e));
    });
    sup->on_event([&](const gosuv::Event &e) {
        if (e.to != gosuv::State::running) {
            return;
        }
        {
            // The main thread may still be inside start().
            std::unique_lock<std::mutex> g(lock);
            changed.wait_for(g, 20s, [&] { return main_done; });
        }
        delete sup;
        const std::size_t seen = slow.size();
        deleted = true;
        done.add("deleted after " + std::to_string(seen) + " slow events");
    });
    sup->start("sleeper", 0s);
    {
        std::lock_guard<std::mutex> g(lock);
        main_done = true;
    }
    changed.notify_all();
    CHECK(done.wait_count(1));
    // stopped -> starting -> running -> stopping -> stopped, all seen before the delete
    // returned, none after.
    CHECK(done.has("deleted after 4 slow events"));
    CHECK(slow.has("sleeper stopping -> stopped"));
    CHECK(after_delete == 0);
    if (!done.has("deleted after 4 slow events")) {
        for (const auto &i : done.items()) {
            std::printf("  %s\n", i.c_str());
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: wrapper DIR\n");
        return 2;
    }
    const std::string dir = argv[1];
    try {
        defaults_and_names();
        chrono_extremes(dir);
        errors_as_exceptions(dir);
        start_wait_stop(dir);
        program_builder(dir);
        events_and_logs(dir);
        throwing_callbacks(dir);
        moves(dir);
        delete_inside_a_callback(dir);
        long_waits(dir);
        handler_and_owned(dir);
    } catch (const gosuv::Error &e) {
        failed++;
        std::printf("FAILED: uncaught %s: %s\n", e.code_name(), e.what());
    } catch (const std::exception &e) {
        failed++;
        std::printf("FAILED: uncaught %s\n", e.what());
    }
    std::printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
