/* fuzz_filedrop_jsonl: arbitrary bytes through the file drop's decoders (the JSON Lines
 * splitter, and the one-document .json codec), as a dropped file would reach them.
 * Either the file is refused whole, with an error and no records, or every record comes
 * back in order, numbered 0..n-1 on increasing lines, each an Envelope or an error that
 * says something (abort() otherwise). */
#include <stdint.h>
#include <stdlib.h>

#include "filedrop.h"

#define FUZZ_MAX_RECORDS 64

static void
check(int ok)
{
    if (!ok)
        abort();
}

static void
fuzz_codec(const filedrop_codec_t *codec, const uint8_t *data, size_t size)
{
    filedrop_record_t *recs;
    size_t n;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = filedrop_decode(codec, (const char *)data, size, FUZZ_MAX_RECORDS, &recs, &n, &err);
    if (rc != 0) {
        check(rc < 0 && recs == NULL && n == 0 && err.msg[0] != '\0');
        return;
    }
    check(n <= FUZZ_MAX_RECORDS && (n == 0 || recs != NULL));
    for (size_t i = 0; i < n; i++) {
        check(recs[i].index == i);
        check(i == 0 || recs[i].line > recs[i - 1].line || codec == &filedrop_codec_json);
        check(recs[i].env != NULL || (recs[i].err.code != 0 && recs[i].err.msg[0] != '\0'));
    }
    filedrop_records_free(&recs, n);
    check(recs == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_codec(&filedrop_codec_jsonl, data, size);
    fuzz_codec(&filedrop_codec_json, data, size);
    return 0;
}
