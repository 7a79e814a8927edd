/*
 * Two workers, each ready once it prints "ready", supervised without YAML: the events
 * printed as they come, one worker stopped and the end of its output read, then a
 * shutdown. Usage: workers [DIR] (the base directory; logs go to DIR/logs).
 */
#include <stdio.h>
#include <stdlib.h>

#include <gosuv.h>

/* Stops the program with the message of a failed call. */
static void check(gosuv_result r) {
    char message[512];
    if (r != GOSUV_RESULT_OK) {
        gosuv_error_message(r, message, sizeof message);
        fprintf(stderr, "gosuv: %s\n", message);
        exit(1);
    }
}

/* Runs on a gosuv thread, once per state change. */
static void on_event(void *userdata, const gosuv_event *ev) {
    (void)userdata;
    printf("event: %s %s -> %s\n", ev->program, gosuv_state_name(ev->from), gosuv_state_name(ev->to));
    fflush(stdout);
}

int main(int argc, char **argv) {
    static const char *const names[] = {"alpha", "beta"};
    static const char *const worker[] = {
        "sh", "-c", "echo \"$GOSUV_PROGRAM works\"; echo ready; while sleep 0.1; do echo \"$GOSUV_PROGRAM works\"; done"};
    gosuv_supervisor_options options;
    gosuv_supervisor *sup;
    gosuv_subscription *events;
    char tail[1024];
    int i;

    check(gosuv_supervisor_options_init(&options, sizeof options));
    options.base_dir = argc > 1 ? argv[1] : ".";
    check(gosuv_supervisor_new(&options, &sup));
    check(gosuv_supervisor_on_event(sup, on_event, NULL, NULL, &events));
    for (i = 0; i < 2; i++) {
        gosuv_program *p;
        check(gosuv_program_new(names[i], &p));
        check(gosuv_program_set_argv(p, worker, 3));
        check(gosuv_program_set_ready_log(p, "^ready$", 10000));
        check(gosuv_supervisor_add_program(sup, p));
        gosuv_program_free(p);
        check(gosuv_supervisor_start(sup, names[i], 10000, NULL));
    }
    check(gosuv_supervisor_stop(sup, "beta", 10000, NULL));
    check(gosuv_supervisor_tail(sup, "beta", GOSUV_STREAM_STDOUT, 3, tail, sizeof tail, NULL));
    printf("beta's last lines:\n%s", tail);
    gosuv_supervisor_free(sup); /* stops alpha, ends the subscription after its last event */
    gosuv_subscription_free(events);
    printf("done\n");
    return 0;
}
