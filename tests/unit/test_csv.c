/* test_csv: the RFC 4180 `;` reader on the public samples (BOM, CRLF, doubled quotes,
 * a ragged last row) and on every trap (quoted separators and line breaks, unterminated
 * quote, text after a closing quote, bad UTF-8, windows-1252, limits, buffer boundaries),
 * and the writer (quoting, CRLF, windows-1252) with its round trip through the reader. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "csv.h"
#include "testutil.h"

static void
test_sample_beneficiaires(void **state)
{
    (void)state;
    int fd = open(PT_SAMPLES_DIR "/carnet-de-bord/import_beneficiaires.csv", O_RDONLY);
    assert_true(fd >= 0);
    csv_reader_t *r;
    assert_int_equal(csv_open_fd(&r, fd, NULL), 0);
    csv_row_t row;
    pt_error_t err;
    assert_int_equal(csv_next(r, &row, &err), 1);
    assert_int_equal(row.n, 25);
    assert_int_equal(row.line, 1);
    assert_string_equal(row.fields[0], "Identifiant dans le SI*"); /* the BOM is gone */
    assert_string_equal(row.fields[1], "Pr\xc3\xa9nom*");
    size_t rows = 0, sandwich = 0;
    while (csv_next(r, &row, &err) == 1) {
        rows++;
        assert_int_equal(row.line, rows + 1);
        assert_int_equal(row.n, rows == 4 ? 24 : 25); /* the last row is ragged */
        for (size_t i = 0; i < row.n; i++) {
            assert_null(strchr(row.fields[i], '\r'));
            sandwich += strcmp(row.fields[i], "Lieu-dit \"Le sandwich\"") == 0;
        }
    }
    assert_int_equal(rows, 4);
    assert_int_equal(sandwich, 3);
    csv_close(&r);
    assert_null(r);
    close(fd);
}

/* Reads all rows of text; returns the last csv_next() code. */
static int
read_all(const char *text, size_t len, const csv_options_t *o, csv_row_t *last, size_t *rows,
         pt_error_t *err)
{
    static char keep[8][256];
    csv_reader_t *r;
    assert_int_equal(csv_open_memory(&r, text, len, o), 0);
    int rc;
    csv_row_t row;
    *rows = 0;
    while ((rc = csv_next(r, &row, err)) == 1) {
        (*rows)++;
        *last = row;
        for (size_t i = 0; i < row.n && i < 8; i++)
            snprintf(keep[i], sizeof keep[i], "%s", row.fields[i]);
    }
    static char *ptrs[8];
    for (size_t i = 0; i < 8; i++)
        ptrs[i] = keep[i];
    last->fields = ptrs;
    csv_close(&r);
    return rc;
}

static void
test_quotes_and_line_ends(void **state)
{
    (void)state;
    const char *t = "a;b;c\r\n\"x;y\";\"say \"\"hi\"\"\";\"two\nlines\"\n\n1;;\"\"\r\nlast;row";
    csv_reader_t *r;
    csv_row_t row;
    pt_error_t err;
    assert_int_equal(csv_open_memory(&r, t, strlen(t), NULL), 0);
    assert_int_equal(csv_next(r, &row, &err), 1);
    assert_int_equal(row.n, 3);
    assert_int_equal(csv_next(r, &row, &err), 1);
    assert_int_equal(row.line, 2);
    assert_string_equal(row.fields[0], "x;y");
    assert_string_equal(row.fields[1], "say \"hi\"");
    assert_string_equal(row.fields[2], "two\nlines");
    assert_int_equal(csv_next(r, &row, &err), 1); /* the blank line 4 is skipped */
    assert_int_equal(row.line, 5);
    assert_int_equal(row.n, 3);
    assert_string_equal(row.fields[1], "");
    assert_string_equal(row.fields[2], "");
    assert_int_equal(csv_next(r, &row, &err), 1); /* no final line end */
    assert_int_equal(row.line, 6);
    assert_string_equal(row.fields[1], "row");
    assert_int_equal(csv_next(r, &row, &err), 0);
    assert_int_equal(csv_next(r, &row, &err), 0);
    csv_close(&r);
    /* a trailing separator makes an empty last field; a quote inside a field is kept */
    size_t rows;
    assert_int_equal(read_all("a;b\"c;\n", 7, NULL, &row, &rows, &err), 0);
    assert_int_equal(row.n, 3);
    assert_string_equal(row.fields[1], "b\"c");
    assert_string_equal(row.fields[2], "");
}

static void
test_malformed(void **state)
{
    (void)state;
    csv_row_t row;
    size_t rows;
    pt_error_t err;
    const char *open_quote = "a;b\n1;\"never\nclosed;2\n3;4\n";
    assert_int_equal(read_all(open_quote, strlen(open_quote), NULL, &row, &rows, &err),
                     PT_EMALFORMED);
    assert_int_equal(rows, 1);
    assert_string_equal(err.msg, "line 2: a quoted field opened here is never closed");
    const char *after = "a;b\n\"x\"y;2\n";
    assert_int_equal(read_all(after, strlen(after), NULL, &row, &rows, &err), PT_EMALFORMED);
    assert_string_equal(err.msg, "line 2: a character follows a closing quote");
    const char *bad = "a;b\nRen\xe9;2\n";
    assert_int_equal(read_all(bad, strlen(bad), NULL, &row, &rows, &err), PT_EMALFORMED);
    assert_string_equal(err.msg, "line 2: invalid UTF-8");
    const char *bad_in_quotes = "a;b\n\"x\ny\n\xc3\";2\n";
    assert_int_equal(read_all(bad_in_quotes, strlen(bad_in_quotes), NULL, &row, &rows, &err),
                     PT_EMALFORMED);
    assert_string_equal(err.msg, "line 4: invalid UTF-8");
    assert_int_equal(read_all("\xef\xbb", 2, NULL, &row, &rows, &err), PT_EMALFORMED);
    assert_int_equal(read_all("a;b\nx\0y;z\n", 10, NULL, &row, &rows, &err), PT_EMALFORMED);
    assert_string_equal(err.msg, "line 2: a NUL byte is not text");
    /* EF BB B7 is U+FEF7, not a byte order mark */
    assert_int_equal(read_all("\xef\xbb\xb7;x\n", 6, NULL, &row, &rows, &err), 0);
    assert_string_equal(row.fields[0], "\xef\xbb\xb7");
    csv_options_t o = {.max_field = 4};
    assert_int_equal(read_all("abcde;f\n", 8, &o, &row, &rows, &err), PT_ETOOLARGE);
    csv_options_t o2 = {.max_fields = 2};
    assert_int_equal(read_all("a;b;c\n", 6, &o2, &row, &rows, &err), PT_ETOOLARGE);
    csv_options_t o3 = {.max_file = 5};
    assert_int_equal(read_all("a;b;c\n", 6, &o3, &row, &rows, &err), PT_ETOOLARGE);
}

static void
test_windows_1252_input(void **state)
{
    (void)state;
    csv_options_t o = {.encoding = CSV_WINDOWS_1252};
    csv_row_t row;
    size_t rows;
    pt_error_t err;
    const char *t = "nom;prenom\r\nC\x9cur;Andr\xe9 \x80\r\n";
    assert_int_equal(read_all(t, strlen(t), &o, &row, &rows, &err), 0);
    assert_int_equal(rows, 2);
    assert_string_equal(row.fields[0], "C\xc5\x93ur");
    assert_string_equal(row.fields[1], "Andr\xc3\xa9 \xe2\x82\xac");
    assert_int_equal(read_all("a\n\x81\n", 4, &o, &row, &rows, &err), PT_EMALFORMED);
    assert_string_equal(err.msg, "line 2: a byte that windows-1252 does not define");
}

/* Rows spanning the reader's 64 KiB buffer, through a file descriptor. */
static void
test_fd_buffer_boundaries(void **state)
{
    (void)state;
    char *dir = tu_tmpdir("csv");
    char path[512];
    snprintf(path, sizeof path, "%s/big.csv", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "%d;\"quoted; value %d\";\"multi\r\nline\"\r\n", i, i);
    fclose(f);
    int fd = open(path, O_RDONLY);
    csv_reader_t *r;
    assert_int_equal(csv_open_fd(&r, fd, NULL), 0);
    csv_row_t row;
    pt_error_t err;
    int i = 0, rc;
    char want[64];
    while ((rc = csv_next(r, &row, &err)) == 1) {
        assert_int_equal(row.n, 3);
        assert_int_equal(row.line, (unsigned long)(2 * i + 1));
        snprintf(want, sizeof want, "quoted; value %d", i);
        assert_string_equal(row.fields[1], want);
        assert_string_equal(row.fields[2], "multi\r\nline");
        i++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(i, 20000);
    csv_close(&r);
    close(fd);
    tu_rmtree(dir);
}

typedef struct sink {
    char buf[1024];
    size_t len;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    assert_true(s->len + len < sizeof s->buf);
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

static void
test_writer_and_round_trip(void **state)
{
    (void)state;
    sink_t s = {.len = 0};
    csv_writer_t w;
    pt_error_t err;
    assert_int_equal(csv_writer_init(&w, ';', "UTF-8", to_sink, &s, &err), 0);
    const char *row1[] = {"plain", "a;b",     "say \"hi\"", "two\nlines",
                          NULL,    " padded", "C\xc5\x93ur"};
    assert_int_equal(csv_write_row(&w, row1, 7, &err), 0);
    s.buf[s.len] = '\0';
    assert_string_equal(s.buf, "plain;\"a;b\";\"say \"\"hi\"\"\";\"two\nlines\";;\" padded\";"
                               "C\xc5\x93ur\r\n");
    csv_row_t row;
    size_t rows;
    assert_int_equal(read_all(s.buf, s.len, NULL, &row, &rows, &err), 0);
    assert_int_equal(row.n, 7);
    for (size_t i = 0; i < 7; i++)
        assert_string_equal(row.fields[i], row1[i] ? row1[i] : "");
    /* windows-1252 output, and back */
    s.len = 0;
    assert_int_equal(csv_writer_init(&w, ';', "windows-1252", to_sink, &s, &err), 0);
    const char *row2[] = {"Andr\xc3\xa9", "C\xc5\x93ur \xe2\x82\xac"};
    assert_int_equal(csv_write_row(&w, row2, 2, &err), 0);
    assert_int_equal(s.len, strlen("Andr\xe9;C\x9cur \x80\r\n"));
    assert_memory_equal(s.buf, "Andr\xe9;C\x9cur \x80\r\n", s.len);
    csv_options_t o = {.encoding = CSV_WINDOWS_1252};
    assert_int_equal(read_all(s.buf, s.len, &o, &row, &rows, &err), 0);
    assert_string_equal(row.fields[0], row2[0]);
    assert_string_equal(row.fields[1], row2[1]);
    /* what windows-1252 cannot write is refused, naming the field only */
    const char *row3[] = {"ok", "\xe4\xb8\xad"};
    assert_int_equal(csv_write_row(&w, row3, 2, &err), PT_EINVALID);
    assert_string_equal(err.msg, "field 2: a character has no windows-1252 form");
    const char *row4[] = {"\xff"};
    assert_int_equal(csv_write_row(&w, row4, 1, &err), PT_EINVALID);
    assert_int_equal(csv_writer_init(&w, ';', "latin9", to_sink, &s, &err), PT_EINVALID);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_beneficiaires),
        cmocka_unit_test(test_quotes_and_line_ends),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_windows_1252_input),
        cmocka_unit_test(test_fd_buffer_boundaries),
        cmocka_unit_test(test_writer_and_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
