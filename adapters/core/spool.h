/* spool: the adapter's durable store, one LMDB environment in a folder of its own (0700,
 * files 0600). It owns the outbound messages from the moment they are accepted from the
 * partner until the broker's PublishAck (in arrival order, with their retry times), the
 * lifecycle of every message the partner sent (kept a configured number of days), the
 * inbound seqs already handed over, and key-value namespaces for the codecs and the file
 * drop. Writes go to the turn's write transaction, begun on first use and committed once
 * (group commit, like the broker's loop turn); nothing is durable before spool_commit.
 * Reads see the turn's uncommitted writes while it is open.
 * Record layouts: docs/adapters/spool.md. Not thread-safe: the loop's thread only. */
#ifndef PT_SPOOL_H
#define PT_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "err.h"
#include "pt_limits.h"
#include "validate.h"

typedef struct spool spool_t;

#define PT_SPOOL_HASH_LEN 32    /* BLAKE2b-256 content hash */
#define PT_SPOOL_TYPE_MAX 64    /* message type name, e.g. "orientation_decision" */
#define PT_SPOOL_REASON_MAX 512 /* a Nack's reason, kept (truncated) for the lifecycle */
#define PT_SPOOL_RCPT_REASON_MAX 256
#define PT_SPOOL_NS_MAX 31         /* key-value namespace: 1 to 31 of a-z, 0-9, _ */
#define PT_SPOOL_KEY_MAX 256       /* key-value key, bytes */
#define PT_SPOOL_DERIVED_ID_LEN 51 /* "fd-" and 48 hex digits */

typedef struct spool_options {
    const char *dir;         /* created 0700 if missing; an existing one must be 0700 */
    size_t map_size_initial; /* bytes; 0: 16 MiB */
    size_t map_size_max;     /* bytes; 0: 4 GiB. Reached: puts get PT_EJOURNALFULL */
    unsigned retention_days; /* finished lifecycles and inbound marks; 0: 30 */
    bool unsafe_nosync;      /* MDB_NOSYNC: tests only, commits are then not durable */
} spool_options_t;

typedef enum spool_source { SPOOL_SRC_HTTP = 1, SPOOL_SRC_FILE = 2 } spool_source_t;

typedef enum spool_state {
    SPOOL_SPOOLED = 1,  /* durable, waiting for the broker's PublishAck */
    SPOOL_ACCEPTED = 2, /* PublishAck received: the broker journaled it */
    SPOOL_REJECTED = 3, /* final Nack */
} spool_state_t;

typedef enum spool_receipt_kind {
    SPOOL_RCPT_DELIVERED = 1,
    SPOOL_RCPT_ACKNOWLEDGED = 2,
    SPOOL_RCPT_DEAD_LETTERED = 3,
} spool_receipt_kind_t;

/* One message to spool; everything borrowed for the call. */
typedef struct spool_msg {
    const char *message_id; /* 1 to PT_MESSAGE_ID_MAX of 0x21-0x7e */
    const uint8_t *data;    /* the packed Envelope, sent as it is */
    size_t len;
    const uint8_t *hash;  /* PT_SPOOL_HASH_LEN bytes; NULL: BLAKE2b-256 of data */
    const char *msg_type; /* up to PT_SPOOL_TYPE_MAX bytes; may be NULL */
    spool_source_t source;
} spool_msg_t;

/* What spool_put found. */
typedef struct spool_put_result {
    bool duplicate;      /* the id was already spooled with the same content: nothing written */
    spool_state_t state; /* the message's state (SPOOLED when new) */
    uint64_t seq;        /* ACCEPTED: the broker's seq */
} spool_put_result_t;

/* One entry to send, borrowed until the callback returns. */
typedef struct spool_entry {
    uint64_t qseq; /* arrival order, the key for spool_mark_in_flight */
    const char *message_id;
    const uint8_t *data;
    size_t len;
    uint32_t attempts; /* retryable Nacks so far */
    int64_t spooled_at_ms;
} spool_entry_t;

/* Returns 0 to go on, anything else to stop the listing (returned by the lister). */
typedef int (*spool_send_fn)(void *arg, const spool_entry_t *e);

typedef struct spool_recipient {
    char partner[PT_PARTNER_ID_MAX + 1];
    int64_t delivered_at_ms; /* 0: not yet */
    int64_t acknowledged_at_ms;
    int64_t dead_lettered_at_ms;
    char reason[PT_SPOOL_RCPT_REASON_MAX + 1];
} spool_recipient_t;

/* The lifecycle of one message (about 11 KiB: allocate it, do not put it on a small stack). */
typedef struct spool_lifecycle {
    char message_id[PT_MESSAGE_ID_MAX + 1];
    char msg_type[PT_SPOOL_TYPE_MAX + 1];
    spool_source_t source;
    spool_state_t state;
    int64_t spooled_at_ms;
    uint32_t attempts;
    int64_t next_attempt_ms; /* 0: as soon as possible */
    uint64_t seq;            /* ACCEPTED */
    int64_t finished_at_ms;  /* accepted or rejected at */
    uint32_t nack_code;      /* REJECTED: a ptibus.v1.NackCode */
    char reason[PT_SPOOL_REASON_MAX + 1];
    char field_path[PT_ERROR_PATH_MAX];
    size_t n_recipients;
    spool_recipient_t recipients[PT_RECIPIENTS_MAX];
} spool_lifecycle_t;

typedef struct spool_stats {
    uint64_t depth;        /* spooled, not yet accepted or rejected (in flight included) */
    int64_t oldest_age_ms; /* age of the oldest of them; 0 when none */
    uint64_t in_flight;
    uint64_t rejected;   /* rejected lifecycles still kept */
    uint64_t lifecycles; /* every lifecycle kept */
    size_t used_bytes;   /* pages in use */
    size_t map_size, map_max;
} spool_stats_t;

/* ---- opening ---- */

/* Opens (creating if needed) the spool in opts->dir: the folder must be owned by the
 * euid with no access for group or others (PT_EDENIED otherwise, err saying how to fix
 * it), and is locked for this process (-EBUSY when another holds it). Caller owns *out;
 * free with spool_close. */
int spool_open(const spool_options_t *opts, spool_t **out, pt_error_t *err);

/* Aborts an uncommitted turn (nothing of it is kept), closes; accepts NULL, sets *s NULL. */
void spool_close(spool_t **s);

/* ---- the turn ---- */

/* Commits the turn's transaction (fsync unless unsafe_nosync). Returns 0 (also when
 * nothing was written), or the turn's failure: the first LMDB error of a write of the
 * turn (PT_EJOURNALFULL, ...) or of the commit. After a failure nothing of the turn is
 * kept, and the next write begins a new turn. */
int spool_commit(spool_t *s, pt_error_t *err);

/* Drops the turn's uncommitted writes. */
void spool_abort(spool_t *s);

/* 0 while the turn has not failed, else its failure. */
int spool_failed(const spool_t *s);

/* Whether the turn has something to commit (or a failure to report). */
bool spool_turn_open(const spool_t *s);

/* Whether the open turn holds a write that someone waits for: a spooled message (its POST
 * waits for the 202), an inbound mark (its DeliverAck waits), a key-value write; or a
 * failure to report. The loop commits such a turn before it sleeps. A turn holding only
 * the marks of the broker's answers (accepted, retry, rejected, receipts) and purges may
 * wait for the next urgent write or a short delay: a crash that loses them makes the
 * adapter send those messages again, and the broker answers again (it dedups by id).
 * Near the maximum size (3/4 used) they are urgent too. */
bool spool_turn_urgent(spool_t *s);

/* Monotonic ms at which the open turn's transaction began; 0 when none is open. */
int64_t spool_turn_began_ms(const spool_t *s);

/* ---- outbound ---- */

/* Spools one message in the turn. A new id: 0, res->duplicate false. The same id with the
 * same hash: 0, res->duplicate true and the existing state, nothing written. The same id
 * with another hash: PT_EDUPCONFLICT. Bad id or type: PT_EINVALID; the spool at its
 * maximum size (headroom kept for acks and purges): PT_EJOURNALFULL, the turn still
 * usable. An LMDB failure fails the turn. */
int spool_put(spool_t *s, const spool_msg_t *m, spool_put_result_t *res, pt_error_t *err);

/* Calls fn, in arrival order, for at most max committed entries (never one spooled by
 * the open turn: a message leaves only once durable) neither in flight nor waiting for
 * their retry time (next_attempt_ms > now_ms). *next_due_ms (may be NULL) gets the
 * earliest retry time of the entries skipped for it, 0 when none. The listing does not
 * mark them: call spool_mark_in_flight for each one sent. Returns 0, fn's non-zero value,
 * or an LMDB error. fn must not write to the spool. */
int spool_next_to_send(spool_t *s, int64_t now_ms, size_t max, spool_send_fn fn, void *arg,
                       int64_t *next_due_ms, pt_error_t *err);

/* In memory only: after a restart or a lost broker session everything is to send again. */
int spool_mark_in_flight(spool_t *s, uint64_t qseq);
bool spool_in_flight(const spool_t *s, uint64_t qseq);
void spool_reset_in_flight(spool_t *s);

/* PublishAck: the message leaves the send queue, its lifecycle says accepted (seq, at).
 * Again for an accepted message: 0, nothing changed. PT_ENOTFOUND for an unknown id,
 * PT_EINVALID for a rejected one. */
int spool_accepted(spool_t *s, const char *id, uint64_t seq, int64_t at_ms, pt_error_t *err);

/* Retryable Nack: not in flight any more, sent again from next_attempt_ms on (the backoff
 * is the caller's); attempts counted. PT_ENOTFOUND / PT_EINVALID (not spooled). */
int spool_retry(spool_t *s, const char *id, int64_t next_attempt_ms, pt_error_t *err);

/* Final Nack: the message leaves the send queue, its lifecycle keeps code, reason and
 * field path (either may be NULL; truncated to their maximum). PT_ENOTFOUND /
 * PT_EINVALID (already accepted). Again for a rejected message: 0, nothing changed. */
int spool_rejected(spool_t *s, const char *id, uint32_t code, const char *reason,
                   const char *field_path, int64_t at_ms, pt_error_t *err);

/* ---- lifecycle ---- */

/* A Receipt for one recipient: the first time of each kind is kept (a receipt sent
 * again changes nothing), the reason of the latest that has one. PT_ENOTFOUND for an
 * unknown (or purged) id. */
int spool_receipt(spool_t *s, const char *id, const char *recipient, spool_receipt_kind_t kind,
                  int64_t at_ms, const char *reason, pt_error_t *err);

/* Fills *out with the lifecycle of id (recipients sorted by partner id). PT_ENOTFOUND. */
int spool_lifecycle(spool_t *s, const char *id, spool_lifecycle_t *out, pt_error_t *err);

/* The JSON of GET /v1/messages/{id} (docs/adapters/spool.md). Caller owns the result
 * (json_decref); NULL when out of memory. */
json_t *spool_lifecycle_json(const spool_lifecycle_t *lc);

/* Removes, in the turn, at most max lifecycles finished before now_ms minus the
 * retention, with their receipts, and the inbound marks older than that. *removed (may
 * be NULL) gets the number of lifecycles removed. */
int spool_purge(spool_t *s, int64_t now_ms, size_t max, size_t *removed, pt_error_t *err);

/* ---- inbound ---- */

/* Whether seq was marked handed over (in this turn or a committed one). */
int spool_inbound_seen(spool_t *s, uint64_t seq, bool *seen, pt_error_t *err);

/* Marks seq handed over, in the turn (commit it with the hand-over's bookkeeping). */
int spool_inbound_mark(spool_t *s, uint64_t seq, int64_t at_ms, pt_error_t *err);

/* ---- key-value namespaces ---- */

/* Called for each key of a namespace in key order; borrowed for the call. Non-zero stops. */
typedef int (*spool_kv_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen);

/* Caller owns *val (free()); PT_ENOTFOUND when absent. */
int spool_kv_get(spool_t *s, const char *ns, const void *key, size_t klen, uint8_t **val,
                 size_t *vlen, pt_error_t *err);
int spool_kv_put(spool_t *s, const char *ns, const void *key, size_t klen, const void *val,
                 size_t vlen, pt_error_t *err);
/* PT_ENOTFOUND when absent. */
int spool_kv_del(spool_t *s, const char *ns, const void *key, size_t klen, pt_error_t *err);
/* fn must not write to the spool (collect, then write). Returns 0, fn's value or an error. */
int spool_kv_iterate(spool_t *s, const char *ns, spool_kv_fn fn, void *arg, pt_error_t *err);

/* ---- staged files ---- */

/* A file too large for one write transaction is spooled in chunks, each committed, under
 * a stage: the messages it spools are kept from the send queue and the key-value writes
 * it makes are undoable, until the turn that finishes the stage commits. A stage that is
 * not finished (a decode that failed, a crash) is rolled back: its messages and their
 * lifecycles are deleted and its key-value writes undone, in chunks too. spool_open
 * rolls back a stage left by a crash before it returns. One stage at a time: the file
 * drop processes one file at a time, synchronously on the loop, so the writes made while
 * a stage is live are the file's (a stage takes every spool_put and key-value write of
 * that time). Layouts and the proof: docs/adapters/spool.md. */

/* Whether a stage is unresolved (open, or left by a failed turn or rollback): it must
 * be rolled back (spool_stage_rollback) before another begins. */
bool spool_stage_pending(const spool_t *s);

/* Begins a stage in the turn. -EBUSY when one is pending. */
int spool_stage_begin(spool_t *s, pt_error_t *err);

/* Finishes the open stage in the turn: once the turn commits, its messages are sent and
 * its key-value writes stand. A failed turn leaves the stage pending. PT_ENOTFOUND when
 * no stage is open. */
int spool_stage_finish(spool_t *s, pt_error_t *err);

/* One step of the rollback of the pending stage, in the turn: at most max deletions or
 * undos. Returns 1 when more steps are needed (commit the turn, then call again), 0 once
 * the stage is gone (commit the turn to make that durable), or an error. */
int spool_stage_rollback(spool_t *s, size_t max, pt_error_t *err);

/* ---- stats and helpers ---- */

int spool_stats(spool_t *s, int64_t now_ms, spool_stats_t *out, pt_error_t *err);

/* For /readyz: the turn has not failed, a write transaction can begin and the spool is
 * not at its maximum size. */
bool spool_writable(spool_t *s);

/* BLAKE2b-256 of data. */
void spool_content_hash(const void *data, size_t len, uint8_t out[PT_SPOOL_HASH_LEN]);

/* The message id of record `index` of a dropped file without an id of its own: "fd-" and
 * the hex of 24 bytes of BLAKE2b-256("ptibus-fd-v1" || content hash || index as 8 bytes
 * big-endian): stable across restarts and drops of the same content, a valid message id. */
void spool_derive_id(const uint8_t content_hash[PT_SPOOL_HASH_LEN], uint64_t index,
                     char out[PT_SPOOL_DERIVED_ID_LEN + 1]);

#endif
