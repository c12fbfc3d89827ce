/* connectors/mysql/my_binlog.h — the binlog's bytes, decoded without I/O:
 * table maps (column types, metadata and the optional metadata that
 * binlog_row_metadata=FULL adds), row images, MySQL 8 binary JSON and GTIDs of
 * both flavours. The formats are those of the MySQL and MariaDB
 * documentation ("Binary log event formats", "JSON binary format",
 * "Table_map_log_event optional metadata"). Every decoder checks lengths and
 * fails with DM_ERR_CORRUPT naming what was cut short; none reads past len.
 *
 * Thread: any (pure functions over caller-owned memory). */
#ifndef DM_CONNECTORS_MY_BINLOG_H
#define DM_CONNECTORS_MY_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/buf.h"
#include "core/error.h"

/* Column types as the binlog writes them (a subset of enum_field_types). */
enum {
    DM_MYT_DECIMAL = 0,
    DM_MYT_TINY = 1,
    DM_MYT_SHORT = 2,
    DM_MYT_LONG = 3,
    DM_MYT_FLOAT = 4,
    DM_MYT_DOUBLE = 5,
    DM_MYT_NULL = 6,
    DM_MYT_TIMESTAMP = 7,
    DM_MYT_LONGLONG = 8,
    DM_MYT_INT24 = 9,
    DM_MYT_DATE = 10,
    DM_MYT_TIME = 11,
    DM_MYT_DATETIME = 12,
    DM_MYT_YEAR = 13,
    DM_MYT_NEWDATE = 14,
    DM_MYT_VARCHAR = 15,
    DM_MYT_BIT = 16,
    DM_MYT_TIMESTAMP2 = 17,
    DM_MYT_DATETIME2 = 18,
    DM_MYT_TIME2 = 19,
    DM_MYT_JSON = 245,
    DM_MYT_NEWDECIMAL = 246,
    DM_MYT_ENUM = 247,
    DM_MYT_SET = 248,
    DM_MYT_TINY_BLOB = 249,
    DM_MYT_MEDIUM_BLOB = 250,
    DM_MYT_LONG_BLOB = 251,
    DM_MYT_BLOB = 252,
    DM_MYT_VAR_STRING = 253,
    DM_MYT_STRING = 254,
    DM_MYT_GEOMETRY = 255,
};

#define DM_MY_CHARSET_BINARY 63

/* One column of a table map. type is the real type (ENUM and SET unwrapped
 * from STRING); meta is what the row decoder needs (see my_binlog.c). */
typedef struct dm_my_col {
    uint8_t type;
    uint16_t meta;
    bool nullable, is_unsigned;
    uint32_t charset;     /* 0: not known (no optional metadata) */
    const char *name;     /* NULL without COLUMN_NAME metadata */
    int key_pos;          /* 1-based position in the primary key, 0 when not */
    const char **symbols; /* ENUM / SET strings (NULL when not sent) */
    uint32_t n_symbols;
} dm_my_col_t;

/* A TABLE_MAP event. Strings and arrays live in the arena passed to the
 * decoder. */
typedef struct dm_my_table_map {
    uint64_t table_id;
    const char *db, *table;
    uint32_t n_cols;
    dm_my_col_t *cols;
    bool has_names; /* optional metadata present (binlog_row_metadata=FULL) */
} dm_my_table_map_t;

/* Decodes a TABLE_MAP event body (after the 19-byte common header, without
 * the checksum). */
dm_err_t dm_my_table_map_decode(const uint8_t *body, size_t len, dm_arena_t *arena,
                                dm_my_table_map_t *out, dm_error_t *err);

/* A decoded column value. */
typedef enum dm_my_vkind {
    DM_MYV_NULL = 0,
    DM_MYV_INT,       /* i (signed) */
    DM_MYV_UINT,      /* u (unsigned) */
    DM_MYV_FLOAT,     /* d */
    DM_MYV_DOUBLE,    /* d */
    DM_MYV_DECIMAL,   /* s: digits with an optional '-' and '.', e.g. "-12.50" */
    DM_MYV_DATE,      /* i: days since 1970-01-01; zero dates are DM_MYV_ZERO */
    DM_MYV_TIME,      /* i: microseconds (may be negative or past 24 h) */
    DM_MYV_DATETIME,  /* i: microseconds since 1970-01-01 00:00 (no time zone) */
    DM_MYV_TIMESTAMP, /* i: microseconds since the epoch, UTC */
    DM_MYV_BYTES,     /* s, n: a string's or blob's bytes; JSON already as JSON text */
    DM_MYV_ENUM,      /* u: 1-based index (0: the empty error value) */
    DM_MYV_SET,       /* u: bit mask */
    DM_MYV_BIT,       /* s, n: big-endian bytes */
    DM_MYV_ZERO,      /* a zero date or datetime ('0000-00-00') */
} dm_my_vkind_t;

typedef struct dm_my_value {
    dm_my_vkind_t kind;
    int64_t i;
    uint64_t u;
    double d;
    const char *s;
    size_t n;
} dm_my_value_t;

/* A ROWS event (WRITE/UPDATE/DELETE, v1 or v2): its header and where its
 * rows start. */
typedef struct dm_my_rows {
    char op; /* 'c', 'u', 'd' */
    uint64_t table_id;
    uint16_t flags;
    uint32_t n_cols;
    const uint8_t *present, *present_after; /* column bitmaps */
    const uint8_t *rows, *end;
} dm_my_rows_t;

/* Decodes the header of a ROWS event body of event type (23-25, 30-32). */
dm_err_t dm_my_rows_decode(uint8_t type, const uint8_t *body, size_t len, dm_my_rows_t *out,
                           dm_error_t *err);

/* Decodes one row image at *p (advanced past it) into vals[0..tm->n_cols)
 * (columns not in the image are DM_MYV_NULL and *missing counts them).
 * Strings point into the event or into arena (decimals, JSON). */
dm_err_t dm_my_row_decode(const dm_my_table_map_t *tm, const uint8_t *present, const uint8_t **p,
                          const uint8_t *end, dm_arena_t *arena, dm_my_value_t *vals,
                          uint32_t *missing, dm_error_t *err);

/* MySQL 8 binary JSON (the JSON column's bytes) as JSON text, appended to out. */
dm_err_t dm_my_json_to_text(const uint8_t *data, size_t len, dm_buf_t *out, dm_error_t *err);

/* ---- GTIDs ------------------------------------------------------------------------- */

/* A MySQL GTID_LOG_EVENT body: commit flag, the server's UUID, the sequence
 * number. Writes "uuid:gno" into out. */
dm_err_t dm_my_gtid_mysql_decode(const uint8_t *body, size_t len, char *out, size_t cap,
                                 dm_error_t *err);

/* A MySQL PREVIOUS_GTIDS_LOG_EVENT body as a GTID set text
 * ("uuid:1-5:7-9,uuid2:1-3"), appended to out. */
dm_err_t dm_my_gtid_set_decode(const uint8_t *body, size_t len, dm_buf_t *out, dm_error_t *err);

/* A MariaDB GTID state: the last GTID of each replication domain. */
typedef struct dm_my_gtid_state {
    struct {
        uint32_t domain, server;
        uint64_t seq;
    } g[16];
    int n;
} dm_my_gtid_state_t;

/* Sets the domain's GTID in s (false when s is full). */
bool dm_my_gtid_state_set(dm_my_gtid_state_t *s, uint32_t domain, uint32_t server, uint64_t seq);
/* s as "domain-server-seq,…" (sorted by domain), what @slave_connect_state takes. */
void dm_my_gtid_state_text(const dm_my_gtid_state_t *s, char *out, size_t cap);
/* Parses the text form; DM_ERR_INVALID names the bad part. */
dm_err_t dm_my_gtid_state_parse(const char *text, dm_my_gtid_state_t *s, dm_error_t *err);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t dm_my_days_from_civil(int64_t y, int m, int d);

#endif
