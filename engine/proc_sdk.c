/* engine/proc_sdk.c — the `processor` step: a processor built with the SDK
 * (include/datamesh/processor.h) as a shared library, loaded with dlopen and
 * run behind the same dm_proc_ops_t as the built-ins, so fusion, metrics,
 * dead letters, state checkpoints and lineage treat it alike.
 *
 * Settings: {"name": PROCESSOR, "config": {...}} as a spec writes the step;
 * the plan compiler adds "library" and "symbol" from the Processor object
 * and overlays the step's config on the object's (control/plan.c), so a
 * plan's step is complete for any worker.
 *
 * The library's flags decide which callbacks the step has: an instance
 * points p->ops at the variant of dm_proc_sdk that has a store (stateful),
 * timers and watermarks only when the library asks for them, so a stateless
 * processor runs as cheaply as a filter.
 */
#include <dlfcn.h>
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "datamesh/processor.h"
#include "engine/processor.h"
#include "engine/schema_out.h"

/* The SDK's value is the engine's value, byte for byte: records pass both
 * ways without a copy. */
_Static_assert(sizeof(dm_value_t) == sizeof(dm_avro_value_t), "dm_value_t layout");
_Static_assert(offsetof(dm_value_t, len) == offsetof(dm_avro_value_t, len), "dm_value_t.len");
_Static_assert(offsetof(dm_value_t, u) == offsetof(dm_avro_value_t, u), "dm_value_t.u");
_Static_assert((int)DM_VALUE_FIXED == (int)DM_AVRO_FIXED &&
                   (int)DM_VALUE_ABSENT == (int)DM_AVRO_ABSENT &&
                   (int)DM_VALUE_RECORD == (int)DM_AVRO_RECORD &&
                   (int)DM_VALUE_STRING == (int)DM_AVRO_STRING,
               "dm_value_t types");

typedef struct sdk_conf {
    char *name;
    char *library;
    char *symbol;
    json_t *config;
} sdk_conf_t;

static const dm_config_field_t sdk_fields[] = {
    {.name = "name",
     .type = DM_CFG_NAME,
     .offset = offsetof(sdk_conf_t, name),
     .flags = DM_CFG_REQUIRED,
     .help = "the Processor object (kind: Processor) whose library runs this step"},
    {.name = "config",
     .type = DM_CFG_JSON,
     .offset = offsetof(sdk_conf_t, config),
     .help = "settings for the processor, laid over the Processor's spec.config; the processor "
             "checks them when it opens"},
    {.name = "library",
     .type = DM_CFG_STRING,
     .offset = offsetof(sdk_conf_t, library),
     .help = "filled in from the Processor's spec.library when the plan is compiled (not "
             "written in a pipeline)"},
    {.name = "symbol",
     .type = DM_CFG_STRING,
     .offset = offsetof(sdk_conf_t, symbol),
     .def = "dm_processor",
     .help = "filled in from the Processor's spec.symbol: the library's dm_processor_t"},
};
DM_CONFIG_TABLE(sdk_table, "processor step", sdk_fields);

typedef struct metric_slot {
    char name[72];
    bool gauge;
    dm_metric_t *m;
} metric_slot_t;

struct dm_sdk_ctx {
    dm_proc_t *p;
    void *lib;
    const dm_processor_t *def;
    void *self;
    bool opened;
    const dm_avro_node_t *out_node; /* the output record schema */
    char **reads;                   /* NULL-terminated copy; NULL = all */
    size_t n_reads;
    dm_processor_dep_t *deps; /* copied strings */
    size_t n_deps;
    bool has_deps;
    metric_slot_t metrics[16];
    size_t n_metrics;
    int crashed;      /* the signal a call into the library died of; 0: none */
    char label[64];   /* the Processor's name, for messages */
    char labels[200]; /* its metrics' label set */
};

struct dm_sdk_batch {
    struct dm_sdk_ctx *c;
    const dm_rows_t *in;
    dm_rows_t *out;
    dm_dead_letters_t *dead;
    int64_t now_ms; /* timers: the time records made there carry */
};

/* ---- the host's side of the ABI -------------------------------------------------- */

static void host_log(dm_sdk_ctx_t *c, int level, const char *message)
{
    dm_log_level_t l = level <= 0   ? DM_LOG_ERROR
                       : level >= 3 ? DM_LOG_DEBUG
                                    : (dm_log_level_t)level;
    dm_log(l, "processor", "%s: %s", c->label, message ? message : "");
}

static bool metric_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (!n || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
              name[i] == '_'))
            return false;
    return true;
}

/* The metric name of this instance, registered on first use (NULL: no
 * registry, a bad name, or too many). */
static dm_metric_t *metric(dm_sdk_ctx_t *c, const char *name, bool gauge)
{
    for (size_t i = 0; i < c->n_metrics; i++)
        if (c->metrics[i].gauge == gauge && !strcmp(c->metrics[i].name, name))
            return c->metrics[i].m;
    dm_metrics_t *reg = c->p->env ? c->p->env->metrics : NULL;
    if (!reg || c->n_metrics == 16 || !metric_name_ok(name)) return NULL;
    char full[128];
    snprintf(full, sizeof(full), "datamesh_sdk_%s%s", name, gauge ? "" : "_total");
    dm_metric_t *m = gauge
                         ? dm_metrics_gauge(reg, full, "set by an SDK processor", c->labels)
                         : dm_metrics_counter(reg, full, "counted by an SDK processor", c->labels);
    metric_slot_t *s = &c->metrics[c->n_metrics++];
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->gauge = gauge;
    s->m = m;
    return m;
}

static void host_counter_add(dm_sdk_ctx_t *c, const char *name, uint64_t n)
{
    dm_metric_t *m = metric(c, name, false);
    if (m) dm_metric_add(m, n);
}

static void host_gauge_set(dm_sdk_ctx_t *c, const char *name, int64_t v)
{
    dm_metric_t *m = metric(c, name, true);
    if (m) dm_metric_set(m, v);
}

static void state_failed(dm_sdk_ctx_t *c, const char *what, const dm_error_t *err)
{
    dm_log(DM_LOG_ERROR, "processor", "%s: state %s: %s", c->label, what,
           err ? err->message : "the processor does not keep state (DM_PROCESSOR_STATEFUL)");
}

static int host_state_get(dm_sdk_ctx_t *c, const void *key, size_t klen, const void **val,
                          size_t *vlen)
{
    if (!c->p->kv) return state_failed(c, "get", NULL), -1;
    const uint8_t *v = NULL;
    size_t n = 0;
    bool found = false;
    dm_error_t err = {0};
    if (dm_state_get(c->p->kv, key, klen, &v, &n, &found, &err))
        return state_failed(c, "get", &err), -1;
    if (val) *val = v;
    if (vlen) *vlen = n;
    return found ? 1 : 0;
}

static int host_state_put(dm_sdk_ctx_t *c, const void *key, size_t klen, const void *val,
                          size_t vlen)
{
    if (!c->p->kv) return state_failed(c, "put", NULL), -1;
    dm_error_t err = {0};
    if (dm_state_put(c->p->kv, key, klen, val, vlen, &err)) return state_failed(c, "put", &err), -1;
    return 0;
}

static int host_state_del(dm_sdk_ctx_t *c, const void *key, size_t klen)
{
    if (!c->p->kv) return state_failed(c, "del", NULL), -1;
    dm_error_t err = {0};
    if (dm_state_del(c->p->kv, key, klen, &err)) return state_failed(c, "del", &err), -1;
    return 0;
}

typedef struct foreach_arg {
    int (*fn)(void *arg, const void *key, size_t klen, const void *val, size_t vlen);
    void *arg;
} foreach_arg_t;

static int foreach_one(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    foreach_arg_t *a = ctx;
    return a->fn(a->arg, key, klen, val, vlen);
}

static int host_state_foreach(dm_sdk_ctx_t *c,
                              int (*fn)(void *arg, const void *key, size_t klen, const void *val,
                                        size_t vlen),
                              void *arg)
{
    if (!c->p->kv) return state_failed(c, "foreach", NULL), -1;
    foreach_arg_t a = {fn, arg};
    dm_error_t err = {0};
    if (dm_state_foreach(c->p->kv, foreach_one, &a, &err))
        return state_failed(c, "foreach", &err), -1;
    return 0;
}

static void host_timer_set(dm_sdk_ctx_t *c, int64_t at_ms)
{
    c->p->timer_at = at_ms > 0 ? at_ms : 0;
}

static int64_t host_watermark(dm_sdk_ctx_t *c)
{
    return c->p->watermark;
}

static int host_field_index(dm_sdk_ctx_t *c, int which, const char *name)
{
    const dm_avro_node_t *n = which ? c->out_node : c->p->input;
    return n && name ? dm_avro_field_index(n, name) : -1;
}

static uint32_t host_count(const dm_sdk_batch_t *b)
{
    return b->in ? b->in->n : 0;
}

static const dm_value_t *host_value(const dm_sdk_batch_t *b, uint32_t i)
{
    return b->in && i < b->in->n ? (const dm_value_t *)&b->in->records[i].value : NULL;
}

static const uint8_t *host_key(const dm_sdk_batch_t *b, uint32_t i, uint32_t *len)
{
    if (!b->in || i >= b->in->n) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = b->in->records[i].key_len;
    return b->in->records[i].key;
}

static int64_t host_timestamp(const dm_sdk_batch_t *b, uint32_t i)
{
    return b->in && i < b->in->n ? b->in->records[i].timestamp : b->now_ms;
}

static int host_emit(dm_sdk_batch_t *b, uint32_t i)
{
    if (!b->in || i >= b->in->n || b->c->p->output) return -1; /* only when output = input */
    dm_row_t *r = dm_rows_push(b->out);
    if (!r) return -1;
    *r = b->in->records[i];
    return 0;
}

static int host_emit_value(dm_sdk_batch_t *b, uint32_t i, const dm_value_t *record)
{
    const dm_avro_node_t *out = b->c->out_node;
    if (!record || record->type != DM_VALUE_RECORD || record->len != out->n_fields) return -1;
    if (i != UINT32_MAX && (!b->in || i >= b->in->n)) return -1;
    dm_row_t *r = dm_rows_push(b->out);
    if (!r) return -1;
    if (i != UINT32_MAX)
        *r = b->in->records[i];
    else
        r->timestamp = b->now_ms;
    r->value = *(const dm_avro_value_t *)record;
    return 0;
}

static int host_dead(dm_sdk_batch_t *b, uint32_t i, const char *reason)
{
    if (!b->in || i >= b->in->n) return -1;
    char why[256];
    snprintf(why, sizeof(why), "processor %s: %s", b->c->label,
             reason && *reason ? reason : "(no reason given)");
    return dm_dead_letters_add(b->dead, i, why) ? -1 : 0;
}

static void *host_alloc(dm_sdk_batch_t *b, size_t n)
{
    return dm_arena_calloc(&b->out->arena, 1, n ? n : 1);
}

static dm_value_t *host_new_record(dm_sdk_batch_t *b)
{
    const dm_avro_node_t *out = b->c->out_node;
    dm_value_t *r = dm_arena_calloc(&b->out->arena, 1, sizeof(*r));
    dm_value_t *f =
        out->n_fields ? dm_arena_calloc(&b->out->arena, out->n_fields, sizeof(*f)) : NULL;
    if (!r || (out->n_fields && !f)) return NULL;
    r->type = DM_VALUE_RECORD;
    r->len = out->n_fields;
    r->u.v = f;
    return r;
}

static const dm_sdk_host_t host = {
    .abi_version = DM_PROCESSOR_ABI_VERSION,
    .size = sizeof(dm_sdk_host_t),
    .log = host_log,
    .counter_add = host_counter_add,
    .gauge_set = host_gauge_set,
    .state_get = host_state_get,
    .state_put = host_state_put,
    .state_del = host_state_del,
    .state_foreach = host_state_foreach,
    .timer_set = host_timer_set,
    .watermark = host_watermark,
    .field_index = host_field_index,
    .count = host_count,
    .value = host_value,
    .key = host_key,
    .timestamp = host_timestamp,
    .emit = host_emit,
    .emit_value = host_emit_value,
    .dead = host_dead,
    .alloc = host_alloc,
    .new_record = host_new_record,
};

/* ---- crash guard ----------------------------------------------------------------------
 * A library is native code in this process. A call into it runs under a
 * guard: SIGSEGV, SIGBUS, SIGFPE, SIGILL or SIGABRT raised on the calling
 * thread while the call runs jumps back out of it, the instance is marked
 * crashed (the library is never called again, not even close), and the step
 * fails for good with the signal named, so the task stops at its last commit
 * and its unit's status says what happened; the controller and every other
 * task keep running. Re-applying the Processor restarts the pipeline. This
 * is not a process boundary: memory the library corrupted before it crashed
 * is not protected, and a crash on another thread, or a stack overflow, is
 * not caught (those signals keep their previous handling). */

static __thread sigjmp_buf *guard_jmp;
static __thread volatile sig_atomic_t guard_sig;
static struct sigaction guard_prev[NSIG];
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static const int guarded_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

static void on_crash(int sig, siginfo_t *si, void *uc)
{
    if (guard_jmp) {
        guard_sig = sig;
        siglongjmp(*guard_jmp, 1);
    }
    const struct sigaction *p = &guard_prev[sig]; /* not ours: as before */
    if ((p->sa_flags & SA_SIGINFO) && p->sa_sigaction) {
        p->sa_sigaction(sig, si, uc);
    } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
        p->sa_handler(sig);
    } else {
        signal(sig, SIG_DFL);
        raise(sig);
    }
}

static void guard_install(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_crash;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(guarded_signals) / sizeof(guarded_signals[0]); i++)
        sigaction(guarded_signals[i], &sa, &guard_prev[guarded_signals[i]]);
}

/* Calls into the library: `call` runs under the guard; on a crash the
 * instance is marked and the statement after the macro sees c->crashed. */
#define GUARDED(c, call)                                                                           \
    do {                                                                                           \
        sigjmp_buf jb_;                                                                            \
        sigjmp_buf *saved_ = guard_jmp;                                                            \
        pthread_once(&guard_once, guard_install);                                                  \
        if (sigsetjmp(jb_, 1)) {                                                                   \
            guard_jmp = saved_;                                                                    \
            (c)->crashed = guard_sig ? guard_sig : SIGSEGV;                                        \
        } else {                                                                                   \
            guard_jmp = &jb_;                                                                      \
            call;                                                                                  \
            guard_jmp = saved_;                                                                    \
        }                                                                                          \
    } while (0)

/* The library's calls, each under the guard in a frame of its own. */
static int call_open(dm_sdk_ctx_t *c, const dm_processor_open_args_t *a, dm_processor_opened_t *o,
                     char *msg, size_t len)
{
    volatile int r = -1;
    GUARDED(c, r = c->def->open(a, o, msg, len));
    return r;
}

static int call_process(dm_sdk_ctx_t *c, dm_sdk_batch_t *b, char *msg, size_t len)
{
    volatile int r = -1;
    GUARDED(c, r = c->def->process(c->self, b, msg, len));
    return r;
}

static int call_timer(dm_sdk_ctx_t *c, int64_t at, bool watermark, dm_sdk_batch_t *b, char *msg,
                      size_t len)
{
    volatile int r = -1;
    if (watermark)
        GUARDED(c, r = c->def->on_watermark(c->self, at, b, msg, len));
    else
        GUARDED(c, r = c->def->on_timer(c->self, at, b, msg, len));
    return r;
}

static int call_restore(dm_sdk_ctx_t *c, char *msg, size_t len)
{
    volatile int r = -1;
    GUARDED(c, r = c->def->restore(c->self, msg, len));
    return r;
}

static void call_close(dm_sdk_ctx_t *c)
{
    GUARDED(c, c->def->close(c->self));
}

static dm_err_t crashed(const dm_sdk_ctx_t *c, const char *what, dm_error_t *err)
{
    return dm_error_set(err, DM_ERR_INTERNAL,
                        "Processor %s crashed (%s) in %s(): the task stopped at its last commit; "
                        "fix the library and apply the Processor again",
                        c->label, sigabbrev_np(c->crashed) ? sigabbrev_np(c->crashed) : "signal",
                        what);
}

/* ---- the step ------------------------------------------------------------------------- */

/* The variants of the step (see the file's comment), by bits 1 stateful, 2
 * timers, 4 watermarks, 8 the library declared the fields it reads (without
 * that, read_paths is NULL: it reads everything). */
static const dm_proc_ops_t variants[16];

static void ctx_free(dm_sdk_ctx_t *c)
{
    if (!c) return;
    if (c->opened && c->def->close && !c->crashed) call_close(c);
    for (size_t i = 0; i < c->n_reads; i++)
        free(c->reads[i]);
    free(c->reads);
    for (size_t i = 0; i < c->n_deps; i++) {
        free((char *)c->deps[i].output);
        free((char *)c->deps[i].input);
    }
    free(c->deps);
    if (c->lib && !c->crashed) dlclose(c->lib); /* a crashed library stays mapped */
    free(c);
}

/* Loads the library and checks its entry. */
static dm_err_t load(dm_sdk_ctx_t *c, const sdk_conf_t *conf, dm_error_t *err)
{
    const char *path = conf->library;
    if (!path || !*path)
        return dm_error_set(err, DM_ERR_CONFIG,
                            "Processor %s: no library (the plan fills it from the Processor "
                            "object's spec.library)",
                            conf->name);
    if (path[0] != '/')
        return dm_error_set(err, DM_ERR_CONFIG,
                            "Processor %s: library '%s' is not an absolute path", conf->name, path);
    dlerror();
    c->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!c->lib) {
        const char *why = dlerror();
        return dm_error_set(err, DM_ERR_NOT_FOUND, "Processor %s: cannot load library %s: %s",
                            conf->name, path, why ? why : "unknown error");
    }
    const char *sym = conf->symbol && *conf->symbol ? conf->symbol : "dm_processor";
    c->def = dlsym(c->lib, sym);
    if (!c->def)
        return dm_error_set(err, DM_ERR_INVALID,
                            "Processor %s: library %s has no symbol %s (a processor library "
                            "exports a const dm_processor_t; see `datamesh sdk new`)",
                            conf->name, path, sym);
    if (c->def->abi_version != DM_PROCESSOR_ABI_VERSION)
        return dm_error_set(err, DM_ERR_UNSUPPORTED,
                            "Processor %s: library %s was built for processor ABI version %u; "
                            "this datamesh runs version %d (rebuild it against the header in "
                            "`datamesh sdk include`)",
                            conf->name, path, c->def->abi_version, DM_PROCESSOR_ABI_VERSION);
    if (c->def->size < offsetof(dm_processor_t, close) + sizeof(c->def->close) || !c->def->open ||
        !c->def->process)
        return dm_error_set(err, DM_ERR_INVALID,
                            "Processor %s: library %s: its dm_processor_t is incomplete (size %u, "
                            "open and process are required)",
                            conf->name, path, c->def->size);
    return DM_OK;
}

/* Keeps copies of the manifest the library gave. */
static dm_err_t keep_manifest(dm_sdk_ctx_t *c, const dm_processor_opened_t *o, dm_error_t *err)
{
    if (o->reads) {
        size_t n = 0;
        while (o->reads[n])
            n++;
        c->reads = calloc(n + 1, sizeof(char *));
        if (!c->reads) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (!(c->reads[i] = strdup(o->reads[i])))
                return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
            c->n_reads++;
        }
    }
    if (o->deps) {
        c->has_deps = true;
        c->deps = calloc(o->n_deps ? o->n_deps : 1, sizeof(*c->deps));
        if (!c->deps) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < o->n_deps; i++) {
            const dm_processor_dep_t *d = &o->deps[i];
            if (!d->input || d->kind < DM_DEP_KIND_IDENTITY || d->kind > DM_DEP_KIND_FILTER)
                return dm_error_set(err, DM_ERR_INVALID,
                                    "manifest dependency %zu: needs an input field and a kind "
                                    "DM_DEP_KIND_*",
                                    i);
            c->deps[i] = (dm_processor_dep_t){d->output ? strdup(d->output) : NULL,
                                              strdup(d->input), d->kind};
            c->n_deps++;
        }
    }
    return DM_OK;
}

dm_err_t dm_proc_sdk_check(const char *name, const char *library, const char *symbol,
                           dm_error_t *err)
{
    dm_sdk_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    sdk_conf_t conf = {(char *)name, (char *)library, (char *)symbol, NULL};
    dm_err_t rc = load(c, &conf, err);
    ctx_free(c);
    return rc;
}

static dm_err_t sdk_open(dm_proc_t *p, const void *config, const dm_avro_node_t *input,
                         dm_avro_schema_t **output, dm_error_t *err)
{
    const sdk_conf_t *conf = config;
    dm_sdk_ctx_t *c = calloc(1, sizeof(*c));
    if (!c) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    c->p = p;
    p->state = c;
    char esc[128];
    dm_metrics_escape(conf->name, esc, sizeof(esc));
    snprintf(c->labels, sizeof(c->labels), "processor=\"%s\"", esc);
    snprintf(c->label, sizeof(c->label), "%s", conf->name);
    dm_err_t rc = conf->config && !json_is_object(conf->config)
                      ? dm_error_set(err, DM_ERR_CONFIG, "Processor %s: config: expected a mapping",
                                     conf->name)
                      : load(c, conf, err);
    if (rc) goto fail;
    char *config_text = conf->config ? json_dumps(conf->config, JSON_COMPACT) : strdup("{}");
    json_t *seen = json_object();
    json_t *sj = dm_schema_type_json(input, seen);
    char *schema_text = sj ? json_dumps(sj, JSON_COMPACT) : NULL;
    json_decref(sj);
    json_decref(seen);
    if (!config_text || !schema_text) {
        free(config_text);
        free(schema_text);
        rc = dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        goto fail;
    }
    dm_processor_open_args_t args = {.size = sizeof(args),
                                     .name = conf->name,
                                     .config_json = config_text,
                                     .input_schema_json = schema_text,
                                     .host = &host,
                                     .ctx = c};
    dm_processor_opened_t o = {0};
    char msg[512] = "";
    int orc = call_open(c, &args, &o, msg, sizeof(msg));
    free(config_text);
    free(schema_text);
    if (c->crashed) {
        rc = dm_error_set(
            err, DM_ERR_INVALID, "Processor %s crashed (%s) in open(); the library is not used",
            conf->name, sigabbrev_np(c->crashed) ? sigabbrev_np(c->crashed) : "signal");
        goto fail;
    }
    if (orc) {
        rc = dm_error_set(err, DM_ERR_CONFIG, "Processor %s refused its settings: %s", conf->name,
                          msg[0] ? msg : "(no message)");
        goto fail;
    }
    c->self = o.self;
    c->opened = true;
    if (o.output_schema_json) {
        dm_error_t e = {0};
        if (dm_avro_schema_parse(o.output_schema_json, strlen(o.output_schema_json), output, &e)) {
            rc = dm_error_set(err, DM_ERR_SCHEMA_PARSE, "Processor %s: its output schema: %s",
                              conf->name, e.message);
            goto fail;
        }
        if ((*output)->root->type != DM_AVRO_RECORD) {
            rc = dm_error_set(err, DM_ERR_SCHEMA_PARSE,
                              "Processor %s: its output schema is a %s, not a record", conf->name,
                              dm_avro_type_name((*output)->root->type));
            goto fail;
        }
        c->out_node = (*output)->root;
    } else {
        *output = NULL;
        c->out_node = input;
    }
    if ((rc = keep_manifest(c, &o, err))) {
        dm_error_prefix(err, "Processor %s", conf->name);
        goto fail;
    }
    int v = (c->def->flags & DM_PROCESSOR_STATEFUL ? 1 : 0) | (c->def->on_timer ? 2 : 0) |
            (c->def->on_watermark ? 4 : 0) | (o.reads ? 8 : 0);
    p->ops = &variants[v];
    if ((c->def->flags & DM_PROCESSOR_STATEFUL) && !p->kv &&
        (rc = dm_state_new(NULL, 0, &p->kv, err)))
        goto fail;
    return DM_OK;
fail:
    if (*output) {
        dm_avro_schema_free(*output);
        *output = NULL;
    }
    dm_state_free(p->kv);
    p->kv = NULL;
    ctx_free(c);
    p->state = NULL;
    return rc;
}

static size_t sdk_paths(const dm_proc_t *p, const char *const **paths)
{
    const dm_sdk_ctx_t *c = p->state;
    *paths = (const char *const *)c->reads;
    return c->n_reads;
}

/* A call into the library that returned -1: its message as the task's error. */
static dm_err_t failed(const dm_sdk_ctx_t *c, const char *what, const char *msg, dm_error_t *err)
{
    return dm_error_set(err, DM_ERR_INVALID, "Processor %s: %s failed: %s", c->label, what,
                        msg[0] ? msg : "(no message)");
}

static dm_err_t sdk_process(dm_proc_t *p, const dm_rows_t *in, dm_rows_t *out,
                            dm_dead_letters_t *dead, dm_error_t *err)
{
    dm_sdk_ctx_t *c = p->state;
    if (!in->n) return DM_OK;
    if (dm_rows_reserve(out, in->n)) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    if (c->crashed) return crashed(c, "process", err);
    dm_sdk_batch_t b = {c, in, out, dead, dm_wall_ms()};
    char msg[512] = "";
    int rc = call_process(c, &b, msg, sizeof(msg));
    if (c->crashed) return crashed(c, "process", err);
    if (rc) return failed(c, "process", msg, err);
    return DM_OK;
}

static dm_err_t sdk_on_timer(dm_proc_t *p, int64_t now_ms, dm_rows_t *out, dm_error_t *err)
{
    dm_sdk_ctx_t *c = p->state;
    if (c->crashed) return crashed(c, "on_timer", err);
    dm_sdk_batch_t b = {c, NULL, out, NULL, now_ms};
    char msg[512] = "";
    int rc = call_timer(c, now_ms, false, &b, msg, sizeof(msg));
    if (c->crashed) return crashed(c, "on_timer", err);
    if (rc) return failed(c, "on_timer", msg, err);
    return DM_OK;
}

static dm_err_t sdk_on_watermark(dm_proc_t *p, int64_t wm, dm_rows_t *out, dm_error_t *err)
{
    dm_sdk_ctx_t *c = p->state;
    if (c->crashed) return crashed(c, "on_watermark", err);
    dm_sdk_batch_t b = {c, NULL, out, NULL, wm};
    char msg[512] = "";
    int rc = call_timer(c, wm, true, &b, msg, sizeof(msg));
    if (c->crashed) return crashed(c, "on_watermark", err);
    if (rc) return failed(c, "on_watermark", msg, err);
    return DM_OK;
}

static dm_err_t sdk_restore(dm_proc_t *p, dm_error_t *err)
{
    dm_sdk_ctx_t *c = p->state;
    p->timer_at = 0; /* the processor re-arms it from its state */
    char msg[512] = "";
    if (c->crashed) return crashed(c, "restore", err);
    int rc = c->def->restore ? call_restore(c, msg, sizeof(msg)) : 0;
    if (c->crashed) return crashed(c, "restore", err);
    if (rc) return failed(c, "restore", msg, err);
    return DM_OK;
}

static void sdk_close(dm_proc_t *p)
{
    ctx_free(p->state);
    p->state = NULL;
}

static const dm_field_dep_kind_t dep_kinds[] = {DM_DEP_IDENTITY, DM_DEP_TRANSFORMATION,
                                                DM_DEP_AGGREGATION, DM_DEP_FILTER};

/* Lineage from the manifest; without one, the input's fields pass through
 * by name and the fields read decide which records pass. */
static dm_err_t sdk_field_deps(const dm_proc_t *p, dm_field_deps_t *deps)
{
    const dm_sdk_ctx_t *c = p->state;
    dm_err_t rc = DM_OK;
    if (c->has_deps) {
        for (size_t i = 0; i < c->n_deps && !rc; i++)
            rc = dm_field_deps_add(deps, c->deps[i].output, c->deps[i].input, DM_DEP_MAIN, NULL,
                                   dep_kinds[c->deps[i].kind]);
        return rc;
    }
    for (uint32_t i = 0; i < c->out_node->n_fields && !rc; i++) {
        const char *name = c->out_node->fields[i].name;
        if (dm_avro_field_index(p->input, name) >= 0)
            rc = dm_field_deps_add(deps, name, name, DM_DEP_MAIN, NULL, DM_DEP_IDENTITY);
    }
    for (size_t i = 0; i < c->n_reads && !rc; i++)
        rc = dm_field_deps_add(deps, NULL, c->reads[i], DM_DEP_MAIN, NULL, DM_DEP_FILTER);
    return rc;
}

#define SDK_OPS(v)                                                                                 \
    {                                                                                              \
        .name = "processor",                                                                       \
        .summary = "runs a Processor built with the SDK (a shared library, "                       \
                   "include/datamesh/processor.h)",                                                \
        .config = &sdk_table, .config_size = sizeof(sdk_conf_t), .open = sdk_open,                 \
        .read_paths = ((v)&8) ? sdk_paths : NULL, .process = sdk_process, .close = sdk_close,      \
        .field_deps = sdk_field_deps, .stateful = ((v)&1) != 0, .restore = sdk_restore,            \
        .on_timer = ((v)&2) ? sdk_on_timer : NULL,                                                 \
        .on_watermark = ((v)&4) ? sdk_on_watermark : NULL,                                         \
    }

static const dm_proc_ops_t variants[16] = {SDK_OPS(0),  SDK_OPS(1),  SDK_OPS(2),  SDK_OPS(3),
                                           SDK_OPS(4),  SDK_OPS(5),  SDK_OPS(6),  SDK_OPS(7),
                                           SDK_OPS(8),  SDK_OPS(9),  SDK_OPS(10), SDK_OPS(11),
                                           SDK_OPS(12), SDK_OPS(13), SDK_OPS(14), SDK_OPS(15)};

const dm_proc_ops_t dm_proc_sdk = SDK_OPS(0);
