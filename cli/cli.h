/* cli/cli.h — the datamesh command: subcommand table and shared helpers.
 *
 * Exit codes of every subcommand: 0 ok, 1 the operation failed, 2 bad usage
 * (or not implemented yet).
 */
#ifndef DM_CLI_CLI_H
#define DM_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"

#define DM_EXIT_OK     0
#define DM_EXIT_FAILED 1
#define DM_EXIT_USAGE  2

typedef struct dm_cli_command {
    const char *name;
    const char *summary; /* one line for `datamesh --help` */
    const char *usage;   /* full text for `datamesh NAME --help` */
    /* Runs the command with argv[0] = its name. NULL = not implemented yet. */
    int (*run)(int argc, char **argv);
} dm_cli_command_t;

/* The table of subcommands, in the order --help lists them (cli/commands.c). */
extern const dm_cli_command_t dm_cli_commands[];
extern const int dm_cli_n_commands;

/* Entry point of the datamesh binary. */
int dm_cli_main(int argc, char **argv);

/* True when argv holds -h or --help (before a "--"). */
bool dm_cli_wants_help(int argc, char **argv);

/* Prints "datamesh NAME: message" to stderr. */
void dm_cli_errorf(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Subcommands implemented so far. */
int dm_cmd_up(int argc, char **argv);
int dm_cmd_alerts(int argc, char **argv);      /* cli/cmd_alerts.c */
int dm_cmd_deadletters(int argc, char **argv); /* cli/cmd_deadletters.c */
int dm_cmd_worker(int argc, char **argv);      /* cli/cmd_worker.c */
int dm_cmd_log(int argc, char **argv);         /* cli/cmd_log.c */
int dm_cmd_schema(int argc, char **argv);
int dm_cmd_avro(int argc, char **argv);
int dm_cmd_iceberg(int argc, char **argv); /* cli/cmd_iceberg.c */
int dm_cmd_apply(int argc, char **argv);
int dm_cmd_get(int argc, char **argv);
int dm_cmd_describe(int argc, char **argv);
int dm_cmd_delete(int argc, char **argv);
int dm_cmd_consume(int argc, char **argv);
int dm_cmd_produce(int argc, char **argv);
int dm_cmd_snapshot(int argc, char **argv); /* cli/cmd_snapshot.c */
int dm_cmd_plugins(int argc, char **argv);  /* cli/cmd_plugins.c */
int dm_cmd_sdk(int argc, char **argv);      /* cli/cmd_sdk.c */

int dm_cmd_explain(int argc, char **argv); /* cli/cmd_explain.c */
int dm_cmd_sql(int argc, char **argv);     /* cli/cmd_sql.c */
int dm_cmd_lineage(int argc, char **argv); /* cli/cmd_lineage.c */

/* Loads the spec documents of a file or of a directory's *.yaml|yml|json files
 * (schema files inlined, each document validated; errors name file:line:col)
 * and appends them to body as a YAML stream; *count grows by how many
 * (cli/cmd_apply.c). where (may be NULL) receives, per "Kind name", the
 * file:line:col of each field path of the document, for the server's errors
 * (dm_cli_locate_error). */
dm_err_t dm_cli_add_specs(const char *path, dm_buf_t *body, size_t *count, json_t *where,
                          dm_error_t *err);

/* Prefixes a server error about a document ("Source x: spec.schema: …") with
 * the file:line:col of that path (or its nearest located parent) from where
 * (filled by dm_cli_add_specs); other messages are left as they are. */
void dm_cli_locate_error(const json_t *where, dm_error_t *err);

int dm_cmd_token(int argc, char **argv); /* cli/cmd_token.c */
int dm_cmd_audit(int argc, char **argv); /* cli/cmd_audit.c */

/* Milliseconds since the epoch as an ISO-8601 UTC time ("-" for 0) into out
 * (cli/cmd_token.c). */
void dm_cli_format_ms(long long ms, char *out, size_t cap);

/* `datamesh schema register|check|list|show` (cli/cmd_schema_registry.c). */
int dm_cmd_schema_registry(int argc, char **argv);

#endif
