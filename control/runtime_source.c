/* control/runtime_source.c — Source specs to running connectors.
 *
 * Generic over connectors (connectors/source.h): the connector is looked up in
 * the registry and driven through its ops; nothing here names one. What the
 * runtime does for every source: parse spec.config with the connector's config
 * table, register the spec's schemas and create the topic when the connector
 * needs a schema in the spec, create the dead-letter topic when it has dead
 * letters, then open it and run it on a thread of its own (or, for a source
 * filled by the API, hand it each request through dm_runtime_source_push). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

/* What a running source was lent: its env and the strings the env points to,
 * alive until the source is closed. */
typedef struct source_lent {
    dm_source_env_t env;
    char name[256];
    char dead_letter_topic[300];
    json_t *key;       /* spec.key, copied */
    dm_strlist_t keys; /* strings in key */
    char *schema;      /* spec.schema as JSON text (env.declared_schema), or NULL */
} source_lent_t;

static void lent_free(source_lent_t *l)
{
    if (!l) return;
    json_decref(l->key);
    free(l->keys.items);
    free(l->schema);
    free(l);
}

static void *source_main(void *arg)
{
    unit_t *u = arg;
    u->src_ops->run(u->src_state, &u->st);
    return NULL;
}

void dm_runtime_free_source(unit_t *u)
{
    if (u->src_state) u->src_ops->close(u->src_state);
    u->src_state = NULL;
    if (u->src_conf) dm_config_free(u->src_ops->def.config, u->src_conf);
    free(u->src_conf);
    u->src_conf = NULL;
    lent_free(u->src_lent);
    u->src_lent = NULL;
}

/* ---- what the runtime lends a source (dm_source_env_t) ------------------------- */

static dm_err_t env_ensure_topic(void *ctx, const char *topic, int32_t partitions,
                                 const char *subject, dm_error_t *err)
{
    unit_t *u = ctx;
    return dm_runtime_ensure_topic(u->rt, topic, partitions, subject, err);
}

/* Registers a schema for the source, on the source's thread: the runtime may
 * hold its lock while stopping this very source, so give up when asked to. */
static dm_err_t env_register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
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

/* ---- schemas and topics of a source whose spec carries its schema --------------- */

char *dm_runtime_key_schema_json(const dm_avro_schema_t *s, const json_t *key)
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

/* Registers spec.schema under NAME-value and the record of spec.key under
 * NAME-key, and creates the topic NAME (lock held). On failure *what names the
 * step for the unit that shows it. */
static dm_err_t declare_schemas(dm_runtime_t *rt, const char *name, const json_t *spec,
                                int32_t partitions, dm_source_env_t *env, const char **what,
                                dm_error_t *err)
{
    char subject[300], key_subject[300];
    snprintf(subject, sizeof(subject), "%s-value", name);
    snprintf(key_subject, sizeof(key_subject), "%s-key", name);
    char *text = json_dumps(json_object_get(spec, "schema"), JSON_COMPACT);
    int64_t id = 0, key_id = 0;
    *what = "schema";
    dm_avro_schema_t *schema =
        text ? dm_runtime_register_schema(rt, subject, text, &id, err) : NULL;
    free(text);
    if (!schema)
        return err->message[0] ? err->code
                               : dm_error_set(err, DM_ERR_CONFIG, "the spec has no schema");
    const json_t *key = json_object_get(spec, "key");
    dm_avro_schema_t *key_schema = NULL;
    if (json_array_size(key)) {
        *what = "key schema";
        char *kt = dm_runtime_key_schema_json(schema, key);
        key_schema = kt ? dm_runtime_register_schema(rt, key_subject, kt, &key_id, err) : NULL;
        free(kt);
        if (!key_schema) return err->code ? err->code : DM_ERR_NOMEM;
    }
    *what = "topic";
    dm_err_t rc = dm_runtime_ensure_topic(rt, name, partitions, subject, err);
    if (rc) return rc;
    env->value_schema = schema;
    env->value_schema_id = (uint32_t)id;
    env->key_schema = key_schema;
    env->key_schema_id = (uint32_t)key_id;
    env->partitions = dm_runtime_topic_partitions(rt, name); /* it may have existed */
    return DM_OK;
}

/* ---- starting a source ------------------------------------------------------------ */

void dm_runtime_start_source(dm_runtime_t *rt, const json_t *doc)
{
    const char *name = dm_spec_name(doc);
    char owner[160];
    snprintf(owner, sizeof(owner), "Source/%s", name);
    const json_t *spec = json_object_get(doc, "spec");
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const dm_source_ops_t *ops = dm_source_ops_find(connector);
    if (!ops) {
        char list[256], msg[400];
        dm_source_connectors_available(list, sizeof(list));
        snprintf(msg, sizeof(msg), "connector '%s' is not available (available: %s)",
                 connector ? connector : "", list);
        return dm_runtime_unit_failed(rt, owner, "connector", msg);
    }
    const json_t *parts = json_object_get(spec, "partitions");
    int32_t partitions = json_is_integer(parts) ? (int32_t)json_integer_value(parts) : 1;
    dm_error_t err = {0};
    dm_source_env_t env = {.name = name, .transport = rt->t, .partitions = partitions};
    const char *what = "";
    if (ops->def.needs_schema && declare_schemas(rt, name, spec, partitions, &env, &what, &err))
        return dm_runtime_unit_failed(rt, owner, what, err.message);
    if (!ops->runs_thread) return; /* filled through the API: dm_runtime_source_push */
    char dlq[300];
    snprintf(dlq, sizeof(dlq), "source.%s.dlq", name);
    if (ops->dead_letters && dm_runtime_ensure_topic(rt, dlq, 1, NULL, &err))
        return dm_runtime_unit_failed(rt, owner, "dead-letter topic", err.message);

    char uname[300];
    snprintf(uname, sizeof(uname), "%s/connector/%s", name, ops->def.name);
    unit_t *u = dm_runtime_unit_new(rt, U_SOURCE, owner, uname);
    if (!u) return;
    u->src_ops = ops;
    source_lent_t *l = u->src_lent = calloc(1, sizeof(*l));
    u->src_conf = calloc(1, ops->def.config_size ? ops->def.config_size : 1);
    const json_t *key = json_object_get(spec, "key");
    if (l) {
        l->key = key ? json_deep_copy(key) : json_array();
        l->keys.n = json_array_size(l->key);
        l->keys.items = calloc(l->keys.n ? l->keys.n : 1, sizeof(char *));
    }
    if (!l || !l->key || !l->keys.items || !u->src_conf) {
        dm_unit_set(&u->st, DM_UNIT_FAILED, "out of memory");
        return;
    }
    for (size_t i = 0; i < l->keys.n; i++)
        l->keys.items[i] = (char *)json_string_value(json_array_get(l->key, i));
    if (dm_config_defaults(ops->def.config, u->src_conf, &err) ||
        dm_config_apply_json(ops->def.config, u->src_conf, json_object_get(spec, "config"), NULL,
                             &err)) {
        dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", err.message);
        return;
    }
    snprintf(l->name, sizeof(l->name), "%s", name);
    snprintf(l->dead_letter_topic, sizeof(l->dead_letter_topic), "%s", dlq);
    l->env = env;
    l->env.name = l->name;
    l->env.topic = l->name;
    l->env.key_fields = &l->keys;
    l->env.metrics = rt->metrics;
    l->env.dead_letter_topic = ops->dead_letters ? l->dead_letter_topic : NULL;
    if (json_object_get(spec, "schema"))
        l->schema = json_dumps(json_object_get(spec, "schema"), JSON_COMPACT);
    l->env.declared_schema = l->schema;
    l->env.ensure_topic = env_ensure_topic;
    l->env.register_schema = env_register_schema;
    l->env.ctx = u;
    if (ops->open(u->src_conf, &l->env, &u->src_state, &err)) {
        u->src_state = NULL;
        dm_unit_set(&u->st, DM_UNIT_FAILED, "%s", err.message);
        DM_ERROR("control", "source=%s connector=%s: %s", name, ops->def.name, err.message);
        return;
    }
    dm_runtime_unit_start(u, source_main);
}

/* ---- requests from the API --------------------------------------------------------- */

dm_err_t dm_runtime_source_snapshot(dm_runtime_t *rt, const char *source, const char *table,
                                    const char *from, const char *to, dm_error_t *err)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "Source/%s", source);
    dm_err_t rc = dm_error_set(err, DM_ERR_NOT_FOUND,
                               "source %s is not a running source that takes snapshots (a "
                               "change data capture source)",
                               source);
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_SOURCE && u->src_state && u->src_ops->snapshot &&
            !strcmp(u->owner, owner)) {
            if (err) err->message[0] = '\0';
            rc = u->src_ops->snapshot(u->src_state, table, from, to, err);
        }
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

dm_err_t dm_runtime_source_receive(dm_runtime_t *rt, const char *source, const void *body,
                                   size_t len, size_t *accepted, dm_error_t *err)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "Source/%s", source);
    *accepted = 0;
    dm_err_t rc = dm_error_set(err, DM_ERR_NOT_FOUND,
                               "source %s is not a running source that takes changefeed "
                               "requests (a cockroachdb source)",
                               source);
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_SOURCE && u->src_state && u->src_ops->receive &&
            !strcmp(u->owner, owner)) {
            if (err) err->message[0] = '\0';
            rc = u->src_ops->receive(u->src_state, body, len, accepted, err);
            break;
        }
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

/* env->schema_version of a push: id's schema when it is a live version of
 * subject (looked up by its text, so a schema registered under another
 * subject too still counts). */
static const dm_avro_schema_t *push_schema_version(void *ctx, const char *subject, uint32_t id)
{
    dm_runtime_t *rt = ctx;
    char *text = NULL;
    int64_t found = 0;
    const dm_avro_schema_t *s = NULL;
    pthread_mutex_lock(&rt->mu);
    if (!dm_schema_registry_get_by_id(rt->reg, id, &text, NULL) &&
        !dm_schema_registry_lookup(rt->reg, subject, text, &found, NULL, NULL) &&
        found == (int64_t)id)
        s = dm_runtime_schema_locked(rt, id, NULL);
    pthread_mutex_unlock(&rt->mu);
    free(text);
    return s;
}

dm_err_t dm_runtime_source_push(dm_runtime_t *rt, const char *source, const json_t *spec,
                                const void *body, size_t len, size_t *accepted, dm_error_t *err)
{
    *accepted = 0;
    const char *connector = json_string_value(json_object_get(spec, "connector"));
    const dm_source_ops_t *ops = dm_source_ops_find(connector);
    if (!ops || !ops->push)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "source '%s' is filled by its %s connector, not through the API",
                            source, connector ? connector : "?");
    void *conf = calloc(1, ops->def.config_size ? ops->def.config_size : 1);
    if (!conf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc = dm_config_defaults(ops->def.config, conf, err);
    if (!rc)
        rc =
            dm_config_apply_json(ops->def.config, conf, json_object_get(spec, "config"), NULL, err);
    /* The latest schemas of the source, parsed once for the runtime's life. */
    dm_source_env_t env = {.name = source,
                           .transport = rt->t,
                           .topic = source,
                           .schema_version = push_schema_version,
                           .ctx = rt};
    dm_strlist_t no_keys = {0};
    env.key_fields = &no_keys;
    char subject[300];
    int64_t vid = 0, kid = 0;
    dm_error_t lookup = {0};
    pthread_mutex_lock(&rt->mu);
    snprintf(subject, sizeof(subject), "%s-value", source);
    if (!rc && !dm_schema_registry_get_version(rt->reg, subject, -1, &vid, NULL, NULL, &lookup))
        env.value_schema = dm_runtime_schema_locked(rt, vid, &lookup);
    snprintf(subject, sizeof(subject), "%s-key", source);
    if (!rc && !dm_schema_registry_get_version(rt->reg, subject, -1, &kid, NULL, NULL, NULL))
        env.key_schema = dm_runtime_schema_locked(rt, kid, NULL);
    pthread_mutex_unlock(&rt->mu);
    env.value_schema_id = (uint32_t)vid;
    env.key_schema_id = env.key_schema ? (uint32_t)kid : 0;
    if (!rc) env.partitions = dm_runtime_topic_partitions(rt, source);
    if (!rc && (!env.value_schema || env.partitions <= 0))
        rc = dm_error_set(err, DM_ERR_AGAIN, "source '%s' is not ready: %s", source,
                          lookup.message[0] ? lookup.message : "its topic does not exist yet");
    if (!rc) rc = ops->push(conf, &env, body, len, accepted, err);
    dm_config_free(ops->def.config, conf);
    free(conf);
    return rc;
}
