/*
 * Programs described without YAML (the gosuv_program builder), their standard streams
 * (stdin pipe, inherited stdin, a copy of the output to a host descriptor, discarded
 * output), signals, GOSUV_WAIT_FOREVER, structs versioned by size and the typed accessors.
 * Run by tests/c_examples.rs (also under valgrind). Usage: builder DIR (an empty
 * directory). Prints one line per check group and "N passed, N failed"; exits 1 if any
 * failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stddef.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gosuv.h>

#include "check.h"

#define WAIT 20000u

static const char *dir;

/* A program's output, once it holds `needle` (polls with a 20 s deadline). */
static int tail_contains(gosuv_supervisor *sup, const char *name, gosuv_stream stream,
                         const char *needle) {
    char buf[8192];
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
    printf("no %s in the output of %s: %s\n", needle, name, buf);
    return 0;
}

/* Whether a program's config JSON holds `needle`. */
static int config_has(gosuv_supervisor *sup, const char *name, const char *needle) {
    char *json = NULL;
    int found;
    if (gosuv_supervisor_config_json(sup, name, &json) != GOSUV_RESULT_OK) {
        return 0;
    }
    found = strstr(json, needle) != NULL;
    if (!found) {
        printf("no %s in %s\n", needle, json);
    }
    gosuv_string_free(json);
    return found;
}

/* Whether a program's config JSON lacks `needle`. */
static int config_lacks(gosuv_supervisor *sup, const char *name, const char *needle) {
    char *json = NULL;
    int lacks;
    if (gosuv_supervisor_config_json(sup, name, &json) != GOSUV_RESULT_OK) {
        return 0;
    }
    lacks = strstr(json, needle) == NULL;
    gosuv_string_free(json);
    return lacks;
}

static size_t program_count(gosuv_supervisor *sup) {
    char **names = NULL;
    size_t n = 0;
    gosuv_supervisor_names(sup, &names, &n);
    gosuv_string_array_free(names);
    return n;
}

static gosuv_program *argv_program(const char *name, const char *const *argv, size_t argc) {
    gosuv_program *p = NULL;
    OK(gosuv_program_new(name, &p));
    OK(gosuv_program_set_argv(p, argv, argc));
    OK(gosuv_program_set_start_seconds(p, 0));
    OK(gosuv_program_set_autorestart(p, GOSUV_AUTORESTART_NEVER));
    return p;
}

/* Every setter, read back through the config JSON. */
static void test_every_setter(gosuv_supervisor *sup) {
    static const char *const argv[] = {"sleep", "60"};
    static const char *const env[] = {"A=1", "B=two words"};
    static const char *const probe[] = {"true"};
    static const int32_t codes[] = {0, 3};
    gosuv_program *p = NULL;
    gosuv_program *dep = argv_program("dep", argv, 2);
    char work[512];
    snprintf(work, sizeof work, "%s/work", dir);
    mkdir(work, 0755);
    OK(gosuv_supervisor_add_program(sup, dep));
    gosuv_program_free(dep);

    OK(gosuv_program_new("every", &p));
    OK(gosuv_program_set_argv(p, argv, 2));
    OK(gosuv_program_set_env(p, env, 2));
    OK(gosuv_program_add_env(p, "C", "x=y 'z'"));
    OK(gosuv_program_set_directory(p, work));
    OK(gosuv_program_set_env_file(p, "every.env"));
    OK(gosuv_program_set_start_auto(p, false));
    OK(gosuv_program_set_start_seconds(p, 2));
    OK(gosuv_program_set_start_retries(p, 7));
    OK(gosuv_program_set_autorestart(p, GOSUV_AUTORESTART_UNEXPECTED));
    OK(gosuv_program_set_exit_codes(p, codes, 2));
    OK(gosuv_program_set_stop_signal(p, SIGINT));
    OK(gosuv_program_set_stop_timeout(p, 3));
    OK(gosuv_program_set_user(p, "root"));
    OK(gosuv_program_set_umask(p, 027));
    OK(gosuv_program_set_redirect_stderr(p, true));
    OK(gosuv_program_set_log_disable(p, false));
    OK(gosuv_program_set_log_max_bytes(p, 1024 * 1024));
    OK(gosuv_program_set_log_backups(p, 4));
    OK(gosuv_program_set_log_timestamps(p, true));
    OK(gosuv_program_set_logfile(p, GOSUV_STREAM_STDOUT, "every-out.log"));
    OK(gosuv_program_set_logfile(p, GOSUV_STREAM_STDERR, "every-err.log"));
    OK(gosuv_program_set_memory_max(p, 64 * 1024 * 1024));
    OK(gosuv_program_set_cgroup(p, GOSUV_CGROUP_MODE_OFF));
    OK(gosuv_program_set_start_limit(p, 4, 30000));
    OK(gosuv_program_set_ready_tcp(p, "127.0.0.1:1", 250, 5000));
    OK(gosuv_program_set_health_exec(p, probe, 1, 2000, 500, 2));
    OK(gosuv_program_add_dependency(p, "dep", GOSUV_CONDITION_STARTED));
    OK(gosuv_program_set_numprocs(p, 1));
    OK(gosuv_supervisor_add_program(sup, p));
    CHECK(config_has(sup, "every", "\"command\":[\"sleep\",\"60\"]"));
    CHECK(config_has(sup, "every", "\"environ\":[\"A=1\",\"B=two words\",\"C=x=y 'z'\"]"));
    CHECK(config_has(sup, "every", "/work\""));
    CHECK(config_has(sup, "every", "every.env\""));
    CHECK(config_has(sup, "every", "\"start_auto\":false"));
    CHECK(config_has(sup, "every", "\"start_seconds\":2"));
    CHECK(config_has(sup, "every", "\"start_retries\":7"));
    CHECK(config_has(sup, "every", "\"autorestart\":\"unexpected\""));
    CHECK(config_has(sup, "every", "\"exit_codes\":[0,3]"));
    CHECK(config_has(sup, "every", "\"stop_signal\":\"INT\""));
    CHECK(config_has(sup, "every", "\"stop_timeout\":3"));
    CHECK(config_has(sup, "every", "\"user\":\"root\""));
    CHECK(config_has(sup, "every", "\"umask\":\"027\""));
    CHECK(config_has(sup, "every", "\"redirect_stderr\":true"));
    CHECK(config_has(sup, "every", "\"log_disable\":false"));
    CHECK(config_has(sup, "every", "\"log_max_bytes\":1048576"));
    CHECK(config_has(sup, "every", "\"log_backups\":4"));
    CHECK(config_has(sup, "every", "\"log_timestamps\":true"));
    CHECK(config_has(sup, "every", "every-out.log\""));
    CHECK(config_has(sup, "every", "every-err.log\""));
    CHECK(config_has(sup, "every", "\"memory_max\":\"64MB\""));
    CHECK(config_has(sup, "every", "\"cgroup\":\"off\""));
    CHECK(config_has(sup, "every", "\"start_limit\":{\"burst\":4,\"interval\":\"30s\"}"));
    CHECK(config_has(sup, "every",
                     "\"ready\":{\"tcp\":\"127.0.0.1:1\",\"interval\":\"250ms\",\"timeout\":\"5s\"}"));
    CHECK(config_has(sup, "every",
                     "\"health\":{\"exec\":[\"true\"],\"interval\":\"2s\",\"timeout\":\"500ms\","
                     "\"failures\":2}"));
    CHECK(config_has(sup, "every", "\"depends_on\":[{\"name\":\"dep\",\"condition\":\"started\"}]"));

    /* The other probes, and clearing. */
    OK(gosuv_program_set_ready_log(p, "^listening", 3000));
    OK(gosuv_program_set_health_http(p, "http://127.0.0.1:1/", 0, 0, 0));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_has(sup, "every", "\"ready\":{\"log\":\"^listening\",\"timeout\":\"3s\"}"));
    CHECK(config_has(sup, "every", "\"health\":{\"http\":\"http://127.0.0.1:1/\""));
    OK(gosuv_program_set_ready_http(p, "http://127.0.0.1:1/ready", 0, 0));
    OK(gosuv_program_set_health_tcp(p, "127.0.0.1:1", 0, 0, 0));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_has(sup, "every", "\"ready\":{\"http\":\"http://127.0.0.1:1/ready\""));
    CHECK(config_has(sup, "every", "\"health\":{\"tcp\":\"127.0.0.1:1\""));
    OK(gosuv_program_set_ready_exec(p, probe, 1, 0, 0));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_has(sup, "every", "\"ready\":{\"exec\":[\"true\"]"));
    OK(gosuv_program_set_ready_notify(p, 0));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_has(sup, "every", "\"ready\":{\"notify\":true"));
    OK(gosuv_program_clear_ready(p));
    OK(gosuv_program_clear_health(p));
    OK(gosuv_program_clear_dependencies(p));
    OK(gosuv_program_set_env(p, NULL, 0));
    OK(gosuv_program_set_directory(p, NULL));
    OK(gosuv_program_set_user(p, NULL));
    OK(gosuv_program_set_memory_max(p, 0));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_lacks(sup, "every", "\"ready\""));
    CHECK(config_lacks(sup, "every", "\"health\""));
    CHECK(config_lacks(sup, "every", "depends_on"));
    CHECK(config_has(sup, "every", "\"environ\":[]"));
    CHECK(config_lacks(sup, "every", "\"user\""));
    CHECK(config_lacks(sup, "every", "memory_max"));
    OK(gosuv_program_set_shell_command(p, "exec sleep 30"));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    CHECK(config_has(sup, "every", "\"command\":\"exec sleep 30\""));

    /* numprocs: every instance, {n} replaced. */
    {
        static const char *const inst[] = {"echo", "instance {n}"};
        gosuv_program *w = argv_program("w", inst, 2);
        OK(gosuv_program_set_numprocs(w, 3));
        OK(gosuv_supervisor_add_program(sup, w));
        CHECK(config_has(sup, "w-0", "\"instance 0\""));
        CHECK(config_has(sup, "w-2", "\"instance 2\""));
        EXPECT(gosuv_supervisor_add_program(sup, w), GOSUV_RESULT_EXISTS);
        gosuv_program_free(w);
        OK(gosuv_supervisor_remove(sup, "w-0"));
        OK(gosuv_supervisor_remove(sup, "w-1"));
        OK(gosuv_supervisor_remove(sup, "w-2"));
    }
    OK(gosuv_supervisor_remove(sup, "every"));
    OK(gosuv_supervisor_remove(sup, "dep"));
    gosuv_program_free(p);
    printf("ok every setter\n");
}

/*
 * The issue: a program could only be given as YAML text, so a C host built it with
 * snprintf. A quote broke it, and a crafted command injected keys. Here the old path shows
 * both, and the builder takes the same strings as plain arguments.
 */
static void test_no_injection(gosuv_supervisor *sup) {
    /* Closes the quote of the template below, then writes keys of its own. */
    static const char *crafted =
        "x'\nstop_signal: KILL\nenviron: [LD_PRELOAD=/tmp/evil.so]\ndirectory: '/";
    char yaml[512];
    gosuv_program *p;

    /* The old way, as a C host wrote it: a quote in the command breaks the YAML. */
    snprintf(yaml, sizeof yaml, "name: quote\ncommand: '%s'\n", "echo it's here");
    EXPECT(gosuv_supervisor_add(sup, yaml), GOSUV_RESULT_CONFIG);
    snprintf(yaml, sizeof yaml, "name: grep\ncommand: '%s'\n", "grep -r 'foo' /etc");
    EXPECT(gosuv_supervisor_add(sup, yaml), GOSUV_RESULT_CONFIG);
    /* The old way: the crafted command becomes keys of the program. */
    snprintf(yaml, sizeof yaml, "name: injected\ncommand: '%s'\n", crafted);
    OK(gosuv_supervisor_add(sup, yaml));
    CHECK(config_has(sup, "injected", "\"stop_signal\":\"KILL\""));
    CHECK(config_has(sup, "injected", "LD_PRELOAD=/tmp/evil.so"));
    CHECK(config_has(sup, "injected", "\"directory\":\"/\""));
    OK(gosuv_supervisor_remove(sup, "injected"));
    CHECK(program_count(sup) == 0);

    /* The builder: each string is one argument, whatever it holds. */
    {
        static const char *const quote[] = {"echo", "it's here"};
        p = argv_program("quote", quote, 2);
        OK(gosuv_supervisor_add_program(sup, p));
        OK(gosuv_supervisor_start(sup, "quote", WAIT, NULL));
        CHECK(tail_contains(sup, "quote", GOSUV_STREAM_STDOUT, "it's here\n"));
        gosuv_program_free(p);
    }
    {
        static const char *const grep[] = {"sh", "-c", "printf '%s|' \"$@\"; echo", "sh", "-r",
                                           "'foo'", "/etc", "two words", "new\nline", "$HOME"};
        p = argv_program("grep", grep, 10);
        OK(gosuv_supervisor_add_program(sup, p));
        OK(gosuv_supervisor_start(sup, "grep", WAIT, NULL));
        CHECK(tail_contains(sup, "grep", GOSUV_STREAM_STDOUT,
                            "-r|'foo'|/etc|two words|new\nline|$HOME|\n"));
        gosuv_program_free(p);
    }
    {
        const char *argv[] = {"echo", crafted};
        p = argv_program("crafted", argv, 2);
        OK(gosuv_supervisor_add_program(sup, p));
        CHECK(config_has(sup, "crafted", "\"stop_signal\":\"TERM\""));
        CHECK(config_has(sup, "crafted", "\"environ\":[]"));
        CHECK(config_lacks(sup, "crafted", "\"directory\""));
        CHECK(config_has(sup, "crafted",
                         "\"command\":[\"echo\",\"x'\\nstop_signal: KILL\\nenviron: "
                         "[LD_PRELOAD=/tmp/evil.so]\\ndirectory: '/\"]"));
        OK(gosuv_supervisor_start(sup, "crafted", WAIT, NULL));
        CHECK(tail_contains(sup, "crafted", GOSUV_STREAM_STDOUT, "x'\nstop_signal: KILL\n"));
        /* The shell command, quoted for the shell, is one setter argument too. */
        OK(gosuv_program_set_shell_command(p, "echo \"it's\" 'here'"));
        OK(gosuv_supervisor_update_program(sup, p, NULL));
        CHECK(config_has(sup, "crafted", "\"command\":\"echo \\\"it's\\\" 'here'\""));
        gosuv_program_free(p);
    }
    OK(gosuv_supervisor_remove(sup, "quote"));
    OK(gosuv_supervisor_remove(sup, "grep"));
    OK(gosuv_supervisor_remove(sup, "crafted"));
    printf("ok no injection\n");
}

static void test_env(gosuv_supervisor *sup) {
    static const char *const argv[] = {"sh", "-c", "echo \"A=$A B=$B C=$C\""};
    static const char *const env[] = {"A=first", "B=b"};
    static const char *const env2[] = {"B=only b"};
    gosuv_program *p = argv_program("env", argv, 3);
    OK(gosuv_program_set_env(p, env, 2));
    OK(gosuv_program_add_env(p, "C", "c=c\"c"));
    OK(gosuv_supervisor_add_program(sup, p));
    OK(gosuv_supervisor_start(sup, "env", WAIT, NULL));
    CHECK(tail_contains(sup, "env", GOSUV_STREAM_STDOUT, "A=first B=b C=c=c\"c\n"));
    /* set_env replaces the whole list. */
    OK(gosuv_program_set_env(p, env2, 1));
    OK(gosuv_supervisor_update_program(sup, p, NULL));
    OK(gosuv_supervisor_start(sup, "env", WAIT, NULL));
    CHECK(tail_contains(sup, "env", GOSUV_STREAM_STDOUT, "A= B=only b C=\n"));
    OK(gosuv_supervisor_remove(sup, "env"));
    gosuv_program_free(p);
    printf("ok env\n");
}

static void test_stdin_pipe(gosuv_supervisor *sup) {
    static const char *const cat[] = {"cat"};
    static const char line[] = "hello through the pipe\n";
    gosuv_program_status st;
    size_t written = 99;
    gosuv_program *p = argv_program("cat", cat, 1);
    OK(gosuv_program_set_stdin(p, GOSUV_STDIN_PIPE));
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    /* No process yet. */
    EXPECT(gosuv_supervisor_write_stdin(sup, "cat", line, strlen(line), 0, &written),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(written == 0);
    OK(gosuv_supervisor_start(sup, "cat", WAIT, NULL));
    OK(gosuv_supervisor_write_stdin(sup, "cat", line, strlen(line), WAIT, &written));
    CHECK(written == strlen(line));
    OK(gosuv_supervisor_write_stdin(sup, "cat", "", 0, 0, NULL));
    OK(gosuv_supervisor_write_stdin(sup, "cat", NULL, 0, GOSUV_WAIT_FOREVER, NULL));
    EXPECT(gosuv_supervisor_write_stdin(sup, "cat", NULL, 3, 0, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    CHECK(tail_contains(sup, "cat", GOSUV_STREAM_STDOUT, line));
    /* The close is end-of-file: cat exits 0. */
    OK(gosuv_supervisor_close_stdin(sup, "cat"));
    OK(gosuv_supervisor_wait_for(sup, "cat", GOSUV_STATE_EXITED, WAIT, &st));
    CHECK(st.has_exit_code && st.exit_code == 0);
    /* With no run, closing again does nothing. */
    OK(gosuv_supervisor_close_stdin(sup, "cat"));
    OK(gosuv_supervisor_close_stdin(sup, "cat"));
    OK(gosuv_supervisor_remove(sup, "cat"));

    /* A pipe that breaks part way: `*out_written` says what went before. */
    {
        static const char *const sip[] = {
            "sh", "-c", "head -c 100000 >/dev/null; exec 0<&-; echo closed; exec sleep 60"};
        size_t big = 4 << 20;
        char *buf = calloc(1, big);
        p = argv_program("sip", sip, 3);
        OK(gosuv_program_set_stdin(p, GOSUV_STDIN_PIPE));
        OK(gosuv_supervisor_add_program(sup, p));
        gosuv_program_free(p);
        OK(gosuv_supervisor_start(sup, "sip", WAIT, NULL));
        EXPECT(gosuv_supervisor_write_stdin(sup, "sip", buf, big, GOSUV_WAIT_FOREVER, &written),
               GOSUV_RESULT_IO);
        CHECK(written >= 100000 && written < big);
        OK(gosuv_supervisor_remove(sup, "sip"));
        free(buf);
    }

    /* A program that never reads: a write runs out of time, with how much went. */
    {
        static const char *const deaf[] = {"sleep", "60"};
        size_t big = 1 << 20;
        char *buf = calloc(1, big);
        double t;
        p = argv_program("deaf", deaf, 2);
        OK(gosuv_program_set_stdin(p, GOSUV_STDIN_PIPE));
        OK(gosuv_supervisor_add_program(sup, p));
        gosuv_program_free(p);
        OK(gosuv_supervisor_start(sup, "deaf", WAIT, NULL));
        t = now();
        EXPECT(gosuv_supervisor_write_stdin(sup, "deaf", buf, big, 200, &written),
               GOSUV_RESULT_TIMEOUT);
        CHECK(written > 0 && written < big);
        CHECK(now() - t < 5);
        EXPECT(gosuv_supervisor_write_stdin(sup, "deaf", buf, 16, 0, &written),
               GOSUV_RESULT_TIMEOUT);
        CHECK(written == 0);
        EXPECT(gosuv_supervisor_write_stdin(sup, "deaf", buf, 16, GOSUV_WAIT_FOREVER - 1, NULL),
               GOSUV_RESULT_INVALID_ARGUMENT);
        OK(gosuv_supervisor_close_stdin(sup, "deaf"));
        EXPECT(gosuv_supervisor_write_stdin(sup, "deaf", buf, 16, 0, NULL),
               GOSUV_RESULT_INVALID_ARGUMENT);
        CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "closed") != NULL);
        OK(gosuv_supervisor_remove(sup, "deaf"));
        free(buf);
    }
    /* A program without a pipe. */
    {
        static const char *const plain[] = {"sleep", "60"};
        p = argv_program("plain", plain, 2);
        OK(gosuv_supervisor_add_program(sup, p));
        gosuv_program_free(p);
        OK(gosuv_supervisor_start(sup, "plain", WAIT, NULL));
        EXPECT(gosuv_supervisor_write_stdin(sup, "plain", "x", 1, 0, NULL),
               GOSUV_RESULT_INVALID_ARGUMENT);
        CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "no stdin pipe") != NULL);
        EXPECT(gosuv_supervisor_close_stdin(sup, "plain"), GOSUV_RESULT_INVALID_ARGUMENT);
        EXPECT(gosuv_supervisor_close_stdin(sup, "nosuch"), GOSUV_RESULT_NOT_FOUND);
        OK(gosuv_supervisor_remove(sup, "plain"));
    }
    printf("ok stdin pipe\n");
}

/* The host's stdin, made a pipe this test writes to: an inheriting cat reads it. */
static void test_stdin_inherit(gosuv_supervisor *sup) {
    static const char *const cat[] = {"cat"};
    int fds[2];
    int saved = dup(0);
    gosuv_program *p = argv_program("inherit", cat, 1);
    gosuv_program_status st;
    OK(gosuv_program_set_stdin(p, GOSUV_STDIN_INHERIT));
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    CHECK(pipe(fds) == 0);
    dup2(fds[0], 0);
    close(fds[0]);
    OK(gosuv_supervisor_start(sup, "inherit", WAIT, NULL));
    /* The host's own copy goes back: cat holds the pipe's read end now. */
    dup2(saved, 0);
    close(saved);
    CHECK(write(fds[1], "from the host's stdin\n", 22) == 22);
    close(fds[1]);
    CHECK(tail_contains(sup, "inherit", GOSUV_STREAM_STDOUT, "from the host's stdin\n"));
    OK(gosuv_supervisor_wait_for(sup, "inherit", GOSUV_STATE_EXITED, WAIT, &st));
    OK(gosuv_supervisor_remove(sup, "inherit"));
    printf("ok stdin inherit\n");
}

static void test_output_modes(gosuv_supervisor *sup) {
    static const char *const talk[] = {"sh", "-c", "echo out-line; echo err-line >&2"};
    char path[600], got[256];
    size_t n = 0;
    ssize_t r;
    int fds[2];
    gosuv_program *p = argv_program("teed", talk, 3);
    CHECK(pipe(fds) == 0);
    OK(gosuv_program_set_output(p, GOSUV_STREAM_STDOUT, GOSUV_OUTPUT_TEE, fds[1]));
    /* A descriptor that is not open, or open for reading only, is refused at once. */
    EXPECT(gosuv_program_set_output(p, GOSUV_STREAM_STDERR, GOSUV_OUTPUT_TEE, 999999),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_output(p, GOSUV_STREAM_STDERR, GOSUV_OUTPUT_TEE, fds[0]),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "read") != NULL);
    /* gosuv holds its own copy. */
    close(fds[1]);
    EXPECT(gosuv_program_set_output(p, 7, GOSUV_OUTPUT_LOG, -1), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_output(p, GOSUV_STREAM_STDOUT, 9, -1),
           GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    OK(gosuv_supervisor_start(sup, "teed", WAIT, NULL));
    CHECK(tail_contains(sup, "teed", GOSUV_STREAM_STDOUT, "out-line\n"));
    /* The copy ends when the program is removed (gosuv's copy of the descriptor goes). */
    OK(gosuv_supervisor_remove(sup, "teed"));
    while ((r = read(fds[0], got + n, sizeof got - 1 - n)) > 0) {
        n += (size_t)r;
    }
    got[n] = '\0';
    close(fds[0]);
    CHECK(strcmp(got, "out-line\n") == 0);

    p = argv_program("quiet", talk, 3);
    OK(gosuv_program_set_output(p, GOSUV_STREAM_STDOUT, GOSUV_OUTPUT_DISCARD, -1));
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    OK(gosuv_supervisor_start(sup, "quiet", WAIT, NULL));
    CHECK(tail_contains(sup, "quiet", GOSUV_STREAM_STDERR, "err-line\n"));
    OK(gosuv_supervisor_wait_for(sup, "quiet", GOSUV_STATE_EXITED, WAIT, NULL));
    {
        char buf[64];
        size_t len = 99;
        OK(gosuv_supervisor_tail(sup, "quiet", GOSUV_STREAM_STDOUT, 0, buf, sizeof buf, &len));
        CHECK(len == 0);
    }
    snprintf(path, sizeof path, "%s/logs/quiet.stdout.log", dir);
    CHECK(access(path, F_OK) != 0);
    OK(gosuv_supervisor_remove(sup, "quiet"));

    /* With redirect_stderr, stderr goes where stdout goes: a choice for it is refused. */
    p = argv_program("merged", talk, 3);
    OK(gosuv_program_set_redirect_stderr(p, true));
    OK(gosuv_program_set_output(p, GOSUV_STREAM_STDERR, GOSUV_OUTPUT_DISCARD, -1));
    EXPECT(gosuv_supervisor_add_program(sup, p), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "redirect_stderr") != NULL);
    gosuv_program_free(p);

    /* A log probe cannot read discarded output. */
    p = argv_program("blind", talk, 3);
    OK(gosuv_program_set_output(p, GOSUV_STREAM_STDOUT, GOSUV_OUTPUT_DISCARD, -1));
    OK(gosuv_program_set_output(p, GOSUV_STREAM_STDERR, GOSUV_OUTPUT_DISCARD, -1));
    OK(gosuv_program_set_ready_log(p, "out", 0));
    EXPECT(gosuv_supervisor_add_program(sup, p), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "discarded") != NULL);
    gosuv_program_free(p);
    CHECK(program_count(sup) == 0);
    printf("ok output modes\n");
}

static void test_signal(gosuv_supervisor *sup) {
    static const char *const trap[] = {
        "sh", "-c", "trap 'echo got USR1' USR1; echo ready; while :; do sleep 0.05; done"};
    gosuv_program *p = argv_program("trap", trap, 3);
    OK(gosuv_program_set_ready_log(p, "^ready", 10000));
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    EXPECT(gosuv_supervisor_signal(sup, "trap", SIGUSR1), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "stopped") != NULL);
    OK(gosuv_supervisor_start(sup, "trap", GOSUV_WAIT_FOREVER, NULL));
    OK(gosuv_supervisor_signal(sup, "trap", SIGUSR1));
    CHECK(tail_contains(sup, "trap", GOSUV_STREAM_STDOUT, "got USR1\n"));
    EXPECT(gosuv_supervisor_signal(sup, "trap", 0), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_signal(sup, "trap", 9999), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_signal(sup, "trap", -1), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_signal(sup, "nosuch", SIGUSR1), GOSUV_RESULT_NOT_FOUND);
    EXPECT(gosuv_supervisor_signal(sup, NULL, SIGUSR1), GOSUV_RESULT_NULL_ARGUMENT);
    OK(gosuv_supervisor_remove(sup, "trap"));
    printf("ok signal\n");
}

static void test_wait_forever(gosuv_supervisor *sup) {
    static const char *const sleeper[] = {"sleep", "60"};
    gosuv_program *p = argv_program("forever", sleeper, 2);
    OK(gosuv_supervisor_add_program(sup, p));
    gosuv_program_free(p);
    OK(gosuv_supervisor_start(sup, "forever", GOSUV_WAIT_FOREVER, NULL));
    OK(gosuv_supervisor_wait(sup, "forever", GOSUV_WAIT_FOREVER, NULL));
    OK(gosuv_supervisor_wait_for(sup, "forever", GOSUV_STATE_RUNNING, UINT64_MAX, NULL));
    EXPECT(gosuv_supervisor_wait(sup, "forever", UINT64_MAX - 1, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_restart(sup, "forever", 86400001u, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_wait(sup, "forever", UINT32_MAX, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_supervisor_wait(sup, "forever", 86400000u, NULL));
    OK(gosuv_supervisor_wait(sup, "forever", 0, NULL));
    OK(gosuv_supervisor_stop(sup, "forever", GOSUV_WAIT_FOREVER, NULL));
    OK(gosuv_supervisor_remove(sup, "forever"));
    printf("ok wait forever\n");
}

/* A newer header's options: more fields after the known ones. */
struct newer_options {
    gosuv_supervisor_options known;
    uint64_t later_field;
};

/* The _init functions write `size` bytes and no more: what a library newer than the
 * caller's header must do (a by-value return would write its larger struct into the
 * caller's smaller slot). */
static void test_init_functions(void) {
    unsigned char buf[512];
    size_t i;
    bool clean = true;
    gosuv_supervisor_options *o = (gosuv_supervisor_options *)(void *)buf;
    gosuv_program_info *info = (gosuv_program_info *)(void *)buf;
    gosuv_reload_report *report = (gosuv_reload_report *)(void *)buf;
    const size_t osize = offsetof(gosuv_supervisor_options, min_fds) + sizeof(uint64_t);
    /* An older caller's smaller options (the first version's size): nothing past it. */
    memset(buf, 0xa5, sizeof buf);
    OK(gosuv_supervisor_options_init(o, osize));
    CHECK(o->size == osize && o->base_dir == NULL && o->log_dir == NULL && !o->subreaper &&
          o->kill_on_parent_death && o->min_fds == 0);
    for (i = osize; i < sizeof buf; i++) {
        clean = clean && buf[i] == 0xa5;
    }
    CHECK(clean);
    /* A newer caller's larger struct: its unknown fields are zeroed, nothing past `size`. */
    memset(buf, 0xa5, sizeof buf);
    OK(gosuv_supervisor_options_init(o, sizeof(gosuv_supervisor_options) + 16));
    CHECK(o->size == sizeof(gosuv_supervisor_options) + 16 && o->kill_on_parent_death);
    clean = true;
    for (i = sizeof(gosuv_supervisor_options); i < sizeof(gosuv_supervisor_options) + 16; i++) {
        clean = clean && buf[i] == 0;
    }
    for (i = sizeof(gosuv_supervisor_options) + 16; i < sizeof buf; i++) {
        clean = clean && buf[i] == 0xa5;
    }
    CHECK(clean);
    /* Too small, or NULL: refused, nothing written. */
    memset(buf, 0xa5, sizeof buf);
    EXPECT(gosuv_supervisor_options_init(o, osize - 1), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "size") != NULL);
    CHECK(buf[0] == 0xa5 && buf[osize - 1] == 0xa5);
    EXPECT(gosuv_supervisor_options_init(NULL, sizeof *o), GOSUV_RESULT_NULL_ARGUMENT);

    memset(buf, 0xa5, sizeof buf);
    OK(gosuv_program_info_init(info, sizeof *info));
    CHECK(info->size == sizeof *info && info->pid == 0 && !info->ready);
    CHECK(buf[sizeof *info] == 0xa5);
    EXPECT(gosuv_program_info_init(info, 4), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_info_init(NULL, sizeof *info), GOSUV_RESULT_NULL_ARGUMENT);

    memset(buf, 0xa5, sizeof buf);
    OK(gosuv_reload_report_init(report, sizeof *report));
    CHECK(report->size == sizeof *report && report->added == NULL && report->added_count == 0 &&
          report->unchanged == NULL && report->unchanged_count == 0);
    CHECK(buf[sizeof *report] == 0xa5);
    gosuv_reload_report_free(report);
    EXPECT(gosuv_reload_report_init(report, sizeof(size_t)), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_reload_report_init(NULL, sizeof *report), GOSUV_RESULT_NULL_ARGUMENT);
    printf("ok init functions\n");
}

static void test_sizes(void) {
    gosuv_supervisor_options o;
    struct newer_options newer;
    gosuv_supervisor *s = NULL;
    gosuv_program_info info;
    struct {
        gosuv_program_info known;
        uint64_t later[4];
    } big_info;
    char logs[600];
    OK(gosuv_supervisor_options_init(&o, sizeof o));
    CHECK(o.size == sizeof o);
    snprintf(logs, sizeof logs, "%s/sizes-logs", dir);
    o.base_dir = dir;
    o.log_dir = logs;
    o.size = sizeof(size_t);
    EXPECT(gosuv_supervisor_new(&o, &s), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "options->size") != NULL);
    o.size = 0;
    EXPECT(gosuv_supervisor_new(&o, &s), GOSUV_RESULT_INVALID_ARGUMENT);
    /* A bool field holding neither 0 nor 1 (a struct filled by memset) is refused, never
     * taken as a Rust bool. */
    o.size = sizeof o;
    memset(&o.subreaper, 2, 1);
    EXPECT(gosuv_supervisor_new(&o, &s), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "options->subreaper") != NULL);
    o.subreaper = false;
    memset(&newer, 0, sizeof newer);
    OK(gosuv_supervisor_options_init(&newer.known, sizeof newer));
    CHECK(newer.known.size == sizeof newer && newer.later_field == 0);
    newer.known.base_dir = dir;
    newer.known.log_dir = logs;
    OK(gosuv_supervisor_new(&newer.known, &s));
    {
        static const char *const sleeper[] = {"sleep", "60"};
        gosuv_program *p = argv_program("sized", sleeper, 2);
        OK(gosuv_supervisor_add_program(s, p));
        gosuv_program_free(p);
    }
    /* Only `size` of a struct gosuv writes is read: the rest may be uninitialised (valgrind
     * sees it). */
    {
        gosuv_program_info *fresh = malloc(sizeof *fresh);
        CHECK(fresh != NULL);
        if (fresh != NULL) {
            fresh->size = sizeof *fresh;
            OK(gosuv_supervisor_program_info(s, "sized", fresh));
            CHECK(fresh->state == GOSUV_STATE_STOPPED && !fresh->has_exit_code);
            free(fresh);
        }
    }
    OK(gosuv_program_info_init(&info, sizeof info));
    CHECK(info.size == sizeof info);
    info.size = 4;
    EXPECT(gosuv_supervisor_program_info(s, "sized", &info), GOSUV_RESULT_INVALID_ARGUMENT);
    memset(&big_info, 0x5a, sizeof big_info);
    big_info.known.size = sizeof big_info;
    OK(gosuv_supervisor_program_info(s, "sized", &big_info.known));
    CHECK(big_info.known.size == sizeof big_info);
    CHECK(big_info.known.state == GOSUV_STATE_STOPPED && big_info.known.pid == 0);
    /* Past what this library knows, nothing is written. */
    CHECK(big_info.later[0] == 0x5a5a5a5a5a5a5a5aull);
    gosuv_supervisor_free(s);
    printf("ok sizes\n");
}

static void test_typed_accessors(gosuv_supervisor *sup) {
    static const char *const ready_argv[] = {"sh", "-c", "echo up; exec sleep 60"};
    static const char *const other_argv[] = {"sleep", "61"};
    gosuv_program *a = argv_program("alpha", ready_argv, 3);
    gosuv_program *b = argv_program("beta", other_argv, 2);
    gosuv_program *c = argv_program("gamma", other_argv, 2);
    const gosuv_program *set1[3];
    const gosuv_program *set2[2];
    gosuv_reload_report report;
    gosuv_program_info info;
    char **names = NULL;
    size_t count = 0;
    OK(gosuv_reload_report_init(&report, sizeof report));
    OK(gosuv_program_info_init(&info, sizeof info));
    OK(gosuv_program_set_ready_log(a, "^up$", 10000));
    set1[0] = a;
    set1[1] = b;
    set1[2] = c;
    OK(gosuv_supervisor_reload_programs(sup, set1, 3, &report));
    CHECK(report.added_count == 3 && report.changed_count == 0 && report.removed_count == 0 &&
          report.unchanged_count == 0);
    CHECK(report.added != NULL && strcmp(report.added[0], "alpha") == 0 &&
          strcmp(report.added[2], "gamma") == 0 && report.added[3] == NULL);
    gosuv_reload_report_free(&report);
    CHECK(report.added == NULL && report.added_count == 0);
    gosuv_reload_report_free(&report);

    OK(gosuv_supervisor_names(sup, &names, &count));
    CHECK(count == 3 && strcmp(names[0], "alpha") == 0 && strcmp(names[1], "beta") == 0 &&
          strcmp(names[2], "gamma") == 0 && names[3] == NULL);
    gosuv_string_array_free(names);

    OK(gosuv_supervisor_program_info(sup, "alpha", &info));
    CHECK(!info.ready && info.ready_at_ms == 0 && info.state == GOSUV_STATE_STOPPED);
    OK(gosuv_supervisor_start(sup, "alpha", WAIT, NULL));
    OK(gosuv_supervisor_program_info(sup, "alpha", &info));
    CHECK(info.ready && info.ready_at_ms > 0 && info.pid > 0 && info.state == GOSUV_STATE_RUNNING);
    CHECK(info.ownership == GOSUV_OWNERSHIP_GROUP || info.ownership == GOSUV_OWNERSHIP_CGROUP);
    CHECK(!info.has_health && info.waiting_for == 0);

    /* beta changes, gamma goes, alpha stays. */
    OK(gosuv_program_set_stop_timeout(b, 2));
    set2[0] = a;
    set2[1] = b;
    OK(gosuv_supervisor_reload_programs(sup, set2, 2, &report));
    CHECK(report.added_count == 0 && report.changed_count == 1 && report.removed_count == 1 &&
          report.unchanged_count == 1);
    CHECK(strcmp(report.changed[0], "beta") == 0 && strcmp(report.removed[0], "gamma") == 0 &&
          strcmp(report.unchanged[0], "alpha") == 0);
    gosuv_reload_report_free(&report);
    /* A report whose size is too small changes nothing. */
    report.size = 1;
    EXPECT(gosuv_supervisor_reload_programs(sup, set1, 3, &report),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(program_count(sup) == 2);
    OK(gosuv_reload_report_init(&report, sizeof report));
    OK(gosuv_supervisor_reload_yaml(sup, "- name: delta\n  command: [sleep, '1']\n", &report));
    CHECK(report.added_count == 1 && report.removed_count == 2 &&
          strcmp(report.added[0], "delta") == 0);
    gosuv_reload_report_free(&report);
    OK(gosuv_supervisor_reload_programs(sup, NULL, 0, NULL));
    CHECK(program_count(sup) == 0);
    gosuv_program_free(a);
    gosuv_program_free(b);
    gosuv_program_free(c);
    printf("ok typed accessors\n");
}

/* Bad inputs: an error, the builder and the supervisor as they were, no crash. */
static void test_bad_inputs(gosuv_supervisor *sup) {
    static const char *const argv[] = {"sleep", "60"};
    static const char *const with_null[] = {"sleep", NULL};
    static const int32_t bad_codes[] = {0, 256};
    gosuv_program *p = NULL;
    EXPECT(gosuv_program_new(NULL, &p), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_program_new("ok", NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_program_new("../etc", &p), GOSUV_RESULT_CONFIG);
    CHECK(p == NULL);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "invalid name") != NULL);
    EXPECT(gosuv_program_new("", &p), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_new("\xff", &p), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_argv(NULL, argv, 2), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_program_set_start_seconds(NULL, 1), GOSUV_RESULT_NULL_ARGUMENT);
    gosuv_program_free(NULL);

    OK(gosuv_program_new("bad", &p));
    /* No command yet. */
    EXPECT(gosuv_supervisor_add_program(sup, p), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "command") != NULL);
    EXPECT(gosuv_program_set_argv(p, argv, 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_argv(p, NULL, 2), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_program_set_argv(p, with_null, 2), GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_program_set_argv(p, argv, 2));
    EXPECT(gosuv_program_set_start_seconds(p, UINT64_MAX), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "start_seconds") != NULL);
    EXPECT(gosuv_program_set_start_seconds(p, 86401), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_stop_timeout(p, UINT64_MAX), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_start_retries(p, UINT32_MAX), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_log_backups(p, 1001), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_numprocs(p, 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_numprocs(p, UINT32_MAX), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_umask(p, 07777), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_exit_codes(p, bad_codes, 2), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_exit_codes(p, NULL, 2), GOSUV_RESULT_NULL_ARGUMENT);
    /* No expected exit code at all is refused, as `exit_codes: []` is in YAML. */
    EXPECT(gosuv_program_set_exit_codes(p, NULL, 0), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "exit_codes") != NULL);
    EXPECT(gosuv_program_set_exit_codes(p, bad_codes, 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_stop_signal(p, 9999), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_stop_signal(p, 0), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_stop_signal(p, SIGSTOP), GOSUV_RESULT_CONFIG);
    CHECK(strstr(message(GOSUV_RESULT_CONFIG), "stop_signal") != NULL);
    EXPECT(gosuv_program_set_autorestart(p, 3), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_cgroup(p, 99), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_stdin(p, 3), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_add_dependency(p, "x", 7), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_ready_log(p, "([", 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_ready_log(p, "x", UINT64_MAX), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_ready_tcp(p, "127.0.0.1:1", 1, 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_ready_http(p, "ftp://x/", 0, 0), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_health_tcp(p, "127.0.0.1:1", 0, 0, 1001), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_start_limit(p, 1, 1000), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_start_limit(p, 5, UINT64_MAX), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_directory(p, ""), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_user(p, ""), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_add_env(p, "A=B", "c"), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_add_env(p, "", "c"), GOSUV_RESULT_CONFIG);
    EXPECT(gosuv_program_set_logfile(p, 5, "x.log"), GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_program_add_dependency(p, "x", GOSUV_CONDITION_READY));
    EXPECT(gosuv_program_add_dependency(p, "x", GOSUV_CONDITION_READY), GOSUV_RESULT_CONFIG);
    /* A dependency on no program: refused at the add, nothing added. */
    EXPECT(gosuv_supervisor_add_program(sup, p), GOSUV_RESULT_CONFIG);
    CHECK(program_count(sup) == 0);
    OK(gosuv_program_clear_dependencies(p));
    /* Every refused setter left the builder as it was. */
    OK(gosuv_supervisor_add_program(sup, p));
    CHECK(config_has(sup, "bad", "\"start_seconds\":1,"));
    CHECK(config_has(sup, "bad", "\"start_retries\":3,"));
    CHECK(config_has(sup, "bad", "\"stop_signal\":\"TERM\""));
    CHECK(config_has(sup, "bad", "\"exit_codes\":[0]"));
    CHECK(config_lacks(sup, "bad", "\"ready\""));
    EXPECT(gosuv_supervisor_add_program(sup, p), GOSUV_RESULT_EXISTS);
    EXPECT(gosuv_supervisor_add_program(NULL, p), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_add_program(sup, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_update_program(sup, NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_names(sup, NULL, NULL), GOSUV_RESULT_NULL_ARGUMENT);
    EXPECT(gosuv_supervisor_program_info(sup, "bad", NULL), GOSUV_RESULT_NULL_ARGUMENT);
    OK(gosuv_supervisor_remove(sup, "bad"));
    {
        gosuv_program *other = NULL;
        OK(gosuv_program_new("other", &other));
        OK(gosuv_program_set_argv(other, argv, 2));
        EXPECT(gosuv_supervisor_update_program(sup, other, NULL), GOSUV_RESULT_NOT_FOUND);
        gosuv_program_free(other);
    }
    gosuv_program_free(p);
    gosuv_string_array_free(NULL);
    gosuv_reload_report_free(NULL);
    CHECK(program_count(sup) == 0);
    printf("ok bad inputs\n");
}

/* Counts and lengths no array could have are refused before anything is read or
 * allocated: the host gets INVALID_ARGUMENT, not an abort. */
static void test_huge_counts(gosuv_supervisor *sup) {
    const char *argv[] = {"sleep", "60"};
    const char *env[] = {"A=1"};
    int codes[] = {0, 1};
    size_t huge = (size_t)1 << (sizeof(size_t) > 4 ? 40 : 30);
    gosuv_program *p = NULL;
    const gosuv_program *list[1];
    size_t written = 7;
    OK(gosuv_program_new("huge", &p));
    EXPECT(gosuv_program_set_exit_codes(p, codes, huge), GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(message(GOSUV_RESULT_INVALID_ARGUMENT), "exit") != NULL);
    EXPECT(gosuv_program_set_exit_codes(p, codes, 257), GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_program_set_exit_codes(p, codes, 2));
    EXPECT(gosuv_program_set_argv(p, argv, huge), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_argv(p, argv, SIZE_MAX), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_env(p, env, huge), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_ready_exec(p, argv, huge, 0, 0), GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_program_set_health_exec(p, argv, huge, 0, 0, 0),
           GOSUV_RESULT_INVALID_ARGUMENT);
    OK(gosuv_program_set_argv(p, argv, 2));
    list[0] = p;
    EXPECT(gosuv_supervisor_reload_programs(sup, list, huge, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    EXPECT(gosuv_supervisor_reload_programs(sup, list, SIZE_MAX, NULL),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(program_count(sup) == 0);
    OK(gosuv_program_set_stdin(p, GOSUV_STDIN_PIPE));
    OK(gosuv_supervisor_add_program(sup, p));
    OK(gosuv_supervisor_start(sup, "huge", WAIT, NULL));
    EXPECT(gosuv_supervisor_write_stdin(sup, "huge", "x", SIZE_MAX, 0, &written),
           GOSUV_RESULT_INVALID_ARGUMENT);
    CHECK(written == 0);
    OK(gosuv_supervisor_remove(sup, "huge"));
    gosuv_program_free(p);
    printf("ok huge counts\n");
}

/* Watches for an instance of a numprocs program that is added all or none. */
struct watch {
    gosuv_supervisor *sup;
    volatile int stop;
    volatile int polling;
    int seen;
};

static void *watch_for_instance(void *arg) {
    struct watch *w = arg;
    gosuv_program_info info;
    while (!w->stop) {
        (void)gosuv_program_info_init(&info, sizeof info); /* not counted: another thread */
        if (gosuv_supervisor_program_info(w->sup, "many-0", &info) == GOSUV_RESULT_OK) {
            w->seen++;
        }
        w->polling = 1;
    }
    return NULL;
}

/* numprocs instances are added all or none, under one change: nobody ever sees the first
 * ones of an add that fails on a later one. An update of them likewise. */
static void test_numprocs_all_or_none(gosuv_supervisor *sup) {
    static const char *const sleeper[] = {"sleep", "60"};
    struct watch w = {sup, 0, 0, 0};
    pthread_t t;
    gosuv_program *taken = argv_program("many-39", sleeper, 2);
    gosuv_program *many = argv_program("many", sleeper, 2);
    bool restarted = true;
    OK(gosuv_supervisor_add_program(sup, taken));
    OK(gosuv_program_set_numprocs(many, 40));
    CHECK(pthread_create(&t, NULL, watch_for_instance, &w) == 0);
    while (!w.polling) {
        sched_yield();
    }
    EXPECT(gosuv_supervisor_add_program(sup, many), GOSUV_RESULT_EXISTS);
    w.stop = 1;
    pthread_join(t, NULL);
    CHECK(w.seen == 0);
    CHECK(program_count(sup) == 1);
    OK(gosuv_supervisor_remove(sup, "many-39"));
    OK(gosuv_program_set_numprocs(many, 3));
    OK(gosuv_supervisor_add_program(sup, many));
    CHECK(program_count(sup) == 3);
    OK(gosuv_supervisor_update_program(sup, many, &restarted));
    CHECK(!restarted);
    OK(gosuv_supervisor_remove(sup, "many-0"));
    EXPECT(gosuv_supervisor_update_program(sup, many, NULL), GOSUV_RESULT_NOT_FOUND);
    OK(gosuv_supervisor_remove(sup, "many-1"));
    OK(gosuv_supervisor_remove(sup, "many-2"));
    gosuv_program_free(taken);
    gosuv_program_free(many);
    printf("ok numprocs all or none\n");
}

int main(int argc, char **argv) {
    gosuv_supervisor_options o;
    gosuv_supervisor *sup = NULL;
    OK(gosuv_supervisor_options_init(&o, sizeof o));
    if (argc < 2) {
        fprintf(stderr, "usage: builder DIR\n");
        return 2;
    }
    dir = argv[1];
    o.base_dir = dir;
    if (gosuv_supervisor_new(&o, &sup) != GOSUV_RESULT_OK) {
        printf("cannot make a supervisor: %s\n", message(GOSUV_RESULT_IO));
        return 1;
    }
    test_every_setter(sup);
    test_no_injection(sup);
    test_env(sup);
    test_stdin_pipe(sup);
    test_stdin_inherit(sup);
    test_output_modes(sup);
    test_signal(sup);
    test_wait_forever(sup);
    test_typed_accessors(sup);
    test_bad_inputs(sup);
    test_huge_counts(sup);
    test_numprocs_all_or_none(sup);
    gosuv_supervisor_free(sup);
    test_sizes();
    test_init_functions();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
