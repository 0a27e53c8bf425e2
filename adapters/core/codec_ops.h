/* codec_ops: the table of operations through which a partner's native-format codec plugs into
 * the adapter runtime (file drop and egress). A codec turns one partner file into records
 * (each an Envelope or a record error) and, optionally, Envelopes into a partner file. The
 * runtime never names a partner: it picks a codec by its name from the adapter config and
 * by the file patterns it takes. Owns nothing; codecs keep no global state.
 *
 * Contract between a decoder and the runtime:
 * - decode() reads the whole source, streaming it (never the whole file in memory), and
 *   calls back once per record, in file order. A record is either an Envelope (borrowed
 *   for the duration of the call: copy or pack it to keep it) or a record error saying
 *   where (line, element path or column) and what is wrong, never quoting the value. The
 *   Envelope's body is validated by the codec (validate_<family>: a body that fails is
 *   handed over as a record error), and the runtime does not validate it again; its
 *   message_id and created_at are left empty: the runtime derives the id from the file's
 *   content hash and the record's position, and stamps the time.
 * - decode() returns 0 when the file was read to its end (some records may be errors: the
 *   good ones go, unless the partner's policy is all-or-nothing). It returns a negative
 *   PT_E* code, with outcome->error saying where, when the file as a whole cannot be
 *   trusted (malformed, truncated, too large, wrong encoding): the runtime then discards
 *   every record already handed over for this file (it spools a file in chunks under a
 *   spool stage, which it rolls back) and moves the file to failed/. A snapshot codec
 *   (LHEO) relies on this: a truncated catalogue publishes nothing and withdraws nothing,
 *   and its store's writes during the file are rolled back with it.
 * - the callback may commit the spool's turn (a chunk): state a codec writes to the spool
 *   (the LHEO fingerprints) must go through it, never through a transaction of its own.
 * - the callback returns 0 to go on, or a negative code to stop; decode() then returns
 *   that code at once. */
#ifndef PT_ADAPTER_CODEC_H
#define PT_ADAPTER_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "ptibus/v1/envelope.pb-c.h"

/* Where a record error is and what is wrong. `where` is an element path
 * ("/Racine/InfosFoyerRSA[2]/Personne[1]/Identification/NIR") or a CSV column name, or
 * "" when the line says it all; line is 1-based (0: unknown). msg never holds a value of
 * the record (personal data). */
typedef struct pt_record_error {
    unsigned long line;
    char where[PT_ERROR_PATH_MAX];
    char msg[PT_ERROR_MSG_MAX];
} pt_record_error_t;

/* One decoded record: exactly one of env and error is non-NULL. index is the record's
 * 0-based position among the records of the file (errors included); line is where the
 * record starts (0: unknown). Everything is borrowed for the duration of the callback. */
typedef struct pt_record {
    uint64_t index;
    unsigned long line;
    const Ptibus__V1__Envelope *env;
    const pt_record_error_t *error;
} pt_record_t;

typedef int (*pt_record_fn)(void *ctx, const pt_record_t *rec);

/* The end-of-file outcome of decode(): counts, for a negative return the reason the whole
 * file is refused (error.line and error.msg; error.where may be an element path), and an
 * optional warning for the runtime's report. */
typedef struct pt_codec_outcome {
    uint64_t records; /* Envelopes handed over */
    uint64_t errors;  /* record errors handed over */
    pt_record_error_t error;
    /* A remark on the whole file that refuses nothing (e.g. a control count that does not
     * match the records): warning.msg is "" when there is none. */
    pt_record_error_t warning;
} pt_codec_outcome_t;

/* A source to decode: an open file descriptor (read from its current offset to EOF; the
 * caller keeps and closes it) and the file's name for messages (not a path to open). */
typedef struct pt_codec_source {
    int fd;
    const char *name;
} pt_codec_source_t;

/* A sink for encode(): writes len bytes; returns 0 or a negative code. */
typedef int (*pt_write_fn)(void *ctx, const void *data, size_t len);

/* Per-codec configuration given by the runtime (from the adapter config): a codec reads
 * only the keys it knows. `state` is codec-specific runtime state (the LHEO codec's
 * fingerprint store), NULL when the codec needs none. */
typedef struct pt_codec_config {
    const char *encoding; /* for encoders: "UTF-8" (default) or "windows-1252" */
    const char *schema;   /* XML codecs: an optional XSD checked at the door, or NULL */
    void *state;
} pt_codec_config_t;

typedef struct pt_codec_ops {
    const char *name;            /* "lheo", "cnaf_rsa", "ft_csv", ... */
    const char *const *patterns; /* NULL-terminated fnmatch(3) patterns ("*.xml") */
    /* Decodes src; see the contract above. Required. */
    int (*decode)(const pt_codec_config_t *cfg, const pt_codec_source_t *src, pt_record_fn fn,
                  void *ctx, pt_codec_outcome_t *outcome);
    /* Encodes count Envelopes into one partner file written through write. Optional
     * (NULL when the partner only sends). Returns 0, or PT_EINVALID with err naming the
     * envelope (its index) and field when an Envelope cannot be expressed. */
    int (*encode)(const pt_codec_config_t *cfg, const Ptibus__V1__Envelope *const *envs,
                  size_t count, pt_write_fn write, void *ctx, pt_error_t *err);
} pt_codec_ops_t;

#endif
