/* cli/cmd_consume.c — `datamesh consume SOURCE [--from-beginning] [-n N] [-f] [-o json]`:
 * prints one JSON object per line (Avro decoded to plain JSON).
 *
 * The controller writes each record's line straight from its Avro bytes (the
 * records API's format=values, or format=jsonl with --with-metadata); the lines
 * are copied to stdout as they came, unparsed. Only the last line of each
 * answer, the partitions' next positions, is read here. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "core/buf.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

int dm_cmd_consume(int argc, char **argv)
{
    static const struct option longopts[] = {{"from-beginning", no_argument, NULL, 'b'},
                                             {"follow", no_argument, NULL, 'f'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"output", required_argument, NULL, 'o'},
                                             {"with-metadata", no_argument, NULL, 'm'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL;
    bool beginning = false, follow = false, meta = false;
    long count = -1;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "fn:o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'b': beginning = true; break;
        case 'f': follow = true; break;
        case 'n':
            count = strtol(optarg, NULL, 10);
            if (count < 1) {
                dm_cli_errorf("consume", "-n %s: expected a positive number", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'o':
            if (strcmp(optarg, "json") != 0) {
                dm_cli_errorf("consume", "-o %s: the only output format is json", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'm': meta = true; break;
        case 's': server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        dm_cli_errorf("consume", "usage: datamesh consume SOURCE [--from-beginning] [-n N] [-f]");
        return DM_EXIT_USAGE;
    }
    char esc[512];
    dm_client_escape(argv[optind], esc, sizeof(esc));
    signal(SIGINT, on_sigint);
    signal(SIGPIPE, SIG_IGN);
    dm_buf_t positions = DM_BUF_INIT;
    long printed = 0;
    bool first = true;
    while (!interrupted) {
        long want = count > 0 ? count - printed : 1000;
        if (want > 1000) want = 1000;
        char path[2048];
        const char *pos = "";
        dm_buf_cstr(&positions, &pos);
        snprintf(path, sizeof(path),
                 "/api/v1/sources/%s/records?format=%s&limit=%ld&timeout_ms=%d&from=%s%s%s", esc,
                 meta ? "jsonl" : "values", want, follow ? 1000 : 0,
                 beginning ? "earliest" : "latest", first ? "" : "&positions=", first ? "" : pos);
        dm_buf_t body = DM_BUF_INIT;
        dm_error_t err = {0};
        if (dm_client_get_text(dm_client_server(server), path, &body, &err)) {
            dm_cli_errorf("consume", "%s", err.message);
            dm_buf_free(&body);
            dm_buf_free(&positions);
            return DM_EXIT_FAILED;
        }
        first = false;
        /* every line but the last is a record; the last holds the positions */
        const char *text = (const char *)body.data;
        size_t len = body.len;
        while (len && text[len - 1] == '\n')
            len--;
        const char *nl = len ? memrchr(text, '\n', len) : NULL;
        size_t records_len = nl ? (size_t)(nl - text) + 1 : 0;
        const char *last = text ? text + records_len : "";
        json_t *tail = json_loadb(last, len - records_len, 0, NULL);
        json_t *at = json_object_get(tail, "positions");
        if (!json_is_object(at) || json_object_get(tail, "records")) {
            /* "records" in it: a controller that does not know format= sent one JSON answer */
            dm_cli_errorf("consume",
                          "GET %s: the answer does not end with the positions line (a "
                          "controller older than this datamesh?)",
                          path);
            json_decref(tail);
            dm_buf_free(&body);
            dm_buf_free(&positions);
            return DM_EXIT_FAILED;
        }
        long got = 0;
        for (size_t i = 0; i < records_len; i++)
            got += text[i] == '\n';
        if (records_len) fwrite(text, 1, records_len, stdout);
        printed += got;
        fflush(stdout);
        /* Remember where each partition stopped. */
        dm_buf_reset(&positions);
        const char *p;
        json_t *o;
        json_object_foreach(at, p, o) dm_buf_printf(
            &positions, "%s%s:%lld", positions.len ? "," : "", p, (long long)json_integer_value(o));
        json_decref(tail);
        dm_buf_free(&body);
        if (count > 0 && printed >= count) break;
        if (!follow && got == 0) break;
        if (ferror(stdout)) break;
    }
    dm_buf_free(&positions);
    return DM_EXIT_OK;
}
