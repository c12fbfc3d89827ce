/* Unit tests for the `lua` step (engine/proc_lua.c): records in as tables
 * and out against the output schema (changed, dropped, several), errors and
 * results that do not fit to the dead letters with the message, and the
 * sandbox: no io/os/require/load/dofile/string.dump, bytecode refused, the
 * instruction budget and the memory cap enforced without harm to the state. */
#include <unistd.h>

#include "check.h"
#include "engine/processor.h"

static const char *schema_json =
    "{\"type\": \"record\", \"name\": \"Sale\", \"fields\": ["
    " {\"name\": \"user\", \"type\": \"string\"},"
    " {\"name\": \"amount\", \"type\": \"long\"},"
    " {\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}},"
    " {\"name\": \"note\", \"type\": [\"null\", \"string\"], \"default\": null}]}";

static const char *rows[] = {
    "{\"user\": \"a\", \"amount\": 5, \"tags\": [\"x\", \"y\"], \"note\": \"hi\"}",
    "{\"user\": \"b\", \"amount\": -1, \"tags\": [], \"note\": null}",
    "{\"user\": \"c\", \"amount\": 7, \"tags\": [\"z\"], \"note\": null}",
};

static dm_avro_schema_t *schema;

static void load_rows(dm_rows_t *b)
{
    dm_rows_init(b, schema->root);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        dm_row_t *r = dm_rows_push(b);
        dm_error_t err = {0};
        if (dm_avro_from_json_text(schema->root, rows[i], strlen(rows[i]), DM_AVRO_JSON_PLAIN,
                                   &b->arena, &r->value, &err))
            printf("    row %zu: %s\n", i, err.message);
    }
}

/* Runs script over the rows: the outputs as JSON lines and the dead letters'
 * reasons, "; "-separated. */
static dm_err_t run(json_t *conf, char *out, size_t cap, char *dead_out, size_t dcap,
                    dm_error_t *err)
{
    dm_proc_t *p = NULL;
    out[0] = dead_out[0] = '\0';
    dm_err_t rc = dm_proc_open(&dm_proc_lua, NULL, conf, schema->root, &p, err);
    json_decref(conf);
    if (rc) return rc;
    const dm_avro_node_t *node = p->output ? p->output->root : schema->root;
    dm_rows_t in, res;
    load_rows(&in);
    dm_rows_init(&res, node);
    dm_dead_letters_t dead = {0};
    rc = p->ops->process(p, &in, &res, &dead, err);
    size_t o = 0;
    for (uint32_t i = 0; !rc && i < res.n; i++) {
        dm_buf_t j = DM_BUF_INIT;
        const char *s = "?";
        dm_error_t e = {0};
        if (dm_avro_to_json(node, &res.records[i].value, DM_AVRO_JSON_PLAIN, &j, &e) == DM_OK)
            dm_buf_cstr(&j, &s);
        o += (size_t)snprintf(out + o, cap - o, "%s\n", s);
        dm_buf_free(&j);
    }
    o = 0;
    for (uint32_t i = 0; i < dead.n; i++)
        o += (size_t)snprintf(dead_out + o, dcap - o, "%u %s; ", dead.items[i].index,
                              dead.items[i].reason);
    dm_dead_letters_free(&dead);
    dm_rows_free(&in);
    dm_rows_free(&res);
    dm_proc_close(p);
    return rc;
}

static json_t *script(const char *s)
{
    return json_pack("{s:s}", "script", s);
}

static void test_transform_drop_several(void)
{
    char out[4096], dead[2048];
    dm_error_t err = {0};
    json_t *conf = json_pack(
        "{s:s, s:{s:s, s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:[s,s]}]}}", "script",
        "function process(r)\n"
        "  if r.amount < 0 then return nil end\n"
        "  local out = {user = string.upper(r.user), cents = r.amount * 100, note = r.note}\n"
        "  if #r.tags > 1 then return out, {user = r.tags[2], cents = 0} end\n"
        "  return out\n"
        "end",
        "output", "type", "record", "name", "Out", "fields", "name", "user", "type", "string",
        "name", "cents", "type", "long", "name", "note", "type", "null", "string");
    REQUIRE(run(conf, out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
    CHECK_STR_EQ(out, "{\"user\":\"A\",\"cents\":500,\"note\":\"hi\"}\n"
                      "{\"user\":\"y\",\"cents\":0,\"note\":null}\n"
                      "{\"user\":\"C\",\"cents\":700,\"note\":null}\n");
    CHECK_STR_EQ(dead, "");
    /* output: same (the default) keeps the input's schema */
    REQUIRE(
        run(json_pack("{s:s, s:s}", "script",
                      "function process(r) r.amount = r.amount + 1 return r end", "output", "same"),
            out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
    CHECK_CONTAINS(out, "{\"user\":\"a\",\"amount\":6,\"tags\":[\"x\",\"y\"],\"note\":\"hi\"}");
    CHECK(run(json_pack("{s:s, s:s}", "script", "function process(r) return r end", "output",
                        "other"),
              out, sizeof(out), dead, sizeof(dead), &err) != DM_OK);
    CHECK_CONTAINS(err.message, "output: expected an Avro record schema or \"same\"");
}

static void test_errors_to_dead_letters(void)
{
    char out[4096], dead[2048];
    dm_error_t err = {0};
    /* a runtime error for one record; a result that does not fit for another */
    REQUIRE(run(script("function process(r)\n"
                       "  if r.user == 'a' then error('no a please') end\n"
                       "  if r.user == 'b' then r.amount = 'lots' end\n"
                       "  return r\n"
                       "end"),
                out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
    CHECK_STR_EQ(out, "{\"user\":\"c\",\"amount\":7,\"tags\":[\"z\"],\"note\":null}\n");
    CHECK_CONTAINS(dead, "0 lua: script:2: no a please; ");
    CHECK_CONTAINS(dead, "1 lua: amount: expected an integer, got string; ");
    /* refusals at open, with the Lua message */
    CHECK(run(script("function process(r) return r"), out, sizeof(out), dead, sizeof(dead), &err) !=
          DM_OK);
    CHECK_CONTAINS(err.message, "'end' expected");
    /* from a file, the text near the error stays out of the message */
    FILE *f = fopen("/tmp/dm-lua-test-secret.lua", "w");
    REQUIRE(f != NULL);
    fputs("root:x:0:0:secret\n", f);
    fclose(f);
    CHECK(run(json_pack("{s:s}", "file", "/tmp/dm-lua-test-secret.lua"), out, sizeof(out), dead,
              sizeof(dead), &err) != DM_OK);
    CHECK_CONTAINS(err.message, "/tmp/dm-lua-test-secret.lua:1:");
    CHECK(strstr(err.message, "root") == NULL && strstr(err.message, "secret:") == NULL);
    unlink("/tmp/dm-lua-test-secret.lua");
    CHECK(run(script("x = 1"), out, sizeof(out), dead, sizeof(dead), &err) != DM_OK);
    CHECK_CONTAINS(err.message, "the script defines no function process");
    CHECK(run(json_pack("{s:s, s:s}", "script", "x", "file", "/x.lua"), out, sizeof(out), dead,
              sizeof(dead), &err) != DM_OK);
    CHECK_CONTAINS(err.message, "give script or file");
}

static void test_sandbox(void)
{
    char out[4096], dead[2048];
    dm_error_t err = {0};
    const char *escapes[] = {
        "os.execute('touch /tmp/dm-lua-escaped')",
        "io.open('/etc/passwd')",
        "require('os')",
        "load('return 1')()",
        "dofile('/etc/passwd')",
        "loadfile('/etc/passwd')",
        "string.dump(process)",
        "debug.getinfo(1)",
        "package.loadlib('libc.so.6', 'system')",
        "collectgarbage('stop')",
    };
    for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
        char s[256];
        snprintf(s, sizeof(s), "function process(r) %s return r end", escapes[i]);
        REQUIRE(run(script(s), out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
        if (strstr(dead, "attempt to") == NULL || out[0]) {
            printf("    escape %zu not refused: %s | %s\n", i, out, dead);
            CHECK(!"sandbox escape");
        }
    }
    CHECK(access("/tmp/dm-lua-escaped", F_OK) != 0);
    /* bytecode is refused at load */
    CHECK(run(script("\x1bLua\x54"), out, sizeof(out), dead, sizeof(dead), &err) != DM_OK);
    CHECK_CONTAINS(err.message, "binary chunk");
}

static void test_budget_and_memory(void)
{
    char out[4096], dead[2048];
    dm_error_t err = {0};
    /* an endless loop on one record: the budget stops it; the others pass */
    REQUIRE(run(json_pack("{s:s, s:i}", "script",
                          "function process(r)\n"
                          "  if r.user == 'b' then while true do end end\n"
                          "  return r\n"
                          "end",
                          "budget", 100000),
                out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
    CHECK_CONTAINS(dead, "1 lua: instruction budget of 100000 exceeded");
    CHECK_CONTAINS(out, "\"user\":\"a\"");
    CHECK_CONTAINS(out, "\"user\":\"c\"");
    /* memory past the cap: that record only */
    REQUIRE(
        run(json_pack("{s:s, s:s}", "script",
                      "function process(r)\n"
                      "  if r.user == 'a' then local t = {} for i = 1, 1e8 do t[i] = i end end\n"
                      "  if r.user == 'b' then local s = string.rep('x', 1 << 30) end\n"
                      "  return r\n"
                      "end",
                      "memory", "4MiB"),
            out, sizeof(out), dead, sizeof(dead), &err) == DM_OK);
    CHECK_CONTAINS(dead, "0 lua: memory cap reached");
    CHECK_CONTAINS(dead, "1 lua: ");
    CHECK_CONTAINS(out, "\"user\":\"c\"");
}

int main(void)
{
    dm_error_t err = {0};
    if (dm_avro_schema_parse(schema_json, strlen(schema_json), &schema, &err)) {
        printf("schema: %s\n", err.message);
        return 1;
    }
    RUN(test_transform_drop_several);
    RUN(test_errors_to_dead_letters);
    RUN(test_sandbox);
    RUN(test_budget_and_memory);
    dm_avro_schema_free(schema);
    return check_summary();
}
