/* fuzz_csv: arbitrary bytes through the CSV reader (UTF-8, then windows-1252). Every row
 * that reads is written again by the writer and read back to the same fields; an error
 * must say where (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"

static void
check(int ok)
{
    if (!ok)
        abort();
}

typedef struct sink {
    char *buf;
    size_t len, cap;
} sink_t;

static int
to_sink(void *ctx, const void *data, size_t len)
{
    sink_t *s = ctx;
    if (s->len + len > s->cap) {
        s->cap = (s->len + len) * 2;
        s->buf = realloc(s->buf, s->cap);
        check(s->buf != NULL);
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return 0;
}

/* Writes row and reads it back. Rows of one empty field are written as a blank line,
 * which the reader skips: those are not compared. */
static void
round_trip(const csv_row_t *row)
{
    sink_t s = {0};
    csv_writer_t w;
    pt_error_t err;
    check(csv_writer_init(&w, ';', "UTF-8", to_sink, &s, &err) == 0);
    check(csv_write_row(&w, (const char *const *)row->fields, row->n, &err) == 0);
    csv_reader_t *r;
    csv_row_t back;
    check(csv_open_memory(&r, s.buf, s.len, NULL) == 0);
    if (row->n == 1 && row->fields[0][0] == '\0') {
        check(csv_next(r, &back, &err) == 0);
    } else {
        check(csv_next(r, &back, &err) == 1);
        check(back.n == row->n);
        for (size_t i = 0; i < row->n; i++)
            check(strcmp(back.fields[i], row->fields[i]) == 0);
    }
    csv_close(&r);
    free(s.buf);
}

static void
run(const uint8_t *data, size_t size, csv_encoding_t enc)
{
    csv_options_t o = {.encoding = enc, .max_field = 4096, .max_fields = 64};
    csv_reader_t *r;
    csv_row_t row;
    pt_error_t err;
    int rc;
    check(csv_open_memory(&r, data, size, &o) == 0);
    while ((rc = csv_next(r, &row, &err)) == 1)
        round_trip(&row);
    if (rc < 0)
        check(strncmp(err.msg, "line ", 5) == 0);
    csv_close(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    run(data, size, CSV_UTF8);
    run(data, size, CSV_WINDOWS_1252);
    return 0;
}
