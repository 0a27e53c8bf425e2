/* bucket: a token bucket, the rate limit of the quotas (per-partner message rate and
 * journal bytes, handshakes, journaled refusals). It fills at `rate` tokens per second
 * up to `burst`, and starts full. A plain value: no allocation, not thread-safe. */
#ifndef PT_BUCKET_H
#define PT_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pt_bucket {
    double rate;   /* tokens per second; 0 = unlimited */
    double burst;  /* capacity */
    double tokens; /* available now */
    int64_t last_ms;
} pt_bucket_t;

/* A full bucket filling at rate per second up to burst (rate 0: never empty). */
void bucket_init(pt_bucket_t *b, double rate, double burst, int64_t now_ms);

/* Takes n tokens if there are that many at now_ms (monotonic ms); false leaves the
 * bucket as it was. */
bool bucket_take(pt_bucket_t *b, double n, int64_t now_ms);

#endif
