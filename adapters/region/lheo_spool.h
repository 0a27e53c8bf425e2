/* lheo_spool: the LHEO codec's fingerprint store (lheo_diff.h) backed by the adapter's
 * spool, in its "lheo" key-value namespace: the fingerprints are written into the
 * spool's open turn, so they commit in the same transaction as the offers a catalogue
 * publishes (a crash or a refused file changes neither). Used by the Région's daemon and
 * the codec benchmark. Owns nothing; the spool is borrowed. */
#ifndef PT_LHEO_SPOOL_H
#define PT_LHEO_SPOOL_H

#include "lheo_diff.h"
#include "spool.h"

#define PT_LHEO_SPOOL_NS "lheo"

/* A store over spool (borrowed for the store's life). */
lheo_store_t lheo_spool_store(spool_t *spool);

#endif
