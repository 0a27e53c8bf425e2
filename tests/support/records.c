/* records: the codec tests' record collector (see records.h). */
#include "records.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "validate.h"

int
collect(void *ctx, const pt_record_t *rec)
{
    got_t *g = ctx;
    if (rec->error != NULL) {
        g->errors[g->nerr++] = *rec->error;
        return 0;
    }
    Ptibus__V1__Envelope e = *rec->env;
    Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    ts.seconds = 1800000000;
    e.message_id = "test-1";
    e.created_at = &ts;
    pt_error_t err;
    if (validate_envelope(&e, &err) != 0)
        fail_msg("invalid envelope: %s", err.msg);
    uint8_t *buf;
    size_t len;
    assert_int_equal(codec_pack(&e.base, SIZE_MAX, &buf, &len, &err), 0);
    g->env[g->n++] = ptibus__v1__envelope__unpack(NULL, len, buf);
    free(buf);
    return 0;
}

void
got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ptibus__v1__envelope__free_unpacked(g->env[i], NULL);
    memset(g, 0, sizeof *g);
}
