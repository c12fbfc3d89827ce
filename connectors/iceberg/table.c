/* connectors/iceberg/table.c — table metadata (format v2) and commits. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connectors/iceberg/table.h"
#include "core/clock.h"
#include "core/fs.h"

#define METADATA_LOG_MAX 100

void dm_ice_table_free(dm_ice_table_t *t)
{
    if (!t) return;
    free(t->ns);
    free(t->name);
    free(t->dir);
    free(t->location);
    free(t->metadata_location);
    json_decref(t->meta);
    dm_ice_schema_free(&t->schema);
    dm_ice_spec_free(&t->spec);
    free(t);
}

static json_t *find_by(json_t *array, const char *key, json_int_t id)
{
    size_t i;
    json_t *v;
    json_array_foreach(array, i, v) if (json_integer_value(json_object_get(v, key)) == id) return v;
    return NULL;
}

/* Takes a parsed metadata document as the table's current state. */
static dm_err_t adopt(dm_ice_table_t *t, json_t *meta, const char *location, dm_error_t *err)
{
    if (json_integer_value(json_object_get(meta, "format-version")) != 2) {
        json_decref(meta);
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "iceberg: %s is not a format v2 table",
                            location);
    }
    json_t *sj = find_by(json_object_get(meta, "schemas"), "schema-id",
                         json_integer_value(json_object_get(meta, "current-schema-id")));
    json_t *pj = find_by(json_object_get(meta, "partition-specs"), "spec-id",
                         json_integer_value(json_object_get(meta, "default-spec-id")));
    if (!sj || !pj) {
        json_decref(meta);
        return dm_error_set(err, DM_ERR_CORRUPT, "iceberg: %s lacks its current schema or spec",
                            location);
    }
    dm_ice_schema_t schema;
    dm_ice_spec_t spec;
    dm_err_t rc = dm_ice_schema_from_json(sj, &schema, err);
    if (rc) {
        json_decref(meta);
        return rc;
    }
    if ((rc = dm_ice_spec_from_json(pj, &spec, err))) {
        dm_ice_schema_free(&schema);
        json_decref(meta);
        return rc;
    }
    char *loc = strdup(location);
    dm_ice_schema_free(&t->schema);
    dm_ice_spec_free(&t->spec);
    json_decref(t->meta);
    free(t->metadata_location);
    t->schema = schema;
    t->spec = spec;
    t->meta = meta;
    t->metadata_location = loc;
    return loc ? DM_OK : DM_ERR_NOMEM;
}

static dm_err_t load(dm_ice_table_t *t, const char *location, dm_error_t *err)
{
    char *text;
    dm_err_t rc = dm_ice_read_file(dm_ice_local_path(location), &text, NULL, err);
    if (rc) return rc;
    json_error_t je;
    json_t *meta = json_loads(text, 0, &je);
    free(text);
    if (!meta)
        return dm_error_set(err, DM_ERR_CORRUPT, "iceberg: %s:%d: %s", location, je.line, je.text);
    return adopt(t, meta, location, err);
}

dm_err_t dm_ice_table_refresh(dm_ice_table_t *t, dm_error_t *err)
{
    char *location = NULL;
    dm_err_t rc = dm_ice_catalog_load(t->catalog, t->ns, t->name, t->dir, &location, err);
    if (!rc && !location)
        rc = dm_error_set(err, DM_ERR_NOT_FOUND, "iceberg: table %s.%s is not in the catalog",
                          t->ns, t->name);
    if (!rc && (!t->metadata_location || strcmp(location, t->metadata_location)))
        rc = load(t, location, err);
    free(location);
    return rc;
}

static json_t *new_metadata(const dm_ice_table_t *t, const dm_ice_schema_t *schema,
                            const dm_ice_spec_t *spec, json_t *properties,
                            const json_t *sort_fields)
{
    char uuid[37];
    dm_ice_uuid(uuid);
    int32_t last_col = 0;
    for (size_t i = 0; i < schema->n; i++)
        if (schema->fields[i].id > last_col) last_col = schema->fields[i].id;
    json_t *props = properties ? json_deep_copy(properties) : json_object();
    json_object_set_new(props, "write.format.default", json_string("parquet"));
    /* Order 0 is "unsorted" (always kept); a sort order is order 1 and the default. */
    json_t *orders = json_pack("[{s:i, s:[]}]", "order-id", 0, "fields");
    bool sorted = sort_fields && json_array_size(sort_fields);
    if (orders && sorted)
        json_array_append_new(
            orders, json_pack("{s:i, s:O}", "order-id", 1, "fields", (json_t *)sort_fields));
    return json_pack("{s:i, s:s, s:s, s:i, s:I, s:i, s:i, s:[o], s:i, s:[o], s:i, s:i, "
                     "s:o, s:o, s:{}, s:[], s:[], s:[]}",
                     "format-version", 2, "table-uuid", uuid, "location", t->location,
                     "last-sequence-number", 0, "last-updated-ms", (json_int_t)dm_wall_ms(),
                     "last-column-id", last_col, "current-schema-id", schema->id, "schemas",
                     dm_ice_schema_to_json(schema), "default-spec-id", spec->id, "partition-specs",
                     dm_ice_spec_to_json(spec), "last-partition-id", 999 + (int)spec->n,
                     "default-sort-order-id", sorted ? 1 : 0, "sort-orders", orders, "properties",
                     props, "refs", "snapshots", "snapshot-log", "metadata-log");
}

/* Swaps in a new metadata document through the catalog. */
static dm_err_t swap(dm_ice_table_t *t, json_t *meta, dm_error_t *err)
{
    char *text = json_dumps(meta, JSON_INDENT(1));
    if (!text) {
        json_decref(meta);
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    int64_t version = (int64_t)json_array_size(json_object_get(meta, "snapshot-log")) +
                      (int64_t)json_array_size(json_object_get(meta, "schemas"));
    char *location = NULL;
    dm_err_t rc = dm_ice_catalog_commit(t->catalog, t->ns, t->name, t->dir, t->metadata_location,
                                        text, version, &location, err);
    free(text);
    if (rc) {
        json_decref(meta);
        return rc;
    }
    rc = adopt(t, meta, location, err);
    free(location);
    return rc;
}

dm_err_t dm_ice_table_open(dm_ice_catalog_t *catalog, const char *warehouse, const char *ns,
                           const char *name, const dm_ice_schema_t *schema,
                           const char *partition_by, json_t *properties, dm_ice_table_t **out,
                           dm_error_t *err)
{
    return dm_ice_table_open_sorted(catalog, warehouse, ns, name, schema, partition_by, NULL,
                                    properties, out, err);
}

dm_err_t dm_ice_table_open_sorted(dm_ice_catalog_t *catalog, const char *warehouse, const char *ns,
                                  const char *name, const dm_ice_schema_t *schema,
                                  const char *partition_by, const json_t *sort_fields,
                                  json_t *properties, dm_ice_table_t **out, dm_error_t *err)
{
    *out = NULL;
    dm_ice_table_t *t = calloc(1, sizeof(*t));
    if (!t) return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    t->catalog = catalog;
    t->ns = strdup(ns);
    t->name = strdup(name);
    if (asprintf(&t->dir, "%s/%s/%s", warehouse, ns, name) < 0) t->dir = NULL;
    if (t->dir && asprintf(&t->location, "file://%s", t->dir) < 0) t->location = NULL;
    if (!t->ns || !t->name || !t->dir || !t->location) {
        dm_ice_table_free(t);
        return dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
    }
    dm_err_t rc = schema ? dm_mkdirs(t->dir, false, err) : DM_OK;
    for (int attempt = 0; !rc && attempt < 5; attempt++) {
        rc = dm_ice_table_refresh(t, err);
        if (rc != DM_ERR_NOT_FOUND || !schema) break;
        dm_ice_spec_t spec;
        if ((rc = dm_ice_spec_parse(partition_by, schema, &spec, err))) break;
        json_t *meta = new_metadata(t, schema, &spec, properties, sort_fields);
        dm_ice_spec_free(&spec);
        rc = meta ? swap(t, meta, err) : dm_error_set(err, DM_ERR_NOMEM, "iceberg: out of memory");
        if (rc != DM_ERR_AGAIN) break;
        rc = DM_OK; /* created by someone else meanwhile: load theirs */
    }
    if (rc) {
        dm_error_prefix(err, "iceberg table %s.%s", ns, name);
        dm_ice_table_free(t);
        return rc;
    }
    *out = t;
    return DM_OK;
}

const char *dm_ice_table_sink_summary(const dm_ice_table_t *t, const char *sink, const char *key)
{
    json_t *snaps = json_object_get(t->meta, "snapshots");
    json_t *cur = json_object_get(t->meta, "current-snapshot-id");
    json_int_t id = json_is_integer(cur) ? json_integer_value(cur) : -1;
    for (size_t hops = 0; id >= 0 && hops <= json_array_size(snaps); hops++) {
        json_t *s = find_by(snaps, "snapshot-id", id);
        if (!s) break;
        json_t *sum = json_object_get(s, "summary");
        const char *who = json_string_value(json_object_get(sum, "datamesh.sink"));
        if (who && !strcmp(who, sink)) return json_string_value(json_object_get(sum, key));
        json_t *parent = json_object_get(s, "parent-snapshot-id");
        id = json_is_integer(parent) ? json_integer_value(parent) : -1;
    }
    return NULL;
}

static const char *snapshot_manifest_list(const dm_ice_table_t *t, json_int_t *id)
{
    json_t *cur = json_object_get(t->meta, "current-snapshot-id");
    *id = json_is_integer(cur) ? json_integer_value(cur) : -1;
    json_t *s =
        *id >= 0 ? find_by(json_object_get(t->meta, "snapshots"), "snapshot-id", *id) : NULL;
    return s ? json_string_value(json_object_get(s, "manifest-list")) : NULL;
}

static int64_t summary_int(const dm_ice_table_t *t, json_int_t id, const char *key)
{
    json_t *s = find_by(json_object_get(t->meta, "snapshots"), "snapshot-id", id);
    const char *v = json_string_value(json_object_get(json_object_get(s, "summary"), key));
    return v ? strtoll(v, NULL, 10) : 0;
}

static int64_t random_id(void)
{
    char uuid[37];
    dm_ice_uuid(uuid);
    int64_t x = 0;
    for (int i = 0; i < 15; i++) {
        char c = uuid[i == 8 ? 15 : i]; /* skip the dash */
        x = x * 16 + (c <= '9' ? c - '0' : c - 'a' + 10);
    }
    return x & INT64_MAX;
}

static void set_str(json_t *o, const char *k, int64_t v)
{
    char b[24];
    snprintf(b, sizeof(b), "%" PRId64, v);
    json_object_set_new(o, k, json_string(b));
}

dm_err_t dm_ice_table_commit(dm_ice_table_t *t, const dm_ice_commit_t *c, dm_error_t *err)
{
    int64_t seq = json_integer_value(json_object_get(t->meta, "last-sequence-number")) + 1;
    int64_t snap = random_id(), now = dm_wall_ms();
    json_int_t parent;
    const char *parent_list = snapshot_manifest_list(t, &parent);
    json_t *entries = NULL;
    dm_err_t rc = DM_OK;
    if (parent_list && !c->replace)
        rc = dm_ice_manifest_list_read(dm_ice_local_path(parent_list), &entries, err);
    else
        entries = json_array();
    char uuid[37], path[4300], uri[4400], mpaths[2][4300] = {"", ""};
    dm_ice_uuid(uuid);
    for (int k = 0; k < 2 && !rc; k++) {
        size_t n = k ? c->n_deletes : c->n_data;
        if (!n) continue;
        snprintf(mpaths[k], sizeof(mpaths[k]), "%s/metadata/%s-m%d.avro", t->dir, uuid, k);
        snprintf(uri, sizeof(uri), "file://%s", mpaths[k]);
        json_t *e = NULL;
        rc = dm_mkdirs(mpaths[k], true, err);
        if (!rc)
            rc = dm_ice_manifest_write(mpaths[k], uri, &t->schema, &t->spec, k, snap, seq,
                                       k ? c->deletes : c->data, n, &e, err);
        if (!rc) json_array_append_new(entries, e);
    }
    snprintf(path, sizeof(path), "%s/metadata/snap-%" PRId64 "-1-%s.avro", t->dir, snap, uuid);
    if (!rc) rc = dm_ice_manifest_list_write(path, snap, parent, seq, entries, err);
    json_decref(entries);
    if (rc) goto cleanup;

    int64_t added = 0, size = 0, deletes = 0;
    for (size_t i = 0; i < c->n_data; i++)
        added += c->data[i]->records, size += c->data[i]->bytes;
    for (size_t i = 0; i < c->n_deletes; i++)
        deletes += c->deletes[i]->records;
    json_t *summary = json_object();
    json_object_set_new(summary, "operation",
                        json_string(c->replace     ? "replace"
                                    : c->n_deletes ? "overwrite"
                                                   : "append"));
    set_str(summary, "added-data-files", (int64_t)c->n_data);
    set_str(summary, "added-records", added);
    set_str(summary, "added-files-size", size);
    set_str(summary, "added-delete-files", (int64_t)c->n_deletes);
    set_str(summary, "added-equality-delete-files", (int64_t)c->n_deletes);
    set_str(summary, "added-equality-deletes", deletes);
    int64_t base_files = c->replace || parent < 0 ? 0 : summary_int(t, parent, "total-data-files");
    int64_t base_deletes =
        c->replace || parent < 0 ? 0 : summary_int(t, parent, "total-delete-files");
    set_str(summary, "total-data-files", base_files + (int64_t)c->n_data);
    set_str(summary, "total-delete-files", base_deletes + (int64_t)c->n_deletes);
    const char *k;
    json_t *v;
    json_object_foreach(c->extra, k, v) json_object_set(summary, k, v);

    json_t *meta = json_deep_copy(t->meta);
    snprintf(uri, sizeof(uri), "file://%s", path);
    json_t *s = json_pack("{s:I, s:I, s:I, s:s, s:o, s:i}", "snapshot-id", (json_int_t)snap,
                          "sequence-number", (json_int_t)seq, "timestamp-ms", (json_int_t)now,
                          "manifest-list", uri, "summary", summary, "schema-id", t->schema.id);
    if (parent >= 0) json_object_set_new(s, "parent-snapshot-id", json_integer(parent));
    json_array_append_new(json_object_get(meta, "snapshots"), s);
    json_object_set_new(meta, "current-snapshot-id", json_integer(snap));
    json_object_set_new(meta, "last-sequence-number", json_integer(seq));
    json_object_set_new(json_object_get(meta, "refs"), "main",
                        json_pack("{s:I, s:s}", "snapshot-id", (json_int_t)snap, "type", "branch"));
    json_array_append_new(
        json_object_get(meta, "snapshot-log"),
        json_pack("{s:I, s:I}", "timestamp-ms", (json_int_t)now, "snapshot-id", (json_int_t)snap));
    json_t *mlog = json_object_get(meta, "metadata-log");
    json_array_append_new(mlog, json_pack("{s:O, s:s}", "timestamp-ms",
                                          json_object_get(t->meta, "last-updated-ms"),
                                          "metadata-file", t->metadata_location));
    while (json_array_size(mlog) > METADATA_LOG_MAX)
        json_array_remove(mlog, 0);
    json_object_set_new(meta, "last-updated-ms", json_integer(now));
    rc = swap(t, meta, err);
    if (!rc) return DM_OK;
    unlink(path);
cleanup:
    for (int i = 0; i < 2; i++)
        if (mpaths[i][0]) unlink(mpaths[i]);
    return rc;
}

dm_err_t dm_ice_table_set_schema(dm_ice_table_t *t, const dm_ice_schema_t *schema, dm_error_t *err)
{
    json_t *meta = json_deep_copy(t->meta);
    json_t *schemas = json_object_get(meta, "schemas");
    int32_t next = 0,
            last_col = (int32_t)json_integer_value(json_object_get(meta, "last-column-id"));
    size_t i;
    json_t *v;
    json_array_foreach(schemas, i, v)
    {
        int32_t id = (int32_t)json_integer_value(json_object_get(v, "schema-id"));
        if (id >= next) next = id + 1;
    }
    dm_ice_schema_t s;
    dm_err_t rc = dm_ice_schema_copy(schema, &s);
    if (rc) {
        json_decref(meta);
        return dm_error_set(err, rc, "iceberg: out of memory");
    }
    s.id = next;
    for (size_t f = 0; f < s.n; f++)
        if (s.fields[f].id > last_col) last_col = s.fields[f].id;
    json_array_append_new(schemas, dm_ice_schema_to_json(&s));
    dm_ice_schema_free(&s);
    json_object_set_new(meta, "current-schema-id", json_integer(next));
    json_object_set_new(meta, "last-column-id", json_integer(last_col));
    json_array_append_new(json_object_get(meta, "metadata-log"),
                          json_pack("{s:O, s:s}", "timestamp-ms",
                                    json_object_get(t->meta, "last-updated-ms"), "metadata-file",
                                    t->metadata_location));
    json_object_set_new(meta, "last-updated-ms", json_integer(dm_wall_ms()));
    return swap(t, meta, err);
}

dm_err_t dm_ice_table_files(const dm_ice_table_t *t, json_t **out, dm_error_t *err)
{
    json_int_t id;
    const char *list = snapshot_manifest_list(t, &id);
    *out = json_array();
    if (!list) return DM_OK;
    json_t *manifests;
    dm_err_t rc = dm_ice_manifest_list_read(dm_ice_local_path(list), &manifests, err);
    size_t i;
    json_t *m;
    json_array_foreach(manifests, i, m)
    {
        if (rc) break;
        json_t *entries;
        const char *mp = json_string_value(json_object_get(m, "manifest_path"));
        if ((rc = dm_ice_manifest_read(dm_ice_local_path(mp ? mp : ""), &entries, err))) break;
        size_t k;
        json_t *e;
        json_array_foreach(entries, k, e)
        {
            /* Inherit the manifest's sequence number when the entry has none. */
            json_t *sq = json_object_get(e, "sequence_number");
            if (json_is_null(sq) || !sq)
                json_object_set_new(
                    e, "sequence_number",
                    json_pack("{s:O}", "long", json_object_get(m, "sequence_number")));
            json_array_append(*out, e);
        }
        json_decref(entries);
    }
    json_decref(manifests);
    return rc;
}
