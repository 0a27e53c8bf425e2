/* Unit tests of atomic file writes (common/atomicfile.c), which key files use now and
 * the adapters' outbox and reports will: the new content replaces the old whole, the
 * mode is exact whatever the umask, and a link planted at the tmp name is never written
 * through; a batch's files appear only at its commit, each whole, in two folders, and a
 * discarded batch leaves nothing. Also the byte codecs (common/bytes.h) and the LMDB code map. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "atomicfile.h"
#include "bytes.h"
#include "lmdbx.h"
#include "testutil.h"

static void
test_write_replace_and_mode(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("atomic"), path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/out.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    pt_error_t err;
    mode_t old = umask(077);
    assert_int_equal(atomicfile_write(path, "first", 5, 0644, &err), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644); /* exact, whatever the umask */
    assert_int_equal(atomicfile_write(path, "second!", 7, 0600, &err), 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(tu_read_file(path, &data, &len), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(data, "second!", 7);
    free(data);
    assert_int_equal(access(tmp, F_OK), -1); /* no tmp left behind */
    assert_int_equal(atomicfile_sync_dir(path), 0);
    tu_rmtree(dir);
}

static void
test_planted_tmp_link_not_followed(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("atomic"), path[4200], tmp[4300], victim[4200];
    snprintf(path, sizeof path, "%s/out.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    assert_int_equal(tu_write_file(victim, "keep", 4), 0);
    assert_int_equal(symlink(victim, tmp), 0);
    pt_error_t err;
    assert_int_equal(atomicfile_write(path, "new", 3, 0600, &err), 0);
    uint8_t *data;
    size_t len;
    assert_int_equal(tu_read_file(victim, &data, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "keep", 4); /* the link's target is untouched */
    free(data);
    tu_rmtree(dir);
}

static void
test_missing_folder_is_an_error(void **state)
{
    (void)state;
    pt_error_t err;
    assert_int_equal(atomicfile_write("/nonexistent-ptibus/x", "a", 1, 0600, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot create"));
}

static void
test_bytes_and_lmdb_codes(void **state)
{
    (void)state;
    uint8_t b[8];
    bytes_be64_put(b, 0x0102030405060708ull);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[7], 8);
    assert_true(bytes_be64_get(b) == 0x0102030405060708ull);
    bytes_le_put(b, 0x0a0b0c0d, 4);
    assert_int_equal(b[0], 0x0d);
    assert_int_equal(bytes_le_get(b, 4), 0x0a0b0c0d);
    assert_int_equal(lmdbx_code(0), 0);
    assert_int_equal(lmdbx_code(MDB_NOTFOUND), PT_ENOTFOUND);
    assert_int_equal(lmdbx_code(MDB_MAP_FULL), PT_EJOURNALFULL);
    assert_int_equal(lmdbx_code(EACCES), -EACCES);
    pt_error_t err;
    assert_int_equal(lmdbx_fail(&err, MDB_CORRUPTED, "x", "open"), PT_ECORRUPT);
    assert_non_null(strstr(err.msg, "open: "));
}

static bool
there(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void
test_batch_appears_at_commit(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("atomic-batch"), sub[4200], a[4300], b[4300], c[4300];
    snprintf(sub, sizeof sub, "%s/receipts", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(a, sizeof a, "%s/a.json", dir);
    snprintf(b, sizeof b, "%s/b.json", dir);
    snprintf(c, sizeof c, "%s/c.json", sub);
    atomicfile_batch_t *bt = NULL;
    pt_error_t err;
    assert_int_equal(atomicfile_batch_new(&bt), 0);
    assert_int_equal(atomicfile_batch_add(bt, a, "zz", 2, 0640, &err), 0);
    assert_int_equal(atomicfile_batch_add(bt, b, "BB", 2, 0600, &err), 0);
    assert_int_equal(atomicfile_batch_add(bt, c, "C", 1, 0600, &err), 0);
    assert_int_equal(atomicfile_batch_count(bt), 3);
    assert_false(there(a)); /* staged: not under its name yet */
    size_t len = 0;
    uint8_t *got = NULL;
    const char *staged = atomicfile_batch_staged(bt, b);
    assert_non_null(staged);
    assert_int_equal(tu_read_file(staged, &got, &len), 0); /* the tmp holds the bytes */
    assert_int_equal(len, 2);
    assert_memory_equal(got, "BB", 2);
    free(got);
    assert_null(atomicfile_batch_staged(bt, "/nowhere"));
    assert_int_equal(atomicfile_batch_add(bt, a, "AAA", 3, 0640, &err), 0); /* a again */
    assert_int_equal(atomicfile_batch_count(bt), 3);
    assert_int_equal(atomicfile_batch_commit(bt, &err), 0);
    assert_int_equal(atomicfile_batch_count(bt), 0);
    assert_int_equal(tu_read_file(a, &got, &len), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "AAA", 3);
    free(got);
    struct stat st;
    assert_int_equal(stat(a, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_true(there(b) && there(c));
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", a);
    assert_false(there(tmp));
    atomicfile_batch_free(&bt);
    assert_null(bt);
    tu_rmtree(dir);
}

static void
test_batch_discard_leaves_nothing(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("atomic-discard"), a[4300], tmp[4400];
    snprintf(a, sizeof a, "%s/a.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", a);
    atomicfile_batch_t *bt = NULL;
    pt_error_t err;
    assert_int_equal(atomicfile_batch_new(&bt), 0);
    assert_int_equal(atomicfile_batch_add(bt, a, "x", 1, 0600, &err), 0);
    assert_true(there(tmp));
    atomicfile_batch_discard(bt);
    assert_false(there(tmp));
    assert_false(there(a));
    assert_int_equal(atomicfile_batch_add(bt, a, "y", 1, 0600, &err), 0);
    atomicfile_batch_free(&bt); /* freeing discards too */
    assert_false(there(tmp));
    assert_false(there(a));
    tu_rmtree(dir);
}

static void
test_batch_commit_failure_removes_the_rest(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("atomic-fail"), sub[4200], a[4300], b[4300], tmp[4400];
    snprintf(sub, sizeof sub, "%s/gone", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(a, sizeof a, "%s/a.json", sub);
    snprintf(b, sizeof b, "%s/b.json", dir);
    atomicfile_batch_t *bt = NULL;
    pt_error_t err;
    assert_int_equal(atomicfile_batch_new(&bt), 0);
    assert_int_equal(atomicfile_batch_add(bt, a, "x", 1, 0600, &err), 0);
    assert_int_equal(atomicfile_batch_add(bt, b, "y", 1, 0600, &err), 0);
    /* a's tmp goes away with its folder: the commit cannot rename it */
    snprintf(tmp, sizeof tmp, "%s.tmp", a);
    assert_int_equal(unlink(tmp), 0);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(atomicfile_batch_commit(bt, &err), -ENOENT);
    assert_non_null(strstr(err.path, "a.json"));
    snprintf(tmp, sizeof tmp, "%s.tmp", b);
    assert_false(there(tmp)); /* the file after the failure is removed, not left staged */
    assert_false(there(b));
    assert_int_equal(atomicfile_batch_count(bt), 0);
    atomicfile_batch_free(&bt);
    tu_rmtree(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_replace_and_mode),
        cmocka_unit_test(test_planted_tmp_link_not_followed),
        cmocka_unit_test(test_missing_folder_is_an_error),
        cmocka_unit_test(test_bytes_and_lmdb_codes),
        cmocka_unit_test(test_batch_appears_at_commit),
        cmocka_unit_test(test_batch_discard_leaves_nothing),
        cmocka_unit_test(test_batch_commit_failure_removes_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
