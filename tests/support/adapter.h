/* adapter: a real partner adapter daemon (ptibus-adapter-*) for integration tests, in
 * the directory of a td_net_t test network (its keys, its broker). It writes the
 * adapter's YAML config (HTTP API on a free 127.0.0.1 port with a bearer token, inbox,
 * outbox or webhook egress), starts the binary as a child process, waits for /healthz,
 * and stops or kill -9s it on demand; helpers POST JSON and count outbox files. */
#ifndef PT_TEST_ADAPTER_H
#define PT_TEST_ADAPTER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "daemon.h"
#include "ptibus/v1/envelope.pb-c.h"

typedef struct td_adapter_options {
    const char *binary;       /* "departement", "mission-locale"...; NULL: from the partner */
    const char *webhook_url;  /* egress: webhook to this URL (else outbox) */
    const char *extra_inbox;  /* more `inbox:` lines ("  key: value\n"), or NULL */
    const char *codecs;       /* inbox codecs, NULL: "[json, jsonl]" */
    bool pull;                /* egress: pull (GET /v1/inbox) */
    const char *spool_dir;    /* NULL: <adapter dir>/spool */
    const char *spool_max;    /* spool.max_size, e.g. "1MiB"; NULL: the default */
    const char *extra_egress; /* more lines of an outbox egress ("  key: value\n") */
    /* broker.endpoints instead of the net's one endpoint, as a YAML flow list
     * ("[\"tcp://...\", \"tcp://...\"]"), or NULL */
    const char *broker_endpoints;
    const char *extra_broker; /* more `broker:` lines ("  failover_after: 1s\n"), or NULL */
    unsigned credit;          /* broker.credit; 0: 64 */
} td_adapter_options_t;

typedef struct td_adapter {
    td_net_t *net;
    char partner[32];
    char binary[64];
    char dir[4200]; /* <net dir>/adapter-<partner> */
    char config[4300];
    char outbox[4300];
    char inbox[4300];
    char log[4300];
    char token[64];
    int http_port;
    pid_t pid;
    /* More environment for the next starts ("NAME=value", NULL-terminated; borrowed),
     * e.g. LD_PRELOAD of the power-cut shim; NULL = none. */
    const char *const *env;
} td_adapter_t;

#define TD_WEBHOOK_SECRET "test-webhook-secret-0123456789"

/* Writes the config (opts may be NULL). Aborts on error. */
void td_adapter_init(td_adapter_t *a, td_net_t *n, const char *partner,
                     const td_adapter_options_t *opts);

/* Starts the daemon and waits (10 s) for /healthz. 0, or -1 (its log printed). */
int td_adapter_start(td_adapter_t *a);
/* SIGTERM and wait: the exit status, or -1. */
int td_adapter_stop(td_adapter_t *a);
void td_adapter_kill9(td_adapter_t *a);

/* Whether the daemon has ended (reaped, pid cleared; *status gets waitpid's status). */
bool td_adapter_exited(td_adapter_t *a, int *status);

/* Waits up to ms for /readyz to answer 200 (the broker session up). */
bool td_adapter_wait_ready(td_adapter_t *a, int ms);

/* An HTTP request to the adapter's API with its token: returns the status (0 when the
 * connection failed); *body (may be NULL) gets the answer (caller frees). */
long td_adapter_http(td_adapter_t *a, const char *method, const char *path, const char *data,
                     size_t len, char **body);

/* The same with one more request header ("Prefer: wait=5"), or NULL; *resp_headers
 * (may be NULL) gets the answer's header lines (caller frees). */
long td_adapter_http_h(td_adapter_t *a, const char *method, const char *path, const char *data,
                       size_t len, const char *header, char **body);
long td_adapter_http_hh(td_adapter_t *a, const char *method, const char *path, const char *data,
                        size_t len, const char *header, char **body, char **resp_headers);

/* POST /v1/messages of the proto3 JSON of env. */
long td_adapter_post_env(td_adapter_t *a, const Ptibus__V1__Envelope *env, char **body);

/* Number of delivery files (*.json) in the outbox; whether one for message id exists. */
size_t td_outbox_count(const td_adapter_t *a);
bool td_outbox_has(const td_adapter_t *a, const char *message_id);
/* Waits up to ms for the outbox to hold at least n files; returns the count. */
size_t td_outbox_wait(const td_adapter_t *a, size_t n, int ms);

/* Drops a file into the inbox the documented way (NAME.tmp, then rename). */
void td_adapter_drop(const td_adapter_t *a, const char *name, const void *data, size_t len);

#endif
