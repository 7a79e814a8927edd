// raii: a C++ program that supervises one helper through the gosuv::Supervisor RAII
// wrapper (gosuv.hpp) and waits for its output.
//
//   ./raii [DIR]        DIR: the helper's working directory (default: a new one in /tmp)
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "gosuv.hpp"

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

    std::mutex lock;
    std::condition_variable changed;
    std::vector<std::string> lines;
    int events = 0;

    try {
        gosuv::Supervisor sup(dir);
        gosuv::Subscription on_event = sup.on_event([&](const gosuv_event &ev) {
            std::lock_guard<std::mutex> g(lock);
            events++;
            say(std::string("event: ") + ev.program + " " + gosuv_state_name(ev.from) + " -> " +
                gosuv_state_name(ev.to));
        });

        sup.add("name: greeter\n"
                "command: echo hello from $WHO; exec sleep 300\n"
                "environ: [WHO=cpp]\n"
                "start_seconds: 1\n");
        gosuv::Subscription on_log =
            sup.on_log("greeter", GOSUV_STREAM_STDOUT, [&](const std::string &line) {
                std::lock_guard<std::mutex> g(lock);
                lines.push_back(line);
                changed.notify_all();
            });

        // Start without waiting, then wait until it is running.
        sup.start("greeter", 0ms);
        gosuv_program_status st = sup.wait("greeter", 20s);
        say(std::string("greeter is ") + gosuv_state_name(st.state));
        {
            std::unique_lock<std::mutex> g(lock);
            if (!changed.wait_for(g, 20s, [&] { return !lines.empty(); })) {
                say("no output in time");
                return 1;
            }
            say("greeter said: " + lines.front());
        }
        std::cout << "tail: " + sup.tail("greeter", GOSUV_STREAM_STDOUT, 1) << std::flush;

        try {
            sup.add("name: greeter\ncommand: 'true'\n");
        } catch (const gosuv::Error &e) {
            say(std::string("adding it twice: ") + e.code_name() + ": " + e.what());
        }

        st = sup.restart("greeter", 20s);
        say(std::string("after restart: ") + gosuv_state_name(st.state));
        st = sup.stop("greeter", 20s);
        say(std::string("after stop: ") + gosuv_state_name(st.state));
        say("status: " + sup.status_json());
        // Leaving the scope frees the subscriptions, then the supervisor.
    } catch (const gosuv::Error &e) {
        say(std::string("error: ") + e.code_name() + ": " + e.what());
        return 1;
    }
    say("events seen: " + std::to_string(events));
    say("done");
    return 0;
}
