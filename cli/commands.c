/* cli/commands.c — the one list of datamesh subcommands. Adding a command is
 * one entry here plus its cli/cmd_<name>.c. */
#include "cli/cli.h"

#include <stddef.h>

const dm_cli_command_t dm_cli_commands[] = {
    {"up", "start the controller and workers on this machine",
     "usage: datamesh up [--data DIR] [--listen HOST:PORT] [--demo]\n"
     "                   [--transport kafka://HOST:PORT[,HOST:PORT...]] [--external-workers]\n"
     "                   [--state-memory SIZE] [--auth] [--insecure]\n"
     "                   [--tls-cert FILE.pem --tls-key FILE.pem] [--openlineage URL]\n"
     "                   [--alert-webhook URL] [--alert-interval DURATION]\n"
     "\n"
     "Starts the control plane (API, catalog, schema registry) and the workers in one\n"
     "process. State lives in the data directory. SIGINT or SIGTERM stops it cleanly.\n"
     "\n"
     "  --data DIR          data directory (default ./.datamesh)\n"
     "  --listen HOST:PORT  API and UI address (default 127.0.0.1:8080)\n"
     "  --demo              load the demo sources and pipeline\n"
     "  --transport URL     run every topic on Kafka (default: the embedded log)\n"
     "  --external-workers  leave pipeline tasks to `datamesh worker` processes\n"
     "  --state-memory SIZE keyed state all pipelines may keep in memory before it spills\n"
     "                      to RocksDB (default 1GiB)\n"
     "  --auth              require API tokens; the first start writes an admin token to\n"
     "                      DIR/admin.token (mode 0600). See docs/security.md\n"
     "  --insecure          allow a non-loopback --listen without --auth\n"
     "  --tls-cert FILE     serve HTTPS with this PEM certificate (chain) ...\n"
     "  --tls-key FILE      ... and its PEM private key\n"
     "  --openlineage URL   send OpenLineage run events (START, RUNNING, COMPLETE) with\n"
     "                      column lineage for every pipeline and source: http(s)://...\n"
     "                      (POST, e.g. Marquez's /api/v1/lineage) or file:///path (JSON lines)\n"
     "  --alert-webhook URL send alerts that fire and resolve there, in Alertmanager's webhook\n"
     "                      format, with retries (see docs/alerts.md)\n"
     "  --alert-interval D  how often the alert rules are evaluated (default 15s)\n",
     dm_cmd_up},
    {"apply", "create or update sources, pipelines, processors and sinks from specs",
     "usage: datamesh apply -f FILE|DIR [-f ...] [--dry-run] [--server URL]\n"
     "\n"
     "Validates the spec documents locally (errors name file:line:column), then applies\n"
     "them all or none. --dry-run prints the plan and changes nothing. The server is\n"
     "--server, else $DATAMESH_SERVER, else http://127.0.0.1:8080.\n",
     dm_cmd_apply},
    {"get", "list objects of a kind",
     "usage: datamesh get KIND [NAME] [-o table|json|yaml] [--server URL]\n"
     "KIND: sources, pipelines, processors, sinks\n",
     dm_cmd_get},
    {"describe", "show one object in detail, with its status",
     "usage: datamesh describe KIND NAME [-o yaml|json] [--server URL]\n", dm_cmd_describe},
    {"delete", "delete an object",
     "usage: datamesh delete KIND NAME [--server URL]\n"
     "A source that pipelines read is refused with their names.\n",
     dm_cmd_delete},
    {"produce", "send JSON records to an ingest source",
     "usage: datamesh produce SOURCE [--batch N] [--server URL] < records.jsonl\n"
     "\n"
     "Reads one JSON object per line and writes them to an ingest source, N per\n"
     "request (default 500); each request is validated and written all or nothing.\n",
     dm_cmd_produce},
    {"consume", "print a source's records as JSON lines",
     "usage: datamesh consume SOURCE [--from-beginning] [-n N] [-f] [-o json] [--with-metadata]\n"
     "\n"
     "Prints one JSON object per record (Avro decoded to plain JSON). Without\n"
     "--from-beginning it starts at the end; -f keeps following; -n stops after N.\n"
     "--with-metadata prints {partition, offset, timestamp, key, value}.\n",
     dm_cmd_consume},
    {"snapshot", "snapshot a postgres source's tables (DBLog chunks, no locks)",
     "usage: datamesh snapshot SOURCE [--table SCHEMA.TABLE [--from KEY] [--to KEY]] "
     "[--wait | --status] [--server URL]\n"
     "\n"
     "Asks the running postgres source for a snapshot of one table (default: every\n"
     "table it captures), or of the rows with FROM <= key <= TO (a composite key as a\n"
     "JSON array: --from '[1, \"a\"]'). --wait follows the progress (rows, chunks, %)\n"
     "until it is done; --status only shows the snapshots in progress.\n",
     dm_cmd_snapshot},
    {"explain", "show the plan a pipeline runs: stages, fused chains, topics, schemas",
     "usage: datamesh explain PIPELINE | -f FILE|DIR [-o text|json] [--server URL]\n"
     "\n"
     "Prints what the pipeline compiles to: its stages (a task per input partition each),\n"
     "the fused chain of steps of each with the input fields they read, the topics and\n"
     "schema ids it reads and writes, its state, re-keying and sinks. With -f, the\n"
     "pipelines of a spec file as they would run if applied (nothing is applied).\n",
     dm_cmd_explain},
    {"plugins", "list the source connectors, sinks and processors with their settings",
     "usage: datamesh plugins [-o table|json|yaml] [--docs]\n"
     "\n"
     "Lists every source connector, sink type and processor (pipeline step) this\n"
     "binary has, with a summary and its settings: key, type, default, range and help,\n"
     "as declared by the plugin and enforced when a spec is applied. Works without a\n"
     "controller (GET /api/v1/plugins answers the same). --docs prints the Markdown\n"
     "reference instead (docs/plugins-reference.md).\n",
     dm_cmd_plugins},
    {"sql", "run streaming SQL: push queries, CREATE SOURCE … AS SELECT, EXPLAIN, …",
     "usage: datamesh sql \"STATEMENT\" | -f FILE.sql [-o table|json] [-n N] [--from-beginning]\n"
     "                    [--server URL]\n"
     "SELECT runs a push query (a temporary pipeline, deleted on exit) and prints its rows\n"
     "as they come: of the records appended to its sources from then on, or with\n"
     "--from-beginning of all their records. CREATE SOURCE name [WITH (owner = 'team',\n"
     "description = '...')] AS SELECT ... applies a pipeline publishing it; DROP SOURCE,\n"
     "EXPLAIN SELECT ..., SHOW SOURCES, DESCRIBE name. See docs/sql.md.\n",
     dm_cmd_sql},
    {"alerts", "show pending, firing and resolved alerts; the rules; dashboards",
     "usage: datamesh alerts [--state pending|firing|resolved] [-o table|json] [--server URL]\n"
     "       datamesh alerts rules                 the Prometheus rules file for the catalog\n"
     "       datamesh alerts dashboard PIPELINE    its Grafana dashboard (JSON)\n"
     "\n"
     "Every pipeline and source has default alert rules (lag, stalled, dead letters,\n"
     "restart loop, failed, stale sink commit; source lag, slot WAL, stopped), tuned per\n"
     "object with spec.alerts. The controller evaluates them itself; see docs/alerts.md.\n",
     dm_cmd_alerts},
    {"lineage", "show which pipelines read and write which sources and fields",
     "usage: datamesh lineage NODE [--upstream|--downstream|--both] [--depth N]\n"
     "                        [-o table|json|dot] [--server URL]\n"
     "\n"
     "NODE is a source (plays), a field of one (plays.country; nested: orders.after.id),\n"
     "a pipeline (us-plays), or a node id from an earlier answer (pipeline:us-plays,\n"
     "sink:us-plays/sink/0). --downstream answers \"what breaks if I change this\": every\n"
     "pipeline, derived field and sink column that depends on it, directly or through\n"
     "other pipelines; --upstream where it comes from; --both (the default) both.\n"
     "Edges use OpenLineage's vocabulary: DIRECT (IDENTITY, TRANSFORMATION, AGGREGATION),\n"
     "INDIRECT (FILTER, JOIN, GROUP_BY, WINDOW, SORT), and DATASET (INPUT, OUTPUT,\n"
     "CAPTURE) between sources, pipelines, sinks and captured tables.\n"
     "  --depth N  follow at most N edges (default: no limit)\n"
     "  -o dot     Graphviz: datamesh lineage plays -o dot | dot -Tsvg > plays.svg\n",
     dm_cmd_lineage},
    {"schema", "register, check and inspect Avro schemas",
     "usage: datamesh schema compat --level LEVEL NEW.avsc OLD.avsc [OLDER.avsc ...]\n"
     "       datamesh schema fingerprint FILE.avsc\n"
     "       datamesh schema register SUBJECT FILE.avsc [--server URL]\n"
     "       datamesh schema check SUBJECT FILE.avsc   (exit 0 compatible, 1 not)\n"
     "       datamesh schema list\n"
     "       datamesh schema show SUBJECT [VERSION]\n"
     "compat and fingerprint work offline; the others use the controller's registry.\n",
     dm_cmd_schema},
    {"avro", "read and write Avro container files",
     "usage: datamesh avro cat [--reader-schema S.avsc] [--fields a,b.c] [--avro-json] FILE.avro\n"
     "       datamesh avro write --schema S.avsc [--codec C] < records.jsonl > out.avro\n",
     dm_cmd_avro},
    {"iceberg", "maintain Iceberg tables the iceberg sink writes",
     "usage: datamesh iceberg compact NAMESPACE.TABLE warehouse=DIR [catalog=file|sqlite]\n"
     "                                [catalog_uri=FILE] [target_file_size=SIZE] [key=value ...]\n"
     "\n"
     "Rewrites every live data file of the table with its equality deletes applied,\n"
     "as one replace snapshot committed through the catalog. Settings are the iceberg\n"
     "sink's (docs/iceberg.md).\n",
     dm_cmd_iceberg},
    {"log", "inspect the embedded log's data directory without a controller",
     "usage: datamesh log topics|describe|dump --data DIR ...\n", dm_cmd_log},
    {"token", "create, list and revoke API tokens (admins)",
     "usage: datamesh token create --owner TEAM --role viewer|editor|admin|worker [--expires 30d]\n"
     "                             [--description TEXT] [--server URL]\n"
     "       datamesh token list [-o table|json|yaml] [--server URL]\n"
     "       datamesh token revoke ID [--server URL]\n"
     "\n"
     "create prints the new token alone on its last line (shown once; only its hash is\n"
     "stored). Send it with --token TOKEN or $DATAMESH_TOKEN, or as\n"
     "`Authorization: Bearer TOKEN`. --expires takes d, h, m or s.\n",
     dm_cmd_token},
    {"audit", "show the audit log: who changed what, when, from where (admins)",
     "usage: datamesh audit [--since 1h] [--who TEAM|TOKEN_ID] [--outcome ok|denied|failed]\n"
     "                      [-n N] [-o table|json|yaml] [--server URL]\n"
     "\n"
     "Every mutating request, every refused one and every read of a sensitive source's\n"
     "records, newest N (default 100) oldest first.\n",
     dm_cmd_audit},
    {"bench", "run a built-in benchmark", "usage: datamesh bench NAME\n", NULL},
    {"worker", "run tasks for a remote controller (distributed mode)",
     "usage: datamesh worker --controller URL [--transport URL] [--id NAME]\n"
     "\n"
     "Takes the pipelines of a controller started with --transport kafka://...\n"
     "--external-workers and runs their tasks. Workers share each pipeline's input\n"
     "partitions through its Kafka consumer group; when one stops or dies, the others\n"
     "take its partitions over from the committed offsets. Reports its status to the\n"
     "controller (GET /api/v1/workers). SIGINT or SIGTERM leaves the groups cleanly.\n"
     "\n"
     "  --controller URL  the controller's API (default $DATAMESH_SERVER, else\n"
     "                    http://127.0.0.1:8080)\n"
     "  --transport URL   the Kafka cluster (default: the controller's)\n"
     "  --id NAME         this worker's name in reports (default host-pid)\n",
     dm_cmd_worker},
    {"deadletters", "list a pipeline's dead letters; replay them after a fix",
     "usage: datamesh deadletters PIPELINE [-n N] [-o table|json] [--server URL]\n"
     "       datamesh deadletters replay PIPELINE (P:O ... | --reason TEXT | --all) [--force]\n"
     "\n"
     "Lists the newest N (default 100) dead letters: their position P:O in the dead-letter\n"
     "topic, reason, step and input position, and whether they were replayed. replay puts\n"
     "the chosen ones (or every one whose reason contains TEXT, or all) back through the\n"
     "pipeline as it is now; each is replayed once unless --force. See docs/deadletters.md.\n",
     dm_cmd_deadletters},
    {"sdk", "scaffold a processor project; print the SDK header directory",
     "usage: datamesh sdk new NAME DIR | datamesh sdk include\n"
     "\n"
     "new writes DIR/NAME.c (a processor that passes records through, with where to\n"
     "change them), a Makefile (`make -C DIR` builds DIR/NAME.so, `make -C DIR test`\n"
     "runs it through a small host), the test and a README with the specs that use it.\n"
     "include prints the directory holding datamesh/processor.h (and emitter.h).\n",
     dm_cmd_sdk},
};

const int dm_cli_n_commands = (int)(sizeof(dm_cli_commands) / sizeof(dm_cli_commands[0]));
