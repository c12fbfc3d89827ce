/* cli/cmd_apply.c — `datamesh apply -f FILE|DIR [--dry-run]`.
 *
 * Reads spec files (a directory: its *.yaml, *.yml and *.json in name order),
 * reads `schema: {file: …}` references relative to the spec file, validates
 * every document locally so errors name the user's file:line:col, then sends
 * them to the controller in one request: all applied or none.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "control/spec.h"
#include "control/yaml.h"
#include "core/buf.h"

#define MAX_SPEC_FILE (64u << 20)

static dm_err_t read_file(const char *path, dm_buf_t *out, dm_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return dm_error_set(err, DM_ERR_IO, "%s: %s", path, strerror(errno));
    char chunk[65536];
    size_t n;
    dm_err_t rc = DM_OK;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && !rc) {
        if (out->len + n > MAX_SPEC_FILE)
            rc = dm_error_set(err, DM_ERR_RANGE, "%s: larger than %u bytes", path, MAX_SPEC_FILE);
        else
            rc = dm_buf_append(out, chunk, n);
    }
    if (!rc && ferror(f)) rc = dm_error_set(err, DM_ERR_IO, "%s: read error", path);
    fclose(f);
    return rc;
}

/* Replaces spec.schema {file: X} by the JSON in X (relative to the spec file). */
static dm_err_t inline_schema(dm_spec_doc_t *doc, const char *spec_path, dm_error_t *err)
{
    json_t *spec = json_object_get(doc->root, "spec");
    json_t *schema = json_object_get(spec, "schema");
    const json_t *file = json_object_get(schema, "file");
    if (!json_is_string(file) || json_object_size(schema) != 1) return DM_OK;
    char dir_buf[4096], path[8192];
    snprintf(dir_buf, sizeof(dir_buf), "%s", spec_path);
    const char *name = json_string_value(file);
    if (name[0] == '/')
        snprintf(path, sizeof(path), "%s", name);
    else
        snprintf(path, sizeof(path), "%s/%s", dirname(dir_buf), name);
    dm_buf_t text = DM_BUF_INIT;
    dm_err_t rc = read_file(path, &text, err);
    if (!rc) {
        json_error_t jerr;
        json_t *parsed = json_loadb((const char *)text.data, text.len, 0, &jerr);
        char loc[300];
        dm_spec_locate(doc, "spec.schema.file", loc, sizeof(loc));
        dm_avro_schema_t *avro = NULL;
        char apath[256];
        dm_error_t e = {0};
        if (!parsed)
            rc = dm_error_set(err, DM_ERR_SCHEMA_PARSE, "%s: spec.schema.file: %s:%d:%d: %s", loc,
                              path, jerr.line, jerr.column, jerr.text);
        else if ((rc = dm_spec_schema_parse(parsed, &avro, apath, sizeof(apath), &e)))
            /* The file holds the schema: name it (the Avro path is in the message). */
            dm_error_set(err, rc, "%s: spec.schema.file: %s: not a valid Avro schema: %s", loc,
                         path, e.message);
        dm_avro_schema_free(avro);
        if (parsed && !rc)
            json_object_set_new(spec, "schema", parsed);
        else
            json_decref(parsed);
    } else {
        char loc[300];
        dm_spec_locate(doc, "spec.schema.file", loc, sizeof(loc));
        dm_error_prefix(err, "%s: spec.schema.file", loc);
    }
    dm_buf_free(&text);
    return rc;
}

static int has_spec_ext(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Records where each field path of doc was written, under "Kind name". */
static void remember_positions(const dm_spec_doc_t *doc, json_t *where)
{
    const char *kind = json_string_value(json_object_get(doc->root, "kind"));
    const char *name = dm_spec_name(doc->root);
    if (!where || !kind || !name) return;
    char key[400], loc[300];
    snprintf(key, sizeof(key), "%s %s", kind, name);
    json_t *paths = json_object();
    for (size_t i = 0; i < doc->n_pos; i++) {
        dm_spec_locate((void *)doc, doc->pos[i].path, loc, sizeof(loc));
        json_object_set_new(paths, doc->pos[i].path, json_string(loc));
    }
    dm_spec_locate((void *)doc, "", loc, sizeof(loc));
    json_object_set_new(paths, "", json_string(loc));
    json_object_set_new(where, key, paths);
}

void dm_cli_locate_error(const json_t *where, dm_error_t *err)
{
    /* "Kind name: path: message" */
    const char *msg = err->message;
    const char *sp = strchr(msg, ' ');
    const char *c1 = sp ? strstr(sp, ": ") : NULL;
    if (!where || !c1) return;
    char key[400];
    snprintf(key, sizeof(key), "%.*s", (int)(c1 - msg), msg);
    const json_t *paths = json_object_get(where, key);
    if (!paths) return;
    const char *p = c1 + 2, *c2 = strstr(p, ": ");
    char path[512] = "";
    if (c2 && !strncmp(p, "spec", 4) && !strchr("abcdefghijklmnopqrstuvwxyz", p[4]))
        snprintf(path, sizeof(path), "%.*s", (int)(c2 - p), p);
    /* the path, else its nearest parent that was written */
    const json_t *loc = NULL;
    while (!(loc = json_object_get(paths, path))) {
        char *cut = path + strlen(path);
        while (cut > path && *cut != '.' && *cut != '[')
            cut--;
        *cut = '\0';
    }
    dm_error_prefix(err, "%s", json_string_value(loc));
}

/* Loads, inlines and validates one file, appending its documents to body. */
static dm_err_t add_file(const char *path, dm_buf_t *body, size_t *count, json_t *where,
                         dm_error_t *err)
{
    dm_buf_t text = DM_BUF_INIT;
    dm_err_t rc = read_file(path, &text, err);
    dm_spec_doc_t *docs = NULL;
    size_t n = 0;
    if (!rc) rc = dm_spec_load(path, (const char *)text.data, text.len, &docs, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = inline_schema(&docs[i], path, err);
        dm_spec_t spec;
        if (!rc) rc = dm_spec_validate(&docs[i], &spec, err);
        if (rc) break;
        dm_spec_clear(&spec);
        remember_positions(&docs[i], where);
        char *json = json_dumps(docs[i].root, JSON_COMPACT);
        rc = dm_buf_printf(body, "---\n%s\n", json);
        free(json);
        (*count)++;
    }
    dm_spec_docs_free(docs, n);
    dm_buf_free(&text);
    return rc;
}

dm_err_t dm_cli_add_specs(const char *path, dm_buf_t *body, size_t *count, json_t *where,
                          dm_error_t *err)
{
    struct stat st;
    if (stat(path, &st) != 0) return dm_error_set(err, DM_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return add_file(path, body, count, where, err);
    DIR *d = opendir(path);
    if (!d) return dm_error_set(err, DM_ERR_IO, "%s: %s", path, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && has_spec_ext(e->d_name)) {
            names = realloc(names, (n + 1) * sizeof(*names));
            names[n++] = strdup(e->d_name);
        }
    closedir(d);
    qsort(names, n, sizeof(*names), cmp_str);
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < n; i++) {
        char full[8192];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]);
        if (!rc) rc = add_file(full, body, count, where, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

int dm_cmd_apply(int argc, char **argv)
{
    static const struct option longopts[] = {{"file", required_argument, NULL, 'f'},
                                             {"dry-run", no_argument, NULL, 'n'},
                                             {"server", required_argument, NULL, 's'},
                                             {NULL, 0, NULL, 0}};
    const char *server = NULL;
    bool dry = false;
    char **paths = calloc((size_t)argc, sizeof(char *));
    size_t n_paths = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "f:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f': paths[n_paths++] = optarg; break;
        case 'n': dry = true; break;
        case 's': server = optarg; break;
        default: free(paths); return DM_EXIT_USAGE;
        }
    }
    if (!n_paths || optind < argc) {
        dm_cli_errorf("apply", "usage: datamesh apply -f FILE|DIR [--dry-run] [--server URL]");
        free(paths);
        return DM_EXIT_USAGE;
    }
    dm_buf_t body = DM_BUF_INIT;
    dm_error_t err = {0};
    size_t count = 0;
    dm_err_t rc = DM_OK;
    json_t *where = json_object();
    for (size_t i = 0; i < n_paths && !rc; i++)
        rc = dm_cli_add_specs(paths[i], &body, &count, where, &err);
    free(paths);
    if (!rc && !count) rc = dm_error_set(&err, DM_ERR_INVALID, "no spec documents found");
    if (rc) {
        dm_cli_errorf("apply", "%s", err.message);
        dm_buf_free(&body);
        json_decref(where);
        return DM_EXIT_FAILED;
    }
    long status;
    json_t *resp;
    rc = dm_client_call(dm_client_server(server), "POST",
                        dry ? "/api/v1/apply?dry_run=true" : "/api/v1/apply",
                        (const char *)body.data, body.len, &status, &resp, &err);
    dm_buf_free(&body);
    if (rc) dm_cli_locate_error(where, &err);
    json_decref(where);
    if (rc) {
        dm_cli_errorf("apply", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    size_t i;
    json_t *item;
    json_array_foreach(json_object_get(resp, "plan"), i, item)
    {
        const char *detail = json_string_value(json_object_get(item, "detail"));
        printf("%s%-9s %s %s%s%s\n", dry ? "(dry run) " : "",
               json_string_value(json_object_get(item, "action")),
               json_string_value(json_object_get(item, "kind")),
               json_string_value(json_object_get(item, "name")), detail ? " — " : "",
               detail ? detail : "");
    }
    json_decref(resp);
    return DM_EXIT_OK;
}
