/* cli/cmd_log.c — `datamesh log topics|describe|dump --data DIR ...`: look into an
 * embedded log's data directory without a controller.
 *
 * Opening the directory runs the same recovery a restart would (cutting torn or
 * uncommitted tails), and takes the directory's lock: stop `datamesh up` first.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "core/clock.h"
#include "core/log.h"
#include "log/log.h"

static const char *usage_text =
    "usage: datamesh log topics   --data DIR\n"
    "       datamesh log describe --data DIR TOPIC\n"
    "       datamesh log dump     --data DIR TOPIC [--partition N] [--offset N] [--count N]\n"
    "\n"
    "Reads an embedded log's data directory (the controller must not be running: the\n"
    "directory is locked while open, and opening it recovers it as a restart would).\n"
    "  topics    one line per topic: name, partitions, records, bytes, settings\n"
    "  describe  a topic's settings and each partition's offsets, size and segments\n"
    "  dump      batches and records with their offsets (default: partition 0 from its\n"
    "            start, every record)\n";

static void print_bytes(const uint8_t *p, int32_t len)
{
    if (len < 0) {
        fputs("null", stdout);
        return;
    }
    putchar('"');
    for (int32_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c >= 32 && c < 127)
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('"');
}

static int print_topic(void *ctx, const dm_log_topic_conf_t *c)
{
    dm_log_t *log = ctx;
    dm_log_topic_info_t info;
    int64_t records = 0, bytes = 0;
    if (dm_log_topic_describe(log, c->name, &info, NULL) == 0) {
        for (int32_t i = 0; i < c->partitions; i++) {
            records += info.parts[i].end_offset - info.parts[i].start_offset;
            bytes += info.parts[i].size_bytes;
        }
        free(info.parts);
    }
    printf("%-32s %4d %12" PRId64 " %14" PRId64 "  fsync=%s%s%s%s\n", c->name, c->partitions,
           records, bytes, dm_log_fsync_name(c->fsync), c->compact ? " compact" : "",
           c->schema_subject ? " subject=" : "", c->schema_subject ? c->schema_subject : "");
    return 0;
}

static void print_limit(const char *name, int64_t v, const char *unit)
{
    if (v < 0)
        printf("%-20s unlimited\n", name);
    else
        printf("%-20s %" PRId64 "%s\n", name, v, unit);
}

static int describe(dm_log_t *log, const char *topic)
{
    dm_log_topic_info_t info;
    dm_error_t err = {0};
    if (dm_log_topic_describe(log, topic, &info, &err)) {
        dm_cli_errorf("log", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    const dm_log_topic_conf_t *c = &info.conf;
    char created[40];
    printf("%-20s %s\n", "topic", c->name);
    printf("%-20s %u\n", "id", info.id);
    printf("%-20s %s\n", "created",
           dm_format_iso8601_ms(info.created_ms, created, sizeof(created)));
    printf("%-20s %d\n", "partitions", c->partitions);
    printf("%-20s %s\n", "schema subject", c->schema_subject ? c->schema_subject : "-");
    printf("%-20s %s\n", "fsync", dm_log_fsync_name(c->fsync));
    if (c->fsync == DM_LOG_FSYNC_INTERVAL)
        printf("%-20s %" PRId64 " ms\n", "flush interval", c->flush_ms);
    print_limit("retention time", c->retention_ms, " ms");
    print_limit("retention size", c->retention_bytes, " bytes per partition");
    printf("%-20s %s\n", "compaction", c->compact ? "by key" : "off");
    if (c->compact) printf("%-20s %" PRId64 " ms\n", "tombstones kept", c->delete_retention_ms);
    printf("%-20s %s\n", "compression", dm_batch_comp_name(c->compression));
    printf("%-20s %" PRId64 " bytes\n", "segment size", c->segment_bytes);
    printf("\n%9s %14s %14s %14s %8s\n", "PARTITION", "START", "END", "BYTES", "SEGMENTS");
    for (int32_t i = 0; i < c->partitions; i++) {
        dm_log_partition_info_t *p = &info.parts[i];
        printf("%9d %14" PRId64 " %14" PRId64 " %14" PRId64 " %8d\n", p->partition, p->start_offset,
               p->end_offset, p->size_bytes, p->segments);
    }
    free(info.parts);
    return DM_EXIT_OK;
}

static int dump(dm_log_t *log, const char *topic, int32_t partition, int64_t offset, int64_t count)
{
    dm_error_t err = {0};
    int64_t start, end;
    if (dm_log_offsets(log, topic, partition, &start, &end, &err)) {
        dm_cli_errorf("log", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    if (offset < 0) offset = start;
    dm_log_fetch_t f;
    dm_log_fetch_init(&f);
    int rc = DM_EXIT_OK;
    int64_t printed = 0;
    while (offset < end && (count < 0 || printed < count)) {
        if (dm_log_read(log, topic, partition, offset, 1 << 20, 0, &f, &err)) {
            dm_cli_errorf("log", "%s", err.message);
            rc = DM_EXIT_FAILED;
            break;
        }
        if (f.n == 0) break;
        size_t r = 0;
        for (size_t b = 0; b < f.n_batches && (count < 0 || printed < count); b++) {
            dm_batch_hdr_t *h = &f.batches[b];
            char t1[40], t2[40];
            printf("batch offsets=%" PRId64 "..%" PRId64 " count=%u bytes=%u first_ts=%s "
                   "last_ts=%s compression=%s%s txn=%" PRIu64 " crc=%08x\n",
                   h->base_offset, h->base_offset + h->last_offset_delta, h->count, h->length,
                   dm_format_iso8601_ms(h->first_ts, t1, sizeof(t1)),
                   dm_format_iso8601_ms(h->last_ts, t2, sizeof(t2)),
                   dm_batch_comp_name((dm_batch_comp_t)(h->attributes & DM_BATCH_COMP_MASK)),
                   (h->attributes & DM_BATCH_ATTR_TXN) ? " transactional" : "", h->txn_id, h->crc);
            for (; r < f.n && f.records[r].offset <= h->base_offset + h->last_offset_delta &&
                   (count < 0 || printed < count);
                 r++, printed++) {
                dm_log_record_t *rec = &f.records[r];
                printf("  offset=%" PRId64 " ts=%" PRId64 " key=", rec->offset, rec->timestamp);
                print_bytes(rec->key, rec->key_len);
                fputs(" value=", stdout);
                print_bytes(rec->value, rec->value_len);
                for (uint32_t k = 0; k < rec->n_headers; k++) {
                    printf(" header.%.*s=", (int)rec->headers[k].key_len, rec->headers[k].key);
                    print_bytes(rec->headers[k].value, rec->headers[k].value_len);
                }
                putchar('\n');
            }
        }
        offset = f.next_offset;
    }
    dm_log_fetch_free(&f);
    return rc;
}

int dm_cmd_log(int argc, char **argv)
{
    const char *data = NULL;
    int32_t partition = 0;
    int64_t offset = -1, count = -1;
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"partition", required_argument, NULL, 'p'},
                                             {"offset", required_argument, NULL, 'o'},
                                             {"count", required_argument, NULL, 'n'},
                                             {NULL, 0, NULL, 0}};
    if (argc < 2) {
        fputs(usage_text, stderr);
        return DM_EXIT_USAGE;
    }
    const char *sub = argv[1];
    optind = 2;
    int ch;
    char *end;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': data = optarg; break;
        case 'p':
            partition = (int32_t)strtol(optarg, &end, 10);
            if (*end || partition < 0) {
                dm_cli_errorf("log", "--partition: '%s' is not a partition number", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'o':
            offset = strtoll(optarg, &end, 10);
            if (*end || offset < 0) {
                dm_cli_errorf("log", "--offset: '%s' is not an offset", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'n':
            count = strtoll(optarg, &end, 10);
            if (*end || count < 0) {
                dm_cli_errorf("log", "--count: '%s' is not a count", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        default: return DM_EXIT_USAGE;
        }
    }
    bool needs_topic = !strcmp(sub, "describe") || !strcmp(sub, "dump");
    if (strcmp(sub, "topics") && !needs_topic) {
        dm_cli_errorf("log", "unknown subcommand '%s' (topics, describe, dump)", sub);
        return DM_EXIT_USAGE;
    }
    if (!data) {
        dm_cli_errorf("log", "--data DIR is required");
        return DM_EXIT_USAGE;
    }
    const char *topic = NULL;
    if (needs_topic) {
        if (optind >= argc) {
            dm_cli_errorf("log", "%s needs a TOPIC", sub);
            return DM_EXIT_USAGE;
        }
        topic = argv[optind++];
    }
    if (optind < argc) {
        dm_cli_errorf("log", "unexpected argument '%s'", argv[optind]);
        return DM_EXIT_USAGE;
    }
    struct stat st;
    if (stat(data, &st) || !S_ISDIR(st.st_mode)) {
        dm_cli_errorf("log", "%s is not a data directory", data);
        return DM_EXIT_FAILED;
    }
    dm_log_t *log;
    dm_error_t err = {0};
    dm_log_options_t opt = {.no_background = true};
    if (dm_log_open(data, &opt, &log, &err)) {
        dm_cli_errorf("log", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    int rc = DM_EXIT_OK;
    if (!strcmp(sub, "topics")) {
        printf("%-32s %4s %12s %14s  %s\n", "TOPIC", "PART", "RECORDS", "BYTES", "SETTINGS");
        dm_log_topic_list(log, print_topic, log);
    } else if (!strcmp(sub, "describe")) {
        rc = describe(log, topic);
    } else {
        rc = dump(log, topic, partition, offset, count);
    }
    dm_log_close(log);
    return rc;
}
