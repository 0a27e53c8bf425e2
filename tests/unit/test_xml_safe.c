/* test_xml_safe: the hardened XML reader: events, paths and lines on good input; every
 * hostile input (DOCTYPE, entities, depth, huge text, truncation, bad encodings, size)
 * refused with its line, before any expansion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include "xml_safe.h"

/* Reads the whole document; returns the last xml_safe_next() code (0 at a good end). */
static int
drain(const char *doc, size_t len, const xml_safe_limits_t *lim, pt_error_t *err, int *events)
{
    xml_safe_t *x;
    assert_int_equal(xml_safe_open_memory(&x, doc, len, "t.xml", lim, err), 0);
    xml_safe_node_t n;
    int rc, count = 0;
    while ((rc = xml_safe_next(x, &n, err)) == 1)
        count++;
    if (events)
        *events = count;
    xml_safe_close(&x);
    assert_null(x);
    return rc;
}

static int
drain_str(const char *doc, pt_error_t *err)
{
    return drain(doc, strlen(doc), NULL, err, NULL);
}

static void
test_events_paths_and_lines(void **state)
{
    (void)state;
    const char *doc = "<?xml version=\"1.0\"?>\n<a xmlns=\"urn:x\">\n <b numero=\"7\">hi</b>\n"
                      " <b/>\n <!-- c --><c><![CDATA[x<y]]></c>\n</a>\n";
    xml_safe_t *x;
    pt_error_t err;
    xml_safe_node_t n;
    assert_int_equal(xml_safe_open_memory(&x, doc, strlen(doc), "t", NULL, &err), 0);
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(n.kind, XML_SAFE_START);
    assert_string_equal(n.name, "a");
    assert_string_equal(n.ns, "urn:x");
    assert_int_equal(n.depth, 0);
    assert_int_equal(n.line, 2);
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_string_equal(n.name, "b");
    assert_int_equal(n.line, 3);
    assert_string_equal(xml_safe_attr(x, "numero"), "7");
    assert_null(xml_safe_attr(x, "absent"));
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(n.kind, XML_SAFE_TEXT);
    assert_string_equal(n.value, "hi");
    assert_string_equal(xml_safe_path(x), "/a/b");
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(n.kind, XML_SAFE_END);
    assert_int_equal(xml_safe_next(x, &n, &err), 1); /* <b/> */
    assert_int_equal(n.kind, XML_SAFE_START);
    assert_string_equal(xml_safe_path(x), "/a/b[2]");
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(n.kind, XML_SAFE_END);
    assert_string_equal(n.name, "b");
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_string_equal(n.name, "c");
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_string_equal(n.value, "x<y");
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_string_equal(n.name, "a");
    assert_int_equal(xml_safe_next(x, &n, &err), 0);
    assert_string_equal(xml_safe_encoding(x), "UTF-8");
    xml_safe_close(&x);
}

static void
test_windows_1252_really_decoded(void **state)
{
    (void)state;
    /* 0x80 is the euro sign in windows-1252 (a C1 control in ISO-8859-1), 0xE9 is e-acute,
     * 0x9C is oe */
    const char doc[] = "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<a>\x80 \xe9\x9c</a>";
    xml_safe_t *x;
    pt_error_t err;
    xml_safe_node_t n;
    assert_int_equal(xml_safe_open_memory(&x, doc, sizeof doc - 1, "t", NULL, &err), 0);
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_int_equal(xml_safe_next(x, &n, &err), 1);
    assert_string_equal(n.value, "\xe2\x82\xac \xc3\xa9\xc5\x93");
    assert_string_equal(xml_safe_encoding(x), "windows-1252");
    xml_safe_close(&x);
}

static void
test_undefined_windows_1252_byte_refused(void **state)
{
    (void)state;
    const char doc[] = "<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<a>\n\x81</a>";
    pt_error_t err;
    assert_int_equal(drain(doc, sizeof doc - 1, NULL, &err, NULL), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 3: invalid byte sequence"));
}

static void
test_bad_utf8_refused_with_line(void **state)
{
    (void)state;
    pt_error_t err;
    /* Latin-1 e-acute in a UTF-8 document: never guessed, never U+FFFD */
    assert_int_equal(
        drain_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>\n<b>Ren\xe9</b></a>", &err),
        PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 3: invalid byte sequence for the encoding UTF-8"));
    assert_null(strstr(err.msg, "Ren"));
    /* no declaration means UTF-8 too; an overlong form and a surrogate are refused */
    assert_int_equal(drain_str("<a>\xc0\xaf</a>", &err), PT_EMALFORMED);
    assert_int_equal(drain_str("<a>\xed\xa0\x80</a>", &err), PT_EMALFORMED);
    /* a file ending inside a sequence */
    assert_int_equal(drain_str("<a></a>\n\xc3", &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 2"));
    /* good UTF-8 passes */
    assert_int_equal(drain_str("<a>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80</a>", &err), 0);
}

static void
test_doctype_and_entities_refused(void **state)
{
    (void)state;
    pt_error_t err;
    const char *laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n"
                         " <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                         " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                         "]>\n<lolz>&lol3;</lolz>";
    assert_int_equal(drain_str(laughs, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 2: a DOCTYPE or DTD declaration is not accepted"));
    const char *xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE a [<!ENTITY x SYSTEM "
                      "\"file:///etc/passwd\">]><a>&x;</a>";
    assert_int_equal(drain_str(xxe, &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "DOCTYPE"));
    assert_int_equal(drain_str("<!DOCTYPE a SYSTEM \"http://example.org/a.dtd\"><a/>", &err),
                     PT_EMALFORMED);
    /* an undeclared entity reference is a well-formedness error */
    assert_int_equal(drain_str("<a>&x;</a>", &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 1"));
    /* the predefined entities and character references are fine */
    assert_int_equal(drain_str("<a>&lt;&amp;&#233;<!-- ok --><![CDATA[ok]]></a>", &err), 0);
}

/* The input filter scans plain ASCII several bytes at a time: a DTD construct, a bad byte
 * and the line count must come out the same wherever they fall against those words and
 * against the reads (4 bytes, the rest of the 256-byte prolog, then 4 KiB at a time:
 * pads 251 and 4347 put the probe's '<' last in a read). */
static void
test_filter_at_every_offset(void **state)
{
    (void)state;
    static const size_t pads[] = {0,   1,   2,    3,    4,    5,    6,   7,   8,
                                  9,   15,  16,   17,   248,  249,  250, 251, 252,
                                  253, 254, 4346, 4347, 4348, 4349, 4350};
    char doc[8192], want[32];
    pt_error_t err;
    for (size_t k = 0; k < sizeof pads / sizeof pads[0]; k++) {
        /* "<a>\n", then pad bytes of text whose every 7th is a newline, then the probe */
        size_t n = (size_t)snprintf(doc, sizeof doc, "<a>\n");
        unsigned lines = 2;
        for (size_t i = 0; i < pads[k]; i++, n++) {
            doc[n] = i % 7 == 6 ? '\n' : (i % 3 ? 'x' : '!');
            lines += doc[n] == '\n';
        }
        snprintf(want, sizeof want, "line %u:", lines);
        snprintf(doc + n, sizeof doc - n, "<!ENTITY e \"v\"></a>");
        assert_int_equal(drain_str(doc, &err), PT_EMALFORMED);
        assert_non_null(strstr(err.msg, "a DOCTYPE or DTD declaration is not accepted"));
        assert_non_null(strstr(err.msg, want));
        snprintf(doc + n, sizeof doc - n, "<b>\xff</b></a>");
        assert_int_equal(drain_str(doc, &err), PT_EMALFORMED);
        assert_non_null(strstr(err.msg, "invalid byte sequence"));
        assert_non_null(strstr(err.msg, want));
        snprintf(doc + n, sizeof doc - n, "<!-- c --><b><![CDATA[<c>!]]>\xc3\xa9</b></a>");
        assert_int_equal(drain_str(doc, &err), 0);
    }
}

static void
test_depth_limit(void **state)
{
    (void)state;
    char doc[4096] = "";
    for (int i = 0; i < 70; i++)
        strcat(doc, "<d>");
    for (int i = 0; i < 70; i++)
        strcat(doc, "</d>");
    pt_error_t err;
    assert_int_equal(drain_str(doc, &err), PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "nested deeper than 64"));
    xml_safe_limits_t lim = {.max_depth = 80};
    assert_int_equal(drain(doc, strlen(doc), &lim, &err, NULL), 0);
}

static void
test_text_and_file_limits(void **state)
{
    (void)state;
    size_t n = 100000;
    char *doc = malloc(n + 16);
    memcpy(doc, "<a>", 3);
    memset(doc + 3, 'x', n);
    memcpy(doc + 3 + n, "</a>", 5);
    pt_error_t err;
    assert_int_equal(drain(doc, n + 7, NULL, &err, NULL), PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "over the limit of 65536"));
    xml_safe_limits_t lim = {.max_text = 200000, .max_file = 50000};
    assert_int_equal(drain(doc, n + 7, &lim, &err, NULL), PT_ETOOLARGE);
    assert_non_null(strstr(err.msg, "size limit"));
    lim.max_file = 0;
    assert_int_equal(drain(doc, n + 7, &lim, &err, NULL), 0);
    free(doc);
}

static void
test_truncated_and_malformed(void **state)
{
    (void)state;
    pt_error_t err;
    assert_int_equal(drain_str("<a>\n<b>text</b>\n<c>", &err), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "line 3"));
    assert_int_equal(drain_str("<a><b></a>", &err), PT_EMALFORMED);
    assert_int_equal(drain_str("", &err), PT_EMALFORMED);
    assert_int_equal(drain_str("<a></a><b/>", &err), PT_EMALFORMED);
    /* the error is sticky */
    xml_safe_t *x;
    xml_safe_node_t node;
    assert_int_equal(xml_safe_open_memory(&x, "<a><", 4, "t", NULL, &err), 0);
    while (xml_safe_next(x, &node, &err) == 1)
        ;
    assert_int_equal(xml_safe_next(x, &node, &err), PT_EMALFORMED);
    xml_safe_close(&x);
}

static void
test_encodings_refused(void **state)
{
    (void)state;
    pt_error_t err;
    assert_int_equal(drain_str("<?xml version=\"1.0\" encoding=\"EBCDIC-US\"?><a/>", &err),
                     PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "is not accepted"));
    const char utf16[] = "\xff\xfe<\0a\0/\0>\0";
    assert_int_equal(drain(utf16, sizeof utf16 - 1, NULL, &err, NULL), PT_EMALFORMED);
    assert_non_null(strstr(err.msg, "UTF-16"));
    assert_int_equal(
        drain_str("<?xml version=\"1.0\" encoding=\"US-ASCII\"?><a>\xc3\xa9</a>", &err),
        PT_EMALFORMED);
    /* a BOM with a UTF-8 declaration is fine */
    assert_int_equal(drain_str("\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>", &err),
                     0);
}

static void
test_real_cnaf_sample_reads(void **state)
{
    (void)state;
    FILE *f = fopen(PT_SAMPLES_DIR "/carnet-de-bord/RSABEM.xml", "rb");
    assert_non_null(f);
    xml_safe_t *x;
    pt_error_t err;
    assert_int_equal(xml_safe_open_fd(&x, fileno(f), "RSABEM.xml", NULL, &err), 0);
    xml_safe_node_t n;
    int rc, households = 0;
    while ((rc = xml_safe_next(x, &n, &err)) == 1)
        if (n.kind == XML_SAFE_START && strcmp(n.name, "InfosFoyerRSA") == 0)
            households++;
    assert_int_equal(rc, 0);
    assert_int_equal(households, 2);
    assert_string_equal(xml_safe_encoding(x), "windows-1252");
    xml_safe_close(&x);
    fclose(f);
}

#define SCHEMAS PT_SOURCE_DIR "/adapters/schemas/"

/* Reads path (or text) against an XSD; returns the last xml_safe_next() code. */
static int
drain_schema(const char *path, const char *text, const char *xsd, pt_error_t *err)
{
    uint8_t *buf = NULL;
    size_t len = text ? strlen(text) : 0;
    if (path != NULL)
        assert_int_equal(tu_read_file(path, &buf, &len), 0);
    xml_safe_limits_t lim = {.schema = xsd};
    int rc = drain(path ? (char *)buf : text, len, &lim, err, NULL);
    free(buf);
    return rc;
}

/* The optional check at the door: the fixtures and samples follow their schemas; a
 * violation is refused with its line and element, never the value. */
static void
test_schema_check(void **state)
{
    (void)state;
    pt_error_t err;
    assert_int_equal(
        drain_schema(PT_FIXTURES_DIR "/lheo/catalogue-v1.xml", NULL, SCHEMAS "lheo.xsd", &err), 0);
    assert_int_equal(
        drain_schema(PT_FIXTURES_DIR "/cnaf/flux-1252.xml", NULL, SCHEMAS "vrsb0801.xsd", &err), 0);
    assert_int_equal(drain_schema(PT_SAMPLES_DIR "/carnet-de-bord/RSABEM.xml", NULL,
                                  SCHEMAS "vrsb0801.xsd", &err),
                     0);
    uint8_t *doc;
    size_t len;
    assert_int_equal(tu_read_file(PT_FIXTURES_DIR "/lheo/catalogue-v1.xml", &doc, &len), 0);
    char *d = strstr((char *)doc, "<debut>20270104</debut>");
    assert_non_null(d);
    memcpy(d + 7, "2027X104", 8);
    assert_int_equal(drain_schema(NULL, (char *)doc, SCHEMAS "lheo.xsd", &err), PT_EINVALID);
    if (strstr(err.msg, "element debut does not follow the schema (facet pattern)") == NULL)
        fail_msg("%s", err.msg);
    assert_non_null(strstr(err.msg, "line "));
    assert_null(strstr(err.msg, "2027X104"));
    free(doc);
    const char *nir = "<?xml version=\"1.0\"?>\n<Racine><IdentificationFlux><NIR>X</NIR>"
                      "</IdentificationFlux></Racine>";
    assert_int_equal(drain_schema(NULL, nir, SCHEMAS "vrsb0801.xsd", &err), PT_EINVALID);
    assert_non_null(strstr(err.msg, "line 2: element"));
    xml_safe_t *x;
    xml_safe_limits_t lim = {.schema = SCHEMAS "absent.xsd"};
    assert_int_equal(xml_safe_open_memory(&x, "<a/>", 4, "t", &lim, &err), PT_ECONFIG);
    assert_null(x);
}

/* ---- the reader thread: the same events as inline, over many blocks ---- */

/* A document of many blocks: namespaces (default and prefixed), attributes, CDATA,
 * comments, empty elements and a text larger than a block's arena. */
static char *
big_document(size_t *len)
{
    size_t cap = 8u << 20, n = 0;
    char *d = malloc(cap);
    assert_non_null(d);
    n += (size_t)snprintf(d + n, cap - n,
                          "<?xml version=\"1.0\"?>\n<cat xmlns=\"urn:a\" xmlns:p=\"urn:p\">\n");
    for (unsigned i = 0; i < 6000; i++)
        n += (size_t)snprintf(d + n, cap - n,
                              " <f numero=\"F%u\" p:k=\"%u\"><t>title %u</t><!-- c -->"
                              "<p:x><![CDATA[a<b %u]]></p:x><e/><n>%u</n></f>\n",
                              i, i % 7, i, i, i * 3);
    n += (size_t)snprintf(d + n, cap - n, " <big>");
    for (unsigned i = 0; i < 300000; i++)
        d[n++] = (char)('a' + i % 26);
    n += (size_t)snprintf(d + n, cap - n, "</big>\n</cat>\n");
    *len = n;
    return d;
}

/* Every event, its path, line and the numero attribute, one line each, then the end
 * code and error. */
static char *
event_log(const char *doc, size_t len, xml_safe_thread_t mode, size_t stop_after)
{
    xml_safe_limits_t lim = {.max_text = 1u << 20, .thread = mode};
    xml_safe_t *x;
    pt_error_t err;
    assert_int_equal(xml_safe_open_memory(&x, doc, len, "big.xml", &lim, &err), 0);
    assert_int_equal(xml_safe_threaded(x), mode == XML_SAFE_THREAD_ALWAYS);
    size_t cap = 32u << 20, n = 0, count = 0;
    char *log = malloc(cap);
    assert_non_null(log);
    xml_safe_node_t e;
    int rc;
    while ((rc = xml_safe_next(x, &e, &err)) == 1 && ++count != stop_after) {
        const char *numero = e.kind == XML_SAFE_START ? xml_safe_attr(x, "numero") : NULL;
        const char *k = e.kind == XML_SAFE_START ? xml_safe_attr(x, "p:k") : NULL;
        n += (size_t)snprintf(log + n, cap - n, "%d %s {%s} d%u l%lu/%lu %s %s %s %zu:%.40s\n",
                              (int)e.kind, e.name, e.ns, e.depth, e.line, xml_safe_line(x),
                              xml_safe_path(x), numero ? numero : "-", k ? k : "-", e.value_len,
                              e.value ? e.value : "");
        assert_true(n < cap);
    }
    snprintf(log + n, cap - n, "rc %d %s line %lu\n", rc, rc < 0 ? err.msg : "", xml_safe_line(x));
    xml_safe_close(&x);
    return log;
}

static void
test_thread_same_events(void **state)
{
    (void)state;
    size_t len;
    char *doc = big_document(&len);
    char *inline_log = event_log(doc, len, XML_SAFE_THREAD_NEVER, 0);
    char *thread_log = event_log(doc, len, XML_SAFE_THREAD_ALWAYS, 0);
    assert_non_null(strstr(inline_log, "rc 0"));
    assert_non_null(strstr(inline_log, "/cat/f[6000]/x"));
    assert_non_null(strstr(inline_log, "F5999 0"));
    assert_non_null(strstr(inline_log, "{urn:p}"));
    assert_non_null(strstr(inline_log, "300000:abcdefghij"));
    assert_string_equal(inline_log, thread_log);
    free(inline_log);
    free(thread_log);
    /* truncated in the middle of the big text, and cut inside a tag */
    const size_t cuts[] = {len - 1000, len / 3 + 5};
    for (size_t i = 0; i < 2; i++) {
        inline_log = event_log(doc, cuts[i], XML_SAFE_THREAD_NEVER, 0);
        thread_log = event_log(doc, cuts[i], XML_SAFE_THREAD_ALWAYS, 0);
        assert_non_null(strstr(inline_log, "rc -"));
        assert_string_equal(inline_log, thread_log);
        free(inline_log);
        free(thread_log);
    }
    free(doc);
}

/* The same errors on the reader thread: a depth limit and a DOCTYPE far into a file. */
static void
test_thread_same_errors(void **state)
{
    (void)state;
    size_t len;
    char *doc = big_document(&len);
    char *deep = strstr(doc, "<f numero=\"F4000\"");
    assert_non_null(deep);
    memcpy(deep, "<!DOCTYPE", 9);
    char *a = event_log(doc, len, XML_SAFE_THREAD_NEVER, 0);
    char *b = event_log(doc, len, XML_SAFE_THREAD_ALWAYS, 0);
    assert_non_null(strstr(a, "DOCTYPE"));
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(doc);
    char *nest = malloc(40000);
    size_t n = 0;
    for (unsigned i = 0; i < 5000; i++)
        n += (size_t)snprintf(nest + n, 40000 - n, "<a>");
    a = event_log(nest, n, XML_SAFE_THREAD_NEVER, 0);
    b = event_log(nest, n, XML_SAFE_THREAD_ALWAYS, 0);
    assert_non_null(strstr(a, "deeper than"));
    assert_string_equal(a, b);
    free(a);
    free(b);
    free(nest);
}

/* A decoder that stops early closes the reader while its thread waits for a free block. */
static void
test_thread_closed_early(void **state)
{
    (void)state;
    size_t len;
    char *doc = big_document(&len);
    for (size_t stop = 1; stop < 40000; stop *= 7)
        free(event_log(doc, len, XML_SAFE_THREAD_ALWAYS, stop));
    free(doc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_paths_and_lines),
        cmocka_unit_test(test_windows_1252_really_decoded),
        cmocka_unit_test(test_undefined_windows_1252_byte_refused),
        cmocka_unit_test(test_bad_utf8_refused_with_line),
        cmocka_unit_test(test_doctype_and_entities_refused),
        cmocka_unit_test(test_filter_at_every_offset),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_text_and_file_limits),
        cmocka_unit_test(test_truncated_and_malformed),
        cmocka_unit_test(test_encodings_refused),
        cmocka_unit_test(test_real_cnaf_sample_reads),
        cmocka_unit_test(test_schema_check),
        cmocka_unit_test(test_thread_same_events),
        cmocka_unit_test(test_thread_same_errors),
        cmocka_unit_test(test_thread_closed_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
