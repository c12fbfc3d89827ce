/* engine/table.h — a source materialized as a keyed table: the latest value
 * per key, for stream–table lookups (enrich).
 *
 * Values are kept as their Avro binary (no wire header) in the table's own
 * memory; keys are the text form of the key field ("42", "US"), so a long in
 * the stream finds an int in the table. Updates (from the engine's reader of
 * the source's topic) and lookups (from task threads) may run concurrently: a
 * read–write lock guards the map and lookups copy the bytes out.
 */
#ifndef DM_ENGINE_TABLE_H
#define DM_ENGINE_TABLE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"
#include "schema/dm_avro.h"
#include "transport/transport.h"

typedef struct dm_table dm_table_t;

/* A table of values of schema (a record) keyed by its field key_field.
 * Borrows schema, which must outlive the table. */
dm_err_t dm_table_new(const char *name, const dm_avro_schema_t *schema, const char *key_field,
                      dm_table_t **out, dm_error_t *err);

void dm_table_free(dm_table_t *t);

const char *dm_table_name(const dm_table_t *t);
const dm_avro_schema_t *dm_table_schema(const dm_table_t *t);
const char *dm_table_key_field(const dm_table_t *t);

/* Number of keys. */
size_t dm_table_size(dm_table_t *t);

/* Applies one record of the source's topic: a value in the wire format is an
 * upsert; a null value with a key is a delete (the key is the Avro key record
 * of the source, its first field the key field). Records that cannot be
 * decoded are reported (DM_ERR_SCHEMA_MISMATCH) and leave the table as it was. */
dm_err_t dm_table_apply(dm_table_t *t, const dm_record_t *rec, dm_error_t *err);

/* Inserts or replaces the value (Avro binary of the schema). */
dm_err_t dm_table_put(dm_table_t *t, const uint8_t *avro, size_t len, dm_error_t *err);

/* Removes key; no error when absent. */
void dm_table_remove(dm_table_t *t, const char *key, size_t key_len);

/* Copies the value stored under key into out (replacing its contents);
 * *found says whether there was one. */
dm_err_t dm_table_get(dm_table_t *t, const char *key, size_t key_len, dm_buf_t *out, bool *found);

/* The text form of a key value (of type node) used by tables: integers in
 * decimal, strings and enums as they are, others as Avro JSON. */
dm_err_t dm_table_key_text(const dm_avro_node_t *node, const dm_avro_value_t *v, dm_buf_t *out);

#endif
