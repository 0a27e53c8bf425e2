/* ids: time-ordered unique message ids, UUIDv7 (RFC 9562) as 36-char lowercase text.
 * Randomness comes from libsodium. Ids made by one process are strictly increasing
 * (RFC 9562 section 6.2, method 2: within one millisecond the 74 random bits are
 * incremented by a random step), so they sort in creation order. */
#ifndef PT_IDS_H
#define PT_IDS_H

#include <stdint.h>

#define PT_UUID_LEN 36

/* Writes a new UUIDv7 and its NUL into out. Thread-safe. Returns 0, or PT_EINTERNAL
 * when libsodium cannot be initialised. */
int ids_uuid7(char out[PT_UUID_LEN + 1]);

/* The Unix time in milliseconds stored in a UUIDv7 (hex digits of either case), or
 * -1 when id is NULL or not a well-formed UUID of version 7 and variant 10. */
int64_t ids_uuid7_time_ms(const char *id);

#endif
