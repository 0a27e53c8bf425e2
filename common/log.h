/* log: leveled logging to stderr, one line per event, journald-friendly (a "<N>"
 * priority prefix when stderr is the journal). Every line carries a stable message
 * id so operators can grep and alert on it; the function name that errors, warnings
 * and debug lines pass is printed only when the level is debug (a developer's run),
 * never in the text an operator reads at the default level. Never log payloads,
 * NIRs or names: log message ids, partner ids, sequence numbers and codes. The text
 * of every event is escaped (utf8_escape: controls, line breaks and malformed UTF-8
 * become \n, \x1b, ...), so that no argument, whoever wrote it, can start a new line,
 * forge a "<N>" priority or send escape sequences to a terminal. */
#ifndef PT_LOG_H
#define PT_LOG_H

typedef enum pt_log_level {
    PT_LOG_ERROR = 3,
    PT_LOG_WARN = 4,
    PT_LOG_NOTICE = 5, /* normal but significant: e.g. each signed journal head */
    PT_LOG_INFO = 6,
    PT_LOG_DEBUG = 7,
} pt_log_level_t;

/* Sets the program name printed on each line and the minimum level.
 * Reads PTIBUS_LOG_LEVEL (error|warn|info|debug) when level is negative. */
void pt_log_init(const char *progname, int level);

/* Current minimum level. */
pt_log_level_t pt_log_level(void);

/* Parses "error", "warn", "info" or "debug"; returns the level or -1. */
int pt_log_level_parse(const char *name);

/* Writes one line "<header> [msgid] text" ("<header> [msgid] func: text" at debug level
 * when func is not NULL), the text being fmt formatted then escaped, truncated to about
 * 1 KiB before escaping. */
void pt_log_write(pt_log_level_t level, const char *msgid, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define pt_log_error(id, ...) pt_log_write(PT_LOG_ERROR, id, __func__, __VA_ARGS__)
#define pt_log_warn(id, ...) pt_log_write(PT_LOG_WARN, id, __func__, __VA_ARGS__)
#define pt_log_notice(id, ...) pt_log_write(PT_LOG_NOTICE, id, NULL, __VA_ARGS__)
#define pt_log_info(id, ...) pt_log_write(PT_LOG_INFO, id, NULL, __VA_ARGS__)
#define pt_log_debug(id, ...) pt_log_write(PT_LOG_DEBUG, id, __func__, __VA_ARGS__)

#endif
