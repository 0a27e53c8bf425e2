/* Security tests of the broker's files and process: a journal folder that others can
 * open or that belongs to another user is refused (by journal_open and by a real
 * ptibusd, with a message saying what to fix); the running daemon has no core limit
 * above 0 (/proc/PID/limits) and --check-config still reads the keys. */
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
#include <sodium.h>

#include "daemon.h"
#include "journal.h"
#include "testutil.h"

static const uint8_t hmac_key[32] = "0123456789abcdef0123456789abcdef";

static int
open_journal(const char *dir, pt_error_t *err)
{
    journal_options_t o = {.dir = dir, .hmac_key = hmac_key};
    journal_t *j = NULL;
    int rc = journal_open(&o, &j, err);
    journal_close(&j);
    return rc;
}

static mode_t
mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* A new folder is 0700 whatever the umask; an existing one open to group or others is
 * refused until chmod 700, and so is one owned by another user. */
static void
test_journal_folder_checked(void **state)
{
    (void)state;
    char *base = tu_tmpdir("jfolder");
    char dir[4200];
    pt_error_t err;
    snprintf(dir, sizeof dir, "%s/j", base);
    mode_t old = umask(0);
    assert_int_equal(open_journal(dir, &err), 0);
    umask(old);
    assert_int_equal(mode_of(dir), 0700);
    assert_int_equal(chmod(dir, 0777), 0);
    assert_int_equal(open_journal(dir, &err), PT_EDENIED);
    char want[9000];
    snprintf(want, sizeof want,
             "%s: the journal folder has mode 0777, open to group or others; fix it with: "
             "chmod 700 %s",
             dir, dir);
    assert_string_equal(err.msg, want);
    assert_int_equal(mode_of(dir), 0777); /* refused, not silently changed */
    assert_int_equal(chmod(dir, 0750), 0);
    assert_int_equal(open_journal(dir, &err), PT_EDENIED);
    assert_int_equal(chmod(dir, 0700), 0);
    assert_int_equal(open_journal(dir, &err), 0);
    if (geteuid() == 0) { /* only root can give the folder away */
        assert_int_equal(chown(dir, 65534, 65534), 0);
        assert_int_equal(open_journal(dir, &err), PT_EDENIED);
        assert_non_null(strstr(err.msg, "owned by uid 65534, not by the broker's user (uid 0); "
                                        "fix it with: chown -R 0"));
        assert_int_equal(chown(dir, 0, 0), 0);
        assert_int_equal(open_journal(dir, &err), 0);
    }
    tu_rmtree(base);
}

/* The real daemon refuses to start on a world-readable journal folder. */
static void
test_daemon_refuses_open_journal_folder(void **state)
{
    (void)state;
    td_net_t net;
    td_net_init(&net, "jfolder-d", NULL);
    assert_int_equal(mkdir(net.journal_dir, 0755), 0);
    assert_int_equal(chmod(net.journal_dir, 0755), 0);
    int rc = td_broker_start(&net);
    if (rc == 0)
        td_broker_stop(&net); /* do not leave a daemon behind a failed test */
    assert_int_equal(rc, -1);
    assert_true(td_log_contains(&net, "the journal folder has mode 0755"));
    assert_true(td_log_contains(&net, "chmod 700"));
    assert_int_equal(chmod(net.journal_dir, 0700), 0);
    assert_int_equal(td_broker_start(&net), 0);
    td_net_fini(&net);
}

/* The running daemon cannot dump core: its RLIMIT_CORE, as /proc shows it to anyone
 * who may read it, is 0 soft and hard. */
static void
test_daemon_no_core(void **state)
{
    (void)state;
    td_net_t net;
    td_net_init(&net, "nocore", NULL);
    assert_int_equal(td_broker_start(&net), 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/limits", (int)net.pid);
    uint8_t *text = NULL;
    size_t len;
    int rc = tu_read_file(path, &text, &len);
    td_net_fini(&net);
    assert_int_equal(rc, 0);
    char *line = strstr((char *)text, "Max core file size");
    assert_non_null(line);
    char soft[32] = "", hard[32] = ""; /* "unlimited" before the fix */
    assert_int_equal(sscanf(line + strlen("Max core file size"), " %31s %31s", soft, hard), 2);
    assert_string_equal(soft, "0");
    assert_string_equal(hard, "0");
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_folder_checked),
        cmocka_unit_test(test_daemon_refuses_open_journal_folder),
        cmocka_unit_test(test_daemon_no_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
