/* core/redact.c — masks secrets in connection strings. */
#include "core/redact.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

static bool is_secret_key(const char *k, size_t n)
{
    static const char *keys[] = {"password", "passwd",  "pwd",    "token",
                                 "secret",   "api_key", "apikey", "sslpassword"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i]) == n && strncasecmp(k, keys[i], n) == 0) return true;
    return false;
}

static void put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        out[(*o)++] = s[i];
}

char *dm_redact_dsn(const char *dsn, char *out, size_t cap)
{
    size_t o = 0;
    if (!cap) return out;
    const char *scheme = strstr(dsn, "://");
    if (scheme) {
        /* URL form: scheme://user:password@host… ; query parameters too. */
        const char *auth = scheme + 3;
        const char *at = strchr(auth, '@');
        const char *slash = strchr(auth, '/');
        if (at && (!slash || at < slash)) {
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (colon) {
                put(out, cap, &o, dsn, (size_t)(colon + 1 - dsn));
                put(out, cap, &o, "***", 3);
                dsn = at;
            }
        }
        const char *p = dsn;
        while (*p) {
            if ((*p == '?' || *p == '&') && p[1]) {
                put(out, cap, &o, p, 1);
                const char *k = p + 1;
                const char *eq = k;
                while (*eq && *eq != '=' && *eq != '&')
                    eq++;
                put(out, cap, &o, k, (size_t)(eq - k));
                if (*eq == '=') {
                    const char *v = eq + 1, *ve = v;
                    while (*ve && *ve != '&')
                        ve++;
                    put(out, cap, &o, "=", 1);
                    if (is_secret_key(k, (size_t)(eq - k)))
                        put(out, cap, &o, "***", 3);
                    else
                        put(out, cap, &o, v, (size_t)(ve - v));
                    p = ve;
                } else {
                    p = eq;
                }
                continue;
            }
            put(out, cap, &o, p, 1);
            p++;
        }
        out[o] = '\0';
        return out;
    }
    /* key=value form; values may be single-quoted with backslash escapes. */
    const char *p = dsn;
    while (*p) {
        if (isspace((unsigned char)*p)) {
            put(out, cap, &o, p++, 1);
            continue;
        }
        const char *k = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        size_t klen = (size_t)(p - k);
        put(out, cap, &o, k, klen);
        const char *after_key = p;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=') {
            p = after_key; /* a plain word: keep the spaces after it */
            continue;
        }
        put(out, cap, &o, "=", 1);
        p++;
        while (isspace((unsigned char)*p))
            p++;
        const char *v = p;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'') {
                if (*p == '\\' && p[1]) p++;
                p++;
            }
            if (*p == '\'') p++;
        } else {
            while (*p && !isspace((unsigned char)*p))
                p++;
        }
        if (is_secret_key(k, klen))
            put(out, cap, &o, "***", 3);
        else
            put(out, cap, &o, v, (size_t)(p - v));
    }
    out[o] = '\0';
    return out;
}
