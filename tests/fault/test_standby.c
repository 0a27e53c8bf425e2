/* High availability, as far as one machine can test it (docs/high-availability.md):
 * - a standby ptibusd (journal.wait_for_lock) on the active one's journal folder waits
 *   on the journal's lock: it says so once (log and sd_notify STATUS), is not READY,
 *   binds nothing, and SIGTERM stops it;
 * - failover under load: the Département's adapter lists both brokers' endpoints and
 *   POSTs without a pause; the active broker is killed (kill -9); the standby takes the
 *   lock and starts, the adapters fail over to its endpoint, and every message answered
 *   202 is RECEIVED exactly once in the journal and handed over exactly once into France
 *   Travail's outbox; the chain verifies (the real ptibusctl journal verify).
 * The test of the test: without wait_for_lock the second broker is refused at start, and
 * the messages POSTed after the kill never arrive. With Pacemaker the standby runs on
 * the other node behind the same address; two endpoints in the adapter are the local
 * equivalent (the standby binds only once it holds the lock, so one port would do too:
 * test_standby_same_port). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapter.h"
#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define MAX_MSGS 4000
#define KILL_AFTER 150     /* 202s before the active broker is killed */
#define AFTER_KILL_MS 2500 /* POSTing goes on this long after the kill */

typedef struct ha {
    td_net_t active, standby;
    td_adapter_t d, p; /* sender (departement), recipient (pole_emploi) */
    char endpoints[256];
    char (*ok)[32]; /* ids answered 202 */
    size_t n_ok, next;
} ha_t;

typedef struct outcome {
    size_t lost, journal_dups, outbox_dups;
    int verify_rc;
} outcome_t;

static const td_net_options_t net_opts = {.ack_timeout = "2s", .max_attempts = "20"};

/* The active broker started, the standby spawned on its journal with its keys. */
static void
start_pair(ha_t *h, bool standby_option, bool same_port)
{
    td_net_init(&h->active, "ha-active", &net_opts);
    assert_int_equal(td_broker_start(&h->active), 0);
    td_net_init(&h->standby, "ha-standby", NULL);
    snprintf(h->standby.journal_dir, sizeof h->standby.journal_dir, "%s", h->active.journal_dir);
    if (same_port) {
        h->standby.port = h->active.port;
        snprintf(h->standby.endpoint, sizeof h->standby.endpoint, "%s", h->active.endpoint);
    }
    td_net_options_t so = net_opts;
    so.extra_journal = standby_option ? "  wait_for_lock: true\n" : NULL;
    td_net_share_keys(&h->standby, &h->active, &so);
    assert_int_equal(td_broker_spawn(&h->standby), 0);
    snprintf(h->endpoints, sizeof h->endpoints, "[\"%s\", \"%s\"]", h->active.endpoint,
             h->standby.endpoint);
}

/* A failed assertion skips the rest of a test: the teardown kills what runs. */
static int
setup(void **state)
{
    *state = calloc(1, sizeof(ha_t));
    return *state == NULL;
}

static int
teardown(void **state)
{
    ha_t *h = *state;
    if (h->d.pid > 0)
        td_adapter_kill9(&h->d);
    if (h->p.pid > 0)
        td_adapter_kill9(&h->p);
    if (h->standby.dir != NULL)
        td_net_fini(&h->standby);
    if (h->active.dir != NULL)
        td_net_fini(&h->active);
    free(h->ok);
    free(h);
    return 0;
}

static void
start_adapters(ha_t *h)
{
    td_adapter_options_t o = {.broker_endpoints = h->endpoints,
                              .extra_broker = "  failover_after: 1s\n"};
    td_adapter_init(&h->p, &h->active, "pole_emploi", &o);
    td_adapter_init(&h->d, &h->active, "departement", &o);
    assert_int_equal(td_adapter_start(&h->p), 0);
    assert_int_equal(td_adapter_start(&h->d), 0);
    assert_true(td_adapter_wait_ready(&h->d, 10000));
    assert_true(td_adapter_wait_ready(&h->p, 10000));
}

static void
post_one(ha_t *h)
{
    char id[32];
    snprintf(id, sizeof id, "ha-%05zu", h->next++);
    td_sample_t s;
    td_sample_orientation(&s, id);
    if (td_adapter_post_env(&h->d, &s.env, NULL) == 202)
        snprintf(h->ok[h->n_ok++], sizeof h->ok[0], "%s", id);
}

/* POSTs continuously; kills the active broker after KILL_AFTER 202s and goes on for
 * AFTER_KILL_MS. */
static void
load_and_kill(ha_t *h)
{
    h->ok = calloc(MAX_MSGS, sizeof *h->ok);
    while (h->n_ok < KILL_AFTER && h->next < MAX_MSGS)
        post_one(h);
    td_broker_kill9(&h->active);
    int64_t until = tu_now_ms() + AFTER_KILL_MS;
    while (tu_now_ms() < until && h->next < MAX_MSGS) {
        post_one(h);
        usleep(2000);
    }
}

static int
received_count(journal_t *j, const char *id)
{
    uint64_t *seqs = NULL;
    size_t n = 0;
    pt_error_t err;
    assert_int_equal(journal_find_message(j, id, &seqs, &n, &err), 0);
    int count = 0;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        if (journal_get(j, seqs[i], &v, &buf, &cap, &err) == 0 && v.kind == PT_REC_RECEIVED)
            count++;
    free(buf);
    free(seqs);
    return count;
}

static int
verify_chain(ha_t *h)
{
    char cmd[9000], out[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' journal verify --journal '%s' --pubkey '%s/keys/journal.sign.pub' 2>&1",
             PT_PTIBUSCTL_PATH, h->active.journal_dir, h->active.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0)
        print_message("journal verify failed:\n%s", out);
    return rc;
}

/* The outbox against the 202s, then the journal (the standby stopped first). */
static outcome_t
check(ha_t *h, int wait_ms)
{
    outcome_t r = {0};
    td_outbox_wait(&h->p, h->n_ok, wait_ms);
    usleep(800 * 1000); /* a duplicate would come now */
    size_t found = 0;
    for (size_t i = 0; i < h->n_ok; i++)
        found += td_outbox_has(&h->p, h->ok[i]);
    size_t files = td_outbox_count(&h->p);
    r.outbox_dups = files > found ? files - found : 0;
    if (h->standby.pid > 0)
        assert_int_equal(td_broker_stop(&h->standby), 0);
    journal_options_t o = {.dir = h->active.journal_dir, .read_only = true};
    journal_t *j = NULL;
    pt_error_t err;
    if (journal_open(&o, &j, &err) != 0)
        fail_msg("journal: %s", err.msg);
    for (size_t i = 0; i < h->n_ok; i++) {
        int n = received_count(j, h->ok[i]);
        r.lost += n == 0;
        r.journal_dups += n > 1;
    }
    journal_close(&j);
    r.verify_rc = verify_chain(h);
    print_message("posted %zu, 202 %zu, outbox %zu files; lost %zu, journal duplicates %zu, "
                  "outbox duplicates %zu, verify %d\n",
                  h->next, h->n_ok, files, r.lost, r.journal_dups, r.outbox_dups, r.verify_rc);
    return r;
}

static bool
adapter_log_has(const td_adapter_t *a, const char *s)
{
    uint8_t *text = NULL;
    size_t len = 0;
    if (tu_read_file(a->log, &text, &len) != 0)
        return false;
    char *z = realloc(text, len + 1);
    z[len] = '\0';
    bool found = strstr(z, s) != NULL;
    free(z);
    return found;
}

static void
test_standby_waits_on_the_lock(void **state)
{
    ha_t *h = *state;
    start_pair(h, true, false);
    assert_int_equal(td_broker_wait_notify(&h->standby, "STATUS=standby", 5000), 0);
    assert_int_not_equal(td_broker_wait_notify(&h->standby, "READY=1", 1500), 0);
    assert_true(h->standby.pid > 0); /* still waiting, not refused */
    char expect[96];
    snprintf(expect, sizeof expect, "waiting for the journal lock held by pid %d",
             (int)h->active.pid);
    assert_int_equal(td_log_count(&h->standby, expect), 1);
    char *text = NULL;
    assert_int_not_equal(td_metrics_scrape(&h->standby, &text), 200); /* binds nothing */
    free(text);
    assert_int_equal(td_broker_stop(&h->standby), 0); /* SIGTERM stops a waiting standby */
    assert_true(td_log_contains(&h->standby, "standby stopped by a signal"));
}

static void
test_failover_loses_nothing_and_duplicates_nothing(void **state)
{
    ha_t *h = *state;
    start_pair(h, true, false);
    assert_int_equal(td_broker_wait_notify(&h->standby, "STATUS=standby", 5000), 0);
    start_adapters(h);
    load_and_kill(h);
    assert_int_equal(td_broker_wait_notify(&h->standby, "READY=1", 10000), 0);
    assert_true(td_log_contains(&h->standby, "journal.takeover"));
    outcome_t r = check(h, 30000);
    assert_true(h->n_ok > KILL_AFTER); /* 202s after the kill too */
    assert_true(adapter_log_has(&h->d, "uplink.failover"));
    assert_true(adapter_log_has(&h->p, "uplink.failover"));
    char both[300]; /* the start line names every endpoint, in failover order */
    snprintf(both, sizeof both, "broker %s, then %s", h->active.endpoint, h->standby.endpoint);
    assert_true(adapter_log_has(&h->d, both));
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.journal_dups, 0);
    assert_int_equal(r.outbox_dups, 0);
    assert_int_equal(r.verify_rc, 0);
}

/* Pacemaker's model: the standby behind the same address (it binds once it holds the
 * lock), the adapters with one endpoint. */
static void
test_standby_same_port(void **state)
{
    ha_t *h = *state;
    start_pair(h, true, true);
    assert_int_equal(td_broker_wait_notify(&h->standby, "STATUS=standby", 5000), 0);
    snprintf(h->endpoints, sizeof h->endpoints, "[\"%s\"]", h->active.endpoint);
    start_adapters(h);
    load_and_kill(h);
    assert_int_equal(td_broker_wait_notify(&h->standby, "READY=1", 10000), 0);
    outcome_t r = check(h, 30000);
    assert_int_equal(r.lost, 0);
    assert_int_equal(r.journal_dups, 0);
    assert_int_equal(r.outbox_dups, 0);
    assert_int_equal(r.verify_rc, 0);
}

/* The test of the test: the same without wait_for_lock. */
static void
test_without_standby_option_messages_are_lost(void **state)
{
    ha_t *h = *state;
    start_pair(h, false, false);
    assert_int_not_equal(td_broker_wait_notify(&h->standby, "READY=1", 3000), 0);
    assert_int_equal(h->standby.pid, 0); /* refused at start */
    assert_true(td_log_contains(&h->standby, "in use by pid"));
    start_adapters(h);
    load_and_kill(h);
    outcome_t r = check(h, 4000);
    assert_true(r.lost > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_standby_waits_on_the_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failover_loses_nothing_and_duplicates_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_standby_same_port, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_standby_option_messages_are_lost, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
