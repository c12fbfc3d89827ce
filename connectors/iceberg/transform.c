/* connectors/iceberg/transform.c — partition transforms and specs (Iceberg
 * table spec, "Partition Transforms" and Appendix B). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/iceberg/table.h"

static uint32_t rotl32(uint32_t x, int r)
{
    return (x << r) | (x >> (32 - r));
}

uint32_t dm_ice_murmur3(const void *data, size_t len)
{
    const uint8_t *p = data;
    const uint32_t c1 = 0xcc9e2d51, c2 = 0x1b873593;
    uint32_t h = 0;
    size_t blocks = len / 4;
    for (size_t i = 0; i < blocks; i++) {
        uint32_t k = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 |
                     (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
        h = rotl32(h, 13);
        h = h * 5 + 0xe6546b64;
    }
    const uint8_t *tail = p + blocks * 4;
    uint32_t k = 0;
    switch (len & 3) {
    case 3: k ^= (uint32_t)tail[2] << 16; /* fall through */
    case 2: k ^= (uint32_t)tail[1] << 8;  /* fall through */
    case 1:
        k ^= tail[0];
        k *= c1;
        k = rotl32(k, 15);
        k *= c2;
        h ^= k;
    }
    h ^= (uint32_t)len;
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

int32_t dm_ice_hash_value(dm_ice_type_t t, const dm_pq_value_t *v)
{
    uint8_t b[8];
    int64_t l;
    switch (t) {
    case DM_ICE_INT:
    case DM_ICE_DATE: l = v->u.i32; break;
    case DM_ICE_LONG:
    case DM_ICE_TIMESTAMP:
    case DM_ICE_TIMESTAMPTZ: l = v->u.i64; break;
    default: return (int32_t)dm_ice_murmur3(v->u.s.p, v->u.s.len);
    }
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)l >> (8 * i));
    return (int32_t)dm_ice_murmur3(b, 8);
}

static const char *const transform_names[] = {"identity", "bucket", "truncate", "year",
                                              "month",    "day",    "hour"};

dm_err_t dm_ice_transform_parse(const char *text, dm_ice_transform_t *t, int32_t *param,
                                dm_error_t *err)
{
    *param = 0;
    for (int i = 0; i < 7; i++) {
        size_t n = strlen(transform_names[i]);
        if (strncmp(text, transform_names[i], n)) continue;
        if (text[n] == 0 && i != DM_ICE_BUCKET && i != DM_ICE_TRUNCATE) {
            *t = (dm_ice_transform_t)i;
            return DM_OK;
        }
        if (text[n] == '[' && (i == DM_ICE_BUCKET || i == DM_ICE_TRUNCATE)) {
            char *end;
            long v = strtol(text + n + 1, &end, 10);
            if (*end == ']' && end[1] == 0 && v > 0 && v < 1000000) {
                *t = (dm_ice_transform_t)i;
                *param = (int32_t)v;
                return DM_OK;
            }
        }
    }
    return dm_error_set(err, DM_ERR_UNSUPPORTED, "iceberg: unknown partition transform '%s'", text);
}

const char *dm_ice_transform_name(dm_ice_transform_t t, int32_t param, char buf[32])
{
    if (t == DM_ICE_BUCKET || t == DM_ICE_TRUNCATE)
        snprintf(buf, 32, "%s[%d]", transform_names[t], param);
    else
        snprintf(buf, 32, "%s", transform_names[t]);
    return buf;
}

dm_err_t dm_ice_transform_result(dm_ice_transform_t t, dm_ice_type_t src, dm_ice_type_t *out)
{
    bool temporal = src == DM_ICE_DATE || src == DM_ICE_TIMESTAMP || src == DM_ICE_TIMESTAMPTZ;
    /* Not partitioned by yet: their partition values would need their own
     * manifest types. */
    if (src == DM_ICE_TIME || src == DM_ICE_DECIMAL || dm_ice_type_nested(src))
        return DM_ERR_INVALID;
    switch (t) {
    case DM_ICE_IDENTITY: *out = src; return DM_OK;
    case DM_ICE_BUCKET:
        *out = DM_ICE_INT;
        return src == DM_ICE_BOOLEAN || src == DM_ICE_FLOAT || src == DM_ICE_DOUBLE ? DM_ERR_INVALID
                                                                                    : DM_OK;
    case DM_ICE_TRUNCATE:
        *out = src;
        return src == DM_ICE_INT || src == DM_ICE_LONG || src == DM_ICE_STRING ||
                       src == DM_ICE_BINARY
                   ? DM_OK
                   : DM_ERR_INVALID;
    case DM_ICE_DAY: *out = DM_ICE_DATE; return temporal ? DM_OK : DM_ERR_INVALID;
    case DM_ICE_HOUR:
        *out = DM_ICE_INT;
        return temporal && src != DM_ICE_DATE ? DM_OK : DM_ERR_INVALID;
    default: *out = DM_ICE_INT; return temporal ? DM_OK : DM_ERR_INVALID;
    }
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian). */
static void civil(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* Truncates a UTF-8 string to w code points. */
static uint32_t utf8_prefix(const uint8_t *p, uint32_t len, int32_t w)
{
    uint32_t i = 0;
    for (int32_t cps = 0; i < len && cps < w; cps++) {
        i++;
        while (i < len && (p[i] & 0xc0) == 0x80)
            i++;
    }
    return i;
}

void dm_ice_transform_apply(const dm_ice_part_field_t *pf, dm_ice_type_t src,
                            const dm_pq_value_t *in, dm_pq_value_t *out)
{
    *out = *in;
    if (in->null) return;
    int64_t days = 0, micros = 0;
    if (src == DM_ICE_DATE) days = in->u.i32, micros = (int64_t)in->u.i32 * 86400000000LL;
    if (src == DM_ICE_TIMESTAMP || src == DM_ICE_TIMESTAMPTZ)
        micros = in->u.i64, days = floor_div(in->u.i64, 86400000000LL);
    int64_t y;
    int m, d;
    switch (pf->transform) {
    case DM_ICE_IDENTITY: return;
    case DM_ICE_BUCKET:
        out->u.i32 =
            (int32_t)(((uint32_t)dm_ice_hash_value(src, in) & 0x7fffffffu) % (uint32_t)pf->param);
        return;
    case DM_ICE_TRUNCATE:
        if (src == DM_ICE_INT)
            out->u.i32 = in->u.i32 - (((in->u.i32 % pf->param) + pf->param) % pf->param);
        else if (src == DM_ICE_LONG)
            out->u.i64 = in->u.i64 - (((in->u.i64 % pf->param) + pf->param) % pf->param);
        else if (src == DM_ICE_STRING)
            out->u.s.len = utf8_prefix(in->u.s.p, in->u.s.len, pf->param);
        else if (in->u.s.len > (uint32_t)pf->param)
            out->u.s.len = (uint32_t)pf->param;
        return;
    case DM_ICE_YEAR:
        civil(days, &y, &m, &d);
        out->u.i32 = (int32_t)(y - 1970);
        return;
    case DM_ICE_MONTH:
        civil(days, &y, &m, &d);
        out->u.i32 = (int32_t)((y - 1970) * 12 + m - 1);
        return;
    case DM_ICE_DAY: out->u.i32 = (int32_t)days; return;
    case DM_ICE_HOUR: out->u.i32 = (int32_t)floor_div(micros, 3600000000LL); return;
    }
}

/* ---- specs --------------------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

/* One term: "col", "year(col)", "bucket(16, col)", "truncate(4, col)". */
static dm_err_t parse_term(char *term, const dm_ice_schema_t *schema, dm_ice_part_field_t *pf,
                           dm_error_t *err)
{
    char *open = strchr(term, '(');
    char *col = term;
    char tname[32] = "identity";
    pf->param = 0;
    if (open) {
        char *close = strrchr(term, ')');
        if (!close || close[1])
            return dm_error_set(err, DM_ERR_CONFIG, "iceberg: partition term '%s' is malformed",
                                term);
        *open = 0, *close = 0;
        snprintf(tname, sizeof(tname), "%s", trim(term));
        col = open + 1;
        char *comma = strchr(col, ',');
        if (comma) {
            *comma = 0;
            char *end;
            long v = strtol(trim(col), &end, 10);
            if (*end || v <= 0 || v > 1000000)
                return dm_error_set(err, DM_ERR_CONFIG,
                                    "iceberg: partition %s wants a positive number first", tname);
            pf->param = (int32_t)v;
            col = comma + 1;
        }
        if (!strcmp(tname, "years")) snprintf(tname, sizeof(tname), "year");
        if (!strcmp(tname, "months")) snprintf(tname, sizeof(tname), "month");
        if (!strcmp(tname, "days")) snprintf(tname, sizeof(tname), "day");
        if (!strcmp(tname, "hours")) snprintf(tname, sizeof(tname), "hour");
    }
    col = trim(col);
    const dm_ice_field_t *f = dm_ice_schema_find(schema, col);
    if (!f)
        return dm_error_set(err, DM_ERR_CONFIG,
                            "iceberg: partition column '%s' is not in the schema", col);
    char full[48];
    if (pf->param)
        snprintf(full, sizeof(full), "%s[%d]", tname, pf->param);
    else
        snprintf(full, sizeof(full), "%s", tname);
    dm_err_t rc = dm_ice_transform_parse(full, &pf->transform, &pf->param, err);
    if (rc)
        return dm_error_set(err, DM_ERR_CONFIG, "iceberg: partition term: unknown transform %s",
                            full);
    dm_ice_type_t res;
    char tb[32];
    if (dm_ice_transform_result(pf->transform, f->type, &res))
        return dm_error_set(err, DM_ERR_CONFIG, "iceberg: partition %s does not apply to %s (%s)",
                            full, col, dm_ice_type_name(f, tb));
    pf->source_id = f->id;
    char name[256];
    if (pf->transform == DM_ICE_IDENTITY)
        snprintf(name, sizeof(name), "%s", col);
    else
        snprintf(name, sizeof(name), "%s_%s", col, transform_names[pf->transform]);
    pf->name = strdup(name);
    return pf->name ? DM_OK : DM_ERR_NOMEM;
}

dm_err_t dm_ice_spec_parse(const char *text, const dm_ice_schema_t *schema, dm_ice_spec_t *spec,
                           dm_error_t *err)
{
    memset(spec, 0, sizeof(*spec));
    char *copy = strdup(text ? text : "");
    if (!copy) return DM_ERR_NOMEM;
    dm_err_t rc = DM_OK;
    /* Split on commas outside parentheses. */
    char *start = copy;
    int depth = 0;
    for (char *p = copy;; p++) {
        if (*p == '(') depth++;
        if (*p == ')') depth--;
        if ((*p == ',' && depth == 0) || *p == 0) {
            bool last = *p == 0;
            *p = 0;
            char *term = trim(start);
            if (*term) {
                dm_ice_part_field_t *f = realloc(spec->fields, (spec->n + 1) * sizeof(*f));
                if (!f) {
                    rc = DM_ERR_NOMEM;
                    break;
                }
                spec->fields = f;
                memset(&f[spec->n], 0, sizeof(*f));
                if ((rc = parse_term(term, schema, &f[spec->n], err))) break;
                f[spec->n].field_id = 1000 + (int32_t)spec->n;
                spec->n++;
            }
            if (last) break;
            start = p + 1;
        }
    }
    free(copy);
    if (rc) dm_ice_spec_free(spec);
    return rc;
}

json_t *dm_ice_spec_fields_json(const dm_ice_spec_t *spec)
{
    json_t *a = json_array();
    char tb[32];
    for (size_t i = 0; i < spec->n; i++) {
        const dm_ice_part_field_t *f = &spec->fields[i];
        json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:i}", "name", f->name, "transform",
                                           dm_ice_transform_name(f->transform, f->param, tb),
                                           "source-id", f->source_id, "field-id", f->field_id));
    }
    return a;
}

json_t *dm_ice_spec_to_json(const dm_ice_spec_t *spec)
{
    return json_pack("{s:i, s:o}", "spec-id", spec->id, "fields", dm_ice_spec_fields_json(spec));
}

dm_err_t dm_ice_spec_from_json(const json_t *j, dm_ice_spec_t *spec, dm_error_t *err)
{
    memset(spec, 0, sizeof(*spec));
    json_t *fields = json_object_get(j, "fields");
    spec->id = (int32_t)json_integer_value(json_object_get(j, "spec-id"));
    size_t n = json_array_size(fields);
    spec->fields = calloc(n ? n : 1, sizeof(dm_ice_part_field_t));
    if (!spec->fields) return DM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fields, i);
        dm_ice_part_field_t *pf = &spec->fields[i];
        const char *t = json_string_value(json_object_get(f, "transform"));
        const char *name = json_string_value(json_object_get(f, "name"));
        dm_err_t rc = dm_ice_transform_parse(t ? t : "", &pf->transform, &pf->param, err);
        if (rc || !name) {
            spec->n = i;
            dm_ice_spec_free(spec);
            return rc ? rc
                      : dm_error_set(err, DM_ERR_CORRUPT,
                                     "iceberg: partition field without a name");
        }
        pf->name = strdup(name);
        pf->source_id = (int32_t)json_integer_value(json_object_get(f, "source-id"));
        pf->field_id = (int32_t)json_integer_value(json_object_get(f, "field-id"));
        spec->n = i + 1;
    }
    return DM_OK;
}

void dm_ice_spec_free(dm_ice_spec_t *spec)
{
    for (size_t i = 0; i < spec->n; i++)
        free(spec->fields[i].name);
    free(spec->fields);
    memset(spec, 0, sizeof(*spec));
}

/* Partition path values as the Java library prints them: dates as
 * yyyy-mm-dd, months yyyy-mm, hours yyyy-mm-dd-hh, strings URL-escaped. */
dm_err_t dm_ice_partition_path(const dm_ice_spec_t *spec, const dm_ice_schema_t *schema,
                               const dm_pq_value_t *vals, dm_buf_t *out)
{
    dm_err_t rc = DM_OK;
    for (size_t i = 0; i < spec->n && !rc; i++) {
        const dm_ice_part_field_t *pf = &spec->fields[i];
        const dm_ice_field_t *src = dm_ice_schema_find_id(schema, pf->source_id);
        dm_ice_type_t t;
        dm_ice_transform_result(pf->transform, src ? src->type : DM_ICE_INT, &t);
        rc = dm_buf_printf(out, "%s%s=", i ? "/" : "", pf->name);
        const dm_pq_value_t *v = &vals[i];
        int64_t y;
        int m, d;
        if (rc) break;
        if (v->null)
            rc = dm_buf_append_str(out, "null");
        else if (pf->transform == DM_ICE_YEAR)
            rc = dm_buf_printf(out, "%d", 1970 + v->u.i32);
        else if (pf->transform == DM_ICE_MONTH)
            rc = dm_buf_printf(out, "%04d-%02d", 1970 + (int)floor_div(v->u.i32, 12),
                               (int)(v->u.i32 - floor_div(v->u.i32, 12) * 12) + 1);
        else if (pf->transform == DM_ICE_HOUR) {
            civil(floor_div(v->u.i32, 24), &y, &m, &d);
            rc = dm_buf_printf(out, "%04lld-%02d-%02d-%02d", (long long)y, m, d,
                               (int)(v->u.i32 - floor_div(v->u.i32, 24) * 24));
        } else if (t == DM_ICE_DATE) {
            civil(v->u.i32, &y, &m, &d);
            rc = dm_buf_printf(out, "%04lld-%02d-%02d", (long long)y, m, d);
        } else if (t == DM_ICE_INT)
            rc = dm_buf_printf(out, "%d", v->u.i32);
        else if (t == DM_ICE_LONG || t == DM_ICE_TIMESTAMP || t == DM_ICE_TIMESTAMPTZ)
            rc = dm_buf_printf(out, "%lld", (long long)v->u.i64);
        else if (t == DM_ICE_BOOLEAN)
            rc = dm_buf_append_str(out, v->u.b ? "true" : "false");
        else
            for (uint32_t k = 0; k < v->u.s.len && !rc; k++) {
                uint8_t c = v->u.s.p[k];
                rc = isalnum(c) || c == '-' || c == '_' || c == '.'
                         ? dm_buf_append_u8(out, c)
                         : dm_buf_printf(out, "%%%02X", c);
            }
    }
    return rc;
}
