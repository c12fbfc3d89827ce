/* schema/parse.c — Avro 1.11 schema parsing (dm_avro_schema_*).
 *
 * The JSON document is walked once with jansson; every node goes into the
 * schema's arena. Named types are entered into a table before their bodies are
 * parsed, so recursive references resolve to the node being built; a name used
 * before its definition gets a placeholder node that the definition fills in
 * place (forward references), and names still undefined at the end are errors.
 * Defaults are checked last, once every name is known, by converting them to
 * values of their field's type and keeping them as Avro binary.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema/internal.h"

typedef struct pending_default {
    dm_avro_field_t *field;
    json_t *json;
    char *path;
} pending_default_t;

typedef struct pctx {
    dm_avro_schema_t *s;
    dm_error_t *err;
    char path[1024];
    size_t plen;
    pending_default_t *defs;
    size_t n_defs, cap_defs;
    size_t cap_named;
    const char **first_use; /* per named type: JSON path of its first use */
} pctx_t;

static const char *const type_names[] = {
    [DM_AVRO_NULL] = "null",   [DM_AVRO_BOOLEAN] = "boolean", [DM_AVRO_INT] = "int",
    [DM_AVRO_LONG] = "long",   [DM_AVRO_FLOAT] = "float",     [DM_AVRO_DOUBLE] = "double",
    [DM_AVRO_BYTES] = "bytes", [DM_AVRO_STRING] = "string",   [DM_AVRO_RECORD] = "record",
    [DM_AVRO_ENUM] = "enum",   [DM_AVRO_ARRAY] = "array",     [DM_AVRO_MAP] = "map",
    [DM_AVRO_UNION] = "union", [DM_AVRO_FIXED] = "fixed",
};

const char *dm_avro_type_name(dm_avro_type_t t)
{
    if ((unsigned)t < sizeof(type_names) / sizeof(type_names[0]) && type_names[t])
        return type_names[t];
    return t == DM_AVRO_ABSENT ? "absent" : t == DM_AVRO_ENCODED ? "encoded" : "?";
}

/* ---- path and errors ------------------------------------------------------------ */

static size_t path_push(pctx_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t path_push(pctx_t *p, const char *fmt, ...)
{
    size_t old = p->plen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->path + p->plen, sizeof(p->path) - p->plen, fmt, ap);
    va_end(ap);
    if (n > 0) p->plen += (size_t)n;
    if (p->plen >= sizeof(p->path)) p->plen = sizeof(p->path) - 1;
    return old;
}

static void path_pop(pctx_t *p, size_t old)
{
    p->plen = old;
    p->path[old] = '\0';
}

static dm_err_t perr(pctx_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dm_err_t perr(pctx_t *p, const char *fmt, ...)
{
    char msg[DM_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return dm_error_set(p->err, DM_ERR_SCHEMA_PARSE, "%s: %s", p->path, msg);
}

/* ---- names ------------------------------------------------------------------------ */

static bool valid_name(const char *s)
{
    if (!s || !(isalpha((unsigned char)*s) || *s == '_')) return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_')) return false;
    return true;
}

static bool valid_fullname(const char *s)
{
    char part[256];
    const char *start = s;
    for (;;) {
        const char *dot = strchr(start, '.');
        size_t n = dot ? (size_t)(dot - start) : strlen(start);
        if (n == 0 || n >= sizeof(part)) return false;
        memcpy(part, start, n);
        part[n] = '\0';
        if (!valid_name(part)) return false;
        if (!dot) return true;
        start = dot + 1;
    }
}

static int primitive_type(const char *s)
{
    for (int t = DM_AVRO_NULL; t <= DM_AVRO_STRING; t++)
        if (strcmp(s, type_names[t]) == 0) return t;
    return -1;
}

static char *make_fullname(pctx_t *p, const char *name, const char *space)
{
    if (strchr(name, '.') || !space || !*space) return dm_arena_strdup(&p->s->arena, name);
    return dm_arena_printf(&p->s->arena, "%s.%s", space, name);
}

static dm_avro_node_t *find_named(dm_avro_schema_t *s, const char *fullname)
{
    for (uint32_t i = 0; i < s->n_named; i++)
        if (strcmp(s->named[i]->fullname, fullname) == 0) return s->named[i];
    return NULL;
}

static dm_avro_node_t *add_named(pctx_t *p, const char *fullname)
{
    dm_avro_schema_t *s = p->s;
    if (s->n_named == p->cap_named) {
        size_t cap = p->cap_named ? p->cap_named * 2 : 16;
        dm_avro_node_t **n = realloc(s->named, cap * sizeof(*n));
        if (!n) return NULL;
        s->named = n;
        const char **u = realloc(p->first_use, cap * sizeof(*u));
        if (!u) return NULL;
        p->first_use = u;
        p->cap_named = cap;
    }
    dm_avro_node_t *node = dm_arena_calloc(&s->arena, 1, sizeof(*node));
    if (!node) return NULL;
    node->fullname = fullname;
    const char *dot = strrchr(fullname, '.');
    node->name = dot ? dot + 1 : fullname;
    node->space = dot ? dm_arena_strndup(&s->arena, fullname, (size_t)(dot - fullname)) : "";
    node->enum_default = -1;
    p->first_use[s->n_named] = dm_arena_strdup(&s->arena, p->path);
    s->named[s->n_named++] = node;
    return node;
}

/* Resolves a type name used as a reference; unknown names become placeholders
 * that a later definition fills in. */
static dm_err_t resolve_ref(pctx_t *p, const char *name, const char *space, dm_avro_node_t **out)
{
    if (!valid_fullname(name)) return perr(p, "'%s' is not a valid type name", name);
    char *full = make_fullname(p, name, space);
    if (!full) return DM_ERR_NOMEM;
    dm_avro_node_t *n = find_named(p->s, full);
    if (!n && strcmp(full, name) != 0) n = find_named(p->s, name);
    if (!n) n = add_named(p, full);
    if (!n) return dm_error_set(p->err, DM_ERR_NOMEM, "out of memory");
    *out = n;
    return DM_OK;
}

/* ---- attribute helpers ------------------------------------------------------------ */

static dm_err_t get_string(pctx_t *p, json_t *obj, const char *key, bool required, const char **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) return perr(p, "missing required attribute \"%s\"", key);
        return DM_OK;
    }
    if (!json_is_string(v)) return perr(p, "attribute \"%s\" must be a string", key);
    *out = dm_arena_strdup(&p->s->arena, json_string_value(v));
    return *out ? DM_OK : DM_ERR_NOMEM;
}

static dm_err_t get_aliases(pctx_t *p, json_t *obj, const char *space, bool named,
                            const char ***out, uint32_t *n_out)
{
    json_t *a = json_object_get(obj, "aliases");
    *out = NULL;
    *n_out = 0;
    if (!a) return DM_OK;
    if (!json_is_array(a)) return perr(p, "\"aliases\" must be an array of names");
    size_t n = json_array_size(a);
    const char **list = dm_arena_calloc(&p->s->arena, n ? n : 1, sizeof(*list));
    if (!list) return DM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        const char *s = json_string_value(e);
        if (!s || !(named ? valid_fullname(s) : valid_name(s)))
            return perr(p, "aliases[%zu] is not a valid name", i);
        list[i] = named ? make_fullname(p, s, space) : dm_arena_strdup(&p->s->arena, s);
    }
    *out = list;
    *n_out = (uint32_t)n;
    return DM_OK;
}

/* ---- logical types ---------------------------------------------------------------- */

static void apply_logical(pctx_t *p, json_t *obj, dm_avro_node_t *n)
{
    const char *lt = json_string_value(json_object_get(obj, "logicalType"));
    if (!lt) return;
    /* Per the spec, an unknown or invalid logical type is ignored and the
     * underlying type used. */
    dm_avro_type_t t = n->type;
    if (strcmp(lt, "decimal") == 0 && (t == DM_AVRO_BYTES || t == DM_AVRO_FIXED)) {
        json_t *pj = json_object_get(obj, "precision"), *sj = json_object_get(obj, "scale");
        if (!json_is_integer(pj)) return;
        json_int_t prec = json_integer_value(pj), scale = 0;
        if (sj) {
            if (!json_is_integer(sj)) return;
            scale = json_integer_value(sj);
        }
        if (prec <= 0 || scale < 0 || scale > prec) return;
        if (t == DM_AVRO_FIXED) {
            double maxp = floor(log10(2) * (8.0 * n->size - 1));
            if ((double)prec > maxp) return;
        }
        n->logical = DM_AVRO_LT_DECIMAL;
        n->precision = (int)prec;
        n->scale = (int)scale;
    } else if (strcmp(lt, "uuid") == 0 && t == DM_AVRO_STRING) {
        n->logical = DM_AVRO_LT_UUID;
    } else if (strcmp(lt, "date") == 0 && t == DM_AVRO_INT) {
        n->logical = DM_AVRO_LT_DATE;
    } else if (strcmp(lt, "time-millis") == 0 && t == DM_AVRO_INT) {
        n->logical = DM_AVRO_LT_TIME_MILLIS;
    } else if (strcmp(lt, "time-micros") == 0 && t == DM_AVRO_LONG) {
        n->logical = DM_AVRO_LT_TIME_MICROS;
    } else if (strcmp(lt, "timestamp-millis") == 0 && t == DM_AVRO_LONG) {
        n->logical = DM_AVRO_LT_TIMESTAMP_MILLIS;
    } else if (strcmp(lt, "timestamp-micros") == 0 && t == DM_AVRO_LONG) {
        n->logical = DM_AVRO_LT_TIMESTAMP_MICROS;
    } else if (strcmp(lt, "local-timestamp-millis") == 0 && t == DM_AVRO_LONG) {
        n->logical = DM_AVRO_LT_LOCAL_TIMESTAMP_MILLIS;
    } else if (strcmp(lt, "local-timestamp-micros") == 0 && t == DM_AVRO_LONG) {
        n->logical = DM_AVRO_LT_LOCAL_TIMESTAMP_MICROS;
    } else if (strcmp(lt, "duration") == 0 && t == DM_AVRO_FIXED && n->size == 12) {
        n->logical = DM_AVRO_LT_DURATION;
    }
}

/* ---- types -------------------------------------------------------------------------- */

static dm_err_t parse_type(pctx_t *p, json_t *j, const char *space, dm_avro_node_t **out);

static dm_avro_node_t *new_node(pctx_t *p, dm_avro_type_t t)
{
    dm_avro_node_t *n = dm_arena_calloc(&p->s->arena, 1, sizeof(*n));
    if (n) {
        n->type = t;
        n->enum_default = -1;
        n->defined = true;
    }
    return n;
}

/* Enters a named type's definition: checks the name and returns the node to fill. */
static dm_err_t define_named(pctx_t *p, json_t *obj, const char *space, dm_avro_type_t t,
                             dm_avro_node_t **out, const char **new_space)
{
    const char *name, *ns;
    dm_err_t rc = get_string(p, obj, "name", true, &name);
    if (rc) return rc;
    json_t *nsj = json_object_get(obj, "namespace");
    if (nsj && !json_is_null(nsj) && !json_is_string(nsj))
        return perr(p, "attribute \"namespace\" must be a string");
    ns = nsj && json_is_string(nsj) ? json_string_value(nsj) : space;
    /* The path names the attribute at fault ($.name), so a spec can point at it. */
    if (!valid_fullname(name)) {
        path_push(p, ".name");
        return perr(p, "\"%s\" is not a valid name", name);
    }
    if (ns && *ns && !strchr(name, '.') && !valid_fullname(ns)) {
        path_push(p, nsj && json_is_string(nsj) ? ".namespace" : ".name");
        return perr(p, "\"%s\" is not a valid namespace", ns);
    }
    if (!strchr(name, '.') && primitive_type(name) >= 0)
        return perr(p, "\"%s\" is a primitive type and cannot be redefined", name);
    char *full = make_fullname(p, name, ns);
    if (!full) return DM_ERR_NOMEM;
    dm_avro_node_t *n = find_named(p->s, full);
    if (n && n->defined) return perr(p, "type \"%s\" is defined twice", full);
    if (!n) n = add_named(p, full);
    if (!n) return dm_error_set(p->err, DM_ERR_NOMEM, "out of memory");
    n->type = t;
    n->defined = true;
    const char *doc;
    if ((rc = get_string(p, obj, "doc", false, &doc))) return rc;
    n->doc = doc;
    if ((rc = get_aliases(p, obj, n->space, true, &n->aliases, &n->n_aliases))) return rc;
    *new_space = n->space;
    *out = n;
    return DM_OK;
}

static dm_err_t parse_record(pctx_t *p, json_t *obj, const char *space, dm_avro_node_t **out)
{
    dm_avro_node_t *n;
    const char *ns;
    dm_err_t rc = define_named(p, obj, space, DM_AVRO_RECORD, &n, &ns);
    if (rc) return rc;
    json_t *fields = json_object_get(obj, "fields");
    if (!json_is_array(fields)) return perr(p, "a record needs a \"fields\" array");
    size_t nf = json_array_size(fields);
    n->fields = dm_arena_calloc(&p->s->arena, nf ? nf : 1, sizeof(*n->fields));
    if (!n->fields) return DM_ERR_NOMEM;
    *out = n;
    for (size_t i = 0; i < nf; i++) {
        json_t *fj = json_array_get(fields, i);
        size_t mark = path_push(p, ".fields[%zu]", i);
        dm_avro_field_t *f = &n->fields[i];
        if (!json_is_object(fj)) return perr(p, "a field must be a JSON object");
        if ((rc = get_string(p, fj, "name", true, &f->name))) return rc;
        if (!valid_name(f->name)) {
            path_push(p, ".name");
            return perr(p, "\"%s\" is not a valid field name", f->name);
        }
        for (size_t k = 0; k < i; k++)
            if (strcmp(n->fields[k].name, f->name) == 0) {
                path_push(p, ".name");
                return perr(p,
                            "field \"%s\" appears twice in record %s (first as "
                            "fields[%zu])",
                            f->name, n->fullname, k);
            }
        if ((rc = get_string(p, fj, "doc", false, &f->doc))) return rc;
        if ((rc = get_aliases(p, fj, NULL, false, &f->aliases, &f->n_aliases))) return rc;
        const char *order;
        if ((rc = get_string(p, fj, "order", false, &order))) return rc;
        if (!order || strcmp(order, "ascending") == 0)
            f->order = DM_AVRO_ORDER_ASC;
        else if (strcmp(order, "descending") == 0)
            f->order = DM_AVRO_ORDER_DESC;
        else if (strcmp(order, "ignore") == 0)
            f->order = DM_AVRO_ORDER_IGNORE;
        else
            return perr(p, "\"order\" must be ascending, descending or ignore");
        json_t *tj = json_object_get(fj, "type");
        if (!tj) return perr(p, "field \"%s\" has no \"type\"", f->name);
        size_t tmark = path_push(p, ".type");
        if ((rc = parse_type(p, tj, ns, &f->type))) return rc;
        path_pop(p, tmark);
        json_t *dj = json_object_get(fj, "default");
        if (dj) {
            if (p->n_defs == p->cap_defs) {
                size_t cap = p->cap_defs ? p->cap_defs * 2 : 16;
                pending_default_t *d = realloc(p->defs, cap * sizeof(*d));
                if (!d) return DM_ERR_NOMEM;
                p->defs = d;
                p->cap_defs = cap;
            }
            pending_default_t *d = &p->defs[p->n_defs++];
            d->field = f;
            d->json = dj;
            d->path = dm_arena_printf(&p->s->arena, "%s.default", p->path);
            f->has_default = true;
        }
        n->n_fields = (uint32_t)(i + 1);
        path_pop(p, mark);
    }
    return DM_OK;
}

static dm_err_t parse_enum(pctx_t *p, json_t *obj, const char *space, dm_avro_node_t **out)
{
    dm_avro_node_t *n;
    const char *ns;
    dm_err_t rc = define_named(p, obj, space, DM_AVRO_ENUM, &n, &ns);
    if (rc) return rc;
    json_t *syms = json_object_get(obj, "symbols");
    if (!json_is_array(syms)) return perr(p, "an enum needs a \"symbols\" array");
    size_t ns_ = json_array_size(syms);
    n->symbols = dm_arena_calloc(&p->s->arena, ns_ ? ns_ : 1, sizeof(*n->symbols));
    if (!n->symbols) return DM_ERR_NOMEM;
    for (size_t i = 0; i < ns_; i++) {
        const char *s = json_string_value(json_array_get(syms, i));
        if (!s || !valid_name(s)) return perr(p, "symbols[%zu] is not a valid symbol", i);
        for (size_t k = 0; k < i; k++)
            if (strcmp(n->symbols[k], s) == 0) return perr(p, "symbol \"%s\" appears twice", s);
        n->symbols[i] = dm_arena_strdup(&p->s->arena, s);
    }
    n->n_symbols = (uint32_t)ns_;
    json_t *dj = json_object_get(obj, "default");
    if (dj) {
        const char *d = json_string_value(dj);
        n->enum_default = -1;
        for (uint32_t i = 0; d && i < n->n_symbols; i++)
            if (strcmp(n->symbols[i], d) == 0) n->enum_default = (int32_t)i;
        if (n->enum_default < 0) return perr(p, "enum default must be one of the symbols");
    }
    *out = n;
    return DM_OK;
}

static dm_err_t parse_fixed(pctx_t *p, json_t *obj, const char *space, dm_avro_node_t **out)
{
    dm_avro_node_t *n;
    const char *ns;
    dm_err_t rc = define_named(p, obj, space, DM_AVRO_FIXED, &n, &ns);
    if (rc) return rc;
    json_t *sj = json_object_get(obj, "size");
    if (!json_is_integer(sj) || json_integer_value(sj) < 0 || json_integer_value(sj) > INT32_MAX)
        return perr(p, "a fixed needs a non-negative integer \"size\"");
    n->size = (uint32_t)json_integer_value(sj);
    apply_logical(p, obj, n);
    *out = n;
    return DM_OK;
}

static bool same_union_kind(const dm_avro_node_t *a, const dm_avro_node_t *b)
{
    if (a->type != b->type) return false;
    if (a->type == DM_AVRO_RECORD || a->type == DM_AVRO_ENUM || a->type == DM_AVRO_FIXED)
        return strcmp(a->fullname, b->fullname) == 0;
    return true;
}

static dm_err_t parse_union(pctx_t *p, json_t *arr, const char *space, dm_avro_node_t **out)
{
    dm_avro_node_t *n = new_node(p, DM_AVRO_UNION);
    if (!n) return DM_ERR_NOMEM;
    size_t nb = json_array_size(arr);
    if (nb > UINT16_MAX) return perr(p, "a union has too many branches");
    n->branches = dm_arena_calloc(&p->s->arena, nb ? nb : 1, sizeof(*n->branches));
    if (!n->branches) return DM_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++) {
        size_t mark = path_push(p, "[%zu]", i);
        dm_err_t rc = parse_type(p, json_array_get(arr, i), space, &n->branches[i]);
        if (rc) return rc;
        if (n->branches[i]->type == DM_AVRO_UNION)
            return perr(p, "a union may not directly contain another union");
        path_pop(p, mark);
        n->n_branches = (uint32_t)(i + 1);
    }
    *out = n;
    return DM_OK;
}

static dm_err_t parse_object(pctx_t *p, json_t *obj, const char *space, dm_avro_node_t **out)
{
    json_t *tj = json_object_get(obj, "type");
    if (!tj) return perr(p, "a schema object needs a \"type\"");
    if (!json_is_string(tj)) {
        return perr(p, "\"type\" must be a type name (got a %s)",
                    json_is_object(tj) ? "JSON object" : "non-string");
    }
    const char *t = json_string_value(tj);
    int prim = primitive_type(t);
    if (prim >= 0) {
        dm_avro_node_t *n = new_node(p, (dm_avro_type_t)prim);
        if (!n) return DM_ERR_NOMEM;
        apply_logical(p, obj, n);
        *out = n;
        return DM_OK;
    }
    if (strcmp(t, "record") == 0 || strcmp(t, "error") == 0)
        return parse_record(p, obj, space, out);
    if (strcmp(t, "enum") == 0) return parse_enum(p, obj, space, out);
    if (strcmp(t, "fixed") == 0) return parse_fixed(p, obj, space, out);
    if (strcmp(t, "array") == 0 || strcmp(t, "map") == 0) {
        bool arr = t[0] == 'a';
        dm_avro_node_t *n = new_node(p, arr ? DM_AVRO_ARRAY : DM_AVRO_MAP);
        if (!n) return DM_ERR_NOMEM;
        const char *key = arr ? "items" : "values";
        json_t *ij = json_object_get(obj, key);
        if (!ij) return perr(p, "%s needs \"%s\"", t, key);
        size_t mark = path_push(p, ".%s", key);
        dm_err_t rc = parse_type(p, ij, space, &n->items);
        if (rc) return rc;
        path_pop(p, mark);
        *out = n;
        return DM_OK;
    }
    return resolve_ref(p, t, space, out);
}

static dm_err_t parse_type(pctx_t *p, json_t *j, const char *space, dm_avro_node_t **out)
{
    if (json_is_string(j)) {
        const char *t = json_string_value(j);
        int prim = primitive_type(t);
        if (prim >= 0) {
            *out = new_node(p, (dm_avro_type_t)prim);
            return *out ? DM_OK : DM_ERR_NOMEM;
        }
        return resolve_ref(p, t, space, out);
    }
    if (json_is_object(j)) return parse_object(p, j, space, out);
    if (json_is_array(j)) return parse_union(p, j, space, out);
    return perr(p, "a schema must be a type name, a JSON object or an array (union)");
}

/* ---- whole document ---------------------------------------------------------------- */

static dm_err_t union_dups(pctx_t *p, const dm_avro_node_t *n)
{
    for (uint32_t i = 0; i < n->n_branches; i++)
        for (uint32_t k = 0; k < i; k++)
            if (same_union_kind(n->branches[i], n->branches[k]))
                return perr(p, "union has two branches of type %s",
                            n->branches[i]->fullname ? n->branches[i]->fullname
                                                     : dm_avro_type_name(n->branches[i]->type));
    return DM_OK;
}

/* Walks the tree (named types once each) to check unions for duplicates. */
static dm_err_t walk_unions(pctx_t *p, dm_avro_node_t *n, dm_avro_node_t **visited, size_t *nv,
                            size_t cap)
{
    if (n->fullname) {
        for (size_t i = 0; i < *nv; i++)
            if (visited[i] == n) return DM_OK;
        if (*nv < cap) visited[(*nv)++] = n;
    }
    dm_err_t rc;
    switch (n->type) {
    case DM_AVRO_RECORD:
        for (uint32_t i = 0; i < n->n_fields; i++) {
            size_t mark = path_push(p, ".%s", n->fields[i].name);
            if ((rc = walk_unions(p, n->fields[i].type, visited, nv, cap))) return rc;
            path_pop(p, mark);
        }
        break;
    case DM_AVRO_ARRAY:
    case DM_AVRO_MAP: return walk_unions(p, n->items, visited, nv, cap);
    case DM_AVRO_UNION:
        if ((rc = union_dups(p, n))) return rc;
        for (uint32_t i = 0; i < n->n_branches; i++)
            if ((rc = walk_unions(p, n->branches[i], visited, nv, cap))) return rc;
        break;
    default: break;
    }
    return DM_OK;
}

/* Union duplicates can only be judged once every placeholder is defined. */
static dm_err_t check_unions_all(pctx_t *p, dm_avro_node_t *n)
{
    size_t cap = p->s->n_named + 1, nv = 0;
    dm_avro_node_t **visited = calloc(cap, sizeof(*visited));
    if (!visited) return DM_ERR_NOMEM;
    path_pop(p, 0);
    path_push(p, "$");
    dm_err_t rc = walk_unions(p, n, visited, &nv, cap);
    free(visited);
    return rc;
}

static dm_err_t check_defaults(pctx_t *p)
{
    dm_arena_t scratch;
    dm_arena_init(&scratch, 4096);
    dm_buf_t bin = DM_BUF_INIT;
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < p->n_defs && !rc; i++) {
        pending_default_t *d = &p->defs[i];
        dm_avro_value_t v;
        dm_buf_reset(&bin);
        rc = dm_avro_from_json_value(d->field->type, d->json, DM_AVRO_JSON_DEFAULT, &scratch, &v,
                                     d->path, p->err);
        if (rc) {
            if (p->err) {
                char msg[DM_ERROR_MSG_MAX];
                snprintf(msg, sizeof(msg), "%s", p->err->message);
                dm_error_set(p->err, DM_ERR_SCHEMA_PARSE,
                             "invalid default for field \"%s\" (%s): %s", d->field->name, d->path,
                             msg);
            }
            rc = DM_ERR_SCHEMA_PARSE;
            break;
        }
        rc = dm_avro_encode(d->field->type, &v, &bin, p->err);
        if (rc) break;
        d->field->default_bin =
            dm_arena_memdup(&p->s->arena, bin.data ? bin.data : (uint8_t *)"", bin.len);
        d->field->default_len = bin.len;
        dm_arena_reset(&scratch);
    }
    dm_buf_free(&bin);
    dm_arena_destroy(&scratch);
    return rc;
}

dm_err_t dm_avro_schema_parse(const char *json, size_t len, dm_avro_schema_t **out, dm_error_t *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dm_error_set(err, DM_ERR_SCHEMA_PARSE, "schema JSON line %d column %d: %s",
                            jerr.line, jerr.column, jerr.text);
    dm_avro_schema_t *s = calloc(1, sizeof(*s));
    if (!s) {
        json_decref(root);
        return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    /* The tree is a few times the text: a small first chunk (growing
     * geometrically) keeps the thousands of small schemas a controller
     * holds from costing 8 KiB each. */
    dm_arena_init(&s->arena, len < 3000 ? len * 2 + 1024 : 8192);
    pctx_t p = {.s = s, .err = err};
    path_push(&p, "$");
    char *text = dm_arena_strndup(&s->arena, json, len);
    dm_err_t rc = text ? DM_OK : DM_ERR_NOMEM;
    s->json = text;
    s->json_len = len;
    if (!rc) rc = parse_type(&p, root, "", &s->root);
    for (uint32_t i = 0; !rc && i < s->n_named; i++) {
        if (!s->named[i]->defined) {
            path_pop(&p, 0);
            path_push(&p, "%s", p.first_use[i] ? p.first_use[i] : "$");
            rc = perr(&p, "type \"%s\" is used but never defined", s->named[i]->fullname);
        }
    }
    if (!rc) rc = check_unions_all(&p, s->root);
    if (!rc) rc = check_defaults(&p);
    free(p.defs);
    free(p.first_use);
    json_decref(root);
    if (rc) {
        if (rc == DM_ERR_NOMEM) dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        dm_avro_schema_free(s);
        return rc;
    }
    *out = s;
    return DM_OK;
}

dm_err_t dm_avro_schema_parse_file(const char *path, dm_avro_schema_t **out, dm_error_t *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dm_error_set(err, DM_ERR_IO, "%s: %s", path, strerror(errno));
    dm_buf_t b = DM_BUF_INIT;
    char chunk[8192];
    size_t n;
    dm_err_t rc = DM_OK;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        rc = dm_buf_append(&b, chunk, n);
    if (ferror(f)) rc = dm_error_set(err, DM_ERR_IO, "%s: read error", path);
    fclose(f);
    if (!rc) {
        rc = dm_avro_schema_parse(b.data ? (const char *)b.data : "", b.len, out, err);
        if (rc) dm_error_prefix(err, "%s", path);
    }
    dm_buf_free(&b);
    return rc;
}

void dm_avro_schema_free(dm_avro_schema_t *s)
{
    if (!s) return;
    free(s->named);
    dm_arena_destroy(&s->arena);
    free(s);
}

int dm_avro_field_index(const dm_avro_node_t *record, const char *name)
{
    if (!record || record->type != DM_AVRO_RECORD) return -1;
    for (uint32_t i = 0; i < record->n_fields; i++)
        if (strcmp(record->fields[i].name, name) == 0) return (int)i;
    for (uint32_t i = 0; i < record->n_fields; i++)
        for (uint32_t k = 0; k < record->fields[i].n_aliases; k++)
            if (strcmp(record->fields[i].aliases[k], name) == 0) return (int)i;
    return -1;
}

bool dm_avro_promotable(dm_avro_type_t w, dm_avro_type_t r)
{
    if (w == r) return true;
    switch (w) {
    case DM_AVRO_INT: return r == DM_AVRO_LONG || r == DM_AVRO_FLOAT || r == DM_AVRO_DOUBLE;
    case DM_AVRO_LONG: return r == DM_AVRO_FLOAT || r == DM_AVRO_DOUBLE;
    case DM_AVRO_FLOAT: return r == DM_AVRO_DOUBLE;
    case DM_AVRO_STRING: return r == DM_AVRO_BYTES;
    case DM_AVRO_BYTES: return r == DM_AVRO_STRING;
    default: return false;
    }
}

bool dm_avro_names_match(const dm_avro_node_t *w, const dm_avro_node_t *r)
{
    if (strcmp(w->fullname, r->fullname) == 0 || strcmp(w->name, r->name) == 0) return true;
    for (uint32_t i = 0; i < r->n_aliases; i++)
        if (strcmp(r->aliases[i], w->fullname) == 0) return true;
    return false;
}
