/* xml_events: the blocks of events that xml_safe's reading side hands to its decoding
 * side, and the bounded ring that carries them from a reader thread to the decoder. A
 * block holds up to PT_XEV_BLOCK_EVENTS events with their texts and attributes copied
 * into the block's own arena (names are libxml2's interned strings, alive as long as the
 * libxml2 reader), so that the reader may run ahead of the decoder while the values of
 * every event stay valid until the decoder releases the block. The ring owns its
 * blocks; a block owns its arrays and arena. */
#ifndef PT_XML_EVENTS_H
#define PT_XML_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PT_XEV_BLOCK_EVENTS 4096   /* events per block of a ring */
#define PT_XEV_ARENA (128u * 1024) /* arena bytes after which a ring's block is full */
#define PT_XEV_RING_BLOCKS 4       /* blocks in a reader thread's ring */

typedef enum xev_kind {
    XEV_START = 1, /* an element opens: name, ns, line; attrs */
    XEV_END,       /* an element closes: ns, line */
    XEV_TEXT,      /* text or CDATA: its bytes at off (NUL-terminated), len */
    XEV_EOF,       /* the well-formed end of the document: the last event */
    XEV_FAIL,      /* an error: code, its message at off; the last event */
} xev_kind_t;

typedef struct xev {
    uint8_t kind;              /* xev_kind_t */
    bool no_path;              /* XEV_FAIL: the error names no element (a schema violation) */
    uint16_t nattr;            /* XEV_START: its attributes, from attrs[attr0] */
    int code;                  /* XEV_FAIL */
    const char *name;          /* XEV_START: the element's local name (interned) */
    const char *ns;            /* XEV_START, XEV_END: namespace URI (interned) or "" */
    unsigned long line;        /* the node's line */
    unsigned long parser_line; /* the parser's line once the node was read */
    size_t off, len;           /* XEV_TEXT, XEV_FAIL: bytes in the arena */
    size_t attr0;
} xev_t;

typedef struct xev_attr {
    const char *name; /* qualified name (interned) */
    size_t off;       /* its value in the arena, NUL-terminated */
} xev_attr_t;

typedef struct xev_block {
    xev_t *ev;
    size_t nev, evcap;
    xev_attr_t *attrs;
    size_t nattrs, attrcap;
    char *arena;
    size_t used, cap;
    size_t full_at; /* arena bytes after which the block is full (it grows past for a text) */
} xev_block_t;

/* Allocates an empty block of events slots, full once arena bytes are used; returns 0 or
 * -ENOMEM. */
int xev_block_init(xev_block_t *b, size_t events, size_t arena);
void xev_block_fini(xev_block_t *b);

/* Empties a block for reuse (an arena grown past four times its size is shrunk back). */
void xev_block_reset(xev_block_t *b);

/* Whether the block should be handed over: fewer than two event slots left (an empty
 * element gives two events), or its arena is past full_at. */
bool xev_block_full(const xev_block_t *b);

/* The next event slot, zeroed (the caller checked xev_block_full). */
xev_t *xev_block_push(xev_block_t *b);

/* Copies n bytes and a NUL into the arena, growing it when needed; *off is where they
 * start. Returns 0 or -ENOMEM. */
int xev_block_copy(xev_block_t *b, const char *s, size_t n, size_t *off);

/* Appends an attribute (name interned, value copied) to the block. Returns 0 or
 * -ENOMEM. */
int xev_block_attr(xev_block_t *b, const char *name, const char *value, size_t len);

/* The bytes at off in the block's arena. */
static inline const char *
xev_block_str(const xev_block_t *b, size_t off)
{
    return b->arena + off;
}

typedef struct xev_ring xev_ring_t;

/* A ring of PT_XEV_RING_BLOCKS blocks. Caller owns *out; free with xev_ring_destroy().
 * Returns 0 or -ENOMEM. */
int xev_ring_new(xev_ring_t **out);
void xev_ring_destroy(xev_ring_t **r);

/* Reader side: waits for a free block (emptied), NULL once the ring is stopped. */
xev_block_t *xev_ring_acquire(xev_ring_t *r);
/* Reader side: hands the block acquired last over, filled. */
void xev_ring_publish(xev_ring_t *r);

/* Decoder side: waits for the next filled block (blocks come in the order published).
 * The block stays the decoder's until xev_ring_release(). */
xev_block_t *xev_ring_next(xev_ring_t *r);
/* Decoder side: gives the oldest block taken back to the reader. */
void xev_ring_release(xev_ring_t *r);

/* Wakes a reader waiting in xev_ring_acquire(), which then returns NULL. */
void xev_ring_stop(xev_ring_t *r);

#endif
