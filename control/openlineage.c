/* control/openlineage.c — OpenLineage RunEvents for what is deployed
 * (control/openlineage.h).
 *
 * One thread: every interval it compares what the store holds (a cheap
 * fingerprint of names and generations first; the lineage graph only when
 * that moved, or every 30 s for schema versions) with what it last reported,
 * queues the events that tells, and sends the queue in order, waiting with
 * backoff while the endpoint fails.
 */
#include "control/openlineage.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/api.h"
#include "core/clock.h"
#include "core/hash.h"
#include "core/log.h"

#define PRODUCER   "https://github.com/datamesh/datamesh/tree/" DM_VERSION
#define SCHEMA_URL "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
#define JOBTYPE_URL                                                                                \
    "https://openlineage.io/spec/facets/2-0-3/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
#define SCHEMA_FACET_URL                                                                           \
    "https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet"
#define ERROR_FACET_URL                                                                            \
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/"                   \
    "ErrorMessageRunFacet"
#define COLUMNS_FACET_URL                                                                          \
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json#/$defs/"              \
    "ColumnLineageDatasetFacet"
#define FULL_CHECK_MS  30000
#define MAX_BACKOFF_MS 30000

struct dm_openlineage {
    dm_openlineage_options_t opt;
    char *url, *ns, *topic_ns;
    dm_store_t *store;
    dm_runtime_t *rt;
    dm_metric_t *sent, *dropped, *failures;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic bool stop;
    char **queue; /* ring of event JSON texts */
    size_t cap, head, n;
    json_t *known;        /* "Pipeline/NAME" → {sig, run, job} last reported */
    json_t *states;       /* "Pipeline/NAME" → the runtime's state when last looked at */
    uint64_t fingerprint; /* of the store when last compared */
    int64_t last_full_ms;
    int64_t retry_at_ms, backoff_ms;
    CURL *curl;
};

/* ---- events ------------------------------------------------------------------------- */

void dm_openlineage_uuid(const char *key, char out[37])
{
    uint64_t a = dm_hash64(key, strlen(key)), b = dm_hash64_seed(key, strlen(key), a ^ 0x5bd1e995);
    a = (a & ~0xf000ull) | 0x5000ull;                        /* version 5 layout */
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull; /* RFC 4122 variant */
    snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
             a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, (uint64_t)(b & 0xffffffffffffull));
}

static void iso_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static json_t *facet(const char *schema_url)
{
    return json_pack("{s:s, s:s}", "_producer", PRODUCER, "_schemaURL", schema_url);
}

/* A dataset's OpenLineage namespace and name (per the naming spec). */
static void dataset_name(const dm_openlineage_options_t *opt, const json_t *d, const char **ns,
                         const char **name)
{
    const char *kind = json_string_value(json_object_get(d, "kind"));
    *name = json_string_value(json_object_get(d, "id"));
    *ns = opt->ns;
    const char *sink_ns = json_string_value(json_object_get(d, "namespace"));
    const char *sink_name = json_string_value(json_object_get(d, "dataset_name"));
    if (kind && !strcmp(kind, "table")) {
        *ns = json_string_value(json_object_get(d, "namespace"));
        *name = json_string_value(json_object_get(d, "name"));
    } else if (kind && !strcmp(kind, "sink") && sink_ns && sink_name) {
        /* where the sink writes, as its plugin names it (dm_sink_ops_t.lineage) */
        *ns = sink_ns;
        *name = sink_name;
    } else if (kind && (!strcmp(kind, "source") || !strcmp(kind, "topic")) && opt->topic_ns) {
        *ns = opt->topic_ns;
    }
}

static json_t *dataset_json(const dm_openlineage_options_t *opt, const json_t *d,
                            const json_t *by_id, bool output)
{
    const char *ns, *name;
    dataset_name(opt, d, &ns, &name);
    json_t *fields = json_array();
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(d, "fields"), i, f)
    {
        json_t *x = json_pack("{s:O}", "name", json_object_get(f, "name"));
        if (json_is_string(json_object_get(f, "type")))
            json_object_set(x, "type", json_object_get(f, "type"));
        json_array_append_new(fields, x);
    }
    json_t *schema = facet(SCHEMA_FACET_URL);
    json_object_set_new(schema, "fields", fields);
    json_t *facets = json_pack("{s:o}", "schema", schema);
    if (output) {
        /* {field: [{dataset, field, type, subtype}]} → inputFields with transformations */
        json_t *cols = json_object();
        const char *out_field;
        json_t *list;
        json_object_foreach(json_object_get(d, "columns"), out_field, list)
        {
            json_t *inputs = json_array(), *seen = json_object();
            size_t k;
            json_t *c;
            json_array_foreach(list, k, c)
            {
                const json_t *src =
                    json_object_get(by_id, json_string_value(json_object_get(c, "dataset")));
                const char *ins, *inn;
                if (!src) continue;
                dataset_name(opt, src, &ins, &inn);
                const char *field = json_string_value(json_object_get(c, "field"));
                char key[1200];
                snprintf(key, sizeof(key), "%s\n%s\n%s", ins, inn, field);
                json_t *entry = json_object_get(seen, key);
                if (!entry) {
                    entry = json_pack("{s:s, s:s, s:s, s:[]}", "namespace", ins, "name", inn,
                                      "field", field, "transformations");
                    json_array_append_new(inputs, entry);
                    json_object_set(seen, key, entry);
                }
                json_array_append_new(
                    json_object_get(entry, "transformations"),
                    json_pack("{s:O, s:O, s:s, s:b}", "type", json_object_get(c, "type"), "subtype",
                              json_object_get(c, "subtype"), "description", "", "masking", 0));
            }
            json_decref(seen);
            json_object_set_new(cols, out_field, json_pack("{s:o}", "inputFields", inputs));
        }
        json_t *cl = facet(COLUMNS_FACET_URL);
        json_object_set_new(cl, "fields", cols);
        json_object_set_new(facets, "columnLineage", cl);
    }
    return json_pack("{s:s, s:s, s:o}", "namespace", ns, "name", name, "facets", facets);
}

json_t *dm_openlineage_event(const dm_openlineage_options_t *opt, const char *type,
                             const char *job_name, const char *job_type, const char *run_id,
                             const json_t *job, int64_t now_ms)
{
    char when[32];
    iso_time(now_ms, when);
    json_t *jt = facet(JOBTYPE_URL);
    json_object_set_new(jt, "processingType", json_string("STREAMING"));
    json_object_set_new(jt, "integration", json_string("DATAMESH"));
    json_object_set_new(jt, "jobType", json_string(job_type));
    json_t *by_id = json_object(), *inputs = json_array(), *outputs = json_array();
    const char *lists[] = {"inputs", "outputs"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(job, lists[l]), i, d)
            json_object_set(by_id, json_string_value(json_object_get(d, "id")), d);
    }
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *d;
        json_array_foreach(json_object_get(job, lists[l]), i, d)
            json_array_append_new(l ? outputs : inputs, dataset_json(opt, d, by_id, l == 1));
    }
    json_decref(by_id);
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:{s:o}}, s:o, s:o}", "eventType",
                     type, "eventTime", when, "producer", PRODUCER, "schemaURL", SCHEMA_URL, "run",
                     "runId", run_id, "job", "namespace", opt->ns, "name", job_name, "facets",
                     "jobType", jt, "inputs", inputs, "outputs", outputs);
}

/* ---- the queue and sending ----------------------------------------------------------- */

static void count(dm_metric_t *m, uint64_t n)
{
    if (m) dm_metric_add(m, n);
}

static void enqueue(dm_openlineage_t *ol, json_t *event)
{
    char *text = json_dumps(event, JSON_COMPACT);
    json_decref(event);
    if (!text) return;
    pthread_mutex_lock(&ol->mu);
    if (ol->n == ol->cap) {
        pthread_mutex_unlock(&ol->mu);
        free(text);
        count(ol->dropped, 1);
        return;
    }
    ol->queue[(ol->head + ol->n++) % ol->cap] = text;
    pthread_mutex_unlock(&ol->mu);
}

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return size * n;
}

/* Sends one event; false (and why in err) when the endpoint did not take it. */
static bool send_one(dm_openlineage_t *ol, const char *text, dm_error_t *err)
{
    if (!strncmp(ol->url, "file://", 7)) {
        FILE *f = fopen(ol->url + 7, "a");
        bool ok = f && fprintf(f, "%s\n", text) > 0;
        if (f && fclose(f)) ok = false;
        if (!ok) dm_error_set(err, DM_ERR_IO, "cannot append to %s", ol->url + 7);
        return ok;
    }
    if (!ol->curl && !(ol->curl = curl_easy_init())) {
        dm_error_set(err, DM_ERR_NOMEM, "cannot make an HTTP client");
        return false;
    }
    CURL *c = ol->curl;
    curl_easy_reset(c);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:"); /* no 100-continue round trip */
    curl_easy_setopt(c, CURLOPT_URL, ol->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    if (cc != CURLE_OK) {
        dm_error_set(err, DM_ERR_IO, "%s", curl_easy_strerror(cc));
        return false;
    }
    if (status < 200 || status >= 300) {
        dm_error_set(err, DM_ERR_IO, "HTTP %ld", status);
        return false;
    }
    return true;
}

/* Sends the queue in order until it is empty or the endpoint fails. */
static void flush_queue(dm_openlineage_t *ol)
{
    for (;;) {
        pthread_mutex_lock(&ol->mu);
        char *text = ol->n ? ol->queue[ol->head] : NULL;
        pthread_mutex_unlock(&ol->mu);
        if (!text) return;
        dm_error_t err = {0};
        if (!send_one(ol, text, &err)) {
            count(ol->failures, 1);
            ol->backoff_ms = ol->backoff_ms ? ol->backoff_ms * 2 : 200;
            if (ol->backoff_ms > MAX_BACKOFF_MS) ol->backoff_ms = MAX_BACKOFF_MS;
            ol->retry_at_ms = dm_wall_ms() + ol->backoff_ms;
            DM_WARN("openlineage",
                    "url=%s: sending an event failed: %s; retrying in %" PRId64 " ms (%zu queued)",
                    ol->url, err.message, ol->backoff_ms, ol->n);
            return;
        }
        pthread_mutex_lock(&ol->mu);
        ol->head = (ol->head + 1) % ol->cap;
        ol->n--;
        pthread_mutex_unlock(&ol->mu);
        free(text);
        count(ol->sent, 1);
        ol->backoff_ms = 0;
        ol->retry_at_ms = 0;
    }
}

/* ---- comparing what is deployed with what was reported -------------------------------- */

static uint64_t store_fingerprint(dm_openlineage_t *ol)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    const dm_kind_t kinds[] = {DM_KIND_SOURCE, DM_KIND_PIPELINE};
    for (int k = 0; k < 2; k++) {
        json_t *docs = NULL;
        if (dm_store_docs(ol->store, kinds[k], &docs, NULL)) continue;
        const char *name;
        json_t *doc;
        json_object_foreach(docs, name, doc)
        {
            json_int_t gen =
                json_integer_value(json_object_get(json_object_get(doc, "status"), "generation"));
            h = dm_hash64_seed(name, strlen(name), h ^ (uint64_t)gen ^ (uint64_t)k);
        }
        h ^= json_object_size(docs) * 0x9e3779b97f4a7c15ull;
        json_decref(docs);
    }
    return h;
}

/* Reports one object: START when new, RUNNING when its job changed. */
static void report(dm_openlineage_t *ol, const char *kind, const char *name, const json_t *doc,
                   json_t *job, json_t *current, int64_t now)
{
    char key[600], run_key[700], run[37], job_name[600];
    snprintf(key, sizeof(key), "%s/%s", kind, name);
    json_int_t created =
        json_integer_value(json_object_get(json_object_get(doc, "status"), "created_ms"));
    snprintf(run_key, sizeof(run_key), "%s/%lld", key, (long long)created);
    dm_openlineage_uuid(run_key, run);
    bool pipeline = !strcmp(kind, "Pipeline");
    snprintf(job_name, sizeof(job_name), "%s.%s", pipeline ? "pipeline" : "source", name);
    char *text = job ? json_dumps(job, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    /* a new generation of the spec, or a change of what it reads and writes */
    json_int_t gen =
        json_integer_value(json_object_get(json_object_get(doc, "status"), "generation"));
    uint64_t sig = dm_hash64_seed(text ? text : "", text ? strlen(text) : 0, (uint64_t)gen);
    free(text);
    char sigs[24];
    snprintf(sigs, sizeof(sigs), "%016" PRIx64, sig);
    json_t *was = json_object_get(ol->known, key);
    const char *type = !was                                                           ? "START"
                       : strcmp(json_string_value(json_object_get(was, "sig")), sigs) ? "RUNNING"
                                                                                      : NULL;
    if (type)
        enqueue(ol, dm_openlineage_event(&ol->opt, type, job_name,
                                         pipeline ? "PIPELINE" : "CONNECTOR", run, job, now));
    json_object_set_new(current, key,
                        json_pack("{s:s, s:s, s:s, s:s, s:o}", "sig", sigs, "run", run, "job_name",
                                  job_name, "job_type", pipeline ? "PIPELINE" : "CONNECTOR", "job",
                                  job ? job : json_null()));
}

typedef struct compare_ctx {
    dm_openlineage_t *ol;
    int64_t now;
} compare_ctx_t;

/* Reports what changed since the last time, against graph g (under its lock). */
static void compare_with(void *ctx, const dm_lineage_t *g, const json_t *problems)
{
    (void)problems;
    compare_ctx_t *c = ctx;
    dm_openlineage_t *ol = c->ol;
    json_t *sources = NULL, *pipelines = NULL;
    dm_error_t err = {0};
    if (dm_store_docs(ol->store, DM_KIND_SOURCE, &sources, &err) ||
        dm_store_docs(ol->store, DM_KIND_PIPELINE, &pipelines, &err)) {
        DM_WARN("openlineage", "url=%s: cannot read the store: %s", ol->url, err.message);
        json_decref(sources);
        return;
    }
    json_t *current = json_object();
    const char *name;
    json_t *doc;
    json_object_foreach(sources, name, doc)
        report(ol, "Source", name, doc, dm_lineage_source_job(g, name), current, c->now);
    json_object_foreach(pipelines, name, doc)
        report(ol, "Pipeline", name, doc, dm_lineage_job(g, name), current, c->now);
    /* what was reported and is gone now */
    json_t *was;
    json_object_foreach(ol->known, name, was)
    {
        if (json_object_get(current, name)) continue;
        json_t *job = json_object_get(was, "job");
        enqueue(ol, dm_openlineage_event(&ol->opt, "COMPLETE",
                                         json_string_value(json_object_get(was, "job_name")),
                                         json_string_value(json_object_get(was, "job_type")),
                                         json_string_value(json_object_get(was, "run")),
                                         json_is_object(job) ? job : NULL, c->now));
    }
    json_decref(ol->known);
    ol->known = current;
    json_decref(sources);
    json_decref(pipelines);
}

static void compare(dm_openlineage_t *ol, int64_t now)
{
    compare_ctx_t c = {ol, now};
    dm_error_t err = {0};
    if (dm_api_lineage_with(ol->store, ol->rt, compare_with, &c, &err))
        DM_WARN("openlineage", "url=%s: cannot compute lineage: %s", ol->url, err.message);
}

/* FAIL when an object's units fail (a unit stopped by an error retrying
 * cannot fix; the errorMessage run facet says which and why), RUNNING when it
 * runs again after that. Reads only the runtime's unit states: cheap enough
 * for every interval. */
static void check_states(dm_openlineage_t *ol, int64_t now)
{
    if (!ol->rt) return;
    const char *key;
    json_t *was, *tmp;
    json_object_foreach_safe(ol->states, tmp, key, was)
    {
        if (!json_object_get(ol->known, key)) json_object_del(ol->states, key);
    }
    json_object_foreach(ol->known, key, was)
    {
        char kind[16], error[600];
        const char *slash = strchr(key, '/');
        if (!slash || (size_t)(slash - key) >= sizeof(kind)) continue;
        snprintf(kind, sizeof(kind), "%.*s", (int)(slash - key), key);
        const char *state = dm_runtime_state(ol->rt, kind, slash + 1, error, sizeof(error));
        const char *before = json_string_value(json_object_get(ol->states, key));
        bool failed = !strcmp(state, "failed"), was_failed = before && !strcmp(before, "failed");
        const char *type = failed && !was_failed                                    ? "FAIL"
                           : was_failed && !failed && strcmp(state, "pending") != 0 ? "RUNNING"
                                                                                    : NULL;
        if (type) {
            json_t *job = json_object_get(was, "job");
            json_t *ev = dm_openlineage_event(&ol->opt, type,
                                              json_string_value(json_object_get(was, "job_name")),
                                              json_string_value(json_object_get(was, "job_type")),
                                              json_string_value(json_object_get(was, "run")),
                                              json_is_object(job) ? job : NULL, now);
            if (failed) {
                json_t *f = facet(ERROR_FACET_URL);
                json_object_set_new(f, "message", json_string(error));
                json_object_set_new(f, "programmingLanguage", json_string("C"));
                json_object_set_new(json_object_get(ev, "run"), "facets",
                                    json_pack("{s:o}", "errorMessage", f));
            }
            enqueue(ol, ev);
        }
        json_object_set_new(ol->states, key, json_string(state));
    }
}

/* ABORT for everything still reported as deployed: the controller stops
 * running it (a failed one ended with FAIL already). The next start reports
 * START again for the same run. */
static void abort_all(dm_openlineage_t *ol, int64_t now)
{
    const char *key;
    json_t *was;
    json_object_foreach(ol->known, key, was)
    {
        const char *state = json_string_value(json_object_get(ol->states, key));
        if (state && !strcmp(state, "failed")) continue;
        json_t *job = json_object_get(was, "job");
        enqueue(ol, dm_openlineage_event(&ol->opt, "ABORT",
                                         json_string_value(json_object_get(was, "job_name")),
                                         json_string_value(json_object_get(was, "job_type")),
                                         json_string_value(json_object_get(was, "run")),
                                         json_is_object(job) ? job : NULL, now));
    }
}

static void *run(void *arg)
{
    dm_openlineage_t *ol = arg;
    int64_t interval = ol->opt.interval_ms > 0 ? ol->opt.interval_ms : 1000;
    int64_t next = 0;
    while (!atomic_load(&ol->stop)) {
        int64_t now = dm_wall_ms();
        if (now >= next) {
            uint64_t fp = store_fingerprint(ol);
            if (fp != ol->fingerprint || now - ol->last_full_ms >= FULL_CHECK_MS) {
                compare(ol, now);
                ol->fingerprint = fp;
                ol->last_full_ms = now;
            }
            check_states(ol, now);
            next = now + interval;
        }
        if (now >= ol->retry_at_ms) flush_queue(ol);
        pthread_mutex_lock(&ol->mu);
        if (!atomic_load(&ol->stop)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&ol->cv, &ol->mu, &ts);
        }
        pthread_mutex_unlock(&ol->mu);
    }
    /* one last look and one last try, so a clean stop reports what changed just before */
    compare(ol, dm_wall_ms());
    check_states(ol, dm_wall_ms());
    abort_all(ol, dm_wall_ms());
    flush_queue(ol);
    return NULL;
}

dm_err_t dm_openlineage_start(const dm_openlineage_options_t *opt, dm_store_t *store,
                              dm_runtime_t *rt, dm_metrics_t *metrics, dm_openlineage_t **out,
                              dm_error_t *err)
{
    *out = NULL;
    const char *url = opt->url ? opt->url : "";
    bool file = !strncmp(url, "file://", 7);
    if (!file && strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return dm_error_set(err, DM_ERR_CONFIG,
                            "--openlineage %s: expected http://…, https://… or file:///path", url);
    if (file && url[7] != '/')
        return dm_error_set(err, DM_ERR_CONFIG,
                            "--openlineage %s: a file URL needs an absolute path (file:///path)",
                            url);
    dm_openlineage_t *ol = calloc(1, sizeof(*ol));
    if (!ol) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    ol->url = strdup(url);
    ol->ns = strdup(opt->ns ? opt->ns : "datamesh");
    ol->topic_ns = opt->topic_ns ? strdup(opt->topic_ns) : NULL;
    ol->opt = *opt;
    ol->opt.url = ol->url;
    ol->opt.ns = ol->ns;
    ol->opt.topic_ns = ol->topic_ns;
    ol->store = store;
    ol->rt = rt;
    ol->cap = opt->queue ? opt->queue : 10000;
    ol->queue = calloc(ol->cap, sizeof(char *));
    ol->known = json_object();
    ol->states = json_object();
    if (metrics) {
        ol->sent = dm_metrics_counter(metrics, "datamesh_openlineage_events_total",
                                      "OpenLineage events the endpoint took", NULL);
        ol->dropped = dm_metrics_counter(metrics, "datamesh_openlineage_dropped_events_total",
                                         "OpenLineage events dropped: the queue was full", NULL);
        ol->failures =
            dm_metrics_counter(metrics, "datamesh_openlineage_failures_total",
                               "attempts to send an OpenLineage event that failed", NULL);
    }
    pthread_mutex_init(&ol->mu, NULL);
    pthread_cond_init(&ol->cv, NULL);
    if (!ol->url || !ol->ns || !ol->queue || !ol->known || !ol->states ||
        pthread_create(&ol->th, NULL, run, ol)) {
        pthread_mutex_destroy(&ol->mu);
        pthread_cond_destroy(&ol->cv);
        free(ol->url);
        free(ol->ns);
        free(ol->topic_ns);
        free(ol->queue);
        json_decref(ol->known);
        json_decref(ol->states);
        free(ol);
        return dm_error_set(err, DM_ERR_NOMEM, "openlineage: cannot start its thread");
    }
    *out = ol;
    return DM_OK;
}

void dm_openlineage_stop(dm_openlineage_t *ol)
{
    if (!ol) return;
    pthread_mutex_lock(&ol->mu);
    atomic_store(&ol->stop, true);
    pthread_cond_signal(&ol->cv);
    pthread_mutex_unlock(&ol->mu);
    pthread_join(ol->th, NULL);
    for (size_t i = 0; i < ol->n; i++) {
        free(ol->queue[(ol->head + i) % ol->cap]);
        count(ol->dropped, 1);
    }
    if (ol->curl) curl_easy_cleanup(ol->curl);
    pthread_mutex_destroy(&ol->mu);
    pthread_cond_destroy(&ol->cv);
    free(ol->queue);
    json_decref(ol->known);
    json_decref(ol->states);
    free(ol->url);
    free(ol->ns);
    free(ol->topic_ns);
    free(ol);
}
