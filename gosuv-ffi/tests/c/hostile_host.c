/*
 * Hosts that make a supervisor's life hard, seen from C. Run by tests/c_examples.rs.
 * Usage: hostile_host MODE DIR (an empty directory). Prints what it checks; exits 0 when all
 * held, 1 when one did not (a hang is caught by an alarm: the process dies of SIGALRM).
 *
 *   reap         a SIGCHLD handler reaps every child (`while (waitpid(-1, ...) > 0)`): a
 *                killed program is still restarted at once, and a stop completes
 *   unsubscribe  a subscription is freed while its callback subscribes to something else
 *   crossfree    two subscriptions whose callbacks free each other's subscription
 *   sigpipe      the guardian is killed; the next program start must not kill this host
 *                with SIGPIPE
 *   defaults     the default options (subreaper off, programs die with the host), and
 *                `system("sleep 0.2 &")` leaves no zombie behind
 *   host         starts 3 programs of 3 processes with the default options, prints
 *                "PGIDS a b c" and waits to be killed (the test SIGKILLs it)
 *   again        a supervisor runs a program and is freed: no gosuv thread and no child
 *                process (the guardian) is left; then as `host`, with a new supervisor
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gosuv.h>

static int failed;

#define CHECK(cond, ...)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            failed++;                                                                          \
            printf("FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);                           \
            printf(__VA_ARGS__);                                                               \
            printf("\n");                                                                      \
        }                                                                                      \
    } while (0)

static const char *message(gosuv_result r) {
    static char buf[2048];
    gosuv_error_message(r, buf, sizeof buf);
    return buf;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pause_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static gosuv_supervisor *new_supervisor(const char *dir, int kill_on_parent_death) {
    gosuv_supervisor_options o;
    gosuv_supervisor *sup = NULL;
    gosuv_result r = gosuv_supervisor_options_init(&o, sizeof o);
    if (r != GOSUV_RESULT_OK) {
        printf("gosuv_supervisor_options_init: %s\n", message(r));
        exit(1);
    }
    o.base_dir = dir;
    if (kill_on_parent_death >= 0) {
        o.kill_on_parent_death = kill_on_parent_death != 0;
    }
    r = gosuv_supervisor_new(&o, &sup);
    if (r != GOSUV_RESULT_OK) {
        printf("gosuv_supervisor_new: %s\n", message(r));
        exit(1);
    }
    return sup;
}

static void add(gosuv_supervisor *sup, const char *yaml) {
    gosuv_result r = gosuv_supervisor_add(sup, yaml);
    if (r != GOSUV_RESULT_OK) {
        printf("add %s: %s\n", yaml, message(r));
        exit(1);
    }
}

/* ---- reap ---------------------------------------------------------------------------- */

static volatile sig_atomic_t reaped;

static void reap_everything(int sig) {
    int saved = errno;
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
        reaped++;
    }
    errno = saved;
}

static int by_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void mode_reap(const char *dir) {
    struct sigaction sa;
    gosuv_supervisor *sup;
    gosuv_program_status st;
    gosuv_result r;
    /* At least 5 rounds, and more until the host's handler has reaped one of the
     * programs itself (the handler and gosuv race for each exit; under load gosuv may win
     * several in a row, and then nothing would have been tested). */
    double took[60];
    int rounds = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = reap_everything;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, NULL);
    sup = new_supervisor(dir, -1);

    add(sup, "name: stoppable\ncommand: exec sleep 300\nstart_seconds: 0\n");
    r = gosuv_supervisor_start(sup, "stoppable", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK, "start: %s", message(r));
    r = gosuv_supervisor_stop(sup, "stoppable", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK && st.state == GOSUV_STATE_STOPPED, "stop: %s", message(r));

    /* Killed up to 60 times: the crash-loop guard (5 exits in 60 s) would hold its restart
     * back, so it is turned off. */
    add(sup, "name: victim\ncommand: exec sleep 300\nstart_seconds: 0\n"
             "start_limit: {burst: 0, interval: 60s}\n");
    r = gosuv_supervisor_start(sup, "victim", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK, "start victim: %s", message(r));
    for (rounds = 0; (rounds < 5 || reaped == 0) && rounds < 60 && r == GOSUV_RESULT_OK;
         rounds++) {
        uint32_t old = st.pid;
        double t0 = now(), deadline = t0 + 5;
        int restarted = 0;
        kill((pid_t)old, SIGKILL);
        while (now() < deadline) {
            if (gosuv_supervisor_status(sup, "victim", &st) == GOSUV_RESULT_OK &&
                st.state == GOSUV_STATE_RUNNING && st.pid != 0 && st.pid != old) {
                restarted = 1;
                break;
            }
            pause_ms(1);
        }
        took[rounds] = now() - t0;
        CHECK(restarted, "round %d: not restarted 5 s after SIGKILL", rounds);
        if (!restarted) {
            break;
        }
    }
    if (rounds >= 5 && failed == 0) {
        qsort(took, (size_t)rounds, sizeof took[0], by_double);
        printf("restart after SIGKILL, median %.1f ms of %d rounds\n", took[rounds / 2] * 1000,
               rounds);
        CHECK(took[rounds / 2] < 0.1, "median restart %.1f ms is over 100 ms",
              took[rounds / 2] * 1000);
    }
    r = gosuv_supervisor_stop(sup, "victim", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK && st.state == GOSUV_STATE_STOPPED, "stop victim: %s",
          message(r));
    CHECK(reaped > 0, "the host's handler reaped nothing: nothing was tested");
    gosuv_supervisor_free(sup);
}

/* ---- unsubscribe ----------------------------------------------------------------------- */

struct sub_state {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int in_callback;
    int proceed;
    gosuv_supervisor *sup;
    gosuv_subscription *inner;
};

static void ignore_event(void *userdata, const gosuv_event *ev) {
    (void)userdata;
    (void)ev;
}

static void subscribing_callback(void *userdata, const gosuv_event *ev) {
    struct sub_state *s = userdata;
    gosuv_subscription *inner = NULL;
    (void)ev;
    pthread_mutex_lock(&s->lock);
    if (s->in_callback) {
        pthread_mutex_unlock(&s->lock);
        return;
    }
    s->in_callback = 1;
    pthread_cond_broadcast(&s->changed);
    while (!s->proceed) {
        pthread_cond_wait(&s->changed, &s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    /* The main thread is freeing this callback's subscription now. */
    pause_ms(200);
    gosuv_supervisor_on_event(s->sup, ignore_event, NULL, NULL, &inner);
    pthread_mutex_lock(&s->lock);
    s->inner = inner;
    pthread_mutex_unlock(&s->lock);
}

static void mode_unsubscribe(const char *dir) {
    struct sub_state s;
    gosuv_subscription *sub = NULL;
    gosuv_result r;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.changed, NULL);
    s.sup = new_supervisor(dir, -1);
    r = gosuv_supervisor_on_event(s.sup, subscribing_callback, &s, NULL, &sub);
    CHECK(r == GOSUV_RESULT_OK, "subscribe: %s", message(r));
    add(s.sup, "name: p\ncommand: exec sleep 300\nstart_seconds: 0\n");
    gosuv_supervisor_start(s.sup, "p", 0, NULL);
    pthread_mutex_lock(&s.lock);
    while (!s.in_callback) {
        pthread_cond_wait(&s.changed, &s.lock);
    }
    s.proceed = 1;
    pthread_cond_broadcast(&s.changed);
    pthread_mutex_unlock(&s.lock);
    alarm(30); /* a deadlock ends the test here */
    gosuv_subscription_free(sub);
    alarm(0);
    printf("freed a subscription while its callback subscribed\n");
    gosuv_subscription_free(s.inner);
    gosuv_supervisor_free(s.sup);
    pthread_mutex_destroy(&s.lock);
    pthread_cond_destroy(&s.changed);
}

/* ---- crossfree ------------------------------------------------------------------------- */

struct cross {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int arrived;            /* callbacks inside their first call */
    int finalized;
    gosuv_subscription *subs[2];
};

struct cross_side {
    struct cross *c;
    int me;
    int done;
};

static void cross_callback(void *userdata, const gosuv_event *ev) {
    struct cross_side *side = userdata;
    struct cross *c = side->c;
    gosuv_subscription *other;
    (void)ev;
    if (side->done) {
        return;
    }
    side->done = 1;
    pthread_mutex_lock(&c->lock);
    c->arrived++;
    pthread_cond_broadcast(&c->changed);
    /* Both callbacks run at once before either frees the other. */
    while (c->arrived < 2) {
        pthread_cond_wait(&c->changed, &c->lock);
    }
    other = c->subs[1 - side->me];
    pthread_mutex_unlock(&c->lock);
    gosuv_subscription_free(other);
}

static void cross_finalizer(void *userdata) {
    struct cross_side *side = userdata;
    pthread_mutex_lock(&side->c->lock);
    side->c->finalized++;
    pthread_cond_broadcast(&side->c->changed);
    pthread_mutex_unlock(&side->c->lock);
}

static void mode_crossfree(const char *dir) {
    struct cross c;
    struct cross_side sides[2];
    gosuv_supervisor *sup = new_supervisor(dir, -1);
    gosuv_result r;
    int i;
    memset(&c, 0, sizeof c);
    pthread_mutex_init(&c.lock, NULL);
    pthread_cond_init(&c.changed, NULL);
    pthread_mutex_lock(&c.lock);
    for (i = 0; i < 2; i++) {
        sides[i].c = &c;
        sides[i].me = i;
        sides[i].done = 0;
        r = gosuv_supervisor_on_event(sup, cross_callback, &sides[i], cross_finalizer,
                                      &c.subs[i]);
        CHECK(r == GOSUV_RESULT_OK, "subscribe: %s", message(r));
    }
    pthread_mutex_unlock(&c.lock);
    alarm(30); /* a deadlock ends the test here */
    add(sup, "name: p\ncommand: exec sleep 300\nstart_seconds: 0\n");
    gosuv_supervisor_start(sup, "p", 0, NULL);
    pthread_mutex_lock(&c.lock);
    while (c.finalized < 2) {
        pthread_cond_wait(&c.changed, &c.lock);
    }
    pthread_mutex_unlock(&c.lock);
    gosuv_supervisor_free(sup);
    alarm(0);
    printf("two callbacks freed each other's subscriptions\n");
    pthread_mutex_destroy(&c.lock);
    pthread_cond_destroy(&c.changed);
}

/* ---- sigpipe --------------------------------------------------------------------------- */

/* The pid of this process's child whose command line names `gosuv-guardian`, or 0. */
static pid_t guardian_pid(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    pid_t found = 0;
    while (d != NULL && found == 0 && (e = readdir(d)) != NULL) {
        char path[300], buf[4096];
        FILE *f;
        size_t n, i;
        int ppid = 0;
        pid_t pid = (pid_t)atoi(e->d_name);
        if (pid <= 0) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        if (strrchr(buf, ')') == NULL ||
            sscanf(strrchr(buf, ')') + 2, "%*c %d", &ppid) != 1 || ppid != getpid()) {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (i = 0; i < n; i++) {
            if (buf[i] == '\0') {
                buf[i] = ' ';
            }
        }
        buf[n] = '\0';
        if (strstr(buf, "gosuv-guardian") != NULL) {
            found = pid;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return found;
}

static void mode_sigpipe(const char *dir) {
    gosuv_supervisor *sup = new_supervisor(dir, 1);
    gosuv_program_status st;
    gosuv_result r;
    pid_t guardian;
    int i;
    add(sup, "name: p\ncommand: exec sleep 300\nstart_seconds: 0\n");
    r = gosuv_supervisor_start(sup, "p", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK, "start: %s", message(r));
    guardian = guardian_pid();
    CHECK(guardian > 0, "no guardian found");
    if (guardian > 0) {
        double deadline = now() + 10;
        char path[64];
        kill(guardian, SIGKILL);
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)guardian);
        /* Gone once its command line is empty (a zombie) or missing. */
        while (now() < deadline) {
            FILE *f = fopen(path, "r");
            int c = f != NULL ? fgetc(f) : EOF;
            if (f != NULL) {
                fclose(f);
            }
            if (c == EOF) {
                break;
            }
            pause_ms(5);
        }
    }
    /* Every start and stop tells the guardian: the first write finds it gone. */
    for (i = 0; i < 3; i++) {
        r = gosuv_supervisor_restart(sup, "p", 10000, &st);
        CHECK(r == GOSUV_RESULT_OK, "restart %d: %s", i, message(r));
    }
    printf("survived the guardian's death\n");
    gosuv_supervisor_free(sup);
}

/* ---- defaults -------------------------------------------------------------------------- */

static char proc_state(pid_t pid, int *ppid) {
    char path[64], buf[1024];
    char state = 0;
    size_t n;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strrchr(buf, ')') != NULL) {
        sscanf(strrchr(buf, ')') + 2, "%c %d", &state, ppid);
    }
    return state;
}

static void mode_defaults(const char *dir) {
    gosuv_supervisor_options o;
    gosuv_supervisor *sup;
    gosuv_program_status st;
    gosuv_result r = gosuv_supervisor_options_init(&o, sizeof o);
    char cmd[600], path[512], line[64];
    FILE *f;
    pid_t bg = 0;
    double deadline;
    int ppid = 0;
    char state;

    CHECK(r == GOSUV_RESULT_OK, "gosuv_supervisor_options_init: %s", message(r));
    CHECK(!o.subreaper, "the default options make the host a subreaper");
    CHECK(o.kill_on_parent_death, "the default options let programs outlive their host");
    sup = new_supervisor(dir, -1);
    add(sup, "name: p\ncommand: exec sleep 300\nstart_seconds: 0\n");
    r = gosuv_supervisor_start(sup, "p", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK, "start: %s", message(r));

    snprintf(path, sizeof path, "%s/bg.pid", dir);
    snprintf(cmd, sizeof cmd, "sleep 0.2 & echo $! > %s", path);
    CHECK(system(cmd) == 0, "system(%s)", cmd);
    f = fopen(path, "r");
    if (f != NULL && fgets(line, sizeof line, f) != NULL) {
        bg = (pid_t)atoi(line);
    }
    if (f != NULL) {
        fclose(f);
    }
    CHECK(bg > 0, "no pid of the background sleep");
    /* It ends after 0.2 s; whoever adopted it must reap it. */
    deadline = now() + 5;
    while ((state = proc_state(bg, &ppid)) != 0 && now() < deadline) {
        pause_ms(10);
    }
    CHECK(state == 0, "the background sleep %d is still there (state %c, parent %d)", (int)bg,
          state, ppid);
    printf("no zombie left by system()\n");
    gosuv_supervisor_free(sup);
}

/* ---- host ------------------------------------------------------------------------------ */

static void mode_host(const char *dir) {
    gosuv_supervisor *sup = new_supervisor(dir, -1);
    gosuv_program_status st;
    uint32_t pgids[3];
    int i;
    for (i = 0; i < 3; i++) {
        char yaml[256], name[16];
        gosuv_result r;
        snprintf(name, sizeof name, "p%d", i);
        snprintf(yaml, sizeof yaml,
                 "name: %s\ncommand: sleep 300 & sleep 300 & wait\nstart_seconds: 0\n", name);
        add(sup, yaml);
        r = gosuv_supervisor_start(sup, name, 10000, &st);
        CHECK(r == GOSUV_RESULT_OK, "start %s: %s", name, message(r));
        pgids[i] = st.pid;
    }
    printf("PGIDS %u %u %u\n", pgids[0], pgids[1], pgids[2]);
    fflush(stdout);
    for (;;) {
        pause_ms(1000);
    }
}

/* The names of this process's threads that start with "gosuv-", space-separated. */
static void gosuv_threads(char *out, size_t size) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    out[0] = '\0';
    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char path[300], name[64] = "";
        FILE *f;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fgets(name, sizeof name, f) != NULL && strncmp(name, "gosuv-", 6) == 0) {
            name[strcspn(name, "\n")] = '\0';
            if (strlen(out) + strlen(name) + 2 < size) {
                strcat(out, name);
                strcat(out, " ");
            }
        }
        fclose(f);
    }
    closedir(d);
}

/* How many processes (zombies included) have this process as their parent. */
static int children(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    if (d == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char path[300], stat[512], *close_paren;
        FILE *f;
        int ppid = 0;
        if (e->d_name[0] < '1' || e->d_name[0] > '9') {
            continue;
        }
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL) {
            continue;
        }
        if (fgets(stat, sizeof stat, f) != NULL && (close_paren = strrchr(stat, ')')) != NULL &&
            sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid()) {
            n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static void mode_again(const char *dir) {
    char threads[1024];
    gosuv_program_status st;
    gosuv_result r;
    gosuv_supervisor *sup = new_supervisor(dir, -1);
    add(sup, "name: first\ncommand: sleep 300\nstart_seconds: 0\n");
    r = gosuv_supervisor_start(sup, "first", 10000, &st);
    CHECK(r == GOSUV_RESULT_OK, "start first: %s", message(r));
    gosuv_threads(threads, sizeof threads);
    CHECK(strstr(threads, "gosuv-guardian") != NULL, "threads while it runs: %s", threads);
    gosuv_supervisor_free(sup);
    /* Normally nothing is left when the free returns; on a loaded machine the guardian may
     * take longer to exit than the free waits, and the orphan reaper's thread then ends
     * once it has reaped it: a deadline, not the free's own limit. */
    for (int waited = 0;; waited += 10) {
        gosuv_threads(threads, sizeof threads);
        if ((threads[0] == '\0' && children() == 0) || waited >= 30000) {
            break;
        }
        pause_ms(10);
    }
    CHECK(threads[0] == '\0', "gosuv threads left 30 s after the last supervisor was freed: %s",
          threads);
    CHECK(children() == 0, "%d child processes left 30 s after the last supervisor was freed",
          children());
    printf("freed: %s\n", failed == 0 ? "nothing left" : "threads or processes left");
    mode_host(dir);
}

int main(int argc, char **argv) {
    const char *mode, *dir;
    if (argc != 3) {
        fprintf(stderr, "usage: %s reap|unsubscribe|crossfree|sigpipe|defaults|host|again DIR\n",
                argv[0]);
        return 2;
    }
    mode = argv[1];
    dir = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (strcmp(mode, "reap") == 0) {
        mode_reap(dir);
    } else if (strcmp(mode, "unsubscribe") == 0) {
        mode_unsubscribe(dir);
    } else if (strcmp(mode, "crossfree") == 0) {
        mode_crossfree(dir);
    } else if (strcmp(mode, "sigpipe") == 0) {
        mode_sigpipe(dir);
    } else if (strcmp(mode, "defaults") == 0) {
        mode_defaults(dir);
    } else if (strcmp(mode, "host") == 0) {
        mode_host(dir);
    } else if (strcmp(mode, "again") == 0) {
        mode_again(dir);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    printf("%s: %s\n", mode, failed == 0 ? "ok" : "FAILED");
    return failed == 0 ? 0 : 1;
}
