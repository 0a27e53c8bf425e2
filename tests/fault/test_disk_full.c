/* Fault injection: the disk under the journal fills up (ENOSPC at commit). The broker
 * must refuse with a retryable JOURNAL_FULL Nack, keep nothing half-written, lose no
 * acknowledged message, say so loudly in its log, and accept again — without a
 * restart — once space is freed. The disk is a size-limited tmpfs; without the right
 * to mount one the test is skipped (exit 77), never passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "daemon.h"
#include "journal.h"
#include "keys.h"
#include "samples.h"
#include "testutil.h"

#define TIMEOUT_MS 5000

static bool skipped;

typedef struct fx {
    td_net_t net;
    char disk[4000];
    client_t *c;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_init(&f->net, "diskfull", NULL);
    snprintf(f->disk, sizeof f->disk, "%.3900s/disk", f->net.dir);
    mkdir(f->disk, 0700);
    if (mount("tmpfs", f->disk, "tmpfs", 0, "size=640k,mode=0700") != 0) {
        perror("mount tmpfs (skipping: needs root)");
        skipped = true;
        *state = f;
        return 0;
    }
    snprintf(f->net.journal_dir, sizeof f->net.journal_dir, "%s/journal", f->disk);
    td_net_configure(&f->net, NULL);
    if (td_broker_start(&f->net) != 0)
        return -1;
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    client_close(&f->c);
    td_broker_kill9(&f->net);
    if (!skipped)
        umount2(f->disk, MNT_DETACH);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static client_result_t
publish(client_t *c, const char *id, const char *big)
{
    td_sample_t s;
    td_sample_training_offer(&s, id);
    s.offer.objective = (char *)big;
    client_result_t r;
    pt_error_t err;
    if (client_publish(c, &s.env, TIMEOUT_MS, &r, &err) != 0)
        fail_msg("publish %s: %s", id, err.msg);
    return r;
}

static void
test_disk_full_then_space_freed(void **state)
{
    fx_t *f = *state;
    if (skipped)
        skip();
    assert_int_equal(td_client_session(&f->net, "region", 0, &f->c), 0);
    static char big[3001];
    memset(big, 'x', sizeof big - 1);
    uint64_t acked[1000];
    size_t n_acked = 0;
    client_result_t r = {0};
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "df-%04d", i);
        r = publish(f->c, id, big);
        if (r.nack_code != 0)
            break;
        acked[n_acked++] = r.seq;
    }
    assert_true(n_acked > 10);
    assert_int_equal(r.nack_code, PTIBUS__V1__NACK_CODE__NACK_CODE_JOURNAL_FULL);
    assert_true(r.retryable);
    assert_true(td_log_contains(&f->net, "JOURNAL FULL"));

    /* Space is freed (the tmpfs grows): the same broker accepts again. */
    assert_int_equal(mount("tmpfs", f->disk, "tmpfs", MS_REMOUNT, "size=64m,mode=0700"), 0);
    r = publish(f->c, "df-after", big);
    for (int i = 0; i < 20 && r.nack_code != 0; i++) /* the map grows on the next batch */
        r = publish(f->c, "df-after", big);
    assert_int_equal(r.nack_code, 0);
    assert_int_equal(r.seq, acked[n_acked - 1] + 1);

    assert_int_equal(td_broker_stop(&f->net), 0);
    char path[4300];
    uint8_t pk[32];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/journal.sign.pub", f->net.dir);
    assert_int_equal(keys_read(path, pk, 32, false, &err), 0);
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    journal_t *j;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    uint64_t bad;
    if (journal_verify(j, 1, 0, pk, &bad, &err) != 0)
        fail_msg("chain broken at %llu: %s", (unsigned long long)bad, err.msg);
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n_acked; i++) {
        assert_int_equal(journal_get(j, acked[i], &v, &buf, &cap, &err), 0);
        assert_int_equal(v.kind, PT_REC_RECEIVED);
    }
    assert_int_equal(journal_last_seq(j), acked[n_acked - 1] + 1);
    free(buf);
    journal_close(&j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_disk_full_then_space_freed, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    return skipped && rc == 0 ? 77 : rc;
}
