/* tests/unit/test_control_session.c — the UI's session table (control/session.h). */
#include "check.h"
#include "control/session.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "control/store.h"

static dm_session_info_t info_for(const char *token, int64_t expires_ms)
{
    dm_session_info_t s = {.role = 2, .expires_ms = expires_ms};
    snprintf(s.token, sizeof(s.token), "%s", token);
    snprintf(s.owner, sizeof(s.owner), "team-a");
    return s;
}

static void test_open_find_close(void)
{
    dm_sessions_t *t = dm_sessions_new();
    REQUIRE(t);
    dm_session_info_t s = info_for("abc", 0), got;
    char id[DM_SESSION_ID_HEX + 1];
    REQUIRE(dm_sessions_open(t, &s, 1000, id, NULL) == DM_OK);
    CHECK_EQ_INT(strlen(id), DM_SESSION_ID_HEX);
    CHECK_EQ_INT(strlen(s.csrf), DM_SESSION_ID_HEX);
    CHECK(strcmp(id, s.csrf) != 0);
    CHECK_EQ_INT(s.expires_ms, 1000 + DM_SESSION_TTL_MS); /* no expiry: the TTL */
    REQUIRE(dm_sessions_find(t, id, 2000, &got));
    CHECK_STR_EQ(got.token, "abc");
    CHECK_STR_EQ(got.owner, "team-a");
    CHECK_STR_EQ(got.csrf, s.csrf);
    /* Another id, a changed one, a short one: nothing. */
    char other[DM_SESSION_ID_HEX + 1];
    memcpy(other, id, sizeof(other));
    other[0] = other[0] == 'a' ? 'b' : 'a';
    CHECK(!dm_sessions_find(t, other, 2000, &got));
    CHECK(!dm_sessions_find(t, "abc", 2000, &got));
    CHECK(!dm_sessions_find(t, "", 2000, &got));
    CHECK(!dm_sessions_find(t, NULL, 2000, &got));
    dm_sessions_close(t, id);
    CHECK(!dm_sessions_find(t, id, 2000, &got));
    dm_sessions_free(t);
}

static void test_expiry_is_the_earlier_of_token_and_ttl(void)
{
    dm_sessions_t *t = dm_sessions_new();
    dm_session_info_t s = info_for("tok", 5000), got;
    char id[DM_SESSION_ID_HEX + 1];
    REQUIRE(dm_sessions_open(t, &s, 1000, id, NULL) == DM_OK);
    CHECK_EQ_INT(s.expires_ms, 5000); /* the token ends before the TTL */
    CHECK(dm_sessions_find(t, id, 4999, &got));
    CHECK(!dm_sessions_find(t, id, 5000, &got));
    CHECK(!dm_sessions_find(t, id, 1000, &got)); /* an ended session is gone for good */
    dm_sessions_free(t);
}

static void test_csrf(void)
{
    dm_sessions_t *t = dm_sessions_new();
    dm_session_info_t s = info_for("tok", 0);
    char id[DM_SESSION_ID_HEX + 1];
    REQUIRE(dm_sessions_open(t, &s, 1, id, NULL) == DM_OK);
    CHECK(dm_sessions_csrf_ok(&s, s.csrf));
    CHECK(!dm_sessions_csrf_ok(&s, NULL));
    CHECK(!dm_sessions_csrf_ok(&s, ""));
    CHECK(!dm_sessions_csrf_ok(&s, id)); /* the cookie is not the CSRF token */
    char longer[DM_SESSION_ID_HEX + 2];
    snprintf(longer, sizeof(longer), "%sx", s.csrf);
    CHECK(!dm_sessions_csrf_ok(&s, longer));
    dm_sessions_free(t);
}

/* A full table drops the session closest to its end, never refuses a sign-in. */
static void test_full_table_drops_the_oldest(void)
{
    dm_sessions_t *t = dm_sessions_new();
    static char ids[DM_SESSION_MAX + 1][DM_SESSION_ID_HEX + 1];
    for (int i = 0; i <= DM_SESSION_MAX; i++) {
        dm_session_info_t s = info_for("tok", 1000000 + i);
        REQUIRE(dm_sessions_open(t, &s, 1, ids[i], NULL) == DM_OK);
    }
    dm_session_info_t got;
    CHECK(!dm_sessions_find(t, ids[0], 2, &got)); /* the first to end was dropped */
    CHECK(dm_sessions_find(t, ids[1], 2, &got));
    CHECK(dm_sessions_find(t, ids[DM_SESSION_MAX], 2, &got));
    dm_sessions_free(t);
}

/* Every id is new: 2,000 sessions, no two alike. */
static void test_ids_unique(void)
{
    dm_sessions_t *t = dm_sessions_new();
    static char ids[2000][DM_SESSION_ID_HEX + 1];
    for (int i = 0; i < 2000; i++) {
        dm_session_info_t s = info_for("tok", 0);
        REQUIRE(dm_sessions_open(t, &s, 1, ids[i], NULL) == DM_OK);
    }
    int dup = 0;
    for (int i = 0; i < 2000; i++)
        for (int j = i + 1; j < 2000; j++)
            dup += !strcmp(ids[i], ids[j]);
    CHECK_EQ_INT(dup, 0);
    dm_sessions_free(t);
}

/* Sessions kept in the store outlive the table (a controller restart): a new
 * table on the same store finds them with their team and CSRF token; an
 * ended or closed one is gone, also from the store; the store holds no id. */
static void test_kept_across_restart(void)
{
    char dir[] = "/tmp/dm-session-XXXXXX", path[300];
    REQUIRE(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/state.db", dir);
    dm_store_t *store = dm_store_open(path, NULL);
    REQUIRE(store);
    dm_sessions_t *t = dm_sessions_new();
    REQUIRE(t);
    dm_sessions_keep_in(t, store, 1000);
    dm_session_info_t a = info_for("tok-a", 0), b = info_for("tok-b", 5000), c = info_for("c", 0),
                      got;
    char ida[DM_SESSION_ID_HEX + 1], idb[DM_SESSION_ID_HEX + 1], idc[DM_SESSION_ID_HEX + 1];
    REQUIRE(dm_sessions_open(t, &a, 1000, ida, NULL) == DM_OK);
    REQUIRE(dm_sessions_open(t, &b, 1000, idb, NULL) == DM_OK);
    REQUIRE(dm_sessions_open(t, &c, 1000, idc, NULL) == DM_OK);
    dm_sessions_close(t, idc);
    dm_sessions_free(t);
    json_t *kept = NULL;
    REQUIRE(dm_store_kv_list(store, "session", &kept, NULL) == DM_OK);
    CHECK_EQ_INT(json_object_size(kept), 2);
    char *text = json_dumps(kept, 0);
    CHECK(text && !strstr(text, ida) && !strstr(text, idb)); /* hashes, not ids */
    free(text);
    json_decref(kept);
    /* the restart, after b ended */
    t = dm_sessions_new();
    REQUIRE(t);
    dm_sessions_keep_in(t, store, 6000);
    REQUIRE(dm_sessions_find(t, ida, 6000, &got));
    CHECK_STR_EQ(got.token, "tok-a");
    CHECK_STR_EQ(got.owner, "team-a");
    CHECK_STR_EQ(got.csrf, a.csrf);
    CHECK_EQ_INT(got.role, 2);
    CHECK_EQ_INT(got.expires_ms, a.expires_ms);
    CHECK(!dm_sessions_find(t, idb, 6000, &got));
    CHECK(!dm_sessions_find(t, idc, 6000, &got));
    REQUIRE(dm_store_kv_list(store, "session", &kept, NULL) == DM_OK);
    CHECK_EQ_INT(json_object_size(kept), 1); /* the ended one dropped */
    json_decref(kept);
    dm_sessions_close(t, ida);
    dm_sessions_free(t);
    t = dm_sessions_new();
    dm_sessions_keep_in(t, store, 7000);
    CHECK(!dm_sessions_find(t, ida, 7000, &got)); /* signed out stays signed out */
    dm_sessions_free(t);
    dm_store_close(store);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

int main(void)
{
    RUN(test_open_find_close);
    RUN(test_expiry_is_the_earlier_of_token_and_ttl);
    RUN(test_csrf);
    RUN(test_full_table_drops_the_oldest);
    RUN(test_ids_unique);
    RUN(test_kept_across_restart);
    return check_summary();
}
