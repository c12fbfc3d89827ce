/* engine/proc_enrich.c — stream–table lookup: adds fields of the latest row
 * of another source (a table, kept up to date by the engine) whose key equals
 * a field of the stream record.
 *
 * Settings: {"with": "movies", "on": "movie_id", "fields": ["title", "year AS released"]}
 * "on" is a field path (or expression) of the stream; it is matched against the
 * table's key field. Added fields are nullable: a key with no row adds NULLs.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/expr.h"
#include "engine/processor.h"
#include "engine/schema_out.h"
#include "engine/table.h"

typedef struct added {
    char *name;
    int table_index; /* field index in the table's record */
    bool wrap;       /* output type is ["null", T] */
} added_t;

typedef struct enrich {
    dm_table_t *table;
    dm_expr_t *on;
    added_t *fields;
    size_t n_fields;
    dm_avro_codec_t *codec; /* table values, only the added fields */
    uint32_t n_in;          /* input fields */
    dm_buf_t key, val;
} enrich_t;

static void enrich_free(enrich_t *e)
{
    dm_expr_free(e->on);
    for (size_t i = 0; i < e->n_fields; i++)
        free(e->fields[i].name);
    free(e->fields);
    dm_avro_codec_free(e->codec);
    dm_buf_free(&e->key);
    dm_buf_free(&e->val);
    free(e);
}

static bool nullable(const dm_avro_node_t *n)
{
    if (n->type == DM_AVRO_NULL) return true;
    if (n->type != DM_AVRO_UNION) return false;
    for (uint32_t i = 0; i < n->n_branches; i++)
        if (n->branches[i]->type == DM_AVRO_NULL) return true;
    return false;
}

typedef struct enrich_conf {
    char *with, *on;
    dm_strlist_t fields;
} enrich_conf_t;

static const dm_config_field_t enrich_fields[] = {
    {.name = "with",
     .type = DM_CFG_NAME,
     .offset = offsetof(enrich_conf_t, with),
     .flags = DM_CFG_REQUIRED,
     .help = "the keyed source to look up in (a table kept up to date from it)"},
    {.name = "on",
     .type = DM_CFG_EXPR,
     .offset = offsetof(enrich_conf_t, on),
     .flags = DM_CFG_REQUIRED,
     .help = "the stream field (or expression) matched against the table's key"},
    {.name = "fields",
     .type = DM_CFG_FIELD_LIST,
     .offset = offsetof(enrich_conf_t, fields),
     .min = 1,
     .help = "the table's fields to add (\"title\", \"year AS released\"); default: every field "
             "but the key"},
};
DM_CONFIG_TABLE(enrich_table, "enrich step", enrich_fields);

static dm_err_t enrich_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                            dm_avro_schema_t **output, dm_error_t *err)
{
    const enrich_conf_t *c = config;
    const char *with = c->with;
    if (!p->env || !p->env->table)
        return dm_error_set(err, DM_ERR_UNSUPPORTED, "enrich: no tables are available here");
    enrich_t *e = calloc(1, sizeof(*e));
    if (!e) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    json_t *seen = json_object(), *out_fields = json_array();
    dm_err_t rc = DM_OK;
    e->table = p->env->table(p->env->ctx, with, err);
    if (!e->table) {
        rc = err ? err->code : DM_ERR_NOT_FOUND;
        goto out;
    }
    const dm_avro_node_t *tr = dm_table_schema(e->table)->root;
    if ((rc = dm_expr_compile(c->on, input, &e->on, err))) goto out;
    e->n_in = input->n_fields;
    for (uint32_t i = 0; i < input->n_fields; i++) {
        json_t *jf = json_pack("{s:s, s:o}", "name", input->fields[i].name, "type",
                               dm_schema_type_json(input->fields[i].type, seen));
        if (input->fields[i].has_default && nullable(input->fields[i].type))
            json_object_set_new(jf, "default", json_null());
        json_array_append_new(out_fields, jf);
    }
    /* Fields to add: all non-key fields of the table unless listed. */
    size_t n_wanted = c->fields.n ? c->fields.n : tr->n_fields;
    const char **wanted = calloc(n_wanted + 1, sizeof(char *));
    e->fields = calloc(n_wanted + 1, sizeof(*e->fields));
    const char **paths = calloc(n_wanted + 1, sizeof(char *));
    if (!wanted || !e->fields || !paths) {
        free(wanted);
        free(paths);
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        goto out;
    }
    n_wanted = 0;
    for (size_t i = 0; i < c->fields.n; i++)
        wanted[n_wanted++] = c->fields.items[i];
    for (uint32_t i = 0; !c->fields.n && i < tr->n_fields; i++)
        if (strcmp(tr->fields[i].name, dm_table_key_field(e->table)) != 0)
            wanted[n_wanted++] = tr->fields[i].name;
    for (size_t i = 0; i < n_wanted; i++) {
        char text[256], *alias = NULL;
        snprintf(text, sizeof(text), "%s", wanted[i]);
        char *as = strcasestr(text, " as ");
        if (as) {
            *as = '\0';
            alias = as + 4;
            while (isspace((unsigned char)*alias))
                alias++;
        }
        int idx = dm_avro_field_index(tr, text);
        if (idx < 0) {
            rc = dm_error_set(err, DM_ERR_INVALID, "enrich: source %s has no field '%s'", with,
                              text);
            break;
        }
        const char *name = alias ? alias : text;
        if (dm_avro_field_index(input, name) >= 0) {
            rc = dm_error_set(err, DM_ERR_INVALID,
                              "enrich: the stream already has a field '%s'; add it as another "
                              "name (\"%s AS %s_%s\")",
                              name, text, with, text);
            break;
        }
        added_t *a = &e->fields[e->n_fields++];
        a->name = strdup(name);
        a->table_index = idx;
        a->wrap = !nullable(tr->fields[idx].type);
        paths[i] = tr->fields[idx].name;
        json_t *type = dm_schema_type_json(tr->fields[idx].type, seen);
        if (a->wrap) type = json_pack("[s, o]", "null", type);
        json_array_append_new(out_fields,
                              json_pack("{s:s, s:o, s:n}", "name", name, "type", type, "default"));
    }
    if (!rc)
        rc = dm_avro_codec_new(dm_table_schema(e->table), NULL, paths, e->n_fields, &e->codec, err);
    free(paths);
    free(wanted);
    if (!rc) {
        const char *space = input->space && *input->space ? input->space : "";
        char ns[512];
        snprintf(ns, sizeof(ns), "%s%senriched", space, *space ? "." : "");
        json_t *doc = json_pack("{s:s, s:s, s:s, s:O}", "type", "record", "name", input->name,
                                "namespace", ns, "fields", out_fields);
        rc = dm_schema_from_json(doc, "enrich", output, err);
        json_decref(doc);
    }
out:
    json_decref(seen);
    json_decref(out_fields);
    if (rc) {
        enrich_free(e);
        return rc;
    }
    p->state = e;
    return DM_OK;
}

static dm_err_t key_text(const dm_expr_value_t *v, dm_buf_t *out)
{
    dm_buf_reset(out);
    switch (v->type) {
    case DM_EXPR_LONG:
    case DM_EXPR_TIMESTAMP: return dm_buf_printf(out, "%lld", (long long)v->u.l);
    case DM_EXPR_STRING: return dm_buf_append(out, v->u.s, v->len);
    case DM_EXPR_BOOL: return dm_buf_append_str(out, v->u.b ? "true" : "false");
    case DM_EXPR_DOUBLE: return dm_buf_printf(out, "%.17g", v->u.d);
    case DM_EXPR_NULL: break;
    }
    return DM_OK;
}

static dm_err_t enrich_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                               dm_dead_letters_t *dead, dm_error_t *err)
{
    enrich_t *e = p->state;
    uint32_t n_out = e->n_in + (uint32_t)e->n_fields;
    for (uint32_t i = 0; i < in->n; i++) {
        const dm_row_t *src = &in->records[i];
        dm_avro_value_t *vals = dm_arena_alloc(&out->arena, n_out * sizeof(*vals));
        if (!vals) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        memcpy(vals, src->value.u.v, e->n_in * sizeof(*vals));
        for (size_t f = 0; f < e->n_fields; f++)
            vals[e->n_in + f] = (dm_avro_value_t){.type = DM_AVRO_NULL};
        dm_expr_value_t k;
        dm_error_t rec_err;
        if (dm_expr_eval(e->on, &src->value, &out->arena, &k, &rec_err)) {
            if (dm_dead_letters_add(dead, i, rec_err.message))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            continue;
        }
        bool found = false;
        if (!k.null) {
            if (key_text(&k, &e->key) ||
                dm_table_get(e->table, (const char *)e->key.data, e->key.len, &e->val, &found))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        }
        if (found) {
            /* The bytes must outlive the batch: copy them into its arena. */
            uint8_t *copy = dm_arena_memdup(&out->arena, e->val.data, e->val.len);
            dm_avro_value_t row;
            if (!copy ||
                dm_avro_decode(e->codec, copy, e->val.len, NULL, &out->arena, &row, &rec_err)) {
                if (dm_dead_letters_add(dead, i, copy ? rec_err.message : "out of memory"))
                    return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                continue;
            }
            for (size_t f = 0; f < e->n_fields; f++) {
                dm_avro_value_t v = row.u.v[e->fields[f].table_index];
                if (e->fields[f].wrap) v.branch = 1;
                vals[e->n_in + f] = v;
            }
        }
        dm_row_t *r = dm_rows_push(out);
        if (!r) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        *r = *src;
        r->value = (dm_avro_value_t){.type = DM_AVRO_RECORD, .len = n_out, .u.v = vals};
    }
    return DM_OK;
}

/* The stream's fields pass through; each added field is the table's field
 * unchanged; which row is found depends on `on` and the table's key. */
static dm_err_t enrich_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const enrich_t *e = p->state;
    const char *source = dm_table_name(e->table);
    const dm_avro_node_t *tr = dm_table_schema(e->table)->root;
    dm_err_t rc = DM_OK;
    for (uint32_t i = 0; i < e->n_in && !rc; i++)
        rc = dm_field_deps_add(deps, p->input->fields[i].name, p->input->fields[i].name,
                               DM_DEP_MAIN, NULL, DM_DEP_IDENTITY);
    for (size_t f = 0; f < e->n_fields && !rc; f++)
        rc = dm_field_deps_add(deps, e->fields[f].name, tr->fields[e->fields[f].table_index].name,
                               DM_DEP_TABLE, source, DM_DEP_IDENTITY);
    if (!rc) rc = dm_field_deps_add_expr(deps, NULL, e->on, DM_DEP_MAIN, NULL, DM_DEP_JOIN);
    if (!rc)
        rc = dm_field_deps_add(deps, NULL, dm_table_key_field(e->table), DM_DEP_TABLE, source,
                               DM_DEP_JOIN);
    return rc;
}

static void enrich_close(dm_proc_t *p)
{
    if (p->state) enrich_free(p->state);
}

const dm_proc_ops_t dm_proc_enrich = {
    .name = "enrich",
    .summary = "adds fields of the latest row of a keyed source (stream–table lookup)",
    .config = &enrich_table,
    .config_size = sizeof(enrich_conf_t),
    .open = enrich_open,
    .read_paths = NULL, /* every input field flows out: the whole record is read */
    .process = enrich_process,
    .close = enrich_close,
    .field_deps = enrich_field_deps,
};
