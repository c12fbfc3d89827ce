/* control/runtime.c — stored specs to running units. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/runtime_internal.h"

static const char *const unit_kinds[] = {"connector", "task",      "table",
                                         "sink",      "connector", "connector"};

static size_t owner_slot(const char *owner)
{
    return (size_t)dm_hash64(owner, strlen(owner)) & (OWNER_BUCKETS - 1);
}

/* ---- schemas ---------------------------------------------------------------- */

dm_avro_schema_t *dm_runtime_schema_locked(dm_runtime_t *rt, int64_t id, dm_error_t *err)
{
    for (schema_entry_t *e = rt->schemas; e; e = e->next)
        if (e->id == id) return e->schema;
    char *text = NULL;
    if (dm_schema_registry_get_by_id(rt->reg, id, &text, err)) return NULL;
    dm_avro_schema_t *s = NULL;
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), &s, err);
    free(text);
    if (rc) return NULL;
    schema_entry_t *e = calloc(1, sizeof(*e));
    if (!e) {
        dm_avro_schema_free(s);
        dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->id = id;
    e->schema = s;
    e->next = rt->schemas;
    rt->schemas = e;
    return s;
}

/* Registers text under subject; returns the parsed schema and its id. */
static dm_avro_schema_t *register_schema(dm_runtime_t *rt, const char *subject, const char *text,
                                         int64_t *id, dm_error_t *err)
{
    dm_schema_compat_report_t report = {0};
    dm_err_t rc = dm_schema_registry_register(rt->reg, subject, text, id, NULL, &report, err);
    if (rc == DM_ERR_SCHEMA_INCOMPATIBLE) {
        char msg[900] = "";
        size_t o = 0;
        for (size_t i = 0; i < report.n && o < sizeof(msg); i++)
            o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s%s", i ? "; " : "",
                                  report.messages[i]);
        dm_error_set(err, rc, "schema of %s is incompatible with its earlier versions: %s", subject,
                     msg);
    }
    dm_schema_compat_report_free(&report);
    return rc ? NULL : dm_runtime_schema_locked(rt, *id, err);
}

dm_err_t dm_runtime_source_schema(dm_runtime_t *rt, const char *source, char **schema, int64_t *id,
                                  dm_error_t *err)
{
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_version(rt->reg, subject, -1, id, NULL, schema, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

dm_err_t dm_runtime_subject_id(dm_runtime_t *rt, const char *subject, int64_t *id, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_version(rt->reg, subject, -1, id, NULL, NULL, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

const dm_avro_schema_t *dm_runtime_schema(dm_runtime_t *rt, int64_t id, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    const dm_avro_schema_t *s = dm_runtime_schema_locked(rt, id, err);
    pthread_mutex_unlock(&rt->mu);
    return s;
}

dm_err_t dm_runtime_schema_by_id(dm_runtime_t *rt, int64_t id, char **schema, dm_error_t *err)
{
    pthread_mutex_lock(&rt->mu);
    dm_err_t rc = dm_schema_registry_get_by_id(rt->reg, id, schema, err);
    pthread_mutex_unlock(&rt->mu);
    return rc;
}

json_t *dm_runtime_schema_versions(dm_runtime_t *rt, const char *subject)
{
    json_t *out = json_array();
    int *versions = NULL;
    size_t n = 0;
    pthread_mutex_lock(&rt->mu);
    if (dm_schema_registry_versions(rt->reg, subject, false, &versions, &n, NULL) == DM_OK)
        for (size_t i = 0; i < n; i++) {
            int64_t id = 0;
            char *text = NULL;
            if (dm_schema_registry_get_version(rt->reg, subject, versions[i], &id, NULL, &text,
                                               NULL) == DM_OK) {
                json_t *schema = json_loads(text, JSON_DECODE_ANY, NULL);
                json_array_append_new(out, json_pack("{s:i, s:I, s:o}", "version", versions[i],
                                                     "id", (json_int_t)id, "schema",
                                                     schema ? schema : json_string(text)));
            }
            free(text);
        }
    pthread_mutex_unlock(&rt->mu);
    free(versions);
    return out;
}

dm_transport_t *dm_runtime_transport(dm_runtime_t *rt)
{
    return rt->t;
}

/* ---- topics ------------------------------------------------------------------- */

/* Set on the thread running dm_runtime_sync: the topics it creates are made
 * durable together (one journal fsync) before the sync returns, instead of
 * one fsync each. */
static _Thread_local bool sync_defers_topics;

static dm_err_t ensure_topic(dm_runtime_t *rt, const char *name, int32_t partitions,
                             const char *subject, dm_error_t *err)
{
    dm_topic_description_t d;
    dm_error_t e2 = {0};
    if (dm_transport_describe_topic(rt->t, name, &d, &e2) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t conf = {.name = name,
                              .partitions = partitions > 0 ? partitions : 1,
                              .fsync = DM_TRANSPORT_FSYNC_INTERVAL,
                              .flush_ms = 1000,
                              .schema_subject = subject,
                              .defer_durable = sync_defers_topics};
    return dm_transport_create_topic(rt->t, &conf, err);
}

static int32_t topic_partitions(dm_runtime_t *rt, const char *name)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(rt->t, name, &d, NULL)) return 0;
    int32_t n = d.n_partitions;
    dm_transport_description_free(&d);
    return n;
}

/* ---- units ---------------------------------------------------------------------- */

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

static void *sink_main(void *arg)
{
    unit_t *u = arg;
    if (u->run.ops)
        dm_sink_run(&u->run, &u->st);
    else if (u->ice.conf)
        dm_iceberg_sink_run(&u->ice, &u->st);
    else
        dm_file_sink_run(&u->sink, &u->st);
    return NULL;
}

/* One step of a task unit on a pool worker: a batch when there is input,
 * else a wait for its input partition (woken by the commit that fills it). */
static dm_job_next_t task_step(void *arg, dm_job_wait_t *w)
{
    unit_t *u = arg;
    dm_error_t err = {0};
    if (atomic_load(&u->st.stop)) return DM_JOB_DONE;
    /* A stream–table join starts once its tables hold what their sources had. */
    for (int i = 0; i < u->n_tables; i++)
        if (!atomic_load(&u->tables[i]->ready)) {
            dm_unit_set(&u->st, "starting", "waiting for table %s to load", u->tables[i]->topic);
            w->sleep_ms = 20;
            return DM_JOB_SLEEP;
        }
    size_t n = 0;
    if (dm_task_step(u->task, 0, &n, &err)) {
        dm_unit_set(&u->st, "retrying", "%s", err.message);
        DM_WARN("engine", "%s: %s; retrying in %lld ms", u->name, err.message,
                (long long)u->backoff);
        w->sleep_ms = u->backoff;
        if (u->backoff < 10000) u->backoff *= 2;
        return DM_JOB_SLEEP;
    }
    if (u->backoff != 100 || strcmp(u->st.state, "running")) dm_unit_set(&u->st, "running", NULL);
    u->backoff = 100;
    atomic_store(&u->st.position, dm_task_position(u->task));
    atomic_store(&u->st.lag, dm_task_lag(u->task));
    if (n) return DM_JOB_AGAIN;
    w->n_inputs = dm_task_inputs(u->task, w->inputs, DM_JOB_MAX_INPUTS);
    /* Caught up: nothing to do until a commit wakes it, or its next timer. */
    int64_t timer = dm_task_next_timer(u->task);
    w->sleep_ms = 0;
    if (timer) w->sleep_ms = timer > dm_wall_ms() ? timer - dm_wall_ms() : 1;
    return DM_JOB_WAIT;
}

/* Keeps a table up to date with every partition of its source's topic. */
static void *table_main(void *arg)
{
    unit_t *u = arg;
    dm_transport_t *t = u->rt->t;
    int64_t *pos = calloc((size_t)u->partitions, sizeof(int64_t));
    dm_transport_batch_t b = {0};
    dm_error_t err = {0};
    for (int32_t p = 0; p < u->partitions; p++) {
        int64_t end;
        dm_transport_offsets(t, u->topic, p, &pos[p], &end, &err);
    }
    dm_unit_set(&u->st, "running", NULL);
    while (!atomic_load(&u->st.stop)) {
        int64_t lag = 0;
        for (int32_t p = 0; p < u->partitions && !atomic_load(&u->st.stop); p++) {
            if (dm_transport_fetch(t, u->topic, p, pos[p], 1 << 20, u->partitions == 1 ? 200 : 50,
                                   &b, &err)) {
                dm_unit_set(&u->st, "retrying", "%s", err.message);
                dm_unit_sleep(&u->st, 500);
                continue;
            }
            for (size_t i = 0; i < b.n; i++)
                if (dm_table_apply(u->table, &b.records[i], &err))
                    DM_WARN("engine", "%s: skipped offset %lld: %s", u->name,
                            (long long)b.records[i].offset, err.message);
            if (b.next_offset > pos[p]) pos[p] = b.next_offset;
            lag += b.high_watermark - pos[p];
        }
        atomic_store(&u->st.position, (int64_t)dm_table_size(u->table));
        atomic_store(&u->st.lag, lag);
        if (lag == 0) atomic_store(&u->ready, true);
    }
    dm_transport_batch_free(t, &b);
    free(pos);
    dm_unit_set(&u->st, "stopped", NULL);
    return NULL;
}

/* ---- sinks on the common runner ---------------------------------------------------- */

/* Schemas of keys and of older values, by id, for a sink unit. Runs on the
 * sink's thread, with its own registry handle (one per thread). */
static const dm_avro_schema_t *sink_schema_by_id(void *ctx, uint32_t id)
{
    unit_t *u = ctx;
    for (schema_entry_t *e = u->run_schemas; e; e = e->next)
        if (e->id == (int64_t)id) return e->schema;
    char path[4200], *text = NULL;
    dm_avro_schema_t *s = NULL;
    snprintf(path, sizeof(path), "%s/registry.db", u->rt->data_dir);
    if (!u->run_reg && dm_schema_registry_open(path, &u->run_reg, NULL)) return NULL;
    if (dm_schema_registry_get_by_id(u->run_reg, id, &text, NULL)) return NULL;
    dm_err_t rc = dm_avro_schema_parse(text, strlen(text), &s, NULL);
    free(text);
    schema_entry_t *e = rc ? NULL : calloc(1, sizeof(*e));
    if (!e) {
        dm_avro_schema_free(s);
        return NULL;
    }
    *e = (schema_entry_t){(int64_t)id, s, u->run_schemas};
    u->run_schemas = e;
    return s;
}

/* The controller's registry address, for sinks that register schemas
 * elsewhere (kafka). Any thread. */
static void sink_registry_url(void *ctx, char *out, size_t cap)
{
    unit_t *u = ctx;
    pthread_mutex_lock(&u->rt->url_mu);
    snprintf(out, cap, "%s", u->rt->registry_url);
    pthread_mutex_unlock(&u->rt->url_mu);
}

void dm_runtime_set_registry_url(dm_runtime_t *rt, const char *url)
{
    pthread_mutex_lock(&rt->url_mu);
    snprintf(rt->registry_url, sizeof(rt->registry_url), "%s", url);
    pthread_mutex_unlock(&rt->url_mu);
}

static void free_runner_sink(unit_t *u)
{
    dm_config_free(u->run.ops->config, u->run_conf);
    free(u->run_conf);
    free(u->run_keys.items);
    dm_schema_registry_close(u->run_reg);
    while (u->run_schemas) {
        schema_entry_t *e = u->run_schemas;
        u->run_schemas = e->next;
        dm_avro_schema_free(e->schema);
        free(e);
    }
}

static unit_t *unit_new(dm_runtime_t *rt, unit_kind_t kind, const char *owner, const char *name)
{
    unit_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->kind = kind;
    u->rt = rt;
    snprintf(u->owner, sizeof(u->owner), "%s", owner);
    snprintf(u->name, sizeof(u->name), "%s", name);
    dm_unit_init(&u->st);
    u->next = rt->units;
    rt->units = u;
    size_t slot = owner_slot(u->owner);
    u->onext = rt->by_owner[slot];
    rt->by_owner[slot] = u;
    return u;
}

static void unit_start(unit_t *u)
{
    if (u->kind == U_TASK) {
        u->backoff = 100;
        u->job = dm_pool_add(u->rt->pool, u->name, task_step, u);
        if (u->job)
            u->started = true;
        else
            dm_unit_set(&u->st, "failed", "out of memory");
        return;
    }
    void *(*fn)(void *) = u->kind == U_DATAGEN       ? datagen_main
                          : u->kind == U_TABLE       ? table_main
                          : u->kind == U_FILE_SOURCE ? file_source_main
                          : u->kind == U_PGSOURCE    ? pg_main
                                                     : sink_main;
    if (pthread_create(&u->th, NULL, fn, u) == 0)
        u->started = true;
    else
        dm_unit_set(&u->st, "failed", "cannot start a thread");
}

static void unit_free(unit_t *u)
{
    if (u->kind == U_TASK) dm_task_free(u->task);
    if (u->kind == U_TABLE) dm_table_free(u->table);
    if (u->kind == U_SINK) dm_config_free(&dm_file_sink_config_table, &u->sink_conf);
    if (u->kind == U_FILE_SOURCE) dm_config_free(&dm_file_source_config_table, &u->fsrc_conf);
    if (u->kind == U_SINK && u->run.ops) free_runner_sink(u);
    if (u->kind == U_SINK && u->ice.conf)
        dm_config_free(&dm_iceberg_sink_config_table, &u->ice_conf);
    if (u->kind == U_PGSOURCE) {
        dm_pg_source_free(u->pg);
        dm_config_free(&dm_postgres_config_table, &u->pg_conf);
    }
    if (u->kind == U_DATAGEN && u->dg.key_fields) {
        dm_strlist_t *k = (dm_strlist_t *)u->dg.key_fields;
        free(k->items);
        free(k);
    }
    json_decref(u->owned);
    dm_unit_destroy(&u->st);
    free(u);
}

/* Stops (and frees) the units of owner; all units when owner is NULL. */
static void stop_units(dm_runtime_t *rt, const char *owner)
{
    for (unit_t *u = rt->units; u; u = u->next)
        if (!owner || !strcmp(u->owner, owner)) atomic_store(&u->st.stop, true);
    unit_t **pp = &rt->units;
    while (*pp) {
        unit_t *u = *pp;
        if (owner && strcmp(u->owner, owner)) {
            pp = &u->next;
            continue;
        }
        if (u->job) {
            dm_pool_remove(rt->pool, u->job);
            dm_unit_set(&u->st, "stopped", NULL);
        } else if (u->started) {
            pthread_join(u->th, NULL);
        }
        *pp = u->next;
        unit_t **op = &rt->by_owner[owner_slot(u->owner)];
        while (*op && *op != u)
            op = &(*op)->onext;
        if (*op) *op = u->onext;
        unit_free(u);
    }
}

/* A failed unit that only carries the reason, so status shows it. */
static void unit_failed(dm_runtime_t *rt, const char *owner, const char *what, const char *msg)
{
    unit_t *u = unit_new(rt, U_TASK, owner, what);
    if (u) dm_unit_set(&u->st, "failed", "%s", msg);
    DM_ERROR("control", "%s: %s: %s", owner, what, msg);
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
    if (ensure_topic(rt, dlq, 1, NULL, &err))
        return unit_failed(rt, owner, "dead-letter topic", err.message);
    snprintf(uname, sizeof(uname), "%s/connector/file", name);
    unit_t *u = unit_new(rt, U_FILE_SOURCE, owner, uname);
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
                                 .partitions = topic_partitions(rt, name),
                                 .schema = schema,
                                 .schema_id = (uint32_t)id,
                                 .key_schema = key_schema,
                                 .key_schema_id = (uint32_t)key_id,
                                 .dead_letter_topic = u->group,
                                 .conf = &u->fsrc_conf};
    unit_start(u);
}

/* ---- postgres sources: the runtime lends topics and the registry ---------------- */

/* Takes the runtime's lock from a unit's own thread. The runtime may hold it
 * while stopping this very unit (and joining its thread), so give up once the
 * unit is asked to stop. */
static bool lock_unless_stopping(unit_t *u)
{
    while (pthread_mutex_trylock(&u->rt->mu) != 0) {
        if (atomic_load(&u->st.stop)) return false;
        dm_sleep_ms(5);
    }
    return true;
}

static dm_err_t pg_ensure_topic(void *ctx, const char *topic, int32_t partitions,
                                const char *subject, dm_error_t *err)
{
    unit_t *u = ctx;
    return ensure_topic(u->rt, topic, partitions, subject, err);
}

/* Registers a table's schema for the source (on the source's thread). */
static dm_err_t pg_register_schema(void *ctx, const char *subject, const char *json, uint32_t *id,
                                   dm_error_t *err)
{
    unit_t *u = ctx;
    if (!lock_unless_stopping(u))
        return dm_error_set(err, DM_ERR_AGAIN, "stopping while registering %s", subject);
    int64_t sid = 0;
    dm_avro_schema_t *s = register_schema(u->rt, subject, json, &sid, err);
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
    unit_t *u = unit_new(rt, U_PGSOURCE, owner, uname);
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
    unit_start(u);
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

static void start_source(dm_runtime_t *rt, const json_t *doc)
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
    dm_avro_schema_t *schema = text ? register_schema(rt, subject, text, &id, &err) : NULL;
    free(text);
    if (!schema) return unit_failed(rt, owner, "schema", err.message);
    const json_t *key = json_object_get(spec, "key");
    dm_avro_schema_t *key_schema = NULL;
    if (json_array_size(key)) {
        char *kt = key_schema_json(schema, key);
        key_schema = kt ? register_schema(rt, key_subject, kt, &key_id, &err) : NULL;
        free(kt);
        if (!key_schema) return unit_failed(rt, owner, "key schema", err.message);
    }
    if (ensure_topic(rt, name, partitions, subject, &err))
        return unit_failed(rt, owner, "topic", err.message);
    if (!strcmp(connector, "file"))
        return start_file_source(rt, owner, name, spec, schema, id, key_schema, key_id);
    if (strcmp(connector, "datagen") != 0) return; /* ingest: filled through the API */
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/connector/datagen", name);
    unit_t *u = unit_new(rt, U_DATAGEN, owner, uname);
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
                                  .partitions = topic_partitions(rt, name),
                                  .schema = schema,
                                  .schema_id = (uint32_t)id,
                                  .key_schema = key_schema,
                                  .key_schema_id = (uint32_t)key_id,
                                  .key_fields = keys,
                                  .conf = conf};
    unit_start(u);
}

json_t *dm_runtime_step_config(const json_t *step, const char **kind)
{
    *kind = json_object_iter_key(json_object_iter((json_t *)step));
    const json_t *arg = json_object_get(step, *kind);
    if (!strcmp(*kind, "filter")) return json_pack("{s:O}", "expr", arg);
    if (!strcmp(*kind, "project")) return json_pack("{s:O}", "columns", arg);
    return json_deep_copy(arg);
}

/* ---- pipelines ------------------------------------------------------------------- */

/* The compacted topic a pipeline's stateful steps checkpoint their state to. */
static dm_err_t ensure_state_topic(dm_runtime_t *rt, const char *name, int32_t partitions,
                                   dm_error_t *err)
{
    dm_topic_description_t d;
    if (dm_transport_describe_topic(rt->t, name, &d, NULL) == DM_OK) {
        dm_transport_description_free(&d);
        return DM_OK;
    }
    dm_topic_config_t conf = {.name = name,
                              .partitions = partitions > 0 ? partitions : 1,
                              .compact = true,
                              .fsync = DM_TRANSPORT_FSYNC_INTERVAL,
                              .flush_ms = 1000};
    return dm_transport_create_topic(rt->t, &conf, err);
}

/* What a pipeline's time-based and routing steps need from its tasks: whether
 * state is kept, the event-time field (the first `time` of a stateful step,
 * when the pipeline's input has it; else record timestamps are event time)
 * and the route's output names (new reference, in "extra"). */
static json_t *pipeline_time_and_outputs(const json_t *steps, const dm_avro_node_t *input)
{
    json_t *r = json_pack("{s:b, s:n, s:[]}", "stateful", 0, "time", "extra");
    size_t i;
    json_t *step;
    json_array_foreach(steps, i, step)
    {
        const char *kind = json_object_iter_key(json_object_iter(step));
        const json_t *arg = json_object_get(step, kind);
        const dm_proc_ops_t *ops = kind ? dm_proc_find(kind) : NULL;
        if (ops && ops->stateful) {
            json_object_set_new(r, "stateful", json_true());
            const char *time = json_string_value(json_object_get(arg, "time"));
            dm_expr_t *e = NULL;
            if (time && json_is_null(json_object_get(r, "time")) &&
                dm_expr_compile(time, input, &e, NULL) == DM_OK)
                json_object_set_new(r, "time", json_string(time));
            dm_expr_free(e);
        }
        const char *name;
        json_t *x;
        if (kind && !strcmp(kind, "route"))
            json_object_foreach(json_object_get(arg, "outputs"), name, x)
                json_array_append_new(json_object_get(r, "extra"), json_string(name));
    }
    return r;
}

/* The table an enrich step reads (found among the running table units). */
static dm_table_t *env_table(void *ctx, const char *source, dm_error_t *err)
{
    dm_runtime_t *rt = ctx;
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_TABLE && !strcmp(dm_table_name(u->table), source)) return u->table;
    dm_error_set(err, DM_ERR_NOT_FOUND, "no table for source '%s'", source);
    return NULL;
}

/* Starts a table reader for an enrich source of pipeline owner. */
static dm_err_t start_table(dm_runtime_t *rt, const char *owner, const char *source,
                            const json_t *stored_sources, unit_t **table_unit, dm_error_t *err)
{
    for (unit_t *u = rt->units; u; u = u->next)
        if (u->kind == U_TABLE && !strcmp(u->owner, owner) &&
            !strcmp(dm_table_name(u->table), source)) {
            *table_unit = u;
            return DM_OK;
        }
    const json_t *src = json_object_get(stored_sources, source);
    const json_t *key = json_object_get(json_object_get(src, "spec"), "key");
    if (!json_array_size(key))
        return dm_error_set(err, DM_ERR_INVALID,
                            "enrich with %s: the source has no key (spec.key) to look up by",
                            source);
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", source);
    int64_t id;
    if (dm_schema_registry_get_version(rt->reg, subject, -1, &id, NULL, NULL, err))
        return err->code;
    dm_avro_schema_t *schema = dm_runtime_schema_locked(rt, id, err);
    if (!schema) return err->code;
    char uname[300];
    snprintf(uname, sizeof(uname), "%s/table/%s", owner + strlen("Pipeline/"), source);
    unit_t *u = unit_new(rt, U_TABLE, owner, uname);
    if (!u) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    dm_err_t rc =
        dm_table_new(source, schema, json_string_value(json_array_get(key, 0)), &u->table, err);
    if (rc) {
        dm_unit_set(&u->st, "failed", "%s", err->message);
        u->kind = U_TASK; /* nothing to free but the status */
        return rc;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", source);
    u->partitions = topic_partitions(rt, source);
    unit_start(u);
    *table_unit = u;
    return DM_OK;
}

/* Configures unit u as a sink of type ops reading topic (the pipeline's
 * output); the unit is started by the caller. settings: the sink's spec
 * without "type". keys: the input source's key fields (JSON array or NULL). */
static dm_err_t setup_runner_sink(dm_runtime_t *rt, unit_t *u, const dm_sink_ops_t *ops,
                                  const json_t *settings, const json_t *keys, const char *topic,
                                  const dm_avro_schema_t *schema, int64_t schema_id,
                                  const char *dlq, dm_error_t *err)
{
    u->run_conf = calloc(1, ops->config_size);
    if (!u->run_conf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    u->run.ops = ops; /* from here on unit_free releases the rest */
    dm_config_defaults(ops->config, u->run_conf, err);
    if (dm_config_apply_json(ops->config, u->run_conf, settings, NULL, err)) return err->code;
    u->owned = json_pack("{s:O, s:s}", "keys", keys ? keys : json_null(), "dlq", dlq);
    const json_t *k = json_object_get(u->owned, "keys");
    u->run_keys.n = json_array_size(k);
    u->run_keys.items = calloc(u->run_keys.n + 1, sizeof(char *));
    for (size_t i = 0; i < u->run_keys.n; i++)
        u->run_keys.items[i] = (char *)json_string_value(json_array_get(k, i));
    snprintf(u->topic, sizeof(u->topic), "%s", topic);
    u->run.transport = rt->t;
    u->run.conf = u->run_conf;
    u->run.dead_letter_topic = json_string_value(json_object_get(u->owned, "dlq"));
    u->run.metrics = rt->metrics;
    u->run.env = (dm_sink_env_t){.name = u->name,
                                 .topic = u->topic,
                                 .partitions = topic_partitions(rt, topic),
                                 .group = u->group,
                                 .value_schema = schema,
                                 .value_schema_id = (uint32_t)schema_id,
                                 .key_fields = &u->run_keys,
                                 .registry_url = sink_registry_url,
                                 .schema_by_id = sink_schema_by_id,
                                 .schema_ctx = u,
                                 .registry_ctx = u};
    return DM_OK;
}

/* ---- iceberg sinks ------------------------------------------------------------------ */

/* The schema of a registry id, for an iceberg sink meeting a newer version.
 * Runs on the sink's thread. */
static const dm_avro_schema_t *iceberg_schema(void *ctx, uint32_t id)
{
    unit_t *u = ctx;
    if (!lock_unless_stopping(u)) return NULL;
    dm_error_t err = {0};
    const dm_avro_schema_t *s = dm_runtime_schema_locked(u->rt, id, &err);
    pthread_mutex_unlock(&u->rt->mu);
    return s; /* parsed schemas live as long as the runtime */
}

static void start_iceberg_sink(dm_runtime_t *rt, unit_t *u, const json_t *settings,
                               const json_t *key, const char *out_topic,
                               const dm_avro_schema_t *out_schema, int64_t out_id, size_t index,
                               const char *pipeline)
{
    dm_error_t err = {0};
    dm_config_defaults(&dm_iceberg_sink_config_table, &u->ice_conf, &err);
    if (dm_config_apply_json(&dm_iceberg_sink_config_table, &u->ice_conf, settings, NULL, &err)) {
        dm_config_free(&dm_iceberg_sink_config_table, &u->ice_conf);
        dm_unit_set(&u->st, "failed", "%s", err.message);
        return;
    }
    snprintf(u->topic, sizeof(u->topic), "%s", out_topic);
    snprintf(u->group, sizeof(u->group), "sink.%s.%zu", pipeline, index);
    json_t *none = json_is_array(key) ? NULL : json_array(); /* a source without a key */
    u->owned = json_deep_copy(none ? none : key);
    json_decref(none);
    size_t n = json_array_size(u->owned) < 16 ? json_array_size(u->owned) : 16;
    for (size_t i = 0; i < n; i++)
        u->ice_key[i] = json_string_value(json_array_get(u->owned, i));
    u->ice = (dm_iceberg_sink_t){.transport = rt->t,
                                 .topic = u->topic,
                                 .partitions = topic_partitions(rt, out_topic),
                                 .group = u->group,
                                 .schema = out_schema,
                                 .schema_id = (uint32_t)out_id,
                                 .key = u->ice_key,
                                 .n_key = n,
                                 .schema_lookup = iceberg_schema,
                                 .schema_lookup_ctx = u,
                                 .conf = &u->ice_conf};
    unit_start(u);
}

/* What a `datamesh worker` needs to run a pipeline's tasks (see dm_runtime_worker_tasks). */
static json_t *worker_task(const json_t *doc, const char *group, const char *input,
                           int32_t partitions, int64_t in_id, const char *out, int64_t out_id,
                           const char *dlq)
{
    json_t *steps = json_array();
    size_t i;
    json_t *step;
    json_array_foreach(json_object_get(json_object_get(doc, "spec"), "steps"), i, step)
    {
        const char *kind;
        json_t *conf = dm_runtime_step_config(step, &kind);
        json_array_append_new(steps, json_pack("{s:s, s:o}", "kind", kind, "config", conf));
    }
    return json_pack("{s:s, s:s, s:s, s:i, s:I, s:s?, s:I, s:s, s:o}", "pipeline",
                     dm_spec_name(doc), "group", group, "input", input, "partitions",
                     (int)partitions, "input_schema_id", (json_int_t)in_id, "output", out,
                     "output_schema_id", (json_int_t)out_id, "dead_letter", dlq, "steps", steps);
}

static void start_pipeline(dm_runtime_t *rt, const json_t *doc, const json_t *stored_sources,
                           const json_t *stored_sinks)
{
    const char *name = dm_spec_name(doc);
    char owner[160];
    snprintf(owner, sizeof(owner), "Pipeline/%s", name);
    const json_t *spec = json_object_get(doc, "spec");
    const json_t *from = json_object_get(spec, "from");
    const char *input =
        json_is_string(from) ? json_string_value(from) : json_string_value(json_array_get(from, 0));
    dm_error_t err = {0};
    char subject[300];
    snprintf(subject, sizeof(subject), "%s-value", input);
    int64_t in_id;
    if (dm_schema_registry_get_version(rt->reg, subject, -1, &in_id, NULL, NULL, &err))
        return unit_failed(rt, owner, "input",
                           "the input source has no registered schema yet (is it running?)");
    dm_avro_schema_t *in_schema = dm_runtime_schema_locked(rt, in_id, &err);
    int32_t in_parts = topic_partitions(rt, input);
    if (!in_schema || in_parts <= 0) return unit_failed(rt, owner, "input", err.message);
    /* A union: the other sources, each read as the first one's schema. Task
     * p reads partition p of the first and partitions q = p, p + n, ... of the others. */
    size_t n_from = json_is_array(from) ? json_array_size(from) : 1;
    const dm_avro_schema_t *u_schema[16] = {0};
    uint32_t u_id[16] = {0};
    int32_t u_parts[16] = {0};
    if (n_from > 16) return unit_failed(rt, owner, "input", "a union reads at most 16 sources");
    for (size_t k = 1; k < n_from; k++) {
        const char *src = json_string_value(json_array_get(from, k));
        char subj[300], msg[600];
        int64_t id = 0;
        snprintf(subj, sizeof(subj), "%s-value", src);
        if (dm_schema_registry_get_version(rt->reg, subj, -1, &id, NULL, NULL, &err) == DM_OK)
            u_schema[k] = dm_runtime_schema_locked(rt, id, &err);
        u_id[k] = (uint32_t)id;
        u_parts[k] = topic_partitions(rt, src);
        if (!u_schema[k] || u_parts[k] <= 0) {
            snprintf(msg, sizeof(msg), "source %s has no registered schema or topic yet", src);
            return unit_failed(rt, owner, "input", msg);
        }
    }

    /* A join (one per pipeline, at any step): the partitions of the source it
     * joins with, task p reading q = p, p + n, ... of them. */
    const json_t *join0 = NULL;
    for (size_t k = 0; !join0 && k < json_array_size(json_object_get(spec, "steps")); k++)
        join0 = json_object_get(json_array_get(json_object_get(spec, "steps"), k), "join");
    const char *jwith = json_string_value(json_object_get(join0, "with"));
    const dm_avro_schema_t *j_schema = NULL;
    uint32_t j_id = 0;
    int32_t j_parts = 0;
    if (jwith) {
        char subj[300], msg[600];
        int64_t id = 0;
        snprintf(subj, sizeof(subj), "%s-value", jwith);
        if (dm_schema_registry_get_version(rt->reg, subj, -1, &id, NULL, NULL, &err) == DM_OK)
            j_schema = dm_runtime_schema_locked(rt, id, &err);
        j_id = (uint32_t)id;
        j_parts = topic_partitions(rt, jwith);
        if (!j_schema || j_parts <= 0) {
            snprintf(msg, sizeof(msg),
                     "join with %s: the source has no registered schema or "
                     "topic yet",
                     jwith);
            return unit_failed(rt, owner, "join", msg);
        }
    }

    /* Steps: spec syntax to processor settings. */
    const json_t *steps = json_object_get(spec, "steps");
    size_t n_steps = json_array_size(steps);
    dm_task_step_spec_t *specs = calloc(n_steps ? n_steps : 1, sizeof(*specs));
    json_t *configs = json_array();
    unit_t *tables[8];
    int n_tables = 0;
    for (size_t i = 0; i < n_steps; i++) {
        const json_t *step = json_array_get(steps, i);
        const char *kind;
        json_t *conf = dm_runtime_step_config(step, &kind);
        const json_t *arg = json_object_get(step, kind);
        json_array_append_new(configs, conf);
        specs[i] = (dm_task_step_spec_t){dm_proc_find(kind), conf};
        unit_t *tu = NULL;
        if (!strcmp(kind, "enrich") &&
            start_table(rt, owner, json_string_value(json_object_get(arg, "with")), stored_sources,
                        &tu, &err)) {
            free(specs);
            json_decref(configs);
            return unit_failed(rt, owner, "enrich", err.message);
        }
        if (tu && n_tables < 8) tables[n_tables++] = tu;
    }
    /* Output topic: the derived source, else one of the pipeline's own. */
    char out_topic[300] = "", dlq[300];
    const json_t *to = json_object_get(spec, "to");
    size_t i;
    json_t *o;
    json_array_foreach(to, i, o) if (json_is_string(json_object_get(o, "source"))) snprintf(
        out_topic, sizeof(out_topic), "%s", json_string_value(json_object_get(o, "source")));
    bool derived = out_topic[0] != '\0';
    if (!derived) snprintf(out_topic, sizeof(out_topic), "pipeline.%s.out", name);
    snprintf(dlq, sizeof(dlq), "pipeline.%s.dlq", name);
    char out_subject[320];
    snprintf(out_subject, sizeof(out_subject), "%s-value", out_topic);
    json_t *timing = pipeline_time_and_outputs(steps, in_schema->root);
    json_t *extra = json_object_get(timing, "extra");
    bool stateful = json_is_true(json_object_get(timing, "stateful"));
    char state_topic[300];
    snprintf(state_topic, sizeof(state_topic), "pipeline.%s.state", name);
    dm_err_t trc = ensure_topic(rt, out_topic, in_parts, out_subject, &err);
    if (!trc) trc = ensure_topic(rt, dlq, 1, NULL, &err);
    if (!trc && stateful) trc = ensure_state_topic(rt, state_topic, in_parts, &err);
    if (!trc && json_array_size(extra) > 8)
        trc = dm_error_set(&err, DM_ERR_UNSUPPORTED, "a route has more than 8 outputs");
    for (size_t x = 0; !trc && x < json_array_size(extra); x++) {
        const char *topic = json_string_value(json_array_get(extra, x));
        char subj[320];
        snprintf(subj, sizeof(subj), "%s-value", topic);
        trc = ensure_topic(rt, topic, in_parts, subj, &err);
    }
    if (trc) {
        free(specs);
        json_decref(configs);
        json_decref(timing);
        return unit_failed(rt, owner, "topics", err.message);
    }
    int64_t out_id = 0;
    dm_avro_schema_t *out_schema = NULL;
    char group[300];
    snprintf(group, sizeof(group), "pipeline.%s", name);
    for (int32_t p = 0; p < in_parts; p++) {
        char uname[300];
        snprintf(uname, sizeof(uname), "%s/task/%d", name, p);
        unit_t *u = unit_new(rt, U_TASK, owner, uname);
        if (!u) break;
        /* The unit keeps the strings its task borrows. */
        u->owned = json_pack("{s:O, s:s, s:s, s:O, s:s}", "configs", configs, "out", out_topic,
                             "dlq", dlq, "timing", timing, "state", state_topic);
        char sdir[4400];
        snprintf(sdir, sizeof(sdir), "%s/state/%s/%d", rt->data_dir, name, p);
        json_object_set_new(u->owned, "state_dir", json_string(sdir));
        const json_t *ut = json_object_get(u->owned, "timing");
        json_object_set_new(u->owned, "from", json_deep_copy(from));
        const json_t *uf = json_object_get(u->owned, "from");
        dm_task_input_t more[64];
        size_t n_more = 0;
        for (size_t k = 1; k < n_from; k++)
            for (int32_t q = p; q < u_parts[k] && n_more < 64; q += in_parts)
                more[n_more++] = (dm_task_input_t){json_string_value(json_array_get(uf, k)), q,
                                                   u_schema[k], u_id[k]};
        for (size_t x = 0; x < json_array_size(extra); x++)
            u->extra[x] = json_string_value(json_array_get(json_object_get(ut, "extra"), x));
        snprintf(u->topic, sizeof(u->topic), "%s", input);
        snprintf(u->group, sizeof(u->group), "%s", group);
        dm_task_config_t tc = {.name = u->name,
                               .group = u->group,
                               .input_topic = u->topic,
                               .input_partition = p,
                               .input_schema = in_schema,
                               .input_schema_id = (uint32_t)in_id,
                               .output_topic = json_string_value(json_object_get(u->owned, "out")),
                               .dead_letter_topic =
                                   json_string_value(json_object_get(u->owned, "dlq")),
                               .steps = specs,
                               .n_steps = n_steps,
                               .metrics = rt->metrics,
                               .env = &rt->env};
        /* State, event time, route outputs and union inputs (engine/task.h). */
        if (stateful) tc.state_topic = json_string_value(json_object_get(u->owned, "state"));
        tc.state_dir = json_string_value(json_object_get(u->owned, "state_dir"));
        /* spec.idle_timeout (validated at apply): 0 = an input holds the
         * watermark back only while it brings records */
        const json_t *idle = json_object_get(spec, "idle_timeout");
        int64_t idle_ms = json_is_integer(idle) ? json_integer_value(idle) : 0;
        if (json_is_string(idle) && dm_parse_duration_ms(json_string_value(idle), &idle_ms))
            idle_ms = 0;
        if (idle) tc.idle_timeout_ms = idle_ms > 0 ? idle_ms : 1;
        int64_t spill = 0; /* validated at apply (spec.state.spill) */
        if (!dm_spec_state_spill(json_object_get(spec, "state"), &spill))
            tc.state_spill_bytes = (size_t)spill;
        tc.event_time = json_string_value(json_object_get(ut, "time"));
        tc.extra_topics = u->extra;
        tc.n_extra_topics = json_array_size(extra);
        tc.more_inputs = more;
        tc.n_more_inputs = n_more;
        dm_task_input_t other[64];
        size_t n_other = 0;
        if (jwith) json_object_set_new(u->owned, "join_with", json_string(jwith));
        for (int32_t q = p; jwith && q < j_parts && n_other < 64; q += in_parts)
            other[n_other++] = (dm_task_input_t){
                json_string_value(json_object_get(u->owned, "join_with")), q, j_schema, j_id};
        tc.other_inputs = other;
        tc.n_other_inputs = n_other;
        if (dm_task_new(rt->t, &tc, &u->task, &err)) {
            dm_unit_set(&u->st, "failed", "%s", err.message);
            break;
        }
        if (!out_schema) {
            /* Register what the chain writes (the derived source's schema). */
            char *text =
                dm_task_output_schema(u->task) == in_schema->root ? strdup(in_schema->json) : NULL;
            if (!text) {
                json_t *seen = json_object();
                json_t *j = dm_schema_type_json(dm_task_output_schema(u->task), seen);
                text = json_dumps(j, JSON_COMPACT);
                json_decref(j);
                json_decref(seen);
            }
            out_schema = register_schema(rt, out_subject, text, &out_id, &err);
            /* Route outputs carry the same records: the same schema and id. */
            for (size_t x = 0; out_schema && x < json_array_size(extra); x++) {
                char subj[320];
                int64_t xid = 0;
                snprintf(subj, sizeof(subj), "%s-value",
                         json_string_value(json_array_get(extra, x)));
                if (!register_schema(rt, subj, text, &xid, &err)) {
                    out_schema = NULL;
                } else if (xid != out_id) {
                    dm_error_set(&err, DM_ERR_SCHEMA_INCOMPATIBLE,
                                 "route output %s already has another schema (id %lld, the "
                                 "pipeline writes id %lld)",
                                 json_string_value(json_array_get(extra, x)), (long long)xid,
                                 (long long)out_id);
                    out_schema = NULL;
                }
            }
            free(text);
            if (!out_schema) {
                dm_unit_set(&u->st, "failed", "paused: %s", err.message);
                break;
            }
        }
        dm_task_set_output_schema_id(u->task, (uint32_t)out_id);
        memcpy(u->tables, tables, sizeof(tables));
        u->n_tables = n_tables;
        if (rt->external_tasks) {
            dm_unit_set(&u->st, "external", "run by datamesh worker processes (group %s)", group);
            continue;
        }
        unit_start(u);
    }
    if (rt->external_tasks && out_schema)
        json_object_set_new(
            rt->worker_tasks, owner,
            worker_task(doc, group, input, in_parts, in_id, out_topic, out_id, dlq));
    free(specs); /* tasks opened their processors; the settings live in u->owned */
    json_decref(configs);
    json_decref(timing);
    if (!out_schema) return;
    /* Sinks read the output topic. */
    size_t k = 0;
    json_array_foreach(to, i, o)
    {
        const json_t *sink = json_object_get(o, "sink");
        if (!sink) continue;
        if (json_is_string(sink))
            sink = json_object_get(json_object_get(stored_sinks, json_string_value(sink)), "spec");
        char uname[300];
        snprintf(uname, sizeof(uname), "%s/sink/%zu", name, k++);
        unit_t *u = unit_new(rt, U_SINK, owner, uname);
        if (!u) break;
        json_t *settings = json_deep_copy(sink);
        json_object_del(settings, "type");
        const dm_sink_ops_t *ops =
            dm_sink_ops_find(json_string_value(json_object_get(sink, "type")));
        if (ops) {
            /* Every type but file runs on the common runner. */
            snprintf(u->group, sizeof(u->group), "sink.%s.%zu", name, k - 1);
            const json_t *src = json_object_get(json_object_get(stored_sources, input), "spec");
            if (setup_runner_sink(rt, u, ops, settings, json_object_get(src, "key"), out_topic,
                                  out_schema, out_id, dlq, &err))
                dm_unit_set(&u->st, "failed", "%s", err.message);
            else
                unit_start(u);
            json_decref(settings);
            continue;
        }
        if (!strcmp(json_string_value(json_object_get(sink, "type")), "iceberg")) {
            const json_t *src = json_object_get(json_object_get(stored_sources, input), "spec");
            start_iceberg_sink(rt, u, settings, json_object_get(src, "key"), out_topic, out_schema,
                               out_id, k - 1, name);
            json_decref(settings);
            continue;
        }
        dm_config_defaults(&dm_file_sink_config_table, &u->sink_conf, &err);
        if (dm_config_apply_json(&dm_file_sink_config_table, &u->sink_conf, settings, NULL, &err)) {
            json_decref(settings);
            dm_unit_set(&u->st, "failed", "%s", err.message);
            continue;
        }
        json_decref(settings);
        snprintf(u->topic, sizeof(u->topic), "%s", out_topic);
        snprintf(u->group, sizeof(u->group), "sink.%s.%zu", name, k - 1);
        u->sink = (dm_file_sink_t){.transport = rt->t,
                                   .topic = u->topic,
                                   .partitions = topic_partitions(rt, out_topic),
                                   .group = u->group,
                                   .schema = out_schema,
                                   .schema_id = (uint32_t)out_id,
                                   .conf = &u->sink_conf};
        unit_start(u);
    }
}

/* ---- sync ------------------------------------------------------------------------- */

dm_err_t dm_runtime_sync(dm_runtime_t *rt, dm_error_t *err)
{
    /* The store's documents themselves (no copy per object: at 50,000 objects
     * the copies were most of the controller's memory peak); read only. */
    json_t *sources = NULL, *pipelines = NULL, *sinks = NULL;
    if (dm_store_docs(rt->store, DM_KIND_SOURCE, &sources, err) ||
        dm_store_docs(rt->store, DM_KIND_PIPELINE, &pipelines, err) ||
        dm_store_docs(rt->store, DM_KIND_SINK, &sinks, err)) {
        json_decref(sources);
        json_decref(pipelines);
        return err->code;
    }
    sync_defers_topics = true;
    pthread_mutex_lock(&rt->mu);
    /* Which objects changed (or went away) since their units started? A changed
     * source restarts the pipelines that read it, so they pick up its schema. */
    const char *n;
    json_t *d;
    json_t *stale = json_array();
    const char *key;
    json_t *was;
    json_object_foreach(rt->running, key, was)
    {
        const json_t *now = !strncmp(key, "Source/", 7) ? json_object_get(sources, key + 7)
                                                        : json_object_get(pipelines, key + 9);
        if (!now || !dm_spec_doc_equal(now, was)) json_array_append_new(stale, json_string(key));
    }
    json_object_foreach(pipelines, n, d)
    {
        char pk[200];
        snprintf(pk, sizeof(pk), "Pipeline/%s", n);
        json_t *reads = dm_spec_pipeline_inputs(d);
        /* A join reads its other source too: restart when that one changes. */
        const json_t *steps = json_object_get(json_object_get(d, "spec"), "steps");
        for (size_t k = 0; k < json_array_size(steps); k++) {
            const json_t *jw =
                json_object_get(json_object_get(json_array_get(steps, k), "join"), "with");
            if (json_is_string(jw)) json_array_append(reads, (json_t *)jw);
        }
        size_t i;
        json_t *s;
        json_array_foreach(reads, i, s)
        {
            char sk[200];
            snprintf(sk, sizeof(sk), "Source/%s", json_string_value(s));
            size_t j;
            json_t *x;
            json_array_foreach(stale, j, x) if (!strcmp(json_string_value(x), sk))
                json_array_append_new(stale, json_string(pk));
        }
        json_decref(reads);
    }
    size_t i;
    json_t *x;
    json_array_foreach(stale, i, x)
    {
        stop_units(rt, json_string_value(x));
        json_object_del(rt->running, json_string_value(x));
        json_object_del(rt->worker_tasks, json_string_value(x));
    }
    /* Start what is not running: sources first, then pipelines whose input
     * exists (a pipeline may read another's derived source). */
    json_object_foreach(sources, n, d)
    {
        char sk[200];
        snprintf(sk, sizeof(sk), "Source/%s", n);
        if (json_object_get(rt->running, sk)) continue;
        start_source(rt, d);
        json_object_set(rt->running, sk, d);
    }
    /* Let new datagen sources commit their first batch before the pipelines
     * that read them (and the tables enrich keeps) start: a table then starts
     * with its rows instead of filling while the first events pass. */
    for (int waited = 0; waited < 150; waited++) {
        bool pending = false;
        for (unit_t *u = rt->units; u; u = u->next) {
            if (u->kind != U_DATAGEN || !u->started) continue;
            char state[32], error[8];
            dm_unit_get(&u->st, state, sizeof(state), error, sizeof(error));
            if (atomic_load(&u->st.position) == 0 &&
                (!strcmp(state, "starting") || !strcmp(state, "running")))
                pending = true;
        }
        if (!pending) break;
        dm_sleep_ms(20);
    }
    for (int round = 0; round < 16; round++) {
        bool progress = false;
        json_object_foreach(pipelines, n, d)
        {
            char pk[200];
            snprintf(pk, sizeof(pk), "Pipeline/%s", n);
            if (json_object_get(rt->running, pk)) continue;
            json_t *reads = dm_spec_pipeline_inputs(d);
            const char *input = json_string_value(json_array_get(reads, 0));
            bool ready = input && topic_partitions(rt, input) > 0;
            json_decref(reads);
            if (!ready && round < 15) continue;
            start_pipeline(rt, d, sources, sinks);
            json_object_set(rt->running, pk, d);
            progress = true;
        }
        if (!progress) break;
    }
    pthread_mutex_unlock(&rt->mu);
    json_decref(stale);
    json_decref(sources);
    json_decref(pipelines);
    json_decref(sinks);
    /* Apply returns only once the topics it made survive a crash. */
    sync_defers_topics = false;
    return rt->t ? dm_transport_sync_topics(rt->t, err) : DM_OK;
}

json_t *dm_runtime_status(dm_runtime_t *rt, const char *kind, const char *name)
{
    char owner[200];
    snprintf(owner, sizeof(owner), "%s/%s", kind, name);
    json_t *units = json_array();
    const char *overall = "idle";
    int failed = 0, retrying = 0, running = 0;
    pthread_mutex_lock(&rt->mu);
    for (unit_t *u = rt->by_owner[owner_slot(owner)]; u; u = u->onext) {
        if (strcmp(u->owner, owner)) continue;
        char state[32], error[512];
        dm_unit_get(&u->st, state, sizeof(state), error, sizeof(error));
        failed += !strcmp(state, "failed");
        retrying += !strcmp(state, "retrying");
        running += !strcmp(state, "running");
        json_t *j =
            json_pack("{s:s, s:s, s:s, s:I, s:I}", "name", u->name, "kind", unit_kinds[u->kind],
                      "state", state, "position", (json_int_t)atomic_load(&u->st.position), "lag",
                      (json_int_t)atomic_load(&u->st.lag));
        if (error[0]) json_object_set_new(j, "error", json_string(error));
        if (u->kind == U_PGSOURCE) json_object_set_new(j, "postgres", dm_pg_source_status(u->pg));
        json_array_append_new(units, j);
    }
    bool known = json_object_get(rt->running, owner) != NULL;
    pthread_mutex_unlock(&rt->mu);
    overall = failed     ? "failed"
              : retrying ? "degraded"
              : running  ? "running"
              : known    ? "ready"
                         : "pending";
    return json_pack("{s:s, s:o}", "state", overall, "units", units);
}

/* ---- life --------------------------------------------------------------------------- */

dm_err_t dm_runtime_new(const char *data_dir, dm_store_t *store, dm_metrics_t *metrics,
                        dm_runtime_t **out, dm_error_t *err)
{
    return dm_runtime_new_with(data_dir, NULL, store, metrics, out, err);
}

json_t *dm_runtime_worker_tasks(dm_runtime_t *rt)
{
    pthread_mutex_lock(&rt->mu);
    json_t *tasks = json_array();
    const char *key;
    json_t *t;
    json_object_foreach(rt->worker_tasks, key, t) json_array_append(tasks, t);
    /* Only scheme and brokers: settings after '?' may hold credentials. */
    const char *url = rt->transport_url ? rt->transport_url : "embedded";
    json_t *out = json_pack("{s:s%, s:b, s:o}", "transport", url, strcspn(url, "?"), "external",
                            rt->external_tasks, "tasks", tasks);
    pthread_mutex_unlock(&rt->mu);
    return out;
}

dm_err_t dm_runtime_new_with(const char *data_dir, const dm_runtime_options_t *opt,
                             dm_store_t *store, dm_metrics_t *metrics, dm_runtime_t **out,
                             dm_error_t *err)
{
    *out = NULL;
    dm_runtime_t *rt = calloc(1, sizeof(*rt));
    if (!rt) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&rt->mu, NULL);
    pthread_mutex_init(&rt->url_mu, NULL);
    rt->data_dir = strdup(data_dir);
    rt->store = store;
    rt->metrics = metrics;
    rt->running = json_object();
    rt->env = (dm_proc_env_t){env_table, rt};
    rt->worker_tasks = json_object();
    if (opt && opt->transport) rt->transport_url = strdup(opt->transport);
    rt->external_tasks = opt && opt->external_tasks;
    char path[4200];
    snprintf(path, sizeof(path), "embedded:%s/log", data_dir);
    dm_err_t rc = dm_transport_open(rt->transport_url ? rt->transport_url : path, &rt->t, err);
    if (!rc) rc = dm_pool_new(rt->t, 0, &rt->pool, err);
    if (!rc) {
        snprintf(path, sizeof(path), "%s/registry.db", data_dir);
        rc = dm_schema_registry_open(path, &rt->reg, err);
    }
    if (!rc) rc = dm_runtime_sync(rt, err);
    if (rc) {
        dm_runtime_free(rt);
        return rc;
    }
    *out = rt;
    return DM_OK;
}

void dm_runtime_free(dm_runtime_t *rt)
{
    if (!rt) return;
    pthread_mutex_lock(&rt->mu);
    stop_units(rt, NULL);
    pthread_mutex_unlock(&rt->mu);
    for (schema_entry_t *e = rt->schemas, *next; e; e = next) {
        next = e->next;
        dm_avro_schema_free(e->schema);
        free(e);
    }
    dm_pool_free(rt->pool);
    if (rt->t) dm_transport_close(rt->t);
    dm_schema_registry_close(rt->reg);
    json_decref(rt->running);
    json_decref(rt->worker_tasks);
    free(rt->transport_url);
    pthread_mutex_destroy(&rt->mu);
    pthread_mutex_destroy(&rt->url_mu);
    free(rt->data_dir);
    free(rt);
}
