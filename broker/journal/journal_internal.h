/* journal_internal: what the journal's own files share (journal.c, journal_queue.c):
 * the LMDB handles, the write transaction and small helpers. Not for other modules. */
#ifndef PT_JOURNAL_INTERNAL_H
#define PT_JOURNAL_INTERNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal.h"

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

struct journal_txn {
    journal_t *j;
    MDB_txn *txn;
    uint64_t last_seq; /* last sequence appended in this batch */
    uint8_t head[PT_JOURNAL_HASH_LEN];
    int poisoned;        /* error code that made the transaction unusable, or 0 */
    bool signed_pending; /* a checkpoint of this batch's head is in txn */
    journal_signed_head_t pending;
};

struct journal {
    MDB_env *env;
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
    uint64_t max_unsigned;             /* checked on a read-write open with sign_sk */
    journal_signed_head_t signed_head; /* last committed checkpoint */
    char dir[PATH_MAX];
};

/* Maps an LMDB return code to 0, a PT_E* code or -errno. */
int jint_lmdb_code(int rc);
/* Fills err with "path: what: LMDB's message" and returns the mapped code. */
int jint_lmdb_fail(pt_error_t *err, int rc, const char *path, const char *what);
/* Marks t unusable after a failed write (growing the map next time when it was full). */
int jint_poison(journal_txn_t *t, int rc, pt_error_t *err);
int jint_read_begin(journal_t *j, MDB_txn **txn, pt_error_t *err);
void jint_be64_put(uint8_t *p, uint64_t v);
uint64_t jint_be64_get(const uint8_t *p);
int64_t jint_now_ms(void);
const char *jint_nz(const char *s);

/* Rebuilds the queue, dead-letter and index databases from the records of txn and
 * compares them with the stored ones (journal_state.c). 0, or PT_ECORRUPT with err
 * naming the first mismatch and *bad_seq its record (0 for an entry without one). */
int jint_state_check(journal_t *j, MDB_txn *txn, uint64_t *bad_seq, pt_error_t *err);
const char *jint_db_name(int db);

/* Enqueues seq for every recipient (NULL-terminated list, may be NULL). LMDB code. */
int jint_queue_enqueue(journal_txn_t *t, const char *const *recipients, uint64_t seq,
                       int64_t time_ms);

#endif
