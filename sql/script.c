/* sql/script.c — a script of statements (sql/sql.h): CREATE SOURCE … AS,
 * DROP SOURCE, EXPLAIN, SHOW SOURCES, DESCRIBE and queries, split at `;`. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sql/sql.h"
#include "sql/sql_internal.h"

void dm_sql_stmts_free(dm_sql_stmt_t *stmts, size_t n)
{
    for (size_t i = 0; stmts && i < n; i++) {
        free(stmts[i].name);
        free(stmts[i].owner);
        free(stmts[i].description);
        free(stmts[i].query);
    }
    free(stmts);
}

char *dm_sql_stmt_query_in_place(const dm_sql_stmt_t *st)
{
    if (!st->query) return NULL;
    int nl = st->query_line > 1 ? st->query_line - 1 : 0;
    int sp = st->query_col > 1 ? st->query_col - 1 : 0;
    size_t len = strlen(st->query);
    char *s = malloc((size_t)nl + (size_t)sp + len + 1);
    if (!s) return NULL;
    memset(s, '\n', (size_t)nl);
    memset(s + nl, ' ', (size_t)sp);
    memcpy(s + nl + sp, st->query, len + 1);
    return s;
}

/* A string literal's text, '' unescaped. */
static char *unquote(const sql_tok_t *t)
{
    char *s = malloc(t->len + 1), *o = s;
    if (!s) return NULL;
    for (uint32_t i = 0; i < t->len; i++) {
        *o++ = t->p[i];
        if (t->p[i] == '\'' && i + 1 < t->len && t->p[i + 1] == '\'') i++;
    }
    *o = '\0';
    return s;
}

/* WITH (owner = '…', description = '…') */
static bool parse_with(sql_parser_t *ps, dm_sql_stmt_t *st)
{
    if (!dm_sql_is_op(&ps->t, "(")) {
        return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected '(' after WITH");
    }
    dm_sql_next(ps);
    do {
        sql_tok_t k = ps->t;
        const char *key = dm_sql_parse_name(ps, "owner or description");
        if (!key) return false;
        if (!dm_sql_is_op(&ps->t, "="))
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected '=' after %s", key);
        dm_sql_next(ps);
        if (ps->t.kind != K_STRING)
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected a quoted value for %s", key);
        char **slot = !strcasecmp(key, "owner")         ? &st->owner
                      : !strcasecmp(key, "description") ? &st->description
                                                        : NULL;
        if (!slot)
            return dm_sql_fail_at(ps, k.line, k.col, "unknown option '%s' (owner, description)",
                                  key);
        free(*slot);
        *slot = unquote(&ps->t);
        dm_sql_next(ps);
        if (dm_sql_is_op(&ps->t, ",")) {
            dm_sql_next(ps);
            continue;
        }
        break;
    } while (!ps->failed);
    if (!dm_sql_is_op(&ps->t, ")"))
        return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected ',' or ')' in WITH (…)");
    dm_sql_next(ps);
    return true;
}

/* A query up to the end of its statement: parsed, its text kept. */
static bool parse_query_text(sql_parser_t *ps, dm_sql_stmt_t *st)
{
    uint32_t start = ps->t.off;
    st->query_line = ps->t.line;
    st->query_col = ps->t.col;
    if (!dm_sql_is_kw(&ps->t, "select"))
        return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected SELECT");
    if (!dm_sql_parse_query(ps)) return false;
    uint32_t end = ps->t.kind == K_EOF ? (uint32_t)strlen(ps->text) : ps->t.off;
    while (end > start && (ps->text[end - 1] == ' ' || ps->text[end - 1] == '\n' ||
                           ps->text[end - 1] == '\t' || ps->text[end - 1] == '\r'))
        end--;
    st->query = strndup(ps->text + start, end - start);
    return st->query != NULL;
}

static bool parse_stmt(sql_parser_t *ps, dm_sql_stmt_t *st)
{
    st->line = ps->t.line;
    st->col = ps->t.col;
    sql_tok_t t = ps->t;
    if (dm_sql_is_kw(&t, "select")) {
        st->kind = DM_SQL_SELECT;
        return parse_query_text(ps, st);
    }
    if (dm_sql_is_kw(&t, "explain")) {
        dm_sql_next(ps);
        st->kind = DM_SQL_EXPLAIN;
        if (dm_sql_is_kw(&ps->t, "plan")) { /* EXPLAIN PLAN FOR SELECT … */
            dm_sql_next(ps);
            if (!dm_sql_is_kw(&ps->t, "for"))
                return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected FOR");
            dm_sql_next(ps);
        }
        return parse_query_text(ps, st);
    }
    if (dm_sql_is_kw(&t, "show")) {
        dm_sql_next(ps);
        if (!dm_sql_is_kw(&ps->t, "sources") && !dm_sql_is_kw(&ps->t, "tables"))
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected SOURCES after SHOW");
        dm_sql_next(ps);
        st->kind = DM_SQL_SHOW_SOURCES;
        return true;
    }
    if (dm_sql_is_kw(&t, "describe") || dm_sql_is_kw(&t, "desc")) {
        dm_sql_next(ps);
        st->kind = DM_SQL_DESCRIBE;
        const char *n = dm_sql_parse_name(ps, "a source name");
        return n && (st->name = strdup(n));
    }
    bool create = dm_sql_is_kw(&t, "create"), drop = dm_sql_is_kw(&t, "drop");
    if (create || drop) {
        dm_sql_next(ps);
        if (!dm_sql_is_kw(&ps->t, "source")) {
            bool view = dm_sql_is_kw(&ps->t, "view") || dm_sql_is_kw(&ps->t, "table");
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected SOURCE after %s%s",
                                  create ? "CREATE" : "DROP",
                                  view ? " (a derived stream is a source here)" : "");
        }
        dm_sql_next(ps);
        const char *n = dm_sql_parse_name(ps, "a source name");
        if (!n || !(st->name = strdup(n))) return false;
        if (drop) {
            st->kind = DM_SQL_DROP_SOURCE;
            return true;
        }
        st->kind = DM_SQL_CREATE_SOURCE;
        if (dm_sql_is_kw(&ps->t, "with")) {
            dm_sql_next(ps);
            if (!parse_with(ps, st)) return false;
        }
        if (!dm_sql_is_kw(&ps->t, "as"))
            return dm_sql_fail_at(ps, ps->t.line, ps->t.col, "expected AS SELECT …");
        dm_sql_next(ps);
        return parse_query_text(ps, st);
    }
    if (t.kind == K_EOF) return dm_sql_fail_at(ps, t.line, t.col, "empty statement");
    return dm_sql_fail_at(ps, t.line, t.col,
                          "expected SELECT, CREATE SOURCE, DROP SOURCE, EXPLAIN, SHOW SOURCES or "
                          "DESCRIBE, found '%.*s'",
                          (int)(t.len > 40 ? 40 : t.len), t.p);
}

dm_err_t dm_sql_script_parse(const char *text, dm_sql_stmt_t **out, size_t *n, dm_error_t *err)
{
    *out = NULL;
    *n = 0;
    dm_error_t local = {0};
    if (!err) err = &local;
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    sql_parser_t ps;
    dm_sql_parser_init(&ps, text, &arena, err);
    dm_sql_stmt_t *v = NULL;
    size_t cnt = 0;
    while (!ps.failed) {
        while (dm_sql_is_op(&ps.t, ";"))
            dm_sql_next(&ps);
        if (ps.t.kind == K_EOF || ps.failed) break;
        if (cnt == 1000) {
            dm_sql_fail_at(&ps, ps.t.line, ps.t.col, "a script holds at most 1000 statements");
            break;
        }
        dm_sql_stmt_t *nv = realloc(v, (cnt + 1) * sizeof(*v));
        if (!nv) {
            dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            ps.failed = true;
            break;
        }
        v = nv;
        memset(&v[cnt], 0, sizeof(*v));
        cnt++;
        if (!parse_stmt(&ps, &v[cnt - 1])) break;
        if (!ps.failed && !dm_sql_is_op(&ps.t, ";") && ps.t.kind != K_EOF)
            dm_sql_fail_at(&ps, ps.t.line, ps.t.col,
                           "expected ';' or the end of the statement, found '%.*s'",
                           (int)(ps.t.len > 40 ? 40 : ps.t.len), ps.t.p);
    }
    dm_arena_destroy(&arena);
    if (ps.failed) {
        dm_sql_stmts_free(v, cnt);
        return err->code ? err->code : DM_ERR_INVALID;
    }
    *out = v;
    *n = cnt;
    return DM_OK;
}
