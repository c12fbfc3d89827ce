/* core/redact.h — keeping secrets out of logs, API answers and errors. */
#ifndef DM_CORE_REDACT_H
#define DM_CORE_REDACT_H

#include <stddef.h>

/* Copies a libpq-style DSN ("host=… password=secret …") or a URL
 * ("postgres://user:secret@host/db") into out with every password, token or
 * secret value replaced by "***". Always NUL-terminates out. Returns out. */
char *dm_redact_dsn(const char *dsn, char *out, size_t cap);

#endif
