/* connectors/kafkasink/kafkasink.c — records onto an external Kafka topic
 * (see kafkasink.h).
 *
 * The bytes after the wire header are left as they are: the schema they were
 * written with is registered under the external topic's subject in the target
 * registry (once per schema), and only the 4-byte id in the header changes to
 * the id that registry gave it. A batch is produced and then flushed; it
 * counts as written when every record is acknowledged by all in-sync replicas
 * (acks=all). The producer is idempotent, so librdkafka's own retries add no
 * duplicates; a batch retried as a whole after a failure may repeat the
 * records that did get through (at-least-once, as for every external sink).
 */
#include "connectors/kafkasink/kafkasink.h"

#include <curl/curl.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/redact.h"
#include "schema/dm_avro.h"
#include "schema/wire.h"

typedef struct id_map {
    uint32_t ours, theirs;
    bool key;
} id_map_t;

typedef struct kafkasink {
    const dm_kafkasink_config_t *conf;
    const dm_sink_env_t *env;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    CURL *curl;
    char password[256];
    id_map_t *ids;
    size_t n_ids;
    dm_buf_t resp, scratch;
    char last_error[256];    /* the client's last word about the cluster */
    rd_kafka_resp_err_t *dr; /* delivery result per batch index */
    size_t dr_cap;
} kafkasink_t;

/* ---- the registry -------------------------------------------------------------------------- */

static size_t on_data(char *p, size_t size, size_t n, void *ctx)
{
    return dm_buf_append(ctx, p, size * n) ? 0 : size * n;
}

static void registry_base(kafkasink_t *s, char *out, size_t cap)
{
    out[0] = '\0';
    if (s->conf->registry_url)
        snprintf(out, cap, "%s", s->conf->registry_url);
    else if (s->env->registry_url)
        s->env->registry_url(s->env->registry_ctx, out, cap);
    size_t n = strlen(out);
    if (n && out[n - 1] == '/') out[n - 1] = '\0';
}

/* Registers text under subject in the target registry; *id gets its id there. */
static dm_err_t register_schema(kafkasink_t *s, const char *subject, const char *text, uint32_t *id,
                                dm_error_t *err)
{
    char base[512], url[1024], shown[512];
    registry_base(s, base, sizeof(base));
    if (!base[0])
        return dm_error_set(err, DM_ERR_AGAIN,
                            "kafka sink: the schema registry's address is not known yet");
    char *esc = curl_easy_escape(s->curl, subject, 0);
    snprintf(url, sizeof(url), "%s/subjects/%s/versions", base, esc ? esc : subject);
    curl_free(esc);
    dm_redact_dsn(base, shown, sizeof(shown));
    json_t *req = json_pack("{s:s}", "schema", text);
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    struct curl_slist *h =
        curl_slist_append(NULL, "Content-Type: application/vnd.schemaregistry.v1+json");
    curl_easy_reset(s->curl);
    s->resp.len = 0;
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &s->resp);
    curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(s->curl);
    curl_slist_free_all(h);
    free(body);
    if (rc != CURLE_OK) /* the registry down or unreachable: passes */
        return dm_error_set_retriable(err, DM_ERR_CONNECTOR, "kafka sink: schema registry %s: %s",
                                      shown, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = json_loadb((const char *)s->resp.data, s->resp.len, 0, NULL);
    json_t *got = json_object_get(j, "id");
    dm_err_t out = DM_OK;
    if (status != 200 || !json_is_integer(got)) {
        out = dm_error_set(
            err, DM_ERR_CONNECTOR, "kafka sink: registering %s in %s: HTTP %ld: %s", subject, shown,
            status, json_string_value(json_object_get(j, "message")) ?: "no id in the answer");
        /* the registry busy or starting passes */
        if (err && (status == 429 || status >= 500)) err->retriable = true;
    } else {
        *id = (uint32_t)json_integer_value(got);
    }
    json_decref(j);
    return out;
}

/* The target registry's id for our schema id (registered on first use). */
static dm_err_t target_id(kafkasink_t *s, uint32_t ours, bool key, uint32_t *theirs,
                          dm_error_t *err)
{
    for (size_t i = 0; i < s->n_ids; i++)
        if (s->ids[i].ours == ours && s->ids[i].key == key)
            return *theirs = s->ids[i].theirs, DM_OK;
    const dm_avro_schema_t *schema =
        s->env->schema_by_id ? s->env->schema_by_id(s->env->schema_ctx, ours) : NULL;
    if (!schema && ours == s->env->value_schema_id) schema = s->env->value_schema;
    if (!schema)
        return dm_error_set(err, DM_ERR_SCHEMA_MISMATCH, "kafka sink: schema id %u is unknown",
                            ours);
    char subject[600];
    const char *named = key ? s->conf->key_subject : s->conf->value_subject;
    snprintf(subject, sizeof(subject), "%s", named ? named : "");
    if (!named) snprintf(subject, sizeof(subject), "%s-%s", s->conf->topic, key ? "key" : "value");
    dm_err_t rc = register_schema(s, subject, schema->json, theirs, err);
    if (rc) return rc;
    id_map_t *grown = realloc(s->ids, (s->n_ids + 1) * sizeof(*grown));
    if (!grown) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->ids = grown;
    s->ids[s->n_ids++] = (id_map_t){ours, *theirs, key};
    DM_INFO("sink", "%s sink=kafka: schema %u is %s id %u in the target registry", s->env->name,
            ours, subject, *theirs);
    return DM_OK;
}

/* ---- the producer -------------------------------------------------------------------------- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    kafkasink_t *s = opaque;
    size_t i = (size_t)(uintptr_t)m->_private;
    if (i > 0 && i <= s->dr_cap) s->dr[i - 1] = m->err;
}

/* librdkafka's errors and logs, kept for the status and logged our way. */
static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk;
    (void)code;
    kafkasink_t *s = opaque;
    snprintf(s->last_error, sizeof(s->last_error), "%s", reason);
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kafkasink_t *s = rd_kafka_opaque(rk);
    if (level <= 4) DM_WARN("sink", "%s sink=kafka: %s: %s", s->env->name, fac, buf);
}

static dm_err_t make_producer(kafkasink_t *s, dm_error_t *err)
{
    const dm_kafkasink_config_t *c = s->conf;
    static const char *const codecs[] = {"none", "gzip", "snappy", "lz4", "zstd"};
    char errstr[512], timeout[32];
    snprintf(timeout, sizeof(timeout), "%lld", (long long)c->timeout_ms);
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    const char *set[][2] = {
        {"bootstrap.servers", c->brokers},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"partitioner", "murmur2_random"}, /* what Java clients do: same key, same partition */
        {"compression.codec", codecs[c->compression]},
        {"linger.ms", "5"},
        {"message.timeout.ms", timeout},
        {"security.protocol", c->sasl_mechanism ? (c->tls ? "SASL_SSL" : "SASL_PLAINTEXT")
                                                : (c->tls ? "SSL" : "PLAINTEXT")},
        {"sasl.mechanisms", c->sasl_mechanism},
        {"sasl.username", c->sasl_username},
        {"sasl.password", c->sasl_mechanism ? s->password : NULL},
    };
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++) {
        if (!set[i][1]) continue;
        if (rd_kafka_conf_set(kc, set[i][0], set[i][1], errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(kc);
            return dm_error_set(err, DM_ERR_CONFIG, "kafka sink: %s: %s", set[i][0], errstr);
        }
    }
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_log_cb(kc, on_log);
    rd_kafka_conf_set_opaque(kc, s);
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, errstr, sizeof(errstr));
    if (!s->rk) {
        rd_kafka_conf_destroy(kc);
        return dm_error_set(err, DM_ERR_CONNECTOR, "kafka sink: %s", errstr);
    }
    s->rkt = rd_kafka_topic_new(s->rk, c->topic, NULL);
    return DM_OK;
}

static void drop_producer(kafkasink_t *s)
{
    if (s->rkt) rd_kafka_topic_destroy(s->rkt);
    if (s->rk) {
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(s->rk);
    }
    s->rkt = NULL;
    s->rk = NULL;
}

/* Errors a record will meet whenever it is sent again. */
static bool permanent(rd_kafka_resp_err_t e)
{
    return e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || e == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE ||
           e == RD_KAFKA_RESP_ERR_INVALID_RECORD || e == RD_KAFKA_RESP_ERR_INVALID_MSG ||
           e == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

/* The record's bytes with its header pointing at the target registry's id. */
static dm_err_t rewrite(kafkasink_t *s, const uint8_t *p, int32_t len, bool key, size_t *at,
                        dm_error_t *err)
{
    uint32_t ours, theirs;
    *at = s->scratch.len;
    if (len < 0) return DM_OK;
    if (dm_wire_get_header(p, (size_t)len, &ours))
        return dm_buf_append(&s->scratch, p, (size_t)len); /* a key not in wire format: as is */
    dm_err_t rc = target_id(s, ours, key, &theirs, err);
    if (rc) return rc;
    if ((rc = dm_wire_put_header(&s->scratch, theirs)))
        return dm_error_set(err, rc, "out of memory");
    return dm_buf_append(&s->scratch, p + DM_WIRE_HEADER, (size_t)len - DM_WIRE_HEADER);
}

static dm_err_t kafka_write(void *state, const dm_sink_batch_t *b, dm_sink_rejects_t *rj,
                            dm_error_t *err)
{
    kafkasink_t *s = state;
    dm_err_t rc;
    if (!s->rk && (rc = make_producer(s, err))) return rc;
    if (b->n > s->dr_cap) {
        rd_kafka_resp_err_t *dr = realloc(s->dr, b->n * sizeof(*dr));
        if (!dr) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
        s->dr = dr;
        s->dr_cap = b->n;
    }
    for (size_t i = 0; i < b->n; i++)
        s->dr[i] = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    for (size_t i = 0; i < b->n; i++) {
        if (dm_sink_rejected(rj, i)) {
            s->dr[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
            continue;
        }
        const dm_record_t *r = b->records[i].rec;
        size_t k_at, v_at;
        s->scratch.len = 0;
        if ((rc = rewrite(s, r->key, r->key_len, true, &k_at, err)) ||
            (rc = rewrite(s, r->value, r->value_len, false, &v_at, err)))
            return rc;
        size_t k_len = v_at - k_at, v_len = s->scratch.len - v_at;
        const void *k = r->key_len < 0 ? NULL : s->scratch.data + k_at;
        void *v = r->value_len < 0 ? NULL : s->scratch.data + v_at; /* copied (F_COPY) */
        rd_kafka_resp_err_t e;
        do {
            e = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(s->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_KEY(k, k ? k_len : 0), RD_KAFKA_V_VALUE(v, v ? v_len : 0),
                RD_KAFKA_V_TIMESTAMP(r->timestamp > 0 ? r->timestamp : 0),
                RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(i + 1)), RD_KAFKA_V_END);
            if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(s->rk, 50);
        } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
        if (e && permanent(e)) {
            s->dr[i] = RD_KAFKA_RESP_ERR_NO_ERROR;
            dm_sink_reject(rj, i, "kafka sink: %s", rd_kafka_err2str(e));
        } else if (e) {
            drop_producer(s);
            return dm_error_set_retriable(err, DM_ERR_CONNECTOR, "kafka sink: producing to %s: %s",
                                          s->conf->topic, rd_kafka_err2str(e));
        }
    }
    /* Written means acknowledged by every in-sync replica. */
    rd_kafka_flush(s->rk, (int)s->conf->timeout_ms);
    char fatal[256];
    if (rd_kafka_fatal_error(s->rk, fatal, sizeof(fatal))) {
        drop_producer(s); /* a new producer (and producer id) for the retry */
        return dm_error_set_retriable(err, DM_ERR_CONNECTOR, "kafka sink: producer failed: %s",
                                      fatal);
    }
    rd_kafka_resp_err_t retry = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (size_t i = 0; i < b->n; i++) {
        rd_kafka_resp_err_t e = s->dr[i];
        if (!e) continue;
        if (permanent(e))
            dm_sink_reject(rj, i, "kafka sink: %s", rd_kafka_err2str(e));
        else if (!retry)
            retry = e;
    }
    if (retry) {
        if (rd_kafka_outq_len(s->rk) > 0) drop_producer(s);
        return dm_error_set_retriable(
            err, DM_ERR_CONNECTOR, "kafka sink: writing to %s at %s: %s%s%s", s->conf->topic,
            s->conf->brokers,
            retry == RD_KAFKA_RESP_ERR__IN_PROGRESS ? "not acknowledged in time"
                                                    : rd_kafka_err2str(retry),
            s->last_error[0] ? "; " : "", s->last_error);
    }
    return DM_OK;
}

static void kafka_close(void *state)
{
    kafkasink_t *s = state;
    if (!s) return;
    if (s->rk) rd_kafka_flush(s->rk, 1000);
    drop_producer(s);
    if (s->curl) curl_easy_cleanup(s->curl);
    memset(s->password, 0, sizeof(s->password));
    dm_buf_free(&s->resp);
    dm_buf_free(&s->scratch);
    free(s->ids);
    free(s->dr);
    free(s);
}

static dm_err_t kafka_open(const void *conf, const dm_sink_env_t *env, void **state,
                           dm_error_t *err)
{
    const dm_kafkasink_config_t *c = conf;
    kafkasink_t *s = calloc(1, sizeof(*s));
    if (!s) return dm_error_set(err, DM_ERR_NOMEM, "out of memory");
    s->conf = c;
    s->env = env;
    s->resp = s->scratch = (dm_buf_t)DM_BUF_INIT;
    dm_err_t rc = dm_sink_read_secret(c->sasl_password_env, c->sasl_password_file, s->password,
                                      sizeof(s->password), err);
    if (!rc && !(s->curl = curl_easy_init()))
        rc = dm_error_set(err, DM_ERR_NOMEM, "cannot make an HTTP client");
    if (!rc) rc = make_producer(s, err);
    if (rc) {
        kafka_close(s);
        return dm_error_prefix(err, "kafka sink");
    }
    *state = s;
    return DM_OK;
}

/* Lineage: OpenLineage's kafka://BOOTSTRAP (the first broker) + the topic. */
static void kafka_lineage(const json_t *settings, json_t *dataset)
{
    const char *brokers = json_string_value(json_object_get(settings, "brokers"));
    const char *topic = json_string_value(json_object_get(settings, "topic"));
    if (!brokers || !topic) return;
    char ns[512];
    snprintf(ns, sizeof(ns), "kafka://%.*s", (int)strcspn(brokers, ","), brokers);
    json_object_set_new(dataset, "namespace", json_string(ns));
    json_object_set_new(dataset, "name", json_string(topic));
}

const dm_sink_ops_t dm_kafkasink_ops = {.name = "kafka",
                                        .config = &dm_kafkasink_config_table,
                                        .config_size = sizeof(dm_kafkasink_config_t),
                                        .open = kafka_open,
                                        .write = kafka_write,
                                        .close = kafka_close,
                                        .lineage = kafka_lineage};
