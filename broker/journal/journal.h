/* journal: the broker's durable, tamper-evident record of every flow, in LMDB.
 * Records are keyed by a 64-bit sequence (big-endian keys), versioned, and chained:
 * each stores BLAKE2b-256(previous hash || its own content), so an edit, deletion or
 * reordering breaks the chain. Signed, linked checkpoints (Ed25519) pin the chain
 * head: the chain has no secret, the checkpoints are what an attacker cannot redo.
 * Secondary indexes (dedup, message id, partner/type/time, person by HMAC of the NIR)
 * are written in the same write transaction as the record. See docs/journal.md.
 *
 * Transactions. A journal is used by one thread (LMDB's MDB_NOTLS: read transactions
 * may be open beside the write transaction). There is at most one write transaction,
 * the batch: journal_begin opens it (-EBUSY while one is open, PT_EDENIED on a
 * read-only journal) and whoever called journal_begin holds it until its
 * journal_commit or journal_abort; in the broker that is the loop turn, owned by
 * broker/batch.c: ingest, delivery and admin write into it during their handler calls
 * and never commit it. journal_checkpoint
 * opens and commits a write transaction of its own, so it needs no batch open.
 * - Functions taking a journal_txn_t (journal_append, journal_dedup_find,
 *   journal_txn_*, journal_queue_list_txn, journal_queue_get/put/remove,
 *   journal_dead_add/requeue, journal_person_merge, journal_expire_payloads,
 *   journal_payload_remove, journal_segment_expire, journal_erase_person) work inside
 *   the batch (the broker runs the expiries in batches of their own): they see
 *   the committed state and the batch's own writes. Views they return borrow from the
 *   batch until its next write.
 * - Functions taking a journal_t (journal_get, journal_scan, journal_find_*,
 *   journal_queue_list, journal_queue_stats, journal_dead_list,
 *   journal_person_unmerged, journal_verify*, journal_expiry_held, journal_space,
 *   journal_archive, journal_archive_chains, journal_copy) each open a read
 *   transaction: they see
 *   the committed state as of their call, never the open batch's writes, and may be
 *   called while it is open. journal_last_seq, journal_head, journal_signed_head and
 *   journal_usage give committed state too.
 * - After a failed write the batch is poisoned: later calls in it fail (the look-ups
 *   journal_dedup_find and journal_queue_get answer PT_ENOTFOUND) and journal_commit
 *   aborts it; nothing of the batch is kept. journal_close aborts an open batch.
 * A function that reads both states (e.g. a committed list, then the batch) says so
 * where it does, in a one-line comment that begins "Both states:".
 *
 * Layout (broker/journal/, the library ptibus_journal: common/, LMDB and libsodium
 * only). journal.h is the API; journal_internal.h what the files share (struct
 * journal, the batch, the named databases, the jint_* functions).
 *   journal_int.c         helpers (jint_*): LMDB errors, be64 keys, the clock, sequence
 *                         lists, DUPSORT put and walk, the person key, read begin,
 *                         poisoning; uses no other journal file
 *   journal_meta.c        the meta database (format, last seq, head)
 *   journal_open.c        folder and file modes, environment, databases, resume, close
 *   journal_write.c       map growth; begin, append, commit, abort; journal_checkpoint
 *   journal_index.c       dedup, message-id and partner indexes and their look-ups
 *   journal_person.c      the person index: look-up and merge
 *   journal_read.c        records by sequence, scans
 *   journal_queue.c       per-recipient queues and dead letters
 *   journal_verify.c      chain, checkpoint and unsigned-tail verification
 *   journal_checkpoint.c  signing a batch's head; the signed head; checks at open
 *   journal_state.c       rebuilds the state databases from the records (verify)
 *   journal_retention.c   payload removal and expiry by policy (format 2)
 *   journal_segment.c     segment expiry and the signed anchor
 *   journal_archive.c     archives: writing one, chaining it to the live journal
 *   journal_erase.c       erasure of one person's payloads
 *   journal_space.c       used, free and reclaimable space; the compacted copy
 *   journal_copy.c        a consistent copy into a new folder (backup)
 *   journal_record.c/.h   byte layout of records and checkpoints, the chain hash */
#ifndef PT_JOURNAL_H
#define PT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "pt_limits.h"

typedef struct journal journal_t;
typedef struct journal_txn journal_txn_t;

/* Current on-disk record format version (bumped on any layout change; readers keep
 * the old decoders). Format 2 chains the payload's hash, not its bytes, so that a
 * payload can expire or be erased while the record still verifies; a journal created
 * in format 1 keeps its format-1 records and appends format-2 ones from its upgrade
 * point on (docs/journal.md). */
#define PT_JOURNAL_FORMAT 2
#define PT_JOURNAL_HASH_LEN 32

typedef enum journal_kind {
    PT_REC_RECEIVED = 1,     /* accepted message; payload = packed Envelope as journaled */
    PT_REC_REJECTED = 2,     /* refused message; reason set, payload_hash = BLAKE2b of bytes */
    PT_REC_DELIVERED = 3,    /* handed to a recipient (attempt set) */
    PT_REC_ACKNOWLEDGED = 4, /* recipient acknowledged: the receipt */
    PT_REC_DEAD_LETTERED = 5,
    PT_REC_REPLAYED = 6,
    PT_REC_ADMIN = 7, /* an administrator's action; reason describes it */
    /* 8 was PT_REC_RECEIPT, never written: receipts are the ACKNOWLEDGED and
     * DEAD_LETTERED records. Do not reuse the number. */
    /* A dead letter an administrator dropped for good (partner = recipient, ref_seq =
     * the RECEIVED record, reason = who and why): it leaves the dead-letter queue and
     * no requeue finds it again. Readers older than this kind call it corrupt. */
    PT_REC_DROPPED = 9,
} journal_kind_t;

/* Returns "RECEIVED", "REJECTED", ...; "UNKNOWN" for other values. Beside the enum,
 * and a switch without default: a kind added without its name is a -Wswitch warning. */
static inline const char *
journal_kind_name(journal_kind_t kind)
{
    switch (kind) {
    case PT_REC_RECEIVED:
        return "RECEIVED";
    case PT_REC_REJECTED:
        return "REJECTED";
    case PT_REC_DELIVERED:
        return "DELIVERED";
    case PT_REC_ACKNOWLEDGED:
        return "ACKNOWLEDGED";
    case PT_REC_DEAD_LETTERED:
        return "DEAD_LETTERED";
    case PT_REC_REPLAYED:
        return "REPLAYED";
    case PT_REC_ADMIN:
        return "ADMIN";
    case PT_REC_DROPPED:
        return "DROPPED";
    }
    return "UNKNOWN";
}

/* What a record holds of its payload. Format 1 knows only NONE and STORED. */
typedef enum journal_payload {
    PT_PAYLOAD_NONE = 0,    /* none was stored (not a message, or REJECTED: hash only) */
    PT_PAYLOAD_STORED = 1,  /* the bytes are here */
    PT_PAYLOAD_EXPIRED = 2, /* removed by the retention policy; the hash stays */
    PT_PAYLOAD_ERASED = 3,  /* removed by an erasure; the hash stays */
} journal_payload_t;

/* "none", "stored", "expired", "erased". */
static inline const char *
journal_payload_name(journal_payload_t s)
{
    switch (s) {
    case PT_PAYLOAD_NONE:
        return "none";
    case PT_PAYLOAD_STORED:
        return "stored";
    case PT_PAYLOAD_EXPIRED:
        return "expired";
    case PT_PAYLOAD_ERASED:
        return "erased";
    }
    return "unknown";
}

#define PT_JOURNAL_PREV_KEYS 8 /* retired signing keys a journal_open accepts */

typedef struct journal_options {
    const char *dir;         /* created 0700 if missing; files 0600 */
    size_t map_size_initial; /* bytes; 0 = 64 MiB */
    size_t map_size_max;     /* bytes; 0 = 64 GiB. The map grows up to this, then PT_EJOURNALFULL */
    const uint8_t *hmac_key; /* 32 bytes: key of the person index (HMAC-SHA256 of the NIR) */
    const uint8_t *sign_sk;  /* 64 bytes Ed25519 secret key for checkpoints; NULL = no signing */
    /* After a rotation of the signing key: the public keys of the retired signing keys
     * (32 bytes each, at most PT_JOURNAL_PREV_KEYS). A read-write open with sign_sk
     * accepts a last checkpoint signed by sign_sk or by one of them. */
    const uint8_t (*prev_sign_pks)[32];
    size_t n_prev_sign_pks;
    bool unsafe_nosync; /* MDB_NOSYNC: acks before disk. Only by explicit operator choice */
    bool read_only;     /* admin tools: MDB_RDONLY, no writes; start-up checks only warn */
    /* Read-write open with sign_sk: records allowed after the last checkpoint (0 =
     * PT_JOURNAL_UNSIGNED_MAX, also 0; UINT64_MAX = no check, to recover a journal
     * written by an older broker that crashed; see docs/journal.md). */
    uint64_t max_unsigned_tail;
    /* Record format a read-write open writes: 0 = PT_JOURNAL_FORMAT (a format-1 journal
     * is upgraded: later records are format 2, the upgrade point kept in meta).
     * PT_JREC_FORMAT_V1 (1) only to build a journal as an older broker did, for tests. */
    unsigned write_format;
    /* Read-write open of a journal whose writer's lock another process holds: false
     * (the default) fails at once with -EBUSY naming the holder's pid; true (a standby
     * broker) blocks until the holder is gone, calling on_lock_wait once before it
     * blocks. A signal caught without SA_RESTART interrupts the wait: -EINTR. */
    bool wait_for_lock;
    void (*on_lock_wait)(void *arg, long holder_pid);
    void *on_lock_wait_arg;
} journal_options_t;

/* A record to append. Strings are NUL-terminated and borrowed for the call. */
typedef struct journal_record {
    journal_kind_t kind;
    int64_t time_ms;        /* Unix ms; 0 = now */
    const char *partner;    /* sender (RECEIVED/REJECTED) or recipient (delivery kinds) */
    const char *msg_type;   /* envelope body case name, "" when unknown */
    const char *message_id; /* "" when unknown */
    const char *correlation_id;
    uint64_t ref_seq;       /* the RECEIVED record this one is about (delivery kinds), else 0 */
    uint32_t attempt;       /* delivery attempt (DELIVERED) */
    const char *reason;     /* REJECTED / DEAD_LETTERED / ADMIN text; NULL = none */
    const uint8_t *payload; /* RECEIVED: envelope bytes; else NULL */
    size_t payload_len;
    /* BLAKE2b-256 of payload when the caller has already computed it (the ingest does,
     * for dedup), so it is not hashed twice; NULL = the journal computes it. */
    const uint8_t *payload_hash;
    const char *person_nir; /* normalised NIR (13 chars) to index, NULL = none; never stored */
    const char *const *recipients; /* RECEIVED: routed recipients, NULL-terminated; may be NULL */
} journal_record_t;

/* A stored record, decoded. All pointers borrow from the read transaction or the
 * buffer that journal_get filled: valid until the next call on the same cursor. */
typedef struct journal_view {
    uint32_t format;
    journal_kind_t kind;
    uint64_t seq;
    int64_t time_ms;
    const char *partner;
    const char *msg_type;
    const char *message_id;
    const char *correlation_id;
    uint64_t ref_seq;
    uint32_t attempt;
    const char *reason;
    const uint8_t *payload; /* NULL unless payload_state is PT_PAYLOAD_STORED */
    size_t payload_len;
    journal_payload_t payload_state;           /* EXPIRED / ERASED: removed, cannot be replayed */
    uint8_t payload_hash[PT_JOURNAL_HASH_LEN]; /* BLAKE2b-256 of the message bytes */
    uint8_t hash[PT_JOURNAL_HASH_LEN];         /* chain hash of this record */
    size_t n_recipients;
    const char *recipients[PT_RECIPIENTS_MAX];
} journal_view_t;

/* Opens (creating if needed) the journal in opts->dir, resumes the sequence and chain
 * head from the meta record without a full scan, and verifies the last records.
 * Caller owns *out; close with journal_close(). Returns 0, -errno or PT_E*. */
int journal_open(const journal_options_t *opts, journal_t **out, pt_error_t *err);

/* For ptibusd --check-config, without opening anything: whether a broker could open dir
 * read-write now. The folder (or, when it does not exist yet, its parent) must be a
 * writable directory on a writable filesystem, and no process may hold the writer's
 * lock, unless allow_locked (a standby waits for it): then *holder gets its pid (0 when
 * free). Holds a shared lock for an instant (a broker starting meanwhile retries).
 * 0, or PT_ECONFIG / -errno with err saying what and where. */
int journal_check_dir(const char *dir, bool allow_locked, long *holder, pt_error_t *err);

/* Closes and sets *j to NULL; accepts NULL. No transaction may be open. */
void journal_close(journal_t **j);

/* Group commit: one write transaction per batch. */
int journal_begin(journal_t *j, journal_txn_t **txn, pt_error_t *err);

/* Appends a record in txn; on success *seq is its sequence. PT_EJOURNALFULL means
 * the map is at its maximum: the transaction is then unusable and must be aborted
 * (nothing of the batch is kept). */
int journal_append(journal_txn_t *txn, const journal_record_t *rec, uint64_t *seq, pt_error_t *err);

/* Dedup lookup of (sender, message_id) inside txn (sees this batch's own appends).
 * Returns 0 and fills *seq and hash (BLAKE2b-256 of the RECEIVED payload), or
 * PT_ENOTFOUND. */
int journal_dedup_find(journal_txn_t *txn, const char *sender, const char *message_id,
                       uint64_t *seq, uint8_t hash[PT_JOURNAL_HASH_LEN]);

/* Commits with a real fsync (unless unsafe_nosync) and frees txn. On failure nothing
 * of the batch is kept (PT_EJOURNALFULL for a full map or disk, or -errno) and the
 * journal tries to grow the map before the next batch. */
int journal_commit(journal_txn_t **txn, pt_error_t *err);

/* Aborts and frees txn; accepts NULL. */
void journal_abort(journal_txn_t **txn);

/* Last committed sequence (0 when empty); journal_head() also gives its chain hash. */
uint64_t journal_last_seq(const journal_t *j);

/* Last committed sequence and its chain hash (32 zero bytes when empty). */
void journal_head(const journal_t *j, uint64_t *seq, uint8_t hash[PT_JOURNAL_HASH_LEN]);

/* Reads one committed record into view; buf is caller-owned storage the view points
 * into (grown with realloc as needed; free() it when done). PT_ENOTFOUND if absent. */
int journal_get(journal_t *j, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
                pt_error_t *err);

/* Calls fn for each record with first <= seq <= last (last 0 = end) in order, inside one
 * read transaction; fn returns nonzero to stop (and that value is returned). */
typedef int (*journal_visit_fn)(const journal_view_t *view, void *arg);
int journal_scan(journal_t *j, uint64_t first, uint64_t last, journal_visit_fn fn, void *arg,
                 pt_error_t *err);

/* Sequences of every record carrying message_id (any kind, any partner), ascending.
 * Caller frees *seqs. */
int journal_find_message(journal_t *j, const char *message_id, uint64_t **seqs, size_t *n,
                         pt_error_t *err);

/* The same inside the write transaction t (sees the batch's own appends). */
int journal_txn_find_message(journal_txn_t *t, const char *message_id, uint64_t **seqs, size_t *n,
                             pt_error_t *err);

/* Reads record seq inside the write transaction t, decoded in place: the view borrows
 * from t until its next write. PT_ENOTFOUND if absent. */
int journal_txn_view(journal_txn_t *t, uint64_t seq, journal_view_t *view, pt_error_t *err);

/* Calls fn for each record carrying message_id, ascending, inside the write transaction
 * t (so it sees the batch's own appends): one walk of the message-id index, each record
 * decoded in place, nothing allocated. The view is valid only during the call, and fn
 * must not write to t. fn returns nonzero to stop (and that value is returned). */
int journal_txn_visit_message(journal_txn_t *t, const char *message_id, journal_visit_fn fn,
                              void *arg, pt_error_t *err);

/* Sequences of records of partner (and msg_type when not NULL) with from_ms <= time < to_ms. */
int journal_find_partner(journal_t *j, const char *partner, const char *msg_type, int64_t from_ms,
                         int64_t to_ms, uint64_t **seqs, size_t *n, pt_error_t *err);

/* Sequences of RECEIVED records about the person with this NIR (normalised 13 chars;
 * the index holds only HMAC-SHA256(hmac_key, nir)). */
int journal_find_person(journal_t *j, const char *nir, uint64_t **seqs, size_t *n, pt_error_t *err);

/* The person index has two parts: by_person (HMAC -> seqs) and by_person_new (seq ->
 * HMAC), where journal_append puts each record's entry, in the record's transaction, at
 * the cost of one appended page per batch instead of a random page of by_person per
 * record. journal_person_merge moves up to max of the oldest by_person_new entries into
 * by_person inside t (sorted, so a chunk walks by_person once); *moved says how many.
 * journal_find_person reads both parts. The broker merges when idle and whenever more
 * than a bound are waiting. */
int journal_person_merge(journal_txn_t *t, size_t max, size_t *moved, pt_error_t *err);

/* Entries waiting in by_person_new (committed state). */
size_t journal_person_unmerged(journal_t *j);

/* Records allowed after the last signed checkpoint. A journal opened with a signing
 * key signs the head of every commit that appends records, inside that commit's own
 * transaction (one Ed25519 signature and one 132-byte value per batch): no committed
 * state, even after a crash, has an unsigned tail. So by default journal_verify with a
 * public key fails unless a checkpoint covers the head, and a read-write journal_open
 * with the signing key refuses a journal whose last checkpoint is not its head: a
 * deleted checkpoint or a rewritten tail (see docs/journal.md). A larger value here
 * trades that for fewer signatures. */
#define PT_JOURNAL_UNSIGNED_MAX 0

/* The last signed checkpoint (committed state), for logs and receipts. */
typedef struct journal_signed_head {
    uint64_t seq; /* 0 = no checkpoint yet */
    int64_t time_ms;
    uint64_t number; /* 1-based rank among the journal's checkpoints */
    uint8_t hash[PT_JOURNAL_HASH_LEN];
    uint8_t sig[64];
} journal_signed_head_t;

/* Signs the current chain head (seq, hash, time, previous checkpoint's seq, number)
 * with the Ed25519 key and stores the checkpoint in its own committed transaction.
 * No-op (0) when the head is unchanged since the last checkpoint or no key was given.
 * Every signed head (here or in journal_commit) is logged at NOTICE ("journal.signed":
 * seq, number, head hash, signature prefix) so that it also leaves the machine. */
int journal_checkpoint(journal_t *j, pt_error_t *err);

/* The last signed checkpoint (seq 0 when there is none). */
void journal_signed_head(const journal_t *j, journal_signed_head_t *out);

typedef struct journal_verify_options {
    uint64_t first, last; /* records first..last; 0, 0 = all */
    const uint8_t *pk;    /* 32-byte Ed25519 public key; NULL = signatures not checked */
    /* After a rotation of the signing key: more public keys (keys[0] is pk when pk is
     * not NULL, or the only ones): each checkpoint and the anchor verify with any one
     * of pk and keys[0..n_keys-1]. */
    const uint8_t (*keys)[32];
    size_t n_keys;
    /* Called for each checkpoint whose signature verified, with the key that did (0 = pk
     * or the first key given, then keys[] in order); NULL = none. */
    void (*signed_by)(void *arg, uint64_t ckpt_seq, int64_t time_ms, size_t key);
    void *signed_by_arg;
    /* With pk: records allowed after the last checkpoint (PT_JOURNAL_UNSIGNED_MAX is
     * what a broker leaves; more for a journal written by an older broker that crashed;
     * UINT64_MAX = report only). */
    uint64_t max_unsigned;
    /* Rebuild the queue, dead-letter, dedup, message-id and partner databases from the
     * records and compare (only when the range is the whole journal). */
    bool check_state;
    /* Called at the start of each phase ("records", "checkpoints", "state") and every
     * 65536 records of the walk, with the seq reached and the range's end; NULL = none. */
    void (*progress)(void *arg, const char *phase, uint64_t seq, uint64_t end);
    void *progress_arg;
} journal_verify_options_t;

typedef struct journal_verify_report {
    uint64_t first, last;     /* records walked */
    uint64_t checkpoints;     /* checkpoints checked (every format) */
    uint64_t old_checkpoints; /* of which format 1: signed but not linked */
    uint64_t last_ckpt_seq;   /* 0 = none */
    int64_t last_ckpt_ms;
    uint64_t unsigned_tail; /* records after the last checkpoint, up to last */
    uint64_t anchor_seq;    /* records up to it were moved out (segment expiry); 0 = none */
    bool state_checked;     /* the state databases were rebuilt and compared */
} journal_verify_report_t;

/* Walks the records of the range: recomputes the chain, checks sequence continuity,
 * format versions and meta; then every checkpoint up to the range's end from the first
 * one: signature (with pk), hash against its record, and the link to the previous
 * checkpoint (format 2: prev_seq and number, so a deleted checkpoint is named). With
 * pk, fails when more than max_unsigned records follow the last checkpoint (when a
 * checkpoint follows the range's end, the walk goes on up to it). Then, with
 * check_state, compares the state databases with what the records say. Fills *rep
 * (also on failure, as far as it got). Returns 0 when intact; otherwise PT_ECORRUPT
 * with *bad_seq the first bad record (or checkpoint) and err saying what is wrong. */
int journal_verify_ex(journal_t *j, const journal_verify_options_t *o, journal_verify_report_t *rep,
                      uint64_t *bad_seq, pt_error_t *err);

/* journal_verify_ex with first, last, pk, max_unsigned PT_JOURNAL_UNSIGNED_MAX, no state
 * check. */
int journal_verify(journal_t *j, uint64_t first, uint64_t last, const uint8_t *pk,
                   uint64_t *bad_seq, pt_error_t *err);

/* ---- Per-recipient delivery queues (journal_queue.c) ----
 * Appending a RECEIVED record whose `recipients` is set also enqueues its seq for each
 * recipient, in the same write transaction: an accepted message is never unrouted.
 * An entry stays until the recipient acknowledges it (journal_queue_remove) or it is
 * dead-lettered (moved to the recipient's dead-letter queue). */

typedef struct journal_queue_entry {
    uint64_t seq;        /* the RECEIVED record */
    uint32_t attempts;   /* deliveries made so far */
    bool replay;         /* enqueued by an administrator's replay */
    int64_t enqueued_ms; /* when it entered the queue */
} journal_queue_entry_t;

typedef struct journal_dead_entry {
    char recipient[40];
    uint64_t seq;
    uint32_t attempts;
    int64_t dead_ms;
} journal_dead_entry_t;

/* Lists up to max entries of recipient's queue with seq > after, ascending, in a read
 * transaction (committed state only). */
int journal_queue_list(journal_t *j, const char *recipient, uint64_t after,
                       journal_queue_entry_t *out, size_t max, size_t *n, pt_error_t *err);

/* The same inside a write transaction (sees the batch's own enqueues). */
int journal_queue_list_txn(journal_txn_t *t, const char *recipient, uint64_t after,
                           journal_queue_entry_t *out, size_t max, size_t *n, pt_error_t *err);

/* Depth of recipient's queue and its oldest entry's enqueue time (0 when empty). Scans
 * the queue: for start-up and tests; the broker keeps live counts itself. */
int journal_queue_stats(journal_t *j, const char *recipient, uint64_t *depth, int64_t *oldest_ms,
                        pt_error_t *err);

/* Inserts or replaces an entry (e.g. to record one more attempt). */
int journal_queue_put(journal_txn_t *t, const char *recipient, const journal_queue_entry_t *e,
                      pt_error_t *err);

/* Reads one entry inside the transaction. PT_ENOTFOUND when absent. */
int journal_queue_get(journal_txn_t *t, const char *recipient, uint64_t seq,
                      journal_queue_entry_t *e);

/* Removes an entry. PT_ENOTFOUND when absent (e.g. a duplicate acknowledgement). */
int journal_queue_remove(journal_txn_t *t, const char *recipient, uint64_t seq, pt_error_t *err);

/* Moves an entry from the queue to the dead-letter queue. */
int journal_dead_add(journal_txn_t *t, const char *recipient, const journal_queue_entry_t *e,
                     pt_error_t *err);

/* Moves a dead letter back to the queue with its attempts reset. PT_ENOTFOUND if absent,
 * PT_EINVALID when its payload expired or was erased (nothing left to deliver). */
int journal_dead_requeue(journal_txn_t *t, const char *recipient, uint64_t seq, pt_error_t *err);

/* Removes a dead letter for good (an administrator's drop): *e gets its entry (attempts,
 * time). PT_ENOTFOUND if recipient has no dead letter seq. The caller journals the
 * PT_REC_DROPPED record in the same transaction. */
int journal_dead_drop(journal_txn_t *t, const char *recipient, uint64_t seq,
                      journal_queue_entry_t *e, pt_error_t *err);

/* Lists dead letters of recipient (NULL: all recipients), at most max. Caller frees *out. */
int journal_dead_list(journal_t *j, const char *recipient, size_t max, journal_dead_entry_t **out,
                      size_t *n, pt_error_t *err);

/* Reads a record inside a write transaction (sees the batch's own appends). */
int journal_txn_get(journal_txn_t *t, uint64_t seq, journal_view_t *view, uint8_t **buf,
                    size_t *cap, pt_error_t *err);

/* ---- Retention (journal_retention.c) ----
 * Format 2 chains a payload's hash, not its bytes: a payload can be removed and its
 * record still verifies (the hash, the audit fields and the chain stay). A payload is
 * never removed while its message is queued or dead-lettered for a recipient. */

/* One rule of the retention policy: the payloads of msg_type are kept keep_ms after
 * their record's time. msg_type NULL: every type without a rule of its own. keep_ms 0:
 * kept forever. */
typedef struct journal_retention_rule {
    const char *msg_type;
    int64_t keep_ms;
} journal_retention_rule_t;

typedef struct journal_expiry_report {
    size_t examined;   /* records looked at by this step */
    size_t expired;    /* payloads removed */
    size_t held;       /* due but still queued or dead-lettered: kept, tried again later */
    uint64_t held_seq; /* the last record held (0 = none), for the log */
    size_t format1;    /* due but format 1 (written before the upgrade): kept */
    bool more;         /* the step used its whole budget: more may be due now */
} journal_expiry_report_t;

/* One bounded step of payload expiry inside t: examines at most max records (those
 * held earlier included) and removes the payloads that rules say are due at now_ms
 * (Unix ms), marking them PT_PAYLOAD_EXPIRED. Records are walked in seq order, one
 * walk per distinct retention, each stopping at the first record younger than it; its
 * position is kept in meta, in t. A due payload whose message is still queued or
 * dead-lettered is held and tried again by later steps. Returns 0 or an error that
 * poisons t (abort it). */
int journal_expire_payloads(journal_txn_t *t, const journal_retention_rule_t *rules, size_t n,
                            int64_t now_ms, size_t max, journal_expiry_report_t *rep,
                            pt_error_t *err);

/* Payloads due but held because their message is still queued or dead-lettered
 * (committed state). */
size_t journal_expiry_held(journal_t *j);

/* Removes the payload of record seq inside t, keeping its hashes and audit fields; why
 * is PT_PAYLOAD_EXPIRED or PT_PAYLOAD_ERASED. PT_EVERSION for a format-1 record (its
 * chain covers the payload), PT_EINVALID when no payload is stored, PT_EDENIED while the
 * message is queued or dead-lettered (err names the recipient), PT_ENOTFOUND. */
int journal_payload_remove(journal_txn_t *t, uint64_t seq, journal_payload_t why, pt_error_t *err);

/* ---- Segment expiry (journal_segment.c) ----
 * Records older than the audit retention are moved out of the live journal with their
 * index entries. The last one moved out is always a checkpoint's seq: that checkpoint
 * is kept, and a signed anchor (Ed25519, its own domain) names it, so the live journal
 * verifies from it: journal_verify_ex checks the anchor's signature, that its
 * checkpoint is the one it signed, chains the first live record from its hash and
 * links the checkpoints from its number. Never past a message still queued or
 * dead-lettered. */

typedef struct journal_segment_report {
    uint64_t first;       /* first record moved out (0 = none this step) */
    uint64_t anchor;      /* the last one: the new anchor */
    size_t moved;         /* records moved out */
    uint64_t pending_seq; /* lowest seq still queued or dead-lettered (UINT64_MAX: none) */
    bool more;            /* the next record is due too */
} journal_segment_report_t;

/* One step inside t (which must not have appended records yet): moves out, from the
 * first live record, up to about max records whose time is <= cutoff_ms and that
 * precede every queued or dead-lettered message, ending at a checkpoint; signs the
 * new anchor and appends an ADMIN record saying which records were moved out. Needs
 * the signing key (PT_EDENIED without). The index entries of the person index's merged
 * part (by_person) cannot be found from a record and stay: journal_find_person leaves
 * out seqs before the anchor. 0, or an error that poisons t. */
int journal_segment_expire(journal_txn_t *t, int64_t cutoff_ms, size_t max,
                           journal_segment_report_t *rep, pt_error_t *err);

/* The first seq of the live journal: 1, or the anchor's + 1 (committed state). */
uint64_t journal_first_seq(const journal_t *j);

/* ---- Erasure (journal_erase.c) ---- */

typedef struct journal_erase_report {
    size_t records;       /* records about the person (the person index) */
    size_t erased;        /* payloads removed now */
    size_t already;       /* payloads already gone (expired or erased) */
    size_t format1;       /* payloads kept: format-1 records chain them (docs/journal.md) */
    size_t dead_lettered; /* queue entries dead-lettered first (force) */
} journal_erase_report_t;

/* Erases, inside t, the payloads of every record about the person with this NIR
 * (normalised 13 characters; found by the person index, committed state): each becomes
 * PT_PAYLOAD_ERASED, hashes and audit fields kept, the chain still valid. While one of
 * the person's messages is still queued for a recipient: PT_EDENIED and nothing done,
 * unless force, which dead-letters it first (one DEAD_LETTERED record per recipient,
 * reason "erased: <reason>"). The caller journals the erasure itself (who, why, how
 * many: never the NIR). *seqs (caller frees) lists the records about the person. 0, or
 * an error that poisons t when something was written. */
int journal_erase_person(journal_txn_t *t, const char *nir, bool force, const char *reason,
                         journal_erase_report_t *rep, uint64_t **seqs, size_t *n, pt_error_t *err);

/* ---- Archives (journal_archive.c) ----
 * An archive is a journal environment of its own holding the live journal's records
 * from its first one up to a checkpoint, their checkpoints (and the live anchor, if
 * any), and their index entries; meta marks it. journal_open reads it read-only like
 * any journal; journal_verify_ex verifies it alone (chain, signatures, indexes; not the
 * queues, which an archive does not hold). */

typedef struct journal_archive_report {
    uint64_t first, last; /* records archived */
} journal_archive_report_t;

/* Writes into dir (new, or empty of any journal) the records of j up to the last
 * checkpoint at or before the last record whose time is <= until_ms. j may be
 * read-only; the archive is written with fsync. PT_ENOTFOUND when there is nothing to
 * archive, -EEXIST when dir already holds a journal. */
int journal_archive(journal_t *j, int64_t until_ms, const char *dir, journal_archive_report_t *rep,
                    pt_error_t *err);

/* Checks that archive is the predecessor of live: the record where live's records
 * begin (its anchor) or the last one the archive holds carries the same chain hash in
 * both. PT_ECORRUPT saying what differs. Verify each with journal_verify_ex too. */
int journal_archive_chains(journal_t *archive, journal_t *live, pt_error_t *err);

/* True for an archive (journal_archive wrote it). */
bool journal_is_archive(const journal_t *j);

/* ---- Space (journal_space.c) ---- */

typedef struct journal_space {
    size_t used_bytes;        /* pages up to the last one in use */
    size_t free_bytes;        /* of which on LMDB's free list: reused by later writes */
    size_t file_bytes;        /* data.mdb's size (it never shrinks) */
    size_t reclaimable_bytes; /* what a compacted copy would give back (file - live) */
} journal_space_t;

/* Fills *out (committed state; a walk of LMDB's free list). 0 or an LMDB error. */
int journal_space(journal_t *j, journal_space_t *out, pt_error_t *err);

/* Copies the committed journal into dir (created 0700, or an existing empty folder made
 * 0700) with LMDB's compacting copy, in one read transaction: consistent, and safe
 * while the broker writes; only live pages are copied, so the copy is smaller and the
 * expired or erased bytes left in free pages are not in it (ptibusctl backup, compact). data.mdb is
 * created 0600 and synced, then the folder. Returns 0, -EEXIST for a folder that is not empty,
 * -errno or PT_E* (err says what). */
int journal_copy(journal_t *j, const char *dir, pt_error_t *err);

/* Current map size and maximum, and bytes in use, for metrics and the full check. */
void journal_usage(const journal_t *j, size_t *used, size_t *map_size, size_t *map_max);

#endif
