/* xml_safe: a hardened, streaming XML reader for partner flows, over libxml2's xmlReader.
 * Network access off, no DTD loaded, a DOCTYPE or an entity declaration refused before
 * libxml2 sees it (so no entity is ever expanded), a depth limit, a size limit per text
 * node and per file, and strict encodings: only UTF-8, US-ASCII, ISO-8859-1 and
 * windows-1252 are accepted, and input declared (or defaulting to) UTF-8 that is not
 * valid UTF-8 is refused with its line (never guessed, never replaced by U+FFFD). The
 * reader owns its libxml2 reader and the element path it keeps for messages; values
 * handed out are borrowed until the next call. Error messages carry the line and never
 * a text value. A large file is read on a thread of its own, a few blocks of events
 * ahead of its decoder (xml_events.h), so that parsing and decoding use two cores; the
 * events, paths, lines and errors are the same as when it is read inline. */
#ifndef PT_XML_SAFE_H
#define PT_XML_SAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec_ops.h"
#include "err.h"

#define PT_XML_MAX_DEPTH 64                 /* default element nesting limit */
#define PT_XML_MAX_TEXT (64 * 1024)         /* default bytes per text node */
#define PT_XML_MAX_FILE (UINT64_C(1) << 30) /* default bytes per file (1 GiB) */
#define PT_XML_PATH_MAX 256                 /* element path kept for messages */
#define XML_SAFE_THREAD_MIN (1u << 20)      /* bytes from which a file is read on a thread */

/* Whether the document is read on a thread of its own. AUTO: from XML_SAFE_THREAD_MIN
 * bytes on, unless the environment's PTIBUS_XML_THREAD says "always" or "never" (for
 * tests and diagnosis). */
typedef enum xml_safe_thread {
    XML_SAFE_THREAD_AUTO = 0,
    XML_SAFE_THREAD_NEVER,
    XML_SAFE_THREAD_ALWAYS,
} xml_safe_thread_t;

typedef struct xml_safe_limits {
    unsigned max_depth; /* 0: PT_XML_MAX_DEPTH */
    size_t max_text;    /* 0: PT_XML_MAX_TEXT */
    uint64_t max_file;  /* 0: PT_XML_MAX_FILE */
    /* Optional W3C XML Schema file (adapters/schemas/) the document is checked against
     * while it streams; a violation fails with PT_EINVALID, its line and element, never
     * the value. NULL: no check. */
    const char *schema;
    xml_safe_thread_t thread;
} xml_safe_limits_t;

typedef enum xml_safe_kind {
    XML_SAFE_START = 1, /* an element opens (an empty element gives START then END) */
    XML_SAFE_END,       /* an element closes */
    XML_SAFE_TEXT,      /* text or CDATA inside the current element (whitespace skipped) */
} xml_safe_kind_t;

/* One event. Strings are UTF-8, borrowed until the next xml_safe_next(). */
typedef struct xml_safe_node {
    xml_safe_kind_t kind;
    const char *name;  /* local name of the element (START, END; the parent for TEXT) */
    const char *ns;    /* namespace URI, or "" */
    const char *value; /* TEXT only */
    size_t value_len;
    unsigned depth; /* 0 for the root element */
    unsigned long line;
} xml_safe_node_t;

typedef struct xml_safe xml_safe_t;

/* Opens a reader on fd (read from its current offset; the caller keeps and closes fd).
 * name is used in messages only. limits may be NULL (defaults). On success the caller
 * owns *out; free with xml_safe_close(). Returns 0, -ENOMEM, PT_EINTERNAL, or PT_ECONFIG
 * when limits->schema cannot be loaded. */
int xml_safe_open_fd(xml_safe_t **out, int fd, const char *name, const xml_safe_limits_t *limits,
                     pt_error_t *err);

/* The same over a memory buffer, borrowed for the reader's lifetime. */
int xml_safe_open_memory(xml_safe_t **out, const void *buf, size_t len, const char *name,
                         const xml_safe_limits_t *limits, pt_error_t *err);

/* Opens a reader on a codec source (the file descriptor the runtime hands over), with
 * cfg's schema when one is configured (cfg may be NULL). Clears out; on failure
 * out->error says why and *x is not opened. Returns as xml_safe_open_fd. */
int xml_safe_open_source(xml_safe_t **x, const pt_codec_source_t *src, const pt_codec_config_t *cfg,
                         pt_codec_outcome_t *out);

/* Whether x reads on a thread of its own (its events are the same either way). */
bool xml_safe_threaded(const xml_safe_t *x);

/* Frees the reader (stopping its thread) and sets *x to NULL; accepts NULL. */
void xml_safe_close(xml_safe_t **x);

/* Moves to the next event. Returns 1 with *node filled, 0 at a well-formed end of
 * document, or a negative code with err set to "line N: what" and err->path the element
 * path: PT_EMALFORMED (not well-formed, truncated, DOCTYPE/entity, bad encoding),
 * PT_ETOOLARGE (a limit), PT_EINVALID (the schema is not followed), -EIO. After an error every call
 * returns the same error. */
int xml_safe_next(xml_safe_t *x, xml_safe_node_t *node, pt_error_t *err);

/* The value of attribute name (no namespace) of the element just opened (valid after a
 * START, until the next call), or NULL when absent. */
const char *xml_safe_attr(xml_safe_t *x, const char *name);

/* The current element path, e.g. "/Racine/InfosFoyerRSA[2]/Personne/Identification/NIR":
 * [n] is the 1-based position among the siblings of that name, shown from the second on
 * (no position means the first). After an END, it still names the element that ended.
 * Borrowed until the next call. */
const char *xml_safe_path(const xml_safe_t *x);

/* The current line (1-based). */
unsigned long xml_safe_line(const xml_safe_t *x);

/* The encoding the document declared ("UTF-8" when none), valid after the first
 * xml_safe_next(). */
const char *xml_safe_encoding(const xml_safe_t *x);

/* Copies an error of xml_safe_next() into a record error: where = the element path,
 * msg = "line N: what" (without the path prefix), line = N. */
void xml_safe_record_error(const xml_safe_t *x, const pt_error_t *err, pt_record_error_t *out);

#endif
