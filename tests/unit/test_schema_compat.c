/* Unit tests for schema/compat.c: a table of compatibility cases, each rule
 * in both directions (BACKWARD: new reads old; FORWARD: old reads new), plus
 * FULL, the transitive levels and NONE. Schemas are written with single
 * quotes for readability and turned into JSON before parsing. */
#include "check.h"
#include "schema/dm_schema_compat.h"

#define REC(fields)         "{'type':'record','name':'R','fields':[" fields "]}"
#define F(name, type)       "{'name':'" name "','type':" type "}"
#define FD(name, type, def) "{'name':'" name "','type':" type ",'default':" def "}"
#define ENUM(syms)          "{'type':'enum','name':'E','symbols':[" syms "]}"
#define ENUMD(syms, def)    "{'type':'enum','name':'E','symbols':[" syms "],'default':'" def "'}"

typedef struct {
    const char *name;
    const char *new_s;
    const char *old_s;
    bool backward_ok;
    bool forward_ok;
    const char *reason; /* substring of the first incompatibility, when there is one */
} pair_case_t;

static const pair_case_t pairs[] = {
    {"identical", REC(F("a", "'int'")), REC(F("a", "'int'")), true, true, NULL},
    {"add field with default", REC(F("a", "'int'") "," FD("b", "'string'", "'x'")),
     REC(F("a", "'int'")), true, true, NULL},
    {"add field without default", REC(F("a", "'int'") "," F("b", "'string'")), REC(F("a", "'int'")),
     false, true, "$.b: reader field \"b\" has no default"},
    {"remove field with default", REC(F("a", "'int'")),
     REC(F("a", "'int'") "," FD("b", "'string'", "'x'")), true, true, NULL},
    {"remove field without default", REC(F("a", "'int'")),
     REC(F("a", "'int'") "," F("b", "'string'")), true, false, "reader field \"b\""},
    {"int to long", REC(F("a", "'long'")), REC(F("a", "'int'")), true, false,
     "$.a: type mismatch: reader int cannot read writer long"},
    {"long to int", REC(F("a", "'int'")), REC(F("a", "'long'")), false, true, "type mismatch"},
    {"int to float", "'float'", "'int'", true, false, "type mismatch"},
    {"int to double", "'double'", "'int'", true, false, "type mismatch"},
    {"long to float", "'float'", "'long'", true, false, "type mismatch"},
    {"long to double", "'double'", "'long'", true, false, "type mismatch"},
    {"float to double", "'double'", "'float'", true, false, "type mismatch"},
    {"string to bytes", "'bytes'", "'string'", true, true, NULL},
    {"bytes to string", "'string'", "'bytes'", true, true, NULL},
    {"int to string", "'string'", "'int'", false, false, "type mismatch"},
    {"boolean to int", "'int'", "'boolean'", false, false, "type mismatch"},
    {"null to boolean", "'boolean'", "'null'", false, false, "type mismatch"},
    {"double to float", "'float'", "'double'", false, true, "type mismatch"},
    {"enum adds a symbol", ENUM("'A','B','C'"), ENUM("'A','B'"), true, false,
     "lacks writer symbols [C]"},
    {"enum adds a symbol, old has a default", ENUM("'A','B','C'"), ENUMD("'A','B'", "A"), true,
     true, NULL},
    {"enum removes a symbol", ENUM("'A'"), ENUM("'A','B'"), false, true, "[B]"},
    {"enum removes a symbol, new has a default", ENUMD("'A','Z'", "Z"), ENUM("'A','B'"), true,
     false, "[Z]"},
    {"enum reordered", ENUM("'B','A'"), ENUM("'A','B'"), true, true, NULL},
    {"enum renamed", "{'type':'enum','name':'E2','symbols':['A']}", ENUM("'A'"), false, false,
     "name mismatch"},
    {"union adds a branch", "['null','int','string']", "['null','int']", true, false,
     "no branch that can read writer union branch string"},
    {"union removes a branch", "['null','int']", "['null','int','string']", false, true,
     "no branch"},
    {"union reordered", "['string','null']", "['null','string']", true, true, NULL},
    {"type becomes a union with it", "['null','int']", "'int'", true, false, "null"},
    {"union becomes one of its types", "'int'", "['null','int']", false, true,
     "reader int cannot read writer null"},
    {"union branch promoted", "['null','long']", "['null','int']", true, false, "long"},
    {"type becomes an unrelated union", "['null','string']", "'int'", false, false, "int"},
    {"fixed size changes", "{'type':'fixed','name':'F','size':4}",
     "{'type':'fixed','name':'F','size':8}", false, false, "fixed size mismatch"},
    {"fixed renamed", "{'type':'fixed','name':'G','size':4}",
     "{'type':'fixed','name':'F','size':4}", false, false, "name mismatch"},
    {"fixed unchanged", "{'type':'fixed','name':'F','size':4}",
     "{'type':'fixed','name':'F','size':4}", true, true, NULL},
    {"record renamed", "{'type':'record','name':'S','fields':[]}",
     "{'type':'record','name':'R','fields':[]}", false, false, "name mismatch"},
    {"record renamed with alias", "{'type':'record','name':'S','aliases':['R'],'fields':[]}",
     "{'type':'record','name':'R','fields':[]}", true, false, "name mismatch"},
    {"record namespace changed", "{'type':'record','name':'R','namespace':'b','fields':[]}",
     "{'type':'record','name':'R','namespace':'a','fields':[]}", true, true, NULL},
    {"field renamed with alias", REC("{'name':'b','aliases':['a'],'type':'int'}"),
     REC(F("a", "'int'")), true, false, "reader field \"a\""},
    {"field renamed without alias", REC(F("b", "'int'")), REC(F("a", "'int'")), false, false,
     "reader field"},
    {"array items promoted", "{'type':'array','items':'long'}", "{'type':'array','items':'int'}",
     true, false, "$[]"},
    {"array items changed", "{'type':'array','items':'string'}", "{'type':'array','items':'int'}",
     false, false, "type mismatch"},
    {"map values promoted", "{'type':'map','values':'double'}", "{'type':'map','values':'float'}",
     true, false, "${}"},
    {"map values changed", "{'type':'map','values':'int'}", "{'type':'map','values':'string'}",
     false, false, "type mismatch"},
    {"record becomes a map", "{'type':'map','values':'int'}", REC(F("a", "'int'")), false, false,
     "type mismatch"},
    {"array becomes a map", "{'type':'map','values':'int'}", "{'type':'array','items':'int'}",
     false, false, "type mismatch"},
    {"nested field added without default",
     REC(F("in", "{'type':'record','name':'In','fields':[{'name':'x','type':'int'},"
                 "{'name':'y','type':'int'}]}")),
     REC(F("in", "{'type':'record','name':'In','fields':[{'name':'x','type':'int'}]}")), false,
     true, "$.in.y: reader field \"y\""},
    {"nested field type changed",
     REC(F("in", "{'type':'record','name':'In','fields':[{'name':'x','type':'string'}]}")),
     REC(F("in", "{'type':'record','name':'In','fields':[{'name':'x','type':'int'}]}")), false,
     false, "$.in.x: type mismatch"},
    {"record in array gains a defaulted field",
     REC(F("l", "{'type':'array','items':{'type':'record','name':'I','fields':[{'name':'x',"
                "'type':'int'},{'name':'y','type':'int','default':0}]}}")),
     REC(F("l", "{'type':'array','items':{'type':'record','name':'I','fields':[{'name':'x',"
                "'type':'int'}]}}")),
     true, true, NULL},
    {"recursive schema unchanged",
     "{'type':'record','name':'N','fields':[{'name':'v','type':'int'},{'name':'next','type':"
     "['null','N']}]}",
     "{'type':'record','name':'N','fields':[{'name':'v','type':'int'},{'name':'next','type':"
     "['null','N']}]}",
     true, true, NULL},
    {"recursive schema gains a field",
     "{'type':'record','name':'N','fields':[{'name':'v','type':'int'},{'name':'w','type':"
     "'int'},{'name':'next','type':['null','N']}]}",
     "{'type':'record','name':'N','fields':[{'name':'v','type':'int'},{'name':'next','type':"
     "['null','N']}]}",
     false, true, "reader field \"w\""},
    {"nullable field becomes required", REC(F("a", "'string'")),
     REC(FD("a", "['null','string']", "null")), false, true, "null"},
    {"required field becomes nullable", REC(FD("a", "['null','string']", "null")),
     REC(F("a", "'string'")), true, false, "null"},
    {"logical type added (same underlying type)",
     REC(F("a", "{'type':'long','logicalType':'timestamp-millis'}")), REC(F("a", "'long'")), true,
     true, NULL},
};

static char *requote(const char *s)
{
    char *o = strdup(s);
    for (char *p = o; *p; p++)
        if (*p == '\'') *p = '"';
    return o;
}

static dm_avro_schema_t *parse(const char *s)
{
    char *j = requote(s);
    dm_avro_schema_t *out = NULL;
    dm_error_t err = {0};
    if (dm_avro_schema_parse(j, strlen(j), &out, &err))
        printf("    bad schema %s: %s\n", j, err.message);
    free(j);
    return out;
}

static int cases_run, cases_failed;

static void run_case(const char *what, dm_schema_compat_level_t level, const char *new_s,
                     const char *const *olds, size_t n_olds, bool want_ok, const char *reason)
{
    cases_run++;
    dm_avro_schema_t *n = parse(new_s);
    dm_avro_schema_t *o[4] = {0};
    for (size_t i = 0; i < n_olds; i++)
        o[i] = parse(olds[i]);
    dm_schema_compat_report_t report = {0};
    dm_err_t rc =
        dm_schema_compat_check(level, n, (const dm_avro_schema_t *const *)o, n_olds, &report);
    bool ok = rc == DM_OK && report.n == 0;
    bool good = ok == want_ok;
    if (good && !ok && reason) {
        good = false;
        for (size_t i = 0; i < report.n; i++)
            if (strstr(report.messages[i], reason)) good = true;
    }
    if (!good) {
        cases_failed++;
        printf("    case \"%s\" at %s: expected %s%s%s, got %s\n", what,
               dm_schema_compat_level_name(level), want_ok ? "compatible" : "incompatible",
               reason ? " with " : "", reason ? reason : "", ok ? "compatible" : "incompatible");
        for (size_t i = 0; i < report.n; i++)
            printf("      %s\n", report.messages[i]);
    }
    dm_schema_compat_report_free(&report);
    dm_avro_schema_free(n);
    for (size_t i = 0; i < n_olds; i++)
        dm_avro_schema_free(o[i]);
}

static void test_pair_table(void)
{
    int before = cases_failed;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const pair_case_t *c = &pairs[i];
        const char *olds[1] = {c->old_s};
        run_case(c->name, DM_COMPAT_BACKWARD, c->new_s, olds, 1, c->backward_ok,
                 c->backward_ok ? NULL : c->reason);
        run_case(c->name, DM_COMPAT_FORWARD, c->new_s, olds, 1, c->forward_ok,
                 c->forward_ok ? NULL : c->reason);
        run_case(c->name, DM_COMPAT_FULL, c->new_s, olds, 1, c->backward_ok && c->forward_ok, NULL);
        run_case(c->name, DM_COMPAT_NONE, c->new_s, olds, 1, true, NULL);
    }
    CHECK_EQ_INT(cases_failed, before);
}

static void test_transitive(void)
{
    int before = cases_failed;
    /* v3 drops b's default: fine against v2 (which always writes b), not v1. */
    const char *v1 = REC(F("a", "'int'"));
    const char *v2 = REC(F("a", "'int'") "," FD("b", "'string'", "'x'"));
    const char *v3 = REC(F("a", "'int'") "," F("b", "'string'"));
    const char *olds[] = {v2, v1};
    run_case("b loses its default", DM_COMPAT_BACKWARD, v3, olds, 2, true, NULL);
    run_case("b loses its default", DM_COMPAT_BACKWARD_TRANSITIVE, v3, olds, 2, false,
             "old schema #2");
    /* v3 removes c, which v2 readers default but v1 readers require. */
    const char *w1 = REC(F("a", "'int'") "," F("c", "'int'"));
    const char *w2 = REC(F("a", "'int'") "," FD("c", "'int'", "0"));
    const char *w3 = REC(F("a", "'int'"));
    const char *wolds[] = {w2, w1};
    run_case("c removed", DM_COMPAT_FORWARD, w3, wolds, 2, true, NULL);
    run_case("c removed", DM_COMPAT_FORWARD_TRANSITIVE, w3, wolds, 2, false,
             "FORWARD: old schema #2");
    run_case("c removed", DM_COMPAT_FULL, w3, wolds, 2, true, NULL);
    run_case("c removed", DM_COMPAT_FULL_TRANSITIVE, w3, wolds, 2, false, "reader field \"c\"");
    run_case("no olders", DM_COMPAT_FULL_TRANSITIVE, w3, wolds, 0, true, NULL);
    const char *same[] = {v2, v2};
    run_case("all the same", DM_COMPAT_FULL_TRANSITIVE, v2, same, 2, true, NULL);
    CHECK_EQ_INT(cases_failed, before);
}

static void test_level_names(void)
{
    dm_schema_compat_level_t l;
    CHECK_EQ_INT(dm_schema_compat_level_parse("full_transitive", &l), DM_OK);
    CHECK_EQ_INT(l, DM_COMPAT_FULL_TRANSITIVE);
    CHECK_EQ_INT(dm_schema_compat_level_parse("sideways", &l), DM_ERR_INVALID);
    CHECK_STR_EQ(dm_schema_compat_level_name(DM_COMPAT_BACKWARD), "BACKWARD");
}

int main(void)
{
    RUN(test_pair_table);
    RUN(test_transitive);
    RUN(test_level_names);
    printf("%d compatibility cases, %d wrong\n", cases_run, cases_failed);
    return check_summary();
}
