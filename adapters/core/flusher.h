/* flusher: makes batches of staged files durable (atomicfile_batch_sync: fdatasync each,
 * rename, one fsync per folder) on a thread of its own, so that an adapter's loop never
 * waits for the disk for its outbox files: it goes on answering POSTs and taking
 * deliveries while the previous turn's files are synced. One batch at a time. Owns its
 * thread; the batch handed over is the flusher's (read-only for the loop: its paths) until
 * flusher_collect gives it back. The loop is told a batch is done by notify, called from
 * the flusher's thread (uv_async_send is what it is for). Everything else: loop thread. */
#ifndef PT_FLUSHER_H
#define PT_FLUSHER_H

#include <stdbool.h>
#include <stdint.h>

#include "atomicfile.h"
#include "err.h"

typedef struct flusher flusher_t;

/* Called on the flusher's thread when a batch is done: must be thread-safe. */
typedef void (*flusher_notify_fn)(void *arg);

/* Starts the thread. Returns 0 with *out, or -errno. Caller owns *out. */
int flusher_start(flusher_notify_fn notify, void *arg, flusher_t **out, pt_error_t *err);

/* Waits for the batch in flight (then clears it: its files in place stay, the others are
 * removed) and stops the thread. Accepts NULL; sets *f NULL. */
void flusher_stop(flusher_t **f);

/* Generations: each batch handed over gets the next one (1, 2, ...); a file's delivery may
 * be acknowledged once its batch's generation is durable. */
typedef enum flusher_state {
    FLUSHER_PENDING = 0, /* handed over (or to be) and not done */
    FLUSHER_DURABLE,     /* synced: its files are in place and durable */
    FLUSHER_FAILED,      /* its sync failed: its files not renamed were removed */
} flusher_state_t;

/* Hands b over (non-empty): returns its generation, or 0 while a batch is in flight or not
 * yet collected (nothing handed). */
uint64_t flusher_hand(flusher_t *f, atomicfile_batch_t *b);

/* The generation the next batch handed over will get: the staging batch's. */
uint64_t flusher_next_gen(const flusher_t *f);

/* The generation in flight or waiting to be collected, 0 when none; and its batch (read
 * its paths only), NULL when none. */
uint64_t flusher_busy_gen(const flusher_t *f);
const atomicfile_batch_t *flusher_batch(const flusher_t *f);

/* Blocks until the batch in flight is done (the loop waits: the staging batch is full). */
void flusher_wait(flusher_t *f);

/* When the batch handed over is done: returns its generation (now DURABLE or FAILED), gives
 * the batch back cleared in *b, err saying what failed. 0 while it runs or when none. */
uint64_t flusher_collect(flusher_t *f, atomicfile_batch_t **b, pt_error_t *err);

/* The state of generation gen (0: DURABLE, nothing to wait for). */
flusher_state_t flusher_state(const flusher_t *f, uint64_t gen);

#endif
