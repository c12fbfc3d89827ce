/* examples/emitter/emit.c — emits JSON lines from stdin into a datamesh
 * source with the emitter library, then waits until all are delivered.
 *
 *   emit http://127.0.0.1:8080 clicks [SPOOL_DIR] < events.jsonl
 *
 * DATAMESH_TOKEN is sent when set; EMIT_QUEUE_BYTES, EMIT_SPOOL_BYTES and
 * EMIT_MAX_BLOCK_MS (and EMIT_BATCH_RECORDS, EMIT_BATCH_BYTES,
 * EMIT_SCHEMA_CHECK_MS) set those options. An event refused because the queue
 * and spool are full stops the input (exit status 1 after the flush).
 *
 * Build against an installed datamesh:
 *   cc emit.c $(pkg-config --cflags --libs datamesh-emitter) -o emit */
#include <datamesh/emitter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s CONTROLLER_URL SOURCE [SPOOL_DIR] < events.jsonl\n", argv[0]);
        return 2;
    }
    char err[512];
    dm_emitter_options_t o = {.size = sizeof(o),
                              .spool_dir = argc > 3 ? argv[3] : NULL,
                              .token = getenv("DATAMESH_TOKEN")};
    if (getenv("EMIT_QUEUE_BYTES")) o.queue_bytes = atoll(getenv("EMIT_QUEUE_BYTES"));
    if (getenv("EMIT_SPOOL_BYTES")) o.spool_bytes = atoll(getenv("EMIT_SPOOL_BYTES"));
    if (getenv("EMIT_MAX_BLOCK_MS")) o.max_block_ms = atoi(getenv("EMIT_MAX_BLOCK_MS"));
    if (getenv("EMIT_BATCH_RECORDS")) o.batch_records = atoi(getenv("EMIT_BATCH_RECORDS"));
    if (getenv("EMIT_BATCH_BYTES")) o.batch_bytes = atoi(getenv("EMIT_BATCH_BYTES"));
    if (getenv("EMIT_SCHEMA_CHECK_MS")) o.schema_check_ms = atoi(getenv("EMIT_SCHEMA_CHECK_MS"));
    dm_emitter_t *e = dm_emitter_new_with(argv[1], argv[2], &o, err, sizeof(err));
    if (!e) {
        fprintf(stderr, "emit: %s\n", err);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long n = 0, refused = 0, lineno = 0;
    while ((len = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (!len) continue;
        int rc = dm_emitter_send_json(e, line, (size_t)len);
        if (rc == DM_EMITTER_OK) {
            n++;
            continue;
        }
        fprintf(stderr, "emit: line %ld: %s\n", lineno, dm_emitter_error());
        refused++;
        if (rc != DM_EMITTER_ERR_INVALID) break;
    }
    free(line);
    int rc = dm_emitter_flush(e, 60000);
    if (rc) fprintf(stderr, "emit: %s\n", dm_emitter_error());
    dm_emitter_stats_t st;
    dm_emitter_stats(e, &st);
    printf("%ld events queued, %llu delivered, %llu retries, %llu spooled, %ld refused\n", n,
           (unsigned long long)st.delivered, (unsigned long long)st.retries,
           (unsigned long long)st.spooled, refused);
    dm_emitter_destroy(e);
    return rc || refused ? 1 : 0;
}
