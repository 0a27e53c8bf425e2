/* powercut_shim: an LD_PRELOAD library, for tests only, that makes a process lose every
 * write not yet durable when the power is "cut". For files opened under $PT_POWERCUT_DIR
 * it keeps an undo log: before each write it saves the bytes the write replaces (and the
 * file size when the write extends the file); fsync/fdatasync of the file, or sync()/
 * syncfs(), drop the file's records (now durable); a write through an O_DSYNC/O_SYNC
 * descriptor is durable at once (a redo record keeps its bytes). The cut comes on the
 * $PT_POWERCUT_AFTER-th write (that write is not made): the process is stopped, the
 * undo log is applied in reverse and the durable writes replayed, then it is killed with
 * SIGKILL. The files are left as a power cut would leave them. The model and its
 * limits are in docs/reliability.md ("Power loss"). */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PC_MAX_FD 4096
#define PC_MAX_FILES 256

typedef enum pc_kind { PC_UNDO, PC_SIZE, PC_REDO } pc_kind_t;

/* One pending change of a file. UNDO: the old bytes of [off, off+len). SIZE: the file
 * was len bytes long before a write extended it. REDO: the bytes of a durable write. */
typedef struct pc_rec {
    pc_kind_t kind;
    int file;
    off_t off;
    size_t len;
    unsigned char data[];
} pc_rec_t;

typedef struct pc_file {
    dev_t dev;
    ino_t ino;
    int fd; /* the shim's own O_RDWR descriptor on it, never closed: reads the bytes to
             * save and rewrites the file at the cut */
} pc_file_t;

typedef struct pc_fd {
    int file; /* index in files + 1; 0 = not tracked */
    bool dsync;
} pc_fd_t;

static struct {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    size_t dir_len;
    long cut_after; /* 0 = never */
    long writes;
    pc_fd_t fds[PC_MAX_FD];
    pc_file_t files[PC_MAX_FILES];
    int n_files;
    pc_rec_t **recs;
    size_t n_recs, cap_recs;
    ssize_t (*pwrite)(int, const void *, size_t, off_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
    int (*open)(const char *, int, ...);
    int (*openat)(int, const char *, int, ...);
    int (*close)(int);
    int (*fsync)(int);
    int (*fdatasync)(int);
    int (*ftruncate)(int, off_t);
    void (*sync)(void);
    int (*syncfs)(int);
} pc = {.lock = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t pc_once = PTHREAD_ONCE_INIT;

static void
pc_die(const char *what)
{
    fprintf(stderr, "powercut: %s\n", what);
    abort();
}

static void
pc_init(void)
{
    pc.pwrite = dlsym(RTLD_NEXT, "pwrite");
    pc.write = dlsym(RTLD_NEXT, "write");
    pc.writev = dlsym(RTLD_NEXT, "writev");
    pc.pwritev = dlsym(RTLD_NEXT, "pwritev");
    pc.open = dlsym(RTLD_NEXT, "open");
    pc.openat = dlsym(RTLD_NEXT, "openat");
    pc.close = dlsym(RTLD_NEXT, "close");
    pc.fsync = dlsym(RTLD_NEXT, "fsync");
    pc.fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    pc.ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    pc.sync = dlsym(RTLD_NEXT, "sync");
    pc.syncfs = dlsym(RTLD_NEXT, "syncfs");
    const char *dir = getenv("PT_POWERCUT_DIR");
    if (dir != NULL && realpath(dir, pc.dir) == NULL) {
        /* The journal folder may not exist yet: keep the name as given. */
        snprintf(pc.dir, sizeof pc.dir, "%s", dir);
    }
    pc.dir_len = strlen(pc.dir);
    const char *after = getenv("PT_POWERCUT_AFTER");
    pc.cut_after = after ? strtol(after, NULL, 10) : 0;
}

static void
pc_ready(void)
{
    pthread_once(&pc_once, pc_init);
}

/* ---- the undo log ---- */

static void
rec_push(pc_kind_t kind, int file, off_t off, size_t len)
{
    pc_rec_t *r = malloc(sizeof *r + (kind == PC_SIZE ? 0 : len));
    if (r == NULL)
        pc_die("out of memory");
    *r = (pc_rec_t){.kind = kind, .file = file, .off = off, .len = len};
    if (kind != PC_SIZE && pread(pc.files[file].fd, r->data, len, off) != (ssize_t)len)
        pc_die("cannot read the bytes of a pending write");
    if (pc.n_recs == pc.cap_recs) {
        pc.cap_recs = pc.cap_recs ? 2 * pc.cap_recs : 256;
        pc.recs = realloc(pc.recs, pc.cap_recs * sizeof *pc.recs);
        if (pc.recs == NULL)
            pc_die("out of memory");
    }
    pc.recs[pc.n_recs++] = r;
}

/* The file (all of it, whichever descriptor) is durable: forget its records. */
static void
recs_drop(int file)
{
    size_t k = 0;
    for (size_t i = 0; i < pc.n_recs; i++) {
        if (file < 0 || pc.recs[i]->file == file)
            free(pc.recs[i]);
        else
            pc.recs[k++] = pc.recs[i];
    }
    pc.n_recs = k;
}

static off_t
file_size(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        pc_die("fstat");
    return st.st_size;
}

/* Saves what a write of len bytes at off on fd will replace. */
static void
save_before(int fd, off_t off, size_t len)
{
    int file = pc.fds[fd].file - 1;
    off_t size = file_size(fd);
    if (off + (off_t)len > size)
        rec_push(PC_SIZE, file, 0, (size_t)size);
    if (off < size)
        rec_push(PC_UNDO, file, off,
                 (size_t)((off + (off_t)len < size ? off + (off_t)len : size) - off));
}

/* ---- the cut ---- */

static void
apply_recs(void)
{
    for (size_t i = pc.n_recs; i-- > 0;) {
        pc_rec_t *r = pc.recs[i];
        int fd = pc.files[r->file].fd;
        if (r->kind == PC_UNDO)
            (void)pc.pwrite(fd, r->data, r->len, r->off);
        else if (r->kind == PC_SIZE)
            (void)pc.ftruncate(fd, (off_t)r->len);
    }
    for (size_t i = 0; i < pc.n_recs; i++) {
        pc_rec_t *r = pc.recs[i];
        if (r->kind == PC_REDO)
            (void)pc.pwrite(pc.files[r->file].fd, r->data, r->len, r->off);
    }
}

/* Called with the lock held, instead of the cut_after-th write. A child process stops
 * this one (all its threads: none may read the files being rewritten, or write
 * anything), rewrites the files, and kills it. Between fork and exit the child uses only
 * async-signal-safe calls. */
static void
pc_cut(void)
{
    char msg[160];
    int len = snprintf(msg, sizeof msg, "powercut: cut at write %ld, %zu pending records undone\n",
                       pc.writes, pc.n_recs);
    pid_t self = getpid();
    pid_t child = fork();
    if (child == 0) {
        kill(self, SIGSTOP);
        struct timespec ts = {0, 20 * 1000 * 1000}; /* let every thread stop */
        nanosleep(&ts, NULL);
        apply_recs();
        (void)pc.write(STDERR_FILENO, msg, (size_t)len);
        kill(self, SIGKILL);
        _exit(0);
    }
    if (child < 0)
        pc_die("fork");
    for (;;)
        pause();
}

/* Counts a write to a tracked fd and cuts the power on the chosen one. */
static void
pc_count(void)
{
    pc.writes++;
    if (pc.cut_after > 0 && pc.writes >= pc.cut_after)
        pc_cut();
}

/* ---- descriptors ---- */

static bool
fd_tracked(int fd)
{
    pc_ready();
    return fd >= 0 && fd < PC_MAX_FD && pc.fds[fd].file != 0;
}

static int
file_index(const struct stat *st, const char *path)
{
    for (int i = 0; i < pc.n_files; i++)
        if (pc.files[i].dev == st->st_dev && pc.files[i].ino == st->st_ino)
            return i;
    if (pc.n_files == PC_MAX_FILES)
        pc_die("too many files");
    int own = pc.open(path, O_RDWR | O_CLOEXEC);
    if (own < 0)
        pc_die("cannot open a watched file for the undo log");
    pc.files[pc.n_files] = (pc_file_t){.dev = st->st_dev, .ino = st->st_ino, .fd = own};
    return pc.n_files++;
}

/* Starts tracking fd when it names a regular file under the watched folder. */
static void
fd_opened(int fd, int flags)
{
    char link[64], path[PATH_MAX];
    struct stat st;
    if (fd < 0 || pc.dir_len == 0)
        return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    path[n] = '\0';
    if ((size_t)n <= pc.dir_len || strncmp(path, pc.dir, pc.dir_len) != 0 ||
        path[pc.dir_len] != '/')
        return;
    if (fd >= PC_MAX_FD)
        pc_die("descriptor number too high to track");
    pthread_mutex_lock(&pc.lock);
    pc.fds[fd].file = file_index(&st, path) + 1;
    pc.fds[fd].dsync = (flags & (O_DSYNC | O_SYNC)) != 0;
    pthread_mutex_unlock(&pc.lock);
}

/* The file's records stay: its data is in the page cache whether a descriptor is open
 * or not, and the shim's own descriptor rewrites it at the cut. */
static void
fd_closed(int fd)
{
    pthread_mutex_lock(&pc.lock);
    pc.fds[fd].file = 0;
    pthread_mutex_unlock(&pc.lock);
}

/* ---- the interposed calls ---- */

static int
open_mode(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, int) : 0;
}

int
open(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = open_mode(flags, ap);
    va_end(ap);
    pc_ready();
    int fd = pc.open(path, flags, mode);
    fd_opened(fd, flags);
    return fd;
}

int
open64(const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = open_mode(flags, ap);
    va_end(ap);
    pc_ready();
    int fd = pc.open(path, flags, mode);
    fd_opened(fd, flags);
    return fd;
}

int
openat(int dirfd, const char *path, int flags, ...)
{
    va_list ap;
    va_start(ap, flags);
    int mode = open_mode(flags, ap);
    va_end(ap);
    pc_ready();
    int fd = pc.openat(dirfd, path, flags, mode);
    fd_opened(fd, flags);
    return fd;
}

int
close(int fd)
{
    if (fd_tracked(fd))
        fd_closed(fd);
    return pc.close(fd);
}

/* The common path of every write: count (maybe cut), save, write, note durability. */
typedef ssize_t (*pc_do_fn)(int fd, const void *arg, size_t len, off_t off);

static ssize_t
tracked_write(int fd, size_t len, off_t off, pc_do_fn fn, const void *arg)
{
    pthread_mutex_lock(&pc.lock);
    pc_count();
    if (off < 0) { /* write(2)/writev(2): at the file position */
        off = (fcntl(fd, F_GETFL) & O_APPEND) ? file_size(fd) : lseek(fd, 0, SEEK_CUR);
    }
    save_before(fd, off, len);
    ssize_t r = fn(fd, arg, len, off);
    int saved = errno;
    if (r > 0 && pc.fds[fd].dsync)
        rec_push(PC_REDO, pc.fds[fd].file - 1, off, (size_t)r);
    pthread_mutex_unlock(&pc.lock);
    errno = saved;
    return r;
}

static ssize_t
do_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    return pc.pwrite(fd, buf, len, off);
}

static ssize_t
do_write(int fd, const void *buf, size_t len, off_t off)
{
    (void)off;
    return pc.write(fd, buf, len);
}

typedef struct pc_iov {
    const struct iovec *iov;
    int n;
    bool positioned;
} pc_iov_t;

static ssize_t
do_writev(int fd, const void *arg, size_t len, off_t off)
{
    const pc_iov_t *v = arg;
    (void)len;
    return v->positioned ? pc.pwritev(fd, v->iov, v->n, off) : pc.writev(fd, v->iov, v->n);
}

static size_t
iov_len(const struct iovec *iov, int n)
{
    size_t len = 0;
    for (int i = 0; i < n; i++)
        len += iov[i].iov_len;
    return len;
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (!fd_tracked(fd))
        return pc.pwrite(fd, buf, len, off);
    return tracked_write(fd, len, off, do_pwrite, buf);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off_t off)
{
    return pwrite(fd, buf, len, off);
}

ssize_t
write(int fd, const void *buf, size_t len)
{
    if (!fd_tracked(fd))
        return pc.write(fd, buf, len);
    return tracked_write(fd, len, -1, do_write, buf);
}

ssize_t
writev(int fd, const struct iovec *iov, int n)
{
    if (!fd_tracked(fd))
        return pc.writev(fd, iov, n);
    pc_iov_t v = {iov, n, false};
    return tracked_write(fd, iov_len(iov, n), -1, do_writev, &v);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (!fd_tracked(fd))
        return pc.pwritev(fd, iov, n, off);
    pc_iov_t v = {iov, n, true};
    return tracked_write(fd, iov_len(iov, n), off, do_writev, &v);
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
    return pwritev(fd, iov, n, off);
}

int
ftruncate(int fd, off_t len)
{
    if (!fd_tracked(fd))
        return pc.ftruncate(fd, len);
    pthread_mutex_lock(&pc.lock);
    off_t size = file_size(fd);
    int file = pc.fds[fd].file - 1;
    if (len < size)
        rec_push(PC_UNDO, file, len, (size_t)(size - len));
    rec_push(PC_SIZE, file, 0, (size_t)size);
    int r = pc.ftruncate(fd, len);
    pthread_mutex_unlock(&pc.lock);
    return r;
}

int
ftruncate64(int fd, off_t len)
{
    return ftruncate(fd, len);
}

/* A successful sync of one descriptor makes its whole file durable. */
static int
tracked_sync(int fd, int (*fn)(int))
{
    pthread_mutex_lock(&pc.lock);
    int r = fn(fd);
    if (r == 0)
        recs_drop(pc.fds[fd].file - 1);
    pthread_mutex_unlock(&pc.lock);
    return r;
}

int
fsync(int fd)
{
    if (!fd_tracked(fd))
        return pc.fsync(fd);
    return tracked_sync(fd, pc.fsync);
}

int
fdatasync(int fd)
{
    if (!fd_tracked(fd))
        return pc.fdatasync(fd);
    return tracked_sync(fd, pc.fdatasync);
}

void
sync(void)
{
    pc_ready();
    pthread_mutex_lock(&pc.lock);
    pc.sync();
    recs_drop(-1);
    pthread_mutex_unlock(&pc.lock);
}

int
syncfs(int fd)
{
    pc_ready();
    pthread_mutex_lock(&pc.lock);
    int r = pc.syncfs(fd);
    if (r == 0)
        recs_drop(-1);
    pthread_mutex_unlock(&pc.lock);
    return r;
}
