/* minimal: the smallest useful libgosuv program (the README's example). Runs a worker
 * from the current directory, logs in ./logs, and stops it on the way out. */
#include <stdio.h>
#include <gosuv.h>

int main(void) {
    gosuv_supervisor *sup = NULL;
    gosuv_program_status st;
    char msg[512];
    gosuv_result r = gosuv_supervisor_new(NULL, &sup);
    if (r == GOSUV_RESULT_OK)
        r = gosuv_supervisor_add(sup, "{name: worker, command: 'echo hello; exec sleep 60'}");
    if (r == GOSUV_RESULT_OK)
        r = gosuv_supervisor_start(sup, "worker", 5000, &st); /* waits until running */
    if (r == GOSUV_RESULT_OK) {
        printf("worker is %s, pid %u\n", gosuv_state_name(st.state), (unsigned)st.pid);
    } else {
        gosuv_error_message(r, msg, sizeof msg); /* what went wrong, and what to do */
        fprintf(stderr, "gosuv: %s: %s\n", gosuv_result_name(r), msg);
    }
    gosuv_supervisor_free(sup); /* stops the worker and waits for it */
    return r == GOSUV_RESULT_OK ? 0 : 1;
}
