/* connectors/essink/essink.h — the elasticsearch sink: documents indexed by
 * key through the _bulk API (libcurl), deleted on tombstones and change events
 * with op 'd', into an index it creates with a mapping derived from the Avro
 * schema. Throttling (429) and server errors (5xx) are retried with backoff;
 * documents Elasticsearch refuses go to the dead-letter topic with its error. */
#ifndef DM_CONNECTORS_ESSINK_H
#define DM_CONNECTORS_ESSINK_H

#include "connectors/sink.h"
#include "core/config.h"

typedef struct dm_essink_config {
    dm_sink_common_config_t common;
    char *url;           /* http(s)://host:port of the cluster */
    char *index;         /* the index written to (created when missing) */
    dm_strlist_t key;    /* fields making the document id; empty = the source's key */
    char *username;      /* basic auth user */
    char *password_env;  /* basic auth password: environment variable */
    char *password_file; /* … or file */
    char *api_key_env;   /* API key (instead of basic auth): environment variable */
    char *api_key_file;  /* … or file */
    int64_t timeout_ms;  /* per request */
} dm_essink_config_t;

extern const dm_config_table_t dm_essink_config_table;
extern const dm_sink_ops_t dm_essink_ops;

#endif
