/* err: error code table and the "where: what" error object. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const pt_messages[] = {
    [0] = "unknown ptibus error",
    [1] = "malformed input",
    [2] = "input too large",
    [3] = "invalid message",
    [4] = "configuration error",
    [5] = "not allowed",
    [6] = "message id already used with different content",
    [7] = "journal full",
    [8] = "integrity check failed",
    [9] = "protocol error",
    [10] = "not found",
    [11] = "timed out",
    [12] = "closed",
    [13] = "unsupported version",
    [14] = "internal library error",
};

const char *
pt_strerror(int code)
{
    if (code == 0)
        return "success";
    if (code <= PT_EBASE && code > PT_ELAST)
        return pt_messages[PT_EBASE - code];
    if (code < 0 && code > PT_EBASE)
        return strerror(-code);
    return "unknown error";
}

void
pt_error_clear(pt_error_t *err)
{
    if (err == NULL)
        return;
    err->code = 0;
    err->path[0] = '\0';
    err->msg[0] = '\0';
}

int
pt_error_set(pt_error_t *err, int code, const char *path, const char *fmt, ...)
{
    if (err == NULL)
        return code;
    err->code = code;
    snprintf(err->path, sizeof err->path, "%s", path ? path : "");
    int n = 0;
    if (err->path[0] != '\0')
        n = snprintf(err->msg, sizeof err->msg, "%s: ", err->path);
    if (n < 0 || (size_t)n >= sizeof err->msg)
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}
