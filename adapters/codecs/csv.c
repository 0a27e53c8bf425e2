/* csv: a byte-at-a-time state machine over a 64 KiB input buffer; a row's fields are
 * gathered NUL-separated in one growable buffer, then checked (UTF-8) or decoded
 * (windows-1252) as a whole before the row is handed out. */
#include "csv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define INBUF (64 * 1024)
#define C_EOF (-1)
#define C_ERR (-2)

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf_t;

struct csv_reader {
    csv_options_t o;
    int fd;
    const uint8_t *mem;
    size_t mem_len;
    uint8_t *in;        /* owned read buffer (fd sources) */
    const uint8_t *cur; /* bytes being read: in, or the memory source */
    size_t in_len, in_off;
    bool started, eof;
    int pb[3]; /* bytes given back, read again last first */
    int npb;
    uint64_t bytes;
    unsigned long line;
    growbuf_t data, conv;
    size_t *offs; /* start of each field in data */
    char **ptrs;
    size_t nf, fcap;
    pt_error_t fail;
};

static const uint16_t cp1252_high[32] = {
    0x20ac, 0,      0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017d, 0,      0,      0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
    0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0,      0x017e, 0x0178};

int32_t
csv_cp1252_to_unicode(uint8_t b)
{
    if (b < 0x80 || b >= 0xa0)
        return b;
    return cp1252_high[b - 0x80] ? cp1252_high[b - 0x80] : -1;
}

static int
grow(growbuf_t *g, size_t need)
{
    if (g->len + need <= g->cap)
        return 0;
    size_t cap = g->cap ? g->cap : 256;
    while (cap < g->len + need)
        cap *= 2;
    char *p = realloc(g->p, cap);
    if (p == NULL)
        return -ENOMEM;
    g->p = p, g->cap = cap;
    return 0;
}

static int
reader_new(csv_reader_t **out, int fd, const void *mem, size_t len, const csv_options_t *opts)
{
    csv_reader_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    if (opts != NULL)
        r->o = *opts;
    r->o.sep = r->o.sep ? r->o.sep : ';';
    r->o.max_field = r->o.max_field ? r->o.max_field : PT_CSV_MAX_FIELD;
    r->o.max_fields = r->o.max_fields ? r->o.max_fields : PT_CSV_MAX_FIELDS;
    r->o.max_file = r->o.max_file ? r->o.max_file : PT_CSV_MAX_FILE;
    r->fd = fd;
    r->mem = mem;
    r->mem_len = len;
    r->line = 1;
    if (mem == NULL && (r->in = malloc(INBUF)) == NULL) {
        free(r);
        return -ENOMEM;
    }
    *out = r;
    return 0;
}

int
csv_open_fd(csv_reader_t **out, int fd, const csv_options_t *opts)
{
    return reader_new(out, fd, NULL, 0, opts);
}

int
csv_open_memory(csv_reader_t **out, const void *buf, size_t len, const csv_options_t *opts)
{
    return reader_new(out, -1, buf ? buf : "", len, opts);
}

void
csv_close(csv_reader_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    csv_reader_t *r = *pr;
    free(r->in);
    free(r->data.p);
    free(r->conv.p);
    free(r->offs);
    free(r->ptrs);
    free(r);
    *pr = NULL;
}

unsigned long
csv_line(const csv_reader_t *r)
{
    return r->line;
}

static int
fail(csv_reader_t *r, int code, unsigned long line, const char *what)
{
    char path[32];
    snprintf(path, sizeof path, "line %lu", line);
    return pt_error_set(&r->fail, code, path, "%s", what);
}

static int
fill(csv_reader_t *r)
{
    if (r->mem != NULL) {
        if (r->eof)
            return 0;
        r->eof = true;
        r->cur = r->mem, r->in_len = r->mem_len, r->in_off = 0;
        return r->mem_len > 0;
    }
    for (;;) {
        ssize_t n = read(r->fd, r->in, INBUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(r, -EIO, r->line, "read error");
        r->cur = r->in, r->in_len = (size_t)n, r->in_off = 0;
        return n > 0;
    }
}

static int
get(csv_reader_t *r)
{
    if (r->npb > 0)
        return r->pb[--r->npb];
    if (r->in_off == r->in_len) {
        int rc = fill(r);
        if (rc < 0)
            return C_ERR;
        if (rc == 0)
            return C_EOF;
    }
    if (++r->bytes > r->o.max_file) {
        fail(r, PT_ETOOLARGE, r->line, "the file is over its size limit");
        return C_ERR;
    }
    return r->cur[r->in_off++];
}

static int
add_byte(csv_reader_t *r, int c)
{
    size_t start = r->offs[r->nf - 1];
    if (c == 0) /* fields are C strings: a NUL would cut one silently */
        return fail(r, PT_EMALFORMED, r->line, "a NUL byte is not text");
    if (r->data.len - start >= r->o.max_field)
        return fail(r, PT_ETOOLARGE, r->line, "a field is over the size limit");
    if (grow(&r->data, 1) < 0)
        return -ENOMEM;
    r->data.p[r->data.len++] = (char)c;
    return 0;
}

static int
begin_field(csv_reader_t *r)
{
    if (r->nf > 0 && (grow(&r->data, 1) < 0))
        return -ENOMEM;
    if (r->nf > 0)
        r->data.p[r->data.len++] = '\0';
    if (r->nf == r->o.max_fields)
        return fail(r, PT_ETOOLARGE, r->line, "a row has too many fields");
    if (r->nf == r->fcap) {
        size_t cap = r->fcap ? r->fcap * 2 : 32;
        size_t *o = realloc(r->offs, cap * sizeof *o);
        if (o == NULL)
            return -ENOMEM;
        r->offs = o;
        char **p = realloc(r->ptrs, cap * sizeof *p);
        if (p == NULL)
            return -ENOMEM;
        r->ptrs = p, r->fcap = cap;
    }
    r->offs[r->nf++] = r->data.len;
    return 0;
}

/* After a CR: a following LF makes it a line end (1), else the byte is given back (0). */
static int
crlf(csv_reader_t *r)
{
    int c = get(r);
    if (c == '\n')
        return 1;
    if (c == C_ERR)
        return C_ERR;
    if (c != C_EOF)
        r->pb[r->npb++] = c;
    return 0;
}

enum { END_FIELD = 1, END_ROW = 2 };

/* What may follow the closing quote of a field: the separator, a line end or the end. */
static int
after_quote(csv_reader_t *r, int d)
{
    if (d == C_ERR)
        return r->fail.code;
    if (d == r->o.sep)
        return END_FIELD;
    if (d == C_EOF)
        return END_ROW;
    if (d == '\n')
        return r->line++, END_ROW;
    if (d == '\r') {
        int rc = crlf(r);
        if (rc == C_ERR)
            return r->fail.code;
        if (rc == 1)
            return r->line++, END_ROW;
    }
    return fail(r, PT_EMALFORMED, r->line, "a character follows a closing quote");
}

/* A quoted field, the opening quote read. Returns END_FIELD, END_ROW or < 0. */
static int
quoted(csv_reader_t *r)
{
    unsigned long opened = r->line;
    for (;;) {
        int c = get(r), rc;
        if (c == C_ERR)
            return r->fail.code;
        if (c == C_EOF)
            return fail(r, PT_EMALFORMED, opened, "a quoted field opened here is never closed");
        if (c == '"') {
            int d = get(r);
            if (d == '"') {
                if ((rc = add_byte(r, '"')) < 0)
                    return rc;
                continue;
            }
            return after_quote(r, d);
        }
        if (c == '\n')
            r->line++;
        if ((rc = add_byte(r, c)) < 0)
            return rc;
    }
}

/* An unquoted field whose first byte is c. A quote inside it is kept as it is. */
static int
unquoted(csv_reader_t *r, int c)
{
    for (;; c = get(r)) {
        int rc;
        if (c == C_ERR)
            return r->fail.code;
        if (c == r->o.sep)
            return END_FIELD;
        if (c == '\n' || c == C_EOF)
            return (c == '\n' ? r->line++ : 0), END_ROW;
        if (c == '\r') {
            if ((rc = crlf(r)) == C_ERR)
                return r->fail.code;
            if (rc == 1)
                return r->line++, END_ROW;
        }
        if ((rc = add_byte(r, c)) < 0)
            return rc;
    }
}

/* Strict UTF-8: no overlong form, no surrogate, nothing above U+10FFFF. */
static bool
utf8_valid(const uint8_t *s, size_t n, size_t *bad)
{
    static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i];
        size_t need = b < 0x80                 ? 0
                      : b >= 0xc2 && b <= 0xdf ? 1
                      : b >= 0xe0 && b <= 0xef ? 2
                      : b >= 0xf0 && b <= 0xf4 ? 3
                                               : 4;
        *bad = i;
        if (need == 4 || i + need >= n + (need == 0))
            return false;
        uint32_t cp = need == 0 ? b : b & (0x7fu >> (need + 1));
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min[need] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

static unsigned long
line_of(const csv_reader_t *r, unsigned long row_line, size_t off)
{
    unsigned long line = row_line;
    for (size_t i = 0; i < off; i++)
        line += r->data.p[i] == '\n';
    return line;
}

static int
check_utf8(csv_reader_t *r, unsigned long row_line)
{
    size_t bad;
    if (utf8_valid((const uint8_t *)r->data.p, r->data.len, &bad))
        return 0;
    return fail(r, PT_EMALFORMED, line_of(r, row_line, bad), "invalid UTF-8");
}

static int
put_utf8(growbuf_t *g, uint32_t cp)
{
    if (grow(g, 3) < 0)
        return -ENOMEM;
    if (cp < 0x80) {
        g->p[g->len++] = (char)cp;
    } else if (cp < 0x800) {
        g->p[g->len++] = (char)(0xc0 | (cp >> 6));
        g->p[g->len++] = (char)(0x80 | (cp & 0x3f));
    } else {
        g->p[g->len++] = (char)(0xe0 | (cp >> 12));
        g->p[g->len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        g->p[g->len++] = (char)(0x80 | (cp & 0x3f));
    }
    return 0;
}

/* windows-1252 row data -> UTF-8 in conv, field offsets remapped. */
static int
decode_cp1252(csv_reader_t *r, unsigned long row_line)
{
    r->conv.len = 0;
    size_t f = 0;
    for (size_t i = 0; i < r->data.len; i++) {
        while (f < r->nf && r->offs[f] == i)
            r->offs[f++] = r->conv.len;
        int32_t cp = csv_cp1252_to_unicode((uint8_t)r->data.p[i]);
        if (cp < 0)
            return fail(r, PT_EMALFORMED, line_of(r, row_line, i),
                        "a byte that windows-1252 does not define");
        if (put_utf8(&r->conv, (uint32_t)cp) < 0)
            return -ENOMEM;
    }
    while (f < r->nf)
        r->offs[f++] = r->conv.len;
    return 0;
}

static int
finish_row(csv_reader_t *r, unsigned long row_line, csv_row_t *row)
{
    if (grow(&r->data, 1) < 0)
        return -ENOMEM;
    r->data.p[r->data.len++] = '\0';
    int rc =
        r->o.encoding == CSV_WINDOWS_1252 ? decode_cp1252(r, row_line) : check_utf8(r, row_line);
    if (rc < 0)
        return rc;
    char *base = r->o.encoding == CSV_WINDOWS_1252 ? r->conv.p : r->data.p;
    for (size_t i = 0; i < r->nf; i++)
        r->ptrs[i] = base + r->offs[i];
    row->n = r->nf;
    row->fields = r->ptrs;
    row->line = row_line;
    return 1;
}

/* Skips a UTF-8 byte order mark at the very start of the input; other bytes are given
 * back. */
static int
skip_bom(csv_reader_t *r)
{
    static const int bom[3] = {0xef, 0xbb, 0xbf};
    int got[3], n = 0;
    r->started = true;
    while (n < 3) {
        int c = get(r);
        if (c == C_ERR)
            return r->fail.code;
        if (c == C_EOF)
            break;
        got[n++] = c;
        if (c != bom[n - 1])
            break;
    }
    if (n == 3 && got[2] == bom[2])
        return 0;
    while (n > 0)
        r->pb[r->npb++] = got[--n];
    return 0;
}

static int
read_row(csv_reader_t *r, csv_row_t *row)
{
    int c;
    do { /* blank lines are skipped */
        c = get(r);
        if (c == '\r') {
            int rc = crlf(r);
            if (rc == C_ERR)
                return r->fail.code;
            c = rc == 1 ? '\n' : '\r';
        }
        if (c == '\n')
            r->line++;
    } while (c == '\n');
    if (c == C_EOF)
        return 0;
    if (c == C_ERR)
        return r->fail.code;
    unsigned long row_line = r->line;
    r->nf = 0, r->data.len = 0;
    int end = END_FIELD, rc;
    while (end == END_FIELD) {
        if ((rc = begin_field(r)) < 0)
            return rc;
        end = c == '"' ? quoted(r) : unquoted(r, c);
        if (end < 0)
            return end;
        if (end == END_FIELD && (c = get(r)) == C_ERR)
            return r->fail.code;
    }
    return finish_row(r, row_line, row);
}

int
csv_next(csv_reader_t *r, csv_row_t *row, pt_error_t *err)
{
    int rc = r->fail.code;
    if (rc == 0 && !r->started)
        rc = skip_bom(r);
    if (rc == 0)
        rc = read_row(r, row);
    if (rc == -ENOMEM && r->fail.code == 0)
        fail(r, rc, r->line, "out of memory");
    if (rc < 0 && err != NULL)
        *err = r->fail;
    return rc;
}

int
csv_writer_init(csv_writer_t *w, char sep, const char *encoding, pt_write_fn write, void *ctx,
                pt_error_t *err)
{
    memset(w, 0, sizeof *w);
    w->write = write;
    w->ctx = ctx;
    w->sep = sep ? sep : ';';
    if (encoding == NULL || strcasecmp(encoding, "UTF-8") == 0)
        w->encoding = CSV_UTF8;
    else if (strcasecmp(encoding, "windows-1252") == 0 || strcasecmp(encoding, "CP1252") == 0)
        w->encoding = CSV_WINDOWS_1252;
    else
        return pt_error_set(err, PT_EINVALID, "encoding", "must be UTF-8 or windows-1252");
    return 0;
}

static bool
needs_quotes(const char *f, char sep)
{
    size_t n = strlen(f);
    /* a leading U+FEFF would be taken for a byte order mark at the start of a file */
    if (n > 0 && (f[0] == ' ' || f[n - 1] == ' ' || strncmp(f, "\xef\xbb\xbf", 3) == 0))
        return true;
    for (; *f; f++)
        if (*f == sep || *f == '"' || *f == '\r' || *f == '\n')
            return true;
    return false;
}

/* The next code point of UTF-8 text s (validated), advancing *i. */
static uint32_t
next_cp(const uint8_t *s, size_t *i)
{
    uint8_t b = s[*i];
    size_t need = b < 0x80 ? 0 : b < 0xe0 ? 1 : b < 0xf0 ? 2 : 3;
    uint32_t cp = need == 0 ? b : b & (0x7fu >> (need + 1));
    for (size_t k = 1; k <= need; k++)
        cp = (cp << 6) | (s[*i + k] & 0x3f);
    *i += need + 1;
    return cp;
}

static int
unicode_to_cp1252(uint32_t cp)
{
    if (cp < 0x80 || (cp >= 0xa0 && cp <= 0xff))
        return (int)cp;
    for (int i = 0; i < 32; i++)
        if (cp1252_high[i] == cp && cp != 0)
            return 0x80 + i;
    return -1;
}

static int
put_field(const csv_writer_t *w, growbuf_t *g, const char *f, size_t idx, pt_error_t *err)
{
    size_t n = strlen(f), bad;
    if (!utf8_valid((const uint8_t *)f, n, &bad))
        return pt_error_set(err, PT_EINVALID, NULL, "field %zu: invalid UTF-8", idx + 1);
    bool q = needs_quotes(f, w->sep);
    if (grow(g, n * 2 + 3) < 0)
        return -ENOMEM;
    if (q)
        g->p[g->len++] = '"';
    for (size_t i = 0; i < n;) {
        if (f[i] == '"') {
            g->p[g->len++] = '"';
            g->p[g->len++] = '"';
            i++;
            continue;
        }
        if (w->encoding == CSV_UTF8 || (uint8_t)f[i] < 0x80) {
            g->p[g->len++] = f[i++];
            continue;
        }
        int b = unicode_to_cp1252(next_cp((const uint8_t *)f, &i));
        if (b < 0)
            return pt_error_set(err, PT_EINVALID, NULL,
                                "field %zu: a character has no windows-1252 form", idx + 1);
        g->p[g->len++] = (char)b;
    }
    if (q)
        g->p[g->len++] = '"';
    return 0;
}

int
csv_write_row(csv_writer_t *w, const char *const *fields, size_t n, pt_error_t *err)
{
    growbuf_t g = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0 && (rc = grow(&g, 1)) == 0)
            g.p[g.len++] = w->sep;
        if (rc == 0)
            rc = put_field(w, &g, fields[i] ? fields[i] : "", i, err);
    }
    if (rc == 0 && (rc = grow(&g, 2)) == 0) {
        g.p[g.len++] = '\r';
        g.p[g.len++] = '\n';
        rc = w->write(w->ctx, g.p, g.len);
    }
    if (rc == -ENOMEM)
        pt_error_set(err, rc, NULL, "out of memory");
    free(g.p);
    return rc;
}
