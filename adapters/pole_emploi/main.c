/* ptibus-adapter-pole-emploi: France Travail's adapter (JSON over HTTP, ; CSV extracts).
 * A thin main: the runtime (core/runtime.h) does everything; this file says which
 * native codecs this partner's adapter has. */
#include "runtime.h"
#include "ft_csv.h"
#include "ft_extract.h"
static const pt_codec_ops_t *const codecs[] = {&ft_csv_codec, &ft_extract_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-pole-emploi",
        .summary = "France Travail's adapter (JSON over HTTP, ; CSV extracts).",
        .codecs = codecs,
    };
    return runtime_main(&ops, argc, argv);
}
