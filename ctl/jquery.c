/* jquery: filtered, streaming journal queries (see jquery.h). */
#include "jquery.h"

#include "codec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"

#define SENDER_CACHE 4096 /* direct-mapped: RECEIVED seq -> its sender */

typedef struct sender_slot {
    uint64_t seq;
    int64_t time_ms;
    char sender[40];
    char territory[JQ_TERRITORY_MAX];
} sender_slot_t;

typedef struct jq_run_ctx {
    journal_t *j;
    const jq_filter_t *f;
    jq_fn fn;
    void *arg;
    uint64_t matched;
    sender_slot_t *cache;
    uint8_t *buf; /* journal_get's buffer, for the senders */
    size_t cap;
    char recipients[PT_RECIPIENTS_MAX * 40];
    char territory[JQ_TERRITORY_MAX];
} jq_run_ctx_t;

journal_kind_t
jq_kind(const char *name)
{
    for (int k = PT_REC_RECEIVED; k <= PT_REC_DROPPED; k++) {
        const char *n = journal_kind_name((journal_kind_t)k);
        size_t i = 0;
        while (n[i] && name[i] && (n[i] == (name[i] == '-' ? '_' : name[i] & ~0x20)))
            i++;
        if (n[i] == '\0' && name[i] == '\0')
            return (journal_kind_t)k;
    }
    return 0;
}

bool
jq_delivery_kind(journal_kind_t k)
{
    return k == PT_REC_DELIVERED || k == PT_REC_ACKNOWLEDGED || k == PT_REC_DEAD_LETTERED ||
           k == PT_REC_REPLAYED || k == PT_REC_DROPPED;
}

int
jq_open(const char *dir, journal_t **j)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    pt_error_t err;
    if (journal_open(&o, j, &err) != 0)
        return fail(&err);
    return 0;
}

/* The partner index holds (partner, type, time) of every record; its partner is the
 * sender of RECEIVED and REJECTED records and the recipient of delivery records, so it
 * answers exactly when the kind says which role the partner has. */
static const char *
partner_key(const jq_filter_t *f)
{
    if (f->from && (f->kind == PT_REC_RECEIVED || f->kind == PT_REC_REJECTED))
        return f->from;
    if (f->to && jq_delivery_kind(f->kind))
        return f->to;
    return NULL;
}

const char *
jq_plan(const jq_filter_t *f)
{
    if (f->scan)
        return "scan";
    if (f->message_id)
        return "message-id index";
    return partner_key(f) ? "partner index" : "scan";
}

void
jq_territory(const journal_view_t *v, char *out, size_t cap)
{
    out[0] = '\0';
    if (v->payload != NULL)
        codec_envelope_territory(v->payload, v->payload_len, out, cap);
    else if (v->kind == PT_REC_REJECTED && v->reason != NULL)
        codec_refusal_territory(v->reason, out, cap);
}

/* The RECEIVED record a delivery record refers to: its sender, time and territory. */
static const sender_slot_t *
origin_of(jq_run_ctx_t *c, uint64_t ref)
{
    static const sender_slot_t none = {0};
    sender_slot_t *s = &c->cache[ref % SENDER_CACHE];
    if (s->seq == ref)
        return s;
    journal_view_t v;
    pt_error_t err;
    if (journal_get(c->j, ref, &v, &c->buf, &c->cap, &err) != 0)
        return &none;
    s->seq = ref;
    s->time_ms = v.time_ms;
    snprintf(s->sender, sizeof s->sender, "%s", v.partner ? v.partner : "");
    jq_territory(&v, s->territory, sizeof s->territory);
    return s;
}

static bool
routed_to(const journal_view_t *v, const char *p)
{
    for (size_t i = 0; i < v->n_recipients; i++)
        if (strcmp(v->recipients[i], p) == 0)
            return true;
    return false;
}

static bool
str_is(const char *v, const char *want)
{
    return want == NULL || strcmp(v ? v : "", want) == 0;
}

/* The filters on the record's own fields (the parties are checked after). */
static bool
fields_match(const jq_filter_t *f, const journal_view_t *v)
{
    return (f->kind == 0 || v->kind == f->kind) && (f->since == 0 || v->time_ms >= f->since) &&
           (f->until == 0 || v->time_ms < f->until) &&
           (f->seq_from == 0 || v->seq >= f->seq_from) && (f->seq_to == 0 || v->seq <= f->seq_to) &&
           str_is(v->msg_type, f->type) && str_is(v->message_id, f->message_id) &&
           str_is(v->correlation_id, f->correlation_id);
}

static const char *
join_recipients(jq_run_ctx_t *c, const journal_view_t *v)
{
    size_t off = 0;
    c->recipients[0] = '\0';
    for (size_t i = 0; i < v->n_recipients; i++)
        off += (size_t)snprintf(c->recipients + off, sizeof c->recipients - off, "%s%s",
                                i ? "," : "", v->recipients[i]);
    return c->recipients;
}

static int
visit(const journal_view_t *v, void *arg)
{
    jq_run_ctx_t *c = arg;
    const jq_filter_t *f = c->f;
    if (!fields_match(f, v))
        return 0;
    jq_row_t r = {.v = v, .sender = v->partner ? v->partner : "", .recipient = ""};
    if (jq_delivery_kind(v->kind)) {
        const sender_slot_t *o = v->ref_seq ? origin_of(c, v->ref_seq) : NULL;
        r.recipient = r.sender;
        r.sender = o ? o->sender : "";
        r.origin_ms = o ? o->time_ms : 0;
        r.territory = o ? o->territory : "";
    } else if (f->territory || f->with_territory) {
        jq_territory(v, c->territory, sizeof c->territory);
        r.territory = c->territory;
    }
    if (f->territory && strcmp(r.territory ? r.territory : "", f->territory) != 0)
        return 0;
    if (!str_is(r.sender, f->from))
        return 0;
    if (f->to &&
        !(strcmp(r.recipient, f->to) == 0 || (v->kind == PT_REC_RECEIVED && routed_to(v, f->to))))
        return 0;
    if (v->kind == PT_REC_RECEIVED)
        r.recipient = join_recipients(c, v);
    c->matched++;
    int rc = c->fn(&r, c->arg);
    if (rc == 0 && f->limit && c->matched >= f->limit)
        rc = 1;
    return rc;
}

/* Visits the records of an index's sequence list. */
static int
visit_seqs(jq_run_ctx_t *c, const uint64_t *seqs, size_t n, pt_error_t *err)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        journal_view_t v;
        int g = journal_get(c->j, seqs[i], &v, &buf, &cap, err);
        if (g == 0)
            rc = visit(&v, c);
        else if (g != PT_ENOTFOUND)
            rc = g;
    }
    free(buf);
    return rc < 0 ? rc : 0;
}

int
jq_run(journal_t *j, const jq_filter_t *f, jq_fn fn, void *arg, uint64_t *matched, pt_error_t *err)
{
    jq_run_ctx_t c = {.j = j, .f = f, .fn = fn, .arg = arg};
    c.cache = calloc(SENDER_CACHE, sizeof *c.cache);
    if (c.cache == NULL)
        return pt_error_set(err, -ENOMEM, "journal", "out of memory");
    const char *plan = jq_plan(f), *p = partner_key(f);
    uint64_t *seqs = NULL;
    size_t n = 0;
    int rc;
    if (strcmp(plan, "message-id index") == 0)
        rc = journal_find_message(j, f->message_id, &seqs, &n, err);
    else if (strcmp(plan, "partner index") == 0)
        rc = journal_find_partner(j, p, f->type, f->since ? f->since : INT64_MIN,
                                  f->until ? f->until : INT64_MAX, &seqs, &n, err);
    else
        rc = journal_scan(j, f->seq_from ? f->seq_from : 1, f->seq_to, visit, &c, err);
    if (rc == 0 && strcmp(plan, "scan") != 0)
        rc = visit_seqs(&c, seqs, n, err);
    free(seqs);
    free(c.cache);
    free(c.buf);
    *matched = c.matched;
    return rc < 0 ? rc : 0;
}

uint64_t
jq_seq_at(journal_t *j, int64_t time_ms)
{
    uint64_t lo = 1, hi = journal_last_seq(j) + 1;
    uint8_t *buf = NULL;
    size_t cap = 0;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        journal_view_t v;
        pt_error_t err;
        if (journal_get(j, mid, &v, &buf, &cap, &err) != 0 || v.time_ms >= time_ms)
            hi = mid;
        else
            lo = mid + 1;
    }
    free(buf);
    return lo;
}
