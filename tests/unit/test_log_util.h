/* tests/unit/test_log_util.h — helpers shared by the log and transport tests. */
#ifndef DM_TESTS_TEST_LOG_UTIL_H
#define DM_TESTS_TEST_LOG_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* Makes a fresh temporary directory; returns a malloc'ed path. */
static inline char *tu_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof(tmpl), "/tmp/dm-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

/* rm -rf path (no symlink games: test directories only). */
static inline void tu_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char sub[4096];
            snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                tu_rmrf(sub);
            else
                unlink(sub);
        }
        closedir(d);
    }
    rmdir(path);
}

/* Path of the only .log/.idx file (by suffix) of partition dir <data>/topics/<topic>.*-<p>;
 * the first one in name order when several. Returns 0 when found. */
static inline int tu_segment_file(const char *data, const char *topic, int part, const char *ext,
                                  int nth, char *out, size_t cap)
{
    char tdir[4096];
    snprintf(tdir, sizeof(tdir), "%s/topics", data);
    DIR *d = opendir(tdir);
    if (!d) return -1;
    struct dirent *de;
    char pdir[4096] = "";
    size_t tl = strlen(topic);
    char suffix[32];
    snprintf(suffix, sizeof(suffix), "-%d", part);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (!strncmp(de->d_name, topic, tl) && de->d_name[tl] == '.' && l > strlen(suffix) &&
            !strcmp(de->d_name + l - strlen(suffix), suffix))
            snprintf(pdir, sizeof(pdir), "%s/%s", tdir, de->d_name);
    }
    closedir(d);
    if (!*pdir) return -1;
    struct dirent **names;
    int n = scandir(pdir, &names, NULL, alphasort);
    int found = -1, k = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]->d_name);
        if (found < 0 && l > strlen(ext) + 1 && !strcmp(names[i]->d_name + l - strlen(ext), ext) &&
            names[i]->d_name[l - strlen(ext) - 1] == '.') {
            if (k++ == nth) {
                snprintf(out, cap, "%s/%s", pdir, names[i]->d_name);
                found = 0;
            }
        }
        free(names[i]);
    }
    free(names);
    return found;
}

/* Counts log lines containing needle, captured through the log sink. */
static char tu_logbuf[65536];
static size_t tu_loglen;
static inline void tu_log_sink(void *ctx, dm_log_level_t level, const char *line, size_t len)
{
    (void)ctx;
    (void)level;
    if (tu_loglen + len + 2 < sizeof(tu_logbuf)) {
        memcpy(tu_logbuf + tu_loglen, line, len);
        tu_loglen += len;
        tu_logbuf[tu_loglen++] = '\n';
        tu_logbuf[tu_loglen] = 0;
    }
}
static inline void tu_capture_logs(void)
{
    tu_loglen = 0;
    tu_logbuf[0] = 0;
    dm_log_set_sink(tu_log_sink, NULL);
}

#endif
