/* cli/cmd_plugins.c — `datamesh plugins [-o table|json|yaml] [--docs]`: every
 * source connector, sink and processor this binary has, with its summary and
 * settings (control/plugins.h). Works offline: what a controller of the same
 * build answers at GET /api/v1/plugins. --docs writes the Markdown reference
 * (docs/plugins-reference.md is this output). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/output.h"
#include "control/plugins.h"

/* The range column of a setting: values, bounds or item counts. */
static void range_text(const json_t *s, char *out, size_t cap)
{
    out[0] = '\0';
    const json_t *values = json_object_get(s, "values");
    if (values) {
        size_t o = 0, i;
        json_t *v;
        json_array_foreach(values, i, v) if (o < cap) o +=
            (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", json_string_value(v));
        return;
    }
    const json_t *min = json_object_get(s, "min"), *max = json_object_get(s, "max");
    if (min && max) {
        snprintf(out, cap, "%.17g .. %.17g", json_number_value(min), json_number_value(max));
        return;
    }
    const json_t *lo = json_object_get(s, "min_items"), *hi = json_object_get(s, "max_items");
    if (lo && hi)
        snprintf(out, cap, "%lld .. %lld items", (long long)json_integer_value(lo),
                 (long long)json_integer_value(hi));
    else if (lo)
        snprintf(out, cap, "at least %lld item%s", (long long)json_integer_value(lo),
                 json_integer_value(lo) == 1 ? "" : "s");
}

/* Settings as rows {key, type, default, range, help}, nested ones as "a.b". */
static void flatten(const json_t *settings, const char *prefix, json_t *rows)
{
    size_t i;
    json_t *s;
    json_array_foreach(settings, i, s)
    {
        char key[256], range[512];
        snprintf(key, sizeof(key), "%s%s", prefix, json_string_value(json_object_get(s, "name")));
        range_text(s, range, sizeof(range));
        const char *def = json_is_true(json_object_get(s, "required"))
                              ? "required"
                              : json_string_value(json_object_get(s, "default"));
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", key, "type",
                                              json_string_value(json_object_get(s, "type")),
                                              "default", def ? def : "", "range", range, "help",
                                              json_string_value(json_object_get(s, "help"))
                                                  ? json_string_value(json_object_get(s, "help"))
                                                  : ""));
        if (json_object_get(s, "fields")) {
            char sub[260];
            snprintf(sub, sizeof(sub), "%s.", key);
            flatten(json_object_get(s, "fields"), sub, rows);
        }
    }
}

/* One plugin: its name and summary, then its settings aligned in columns
 * (help last and whole, so nothing is cut). */
static void print_plugin(const json_t *p)
{
    printf("  %s — %s%s\n", json_string_value(json_object_get(p, "name")),
           json_string_value(json_object_get(p, "summary")),
           json_is_true(json_object_get(p, "stateful")) ? " (keeps keyed state)" : "");
    const char *shorthand = json_string_value(json_object_get(p, "shorthand"));
    if (shorthand)
        printf("    shorthand: - %s: VALUE  =  {%s: VALUE}\n",
               json_string_value(json_object_get(p, "name")), shorthand);
    json_t *rows = json_array();
    flatten(json_object_get(p, "settings"), "", rows);
    static const char *const cols[] = {"key", "type", "default", "range"};
    static const char *const heads[] = {"KEY", "TYPE", "DEFAULT", "RANGE"};
    int width[4];
    for (int c = 0; c < 4; c++)
        width[c] = (int)strlen(heads[c]);
    size_t i;
    json_t *r;
    json_array_foreach(rows, i, r) for (int c = 0; c < 4; c++)
    {
        int w = (int)strlen(json_string_value(json_object_get(r, cols[c])));
        if (w > width[c]) width[c] = w;
    }
    if (json_array_size(rows)) {
        printf("    %-*s  %-*s  %-*s  %-*s  HELP\n", width[0], heads[0], width[1], heads[1],
               width[2], heads[2], width[3], heads[3]);
        json_array_foreach(rows, i, r)
        {
            printf("    ");
            for (int c = 0; c < 4; c++)
                printf("%-*s  ", width[c], json_string_value(json_object_get(r, cols[c])));
            printf("%s\n", json_string_value(json_object_get(r, "help")));
        }
    } else {
        printf("    (no settings)\n");
    }
    json_decref(rows);
}

static void print_table(const json_t *all)
{
    static const char *const groups[] = {"sources", "sinks", "processors"};
    static const char *const titles[] = {"SOURCE CONNECTORS", "SINKS",
                                         "PROCESSORS (pipeline steps)"};
    for (int g = 0; g < 3; g++) {
        printf("%s%s\n", g ? "\n" : "", titles[g]);
        size_t i;
        json_t *p;
        json_array_foreach(json_object_get(all, groups[g]), i, p)
        {
            if (i) printf("\n");
            print_plugin(p);
        }
    }
}

int dm_cmd_plugins(int argc, char **argv)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"docs", no_argument, NULL, 'd'},
                                             {NULL, 0, NULL, 0}};
    int format = DM_OUT_TABLE, docs = 0, ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "o:", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            format = dm_out_parse(optarg);
            if (format < 0) {
                dm_cli_errorf("plugins", "-o %s: expected table, json or yaml", optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'd': docs = 1; break;
        default: return DM_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        dm_cli_errorf("plugins", "unexpected argument '%s'", argv[optind]);
        return DM_EXIT_USAGE;
    }
    if (docs) {
        dm_buf_t md = {0};
        const char *text;
        dm_err_t rc = dm_plugins_markdown(&md);
        if (!rc) rc = dm_buf_cstr(&md, &text);
        if (!rc) fputs(text, stdout);
        dm_buf_free(&md);
        if (rc) dm_cli_errorf("plugins", "out of memory");
        return rc ? DM_EXIT_FAILED : DM_EXIT_OK;
    }
    json_t *all = dm_plugins_json();
    if (format == DM_OUT_JSON)
        dm_out_json(stdout, all);
    else if (format == DM_OUT_YAML)
        dm_out_yaml(stdout, all);
    else
        print_table(all);
    json_decref(all);
    return DM_EXIT_OK;
}
