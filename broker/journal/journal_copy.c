/* journal_copy: a consistent copy of the committed journal into a new folder (the
 * backup of ptibusctl): LMDB's compacting copy in one read transaction, safe while the
 * broker writes; the folder 0700 and the file 0600 from the start, synced. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "journal_internal.h"

/* dir exists and holds nothing: true; else false with err set. */
static bool
copy_dir_ready(const char *dir, pt_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        pt_error_set(err, -errno, dir, "cannot open the folder: %s", strerror(errno));
        return false;
    }
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty)
        pt_error_set(err, -EEXIST, dir, "the folder is not empty: give a new or empty one");
    return empty;
}

static int
copy_prepare(const char *dir, pt_error_t *err)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return pt_error_set(err, -errno, dir, "cannot create the folder: %s", strerror(errno));
    if (!copy_dir_ready(dir, err))
        return err->code;
    if (chmod(dir, 0700) != 0)
        return pt_error_set(err, -errno, dir, "chmod 0700: %s", strerror(errno));
    return 0;
}

/* fsync of a file or folder by name. */
static int
copy_sync(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = fd >= 0 && fsync(fd) == 0 ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    return rc;
}

int
journal_copy(journal_t *j, const char *dir, pt_error_t *err)
{
    char file[PATH_MAX];
    int rc = copy_prepare(dir, err);
    if (rc != 0)
        return rc;
    /* The copy is created by LMDB with 0666 & ~umask: no moment when it is readable by
     * others. */
    mode_t old = umask(077);
    rc = lmdbx_code(mdb_env_copy2(j->env, dir, MDB_CP_COMPACT));
    umask(old);
    if (rc != 0)
        return pt_error_set(err, rc, dir, "copying the journal: %s", pt_strerror(rc));
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    if (chmod(file, 0600) != 0 || copy_sync(file) != 0 || copy_sync(dir) != 0)
        return pt_error_set(err, -errno, file, "chmod 0600 and fsync: %s", strerror(errno));
    return 0;
}
