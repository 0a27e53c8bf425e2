/* Fault injection: power cuts under load. A real ptibusd runs with the powercut shim
 * preloaded (tests/fault/powercut_shim.c): at a random write it loses every journal
 * write not yet durable and dies, as a machine whose power is cut. Four partners
 * publish continuously (windows 1 to 32) meanwhile. After each cut the test reads the
 * journal: every message that got a PublishAck must be RECEIVED exactly once, and the
 * chain must verify (the real ptibusctl journal verify). The broker is restarted on the
 * same journal, the unanswered messages are published again (deduplication must answer
 * them without a second RECEIVED), and the next cut comes.
 * The test of the test: the same run with journal.unsafe_ack_before_fsync (acks before
 * the fsync) must report lost acknowledged messages.
 * PT_POWERCUT_CUTS (default 10) sets the number of cuts, PT_POWERCUT_SEED the random
 * seed (printed). See docs/reliability.md, "Power loss". */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "samples.h"
#include "testutil.h"

#define PC_CUT_MIN 200 /* writes before a cut, drawn in [PC_CUT_MIN, PC_CUT_MAX] */
#define PC_CUT_MAX 5000
#define PC_CUT_WAIT_MS 30000 /* a cut that does not come within this fails the test */
#define PC_MAX_RESTARTS 1000
#define PC_WARMUP 300 /* messages acknowledged before the first cut */

typedef enum pc_state { PC_INFLIGHT, PC_ACKED, PC_LOST } pc_state_t;

typedef struct pc_msg {
    uint8_t pub;
    uint8_t state;
    bool checked; /* found RECEIVED once after a cut (an acked message) */
    uint64_t seq; /* of the PublishAck */
} pc_msg_t;

typedef struct pc_pub {
    const char *partner;
    int window;
    client_t *c;
    int inflight;
    size_t *resend; /* messages unanswered at the last cut, published again first */
    size_t n_resend;
} pc_pub_t;

typedef struct pc_run {
    td_net_t net;
    bool unsafe;
    unsigned seed, seed0;
    pc_pub_t pubs[4];
    pc_msg_t *msgs;
    size_t n_msgs, cap_msgs;
    long sends, acked, lost, duplicates, cuts, verify_failures;
    int64_t restart_ms[PC_MAX_RESTARTS];
    int restarts;
    char env_after[64];
    const char *env[4];
    char preload[4200], dir_env[4300];
} pc_run_t;

static const pc_pub_t pc_pubs[] = {
    {.partner = "region", .window = 32},
    {.partner = "caf", .window = 8},
    {.partner = "msa", .window = 1},
    {.partner = "pole_emploi", .window = 4},
};

static int
env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static pc_run_t *
run_new(bool unsafe)
{
    pc_run_t *r = calloc(1, sizeof *r);
    r->unsafe = unsafe;
    r->seed = (unsigned)env_int("PT_POWERCUT_SEED", (int)(time(NULL) & 0x7fffffff));
    r->seed0 = r->seed;
    memcpy(r->pubs, pc_pubs, sizeof pc_pubs);
    /* The broken build: acknowledge before the fsync. */
    static const td_net_options_t unsafe_opts = {.extra_journal =
                                                     "  unsafe_ack_before_fsync: true\n"};
    td_net_init(&r->net, unsafe ? "powercut-unsafe" : "powercut", unsafe ? &unsafe_opts : NULL);
    return r;
}

static int
setup_safe(void **state)
{
    *state = run_new(false);
    return 0;
}

static int
setup_unsafe(void **state)
{
    *state = run_new(true);
    return 0;
}

/* Also after a failed check: stops the broker (td_net_fini) and removes the folder. */
static int
teardown(void **state)
{
    pc_run_t *r = *state;
    for (size_t i = 0; i < 4; i++) {
        client_close(&r->pubs[i].c);
        free(r->pubs[i].resend);
    }
    td_net_fini(&r->net);
    free(r->msgs);
    free(r);
    return 0;
}

/* ---- publishing ---- */

static void
msg_envelope(td_sample_t *s, const pc_run_t *r, size_t idx)
{
    char id[32];
    snprintf(id, sizeof id, "pc-%zu", idx);
    switch (r->msgs[idx].pub) {
    case 0:
        td_sample_training_offer(s, id);
        break;
    case 3:
        td_sample_referral(s, id, "departement");
        break;
    default:
        td_sample_beneficiary_event(s, id);
    }
}

static size_t
msg_new(pc_run_t *r, uint8_t pub)
{
    if (r->n_msgs == r->cap_msgs) {
        r->cap_msgs = r->cap_msgs ? 2 * r->cap_msgs : 4096;
        r->msgs = realloc(r->msgs, r->cap_msgs * sizeof *r->msgs);
        assert_non_null(r->msgs);
    }
    r->msgs[r->n_msgs] = (pc_msg_t){.pub = pub, .state = PC_INFLIGHT};
    return r->n_msgs++;
}

/* Sends messages until the publisher's window is full: first those unanswered at the
 * last cut, then new ones. A send that fails (the broker died) is dropped silently:
 * the message stays in flight and is sent again after the restart. */
static void
pub_fill(pc_run_t *r, uint8_t p)
{
    pc_pub_t *pub = &r->pubs[p];
    while (pub->inflight < pub->window) {
        size_t idx = pub->n_resend > 0 ? pub->resend[--pub->n_resend] : msg_new(r, p);
        td_sample_t s;
        msg_envelope(&s, r, idx);
        pt_error_t err;
        if (client_publish_async(pub->c, &s.env, &err) != 0)
            return;
        pub->inflight++;
        r->sends++;
    }
}

static void
on_answer(pc_run_t *r, uint8_t p, const client_result_t *res, const char *mid)
{
    size_t idx;
    if (mid == NULL || sscanf(mid, "pc-%zu", &idx) != 1 || idx >= r->n_msgs)
        return; /* a session-level Nack */
    pc_msg_t *m = &r->msgs[idx];
    r->pubs[p].inflight--;
    if (res->nack_code != 0) {
        if (!res->retryable)
            fail_msg("message %zu refused: %s", idx, res->reason);
        pc_pub_t *pub = &r->pubs[p];
        pub->resend = realloc(pub->resend, (pub->n_resend + 1) * sizeof *pub->resend);
        pub->resend[pub->n_resend++] = idx;
        return;
    }
    if (m->state == PC_INFLIGHT) {
        m->state = PC_ACKED;
        m->seq = res->seq;
        r->acked++;
    }
}

/* Receives what is waiting on each publisher (up to wait_ms each); returns how many
 * frames came. */
static int
pubs_receive(pc_run_t *r, int wait_ms)
{
    int got = 0;
    for (uint8_t p = 0; p < 4; p++) {
        Ptibus__V1__Frame *f;
        pt_error_t err;
        while (r->pubs[p].c && client_recv(r->pubs[p].c, wait_ms, &f, &err) == 0) {
            client_result_t res;
            const char *mid = NULL;
            if (client_result_from_frame(f, &res, &mid))
                on_answer(r, p, &res, mid);
            codec_free((ProtobufCMessage **)&f);
            got++;
        }
    }
    return got;
}

/* ---- one cut ---- */

static void
broker_start_timed(pc_run_t *r, bool shim)
{
    if (shim) {
        long after = PC_CUT_MIN + rand_r(&r->seed) % (PC_CUT_MAX - PC_CUT_MIN + 1);
        snprintf(r->env_after, sizeof r->env_after, "PT_POWERCUT_AFTER=%ld", after);
        snprintf(r->preload, sizeof r->preload, "LD_PRELOAD=%s", PT_POWERCUT_SHIM_PATH);
        snprintf(r->dir_env, sizeof r->dir_env, "PT_POWERCUT_DIR=%s", r->net.journal_dir);
        r->env[0] = r->preload;
        r->env[1] = r->dir_env;
        r->env[2] = r->env_after;
        r->env[3] = NULL;
        r->net.env = r->env;
    } else {
        r->net.env = NULL;
    }
    int64_t t0 = tu_now_ms();
    assert_int_equal(td_broker_start(&r->net), 0);
    if (r->restarts < PC_MAX_RESTARTS)
        r->restart_ms[r->restarts++] = tu_now_ms() - t0;
    for (uint8_t p = 0; p < 4; p++) {
        assert_int_equal(td_client_session(&r->net, r->pubs[p].partner, 0, &r->pubs[p].c), 0);
        r->pubs[p].inflight = 0;
    }
}

/* Prints the shim's last line in the broker's log ("powercut: cut at write N, ..."). */
static void
print_cut_line(pc_run_t *r)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/broker.log", r->net.dir);
    uint8_t *log;
    size_t len;
    if (tu_read_file(path, &log, &len) != 0)
        return;
    char *line = NULL;
    for (char *p = strstr((char *)log, "powercut: cut"); p; p = strstr(p + 1, "powercut: cut"))
        line = p;
    if (line != NULL)
        print_message("cut %ld: %.*s\n", r->cuts, (int)strcspn(line, "\n"), line);
    free(log);
}

/* Publishes until the shim cuts the power; then collects the acks the broker sent
 * before it died. */
static void
load_until_cut(pc_run_t *r)
{
    int64_t deadline = tu_now_ms() + PC_CUT_WAIT_MS;
    int status = 0;
    for (;;) {
        for (uint8_t p = 0; p < 4; p++)
            pub_fill(r, p);
        pubs_receive(r, 1);
        if (waitpid(r->net.pid, &status, WNOHANG) == r->net.pid)
            break;
        if (tu_now_ms() > deadline)
            fail_msg("no power cut within %d ms", PC_CUT_WAIT_MS);
    }
    r->net.pid = 0;
    while (pubs_receive(r, 100) > 0)
        ;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL ||
        !td_log_contains(&r->net, "powercut: cut"))
        fail_msg("the broker ended otherwise than by a power cut (status %d)", status);
    r->cuts++;
    print_cut_line(r);
    for (uint8_t p = 0; p < 4; p++) {
        client_close(&r->pubs[p].c);
        r->pubs[p].inflight = 0;
    }
}

/* ---- the checks ---- */

static int
received_count(journal_t *j, size_t idx)
{
    char id[32];
    snprintf(id, sizeof id, "pc-%zu", idx);
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

/* After a cut: every acked message RECEIVED exactly once (a lost one is counted once and
 * never published again); the unanswered ones are queued to be published again. After
 * a cut only the messages not yet found are looked up (so that a long run stays
 * linear); full also looks up those found after an earlier cut, and counts duplicates
 * among all. */
static void
check_journal(pc_run_t *r, bool full)
{
    journal_options_t o = {.dir = r->net.journal_dir, .read_only = true};
    journal_t *j = NULL;
    pt_error_t err;
    if (journal_open(&o, &j, &err) != 0)
        print_message("journal unreadable after cut %ld: %s\n", r->cuts, err.msg);
    for (size_t i = 0; i < r->n_msgs; i++) {
        pc_msg_t *m = &r->msgs[i];
        if (m->state == PC_LOST || (m->checked && !full))
            continue;
        int n = j ? received_count(j, i) : 0;
        if (n > 1 && full)
            r->duplicates++;
        if (m->state == PC_ACKED && n == 0) {
            m->state = PC_LOST;
            r->lost++;
        } else if (m->state == PC_ACKED) {
            m->checked = true;
        } else if (m->state == PC_INFLIGHT) {
            pc_pub_t *pub = &r->pubs[m->pub];
            pub->resend = realloc(pub->resend, (pub->n_resend + 1) * sizeof *pub->resend);
            pub->resend[pub->n_resend++] = i;
        }
    }
    journal_close(&j);
}

/* The real ptibusctl journal verify on the journal; returns its exit status. */
static int
verify_chain(pc_run_t *r)
{
    char cmd[9000], out[2048];
    snprintf(cmd, sizeof cmd,
             "'%s' journal verify --journal '%s' --pubkey '%s/keys/journal.sign.pub' 2>&1",
             PT_PTIBUSCTL_PATH, r->net.journal_dir, r->net.dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0) {
        print_message("journal verify after cut %ld failed:\n%s", r->cuts, out);
        r->verify_failures++;
    }
    return rc;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void
print_counts(pc_run_t *r)
{
    qsort(r->restart_ms, (size_t)r->restarts, sizeof *r->restart_ms, cmp_i64);
    print_message("power loss%s (seed %u): published %zu, sends %ld, acked %ld, lost %ld, "
                  "duplicates %ld, cuts %ld, chain failures %ld, restarts %d, restart ms "
                  "median %lld max %lld\n",
                  r->unsafe ? " [unsafe_ack_before_fsync]" : "", r->seed0, r->n_msgs, r->sends,
                  r->acked, r->lost, r->duplicates, r->cuts, r->verify_failures, r->restarts,
                  (long long)r->restart_ms[r->restarts / 2],
                  (long long)r->restart_ms[r->restarts - 1]);
}

/* Before the cuts, without the shim: a journal with PC_WARMUP acknowledged messages,
 * closed cleanly (so that even the unsafe build has them on disk). Each cut then starts
 * on a journal that has history. */
static void
warm_up(pc_run_t *r)
{
    broker_start_timed(r, false);
    while (r->acked < PC_WARMUP) {
        for (uint8_t p = 0; p < 4; p++)
            pub_fill(r, p);
        pubs_receive(r, 1);
    }
    int64_t deadline = tu_now_ms() + 10000;
    for (uint8_t p = 0; p < 4; p++)
        while (r->pubs[p].inflight > 0 && tu_now_ms() < deadline)
            pubs_receive(r, 10);
    for (uint8_t p = 0; p < 4; p++) {
        assert_int_equal(r->pubs[p].inflight, 0);
        client_close(&r->pubs[p].c);
    }
    assert_int_equal(td_broker_stop(&r->net), 0);
}

/* One cut: start with the shim, load until the cut, check. */
static void
cut_once(pc_run_t *r)
{
    broker_start_timed(r, true);
    load_until_cut(r);
    check_journal(r, false);
    verify_chain(r);
}

static void
test_power_loss_loses_nothing_acked(void **state)
{
    pc_run_t *r = *state;
    int cuts = env_int("PT_POWERCUT_CUTS", 10);
    print_message("seed %u, %d cuts\n", r->seed, cuts);
    warm_up(r);
    for (int i = 0; i < cuts; i++)
        cut_once(r);
    /* A last start without the shim: it must open the journal left by the last cut. */
    broker_start_timed(r, false);
    for (uint8_t p = 0; p < 4; p++)
        client_close(&r->pubs[p].c);
    assert_int_equal(td_broker_stop(&r->net), 0);
    assert_int_equal(verify_chain(r), 0);
    check_journal(r, true);
    print_counts(r);
    assert_true(r->acked > 0);
    assert_int_equal(r->lost, 0);
    assert_int_equal(r->duplicates, 0);
    assert_int_equal(r->verify_failures, 0);
}

/* The test of the test: with acks before the fsync, a cut loses acknowledged messages.
 * A cut that comes before the first ack of its run loses nothing: cuts go on until one
 * loses (at most PT_POWERCUT_CUTS). */
static void
test_power_loss_unsafe_build_loses_acked(void **state)
{
    pc_run_t *r = *state;
    int cuts = env_int("PT_POWERCUT_CUTS", 10);
    warm_up(r);
    for (int i = 0; i < cuts && r->lost == 0; i++)
        cut_once(r);
    check_journal(r, true);
    print_counts(r);
    assert_true(r->lost > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_power_loss_loses_nothing_acked, setup_safe, teardown),
        cmocka_unit_test_setup_teardown(test_power_loss_unsafe_build_loses_acked, setup_unsafe,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
