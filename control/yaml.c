/* control/yaml.c — YAML/JSON documents to jansson with source positions. */
#include "control/yaml.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 1000000 /* per document, aliases expanded: stops "billion laughs" */

typedef struct conv {
    yaml_document_t *ydoc;
    dm_spec_doc_t *doc;
    size_t nodes;
    dm_error_t *err;
} conv_t;

static dm_err_t add_pos(dm_spec_doc_t *d, const char *path, const yaml_mark_t *m)
{
    if (d->n_pos == d->cap_pos) {
        size_t cap = d->cap_pos ? d->cap_pos * 2 : 32;
        dm_spec_pos_t *p = realloc(d->pos, cap * sizeof(*p));
        if (!p) return DM_ERR_NOMEM;
        d->pos = p;
        d->cap_pos = cap;
    }
    char *copy = strdup(path);
    if (!copy) return DM_ERR_NOMEM;
    d->pos[d->n_pos++] = (dm_spec_pos_t){copy, (int)m->line + 1, (int)m->column + 1};
    return DM_OK;
}

/* YAML 1.2 core schema for plain (unquoted) scalars. */
static json_t *plain_scalar(const char *s, size_t len)
{
    if (len == 0 || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
        !strcmp(s, "NULL"))
        return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
    char *end;
    errno = 0;
    if ((s[0] >= '0' && s[0] <= '9') || ((s[0] == '-' || s[0] == '+') && len > 1)) {
        long long v;
        if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
            v = strtoll(s + 2, &end, s[1] == 'x' ? 16 : 8);
        } else {
            v = strtoll(s, &end, 10);
        }
        if (!*end && !errno) return json_integer(v);
        errno = 0;
        double d = strtod(s, &end);
        if (!*end && !errno && isfinite(d) && strpbrk(s, "0123456789")) return json_real(d);
    }
    if (!strcmp(s, ".inf") || !strcmp(s, ".nan") || !strcmp(s, "-.inf"))
        return json_string(s); /* JSON cannot hold them; keep the text */
    return json_stringn(s, len);
}

static json_t *convert(conv_t *c, yaml_node_t *n, char *path, size_t plen, int depth)
{
    if (++c->nodes > MAX_NODES) {
        dm_error_set(c->err, DM_ERR_INVALID, "%s:%d:%d: document too large (over %d values)",
                     c->doc->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1,
                     MAX_NODES);
        return NULL;
    }
    if (depth > MAX_DEPTH) {
        dm_error_set(c->err, DM_ERR_INVALID, "%s:%d:%d: nested deeper than %d levels", c->doc->file,
                     (int)n->start_mark.line + 1, (int)n->start_mark.column + 1, MAX_DEPTH);
        return NULL;
    }
    if (add_pos(c->doc, path, &n->start_mark)) {
        dm_error_set(c->err, DM_ERR_NOMEM, "out of memory");
        return NULL;
    }
    switch (n->type) {
    case YAML_SCALAR_NODE: {
        const char *s = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        /* libyaml tags every untagged scalar !!str, so the style decides: plain
         * scalars are typed by the YAML 1.2 core schema, quoted ones are strings. */
        json_t *v = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? plain_scalar(s, len)
                                                                    : json_stringn(s, len);
        if (!v)
            dm_error_set(c->err, DM_ERR_INVALID, "%s:%d:%d: %s: text is not valid UTF-8",
                         c->doc->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1,
                         path[0] ? path : "(document)");
        return v;
    }
    case YAML_SEQUENCE_NODE: {
        json_t *a = json_array();
        size_t i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
            int w = snprintf(path + plen, 1024 - plen, "[%zu]", i);
            if (w < 0 || plen + (size_t)w >= 1024) {
                dm_error_set(c->err, DM_ERR_INVALID, "%s: field path too long", c->doc->file);
                json_decref(a);
                return NULL;
            }
            json_t *v =
                convert(c, yaml_document_get_node(c->ydoc, *it), path, plen + (size_t)w, depth + 1);
            path[plen] = '\0';
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case YAML_MAPPING_NODE: {
        json_t *o = json_object();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
             p++) {
            yaml_node_t *k = yaml_document_get_node(c->ydoc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE) {
                dm_error_set(c->err, DM_ERR_INVALID, "%s:%d:%d: %s: keys must be plain strings",
                             c->doc->file, k ? (int)k->start_mark.line + 1 : 0,
                             k ? (int)k->start_mark.column + 1 : 0, path[0] ? path : "(document)");
                json_decref(o);
                return NULL;
            }
            const char *key = (const char *)k->data.scalar.value;
            if (json_object_get(o, key)) {
                dm_error_set(c->err, DM_ERR_INVALID, "%s:%d:%d: %s%s%s: duplicate key",
                             c->doc->file, (int)k->start_mark.line + 1,
                             (int)k->start_mark.column + 1, path, path[0] ? "." : "", key);
                json_decref(o);
                return NULL;
            }
            int w = snprintf(path + plen, 1024 - plen, "%s%s", plen ? "." : "", key);
            if (w < 0 || plen + (size_t)w >= 1024) {
                dm_error_set(c->err, DM_ERR_INVALID, "%s: field path too long", c->doc->file);
                json_decref(o);
                return NULL;
            }
            json_t *v = convert(c, yaml_document_get_node(c->ydoc, p->value), path,
                                plen + (size_t)w, depth + 1);
            path[plen] = '\0';
            if (!v) {
                json_decref(o);
                return NULL;
            }
            json_object_set_new(o, key, v);
        }
        return o;
    }
    case YAML_NO_NODE: break;
    }
    return json_null();
}

void dm_spec_docs_free(dm_spec_doc_t *docs, size_t n)
{
    if (!docs) return;
    for (size_t i = 0; i < n; i++) {
        json_decref(docs[i].root);
        free(docs[i].file);
        for (size_t j = 0; j < docs[i].n_pos; j++)
            free(docs[i].pos[j].path);
        free(docs[i].pos);
    }
    free(docs);
}

/* Refuses flow collections ([ and {) nested deeper than twice the documents'
 * depth limit before libyaml sees them: its scanner looks at every open flow
 * level for each token, so 100,000 opening brackets would take minutes
 * (quadratic) before any depth check could run. Quoted scalars and comments
 * are skipped; the bound is loose so that a bracket in a plain scalar never
 * refuses a document the converter's own limit would take. */
static dm_err_t check_flow_depth(const char *file, const char *text, size_t len, dm_error_t *err)
{
    int depth = 0, line = 1, col = 0;
    char quote = 0, prev = '\n';
    bool comment = false;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        col++;
        if (ch == '\n') {
            line++, col = 0, comment = false;
            if (quote == 0) prev = ch;
            continue;
        }
        if (comment) continue;
        if (quote) {
            if (quote == '"' && ch == '\\' && i + 1 < len)
                i++, col++;
            else if (ch == quote)
                quote = 0;
            prev = ch;
            continue;
        }
        bool token_start = prev == ' ' || prev == '\t' || prev == '\n' || prev == '[' ||
                           prev == '{' || prev == ',' || prev == ':';
        if (ch == '#' && (prev == ' ' || prev == '\t' || prev == '\n'))
            comment = true;
        else if ((ch == '"' || ch == '\'') && token_start)
            quote = ch;
        else if (ch == '[' || ch == '{') {
            if (++depth > 2 * MAX_DEPTH)
                return dm_error_set(err, DM_ERR_INVALID, "%s:%d:%d: nested deeper than %d levels",
                                    file, line, col, MAX_DEPTH);
        } else if ((ch == ']' || ch == '}') && depth > 0)
            depth--;
        prev = ch;
    }
    return DM_OK;
}

dm_err_t dm_spec_load(const char *file, const char *text, size_t len, dm_spec_doc_t **out,
                      size_t *n_out, dm_error_t *err)
{
    *out = NULL;
    *n_out = 0;
    if (text && check_flow_depth(file, text, len, err)) return DM_ERR_INVALID;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""),
                                 text ? len : 0);
    dm_spec_doc_t *docs = NULL;
    size_t n = 0, cap = 0;
    dm_err_t rc = DM_OK;
    for (;;) {
        yaml_document_t ydoc;
        if (!yaml_parser_load(&parser, &ydoc)) {
            int line = (int)parser.problem_mark.line + 1, col = (int)parser.problem_mark.column + 1;
            if (parser.error == YAML_READER_ERROR) {
                /* the reader (bad UTF-8, a control character) tells only a byte offset */
                line = 1, col = 1;
                for (size_t i = 0; text && i < parser.problem_offset && i < len; i++)
                    if (text[i] == '\n')
                        line++, col = 1;
                    else if (((unsigned char)text[i] & 0xc0) != 0x80)
                        col++;
            }
            rc = dm_error_set(err, DM_ERR_INVALID, "%s:%d:%d: %s%s%s", file, line, col,
                              parser.problem ? parser.problem : "malformed YAML",
                              parser.context ? " " : "", parser.context ? parser.context : "");
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&ydoc);
        if (!root) { /* end of stream */
            yaml_document_delete(&ydoc);
            break;
        }
        bool empty = root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0;
        if (!empty) {
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                dm_spec_doc_t *d = realloc(docs, cap * sizeof(*d));
                if (!d) {
                    yaml_document_delete(&ydoc);
                    rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
                    break;
                }
                docs = d;
            }
            dm_spec_doc_t *d = &docs[n++];
            memset(d, 0, sizeof(*d));
            d->file = strdup(file);
            d->line = (int)root->start_mark.line + 1;
            char path[1024] = "";
            conv_t c = {.ydoc = &ydoc, .doc = d, .err = err};
            d->root = convert(&c, root, path, 0, 0);
            if (!d->root) rc = err ? err->code : DM_ERR_INVALID;
        }
        yaml_document_delete(&ydoc);
        if (rc) break;
    }
    yaml_parser_delete(&parser);
    if (rc) {
        dm_spec_docs_free(docs, n);
        return rc;
    }
    *out = docs;
    *n_out = n;
    return DM_OK;
}

void dm_spec_locate(void *ctx, const char *path, char *out, size_t cap)
{
    const dm_spec_doc_t *d = ctx;
    char want[1024];
    snprintf(want, sizeof(want), "%s", path);
    for (;;) {
        for (size_t i = 0; i < d->n_pos; i++)
            if (!strcmp(d->pos[i].path, want)) {
                snprintf(out, cap, "%s:%d:%d", d->file, d->pos[i].line, d->pos[i].col);
                return;
            }
        /* Not present: try the parent ("a.b[2].c" → "a.b[2]" → "a.b" → "a" → ""). */
        size_t n = strlen(want);
        if (!n) break;
        char *cut = NULL;
        for (char *p = want + n - 1; p >= want; p--)
            if (*p == '.' || *p == '[') {
                cut = p;
                break;
            }
        if (cut)
            *cut = '\0';
        else
            want[0] = '\0';
    }
    snprintf(out, cap, "%s:%d:1", d->file, d->line);
}
