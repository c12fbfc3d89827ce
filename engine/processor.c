/* engine/processor.c — the list of built-in processors (one line each), what
 * a spec step means (its kind and settings, through the shorthand), processor
 * instances and dead letters. */
#include "engine/processor.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "engine/expr.h"

/* ---- the registry ------------------------------------------------------------------ */

/* Every built-in processor, one line each: spec validation, the runtime,
 * `datamesh plugins` and docs/plugins-reference.md all read this list. */
static const dm_proc_ops_t *const builtins[] = {
    &dm_proc_filter, &dm_proc_project, &dm_proc_enrich, &dm_proc_aggregate, &dm_proc_dedupe,
    &dm_proc_route,  &dm_proc_join,    &dm_proc_sdk,    &dm_proc_lua,
};

/* Step kinds DESIGN.md names that this version refuses at apply. */
static const char *const planned[] = {"sql"};

#define N(a) (sizeof(a) / sizeof((a)[0]))

const dm_proc_ops_t *dm_proc_find(const char *name)
{
    for (size_t i = 0; name && i < N(builtins); i++)
        if (!strcmp(builtins[i]->name, name)) return builtins[i];
    return NULL;
}

const dm_proc_ops_t *const *dm_proc_list(size_t *n)
{
    *n = N(builtins);
    return builtins;
}

void dm_proc_kinds_available(char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N(builtins) && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", builtins[i]->name);
}

void dm_proc_kinds_all(char *out, size_t cap)
{
    dm_proc_kinds_available(out, cap);
    size_t o = strlen(out);
    for (size_t i = 0; i < N(planned) && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, ", %s", planned[i]);
}

static bool is_planned(const char *kind)
{
    for (size_t i = 0; i < N(planned); i++)
        if (!strcmp(planned[i], kind)) return true;
    return false;
}

/* The step's kind and processor; err names the problem relative to the step
 * ("unknown key 'map'; …") for the caller to place. */
static dm_err_t step_kind(const json_t *step, const char **kind, const dm_proc_ops_t **ops,
                          dm_error_t *err)
{
    char list[256];
    *kind = NULL;
    *ops = NULL;
    if (!json_is_object(step) || json_object_size(step) != 1) {
        dm_proc_kinds_all(list, sizeof(list));
        return dm_error_set(err, DM_ERR_CONFIG, "each step is a mapping with one key, one of: %s",
                            list);
    }
    *kind = json_object_iter_key(json_object_iter((json_t *)step));
    *ops = dm_proc_find(*kind);
    if (*ops) return DM_OK;
    if (is_planned(*kind)) {
        dm_proc_kinds_available(list, sizeof(list));
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "step '%s' is not available in this version yet (available: %s)", *kind,
                            list);
    }
    dm_proc_kinds_all(list, sizeof(list));
    return dm_error_set(err, DM_ERR_CONFIG_UNKNOWN_KEY, "unknown key '%s'; allowed: %s", *kind,
                        list);
}

/* The settings of a step whose kind is known: a mapping as it is, anything
 * else as the shorthand's value. *shorthand tells which was used. */
static json_t *step_settings(const dm_proc_ops_t *ops, const json_t *arg, bool *shorthand,
                             dm_error_t *err)
{
    *shorthand = false;
    if (json_is_object(arg)) return json_deep_copy(arg);
    if (!ops->shorthand) {
        dm_error_set(err, DM_ERR_CONFIG_TYPE, "expected a mapping of settings, got %s",
                     dm_config_json_kind(arg));
        return NULL;
    }
    *shorthand = true;
    json_t *o = json_object();
    json_object_set(o, ops->shorthand, (json_t *)arg);
    return o;
}

json_t *dm_proc_step_config(const json_t *step, const char **kind, const dm_proc_ops_t **ops,
                            dm_error_t *err)
{
    const char *k;
    const dm_proc_ops_t *o;
    dm_error_t ignore;
    if (!err) err = &ignore;
    dm_err_t rc = step_kind(step, &k, &o, err);
    if (kind) *kind = k;
    if (ops) *ops = o;
    if (rc) return NULL;
    bool shorthand;
    json_t *settings = step_settings(o, json_object_get(step, k), &shorthand, err);
    if (!settings) dm_error_prefix(err, "step %s", k);
    return settings;
}

dm_err_t dm_proc_settings_parse(const dm_proc_ops_t *ops, const json_t *settings,
                                const dm_config_source_t *src, void **conf, dm_error_t *err)
{
    *conf = calloc(1, ops->config_size ? ops->config_size : 1);
    if (!*conf) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (!ops->config) {
        if (!json_object_size(settings)) return DM_OK;
        free(*conf);
        *conf = NULL;
        return dm_error_set(err, DM_ERR_CONFIG_UNKNOWN_KEY, "%s takes no settings", ops->name);
    }
    dm_err_t rc = dm_config_defaults(ops->config, *conf, err);
    if (!rc) rc = dm_config_apply_json(ops->config, *conf, settings, src, err);
    if (rc) {
        dm_proc_settings_free(ops, *conf);
        *conf = NULL;
    }
    return rc;
}

void dm_proc_settings_free(const dm_proc_ops_t *ops, void *conf)
{
    if (conf && ops->config) dm_config_free(ops->config, conf);
    free(conf);
}

dm_err_t dm_proc_step_check(const json_t *step, const char *path, dm_config_locate_fn locate,
                            void *locate_ctx, dm_error_t *err)
{
    const char *kind;
    const dm_proc_ops_t *ops;
    char at[256], loc[256] = "";
    dm_err_t rc = step_kind(step, &kind, &ops, err);
    if (rc) {
        /* An unknown kind is placed at its key; the others at the step. */
        snprintf(at, sizeof(at), "%s%s%s", path, kind && !ops ? "." : "", kind && !ops ? kind : "");
        if (locate) locate(locate_ctx, at, loc, sizeof(loc));
        return dm_error_prefix(err, "%s%s%s", loc, loc[0] ? ": " : "", at);
    }
    snprintf(at, sizeof(at), "%s.%s", path, kind);
    bool shorthand;
    json_t *settings = step_settings(ops, json_object_get(step, kind), &shorthand, err);
    if (!settings) {
        if (locate) locate(locate_ctx, at, loc, sizeof(loc));
        return dm_error_prefix(err, "%s%s%s", loc, loc[0] ? ": " : "", at);
    }
    dm_config_source_t src = {.path = at,
                              .locate = locate,
                              .locate_ctx = locate_ctx,
                              .shorthand = shorthand ? ops->shorthand : NULL};
    void *conf;
    rc = dm_proc_settings_parse(ops, settings, &src, &conf, err);
    dm_proc_settings_free(ops, rc ? NULL : conf);
    json_decref(settings);
    return rc;
}

/* ---- instances ----------------------------------------------------------------------- */

dm_err_t dm_proc_open(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                      const dm_avro_node_t *input, dm_proc_t **out, dm_error_t *err)
{
    return dm_proc_open2(ops, env, config, input, NULL, out, err);
}

dm_err_t dm_proc_open2(const dm_proc_ops_t *ops, const dm_proc_env_t *env, const json_t *config,
                       const dm_avro_node_t *input, const dm_avro_node_t *other, dm_proc_t **out,
                       dm_error_t *err)
{
    *out = NULL;
    dm_proc_t *p = calloc(1, sizeof(*p));
    if (!p) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    p->ops = ops;
    p->env = env;
    p->input = input;
    p->other = other;
    p->watermark = INT64_MIN;
    dm_err_t rc = dm_proc_settings_parse(ops, config, NULL, &p->conf, err);
    if (!rc && ops->stateful) rc = dm_state_new(NULL, 0, &p->kv, err);
    if (!rc) rc = ops->open(p, p->conf, input, &p->output, err);
    if (rc) {
        /* an SDK step names its Processor object itself */
        if (ops != &dm_proc_sdk) dm_error_prefix(err, "processor %s", ops->name);
        dm_state_free(p->kv);
        dm_proc_settings_free(ops, p->conf);
        free(p);
        return rc;
    }
    *out = p;
    return DM_OK;
}

void dm_proc_close(dm_proc_t *p)
{
    if (!p) return;
    if (p->ops->close) p->ops->close(p);
    dm_avro_schema_free(p->output);
    dm_state_free(p->kv);
    dm_proc_settings_free(p->ops, p->conf);
    free(p);
}

dm_err_t dm_proc_reset_state(dm_proc_t *p, const char *dir, size_t bytes, dm_error_t *err)
{
    if (!p->ops->stateful) return DM_OK;
    dm_state_t *kv;
    dm_err_t rc = dm_state_new(dir, bytes, &kv, err);
    if (rc) return rc;
    dm_state_free(p->kv);
    p->kv = kv;
    return DM_OK;
}

dm_err_t dm_dead_letters_add(dm_dead_letters_t *d, uint32_t index, const char *reason)
{
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        dm_dead_letter_t *items = realloc(d->items, cap * sizeof(*items));
        if (!items) return DM_ERR_NOMEM;
        d->items = items;
        d->cap = cap;
    }
    d->items[d->n].index = index;
    snprintf(d->items[d->n].reason, sizeof(d->items[d->n].reason), "%s", reason);
    d->n++;
    return DM_OK;
}

void dm_dead_letters_reset(dm_dead_letters_t *d)
{
    d->n = 0;
}

void dm_dead_letters_free(dm_dead_letters_t *d)
{
    free(d->items);
    memset(d, 0, sizeof(*d));
}

/* ---- lineage dependencies ---- */

dm_err_t dm_field_deps_add(dm_field_deps_t *d, const char *output, const char *input,
                           dm_field_dep_side_t side, const char *source, dm_field_dep_kind_t kind)
{
    for (size_t i = 0; i < d->n; i++) {
        const dm_field_dep_t *x = &d->items[i];
        if (x->side == side && x->kind == kind && !strcmp(x->input, input) &&
            (x->output == output || (x->output && output && !strcmp(x->output, output))) &&
            (x->source == source || (x->source && source && !strcmp(x->source, source))))
            return DM_OK; /* already there */
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        dm_field_dep_t *items = realloc(d->items, cap * sizeof(*items));
        if (!items) return DM_ERR_NOMEM;
        d->items = items;
        d->cap = cap;
    }
    dm_field_dep_t *x = &d->items[d->n];
    *x = (dm_field_dep_t){output ? strdup(output) : NULL, strdup(input),
                          source ? strdup(source) : NULL, side, kind};
    if (!x->input || (output && !x->output) || (source && !x->source)) {
        free(x->output);
        free(x->input);
        free(x->source);
        return DM_ERR_NOMEM;
    }
    d->n++;
    return DM_OK;
}

dm_err_t dm_field_deps_add_expr(dm_field_deps_t *d, const char *output, const struct dm_expr *e,
                                dm_field_dep_side_t side, const char *source,
                                dm_field_dep_kind_t kind)
{
    if (!e) return DM_OK;
    const char *const *paths;
    size_t n = dm_expr_paths(e, &paths);
    for (size_t i = 0; i < n; i++) {
        dm_err_t rc = dm_field_deps_add(d, output, paths[i], side, source, kind);
        if (rc) return rc;
    }
    return DM_OK;
}

void dm_field_deps_free(dm_field_deps_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->items[i].output);
        free(d->items[i].input);
        free(d->items[i].source);
    }
    free(d->items);
    *d = (dm_field_deps_t){0};
}

const char *dm_field_dep_kind_name(dm_field_dep_kind_t kind)
{
    static const char *const names[] = {"IDENTITY", "TRANSFORMATION", "AGGREGATION", "FILTER",
                                        "JOIN",     "GROUP_BY",       "WINDOW",      "SORT"};
    return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
}

bool dm_field_dep_direct(dm_field_dep_kind_t kind)
{
    return kind <= DM_DEP_AGGREGATION;
}
