/* journal_open: opening a journal (folder and file modes, the LMDB environment, the
 * named databases, resuming the sequence and head from meta and checking the tail)
 * and closing it. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "log.h"

#define JOURNAL_DEFAULT_INITIAL ((size_t)64 << 20)
#define JOURNAL_DEFAULT_MAX ((size_t)64 << 30)
#define JOURNAL_TAIL_CHECK 16

static size_t
round_pages(size_t n, size_t page)
{
    return n % page ? n + page - n % page : n;
}

/* An existing journal folder must be the broker's alone: owned by the euid, no access
 * for group or others (they could read the records or swap data.mdb). Checked on the
 * opened fd, so what is checked is what was opened. */
static int
check_dir(int fd, const char *dir, pt_error_t *err)
{
    struct stat st;
    uid_t euid = geteuid();
    if (fstat(fd, &st) != 0)
        return pt_error_set(err, -errno, dir, "cannot stat the journal folder: %s",
                            strerror(errno));
    if (st.st_uid != euid)
        return pt_error_set(err, PT_EDENIED, dir,
                            "the journal folder is owned by uid %u, not by the broker's user "
                            "(uid %u); fix it with: chown -R %u %s",
                            (unsigned)st.st_uid, (unsigned)euid, (unsigned)euid, dir);
    if ((st.st_mode & 077) != 0)
        return pt_error_set(err, PT_EDENIED, dir,
                            "the journal folder has mode %04o, open to group or others; fix it "
                            "with: chmod 700 %s",
                            (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

static int
open_dir(const journal_options_t *o, pt_error_t *err)
{
    if (o->read_only)
        return 0;
    bool created = mkdir(o->dir, 0700) == 0;
    if (!created && errno != EEXIST)
        return pt_error_set(err, -errno, o->dir, "mkdir: %s", strerror(errno));
    int fd = open(o->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pt_error_set(err, -errno, o->dir, "cannot open the journal folder: %s",
                            strerror(errno));
    int rc = 0;
    if (created && fchmod(fd, 0700) != 0) /* the umask must not change it */
        rc = pt_error_set(err, -errno, o->dir, "fchmod: %s", strerror(errno));
    if (rc == 0)
        rc = check_dir(fd, o->dir, err);
    close(fd);
    return rc;
}

/* LMDB creates its files with mode & ~umask: force 0600 whatever the umask. */
static int
chmod_files(journal_t *j, pt_error_t *err)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", j->dir, files[i]);
        if (chmod(path, 0600) != 0)
            return pt_error_set(err, -errno, path, "chmod: %s", strerror(errno));
    }
    return 0;
}

#define JOURNAL_LOCK_FILE "writer.lock"
#define JOURNAL_LOCK_TRIES 20 /* 50 ms apart: a holder that is dying has time to go */

/* The pid written in the lock file by its holder, or 0. */
static long
lock_holder(int fd)
{
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return strtol(buf, NULL, 10);
}

/* A standby waits for the holder to go (its process dies and the kernel drops the
 * flock): the holder's pid told once, then a blocking flock. */
static int
lock_wait(journal_t *j, const journal_options_t *o, pt_error_t *err)
{
    if (o->on_lock_wait != NULL)
        o->on_lock_wait(o->on_lock_wait_arg, lock_holder(j->lock_fd));
    if (flock(j->lock_fd, LOCK_EX) != 0)
        return pt_error_set(err, -errno, j->dir, "waiting for the journal's lock: %s",
                            strerror(errno));
    return 0;
}

/* One writer per journal: an exclusive flock on <dir>/writer.lock, held until close,
 * with the holder's pid written in it. A second ptibusd (or a ptibusctl that would write)
 * is refused at open, naming the pid, instead of failing every batch later; with
 * wait_for_lock it waits for the lock instead (a standby). */
static int
lock_writer(journal_t *j, const journal_options_t *o, pt_error_t *err)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", j->dir, JOURNAL_LOCK_FILE);
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (j->lock_fd < 0)
        return pt_error_set(err, -errno, path, "cannot open the journal's lock: %s",
                            strerror(errno));
    int rc = -1;
    for (int i = 0; i < JOURNAL_LOCK_TRIES && (rc = flock(j->lock_fd, LOCK_EX | LOCK_NB)) != 0; i++)
        usleep(50 * 1000);
    if (rc != 0 && o->wait_for_lock)
        rc = lock_wait(j, o, err);
    else if (rc != 0)
        return pt_error_set(err, -EBUSY, j->dir,
                            "the journal is in use by pid %ld (another ptibusd?): one writer "
                            "at a time",
                            lock_holder(j->lock_fd));
    if (rc != 0)
        return rc;
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(j->lock_fd, 0) != 0 || pwrite(j->lock_fd, pid, (size_t)n, 0) != n)
        pt_log_warn("journal.lock", "%s: cannot write the pid into the lock", path);
    return 0;
}

/* The folder a journal is (or will be created) in: a directory this process may write. */
static int
check_writable(const char *dir, const char *what, pt_error_t *err)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return pt_error_set(err, PT_ECONFIG, dir, "%s does not exist (%s)", what, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return pt_error_set(err, PT_ECONFIG, dir, "%s is not a directory", what);
    if (access(dir, W_OK | X_OK) != 0)
        return pt_error_set(err, PT_ECONFIG, dir, "%s is not writable by this user: %s", what,
                            strerror(errno));
    return 0;
}

int
journal_check_dir(const char *dir, bool allow_locked, long *holder, pt_error_t *err)
{
    *holder = 0;
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT) {
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent)
            slash[1] = '\0';
        else if (slash != NULL)
            *slash = '\0';
        else
            snprintf(parent, sizeof parent, ".");
        return check_writable(parent, "the journal folder's parent", err);
    }
    int rc = check_writable(dir, "the journal folder", err);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", dir, JOURNAL_LOCK_FILE);
    int fd = rc == 0 ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (fd < 0)
        return rc; /* no lock file: no broker ever opened it */
    if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        *holder = lock_holder(fd);
        if (!allow_locked)
            rc = pt_error_set(err, PT_ECONFIG, dir,
                              "the journal is in use by pid %ld (another ptibusd?): stop it, or "
                              "start this one as a standby (journal.wait_for_lock)",
                              *holder);
    }
    close(fd); /* releases the shared lock */
    return rc;
}

/* A journal reopened past its initial map size: the map starts where the used pages
 * leave room (used <= 3/4 of it), so the first batch after a restart does not grow it. */
static void
size_map(journal_t *j)
{
    MDB_envinfo info;
    if (mdb_env_info(j->env, &info) != 0)
        return;
    size_t used = (info.me_last_pgno + 1) * j->psize, want = used / 3 * 4 + j->psize;
    if (want > j->map_max)
        want = j->map_max;
    if (want > info.me_mapsize)
        mdb_env_set_mapsize(j->env, want);
}

static int
open_env(journal_t *j, const journal_options_t *o, pt_error_t *err)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t initial =
        round_pages(o->map_size_initial ? o->map_size_initial : JOURNAL_DEFAULT_INITIAL, page);
    j->map_max = round_pages(o->map_size_max ? o->map_size_max : JOURNAL_DEFAULT_MAX, page);
    if (initial > j->map_max)
        initial = j->map_max;
    int rc = mdb_env_create(&j->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(j->env, JDB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_mapsize(j->env, initial);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "creating the LMDB environment");
    unsigned flags = MDB_NOTLS | (o->unsafe_nosync ? MDB_NOSYNC : 0);
    if (o->read_only)
        flags |= MDB_RDONLY;
    rc = mdb_env_open(j->env, j->dir, flags, 0600);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening the LMDB environment");
    MDB_stat st;
    mdb_env_stat(j->env, &st);
    j->psize = st.ms_psize;
    if (!o->read_only)
        size_map(j);
    return o->read_only ? 0 : chmod_files(j, err);
}

static bool
db_is_empty(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 && st.ms_entries == 0;
}

/* A read-write open of a format-1 journal by a broker writing format 2 upgrades it:
 * the records so far stay format 1, the next ones are format 2 (docs/journal.md). */
static int
upgrade_format(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err)
{
    if (m->format == PT_JOURNAL_FORMAT && j->write_format == PT_JREC_FORMAT_V1)
        return pt_error_set(err, PT_EVERSION, j->dir, "journal in format 2: cannot write format 1");
    if (m->format != PT_JREC_FORMAT_V1 || j->write_format != PT_JOURNAL_FORMAT)
        return 0;
    int rc = jint_meta_upgrade(j, txn, m->last_seq);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "upgrading the meta");
    pt_log_notice("journal.upgraded",
                  "journal upgraded to record format %d: records up to %llu stay format 1",
                  PT_JOURNAL_FORMAT, (unsigned long long)m->last_seq);
    return 0;
}

/* Opens every named database and writes the meta of a new journal. */
static int
open_dbs(journal_t *j, pt_error_t *err)
{
    MDB_txn *txn;
    unsigned create = j->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin(j->env, NULL, j->read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "beginning the opening transaction");
    int i = 0;
    for (; i < JDB_COUNT && rc == 0; i++)
        rc = mdb_dbi_open(txn, jint_dbs[i].name, jint_dbs[i].flags | create, &j->dbi[i]);
    j->have_person_new = true;
    if (rc == MDB_NOTFOUND && j->read_only && i - 1 == JDB_PERSON_NEW) {
        rc = 0; /* a journal written before by_person_new (the last database) */
        j->have_person_new = false;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lmdbx_fail(err, rc, j->dir, "opening the databases (is this a ptibus journal?)");
    }
    if (j->read_only) {
        /* Named databases opened in a read-only transaction stay valid after commit. */
        rc = mdb_txn_commit(txn);
        return rc ? lmdbx_fail(err, rc, j->dir, "committing the opening transaction") : 0;
    }
    journal_meta_t m;
    rc = jint_meta_read(j, txn, &m, err);
    if (rc == 0 && !m.present && !db_is_empty(txn, j->dbi[JDB_RECORDS]))
        rc = pt_error_set(err, PT_ECORRUPT, j->dir, "records present but the meta is missing");
    if (rc == 0 && !m.present && (rc = jint_meta_init(j, txn)) != 0)
        rc = lmdbx_fail(err, rc, j->dir, "initialising the meta");
    if (rc == 0 && m.present)
        rc = upgrade_format(j, txn, &m, err);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdbx_fail(err, rc, j->dir, "committing the opening transaction") : 0;
}

/* Checks that meta and the records agree: the last record is meta's last seq and
 * carries meta's head hash, and the last JOURNAL_TAIL_CHECK records chain. */
static int
check_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "opening a cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    uint64_t last = rc == 0 && k.mv_size == SEQ_KEY_LEN ? bytes_be64_get(k.mv_data) : 0;
    const uint8_t *hash = rc == 0 ? journal_record_stored_hash(v.mv_data, v.mv_size) : NULL;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdbx_fail(err, rc, j->dir, "reading the last record");
    if (last != m->last_seq)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "meta says the last record is %llu but the records end at %llu",
                            (unsigned long long)m->last_seq, (unsigned long long)last);
    if (last == 0)
        return 0;
    if (hash == NULL || memcmp(hash, m->head, PT_JOURNAL_HASH_LEN) != 0)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "record %llu: hash differs from the head kept in meta",
                            (unsigned long long)last);
    uint64_t first = last > JOURNAL_TAIL_CHECK ? last - JOURNAL_TAIL_CHECK + 1 : 1, bad;
    rc = jint_verify_range(j, txn, first, last, &bad, err);
    return rc;
}

static int
resume(journal_t *j, pt_error_t *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "beginning a read transaction");
    journal_meta_t m;
    rc = jint_meta_read(j, txn, &m, err);
    if (rc == 0 && m.format != PT_JOURNAL_FORMAT && m.format != PT_JREC_FORMAT_V1)
        rc = pt_error_set(err, PT_EVERSION, j->dir, "journal format %u, this build reads 1 and %d",
                          (unsigned)m.format, PT_JOURNAL_FORMAT);
    j->rec_format = m.format;
    if (rc == 0)
        rc = check_tail(j, txn, &m, err);
    if (rc == 0)
        rc = jint_load_signed_head(j, txn, err);
    if (rc == 0 && j->have_sk && !j->read_only)
        rc = jint_check_signed_tail(j, txn, &m, err);
    uint64_t one;
    bool is_archive = jint_meta_get_u64(j, txn, "archive", &one, NULL) == 0;
    if (rc == 0 && is_archive && !j->read_only)
        rc = pt_error_set(err, PT_EDENIED, j->dir, "an archive: open it read-only");
    if (rc == PT_ECORRUPT && j->read_only) {
        /* The admin tools must be able to open a damaged journal to inspect it. */
        pt_log_warn("journal.tail", "%s (opened read-only for inspection)", err->msg);
        rc = 0;
    }
    if (rc == 0) {
        j->last_seq = m.last_seq;
        memcpy(j->head, m.head, PT_JOURNAL_HASH_LEN);
        j->have_anchor = m.has_anchor;
        j->anchor = m.anchor;
        j->is_archive = is_archive;
    }
    mdb_txn_abort(txn);
    return rc;
}

static int
copy_keys(journal_t *j, const journal_options_t *o, pt_error_t *err)
{
    if (o->dir == NULL || o->dir[0] == '\0')
        return pt_error_set(err, PT_ECONFIG, "journal.dir", "missing");
    if ((size_t)snprintf(j->dir, sizeof j->dir, "%s", o->dir) >= sizeof j->dir)
        return pt_error_set(err, PT_ECONFIG, "journal.dir", "path too long");
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, "journal", "libsodium failed to initialise");
    j->have_hmac = o->hmac_key != NULL;
    if (j->have_hmac)
        memcpy(j->hmac_key, o->hmac_key, sizeof j->hmac_key);
    j->have_sk = o->sign_sk != NULL;
    if (j->have_sk)
        memcpy(j->sign_sk, o->sign_sk, sizeof j->sign_sk);
    if (o->n_prev_sign_pks > PT_JOURNAL_PREV_KEYS)
        return pt_error_set(err, PT_EINVALID, "journal", "more than %d previous signing keys",
                            PT_JOURNAL_PREV_KEYS);
    j->n_prev_pks = o->n_prev_sign_pks;
    if (j->n_prev_pks)
        memcpy(j->prev_pks, o->prev_sign_pks, j->n_prev_pks * sizeof j->prev_pks[0]);
    j->max_unsigned = o->max_unsigned_tail ? o->max_unsigned_tail : PT_JOURNAL_UNSIGNED_MAX;
    j->write_format = o->write_format ? o->write_format : PT_JOURNAL_FORMAT;
    if (j->write_format != PT_JOURNAL_FORMAT && j->write_format != PT_JREC_FORMAT_V1)
        return pt_error_set(err, PT_EVERSION, "journal", "cannot write record format %u",
                            j->write_format);
    return 0;
}

int
journal_open(const journal_options_t *opts, journal_t **out, pt_error_t *err)
{
    *out = NULL;
    journal_t *j = calloc(1, sizeof *j);
    if (j == NULL)
        return pt_error_set(err, -ENOMEM, "journal", "out of memory");
    j->read_only = opts->read_only;
    j->lock_fd = -1;
    int rc = copy_keys(j, opts, err);
    if (rc == 0)
        rc = open_dir(opts, err);
    if (rc == 0 && !opts->read_only)
        rc = lock_writer(j, opts, err);
    if (rc == 0)
        rc = open_env(j, opts, err);
    if (rc == 0)
        rc = open_dbs(j, err);
    if (rc == 0)
        rc = resume(j, err);
    if (rc != 0) {
        journal_close(&j);
        return rc;
    }
    *out = j;
    return 0;
}

void
journal_close(journal_t **jp)
{
    if (jp == NULL || *jp == NULL)
        return;
    journal_t *j = *jp;
    if (j->in_txn)
        mdb_txn_abort(j->wtxn.txn);
    if (j->env != NULL)
        mdb_env_close(j->env);
    if (j->lock_fd >= 0)
        close(j->lock_fd); /* releases the writer's lock */
    sodium_memzero(j, sizeof *j);
    free(j);
    *jp = NULL;
}

uint64_t
journal_last_seq(const journal_t *j)
{
    return j->last_seq;
}

void
journal_head(const journal_t *j, uint64_t *seq, uint8_t hash[PT_JOURNAL_HASH_LEN])
{
    *seq = j->last_seq;
    memcpy(hash, j->head, PT_JOURNAL_HASH_LEN);
}
