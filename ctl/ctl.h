/* ctl: what the command groups of ptibusctl share: the command table's shape, the
 * settings (config file, then options), the output formats, exit codes, and the
 * helpers of args.c (strict numbers and times), output.c (escaping, tables, CSV, JSON)
 * and settings.c (the config file). ptibusctl uses only the journal and the contract
 * library (the clients), never the broker's loop. */
#ifndef PT_CTL_H
#define PT_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "pt_limits.h"

/* Exit codes (docs/ptibusctl.md, "Exit codes"). */
enum {
    CTL_OK = 0,        /* done */
    CTL_FAILED = 1,    /* failed: what failed is on stderr */
    CTL_USAGE = 2,     /* usage error: bad option or value */
    CTL_NOMATCH = 3,   /* nothing matched (unknown id, empty range, nothing to act on) */
    CTL_REFUSED = 4,   /* the broker refused (a final refusal of a message, an admin request) */
    CTL_RETRY = 5,     /* a retryable refusal, or the broker did not answer */
    CTL_CORRUPT = 6,   /* journal verify: the journal does not verify */
    CTL_UNAUDITED = 7, /* personal data not shown: the read could not be recorded */
};

typedef enum ctl_format {
    CTL_FMT_TABLE = 0, /* aligned columns for a person (the default) */
    CTL_FMT_TSV,       /* tab-separated, header line, escaped text */
    CTL_FMT_CSV,       /* RFC 4180 */
    CTL_FMT_JSON,      /* one JSON object per line (JSON Lines) */
    CTL_FMT_HTML,      /* an HTML table (person: a self-contained page) */
} ctl_format_t;

/* Where things are: the config file's values, each replaced by its option when given.
 * Strings are borrowed from the settings (ctl_fini frees them). */
typedef struct ctl_settings {
    const char *endpoint;      /* broker.endpoint: the partners' socket */
    const char *admin;         /* broker.admin: the admin socket */
    const char *server_pub;    /* broker.public_key */
    const char *journal;       /* journal.dir */
    const char *sign_pub;      /* journal.sign_public_key (journal verify) */
    const char *operator_name; /* operator.name: who the audit records name */
    const char *admin_key;     /* operator.key: the administrator's CURVE secret key */
    const char *admin_pub;     /* operator.public_key */
    const char *partner_keys;  /* partners.keys_dir: NAME.key/NAME.pub for --as NAME */
    const char *person_key;    /* journal.person_index_key: the HMAC key of the person index */
    const char *key, *pub;     /* publish/receive: this partner's key pair */
} ctl_settings_t;

typedef struct ctl {
    const char *config_path; /* --config, else $PTIBUS_CONFIG, else the default */
    bool config_given;       /* a missing file is an error only when named */
    ctl_settings_t set;      /* after ctl_load: the config, then the overrides */
    ctl_settings_t over;     /* options given on the command line */
    const char *as;          /* --as NAME: the partner key pair NAME.key, NAME.pub */
    ctl_format_t fmt;
    const char *name; /* "journal list": for messages and the usage line */
    const char *usage;
    const char *help;
    char **owned; /* strings ctl_load made (resolved paths) */
    size_t n_owned;
    int timeout_ms;
} ctl_t;

typedef int (*command_fn)(ctl_t *c, int argc, char **argv);

typedef struct command {
    const char *noun, *verb; /* verb NULL: a one-word command */
    command_fn run;
    const char *usage; /* the options after "ptibusctl NOUN VERB" */
    const char *help;  /* two or three lines: what it does */
} command_t;

#define CTL_DEFAULT_CONFIG "/etc/ptibus/ptibusctl.yaml"

/* ---- settings.c ---- */

/* Loads the config file (once) and merges the overrides into c->set. A default path
 * that does not exist is no error (options alone then); a named one is. Returns 0 or
 * CTL_FAILED / CTL_USAGE (the error printed). */
int ctl_load(ctl_t *c);

/* Frees what ctl_load made. */
void ctl_fini(ctl_t *c);

/* Options every command takes (--config, --format, --help) and the connection options
 * (--endpoint, --admin, --server-key, --key, --pub, --as, --journal); the long-option
 * codes are >= 1000 so that a command's own short codes never clash. */
#define CTL_OPT_BASE 1000
enum {
    CTL_OPT_CONFIG = CTL_OPT_BASE,
    CTL_OPT_FORMAT,
    CTL_OPT_HELP,
    CTL_OPT_ENDPOINT,
    CTL_OPT_ADMIN,
    CTL_OPT_SERVER_KEY,
    CTL_OPT_KEY,
    CTL_OPT_PUB,
    CTL_OPT_AS,
    CTL_OPT_JOURNAL,
    CTL_OPT_OPERATOR,
    CTL_OPT_VERSION,
};
/* clang-format off */
#define CTL_COMMON_OPTS                                                                            \
    {"config", required_argument, NULL, CTL_OPT_CONFIG},                                           \
    {"format", required_argument, NULL, CTL_OPT_FORMAT},                                           \
    {"version", no_argument, NULL, CTL_OPT_VERSION},                                               \
    {"help", no_argument, NULL, CTL_OPT_HELP}
/* clang-format on */
#define CTL_CONN_OPTS                                                                              \
    {"endpoint", required_argument, NULL, CTL_OPT_ENDPOINT},                                       \
        {"admin", required_argument, NULL, CTL_OPT_ADMIN},                                         \
        {"server-key", required_argument, NULL, CTL_OPT_SERVER_KEY},                               \
        {"key", required_argument, NULL, CTL_OPT_KEY},                                             \
        {"pub", required_argument, NULL, CTL_OPT_PUB},                                             \
        {"as", required_argument, NULL, CTL_OPT_AS},                                               \
        {"journal", required_argument, NULL, CTL_OPT_JOURNAL},                                     \
    {                                                                                              \
        "operator", required_argument, NULL, CTL_OPT_OPERATOR                                      \
    }

/* Handles one common or connection option (code from getopt_long, value optarg).
 * Returns 0 when handled, CTL_USAGE for a bad value or an unknown code, -1 for --help
 * (the help was printed: the command returns CTL_OK). */
int ctl_option(ctl_t *c, int code, const char *value);

/* Parses argv with the command's options; each code below CTL_OPT_BASE goes to fn.
 * Returns 0, CTL_USAGE, or -1 after --help. */
typedef int (*ctl_opt_fn)(ctl_t *c, int code, const char *value, void *arg);
int ctl_parse(ctl_t *c, int argc, char **argv, const void *longopts, ctl_opt_fn fn, void *arg);

/* Whether a setting is present; otherwise prints which option or config key gives it. */
bool ctl_need(const ctl_t *c, const char *value, const char *option, const char *key);

/* The --help text of the command c is running. */
void ctl_print_help(const ctl_t *c, FILE *out);

/* ---- output.c ---- */

/* Prints "ptibusctl: <err->msg>" on stderr; returns CTL_FAILED. */
int fail(const pt_error_t *err);

/* Prints "ptibusctl: NAME: <fmt>" on stderr; returns code. */
int ctl_error(const ctl_t *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Partner-written text escaped for the terminal (no line break, tab or escape sequence
 * reaches it); a few rotating static buffers, so one printf may take several. */
const char *esc(const char *s);

/* A column of a result: its header, its width in the table format, and whether its
 * values are numbers (bare in JSON). */
typedef struct out_col {
    const char *name;
    int width;
    bool number;
} out_col_t;

/* A streaming writer of rows in the chosen format: nothing is kept but the count. */
typedef struct out {
    ctl_format_t fmt;
    const out_col_t *cols;
    size_t n_cols;
    uint64_t rows;
    FILE *f;
} out_t;

/* Starts a result (the header line, except in JSON). */
void out_begin(out_t *o, ctl_format_t fmt, const out_col_t *cols, size_t n_cols);

/* One row: n_cols values, raw (the writer escapes them for its format); NULL or ""
 * is an empty cell (null in JSON). */
void out_row(out_t *o, const char *const *vals);

/* Ends a result; an empty one says "(none)" in the table format. */
void out_end(out_t *o);

/* Writes s to f with HTML's special characters as entities (after esc()). */
void out_html_text(FILE *f, const char *s);

/* v in decimal into buf (at least 21 bytes). */
void out_u64(char *buf, uint64_t v);

/* Unix ms as RFC 3339 UTC with milliseconds ("2026-12-02T10:00:00.000Z"); cap >= 32. */
void out_time(int64_t ms, char *buf, size_t cap);

/* ---- args.c ---- */

/* Parses a whole decimal number in min..max for the option named opt; on anything else
 * (empty, sign, trailing characters, overflow) prints what is wrong and returns false. */
bool args_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Parses an RFC 3339 time ("2026-12-01T10:00:00Z", "...+01:00", fractions allowed) or a
 * date ("2026-12-01", midnight UTC; with end_of_day, the next midnight: --until DATE
 * includes that day) into Unix ms; on anything else prints what is wrong. */
bool args_time(const char *opt, const char *s, bool end_of_day, int64_t *out);

/* ---- partner_cmd.c ---- */

/* Reads the broker's public key and the key pair (key, pub); sk is wiped by the caller. */
int conn_read_keys(const char *server_pub, const char *key, const char *pub,
                   uint8_t spk[PT_KEY_LEN], uint8_t sk[PT_KEY_LEN], uint8_t pk[PT_KEY_LEN],
                   pt_error_t *err);

/* ---- journal_cmd.c ---- */

struct jq_filter;

struct jq_row;

/* The options beyond the filter that a command takes (NULL members are refused). */
typedef struct journal_extra {
    const char **reason; /* --reason TEXT */
    bool *dry_run;       /* --dry-run */
    bool *payloads;      /* --with-payloads */
    bool *force;         /* --force */
} journal_extra_t;

/* Parses the journal filter options (journal list, and the commands that select
 * records the same way: replay, export) and those of x (may be NULL); 0, CTL_USAGE,
 * or -1 after --help. */
int journal_filter_parse(ctl_t *c, int argc, char **argv, struct jq_filter *f,
                         const journal_extra_t *x);

/* The columns of journal list, and the jq_fn that prints one row into an out_t. */
#define JOURNAL_LIST_COLS 11
extern const out_col_t journal_list_cols[JOURNAL_LIST_COLS];
int journal_list_row(const struct jq_row *r, void *out);

/* The journal list cells of r (bufs: storage for the numbers and the time). */
void journal_row_values(const struct jq_row *r, char bufs[4][32],
                        const char *vals[JOURNAL_LIST_COLS]);

/* ctl_load, and a journal folder given (journal.dir or --journal). */
int journal_settings(ctl_t *c);

/* ---- admin_cmd.c ---- */

struct Ptibus__V1__AdminRequest;
struct Ptibus__V1__AdminResponse;

/* ctl_load, and the admin socket's settings present. */
int admin_settings(ctl_t *c);

/* One admin request: 0 with *out (caller frees with codec_free), or the exit code with
 * the error printed (CTL_RETRY: no answer; CTL_REFUSED; CTL_FAILED). */
int admin_call(const ctl_t *c, const struct Ptibus__V1__AdminRequest *q,
               struct Ptibus__V1__AdminResponse **out);

/* Has the broker journal a personal-data read (command, reason, operator name) and
 * waits until that record is committed: 0 with *seq its ADMIN record, or the exit code
 * (the error printed). Nothing personal may be shown unless this returned 0. */
int admin_audit_read(const ctl_t *c, const char *command, const char *reason, uint64_t *seq);

/* The commands, one group per file. */
int cmd_keygen(ctl_t *c, int argc, char **argv);
int cmd_fingerprint(ctl_t *c, int argc, char **argv);
int cmd_partner_add(ctl_t *c, int argc, char **argv);
int cmd_publish(ctl_t *c, int argc, char **argv);
int cmd_receive(ctl_t *c, int argc, char **argv);
int cmd_journal_list(ctl_t *c, int argc, char **argv);
int cmd_journal_verify(ctl_t *c, int argc, char **argv);
int cmd_journal_show(ctl_t *c, int argc, char **argv);
int cmd_trace(ctl_t *c, int argc, char **argv);
int cmd_stats(ctl_t *c, int argc, char **argv);
int cmd_deadletters_list(ctl_t *c, int argc, char **argv);
int cmd_deadletters_requeue(ctl_t *c, int argc, char **argv);
int cmd_deadletters_drop(ctl_t *c, int argc, char **argv);
int cmd_replay(ctl_t *c, int argc, char **argv);
int cmd_config_show(ctl_t *c, int argc, char **argv);
int cmd_person(ctl_t *c, int argc, char **argv);
int cmd_report(ctl_t *c, int argc, char **argv);
int cmd_export(ctl_t *c, int argc, char **argv);
int cmd_backup(ctl_t *c, int argc, char **argv);
int cmd_archive(ctl_t *c, int argc, char **argv);
int cmd_archive_verify(ctl_t *c, int argc, char **argv);
int cmd_erase(ctl_t *c, int argc, char **argv);
int cmd_compact(ctl_t *c, int argc, char **argv);

#endif
