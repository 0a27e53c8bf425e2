/* bytes: fixed-width integers in byte buffers, both byte orders: big-endian for LMDB
 * keys (they sort as numbers), little-endian for record fields. The one copy of these
 * codecs (the journal, the adapters' spool). Header-only, no state. */
#ifndef PT_BYTES_H
#define PT_BYTES_H

#include <stdint.h>

/* The low n bytes of v at p, least significant first. */
static inline void
bytes_le_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t
bytes_le_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* 8 bytes, most significant first: memcmp order is numeric order. */
static inline void
bytes_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static inline uint64_t
bytes_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
