/* ptibus-adapter-departement: the Département's adapter (JSON over HTTP, its RSA software's CSV
 * exports). A thin main: the runtime (core/runtime.h) does everything; this file says which native
 * codecs this partner's adapter has. */
#include "runtime.h"
#include "cd_csv.h"
static const pt_codec_ops_t *const codecs[] = {&cd_csv_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-departement",
        .summary = "the Département's adapter (JSON over HTTP, its RSA software's CSV exports).",
        .codecs = codecs,
    };
    return runtime_main(&ops, argc, argv);
}
