/* atomicfile: tmp, fsync, rename, fsync the folder; batches of them (see atomicfile.h). */
#include "atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
atomicfile_sync_dir(const char *path)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

static int
write_all(int fd, const void *data, size_t len)
{
    const char *buf = data;
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int
atomicfile_write(const char *path, const void *data, size_t len, mode_t mode, pt_error_t *err)
{
    return atomicfile_write_ex(path, data, len, mode, true, err);
}

/* Creates path.tmp holding data with mode, fd left open in *fd and the tmp's name in tmp
 * (cap bytes): a leftover tmp (a crash) is removed, not reused: unlink drops the name only,
 * so neither a symbolic link nor a hard link planted there is written through, and O_EXCL
 * refuses one planted again between the unlink and the open. Nothing is left on failure. */
static int
create_tmp(const char *path, const void *data, size_t len, mode_t mode, int *fd, char *tmp,
           size_t cap, pt_error_t *err)
{
    if ((size_t)snprintf(tmp, cap, "%s.tmp", path) >= cap)
        return pt_error_set(err, -ENAMETOOLONG, path, "path too long");
    if (unlink(tmp) != 0 && errno != ENOENT)
        return pt_error_set(err, -errno, tmp, "cannot remove the old tmp: %s", strerror(errno));
    *fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (*fd < 0)
        return pt_error_set(err, -errno, tmp, "cannot create: %s", strerror(errno));
    int rc = fchmod(*fd, mode) == 0 ? 0 : -errno; /* the umask must not widen or narrow it */
    if (rc == 0)
        rc = write_all(*fd, data, len);
    if (rc != 0) {
        close(*fd);
        unlink(tmp);
        return pt_error_set(err, rc, path, "cannot write: %s", strerror(-rc));
    }
    return 0;
}

int
atomicfile_write_ex(const char *path, const void *data, size_t len, mode_t mode, bool sync_dir,
                    pt_error_t *err)
{
    char tmp[4096];
    int fd = -1;
    int rc = create_tmp(path, data, len, mode, &fd, tmp, sizeof tmp, err);
    if (rc != 0)
        return rc;
    if (fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0 && sync_dir)
        rc = atomicfile_sync_dir(path);
    if (rc != 0) {
        unlink(tmp);
        return pt_error_set(err, rc, path, "cannot write: %s", strerror(-rc));
    }
    return 0;
}

/* ---- batches ---- */

typedef struct staged {
    char *path, *tmp; /* final name, and the tmp holding the bytes until the commit */
    int fd;
} staged_t;

struct atomicfile_batch {
    staged_t *v;
    size_t n, cap;
    size_t renamed; /* by the last atomicfile_batch_sync: v[0..renamed) are in place */
};

int
atomicfile_batch_new(atomicfile_batch_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out != NULL ? 0 : -ENOMEM;
}

static void
staged_drop(staged_t *f, bool unlink_tmp)
{
    if (f->fd >= 0)
        close(f->fd);
    if (unlink_tmp)
        unlink(f->tmp);
    free(f->path);
    free(f->tmp);
}

void
atomicfile_batch_discard(atomicfile_batch_t *b)
{
    if (b == NULL)
        return;
    b->renamed = 0;
    atomicfile_batch_clear(b);
}

void
atomicfile_batch_free(atomicfile_batch_t **b)
{
    if (*b == NULL)
        return;
    atomicfile_batch_discard(*b);
    free((*b)->v);
    free(*b);
    *b = NULL;
}

size_t
atomicfile_batch_count(const atomicfile_batch_t *b)
{
    return b->n;
}

const char *
atomicfile_batch_staged(const atomicfile_batch_t *b, const char *path)
{
    for (size_t i = b->n; i-- > 0;)
        if (strcmp(b->v[i].path, path) == 0)
            return b->v[i].tmp;
    return NULL;
}

static int
batch_grow(atomicfile_batch_t *b)
{
    if (b->n < b->cap)
        return 0;
    size_t cap = b->cap ? b->cap * 2 : 16;
    staged_t *v = realloc(b->v, cap * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    b->v = v;
    b->cap = cap;
    return 0;
}

int
atomicfile_batch_add(atomicfile_batch_t *b, const char *path, const void *data, size_t len,
                     mode_t mode, pt_error_t *err)
{
    for (size_t i = 0; i < b->n; i++) { /* staged again: the new bytes replace the old */
        if (strcmp(b->v[i].path, path) == 0) {
            staged_drop(&b->v[i], true);
            memmove(b->v + i, b->v + i + 1, (b->n - i - 1) * sizeof *b->v);
            b->n--;
            break;
        }
    }
    char tmp[4096];
    staged_t f = {.fd = -1};
    if (batch_grow(b) != 0 || (f.path = strdup(path)) == NULL) {
        staged_drop(&f, false);
        return pt_error_set(err, -ENOMEM, path, "out of memory");
    }
    int rc = create_tmp(path, data, len, mode, &f.fd, tmp, sizeof tmp, err);
    if (rc == 0 && (f.tmp = strdup(tmp)) == NULL) {
        close(f.fd);
        unlink(tmp);
        f.fd = -1;
        rc = pt_error_set(err, -ENOMEM, path, "out of memory");
    }
    if (rc != 0) {
        staged_drop(&f, false);
        return rc;
    }
    /* Starts the write-back now, so that the commit's fdatasync mostly waits for nothing. */
    (void)sync_file_range(f.fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    b->v[b->n++] = f;
    return 0;
}

static size_t
dir_len(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash != NULL ? (size_t)(slash - path) : 0;
}

/* fsyncs each distinct folder of the batch's first n files once. */
static int
sync_dirs(const atomicfile_batch_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = b->v[i].path;
        size_t dl = dir_len(p);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = dir_len(b->v[j].path) == dl && strncmp(b->v[j].path, p, dl) == 0;
        int rc = seen ? 0 : atomicfile_sync_dir(p);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int
atomicfile_batch_sync(atomicfile_batch_t *b, pt_error_t *err)
{
    int rc = 0;
    size_t i = 0;
    b->renamed = 0;
    for (i = 0; i < b->n && rc == 0; i++) /* every file's bytes durable before any name */
        if (fdatasync(b->v[i].fd) != 0)
            rc = pt_error_set(err, -errno, b->v[i].path, "cannot write: %s", strerror(errno));
    for (i = 0; i < b->n && rc == 0; i++, b->renamed++)
        if (rename(b->v[i].tmp, b->v[i].path) != 0)
            rc = pt_error_set(err, -errno, b->v[i].path, "cannot rename into place: %s",
                              strerror(errno));
    int drc = b->renamed > 0 ? sync_dirs(b, b->renamed) : 0;
    if (rc == 0 && drc != 0)
        rc = pt_error_set(err, drc, b->v[0].path, "cannot fsync the folder: %s", strerror(-drc));
    return rc;
}

void
atomicfile_batch_clear(atomicfile_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        staged_drop(&b->v[i], i >= b->renamed);
    b->n = 0;
    b->renamed = 0;
}

int
atomicfile_batch_commit(atomicfile_batch_t *b, pt_error_t *err)
{
    int rc = atomicfile_batch_sync(b, err);
    atomicfile_batch_clear(b);
    return rc;
}
