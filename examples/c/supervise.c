/*
 * supervise: a small C service that embeds libgosuv to supervise two workers and prints
 * what happens to them.
 *
 *   ./supervise [DIR]
 *
 * DIR is the working directory of the workers; their logs go to DIR/logs (default: a new
 * directory under /tmp, which is kept).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gosuv.h>

/* What the callbacks share with main: they run on gosuv's threads. */
struct shared {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int ticks;     /* lines the ticker printed */
    int finalized; /* finalizers that ran */
};

static struct shared shared = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

/* Prints a failed call's code and message; returns whether `r` is a success. */
static int ok(gosuv_result r, const char *what) {
    char msg[512];
    if (r == GOSUV_RESULT_OK) {
        return 1;
    }
    gosuv_error_message(r, msg, sizeof msg);
    printf("%s failed: %s: %s\n", what, gosuv_result_name(r), msg);
    fflush(stdout);
    return 0;
}

static void on_event(void *userdata, const gosuv_event *ev) {
    char how[64] = "";
    (void)userdata;
    if (ev->has_exit_code) {
        snprintf(how, sizeof how, " (exit code %d)", (int)ev->exit_code);
    } else if (ev->exit_signal != 0) {
        snprintf(how, sizeof how, " (signal %d)", (int)ev->exit_signal);
    }
    /* One printf per line, so lines from gosuv's threads and main's never mix. */
    printf("event: %s %s -> %s%s\n", ev->program, gosuv_state_name(ev->from),
           gosuv_state_name(ev->to), how);
    fflush(stdout);
}

static void on_line(void *userdata, const gosuv_log_line *line) {
    struct shared *s = userdata;
    printf("output: %s: %s\n", line->program, line->text);
    fflush(stdout);
    pthread_mutex_lock(&s->lock);
    s->ticks++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

static void finalize(void *userdata) {
    struct shared *s = userdata;
    pthread_mutex_lock(&s->lock);
    s->finalized++;
    pthread_mutex_unlock(&s->lock);
}

/* Waits until the ticker printed `n` lines, at most `seconds`. */
static int wait_for_ticks(int n, int seconds) {
    struct timespec deadline;
    int r = 0;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&shared.lock);
    while (shared.ticks < n && r != ETIMEDOUT) {
        r = pthread_cond_timedwait(&shared.changed, &shared.lock, &deadline);
    }
    r = shared.ticks >= n;
    pthread_mutex_unlock(&shared.lock);
    return r;
}

static const char *const TICKER =
    "name: ticker\n"
    "command: i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done\n"
    "start_seconds: 1\n";

static const char *const WORKER =
    "name: worker\n"
    "command: [sleep, '300']\n"
    "start_seconds: 1\n"
    "stop_timeout: 5\n";

int main(int argc, char **argv) {
    char tmp[] = "/tmp/gosuv-example-XXXXXX";
    const char *dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    gosuv_supervisor_options options;
    gosuv_supervisor *sup = NULL;
    gosuv_subscription *events = NULL, *lines = NULL;
    gosuv_program_status st;
    gosuv_process_stats stats;
    char tail[256];
    char *json = NULL;
    uint32_t old_pid;
    int failed = 0;

    if (dir == NULL) {
        perror("mkdtemp");
        return 1;
    }
    printf("libgosuv %s, working in %s\n", gosuv_version(), dir);
    if (!ok(gosuv_supervisor_options_init(&options, sizeof options), "options_init")) {
        return 1;
    }
    options.base_dir = dir; /* the rest as default: programs die with this process */
    if (!ok(gosuv_supervisor_new(&options, &sup), "gosuv_supervisor_new")) {
        return 1;
    }
    if (!ok(gosuv_supervisor_on_event(sup, on_event, &shared, finalize, &events), "on_event") ||
        !ok(gosuv_supervisor_add(sup, TICKER), "add ticker") ||
        !ok(gosuv_supervisor_add(sup, WORKER), "add worker") ||
        !ok(gosuv_supervisor_on_log(sup, "ticker", GOSUV_STREAM_STDOUT, on_line, &shared,
                                    finalize, &lines),
            "on_log")) {
        gosuv_supervisor_free(sup);
        gosuv_subscription_free(events);
        return 1;
    }

    /* Start both and wait until each has been up for its start_seconds. */
    if (ok(gosuv_supervisor_start(sup, "ticker", 20000, &st), "start ticker")) {
        printf("ticker is %s\n", gosuv_state_name(st.state));
    } else {
        failed = 1;
    }
    if (ok(gosuv_supervisor_start(sup, "worker", 20000, &st), "start worker")) {
        printf("worker is %s\n", gosuv_state_name(st.state));
    } else {
        failed = 1;
    }

    if (wait_for_ticks(3, 20)) {
        printf("the ticker printed 3 lines\n");
    } else {
        printf("the ticker did not print 3 lines in time\n");
        failed = 1;
    }
    if (ok(gosuv_supervisor_tail(sup, "ticker", GOSUV_STREAM_STDOUT, 1, tail, sizeof tail, NULL),
           "tail")) {
        printf("last line: %s", tail);
    }

    /* Restart the worker: a new process. */
    gosuv_supervisor_status(sup, "worker", &st);
    old_pid = st.pid;
    if (ok(gosuv_supervisor_restart(sup, "worker", 20000, &st), "restart worker")) {
        printf("worker restarted: %s, %s pid\n", gosuv_state_name(st.state),
               st.pid != old_pid && st.pid != 0 ? "new" : "SAME");
    }
    if (ok(gosuv_supervisor_stats(sup, "worker", &stats), "stats")) {
        printf("worker runs %u process(es)\n", stats.processes);
    }
    if (ok(gosuv_supervisor_status_json(sup, &json), "status_json")) {
        printf("status: %s\n", json);
        gosuv_string_free(json);
    }

    /* A failure comes back as a code and a message. */
    ok(gosuv_supervisor_start(sup, "nosuch", 1000, NULL), "start nosuch");

    /* Stop the ticker; freeing the supervisor stops the worker. */
    if (ok(gosuv_supervisor_stop(sup, "ticker", 20000, &st), "stop ticker")) {
        printf("ticker is %s\n", gosuv_state_name(st.state));
    }
    gosuv_subscription_free(lines);
    gosuv_supervisor_free(sup);
    gosuv_subscription_free(events);
    printf("finalizers run: %d\n", shared.finalized);
    puts(failed ? "failed" : "done");
    return failed;
}
