/* Power loss under a batch of atomic files (atomicfile_batch_*, the outbox's way of
 * making a turn's files durable together): a child, the power-cut shim preloaded over its
 * folder, writes batches of files of various sizes and reports each batch it committed
 * through a pipe; the power is cut at a random write. Then every file of a committed batch
 * must be there whole, and no file may ever appear under its final name with less than
 * its whole content (a torn or empty file handed to a partner). Several cuts, each at a
 * random write (PT_POWERCUT_CUTS, default 20; PT_POWERCUT_SEED). */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "atomicfile.h"
#include "testutil.h"

#define FILES_PER_BATCH 8
#define BATCHES_MAX 40
#define CUT_MAX 200 /* writes before a cut, drawn in [1, CUT_MAX] */

/* The bytes of file i of batch r: a length and a pattern both derived from (r, i). */
static size_t
content_of(unsigned r, unsigned i, char *buf, size_t cap)
{
    size_t len = 1 + ((r * FILES_PER_BATCH + i) * 977u) % (cap - 1);
    for (size_t k = 0; k < len; k++)
        buf[k] = (char)('a' + (r * 7 + i * 3 + k) % 26);
    return len;
}

static int
child(const char *dir, int report_fd)
{
    atomicfile_batch_t *b = NULL;
    if (atomicfile_batch_new(&b) != 0)
        return 2;
    static char buf[9000];
    for (unsigned r = 0; r < BATCHES_MAX; r++) {
        pt_error_t err;
        for (unsigned i = 0; i < FILES_PER_BATCH; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/f-%u-%u.json", dir, r, i);
            size_t len = content_of(r, i, buf, sizeof buf);
            if (atomicfile_batch_add(b, path, buf, len, 0600, &err) != 0)
                return 2;
        }
        if (atomicfile_batch_commit(b, &err) != 0)
            return 2;
        char line[16];
        int n = snprintf(line, sizeof line, "%u\n", r);
        if (write(report_fd, line, (size_t)n) != n) /* not under the shim's folder */
            return 2;
    }
    atomicfile_batch_free(&b);
    return 3; /* every batch done before the cut: the parent draws again */
}

/* Checks dir after a cut: committed batches whole, every final name whole. Returns the
 * number of final files found. */
static unsigned
check_dir(const char *dir, int committed)
{
    static char want[9000];
    unsigned found = 0;
    for (unsigned r = 0; r < BATCHES_MAX; r++) {
        for (unsigned i = 0; i < FILES_PER_BATCH; i++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/f-%u-%u.json", dir, r, i);
            uint8_t *got = NULL;
            size_t len = 0;
            int rc = tu_read_file(path, &got, &len);
            if (rc != 0) {
                if ((int)r <= committed)
                    fail_msg("batch %u was committed but file %u is missing", r, i);
                continue;
            }
            size_t wl = content_of(r, i, want, sizeof want);
            if (len != wl || memcmp(got, want, wl) != 0)
                fail_msg("f-%u-%u.json is under its final name with %zu of its %zu bytes", r, i,
                         len, wl);
            free(got);
            found++;
        }
    }
    return found;
}

static int
run_cut(const char *dir, long after)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        char fd[16], after_s[32];
        snprintf(fd, sizeof fd, "%d", p[1]);
        snprintf(after_s, sizeof after_s, "%ld", after);
        setenv("LD_PRELOAD", PT_POWERCUT_SHIM_PATH, 1);
        setenv("PT_POWERCUT_DIR", dir, 1);
        setenv("PT_POWERCUT_AFTER", after_s, 1);
        execl("/proc/self/exe", "test_atomicfile_power_loss", "--child", dir, fd, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[4096];
    size_t got = 0;
    for (ssize_t n; (n = read(p[0], buf + got, sizeof buf - 1 - got)) > 0;)
        got += (size_t)n;
    close(p[0]);
    buf[got] = '\0';
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    int committed = -1;
    for (char *s = buf; *s != '\0'; s = strchr(s, '\n') + 1)
        committed = atoi(s);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        return -2; /* not cut */
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child was not cut (status %d)", status);
    return committed;
}

static void
test_no_torn_file_and_committed_batches_whole(void **state)
{
    (void)state;
    const char *cs = getenv("PT_POWERCUT_CUTS"), *ss = getenv("PT_POWERCUT_SEED");
    unsigned cuts = cs ? (unsigned)atoi(cs) : 20;
    unsigned seed = ss ? (unsigned)strtoul(ss, NULL, 10) : (unsigned)time(NULL);
    printf("atomicfile power loss: seed %u, %u cuts\n", seed, cuts);
    srand(seed);
    unsigned total_committed = 0, total_found = 0;
    for (unsigned c = 0; c < cuts; c++) {
        char *dir = tu_tmpdir("atomicfile-powercut");
        long after = 1 + rand() % CUT_MAX;
        int committed = run_cut(dir, after);
        if (committed == -2) {
            tu_rmtree(dir);
            continue;
        }
        total_found += check_dir(dir, committed);
        total_committed += (unsigned)(committed + 1);
        tu_rmtree(dir);
    }
    printf("atomicfile power loss: %u batches committed before the cuts, %u whole files "
           "found, no torn file\n",
           total_committed, total_found);
    assert_true(total_committed > 0); /* the cuts did fall after some commits */
}

int
main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--child") == 0)
        return child(argv[2], atoi(argv[3]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_torn_file_and_committed_batches_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
