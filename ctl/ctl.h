/* ctl: what the command groups of ptibusctl share: the command table's shape, the
 * connection options of the partner and admin commands, exit codes, and the helpers of
 * args.c (strict number parsing) and output.c (escaping, times, errors). ptibusctl uses
 * only the journal and common/ (the contract and the clients), never the broker's loop. */
#ifndef PT_CTL_H
#define PT_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "pt_limits.h"

/* Exit codes: 0 done, 1 failed (what failed is on stderr), 2 usage error. */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

typedef int (*command_fn)(int argc, char **argv);

typedef struct command {
    const char *name;
    command_fn run;
    const char *usage;
} command_t;

/* Where and as whom a partner or admin command connects. */
typedef struct publish_opts {
    const char *endpoint;
    const char *server_pub;
    const char *key;
    const char *pub;
    int timeout_ms;
} publish_opts_t;

/* ---- output.c ---- */

/* Prints "ptibusctl: <err->msg>" on stderr; returns CTL_FAILED. */
int fail(const pt_error_t *err);

/* Partner-written text escaped for the terminal (no line break, tab or escape sequence
 * reaches it); a few rotating static buffers, so one printf may take several. */
const char *esc(const char *s);

/* ---- args.c ---- */

/* Parses a whole decimal number in min..max for the option named opt; on anything else
 * (empty, sign, trailing characters, overflow) prints what is wrong and returns false. */
bool args_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* ---- partner_cmd.c ---- */

/* Reads the broker's public key and this side's key pair; sk is wiped by the caller. */
int conn_read_keys(const publish_opts_t *o, uint8_t spk[PT_KEY_LEN], uint8_t sk[PT_KEY_LEN],
                   uint8_t pk[PT_KEY_LEN], pt_error_t *err);

/* The commands, one group per file. */
int cmd_keygen(int argc, char **argv);
int cmd_fingerprint(int argc, char **argv);
int cmd_publish(int argc, char **argv);
int cmd_receive(int argc, char **argv);
int cmd_journal_list(int argc, char **argv);
int cmd_journal_verify(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_dead_letters(int argc, char **argv);
int cmd_requeue(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_archive(int argc, char **argv);
int cmd_archive_verify(int argc, char **argv);
int cmd_erase(int argc, char **argv);
int cmd_compact(int argc, char **argv);

#endif
