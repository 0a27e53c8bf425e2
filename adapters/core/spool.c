/* spool: the adapter's durable store (see spool.h; layouts in docs/adapters/spool.md). */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <sodium.h>

#include "bytes.h"
#include "clock.h"
#include "lmdbx.h"
#include "log.h"
#include "utf8.h"
#include "ptibus/v1/protocol.pb-c.h"

#define SPOOL_FORMAT 1 /* the meta's layout version and every record's format byte */
#define SPOOL_DEFAULT_INITIAL ((size_t)16 << 20)
#define SPOOL_DEFAULT_MAX ((size_t)4 << 30)
#define SPOOL_DEFAULT_RETENTION_DAYS 30
#define DAY_MS ((int64_t)86400000)

enum { SDB_META, SDB_MSG, SDB_QUEUE, SDB_FIN, SDB_RCPT, SDB_INB, SDB_KV, SDB_STAGE, SDB_COUNT };
static const char *const sdb_names[SDB_COUNT] = {"meta",     "messages", "queue", "finished",
                                                 "receipts", "inbound",  "kv",    "stages"};

/* Lifecycle record ("messages", key: message id): a fixed header then the type, the
 * reason and the field path. */
#define LREC_HDR 88
#define QREC_HDR 16 /* queue record ("queue", key: qseq big-endian): header, id, data */
#define RREC_HDR 32 /* receipt record ("receipts", key: id NUL recipient) */
#define IREC_LEN 16 /* inbound mark ("inbound", key: seq big-endian) */
#define FIN_KEY_MAX (8 + PT_MESSAGE_ID_MAX)
#define KV_KEY_MAX (PT_SPOOL_NS_MAX + 1 + PT_SPOOL_KEY_MAX)
/* A key-value record written under a stage: format byte KV_STAGED, flags, the stage, the
 * new value's length, the new value, then the value it replaced (undone on rollback). */
#define KV_STAGED 2
#define KV_STAGED_HDR 10
#define KV_NEW_DELETED 1 /* the stage deleted the key */
#define KV_HAD_OLD 2     /* the key had a value before the stage */
#define QREC_STAGED 1    /* queue record flag (byte 2): spooled under the stage of bytes 4-7 */
#define STAGE_REC_LEN 16 /* "stages" record (key "open"): format, 0, 0, 0, stage, first qseq */

typedef struct lrec {
    uint8_t state, source;
    uint32_t attempts, nack_code;
    uint64_t qseq, seq;
    int64_t spooled_at, next_attempt, finished_at;
    uint8_t hash[PT_SPOOL_HASH_LEN];
    char type[PT_SPOOL_TYPE_MAX + 1];
    char reason[PT_SPOOL_REASON_MAX + 1];
    char path[PT_ERROR_PATH_MAX];
} lrec_t;

struct spool {
    char dir[PATH_MAX];
    int dirfd; /* holds the folder's lock */
    MDB_env *env;
    MDB_dbi dbi[SDB_COUNT];
    size_t psize, map_max, reserve_pages;
    size_t limbo; /* pages freed by the last commit, not reusable in this turn */
    int64_t retention_ms;
    MDB_txn *txn;     /* the turn's write transaction, NULL when none is open */
    int failed;       /* the turn's failure */
    bool urgent;      /* the turn holds a write someone waits for (spool_turn_urgent) */
    int64_t began_ms; /* monotonic time the turn's transaction began */
    bool grow_pending;
    size_t grow_extra;                 /* bytes the turn that failed needed */
    size_t turn_bytes;                 /* bytes spooled by the open turn */
    uint64_t next_qseq, txn_next_qseq; /* committed / in the turn */
    uint64_t *flight;                  /* qseqs in flight, sorted */
    size_t n_flight, cap_flight;
    void *map_base; /* LMDB's map, for unmap_touched (NULL: not found) */
    size_t map_len; /* its size when it was found */
    unsigned reads; /* look-ups since the last unmap_touched */
    /* The stage (0: none) that is open or left to roll back. Its writes are what reads see
     * while it is live (begun by this process, not failed); once it is not, reads see the
     * values it replaced. */
    uint32_t stage;
    uint64_t stage_first;   /* the first qseq it could have spooled */
    bool stage_live;        /* begun here and no turn of it failed */
    bool stage_begun_turn;  /* begun by the open turn (gone if the turn is) */
    bool stage_finish_turn; /* finished by the open turn */
    uint64_t rb_qseq;       /* rollback: the queue position reached */
    uint8_t rb_key[KV_KEY_MAX];
    size_t rb_klen; /* rollback: the kv key reached (0: the first) */
    bool rb_kv;     /* rollback: the queue is done, the kv is next */
};

/* ---- small codecs ---- */

static size_t
lrec_size(const lrec_t *r)
{
    return LREC_HDR + strlen(r->type) + strlen(r->reason) + strlen(r->path);
}

static void
lrec_encode(const lrec_t *r, uint8_t *p)
{
    size_t tl = strlen(r->type), rl = strlen(r->reason), pl = strlen(r->path);
    memset(p, 0, LREC_HDR);
    p[0] = SPOOL_FORMAT;
    p[1] = r->state;
    p[2] = r->source;
    p[3] = (uint8_t)tl;
    bytes_le_put(p + 4, r->attempts, 4);
    bytes_le_put(p + 8, r->qseq, 8);
    bytes_le_put(p + 16, (uint64_t)r->spooled_at, 8);
    bytes_le_put(p + 24, (uint64_t)r->next_attempt, 8);
    bytes_le_put(p + 32, r->seq, 8);
    bytes_le_put(p + 40, (uint64_t)r->finished_at, 8);
    bytes_le_put(p + 48, r->nack_code, 4);
    bytes_le_put(p + 52, rl, 2);
    bytes_le_put(p + 54, pl, 2);
    memcpy(p + 56, r->hash, PT_SPOOL_HASH_LEN);
    memcpy(p + LREC_HDR, r->type, tl);
    memcpy(p + LREC_HDR + tl, r->reason, rl);
    memcpy(p + LREC_HDR + tl + rl, r->path, pl);
}

static int
lrec_decode(const MDB_val *v, lrec_t *r)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < LREC_HDR)
        return PT_ECORRUPT;
    if (p[0] != SPOOL_FORMAT)
        return PT_EVERSION;
    size_t tl = p[3], rl = bytes_le_get(p + 52, 2), pl = bytes_le_get(p + 54, 2);
    if (tl > PT_SPOOL_TYPE_MAX || rl > PT_SPOOL_REASON_MAX || pl >= PT_ERROR_PATH_MAX ||
        v->mv_size != LREC_HDR + tl + rl + pl || p[1] < SPOOL_SPOOLED || p[1] > SPOOL_REJECTED)
        return PT_ECORRUPT;
    r->state = p[1];
    r->source = p[2];
    r->attempts = (uint32_t)bytes_le_get(p + 4, 4);
    r->qseq = bytes_le_get(p + 8, 8);
    r->spooled_at = (int64_t)bytes_le_get(p + 16, 8);
    r->next_attempt = (int64_t)bytes_le_get(p + 24, 8);
    r->seq = bytes_le_get(p + 32, 8);
    r->finished_at = (int64_t)bytes_le_get(p + 40, 8);
    r->nack_code = (uint32_t)bytes_le_get(p + 48, 4);
    memcpy(r->hash, p + 56, PT_SPOOL_HASH_LEN);
    memcpy(r->type, p + LREC_HDR, tl);
    r->type[tl] = '\0';
    memcpy(r->reason, p + LREC_HDR + tl, rl);
    r->reason[rl] = '\0';
    memcpy(r->path, p + LREC_HDR + tl + rl, pl);
    r->path[pl] = '\0';
    return 0;
}

static const char *
state_name(int state)
{
    static const char *const names[] = {"?", "spooled", "accepted", "rejected"};
    return state >= SPOOL_SPOOLED && state <= SPOOL_REJECTED ? names[state] : "?";
}

/* ---- the in-flight set: a sorted array (sends and acks are mostly in order) ---- */

static size_t
flight_find(const spool_t *s, uint64_t q)
{
    size_t lo = 0, hi = s->n_flight;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->flight[mid] < q)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool
spool_in_flight(const spool_t *s, uint64_t qseq)
{
    size_t i = flight_find(s, qseq);
    return i < s->n_flight && s->flight[i] == qseq;
}

int
spool_mark_in_flight(spool_t *s, uint64_t qseq)
{
    size_t i = flight_find(s, qseq);
    if (i < s->n_flight && s->flight[i] == qseq)
        return 0;
    if (s->n_flight == s->cap_flight) {
        size_t cap = s->cap_flight ? 2 * s->cap_flight : 64;
        uint64_t *f = realloc(s->flight, cap * sizeof *f);
        if (f == NULL)
            return -ENOMEM;
        s->flight = f;
        s->cap_flight = cap;
    }
    memmove(s->flight + i + 1, s->flight + i, (s->n_flight - i) * sizeof *s->flight);
    s->flight[i] = qseq;
    s->n_flight++;
    return 0;
}

static void
flight_remove(spool_t *s, uint64_t q)
{
    size_t i = flight_find(s, q);
    if (i == s->n_flight || s->flight[i] != q)
        return;
    memmove(s->flight + i, s->flight + i + 1, (s->n_flight - i - 1) * sizeof *s->flight);
    s->n_flight--;
}

void
spool_reset_in_flight(spool_t *s)
{
    s->n_flight = 0;
}

/* ---- map growth and room ---- */

/* Doubles the map (capped at the maximum) when forced or more than 3/4 used, as many
 * times as the turn that failed needs (grow_extra: twice what it had spooled). Only with no
 * transaction open. */
static void
grow(spool_t *s, bool force)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t used = (info.me_last_pgno + 1) * s->psize;
    if ((!force && used <= info.me_mapsize / 4 * 3) || info.me_mapsize >= s->map_max)
        return;
    size_t next = info.me_mapsize, target = used + s->grow_extra;
    do
        next = next > s->map_max / 2 ? s->map_max : next * 2;
    while (next < s->map_max && target > next / 4 * 3);
    if (mdb_env_set_mapsize(s->env, next) != 0)
        return;
    s->grow_pending = false;
    s->grow_extra = 0;
    pt_log_info("spool.grow", "spool map grown from %zu to %zu bytes (max %zu)", info.me_mapsize,
                next, s->map_max);
}

/* Pages in use by every database, the free list's own included: the map's pages minus
 * these are free or reusable. */
static size_t
live_pages(spool_t *s, MDB_txn *txn)
{
    size_t n = 0;
    MDB_stat st;
    for (int i = 0; i < SDB_COUNT; i++)
        if (mdb_stat(txn, s->dbi[i], &st) == 0)
            n += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    for (MDB_dbi d = 0; d < 2; d++) /* the free list and the main database */
        if (mdb_stat(txn, d, &st) == 0)
            n += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    return n;
}

/* Pages the last committed transaction freed: LMDB reuses them only from the next write
 * transaction on. Its free-list record is the last one, keyed by its id, the count first.
 * Read before the turn begins (a write transaction may not read the free list). */
static size_t
limbo_pages(spool_t *s)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t n = 0, id;
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    int rc = mdb_cursor_open(txn, 0, &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == sizeof id && v.mv_size >= sizeof n) {
        memcpy(&id, k.mv_data, sizeof id);
        if (id == mdb_txn_id(txn))
            memcpy(&n, v.mv_data, sizeof n);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

/* At the maximum size, a last commit that freed many pages keeps them from this turn:
 * one small commit first (a meta write) makes them reusable. */
static void
release_limbo(spool_t *s)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    s->limbo = limbo_pages(s);
    if (info.me_mapsize < s->map_max || s->limbo <= s->reserve_pages / 2)
        return;
    MDB_txn *txn;
    uint8_t buf[8];
    bytes_le_put(buf, info.me_last_txnid, 8);
    MDB_val k = {4, "tick"}, v = {8, buf};
    if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
        return;
    if (mdb_put(txn, s->dbi[SDB_META], &k, &v, 0) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    if (mdb_txn_commit(txn) == 0) /* the handle is freed either way */
        s->limbo = limbo_pages(s);
}

/* Whether `bytes` more fit while keeping the reserve for acks, receipts, purges and the
 * pages this transaction frees (LMDB cannot reuse them before the next). Below the
 * maximum the map grows instead (a MAP_FULL fails the turn, the next one has room). */
static bool
has_room(spool_t *s, MDB_txn *txn, size_t bytes)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (info.me_mapsize < s->map_max)
        return true;
    size_t max_pages = s->map_max / s->psize, need = bytes / s->psize + 4;
    return live_pages(s, txn) + s->limbo + need + s->reserve_pages <= max_pages;
}

/* A staged file's chunks make LMDB read, through its read-only map, the pages their
 * writes copy (random message ids reach every leaf of the lifecycles) and the kernel
 * maps their neighbours with them: clean page-cache pages that would count in the
 * process's RSS however large the spool grows. They are dropped from the mapping after
 * each chunk (the kernel keeps them cached; a later read maps them again). LMDB does not
 * tell where its map is: /proc/self/maps does, read again when the map size changed. */
static void
unmap_touched(spool_t *s)
{
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) != 0)
        return;
    if (s->map_len != info.me_mapsize) {
        char want[PATH_MAX + 16], line[PATH_MAX + 128];
        char real[PATH_MAX]; /* the maps name the file by its absolute path */
        snprintf(want, sizeof want, "%s/data.mdb", realpath(s->dir, real) ? real : s->dir);
        FILE *f = fopen("/proc/self/maps", "r");
        s->map_base = NULL, s->map_len = 0;
        while (f != NULL && fgets(line, sizeof line, f) != NULL) {
            unsigned long lo, hi;
            char *path = strchr(line, '/');
            if (path == NULL || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
                continue;
            path[strcspn(path, "\n")] = '\0';
            if (strcmp(path, want) == 0 && hi - lo == info.me_mapsize)
                s->map_base = (void *)lo, s->map_len = hi - lo;
        }
        if (f != NULL)
            fclose(f);
    }
    if (s->map_base != NULL)
        madvise(s->map_base, s->map_len, MADV_DONTNEED);
    s->reads = 0;
}

/* Counts a look-up: long runs of reads (a catalogue's fingerprints, a listing) drop what
 * they mapped every SPOOL_UNMAP_READS (at most 256 x 64 KiB of fault-around). Pointers into the map
 * stay valid (a read maps the same page again). */
#define SPOOL_UNMAP_READS 256
static void
read_tick(spool_t *s)
{
    if (++s->reads >= SPOOL_UNMAP_READS)
        unmap_touched(s);
}

/* ---- transactions ---- */

/* The open turn is lost (aborted or failed): a stage it began is gone, a stage it
 * finished is pending again, and a stage it wrote to is no longer live (its committed
 * chunks wait for their rollback). */
static void
stage_turn_lost(spool_t *s)
{
    if (s->stage_begun_turn)
        s->stage = 0;
    else if (s->stage != 0 && s->txn != NULL)
        s->stage_live = false;
    s->stage_begun_turn = s->stage_finish_turn = false;
    if (s->stage == 0)
        s->stage_live = false;
    s->rb_qseq = 0, s->rb_klen = 0, s->rb_kv = false; /* a rollback restarts */
}

static int
fail_turn(spool_t *s, int rc, pt_error_t *err, const char *what)
{
    int code = lmdbx_code(rc);
    stage_turn_lost(s);
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    s->txn = NULL;
    s->urgent = false;
    s->failed = code;
    if (code == PT_EJOURNALFULL)
        s->grow_pending = true;
    return pt_error_set(err, code, s->dir, "%s: %s (nothing of this turn is kept)", what,
                        mdb_strerror(rc));
}

/* The turn's write transaction, begun on first use. */
static int
wtxn(spool_t *s, MDB_txn **txn, pt_error_t *err)
{
    if (s->failed)
        return pt_error_set(err, s->failed, s->dir, "the turn failed earlier: commit or abort it");
    if (s->txn == NULL) {
        grow(s, s->grow_pending);
        release_limbo(s);
        int rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
        if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(s->env, 0) == 0)
            rc = mdb_txn_begin(s->env, NULL, 0, &s->txn);
        if (rc != 0) {
            s->txn = NULL;
            return lmdbx_fail(err, rc, s->dir, "beginning a write transaction");
        }
        s->txn_next_qseq = s->next_qseq;
        s->turn_bytes = 0;
        s->began_ms = pt_clock_mono_ms();
    }
    *txn = s->txn;
    return 0;
}

/* Whether the spool is at its maximum map and more than 3/4 used (txn: the open turn). */
static bool
near_full(spool_t *s, MDB_txn *txn)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t max_pages = s->map_max / s->psize;
    return info.me_mapsize >= s->map_max && (live_pages(s, txn) + s->limbo) * 4 > max_pages * 3;
}

/* wtxn for a write that someone waits for: the turn is then committed at once. Near the
 * maximum, a turn of answer marks alone is committed first, on its own: mixed with new
 * messages, its deletions could make the commit fail for room and take the marks down
 * with it, again and again (their messages are sent again, answered again, marked again). */
static int
urgent_wtxn(spool_t *s, MDB_txn **txn, pt_error_t *err)
{
    if (s->txn != NULL && !s->urgent && s->failed == 0 && near_full(s, s->txn)) {
        int rc = spool_commit(s, err);
        if (rc != 0)
            return rc;
    }
    int rc = wtxn(s, txn, err);
    if (rc == 0)
        s->urgent = true;
    return rc;
}

/* The turn's transaction when one is open (reads see the turn's writes), else a read
 * transaction that the caller ends with rend. */
static int
rtxn(spool_t *s, MDB_txn **txn, pt_error_t *err)
{
    read_tick(s);
    if (s->txn != NULL) {
        *txn = s->txn;
        return 0;
    }
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(s->env, 0) == 0)
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
    return rc ? lmdbx_fail(err, rc, s->dir, "beginning a read transaction") : 0;
}

static void
rend(spool_t *s, MDB_txn *txn)
{
    if (txn != s->txn)
        mdb_txn_abort(txn);
}

static int
meta_put_u64(spool_t *s, MDB_txn *txn, const char *key, uint64_t v)
{
    uint8_t buf[8];
    bytes_le_put(buf, v, 8);
    MDB_val k = {strlen(key), (void *)key}, val = {8, buf};
    return mdb_put(txn, s->dbi[SDB_META], &k, &val, 0);
}

static int
meta_get_u64(spool_t *s, MDB_txn *txn, const char *key, uint64_t *v)
{
    MDB_val k = {strlen(key), (void *)key}, val;
    int rc = mdb_get(txn, s->dbi[SDB_META], &k, &val);
    if (rc == 0 && val.mv_size != 8)
        return MDB_CORRUPTED;
    *v = rc == 0 ? bytes_le_get(val.mv_data, 8) : 0;
    return rc;
}

static int
meta_add(spool_t *s, MDB_txn *txn, const char *key, int64_t delta)
{
    uint64_t v;
    int rc = meta_get_u64(s, txn, key, &v);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return rc;
    return meta_put_u64(s, txn, key, delta < 0 && v < (uint64_t)-delta ? 0 : v + delta);
}

/* LMDB reports a short page write as EIO: on a disk with no room left that is a full
 * disk (ENOSPC), which the callers answer "retry later", not an I/O error. */
static int
disk_full_code(const spool_t *s, int code)
{
    struct statvfs v;
    if (code != -EIO || statvfs(s->dir, &v) != 0)
        return code;
    uint64_t room = (uint64_t)v.f_bavail * v.f_frsize;
    return room < 2 * (uint64_t)s->turn_bytes + 1024 * 1024 ? -ENOSPC : code;
}

int
spool_commit(spool_t *s, pt_error_t *err)
{
    if (s->failed) {
        int code = s->failed;
        s->failed = 0;
        grow(s, s->grow_pending);
        return pt_error_set(err, code, s->dir, "the turn failed: nothing of it was kept");
    }
    if (s->txn == NULL)
        return 0;
    int rc = 0;
    if (s->txn_next_qseq != s->next_qseq)
        rc = meta_put_u64(s, s->txn, "next_qseq", s->txn_next_qseq);
    if (rc != 0)
        mdb_txn_abort(s->txn);
    else
        rc = mdb_txn_commit(s->txn);
    if (rc != 0)
        stage_turn_lost(s);
    s->txn = NULL;
    s->urgent = false;
    if (rc != 0) {
        int code = disk_full_code(s, lmdbx_code(rc));
        if (code == -ENOSPC)
            return pt_error_set(err, code, s->dir,
                                "commit: the disk holding the spool is full: nothing of the "
                                "turn kept");
        if (code == PT_EJOURNALFULL) {
            s->grow_pending = true;
            s->grow_extra = 2 * s->turn_bytes;
        }
        grow(s, s->grow_pending);
        return pt_error_set(err, code, s->dir, "commit: %s: nothing of the turn kept",
                            mdb_strerror(rc));
    }
    s->next_qseq = s->txn_next_qseq;
    if (s->stage != 0)
        unmap_touched(s);
    if (s->stage_finish_turn)
        s->stage = 0, s->stage_live = false;
    s->stage_begun_turn = s->stage_finish_turn = false;
    return 0;
}

void
spool_abort(spool_t *s)
{
    if (s->txn != NULL) {
        stage_turn_lost(s);
        mdb_txn_abort(s->txn);
    }
    s->txn = NULL;
    s->urgent = false;
    s->failed = 0;
    grow(s, s->grow_pending);
}

int
spool_failed(const spool_t *s)
{
    return s->failed;
}

bool
spool_turn_open(const spool_t *s)
{
    return s->txn != NULL || s->failed != 0;
}

bool
spool_turn_urgent(spool_t *s)
{
    /* near the maximum, answer marks do not wait: the space they free is wanted */
    return s->urgent || s->failed != 0 || (s->txn != NULL && near_full(s, s->txn));
}

int64_t
spool_turn_began_ms(const spool_t *s)
{
    return s->txn != NULL ? s->began_ms : 0;
}

/* ---- opening ---- */

static int
check_dir(int fd, const char *dir, pt_error_t *err)
{
    struct stat st;
    uid_t euid = geteuid();
    if (fstat(fd, &st) != 0)
        return pt_error_set(err, -errno, dir, "cannot stat the spool folder: %s", strerror(errno));
    if (st.st_uid != euid)
        return pt_error_set(err, PT_EDENIED, dir,
                            "the spool folder is owned by uid %u, not by the adapter's user "
                            "(uid %u); fix it with: chown -R %u %s",
                            (unsigned)st.st_uid, (unsigned)euid, (unsigned)euid, dir);
    if ((st.st_mode & 077) != 0)
        return pt_error_set(err, PT_EDENIED, dir,
                            "the spool folder has mode %04o, open to group or others; fix it "
                            "with: chmod 700 %s",
                            (unsigned)(st.st_mode & 07777), dir);
    return 0;
}

/* Creates the folder 0700 (whatever the umask), checks it on the opened fd, locks it. */
static int
open_dir(spool_t *s, pt_error_t *err)
{
    bool created = mkdir(s->dir, 0700) == 0;
    if (!created && errno != EEXIST)
        return pt_error_set(err, -errno, s->dir, "mkdir: %s", strerror(errno));
    s->dirfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (s->dirfd < 0)
        return pt_error_set(err, -errno, s->dir, "cannot open the spool folder: %s",
                            strerror(errno));
    if (created && fchmod(s->dirfd, 0700) != 0)
        return pt_error_set(err, -errno, s->dir, "fchmod: %s", strerror(errno));
    int rc = check_dir(s->dirfd, s->dir, err);
    if (rc == 0 && flock(s->dirfd, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK
                 ? pt_error_set(err, -EBUSY, s->dir, "the spool is in use by another adapter")
                 : pt_error_set(err, -errno, s->dir, "flock: %s", strerror(errno));
    return rc;
}

static size_t
round_pages(size_t n, size_t page)
{
    return n % page ? n + page - n % page : n;
}

static int
open_env(spool_t *s, const spool_options_t *o, pt_error_t *err)
{
    s->psize = (size_t)sysconf(_SC_PAGESIZE);
    size_t initial =
        round_pages(o->map_size_initial ? o->map_size_initial : SPOOL_DEFAULT_INITIAL, s->psize);
    s->map_max = round_pages(o->map_size_max ? o->map_size_max : SPOOL_DEFAULT_MAX, s->psize);
    if (initial > s->map_max)
        initial = s->map_max;
    size_t reserve = s->map_max / s->psize / 16;
    s->reserve_pages = reserve < 32 ? 32 : reserve > 4096 ? 4096 : reserve;
    int rc = mdb_env_create(&s->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(s->env, SDB_COUNT);
    if (rc == 0)
        rc = mdb_env_set_mapsize(s->env, initial);
    if (rc == 0)
        rc = mdb_env_open(s->env, s->dir, MDB_NOTLS | (o->unsafe_nosync ? MDB_NOSYNC : 0), 0600);
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "opening the LMDB environment");
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[PATH_MAX + 16];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(path, sizeof path, "%s/%s", s->dir, files[i]);
        if (chmod(path, 0600) != 0) /* LMDB applies the umask */
            return pt_error_set(err, -errno, path, "chmod: %s", strerror(errno));
    }
    return 0;
}

/* Checks or writes the meta (format, next qseq) in the opening transaction. */
static int
open_meta(spool_t *s, MDB_txn *txn, pt_error_t *err)
{
    MDB_val k = {6, "format"}, v;
    int rc = mdb_get(txn, s->dbi[SDB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        MDB_stat st;
        if (mdb_stat(txn, s->dbi[SDB_MSG], &st) == 0 && st.ms_entries != 0)
            return pt_error_set(err, PT_ECORRUPT, s->dir, "messages present but no meta");
        uint8_t f = SPOOL_FORMAT;
        v = (MDB_val){1, &f};
        rc = mdb_put(txn, s->dbi[SDB_META], &k, &v, 0);
        if (rc == 0)
            rc = meta_put_u64(s, txn, "next_qseq", 1);
        return rc ? lmdbx_fail(err, rc, s->dir, "writing the meta") : 0;
    }
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "reading the meta");
    if (v.mv_size != 1 || *(uint8_t *)v.mv_data != SPOOL_FORMAT)
        return pt_error_set(err, PT_EVERSION, s->dir, "spool format %u, this build reads %d",
                            v.mv_size ? (unsigned)*(uint8_t *)v.mv_data : 0, SPOOL_FORMAT);
    rc = meta_get_u64(s, txn, "next_qseq", &s->next_qseq);
    if (rc == 0 && s->next_qseq == 0)
        rc = MDB_CORRUPTED;
    return rc ? lmdbx_fail(err, rc, s->dir, "reading the meta's next_qseq") : 0;
}

static int
open_dbs(spool_t *s, pt_error_t *err)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "beginning the opening transaction");
    for (int i = 0; i < SDB_COUNT && rc == 0; i++)
        rc = mdb_dbi_open(txn, sdb_names[i], MDB_CREATE, &s->dbi[i]);
    if (rc != 0)
        rc = lmdbx_fail(err, rc, s->dir, "opening the databases (is this a ptibus spool?)");
    if (rc == 0)
        rc = open_meta(s, txn, err);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    return rc ? lmdbx_fail(err, rc, s->dir, "committing the opening transaction") : 0;
}

static int stage_recover(spool_t *s, pt_error_t *err);

int
spool_open(const spool_options_t *opts, spool_t **out, pt_error_t *err)
{
    *out = NULL;
    if (opts->dir == NULL || opts->dir[0] == '\0')
        return pt_error_set(err, PT_ECONFIG, "spool.dir", "missing");
    spool_t *s = calloc(1, sizeof *s);
    if (s == NULL)
        return pt_error_set(err, -ENOMEM, "spool", "out of memory");
    s->dirfd = -1;
    int rc = 0;
    if ((size_t)snprintf(s->dir, sizeof s->dir, "%s", opts->dir) >= sizeof s->dir)
        rc = pt_error_set(err, PT_ECONFIG, "spool.dir", "path too long");
    if (rc == 0 && sodium_init() < 0)
        rc = pt_error_set(err, PT_EINTERNAL, "spool", "libsodium failed to initialise");
    unsigned days = opts->retention_days ? opts->retention_days : SPOOL_DEFAULT_RETENTION_DAYS;
    s->retention_ms = (int64_t)days * DAY_MS;
    if (rc == 0)
        rc = open_dir(s, err);
    if (rc == 0)
        rc = open_env(s, opts, err);
    if (rc == 0)
        rc = open_dbs(s, err);
    if (rc == 0)
        rc = stage_recover(s, err);
    if (rc != 0) {
        spool_close(&s);
        return rc;
    }
    *out = s;
    return 0;
}

void
spool_close(spool_t **sp)
{
    if (sp == NULL || *sp == NULL)
        return;
    spool_t *s = *sp;
    if (s->txn != NULL)
        mdb_txn_abort(s->txn);
    if (s->env != NULL)
        mdb_env_close(s->env);
    if (s->dirfd >= 0)
        close(s->dirfd);
    free(s->flight);
    free(s);
    *sp = NULL;
}

/* ---- outbound ---- */

static bool
id_valid(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > PT_MESSAGE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7e)
            return false;
    return true;
}

static int
check_msg(const spool_msg_t *m, pt_error_t *err)
{
    if (!id_valid(m->message_id))
        return pt_error_set(err, PT_EINVALID, "messageId",
                            "must be 1 to %d printable ASCII characters without spaces",
                            PT_MESSAGE_ID_MAX);
    if (m->msg_type != NULL && m->msg_type[0] != '\0' &&
        (strlen(m->msg_type) > PT_SPOOL_TYPE_MAX || !id_valid(m->msg_type)))
        return pt_error_set(err, PT_EINVALID, "type", "must be 1 to %d printable characters",
                            PT_SPOOL_TYPE_MAX);
    if (m->source != SPOOL_SRC_HTTP && m->source != SPOOL_SRC_FILE)
        return pt_error_set(err, PT_EINVALID, "source", "must be http or file");
    if (m->data == NULL || m->len == 0 || m->len > UINT32_MAX)
        return pt_error_set(err, PT_EINVALID, "envelope", "empty or too large");
    return 0;
}

/* Reads the lifecycle of id: 0, MDB_NOTFOUND, or a PT_E* code for a bad record. */
static int
lrec_get(spool_t *s, MDB_txn *txn, const char *id, lrec_t *r)
{
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_get(txn, s->dbi[SDB_MSG], &k, &v);
    return rc ? rc : lrec_decode(&v, r);
}

static int
lrec_put(spool_t *s, MDB_txn *txn, const char *id, const lrec_t *r)
{
    uint8_t buf[LREC_HDR + PT_SPOOL_TYPE_MAX + PT_SPOOL_REASON_MAX + PT_ERROR_PATH_MAX];
    lrec_encode(r, buf);
    MDB_val k = {strlen(id), (void *)id}, v = {lrec_size(r), buf};
    return mdb_put(txn, s->dbi[SDB_MSG], &k, &v, 0);
}

/* Reports a decoding failure (PT_E*) or an LMDB failure (which fails the turn). */
static int
read_fail(spool_t *s, int rc, const char *id, pt_error_t *err)
{
    if (rc == MDB_NOTFOUND)
        return pt_error_set(err, PT_ENOTFOUND, "messageId", "%s: not in the spool", id);
    if (rc < 0 && rc > PT_ELAST)
        return pt_error_set(err, rc, s->dir, "message %s: bad lifecycle record", id);
    return fail_turn(s, rc, err, "reading a lifecycle");
}

static int
queue_put(spool_t *s, MDB_txn *txn, const spool_msg_t *m, uint64_t qseq, int64_t now)
{
    size_t idl = strlen(m->message_id);
    uint8_t key[8];
    bytes_be64_put(key, qseq);
    MDB_val k = {8, key}, v = {QREC_HDR + idl + m->len, NULL};
    int rc = mdb_put(txn, s->dbi[SDB_QUEUE], &k, &v, MDB_APPEND | MDB_RESERVE);
    if (rc != 0)
        return rc;
    uint8_t *p = v.mv_data;
    memset(p, 0, QREC_HDR);
    p[0] = SPOOL_FORMAT;
    p[1] = (uint8_t)idl;
    if (s->stage_live) {
        p[2] = QREC_STAGED;
        bytes_le_put(p + 4, s->stage, 4);
    }
    bytes_le_put(p + 8, (uint64_t)now, 8);
    memcpy(p + QREC_HDR, m->message_id, idl);
    memcpy(p + QREC_HDR + idl, m->data, m->len);
    return 0;
}

int
spool_put(spool_t *s, const spool_msg_t *m, spool_put_result_t *res, pt_error_t *err)
{
    *res = (spool_put_result_t){.state = SPOOL_SPOOLED};
    int rc = check_msg(m, err);
    MDB_txn *txn;
    if (rc == 0)
        rc = urgent_wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    lrec_t r = {0};
    if (m->hash != NULL)
        memcpy(r.hash, m->hash, PT_SPOOL_HASH_LEN);
    else
        spool_content_hash(m->data, m->len, r.hash);
    lrec_t old;
    read_tick(s);
    rc = lrec_get(s, txn, m->message_id, &old);
    if (rc == 0) {
        if (sodium_memcmp(old.hash, r.hash, PT_SPOOL_HASH_LEN) != 0)
            return pt_error_set(err, PT_EDUPCONFLICT, "messageId",
                                "%s: already spooled with other content", m->message_id);
        *res = (spool_put_result_t){.duplicate = true, .state = old.state, .seq = old.seq};
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return read_fail(s, rc, m->message_id, err);
    if (!has_room(s, txn, m->len + LREC_HDR + 2 * PT_MESSAGE_ID_MAX))
        return pt_error_set(err, PT_EJOURNALFULL, s->dir,
                            "the spool reached its maximum size (%zu bytes)", s->map_max);
    int64_t now = pt_clock_wall_ms();
    r.state = SPOOL_SPOOLED;
    r.source = (uint8_t)m->source;
    r.qseq = s->txn_next_qseq;
    r.spooled_at = now;
    snprintf(r.type, sizeof r.type, "%s", m->msg_type ? m->msg_type : "");
    rc = queue_put(s, txn, m, r.qseq, now);
    if (rc == 0)
        rc = lrec_put(s, txn, m->message_id, &r);
    s->turn_bytes += m->len + LREC_HDR + 2 * PT_MESSAGE_ID_MAX;
    if (rc != 0) {
        s->grow_extra = 2 * s->turn_bytes;
        return fail_turn(s, rc, err, "spooling a message");
    }
    s->txn_next_qseq++;
    return 0;
}

/* Decodes a queue record into e (borrowed from the map). */
static int
qrec_decode(const MDB_val *k, const MDB_val *v, spool_entry_t *e, char id[PT_MESSAGE_ID_MAX + 1])
{
    const uint8_t *p = v->mv_data;
    if (k->mv_size != 8 || v->mv_size < QREC_HDR)
        return PT_ECORRUPT;
    if (p[0] != SPOOL_FORMAT)
        return PT_EVERSION;
    size_t idl = p[1];
    if (idl == 0 || idl > PT_MESSAGE_ID_MAX || v->mv_size <= QREC_HDR + idl)
        return PT_ECORRUPT;
    memcpy(id, p + QREC_HDR, idl);
    id[idl] = '\0';
    *e = (spool_entry_t){.qseq = bytes_be64_get(k->mv_data),
                         .message_id = id,
                         .data = p + QREC_HDR + idl,
                         .len = v->mv_size - QREC_HDR - idl,
                         .spooled_at_ms = (int64_t)bytes_le_get(p + 8, 8)};
    return 0;
}

typedef struct listing {
    int64_t now, next_due;
    size_t max, n;
    spool_send_fn fn;
    void *arg;
    int stop; /* fn's non-zero value */
} listing_t;

/* Whether a queue record was spooled under the pending stage (never sent before the
 * stage is finished: it may yet be rolled back). */
static bool
qrec_held(const spool_t *s, uint64_t q, const MDB_val *v)
{
    const uint8_t *p = v->mv_data;
    return s->stage != 0 && v->mv_size >= QREC_HDR && (p[2] & QREC_STAGED) &&
           bytes_le_get(p + 4, 4) == s->stage && q >= s->stage_first;
}

/* One queue entry of spool_next_to_send: 0, or a PT_E* / LMDB code for a bad entry. */
static int
list_one(spool_t *s, MDB_txn *txn, const MDB_val *k, const MDB_val *v, listing_t *l)
{
    char id[PT_MESSAGE_ID_MAX + 1];
    spool_entry_t e;
    uint64_t q = k->mv_size == 8 ? bytes_be64_get(k->mv_data) : 0;
    if (q >= s->next_qseq) /* spooled by the open turn: sent once it is durable */
        return 0;
    if (spool_in_flight(s, q) || qrec_held(s, q, v))
        return 0;
    int rc = qrec_decode(k, v, &e, id);
    lrec_t r;
    if (rc == 0)
        rc = lrec_get(s, txn, id, &r);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? PT_ECORRUPT : rc;
    if (r.next_attempt > l->now) {
        if (l->next_due == 0 || r.next_attempt < l->next_due)
            l->next_due = r.next_attempt;
        return 0;
    }
    e.attempts = r.attempts;
    l->n++;
    l->stop = l->fn(l->arg, &e);
    return 0;
}

int
spool_next_to_send(spool_t *s, int64_t now_ms, size_t max, spool_send_fn fn, void *arg,
                   int64_t *next_due_ms, pt_error_t *err)
{
    listing_t l = {.now = now_ms, .max = max, .fn = fn, .arg = arg};
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    int rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_open(txn, s->dbi[SDB_QUEUE], &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && l.stop == 0 && l.n < l.max) {
        rc = list_one(s, txn, &k, &v, &l);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rend(s, txn);
    if (next_due_ms != NULL)
        *next_due_ms = l.next_due;
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc < 0 && rc > PT_ELAST)
        return pt_error_set(err, rc, s->dir, "the send queue has a bad record");
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "listing the send queue");
    return l.stop;
}

/* Reads the lifecycle of id for an update; NOTFOUND and bad records reported. */
static int
update_begin(spool_t *s, const char *id, MDB_txn **txn, lrec_t *r, pt_error_t *err)
{
    if (!id_valid(id))
        return pt_error_set(err, PT_EINVALID, "messageId", "not a valid message id");
    int rc = wtxn(s, txn, err);
    if (rc != 0)
        return rc;
    rc = lrec_get(s, *txn, id, r);
    return rc ? read_fail(s, rc, id, err) : 0;
}

/* The message leaves the send queue, finished at `at` (indexed for the purge). */
static int
finish(spool_t *s, MDB_txn *txn, const char *id, lrec_t *r, int64_t at)
{
    uint8_t qk[8], fk[FIN_KEY_MAX], one = SPOOL_FORMAT;
    bytes_be64_put(qk, r->qseq);
    MDB_val k = {8, qk}, v = {1, &one};
    int rc = mdb_del(txn, s->dbi[SDB_QUEUE], &k, NULL);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    flight_remove(s, r->qseq);
    r->finished_at = at;
    r->next_attempt = 0;
    size_t idl = strlen(id);
    bytes_be64_put(fk, (uint64_t)at);
    memcpy(fk + 8, id, idl);
    k = (MDB_val){8 + idl, fk};
    if (rc == 0)
        rc = mdb_put(txn, s->dbi[SDB_FIN], &k, &v, 0);
    if (rc == 0)
        rc = lrec_put(s, txn, id, r);
    return rc;
}

int
spool_accepted(spool_t *s, const char *id, uint64_t seq, int64_t at_ms, pt_error_t *err)
{
    MDB_txn *txn;
    lrec_t r;
    int rc = update_begin(s, id, &txn, &r, err);
    if (rc != 0 || r.state == SPOOL_ACCEPTED)
        return rc;
    if (r.state == SPOOL_REJECTED)
        return pt_error_set(err, PT_EINVALID, "messageId", "%s: already rejected", id);
    r.state = SPOOL_ACCEPTED;
    r.seq = seq;
    rc = finish(s, txn, id, &r, at_ms);
    return rc ? fail_turn(s, rc, err, "recording a PublishAck") : 0;
}

int
spool_retry(spool_t *s, const char *id, int64_t next_attempt_ms, pt_error_t *err)
{
    MDB_txn *txn;
    lrec_t r;
    int rc = update_begin(s, id, &txn, &r, err);
    if (rc != 0)
        return rc;
    if (r.state != SPOOL_SPOOLED)
        return pt_error_set(err, PT_EINVALID, "messageId", "%s: already %s", id,
                            state_name(r.state));
    flight_remove(s, r.qseq);
    r.attempts++;
    r.next_attempt = next_attempt_ms;
    rc = lrec_put(s, txn, id, &r);
    return rc ? fail_turn(s, rc, err, "recording a retry") : 0;
}

int
spool_rejected(spool_t *s, const char *id, uint32_t code, const char *reason,
               const char *field_path, int64_t at_ms, pt_error_t *err)
{
    MDB_txn *txn;
    lrec_t r;
    int rc = update_begin(s, id, &txn, &r, err);
    if (rc != 0 || r.state == SPOOL_REJECTED)
        return rc;
    if (r.state == SPOOL_ACCEPTED)
        return pt_error_set(err, PT_EINVALID, "messageId", "%s: already accepted", id);
    r.state = SPOOL_REJECTED;
    r.nack_code = code;
    utf8_truncate(r.reason, sizeof r.reason, reason ? reason : "", SIZE_MAX);
    utf8_truncate(r.path, sizeof r.path, field_path ? field_path : "", SIZE_MAX);
    rc = finish(s, txn, id, &r, at_ms);
    if (rc == 0)
        rc = meta_add(s, txn, "rejected", 1);
    return rc ? fail_turn(s, rc, err, "recording a final Nack") : 0;
}

/* ---- lifecycle ---- */

static size_t
rcpt_key(uint8_t *key, const char *id, const char *recipient)
{
    size_t idl = strlen(id), rl = recipient ? strlen(recipient) : 0;
    memcpy(key, id, idl);
    key[idl] = '\0';
    if (rl)
        memcpy(key + idl + 1, recipient, rl);
    return idl + 1 + rl;
}

static int
rcpt_decode(const MDB_val *k, size_t prefix, const MDB_val *v, spool_recipient_t *out)
{
    const uint8_t *p = v->mv_data;
    size_t pl = k->mv_size - prefix;
    if (v->mv_size < RREC_HDR || pl == 0 || pl > PT_PARTNER_ID_MAX)
        return PT_ECORRUPT;
    if (p[0] != SPOOL_FORMAT)
        return PT_EVERSION;
    size_t rl = bytes_le_get(p + 2, 2);
    if (rl > PT_SPOOL_RCPT_REASON_MAX || v->mv_size != RREC_HDR + rl)
        return PT_ECORRUPT;
    memcpy(out->partner, (const uint8_t *)k->mv_data + prefix, pl);
    out->partner[pl] = '\0';
    out->delivered_at_ms = (int64_t)bytes_le_get(p + 8, 8);
    out->acknowledged_at_ms = (int64_t)bytes_le_get(p + 16, 8);
    out->dead_lettered_at_ms = (int64_t)bytes_le_get(p + 24, 8);
    memcpy(out->reason, p + RREC_HDR, rl);
    out->reason[rl] = '\0';
    return 0;
}

static int
rcpt_put(spool_t *s, MDB_txn *txn, const MDB_val *k, const spool_recipient_t *r)
{
    size_t rl = strlen(r->reason);
    uint8_t buf[RREC_HDR + PT_SPOOL_RCPT_REASON_MAX];
    memset(buf, 0, RREC_HDR);
    buf[0] = SPOOL_FORMAT;
    bytes_le_put(buf + 2, rl, 2);
    bytes_le_put(buf + 8, (uint64_t)r->delivered_at_ms, 8);
    bytes_le_put(buf + 16, (uint64_t)r->acknowledged_at_ms, 8);
    bytes_le_put(buf + 24, (uint64_t)r->dead_lettered_at_ms, 8);
    memcpy(buf + RREC_HDR, r->reason, rl);
    MDB_val v = {RREC_HDR + rl, buf};
    return mdb_put(txn, s->dbi[SDB_RCPT], (MDB_val *)k, &v, 0);
}

static void
rcpt_apply(spool_recipient_t *r, spool_receipt_kind_t kind, int64_t at, const char *reason)
{
    int64_t *slot = kind == SPOOL_RCPT_DELIVERED      ? &r->delivered_at_ms
                    : kind == SPOOL_RCPT_ACKNOWLEDGED ? &r->acknowledged_at_ms
                                                      : &r->dead_lettered_at_ms;
    if (*slot == 0)
        *slot = at;
    if (reason != NULL && reason[0] != '\0')
        utf8_truncate(r->reason, sizeof r->reason, reason, SIZE_MAX);
}

int
spool_receipt(spool_t *s, const char *id, const char *recipient, spool_receipt_kind_t kind,
              int64_t at_ms, const char *reason, pt_error_t *err)
{
    if (recipient == NULL || !validate_is_partner_id(recipient))
        return pt_error_set(err, PT_EINVALID, "recipient", "must be 1 to 32 of a-z, 0-9 and _");
    if (kind < SPOOL_RCPT_DELIVERED || kind > SPOOL_RCPT_DEAD_LETTERED)
        return pt_error_set(err, PT_EINVALID, "kind", "unknown receipt kind %d", (int)kind);
    MDB_txn *txn;
    lrec_t lr;
    int rc = update_begin(s, id, &txn, &lr, err);
    if (rc != 0)
        return rc;
    uint8_t key[PT_MESSAGE_ID_MAX + 1 + PT_PARTNER_ID_MAX];
    size_t prefix = strlen(id) + 1;
    MDB_val k = {rcpt_key(key, id, recipient), key}, v;
    spool_recipient_t r = {0};
    rc = mdb_get(txn, s->dbi[SDB_RCPT], &k, &v);
    if (rc == 0 && (rc = rcpt_decode(&k, prefix, &v, &r)) != 0)
        return pt_error_set(err, rc, s->dir, "message %s: bad receipt record", id);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail_turn(s, rc, err, "reading a receipt");
    rcpt_apply(&r, kind, at_ms, reason);
    rc = rcpt_put(s, txn, &k, &r);
    return rc ? fail_turn(s, rc, err, "recording a receipt") : 0;
}

static void
lifecycle_fill(spool_lifecycle_t *out, const char *id, const lrec_t *r)
{
    memset(out, 0, sizeof *out);
    snprintf(out->message_id, sizeof out->message_id, "%s", id);
    memcpy(out->msg_type, r->type, sizeof out->msg_type);
    out->source = (spool_source_t)r->source;
    out->state = (spool_state_t)r->state;
    out->spooled_at_ms = r->spooled_at;
    out->attempts = r->attempts;
    out->next_attempt_ms = r->next_attempt;
    out->seq = r->seq;
    out->finished_at_ms = r->finished_at;
    out->nack_code = r->nack_code;
    memcpy(out->reason, r->reason, sizeof out->reason);
    memcpy(out->field_path, r->path, sizeof out->field_path);
}

static int
lifecycle_rcpts(spool_t *s, MDB_txn *txn, spool_lifecycle_t *out)
{
    uint8_t key[PT_MESSAGE_ID_MAX + 1];
    size_t prefix = rcpt_key(key, out->message_id, NULL);
    MDB_cursor *cur = NULL;
    MDB_val k = {prefix, key}, v;
    int rc = mdb_cursor_open(txn, s->dbi[SDB_RCPT], &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size > prefix && memcmp(k.mv_data, key, prefix) == 0 &&
           out->n_recipients < PT_RECIPIENTS_MAX) {
        rc = rcpt_decode(&k, prefix, &v, &out->recipients[out->n_recipients]);
        if (rc == 0) {
            out->n_recipients++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
spool_lifecycle(spool_t *s, const char *id, spool_lifecycle_t *out, pt_error_t *err)
{
    if (!id_valid(id))
        return pt_error_set(err, PT_EINVALID, "messageId", "not a valid message id");
    MDB_txn *txn;
    int rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    lrec_t r;
    rc = lrec_get(s, txn, id, &r);
    if (rc == 0) {
        lifecycle_fill(out, id, &r);
        rc = lifecycle_rcpts(s, txn, out);
    }
    rend(s, txn);
    if (rc == MDB_NOTFOUND)
        return pt_error_set(err, PT_ENOTFOUND, "messageId", "%s: not in the spool", id);
    if (rc < 0 && rc > PT_ELAST)
        return pt_error_set(err, rc, s->dir, "message %s: bad record", id);
    return rc ? lmdbx_fail(err, rc, s->dir, "reading a lifecycle") : 0;
}

/* "2026-12-02T00:50:50.123Z" */
static json_t *
json_time(int64_t ms)
{
    char buf[40];
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    if (ms < 0 || gmtime_r(&sec, &tm) == NULL)
        return json_null();
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    return json_string(buf);
}

static const char *
nack_name(uint32_t code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&ptibus__v1__nack_code__descriptor, (int)code);
    return v ? v->name : NULL;
}

static json_t *
recipient_json(const spool_recipient_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "partner", json_string(r->partner));
    if (r->delivered_at_ms)
        json_object_set_new(o, "deliveredAt", json_time(r->delivered_at_ms));
    if (r->acknowledged_at_ms)
        json_object_set_new(o, "acknowledgedAt", json_time(r->acknowledged_at_ms));
    if (r->dead_lettered_at_ms)
        json_object_set_new(o, "deadLetteredAt", json_time(r->dead_lettered_at_ms));
    if (r->reason[0])
        json_object_set_new(o, "reason", json_string(r->reason));
    return o;
}

static json_t *
outcome_json(const spool_lifecycle_t *lc)
{
    json_t *o = json_object();
    json_object_set_new(o, "at", json_time(lc->finished_at_ms));
    if (lc->state == SPOOL_ACCEPTED) {
        char seq[24];
        snprintf(seq, sizeof seq, "%llu", (unsigned long long)lc->seq);
        json_object_set_new(o, "seq", json_string(seq)); /* uint64: a string, as proto3 JSON */
        return o;
    }
    const char *name = nack_name(lc->nack_code);
    json_object_set_new(o, "code", name ? json_string(name) : json_integer(lc->nack_code));
    json_object_set_new(o, "reason", json_string(lc->reason));
    if (lc->field_path[0])
        json_object_set_new(o, "fieldPath", json_string(lc->field_path));
    return o;
}

json_t *
spool_lifecycle_json(const spool_lifecycle_t *lc)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "messageId", json_string(lc->message_id));
    if (lc->msg_type[0])
        json_object_set_new(o, "type", json_string(lc->msg_type));
    json_object_set_new(o, "source", json_string(lc->source == SPOOL_SRC_FILE ? "file" : "http"));
    json_object_set_new(o, "state", json_string(state_name(lc->state)));
    json_object_set_new(o, "spooledAt", json_time(lc->spooled_at_ms));
    json_object_set_new(o, "attempts", json_integer(lc->attempts));
    if (lc->state == SPOOL_SPOOLED && lc->next_attempt_ms)
        json_object_set_new(o, "nextAttemptAt", json_time(lc->next_attempt_ms));
    if (lc->state != SPOOL_SPOOLED)
        json_object_set_new(o, lc->state == SPOOL_ACCEPTED ? "accepted" : "rejected",
                            outcome_json(lc));
    json_t *a = json_array();
    for (size_t i = 0; i < lc->n_recipients; i++)
        json_array_append_new(a, recipient_json(&lc->recipients[i]));
    json_object_set_new(o, "recipients", a);
    return o;
}

/* ---- purge ---- */

static int
purge_rcpts(spool_t *s, MDB_txn *txn, const char *id)
{
    uint8_t key[PT_MESSAGE_ID_MAX + 1];
    size_t prefix = rcpt_key(key, id, NULL);
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi[SDB_RCPT], &cur);
    while (rc == 0) {
        k = (MDB_val){prefix, key};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && (k.mv_size <= prefix || memcmp(k.mv_data, key, prefix) != 0))
            rc = MDB_NOTFOUND;
        if (rc == 0)
            rc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Removes one finished lifecycle (fk: its "finished" key). */
static int
purge_one(spool_t *s, MDB_txn *txn, MDB_cursor *fin, const MDB_val *fk)
{
    char id[PT_MESSAGE_ID_MAX + 1];
    size_t idl = fk->mv_size - 8;
    if (fk->mv_size <= 8 || idl > PT_MESSAGE_ID_MAX)
        return mdb_cursor_del(fin, 0); /* not ours: drop the index entry only */
    memcpy(id, (const uint8_t *)fk->mv_data + 8, idl);
    id[idl] = '\0';
    lrec_t r;
    int rc = lrec_get(s, txn, id, &r);
    if (rc == 0 && r.state == SPOOL_REJECTED)
        rc = meta_add(s, txn, "rejected", -1);
    if (rc == 0 || rc == MDB_NOTFOUND || (rc < 0 && rc > PT_ELAST)) {
        MDB_val k = {idl, id};
        rc = mdb_del(txn, s->dbi[SDB_MSG], &k, NULL);
    }
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = purge_rcpts(s, txn, id);
    if (rc == 0)
        rc = mdb_cursor_del(fin, 0);
    return rc;
}

/* Inbound marks are in seq order, which is the order they were handed over: the purge
 * stops at the first one younger than the cutoff. */
static int
purge_inbound(spool_t *s, MDB_txn *txn, int64_t cutoff, size_t max)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi[SDB_INB], &cur);
    for (size_t n = 0; rc == 0 && n < max; n++) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && v.mv_size == IREC_LEN &&
            (int64_t)bytes_le_get((const uint8_t *)v.mv_data + 8, 8) >= cutoff)
            rc = MDB_NOTFOUND;
        if (rc == 0)
            rc = mdb_cursor_del(cur, 0);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int
spool_purge(spool_t *s, int64_t now_ms, size_t max, size_t *removed, pt_error_t *err)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    int64_t cutoff = now_ms - s->retention_ms;
    int rc = wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    cur = NULL;
    rc = mdb_cursor_open(txn, s->dbi[SDB_FIN], &cur);
    while (rc == 0 && n < max) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && (k.mv_size < 8 || (int64_t)bytes_be64_get(k.mv_data) >= cutoff))
            rc = MDB_NOTFOUND;
        if (rc == 0 && (rc = purge_one(s, txn, cur, &k)) == 0)
            n++;
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (rc == 0)
        rc = purge_inbound(s, txn, cutoff, max);
    if (removed != NULL)
        *removed = n;
    return rc ? fail_turn(s, rc, err, "purging the lifecycles") : 0;
}

/* ---- inbound ---- */

int
spool_inbound_seen(spool_t *s, uint64_t seq, bool *seen, pt_error_t *err)
{
    MDB_txn *txn;
    *seen = false;
    int rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    uint8_t key[8];
    bytes_be64_put(key, seq);
    MDB_val k = {8, key}, v;
    rc = mdb_get(txn, s->dbi[SDB_INB], &k, &v);
    rend(s, txn);
    *seen = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return lmdbx_fail(err, rc, s->dir, "reading an inbound mark");
    return 0;
}

int
spool_inbound_mark(spool_t *s, uint64_t seq, int64_t at_ms, pt_error_t *err)
{
    MDB_txn *txn;
    int rc = urgent_wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    uint8_t key[8], val[IREC_LEN] = {SPOOL_FORMAT};
    bytes_be64_put(key, seq);
    bytes_le_put(val + 8, (uint64_t)at_ms, 8);
    MDB_val k = {8, key}, v = {IREC_LEN, val};
    rc = mdb_put(txn, s->dbi[SDB_INB], &k, &v, 0);
    return rc ? fail_turn(s, rc, err, "marking an inbound seq") : 0;
}

/* ---- key-value namespaces ---- */

/* ns NUL key into buf; 0 or PT_EINVALID. */
static int
kv_key(uint8_t buf[KV_KEY_MAX], const char *ns, const void *key, size_t klen, size_t *len,
       pt_error_t *err)
{
    size_t nl = ns ? strlen(ns) : 0;
    bool ok = nl >= 1 && nl <= PT_SPOOL_NS_MAX;
    for (size_t i = 0; ok && i < nl; i++)
        ok = (ns[i] >= 'a' && ns[i] <= 'z') || (ns[i] >= '0' && ns[i] <= '9') || ns[i] == '_';
    if (!ok)
        return pt_error_set(err, PT_EINVALID, "namespace", "must be 1 to %d of a-z, 0-9 and _",
                            PT_SPOOL_NS_MAX);
    if (klen > PT_SPOOL_KEY_MAX || (klen > 0 && key == NULL))
        return pt_error_set(err, PT_EINVALID, "key", "longer than %d bytes", PT_SPOOL_KEY_MAX);
    memcpy(buf, ns, nl);
    buf[nl] = '\0';
    if (klen)
        memcpy(buf + nl + 1, key, klen);
    *len = nl + 1 + klen;
    return 0;
}

/* The value a reader sees in a key-value record: 1 with *val and *vlen (borrowed from
 * v), 0 when the record stands for an absent key (deleted by a stage that stands, or
 * first written by a stage that does not), or PT_ECORRUPT. A staged record's new value
 * stands unless its stage is pending and not live (to be rolled back). */
static int
kv_visible(const spool_t *s, const MDB_val *v, const uint8_t **val, size_t *vlen)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size >= 1 && p[0] == SPOOL_FORMAT) {
        *val = p + 1, *vlen = v->mv_size - 1;
        return 1;
    }
    if (v->mv_size < KV_STAGED_HDR || p[0] != KV_STAGED)
        return PT_ECORRUPT;
    size_t nl = bytes_le_get(p + 6, 4);
    if (nl > v->mv_size - KV_STAGED_HDR)
        return PT_ECORRUPT;
    bool undone = s->stage != 0 && !s->stage_live && bytes_le_get(p + 2, 4) == s->stage;
    if (!undone && (p[1] & KV_NEW_DELETED))
        return 0;
    if (!undone) {
        *val = p + KV_STAGED_HDR, *vlen = nl;
        return 1;
    }
    if (!(p[1] & KV_HAD_OLD))
        return 0;
    *val = p + KV_STAGED_HDR + nl, *vlen = v->mv_size - KV_STAGED_HDR - nl;
    return 1;
}

/* The value a staged write replaces: the record's own old value when this stage wrote it
 * already, else what a reader sees now. Copied (the put may move it); *old NULL when the
 * key had none. Returns 0, -ENOMEM, PT_ECORRUPT or an LMDB code. */
static int
kv_replaced(spool_t *s, MDB_txn *txn, MDB_val *k, uint8_t **old, size_t *ol)
{
    MDB_val cur;
    const uint8_t *o = NULL;
    *old = NULL, *ol = 0;
    int rc = mdb_get(txn, s->dbi[SDB_KV], k, &cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    const uint8_t *p = cur.mv_data;
    int vis;
    if (cur.mv_size >= KV_STAGED_HDR && p[0] == KV_STAGED && bytes_le_get(p + 2, 4) == s->stage) {
        size_t nl = bytes_le_get(p + 6, 4);
        if (nl > cur.mv_size - KV_STAGED_HDR)
            return PT_ECORRUPT;
        vis = (p[1] & KV_HAD_OLD) != 0;
        o = p + KV_STAGED_HDR + nl, *ol = cur.mv_size - KV_STAGED_HDR - nl;
    } else if ((vis = kv_visible(s, &cur, &o, ol)) < 0) {
        return vis;
    }
    if (vis == 0)
        return *ol = 0, 0;
    if ((*old = malloc(*ol ? *ol : 1)) == NULL)
        return -ENOMEM;
    memcpy(*old, o, *ol);
    return 0;
}

/* Writes key -> val (or a deletion when del) in the turn: a plain record, or under a live
 * stage a staged one that keeps the value it replaced. */
static int
kv_write(spool_t *s, MDB_txn *txn, MDB_val *k, const void *val, size_t vlen, bool del)
{
    if (!s->stage_live && del)
        return mdb_del(txn, s->dbi[SDB_KV], k, NULL);
    uint8_t *old = NULL;
    size_t ol = 0;
    int rc = s->stage_live ? kv_replaced(s, txn, k, &old, &ol) : 0;
    if (rc != 0)
        return rc;
    size_t nl = del ? 0 : vlen, hdr = s->stage_live ? KV_STAGED_HDR : 1;
    MDB_val v = {hdr + nl + (old ? ol : 0), NULL};
    rc = mdb_put(txn, s->dbi[SDB_KV], k, &v, MDB_RESERVE);
    if (rc == 0) {
        uint8_t *p = v.mv_data;
        p[0] = s->stage_live ? KV_STAGED : SPOOL_FORMAT;
        if (s->stage_live) {
            p[1] = (uint8_t)((del ? KV_NEW_DELETED : 0) | (old ? KV_HAD_OLD : 0));
            bytes_le_put(p + 2, s->stage, 4);
            bytes_le_put(p + 6, nl, 4);
        }
        if (nl)
            memcpy(p + hdr, val, nl);
        if (old != NULL && ol)
            memcpy(p + hdr + nl, old, ol);
    }
    free(old);
    return rc;
}

int
spool_kv_get(spool_t *s, const char *ns, const void *key, size_t klen, uint8_t **val, size_t *vlen,
             pt_error_t *err)
{
    uint8_t kb[KV_KEY_MAX];
    size_t kl;
    MDB_txn *txn;
    *val = NULL;
    *vlen = 0;
    int rc = kv_key(kb, ns, key, klen, &kl, err);
    if (rc == 0)
        rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    MDB_val k = {kl, kb}, v;
    const uint8_t *p = NULL;
    size_t n = 0;
    int m = mdb_get(txn, s->dbi[SDB_KV], &k, &v);
    int vis = m == 0 ? kv_visible(s, &v, &p, &n) : 0;
    if (vis < 0)
        rc = pt_error_set(err, PT_ECORRUPT, ns, "bad key-value record");
    else if (m == MDB_NOTFOUND || (m == 0 && vis == 0))
        rc = pt_error_set(err, PT_ENOTFOUND, ns, "no such key");
    else if (m != 0)
        rc = lmdbx_fail(err, m, s->dir, "reading a key");
    else if ((*val = malloc(n ? n : 1)) == NULL)
        rc = pt_error_set(err, -ENOMEM, ns, "out of memory");
    if (rc == 0) {
        *vlen = n;
        memcpy(*val, p, n);
    }
    rend(s, txn);
    return rc;
}

int
spool_kv_put(spool_t *s, const char *ns, const void *key, size_t klen, const void *val, size_t vlen,
             pt_error_t *err)
{
    uint8_t kb[KV_KEY_MAX];
    size_t kl;
    MDB_txn *txn;
    int rc = kv_key(kb, ns, key, klen, &kl, err);
    if (rc == 0)
        rc = urgent_wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    if (!has_room(s, txn, 2 * vlen + kl))
        return pt_error_set(err, PT_EJOURNALFULL, s->dir,
                            "the spool reached its maximum size (%zu bytes)", s->map_max);
    MDB_val k = {kl, kb};
    rc = kv_write(s, txn, &k, val, vlen, false);
    if (rc == -ENOMEM || rc == PT_ECORRUPT)
        return pt_error_set(err, rc, ns, "writing a key: %s", pt_strerror(rc));
    return rc ? fail_turn(s, rc, err, "writing a key") : 0;
}

int
spool_kv_del(spool_t *s, const char *ns, const void *key, size_t klen, pt_error_t *err)
{
    uint8_t kb[KV_KEY_MAX];
    size_t kl;
    MDB_txn *txn;
    int rc = kv_key(kb, ns, key, klen, &kl, err);
    if (rc == 0)
        rc = urgent_wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    MDB_val k = {kl, kb}, v;
    const uint8_t *p;
    size_t n;
    int m = mdb_get(txn, s->dbi[SDB_KV], &k, &v);
    int vis = m == 0 ? kv_visible(s, &v, &p, &n) : 0;
    if (m != 0 && m != MDB_NOTFOUND)
        return fail_turn(s, m, err, "deleting a key");
    if (vis < 0)
        return pt_error_set(err, PT_ECORRUPT, ns, "bad key-value record");
    if (vis == 0 && (m == MDB_NOTFOUND || s->stage_live))
        return pt_error_set(err, PT_ENOTFOUND, ns, "no such key");
    rc = kv_write(s, txn, &k, NULL, 0, true); /* outside a stage it also drops a tombstone */
    if (rc == -ENOMEM || rc == PT_ECORRUPT)
        return pt_error_set(err, rc, ns, "deleting a key: %s", pt_strerror(rc));
    if (rc != 0)
        return fail_turn(s, rc, err, "deleting a key");
    return vis == 0 ? pt_error_set(err, PT_ENOTFOUND, ns, "no such key") : 0;
}

int
spool_kv_iterate(spool_t *s, const char *ns, spool_kv_fn fn, void *arg, pt_error_t *err)
{
    uint8_t kb[KV_KEY_MAX];
    size_t prefix;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    int rc = kv_key(kb, ns, NULL, 0, &prefix, err);
    if (rc == 0)
        rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    MDB_val k = {prefix, kb}, v;
    int m = mdb_cursor_open(txn, s->dbi[SDB_KV], &cur);
    if (m == 0)
        m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (m == 0 && rc == 0 && k.mv_size >= prefix && memcmp(k.mv_data, kb, prefix) == 0) {
        const uint8_t *p;
        size_t n;
        int vis = kv_visible(s, &v, &p, &n);
        if (vis < 0) {
            rc = pt_error_set(err, PT_ECORRUPT, ns, "bad key-value record");
            break;
        }
        if (vis > 0)
            rc = fn(arg, (const uint8_t *)k.mv_data + prefix, k.mv_size - prefix, p, n);
        read_tick(s);
        if (rc == 0)
            m = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rend(s, txn);
    if (m != 0 && m != MDB_NOTFOUND)
        return lmdbx_fail(err, m, s->dir, "iterating keys");
    return rc;
}

/* ---- staged files ---- */

bool
spool_stage_pending(const spool_t *s)
{
    return s->stage != 0;
}

int
spool_stage_begin(spool_t *s, pt_error_t *err)
{
    if (s->stage != 0)
        return pt_error_set(err, -EBUSY, s->dir, "stage %u is still to roll back", s->stage);
    MDB_txn *txn;
    int rc = wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    uint64_t next = 1;
    rc = meta_get_u64(s, txn, "next_stage", &next);
    if (rc == MDB_NOTFOUND || next == 0 || next > UINT32_MAX)
        next = 1, rc = rc == MDB_NOTFOUND ? 0 : rc;
    uint8_t rec[STAGE_REC_LEN] = {SPOOL_FORMAT};
    bytes_le_put(rec + 4, next, 4);
    bytes_le_put(rec + 8, s->txn_next_qseq, 8);
    MDB_val k = {4, "open"}, v = {STAGE_REC_LEN, rec};
    if (rc == 0)
        rc = meta_put_u64(s, txn, "next_stage", next + 1);
    if (rc == 0)
        rc = mdb_put(txn, s->dbi[SDB_STAGE], &k, &v, 0);
    if (rc != 0)
        return fail_turn(s, rc, err, "beginning a staged file");
    s->stage = (uint32_t)next;
    s->stage_first = s->txn_next_qseq;
    s->stage_live = s->stage_begun_turn = true;
    s->rb_qseq = 0, s->rb_klen = 0, s->rb_kv = false;
    return 0;
}

/* Deletes the "open" stage record in the turn: the stage is resolved once it commits. */
static int
stage_resolve(spool_t *s, MDB_txn *txn, pt_error_t *err, const char *what)
{
    MDB_val k = {4, "open"};
    int rc = mdb_del(txn, s->dbi[SDB_STAGE], &k, NULL);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return fail_turn(s, rc, err, what);
    s->stage_finish_turn = true;
    return 0;
}

int
spool_stage_finish(spool_t *s, pt_error_t *err)
{
    if (s->stage == 0 || !s->stage_live)
        return pt_error_set(err, PT_ENOTFOUND, s->dir, "no staged file is open");
    MDB_txn *txn;
    int rc = wtxn(s, &txn, err);
    return rc ? rc : stage_resolve(s, txn, err, "finishing a staged file");
}

/* Deletes at most max messages of the stage (queue entry and lifecycle), from the queue
 * position reached; *n counts them. 1 when max was reached, 0 at the end, or LMDB's. */
static int
rollback_queue(spool_t *s, MDB_txn *txn, size_t max, size_t *n)
{
    uint8_t key[8];
    uint64_t from = s->rb_qseq > s->stage_first ? s->rb_qseq : s->stage_first;
    bytes_be64_put(key, from);
    MDB_val k = {8, key}, v;
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, s->dbi[SDB_QUEUE], &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && *n < max) {
        uint64_t q = k.mv_size == 8 ? bytes_be64_get(k.mv_data) : 0;
        char id[PT_MESSAGE_ID_MAX + 1];
        spool_entry_t e;
        s->rb_qseq = q;
        if (qrec_held(s, q, &v) && qrec_decode(&k, &v, &e, id) == 0) {
            MDB_val ik = {strlen(id), id};
            rc = mdb_del(txn, s->dbi[SDB_MSG], &ik, NULL);
            if (rc == 0 || rc == MDB_NOTFOUND)
                rc = mdb_cursor_del(cur, 0);
            (*n)++;
        }
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc == 0 ? 1 : rc;
}

/* The next key-value record of the stage from the key reached: 1 with its key in rb_key
 * and what to restore (*old, copied, NULL: delete the key), 0 when none is left. */
static int
rollback_kv_next(spool_t *s, MDB_txn *txn, uint8_t **old, size_t *ol)
{
    MDB_cursor *cur = NULL;
    MDB_val k = {s->rb_klen, s->rb_key}, v;
    int rc = mdb_cursor_open(txn, s->dbi[SDB_KV], &cur);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k, &v, s->rb_klen ? MDB_SET_RANGE : MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const uint8_t *p = v.mv_data;
        if (v.mv_size < KV_STAGED_HDR || p[0] != KV_STAGED || bytes_le_get(p + 2, 4) != s->stage ||
            k.mv_size > KV_KEY_MAX)
            continue;
        memcpy(s->rb_key, k.mv_data, k.mv_size);
        s->rb_klen = k.mv_size;
        const uint8_t *o;
        int vis = kv_visible(s, &v, &o, ol); /* the stage is not live: the old value */
        *old = vis > 0 ? malloc(*ol ? *ol : 1) : NULL;
        if (vis > 0 && *old == NULL)
            rc = -ENOMEM;
        else if (vis > 0)
            memcpy(*old, o, *ol);
        break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc == 0 ? 1 : rc;
}

/* Undoes at most max key-value writes of the stage; as rollback_queue. */
static int
rollback_kv(spool_t *s, MDB_txn *txn, size_t max, size_t *n)
{
    int found = 1;
    while (found == 1 && *n < max) {
        uint8_t *old = NULL;
        size_t ol = 0;
        int rc = 0;
        found = rollback_kv_next(s, txn, &old, &ol);
        MDB_val k = {s->rb_klen, s->rb_key}, v = {ol + 1, NULL};
        if (found == 1 && old == NULL)
            rc = mdb_del(txn, s->dbi[SDB_KV], &k, NULL);
        else if (found == 1 && (rc = mdb_put(txn, s->dbi[SDB_KV], &k, &v, MDB_RESERVE)) == 0) {
            *(uint8_t *)v.mv_data = SPOOL_FORMAT;
            memcpy((uint8_t *)v.mv_data + 1, old, ol);
        }
        free(old);
        if (rc != 0)
            return rc;
        if (found == 1)
            (*n)++;
    }
    return found;
}

int
spool_stage_rollback(spool_t *s, size_t max, pt_error_t *err)
{
    if (s->stage == 0)
        return 0;
    MDB_txn *txn;
    int rc = wtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    s->stage_live = false; /* from now on reads see what the stage replaced */
    size_t n = 0;
    if (!s->rb_kv && (rc = rollback_queue(s, txn, max, &n)) == 0)
        s->rb_kv = true;
    if (s->rb_kv && rc == 0)
        rc = rollback_kv(s, txn, max, &n);
    if (rc == -ENOMEM)
        return pt_error_set(err, rc, s->dir, "rolling back a staged file: out of memory");
    if (rc < 0 || rc > 1)
        return fail_turn(s, rc, err, "rolling back a staged file");
    return rc == 1 ? 1 : stage_resolve(s, txn, err, "rolling back a staged file");
}

/* A stage left by a crash (or a failed rollback) is rolled back before the spool is
 * used: nothing of a file that was not finished is ever sent. */
static int
stage_recover(spool_t *s, pt_error_t *err)
{
    MDB_txn *txn;
    MDB_val k = {4, "open"}, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "reading the stages");
    rc = mdb_get(txn, s->dbi[SDB_STAGE], &k, &v);
    if (rc == 0 && (v.mv_size != STAGE_REC_LEN || *(uint8_t *)v.mv_data != SPOOL_FORMAT))
        rc = MDB_CORRUPTED;
    if (rc == 0) {
        s->stage = (uint32_t)bytes_le_get((const uint8_t *)v.mv_data + 4, 4);
        s->stage_first = bytes_le_get((const uint8_t *)v.mv_data + 8, 8);
    }
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdbx_fail(err, rc, s->dir, "reading the open stage");
    pt_log_warn("spool.stage", "stage %u (a file spooled in chunks) was not finished: rolled back",
                s->stage);
    while ((rc = spool_stage_rollback(s, 4096, err)) == 1)
        if ((rc = spool_commit(s, err)) != 0)
            return rc;
    return rc == 0 ? spool_commit(s, err) : rc;
}

/* ---- stats and helpers ---- */

static int64_t
oldest_spooled(spool_t *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    char id[PT_MESSAGE_ID_MAX + 1];
    spool_entry_t e;
    if (mdb_cursor_open(txn, s->dbi[SDB_QUEUE], &cur) != 0)
        return 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0)
        rc = qrec_decode(&k, &v, &e, id);
    mdb_cursor_close(cur);
    return rc == 0 ? e.spooled_at_ms : 0;
}

int
spool_stats(spool_t *s, int64_t now_ms, spool_stats_t *out, pt_error_t *err)
{
    MDB_txn *txn;
    memset(out, 0, sizeof *out);
    int rc = rtxn(s, &txn, err);
    if (rc != 0)
        return rc;
    MDB_stat st;
    if (mdb_stat(txn, s->dbi[SDB_QUEUE], &st) == 0)
        out->depth = st.ms_entries;
    if (mdb_stat(txn, s->dbi[SDB_MSG], &st) == 0)
        out->lifecycles = st.ms_entries;
    int64_t oldest = out->depth ? oldest_spooled(s, txn) : 0;
    out->oldest_age_ms = oldest && now_ms > oldest ? now_ms - oldest : 0;
    rc = meta_get_u64(s, txn, "rejected", &out->rejected);
    rend(s, txn);
    out->in_flight = s->n_flight;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    out->used_bytes = (info.me_last_pgno + 1) * s->psize;
    out->map_size = info.me_mapsize;
    out->map_max = s->map_max;
    return rc && rc != MDB_NOTFOUND ? lmdbx_fail(err, rc, s->dir, "reading the meta") : 0;
}

bool
spool_writable(spool_t *s)
{
    if (s->failed)
        return false;
    if (s->txn != NULL)
        return has_room(s, s->txn, 0);
    MDB_txn *txn;
    release_limbo(s);
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize(s->env, 0) == 0)
        rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return false;
    bool ok = has_room(s, txn, 0);
    mdb_txn_abort(txn);
    return ok;
}

void
spool_content_hash(const void *data, size_t len, uint8_t out[PT_SPOOL_HASH_LEN])
{
    crypto_generichash(out, PT_SPOOL_HASH_LEN, data, len, NULL, 0);
}

void
spool_derive_id(const uint8_t content_hash[PT_SPOOL_HASH_LEN], uint64_t index,
                char out[PT_SPOOL_DERIVED_ID_LEN + 1])
{
    static const char tag[] = "ptibus-fd-v1";
    uint8_t in[sizeof tag - 1 + PT_SPOOL_HASH_LEN + 8], h[32];
    memcpy(in, tag, sizeof tag - 1);
    memcpy(in + sizeof tag - 1, content_hash, PT_SPOOL_HASH_LEN);
    bytes_be64_put(in + sizeof tag - 1 + PT_SPOOL_HASH_LEN, index);
    crypto_generichash(h, sizeof h, in, sizeof in, NULL, 0);
    memcpy(out, "fd-", 3);
    sodium_bin2hex(out + 3, PT_SPOOL_DERIVED_ID_LEN - 3 + 1, h, (PT_SPOOL_DERIVED_ID_LEN - 3) / 2);
}
