/* cli/main.c — dispatch of the datamesh command line. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "datamesh %s — data movement and processing platform\n\n"
            "usage: datamesh [--help] [--version] [--token TOKEN] [--cacert FILE] COMMAND [ARGS]\n"
            "\n"
            "--token (else $DATAMESH_TOKEN) is the API token sent to the controller;\n"
            "--cacert (else $DATAMESH_CACERT) a CA certificate to trust for https://.\n"
            "\ncommands:\n",
            DM_VERSION);
    for (int i = 0; i < dm_cli_n_commands; i++)
        fprintf(out, "  %-10s %s%s\n", dm_cli_commands[i].name, dm_cli_commands[i].summary,
                dm_cli_commands[i].run ? "" : " (not implemented yet)");
    fprintf(out, "\nRun 'datamesh COMMAND --help' for a command's options.\n");
}

bool dm_cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return true;
    }
    return false;
}

void dm_cli_errorf(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "datamesh %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Takes the options every client command shares (--token, --cacert, as
 * "--opt VALUE" or "--opt=VALUE", anywhere before a "--") out of argv. Returns
 * false after printing an error when one lacks its value. */
static bool take_global_options(int *argc, char **argv)
{
    static const char *const names[] = {"--token", "--cacert"};
    const char *values[2] = {getenv("DATAMESH_TOKEN"), getenv("DATAMESH_CACERT")};
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--")) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        int which = -1;
        const char *value = NULL;
        for (int k = 0; k < 2 && which < 0; k++) {
            size_t n = strlen(names[k]);
            if (!strcmp(argv[i], names[k])) {
                which = k;
                if (i + 1 >= *argc) {
                    fprintf(stderr, "datamesh: %s needs a value\n", names[k]);
                    return false;
                }
                value = argv[++i];
            } else if (!strncmp(argv[i], names[k], n) && argv[i][n] == '=') {
                which = k;
                value = argv[i] + n + 1;
            }
        }
        if (which >= 0)
            values[which] = value;
        else
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    *argc = out;
    dm_client_set_token(values[0]);
    dm_client_set_cacert(values[1]);
    return true;
}

int dm_cli_main(int argc, char **argv)
{
    if (!take_global_options(&argc, argv)) return DM_EXIT_USAGE;
    if (argc < 2) {
        print_help(stderr);
        return DM_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_help(stdout);
        return DM_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("datamesh %s\n", DM_VERSION);
        return DM_EXIT_OK;
    }
    for (int i = 0; i < dm_cli_n_commands; i++) {
        const dm_cli_command_t *c = &dm_cli_commands[i];
        if (strcmp(c->name, name) != 0) continue;
        if (dm_cli_wants_help(argc - 1, argv + 1)) {
            fputs(c->usage, stdout);
            if (!c->run) printf("\n(not implemented yet)\n");
            return DM_EXIT_OK;
        }
        if (!c->run) {
            dm_cli_errorf(name, "not implemented yet");
            return DM_EXIT_USAGE;
        }
        return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "datamesh: unknown command '%s'\n\n", name);
    print_help(stderr);
    return DM_EXIT_USAGE;
}
