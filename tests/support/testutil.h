/* testutil: helpers shared by the test programs: a private temporary directory
 * per test, file reading, free loopback ports, and a monotonic clock. */
#ifndef PT_TESTUTIL_H
#define PT_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Creates a fresh directory under $TMPDIR (or /tmp) and returns its path; the
 * caller owns it and removes it with tu_rmtree(). Aborts the test on failure. */
char *tu_tmpdir(const char *tag);

/* Removes a directory tree and frees path; accepts NULL. */
void tu_rmtree(char *path);

/* Reads a whole file; caller owns *out (NUL-terminated too). Returns 0 or -errno. */
int tu_read_file(const char *path, uint8_t **out, size_t *len);

/* Writes a whole file (mode 0600). Returns 0 or -errno. */
int tu_write_file(const char *path, const void *data, size_t len);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);

/* Milliseconds from a monotonic clock. */
int64_t tu_now_ms(void);

#endif
