/* atomicfile: tmp, fsync, rename, fsync the folder (see atomicfile.h). */
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

int
atomicfile_write_ex(const char *path, const void *data, size_t len, mode_t mode, bool sync_dir,
                    pt_error_t *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
        return pt_error_set(err, -ENAMETOOLONG, path, "path too long");
    /* A leftover tmp (a crash) is removed, not reused: unlink drops the name only, so
     * neither a symbolic link nor a hard link planted there is written through, and
     * O_EXCL refuses one planted again between the unlink and the open. */
    if (unlink(tmp) != 0 && errno != ENOENT)
        return pt_error_set(err, -errno, tmp, "cannot remove the old tmp: %s", strerror(errno));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return pt_error_set(err, -errno, tmp, "cannot create: %s", strerror(errno));
    int rc = fchmod(fd, mode) == 0 ? 0 : -errno; /* the umask must not widen or narrow it */
    if (rc == 0)
        rc = write_all(fd, data, len);
    if (rc == 0 && fsync(fd) != 0)
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
