/* journal_space: how much of the journal's file is in use, free for reuse, and
 * reclaimable by a compacted copy (journal_copy writes that copy). LMDB reuses the
 * pages that expiry, erasure and segment expiry free, but never shrinks its file: only
 * a compacted copy does (mdb_copy -c). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "journal_internal.h"

/* Pages listed in the free database (LMDB's dbi 0: txn id -> page list whose first
 * word is its length), as `mdb_stat -f` counts them. */
static size_t
free_pages(MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    if (mdb_cursor_open(txn, 0, &cur) != 0)
        return 0;
    for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if (v.mv_size >= sizeof(size_t))
            n += *(const size_t *)v.mv_data;
    mdb_cursor_close(cur);
    return n;
}

int
journal_space(journal_t *j, journal_space_t *out, pt_error_t *err)
{
    MDB_txn *txn;
    MDB_envinfo info;
    char path[PATH_MAX + 16];
    struct stat st;
    memset(out, 0, sizeof *out);
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    mdb_env_info(j->env, &info);
    out->used_bytes = (info.me_last_pgno + 1) * j->psize;
    out->free_bytes = free_pages(txn) * j->psize;
    mdb_txn_abort(txn);
    snprintf(path, sizeof path, "%s/data.mdb", j->dir);
    out->file_bytes = stat(path, &st) == 0 ? (size_t)st.st_size : out->used_bytes;
    size_t live = out->used_bytes > out->free_bytes ? out->used_bytes - out->free_bytes : 0;
    out->reclaimable_bytes = out->file_bytes > live ? out->file_bytes - live : 0;
    return 0;
}
