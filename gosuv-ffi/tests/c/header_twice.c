/* gosuv.h compiles cleanly as C11 and as C++17, included twice. Built by tests/c_examples.rs
 * with -Wall -Wextra -Werror -pedantic, and linked and run: it prints the version. */
#include <gosuv.h>
#include <gosuv.h>

#include <stdio.h>
#include <string.h>

int main(void) {
    gosuv_supervisor_options options;
    gosuv_program_status status;
    gosuv_result r = GOSUV_RESULT_OK;
    gosuv_state s = GOSUV_STATE_FATAL;
    gosuv_stream stream = GOSUV_STREAM_STDERR;
    memset(&status, 0, sizeof status);
    (void)gosuv_supervisor_options_init(&options, sizeof options);
    printf("version %s\n", gosuv_version());
    printf("%s %s %u\n", gosuv_result_name(r), gosuv_state_name(s), (unsigned)stream);
    return 0;
}
