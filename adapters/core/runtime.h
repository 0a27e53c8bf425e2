/* runtime: the adapter daemon's main loop, shared by every partner's binary. One libuv
 * loop drives the broker link (uplink), the HTTP API, the file drop and the egress
 * around one spool; each loop turn ends by committing the spool once (group commit) and
 * only then answers the HTTP requests that spooled, sends the DeliverAcks of what was
 * handed over and publishes what became durable. SIGTERM and SIGINT stop it cleanly
 * (no new input, what is in flight answered or left spooled, the spool committed);
 * sd_notify READY, STOPPING and WATCHDOG when run by systemd. A partner's main.c gives
 * a table of operations (its program name and native codecs) and never sees the loop;
 * the runtime never names a partner. Owns everything it opens; see docs/adapters.md. */
#ifndef PT_RUNTIME_H
#define PT_RUNTIME_H

#include "codec_ops.h"
#include "spool.h"

typedef struct runtime_ops {
    const char *program; /* "ptibus-adapter-caf": logs, Hello, --help */
    const char *summary; /* one line for --help */
    /* The native codecs built into this daemon, NULL-terminated (json and jsonl are
     * always there); the config's inbox.codecs must name codecs from this list. */
    const pt_codec_ops_t *const *codecs;
    /* Optional: a codec's runtime state (pt_codec_config_t.state), e.g. a snapshot
     * codec's fingerprint store kept in the spool (writes go to the spool's turn, so
     * they commit with the file's records). NULL when it needs none. */
    void *(*codec_state)(const pt_codec_ops_t *codec, spool_t *spool);
    void (*codec_state_free)(const pt_codec_ops_t *codec, void *state);
} runtime_ops_t;

/* Parses the command line (--config FILE, --check-config, --fingerprint, --log-level L,
 * --help, --version), runs the daemon until a stop signal, and returns the process's
 * exit status: 0, 1 (runtime failure), 2 (usage) or 3 (bad configuration). */
int runtime_main(const runtime_ops_t *ops, int argc, char **argv);

#endif
