/* sql/sql.h — streaming SQL: Flink-SQL-shaped queries compiled into the
 * steps of a pipeline (the same plan as steps; docs/sql.md).
 *
 *   "SELECT … FROM plays p LEFT JOIN movies m ON p.movie_id = m.movie_id WHERE …"
 *        --dm_sql_compile-->  {"from": ["plays"], "steps": [{filter}, {enrich}, {project}]}
 *        --dm_plan_compile-->  the fused plan (control/plan.h)
 *
 * What compiles to what:
 *   WHERE                       filter (conditions on the stream alone run before joins)
 *   SELECT list                 project (none for a bare SELECT *: it follows the schema)
 *   UNION ALL of SELECTs        from: [a, b] (fields matched by name), the branches' steps once
 *   [LEFT] JOIN t ON s.x = t.k  enrich (t keyed by k, its whole key); INNER adds a filter
 *   JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL … AND a.ts + INTERVAL …
 *                               join (interval join; the bounds checked by a filter after)
 *   TABLE(TUMBLE|HOP|SESSION(TABLE s, DESCRIPTOR(ts), …)) + GROUP BY window_start, window_end, …
 *                               aggregate (HAVING: filter after; SELECT list: project)
 * Refused with the reason and a hint: regular joins of streams, ORDER BY,
 * LIMIT, DISTINCT, GROUP BY without a window, subqueries other than a UNION
 * ALL of sources.
 *
 * Expressions are translated into the engine's expression language
 * (engine/expr.h), which evaluates them; SQL adds INTERVAL and TIMESTAMP
 * literals, qualified names and SQL type names in CAST.
 *
 * Errors: "SQL line L, column C: what\n  <the query line>\n  <caret>", unknown
 * columns with the closest name, type mismatches with both types.
 *
 * Threads: every function is re-entrant; nothing is shared.
 */
#ifndef DM_SQL_SQL_H
#define DM_SQL_SQL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"
#include "schema/dm_avro.h"

typedef enum dm_sql_kind {
    DM_SQL_SELECT,        /* a query: a push query (CLI) or EXPLAIN-like compile */
    DM_SQL_CREATE_SOURCE, /* CREATE SOURCE name [WITH (owner = '…', …)] AS query */
    DM_SQL_DROP_SOURCE,   /* DROP SOURCE name */
    DM_SQL_EXPLAIN,       /* EXPLAIN query */
    DM_SQL_SHOW_SOURCES,  /* SHOW SOURCES */
    DM_SQL_DESCRIBE,      /* DESCRIBE name */
} dm_sql_kind_t;

/* One statement of a script; strings malloc'd, owned by the statement list. */
typedef struct dm_sql_stmt {
    dm_sql_kind_t kind;
    char *name;                /* CREATE / DROP / DESCRIBE: the source */
    char *owner;               /* CREATE … WITH (owner = '…'); NULL when not given */
    char *description;         /* CREATE … WITH (description = '…'); NULL when not given */
    char *query;               /* SELECT, CREATE … AS, EXPLAIN: the query's text */
    int line, col;             /* where the statement starts in the script */
    int query_line, query_col; /* where its query starts */
} dm_sql_stmt_t;

/* Splits a script into its statements (`;` between them) and parses each
 * fully: syntax errors name line:col in the script. Free with
 * dm_sql_stmts_free (also after an error: *out is NULL then). */
dm_err_t dm_sql_script_parse(const char *text, dm_sql_stmt_t **out, size_t *n, dm_error_t *err);
void dm_sql_stmts_free(dm_sql_stmt_t *stmts, size_t n);

/* The statement's query preceded by as many line breaks and spaces as put it
 * where it was in the script, so that compiling it names line:col of the
 * script. malloc'd; NULL when it has no query. */
char *dm_sql_stmt_query_in_place(const dm_sql_stmt_t *st);

/* Where a query finds its sources. */
typedef struct dm_sql_catalog {
    /* The record schema of source name (borrowed until compile returns) and
     * its key fields (a JSON array of names, borrowed; NULL or empty: not
     * keyed). DM_ERR_NOT_FOUND: no such source; DM_ERR_AGAIN: it has no
     * schema yet (err says which). */
    dm_err_t (*source)(void *ctx, const char *name, const dm_avro_node_t **schema,
                       const json_t **key, dm_error_t *err);
    void *ctx;
} dm_sql_catalog_t;

/* Compiles one query (a SELECT, or UNION ALL of them) into the pipeline
 * steps it stands for: *out = {"from": [sources…], "steps": [step…]} (new
 * reference). step: the query is a `sql` step, whose FROM names `input` (the
 * step's input, of schema input); from is [] then. cat NULL: syntax and the
 * names read only — columns are not checked and unqualified ones in a join
 * are taken from the stream (what validating a spec and finding its inputs
 * need). Errors name line:col in query; DM_ERR_AGAIN from the catalog passes
 * through unchanged. */
dm_err_t dm_sql_compile(const char *query, const dm_sql_catalog_t *cat, bool step,
                        const dm_avro_node_t *input, json_t **out, dm_error_t *err);

/* The source names a query reads (from, joins), as a new JSON array; NULL
 * with err set when it does not parse. */
json_t *dm_sql_reads(const char *query, bool step, dm_error_t *err);

#endif
