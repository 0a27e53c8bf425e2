/* lheo_spool: the LHEO codec's fingerprint store (lheo_diff.h) backed by the adapter's
 * spool, in its "lheo" key-value namespace. The store is written through: each change
 * goes into the spool's turn at once, under the stage of the file (spool.h), so the
 * fingerprints stand with the offers a catalogue publishes when its last chunk commits,
 * and a crash or a refused file rolls both back. Used by the Région's daemon and the
 * codec benchmark. Owns nothing; the spool is borrowed. */
#ifndef PT_LHEO_SPOOL_H
#define PT_LHEO_SPOOL_H

#include "lheo_diff.h"
#include "spool.h"

#define PT_LHEO_SPOOL_NS "lheo"

/* A store over spool (borrowed for the store's life). */
lheo_store_t lheo_spool_store(spool_t *spool);

#endif
