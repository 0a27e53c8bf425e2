/* xml_events: event blocks and their ring (see xml_events.h). */
#include "xml_events.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int
xev_block_init(xev_block_t *b, size_t events, size_t arena)
{
    memset(b, 0, sizeof *b);
    b->ev = malloc(events * sizeof *b->ev);
    b->arena = malloc(arena);
    if (b->ev == NULL || b->arena == NULL) {
        xev_block_fini(b);
        return -ENOMEM;
    }
    b->evcap = events;
    b->cap = b->full_at = arena;
    return 0;
}

void
xev_block_fini(xev_block_t *b)
{
    free(b->ev);
    free(b->attrs);
    free(b->arena);
    memset(b, 0, sizeof *b);
}

void
xev_block_reset(xev_block_t *b)
{
    b->nev = 0;
    b->nattrs = 0;
    b->used = 0;
    if (b->cap > 4 * b->full_at) { /* one huge text: give its memory back */
        char *a = realloc(b->arena, b->full_at);
        if (a != NULL)
            b->arena = a, b->cap = b->full_at;
    }
}

bool
xev_block_full(const xev_block_t *b)
{
    return b->nev + 2 > b->evcap || b->used >= b->full_at;
}

xev_t *
xev_block_push(xev_block_t *b)
{
    xev_t *e = &b->ev[b->nev++];
    memset(e, 0, sizeof *e);
    return e;
}

int
xev_block_copy(xev_block_t *b, const char *s, size_t n, size_t *off)
{
    if (n + 1 > b->cap - b->used) {
        size_t cap = b->cap;
        while (n + 1 > cap - b->used)
            cap *= 2;
        char *a = realloc(b->arena, cap); /* offsets, not pointers, stay valid */
        if (a == NULL)
            return -ENOMEM;
        b->arena = a, b->cap = cap;
    }
    *off = b->used;
    memcpy(b->arena + b->used, s, n);
    b->arena[b->used + n] = '\0';
    b->used += n + 1;
    return 0;
}

int
xev_block_attr(xev_block_t *b, const char *name, const char *value, size_t len)
{
    if (b->nattrs == b->attrcap) {
        size_t cap = b->attrcap ? b->attrcap * 2 : 64;
        xev_attr_t *a = realloc(b->attrs, cap * sizeof *a);
        if (a == NULL)
            return -ENOMEM;
        b->attrs = a, b->attrcap = cap;
    }
    size_t off;
    if (xev_block_copy(b, value, len, &off) < 0)
        return -ENOMEM;
    b->attrs[b->nattrs++] = (xev_attr_t){name, off};
    return 0;
}

/* Blocks go round in order: the reader fills blocks[published % N] once fewer than N are
 * published and not released, the decoder takes blocks[taken % N] once published. */
struct xev_ring {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    xev_block_t blocks[PT_XEV_RING_BLOCKS];
    uint64_t published, taken, released;
    bool stopped;
};

int
xev_ring_new(xev_ring_t **out)
{
    xev_ring_t *r = calloc(1, sizeof *r);
    if (r == NULL)
        return -ENOMEM;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    for (size_t i = 0; i < PT_XEV_RING_BLOCKS; i++)
        if (xev_block_init(&r->blocks[i], PT_XEV_BLOCK_EVENTS, PT_XEV_ARENA) < 0) {
            xev_ring_destroy(&r);
            return -ENOMEM;
        }
    *out = r;
    return 0;
}

void
xev_ring_destroy(xev_ring_t **pr)
{
    if (pr == NULL || *pr == NULL)
        return;
    xev_ring_t *r = *pr;
    for (size_t i = 0; i < PT_XEV_RING_BLOCKS; i++)
        xev_block_fini(&r->blocks[i]);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    *pr = NULL;
}

xev_block_t *
xev_ring_acquire(xev_ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stopped && r->published - r->released >= PT_XEV_RING_BLOCKS)
        pthread_cond_wait(&r->cv, &r->mu);
    xev_block_t *b = r->stopped ? NULL : &r->blocks[r->published % PT_XEV_RING_BLOCKS];
    pthread_mutex_unlock(&r->mu);
    if (b != NULL)
        xev_block_reset(b);
    return b;
}

void
xev_ring_publish(xev_ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->published++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

xev_block_t *
xev_ring_next(xev_ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->taken == r->published)
        pthread_cond_wait(&r->cv, &r->mu);
    xev_block_t *b = &r->blocks[r->taken++ % PT_XEV_RING_BLOCKS];
    pthread_mutex_unlock(&r->mu);
    return b;
}

void
xev_ring_release(xev_ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->released++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void
xev_ring_stop(xev_ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->stopped = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
