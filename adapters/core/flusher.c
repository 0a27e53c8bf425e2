/* flusher: a thread that syncs one batch of staged files at a time (see flusher.h). */
#include "flusher.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FLUSHER_FAILED_MAX 16 /* failed generations remembered (each resolved at once) */

struct flusher {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    flusher_notify_fn notify;
    void *arg;
    atomicfile_batch_t *batch; /* handed over, NULL when none */
    bool done;                 /* the batch is synced: rc and err hold the result */
    bool quit;
    int rc;
    pt_error_t err;
    /* loop thread only */
    uint64_t next_gen, busy_gen;
    uint64_t failed[FLUSHER_FAILED_MAX]; /* the latest failed generations, a ring */
    size_t n_failed;
};

static void *
run(void *arg)
{
    flusher_t *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->quit && (f->batch == NULL || f->done))
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->batch == NULL || f->done) /* quit, nothing in flight */
            break;
        atomicfile_batch_t *b = f->batch;
        pthread_mutex_unlock(&f->mu);
        pt_error_t err;
        pt_error_clear(&err);
        int rc = atomicfile_batch_sync(b, &err);
        pthread_mutex_lock(&f->mu);
        f->rc = rc;
        f->err = err;
        f->done = true;
        pthread_cond_broadcast(&f->cv);
        if (f->notify != NULL && !f->quit)
            f->notify(f->arg);
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

int
flusher_start(flusher_notify_fn notify, void *arg, flusher_t **out, pt_error_t *err)
{
    flusher_t *f = calloc(1, sizeof *f);
    if (f == NULL)
        return pt_error_set(err, -ENOMEM, "flusher", "out of memory");
    f->notify = notify;
    f->arg = arg;
    f->next_gen = 1;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    int rc = pthread_create(&f->thread, NULL, run, f);
    if (rc != 0) {
        pthread_cond_destroy(&f->cv);
        pthread_mutex_destroy(&f->mu);
        free(f);
        return pt_error_set(err, -rc, "flusher", "cannot start its thread: %s", strerror(rc));
    }
    *out = f;
    return 0;
}

void
flusher_stop(flusher_t **pf)
{
    if (pf == NULL || *pf == NULL)
        return;
    flusher_t *f = *pf;
    pthread_mutex_lock(&f->mu);
    while (f->batch != NULL && !f->done) /* the batch in flight finishes */
        pthread_cond_wait(&f->cv, &f->mu);
    f->quit = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    if (f->batch != NULL)
        atomicfile_batch_free(&f->batch); /* renamed files stay, the rest is removed */
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    *pf = NULL;
}

uint64_t
flusher_hand(flusher_t *f, atomicfile_batch_t *b)
{
    if (f->busy_gen != 0)
        return 0;
    pthread_mutex_lock(&f->mu);
    f->batch = b;
    f->done = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    f->busy_gen = f->next_gen++;
    return f->busy_gen;
}

uint64_t
flusher_next_gen(const flusher_t *f)
{
    return f->next_gen;
}

uint64_t
flusher_busy_gen(const flusher_t *f)
{
    return f->busy_gen;
}

const atomicfile_batch_t *
flusher_batch(const flusher_t *f)
{
    return f->busy_gen != 0 ? f->batch : NULL; /* set and cleared by the loop thread */
}

void
flusher_wait(flusher_t *f)
{
    pthread_mutex_lock(&f->mu);
    while (f->batch != NULL && !f->done)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
}

uint64_t
flusher_collect(flusher_t *f, atomicfile_batch_t **b, pt_error_t *err)
{
    if (f->busy_gen == 0)
        return 0;
    pthread_mutex_lock(&f->mu);
    bool done = f->done;
    int rc = f->rc;
    if (done) {
        *b = f->batch;
        *err = f->err;
        f->batch = NULL;
        f->done = false;
    }
    pthread_mutex_unlock(&f->mu);
    if (!done)
        return 0;
    atomicfile_batch_clear(*b);
    uint64_t gen = f->busy_gen;
    f->busy_gen = 0;
    if (rc != 0)
        f->failed[f->n_failed++ % FLUSHER_FAILED_MAX] = gen;
    return gen;
}

flusher_state_t
flusher_state(const flusher_t *f, uint64_t gen)
{
    if (gen == 0)
        return FLUSHER_DURABLE;
    size_t n = f->n_failed < FLUSHER_FAILED_MAX ? f->n_failed : FLUSHER_FAILED_MAX;
    for (size_t i = 0; i < n; i++)
        if (f->failed[i] == gen)
            return FLUSHER_FAILED;
    if (gen >= f->next_gen || gen == f->busy_gen) /* staging, or in flight */
        return FLUSHER_PENDING;
    return FLUSHER_DURABLE; /* done, not failed: batches complete in order, one at a time */
}
