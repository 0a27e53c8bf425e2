/* broker: ptibusd's event loop, sockets and lifecycle. */
#include "broker.h"
#include "clock.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>
#include <zmq.h>
#ifdef PTIBUS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "admin.h"
#include "auth.h"
#include "batch.h"
#include "codec.h"
#include "curve.h"
#include "delivery.h"
#include "ingest.h"
#include "journal.h"
#include "keys.h"
#include "log.h"
#include "broker_metrics.h"
#include "metrics.h"
#include "readahead.h"
#include "retention.h"
#include "router.h"
#include "validate.h"

/* The person index's newest entries are merged PERSON_MERGE_CHUNK at a time (one
 * commit of some 25 ms here, bench_journal's REF-person-merge) on each delivery tick
 * once the partners have sent nothing for PERSON_MERGE_IDLE_MS, and on every tick,
 * even under load, while more than PERSON_MERGE_FORCE wait (a person query scans them,
 * some 0.3 s per million). */
#define PERSON_MERGE_CHUNK 4096
#define PERSON_MERGE_IDLE_MS 200
#define PERSON_MERGE_FORCE 2097152
#define PERSON_MERGE_RETRY_MS 10000 /* after a failed merge (a full journal) */

/* Frames queued towards one partner before a send fails (and the reply is dropped:
 * the partner resends and gets the same answer). ZeroMQ's default of 1000 dropped acks
 * as soon as a partner kept more than about 2000 messages in flight; a PublishAck is
 * some 100 bytes, so this bounds a partner that never reads to a few MiB. */
#define ROUTER_SNDHWM 65536

/* Messages ZeroMQ buffers from one connection before it stops reading that socket (TCP
 * then pushes back): at most 128 x (2 x max_message_size) per connection, and with
 * limits.max_connections a bound on what input can make the broker hold. */
#define ROUTER_RCVHWM 128

/* An accepted TCP connection that has not finished its CURVE handshake within this is
 * closed: idle connections cannot hold file descriptors for long. */
#define HANDSHAKE_IVL_MS 5000

/* Most messages read ahead during one commit (each holds some 1.5 KiB besides its
 * bytes): max_batch, up to this. */
#define READAHEAD_MAX 4096

/* Longest a drain of the partners' socket runs before it lets the timers run. */
#define DRAIN_SLICE_MS 20

/* Smallest batch that broker_read_batch cuts short to keep the pipeline balanced. */
#define BATCH_MIN_SPLIT 64

/* How often the delivery timer looks for expired acks, due retries and silent peers. */
#define DELIVERY_TICK_MS 50

struct broker {
    bconfig_t *cfg;
    uv_loop_t loop;
    uv_poll_t partners_poll;
    uv_poll_t zap_poll;
    uv_poll_t admin_poll;
    uv_signal_t sig_term;
    uv_signal_t sig_int;
    uv_signal_t sig_hup; /* reload partners and routes */
    bconfig_t *next_cfg; /* a reload loaded and checked, applied once nothing is read ahead */
    uv_timer_t checkpoint_timer;
    uv_timer_t delivery_timer;
    uv_timer_t metrics_timer;
    uv_timer_t watchdog_timer; /* systemd's WatchdogSec=, when the unit sets it */
    void *zctx;
    void *partners_sock;
    auth_t *auth;
    admin_t *admin; /* NULL without admin.listen */
    journal_t *journal;
    router_t *routes;
    batch_t *batch; /* the loop turn: write transaction and frames waiting for its commit */
    ingest_t *ingest;
    delivery_t *delivery;
    readahead_t *readahead;
    retention_t *retention; /* NULL when every payload is kept forever */
    double last_commit_s;   /* how long the last commit took (broker_read_batch) */
    metrics_series_t *m_read_ahead;
    int64_t last_input_ms;  /* pt_clock_mono_ms() of the last message read from a partner */
    int64_t merge_after_ms; /* no person index merge before this (after a failure) */
    uv_idle_t drain_again;  /* a drain that yielded to the timers goes on from here */
    metrics_t *metrics;
    uint8_t *server_sk; /* PT_KEY_LEN bytes, keys_secret_load (guarded, read-only) */
    uint8_t *sign_sk;   /* 64 bytes */
    uint8_t prev_sign_pks[PT_JOURNAL_PREV_KEYS][32]; /* keys.previous_signing_public */
    uint8_t *hmac_key;                               /* 32 bytes */
    bool loop_ready;
    bool stopping;
    bool nearly_full;           /* journal.nearly_full said, until use falls below the low mark */
    uint64_t auth_refused_seen; /* auth_refused_count() at the last metrics tick */
};

static void
notify(const char *state)
{
#ifdef PTIBUS_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

static int
broker_load_keys(broker_t *b, pt_error_t *err)
{
    int rc = keys_secret_load(b->cfg->server_secret_key_file, PT_KEY_LEN, &b->server_sk, err);
    if (rc == 0)
        rc = keys_secret_load(b->cfg->signing_key_file, PT_SIGN_SK_LEN, &b->sign_sk, err);
    if (rc == 0)
        rc = keys_secret_load(b->cfg->hmac_key_file, PT_KEY_LEN, &b->hmac_key, err);
    for (size_t i = 0; rc == 0 && i < b->cfg->n_prev_sign_pub; i++)
        rc = keys_read(b->cfg->prev_sign_pub_files[i], b->prev_sign_pks[i], PT_KEY_LEN, false, err);
    return rc;
}

/* A standby stopped while it waits for the journal's lock: nothing is open but the lock
 * file, so it ends here (write and _exit are async-signal-safe; no race with the wait). */
static void
on_standby_stop(int signum)
{
    static const char msg[] = "ptibusd: standby stopped by a signal while waiting for the "
                              "journal lock\n";
    (void)signum;
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(0);
}

/* While a standby waits: SIGTERM and SIGINT stop it, SIGHUP (a reload) is ignored; after,
 * the default actions until the loop installs its handlers. */
static void
standby_signals(bool waiting)
{
    struct sigaction stop = {.sa_handler = waiting ? on_standby_stop : SIG_DFL};
    struct sigaction hup = {.sa_handler = waiting ? SIG_IGN : SIG_DFL};
    sigemptyset(&stop.sa_mask);
    sigemptyset(&hup.sa_mask);
    sigaction(SIGTERM, &stop, NULL);
    sigaction(SIGINT, &stop, NULL);
    sigaction(SIGHUP, &hup, NULL);
}

static void
broker_on_lock_wait(void *arg, long holder)
{
    (void)arg;
    char status[128];
    pt_log_notice("journal.standby",
                  "standby: waiting for the journal lock held by pid %ld; this broker takes "
                  "over when that one stops",
                  holder);
    snprintf(status, sizeof status, "STATUS=standby: waiting for the journal lock held by pid %ld",
             holder);
    notify(status);
}

static int
broker_open_journal(broker_t *b, pt_error_t *err)
{
    journal_options_t jo = {.dir = b->cfg->journal_dir,
                            .map_size_initial = b->cfg->journal_map_initial,
                            .map_size_max = b->cfg->journal_map_max,
                            .hmac_key = b->hmac_key,
                            .sign_sk = b->sign_sk,
                            .prev_sign_pks = (const uint8_t(*)[32])b->prev_sign_pks,
                            .n_prev_sign_pks = b->cfg->n_prev_sign_pub,
                            .unsafe_nosync = b->cfg->unsafe_ack_before_fsync,
                            .wait_for_lock = b->cfg->journal_wait_for_lock,
                            .on_lock_wait = broker_on_lock_wait,
                            .on_lock_wait_arg = b};
    if (b->cfg->unsafe_ack_before_fsync)
        pt_log_warn("journal.unsafe",
                    "unsafe_ack_before_fsync is set: messages are acknowledged before they are "
                    "on disk and a crash can lose acknowledged messages");
    if (jo.wait_for_lock)
        standby_signals(true);
    int rc = journal_open(&jo, &b->journal, err);
    if (jo.wait_for_lock) {
        standby_signals(false);
        if (rc == 0)
            pt_log_notice("journal.takeover", "the journal lock is ours: starting as the active "
                                              "broker");
        notify("STATUS=");
    }
    return rc;
}

static int delivery_send(void *arg, const uint8_t *rid, size_t rid_len, const uint8_t *buf,
                         size_t len);

/* Routing, the accept path and delivery, over the journal. */
static int
broker_open_paths(broker_t *b, pt_error_t *err)
{
    const bconfig_t *c = b->cfg;
    delivery_options_t dopt = {.ack_timeout_ms = c->ack_timeout_ms,
                               .max_attempts = c->max_attempts,
                               .backoff_initial_ms = c->backoff_initial_ms,
                               .backoff_max_ms = c->backoff_max_ms,
                               .peer_timeout_ms = 3 * c->heartbeat_interval_ms,
                               .max_in_flight = c->max_in_flight,
                               .max_in_flight_bytes = c->max_in_flight_bytes};
    int rc = router_new(c, &b->routes, err);
    if (rc == 0)
        rc = batch_new(b->journal, &b->batch, err);
    if (rc == 0)
        rc = ingest_new(b->journal, c, b->routes, &b->ingest, err);
    if (rc == 0)
        rc = delivery_new(b->journal, c, &dopt, delivery_send, b, &b->delivery, err);
    if (rc == 0)
        rc = metrics_new(&b->metrics, err);
    if (rc == 0)
        rc = broker_metrics_declare(b->metrics, err);
    if (rc == 0 && c->metrics_listen)
        rc = metrics_http_start(b->metrics, c->metrics_listen, err);
    if (rc == 0) {
        ingest_set_metrics(b->ingest, b->metrics);
        batch_set_metrics(
            b->batch, metrics_series(metrics_find(b->metrics, PT_METRIC_COMMIT_LATENCY), NULL),
            metrics_series(metrics_find(b->metrics, PT_METRIC_COMMIT_BATCH_SIZE), NULL));
        delivery_set_metrics(b->delivery, b->metrics);
        b->m_read_ahead = metrics_series(metrics_find(b->metrics, PT_METRIC_READ_AHEAD), NULL);
        rc = retention_new(c, b->journal, b->metrics, &b->retention, err);
    }
    return rc;
}

static int
zmq_fail(pt_error_t *err, const char *what)
{
    int e = zmq_errno();
    return pt_error_set(err, -e, what, "%s", zmq_strerror(e));
}

static int
broker_open_router(broker_t *b, pt_error_t *err)
{
    b->partners_sock = zmq_socket(b->zctx, ZMQ_ROUTER);
    if (b->partners_sock == NULL)
        return zmq_fail(err, "zmq_socket");
    int one = 1, linger = 0, sndhwm = ROUTER_SNDHWM, rcvhwm = ROUTER_RCVHWM;
    int hb = (int)b->cfg->heartbeat_interval_ms, hbto = hb * 3;
    int64_t maxmsg = (int64_t)b->cfg->max_message_size * 2 + PT_FRAME_OVERHEAD;
    int rc = curve_server_setup(b->partners_sock, b->server_sk, PT_ZAP_DOMAIN_PARTNERS,
                                HANDSHAKE_IVL_MS, err);
    if (rc != 0)
        return rc;
    if (zmq_setsockopt(b->partners_sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb) != 0 ||
        zmq_setsockopt(b->partners_sock, ZMQ_HEARTBEAT_TIMEOUT, &hbto, sizeof hbto) != 0)
        return zmq_fail(err, "zmq_setsockopt(router)");
    if (zmq_bind(b->partners_sock, b->cfg->listen) != 0)
        return zmq_fail(err, b->cfg->listen);
    return 0;
}

int
broker_new(bconfig_t *cfg, broker_t **out, pt_error_t *err)
{
    *out = NULL;
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, "libsodium", "initialisation failed");
    broker_t *b = calloc(1, sizeof *b);
    if (b == NULL)
        return pt_error_set(err, -ENOMEM, "broker", "out of memory");
    b->cfg = cfg;
    int rc = broker_load_keys(b, err);
    if (rc == 0)
        rc = broker_open_journal(b, err);
    if (rc == 0)
        rc = broker_open_paths(b, err);
    if (rc == 0 && (b->zctx = zmq_ctx_new()) == NULL)
        rc = zmq_fail(err, "zmq_ctx_new");
    if (rc == 0)
        rc = auth_open(b->zctx, cfg, &b->auth, err);
    if (rc == 0)
        rc = broker_open_router(b, err);
    if (rc == 0)
        rc = auth_watch(b->auth, b->zctx, b->partners_sock, "partners", err);
    if (rc == 0)
        rc = readahead_new(b->partners_sock, cfg,
                           cfg->max_batch < READAHEAD_MAX ? cfg->max_batch : READAHEAD_MAX,
                           &b->readahead, err);
    if (rc == 0 && cfg->admin_listen) {
        admin_deps_t deps = {
            .cfg = cfg, .journal = b->journal, .ingest = b->ingest, .delivery = b->delivery};
        rc = admin_open(b->zctx, b->server_sk, &deps, &b->admin, err);
        if (rc == 0)
            rc = auth_watch(b->auth, b->zctx, admin_socket(b->admin), "admin", err);
    }
    if (rc != 0) {
        b->cfg = NULL; /* the caller keeps cfg on error */
        broker_destroy(&b);
        return rc;
    }
    *out = b;
    return 0;
}

static bool
socket_readable(void *sock)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &events, &len) != 0)
        return false;
    return (events & ZMQ_POLLIN) != 0;
}

/* Sends one frame to a ROUTER peer. A peer that has gone or whose queue is full loses
 * the reply; it will publish again and get the same answer (publish is idempotent). */
static int
broker_send_bytes(broker_t *b, const uint8_t *rid, size_t rid_len, const uint8_t *buf, size_t len)
{
    if (zmq_send(b->partners_sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(b->partners_sock, buf, len, ZMQ_DONTWAIT) < 0) {
        pt_log_warn("broker.send", "frame dropped: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

/* A frame for a recipient: -errno when its connection does not take it (EHOSTUNREACH:
 * gone, EAGAIN: its send queue is full), so that delivery journals only what left. */
static int
delivery_send(void *arg, const uint8_t *rid, size_t rid_len, const uint8_t *buf, size_t len)
{
    broker_t *b = arg;
    if (zmq_send(b->partners_sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -zmq_errno();
    /* The routing id was taken: ZeroMQ takes the rest of the message atomically. */
    return zmq_send(b->partners_sock, buf, len, ZMQ_DONTWAIT) < 0 ? -zmq_errno() : 0;
}

static void
broker_send_frame(broker_t *b, const uint8_t *rid, size_t rid_len, const Ptibus__V1__Frame *f)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    if (codec_pack(&f->base, (size_t)b->cfg->max_message_size * 2 + PT_FRAME_OVERHEAD, &buf, &len,
                   &err) != 0) {
        pt_log_error("broker.pack", "%s", err.msg);
        return;
    }
    broker_send_bytes(b, rid, rid_len, buf, len);
    free(buf);
}

/* A PublishAck or Nack that needs no commit, sent now. */
static void
broker_send_reply(const ingest_reply_t *r, void *arg)
{
    ingest_frame_t f;
    ingest_reply_frame(r, &f);
    broker_send_frame(arg, r->rid, r->rid_len, &f.frame);
}

/* The batch's frames after its commit, each to its socket. */
static int
broker_batch_send(void *arg, batch_dest_t dest, const uint8_t *rid, size_t rid_len,
                  const uint8_t *buf, size_t len)
{
    broker_t *b = arg;
    void *sock = dest == BATCH_ADMIN && b->admin ? admin_socket(b->admin) : b->partners_sock;
    if (zmq_send(sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0) {
        pt_log_warn(dest == BATCH_ADMIN ? "admin.send" : "broker.send", "frame dropped: %s",
                    zmq_strerror(zmq_errno()));
        return -zmq_errno();
    }
    return 0;
}

static void
broker_send_nack(broker_t *b, const uint8_t *rid, size_t rid_len, int code, const char *reason)
{
    ingest_reply_t r = {.nack_code = code};
    r.rid_len = rid_len < sizeof r.rid ? rid_len : sizeof r.rid;
    memcpy(r.rid, rid, r.rid_len);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    r.message_id[0] = r.field_path[0] = '\0';
    broker_send_reply(&r, b);
}

/* Refuses a frame whose partner-written text fails validation (validate_hello,
 * validate_deliver_ack): a Nack INVALID naming the field; the log names it too, never
 * the text. Returns whether the frame is valid. */
static bool
broker_text_ok(broker_t *b, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p, int rc,
               const pt_error_t *why)
{
    if (rc == 0)
        return true;
    ingest_reply_t r = {.nack_code = PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID};
    r.rid_len = rid_len < sizeof r.rid ? rid_len : sizeof r.rid;
    memcpy(r.rid, rid, r.rid_len);
    snprintf(r.field_path, sizeof r.field_path, "%s", why->path);
    snprintf(r.reason, sizeof r.reason, "%s", why->msg);
    r.message_id[0] = '\0';
    pt_log_warn("broker.invalid", "partner=%s frame refused: %s", p->id, why->msg);
    broker_send_reply(&r, b);
    return false;
}

static void
broker_on_hello(broker_t *b, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p,
                const Ptibus__V1__Hello *h)
{
    if (h->protocol_version != 1) {
        broker_send_nack(b, rid, rid_len, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL,
                         "hello.protocol_version: only version 1 is supported");
        return;
    }
    pt_error_t why;
    if (!broker_text_ok(b, rid, rid_len, p, validate_hello(h, &why), &why))
        return;
    pt_log_info("broker.hello", "partner=%s client=%s version=%s credit=%u", p->id, h->client_name,
                h->software_version, h->initial_credit);
    delivery_hello(b->delivery, p->id, rid, rid_len, h->initial_credit, (int64_t)uv_now(&b->loop));
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Welcome w = PTIBUS__V1__WELCOME__INIT;
    w.protocol_version = 1;
    w.partner_id = p->id;
    w.heartbeat_interval_ms = b->cfg->heartbeat_interval_ms;
    w.max_message_size = b->cfg->max_message_size;
    f.kind_case = PTIBUS__V1__FRAME__KIND_WELCOME;
    f.welcome = &w;
    broker_send_frame(b, rid, rid_len, &f);
}

/* A heartbeat or credit on a connection without a session (the broker restarted, or
 * the partner's connection was replaced): the client must say Hello again to resume
 * its deliveries. */
static bool
broker_require_session(broker_t *b, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p)
{
    if (delivery_has_session(b->delivery, p->id, rid, rid_len))
        return true;
    ingest_reply_t r = {.nack_code = PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL};
    r.rid_len = rid_len < sizeof r.rid ? rid_len : sizeof r.rid;
    memcpy(r.rid, rid, r.rid_len);
    snprintf(r.field_path, sizeof r.field_path, "%s", PT_SESSION_FIELD);
    snprintf(r.reason, sizeof r.reason, "%s: no session on this connection, send Hello",
             PT_SESSION_FIELD);
    broker_send_reply(&r, b);
    return false;
}

static void
broker_on_heartbeat(broker_t *b, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p)
{
    if (!broker_require_session(b, rid, rid_len, p))
        return;
    Ptibus__V1__Frame f = PTIBUS__V1__FRAME__INIT;
    Ptibus__V1__Heartbeat h = PTIBUS__V1__HEARTBEAT__INIT;
    h.sent_at_ms = (int64_t)(uv_now(&b->loop));
    f.kind_case = PTIBUS__V1__FRAME__KIND_HEARTBEAT;
    f.heartbeat = &h;
    broker_send_frame(b, rid, rid_len, &f);
}

/* A Publish: the accept path, then delivery hears who receives it (from the next turn,
 * once it is committed). */
static void
broker_on_publish(broker_t *b, const uint8_t *rid, size_t rid_len, const bconfig_partner_t *p,
                  const Ptibus__V1__Publish *pub, ingest_prep_t *prep, int64_t now)
{
    ingest_routed_t routed;
    ingest_publish(b->ingest, b->batch, rid, rid_len, p, pub, prep, &routed);
    if (routed.n > 0)
        delivery_routed(b->delivery, routed.to, routed.n, now);
}

/* Handles one message read from the partners' socket (by the loop or ahead of it by
 * the read-ahead helper): its frame is decoded and a Publish already prepared. */
static void
broker_on_item(broker_t *b, readahead_item_t *it)
{
    const uint8_t *rid = zmq_msg_data(&it->rid);
    size_t rid_len = zmq_msg_size(&it->rid);
    const bconfig_partner_t *p = it->partner;
    if (p == NULL) {
        pt_log_error("broker.identity", "message without an authenticated partner dropped");
        return;
    }
    /* ZeroMQ's own routing ids begin with a zero byte, which a client-chosen id may not:
     * refusing the others means no client can take an id that another one will need. */
    if (rid_len == 0 || rid[0] != 0) {
        pt_log_warn("broker.identity", "partner=%s set its own routing id: refused", p->id);
        broker_send_nack(b, rid, rid_len, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL,
                         "routing id: set by the client (ZMQ_ROUTING_ID); clients must set none");
        return;
    }
    Ptibus__V1__Frame *f = it->frame;
    if (f == NULL) {
        ingest_reject_raw(b->ingest, b->batch, rid, rid_len, p, zmq_msg_data(&it->payload),
                          zmq_msg_size(&it->payload), it->code, &it->why);
        return;
    }
    int64_t now = (int64_t)uv_now(&b->loop);
    pt_error_t why;
    delivery_seen(b->delivery, p->id, now);
    switch (f->kind_case) {
    case PTIBUS__V1__FRAME__KIND_PUBLISH:
        broker_on_publish(b, rid, rid_len, p, f->publish, &it->prep, now);
        break;
    case PTIBUS__V1__FRAME__KIND_DELIVER_ACK:
        if (broker_require_session(b, rid, rid_len, p) &&
            broker_text_ok(b, rid, rid_len, p, validate_deliver_ack(f->deliver_ack, &why), &why) &&
            delivery_ack(b->delivery, b->batch, p->id, f->deliver_ack, now) != 0)
            broker_send_nack(b, rid, rid_len, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL,
                             "deliver_ack.status: must be OK or CANNOT_PROCESS");
        break;
    case PTIBUS__V1__FRAME__KIND_CREDIT:
        if (broker_require_session(b, rid, rid_len, p))
            delivery_credit(b->delivery, p->id, f->credit->credit);
        break;
    case PTIBUS__V1__FRAME__KIND_RECEIPT_REQUEST:
        delivery_receipt_request(b->delivery, b->batch, p->id, f->receipt_request->message_id);
        break;
    case PTIBUS__V1__FRAME__KIND_HELLO:
        broker_on_hello(b, rid, rid_len, p, f->hello);
        break;
    case PTIBUS__V1__FRAME__KIND_HEARTBEAT:
        broker_on_heartbeat(b, rid, rid_len, p);
        break;
    default:
        broker_send_nack(b, rid, rid_len, PTIBUS__V1__NACK_CODE__NACK_CODE_PROTOCOL,
                         "frame: this frame kind is not accepted from a client");
        break;
    }
}

/* Handles the oldest message read ahead, else one read now; false when none is
 * pending. */
static bool
broker_read_one(broker_t *b)
{
    readahead_item_t read_now, *it = readahead_take(b->readahead);
    if (it == NULL) {
        it = &read_now;
        if (!readahead_read(b->partners_sock, b->cfg, it))
            return false;
    }
    broker_on_item(b, it);
    readahead_item_fini(it);
    return true;
}

static void broker_drain(broker_t *b);
static void broker_reload_apply(broker_t *b);

static void
on_drain_again(uv_idle_t *h)
{
    broker_t *b = h->data;
    uv_idle_stop(h);
    if (!b->stopping)
        broker_drain(b);
}

/* Reads one batch: up to max_batch messages, until the socket is empty, or, once the
 * batch has BATCH_MIN_SPLIT messages, when reading it has taken as long as the last
 * commit did. That last rule balances the pipeline: a client with a window of
 * messages in flight gets its first acks while the helper reads the rest, instead of
 * every batch swallowing the whole window and the two halves of the work taking turns. */
static uint32_t
broker_read_batch(broker_t *b)
{
    uint32_t n = 0;
    double start = pt_clock_mono_s();
    while (n < b->cfg->max_batch && broker_read_one(b)) {
        n++;
        if (n >= BATCH_MIN_SPLIT && n % 8 == 0 && pt_clock_mono_s() - start >= b->last_commit_s)
            break;
    }
    return n;
}

/* One loop turn on the partners' socket, batch after batch: each batch goes into one
 * journal transaction, committed before any of its replies is sent. ZMQ_FD is
 * edge-triggered, so keep going until ZMQ_EVENTS reports no more input (or hand over
 * to on_drain_again after DRAIN_SLICE_MS). */
static void
broker_drain(broker_t *b)
{
    int64_t start = pt_clock_mono_ms();
    for (;;) {
        /* Deliveries first, while the batch has written nothing: they see only committed
         * messages and queue entries, and each Deliver leaves at once, journaled
         * (DELIVERED) only once its connection has taken it. */
        delivery_pump(b->delivery, b->batch, (int64_t)uv_now(&b->loop));
        uint32_t n = broker_read_batch(b);
        if (n > 0)
            b->last_input_ms = pt_clock_mono_ms();
        if (b->admin)
            admin_read(b->admin, b->batch);
        bool commit = batch_open(b->batch);
        /* While the commit waits for the disk, the helper reads and prepares what has
         * already arrived and what comes next. Only when messages are waiting: handing
         * the socket over costs more than it saves when nothing is. */
        bool lend = commit && b->next_cfg == NULL && !readahead_full(b->readahead) &&
                    socket_readable(b->partners_sock);
        size_t ahead = readahead_count(b->readahead);
        if (lend)
            readahead_lend(b->readahead);
        double t0 = pt_clock_mono_s();
        int rc = batch_commit(b->batch);
        if (commit)
            b->last_commit_s = pt_clock_mono_s() - t0;
        if (lend) {
            readahead_reclaim(b->readahead);
            metrics_add(b->m_read_ahead, (double)(readahead_count(b->readahead) - ahead));
        }
        batch_send(b->batch, broker_batch_send, b);
        ingest_end(b->ingest, rc == 0);
        delivery_end(b->delivery, rc == 0);
        if (b->next_cfg != NULL)
            broker_reload_apply(b);
        /* Messages routed or requeued in this batch are delivered by the next turn. */
        if (n < b->cfg->max_batch && readahead_count(b->readahead) == 0 &&
            !socket_readable(b->partners_sock) &&
            !(b->admin && socket_readable(admin_socket(b->admin))) &&
            (rc != 0 || delivery_next_due(b->delivery) != 0))
            break;
        /* Under continuous input, let the timers run (delivery retries, heartbeats,
         * metrics) every DRAIN_SLICE_MS; the idle handle resumes the drain right after,
         * since ZMQ_FD will not signal again for what is already waiting. */
        if (pt_clock_mono_ms() - start >= DRAIN_SLICE_MS) {
            uv_idle_start(&b->drain_again, on_drain_again);
            break;
        }
    }
}

static void
on_partners(uv_poll_t *h, int status, int events)
{
    (void)events;
    broker_t *b = h->data;
    if (status < 0)
        pt_log_error("broker.poll", "%s", uv_strerror(status));
    if (!b->stopping)
        broker_drain(b);
}

static void
on_zap(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    broker_t *b = h->data;
    do {
        auth_handle(b->auth);
    } while (socket_readable(auth_socket(b->auth)));
}

static void broker_merge_person_index(broker_t *b);

static void
on_delivery_tick(uv_timer_t *t)
{
    broker_t *b = t->data;
    /* Handshake failures are only logged: reading them on this tick is enough (a
     * monitor socket's ZMQ_FD did not wake uv_poll reliably). */
    for (int i = 0; auth_monitor_socket(b->auth, i) != NULL; i++)
        auth_handle_events(b->auth, i);
    int64_t due = delivery_next_due(b->delivery);
    uv_update_time(&b->loop);
    if (!b->stopping && due >= 0 && due <= (int64_t)uv_now(&b->loop))
        broker_drain(b);
    if (!b->stopping)
        broker_merge_person_index(b);
    if (!b->stopping)
        retention_step(b->retention, pt_clock_mono_ms());
}

/* Gauges are sampled once a second and handed to the HTTP thread. */
/* One warning when the journal passes JOURNAL_FULL_HIGH % of journal.max_size, one
 * notice when it is back under JOURNAL_FULL_LOW % (an operator made room). */
#define JOURNAL_FULL_HIGH 90
#define JOURNAL_FULL_LOW 85

static void
broker_watch_space(broker_t *b, size_t used, size_t max)
{
    unsigned pct = max ? (unsigned)((double)used * 100.0 / (double)max) : 0;
    if (!b->nearly_full && pct >= JOURNAL_FULL_HIGH)
        pt_log_warn("journal.nearly_full",
                    "the journal uses %u%% of journal.max_size (%zu of %zu bytes): it refuses "
                    "messages when full; make room (retention, compact) or raise max_size",
                    pct, used, max);
    else if (b->nearly_full && pct < JOURNAL_FULL_LOW)
        pt_log_notice("journal.space_ok", "the journal uses %u%% of journal.max_size", pct);
    else
        return;
    b->nearly_full = !b->nearly_full;
}

static metrics_series_t *
broker_series(broker_t *b, const char *name)
{
    return metrics_series(metrics_find(b->metrics, name), NULL);
}

/* Authentication refusals, the last checkpoint, the build. */
static void
broker_publish_admin_metrics(broker_t *b)
{
    uint64_t refused = auth_refused_count(b->auth);
    if (refused > b->auth_refused_seen)
        metrics_add(broker_series(b, PT_METRIC_AUTH_REFUSED),
                    (double)(refused - b->auth_refused_seen));
    b->auth_refused_seen = refused;
    journal_signed_head_t h;
    journal_signed_head(b->journal, &h);
    metrics_set(broker_series(b, PT_METRIC_CHECKPOINT_SEQ), (double)h.seq);
    double age = h.seq ? (double)(pt_clock_wall_ms() - h.time_ms) / 1000.0 : -1.0;
    metrics_set(broker_series(b, PT_METRIC_CHECKPOINT_AGE), age < 0 && h.seq ? 0 : age);
    const char *version[] = {PTIBUS_VERSION};
    metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_BUILD_INFO), version), 1);
}

static void
on_metrics(uv_timer_t *t)
{
    broker_t *b = t->data;
    size_t used, map, max;
    journal_usage(b->journal, &used, &map, &max);
    broker_watch_space(b, used, max);
    metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_JOURNAL_BYTES_USED), NULL),
                (double)used);
    metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_JOURNAL_MAP_BYTES), NULL),
                (double)map);
    metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_JOURNAL_LAST_SEQ), NULL),
                (double)journal_last_seq(b->journal));
    metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_PERSON_UNMERGED), NULL),
                (double)journal_person_unmerged(b->journal));
    journal_space_t sp;
    if (journal_space(b->journal, &sp, NULL) == 0) {
        metrics_set(metrics_series(metrics_find(b->metrics, PT_METRIC_JOURNAL_BYTES_FREE), NULL),
                    (double)sp.free_bytes);
        metrics_set(
            metrics_series(metrics_find(b->metrics, PT_METRIC_JOURNAL_BYTES_RECLAIMABLE), NULL),
            (double)sp.reclaimable_bytes);
    }
    broker_publish_admin_metrics(b);
    retention_publish(b->retention);
    if (b->admin)
        admin_sample(b->admin, pt_clock_mono_ms());
    delivery_publish_metrics(b->delivery, pt_clock_wall_ms());
    metrics_publish(b->metrics);
}

static void
broker_checkpoint(broker_t *b)
{
    pt_error_t err;
    if (journal_checkpoint(b->journal, &err) != 0)
        pt_log_error("journal.checkpoint", "%s", err.msg);
}

/* The journal logs each head it signs ("journal.signed"); at start and stop the broker
 * says again which signed head the journal is at, so that the system log holds it
 * (a journal later found cut before it was tampered with). */
static void
broker_log_signed_head(broker_t *b, const char *msgid, const char *when)
{
    journal_signed_head_t h;
    char hash[2 * PT_JOURNAL_HASH_LEN + 1], sig[17];
    journal_signed_head(b->journal, &h);
    sodium_bin2hex(hash, sizeof hash, h.hash, sizeof h.hash);
    sodium_bin2hex(sig, sizeof sig, h.sig, 8);
    pt_log_notice(msgid, "%s: journal at seq=%llu, signed head seq=%llu number=%llu hash=%s sig=%s",
                  when, (unsigned long long)journal_last_seq(b->journal), (unsigned long long)h.seq,
                  (unsigned long long)h.number, hash, sig);
}

/* Moves a chunk of the person index's newest entries into by_person (see journal.h):
 * when the partners have been quiet for a while, or at once when too many wait (a
 * person query scans the unmerged part). Runs between batches, in its own commit. */
static void
broker_merge_person_index(broker_t *b)
{
    int64_t now = pt_clock_mono_ms();
    if (now < b->merge_after_ms)
        return;
    size_t waiting = journal_person_unmerged(b->journal);
    bool idle = now - b->last_input_ms >= PERSON_MERGE_IDLE_MS;
    if (waiting == 0 || (!idle && waiting < PERSON_MERGE_FORCE))
        return;
    journal_txn_t *t;
    pt_error_t err;
    size_t moved = 0;
    int rc = journal_begin(b->journal, &t, &err);
    if (rc == 0 && (rc = journal_person_merge(t, PERSON_MERGE_CHUNK, &moved, &err)) != 0)
        journal_abort(&t);
    else if (rc == 0)
        rc = journal_commit(&t, &err);
    if (rc != 0) {
        /* A full journal fails every merge: retry later, not on every tick. The entries
         * wait in by_person_new, where queries find them. */
        b->merge_after_ms = now + PERSON_MERGE_RETRY_MS;
        pt_log_error("journal.person_merge", "%s (next try in %d s)", err.msg,
                     PERSON_MERGE_RETRY_MS / 1000);
    } else
        pt_log_debug("journal.person_merge", "%zu person index entries merged, %zu waiting", moved,
                     waiting - moved);
}

static void
on_checkpoint(uv_timer_t *t)
{
    broker_checkpoint(t->data);
}

/* The loop pings systemd's watchdog at half its period: a loop stuck in a batch, a
 * deadlock or an endless drain misses the ping and systemd restarts the broker. */
static void
on_watchdog(uv_timer_t *t)
{
    (void)t;
    notify("WATCHDOG=1");
}

static void
broker_watchdog_start(broker_t *b)
{
#ifdef PTIBUS_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) > 0 && usec >= 2000)
        uv_timer_start(&b->watchdog_timer, on_watchdog, 0, usec / 2000);
#else
    (void)b;
#endif
}

static void
on_signal(uv_signal_t *s, int signum)
{
    broker_t *b = s->data;
    pt_log_info("broker.signal", "signal %d: stopping after the current batch", signum);
    broker_stop(b);
}

/* ---- reload (SIGHUP): partners and routes, without a restart ---- */

/* Between loop turns, with nothing read ahead (items read ahead point at the partners
 * they came from): moves every module to the new partners and routes at once. Sessions
 * of the partners kept go on; the removed partners' keys are refused by ZAP from now on,
 * and what their open connections send is dropped (no partner has their id). */
static void
broker_reload_apply(broker_t *b)
{
    if (readahead_count(b->readahead) > 0)
        return; /* the next turn takes them, without lending the socket */
    bconfig_t *next = b->next_cfg;
    b->next_cfg = NULL;
    ptrdiff_t *from = NULL;
    router_t *routes = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    size_t n = next->n_partners, n_routes = next->n_routes, before = b->cfg->n_partners;
    int rc = bconfig_partner_map(b->cfg, next, &from);
    if (rc == 0)
        rc = auth_reload_prepare(b->auth, n);
    if (rc == 0)
        rc = ingest_reload_prepare(b->ingest, n);
    if (rc == 0)
        rc = delivery_reload_prepare(b->delivery, n);
    if (rc == 0) {
        bconfig_swap_reloadable(b->cfg, next);
        if ((rc = router_new(b->cfg, &routes, &err)) != 0)
            bconfig_swap_reloadable(b->cfg, next); /* back: nothing moved yet */
    }
    const ptrdiff_t *move = rc == 0 ? from : NULL; /* NULL: drop what was prepared */
    auth_reload_commit(b->auth, move);
    ingest_reload_commit(b->ingest, move, routes);
    delivery_reload_commit(b->delivery, move);
    if (rc == 0) {
        router_destroy(&b->routes);
        b->routes = routes;
        pt_log_notice("broker.reloaded",
                      "configuration reloaded: %zu partners (were %zu), %zu routes", n, before,
                      n_routes);
    } else {
        pt_log_error("broker.reload", "reload failed (%s): the running configuration is kept",
                     err.msg[0] ? err.msg : pt_strerror(rc));
    }
    free(from);
    bconfig_destroy(&next); /* after a swap, it holds the old partners and routes */
    notify("READY=1");
}

/* Loads and checks the file again; an invalid one is logged and changes nothing. */
static void
broker_reload(broker_t *b)
{
    notify("RELOADING=1");
    pt_error_t err;
    pt_error_clear(&err);
    bconfig_t *next = NULL;
    pt_log_info("broker.reload", "SIGHUP: reloading %s", b->cfg->path);
    if (bconfig_load(b->cfg->path, &next, &err) != 0) {
        pt_log_error("broker.reload", "reload refused, the running configuration is kept: %s",
                     err.msg);
        notify("READY=1");
        return;
    }
    char keys[512];
    bconfig_restart_keys(b->cfg, next, keys, sizeof keys);
    if (keys[0] != '\0')
        pt_log_warn("broker.reload", "changed keys that need a restart, kept as they run: %s",
                    keys);
    bconfig_destroy(&b->next_cfg); /* a reload still waiting: this one replaces it */
    b->next_cfg = next;
    broker_reload_apply(b);
}

static void
on_sighup(uv_signal_t *s, int signum)
{
    (void)signum;
    broker_t *b = s->data;
    if (!b->stopping)
        broker_reload(b);
}

void
broker_stop(broker_t *b)
{
    if (b->stopping)
        return;
    b->stopping = true;
    notify("STOPPING=1");
    uv_poll_stop(&b->partners_poll);
    uv_idle_stop(&b->drain_again);
    uv_poll_stop(&b->zap_poll);
    if (b->admin)
        uv_poll_stop(&b->admin_poll);
    uv_timer_stop(&b->checkpoint_timer);
    uv_timer_stop(&b->delivery_timer);
    uv_timer_stop(&b->metrics_timer);
    uv_timer_stop(&b->watchdog_timer);
    uv_signal_stop(&b->sig_term);
    uv_signal_stop(&b->sig_int);
    uv_signal_stop(&b->sig_hup);
}

static int
poll_fd(void *sock, uv_os_sock_t *fd)
{
    size_t len = sizeof *fd;
    return zmq_getsockopt(sock, ZMQ_FD, fd, &len);
}

static int
broker_loop_init(broker_t *b)
{
    uv_os_sock_t rfd, zfd;
    if (poll_fd(b->partners_sock, &rfd) != 0 || poll_fd(auth_socket(b->auth), &zfd) != 0)
        return -zmq_errno();
    int rc = uv_loop_init(&b->loop);
    if (rc != 0)
        return rc;
    b->loop_ready = true;
    uv_poll_init_socket(&b->loop, &b->partners_poll, rfd);
    uv_poll_init_socket(&b->loop, &b->zap_poll, zfd);
    uv_signal_init(&b->loop, &b->sig_term);
    uv_signal_init(&b->loop, &b->sig_int);
    uv_signal_init(&b->loop, &b->sig_hup);
    uv_timer_init(&b->loop, &b->checkpoint_timer);
    uv_timer_init(&b->loop, &b->delivery_timer);
    uv_timer_init(&b->loop, &b->metrics_timer);
    uv_timer_init(&b->loop, &b->watchdog_timer);
    uv_idle_init(&b->loop, &b->drain_again);
    b->partners_poll.data = b->zap_poll.data = b->sig_term.data = b->sig_int.data =
        b->sig_hup.data = b->checkpoint_timer.data = b->delivery_timer.data =
            b->metrics_timer.data = b->watchdog_timer.data = b->drain_again.data = b;
    uv_poll_start(&b->partners_poll, UV_READABLE, on_partners);
    uv_poll_start(&b->zap_poll, UV_READABLE, on_zap);
    if (b->admin) {
        uv_os_sock_t afd;
        if (poll_fd(admin_socket(b->admin), &afd) != 0)
            return -zmq_errno();
        uv_poll_init_socket(&b->loop, &b->admin_poll, afd);
        b->admin_poll.data = b;
        uv_poll_start(&b->admin_poll, UV_READABLE, on_partners);
    }
    uv_signal_start(&b->sig_term, on_signal, SIGTERM);
    uv_signal_start(&b->sig_int, on_signal, SIGINT);
    uv_signal_start(&b->sig_hup, on_sighup, SIGHUP);
    uint64_t ivl = b->cfg->checkpoint_interval_ms;
    uv_timer_start(&b->checkpoint_timer, on_checkpoint, ivl, ivl);
    uv_timer_start(&b->delivery_timer, on_delivery_tick, DELIVERY_TICK_MS, DELIVERY_TICK_MS);
    uv_timer_start(&b->metrics_timer, on_metrics, 0, 1000);
    broker_watchdog_start(b);
    return 0;
}

int
broker_run(broker_t *b)
{
    int rc = broker_loop_init(b);
    if (rc != 0) {
        pt_log_error("broker.loop", "cannot start the event loop: %s", pt_strerror(rc));
        return rc;
    }
    pt_log_info("broker.ready",
                "listening on %s, admin socket %s, metrics %s, journal %s at seq %llu, %zu "
                "partners",
                b->cfg->listen, b->cfg->admin_listen ? b->cfg->admin_listen : "off",
                b->cfg->metrics_listen ? b->cfg->metrics_listen : "off", b->cfg->journal_dir,
                (unsigned long long)journal_last_seq(b->journal), b->cfg->n_partners);
    broker_log_signed_head(b, "journal.resumed", "start");
    notify("READY=1");
    /* Messages may already be queued: the edge has passed, so drain once. */
    on_zap(&b->zap_poll, 0, 0);
    broker_drain(b);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    return 0;
}

static void
on_closed(uv_handle_t *h)
{
    (void)h;
}

static void
broker_loop_fini(broker_t *b)
{
    if (!b->loop_ready)
        return;
    uv_handle_t *handles[] = {
        (uv_handle_t *)&b->partners_poll,  (uv_handle_t *)&b->zap_poll,
        (uv_handle_t *)&b->sig_term,       (uv_handle_t *)&b->sig_int,
        (uv_handle_t *)&b->sig_hup,        (uv_handle_t *)&b->checkpoint_timer,
        (uv_handle_t *)&b->delivery_timer, (uv_handle_t *)&b->metrics_timer,
        (uv_handle_t *)&b->watchdog_timer, (uv_handle_t *)&b->drain_again};
    for (size_t i = 0; i < sizeof handles / sizeof handles[0]; i++)
        if (!uv_is_closing(handles[i]))
            uv_close(handles[i], on_closed);
    if (b->admin && !uv_is_closing((uv_handle_t *)&b->admin_poll))
        uv_close((uv_handle_t *)&b->admin_poll, on_closed);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&b->loop);
    if (rc != 0) {
        pt_log_error("broker.loop", "event loop not closed: %s", uv_strerror(rc));
        uv_print_all_handles(&b->loop, stderr);
    }
    b->loop_ready = false;
}

void
broker_destroy(broker_t **bp)
{
    if (bp == NULL || *bp == NULL)
        return;
    broker_t *b = *bp;
    broker_loop_fini(b);
    if (b->journal) {
        broker_checkpoint(b); /* every commit is signed already: normally a no-op */
        broker_log_signed_head(b, "journal.stopped", "clean stop");
    }
    retention_destroy(&b->retention);
    metrics_destroy(&b->metrics);
    delivery_destroy(&b->delivery);
    ingest_destroy(&b->ingest);
    batch_destroy(&b->batch);
    router_destroy(&b->routes);
    admin_close(&b->admin);
    readahead_destroy(&b->readahead); /* before its socket closes */
    if (b->partners_sock)
        zmq_close(b->partners_sock);
    auth_close(&b->auth);
    if (b->zctx)
        zmq_ctx_term(b->zctx);
    journal_close(&b->journal);
    keys_secret_free(&b->server_sk);
    keys_secret_free(&b->sign_sk);
    keys_secret_free(&b->hmac_key);
    bconfig_destroy(&b->next_cfg);
    bconfig_destroy(&b->cfg);
    free(b);
    *bp = NULL;
}
