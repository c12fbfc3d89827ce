/* tests/sdk/badabi.c — a library built for another processor ABI: the host
 * must refuse it without calling it. */
#include <datamesh/processor.h>
#include <stdlib.h>

static int never_open(const dm_processor_open_args_t *args, dm_processor_opened_t *out, char *err,
                      size_t errlen)
{
    abort(); /* the host must not call a library of another ABI */
}

static int never_process(void *self, dm_sdk_batch_t *b, char *err, size_t errlen)
{
    abort();
}

DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {
    .abi_version = DM_PROCESSOR_ABI_VERSION + 41,
    .size = sizeof(dm_processor_t),
    .name = "badabi",
    .open = never_open,
    .process = never_process,
};
