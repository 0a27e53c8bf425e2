/* Unit tests of the outbox egress, on real folders: files written and read back, names
 * in seq order, idempotent writes again, conflicts left untouched, replays, receipts,
 * planted links, a full disk, and kill -9 in the middle of writes. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "codec.h"
#include "outbox.h"
#include "pjson.h"
#include "samples.h"
#include "spool.h"
#include "testutil.h"

typedef struct fx {
    char *tmp;
    char dir[512];
    outbox_t *o;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->tmp = tu_tmpdir("outbox");
    snprintf(f->dir, sizeof f->dir, "%s/out", f->tmp);
    outbox_options_t opt = {.dir = f->dir, .receipts = true};
    pt_error_t err;
    if (outbox_open(&opt, &f->o, &err) != 0)
        fail_msg("open: %s", err.msg);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    outbox_close(&f->o);
    tu_rmtree(f->tmp);
    free(f);
    return 0;
}

/* A packed orientation envelope with id; territory varies the content. Caller frees. */
static uint8_t *
packed(const char *id, const char *territory, size_t *len)
{
    td_sample_t s;
    td_sample_orientation(&s, id);
    if (territory)
        s.env.territory = (char *)territory;
    uint8_t *buf;
    pt_error_t err;
    if (codec_pack(&s.env.base, 1 << 20, &buf, len, &err) != 0)
        fail_msg("pack: %s", err.msg);
    return buf;
}

static int
write_one(outbox_t *o, uint64_t seq, const char *id, const char *territory, uint32_t attempt,
          bool replay, outbox_result_t *res, pt_error_t *err)
{
    size_t len;
    uint8_t *buf = packed(id, territory, &len);
    outbox_delivery_t d = {.seq = seq,
                           .attempt = attempt,
                           .redelivery = attempt > 1,
                           .replay = replay,
                           .message_id = id,
                           .sender = "pole_emploi",
                           .envelope = buf,
                           .envelope_len = len,
                           .received_at_ms = 1764640000123};
    int rc = outbox_write(o, &d, res, err);
    free(buf);
    return rc;
}

static char *
read_text(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *buf = NULL;
    if (tu_read_file(path, &buf, len) != 0)
        return NULL;
    return (char *)buf;
}

/* Names in dir, sorted, into names (each freed by the caller); returns the count. */
static int
list_dir(const char *dir, char ***names)
{
    struct dirent **ents;
    int n = scandir(dir, &ents, NULL, alphasort);
    assert_true(n >= 0);
    *names = calloc((size_t)n + 1, sizeof **names);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (ents[i]->d_name[0] != '.' && strcmp(ents[i]->d_name, "receipts") != 0)
            (*names)[k++] = strdup(ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
    return k;
}

static void
free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static int
count_files(const char *dir)
{
    char **names;
    int n = list_dir(dir, &names);
    free_names(names, n);
    return n;
}

static void
test_written_and_read_back(void **state)
{
    fx_t *f = *state;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_one(f->o, 42, "ft-2026/0001", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_string_equal(res.name, "00000000000000000042-ft-2026%2F0001.json");

    char path[1024];
    snprintf(path, sizeof path, "%s/%s", f->dir, res.name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, PT_OUTBOX_FILE_MODE);
    json_error_t je;
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "formatVersion")), 1);
    json_t *dl = json_object_get(doc, "delivery");
    assert_string_equal(json_string_value(json_object_get(dl, "seq")), "42");
    assert_string_equal(json_string_value(json_object_get(dl, "sender")), "pole_emploi");
    assert_string_equal(json_string_value(json_object_get(dl, "receivedAt")),
                        "2025-12-02T01:46:40.123Z");
    assert_int_equal(json_integer_value(json_object_get(dl, "attempt")), 1);
    assert_true(json_is_false(json_object_get(dl, "replay")));

    /* The envelope parses back into the very message that was delivered. */
    ProtobufCMessage *m = NULL;
    assert_int_equal(pjson_to_message(&ptibus__v1__envelope__descriptor,
                                      json_object_get(doc, "envelope"), &m, &err),
                     0);
    uint8_t *again;
    size_t alen, len;
    uint8_t *orig = packed("ft-2026/0001", NULL, &len);
    assert_int_equal(codec_pack(m, 1 << 20, &again, &alen, &err), 0);
    assert_int_equal(alen, len);
    assert_memory_equal(again, orig, len);
    free(again);
    free(orig);
    codec_free(&m);
    json_decref(doc);
}

static void
test_names_sort_by_seq(void **state)
{
    fx_t *f = *state;
    static const uint64_t seqs[] = {100, 9, 10000000000ull, 2, 10};
    static const uint64_t sorted[] = {2, 9, 10, 100, 10000000000ull};
    outbox_result_t res;
    pt_error_t err;
    for (size_t i = 0; i < 5; i++) {
        char id[32];
        snprintf(id, sizeof id, "%c-msg", (char)('z' - i)); /* ids in the other order */
        assert_int_equal(write_one(f->o, seqs[i], id, NULL, 1, false, &res, &err), 0);
    }
    char **names;
    int n = list_dir(f->dir, &names);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++)
        assert_int_equal(strtoull(names[i], NULL, 10), sorted[i]);
    free_names(names, n);
}

static void
test_same_delivery_twice(void **state)
{
    fx_t *f = *state;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_one(f->o, 7, "dup-1", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    size_t l1, l2;
    char *before = read_text(f->dir, res.name, &l1);
    assert_int_equal(write_one(f->o, 7, "dup-1", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY);
    /* A redelivery after a crash (attempt 2) finds the file of the first hand-over. */
    assert_int_equal(write_one(f->o, 7, "dup-1", NULL, 2, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY);
    char *after = read_text(f->dir, res.name, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(before, after, l1);
    assert_int_equal(count_files(f->dir), 1);
    free(before);
    free(after);
}

static void
test_same_name_other_content(void **state)
{
    fx_t *f = *state;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_one(f->o, 8, "c-1", "nord_meusien", 1, false, &res, &err), 0);
    size_t l1, l2;
    char *before = read_text(f->dir, res.name, &l1);
    int rc = write_one(f->o, 8, "c-1", "sud_meusien", 1, false, &res, &err);
    assert_int_equal(rc, PT_EDUPCONFLICT);
    assert_int_equal(res.status, OUTBOX_REFUSED);
    assert_non_null(strstr(err.msg, "left untouched"));
    char *after = read_text(f->dir, res.name, &l2);
    assert_int_equal(l1, l2);
    assert_memory_equal(before, after, l1);
    assert_int_equal(count_files(f->dir), 1);
    free(before);
    free(after);
}

/* Files under their final names in dir (the tmp files of staged ones left out). */
static int
count_final(const char *dir)
{
    char **names;
    int n = list_dir(dir, &names), k = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        k += l < 4 || strcmp(names[i] + l - 4, ".tmp") != 0;
    }
    free_names(names, n);
    return k;
}

/* With batch_sync the files of a turn appear at outbox_sync, and within the batch the
 * same delivery, a replay and a conflict are told apart as on disk. */
static void
test_batch_sync(void **state)
{
    fx_t *f = *state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/batched", f->tmp);
    outbox_options_t opt = {.dir = dir, .batch_sync = true};
    outbox_t *o = NULL;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(outbox_open(&opt, &o, &err), 0);
    assert_int_equal(write_one(o, 5, "b-1", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_int_equal(write_one(o, 5, "b-1", NULL, 2, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY); /* staged already */
    assert_int_equal(write_one(o, 5, "b-1", "sud_meusien", 1, false, &res, &err), PT_EDUPCONFLICT);
    assert_int_equal(write_one(o, 5, "b-1", NULL, 1, true, &res, &err), 0);
    assert_string_equal(res.name, "00000000000000000005-b-1.replay-1.json");
    assert_int_equal(write_one(o, 5, "b-1", NULL, 1, true, &res, &err), 0);
    assert_string_equal(res.name, "00000000000000000005-b-1.replay-2.json");
    assert_int_equal(outbox_staged(o), 3);
    assert_int_equal(count_final(dir), 0); /* nothing under its name before the sync */
    assert_int_equal(count_files(dir), 3); /* only their tmp files */
    assert_int_equal(outbox_sync(o, &err), 0);
    assert_int_equal(outbox_staged(o), 0);
    assert_int_equal(count_final(dir), 3);
    assert_int_equal(write_one(o, 5, "b-1", NULL, 2, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY); /* on disk now */
    assert_int_equal(write_one(o, 6, "b-2", NULL, 1, false, &res, &err), 0);
    outbox_close(&o); /* the stop keeps what is staged (its delivery is unacked: found again) */
    assert_int_equal(count_final(dir), 4);
    assert_int_equal(count_files(dir), 4);
}

static atomic_int flushes;

static void
count_flush(void *arg)
{
    (void)arg;
    atomic_fetch_add(&flushes, 1);
}

/* Collects the batch in flight, waiting up to 10 s for the flusher's notice. */
static uint64_t
collect_wait(outbox_t *o)
{
    pt_error_t err;
    for (int i = 0; i < 1000; i++) {
        uint64_t gen = outbox_collect(o, &err);
        if (gen != 0)
            return gen;
        usleep(10 * 1000);
    }
    fail_msg("the flusher never finished its batch");
    return 0;
}

/* With async_sync the files are synced on the flusher's thread: a result says which
 * generation to wait for, the notice comes from that thread, and a name staged in the
 * batch in flight is found there (ALREADY, waiting for that batch). */
static void
test_async_sync(void **state)
{
    fx_t *f = *state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/async", f->tmp);
    outbox_options_t opt = {.dir = dir, .async_sync = true, .flushed = count_flush};
    outbox_t *o = NULL;
    outbox_result_t res;
    pt_error_t err;
    bool failed = true;
    assert_int_equal(outbox_open(&opt, &o, &err), 0);
    assert_int_equal(write_one(o, 1, "as-1", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    uint64_t g1 = res.gen;
    assert_true(g1 > 0);
    assert_false(outbox_durable(o, g1, &failed));
    assert_false(failed);
    assert_int_equal(outbox_flush(o, &err), 0); /* handed over, returns at once */
    assert_true(outbox_flushing(o) || atomic_load(&flushes) > 0);
    assert_int_equal(write_one(o, 1, "as-1", NULL, 2, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY); /* in the batch in flight, or renamed */
    assert_int_equal(res.gen, g1);
    assert_int_equal(write_one(o, 2, "as-2", NULL, 1, false, &res, &err), 0);
    uint64_t g2 = res.gen;
    assert_true(g2 > g1);
    assert_int_equal(collect_wait(o), g1);
    assert_true(atomic_load(&flushes) >= 1);
    assert_true(outbox_durable(o, g1, &failed));
    assert_false(outbox_durable(o, g2, &failed));
    assert_int_equal(count_final(dir), 1);
    assert_int_equal(outbox_flush(o, &err), 0);
    assert_int_equal(collect_wait(o), g2);
    assert_true(outbox_durable(o, g2, &failed));
    assert_int_equal(count_final(dir), 2);
    /* found on disk with nothing in flight: durable now */
    assert_int_equal(write_one(o, 2, "as-2", NULL, 2, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY);
    assert_int_equal(res.gen, 0);
    outbox_close(&o);
}

/* A batch whose sync fails: its generation says FAILED, its tmp files are removed. */
static void
test_async_sync_failure(void **state)
{
    fx_t *f = *state;
    char dir[600], sub[700];
    snprintf(dir, sizeof dir, "%s/async-fail", f->tmp);
    outbox_options_t opt = {.dir = dir, .async_sync = true, .receipts = true};
    outbox_t *o = NULL;
    outbox_result_t res;
    pt_error_t err;
    bool failed = false;
    assert_int_equal(outbox_open(&opt, &o, &err), 0);
    assert_int_equal(write_one(o, 1, "af-1", NULL, 1, false, &res, &err), 0);
    uint64_t g = res.gen;
    /* the file's tmp goes away before the sync: its rename fails */
    snprintf(sub, sizeof sub, "%s/00000000000000000001-af-1.json.tmp", dir);
    assert_int_equal(unlink(sub), 0);
    assert_int_equal(outbox_flush(o, &err), 0);
    assert_int_equal(collect_wait(o), g);
    assert_false(outbox_durable(o, g, &failed));
    assert_true(failed);
    assert_int_equal(count_files(dir), 0);
    outbox_close(&o);
}

static void
test_replay_own_file(void **state)
{
    fx_t *f = *state;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_one(f->o, 5, "r-1", NULL, 1, false, &res, &err), 0);
    assert_int_equal(write_one(f->o, 5, "r-1", NULL, 1, true, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_string_equal(res.name, "00000000000000000005-r-1.replay-1.json");
    assert_int_equal(write_one(f->o, 5, "r-1", NULL, 1, true, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_string_equal(res.name, "00000000000000000005-r-1.replay-2.json");
    /* The second replay redelivered after a crash finds its own file. */
    assert_int_equal(write_one(f->o, 5, "r-1", NULL, 2, true, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY);
    assert_string_equal(res.name, "00000000000000000005-r-1.replay-2.json");
    assert_int_equal(count_files(f->dir), 3);
    size_t len;
    char *t = read_text(f->dir, res.name, &len);
    json_t *doc = json_loadb(t, len, 0, NULL);
    assert_true(json_is_true(json_object_get(json_object_get(doc, "delivery"), "replay")));
    json_decref(doc);
    free(t);
}

static void
test_receipts(void **state)
{
    fx_t *f = *state;
    Ptibus__V1__Receipt r = PTIBUS__V1__RECEIPT__INIT;
    r.message_id = "cd-55-0001";
    r.seq = 77;
    r.recipient = "caf";
    r.kind = PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED;
    r.at_ms = 1764640000000;
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(outbox_write_receipt(f->o, &r, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_string_equal(res.name, "00000000000000000077-caf-acknowledged.json");
    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/receipts", f->dir);
    size_t len;
    char *t = read_text(rdir, res.name, &len);
    assert_non_null(t);
    json_t *doc = json_loadb(t, len, 0, NULL);
    json_t *j = json_object_get(doc, "receipt");
    assert_string_equal(json_string_value(json_object_get(j, "messageId")), "cd-55-0001");
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "RECEIPT_KIND_ACKNOWLEDGED");
    json_decref(doc);
    free(t);
    /* Sent again with a later checkpoint: the same receipt. */
    r.journal_signed_seq = 99;
    assert_int_equal(outbox_write_receipt(f->o, &r, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_ALREADY);
    r.kind = PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED;
    r.reason = "cannot process";
    assert_int_equal(outbox_write_receipt(f->o, &r, &res, &err), 0);
    assert_string_equal(res.name, "00000000000000000077-caf-dead_lettered.json");
    assert_int_equal(count_files(rdir), 2);
    assert_int_equal(count_files(f->dir), 0); /* receipts/ only */

    /* Receipts off: nothing written. */
    outbox_t *o2;
    char d2[600];
    snprintf(d2, sizeof d2, "%s/norcpt", f->tmp);
    outbox_options_t opt = {.dir = d2};
    assert_int_equal(outbox_open(&opt, &o2, &err), 0);
    assert_int_equal(outbox_write_receipt(o2, &r, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_SKIPPED);
    assert_int_equal(count_files(d2), 0);
    outbox_close(&o2);
}

static void
test_planted_links_not_followed(void **state)
{
    fx_t *f = *state;
    char victim[600], link[800];
    snprintf(victim, sizeof victim, "%s/victim", f->tmp);
    assert_int_equal(tu_write_file(victim, "precious", 8), 0);

    /* At the target name: refused, the link and its target untouched. */
    snprintf(link, sizeof link, "%s/00000000000000000003-l-1.json", f->dir);
    assert_int_equal(symlink(victim, link), 0);
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_one(f->o, 3, "l-1", NULL, 1, false, &res, &err), PT_EDUPCONFLICT);
    assert_int_equal(res.status, OUTBOX_REFUSED);
    struct stat st;
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));

    /* A dangling link at the target name: refused too, nothing created where it points. */
    char nowhere[700];
    snprintf(nowhere, sizeof nowhere, "%s/created-through-link", f->tmp);
    snprintf(link, sizeof link, "%s/00000000000000000005-l-3.json", f->dir);
    assert_int_equal(symlink(nowhere, link), 0);
    assert_int_equal(write_one(f->o, 5, "l-3", NULL, 1, false, &res, &err), PT_EDUPCONFLICT);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(lstat(nowhere, &st), -1);

    /* At the tmp name: removed, never written through; the file is written. */
    snprintf(link, sizeof link, "%s/00000000000000000004-l-2.json.tmp", f->dir);
    assert_int_equal(symlink(victim, link), 0);
    assert_int_equal(write_one(f->o, 4, "l-2", NULL, 1, false, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    snprintf(link, sizeof link, "%s/%s", f->dir, res.name);
    assert_int_equal(lstat(link, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    size_t len;
    uint8_t *v;
    assert_int_equal(tu_read_file(victim, &v, &len), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(v, "precious", 8);
    free(v);
}

static void
test_bad_envelope_refused(void **state)
{
    fx_t *f = *state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff};
    outbox_delivery_t d = {.seq = 1,
                           .attempt = 1,
                           .message_id = "x",
                           .sender = "caf",
                           .envelope = junk,
                           .envelope_len = sizeof junk};
    outbox_result_t res;
    pt_error_t err;
    assert_true(outbox_write(f->o, &d, &res, &err) < 0);
    assert_int_equal(res.status, OUTBOX_REFUSED);
    assert_true(err.msg[0] != '\0');
    d.message_id = "";
    assert_int_equal(outbox_write(f->o, &d, &res, &err), PT_EINVALID);
    assert_int_equal(res.status, OUTBOX_REFUSED);
    assert_int_equal(count_files(f->dir), 0);
}

/* A delivery with a big envelope (objective of `size` bytes). */
static int
write_big(outbox_t *o, uint64_t seq, size_t size, outbox_result_t *res, pt_error_t *err)
{
    td_sample_t s;
    td_sample_training_offer(&s, "big-1");
    char *big = malloc(size + 1);
    memset(big, 'x', size);
    big[size] = '\0';
    s.offer.objective = big;
    uint8_t *buf;
    size_t len;
    if (codec_pack(&s.env.base, 4 << 20, &buf, &len, err) != 0)
        fail_msg("pack: %s", err->msg);
    free(big);
    outbox_delivery_t d = {.seq = seq,
                           .attempt = 1,
                           .message_id = "big-1",
                           .sender = "region",
                           .envelope = buf,
                           .envelope_len = len};
    int rc = outbox_write(o, &d, res, err);
    free(buf);
    return rc;
}

static void
test_disk_full_tmpfs(void **state)
{
    fx_t *f = *state;
    char disk[600];
    snprintf(disk, sizeof disk, "%s/disk", f->tmp);
    assert_int_equal(mkdir(disk, 0700), 0);
    if (mount("tmpfs", disk, "tmpfs", 0, "size=64k,mode=0700") != 0) {
        print_message("mount tmpfs: %s (not root): the RLIMIT_FSIZE test stands in\n",
                      strerror(errno));
        skip();
    }
    outbox_t *o;
    outbox_options_t opt = {.dir = disk};
    pt_error_t err;
    assert_int_equal(outbox_open(&opt, &o, &err), 0);
    outbox_result_t res;
    int rc = write_big(o, 1, 200000, &res, &err);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(res.status, OUTBOX_RETRY);
    int n = count_files(disk);
    /* Space freed: the same delivery goes through. */
    assert_int_equal(mount("tmpfs", disk, "tmpfs", MS_REMOUNT, "size=8m,mode=0700"), 0);
    assert_int_equal(write_big(o, 1, 200000, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    outbox_close(&o);
    umount2(disk, MNT_DETACH);
    assert_int_equal(n, 0); /* nothing half-written (no file, no tmp) */
}

/* Without root: a file size limit makes the writes fail (EFBIG), in a child. */
static void
test_write_fails_for_now(void **state)
{
    fx_t *f = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {.rlim_cur = 32768, .rlim_max = 32768};
        setrlimit(RLIMIT_FSIZE, &rl);
        outbox_result_t res;
        pt_error_t err;
        int rc = write_big(f->o, 1, 100000, &res, &err);
        _exit(rc == -EFBIG && res.status == OUTBOX_RETRY ? 0 : 1);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(count_files(f->dir), 0); /* no file, no tmp */
    outbox_result_t res;
    pt_error_t err;
    assert_int_equal(write_big(f->o, 1, 100000, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
}

/* The child writes seqs 1..n and reports each seq on fd once outbox_write returned. */
static void
writer_child(const char *dir, int fd, uint64_t first)
{
    outbox_t *o;
    outbox_options_t opt = {.dir = dir};
    pt_error_t err;
    if (outbox_open(&opt, &o, &err) != 0)
        _exit(2);
    for (uint64_t seq = first; seq < first + 100000; seq++) {
        outbox_result_t res;
        if (write_big(o, seq, 60000, &res, &err) != 0)
            _exit(3);
        if (write(fd, &seq, sizeof seq) != sizeof seq)
            _exit(4);
    }
    _exit(0);
}

/* Every file parses as a complete delivery whose seq is in its name; returns how many
 * files hold seq s, per s, into counts (size max+1). */
static void
check_files(const char *dir, int *counts, uint64_t max)
{
    char **names;
    int n = list_dir(dir, &names);
    for (int i = 0; i < n; i++) {
        assert_null(strstr(names[i], ".tmp"));
        size_t len;
        char *t = read_text(dir, names[i], &len);
        json_t *doc = json_loadb(t, len, 0, NULL);
        if (doc == NULL)
            fail_msg("%s: not a complete JSON file", names[i]);
        uint64_t seq = strtoull(names[i], NULL, 10);
        const char *s = json_string_value(json_object_get(json_object_get(doc, "delivery"), "seq"));
        assert_non_null(s);
        assert_int_equal(strtoull(s, NULL, 10), seq);
        if (seq > max)
            fail_msg("%s: seq over %llu", names[i], (unsigned long long)max);
        counts[seq]++;
        json_decref(doc);
        free(t);
    }
    free_names(names, n);
}

static int
count_tmp(const char *dir)
{
    char **names;
    int n = list_dir(dir, &names), k = 0;
    for (int i = 0; i < n; i++)
        k += strstr(names[i], ".tmp") != NULL;
    free_names(names, n);
    return k;
}

static void
test_kill9_during_writes(void **state)
{
    fx_t *f = *state;
    srand((unsigned)time(NULL));
    uint64_t acked_max = 0, next = 1;
    int tmp_left = 0; /* rounds killed in the middle of a write (informative) */
    for (int round = 0; round < 4; round++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            writer_child(f->dir, p[1], next);
        }
        close(p[1]);
        uint64_t seq;
        int want = 5 + rand() % 10;
        for (int k = 0; k < want; k++) {
            if (read(p[0], &seq, sizeof seq) != sizeof seq) {
                int st = 0;
                waitpid(pid, &st, 0);
                fail_msg("round %d: the writer stopped by itself (exit %d): a write after the"
                         " restart failed, e.g. on a partial file left by the kill",
                         round, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
            }
            acked_max = seq;
        }
        usleep((useconds_t)(rand() % 3000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        while (read(p[0], &seq, sizeof seq) == sizeof seq)
            acked_max = seq; /* the child reported it: acknowledged to the broker */
        close(p[0]);
        tmp_left += count_tmp(f->dir);
        /* Restart: the broker redelivers from the first unacknowledged seq. */
        next = acked_max + 1;
    }
    print_message("kill -9 in the middle of a write (tmp left) in %d of 4 rounds\n", tmp_left);
    /* Reopening sweeps the tmp a kill left; then the last unacked ones are redelivered. */
    outbox_close(&f->o);
    outbox_options_t opt = {.dir = f->dir};
    pt_error_t err;
    assert_int_equal(outbox_open(&opt, &f->o, &err), 0);
    int *counts = calloc(acked_max + 3, sizeof *counts);
    check_files(f->dir, counts, acked_max + 1);
    for (uint64_t s = 1; s <= acked_max; s++)
        assert_int_equal(counts[s], 1);
    outbox_result_t res;
    for (uint64_t s = 1; s <= acked_max + 1; s++)
        assert_int_equal(write_big(f->o, s, 60000, &res, &err), 0);
    memset(counts, 0, (acked_max + 3) * sizeof *counts);
    check_files(f->dir, counts, acked_max + 1);
    for (uint64_t s = 1; s <= acked_max + 1; s++)
        assert_int_equal(counts[s], 1);
    assert_int_equal(count_files(f->dir), (int)acked_max + 1);
    free(counts);
}

static void
test_handle_with_spool(void **state)
{
    fx_t *f = *state;
    char sdir[600];
    snprintf(sdir, sizeof sdir, "%s/spool", f->tmp);
    spool_options_t so = {.dir = sdir, .unsafe_nosync = true};
    spool_t *s;
    pt_error_t err;
    assert_int_equal(spool_open(&so, &s, &err), 0);
    size_t len;
    uint8_t *buf = packed("h-1", NULL, &len);
    outbox_delivery_t d = {.seq = 11,
                           .attempt = 1,
                           .message_id = "h-1",
                           .sender = "caf",
                           .envelope = buf,
                           .envelope_len = len};
    outbox_result_t res;
    assert_int_equal(outbox_handle(f->o, s, &d, 1000, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_int_equal(spool_commit(s, &err), 0);
    /* The partner's system took the file away; the redelivery is not handed over again. */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", f->dir, res.name);
    assert_int_equal(unlink(path), 0);
    d.attempt = 2;
    d.redelivery = true;
    assert_int_equal(outbox_handle(f->o, s, &d, 2000, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_SEEN);
    assert_int_equal(count_files(f->dir), 0);
    /* A replay is handed over again. */
    d.replay = true;
    d.attempt = 1;
    assert_int_equal(outbox_handle(f->o, s, &d, 3000, &res, &err), 0);
    assert_int_equal(res.status, OUTBOX_WRITTEN);
    assert_string_equal(res.name, "00000000000000000011-h-1.replay-1.json");
    free(buf);
    spool_close(&s);
}

static void
test_open_checks(void **state)
{
    fx_t *f = *state;
    char d[600];
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);
    snprintf(d, sizeof d, "%s/receipts", f->dir);
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700);

    outbox_t *o = NULL;
    pt_error_t err;
    snprintf(d, sizeof d, "%s/afile", f->tmp);
    assert_int_equal(tu_write_file(d, "x", 1), 0);
    outbox_options_t opt = {.dir = d};
    assert_int_equal(outbox_open(&opt, &o, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, d));
    assert_null(o);
    snprintf(d, sizeof d, "%s/wide", f->tmp);
    assert_int_equal(mkdir(d, 0700), 0);
    assert_int_equal(chmod(d, 0777), 0);
    assert_int_equal(outbox_open(&opt, &o, &err), PT_ECONFIG);
    assert_non_null(strstr(err.msg, "chmod o-w"));
    snprintf(d, sizeof d, "%s/modes", f->tmp);
    opt = (outbox_options_t){.dir = d, .dir_mode = 0750, .file_mode = 0600};
    assert_int_equal(outbox_open(&opt, &o, &err), 0);
    assert_int_equal(stat(d, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
    outbox_result_t res;
    assert_int_equal(write_one(o, 1, "m-1", NULL, 1, false, &res, &err), 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", d, res.name);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    outbox_close(&o);
}

static void
test_sanitize(void **state)
{
    (void)state;
    char out[200];
    assert_int_equal(outbox_sanitize("a/b c%.._-Z9", out, sizeof out), 18);
    assert_string_equal(out, "a%2Fb%20c%25.._-Z9");
    assert_int_equal(outbox_sanitize("a/b", out, 4), -1);
    assert_int_equal(outbox_sanitize("../..", out, sizeof out), 7);
    assert_string_equal(out, "..%2F..");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_written_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_sort_by_seq, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_delivery_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_name_other_content, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_own_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_sync, setup, teardown),
        cmocka_unit_test_setup_teardown(test_async_sync_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_receipts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_links_not_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_envelope_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_tmpfs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_fails_for_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_during_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_handle_with_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sanitize, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
