/* Fault: the broker is killed with SIGKILL at random moments under load and restarted on
 * the same journal (issue 15, "process crash under load"). Six publishing connections
 * (windows of 1, 8 and 64) and three consuming sessions run throughout. Afterwards:
 * every PublishAck'ed message is in the journal exactly once as RECEIVED, every one of
 * them was acknowledged by each of its recipients at least once, and the chain
 * verifies. Prints published, acked, lost, duplicates, redeliveries, restarts and the
 * restart times. PT_CRASH_KILLS sets the number of kills (default 20; tests/run.sh
 * --soak runs 200). */
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
#include <sodium.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define N_PUB 6
#define N_CON 3
#define PER_PUB 400 /* messages per publisher */
#define RESEND_AFTER_MS 1500
#define DRAIN_MS 60000

typedef struct msg {
    uint64_t seq;   /* 0 until acknowledged */
    int64_t sent;   /* last send, ms; 0 = never */
    int got[N_CON]; /* how many times each consumer received it */
} msg_t;

typedef struct pub {
    client_t *c;
    const char *partner, *prefix;
    int window, next;
    msg_t m[PER_PUB];
    size_t acked, duplicates;
} pub_t;

typedef struct con {
    client_t *c;
    const char *partner;
    size_t received, redeliveries;
} con_t;

typedef struct fx {
    td_net_t net;
    pub_t pub[N_PUB];
    con_t con[N_CON];
    int64_t restart_ms[1024];
    int restarts;
    int64_t start, phase_ms; /* publishing is spread over the kill phase */
} fx_t;

static const char *const con_names[N_CON] = {"departement", "pole_emploi", "caf"};

/* Orientations from the Département go to France Travail and the CAF; beneficiary
 * events from the CAF go to the Département. */
static void
make(const pub_t *p, int i, td_sample_t *s)
{
    char id[48];
    snprintf(id, sizeof id, "%s-%05d", p->prefix, i);
    if (strcmp(p->partner, "departement") == 0)
        td_sample_orientation(s, id);
    else
        td_sample_beneficiary_event(s, id);
}

static bool
is_recipient(const pub_t *p, int k)
{
    return strcmp(p->partner, "departement") == 0 ? k != 0 : k == 0;
}

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    td_net_options_t o = {.extra_limits = "  partner_handshakes_per_minute: 100000\n"};
    td_net_init(&f->net, "crashloop", &o);
    if (td_broker_start(&f->net) != 0)
        return -1;
    static const int windows[N_PUB] = {1, 8, 64, 1, 8, 64};
    static const char *const prefixes[N_PUB] = {"d1", "d8", "d64", "c1", "c8", "c64"};
    for (int i = 0; i < N_PUB; i++) {
        pub_t *p = &f->pub[i];
        p->partner = i < 3 ? "departement" : "caf";
        p->prefix = prefixes[i];
        p->window = windows[i];
        assert_int_equal(td_client_open(&f->net, p->partner, true, &p->c), 0);
    }
    for (int k = 0; k < N_CON; k++) {
        f->con[k].partner = con_names[k];
        assert_int_equal(td_client_session(&f->net, con_names[k], 64, &f->con[k].c), 0);
    }
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    for (int i = 0; i < N_PUB; i++)
        client_close(&f->pub[i].c);
    for (int k = 0; k < N_CON; k++)
        client_close(&f->con[k].c);
    td_net_fini(&f->net);
    free(f);
    return 0;
}

static int
msg_index(const pub_t *p, const char *id)
{
    size_t n = strlen(p->prefix);
    if (strncmp(id, p->prefix, n) != 0 || id[n] != '-')
        return -1;
    int i = atoi(id + n + 1);
    return i >= 0 && i < PER_PUB ? i : -1;
}

static void
pub_send(pub_t *p, int i, int64_t now)
{
    td_sample_t s;
    pt_error_t err;
    make(p, i, &s);
    if (client_publish_async(p->c, &s.env, &err) == 0)
        p->m[i].sent = now;
}

/* Tops up the window (up to limit messages so far), resends what waited too long (a
 * kill swallowed it), reads acks. */
static void
pub_step(pub_t *p, int64_t now, int limit)
{
    int in_flight = 0;
    for (int i = 0; i < p->next; i++) {
        if (p->m[i].seq != 0)
            continue;
        in_flight++;
        if (now - p->m[i].sent >= RESEND_AFTER_MS)
            pub_send(p, i, now);
    }
    while (p->next < limit && in_flight < p->window) {
        pub_send(p, p->next++, now);
        in_flight++;
    }
    Ptibus__V1__Frame *fr;
    pt_error_t err;
    while (client_recv(p->c, 0, &fr, &err) == 0) {
        client_result_t r;
        const char *id;
        int i;
        if (client_result_from_frame(fr, &r, &id) && (i = msg_index(p, id)) >= 0) {
            if (r.nack_code != 0 && !r.retryable)
                fail_msg("%s refused for good: %s", id, r.reason);
            if (r.nack_code == 0 && p->m[i].seq == 0) {
                p->m[i].seq = r.seq;
                p->acked++;
            } else if (r.nack_code == 0 && p->m[i].seq != r.seq) {
                fail_msg("%s acknowledged as seq %llu and %llu", id,
                         (unsigned long long)p->m[i].seq, (unsigned long long)r.seq);
            }
            p->duplicates += r.nack_code == 0 && r.duplicate;
        }
        codec_free((ProtobufCMessage **)&fr);
    }
}

static void
con_step(fx_t *f, int k)
{
    con_t *c = &f->con[k];
    Ptibus__V1__Frame *fr;
    pt_error_t err;
    while (client_recv(c->c, 0, &fr, &err) == 0) {
        if (fr->kind_case == PTIBUS__V1__FRAME__KIND_DELIVER) {
            Ptibus__V1__Deliver *d = fr->deliver;
            c->received++;
            c->redeliveries += d->redelivery;
            for (int i = 0; i < N_PUB; i++) {
                int m = msg_index(&f->pub[i], d->message_id);
                if (m >= 0 && strcmp(d->sender, f->pub[i].partner) == 0)
                    f->pub[i].m[m].got[k]++;
            }
            client_deliver_ack(c->c, d->seq, true, NULL, &err);
        }
        codec_free((ProtobufCMessage **)&fr);
    }
}

static void
run_for(fx_t *f, int ms)
{
    int64_t end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        int64_t now = tu_now_ms();
        int64_t limit = 1 + PER_PUB * (now - f->start) / f->phase_ms;
        for (int i = 0; i < N_PUB; i++)
            pub_step(&f->pub[i], now, limit < PER_PUB ? (int)limit : PER_PUB);
        for (int k = 0; k < N_CON; k++)
            con_step(f, k);
        usleep(1000);
    }
}

/* Whether every message was acknowledged and received by each of its recipients. */
static bool
settled(const fx_t *f)
{
    for (int i = 0; i < N_PUB; i++)
        for (int m = 0; m < PER_PUB; m++) {
            if (f->pub[i].m[m].seq == 0)
                return false;
            for (int k = 0; k < N_CON; k++)
                if (is_recipient(&f->pub[i], k) && f->pub[i].m[m].got[k] == 0)
                    return false;
        }
    return true;
}

static void
kill_and_restart(fx_t *f)
{
    td_broker_kill9(&f->net);
    int64_t t0 = tu_now_ms();
    assert_int_equal(td_broker_start(&f->net), 0);
    f->restart_ms[f->restarts++] = tu_now_ms() - t0;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every acknowledged message: exactly one RECEIVED record, at its acknowledged seq. */
static size_t
count_lost(fx_t *f)
{
    journal_t *j;
    journal_options_t o = {.dir = f->net.journal_dir, .read_only = true};
    pt_error_t err;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    size_t lost = 0;
    uint8_t *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < N_PUB; i++)
        for (int m = 0; m < PER_PUB; m++) {
            char id[48];
            snprintf(id, sizeof id, "%s-%05d", f->pub[i].prefix, m);
            uint64_t *seqs = NULL;
            size_t n = 0, received = 0;
            assert_int_equal(journal_find_message(j, id, &seqs, &n, &err), 0);
            for (size_t s = 0; s < n; s++) {
                journal_view_t v;
                assert_int_equal(journal_get(j, seqs[s], &v, &buf, &cap, &err), 0);
                if (v.kind == PT_REC_RECEIVED && strcmp(v.partner, f->pub[i].partner) == 0) {
                    received++;
                    assert_int_equal(v.seq, f->pub[i].m[m].seq);
                }
            }
            free(seqs);
            if (received != 1)
                fprintf(stderr, "%s: %zu RECEIVED records\n", id, received);
            lost += received == 0;
            assert_true(received <= 1); /* never journaled twice */
        }
    free(buf);
    journal_close(&j);
    return lost;
}

static void
verify_chain(fx_t *f)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "%s journal verify --journal %s --pubkey %s/keys/journal.sign.pub",
             PT_PTIBUSCTL_PATH, f->net.journal_dir, f->net.dir);
    int st = system(cmd);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
test_kill9_under_load_loses_nothing(void **state)
{
    fx_t *f = *state;
    const char *env = getenv("PT_CRASH_KILLS");
    int kills = env ? atoi(env) : 20;
    if (kills < 1 || kills > 1000)
        kills = 20;
    f->start = tu_now_ms();
    f->phase_ms = 250 * (int64_t)kills;
    for (int i = 0; i < kills; i++) {
        run_for(f, 50 + (int)randombytes_uniform(400));
        kill_and_restart(f);
    }
    int64_t end = tu_now_ms() + DRAIN_MS;
    while (!settled(f) && tu_now_ms() < end)
        run_for(f, 100);
    assert_true(settled(f));
    assert_int_equal(td_broker_stop(&f->net), 0);
    size_t acked = 0, duplicates = 0, redeliveries = 0;
    for (int i = 0; i < N_PUB; i++) {
        acked += f->pub[i].acked;
        duplicates += f->pub[i].duplicates;
    }
    for (int k = 0; k < N_CON; k++)
        redeliveries += f->con[k].redeliveries;
    size_t lost = count_lost(f);
    verify_chain(f);
    qsort(f->restart_ms, (size_t)f->restarts, sizeof *f->restart_ms, cmp_i64);
    print_message("crash loop: published %d, acked %zu, lost %zu, journaled twice 0, "
                  "duplicate acks %zu, redeliveries %zu, restarts %d, restart median %lld ms, "
                  "max %lld ms\n",
                  N_PUB * PER_PUB, acked, lost, duplicates, redeliveries, f->restarts,
                  (long long)f->restart_ms[f->restarts / 2],
                  (long long)f->restart_ms[f->restarts - 1]);
    assert_int_equal(acked, N_PUB * PER_PUB);
    assert_int_equal(lost, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_under_load_loses_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
