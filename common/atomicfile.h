/* atomicfile: files that are either wholly the old version or wholly the new one, even
 * across a power cut (STYLE.md: write x.tmp, fsync, rename, fsync the folder). Used for
 * key files now, and the adapters' outbox and reports. Owns nothing. */
#ifndef PT_ATOMICFILE_H
#define PT_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Writes len bytes to path with mode (exactly: the umask does not change it) through
 * path.tmp: a leftover tmp is removed first and the new one created with O_EXCL and
 * O_NOFOLLOW (a link planted there is never written through), fsynced, renamed over
 * path, and the folder fsynced. Returns 0 or -errno, err saying what failed. */
int atomicfile_write(const char *path, const void *data, size_t len, mode_t mode, pt_error_t *err);

/* The same; with sync_dir false the folder is not fsynced: the rename is durable only
 * once the caller fsyncs the folder (atomicfile_sync_dir), as a batch of files whose
 * folder is synced once. The file's bytes are durable before its name appears, always. */
int atomicfile_write_ex(const char *path, const void *data, size_t len, mode_t mode, bool sync_dir,
                        pt_error_t *err);

/* fsyncs the folder that holds path (after a rename or an unlink in it). */
int atomicfile_sync_dir(const char *path);

#endif
