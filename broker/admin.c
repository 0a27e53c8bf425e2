/* admin: the admin socket's requests and answers. */
#include "admin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <zmq.h>

#include "auth.h"
#include "clock.h"
#include "codec.h"
#include "curve.h"
#include "log.h"
#include "nir.h"
#include "ptibus/v1/admin.pb-c.h"
#include "zpart.h"

#define ADMIN_MAX_REQUEST 65536 /* bytes; also the socket's ZMQ_MAXMSGSIZE */
#define ADMIN_LIST_DEFAULT 1000
#define ADMIN_LIST_MAX 10000      /* dead_letter_list.limit: a larger one is refused */
#define ADMIN_REASON_MAX 200      /* bytes of a requeue or replay reason */
#define ADMIN_SEQ_TEXT 1500       /* characters of seq ranges in one ADMIN record */
#define ADMIN_READ_EVERY_MS 10000 /* reads journaled once per administrator, kind, 10 s */
#define ADMIN_READERS 16
#define ADMIN_REPLAY_MAX 100000   /* messages re-enqueued by one request */
#define ADMIN_REPLAY_SCAN 1000000 /* records scanned by one request (the loop waits) */
#define ADMIN_REPLAY_SEQS 1000    /* replay.seqs in one request */

/* The coalescing of an administrator's reads: 0 stats, 1 dead-letter list. */
enum { READ_STATS, READ_DEAD, READ_KINDS };
typedef struct reader {
    char who[80];
    bool journaled[READ_KINDS];
    int64_t last_ms[READ_KINDS];      /* mono ms of the last journaled read */
    uint64_t unjournaled[READ_KINDS]; /* reads since, counted in the next record */
} reader_t;

/* Counter samples for the rates of stats: a ring, one sample a second. */
#define ADMIN_RATE_SAMPLES 61 /* 60 s of intervals */
typedef struct rate_sample {
    int64_t ms; /* monotonic; 0 = empty */
    uint64_t in, out;
} rate_sample_t;

/* Seqs an action touched, for its ADMIN records. */
typedef struct seqlist {
    uint64_t *v;
    size_t n, cap;
} seqlist_t;

struct admin {
    void *sock;
    reader_t readers[ADMIN_READERS];
    size_t n_readers;
    admin_deps_t d;
    batch_t *b; /* the loop turn, during admin_read */
    uint8_t *rbuf;
    size_t rcap;
    rate_sample_t rates[ADMIN_RATE_SAMPLES];
    size_t rate_next; /* where the next sample goes */
};

int
admin_open(void *zctx, const uint8_t server_sk[PT_KEY_LEN], const admin_deps_t *deps, admin_t **out,
           pt_error_t *err)
{
    *out = NULL;
    admin_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return pt_error_set(err, -ENOMEM, "admin", "out of memory");
    a->d = *deps;
    int linger = 0;
    int64_t max = ADMIN_MAX_REQUEST; /* larger: the peer is disconnected, nothing is read */
    a->sock = zmq_socket(zctx, ZMQ_ROUTER);
    /* An unfinished CURVE handshake is closed after 5 s. */
    if (a->sock == NULL || curve_server_setup(a->sock, server_sk, PT_ZAP_DOMAIN_ADMIN, 5000, err) ||
        zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
        zmq_bind(a->sock, deps->cfg->admin_listen) != 0) {
        int e = zmq_errno();
        admin_close(&a);
        return pt_error_set(err, -e, "admin.listen", "%s: %s", deps->cfg->admin_listen,
                            zmq_strerror(e));
    }
    *out = a;
    return 0;
}

void
admin_close(admin_t **ap)
{
    if (ap == NULL || *ap == NULL)
        return;
    admin_t *a = *ap;
    free(a->rbuf);
    if (a->sock)
        zmq_close(a->sock);
    free(a);
    *ap = NULL;
}

void *
admin_socket(admin_t *a)
{
    return a->sock;
}

/* Queues the answer in the batch. One that changed the journal (wrote) is valid only if
 * the turn commits: after a failure its request is answered "nothing was changed". */
static void
answer_push(admin_t *a, const uint8_t *rid, size_t rid_len, Ptibus__V1__AdminResponse *resp,
            bool wrote)
{
    Ptibus__V1__AdminResponse failed = PTIBUS__V1__ADMIN_RESPONSE__INIT;
    failed.request_id = resp->request_id;
    failed.error = "journal commit failed: nothing was changed, retry later";
    batch_frame_t f = {.dest = BATCH_ADMIN,
                       .rid = rid,
                       .rid_len = rid_len,
                       .msg = &resp->base,
                       .rule = wrote ? BATCH_FALLBACK : BATCH_ALWAYS,
                       .fallback = &failed.base};
    if (batch_push(a->b, &f) != 0)
        pt_log_warn("admin.send", "no memory for an answer: request %.64s unanswered",
                    resp->request_id ? resp->request_id : "");
}

/* Appends the ADMIN record of an administrator's action. The log says what (head,
 * no free text) and the record's seq; the reason is in the journal only. */
static int
admin_record_seq(admin_t *a, journal_txn_t *t, const char *who, const char *what, const char *head,
                 uint64_t *out, pt_error_t *err)
{
    journal_record_t rec = {.kind = PT_REC_ADMIN, .partner = who, .reason = what};
    uint64_t seq = 0;
    int rc = journal_append(t, &rec, &seq, err);
    if (rc != 0)
        batch_fail(a->b, rc, err);
    else
        pt_log_info("admin.action", "%s: %s (ADMIN record seq %llu)", who, head,
                    (unsigned long long)seq);
    if (out)
        *out = seq;
    return rc;
}

static int
admin_record(admin_t *a, journal_txn_t *t, const char *who, const char *what, const char *head,
             pt_error_t *err)
{
    return admin_record_seq(a, t, who, what, head, NULL, err);
}

/* ---- reasons: text an operator typed, journaled, listed on terminals ---- */

/* Decodes one UTF-8 sequence; 0 when malformed (overlong, surrogate, > U+10FFFF). */
static int
utf8_decode(const unsigned char *s, uint32_t *cp)
{
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4)
        return 0;
    uint32_t v = s[0] & (0x7Fu >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* NULL when reason is acceptable, else what is wrong with it: required, at most
 * ADMIN_REASON_MAX bytes of valid UTF-8, no control character (C0, DEL, C1). */
static const char *
reason_problem(const char *reason)
{
    if (reason == NULL || reason[0] == '\0')
        return "required: say why (an incident or ticket number); it is journaled";
    if (strlen(reason) > ADMIN_REASON_MAX)
        return "longer than 200 bytes";
    for (const unsigned char *p = (const unsigned char *)reason; *p;) {
        uint32_t cp;
        int len = utf8_decode(p, &cp);
        if (len == 0)
            return "not valid UTF-8";
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
            return "holds a control character (a newline, a tab, an escape...)";
        p += len;
    }
    return NULL;
}

/* ---- ADMIN records that name the seqs ---- */

static int
seqlist_push(seqlist_t *l, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = seq;
    return 0;
}

static int
cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Writes the sorted seqs from l->v[*i] as ranges ("12-14,20") into buf, as many as fit
 * in cap; advances *i past them. */
static void
format_ranges(const seqlist_t *l, size_t *i, char *buf, size_t cap)
{
    size_t off = 0;
    buf[0] = '\0';
    while (*i < l->n && cap - off > 48) {
        size_t j = *i;
        while (j + 1 < l->n && l->v[j + 1] <= l->v[j] + 1)
            j++;
        int n = l->v[j] == l->v[*i]
                    ? snprintf(buf + off, cap - off, "%s%llu", off ? "," : "",
                               (unsigned long long)l->v[*i])
                    : snprintf(buf + off, cap - off, "%s%llu-%llu", off ? "," : "",
                               (unsigned long long)l->v[*i], (unsigned long long)l->v[j]);
        off += (size_t)n;
        *i = j + 1;
    }
}

/* Journals an action as ADMIN records naming every seq it acted on: "HEAD; reason:
 * R; seqs (part K): RANGES", one record per ADMIN_SEQ_TEXT characters of ranges (an
 * action that touched nothing still has its record, with "seqs (part 1): -"). */
static int
record_action(admin_t *a, journal_txn_t *t, const char *who, const char *head, const char *reason,
              seqlist_t *l, pt_error_t *err)
{
    char ranges[ADMIN_SEQ_TEXT], text[ADMIN_SEQ_TEXT + 2 * ADMIN_REASON_MAX + 256];
    size_t i = 0;
    int rc = 0;
    if (l->n > 1)
        qsort(l->v, l->n, sizeof *l->v, cmp_u64);
    for (unsigned part = 1; rc == 0 && (part == 1 || i < l->n); part++) {
        format_ranges(l, &i, ranges, sizeof ranges);
        snprintf(text, sizeof text, "%s; reason: %s; seqs (part %u): %s", head, reason, part,
                 ranges[0] ? ranges : "-");
        rc = admin_record(a, t, who, text, head, err);
    }
    return rc;
}

/* ---- reads: journaled, a flood coalesced ---- */

static reader_t *
reader_of(admin_t *a, const char *who)
{
    for (size_t i = 0; i < a->n_readers; i++)
        if (strcmp(a->readers[i].who, who) == 0)
            return &a->readers[i];
    if (a->n_readers == ADMIN_READERS || strlen(who) >= sizeof a->readers[0].who)
        return NULL; /* no coalescing for it: every read is journaled */
    reader_t *r = &a->readers[a->n_readers++];
    memset(r, 0, sizeof *r);
    snprintf(r->who, sizeof r->who, "%s", who);
    return r;
}

/* Journals an administrator's read (what: no free text). Per administrator and kind,
 * at most one ADMIN record per ADMIN_READ_EVERY_MS; the reads in between are counted
 * in the next record. A read is answered even when its record cannot be written (a
 * full journal is when stats are needed most); the log has every read. */
static void
record_read(admin_t *a, const char *who, int kind, const char *what)
{
    reader_t *r = reader_of(a, who);
    int64_t now = pt_clock_mono_ms();
    pt_log_info("admin.read", "%s: %s", who, what);
    if (r && r->journaled[kind] && now - r->last_ms[kind] < ADMIN_READ_EVERY_MS) {
        r->unjournaled[kind]++;
        return;
    }
    char text[400];
    snprintf(text, sizeof text,
             "%s; %llu more reads of this kind by this administrator since "
             "its last record",
             what, (unsigned long long)(r ? r->unjournaled[kind] : 0));
    journal_txn_t *t = batch_txn(a->b);
    pt_error_t err;
    if (t == NULL || admin_record(a, t, who, text, what, &err) != 0) {
        pt_log_warn("admin.read", "%s: %s answered but not journaled: journal unavailable", who,
                    what);
        return;
    }
    if (r) {
        r->journaled[kind] = true;
        r->last_ms[kind] = now;
        r->unjournaled[kind] = 0;
    }
}

/* ---- stats ---- */

/* Accepted messages and deliveries sent (every partner) since start. */
static void
rate_counters(admin_t *a, uint64_t *in, uint64_t *out)
{
    *in = ingest_stats(a->d.ingest)->accepted;
    *out = 0;
    size_t n = delivery_peer_count(a->d.delivery);
    for (size_t i = 0; i < n; i++) {
        delivery_peer_stats_t p;
        delivery_peer_stats(a->d.delivery, i, &p);
        *out += p.delivered;
    }
}

void
admin_sample(admin_t *a, int64_t now_ms)
{
    rate_sample_t *s = &a->rates[a->rate_next];
    s->ms = now_ms > 0 ? now_ms : 1;
    rate_counters(a, &s->in, &s->out);
    a->rate_next = (a->rate_next + 1) % ADMIN_RATE_SAMPLES;
}

/* The rates between the oldest sample kept and now (the counters as they are). */
static void
stats_rates(admin_t *a, Ptibus__V1__BrokerStats *st)
{
    const rate_sample_t *old = &a->rates[a->rate_next]; /* the oldest, once the ring is full */
    for (size_t k = 0; old->ms == 0 && k < ADMIN_RATE_SAMPLES; k++)
        old = &a->rates[(a->rate_next + k) % ADMIN_RATE_SAMPLES];
    int64_t now = pt_clock_mono_ms(), ms = old->ms ? now - old->ms : 0;
    uint64_t in, out;
    rate_counters(a, &in, &out);
    if (ms <= 0)
        return;
    st->rate_window_ms = (uint32_t)ms;
    st->rate_in = (double)(in - old->in) * 1000.0 / (double)ms;
    /* A partner removed by a reload takes its count with it: no negative rate. */
    st->rate_out = out >= old->out ? (double)(out - old->out) * 1000.0 / (double)ms : 0;
}

static void
handle_stats(admin_t *a, Ptibus__V1__AdminResponse *resp, Ptibus__V1__BrokerStats *st,
             Ptibus__V1__PartnerStats *ps, Ptibus__V1__PartnerStats **pps)
{
    const ingest_stats_t *is = ingest_stats(a->d.ingest);
    size_t used, map, max;
    journal_usage(a->d.journal, &used, &map, &max);
    st->last_seq = journal_last_seq(a->d.journal);
    st->accepted = is->accepted;
    st->rejected = is->rejected;
    st->duplicates = is->duplicates;
    st->batches = is->batches;
    st->journal_bytes_used = used;
    st->journal_map_bytes = map;
    st->journal_max_bytes = max;
    journal_space_t sp;
    if (journal_space(a->d.journal, &sp, NULL) == 0) {
        st->journal_bytes_free = sp.free_bytes;
        st->journal_bytes_reclaimable = sp.reclaimable_bytes;
        st->journal_file_bytes = sp.file_bytes;
    }
    stats_rates(a, st);
    size_t n = delivery_peer_count(a->d.delivery);
    for (size_t i = 0; i < n; i++) {
        delivery_peer_stats_t p;
        delivery_peer_stats(a->d.delivery, i, &p);
        Ptibus__V1__PartnerStats init = PTIBUS__V1__PARTNER_STATS__INIT;
        ps[i] = init;
        ps[i].partner = (char *)p.partner;
        ps[i].online = p.online;
        ps[i].window = p.window;
        ps[i].in_flight = p.in_flight;
        ps[i].retrying = p.retrying;
        ps[i].queue_depth = p.depth;
        ps[i].oldest_enqueued_ms = p.oldest_ms;
        ps[i].delivered = p.delivered;
        ps[i].acknowledged = p.acknowledged;
        ps[i].dead_lettered = p.dead_lettered;
        pps[i] = &ps[i];
    }
    st->n_partners = n;
    st->partners = pps;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_STATS;
    resp->stats = st;
    resp->ok = 1;
}

/* ---- dead letters ---- */

static int
fail(Ptibus__V1__AdminResponse *resp, char *buf, size_t cap, const char *msg)
{
    snprintf(buf, cap, "%s", msg);
    resp->ok = 0;
    resp->error = buf;
    return -1;
}

static bool
known_recipient(admin_t *a, const char *id)
{
    return id && id[0] && bconfig_partner_by_id(a->d.cfg, id) != NULL;
}

/* Fills one list item; strings point into the per-item storage. */
typedef struct dl_item {
    Ptibus__V1__DeadLetter msg;
    char message_id[PT_MESSAGE_ID_MAX + 1], type[40], sender[PT_PARTNER_ID_MAX + 1];
} dl_item_t;

static void
fill_dead(admin_t *a, const journal_dead_entry_t *e, dl_item_t *it)
{
    Ptibus__V1__DeadLetter init = PTIBUS__V1__DEAD_LETTER__INIT;
    journal_view_t v;
    pt_error_t err;
    it->msg = init;
    it->msg.recipient = (char *)e->recipient;
    it->msg.seq = e->seq;
    it->msg.attempts = e->attempts;
    it->msg.dead_at_ms = e->dead_ms;
    it->message_id[0] = it->type[0] = it->sender[0] = '\0';
    if (journal_get(a->d.journal, e->seq, &v, &a->rbuf, &a->rcap, &err) == 0) {
        snprintf(it->message_id, sizeof it->message_id, "%s", v.message_id);
        snprintf(it->type, sizeof it->type, "%s", v.msg_type);
        snprintf(it->sender, sizeof it->sender, "%s", v.partner);
    }
    it->msg.message_id = it->message_id;
    it->msg.message_type = it->type;
    it->msg.sender = it->sender;
}

static void
handle_dead_list(admin_t *a, const uint8_t *rid, size_t rid_len, const char *admin,
                 const Ptibus__V1__DeadLetterListRequest *q, Ptibus__V1__AdminResponse *resp)
{
    char ebuf[PT_ERROR_MSG_MAX];
    const char *who = q->recipient && q->recipient[0] ? q->recipient : NULL;
    if (who && !known_recipient(a, who)) {
        fail(resp, ebuf, sizeof ebuf, "dead_letter_list.recipient: not a configured partner");
        answer_push(a, rid, rid_len, resp, false);
        return;
    }
    if (q->limit > ADMIN_LIST_MAX) {
        fail(resp, ebuf, sizeof ebuf,
             "dead_letter_list.limit: at most 10000 dead letters per request (0: 1000)");
        answer_push(a, rid, rid_len, resp, false);
        return;
    }
    journal_dead_entry_t *dead = NULL;
    size_t n = 0;
    pt_error_t err;
    if (journal_dead_list(a->d.journal, who, q->limit ? q->limit : ADMIN_LIST_DEFAULT, &dead, &n,
                          &err) != 0) {
        fail(resp, ebuf, sizeof ebuf, err.msg);
        answer_push(a, rid, rid_len, resp, false);
        return;
    }
    dl_item_t *items = calloc(n ? n : 1, sizeof *items);
    Ptibus__V1__DeadLetter **ptrs = calloc(n ? n : 1, sizeof *ptrs);
    Ptibus__V1__DeadLetterList list = PTIBUS__V1__DEAD_LETTER_LIST__INIT;
    if (items && ptrs) {
        for (size_t i = 0; i < n; i++) {
            fill_dead(a, &dead[i], &items[i]);
            ptrs[i] = &items[i].msg;
        }
        list.n_items = n;
        list.items = ptrs;
        char what[160];
        snprintf(what, sizeof what, "dead-letter list of %s read, %zu items",
                 who ? who : "every recipient", n);
        record_read(a, admin, READ_DEAD, what);
        resp->ok = 1;
        resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_DEAD_LETTERS;
        resp->dead_letters = &list;
    } else {
        fail(resp, ebuf, sizeof ebuf, "out of memory");
    }
    answer_push(a, rid, rid_len, resp, false);
    free(items);
    free(ptrs);
    free(dead);
}

/* Requeues one dead letter; a seq that is not one of the recipient's dead letters is
 * skipped. Returns 0, or a push failure (the batch is then failed). */
static int
requeue_one(admin_t *a, journal_txn_t *t, const char *recipient, uint64_t seq, seqlist_t *done)
{
    pt_error_t err;
    if (journal_dead_requeue(t, recipient, seq, &err) != 0)
        return 0;
    int rc = seqlist_push(done, seq);
    if (rc != 0) {
        pt_error_set(&err, rc, "admin", "out of memory");
        batch_fail(a->b, rc, &err);
    }
    return rc;
}

static int
requeue_all(admin_t *a, journal_txn_t *t, const char *recipient, seqlist_t *done)
{
    journal_dead_entry_t *dead = NULL;
    size_t n = 0;
    pt_error_t err;
    int rc = journal_dead_list(a->d.journal, recipient, ADMIN_REPLAY_MAX, &dead, &n, &err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = requeue_one(a, t, recipient, dead[i].seq, done);
    free(dead);
    return rc;
}

static void
handle_requeue(admin_t *a, const char *who, const Ptibus__V1__DeadLetterRequeueRequest *q,
               Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    const char *bad = reason_problem(q->reason);
    if (!known_recipient(a, q->recipient))
        return (void)fail(resp, ebuf, cap,
                          "dead_letter_requeue.recipient: not a configured partner");
    if (bad != NULL) {
        char msg[200];
        snprintf(msg, sizeof msg, "dead_letter_requeue.reason: %s", bad);
        return (void)fail(resp, ebuf, cap, msg);
    }
    journal_txn_t *t = batch_txn(a->b);
    if (t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: nothing was changed, retry later");
    seqlist_t done = {0};
    pt_error_t err;
    int rc = q->all ? requeue_all(a, t, q->recipient, &done) : 0;
    for (size_t i = 0; rc == 0 && i < q->n_seqs; i++)
        rc = requeue_one(a, t, q->recipient, q->seqs[i], &done);
    char head[160];
    snprintf(head, sizeof head, "requeued %zu dead letters of %s", done.n, q->recipient);
    if (rc == 0)
        rc = record_action(a, t, who, head, q->reason, &done, &err);
    uint32_t n = (uint32_t)done.n;
    free(done.v);
    if (rc != 0)
        return (void)fail(resp, ebuf, cap, "journal write failed: nothing was changed");
    delivery_wake(a->d.delivery, q->recipient, n);
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_REQUEUED;
    resp->requeued = n;
}

/* ---- dead letters dropped for good ---- */

typedef struct drop_ctx {
    admin_t *a;
    journal_txn_t *t;
    const char *why; /* "dropped by WHO: REASON", in each DROPPED record */
    seqlist_t done;
    int rc;
} drop_ctx_t;

/* Drops one dead letter of recipient with its DROPPED record; a seq that is not one of
 * its dead letters is skipped. Sets c->rc (the batch failed) on a write failure. */
static void
drop_one(drop_ctx_t *c, const char *recipient, uint64_t seq)
{
    journal_queue_entry_t e;
    journal_view_t v;
    pt_error_t err = {0};
    char type[40] = "", id[PT_MESSAGE_ID_MAX + 1] = "";
    if (c->rc != 0 || journal_dead_drop(c->t, recipient, seq, &e, &err) != 0)
        return;
    if (journal_txn_get(c->t, seq, &v, &c->a->rbuf, &c->a->rcap, &err) == 0) {
        snprintf(type, sizeof type, "%s", v.msg_type);
        snprintf(id, sizeof id, "%s", v.message_id);
    }
    journal_record_t rec = {.kind = PT_REC_DROPPED,
                            .partner = recipient,
                            .msg_type = type,
                            .message_id = id,
                            .ref_seq = seq,
                            .attempt = e.attempts,
                            .reason = c->why};
    uint64_t rseq;
    c->rc = journal_append(c->t, &rec, &rseq, &err);
    if (c->rc == 0 && (c->rc = seqlist_push(&c->done, seq)) != 0)
        pt_error_set(&err, c->rc, "admin", "out of memory");
    if (c->rc != 0)
        batch_fail(c->a->b, c->rc, &err);
}

/* Both states: the committed dead letters, dropped in the batch. */
static int
drop_all(drop_ctx_t *c, const char *recipient)
{
    journal_dead_entry_t *dead = NULL;
    size_t n = 0;
    pt_error_t err;
    int rc = journal_dead_list(c->a->d.journal, recipient, ADMIN_REPLAY_MAX, &dead, &n, &err);
    for (size_t i = 0; rc == 0 && c->rc == 0 && i < n; i++)
        drop_one(c, dead[i].recipient, dead[i].seq);
    free(dead);
    return rc ? rc : c->rc;
}

/* The given seqs, of recipient or (NULL) of every partner that has them dead. */
static int
drop_seqs(drop_ctx_t *c, const char *recipient, const uint64_t *seqs, size_t n)
{
    const bconfig_t *cfg = c->a->d.cfg;
    for (size_t i = 0; c->rc == 0 && i < n; i++) {
        if (recipient != NULL)
            drop_one(c, recipient, seqs[i]);
        for (size_t p = 0; recipient == NULL && c->rc == 0 && p < cfg->n_partners; p++)
            drop_one(c, cfg->partners[p].id, seqs[i]);
    }
    return c->rc;
}

static const char *
drop_problem(admin_t *a, const Ptibus__V1__DeadLetterDropRequest *q, char *msg, size_t cap)
{
    const char *bad = reason_problem(q->reason);
    if (q->recipient && q->recipient[0] && !known_recipient(a, q->recipient))
        return "dead_letter_drop.recipient: not a configured partner";
    if (bad != NULL) {
        snprintf(msg, cap, "dead_letter_drop.reason: %s", bad);
        return msg;
    }
    if (q->all == (q->n_seqs > 0))
        return "dead_letter_drop: give either all or seqs";
    if (q->n_seqs > ADMIN_REPLAY_SEQS)
        return "dead_letter_drop.seqs: more than 1000 seqs in one request; split it";
    return NULL;
}

static void
handle_drop(admin_t *a, const char *who, const Ptibus__V1__DeadLetterDropRequest *q,
            Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    char msg[200], why[ADMIN_REASON_MAX + 120], head[160];
    const char *bad = drop_problem(a, q, msg, sizeof msg);
    const char *to = q->recipient && q->recipient[0] ? q->recipient : NULL;
    if (bad != NULL)
        return (void)fail(resp, ebuf, cap, bad);
    drop_ctx_t c = {.a = a, .t = batch_txn(a->b), .why = why};
    if (c.t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: nothing was changed, retry later");
    snprintf(why, sizeof why, "dropped by %s: %s", who, q->reason);
    int rc = q->all ? drop_all(&c, to) : drop_seqs(&c, to, q->seqs, q->n_seqs);
    pt_error_t err;
    snprintf(head, sizeof head, "dropped %zu dead letters of %s", c.done.n,
             to ? to : "every recipient");
    if (rc == 0)
        rc = record_action(a, c.t, who, head, q->reason, &c.done, &err);
    uint32_t n = (uint32_t)c.done.n;
    free(c.done.v);
    if (rc != 0)
        return (void)fail(resp, ebuf, cap, "journal write failed: nothing was changed");
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_DROPPED;
    resp->dropped = n;
}

typedef struct replay_ctx {
    admin_t *a;
    journal_txn_t *t;
    const char *recipient;
    const char *reason;
    bool force; /* also to a recipient the routes did not give the message */
    uint32_t done;
    uint32_t forced;      /* of done, those the routes did not give the recipient */
    uint32_t removed;     /* skipped: payload expired or erased (retention, erasure) */
    uint64_t removed_seq; /* the last of them */
    seqlist_t seqs;       /* the RECEIVED seqs replayed, for the ADMIN records */
    int rc;
} replay_ctx_t;

static bool
was_recipient(const journal_view_t *v, const char *recipient)
{
    for (size_t i = 0; i < v->n_recipients; i++)
        if (strcmp(v->recipients[i], recipient) == 0)
            return true;
    return false;
}

/* Re-enqueues one journaled message for the recipient, flagged as a replay. */
static int
replay_one(const journal_view_t *v, void *arg)
{
    replay_ctx_t *c = arg;
    bool routed = v->kind == PT_REC_RECEIVED && was_recipient(v, c->recipient);
    if (v->kind != PT_REC_RECEIVED || (!routed && !c->force))
        return 0;
    if (v->payload_state == PT_PAYLOAD_EXPIRED || v->payload_state == PT_PAYLOAD_ERASED) {
        c->removed++; /* nothing left to deliver: reported, never replayed */
        c->removed_seq = v->seq;
        return 0;
    }
    journal_queue_entry_t e = {.seq = v->seq, .replay = true};
    pt_error_t err;
    if (journal_queue_get(c->t, c->recipient, v->seq, &e) == 0)
        return 0; /* still queued: it will be delivered anyway */
    e = (journal_queue_entry_t){.seq = v->seq, .replay = true};
    journal_record_t rec = {.kind = PT_REC_REPLAYED,
                            .partner = c->recipient,
                            .msg_type = v->msg_type,
                            .message_id = v->message_id,
                            .ref_seq = v->seq,
                            .reason = c->reason};
    uint64_t seq;
    c->rc = journal_queue_put(c->t, c->recipient, &e, &err);
    if (c->rc == 0)
        c->rc = journal_append(c->t, &rec, &seq, &err);
    if (c->rc == 0 && (c->rc = seqlist_push(&c->seqs, v->seq)) != 0)
        pt_error_set(&err, c->rc, "admin", "out of memory");
    if (c->rc != 0) {
        batch_fail(c->a->b, c->rc, &err);
        return 1;
    }
    c->forced += !routed;
    return ++c->done >= ADMIN_REPLAY_MAX;
}

static int
replay_by_id(admin_t *a, replay_ctx_t *c, const char *message_id, pt_error_t *err)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    /* Both states: the committed records of the id, re-enqueued in the batch. */
    int rc = journal_find_message(a->d.journal, message_id, &seqs, &n, err);
    for (size_t i = 0; rc == 0 && c->rc == 0 && i < n; i++) {
        journal_view_t v;
        if (journal_txn_get(c->t, seqs[i], &v, &a->rbuf, &a->rcap, err) == 0)
            replay_one(&v, c);
    }
    free(seqs);
    return rc ? rc : c->rc;
}

/* Replays exactly the given RECEIVED seqs (the others are skipped as by a scan). */
static int
replay_by_seqs(admin_t *a, replay_ctx_t *c, const uint64_t *seqs, size_t n, pt_error_t *err)
{
    for (size_t i = 0; c->rc == 0 && i < n; i++) {
        journal_view_t v;
        if (journal_txn_get(c->t, seqs[i], &v, &a->rbuf, &a->rcap, err) == 0)
            replay_one(&v, c);
    }
    return c->rc;
}

/* What is wrong with a replay request (into msg), or NULL. */
static const char *
replay_problem(admin_t *a, const Ptibus__V1__ReplayRequest *q, char *msg, size_t cap)
{
    const char *bad = reason_problem(q->reason);
    bool by_id = q->message_id && q->message_id[0];
    uint64_t last = q->to_seq ? q->to_seq : journal_last_seq(a->d.journal);
    if (!known_recipient(a, q->recipient))
        return "replay.recipient: not a configured partner";
    if (bad != NULL) {
        snprintf(msg, cap, "replay.reason: %s", bad);
        return msg;
    }
    if (bad == NULL && q->filter && q->filter[0] && (bad = reason_problem(q->filter)) != NULL) {
        snprintf(msg, cap, "replay.filter: %s", bad);
        return msg;
    }
    if (q->n_seqs > ADMIN_REPLAY_SEQS)
        return "replay.seqs: more than 1000 seqs in one request; split it";
    if (q->n_seqs > 0 && (by_id || q->from_seq))
        return "replay: give seqs, a range (from_seq) or message_id, not several";
    if (q->n_seqs > 0)
        return NULL;
    if (!by_id && q->from_seq == 0)
        return "replay: give from_seq (and to_seq), message_id or seqs";
    if (!by_id && last >= q->from_seq && last - q->from_seq >= ADMIN_REPLAY_SCAN)
        return "replay.to_seq: more than 1000000 records in the range; split it";
    return NULL;
}

static void
handle_replay(admin_t *a, const char *who, const Ptibus__V1__ReplayRequest *q,
              Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    char msg[200], why[320], head[240], said[2 * ADMIN_REASON_MAX + 16];
    const char *bad = replay_problem(a, q, msg, sizeof msg);
    if (bad != NULL)
        return (void)fail(resp, ebuf, cap, bad);
    replay_ctx_t c = {.a = a, .t = batch_txn(a->b), .recipient = q->recipient, .force = q->force};
    if (c.t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: nothing was changed");
    snprintf(why, sizeof why, "%s by %s: %s", q->force ? "forced replay" : "replay", who,
             q->reason);
    c.reason = why;
    pt_error_t err = {0}; /* a failure inside replay_one leaves it empty */
    /* Both states: a committed scan whose callback writes into the batch. */
    int rc = q->n_seqs ? replay_by_seqs(a, &c, q->seqs, q->n_seqs, &err)
             : q->message_id && q->message_id[0]
                 ? replay_by_id(a, &c, q->message_id, &err)
                 : journal_scan(a->d.journal, q->from_seq, q->to_seq, replay_one, &c, &err);
    int hn = snprintf(head, sizeof head, "replayed %u messages to %s", c.done, q->recipient);
    if (q->force && hn > 0 && (size_t)hn < sizeof head)
        hn += snprintf(head + hn, sizeof head - (size_t)hn,
                       " (forced: %u of them not routed to it)", c.forced);
    if (c.removed > 0 && hn > 0 && (size_t)hn < sizeof head)
        snprintf(head + hn, sizeof head - (size_t)hn, " (%u not: payload expired or erased)",
                 c.removed);
    if (rc >= 0 && c.rc == 0 && c.done == 0 && c.removed > 0) {
        snprintf(msg, sizeof msg,
                 "replay: the payload of record %llu (%u records in all) expired under the "
                 "retention policy or was erased: nothing to replay",
                 (unsigned long long)c.removed_seq, c.removed);
        free(c.seqs.v);
        return (void)fail(resp, ebuf, cap, msg);
    }
    /* The filter is the operator's text: in the record with the reason, not in the log. */
    snprintf(said, sizeof said, "%s%s%s", q->reason, q->filter && q->filter[0] ? "; filter: " : "",
             q->filter ? q->filter : "");
    if (rc >= 0 && c.rc == 0)
        rc = record_action(a, c.t, who, head, said, &c.seqs, &err);
    free(c.seqs.v);
    if (rc < 0 || c.rc != 0)
        return (void)fail(resp, ebuf, cap,
                          err.msg[0] ? err.msg : "journal write failed: nothing was changed");
    delivery_wake(a->d.delivery, q->recipient, c.done);
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_REPLAYED;
    resp->replayed = c.done;
}

/* Erases one person's payloads (journal_erase_person); journaled without the NIR. */
static void
handle_erase(admin_t *a, const char *who, const Ptibus__V1__EraseRequest *q,
             Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    char nir[PT_NIR_NORM_SIZE], msg[200], head[240];
    const char *bad = reason_problem(q->reason);
    journal_txn_t *t = batch_txn(a->b);
    journal_erase_report_t rep;
    seqlist_t l = {0};
    pt_error_t err = {0};
    if (bad != NULL) {
        snprintf(msg, sizeof msg, "erase.reason: %s", bad);
        return (void)fail(resp, ebuf, cap, msg);
    }
    if (nir_normalise(q->nir ? q->nir : "", nir, &err) != 0)
        return (void)fail(resp, ebuf, cap, "erase.nir: not a valid NIR");
    if (t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: nothing was changed");
    int rc = journal_erase_person(t, nir, q->force, q->reason, &rep, &l.v, &l.n, &err);
    sodium_memzero(nir, sizeof nir);
    if (rc != 0 && rc != PT_EDENIED)
        batch_fail(a->b, rc, &err);
    if (rc != 0)
        return (void)fail(resp, ebuf, cap, err.msg);
    snprintf(head, sizeof head,
             "erased %zu payloads about one person (%zu records: %zu already gone, %zu format 1 "
             "kept; %zu dead-lettered first)",
             rep.erased, rep.records, rep.already, rep.format1, rep.dead_lettered);
    rc = record_action(a, t, who, head, q->reason, &l, &err);
    free(l.v);
    if (rc < 0)
        return (void)fail(resp, ebuf, cap, "journal write failed: nothing was changed");
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_ERASED;
    resp->erased = (uint32_t)rep.erased;
}

/* ---- audited reads of personal data ---- */

/* Journals the read before the operator sees anything: the answer (audit_seq) leaves
 * only once the ADMIN record is committed (BATCH_FALLBACK), so ptibusctl cannot show
 * personal data whose read is not on disk. The log says who and the seq, not the text. */
static void
handle_audit_read(admin_t *a, const char *who, const Ptibus__V1__AuditReadRequest *q,
                  Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    char msg[300], text[ADMIN_REASON_MAX * 3 + 128];
    const char *bad = reason_problem(q->reason), *what = "audit_read.reason";
    if (bad == NULL && (bad = reason_problem(q->command)) != NULL)
        what = "audit_read.command";
    if (bad == NULL && q->operator_name[0] && (bad = reason_problem(q->operator_name)) != NULL)
        what = "audit_read.operator_name";
    if (bad != NULL) {
        snprintf(msg, sizeof msg, "%s: %s", what, bad);
        return (void)fail(resp, ebuf, cap, msg);
    }
    journal_txn_t *t = batch_txn(a->b);
    if (t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: the read is not recorded");
    snprintf(text, sizeof text, "personal-data read: %s; operator: %s; reason: %s", q->command,
             q->operator_name[0] ? q->operator_name : "-", q->reason);
    uint64_t seq = 0;
    pt_error_t err;
    if (admin_record_seq(a, t, who, text, "personal-data read", &seq, &err) != 0)
        return (void)fail(resp, ebuf, cap, "journal write failed: the read is not recorded");
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_AUDIT_SEQ;
    resp->audit_seq = seq;
}

/* ---- dispatch ---- */

static void
handle(admin_t *a, const uint8_t *rid, size_t rid_len, const char *who,
       const Ptibus__V1__AdminRequest *q)
{
    Ptibus__V1__AdminResponse resp = PTIBUS__V1__ADMIN_RESPONSE__INIT;
    char ebuf[PT_ERROR_MSG_MAX];
    resp.request_id = q->request_id;
    switch (q->kind_case) {
    case PTIBUS__V1__ADMIN_REQUEST__KIND_STATS: {
        Ptibus__V1__BrokerStats st = PTIBUS__V1__BROKER_STATS__INIT;
        size_t n = delivery_peer_count(a->d.delivery);
        Ptibus__V1__PartnerStats *ps = calloc(n ? n : 1, sizeof *ps);
        Ptibus__V1__PartnerStats **pps = calloc(n ? n : 1, sizeof *pps);
        if (ps && pps) {
            handle_stats(a, &resp, &st, ps, pps);
            record_read(a, who, READ_STATS, "stats read");
        } else
            fail(&resp, ebuf, sizeof ebuf, "out of memory");
        answer_push(a, rid, rid_len, &resp, false);
        free(ps);
        free(pps);
        return;
    }
    case PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST:
        handle_dead_list(a, rid, rid_len, who, q->dead_letter_list, &resp);
        return;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE:
        handle_requeue(a, who, q->dead_letter_requeue, &resp, ebuf, sizeof ebuf);
        break;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_DROP:
        handle_drop(a, who, q->dead_letter_drop, &resp, ebuf, sizeof ebuf);
        break;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY:
        handle_replay(a, who, q->replay, &resp, ebuf, sizeof ebuf);
        break;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_ERASE:
        handle_erase(a, who, q->erase, &resp, ebuf, sizeof ebuf);
        break;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_AUDIT_READ:
        handle_audit_read(a, who, q->audit_read, &resp, ebuf, sizeof ebuf);
        break;
    default:
        fail(&resp, ebuf, sizeof ebuf, "request: unknown or missing kind");
        break;
    }
    answer_push(a, rid, rid_len, &resp, resp.ok);
}

/* Answers one request: its body is the single part after the routing id. */
static void
on_request(admin_t *a, zmq_msg_t *rid, zmq_msg_t *body, size_t extra)
{
    const char *who = zmq_msg_gets(body, "User-Id");
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    if (who == NULL || strncmp(who, PT_ADMIN_USER_PREFIX, strlen(PT_ADMIN_USER_PREFIX)) != 0) {
        pt_log_error("admin.identity", "request without an administrator identity dropped");
        return;
    }
    if (extra > 0)
        pt_error_set(&err, PT_EMALFORMED, "request",
                     "a message of %zu parts: a request is exactly one ZeroMQ message part",
                     extra + 1);
    if (extra > 0 || codec_unpack(&ptibus__v1__admin_request__descriptor, zmq_msg_data(body),
                                  zmq_msg_size(body), ADMIN_MAX_REQUEST, &m, &err) != 0) {
        Ptibus__V1__AdminResponse resp = PTIBUS__V1__ADMIN_RESPONSE__INIT;
        char ebuf[PT_ERROR_MSG_MAX];
        fail(&resp, ebuf, sizeof ebuf, err.msg);
        answer_push(a, zmq_msg_data(rid), zmq_msg_size(rid), &resp, false);
        return;
    }
    handle(a, zmq_msg_data(rid), zmq_msg_size(rid), who, (Ptibus__V1__AdminRequest *)m);
    codec_free(&m);
}

static bool
read_one(admin_t *a)
{
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    zmq_msg_init(&body);
    bool got = zmq_msg_recv(&rid, a->sock, ZMQ_DONTWAIT) >= 0;
    /* The parts of one message arrive together: none of these receives blocks. */
    if (got && zmq_msg_more(&rid) && zmq_msg_recv(&body, a->sock, ZMQ_DONTWAIT) >= 0)
        on_request(a, &rid, &body, zpart_drain(a->sock, &body));
    zmq_msg_close(&body);
    zmq_msg_close(&rid);
    return got;
}

int
admin_read(admin_t *a, batch_t *b)
{
    int n = 0;
    a->b = b;
    while (n < 64 && read_one(a))
        n++;
    a->b = NULL;
    return n;
}
