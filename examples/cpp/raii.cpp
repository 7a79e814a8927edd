// raii: a C++ program that supervises one helper through gosuv.hpp, the C++ wrapper that
// ships in include/, and waits for its output.
//
//   ./raii [DIR]        DIR: the helper's working directory (default: a new one in /tmp)
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <gosuv.hpp>

using namespace std::chrono_literals;

// Prints a whole line in one write, so lines from gosuv's threads and main's never mix.
static void say(const std::string &line) { std::cout << line + "\n" << std::flush; }

int main(int argc, char **argv) {
    std::string dir;
    if (argc > 1) {
        dir = argv[1];
    } else {
        char tmp[] = "/tmp/gosuv-example-XXXXXX";
        if (mkdtemp(tmp) == nullptr) {
            std::perror("mkdtemp");
            return 1;
        }
        dir = tmp;
    }

    // What the callbacks use is declared before the supervisor, so it outlives it.
    std::mutex lock;
    std::condition_variable changed;
    std::vector<std::string> lines;
    int events = 0;

    try {
        gosuv::Options options; // the library's defaults
        options.base_dir = dir;
        gosuv::Supervisor sup(options);
        // For the supervisor's whole life, its shutdown included.
        sup.on_event([&](const gosuv::Event &ev) {
            std::lock_guard<std::mutex> g(lock);
            events++;
            say("event: " + ev.program + " " + gosuv::to_string(ev.from) + " -> " +
                gosuv::to_string(ev.to));
        });

        gosuv::Program greeter("greeter"); // or sup.add() with the YAML of programs.yml
        greeter.set_shell_command("echo hello from $WHO; exec sleep 300")
            .add_env("WHO", "cpp")
            .set_start_seconds(1s);
        sup.add(greeter);
        // Until `follower` goes out of scope.
        gosuv::Subscription follower =
            sup.follow("greeter", gosuv::Stream::out, [&](const gosuv::LogLine &line) {
                std::lock_guard<std::mutex> g(lock);
                lines.push_back(line.text);
                changed.notify_all();
            });

        // Start without waiting, then wait until it is running.
        sup.start("greeter", 0ms);
        gosuv::ProgramStatus st = sup.wait("greeter", 20s);
        say(std::string("greeter is ") + gosuv::to_string(st.state));
        {
            std::unique_lock<std::mutex> g(lock);
            if (!changed.wait_for(g, 20s, [&] { return !lines.empty(); })) {
                say("no output in time");
                return 1;
            }
            say("greeter said: " + lines.front());
        }
        std::cout << "tail: " + sup.tail("greeter", gosuv::Stream::out, 1) << std::flush;

        try {
            sup.add("{name: greeter, command: 'true'}");
        } catch (const gosuv::Error &e) {
            say(std::string("adding it twice: ") + e.code_name() + ": " + e.what());
        }

        st = sup.restart("greeter", 20s);
        say(std::string("after restart: ") + gosuv::to_string(st.state));
        st = sup.stop("greeter", 20s);
        say(std::string("after stop: ") + gosuv::to_string(st.state));
        sup.start("greeter", 20s);
        say("status: " + sup.status_json());
        // Leaving the scope ends `follower`, then frees the supervisor: greeter is stopped,
        // and on_event's callback sees it go (running -> stopping -> stopped).
    } catch (const gosuv::Error &e) {
        say(std::string("error: ") + e.code_name() + ": " + e.what());
        return 1;
    }
    say("events seen: " + std::to_string(events));
    say("done");
    return 0;
}
