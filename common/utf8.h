/* utf8: the one UTF-8 decoder of ptibus, and what is built on it: validation,
 * truncation by code point, and escaping of untrusted text for logs and terminals.
 * Owns nothing; never allocates. Used by validate (text fields), log (every line) and
 * the CLI (partner-controlled strings in its output). */
#ifndef PT_UTF8_H
#define PT_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes one UTF-8 sequence from the n bytes at s (n >= 1). Returns its length (1 to 4)
 * with the code point in *cp, or 0 when the bytes are not well-formed UTF-8: a stray
 * continuation byte, a sequence cut short, an overlong form, a surrogate or a value
 * above U+10FFFF. A NUL byte decodes as U+0000 of length 1. */
int utf8_decode(const char *s, size_t n, uint32_t *cp);

/* True for the C0 controls (U+0000-U+001F), DEL (U+007F) and the C1 controls
 * (U+0080-U+009F). */
bool utf8_is_control(uint32_t cp);

/* True when the NUL-terminated s is well-formed UTF-8. */
bool utf8_valid(const char *s);

/* Copies the longest prefix of the NUL-terminated src that has at most max_cp code
 * points, fits in cap - 1 bytes and ends on a character boundary into dst (cap >= 1),
 * NUL-terminated. Stops early at a malformed sequence, so the result is always
 * well-formed UTF-8. Returns the number of bytes copied. dst and src must not overlap. */
size_t utf8_truncate(char *dst, size_t cap, const char *src, size_t max_cp);

/* Writes the len bytes at src into dst (cap >= 1) as one line of printable text that
 * cannot drive a terminal or a log parser: backslash becomes "\\", tab, line feed and
 * carriage return "\t", "\n", "\r", any other C0 control or DEL "\xHH", a C1 control "\u00HH",
 * and each byte of a malformed sequence "\xHH"; well-formed
 * printable characters are copied. Never splits a character or an escape: when dst is
 * too small the output stops before the first item that does not fit. Always
 * NUL-terminated; returns the number of bytes written (without the NUL). dst and src
 * must not overlap. */
size_t utf8_escape(char *dst, size_t cap, const char *src, size_t len);

/* Upper bound of utf8_escape's output for len input bytes, NUL included. */
#define PT_UTF8_ESCAPED_MAX(len) (4 * (len) + 1)

#endif
