/* Integration test of the systemd watchdog: under WatchdogSec= (WATCHDOG_USEC and
 * WATCHDOG_PID in its environment) ptibusd sends WATCHDOG=1 on $NOTIFY_SOCKET from its
 * event loop at half the period; without them it sends none; its timer is closed at
 * stop like the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "testutil.h"

#define WATCHDOG_USEC 200000 /* pings every 100 ms */
#define LISTEN_MS 1500

typedef struct counts {
    int ready;
    int watchdog;
} counts_t;

static int
notify_bind(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    assert_true(fd >= 0 && strlen(path) < sizeof a.sun_path);
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static pid_t
spawn(td_net_t *n, const char *notify_path, bool watchdog)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    char log[4300], usec[32], self[32];
    snprintf(log, sizeof log, "%s/broker.log", n->dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0)
        dup2(fd, STDERR_FILENO);
    setenv("NOTIFY_SOCKET", notify_path, 1);
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (watchdog) {
        snprintf(usec, sizeof usec, "%d", WATCHDOG_USEC);
        snprintf(self, sizeof self, "%ld", (long)getpid());
        setenv("WATCHDOG_USEC", usec, 1);
        setenv("WATCHDOG_PID", self, 1);
    }
    execl(PT_PTIBUSD_PATH, "ptibusd", "--config", n->config, (char *)NULL);
    _exit(127);
}

/* Counts the notifications for LISTEN_MS after READY=1 (waits up to 10 s for it). */
static counts_t
listen_notify(int fd)
{
    counts_t c = {0};
    int64_t deadline = tu_now_ms() + 10000;
    while (tu_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char buf[256];
        ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
        if (r <= 0)
            continue;
        buf[r] = '\0';
        if (strstr(buf, "READY=1") && c.ready++ == 0)
            deadline = tu_now_ms() + LISTEN_MS;
        if (strstr(buf, "WATCHDOG=1"))
            c.watchdog++;
    }
    return c;
}

static counts_t
run_broker(bool watchdog)
{
    td_net_t n;
    td_net_init(&n, "watchdog", NULL);
    char path[4300];
    snprintf(path, sizeof path, "%s/notify", n.dir);
    int fd = notify_bind(path);
    pid_t pid = spawn(&n, path, watchdog);
    counts_t c = listen_notify(fd);
    close(fd);
    kill(pid, SIGTERM);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(td_log_contains(&n, "event loop not closed"));
    td_net_fini(&n);
    return c;
}

static void
test_watchdog_pinged_at_half_period(void **state)
{
    (void)state;
    counts_t c = run_broker(true);
    assert_int_equal(c.ready, 1);
    /* 1.5 s at one ping per 100 ms: 15, with slack for a loaded machine. */
    fprintf(stderr, "watchdog pings in %d ms: %d\n", LISTEN_MS, c.watchdog);
    assert_in_range(c.watchdog, 7, 25);
}

static void
test_no_watchdog_without_watchdog_usec(void **state)
{
    (void)state;
    counts_t c = run_broker(false);
    assert_int_equal(c.ready, 1);
    assert_int_equal(c.watchdog, 0);
}

int
main(void)
{
#ifndef PTIBUS_HAVE_SYSTEMD
    fprintf(stderr, "built without libsystemd: no sd_notify, nothing to test\n");
    return 0;
#endif
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watchdog_pinged_at_half_period),
        cmocka_unit_test(test_no_watchdog_without_watchdog_usec),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
