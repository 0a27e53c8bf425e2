/* The power-cut shim itself (tests/fault/powercut_shim.c), on a known sequence of writes:
 * the test runs itself again with the shim preloaded, the child writes, syncs, writes
 * through an O_DSYNC descriptor, overwrites, truncates, and is cut on its next write; the
 * files must then hold exactly what was durable. Without this, the power-loss test
 * would rest on an unchecked model. */
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
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#define PAGE 4096

static void
fill(int fd, char c, size_t len, off_t off)
{
    char buf[3 * PAGE];
    memset(buf, c, len);
    if (pwrite(fd, buf, len, off) != (ssize_t)len)
        _exit(2);
}

/* The child, shim preloaded, cut on its 7th write. */
static int
child(const char *dir)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    int fd = open(a, O_RDWR | O_CREAT, 0600);
    int dfd = open(a, O_WRONLY | O_DSYNC);
    int bfd = open(b, O_RDWR | O_CREAT, 0600);
    if (fd < 0 || dfd < 0 || bfd < 0)
        return 2;
    fill(fd, 'A', 2 * PAGE, 0); /* 1: durable after the fdatasync */
    if (fdatasync(fd) != 0)
        return 2;
    fill(fd, 'B', PAGE, 0); /* 2: lost */
    char c[PAGE];
    memset(c, 'C', sizeof c);
    struct iovec iov[2] = {{c, PAGE / 2}, {c, PAGE / 2}};
    if (lseek(fd, 2 * PAGE, SEEK_SET) < 0 || writev(fd, iov, 2) != PAGE) /* 3: lost, extends */
        return 2;
    fill(dfd, 'D', 100, PAGE);    /* 4: durable at once */
    fill(fd, 'E', 100, PAGE);     /* 5: lost (over the durable D) */
    fill(bfd, 'F', PAGE, 0);      /* 6: lost (b never synced) */
    if (ftruncate(fd, 2000) != 0) /* lost */
        return 2;
    close(bfd);           /* closing does not make anything durable */
    fill(fd, 'G', 10, 0); /* 7: the cut */
    return 3;             /* not reached */
}

static void
expect_bytes(const uint8_t *buf, size_t from, size_t to, char c)
{
    for (size_t i = from; i < to; i++)
        if (buf[i] != (uint8_t)c)
            fail_msg("byte %zu is '%c', expected '%c'", i, buf[i], c);
}

static void
test_cut_keeps_only_durable_writes(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("powercut-shim");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("LD_PRELOAD", PT_POWERCUT_SHIM_PATH, 1);
        setenv("PT_POWERCUT_DIR", dir, 1);
        setenv("PT_POWERCUT_AFTER", "7", 1);
        execl("/proc/self/exe", "test_powercut_shim", "--child", dir, (char *)NULL);
        _exit(127);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child was not cut (status %d)", status);

    char path[4200];
    uint8_t *buf;
    size_t len;
    snprintf(path, sizeof path, "%s/a", dir);
    assert_int_equal(tu_read_file(path, &buf, &len), 0);
    assert_int_equal(len, 2 * PAGE);
    expect_bytes(buf, 0, PAGE, 'A');
    expect_bytes(buf, PAGE, PAGE + 100, 'D');
    expect_bytes(buf, PAGE + 100, 2 * PAGE, 'A');
    free(buf);
    snprintf(path, sizeof path, "%s/b", dir);
    assert_int_equal(tu_read_file(path, &buf, &len), 0);
    assert_int_equal(len, 0);
    free(buf);
    tu_rmtree(dir);
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--child") == 0)
        return child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_keeps_only_durable_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
