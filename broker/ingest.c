/* ingest: decode, validate, authorise, deduplicate and journal published messages,
 * with group commit. */
#include "ingest.h"
#include "clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include <sodium.h>

#include "bucket.h"
#include "broker_metrics.h"
#include "codec.h"
#include "log.h"
#include "nir.h"
#include "pjson.h"
#include "validate.h"

/* Refusals journaled per partner: a flood of bad frames is answered, not all journaled. */
#define REFUSALS_JOURNALED_PER_S 20
#define REFUSALS_JOURNALED_BURST 200

/* One partner's input quotas (limits.partner_rate, partner_bytes_per_hour). */
typedef struct quota {
    pt_bucket_t rate, bytes, refusals;
    uint64_t unjournaled; /* refusals answered but not journaled since the last log line */
    int64_t logged_ms;
} quota_t;

struct ingest {
    journal_t *journal;
    quota_t *quota; /* one per configured partner, in cfg->partners order */
    quota_t *spare; /* ingest_reload_prepare's, for the partners of the next config */
    const bconfig_t *cfg;
    const router_t *router;
    batch_t *b;              /* the loop turn, during one handler call */
    journal_txn_t *txn;      /* b's transaction once turn_txn has begun it */
    ingest_routed_t *routed; /* where accept_append says who receives, or NULL */
    uint64_t batch_accepted;
    size_t turn_replies; /* replies pushed this turn */
    ingest_stats_t stats;
    metrics_t *metrics;
    metrics_family_t *m_accepted, *m_rejected;
};

void
ingest_set_metrics(ingest_t *in, metrics_t *m)
{
    in->metrics = m;
    in->m_accepted = m ? metrics_find(m, PT_METRIC_ACCEPTED) : NULL;
    in->m_rejected = m ? metrics_find(m, PT_METRIC_REJECTED) : NULL;
}

static const char *const nack_names[] = {
    "unspecified",        "malformed",    "too_large",   "invalid",  "not_allowed",
    "duplicate_conflict", "journal_full", "unavailable", "protocol", "cannot_process"};

static metrics_series_t *
counter_of(metrics_family_t *f, const char *partner, const char *type, int code)
{
    const char *labels[] = {partner, type && type[0] ? type : "unknown",
                            code >= 0 && code < 10 ? nack_names[code] : "other"};
    return f ? metrics_series(f, labels) : NULL;
}

static void
quota_init(quota_t *q, const bconfig_t *cfg, int64_t now)
{
    *q = (quota_t){0};
    bucket_init(&q->rate, cfg->partner_rate, 10.0 * cfg->partner_rate, now);
    bucket_init(&q->bytes, (double)cfg->partner_bytes_per_hour / 3600.0,
                (double)cfg->partner_bytes_per_hour, now);
    bucket_init(&q->refusals, REFUSALS_JOURNALED_PER_S, REFUSALS_JOURNALED_BURST, now);
}

int
ingest_new(journal_t *j, const bconfig_t *cfg, const router_t *router, ingest_t **out,
           pt_error_t *err)
{
    *out = calloc(1, sizeof **out);
    if (*out == NULL)
        return pt_error_set(err, -ENOMEM, "ingest", "out of memory");
    (*out)->journal = j;
    (*out)->cfg = cfg;
    (*out)->router = router;
    if (((*out)->quota = calloc(cfg->n_partners ? cfg->n_partners : 1, sizeof(quota_t))) == NULL) {
        ingest_destroy(out);
        return pt_error_set(err, -ENOMEM, "ingest", "out of memory");
    }
    int64_t now = pt_clock_mono_ms();
    for (size_t i = 0; i < cfg->n_partners; i++)
        quota_init(&(*out)->quota[i], cfg, now);
    return 0;
}

int
ingest_reload_prepare(ingest_t *in, size_t n_partners)
{
    free(in->spare);
    in->spare = calloc(n_partners ? n_partners : 1, sizeof *in->spare);
    return in->spare ? 0 : -ENOMEM;
}

void
ingest_reload_commit(ingest_t *in, const ptrdiff_t *from, const router_t *router)
{
    if (from != NULL) {
        int64_t now = pt_clock_mono_ms();
        for (size_t i = 0; i < in->cfg->n_partners; i++) {
            if (from[i] >= 0)
                in->spare[i] = in->quota[from[i]];
            else
                quota_init(&in->spare[i], in->cfg, now);
        }
        free(in->quota);
        in->quota = in->spare;
        in->router = router;
    } else {
        free(in->spare);
    }
    in->spare = NULL;
}

void
ingest_destroy(ingest_t **inp)
{
    if (inp == NULL || *inp == NULL)
        return;
    free((*inp)->quota);
    free((*inp)->spare);
    free(*inp);
    *inp = NULL;
}

const ingest_stats_t *
ingest_stats(const ingest_t *in)
{
    return &in->stats;
}

/* Copies a client-chosen id for echoing: printable ASCII only, at most 64 chars. */
static void
copy_echo_id(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i < PT_MESSAGE_ID_MAX && i + 1 < cap; i++)
        dst[i] = (src[i] > 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[i] = '\0';
}

static ingest_reply_t *
reply_init(ingest_reply_t *r, const uint8_t *rid, size_t rid_len, const char *message_id)
{
    memset(r, 0, offsetof(ingest_reply_t, reason));
    r->reason[0] = r->field_path[0] = '\0';
    r->counter = NULL;
    r->rid_len = rid_len < sizeof r->rid ? rid_len : sizeof r->rid;
    memcpy(r->rid, rid, r->rid_len);
    copy_echo_id(r->message_id, sizeof r->message_id, message_id);
    return r;
}

void
ingest_reply_frame(const ingest_reply_t *r, ingest_frame_t *out)
{
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__PublishAck ack = PTIBUS__V1__PUBLISH_ACK__INIT;
    Ptibus__V1__Nack nack = PTIBUS__V1__NACK__INIT;
    out->frame = f;
    out->ack = ack;
    out->nack = nack;
    if (r->nack_code == 0) {
        out->ack.message_id = (char *)r->message_id;
        out->ack.seq = r->seq;
        out->ack.duplicate = r->duplicate;
        out->frame.kind_case = PTIBUS__V1__FRAME__KIND_PUBLISH_ACK;
        out->frame.publish_ack = &out->ack;
        return;
    }
    out->nack.message_id = (char *)r->message_id;
    out->nack.code = (Ptibus__V1__NackCode)r->nack_code;
    out->nack.reason = (char *)r->reason;
    out->nack.field_path = (char *)r->field_path;
    out->nack.seq = r->seq;
    out->nack.retryable = r->retryable;
    out->frame.kind_case = PTIBUS__V1__FRAME__KIND_NACK;
    out->frame.nack = &out->nack;
}

/* Hands the reply to the batch: sent after the commit, or, if the turn fails, turned
 * into a retryable Nack (nothing of the turn was stored). */
static void
reply_queue(ingest_t *in, const ingest_reply_t *r)
{
    ingest_frame_t f;
    ingest_reply_frame(r, &f);
    batch_frame_t bf = {.dest = BATCH_PARTNERS,
                        .rid = r->rid,
                        .rid_len = r->rid_len,
                        .msg = &f.frame.base,
                        .rule = BATCH_RETRY,
                        .message_id = r->message_id,
                        .counter = r->counter};
    if (batch_push(in->b, &bf) != 0)
        pt_log_error("ingest.oom", "no memory for a reply: the publish is left unanswered");
    in->turn_replies++;
}

static void
reply_nack(ingest_reply_t *r, int code, const char *path, const char *reason, bool retryable)
{
    r->nack_code = code;
    r->retryable = retryable;
    snprintf(r->field_path, sizeof r->field_path, "%.*s", (int)sizeof r->field_path - 1,
             path ? path : "");
    snprintf(r->reason, sizeof r->reason, "%s", reason);
}

/* The turn's write transaction into in->txn; 0, or the turn's failure. */
static int
turn_txn(ingest_t *in)
{
    in->txn = batch_txn(in->b);
    return in->txn ? 0 : batch_failed(in->b) ? batch_failed(in->b) : PT_ECLOSED;
}

/* A journal failure: the whole turn is lost (its replies become retryable Nacks). */
static void
turn_fail(ingest_t *in, int rc, const pt_error_t *err)
{
    batch_fail(in->b, rc, err);
    in->txn = NULL;
}

static quota_t *
quota_of(ingest_t *in, const bconfig_partner_t *p)
{
    return &in->quota[p - in->cfg->partners];
}

/* Whether one more refusal of p may be journaled now; beyond the rate, refusals are
 * answered (seq 0) and counted in one log line every 10 s. */
static bool
refusal_journaled(ingest_t *in, const bconfig_partner_t *p)
{
    quota_t *q = quota_of(in, p);
    int64_t now = pt_clock_mono_ms();
    if (bucket_take(&q->refusals, 1, now))
        return true;
    q->unjournaled++;
    if (now - q->logged_ms >= 10000) {
        pt_log_warn("ingest.flood",
                    "partner=%s: %llu refusals answered but not journaled (more than %d/s)", p->id,
                    (unsigned long long)q->unjournaled, REFUSALS_JOURNALED_PER_S);
        q->unjournaled = 0;
        q->logged_ms = now;
    }
    return false;
}

/* The partner's message rate and journal bytes quotas: over either, the publish is
 * answered UNAVAILABLE (retryable) and nothing is stored or journaled. */
static bool
quota_ok(ingest_t *in, ingest_reply_t *r, const bconfig_partner_t *p, size_t len)
{
    quota_t *q = quota_of(in, p);
    int64_t now = pt_clock_mono_ms();
    const char *what = NULL;
    if (!bucket_take(&q->rate, 1, now))
        what = "limits.partner_rate messages per second";
    else if (!bucket_take(&q->bytes, (double)len, now))
        what = "limits.partner_bytes_per_hour of journal";
    if (what == NULL)
        return true;
    char reason[160];
    snprintf(reason, sizeof reason, "partner quota reached (%s): nothing was stored, retry later",
             what);
    in->stats.rejected++;
    reply_nack(r, PTIBUS__V1__NACK_CODE__NACK_CODE_UNAVAILABLE, "", reason, true);
    r->counter =
        counter_of(in->m_rejected, p->id, NULL, PTIBUS__V1__NACK_CODE__NACK_CODE_UNAVAILABLE);
    return false;
}

/* Journals a refusal and turns r into its Nack. bytes are hashed, not stored. */
static void
reject(ingest_t *in, ingest_reply_t *r, const bconfig_partner_t *p, const char *type,
       const uint8_t *bytes, size_t len, int code, const pt_error_t *cause)
{
    /* Field paths reach the partner (Nack) and the journal in the JSON names partners
     * write, as validate's and the router's: some checks here (the ACL's type,
     * message_id) and the codec's name fields by their proto names. */
    pt_error_t json_why = *cause;
    const pt_error_t *why = &json_why;
    pjson_error_json_path(&json_why);
    in->stats.rejected++;
    reply_nack(r, code, why->path, why->msg, false);
    if (!refusal_journaled(in, p)) {
        r->counter = counter_of(in->m_rejected, p->id, type, code);
        return; /* answered with seq 0 */
    }
    if (turn_txn(in) != 0)
        return;
    /* The refused bytes are not stored: the envelope's territory goes with the reason,
     * for the partnership report's refusals per territory. */
    char said[PT_ERROR_MSG_MAX + 96];
    snprintf(said, sizeof said, "%s", why->msg);
    codec_refusal_tag(bytes, len, said, sizeof said);
    journal_record_t rec = {.kind = PT_REC_REJECTED,
                            .partner = p->id,
                            .msg_type = type ? type : "",
                            .message_id = r->message_id,
                            .reason = said,
                            .payload = bytes,
                            .payload_len = len};
    pt_error_t err;
    int rc = journal_append(in->txn, &rec, &r->seq, &err);
    if (rc != 0) {
        turn_fail(in, rc, &err);
        return;
    }
    r->counter = counter_of(in->m_rejected, p->id, type, code);
    pt_log_info("ingest.rejected", "partner=%s message_id=%s seq=%llu code=%s: %s", p->id,
                r->message_id, (unsigned long long)r->seq, codec_nack_name(code), why->msg);
}

void
ingest_reject_raw(ingest_t *in, batch_t *b, const uint8_t *rid, size_t rid_len,
                  const bconfig_partner_t *p, const uint8_t *bytes, size_t len, int code,
                  const pt_error_t *why)
{
    ingest_reply_t rbuf, *r = reply_init(&rbuf, rid, rid_len, "");
    in->b = b;
    in->txn = NULL;
    reject(in, r, p, NULL, bytes, len, code, why);
    reply_queue(in, r);
    in->b = NULL;
}

void
ingest_prep_fini(ingest_prep_t *a)
{
    if (a->env) {
        a->env->sender = a->client_sender;
        codec_free((ProtobufCMessage **)&a->env);
    }
    free(a->bytes);
    a->bytes = NULL;
}

/* decode → sender overwrite → validate → ACL → canonical bytes. On refusal returns the
 * Nack code with why filled. Reads only cfg and p (see ingest_prepare). */
static int
accept_check(const bconfig_t *cfg, const bconfig_partner_t *p, const Ptibus__V1__Publish *pub,
             ingest_prep_t *a, pt_error_t *why)
{
    ProtobufCMessage *m;
    int rc = codec_unpack(&ptibus__v1__envelope__descriptor, pub->envelope.data, pub->envelope.len,
                          cfg->max_message_size, &m, why);
    if (rc == PT_ETOOLARGE) {
        pt_error_set(why, rc, "envelope", "%zu bytes is over the limit of %u bytes",
                     pub->envelope.len, cfg->max_message_size);
        return PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE;
    }
    if (rc == PT_EINVALID) /* a field outside the contract, too many elements: named */
        return PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID;
    if (rc != 0) {
        pt_error_set(why, rc, "envelope", "%zu bytes are not a valid ptibus.v1.Envelope",
                     pub->envelope.len);
        return PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED;
    }
    a->env = (Ptibus__V1__Envelope *)m;
    a->client_sender = a->env->sender;
    a->env->sender = p->id;
    a->type = codec_envelope_type(a->env);
    if (strcmp(a->env->message_id, pub->message_id) != 0) {
        pt_error_set(why, PT_EINVALID, "message_id",
                     "differs from the message_id of the Publish frame");
        return PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID;
    }
    if (validate_envelope(a->env, why) != 0)
        return PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID;
    if (!bconfig_may_send(p, a->type)) {
        pt_error_set(why, PT_EDENIED, a->type, "partner %s may not send %s messages", p->id,
                     a->type);
        return PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED;
    }
    if (codec_pack(&a->env->base, (size_t)cfg->max_message_size * 2, &a->bytes, &a->len, why) != 0)
        return PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE;
    crypto_generichash(a->hash, sizeof a->hash, a->bytes, a->len, NULL, 0);
    return 0;
}

void
ingest_prepare(const bconfig_t *cfg, const bconfig_partner_t *p, const Ptibus__V1__Publish *pub,
               ingest_prep_t *out)
{
    memset(out, 0, sizeof *out);
    pt_error_clear(&out->why);
    out->code = accept_check(cfg, p, pub, out, &out->why);
    out->done = true;
}

/* Same (sender, message_id) seen before: 1 = idempotent retry acked again, -1 =
 * conflict refused, 0 = new message. */
static int
dedup_check(ingest_t *in, ingest_reply_t *r, const bconfig_partner_t *p, const ingest_prep_t *a,
            uint64_t *seq)
{
    uint8_t old[PT_JOURNAL_HASH_LEN];
    if (journal_dedup_find(in->txn, p->id, a->env->message_id, seq, old) != 0)
        return 0;
    if (memcmp(old, a->hash, sizeof old) == 0) {
        r->seq = *seq;
        r->duplicate = true;
        in->stats.duplicates++;
        return 1;
    }
    return -1;
}

typedef struct lookup_ctx {
    ingest_t *in;
    const char *replier;
    char sender[PT_PARTNER_ID_MAX + 1]; /* of the first match */
    size_t n_senders;                   /* distinct senders of the matches: 0, 1 or 2 */
} lookup_ctx_t;

/* True when v is an accepted message that was routed to partner. */
static bool
routed_to(const journal_view_t *v, const char *partner)
{
    if (v->kind != PT_REC_RECEIVED)
        return false;
    for (size_t i = 0; i < v->n_recipients; i++)
        if (strcmp(v->recipients[i], partner) == 0)
            return true;
    return false;
}

/* One record carrying the correlation id: counts the distinct senders of those routed
 * to the replier, and stops at the second (ambiguous). */
static int
correlated_visit(const journal_view_t *v, void *arg)
{
    lookup_ctx_t *c = arg;
    if (!routed_to(v, c->replier))
        return 0;
    if (c->n_senders == 0) {
        snprintf(c->sender, sizeof c->sender, "%s", v->partner);
        c->n_senders = 1;
    } else if (strcmp(c->sender, v->partner) != 0) {
        c->n_senders = 2;
        return 1;
    }
    return 0;
}

/* The sender of the message a reply correlates to (router_lookup_fn), in the batch's
 * write transaction: by seq exactly, or by message id when it is unambiguous. Message
 * ids are chosen by each sender, so two senders may have used the same one; a reply
 * must never go to the wrong one (docs/routing.md, "Replies"). */
static int
correlated_sender(void *arg, uint64_t seq, const char *message_id, char *sender, size_t cap)
{
    lookup_ctx_t *c = arg;
    journal_view_t v;
    pt_error_t err;
    int rc;
    if (seq != 0) {
        rc = journal_txn_view(c->in->txn, seq, &v, &err);
        if (rc == 0 && (!routed_to(&v, c->replier) ||
                        (message_id[0] != '\0' && strcmp(v.message_id, message_id) != 0)))
            rc = PT_ENOTFOUND;
        if (rc == 0)
            snprintf(sender, cap, "%s", v.partner);
        return rc;
    }
    c->n_senders = 0; /* the router may ask once per rule */
    rc = journal_txn_visit_message(c->in->txn, message_id, correlated_visit, c, &err);
    if (rc < 0)
        return rc;
    if (c->n_senders == 0)
        return PT_ENOTFOUND;
    if (c->n_senders > 1)
        return PT_EINVALID;
    snprintf(sender, cap, "%s", c->sender);
    return 0;
}

static void
accept_append(ingest_t *in, ingest_reply_t *r, const bconfig_partner_t *p, const ingest_prep_t *a,
              const char *const *recipients, size_t n_recipients)
{
    char nir[14];
    const char *person_nir = NULL;
    const Ptibus__V1__PersonRef *person = validate_envelope_person(a->env);
    if (person && person->nir && person->nir[0] && nir_normalise(person->nir, nir, NULL) == 0)
        person_nir = nir;
    journal_record_t rec = {.kind = PT_REC_RECEIVED,
                            .partner = p->id,
                            .msg_type = a->type,
                            .message_id = a->env->message_id,
                            .correlation_id = a->env->correlation_id,
                            .payload = a->bytes,
                            .payload_len = a->len,
                            .payload_hash = a->hash,
                            .person_nir = person_nir,
                            .recipients = recipients};
    pt_error_t err;
    int rc = journal_append(in->txn, &rec, &r->seq, &err);
    sodium_memzero(nir, sizeof nir);
    if (rc != 0) {
        turn_fail(in, rc, &err);
        return;
    }
    in->batch_accepted++;
    r->counter = counter_of(in->m_accepted, p->id, a->type, -1);
    for (size_t i = 0; in->routed && i < n_recipients && i < PT_RECIPIENTS_MAX; i++) {
        const bconfig_partner_t *to = bconfig_partner_by_id(in->cfg, recipients[i]);
        if (to != NULL) /* ids that outlive the envelope */
            in->routed->to[in->routed->n++] = to->id;
    }
}

/* Routes and appends a new message; returns a Nack code when it cannot be routed. */
static int
accept_new(ingest_t *in, ingest_reply_t *r, const bconfig_partner_t *p, const ingest_prep_t *a,
           pt_error_t *why)
{
    const char *rcpt[PT_RECIPIENTS_MAX + 1];
    size_t n = 0;
    lookup_ctx_t lc = {.in = in, .replier = p->id};
    int rc = router_resolve(in->router, p->id, a->env, correlated_sender, &lc, rcpt,
                            PT_RECIPIENTS_MAX, &n, why);
    if (rc != 0)
        return rc == PT_EINVALID ? PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID
                                 : PTIBUS__V1__NACK_CODE__NACK_CODE_NOT_ALLOWED;
    rcpt[n] = NULL;
    accept_append(in, r, p, a, rcpt, n);
    return 0;
}

void
ingest_publish(ingest_t *in, batch_t *b, const uint8_t *rid, size_t rid_len,
               const bconfig_partner_t *p, const Ptibus__V1__Publish *pub, ingest_prep_t *prep,
               ingest_routed_t *routed)
{
    ingest_prep_t local;
    if (prep == NULL || !prep->done) {
        prep = &local;
        ingest_prepare(in->cfg, p, pub, prep);
    }
    ingest_reply_t rbuf, *r = reply_init(&rbuf, rid, rid_len, pub->message_id);
    in->b = b;
    in->txn = NULL;
    in->routed = routed;
    if (routed)
        routed->n = 0;
    if (batch_failed(b)) {
        /* the turn is lost: answered as a retryable Nack when the batch is sent */
    } else if (quota_ok(in, r, p, pub->envelope.len)) {
        ingest_prep_t *a = prep;
        pt_error_t why = prep->why;
        int code = prep->code;
        if (code == 0 && turn_txn(in) != 0) {
            /* likewise */
        } else if (code == 0) {
            uint64_t first = 0;
            int d = dedup_check(in, r, p, a, &first);
            if (d < 0) {
                pt_error_set(&why, PT_EDUPCONFLICT, "message_id",
                             "already used by %s with different content (seq %llu)", p->id,
                             (unsigned long long)first);
                code = PTIBUS__V1__NACK_CODE__NACK_CODE_DUPLICATE_CONFLICT;
            } else if (d == 0) {
                code = accept_new(in, r, p, a, &why);
            }
        }
        if (code != 0)
            reject(in, r, p, a->type, pub->envelope.data, pub->envelope.len, code, &why);
    }
    reply_queue(in, r);
    ingest_prep_fini(prep);
    in->b = NULL;
    in->routed = NULL;
}

void
ingest_end(ingest_t *in, bool committed)
{
    if (in->turn_replies) {
        in->stats.batches++;
        in->stats.last_batch = (uint32_t)in->turn_replies;
    }
    if (committed)
        in->stats.accepted += in->batch_accepted;
    else
        in->stats.commit_failures++;
    in->batch_accepted = 0;
    in->turn_replies = 0;
}
