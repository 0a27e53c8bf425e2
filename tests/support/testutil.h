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

/* The partners of deploy/broker.yaml (the Meuse example), NULL-terminated. */
extern const char *const tu_deploy_partners[];

/* Copies deploy/broker.yaml into a fresh temp directory and generates every key file it
 * names there (keys/<partner>.{key,pub}, keys/broker.{key,pub,sign,sign.pub},
 * keys/person_index.hmac). Returns the directory (remove with tu_rmtree()); config gets
 * the copied file's path. Aborts the test on failure. */
char *tu_deploy_example(const char *tag, char *config, size_t cap);

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);

/* Whether this build runs under AddressSanitizer: a process's anonymous memory is then
 * mostly the sanitizer's own (shadow, quarantine), and memory bounds are not checked. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_ASAN 1
#endif
#endif
#ifndef TU_ASAN
#define TU_ASAN 0
#endif

/* The RssAnon of a process in KiB (/proc/PID/status), or -1. */
long tu_rss_anon_kib(int pid);

/* Milliseconds from a monotonic clock. */
int64_t tu_now_ms(void);

#endif
