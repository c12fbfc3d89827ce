/* control/session.h — browser sessions for the web UI (datamesh up --auth).
 *
 * The UI signs in by sending a token once (POST /api/v1/session with
 * `Authorization: Bearer TOKEN`); the controller answers with a session
 * cookie and forgets the token. The cookie holds a random session id only:
 * HttpOnly (scripts cannot read it), SameSite=Strict (other sites cannot make
 * the browser send it), Path=/, Secure over HTTPS. A request that comes with
 * the cookie and changes anything (any method but GET and HEAD) must also
 * carry the session's CSRF token in the X-CSRF-Token header, which only a
 * page of the UI's own origin can read (GET /api/v1/session).
 *
 * Sessions live in the controller's memory and, once dm_sessions_keep_in
 * was called, in its store too (the hash of the id, the team, role, end and
 * CSRF token; never the id or the API token), so a restart keeps everyone
 * signed in. A
 * session acts with its token's team and role and ends when that token is
 * revoked or expires (checked on every request), on sign-out, or after
 * DM_SESSION_TTL_MS. The table holds SHA-256 hashes of the ids, not the ids.
 * Every function is thread-safe.
 */
#ifndef DM_CONTROL_SESSION_H
#define DM_CONTROL_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define DM_SESSION_COOKIE "dm_session"
#define DM_SESSION_HEADER "X-CSRF-Token"
#define DM_SESSION_TTL_MS (12 * 3600 * 1000LL)
#define DM_SESSION_MAX    4096
#define DM_SESSION_ID_HEX 64 /* characters of a session id and of a CSRF token */

typedef struct dm_sessions dm_sessions_t;

/* What a session stands for. */
typedef struct dm_session_info {
    char token[32]; /* the id of the token it signed in with */
    char owner[64];
    int role; /* dm_role_t */
    int64_t expires_ms;
    char csrf[DM_SESSION_ID_HEX + 1];
} dm_session_info_t;

/* An empty table; NULL when out of memory. */
dm_sessions_t *dm_sessions_new(void);

struct dm_store;
/* Keeps the table in store from now on: loads the sessions kept there that
 * have not ended (dropping the ended ones) and writes every open and end
 * through. A store error is logged; the session then lives in memory only.
 * Call once, before the table is used; store must outlive the table. */
void dm_sessions_keep_in(dm_sessions_t *s, struct dm_store *store, int64_t now_ms);

/* Frees the table (NULL is fine). */
void dm_sessions_free(dm_sessions_t *s);

/* Opens a session for info (its csrf is filled here; expires_ms is lowered to
 * now + DM_SESSION_TTL_MS). Writes the new id to id[DM_SESSION_ID_HEX + 1].
 * When the table is full the session closest to its end is dropped.
 * DM_ERR_INTERNAL without randomness. */
dm_err_t dm_sessions_open(dm_sessions_t *s, dm_session_info_t *info, int64_t now_ms, char *id,
                          dm_error_t *err);

/* The session of id into out: true when it exists and has not ended. */
bool dm_sessions_find(dm_sessions_t *s, const char *id, int64_t now_ms, dm_session_info_t *out);

/* Ends the session of id (nothing when there is none). */
void dm_sessions_close(dm_sessions_t *s, const char *id);

/* Whether the request's CSRF header value matches the session's, in constant time. */
bool dm_sessions_csrf_ok(const dm_session_info_t *info, const char *header);

#endif
