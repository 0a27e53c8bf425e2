/* ids: UUIDv7 generation with per-process monotonic ordering. */
#include "ids.h"
#include "clock.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "err.h"

#define RAND_B_BITS 62
#define RAND_B_MASK ((UINT64_C(1) << RAND_B_BITS) - 1)
#define RAND_A_MASK UINT64_C(0xfff)

/* The last id handed out. This is process-wide state on purpose (an exception to
 * "no mutable globals"): monotonic ordering across all callers needs one memory of
 * the last timestamp and counter. Guarded by the mutex. */
typedef struct ids_state {
    pthread_mutex_t lock;
    bool ready;
    uint64_t ms;     /* 48-bit timestamp of the last id */
    uint64_t rand_a; /* 12 bits: the high part of the 74-bit counter */
    uint64_t rand_b; /* 62 bits: the low part */
} ids_state_t;

static ids_state_t ids_state = {.lock = PTHREAD_MUTEX_INITIALIZER};

static uint64_t
now_ms(void)
{
    return (uint64_t)pt_clock_wall_ms();
}

static uint64_t
random_u64(void)
{
    uint64_t v;
    randombytes_buf(&v, sizeof v);
    return v;
}

/* Fresh random bits for a new millisecond; the counter's top bit starts at 0 so that
 * a burst within one millisecond cannot overflow it in practice. */
static void
reseed(ids_state_t *s, uint64_t ms)
{
    s->ms = ms;
    s->rand_a = random_u64() & (RAND_A_MASK >> 1);
    s->rand_b = random_u64() & RAND_B_MASK;
}

/* Adds a random step of 1..2^32 to the 74-bit counter; on overflow the timestamp
 * moves on by one millisecond (RFC 9562 6.2 allows it). */
static void
step(ids_state_t *s)
{
    uint64_t inc = (random_u64() & 0xffffffffu) + 1;
    s->rand_b += inc;
    if (s->rand_b <= RAND_B_MASK)
        return;
    s->rand_b &= RAND_B_MASK;
    if (++s->rand_a <= RAND_A_MASK)
        return;
    reseed(s, s->ms + 1);
}

static void
format_uuid(const ids_state_t *s, char out[PT_UUID_LEN + 1])
{
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(s->ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (s->rand_a >> 8));
    b[7] = (uint8_t)s->rand_a;
    b[8] = (uint8_t)(0x80 | (s->rand_b >> 56));
    for (int i = 9; i < 16; i++)
        b[i] = (uint8_t)(s->rand_b >> (8 * (15 - i)));
    static const char hex[] = "0123456789abcdef";
    char *p = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

int
ids_uuid7(char out[PT_UUID_LEN + 1])
{
    ids_state_t *s = &ids_state;
    pthread_mutex_lock(&s->lock);
    if (!s->ready && sodium_init() < 0) {
        pthread_mutex_unlock(&s->lock);
        return PT_EINTERNAL;
    }
    uint64_t ms = now_ms() & ((UINT64_C(1) << 48) - 1);
    if (!s->ready || ms > s->ms)
        reseed(s, ms);
    else
        step(s); /* same millisecond, or the clock went back: keep ordering */
    s->ready = true;
    format_uuid(s, out);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int64_t
ids_uuid7_time_ms(const char *id)
{
    if (id == NULL || strnlen(id, PT_UUID_LEN + 1) != PT_UUID_LEN)
        return -1;
    uint64_t ms = 0;
    int digits = 0;
    for (int i = 0; i < PT_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        int v = dash ? -1 : hex_value(id[i]);
        if (dash ? id[i] != '-' : v < 0)
            return -1;
        if (!dash && digits++ < 12)
            ms = ms << 4 | (uint64_t)v;
    }
    if (id[14] != '7' || hex_value(id[19]) < 8 || hex_value(id[19]) > 11)
        return -1;
    return (int64_t)ms;
}
