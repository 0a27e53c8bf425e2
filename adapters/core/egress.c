/* egress: outbox, webhook or pull, then the DeliverAck after the commit (see egress.h). */
#include "egress.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "clock.h"
#include "codec.h"
#include "log.h"
#include "outbox.h"
#include "pull.h"
#include "webhook.h"

#define EG_REASON_MAX 256
#define EG_SECRET_MAX 4096

typedef struct eg_ack {
    uint64_t seq;
    bool ok;
    char reason[EG_REASON_MAX];
} eg_ack_t;

/* A delivery waiting for the webhook's 2xx (or its next attempt). */
typedef struct eg_hold {
    struct eg_hold *next;
    egress_t *e;
    uint64_t seq;
    bool replay;
    unsigned attempts;
    char *message_id;
    char *body;
    size_t len;
    uv_timer_t timer;
    bool posted; /* a webhook_post is pending (its callback will come) */
    bool closing;
} eg_hold_t;

/* An outbox delivery written (or found) in a batch not durable yet: its mark and its ack
 * wait for the generations of its JSON file and of its partner-format files. */
typedef struct eg_wait {
    uint64_t seq;
    uint64_t gen, fmt_gen;
    bool written; /* WRITTEN, not ALREADY (the counts) */
} eg_wait_t;

typedef struct eg_format {
    const pt_codec_ops_t *ops;
    pt_codec_config_t cfg;
    char ext[16];
} eg_format_t;

struct egress {
    uv_loop_t *loop;
    aconfig_egress_t kind;
    spool_t *spool;
    egress_ack_fn ack;
    void *ack_arg;
    outbox_t *outbox;   /* OUTBOX, or receipts of any kind */
    webhook_t *webhook; /* WEBHOOK */
    eg_hold_t *held;
    eg_ack_t *acks;
    size_t n_acks;
    eg_format_t formats[ACONFIG_MAX_FORMATS];
    size_t n_formats;
    char *outbox_dir;
    egress_counts_t n;
    eg_wait_t *waiting; /* outbox deliveries whose files are not durable yet */
    size_t n_waiting, cap_waiting;
    uv_async_t *flushed; /* the outbox's flusher is done with a batch */
};

/* ---- acks after the commit ---- */

static void
queue_ack(egress_t *e, uint64_t seq, bool ok, const char *reason)
{
    if (e->n_acks == PT_EGRESS_ACKS_MAX) {
        pt_log_warn("egress.acks", "delivery %llu: too many acks waiting; the broker redelivers it",
                    (unsigned long long)seq);
        return;
    }
    eg_ack_t *a = &e->acks[e->n_acks++];
    a->seq = seq;
    a->ok = ok;
    snprintf(a->reason, sizeof a->reason, "%s", reason ? reason : "");
}

bool
egress_acks_waiting(const egress_t *e)
{
    return e->n_acks > 0 ||
           (e->outbox != NULL && outbox_staged(e->outbox) > 0 && !outbox_flushing(e->outbox));
}

/* Marks and acks the waiting deliveries whose files are durable now; drops those whose
 * batch failed (not acknowledged: the broker redelivers them). */
static void
resolve_waiting(egress_t *e)
{
    size_t k = 0;
    for (size_t i = 0; i < e->n_waiting; i++) {
        eg_wait_t *w = &e->waiting[i];
        bool f1 = false, f2 = false;
        bool durable =
            outbox_durable(e->outbox, w->gen, &f1) && outbox_durable(e->outbox, w->fmt_gen, &f2);
        pt_error_t err;
        pt_error_clear(&err);
        if (f1 || f2) {
            e->n.retry_later++;
            pt_log_warn("egress.retry",
                        "delivery %llu: its file was not kept; the broker "
                        "redelivers it",
                        (unsigned long long)w->seq);
        } else if (durable && spool_inbound_mark(e->spool, w->seq, pt_clock_wall_ms(), &err) != 0) {
            e->n.retry_later++; /* the file is there: the redelivery finds it */
            pt_log_warn("egress.retry", "delivery %llu not marked (%s); the broker redelivers it",
                        (unsigned long long)w->seq, err.msg);
        } else if (durable) {
            *(w->written ? &e->n.handed_over : &e->n.already) += 1;
            queue_ack(e, w->seq, true, NULL);
        } else {
            e->waiting[k++] = *w;
        }
    }
    e->n_waiting = k;
}

int
egress_prepare_commit(egress_t *e, pt_error_t *err)
{
    if (e->outbox == NULL)
        return 0;
    resolve_waiting(e);
    return outbox_flush(e->outbox, err); /* hands the turn's files over, never waits */
}

/* The flusher is done with a batch (loop thread): its deliveries may be acknowledged now,
 * after the turn that marks them commits (the check handle that follows). */
static void
on_flushed(uv_async_t *a)
{
    egress_t *e = a->data;
    pt_error_t err;
    pt_error_clear(&err);
    if (e == NULL || e->outbox == NULL)
        return;
    /* the batch may have been collected already (by a full staging batch's wait): the
     * deliveries it made durable are resolved all the same */
    outbox_collect(e->outbox, &err);
    resolve_waiting(e);
    if (outbox_flush(e->outbox, &err) != 0)
        pt_log_warn("egress.flush", "outbox: %s", err.msg);
}

/* From the flusher's thread. */
static void
flushed_notify(void *arg)
{
    uv_async_send(arg);
}

void
egress_committed(egress_t *e, int commit_rc)
{
    for (size_t i = 0; commit_rc == 0 && i < e->n_acks; i++)
        e->ack(e->ack_arg, e->acks[i].seq, e->acks[i].ok, e->acks[i].reason);
    if (commit_rc != 0 && e->n_acks > 0)
        pt_log_warn("egress.commit",
                    "%zu deliveries not acknowledged (the spool commit failed): "
                    "the broker redelivers them",
                    e->n_acks);
    e->n_acks = 0;
}

void
egress_pulled(egress_t *e, uint64_t seq)
{
    e->n.handed_over++;
    queue_ack(e, seq, true, NULL);
}

/* ---- outbox ---- */

typedef struct eg_buf {
    char *p;
    size_t n, cap;
} eg_buf_t;

static int
buf_write(void *ctx, const void *data, size_t len)
{
    eg_buf_t *b = ctx;
    if (b->n + len > b->cap) {
        size_t cap = (b->n + len) * 2 + 256;
        char *p = realloc(b->p, cap);
        if (p == NULL)
            return -ENOMEM;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, len);
    b->n += len;
    return 0;
}

/* The delivery in one partner format, beside its JSON file. Returns 0 (written, or the
 * format cannot express this message), or a negative code (retry later). */
static int
write_format(egress_t *e, const eg_format_t *f, const outbox_delivery_t *d,
             const Ptibus__V1__Envelope *env, uint64_t *gen)
{
    eg_buf_t b = {0};
    pt_error_t err;
    pt_error_clear(&err);
    const Ptibus__V1__Envelope *envs[1] = {env};
    int rc = f->ops->encode(&f->cfg, envs, 1, buf_write, &b, &err);
    if (rc == PT_EINVALID) {
        pt_log_info("egress.format", "delivery %llu: no %s file (%s)", (unsigned long long)d->seq,
                    f->ops->name, err.msg);
        free(b.p);
        return 0;
    }
    char id[PT_OUTBOX_NAME_MAX + 1], name[PT_OUTBOX_NAME_MAX + 64];
    if (rc == 0 && outbox_sanitize(env->message_id, id, sizeof id - 40) < 0)
        rc = PT_EINVALID;
    if (rc == 0)
        snprintf(name, sizeof name, "%020llu-%s%s", (unsigned long long)d->seq, id, f->ext);
    if (rc == 0) /* staged with the turn's JSON files, durable with them */
        rc = outbox_write_file(e->outbox, name, b.p ? b.p : "", b.n, gen, &err);
    if (rc != 0)
        pt_log_warn("egress.format", "delivery %llu: %s file not written: %s",
                    (unsigned long long)d->seq, f->ops->name, err.msg);
    free(b.p);
    return rc;
}

/* Every configured partner format of a delivery; 0 or the first failure. */
static int
write_formats(egress_t *e, const outbox_delivery_t *d, uint64_t *gen)
{
    *gen = 0;
    if (e->n_formats == 0)
        return 0;
    ProtobufCMessage *m = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    if (codec_unpack(&ptibus__v1__envelope__descriptor, d->envelope, d->envelope_len,
                     PT_OUTBOX_MAX_ENVELOPE, &m, &err) != 0)
        return 0; /* outbox_handle refuses it with the reason */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < e->n_formats; i++) {
        uint64_t g = 0;
        rc = write_format(e, &e->formats[i], d, (const Ptibus__V1__Envelope *)m, &g);
        *gen = g > *gen ? g : *gen;
    }
    codec_free(&m);
    return rc;
}

int
egress_add_format(egress_t *e, const pt_codec_ops_t *ops, const char *encoding)
{
    if (ops == NULL || ops->encode == NULL || e->outbox_dir == NULL ||
        e->kind != ACONFIG_EGRESS_OUTBOX || e->n_formats == ACONFIG_MAX_FORMATS)
        return PT_EINVALID;
    eg_format_t *f = &e->formats[e->n_formats++];
    f->ops = ops;
    f->cfg.encoding = encoding;
    const char *pat = ops->patterns ? ops->patterns[0] : NULL,
               *dot = pat ? strrchr(pat, '.') : NULL;
    snprintf(f->ext, sizeof f->ext, "%s", dot ? dot : ".txt");
    return 0;
}

static int
wait_add(egress_t *e, uint64_t seq, uint64_t gen, uint64_t fmt_gen, bool written)
{
    if (e->n_waiting == e->cap_waiting) {
        size_t cap = e->cap_waiting ? 2 * e->cap_waiting : 64;
        eg_wait_t *w = realloc(e->waiting, cap * sizeof *w);
        if (w == NULL)
            return -ENOMEM;
        e->waiting = w;
        e->cap_waiting = cap;
    }
    e->waiting[e->n_waiting++] = (eg_wait_t){seq, gen, fmt_gen, written};
    return 0;
}

/* The delivery's files are staged (or found): its mark and ack wait until they are durable
 * (resolve_waiting, at once when they are already). */
static void
deliver_outbox(egress_t *e, const outbox_delivery_t *d)
{
    outbox_result_t res = {0};
    pt_error_t err;
    pt_error_clear(&err);
    bool seen = false;
    uint64_t fmt_gen = 0;
    if (!d->replay && spool_inbound_seen(e->spool, d->seq, &seen, &err) == 0 && seen) {
        e->n.already++;
        queue_ack(e, d->seq, true, NULL);
        return;
    }
    if (write_formats(e, d, &fmt_gen) != 0) {
        e->n.retry_later++;
        return; /* the broker redelivers it */
    }
    int rc = outbox_write(e->outbox, d, &res, &err);
    if (rc == 0 && wait_add(e, d->seq, res.gen, fmt_gen, res.status == OUTBOX_WRITTEN) != 0)
        rc = pt_error_set(&err, -ENOMEM, "egress", "out of memory");
    if (rc == 0) {
        if (res.gen == 0 && fmt_gen == 0)
            resolve_waiting(e);
    } else if (res.status == OUTBOX_REFUSED) {
        e->n.refused++;
        pt_log_warn("egress.refused", "delivery %llu refused for good: %s",
                    (unsigned long long)d->seq, err.msg);
        queue_ack(e, d->seq, false, err.msg);
    } else {
        e->n.retry_later++;
        pt_log_warn("egress.retry", "delivery %llu not written (%s); the broker redelivers it",
                    (unsigned long long)d->seq, err.msg);
    }
}

/* ---- webhook ---- */

static eg_hold_t *
hold_find(egress_t *e, uint64_t seq, bool replay)
{
    for (eg_hold_t *h = e->held; h != NULL; h = h->next)
        if (h->seq == seq && h->replay == replay && !h->closing)
            return h;
    return NULL;
}

static void
hold_closed(uv_handle_t *t)
{
    eg_hold_t *h = t->data;
    free(h->message_id);
    free(h->body);
    free(h);
}

static void
hold_drop(egress_t *e, eg_hold_t *h)
{
    for (eg_hold_t **p = &e->held; *p != NULL; p = &(*p)->next)
        if (*p == h) {
            *p = h->next;
            break;
        }
    e->n.held--;
    h->closing = true;
    uv_close((uv_handle_t *)&h->timer, hold_closed);
}

static void hook_done(void *ctx, const webhook_result_t *res);
static void hold_retry_later(eg_hold_t *h);

static void
hold_post(eg_hold_t *h)
{
    egress_t *e = h->e;
    h->attempts++;
    e->n.webhook_attempts++;
    int rc = webhook_post(e->webhook, h->seq, h->message_id, h->body, h->len, hook_done, h);
    if (rc == 0) {
        h->posted = true;
        return;
    }
    e->n.webhook_failures++;
    if (rc == PT_ETOOLARGE || rc == PT_EINVALID) {
        queue_ack(e, h->seq, false,
                  "the delivery cannot be posted to the webhook (too large "
                  "or bad message id)");
        hold_drop(e, h);
        return;
    }
    hold_retry_later(h); /* queue full, or out of memory: later */
}

static void
on_retry(uv_timer_t *t)
{
    hold_post(t->data);
}

static void
hold_retry_later(eg_hold_t *h)
{
    uv_timer_start(&h->timer, on_retry, webhook_backoff_ms(h->attempts), 0);
}

static void
hook_done(void *ctx, const webhook_result_t *res)
{
    eg_hold_t *h = ctx;
    egress_t *e = h->e;
    h->posted = false;
    if (h->closing || e == NULL)
        return;
    pt_error_t err;
    pt_error_clear(&err);
    if (res->outcome == PT_WEBHOOK_DELIVERED) {
        if (spool_inbound_mark(e->spool, h->seq, pt_clock_wall_ms(), &err) != 0)
            pt_log_error("egress.mark", "delivery %llu: %s", (unsigned long long)h->seq, err.msg);
        e->n.handed_over++;
        queue_ack(e, h->seq, true, NULL);
        hold_drop(e, h);
    } else if (res->outcome == PT_WEBHOOK_FINAL) {
        char why[EG_REASON_MAX];
        snprintf(why, sizeof why, "the partner's webhook refused it for good: HTTP %ld",
                 res->status);
        e->n.refused++;
        queue_ack(e, h->seq, false, why);
        hold_drop(e, h);
    } else {
        e->n.webhook_failures++;
        pt_log_warn("egress.webhook", "delivery %llu: attempt %u failed (%s, HTTP %ld); retried",
                    (unsigned long long)h->seq, h->attempts, res->reason, res->status);
        hold_retry_later(h);
    }
}

static void
deliver_webhook(egress_t *e, const outbox_delivery_t *d)
{
    bool seen = false;
    pt_error_t err;
    pt_error_clear(&err);
    if (!d->replay && spool_inbound_seen(e->spool, d->seq, &seen, &err) == 0 && seen) {
        e->n.already++;
        queue_ack(e, d->seq, true, NULL);
        return;
    }
    if (hold_find(e, d->seq, d->replay) != NULL)
        return; /* a redelivery of what is being posted: its ack will come */
    eg_hold_t *h = calloc(1, sizeof *h);
    int rc = h ? outbox_render(d, 0, &h->body, &h->len, &err) : -ENOMEM;
    const char *id = d->message_id ? d->message_id : "";
    if (rc == 0 && (h->message_id = strdup(id)) == NULL)
        rc = -ENOMEM;
    if (rc != 0) {
        if (h != NULL) {
            free(h->body);
            free(h);
        }
        if (rc == -ENOMEM)
            return; /* the broker redelivers it */
        e->n.refused++;
        queue_ack(e, d->seq, false, err.msg);
        return;
    }
    h->e = e;
    h->seq = d->seq;
    h->replay = d->replay;
    uv_timer_init(e->loop, &h->timer);
    h->timer.data = h;
    h->next = e->held;
    e->held = h;
    e->n.held++;
    hold_post(h);
}

/* ---- pull ---- */

/* Held in the spool's pull inbox until the partner's system acknowledges it (then
 * egress_pulled queues the DeliverAck). */
static void
deliver_pull(egress_t *e, const outbox_delivery_t *d)
{
    pull_status_t st = PULL_RETRY;
    pt_error_t err;
    pt_error_clear(&err);
    pull_put(e->spool, d, 0, &st, &err);
    switch (st) {
    case PULL_HELD:
    case PULL_ALREADY:
        break; /* the partner's ack will come */
    case PULL_SEEN:
        e->n.already++;
        queue_ack(e, d->seq, true, NULL);
        break;
    case PULL_REFUSED:
        e->n.refused++;
        queue_ack(e, d->seq, false, err.msg);
        break;
    default:
        e->n.retry_later++;
        pt_log_warn("egress.retry", "delivery %llu not held (%s); the broker redelivers it",
                    (unsigned long long)d->seq, err.msg);
    }
}

void
egress_deliver(egress_t *e, const Ptibus__V1__Deliver *dv, int64_t wall_ms)
{
    outbox_delivery_t d = outbox_delivery_of(dv, wall_ms);
    if (e->kind == ACONFIG_EGRESS_WEBHOOK)
        deliver_webhook(e, &d);
    else if (e->kind == ACONFIG_EGRESS_PULL)
        deliver_pull(e, &d);
    else
        deliver_outbox(e, &d);
}

void
egress_receipt(egress_t *e, const Ptibus__V1__Receipt *r)
{
    if (e->outbox == NULL)
        return;
    outbox_result_t res;
    pt_error_t err;
    pt_error_clear(&err);
    if (outbox_write_receipt(e->outbox, r, &res, &err) != 0 && res.status != OUTBOX_SKIPPED)
        pt_log_warn("egress.receipt", "receipt of %s not written: %s", r->message_id, err.msg);
}

/* ---- opening ---- */

/* The webhook's shared secret: a 0600 file of our own, 16 to 4096 bytes (a final newline
 * is not part of it). */
static int
read_secret(const char *path, uint8_t *buf, size_t *len, pt_error_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return pt_error_set(err, -errno, path, "cannot open the webhook secret: %s",
                            strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        rc = pt_error_set(err, PT_ECONFIG, path, "the webhook secret is not a regular file");
    else if ((st.st_mode & 077) != 0)
        rc = pt_error_set(err, PT_ECONFIG, path,
                          "the webhook secret may be read by others (mode %03o): chmod 600",
                          (unsigned)(st.st_mode & 0777));
    ssize_t n = rc == 0 ? read(fd, buf, EG_SECRET_MAX) : 0;
    close(fd);
    if (rc != 0)
        return rc;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (n < PT_WEBHOOK_SECRET_MIN)
        return pt_error_set(err, PT_ECONFIG, path,
                            "the webhook secret is shorter than %d bytes (or unreadable)",
                            PT_WEBHOOK_SECRET_MIN);
    *len = (size_t)n;
    return 0;
}

static int
open_webhook(egress_t *e, const aconfig_t *cfg, pt_error_t *err)
{
    uint8_t *secret = sodium_malloc(EG_SECRET_MAX);
    if (secret == NULL)
        return pt_error_set(err, -ENOMEM, "egress", "out of memory");
    size_t len = 0;
    int rc = read_secret(cfg->webhook_secret_file, secret, &len, err);
    webhook_opts_t o = {.url = cfg->webhook_url,
                        .secret = secret,
                        .secret_len = len,
                        .timeout_ms = cfg->webhook_timeout_ms,
                        .final_statuses = cfg->final_statuses,
                        .n_final = cfg->n_final_statuses};
    if (rc == 0)
        rc = webhook_new(e->loop, &o, &e->webhook, err);
    sodium_free(secret);
    return rc;
}

int
egress_open(uv_loop_t *loop, const aconfig_t *cfg, spool_t *spool, egress_ack_fn ack, void *ack_arg,
            egress_t **out, pt_error_t *err)
{
    egress_t *e = calloc(1, sizeof *e);
    if (e == NULL || (e->acks = calloc(PT_EGRESS_ACKS_MAX, sizeof *e->acks)) == NULL) {
        free(e);
        return pt_error_set(err, -ENOMEM, "egress", "out of memory");
    }
    *e = (egress_t){.loop = loop,
                    .kind = cfg->egress,
                    .spool = spool,
                    .ack = ack,
                    .ack_arg = ack_arg,
                    .acks = e->acks};
    int rc = 0;
    if (cfg->outbox_dir != NULL) {
        e->flushed = calloc(1, sizeof *e->flushed);
        if (e->flushed == NULL || uv_async_init(loop, e->flushed, on_flushed) != 0) {
            free(e->flushed);
            e->flushed = NULL;
            rc = pt_error_set(err, -ENOMEM, "egress", "cannot create the flusher's handle");
        }
        if (rc == 0)
            e->flushed->data = e;
        /* the turn's files synced on the outbox's own thread: the loop never waits */
        outbox_options_t oo = {.dir = cfg->outbox_dir,
                               .receipts = cfg->receipts,
                               .async_sync = true,
                               .flushed = flushed_notify,
                               .flushed_arg = e->flushed};
        if (rc == 0)
            rc = outbox_open(&oo, &e->outbox, err);
        if (rc == 0 && (e->outbox_dir = strdup(cfg->outbox_dir)) == NULL)
            rc = pt_error_set(err, -ENOMEM, "egress", "out of memory");
    }
    if (rc == 0 && e->kind == ACONFIG_EGRESS_WEBHOOK)
        rc = open_webhook(e, cfg, err);
    if (rc != 0) {
        egress_close(&e);
        return rc;
    }
    *out = e;
    return 0;
}

static void
free_handle(uv_handle_t *h)
{
    free(h);
}

void
egress_close(egress_t **pe)
{
    if (pe == NULL || *pe == NULL)
        return;
    egress_t *e = *pe;
    while (e->held != NULL) {
        eg_hold_t *h = e->held;
        h->e = NULL;
        hold_drop(e, h);
    }
    webhook_close(&e->webhook); /* calls hook_done with closing holds: ignored */
    outbox_close(&e->outbox);   /* joins the flusher: no notify after this */
    if (e->flushed != NULL) {
        e->flushed->data = NULL;
        uv_close((uv_handle_t *)e->flushed, free_handle);
    }
    if (e->n_waiting > 0)
        pt_log_info("egress.stop",
                    "%zu deliveries left unacknowledged: the broker redelivers "
                    "them, their files are found",
                    e->n_waiting);
    free(e->waiting);
    free(e->outbox_dir);
    free(e->acks);
    free(e);
    *pe = NULL;
}

egress_counts_t
egress_counts(const egress_t *e)
{
    return e->n;
}
