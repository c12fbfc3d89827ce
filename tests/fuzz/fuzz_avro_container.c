/* tests/fuzz/fuzz_avro_container.c — libFuzzer target: the container file
 * reader (header, metadata, codecs, blocks, sync markers), every record
 * decoded and printed as plain JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "schema/dm_avro_container.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    dm_avro_file_reader_t *r;
    dm_error_t err = {0};
    if (dm_avro_file_reader_new(buf, size, &r, &err) == DM_OK) {
        dm_arena_t a;
        dm_arena_init(&a, 0);
        dm_buf_t out = DM_BUF_INIT;
        const dm_avro_node_t *root = dm_avro_file_reader_schema(r)->root;
        for (int i = 0; i < 100000; i++) {
            dm_avro_value_t v;
            bool got;
            if (dm_avro_file_reader_next(r, &a, &v, &got, &err) || !got) break;
            dm_buf_reset(&out);
            dm_avro_to_json(root, &v, DM_AVRO_JSON_PLAIN, &out, &err);
            dm_arena_reset(&a);
        }
        dm_buf_free(&out);
        dm_arena_destroy(&a);
        dm_avro_file_reader_free(r);
    }
    free(buf);
    return 0;
}
