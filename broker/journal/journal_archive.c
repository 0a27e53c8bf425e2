/* journal_archive: archives. An archive is a journal environment of its own (the same
 * files, databases and record bytes), holding the records of the live journal from its
 * first one up to a checkpoint, those checkpoints, the live anchor if there was one,
 * and the index entries of those records, with meta "archive" set: journal_open reads
 * it read-only like any journal (so journal-list and the look-ups work on it), and
 * journal_verify_ex verifies it alone. journal_archive_chains checks it against the
 * live journal it came from. See docs/journal.md ("Archives"). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal_internal.h"
#include "journal_record.h"

#define ARCHIVE_CHUNK 4096 /* records per write transaction of the archive */

/* The last record to archive: the last checkpoint at or before the last record whose
 * time is <= until_ms (0: none). */
static uint64_t
archive_end(journal_t *j, MDB_txn *txn, uint64_t first, uint64_t last, int64_t until_ms)
{
    uint64_t end = first - 1;
    for (uint64_t s = first; s <= last; s++) {
        journal_view_t v;
        if (jint_view_in_place(j, txn, s, &v, NULL) != 0 || v.time_ms > until_ms)
            break;
        end = s;
    }
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, end + 1);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    uint64_t a = 0;
    if (end < first || mdb_cursor_open(txn, j->dbi[JDB_CKPT], &cur) != 0)
        return 0;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    m = mdb_cursor_get(cur, &k, &v, m == 0 ? MDB_PREV : MDB_LAST);
    if (m == 0 && k.mv_size == SEQ_KEY_LEN)
        a = bytes_be64_get(k.mv_data);
    mdb_cursor_close(cur);
    return a >= first ? a : 0;
}

/* Copies every entry of db with key in [from, to] (be64 seq keys). */
static int
copy_seq_db(journal_t *src, MDB_txn *stxn, journal_txn_t *t, int db, uint64_t from, uint64_t to)
{
    MDB_cursor *cur;
    uint8_t key[SEQ_KEY_LEN];
    bytes_be64_put(key, from);
    MDB_val k = {SEQ_KEY_LEN, key}, v;
    int rc = mdb_cursor_open(stxn, src->dbi[db], &cur);
    if (rc != 0)
        return rc;
    int m = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; m == 0 && rc == 0 && k.mv_size == SEQ_KEY_LEN && bytes_be64_get(k.mv_data) <= to;
         m = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        rc = mdb_put(t->txn, t->j->dbi[db], &k, &v, db == JDB_CKPT ? 0 : MDB_APPEND);
    mdb_cursor_close(cur);
    return rc;
}

/* One record into the archive, with its dedup, message-id and partner entries. */
static int
copy_record(journal_t *src, MDB_txn *stxn, journal_txn_t *t, uint64_t s, pt_error_t *err)
{
    MDB_val v;
    journal_view_t view;
    uint8_t key[SEQ_KEY_LEN];
    int rc = jint_get_record(src, stxn, s, &v, err);
    if (rc == 0)
        rc = jint_decode_at(&v, s, &view, err);
    if (rc != 0)
        return rc;
    bytes_be64_put(key, s);
    MDB_val k = {SEQ_KEY_LEN, key};
    rc = mdb_put(t->txn, t->j->dbi[JDB_RECORDS], &k, &v, MDB_APPEND);
    journal_record_t rec = {.kind = view.kind,
                            .partner = view.partner,
                            .msg_type = view.msg_type,
                            .message_id = view.message_id};
    if (rc == 0)
        rc = jint_put_indexes(t, &rec, s, view.time_ms, view.payload_hash);
    if (rc != 0)
        return lmdbx_fail(err, rc, t->j->dir, "writing the archive");
    t->last_seq = s;
    memcpy(t->head, view.hash, PT_JOURNAL_HASH_LEN);
    return 0;
}

/* The merged person index entries of the archived records (a scan of by_person). */
static int
copy_persons(journal_t *src, MDB_txn *stxn, journal_txn_t *t, uint64_t from, uint64_t to)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(stxn, src->dbi[JDB_PERSON], &cur);
    if (rc != 0)
        return rc;
    int m = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; m == 0 && rc == 0; m = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        uint64_t s = v.mv_size == SEQ_KEY_LEN ? bytes_be64_get(v.mv_data) : 0;
        if (s >= from && s <= to)
            rc = mdb_put(t->txn, t->j->dbi[JDB_PERSON], &k, &v, 0);
    }
    mdb_cursor_close(cur);
    return rc;
}

/* Meta of the archive: the live journal's format and upgrade point, its anchor, and
 * "archive" (the live journal's creation is not known: the archive's own is kept). */
static int
archive_meta(journal_t *src, MDB_txn *stxn, journal_txn_t *t, const journal_meta_t *m)
{
    int rc = 0;
    if (m->format >= 2 && m->format2_from > 1)
        rc = jint_meta_upgrade(t->j, t->txn, m->format2_from - 1);
    if (rc == 0 && m->has_anchor) {
        rc = jint_meta_put_anchor(t->j, t->txn, &m->anchor);
        if (rc == 0)
            rc = copy_seq_db(src, stxn, t, JDB_CKPT, m->anchor.seq, m->anchor.seq);
    }
    if (rc == 0)
        rc = jint_meta_put_u64(t->j, t->txn, "archive", 1);
    return rc;
}

/* Records from..to into the archive, ARCHIVE_CHUNK per transaction. */
static int
copy_range(journal_t *src, MDB_txn *stxn, journal_t *dst, const journal_meta_t *m, uint64_t from,
           uint64_t to, pt_error_t *err)
{
    int rc = 0;
    for (uint64_t s = from; rc == 0 && s <= to;) {
        journal_txn_t *t;
        if ((rc = journal_begin(dst, &t, err)) != 0)
            return rc;
        if (s == from && (rc = archive_meta(src, stxn, t, m)) != 0)
            rc = lmdbx_fail(err, rc, dst->dir, "writing the archive's meta");
        uint64_t chunk_end = to - s >= ARCHIVE_CHUNK ? s + ARCHIVE_CHUNK - 1 : to;
        uint64_t chunk_from = s;
        for (; rc == 0 && s <= chunk_end; s++)
            rc = copy_record(src, stxn, t, s, err);
        int r = rc == 0 ? copy_seq_db(src, stxn, t, JDB_CKPT, chunk_from, chunk_end) : 0;
        if (r == 0 && rc == 0 && dst->have_person_new)
            r = copy_seq_db(src, stxn, t, JDB_PERSON_NEW, chunk_from, chunk_end);
        if (r == 0 && rc == 0 && s > to)
            r = copy_persons(src, stxn, t, from, to);
        if (r != 0)
            rc = lmdbx_fail(err, r, dst->dir, "writing the archive");
        if (rc != 0)
            journal_abort(&t);
        else
            rc = journal_commit(&t, err);
    }
    return rc;
}

static int
check_empty_target(const char *dir, pt_error_t *err)
{
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (stat(path, &st) == 0)
        return pt_error_set(err, -EEXIST, dir, "already holds a journal or an archive");
    return 0;
}

int
journal_archive(journal_t *src, int64_t until_ms, const char *dir, journal_archive_report_t *rep,
                pt_error_t *err)
{
    memset(rep, 0, sizeof *rep);
    MDB_txn *stxn;
    journal_meta_t m;
    journal_t *dst = NULL;
    int rc = check_empty_target(dir, err);
    if (rc == 0)
        rc = jint_read_begin(src, &stxn, err);
    if (rc != 0)
        return rc;
    rc = jint_meta_read(src, stxn, &m, err);
    uint64_t first = jint_first_seq(&m);
    uint64_t last = rc == 0 ? archive_end(src, stxn, first, m.last_seq, until_ms) : 0;
    if (rc == 0 && last == 0)
        rc = pt_error_set(err, PT_ENOTFOUND, src->dir,
                          "no signed checkpoint at or before that time: nothing to archive");
    journal_options_t o = {.dir = dir, .write_format = m.format >= 2 ? 0 : PT_JREC_FORMAT_V1};
    if (rc == 0)
        rc = journal_open(&o, &dst, err);
    if (rc == 0)
        rc = copy_range(src, stxn, dst, &m, first, last, err);
    mdb_txn_abort(stxn);
    journal_close(&dst);
    rep->first = first;
    rep->last = last;
    return rc;
}

/* The chain hash of record seq in j: its record's, or the anchor's when it was moved out. */
static int
hash_at(journal_t *j, uint64_t seq, uint8_t out[PT_JOURNAL_HASH_LEN], pt_error_t *err)
{
    if (j->have_anchor && seq == j->anchor.seq) {
        memcpy(out, j->anchor.hash, PT_JOURNAL_HASH_LEN);
        return 0;
    }
    journal_view_t v;
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = journal_get(j, seq, &v, &buf, &cap, err);
    if (rc == 0)
        memcpy(out, v.hash, PT_JOURNAL_HASH_LEN);
    free(buf);
    return rc;
}

int
journal_archive_chains(journal_t *archive, journal_t *live, pt_error_t *err)
{
    uint64_t a_first = journal_first_seq(archive), a_last = archive->last_seq;
    uint64_t boundary = journal_first_seq(live) - 1; /* the live anchor, 0 = none */
    /* The records both hold (or the live anchor) must carry the same hash. */
    uint64_t probe = boundary >= a_first - 1 && boundary <= a_last ? boundary : a_last;
    if (boundary > a_last)
        return pt_error_set(err, PT_ECORRUPT, NULL,
                            "the live journal starts after record %" PRIu64
                            ", the archive ends at %" PRIu64 ": records %" PRIu64 "..%" PRIu64
                            " are in neither (another archive?)",
                            boundary, a_last, a_last + 1, boundary);
    uint8_t ha[PT_JOURNAL_HASH_LEN], hl[PT_JOURNAL_HASH_LEN];
    int rc = hash_at(archive, probe == 0 ? a_last : probe, ha, err);
    if (rc == 0)
        rc = hash_at(live, probe == 0 ? a_last : probe, hl, err);
    if (rc == 0 && memcmp(ha, hl, PT_JOURNAL_HASH_LEN) != 0)
        rc = pt_error_set(err, PT_ECORRUPT, NULL,
                          "record %" PRIu64 ": the archive's hash differs from the live "
                          "journal's (not its predecessor, or altered)",
                          probe == 0 ? a_last : probe);
    return rc;
}

bool
journal_is_archive(const journal_t *j)
{
    return j->is_archive;
}
