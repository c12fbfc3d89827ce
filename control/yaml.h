/* control/yaml.h — specs as text (YAML or JSON, several documents per file)
 * to jansson values, remembering where every value came from.
 *
 * Each document becomes a dm_spec_doc_t: the JSON tree plus a table from field
 * paths ("spec.steps[1].project[0]") to file:line:column, so that validation
 * errors point at the text the user wrote. JSON is read through the same YAML
 * parser (JSON is YAML's flow style). Hostile input is bounded: nesting depth,
 * node count (alias expansion included) and scalar sizes have limits.
 */
#ifndef DM_CONTROL_YAML_H
#define DM_CONTROL_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "core/error.h"

typedef struct dm_spec_pos {
    char *path;
    int line; /* 1-based */
    int col;  /* 1-based */
} dm_spec_pos_t;

typedef struct dm_spec_doc {
    json_t *root;       /* owned */
    char *file;         /* owned: file name or "<request>" */
    int line;           /* where the document starts */
    dm_spec_pos_t *pos; /* owned, in document order */
    size_t n_pos, cap_pos;
} dm_spec_doc_t;

/* Parses text (len bytes, need not be NUL-terminated) as one or more YAML/JSON
 * documents. file names the source in messages. On success *docs (free with
 * dm_spec_docs_free) holds *n_docs documents; empty documents are skipped.
 * Errors name file:line:col and what the parser expected. */
dm_err_t dm_spec_load(const char *file, const char *text, size_t len, dm_spec_doc_t **docs,
                      size_t *n_docs, dm_error_t *err);

/* Frees what dm_spec_load returned. */
void dm_spec_docs_free(dm_spec_doc_t *docs, size_t n);

/* dm_config_locate_fn over a document (ctx is the dm_spec_doc_t): writes
 * "file:line:col" of path, or of its nearest present parent. */
void dm_spec_locate(void *doc, const char *path, char *out, size_t cap);

#endif
