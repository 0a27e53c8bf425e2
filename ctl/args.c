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
