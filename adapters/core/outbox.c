/* outbox: one atomic file per delivery, deterministic names (see outbox.h). */
#include "outbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "atomicfile.h"
#include "flusher.h"
#include "codec.h"
#include "log.h"
#include "pjson.h"

struct outbox {
    char *dir;
    char *rdir; /* receipts/, NULL when off */
    mode_t file_mode;
    size_t max_envelope;
    atomicfile_batch_t *batch; /* batch_sync: the files staged since the last outbox_sync */
    int sticky;                /* batch_sync: an early commit failed; outbox_sync says so */
    flusher_t *flusher;        /* async_sync: syncs the batches handed over on its thread */
    atomicfile_batch_t *spare; /* async_sync: the batch the last collect gave back */
};

/* What place() found at a name. */
enum { PLACE_WRITTEN = 0, PLACE_ALREADY = 1 };

/* "<20 digits>-<id as %XX at worst>" and its NUL: room left for ".replay-9999.json". */
#define PT_OUTBOX_BASE_MAX (20 + 1 + 3 * PT_MESSAGE_ID_MAX + 1)

/* The part of a file that says which delivery (or receipt) it is: what a write again
 * must find equal. The attempt and receivedAt of a delivery describe its first hand-over
 * and are kept as first written; a receipt sent again may carry a later checkpoint. */
typedef json_t *(*identity_fn)(const json_t *doc);

static int
check_dir(const char *dir, mode_t mode, pt_error_t *err)
{
    if (mkdir(dir, mode) == 0) {
        if (chmod(dir, mode) != 0)
            return pt_error_set(err, PT_ECONFIG, dir, "cannot set its mode: %s", strerror(errno));
    } else if (errno != EEXIST) {
        return pt_error_set(err, PT_ECONFIG, dir,
                            "cannot create the folder: %s (create it, or fix its parent)",
                            strerror(errno));
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return pt_error_set(err, PT_ECONFIG, dir, "cannot stat: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return pt_error_set(err, PT_ECONFIG, dir, "not a folder: remove it or choose another");
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        return pt_error_set(err, PT_ECONFIG, dir,
                            "writable by others (anyone could plant files): chmod o-w it");
    if (access(dir, W_OK | X_OK) != 0)
        return pt_error_set(err, PT_ECONFIG, dir,
                            "not writable by this user: chown it to the adapter's user");
    return 0;
}

static bool
is_our_tmp(const char *name)
{
    size_t n = strlen(name);
    return n > 29 && name[0] >= '0' && name[0] <= '9' && strcmp(name + n - 9, ".json.tmp") == 0;
}

/* Removes the tmp files that a write killed before its rename left (never a final file). */
static void
sweep_tmp(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    bool removed = false;
    while ((e = readdir(d)) != NULL)
        if (is_our_tmp(e->d_name) && unlinkat(dirfd(d), e->d_name, 0) == 0)
            removed = true;
    if (removed && fsync(dirfd(d)) != 0)
        pt_log_warn("outbox", "%s: fsync after removing leftover tmp files: %s", dir,
                    strerror(errno));
    closedir(d);
}

static char *
join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

int
outbox_open(const outbox_options_t *opts, outbox_t **out, pt_error_t *err)
{
    *out = NULL;
    if (opts == NULL || opts->dir == NULL || opts->dir[0] == '\0')
        return pt_error_set(err, PT_ECONFIG, "outbox.dir", "required: the outbox folder");
    mode_t dmode = opts->dir_mode ? opts->dir_mode : PT_OUTBOX_DIR_MODE;
    outbox_t *o = calloc(1, sizeof *o);
    if (o == NULL)
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    o->file_mode = opts->file_mode ? opts->file_mode : PT_OUTBOX_FILE_MODE;
    o->max_envelope = opts->max_envelope ? opts->max_envelope : PT_OUTBOX_MAX_ENVELOPE;
    o->dir = strdup(opts->dir);
    int rc = o->dir ? 0 : pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    if (rc == 0 && (opts->batch_sync || opts->async_sync) && atomicfile_batch_new(&o->batch) != 0)
        rc = pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    if (rc == 0 && opts->async_sync)
        rc = flusher_start(opts->flushed, opts->flushed_arg, &o->flusher, err);
    if (rc == 0)
        rc = check_dir(o->dir, dmode, err);
    if (rc == 0 && opts->receipts) {
        o->rdir = join(o->dir, PT_OUTBOX_RECEIPTS_DIR);
        rc = o->rdir ? check_dir(o->rdir, dmode, err)
                     : pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    }
    if (rc != 0) {
        outbox_close(&o);
        return rc;
    }
    sweep_tmp(o->dir);
    if (o->rdir)
        sweep_tmp(o->rdir);
    *out = o;
    return 0;
}

void
outbox_close(outbox_t **o)
{
    if (o == NULL || *o == NULL)
        return;
    outbox_t *ob = *o;
    flusher_stop(&ob->flusher); /* the batch in flight finishes */
    pt_error_t err;
    if (ob->batch != NULL && atomicfile_batch_count(ob->batch) > 0 &&
        atomicfile_batch_commit(ob->batch, &err) != 0) /* unacked: the broker redelivers */
        pt_log_warn("outbox", "%s: the files staged at the stop were not kept: %s", ob->dir,
                    err.msg);
    atomicfile_batch_free(&ob->batch);
    atomicfile_batch_free(&ob->spare);
    free((*o)->dir);
    free((*o)->rdir);
    free(*o);
    *o = NULL;
}

int
outbox_sanitize(const char *id, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-';
        if (n + (keep ? 1 : 3) >= cap)
            return -1;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    if (n >= cap)
        return -1;
    out[n] = '\0';
    return (int)n;
}

/* ---- rendering ---- */

static void
format_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static json_t *
delivery_facts(const outbox_delivery_t *d)
{
    char seq[24];
    snprintf(seq, sizeof seq, "%" PRIu64, d->seq);
    json_t *f = json_object();
    if (f == NULL)
        return NULL;
    int bad = json_object_set_new(f, "seq", json_string(seq));
    bad |= json_object_set_new(f, "sender", json_string(d->sender ? d->sender : ""));
    if (d->received_at_ms > 0) {
        char at[32];
        format_time(d->received_at_ms, at);
        bad |= json_object_set_new(f, "receivedAt", json_string(at));
    }
    bad |= json_object_set_new(f, "attempt", json_integer(d->attempt));
    bad |= json_object_set_new(f, "replay", json_boolean(d->replay));
    if (bad) {
        json_decref(f);
        return NULL;
    }
    return f;
}

/* Serialises doc (taken) as the file's text: indented, keys in insertion order, a final
 * newline, so that one delivery always gives the same bytes. */
static int
dump_doc(json_t *doc, char **text, size_t *len, pt_error_t *err)
{
    char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_ENSURE_ASCII) : NULL;
    json_decref(doc);
    if (s == NULL)
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory rendering the file");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (t == NULL) {
        free(s);
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory rendering the file");
    }
    t[n] = '\n';
    t[n + 1] = '\0';
    *text = t;
    *len = n + 1;
    return 0;
}

static json_t *
new_doc(const char *key, json_t *value)
{
    json_t *doc = json_object();
    if (doc == NULL || value == NULL ||
        json_object_set_new(doc, "formatVersion", json_integer(PT_OUTBOX_FORMAT_VERSION)) != 0) {
        json_decref(doc);
        json_decref(value);
        return NULL;
    }
    if (json_object_set_new(doc, key, value) != 0) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int
outbox_delivery_json(const outbox_delivery_t *d, size_t max_envelope, json_t **out, pt_error_t *err)
{
    *out = NULL;
    ProtobufCMessage *m = NULL;
    int rc = codec_unpack(&ptibus__v1__envelope__descriptor, d->envelope, d->envelope_len,
                          max_envelope ? max_envelope : PT_OUTBOX_MAX_ENVELOPE, &m, err);
    json_t *env = NULL;
    if (rc == 0)
        rc = pjson_from_message(m, &env, err);
    codec_free(&m);
    if (rc != 0)
        return rc;
    json_t *doc = json_object();
    json_t *facts = delivery_facts(d);
    if (doc == NULL || facts == NULL ||
        json_object_set_new(doc, "formatVersion", json_integer(PT_OUTBOX_FORMAT_VERSION)) ||
        json_object_set_new(doc, "delivery", facts) || json_object_set_new(doc, "envelope", env)) {
        json_decref(doc);
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory rendering the file");
    }
    *out = doc;
    return 0;
}

int
outbox_render(const outbox_delivery_t *d, size_t max_envelope, char **text, size_t *len,
              pt_error_t *err)
{
    json_t *doc = NULL;
    int rc = outbox_delivery_json(d, max_envelope, &doc, err);
    return rc != 0 ? rc : dump_doc(doc, text, len, err);
}

/* ---- placing a file ---- */

/* Reads the file at path if there is one: 0 with *buf (caller frees), -ENOENT, PT_EDUPCONFLICT
 * when something that is not a regular file (a symbolic link...) holds the name, or -errno. */
static int
read_existing(const char *path, size_t max, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return errno == ELOOP ? PT_EDUPCONFLICT : -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && (!S_ISREG(st.st_mode) || (size_t)st.st_size > max))
        rc = PT_EDUPCONFLICT;
    char *b = rc == 0 ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == 0 && b == NULL)
        rc = -ENOMEM;
    size_t n = 0;
    while (rc == 0 && n < (size_t)st.st_size) {
        ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            rc = r < 0 ? -errno : PT_EDUPCONFLICT; /* shrank under us: not ours */
        else
            n += (size_t)r;
    }
    close(fd);
    if (rc != 0) {
        free(b);
        return rc;
    }
    *buf = b;
    *len = n;
    return 0;
}

static bool
same_identity(const char *a, size_t alen, const char *b, size_t blen, identity_fn id)
{
    if (alen == blen && memcmp(a, b, alen) == 0)
        return true;
    json_t *ja = json_loadb(a, alen, JSON_REJECT_DUPLICATES, NULL);
    json_t *jb = json_loadb(b, blen, JSON_REJECT_DUPLICATES, NULL);
    json_t *ia = ja ? id(ja) : NULL;
    json_t *ib = jb ? id(jb) : NULL;
    bool same = ia != NULL && ib != NULL && json_equal(ia, ib);
    json_decref(ia);
    json_decref(ib);
    json_decref(ja);
    json_decref(jb);
    return same;
}

/* Stages a file in the batch, committing the batch first when it is full (its files then
 * appear before the spool's commit: a crash leaves them there unmarked, and the delivery
 * sent again finds them, PLACE_ALREADY). */
static int
stage(outbox_t *o, const char *path, const char *text, size_t len, pt_error_t *err)
{
    if (atomicfile_batch_count(o->batch) >= PT_OUTBOX_BATCH_MAX) {
        int rc = 0;
        if (o->flusher != NULL) { /* full while the previous one syncs: wait, hand it over */
            flusher_wait(o->flusher);
            outbox_collect(o, err);
            rc = outbox_flush(o, err);
        } else if ((rc = atomicfile_batch_commit(o->batch, err)) != 0) {
            o->sticky = rc; /* the files staged before are gone: the turn must fail */
        }
        if (rc != 0)
            return rc;
    }
    return atomicfile_batch_add(o->batch, path, text, len, o->file_mode, err);
}

/* Reads what is at path: on disk, or staged (in the staging batch, or in the batch the
 * flusher syncs: its tmp, or its final name once renamed). *gen gets the generation the
 * content's durability waits for (0: durable now). -ENOENT when neither. */
static int
find_existing(outbox_t *o, const char *path, size_t max, char **buf, size_t *len, uint64_t *gen)
{
    const atomicfile_batch_t *fb = o->flusher ? flusher_batch(o->flusher) : NULL;
    const char *tmp;
    *gen = o->flusher ? flusher_busy_gen(o->flusher) : 0; /* on disk: maybe renamed by it */
    int rc = read_existing(path, max, buf, len);
    if (rc == -ENOENT && o->batch != NULL && (tmp = atomicfile_batch_staged(o->batch, path))) {
        *gen = o->flusher ? flusher_next_gen(o->flusher) : 0;
        return read_existing(tmp, max, buf, len);
    }
    if (rc == -ENOENT && fb != NULL && (tmp = atomicfile_batch_staged(fb, path))) {
        rc = read_existing(tmp, max, buf, len);
        if (rc == -ENOENT) /* renamed meanwhile */
            rc = read_existing(path, max, buf, len);
    }
    return rc;
}

/* Writes text at dir/name unless the name is taken: PLACE_WRITTEN, PLACE_ALREADY (the
 * same identity is there), PT_EDUPCONFLICT (other content or not a regular file: left
 * untouched) or -errno (nothing new left behind). *gen: what the file's durability waits
 * for (flusher_state; 0 = nothing). */
static int
place(outbox_t *o, const char *dir, const char *name, const char *text, size_t len, identity_fn id,
      uint64_t *gen, pt_error_t *err)
{
    char *path = join(dir, name);
    if (path == NULL)
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    char *old = NULL;
    size_t olen = 0;
    int rc = find_existing(o, path, len * 2 + 65536, &old, &olen, gen);
    if (rc == -ENOENT) {
        rc = o->batch != NULL ? stage(o, path, text, len, err)
                              : atomicfile_write(path, text, len, o->file_mode, err);
        *gen = o->flusher != NULL ? flusher_next_gen(o->flusher) : 0;
        rc = rc == 0 ? PLACE_WRITTEN : rc;
    } else if (rc == 0) {
        rc = same_identity(old, olen, text, len, id) ? PLACE_ALREADY : PT_EDUPCONFLICT;
    } else if (rc != PT_EDUPCONFLICT) {
        pt_error_set(err, rc, path, "cannot read the file already there: %s", pt_strerror(rc));
    }
    if (rc == PT_EDUPCONFLICT)
        pt_error_set(err, rc, path,
                     "the name is taken by other content or by something not a regular file;"
                     " it was left untouched: move it away, then replay the message");
    free(old);
    free(path);
    return rc;
}

static json_t *
delivery_identity(const json_t *doc)
{
    const json_t *f = json_object_get(doc, "delivery");
    json_t *i = json_object();
    if (i == NULL)
        return NULL;
    json_object_set(i, "formatVersion", json_object_get(doc, "formatVersion"));
    json_object_set(i, "seq", json_object_get(f, "seq"));
    json_object_set(i, "sender", json_object_get(f, "sender"));
    json_object_set(i, "replay", json_object_get(f, "replay"));
    json_object_set(i, "envelope", json_object_get(doc, "envelope"));
    return i;
}

static int
finish(int rc, outbox_result_t *res)
{
    if (rc == PLACE_WRITTEN || rc == PLACE_ALREADY) {
        res->status = rc == PLACE_WRITTEN ? OUTBOX_WRITTEN : OUTBOX_ALREADY;
        return 0;
    }
    /* The message or the name is at fault: no retry can help. I/O and memory: later. */
    bool final = rc <= PT_EBASE && rc != PT_EINTERNAL;
    res->status = final ? OUTBOX_REFUSED : OUTBOX_RETRY;
    return rc;
}

/* Whether dir/name is taken, on disk or staged in the batch. */
static bool
exists(const outbox_t *o, const char *dir, const char *name)
{
    struct stat st;
    char *p = join(dir, name);
    const atomicfile_batch_t *fb = o->flusher ? flusher_batch(o->flusher) : NULL;
    bool there = p != NULL && (lstat(p, &st) == 0 ||
                               (o->batch != NULL && atomicfile_batch_staged(o->batch, p)) ||
                               (fb != NULL && atomicfile_batch_staged(fb, p)));
    free(p);
    return there;
}

/* A replay goes to the next free .replay-<n>; a redelivered one first looks at the
 * latest, which its own first attempt may have written before a crash. */
static int
place_replay(outbox_t *o, const outbox_delivery_t *d, const char *base, const char *text,
             size_t len, outbox_result_t *res, pt_error_t *err)
{
    unsigned n = 0;
    char name[PT_OUTBOX_NAME_MAX + 1];
    do {
        snprintf(name, sizeof name, "%.213s.replay-%u.json", base, ++n);
    } while (n <= PT_OUTBOX_REPLAYS_MAX && exists(o, o->dir, name));
    if (n > PT_OUTBOX_REPLAYS_MAX)
        return pt_error_set(err, PT_ETOOLARGE, base, "more than %d replay files of this seq",
                            PT_OUTBOX_REPLAYS_MAX);
    if (n > 1 && (d->redelivery || d->attempt > 1)) {
        snprintf(res->name, sizeof res->name, "%.213s.replay-%u.json", base, n - 1);
        pt_error_t e2;
        if (place(o, o->dir, res->name, text, len, delivery_identity, &res->gen, &e2) ==
            PLACE_ALREADY)
            return PLACE_ALREADY;
    }
    snprintf(res->name, sizeof res->name, "%s", name);
    return place(o, o->dir, res->name, text, len, delivery_identity, &res->gen, err);
}

int
outbox_write(outbox_t *o, const outbox_delivery_t *d, outbox_result_t *res, pt_error_t *err)
{
    *res = (outbox_result_t){0};
    pt_error_clear(err);
    char *text = NULL;
    size_t len = 0;
    char id[3 * PT_MESSAGE_ID_MAX + 1], base[PT_OUTBOX_BASE_MAX];
    const char *mid = d->message_id;
    int rc = 0;
    if (mid == NULL || mid[0] == '\0' || outbox_sanitize(mid, id, sizeof id) < 0)
        rc = pt_error_set(err, PT_EINVALID, "deliver.message_id", "empty or over %d bytes",
                          PT_MESSAGE_ID_MAX);
    if (rc == 0)
        rc = outbox_render(d, o->max_envelope, &text, &len, err);
    if (rc == 0) {
        snprintf(base, sizeof base, "%020" PRIu64 "-%s", d->seq, id);
        if (d->replay) {
            rc = place_replay(o, d, base, text, len, res, err);
        } else {
            snprintf(res->name, sizeof res->name, "%s.json", base);
            rc = place(o, o->dir, res->name, text, len, delivery_identity, &res->gen, err);
        }
    }
    free(text);
    return finish(rc, res);
}

outbox_delivery_t
outbox_delivery_of(const Ptibus__V1__Deliver *dv, int64_t received_at_ms)
{
    return (outbox_delivery_t){.seq = dv->seq,
                               .attempt = dv->attempt,
                               .redelivery = dv->redelivery,
                               .replay = dv->replay,
                               .message_id = dv->message_id,
                               .sender = dv->sender,
                               .envelope = dv->envelope.data,
                               .envelope_len = dv->envelope.len,
                               .received_at_ms = received_at_ms};
}

int
outbox_handle(outbox_t *o, spool_t *s, const outbox_delivery_t *d, int64_t now_ms,
              outbox_result_t *res, pt_error_t *err)
{
    *res = (outbox_result_t){0};
    bool seen = false;
    int rc = d->replay ? 0 : spool_inbound_seen(s, d->seq, &seen, err);
    if (rc == 0 && seen) {
        res->status = OUTBOX_SEEN;
        return 0;
    }
    if (rc == 0)
        rc = outbox_write(o, d, res, err);
    else
        res->status = OUTBOX_RETRY;
    if (rc == 0 && (rc = spool_inbound_mark(s, d->seq, now_ms, err)) != 0)
        res->status = OUTBOX_RETRY; /* the file is there: the redelivery finds it */
    return rc;
}

/* ---- receipts ---- */

static json_t *
receipt_identity(const json_t *doc)
{
    json_t *r = json_deep_copy(json_object_get(doc, "receipt"));
    if (r != NULL) {
        json_object_del(r, "journalSignedSeq");
        json_object_del(r, "journalSignedHead");
    }
    return r;
}

static const char *
kind_name(Ptibus__V1__ReceiptKind k)
{
    switch (k) {
    case PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_ACKNOWLEDGED:
        return "acknowledged";
    case PTIBUS__V1__RECEIPT_KIND__RECEIPT_KIND_DEAD_LETTERED:
        return "dead_lettered";
    default:
        return NULL;
    }
}

int
outbox_write_receipt(outbox_t *o, const Ptibus__V1__Receipt *r, outbox_result_t *res,
                     pt_error_t *err)
{
    *res = (outbox_result_t){0};
    pt_error_clear(err);
    if (o->rdir == NULL) {
        res->status = OUTBOX_SKIPPED;
        return 0;
    }
    char who[3 * PT_PARTNER_ID_MAX + 1];
    const char *kind = kind_name(r->kind);
    int rc = 0;
    if (kind == NULL)
        rc = pt_error_set(err, PT_EINVALID, "receipt.kind", "unknown kind %d", (int)r->kind);
    else if (r->recipient == NULL || r->recipient[0] == '\0' ||
             outbox_sanitize(r->recipient, who, sizeof who) < 0)
        rc = pt_error_set(err, PT_EINVALID, "receipt.recipient", "empty or too long");
    json_t *j = NULL;
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = pjson_from_message(&r->base, &j, err);
    if (rc == 0)
        rc = dump_doc(new_doc("receipt", j), &text, &len, err);
    if (rc == 0) {
        snprintf(res->name, sizeof res->name, "%020" PRIu64 "-%s-%s.json", r->seq, who, kind);
        rc = place(o, o->rdir, res->name, text, len, receipt_identity, &res->gen, err);
    }
    free(text);
    return finish(rc, res);
}

int
outbox_write_file(outbox_t *o, const char *name, const void *data, size_t len, uint64_t *gen,
                  pt_error_t *err)
{
    char *path = join(o->dir, name);
    if (path == NULL)
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    int rc = o->batch != NULL ? stage(o, path, data, len, err)
                              : atomicfile_write(path, data, len, o->file_mode, err);
    *gen = o->flusher != NULL ? flusher_next_gen(o->flusher) : 0;
    free(path);
    return rc;
}

size_t
outbox_staged(const outbox_t *o)
{
    return o->batch != NULL ? atomicfile_batch_count(o->batch) : 0;
}

int
outbox_sync(outbox_t *o, pt_error_t *err)
{
    if (o->batch == NULL)
        return 0;
    int rc = o->sticky;
    o->sticky = 0;
    if (rc != 0) {
        atomicfile_batch_discard(o->batch);
        return pt_error_set(err, rc, o->dir, "a batch of files was lost: %s", strerror(-rc));
    }
    return atomicfile_batch_commit(o->batch, err);
}

int
outbox_flush(outbox_t *o, pt_error_t *err)
{
    if (o->flusher == NULL)
        return outbox_sync(o, err);
    if (flusher_busy_gen(o->flusher) != 0 || atomicfile_batch_count(o->batch) == 0)
        return 0; /* the next one goes once the batch in flight is collected */
    if (o->spare == NULL && atomicfile_batch_new(&o->spare) != 0)
        return pt_error_set(err, -ENOMEM, "outbox", "out of memory");
    flusher_hand(o->flusher, o->batch);
    o->batch = o->spare;
    o->spare = NULL;
    return 0;
}

uint64_t
outbox_collect(outbox_t *o, pt_error_t *err)
{
    atomicfile_batch_t *b = NULL;
    uint64_t gen = o->flusher != NULL ? flusher_collect(o->flusher, &b, err) : 0;
    if (gen != 0 && o->spare == NULL)
        o->spare = b;
    else if (gen != 0)
        atomicfile_batch_free(&b);
    if (gen != 0 && flusher_state(o->flusher, gen) == FLUSHER_FAILED)
        pt_log_warn("outbox", "%s: a batch of files was not kept: %s", o->dir, err->msg);
    return gen;
}

bool
outbox_durable(const outbox_t *o, uint64_t gen, bool *failed)
{
    flusher_state_t st = o->flusher != NULL ? flusher_state(o->flusher, gen) : FLUSHER_DURABLE;
    *failed = st == FLUSHER_FAILED;
    return st == FLUSHER_DURABLE;
}

bool
outbox_flushing(const outbox_t *o)
{
    return o->flusher != NULL && flusher_busy_gen(o->flusher) != 0;
}
