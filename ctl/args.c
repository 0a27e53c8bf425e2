/* args: strict parsing of option values: a number is all digits and in range, or the
 * command stops with a usage error saying which option and why (see ctl.h). */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>

bool
args_u64(const char *opt, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s && *s >= '0' && *s <= '9' ? strtoull(s, &end, 10) : 0;
    if (s == NULL || end == NULL || *end != '\0' || errno == ERANGE || v < min || v > max) {
        fprintf(stderr, "ptibusctl: %s: \"%.40s\" is not a whole number in %llu..%llu\n", opt,
                s ? s : "", (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool
digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "HH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)" after the 'T'; *ms is the time of day minus the
 * offset. */
static bool
parse_clock(const char *s, int64_t *ms)
{
    int h, mi, se, oh = 0, om = 0, frac = 0, scale = 1000;
    if (!digits(s, 2, &h) || s[2] != ':' || !digits(s + 3, 2, &mi) || s[5] != ':' ||
        !digits(s + 6, 2, &se) || h > 23 || mi > 59 || se > 60)
        return false;
    s += 8;
    if (*s == '.') {
        if (s[1] < '0' || s[1] > '9')
            return false;
        for (s++; *s >= '0' && *s <= '9'; s++)
            if (scale > 1)
                frac = frac * 10 + (*s - '0'), scale /= 10;
        frac *= scale;
    }
    int sign = *s == '+' ? 1 : *s == '-' ? -1 : 0;
    if (*s == 'Z' || *s == 'z')
        s++;
    else if (sign == 0 || !digits(s + 1, 2, &oh) || s[3] != ':' || !digits(s + 4, 2, &om) ||
             oh > 23 || om > 59)
        return false;
    else
        s += 6;
    if (*s != '\0')
        return false;
    *ms = ((int64_t)h * 3600 + mi * 60 + se - sign * (oh * 3600 + om * 60)) * 1000 + frac;
    return true;
}

bool
args_time(const char *opt, const char *s, bool end_of_day, int64_t *out)
{
    static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, m, d;
    int64_t clock = 0;
    bool ok = s && digits(s, 4, &y) && s[4] == '-' && digits(s + 5, 2, &m) && s[7] == '-' &&
              digits(s + 8, 2, &d) && m >= 1 && m <= 12 && d >= 1 && d <= (int)mdays[m - 1] &&
              (s[10] == '\0' || ((s[10] == 'T' || s[10] == 't') && parse_clock(s + 11, &clock)));
    if (!ok) {
        fprintf(stderr,
                "ptibusctl: %s: \"%.40s\" is not an RFC 3339 time (2026-12-01T10:00:00Z, "
                "...+01:00) or a date (2026-12-01)\n",
                opt, s ? s : "");
        return false;
    }
    int64_t day = days_from_civil(y, (unsigned)m, (unsigned)d);
    if (s[10] == '\0' && end_of_day)
        day++;
    *out = day * 86400000 + clock;
    return true;
}
