/* tests/check.h — the project's tiny test framework.
 *
 *   static void test_arena_grows(void) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   int main(void) { RUN(test_arena_grows); return check_summary(); }
 *
 * One line per test case ("ok   name" / "FAIL name"), the failed checks with
 * file:line under it, and a summary line "N passed, N failed" at the end; the
 * exit status is non-zero when any test failed. REQUIRE stops the current test.
 */
#ifndef DM_TESTS_CHECK_H
#define DM_TESTS_CHECK_H

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed, check_current_failed;
static jmp_buf check_jmp;

static void check_fail(const char *file, int line, const char *what)
{
    fprintf(stdout, "    %s:%d: %s\n", file, line, what);
    check_current_failed++;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) check_fail(__FILE__, __LINE__, "CHECK(" #cond ")");                           \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            check_fail(__FILE__, __LINE__, "REQUIRE(" #cond ")");                                  \
            longjmp(check_jmp, 1);                                                                 \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        if (check_a_ != check_b_) {                                                                \
            char check_msg_[256];                                                                  \
            snprintf(check_msg_, sizeof(check_msg_), "%s == %s: %lld != %lld", #a, #b, check_a_,   \
                     check_b_);                                                                    \
            check_fail(__FILE__, __LINE__, check_msg_);                                            \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_U64(a, b)                                                                         \
    do {                                                                                           \
        unsigned long long check_a_ = (unsigned long long)(a), check_b_ = (unsigned long long)(b); \
        if (check_a_ != check_b_) {                                                                \
            char check_msg_[256];                                                                  \
            snprintf(check_msg_, sizeof(check_msg_), "%s == %s: 0x%llx != 0x%llx", #a, #b,         \
                     check_a_, check_b_);                                                          \
            check_fail(__FILE__, __LINE__, check_msg_);                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                           \
            char check_msg_[1024];                                                                 \
            snprintf(check_msg_, sizeof(check_msg_), "%s == %s: \"%s\" != \"%s\"", #a, #b,         \
                     check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");              \
            check_fail(__FILE__, __LINE__, check_msg_);                                            \
        }                                                                                          \
    } while (0)

/* The string haystack contains needle. */
#define CHECK_CONTAINS(haystack, needle)                                                           \
    do {                                                                                           \
        const char *check_h_ = (haystack), *check_n_ = (needle);                                   \
        if (!check_h_ || !strstr(check_h_, check_n_)) {                                            \
            char check_msg_[1024];                                                                 \
            snprintf(check_msg_, sizeof(check_msg_), "\"%s\" contains \"%s\"",                     \
                     check_h_ ? check_h_ : "(null)", check_n_);                                    \
            check_fail(__FILE__, __LINE__, check_msg_);                                            \
        }                                                                                          \
    } while (0)

static void check_run(const char *name, void (*fn)(void))
{
    check_current_failed = 0;
    if (setjmp(check_jmp) == 0) fn();
    if (check_current_failed) {
        check_failed++;
        fprintf(stdout, "FAIL %s\n", name);
    } else {
        check_passed++;
        fprintf(stdout, "ok   %s\n", name);
    }
    fflush(stdout);
}

#define RUN(fn) check_run(#fn, fn)

static int check_summary(void)
{
    fprintf(stdout, "%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

#endif
