/* readahead: reads the partners' socket and does the journal-free work of each message,
 * also on a helper thread while the loop waits for the fsync (see readahead.h). */
#include "readahead.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "codec.h"
#include "zpart.h"

struct readahead {
    void *sock;
    const bconfig_t *cfg;
    readahead_item_t *items; /* ring: head is the oldest, count items follow it */
    size_t max, head, count;
    size_t bytes; /* weight of the items in the ring (item_weight), at most READAHEAD_MAX_BYTES */
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool lent; /* the helper owns the socket and the ring (guarded by mu) */
    bool quit;
    atomic_bool stop; /* reclaim asked: stop reading */
    int wake_fd;      /* eventfd: wakes the helper out of zmq_poll */
};

/* What an item read ahead holds in memory, about: its bytes, the decoded frame and
 * envelope, the canonical copy, and the fixed part. */
static size_t
item_weight(readahead_item_t *it)
{
    return 4 * zmq_msg_size(&it->payload) + sizeof *it;
}

static void
item_init(readahead_item_t *it)
{
    zmq_msg_init(&it->rid);
    zmq_msg_init(&it->payload);
    it->partner = NULL;
    it->frame = NULL;
    it->code = 0;
    pt_error_clear(&it->why);
    memset(&it->prep, 0, sizeof it->prep);
}

void
readahead_item_fini(readahead_item_t *it)
{
    ingest_prep_fini(&it->prep);
    codec_free((ProtobufCMessage **)&it->frame);
    zmq_msg_close(&it->payload);
    zmq_msg_close(&it->rid);
}

static void
decode(const bconfig_t *cfg, readahead_item_t *it)
{
    ProtobufCMessage *m;
    size_t len = zmq_msg_size(&it->payload);
    int rc = codec_unpack(&ptibus__v1__frame__descriptor, zmq_msg_data(&it->payload), len,
                          (size_t)cfg->max_message_size * 2 + PT_FRAME_OVERHEAD, &m, &it->why);
    if (rc == PT_EINVALID) { /* a field outside the contract, too many elements: named */
        it->code = PTIBUS__V1__NACK_CODE__NACK_CODE_INVALID;
        return;
    }
    if (rc != 0) {
        it->code = rc == PT_ETOOLARGE ? PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE
                                      : PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED;
        pt_error_set(&it->why, rc, "frame", "%zu bytes are not a valid ptibus.v1.Frame%s", len,
                     it->code == PTIBUS__V1__NACK_CODE__NACK_CODE_TOO_LARGE ? " (too large)" : "");
        return;
    }
    it->frame = (Ptibus__V1__Frame *)m;
    if (it->frame->kind_case == PTIBUS__V1__FRAME__KIND_PUBLISH)
        ingest_prepare(cfg, it->partner, it->frame->publish, &it->prep);
}

/* A peer sent one message of several parts: refused whole (protocol.md: one part
 * carries one Frame), the first part journaled with the refusal like a malformed frame. */
static void
refuse_parts(readahead_item_t *it, size_t parts)
{
    it->code = PTIBUS__V1__NACK_CODE__NACK_CODE_MALFORMED;
    pt_error_set(&it->why, PT_EMALFORMED, "frame",
                 "a message of %zu parts: a ptibus.v1.Frame is exactly one ZeroMQ message part",
                 parts);
}

bool
readahead_read(void *sock, const bconfig_t *cfg, readahead_item_t *it)
{
    item_init(it);
    if (zmq_msg_recv(&it->rid, sock, ZMQ_DONTWAIT) < 0) {
        readahead_item_fini(it);
        return false;
    }
    /* The ROUTER put the routing id first: the peer's parts follow, all already here. */
    if (!zmq_msg_more(&it->rid) || zmq_msg_recv(&it->payload, sock, ZMQ_DONTWAIT) < 0)
        return true; /* no partner: dropped by the caller */
    size_t extra = zpart_drain(sock, &it->payload);
    const char *user = zmq_msg_gets(&it->payload, "User-Id");
    it->partner = user ? bconfig_partner_by_id(cfg, user) : NULL;
    if (it->partner != NULL && extra > 0)
        refuse_parts(it, extra + 1);
    else if (it->partner != NULL)
        decode(cfg, it);
    return true;
}

/* The helper's turn with the socket: read and prepare until reclaimed or full. */
static void
helper_run(readahead_t *pf)
{
    zmq_pollitem_t pi[2] = {{pf->sock, 0, ZMQ_POLLIN, 0}, {NULL, pf->wake_fd, ZMQ_POLLIN, 0}};
    while (!atomic_load(&pf->stop)) {
        if (!readahead_full(pf)) {
            readahead_item_t *it = &pf->items[(pf->head + pf->count) % pf->max];
            if (readahead_read(pf->sock, pf->cfg, it)) {
                pf->count++;
                pf->bytes += item_weight(it);
                continue;
            }
        }
        pi[0].events = readahead_full(pf) ? 0 : ZMQ_POLLIN;
        if (zmq_poll(pi, 2, -1) < 0 && errno != EINTR)
            break;
        if (pi[1].revents & ZMQ_POLLIN) {
            uint64_t v;
            ssize_t r = read(pf->wake_fd, &v, sizeof v);
            (void)r; /* drained; the stop flag says what to do */
        }
    }
}

static void *
helper_main(void *arg)
{
    readahead_t *pf = arg;
    pthread_mutex_lock(&pf->mu);
    for (;;) {
        while (!pf->quit && !pf->lent)
            pthread_cond_wait(&pf->cv, &pf->mu);
        if (pf->quit)
            break;
        pthread_mutex_unlock(&pf->mu);
        helper_run(pf);
        pthread_mutex_lock(&pf->mu);
        pf->lent = false;
        pthread_cond_broadcast(&pf->cv);
    }
    pthread_mutex_unlock(&pf->mu);
    return NULL;
}

int
readahead_new(void *sock, const bconfig_t *cfg, size_t max, readahead_t **out, pt_error_t *err)
{
    readahead_t *pf = calloc(1, sizeof *pf);
    if (pf == NULL || max == 0 || (pf->items = calloc(max, sizeof *pf->items)) == NULL) {
        free(pf);
        return pt_error_set(err, -ENOMEM, "readahead", "no memory for %zu messages", max);
    }
    pf->sock = sock;
    pf->cfg = cfg;
    pf->max = max;
    atomic_init(&pf->stop, false);
    pf->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    int rc = pf->wake_fd < 0 ? errno : pthread_create(&pf->thread, NULL, helper_main, pf);
    pf->started = rc == 0;
    if (rc != 0) {
        readahead_destroy(&pf);
        return pt_error_set(err, -rc, "readahead", "cannot start the helper thread: %s",
                            strerror(rc));
    }
    *out = pf;
    return 0;
}

void
readahead_destroy(readahead_t **pfp)
{
    readahead_t *pf = pfp ? *pfp : NULL;
    if (pf == NULL)
        return;
    if (pf->started) {
        pthread_mutex_lock(&pf->mu);
        pf->quit = true;
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        pthread_join(pf->thread, NULL);
    }
    for (; pf->count > 0; pf->count--, pf->head = (pf->head + 1) % pf->max)
        readahead_item_fini(&pf->items[pf->head]);
    if (pf->wake_fd >= 0)
        close(pf->wake_fd);
    pthread_cond_destroy(&pf->cv);
    pthread_mutex_destroy(&pf->mu);
    free(pf->items);
    free(pf);
    *pfp = NULL;
}

void
readahead_lend(readahead_t *pf)
{
    atomic_store(&pf->stop, false);
    pthread_mutex_lock(&pf->mu);
    pf->lent = true;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
}

void
readahead_reclaim(readahead_t *pf)
{
    atomic_store(&pf->stop, true);
    uint64_t one = 1;
    ssize_t w = write(pf->wake_fd, &one, sizeof one);
    (void)w; /* an eventfd write only fails when the counter would overflow */
    pthread_mutex_lock(&pf->mu);
    while (pf->lent)
        pthread_cond_wait(&pf->cv, &pf->mu);
    pthread_mutex_unlock(&pf->mu);
}

readahead_item_t *
readahead_take(readahead_t *pf)
{
    if (pf->count == 0)
        return NULL;
    readahead_item_t *it = &pf->items[pf->head];
    pf->head = (pf->head + 1) % pf->max;
    pf->count--;
    pf->bytes -= item_weight(it);
    return it;
}

size_t
readahead_count(const readahead_t *pf)
{
    return pf->count;
}

bool
readahead_full(const readahead_t *pf)
{
    return pf->count >= pf->max || pf->bytes >= READAHEAD_MAX_BYTES;
}
