/* journal_cmd: reading a journal's files (read-only transactions: safe while the
 * broker runs, or on a copy): journal list (audit fields, never a payload, filtered,
 * streaming) and journal verify (chain, signed linked checkpoints, state databases). */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jquery.h"
#include "keys.h"

/* The columns of journal list, in every format (docs/ptibusctl.md). */
const out_col_t journal_list_cols[] = {
    {"seq", 7, true},          {"time", 24, false},           {"kind", 13, false},
    {"sender", 12, false},     {"recipient", 12, false},      {"type", 20, false},
    {"message_id", 36, false}, {"correlation_id", 14, false}, {"attempt", 7, true},
    {"ref_seq", 7, true},      {"reason", 0, false},
};
#define N_LIST_COLS JOURNAL_LIST_COLS

enum {
    OPT_SINCE = 1,
    OPT_UNTIL,
    OPT_FROM,
    OPT_TO,
    OPT_TYPE,
    OPT_KIND,
    OPT_MSGID,
    OPT_CORR,
    OPT_SEQ_FROM,
    OPT_SEQ_TO,
    OPT_LIMIT,
    OPT_SCAN,
    OPT_REASON,
    OPT_DRY_RUN,
    OPT_TERRITORY,
    OPT_PAYLOADS,
    OPT_FORCE,
};

/* What list_opt fills: the filter, and the options of the commands that act on a
 * selection (x NULL, or a member NULL: the option is refused). */
typedef struct filter_args {
    jq_filter_t *f;
    const journal_extra_t *x;
} filter_args_t;

static int
list_opt(ctl_t *c, int code, const char *v, void *arg)
{
    filter_args_t *fa = arg;
    jq_filter_t *f = fa->f;
    switch (code) {
    case OPT_REASON:
        if (fa->x == NULL || fa->x->reason == NULL)
            return ctl_error(c, CTL_USAGE,
                             "--reason: this command changes and shows nothing "
                             "that needs one");
        *fa->x->reason = v;
        return 0;
    case OPT_DRY_RUN:
        if (fa->x == NULL || fa->x->dry_run == NULL)
            return ctl_error(c, CTL_USAGE, "--dry-run: this command changes nothing");
        *fa->x->dry_run = true;
        return 0;
    case OPT_PAYLOADS:
        if (fa->x == NULL || fa->x->payloads == NULL)
            return ctl_error(c, CTL_USAGE, "--with-payloads: only export shows payloads");
        *fa->x->payloads = true;
        return 0;
    case OPT_FORCE:
        if (fa->x == NULL || fa->x->force == NULL)
            return ctl_error(c, CTL_USAGE, "--force: only replay takes it");
        *fa->x->force = true;
        return 0;
    case OPT_SINCE:
        return args_time("--since", v, false, &f->since) ? 0 : CTL_USAGE;
    case OPT_UNTIL:
        return args_time("--until", v, true, &f->until) ? 0 : CTL_USAGE;
    case OPT_FROM:
        f->from = v;
        return 0;
    case OPT_TO:
        f->to = v;
        return 0;
    case OPT_TYPE:
        f->type = v;
        return 0;
    case OPT_KIND:
        if ((f->kind = jq_kind(v)) == 0)
            return ctl_error(c, CTL_USAGE,
                             "--kind %.20s is not RECEIVED, REJECTED, DELIVERED, ACKNOWLEDGED, "
                             "DEAD_LETTERED, REPLAYED, ADMIN or DROPPED",
                             v);
        return 0;
    case OPT_MSGID:
        f->message_id = v;
        return 0;
    case OPT_CORR:
        f->correlation_id = v;
        return 0;
    case OPT_SEQ_FROM:
        return args_u64("--seq-from", v, 1, UINT64_MAX, &f->seq_from) ? 0 : CTL_USAGE;
    case OPT_SEQ_TO:
        return args_u64("--seq-to", v, 1, UINT64_MAX, &f->seq_to) ? 0 : CTL_USAGE;
    case OPT_LIMIT:
        return args_u64("--limit", v, 1, UINT64_MAX, &f->limit) ? 0 : CTL_USAGE;
    case OPT_SCAN:
        f->scan = true;
        return 0;
    case OPT_TERRITORY:
        f->territory = v;
        return 0;
    }
    return CTL_USAGE;
}

/* Options and checks shared by the commands that take a journal filter. */
int
journal_filter_parse(ctl_t *c, int argc, char **argv, jq_filter_t *f, const journal_extra_t *x)
{
    static const struct option opts[] = {{"since", required_argument, NULL, OPT_SINCE},
                                         {"until", required_argument, NULL, OPT_UNTIL},
                                         {"from", required_argument, NULL, OPT_FROM},
                                         {"to", required_argument, NULL, OPT_TO},
                                         {"type", required_argument, NULL, OPT_TYPE},
                                         {"kind", required_argument, NULL, OPT_KIND},
                                         {"message-id", required_argument, NULL, OPT_MSGID},
                                         {"correlation-id", required_argument, NULL, OPT_CORR},
                                         {"seq-from", required_argument, NULL, OPT_SEQ_FROM},
                                         {"seq-to", required_argument, NULL, OPT_SEQ_TO},
                                         {"limit", required_argument, NULL, OPT_LIMIT},
                                         {"scan", no_argument, NULL, OPT_SCAN},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                         {"territory", required_argument, NULL, OPT_TERRITORY},
                                         {"with-payloads", no_argument, NULL, OPT_PAYLOADS},
                                         {"force", no_argument, NULL, OPT_FORCE},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    filter_args_t fa = {.f = f, .x = x};
    int rc = ctl_parse(c, argc, argv, opts, list_opt, &fa);
    if (rc != 0)
        return rc;
    if (optind != argc)
        return ctl_error(c, CTL_USAGE, "unexpected argument \"%.40s\"", argv[optind]);
    if (f->since && f->until && f->since >= f->until)
        return ctl_error(c, CTL_USAGE, "--since is not before --until: the range is empty");
    if (f->seq_from && f->seq_to && f->seq_from > f->seq_to)
        return ctl_error(c, CTL_USAGE, "--seq-from is after --seq-to: the range is empty");
    return 0;
}

/* The reason column; for a record whose payload is gone (retention, erasure) and that
 * has no reason of its own, says so: "payload=expired" or "payload=erased". */
static const char *
removed_or(const journal_view_t *v)
{
    if (v->reason != NULL && v->reason[0] != '\0')
        return v->reason;
    if (v->payload_state == PT_PAYLOAD_EXPIRED)
        return "payload=expired";
    if (v->payload_state == PT_PAYLOAD_ERASED)
        return "payload=erased";
    return v->reason;
}

void
journal_row_values(const jq_row_t *r, char bufs[4][32], const char *vals[JOURNAL_LIST_COLS])
{
    const journal_view_t *v = r->v;
    out_u64(bufs[0], v->seq);
    out_time(v->time_ms, bufs[1], 32);
    out_u64(bufs[2], v->attempt);
    out_u64(bufs[3], v->ref_seq);
    const char *vv[N_LIST_COLS] = {bufs[0],
                                   bufs[1],
                                   journal_kind_name(v->kind),
                                   r->sender,
                                   r->recipient,
                                   v->msg_type,
                                   v->message_id,
                                   v->correlation_id,
                                   v->kind == PT_REC_DELIVERED ? bufs[2] : "",
                                   v->ref_seq ? bufs[3] : "",
                                   removed_or(v)};
    memcpy(vals, vv, sizeof vv);
}

int
journal_list_row(const jq_row_t *r, void *arg)
{
    char bufs[4][32];
    const char *vals[N_LIST_COLS];
    journal_row_values(r, bufs, vals);
    out_row(arg, vals);
    return 0;
}

int
journal_settings(ctl_t *c)
{
    int rc = ctl_load(c);
    if (rc == 0 && !ctl_need(c, c->set.journal, "--journal DIR", "journal.dir"))
        rc = CTL_USAGE;
    return rc;
}

/* journal list [filters] */
int
cmd_journal_list(ctl_t *c, int argc, char **argv)
{
    jq_filter_t f = {0};
    int rc = journal_filter_parse(c, argc, argv, &f, NULL);
    if (rc == 0)
        rc = journal_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    out_t o;
    out_begin(&o, c->fmt, journal_list_cols, N_LIST_COLS);
    uint64_t n = 0;
    pt_error_t err;
    rc = jq_run(j, &f, journal_list_row, &o, &n, &err);
    out_end(&o);
    journal_close(&j);
    if (rc != 0)
        return fail(&err);
    return CTL_OK;
}

#define VERIFY_MAX_KEYS 8
#define VERIFY_MAX_RANGES 64

/* The checkpoints signed by one key, consecutive. */
typedef struct key_range {
    size_t key;
    uint64_t first, last, count;
} key_range_t;

typedef struct verify_args {
    const char *pubs[VERIFY_MAX_KEYS]; /* --pubkey, repeated after a key rotation */
    size_t n_pubs;
    uint8_t pks[VERIFY_MAX_KEYS][32];
    key_range_t ranges[VERIFY_MAX_RANGES];
    size_t n_ranges;
    bool ranges_cut;
    uint64_t from, to, max_unsigned;
    bool progress; /* --progress, or stderr is a terminal */
} verify_args_t;

/* Progress on stderr: one updated line on a terminal, else one line per step. */
static void
verify_progress(void *arg, const char *phase, uint64_t seq, uint64_t end)
{
    bool tty = arg != NULL;
    fprintf(stderr, "%sptibusctl: journal verify: %s %" PRIu64 " of %" PRIu64 " (%.0f%%)%s",
            tty ? "\r" : "", phase, seq, end, end ? 100.0 * (double)seq / (double)end : 100.0,
            tty ? "\033[K" : "\n");
}

static int
verify_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    verify_args_t *a = arg;
    if (code == 'p' && a->n_pubs == VERIFY_MAX_KEYS) {
        fprintf(stderr, "ptibusctl: journal verify: more than %d --pubkey\n", VERIFY_MAX_KEYS);
        return CTL_USAGE;
    }
    if (code == 'p')
        a->pubs[a->n_pubs++] = v;
    else if (code == 'f')
        return args_u64("--from", v, 1, UINT64_MAX, &a->from) ? 0 : CTL_USAGE;
    else if (code == 't')
        return args_u64("--to", v, 1, UINT64_MAX, &a->to) ? 0 : CTL_USAGE;
    else if (code == 'u')
        return args_u64("--max-unsigned-tail", v, 0, UINT64_MAX, &a->max_unsigned) ? 0 : CTL_USAGE;
    else if (code == 'P')
        a->progress = true;
    else
        return CTL_USAGE;
    return 0;
}

/* journal_verify_ex's signed_by: extends the current range or starts one. */
static void
verify_signed_by(void *arg, uint64_t seq, int64_t time_ms, size_t key)
{
    (void)time_ms;
    verify_args_t *a = arg;
    key_range_t *r = a->n_ranges ? &a->ranges[a->n_ranges - 1] : NULL;
    if (r != NULL && r->key == key) {
        r->last = seq;
        r->count++;
        return;
    }
    if (a->n_ranges == VERIFY_MAX_RANGES) {
        a->ranges_cut = true;
        return;
    }
    a->ranges[a->n_ranges++] = (key_range_t){.key = key, .first = seq, .last = seq, .count = 1};
}

/* Which key signed which checkpoints (by fingerprint), when more than one was given. */
static void
print_key_ranges(const verify_args_t *a)
{
    char fp[PT_FINGERPRINT_LEN + 1];
    for (size_t i = 0; i < a->n_ranges; i++) {
        const key_range_t *r = &a->ranges[i];
        keys_fingerprint(a->pks[r->key], fp);
        printf("signed by key %s (%s): checkpoints at seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 ")\n",
               fp, esc(a->pubs[r->key]), r->first, r->last, r->count);
    }
    if (a->ranges_cut)
        printf("signed by: more than %d changes of key, the rest not listed\n", VERIFY_MAX_RANGES);
}

/* What was checked, success or not: an auditor reads the counts, not just "intact". */
static void
print_verify_report(const journal_verify_report_t *r, bool signed_, uint64_t max_unsigned)
{
    char when[40];
    printf("records checked: %" PRIu64 "..%" PRIu64 "\n", r->first, r->last);
    if (r->anchor_seq != 0)
        printf("anchor: records 1..%" PRIu64 " moved out (retention.audit); verified from the "
               "signed anchor%s\n",
               r->anchor_seq, signed_ ? "" : " (signature NOT checked)");
    if (r->last_ckpt_seq != 0) {
        out_time(r->last_ckpt_ms, when, sizeof when);
        printf("checkpoints checked: %" PRIu64 " (%" PRIu64 " old-format, not linked), last at "
               "seq %" PRIu64 " signed %s\n",
               r->checkpoints, r->old_checkpoints, r->last_ckpt_seq, when);
    } else {
        printf("checkpoints checked: 0\n");
    }
    printf("unsigned tail: %" PRIu64 " records after the last checkpoint (allowed %" PRIu64 "%s)\n",
           r->unsigned_tail, max_unsigned, signed_ ? "" : ", not enforced without --pubkey");
    if (!signed_)
        printf("signatures: NOT checked (no --pubkey and no journal.sign_public_key)\n");
    if (r->state_checked)
        printf("state: queue, dead-letter, dedup, by_msgid and by_partner match the records\n");
}

/* A failed signature check: the key may simply not be the journal's. */
static void
print_verify_failure(const ctl_t *c, uint64_t bad, const pt_error_t *err, size_t n_keys)
{
    char msg[PT_ERROR_MSG_MAX];
    snprintf(msg, sizeof msg, "%s", err->msg);
    char *sig = strstr(msg, "bad signature");
    if (sig && n_keys > 1)
        snprintf(sig, sizeof msg - (size_t)(sig - msg),
                 "the signature verifies with none of the %zu keys given: forged, or signed "
                 "by another signing key (give each public key the journal was signed with)",
                 n_keys);
    else if (sig)
        snprintf(sig, sizeof msg - (size_t)(sig - msg),
                 "the signature does not verify with this key: forged, or not the journal's "
                 "signing public key (after a key rotation, give --pubkey once per key)");
    fprintf(stderr, "ptibusctl: %s: FAILED at record %" PRIu64 ": %s\n", c->name, bad, msg);
}

/* journal verify [--pubkey SIGN.pub]... [--from SEQ] [--to SEQ] [--max-unsigned-tail N] */
int
cmd_journal_verify(ctl_t *c, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) /* journal verify --archive DIR: the archive's own check */
        if (strcmp(argv[i], "--archive") == 0 || strncmp(argv[i], "--archive=", 10) == 0)
            return cmd_archive_verify(c, argc, argv);
    static const struct option opts[] = {{"pubkey", required_argument, NULL, 'p'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"max-unsigned-tail", required_argument, NULL, 'u'},
                                         {"progress", no_argument, NULL, 'P'},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    verify_args_t a = {.max_unsigned = PT_JOURNAL_UNSIGNED_MAX};
    int rc = ctl_parse(c, argc, argv, opts, verify_opt, &a);
    if (rc == 0 && optind != argc)
        rc = CTL_USAGE;
    if (rc == 0)
        rc = journal_settings(c);
    if (rc != 0)
        return rc;
    if (a.n_pubs == 0 && c->set.sign_pub != NULL)
        a.pubs[a.n_pubs++] = c->set.sign_pub;
    bool pub = a.n_pubs > 0;
    pt_error_t err;
    for (size_t i = 0; i < a.n_pubs; i++)
        if (keys_read(a.pubs[i], a.pks[i], PT_KEY_LEN, false, &err) != 0)
            return fail(&err);
    journal_t *j;
    if ((rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    if (journal_last_seq(j) == 0) {
        journal_close(&j);
        printf("journal %s: empty (no record to verify)\n", c->set.journal);
        return CTL_OK;
    }
    journal_verify_options_t o = {.first = a.from,
                                  .last = a.to,
                                  .keys = (const uint8_t(*)[32])a.pks,
                                  .n_keys = a.n_pubs,
                                  .signed_by = a.n_pubs > 1 ? verify_signed_by : NULL,
                                  .signed_by_arg = &a,
                                  .max_unsigned = a.max_unsigned,
                                  .check_state = true};
    bool tty = isatty(STDERR_FILENO);
    if (a.progress || tty) {
        o.progress = verify_progress;
        o.progress_arg = tty ? (void *)&o : NULL; /* non-NULL: a terminal */
    }
    journal_verify_report_t rep;
    uint64_t bad = 0;
    rc = journal_verify_ex(j, &o, &rep, &bad, &err);
    journal_close(&j);
    if (tty)
        fputs("\r\033[K", stderr);
    print_verify_report(&rep, pub, a.max_unsigned);
    print_key_ranges(&a);
    if (rc != 0) {
        print_verify_failure(c, bad, &err, a.n_pubs);
        return CTL_CORRUPT;
    }
    printf("journal %s: records %" PRIu64 "..%" PRIu64 " intact%s\n", c->set.journal, rep.first,
           rep.last, pub ? ", checkpoints signed, linked and covering the head" : "");
    return CTL_OK;
}
