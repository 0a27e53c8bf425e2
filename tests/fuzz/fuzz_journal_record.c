/* fuzz_journal_record: the journal's on-disk decoders meet arbitrary bytes, as they
 * would a damaged data.mdb: journal_record_decode and journal_checkpoint_decode must
 * refuse with PT_ECORRUPT (or PT_EVERSION), never crash, and whatever decodes must
 * point inside the buffer. The chain hash and, for a format-2 record, the payload
 * removal (which find the payload section by themselves) and the anchor decoder meet
 * the same bytes; a stripped record must decode again and keep its chain hash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "journal_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(const uint8_t *buf, size_t len, const void *p, size_t n)
{
    const uint8_t *q = p;
    if (p != NULL && (q < buf || q + n > buf + len))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1); /* an exact-size copy so overreads show */
    memcpy(buf, data, size);
    journal_view_t v;
    pt_error_t err;
    int rc = journal_record_decode(buf, size, 1, &v, &err);
    if (rc == 0) {
        check_inside(buf, size, v.payload, v.payload_len);
        for (const char *const *s = (const char *const[]){v.partner, v.msg_type, v.message_id,
                                                          v.correlation_id, v.reason, NULL};
             *s; s++)
            check_inside(buf, size, *s, strlen(*s) + 1);
        for (size_t i = 0; i < v.n_recipients; i++)
            check_inside(buf, size, v.recipients[i], strlen(v.recipients[i]) + 1);
        uint8_t zero[PT_JOURNAL_HASH_LEN] = {0}, h[PT_JOURNAL_HASH_LEN], h2[PT_JOURNAL_HASH_LEN];
        journal_record_chain(zero, buf, size, h);
        uint8_t *out = malloc(size);
        size_t n;
        if (journal_record_strip(buf, size, PT_PAYLOAD_ERASED, out, &n) == 0) {
            journal_view_t v2;
            if (journal_record_decode(out, n, 1, &v2, &err) != 0 ||
                v2.payload_state != PT_PAYLOAD_ERASED)
                abort();
            journal_record_chain(zero, out, n, h2);
            if (memcmp(h, h2, sizeof h) != 0)
                abort();
        }
        free(out);
    } else if (rc != PT_ECORRUPT && rc != PT_EVERSION) {
        abort();
    }
    journal_checkpoint_rec_t cp;
    rc = journal_checkpoint_decode(buf, size, &cp, &err);
    if (rc != 0 && rc != PT_ECORRUPT && rc != PT_EVERSION)
        abort();
    rc = journal_anchor_decode(buf, size, &cp, &err);
    if (rc != 0 && rc != PT_ECORRUPT && rc != PT_EVERSION)
        abort();
    free(buf);
    return 0;
}
