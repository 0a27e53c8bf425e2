/* output: what every command prints through: errors, partner-written text escaped for
 * the terminal, and results as rows in one of four formats (see ctl.h): table, TSV,
 * CSV (RFC 4180) and JSON Lines. The formats are documented in docs/ptibusctl.md and
 * stable: columns are only ever added at the end. */
#include "ctl.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "utf8.h"

int
fail(const pt_error_t *err)
{
    fprintf(stderr, "ptibusctl: %s\n", err->msg);
    return CTL_FAILED;
}

int
ctl_error(const ctl_t *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ptibusctl: %s: ", c->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

/* Text that a partner wrote or chose (message ids, reasons, even from an older journal),
 * escaped for the terminal (utf8_escape: no line break, tab or escape sequence can
 * reach it, so a line cannot be forged nor the operator's screen driven). Each call
 * uses the next of a few static buffers, so one printf can take several. */
#define ESC_SLOTS 16
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

void
out_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\0';
}

void
out_time(int64_t ms, char *buf, size_t cap)
{
    /* The second's text is kept: a listing's records share their seconds. */
    static time_t last = -1;
    static char text[32];
    static size_t tlen;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || cap < 32) {
        snprintf(buf, cap, "%lld ms", (long long)ms);
        return;
    }
    if (t != last) {
        tlen = gmtime_r(&t, &tm) ? strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
        last = tlen ? t : -1;
    }
    if (tlen == 0) {
        snprintf(buf, cap, "%lld ms", (long long)ms);
        return;
    }
    int f = (int)(ms % 1000);
    memcpy(buf, text, tlen);
    buf[tlen] = '.';
    buf[tlen + 1] = (char)('0' + f / 100);
    buf[tlen + 2] = (char)('0' + f / 10 % 10);
    buf[tlen + 3] = (char)('0' + f % 10);
    buf[tlen + 4] = 'Z';
    buf[tlen + 5] = '\0';
}

/* A CSV cell: escaped like every output (no control character reaches a spreadsheet),
 * quoted when it holds a comma or a quote; a leading =, +, - or @ is prefixed with a
 * quote mark so a spreadsheet does not take it for a formula. */
static void
csv_cell(FILE *f, const char *v)
{
    const char *e = esc(v);
    bool formula = e[0] == '=' || e[0] == '+' || e[0] == '@' || (e[0] == '-' && e[1] != '\0');
    if (strpbrk(e, ",\"") == NULL && !formula) {
        fputs(e, f);
        return;
    }
    fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (const char *p = e; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* Whether v is an integer as jansson writes it (no sign but '-', no leading zero). */
static bool
plain_integer(const char *v)
{
    const char *d = v[0] == '-' ? v + 1 : v;
    size_t n = strspn(d, "0123456789");
    return n > 0 && n < 19 && d[n] == '\0' && (d[0] != '0' || n == 1);
}

/* A string jansson would write as is (JSON_ENSURE_ASCII): printable ASCII, no quote
 * or backslash, no '/' (escaped by neither, but kept out to stay simple). */
static bool
plain_string(const char *v)
{
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\' || *p == '/')
            return false;
    return true;
}

/* A row assembled in memory and written with one fwrite (stdio's lock taken once). */
#define LINE_MAX_ 16384
typedef struct line {
    char b[LINE_MAX_];
    size_t n;
    bool full;
} line_t;

static void
line_put(line_t *l, const char *s, size_t n)
{
    if (l->full || n > LINE_MAX_ - l->n) {
        l->full = true;
        return;
    }
    memcpy(l->b + l->n, s, n);
    l->n += n;
}

static void
line_str(line_t *l, const char *s)
{
    line_put(l, s, strlen(s));
}

/* The common row, written directly: every value empty, a plain integer in a number
 * column or a plain string elsewhere. The same bytes as json_dumpf's; false when the
 * row needs jansson. */
static bool
json_row_fast(out_t *o, const char *const *vals)
{
    static line_t l;
    for (size_t i = 0; i < o->n_cols; i++) {
        const char *v = vals[i];
        if (v != NULL && v[0] != '\0' && !(o->cols[i].number ? plain_integer(v) : plain_string(v)))
            return false;
    }
    l.n = 0;
    l.full = false;
    line_put(&l, "{", 1);
    for (size_t i = 0; i < o->n_cols; i++) {
        const char *v = vals[i];
        line_put(&l, i ? ",\"" : "\"", i ? 2 : 1);
        line_str(&l, o->cols[i].name);
        line_put(&l, "\":", 2);
        if (v == NULL || v[0] == '\0')
            line_put(&l, "null", 4);
        else if (o->cols[i].number)
            line_str(&l, v);
        else {
            line_put(&l, "\"", 1);
            line_str(&l, v);
            line_put(&l, "\"", 1);
        }
    }
    line_put(&l, "}\n", 2);
    if (l.full)
        return false;
    fwrite(l.b, 1, l.n, o->f);
    return true;
}

static void
json_row(out_t *o, const char *const *vals)
{
    if (json_row_fast(o, vals))
        return;
    json_t *obj = json_object();
    for (size_t i = 0; obj && i < o->n_cols; i++) {
        const char *v = vals[i];
        json_t *x;
        if (v == NULL || v[0] == '\0')
            x = json_null();
        else if (o->cols[i].number && strchr(v, '.'))
            x = json_real(strtod(v, NULL));
        else if (o->cols[i].number)
            x = json_integer((json_int_t)strtoll(v, NULL, 10));
        else
            x = utf8_valid(v) ? json_string(v) : json_string(esc(v));
        json_object_set_new(obj, o->cols[i].name, x);
    }
    /* JSON_ENSURE_ASCII: control characters and the rest as \u escapes. */
    if (obj)
        json_dumpf(obj, o->f, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    fputc('\n', o->f);
    json_decref(obj);
}

void
out_html_text(FILE *f, const char *s)
{
    for (const char *p = esc(s); *p; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*p, f);
        }
    }
}

static void
html_row(out_t *o, const char *const *vals, bool header)
{
    fputs(header ? "<table>\n<thead><tr>" : "<tr>", o->f);
    for (size_t i = 0; i < o->n_cols; i++) {
        const char *v = header ? o->cols[i].name : vals[i];
        fputs(header ? "<th>" : o->cols[i].number ? "<td class=\"n\">" : "<td>", o->f);
        out_html_text(o->f, v && v[0] ? v : "");
        fputs(header ? "</th>" : "</td>", o->f);
    }
    fputs(header ? "</tr></thead>\n<tbody>\n" : "</tr>\n", o->f);
}

/* A TSV row in one fwrite; false when it does not fit the line buffer. */
static bool
tsv_row(out_t *o, const char *const *vals, bool header)
{
    static line_t l;
    l.n = 0;
    l.full = false;
    for (size_t i = 0; i < o->n_cols; i++) {
        const char *v = header ? o->cols[i].name : vals[i];
        bool empty = v == NULL || v[0] == '\0';
        if (i)
            line_put(&l, "\t", 1);
        line_str(&l, empty ? "-" : header ? v : esc(v));
    }
    line_put(&l, "\n", 1);
    if (!l.full)
        fwrite(l.b, 1, l.n, o->f);
    return !l.full;
}

static void
text_row(out_t *o, const char *const *vals, bool header)
{
    if (o->fmt == CTL_FMT_HTML) {
        html_row(o, vals, header);
        return;
    }
    if (o->fmt == CTL_FMT_TSV && tsv_row(o, vals, header))
        return;
    for (size_t i = 0; i < o->n_cols; i++) {
        const char *v = header ? o->cols[i].name : vals[i];
        bool empty = v == NULL || v[0] == '\0';
        if (o->fmt == CTL_FMT_CSV) {
            if (i)
                fputc(',', o->f);
            csv_cell(o->f, empty ? "" : v);
            continue;
        }
        const char *e = empty ? "-" : header ? v : esc(v);
        if (o->fmt == CTL_FMT_TSV) {
            if (i)
                fputc('\t', o->f);
            fputs(e, o->f);
        } else if (i + 1 == o->n_cols)
            fputs(e, o->f);
        else
            fprintf(o->f, "%-*s ", o->cols[i].width, e);
    }
    fputc('\n', o->f);
}

void
out_begin(out_t *o, ctl_format_t fmt, const out_col_t *cols, size_t n_cols)
{
    *o = (out_t){.fmt = fmt, .cols = cols, .n_cols = n_cols, .f = stdout};
    if (fmt != CTL_FMT_JSON)
        text_row(o, NULL, true);
}

void
out_row(out_t *o, const char *const *vals)
{
    if (o->fmt == CTL_FMT_JSON)
        json_row(o, vals);
    else
        text_row(o, vals, false);
    o->rows++;
}

void
out_end(out_t *o)
{
    if (o->rows == 0 && o->fmt == CTL_FMT_TABLE)
        fputs("(none)\n", o->f);
    if (o->fmt == CTL_FMT_HTML)
        fputs("</tbody>\n</table>\n", o->f);
    fflush(o->f);
}
