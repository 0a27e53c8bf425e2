/* journal_meta: the meta database (format, last sequence and chain head, creation
 * time), written in each commit's transaction and read at open and by verify. */
#include <string.h>

#include <lmdb.h>
#include <sodium.h>

#include "journal_internal.h"

static int
meta_get(journal_t *j, MDB_txn *txn, const char *name, void *out, size_t len, pt_error_t *err)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, j->dbi[JDB_META], &k, &v);
    if (rc != 0)
        return rc == MDB_NOTFOUND ? PT_ENOTFOUND : lmdbx_fail(err, rc, j->dir, "reading meta");
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

/* The optional signed anchor (segment expiry). */
static int
read_anchor(journal_t *j, MDB_txn *txn, journal_meta_t *m, pt_error_t *err)
{
    MDB_val k = {6, "anchor"}, v;
    int rc = mdb_get(txn, j->dbi[JDB_META], &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return lmdbx_fail(err, rc, j->dir, "reading meta");
    if (journal_anchor_decode(v.mv_data, v.mv_size, &m->anchor, err) != 0)
        return pt_error_set(err, PT_ECORRUPT, j->dir, "meta anchor: malformed");
    m->has_anchor = true;
    return 0;
}

/* Meta integers are little-endian like record fields (bytes_le_*). */
int
jint_meta_read(journal_t *j, MDB_txn *txn, journal_meta_t *m, pt_error_t *err)
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
    uint8_t from[8] = {0};
    if (rc == 0 && bytes_le_get(fmt, 4) >= 2)
        rc = meta_get(j, txn, "format2_from", from, sizeof from, err);
    if (rc == PT_ENOTFOUND)
        return pt_error_set(err, PT_ECORRUPT, j->dir, "meta is incomplete");
    if (rc != 0)
        return rc;
    m->present = true;
    m->format = (uint32_t)(fmt[0] | fmt[1] << 8 | fmt[2] << 16 | (uint32_t)fmt[3] << 24);
    m->last_seq = bytes_le_get(last, 8);
    m->format2_from = bytes_le_get(from, 8);
    return read_anchor(j, txn, m, err);
}

int
jint_meta_write_head(journal_t *j, MDB_txn *txn, uint64_t last_seq, const uint8_t *head)
{
    uint8_t last[8];
    bytes_le_put(last, last_seq, 8);
    int rc = meta_put(j, txn, "last_seq", last, sizeof last);
    if (rc == 0)
        rc = meta_put(j, txn, "head", head, PT_JOURNAL_HASH_LEN);
    return rc;
}

static int
meta_put_format(journal_t *j, MDB_txn *txn, unsigned format, uint64_t format2_from)
{
    uint8_t fmt[4], from[8];
    bytes_le_put(fmt, format, 4);
    bytes_le_put(from, format2_from, 8);
    int rc = meta_put(j, txn, "format", fmt, sizeof fmt);
    if (rc == 0 && format >= 2)
        rc = meta_put(j, txn, "format2_from", from, sizeof from);
    return rc;
}

/* A new journal: format, creation time and the genesis head (32 zero bytes). */
int
jint_meta_init(journal_t *j, MDB_txn *txn)
{
    uint8_t created[8];
    uint8_t zero[PT_JOURNAL_HASH_LEN] = {0};
    bytes_le_put(created, (uint64_t)jint_now_ms(), 8);
    int rc = meta_put_format(j, txn, j->write_format, 1);
    if (rc == 0)
        rc = meta_put(j, txn, "created_ms", created, sizeof created);
    if (rc == 0)
        rc = jint_meta_write_head(j, txn, 0, zero);
    return rc;
}

int
jint_meta_upgrade(journal_t *j, MDB_txn *txn, uint64_t last_seq)
{
    return meta_put_format(j, txn, PT_JOURNAL_FORMAT, last_seq + 1);
}

unsigned
jint_format_of(const journal_meta_t *m, uint64_t seq)
{
    return m->format >= 2 && seq >= m->format2_from ? PT_JOURNAL_FORMAT : PT_JREC_FORMAT_V1;
}

int
jint_meta_get_u64(journal_t *j, MDB_txn *txn, const char *name, uint64_t *v, pt_error_t *err)
{
    uint8_t b[8];
    int rc = meta_get(j, txn, name, b, sizeof b, err);
    if (rc == 0)
        *v = bytes_le_get(b, 8);
    return rc;
}

int
jint_meta_put_u64(journal_t *j, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t b[8];
    bytes_le_put(b, v, 8);
    return meta_put(j, txn, name, b, sizeof b);
}

int
jint_meta_put_anchor(journal_t *j, MDB_txn *txn, const journal_checkpoint_rec_t *a)
{
    uint8_t v[PT_JCKP_LEN];
    journal_anchor_encode(a, v);
    return meta_put(j, txn, "anchor", v, sizeof v);
}

uint64_t
jint_first_seq(const journal_meta_t *m)
{
    return m->has_anchor ? m->anchor.seq + 1 : 1;
}
