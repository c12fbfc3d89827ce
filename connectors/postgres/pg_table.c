/* connectors/postgres/pg_table.c — a captured table's schemas and events. */
#include "connectors/postgres/pg_table.h"

#include <stdlib.h>
#include <string.h>

#include "schema/wire.h"

/* ---- schemas ----------------------------------------------------------------------------- */

/* Appends name as an Avro name: characters outside [A-Za-z0-9_] become '_',
 * and a leading digit gets a '_' in front. */
static dm_err_t put_avro_name(dm_buf_t *b, const char *name)
{
    if (!*name || (*name >= '0' && *name <= '9')) dm_buf_append_u8(b, '_');
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        dm_err_t rc = dm_buf_append_u8(b, ok ? (uint8_t)c : '_');
        if (rc) return rc;
    }
    return DM_OK;
}

static dm_err_t put_value_record(dm_buf_t *b, const dm_pg_table_t *t, bool *interval_defined)
{
    dm_buf_append_str(b, "{\"type\":\"record\",\"name\":\"Value\",\"fields\":[");
    for (int i = 0; i < t->n_cols; i++) {
        const dm_pg_column_t *c = &t->cols[i];
        dm_buf_append_str(b, i ? ",{\"name\":\"" : "{\"name\":\"");
        put_avro_name(b, c->name);
        dm_buf_append_str(b, "\",\"type\":");
        if (!c->key_pos) dm_buf_append_str(b, "[\"null\",");
        dm_err_t rc = dm_pg_type_avro_json(&c->type, interval_defined, b);
        if (rc) return rc;
        dm_buf_append_str(b, c->key_pos ? "}" : "],\"default\":null}");
    }
    return dm_buf_append_str(b, "]}");
}

static const char source_record[] =
    "{\"type\":\"record\",\"name\":\"Source\",\"namespace\":\"datamesh.postgres\",\"fields\":["
    "{\"name\":\"connector\",\"type\":\"string\"},{\"name\":\"db\",\"type\":\"string\"},"
    "{\"name\":\"schema\",\"type\":\"string\"},{\"name\":\"table\",\"type\":\"string\"},"
    "{\"name\":\"lsn\",\"type\":\"long\"},{\"name\":\"commit_lsn\",\"type\":\"long\"},"
    "{\"name\":\"txid\",\"type\":\"long\"},{\"name\":\"ts_ms\",\"type\":\"long\"},"
    "{\"name\":\"snapshot\",\"type\":\"string\"}]}";

static char *take(dm_buf_t *b)
{
    const char *s;
    if (dm_buf_cstr(b, &s)) {
        dm_buf_free(b);
        return NULL;
    }
    return (char *)b->data;
}

dm_err_t dm_pg_table_schema_json(const dm_pg_table_t *t, const char *db, char **value_json,
                                 char **key_json, dm_error_t *err)
{
    *value_json = *key_json = NULL;
    dm_buf_t b = DM_BUF_INIT;
    bool interval_defined = false;
    dm_buf_append_str(&b, "{\"type\":\"record\",\"name\":\"Envelope\",\"namespace\":\"");
    put_avro_name(&b, db);
    dm_buf_append_u8(&b, '.');
    put_avro_name(&b, t->schema);
    dm_buf_append_u8(&b, '.');
    put_avro_name(&b, t->name);
    dm_buf_append_str(&b, "\",\"fields\":[{\"name\":\"before\",\"type\":[\"null\",");
    if (put_value_record(&b, t, &interval_defined)) goto fail;
    dm_buf_append_str(&b, "],\"default\":null},{\"name\":\"after\",\"type\":[\"null\",\"Value\"],"
                          "\"default\":null},{\"name\":\"op\",\"type\":\"string\"},"
                          "{\"name\":\"source\",\"type\":");
    dm_buf_append_str(&b, source_record);
    dm_buf_append_str(&b, "},{\"name\":\"ts_ms\",\"type\":\"long\"},{\"name\":\"unchanged\","
                          "\"type\":{\"type\":\"array\",\"items\":\"string\"},\"default\":[]}]}");
    if (!(*value_json = take(&b))) goto fail;
    if (!t->n_key) return DM_OK;
    dm_buf_t k = DM_BUF_INIT;
    interval_defined = false;
    dm_buf_append_str(&k, "{\"type\":\"record\",\"name\":\"Key\",\"namespace\":\"");
    put_avro_name(&k, db);
    dm_buf_append_u8(&k, '.');
    put_avro_name(&k, t->schema);
    dm_buf_append_u8(&k, '.');
    put_avro_name(&k, t->name);
    dm_buf_append_str(&k, "\",\"fields\":[");
    for (int i = 0; i < t->n_key; i++) {
        const dm_pg_column_t *c = &t->cols[t->key[i]];
        dm_buf_append_str(&k, i ? ",{\"name\":\"" : "{\"name\":\"");
        put_avro_name(&k, c->name);
        dm_buf_append_str(&k, "\",\"type\":");
        dm_pg_type_avro_json(&c->type, &interval_defined, &k);
        dm_buf_append_str(&k, "}");
    }
    dm_buf_append_str(&k, "]}");
    if ((*key_json = take(&k))) return DM_OK;
    free(*value_json);
    *value_json = NULL;
fail:
    dm_buf_free(&b);
    return dm_error_set(err, DM_ERR_NOMEM, "out of memory building the schema of %s.%s", t->schema,
                        t->name);
}

/* ---- events ------------------------------------------------------------------------------ */

/* One column's value: plain for key columns, [null, T] for the others. */
static dm_err_t column_value(const dm_pg_table_t *t, int i, const dm_pgoutput_datum_t *d,
                             dm_arena_t *arena, dm_avro_value_t *out, dm_error_t *err)
{
    const dm_pg_column_t *c = &t->cols[i];
    if (d->kind != 't') {
        if (c->key_pos)
            return dm_error_set(err, DM_ERR_INVALID,
                                "table %s.%s: key column %s has no value in the change", t->schema,
                                t->name, c->name);
        *out = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
        return DM_OK;
    }
    dm_err_t rc = dm_pg_value_from_text(&c->type, d->text, d->len, arena, out, err);
    if (rc) return dm_error_prefix(err, "table %s.%s column %s", t->schema, t->name, c->name), rc;
    out->branch = c->key_pos ? 0 : 1;
    return DM_OK;
}

static dm_err_t row_value(const dm_pg_table_t *t, const dm_pgoutput_datum_t *row, dm_arena_t *arena,
                          dm_avro_value_t *out, dm_error_t *err)
{
    if (!row) {
        *out = (dm_avro_value_t){.type = DM_AVRO_NULL, .branch = 0};
        return DM_OK;
    }
    dm_avro_value_t *f = dm_arena_calloc(arena, (size_t)t->n_cols + 1, sizeof(*f));
    if (!f) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_cols; i++) {
        dm_err_t rc = column_value(t, i, &row[i], arena, &f[i], err);
        if (rc) return rc;
    }
    *out = (dm_avro_value_t){
        .type = DM_AVRO_RECORD, .branch = 1, .len = (uint32_t)t->n_cols, .u.v = f};
    return DM_OK;
}

static dm_avro_value_t str_value(const char *s)
{
    return (dm_avro_value_t){
        .type = DM_AVRO_STRING, .len = (uint32_t)strlen(s), .u.p = (const uint8_t *)s};
}

dm_err_t dm_pg_event_encode(const dm_pg_table_t *t, const dm_pg_event_t *ev, dm_arena_t *arena,
                            dm_buf_t *key, bool *has_key, dm_buf_t *value, dm_error_t *err)
{
    *has_key = false;
    dm_avro_value_t env[6];
    dm_err_t rc = row_value(t, ev->before, arena, &env[0], err);
    if (!rc) rc = row_value(t, ev->after, arena, &env[1], err);
    if (rc) return rc;
    char op[2] = {ev->op, 0};
    env[2] = str_value(dm_arena_strdup(arena, op));
    dm_avro_value_t *src = dm_arena_calloc(arena, 9, sizeof(*src));
    /* Columns the server left out (unchanged TOASTed values). */
    uint32_t n_unchanged = 0;
    dm_avro_value_t *unchanged = dm_arena_calloc(arena, (size_t)t->n_cols + 1, sizeof(*unchanged));
    if (!src || !unchanged) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; ev->after && i < t->n_cols; i++)
        if (ev->after[i].kind == 'u') unchanged[n_unchanged++] = str_value(t->cols[i].name);
    src[0] = str_value("postgres");
    src[1] = str_value(ev->db);
    src[2] = str_value(t->schema);
    src[3] = str_value(t->name);
    src[4] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = (int64_t)ev->lsn};
    src[5] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = (int64_t)ev->commit_lsn};
    src[6] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->txid};
    src[7] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->commit_ms};
    src[8] = str_value(ev->op == 'r' ? "true" : "false");
    env[3] = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = 9, .u.v = src};
    env[4] = (dm_avro_value_t){.type = DM_AVRO_LONG, .u.l = ev->now_ms};
    env[5] = (dm_avro_value_t){.type = DM_AVRO_ARRAY, .len = n_unchanged, .u.v = unchanged};
    dm_avro_value_t v = {.type = DM_AVRO_RECORD, .len = 6, .u.v = env};
    if ((rc = dm_wire_put_header(value, t->value_id)) ||
        (rc = dm_avro_encode(t->value_schema->root, &v, value, err)))
        return dm_error_prefix(err, "table %s.%s", t->schema, t->name), rc;
    const dm_pgoutput_datum_t *row = ev->after ? ev->after : ev->before;
    if (!t->n_key || !row || !t->key_schema) return DM_OK;
    const dm_avro_value_t *cols = ev->after ? env[1].u.v : env[0].u.v;
    dm_avro_value_t *kf = dm_arena_calloc(arena, (size_t)t->n_key, sizeof(*kf));
    if (!kf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < t->n_key; i++)
        kf[i] = cols[t->key[i]];
    dm_avro_value_t kv = {.type = DM_AVRO_RECORD, .len = (uint32_t)t->n_key, .u.v = kf};
    if ((rc = dm_wire_put_header(key, t->key_id)) ||
        (rc = dm_avro_encode(t->key_schema->root, &kv, key, err)))
        return dm_error_prefix(err, "table %s.%s key", t->schema, t->name), rc;
    *has_key = true;
    return DM_OK;
}

bool dm_pg_row_key_text(const dm_pg_table_t *t, const dm_pgoutput_datum_t *row, dm_buf_t *out)
{
    for (int i = 0; i < t->n_key; i++) {
        const dm_pgoutput_datum_t *d = &row[t->key[i]];
        if (d->kind != 't') return false;
        if (i) dm_buf_append_u8(out, 0x1f);
        dm_buf_append(out, d->text, d->len);
    }
    return t->n_key > 0;
}

void dm_pg_table_clear(dm_pg_table_t *t)
{
    for (int i = 0; i < t->n_cols; i++)
        free(t->cols[i].name);
    free(t->cols);
    free(t->key);
    free(t->schema);
    free(t->name);
    dm_avro_schema_free(t->value_schema);
    dm_avro_schema_free(t->key_schema);
    memset(t, 0, sizeof(*t));
}
