/* connectors/iceberg/manifest.c — manifests and manifest lists: Avro
 * container files with the Iceberg spec's schemas, field ids on every field
 * (readers such as PyIceberg and Spark resolve by id, not by name). Entries
 * are built as Avro JSON (unions wrapped, bytes as code points 0-255) and
 * encoded through the schema module, so every record is checked against its
 * schema on the way out. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/iceberg/sort.h"
#include "connectors/iceberg/table.h"
#include "core/arena.h"
#include "core/buf.h"
#include "schema/dm_avro.h"
#include "schema/dm_avro_container.h"

const char *dm_ice_local_path(const char *uri)
{
    if (!strncmp(uri, "file://", 7)) return uri + 7;
    if (!strncmp(uri, "file:", 5)) return uri + 5;
    return uri;
}

void dm_ice_data_file_free(dm_ice_data_file_t *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n_partition; i++)
        if (f->partition_owned && f->partition_owned[i]) free((void *)f->partition[i].u.s.p);
    free(f->partition_owned);
    free(f->path);
    free(f->partition);
    free(f->col_ids);
    free(f->stats);
    free(f->eq_ids);
    free(f);
}

/* ---- schemas ------------------------------------------------------------------ */

#define KV(name, kid, vid, vtype, fid)                                                             \
    "{\"name\":\"" name "\",\"type\":[\"null\",{\"type\":\"array\",\"logicalType\":\"map\","       \
    "\"items\":{\"type\":\"record\",\"name\":\"k" #kid "_v" #vid "\",\"fields\":["                 \
    "{\"name\":\"key\",\"type\":\"int\",\"field-id\":" #kid "},"                                   \
    "{\"name\":\"value\",\"type\":\"" vtype "\",\"field-id\":" #vid "}]}}],"                       \
    "\"default\":null,\"field-id\":" #fid "}"

static const char *avro_type_of(dm_ice_type_t t)
{
    switch (t) {
    case DM_ICE_BOOLEAN: return "\"boolean\"";
    case DM_ICE_INT: return "\"int\"";
    case DM_ICE_DATE: return "{\"type\":\"int\",\"logicalType\":\"date\"}";
    case DM_ICE_LONG: return "\"long\"";
    case DM_ICE_TIMESTAMP:
        return "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\",\"adjust-to-utc\":false}";
    case DM_ICE_TIMESTAMPTZ:
        return "{\"type\":\"long\",\"logicalType\":\"timestamp-micros\",\"adjust-to-utc\":true}";
    case DM_ICE_FLOAT: return "\"float\"";
    case DM_ICE_DOUBLE: return "\"double\"";
    case DM_ICE_STRING: return "\"string\"";
    default: return "\"bytes\"";
    }
}

static const char *avro_branch_of(dm_ice_type_t t)
{
    switch (t) {
    case DM_ICE_BOOLEAN: return "boolean";
    case DM_ICE_INT:
    case DM_ICE_DATE: return "int";
    case DM_ICE_LONG:
    case DM_ICE_TIMESTAMP:
    case DM_ICE_TIMESTAMPTZ: return "long";
    case DM_ICE_FLOAT: return "float";
    case DM_ICE_DOUBLE: return "double";
    case DM_ICE_STRING: return "string";
    default: return "bytes";
    }
}

static dm_ice_type_t part_type(const dm_ice_schema_t *schema, const dm_ice_part_field_t *pf)
{
    const dm_ice_field_t *src = dm_ice_schema_find_id(schema, pf->source_id);
    dm_ice_type_t t = DM_ICE_INT;
    if (src) dm_ice_transform_result(pf->transform, src->type, &t);
    return t;
}

static dm_err_t entry_schema(const dm_ice_schema_t *schema, const dm_ice_spec_t *spec,
                             dm_buf_t *out)
{
    dm_err_t rc = dm_buf_append_str(
        out,
        "{\"type\":\"record\",\"name\":\"manifest_entry\",\"fields\":["
        "{\"name\":\"status\",\"type\":\"int\",\"field-id\":0},"
        "{\"name\":\"snapshot_id\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":1},"
        "{\"name\":\"sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-id\":"
        "3},"
        "{\"name\":\"file_sequence_number\",\"type\":[\"null\",\"long\"],\"default\":null,\"field-"
        "id\":4},"
        "{\"name\":\"data_file\",\"type\":{\"type\":\"record\",\"name\":\"r2\",\"fields\":["
        "{\"name\":\"content\",\"type\":\"int\",\"field-id\":134},"
        "{\"name\":\"file_path\",\"type\":\"string\",\"field-id\":100},"
        "{\"name\":\"file_format\",\"type\":\"string\",\"field-id\":101},"
        "{\"name\":\"partition\",\"type\":{\"type\":\"record\",\"name\":\"r102\",\"fields\":[");
    for (size_t i = 0; i < spec->n && !rc; i++)
        rc = dm_buf_printf(
            out, "%s{\"name\":\"%s\",\"type\":[\"null\",%s],\"default\":null,\"field-id\":%d}",
            i ? "," : "", spec->fields[i].name, avro_type_of(part_type(schema, &spec->fields[i])),
            spec->fields[i].field_id);
    if (!rc)
        rc = dm_buf_append_str(
            out, "]},\"field-id\":102},"
                 "{\"name\":\"record_count\",\"type\":\"long\",\"field-id\":103},"
                 "{\"name\":\"file_size_in_bytes\",\"type\":\"long\",\"field-id\":104}," //
            KV("column_sizes", 117, 118, "long", 108) ","                                //
            KV("value_counts", 119, 120, "long", 109) ","                                //
            KV("null_value_counts", 121, 122, "long", 110) ","                           //
            KV("nan_value_counts", 138, 139, "long", 137) ","                            //
            KV("lower_bounds", 126, 127, "bytes", 125) ","                               //
            KV("upper_bounds", 129, 130, "bytes",
               128) ","
                    "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,"
                    "\"field-id\":131},"
                    "{\"name\":\"split_offsets\",\"type\":[\"null\",{\"type\":\"array\",\"items\":"
                    "\"long\",\"element-id\":133}],\"default\":null,\"field-id\":132},"
                    "{\"name\":\"equality_ids\",\"type\":[\"null\",{\"type\":\"array\",\"items\":"
                    "\"int\",\"element-id\":136}],\"default\":null,\"field-id\":135},"
                    "{\"name\":\"sort_order_id\",\"type\":[\"null\",\"int\"],\"default\":null,"
                    "\"field-id\":140}"
                    "]},\"field-id\":2}]}");
    return rc;
}

static const char list_schema[] =
    "{\"type\":\"record\",\"name\":\"manifest_file\",\"fields\":["
    "{\"name\":\"manifest_path\",\"type\":\"string\",\"field-id\":500},"
    "{\"name\":\"manifest_length\",\"type\":\"long\",\"field-id\":501},"
    "{\"name\":\"partition_spec_id\",\"type\":\"int\",\"field-id\":502},"
    "{\"name\":\"content\",\"type\":\"int\",\"field-id\":517},"
    "{\"name\":\"sequence_number\",\"type\":\"long\",\"field-id\":515},"
    "{\"name\":\"min_sequence_number\",\"type\":\"long\",\"field-id\":516},"
    "{\"name\":\"added_snapshot_id\",\"type\":\"long\",\"field-id\":503},"
    "{\"name\":\"added_files_count\",\"type\":\"int\",\"field-id\":504},"
    "{\"name\":\"existing_files_count\",\"type\":\"int\",\"field-id\":505},"
    "{\"name\":\"deleted_files_count\",\"type\":\"int\",\"field-id\":506},"
    "{\"name\":\"added_rows_count\",\"type\":\"long\",\"field-id\":512},"
    "{\"name\":\"existing_rows_count\",\"type\":\"long\",\"field-id\":513},"
    "{\"name\":\"deleted_rows_count\",\"type\":\"long\",\"field-id\":514},"
    "{\"name\":\"partitions\",\"type\":[\"null\",{\"type\":\"array\",\"element-id\":508,"
    "\"items\":{\"type\":\"record\",\"name\":\"r508\",\"fields\":["
    "{\"name\":\"contains_null\",\"type\":\"boolean\",\"field-id\":509},"
    "{\"name\":\"contains_nan\",\"type\":[\"null\",\"boolean\"],\"default\":null,\"field-id\":518},"
    "{\"name\":\"lower_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":510},"
    "{\"name\":\"upper_bound\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":511}"
    "]}}],\"default\":null,\"field-id\":507},"
    "{\"name\":\"key_metadata\",\"type\":[\"null\",\"bytes\"],\"default\":null,\"field-id\":519}]}";

/* ---- Avro JSON helpers ------------------------------------------------------- */

/* Bytes as Avro JSON wants them: one code point (0-255) per byte. */
static json_t *json_bytes(const uint8_t *p, size_t len)
{
    char *s = malloc(len * 2 + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < 0x80)
            s[o++] = (char)p[i];
        else {
            s[o++] = (char)(0xc0 | p[i] >> 6);
            s[o++] = (char)(0x80 | (p[i] & 0x3f));
        }
    }
    json_t *j = json_stringn(s, o);
    free(s);
    return j;
}

static json_t *branch(const char *name, json_t *v)
{
    return json_pack("{s:o}", name, v);
}

static json_t *kv_list(const dm_ice_data_file_t *f, int which)
{
    json_t *a = json_array();
    for (size_t i = 0; i < f->n_cols; i++) {
        const dm_pq_column_stats_t *s = &f->stats[i];
        json_t *v = NULL;
        /* A struct column has no chunk of its own (every data file has rows,
         * so a leaf always counts values): its fields carry the metrics. */
        if (!s->values && !s->compressed_bytes) continue;
        switch (which) {
        case 0: v = json_integer(s->compressed_bytes); break;
        case 1: v = json_integer(s->values); break;
        case 2: v = json_integer(s->nulls); break;
        case 3: v = json_integer(s->nans); break;
        case 4: v = s->has_bounds ? json_bytes(s->min, s->min_len) : NULL; break;
        default: v = s->has_bounds ? json_bytes(s->max, s->max_len) : NULL; break;
        }
        if (v) json_array_append_new(a, json_pack("{s:i, s:o}", "key", f->col_ids[i], "value", v));
    }
    return branch("array", a);
}

static json_t *part_value(dm_ice_type_t t, const dm_pq_value_t *v)
{
    if (v->null) return json_null();
    json_t *x;
    switch (t) {
    case DM_ICE_BOOLEAN: x = json_boolean(v->u.b); break;
    case DM_ICE_INT:
    case DM_ICE_DATE: x = json_integer(v->u.i32); break;
    case DM_ICE_LONG:
    case DM_ICE_TIMESTAMP:
    case DM_ICE_TIMESTAMPTZ: x = json_integer(v->u.i64); break;
    case DM_ICE_FLOAT: x = json_real(v->u.f); break;
    case DM_ICE_DOUBLE: x = json_real(v->u.d); break;
    case DM_ICE_STRING: x = json_stringn((const char *)v->u.s.p, v->u.s.len); break;
    default: x = json_bytes(v->u.s.p, v->u.s.len); break;
    }
    return branch(avro_branch_of(t), x);
}

static json_t *entry_json(const dm_ice_schema_t *schema, const dm_ice_spec_t *spec,
                          const dm_ice_data_file_t *f, int64_t snapshot_id, int64_t seq)
{
    json_t *part = json_object();
    for (size_t i = 0; i < spec->n; i++)
        json_object_set_new(part, spec->fields[i].name,
                            part_value(part_type(schema, &spec->fields[i]), &f->partition[i]));
    json_t *eq = json_null();
    if (f->n_eq) {
        json_t *ids = json_array();
        for (size_t i = 0; i < f->n_eq; i++)
            json_array_append_new(ids, json_integer(f->eq_ids[i]));
        eq = branch("array", ids);
    }
    json_t *df = json_pack(
        "{s:i, s:s, s:s, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:n, s:n, s:o, s:o}",
        "content", f->content, "file_path", f->path, "file_format", "PARQUET", "partition", part,
        "record_count", (json_int_t)f->records, "file_size_in_bytes", (json_int_t)f->bytes,
        "column_sizes", kv_list(f, 0), "value_counts", kv_list(f, 1), "null_value_counts",
        kv_list(f, 2), "nan_value_counts", kv_list(f, 3), "lower_bounds", kv_list(f, 4),
        "upper_bounds", kv_list(f, 5), "key_metadata", "split_offsets", "equality_ids", eq,
        "sort_order_id",
        f->content == DM_ICE_CONTENT_DATA && f->sort_order_id
            ? branch("int", json_integer(f->sort_order_id))
            : json_null());
    return json_pack("{s:i, s:o, s:o, s:o, s:o}", "status", 1, "snapshot_id",
                     branch("long", json_integer(snapshot_id)), "sequence_number",
                     branch("long", json_integer(seq)), "file_sequence_number",
                     branch("long", json_integer(seq)), "data_file", df);
}

/* ---- container files ----------------------------------------------------------- */

/* Writes entries (Avro JSON) with schema_text to path through a temporary
 * file and a rename, fsynced, so a reader never sees half a manifest. */
static dm_err_t write_avro(const char *path, const char *schema_text,
                           const dm_avro_file_meta_t *meta, size_t n_meta, const json_t *entries,
                           int64_t *length, dm_error_t *err)
{
    dm_avro_schema_t *schema = NULL;
    dm_err_t rc = dm_avro_schema_parse(schema_text, strlen(schema_text), &schema, err);
    if (rc) return dm_error_prefix(err, "iceberg: manifest schema");
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        dm_avro_schema_free(schema);
        return dm_error_set(err, DM_ERR_IO, "iceberg: cannot create %s: %s", tmp, strerror(errno));
    }
    dm_avro_file_writer_t *w = NULL;
    rc = dm_avro_file_writer_new_meta(f, schema, DM_AVRO_FILE_DEFLATE, 0, meta, n_meta, &w, err);
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    for (size_t i = 0; !rc && i < json_array_size(entries); i++) {
        char *text = json_dumps(json_array_get(entries, i), JSON_COMPACT);
        dm_avro_value_t v;
        dm_arena_reset(&arena);
        rc = text ? dm_avro_from_json_text(schema->root, text, strlen(text), DM_AVRO_JSON_AVRO,
                                           &arena, &v, err)
                  : DM_ERR_NOMEM;
        if (!rc) rc = dm_avro_file_writer_append(w, &v, err);
        if (rc) dm_error_prefix(err, "iceberg: %s entry %zu", path, i);
        free(text);
    }
    dm_err_t crc = dm_avro_file_writer_close(w, rc ? NULL : err);
    if (!rc) rc = crc;
    if (!rc && (fflush(f) || fsync(fileno(f))))
        rc = dm_error_set(err, DM_ERR_IO, "iceberg: writing %s: %s", tmp, strerror(errno));
    if (!rc && length) *length = ftell(f);
    fclose(f);
    if (!rc && rename(tmp, path))
        rc = dm_error_set(err, DM_ERR_IO, "iceberg: renaming %s: %s", tmp, strerror(errno));
    if (rc) unlink(tmp);
    dm_arena_destroy(&arena);
    dm_avro_schema_free(schema);
    return rc;
}

/* The manifest list's per-partition-field summary of a manifest's files. */
static json_t *partition_summaries(const dm_ice_schema_t *schema, const dm_ice_spec_t *spec,
                                   dm_ice_data_file_t *const *files, size_t n)
{
    json_t *a = json_array();
    for (size_t k = 0; k < spec->n; k++) {
        dm_ice_type_t t = part_type(schema, &spec->fields[k]);
        const dm_pq_value_t *lo = NULL, *hi = NULL;
        bool nulls = false;
        for (size_t i = 0; i < n; i++) {
            const dm_pq_value_t *v = &files[i]->partition[k];
            if (v->null) {
                nulls = true;
                continue;
            }
            if (!lo || dm_ice_value_compare(t, v, lo) < 0) lo = v;
            if (!hi || dm_ice_value_compare(t, v, hi) > 0) hi = v;
        }
        uint8_t b[64];
        uint32_t len;
        json_t *l = json_null(), *u = json_null();
        if (lo && dm_ice_value_bytes(t, lo, b, &len)) l = branch("bytes", json_bytes(b, len));
        if (hi && dm_ice_value_bytes(t, hi, b, &len)) u = branch("bytes", json_bytes(b, len));
        json_array_append_new(a, json_pack("{s:b, s:n, s:o, s:o}", "contains_null", nulls,
                                           "contains_nan", "lower_bound", l, "upper_bound", u));
    }
    return branch("array", a);
}

dm_err_t dm_ice_manifest_write(const char *local_path, const char *uri,
                               const dm_ice_schema_t *schema, const dm_ice_spec_t *spec,
                               int content, int64_t snapshot_id, int64_t seq,
                               dm_ice_data_file_t *const *files, size_t n, json_t **out,
                               dm_error_t *err)
{
    *out = NULL;
    dm_buf_t text = DM_BUF_INIT;
    const char *schema_text;
    dm_err_t rc = entry_schema(schema, spec, &text);
    if (!rc) rc = dm_buf_cstr(&text, &schema_text);
    if (rc) {
        dm_buf_free(&text);
        return dm_error_set(err, rc, "iceberg: out of memory");
    }
    json_t *entries = json_array();
    int64_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(entries, entry_json(schema, spec, files[i], snapshot_id, seq));
        rows += files[i]->records;
    }
    json_t *sj = dm_ice_schema_to_json(schema), *pj = dm_ice_spec_fields_json(spec);
    char *s1 = json_dumps(sj, JSON_COMPACT), *s2 = json_dumps(pj, JSON_COMPACT);
    char sid[16], pid[16];
    snprintf(sid, sizeof(sid), "%d", schema->id);
    snprintf(pid, sizeof(pid), "%d", spec->id);
    const char *ctext = content ? "deletes" : "data";
    dm_avro_file_meta_t meta[] = {
        {"schema", (const uint8_t *)s1, strlen(s1)},
        {"schema-id", (const uint8_t *)sid, strlen(sid)},
        {"partition-spec", (const uint8_t *)s2, strlen(s2)},
        {"partition-spec-id", (const uint8_t *)pid, strlen(pid)},
        {"format-version", (const uint8_t *)"2", 1},
        {"content", (const uint8_t *)ctext, strlen(ctext)},
    };
    int64_t length = 0;
    rc = write_avro(local_path, schema_text, meta, 6, entries, &length, err);
    if (!rc)
        *out =
            json_pack("{s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:i, s:i, s:i, s:I, s:I, s:I, s:o, s:n}",
                      "manifest_path", uri, "manifest_length", (json_int_t)length,
                      "partition_spec_id", spec->id, "content", content, "sequence_number",
                      (json_int_t)seq, "min_sequence_number", (json_int_t)seq, "added_snapshot_id",
                      (json_int_t)snapshot_id, "added_files_count", (int)n, "existing_files_count",
                      0, "deleted_files_count", 0, "added_rows_count", (json_int_t)rows,
                      "existing_rows_count", (json_int_t)0, "deleted_rows_count", (json_int_t)0,
                      "partitions", partition_summaries(schema, spec, files, n), "key_metadata");
    free(s1);
    free(s2);
    json_decref(sj);
    json_decref(pj);
    json_decref(entries);
    dm_buf_free(&text);
    return rc;
}

dm_err_t dm_ice_manifest_list_write(const char *local_path, int64_t snapshot_id, int64_t parent_id,
                                    int64_t seq, const json_t *entries, dm_error_t *err)
{
    char sid[24], pid[24], sq[24];
    snprintf(sid, sizeof(sid), "%" PRId64, snapshot_id);
    if (parent_id >= 0)
        snprintf(pid, sizeof(pid), "%" PRId64, parent_id);
    else
        snprintf(pid, sizeof(pid), "null");
    snprintf(sq, sizeof(sq), "%" PRId64, seq);
    dm_avro_file_meta_t meta[] = {
        {"snapshot-id", (const uint8_t *)sid, strlen(sid)},
        {"parent-snapshot-id", (const uint8_t *)pid, strlen(pid)},
        {"sequence-number", (const uint8_t *)sq, strlen(sq)},
        {"format-version", (const uint8_t *)"2", 1},
    };
    return write_avro(local_path, list_schema, meta, 4, entries, NULL, err);
}

/* Reads every record of a container file as Avro JSON. */
static dm_err_t read_avro(const char *path, bool live_only, json_t **out, dm_error_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dm_error_set(err, DM_ERR_IO, "iceberg: cannot open %s: %s", path, strerror(errno));
    dm_buf_t data = DM_BUF_INIT;
    uint8_t chunk[65536];
    size_t got;
    dm_err_t rc = DM_OK;
    while (!rc && (got = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = dm_buf_append(&data, chunk, got);
    fclose(f);
    dm_avro_file_reader_t *r = NULL;
    if (!rc) rc = dm_avro_file_reader_new(data.data, data.len, &r, err);
    json_t *a = json_array();
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t text = DM_BUF_INIT;
    while (!rc) {
        dm_avro_value_t v;
        bool more;
        dm_arena_reset(&arena);
        if ((rc = dm_avro_file_reader_next(r, &arena, &v, &more, err)) || !more) break;
        dm_buf_reset(&text);
        rc = dm_avro_to_json(dm_avro_file_reader_value_node(r), &v, DM_AVRO_JSON_AVRO, &text, err);
        json_t *e = rc ? NULL : json_loadb((const char *)text.data, text.len, JSON_ALLOW_NUL, NULL);
        if (!rc && !e)
            rc = dm_error_set(err, DM_ERR_CORRUPT, "iceberg: %s: entry is not JSON", path);
        if (e && live_only && json_integer_value(json_object_get(e, "status")) == 2) {
            json_decref(e);
            continue;
        }
        if (e) json_array_append_new(a, e);
    }
    if (rc) {
        dm_error_prefix(err, "iceberg: reading %s", path);
        json_decref(a);
    } else {
        *out = a;
    }
    dm_buf_free(&text);
    dm_arena_destroy(&arena);
    dm_avro_file_reader_free(r);
    dm_buf_free(&data);
    return rc;
}

dm_err_t dm_ice_manifest_list_read(const char *local_path, json_t **out, dm_error_t *err)
{
    return read_avro(local_path, false, out, err);
}

dm_err_t dm_ice_manifest_read(const char *local_path, json_t **out, dm_error_t *err)
{
    return read_avro(local_path, true, out, err);
}
