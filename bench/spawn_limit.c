/* The "spawn limit" baseline of bench/compare.py (workload W0): the least a supervisor has to
 * do to start N programs, as a bare C loop.
 *
 *     spawn_limit N PROGRAM [ARG...]
 *
 * Starts N copies of PROGRAM ARG... with posix_spawnp(3), each in a session of its own
 * (POSIX_SPAWN_SETSID, glibc 2.26 or later), with an empty signal mask and its standard
 * input, output and error on /dev/null; glibc's posix_spawn clones with CLONE_VM|CLONE_VFORK,
 * so no address space is copied. Then it prints, on its standard output,
 *
 *     spawned N in S s
 *
 * S being its own clock (CLOCK_MONOTONIC from before the first posix_spawn to after the
 * last), and waits until its standard input reaches end of file (or fails), or until
 * SIGTERM, SIGINT or SIGHUP. Then it sends SIGKILL to every child, reaps them all and prints
 *
 *     reaped N in S s
 *
 * Exit status 0; 1 when a spawn failed (the children spawned so far are killed and reaped
 * first); 2 on bad usage. The bench compiles it with `cc -O2` into a temp dir.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef POSIX_SPAWN_SETSID
#error "POSIX_SPAWN_SETSID needs glibc 2.26 or later"
#endif

extern char **environ;

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* SIGKILL and reap the first n children. */
static void kill_all(const pid_t *pids, long n) {
    for (long i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    for (long i = 0; i < n; i++)
        while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
            ;
}

/* Until end of file (or an error) on standard input, or a stop signal. The stop signals are
 * blocked outside ppoll, so one that comes between two polls is not lost. */
static void wait_for_end(const sigset_t *unblocked) {
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    char buf[512];
    while (!stop_signal) {
        int r = ppoll(&in, 1, NULL, unblocked);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (in.revents & POLLIN) {
            ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
            if (got > 0 || (got < 0 && errno == EINTR))
                continue;
            return;
        }
        if (in.revents & (POLLHUP | POLLERR | POLLNVAL))
            return;
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s N PROGRAM [ARG...]\n", argv[0]);
        return 2;
    }
    char *end;
    errno = 0;
    long n = strtol(argv[1], &end, 10);
    if (errno || *end || n < 1 || n > 10000000) {
        fprintf(stderr, "spawn_limit: N must be a whole number from 1 to 10000000, not '%s'\n",
                argv[1]);
        return 2;
    }
    pid_t *pids = malloc(sizeof *pids * (size_t)n);
    if (!pids) {
        fprintf(stderr, "spawn_limit: no memory for %ld pids\n", n);
        return 1;
    }

    sigset_t stop, empty;
    sigemptyset(&empty);
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGHUP);
    struct sigaction sa = {.sa_handler = on_stop};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigprocmask(SIG_BLOCK, &stop, NULL);

    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) {
        perror("spawn_limit: /dev/null");
        return 1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    if (posix_spawn_file_actions_init(&fa) || posix_spawnattr_init(&attr)) {
        fprintf(stderr, "spawn_limit: cannot set up posix_spawn\n");
        return 1;
    }
    /* dup2 onto 0, 1 and 2 clears their close-on-exec flag; the original stays closed. */
    for (int fd = 0; fd < 3; fd++)
        posix_spawn_file_actions_adddup2(&fa, devnull, fd);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigmask(&attr, &empty);

    int rc = 0;
    long spawned = 0;
    double t0 = now();
    for (; spawned < n; spawned++) {
        int e = posix_spawnp(&pids[spawned], argv[2], &fa, &attr, argv + 2, environ);
        if (e) {
            fprintf(stderr, "spawn_limit: spawn %ld of %ld (%s) failed: %s\n", spawned + 1, n,
                    argv[2], strerror(e));
            rc = 1;
            break;
        }
    }
    double t1 = now();
    if (rc == 0) {
        printf("spawned %ld in %.6f s\n", spawned, t1 - t0);
        fflush(stdout);
        wait_for_end(&empty);
    }
    double t2 = now();
    kill_all(pids, spawned);
    printf("reaped %ld in %.6f s\n", spawned, now() - t2);
    return rc;
}
