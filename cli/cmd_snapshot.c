/* cli/cmd_snapshot.c — `datamesh snapshot SOURCE [--table T]`: asks a running
 * postgres source for a snapshot. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

int dm_cmd_snapshot(int argc, char **argv)
{
    static const struct option longopts[] = {{"table", required_argument, NULL, 't'},
                                             {"from", required_argument, NULL, 'f'},
                                             {"to", required_argument, NULL, 'T'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL, *table = NULL, *from = NULL, *to = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 't': table = optarg; break;
        case 'f': from = optarg; break;
        case 'T': to = optarg; break;
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
                                  "[--from KEY] [--to KEY]");
        return DM_EXIT_USAGE;
    }
    char esc[512], tesc[512] = "", fesc[512] = "", toesc[512] = "", path[2400];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    if (table) dm_client_escape(table, tesc, sizeof(tesc));
    if (from) dm_client_escape(from, fesc, sizeof(fesc));
    if (to) dm_client_escape(to, toesc, sizeof(toesc));
    snprintf(path, sizeof(path), "/api/v1/sources/%s/snapshot%s%s%s%s%s%s", esc,
             table ? "?table=" : "", tesc, from ? "&from=" : "", fesc, to ? "&to=" : "", toesc);
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(dm_client_server(server), "POST", path, NULL, 0, &status, &resp, &err)) {
        dm_cli_errorf("snapshot", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    printf("snapshot of %s requested for source %s; follow it with `datamesh describe Source "
           "%s`\n",
           table ? table : "every table", argv[optind], argv[optind]);
    json_decref(resp);
    return DM_EXIT_OK;
}
