/* engine/proc_util.h — small helpers the built-in processors share. */
#ifndef DM_ENGINE_PROC_UTIL_H
#define DM_ENGINE_PROC_UTIL_H

#include <jansson.h>
#include <stdbool.h>

#include "core/arena.h"
#include "core/config.h"
#include "engine/expr.h"
#include "schema/dm_avro.h"

/* Splits "expr AS name" in place at the last AS outside quotes and
 * parentheses; *alias is NULL when there is none. Both are trimmed. */
void dm_proc_split_as(char *item, char **expr, char **alias);

/* A default output name for an expression: the last segment of a field path,
 * or NULL when text is not a plain path. */
const char *dm_proc_path_name(const char *text);

/* True when s is an Avro name (letters, digits, _; not starting with a digit). */
bool dm_proc_valid_name(const char *s);

/* An expression result as an Avro value of the type dm_schema_expr_type_json
 * gives (nullable: a ["null", T] union). Strings are copied into arena when
 * copy is set (their bytes may not outlive the call otherwise). */
void dm_proc_expr_to_avro(const dm_expr_value_t *v, bool nullable, dm_arena_t *arena, bool copy,
                          dm_avro_value_t *out);

/* Compiles a list of expressions ("path" or "expr AS name", as a
 * DM_CFG_EXPR_LIST setting holds them) into expressions and names; appends
 * {"name", "type"} fields to fields_out (may be NULL). what names the setting
 * in errors ("group_by"). */
typedef struct dm_proc_column {
    char *name;
    dm_expr_t *expr;
    dm_expr_type_t type;
    bool nullable;
} dm_proc_column_t;

dm_err_t dm_proc_columns(const dm_strlist_t *list, const char *what, const dm_avro_node_t *input,
                         dm_proc_column_t **cols, size_t *n, json_t *fields_out, dm_error_t *err);

void dm_proc_columns_free(dm_proc_column_t *cols, size_t n);

/* Adds the expression's field paths to a list (no duplicates; the strings
 * belong to the expression). */
dm_err_t dm_proc_add_paths(const dm_expr_t *e, const char ***paths, size_t *n);

#endif
