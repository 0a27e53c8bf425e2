/* admin_cmd: a running broker's admin socket: stats, dead letters (list, requeue),
 * and the audit record of a personal-data read (an administrator's key;
 * actions need a reason and are journaled by the broker). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "admin_client.h"
#include "codec.h"
#include "keys.h"
#include "ptibus/v1/admin.pb-c.h"

#define ADMIN_SEQS_MAX 64 /* --seq values in one requeue request */

typedef struct admin_args {
    const char *to;
    uint64_t seq_from, seq_to;
    const char *message_id;
    const char *reason;
    bool all;
    uint64_t seqs[ADMIN_SEQS_MAX];
    size_t n_seqs;
} admin_args_t;

enum { OPT_TO = 1, OPT_SEQ_FROM, OPT_SEQ_TO, OPT_MSGID, OPT_REASON, OPT_ALL, OPT_SEQ };

static int
admin_opt(ctl_t *c, int code, const char *v, void *arg)
{
    admin_args_t *a = arg;
    switch (code) {
    case OPT_TO:
        a->to = v;
        return 0;
    case OPT_SEQ_FROM:
        return args_u64("--seq-from", v, 1, UINT64_MAX, &a->seq_from) ? 0 : CTL_USAGE;
    case OPT_SEQ_TO:
        return args_u64("--seq-to", v, 1, UINT64_MAX, &a->seq_to) ? 0 : CTL_USAGE;
    case OPT_MSGID:
        a->message_id = v;
        return 0;
    case OPT_REASON:
        a->reason = v;
        return 0;
    case OPT_ALL:
        a->all = true;
        return 0;
    case OPT_SEQ:
        if (a->n_seqs == ADMIN_SEQS_MAX)
            return ctl_error(c, CTL_USAGE, "--seq: at most %d seqs in one request (use --all)",
                             ADMIN_SEQS_MAX);
        return args_u64("--seq", v, 1, UINT64_MAX, &a->seqs[a->n_seqs++]) ? 0 : CTL_USAGE;
    }
    return CTL_USAGE;
}

static int
admin_parse(ctl_t *c, int argc, char **argv, admin_args_t *a)
{
    static const struct option opts[] = {{"to", required_argument, NULL, OPT_TO},
                                         {"seq-from", required_argument, NULL, OPT_SEQ_FROM},
                                         {"seq-to", required_argument, NULL, OPT_SEQ_TO},
                                         {"message-id", required_argument, NULL, OPT_MSGID},
                                         {"reason", required_argument, NULL, OPT_REASON},
                                         {"all", no_argument, NULL, OPT_ALL},
                                         {"seq", required_argument, NULL, OPT_SEQ},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, admin_opt, a);
    if (rc == 0 && optind != argc)
        rc = ctl_error(c, CTL_USAGE, "unexpected argument \"%.40s\"", argv[optind]);
    return rc;
}

/* The settings of the admin socket: endpoint, the broker's key, the operator's pair. */
int
admin_settings(ctl_t *c)
{
    int rc = ctl_load(c);
    if (rc != 0)
        return rc;
    if (c->over.endpoint && !c->over.admin)
        c->set.admin = c->over.endpoint; /* the former spelling: --endpoint of the admin socket */
    if (!ctl_need(c, c->set.admin, "--admin", "broker.admin") ||
        !ctl_need(c, c->set.server_pub, "--server-key", "broker.public_key") ||
        !ctl_need(c, c->set.admin_key, "--key", "operator.key") ||
        !ctl_need(c, c->set.admin_pub, "--pub", "operator.public_key"))
        return CTL_USAGE;
    return 0;
}

/* Sends one request on the admin socket and waits for its response: 0 with *out, or
 * the exit code (the error printed): CTL_RETRY when the broker did not answer,
 * CTL_REFUSED when it refused, CTL_FAILED otherwise. */
int
admin_call(const ctl_t *c, const Ptibus__V1__AdminRequest *q, Ptibus__V1__AdminResponse **out)
{
    uint8_t spk[PT_KEY_LEN], sk[PT_KEY_LEN], pk[PT_KEY_LEN];
    pt_error_t err;
    const ctl_settings_t *s = &c->set;
    int rc = conn_read_keys(s->server_pub, s->admin_key, s->admin_pub, spk, sk, pk, &err);
    admin_client_options_t o = {.endpoint = s->admin,
                                .server_pk = spk,
                                .client_sk = sk,
                                .client_pk = pk,
                                .timeout_ms = c->timeout_ms};
    if (rc == 0)
        rc = admin_client_call(&o, q, out, &err);
    sodium_memzero(sk, sizeof sk);
    if (rc != 0) {
        fail(&err);
        return rc == PT_ETIMEOUT ? CTL_RETRY : CTL_FAILED;
    }
    if (!(*out)->ok) {
        fprintf(stderr, "ptibusctl: %s: refused by the broker: %s\n", c->name, esc((*out)->error));
        codec_free((ProtobufCMessage **)out);
        return CTL_REFUSED;
    }
    return 0;
}

int
admin_audit_read(const ctl_t *c, const char *command, const char *reason, uint64_t *seq)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__AuditReadRequest ar = PTIBUS__V1__AUDIT_READ_REQUEST__INIT;
    ar.command = (char *)command;
    ar.reason = (char *)reason;
    ar.operator_name = (char *)(c->set.operator_name ? c->set.operator_name : "");
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_AUDIT_READ;
    q.audit_read = &ar;
    Ptibus__V1__AdminResponse *r;
    int rc = admin_call(c, &q, &r);
    if (rc != 0)
        return rc;
    bool ok = r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_AUDIT_SEQ && r->audit_seq != 0;
    *seq = ok ? r->audit_seq : 0;
    codec_free((ProtobufCMessage **)&r);
    return ok ? 0 : CTL_FAILED;
}

/* Bytes as "12.3 MiB". */
static void
human_bytes(uint64_t b, char *out, size_t cap)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof *units)
        v /= 1024, u++;
    snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static const out_col_t stats_cols[] = {
    {"partner", 14, false},       {"online", 6, false},       {"credit", 6, true},
    {"in_flight", 9, true},       {"retrying", 8, true},      {"queue_depth", 11, true},
    {"oldest_queued", 24, false}, {"oldest_age", 10, true},   {"delivered", 9, true},
    {"acknowledged", 12, true},   {"dead_lettered", 0, true},
};

/* An age for a person ("45 s", "12 min", "3 h 20 min", "2 d 4 h"). */
static void
human_age(int64_t s, char *out, size_t cap)
{
    if (s < 120)
        snprintf(out, cap, "%" PRId64 " s", s < 0 ? 0 : s);
    else if (s < 7200)
        snprintf(out, cap, "%" PRId64 " min", s / 60);
    else if (s < 2 * 86400)
        snprintf(out, cap, "%" PRId64 " h %" PRId64 " min", s / 3600, s / 60 % 60);
    else
        snprintf(out, cap, "%" PRId64 " d %" PRId64 " h", s / 86400, s / 3600 % 24);
}

static uint64_t
stats_left(const Ptibus__V1__BrokerStats *st)
{
    return st->journal_max_bytes > st->journal_bytes_used
               ? st->journal_max_bytes - st->journal_bytes_used
               : 0;
}

/* The broker's lines in the table format: counts, rates, the journal's space (human
 * units only). */
static void
print_stats_head(const Ptibus__V1__BrokerStats *st)
{
    char used[32], left[32], max[32], fr[32], rec[32], file[32];
    human_bytes(st->journal_bytes_used, used, sizeof used);
    human_bytes(stats_left(st), left, sizeof left);
    human_bytes(st->journal_max_bytes, max, sizeof max);
    human_bytes(st->journal_bytes_free, fr, sizeof fr);
    human_bytes(st->journal_bytes_reclaimable, rec, sizeof rec);
    human_bytes(st->journal_file_bytes, file, sizeof file);
    printf("last seq %" PRIu64 ", accepted %" PRIu64 ", rejected %" PRIu64 ", duplicates %" PRIu64
           "\n",
           st->last_seq, st->accepted, st->rejected, st->duplicates);
    if (st->rate_window_ms > 0)
        printf("rates over the last %.0f s: in %.1f msgs/s, out %.1f msgs/s (deliveries)\n",
               st->rate_window_ms / 1000.0, st->rate_in, st->rate_out);
    else
        printf("rates: not yet measured (the broker samples its counters every second)\n");
    printf("journal: %s used of %s maximum, %s left (%.1f%% used); of the used, %s free "
           "(reused by later writes); file %s, %s reclaimable by ptibusctl compact\n",
           used, max, left,
           st->journal_max_bytes
               ? 100.0 * (double)st->journal_bytes_used / (double)st->journal_max_bytes
               : 0.0,
           fr, file, rec);
}

/* The broker's numbers as one JSON line (raw numbers), before the partners'. */
static void
print_stats_json(const Ptibus__V1__BrokerStats *st)
{
    printf("{\"last_seq\":%" PRIu64 ",\"accepted\":%" PRIu64 ",\"rejected\":%" PRIu64
           ",\"duplicates\":%" PRIu64 ",\"rate_in_msgs_per_s\":%.3f,\"rate_out_msgs_per_s\":%.3f,"
           "\"rate_window_ms\":%u,\"journal_bytes_used\":%" PRIu64 ",\"journal_bytes_max\":%" PRIu64
           ",\"journal_bytes_left\":%" PRIu64 ",\"journal_bytes_free\":%" PRIu64
           ",\"journal_bytes_reclaimable\":%" PRIu64 ",\"journal_file_bytes\":%" PRIu64 "}\n",
           st->last_seq, st->accepted, st->rejected, st->duplicates, st->rate_in, st->rate_out,
           st->rate_window_ms, st->journal_bytes_used, st->journal_max_bytes, stats_left(st),
           st->journal_bytes_free, st->journal_bytes_reclaimable, st->journal_file_bytes);
}

static void
print_stats(const ctl_t *c, const Ptibus__V1__BrokerStats *st)
{
    if (c->fmt == CTL_FMT_TABLE)
        print_stats_head(st);
    else if (c->fmt == CTL_FMT_JSON)
        print_stats_json(st);
    out_t o;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    out_begin(&o, c->fmt, stats_cols, sizeof stats_cols / sizeof *stats_cols);
    for (size_t i = 0; i < st->n_partners; i++) {
        const Ptibus__V1__PartnerStats *p = st->partners[i];
        char n[8][24], oldest[40] = "", age[40] = "";
        uint64_t v[] = {p->window,    p->in_flight,    p->retrying,     p->queue_depth,
                        p->delivered, p->acknowledged, p->dead_lettered};
        for (size_t k = 0; k < 7; k++)
            snprintf(n[k], sizeof n[k], "%" PRIu64, v[k]);
        if (p->oldest_enqueued_ms > 0) {
            int64_t s = (now_ms - p->oldest_enqueued_ms) / 1000;
            out_time(p->oldest_enqueued_ms, oldest, sizeof oldest);
            if (c->fmt == CTL_FMT_TABLE)
                human_age(s, age, sizeof age);
            else
                snprintf(age, sizeof age, "%" PRId64, s < 0 ? 0 : s);
        }
        const char *row[] = {
            p->partner, p->online ? "yes" : "no", n[0], n[1], n[2], n[3], oldest, age, n[4], n[5],
            n[6]};
        out_row(&o, row);
    }
    out_end(&o);
}

/* stats */
int
cmd_stats(ctl_t *c, int argc, char **argv)
{
    admin_args_t a = {0};
    int rc = admin_parse(c, argc, argv, &a);
    if (rc == 0)
        rc = admin_settings(c);
    if (rc != 0)
        return rc;
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__StatsRequest st = PTIBUS__V1__STATS_REQUEST__INIT;
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_STATS;
    q.stats = &st;
    Ptibus__V1__AdminResponse *r;
    if ((rc = admin_call(c, &q, &r)) != 0)
        return rc;
    if (r->kind_case == PTIBUS__V1__ADMIN_RESPONSE__KIND_STATS)
        print_stats(c, r->stats);
    codec_free((ProtobufCMessage **)&r);
    return CTL_OK;
}

static const out_col_t dead_cols[] = {
    {"recipient", 12, false},  {"seq", 7, true},      {"type", 20, false},
    {"message_id", 36, false}, {"sender", 12, false}, {"attempts", 8, true},
    {"dead_at", 0, false},
};

/* deadletters list [--to PARTNER] */
int
cmd_deadletters_list(ctl_t *c, int argc, char **argv)
{
    admin_args_t a = {0};
    int rc = admin_parse(c, argc, argv, &a);
    if (rc == 0)
        rc = admin_settings(c);
    if (rc != 0)
        return rc;
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__DeadLetterListRequest dl = PTIBUS__V1__DEAD_LETTER_LIST_REQUEST__INIT;
    dl.recipient = (char *)(a.to ? a.to : "");
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST;
    q.dead_letter_list = &dl;
    Ptibus__V1__AdminResponse *r;
    if ((rc = admin_call(c, &q, &r)) != 0)
        return rc;
    out_t o;
    out_begin(&o, c->fmt, dead_cols, sizeof dead_cols / sizeof *dead_cols);
    for (size_t i = 0; r->dead_letters && i < r->dead_letters->n_items; i++) {
        const Ptibus__V1__DeadLetter *d = r->dead_letters->items[i];
        char seq[24], att[16], when[40] = "";
        snprintf(seq, sizeof seq, "%" PRIu64, d->seq);
        snprintf(att, sizeof att, "%u", d->attempts);
        if (d->dead_at_ms > 0)
            out_time(d->dead_at_ms, when, sizeof when);
        const char *row[] = {d->recipient, seq, d->message_type, d->message_id, d->sender,
                             att,          when};
        out_row(&o, row);
    }
    out_end(&o);
    codec_free((ProtobufCMessage **)&r);
    return CTL_OK;
}

static bool
need_reason(const ctl_t *c, const char *reason)
{
    if (reason && reason[0])
        return true;
    fprintf(stderr,
            "ptibusctl: %s: --reason TEXT is required (why: an incident or ticket "
            "number; it is journaled)\n",
            c->name);
    return false;
}

/* deadletters requeue --to PARTNER (--all | --seq N...) --reason TEXT */
int
cmd_deadletters_requeue(ctl_t *c, int argc, char **argv)
{
    admin_args_t a = {0};
    int rc = admin_parse(c, argc, argv, &a);
    if (rc == 0 && (!a.to || (!a.all && a.n_seqs == 0) || (a.all && a.n_seqs)))
        rc = ctl_error(c, CTL_USAGE, "give --to PARTNER and either --all or --seq N...");
    if (rc == 0 && !need_reason(c, a.reason))
        rc = CTL_USAGE;
    if (rc == 0)
        rc = admin_settings(c);
    if (rc != 0)
        return rc;
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__DeadLetterRequeueRequest rq = PTIBUS__V1__DEAD_LETTER_REQUEUE_REQUEST__INIT;
    rq.recipient = (char *)a.to;
    rq.all = a.all;
    rq.n_seqs = a.n_seqs;
    rq.seqs = a.seqs;
    rq.reason = (char *)a.reason;
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE;
    q.dead_letter_requeue = &rq;
    Ptibus__V1__AdminResponse *r;
    if ((rc = admin_call(c, &q, &r)) != 0)
        return rc;
    uint32_t n = r->requeued;
    codec_free((ProtobufCMessage **)&r);
    if (n == 0)
        return ctl_error(c, CTL_NOMATCH, "nothing requeued: no such dead letter of %s%s", esc(a.to),
                         a.all ? "" : " among the --seq given");
    printf("requeued %u dead letters of %s\n", n, esc(a.to));
    return CTL_OK;
}

/* deadletters drop [--to PARTNER] (--all | --seq N...) --reason TEXT */
int
cmd_deadletters_drop(ctl_t *c, int argc, char **argv)
{
    admin_args_t a = {0};
    int rc = admin_parse(c, argc, argv, &a);
    if (rc == 0 && a.all == (a.n_seqs > 0))
        rc = ctl_error(c, CTL_USAGE,
                       "give either --all or --seq N... (and --to PARTNER to "
                       "keep to one recipient)");
    if (rc == 0 && !need_reason(c, a.reason))
        rc = CTL_USAGE;
    if (rc == 0)
        rc = admin_settings(c);
    if (rc != 0)
        return rc;
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__DeadLetterDropRequest dr = PTIBUS__V1__DEAD_LETTER_DROP_REQUEST__INIT;
    dr.recipient = (char *)(a.to ? a.to : "");
    dr.all = a.all;
    dr.n_seqs = a.n_seqs;
    dr.seqs = a.seqs;
    dr.reason = (char *)a.reason;
    q.request_id = "ptibusctl";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_DROP;
    q.dead_letter_drop = &dr;
    Ptibus__V1__AdminResponse *r;
    if ((rc = admin_call(c, &q, &r)) != 0)
        return rc;
    uint32_t n = r->dropped;
    codec_free((ProtobufCMessage **)&r);
    const char *who = a.to ? esc(a.to) : "any recipient";
    if (n == 0)
        return ctl_error(c, CTL_NOMATCH, "nothing dropped: no such dead letter of %s%s", who,
                         a.all ? "" : " among the --seq given");
    printf("dropped %u dead letters of %s for good (journaled; a requeue cannot bring them "
           "back)\n",
           n, who);
    return CTL_OK;
}
