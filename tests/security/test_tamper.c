/* Security: the journal's tamper seal (issue 10, item 1). Each test writes a real
 * journal through the journal API (or a real ptibusd writes it), attacks its LMDB files
 * directly the way someone with the files would, and runs the real `ptibusctl
 * journal verify --pubkey` on it:
 *  (a) record 1's sender changed, the chain recomputed to the end, the head rewritten,
 *      every checkpoint deleted: must fail;
 *  (b) the last checkpoints deleted and the tail after the last kept one rewritten:
 *      must fail;
 *  (c) one checkpoint in the middle deleted: must fail, naming the missing one;
 *  (d) an untouched journal verifies and reports how many checkpoints it checked and
 *      the last one's seq and time;
 *  (e) a queue, dead-letter or index entry altered, deleted or added: verify reports it;
 *  (f) a real broker's journal has a signed checkpoint at its head after a clean stop
 *      and after kill -9, the broker logs its signed heads, and the receipts it sends
 *      carry a signed head that the journal must still hold;
 *  (g) ADMIN records name the administrator by the full 256-bit digest of the key, not
 *      by a 64-bit fingerprint another key can match in ~2^32 work;
 *  (h) in a journal of format-1 records then format-2 ones (issue 16), a payload, a
 *      header field or a payload hash edited in either format is caught, and so is a
 *      format-2 payload and its hash both replaced with the chain recomputed. */
#include <errno.h>
#include <inttypes.h>
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
#include <lmdb.h>
#include <sodium.h>
#include <zmq.h>

#include "codec.h"
#include "daemon.h"
#include "journal.h"
#include "journal_record.h"
#include "keys.h"
#include "ptibus/v1/admin.pb-c.h"
#include "samples.h"
#include "testutil.h"

/* The size of the journal of the audit's reproduction. */
#define BIG_JOURNAL 12007
#define SMALL_JOURNAL 300
#define MSGS_PER_COMMIT 25
/* The old broker's timer signed about every 1500 records on the audit's journal. */
#define TIMER_EVERY 1500

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";

typedef struct fixture {
    char *dir;
    char jdir[4200];
    char pubfile[4200];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint8_t sk[crypto_sign_SECRETKEYBYTES];
    uint64_t last_seq;
    uint64_t queued_seq;   /* a message still queued for msa */
    uint64_t dead_seq;     /* a message dead-lettered for msa */
    char out[65536];       /* ptibusctl's stdout and stderr */
    unsigned write_format; /* journal_options_t.write_format of build_journal */
    int next_msg;          /* build_journal's next message number */
    td_net_t net;          /* a real broker, for the tests that start one */
    bool have_net;
} fixture_t;

static int
setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    assert_true(sodium_init() >= 0);
    f->dir = tu_tmpdir("tamper");
    snprintf(f->jdir, sizeof f->jdir, "%s/journal", f->dir);
    snprintf(f->pubfile, sizeof f->pubfile, "%s/journal.sign.pub", f->dir);
    crypto_sign_keypair(f->pk, f->sk);
    pt_error_t err;
    assert_int_equal(keys_write_public(f->pubfile, f->pk, sizeof f->pk, &err), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fixture_t *f = *state;
    if (f->have_net)
        td_net_fini(&f->net); /* also stops a broker a failed assertion left running */
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

/* ---- a journal written the way the broker writes it ---- */

static void
append(journal_txn_t *t, const journal_record_t *r, uint64_t *seq)
{
    pt_error_t err;
    if (journal_append(t, r, seq, &err) != 0)
        fail_msg("journal_append: %s", err.msg);
}

/* One message from caf to msa: RECEIVED, DELIVERED, then ACKNOWLEDGED, or
 * DEAD_LETTERED (one in ten), or left queued (the last ones). */
static void
one_message(fixture_t *f, journal_txn_t *t, int i, bool leave_queued)
{
    static const char *const rcpt[] = {"msa", NULL};
    char id[32], payload[64];
    snprintf(id, sizeof id, "m-%06d", i);
    snprintf(payload, sizeof payload, "envelope bytes of message %d", i);
    journal_record_t r = {.kind = PT_REC_RECEIVED,
                          .partner = "caf",
                          .msg_type = "orientation",
                          .message_id = id,
                          .payload = (const uint8_t *)payload,
                          .payload_len = strlen(payload),
                          .recipients = rcpt};
    uint64_t s, x;
    pt_error_t err;
    append(t, &r, &s);
    journal_record_t d = {.kind = PT_REC_DELIVERED,
                          .partner = "msa",
                          .msg_type = "orientation",
                          .message_id = id,
                          .ref_seq = s,
                          .attempt = 1};
    append(t, &d, &x);
    journal_queue_entry_t e = {.seq = s, .attempts = 1};
    assert_int_equal(journal_queue_put(t, "msa", &e, &err), 0);
    if (leave_queued) {
        f->queued_seq = s;
        return;
    }
    bool dead = i % 10 == 9;
    d.kind = dead ? PT_REC_DEAD_LETTERED : PT_REC_ACKNOWLEDGED;
    d.reason = dead ? "refused by the recipient" : NULL;
    append(t, &d, &x);
    if (dead) {
        assert_int_equal(journal_dead_add(t, "msa", &e, &err), 0);
        f->dead_seq = s;
    } else {
        assert_int_equal(journal_queue_remove(t, "msa", s, &err), 0);
    }
}

/* Writes at least n records in commits of MSGS_PER_COMMIT messages, checkpointing about
 * every TIMER_EVERY records (the broker's timer) and at the end (its clean stop). */
static void
build_journal(fixture_t *f, uint64_t n)
{
    journal_options_t o = {.dir = f->jdir,
                           .hmac_key = hmac_key,
                           .sign_sk = f->sk,
                           .unsafe_nosync = true,
                           .write_format = f->write_format};
    journal_t *j;
    journal_txn_t *t;
    pt_error_t err;
    if (journal_open(&o, &j, &err) != 0)
        fail_msg("journal_open: %s", err.msg);
    uint64_t next_timer = TIMER_EVERY;
    int i = f->next_msg;
    while (journal_last_seq(j) < n) {
        assert_int_equal(journal_begin(j, &t, &err), 0);
        for (int k = 0; k < MSGS_PER_COMMIT && journal_last_seq(j) + 3 * (uint64_t)k < n; k++, i++)
            one_message(f, t, i, journal_last_seq(j) + 3 * (uint64_t)k + 12 >= n);
        if (journal_commit(&t, &err) != 0)
            fail_msg("journal_commit: %s", err.msg);
        if (journal_last_seq(j) >= next_timer) {
            assert_int_equal(journal_checkpoint(j, &err), 0);
            next_timer += TIMER_EVERY;
        }
    }
    assert_int_equal(journal_checkpoint(j, &err), 0);
    f->last_seq = journal_last_seq(j);
    f->next_msg = i;
    journal_close(&j);
}

/* ---- the attacker's tools: LMDB opened directly ---- */

typedef struct raw {
    MDB_env *env;
    MDB_txn *txn;
} raw_t;

static void
raw_open(raw_t *r, const char *dir)
{
    assert_int_equal(mdb_env_create(&r->env), 0);
    assert_int_equal(mdb_env_set_maxdbs(r->env, 16), 0);
    assert_int_equal(mdb_env_open(r->env, dir, 0, 0600), 0);
    assert_int_equal(mdb_txn_begin(r->env, NULL, 0, &r->txn), 0);
}

static MDB_dbi
raw_db(raw_t *r, const char *name)
{
    MDB_dbi dbi;
    assert_int_equal(mdb_dbi_open(r->txn, name, 0, &dbi), 0);
    return dbi;
}

static void
raw_close(raw_t *r)
{
    assert_int_equal(mdb_txn_commit(r->txn), 0);
    mdb_env_close(r->env);
}

static void
be64(uint8_t k[8], uint64_t v)
{
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t
be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* A malloc'd copy of record seq. */
static uint8_t *
raw_record(raw_t *r, MDB_dbi records, uint64_t seq, size_t *len)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key}, v;
    assert_int_equal(mdb_get(r->txn, records, &k, &v), 0);
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    *len = v.mv_size;
    return copy;
}

/* Record `from` is edited by edit(); every hash from there to `last` is recomputed
 * and meta's head rewritten: the chain is intact again, as the audit did it. */
static void
rewrite_chain(raw_t *r, uint64_t from, uint64_t last, void (*edit)(uint8_t *rec, size_t len))
{
    MDB_dbi records = raw_db(r, "records");
    uint8_t prev[32] = {0};
    size_t len;
    if (from > 1) {
        uint8_t *p = raw_record(r, records, from - 1, &len);
        memcpy(prev, p + len - 32, 32);
        free(p);
    }
    for (uint64_t s = from; s <= last; s++) {
        uint8_t *rec = raw_record(r, records, s, &len), key[8];
        if (s == from)
            edit(rec, len);
        journal_record_chain(prev, rec, len, rec + len - 32);
        memcpy(prev, rec + len - 32, 32);
        be64(key, s);
        MDB_val k = {8, key}, v = {len, rec};
        assert_int_equal(mdb_put(r->txn, records, &k, &v, 0), 0);
        free(rec);
    }
    MDB_val k = {4, "head"}, v = {32, prev};
    assert_int_equal(mdb_put(r->txn, raw_db(r, "meta"), &k, &v, 0), 0);
}

/* The sender of a RECEIVED record: the partner string right after the header. */
static void
edit_sender(uint8_t *rec, size_t len)
{
    assert_true(len > PT_JREC_HEADER_LEN + 7);
    assert_memory_equal(rec + PT_JREC_HEADER_LEN + 4, "caf", 3);
    memcpy(rec + PT_JREC_HEADER_LEN + 4, "msa", 3);
}

/* The attempt field of the trailer. */
static void
edit_attempt(uint8_t *rec, size_t len)
{
    rec[len - 2 * 32 - 4] ^= 0x40;
}

/* Seqs of the stored checkpoints, ascending; returns how many. */
static size_t
raw_checkpoints(raw_t *r, uint64_t *out, size_t max)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    assert_int_equal(mdb_cursor_open(r->txn, raw_db(r, "checkpoints"), &cur), 0);
    for (int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && n < max;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        out[n++] = be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return n;
}

static void
raw_del_checkpoint(raw_t *r, uint64_t seq)
{
    uint8_t key[8];
    be64(key, seq);
    MDB_val k = {8, key};
    assert_int_equal(mdb_del(r->txn, raw_db(r, "checkpoints"), &k, NULL), 0);
}

/* ---- the verifier: the real ptibusctl ---- */

/* Runs ptibusctl journal verify --pubkey; returns its exit status, output in f->out. */
static int
run_verify(fixture_t *f, const char *journal_dir)
{
    char cmd[9000];
    snprintf(cmd, sizeof cmd, "'%s' journal verify --journal '%s' --pubkey '%s' 2>&1",
             PT_PTIBUSCTL_PATH, journal_dir, f->pubfile);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(f->out, 1, sizeof f->out - 1, p);
    f->out[n] = '\0';
    int st = pclose(p);
    print_message("%s", f->out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
expect_failure(fixture_t *f, const char *want)
{
    assert_int_not_equal(run_verify(f, f->jdir), 0);
    if (strstr(f->out, "FAILED") == NULL || strstr(f->out, want) == NULL)
        fail_msg("expected a failure saying \"%s\", got:\n%s", want, f->out);
}

/* ---- (a) to (d) ---- */

static void
test_rewritten_chain_without_checkpoints(void **state)
{
    fixture_t *f = *state;
    build_journal(f, BIG_JOURNAL);
    assert_int_equal(run_verify(f, f->jdir), 0);
    raw_t r;
    raw_open(&r, f->jdir);
    rewrite_chain(&r, 1, f->last_seq, edit_sender);
    assert_int_equal(mdb_drop(r.txn, raw_db(&r, "checkpoints"), 0), 0);
    raw_close(&r);
    expect_failure(f, "follow the last signed checkpoint (0)");
    /* The broker does not resume such a journal either. */
    journal_options_t o = {.dir = f->jdir, .hmac_key = hmac_key, .sign_sk = f->sk};
    journal_t *j = NULL;
    pt_error_t err;
    assert_int_equal(journal_open(&o, &j, &err), PT_ECORRUPT);
    assert_non_null(strstr(err.msg, "after the last signed checkpoint"));
}

static void
test_last_checkpoints_deleted_tail_rewritten(void **state)
{
    fixture_t *f = *state;
    build_journal(f, BIG_JOURNAL);
    raw_t r;
    uint64_t ck[4096];
    raw_open(&r, f->jdir);
    size_t n = raw_checkpoints(&r, ck, 4096);
    assert_true(n >= 3);
    raw_del_checkpoint(&r, ck[n - 1]);
    raw_del_checkpoint(&r, ck[n - 2]);
    rewrite_chain(&r, ck[n - 3] + 1, f->last_seq, edit_attempt);
    raw_close(&r);
    char want[128];
    snprintf(want, sizeof want, "follow the last signed checkpoint (%" PRIu64 ")", ck[n - 3]);
    expect_failure(f, want);
}

/* The tail cut back to a signed head, meta rewritten, but the later checkpoints left:
 * they give it away. (With them deleted too, only a signed head kept elsewhere shows
 * the cut: test_receipt_carries_signed_head, docs/threat-model.md.) */
static void
test_tail_cut_checkpoints_left(void **state)
{
    fixture_t *f = *state;
    build_journal(f, BIG_JOURNAL);
    raw_t r;
    uint64_t ck[4096];
    raw_open(&r, f->jdir);
    size_t n = raw_checkpoints(&r, ck, 4096);
    assert_true(n >= 3);
    MDB_dbi records = raw_db(&r, "records"), meta = raw_db(&r, "meta");
    for (uint64_t s = ck[n - 3] + 1; s <= f->last_seq; s++) {
        uint8_t key[8];
        be64(key, s);
        MDB_val k = {8, key};
        assert_int_equal(mdb_del(r.txn, records, &k, NULL), 0);
    }
    size_t len;
    uint8_t *last = raw_record(&r, records, ck[n - 3], &len), le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(ck[n - 3] >> (8 * i));
    MDB_val k = {8, "last_seq"}, v = {8, le};
    assert_int_equal(mdb_put(r.txn, meta, &k, &v, 0), 0);
    k = (MDB_val){4, "head"};
    v = (MDB_val){32, last + len - 32};
    assert_int_equal(mdb_put(r.txn, meta, &k, &v, 0), 0);
    free(last);
    raw_close(&r);
    char want[128];
    snprintf(want, sizeof want, "checkpoint %" PRIu64 ": after the last record (records cut?)",
             ck[n - 2]);
    expect_failure(f, want);
}

static void
test_middle_checkpoint_deleted(void **state)
{
    fixture_t *f = *state;
    build_journal(f, BIG_JOURNAL);
    raw_t r;
    uint64_t ck[4096];
    raw_open(&r, f->jdir);
    size_t n = raw_checkpoints(&r, ck, 4096);
    assert_true(n >= 3);
    raw_del_checkpoint(&r, ck[n / 2]);
    raw_close(&r);
    char want[128];
    snprintf(want, sizeof want, "checkpoint %" PRIu64 ": signed as following checkpoint %" PRIu64,
             ck[n / 2 + 1], ck[n / 2]);
    expect_failure(f, want);
    snprintf(want, sizeof want, "checkpoint %" PRIu64 " is missing (deleted?)", ck[n / 2]);
    assert_non_null(strstr(f->out, want));
}

static void
test_clean_journal_reports(void **state)
{
    fixture_t *f = *state;
    build_journal(f, BIG_JOURNAL);
    raw_t r;
    uint64_t ck[4096];
    raw_open(&r, f->jdir);
    size_t n = raw_checkpoints(&r, ck, 4096);
    raw_close(&r);
    assert_int_equal(ck[n - 1], f->last_seq);
    assert_int_equal(run_verify(f, f->jdir), 0);
    char want[256];
    snprintf(want, sizeof want,
             "checkpoints checked: %zu (0 old-format, not linked), last at seq %" PRIu64
             " signed 20",
             n, f->last_seq);
    if (strstr(f->out, want) == NULL)
        fail_msg("expected \"%s\" in:\n%s", want, f->out);
    assert_non_null(strstr(f->out, "unsigned tail: 0 records"));
    assert_non_null(strstr(f->out, "state: queue, dead-letter, dedup, by_msgid and by_partner"));
}

/* ---- (e) the state databases ---- */

static void
qkey(uint8_t key[12], uint64_t seq)
{
    memcpy(key, "msa", 4);
    be64(key + 4, seq);
}

static void
test_queue_entry_deleted(void **state)
{
    fixture_t *f = *state;
    build_journal(f, SMALL_JOURNAL);
    raw_t r;
    uint8_t key[12];
    raw_open(&r, f->jdir);
    qkey(key, f->queued_seq);
    MDB_val k = {12, key};
    assert_int_equal(mdb_del(r.txn, raw_db(&r, "queue"), &k, NULL), 0);
    raw_close(&r);
    char want[128];
    snprintf(want, sizeof want, "queue entry msa/%" PRIu64 ": missing (deleted?)", f->queued_seq);
    expect_failure(f, want);
}

static void
test_dead_letter_altered(void **state)
{
    fixture_t *f = *state;
    build_journal(f, SMALL_JOURNAL);
    raw_t r;
    uint8_t key[12], val[14];
    raw_open(&r, f->jdir);
    qkey(key, f->dead_seq);
    MDB_dbi dead = raw_db(&r, "dead");
    MDB_val k = {12, key}, v;
    assert_int_equal(mdb_get(r.txn, dead, &k, &v), 0);
    assert_int_equal(v.mv_size, sizeof val);
    memcpy(val, v.mv_data, sizeof val);
    val[2] = 0; /* attempts: as if never tried, so that a requeue looks normal */
    v = (MDB_val){sizeof val, val};
    assert_int_equal(mdb_put(r.txn, dead, &k, &v, 0), 0);
    raw_close(&r);
    char want[128];
    snprintf(want, sizeof want, "dead letter msa/%" PRIu64 ": attempts differ", f->dead_seq);
    expect_failure(f, want);
}

static void
test_queue_entry_added(void **state)
{
    fixture_t *f = *state;
    build_journal(f, SMALL_JOURNAL);
    raw_t r;
    uint8_t key[12], val[14] = {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    raw_open(&r, f->jdir);
    qkey(key, 1); /* message 1, acknowledged long ago: delivered again */
    MDB_val k = {12, key}, v = {sizeof val, val};
    assert_int_equal(mdb_put(r.txn, raw_db(&r, "queue"), &k, &v, 0), 0);
    raw_close(&r);
    expect_failure(f, "queue entry msa/1: no record leaves it there");
}

static void
test_index_entry_deleted(void **state)
{
    fixture_t *f = *state;
    build_journal(f, SMALL_JOURNAL);
    raw_t r;
    uint8_t seqkey[8];
    raw_open(&r, f->jdir);
    be64(seqkey, 4); /* record 4 is message m-000001's RECEIVED */
    MDB_val k = {8, "m-000001"}, v = {8, seqkey};
    assert_int_equal(mdb_del(r.txn, raw_db(&r, "by_msgid"), &k, &v), 0);
    raw_close(&r);
    expect_failure(f, "by_msgid entry of record 4 missing");
}

/* ---- (f) a real broker ---- */

static void
publish_some(td_net_t *n, const char *tag, int count)
{
    client_t *c;
    char who[64], id[64];
    pt_error_t err;
    assert_int_equal(td_client_open(n, "departement", true, &c), 0);
    assert_int_equal(client_hello(c, 5000, who, sizeof who, &err), 0);
    for (int i = 0; i < count; i++) {
        td_sample_t s;
        client_result_t res;
        snprintf(id, sizeof id, "%s-%03d", tag, i);
        td_sample_orientation(&s, id);
        if (client_publish(c, &s.env, 5000, &res, &err) != 0)
            fail_msg("publish %s: %s", id, err.msg);
        assert_int_equal(res.nack_code, 0);
    }
    client_close(&c);
}

static void
test_broker_leaves_signed_head(void **state)
{
    fixture_t *f = *state;
    td_net_t *const n = &f->net;
    td_net_init(&f->net, "tamper-broker", NULL);
    f->have_net = true;
    snprintf(f->pubfile, sizeof f->pubfile, "%s/keys/journal.sign.pub", n->dir);
    assert_int_equal(td_broker_start(n), 0);
    publish_some(n, "clean", 5);
    assert_int_equal(td_broker_stop(n), 0);
    assert_int_equal(run_verify(f, n->journal_dir), 0);
    assert_non_null(strstr(f->out, "unsigned tail: 0 records"));
    assert_true(td_log_contains(n, "[journal.signed] signed head seq="));
    assert_true(td_log_contains(n, "N [journal.stopped] clean stop: journal at seq="));

    /* No clean stop: the last acknowledged message is signed all the same. */
    assert_int_equal(td_broker_start(n), 0);
    publish_some(n, "crash", 5);
    td_broker_kill9(n);
    assert_int_equal(run_verify(f, n->journal_dir), 0);
    assert_non_null(strstr(f->out, "unsigned tail: 0 records"));
    assert_int_equal(td_broker_start(n), 0); /* and the broker resumes it */
    assert_int_equal(td_broker_stop(n), 0);
}

/* The next frame of kind k (others skipped), or NULL after 10 s. Caller frees. */
static Ptibus__V1__Frame *
recv_kind(client_t *c, Ptibus__V1__Frame__KindCase k)
{
    int64_t deadline = tu_now_ms() + 10000;
    pt_error_t err;
    while (tu_now_ms() < deadline) {
        Ptibus__V1__Frame *fr;
        if (client_recv(c, (int)(deadline - tu_now_ms()), &fr, &err) != 0)
            return NULL;
        if (fr->kind_case == k)
            return fr;
        codec_free((ProtobufCMessage **)&fr);
    }
    return NULL;
}

/* A sender keeps, with each receipt, a signed head of the journal: the journal must hold
 * that record with that chain hash, whatever happens to the file later. */
static void
test_receipt_carries_signed_head(void **state)
{
    fixture_t *f = *state;
    td_net_t *const n = &f->net;
    client_t *cd, *ml;
    pt_error_t err;
    td_net_init(&f->net, "tamper-receipt", NULL);
    f->have_net = true;
    assert_int_equal(td_broker_start(n), 0);
    assert_int_equal(td_client_session(n, "departement", 0, &cd), 0);
    assert_int_equal(td_client_session(n, "ml_nord", 4, &ml), 0);
    td_sample_t s;
    client_result_t res;
    td_sample_referral(&s, "ref-sealed", "ml_nord");
    assert_int_equal(client_publish(cd, &s.env, 5000, &res, &err), 0);
    Ptibus__V1__Frame *fr = recv_kind(ml, PTIBUS__V1__FRAME__KIND_DELIVER);
    assert_non_null(fr);
    assert_int_equal(client_deliver_ack(ml, fr->deliver->seq, true, NULL, &err), 0);
    codec_free((ProtobufCMessage **)&fr);
    fr = recv_kind(cd, PTIBUS__V1__FRAME__KIND_RECEIPT);
    assert_non_null(fr);
    uint64_t seq = fr->receipt->journal_signed_seq;
    uint8_t head[32];
    assert_true(seq > 0);
    assert_int_equal(fr->receipt->journal_signed_head.len, sizeof head);
    memcpy(head, fr->receipt->journal_signed_head.data, sizeof head);
    codec_free((ProtobufCMessage **)&fr);
    client_close(&cd);
    client_close(&ml);
    assert_int_equal(td_broker_stop(n), 0);

    journal_options_t o = {.dir = n->journal_dir, .read_only = true};
    journal_t *j;
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    assert_int_equal(journal_open(&o, &j, &err), 0);
    assert_int_equal(journal_get(j, seq, &v, &buf, &cap, &err), 0);
    assert_memory_equal(v.hash, head, sizeof head);
    free(buf);
    journal_close(&j);
}

/* One admin request, its response (NULL on timeout). Caller frees. */
static Ptibus__V1__AdminResponse *
admin_call(client_t *c, Ptibus__V1__AdminRequest *q)
{
    uint8_t *buf;
    size_t len;
    pt_error_t err;
    assert_int_equal(codec_pack(&q->base, 1 << 20, &buf, &len, &err), 0);
    assert_int_equal(zmq_send(client_socket(c), buf, len, 0), (int)len);
    free(buf);
    zmq_pollitem_t item = {.socket = client_socket(c), .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, 5000) != 1)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, client_socket(c), 0) >= 0);
    ProtobufCMessage *r = NULL;
    assert_int_equal(codec_unpack(&ptibus__v1__admin_response__descriptor, zmq_msg_data(&m),
                                  zmq_msg_size(&m), 1 << 24, &r, &err),
                     0);
    zmq_msg_close(&m);
    return (Ptibus__V1__AdminResponse *)r;
}

typedef struct admin_seen {
    char partner[128];
    int n;
} admin_seen_t;

static int
find_admin(const journal_view_t *v, void *arg)
{
    admin_seen_t *a = arg;
    if (v->kind == PT_REC_ADMIN) {
        snprintf(a->partner, sizeof a->partner, "%s", v->partner);
        a->n++;
    }
    return 0;
}

/* Replays message seq to departement until the broker has journaled its ack. */
static void
replay_until_done(client_t *adm)
{
    Ptibus__V1__AdminRequest q = PTIBUS__V1__ADMIN_REQUEST__INIT;
    Ptibus__V1__ReplayRequest rp = PTIBUS__V1__REPLAY_REQUEST__INIT;
    rp.recipient = "departement";
    rp.from_seq = 1;
    rp.reason = "tamper test";
    q.request_id = "rp";
    q.kind_case = PTIBUS__V1__ADMIN_REQUEST__KIND_REPLAY;
    q.replay = &rp;
    uint32_t replayed = 0;
    for (int i = 0; i < 100 && replayed == 0; i++) {
        Ptibus__V1__AdminResponse *r = admin_call(adm, &q);
        assert_non_null(r);
        assert_true(r->ok);
        replayed = r->replayed;
        codec_free((ProtobufCMessage **)&r);
        if (replayed == 0)
            usleep(20000);
    }
    assert_int_equal(replayed, 1);
}

static void
test_admin_named_by_full_digest(void **state)
{
    fixture_t *f = *state;
    td_net_t *const n = &f->net;
    client_t *caf, *cd, *adm;
    pt_error_t err;
    td_net_init(&f->net, "tamper-admin", NULL);
    f->have_net = true;
    assert_int_equal(td_broker_start(n), 0);
    assert_int_equal(td_client_session(n, "caf", 0, &caf), 0);
    td_sample_t s;
    client_result_t res;
    td_sample_beneficiary_event(&s, "adm-1");
    assert_int_equal(client_publish(caf, &s.env, 5000, &res, &err), 0);
    assert_int_equal(td_client_session(n, "departement", 4, &cd), 0);
    Ptibus__V1__Frame *fr = recv_kind(cd, PTIBUS__V1__FRAME__KIND_DELIVER);
    assert_non_null(fr);
    assert_int_equal(client_deliver_ack(cd, fr->deliver->seq, true, NULL, &err), 0);
    codec_free((ProtobufCMessage **)&fr);
    assert_int_equal(td_admin_open(n, "admin", &adm), 0);
    replay_until_done(adm);
    client_close(&adm);
    client_close(&cd);
    client_close(&caf);
    assert_int_equal(td_broker_stop(n), 0);

    char path[4300], want[128];
    uint8_t pk[32], id[32];
    snprintf(path, sizeof path, "%s/keys/admin.pub", n->dir);
    assert_int_equal(keys_read(path, pk, sizeof pk, false, &err), 0);
    crypto_generichash(id, sizeof id, pk, sizeof pk, NULL, 0);
    memcpy(want, "admin:", 6);
    sodium_bin2hex(want + 6, sizeof want - 6, id, sizeof id);
    journal_options_t o = {.dir = n->journal_dir, .read_only = true};
    journal_t *j;
    admin_seen_t seen = {0};
    assert_int_equal(journal_open(&o, &j, &err), 0);
    assert_int_equal(journal_scan(j, 1, 0, find_admin, &seen, &err), 0);
    journal_close(&j);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.partner, want);
}

/* ---- (h) format 2 beside format 1 ---- */

/* SMALL_JOURNAL records as a format-1 broker wrote them, then as many in format 2 after
 * the upgrade; returns the first format-2 seq (a RECEIVED record: messages are never
 * split across commits). */
static uint64_t
build_mixed_journal(fixture_t *f)
{
    f->write_format = PT_JREC_FORMAT_V1;
    build_journal(f, SMALL_JOURNAL);
    uint64_t from = f->last_seq + 1;
    f->write_format = 0;
    build_journal(f, 2 * SMALL_JOURNAL);
    return from;
}

/* Flips one byte of record seq at off (from the end when negative), runs ptibusctl
 * journal-verify, which must fail naming the record, then restores the record. */
static void
flip_and_verify(fixture_t *f, uint64_t seq, long off, const char *want)
{
    raw_t r;
    size_t len;
    raw_open(&r, f->jdir);
    MDB_dbi records = raw_db(&r, "records");
    uint8_t *rec = raw_record(&r, records, seq, &len), *orig = malloc(len), key[8];
    memcpy(orig, rec, len);
    rec[off >= 0 ? (size_t)off : len - (size_t)-off] ^= 0x10;
    be64(key, seq);
    MDB_val k = {8, key}, v = {len, rec};
    assert_int_equal(mdb_put(r.txn, records, &k, &v, 0), 0);
    raw_close(&r);
    char msg[160];
    snprintf(msg, sizeof msg, "record %" PRIu64 ": %s", seq, want);
    expect_failure(f, msg);
    raw_open(&r, f->jdir);
    v = (MDB_val){len, orig};
    assert_int_equal(mdb_put(r.txn, raw_db(&r, "records"), &k, &v, 0), 0);
    raw_close(&r);
    free(rec);
    free(orig);
}

/* Where the payload bytes of RECEIVED record seq start. */
static long
payload_offset(fixture_t *f, uint64_t seq)
{
    raw_t r;
    size_t len;
    raw_open(&r, f->jdir);
    uint8_t *rec = raw_record(&r, raw_db(&r, "records"), seq, &len);
    const uint8_t *p = memmem(rec, len, "envelope bytes of message", 25);
    assert_non_null(p);
    long off = (long)(p - rec);
    free(rec);
    raw_close(&r);
    return off;
}

static void
test_mixed_formats_tamper(void **state)
{
    fixture_t *f = *state;
    uint64_t from = build_mixed_journal(f);
    assert_int_equal(run_verify(f, f->jdir), 0);
    const uint64_t targets[] = {1, from};
    for (size_t i = 0; i < 2; i++) {
        uint64_t s = targets[i];
        const char *payload_says =
            s < from ? "chain hash mismatch" : "payload differs from its hash";
        flip_and_verify(f, s, payload_offset(f, s) + 2, payload_says);
        flip_and_verify(f, s, PT_JREC_HEADER_LEN + 4, "chain hash mismatch"); /* the sender */
        flip_and_verify(f, s, -2 * 32 + 3, "chain hash mismatch");            /* payload hash */
    }
    assert_int_equal(run_verify(f, f->jdir), 0);
}

/* Format 2: the payload and its hash replaced together, the chain recomputed from there
 * to the head and meta's head rewritten. Only the signed checkpoints catch it. */
static void
edit_payload_and_hash(uint8_t *rec, size_t len)
{
    uint8_t *p = memmem(rec, len, "envelope bytes of message", 25);
    assert_non_null(p);
    memcpy(p, "ENVELOPE", 8);
    uint32_t plen =
        (uint32_t)p[-4] | (uint32_t)p[-3] << 8 | (uint32_t)p[-2] << 16 | (uint32_t)p[-1] << 24;
    crypto_generichash(rec + len - 64, 32, p, plen, NULL, 0);
}

static void
test_format2_payload_rewritten(void **state)
{
    fixture_t *f = *state;
    uint64_t from = build_mixed_journal(f);
    raw_t r;
    raw_open(&r, f->jdir);
    rewrite_chain(&r, from, f->last_seq, edit_payload_and_hash);
    raw_close(&r);
    expect_failure(f, "hash differs from the record's (chain rewritten?)");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_rewritten_chain_without_checkpoints, setup, teardown),
        cmocka_unit_test_setup_teardown(test_last_checkpoints_deleted_tail_rewritten, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_middle_checkpoint_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tail_cut_checkpoints_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clean_journal_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_entry_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_altered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_entry_added, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_entry_deleted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_leaves_signed_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipt_carries_signed_head, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_named_by_full_digest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mixed_formats_tamper, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format2_payload_rewritten, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
