/* A panic inside gosuv reaches C as GOSUV_RESULT_PANIC with its message, and the process
 * carries on using the library. Usage: panic DIR */
#include <gosuv.h>

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    char msg[512];
    gosuv_supervisor_options options;
    gosuv_supervisor *sup = NULL;
    gosuv_program_status st;
    gosuv_result r;

    if (argc < 2) {
        fprintf(stderr, "usage: panic DIR\n");
        return 2;
    }
    r = gosuv_debug_panic("boom from C");
    gosuv_error_message(r, msg, sizeof msg);
    printf("gosuv_debug_panic returned %s: %s\n", gosuv_result_name(r), msg);
    if (r != GOSUV_RESULT_PANIC || strstr(msg, "boom from C") == NULL) {
        return 1;
    }
    r = gosuv_debug_panic(NULL);
    printf("again: %s\n", gosuv_result_name(r));

    /* Still usable afterwards. */
    r = gosuv_supervisor_options_init(&options, sizeof options);
    if (r != GOSUV_RESULT_OK) {
        printf("gosuv_supervisor_options_init: %s\n", gosuv_result_name(r));
        return 1;
    }
    options.base_dir = argv[1];
    r = gosuv_supervisor_new(&options, &sup);
    if (r == GOSUV_RESULT_OK) {
        r = gosuv_supervisor_add(sup, "{name: after, command: [sleep, '300'], start_seconds: 0}");
    }
    if (r == GOSUV_RESULT_OK) {
        r = gosuv_supervisor_start(sup, "after", 20000, &st);
    }
    gosuv_error_message(r, msg, sizeof msg);
    printf("after the panic: %s %s\n", gosuv_result_name(r),
           r == GOSUV_RESULT_OK ? gosuv_state_name(st.state) : msg);
    gosuv_supervisor_free(sup);
    return r == GOSUV_RESULT_OK ? 0 : 1;
}
