/* connectors/cockroachdb/cockroachdb.h — CockroachDB changefeeds into a
 * source, over CockroachDB's documented protocols only (no CockroachDB-side
 * code): the source's thread creates the changefeed over the Postgres wire
 * protocol (libpq),
 *
 *   CREATE CHANGEFEED FOR TABLE t INTO 'webhook-https://…/api/v1/sources/NAME/changefeed'
 *     WITH updated, diff, resolved = '10s', format = json, envelope = wrapped
 *          [, cursor = '<the committed resolved timestamp>'] [, webhook_auth_header = …]
 *
 * and the changefeed's webhook sink POSTs its batches to the controller, which
 * hands each body to dm_crdb_receive (API thread):
 *
 *   {"payload": [{"after": {…} | null, "before": {…} | null, "key": [..],
 *                 "topic": "t", "updated": "1631648624419853000.0000000000"}],
 *    "length": N}
 *   {"resolved": "1631648628013478000.0000000000"}
 *
 * Rows become the Debezium-shaped envelope (before, after, op, source, ts_ms)
 * of the spec's declared row schema, keyed by spec.key (the table's primary
 * key, in order); a row that does not fit goes to source.NAME.dlq. The
 * highest resolved timestamp is the source's position, committed with the
 * events in one transaction before the request is acknowledged (so a retry
 * of an unacknowledged batch is safe); a restart creates the changefeed
 * again with cursor = that position. Re-deliveries (CockroachDB delivers at
 * least once) are dropped by (key, updated): at or below the resolved
 * position always, above it when the key's last committed change is not
 * older. docs/cockroachdb.md is the user's page. */
#ifndef DM_CONNECTORS_COCKROACHDB_H
#define DM_CONNECTORS_COCKROACHDB_H

#include <stdint.h>

#include "connectors/source.h"
#include "core/config.h"

typedef struct dm_crdb_config {
    char *dsn;           /* libpq connection string to CockroachDB */
    char *password_env;  /* environment variable holding the password */
    char *password_file; /* file holding the password */
    char *table;         /* the watched table: db.schema.table or table */
    char *webhook_url;   /* https://host:port of this controller as CockroachDB reaches it */
    char *token_env;     /* environment variable holding an API token for the webhook */
    int64_t resolved_ms; /* resolved-timestamp interval */
    bool create;         /* create the changefeed (false: the user does, datamesh receives) */
    bool diff;           /* WITH diff: before images, exact c/u ops */
    bool insecure_tls_skip_verify;
    int64_t max_bytes; /* largest webhook body taken */
} dm_crdb_config_t;

extern const dm_config_table_t dm_crdb_config_table;

typedef struct dm_crdb_source dm_crdb_source_t;

/* An HLC timestamp as changefeeds write it ("wall.logical"): wall time in ns
 * and the logical counter. */
typedef struct dm_crdb_hlc {
    int64_t wall;
    int64_t logical;
} dm_crdb_hlc_t;

/* Parses "1631648624419853000.0000000000" (the logical part may be absent).
 * DM_ERR_INVALID naming the text when it is not one. */
dm_err_t dm_crdb_hlc_parse(const char *s, dm_crdb_hlc_t *out, dm_error_t *err);
/* <0, 0, >0 as a is before, equal to, after b. */
int dm_crdb_hlc_cmp(dm_crdb_hlc_t a, dm_crdb_hlc_t b);

/* Makes the source called env->name (nothing registered yet). env copied
 * (callbacks' ctx borrowed), conf borrowed; both outlive the source. */
dm_err_t dm_crdb_source_new(const dm_source_env_t *env, const dm_crdb_config_t *conf,
                            dm_crdb_source_t **out, dm_error_t *err);

/* Registers the envelope of the declared row schema (env->declared_schema,
 * JSON text, required) under NAME-value and the record of env->key_fields
 * under NAME-key, creates the topic, source.NAME.dlq and the state topic, and
 * reads the committed position; once (later calls return DM_OK). run does it
 * first; until then receive answers DM_ERR_AGAIN. The source's thread (the
 * env callbacks need it). */
dm_err_t dm_crdb_source_prepare(dm_crdb_source_t *src, dm_error_t *err);

/* The CREATE CHANGEFEED statement for the source (cursor: the committed
 * position, or "" for none). With with_secret false the auth header is
 * written as '***' (for logs and status). A new string, or NULL. */
char *dm_crdb_changefeed_sql(const dm_crdb_source_t *src, bool with_secret);

/* Creates the changefeed when conf->create (and watches its job) until
 * status->stop. A server that is not CockroachDB, or that refuses the
 * statement, fails the unit with its reason. The unit's thread. */
void dm_crdb_source_run(dm_crdb_source_t *src, struct dm_unit_status *status);

/* One webhook request body: rows and resolved timestamps, committed (with
 * the position) before it returns; *accepted gets the messages taken
 * (written, dead-lettered or dropped as re-deliveries). DM_ERR_INVALID for a
 * body that is not a changefeed payload (nothing written), DM_ERR_RANGE for
 * one larger than max_bytes, DM_ERR_AGAIN when the write failed (the sender
 * retries). Any thread; requests are taken one at a time. */
dm_err_t dm_crdb_receive(dm_crdb_source_t *src, const void *body, size_t len, size_t *accepted,
                         dm_error_t *err);

/* Position, job and counts for status, a new reference. Any thread. */
json_t *dm_crdb_source_status(dm_crdb_source_t *src);

/* Frees the source (after run returned). NULL is allowed. */
void dm_crdb_source_free(dm_crdb_source_t *src);

/* The cockroachdb connector (registered in connectors/registry.c). */
extern const dm_source_ops_t dm_cockroachdb_source_ops;

#endif
