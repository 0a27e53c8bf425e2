/* runtime: the adapter's loop (see runtime.h). */
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>
#include <uv.h>
#ifdef PTIBUS_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "aconfig.h"
#include "clock.h"
#include "codec.h"
#include "egress.h"
#include "filedrop.h"
#include "http_api.h"
#include "keys.h"
#include "log.h"
#include "metrics.h"
#include "uplink.h"

#define RT_HOUSE_MS 1000        /* housekeeping: metrics, purge, watchdog */
#define RT_STOP_GRACE_MS 5000   /* how long a stop waits for the broker's answers */
#define RT_PURGE_EVERY_MS 60000 /* finished lifecycles past retention */
#define RT_TURN_ROUNDS 8        /* commit/ack/send rounds in one loop turn */
#define RT_LAZY_MS 50           /* how long a turn of answer marks alone may wait */
#define RT_FILE_NS "files"      /* spool namespace: hashes of the files taken */

typedef struct runtime {
    const runtime_ops_t *ops;
    aconfig_t *cfg;
    uv_loop_t loop;
    spool_t *spool;
    uplink_t *up;
    egress_t *eg;
    http_api_t *api;
    filedrop_t *fd;
    metrics_t *metrics;
    uv_poll_t link_poll, http_poll;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t due, house;
    uv_signal_t sigterm, sigint, sighup;
    filedrop_codec_t codecs[ACONFIG_MAX_CODECS];
    const filedrop_codec_t *codec_ptrs[ACONFIG_MAX_CODECS];
    void *states[ACONFIG_MAX_CODECS];
    size_t n_codecs;
    uint8_t *client_sk;
    uint8_t client_pk[PT_KEY_LEN], server_pk[PT_KEY_LEN];
    bool stopping, closed;
    int64_t stop_deadline, last_purge;
    uint64_t watchdog_usec;
    int exit_code;
    metrics_series_t *m_up, *m_in_flight, *m_held;
    metrics_series_t *m_handed, *m_wh_attempts, *m_wh_failures, *m_published, *m_rejected;
    uplink_counts_t last_up;
    egress_counts_t last_eg;
} runtime_t;

static void
notify(const char *state)
{
#ifdef PTIBUS_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* "path: message", or the message alone when it names the path already. */
static const char *
error_text(const pt_error_t *err, char *out, size_t cap)
{
    size_t n = strlen(err->path);
    if (n == 0 || strncmp(err->msg, err->path, n) == 0)
        snprintf(out, cap, "%s", err->msg);
    else
        snprintf(out, cap, "%s: %s", err->path, err->msg);
    return out;
}

/* ---- the end of a loop turn: commit once, then answer, ack and send ---- */

static void
after_commit(runtime_t *rt, int rc)
{
    if (rt->api != NULL && http_api_pending(rt->api) > 0)
        http_api_committed(rt->api, rc);
    egress_committed(rt->eg, rc);
}

/* Whether the turn must commit now: a POST, a DeliverAck or a staged outbox file waits for
 * it, or it failed, or it holds only answer marks (spool_turn_urgent) begun RT_LAZY_MS ago.
 * Answer marks alone wait for the next urgent write: one commit instead of two per round. */
static bool
commit_due(const runtime_t *rt)
{
    if (spool_turn_urgent(rt->spool) || egress_acks_waiting(rt->eg) ||
        (rt->api != NULL && http_api_pending(rt->api) > 0))
        return true;
    return spool_turn_open(rt->spool) &&
           pt_clock_mono_ms() - spool_turn_began_ms(rt->spool) >= RT_LAZY_MS;
}

/* Commits the turn (when due, or always with force): the outbox files first, then the
 * spool, then the answers and acks. */
static int
commit_turn(runtime_t *rt, bool force)
{
    if (!force && !commit_due(rt))
        return 0;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = egress_prepare_commit(rt->eg, &err);
    if (rc != 0)
        spool_abort(rt->spool); /* the files are not durable: no mark, no ack */
    else if (spool_turn_open(rt->spool))
        rc = spool_commit(rt->spool, &err);
    if (rc != 0)
        pt_log_error("runtime.commit", "spool commit failed: %s", err.msg);
    after_commit(rt, rc);
    return rc;
}

static bool
turn_busy(const runtime_t *rt)
{
    return commit_due(rt);
}

static void rearm_due(runtime_t *rt);

/* Keeps the loop from sleeping while a turn has work left; the check handle does it. */
static void
on_idle(uv_idle_t *h)
{
    uv_idle_stop(h);
}

static void
end_turn(runtime_t *rt)
{
    for (int i = 0; i < RT_TURN_ROUNDS; i++) {
        commit_turn(rt, false);
        int64_t mono = pt_clock_mono_ms(), wall = pt_clock_wall_ms();
        uplink_pump(rt->up, mono, wall);
        uplink_on_readable(rt->up, mono, wall); /* ZeroMQ's fd is edge-triggered */
        if (!turn_busy(rt))
            break;
    }
    if (turn_busy(rt))
        uv_idle_start(&rt->idle, on_idle);
    else
        uv_idle_stop(&rt->idle);
    rearm_due(rt);
}

static void
on_check(uv_check_t *h)
{
    runtime_t *rt = h->data;
    if (!rt->closed)
        end_turn(rt);
}

/* ---- timers ---- */

static void
on_due(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t mono = pt_clock_mono_ms();
    uplink_tick(rt->up, mono);
    if (rt->api != NULL)
        http_api_run(rt->api);
}

static void
rearm_due(runtime_t *rt)
{
    int64_t mono = pt_clock_mono_ms(), wall = pt_clock_wall_ms();
    int64_t d = uplink_due_in(rt->up, mono, wall);
    int64_t h = rt->api != NULL ? http_api_timeout_ms(rt->api) : -1;
    if (d < 0 || (h >= 0 && h < d))
        d = h;
    if (spool_turn_open(rt->spool)) { /* answer marks waiting: commit them within RT_LAZY_MS */
        int64_t lazy = spool_turn_began_ms(rt->spool) + RT_LAZY_MS - mono;
        if (d < 0 || lazy < d)
            d = lazy > 0 ? lazy : 0;
    }
    if (d < 0 || d > RT_HOUSE_MS)
        d = RT_HOUSE_MS;
    uv_timer_start(&rt->due, on_due, (uint64_t)d, 0);
}

static void
add_delta(metrics_series_t *s, uint64_t now, uint64_t before)
{
    if (s != NULL && now > before)
        metrics_add(s, (double)(now - before));
}

static void
update_metrics(runtime_t *rt)
{
    uplink_counts_t u = uplink_counts(rt->up);
    egress_counts_t e = egress_counts(rt->eg);
    metrics_set(rt->m_up, uplink_up(rt->up) ? 1 : 0);
    metrics_set(rt->m_in_flight, uplink_in_flight(rt->up));
    metrics_set(rt->m_held, (double)e.held);
    add_delta(rt->m_handed, e.handed_over, rt->last_eg.handed_over);
    add_delta(rt->m_wh_attempts, e.webhook_attempts, rt->last_eg.webhook_attempts);
    add_delta(rt->m_wh_failures, e.webhook_failures, rt->last_eg.webhook_failures);
    add_delta(rt->m_published, u.published, rt->last_up.published);
    add_delta(rt->m_rejected, u.rejected, rt->last_up.rejected);
    rt->last_up = u;
    rt->last_eg = e;
}

static void shutdown_now(runtime_t *rt);

static void
on_house(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t mono = pt_clock_mono_ms(), wall = pt_clock_wall_ms();
    update_metrics(rt);
    if (rt->watchdog_usec > 0)
        notify("WATCHDOG=1");
    if (mono - rt->last_purge >= RT_PURGE_EVERY_MS) {
        pt_error_t err;
        pt_error_clear(&err);
        if (spool_purge(rt->spool, wall, 1024, NULL, &err) != 0)
            pt_log_warn("runtime.purge", "%s", err.msg);
        rt->last_purge = mono;
    }
    if (rt->stopping && (uplink_in_flight(rt->up) == 0 || mono >= rt->stop_deadline))
        shutdown_now(rt);
}

/* ---- I/O watchers ---- */

static void
on_link(uv_poll_t *p, int status, int events)
{
    runtime_t *rt = p->data;
    (void)status;
    (void)events;
    uplink_on_readable(rt->up, pt_clock_mono_ms(), pt_clock_wall_ms());
}

static void
on_http(uv_poll_t *p, int status, int events)
{
    runtime_t *rt = p->data;
    (void)status;
    (void)events;
    if (rt->api != NULL && http_api_run(rt->api) != 0)
        pt_log_error("runtime.http", "the HTTP API failed to run a turn");
}

/* ---- uplink hooks ---- */

static void
hook_deliver(void *arg, const Ptibus__V1__Deliver *d)
{
    runtime_t *rt = arg;
    egress_deliver(rt->eg, d, pt_clock_wall_ms());
}

static void
hook_receipt(void *arg, const Ptibus__V1__Receipt *r)
{
    runtime_t *rt = arg;
    egress_receipt(rt->eg, r);
}

/* The broker's answer: a POST waiting for it (Prefer: wait) is answered now. */
static void
hook_result(void *arg, const char *id, const link_result_t *r)
{
    runtime_t *rt = arg;
    if (rt->api != NULL)
        http_api_publish_result(rt->api, id, r->nack_code, r->seq, r->retryable, r->reason,
                                r->field_path);
}

/* The partner's system acknowledged a pulled delivery (its mark is committed). */
static void
pulled(void *arg, uint64_t seq)
{
    runtime_t *rt = arg;
    egress_pulled(rt->eg, seq);
}

static int
send_ack(void *arg, uint64_t seq, bool ok, const char *reason)
{
    runtime_t *rt = arg;
    return uplink_deliver_ack(rt->up, seq, ok, reason, pt_clock_mono_ms());
}

static bool
ready(void *arg, char *why, size_t cap)
{
    runtime_t *rt = arg;
    if (uplink_up(rt->up))
        return true;
    snprintf(why, cap, "broker link %s: %s", link_state_name(uplink_state(rt->up)),
             uplink_cause(rt->up));
    return false;
}

/* ---- the file drop's side ---- */

static int
file_seen(void *ctx, const filedrop_file_t *file)
{
    runtime_t *rt = ctx;
    uint8_t *v = NULL;
    size_t n = 0;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = spool_kv_get(rt->spool, RT_FILE_NS, file->hash, sizeof file->hash, &v, &n, &err);
    free(v);
    return rc == 0 ? 1 : rc == PT_ENOTFOUND ? 0 : rc;
}

static void
spool_record(runtime_t *rt, filedrop_record_t *r)
{
    uint8_t *packed = NULL;
    size_t len = 0;
    int rc = codec_pack(&r->env->base, PT_FILEDROP_MAX_FILE, &packed, &len, &r->err);
    spool_put_result_t res = {0};
    if (rc == 0) {
        spool_msg_t m = {.message_id = r->env->message_id,
                         .data = packed,
                         .len = len,
                         .msg_type = codec_envelope_type(r->env),
                         .source = SPOOL_SRC_FILE};
        rc = spool_put(rt->spool, &m, &res, &r->err);
    }
    free(packed);
    r->outcome = rc != 0         ? PT_FILEDROP_REFUSED
                 : res.duplicate ? PT_FILEDROP_ALREADY
                                 : PT_FILEDROP_SPOOLED;
}

/* Spools a file's good records and its hash in the turn, and commits: the partner's HTTP
 * requests of the same turn share the commit. A full spool or a failed turn: nothing of
 * the file is kept and it waits in processing/. */
static int
file_spool(void *ctx, const filedrop_file_t *file, filedrop_record_t *recs, size_t n)
{
    runtime_t *rt = ctx;
    pt_error_t err;
    pt_error_clear(&err);
    for (size_t i = 0; i < n; i++) {
        spool_record(rt, &recs[i]);
        if (recs[i].outcome == PT_FILEDROP_REFUSED && recs[i].err.code == PT_EJOURNALFULL) {
            spool_abort(rt->spool);
            after_commit(rt, PT_EJOURNALFULL);
            return PT_EJOURNALFULL;
        }
    }
    int64_t now = pt_clock_wall_ms();
    int rc =
        spool_kv_put(rt->spool, RT_FILE_NS, file->hash, sizeof file->hash, &now, sizeof now, &err);
    if (rc == 0 && spool_failed(rt->spool) == 0)
        return commit_turn(rt, true);
    spool_abort(rt->spool);
    after_commit(rt, rc ? rc : PT_EINTERNAL);
    return rc ? rc : PT_EINTERNAL;
}

/* A staged file's rollback steps commit as any turn does. */
static int
file_commit(void *ctx)
{
    return commit_turn(ctx, true);
}

static void
file_finished(void *ctx, const filedrop_file_t *file, const char *dest, bool failed)
{
    (void)ctx;
    pt_log_info(failed ? "filedrop.failed" : "filedrop.done", "file %s -> %s", file->name, dest);
}

/* ---- opening ---- */

static const pt_codec_ops_t *
find_native(const runtime_ops_t *ops, const char *name)
{
    for (size_t i = 0; ops->codecs != NULL && ops->codecs[i] != NULL; i++)
        if (strcmp(ops->codecs[i]->name, name) == 0)
            return ops->codecs[i];
    return NULL;
}

/* The outbox's partner formats must be built into this daemon, with an encoder. */
static int
check_formats(const runtime_ops_t *ops, const aconfig_t *cfg, pt_error_t *err)
{
    for (size_t i = 0; i < cfg->n_outbox_formats; i++) {
        const pt_codec_ops_t *c = find_native(ops, cfg->outbox_formats[i]);
        if (c == NULL || c->encode == NULL)
            return pt_error_set(err, PT_ECONFIG, cfg->path,
                                "egress.formats: %s has no encoder in %s", cfg->outbox_formats[i],
                                ops->program);
    }
    return 0;
}

/* The config's codecs must be json, jsonl or built into this daemon; a pull egress
 * needs the HTTP API. */
static int
check_codecs(const runtime_ops_t *ops, const aconfig_t *cfg, pt_error_t *err)
{
    int frc = check_formats(ops, cfg, err);
    if (frc != 0)
        return frc;
    if (cfg->egress == ACONFIG_EGRESS_PULL && cfg->http_listen == NULL)
        return pt_error_set(err, PT_ECONFIG, cfg->path,
                            "egress.kind: pull serves GET /v1/inbox on the HTTP API, and there "
                            "is no http section");
    for (size_t i = 0; i < cfg->n_codecs; i++) {
        const char *n = cfg->codecs[i];
        if (strcmp(n, "json") == 0 || strcmp(n, "jsonl") == 0 || find_native(ops, n) != NULL)
            continue;
        char list[256] = "json, jsonl";
        for (size_t k = 0; ops->codecs != NULL && ops->codecs[k] != NULL; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", ops->codecs[k]->name);
        return pt_error_set(err, PT_ECONFIG, cfg->path,
                            "inbox.codecs: %s is not built into %s, which has: %s", n, ops->program,
                            list);
    }
    return 0;
}

static void
build_codecs(runtime_t *rt)
{
    for (size_t i = 0; i < rt->cfg->n_codecs; i++) {
        const char *n = rt->cfg->codecs[i];
        const pt_codec_ops_t *nat = find_native(rt->ops, n);
        if (strcmp(n, "json") == 0 || nat == NULL) {
            rt->codecs[i] = strcmp(n, "jsonl") == 0 ? filedrop_codec_jsonl : filedrop_codec_json;
        } else {
            void *st = rt->ops->codec_state ? rt->ops->codec_state(nat, rt->spool) : NULL;
            pt_codec_config_t cc = {.state = st};
            rt->states[i] = st;
            rt->codecs[i] = filedrop_codec_native(nat, &cc);
        }
        rt->codec_ptrs[i] = &rt->codecs[i];
    }
    rt->n_codecs = rt->cfg->n_codecs;
}

static int
load_keys(runtime_t *rt, pt_error_t *err)
{
    const aconfig_t *c = rt->cfg;
    int rc = keys_read(c->server_public_key_file, rt->server_pk, PT_KEY_LEN, false, err);
    if (rc == 0)
        rc = keys_read(c->public_key_file, rt->client_pk, PT_KEY_LEN, false, err);
    if (rc == 0)
        rc = keys_secret_load(c->secret_key_file, PT_KEY_LEN, &rt->client_sk, err);
    return rc;
}

static int
open_uplink(runtime_t *rt, pt_error_t *err)
{
    uplink_options_t o = {.link = {.endpoint = rt->cfg->endpoint,
                                   .server_pk = rt->server_pk,
                                   .client_sk = rt->client_sk,
                                   .client_pk = rt->client_pk,
                                   .client_name = rt->ops->program,
                                   .initial_credit = rt->cfg->credit},
                          .spool = rt->spool,
                          .endpoints = (const char *const *)rt->cfg->endpoints,
                          .n_endpoints = rt->cfg->n_endpoints,
                          .failover_after_ms = (int64_t)rt->cfg->failover_after_ms};
    uplink_hooks_t h = {.arg = rt,
                        .on_deliver = hook_deliver,
                        .on_receipt = hook_receipt,
                        .on_result = hook_result};
    int rc = uplink_new(&o, &h, pt_clock_mono_ms(), &rt->up, err);
    if (rc == 0) {
        uv_poll_init(&rt->loop, &rt->link_poll, uplink_fd(rt->up));
        rt->link_poll.data = rt;
        uv_poll_start(&rt->link_poll, UV_READABLE, on_link);
    }
    return rc;
}

/* "127.0.0.1:8441" into its address and port. */
static int
split_listen(const char *listen, char *addr, size_t cap, uint16_t *port, pt_error_t *err)
{
    const char *colon = strrchr(listen, ':');
    char *end = NULL;
    unsigned long p = colon ? strtoul(colon + 1, &end, 10) : 0;
    if (colon == NULL || (size_t)(colon - listen) >= cap || end == colon + 1 || *end != '\0' ||
        p > 65535)
        return pt_error_set(err, PT_ECONFIG, "http.listen", "%s is not ADDRESS:PORT", listen);
    snprintf(addr, cap, "%.*s", (int)(colon - listen), listen);
    *port = (uint16_t)p;
    return 0;
}

static int
open_http(runtime_t *rt, pt_error_t *err)
{
    if (rt->cfg->http_listen == NULL)
        return 0;
    char addr[64];
    http_api_options_t o = {.listen_addr = addr,
                            .body_max = rt->cfg->max_body,
                            .token_file = rt->cfg->tokens_file,
                            .spool = rt->spool,
                            .metrics = rt->metrics,
                            .ready = ready,
                            .ready_arg = rt,
                            .pull = rt->cfg->egress == ACONFIG_EGRESS_PULL,
                            .on_pull_ack = pulled,
                            .pull_ack_arg = rt};
    int rc = split_listen(rt->cfg->http_listen, addr, sizeof addr, &o.port, err);
    if (rc == 0)
        rc = http_api_start(&o, &rt->api, err);
    if (rc == 0) {
        uv_poll_init(&rt->loop, &rt->http_poll, http_api_fd(rt->api));
        rt->http_poll.data = rt;
        uv_poll_start(&rt->http_poll, UV_READABLE, on_http);
        pt_log_info("runtime.http", "HTTP API on %s:%u", addr, http_api_port(rt->api));
    }
    return rc;
}

static int
open_filedrop(runtime_t *rt, pt_error_t *err)
{
    const aconfig_t *c = rt->cfg;
    if (c->inbox_dir == NULL)
        return 0;
    build_codecs(rt);
    static const filedrop_convention_t conv[] = {[ACONFIG_COMPLETE_RENAME] = PT_FILEDROP_RENAME,
                                                 [ACONFIG_COMPLETE_MARKER] = PT_FILEDROP_MARKER,
                                                 [ACONFIG_COMPLETE_STABLE] = PT_FILEDROP_STABLE};
    filedrop_options_t o = {.inbox = c->inbox_dir,
                            .convention = conv[c->complete],
                            .stable_ms = (uint32_t)c->stable_for_ms,
                            .scan_ms = (uint32_t)c->scan_interval_ms,
                            .all_or_nothing = c->all_or_nothing,
                            .codecs = rt->n_codecs ? rt->codec_ptrs : NULL,
                            .n_codecs = rt->n_codecs,
                            .spool = rt->spool};
    static const filedrop_ops_t ops = {
        .seen = file_seen, .spool = file_spool, .finished = file_finished, .commit = file_commit};
    return filedrop_open(&rt->fd, &rt->loop, &o, &ops, rt, err);
}

static int
open_metrics(runtime_t *rt, pt_error_t *err)
{
    int rc = metrics_new(&rt->metrics, err);
    if (rc != 0)
        return rc;
    metrics_t *m = rt->metrics;
    rt->m_up = metrics_gauge(m, "ptibus_adapter_link_up", "1 while in session with the broker",
                             NULL, NULL);
    rt->m_in_flight = metrics_gauge(m, "ptibus_adapter_publish_in_flight",
                                    "publishes sent, not yet answered by the broker", NULL, NULL);
    rt->m_held = metrics_gauge(m, "ptibus_adapter_webhook_held",
                               "deliveries waiting for the webhook's 2xx", NULL, NULL);
    rt->m_handed = metrics_counter(m, "ptibus_adapter_deliveries_handed_over_total",
                                   "deliveries handed over to the partner's system", NULL, NULL);
    rt->m_wh_attempts = metrics_counter(m, "ptibus_adapter_webhook_attempts_total",
                                        "webhook POSTs made", NULL, NULL);
    rt->m_wh_failures = metrics_counter(m, "ptibus_adapter_webhook_failures_total",
                                        "webhook POSTs that did not get a 2xx", NULL, NULL);
    rt->m_published = metrics_counter(m, "ptibus_adapter_published_total",
                                      "publishes sent to the broker", NULL, NULL);
    rt->m_rejected = metrics_counter(m, "ptibus_adapter_rejected_total",
                                     "messages the broker refused for good", NULL, NULL);
    if (rt->cfg->metrics_listen != NULL)
        rc = metrics_http_start(m, rt->cfg->metrics_listen, err);
    return rc;
}

/* ---- stopping ---- */

static void
close_handle(uv_handle_t *h)
{
    if (h->loop != NULL && !uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes every handle; the loop then ends by itself. */
static void
shutdown_now(runtime_t *rt)
{
    if (rt->closed)
        return;
    if (rt->up != NULL && rt->eg != NULL) {
        end_turn(rt);
        commit_turn(rt, true); /* the answer marks too, before the egress closes */
    }
    rt->closed = true;
    if (rt->up != NULL && uplink_in_flight(rt->up) > 0)
        pt_log_warn("runtime.stop",
                    "%u messages unanswered by the broker: they stay spooled and "
                    "are sent again at the next start",
                    uplink_in_flight(rt->up));
    egress_close(&rt->eg);
    filedrop_close(&rt->fd);
    uv_handle_t *hs[] = {
        (uv_handle_t *)&rt->link_poll, (uv_handle_t *)&rt->http_poll, (uv_handle_t *)&rt->check,
        (uv_handle_t *)&rt->idle,      (uv_handle_t *)&rt->due,       (uv_handle_t *)&rt->house,
        (uv_handle_t *)&rt->sigterm,   (uv_handle_t *)&rt->sigint,    (uv_handle_t *)&rt->sighup};
    for (size_t i = 0; i < sizeof hs / sizeof *hs; i++)
        close_handle(hs[i]);
}

/* No new input; what the broker has not answered yet gets a few seconds. */
static void
on_signal(uv_signal_t *s, int signum)
{
    runtime_t *rt = s->data;
    if (rt->stopping) {
        shutdown_now(rt);
        return;
    }
    pt_log_info("runtime.stop", "signal %d: stopping (no new input, in-flight answers awaited)",
                signum);
    notify("STOPPING=1");
    rt->stopping = true;
    rt->stop_deadline = pt_clock_mono_ms() + RT_STOP_GRACE_MS;
    end_turn(rt); /* answers the requests that spooled */
    if (rt->api != NULL) {
        uv_poll_stop(&rt->http_poll);
        http_api_stop(&rt->api);
    }
    filedrop_close(&rt->fd);
    uv_timer_start(&rt->house, on_house, 100, 100);
}

/* SIGHUP: the bearer tokens are read again (a token rotated without a restart); the
 * rest of the configuration needs a restart. */
static void
on_hup(uv_signal_t *s, int signum)
{
    runtime_t *rt = s->data;
    (void)signum;
    pt_error_t err;
    pt_error_clear(&err);
    if (rt->api == NULL)
        pt_log_info("runtime.reload", "SIGHUP: no HTTP API, nothing to read again");
    else if (http_api_reload_tokens(rt->api, &err) != 0)
        pt_log_error("runtime.reload",
                     "SIGHUP: the tokens file was not read again, the "
                     "tokens in force stay: %s",
                     err.msg);
    else
        pt_log_info("runtime.reload", "SIGHUP: bearer tokens read again from %s",
                    rt->cfg->tokens_file);
}

/* ---- the daemon ---- */

static void
init_handles(runtime_t *rt)
{
    uv_check_init(&rt->loop, &rt->check);
    uv_idle_init(&rt->loop, &rt->idle);
    uv_timer_init(&rt->loop, &rt->due);
    uv_timer_init(&rt->loop, &rt->house);
    uv_signal_init(&rt->loop, &rt->sigterm);
    uv_signal_init(&rt->loop, &rt->sigint);
    uv_signal_init(&rt->loop, &rt->sighup);
    rt->check.data = rt->due.data = rt->house.data = rt;
    rt->sigterm.data = rt->sigint.data = rt->sighup.data = rt;
    uv_check_start(&rt->check, on_check);
    uv_timer_start(&rt->house, on_house, RT_HOUSE_MS, RT_HOUSE_MS);
    uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
    uv_signal_start(&rt->sigint, on_signal, SIGINT);
    uv_signal_start(&rt->sighup, on_hup, SIGHUP);
}

static int
open_all(runtime_t *rt, pt_error_t *err)
{
    spool_options_t so = {.dir = rt->cfg->spool_dir,
                          .map_size_max = rt->cfg->spool_max_size,
                          .retention_days = (unsigned)(rt->cfg->retention_ms / 86400000ull)};
    if (so.retention_days == 0)
        so.retention_days = 1;
    so.unsafe_nosync = getenv("PTIBUS_TEST_SPOOL_NOSYNC") != NULL;
    int rc = load_keys(rt, err);
    if (rc == 0)
        rc = spool_open(&so, &rt->spool, err);
    if (rc == 0)
        rc = open_metrics(rt, err);
    if (rc == 0)
        rc = egress_open(&rt->loop, rt->cfg, rt->spool, send_ack, rt, &rt->eg, err);
    for (size_t i = 0; rc == 0 && i < rt->cfg->n_outbox_formats; i++)
        if (egress_add_format(rt->eg, find_native(rt->ops, rt->cfg->outbox_formats[i]),
                              rt->cfg->outbox_encoding) != 0)
            rc = pt_error_set(err, PT_ECONFIG, rt->cfg->path, "egress.formats: %s cannot be used",
                              rt->cfg->outbox_formats[i]);
    if (rc == 0)
        rc = open_uplink(rt, err);
    if (rc == 0)
        rc = open_http(rt, err);
    if (rc == 0)
        rc = open_filedrop(rt, err);
    return rc;
}

static void
close_all(runtime_t *rt)
{
    pt_error_t err;
    pt_error_clear(&err);
    if (rt->spool != NULL && rt->eg != NULL) /* the outbox files before the marks */
        commit_turn(rt, true);
    else if (rt->spool != NULL && spool_turn_open(rt->spool) && spool_commit(rt->spool, &err) != 0)
        pt_log_error("runtime.commit", "last spool commit failed: %s", err.msg);
    http_api_stop(&rt->api);
    uplink_destroy(&rt->up);
    for (size_t i = 0; i < rt->n_codecs; i++)
        if (rt->states[i] != NULL && rt->ops->codec_state_free != NULL)
            rt->ops->codec_state_free(rt->codecs[i].native, rt->states[i]);
    spool_close(&rt->spool);
    metrics_destroy(&rt->metrics);
    keys_secret_free(&rt->client_sk);
}

/* "tcp://a:7000" or "tcp://a:7000, then tcp://b:7000" (broker.endpoints, in failover order). */
static const char *
endpoints_text(const aconfig_t *cfg, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < cfg->n_endpoints && n < cap; i++) {
        int w = snprintf(out + n, cap - n, "%s%s", i ? ", then " : "", cfg->endpoints[i]);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return out[0] ? out : cfg->endpoint;
}

static int
run(runtime_t *rt)
{
    pt_error_t err;
    pt_error_clear(&err);
    uv_loop_init(&rt->loop);
    init_handles(rt);
    int rc = open_all(rt, &err);
    char text[PT_ERROR_PATH_MAX + PT_ERROR_MSG_MAX + 2];
    if (rc != 0) {
        pt_log_error("runtime.start", "%s", error_text(&err, text, sizeof text));
        rt->exit_code = rc == PT_ECONFIG || rc == PT_EDENIED ? 3 : 1;
        shutdown_now(rt);
    } else {
        char fp[PT_FINGERPRINT_LEN + 1], brokers[512];
        keys_fingerprint(rt->client_pk, fp);
        pt_log_info("runtime.start", "%s %s for partner %s (key %s), broker %s", rt->ops->program,
                    PTIBUS_VERSION, rt->cfg->id, fp,
                    endpoints_text(rt->cfg, brokers, sizeof brokers));
#ifdef PTIBUS_HAVE_SYSTEMD
        if (sd_watchdog_enabled(0, &rt->watchdog_usec) <= 0)
            rt->watchdog_usec = 0;
#endif
        notify("READY=1");
    }
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    close_all(rt);
    uv_run(&rt->loop, UV_RUN_NOWAIT); /* the last close callbacks */
    if (uv_loop_close(&rt->loop) != 0)
        pt_log_warn("runtime.stop", "handles left open at exit");
    return rt->exit_code;
}

/* ---- the command line ---- */

static void
usage(const runtime_ops_t *ops, FILE *out)
{
    fprintf(out,
            "usage: %s --config FILE [--check-config | --fingerprint] [--log-level LEVEL]\n"
            "       %s --version\n"
            "%s\n"
            "Runs in the foreground (systemd Type=notify). --check-config loads and checks the\n"
            "configuration and the key files it names, then exits; --fingerprint prints the\n"
            "fingerprints of this partner's public key and of the broker's, as the broker's\n"
            "log names them, so both sides can compare. Exit status: 0, 1 runtime failure,\n"
            "2 usage, 3 bad configuration. Reference: docs/adapters.md.\n",
            ops->program, ops->program, ops->summary ? ops->summary : "A ptibus partner adapter.");
}

/* A secret file the daemon will read at start (bearer tokens, the webhook's secret):
 * a regular file, not a link, of our own, no access for group or others, not empty. */
static int
check_secret_file(const char *path, const char *what, pt_error_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return pt_error_set(err, PT_ECONFIG, path, "%s: cannot open it: %s", what, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)
                 ? pt_error_set(err, PT_ECONFIG, path, "%s: not a regular file", what)
             : (st.st_mode & 077) != 0
                 ? pt_error_set(err, PT_EDENIED, path,
                                "%s: mode %03o lets group or others read it: chmod 600 %s", what,
                                (unsigned)(st.st_mode & 0777), path)
             : st.st_uid != geteuid() && st.st_uid != 0
                 ? pt_error_set(err, PT_EDENIED, path, "%s: owned by uid %u: chown %u %s", what,
                                (unsigned)st.st_uid, (unsigned)geteuid(), path)
             : st.st_size == 0 ? pt_error_set(err, PT_ECONFIG, path, "%s: empty", what)
                               : 0;
    close(fd);
    return rc;
}

static int
check_secrets(const aconfig_t *cfg, pt_error_t *err)
{
    int rc = 0;
    if (cfg->http_listen != NULL)
        rc = check_secret_file(cfg->tokens_file, "http.tokens_file", err);
    if (rc == 0 && cfg->egress == ACONFIG_EGRESS_WEBHOOK)
        rc = check_secret_file(cfg->webhook_secret_file, "egress.webhook.secret_file", err);
    return rc;
}

static int
check_config(const runtime_ops_t *ops, const aconfig_t *cfg, bool fingerprint)
{
    pt_error_t err;
    pt_error_clear(&err);
    uint8_t spk[PT_KEY_LEN], cpk[PT_KEY_LEN], *sk = NULL;
    int rc = check_codecs(ops, cfg, &err);
    if (rc == 0 && !fingerprint)
        rc = check_secrets(cfg, &err);
    if (rc == 0)
        rc = keys_read(cfg->server_public_key_file, spk, PT_KEY_LEN, false, &err);
    if (rc == 0)
        rc = keys_read(cfg->public_key_file, cpk, PT_KEY_LEN, false, &err);
    if (rc == 0 && !fingerprint)
        rc = keys_secret_load(cfg->secret_key_file, PT_KEY_LEN, &sk, &err);
    keys_secret_free(&sk);
    if (rc != 0) {
        char text[PT_ERROR_PATH_MAX + PT_ERROR_MSG_MAX + 2];
        fprintf(stderr, "%s: %s\n", ops->program, error_text(&err, text, sizeof text));
        return 3;
    }
    char a[PT_FINGERPRINT_LEN + 1], b[PT_FINGERPRINT_LEN + 1];
    keys_fingerprint(cpk, a);
    keys_fingerprint(spk, b);
    if (fingerprint)
        printf("partner %s key %s\nbroker key %s\n", cfg->id, a, b);
    else
        printf("%s: configuration OK (partner %s, key %s)\n", cfg->path, cfg->id, a);
    return 0;
}

typedef struct cli {
    const char *config;
    bool check, fingerprint;
    int level;
} cli_t;

/* Returns -1 to go on, else the exit status. */
static int
parse_cli(const runtime_ops_t *ops, int argc, char **argv, cli_t *c)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"check-config", no_argument, NULL, 'k'},
                                         {"fingerprint", no_argument, NULL, 'f'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    *c = (cli_t){.level = -1};
    while ((o = getopt_long(argc, argv, "c:l:Vh", opts, NULL)) != -1) {
        if (o == 'c')
            c->config = optarg;
        else if (o == 'k')
            c->check = true;
        else if (o == 'f')
            c->fingerprint = true;
        else if (o == 'l' && (c->level = pt_log_level_parse(optarg)) < 0) {
            fprintf(stderr, "%s: --log-level: %s is not error|warn|info|debug\n", ops->program,
                    optarg);
            return 2;
        } else if (o == 'V') {
            printf("%s %s\n", ops->program, PTIBUS_VERSION);
            return 0;
        } else if (o == 'h') {
            usage(ops, stdout);
            return 0;
        } else if (o != 'l') {
            usage(ops, stderr);
            return 2;
        }
    }
    if (c->config == NULL || optind != argc) {
        usage(ops, stderr);
        return 2;
    }
    return -1;
}

int
runtime_main(const runtime_ops_t *ops, int argc, char **argv)
{
    cli_t c;
    int rc = parse_cli(ops, argc, argv, &c);
    if (rc >= 0)
        return rc;
    pt_log_init(ops->program, c.level);
    if (sodium_init() < 0) {
        fprintf(stderr, "%s: libsodium cannot start\n", ops->program);
        return 1;
    }
    pt_error_t err;
    pt_error_clear(&err);
    runtime_t *rt = calloc(1, sizeof *rt);
    if (rt == NULL || aconfig_load(c.config, &rt->cfg, &err) != 0) {
        fprintf(stderr, "%s: %s\n", ops->program, rt ? err.msg : "out of memory");
        free(rt);
        return 3;
    }
    rt->ops = ops;
    if (c.check || c.fingerprint || (rc = check_codecs(ops, rt->cfg, &err)) != 0) {
        rc = check_config(ops, rt->cfg, c.fingerprint);
    } else if ((rc = keys_protect_process(&err)) != 0) {
        fprintf(stderr, "%s: %s\n", ops->program, err.msg);
        rc = 1;
    } else {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = run(rt);
        curl_global_cleanup();
    }
    aconfig_destroy(&rt->cfg);
    free(rt);
    return rc;
}
