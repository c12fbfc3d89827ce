/* tests/sdk/crasher.c — a processor that crashes on purpose, for the tests:
 * a record whose `amount` is 666 makes it write through a null pointer
 * (SIGSEGV), 667 makes it abort() (SIGABRT); others pass through. */
#include <datamesh/processor.h>
#include <stdio.h>
#include <stdlib.h>

/* Not known to the compiler as null, so the write happens at run time. */
volatile int *volatile nowhere;

typedef struct crasher {
    const dm_sdk_host_t *h;
    int amount;
} crasher_t;

static int c_open(const dm_processor_open_args_t *a, dm_processor_opened_t *out, char *err,
                  size_t errlen)
{
    /* static, not allocated: a crashed instance is never closed, and the
     * tests run under LeakSanitizer (every instance holds the same values) */
    static crasher_t one;
    crasher_t *c = &one;
    c->h = a->host;
    c->amount = a->host->field_index(a->ctx, 0, "amount");
    out->self = c;
    return 0;
}

static int c_process(void *self, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    crasher_t *c = self;
    for (uint32_t i = 0, n = c->h->count(b); i < n; i++) {
        const dm_value_t *v = c->h->value(b, i);
        int64_t amount = c->amount >= 0 ? v->u.v[c->amount].u.l : 0;
        if (amount == 666) *nowhere = 1;
        if (amount == 667) abort();
        if (c->h->emit(b, i)) return snprintf(err, errlen, "out of memory"), -1;
    }
    return 0;
}

static void c_close(void *self)
{
    (void)self;
}

DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {
    .abi_version = DM_PROCESSOR_ABI_VERSION,
    .size = sizeof(dm_processor_t),
    .name = "crasher",
    .open = c_open,
    .process = c_process,
    .close = c_close,
};
