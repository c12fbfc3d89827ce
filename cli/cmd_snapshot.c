/* cli/cmd_snapshot.c — `datamesh snapshot SOURCE [--table T [--from K] [--to K]]
 * [--wait | --status]`: asks a running postgres source for a snapshot, and
 * shows snapshot progress (rows, chunks, %) from the source's status. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/clock.h"

/* Prints the snapshots in progress of the source's postgres units; returns
 * how many there are (queued requests included), -1 on error. */
static int show_progress(const char *server, const char *esc, const char *source, bool quiet_idle)
{
    char path[700];
    snprintf(path, sizeof(path), "/api/v1/sources/%s/status", esc);
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(server, "GET", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("snapshot", "%s", err.message);
        return -1;
    }
    int busy = 0;
    size_t i, j;
    json_t *u, *s;
    json_array_foreach(json_object_get(resp, "units"), i, u)
    {
        json_t *pg = json_object_get(u, "postgres");
        if (!pg) continue;
        json_array_foreach(json_object_get(pg, "snapshots"), j, s)
        {
            printf("%s %s: %lld rows, %lld chunks, %.1f%% of about %lld rows\n", source,
                   json_string_value(json_object_get(s, "table")),
                   (long long)json_integer_value(json_object_get(s, "rows")),
                   (long long)json_integer_value(json_object_get(s, "chunks")),
                   json_number_value(json_object_get(s, "percent")),
                   (long long)json_integer_value(json_object_get(s, "estimated_rows")));
            busy++;
        }
        busy += (int)json_array_size(json_object_get(pg, "snapshot_requests"));
    }
    if (!busy && !quiet_idle) printf("%s: no snapshot in progress\n", source);
    fflush(stdout);
    json_decref(resp);
    return busy;
}

int dm_cmd_snapshot(int argc, char **argv)
{
    static const struct option longopts[] = {{"table", required_argument, NULL, 't'},
                                             {"from", required_argument, NULL, 'f'},
                                             {"to", required_argument, NULL, 'T'},
                                             {"wait", no_argument, NULL, 'w'},
                                             {"status", no_argument, NULL, 'S'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL, *table = NULL, *from = NULL, *to = NULL;
    bool wait = false, only_status = false;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 't': table = optarg; break;
        case 'f': from = optarg; break;
        case 'T': to = optarg; break;
        case 'w': wait = true; break;
        case 'S': only_status = true; break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if ((from || to) && !table) {
        dm_cli_errorf("snapshot", "--from and --to need --table");
        return DM_EXIT_USAGE;
    }
    if (argc - optind != 1) {
        dm_cli_errorf("snapshot", "usage: datamesh snapshot SOURCE [--table SCHEMA.TABLE] "
                                  "[--from KEY] [--to KEY] [--wait | --status]");
        return DM_EXIT_USAGE;
    }
    const char *source = argv[optind];
    char esc[512], tesc[512] = "", fesc[512] = "", toesc[512] = "", path[2400];
    dm_client_escape(source, esc, sizeof(esc));
    server = dm_client_server(server);
    if (only_status) return show_progress(server, esc, source, false) < 0 ? DM_EXIT_FAILED : 0;
    if (table) dm_client_escape(table, tesc, sizeof(tesc));
    if (from) dm_client_escape(from, fesc, sizeof(fesc));
    if (to) dm_client_escape(to, toesc, sizeof(toesc));
    snprintf(path, sizeof(path), "/api/v1/sources/%s/snapshot%s%s%s%s%s%s", esc,
             table ? "?table=" : "", tesc, from ? "&from=" : "", fesc, to ? "&to=" : "", toesc);
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(server, "POST", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("snapshot", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    json_decref(resp);
    printf("snapshot of %s requested for source %s\n", table ? table : "every table", source);
    if (!wait) return DM_EXIT_OK;
    /* Follow the progress until nothing is left to read. */
    for (;;) {
        dm_sleep_ms(500);
        int busy = show_progress(server, esc, source, true);
        if (busy < 0) return DM_EXIT_FAILED;
        if (!busy) break;
    }
    printf("snapshot of %s done\n", table ? table : "every table");
    return DM_EXIT_OK;
}
