/* auth: ZAP handler mapping CURVE keys to partner ids. */
#include "auth.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <zmq.h>

#include "bucket.h"
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "zpart.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_PARTS 7 /* version, request id, domain, address, identity, mechanism, key */

#define AUTH_LOG_EVERY_MS 10000 /* one line per socket, kind of failure and 10 s */

#define AUTH_LOG_KINDS 8 /* distinct handshake failures rate-limited apart */

/* One kind of handshake failure (monitor event and value) on a socket. */
typedef struct fail_kind {
    uint16_t event;
    uint32_t value;
    int64_t last_log_ms; /* the last line for it (monotonic); 0: never */
    uint64_t suppressed; /* failures since, not logged one by one */
} fail_kind_t;

typedef struct watch {
    void *pair;
    char name[16];
    int64_t live; /* connections accepted and not yet disconnected */
    fail_kind_t kinds[AUTH_LOG_KINDS];
} watch_t;

struct auth {
    void *sock;
    const bconfig_t *cfg;
    pt_bucket_t *handshakes; /* per partner, cfg->partners order */
    pt_bucket_t *spare;      /* auth_reload_prepare's, for the partners of the next config */
    uint64_t refused;
    uint64_t accepted;
    watch_t watch[PT_AUTH_MAX_WATCH];
    int n_watch;
};

typedef struct zap_request {
    zmq_msg_t part[ZAP_PARTS];
    int n;
    bool extra; /* more parts than expected (PLAIN sends 2 credentials) */
} zap_request_t;

int
auth_open(void *zctx, const bconfig_t *cfg, auth_t **out, pt_error_t *err)
{
    *out = NULL;
    auth_t *a = calloc(1, sizeof *a);
    if (a == NULL)
        return pt_error_set(err, -ENOMEM, "auth", "out of memory");
    a->cfg = cfg;
    a->handshakes = calloc(cfg->n_partners ? cfg->n_partners : 1, sizeof *a->handshakes);
    if (a->handshakes == NULL) {
        free(a);
        return pt_error_set(err, -ENOMEM, "auth", "out of memory");
    }
    double per_min = cfg->partner_handshakes_per_minute;
    for (size_t i = 0; i < cfg->n_partners; i++)
        bucket_init(&a->handshakes[i], per_min / 60.0, per_min, pt_clock_mono_ms());
    a->sock = zmq_socket(zctx, ZMQ_REP);
    int linger = 0;
    if (a->sock == NULL || zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(a->sock, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        auth_close(&a);
        return pt_error_set(err, -e, ZAP_ENDPOINT, "cannot bind the ZAP handler: %s",
                            zmq_strerror(e));
    }
    *out = a;
    return 0;
}

void
auth_close(auth_t **ap)
{
    if (ap == NULL || *ap == NULL)
        return;
    for (int i = 0; i < (*ap)->n_watch; i++)
        zmq_close((*ap)->watch[i].pair);
    if ((*ap)->sock)
        zmq_close((*ap)->sock);
    free((*ap)->handshakes);
    free((*ap)->spare);
    free(*ap);
    *ap = NULL;
}

int
auth_reload_prepare(auth_t *a, size_t n_partners)
{
    free(a->spare);
    a->spare = calloc(n_partners ? n_partners : 1, sizeof *a->spare);
    return a->spare ? 0 : -ENOMEM;
}

void
auth_reload_commit(auth_t *a, const ptrdiff_t *from)
{
    if (from != NULL) {
        double per_min = a->cfg->partner_handshakes_per_minute;
        for (size_t i = 0; i < a->cfg->n_partners; i++) {
            if (from[i] >= 0)
                a->spare[i] = a->handshakes[from[i]];
            else
                bucket_init(&a->spare[i], per_min / 60.0, per_min, pt_clock_mono_ms());
        }
        free(a->handshakes);
        a->handshakes = a->spare;
    } else {
        free(a->spare);
    }
    a->spare = NULL;
}

void *
auth_socket(auth_t *a)
{
    return a->sock;
}

uint64_t
auth_refused_count(const auth_t *a)
{
    return a->refused;
}

uint64_t
auth_accepted_count(const auth_t *a)
{
    return a->accepted;
}

static bool
part_equals(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

static void
part_copy(zmq_msg_t *m, char *out, size_t cap)
{
    size_t n = zmq_msg_size(m);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, zmq_msg_data(m), n);
    out[n] = '\0';
}

/* Reads one whole multipart request without blocking; false when none is pending. */
static bool
zap_read(void *sock, zap_request_t *r)
{
    r->n = 0;
    r->extra = false;
    int more = 1;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, sock, ZMQ_DONTWAIT) < 0) { /* parts arrive together */
            zmq_msg_close(&tmp);
            return r->n > 0;
        }
        more = zmq_msg_more(&tmp);
        if (r->n < ZAP_PARTS) {
            r->part[r->n++] = tmp;
        } else {
            r->extra = true;
            zmq_msg_close(&tmp);
        }
    }
    return true;
}

static void
zap_release(zap_request_t *r)
{
    for (int i = 0; i < r->n; i++)
        zmq_msg_close(&r->part[i]);
    r->n = 0;
}

static void
zap_reply(void *sock, zmq_msg_t *request_id, const char *code, const char *text, const char *user)
{
    zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(sock, zmq_msg_data(request_id), zmq_msg_size(request_id), ZMQ_SNDMORE);
    zmq_send(sock, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(sock, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(sock, "", 0, 0);
}

/* The partners' socket's connection cap and the partner's handshake rate. */
static const char *
partner_limits(auth_t *a, const bconfig_partner_t *p)
{
    for (int i = 0; i < a->n_watch; i++)
        auth_handle_events(a, i); /* the live connection count, up to date */
    for (int i = 0; i < a->n_watch; i++)
        if (strcmp(a->watch[i].name, "partners") == 0 &&
            a->watch[i].live > (int64_t)a->cfg->max_connections)
            return "connection limit reached (limits.max_connections)";
    if (!bucket_take(&a->handshakes[p - a->cfg->partners], 1, pt_clock_mono_ms()))
        return "too many new connections for this partner "
               "(limits.partner_handshakes_per_minute)";
    return NULL;
}

/* Decides on one well-formed CURVE request; fills user on success. */
static const char *
zap_decide(auth_t *a, const char *domain, const uint8_t key[32], char *user, size_t cap)
{
    if (strcmp(domain, PT_ZAP_DOMAIN_ADMIN) == 0) {
        for (size_t i = 0; i < a->cfg->n_admin_keys; i++)
            if (memcmp(a->cfg->admin_keys[i], key, PT_KEY_LEN) == 0) {
                /* Its configured name (bconfig: unique; for the deprecated inline form,
                 * the key's full BLAKE2b-256): ADMIN records and logs say who acted. */
                snprintf(user, cap, "%s%s", PT_ADMIN_USER_PREFIX, a->cfg->admin_names[i]);
                return NULL;
            }
        return "not an administrator key";
    }
    if (strcmp(domain, PT_ZAP_DOMAIN_PARTNERS) == 0) {
        const bconfig_partner_t *p = bconfig_partner_by_key(a->cfg, key);
        if (p == NULL)
            return "unknown partner key";
        const char *limit = partner_limits(a, p);
        if (limit != NULL)
            return limit;
        snprintf(user, cap, "%s", p->id);
        return NULL;
    }
    return "unknown ZAP domain";
}

static void
zap_handle_one(auth_t *a, zap_request_t *r)
{
    char domain[64] = "", address[64] = "", mech[16] = "", user[PT_ADMIN_USER_MAX] = "";
    char fp[17] = "-";
    const char *why = NULL;
    if (r->n < 6 || !part_equals(&r->part[0], "1.0")) {
        why = "malformed ZAP request";
    } else {
        part_copy(&r->part[2], domain, sizeof domain);
        part_copy(&r->part[3], address, sizeof address);
        part_copy(&r->part[5], mech, sizeof mech);
        if (strcmp(mech, "CURVE") != 0)
            why = "mechanism refused (only CURVE is accepted)";
        else if (r->n != 7 || r->extra || zmq_msg_size(&r->part[6]) != PT_KEY_LEN)
            why = "malformed CURVE credentials";
    }
    if (why == NULL) {
        const uint8_t *key = zmq_msg_data(&r->part[6]);
        keys_fingerprint(key, fp);
        why = zap_decide(a, domain, key, user, sizeof user);
    }
    if (r->n >= 2) {
        if (why == NULL)
            zap_reply(a->sock, &r->part[1], "200", "OK", user);
        else
            zap_reply(a->sock, &r->part[1], "400", why, "");
    }
    if (why == NULL) {
        a->accepted++;
        pt_log_info("auth.accepted", "%s from %s authenticated as %s (key %s)", mech, address, user,
                    fp);
    } else {
        a->refused++;
        pt_log_warn("auth.refused", "%s connection from %s refused on %s: %s (key %s)",
                    mech[0] ? mech : "?", address, domain[0] ? domain : "?", why, fp);
    }
}

int
auth_handle(auth_t *a)
{
    int handled = 0;
    zap_request_t r;
    while (zap_read(a->sock, &r)) {
        zap_handle_one(a, &r);
        zap_release(&r);
        handled++;
    }
    return handled;
}

int
auth_watch(auth_t *a, void *zctx, void *sock, const char *name, pt_error_t *err)
{
    if (a->n_watch == PT_AUTH_MAX_WATCH)
        return pt_error_set(err, -ENOSPC, "auth", "too many watched sockets");
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://ptibus-monitor-%d", a->n_watch);
    int events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED;
    watch_t *w = &a->watch[a->n_watch];
    int linger = 0;
    if (zmq_socket_monitor(sock, ep, events) != 0 ||
        (w->pair = zmq_socket(zctx, ZMQ_PAIR)) == NULL ||
        zmq_setsockopt(w->pair, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(w->pair, ep) != 0) {
        int e = zmq_errno();
        if (w->pair)
            zmq_close(w->pair);
        w->pair = NULL;
        return pt_error_set(err, -e, "auth", "cannot monitor the %s socket: %s", name,
                            zmq_strerror(e));
    }
    snprintf(w->name, sizeof w->name, "%s", name);
    a->n_watch++;
    return 0;
}

void *
auth_monitor_socket(auth_t *a, int i)
{
    return i < a->n_watch ? a->watch[i].pair : NULL;
}

static const char *
handshake_failure(uint16_t event, uint32_t value)
{
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        return "refused by the ZAP handler";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
        value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return "mechanism mismatch: the client does not use CURVE (NULL or PLAIN refused)";
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        return "protocol error during the handshake (wrong server key?)";
    return "no CURVE handshake completed (a client without CURVE, or the wrong server key)";
}

/* A misconfigured partner retries every second or so: one line per socket, kind of
 * failure and 10 s, with the count of the failures not logged one by one (another kind
 * is logged at once). libzmq's monitor names the socket's own endpoint, not the peer (a
 * handshake that fails never reaches ZAP, which would know the address and the key). */
static fail_kind_t *
fail_kind(watch_t *w, uint16_t event, uint32_t value)
{
    fail_kind_t *oldest = &w->kinds[0];
    for (size_t i = 0; i < AUTH_LOG_KINDS; i++) {
        fail_kind_t *k = &w->kinds[i];
        if (k->last_log_ms != 0 && k->event == event && k->value == value)
            return k;
        if (k->last_log_ms < oldest->last_log_ms)
            oldest = k;
    }
    *oldest = (fail_kind_t){.event = event, .value = value};
    return oldest;
}

static void
log_handshake_failure(watch_t *w, const zmq_msg_t *addr, uint16_t event, uint32_t value)
{
    int64_t now = pt_clock_mono_ms();
    fail_kind_t *k = fail_kind(w, event, value);
    if (k->last_log_ms != 0 && now - k->last_log_ms < AUTH_LOG_EVERY_MS) {
        k->suppressed++;
        return;
    }
    char more[64] = "";
    if (k->suppressed > 0)
        snprintf(more, sizeof more, "; %llu more such failures in the last %d s",
                 (unsigned long long)k->suppressed, AUTH_LOG_EVERY_MS / 1000);
    pt_log_warn("auth.handshake", "%s socket (%.*s): %s (0x%x)%s", w->name, (int)zmq_msg_size(addr),
                (const char *)zmq_msg_data((zmq_msg_t *)addr), handshake_failure(event, value),
                value, more);
    k->last_log_ms = now;
    k->suppressed = 0;
}

void
auth_handle_events(auth_t *a, int i)
{
    watch_t *w = &a->watch[i];
    for (;;) {
        zmq_msg_t head, addr;
        zmq_msg_init(&head);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&head, w->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            zmq_msg_close(&addr);
            return;
        }
        if (zmq_msg_more(&head) && zmq_msg_recv(&addr, w->pair, ZMQ_DONTWAIT) >= 0)
            zpart_drain(w->pair, &addr); /* a monitor event is two parts */
        if (zmq_msg_size(&head) >= 6) {
            const uint8_t *p = zmq_msg_data(&head);
            uint16_t event;
            uint32_t value;
            memcpy(&event, p, 2);
            memcpy(&value, p + 2, 4);
            if (event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_DISCONNECTED) {
                w->live += event == ZMQ_EVENT_ACCEPTED ? 1 : -1;
            } else {
                a->refused++;
                log_handshake_failure(w, &addr, event, value);
            }
        }
        zmq_msg_close(&head);
        zmq_msg_close(&addr);
    }
}
