/* tests/fuzz/fuzz_avro_schema.c — libFuzzer target: the schema parser, and on
 * schemas it accepts, canonical form, fingerprints, codec compilation (with a
 * projection) and a compatibility check against itself. */
#include <stdint.h>
#include <stdlib.h>

#include "schema/dm_schema_compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dm_avro_schema_t *s;
    dm_error_t err = {0};
    if (dm_avro_schema_parse((const char *)data, size, &s, &err)) return 0;
    dm_buf_t b = DM_BUF_INIT;
    dm_avro_canonical(s->root, &b);
    dm_buf_free(&b);
    dm_avro_fingerprints_t fp;
    dm_avro_fingerprint(s->root, &fp);
    dm_avro_codec_t *c;
    if (dm_avro_codec_new(s, s, NULL, 0, &c, &err) == DM_OK) dm_avro_codec_free(c);
    const char *paths[] = {"a", "b.c"};
    if (dm_avro_codec_new(s, NULL, paths, 2, &c, &err) == DM_OK) dm_avro_codec_free(c);
    const dm_avro_schema_t *olds[] = {s};
    dm_schema_compat_report_t report = {0};
    dm_schema_compat_check(DM_COMPAT_FULL, s, olds, 1, &report);
    dm_schema_compat_report_free(&report);
    dm_avro_schema_free(s);
    return 0;
}
