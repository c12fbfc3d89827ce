/* core/fs.h — file-system helpers. */
#ifndef DM_CORE_FS_H
#define DM_CORE_FS_H

#include <stdbool.h>

#include "core/error.h"

/* Creates the directories of path like `mkdir -p`: all of them, or only its
 * parents when parents_only (path names a file). Existing ones are fine.
 * DM_ERR_IO names the directory that could not be made. */
dm_err_t dm_mkdirs(const char *path, bool parents_only, dm_error_t *err);

/* Makes the entries of directory path (files created, renamed or removed in it) durable.
 * Best effort: a directory that cannot be opened or synced is left as it is. */
void dm_fsync_dir(const char *path);

#endif
