/*
 * Readiness and dependencies seen from C: the `waiting` state, gosuv_supervisor_wait(),
 * the reason of events, and a start that fails because its ready probe never passes.
 * Run by tests/c_examples.rs (also under valgrind). Usage: readiness DIR (an empty
 * directory). Prints one line per check group and "N passed, N failed"; exits 1 if any
 * failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <gosuv.h>

#include "check.h"

/* A process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or 0. */
static unsigned long long start_ticks(uint32_t pid) {
    char path[64], stat[1024];
    const char *rest;
    unsigned long long ticks = 0;
    size_t n;
    int field;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%u/stat", (unsigned)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    /* The command name may hold spaces and parentheses: fields count from the last ')'. */
    rest = strrchr(stat, ')');
    if (rest == NULL) {
        return 0;
    }
    rest++;
    /* After ')', field 3 (state) comes first: starttime is the 20th field from there. */
    for (field = 3; field < 22 && rest != NULL; field++) {
        rest = strchr(rest + 1, ' ');
    }
    if (rest != NULL) {
        ticks = strtoull(rest + 1, NULL, 10);
    }
    return ticks;
}

/* What the event callback records, behind a lock: it runs on a gosuv thread. */
struct seen {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int api_waiting;               /* api entered `waiting` */
    int api_left_waiting;          /* api went from `waiting` to `starting` */
    int64_t api_left_waiting_ms;   /* when */
    int db_ready;                  /* db entered `running` */
    int64_t db_ready_ms;           /* when */
    char api_waiting_reason[256];  /* the reason of api's stopped -> waiting event */
    char db_ready_reason[256];     /* the reason of db's starting -> running event */
    int finalized;
};

static void on_event(void *userdata, const gosuv_event *ev) {
    struct seen *s = userdata;
    const char *reason = ev->reason != NULL ? ev->reason : "(none)";
    pthread_mutex_lock(&s->lock);
    if (strcmp(ev->program, "api") == 0 && ev->to == GOSUV_STATE_WAITING) {
        s->api_waiting++;
        snprintf(s->api_waiting_reason, sizeof s->api_waiting_reason, "%s", reason);
    }
    if (strcmp(ev->program, "api") == 0 && ev->from == GOSUV_STATE_WAITING &&
        ev->to == GOSUV_STATE_STARTING) {
        s->api_left_waiting++;
        s->api_left_waiting_ms = ev->at_ms;
    }
    if (strcmp(ev->program, "db") == 0 && ev->from == GOSUV_STATE_STARTING &&
        ev->to == GOSUV_STATE_RUNNING) {
        s->db_ready++;
        s->db_ready_ms = ev->at_ms;
        snprintf(s->db_ready_reason, sizeof s->db_ready_reason, "%s", reason);
    }
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

static void finalize(void *userdata) {
    struct seen *s = userdata;
    pthread_mutex_lock(&s->lock);
    s->finalized++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

/* Waits until *field >= n, at most 20 s. */
static int wait_count(struct seen *s, const int *field, int n) {
    struct timespec deadline;
    int e = 0, ok;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20;
    pthread_mutex_lock(&s->lock);
    while (*field < n && e != ETIMEDOUT) {
        e = pthread_cond_timedwait(&s->changed, &s->lock, &deadline);
    }
    ok = *field >= n;
    pthread_mutex_unlock(&s->lock);
    return ok;
}

static void test_names(void) {
    CHECK(GOSUV_STATE_WAITING == 7);
    CHECK(strcmp(gosuv_state_name(GOSUV_STATE_WAITING), "waiting") == 0);
    CHECK(strcmp(gosuv_state_name(7), "waiting") == 0);
    CHECK(strcmp(gosuv_state_name(8), "unknown") == 0);
    printf("ok state names\n");
}

static void test_arguments(gosuv_supervisor *sup) {
    gosuv_program_status st;
    memset(&st, 0, sizeof st);
    EXPECT(gosuv_supervisor_wait(NULL, "x", 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_NULL_ARGUMENT), "`sup`") != NULL);
    EXPECT(gosuv_supervisor_wait(sup, NULL, 0, &st), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_NULL_ARGUMENT), "`name`") != NULL);
    EXPECT(gosuv_supervisor_wait(sup, "\xff\xfe", 0, &st), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "UTF-8") != NULL);
    /* Bounded like every wait of the API: one day, refused beyond it by name and bound. */
    EXPECT(gosuv_supervisor_wait(sup, "nosuch", 86400001, &st), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "`timeout_ms`") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "86400000") != NULL);
    EXPECT(gosuv_supervisor_wait(sup, "nosuch", UINT32_MAX, &st), GOSUV_RESULT_INVALID_ARGUMENT);
    /* An unknown name, with a long wait allowed: it fails at once. */
    {
        double began = now();
        EXPECT(gosuv_supervisor_wait(sup, "nosuch", 20000, &st), GOSUV_RESULT_NOT_FOUND);
        CHECK(strstr(message(GOSUV_RESULT_NOT_FOUND), "'nosuch'") != NULL);
        CHECK(now() - began < 5);
    }
    printf("ok arguments\n");
}

/* api depends on db, whose log line says it is ready ~0.5 s after it starts. Starting api
 * starts db; api waits in `waiting`, and its process starts only once db is ready. */
static void test_dependency(gosuv_supervisor *sup) {
    struct seen s;
    gosuv_subscription *sub = NULL;
    gosuv_program_status st, db;
    char *json = NULL;
    unsigned long long db_ticks, api_ticks;
    long ticks_per_sec = sysconf(_SC_CLK_TCK);
    double began, waited;

    memset(&s, 0, sizeof s);
    memset(&st, 0, sizeof st);
    memset(&db, 0, sizeof db);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.changed, NULL);
    OK(gosuv_supervisor_on_event(sup, on_event, &s, finalize, &sub));

    OK(gosuv_supervisor_add(sup, "name: db\n"
                                 "command: sleep 0.5; echo 'db is accepting connections'; "
                                 "exec sleep 300\n"
                                 "ready:\n"
                                 "  log: 'accepting connections'\n"
                                 "  timeout: 30s\n"));
    OK(gosuv_supervisor_add(sup, "name: api\n"
                                 "command: [sleep, '300']\n"
                                 "start_seconds: 0\n"
                                 "depends_on: [db]\n"));

    /* A start that does not wait: api is `waiting` for db, which was started for it. */
    OK(gosuv_supervisor_start(sup, "api", 0, &st));
    CHECK(st.state == GOSUV_STATE_WAITING && st.pid == 0);
    /* The JSON status says what it waits for (db may be ready already on a slow host). */
    OK(gosuv_supervisor_status_json(sup, &json));
    CHECK(json != NULL && (strstr(json, "\"waiting_for\":[\"db\"]") != NULL ||
                           strstr(json, "\"name\":\"api\",\"state\":\"running\"") != NULL));
    gosuv_string_free(json);
    json = NULL;
    OK(gosuv_supervisor_status(sup, "api", &st));
    CHECK(st.state == GOSUV_STATE_WAITING || st.state == GOSUV_STATE_RUNNING);
    /* db is started for it (by a message of api's to db: it may not be handled yet). */
    {
        double deadline = now() + 20;
        struct timespec pause = {0, 5 * 1000 * 1000};
        OK(gosuv_supervisor_status(sup, "db", &db));
        while (db.state == GOSUV_STATE_STOPPED && now() < deadline) {
            nanosleep(&pause, NULL);
            OK(gosuv_supervisor_status(sup, "db", &db));
        }
        CHECK(db.state == GOSUV_STATE_STARTING || db.state == GOSUV_STATE_RUNNING);
    }
    /* 0 only looks: api is not running yet (unless db is ready already on a slow host). */
    {
        gosuv_result r = gosuv_supervisor_wait(sup, "api", 0, &st);
        CHECK(r == GOSUV_RESULT_TIMEOUT ||
              (r == GOSUV_RESULT_OK && st.state == GOSUV_STATE_RUNNING));
        if (r == GOSUV_RESULT_TIMEOUT) {
            CHECK(strstr(message(r), "'api'") != NULL);
        }
    }

    /* The wait returns once api runs, which is once db is ready. */
    began = now();
    OK(gosuv_supervisor_wait(sup, "api", 20000, &st));
    waited = now() - began;
    CHECK(st.state == GOSUV_STATE_RUNNING && st.pid != 0 && st.started_at_ms > 0);
    OK(gosuv_supervisor_status(sup, "db", &db));
    CHECK(db.state == GOSUV_STATE_RUNNING && db.pid != 0);
    /* Running now: waiting again returns at once, even with 0. */
    OK(gosuv_supervisor_wait(sup, "api", 0, &st));
    CHECK(st.state == GOSUV_STATE_RUNNING);

    /* The events: api waited for db (and said so), db was ready by its log probe, and api
     * left `waiting` only after that. */
    CHECK(wait_count(&s, &s.api_left_waiting, 1) && wait_count(&s, &s.db_ready, 1));
    pthread_mutex_lock(&s.lock);
    CHECK(s.api_waiting == 1 && strstr(s.api_waiting_reason, "db") != NULL);
    CHECK(strstr(s.db_ready_reason, "log probe") != NULL);
    CHECK(s.db_ready_ms > 0 && s.db_ready_ms <= s.api_left_waiting_ms);
    CHECK(s.db_ready_ms <= st.started_at_ms);
    printf("info: api waited for '%s'; db: '%s'\n", s.api_waiting_reason, s.db_ready_reason);
    pthread_mutex_unlock(&s.lock);

    /* From the processes themselves: db's started first, and api's not before db printed its
     * line 0.5 s later (0.4 s allowed for the tick granularity). */
    db_ticks = start_ticks(db.pid);
    api_ticks = start_ticks(st.pid);
    CHECK(db_ticks > 0 && api_ticks > 0);
    CHECK(db_ticks < api_ticks);
    CHECK(ticks_per_sec > 0 &&
          (api_ticks - db_ticks) * 1000 / (unsigned long long)ticks_per_sec >= 400);
    printf("info: api's process started %llu ms after db's; the wait took %.3f s\n",
           (api_ticks - db_ticks) * 1000 / (unsigned long long)ticks_per_sec, waited);

    /* db's ready time is in the JSON status too. */
    OK(gosuv_supervisor_status_json(sup, &json));
    CHECK(json != NULL && strstr(json, "\"ready_at\":\"") != NULL);
    gosuv_string_free(json);

    gosuv_subscription_free(sub);
    CHECK(s.finalized == 1);
    pthread_cond_destroy(&s.changed);
    pthread_mutex_destroy(&s.lock);
    printf("ok api waits for db\n");
}

/* A ready probe that never passes: the start fails after its timeout, the program goes
 * fatal, and the wait fails with the probe's error. */
static void test_never_ready(gosuv_supervisor *sup) {
    gosuv_program_status st;
    char why[1024] = "";
    size_t n = 0;
    double began;

    memset(&st, 0, sizeof st);

    OK(gosuv_supervisor_add(sup, "name: never\n"
                                 "command: [sleep, '300']\n"
                                 "start_retries: 1\n"
                                 "ready: {log: 'a line never printed', timeout: 1s}\n"));
    OK(gosuv_supervisor_start(sup, "never", 0, &st));
    CHECK(st.state == GOSUV_STATE_STARTING);
    began = now();
    EXPECT(gosuv_supervisor_wait(sup, "never", 20000, &st), GOSUV_RESULT_START_FAILED);
    CHECK(now() - began >= 0.5); /* it waited for the probe's 1 s, counted from the spawn */
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "'never'") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "not ready within 1s (log probe)") !=
          NULL);
    printf("info: %s\n", message(GOSUV_RESULT_START_FAILED));
    OK(gosuv_supervisor_status(sup, "never", &st));
    CHECK(st.state == GOSUV_STATE_FATAL && st.has_last_error && st.pid == 0);
    OK(gosuv_supervisor_program_error(sup, "never", why, sizeof why, &n));
    CHECK(strstr(why, "not ready within 1s (log probe)") != NULL);
    /* Fatal already: the wait fails at once, with 0 too. */
    EXPECT(gosuv_supervisor_wait(sup, "never", 0, &st), GOSUV_RESULT_START_FAILED);
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "not ready within 1s") != NULL);

    /* A program that depends on it: its start starts `never` again, which fails again, and
     * the wait for the dependent fails naming its dependency and quoting its error. */
    OK(gosuv_supervisor_add(sup, "{name: client, command: [sleep, '300'], "
                                 "depends_on: [{name: never, condition: ready}]}"));
    OK(gosuv_supervisor_start(sup, "client", 0, &st));
    CHECK(st.state == GOSUV_STATE_WAITING);
    EXPECT(gosuv_supervisor_wait(sup, "client", 20000, &st), GOSUV_RESULT_START_FAILED);
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "'never'") != NULL);
    CHECK(strstr(message(GOSUV_RESULT_START_FAILED), "not ready within 1s") != NULL);
    printf("info: %s\n", message(GOSUV_RESULT_START_FAILED));
    OK(gosuv_supervisor_status(sup, "client", &st));
    CHECK(st.state == GOSUV_STATE_FATAL);
    printf("ok a probe that never passes\n");
}

/* The wait does not start a program: a stopped one stays stopped, and the wait runs out. */
static void test_wait_does_not_start(gosuv_supervisor *sup) {
    gosuv_program_status st;
    memset(&st, 0, sizeof st);
    OK(gosuv_supervisor_add(sup, "{name: idle, command: [sleep, '300']}"));
    EXPECT(gosuv_supervisor_wait(sup, "idle", 0, &st), GOSUV_RESULT_TIMEOUT);
    EXPECT(gosuv_supervisor_wait(sup, "idle", 200, &st), GOSUV_RESULT_TIMEOUT);
    CHECK(strstr(message(GOSUV_RESULT_TIMEOUT), "stopped") != NULL);
    OK(gosuv_supervisor_status(sup, "idle", &st));
    CHECK(st.state == GOSUV_STATE_STOPPED && st.pid == 0);
    printf("ok the wait does not start a program\n");
}

int main(int argc, char **argv) {
    gosuv_supervisor_options options;
    gosuv_supervisor *sup = NULL;
    if (argc < 2) {
        fprintf(stderr, "usage: readiness DIR\n");
        return 2;
    }
    test_names();
    OK(gosuv_supervisor_options_init(&options, sizeof options));
    options.base_dir = argv[1];
    OK(gosuv_supervisor_new(&options, &sup));
    if (sup == NULL) {
        return 1;
    }
    test_arguments(sup);
    test_dependency(sup);
    test_never_ready(sup);
    test_wait_does_not_start(sup);
    gosuv_supervisor_free(sup);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
