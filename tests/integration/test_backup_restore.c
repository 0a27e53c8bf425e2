/* Backup while publishing, then restore (docs/operations.md, "Back up" and "Restore"):
 * a publisher thread sends without a pause to a real ptibusd; `ptibusctl backup --to DIR`
 * runs meanwhile; the broker is stopped; the backup is restored the documented way into
 * a new journal folder (cp -a, 0700 kept) and a broker is started on it: `ptibusctl
 * journal verify` passes, every message acknowledged before the backup began is
 * RECEIVED in the restored journal, and the restored broker accepts new messages and
 * still verifies. The test of the test: the same look-up in a journal that never had
 * the messages finds them all missing. */
#include <pthread.h>
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

#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define MAX_MSGS 200000

typedef struct pub {
    td_net_t *net;
    pthread_mutex_t mu;
    char (*acked)[32];
    size_t n_acked;
    volatile int stop;
    int errors;
} pub_t;

static void *
publisher(void *arg)
{
    pub_t *p = arg;
    client_t *c = NULL;
    if (td_client_session(p->net, "region", 0, &c) != 0) {
        p->errors++;
        return NULL;
    }
    for (size_t i = 0; !p->stop && i < MAX_MSGS; i++) {
        char id[32];
        snprintf(id, sizeof id, "bk-%06zu", i);
        td_sample_t s;
        td_sample_training_offer(&s, id);
        client_result_t r;
        pt_error_t err;
        if (client_publish(c, &s.env, 5000, &r, &err) != 0 || r.nack_code != 0) {
            p->errors++;
            continue;
        }
        pthread_mutex_lock(&p->mu);
        snprintf(p->acked[p->n_acked++], sizeof p->acked[0], "%s", id);
        pthread_mutex_unlock(&p->mu);
    }
    client_close(&c);
    return NULL;
}

static int
sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int
verify(td_net_t *n, const char *journal)
{
    return sh("'%s' journal verify --journal '%s' --pubkey '%s/keys/journal.sign.pub' "
              ">'%s/verify.out' 2>&1",
              PT_PTIBUSCTL_PATH, journal, n->dir, n->dir);
}

/* How many of ids[0..n) have no RECEIVED record in the journal at dir. */
static size_t
missing(const char *dir, char (*ids)[32], size_t n)
{
    journal_options_t o = {.dir = dir, .read_only = true};
    journal_t *j = NULL;
    pt_error_t err;
    if (journal_open(&o, &j, &err) != 0)
        fail_msg("journal %s: %s", dir, err.msg);
    size_t lost = 0;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t *seqs = NULL;
        size_t k = 0, got = 0;
        assert_int_equal(journal_find_message(j, ids[i], &seqs, &k, &err), 0);
        for (size_t s = 0; s < k; s++)
            got += journal_get(j, seqs[s], &v, &buf, &cap, &err) == 0 && v.kind == PT_REC_RECEIVED;
        lost += got == 0;
        free(seqs);
    }
    free(buf);
    journal_close(&j);
    return lost;
}

static void
test_backup_while_publishing_then_restore(void **state)
{
    (void)state;
    td_net_t n;
    td_net_options_t o = {.extra_limits = "  partner_rate: 0\n  partner_bytes_per_hour: 0\n"};
    td_net_init(&n, "backup-restore", &o);
    assert_int_equal(td_broker_start(&n), 0);
    pub_t p = {.net = &n};
    pthread_mutex_init(&p.mu, NULL);
    p.acked = calloc(MAX_MSGS, sizeof *p.acked);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, publisher, &p), 0);
    usleep(1500 * 1000);
    pthread_mutex_lock(&p.mu);
    size_t before = p.n_acked; /* acknowledged before the backup began */
    pthread_mutex_unlock(&p.mu);
    char backup[4300], restored[4100];
    snprintf(backup, sizeof backup, "%s/backup", n.dir);
    assert_int_equal(sh("'%s' backup --to '%s' --journal '%s' --pubkey '%s/keys/journal.sign.pub' "
                        ">'%s/backup.out' 2>&1",
                        PT_PTIBUSCTL_PATH, backup, n.journal_dir, n.dir, n.dir),
                     0);
    pthread_mutex_lock(&p.mu);
    size_t during = p.n_acked - before;
    pthread_mutex_unlock(&p.mu);
    usleep(500 * 1000); /* publishing goes on after the backup */
    p.stop = 1;
    pthread_join(t, NULL);
    assert_int_equal(td_broker_stop(&n), 0);
    print_message("acked %zu before the backup, %zu during it, %zu in all; errors %d\n", before,
                  during, p.n_acked, p.errors);
    assert_true(before > 100);

    /* The restore of docs/operations.md: a new folder, the backup's files, mode kept. */
    snprintf(restored, sizeof restored, "%.4000s/journal-restored", n.dir);
    assert_int_equal(sh("cp -a '%s' '%s'", backup, restored), 0);
    struct stat st;
    assert_int_equal(stat(restored, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    snprintf(n.journal_dir, sizeof n.journal_dir, "%s", restored);
    td_net_configure(&n, &o);
    assert_int_equal(td_broker_start(&n), 0);
    assert_int_equal(verify(&n, restored), 0);
    assert_int_equal(missing(restored, p.acked, before), 0);

    /* The restored broker goes on: a new message, and the chain still verifies. */
    client_t *c = NULL;
    assert_int_equal(td_client_session(&n, "region", 0, &c), 0);
    td_sample_t s;
    td_sample_training_offer(&s, "after-restore");
    client_result_t r;
    pt_error_t err;
    assert_int_equal(client_publish(c, &s.env, 5000, &r, &err), 0);
    assert_int_equal(r.nack_code, 0);
    assert_false(r.duplicate);
    client_close(&c);
    assert_int_equal(td_broker_stop(&n), 0);
    assert_int_equal(verify(&n, restored), 0);

    /* The test of the test: the check finds what a journal lacks. */
    char empty[4100];
    snprintf(empty, sizeof empty, "%.4000s/journal-empty", n.dir);
    snprintf(n.journal_dir, sizeof n.journal_dir, "%s", empty);
    td_net_configure(&n, &o);
    assert_int_equal(td_broker_start(&n), 0);
    assert_int_equal(td_broker_stop(&n), 0);
    assert_int_equal(missing(empty, p.acked, before), before);
    free(p.acked);
    pthread_mutex_destroy(&p.mu);
    td_net_fini(&n);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backup_while_publishing_then_restore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
