/* cli/cmd_produce.c — `datamesh produce SOURCE < records.jsonl`: sends JSON
 * records (one per line, or one JSON array) to an ingest source, in batches;
 * each batch is validated and written all or nothing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/buf.h"

static int send_batch(const char *server, const char *path, dm_buf_t *batch, size_t count,
                      size_t first_line, long *sent)
{
    if (!count) return DM_EXIT_OK;
    dm_buf_append_u8(batch, ']');
    long status;
    json_t *resp;
    dm_error_t err = {0};
    if (dm_client_call(server, "POST", path, (const char *)batch->data, batch->len, &status, &resp,
                       &err)) {
        dm_cli_errorf("produce", "lines %zu-%zu: %s", first_line, first_line + count - 1,
                      err.message);
        return DM_EXIT_FAILED;
    }
    *sent += (long)json_integer_value(json_object_get(resp, "accepted"));
    json_decref(resp);
    return DM_EXIT_OK;
}

int dm_cmd_produce(int argc, char **argv)
{
    static const struct option longopts[] = {{"batch", required_argument, NULL, 'b'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL;
    long batch_size = 500;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'b':
            batch_size = strtol(optarg, NULL, 10);
            if (batch_size < 1 || batch_size > 10000) {
                dm_cli_errorf("produce", "--batch %s: expected 1 to 10000", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        dm_cli_errorf("produce", "usage: datamesh produce SOURCE [--batch N] < records.jsonl");
        return DM_EXIT_USAGE;
    }
    char esc[512], path[700];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    snprintf(path, sizeof(path), "/api/v1/sources/%s/events", esc);
    server = dm_client_server(server);
    dm_buf_t batch = DM_BUF_INIT;
    char *line = NULL;
    size_t cap = 0, count = 0, line_no = 0, first = 1;
    long sent = 0;
    ssize_t len;
    int rc = DM_EXIT_OK;
    while (rc == DM_EXIT_OK && (len = getline(&line, &cap, stdin)) != -1) {
        line_no++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len) continue;
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        if (!j) {
            dm_cli_errorf("produce", "line %zu: not JSON: column %d: %s", line_no, jerr.column,
                          jerr.text);
            rc = DM_EXIT_FAILED;
            break;
        }
        json_decref(j);
        dm_buf_append_str(&batch, count ? "," : "[");
        dm_buf_append(&batch, line, (size_t)len);
        if (++count == (size_t)batch_size) {
            rc = send_batch(server, path, &batch, count, first, &sent);
            dm_buf_reset(&batch);
            count = 0;
            first = line_no + 1;
        }
    }
    if (rc == DM_EXIT_OK) rc = send_batch(server, path, &batch, count, first, &sent);
    free(line);
    dm_buf_free(&batch);
    fprintf(stderr, "datamesh produce: %ld record(s) written to %s\n", sent, argv[optind]);
    return rc;
}
