/* lmdbx: what every LMDB user of ptibus shares (the journal, the adapters' spool): one
 * map from LMDB's return codes to ours. Owns nothing. */
#ifndef PT_LMDBX_H
#define PT_LMDBX_H

#include "err.h"

/* Maps an LMDB return code to 0, a PT_E* code (MDB_NOTFOUND: PT_ENOTFOUND; a full map or
 * disk: PT_EJOURNALFULL; corruption: PT_ECORRUPT; ...) or -errno. */
int lmdbx_code(int rc);

/* Fills err with "what: LMDB's message" at path and returns lmdbx_code(rc). */
int lmdbx_fail(pt_error_t *err, int rc, const char *path, const char *what);

#endif
