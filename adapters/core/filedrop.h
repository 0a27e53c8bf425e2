/* filedrop: the file-drop ingress of an adapter. Watches an inbox folder on a libuv loop
 * (uv_fs_event plus a periodic scan, since events can be missed), takes a file only once
 * complete, claims it by rename into processing/, decodes it through a codec into records,
 * hands the good ones to the caller's spool callback, then moves it to done/ with
 * NAME.report.json, or to failed/ with NAME.error.json (docs/adapters/filedrop.md).
 * Owns its libuv handles and the table of files watched for stability; never owns the
 * spool, and no record outlives the spool callback it is lent to. */
#ifndef PT_FILEDROP_H
#define PT_FILEDROP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "codec_ops.h"
#include "err.h"
#include "spool.h"
#include "ptibus/v1/envelope.pb-c.h"

#define PT_FILEDROP_HASH_LEN 32                  /* SHA-256 of the file's bytes */
#define PT_FILEDROP_ID_MAX 64                    /* a derived message id, NUL included */
#define PT_FILEDROP_MAX_FILE (64u * 1024 * 1024) /* default max_file_size */
#define PT_FILEDROP_MAX_RECORDS 100000u          /* default max_records */
#define PT_FILEDROP_REPORT_VERSION 1             /* "formatVersion" of reports */
/* A native codec streams the file from its descriptor: its default limits are its own
 * (max_file_size and max_records still apply when they are set). */
#define PT_FILEDROP_MAX_NATIVE_FILE (UINT64_C(1) << 30)
#define PT_FILEDROP_MAX_NATIVE_RECORDS 100000000u
/* A staged file is spooled in chunks of this many records, each one committed. */
#define PT_FILEDROP_CHUNK 4096u

/* How the partner's system says that a file is complete. Under every convention, hidden
 * files (".x"), "*.tmp" files, "*.done" markers and anything not a regular file are
 * never taken. */
typedef enum filedrop_convention {
    PT_FILEDROP_RENAME = 0, /* written as NAME.tmp then renamed to NAME: NAME is taken */
    PT_FILEDROP_MARKER,     /* NAME is taken once NAME.done exists (then removed) */
    PT_FILEDROP_STABLE,     /* NAME is taken once its size and mtime held for stable_ms */
} filedrop_convention_t;

/* What became of one record. */
typedef enum filedrop_outcome {
    PT_FILEDROP_BAD = 0,  /* could not be decoded or validated: err says what and where */
    PT_FILEDROP_SPOOLED,  /* the spool took it */
    PT_FILEDROP_ALREADY,  /* the spool already had this id with this content (a resume) */
    PT_FILEDROP_REFUSED,  /* the spool refused it (e.g. same id, other content): err */
    PT_FILEDROP_NOT_SENT, /* a good record of an all-or-nothing file that had bad ones */
} filedrop_outcome_t;

/* One record of a file. line is 1-based (0 when the codec has no lines), column 1-based
 * or 0; index is the record's 0-based position in the file, stable for given bytes. */
typedef struct filedrop_record {
    size_t index;
    unsigned line;
    unsigned column;
    Ptibus__V1__Envelope *env; /* NULL when undecodable (BAD); owned by the module */
    filedrop_outcome_t outcome;
    pt_error_t err; /* for BAD and REFUSED: path and message, never a value */
} filedrop_record_t;

/* The file being processed, lent to the callbacks. */
typedef struct filedrop_file {
    const char *name; /* its name in processing/ (the dropped name, or with a suffix) */
    const char *path; /* processing/NAME */
    uint8_t hash[PT_FILEDROP_HASH_LEN];
    char hash_hex[2 * PT_FILEDROP_HASH_LEN + 1];
    bool resumed;    /* found in processing/ (a crash or a failed spool call) */
    int64_t mtime_s; /* its modification time: the created_at of records without one */
} filedrop_file_t;

/* ---- codecs: bytes of a file -> records ---- */

typedef struct filedrop_sink filedrop_sink_t;

/* Called by a codec once per record, in file order. Takes env (protobuf-c unpacked
 * layout, may be NULL); rec_err NULL for a good record, else what is wrong (env is then
 * freed if given). Returns 0, or PT_ETOOLARGE past max_records / -ENOMEM: the codec must
 * then stop and return that code. */
int filedrop_sink_record(filedrop_sink_t *sink, Ptibus__V1__Envelope *env, unsigned line,
                         unsigned column, const pt_error_t *rec_err);

/* A file format. decode gets the whole file (a leading UTF-8 BOM already removed, checked
 * to be UTF-8) and returns 0 when it could read it (some records may be bad), or a
 * negative code with err when the file cannot be read at all (it goes to failed/). */
typedef struct filedrop_codec {
    const char *name;   /* "json", "jsonl", or a partner format */
    const char *suffix; /* the file names it takes: ".json" */
    int (*decode)(const char *data, size_t len, filedrop_sink_t *sink, pt_error_t *err);
    /* A partner's native codec (core/codec_ops.h) instead of decode: it gets the file's
     * bytes as they are (no BOM, UTF-8 or blank check: its format says its encoding), the
     * file names it takes are its fnmatch(3) patterns, and its Envelopes are copied into
     * the records. native_cfg is passed to it. */
    const pt_codec_ops_t *native;
    pt_codec_config_t native_cfg;
} filedrop_codec_t;

/* A filedrop codec over a native one (suffix and decode unset). */
filedrop_codec_t filedrop_codec_native(const pt_codec_ops_t *ops, const pt_codec_config_t *cfg);

/* The generic codecs: one Envelope (proto3 JSON) per ".json" file; one per non-blank line
 * of a ".jsonl" file. */
extern const filedrop_codec_t filedrop_codec_json;
extern const filedrop_codec_t filedrop_codec_jsonl;

/* Runs codec over len bytes (BOM, UTF-8 and size checks included) and returns the
 * records in *recs (caller frees with filedrop_records_free()); *n their count. Returns
 * 0, or a negative code with err when the file cannot be read at all (*recs NULL). */
int filedrop_decode(const filedrop_codec_t *codec, const char *data, size_t len, size_t max_records,
                    filedrop_record_t **recs, size_t *n, pt_error_t *err);

/* Frees records from filedrop_decode and their envelopes; sets *recs to NULL. */
void filedrop_records_free(filedrop_record_t **recs, size_t n);

/* SHA-256 of what fd holds from its current offset to its end, read in large blocks
 * (OpenSSL's SHA-256, with the CPU's SHA instructions where it has them); the offset is
 * then at the end. Returns 0 or -errno. */
int filedrop_hash_fd(int fd, uint8_t out[PT_FILEDROP_HASH_LEN]);

/* The message id given to a record without one: "fd-" + 32 hex digits of the file's hash
 * + "-" + index. The same bytes give the same ids, so a file spooled again (a resume, or
 * a drop of the same content) is answered "duplicate" by the spool. */
void filedrop_record_id(const uint8_t hash[PT_FILEDROP_HASH_LEN], size_t index,
                        char out[PT_FILEDROP_ID_MAX]);

/* ---- the watcher ---- */

/* The caller's side. ctx is passed back to every call. */
typedef struct filedrop_ops {
    /* Has a file with this hash been spooled before? 1 yes (the file is reported as a
     * duplicate and nothing is sent), 0 no, negative: error (the file waits in
     * processing/ for the next scan). Not asked for a resumed file, whose records the
     * spool answers one by one. May be NULL (never seen). */
    int (*seen)(void *ctx, const filedrop_file_t *file);
    /* Spools the n good records (n may be 0) and the file's hash in one transaction and
     * commits it, setting each record's outcome to SPOOLED, ALREADY or REFUSED (with
     * err). Records and envelopes are borrowed until it returns. Returns 0 once durable;
     * negative: nothing was committed and the file waits in processing/ to be retried.
     * With options.spool, called once per chunk of the file (see there). */
    int (*spool)(void *ctx, const filedrop_file_t *file, filedrop_record_t *recs, size_t n);
    /* Optional: told once a file has left processing/, with its path in done/ or failed/. */
    void (*finished)(void *ctx, const filedrop_file_t *file, const char *dest, bool failed);
    /* Commits the turn with the caller's bookkeeping (the runtime's end of turn): called
     * between the steps of a staged file's rollback. Returns 0 once durable. Required
     * with options.spool. */
    int (*commit)(void *ctx);
} filedrop_ops_t;

typedef struct filedrop_options {
    const char *inbox; /* processing/, done/ and failed/ are made inside it */
    filedrop_convention_t convention;
    uint32_t stable_ms;   /* PT_FILEDROP_STABLE: quiet time before taking; 0 -> 5000 */
    uint32_t scan_ms;     /* periodic scan; 0 -> 2000 */
    bool all_or_nothing;  /* one bad record sends none of the file (it goes to failed/) */
    size_t max_file_size; /* 0 -> PT_FILEDROP_MAX_FILE */
    size_t max_records;   /* 0 -> PT_FILEDROP_MAX_RECORDS */
    bool no_validate;     /* skip validate_envelope (a caller that validates itself) */
    unsigned report_mode; /* of reports; 0 -> 0600 (0640 lets a group read them) */
    const filedrop_codec_t *const *codecs; /* NULL -> json and jsonl */
    size_t n_codecs;
    /* The spool that spool() writes to (borrowed). Set, a file is staged (spool.h): spool()
     * is called once per chunk of PT_FILEDROP_CHUNK records and commits each one, the last
     * call also finishes the stage, and a file that fails (malformed, truncated, a
     * failed call, all-or-nothing with a bad record, a crash) is rolled back, so that
     * nothing of it is ever sent. NULL: spool() gets the whole file in one call. */
    spool_t *spool;
} filedrop_options_t;

typedef struct filedrop filedrop_t;

/* Creates the folders (0700) if missing, checks they are folders on one filesystem and
 * writable, starts the watch and the scan timer on loop; the first scan (which resumes
 * processing/) runs on the loop's first turn. opt, ops and the codecs are borrowed for
 * the watcher's life. Returns 0 with *out set (caller owns it; free with
 * filedrop_close()), or a negative code with err naming the folder and what to fix. */
int filedrop_open(filedrop_t **out, uv_loop_t *loop, const filedrop_options_t *opt,
                  const filedrop_ops_t *ops, void *ctx, pt_error_t *err);

/* Stops watching and closes the handles; the memory goes in the last close callback, so
 * the loop must run once more. Never interrupts a file (processing is synchronous).
 * Accepts NULL and *fd == NULL; sets *fd to NULL. */
void filedrop_close(filedrop_t **fd);

/* Scans now: first processing/ (resumed or retried files), then the inbox. Returns the
 * number of files that left processing/, or a negative code when a folder cannot be
 * read. The timer and the fs events call it. */
int filedrop_scan(filedrop_t *fd);

#endif
