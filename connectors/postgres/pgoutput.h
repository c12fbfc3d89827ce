/* connectors/postgres/pgoutput.h — decoding of pgoutput messages (protocol
 * version 1), the payload of the XLogData frames logical replication sends.
 *
 * Pure: bytes in, a message out, nothing read from a server. Strings and
 * tuples are copied into the caller's arena, so a message stays valid after
 * the replication buffer it came from is reused.
 *
 * Message formats: PostgreSQL "Logical Replication Message Formats". A column
 * of a tuple is 'n' (null), 'u' (an unchanged TOASTed value the server did not
 * send) or 't' (the value in the type's text output form).
 */
#ifndef DM_CONNECTORS_PGOUTPUT_H
#define DM_CONNECTORS_PGOUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/error.h"

typedef struct dm_pgoutput_datum {
    char kind;        /* 'n', 'u' or 't' */
    uint32_t len;     /* 't': bytes of text */
    const char *text; /* 't': NUL-terminated copy */
} dm_pgoutput_datum_t;

typedef struct dm_pgoutput_tuple {
    uint16_t n;
    dm_pgoutput_datum_t *cols;
} dm_pgoutput_tuple_t;

typedef struct dm_pgoutput_column {
    bool key; /* part of the replica identity */
    const char *name;
    uint32_t type_oid;
    int32_t typmod;
} dm_pgoutput_column_t;

typedef struct dm_pgoutput_msg {
    char type;        /* 'B','C','R','Y','O','I','U','D','T','M' */
    uint64_t lsn;     /* B: final LSN of the transaction; C: commit LSN */
    uint64_t end_lsn; /* C: end of the commit record */
    int64_t ts_us;    /* B, C: commit time, microseconds since 2000-01-01 */
    uint32_t xid;     /* B */
    uint32_t relid;   /* R, Y (type oid), I, U, D */
    /* R */
    const char *nspname, *relname; /* Y: type namespace and name */
    char replident;                /* 'd' default, 'n' nothing, 'f' full, 'i' index */
    uint16_t n_cols;
    dm_pgoutput_column_t *cols;
    /* I, U, D */
    char old_kind; /* 0 (none), 'K' (key columns only) or 'O' (whole old row) */
    dm_pgoutput_tuple_t old_tuple, new_tuple;
    /* T */
    uint8_t truncate_options; /* 1 cascade, 2 restart identity */
    uint32_t n_relids;
    uint32_t *relids;
} dm_pgoutput_msg_t;

/* Decodes one pgoutput message of len bytes into *out, allocating in arena.
 * DM_ERR_TRUNCATED when the bytes end inside the message, DM_ERR_CORRUPT for
 * an unknown message or tuple-column kind; both name the byte offset. */
dm_err_t dm_pgoutput_decode(const uint8_t *buf, size_t len, dm_arena_t *arena,
                            dm_pgoutput_msg_t *out, dm_error_t *err);

/* Microseconds between 2000-01-01 (PostgreSQL's epoch) and 1970-01-01. */
#define DM_PG_EPOCH_OFFSET_US 946684800000000LL

#endif
