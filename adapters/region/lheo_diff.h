/* lheo_diff: the snapshot diff of the Région's LHEO catalogue. The Région sends full
 * snapshots; the adapter keeps a fingerprint of every session it has published (in a
 * store the runtime backs with its LMDB spool) and publishes only what changed: UPSERT
 * for a new or changed session, WITHDRAW for a session absent from the new snapshot,
 * nothing for an unchanged one. A diff stages its changes and writes them to the store
 * only on lheo_diff_commit(), which the decoder calls once the whole file was read: a
 * truncated or malformed file changes nothing. Pure: no I/O but through the store.
 * The seen set holds a 16-byte keyed digest per session, never the keys. Owns its seen
 * set and staged changes; borrows the store. */
#ifndef PT_LHEO_DIFF_H
#define PT_LHEO_DIFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ptibus/v1/training.pb-c.h"

#define LHEO_FP_LEN 32 /* BLAKE2b-256 of the packed TrainingOffer */

/* A fingerprint store keyed by session key (the TrainingOffer's offer_id). get returns 0
 * (fp filled) or PT_ENOTFOUND; put and del return 0 or a negative code (del of an absent
 * key is 0); list calls fn for every key (in any order) and stops with fn's non-zero
 * return. Keys are NUL-terminated, at most PT_OFFER_ID_MAX bytes. */
typedef struct lheo_store_ops {
    int (*get)(void *impl, const char *key, uint8_t fp[LHEO_FP_LEN]);
    int (*put)(void *impl, const char *key, const uint8_t fp[LHEO_FP_LEN]);
    int (*del)(void *impl, const char *key);
    int (*list)(void *impl, int (*fn)(void *ctx, const char *key), void *ctx);
    /* The store undoes the writes of a file that fails (the spool's staging of a file):
     * the diff then writes each change at once instead of holding them in memory until
     * lheo_diff_commit(), so that its memory does not grow with the changes. */
    bool write_through;
} lheo_store_ops_t;

typedef struct lheo_store {
    const lheo_store_ops_t *ops;
    void *impl;
} lheo_store_t;

typedef struct lheo_diff lheo_diff_t;

/* A diff against store (borrowed until lheo_diff_destroy). Caller owns *out; free with
 * lheo_diff_destroy(). Returns 0 or -ENOMEM. */
int lheo_diff_new(lheo_diff_t **out, lheo_store_t *store);
void lheo_diff_destroy(lheo_diff_t **d);

/* Marks the offer's session as present in the snapshot and tells whether it must be
 * published: *publish is true when the store has no fingerprint for offer_id or a
 * different one (the new one is staged). The fingerprint ignores `operation`. Returns 0,
 * PT_EINVALID (err set) when offer_id was already seen in this snapshot, or the store's
 * error. */
int lheo_diff_offer(lheo_diff_t *d, const Ptibus__V1__TrainingOffer *offer, bool *publish,
                    pt_error_t *err);

/* Marks key as present without publishing anything: a session of the snapshot whose
 * record is bad is never withdrawn because of that (its last good version stays). */
int lheo_diff_keep(lheo_diff_t *d, const char *key);

/* Calls fn for every stored key absent from the snapshot (sorted), staging its deletion;
 * stops with fn's non-zero return. Call once, after the last lheo_diff_offer(). */
int lheo_diff_withdrawals(lheo_diff_t *d, int (*fn)(void *ctx, const char *key), void *ctx);

/* Writes the staged fingerprints and deletions to the store. Returns 0 or the store's
 * error. */
int lheo_diff_commit(lheo_diff_t *d);

/* Counts of the last snapshot, for reports. */
typedef struct lheo_diff_stats {
    size_t seen, published, unchanged, withdrawn;
} lheo_diff_stats_t;
lheo_diff_stats_t lheo_diff_stats(const lheo_diff_t *d);

/* A simple in-memory store (for tests and tools): caller owns *out; free with
 * lheo_memstore_destroy(). */
int lheo_memstore_new(lheo_store_t **out);
void lheo_memstore_destroy(lheo_store_t **s);
size_t lheo_memstore_count(const lheo_store_t *s);

#endif
