/* output: what every command prints through: errors, and partner-written text escaped
 * for the terminal (see ctl.h). */
#include "ctl.h"

#include <string.h>

#include "utf8.h"

int
fail(const pt_error_t *err)
{
    fprintf(stderr, "ptibusctl: %s\n", err->msg);
    return CTL_FAILED;
}

/* Text that a partner wrote or chose (message ids, reasons, even from an older journal),
 * escaped for the terminal (utf8_escape: no line break, tab or escape sequence can
 * reach it, so a line cannot be forged nor the operator's screen driven). Each call
 * uses the next of a few static buffers, so one printf can take several. */
#define ESC_SLOTS 6
#define ESC_MAX 8192

const char *
esc(const char *s)
{
    static char bufs[ESC_SLOTS][ESC_MAX];
    static unsigned next;
    char *out = bufs[next++ % ESC_SLOTS];
    s = s ? s : "";
    utf8_escape(out, ESC_MAX, s, strlen(s));
    return out;
}
