/* engine/proc_lua.c — the `lua` step: a Lua 5.4 function called per record.
 *
 *   - lua:
 *       script: |
 *         function process(r)
 *           if r.amount <= 0 then return nil end          -- drop
 *           r.cents = math.floor(r.amount * 100)
 *           return r                                       -- or several: return a, b
 *         end
 *       output: {type: record, name: Sale, fields: [...]}  # omitted: the input's schema
 *
 * The record arrives as a table (fields by name; null fields are absent;
 * enums as their symbol, bytes as strings, unions as the branch's value) and
 * each returned table is converted against the output schema; a field that
 * does not fit sends the record to the dead letters naming the field.
 *
 * Sandbox: one Lua state per instance with only base (without dofile,
 * loadfile, load, require, collectgarbage), string, table, math and utf8 —
 * no io, os, package or debug; text chunks only (no bytecode); an
 * instruction budget per call (a count hook) and a memory cap (the state's
 * allocator). A Lua error, an exhausted budget or the cap reached sends the
 * record to the dead letters with the message; the state stays usable.
 */
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/processor.h"
#include "engine/schema_out.h"

typedef struct lua_conf {
    char *script;
    char *file;
    json_t *output;
    char *function;
    int64_t budget;
    int64_t memory;
} lua_conf_t;

static const dm_config_field_t lua_fields[] = {
    {.name = "script",
     .type = DM_CFG_STRING,
     .offset = offsetof(lua_conf_t, script),
     .help = "the Lua source defining the function (or give file)"},
    {.name = "file",
     .type = DM_CFG_STRING,
     .offset = offsetof(lua_conf_t, file),
     .help = "a file holding the Lua source, read when the step opens (or give script)"},
    {.name = "output",
     .type = DM_CFG_JSON,
     .offset = offsetof(lua_conf_t, output),
     .help = "the Avro record schema of what the function returns, or \"same\" (the default): "
             "the input's"},
    {.name = "function",
     .type = DM_CFG_STRING,
     .offset = offsetof(lua_conf_t, function),
     .def = "process",
     .help = "the global function called with each record"},
    {.name = "budget",
     .type = DM_CFG_INT,
     .offset = offsetof(lua_conf_t, budget),
     .def = "1000000",
     .min = 1000,
     .max = 1e10,
     .help = "Lua instructions one call may run before the record goes to the dead letters"},
    {.name = "memory",
     .type = DM_CFG_SIZE,
     .offset = offsetof(lua_conf_t, memory),
     .def = "64MiB",
     .min = 1 << 20,
     .max = 1e11,
     .help = "memory the instance's Lua state may hold"},
};
DM_CONFIG_TABLE(lua_table, "lua step", lua_fields);

typedef struct lua_proc {
    lua_State *L;
    size_t used, cap; /* bytes the state holds, and its cap */
    int64_t budget, left;
    const dm_avro_node_t *out; /* output record schema */
    int fn_ref;                /* the function, in the registry */
    char fn_name[64];
} lua_proc_t;

#define HOOK_EVERY 1000

static void *lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    lua_proc_t *lp = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        lp->used -= old;
        return NULL;
    }
    if (nsize > old && lp->used - old + nsize > lp->cap) return NULL; /* a memory error */
    void *p = realloc(ptr, nsize);
    if (p) lp->used = lp->used - old + nsize;
    return p;
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_proc_t *lp;
    lua_getallocf(L, (void **)&lp);
    lp->left -= HOOK_EVERY;
    if (lp->left < 0) luaL_error(L, "instruction budget of %I exceeded", (lua_Integer)lp->budget);
}

/* The sandbox: safe libraries only. */
static void open_sandbox(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8}};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    static const char *const unsafe[] = {"dofile", "loadfile", "load", "require", "collectgarbage"};
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        lua_pushnil(L);
        lua_setglobal(L, unsafe[i]);
    }
    /* string.dump gives bytecode, which nothing here may load: gone too. */
    lua_getglobal(L, "string");
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
}

/* ---- Avro value → Lua -------------------------------------------------------------- */

static void push_value(lua_State *L, const dm_avro_node_t *n, const dm_avro_value_t *v)
{
    if (n->type == DM_AVRO_UNION) {
        n = v->branch < n->n_branches ? n->branches[v->branch] : n->branches[0];
        if (v->type == DM_AVRO_UNION && v->u.v) v = v->u.v; /* a boxed branch value */
    }
    switch (v->type) {
    case DM_AVRO_BOOLEAN: lua_pushboolean(L, v->u.b); return;
    case DM_AVRO_INT: lua_pushinteger(L, v->u.i); return;
    case DM_AVRO_LONG: lua_pushinteger(L, v->u.l); return;
    case DM_AVRO_FLOAT: lua_pushnumber(L, v->u.f); return;
    case DM_AVRO_DOUBLE: lua_pushnumber(L, v->u.d); return;
    case DM_AVRO_BYTES:
    case DM_AVRO_STRING:
    case DM_AVRO_FIXED: lua_pushlstring(L, (const char *)v->u.p, v->len); return;
    case DM_AVRO_ENUM:
        if (n->type == DM_AVRO_ENUM && (uint32_t)v->u.i < n->n_symbols)
            lua_pushstring(L, n->symbols[v->u.i]);
        else
            lua_pushinteger(L, v->u.i);
        return;
    case DM_AVRO_RECORD:
        lua_createtable(L, 0, (int)v->len);
        for (uint32_t i = 0; i < v->len && n->type == DM_AVRO_RECORD && i < n->n_fields; i++) {
            push_value(L, n->fields[i].type, &v->u.v[i]);
            lua_setfield(L, -2, n->fields[i].name);
        }
        return;
    case DM_AVRO_ARRAY:
        lua_createtable(L, (int)v->len, 0);
        for (uint32_t i = 0; i < v->len; i++) {
            push_value(L, n->items, &v->u.v[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    case DM_AVRO_MAP:
        lua_createtable(L, 0, (int)v->len);
        for (uint32_t i = 0; i < v->len; i++) {
            lua_pushlstring(L, (const char *)v->u.v[2 * i].u.p, v->u.v[2 * i].len);
            push_value(L, n->items, &v->u.v[2 * i + 1]);
            lua_rawset(L, -3);
        }
        return;
    default: lua_pushnil(L); return; /* null, a field not decoded */
    }
}

/* ---- Lua → Avro value ---------------------------------------------------------------- */

typedef struct conv {
    lua_State *L;
    dm_arena_t *arena;
    char *err; /* message, with the path */
    size_t errlen;
} conv_t;

static int conv_fail(conv_t *c, const char *path, const char *fmt, const char *what)
{
    char msg[200];
    snprintf(msg, sizeof(msg), fmt, what);
    snprintf(c->err, c->errlen, "%s: %s", path[0] ? path : "the record", msg);
    return -1;
}

static int to_value(conv_t *c, const dm_avro_node_t *n, int idx, const char *path,
                    dm_avro_value_t *out);

/* A union: the first branch the Lua value fits (nil: the null branch). */
static int to_union(conv_t *c, const dm_avro_node_t *n, int idx, const char *path,
                    dm_avro_value_t *out)
{
    int t = lua_type(c->L, idx);
    for (uint32_t b = 0; b < n->n_branches; b++) {
        const dm_avro_node_t *br = n->branches[b];
        bool fits =
            (t == LUA_TNIL && br->type == DM_AVRO_NULL) ||
            (t == LUA_TBOOLEAN && br->type == DM_AVRO_BOOLEAN) ||
            (t == LUA_TNUMBER && (br->type == DM_AVRO_INT || br->type == DM_AVRO_LONG ||
                                  br->type == DM_AVRO_FLOAT || br->type == DM_AVRO_DOUBLE)) ||
            (t == LUA_TSTRING && (br->type == DM_AVRO_STRING || br->type == DM_AVRO_BYTES ||
                                  br->type == DM_AVRO_ENUM || br->type == DM_AVRO_FIXED)) ||
            (t == LUA_TTABLE &&
             (br->type == DM_AVRO_RECORD || br->type == DM_AVRO_ARRAY || br->type == DM_AVRO_MAP));
        if (!fits) continue;
        if (to_value(c, br, idx, path, out)) return -1;
        out->branch = (uint16_t)b;
        return 0;
    }
    return conv_fail(c, path, "%s fits no branch of the union", luaL_typename(c->L, idx));
}

static int to_value(conv_t *c, const dm_avro_node_t *n, int idx, const char *path,
                    dm_avro_value_t *out)
{
    lua_State *L = c->L;
    idx = lua_absindex(L, idx);
    int t = lua_type(L, idx);
    memset(out, 0, sizeof(*out));
    out->type = (uint8_t)n->type;
    switch (n->type) {
    case DM_AVRO_UNION: return to_union(c, n, idx, path, out);
    case DM_AVRO_NULL:
        return t == LUA_TNIL ? 0
                             : conv_fail(c, path, "expected nil, got %s", luaL_typename(L, idx));
    case DM_AVRO_BOOLEAN:
        if (t != LUA_TBOOLEAN)
            return conv_fail(c, path, "expected a boolean, got %s", luaL_typename(L, idx));
        out->u.b = lua_toboolean(L, idx);
        return 0;
    case DM_AVRO_INT:
    case DM_AVRO_LONG: {
        int isint = 0;
        lua_Integer v = lua_tointegerx(L, idx, &isint);
        if (t != LUA_TNUMBER || !isint)
            return conv_fail(c, path, "expected an integer, got %s",
                             t == LUA_TNUMBER ? "a fraction" : luaL_typename(L, idx));
        if (n->type == DM_AVRO_INT && (v < INT32_MIN || v > INT32_MAX))
            return conv_fail(c, path, "%s out of the int range", "integer");
        if (n->type == DM_AVRO_INT)
            out->u.i = (int32_t)v;
        else
            out->u.l = v;
        return 0;
    }
    case DM_AVRO_FLOAT:
    case DM_AVRO_DOUBLE:
        if (t != LUA_TNUMBER)
            return conv_fail(c, path, "expected a number, got %s", luaL_typename(L, idx));
        if (n->type == DM_AVRO_FLOAT)
            out->u.f = (float)lua_tonumber(L, idx);
        else
            out->u.d = lua_tonumber(L, idx);
        return 0;
    case DM_AVRO_STRING:
    case DM_AVRO_BYTES:
    case DM_AVRO_FIXED: {
        if (t != LUA_TSTRING)
            return conv_fail(c, path, "expected a string, got %s", luaL_typename(L, idx));
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (n->type == DM_AVRO_FIXED && len != n->size)
            return conv_fail(c, path, "%s of the wrong size for the fixed type", "a string");
        out->u.p = dm_arena_memdup(c->arena, s, len ? len : 1);
        out->len = (uint32_t)len;
        return out->u.p ? 0 : conv_fail(c, path, "%s", "out of memory");
    }
    case DM_AVRO_ENUM: {
        const char *s = t == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
        for (uint32_t i = 0; s && i < n->n_symbols; i++)
            if (!strcmp(n->symbols[i], s)) {
                out->u.i = (int32_t)i;
                return 0;
            }
        return conv_fail(c, path, "%s is not one of the enum's symbols",
                         s ? s : luaL_typename(L, idx));
    }
    case DM_AVRO_RECORD: {
        if (t != LUA_TTABLE)
            return conv_fail(c, path, "expected a table (a record), got %s", luaL_typename(L, idx));
        out->len = n->n_fields;
        out->u.v = dm_arena_calloc(c->arena, n->n_fields ? n->n_fields : 1, sizeof(*out->u.v));
        if (!out->u.v) return conv_fail(c, path, "%s", "out of memory");
        for (uint32_t i = 0; i < n->n_fields; i++) {
            char sub[300];
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", n->fields[i].name);
            lua_pushstring(L, n->fields[i].name);
            lua_rawget(L, idx); /* raw: a metatable of the script's runs no code here */
            int rc = to_value(c, n->fields[i].type, -1, sub, &out->u.v[i]);
            lua_pop(L, 1);
            if (rc) return rc;
        }
        return 0;
    }
    case DM_AVRO_ARRAY: {
        if (t != LUA_TTABLE)
            return conv_fail(c, path, "expected a table (an array), got %s", luaL_typename(L, idx));
        lua_Integer len = (lua_Integer)lua_rawlen(L, idx);
        out->len = (uint32_t)len;
        out->u.v = dm_arena_calloc(c->arena, len ? (size_t)len : 1, sizeof(*out->u.v));
        if (!out->u.v) return conv_fail(c, path, "%s", "out of memory");
        for (lua_Integer i = 0; i < len; i++) {
            char sub[300];
            snprintf(sub, sizeof(sub), "%s[%lld]", path, (long long)i);
            lua_rawgeti(L, idx, i + 1);
            int rc = to_value(c, n->items, -1, sub, &out->u.v[i]);
            lua_pop(L, 1);
            if (rc) return rc;
        }
        return 0;
    }
    case DM_AVRO_MAP: {
        if (t != LUA_TTABLE)
            return conv_fail(c, path, "expected a table (a map), got %s", luaL_typename(L, idx));
        uint32_t cnt = 0;
        for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
            cnt++;
        out->len = cnt;
        out->u.v = dm_arena_calloc(c->arena, cnt ? 2 * (size_t)cnt : 1, sizeof(*out->u.v));
        if (!out->u.v) return conv_fail(c, path, "%s", "out of memory");
        uint32_t i = 0;
        for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1), i++) {
            if (lua_type(L, -2) != LUA_TSTRING) {
                lua_pop(L, 2);
                return conv_fail(c, path, "a map's keys are strings, got %s", "another type");
            }
            size_t kl;
            const char *k = lua_tolstring(L, -2, &kl);
            dm_avro_value_t *kv = &out->u.v[2 * i];
            kv->type = DM_AVRO_STRING;
            kv->u.p = dm_arena_memdup(c->arena, k, kl ? kl : 1);
            kv->len = (uint32_t)kl;
            char sub[300];
            snprintf(sub, sizeof(sub), "%s.%.*s", path, (int)(kl < 60 ? kl : 60), k);
            if (to_value(c, n->items, -1, sub, &out->u.v[2 * i + 1])) {
                lua_pop(L, 2);
                return -1;
            }
        }
        return 0;
    }
    default: return conv_fail(c, path, "%s type cannot be written from Lua", "this");
    }
}

/* ---- the step ------------------------------------------------------------------------ */

static char *read_file(const char *path, dm_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dm_error_set(err, DM_ERR_IO, "file %s: cannot read it", path);
        return NULL;
    }
    dm_buf_t b = DM_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        dm_buf_append(&b, chunk, n);
    fclose(f);
    dm_buf_append_u8(&b, 0);
    return (char *)b.data;
}

static void lua_close_proc(dm_proc_t *p)
{
    lua_proc_t *lp = p->state;
    if (!lp) return;
    if (lp->L) lua_close(lp->L);
    free(lp);
    p->state = NULL;
}

static dm_err_t lua_open_proc(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                              dm_avro_schema_t **output, dm_error_t *err)
{
    const lua_conf_t *conf = config;
    if (!conf->script == !conf->file)
        return dm_error_set(err, DM_ERR_CONFIG, "give script or file (one of them)");
    bool same = !conf->output ||
                (json_is_string(conf->output) && !strcmp(json_string_value(conf->output), "same"));
    if (!same) {
        if (!json_is_object(conf->output))
            return dm_error_set(err, DM_ERR_CONFIG,
                                "output: expected an Avro record schema or \"same\"");
        char *text = json_dumps(conf->output, JSON_COMPACT);
        dm_error_t e = {0};
        dm_err_t rc = text ? dm_avro_schema_parse(text, strlen(text), output, &e) : DM_ERR_NOMEM;
        free(text);
        if (rc) return dm_error_set(err, DM_ERR_CONFIG, "output: %s", e.message);
        if ((*output)->root->type != DM_AVRO_RECORD) {
            dm_avro_schema_free(*output);
            *output = NULL;
            return dm_error_set(err, DM_ERR_CONFIG, "output: the schema must be a record");
        }
    } else {
        *output = NULL;
    }
    lua_proc_t *lp = calloc(1, sizeof(*lp));
    if (!lp) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    p->state = lp;
    lp->cap = (size_t)conf->memory;
    lp->budget = conf->budget;
    lp->out = *output ? (*output)->root : input;
    snprintf(lp->fn_name, sizeof(lp->fn_name), "%s", conf->function);
    lp->L = lua_newstate(lua_alloc, lp);
    dm_err_t rc = DM_OK;
    char *src = conf->file ? read_file(conf->file, err) : NULL;
    if (!lp->L) {
        rc = dm_error_set(err, DM_ERR_NOMEM, "cannot make a Lua state");
    } else if (conf->file && !src) {
        rc = err->code;
    } else {
        open_sandbox(lp->L);
        const char *code = src ? src : conf->script;
        char chunk[300];
        snprintf(chunk, sizeof(chunk), "%s%s", conf->file ? "@" : "=",
                 conf->file ? conf->file : "script");
        lp->left = lp->budget;
        lua_sethook(lp->L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
        if (luaL_loadbufferx(lp->L, code, strlen(code), chunk, "t") || lua_pcall(lp->L, 0, 0, 0)) {
            /* Lua quotes the text near a syntax error: from a file, the file's
             * bytes stay out of the message (it could be any file). */
            const char *m = lua_tostring(lp->L, -1);
            const char *near = conf->file && m ? strstr(m, " near ") : NULL;
            rc = dm_error_set(err, DM_ERR_CONFIG, "%.*s",
                              near ? (int)(near - m) : (int)strlen(m ? m : ""), m ? m : "error");
        } else if (lua_getglobal(lp->L, lp->fn_name) != LUA_TFUNCTION) {
            rc = dm_error_set(err, DM_ERR_CONFIG, "the script defines no function %s", lp->fn_name);
        } else {
            lp->fn_ref = luaL_ref(lp->L, LUA_REGISTRYINDEX);
        }
    }
    free(src);
    if (rc) {
        lua_close_proc(p);
        if (*output) {
            dm_avro_schema_free(*output);
            *output = NULL;
        }
    }
    return rc;
}

/* One record, inside lua_pcall (so a memory error anywhere, a budget
 * exhausted or a result that does not fit raises a Lua error, never a
 * panic): calls the function and converts what it returns into out. */
typedef struct call_ctx {
    const dm_proc_t *p;
    const dm_row_t *row;
    dm_rows_t *out;
    char msg[256];
} call_ctx_t;

static int call_one(lua_State *L)
{
    call_ctx_t *cc = lua_touserdata(L, 1);
    const lua_proc_t *lp = cc->p->state;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, lp->fn_ref);
    push_value(L, cc->p->input, &cc->row->value);
    lua_call(L, 1, LUA_MULTRET);
    int nret = lua_gettop(L);
    conv_t c = {L, &cc->out->arena, cc->msg, sizeof(cc->msg)};
    for (int r = 1; r <= nret; r++) {
        if (lua_isnil(L, r)) continue; /* dropped */
        dm_row_t *o = dm_rows_push(cc->out);
        if (!o) return luaL_error(L, "out of memory");
        *o = *cc->row;
        if (to_value(&c, lp->out, r, "", &o->value)) {
            cc->out->n--;
            lua_pushstring(L, cc->msg);
            return lua_error(L);
        }
    }
    return 0;
}

static dm_err_t lua_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                            dm_dead_letters_t *dead, dm_error_t *err)
{
    lua_proc_t *lp = p->state;
    lua_State *L = lp->L;
    call_ctx_t cc = {.p = p, .out = out};
    for (uint32_t i = 0; i < in->n; i++) {
        cc.row = &in->records[i];
        uint32_t n0 = out->n;
        lp->left = lp->budget;
        lua_settop(L, 0);
        lua_pushcfunction(L, call_one);
        lua_pushlightuserdata(L, &cc);
        int st = lua_pcall(L, 1, 0, 0);
        if (st == LUA_OK) continue;
        out->n = n0; /* none of this record's results */
        char reason[300];
        snprintf(reason, sizeof(reason), "lua: %s",
                 st == LUA_ERRMEM                 ? "memory cap reached"
                 : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                  : "error (not a string)");
        lua_settop(L, 0);
        if (dm_dead_letters_add(dead, i, reason))
            return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    }
    return DM_OK;
}

/* Lineage: a script may make any output field of any input field. */
static dm_err_t lua_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const lua_proc_t *lp = p->state;
    dm_err_t rc = DM_OK;
    for (uint32_t o = 0; o < lp->out->n_fields && !rc; o++)
        for (uint32_t i = 0; i < p->input->n_fields && !rc; i++)
            rc = dm_field_deps_add(deps, lp->out->fields[o].name, p->input->fields[i].name,
                                   DM_DEP_MAIN, NULL, DM_DEP_TRANSFORMATION);
    return rc;
}

const dm_proc_ops_t dm_proc_lua = {
    .name = "lua",
    .summary = "calls a Lua function per record (sandboxed: no io/os, an instruction budget "
               "and a memory cap)",
    .config = &lua_table,
    .config_size = sizeof(lua_conf_t),
    .shorthand = "script",
    .open = lua_open_proc,
    .process = lua_process,
    .close = lua_close_proc,
    .field_deps = lua_field_deps,
};
