/* records: what the codec tests share: a recorder for pt_record_fn that keeps each
 * Envelope (stamped with a message id and a creation time, as the runtime will, and
 * checked with the broker's validation rules) and each record error, in fixed arrays. */
#ifndef PT_RECORDS_H
#define PT_RECORDS_H

#include <stddef.h>

#include "core/codec_ops.h"

typedef struct got {
    size_t n, nerr;
    Ptibus__V1__Envelope *env[16];
    pt_record_error_t errors[16];
} got_t;

/* pt_record_fn: keeps rec in ctx (a got_t); fails the test on an invalid Envelope. */
int collect(void *ctx, const pt_record_t *rec);

/* Frees what collect kept and clears g. */
void got_free(got_t *g);

#endif
