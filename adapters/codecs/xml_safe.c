/* xml_safe: the input filter (size, encoding, DTD constructs, line count) sits between
 * the source and libxml2, so refused bytes never reach the parser; the event loop turns
 * xmlReader nodes into START/END/TEXT and refuses every node kind a partner flow has no
 * use for. */
#include "xml_safe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <libxml/xmlreader.h>
#include <libxml/xmlschemas.h>

#define PROLOG_MIN 256 /* bytes gathered before the XML declaration is read */

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
    pt_error_t fail; /* the sticky error returned by every later call */
    bool pending_end;
    bool pop_pending; /* an END was returned: pop its element on the next call */
    /* element path */
    level_t *levels; /* levels[0] is the document; levels[d + 1] the element at depth d */
    unsigned depth;  /* number of open elements */
    char path[PT_XML_PATH_MAX];
    xmlChar *attr; /* the last xml_safe_attr() value */
    xmlSchemaPtr schema;
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
    x->levels = calloc(x->lim.max_depth + 2, sizeof *x->levels);
    if (x->levels == NULL) {
        free(x);
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
    if (x->attr != NULL)
        xmlFree(x->attr);
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
    int l = x->r ? xmlTextReaderGetParserLineNumber(x->r) : 0;
    return l > 0 ? (unsigned long)l : x->in_line;
}

const char *
xml_safe_encoding(const xml_safe_t *x)
{
    return x->encoding[0] ? x->encoding : "UTF-8";
}

static int fail(xml_safe_t *x, pt_error_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(xml_safe_t *x, pt_error_t *err, int code, const char *fmt, ...)
{
    char what[PT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    pt_error_set(&x->fail, code, xml_safe_path(x), "%s", what);
    if (err != NULL)
        *err = x->fail;
    return code;
}

static int
read_failed(xml_safe_t *x, pt_error_t *err)
{
    const pt_error_t *e = x->in_err.code ? &x->in_err : x->lib_err.code ? &x->lib_err : NULL;
    if (e != NULL && e->code == PT_EINVALID) { /* the reader's position is not the element's */
        pt_error_set(&x->fail, e->code, "", "%s", e->msg);
        if (err != NULL)
            *err = x->fail;
        return e->code;
    }
    if (e != NULL)
        return fail(x, err, e->code, "%s", e->msg);
    return fail(x, err, PT_EMALFORMED, "line %lu: malformed or truncated XML", xml_safe_line(x));
}

/* What xmlTextReaderConstNamespaceUri() gives for the reader's current node, "" for
 * none, read from the node itself: that function interns the URI in the reader's
 * dictionary (a hash of the string) at every call. Borrowed until the next read, as
 * the events are. */
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

static void
fill(xml_safe_t *x, xml_safe_node_t *node, xml_safe_kind_t kind)
{
    memset(node, 0, sizeof *node);
    node->kind = kind;
    xmlNodePtr cur = xmlTextReaderCurrentNode(x->r);
    node->ns = node_ns(cur);
    node->depth = x->depth > 0 ? x->depth - 1 : 0;
    if (kind == XML_SAFE_END) /* on_end gives the parser's line */
        return;
    long line = cur ? xmlGetLineNo(cur) : -1;
    node->line = line > 0 ? (unsigned long)line : xml_safe_line(x);
}

static int
on_element(xml_safe_t *x, xml_safe_node_t *node, pt_error_t *err)
{
    const char *name = (const char *)xmlTextReaderConstLocalName(x->r);
    if (x->depth >= x->lim.max_depth)
        return fail(x, err, PT_ETOOLARGE, "line %lu: elements nested deeper than %u",
                    xml_safe_line(x), x->lim.max_depth);
    if (path_push(x, name ? name : "?") < 0)
        return fail(x, err, -ENOMEM, "out of memory");
    fill(x, node, XML_SAFE_START);
    node->name = x->levels[x->depth].name;
    x->pending_end = xmlTextReaderIsEmptyElement(x->r) == 1;
    return 1;
}

static int
on_end(xml_safe_t *x, xml_safe_node_t *node)
{
    fill(x, node, XML_SAFE_END);
    node->name = x->levels[x->depth].name;
    node->line = xml_safe_line(x);
    x->pop_pending = x->depth > 0; /* the path names the element until the next call */
    return 1;
}

static int
on_text(xml_safe_t *x, xml_safe_node_t *node, pt_error_t *err)
{
    const char *v = (const char *)xmlTextReaderConstValue(x->r);
    size_t n = v ? strlen(v) : 0;
    if (n > x->lim.max_text)
        return fail(x, err, PT_ETOOLARGE, "line %lu: a text of %zu bytes is over the limit of %zu",
                    xml_safe_line(x), n, x->lim.max_text);
    fill(x, node, XML_SAFE_TEXT);
    node->depth = x->depth;
    node->name = x->depth > 0 ? x->levels[x->depth].name : "";
    node->value = v ? v : "";
    node->value_len = n;
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
    if (x->pop_pending) {
        x->pop_pending = false;
        x->depth--;
    }
    if (x->pending_end) {
        x->pending_end = false;
        return on_end(x, node);
    }
    for (;;) {
        int rc = xmlTextReaderRead(x->r);
        if (rc < 0 || x->in_err.code != 0 || x->lib_err.code != 0)
            return read_failed(x, err);
        if (rc == 0)
            return 0;
        int type = xmlTextReaderNodeType(x->r);
        switch (type) {
        case XML_READER_TYPE_ELEMENT:
            return on_element(x, node, err);
        case XML_READER_TYPE_END_ELEMENT:
            return on_end(x, node);
        case XML_READER_TYPE_TEXT:
        case XML_READER_TYPE_CDATA:
            return on_text(x, node, err);
        case XML_READER_TYPE_WHITESPACE:
        case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
        case XML_READER_TYPE_COMMENT:
        case XML_READER_TYPE_PROCESSING_INSTRUCTION:
        case XML_READER_TYPE_XML_DECLARATION:
            continue;
        default:
            return fail(x, err, PT_EMALFORMED, "line %lu: XML node of type %d is not accepted",
                        xml_safe_line(x), type);
        }
    }
}

const char *
xml_safe_attr(xml_safe_t *x, const char *name)
{
    if (x->attr != NULL)
        xmlFree(x->attr);
    x->attr = xmlTextReaderGetAttribute(x->r, (const xmlChar *)name);
    return (const char *)x->attr;
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
