/* control/session.c — the table of the UI's browser sessions (see session.h).
 *
 * A fixed array scanned under one mutex: a controller has a handful of people
 * signed in, and a full table (DM_SESSION_MAX) still scans in microseconds. */
#include "control/session.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/store.h"
#include "core/hex.h"
#include "core/log.h"

typedef struct slot {
    bool used;
    char hash[65]; /* SHA-256 of the session id, hex */
    dm_session_info_t info;
} slot_t;

struct dm_sessions {
    pthread_mutex_t mu;
    dm_store_t *store; /* NULL: memory only */
    slot_t slots[DM_SESSION_MAX];
};

#define SPACE "session"

/* Writes a session through to the store (outside the table's lock); a
 * failure is logged and the session lives on in memory. */
static void keep(dm_sessions_t *s, const char *hash, const dm_session_info_t *info)
{
    if (!s->store) return;
    dm_error_t err = {0};
    json_t *v =
        json_pack("{s:s, s:s, s:i, s:I, s:s}", "token", info->token, "owner", info->owner, "role",
                  info->role, "expires_ms", (json_int_t)info->expires_ms, "csrf", info->csrf);
    if (!v || dm_store_kv_put(s->store, SPACE, hash, v, &err))
        DM_WARN("control", "session: not kept for a restart: %s",
                v ? err.message : "out of memory");
    json_decref(v);
}

static void forget(dm_sessions_t *s, const char *hash)
{
    dm_error_t err = {0};
    if (s->store && dm_store_kv_delete(s->store, SPACE, hash, &err))
        DM_WARN("control", "session: an ended session stays in the store: %s", err.message);
}

void dm_sessions_keep_in(dm_sessions_t *s, dm_store_t *store, int64_t now_ms)
{
    json_t *all = NULL;
    dm_error_t err = {0};
    s->store = store;
    if (dm_store_kv_list(store, SPACE, &all, &err)) {
        DM_WARN("control", "session: the kept sessions cannot be read: %s", err.message);
        return;
    }
    const char *hash;
    json_t *v;
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    json_object_foreach(all, hash, v)
    {
        const char *token = json_string_value(json_object_get(v, "token"));
        const char *owner = json_string_value(json_object_get(v, "owner"));
        const char *csrf = json_string_value(json_object_get(v, "csrf"));
        int64_t expires = json_integer_value(json_object_get(v, "expires_ms"));
        bool ok = token && owner && csrf && strlen(hash) == 64 &&
                  strlen(csrf) == DM_SESSION_ID_HEX && expires > now_ms && n < DM_SESSION_MAX;
        if (!ok) continue; /* ended or not a session: dropped below */
        slot_t *sl = &s->slots[n++];
        sl->used = true;
        snprintf(sl->hash, sizeof(sl->hash), "%s", hash);
        snprintf(sl->info.token, sizeof(sl->info.token), "%s", token);
        snprintf(sl->info.owner, sizeof(sl->info.owner), "%s", owner);
        snprintf(sl->info.csrf, sizeof(sl->info.csrf), "%s", csrf);
        sl->info.role = (int)json_integer_value(json_object_get(v, "role"));
        sl->info.expires_ms = expires;
    }
    pthread_mutex_unlock(&s->mu);
    json_object_foreach(all, hash, v)
    {
        int64_t expires = json_integer_value(json_object_get(v, "expires_ms"));
        if (expires <= now_ms) forget(s, hash);
    }
    json_decref(all);
}

static bool random_hex(char *out)
{
    uint8_t b[DM_SESSION_ID_HEX / 2];
    if (RAND_bytes(b, (int)sizeof(b)) != 1) return false;
    dm_hex_encode(b, sizeof(b), out);
    OPENSSL_cleanse(b, sizeof(b));
    return true;
}

/* out[65] = hex SHA-256 of id; false for anything that is not a session id. */
static bool hash_of(const char *id, char *out)
{
    if (!id || strlen(id) != DM_SESSION_ID_HEX) return false;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(id, DM_SESSION_ID_HEX, md, &n, EVP_sha256(), NULL) || n != 32) return false;
    dm_hex_encode(md, 32, out);
    return true;
}

dm_sessions_t *dm_sessions_new(void)
{
    dm_sessions_t *s = calloc(1, sizeof(*s));
    if (s) pthread_mutex_init(&s->mu, NULL);
    return s;
}

void dm_sessions_free(dm_sessions_t *s)
{
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
}

dm_err_t dm_sessions_open(dm_sessions_t *s, dm_session_info_t *info, int64_t now_ms, char *id,
                          dm_error_t *err)
{
    char hash[65];
    if (!random_hex(id) || !random_hex(info->csrf) || !hash_of(id, hash))
        return dm_error_set(err, DM_ERR_INTERNAL, "session: no randomness to make ids from");
    if (!info->expires_ms || info->expires_ms > now_ms + DM_SESSION_TTL_MS)
        info->expires_ms = now_ms + DM_SESSION_TTL_MS;
    pthread_mutex_lock(&s->mu);
    /* A free or ended slot, else the one that would end first. */
    slot_t *pick = NULL;
    char dropped[65] = "";
    for (size_t i = 0; i < DM_SESSION_MAX; i++) {
        slot_t *sl = &s->slots[i];
        if (!sl->used || sl->info.expires_ms <= now_ms) {
            pick = sl;
            break;
        }
        if (!pick || sl->info.expires_ms < pick->info.expires_ms) pick = sl;
    }
    if (pick->used) memcpy(dropped, pick->hash, sizeof(dropped));
    pick->used = true;
    memcpy(pick->hash, hash, sizeof(hash));
    pick->info = *info;
    pthread_mutex_unlock(&s->mu);
    if (dropped[0]) forget(s, dropped);
    keep(s, hash, info);
    return DM_OK;
}

bool dm_sessions_find(dm_sessions_t *s, const char *id, int64_t now_ms, dm_session_info_t *out)
{
    char hash[65];
    if (!hash_of(id, hash)) return false;
    bool found = false, ended = false;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < DM_SESSION_MAX && !found; i++) {
        slot_t *sl = &s->slots[i];
        if (!sl->used || CRYPTO_memcmp(sl->hash, hash, 64)) continue;
        if (sl->info.expires_ms <= now_ms) {
            sl->used = false;
            ended = true;
            break;
        }
        *out = sl->info;
        found = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (ended) forget(s, hash);
    return found;
}

void dm_sessions_close(dm_sessions_t *s, const char *id)
{
    char hash[65];
    if (!hash_of(id, hash)) return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < DM_SESSION_MAX; i++)
        if (s->slots[i].used && !CRYPTO_memcmp(s->slots[i].hash, hash, 64))
            memset(&s->slots[i], 0, sizeof(s->slots[i]));
    pthread_mutex_unlock(&s->mu);
    forget(s, hash);
}

bool dm_sessions_csrf_ok(const dm_session_info_t *info, const char *header)
{
    return header && strlen(header) == DM_SESSION_ID_HEX &&
           CRYPTO_memcmp(header, info->csrf, DM_SESSION_ID_HEX) == 0;
}
