/* driver: the scenarios shared by every system's benchmark program (ptibus and its
 * peers). A system plugs in through a table of operations (connect a publisher, send
 * one message, collect confirmations, consume and acknowledge deliveries); the driver
 * paces, bounds every loop in count and time, measures latencies and prints one JSON
 * line per scenario on stdout. A benchmark is a program, never a test. */
#ifndef PT_BENCH_DRIVER_H
#define PT_BENCH_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD 1024
#define BENCH_ID_DIGITS 20

typedef struct bench_opts {
    const char *scenario; /* sync | window | multi | e2e | load */
    const char *label;    /* system label in the results, e.g. "rabbitmq-quorum" */
    uint64_t count;       /* most messages per publisher */
    double seconds;       /* longest publishing time */
    unsigned window;      /* messages in flight per publisher */
    unsigned threads;     /* publishers at once */
    double rate;          /* load: offered messages per second (0 = as fast as possible) */
    /* system-specific connection settings */
    const char *endpoint; /* ptibus endpoint, or host */
    int port;
    const char *dir;    /* ptibus: key directory */
    const char *target; /* queue/stream name or kind (rabbitmq: classic | quorum) */
    const char *run_id; /* distinguishes message ids between runs on one server */
    unsigned persons;   /* messages are about this many persons (bench_nir), 1..BENCH_PERSONS */
} bench_opts_t;

/* One system's operations. ids are the driver's message numbers; every call returns
 * 0 (or a count) on success and a negative value on failure, after printing why. */
typedef struct bench_ops {
    const char *system;
    /* Opens publisher number idx (0..threads-1); *conn is owned by the driver. */
    int (*pub_open)(const bench_opts_t *o, unsigned idx, void **conn);
    /* Sends message id without waiting for its confirmation. */
    int (*publish)(void *conn, uint64_t id);
    /* Waits up to timeout_ms (0: do not wait) for confirmations; stores the ids
     * confirmed durable in ids (at most max) and returns how many. */
    int (*acks)(void *conn, int timeout_ms, uint64_t *ids, size_t max);
    void (*pub_close)(void *conn);
    /* e2e: a consumer that acknowledges each delivery; NULL when not supported. */
    int (*sub_open)(const bench_opts_t *o, void **conn);
    int (*deliveries)(void *conn, int timeout_ms, uint64_t *ids, size_t max);
    void (*sub_close)(void *conn);
} bench_ops_t;

/* Parses the common options (--scenario, --count, --seconds, --window, --threads,
 * --rate, --endpoint, --port, --dir, --target, --label, --run-id) into o. Returns 0,
 * or -1 after printing usage. */
int bench_parse(int argc, char **argv, bench_opts_t *o);

/* Runs o->scenario with ops, prints its JSON line. Returns 0, or 1 when the harness
 * failed (connection, refused message, nothing confirmed in time). */
int bench_run(const bench_ops_t *ops, const bench_opts_t *o);

/* Fills buf (BENCH_PAYLOAD bytes) with a payload whose first BENCH_ID_DIGITS bytes
 * are id in decimal; bench_payload_id reads it back (UINT64_MAX when malformed). */
void bench_payload(uint8_t *buf, uint64_t id);
uint64_t bench_payload_id(const void *buf, size_t len);

/* The persons the messages are about: by default BENCH_PERSONS valid NIRs (a
 * département's RSA caseload is of that order; --persons N takes the first N), all of
 * the sample person's sex and birth month, spread over communes and order numbers.
 * bench_nir writes the NIR (15 characters with its key, NUL-terminated) of message
 * number id: consecutive messages concern different persons. */
#define BENCH_PERSONS 50000
void bench_nir(char out[16], uint64_t id, unsigned persons);

/* Monotonic nanoseconds. */
uint64_t bench_now_ns(void);

#endif
