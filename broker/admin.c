/* admin: the admin socket's requests and answers. */
#include "admin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "auth.h"
#include "codec.h"
#include "log.h"
#include "ptibus/v1/admin.pb-c.h"
#include "zpart.h"

#define ADMIN_MAX_REQUEST 65536
#define ADMIN_LIST_DEFAULT 1000
#define ADMIN_REPLAY_MAX 100000   /* messages re-enqueued by one request */
#define ADMIN_REPLAY_SCAN 1000000 /* records scanned by one request (the loop waits) */

typedef struct answer {
    uint8_t rid[256];
    size_t rid_len;
    uint8_t *buf; /* packed AdminResponse */
    size_t len;
    bool wrote; /* changed the journal: only valid if the batch commits */
    char request_id[64];
} answer_t;

struct admin {
    void *sock;
    admin_deps_t d;
    answer_t *ans;
    size_t n_ans, cap_ans;
    uint8_t *rbuf;
    size_t rcap;
};

int
admin_open(void *zctx, const uint8_t server_sk[32], const admin_deps_t *deps, admin_t **out,
           pt_error_t *err)
{
    *out = NULL;
    admin_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return pt_error_set(err, -ENOMEM, "admin", "out of memory");
    a->d = *deps;
    int one = 1, linger = 0;
    const char *domain = PT_ZAP_DOMAIN_ADMIN;
    a->sock = zmq_socket(zctx, ZMQ_ROUTER);
    if (a->sock == NULL || zmq_setsockopt(a->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_CURVE_SECRETKEY, server_sk, 32) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
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
    for (size_t i = 0; i < a->n_ans; i++)
        free(a->ans[i].buf);
    free(a->ans);
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

static void
answer_push(admin_t *a, const uint8_t *rid, size_t rid_len, Ptibus__V1__AdminResponse *resp,
            bool wrote)
{
    if (a->n_ans == a->cap_ans) {
        size_t cap = a->cap_ans ? a->cap_ans * 2 : 8;
        answer_t *n = realloc(a->ans, cap * sizeof *n);
        if (n == NULL)
            return;
        a->ans = n;
        a->cap_ans = cap;
    }
    answer_t *x = &a->ans[a->n_ans];
    pt_error_t err;
    if (codec_pack(&resp->base, SIZE_MAX, &x->buf, &x->len, &err) != 0)
        return;
    x->rid_len = rid_len < sizeof x->rid ? rid_len : sizeof x->rid;
    memcpy(x->rid, rid, x->rid_len);
    x->wrote = wrote;
    snprintf(x->request_id, sizeof x->request_id, "%s", resp->request_id);
    a->n_ans++;
}

/* Appends the ADMIN record of an administrator's action. */
static int
admin_record(admin_t *a, journal_txn_t *t, const char *who, const char *what, pt_error_t *err)
{
    journal_record_t rec = {.kind = PT_REC_ADMIN, .partner = who, .reason = what};
    uint64_t seq;
    int rc = journal_append(t, &rec, &seq, err);
    if (rc != 0)
        ingest_batch_fail(a->d.ingest, rc, err);
    else
        pt_log_info("admin.action", "%s: %s (seq %llu)", who, what, (unsigned long long)seq);
    return rc;
}

/* ---- stats ---- */

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
    char message_id[72], type[40], sender[40];
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
handle_dead_list(admin_t *a, const uint8_t *rid, size_t rid_len,
                 const Ptibus__V1__DeadLetterListRequest *q, Ptibus__V1__AdminResponse *resp)
{
    char ebuf[PT_ERROR_MSG_MAX];
    const char *who = q->recipient && q->recipient[0] ? q->recipient : NULL;
    if (who && !known_recipient(a, who)) {
        fail(resp, ebuf, sizeof ebuf, "dead_letter_list.recipient: not a configured partner");
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

static uint32_t
requeue_all(admin_t *a, journal_txn_t *t, const char *recipient, pt_error_t *err)
{
    journal_dead_entry_t *dead = NULL;
    size_t n = 0;
    uint32_t done = 0;
    if (journal_dead_list(a->d.journal, recipient, ADMIN_REPLAY_MAX, &dead, &n, err) != 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (journal_dead_requeue(t, recipient, dead[i].seq, err) == 0)
            done++;
    free(dead);
    return done;
}

static void
handle_requeue(admin_t *a, const char *who, const Ptibus__V1__DeadLetterRequeueRequest *q,
               Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    journal_txn_t *t = ingest_batch_txn(a->d.ingest);
    pt_error_t err;
    if (!known_recipient(a, q->recipient)) {
        fail(resp, ebuf, cap, "dead_letter_requeue.recipient: not a configured partner");
        return;
    }
    if (t == NULL) {
        fail(resp, ebuf, cap, "journal unavailable: nothing was changed, retry later");
        return;
    }
    uint32_t done = 0;
    if (q->all)
        done = requeue_all(a, t, q->recipient, &err);
    for (size_t i = 0; i < q->n_seqs; i++)
        if (journal_dead_requeue(t, q->recipient, q->seqs[i], &err) == 0)
            done++;
    char what[160];
    snprintf(what, sizeof what, "requeued %u dead letters of %s", done, q->recipient);
    if (done && admin_record(a, t, who, what, &err) != 0) {
        fail(resp, ebuf, cap, err.msg);
        return;
    }
    delivery_wake(a->d.delivery, q->recipient, done);
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_REQUEUED;
    resp->requeued = done;
}

typedef struct replay_ctx {
    admin_t *a;
    journal_txn_t *t;
    const char *recipient;
    const char *reason;
    uint32_t done;
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
    if (v->kind != PT_REC_RECEIVED || !was_recipient(v, c->recipient))
        return 0;
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
    if (c->rc != 0) {
        ingest_batch_fail(c->a->d.ingest, c->rc, &err);
        return 1;
    }
    return ++c->done >= ADMIN_REPLAY_MAX;
}

static int
replay_by_id(admin_t *a, replay_ctx_t *c, const char *message_id, pt_error_t *err)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    int rc = journal_find_message(a->d.journal, message_id, &seqs, &n, err);
    for (size_t i = 0; rc == 0 && c->rc == 0 && i < n; i++) {
        journal_view_t v;
        if (journal_txn_get(c->t, seqs[i], &v, &a->rbuf, &a->rcap, err) == 0)
            replay_one(&v, c);
    }
    free(seqs);
    return rc ? rc : c->rc;
}

static void
handle_replay(admin_t *a, const char *who, const Ptibus__V1__ReplayRequest *q,
              Ptibus__V1__AdminResponse *resp, char *ebuf, size_t cap)
{
    replay_ctx_t c = {.a = a, .t = ingest_batch_txn(a->d.ingest), .recipient = q->recipient};
    pt_error_t err;
    char why[300];
    snprintf(why, sizeof why, "replay by %s: %.200s", who, q->reason ? q->reason : "");
    c.reason = why;
    if (!known_recipient(a, q->recipient))
        return (void)fail(resp, ebuf, cap, "replay.recipient: not a configured partner");
    if (c.t == NULL)
        return (void)fail(resp, ebuf, cap, "journal unavailable: nothing was changed");
    if (!(q->message_id && q->message_id[0]) && q->from_seq == 0)
        return (void)fail(resp, ebuf, cap, "replay: give from_seq (and to_seq) or message_id");
    uint64_t last = q->to_seq ? q->to_seq : journal_last_seq(a->d.journal);
    if (!(q->message_id && q->message_id[0]) && last >= q->from_seq &&
        last - q->from_seq >= ADMIN_REPLAY_SCAN)
        return (void)fail(resp, ebuf, cap,
                          "replay.to_seq: more than 1000000 records in the range; split it");
    int rc = q->message_id && q->message_id[0]
                 ? replay_by_id(a, &c, q->message_id, &err)
                 : journal_scan(a->d.journal, q->from_seq, q->to_seq, replay_one, &c, &err);
    if (rc < 0 || c.rc != 0)
        return (void)fail(resp, ebuf, cap, err.msg);
    char what[200];
    snprintf(what, sizeof what, "replayed %u messages to %s", c.done, q->recipient);
    if (c.done && admin_record(a, c.t, who, what, &err) != 0)
        return (void)fail(resp, ebuf, cap, err.msg);
    delivery_wake(a->d.delivery, q->recipient, c.done);
    resp->ok = 1;
    resp->kind_case = PTIBUS__V1__ADMIN_RESPONSE__KIND_REPLAYED;
    resp->replayed = c.done;
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
        if (ps && pps)
            handle_stats(a, &resp, &st, ps, pps);
        else
            fail(&resp, ebuf, sizeof ebuf, "out of memory");
        answer_push(a, rid, rid_len, &resp, false);
        free(ps);
        free(pps);
        return;
    }
    case PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_LIST:
        handle_dead_list(a, rid, rid_len, q->dead_letter_list, &resp);
        return;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_DEAD_LETTER_REQUEUE:
        handle_requeue(a, who, q->dead_letter_requeue, &resp, ebuf, sizeof ebuf);
        break;
    case PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY:
        handle_replay(a, who, q->replay, &resp, ebuf, sizeof ebuf);
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
admin_read(admin_t *a)
{
    int n = 0;
    while (n < 64 && read_one(a))
        n++;
    return n;
}

/* Replaces a write request's answer when its batch did not commit. */
static void
answer_uncommitted(answer_t *x)
{
    Ptibus__V1__AdminResponse resp = PTIBUS__V1__ADMIN_RESPONSE__INIT;
    resp.request_id = x->request_id;
    resp.error = "journal commit failed: nothing was changed, retry later";
    free(x->buf);
    pt_error_t err;
    if (codec_pack(&resp.base, SIZE_MAX, &x->buf, &x->len, &err) != 0)
        x->len = 0;
}

void
admin_flush(admin_t *a, bool committed)
{
    for (size_t i = 0; i < a->n_ans; i++) {
        answer_t *x = &a->ans[i];
        if (x->wrote && !committed)
            answer_uncommitted(x);
        if (x->len && (zmq_send(a->sock, x->rid, x->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                       zmq_send(a->sock, x->buf, x->len, ZMQ_DONTWAIT) < 0))
            pt_log_warn("admin.send", "answer dropped: %s", zmq_strerror(zmq_errno()));
        free(x->buf);
    }
    a->n_ans = 0;
}
