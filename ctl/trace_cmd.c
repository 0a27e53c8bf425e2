/* trace_cmd: one message's records, through the message-id index: trace (the life of
 * a message in time order and what is still pending, audit fields only) and journal
 * show (the records with the message decoded to proto3 JSON: personal data, so the
 * read is recorded by the broker first, or nothing is shown). */
#include "ctl.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "codec.h"
#include "jquery.h"
#include "pjson.h"

#define TRACE_MAX 4096 /* records of one message id kept to order and summarise */

typedef struct trace_rec {
    journal_kind_t kind;
    uint64_t seq, ref;
    int64_t time_ms;
    uint32_t attempt;
    char sender[40], recipient[40], type[64];
    bool reply;       /* a status reply to the traced message (correlation id) */
    char *recipients; /* RECEIVED: joined */
    char *reason;
} trace_rec_t;

typedef struct trace {
    trace_rec_t *r;
    size_t n;
    bool full;
    const char *id; /* the traced message id */
    struct {
        char id[PT_MESSAGE_ID_MAX + 1], from[PT_PARTNER_ID_MAX + 1];
    } replies[32]; /* the replies found: message id and sender */
    size_t n_replies;
} trace_t;

static int
trace_add(const jq_row_t *row, void *arg)
{
    trace_t *t = arg;
    const journal_view_t *v = row->v;
    if (t->n == TRACE_MAX) {
        t->full = true;
        return 1;
    }
    trace_rec_t *r = &t->r[t->n++];
    *r = (trace_rec_t){.kind = v->kind,
                       .seq = v->seq,
                       .ref = v->ref_seq,
                       .time_ms = v->time_ms,
                       .attempt = v->attempt};
    snprintf(r->sender, sizeof r->sender, "%s", row->sender);
    snprintf(r->recipient, sizeof r->recipient, "%s",
             v->kind == PT_REC_RECEIVED ? "" : row->recipient);
    snprintf(r->type, sizeof r->type, "%s", v->msg_type ? v->msg_type : "");
    r->recipients = v->kind == PT_REC_RECEIVED ? strdup(row->recipient) : NULL;
    r->reply = v->correlation_id && t->id && strcmp(v->correlation_id, t->id) == 0;
    r->reason = v->reason && v->reason[0] ? strdup(v->reason) : NULL;
    return 0;
}

static void
trace_free(trace_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->r[i].recipients);
        free(t->r[i].reason);
    }
    free(t->r);
}

/* The type of the status replies a message may get (correlated to its id), or NULL. */
static const char *
reply_type(const char *type)
{
    if (strcmp(type, "referral") == 0)
        return "referral_status";
    if (strcmp(type, "reorientation_request") == 0)
        return "reorientation_answer";
    return NULL;
}

static int note_reply(const jq_row_t *row, void *arg);

/* The status replies of a referral (or reorientation request) r come from its
 * recipients: for each, its RECEIVED records of the reply type since r, whose
 * correlation id is the traced id (partner index: O(replies of that type the recipient
 * sent since then)), and then every record of each reply. */
static int
trace_replies(journal_t *j, trace_t *t, const trace_rec_t *r, pt_error_t *err)
{
    const char *type = reply_type(r->type);
    char *list = type && r->recipients ? strdup(r->recipients) : NULL, *save = NULL;
    int rc = 0;
    for (char *to = list ? strtok_r(list, ",", &save) : NULL; rc == 0 && to;
         to = strtok_r(NULL, ",", &save)) {
        jq_filter_t f = {.from = to,
                         .kind = PT_REC_RECEIVED,
                         .type = type,
                         .since = r->time_ms,
                         .correlation_id = t->id};
        uint64_t n;
        rc = jq_run(j, &f, note_reply, t, &n, err);
    }
    free(list);
    return rc;
}

/* Adds every record of each reply found (its deliveries, acknowledgements...). */
static int
trace_reply_records(journal_t *j, trace_t *t, pt_error_t *err)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_replies; i++) {
        jq_filter_t g = {.message_id = t->replies[i].id, .from = t->replies[i].from};
        uint64_t n;
        rc = jq_run(j, &g, trace_add, t, &n, err);
    }
    return rc;
}

static int
note_reply(const jq_row_t *row, void *arg)
{
    trace_t *t = arg;
    if (t->n_replies == sizeof t->replies / sizeof t->replies[0])
        return 1;
    snprintf(t->replies[t->n_replies].id, sizeof t->replies[0].id, "%s", row->v->message_id);
    snprintf(t->replies[t->n_replies].from, sizeof t->replies[0].from, "%s", row->sender);
    t->n_replies++;
    return 0;
}

static int
rec_cmp(const void *x, const void *y)
{
    const trace_rec_t *a = x, *b = y;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The records of message_id (of sender, when given) through the message-id index, and
 * those of its status replies, in sequence (time) order. */
static int
trace_load(journal_t *j, const char *message_id, const char *sender, trace_t *t)
{
    jq_filter_t f = {.message_id = message_id, .from = sender};
    t->r = calloc(TRACE_MAX, sizeof *t->r);
    t->id = message_id;
    uint64_t n;
    pt_error_t err;
    if (t->r == NULL)
        return CTL_FAILED;
    if (jq_run(j, &f, trace_add, t, &n, &err) != 0)
        return fail(&err);
    size_t own = t->n;
    for (size_t i = 0; i < own; i++)
        if (t->r[i].kind == PT_REC_RECEIVED && trace_replies(j, t, &t->r[i], &err) != 0)
            return fail(&err);
    if (trace_reply_records(j, t, &err) != 0)
        return fail(&err);
    qsort(t->r, t->n, sizeof *t->r, rec_cmp);
    return 0;
}

static const out_col_t trace_cols[] = {
    {"time", 24, false},      {"event", 13, false}, {"seq", 7, true},      {"sender", 12, false},
    {"recipient", 12, false}, {"attempt", 7, true}, {"delay_ms", 8, true}, {"detail", 0, false},
};

/* The RECEIVED (or REJECTED) record a delivery record refers to. */
static const trace_rec_t *
trace_origin(const trace_t *t, uint64_t seq)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->r[i].seq == seq)
            return &t->r[i];
    return NULL;
}

static void
trace_row(out_t *o, const trace_t *t, const trace_rec_t *r)
{
    char when[40], seq[24], att[16] = "", delay[24] = "", detail[600];
    out_time(r->time_ms, when, sizeof when);
    snprintf(seq, sizeof seq, "%" PRIu64, r->seq);
    const trace_rec_t *o0 = r->ref ? trace_origin(t, r->ref) : NULL;
    if (r->kind == PT_REC_DELIVERED)
        snprintf(att, sizeof att, "%u", r->attempt);
    if (o0 && (r->kind == PT_REC_ACKNOWLEDGED || r->kind == PT_REC_DEAD_LETTERED))
        snprintf(delay, sizeof delay, "%" PRId64, r->time_ms - o0->time_ms);
    if (r->kind == PT_REC_RECEIVED)
        snprintf(detail, sizeof detail, "%s%s, routed to %s", r->reply ? "reply: " : "", r->type,
                 r->recipients && r->recipients[0] ? r->recipients : "no one");
    else if (r->reply)
        snprintf(detail, sizeof detail, "reply: %s", r->reason ? r->reason : r->type);
    else
        snprintf(detail, sizeof detail, "%s", r->reason ? r->reason : "");
    const char *row[] = {
        when, journal_kind_name(r->kind), seq, r->sender, r->recipient, att, delay, detail};
    out_row(o, row);
}

/* Where one recipient of a RECEIVED record stands now, from the queues (which know
 * about requeues), and the attempts and last delivery from the records. */
static void
trace_pending(out_t *o, journal_t *j, const trace_t *t, const trace_rec_t *rcv, const char *to)
{
    journal_queue_entry_t e;
    size_t n = 0;
    pt_error_t err;
    uint32_t attempts = 0;
    int64_t last = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->r[i].ref == rcv->seq && t->r[i].kind == PT_REC_DELIVERED &&
            strcmp(t->r[i].recipient, to) == 0)
            attempts++, last = t->r[i].time_ms;
    if (journal_queue_list(j, to, rcv->seq - 1, &e, 1, &n, &err) != 0 || n == 0 ||
        e.seq != rcv->seq)
        return; /* acknowledged or dead-lettered: the records said so */
    char detail[200], ago[64] = "never delivered", seq[24];
    if (last) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        int64_t s = (int64_t)now.tv_sec - last / 1000;
        snprintf(ago, sizeof ago, "last %" PRId64 " %s ago",
                 s >= 7200  ? s / 3600
                 : s >= 120 ? s / 60
                            : s,
                 s >= 7200  ? "h"
                 : s >= 120 ? "min"
                            : "s");
    }
    snprintf(detail, sizeof detail, "not yet acknowledged by %s, %u attempts, %s%s", to, attempts,
             ago, e.replay ? " (replay)" : "");
    snprintf(seq, sizeof seq, "%" PRIu64, rcv->seq);
    const char *row[] = {"", "PENDING", seq, rcv->sender, to, "", "", detail};
    out_row(o, row);
}

/* Whether to is among the routed recipients of rcv ("a,b,c"). */
static bool
trace_routed(const trace_rec_t *rcv, const char *to)
{
    size_t n = strlen(to);
    for (const char *p = rcv->recipients; p && (p = strstr(p, to)) != NULL; p += n)
        if ((p == rcv->recipients || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return true;
    return false;
}

/* A forced replay's recipient (not routed): pending once, at its first REPLAYED record. */
static void
trace_forced_pending(out_t *o, journal_t *j, const trace_t *t, size_t i)
{
    const trace_rec_t *r = &t->r[i], *rcv = trace_origin(t, r->ref);
    if (r->kind != PT_REC_REPLAYED || rcv == NULL || trace_routed(rcv, r->recipient))
        return;
    for (size_t k = 0; k < i; k++)
        if (t->r[k].kind == PT_REC_REPLAYED && t->r[k].ref == r->ref &&
            strcmp(t->r[k].recipient, r->recipient) == 0)
            return;
    trace_pending(o, j, t, rcv, r->recipient);
}

static void
trace_summary(out_t *o, journal_t *j, const trace_t *t)
{
    for (size_t i = 0; i < t->n; i++) {
        const trace_rec_t *r = &t->r[i];
        trace_forced_pending(o, j, t, i);
        if (r->kind != PT_REC_RECEIVED || r->recipients == NULL)
            continue;
        char *list = strdup(r->recipients), *save = NULL;
        for (char *to = list ? strtok_r(list, ",", &save) : NULL; to;
             to = strtok_r(NULL, ",", &save))
            trace_pending(o, j, t, r, to);
        free(list);
    }
}

/* Several senders may use one message id: the trace names them all unless --sender. */
static void
trace_senders_note(const ctl_t *c, const trace_t *t)
{
    const char *first = NULL;
    for (size_t i = 0; i < t->n; i++) {
        if ((t->r[i].kind != PT_REC_RECEIVED && t->r[i].kind != PT_REC_REJECTED) || t->r[i].reply)
            continue;
        if (first && strcmp(first, t->r[i].sender) != 0) {
            fprintf(stderr,
                    "ptibusctl: %s: several senders used this message id: the sender "
                    "column tells them apart (--sender P keeps one)\n",
                    c->name);
            return;
        }
        first = t->r[i].sender;
    }
}

typedef struct one_args {
    const char *sender, *reason;
} one_args_t;

static int
one_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    one_args_t *a = arg;
    if (code == 's')
        a->sender = v;
    else if (code == 'r')
        a->reason = v;
    else
        return CTL_USAGE;
    return 0;
}

static int
one_parse(ctl_t *c, int argc, char **argv, one_args_t *a)
{
    static const struct option opts[] = {{"sender", required_argument, NULL, 's'},
                                         {"reason", required_argument, NULL, 'r'},
                                         CTL_COMMON_OPTS,
                                         CTL_CONN_OPTS,
                                         {NULL, 0, NULL, 0}};
    int rc = ctl_parse(c, argc, argv, opts, one_opt, a);
    if (rc == 0 && optind + 1 != argc)
        rc = CTL_USAGE;
    if (rc == 0)
        rc = journal_settings(c);
    return rc;
}

/* trace MESSAGE_ID [--sender P] */
int
cmd_trace(ctl_t *c, int argc, char **argv)
{
    one_args_t a = {0};
    int rc = one_parse(c, argc, argv, &a);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    trace_t t = {0};
    const char *id = argv[optind];
    rc = trace_load(j, id, a.sender, &t);
    if (rc == 0 && t.n == 0)
        rc = ctl_error(c, CTL_NOMATCH, "no record of message id %s%s%s", esc(id),
                       a.sender ? " from " : "", a.sender ? esc(a.sender) : "");
    if (rc == 0) {
        out_t o;
        out_begin(&o, c->fmt, trace_cols, sizeof trace_cols / sizeof *trace_cols);
        for (size_t i = 0; i < t.n; i++)
            trace_row(&o, &t, &t.r[i]);
        trace_summary(&o, j, &t);
        out_end(&o);
        if (!a.sender)
            trace_senders_note(c, &t);
        if (t.full)
            fprintf(stderr, "ptibusctl: %s: only the first %d records\n", c->name, TRACE_MAX);
    }
    trace_free(&t);
    journal_close(&j);
    return rc;
}

/* ---- journal show ---- */

/* The message of a record as proto3 JSON (NULL when it has none or it does not decode:
 * note says why). */
static json_t *
show_message(const journal_view_t *v, const char **note)
{
    *note = NULL;
    if (v->payload_len == 0)
        return NULL;
    ProtobufCMessage *m = NULL;
    json_t *js = NULL;
    pt_error_t err;
    if (codec_unpack_lenient(&ptibus__v1__envelope__descriptor, v->payload, v->payload_len,
                             v->payload_len, &m, &err) != 0 ||
        pjson_from_message(m, &js, &err) != 0)
        *note = "the stored bytes are not a valid envelope (refused as such)";
    codec_free(&m);
    return js;
}

static void
show_put(json_t *o, const char *k, const char *v)
{
    if (v && v[0])
        json_object_set_new(o, k, json_string(v));
}

static int
show_row(const jq_row_t *row, void *arg)
{
    const ctl_t *c = arg;
    const journal_view_t *v = row->v;
    char when[40];
    out_time(v->time_ms, when, sizeof when);
    json_t *o = json_object();
    const char *note;
    json_object_set_new(o, "seq", json_integer((json_int_t)v->seq));
    json_object_set_new(o, "time", json_string(when));
    json_object_set_new(o, "kind", json_string(journal_kind_name(v->kind)));
    show_put(o, "sender", row->sender);
    show_put(o, "recipient", row->recipient);
    show_put(o, "type", v->msg_type);
    show_put(o, "message_id", v->message_id);
    show_put(o, "correlation_id", v->correlation_id);
    if (v->ref_seq)
        json_object_set_new(o, "ref_seq", json_integer((json_int_t)v->ref_seq));
    if (v->kind == PT_REC_DELIVERED)
        json_object_set_new(o, "attempt", json_integer(v->attempt));
    if (v->reason && v->reason[0])
        json_object_set_new(o, "reason", json_string(esc(v->reason)));
    json_t *m = show_message(v, &note);
    if (m)
        json_object_set_new(o, "message", m);
    if (note)
        json_object_set_new(o, "message_note", json_string(note));
    size_t flags = JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER;
    json_dumpf(o, stdout, c->fmt == CTL_FMT_JSON ? flags | JSON_COMPACT : flags | JSON_INDENT(2));
    fputc('\n', stdout);
    json_decref(o);
    return 0;
}

static int
count_row(const jq_row_t *row, void *arg)
{
    (void)row;
    (void)arg;
    return 0;
}

static bool
all_digits(const char *s)
{
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return s[0] != '\0' && strlen(s) < 20;
}

/* journal show SEQ|MESSAGE_ID --reason TEXT [--sender P] */
int
cmd_journal_show(ctl_t *c, int argc, char **argv)
{
    one_args_t a = {0};
    int rc = one_parse(c, argc, argv, &a);
    if (rc == 0 && (a.reason == NULL || a.reason[0] == '\0'))
        rc = ctl_error(c, CTL_USAGE,
                       "--reason TEXT is required: the read of personal data is "
                       "journaled with it");
    if (rc == 0 && c->fmt != CTL_FMT_TABLE && c->fmt != CTL_FMT_JSON)
        rc = ctl_error(c, CTL_USAGE, "--format table or json (a message is a tree)");
    if (rc == 0)
        rc = admin_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    const char *key = argv[optind];
    jq_filter_t f = {.from = a.sender};
    if (all_digits(key))
        f.seq_from = f.seq_to = strtoull(key, NULL, 10);
    else
        f.message_id = key;
    uint64_t n = 0, audit = 0;
    pt_error_t err;
    char what[160];
    snprintf(what, sizeof what, "journal show %s%s%s", key, a.sender ? " --sender " : "",
             a.sender ? a.sender : "");
    /* First whether there is anything to show (audit fields only), then the record of
     * the read, and only then the records with their messages. */
    rc = jq_run(j, &f, count_row, NULL, &n, &err) != 0 ? fail(&err) : 0;
    if (rc == 0 && n == 0)
        rc = ctl_error(c, CTL_NOMATCH, "no record %s %s", f.message_id ? "with message id" : "seq",
                       esc(key));
    if (rc == 0 && (rc = admin_audit_read(c, what, a.reason, &audit)) != 0) {
        fprintf(stderr,
                "ptibusctl: %s: nothing shown: the read could not be recorded by the "
                "broker\n",
                c->name);
        rc = rc == CTL_USAGE ? rc : CTL_UNAUDITED;
    }
    if (rc == 0) {
        fprintf(stderr, "ptibusctl: %s: this read is journaled as ADMIN record %" PRIu64 "\n",
                c->name, audit);
        rc = jq_run(j, &f, show_row, c, &n, &err) != 0 ? fail(&err) : 0;
    }
    journal_close(&j);
    return rc;
}
