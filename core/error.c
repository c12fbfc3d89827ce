/* core/error.c — error names and message formatting. */
#include "core/error.h"

#include <stdio.h>
#include <string.h>

static const struct {
    dm_err_t code;
    const char *name;
    const char *text;
} err_table[] = {
    {DM_OK, "DM_OK", "success"},
    {DM_ERR_NOMEM, "DM_ERR_NOMEM", "out of memory"},
    {DM_ERR_INVALID, "DM_ERR_INVALID", "invalid argument or input"},
    {DM_ERR_NOT_FOUND, "DM_ERR_NOT_FOUND", "not found"},
    {DM_ERR_EXISTS, "DM_ERR_EXISTS", "already exists"},
    {DM_ERR_IO, "DM_ERR_IO", "I/O error"},
    {DM_ERR_CORRUPT, "DM_ERR_CORRUPT", "corrupt data"},
    {DM_ERR_TRUNCATED, "DM_ERR_TRUNCATED", "truncated input"},
    {DM_ERR_RANGE, "DM_ERR_RANGE", "out of range"},
    {DM_ERR_UNSUPPORTED, "DM_ERR_UNSUPPORTED", "unsupported"},
    {DM_ERR_TIMEOUT, "DM_ERR_TIMEOUT", "timed out"},
    {DM_ERR_AGAIN, "DM_ERR_AGAIN", "temporarily unavailable"},
    {DM_ERR_CLOSED, "DM_ERR_CLOSED", "closed"},
    {DM_ERR_INTERNAL, "DM_ERR_INTERNAL", "internal error"},
    {DM_ERR_PERMISSION, "DM_ERR_PERMISSION", "permission denied"},
    {DM_ERR_NO_SPACE, "DM_ERR_NO_SPACE", "no space left"},
    {DM_ERR_NOT_IMPLEMENTED, "DM_ERR_NOT_IMPLEMENTED", "not implemented yet"},
    {DM_ERR_CONFIG, "DM_ERR_CONFIG", "invalid configuration"},
    {DM_ERR_CONFIG_UNKNOWN_KEY, "DM_ERR_CONFIG_UNKNOWN_KEY", "unknown configuration key"},
    {DM_ERR_CONFIG_TYPE, "DM_ERR_CONFIG_TYPE", "configuration value has the wrong type"},
    {DM_ERR_CONFIG_RANGE, "DM_ERR_CONFIG_RANGE", "configuration value out of range"},
    {DM_ERR_CONFIG_MISSING, "DM_ERR_CONFIG_MISSING", "required configuration key missing"},
    {DM_ERR_SCHEMA, "DM_ERR_SCHEMA", "schema error"},
    {DM_ERR_SCHEMA_PARSE, "DM_ERR_SCHEMA_PARSE", "invalid schema"},
    {DM_ERR_SCHEMA_MISMATCH, "DM_ERR_SCHEMA_MISMATCH", "data does not match schema"},
    {DM_ERR_SCHEMA_INCOMPATIBLE, "DM_ERR_SCHEMA_INCOMPATIBLE", "incompatible schema"},
    {DM_ERR_SCHEMA_NEW_VERSION, "DM_ERR_SCHEMA_NEW_VERSION", "new schema version"},
    {DM_ERR_LOG, "DM_ERR_LOG", "log error"},
    {DM_ERR_LOG_CORRUPT, "DM_ERR_LOG_CORRUPT", "corrupt log data"},
    {DM_ERR_LOG_OFFSET_RANGE, "DM_ERR_LOG_OFFSET_RANGE", "offset out of range"},
    {DM_ERR_LOG_TOPIC_NOT_FOUND, "DM_ERR_LOG_TOPIC_NOT_FOUND", "no such topic"},
    {DM_ERR_LOG_TOPIC_EXISTS, "DM_ERR_LOG_TOPIC_EXISTS", "topic already exists"},
    {DM_ERR_LOG_BAD_NAME, "DM_ERR_LOG_BAD_NAME", "invalid topic or group name"},
    {DM_ERR_LOG_META, "DM_ERR_LOG_META", "log metadata corrupt or missing"},
    {DM_ERR_LOG_PARTITION, "DM_ERR_LOG_PARTITION", "no such partition"},
    {DM_ERR_TRANSPORT, "DM_ERR_TRANSPORT", "transport error"},
    {DM_ERR_TRANSPORT_BACKEND, "DM_ERR_TRANSPORT_BACKEND", "unknown transport backend"},
    {DM_ERR_TRANSPORT_FENCED, "DM_ERR_TRANSPORT_FENCED", "producer fenced by a newer instance"},
    {DM_ERR_TRANSPORT_BROKER, "DM_ERR_TRANSPORT_BROKER", "Kafka broker error"},
    {DM_ERR_ENGINE, "DM_ERR_ENGINE", "engine error"},
    {DM_ERR_CONNECTOR, "DM_ERR_CONNECTOR", "connector error"},
    {DM_ERR_CONTROL, "DM_ERR_CONTROL", "control plane error"},
};

static int find(dm_err_t code)
{
    for (size_t i = 0; i < sizeof(err_table) / sizeof(err_table[0]); i++)
        if (err_table[i].code == code) return (int)i;
    return -1;
}

const char *dm_err_name(dm_err_t code)
{
    int i = find(code);
    return i < 0 ? "DM_ERR_UNKNOWN" : err_table[i].name;
}

const char *dm_err_str(dm_err_t code)
{
    int i = find(code);
    return i < 0 ? "unknown error" : err_table[i].text;
}

void dm_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned c = p[0];
        size_t n = c < 0x80                 ? 1
                   : c >= 0xC2 && c <= 0xDF ? 2
                   : (c & 0xF0) == 0xE0     ? 3
                   : c >= 0xF0 && c <= 0xF4 ? 4
                                            : 0;
        size_t i = 1;
        while (i < n && (p[i] & 0xC0) == 0x80) /* stops at the terminating NUL */
            i++;
        bool ok = n && i == n;
        if (ok && n == 3) ok = !(c == 0xE0 && p[1] < 0xA0) && !(c == 0xED && p[1] >= 0xA0);
        if (ok && n == 4) ok = !(c == 0xF0 && p[1] < 0x90) && !(c == 0xF4 && p[1] >= 0x90);
        if (ok) {
            p += n;
        } else {
            *p++ = '?';
        }
    }
}

dm_err_t dm_error_setv(dm_error_t *err, dm_err_t code, const char *fmt, va_list ap)
{
    if (!err) return code;
    err->code = code;
    err->retriable = code == DM_ERR_TIMEOUT || code == DM_ERR_AGAIN || code == DM_ERR_NO_SPACE ||
                     code == DM_ERR_TRANSPORT_BROKER || code == DM_ERR_TRANSPORT_FENCED;
    err->fatal = false;
    if (fmt)
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
    else
        snprintf(err->message, sizeof(err->message), "%s", dm_err_str(code));
    dm_utf8_repair(err->message);
    return code;
}

dm_err_t dm_error_set(dm_error_t *err, dm_err_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dm_error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

dm_err_t dm_error_set_retriable(dm_error_t *err, dm_err_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dm_error_setv(err, code, fmt, ap);
    va_end(ap);
    if (err) err->retriable = true;
    return code;
}

dm_err_t dm_error_prefix(dm_error_t *err, const char *fmt, ...)
{
    if (!err) return DM_OK;
    char prefix[DM_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    if (n < 0) return err->code;
    char old[DM_ERROR_MSG_MAX];
    memcpy(old, err->message, sizeof(old));
    snprintf(err->message, sizeof(err->message), "%s: %s", prefix, old);
    dm_utf8_repair(err->message);
    return err->code;
}

void dm_error_clear(dm_error_t *err)
{
    if (!err) return;
    err->code = DM_OK;
    err->retriable = false;
    err->fatal = false;
    err->message[0] = '\0';
}
