/* Integration tests of the partner adapters: real ptibusd, real adapter daemons
 * (ptibus-adapter-*), real HTTP, real folders. POST -> spool -> broker -> exactly the
 * routed recipients' outboxes; the broker down during POSTs; kill -9 of the sending
 * adapter during POSTs and of the recipient's during egress (no loss, no duplicate
 * hand-over); a file drop with bad records and the same file twice; the lifecycle after
 * receipts; a webhook that fails then succeeds, and one that refuses for good. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <microhttpd.h>

#include "adapter.h"
#include "daemon.h"
#include "pjson.h"
#include "samples.h"
#include "testutil.h"

#define WAIT_MS 20000
#define QUIET_MS 800

typedef struct fx {
    td_net_t net;
    td_adapter_t a[4]; /* departement, pole_emploi, caf, msa */
} fx_t;

enum { D, P, C, M };
static const char *const names[] = {"departement", "pole_emploi", "caf", "msa"};

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    /* an adapter killed with deliveries in flight gets them again after the ack timeout */
    td_net_options_t o = {.ack_timeout = "2s", .max_attempts = "20"};
    td_net_init(&f->net, "adapters", &o);
    assert_int_equal(td_broker_start(&f->net), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    /* a clean stop: exit status 0 (under the sanitizers, no leak and no error either) */
    for (int i = 0; i < 4; i++)
        if (f->a[i].pid > 0 && td_adapter_stop(&f->a[i]) != 0)
            fail_msg("the adapter of %s did not stop cleanly: see %s", f->a[i].partner,
                     f->a[i].log);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static void
start(fx_t *f, int i, const td_adapter_options_t *o)
{
    td_adapter_init(&f->a[i], &f->net, names[i], o);
    assert_int_equal(td_adapter_start(&f->a[i]), 0);
    assert_true(td_adapter_wait_ready(&f->a[i], 10000));
}

static long
post_orientation(td_adapter_t *a, const char *id)
{
    td_sample_t s;
    td_sample_orientation(&s, id);
    return td_adapter_post_env(a, &s.env, NULL);
}

/* The lifecycle JSON of id, or NULL. */
static json_t *
lifecycle(td_adapter_t *a, const char *id)
{
    char path[128], *body = NULL;
    snprintf(path, sizeof path, "/v1/messages/%s", id);
    long st = td_adapter_http(a, "GET", path, NULL, 0, &body);
    json_t *doc = st == 200 && body ? json_loads(body, 0, NULL) : NULL;
    free(body);
    return doc;
}

/* Waits up to ms until the lifecycle of id has recipient `who` with field (e.g.
 * "acknowledgedAt"). */
static bool
wait_receipt_ms(td_adapter_t *a, const char *id, const char *who, const char *field, int ms)
{
    int64_t end = tu_now_ms() + ms;
    do {
        json_t *doc = lifecycle(a, id);
        size_t i;
        json_t *r;
        bool found = false;
        json_array_foreach(json_object_get(doc, "recipients"), i, r)
        {
            found |= strcmp(json_string_value(json_object_get(r, "partner")) ?: "", who) == 0 &&
                     json_object_get(r, field) != NULL;
        }
        json_decref(doc);
        if (found)
            return true;
        usleep(100 * 1000);
    } while (tu_now_ms() < end);
    return false;
}

static bool
wait_receipt(td_adapter_t *a, const char *id, const char *who, const char *field)
{
    return wait_receipt_ms(a, id, who, field, WAIT_MS);
}

/* POST -> broker -> exactly the routed recipients' outboxes (an orientation with a CAF
 * payer goes to France Travail and the CAF, not to the MSA), then the lifecycle. */
static void
test_post_reaches_the_routed_outboxes_only(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < 4; i++)
        start(f, i, NULL);
    char id[64];
    for (int k = 0; k < 5; k++) {
        snprintf(id, sizeof id, "ori-route-%d", k);
        assert_int_equal(post_orientation(&f->a[D], id), 202);
    }
    assert_int_equal(td_outbox_wait(&f->a[P], 5, WAIT_MS), 5);
    assert_int_equal(td_outbox_wait(&f->a[C], 5, WAIT_MS), 5);
    usleep(QUIET_MS * 1000);
    assert_int_equal(td_outbox_count(&f->a[M]), 0);
    assert_int_equal(td_outbox_count(&f->a[D]), 0);
    assert_true(td_outbox_has(&f->a[P], "ori-route-3"));
    assert_true(wait_receipt(&f->a[D], "ori-route-3", "pole_emploi", "acknowledgedAt"));
    assert_true(wait_receipt(&f->a[D], "ori-route-3", "caf", "acknowledgedAt"));
    json_t *doc = lifecycle(&f->a[D], "ori-route-3");
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "accepted");
    json_decref(doc);
    /* the same message again: the spool answers from what it has, nothing is sent twice */
    assert_int_equal(post_orientation(&f->a[D], "ori-route-3"), 202);
    usleep(QUIET_MS * 1000);
    assert_int_equal(td_outbox_count(&f->a[P]), 5);
    /* the metrics say so too (the runtime updates them every second) */
    usleep(1200 * 1000);
    char *text = NULL;
    assert_int_equal(td_adapter_http(&f->a[P], "GET", "/metrics", NULL, 0, &text), 200);
    assert_non_null(strstr(text, "ptibus_adapter_link_up 1"));
    assert_non_null(strstr(text, "ptibus_adapter_deliveries_handed_over_total 5"));
    free(text);
    /* SIGTERM stops cleanly */
    assert_int_equal(td_adapter_stop(&f->a[D]), 0);
}

/* The broker down during POSTs: each is answered 202 once spooled, /readyz says why the
 * link is down, and everything flows, in order, when the broker returns. */
static void
test_broker_down_then_back(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    start(f, P, NULL);
    assert_int_equal(td_broker_stop(&f->net), 0);
    char *body = NULL, id[64];
    for (int i = 0; i < 50 && td_adapter_http(&f->a[D], "GET", "/readyz", NULL, 0, NULL) == 200;
         i++)
        usleep(200 * 1000);
    assert_int_equal(td_adapter_http(&f->a[D], "GET", "/readyz", NULL, 0, &body), 503);
    assert_non_null(strstr(body, "broker link"));
    free(body);
    for (int k = 0; k < 20; k++) {
        snprintf(id, sizeof id, "ori-down-%02d", k);
        assert_int_equal(post_orientation(&f->a[D], id), 202);
    }
    usleep(QUIET_MS * 1000);
    assert_int_equal(td_outbox_count(&f->a[P]), 0);
    assert_int_equal(td_broker_start(&f->net), 0);
    assert_int_equal(td_outbox_wait(&f->a[P], 20, WAIT_MS), 20);
    for (int k = 0; k < 20; k++) {
        snprintf(id, sizeof id, "ori-down-%02d", k);
        assert_true(td_outbox_has(&f->a[P], id));
    }
}

/* Counts outbox files per message id: every id of ids[] must have exactly one. */
static void
assert_each_once(const td_adapter_t *a, char ids[][32], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!td_outbox_has(a, ids[i]))
            fail_msg("%s: no outbox file for %s", a->partner, ids[i]);
    }
    assert_int_equal(td_outbox_count(a), n);
}

/* kill -9 of the sending adapter in the middle of a stream of POSTs: every message
 * answered 202 reaches the recipient, exactly once. */
static void
test_kill9_sender_during_posts(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    start(f, P, NULL);
    static char ok[300][32];
    size_t n_ok = 0, attempts = 0;
    for (int k = 0; k < 300; k++) {
        char id[32];
        snprintf(id, sizeof id, "ori-k9-%03d", k);
        attempts++;
        long st = post_orientation(&f->a[D], id);
        if (st == 202)
            snprintf(ok[n_ok++], sizeof ok[0], "%s", id);
        if (k == 120) {
            td_adapter_kill9(&f->a[D]);
            assert_int_equal(td_adapter_start(&f->a[D]), 0);
        }
    }
    /* a POST cut by the kill may have been spooled without its answer: it is sent too,
     * but it was never promised, so only the 202s are counted */
    assert_true(n_ok >= 290);
    size_t got = td_outbox_wait(&f->a[P], n_ok, WAIT_MS);
    usleep(QUIET_MS * 1000);
    got = td_outbox_count(&f->a[P]);
    for (size_t i = 0; i < n_ok; i++)
        if (!td_outbox_has(&f->a[P], ok[i]))
            fail_msg("%s was answered 202 but never delivered", ok[i]);
    assert_true(got <= attempts);
    assert_true(got >= n_ok);
}

/* The broker's PublishAck is committed by itself within the runtime's lazy delay (it waits
 * for no POST): killed after that delay and restarted with the broker down, the sender's
 * spool still says accepted, so nothing is sent twice. */
static void
test_answer_marks_committed_without_new_posts(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    assert_int_equal(post_orientation(&f->a[D], "ori-lazy-1"), 202);
    int64_t end = tu_now_ms() + WAIT_MS;
    const char *st = NULL;
    json_t *doc = NULL;
    while (tu_now_ms() < end) {
        json_decref(doc);
        doc = lifecycle(&f->a[D], "ori-lazy-1");
        st = json_string_value(json_object_get(doc, "state"));
        if (st != NULL && strcmp(st, "accepted") == 0)
            break;
        usleep(20 * 1000);
    }
    assert_string_equal(st, "accepted");
    json_decref(doc);
    usleep(500 * 1000); /* well past RT_LAZY_MS, nothing else happening */
    td_adapter_kill9(&f->a[D]);
    assert_int_equal(td_broker_stop(&f->net), 0);
    assert_int_equal(td_adapter_start(&f->a[D]), 0);
    doc = lifecycle(&f->a[D], "ori-lazy-1");
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "state")), "accepted");
    json_decref(doc);
}

/* kill -9 of the recipient's adapter while deliveries flow: after its restart every
 * message is in its outbox once (the outbox names are deterministic, the handed-over
 * seqs are in its spool). */
static void
test_kill9_recipient_during_egress(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    start(f, P, NULL);
    static char ids[200][32];
    for (int k = 0; k < 200; k++)
        snprintf(ids[k], sizeof ids[0], "ori-eg-%03d", k);
    for (int k = 0; k < 200; k++) {
        assert_int_equal(post_orientation(&f->a[D], ids[k]), 202);
        if (k == 80)
            td_adapter_kill9(&f->a[P]);
    }
    usleep(300 * 1000);
    assert_int_equal(td_adapter_start(&f->a[P]), 0);
    td_outbox_wait(&f->a[P], 200, WAIT_MS);
    usleep(QUIET_MS * 1000);
    assert_each_once(&f->a[P], ids, 200);
}

/* A .jsonl file with a bad line: the good records go, the report says what and where;
 * the same content dropped again is a duplicate and sends nothing; a *.tmp is never
 * taken. */
static void
test_file_drop_reports_and_duplicates(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    start(f, P, NULL);
    json_t *lines[3];
    char *text[3];
    for (int k = 0; k < 3; k++) {
        td_sample_t s;
        char id[32];
        snprintf(id, sizeof id, "ori-file-%d", k);
        td_sample_orientation(&s, id);
        pt_error_t err;
        assert_int_equal(pjson_from_message(&s.env.base, &lines[k], &err), 0);
        text[k] = json_dumps(lines[k], JSON_COMPACT);
        json_decref(lines[k]);
    }
    char file[16384];
    snprintf(file, sizeof file, "%s\n{\"messageId\": \"bad\", \"nope\": 1}\n%s\n%s\n", text[0],
             text[1], text[2]);
    for (int k = 0; k < 3; k++)
        free(text[k]);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s/half.jsonl.tmp", f->a[D].inbox);
    assert_int_equal(tu_write_file(tmp, file, strlen(file)), 0);
    td_adapter_drop(&f->a[D], "batch.jsonl", file, strlen(file));
    assert_int_equal(td_outbox_wait(&f->a[P], 3, WAIT_MS), 3);
    char report[4400];
    snprintf(report, sizeof report, "%s/done/batch.jsonl.report.json", f->a[D].inbox);
    json_t *rep = json_load_file(report, 0, NULL);
    assert_non_null(rep);
    assert_int_equal(json_array_size(json_object_get(rep, "records")), 4);
    char *dump = json_dumps(rep, 0);
    assert_non_null(strstr(dump, "nope"));
    free(dump);
    json_decref(rep);
    td_adapter_drop(&f->a[D], "again.jsonl", file, strlen(file));
    snprintf(report, sizeof report, "%s/done/again.jsonl.report.json", f->a[D].inbox);
    for (int i = 0; i < 100 && access(report, F_OK) != 0; i++)
        usleep(100 * 1000);
    rep = json_load_file(report, 0, NULL);
    assert_non_null(rep);
    assert_string_equal(json_string_value(json_object_get(rep, "state")), "duplicate");
    json_decref(rep);
    usleep(QUIET_MS * 1000);
    assert_int_equal(td_outbox_count(&f->a[P]), 3);
    assert_int_equal(access(tmp, F_OK), 0); /* still there, never taken */
}

/* kill -9 of the adapter while it takes a large file: after the restart the file is
 * resumed from processing/, and every record reaches the recipient exactly once. */
static void
test_kill9_during_a_file(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    start(f, P, NULL);
    enum { N = 400 };
    size_t cap = N * 2048, len = 0;
    char *file = malloc(cap);
    static char ids[N][32];
    for (int k = 0; k < N; k++) {
        td_sample_t s;
        snprintf(ids[k], sizeof ids[0], "ori-big-%03d", k);
        td_sample_orientation(&s, ids[k]);
        json_t *doc = NULL;
        pt_error_t err;
        assert_int_equal(pjson_from_message(&s.env.base, &doc, &err), 0);
        char *t = json_dumps(doc, JSON_COMPACT);
        json_decref(doc);
        len += (size_t)snprintf(file + len, cap - len, "%s\n", t);
        free(t);
    }
    td_adapter_drop(&f->a[D], "big.jsonl", file, len);
    free(file);
    char claimed[4400];
    snprintf(claimed, sizeof claimed, "%s/processing/big.jsonl", f->a[D].inbox);
    bool during = false;
    for (int i = 0; i < 20000 && !during; i++) /* kill it while the file is being taken */
        if (!(during = access(claimed, F_OK) == 0))
            usleep(100);
    td_adapter_kill9(&f->a[D]);
    print_message("killed %s the file was in processing/\n", during ? "while" : "before");
    assert_true(during);
    assert_int_equal(td_adapter_start(&f->a[D]), 0);
    td_outbox_wait(&f->a[P], N, WAIT_MS);
    usleep(QUIET_MS * 1000);
    assert_each_once(&f->a[P], ids, N);
}

/* Pull: France Travail's system lists its inbox and acknowledges; only then does the
 * broker get the DeliverAck (the sender's lifecycle says acknowledged). */
static void
test_pull_inbox_then_ack(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    td_adapter_options_t o = {.pull = true};
    start(f, P, &o);
    assert_int_equal(post_orientation(&f->a[D], "ori-pull-1"), 202);
    char *body = NULL;
    json_t *doc = NULL;
    int64_t end = tu_now_ms() + WAIT_MS;
    while (tu_now_ms() < end) {
        free(body);
        body = NULL;
        json_decref(doc);
        assert_int_equal(
            td_adapter_http(&f->a[P], "GET", "/v1/inbox?after=0&limit=10", NULL, 0, &body), 200);
        doc = json_loads(body, 0, NULL);
        if (json_array_size(json_object_get(doc, "messages")) > 0)
            break;
        usleep(100 * 1000);
    }
    json_t *m = json_array_get(json_object_get(doc, "messages"), 0);
    assert_non_null(m);
    const char *seq = json_string_value(json_object_get(json_object_get(m, "delivery"), "seq"));
    assert_non_null(seq);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(m, "envelope"), "messageId")),
        "ori-pull-1");
    usleep(QUIET_MS * 1000); /* not acknowledged before the partner's ack */
    assert_false(wait_receipt_ms(&f->a[D], "ori-pull-1", "pole_emploi", "acknowledgedAt", 0));
    char path[64];
    snprintf(path, sizeof path, "/v1/inbox/%s/ack", seq);
    assert_int_equal(td_adapter_http(&f->a[P], "POST", path, "", 0, NULL), 204);
    assert_true(wait_receipt(&f->a[D], "ori-pull-1", "pole_emploi", "acknowledgedAt"));
    free(body);
    json_decref(doc);
    assert_int_equal(td_adapter_http(&f->a[P], "GET", "/v1/inbox?after=0", NULL, 0, &body), 200);
    doc = json_loads(body, 0, NULL);
    assert_int_equal(json_array_size(json_object_get(doc, "messages")), 0);
    json_decref(doc);
    free(body);
}

static char *
json_of(td_sample_t *s)
{
    json_t *doc = NULL;
    pt_error_t err;
    assert_int_equal(pjson_from_message(&s->env.base, &doc, &err), 0);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

/* Prefer: wait: 201 with the broker's seq, or 422 with its Nack (a type the Département
 * may not send). */
static void
test_prefer_wait_gives_the_broker_answer(void **state)
{
    fx_t *f = *state;
    start(f, D, NULL);
    td_sample_t s;
    td_sample_orientation(&s, "ori-wait-1");
    char *text = json_of(&s), *body = NULL;
    assert_int_equal(td_adapter_http_h(&f->a[D], "POST", "/v1/messages", text, strlen(text),
                                       "Prefer: wait=10", &body),
                     201);
    assert_non_null(strstr(body, "\"seq\""));
    free(text);
    free(body);
    td_sample_beneficiary_event(&s, "bev-wait-1");
    text = json_of(&s);
    assert_int_equal(td_adapter_http_h(&f->a[D], "POST", "/v1/messages", text, strlen(text),
                                       "Prefer: wait=10", &body),
                     422);
    assert_non_null(strstr(body, "NOT_ALLOWED"));
    free(text);
    free(body);
}

/* Runs the adapter binary with --check-config; returns its exit status, its stderr in
 * out (cap bytes). */
static int
check_config_run(td_adapter_t *a, char *out, size_t cap)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "%s/ptibus-adapter-%s --config %s --check-config 2>&1",
             PT_ADAPTER_BIN_DIR, a->binary, a->config);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* --check-config checks the keys and the secret files the daemon reads at start. */
static void
test_check_config(void **state)
{
    fx_t *f = *state;
    td_adapter_init(&f->a[D], &f->net, "departement", NULL);
    char out[2048], tokens[4400];
    assert_int_equal(check_config_run(&f->a[D], out, sizeof out), 0);
    assert_non_null(strstr(out, "configuration OK"));
    snprintf(tokens, sizeof tokens, "%s/tokens", f->a[D].dir);
    assert_int_equal(chmod(tokens, 0644), 0);
    assert_int_equal(check_config_run(&f->a[D], out, sizeof out), 3);
    assert_non_null(strstr(out, "chmod 600"));
    assert_int_equal(chmod(tokens, 0600), 0);
    td_adapter_options_t o = {.webhook_url = "http://127.0.0.1:9/hook"};
    td_adapter_init(&f->a[C], &f->net, "caf", &o);
    snprintf(tokens, sizeof tokens, "%s/webhook.secret", f->a[C].dir);
    assert_int_equal(unlink(tokens), 0);
    assert_int_equal(check_config_run(&f->a[C], out, sizeof out), 3);
    assert_non_null(strstr(out, "egress.webhook.secret_file"));
}

/* ---- a partner's webhook receiver, in the test process ---- */

typedef struct hook {
    struct MHD_Daemon *d;
    int port;
    int fail_first; /* answer 500 to the first n requests */
    int status_after;
    int requests, signed_ok;
} hook_t;

static enum MHD_Result
hook_answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
            const char *version, const char *data, size_t *size, void **ctx)
{
    hook_t *h = cls;
    (void)url, (void)method, (void)version, (void)data;
    if (*ctx == NULL) {
        *ctx = h;
        return MHD_YES;
    }
    if (*size > 0) {
        *size = 0;
        return MHD_YES;
    }
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Ptibus-Signature");
    h->signed_ok += sig != NULL && strstr(sig, "v1=") != NULL;
    int st = h->requests++ < h->fail_first ? 500 : h->status_after;
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)st, r);
    MHD_destroy_response(r);
    return rc;
}

static void
hook_start(hook_t *h)
{
    h->port = tu_free_port();
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)h->port, NULL, NULL,
                            hook_answer, h, MHD_OPTION_END);
    assert_non_null(h->d);
}

static void
webhook_case(fx_t *f, int fail_first, int status_after, const char *id, const char *field)
{
    hook_t h = {.fail_first = fail_first, .status_after = status_after};
    hook_start(&h);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", h.port);
    start(f, D, NULL);
    start(f, P, NULL);
    td_adapter_options_t o = {.webhook_url = url};
    start(f, C, &o);
    assert_int_equal(post_orientation(&f->a[D], id), 202);
    assert_true(wait_receipt(&f->a[D], id, "caf", field));
    assert_true(h.requests >= fail_first + 1);
    assert_int_equal(h.signed_ok, h.requests);
    usleep(QUIET_MS * 1000);
    int settled = h.requests;
    usleep(QUIET_MS * 1000);
    assert_int_equal(h.requests, settled); /* acknowledged: no more attempts */
    MHD_stop_daemon(h.d);
}

/* 500 twice, then 200: retried with backoff, acknowledged only after the 2xx. */
static void
test_webhook_retried_until_2xx(void **state)
{
    webhook_case(*state, 2, 200, "ori-hook-ok", "acknowledgedAt");
}

/* A 400 is final: the delivery is dead-lettered and the sender gets the receipt. */
static void
test_webhook_final_4xx_dead_letters(void **state)
{
    webhook_case(*state, 0, 400, "ori-hook-400", "deadLetteredAt");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_post_reaches_the_routed_outboxes_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_broker_down_then_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_sender_during_posts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_marks_committed_without_new_posts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kill9_recipient_during_egress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_drop_reports_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_during_a_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_inbox_then_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefer_wait_gives_the_broker_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_retried_until_2xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_final_4xx_dead_letters, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
