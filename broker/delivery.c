/* delivery: per-recipient sessions, credit, in-flight tracking, redelivery with
 * backoff, dead letters and receipts, over the journal's durable queues. */
#include "delivery.h"
#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include <zmq.h>

#include "broker_metrics.h"
#include "codec.h"
#include "log.h"
#include "utf8.h"
#include "validate.h"

/* What the broker puts before a recipient's reason for refusing a message. */
#define ACK_REASON_PREFIX "recipient cannot process it: "

#define LIST_CHUNK 64

typedef struct pending_msg {
    uint64_t seq;
    uint32_t attempt; /* for in-flight: this attempt; for retries: attempts made */
    uint32_t bytes;   /* envelope size, counted in the peer's byte window */
    bool replay;
    int64_t due; /* in flight: ack deadline; retry: when to retry */
} pending_msg_t;

typedef struct pending_list {
    pending_msg_t *v;
    size_t n, cap;
} pending_list_t;

typedef struct peer {
    const bconfig_partner_t *p;
    bool online;
    uint8_t rid[PT_RID_MAX];
    size_t rid_len;
    int64_t last_seen;
    uint32_t window; /* credit granted, clamped to max_in_flight */
    uint64_t bytes;  /* envelope bytes of the deliveries in flight and waiting for a retry */
    pending_list_t inflight;
    pending_list_t retry;
    uint64_t cursor; /* highest queue seq handed out this session */
    bool more;       /* the durable queue may hold entries above cursor */
    bool blocked;    /* the connection's send queue was full this turn */
    uint64_t depth;
    uint64_t delivered, acknowledged, dead_lettered;
} peer_t;

struct delivery {
    journal_t *journal;
    const bconfig_t *cfg;
    delivery_options_t opt;
    delivery_send_fn send; /* a Deliver, at once: journaled only if the connection took it */
    void *send_arg;
    peer_t *peers;
    size_t n_peers;
    peer_t *spare; /* delivery_reload_prepare's, for the partners of the next config */
    batch_t *b;    /* the loop turn, during one handler call */
    uint8_t *rbuf; /* record read buffer */
    size_t rcap;
    metrics_t *metrics;
    metrics_family_t *m_delivered, *m_acked, *m_dead, *m_depth, *m_age;
    metrics_series_t *m_connected;
};

void
delivery_set_metrics(delivery_t *d, metrics_t *m)
{
    d->metrics = m;
    d->m_delivered = m ? metrics_find(m, PT_METRIC_DELIVERED) : NULL;
    d->m_acked = m ? metrics_find(m, PT_METRIC_ACKNOWLEDGED) : NULL;
    d->m_dead = m ? metrics_find(m, PT_METRIC_DEAD_LETTERED) : NULL;
    d->m_depth = m ? metrics_find(m, PT_METRIC_QUEUE_DEPTH) : NULL;
    d->m_age = m ? metrics_find(m, PT_METRIC_QUEUE_OLDEST_AGE) : NULL;
    d->m_connected = m ? metrics_series(metrics_find(m, PT_METRIC_PARTNERS_CONNECTED), NULL) : NULL;
}

static void
count(metrics_family_t *f, const char *recipient, const char *type)
{
    const char *labels[] = {recipient, type && type[0] ? type : "unknown"};
    if (f)
        metrics_add(metrics_series(f, labels), 1);
}

static peer_t *
peer_find(delivery_t *d, const char *partner)
{
    for (size_t i = 0; i < d->n_peers; i++)
        if (strcmp(d->peers[i].p->id, partner) == 0)
            return &d->peers[i];
    return NULL;
}

static int
list_push(pending_list_t *l, const pending_msg_t *m)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        pending_msg_t *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *m;
    return 0;
}

static pending_msg_t *
list_find(pending_list_t *l, uint64_t seq)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].seq == seq)
            return &l->v[i];
    return NULL;
}

static void
list_remove(pending_list_t *l, pending_msg_t *m)
{
    *m = l->v[--l->n];
}

static int
count_depths(delivery_t *d, pt_error_t *err)
{
    for (size_t i = 0; i < d->n_peers; i++) {
        int64_t oldest;
        int rc =
            journal_queue_stats(d->journal, d->peers[i].p->id, &d->peers[i].depth, &oldest, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
delivery_new(journal_t *j, const bconfig_t *cfg, const delivery_options_t *opts,
             delivery_send_fn send, void *send_arg, delivery_t **out, pt_error_t *err)
{
    *out = NULL;
    delivery_t *d = calloc(1, sizeof *d);
    if (d == NULL || (d->peers = calloc(cfg->n_partners, sizeof *d->peers)) == NULL) {
        free(d);
        return pt_error_set(err, -ENOMEM, "delivery", "out of memory");
    }
    d->journal = j;
    d->cfg = cfg;
    d->opt = *opts;
    d->send = send;
    d->send_arg = send_arg;
    d->n_peers = cfg->n_partners;
    for (size_t i = 0; i < d->n_peers; i++)
        d->peers[i].p = &cfg->partners[i];
    int rc = count_depths(d, err);
    if (rc != 0) {
        delivery_destroy(&d);
        return rc;
    }
    *out = d;
    return 0;
}

static void
peers_free(peer_t *peers, size_t n)
{
    for (size_t i = 0; peers != NULL && i < n; i++) {
        free(peers[i].inflight.v);
        free(peers[i].retry.v);
    }
    free(peers);
}

int
delivery_reload_prepare(delivery_t *d, size_t n_partners)
{
    free(d->spare);
    d->spare = calloc(n_partners ? n_partners : 1, sizeof *d->spare);
    return d->spare ? 0 : -ENOMEM;
}

/* A partner new to this configuration: no session; its durable queue may hold entries
 * (it was configured before, removed, and is back). */
static void
peer_start(delivery_t *d, peer_t *pr, const bconfig_partner_t *p)
{
    *pr = (peer_t){.p = p};
    int64_t oldest;
    pt_error_t err;
    if (journal_queue_stats(d->journal, p->id, &pr->depth, &oldest, &err) != 0)
        pt_log_error("delivery.reload", "partner=%s: queue not counted: %s", p->id, err.msg);
    pr->more = pr->depth > 0;
}

void
delivery_reload_commit(delivery_t *d, const ptrdiff_t *from)
{
    if (from == NULL) {
        free(d->spare);
        d->spare = NULL;
        return;
    }
    for (size_t i = 0; i < d->cfg->n_partners; i++) {
        if (from[i] < 0) {
            peer_start(d, &d->spare[i], &d->cfg->partners[i]);
            continue;
        }
        /* A kept partner: its session, window and deliveries in flight go on. */
        d->spare[i] = d->peers[from[i]];
        d->spare[i].p = &d->cfg->partners[i];
        d->peers[from[i]] = (peer_t){.p = NULL};
    }
    for (size_t i = 0; i < d->n_peers; i++)
        if (d->peers[i].p != NULL && d->peers[i].online)
            pt_log_notice("delivery.removed",
                          "partner=%s removed from the configuration: its "
                          "session ends, its queue stays in the journal",
                          d->peers[i].p->id);
    peers_free(d->peers, d->n_peers);
    d->peers = d->spare;
    d->n_peers = d->cfg->n_partners;
    d->spare = NULL;
}

void
delivery_destroy(delivery_t **dp)
{
    if (dp == NULL || *dp == NULL)
        return;
    delivery_t *d = *dp;
    peers_free(d->peers, d->n_peers);
    free(d->spare);
    free(d->rbuf);
    free(d);
    *dp = NULL;
}

/* Queues f for peer `to` in the batch: it leaves if the turn commits, else it is
 * dropped (a receipt: the journal is the truth, ReceiptRequest gets it again). */
static void
out_push(delivery_t *d, peer_t *to, const Ptibus__V1__Frame *f)
{
    if (!to->online)
        return;
    batch_frame_t bf = {.dest = BATCH_PARTNERS,
                        .rid = to->rid,
                        .rid_len = to->rid_len,
                        .msg = &f->base,
                        .rule = BATCH_DROP};
    if (batch_push(d->b, &bf) != 0)
        pt_log_warn("delivery.receipt", "partner=%s: no memory for a receipt", to->p->id);
}

static void
session_reset(peer_t *pr)
{
    pr->inflight.n = 0;
    pr->retry.n = 0;
    pr->bytes = 0;
    pr->cursor = 0;
    pr->more = true;
}

static uint32_t
clamp_window(const delivery_t *d, uint64_t credit)
{
    return credit > d->opt.max_in_flight ? d->opt.max_in_flight : (uint32_t)credit;
}

/* Takes m out of list l (in flight or retrying) and out of the byte window. */
static void
pending_drop(peer_t *pr, pending_list_t *l, pending_msg_t *m)
{
    pr->bytes -= m->bytes;
    list_remove(l, m);
}

void
delivery_hello(delivery_t *d, const char *partner, const uint8_t *rid, size_t rid_len,
               uint32_t initial_credit, int64_t now_ms)
{
    peer_t *pr = peer_find(d, partner);
    if (pr == NULL)
        return;
    /* Deliveries in flight on an earlier connection stay in flight until their ack
     * timeout (then they are retried, to this connection): a repeated Hello never queues
     * the backlog again, so the window bounds what a partner can make the broker hold. */
    pr->cursor = 0;
    pr->more = true;
    pr->online = true;
    pr->rid_len = rid_len < sizeof pr->rid ? rid_len : sizeof pr->rid;
    memcpy(pr->rid, rid, pr->rid_len);
    pr->window = clamp_window(d, initial_credit);
    pr->last_seen = now_ms;
}

bool
delivery_has_session(const delivery_t *d, const char *partner, const uint8_t *rid, size_t rid_len)
{
    const peer_t *pr = peer_find((delivery_t *)d, partner);
    return pr && pr->online && pr->rid_len == rid_len && memcmp(pr->rid, rid, rid_len) == 0;
}

void
delivery_seen(delivery_t *d, const char *partner, int64_t now_ms)
{
    peer_t *pr = peer_find(d, partner);
    if (pr)
        pr->last_seen = now_ms;
}

void
delivery_credit(delivery_t *d, const char *partner, uint32_t credit)
{
    peer_t *pr = peer_find(d, partner);
    if (pr == NULL)
        return;
    pr->window = clamp_window(d, (uint64_t)pr->window + credit);
}

void
delivery_routed(delivery_t *d, const char *const *recipients, size_t n, int64_t now_ms)
{
    (void)now_ms;
    for (size_t i = 0; i < n; i++) {
        peer_t *pr = peer_find(d, recipients[i]);
        if (pr) {
            pr->depth++;
            pr->more = true;
        }
    }
}

void
delivery_wake(delivery_t *d, const char *partner, uint64_t added)
{
    peer_t *pr = peer_find(d, partner);
    if (pr) {
        /* Requeued and replayed entries sit below the cursor: list from the start
         * again (entries in flight or waiting for a retry are skipped). */
        pr->cursor = 0;
        pr->more = true;
        pr->depth += added;
    }
}

/* ---- journal writes (into the batch transaction) ---- */

static journal_txn_t *
turn_txn(delivery_t *d)
{
    return batch_txn(d->b);
}

/* Reads the RECEIVED record seq into d->rbuf; NULL (and err) if it cannot. */
static const journal_view_t *
load_received(delivery_t *d, journal_txn_t *t, uint64_t seq, journal_view_t *v, pt_error_t *err)
{
    if (journal_txn_get(t, seq, v, &d->rbuf, &d->rcap, err) != 0)
        return NULL;
    if (v->kind != PT_REC_RECEIVED) {
        pt_error_set(err, PT_ECORRUPT, NULL, "record %llu is not a RECEIVED record",
                     (unsigned long long)seq);
        return NULL;
    }
    return v;
}

/* Appends an outbound-trail record about message v for recipient pr. */
static int
trail(delivery_t *d, journal_txn_t *t, journal_kind_t kind, const peer_t *pr,
      const journal_view_t *v, uint32_t attempt, const char *reason)
{
    journal_record_t rec = {.kind = kind,
                            .partner = pr->p->id,
                            .msg_type = v->msg_type,
                            .message_id = v->message_id,
                            .correlation_id = v->correlation_id,
                            .ref_seq = v->seq,
                            .attempt = attempt,
                            .reason = reason};
    uint64_t seq;
    pt_error_t err;
    int rc = journal_append(t, &rec, &seq, &err);
    if (rc != 0)
        batch_fail(d->b, rc, &err);
    return rc;
}

static void
send_receipt(delivery_t *d, const journal_view_t *v, const peer_t *recipient,
             Ptibus__V1__ReceiptKind kind, int64_t at_ms, const char *reason)
{
    peer_t *sender = peer_find(d, v->partner);
    if (sender == NULL || !sender->online)
        return;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Receipt r = PTIBUS__V1__RECEIPT__INIT;
    journal_signed_head_t h;
    journal_signed_head(d->journal, &h);
    r.journal_signed_seq = h.seq;
    r.journal_signed_head = (ProtobufCBinaryData){h.seq ? sizeof h.hash : 0, h.hash};
    r.message_id = (char *)v->message_id;
    r.seq = v->seq;
    r.recipient = (char *)recipient->p->id;
    r.kind = kind;
    r.at_ms = at_ms;
    /* A record from before reasons were cut by code point may end inside a character:
     * send its valid prefix, so that strict proto3 decoders take the Receipt. */
    char clean[sizeof ACK_REASON_PREFIX + 4 * PT_RECEIPT_REASON_MAX];
    if (reason && !utf8_valid(reason)) {
        utf8_truncate(clean, sizeof clean, reason, SIZE_MAX);
        reason = clean;
    }
    r.reason = (char *)(reason ? reason : "");
    f.kind_case = PTIBUS__V1__FRAME__KIND_RECEIPT;
    f.receipt = &r;
    out_push(d, sender, &f);
}

/* Moves message seq of pr to its dead-letter queue, journaled, with a receipt: the
 * record and the receipt carry reason, the log log_reason (the broker's own words,
 * never a partner's). */
static void
dead_letter(delivery_t *d, peer_t *pr, uint64_t seq, uint32_t attempts, const char *reason,
            const char *log_reason)
{
    journal_txn_t *t = turn_txn(d);
    journal_view_t v;
    pt_error_t err;
    if (t == NULL)
        return;
    journal_queue_entry_t e;
    if (journal_queue_get(t, pr->p->id, seq, &e) != 0)
        return; /* already acknowledged or dead-lettered */
    e.attempts = attempts > e.attempts ? attempts : e.attempts;
    if (load_received(d, t, seq, &v, &err) == NULL) {
        pt_log_error("delivery.dead", "recipient=%s seq=%llu: %s", pr->p->id,
                     (unsigned long long)seq, err.msg);
        return;
    }
    if (trail(d, t, PT_REC_DEAD_LETTERED, pr, &v, e.attempts, reason) != 0)
        return;
    int rc = journal_dead_add(t, pr->p->id, &e, &err);
    if (rc != 0) {
        batch_fail(d->b, rc, &err);
        return;
    }
    pr->depth--;
    pr->dead_lettered++;
    count(d->m_dead, pr->p->id, v.msg_type);
    pt_log_warn("delivery.dead", "recipient=%s seq=%llu message_id=%s dead-lettered: %s", pr->p->id,
                (unsigned long long)seq, v.message_id, log_reason);
    send_receipt(d, &v, pr, PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED,
                 pt_clock_wall_ms(), reason);
}

/* Packs the Deliver frame of attempt `attempt` of message v; caller frees *buf. */
static int
deliver_pack(const journal_view_t *v, uint32_t attempt, bool replay, uint8_t **buf, size_t *len)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Deliver dv = PTIBUS__V1__DELIVER__INIT;
    dv.seq = v->seq;
    dv.attempt = attempt;
    dv.redelivery = attempt > 1;
    dv.replay = replay;
    dv.message_id = (char *)v->message_id;
    dv.sender = (char *)v->partner;
    dv.envelope.data = (uint8_t *)v->payload;
    dv.envelope.len = v->payload_len;
    f.kind_case = PTIBUS__V1__FRAME__KIND_DELIVER;
    f.deliver = &dv;
    pt_error_t err;
    return codec_pack(&f.base, SIZE_MAX, buf, len, &err);
}

/* The connection did not take a Deliver: a full send queue waits for the next turn; a
 * vanished peer (EHOSTUNREACH) is offline, its queue waits on disk for its next Hello. */
static void
peer_refused(peer_t *pr, int rc)
{
    if (rc == -EAGAIN) {
        pr->blocked = true;
        return;
    }
    pt_log_warn("delivery.unreachable", "partner=%s connection gone (%s): offline", pr->p->id,
                zmq_strerror(-rc));
    pr->online = false;
}

/* Hands attempt `attempt` of seq to pr's connection and, only once the connection has
 * taken it, journals the attempt (DELIVERED, and the queue entry's attempt count) in the
 * batch: an attempt exists only when a frame left for a live session. Returns 0 when
 * sent (or dead-lettered as unreadable), 1 when the connection did not take it (nothing
 * journaled, the entry is as it was), -1 when the batch has failed. */
static int
deliver(delivery_t *d, peer_t *pr, uint64_t seq, uint32_t attempt, bool replay, int64_t now_ms)
{
    journal_txn_t *t = turn_txn(d);
    journal_view_t v;
    pt_error_t err;
    uint8_t *buf;
    size_t len;
    if (t == NULL)
        return -1;
    if (load_received(d, t, seq, &v, &err) == NULL) {
        pt_log_error("delivery.load", "recipient=%s seq=%llu: %s", pr->p->id,
                     (unsigned long long)seq, err.msg);
        const char *why = "the journaled message cannot be read";
        dead_letter(d, pr, seq, attempt, why, why);
        return 0;
    }
    if (deliver_pack(&v, attempt, replay, &buf, &len) != 0)
        return 1;
    int rc = d->send(d->send_arg, pr->rid, pr->rid_len, buf, len);
    free(buf);
    if (rc != 0) {
        peer_refused(pr, rc);
        return 1;
    }
    journal_queue_entry_t e = {.seq = seq, .attempts = attempt, .replay = replay};
    journal_queue_entry_t old;
    if (journal_queue_get(t, pr->p->id, seq, &old) == 0)
        e.enqueued_ms = old.enqueued_ms;
    if (trail(d, t, PT_REC_DELIVERED, pr, &v, attempt, NULL) != 0)
        return -1;
    if ((rc = journal_queue_put(t, pr->p->id, &e, &err)) != 0) {
        batch_fail(d->b, rc, &err);
        return -1;
    }
    pending_msg_t m = {.seq = seq,
                       .attempt = attempt,
                       .bytes = (uint32_t)v.payload_len,
                       .replay = replay,
                       .due = now_ms + d->opt.ack_timeout_ms};
    pr->bytes += m.bytes;
    pr->delivered++;
    count(d->m_delivered, pr->p->id, v.msg_type);
    return list_push(&pr->inflight, &m);
}

/* ---- acknowledgements and receipts ---- */

static void
forget(peer_t *pr, uint64_t seq)
{
    pending_msg_t *m = list_find(&pr->inflight, seq);
    if (m)
        pending_drop(pr, &pr->inflight, m);
    m = list_find(&pr->retry, seq);
    if (m)
        pending_drop(pr, &pr->retry, m);
}

static void
acknowledge(delivery_t *d, peer_t *pr, uint64_t seq)
{
    journal_txn_t *t = turn_txn(d);
    journal_view_t v;
    journal_queue_entry_t e;
    pt_error_t err;
    if (t == NULL)
        return;
    if (journal_queue_get(t, pr->p->id, seq, &e) != 0) {
        pt_log_debug("delivery.ack", "recipient=%s seq=%llu: nothing to acknowledge", pr->p->id,
                     (unsigned long long)seq);
        return;
    }
    if (load_received(d, t, seq, &v, &err) == NULL) {
        pt_log_error("delivery.ack", "recipient=%s seq=%llu: %s", pr->p->id,
                     (unsigned long long)seq, err.msg);
        return;
    }
    if (trail(d, t, PT_REC_ACKNOWLEDGED, pr, &v, e.attempts, NULL) != 0)
        return;
    int rc = journal_queue_remove(t, pr->p->id, seq, &err);
    if (rc != 0) {
        batch_fail(d->b, rc, &err);
        return;
    }
    pr->depth--;
    pr->acknowledged++;
    count(d->m_acked, pr->p->id, v.msg_type);
    send_receipt(d, &v, pr, PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED, pt_clock_wall_ms(),
                 NULL);
}

/* Whether seq was ever handed to pr: in flight or waiting for a retry now, or, after a
 * restart, a queue entry with an attempt counted. */
static bool
was_delivered(delivery_t *d, peer_t *pr, uint64_t seq)
{
    journal_queue_entry_t e;
    journal_txn_t *t;
    if (list_find(&pr->inflight, seq) || list_find(&pr->retry, seq))
        return true;
    return (t = turn_txn(d)) != NULL && journal_queue_get(t, pr->p->id, seq, &e) == 0 &&
           e.attempts > 0;
}

static int
ack_one(delivery_t *d, const char *partner, const Ptibus__V1__DeliverAck *ack, int64_t now_ms)
{
    peer_t *pr = peer_find(d, partner);
    if (pr == NULL)
        return 0;
    pr->last_seen = now_ms;
    if (ack->status != PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_OK &&
        ack->status != PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS)
        return PT_EPROTOCOL;
    if (!was_delivered(d, pr, ack->seq)) {
        pt_log_debug("delivery.ack", "recipient=%s seq=%llu: never delivered, ignored", pr->p->id,
                     (unsigned long long)ack->seq);
        return 0;
    }
    pending_msg_t *m = list_find(&pr->inflight, ack->seq);
    uint32_t attempts = m ? m->attempt : 0;
    forget(pr, ack->seq);
    if (ack->status == PTIBUS__V1__DELIVER_ACK_STATUS__DELIVER_ACK_STATUS_CANNOT_PROCESS) {
        /* The reason was validated (validate_deliver_ack); it is cut by code point so
         * that the Receipt stays valid UTF-8 for strict proto3 decoders. It may hold
         * personal data: the log gets its length only. */
        char reason[sizeof ACK_REASON_PREFIX + 4 * PT_RECEIPT_REASON_MAX], said[96];
        const char *given = ack->reason && ack->reason[0] ? ack->reason : "(no reason given)";
        memcpy(reason, ACK_REASON_PREFIX, sizeof ACK_REASON_PREFIX);
        utf8_truncate(reason + sizeof ACK_REASON_PREFIX - 1,
                      sizeof reason - sizeof ACK_REASON_PREFIX + 1, given, PT_RECEIPT_REASON_MAX);
        snprintf(said, sizeof said, "recipient cannot process it (reason of %zu bytes)",
                 ack->reason ? strlen(ack->reason) : 0);
        dead_letter(d, pr, ack->seq, attempts, reason, said);
    } else {
        acknowledge(d, pr, ack->seq);
    }
    return 0;
}

int
delivery_ack(delivery_t *d, batch_t *b, const char *partner, const Ptibus__V1__DeliverAck *ack,
             int64_t now_ms)
{
    d->b = b;
    int rc = ack_one(d, partner, ack, now_ms);
    d->b = NULL;
    return rc;
}

typedef struct receipt_ctx {
    delivery_t *d;
    peer_t *sender;
    journal_txn_t *t;
} receipt_ctx_t;

/* Re-sends one receipt when record v is an acknowledgement or dead letter of a message
 * that the requesting sender sent (a journal_visit_fn over the records of the id). */
static int
receipt_again(const journal_view_t *v, void *arg)
{
    receipt_ctx_t *c = arg;
    journal_view_t orig;
    pt_error_t err;
    if (v->kind != PT_REC_ACKNOWLEDGED && v->kind != PT_REC_DEAD_LETTERED)
        return 0;
    peer_t *recipient = peer_find(c->d, v->partner);
    const journal_view_t *o = recipient ? load_received(c->d, c->t, v->ref_seq, &orig, &err) : NULL;
    if (o && strcmp(o->partner, c->sender->p->id) == 0)
        send_receipt(c->d, o, recipient,
                     v->kind == PT_REC_ACKNOWLEDGED
                         ? PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED
                         : PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED,
                     v->time_ms, v->reason);
    return 0;
}

/* One walk of the message id's records inside the batch transaction (not one read
 * transaction per record). */
static void receipt_request(delivery_t *d, const char *partner, const char *message_id);

void
delivery_receipt_request(delivery_t *d, batch_t *b, const char *partner, const char *message_id)
{
    d->b = b;
    receipt_request(d, partner, message_id);
    d->b = NULL;
}

static void
receipt_request(delivery_t *d, const char *partner, const char *message_id)
{
    receipt_ctx_t c = {.d = d, .sender = peer_find(d, partner), .t = turn_txn(d)};
    pt_error_t err;
    if (c.sender == NULL || c.t == NULL)
        return;
    if (journal_txn_visit_message(c.t, message_id, receipt_again, &c, &err) < 0)
        pt_log_warn("delivery.receipt", "partner=%s: cannot look up receipts: %s", partner,
                    err.msg);
}

/* ---- the pump ---- */

/* Delay before attempt `done + 1`: initial * 2^(done-1), capped, plus up to 25 %
 * jitter so that recipients coming back together do not get retries in lockstep. */
static int64_t
backoff_ms(const delivery_options_t *o, uint32_t done)
{
    uint64_t delay = o->backoff_initial_ms;
    for (uint32_t i = 1; i < done && delay < o->backoff_max_ms; i++)
        delay *= 2;
    if (delay > o->backoff_max_ms)
        delay = o->backoff_max_ms;
    return (int64_t)(delay + randombytes_uniform((uint32_t)(delay / 4 + 1)));
}

/* In-flight deliveries past their deadline go to the retry list, or die. */
static void
expire(delivery_t *d, peer_t *pr, int64_t now_ms)
{
    for (size_t i = 0; i < pr->inflight.n;) {
        pending_msg_t m = pr->inflight.v[i];
        if (m.due > now_ms) {
            i++;
            continue;
        }
        if (m.attempt >= d->opt.max_attempts) {
            pending_drop(pr, &pr->inflight, &pr->inflight.v[i]);
            char reason[96];
            snprintf(reason, sizeof reason, "no acknowledgement after %u attempts", m.attempt);
            dead_letter(d, pr, m.seq, m.attempt, reason, reason);
            continue;
        }
        list_remove(&pr->inflight, &pr->inflight.v[i]); /* still in the byte window */
        pt_log_info("delivery.timeout", "recipient=%s seq=%llu attempt=%u: no ack, will retry",
                    pr->p->id, (unsigned long long)m.seq, m.attempt);
        m.due = now_ms + backoff_ms(&d->opt, m.attempt);
        list_push(&pr->retry, &m);
    }
}

/* Deliveries waiting for a retry are still unacknowledged: they use the window too. */
static bool
has_room(const delivery_t *d, const peer_t *pr)
{
    size_t n = pr->inflight.n + pr->retry.n;
    return pr->online && !pr->blocked && n < pr->window &&
           (n == 0 || pr->bytes < d->opt.max_in_flight_bytes);
}

/* Room for retry m: it already holds its place in the window (sending it moves it from
 * the retry list to the in-flight one, their sum stays the same), so it needs only the
 * connection to have fewer deliveries in flight than the window. Counted a second time,
 * it would wait forever once the unacknowledged fill the window: a credit of 1, or a
 * new connection granting less than the earlier one left in flight. */
static bool
retry_fits(const delivery_t *d, const peer_t *pr, const pending_msg_t *m)
{
    return pr->online && !pr->blocked && pr->inflight.n < pr->window &&
           (pr->inflight.n == 0 || pr->bytes - m->bytes < d->opt.max_in_flight_bytes);
}

static void
pump_retries(delivery_t *d, peer_t *pr, int64_t now_ms)
{
    for (size_t i = 0; i < pr->retry.n;) {
        pending_msg_t m = pr->retry.v[i];
        if (m.due > now_ms) {
            i++;
            continue;
        }
        if (!retry_fits(d, pr, &m))
            return;
        pending_drop(pr, &pr->retry, &pr->retry.v[i]);
        int rc = deliver(d, pr, m.seq, m.attempt + 1, m.replay, now_ms);
        if (rc == 1 && list_push(&pr->retry, &m) == 0) /* not sent: still waiting */
            pr->bytes += m.bytes;
        if (rc != 0)
            return;
    }
}

/* One queue entry not in flight: delivered, or dead-lettered when its attempts (kept in
 * the entry across reconnects and restarts) already reached max_attempts. Returns what
 * deliver() returns. */
static int
pump_entry(delivery_t *d, peer_t *pr, const journal_queue_entry_t *e, int64_t now_ms)
{
    if (e->attempts >= d->opt.max_attempts) {
        char reason[96];
        snprintf(reason, sizeof reason, "no acknowledgement after %u attempts", e->attempts);
        dead_letter(d, pr, e->seq, e->attempts, reason, reason);
        return 0;
    }
    return deliver(d, pr, e->seq, e->attempts + 1, e->replay, now_ms);
}

/* First deliveries, in queue (journal) order, as far as the window allows. */
static void
pump_queue(delivery_t *d, peer_t *pr, int64_t now_ms)
{
    journal_queue_entry_t e[LIST_CHUNK];
    while (pr->more && has_room(d, pr)) {
        journal_txn_t *t = turn_txn(d);
        size_t want = pr->window - pr->inflight.n - pr->retry.n, n;
        pt_error_t err;
        if (t == NULL)
            return;
        if (want > LIST_CHUNK)
            want = LIST_CHUNK;
        int rc = journal_queue_list_txn(t, pr->p->id, pr->cursor, e, want, &n, &err);
        if (rc != 0) {
            batch_fail(d->b, rc, &err);
            return;
        }
        if (n < want)
            pr->more = false;
        for (size_t i = 0; i < n; i++) {
            if (list_find(&pr->retry, e[i].seq) || list_find(&pr->inflight, e[i].seq)) {
                pr->cursor = e[i].seq;
                continue;
            }
            if (!has_room(d, pr)) { /* the byte window is full */
                pr->more = true;
                return;
            }
            int sent = pump_entry(d, pr, &e[i], now_ms);
            if (sent == 1)
                pr->more = true; /* not sent: listed again from the cursor next time */
            if (sent != 0)
                return;
            pr->cursor = e[i].seq;
        }
    }
}

static void
check_liveness(delivery_t *d, peer_t *pr, int64_t now_ms)
{
    if (!pr->online || now_ms - pr->last_seen <= (int64_t)d->opt.peer_timeout_ms)
        return;
    pt_log_warn("delivery.offline", "partner=%s silent for %lld ms: offline, %zu in flight",
                pr->p->id, (long long)(now_ms - pr->last_seen), pr->inflight.n);
    pr->online = false;
}

void
delivery_pump(delivery_t *d, batch_t *b, int64_t now_ms)
{
    d->b = b;
    for (size_t i = 0; i < d->n_peers; i++) {
        peer_t *pr = &d->peers[i];
        pr->blocked = false;
        check_liveness(d, pr, now_ms);
        expire(d, pr, now_ms);
        pump_retries(d, pr, now_ms);
        pump_queue(d, pr, now_ms);
    }
    d->b = NULL;
}

void
delivery_end(delivery_t *d, bool committed)
{
    if (committed)
        return;
    /* The turn is lost: the durable queues did not change, start over from them. */
    pt_error_t err;
    for (size_t i = 0; i < d->n_peers; i++)
        session_reset(&d->peers[i]);
    if (count_depths(d, &err) != 0)
        pt_log_error("delivery.recount", "%s", err.msg);
}

int64_t
delivery_next_due(const delivery_t *d)
{
    int64_t next = -1;
    for (size_t i = 0; i < d->n_peers; i++) {
        const peer_t *pr = &d->peers[i];
        const pending_list_t *lists[] = {&pr->inflight, &pr->retry};
        for (size_t l = 0; l < 2; l++)
            for (size_t k = 0; k < lists[l]->n; k++)
                if (next < 0 || lists[l]->v[k].due < next)
                    next = lists[l]->v[k].due;
        if (pr->more && has_room(d, pr))
            return 0;
    }
    return next;
}

size_t
delivery_peer_count(const delivery_t *d)
{
    return d->n_peers;
}

void
delivery_peer_stats(const delivery_t *d, size_t i, delivery_peer_stats_t *out)
{
    const peer_t *pr = &d->peers[i];
    journal_queue_entry_t first;
    size_t n = 0;
    pt_error_t err;
    out->partner = pr->p->id;
    out->online = pr->online;
    out->window = pr->window;
    out->in_flight = (uint32_t)pr->inflight.n;
    out->retrying = (uint32_t)pr->retry.n;
    out->depth = pr->depth;
    out->oldest_ms = 0;
    if (pr->depth && journal_queue_list(d->journal, pr->p->id, 0, &first, 1, &n, &err) == 0 &&
        n == 1)
        out->oldest_ms = first.enqueued_ms;
    out->delivered = pr->delivered;
    out->acknowledged = pr->acknowledged;
    out->dead_lettered = pr->dead_lettered;
}

void
delivery_publish_metrics(delivery_t *d, int64_t wall_now_ms)
{
    if (d->metrics == NULL)
        return;
    double online = 0;
    for (size_t i = 0; i < d->n_peers; i++) {
        delivery_peer_stats_t st;
        delivery_peer_stats(d, i, &st);
        const char *labels[] = {st.partner};
        metrics_set(metrics_series(d->m_depth, labels), (double)st.depth);
        double age = st.oldest_ms ? (double)(wall_now_ms - st.oldest_ms) / 1000.0 : 0.0;
        metrics_set(metrics_series(d->m_age, labels), age > 0 ? age : 0);
        online += st.online;
    }
    metrics_set(d->m_connected, online);
}
