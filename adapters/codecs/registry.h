/* registry: the one table of the native-format codecs built into ptibus_codecs, so that
 * the adapter runtime finds a codec by the name its config gives (`codec: lheo`) without
 * naming a partner. Owns nothing; the table is constant. */
#ifndef PT_CODEC_REGISTRY_H
#define PT_CODEC_REGISTRY_H

#include <stddef.h>

#include "core/codec_ops.h"

/* The codec named name, or NULL when there is none. */
const pt_codec_ops_t *codec_registry_find(const char *name);

/* Number of codecs and the i-th one (0 <= i < count), for listings and tests. */
size_t codec_registry_count(void);
const pt_codec_ops_t *codec_registry_at(size_t i);

#endif
