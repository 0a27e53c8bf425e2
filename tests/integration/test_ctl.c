/* ptibusctl's argument parsing, on the real binary: a number is all digits and in range
 * or the command stops with exit code 2 naming the option (before, "12x" was read as 12,
 * an overflow wrapped, and a 65th --seq was silently dropped), and a bad command or
 * option prints the usage; commands are `noun verb`, each with --help. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "testutil.h"

/* Runs ptibusctl with args (shell-quoted by the caller); returns its exit code and
 * fills out with its stderr and stdout. */
static int
ctl(const char *args, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", PT_PTIBUSCTL_PATH, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void
test_numbers_are_strict(void **state)
{
    (void)state;
    char out[4096];
    const char *bad[] = {"12x", "-1", "", "18446744073709551616", " 3", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char args[256];
        snprintf(args, sizeof args, "journal list --journal /nonexistent --seq-from '%s'", bad[i]);
        assert_int_equal(ctl(args, out, sizeof out), 2);
        assert_non_null(strstr(out, "--seq-from"));
        assert_non_null(strstr(out, "is not a whole number"));
    }
    assert_int_equal(ctl("receive --server-key a --key b --pub c --wait 99999", out, sizeof out),
                     2);
    assert_non_null(strstr(out, "--wait"));
}

static void
test_too_many_seqs_refused(void **state)
{
    (void)state;
    char args[4096] = "deadletters requeue --admin tcp://127.0.0.1:1 --server-key a --key b "
                      "--pub c --to caf --reason r";
    for (int i = 1; i <= 65; i++) {
        char s[32];
        snprintf(s, sizeof s, " --seq %d", i);
        strcat(args, s);
    }
    char out[4096];
    assert_int_equal(ctl(args, out, sizeof out), 2);
    assert_non_null(strstr(out, "at most 64 seqs"));
}

static void
test_unknown_command_and_help(void **state)
{
    (void)state;
    char out[8192];
    assert_int_equal(ctl("no-such-command", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown command"));
    assert_int_equal(ctl("--help", out, sizeof out), 0);
    assert_non_null(strstr(out, "ptibusctl journal verify"));
    assert_non_null(strstr(out, "exit codes: 0 done"));
    assert_int_equal(ctl("--config /nonexistent/ptibusctl.yaml journal list", out, sizeof out), 1);
    assert_int_equal(ctl("journal", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown command journal"));
    assert_int_equal(ctl("journal nope", out, sizeof out), 2);
    assert_non_null(strstr(out, "unknown command journal nope"));
    assert_int_equal(ctl("trace --help", out, sizeof out), 0);
    assert_non_null(strstr(out, "usage: ptibusctl trace MESSAGE_ID"));
    assert_int_equal(ctl("--version", out, sizeof out), 0);
    assert_non_null(strstr(out, "ptibusctl " PTIBUS_VERSION));
    assert_int_equal(ctl("keygen --dir /tmp 'Bad Name'", out, sizeof out), 2);
    assert_non_null(strstr(out, "is not a valid name"));
}

/* Every command answers --help (exit 0, its usage) and --version. */
static void
test_every_command_has_help(void **state)
{
    (void)state;
    static const char *const cmds[] = {"journal list",
                                       "journal show",
                                       "journal verify",
                                       "trace",
                                       "person",
                                       "report",
                                       "export",
                                       "backup",
                                       "stats",
                                       "deadletters list",
                                       "deadletters requeue",
                                       "replay",
                                       "keygen",
                                       "fingerprint",
                                       "publish",
                                       "receive",
                                       "config show"};
    char out[8192], args[128], want[128];
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        assert_int_equal(ctl(args, out, sizeof out), 0);
        snprintf(want, sizeof want, "usage: ptibusctl %s ", cmds[i]);
        assert_non_null(strstr(out, want));
        snprintf(args, sizeof args, "%s --version", cmds[i]);
        assert_int_equal(ctl(args, out, sizeof out), 0);
        assert_non_null(strstr(out, "ptibusctl " PTIBUS_VERSION));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_are_strict),
        cmocka_unit_test(test_too_many_seqs_refused),
        cmocka_unit_test(test_unknown_command_and_help),
        cmocka_unit_test(test_every_command_has_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
