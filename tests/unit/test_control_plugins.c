/* Unit tests for control/plugins: the description of every connector, sink
 * and processor comes from the registries, and docs/plugins-reference.md is
 * exactly what the config tables generate (stale docs fail here). */
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "connectors/connector.h"
#include "control/plugins.h"
#include "engine/processor.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void test_docs_are_fresh(void)
{
    const char *root = getenv("DM_SOURCE_DIR");
    REQUIRE(root != NULL);
    char path[1024];
    snprintf(path, sizeof(path), "%s/docs/plugins-reference.md", root);
    size_t len = 0;
    char *committed = read_file(path, &len);
    REQUIRE(committed != NULL);
    dm_buf_t md = {0};
    REQUIRE(dm_plugins_markdown(&md) == DM_OK);
    bool same = md.len == len && !memcmp(md.data, committed, len);
    if (!same) {
        size_t i = 0;
        while (i < len && i < md.len && md.data[i] == (uint8_t)committed[i])
            i++;
        printf("    docs/plugins-reference.md is stale from byte %zu; regenerate it with\n"
               "    build/datamesh plugins --docs > docs/plugins-reference.md\n",
               i);
    }
    CHECK(same);
    dm_buf_free(&md);
    free(committed);
}

/* The page names every processor and each of its settings, nested ones too. */
static void test_docs_cover_every_setting(void)
{
    dm_buf_t md = {0};
    const char *text;
    REQUIRE(dm_plugins_markdown(&md) == DM_OK && dm_buf_cstr(&md, &text) == DM_OK);
    size_t n;
    const dm_proc_ops_t *const *list = dm_proc_list(&n);
    for (size_t i = 0; i < n; i++) {
        char want[128];
        snprintf(want, sizeof(want), "\n### %s\n", list[i]->name);
        CHECK_CONTAINS(text, want);
        for (size_t f = 0; list[i]->config && f < list[i]->config->n_fields; f++) {
            snprintf(want, sizeof(want), "| `%s` |", list[i]->config->fields[f].name);
            CHECK_CONTAINS(text, want);
        }
    }
    CHECK_CONTAINS(text, "| `window.lateness` | duration | 0 | 0 … 31536000000 |");
    CHECK_CONTAINS(text, "Shorthand: `- filter: VALUE` is `{expr: VALUE}`.");
    CHECK_CONTAINS(text, "\n### datagen\n");
    CHECK_CONTAINS(text, "\n### elasticsearch\n");
    dm_buf_free(&md);
}

static const json_t *named(const json_t *list, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(
        list, i, p) if (!strcmp(json_string_value(json_object_get(p, "name")), name)) return p;
    return NULL;
}

static void test_json(void)
{
    json_t *all = dm_plugins_json();
    size_t n;
    const dm_proc_ops_t *const *list = dm_proc_list(&n);
    const json_t *procs = json_object_get(all, "processors");
    CHECK_EQ_INT(json_array_size(procs), n);
    for (size_t i = 0; i < n; i++) {
        const json_t *p = named(procs, list[i]->name);
        REQUIRE(p != NULL);
        CHECK(json_string_length(json_object_get(p, "summary")) > 0);
        CHECK_EQ_INT(json_array_size(json_object_get(p, "settings")), list[i]->config->n_fields);
    }
    const json_t *project = named(procs, "project");
    CHECK_STR_EQ(json_string_value(json_object_get(project, "shorthand")), "columns");
    const json_t *agg = named(procs, "aggregate");
    CHECK(json_is_true(json_object_get(agg, "stateful")));
    CHECK(json_is_null(json_object_get(agg, "shorthand")));
    const json_t *window = named(json_object_get(agg, "settings"), "window");
    CHECK_STR_EQ(json_string_value(json_object_get(window, "type")), "object");
    CHECK_EQ_INT(json_array_size(json_object_get(window, "fields")), 5);
    const json_t *outputs = named(json_object_get(named(procs, "route"), "settings"), "outputs");
    CHECK_EQ_INT(json_integer_value(json_object_get(outputs, "min_items")), 1);
    /* Every available connector and sink type, none that is not. */
    for (size_t i = 0; dm_source_connector_names[i]; i++)
        CHECK((named(json_object_get(all, "sources"), dm_source_connector_names[i]) != NULL) ==
              (dm_source_connector_find(dm_source_connector_names[i]) != NULL));
    for (size_t i = 0; dm_sink_type_names[i]; i++)
        CHECK((named(json_object_get(all, "sinks"), dm_sink_type_names[i]) != NULL) ==
              (dm_sink_type_find(dm_sink_type_names[i]) != NULL));
    const json_t *datagen = named(json_object_get(all, "sources"), "datagen");
    REQUIRE(datagen != NULL);
    CHECK(named(json_object_get(datagen, "settings"), "rate") != NULL);
    json_decref(all);
}

int main(void)
{
    RUN(test_docs_are_fresh);
    RUN(test_docs_cover_every_setting);
    RUN(test_json);
    return check_summary();
}
