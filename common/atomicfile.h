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

/* ---- batches: many files made durable together ----
 * Each file is written to its tmp at once (same safety as atomicfile_write) and its
 * write-back started; the commit then waits for all of them (fdatasync each), renames them
 * into place and fsyncs each folder once: a file's bytes are durable before its name
 * appears, and after the commit every name is durable. A batch of n files costs one wait
 * for the disk instead of n. A file is invisible under its name until the commit; a crash
 * before it leaves only tmp files (the caller's open removes them). The batch keeps no copy of
 * the bytes (the page cache has them). Not thread-safe. */
typedef struct atomicfile_batch atomicfile_batch_t;

/* Caller owns *out; free with atomicfile_batch_free (which discards what is staged). */
int atomicfile_batch_new(atomicfile_batch_t **out);
void atomicfile_batch_free(atomicfile_batch_t **b);

/* Stages len bytes for path with mode; a path staged again replaces its earlier bytes.
 * Returns 0 or -errno (nothing left behind). Each
 * staged file holds a descriptor until the commit: keep batches to a few hundred files. */
int atomicfile_batch_add(atomicfile_batch_t *b, const char *path, const void *data, size_t len,
                         mode_t mode, pt_error_t *err);

/* The tmp holding path's staged bytes (the latest one when staged twice), owned by the
 * batch until the commit or discard; NULL when path is not staged. */
const char *atomicfile_batch_staged(const atomicfile_batch_t *b, const char *path);

size_t atomicfile_batch_count(const atomicfile_batch_t *b);

/* Makes every staged file durable under its name. Returns 0 or -errno, err naming the
 * file: then the files not yet renamed are removed (those renamed have durable bytes, their
 * folder may not be synced). The batch is empty afterwards either way. */
int atomicfile_batch_commit(atomicfile_batch_t *b, pt_error_t *err);

/* The commit in two steps, for a batch synced on another thread (adapters/core/flusher):
 * atomicfile_batch_sync does the system calls only (fdatasync, rename, folder fsync) and
 * changes nothing a reader of the batch's paths sees; atomicfile_batch_clear then empties
 * it, removing the tmp files that were not renamed. */
int atomicfile_batch_sync(atomicfile_batch_t *b, pt_error_t *err);
void atomicfile_batch_clear(atomicfile_batch_t *b);

/* Removes every staged tmp; the batch is empty afterwards. Accepts NULL. */
void atomicfile_batch_discard(atomicfile_batch_t *b);

#endif
