/* Unit tests of the file drop (adapters/core/filedrop.c): real folders in a temp dir, a
 * real libuv loop run for bounded times, and an in-memory spool recorder that keeps the
 * ids it took (as the real spool does) and answers "already" for an id seen before.
 * Covers the three completeness conventions, bad records with their lines, the
 * all-or-nothing option, duplicates, unreadable files, the resume of processing/ after
 * a crash and name collisions in done/. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "codec.h"
#include "filedrop.h"
#include "pjson.h"
#include "samples.h"
#include "testutil.h"

#define MAX_IDS 64

/* ---- the spool recorder ---- */

typedef struct recorder {
    char ids[MAX_IDS][PT_FILEDROP_ID_MAX];
    int taken[MAX_IDS]; /* how many times each id was spooled as new: must stay <= 1 */
    size_t n_ids;
    char hashes[8][2 * PT_FILEDROP_HASH_LEN + 1];
    size_t n_hashes;
    size_t spool_calls, already, finished, failed;
    int fail_next;      /* the next spool call fails (nothing committed) */
    int kill_at;        /* in a child: SIGKILL itself before (1) or after (2) the commit */
    char persist[4200]; /* when set, committed ids are appended there (fsync) as a spool would */
    char last_dest[4200];
} recorder_t;

static int
rec_seen(void *ctx, const filedrop_file_t *file)
{
    recorder_t *r = ctx;
    for (size_t i = 0; i < r->n_hashes; i++)
        if (strcmp(r->hashes[i], file->hash_hex) == 0)
            return 1;
    return 0;
}

static void
rec_take(recorder_t *r, filedrop_record_t *rec)
{
    for (size_t i = 0; i < r->n_ids; i++)
        if (strcmp(r->ids[i], rec->env->message_id) == 0) {
            rec->outcome = PT_FILEDROP_ALREADY;
            r->already++;
            return;
        }
    assert_true(r->n_ids < MAX_IDS);
    snprintf(r->ids[r->n_ids], PT_FILEDROP_ID_MAX, "%s", rec->env->message_id);
    r->taken[r->n_ids++]++;
    rec->outcome = PT_FILEDROP_SPOOLED;
}

/* Appends the ids taken since `from` to the persist file and fsyncs it: the commit. */
static void
rec_commit(recorder_t *r, size_t from)
{
    FILE *out = fopen(r->persist, "a");
    assert_non_null(out);
    for (size_t i = from; i < r->n_ids; i++)
        fprintf(out, "%s\n", r->ids[i]);
    fflush(out);
    fsync(fileno(out));
    fclose(out);
}

/* Reads back what a killed process committed, as the real spool reopens its LMDB. */
static void
rec_reload(recorder_t *r)
{
    FILE *in = fopen(r->persist, "r");
    char line[PT_FILEDROP_ID_MAX + 2];
    while (in != NULL && fgets(line, sizeof line, in) != NULL && r->n_ids < MAX_IDS) {
        line[strcspn(line, "\n")] = '\0';
        snprintf(r->ids[r->n_ids], PT_FILEDROP_ID_MAX, "%.63s", line);
        r->taken[r->n_ids++] = 1;
    }
    if (in != NULL)
        fclose(in);
}

static int
rec_spool(void *ctx, const filedrop_file_t *file, filedrop_record_t *recs, size_t n)
{
    recorder_t *r = ctx;
    size_t from = r->n_ids;
    r->spool_calls++;
    if (r->fail_next) {
        r->fail_next = 0;
        return -EIO;
    }
    if (r->kill_at == 1)
        raise(SIGKILL);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(recs[i].env);
        if (strncmp(recs[i].env->message_id, "refuse-", 7) == 0) {
            recs[i].outcome = PT_FILEDROP_REFUSED;
            pt_error_set(&recs[i].err, PT_EDUPCONFLICT, "messageId",
                         "already used for other content");
            continue;
        }
        rec_take(r, &recs[i]);
    }
    if (r->persist[0] != '\0')
        rec_commit(r, from);
    if (r->kill_at == 2)
        raise(SIGKILL);
    if (!rec_seen(ctx, file) && r->n_hashes < 8)
        snprintf(r->hashes[r->n_hashes++], sizeof r->hashes[0], "%s", file->hash_hex);
    return 0;
}

static void
rec_finished(void *ctx, const filedrop_file_t *file, const char *dest, bool failed)
{
    (void)file;
    recorder_t *r = ctx;
    r->finished++;
    r->failed += failed;
    snprintf(r->last_dest, sizeof r->last_dest, "%s", dest);
}

static const filedrop_ops_t rec_ops = {rec_seen, rec_spool, rec_finished};

/* ---- fixture ---- */

typedef struct fx {
    char *dir;
    char inbox[4200];
    uv_loop_t loop;
    filedrop_options_t opt;
    filedrop_t *fd;
    recorder_t rec;
    spool_t *spool; /* the staged tests' real spool */
    size_t spool_calls;
} fx_t;

static int
setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->dir = tu_tmpdir("filedrop");
    snprintf(f->inbox, sizeof f->inbox, "%s/inbox", f->dir);
    uv_loop_init(&f->loop);
    f->opt.inbox = f->inbox;
    f->opt.scan_ms = 50;
    f->opt.stable_ms = 1000;
    *state = f;
    return 0;
}

static void
fx_start(fx_t *f)
{
    pt_error_t err;
    int rc = filedrop_open(&f->fd, &f->loop, &f->opt, &rec_ops, &f->rec, &err);
    if (rc != 0)
        fail_msg("filedrop_open: %s", err.msg);
}

static void
fx_stop(fx_t *f)
{
    filedrop_close(&f->fd);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the close callbacks */
}

static int
teardown(void **state)
{
    fx_t *f = *state;
    fx_stop(f);
    spool_close(&f->spool);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    tu_rmtree(f->dir);
    free(f);
    return 0;
}

static void
on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs the loop for ms, or until the recorder has seen `finished` files (0: the full ms). */
static void
run_for(fx_t *f, int ms, size_t finished)
{
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, on_deadline, (uint64_t)ms, 0);
    while (uv_is_active((uv_handle_t *)&t) && (finished == 0 || f->rec.finished < finished))
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void
path_in(char *out, size_t cap, const fx_t *f, const char *sub, const char *name)
{
    if (sub != NULL)
        snprintf(out, cap, "%s/%s/%s", f->inbox, sub, name);
    else
        snprintf(out, cap, "%s/%s", f->inbox, name);
}

static bool
file_exists(const fx_t *f, const char *sub, const char *name)
{
    char p[4400];
    path_in(p, sizeof p, f, sub, name);
    return access(p, F_OK) == 0;
}

static void
put(const fx_t *f, const char *sub, const char *name, const char *text)
{
    char p[4400];
    path_in(p, sizeof p, f, sub, name);
    assert_int_equal(tu_write_file(p, text, strlen(text)), 0);
}

static json_t *
load_report(const fx_t *f, const char *sub, const char *name)
{
    char p[4400];
    path_in(p, sizeof p, f, sub, name);
    json_error_t jerr;
    json_t *doc = json_load_file(p, 0, &jerr);
    if (doc == NULL)
        fail_msg("%s: %s", p, jerr.text);
    return doc;
}

static long long
count_of(json_t *rep, const char *key)
{
    return json_integer_value(json_object_get(json_object_get(rep, "counts"), key));
}

static const char *
rec_field(json_t *rep, size_t i, const char *key)
{
    return json_string_value(
        json_object_get(json_array_get(json_object_get(rep, "records"), i), key));
}

static long long
rec_int(json_t *rep, size_t i, const char *key)
{
    return json_integer_value(
        json_object_get(json_array_get(json_object_get(rep, "records"), i), key));
}

/* The proto3 JSON of a valid orientation, on one line; id "" leaves the id out. */
static char *
sample_json(const char *id)
{
    td_sample_t s;
    td_sample_orientation(&s, id[0] ? id : "placeholder");
    if (id[0] == '\0')
        s.env.message_id = "";
    char *text;
    pt_error_t err;
    assert_int_equal(pjson_to_string(&s.env.base, &text, &err), 0);
    return text;
}

/* The same with the member text `member` ("\"key\":value,") added first. */
static char *
sample_with(const char *id, const char *member)
{
    char *text = sample_json(id);
    size_t cap = strlen(text) + strlen(member) + 1;
    char *out = malloc(cap);
    snprintf(out, cap, "{%s%s", member, text + 1);
    free(text);
    return out;
}

/* With an unknown member "bogus" (a mapping error at "bogus"). */
static char *
sample_with_bogus(const char *id)
{
    return sample_with(id, "\"bogus\":1,");
}

static void
put_lines(const fx_t *f, const char *name, const char *const *lines, size_t n)
{
    size_t cap = 1;
    for (size_t i = 0; i < n; i++)
        cap += strlen(lines[i]) + 1;
    char *buf = calloc(1, cap);
    for (size_t i = 0; i < n; i++) {
        strcat(buf, lines[i]);
        strcat(buf, "\n");
    }
    put(f, NULL, name, buf);
    free(buf);
}

static void
rename_in(const fx_t *f, const char *from_sub, const char *from, const char *to_sub, const char *to)
{
    char a[4400], b[4400];
    path_in(a, sizeof a, f, from_sub, from);
    path_in(b, sizeof b, f, to_sub, to);
    assert_int_equal(rename(a, b), 0);
}

/* ---- tests ---- */

/* The documented way: NAME.tmp is never taken; once renamed to NAME it is. */
static void
test_tmp_then_rename(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *one = sample_json("m-tmp-1");
    put(f, NULL, "a.json.tmp", one);
    put(f, NULL, ".hidden.json", one);
    run_for(f, 300, 0);
    assert_true(file_exists(f, NULL, "a.json.tmp"));
    assert_true(file_exists(f, NULL, ".hidden.json"));
    assert_int_equal(f->rec.spool_calls, 0);
    rename_in(f, NULL, "a.json.tmp", NULL, "a.json");
    run_for(f, 3000, 1);
    assert_int_equal(f->rec.finished, 1);
    assert_false(file_exists(f, NULL, "a.json"));
    assert_true(file_exists(f, "done", "a.json"));
    json_t *rep = load_report(f, "done", "a.json.report.json");
    assert_string_equal(json_string_value(json_object_get(rep, "state")), "done");
    char p[4400];
    struct stat st;
    path_in(p, sizeof p, f, "done", "a.json.report.json");
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(count_of(rep, "spooled"), 1);
    assert_string_equal(rec_field(rep, 0, "messageId"), "m-tmp-1");
    assert_int_equal(f->rec.n_ids, 1);
    json_decref(rep);
    free(one);
}

/* Under the stability convention, a file whose size keeps changing is not taken; once
 * quiet for stable_ms it is, whole. */
static void
test_stable_while_written(void **state)
{
    fx_t *f = *state;
    f->opt.convention = PT_FILEDROP_STABLE;
    fx_start(f);
    char *l1 = sample_json("m-st-1"), *l2 = sample_json("m-st-2");
    put_lines(f, "s.jsonl", (const char *const[]){l1}, 1);
    run_for(f, 600, 0);
    assert_true(file_exists(f, NULL, "s.jsonl"));
    put_lines(f, "s.jsonl", (const char *const[]){l1, l2}, 2); /* still being written */
    run_for(f, 600, 0);
    assert_true(file_exists(f, NULL, "s.jsonl")); /* 1200 ms since first seen, 600 quiet */
    assert_int_equal(f->rec.spool_calls, 0);
    run_for(f, 3000, 1);
    assert_true(file_exists(f, "done", "s.jsonl"));
    assert_int_equal(f->rec.n_ids, 2); /* the whole file, not its first half */
    free(l1);
    free(l2);
}

/* Under the marker convention, NAME waits for NAME.done; the marker goes with it. */
static void
test_done_marker(void **state)
{
    fx_t *f = *state;
    f->opt.convention = PT_FILEDROP_MARKER;
    fx_start(f);
    char *one = sample_json("m-mk-1");
    put(f, NULL, "m.json", one);
    run_for(f, 300, 0);
    assert_true(file_exists(f, NULL, "m.json"));
    assert_int_equal(f->rec.spool_calls, 0);
    put(f, NULL, "m.json.done", "");
    run_for(f, 3000, 1);
    assert_true(file_exists(f, "done", "m.json"));
    assert_false(file_exists(f, NULL, "m.json.done"));
    assert_int_equal(f->rec.n_ids, 1);
    free(one);
}

/* A .jsonl with a BOM, a blank line and bad records of each kind: the good ones are
 * spooled, the report lists every record with its line, and no value is quoted. */
static void
test_jsonl_bad_records(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *good = sample_json("m-l-1"), *noid = sample_json(""), *bogus = sample_with_bogus("m-l-5");
    char *badid = sample_json("m-l-6");
    char *sp = strstr(badid, "m-l-6");
    memcpy(sp, "m l 6", 5); /* a message id with spaces: fails validation */
    char bom_good[4096];
    snprintf(bom_good, sizeof bom_good, "\xEF\xBB\xBF%s", good);
    char *badsender = sample_with(("m-l-7"), "\"sender\":\"Not#APartner\","); /* fails validation */
    const char *lines[] = {bom_good, "",       "{\"messageId\": SECRET-VALUE}", noid, bogus,
                           badid,    badsender};
    put_lines(f, "r.jsonl.tmp", lines, 7);
    rename_in(f, NULL, "r.jsonl.tmp", NULL, "r.jsonl");
    run_for(f, 3000, 1);
    json_t *rep = load_report(f, "done", "r.jsonl.report.json");
    assert_int_equal(count_of(rep, "records"), 6);
    assert_int_equal(count_of(rep, "spooled"), 2);
    assert_int_equal(count_of(rep, "bad"), 4);
    static const long long want_lines[] = {1, 3, 4, 5, 6, 7};
    static const char *const want_state[] = {"spooled", "bad", "spooled", "bad", "bad", "bad"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(rec_int(rep, i, "line"), want_lines[i]);
        assert_string_equal(rec_field(rep, i, "state"), want_state[i]);
    }
    assert_int_equal(rec_int(rep, 1, "column"), 20); /* jansson's: where the bad token ends */
    assert_string_equal(rec_field(rep, 3, "fieldPath"), "bogus");
    assert_string_equal(rec_field(rep, 4, "fieldPath"), "messageId");
    assert_null(rec_field(rep, 4, "messageId")); /* the wrong value is not quoted */
    assert_string_equal(rec_field(rep, 5, "fieldPath"), "sender");
    assert_string_equal(rec_field(rep, 5, "messageId"), "m-l-7"); /* a good id is named */
    /* the record without an id got the one derived from the file's hash and index 2 */
    char id[PT_FILEDROP_ID_MAX];
    uint8_t hash[PT_FILEDROP_HASH_LEN];
    const char *hex = json_string_value(json_object_get(rep, "sha256"));
    assert_non_null(hex);
    for (size_t i = 0; i < PT_FILEDROP_HASH_LEN; i++)
        sscanf(hex + 2 * i, "%2hhx", &hash[i]);
    filedrop_record_id(hash, 2, id);
    assert_string_equal(rec_field(rep, 2, "messageId"), id);
    assert_string_equal(f->rec.ids[1], id);
    char *text = json_dumps(rep, 0);
    assert_null(strstr(text, "SECRET"));
    free(text);
    json_decref(rep);
    free(good);
    free(noid);
    free(bogus);
    free(badid);
    free(badsender);
}

/* A .json whose one record does not map is done/ with the record reported bad; a .json
 * with a BOM is taken. */
static void
test_json_files(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *bogus = sample_with_bogus("m-j-1"), *good = sample_json("m-j-2");
    char bom_good[4096];
    snprintf(bom_good, sizeof bom_good, "\xEF\xBB\xBF%s", good);
    put(f, NULL, "bad.json", bogus);
    put(f, NULL, "good.json", bom_good);
    put(f, NULL, "latin1-name-\xe9.json", good); /* the same record (no BOM): alreadySpooled */
    run_for(f, 3000, 3);
    json_t *dup = load_report(f, "done", "latin1-name-\xe9.json.report.json");
    const char *shown = json_string_value(json_object_get(dup, "file"));
    assert_non_null(shown); /* a name that is not UTF-8 is shown escaped */
    assert_non_null(strstr(shown, "\\x"));
    json_decref(dup);
    json_t *rep = load_report(f, "done", "bad.json.report.json");
    assert_int_equal(count_of(rep, "bad"), 1);
    assert_int_equal(count_of(rep, "spooled"), 0);
    assert_string_equal(rec_field(rep, 0, "fieldPath"), "bogus");
    json_decref(rep);
    rep = load_report(f, "done", "good.json.report.json");
    assert_int_equal(count_of(rep, "spooled"), 1);
    json_decref(rep);
    assert_int_equal(f->rec.n_ids, 1);
    free(bogus);
    free(good);
}

/* all_or_nothing: one bad record and nothing of the file is sent; it goes to failed/. */
static void
test_all_or_nothing(void **state)
{
    fx_t *f = *state;
    f->opt.all_or_nothing = true;
    fx_start(f);
    char *good = sample_json("m-a-1");
    put_lines(f, "x.jsonl", (const char *const[]){good, "{"}, 2);
    run_for(f, 3000, 1);
    assert_int_equal(f->rec.spool_calls, 0);
    assert_int_equal(f->rec.failed, 1);
    assert_true(file_exists(f, "failed", "x.jsonl"));
    json_t *rep = load_report(f, "failed", "x.jsonl.error.json");
    assert_string_equal(rec_field(rep, 0, "state"), "notSent");
    assert_string_equal(rec_field(rep, 1, "state"), "bad");
    assert_non_null(json_object_get(rep, "error"));
    json_decref(rep);
    free(good);
}

/* ---- staged files, over a real spool (as the runtime) ---- */

static int
real_seen(void *ctx, const filedrop_file_t *file)
{
    fx_t *f = ctx;
    uint8_t *v = NULL;
    size_t n = 0;
    pt_error_t err;
    int rc = spool_kv_get(f->spool, "files", file->hash, PT_FILEDROP_HASH_LEN, &v, &n, &err);
    free(v);
    return rc == 0 ? 1 : rc == PT_ENOTFOUND ? 0 : rc;
}

static int
real_spool(void *ctx, const filedrop_file_t *file, filedrop_record_t *recs, size_t n)
{
    fx_t *f = ctx;
    pt_error_t err;
    f->spool_calls++;
    for (size_t i = 0; i < n; i++) {
        uint8_t *buf = NULL;
        size_t len = 0;
        spool_put_result_t res;
        assert_int_equal(codec_pack(&recs[i].env->base, 1 << 20, &buf, &len, &err), 0);
        spool_msg_t m = {.message_id = recs[i].env->message_id,
                         .data = buf,
                         .len = len,
                         .source = SPOOL_SRC_FILE};
        assert_int_equal(spool_put(f->spool, &m, &res, &err), 0);
        recs[i].outcome = res.duplicate ? PT_FILEDROP_ALREADY : PT_FILEDROP_SPOOLED;
        free(buf);
    }
    int64_t at = 1;
    assert_int_equal(
        spool_kv_put(f->spool, "files", file->hash, PT_FILEDROP_HASH_LEN, &at, sizeof at, &err), 0);
    return spool_commit(f->spool, &err);
}

static int
real_commit(void *ctx)
{
    pt_error_t err;
    return spool_commit(((fx_t *)ctx)->spool, &err);
}

static void
real_finished(void *ctx, const filedrop_file_t *file, const char *dest, bool failed)
{
    rec_finished(&((fx_t *)ctx)->rec, file, dest, failed);
}

static const filedrop_ops_t real_ops = {
    .seen = real_seen, .spool = real_spool, .finished = real_finished, .commit = real_commit};

static void
real_start(fx_t *f)
{
    char dir[4300];
    pt_error_t err;
    snprintf(dir, sizeof dir, "%s/spool", f->dir);
    spool_options_t so = {.dir = dir, .unsafe_nosync = true};
    assert_int_equal(spool_open(&so, &f->spool, &err), 0);
    f->opt.spool = f->spool;
    if (filedrop_open(&f->fd, &f->loop, &f->opt, &real_ops, f, &err) != 0)
        fail_msg("filedrop_open: %s", err.msg);
}

static int
count_one(void *arg, const spool_entry_t *e)
{
    (void)e;
    (*(size_t *)arg)++;
    return 0;
}

static size_t
sendable(fx_t *f)
{
    size_t n = 0;
    pt_error_t err;
    assert_int_equal(spool_next_to_send(f->spool, INT64_MAX, SIZE_MAX, count_one, &n, NULL, &err),
                     0);
    return n;
}

static size_t
lifecycles(fx_t *f)
{
    spool_stats_t st;
    pt_error_t err;
    assert_int_equal(spool_stats(f->spool, 0, &st, &err), 0);
    return st.lifecycles;
}

#define STAGED_N 5000 /* more than one chunk of PT_FILEDROP_CHUNK */

/* STAGED_N good lines, then `last` (NULL: none). */
static void
put_staged(fx_t *f, const char *name, const char *last)
{
    char *good = sample_json("");
    const char **lines = calloc(STAGED_N + 1, sizeof *lines);
    for (size_t i = 0; i < STAGED_N; i++)
        lines[i] = good;
    lines[STAGED_N] = last;
    put_lines(f, name, lines, last ? STAGED_N + 1 : STAGED_N);
    free(lines);
    free(good);
}

/* A file of more than one chunk: its first chunk is committed before its end, and the
 * whole file becomes sendable at once with the last commit. */
static void
test_staged_file_in_chunks(void **state)
{
    fx_t *f = *state;
    real_start(f);
    put_staged(f, "big.jsonl", NULL);
    run_for(f, 20000, 1);
    assert_true(file_exists(f, "done", "big.jsonl"));
    assert_int_equal(f->spool_calls, 2);
    assert_false(spool_stage_pending(f->spool));
    assert_int_equal(sendable(f), STAGED_N);
    json_t *rep = load_report(f, "done", "big.jsonl.report.json");
    json_t *counts = json_object_get(rep, "counts");
    assert_int_equal(json_integer_value(json_object_get(counts, "spooled")), STAGED_N);
    assert_int_equal(json_array_size(json_object_get(rep, "records")), STAGED_N);
    assert_string_equal(rec_field(rep, STAGED_N - 1, "state"), "spooled");
    json_decref(rep);
}

/* All or nothing, the bad record after the first chunk's commit: the chunk is rolled
 * back, nothing is left in the spool, the report says notSent. */
static void
test_staged_file_all_or_nothing_rolls_back(void **state)
{
    fx_t *f = *state;
    f->opt.all_or_nothing = true;
    real_start(f);
    put_staged(f, "big.jsonl", "{");
    run_for(f, 20000, 1);
    assert_true(file_exists(f, "failed", "big.jsonl"));
    assert_int_equal(f->spool_calls, 1); /* the first chunk was committed */
    assert_false(spool_stage_pending(f->spool));
    assert_int_equal(sendable(f), 0);
    assert_int_equal(lifecycles(f), 0);
    json_t *rep = load_report(f, "failed", "big.jsonl.error.json");
    assert_string_equal(rec_field(rep, 0, "state"), "notSent");
    assert_string_equal(rec_field(rep, STAGED_N, "state"), "bad");
    json_decref(rep);
    /* the same file fixed is taken as new (its hash was rolled back with the rest) */
    put_staged(f, "fixed.jsonl", NULL);
    run_for(f, 20000, 2);
    assert_int_equal(sendable(f), STAGED_N);
}

/* The same bytes dropped twice (under two names): the second is a duplicate and sends
 * nothing. */
static void
test_same_file_twice(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *a = sample_json(""), *b = sample_json("m-d-2");
    put_lines(f, "first.jsonl", (const char *const[]){a, b}, 2);
    run_for(f, 3000, 1);
    assert_int_equal(f->rec.n_ids, 2);
    put_lines(f, "again.jsonl", (const char *const[]){a, b}, 2);
    run_for(f, 3000, 2);
    assert_int_equal(f->rec.spool_calls, 1);
    assert_int_equal(f->rec.n_ids, 2);
    assert_int_equal(f->rec.already, 0);
    json_t *rep = load_report(f, "done", "again.jsonl.report.json");
    assert_string_equal(json_string_value(json_object_get(rep, "state")), "duplicate");
    assert_int_equal(count_of(rep, "spooled"), 0);
    json_decref(rep);
    free(a);
    free(b);
}

/* Files that cannot be read at all go to failed/ with NAME.error.json saying why. */
static void
test_unreadable_files(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    put(f, NULL, "latin1.json", "{\"messageId\": \"caf\xe9\"}");
    put(f, NULL, "cut.json", "{\"messageId\": \"m-u-1\", \"sender\"");
    put(f, NULL, "notes.txt", "hello");
    put(f, NULL, "garbage.jsonl", "not json\nat all\n");
    run_for(f, 3000, 4);
    assert_int_equal(f->rec.failed, 4);
    assert_int_equal(f->rec.spool_calls, 0);
    static const char *const names[] = {"latin1.json", "cut.json", "notes.txt", "garbage.jsonl"};
    static const char *const why[] = {"UTF-8", "not a JSON document", "no format",
                                      "not JSON Lines"};
    for (size_t i = 0; i < 4; i++) {
        char er[256];
        snprintf(er, sizeof er, "%s.error.json", names[i]);
        assert_true(file_exists(f, "failed", names[i]));
        json_t *rep = load_report(f, "failed", er);
        const char *msg =
            json_string_value(json_object_get(json_object_get(rep, "error"), "message"));
        assert_non_null(msg);
        if (strstr(msg, why[i]) == NULL)
            fail_msg("%s: %s", names[i], msg);
        json_decref(rep);
    }
}

/* A file left in processing/ by a crash is resumed at start. Then, the crash after the
 * spool's commit but before the move: the same file back in processing/ (and its report
 * left as an orphan) is resumed again, every record is answered "already" by the spool,
 * no id is spooled twice, and the file takes back its name in done/. */
static void
test_resume_after_crash(void **state)
{
    fx_t *f = *state;
    char *a = sample_json(""), *b = sample_json("");
    char p[4400];
    fx_start(f); /* makes the folders */
    fx_stop(f);
    put_lines(f, "c.jsonl", (const char *const[]){a, b}, 2);
    rename_in(f, NULL, "c.jsonl", "processing", "c.jsonl");
    fx_start(f);
    run_for(f, 3000, 1);
    assert_true(file_exists(f, "done", "c.jsonl"));
    assert_int_equal(f->rec.n_ids, 2);
    fx_stop(f);

    rename_in(f, "done", "c.jsonl", "processing", "c.jsonl");
    fx_start(f);
    run_for(f, 3000, 2);
    assert_int_equal(f->rec.n_ids, 2);
    assert_int_equal(f->rec.already, 2);
    for (size_t i = 0; i < f->rec.n_ids; i++)
        assert_int_equal(f->rec.taken[i], 1);
    assert_true(file_exists(f, "done", "c.jsonl"));
    assert_false(file_exists(f, "done", "c.1.jsonl"));
    path_in(p, sizeof p, f, "processing", "c.jsonl");
    assert_int_equal(access(p, F_OK), -1);
    json_t *rep = load_report(f, "done", "c.jsonl.report.json");
    assert_int_equal(count_of(rep, "alreadySpooled"), 2);
    assert_true(json_is_true(json_object_get(rep, "resumed")));
    json_decref(rep);
    free(a);
    free(b);
}

/* A record that the spool refuses is reported as refused, with the spool's reason. */
static void
test_spool_refused(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *a = sample_json("refuse-1"), *b = sample_json("m-r-2");
    put_lines(f, "q.jsonl", (const char *const[]){a, b}, 2);
    run_for(f, 3000, 1);
    json_t *rep = load_report(f, "done", "q.jsonl.report.json");
    assert_string_equal(rec_field(rep, 0, "state"), "refused");
    assert_string_equal(rec_field(rep, 0, "code"), "id_conflict");
    assert_string_equal(rec_field(rep, 0, "messageId"), "refuse-1");
    assert_string_equal(rec_field(rep, 1, "state"), "spooled");
    assert_int_equal(count_of(rep, "refused"), 1);
    json_decref(rep);
    free(a);
    free(b);
}

/* A spool call that fails leaves the file in processing/; the next scan retries it. */
static void
test_spool_failure_retried(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    f->rec.fail_next = 1;
    char *a = sample_json("m-f-1");
    put(f, NULL, "f.json", a);
    run_for(f, 3000, 1);
    assert_int_equal(f->rec.spool_calls, 2);
    assert_true(file_exists(f, "done", "f.json"));
    assert_int_equal(f->rec.n_ids, 1);
    free(a);
}

/* A claim never replaces a file of the same name waiting in processing/ (here one whose
 * spool call failed): the newcomer gets a suffix and both are sent. */
static void
test_claim_collision(void **state)
{
    fx_t *f = *state;
    char *a = sample_json("m-p-1"), *b = sample_json("m-p-2");
    fx_start(f);
    fx_stop(f);
    put(f, "processing", "p.json", a);
    put(f, NULL, "p.json", b);
    f->rec.fail_next = 1; /* the waiting one fails first, so it is still there at the claim */
    fx_start(f);
    run_for(f, 3000, 2);
    assert_int_equal(f->rec.n_ids, 2);
    assert_true(file_exists(f, "done", "p.json"));
    assert_true(file_exists(f, "done", "p.1.json"));
    free(a);
    free(b);
}

/* Names that collide in done/ get a suffix; nothing is overwritten. */
static void
test_collision_in_done(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    char *a = sample_json("m-c-1"), *b = sample_json("m-c-2");
    put(f, "done", "n.json", "older file");
    put(f, NULL, "n.json", a);
    run_for(f, 3000, 1);
    put(f, NULL, "n.json", b);
    run_for(f, 3000, 2);
    uint8_t *data;
    size_t len;
    char p[4400];
    path_in(p, sizeof p, f, "done", "n.json");
    assert_int_equal(tu_read_file(p, &data, &len), 0);
    assert_memory_equal(data, "older file", 10);
    free(data);
    assert_false(file_exists(f, "done", "n.json.report.json")); /* ours never took it */
    assert_true(file_exists(f, "done", "n.1.json"));
    assert_true(file_exists(f, "done", "n.2.json"));
    json_t *r1 = load_report(f, "done", "n.1.json.report.json");
    json_t *r2 = load_report(f, "done", "n.2.json.report.json");
    assert_string_equal(rec_field(r1, 0, "messageId"), "m-c-1");
    assert_string_equal(rec_field(r2, 0, "messageId"), "m-c-2");
    assert_string_equal(json_string_value(json_object_get(r2, "storedAs")), "n.2.json");
    json_decref(r1);
    json_decref(r2);
    free(a);
    free(b);
}

/* A child process takes a file and is killed (SIGKILL) in the spool call, before or
 * after the commit; the restarted watcher resumes the file from processing/: every
 * record is spooled exactly once in all, and the file ends in done/. */
static void
kill_during_file(fx_t *f, int kill_at)
{
    char *a = sample_json(""), *b = sample_json(""), *c = sample_json("m-k-3");
    snprintf(f->rec.persist, sizeof f->rec.persist, "%s/spool.ids", f->dir);
    fx_start(f);
    fx_stop(f);
    put_lines(f, "k.jsonl.tmp", (const char *const[]){a, b, c}, 3);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(10);
        uv_loop_fork(&f->loop); /* the child gets its own epoll instance */
        f->rec.kill_at = kill_at;
        fx_start(f);
        rename_in(f, NULL, "k.jsonl.tmp", NULL, "k.jsonl");
        run_for(f, 5000, 1);
        _exit(3); /* not killed: the parent sees a wrong status */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(file_exists(f, "processing", "k.jsonl"));
    rec_reload(&f->rec);
    assert_int_equal(f->rec.n_ids, kill_at == 2 ? 3 : 0);
    fx_start(f);
    run_for(f, 3000, 1);
    assert_true(file_exists(f, "done", "k.jsonl"));
    assert_int_equal(f->rec.n_ids, 3);
    for (size_t i = 0; i < f->rec.n_ids; i++)
        assert_int_equal(f->rec.taken[i], 1);
    json_t *rep = load_report(f, "done", "k.jsonl.report.json");
    assert_int_equal(count_of(rep, kill_at == 2 ? "alreadySpooled" : "spooled"), 3);
    json_decref(rep);
    free(a);
    free(b);
    free(c);
}

static void
test_kill9_before_commit(void **state)
{
    kill_during_file(*state, 1);
}

static void
test_kill9_after_commit(void **state)
{
    kill_during_file(*state, 2);
}

/* A file over max_file_size goes to failed/, the error saying the limit. */
static void
test_too_large(void **state)
{
    fx_t *f = *state;
    f->opt.max_file_size = 64;
    fx_start(f);
    char *a = sample_json("m-big-1");
    put(f, NULL, "big.json", a);
    run_for(f, 3000, 1);
    assert_int_equal(f->rec.failed, 1);
    json_t *rep = load_report(f, "failed", "big.json.error.json");
    const char *msg = json_string_value(json_object_get(json_object_get(rep, "error"), "message"));
    assert_non_null(strstr(msg, "over the limit of 64 bytes"));
    json_decref(rep);
    free(a);
}

/* Folders are made 0700; an inbox that cannot be made is refused naming it. */
static void
test_folders(void **state)
{
    fx_t *f = *state;
    fx_start(f);
    static const char *const subs[] = {"", "/processing", "/done", "/failed"};
    for (size_t i = 0; i < 4; i++) {
        char p[4400];
        struct stat st;
        snprintf(p, sizeof p, "%s%s", f->inbox, subs[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
    }
    char bad[4400];
    snprintf(bad, sizeof bad, "%s/no/such/parent", f->dir);
    filedrop_options_t o = f->opt;
    o.inbox = bad;
    filedrop_t *fd2;
    pt_error_t err;
    assert_int_not_equal(filedrop_open(&fd2, &f->loop, &o, &rec_ops, &f->rec, &err), 0);
    assert_null(fd2);
    assert_non_null(strstr(err.msg, bad));
    assert_non_null(strstr(err.msg, "create it"));
}

/* The splitter alone: CRLF endings, no final newline, the record limit. */
static void
test_decode_jsonl(void **state)
{
    (void)state;
    char *a = sample_json("m-s-1");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s\r\n\r\n%s", a, a);
    filedrop_record_t *recs;
    size_t n;
    pt_error_t err;
    assert_int_equal(filedrop_decode(&filedrop_codec_jsonl, buf, strlen(buf), 10, &recs, &n, &err),
                     0);
    assert_int_equal(n, 2);
    assert_non_null(recs[0].env);
    assert_non_null(recs[1].env);
    assert_int_equal(recs[1].line, 3);
    assert_int_equal(recs[1].index, 1);
    filedrop_records_free(&recs, n);
    assert_int_equal(filedrop_decode(&filedrop_codec_jsonl, buf, strlen(buf), 1, &recs, &n, &err),
                     PT_ETOOLARGE);
    assert_null(recs);
    assert_int_equal(filedrop_decode(&filedrop_codec_jsonl, " \n\n", 3, 10, &recs, &n, &err),
                     PT_EMALFORMED);
    free(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tmp_then_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stable_while_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_done_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_bad_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staged_file_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_staged_file_all_or_nothing_rolls_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_file_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resume_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_failure_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_claim_collision, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collision_in_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_folders, setup, teardown),
        cmocka_unit_test(test_decode_jsonl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
