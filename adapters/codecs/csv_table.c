/* csv_table: header, rows and outcome, shared by the CSV codecs (see csv_table.h). */
#include "csv_table.h"

#include <stdio.h>
#include <string.h>

int
csv_table_decode(csv_reader_t *r, csv_table_header_fn header, csv_table_row_fn row, void *ctx,
                 pt_codec_outcome_t *out)
{
    memset(out, 0, sizeof *out);
    csv_row_t one;
    pt_error_t err;
    int rc = csv_next(r, &one, &err);
    if (rc == 0) {
        out->error.line = 1;
        snprintf(out->error.msg, sizeof out->error.msg,
                 "line 1: the file is empty: a header is expected");
        return PT_EMALFORMED;
    }
    if (rc == 1 && (rc = header(ctx, &one, out)) == 0)
        rc = 1;
    while (rc == 1 && (rc = csv_next(r, &one, &err)) == 1) {
        int cb = row(ctx, &one);
        if (cb < 0)
            return cb;
    }
    if (rc < 0 && out->error.msg[0] == '\0') {
        out->error.line = csv_line(r);
        snprintf(out->error.msg, sizeof out->error.msg, "%s", err.msg);
    }
    return rc;
}

int
csv_table_run(const pt_codec_source_t *src, const csv_options_t *o, csv_table_decoder_fn decode,
              pt_record_fn fn, void *ctx, pt_codec_outcome_t *out)
{
    csv_reader_t *r;
    memset(out, 0, sizeof *out);
    int rc = csv_open_fd(&r, src->fd, o);
    if (rc < 0)
        return rc;
    rc = decode(r, fn, ctx, out);
    csv_close(&r);
    return rc;
}
