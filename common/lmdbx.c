/* lmdbx: LMDB's return codes mapped to ours (see lmdbx.h). */
#include "lmdbx.h"

#include <errno.h>

#include <lmdb.h>

static const struct {
    int mdb;
    int pt;
} mdb_error_map[] = {
    {MDB_NOTFOUND, PT_ENOTFOUND},    {MDB_MAP_FULL, PT_EJOURNALFULL},
    {ENOSPC, PT_EJOURNALFULL},       {EDQUOT, PT_EJOURNALFULL},
    {MDB_CORRUPTED, PT_ECORRUPT},    {MDB_PAGE_NOTFOUND, PT_ECORRUPT},
    {MDB_INVALID, PT_ECORRUPT},      {MDB_VERSION_MISMATCH, PT_EVERSION},
    {MDB_BAD_VALSIZE, PT_ETOOLARGE}, {MDB_INCOMPATIBLE, PT_ECORRUPT},
};

/* Maps an LMDB return code to 0, a PT_E* code or -errno. */
int
lmdbx_code(int rc)
{
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < sizeof mdb_error_map / sizeof *mdb_error_map; i++)
        if (mdb_error_map[i].mdb == rc)
            return mdb_error_map[i].pt;
    return rc > 0 ? -rc : PT_EINTERNAL;
}

int
lmdbx_fail(pt_error_t *err, int rc, const char *path, const char *what)
{
    return pt_error_set(err, lmdbx_code(rc), path, "%s: %s", what, mdb_strerror(rc));
}
