/* core/fs.c — file-system helpers. */
#include "core/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

dm_err_t dm_mkdirs(const char *path, bool parents_only, dm_error_t *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return dm_error_set(err, DM_ERR_INVALID, "%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        bool last = *p == '\0';
        if (*p != '/' && !last) continue;
        if (last && parents_only) break;
        *p = '\0';
        if (mkdir(buf, 0755) && errno != EEXIST)
            return dm_error_set(err, DM_ERR_IO, "cannot create directory %s: %s", buf,
                                strerror(errno));
        if (last) break;
        *p = '/';
    }
    return DM_OK;
}

void dm_fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}
