/* Unit tests of common/log: whatever the arguments hold (line breaks, escape
 * sequences, a journald "<N>" priority, malformed UTF-8), one event is one line of
 * printable text that starts with the logger's own header. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "testutil.h"

/* Runs one pt_log_info("test.inject", "client=%s", arg) with stderr sent to a file, and
 * returns what was written (caller frees). */
static char *
log_at(bool journal, pt_log_level_t level, const char *arg)
{
    char *dir = tu_tmpdir("log");
    char path[4200];
    snprintf(path, sizeof path, "%s/stderr", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    if (journal)
        setenv("JOURNAL_STREAM", "8:1234", 1);
    else
        unsetenv("JOURNAL_STREAM");
    pt_log_init("test_log", (int)level);
    dup2(fd, STDERR_FILENO);
    pt_log_info("test.inject", "client=%s", arg);
    pt_log_error("test.inject", "reason=%s", arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fd);
    uint8_t *text;
    size_t len;
    assert_int_equal(tu_read_file(path, &text, &len), 0);
    tu_rmtree(dir);
    return (char *)text;
}

static char *
log_one(bool journal, const char *arg)
{
    return log_at(journal, PT_LOG_DEBUG, arg);
}

/* Exactly two lines, each starting with the header, with no control byte but their
 * final line feed and only well-formed UTF-8. */
static void
check_two_clean_lines(const char *text, const char *start)
{
    size_t lines = 0;
    for (const char *p = text; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\n')
            lines++;
        else
            assert_true(ch >= 0x20 && ch != 0x7f);
    }
    assert_int_equal(lines, 2);
    const char *second = strchr(text, '\n') + 1;
    assert_memory_equal(text, start, strlen(start));
    /* Each line's header is the logger's: its [msgid] comes before anything of arg. */
    const char *id1 = strstr(text, " [test.inject] "), *id2 = strstr(second, " [test.inject] ");
    assert_true(id1 != NULL && id1 < second && id1 - text < 64);
    assert_true(id2 != NULL && id2 - second < 64);
}

static const char evil[] = "caf\n2026-12-01T00:00:00.000Z ptibusd[1] E [broker.forged] "
                           "x\r\n<3>forged priority\x1b]0;title\x07\x1b[2J\xc2\x9b\xff end";

static void
test_injection_plain(void **state)
{
    (void)state;
    char *text = log_one(false, evil);
    check_two_clean_lines(text, "20");
    assert_non_null(strstr(text, "client=caf\\n2026-12-01T00:00:00.000Z ptibusd[1] E "
                                 "[broker.forged] x\\r\\n<3>forged priority\\x1b]0;title\\x07"
                                 "\\x1b[2J\\u009b\\xff end\n"));
    free(text);
}

static void
test_injection_journal(void **state)
{
    (void)state;
    char *text = log_one(true, "\n<3>forged");
    check_two_clean_lines(text, "<6>I [test.inject] client=\\n<3>forged\n");
    assert_non_null(strstr(text, "\n<3>E [test.inject] log_at: reason=\\n<3>forged\n"));
    free(text);
}

/* At the default level no C function name is in the text (it is at debug level). */
static void
test_no_function_name_below_debug(void **state)
{
    (void)state;
    char *text = log_at(true, PT_LOG_INFO, "x");
    assert_non_null(strstr(text, "\n<3>E [test.inject] reason=x\n"));
    assert_null(strstr(text, "log_at"));
    free(text);
    text = log_at(true, PT_LOG_DEBUG, "x");
    assert_non_null(strstr(text, "\n<3>E [test.inject] log_at: reason=x\n"));
    free(text);
}

static void
test_long_text_stays_one_line(void **state)
{
    (void)state;
    static char big[4000];
    memset(big, '\n', sizeof big - 1);
    char *text = log_one(false, big);
    check_two_clean_lines(text, "20");
    assert_true(strlen(text) < 2 * 2048);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_injection_plain),
        cmocka_unit_test(test_injection_journal),
        cmocka_unit_test(test_no_function_name_below_debug),
        cmocka_unit_test(test_long_text_stays_one_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
