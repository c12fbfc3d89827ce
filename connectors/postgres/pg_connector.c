/* connectors/postgres/pg_connector.c — the postgres connector as the runtime
 * sees it (connectors/source.h): the running source of pg_source.c behind the
 * common source interface. */
#include "connectors/postgres/postgres.h"

static dm_err_t pg_open(const void *conf, const dm_source_env_t *env, void **state, dm_error_t *err)
{
    dm_pg_source_t *src = NULL;
    dm_err_t rc = dm_pg_source_new(env, conf, &src, err);
    *state = src;
    return rc;
}

static void pg_run(void *state, struct dm_unit_status *status)
{
    dm_pg_source_run(state, status);
}

static void pg_close(void *state)
{
    dm_pg_source_free(state);
}

static json_t *pg_status(void *state)
{
    return dm_pg_source_status(state);
}

static dm_err_t pg_snapshot(void *state, const char *table, const char *from, const char *to,
                            dm_error_t *err)
{
    return dm_pg_source_request_snapshot(state, table, from, to, err);
}

const dm_source_ops_t dm_postgres_source_ops = {
    .def = {.name = "postgres",
            .summary = "change data capture through logical replication",
            .config = &dm_postgres_config_table,
            .config_size = sizeof(dm_postgres_config_t),
            .needs_schema = false /* its schemas come from the database */},
    .runs_thread = true,
    .open = pg_open,
    .run = pg_run,
    .close = pg_close,
    .status_json = pg_status,
    .snapshot = pg_snapshot,
};
