/* cli/output.h — printing API answers as tables, JSON or YAML. */
#ifndef DM_CLI_OUTPUT_H
#define DM_CLI_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

typedef enum { DM_OUT_TABLE, DM_OUT_JSON, DM_OUT_YAML } dm_out_format_t;

/* Parses "table", "json", "yaml"; -1 otherwise. */
int dm_out_parse(const char *text);

/* Writes v as block-style YAML. */
void dm_out_yaml(FILE *f, const json_t *v);

/* Writes v as indented JSON and a newline. */
void dm_out_json(FILE *f, const json_t *v);

/* Writes a table: one row per object of items, columns given as
 * {header, field path "a.b.c"} pairs; lists print comma-separated. */
typedef struct dm_out_column {
    const char *header;
    const char *path;
} dm_out_column_t;
void dm_out_table(FILE *f, const json_t *items, const dm_out_column_t *cols, size_t n_cols);

#endif
