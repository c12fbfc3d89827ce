/* tests/sdk/passthrough.c — an SDK processor that emits every record
 * unchanged (the scaffold's logic; the benchmark's SDK side). */
#include <datamesh/processor.h>
#include <stdio.h>

static int pt_open(const dm_processor_open_args_t *args, dm_processor_opened_t *out, char *err,
                   size_t errlen)
{
    (void)err;
    (void)errlen;
    out->self = (void *)args->host;
    return 0;
}

static int pt_process(void *self, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    const dm_sdk_host_t *host = self;
    uint32_t n = host->count(b);
    for (uint32_t i = 0; i < n; i++)
        if (host->emit(b, i)) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    return 0;
}

static void pt_close(void *self)
{
    (void)self;
}

DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {
    .abi_version = DM_PROCESSOR_ABI_VERSION,
    .size = sizeof(dm_processor_t),
    .name = "passthrough",
    .summary = "emits every record unchanged",
    .open = pt_open,
    .process = pt_process,
    .close = pt_close,
};
