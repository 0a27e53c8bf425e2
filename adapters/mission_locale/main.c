/* ptibus-adapter-mission-locale: a Mission Locale's adapter (i-milo JSON); both Missions Locales
 * run it. A thin main: the runtime (core/runtime.h) does everything; this file says which native
 * codecs this partner's adapter has. */
#include "runtime.h"
#include "imilo.h"
static const pt_codec_ops_t *const codecs[] = {&imilo_codec, NULL};

int
main(int argc, char **argv)
{
    static const runtime_ops_t ops = {
        .program = "ptibus-adapter-mission-locale",
        .summary = "a Mission Locale's adapter (i-milo JSON); both Missions Locales run it.",
        .codecs = codecs,
    };
    return runtime_main(&ops, argc, argv);
}
