/* clock: the two clocks ptibus reads. Wall-clock milliseconds for what is recorded
 * (journal records, ids, receipts, queue ages); monotonic milliseconds for what is
 * measured or waited for (deadlines, timeouts, latencies). */
#ifndef PT_CLOCK_H
#define PT_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds (CLOCK_REALTIME). */
int64_t pt_clock_wall_ms(void);

/* Milliseconds from an arbitrary origin that never goes back (CLOCK_MONOTONIC). */
int64_t pt_clock_mono_ms(void);

/* Seconds, with nanosecond resolution, on the monotonic clock: for latencies. */
double pt_clock_mono_s(void);

#endif
