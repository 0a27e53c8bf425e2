/* clock: wall-clock and monotonic time. */
#include "clock.h"

#include <time.h>

static int64_t
to_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
pt_clock_wall_ms(void)
{
    return to_ms(CLOCK_REALTIME);
}

int64_t
pt_clock_mono_ms(void)
{
    return to_ms(CLOCK_MONOTONIC);
}

double
pt_clock_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
