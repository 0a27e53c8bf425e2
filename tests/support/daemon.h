/* daemon: a real ptibusd for integration tests. It makes a private directory with
 * fresh keys for the broker and the test partners, writes a broker.yaml, starts the
 * daemon as a child process on a free 127.0.0.1 port, waits for its systemd READY=1
 * notification, and stops or kill -9s it on demand. */
#ifndef PT_DAEMON_H
#define PT_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "client.h"

typedef struct td_net_options {
    const char *journal_max_size;     /* e.g. "1MiB"; NULL = default */
    const char *journal_initial_size; /* NULL = default */
    const char *max_message_size;     /* NULL = default */
    const char *ack_timeout;          /* NULL = 1s */
    const char *max_attempts;         /* NULL = 3 */
    const char *extra_limits;         /* more `limits:` lines ("  key: value\n"), or NULL */
    const char *extra_journal;        /* more `journal:` lines ("  key: value\n"), or NULL */
    const char *extra_config;         /* more top-level sections (e.g. `retention:`), or NULL */
    /* The administrator key keys/admin.pub as {name: admin_name, public_key_file}; NULL:
     * the deprecated inline form (named by the key's digest). */
    const char *admin_name;
} td_net_options_t;

typedef struct td_net {
    char *dir;
    int port;
    char endpoint[64];
    char config[4200];
    char journal_dir[4200]; /* <dir>/journal; may be changed before td_net_configure() */
    char admin_endpoint[64];
    int metrics_port;
    pid_t pid;
    uint8_t server_pk[32];
    td_net_options_t opts; /* of the last td_net_configure (its strings borrowed) */
    /* More environment for the daemon's next starts ("NAME=value", NULL-terminated;
     * borrowed), e.g. LD_PRELOAD for a fault-injection shim; NULL = none. */
    const char *const *env;
    int notify_fd; /* td_broker_spawn's notification socket, -1 when none */
} td_net_t;

/* Test partners with keys in the network: departement, pole_emploi, caf, msa, region,
 * ml_nord. "intruder" also has a key pair, unknown to the broker. */
extern const char *const td_partners[];

/* Creates the directory, keys and configuration (opts may be NULL). Aborts on error. */
void td_net_init(td_net_t *n, const char *tag, const td_net_options_t *opts);

/* Rewrites broker.yaml with other options (for the next start). */
void td_net_configure(td_net_t *n, const td_net_options_t *opts);

/* Stops the broker if running and removes the directory. */
void td_net_fini(td_net_t *n);

/* Starts ptibusd and waits (up to 10 s) for READY=1. With PTIBUS_TEST_WRAPPER set in the
 * environment (a command line, words separated by spaces, e.g. "valgrind -q"), the broker
 * runs under that command and may take up to 120 s. Returns 0, or -1 if it exited or
 * did not become ready (its log is then printed). */
int td_broker_start(td_net_t *n);

/* Starts ptibusd without waiting for READY=1 (a standby waits for the journal's lock):
 * its notifications stay readable with td_broker_wait_notify. 0, or -1. */
int td_broker_spawn(td_net_t *n);
/* Waits up to ms for a notification of the broker td_broker_spawn started that contains
 * what ("READY=1", "STATUS=standby"). 0, or -1 (timeout, or the broker exited: n->pid is
 * 0 then). */
int td_broker_wait_notify(td_net_t *n, const char *what, int ms);
/* Makes n the same service as from, on its own ports and folder: from's keys (broker,
 * journal, person index, partners, admin) copied over n's and the config rewritten with
 * opts. For two brokers on one journal (set journal_dir before). Aborts on error. */
void td_net_share_keys(td_net_t *n, const td_net_t *from, const td_net_options_t *opts);
/* SIGTERM and wait; returns the exit status (or -1). */
int td_broker_stop(td_net_t *n);

/* SIGKILL and reap, no clean-up of any kind. */
void td_broker_kill9(td_net_t *n);

/* Connects as a partner with its keys (curve = false connects without CURVE). */
int td_client_open(td_net_t *n, const char *partner, bool curve, client_t **out);

/* Connects with initial_credit and says Hello (asserting the answer). */
int td_client_session(td_net_t *n, const char *partner, uint32_t initial_credit, client_t **out);

/* Connects to the admin socket with the key pair keys/<keyname>.{key,pub} (the
 * configured administrator is "admin"; a partner's name tests refusal). */
int td_admin_open(td_net_t *n, const char *keyname, client_t **out);

/* Path of the broker's log (stderr) in the test directory, and whether it contains s. */
bool td_log_contains(td_net_t *n, const char *s);

/* How many times s occurs in the broker's log. */
int td_log_count(td_net_t *n, const char *s);

/* GET /metrics of the broker; returns the HTTP status and the body (caller frees). */
long td_metrics_scrape(td_net_t *n, char **text);

/* The value of the sample line starting with `series` ("name{labels}"), or -1. */
double td_metric_value(const char *text, const char *series);

#endif
