/* utf8: decoding, validation, truncation by code point and escaping. */
#include "utf8.h"

#include <string.h>

int
utf8_decode(const char *str, size_t n, uint32_t *cp)
{
    static const struct {
        unsigned char mask, lead;
        int len;
        uint32_t min;
    } forms[] = {{0xE0, 0xC0, 2, 0x80}, {0xF0, 0xE0, 3, 0x800}, {0xF8, 0xF0, 4, 0x10000}};
    const unsigned char *s = (const unsigned char *)str;
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        if ((s[0] & forms[f].mask) != forms[f].lead)
            continue;
        if (n < (size_t)forms[f].len)
            return 0;
        uint32_t v = s[0] & (unsigned char)~forms[f].mask;
        for (int i = 1; i < forms[f].len; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (s[i] & 0x3F);
        }
        if (v < forms[f].min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
            return 0;
        *cp = v;
        return forms[f].len;
    }
    return 0;
}

bool
utf8_is_control(uint32_t cp)
{
    return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F);
}

bool
utf8_valid(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        uint32_t cp;
        int len = utf8_decode(s, n, &cp);
        if (len == 0)
            return false;
        s += len;
        n -= (size_t)len;
    }
    return true;
}

size_t
utf8_truncate(char *dst, size_t cap, const char *src, size_t max_cp)
{
    size_t n = strlen(src), used = 0;
    for (size_t count = 0; count < max_cp && used < n; count++) {
        uint32_t cp;
        int len = utf8_decode(src + used, n - used, &cp);
        if (len == 0 || used + (size_t)len > cap - 1)
            break;
        used += (size_t)len;
    }
    memcpy(dst, src, used);
    dst[used] = '\0';
    return used;
}

/* The escape of a control or backslash cp, or of a malformed byte (cp is then the
 * byte's value and raw is true): C1 controls as "\u0080".."\u009f", so that they never
 * read like a byte. */
static size_t
escape_one(uint32_t cp, bool raw, char out[6])
{
    static const char hex[] = "0123456789abcdef";
    char named = cp == '\\' ? '\\' : cp == '\t' ? 't' : cp == '\n' ? 'n' : cp == '\r' ? 'r' : 0;
    out[0] = '\\';
    if (named) {
        out[1] = named;
        return 2;
    }
    size_t n = 1;
    if (cp >= 0x80 && !raw) {
        memcpy(out + 1, "u00", 3);
        n = 4;
    } else {
        out[n++] = 'x';
    }
    out[n++] = hex[(cp >> 4) & 0xF];
    out[n++] = hex[cp & 0xF];
    return n;
}

size_t
utf8_escape(char *dst, size_t cap, const char *src, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        unsigned char ch = (unsigned char)src[in];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\') { /* printable ASCII: itself */
            if (out + 1 > cap - 1)
                break;
            dst[out++] = (char)ch;
            in++;
            continue;
        }
        uint32_t cp = 0;
        int n = utf8_decode(src + in, len - in, &cp);
        char esc[6];
        const char *item = src + in;
        size_t item_len = (size_t)n;
        if (n == 0 || cp == '\\' || utf8_is_control(cp)) {
            item_len = escape_one(n == 0 ? (unsigned char)src[in] : cp, n == 0, esc);
            item = esc;
            n = n == 0 ? 1 : n;
        }
        if (out + item_len > cap - 1)
            break;
        memcpy(dst + out, item, item_len);
        out += item_len;
        in += (size_t)n;
    }
    dst[out] = '\0';
    return out;
}
