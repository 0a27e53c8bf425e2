/* ptibus-adapter-region: the Région's adapter (LHEO training catalogues, JSON over HTTP).
 * A thin main: the runtime (core/runtime.h) does everything; this file says which
 * native codecs this partner's adapter has, and gives the LHEO codec its fingerprint
 * store over the spool (lheo_spool.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lheo.h"
#include "lheo_spool.h"
#include "runtime.h"

static void *
codec_state(const pt_codec_ops_t *codec, spool_t *spool)
{
    if (codec != &lheo_codec)
        return NULL;
    lheo_store_t *st = malloc(sizeof *st);
    if (st != NULL)
        *st = lheo_spool_store(spool);
    return st;
}

static void
codec_state_free(const pt_codec_ops_t *codec, void *state)
{
    (void)codec;
    free(state);
}

static const pt_codec_ops_t *const codecs[] = {&lheo_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-region",
        .summary = "the Région's adapter (LHEO training catalogues, JSON over HTTP).",
        .codecs = codecs,
        .codec_state = codec_state,
        .codec_state_free = codec_state_free,
    };
    return runtime_main(&ops, argc, argv);
}
