/* journal_record: the byte layout of one journal record and of one checkpoint, and
 * the chain hash that links records. Pure functions over caller-owned buffers: no
 * LMDB, no heap. Integers in records are little-endian; keys (built by journal_*.c) are
 * big-endian so that LMDB's byte order is numeric order. Layout tables: docs/journal.md. */
#ifndef PT_JOURNAL_RECORD_H
#define PT_JOURNAL_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "pt_limits.h"
#include "journal.h"

/* The first record format, still read (and written only for tests of older journals):
 * its chain hash covers the payload bytes, so a payload cannot be removed. */
#define PT_JREC_FORMAT_V1 1

/* Fixed header: format u16, kind u8, flags u8, seq u64, time_ms i64. */
#define PT_JREC_HEADER_LEN 20
/* Fixed trailer: ref_seq u64, attempt u32, payload hash, chain hash. */
#define PT_JREC_TRAILER_LEN (8 + 4 + 2 * PT_JOURNAL_HASH_LEN)

/* Checkpoint value, format 1 (old, still read): format u16, reserved u16, seq u64, hash,
 * time_ms i64, signature. Its signed message: "ptibus-journal-checkpoint-v1" || seq u64
 * LE || hash || time_ms i64 LE. It does not link to the previous checkpoint, so the
 * deletion of a format-1 checkpoint is invisible. */
#define PT_JCKP_FORMAT_V1 1
#define PT_JCKP_LEN_V1 (2 + 2 + 8 + PT_JOURNAL_HASH_LEN + 8 + PT_JCKP_SIG_LEN)
#define PT_JCKP_DOMAIN_V1 "ptibus-journal-checkpoint-v1"
/* Format 2 (written now) adds, after time_ms, prev_seq u64 (the previous checkpoint's
 * seq, 0 for the first) and number u64 (1-based rank of this checkpoint among all the
 * journal's checkpoints), both inside the signed message
 * "ptibus-journal-checkpoint-v2" || seq || hash || time_ms || prev_seq || number, so
 * that a deleted checkpoint leaves a visible gap. */
#define PT_JCKP_FORMAT 2
#define PT_JCKP_SIG_LEN 64
#define PT_JCKP_LEN (2 + 2 + 8 + PT_JOURNAL_HASH_LEN + 8 + 8 + 8 + PT_JCKP_SIG_LEN)
#define PT_JCKP_DOMAIN "ptibus-journal-checkpoint-v2"
#define PT_JCKP_DOMAIN_LEN (sizeof PT_JCKP_DOMAIN - 1)
#define PT_JCKP_MSG_LEN (PT_JCKP_DOMAIN_LEN + 8 + PT_JOURNAL_HASH_LEN + 8 + 8 + 8)
#define PT_JCKP_MSG_LEN_V1 (PT_JCKP_DOMAIN_LEN + 8 + PT_JOURNAL_HASH_LEN + 8)

/* The signed anchor of a journal whose oldest records were moved out (segment expiry):
 * the same fields and layout as a format-2 checkpoint, with its own format number and
 * domain, signed as "ptibus-journal-anchor-v1" (padded with 4 NULs to the checkpoint
 * domain's 28 bytes) || seq || hash || time_ms || prev_seq || number. seq is the last record moved
 * out; hash, prev_seq and number are those of the checkpoint at seq, which is kept: the live
 * journal verifies from it. */
#define PT_JANCHOR_FORMAT 0x41 /* 'A' */
#define PT_JANCHOR_DOMAIN "ptibus-journal-anchor-v1"
#define PT_JANCHOR_DOMAIN_LEN (sizeof PT_JANCHOR_DOMAIN - 1)

typedef struct journal_checkpoint_rec {
    uint32_t format; /* PT_JCKP_FORMAT_V1 or PT_JCKP_FORMAT */
    uint64_t seq;
    int64_t time_ms;
    uint8_t hash[PT_JOURNAL_HASH_LEN];
    uint64_t prev_seq; /* format 2 only */
    uint64_t number;   /* format 2 only */
    uint8_t sig[PT_JCKP_SIG_LEN];
} journal_checkpoint_rec_t;

/* Validates rec (kind, field sizes, recipient count) and sets *len to its encoded size
 * in format (PT_JREC_FORMAT_V1 or PT_JOURNAL_FORMAT). Returns 0, PT_EINVALID,
 * PT_ETOOLARGE with err naming the field, or PT_EVERSION for another format. */
int journal_record_size(const journal_record_t *rec, unsigned format, size_t *len, pt_error_t *err);

/* Encodes rec (already sized by journal_record_size for format) into out[0..len):
 * header with seq and time_ms, fields, trailer with the payload hash and the chain hash
 * computed from prev. REJECTED records keep only the payload hash, never the bytes. */
void journal_record_encode(const journal_record_t *rec, unsigned format, uint64_t seq,
                           int64_t time_ms, const uint8_t prev[PT_JOURNAL_HASH_LEN], uint8_t *out,
                           size_t len);

/* Decodes buf[0..len) into view, checking every length against len. Pointers in view
 * borrow from buf. Returns 0, PT_EVERSION for an unknown format, PT_ECORRUPT otherwise
 * (err: "record <seq>: ..."; seq is the key the caller read it under). */
int journal_record_decode(const uint8_t *buf, size_t len, uint64_t seq, journal_view_t *view,
                          pt_error_t *err);

/* The chain hash a record of len bytes must carry in its last 32 bytes. Format 1:
 * BLAKE2b-256(prev || buf[0 .. len - 32)). Format 2: the same bytes without the payload
 * section (state, length, bytes), i.e. prev || header || ref_seq, attempt, payload hash.
 * len must be >= PT_JOURNAL_HASH_LEN. */
void journal_record_chain(const uint8_t prev[PT_JOURNAL_HASH_LEN], const uint8_t *buf, size_t len,
                          uint8_t out[PT_JOURNAL_HASH_LEN]);

/* The chain hash stored in a record of len bytes (its last 32 bytes), or NULL when the
 * record is too short to hold one. Borrowed from buf. */
const uint8_t *journal_record_stored_hash(const uint8_t *buf, size_t len);

/* Writes into out (at least len bytes) the format-2 record buf[0..len) with its payload
 * removed: the payload state set to state (PT_PAYLOAD_EXPIRED or PT_PAYLOAD_ERASED) and
 * the bytes dropped; every chained byte and both hashes are kept, so the record still
 * chains. *out_len is the new size. PT_EVERSION for a format-1 record, PT_EINVALID when
 * no payload is stored (or the record is malformed). */
int journal_record_strip(const uint8_t *buf, size_t len, journal_payload_t state, uint8_t *out,
                         size_t *out_len);

/* Fills msg with the fixed byte string a checkpoint signature covers (its layout
 * depends on cp->format) and returns its length. */
size_t journal_checkpoint_message(const journal_checkpoint_rec_t *cp, uint8_t msg[PT_JCKP_MSG_LEN]);

/* Anchors: the message signed (returns its length) and the value (PT_JCKP_LEN bytes). */
size_t journal_anchor_message(const journal_checkpoint_rec_t *a, uint8_t msg[PT_JCKP_MSG_LEN]);
void journal_anchor_encode(const journal_checkpoint_rec_t *a, uint8_t out[PT_JCKP_LEN]);
/* PT_ECORRUPT (size) or PT_EVERSION (not an anchor). */
int journal_anchor_decode(const uint8_t *buf, size_t len, journal_checkpoint_rec_t *a,
                          pt_error_t *err);

/* Encodes cp as a format-2 checkpoint into out (PT_JCKP_LEN bytes). */
void journal_checkpoint_encode(const journal_checkpoint_rec_t *cp, uint8_t out[PT_JCKP_LEN]);

/* Decodes a checkpoint value of format 1 or 2 (cp->format says which); PT_ECORRUPT
 * (size wrong for its format) or PT_EVERSION (unknown format). */
int journal_checkpoint_decode(const uint8_t *buf, size_t len, journal_checkpoint_rec_t *cp,
                              pt_error_t *err);

#endif
