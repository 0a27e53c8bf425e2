/* uplink: spool -> link -> spool (see uplink.h). */
#include "uplink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <sodium.h>

#include "codec.h"
#include "keys.h"
#include "log.h"

struct uplink {
    link_t *link;
    spool_t *spool;
    uplink_hooks_t h;
    unsigned retry_streak;   /* retryable Nacks since the last ack: the backoff's exponent */
    int64_t next_due_wall;   /* earliest retry time the spool reported, 0: none */
    int64_t wall_now;        /* the wall time of the current call, for the callbacks */
    link_state_t last_state; /* for counting downs */
    uplink_counts_t n;
    /* failover: what it takes to open the next link, and when this one lost its session */
    int epfd;          /* uplink_fd(): holds the current link's descriptor */
    link_options_t lo; /* endpoint and keys point into the fields below */
    uint8_t server_pk[PT_KEY_LEN], client_pk[PT_KEY_LEN];
    uint8_t *client_sk; /* sodium_malloc'd copy */
    char client_name[64];
    char *endpoints[PT_UPLINK_MAX_ENDPOINTS];
    size_t n_endpoints, cur;
    int64_t failover_ms;
    int64_t mono_now;     /* the monotonic time of the current call, for on_state */
    int64_t not_up_since; /* when the current link was opened or lost its session; -1: up */
};

/* ---- link callbacks ---- */

static int64_t
retry_delay_ms(unsigned streak)
{
    uint64_t d = PT_UPLINK_RETRY_BASE_MS;
    for (unsigned i = 1; i < streak && d < PT_UPLINK_RETRY_MAX_MS; i++)
        d *= 2;
    if (d > PT_UPLINK_RETRY_MAX_MS)
        d = PT_UPLINK_RETRY_MAX_MS;
    /* equal jitter: [d/2, d] */
    return (int64_t)(d / 2 + randombytes_uniform((uint32_t)(d / 2 + 1)));
}

static void
record_result(uplink_t *u, const char *id, const link_result_t *r)
{
    pt_error_t err;
    pt_error_clear(&err);
    int rc;
    if (r->nack_code == 0) {
        u->retry_streak = 0;
        u->n.accepted++;
        u->n.duplicates += r->duplicate;
        rc = spool_accepted(u->spool, id, r->seq, u->wall_now, &err);
    } else if (r->retryable) {
        u->n.retried++;
        int64_t at = u->wall_now + retry_delay_ms(++u->retry_streak);
        rc = spool_retry(u->spool, id, at, &err);
        if (rc == 0 && (u->next_due_wall == 0 || at < u->next_due_wall))
            u->next_due_wall = at;
        pt_log_warn("uplink.retry", "message %s: broker busy (%s), sent again in %lld ms", id,
                    r->reason, (long long)(at - u->wall_now));
    } else {
        u->n.rejected++;
        rc = spool_rejected(u->spool, id, (uint32_t)r->nack_code, r->reason, r->field_path,
                            u->wall_now, &err);
        pt_log_info("uplink.rejected", "message %s refused by the broker (%s) at %s", id,
                    codec_nack_name(r->nack_code), r->field_path[0] ? r->field_path : "-");
    }
    if (rc != 0 && rc != PT_ENOTFOUND)
        pt_log_error("uplink.spool", "message %s: cannot record the broker's answer: %s", id,
                     err.msg);
}

static void
on_publish_result(void *arg, const char *id, const link_result_t *r)
{
    uplink_t *u = arg;
    if (id == NULL || id[0] == '\0')
        return;
    record_result(u, id, r);
    if (u->h.on_result != NULL)
        u->h.on_result(u->h.arg, id, r);
}

static void
on_deliver(void *arg, const Ptibus__V1__Deliver *d)
{
    uplink_t *u = arg;
    u->n.deliveries++;
    if (u->h.on_deliver != NULL)
        u->h.on_deliver(u->h.arg, d);
}

static spool_receipt_kind_t
receipt_kind(Ptibus__V1__ReceiptKind k)
{
    return k == PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED ? SPOOL_RCPT_DEAD_LETTERED
                                                                     : SPOOL_RCPT_ACKNOWLEDGED;
}

static void
on_receipt(void *arg, const Ptibus__V1__Receipt *r)
{
    uplink_t *u = arg;
    pt_error_t err;
    pt_error_clear(&err);
    u->n.receipts++;
    if (r->kind == PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_UNSPECIFIED)
        return;
    int rc = spool_receipt(u->spool, r->message_id, r->recipient, receipt_kind(r->kind), r->at_ms,
                           r->reason, &err);
    if (rc != 0 && rc != PT_ENOTFOUND)
        pt_log_error("uplink.receipt", "message %s: cannot record the receipt: %s", r->message_id,
                     err.msg);
    if (u->h.on_receipt != NULL)
        u->h.on_receipt(u->h.arg, r);
}

static void
on_state(void *arg, link_state_t st, const char *cause)
{
    uplink_t *u = arg;
    if (st != PT_LINK_UP) {
        /* the link forgot what was in flight: send it all again (the broker dedups) */
        spool_reset_in_flight(u->spool);
        if (u->last_state == PT_LINK_UP)
            u->n.link_downs++;
    }
    if (st == PT_LINK_UP)
        u->not_up_since = -1;
    else if (u->not_up_since < 0)
        u->not_up_since = u->mono_now;
    if (st == PT_LINK_UP)
        pt_log_info("uplink.up", "in session with the broker at %s as %s", u->endpoints[u->cur],
                    link_partner_id(u->link));
    else if (st == PT_LINK_DOWN)
        pt_log_warn("uplink.down", "broker link down: %s", cause);
    else
        pt_log_info("uplink.connecting", "broker link %s: %s", link_state_name(st), cause);
    u->last_state = st;
    if (u->h.on_state != NULL)
        u->h.on_state(u->h.arg, st, cause);
}

/* ---- life ---- */

static int
copy_options(uplink_t *u, const uplink_options_t *o, pt_error_t *err)
{
    const char *one = o->link.endpoint;
    size_t n = o->n_endpoints > 0 ? o->n_endpoints : 1;
    if (n > PT_UPLINK_MAX_ENDPOINTS || (o->n_endpoints == 0 && one == NULL))
        return pt_error_set(err, -EINVAL, "uplink", "1 to %d broker endpoints",
                            PT_UPLINK_MAX_ENDPOINTS);
    for (size_t i = 0; i < n; i++)
        if ((u->endpoints[i] = strdup(o->n_endpoints > 0 ? o->endpoints[i] : one)) == NULL)
            return pt_error_set(err, -ENOMEM, "uplink", "out of memory");
    u->n_endpoints = n;
    u->failover_ms = o->failover_after_ms > 0 ? o->failover_after_ms : PT_UPLINK_FAILOVER_MS;
    u->lo = o->link;
    if (u->lo.publish_window == 0)
        u->lo.publish_window = PT_UPLINK_WINDOW;
    if (o->link.no_curve)
        return 0;
    if (o->link.server_pk == NULL || o->link.client_pk == NULL || o->link.client_sk == NULL)
        return pt_error_set(err, -EINVAL, "uplink", "CURVE keys missing");
    if ((u->client_sk = sodium_malloc(PT_KEY_LEN)) == NULL)
        return pt_error_set(err, -ENOMEM, "uplink", "out of memory");
    memcpy(u->server_pk, o->link.server_pk, PT_KEY_LEN);
    memcpy(u->client_pk, o->link.client_pk, PT_KEY_LEN);
    memcpy(u->client_sk, o->link.client_sk, PT_KEY_LEN);
    u->lo.server_pk = u->server_pk;
    u->lo.client_pk = u->client_pk;
    u->lo.client_sk = u->client_sk;
    return 0;
}

/* A link to endpoints[cur], saying Hello, its descriptor in the uplink's epoll set. */
static int
open_link(uplink_t *u, int64_t mono_ms, link_t **out, pt_error_t *err)
{
    link_callbacks_t cb = {.arg = u,
                           .on_publish_result = on_publish_result,
                           .on_deliver = on_deliver,
                           .on_receipt = on_receipt,
                           .on_state = on_state};
    u->lo.endpoint = u->endpoints[u->cur];
    int rc = link_new(&u->lo, &cb, mono_ms, out, err);
    if (rc == 0)
        rc = link_hello(*out, mono_ms, err);
    struct epoll_event ev = {.events = EPOLLIN};
    if (rc == 0 && epoll_ctl(u->epfd, EPOLL_CTL_ADD, link_fd(*out), &ev) != 0)
        rc = pt_error_set(err, -errno, "uplink", "epoll_ctl: %s", strerror(errno));
    if (rc != 0)
        link_destroy(out);
    return rc;
}

int
uplink_new(const uplink_options_t *o, const uplink_hooks_t *h, int64_t mono_ms, uplink_t **out,
           pt_error_t *err)
{
    uplink_t *u = calloc(1, sizeof *u);
    if (u == NULL)
        return pt_error_set(err, -ENOMEM, "uplink", "out of memory");
    u->spool = o->spool;
    u->epfd = -1;
    if (h != NULL)
        u->h = *h;
    u->last_state = PT_LINK_CONNECTING;
    u->mono_now = u->not_up_since = mono_ms;
    snprintf(u->client_name, sizeof u->client_name, "%s",
             o->link.client_name ? o->link.client_name : "ptibus-adapter");
    int rc = copy_options(u, o, err);
    u->lo.client_name = u->client_name;
    if (rc == 0 && (u->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        rc = pt_error_set(err, -errno, "uplink", "epoll_create1: %s", strerror(errno));
    if (rc == 0)
        rc = open_link(u, mono_ms, &u->link, err);
    if (rc != 0) {
        uplink_destroy(&u);
        return rc;
    }
    *out = u;
    return 0;
}

void
uplink_destroy(uplink_t **pu)
{
    if (pu == NULL || *pu == NULL)
        return;
    uplink_t *u = *pu;
    link_destroy(&u->link);
    if (u->epfd >= 0)
        close(u->epfd);
    for (size_t i = 0; i < u->n_endpoints; i++)
        free(u->endpoints[i]);
    sodium_free(u->client_sk);
    free(u);
    *pu = NULL;
}

/* No session on the current endpoint for failover_after: the next one, round the list.
 * The old link is replaced only once the new one is open. */
static void
failover(uplink_t *u, int64_t mono_ms)
{
    size_t from = u->cur;
    char cause[PT_LINK_CAUSE_MAX];
    snprintf(cause, sizeof cause, "%s", link_cause(u->link));
    u->cur = (u->cur + 1) % u->n_endpoints;
    pt_error_t err;
    pt_error_clear(&err);
    link_t *next = NULL;
    if (open_link(u, mono_ms, &next, &err) != 0) {
        pt_log_error("uplink.failover", "cannot open a link to %s: %s", u->endpoints[u->cur],
                     err.msg);
        u->cur = from;
        u->not_up_since = mono_ms; /* try again after failover_after */
        return;
    }
    epoll_ctl(u->epfd, EPOLL_CTL_DEL, link_fd(u->link), NULL);
    link_destroy(&u->link);
    u->link = next;
    u->n.failovers++;
    u->not_up_since = mono_ms;
    spool_reset_in_flight(u->spool); /* the old link's in flight: sent again (dedup) */
    pt_log_warn("uplink.failover",
                "no session with the broker at %s for %lld ms (%s): trying %s (%zu of %zu)",
                u->endpoints[from], (long long)u->failover_ms, cause, u->endpoints[u->cur],
                u->cur + 1, u->n_endpoints);
    u->last_state = PT_LINK_CONNECTING;
    if (u->h.on_state != NULL)
        u->h.on_state(u->h.arg, PT_LINK_CONNECTING, link_cause(u->link));
}

static bool
failover_due(const uplink_t *u, int64_t mono_ms)
{
    return u->n_endpoints > 1 && u->not_up_since >= 0 &&
           mono_ms - u->not_up_since >= u->failover_ms;
}

int
uplink_fd(const uplink_t *u)
{
    return u->epfd;
}

void
uplink_on_readable(uplink_t *u, int64_t mono_ms, int64_t wall_ms)
{
    pt_error_t err;
    u->wall_now = wall_ms;
    u->mono_now = mono_ms;
    /* a bad frame is dropped: read on, a bounded number of times */
    for (int i = 0; i < 64; i++) {
        pt_error_clear(&err);
        if (link_on_readable(u->link, mono_ms, &err) == 0)
            return;
        pt_log_warn("uplink.frame", "a frame from the broker was dropped: %s", err.msg);
    }
}

/* ---- sending ---- */

typedef struct pump {
    uplink_t *u;
    int64_t mono_ms;
    size_t sent;
} pump_t;

static int
send_one(void *arg, const spool_entry_t *e)
{
    pump_t *p = arg;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = link_publish(p->u->link, e->message_id, e->data, e->len, p->mono_ms, &err);
    if (rc == -EAGAIN || rc == -ENOTCONN)
        return 1; /* window or queue full, or the link went down: later */
    if (rc != 0) {
        pt_log_error("uplink.send", "message %s: cannot send it: %s", e->message_id, err.msg);
        return 1;
    }
    spool_mark_in_flight(p->u->spool, e->qseq);
    p->u->n.published++;
    p->sent++;
    return 0;
}

size_t
uplink_pump(uplink_t *u, int64_t mono_ms, int64_t wall_ms)
{
    if (link_state(u->link) != PT_LINK_UP)
        return 0;
    pump_t p = {.u = u, .mono_ms = mono_ms};
    pt_error_t err;
    pt_error_clear(&err);
    uint32_t room = PT_UPLINK_WINDOW - link_in_flight(u->link);
    if (link_in_flight(u->link) >= PT_UPLINK_WINDOW)
        return 0;
    int64_t due = 0;
    int rc = spool_next_to_send(u->spool, wall_ms, room, send_one, &p, &due, &err);
    if (rc < 0)
        pt_log_error("uplink.spool", "cannot list the spool: %s", err.msg);
    u->next_due_wall = due;
    return p.sent;
}

void
uplink_tick(uplink_t *u, int64_t mono_ms)
{
    pt_error_t err;
    pt_error_clear(&err);
    u->mono_now = mono_ms;
    if (link_tick(u->link, mono_ms, &err) != 0)
        pt_log_warn("uplink.tick", "%s", err.msg);
    if (failover_due(u, mono_ms))
        failover(u, mono_ms);
}

int64_t
uplink_due_in(const uplink_t *u, int64_t mono_ms, int64_t wall_ms)
{
    int64_t d = -1;
    int64_t at = link_next_due(u->link);
    if (at >= 0)
        d = at > mono_ms ? at - mono_ms : 0;
    if (u->n_endpoints > 1 && u->not_up_since >= 0) {
        int64_t f = u->not_up_since + u->failover_ms - mono_ms;
        f = f > 0 ? f : 0;
        if (d < 0 || f < d)
            d = f;
    }
    if (u->next_due_wall > 0) {
        int64_t r = u->next_due_wall > wall_ms ? u->next_due_wall - wall_ms : 0;
        if (d < 0 || r < d)
            d = r;
    }
    return d;
}

int
uplink_deliver_ack(uplink_t *u, uint64_t seq, bool ok, const char *reason, int64_t mono_ms)
{
    pt_error_t err;
    pt_error_clear(&err);
    int rc = link_deliver_ack(u->link, seq, ok, reason, mono_ms, &err);
    if (rc != 0)
        pt_log_warn("uplink.ack", "delivery %llu: ack not sent (%s); the broker redelivers it",
                    (unsigned long long)seq, err.msg[0] ? err.msg : pt_strerror(rc));
    return rc;
}

bool
uplink_up(const uplink_t *u)
{
    return link_state(u->link) == PT_LINK_UP;
}

link_state_t
uplink_state(const uplink_t *u)
{
    return link_state(u->link);
}

const char *
uplink_cause(const uplink_t *u)
{
    return uplink_up(u) ? "" : link_cause(u->link);
}

uint32_t
uplink_in_flight(const uplink_t *u)
{
    return link_in_flight(u->link);
}

const char *
uplink_endpoint(const uplink_t *u)
{
    return u->endpoints[u->cur];
}

uplink_counts_t
uplink_counts(const uplink_t *u)
{
    return u->n;
}
