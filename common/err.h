/* err: the one table of ptibus error codes and the error object that carries
 * "where: what" from a decoder, validator or loader up to the caller that reports it.
 * Functions return 0 on success, -errno or a negative PT_E* code on failure. */
#ifndef PT_ERR_H
#define PT_ERR_H

#include <stddef.h>

enum {
    PT_EBASE = -1000,
    PT_EMALFORMED = -1001,   /* undecodable bytes (protobuf, JSON, XML, YAML) */
    PT_ETOOLARGE = -1002,    /* input over a configured size limit */
    PT_EINVALID = -1003,     /* decoded but fails validation */
    PT_ECONFIG = -1004,      /* bad configuration */
    PT_EDENIED = -1005,      /* not allowed by policy or authentication */
    PT_EDUPCONFLICT = -1006, /* message id reused with different content */
    PT_EJOURNALFULL = -1007, /* journal reached its maximum size or the disk is full */
    PT_ECORRUPT = -1008,     /* stored data fails its integrity check */
    PT_EPROTOCOL = -1009,    /* peer broke the protocol state machine */
    PT_ENOTFOUND = -1010,    /* no such record / key */
    PT_ETIMEOUT = -1011,     /* deadline passed */
    PT_ECLOSED = -1012,      /* object closed or stopping */
    PT_EVERSION = -1013,     /* unsupported record / protocol version */
    PT_EINTERNAL = -1014,    /* a library failed in a way we do not map */
    PT_ELAST = -1015
};

/* Human-readable text for 0, a PT_E* code or a -errno; never NULL. */
const char *pt_strerror(int code);

#define PT_ERROR_PATH_MAX 128
#define PT_ERROR_MSG_MAX 512

/* An error with its location. `path` is machine-readable (a field path like
 * "sanction.rate_percent", or "file.yaml:12"), `msg` is the full human sentence
 * "path: what is wrong". Embedded by value; no heap. */
typedef struct pt_error {
    int code;
    char path[PT_ERROR_PATH_MAX];
    char msg[PT_ERROR_MSG_MAX];
} pt_error_t;

/* Resets err to "no error". Accepts NULL. */
void pt_error_clear(pt_error_t *err);

/* Records code and a message "path: <fmt...>" (or just "<fmt...>" when path is NULL
 * or empty). Accepts err == NULL (then does nothing). Returns code, so callers can
 * write `return pt_error_set(err, PT_EINVALID, path, "...")`. */
int pt_error_set(pt_error_t *err, int code, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
