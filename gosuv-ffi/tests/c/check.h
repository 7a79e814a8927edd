/*
 * What the C test programs share: pass/fail counting, CHECK/EXPECT/OK, the message of a
 * result, a monotonic clock. Each test program is one translation unit that includes this
 * once (after <gosuv.h>, <stdio.h> and <time.h>).
 */
#ifndef GOSUV_TEST_CHECK_H
#define GOSUV_TEST_CHECK_H

static int passed, failed;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (cond) {                                                                            \
            passed++;                                                                          \
        } else {                                                                               \
            failed++;                                                                          \
            printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond);                           \
        }                                                                                      \
    } while (0)

/* Checks a call's code, printing its message when it is not the expected one. */
#define EXPECT(call, code)                                                                     \
    do {                                                                                       \
        gosuv_result r_ = (call);                                                              \
        if (r_ == (code)) {                                                                    \
            passed++;                                                                          \
        } else {                                                                               \
            char m_[512];                                                                      \
            gosuv_error_message(r_, m_, sizeof m_);                                            \
            failed++;                                                                          \
            printf("FAILED %s:%d: %s gave %s (%s), wanted %s\n", __FILE__, __LINE__, #call,   \
                   gosuv_result_name(r_), m_, gosuv_result_name(code));                        \
        }                                                                                      \
    } while (0)

#define OK(call) EXPECT(call, GOSUV_RESULT_OK)

/* The detailed message of the last failure on this thread. */
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

#endif
