/* outbox: the default egress of an adapter. Writes one file per delivered message into
 * the partner's outbox folder, atomically (tmp, fsync, rename, fsync of the folder), under
 * a deterministic name that sorts by arrival, so that a write again after a crash finds
 * its file and changes nothing; optionally one file per Receipt of the partner's own
 * messages in receipts/. Owns the folder paths only; never owns the spool, and the caller
 * acknowledges to the broker (docs/adapters/outbox.md: names, JSON shape, crash matrix). */
#ifndef PT_OUTBOX_H
#define PT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "err.h"
#include "ptibus/v1/protocol.pb-c.h"
#include "spool.h"

#define PT_OUTBOX_FORMAT_VERSION 1        /* "formatVersion" of every file written */
#define PT_OUTBOX_FILE_MODE 0640          /* default mode of the files */
#define PT_OUTBOX_DIR_MODE 0700           /* default mode of the folders created */
#define PT_OUTBOX_MAX_ENVELOPE (4u << 20) /* default limit on a packed Envelope */
#define PT_OUTBOX_REPLAYS_MAX 9999        /* replay files of one seq */
#define PT_OUTBOX_NAME_MAX 255            /* a file name, NUL excluded */
#define PT_OUTBOX_RECEIPTS_DIR "receipts"
#define PT_OUTBOX_BATCH_MAX 256 /* files staged at once with batch_sync (one fd each) */

typedef struct outbox outbox_t;

typedef struct outbox_options {
    const char *dir;     /* the outbox folder; created (dir_mode) if missing */
    mode_t file_mode;    /* 0: PT_OUTBOX_FILE_MODE, exactly (the umask does not apply) */
    mode_t dir_mode;     /* 0: PT_OUTBOX_DIR_MODE */
    bool receipts;       /* write receipts into dir/receipts/ */
    size_t max_envelope; /* 0: PT_OUTBOX_MAX_ENVELOPE */
    /* The files are staged (written to their tmp, write-back started) and made durable
     * together by outbox_sync(), one wait for the disk per batch instead of one per file
     * (the runtime syncs before the commit that precedes the acks). A staged file appears
     * under its name at outbox_sync; more than PT_OUTBOX_BATCH_MAX staged commit early. */
    bool batch_sync;
    /* The same batches, synced on a thread of the outbox's own (adapters/core/flusher) so
     * that the loop never waits for them: outbox_flush hands the staging batch over,
     * flushed(flushed_arg) is called from that thread when it is done (uv_async_send),
     * outbox_collect then takes the result on the loop thread, and a result's `gen` says
     * when its file is durable (outbox_durable). The acks wait for that. */
    bool async_sync;
    void (*flushed)(void *arg);
    void *flushed_arg;
} outbox_options_t;

/* One delivery, everything borrowed for the call (the broker's Deliver, plus the time the
 * adapter received it). */
typedef struct outbox_delivery {
    uint64_t seq;
    uint32_t attempt;
    bool redelivery;
    bool replay;
    const char *message_id; /* NULL or "": the envelope's */
    const char *sender;
    const uint8_t *envelope; /* packed ptibus.v1.Envelope */
    size_t envelope_len;
    int64_t received_at_ms; /* Unix ms; 0: "receivedAt" omitted */
} outbox_delivery_t;

typedef enum outbox_status {
    OUTBOX_WRITTEN = 1, /* the file is there now: acknowledge OK */
    OUTBOX_ALREADY,     /* the same delivery's file was there already: acknowledge OK */
    OUTBOX_SEEN,        /* outbox_handle: the spool says handed over: acknowledge OK */
    OUTBOX_REFUSED,     /* refused for good: acknowledge CANNOT_PROCESS with err.msg */
    OUTBOX_RETRY,       /* failed for now (disk full, folder gone...): no ack, retry later */
    OUTBOX_SKIPPED,     /* a receipt while receipts are not configured: nothing to do */
} outbox_status_t;

typedef struct outbox_result {
    outbox_status_t status;
    uint64_t gen; /* async_sync, WRITTEN / ALREADY: the generation the file's durability
                   * waits for (outbox_durable); 0: durable now */
    char name[PT_OUTBOX_NAME_MAX + 1]; /* the file's name in its folder ("" if none) */
} outbox_result_t;

/* Opens the outbox: creates the folder (and receipts/) with dir_mode when missing, checks
 * that it is a directory writable by us and not writable by others (PT_ECONFIG, err naming
 * the folder and the fix), and removes the tmp files a crash left in them. Caller owns
 * *out; free with outbox_close. */
int outbox_open(const outbox_options_t *opts, outbox_t **out, pt_error_t *err);

/* Accepts NULL; sets *o to NULL. */
void outbox_close(outbox_t **o);

/* Writes the file of one delivery: "<seq, 20 digits>-<message id>.json", or for a replay
 * "<seq>-<id>.replay-<n>.json" with the next free n (a redelivered replay whose latest
 * file is the same delivery finds it). Returns 0 with WRITTEN or ALREADY; otherwise a
 * negative code with REFUSED (the envelope cannot be decoded or rendered, or the name is
 * taken by other content or by something not a regular file: left untouched) or RETRY
 * (an I/O failure: nothing of the new file is left). err says what and where, never a
 * value of the message. res is always filled. */
int outbox_write(outbox_t *o, const outbox_delivery_t *d, outbox_result_t *res, pt_error_t *err);

/* The inbound sequence of docs/adapters/outbox.md with the spool: a delivery whose seq is
 * marked handed over is SEEN (unless a replay); else outbox_write, then, when the file is
 * there, the seq is marked in the spool's turn. The caller commits the turn, then
 * acknowledges. Returns as outbox_write (a spool failure: RETRY). */
int outbox_handle(outbox_t *o, spool_t *s, const outbox_delivery_t *d, int64_t now_ms,
                  outbox_result_t *res, pt_error_t *err);

/* The text of a delivery's file (also the body of a webhook and an entry of the pull
 * inbox): {"formatVersion", "delivery": facts, "envelope": proto3 JSON}, indented, with a
 * final newline; the same delivery always gives the same bytes. Caller frees *text. PT_E*
 * codes mean the envelope itself is at fault (max_envelope 0: PT_OUTBOX_MAX_ENVELOPE). */
int outbox_render(const outbox_delivery_t *d, size_t max_envelope, char **text, size_t *len,
                  pt_error_t *err);

/* The delivery facts of a Deliver frame (borrowed from dv). */
outbox_delivery_t outbox_delivery_of(const Ptibus__V1__Deliver *dv, int64_t received_at_ms);

/* The JSON document of one delivery, as outbox_write puts it in its file and the pull
 * inbox serves it: {"formatVersion", "delivery": {seq, sender, receivedAt, attempt,
 * replay}, "envelope": proto3 JSON}. max_envelope 0: PT_OUTBOX_MAX_ENVELOPE. Returns 0
 * and *out (caller owns it: json_decref); a PT_E* code when the envelope cannot be
 * decoded or rendered (refused for good), -ENOMEM. */
int outbox_delivery_json(const outbox_delivery_t *d, size_t max_envelope, json_t **out,
                         pt_error_t *err);

/* With batch_sync: makes the files staged since the last call durable under their names
 * (atomicfile_batch_commit), so that they are there after a power cut. Call it before
 * acknowledging them. Returns 0 or -errno (then acknowledge nothing: the files not yet in
 * place are removed, and the broker delivers them again). */
int outbox_sync(outbox_t *o, pt_error_t *err);

/* Writes dir/name (a delivery in a partner format, beside its JSON file) with the file
 * mode, replacing what is there: staged with batch_sync or async_sync (*gen: as a result's
 * gen), else atomically at once (*gen 0). 0 or -errno. */
int outbox_write_file(outbox_t *o, const char *name, const void *data, size_t len, uint64_t *gen,
                      pt_error_t *err);

/* With async_sync: hands the staging batch to the flusher when it is idle (else the next
 * call does), never waits. Without: outbox_sync. 0 or -errno. */
int outbox_flush(outbox_t *o, pt_error_t *err);

/* With async_sync, on the loop thread once flushed was called: takes the result of the
 * batch in flight. Returns its generation (0: none done), a failure logged and in err. */
uint64_t outbox_collect(outbox_t *o, pt_error_t *err);

/* Whether the files of generation gen are durable; *failed when their batch failed (they
 * are gone: do not acknowledge). Without async_sync, always true. */
bool outbox_durable(const outbox_t *o, uint64_t gen, bool *failed);

/* With async_sync: whether a batch is in flight. */
bool outbox_flushing(const outbox_t *o);

/* With batch_sync: how many files wait for outbox_sync (0 without batch_sync). */
size_t outbox_staged(const outbox_t *o);

/* Writes receipts/<seq>-<recipient>-<kind>.json ({"formatVersion", "receipt": proto3
 * JSON}). SKIPPED when receipts are off; else as outbox_write (the same receipt again:
 * ALREADY). */
int outbox_write_receipt(outbox_t *o, const Ptibus__V1__Receipt *r, outbox_result_t *res,
                         pt_error_t *err);

/* Writes into out (cap bytes) the file-name form of a message id: [A-Za-z0-9._-] kept,
 * every other byte as %XX (so two ids never share a form). Returns its length, or -1 when
 * it does not fit. */
int outbox_sanitize(const char *id, char *out, size_t cap);

#endif
