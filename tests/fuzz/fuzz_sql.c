/* tests/fuzz/fuzz_sql.c — libFuzzer target for the SQL lexer, parser and
 * compiler: any bytes as a script and as a query (against a small catalog,
 * as a pipeline's and as a step's); never a crash, a leak or a hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql/sql.h"

static dm_avro_schema_t *plays, *movies;
static json_t *plays_key, *movies_key;

static dm_err_t lookup(void *ctx, const char *name, const dm_avro_node_t **schema,
                       const json_t **key, dm_error_t *err)
{
    (void)ctx;
    if (!strcmp(name, "plays")) {
        *schema = plays->root;
        *key = plays_key;
        return DM_OK;
    }
    if (!strcmp(name, "movies")) {
        *schema = movies->root;
        *key = movies_key;
        return DM_OK;
    }
    return dm_error_set(err, DM_ERR_NOT_FOUND, "no source '%s'", name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!plays) {
        static const char p[] =
            "{\"type\":\"record\",\"name\":\"P\",\"fields\":[{\"name\":\"id\",\"type\":\"long\"},"
            "{\"name\":\"movie_id\",\"type\":\"long\"},{\"name\":\"country\",\"type\":\"string\"},"
            "{\"name\":\"amount\",\"type\":\"double\"},{\"name\":\"after\",\"type\":[\"null\","
            "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}]}"
            ","
            "{\"name\":\"ts\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}}]}";
        static const char m[] =
            "{\"type\":\"record\",\"name\":\"M\",\"fields\":[{\"name\":\"movie_id\",\"type\":"
            "\"long\"},{\"name\":\"title\",\"type\":\"string\"},{\"name\":\"ts\",\"type\":"
            "\"long\"}]}";
        if (dm_avro_schema_parse(p, strlen(p), &plays, NULL) ||
            dm_avro_schema_parse(m, strlen(m), &movies, NULL))
            abort();
        plays_key = json_pack("[s]", "id");
        movies_key = json_pack("[s]", "movie_id");
    }
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    dm_sql_stmt_t *st = NULL;
    size_t n = 0;
    if (!dm_sql_script_parse(text, &st, &n, NULL)) dm_sql_stmts_free(st, n);
    dm_sql_catalog_t cat = {lookup, NULL};
    json_t *out = NULL;
    if (!dm_sql_compile(text, &cat, false, NULL, &out, NULL)) json_decref(out);
    out = NULL;
    if (!dm_sql_compile(text, &cat, true, plays->root, &out, NULL)) json_decref(out);
    json_t *reads = dm_sql_reads(text, false, NULL);
    json_decref(reads);
    free(text);
    return 0;
}
