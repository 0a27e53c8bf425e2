/* journal: LMDB environment, group-commit write path, indexes, queries, chain
 * verification and signed checkpoints. Record bytes are laid out by journal_record.c. */
#include "journal.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"
#include "journal_record.h"
#include "log.h"

static const struct {
    const char *name;
    unsigned flags;
} journal_dbs[JDB_COUNT] = {
    [JDB_RECORDS] = {"records", 0},    [JDB_META] = {"meta", 0},
    [JDB_DEDUP] = {"dedup", 0},        [JDB_MSGID] = {"by_msgid", MDB_DUPSORT | MDB_DUPFIXED},
    [JDB_PARTNER] = {"by_partner", 0}, [JDB_PERSON] = {"by_person", MDB_DUPSORT | MDB_DUPFIXED},
    [JDB_CKPT] = {"checkpoints", 0},   [JDB_QUEUE] = {"queue", 0},
    [JDB_DEAD] = {"dead", 0},          [JDB_PERSON_NEW] = {"by_person_new", 0},
};

#define JOURNAL_DEFAULT_INITIAL ((size_t)64 << 20)
#define JOURNAL_DEFAULT_MAX ((size_t)64 << 30)
#define JOURNAL_TAIL_CHECK 16
#define JOURNAL_KEY_MAX 511 /* LMDB's default maximum key size */
#define SEQ_KEY_LEN 8
#define DEDUP_VAL_LEN (SEQ_KEY_LEN + PT_JOURNAL_HASH_LEN)

typedef struct journal_meta {
    bool present;
    uint32_t format;
    uint64_t last_seq;
    uint8_t head[PT_JOURNAL_HASH_LEN];
} journal_meta_t;

/* ---- small helpers ---- */

static const struct {
    int mdb;
    int pt;
} mdb_error_map[] = {
    {MDB_NOTFOUND, PT_ENOTFOUND},    {MDB_MAP_FULL, PT_EJOURNALFULL},
    {ENOSPC, PT_EJOURNALFULL},       {EDQUOT, PT_EJOURNALFULL},
    {MDB_CORRUPTED, PT_ECORRUPT},    {MDB_PAGE_NOTFOUND, PT_ECORRUPT},
    {MDB_INVALID, PT_ECORRUPT},      {MDB_VERSION_MISMATCH, PT_EVERSION},
    {MDB_BAD_VALSIZE, PT_ETOOLARGE}, {MDB_INCOMPATIBLE, PT_ECORRUPT},
};

/* Maps an LMDB return code to 0, a PT_E* code or -errno. */
int
jint_lmdb_code(int rc)
{
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < sizeof mdb_error_map / sizeof *mdb_error_map; i++)
        if (mdb_error_map[i].mdb == rc)
            return mdb_error_map[i].pt;
    return rc > 0 ? -rc : PT_EINTERNAL;
}

int
jint_lmdb_fail(pt_error_t *err, int rc, const char *path, const char *what)
{
    return pt_error_set(err, jint_lmdb_code(rc), path, "%s: %s", what, mdb_strerror(rc));
}

void
jint_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t
jint_be64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Times sort as unsigned big-endian once the sign bit is flipped. */
static uint64_t
time_key(int64_t ms)
{
    return (uint64_t)ms ^ (UINT64_C(1) << 63);
}

int64_t
jint_now_ms(void)
{
    return pt_clock_wall_ms();
}

const char *
jint_db_name(int db)
{
    return db >= 0 && db < JDB_COUNT ? journal_dbs[db].name : "?";
}

const char *
jint_nz(const char *s)
{
    return s ? s : "";
}

typedef struct seqlist {
    uint64_t *v;
    size_t n, cap;
} seqlist_t;

static int
seqlist_push(seqlist_t *l, uint64_t seq)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        uint64_t *nv = realloc(l->v, cap * sizeof *nv);
        if (nv == NULL)
            return -ENOMEM;
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = seq;
    return 0;
}

static int
seqlist_finish(seqlist_t *l, int rc, uint64_t **seqs, size_t *n)
{
    if (rc != 0) {
        free(l->v);
        *seqs = NULL;
        *n = 0;
        return rc;
    }
    *seqs = l->v;
    *n = l->n;
    return 0;
}

/* ---- meta ---- */

static int
meta_get(journal_t *j, MDB_txn *txn, const char *name, void *out, size_t len, pt_error_t *err)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, j->dbi[JDB_META], &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? PT_ENOTFOUND : jint_lmdb_fail(err, rc, j->dir, "reading meta");
    if (v.mv_size != len)
        return pt_error_set(err, PT_ECORRUPT, j->dir, "meta %s: %zu bytes, expected %zu", name,
                            v.mv_size, len);
    memcpy(out, v.mv_data, len);
    return 0;
}

static int
meta_put(journal_t *j, MDB_txn *txn, const char *name, const void *data, size_t len)
{
    MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)data};
    return mdb_put(txn, j->dbi[JDB_META], &k, &v, 0);
}

/* Meta integers are little-endian like record fields. */
static uint64_t
le64_get(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void
le64_put(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static int
meta_read(journal_t *j, MDB_txn *txn, journal_meta_t *m, pt_error_t *err)
{
    uint8_t fmt[4], last[8];
    memset(m, 0, sizeof *m);
    int rc = meta_get(j, txn, "format", fmt, sizeof fmt, err);
    if (rc == PT_ENOTFOUND)
        return 0;
    if (rc == 0)
        rc = meta_get(j, txn, "last_seq", last, sizeof last, err);
    if (rc == 0)
        rc = meta_get(j, txn, "head", m->head, sizeof m->head, err);
    if (rc == PT_ENOTFOUND)
        return pt_error_set(err, PT_ECORRUPT, j->dir, "meta is incomplete");
    if (rc != 0)
        return rc;
    m->present = true;
    m->format = (uint32_t)(fmt[0] | fmt[1] << 8 | fmt[2] << 16 | (uint32_t)fmt[3] << 24);
    m->last_seq = le64_get(last);
    return 0;
}

static int
meta_write_head(journal_t *j, MDB_txn *txn, uint64_t last_seq, const uint8_t *head)
{
    uint8_t last[8];
    le64_put(last, last_seq);
    int rc = meta_put(j, txn, "last_seq", last, sizeof last);
    if (rc == 0)
        rc = meta_put(j, txn, "head", head, PT_JOURNAL_HASH_LEN);
    return rc;
}

/* A new journal: format, creation time and the genesis head (32 zero bytes). */
static int
meta_init(journal_t *j, MDB_txn *txn)
{
    uint8_t fmt[4] = {PT_JOURNAL_FORMAT & 0xff, 0, 0, 0}, created[8];
    uint8_t zero[PT_JOURNAL_HASH_LEN] = {0};
    le64_put(created, (uint64_t)jint_now_ms());
    int rc = meta_put(j, txn, "format", fmt, sizeof fmt);
    if (rc == 0)
        rc = meta_put(j, txn, "created_ms", created, sizeof created);
    if (rc == 0)
        rc = meta_write_head(j, txn, 0, zero);
    return rc;
}

/* ---- map growth ---- */

/* Grows the map (doubling, capped at the maximum) when forced or when more than 3/4
 * of it is used. Only with no transaction active in this process. */
static int
journal_grow(journal_t *j, bool force, pt_error_t *err)
{
    MDB_envinfo info;
    mdb_env_info(j->env, &info);
    size_t used = (info.me_last_pgno + 1) * j->psize;
    if (!force && used <= info.me_mapsize / 4 * 3)
        return 0;
    if (info.me_mapsize >= j->map_max)
        return 0;
    size_t next = info.me_mapsize > j->map_max / 2 ? j->map_max : info.me_mapsize * 2;
    int rc = mdb_env_set_mapsize(j->env, next);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "growing the map");
    j->grow_pending = false;
    pt_log_info("journal.grow", "journal map grown from %zu to %zu bytes (max %zu)",
                info.me_mapsize, next, j->map_max);
    return 0;
}

void
journal_usage(const journal_t *j, size_t *used, size_t *map_size, size_t *map_max)
{
    MDB_envinfo info;
    mdb_env_info(j->env, &info);
    *used = (info.me_last_pgno + 1) * j->psize;
    *map_size = info.me_mapsize;
    *map_max = j->map_max;
}

/* ---- opening ---- */

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
        return jint_lmdb_fail(err, rc, j->dir, "creating the LMDB environment");
    unsigned flags = MDB_NOTLS | (o->unsafe_nosync ? MDB_NOSYNC : 0);
    if (o->read_only)
        flags |= MDB_RDONLY;
    rc = mdb_env_open(j->env, j->dir, flags, 0600);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "opening the LMDB environment");
    MDB_stat st;
    mdb_env_stat(j->env, &st);
    j->psize = st.ms_psize;
    return o->read_only ? 0 : chmod_files(j, err);
}

static bool
db_is_empty(MDB_txn *txn, MDB_dbi dbi)
{
    MDB_stat st;
    return mdb_stat(txn, dbi, &st) == 0 && st.ms_entries == 0;
}

/* Opens every named database and writes the meta of a new journal. */
static int
open_dbs(journal_t *j, pt_error_t *err)
{
    MDB_txn *txn;
    unsigned create = j->read_only ? 0 : MDB_CREATE;
    int rc = mdb_txn_begin(j->env, NULL, j->read_only ? MDB_RDONLY : 0, &txn);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "beginning the opening transaction");
    int i = 0;
    for (; i < JDB_COUNT && rc == 0; i++)
        rc = mdb_dbi_open(txn, journal_dbs[i].name, journal_dbs[i].flags | create, &j->dbi[i]);
    j->have_person_new = true;
    if (rc == MDB_NOTFOUND && j->read_only && i - 1 == JDB_PERSON_NEW) {
        rc = 0; /* a journal written before by_person_new (the last database) */
        j->have_person_new = false;
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return jint_lmdb_fail(err, rc, j->dir, "opening the databases (is this a ptibus journal?)");
    }
    if (j->read_only) {
        /* Named databases opened in a read-only transaction stay valid after commit. */
        rc = mdb_txn_commit(txn);
        return rc ? jint_lmdb_fail(err, rc, j->dir, "committing the opening transaction") : 0;
    }
    journal_meta_t m;
    rc = meta_read(j, txn, &m, err);
    if (rc == 0 && !m.present && !db_is_empty(txn, j->dbi[JDB_RECORDS]))
        rc = pt_error_set(err, PT_ECORRUPT, j->dir, "records present but the meta is missing");
    if (rc == 0 && !m.present && (rc = meta_init(j, txn)) != 0)
        rc = jint_lmdb_fail(err, rc, j->dir, "initialising the meta");
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? jint_lmdb_fail(err, rc, j->dir, "committing the opening transaction") : 0;
}

static int verify_range(journal_t *j, MDB_txn *txn, uint64_t first, uint64_t end, uint64_t *bad_seq,
                        pt_error_t *err);
static int load_signed_head(journal_t *j, MDB_txn *txn, pt_error_t *err);
static int check_signed_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err);

/* Checks that meta and the records agree: the last record is meta's last seq and
 * carries meta's head hash, and the last JOURNAL_TAIL_CHECK records chain. */
static int
check_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "opening a cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    uint64_t last = rc == 0 && k.mv_size == SEQ_KEY_LEN ? jint_be64_get(k.mv_data) : 0;
    const uint8_t *hash = rc == 0 ? journal_record_stored_hash(v.mv_data, v.mv_size) : NULL;
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return jint_lmdb_fail(err, rc, j->dir, "reading the last record");
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
    rc = verify_range(j, txn, first, last, &bad, err);
    return rc;
}

static int
resume(journal_t *j, pt_error_t *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "beginning a read transaction");
    journal_meta_t m;
    rc = meta_read(j, txn, &m, err);
    if (rc == 0 && m.format != PT_JOURNAL_FORMAT)
        rc = pt_error_set(err, PT_EVERSION, j->dir, "journal format %u, this build reads %d",
                          (unsigned)m.format, PT_JOURNAL_FORMAT);
    if (rc == 0)
        rc = check_tail(j, txn, &m, err);
    if (rc == 0)
        rc = load_signed_head(j, txn, err);
    if (rc == 0 && j->have_sk && !j->read_only)
        rc = check_signed_tail(j, txn, &m, err);
    if (rc == PT_ECORRUPT && j->read_only) {
        /* The admin tools must be able to open a damaged journal to inspect it. */
        pt_log_warn("journal.tail", "%s (opened read-only for inspection)", err->msg);
        rc = 0;
    }
    if (rc == 0) {
        j->last_seq = m.last_seq;
        memcpy(j->head, m.head, PT_JOURNAL_HASH_LEN);
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
    j->max_unsigned = o->max_unsigned_tail ? o->max_unsigned_tail : PT_JOURNAL_UNSIGNED_MAX;
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
    int rc = copy_keys(j, opts, err);
    if (rc == 0)
        rc = open_dir(opts, err);
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

/* ---- write path ---- */

int
journal_begin(journal_t *j, journal_txn_t **txn, pt_error_t *err)
{
    *txn = NULL;
    if (j->read_only)
        return pt_error_set(err, PT_EDENIED, j->dir, "the journal is open read-only");
    if (j->in_txn)
        return pt_error_set(err, -EBUSY, j->dir, "a write transaction is already open");
    int rc = journal_grow(j, j->grow_pending, err);
    if (rc != 0)
        return rc;
    journal_txn_t *t = &j->wtxn;
    rc = mdb_txn_begin(j->env, NULL, 0, &t->txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(j->env, 0) == 0)
        rc = mdb_txn_begin(j->env, NULL, 0, &t->txn);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "beginning a write transaction");
    t->j = j;
    t->last_seq = j->last_seq;
    memcpy(t->head, j->head, PT_JOURNAL_HASH_LEN);
    t->poisoned = 0;
    t->signed_pending = false;
    j->in_txn = true;
    *txn = t;
    return 0;
}

/* Index keys must fit LMDB's key size: checked before anything is written, so a
 * refused record leaves the batch usable. */
static int
check_keys(const journal_t *j, const journal_record_t *rec, pt_error_t *err)
{
    size_t partner = strlen(jint_nz(rec->partner)), type = strlen(jint_nz(rec->msg_type));
    size_t msgid = strlen(jint_nz(rec->message_id));
    if (msgid > JOURNAL_KEY_MAX || partner + 1 + msgid > JOURNAL_KEY_MAX)
        return pt_error_set(err, PT_ETOOLARGE, "message_id", "too long for the index");
    if (partner + type + 2 + 2 * SEQ_KEY_LEN > JOURNAL_KEY_MAX)
        return pt_error_set(err, PT_ETOOLARGE, "partner", "partner and type too long");
    if (rec->person_nir != NULL && !j->have_hmac)
        return pt_error_set(err, PT_ECONFIG, "journal.hmac_key", "missing: cannot index people");
    return 0;
}

static int
put_seq_dup(journal_txn_t *t, int db, const void *key, size_t klen, const uint8_t *seqkey)
{
    MDB_val k = {klen, (void *)key}, v = {SEQ_KEY_LEN, (void *)seqkey};
    return mdb_put(t->txn, t->j->dbi[db], &k, &v, 0);
}

/* The first RECEIVED of (sender, message_id) owns the dedup entry. */
static int
put_dedup(journal_txn_t *t, const journal_record_t *rec, const uint8_t *seqkey,
          const uint8_t *phash)
{
    uint8_t key[JOURNAL_KEY_MAX + 1], val[DEDUP_VAL_LEN];
    size_t p = strlen(jint_nz(rec->partner)), m = strlen(rec->message_id);
    memcpy(key, jint_nz(rec->partner), p);
    key[p] = '\0';
    memcpy(key + p + 1, rec->message_id, m);
    memcpy(val, seqkey, SEQ_KEY_LEN);
    memcpy(val + SEQ_KEY_LEN, phash, PT_JOURNAL_HASH_LEN);
    MDB_val k = {p + 1 + m, key}, v = {sizeof val, val};
    int rc = mdb_put(t->txn, t->j->dbi[JDB_DEDUP], &k, &v, MDB_NOOVERWRITE);
    return rc == MDB_KEYEXIST ? 0 : rc;
}

static int
put_partner(journal_txn_t *t, const journal_record_t *rec, int64_t time_ms, const uint8_t *seqkey)
{
    uint8_t key[JOURNAL_KEY_MAX + 1];
    size_t p = strlen(rec->partner), ty = strlen(jint_nz(rec->msg_type));
    memcpy(key, rec->partner, p + 1);
    memcpy(key + p + 1, jint_nz(rec->msg_type), ty + 1);
    jint_be64_put(key + p + ty + 2, time_key(time_ms));
    memcpy(key + p + ty + 2 + SEQ_KEY_LEN, seqkey, SEQ_KEY_LEN);
    MDB_val k = {p + ty + 2 + 2 * SEQ_KEY_LEN, key}, v = {0, NULL};
    return mdb_put(t->txn, t->j->dbi[JDB_PARTNER], &k, &v, 0);
}

static void
person_key(const journal_t *j, const char *nir, uint8_t out[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256(out, (const uint8_t *)nir, strlen(nir), j->hmac_key);
}

static int
put_indexes(journal_txn_t *t, const journal_record_t *rec, uint64_t seq, int64_t time_ms,
            const uint8_t *phash)
{
    uint8_t seqkey[SEQ_KEY_LEN];
    jint_be64_put(seqkey, seq);
    const char *msgid = jint_nz(rec->message_id);
    int rc = 0;
    if (rec->kind == PT_REC_RECEIVED && msgid[0] != '\0')
        rc = put_dedup(t, rec, seqkey, phash);
    if (rc == 0 && msgid[0] != '\0')
        rc = put_seq_dup(t, JDB_MSGID, msgid, strlen(msgid), seqkey);
    if (rc == 0 && jint_nz(rec->partner)[0] != '\0')
        rc = put_partner(t, rec, time_ms, seqkey);
    if (rc == 0 && rec->person_nir != NULL) {
        /* Appended to by_person_new (one page for a whole batch): inserting each random
         * HMAC into by_person would dirty a page of it per record. */
        uint8_t pk[crypto_auth_hmacsha256_BYTES];
        person_key(t->j, rec->person_nir, pk);
        MDB_val k = {SEQ_KEY_LEN, seqkey}, v = {sizeof pk, pk};
        rc = mdb_put(t->txn, t->j->dbi[JDB_PERSON_NEW], &k, &v, MDB_APPEND);
    }
    return rc;
}

int
jint_poison(journal_txn_t *t, int rc, pt_error_t *err)
{
    t->poisoned = jint_lmdb_code(rc);
    if (t->poisoned == PT_EJOURNALFULL)
        t->j->grow_pending = true;
    return pt_error_set(err, t->poisoned, t->j->dir, "append: %s%s", mdb_strerror(rc),
                        t->poisoned == PT_EJOURNALFULL ? " (abort the batch)" : "");
}

int
journal_append(journal_txn_t *t, const journal_record_t *rec, uint64_t *seq, pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier: abort it");
    size_t len;
    int rc = journal_record_size(rec, &len, err);
    if (rc == 0)
        rc = check_keys(t->j, rec, err);
    if (rc != 0)
        return rc;
    int64_t time_ms = rec->time_ms ? rec->time_ms : jint_now_ms();
    uint64_t s = t->last_seq + 1;
    uint8_t key[SEQ_KEY_LEN], phash[PT_JOURNAL_HASH_LEN];
    jint_be64_put(key, s);
    MDB_val k = {SEQ_KEY_LEN, key}, v = {len, NULL};
    rc = mdb_put(t->txn, t->j->dbi[JDB_RECORDS], &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0)
        return jint_poison(t, rc, err);
    /* v points into the dirty page until the next put: encode and copy out now. */
    journal_record_encode(rec, s, time_ms, t->head, v.mv_data, len);
    memcpy(t->head, journal_record_stored_hash(v.mv_data, len), PT_JOURNAL_HASH_LEN);
    memcpy(phash, (uint8_t *)v.mv_data + len - 2 * PT_JOURNAL_HASH_LEN, PT_JOURNAL_HASH_LEN);
    rc = put_indexes(t, rec, s, time_ms, phash);
    if (rc == 0 && rec->kind == PT_REC_RECEIVED)
        rc = jint_queue_enqueue(t, rec->recipients, s, time_ms);
    if (rc != 0)
        return jint_poison(t, rc, err);
    t->last_seq = s;
    *seq = s;
    return 0;
}

int
journal_dedup_find(journal_txn_t *t, const char *sender, const char *message_id, uint64_t *seq,
                   uint8_t hash[PT_JOURNAL_HASH_LEN])
{
    uint8_t key[JOURNAL_KEY_MAX + 1];
    size_t p = strlen(jint_nz(sender)), m = strlen(jint_nz(message_id));
    if (p + 1 + m > JOURNAL_KEY_MAX || t->poisoned)
        return PT_ENOTFOUND;
    memcpy(key, jint_nz(sender), p + 1);
    memcpy(key + p + 1, jint_nz(message_id), m);
    MDB_val k = {p + 1 + m, key}, v;
    int rc = mdb_get(t->txn, t->j->dbi[JDB_DEDUP], &k, &v);
    if (rc != 0)
        return jint_lmdb_code(rc);
    if (v.mv_size != DEDUP_VAL_LEN)
        return PT_ECORRUPT;
    *seq = jint_be64_get(v.mv_data);
    memcpy(hash, (uint8_t *)v.mv_data + SEQ_KEY_LEN, PT_JOURNAL_HASH_LEN);
    return 0;
}

static bool must_sign(const journal_txn_t *t);
static int put_checkpoint(journal_txn_t *t);
static void signed_head_commit(journal_txn_t *t);

static void
txn_end(journal_txn_t *t)
{
    t->j->in_txn = false;
    t->txn = NULL;
}

int
journal_commit(journal_txn_t **tp, pt_error_t *err)
{
    journal_txn_t *t = *tp;
    journal_t *j = t->j;
    *tp = NULL;
    if (t->poisoned) {
        int code = t->poisoned;
        journal_abort(&t);
        return pt_error_set(err, code, j->dir, "commit of a failed batch: nothing kept");
    }
    int rc = 0;
    if (must_sign(t))
        rc = put_checkpoint(t);
    if (rc == 0 && t->last_seq != j->last_seq)
        rc = meta_write_head(j, t->txn, t->last_seq, t->head);
    if (rc != 0) {
        mdb_txn_abort(t->txn);
    } else {
        rc = mdb_txn_commit(t->txn);
    }
    txn_end(t);
    if (rc != 0) {
        int code = jint_lmdb_code(rc);
        if (code == PT_EJOURNALFULL)
            j->grow_pending = true;
        journal_grow(j, j->grow_pending, NULL);
        return pt_error_set(err, code, j->dir, "commit: %s: nothing of the batch kept",
                            mdb_strerror(rc));
    }
    j->last_seq = t->last_seq;
    memcpy(j->head, t->head, PT_JOURNAL_HASH_LEN);
    signed_head_commit(t);
    return 0;
}

void
journal_abort(journal_txn_t **tp)
{
    if (tp == NULL || *tp == NULL)
        return;
    journal_txn_t *t = *tp;
    *tp = NULL;
    mdb_txn_abort(t->txn);
    txn_end(t);
    if (t->j->grow_pending)
        journal_grow(t->j, true, NULL);
}

/* ---- reads ---- */

int
jint_read_begin(journal_t *j, MDB_txn **txn, pt_error_t *err)
{
    int rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && !j->in_txn && mdb_env_set_mapsize(j->env, 0) == 0)
        rc = mdb_txn_begin(j->env, NULL, MDB_RDONLY, txn);
    return rc ? jint_lmdb_fail(err, rc, j->dir, "beginning a read transaction") : 0;
}

static int
get_record(journal_t *j, MDB_txn *txn, uint64_t seq, MDB_val *v, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    jint_be64_put(key, seq);
    MDB_val k = {SEQ_KEY_LEN, key};
    int rc = mdb_get(txn, j->dbi[JDB_RECORDS], &k, v);
    if (rc == MDB_NOTFOUND)
        return pt_error_set(err, PT_ENOTFOUND, NULL, "record %llu: not found",
                            (unsigned long long)seq);
    return rc ? jint_lmdb_fail(err, rc, j->dir, "reading a record") : 0;
}

/* Decodes a record read under key seq and checks it carries that seq. */
static int
decode_at(const MDB_val *v, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    int rc = journal_record_decode(v->mv_data, v->mv_size, seq, view, err);
    if (rc == 0 && view->seq != seq)
        rc = pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: holds seq %llu (reordered?)",
                          (unsigned long long)seq, (unsigned long long)view->seq);
    return rc;
}

/* Copies the record at seq out of txn into *buf and decodes it there. */
static int
get_copy(journal_t *j, MDB_txn *txn, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
         pt_error_t *err)
{
    MDB_val v;
    int rc = get_record(j, txn, seq, &v, err);
    if (rc == 0 && (*buf == NULL || *cap < v.mv_size)) {
        uint8_t *nb = realloc(*buf, v.mv_size);
        if (nb == NULL)
            return pt_error_set(err, -ENOMEM, NULL, "record %llu: out of memory",
                                (unsigned long long)seq);
        *buf = nb;
        *cap = v.mv_size;
    }
    if (rc != 0)
        return rc;
    memcpy(*buf, v.mv_data, v.mv_size);
    v.mv_data = *buf;
    return decode_at(&v, seq, view, err);
}

int
journal_get(journal_t *j, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
            pt_error_t *err)
{
    MDB_txn *txn;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = get_copy(j, txn, seq, view, buf, cap, err);
    mdb_txn_abort(txn);
    return rc;
}

int
journal_txn_get(journal_txn_t *t, uint64_t seq, journal_view_t *view, uint8_t **buf, size_t *cap,
                pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    return get_copy(t->j, t->txn, seq, view, buf, cap, err);
}

static int
scan_cursor(journal_t *j, MDB_cursor *cur, uint64_t first, uint64_t last, journal_visit_fn fn,
            void *arg, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    jint_be64_put(key, first);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    journal_view_t view;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SEQ_KEY_LEN)
            return pt_error_set(err, PT_ECORRUPT, j->dir, "records: key of %zu bytes", k.mv_size);
        uint64_t seq = jint_be64_get(k.mv_data);
        if (last != 0 && seq > last)
            return 0;
        int r = decode_at(&v, seq, &view, err);
        if (r == 0)
            r = fn(&view, arg);
        if (r != 0)
            return r;
    }
    return rc == MDB_NOTFOUND ? 0 : jint_lmdb_fail(err, rc, j->dir, "scanning");
}

int
journal_scan(journal_t *j, uint64_t first, uint64_t last, journal_visit_fn fn, void *arg,
             pt_error_t *err)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return jint_lmdb_fail(err, rc, j->dir, "opening a cursor");
    }
    rc = scan_cursor(j, cur, first, last, fn, arg, err);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return rc;
}

/* Collects into l the be64 seq values stored under key in a DUPSORT index, in txn. */
static int
collect_dups(journal_t *j, MDB_txn *txn, int db, const void *key, size_t klen, seqlist_t *l,
             pt_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {klen, (void *)key}, v;
    int rc = 0, m = mdb_cursor_open(txn, j->dbi[db], &cur);
    if (m == 0)
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP))
        rc = v.mv_size == SEQ_KEY_LEN ? seqlist_push(l, jint_be64_get(v.mv_data)) : PT_ECORRUPT;
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = jint_lmdb_fail(err, m, j->dir, journal_dbs[db].name);
    else if (rc != 0)
        pt_error_set(err, rc, j->dir, "%s: bad entry", journal_dbs[db].name);
    mdb_cursor_close(cur);
    return rc;
}

/* The seq values stored under key in a DUPSORT index, ascending. */
static int
find_dups(journal_t *j, int db, const void *key, size_t klen, uint64_t **seqs, size_t *n,
          pt_error_t *err)
{
    MDB_txn *txn;
    seqlist_t l = {0};
    int rc = jint_read_begin(j, &txn, err);
    if (rc == 0) {
        rc = collect_dups(j, txn, db, key, klen, &l, err);
        mdb_txn_abort(txn);
    }
    return seqlist_finish(&l, rc, seqs, n);
}

int
journal_find_message(journal_t *j, const char *message_id, uint64_t **seqs, size_t *n,
                     pt_error_t *err)
{
    size_t len = strlen(jint_nz(message_id));
    if (len == 0 || len > JOURNAL_KEY_MAX)
        return seqlist_finish(&(seqlist_t){0}, 0, seqs, n);
    return find_dups(j, JDB_MSGID, message_id, len, seqs, n, err);
}

int
journal_txn_find_message(journal_txn_t *t, const char *message_id, uint64_t **seqs, size_t *n,
                         pt_error_t *err)
{
    seqlist_t l = {0};
    size_t len = strlen(jint_nz(message_id));
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    int rc = len == 0 || len > JOURNAL_KEY_MAX
                 ? 0
                 : collect_dups(t->j, t->txn, JDB_MSGID, message_id, len, &l, err);
    return seqlist_finish(&l, rc, seqs, n);
}

/* Decodes the record under seq in place, in txn: the view borrows from the map. */
static int
view_in_place(journal_t *j, MDB_txn *txn, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    MDB_val v;
    int rc = get_record(j, txn, seq, &v, err);
    return rc != 0 ? rc : decode_at(&v, seq, view, err);
}

int
journal_txn_view(journal_txn_t *t, uint64_t seq, journal_view_t *view, pt_error_t *err)
{
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    return view_in_place(t->j, t->txn, seq, view, err);
}

int
journal_txn_visit_message(journal_txn_t *t, const char *message_id, journal_visit_fn fn, void *arg,
                          pt_error_t *err)
{
    size_t len = strlen(jint_nz(message_id));
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier");
    if (len == 0 || len > JOURNAL_KEY_MAX)
        return 0;
    MDB_cursor *cur = NULL;
    MDB_val k = {len, (void *)message_id}, v;
    int rc = 0, m = mdb_cursor_open(t->txn, t->j->dbi[JDB_MSGID], &cur);
    if (m == 0)
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP)) {
        journal_view_t view;
        if (v.mv_size != SEQ_KEY_LEN)
            rc = pt_error_set(err, PT_ECORRUPT, t->j->dir, "by_msgid: bad entry");
        else if ((rc = view_in_place(t->j, t->txn, jint_be64_get(v.mv_data), &view, err)) == 0)
            rc = fn(&view, arg);
    }
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = jint_lmdb_fail(err, m, t->j->dir, "by_msgid");
    mdb_cursor_close(cur);
    return rc;
}

/* Adds to l the seqs of by_person_new entries whose HMAC is pk, ascending (a scan: the
 * part not yet merged is kept small by the broker, see journal_person_merge). */
static int
collect_person_new(journal_t *j, MDB_txn *txn, const uint8_t *pk, seqlist_t *l, pt_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, m = mdb_cursor_open(txn, j->dbi[JDB_PERSON_NEW], &cur);
    for (m = m ? m : mdb_cursor_get(cur, &k, &v, MDB_FIRST); m == 0 && rc == 0;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != SEQ_KEY_LEN || v.mv_size != crypto_auth_hmacsha256_BYTES)
            rc = pt_error_set(err, PT_ECORRUPT, j->dir, "by_person_new: bad entry");
        else if (memcmp(v.mv_data, pk, v.mv_size) == 0)
            rc = seqlist_push(l, jint_be64_get(k.mv_data));
    }
    if (rc == 0 && m != MDB_NOTFOUND)
        rc = jint_lmdb_fail(err, m, j->dir, "by_person_new");
    mdb_cursor_close(cur);
    return rc;
}

int
journal_find_person(journal_t *j, const char *nir, uint64_t **seqs, size_t *n, pt_error_t *err)
{
    if (!j->have_hmac) {
        *seqs = NULL;
        *n = 0;
        return pt_error_set(err, PT_ECONFIG, "journal.hmac_key", "missing: no person index");
    }
    uint8_t pk[crypto_auth_hmacsha256_BYTES];
    person_key(j, jint_nz(nir), pk);
    /* One snapshot of both parts. A seq is in one part only (a merge moves entries in
     * one transaction) and merges take the oldest entries first, so every seq of
     * by_person is below every seq of by_person_new: the two lists concatenate sorted. */
    MDB_txn *txn;
    seqlist_t l = {0};
    int rc = jint_read_begin(j, &txn, err);
    if (rc == 0) {
        rc = collect_dups(j, txn, JDB_PERSON, pk, sizeof pk, &l, err);
        if (rc == 0 && j->have_person_new)
            rc = collect_person_new(j, txn, pk, &l, err);
        mdb_txn_abort(txn);
    }
    return seqlist_finish(&l, rc, seqs, n);
}

size_t
journal_person_unmerged(journal_t *j)
{
    MDB_txn *txn;
    MDB_stat st;
    pt_error_t err;
    if (!j->have_person_new || jint_read_begin(j, &txn, &err) != 0)
        return 0;
    int rc = mdb_stat(txn, j->dbi[JDB_PERSON_NEW], &st);
    mdb_txn_abort(txn);
    return rc == 0 ? st.ms_entries : 0;
}

typedef struct person_entry {
    uint8_t pk[crypto_auth_hmacsha256_BYTES];
    uint8_t seqkey[SEQ_KEY_LEN];
} person_entry_t;

static int
cmp_person_entry(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(person_entry_t)); /* HMAC, then big-endian seq */
}

int
journal_person_merge(journal_txn_t *t, size_t max, size_t *moved, pt_error_t *err)
{
    *moved = 0;
    if (t->poisoned)
        return pt_error_set(err, t->poisoned, t->j->dir, "transaction failed earlier: abort it");
    person_entry_t *e = max ? calloc(max, sizeof *e) : NULL;
    if (max && e == NULL)
        return pt_error_set(err, -ENOMEM, t->j->dir, "person index merge: no memory");
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t n = 0;
    int rc = mdb_cursor_open(t->txn, t->j->dbi[JDB_PERSON_NEW], &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < max;
         rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
        if (k.mv_size != SEQ_KEY_LEN || v.mv_size != crypto_auth_hmacsha256_BYTES) {
            mdb_cursor_close(cur);
            free(e);
            return pt_error_set(err, PT_ECORRUPT, t->j->dir, "by_person_new: bad entry");
        }
        memcpy(e[n].pk, v.mv_data, sizeof e[n].pk);
        memcpy(e[n].seqkey, k.mv_data, SEQ_KEY_LEN);
        n++;
        rc = mdb_cursor_del(cur, 0);
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || (rc == 0 && n == max))
        rc = 0;
    /* Sorted, the chunk's inserts walk by_person once from left to right. */
    if (n > 1)
        qsort(e, n, sizeof *e, cmp_person_entry);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = put_seq_dup(t, JDB_PERSON, e[i].pk, sizeof e[i].pk, e[i].seqkey);
    free(e);
    if (rc != 0)
        return jint_poison(t, rc, err);
    *moved = n;
    return 0;
}

/* by_partner is walked as a skip scan: within partner "\0", each msg_type is a run
 * sorted by time; jump to from_ms in each run and to the next run past to_ms. */
typedef struct partner_scan {
    const char *partner;
    size_t plen;
    const char *type; /* NULL = every type */
    int64_t from_ms, to_ms;
    uint8_t key[JOURNAL_KEY_MAX + 1];
} partner_scan_t;

/* Seek key: partner "\0" type "\0" be64(time) — or, with next_type, the first key
 * after every key of that type (partner "\0" type "\1"). */
static size_t
partner_seek(partner_scan_t *s, const char *type, size_t tlen, int64_t time_ms, bool next_type)
{
    memcpy(s->key, s->partner, s->plen + 1);
    memcpy(s->key + s->plen + 1, type, tlen);
    s->key[s->plen + 1 + tlen] = next_type ? '\1' : '\0';
    if (next_type)
        return s->plen + tlen + 2;
    jint_be64_put(s->key + s->plen + tlen + 2, time_key(time_ms));
    return s->plen + tlen + 2 + SEQ_KEY_LEN;
}

/* One step of the walk on entry k: 1 = stop, 0 = collected or skipped, <0 error.
 * *seek_len > 0 asks the caller to reposition on s->key. */
static int
partner_step(partner_scan_t *s, const MDB_val *k, seqlist_t *l, size_t *seek_len)
{
    const uint8_t *kp = k->mv_data;
    *seek_len = 0;
    if (k->mv_size < s->plen + 1 || memcmp(kp, s->partner, s->plen + 1) != 0)
        return 1;
    const uint8_t *type = kp + s->plen + 1;
    size_t rest = k->mv_size - s->plen - 1;
    const uint8_t *nul = memchr(type, '\0', rest);
    if (nul == NULL || rest - (size_t)(nul - type) != 1 + 2 * SEQ_KEY_LEN)
        return PT_ECORRUPT;
    size_t tlen = (size_t)(nul - type);
    if (s->type != NULL && (tlen != strlen(s->type) || memcmp(type, s->type, tlen) != 0))
        return 1;
    int64_t t = (int64_t)(jint_be64_get(nul + 1) ^ (UINT64_C(1) << 63));
    if (t < s->from_ms)
        *seek_len = partner_seek(s, (const char *)type, tlen, s->from_ms, false);
    else if (t >= s->to_ms)
        *seek_len = s->type ? 0 : partner_seek(s, (const char *)type, tlen, 0, true);
    else
        return seqlist_push(l, jint_be64_get(nul + 1 + SEQ_KEY_LEN));
    return s->type != NULL && *seek_len == 0 ? 1 : 0;
}

static int
partner_walk(MDB_cursor *cur, partner_scan_t *s, seqlist_t *l)
{
    const char *type = s->type ? s->type : "";
    size_t seek = partner_seek(s, type, strlen(type), s->from_ms, false);
    if (s->type == NULL)
        seek = s->plen + 1; /* just partner "\0": the start of its first type */
    MDB_val k = {seek, s->key}, v;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (m == 0) {
        int rc = partner_step(s, &k, l, &seek);
        if (rc != 0)
            return rc > 0 ? 0 : rc;
        k = (MDB_val){seek, s->key};
        m = mdb_cursor_get(cur, &k, &v, seek ? MDB_SET_RANGE : MDB_NEXT);
    }
    return m == MDB_NOTFOUND ? 0 : jint_lmdb_code(m);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

int
journal_find_partner(journal_t *j, const char *partner, const char *msg_type, int64_t from_ms,
                     int64_t to_ms, uint64_t **seqs, size_t *n, pt_error_t *err)
{
    seqlist_t l = {0};
    partner_scan_t s = {
        .partner = jint_nz(partner), .type = msg_type, .from_ms = from_ms, .to_ms = to_ms};
    s.plen = strlen(s.partner);
    if (s.plen + strlen(jint_nz(msg_type)) + 2 + 2 * SEQ_KEY_LEN > JOURNAL_KEY_MAX ||
        from_ms >= to_ms)
        return seqlist_finish(&l, 0, seqs, n);
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return seqlist_finish(&l, rc, seqs, n);
    rc = jint_lmdb_code(mdb_cursor_open(txn, j->dbi[JDB_PARTNER], &cur));
    if (rc == 0) {
        rc = partner_walk(cur, &s, &l);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    if (rc != 0)
        pt_error_set(err, rc, j->dir, "by_partner: %s", pt_strerror(rc));
    else if (l.n > 1)
        qsort(l.v, l.n, sizeof *l.v, cmp_u64);
    return seqlist_finish(&l, rc, seqs, n);
}

/* ---- verification ---- */

static int
bad_record(uint64_t *bad_seq, uint64_t seq, pt_error_t *err, const char *what)
{
    *bad_seq = seq;
    return pt_error_set(err, PT_ECORRUPT, NULL, "record %llu: %s", (unsigned long long)seq, what);
}

/* Decodes record seq and checks its chain hash against prev; then prev = its hash. */
static int
verify_one(const MDB_val *v, uint64_t seq, uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq,
           pt_error_t *err)
{
    journal_view_t view;
    uint8_t h[PT_JOURNAL_HASH_LEN];
    if (decode_at(v, seq, &view, err) != 0) {
        *bad_seq = seq;
        return PT_ECORRUPT;
    }
    journal_record_chain(prev, v->mv_data, v->mv_size, h);
    if (memcmp(h, view.hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_record(bad_seq, seq, err, "chain hash mismatch (edited or reordered)");
    memcpy(prev, view.hash, PT_JOURNAL_HASH_LEN);
    return 0;
}

/* The hash the walk from `first` starts from: genesis (zeros) for record 1, else the
 * stored hash of record first-1, itself checked against first-2 when that exists. */
static int
chain_start(journal_t *j, MDB_txn *txn, uint64_t first, uint8_t prev[PT_JOURNAL_HASH_LEN],
            uint64_t *bad_seq, pt_error_t *err)
{
    MDB_val v;
    memset(prev, 0, PT_JOURNAL_HASH_LEN);
    if (first <= 1)
        return 0;
    if (first > 2) {
        int rc = get_record(j, txn, first - 2, &v, err);
        if (rc == PT_ENOTFOUND)
            return bad_record(bad_seq, first - 2, err, "missing (deleted?)");
        if (rc != 0)
            return rc;
        const uint8_t *h = journal_record_stored_hash(v.mv_data, v.mv_size);
        if (h == NULL)
            return bad_record(bad_seq, first - 2, err, "too short");
        memcpy(prev, h, PT_JOURNAL_HASH_LEN);
    }
    int rc = get_record(j, txn, first - 1, &v, err);
    if (rc == PT_ENOTFOUND)
        return bad_record(bad_seq, first - 1, err, "missing (deleted?)");
    return rc ? rc : verify_one(&v, first - 1, prev, bad_seq, err);
}

/* Walks records first..end checking continuity and the chain, then the tail. */
static int
verify_walk(journal_t *j, MDB_cursor *cur, uint64_t first, uint64_t end, uint64_t meta_last,
            uint8_t prev[PT_JOURNAL_HASH_LEN], uint64_t *bad_seq, pt_error_t *err)
{
    uint8_t key[SEQ_KEY_LEN];
    jint_be64_put(key, first);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t expect = first;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; m == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT), expect++) {
        if (k.mv_size != SEQ_KEY_LEN)
            return bad_record(bad_seq, expect, err, "key is not a sequence");
        uint64_t seq = jint_be64_get(k.mv_data);
        if (seq > end && seq > meta_last)
            return bad_record(bad_seq, seq, err, "after the last sequence in meta (added?)");
        if (seq > end)
            break;
        if (seq != expect)
            return bad_record(bad_seq, expect, err, "missing (deleted?)");
        int rc = verify_one(&v, seq, prev, bad_seq, err);
        if (rc != 0)
            return rc;
    }
    if (m != 0 && m != MDB_NOTFOUND)
        return jint_lmdb_fail(err, m, j->dir, "walking the records");
    if (expect <= end)
        return bad_record(bad_seq, expect, err, "missing (deleted?)");
    return 0;
}

static int
verify_range(journal_t *j, MDB_txn *txn, uint64_t first, uint64_t end, uint64_t *bad_seq,
             pt_error_t *err)
{
    journal_meta_t meta;
    uint8_t prev[PT_JOURNAL_HASH_LEN];
    MDB_cursor *cur;
    int rc = meta_read(j, txn, &meta, err);
    if (rc == 0)
        rc = chain_start(j, txn, first, prev, bad_seq, err);
    if (rc != 0)
        return rc;
    rc = mdb_cursor_open(txn, j->dbi[JDB_RECORDS], &cur);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "opening a cursor");
    rc = verify_walk(j, cur, first, end, meta.last_seq, prev, bad_seq, err);
    mdb_cursor_close(cur);
    if (rc == 0 && end == meta.last_seq && end >= first &&
        memcmp(prev, meta.head, PT_JOURNAL_HASH_LEN) != 0)
        rc = bad_record(bad_seq, end, err, "hash differs from the head kept in meta");
    return rc;
}

static int
bad_checkpoint(uint64_t *bad_seq, uint64_t seq, pt_error_t *err, const char *what)
{
    *bad_seq = seq;
    return pt_error_set(err, PT_ECORRUPT, NULL, "checkpoint %llu: %s", (unsigned long long)seq,
                        what);
}

/* Checks one decoded checkpoint: signature (pk not NULL) and hash against its record. */
static int
check_checkpoint(journal_t *j, MDB_txn *txn, const journal_checkpoint_rec_t *cp, const uint8_t *pk,
                 uint64_t *bad_seq, pt_error_t *err)
{
    uint8_t msg[PT_JCKP_MSG_LEN];
    MDB_val rv;
    size_t mlen = journal_checkpoint_message(cp, msg);
    if (pk != NULL && crypto_sign_verify_detached(cp->sig, msg, mlen, pk) != 0)
        return bad_checkpoint(bad_seq, cp->seq, err, "bad signature (forged or altered)");
    int rc = get_record(j, txn, cp->seq, &rv, err);
    if (rc == PT_ENOTFOUND)
        return bad_checkpoint(bad_seq, cp->seq, err, "its record is missing (deleted?)");
    if (rc != 0)
        return rc;
    const uint8_t *h = journal_record_stored_hash(rv.mv_data, rv.mv_size);
    if (h == NULL || memcmp(h, cp->hash, PT_JOURNAL_HASH_LEN) != 0)
        return bad_checkpoint(bad_seq, cp->seq, err,
                              "hash differs from the record's (chain rewritten?)");
    return 0;
}

static int
decode_checkpoint(const MDB_val *k, const MDB_val *v, journal_checkpoint_rec_t *cp,
                  uint64_t *bad_seq, pt_error_t *err)
{
    uint64_t seq = k->mv_size == SEQ_KEY_LEN ? jint_be64_get(k->mv_data) : 0;
    if (seq == 0 || journal_checkpoint_decode(v->mv_data, v->mv_size, cp, err) != 0)
        return bad_checkpoint(bad_seq, seq, err, "malformed");
    if (cp->seq != seq)
        return bad_checkpoint(bad_seq, seq, err, "stored under another sequence");
    return 0;
}

/* The walk over the checkpoints, in seq order from the first. */
typedef struct ckpt_walk {
    const uint8_t *pk;
    uint64_t prev_seq; /* last checkpoint seen, 0 = none yet */
    bool seen_v2;
    journal_verify_report_t *rep;
} ckpt_walk_t;

/* A format-2 checkpoint names its predecessor and its rank: a deleted one shows. */
static int
check_link(const ckpt_walk_t *w, const journal_checkpoint_rec_t *cp, uint64_t *bad_seq,
           pt_error_t *err)
{
    char what[200];
    if (cp->format == PT_JCKP_FORMAT_V1)
        return w->seen_v2 ? bad_checkpoint(bad_seq, cp->seq, err,
                                           "format 1 after a format-2 checkpoint (inserted?)")
                          : 0;
    if (cp->prev_seq != w->prev_seq) {
        snprintf(what, sizeof what,
                 "signed as following checkpoint %llu, but the previous one found is %llu: "
                 "checkpoint %llu is missing (deleted?)",
                 (unsigned long long)cp->prev_seq, (unsigned long long)w->prev_seq,
                 (unsigned long long)cp->prev_seq);
        return bad_checkpoint(bad_seq, cp->seq, err, what);
    }
    if (cp->number != w->rep->checkpoints + 1) {
        snprintf(what, sizeof what,
                 "signed as checkpoint number %llu, but %llu precede it (checkpoints deleted?)",
                 (unsigned long long)cp->number, (unsigned long long)w->rep->checkpoints);
        return bad_checkpoint(bad_seq, cp->seq, err, what);
    }
    return 0;
}

static int
walk_checkpoint(journal_t *j, MDB_txn *txn, ckpt_walk_t *w, const MDB_val *k, const MDB_val *v,
                uint64_t *bad_seq, pt_error_t *err)
{
    journal_checkpoint_rec_t cp;
    int rc = decode_checkpoint(k, v, &cp, bad_seq, err);
    if (rc == 0)
        rc = check_checkpoint(j, txn, &cp, w->pk, bad_seq, err);
    if (rc == 0)
        rc = check_link(w, &cp, bad_seq, err);
    if (rc != 0)
        return rc;
    w->seen_v2 |= cp.format == PT_JCKP_FORMAT;
    w->prev_seq = cp.seq;
    w->rep->checkpoints++;
    w->rep->old_checkpoints += cp.format == PT_JCKP_FORMAT_V1;
    w->rep->last_ckpt_seq = cp.seq;
    w->rep->last_ckpt_ms = cp.time_ms;
    return 0;
}

/* Checks every checkpoint with seq <= end, from the first one (the links need them all). */
static int
verify_checkpoints(journal_t *j, MDB_txn *txn, uint64_t end, ckpt_walk_t *w, uint64_t *bad_seq,
                   pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "opening a cursor");
    int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == SEQ_KEY_LEN && jint_be64_get(k.mv_data) > end)
            break;
        rc = walk_checkpoint(j, txn, w, &k, &v, bad_seq, err);
    }
    mdb_cursor_close(cur);
    if (rc == 0 && m != 0 && m != MDB_NOTFOUND)
        rc = jint_lmdb_fail(err, m, j->dir, "walking the checkpoints");
    return rc;
}

/* The first checkpoint at or after seq (after = true), or the last one at or before
 * it; 0 when none. */
static uint64_t
checkpoint_near(journal_t *j, MDB_txn *txn, uint64_t seq, bool after)
{
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    jint_be64_put(key, after ? seq : seq + 1);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t found = 0;
    if (mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur) != 0)
        return 0;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (!after)
        m = mdb_cursor_get(cur, &k, &v, m == 0 ? MDB_PREV : MDB_LAST);
    if (m == 0 && k.mv_size == SEQ_KEY_LEN)
        found = jint_be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return found;
}

static int
check_unsigned_tail(const journal_verify_report_t *rep, uint64_t max, uint64_t *bad_seq,
                    pt_error_t *err)
{
    if (rep->unsigned_tail <= max)
        return 0;
    *bad_seq = rep->last_ckpt_seq + 1;
    return pt_error_set(err, PT_ECORRUPT, NULL,
                        "records %llu..%llu (%llu) follow the last signed checkpoint (%llu), more "
                        "than the %llu allowed: checkpoints deleted, the tail rewritten, or a "
                        "journal not written by a broker with a signing key (docs/journal.md)",
                        (unsigned long long)(rep->last_ckpt_seq + 1), (unsigned long long)rep->last,
                        (unsigned long long)rep->unsigned_tail,
                        (unsigned long long)rep->last_ckpt_seq, (unsigned long long)max);
}

static int
verify_meta(journal_t *j, MDB_txn *txn, journal_meta_t *meta, pt_error_t *err)
{
    int rc = meta_read(j, txn, meta, err);
    if (rc == 0 && !meta->present)
        rc = pt_error_set(err, PT_ECORRUPT, j->dir, "meta is missing");
    if (rc == 0 && meta->format != PT_JOURNAL_FORMAT)
        rc = pt_error_set(err, PT_EVERSION, j->dir, "journal format %u", (unsigned)meta->format);
    return rc;
}

/* Records, then checkpoints, then the unsigned tail, then (whole journal) the state. */
static int
verify_in(journal_t *j, MDB_txn *txn, const journal_verify_options_t *o,
          journal_verify_report_t *rep, uint64_t *bad_seq, pt_error_t *err)
{
    journal_meta_t meta;
    int rc = verify_meta(j, txn, &meta, err);
    if (rc != 0)
        return rc;
    uint64_t first = o->first ? o->first : 1;
    uint64_t end = o->last == 0 || o->last > meta.last_seq ? meta.last_seq : o->last;
    uint64_t max = o->max_unsigned;
    if (o->pk != NULL && end < meta.last_seq && end - checkpoint_near(j, txn, end, false) > max) {
        /* A checkpoint after the range covers it once the chain is walked up to it. */
        uint64_t c = checkpoint_near(j, txn, end, true);
        end = c != 0 && c <= meta.last_seq ? c : end;
    }
    rep->first = first;
    rep->last = end;
    if (first > end)
        return 0;
    ckpt_walk_t w = {.pk = o->pk, .rep = rep};
    rc = verify_range(j, txn, first, end, bad_seq, err);
    if (rc == 0)
        rc = verify_checkpoints(j, txn, end, &w, bad_seq, err);
    if (rc != 0)
        return rc;
    uint64_t beyond = end == meta.last_seq ? checkpoint_near(j, txn, end + 1, true) : 0;
    if (beyond != 0)
        return bad_checkpoint(bad_seq, beyond, err, "after the last record (records cut?)");
    rep->unsigned_tail = end - rep->last_ckpt_seq;
    if (o->pk != NULL)
        rc = check_unsigned_tail(rep, max, bad_seq, err);
    if (rc == 0 && o->check_state && first == 1 && end == meta.last_seq) {
        rc = jint_state_check(j, txn, bad_seq, err);
        rep->state_checked = rc == 0;
    }
    return rc;
}

int
journal_verify_ex(journal_t *j, const journal_verify_options_t *o, journal_verify_report_t *rep,
                  uint64_t *bad_seq, pt_error_t *err)
{
    MDB_txn *txn;
    memset(rep, 0, sizeof *rep);
    *bad_seq = 0;
    int rc = jint_read_begin(j, &txn, err);
    if (rc != 0)
        return rc;
    rc = verify_in(j, txn, o, rep, bad_seq, err);
    mdb_txn_abort(txn);
    return rc;
}

int
journal_verify(journal_t *j, uint64_t first, uint64_t last, const uint8_t *pk, uint64_t *bad_seq,
               pt_error_t *err)
{
    journal_verify_options_t o = {.first = first, .last = last, .pk = pk};
    journal_verify_report_t rep;
    return journal_verify_ex(j, &o, &rep, bad_seq, err);
}

/* ---- checkpoints ---- */

static void
log_signed_head(const journal_signed_head_t *h)
{
    char hash[2 * PT_JOURNAL_HASH_LEN + 1], sig[2 * 8 + 1];
    sodium_bin2hex(hash, sizeof hash, h->hash, sizeof h->hash);
    sodium_bin2hex(sig, sizeof sig, h->sig, 8);
    pt_log_notice("journal.signed", "signed head seq=%llu number=%llu time_ms=%lld hash=%s sig=%s",
                  (unsigned long long)h->seq, (unsigned long long)h->number, (long long)h->time_ms,
                  hash, sig);
}

/* Signs t's head as the checkpoint following the last committed one, stores it in t,
 * and keeps it in t->pending until the commit. LMDB code. */
static int
put_checkpoint(journal_txn_t *t)
{
    journal_t *j = t->j;
    journal_checkpoint_rec_t cp = {.format = PT_JCKP_FORMAT,
                                   .seq = t->last_seq,
                                   .time_ms = jint_now_ms(),
                                   .prev_seq = j->signed_head.seq,
                                   .number = j->signed_head.number + 1};
    uint8_t msg[PT_JCKP_MSG_LEN], val[PT_JCKP_LEN], key[SEQ_KEY_LEN];
    memcpy(cp.hash, t->head, PT_JOURNAL_HASH_LEN);
    size_t mlen = journal_checkpoint_message(&cp, msg);
    crypto_sign_detached(cp.sig, NULL, msg, mlen, j->sign_sk);
    journal_checkpoint_encode(&cp, val);
    jint_be64_put(key, cp.seq);
    MDB_val k = {sizeof key, key}, v = {sizeof val, val};
    int rc = mdb_put(t->txn, j->dbi[JDB_CKPT], &k, &v, 0);
    if (rc != 0)
        return rc;
    t->signed_pending = true;
    t->pending = (journal_signed_head_t){.seq = cp.seq, .time_ms = cp.time_ms, .number = cp.number};
    memcpy(t->pending.hash, cp.hash, PT_JOURNAL_HASH_LEN);
    memcpy(t->pending.sig, cp.sig, PT_JCKP_SIG_LEN);
    return 0;
}

/* The batch would leave more than PT_JOURNAL_UNSIGNED_MAX records unsigned (with 0:
 * it appended anything). */
static bool
must_sign(const journal_txn_t *t)
{
    const journal_t *j = t->j;
    return j->have_sk && !t->signed_pending &&
           t->last_seq - j->signed_head.seq > PT_JOURNAL_UNSIGNED_MAX;
}

/* After a successful commit: the batch's checkpoint is now the signed head. */
static void
signed_head_commit(journal_txn_t *t)
{
    if (!t->signed_pending)
        return;
    t->j->signed_head = t->pending;
    t->signed_pending = false;
    log_signed_head(&t->j->signed_head);
}

int
journal_checkpoint(journal_t *j, pt_error_t *err)
{
    if (!j->have_sk || j->last_seq == 0 || j->read_only || j->last_seq == j->signed_head.seq)
        return 0;
    journal_txn_t *t;
    int rc = journal_begin(j, &t, err);
    if (rc != 0)
        return rc;
    rc = put_checkpoint(t);
    if (rc != 0) {
        journal_abort(&t);
        return jint_lmdb_fail(err, rc, j->dir, "storing a checkpoint");
    }
    return journal_commit(&t, err);
}

void
journal_signed_head(const journal_t *j, journal_signed_head_t *out)
{
    *out = j->signed_head;
}

/* Reads the last checkpoint into j->signed_head; its number is, for a format-1 one,
 * the count of checkpoints (the first format-2 checkpoint then follows them all). */
static int
load_signed_head(journal_t *j, MDB_txn *txn, pt_error_t *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    journal_checkpoint_rec_t cp;
    uint64_t bad;
    memset(&j->signed_head, 0, sizeof j->signed_head);
    int rc = mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "opening a cursor");
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "reading the last checkpoint");
    if ((rc = decode_checkpoint(&k, &v, &cp, &bad, err)) != 0)
        return rc;
    MDB_stat st;
    if (cp.format == PT_JCKP_FORMAT_V1 && mdb_stat(txn, j->dbi[JDB_CKPT], &st) == 0)
        cp.number = st.ms_entries;
    j->signed_head =
        (journal_signed_head_t){.seq = cp.seq, .time_ms = cp.time_ms, .number = cp.number};
    memcpy(j->signed_head.hash, cp.hash, PT_JOURNAL_HASH_LEN);
    memcpy(j->signed_head.sig, cp.sig, PT_JCKP_SIG_LEN);
    return 0;
}

/* A read-write open with the signing key: the last checkpoint must be ours and match
 * its record, and the records after it must chain from it and be at most max_unsigned:
 * the broker does not resume a journal whose checkpoints were deleted or whose tail
 * was rewritten (journal_verify says more). */
static int
check_signed_tail(journal_t *j, MDB_txn *txn, const journal_meta_t *m, pt_error_t *err)
{
    uint8_t pk[crypto_sign_PUBLICKEYBYTES];
    uint64_t bad;
    const journal_signed_head_t *h = &j->signed_head;
    if (h->seq > m->last_seq)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "checkpoint %llu is after the last record %llu (records cut?)",
                            (unsigned long long)h->seq, (unsigned long long)m->last_seq);
    if (j->max_unsigned == UINT64_MAX || m->last_seq == 0)
        return 0;
    if (m->last_seq - h->seq > j->max_unsigned)
        return pt_error_set(err, PT_ECORRUPT, j->dir,
                            "%llu records after the last signed checkpoint (%llu), more than %llu: "
                            "checkpoints deleted or the tail rewritten? Run ptibusctl "
                            "journal-verify (docs/journal.md)",
                            (unsigned long long)(m->last_seq - h->seq), (unsigned long long)h->seq,
                            (unsigned long long)j->max_unsigned);
    if (h->seq == 0)
        return 0;
    crypto_sign_ed25519_sk_to_pk(pk, j->sign_sk);
    MDB_val k, v;
    uint8_t key[SEQ_KEY_LEN];
    jint_be64_put(key, h->seq);
    k = (MDB_val){SEQ_KEY_LEN, key};
    journal_checkpoint_rec_t cp;
    int rc = mdb_get(txn, j->dbi[JDB_CKPT], &k, &v);
    if (rc != 0)
        return jint_lmdb_fail(err, rc, j->dir, "reading the last checkpoint");
    rc = decode_checkpoint(&k, &v, &cp, &bad, err);
    if (rc == 0)
        rc = check_checkpoint(j, txn, &cp, pk, &bad, err);
    if (rc == 0)
        rc = verify_range(j, txn, h->seq, m->last_seq, &bad, err);
    return rc;
}
