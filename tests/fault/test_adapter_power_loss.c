/* Power loss under an adapter's spool: the Département's adapter runs with the power-cut
 * shim (powercut_shim.c) over its spool folder while the broker is down, so that its
 * spool alone holds every promise. Messages are POSTed until the power is cut at a
 * random write; the adapter restarts (with the shim again) on the same spool, several
 * times. Then the broker comes back and the adapter runs without the shim: every message
 * answered 202 must reach France Travail's outbox, exactly once. The test of the test: the
 * same with the spool's fsync off (PTIBUS_TEST_SPOOL_NOSYNC) must report lost messages.
 * PT_POWERCUT_CUTS (default 5) sets the number of cuts, PT_POWERCUT_SEED the seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "adapter.h"
#include "daemon.h"
#include "samples.h"
#include "testutil.h"

#define CUT_MIN 60 /* writes before a cut, drawn in [CUT_MIN, CUT_MAX] */
#define CUT_MAX 1500
#define MAX_MSGS 20000
#define WAIT_MS 30000

typedef struct run {
    td_net_t net;
    td_adapter_t d, p;
    unsigned seed;
    const char *env[5];
    char preload[4200], dir_env[4400], after_env[64];
    bool nosync;
    char (*ok)[32]; /* ids answered 202 */
    size_t n_ok, next;
    int cuts;
} run_t;

static int
env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v ? atoi(v) : dflt;
}

static void
arm_shim(run_t *r)
{
    long after = CUT_MIN + rand_r(&r->seed) % (CUT_MAX - CUT_MIN + 1);
    snprintf(r->after_env, sizeof r->after_env, "PT_POWERCUT_AFTER=%ld", after);
    snprintf(r->preload, sizeof r->preload, "LD_PRELOAD=%s", PT_POWERCUT_SHIM_PATH);
    snprintf(r->dir_env, sizeof r->dir_env, "PT_POWERCUT_DIR=%s/spool", r->d.dir);
    size_t i = 0;
    r->env[i++] = r->preload;
    r->env[i++] = r->dir_env;
    r->env[i++] = r->after_env;
    if (r->nosync)
        r->env[i++] = "PTIBUS_TEST_SPOOL_NOSYNC=1";
    r->env[i] = NULL;
    r->d.env = r->env;
}

static long
post(run_t *r, const char *id)
{
    td_sample_t s;
    td_sample_orientation(&s, id);
    return td_adapter_post_env(&r->d, &s.env, NULL);
}

/* POSTs until the power is cut (the adapter dies by SIGKILL from the shim). */
static void
load_until_cut(run_t *r)
{
    int64_t deadline = tu_now_ms() + WAIT_MS;
    int status = 0;
    while (!td_adapter_exited(&r->d, &status)) {
        if (tu_now_ms() > deadline || r->next >= MAX_MSGS)
            fail_msg("no power cut within %d ms", WAIT_MS);
        char id[32];
        snprintf(id, sizeof id, "pl-%05zu", r->next++);
        if (post(r, id) == 202)
            snprintf(r->ok[r->n_ok++], sizeof r->ok[0], "%s", id);
    }
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the adapter ended otherwise than by a power cut (status %d)", status);
    r->cuts++;
}

/* Starts the adapter (with the shim when armed). A start may fail while the shim's
 * undo process still holds the dead adapter's spool lock, or when the cut comes during
 * the start itself: try again. */
static void
start_again(run_t *r, bool shim)
{
    for (int i = 0; i < 50; i++) {
        if (shim)
            arm_shim(r);
        else
            r->d.env = NULL;
        if (td_adapter_start(&r->d) == 0)
            return;
        usleep(100 * 1000);
    }
    fail_msg("the adapter did not start again");
}

/* Cuts the power `cuts` times, then runs without the shim with the broker up; returns
 * the number of 202s that never reached the recipient. */
static size_t
run_cuts(run_t *r, int cuts)
{
    assert_int_equal(td_broker_stop(&r->net), 0);
    while (r->cuts < cuts) {
        start_again(r, true);
        load_until_cut(r);
    }
    assert_int_equal(td_broker_start(&r->net), 0);
    start_again(r, false);
    td_outbox_wait(&r->p, r->n_ok, WAIT_MS);
    usleep(800 * 1000);
    size_t lost = 0;
    for (size_t i = 0; i < r->n_ok; i++)
        lost += !td_outbox_has(&r->p, r->ok[i]);
    size_t files = td_outbox_count(&r->p);
    print_message("cuts %d, posted %zu, answered 202 %zu, delivered %zu, lost %zu\n", r->cuts,
                  r->next, r->n_ok, files, lost);
    /* no duplicate hand-over: one file per message id, ids from those posted */
    assert_true(files <= r->next);
    assert_true(files + lost >= r->n_ok);
    return lost;
}

static int
setup(void **state)
{
    run_t *r = calloc(1, sizeof *r);
    r->ok = calloc(MAX_MSGS, sizeof *r->ok);
    r->seed = (unsigned)env_int("PT_POWERCUT_SEED", (int)(time(NULL) & 0x7fffffff));
    print_message("PT_POWERCUT_SEED=%u\n", r->seed);
    td_net_options_t o = {.ack_timeout = "2s", .max_attempts = "20"};
    td_net_init(&r->net, "adapter-power", &o);
    assert_int_equal(td_broker_start(&r->net), 0);
    td_adapter_init(&r->d, &r->net, "departement", NULL);
    td_adapter_init(&r->p, &r->net, "pole_emploi", NULL);
    assert_int_equal(td_adapter_start(&r->p), 0);
    *state = r;
    return 0;
}

static int
teardown(void **state)
{
    run_t *r = *state;
    td_adapter_kill9(&r->d);
    td_adapter_kill9(&r->p);
    td_net_fini(&r->net);
    free(r->ok);
    free(r);
    return 0;
}

static void
test_power_loss_under_the_spool_loses_nothing_answered(void **state)
{
    run_t *r = *state;
    assert_int_equal(run_cuts(r, env_int("PT_POWERCUT_CUTS", 5)), 0);
}

/* The test of the test: without the spool's fsync, a power cut loses messages that were
 * answered 202 (the broker is down, so the spool was their only copy). */
static void
test_power_loss_unsafe_spool_loses_answered(void **state)
{
    run_t *r = *state;
    r->nosync = true;
    assert_true(run_cuts(r, env_int("PT_POWERCUT_CUTS", 5)) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_loss_under_the_spool_loses_nothing_answered,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_unsafe_spool_loses_answered, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
