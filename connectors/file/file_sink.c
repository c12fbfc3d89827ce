/* connectors/file/file_sink.c — JSON lines and Avro container files from a topic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/file/file.h"
#include "connectors/unit.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/log.h"
#include "schema/dm_avro.h"
#include "schema/dm_avro_container.h"
#include "schema/wire.h"
#include "transport/transport.h"

typedef struct out_file {
    FILE *f;
    dm_avro_file_writer_t *w;
    int64_t opened_ms;
    int64_t bytes;
} out_file_t;

/* Moves PATH aside to the first free PATH.N. */
static void roll_aside(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || st.st_size == 0) return;
    char to[4200];
    for (int n = 1; n < 1000000; n++) {
        snprintf(to, sizeof(to), "%s.%d", path, n);
        if (access(to, F_OK) != 0) {
            rename(path, to);
            return;
        }
    }
}

static dm_err_t open_out(const dm_file_sink_t *s, out_file_t *o, dm_error_t *err)
{
    dm_err_t rc = dm_mkdirs(s->conf->path, true, err);
    if (rc) dm_error_prefix(err, "file sink %s", s->conf->path);
    if (rc) return rc;
    /* An Avro container cannot be appended to without its sync marker: start
     * a new file and keep the old one as PATH.N. */
    if (s->conf->format == DM_FILE_AVRO) roll_aside(s->conf->path);
    o->f = fopen(s->conf->path, s->conf->format == DM_FILE_AVRO ? "wb" : "ab");
    if (!o->f)
        return dm_error_set(err, DM_ERR_IO, "file sink: cannot open %s: %s", s->conf->path,
                            strerror(errno));
    struct stat st;
    o->bytes = fstat(fileno(o->f), &st) == 0 ? st.st_size : 0;
    o->opened_ms = dm_wall_ms();
    if (s->conf->format == DM_FILE_AVRO) {
        static const dm_avro_file_codec_t codecs[] = {DM_AVRO_FILE_NULL, DM_AVRO_FILE_DEFLATE,
                                                      DM_AVRO_FILE_SNAPPY, DM_AVRO_FILE_ZSTD};
        rc = dm_avro_file_writer_new(o->f, s->schema, codecs[s->conf->codec], 0, &o->w, err);
        if (rc) {
            fclose(o->f);
            o->f = NULL;
        }
    }
    return rc;
}

static dm_err_t close_out(out_file_t *o, dm_error_t *err)
{
    dm_err_t rc = DM_OK;
    if (o->w) rc = dm_avro_file_writer_close(o->w, err);
    if (o->f) {
        if (fflush(o->f) || fsync(fileno(o->f)))
            rc = dm_error_set(err, DM_ERR_IO, "file sink: flushing: %s", strerror(errno));
        fclose(o->f);
    }
    memset(o, 0, sizeof(*o));
    return rc;
}

/* Writes one fetched batch. */
static dm_err_t write_batch(const dm_file_sink_t *s, out_file_t *o, const dm_transport_batch_t *b,
                            dm_arena_t *arena, dm_buf_t *line, dm_error_t *err)
{
    for (size_t i = 0; i < b->n; i++) {
        const dm_record_t *r = &b->records[i];
        if (r->value_len < 0) continue; /* tombstones have no row to write */
        uint32_t id;
        if (dm_wire_get_header(r->value, (size_t)r->value_len, &id) || id != s->schema_id)
            return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH,
                                "topic %s offset %lld: value is not schema id %u", s->topic,
                                (long long)r->offset, s->schema_id);
        const uint8_t *avro = r->value + DM_WIRE_HEADER;
        size_t len = (size_t)r->value_len - DM_WIRE_HEADER;
        dm_err_t rc;
        if (o->w) {
            rc = dm_avro_file_writer_append_raw(o->w, avro, len, err);
            o->bytes += (int64_t)len;
        } else {
            dm_arena_reset(arena);
            dm_avro_value_t v;
            dm_buf_reset(line);
            rc = dm_avro_decode_node(s->schema->root, avro, len, NULL, arena, &v, err);
            if (!rc) rc = dm_avro_to_json(s->schema->root, &v, DM_AVRO_JSON_PLAIN, line, err);
            if (!rc) rc = dm_buf_append_u8(line, '\n');
            if (!rc && fwrite(line->data, 1, line->len, o->f) != line->len)
                rc = dm_error_set(err, DM_ERR_IO, "file sink: writing %s: %s", s->conf->path,
                                  strerror(errno));
            o->bytes += (int64_t)line->len;
        }
        if (rc) return rc;
    }
    if (o->w) return dm_avro_file_writer_flush(o->w, err);
    if (fflush(o->f) || fsync(fileno(o->f)))
        return dm_error_set(err, DM_ERR_IO, "file sink: writing %s: %s", s->conf->path,
                            strerror(errno));
    return DM_OK;
}

void dm_file_sink_run(const dm_file_sink_t *s, dm_unit_status_t *status)
{
    dm_error_t err = {0};
    int64_t *pos = calloc((size_t)s->partitions, sizeof(int64_t));
    dm_transport_batch_t b = {0};
    dm_arena_t arena;
    dm_arena_init(&arena, 0);
    dm_buf_t line = DM_BUF_INIT;
    out_file_t o = {0};
    for (int32_t p = 0; p < s->partitions; p++) {
        int64_t end;
        if (dm_transport_group_offset(s->transport, s->group, s->topic, p, &pos[p], &err))
            dm_transport_offsets(s->transport, s->topic, p, &pos[p], &end, &err);
    }
    int64_t backoff = 200;
    while (!atomic_load(&status->stop)) {
        if (!o.f && open_out(s, &o, &err)) {
            dm_unit_set(status, DM_UNIT_RETRYING, "%s", err.message);
            if (dm_unit_sleep(status, backoff)) break;
            if (backoff < 10000) backoff *= 2;
            continue;
        }
        dm_err_t rc = DM_OK;
        for (int32_t p = 0; p < s->partitions && !rc && !atomic_load(&status->stop); p++) {
            rc = dm_transport_fetch(s->transport, s->topic, p, pos[p], 1 << 20,
                                    s->partitions == 1 ? 200 : 50, &b, &err);
            if (rc || (b.n == 0 && b.next_offset <= pos[p])) continue;
            if ((rc = write_batch(s, &o, &b, &arena, &line, &err))) break;
            dm_tp_offset_t next = {s->topic, p, b.next_offset};
            if ((rc = dm_transport_group_commit(s->transport, s->group, &next, 1, &err))) break;
            pos[p] = b.next_offset;
            atomic_fetch_add(&status->position, (int64_t)b.n);
            atomic_store(&status->lag, b.high_watermark - pos[p]);
        }
        if (rc) {
            dm_unit_set(status, DM_UNIT_RETRYING, "%s", err.message);
            DM_WARN("sink", "topic=%s sink=file path=%s: %s", s->topic, s->conf->path, err.message);
            close_out(&o, NULL);
            if (dm_unit_sleep(status, backoff)) break;
            if (backoff < 10000) backoff *= 2;
            continue;
        }
        backoff = 200;
        dm_unit_set(status, DM_UNIT_RUNNING, NULL);
        if (o.bytes >= s->conf->roll_bytes || dm_wall_ms() - o.opened_ms >= s->conf->roll_ms) {
            close_out(&o, NULL);
            roll_aside(s->conf->path);
        }
    }
    close_out(&o, NULL);
    dm_transport_batch_free(s->transport, &b);
    dm_buf_free(&line);
    dm_arena_destroy(&arena);
    free(pos);
    dm_unit_set(status, DM_UNIT_STOPPED, NULL);
}
