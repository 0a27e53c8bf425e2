/* log: leveled, journald-friendly logging to stderr. The logger is one of the two
 * allowed process-wide mutable states (with the loaded configuration). */
#include "log.h"

#include "utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PT_LOG_TEXT_MAX 1024 /* an event's text before escaping */
#define PT_LOG_LINE_MAX 2048 /* a whole line, escapes included */

static struct {
    char prog[32];
    pt_log_level_t level;
    int journal; /* stderr is connected to the systemd journal */
} pt_logger = {"ptibus", PT_LOG_INFO, 0};

int
pt_log_level_parse(const char *name)
{
    static const struct {
        const char *name;
        pt_log_level_t level;
    } table[] = {{"error", PT_LOG_ERROR},
                 {"warn", PT_LOG_WARN},
                 {"notice", PT_LOG_NOTICE},
                 {"info", PT_LOG_INFO},
                 {"debug", PT_LOG_DEBUG}};
    for (size_t i = 0; name && i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return (int)table[i].level;
    return -1;
}

void
pt_log_init(const char *progname, int level)
{
    if (progname)
        snprintf(pt_logger.prog, sizeof pt_logger.prog, "%s", progname);
    if (level < 0)
        level = pt_log_level_parse(getenv("PTIBUS_LOG_LEVEL"));
    if (level >= 0)
        pt_logger.level = (pt_log_level_t)level;
    pt_logger.journal = getenv("JOURNAL_STREAM") != NULL;
}

pt_log_level_t
pt_log_level(void)
{
    return pt_logger.level;
}

static char
level_letter(pt_log_level_t level)
{
    switch (level) {
    case PT_LOG_ERROR:
        return 'E';
    case PT_LOG_WARN:
        return 'W';
    case PT_LOG_NOTICE:
        return 'N';
    case PT_LOG_INFO:
        return 'I';
    default:
        return 'D';
    }
}

/* The event's text, formatted then escaped (utf8_escape): whatever a partner put in
 * an argument, the line stays one line of printable UTF-8, so it can neither forge a
 * line nor a "<N>" journald priority, nor drive the operator's terminal. */
static size_t
format_escaped(char *out, size_t cap, const char *fmt, va_list ap)
{
    char text[PT_LOG_TEXT_MAX];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof text)
        n = (int)sizeof text - 1;
    return utf8_escape(out, cap, text, (size_t)n);
}

void
pt_log_write(pt_log_level_t level, const char *msgid, const char *func, const char *fmt, ...)
{
    if (level > pt_logger.level)
        return;
    char line[PT_LOG_LINE_MAX];
    int n;
    if (pt_logger.journal) {
        n = snprintf(line, sizeof line, "<%d>%c [%s] ", (int)level, level_letter(level), msgid);
    } else {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%ld] %c [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)(tv.tv_usec / 1000), pt_logger.prog, (long)getpid(), level_letter(level),
                     msgid);
    }
    /* The C function is for developers: in the text only at debug level, so that what
     * an operator reads and alerts on does not change when the code is refactored. */
    if (func && pt_logger.level == PT_LOG_DEBUG && n > 0 && (size_t)n < sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, "%s: ", func);
    if (n < 0 || (size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    va_list ap;
    va_start(ap, fmt);
    n += (int)format_escaped(line + n, sizeof line - 1 - (size_t)n, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    /* One write per line so concurrent processes do not interleave. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
