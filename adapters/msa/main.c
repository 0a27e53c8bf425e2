/* ptibus-adapter-msa: the MSA's adapter (CNAF flux bénéficiaires RSA; sanctions and orientations
 * also as CSV). A thin main: the runtime (core/runtime.h) does everything; this file says which
 * native codecs this partner's adapter has. */
#include "runtime.h"
#include "caf_csv.h"
#include "cnaf.h"
static const pt_codec_ops_t *const codecs[] = {&cnaf_codec, &caf_csv_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-msa",
        .summary = "the MSA's adapter (CNAF flux bénéficiaires RSA; sanctions and orientations "
                   "also as CSV).",
        .codecs = codecs,
    };
    return runtime_main(&ops, argc, argv);
}
