/* core/error.h — error codes and rich error objects.
 *
 * Every fallible function returns a dm_err_t: 0 is success, negative codes are
 * grouped by family (one block of 100 per layer). At API edges a caller may pass
 * a dm_error_t to receive a message that names what failed and where (spec
 * file:line:col, record field path, topic/partition/offset). Library code never
 * prints and exits; the CLI decides how to show an error.
 */
#ifndef DM_CORE_ERROR_H
#define DM_CORE_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum {
    DM_OK = 0,

    /* generic: -1 .. -99 */
    DM_ERR_NOMEM = -1,
    DM_ERR_INVALID = -2, /* bad argument or malformed input */
    DM_ERR_NOT_FOUND = -3,
    DM_ERR_EXISTS = -4,
    DM_ERR_IO = -5,
    DM_ERR_CORRUPT = -6,   /* bytes fail a checksum or structural check */
    DM_ERR_TRUNCATED = -7, /* input ended in the middle of a value */
    DM_ERR_RANGE = -8,     /* value or offset out of range */
    DM_ERR_UNSUPPORTED = -9,
    DM_ERR_TIMEOUT = -10,
    DM_ERR_AGAIN = -11, /* retriable: try again later */
    DM_ERR_CLOSED = -12,
    DM_ERR_INTERNAL = -13,
    DM_ERR_PERMISSION = -14,
    DM_ERR_NO_SPACE = -15,
    DM_ERR_NOT_IMPLEMENTED = -16,

    /* config and specs: -100 .. -199 */
    DM_ERR_CONFIG = -100,
    DM_ERR_CONFIG_UNKNOWN_KEY = -101,
    DM_ERR_CONFIG_TYPE = -102,
    DM_ERR_CONFIG_RANGE = -103,
    DM_ERR_CONFIG_MISSING = -104,

    /* schema (Avro): -200 .. -299 */
    DM_ERR_SCHEMA = -200,
    DM_ERR_SCHEMA_PARSE = -201,
    DM_ERR_SCHEMA_MISMATCH = -202,     /* data does not match its schema */
    DM_ERR_SCHEMA_INCOMPATIBLE = -203, /* compatibility check failed */
    DM_ERR_SCHEMA_NEW_VERSION = -204,  /* input of a schema version newer than the reader's */

    /* log: -300 .. -399 */
    DM_ERR_LOG = -300,
    DM_ERR_LOG_CORRUPT = -301,      /* a segment, index or batch fails its checks */
    DM_ERR_LOG_OFFSET_RANGE = -302, /* offset below the start or past the end */
    DM_ERR_LOG_TOPIC_NOT_FOUND = -303,
    DM_ERR_LOG_TOPIC_EXISTS = -304,
    DM_ERR_LOG_BAD_NAME = -305,  /* topic or group name not allowed */
    DM_ERR_LOG_META = -306,      /* journal (metadata) corrupt or missing */
    DM_ERR_LOG_PARTITION = -307, /* no such partition */

    /* transport: -400 .. -499 */
    DM_ERR_TRANSPORT = -400,
    DM_ERR_TRANSPORT_BACKEND = -401, /* unknown backend or bad transport URL */
    DM_ERR_TRANSPORT_FENCED = -402,  /* a newer producer took over this transactional id */
    DM_ERR_TRANSPORT_BROKER = -403, /* the cluster refused or failed a request (its words follow) */

    /* engine: -500 .. -599 */
    DM_ERR_ENGINE = -500,

    /* connectors and sinks: -600 .. -699 */
    DM_ERR_CONNECTOR = -600,

    /* control plane: -700 .. -799 */
    DM_ERR_CONTROL = -700,
} dm_err_t;

#define DM_ERROR_MSG_MAX 512

/* A rich error: code, human message and how the caller may react. */
typedef struct dm_error {
    dm_err_t code;
    bool retriable; /* the same call may succeed later (timeouts, busy peers) */
    bool fatal;     /* the component cannot go on and must be restarted */
    char message[DM_ERROR_MSG_MAX];
} dm_error_t;

/* Symbolic name of a code ("DM_ERR_IO"); never NULL. */
const char *dm_err_name(dm_err_t code);

/* Short description of a code ("I/O error"); never NULL. */
const char *dm_err_str(dm_err_t code);

/* Fills err (which may be NULL) with code and a printf-style message and
 * returns code, so that `return dm_error_set(err, DM_ERR_IO, "...")` reads well.
 * retriable is set for the codes that always name a transient condition:
 * DM_ERR_TIMEOUT, DM_ERR_AGAIN, DM_ERR_NO_SPACE (space may be freed),
 * DM_ERR_TRANSPORT_BROKER (a Kafka broker down
 * or refusing for now) and DM_ERR_TRANSPORT_FENCED (the unit reopens from its
 * committed offsets); fatal is cleared. */
dm_err_t dm_error_set(dm_error_t *err, dm_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* dm_error_set for a condition that may pass (a peer down, a connection
 * refused, a file not there yet): also sets retriable, so a unit retries
 * with backoff instead of failing (connectors/unit.h). */
dm_err_t dm_error_set_retriable(dm_error_t *err, dm_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* dm_error_set with a va_list. */
dm_err_t dm_error_setv(dm_error_t *err, dm_err_t code, const char *fmt, va_list ap);

/* Replaces, in place, every byte of s that is not part of a well-formed UTF-8
 * sequence with '?': a message quoting input, or cut at a byte limit in the
 * middle of a character, can then go into JSON (which refuses such text).
 * dm_error_set and dm_error_prefix apply it to what they write. */
void dm_utf8_repair(char *s);

/* Puts context in front of an existing message: "topic=x: <old message>".
 * Keeps the code; returns it. Safe with err == NULL. */
dm_err_t dm_error_prefix(dm_error_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets err to DM_OK with an empty message. */
void dm_error_clear(dm_error_t *err);

#endif
