/* csv: an RFC 4180 reader and writer for the partners' `;`-separated files. The reader
 * streams rows from a file descriptor or a buffer: a UTF-8 byte order mark is skipped,
 * rows end with LF or CRLF, a field in double quotes may hold the separator, line breaks
 * and doubled quotes, blank lines are skipped, rows are returned as they are (ragged rows
 * are the caller's business, with the row's line), an unterminated quote or a character
 * after a closing quote is an error with its line, and text is checked (strict UTF-8) or
 * decoded (windows-1252) into UTF-8. The writer quotes what needs quoting, ends rows with
 * CRLF and encodes UTF-8 or windows-1252. Errors never quote a field's value. */
#ifndef PT_CSV_H
#define PT_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec_ops.h"
#include "err.h"

#define PT_CSV_MAX_FIELD (64 * 1024)        /* default bytes per field */
#define PT_CSV_MAX_FIELDS 1024              /* default fields per row */
#define PT_CSV_MAX_FILE (UINT64_C(1) << 30) /* default bytes per file */

typedef enum csv_encoding { CSV_UTF8 = 0, CSV_WINDOWS_1252 } csv_encoding_t;

typedef struct csv_options {
    char sep;                /* 0: ';' */
    csv_encoding_t encoding; /* of the input / the output */
    size_t max_field;        /* 0: PT_CSV_MAX_FIELD */
    size_t max_fields;       /* 0: PT_CSV_MAX_FIELDS */
    uint64_t max_file;       /* 0: PT_CSV_MAX_FILE */
} csv_options_t;

/* One row: n fields, NUL-terminated UTF-8, borrowed until the next csv_next(). line is
 * where the row starts (1-based). */
typedef struct csv_row {
    size_t n;
    char **fields;
    unsigned long line;
} csv_row_t;

typedef struct csv_reader csv_reader_t;

/* Opens a reader on fd (from its current offset; the caller keeps and closes it) or on a
 * buffer (borrowed for the reader's lifetime). opts may be NULL. Caller owns *out; free
 * with csv_close(). Returns 0 or -ENOMEM. */
int csv_open_fd(csv_reader_t **out, int fd, const csv_options_t *opts);
int csv_open_memory(csv_reader_t **out, const void *buf, size_t len, const csv_options_t *opts);
void csv_close(csv_reader_t **r);

/* The next row: 1 with *row filled, 0 at the end of the input, or a negative code with
 * err set to "line N: what" (err->path "line N"): PT_EMALFORMED (unterminated quote,
 * text after a closing quote, bad encoding), PT_ETOOLARGE (a limit), -EIO. Errors are
 * sticky: the file cannot be read further. */
int csv_next(csv_reader_t *r, csv_row_t *row, pt_error_t *err);

/* The line the reader has reached (for messages at the end of input). */
unsigned long csv_line(const csv_reader_t *r);

/* A writer over a sink (see core/codec_ops.h). */
typedef struct csv_writer {
    pt_write_fn write;
    void *ctx;
    char sep;
    csv_encoding_t encoding;
} csv_writer_t;

/* Sets up w; encoding "UTF-8" (or NULL) or "windows-1252" (case-insensitive), else
 * PT_EINVALID. */
int csv_writer_init(csv_writer_t *w, char sep, const char *encoding, pt_write_fn write, void *ctx,
                    pt_error_t *err);

/* Writes one row of n UTF-8 fields (NULL is an empty field), quoted where needed, ended
 * with CRLF. Returns 0, PT_EINVALID (err: "field N: ...") when a field is not UTF-8 or
 * has a character windows-1252 cannot write, or the sink's error. */
int csv_write_row(csv_writer_t *w, const char *const *fields, size_t n, pt_error_t *err);

/* Converts a windows-1252 byte to its Unicode code point, or -1 for the five undefined
 * bytes. */
int32_t csv_cp1252_to_unicode(uint8_t b);

#endif
