/* Unit tests for control/audit: the audit log in an internal topic — entries a
 * store held move into a new topic once, appends and queries (since, who,
 * outcome, the newest N oldest first), and the entries survive a reopen. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "control/audit.h"
#include "core/clock.h"

static char dir[64];

static dm_store_audit_t entry(int64_t at, const char *token, const char *owner, const char *outcome,
                              const char *detail)
{
    return (dm_store_audit_t){.at_ms = at,
                              .token = token,
                              .owner = owner,
                              .role = "editor",
                              .remote = "127.0.0.1",
                              .method = "POST",
                              .path = "/api/v1/apply",
                              .detail = detail,
                              .status = strcmp(outcome, "ok") ? 403 : 200,
                              .outcome = outcome,
                              .reason = strcmp(outcome, "ok") ? "owned by team 'a'" : ""};
}

static void test_store_entries_move_and_queries(void)
{
    char path[128], url[128];
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    snprintf(url, sizeof(url), "embedded:%s/log", dir);
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    REQUIRE(s);
    int64_t t0 = dm_wall_ms() - 10000;
    dm_store_audit_t e1 = entry(t0, "aaa", "team-a", "ok", "apply Source one");
    dm_store_audit_t e2 = entry(t0 + 1000, "bbb", "team-b", "denied", "apply Source two");
    CHECK(dm_store_audit_add(s, &e1, &err) == DM_OK);
    CHECK(dm_store_audit_add(s, &e2, &err) == DM_OK);
    dm_transport_t *t;
    REQUIRE(dm_transport_open(url, &t, &err) == DM_OK);
    dm_audit_t *a;
    REQUIRE(dm_audit_open(t, s, &a, &err) == DM_OK);
    /* the store's entries are in the topic now, and only there */
    json_t *left;
    CHECK(dm_store_audit_query(s, &(dm_store_audit_filter_t){0}, &left, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(left), 0);
    json_decref(left);
    dm_store_audit_t e3 = entry(t0 + 5000, "aaa", "team-a", "failed", "delete Pipeline p");
    CHECK(dm_audit_add(a, &e3, &err) == DM_OK);
    json_t *all;
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){0}, &all, &err) == DM_OK);
    REQUIRE(json_array_size(all) == 3);
    const json_t *first = json_array_get(all, 0);
    CHECK_STR_EQ(json_string_value(json_object_get(first, "detail")), "apply Source one");
    CHECK_EQ_INT(json_integer_value(json_object_get(first, "at_ms")), t0);
    CHECK_STR_EQ(json_string_value(json_object_get(first, "remote")), "127.0.0.1");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(all, 1), "status")), 403);
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(all, 1), "reason")),
                 "owned by team 'a'");
    CHECK(json_integer_value(json_object_get(json_array_get(all, 2), "seq")) >
          json_integer_value(json_object_get(first, "seq")));
    json_decref(all);
    /* filters: who (token or team), outcome, since, the newest N */
    json_t *q;
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){.who = "team-a"}, &q, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(q), 2);
    json_decref(q);
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){.who = "bbb"}, &q, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(q), 1);
    json_decref(q);
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){.outcome = "failed"}, &q, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(q), 1);
    json_decref(q);
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){.since_ms = t0 + 500}, &q, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(q), 2);
    json_decref(q);
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){.limit = 2}, &q, &err) == DM_OK);
    REQUIRE(json_array_size(q) == 2); /* the newest two, oldest first */
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(q, 0), "detail")),
                 "apply Source two");
    CHECK_STR_EQ(json_string_value(json_object_get(json_array_get(q, 1), "detail")),
                 "delete Pipeline p");
    json_decref(q);
    dm_audit_free(a);
    dm_transport_close(t);
    /* reopened: the entries are still there, and nothing moved twice */
    CHECK(dm_store_audit_add(s, &e1, &err) == DM_OK); /* a stray row: stays in the store */
    REQUIRE(dm_transport_open(url, &t, &err) == DM_OK);
    REQUIRE(dm_audit_open(t, s, &a, &err) == DM_OK);
    CHECK(dm_audit_query(a, &(dm_store_audit_filter_t){0}, &q, &err) == DM_OK);
    CHECK_EQ_INT(json_array_size(q), 3);
    json_decref(q);
    dm_audit_free(a);
    dm_transport_close(t);
    dm_store_close(s);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/dm-test-audit-XXXXXX");
    if (!mkdtemp(dir)) return 1;
    RUN(test_store_entries_move_and_queries);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) return 1;
    return check_summary();
}
