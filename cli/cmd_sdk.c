/* cli/cmd_sdk.c — `datamesh sdk new NAME DIR` scaffolds a processor project
 * (a C file that passes records through and shows where to change them, a
 * Makefile building DIR/NAME.so against the installed header, a README and a
 * test that runs the library through a small host); `datamesh sdk include`
 * prints the directory holding datamesh/processor.h. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"

#ifndef DM_SOURCE_INCLUDE
#define DM_SOURCE_INCLUDE ""
#endif

static bool has_header(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/datamesh/processor.h", dir);
    return access(path, R_OK) == 0;
}

/* $DATAMESH_SDK_INCLUDE, then PREFIX/include next to this binary's
 * PREFIX/bin (an installed datamesh), then the source tree it was built from. */
static bool include_dir(char *out, size_t cap)
{
    const char *env = getenv("DATAMESH_SDK_INCLUDE");
    if (env && *env && has_header(env)) return snprintf(out, cap, "%s", env), true;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            char cand[PATH_MAX + 16];
            snprintf(cand, sizeof(cand), "%s/../include", exe);
            char real[PATH_MAX];
            if (realpath(cand, real) && has_header(real))
                return snprintf(out, cap, "%s", real), true;
        }
    }
    if (*DM_SOURCE_INCLUDE && has_header(DM_SOURCE_INCLUDE))
        return snprintf(out, cap, "%s", DM_SOURCE_INCLUDE), true;
    return false;
}

static const char *const c_template =
    "/* @NAME@.c — a datamesh processor (include/datamesh/processor.h).\n"
    " *\n"
    " * As scaffolded it passes every record through unchanged. Change process()\n"
    " * to change records; open() is where settings are read and checked (a\n"
    " * refusal there refuses `datamesh apply` with your message). */\n"
    "#include <datamesh/processor.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "\n"
    "typedef struct instance {\n"
    "    const dm_sdk_host_t *host;\n"
    "    dm_sdk_ctx_t *ctx;\n"
    "} instance_t;\n"
    "\n"
    "static int @ID@_open(const dm_processor_open_args_t *args, dm_processor_opened_t *out,\n"
    "                    char *err, size_t errlen)\n"
    "{\n"
    "    /* args->config_json holds the settings (a JSON object) and\n"
    "     * args->input_schema_json the input record's Avro schema. Find the\n"
    "     * fields you use once: args->host->field_index(args->ctx, 0, \"name\"). */\n"
    "    instance_t *in = calloc(1, sizeof(*in));\n"
    "    if (!in) {\n"
    "        snprintf(err, errlen, \"out of memory\");\n"
    "        return -1;\n"
    "    }\n"
    "    in->host = args->host;\n"
    "    in->ctx = args->ctx;\n"
    "    out->self = in;\n"
    "    /* out->output_schema_json: a new record schema when you change the\n"
    "     * fields (NULL: the input's). out->reads: the fields you read. */\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static int @ID@_process(void *self, dm_sdk_batch_t *batch, char *err, size_t errlen)\n"
    "{\n"
    "    instance_t *in = self;\n"
    "    const dm_sdk_host_t *h = in->host;\n"
    "    uint32_t n = h->count(batch);\n"
    "    for (uint32_t i = 0; i < n; i++) {\n"
    "        /* const dm_value_t *record = h->value(batch, i);  its fields: record->u.v[k]\n"
    "         * Change records here: h->emit_value(batch, i, new_record) with a\n"
    "         * record from h->new_record(batch); drop one by emitting nothing;\n"
    "         * h->dead(batch, i, \"why\") sends it to the dead letters. */\n"
    "        if (h->emit(batch, i)) {\n"
    "            snprintf(err, errlen, \"out of memory\");\n"
    "            return -1;\n"
    "        }\n"
    "    }\n"
    "    return 0;\n"
    "}\n"
    "\n"
    "static void @ID@_close(void *self)\n"
    "{\n"
    "    free(self);\n"
    "}\n"
    "\n"
    "DM_PROCESSOR_EXPORT const dm_processor_t dm_processor = {\n"
    "    .abi_version = DM_PROCESSOR_ABI_VERSION,\n"
    "    .size = sizeof(dm_processor_t),\n"
    "    .name = \"@NAME@\",\n"
    "    .summary = \"passes records through unchanged\",\n"
    "    .open = @ID@_open,\n"
    "    .process = @ID@_process,\n"
    "    .close = @ID@_close,\n"
    "};\n";

static const char *const makefile_template =
    "# Builds @NAME@.so against the datamesh SDK header; `make test` runs it\n"
    "# through test_@ID@.c's small host.\n"
    "DATAMESH ?= @BIN@\n"
    "SDK_INCLUDE ?= $(shell $(DATAMESH) sdk include)\n"
    "CFLAGS ?= -O2 -g\n"
    "override CFLAGS += -Wall -Wextra -fPIC -fvisibility=hidden -I$(SDK_INCLUDE)\n"
    "\n"
    "@NAME@.so: @NAME@.c\n"
    "\t$(CC) $(CFLAGS) -shared -o $@ $< $(LDFLAGS)\n"
    "\n"
    "test_@ID@: test_@ID@.c\n"
    "\t$(CC) $(CFLAGS) -Wno-unused-parameter -o $@ $< -ldl\n"
    "\n"
    "test: @NAME@.so test_@ID@\n"
    "\t./test_@ID@ ./@NAME@.so\n"
    "\n"
    "clean:\n"
    "\trm -f @NAME@.so test_@ID@\n"
    "\n"
    ".PHONY: test clean\n";

static const char *const test_template =
    "/* test_@ID@.c — loads @NAME@.so as datamesh does and runs a batch of three\n"
    " * records through it with a small host: what the scaffold does (pass\n"
    " * through) is what it checks; change the checks with the processor. */\n"
    "#include <datamesh/processor.h>\n"
    "#include <dlfcn.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "\n"
    "struct dm_sdk_batch {\n"
    "    dm_value_t *in;\n"
    "    uint32_t n;\n"
    "    const dm_value_t *out[16];\n"
    "    uint32_t n_out, n_dead;\n"
    "};\n"
    "\n"
    "static void t_log(dm_sdk_ctx_t *c, int level, const char *m) { fprintf(stderr, \"log: "
    "%s\\n\", m); }\n"
    "static uint32_t t_count(const dm_sdk_batch_t *b) { return b->n; }\n"
    "static const dm_value_t *t_value(const dm_sdk_batch_t *b, uint32_t i) { return i < b->n ? "
    "&b->in[i] : NULL; }\n"
    "static int t_emit(dm_sdk_batch_t *b, uint32_t i)\n"
    "{\n"
    "    if (i >= b->n || b->n_out == 16) return -1;\n"
    "    b->out[b->n_out++] = &b->in[i];\n"
    "    return 0;\n"
    "}\n"
    "static int t_emit_value(dm_sdk_batch_t *b, uint32_t i, const dm_value_t *r)\n"
    "{\n"
    "    if (b->n_out == 16) return -1;\n"
    "    b->out[b->n_out++] = r;\n"
    "    return 0;\n"
    "}\n"
    "static int t_dead(dm_sdk_batch_t *b, uint32_t i, const char *why) { b->n_dead++; return 0; }\n"
    "static void *t_alloc(dm_sdk_batch_t *b, size_t n) { return calloc(1, n); } /* leaks: a test "
    "*/\n"
    "static int t_field(dm_sdk_ctx_t *c, int which, const char *name) { return strcmp(name, "
    "\"id\") ? -1 : 0; }\n"
    "\n"
    "int main(int argc, char **argv)\n"
    "{\n"
    "    void *lib = dlopen(argc > 1 ? argv[1] : \"./@NAME@.so\", RTLD_NOW);\n"
    "    const dm_processor_t *p = lib ? dlsym(lib, \"dm_processor\") : NULL;\n"
    "    if (!p || p->abi_version != DM_PROCESSOR_ABI_VERSION) {\n"
    "        fprintf(stderr, \"FAIL: not a processor of ABI %d: %s\\n\", DM_PROCESSOR_ABI_VERSION, "
    "dlerror());\n"
    "        return 1;\n"
    "    }\n"
    "    dm_sdk_host_t host = {.abi_version = DM_PROCESSOR_ABI_VERSION, .size = sizeof(host),\n"
    "                          .log = t_log, .count = t_count, .value = t_value, .emit = t_emit,\n"
    "                          .emit_value = t_emit_value, .dead = t_dead, .alloc = t_alloc,\n"
    "                          .field_index = t_field};\n"
    "    dm_processor_open_args_t args = {.size = sizeof(args), .name = \"@NAME@\", .config_json = "
    "\"{}\",\n"
    "        .input_schema_json = "
    "\"{\\\"type\\\":\\\"record\\\",\\\"name\\\":\\\"R\\\",\\\"fields\\\":[{\\\"name\\\":"
    "\\\"id\\\",\\\"type\\\":\\\"long\\\"}]}\",\n"
    "        .host = &host};\n"
    "    dm_processor_opened_t o = {0};\n"
    "    char err[256] = \"\";\n"
    "    if (p->open(&args, &o, err, sizeof(err))) {\n"
    "        fprintf(stderr, \"FAIL: open: %s\\n\", err);\n"
    "        return 1;\n"
    "    }\n"
    "    dm_value_t fields[3], recs[3];\n"
    "    for (int i = 0; i < 3; i++) {\n"
    "        fields[i] = (dm_value_t){.type = DM_VALUE_LONG, .u.l = 10 + i};\n"
    "        recs[i] = (dm_value_t){.type = DM_VALUE_RECORD, .len = 1, .u.v = &fields[i]};\n"
    "    }\n"
    "    dm_sdk_batch_t b = {.in = recs, .n = 3};\n"
    "    if (p->process(o.self, &b, err, sizeof(err))) {\n"
    "        fprintf(stderr, \"FAIL: process: %s\\n\", err);\n"
    "        return 1;\n"
    "    }\n"
    "    int bad = b.n_out != 3 || b.n_dead != 0;\n"
    "    for (uint32_t i = 0; !bad && i < b.n_out; i++)\n"
    "        bad = b.out[i]->u.v[0].u.l != 10 + (int64_t)i;\n"
    "    if (p->close) p->close(o.self);\n"
    "    printf(\"%s: %u records in, %u out, %u dead letters\\n\", bad ? \"FAIL\" : \"ok\", b.n, "
    "b.n_out, b.n_dead);\n"
    "    return bad;\n"
    "}\n";

static const char *const readme_template =
    "# @NAME@ — a datamesh processor\n"
    "\n"
    "    make            # builds @NAME@.so against `datamesh sdk include`\n"
    "    make test       # runs it through test_@ID@.c\n"
    "\n"
    "Register it and use it in a pipeline (the library path must be absolute and\n"
    "readable by the controller and its workers):\n"
    "\n"
    "```yaml\n"
    "kind: Processor\n"
    "metadata: {name: @NAME@, owner: my-team}\n"
    "spec: {library: @DIR@/@NAME@.so, config: {}}\n"
    "---\n"
    "kind: Pipeline\n"
    "metadata: {name: with-@NAME@, owner: my-team}\n"
    "spec:\n"
    "  from: [SOURCE]\n"
    "  steps:\n"
    "    - processor: {name: @NAME@, config: {}}\n"
    "  to: [{source: SOURCE-@NAME@}]\n"
    "```\n"
    "\n"
    "The calls, their threads and who owns what: the comments of\n"
    "`$(datamesh sdk include)/datamesh/processor.h`, and docs/sdk.md in datamesh.\n";

/* Writes template to dir/file with @NAME@, @ID@, @BIN@ and @DIR@ replaced. */
static int write_file(const char *dir, const char *file, const char *template, const char *name,
                      const char *id, const char *bin)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    FILE *f = fopen(path, "wx");
    if (!f) {
        fprintf(stderr, "datamesh sdk new: %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (const char *p = template; *p;) {
        const char *sub = NULL;
        size_t skip = 0;
        if (!strncmp(p, "@NAME@", 6)) sub = name, skip = 6;
        if (!strncmp(p, "@ID@", 4)) sub = id, skip = 4;
        if (!strncmp(p, "@BIN@", 5)) sub = bin, skip = 5;
        if (!strncmp(p, "@DIR@", 5)) sub = dir, skip = 5;
        if (sub) {
            fputs(sub, f);
            p += skip;
        } else {
            fputc(*p++, f);
        }
    }
    if (fclose(f)) {
        fprintf(stderr, "datamesh sdk new: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int sdk_new(const char *name, const char *dir_arg)
{
    size_t n = strlen(name);
    bool ok = n > 0 && n <= 63 &&
              ((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9'));
    char id[64];
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
        id[i] = c == '-' ? '_' : c;
    }
    if (!ok) {
        fprintf(stderr,
                "datamesh sdk new: '%s' is not a processor name: 1-63 of a-z 0-9 - _, starting "
                "with a letter or digit\n",
                name);
        return 2;
    }
    id[n] = '\0';
    if (id[0] >= '0' && id[0] <= '9') {
        memmove(id + 1, id, n + 1);
        id[0] = 'p';
    }
    if (mkdir(dir_arg, 0755) && errno != EEXIST) {
        fprintf(stderr, "datamesh sdk new: %s: %s\n", dir_arg, strerror(errno));
        return 1;
    }
    char dir[PATH_MAX], bin[PATH_MAX];
    if (!realpath(dir_arg, dir)) {
        fprintf(stderr, "datamesh sdk new: %s: %s\n", dir_arg, strerror(errno));
        return 1;
    }
    ssize_t bl = readlink("/proc/self/exe", bin, sizeof(bin) - 1);
    snprintf(bin + (bl > 0 ? bl : 0), sizeof(bin) - (size_t)(bl > 0 ? bl : 0), "%s",
             bl > 0 ? "" : "datamesh");
    char cfile[128], tfile[128];
    snprintf(cfile, sizeof(cfile), "%s.c", name);
    snprintf(tfile, sizeof(tfile), "test_%s.c", id);
    if (write_file(dir, cfile, c_template, name, id, bin) ||
        write_file(dir, "Makefile", makefile_template, name, id, bin) ||
        write_file(dir, tfile, test_template, name, id, bin) ||
        write_file(dir, "README.md", readme_template, name, id, bin))
        return 1;
    printf("created %s/{%s, Makefile, %s, README.md}\n", dir, cfile, tfile);
    printf("build:  make -C %s   (then: make -C %s test)\n", dir, dir);
    return 0;
}

int dm_cmd_sdk(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "include")) {
        char dir[PATH_MAX];
        if (!include_dir(dir, sizeof(dir))) {
            fprintf(stderr, "datamesh sdk include: datamesh/processor.h is not installed next to "
                            "this binary (set DATAMESH_SDK_INCLUDE)\n");
            return 1;
        }
        printf("%s\n", dir);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "new")) return sdk_new(argv[2], argv[3]);
    fprintf(stderr, "usage: datamesh sdk new NAME DIR | datamesh sdk include\n");
    return 2;
}
