/* journal_internal: what the journal's own files (broker/journal/) share: the LMDB
 * handles, the write transaction, the key layout constants and the jint_* functions,
 * each defined in the file named above its group. Not for other modules: they use
 * journal.h. */
#ifndef PT_JOURNAL_INTERNAL_H
#define PT_JOURNAL_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <sodium.h>

#include "bytes.h"
#include "journal.h"
#include "lmdbx.h"
#include "journal_record.h"

enum {
    JDB_RECORDS,
    JDB_META,
    JDB_DEDUP,
    JDB_MSGID,
    JDB_PARTNER,
    JDB_PERSON,
    JDB_CKPT,
    JDB_QUEUE, /* recipient "\0" be64 seq -> queue entry (undelivered or unacknowledged) */
    JDB_DEAD,  /* recipient "\0" be64 seq -> dead letter */
    /* be64 seq -> HMAC of the person's NIR: the person index's newest entries, appended
     * in the record's transaction and moved into by_person in sorted chunks later.
     * Last on purpose: open_dbs reads an older journal without it (read-only). */
    JDB_PERSON_NEW,
    JDB_COUNT
};

/* A named database: its LMDB name and flags (journal_int.c; opened by journal_open.c). */
typedef struct jint_db {
    const char *name;
    unsigned flags;
} jint_db_t;
extern const jint_db_t jint_dbs[JDB_COUNT];

#define JOURNAL_KEY_MAX 511 /* LMDB's default maximum key size */
#define SEQ_KEY_LEN 8
#define DEDUP_VAL_LEN (SEQ_KEY_LEN + PT_JOURNAL_HASH_LEN)

typedef struct journal_meta {
    bool present;
    uint32_t format;
    /* Format 2: the first seq written in format 2 (1 for a journal created in it; the
     * upgrade point of an older one). Records before it are format 1. */
    uint64_t format2_from;
    uint64_t last_seq;
    uint8_t head[PT_JOURNAL_HASH_LEN];
    /* Segment expiry: records up to anchor.seq were moved out; the live journal
     * verifies from this signed anchor (journal_segment.c). */
    bool has_anchor;
    journal_checkpoint_rec_t anchor;
} journal_meta_t;

struct journal_txn {
    journal_t *j;
    MDB_txn *txn;
    uint64_t last_seq; /* last sequence appended in this batch */
    uint8_t head[PT_JOURNAL_HASH_LEN];
    int poisoned;        /* error code that made the transaction unusable, or 0 */
    bool signed_pending; /* a checkpoint of this batch's head is in txn */
    journal_signed_head_t pending;
    bool anchor_pending; /* a segment expiry moved the anchor in txn */
    journal_checkpoint_rec_t anchor;
};

struct journal {
    MDB_env *env;
    int lock_fd; /* the writer's exclusive lock on <dir>/writer.lock, -1 when read-only */
    /* During journal_verify_ex only: its options' progress callback (or NULL). */
    const journal_verify_options_t *verifying;
    MDB_dbi dbi[JDB_COUNT];
    journal_txn_t wtxn; /* the one write transaction (the broker is single-threaded) */
    bool in_txn;
    bool read_only;
    bool grow_pending; /* a batch hit MDB_MAP_FULL: grow before the next one */
    uint64_t last_seq;
    uint8_t head[PT_JOURNAL_HASH_LEN];
    size_t map_max;
    size_t psize;
    bool have_hmac;
    bool have_person_new; /* false: a journal from before by_person_new, opened read-only */
    bool have_sk;
    uint8_t hmac_key[crypto_auth_hmacsha256_KEYBYTES];
    uint8_t sign_sk[crypto_sign_SECRETKEYBYTES];
    uint8_t prev_pks[PT_JOURNAL_PREV_KEYS][crypto_sign_PUBLICKEYBYTES]; /* retired keys */
    size_t n_prev_pks;
    uint64_t max_unsigned;             /* checked on a read-write open with sign_sk */
    uint64_t held_after;               /* the expiry's retry of held payloads goes on after it */
    unsigned write_format;             /* asked at open: PT_JOURNAL_FORMAT or 1 (tests) */
    unsigned rec_format;               /* format of the records appended now (meta's) */
    journal_signed_head_t signed_head; /* last committed checkpoint */
    bool have_anchor;                  /* committed: records up to anchor.seq moved out */
    bool is_archive;                   /* meta "archive": written by journal_archive */
    journal_checkpoint_rec_t anchor;
    char dir[PATH_MAX];
};

/* ---- journal_int.c ---- */

/* Marks t unusable after a failed write (growing the map next time when it was full). */
int jint_poison(journal_txn_t *t, int rc, pt_error_t *err);
int jint_read_begin(journal_t *j, MDB_txn **txn, pt_error_t *err);
int64_t jint_now_ms(void);
const char *jint_nz(const char *s);
const char *jint_db_name(int db);

/* A growing list of sequences; jint_seqlist_finish hands it to the caller (or frees
 * it when rc is not 0). */
typedef struct seqlist {
    uint64_t *v;
    size_t n, cap;
} seqlist_t;
int jint_seqlist_push(seqlist_t *l, uint64_t seq);
int jint_seqlist_finish(seqlist_t *l, int rc, uint64_t **seqs, size_t *n);

/* Puts the be64 seqkey under key in the DUPSORT index db. LMDB code. */
int jint_put_seq_dup(journal_txn_t *t, int db, const void *key, size_t klen, const uint8_t *seqkey);
/* Collects into l the be64 seq values stored under key in a DUPSORT index, in txn. */
int jint_collect_dups(journal_t *j, MDB_txn *txn, int db, const void *key, size_t klen,
                      seqlist_t *l, pt_error_t *err);
/* The person index key: HMAC-SHA256(hmac_key, nir). */
void jint_person_key(const journal_t *j, const char *nir,
                     uint8_t out[crypto_auth_hmacsha256_BYTES]);

/* ---- journal_meta.c ---- */

int jint_meta_read(journal_t *j, MDB_txn *txn, journal_meta_t *m, pt_error_t *err);
/* LMDB code. */
int jint_meta_write_head(journal_t *j, MDB_txn *txn, uint64_t last_seq, const uint8_t *head);
/* A new journal: format (j->write_format), creation time and the genesis head. LMDB code. */
int jint_meta_init(journal_t *j, MDB_txn *txn);
/* A format-1 journal opened read-write by this build: meta's format becomes 2 and the
 * upgrade point the next seq. LMDB code. */
int jint_meta_upgrade(journal_t *j, MDB_txn *txn, uint64_t last_seq);
/* The record format the seq of a journal with meta m must have. */
unsigned jint_format_of(const journal_meta_t *m, uint64_t seq);
/* A u64 (LE) meta value under name: PT_ENOTFOUND when absent. */
int jint_meta_get_u64(journal_t *j, MDB_txn *txn, const char *name, uint64_t *v, pt_error_t *err);
/* LMDB code. */
int jint_meta_put_u64(journal_t *j, MDB_txn *txn, const char *name, uint64_t v);
/* Stores the signed anchor. LMDB code. */
int jint_meta_put_anchor(journal_t *j, MDB_txn *txn, const journal_checkpoint_rec_t *a);
/* The first seq of the live journal: 1, or the anchor's seq + 1. */
uint64_t jint_first_seq(const journal_meta_t *m);

/* ---- journal_index.c ---- */

/* Writes the index entries of the record rec appended as seq in t. LMDB code. */
int jint_put_indexes(journal_txn_t *t, const journal_record_t *rec, uint64_t seq, int64_t time_ms,
                     const uint8_t *phash);

/* ---- journal_read.c ---- */

/* The raw value of record seq in txn (PT_ENOTFOUND when absent). */
int jint_get_record(journal_t *j, MDB_txn *txn, uint64_t seq, MDB_val *v, pt_error_t *err);
/* Decodes a record read under key seq and checks it carries that seq. */
int jint_decode_at(const MDB_val *v, uint64_t seq, journal_view_t *view, pt_error_t *err);
/* Decodes the record under seq in place, in txn: the view borrows from the map. */
int jint_view_in_place(journal_t *j, MDB_txn *txn, uint64_t seq, journal_view_t *view,
                       pt_error_t *err);

/* ---- journal_verify.c ---- */

/* Checks the chain of records first..end against meta (and its head when end is the
 * last); PT_ECORRUPT with *bad_seq the first bad record. */
int jint_verify_range(journal_t *j, MDB_txn *txn, uint64_t first, uint64_t end, uint64_t *bad_seq,
                      pt_error_t *err);
/* Decodes the checkpoint stored under k and checks it is stored under its own seq. */
int jint_decode_checkpoint(const MDB_val *k, const MDB_val *v, journal_checkpoint_rec_t *cp,
                           uint64_t *bad_seq, pt_error_t *err);
/* Checks one decoded checkpoint: signature (pk not NULL) and hash against its record. */
int jint_check_checkpoint(journal_t *j, MDB_txn *txn, const journal_checkpoint_rec_t *cp,
                          const uint8_t *pk, uint64_t *bad_seq, pt_error_t *err);

/* ---- journal_checkpoint.c ---- */

/* The batch would leave more than PT_JOURNAL_UNSIGNED_MAX records unsigned. */
bool jint_must_sign(const journal_txn_t *t);
/* Signs t's head into t (kept in t->pending until the commit). LMDB code. */
int jint_put_checkpoint(journal_txn_t *t);
/* After a successful commit: the batch's checkpoint is now the signed head. */
void jint_signed_head_commit(journal_txn_t *t);
/* At open: the last checkpoint into j->signed_head; with the signing key, the checks
 * of the signed tail. */
int jint_load_signed_head(journal_t *j, MDB_txn *txn, pt_error_t *err);
int jint_check_signed_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err);

/* ---- journal_retention.c ---- */

/* Replaces record seq's value by data (a stripped record): deleted then put, so that
 * LMDB merges the pages the removed payload leaves sparse. LMDB code. */
int jint_record_replace(journal_txn_t *t, uint64_t seq, const uint8_t *data, size_t len);

/* ---- journal_state.c ---- */

/* Rebuilds the queue, dead-letter and index databases from the records of txn and
 * compares them with the stored ones. 0, or PT_ECORRUPT with err naming the first
 * mismatch and *bad_seq its record (0 for an entry without one). */
int jint_state_check(journal_t *j, MDB_txn *txn, uint64_t *bad_seq, pt_error_t *err);

/* ---- journal_queue.c ---- */

/* The first recipient of record v (a replay goes only to one of them) for which v is
 * still in the queue (*dead false) or in the dead letters (*dead true), or NULL.
 * Borrowed from v. */
const char *jint_pending(journal_txn_t *t, const journal_view_t *v, bool *dead);

/* Enqueues seq for every recipient (NULL-terminated list, may be NULL). LMDB code. */
int jint_queue_enqueue(journal_txn_t *t, const char *const *recipients, uint64_t seq,
                       int64_t time_ms);

#endif
