/* xml_safe: the input filter (size, encoding, DTD constructs, line count) sits between
 * the source and libxml2, so refused bytes never reach the parser; the event loop turns
 * xmlReader nodes into START/END/TEXT and refuses every node kind a partner flow has no
 * use for. */
#include "xml_safe.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <libxml/xmlreader.h>
#include <libxml/xmlschemas.h>

#include "xml_events.h"

#define PROLOG_MIN 256 /* bytes gathered before the XML declaration is read */
/* An inline reader's one block: small, as it is read and decoded in turns. */
#define XML_SAFE_INLINE_EVENTS 256
#define XML_SAFE_INLINE_ARENA (16u * 1024)

enum { ENC_UNKNOWN, ENC_UTF8, ENC_ASCII, ENC_LATIN1, ENC_CP1252 };

/* Element names are libxml2's: interned in the reader's dictionary and alive as long as
 * the reader, so they are kept as pointers (the same name is mostly the same pointer). */
typedef struct sib {
    const char *name;
    unsigned count;
} sib_t;

typedef struct level {
    const char *name;
    unsigned pos;
    sib_t *sibs;
    size_t nsibs, cap;
} level_t;

struct xml_safe {
    xmlTextReaderPtr r;
    xml_safe_limits_t lim;
    char name[64];
    /* source */
    int fd;
    const uint8_t *mem;
    size_t mem_len, mem_off;
    /* input filter */
    uint64_t bytes;
    unsigned long in_line;
    int enc;
    char encoding[32];
    unsigned u8_need;
    uint32_t u8_cp, u8_min;
    int dtd_state; /* 0, 1 after '<', 2 after "<!" */
    uint8_t pre[PROLOG_MIN];
    size_t pre_len, pre_off;
    pt_error_t in_err;
    pt_error_t lib_err;
    xmlSchemaPtr schema;
    /* reading side: libxml2 nodes into event blocks (on the reader thread when there is one) */
    unsigned rdepth;     /* elements open at the reader */
    const char *ns_last; /* the namespace interned last */
    xev_ring_t *ring;    /* the reader thread's ring; NULL: blocks are read inline */
    pthread_t thread;
    xev_block_t own; /* the one block of an inline reader (not allocated with a ring) */
    /* decoding side: events out of the blocks */
    xev_block_t *blk; /* the block being decoded */
    size_t pos;       /* its next event */
    const xev_t *cur; /* the event returned last */
    unsigned long cur_line;
    pt_error_t fail; /* the sticky error returned by every later call */
    bool eof;
    bool pop_pending; /* an END was returned: pop its element on the next call */
    level_t *levels;  /* levels[0] is the document; levels[d + 1] the element at depth d */
    unsigned depth;   /* number of open elements */
    char path[PT_XML_PATH_MAX];
};

static int
in_fail(xml_safe_t *x, int code, const char *fmt, const char *arg)
{
    if (x->in_err.code == 0)
        pt_error_set(&x->in_err, code, NULL, fmt, x->in_line, arg);
    return -1;
}

/* The encoding named in the XML declaration, or "" when there is none. */
static void
declared_encoding(const uint8_t *p, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    if (n < 5 || memcmp(p, "<?xml", 5) != 0)
        return;
    const uint8_t *end = memmem(p, n, "?>", 2);
    const uint8_t *e = memmem(p, end ? (size_t)(end - p) : n, "encoding", 8);
    if (e == NULL)
        return;
    e += 8;
    while (e < p + n && (*e == ' ' || *e == '=' || *e == '\t'))
        e++;
    if (e >= p + n || (*e != '"' && *e != '\''))
        return;
    uint8_t q = *e++;
    size_t i = 0;
    while (e < p + n && *e != q && i + 1 < cap)
        out[i++] = (char)*e++;
    out[i] = '\0';
}

static int
encoding_from_name(const char *s)
{
    static const struct {
        const char *name;
        int enc;
    } table[] = {{"UTF-8", ENC_UTF8},    {"UTF8", ENC_UTF8},           {"US-ASCII", ENC_ASCII},
                 {"ASCII", ENC_ASCII},   {"ISO-8859-1", ENC_LATIN1},   {"ISO8859-1", ENC_LATIN1},
                 {"LATIN1", ENC_LATIN1}, {"WINDOWS-1252", ENC_CP1252}, {"CP1252", ENC_CP1252}};
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcasecmp(s, table[i].name) == 0)
            return table[i].enc;
    return ENC_UNKNOWN;
}

static int
detect_encoding(xml_safe_t *x, const uint8_t *p, size_t n)
{
    if ((n >= 2 && ((p[0] == 0xfe && p[1] == 0xff) || (p[0] == 0xff && p[1] == 0xfe))) ||
        (n >= 1 && p[0] == 0))
        return in_fail(x, PT_EMALFORMED, "line %lu: %sUTF-16 and UTF-32 are not accepted", "");
    bool bom = n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf;
    declared_encoding(bom ? p + 3 : p, bom ? n - 3 : n, x->encoding, sizeof x->encoding);
    if (x->encoding[0] == '\0') {
        snprintf(x->encoding, sizeof x->encoding, "UTF-8");
        x->enc = ENC_UTF8;
        return 0;
    }
    x->enc = encoding_from_name(x->encoding);
    if (x->enc == ENC_UNKNOWN)
        return in_fail(x, PT_EMALFORMED,
                       "line %lu: the declared encoding%s is not accepted (UTF-8, US-ASCII, "
                       "ISO-8859-1 or windows-1252)",
                       "");
    if (bom && x->enc != ENC_UTF8)
        return in_fail(x, PT_EMALFORMED,
                       "line %lu: a UTF-8 byte order mark contradicts the declared encoding%s", "");
    return 0;
}

/* Incremental UTF-8 check: no overlong form, no surrogate, nothing above U+10FFFF. */
static bool
utf8_byte(xml_safe_t *x, uint8_t b)
{
    if (x->u8_need == 0) {
        if (b < 0x80)
            return true;
        if (b >= 0xc2 && b <= 0xdf)
            x->u8_need = 1, x->u8_cp = b & 0x1f, x->u8_min = 0x80;
        else if (b >= 0xe0 && b <= 0xef)
            x->u8_need = 2, x->u8_cp = b & 0x0f, x->u8_min = 0x800;
        else if (b >= 0xf0 && b <= 0xf4)
            x->u8_need = 3, x->u8_cp = b & 0x07, x->u8_min = 0x10000;
        else
            return false;
        return true;
    }
    if ((b & 0xc0) != 0x80)
        return false;
    x->u8_cp = (x->u8_cp << 6) | (b & 0x3f);
    if (--x->u8_need > 0)
        return true;
    return x->u8_cp >= x->u8_min && x->u8_cp <= 0x10ffff &&
           !(x->u8_cp >= 0xd800 && x->u8_cp <= 0xdfff);
}

static bool
byte_ok(xml_safe_t *x, uint8_t b)
{
    switch (x->enc) {
    case ENC_UTF8:
        return utf8_byte(x, b);
    case ENC_ASCII:
        return b < 0x80;
    case ENC_CP1252: /* the five bytes windows-1252 leaves undefined */
        return b != 0x81 && b != 0x8d && b != 0x8f && b != 0x90 && b != 0x9d;
    default:
        return true;
    }
}

/* "<!" may only open a comment or a CDATA section: anything else (DOCTYPE, ENTITY,
 * ELEMENT, ATTLIST, NOTATION) is a DTD construct. */
static bool
dtd_byte(xml_safe_t *x, uint8_t b)
{
    if (x->dtd_state == 2) {
        x->dtd_state = 0;
        return b == '-' || b == '[';
    }
    if (b == '<')
        x->dtd_state = 1;
    else if (x->dtd_state == 1 && b == '!')
        x->dtd_state = 2;
    else
        x->dtd_state = 0;
    return true;
}

/* The index of the first byte from i on that the states must see, counting the newlines
 * before it into *lines: a non-ASCII byte, or a '<' that may open "<!" (followed by '!',
 * or the chunk's last byte). Any other '<' leaves the DTD state where it was (0) once its
 * next byte is seen, and a '!' not after '<' changes nothing. Most of any flow is plain
 * ASCII: this loop keeps everything in registers (a store through x would force the
 * compiler to reload the states at every byte, as p may alias them). */
#if defined(__SSE2__)
static unsigned
bits_set(unsigned m)
{
    unsigned c = 0;
    for (; m != 0; m &= m - 1) /* newlines are sparse: cheaper than a libgcc popcount */
        c++;
    return c;
}

/* skip_plain 16 bytes at a time: the first byte that is non-ASCII or '<' is found with
 * one compare and a mask, and the newlines before it counted from another mask. A '<'
 * that cannot open "<!" is stepped over, as the byte loop below does. */
static size_t
skip_plain16(const uint8_t *p, size_t i, size_t n, unsigned long *nl)
{
    const __m128i lt = _mm_set1_epi8('<'), lf = _mm_set1_epi8('\n');
    while (i + 16 <= n) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        /* high bit: a byte >= 0x80, or 0xff where the byte is '<' */
        unsigned stop = (unsigned)_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, lt)));
        unsigned lines = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf));
        if (stop == 0) {
            *nl += bits_set(lines);
            i += 16;
            continue;
        }
        unsigned k = (unsigned)__builtin_ctz(stop);
        *nl += bits_set(lines & ((1u << k) - 1));
        i += k;
        if (p[i] >= 0x80 || i + 1 == n || p[i + 1] == '!')
            return i;
        i++;
    }
    return i;
}
#endif

static size_t
skip_plain(const uint8_t *p, size_t i, size_t n, unsigned long *lines)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    unsigned long nl = 0;
#if defined(__SSE2__)
    i = skip_plain16(p, i, n, &nl);
    if (i + 16 <= n) { /* stopped at a byte the states must see */
        *lines += nl;
        return i;
    }
#endif
    while (i < n) {
        /* 8 bytes at once when all are ASCII and none is '<': for ASCII bytes, the high
         * bit of ~(v + 0x7f) is set exactly where v is 0 (no carry between bytes) */
        uint64_t w;
        if (i + 8 <= n && (memcpy(&w, p + i, 8), (w & high) == 0) &&
            (~((w ^ (ones * '<')) + ones * 0x7f) & high) == 0) {
            /* one high bit per newline byte: summed by a multiply (without -mpopcnt,
             * __builtin_popcountll is a libgcc call) */
            uint64_t m = ~((w ^ (ones * '\n')) + ones * 0x7f) & high;
            nl += (unsigned long)(((m >> 7) * ones) >> 56);
            i += 8;
            continue;
        }
        uint8_t b = p[i];
        if (b >= 0x80 || (b == '<' && (i + 1 == n || p[i + 1] == '!')))
            break;
        nl += b == '\n';
        i++;
    }
    *lines += nl;
    return i;
}

static int
filter(xml_safe_t *x, const uint8_t *p, size_t n)
{
    if (x->bytes + n > x->lim.max_file)
        return in_fail(x, PT_ETOOLARGE, "line %lu: the file is over its size limit%s", "");
    x->bytes += n;
    for (size_t i = 0; i < n; i++) {
        if (x->u8_need == 0 && x->dtd_state == 0 && (i = skip_plain(p, i, n, &x->in_line)) == n)
            break;
        if (!byte_ok(x, p[i]))
            return in_fail(x, PT_EMALFORMED, "line %lu: invalid byte sequence for the encoding %s",
                           x->encoding);
        if (!dtd_byte(x, p[i]))
            return in_fail(x, PT_EMALFORMED,
                           "line %lu: a DOCTYPE or DTD declaration is not accepted%s", "");
        if (p[i] == '\n')
            x->in_line++;
    }
    return 0;
}

/* Reads up to len bytes from the fd or the memory buffer, gathering up to len. */
static ssize_t
source_read(xml_safe_t *x, uint8_t *buf, size_t len)
{
    if (x->mem != NULL) {
        size_t n = x->mem_len - x->mem_off < len ? x->mem_len - x->mem_off : len;
        memcpy(buf, x->mem + x->mem_off, n);
        x->mem_off += n;
        return (ssize_t)n;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(x->fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
        if (x->enc != ENC_UNKNOWN)
            break; /* after the prolog, a short read is fine */
    }
    return (ssize_t)got;
}

/* libxml2 may ask for 4 bytes first: the prolog is gathered here so that the XML
 * declaration is read whole before any byte is handed over. */
static ssize_t
next_bytes(xml_safe_t *x, uint8_t *buf, size_t len)
{
    if (x->enc == ENC_UNKNOWN) {
        ssize_t n = source_read(x, x->pre, sizeof x->pre);
        if (n < 0)
            return -1;
        x->pre_len = (size_t)n;
        if (detect_encoding(x, x->pre, x->pre_len) < 0)
            return -2;
    }
    if (x->pre_off < x->pre_len) {
        size_t n = x->pre_len - x->pre_off < len ? x->pre_len - x->pre_off : len;
        memcpy(buf, x->pre + x->pre_off, n);
        x->pre_off += n;
        return (ssize_t)n;
    }
    return source_read(x, buf, len);
}

static int
io_read(void *ctx, char *buf, int len)
{
    xml_safe_t *x = ctx;
    if (x->in_err.code != 0 || len <= 0)
        return -1;
    ssize_t n = next_bytes(x, (uint8_t *)buf, (size_t)len);
    if (n == -1) {
        pt_error_set(&x->in_err, -EIO, NULL, "line %lu: read error: %s", x->in_line,
                     strerror(errno));
        return -1;
    }
    if (n < 0 || filter(x, (uint8_t *)buf, (size_t)n) < 0)
        return -1;
    if (n == 0 && x->u8_need > 0)
        return in_fail(x, PT_EMALFORMED, "line %lu: the file ends inside a UTF-8 sequence%s", "");
    return (int)n;
}

static int
io_close(void *ctx)
{
    (void)ctx;
    return 0;
}

/* A schema violation: its element and facet only, as libxml2's text quotes the value. */
static void
on_schema_error(xml_safe_t *x, const xmlError *e)
{
    /* the streaming validator gives no node: the name is in "Element '{ns}name': ..." */
    char name[72] = "?";
    const char *el = e->message ? strstr(e->message, "Element '") : NULL;
    if (el != NULL) {
        el += 9;
        if (*el == '{' && strchr(el, '}') != NULL)
            el = strchr(el, '}') + 1;
        size_t n = strcspn(el, "'");
        snprintf(name, sizeof name, "%.*s", (int)(n < 64 ? n : 64), el);
    }
    char facet[40] = "";
    const char *f = e->message ? strstr(e->message, "[facet '") : NULL;
    if (f != NULL) {
        f += 8;
        size_t n = strcspn(f, "'");
        snprintf(facet, sizeof facet, " (facet %.*s)", (int)(n < 24 ? n : 24), f);
    }
    pt_error_set(&x->lib_err, PT_EINVALID, NULL, "line %d: element %s does not follow the schema%s",
                 e->line, name, facet);
}

/* libxml2's message without anything after "Bytes:" (it would quote input bytes). */
static void
on_lib_error(void *arg, xmlErrorPtr e)
{
    xml_safe_t *x = arg;
    if (e == NULL || e->level < XML_ERR_ERROR || x->lib_err.code != 0)
        return;
    if (e->domain == XML_FROM_SCHEMASV)
        return on_schema_error(x, e);
    char msg[200];
    snprintf(msg, sizeof msg, "%s", e->message ? e->message : "malformed XML");
    char *cut = strstr(msg, "Bytes:");
    if (cut != NULL)
        *cut = '\0';
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' ' || msg[n - 1] == ','))
        msg[--n] = '\0';
    pt_error_set(&x->lib_err, PT_EMALFORMED, NULL, "line %d: %s", e->line, msg);
}

static void
ignore_error(void *ctx, xmlErrorPtr e)
{
    (void)ctx, (void)e;
}

/* Parses the XSD (a trusted file of adapters/schemas/) and attaches it to the reader. */
static int
load_schema(xml_safe_t *x, const char *path, pt_error_t *err)
{
    if (access(path, R_OK) != 0)
        return pt_error_set(err, PT_ECONFIG, "schema", "cannot read the schema %.200s: %s", path,
                            strerror(errno));
    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(path);
    if (pc != NULL) {
        xmlSchemaSetParserStructuredErrors(pc, ignore_error, NULL);
        x->schema = xmlSchemaParse(pc);
        xmlSchemaFreeParserCtxt(pc);
    }
    if (x->schema == NULL || xmlTextReaderSetSchema(x->r, x->schema) != 0)
        return pt_error_set(err, PT_ECONFIG, "schema", "cannot load the schema %.200s", path);
    return 0;
}

/* ---- the reading side: libxml2 nodes into a block of events ---- */

static unsigned long
reader_line(const xml_safe_t *x)
{
    int l = xmlTextReaderGetParserLineNumber(x->r);
    return l > 0 ? (unsigned long)l : x->in_line;
}

static bool emit_fail(xml_safe_t *x, xev_block_t *b, int code, bool no_path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* An error: the document's last event. Returns true (the block is the last). */
static bool
emit_fail(xml_safe_t *x, xev_block_t *b, int code, bool no_path, const char *fmt, ...)
{
    char what[PT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    xev_t *e = xev_block_push(b);
    e->kind = XEV_FAIL;
    e->code = code;
    e->no_path = no_path;
    e->parser_line = reader_line(x);
    size_t n = strlen(what);
    if (xev_block_copy(b, what, n, &e->off) < 0)
        e->off = SIZE_MAX; /* read as "out of memory" */
    e->len = n;
    return true;
}

static bool
read_failed(xml_safe_t *x, xev_block_t *b)
{
    const pt_error_t *e = x->in_err.code ? &x->in_err : x->lib_err.code ? &x->lib_err : NULL;
    if (e != NULL) /* a schema violation: the reader's position is not the element's */
        return emit_fail(x, b, e->code, e->code == PT_EINVALID, "%s", e->msg);
    return emit_fail(x, b, PT_EMALFORMED, false, "line %lu: malformed or truncated XML",
                     reader_line(x));
}

/* What xmlTextReaderConstNamespaceUri() gives for the reader's current node, "" for
 * none, read from the node itself: that function interns the URI in the reader's
 * dictionary (a hash of the string) at every call. Borrowed until the next read. */
static const char *
node_ns(const xmlNode *cur)
{
    if (cur == NULL)
        return "";
    if (cur->type == XML_NAMESPACE_DECL)
        return "http://www.w3.org/2000/xmlns/";
    if (cur->type != XML_ELEMENT_NODE && cur->type != XML_ATTRIBUTE_NODE)
        return "";
    return cur->ns != NULL && cur->ns->href != NULL ? (const char *)cur->ns->href : "";
}

/* The node's namespace, interned in the reader's dictionary (alive as long as the reader,
 * so that it outlives the node): a flow uses one or two, so only a change is interned. */
static const char *
ns_interned(xml_safe_t *x, const xmlNode *cur)
{
    const char *href = node_ns(cur);
    if (href[0] == '\0')
        return "";
    if (x->ns_last != NULL && (href == x->ns_last || strcmp(href, x->ns_last) == 0))
        return x->ns_last;
    const char *s = (const char *)xmlTextReaderConstString(x->r, (const xmlChar *)href);
    if (s != NULL)
        x->ns_last = s;
    return s != NULL ? s : "";
}

static unsigned long
node_line(xml_safe_t *x, xev_t *e)
{
    xmlNodePtr cur = xmlTextReaderCurrentNode(x->r);
    long line = cur ? xmlGetLineNo(cur) : -1;
    e->parser_line = reader_line(x);
    return line > 0 ? (unsigned long)line : e->parser_line;
}

/* The element's attributes, copied (names are interned: "deallocated with the reader"). */
static int
read_attrs(xml_safe_t *x, xev_block_t *b, xev_t *e)
{
    e->attr0 = b->nattrs;
    if (xmlTextReaderHasAttributes(x->r) != 1)
        return 0;
    int rc = 0;
    while (rc == 0 && xmlTextReaderMoveToNextAttribute(x->r) == 1) {
        const char *n = (const char *)xmlTextReaderConstName(x->r);
        const char *v = (const char *)xmlTextReaderConstValue(x->r);
        if (n == NULL)
            continue;
        rc = xev_block_attr(b, n, v ? v : "", v ? strlen(v) : 0);
        e->nattr += rc == 0;
    }
    xmlTextReaderMoveToElement(x->r);
    return rc;
}

static bool
read_element(xml_safe_t *x, xev_block_t *b)
{
    if (x->rdepth >= x->lim.max_depth)
        return emit_fail(x, b, PT_ETOOLARGE, false, "line %lu: elements nested deeper than %u",
                         reader_line(x), x->lim.max_depth);
    const char *name = (const char *)xmlTextReaderConstLocalName(x->r);
    xev_t *e = xev_block_push(b);
    e->kind = XEV_START;
    e->name = name ? name : "?";
    e->ns = ns_interned(x, xmlTextReaderCurrentNode(x->r));
    e->line = node_line(x, e);
    bool empty = xmlTextReaderIsEmptyElement(x->r) == 1;
    if (read_attrs(x, b, e) < 0) {
        b->nev--;
        return emit_fail(x, b, -ENOMEM, false, "out of memory");
    }
    x->rdepth++;
    if (empty) { /* START then END */
        xev_t *end = xev_block_push(b);
        end->kind = XEV_END;
        end->ns = e->ns;
        end->line = end->parser_line = e->parser_line;
        x->rdepth--;
    }
    return false;
}

static void
read_end(xml_safe_t *x, xev_block_t *b)
{
    xev_t *e = xev_block_push(b);
    e->kind = XEV_END;
    e->ns = ns_interned(x, xmlTextReaderCurrentNode(x->r));
    e->line = e->parser_line = reader_line(x);
    if (x->rdepth > 0)
        x->rdepth--;
}

static bool
read_text(xml_safe_t *x, xev_block_t *b)
{
    const char *v = (const char *)xmlTextReaderConstValue(x->r);
    size_t n = v ? strlen(v) : 0;
    if (n > x->lim.max_text)
        return emit_fail(x, b, PT_ETOOLARGE, false,
                         "line %lu: a text of %zu bytes is over the limit of %zu", reader_line(x),
                         n, x->lim.max_text);
    xev_t *e = xev_block_push(b);
    e->kind = XEV_TEXT;
    e->ns = "";
    e->line = node_line(x, e);
    e->len = n;
    if (xev_block_copy(b, v ? v : "", n, &e->off) < 0) {
        b->nev--;
        return emit_fail(x, b, -ENOMEM, false, "out of memory");
    }
    return false;
}

/* One node of the reader into the block; true once it was the document's last event. */
static bool
read_node(xml_safe_t *x, xev_block_t *b)
{
    int rc = xmlTextReaderRead(x->r);
    if (rc < 0 || x->in_err.code != 0 || x->lib_err.code != 0)
        return read_failed(x, b);
    if (rc == 0) {
        xev_t *e = xev_block_push(b);
        e->kind = XEV_EOF;
        e->parser_line = reader_line(x);
        return true;
    }
    int type = xmlTextReaderNodeType(x->r);
    switch (type) {
    case XML_READER_TYPE_ELEMENT:
        return read_element(x, b);
    case XML_READER_TYPE_END_ELEMENT:
        read_end(x, b);
        return false;
    case XML_READER_TYPE_TEXT:
    case XML_READER_TYPE_CDATA:
        return read_text(x, b);
    case XML_READER_TYPE_WHITESPACE:
    case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
    case XML_READER_TYPE_COMMENT:
    case XML_READER_TYPE_PROCESSING_INSTRUCTION:
    case XML_READER_TYPE_XML_DECLARATION:
        return false;
    default:
        return emit_fail(x, b, PT_EMALFORMED, false,
                         "line %lu: XML node of type %d is not accepted", reader_line(x), type);
    }
}

/* Fills an empty block; true when it holds the document's last event (EOF or FAIL). */
static bool
read_block(xml_safe_t *x, xev_block_t *b)
{
    while (!xev_block_full(b))
        if (read_node(x, b))
            return true;
    return false;
}

/* The reader thread: blocks until the document's end, or until the ring is stopped. */
static void *
reader_main(void *arg)
{
    xml_safe_t *x = arg;
    for (bool last = false; !last;) {
        xev_block_t *b = xev_ring_acquire(x->ring);
        if (b == NULL)
            break;
        last = read_block(x, b);
        xev_ring_publish(x->ring);
    }
    return NULL;
}

/* ---- opening and closing ---- */

/* Whether to read on a thread of its own: a file of XML_SAFE_THREAD_MIN bytes or more,
 * unless limits (or PTIBUS_XML_THREAD=always|never, when limits say auto) decide. */
static bool
wants_thread(const xml_safe_limits_t *limits, int fd, size_t len)
{
    xml_safe_thread_t mode = limits ? limits->thread : XML_SAFE_THREAD_AUTO;
    const char *env = getenv("PTIBUS_XML_THREAD");
    if (mode == XML_SAFE_THREAD_AUTO && env != NULL)
        mode = strcmp(env, "always") == 0  ? XML_SAFE_THREAD_ALWAYS
               : strcmp(env, "never") == 0 ? XML_SAFE_THREAD_NEVER
                                           : mode;
    if (mode != XML_SAFE_THREAD_AUTO)
        return mode == XML_SAFE_THREAD_ALWAYS;
    if (fd < 0)
        return len >= XML_SAFE_THREAD_MIN;
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size >= XML_SAFE_THREAD_MIN;
}

/* Starts the reader thread (signals blocked in it); on failure the reader stays inline. */
static void
start_thread(xml_safe_t *x)
{
    if (xev_ring_new(&x->ring) < 0)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&x->thread, NULL, reader_main, x);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        xev_ring_destroy(&x->ring);
}

/* The source is set before the libxml2 reader exists: creating it reads the first bytes. */
static int
xml_safe_new(xml_safe_t **out, int fd, const void *mem, size_t len, const char *name,
             const xml_safe_limits_t *limits, pt_error_t *err)
{
    xml_safe_t *x = calloc(1, sizeof *x);
    if (x == NULL)
        return -ENOMEM;
    x->lim.max_depth = limits && limits->max_depth ? limits->max_depth : PT_XML_MAX_DEPTH;
    x->lim.max_text = limits && limits->max_text ? limits->max_text : PT_XML_MAX_TEXT;
    x->lim.max_file = limits && limits->max_file ? limits->max_file : PT_XML_MAX_FILE;
    snprintf(x->name, sizeof x->name, "%s", name ? name : "input");
    x->fd = fd;
    x->mem = mem;
    x->mem_len = len;
    x->in_line = 1;
    x->cur_line = 1;
    x->levels = calloc(x->lim.max_depth + 2, sizeof *x->levels);
    if (x->levels == NULL) {
        xml_safe_close(&x);
        return -ENOMEM;
    }
    x->r = xmlReaderForIO(io_read, io_close, x, NULL, NULL, XML_PARSE_NONET | XML_PARSE_COMPACT);
    if (x->r == NULL) {
        xml_safe_close(&x);
        return pt_error_set(err, PT_EINTERNAL, NULL, "cannot create an XML reader");
    }
    xmlTextReaderSetStructuredErrorHandler(x->r, on_lib_error, x);
    if (limits != NULL && limits->schema != NULL && load_schema(x, limits->schema, err) != 0) {
        xml_safe_close(&x);
        return PT_ECONFIG;
    }
    if (wants_thread(limits, fd, len))
        start_thread(x);
    if (x->ring == NULL &&
        xev_block_init(&x->own, XML_SAFE_INLINE_EVENTS, XML_SAFE_INLINE_ARENA) < 0) {
        xml_safe_close(&x);
        return -ENOMEM;
    }
    *out = x;
    return 0;
}

int
xml_safe_open_fd(xml_safe_t **out, int fd, const char *name, const xml_safe_limits_t *limits,
                 pt_error_t *err)
{
    *out = NULL;
    return xml_safe_new(out, fd, NULL, 0, name, limits, err);
}

int
xml_safe_open_memory(xml_safe_t **out, const void *buf, size_t len, const char *name,
                     const xml_safe_limits_t *limits, pt_error_t *err)
{
    *out = NULL;
    return xml_safe_new(out, -1, buf ? buf : "", len, name, limits, err);
}

bool
xml_safe_threaded(const xml_safe_t *x)
{
    return x->ring != NULL;
}

static void
level_fini(level_t *l)
{
    free(l->sibs);
    memset(l, 0, sizeof *l);
}

void
xml_safe_close(xml_safe_t **px)
{
    if (px == NULL || *px == NULL)
        return;
    xml_safe_t *x = *px;
    if (x->ring != NULL) { /* the thread stops at its next block, or ended already */
        xev_ring_stop(x->ring);
        pthread_join(x->thread, NULL);
        xev_ring_destroy(&x->ring);
    }
    xev_block_fini(&x->own);
    if (x->r != NULL)
        xmlFreeTextReader(x->r);
    if (x->schema != NULL)
        xmlSchemaFree(x->schema);
    if (x->levels != NULL)
        for (unsigned i = 0; i < x->lim.max_depth + 2; i++)
            level_fini(&x->levels[i]);
    free(x->levels);
    free(x);
    *px = NULL;
}

/* ---- the decoding side: events out of the blocks ---- */

/* Counts name among the children of levels[depth] and opens levels[depth + 1]. */
static int
path_push(xml_safe_t *x, const char *name)
{
    level_t *parent = &x->levels[x->depth];
    sib_t *s = NULL;
    for (size_t i = 0; i < parent->nsibs && s == NULL; i++)
        if (parent->sibs[i].name == name ||
            (parent->sibs[i].name[0] == name[0] && strcmp(parent->sibs[i].name, name) == 0))
            s = &parent->sibs[i];
    if (s == NULL) {
        if (parent->nsibs == parent->cap) {
            size_t cap = parent->cap ? parent->cap * 2 : 8;
            sib_t *n = realloc(parent->sibs, cap * sizeof *n);
            if (n == NULL)
                return -ENOMEM;
            parent->sibs = n, parent->cap = cap;
        }
        s = &parent->sibs[parent->nsibs];
        s->name = name;
        s->count = 0;
        parent->nsibs++;
    }
    s->count++;
    level_t *l = &x->levels[x->depth + 1];
    l->nsibs = 0; /* a new element: its children are counted afresh (the buffer stays) */
    l->name = name;
    l->pos = s->count;
    x->depth++;
    return 0;
}

const char *
xml_safe_path(const xml_safe_t *x)
{
    char *p = ((xml_safe_t *)x)->path;
    size_t n = 0;
    p[0] = '\0';
    for (unsigned i = 1; i <= x->depth && n < PT_XML_PATH_MAX; i++) {
        const level_t *l = &x->levels[i];
        int w = l->pos > 1 ? snprintf(p + n, PT_XML_PATH_MAX - n, "/%s[%u]", l->name, l->pos)
                           : snprintf(p + n, PT_XML_PATH_MAX - n, "/%s", l->name);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return p;
}

unsigned long
xml_safe_line(const xml_safe_t *x)
{
    return x->cur_line;
}

const char *
xml_safe_encoding(const xml_safe_t *x)
{
    return x->encoding[0] ? x->encoding : "UTF-8";
}

/* The sticky error, with the element path where the decoder stands. */
static int
fail(xml_safe_t *x, pt_error_t *err, int code, bool no_path, const char *what)
{
    pt_error_set(&x->fail, code, no_path ? "" : xml_safe_path(x), "%s", what);
    if (err != NULL)
        *err = x->fail;
    return code;
}

/* The next event, from the block being decoded or the next one (read inline, or taken
 * from the reader thread, the block decoded so far given back). */
static const xev_t *
next_event(xml_safe_t *x)
{
    if (x->blk == NULL || x->pos == x->blk->nev) {
        if (x->ring != NULL) {
            if (x->blk != NULL)
                xev_ring_release(x->ring);
            x->blk = xev_ring_next(x->ring);
        } else {
            xev_block_reset(&x->own);
            read_block(x, &x->own);
            x->blk = &x->own;
        }
        x->pos = 0;
    }
    return &x->blk->ev[x->pos++];
}

static int
on_start(xml_safe_t *x, const xev_t *e, xml_safe_node_t *node, pt_error_t *err)
{
    if (path_push(x, e->name) < 0)
        return fail(x, err, -ENOMEM, false, "out of memory");
    node->kind = XML_SAFE_START;
    node->name = x->levels[x->depth].name;
    node->depth = x->depth - 1;
    return 1;
}

static int
on_end(xml_safe_t *x, xml_safe_node_t *node)
{
    node->kind = XML_SAFE_END;
    node->name = x->levels[x->depth].name;
    node->depth = x->depth > 0 ? x->depth - 1 : 0;
    x->pop_pending = x->depth > 0; /* the path names the element until the next call */
    return 1;
}

static int
on_text(xml_safe_t *x, const xev_t *e, xml_safe_node_t *node)
{
    node->kind = XML_SAFE_TEXT;
    node->depth = x->depth;
    node->name = x->depth > 0 ? x->levels[x->depth].name : "";
    node->value = xev_block_str(x->blk, e->off);
    node->value_len = e->len;
    return 1;
}

int
xml_safe_next(xml_safe_t *x, xml_safe_node_t *node, pt_error_t *err)
{
    if (x->fail.code != 0) {
        if (err != NULL)
            *err = x->fail;
        return x->fail.code;
    }
    if (x->eof)
        return 0;
    if (x->pop_pending) {
        x->pop_pending = false;
        x->depth--;
    }
    const xev_t *e = next_event(x);
    x->cur = e;
    x->cur_line = e->parser_line;
    memset(node, 0, sizeof *node);
    node->ns = e->ns ? e->ns : "";
    node->line = e->line;
    switch (e->kind) {
    case XEV_START:
        return on_start(x, e, node, err);
    case XEV_END:
        return on_end(x, node);
    case XEV_TEXT:
        return on_text(x, e, node);
    case XEV_EOF:
        x->eof = true;
        return 0;
    default:
        return fail(x, err, e->code, e->no_path,
                    e->off == SIZE_MAX ? "out of memory" : xev_block_str(x->blk, e->off));
    }
}

const char *
xml_safe_attr(xml_safe_t *x, const char *name)
{
    const xev_t *e = x->cur;
    if (e == NULL || e->kind != XEV_START)
        return NULL;
    for (size_t i = 0; i < e->nattr; i++) {
        const xev_attr_t *a = &x->blk->attrs[e->attr0 + i];
        if (strcmp(a->name, name) == 0)
            return xev_block_str(x->blk, a->off);
    }
    return NULL;
}

void
xml_safe_record_error(const xml_safe_t *x, const pt_error_t *err, pt_record_error_t *out)
{
    size_t n = strlen(err->path);
    const char *msg = err->msg;
    if (n > 0 && strncmp(msg, err->path, n) == 0 && strncmp(msg + n, ": ", 2) == 0)
        msg += n + 2;
    out->line = xml_safe_line(x);
    if (strncmp(msg, "line ", 5) == 0)
        out->line = strtoul(msg + 5, NULL, 10);
    snprintf(out->where, sizeof out->where, "%s", err->path);
    snprintf(out->msg, sizeof out->msg, "%s", msg);
}

int
xml_safe_open_source(xml_safe_t **x, const pt_codec_source_t *src, const pt_codec_config_t *cfg,
                     pt_codec_outcome_t *out)
{
    pt_error_t err;
    memset(out, 0, sizeof *out);
    xml_safe_limits_t lim = {.schema = cfg ? cfg->schema : NULL};
    int rc = xml_safe_open_fd(x, src->fd, src->name, &lim, &err);
    if (rc < 0)
        snprintf(out->error.msg, sizeof out->error.msg, "%s", err.msg);
    return rc;
}
