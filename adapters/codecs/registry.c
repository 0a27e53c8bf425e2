/* registry: a constant table; lookups are linear (a handful of codecs). */
#include "registry.h"

#include <string.h>

#include "caf_csv.h"
#include "cd_csv.h"
#include "cnaf.h"
#include "ft_csv.h"
#include "ft_extract.h"
#include "imilo.h"
#include "lheo.h"

static const pt_codec_ops_t *const codecs[] = {
    &lheo_codec,   &cnaf_codec,  &ft_csv_codec,  &ft_extract_codec,
    &cd_csv_codec, &imilo_codec, &caf_csv_codec,
};

const pt_codec_ops_t *
codec_registry_find(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof codecs / sizeof codecs[0]; i++)
        if (strcmp(codecs[i]->name, name) == 0)
            return codecs[i];
    return NULL;
}

size_t
codec_registry_count(void)
{
    return sizeof codecs / sizeof codecs[0];
}

const pt_codec_ops_t *
codec_registry_at(size_t i)
{
    return i < codec_registry_count() ? codecs[i] : NULL;
}
