/* cli/cmd_sql.c — `datamesh sql "STATEMENT" | -f FILE.sql`: streaming SQL
 * through the controller's API (docs/sql.md).
 *
 *   SELECT …     a push query: a temporary pipeline publishing its rows (checked
 *                first with POST /api/v1/plan), whose rows are printed as they
 *                come; deleted on exit (Ctrl-C, -n N)
 *   the others   POST /api/v1/sql, one statement at a time (CREATE SOURCE … AS,
 *                DROP SOURCE, EXPLAIN, SHOW SOURCES, DESCRIBE)
 * The script is parsed here first, so syntax errors show at line:col before
 * anything runs; the controller checks columns against the registry. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/output.h"
#include "core/buf.h"
#include "sql/sql.h"

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct opts {
    const char *server;
    bool json;
    long count;
    bool from_beginning; /* a push query reads its sources from their beginning, not their end */
} opts_t;

/* A Pipeline document running query and publishing source name; start:
 * "earliest" or "latest" (spec.start), NULL to leave it out. */
static char *pipeline_doc(const char *name, const char *owner, const char *description,
                          const char *query, const char *start)
{
    json_t *meta = json_pack("{s:s, s:s}", "name", name, "owner", owner ? owner : "sql");
    if (description) json_object_set_new(meta, "description", json_string(description));
    json_t *doc = json_pack("{s:s, s:o, s:{s:s, s:[{s:s}]}}", "kind", "Pipeline", "metadata", meta,
                            "spec", "sql", query, "to", "source", name);
    if (start) json_object_set_new(json_object_get(doc, "spec"), "start", json_string(start));
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static int call(const opts_t *o, const char *method, const char *path, const char *body,
                json_t **resp)
{
    long status;
    dm_error_t err = {0};
    *resp = NULL;
    if (dm_client_call(dm_client_server(o->server), method, path, body, body ? strlen(body) : 0,
                       &status, resp, &err)) {
        dm_cli_errorf("sql", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    return DM_EXIT_OK;
}

/* One row: JSON, or the values in columns of 24 characters (a header first). */
static void print_row(const opts_t *o, const json_t *row, bool *header)
{
    if (o->json) {
        char *line = json_dumps(row, JSON_COMPACT | JSON_ENCODE_ANY);
        if (line) puts(line);
        free(line);
        return;
    }
    const char *k;
    json_t *v;
    if (!*header) {
        json_object_foreach((json_t *)row, k, v) printf("%-24.24s ", k);
        putchar('\n');
        *header = true;
    }
    json_object_foreach((json_t *)row, k, v)
    {
        char *s = json_is_string(v) ? strdup(json_string_value(v))
                                    : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("%-24.24s ", s ? s : "");
        free(s);
    }
    putchar('\n');
}

/* A push query: a temporary pipeline whose output is printed until Ctrl-C
 * or -n rows, then deleted. Its records are read from the beginning of the
 * sources (a new pipeline starts there). */
static int push_query(const opts_t *o, const char *query, const char *in_place)
{
    char name[96];
    snprintf(name, sizeof(name), "sql-query-%ld-%ld", (long)getpid(), (long)time(NULL));
    const char *start = o->from_beginning ? "earliest" : "latest";
    char *doc = pipeline_doc(name, NULL, "a push query of datamesh sql (deleted when it ends)",
                             query, start);
    json_t *resp;
    /* errors before anything is made, at line:col of the script */
    char *check = pipeline_doc(name, NULL, NULL, in_place ? in_place : query, start);
    int rc = call(o, "POST", "/api/v1/plan", check, &resp);
    free(check);
    json_decref(resp);
    if (!rc) rc = call(o, "POST", "/api/v1/apply", doc, &resp);
    free(doc);
    if (rc) return rc;
    json_decref(resp);
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    signal(SIGPIPE, SIG_IGN);
    dm_buf_t positions = DM_BUF_INIT;
    long printed = 0;
    bool first = true, header = false;
    while (!interrupted && (o->count < 0 || printed < o->count)) {
        long want = o->count > 0 ? o->count - printed : 500;
        if (want > 500) want = 500;
        char path[2048];
        const char *pos = "";
        dm_buf_cstr(&positions, &pos);
        snprintf(path, sizeof(path),
                 "/api/v1/sources/%s/records?limit=%ld&timeout_ms=500&from=earliest%s%s", name,
                 want, first ? "" : "&positions=", first ? "" : pos);
        long status;
        dm_error_t err = {0};
        if (dm_client_call(dm_client_server(o->server), "GET", path, NULL, 0, &status, &resp,
                           &err)) {
            if (err.code == DM_ERR_NOT_FOUND || status == 404) { /* not started yet */
                usleep(200000);
                continue;
            }
            dm_cli_errorf("sql", "%s", err.message);
            rc = DM_EXIT_FAILED;
            break;
        }
        first = false;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(resp, "records"), i, r)
        {
            print_row(o, json_object_get(r, "value"), &header);
            printed++;
        }
        fflush(stdout);
        dm_buf_reset(&positions);
        const char *p;
        json_t *x;
        json_object_foreach(json_object_get(resp, "positions"), p, x) dm_buf_printf(
            &positions, "%s%s:%lld", positions.len ? "," : "", p, (long long)json_integer_value(x));
        json_decref(resp);
        if (ferror(stdout)) break;
    }
    dm_buf_free(&positions);
    /* clean up: the pipeline and the source it published */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/pipelines/%s", name);
    if (!call(o, "DELETE", path, NULL, &resp)) json_decref(resp);
    snprintf(path, sizeof(path), "/api/v1/sources/%s", name);
    long status;
    dm_error_t ignore = {0};
    resp = NULL;
    dm_client_call(dm_client_server(o->server), "DELETE", path, NULL, 0, &status, &resp, &ignore);
    json_decref(resp);
    return rc;
}

/* A statement as text again ('' in strings), to send on its own. */
static void stmt_text(const dm_sql_stmt_t *st, dm_buf_t *b)
{
    switch (st->kind) {
    case DM_SQL_CREATE_SOURCE:
        dm_buf_printf(b, "CREATE SOURCE \"%s\"", st->name);
        if (st->owner || st->description) {
            const char *keys[] = {"owner", "description"}, *vals[] = {st->owner, st->description};
            bool first = true;
            dm_buf_append_str(b, " WITH (");
            for (int k = 0; k < 2; k++) {
                if (!vals[k]) continue;
                dm_buf_printf(b, "%s%s = '", first ? "" : ", ", keys[k]);
                for (const char *c = vals[k]; *c; c++)
                    dm_buf_append_str(b, *c == '\'' ? "''" : (char[]){*c, 0});
                dm_buf_append_str(b, "'");
                first = false;
            }
            dm_buf_append_str(b, ")");
        }
        dm_buf_printf(b, " AS %s", st->query);
        break;
    case DM_SQL_DROP_SOURCE: dm_buf_printf(b, "DROP SOURCE \"%s\"", st->name); break;
    case DM_SQL_DESCRIBE: dm_buf_printf(b, "DESCRIBE \"%s\"", st->name); break;
    case DM_SQL_SHOW_SOURCES: dm_buf_append_str(b, "SHOW SOURCES"); break;
    case DM_SQL_EXPLAIN: dm_buf_printf(b, "EXPLAIN %s", st->query); break;
    case DM_SQL_SELECT: dm_buf_append_str(b, st->query); break;
    }
}

static void print_result(const opts_t *o, const json_t *r)
{
    const char *kind = json_string_value(json_object_get(r, "kind"));
    if (!kind) return;
    if (!strcmp(kind, "explain")) {
        if (o->json)
            dm_out_json(stdout, json_object_get(r, "plan"));
        else
            fputs(json_string_value(json_object_get(r, "explain")) ?: "", stdout);
    } else if (!strcmp(kind, "create source") || !strcmp(kind, "drop source")) {
        printf("%s %s (pipeline %s)\n",
               !strcmp(kind, "create source") ? "created source" : "dropped source",
               json_string_value(json_object_get(r, "source")),
               json_string_value(json_object_get(r, "pipeline")));
    } else if (!strcmp(kind, "show sources") && !o->json) {
        printf("%-28s %-16s %s\n", "NAME", "OWNER", "DESCRIPTION");
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(r, "sources"), i, s)
        {
            const json_t *meta = json_object_get(s, "metadata");
            const char *name = json_string_value(json_object_get(s, "name"));
            if (!name) name = json_string_value(json_object_get(meta, "name"));
            const char *owner = json_string_value(json_object_get(s, "owner"));
            if (!owner) owner = json_string_value(json_object_get(meta, "owner"));
            const char *desc = json_string_value(json_object_get(s, "description"));
            if (!desc) desc = json_string_value(json_object_get(meta, "description"));
            printf("%-28s %-16s %s\n", name ? name : "?", owner ? owner : "", desc ? desc : "");
        }
    } else {
        dm_out_json(stdout, !strcmp(kind, "describe")       ? json_object_get(r, "source")
                            : !strcmp(kind, "show sources") ? json_object_get(r, "sources")
                                                            : r);
    }
}

/* A statement other than a push query: POST /api/v1/sql with its text. */
static int run(const opts_t *o, const dm_sql_stmt_t *st)
{
    if (st->kind == DM_SQL_SELECT) {
        char *in_place = dm_sql_stmt_query_in_place(st);
        int rc = push_query(o, st->query, in_place);
        free(in_place);
        return rc;
    }
    dm_buf_t b = DM_BUF_INIT;
    stmt_text(st, &b);
    const char *text = "";
    dm_buf_cstr(&b, &text);
    json_t *resp = NULL;
    int rc = call(o, "POST", "/api/v1/sql", text, &resp);
    dm_buf_free(&b);
    if (!rc) print_result(o, json_array_get(json_object_get(resp, "results"), 0));
    json_decref(resp);
    return rc;
}

int dm_cmd_sql(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},   {"output", required_argument, NULL, 'o'},
        {"count", required_argument, NULL, 'n'},  {"from-beginning", no_argument, NULL, 'b'},
        {"server", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    opts_t o = {.count = -1};
    const char *file = NULL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "f:o:n:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f': file = optarg; break;
        case 'o':
            if (strcmp(optarg, "json") && strcmp(optarg, "table")) {
                dm_cli_errorf("sql", "-o %s: expected table or json", optarg);
                return DM_EXIT_USAGE;
            }
            o.json = !strcmp(optarg, "json");
            break;
        case 'n':
            o.count = strtol(optarg, NULL, 10);
            if (o.count < 1) {
                dm_cli_errorf("sql", "-n %s: expected a positive number", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'b': o.from_beginning = true; break;
        case 's': o.server = optarg; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if ((file != NULL) == (optind < argc) || argc - optind > 1) {
        dm_cli_errorf("sql", "usage: datamesh sql \"STATEMENT\" | -f FILE.sql [-o table|json] "
                             "[-n N] [--from-beginning]");
        return DM_EXIT_USAGE;
    }
    char *text = NULL;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            dm_cli_errorf("sql", "%s: cannot read it", file);
            return DM_EXIT_FAILED;
        }
        dm_buf_t b = DM_BUF_INIT;
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            dm_buf_append(&b, chunk, n);
        fclose(f);
        const char *s = "";
        dm_buf_cstr(&b, &s);
        text = strdup(s);
        dm_buf_free(&b);
    } else {
        text = strdup(argv[optind]);
    }
    dm_sql_stmt_t *st = NULL;
    size_t n = 0;
    dm_error_t err = {0};
    if (dm_sql_script_parse(text, &st, &n, &err)) {
        dm_cli_errorf("sql", "%s%s%s", file ? file : "", file ? ": " : "", err.message);
        free(text);
        return DM_EXIT_FAILED;
    }
    int rc = DM_EXIT_OK;
    for (size_t i = 0; i < n && !rc && !interrupted; i++)
        rc = run(&o, &st[i]);
    dm_sql_stmts_free(st, n);
    free(text);
    return rc;
}
