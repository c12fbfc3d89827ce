/* control/runtime_source.c — Source specs to running connectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

static void *datagen_main(void *arg)
{
    unit_t *u = arg;
    dm_datagen_source_run(&u->dg, &u->st);
    return NULL;
}

static void *pg_main(void *arg)
{
    unit_t *u = arg;
    dm_pg_source_run(u->pg, &u->st);
    return NULL;
}

static void *file_source_main(void *arg)
{
    unit_t *u = arg;
    dm_file_source_run(&u->fsrc, &u->st);
    return NULL;
}

/* ---- sources -------------------------------------------------------------------- */

/* The JSON of a record holding the key fields of a value schema. */
static char *key_schema_json(const dm_avro_schema_t *s, const json_t *key)
{
    json_t *seen = json_object(), *fields = json_array();
    size_t i;
    json_t *k;
    json_array_foreach(key, i, k)
    {
        int idx = dm_avro_field_index(s->root, json_string_value(k));
        if (idx < 0) continue;
        json_array_append_new(fields,
                              json_pack("{s:s, s:o}", "name", json_string_value(k), "type",
                                        dm_schema_type_json(s->root->fields[idx].type, seen)));
    }
    char name[300];
    snprintf(name, sizeof(name), "%sKey", s->root->name);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:o}", "type", "record", "name", name, "namespace",
                            s->root->space ? s->root->space : "", "fields", fields);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    json_decref(seen);
    return text;
}

/* A file connector: its dead-letter topic, then a unit reading the file. */
static void start_file_source(dm_runtime_t *rt, const char *owner, const char *name,
                              const json_t *spec, const dm_avro_schema_t *schema, int64_t id,
                              const dm_avro_schema_t *key_schema, int64_t key_id)
{
    dm_error_t err = {0};
    char dlq[300], uname[300];
    snprintf(dlq, sizeof(dlq), "source.%s.dlq", name);
    if (dm_runtime_ensure_topic(rt, dlq, 1, NULL, &err))
        return dm_runtime_unit_failed(rt, owner, "dead-letter topic", err.message);
    snprintf(uname, sizeof(uname), "%s/connector/file", name);
    unit_t *u = dm_runtime_unit_new(rt, U_FILE_SOURCE, owner, uname);
    if (!u) return;
    dm_config_defaults(&dm_file_source_config_table, &u->fsrc_conf, &err);
    if (dm_config_apply_json(&dm_file_source_config_table, &u->fsrc_conf,
                             json_object_get(spec, "config"), NULL, &err)) {
        dm_unit_set(&u->st, "failed", "%s", err.message);
        return;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", name);
    snprintf(u->group, sizeof(u->group), "%s", dlq);
    u->fsrc = (dm_file_source_t){.transport = rt->t,
                                 .topic = u->topic,
                                 .partitions = dm_runtime_topic_partitions(rt, name),
                                 .schema = schema,
                                 .schema_id = (uint32_t)id,
                                 .key_schema = key_schema,
                                 .key_schema_id = (uint32_t)key_id,
                                 .dead_letter_topic = u->group,
                                 .conf = &u->fsrc_conf};
    dm_runtime_unit_start(u, file_source_main);
}

/* ---- postgres sources: the runtime lends topics and the registry ---------------- */

static dm_err_t pg_ensure_topic(void *ctx, const char *topic, int32_t partitions,
                                const char *subject, dm_error_t *err)
{
    unit_t *u = ctx;
    return dm_runtime_ensure_topic(u->rt, topic, partitions, subject, err);
}

/* Registers a table's schema for the source (on the source's thread). */
static dm_err_t pg_register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
                                   dm_error_t *err)
{
    unit_t *u = ctx;
    if (!dm_runtime_lock_unless_stopping(u))
        return dm_error_set(err, DM_ERR_AGAIN, "stopping while registering %s", subject);
    int64_t sid = 0;
    dm_avro_schema_t *s = dm_runtime_register_schema(u->rt, subject, json, &sid, err);
    pthread_mutex_unlock(&u->rt->mu);
    *id = (uint32_t)sid;
    return s ? DM_OK : err->code;
}

static void start_postgres(dm_runtime_t *rt, const json_t *doc, const char *owner,
                           int32_t partitions)
{
    const char *name = dm_spec_name(doc);
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/connector/postgres", name);
    unit_t *u = dm_runtime_unit_new(rt, U_PGSOURCE, owner, uname);
    if (!u) return;
    dm_error_t err = {0};
    dm_config_defaults(&dm_postgres_config_table, &u->pg_conf, &err);
    const json_t *config = json_object_get(json_object_get(doc, "spec"), "config");
    u->pg_cb = (dm_pg_callbacks_t){u, rt->metrics, pg_ensure_topic, pg_register_schema};
    if (dm_config_apply_json(&dm_postgres_config_table, &u->pg_conf, config, NULL, &err) ||
        dm_pg_source_new(rt->t, name, partitions, &u->pg_conf, &u->pg_cb, &u->pg, &err)) {
        dm_unit_set(&u->st, "failed", "%s", err.message);
        u->kind = U_TASK; /* nothing to free but the status */
        dm_config_free(&dm_postgres_config_table, &u->pg_conf);
        return;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", name);
    dm_runtime_unit_start(u, pg_main);
}

dm_err_t dm_runtime_source_snapshot(dm_runtime_t *rt, const char *source, const char *table,
                                    const char *from, const char *to, dm_error_t *err)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "Source/%s", source);
    dm_err_t rc =
        dm_error_set(err, DM_ERR_NOT_FOUND, "source %s is not a running postgres source", source);
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_PGSOURCE && !strcmp(u->owner, owner)) {
            if (err) err->message[0] = '\0';
            rc = dm_pg_source_request_snapshot(u->pg, table, from, to, err);
        }
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

void dm_runtime_start_source(dm_runtime_t *rt, const json_t *doc)
{
    const char *name = dm_spec_name(doc);
    char owner[160];
    snprintf(owner, sizeof(owner), "Source/%s", name);
    const json_t *spec = json_object_get(doc, "spec");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const json_t *parts = json_object_get(spec, "partitions");
    int32_t partitions = json_is_integer(parts) ? (int32_t)json_integer_value(parts) : 1;
    dm_error_t err = {0};
    if (!strcmp(connector, "postgres")) return start_postgres(rt, doc, owner, partitions);
    char subject[300], key_subject[300];
    snprintf(subject, sizeof(subject), "%s-value", name);
    snprintf(key_subject, sizeof(key_subject), "%s-key", name);
    char *text = json_dumps(json_object_get(spec, "schema"), JSON_COMPACT);
    int64_t id = 0, key_id = 0;
    dm_avro_schema_t *schema =
        text ? dm_runtime_register_schema(rt, subject, text, &id, &err) : NULL;
    free(text);
    if (!schema) return dm_runtime_unit_failed(rt, owner, "schema", err.message);
    const json_t *key = json_object_get(spec, "key");
    dm_avro_schema_t *key_schema = NULL;
    if (json_array_size(key)) {
        char *kt = key_schema_json(schema, key);
        key_schema = kt ? dm_runtime_register_schema(rt, key_subject, kt, &key_id, &err) : NULL;
        free(kt);
        if (!key_schema) return dm_runtime_unit_failed(rt, owner, "key schema", err.message);
    }
    if (dm_runtime_ensure_topic(rt, name, partitions, subject, &err))
        return dm_runtime_unit_failed(rt, owner, "topic", err.message);
    if (!strcmp(connector, "file"))
        return start_file_source(rt, owner, name, spec, schema, id, key_schema, key_id);
    if (strcmp(connector, "datagen") != 0) return; /* ingest: filled through the API */
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/connector/datagen", name);
    unit_t *u = dm_runtime_unit_new(rt, U_DATAGEN, owner, uname);
    if (!u) return;
    dm_config_defaults(&dm_datagen_config_table, &u->dg.conf, &err);
    const json_t *config = json_object_get(spec, "config");
    if (config && dm_config_apply_json(&dm_datagen_config_table, &u->dg.conf, config, NULL, &err)) {
        dm_unit_set(&u->st, "failed", "%s", err.message);
        return;
    }
    u->owned = json_deep_copy(key ? key : json_null());
    dm_strlist_t *keys = calloc(1, sizeof(*keys));
    keys->n = json_array_size(u->owned);
    keys->items = calloc(keys->n ? keys->n : 1, sizeof(char *));
    for (size_t i = 0; i < keys->n; i++)
        keys->items[i] = (char *)json_string_value(json_array_get(u->owned, i));
    snprintf(u->topic, sizeof(u->topic), "%s", name);
    dm_datagen_config_t conf = u->dg.conf; /* read before u->dg is overwritten */
    u->dg = (dm_datagen_source_t){.transport = rt->t,
                                  .topic = u->topic,
                                  .partitions = dm_runtime_topic_partitions(rt, name),
                                  .schema = schema,
                                  .schema_id = (uint32_t)id,
                                  .key_schema = key_schema,
                                  .key_schema_id = (uint32_t)key_id,
                                  .key_fields = keys,
                                  .conf = conf};
    dm_runtime_unit_start(u, datagen_main);
}
