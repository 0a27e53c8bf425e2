/* Unit tests of atomic file writes (common/atomicfile.c), which key files use now and
 * the adapters' outbox and reports will: the new content replaces the old whole, the
 * mode is exact whatever the umask, and a link planted at the tmp name is never written
 * through. Also the byte codecs (common/bytes.h) and the LMDB code map. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_replace_and_mode),
        cmocka_unit_test(test_planted_tmp_link_not_followed),
        cmocka_unit_test(test_missing_folder_is_an_error),
        cmocka_unit_test(test_bytes_and_lmdb_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
