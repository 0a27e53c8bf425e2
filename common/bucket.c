/* bucket: token buckets for the quotas (see bucket.h). */
#include "bucket.h"

void
bucket_init(pt_bucket_t *b, double rate, double burst, int64_t now_ms)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->last_ms = now_ms;
}

bool
bucket_take(pt_bucket_t *b, double n, int64_t now_ms)
{
    if (b->rate <= 0)
        return true;
    if (now_ms > b->last_ms) {
        b->tokens += b->rate * (double)(now_ms - b->last_ms) / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens < n)
        return false;
    b->tokens -= n;
    return true;
}
