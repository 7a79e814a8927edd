/*
 * The C API's contract, seen from C: NULL and bad arguments, result codes and messages,
 * out-parameters, ownership of strings and subscriptions, callbacks and their threads.
 * Run by tests/c_examples.rs (also under valgrind). Usage: api DIR (an empty directory).
 * Prints one line per check and "N passed, N failed"; exits 1 if any failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gosuv.h>

#include "check.h"

/* A program's output, once it holds `needle` (polls with a 20 s deadline). */
static int tail_contains(gosuv_supervisor *sup, const char *name, gosuv_stream stream,
                         const char *needle) {
    char buf[4096];
    double deadline = now() + 20;
    struct timespec pause = {0, 10 * 1000 * 1000};
    while (now() < deadline) {
        if (gosuv_supervisor_tail(sup, name, stream, 0, buf, sizeof buf, NULL) ==
                GOSUV_RESULT_OK &&
            strstr(buf, needle) != NULL) {
            return 1;
        }
        nanosleep(&pause, NULL);
    }
    return 0;
}

/* What callbacks record, behind a lock: they run on gosuv's threads. */
struct record {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int events, running_events, lines, finalized;
    int free_self;              /* free the subscription (or supervisor) from the callback */
    gosuv_subscription *sub;    /* for free_self == 1 */
    gosuv_supervisor *sup;      /* for free_self == 2 */
    int main_done;              /* for free_self == 2: the main thread no longer uses `sup` */
    int stopped_events;         /* events whose `to` is stopped */
    int slow;                   /* each event takes this callback 50 ms */
    struct record *other;       /* for free_self == 2: another subscription's record */
    int other_finalized_at_free, other_stopped_at_free; /* read when the free returned */
    char last_line[256];
    pthread_t main_thread;
    int on_main_thread;         /* a callback ran on the subscribing thread */
};

static void record_init(struct record *r) {
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->changed, NULL);
    r->main_thread = pthread_self();
}

static void record_destroy(struct record *r) {
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->changed);
}

static int count(struct record *r, const int *field);

static void on_event(void *userdata, const gosuv_event *ev) {
    struct record *r = userdata;
    int free_self;
    pthread_mutex_lock(&r->lock);
    r->events++;
    if (ev->to == GOSUV_STATE_RUNNING) {
        r->running_events++;
    }
    if (ev->to == GOSUV_STATE_STOPPED) {
        r->stopped_events++;
    }
    if (pthread_equal(pthread_self(), r->main_thread)) {
        r->on_main_thread = 1;
    }
    free_self = 0;
    if (ev->to == GOSUV_STATE_RUNNING) {
        free_self = r->free_self;
        r->free_self = 0;
    }
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
    if (r->slow) {
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (free_self == 1) {
        gosuv_subscription_free(r->sub);
    } else if (free_self == 2) {
        /* No other thread may be using the supervisor when it is freed: the main thread
         * may still be inside the call that started the program. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 20;
        pthread_mutex_lock(&r->lock);
        while (!r->main_done &&
               pthread_cond_timedwait(&r->changed, &r->lock, &until) != ETIMEDOUT) {
        }
        pthread_mutex_unlock(&r->lock);
        gosuv_supervisor_free(r->sup);
        if (r->other != NULL) {
            int finalized = count(r->other, &r->other->finalized);
            int stopped = count(r->other, &r->other->stopped_events);
            pthread_mutex_lock(&r->lock);
            r->other_finalized_at_free = finalized;
            r->other_stopped_at_free = stopped;
            pthread_mutex_unlock(&r->lock);
        }
    }
}

static void on_line(void *userdata, const gosuv_log_line *line) {
    struct record *r = userdata;
    pthread_mutex_lock(&r->lock);
    r->lines++;
    snprintf(r->last_line, sizeof r->last_line, "%s", line->text);
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

static void finalize(void *userdata) {
    struct record *r = userdata;
    pthread_mutex_lock(&r->lock);
    r->finalized++;
    pthread_cond_broadcast(&r->changed);
    pthread_mutex_unlock(&r->lock);
}

/* Waits until *field >= n, at most 20 s. */
static int wait_count(struct record *r, const int *field, int n) {
    struct timespec deadline;
    int e = 0, ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&r->lock);
    while (*field < n && e != ETIMEDOUT) {
        e = pthread_cond_timedwait(&r->changed, &r->lock, &deadline);
    }
    ok = *field >= n;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

static int count(struct record *r, const int *field) {
    int n;
    pthread_mutex_lock(&r->lock);
    n = *field;
    pthread_mutex_unlock(&r->lock);
    return n;
}

/* Whether a thread of this process is named `name` (from /proc/self/task/<tid>/comm). */
static int thread_named(const char *name) {
    char path[300], comm[64];
    int found = 0;
    struct dirent *e;
    DIR *tasks = opendir("/proc/self/task");
    if (tasks == NULL) {
        return 0;
    }
    while (!found && (e = readdir(tasks)) != NULL) {
        FILE *f;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fgets(comm, sizeof comm, f) != NULL) {
            comm[strcspn(comm, "\n")] = '\0';
            found = strcmp(comm, name) == 0;
        }
        fclose(f);
    }
    closedir(tasks);
    return found;
}

/* Waits until no thread is named `name`, at most 20 s. A subscription freed from inside
 * its own callback ends its thread just after the finalizer ran. */
static int no_thread_named(const char *name) {
    double deadline = now() + 20;
    struct timespec pause = {0, 10 * 1000 * 1000};
    while (thread_named(name)) {
        if (now() > deadline) {
            return 0;
        }
        nanosleep(&pause, NULL);
    }
    return 1;
}

static gosuv_supervisor *make(const char *dir) {
    gosuv_supervisor_options options;
    gosuv_supervisor *sup = NULL;
    OK(gosuv_supervisor_options_init(&options, sizeof options));
    /* The defaults are the Rust and Python libraries': no subreaper, programs die with us. */
    CHECK(!options.subreaper && options.kill_on_parent_death && options.min_fds == 0);
    options.base_dir = dir;
    OK(gosuv_supervisor_new(&options, &sup));
    return sup;
}

static void test_names_and_messages(void) {
    char small[8];
    size_t n;
    CHECK(strlen(gosuv_version()) > 0);
    CHECK(strcmp(gosuv_result_name(GOSUV_RESULT_NOT_FOUND), "GOSUV_RESULT_NOT_FOUND") == 0);
    CHECK(strcmp(gosuv_result_name(999), "GOSUV_RESULT_UNKNOWN") == 0);
    CHECK(GOSUV_RESULT_INTERNAL == 12);
    CHECK(strcmp(gosuv_result_name(GOSUV_RESULT_INTERNAL), "GOSUV_RESULT_INTERNAL") == 0);
    CHECK(strstr(message(GOSUV_RESULT_INTERNAL), "report") != NULL);
    CHECK(strcmp(gosuv_state_name(GOSUV_STATE_BACKOFF), "backoff") == 0);
    CHECK(strcmp(gosuv_state_name(GOSUV_STATE_WAITING), "waiting") == 0);
    CHECK(strcmp(gosuv_state_name(8), "unknown") == 0);
    /* A code with no failure behind it gets its general meaning. */
    CHECK(strstr(message(GOSUV_RESULT_TIMEOUT), "timed out") != NULL);
    CHECK(strstr(message(999), "not a gosuv_result") != NULL);
    /* snprintf-style: the size query, and a cut that still ends in a NUL. */
    n = gosuv_error_message(GOSUV_RESULT_NOT_FOUND, NULL, 0);
    CHECK(n == strlen(message(GOSUV_RESULT_NOT_FOUND)));
    memset(small, 'x', sizeof small);
    CHECK(gosuv_error_message(GOSUV_RESULT_NOT_FOUND, small, sizeof small) == n);
    CHECK(strlen(small) == sizeof small - 1);
    printf("ok names and messages\n");
}

static void test_null_and_bad_arguments(gosuv_supervisor *sup) {
    gosuv_supervisor *out = (gosuv_supervisor *)&out;
    gosuv_subscription *sub = (gosuv_subscription *)&sub;
    char *json = (char *)&json;
    char buf[16];
    gosuv_program_status st;
    gosuv_process_stats stats;

    EXPECT(gosuv_supervisor_new(NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_NULL_ARGUMENT), "`out`") != NULL);
    EXPECT(gosuv_supervisor_from_yaml(NULL, NULL, &out), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(out == NULL); /* out-pointers are NULL after a failure */
    EXPECT(gosuv_supervisor_from_config_file(NULL, &out), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_add(NULL, "name: x\ncommand: 'true'"), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_NULL_ARGUMENT), "`sup`") != NULL);
    EXPECT(gosuv_supervisor_add(sup, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_update(sup, NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_remove(sup, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_start(sup, NULL, 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_stop(NULL, "x", 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_restart(sup, NULL, 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_wait_for(sup, NULL, 0, 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_wait(sup, NULL, 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_status(sup, "x", NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_status(sup, NULL, &st), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_status_json(sup, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_status_json(NULL, &json), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(json == NULL);
    EXPECT(gosuv_supervisor_config_json(sup, NULL, &json), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_reload(sup, NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_reload_file(NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_tail(sup, "x", 0, 0, NULL, 10, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_tail(sup, "x", 0, 0, buf, 0, NULL), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_program_error(sup, "x", NULL, 1, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_stats(sup, "x", NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_stats(NULL, "x", &stats), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_stats_json(sup, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_shutdown(NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_on_event(sup, NULL, NULL, NULL, &sub), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(sub == NULL);
    EXPECT(gosuv_supervisor_on_event(sup, on_event, NULL, NULL, NULL),
           GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_on_log(sup, NULL, 0, on_line, NULL, NULL, &sub),
           GOSUV_RESULT_NULL_ARGUMENT);
    /* Freeing NULL does nothing. */
    gosuv_string_free(NULL);
    gosuv_subscription_free(NULL);
    gosuv_supervisor_free(NULL);

    /* Not UTF-8, unknown enum values. */
    EXPECT(gosuv_supervisor_status(sup, "\xff\xfe", &st), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "UTF-8") != NULL);
    EXPECT(gosuv_supervisor_wait_for(sup, "x", 42, 0, NULL), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "gosuv_state") != NULL);
    EXPECT(gosuv_supervisor_tail(sup, "x", 5, 0, buf, sizeof buf, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_reload_file(sup, NULL), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "config file") != NULL);
    printf("ok NULL and bad arguments\n");
}

static void test_programs(gosuv_supervisor *sup) {
    gosuv_program_status st;
    gosuv_process_stats stats;
    char buf[64];
    char *json = NULL;
    size_t n = 0;
    bool restarted = false;
    uint32_t pid;

    /* Config errors name the key; YAML errors say so; nothing is added. */
    EXPECT(gosuv_supervisor_add(sup, "name: 'bad name'\ncommand: 'true'\n"), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "name") != NULL);
    EXPECT(gosuv_supervisor_add(sup, "name: x\ncommand: [\n"), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "YAML") != NULL);
    EXPECT(gosuv_supervisor_add(sup, "name: x\ncommand: 'true'\nstart_secs: 1\n"),
           GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "start_secs") != NULL);
    EXPECT(gosuv_supervisor_status(sup, "x", &st), GOSUV_RESULT_NOT_FOUND);
    CHECK(strstr(message(GOSUV_RESULT_NOT_FOUND), "'x'") != NULL);

    /* A program that prints, then waits. JSON is YAML too. */
    OK(gosuv_supervisor_add(sup, "{\"name\": \"echo\", \"start_seconds\": 0, \"command\": "
                                 "\"printf 'one\\\\ntwo\\\\nthree\\\\n'; echo oops >&2; exec sleep 300\"}"));
    EXPECT(gosuv_supervisor_add(sup, "name: echo\ncommand: 'true'\n"), GOSUV_RESULT_EXISTS);
    OK(gosuv_supervisor_status(sup, "echo", &st));
    CHECK(st.state == GOSUV_STATE_STOPPED && st.pid == 0);
    OK(gosuv_supervisor_start(sup, "echo", 20000, &st));
    CHECK(st.state == GOSUV_STATE_RUNNING && st.pid != 0 && st.started_at_ms > 0);
    OK(gosuv_supervisor_wait_for(sup, "echo", GOSUV_STATE_RUNNING, 0, &st));
    CHECK(tail_contains(sup, "echo", GOSUV_STREAM_STDOUT, "three"));
    CHECK(tail_contains(sup, "echo", GOSUV_STREAM_STDERR, "oops"));

    /* tail: line limit, then the buffer cuts from the front. */
    OK(gosuv_supervisor_tail(sup, "echo", GOSUV_STREAM_STDOUT, 2, buf, sizeof buf, &n));
    CHECK(strcmp(buf, "two\nthree\n") == 0 && n == 10);
    OK(gosuv_supervisor_tail(sup, "echo", GOSUV_STREAM_STDOUT, 0, buf, 4, &n));
    CHECK(strcmp(buf, "ee\n") == 0 && n == 3);
    EXPECT(gosuv_supervisor_tail(sup, "nope", GOSUV_STREAM_STDOUT, 0, buf, sizeof buf, &n),
           GOSUV_RESULT_NOT_FOUND);

    OK(gosuv_supervisor_stats(sup, "echo", &stats));
    CHECK(stats.processes >= 1 && stats.rss_bytes > 0);
    OK(gosuv_supervisor_stats_json(sup, &json));
    CHECK(json != NULL && strstr(json, "\"echo\"") != NULL && strstr(json, "rss_bytes") != NULL);
    gosuv_string_free(json);

    OK(gosuv_supervisor_config_json(sup, "echo", &json));
    CHECK(json != NULL && strstr(json, "\"start_seconds\":0") != NULL);
    gosuv_string_free(json);
    OK(gosuv_supervisor_status_json(sup, &json));
    CHECK(json != NULL && strstr(json, "\"state\":\"running\"") != NULL);
    CHECK(json != NULL && (strstr(json, "\"ownership\":\"cgroup\"") != NULL ||
                           strstr(json, "\"ownership\":\"group\"") != NULL));
    gosuv_string_free(json);

    /* Waits: one day at most, refused beyond it by name and bound, with nothing done. */
    OK(gosuv_supervisor_start(sup, "echo", 86400000, &st)); /* running: returns at once */
    pid = st.pid;
    EXPECT(gosuv_supervisor_stop(sup, "echo", 86400001, &st), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "`timeout_ms`") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "86400000") != NULL);
    EXPECT(gosuv_supervisor_restart(sup, "echo", UINT32_MAX, &st),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_start(sup, "echo", UINT32_MAX, &st), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_wait_for(sup, "echo", GOSUV_STATE_STOPPED, UINT32_MAX, &st),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "`timeout_ms`") != NULL);
    OK(gosuv_supervisor_status(sup, "echo", &st));
    CHECK(st.state == GOSUV_STATE_RUNNING && st.pid == pid);

    /* A changed config restarts a running program; an unchanged one does not. */
    OK(gosuv_supervisor_update(sup, "{name: echo, start_seconds: 0, command: 'exec sleep 301'}",
                               &restarted));
    CHECK(restarted);
    OK(gosuv_supervisor_update(sup, "{name: echo, start_seconds: 0, command: 'exec sleep 301'}",
                               &restarted));
    CHECK(!restarted);
    EXPECT(gosuv_supervisor_update(sup, "{name: nope, command: 'true'}", NULL),
           GOSUV_RESULT_NOT_FOUND);

    /* A wait that runs out; the program carries on. */
    OK(gosuv_supervisor_add(sup, "{name: slow, start_seconds: 30, command: [sleep, '300']}"));
    EXPECT(gosuv_supervisor_start(sup, "slow", 100, &st), GOSUV_RESULT_TIMEOUT);
    CHECK(strstr(message(GOSUV_RESULT_TIMEOUT), "starting") != NULL);
    EXPECT(gosuv_supervisor_wait_for(sup, "slow", GOSUV_STATE_RUNNING, 50, &st),
           GOSUV_RESULT_TIMEOUT);
    OK(gosuv_supervisor_stop(sup, "slow", 20000, &st));
    CHECK(st.state == GOSUV_STATE_STOPPED);
    OK(gosuv_supervisor_remove(sup, "slow"));
    EXPECT(gosuv_supervisor_remove(sup, "slow"), GOSUV_RESULT_NOT_FOUND);

    /* A command that cannot run: START_FAILED, and the program keeps the reason. */
    OK(gosuv_supervisor_add(sup, "{name: broken, start_retries: 1, command: [/nonexistent/cmd]}"));
    EXPECT(gosuv_supervisor_start(sup, "broken", 20000, NULL), GOSUV_RESULT_START_FAILED);
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "broken") != NULL);
    OK(gosuv_supervisor_wait_for(sup, "broken", GOSUV_STATE_FATAL, 20000, &st));
    CHECK(st.has_last_error);
    OK(gosuv_supervisor_program_error(sup, "broken", buf, sizeof buf, &n));
    CHECK(n > 0 && strlen(buf) > 0);
    OK(gosuv_supervisor_program_error(sup, "echo", buf, sizeof buf, &n));
    CHECK(n == 0 && buf[0] == '\0');

    /* A program that exits with a code. */
    OK(gosuv_supervisor_add(sup, "{name: quits, start_seconds: 0, autorestart: false, "
                                 "command: 'exit 3'}"));
    OK(gosuv_supervisor_start(sup, "quits", 20000, NULL));
    OK(gosuv_supervisor_wait_for(sup, "quits", GOSUV_STATE_EXITED, 20000, &st));
    CHECK(st.has_exit_code && st.exit_code == 3 && st.pid == 0);
    printf("ok programs\n");
}

static void test_remove_ends_log_subscriptions(gosuv_supervisor *sup) {
    struct record r;
    gosuv_subscription *sub = NULL;
    record_init(&r);
    OK(gosuv_supervisor_on_log(sup, "quits", GOSUV_STREAM_STDERR, on_line, &r, finalize, &sub));
    OK(gosuv_supervisor_remove(sup, "quits"));
    CHECK(wait_count(&r, &r.finalized, 1));
    gosuv_subscription_free(sub);
    CHECK(count(&r, &r.finalized) == 1);
    record_destroy(&r);
    printf("ok removing a program ends its log subscriptions\n");
}

static void *status_loop(void *arg) {
    gosuv_supervisor *sup = arg;
    gosuv_program_status st;
    char *json;
    int i, bad = 0;
    for (i = 0; i < 200; i++) {
        bad += gosuv_supervisor_status(sup, "echo", &st) != GOSUV_RESULT_OK;
        bad += gosuv_supervisor_status(sup, "nope", &st) != GOSUV_RESULT_NOT_FOUND;
        if (gosuv_supervisor_status_json(sup, &json) == GOSUV_RESULT_OK) {
            gosuv_string_free(json);
        } else {
            bad++;
        }
    }
    return (void *)(size_t)bad;
}

static void test_threads(gosuv_supervisor *sup) {
    pthread_t threads[4];
    size_t i, bad = 0;
    void *ret;
    for (i = 0; i < 4; i++) {
        CHECK(pthread_create(&threads[i], NULL, status_loop, sup) == 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(threads[i], &ret);
        bad += (size_t)ret;
    }
    CHECK(bad == 0);
    printf("ok calls from several threads\n");
}

static void test_callbacks(gosuv_supervisor *sup) {
    struct record events, lines, selfish;
    gosuv_subscription *ev_sub = NULL, *line_sub = NULL, *sub = NULL;
    record_init(&events);
    record_init(&lines);
    record_init(&selfish);

    OK(gosuv_supervisor_on_event(sup, on_event, &events, finalize, &ev_sub));
    OK(gosuv_supervisor_on_log(sup, "echo", GOSUV_STREAM_STDOUT, on_line, &lines, finalize,
                               &line_sub));
    /* A failed subscription never calls its finalizer. */
    EXPECT(gosuv_supervisor_on_log(sup, "nope", GOSUV_STREAM_STDOUT, on_line, &lines, finalize,
                                   &sub),
           GOSUV_RESULT_NOT_FOUND);
    CHECK(sub == NULL);

    OK(gosuv_supervisor_update(sup, "{name: echo, start_seconds: 0, "
                                    "command: 'echo first; echo second; exec sleep 302'}",
                               NULL));
    CHECK(wait_count(&events, &events.running_events, 1));
    CHECK(wait_count(&lines, &lines.lines, 2));
    pthread_mutex_lock(&lines.lock);
    CHECK(strcmp(lines.last_line, "second") == 0);
    pthread_mutex_unlock(&lines.lock);
    CHECK(!count(&events, &events.on_main_thread));

    gosuv_subscription_free(line_sub);
    CHECK(count(&lines, &lines.finalized) == 1);

    /* A subscription freed from inside its own callback. */
    selfish.free_self = 1;
    OK(gosuv_supervisor_on_event(sup, on_event, &selfish, finalize, &selfish.sub));
    OK(gosuv_supervisor_restart(sup, "echo", 20000, NULL));
    CHECK(wait_count(&selfish, &selfish.finalized, 1));
    CHECK(count(&selfish, &selfish.running_events) == 1);

    /* The event subscription outlives the supervisor: freeing the supervisor delivers the
     * shutdown's events, ends it and runs its finalizer. */
    gosuv_supervisor_free(sup);
    CHECK(count(&events, &events.finalized) == 1);
    CHECK(count(&events, &events.events) >= 4);
    gosuv_subscription_free(ev_sub);
    CHECK(count(&events, &events.finalized) == 1);
    /* Every subscription thread was joined, and the supervisor's runtime is gone. */
    CHECK(!thread_named("gosuv-events") && !thread_named("gosuv-log"));
    CHECK(!thread_named("gosuv-worker"));
    record_destroy(&events);
    record_destroy(&lines);
    record_destroy(&selfish);
    printf("ok callbacks\n");
}

static void test_free_from_callback(const char *dir) {
    struct record r, slow;
    gosuv_subscription *sub = NULL, *slow_sub = NULL;
    gosuv_supervisor *sup = make(dir);
    record_init(&r);
    record_init(&slow);
    r.free_self = 2;
    r.sup = sup;
    r.other = &slow;
    slow.slow = 1;
    OK(gosuv_supervisor_on_event(sup, on_event, &r, finalize, &sub));
    /* Another subscription, slower than the shutdown: freeing the supervisor from the first
     * callback still delivers the shutdown's events to it and waits for its finalizer. */
    OK(gosuv_supervisor_on_event(sup, on_event, &slow, finalize, &slow_sub));
    OK(gosuv_supervisor_add(sup, "{name: brief, start_seconds: 0, command: [sleep, '300']}"));
    OK(gosuv_supervisor_start(sup, "brief", 0, NULL));
    /* The callback frees the supervisor on `running` (once this thread is done with it);
     * the subscription then ends. */
    pthread_mutex_lock(&r.lock);
    r.main_done = 1;
    pthread_cond_broadcast(&r.changed);
    pthread_mutex_unlock(&r.lock);
    CHECK(wait_count(&r, &r.finalized, 1));
    CHECK(count(&r, &r.other_finalized_at_free) == 1);
    CHECK(count(&r, &r.other_stopped_at_free) == 1);
    CHECK(count(&slow, &slow.events) == 4);
    gosuv_subscription_free(sub);
    gosuv_subscription_free(slow_sub);
    CHECK(count(&slow, &slow.finalized) == 1);
    CHECK(no_thread_named("gosuv-events"));
    CHECK(!thread_named("gosuv-worker"));
    record_destroy(&r);
    record_destroy(&slow);
    printf("ok supervisor freed from a callback\n");
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return 0;
    }
    fputs(text, f);
    return fclose(f) == 0;
}

static void test_yaml_and_files(const char *dir) {
    char path[1024], programs[1024], *report = NULL;
    gosuv_supervisor *sup = NULL;
    gosuv_program_status st;
    gosuv_supervisor_options options;
    OK(gosuv_supervisor_options_init(&options, sizeof options));
    options.base_dir = dir;
    options.log_dir = "yaml-logs";

    /* Every error of a programs text, with its line. */
    EXPECT(gosuv_supervisor_from_yaml("- name: a\n  command: 'true'\n- name: a\n  command: x\n"
                                      "- name: b\n",
                                      &options, &sup),
           GOSUV_RESULT_CONFIG);
    CHECK(sup == NULL);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "duplicate") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "line 3") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "command") != NULL);

    OK(gosuv_supervisor_from_yaml("- {name: a, start_seconds: 0, command: [sleep, '300']}\n"
                                  "- {name: b, start_auto: true, start_seconds: 0, "
                                  "command: [sleep, '300']}\n",
                                  &options, &sup));
    OK(gosuv_supervisor_wait_for(sup, "b", GOSUV_STATE_RUNNING, 20000, &st));
    OK(gosuv_supervisor_status(sup, "a", &st));
    CHECK(st.state == GOSUV_STATE_STOPPED);
    OK(gosuv_supervisor_reload(sup, "- {name: b, start_auto: true, start_seconds: 0, "
                                    "command: [sleep, '300']}\n"
                                    "- {name: c, command: 'true'}\n",
                               &report));
    CHECK(report != NULL &&
          strcmp(report, "{\"added\":[\"c\"],\"changed\":[],\"removed\":[\"a\"]}") == 0);
    gosuv_string_free(report);
    EXPECT(gosuv_supervisor_reload(sup, "- {name: d}\n", &report), GOSUV_RESULT_CONFIG);
    CHECK(report == NULL);
    OK(gosuv_supervisor_status(sup, "c", &st)); /* a bad reload changed nothing */

    /* After shutdown: no programs are left, and changes are refused. */
    OK(gosuv_supervisor_shutdown(sup));
    EXPECT(gosuv_supervisor_status(sup, "b", &st), GOSUV_RESULT_NOT_FOUND);
    OK(gosuv_supervisor_status_json(sup, &report));
    CHECK(report != NULL && strcmp(report, "[]") == 0);
    gosuv_string_free(report);
    EXPECT(gosuv_supervisor_add(sup, "{name: e, command: 'true'}"), GOSUV_RESULT_SHUTTING_DOWN);
    gosuv_supervisor_free(sup);
    sup = NULL;

    /* A config.yml and its programs file; reload re-reads the programs file. */
    snprintf(path, sizeof path, "%s/config.yml", dir);
    snprintf(programs, sizeof programs, "%s/progs.yml", dir);
    CHECK(write_file(path, "include: progs.yml\nserver:\n  log:\n    logpath: file-logs\n"));
    CHECK(write_file(programs, "- {name: f1, start_auto: true, start_seconds: 0, "
                               "command: [sleep, '300']}\n"));
    OK(gosuv_supervisor_from_config_file(path, &sup));
    OK(gosuv_supervisor_wait_for(sup, "f1", GOSUV_STATE_RUNNING, 20000, &st));
    CHECK(write_file(programs, "- {name: f2, command: 'true'}\n"));
    OK(gosuv_supervisor_reload_file(sup, &report));
    CHECK(report != NULL &&
          strcmp(report, "{\"added\":[\"f2\"],\"changed\":[],\"removed\":[\"f1\"]}") == 0);
    gosuv_string_free(report);
    CHECK(write_file(programs, "- {name: f2, command: 'true', bogus: 1}\n"));
    EXPECT(gosuv_supervisor_reload_file(sup, NULL), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "progs.yml:1") != NULL);
    gosuv_supervisor_free(sup);

    snprintf(path, sizeof path, "%s/missing.yml", dir);
    EXPECT(gosuv_supervisor_from_config_file(path, &sup), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "missing.yml") != NULL);
    printf("ok YAML text and config files\n");
}

int main(int argc, char **argv) {
    gosuv_supervisor *sup;
    if (argc < 2) {
        fprintf(stderr, "usage: api DIR\n");
        return 2;
    }
    test_names_and_messages();
    sup = make(argv[1]);
    if (sup == NULL) {
        return 1;
    }
    test_null_and_bad_arguments(sup);
    test_programs(sup);
    test_remove_ends_log_subscriptions(sup);
    test_threads(sup);
    test_callbacks(sup); /* frees sup */
    test_free_from_callback(argv[1]);
    test_yaml_and_files(argv[1]);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
