/* cli/cmd_avro.c — `datamesh avro`: Avro container files without a controller.
 *
 *   avro cat [--reader-schema S.avsc] [--fields a,b.c] [--avro-json] FILE.avro
 *                               one plain-JSON object per record (read as S,
 *                               only the fields listed, or in Avro's JSON)
 *   avro write --schema S.avsc [--codec C] < records.jsonl > out.avro
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "schema/dm_avro_container.h"

static int read_file(const char *path, dm_buf_t *out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f) {
        dm_cli_errorf("avro", "%s: %s", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (dm_buf_append(out, chunk, n)) break;
    bool bad = ferror(f);
    if (f != stdin) fclose(f);
    if (bad) {
        dm_cli_errorf("avro", "%s: read error", path);
        return -1;
    }
    return 0;
}

/* Splits "a,b.c" into paths (pointing into the modified string). */
static size_t split_fields(char *list, const char **paths, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok && n < max;
         tok = strtok_r(NULL, ",", &save))
        paths[n++] = tok;
    return n;
}

static int cmd_cat(int argc, char **argv)
{
    const char *reader_path = NULL;
    char *fields = NULL;
    bool avro_json = false;
    static const struct option longopts[] = {{"reader-schema", required_argument, NULL, 'r'},
                                             {"fields", required_argument, NULL, 'f'},
                                             {"avro-json", no_argument, NULL, 'a'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 'r')
            reader_path = optarg;
        else if (ch == 'f')
            fields = optarg;
        else if (ch == 'a')
            avro_json = true;
        else
            return DM_EXIT_USAGE;
    }
    if (optind != argc - 1) {
        dm_cli_errorf("avro", "usage: datamesh avro cat [--reader-schema S.avsc] [--fields a,b.c] "
                              "[--avro-json] FILE.avro");
        return DM_EXIT_USAGE;
    }
    const char *path = argv[optind];
    dm_error_t err = {0};
    dm_avro_schema_t *reader_schema = NULL;
    if (reader_path && dm_avro_schema_parse_file(reader_path, &reader_schema, &err)) {
        dm_cli_errorf("avro", "%s", err.message);
        return DM_EXIT_USAGE;
    }
    dm_buf_t data = DM_BUF_INIT;
    if (read_file(path, &data)) {
        dm_avro_schema_free(reader_schema);
        return DM_EXIT_FAILED;
    }
    dm_avro_file_reader_t *r;
    if (dm_avro_file_reader_new(data.data ? data.data : (const uint8_t *)"", data.len, &r, &err)) {
        dm_cli_errorf("avro", "%s: %s", path, err.message);
        dm_buf_free(&data);
        dm_avro_schema_free(reader_schema);
        return DM_EXIT_FAILED;
    }
    const char *paths[64];
    size_t n_paths = fields ? split_fields(fields, paths, 64) : 0;
    if ((reader_schema || n_paths) &&
        dm_avro_file_reader_set_reader(r, reader_schema, paths, n_paths, &err)) {
        dm_cli_errorf("avro", "%s: %s", path, err.message);
        dm_avro_file_reader_free(r);
        dm_buf_free(&data);
        dm_avro_schema_free(reader_schema);
        return DM_EXIT_FAILED;
    }
    const dm_avro_node_t *root = dm_avro_file_reader_value_node(r);
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t line = DM_BUF_INIT;
    int rc = DM_EXIT_OK;
    for (;;) {
        dm_avro_value_t v;
        bool got;
        if (dm_avro_file_reader_next(r, &arena, &v, &got, &err)) {
            fflush(stdout);
            dm_cli_errorf("avro", "%s: %s", path, err.message);
            rc = DM_EXIT_FAILED;
            break;
        }
        if (!got) break;
        dm_buf_reset(&line);
        if (dm_avro_to_json(root, &v, avro_json ? DM_AVRO_JSON_AVRO : DM_AVRO_JSON_PLAIN, &line,
                            &err) == DM_OK) {
            dm_buf_append_u8(&line, '\n');
            fwrite(line.data, 1, line.len, stdout);
        }
        dm_arena_reset(&arena);
    }
    dm_buf_free(&line);
    dm_arena_destroy(&arena);
    dm_avro_file_reader_free(r);
    dm_buf_free(&data);
    dm_avro_schema_free(reader_schema);
    if (fflush(stdout) != 0) rc = DM_EXIT_FAILED;
    return rc;
}

static int cmd_write(int argc, char **argv)
{
    const char *schema_path = NULL, *codec_name = "null";
    static const struct option longopts[] = {{"schema", required_argument, NULL, 's'},
                                             {"codec", required_argument, NULL, 'c'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (ch == 's')
            schema_path = optarg;
        else if (ch == 'c')
            codec_name = optarg;
        else
            return DM_EXIT_USAGE;
    }
    if (!schema_path || optind != argc) {
        dm_cli_errorf("avro", "usage: datamesh avro write --schema S.avsc [--codec C] "
                              "< records.jsonl > out.avro");
        return DM_EXIT_USAGE;
    }
    dm_avro_file_codec_t codec;
    if (dm_avro_file_codec_parse(codec_name, &codec)) {
        dm_cli_errorf("avro", "unknown codec '%s' (null, deflate, snappy, zstandard)", codec_name);
        return DM_EXIT_USAGE;
    }
    dm_avro_schema_t *s;
    dm_error_t err = {0};
    if (dm_avro_schema_parse_file(schema_path, &s, &err)) {
        dm_cli_errorf("avro", "%s", err.message);
        return DM_EXIT_USAGE;
    }
    dm_avro_file_writer_t *w;
    if (dm_avro_file_writer_new(stdout, s, codec, 0, &w, &err)) {
        dm_cli_errorf("avro", "%s", err.message);
        dm_avro_schema_free(s);
        return DM_EXIT_FAILED;
    }
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = DM_EXIT_OK;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n == 0) continue;
        dm_avro_value_t v;
        if (dm_avro_from_json_text(s->root, line, (size_t)n, DM_AVRO_JSON_PLAIN, &arena, &v,
                                   &err) ||
            dm_avro_file_writer_append(w, &v, &err)) {
            dm_cli_errorf("avro", "stdin line %ld: %s", lineno, err.message);
            rc = DM_EXIT_FAILED;
            break;
        }
        dm_arena_reset(&arena);
    }
    free(line);
    if (dm_avro_file_writer_close(w, &err) && rc == DM_EXIT_OK) {
        dm_cli_errorf("avro", "%s", err.message);
        rc = DM_EXIT_FAILED;
    }
    dm_arena_destroy(&arena);
    dm_avro_schema_free(s);
    return rc;
}

int dm_cmd_avro(int argc, char **argv)
{
    if (argc < 2) {
        dm_cli_errorf("avro", "missing subcommand (cat, write)");
        return DM_EXIT_USAGE;
    }
    if (strcmp(argv[1], "cat") == 0) return cmd_cat(argc - 1, argv + 1);
    if (strcmp(argv[1], "write") == 0) return cmd_write(argc - 1, argv + 1);
    dm_cli_errorf("avro", "unknown subcommand '%s' (cat, write)", argv[1]);
    return DM_EXIT_USAGE;
}
