/* connectors/file/file_sink.c — JSON lines and Avro container files from a
 * topic, on the common sink runner (connectors/sink.h): batching, dead
 * letters, metrics, retries and decoding by schema id come from there.
 *
 * Each record is written in its own writer schema's shape: a JSON line of the
 * whole value (a change event stays an envelope), or the value's Avro bytes
 * as they are. An Avro container holds one schema, so a record of another
 * schema version closes the file (kept as PATH.N) and starts a new one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/file/file.h"
#include "connectors/sink.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/fs.h"
#include "schema/dm_avro.h"
#include "schema/dm_avro_container.h"
#include "schema/wire.h"

typedef struct out_file {
    FILE *f;
    dm_avro_file_writer_t *w;
    uint32_t schema_id; /* avro: the container's schema */
    int64_t opened_ms;
    int64_t bytes;
} out_file_t;

typedef struct file_sink {
    const dm_file_sink_config_t *conf;
    const dm_sink_env_t *env;
    out_file_t o;
    int64_t batch_start; /* size of the open file before this batch's records */
    dm_buf_t line;
} file_sink_t;

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

/* Opens PATH for the records of schema (avro: a new container of it). */
static dm_err_t open_out(file_sink_t *s, const dm_avro_schema_t *schema, uint32_t id,
                         dm_error_t *err)
{
    const dm_file_sink_config_t *c = s->conf;
    out_file_t *o = &s->o;
    dm_err_t rc = dm_mkdirs(c->path, true, err);
    if (rc) return dm_error_prefix(err, "file sink %s", c->path);
    /* An Avro container cannot be appended to without its sync marker: start
     * a new file and keep the old one as PATH.N. */
    if (c->format == DM_FILE_AVRO) roll_aside(c->path);
    o->f = fopen(c->path, c->format == DM_FILE_AVRO ? "wb" : "ab");
    if (!o->f)
        return dm_error_set(err, DM_ERR_IO, "file sink: cannot open %s: %s", c->path,
                            strerror(errno));
    /* lines go out in large blocks: one write(2) per 256 KiB, not per 4 KiB */
    setvbuf(o->f, NULL, _IOFBF, 256 << 10);
    struct stat st;
    o->bytes = fstat(fileno(o->f), &st) == 0 ? st.st_size : 0;
    o->opened_ms = dm_wall_ms();
    o->schema_id = id;
    if (c->format == DM_FILE_AVRO) {
        static const dm_avro_file_codec_t codecs[] = {DM_AVRO_FILE_NULL, DM_AVRO_FILE_DEFLATE,
                                                      DM_AVRO_FILE_SNAPPY, DM_AVRO_FILE_ZSTD};
        rc = dm_avro_file_writer_new(o->f, schema, codecs[c->codec], 0, &o->w, err);
        if (rc) {
            fclose(o->f);
            memset(o, 0, sizeof(*o));
            return dm_error_prefix(err, "file sink %s", c->path);
        }
        o->bytes = ftello(o->f);
    }
    s->batch_start = o->bytes;
    return DM_OK;
}

static dm_err_t close_out(file_sink_t *s, dm_error_t *err)
{
    out_file_t *o = &s->o;
    dm_err_t rc = DM_OK;
    if (o->w) rc = dm_avro_file_writer_close(o->w, err);
    if (o->f) {
        if ((fflush(o->f) || fsync(fileno(o->f))) && !rc)
            rc = dm_error_set(err, DM_ERR_IO, "file sink: flushing %s: %s", s->conf->path,
                              strerror(errno));
        fclose(o->f);
    }
    memset(o, 0, sizeof(*o));
    return rc;
}

/* After a failed write: closes the file and cuts it back to where this batch
 * began, so the batch written again leaves no partial line or block. */
static void undo_batch(file_sink_t *s)
{
    bool had = s->o.f != NULL;
    close_out(s, NULL);
    if (had && truncate(s->conf->path, s->batch_start) != 0) {
        /* Nothing more to do: the batch is written again after the cut-off part. */
    }
}

static dm_err_t file_open(const void *conf, const dm_sink_env_t *env, void **state, dm_error_t *err)
{
    file_sink_t *s = calloc(1, sizeof(*s));
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->conf = conf;
    s->env = env;
    s->line = (dm_buf_t)DM_BUF_INIT;
    *state = s;
    return DM_OK; /* the file opens with the first record */
}

/* Writes one record's value; DM_ERR_SCHEMA_MISMATCH when it cannot be (it is
 * a dead letter then), other errors when the file cannot be written. */
static dm_err_t write_one(file_sink_t *s, const dm_sink_record_t *r, dm_error_t *err)
{
    const dm_file_sink_config_t *c = s->conf;
    dm_err_t rc;
    if (c->format == DM_FILE_AVRO && s->o.f && s->o.schema_id != r->value_schema_id) {
        /* One schema per container: a new version rolls the file. */
        if ((rc = close_out(s, err))) return rc;
    }
    if (!s->o.f && (rc = open_out(s, r->value_schema, r->value_schema_id, err))) return rc;
    const uint8_t *avro = r->rec->value + DM_WIRE_HEADER;
    size_t len = (size_t)r->rec->value_len - DM_WIRE_HEADER;
    if (s->o.w) {
        rc = dm_avro_file_writer_append_raw(s->o.w, avro, len, err);
        if (rc) return rc == DM_ERR_IO || rc == DM_ERR_NOMEM ? rc : DM_ERR_SCHEMA_MISMATCH;
        s->o.bytes += (int64_t)len;
        return DM_OK;
    }
    dm_buf_reset(&s->line);
    rc = dm_avro_to_json(r->value_schema->root, r->value, DM_AVRO_JSON_PLAIN, &s->line, err);
    if (rc) return rc == DM_ERR_NOMEM ? rc : DM_ERR_SCHEMA_MISMATCH;
    if ((rc = dm_buf_append_u8(&s->line, '\n')))
        return dm_error_set(err, rc, "file sink: out of memory");
    if (fwrite(s->line.data, 1, s->line.len, s->o.f) != s->line.len)
        return dm_error_set(err, DM_ERR_IO, "file sink: writing %s: %s", c->path, strerror(errno));
    s->o.bytes += (int64_t)s->line.len;
    return DM_OK;
}

static dm_err_t file_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                           dm_error_t *err)
{
    file_sink_t *s = state;
    s->batch_start = s->o.f ? s->o.bytes : 0;
    dm_error_t one; /* one for the batch: zeroing its 500 bytes per record shows */
    dm_error_clear(&one);
    for (size_t i = 0; i < b->n; i++) {
        const dm_sink_record_t *r = &b->records[i];
        /* Tombstones have no value to write (the delete came as an event). */
        if (dm_sink_rejected(rj, i) || r->rec->value_len < 0 || !r->value) continue;
        dm_err_t rc = write_one(s, r, &one);
        if (rc == DM_ERR_SCHEMA_MISMATCH) {
            dm_sink_reject(rj, i, "file sink: %s", one.message);
            dm_error_clear(&one);
            continue;
        }
        if (rc) {
            *err = one;
            err->retriable = true; /* the file could not be written: the disk may come back */
            undo_batch(s);
            return dm_error_prefix(err, "topic %s partition %d offset %lld", s->env->topic,
                                   r->partition, (long long)r->rec->offset);
        }
    }
    return DM_OK;
}

/* Makes the batch durable (flushed and fsynced), then rolls by size or age. */
static dm_err_t file_flush(void *state, const dm_sink_batch_t *b, dm_error_t *err)
{
    (void)b;
    file_sink_t *s = state;
    if (!s->o.f) return DM_OK;
    dm_err_t rc = s->o.w ? dm_avro_file_writer_flush(s->o.w, err) : DM_OK;
    if (!rc && (fflush(s->o.f) || fsync(fileno(s->o.f))))
        rc = dm_error_set(err, DM_ERR_IO, "file sink: writing %s: %s", s->conf->path,
                          strerror(errno));
    if (rc) {
        err->retriable = true;
        undo_batch(s);
        return rc;
    }
    if (s->o.bytes >= s->conf->roll_bytes || dm_wall_ms() - s->o.opened_ms >= s->conf->roll_ms) {
        if ((rc = close_out(s, err))) return rc;
        roll_aside(s->conf->path);
    }
    return DM_OK;
}

static void file_close(void *state)
{
    file_sink_t *s = state;
    close_out(s, NULL);
    dm_buf_free(&s->line);
    free(s);
}

/* OpenLineage names a local file namespace "file", name its absolute path (a
 * relative path is the controller's working directory's, as the sink opens it). */
static void file_lineage(const json_t *settings, json_t *dataset)
{
    const char *path = json_string_value(json_object_get(settings, "path"));
    if (!path) return;
    char cwd[4096] = "", full[8192];
    if (path[0] != '/' && !getcwd(cwd, sizeof(cwd))) cwd[0] = '\0';
    snprintf(full, sizeof(full), "%s%s%s", cwd, cwd[0] ? "/" : "", path);
    json_object_set_new(dataset, "namespace", json_string("file"));
    json_object_set_new(dataset, "name", json_string(full));
}

const dm_sink_ops_t dm_file_sink_ops = {.name = "file",
                                        .config = &dm_file_sink_config_table,
                                        .config_size = sizeof(dm_file_sink_config_t),
                                        .open = file_open,
                                        .write = file_write,
                                        .flush = file_flush,
                                        .close = file_close,
                                        .lineage = file_lineage};
