/* filedrop: inbox -> processing -> done | failed (see filedrop.h and
 * docs/adapters/filedrop.md). */
#include "filedrop.h"

#include <dirent.h>
#include <fnmatch.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "atomicfile.h"
#include "clock.h"
#include "codec.h"
#include "log.h"
#include "pjson.h"
#include "utf8.h"
#include "validate.h"

#define FD_PATH_MAX 4096
#define FD_SUFFIX_TRIES 10000
#define FD_KICK_MS 20 /* an fs event is followed by a scan this much later (coalesced) */

static const char *const fd_subdirs[] = {"processing", "done", "failed"};
enum { FD_PROCESSING, FD_DONE, FD_FAILED, FD_NDIRS };

/* ---- decoding ---- */

/* The records of a file, or of its current chunk when flush is set: once chunk records
 * are in, flush takes them (and frees them), and the next ones are numbered on. */
struct filedrop_sink {
    filedrop_record_t *recs;
    size_t n, cap, max;
    size_t base;  /* index of recs[0] in the file */
    size_t chunk; /* flush when n reaches it */
    int (*flush)(void *arg, filedrop_sink_t *sink);
    void *flush_arg;
    pt_error_t warning; /* a native codec's remark on the whole file (msg "" if none) */
};

static int sink_add(filedrop_sink_t *sink, Ptibus__V1__Envelope *env, unsigned line,
                    unsigned column, const pt_error_t *rec_err);

int
filedrop_sink_record(filedrop_sink_t *sink, Ptibus__V1__Envelope *env, unsigned line,
                     unsigned column, const pt_error_t *rec_err)
{
    int rc = sink_add(sink, env, line, column, rec_err);
    if (rc == 0 && sink->flush != NULL && sink->n >= sink->chunk)
        rc = sink->flush(sink->flush_arg, sink);
    return rc;
}

static int
sink_add(filedrop_sink_t *sink, Ptibus__V1__Envelope *env, unsigned line, unsigned column,
         const pt_error_t *rec_err)
{
    if (sink->base + sink->n >= sink->max) {
        codec_free((ProtobufCMessage **)&env);
        return PT_ETOOLARGE;
    }
    if (sink->n == sink->cap) {
        size_t cap = sink->cap ? 2 * sink->cap : 16;
        filedrop_record_t *r = realloc(sink->recs, cap * sizeof *r);
        if (r == NULL) {
            codec_free((ProtobufCMessage **)&env);
            return -ENOMEM;
        }
        sink->recs = r;
        sink->cap = cap;
    }
    filedrop_record_t *r = &sink->recs[sink->n];
    memset(r, 0, sizeof *r);
    r->index = sink->base + sink->n++;
    r->line = line;
    r->column = column;
    if (rec_err != NULL) {
        codec_free((ProtobufCMessage **)&env);
        r->err = *rec_err;
        if (r->err.code == 0)
            r->err.code = PT_EMALFORMED;
    } else {
        r->env = env;
        r->outcome = PT_FILEDROP_SPOOLED; /* provisional: "good so far" */
    }
    return 0;
}

/* Cuts jansson's " near '<token>'" off: the token is input and may be personal data. */
static void
strip_near(char *text)
{
    char *near = strstr(text, " near ");
    if (near != NULL)
        *near = '\0';
}

/* A JSON syntax error: where (relative to the text parsed) and why, without the input. */
typedef struct json_syntax {
    unsigned line, column;
    char why[JSON_ERROR_TEXT_LENGTH];
} json_syntax_t;

/* Parses one JSON text. Returns 1 with *doc, or 0 with the syntax error in *syn. */
static int
json_text(const char *text, size_t len, json_t **doc, json_syntax_t *syn)
{
    json_error_t jerr;
    *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*doc != NULL)
        return 1;
    strip_near(jerr.text);
    syn->line = jerr.line > 0 ? (unsigned)jerr.line : 0;
    syn->column = jerr.column > 0 ? (unsigned)jerr.column : 0;
    snprintf(syn->why, sizeof syn->why, "%s", jerr.text);
    return 0;
}

/* A parsed JSON document to a record: an Envelope, or a mapping error with its path. */
static int
json_record(filedrop_sink_t *sink, json_t *doc, unsigned line)
{
    ProtobufCMessage *msg = NULL;
    pt_error_t rec_err;
    int rc = pjson_to_message(&ptibus__v1__envelope__descriptor, doc, &msg, &rec_err);
    json_decref(doc);
    if (rc != 0)
        return filedrop_sink_record(sink, NULL, line, 0, &rec_err);
    return filedrop_sink_record(sink, (Ptibus__V1__Envelope *)msg, line, 0, NULL);
}

static int
decode_json(const char *data, size_t len, filedrop_sink_t *sink, pt_error_t *err)
{
    json_t *doc;
    json_syntax_t syn;
    if (!json_text(data, len, &doc, &syn))
        return pt_error_set(err, PT_EMALFORMED, NULL, "not a JSON document: line %u column %u: %s",
                            syn.line, syn.column, syn.why);
    return json_record(sink, doc, 0); /* one document: its field path says where */
}

static bool
is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return false;
    return true;
}

/* One line of a JSON Lines file, "\r\n" or "\n" ended: a record, or a syntax error at
 * the line's number and column. Returns 1 when the line was JSON, 0 when not, or < 0. */
static int
jsonl_line(filedrop_sink_t *sink, const char *s, size_t n, unsigned lineno)
{
    json_t *doc;
    json_syntax_t syn;
    if (json_text(s, n, &doc, &syn)) {
        int rc = json_record(sink, doc, lineno);
        return rc < 0 ? rc : 1;
    }
    pt_error_t rec_err;
    pt_error_set(&rec_err, PT_EMALFORMED, NULL, "line %u column %u: not JSON: %s", lineno,
                 syn.column, syn.why);
    int rc = filedrop_sink_record(sink, NULL, lineno, syn.column, &rec_err);
    return rc < 0 ? rc : 0;
}

static int
decode_jsonl(const char *data, size_t len, filedrop_sink_t *sink, pt_error_t *err)
{
    size_t pos = 0, json_lines = 0, lines = 0;
    unsigned lineno = 0;
    while (pos < len) {
        const char *nl = memchr(data + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : len - pos;
        lineno++;
        if (!is_blank(data + pos, n)) {
            lines++;
            int rc = jsonl_line(sink, data + pos, n, lineno);
            if (rc < 0)
                return pt_error_set(err, rc, NULL, "line %u: %s", lineno, pt_strerror(rc));
            json_lines += (size_t)rc;
        }
        pos += n + (nl ? 1 : 0);
    }
    if (lines > 0 && json_lines == 0)
        return pt_error_set(err, PT_EMALFORMED, NULL,
                            "not JSON Lines: none of its %zu lines is a JSON object", lines);
    return 0;
}

const filedrop_codec_t filedrop_codec_json = {"json", ".json", decode_json};
const filedrop_codec_t filedrop_codec_jsonl = {"jsonl", ".jsonl", decode_jsonl};

/* Refuses bytes that are not UTF-8, saying where (line and byte in it). */
static int
check_utf8(const char *data, size_t len, pt_error_t *err)
{
    unsigned line = 1;
    size_t line_start = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = utf8_decode(data + i, len - i, &cp);
        if (k == 0)
            return pt_error_set(err, PT_EMALFORMED, NULL,
                                "not UTF-8 text: line %u byte %zu is not well-formed UTF-8", line,
                                i - line_start + 1);
        if (cp == '\n') {
            line++;
            line_start = i + 1;
        }
        i += (size_t)k;
    }
    return 0;
}

void
filedrop_records_free(filedrop_record_t **recs, size_t n)
{
    if (recs == NULL || *recs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        codec_free((ProtobufCMessage **)&(*recs)[i].env);
    free(*recs);
    *recs = NULL;
}

/* ---- native codecs ---- */

filedrop_codec_t
filedrop_codec_native(const pt_codec_ops_t *ops, const pt_codec_config_t *cfg)
{
    filedrop_codec_t c = {.name = ops->name, .native = ops};
    if (cfg != NULL)
        c.native_cfg = *cfg;
    return c;
}

/* A native record into the sink: an error as it is, an Envelope copied (pack, unpack). */
static int
native_record(void *ctx, const pt_record_t *rec)
{
    filedrop_sink_t *sink = ctx;
    if (rec->error != NULL) {
        pt_error_t e = {.code = PT_EMALFORMED};
        snprintf(e.path, sizeof e.path, "%s", rec->error->where);
        snprintf(e.msg, sizeof e.msg, "%s", rec->error->msg);
        return filedrop_sink_record(sink, NULL, (unsigned)rec->line, 0, &e);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    ProtobufCMessage *copy = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    int rc = codec_pack((const ProtobufCMessage *)rec->env, PT_FILEDROP_MAX_FILE, &buf, &len, &err);
    if (rc == 0)
        rc = codec_unpack(&ptibus__v1__envelope__descriptor, buf, len, len, &copy, &err);
    free(buf);
    if (rc != 0) {
        pt_error_t e = {.code = PT_EMALFORMED};
        snprintf(e.msg, sizeof e.msg, "the decoded record cannot be packed: %.400s", err.msg);
        return rc == -ENOMEM ? rc : filedrop_sink_record(sink, NULL, (unsigned)rec->line, 0, &e);
    }
    return filedrop_sink_record(sink, (Ptibus__V1__Envelope *)copy, (unsigned)rec->line, 0, NULL);
}

/* A memory file holding data (filedrop_decode's native codecs read a descriptor). */
static int
memory_fd(const char *data, size_t len, pt_error_t *err)
{
    int fd = memfd_create("ptibus-filedrop", MFD_CLOEXEC);
    if (fd < 0)
        return pt_error_set(err, -errno, NULL, "cannot make a memory file: %s", strerror(errno));
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            close(fd);
            return pt_error_set(err, -ENOMEM, NULL, "cannot fill a memory file");
        }
        off += (size_t)w;
    }
    lseek(fd, 0, SEEK_SET);
    return fd;
}

/* Runs a native codec over the file's descriptor (read from its current offset: the
 * codec streams it, the file is never held in memory). */
static int
native_decode(const filedrop_codec_t *codec, int fd, filedrop_sink_t *sink, pt_error_t *err)
{
    pt_codec_source_t src = {.fd = fd, .name = codec->name};
    pt_codec_outcome_t out;
    memset(&out, 0, sizeof out);
    int rc = codec->native->decode(&codec->native_cfg, &src, native_record, sink, &out);
    if (rc != 0 && rc != PT_ETOOLARGE && rc != -ENOMEM) {
        if (out.error.line > 0)
            pt_error_set(err, rc, out.error.where[0] ? out.error.where : NULL, "line %lu: %s",
                         out.error.line, out.error.msg[0] ? out.error.msg : pt_strerror(rc));
        else
            pt_error_set(err, rc, out.error.where[0] ? out.error.where : NULL, "%s",
                         out.error.msg[0] ? out.error.msg : pt_strerror(rc));
    }
    if (rc == 0 && out.warning.msg[0] != '\0') {
        sink->warning.code = 0;
        snprintf(sink->warning.path, sizeof sink->warning.path, "%s", out.warning.where);
        if (out.warning.line > 0)
            snprintf(sink->warning.msg, sizeof sink->warning.msg, "line %lu: %.480s",
                     out.warning.line, out.warning.msg);
        else
            snprintf(sink->warning.msg, sizeof sink->warning.msg, "%s", out.warning.msg);
    }
    return rc;
}

static bool
native_takes(const filedrop_codec_t *c, const char *name)
{
    for (size_t i = 0; c->native->patterns != NULL && c->native->patterns[i] != NULL; i++)
        if (fnmatch(c->native->patterns[i], name, 0) == 0)
            return true;
    return false;
}

/* The generic codecs' checks: a BOM is skipped, the file must not be blank and must be
 * UTF-8. */
static int
generic_decode(const filedrop_codec_t *codec, const char *data, size_t len, filedrop_sink_t *sink,
               pt_error_t *err)
{
    if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) { /* Windows tools write one */
        data += 3;
        len -= 3;
    }
    if (is_blank(data, len))
        return pt_error_set(err, PT_EMALFORMED, NULL, "the file is empty");
    int rc = check_utf8(data, len, err);
    return rc != 0 ? rc : codec->decode(data, len, sink, err);
}

/* Decodes into sink: a native codec from fd (fd < 0: from data, through a memory file),
 * a generic one from data. */
static int
run_codec(const filedrop_codec_t *codec, int fd, const char *data, size_t len,
          filedrop_sink_t *sink, pt_error_t *err)
{
    int rc;
    if (codec->native == NULL) {
        rc = generic_decode(codec, data, len, sink, err);
    } else if (fd >= 0) {
        rc = native_decode(codec, fd, sink, err);
    } else if ((rc = memory_fd(data, len, err)) >= 0) {
        int mfd = rc;
        rc = native_decode(codec, mfd, sink, err);
        close(mfd);
    }
    if (rc == PT_ETOOLARGE && sink->base + sink->n >= sink->max)
        pt_error_set(err, rc, NULL, "more than %zu records in one file", sink->max);
    return rc;
}

int
filedrop_decode(const filedrop_codec_t *codec, const char *data, size_t len, size_t max_records,
                filedrop_record_t **recs, size_t *n, pt_error_t *err)
{
    *recs = NULL;
    *n = 0;
    filedrop_sink_t sink = {.max = max_records ? max_records : PT_FILEDROP_MAX_RECORDS};
    int rc = run_codec(codec, -1, data, len, &sink, err);
    if (rc != 0) {
        filedrop_records_free(&sink.recs, sink.n);
        return rc;
    }
    *recs = sink.recs;
    *n = sink.n;
    return 0;
}

int
filedrop_hash_fd(int fd, uint8_t out[PT_FILEDROP_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t cap = (size_t)1 << 20;
    uint8_t *buf = malloc(cap);
    int rc =
        ctx != NULL && buf != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -ENOMEM;
    while (rc == 0) {
        ssize_t k = read(fd, buf, cap);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            rc = k < 0 ? -errno : 0;
            break;
        }
        if (EVP_DigestUpdate(ctx, buf, (size_t)k) != 1)
            rc = -ENOMEM;
    }
    unsigned int len = 0;
    if (rc == 0 && (EVP_DigestFinal_ex(ctx, out, &len) != 1 || len != PT_FILEDROP_HASH_LEN))
        rc = -EIO;
    EVP_MD_CTX_free(ctx);
    free(buf);
    return rc;
}

void
filedrop_record_id(const uint8_t hash[PT_FILEDROP_HASH_LEN], size_t index,
                   char out[PT_FILEDROP_ID_MAX])
{
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, hash, 16);
    snprintf(out, PT_FILEDROP_ID_MAX, "fd-%s-%zu", hex, index);
}

/* ---- the watcher ---- */

/* A file watched for stability (PT_FILEDROP_STABLE). */
typedef struct stable_entry {
    char *name;
    off_t size;
    struct timespec mtime;
    int64_t since_ms; /* monotonic time at which size and mtime were last seen to change */
    bool seen;        /* in the current scan */
} stable_entry_t;

struct filedrop {
    uv_loop_t *loop;
    uv_fs_event_t event;
    uv_timer_t scan_timer;
    uv_timer_t kick_timer;
    int open_handles;
    bool closing;
    filedrop_options_t opt;
    const filedrop_ops_t *ops;
    void *ctx;
    char dirs[FD_NDIRS][FD_PATH_MAX];
    size_t max_file_set, max_records_set; /* the options as given (0: the defaults) */
    stable_entry_t *stable;
    size_t n_stable, cap_stable;
};

static bool
has_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n > k && strcmp(name + n - k, suffix) == 0;
}

static const filedrop_codec_t *
codec_for(const filedrop_t *fd, const char *name)
{
    for (size_t i = 0; i < fd->opt.n_codecs; i++) {
        const filedrop_codec_t *c = fd->opt.codecs[i];
        if (c->native != NULL ? native_takes(c, name) : has_suffix(name, c->suffix))
            return c;
    }
    return NULL;
}

static int
join(char *out, const char *dir, const char *name, const char *suffix)
{
    int n = snprintf(out, FD_PATH_MAX, "%s/%s%s", dir, name, suffix ? suffix : "");
    return n < 0 || n >= FD_PATH_MAX ? -ENAMETOOLONG : 0;
}

/* The k-th candidate name for name: name itself, then "stem.k.ext" ("a.json" ->
 * "a.1.json"), so that a suffixed file keeps its extension and its codec. */
static void
candidate(char *out, size_t cap, const char *name, unsigned k)
{
    if (k == 0) {
        snprintf(out, cap, "%s", name);
        return;
    }
    const char *dot = strrchr(name, '.');
    if (dot == NULL || dot == name)
        snprintf(out, cap, "%s.%u", name, k);
    else
        snprintf(out, cap, "%.*s.%u%s", (int)(dot - name), name, k, dot);
}

static bool
exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0 || errno != ENOENT;
}

/* Renames from -> to without ever replacing an existing to (EEXIST then). */
static int
rename_noreplace(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A filesystem without RENAME_NOREPLACE: link refuses an existing name too. */
    if (link(from, to) != 0)
        return -errno;
    return unlink(from) == 0 ? 0 : -errno;
}

/* Moves src (a file in one of our folders) into dir under name or the first free
 * suffixed name, never over an existing file. The chosen name goes to final. */
static int
move_free(const char *src, const char *dir, const char *name, char *final, size_t cap)
{
    char dst[FD_PATH_MAX];
    for (unsigned k = 0; k < FD_SUFFIX_TRIES; k++) {
        candidate(final, cap, name, k);
        if (join(dst, dir, final, NULL) != 0)
            return -ENAMETOOLONG;
        int rc = rename_noreplace(src, dst);
        if (rc == 0 && (rc = atomicfile_sync_dir(dst)) == 0)
            rc = atomicfile_sync_dir(src);
        if (rc != -EEXIST)
            return rc;
    }
    return -EEXIST;
}

/* ---- reports ---- */

static const char *const outcome_names[] = {
    [PT_FILEDROP_BAD] = "bad",
    [PT_FILEDROP_SPOOLED] = "spooled",
    [PT_FILEDROP_ALREADY] = "alreadySpooled",
    [PT_FILEDROP_REFUSED] = "refused",
    [PT_FILEDROP_NOT_SENT] = "notSent",
};

/* A stable, machine-readable name for an error code, for the reports' "code". */
static const char *
code_name(int code)
{
    switch (code) {
    case PT_EMALFORMED:
        return "malformed";
    case PT_EINVALID:
        return "invalid";
    case PT_ETOOLARGE:
        return "too_large";
    case PT_EDUPCONFLICT:
        return "id_conflict";
    case PT_EDENIED:
        return "denied";
    default:
        return code < 0 && code > PT_EBASE ? "io_error" : "error";
    }
}

static void
rfc3339_now(char *out, size_t cap)
{
    int64_t ms = pt_clock_wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03dZ", (int)(ms % 1000));
}

/* A file name as a JSON string; a name that is not UTF-8 is given escaped ("\\xE9"). */
static json_t *
name_json(const char *name)
{
    json_t *s = json_string(name);
    if (s == NULL) {
        char esc[PT_UTF8_ESCAPED_MAX(NAME_MAX)];
        utf8_escape(esc, sizeof esc, name, strnlen(name, NAME_MAX));
        s = json_string(esc);
    }
    return s;
}

static json_t *
report_new(const filedrop_file_t *file, const filedrop_codec_t *codec, const char *state)
{
    char now[40];
    rfc3339_now(now, sizeof now);
    json_t *rep = json_object();
    json_object_set_new(rep, "formatVersion", json_integer(PT_FILEDROP_REPORT_VERSION));
    json_object_set_new(rep, "file", name_json(file->name));
    if (file->hash_hex[0] != '\0')
        json_object_set_new(rep, "sha256", json_string(file->hash_hex));
    if (codec != NULL)
        json_object_set_new(rep, "codec", json_string(codec->name));
    json_object_set_new(rep, "state", json_string(state));
    json_object_set_new(rep, "processedAt", json_string(now));
    json_object_set_new(rep, "resumed", json_boolean(file->resumed));
    return rep;
}

/* A record's message id goes into its report unless it is the field found wrong (the
 * report never quotes a wrong value). */
static bool
reportable_id(const filedrop_record_t *r)
{
    if (r->env == NULL || r->env->message_id == NULL || r->env->message_id[0] == '\0')
        return false;
    return r->outcome != PT_FILEDROP_BAD || strcmp(r->err.path, "messageId") != 0;
}

/* The codec's remark on the whole file (a control count that does not match...), which
 * refused nothing: {"warning": {"where", "message"}}. */
static void
report_warning(json_t *rep, const pt_error_t *w)
{
    if (rep == NULL || w->msg[0] == '\0')
        return;
    json_t *o = json_object();
    if (w->path[0] != '\0')
        json_object_set_new(o, "where", json_string(w->path));
    json_object_set_new(o, "message", json_string(w->msg));
    json_object_set_new(rep, "warning", o);
    pt_log_warn("filedrop.warning", "file %s: %s", json_string_value(json_object_get(rep, "file")),
                w->msg);
}

static json_t *
record_json(const filedrop_record_t *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "index", json_integer((json_int_t)r->index));
    if (r->line > 0)
        json_object_set_new(o, "line", json_integer(r->line));
    if (reportable_id(r))
        json_object_set_new(o, "messageId", json_string(r->env->message_id));
    json_object_set_new(o, "state", json_string(outcome_names[r->outcome]));
    if (r->outcome == PT_FILEDROP_BAD || r->outcome == PT_FILEDROP_REFUSED) {
        if (r->column > 0)
            json_object_set_new(o, "column", json_integer(r->column));
        if (r->err.path[0] != '\0')
            json_object_set_new(o, "fieldPath", json_string(r->err.path));
        json_object_set_new(o, "code", json_string(code_name(r->err.code)));
        json_object_set_new(o, "error", json_string(r->err.msg));
    }
    return o;
}

static void
report_counts(json_t *rep, const size_t counts[5], size_t n)
{
    json_t *c = json_object();
    json_object_set_new(c, "records", json_integer((json_int_t)n));
    for (size_t k = 0; k < 5; k++)
        json_object_set_new(c, outcome_names[k], json_integer((json_int_t)counts[k]));
    json_object_set_new(rep, "counts", c);
}

static void
report_records(json_t *rep, const filedrop_record_t *recs, size_t n)
{
    size_t counts[5] = {0};
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        counts[recs[i].outcome]++;
        json_array_append_new(list, record_json(&recs[i]));
    }
    report_counts(rep, counts, n);
    json_object_set_new(rep, "records", list);
}

/* The per-record lines of the report of a file being processed, kept in a hidden file of
 * processing/ (never taken) so that a report of any size is never held in memory. */
typedef struct fd_lines {
    FILE *f; /* NULL: the report holds its records itself */
    char path[FD_PATH_MAX];
    size_t counts[5], n;
    bool not_sent; /* all or nothing failed: good records are reported notSent */
} fd_lines_t;

/* One line of the lines file into w; the records of an all-or-nothing file that failed
 * were reported spooled while they were held: they say notSent. */
static int
copy_line(FILE *w, const char *line, bool not_sent)
{
    if (!not_sent || strstr(line, "\"state\":\"spooled\"") == NULL)
        return fputs(line, w) < 0 ? -EIO : 0;
    json_t *o = json_loads(line, 0, NULL);
    json_object_set_new(o, "state", json_string(outcome_names[PT_FILEDROP_NOT_SENT]));
    char *t = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    int rc = t != NULL && fputs(t, w) >= 0 ? 0 : -EIO;
    free(t);
    return rc;
}

/* rep's text without its closing brace, then "records": the lines, then the brace. */
static int
report_stream(FILE *w, const char *text, fd_lines_t *lines)
{
    size_t tl = strlen(text);
    while (tl > 0 && text[tl - 1] != '}')
        tl--;
    while (tl > 1 && (text[tl - 2] == '\n' || text[tl - 2] == ' '))
        tl--;
    int rc = tl > 1 && fwrite(text, 1, tl - 1, w) == tl - 1 ? 0 : -EIO;
    if (rc == 0 && fputs(",\n  \"records\": [", w) < 0)
        rc = -EIO;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    if (rc == 0 && (fflush(lines->f) != 0 || fseek(lines->f, 0, SEEK_SET) != 0))
        rc = -EIO;
    for (size_t i = 0; rc == 0 && (k = getline(&line, &cap, lines->f)) > 0; i++)
        if ((line[k - 1] = line[k - 1] == '\n' ? '\0' : line[k - 1], 0) ||
            fputs(i ? ",\n    " : "\n    ", w) < 0 || copy_line(w, line, lines->not_sent) != 0)
            rc = -EIO;
    free(line);
    if (rc == 0 && fputs("\n  ]\n}", w) < 0)
        rc = -EIO;
    return rc;
}

/* Writes the report: as one text, or streamed with the records of lines (tmp, fsync,
 * rename, then the caller syncs the folder). */
static int
report_write(const char *path, json_t *rep, fd_lines_t *lines, unsigned mode, pt_error_t *err)
{
    if (lines != NULL && lines->f != NULL)
        report_counts(rep, lines->counts, lines->n);
    char *text = json_dumps(rep, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (text == NULL)
        return -ENOMEM;
    if (lines == NULL || lines->f == NULL) {
        int rc = atomicfile_write(path, text, strlen(text), mode, err);
        free(text);
        return rc;
    }
    char tmp[FD_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int o = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *w = o >= 0 ? fdopen(o, "w") : NULL;
    int rc = w != NULL && fchmod(o, mode) == 0 ? report_stream(w, text, lines) : -errno;
    free(text);
    if (rc == 0 && (fflush(w) != 0 || fsync(o) != 0))
        rc = -errno;
    if (w != NULL ? fclose(w) != 0 && rc == 0 : (o >= 0 && close(o) != 0))
        rc = -EIO;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc != 0)
        unlink(tmp);
    return rc;
}

/* True when path is a report of ours for the same bytes, left by a crash between the
 * report's write and the file's move: the resumed file may then take that name (and
 * rewrite the report). Asked only for resumed files, so that an operator's report whose
 * file was archived is never rewritten by a later drop of the same bytes. */
static bool
own_orphan_report(const char *path, const filedrop_file_t *file)
{
    /* Only the report's head is read: its records come last and may be many. */
    char head[16384], want[2 * PT_FILEDROP_HASH_LEN + 16];
    int o = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    ssize_t n = o >= 0 ? read(o, head, sizeof head - 1) : -1;
    if (o >= 0)
        close(o);
    if (n <= 0 || file->hash_hex[0] == '\0')
        return false;
    head[n] = '\0';
    snprintf(want, sizeof want, "\"sha256\": \"%s\"", file->hash_hex);
    return strstr(head, want) != NULL;
}

/* The first name under which both dir/NAME and dir/NAME<sfx> are free (or the report is
 * our own orphan). */
static int
free_name(const char *dir, const filedrop_file_t *file, const char *sfx, char *final, unsigned *k)
{
    char p[FD_PATH_MAX], r[FD_PATH_MAX];
    for (; *k < FD_SUFFIX_TRIES; (*k)++) {
        candidate(final, FD_PATH_MAX, file->name, *k);
        if (join(p, dir, final, NULL) != 0 || join(r, dir, final, sfx) != 0)
            return -ENAMETOOLONG;
        if (!exists(p) && (!exists(r) || (file->resumed && own_orphan_report(r, file))))
            return 0;
    }
    return -EEXIST;
}

/* Writes rep as dir/FINAL<sfx> (atomically), then moves the file to dir/FINAL: a crash
 * in between leaves the file in processing/ and an orphan report that the resume
 * rewrites. Takes rep. */
static int
finish(filedrop_t *fd, const filedrop_file_t *file, json_t *rep, int which, fd_lines_t *lines)
{
    const char *dir = fd->dirs[which], *sfx = which == FD_DONE ? ".report.json" : ".error.json";
    char final[FD_PATH_MAX], rpath[FD_PATH_MAX], dst[FD_PATH_MAX];
    pt_error_t err;
    int rc = -EEXIST;
    for (unsigned k = 0; rc == -EEXIST;) {
        rc = free_name(dir, file, sfx, final, &k);
        if (rc == 0)
            rc = join(rpath, dir, final, sfx) ? -ENAMETOOLONG : join(dst, dir, final, NULL);
        if (rc != 0)
            break;
        json_object_set_new(rep, "storedAs", name_json(final));
        rc = report_write(rpath, rep, lines, fd->opt.report_mode, &err);
        if (rc == 0 && (rc = rename_noreplace(file->path, dst)) == 0 &&
            (rc = atomicfile_sync_dir(dst)) == 0)
            rc = atomicfile_sync_dir(file->path);
        if (rc == -EEXIST)
            unlink(rpath); /* the report just written, for a name taken meanwhile */
        k++;
    }
    json_decref(rep);
    if (rc != 0) {
        pt_log_error("filedrop.move", "file %s: cannot move it to %s/: %s", file->name, dir,
                     pt_strerror(rc));
        return rc;
    }
    pt_log_info(which == FD_DONE ? "filedrop.done" : "filedrop.failed",
                "file %s sha256 %.16s -> %s", file->name, file->hash_hex, dst);
    if (fd->ops->finished != NULL)
        fd->ops->finished(fd->ctx, file, dst, which == FD_FAILED);
    return 0;
}

/* The file cannot be taken at all: failed/NAME with NAME.error.json saying why. */
static int
fail_file(filedrop_t *fd, const filedrop_file_t *file, const filedrop_codec_t *codec,
          const pt_error_t *why, const filedrop_record_t *recs, size_t n, fd_lines_t *lines)
{
    json_t *rep = report_new(file, codec, "failed");
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(code_name(why->code)));
    json_object_set_new(e, "message", json_string(why->msg));
    json_object_set_new(rep, "error", e);
    if (recs != NULL)
        report_records(rep, recs, n);
    pt_log_warn("filedrop.unreadable", "file %s: %s", file->name, why->msg);
    return finish(fd, file, rep, FD_FAILED, lines);
}

/* ---- one file ---- */

/* Reads the rest of the file (a generic codec's input, at most max bytes). */
static int
read_fd(int f, size_t size, char **out, size_t *len, pt_error_t *err)
{
    char *buf = malloc(size + 1);
    int rc = buf == NULL ? -ENOMEM : 0;
    size_t got = 0;
    while (rc == 0 && got < size) {
        ssize_t k = read(f, buf + got, size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            rc = k < 0 ? -errno : PT_EMALFORMED; /* shrank while we read it */
        else
            got += (size_t)k;
    }
    if (rc != 0) {
        free(buf);
        return pt_error_set(err, rc, NULL, "cannot read it: %s", pt_strerror(rc));
    }
    *out = buf;
    *len = got;
    return 0;
}

/* The limits for a file taken by codec: a native codec streams, the others hold it. */
static size_t
max_size(const filedrop_t *fd, const filedrop_codec_t *codec)
{
    if (codec != NULL && codec->native != NULL && fd->max_file_set == 0)
        return (size_t)PT_FILEDROP_MAX_NATIVE_FILE;
    return fd->opt.max_file_size;
}

/* Opens the file, checks it, hashes it (then rewinds). *f is the open descriptor. */
static int
open_file(filedrop_t *fd, const filedrop_codec_t *codec, filedrop_file_t *file, int *f, off_t *size,
          pt_error_t *err)
{
    /* O_NONBLOCK: a FIFO swapped in after the scan's lstat must not block the loop. */
    *f = open(file->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (*f < 0)
        return pt_error_set(err, -errno, NULL, "cannot open it: %s", strerror(errno));
    struct stat st;
    int rc = fstat(*f, &st) == 0 ? 0 : -errno;
    if (rc == 0 && !S_ISREG(st.st_mode))
        rc = pt_error_set(err, PT_EMALFORMED, NULL, "is not a regular file");
    if (rc == 0 && (size_t)st.st_size > max_size(fd, codec))
        rc = pt_error_set(err, PT_ETOOLARGE, NULL, "%jd bytes is over the limit of %zu bytes",
                          (intmax_t)st.st_size, max_size(fd, codec));
    if (rc == 0 && (rc = filedrop_hash_fd(*f, file->hash)) == 0 && lseek(*f, 0, SEEK_SET) != 0)
        rc = -errno;
    if (rc == 0) {
        sodium_bin2hex(file->hash_hex, sizeof file->hash_hex, file->hash, sizeof file->hash);
        file->mtime_s = (int64_t)st.st_mtime;
        *size = st.st_size;
    } else if (err->code == 0) {
        pt_error_set(err, rc, NULL, "cannot read it: %s", pt_strerror(rc));
    }
    return rc;
}

/* A record without a creation time (a native codec leaves it to the runtime) gets the
 * file's modification time: the same for a resumed file, so its bytes, and thus its
 * spool content hash, do not change. */
static int
stamp_created_at(filedrop_record_t *r, const filedrop_file_t *file)
{
    Google__Protobuf__Timestamp *t = malloc(sizeof *t);
    if (t == NULL)
        return pt_error_set(&r->err, -ENOMEM, NULL, "out of memory");
    google__protobuf__timestamp__init(t);
    t->seconds = file->mtime_s;
    r->env->created_at = t;
    return 0;
}

/* Gives records without a message id their derived one, then validates each: a native
 * codec hands over bodies it validated (codec_ops.h) with nothing else set, so its
 * records are not validated twice. Returns the number of bad records. */
static size_t
prepare_records(const filedrop_t *fd, const filedrop_file_t *file, const filedrop_codec_t *codec,
                filedrop_record_t *recs, size_t n)
{
    size_t bad = 0;
    bool validate = !fd->opt.no_validate && codec->native == NULL;
    for (size_t i = 0; i < n; i++) {
        filedrop_record_t *r = &recs[i];
        if (r->env != NULL && (r->env->message_id == NULL || r->env->message_id[0] == '\0')) {
            char id[PT_FILEDROP_ID_MAX];
            filedrop_record_id(file->hash, r->index, id);
            char *dup = strdup(id);
            if (dup == NULL) { /* as bad: the file is reported, not lost */
                pt_error_set(&r->err, -ENOMEM, NULL, "out of memory");
                codec_free((ProtobufCMessage **)&r->env);
            } else {
                if (r->env->message_id != NULL && r->env->message_id != protobuf_c_empty_string)
                    free(r->env->message_id);
                r->env->message_id = dup;
            }
        }
        if (r->env != NULL && r->env->created_at == NULL && stamp_created_at(r, file) != 0)
            codec_free((ProtobufCMessage **)&r->env);
        /* A record that fails validation keeps its envelope, so that its report can name
         * its message id; only SPOOLED (good so far) records are handed to the spool. */
        if (r->env == NULL || (validate && validate_envelope(r->env, &r->err) != 0)) {
            r->outcome = PT_FILEDROP_BAD;
            bad++;
        }
    }
    return bad;
}

/* Hands the good records to the spool in one call, then copies their outcomes back. */
static int
spool_good(filedrop_t *fd, const filedrop_file_t *file, filedrop_record_t *recs, size_t n)
{
    size_t good = 0;
    filedrop_record_t *g = malloc((n ? n : 1) * sizeof *g);
    if (g == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (recs[i].outcome == PT_FILEDROP_SPOOLED)
            g[good++] = recs[i];
    int rc = fd->ops->spool(fd->ctx, file, g, good);
    for (size_t i = 0, j = 0; rc == 0 && i < n; i++)
        if (recs[i].outcome == PT_FILEDROP_SPOOLED) {
            recs[i].outcome = g[j].outcome;
            recs[i].err = g[j++].err;
        }
    free(g);
    return rc;
}

/* A file being decoded, spooled and reported chunk by chunk. */
typedef struct fd_run {
    filedrop_t *fd;
    const filedrop_file_t *file;
    const filedrop_codec_t *codec;
    fd_lines_t lines;
    size_t bad;   /* bad records so far */
    int spool_rc; /* a spool() call that failed: the file is retried */
    bool staged;  /* options.spool: chunks under a stage */
} fd_run_t;

static int
lines_open(fd_lines_t *l, const filedrop_t *fd, const filedrop_file_t *file)
{
    memset(l, 0, sizeof *l);
    int n =
        snprintf(l->path, sizeof l->path, "%s/.%s.records", fd->dirs[FD_PROCESSING], file->name);
    if (n < 0 || (size_t)n >= sizeof l->path)
        return -ENAMETOOLONG;
    int o = open(l->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (o < 0 || (l->f = fdopen(o, "w+")) == NULL) {
        int e = -errno;
        if (o >= 0)
            close(o);
        return e;
    }
    return 0;
}

static void
lines_close(fd_lines_t *l)
{
    if (l->f == NULL)
        return;
    fclose(l->f);
    unlink(l->path);
    l->f = NULL;
}

/* Writes the chunk's records to the report's lines and frees their envelopes. */
static int
chunk_report(fd_run_t *run, filedrop_sink_t *sink)
{
    int rc = 0;
    for (size_t i = 0; i < sink->n; i++) {
        filedrop_record_t *r = &sink->recs[i];
        json_t *o = record_json(r);
        char *t = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(o);
        if (t == NULL || fputs(t, run->lines.f) < 0 || fputc('\n', run->lines.f) == EOF)
            rc = -EIO;
        free(t);
        run->lines.counts[r->outcome]++;
        run->lines.n++;
        codec_free((ProtobufCMessage **)&r->env);
    }
    sink->base += sink->n;
    sink->n = 0;
    return rc;
}

/* Validates a chunk; in an all-or-nothing file, one bad record holds every good one. */
static void
chunk_prepare(fd_run_t *run, filedrop_sink_t *sink)
{
    run->bad += prepare_records(run->fd, run->file, run->codec, sink->recs, sink->n);
    if (run->bad == 0 || !run->fd->opt.all_or_nothing)
        return;
    run->lines.not_sent = true;
    for (size_t i = 0; i < sink->n; i++)
        if (sink->recs[i].outcome == PT_FILEDROP_SPOOLED)
            sink->recs[i].outcome = PT_FILEDROP_NOT_SENT;
}

/* Spools a chunk's good records (the last call always: it commits the file). */
static int
chunk_spool(fd_run_t *run, filedrop_sink_t *sink, bool last)
{
    bool any = last;
    for (size_t i = 0; i < sink->n && !any; i++)
        any = sink->recs[i].outcome == PT_FILEDROP_SPOOLED;
    if (run->lines.not_sent || !any)
        return 0;
    int rc = spool_good(run->fd, run->file, sink->recs, sink->n);
    if (rc != 0)
        run->spool_rc = rc;
    return rc;
}

/* The sink's flush for a staged file: one chunk, committed by spool(). */
static int
chunk_flush(void *arg, filedrop_sink_t *sink)
{
    fd_run_t *run = arg;
    chunk_prepare(run, sink);
    int rc = chunk_spool(run, sink, false);
    return rc != 0 ? rc : chunk_report(run, sink);
}

/* Rolls back the pending stage in steps, each committed. A failure leaves it pending
 * (held from the send queue): the next file, or the next start, rolls it back. */
static int
stage_rollback(filedrop_t *fd)
{
    pt_error_t err;
    pt_error_clear(&err);
    int rc;
    while ((rc = spool_stage_rollback(fd->opt.spool, PT_FILEDROP_CHUNK, &err)) == 1)
        if ((rc = fd->ops->commit(fd->ctx)) != 0)
            break;
    if (rc == 0)
        rc = fd->ops->commit(fd->ctx);
    if (rc != 0)
        pt_log_error("filedrop.rollback",
                     "a staged file's records are not rolled back yet (%s): "
                     "they are never sent, and the rollback is retried",
                     err.msg[0] ? err.msg : pt_strerror(rc));
    return rc;
}

static int
stage_begin(fd_run_t *run)
{
    pt_error_t err;
    pt_error_clear(&err);
    if (!run->staged)
        return 0;
    if (spool_stage_pending(run->fd->opt.spool) && stage_rollback(run->fd) != 0)
        return -EBUSY;
    int rc = spool_stage_begin(run->fd->opt.spool, &err);
    if (rc != 0)
        pt_log_error("filedrop.stage", "file %s: cannot stage it (%s); retried at the next scan",
                     run->file->name, err.msg);
    return rc;
}

/* The end of a file read to its end: the last chunk and the stage's finish in one
 * commit, then done/; or, all or nothing with a bad record, the rollback and failed/.
 * Returns 1 when the file left processing/, 0 when it is to be retried. */
static int
run_finish(fd_run_t *run, filedrop_sink_t *sink)
{
    filedrop_t *fd = run->fd;
    pt_error_t err;
    pt_error_clear(&err);
    chunk_prepare(run, sink);
    if (run->lines.not_sent) {
        if (run->staged)
            stage_rollback(fd);
        chunk_report(run, sink);
        pt_error_set(&err, PT_EINVALID, NULL,
                     "%zu of its %zu records are bad and this adapter takes a file whole or not "
                     "at all: nothing was sent",
                     run->bad, run->lines.n);
        return fail_file(fd, run->file, run->codec, &err, NULL, 0, &run->lines) == 0;
    }
    int rc = run->staged ? spool_stage_finish(fd->opt.spool, &err) : 0;
    if (rc == 0)
        rc = chunk_spool(run, sink, true);
    if (rc != 0) {
        pt_log_error("filedrop.spool", "file %s: spool failed (%s); retried at the next scan",
                     run->file->name, pt_strerror(rc));
        return 0;
    }
    chunk_report(run, sink);
    json_t *rep = report_new(run->file, run->codec, "done");
    report_warning(rep, &sink->warning);
    return finish(fd, run->file, rep, FD_DONE, &run->lines) == 0;
}

/* Decodes, checks, spools and reports a file that is in processing/ (open as f).
 * Returns 1 when the file left processing/, 0 when it is to be retried. */
static int
process_decoded(filedrop_t *fd, const filedrop_file_t *file, const filedrop_codec_t *codec, int f,
                off_t size)
{
    pt_error_t err;
    pt_error_clear(&err);
    char *data = NULL;
    size_t len = 0;
    int rc = codec->native == NULL ? read_fd(f, (size_t)size, &data, &len, &err) : 0;
    if (rc != 0)
        return rc == PT_EMALFORMED ? fail_file(fd, file, codec, &err, NULL, 0, NULL) == 0 : 0;
    fd_run_t run = {.fd = fd, .file = file, .codec = codec, .staged = fd->opt.spool != NULL};
    if ((rc = lines_open(&run.lines, fd, file)) != 0 || (rc = stage_begin(&run)) != 0) {
        lines_close(&run.lines);
        free(data);
        return 0;
    }
    size_t max = fd->opt.max_records;
    if (codec->native != NULL && fd->max_records_set == 0)
        max = PT_FILEDROP_MAX_NATIVE_RECORDS;
    filedrop_sink_t sink = {.max = max,
                            .chunk = run.staged ? PT_FILEDROP_CHUNK : SIZE_MAX,
                            .flush = run.staged ? chunk_flush : NULL,
                            .flush_arg = &run};
    rc = run_codec(codec, codec->native != NULL ? f : -1, data, len, &sink, &err);
    free(data);
    if (rc == 0) {
        rc = run_finish(&run, &sink);
    } else if (run.spool_rc != 0 || rc == -ENOMEM) {
        pt_log_error("filedrop.spool", "file %s: %s; retried at the next scan", file->name,
                     pt_strerror(run.spool_rc ? run.spool_rc : rc));
        if (run.staged)
            stage_rollback(fd);
        rc = 0;
    } else {
        if (run.staged)
            stage_rollback(fd);
        rc = fail_file(fd, file, codec, &err, NULL, 0, NULL) == 0;
    }
    filedrop_records_free(&sink.recs, sink.n);
    lines_close(&run.lines);
    return rc;
}

static int
process_duplicate(filedrop_t *fd, const filedrop_file_t *file, const filedrop_codec_t *codec)
{
    json_t *rep = report_new(file, codec, "duplicate");
    json_object_set_new(rep, "message",
                        json_string("a file with the same content was taken before: nothing "
                                    "was sent again"));
    report_records(rep, NULL, 0);
    return finish(fd, file, rep, FD_DONE, NULL) == 0;
}

static int
process_file(filedrop_t *fd, const char *name, bool resumed)
{
    char path[FD_PATH_MAX];
    filedrop_file_t file = {.name = name, .path = path, .resumed = resumed};
    if (join(path, fd->dirs[FD_PROCESSING], name, NULL) != 0)
        return -ENAMETOOLONG;
    const filedrop_codec_t *codec = codec_for(fd, name);
    pt_error_t err;
    pt_error_clear(&err);
    int f = -1;
    off_t size = 0;
    int rc = open_file(fd, codec, &file, &f, &size, &err);
    if (rc == -ENOENT || rc == -ENOMEM || rc == -EIO || rc == -EINTR) {
        if (f >= 0)
            close(f);
        return 0; /* gone, or worth another try */
    }
    if (rc == 0 && codec == NULL) {
        char list[256] = "";
        for (size_t i = 0; i < fd->opt.n_codecs; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                     fd->opt.codecs[i]->native ? fd->opt.codecs[i]->native->patterns[0]
                                               : fd->opt.codecs[i]->suffix);
        rc = pt_error_set(&err, PT_EMALFORMED, NULL,
                          "no format takes this file name: the names taken end with %s", list);
    }
    int seen = 0;
    if (rc == 0 && !resumed && fd->ops->seen != NULL && (seen = fd->ops->seen(fd->ctx, &file)) < 0)
        pt_log_error("filedrop.seen", "file %s: cannot ask the spool (%s); retried later", name,
                     pt_strerror(seen));
    if (rc != 0)
        rc = fail_file(fd, &file, codec, &err, NULL, 0, NULL) == 0;
    else if (seen < 0)
        rc = 0;
    else if (seen > 0)
        rc = process_duplicate(fd, &file, codec);
    else
        rc = process_decoded(fd, &file, codec, f, size);
    if (f >= 0)
        close(f);
    return rc;
}

/* ---- scanning ---- */

static bool
never_taken(const char *name)
{
    return name[0] == '.' || has_suffix(name, ".tmp") || has_suffix(name, ".done");
}

static stable_entry_t *
stable_find(filedrop_t *fd, const char *name)
{
    for (size_t i = 0; i < fd->n_stable; i++)
        if (strcmp(fd->stable[i].name, name) == 0)
            return &fd->stable[i];
    if (fd->n_stable == fd->cap_stable) {
        size_t cap = fd->cap_stable ? 2 * fd->cap_stable : 16;
        stable_entry_t *s = realloc(fd->stable, cap * sizeof *s);
        if (s == NULL)
            return NULL;
        fd->stable = s;
        fd->cap_stable = cap;
    }
    stable_entry_t *e = &fd->stable[fd->n_stable];
    if ((e->name = strdup(name)) == NULL)
        return NULL;
    e->size = -1;
    fd->n_stable++;
    return e;
}

/* Forgets the files not seen in this scan (taken, or gone). */
static void
stable_prune(filedrop_t *fd)
{
    size_t j = 0;
    for (size_t i = 0; i < fd->n_stable; i++) {
        if (fd->stable[i].seen)
            fd->stable[j++] = fd->stable[i];
        else
            free(fd->stable[i].name);
    }
    fd->n_stable = j;
}

/* Whether name, a regular file in the inbox, is complete under the convention. */
static bool
is_complete(filedrop_t *fd, const char *name, const struct stat *st)
{
    char marker[FD_PATH_MAX];
    switch (fd->opt.convention) {
    case PT_FILEDROP_RENAME:
        return true;
    case PT_FILEDROP_MARKER:
        return join(marker, fd->opt.inbox, name, ".done") == 0 && exists(marker);
    case PT_FILEDROP_STABLE:
        break;
    }
    stable_entry_t *e = stable_find(fd, name);
    if (e == NULL)
        return false;
    int64_t now = pt_clock_mono_ms();
    e->seen = true;
    if (e->size != st->st_size || e->mtime.tv_sec != st->st_mtim.tv_sec ||
        e->mtime.tv_nsec != st->st_mtim.tv_nsec) {
        e->size = st->st_size;
        e->mtime = st->st_mtim;
        e->since_ms = now;
        return false;
    }
    return now - e->since_ms >= (int64_t)fd->opt.stable_ms;
}

/* Claims inbox/name by renaming it into processing/ (atomic: one filesystem), then
 * processes it. */
static int
claim(filedrop_t *fd, const char *name)
{
    char src[FD_PATH_MAX], final[FD_PATH_MAX], marker[FD_PATH_MAX];
    if (join(src, fd->opt.inbox, name, NULL) != 0)
        return -ENAMETOOLONG;
    int rc = move_free(src, fd->dirs[FD_PROCESSING], name, final, sizeof final);
    if (rc == -ENOENT)
        return 0; /* taken away meanwhile */
    if (rc != 0) {
        pt_log_error("filedrop.claim", "file %s: cannot move it to %s/: %s", name,
                     fd->dirs[FD_PROCESSING], pt_strerror(rc));
        return rc;
    }
    /* The marker goes after the claim: before it, a crash would leave a file that no
     * marker announces any more. It holds no data. */
    if (fd->opt.convention == PT_FILEDROP_MARKER && join(marker, fd->opt.inbox, name, ".done") == 0)
        unlink(marker);
    return process_file(fd, final, false);
}

static int
scan_inbox(filedrop_t *fd)
{
    DIR *d = opendir(fd->opt.inbox);
    if (d == NULL) {
        pt_log_error("filedrop.scan", "inbox %s: cannot read it: %s", fd->opt.inbox,
                     strerror(errno));
        return -errno;
    }
    for (size_t i = 0; i < fd->n_stable; i++)
        fd->stable[i].seen = false;
    int moved = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && !fd->closing) {
        char path[FD_PATH_MAX];
        struct stat st;
        if (never_taken(ent->d_name) || join(path, fd->opt.inbox, ent->d_name, NULL) != 0 ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* our folders, hidden and unfinished files, links */
        if (is_complete(fd, ent->d_name, &st) && claim(fd, ent->d_name) > 0)
            moved++;
    }
    closedir(d);
    stable_prune(fd);
    return moved;
}

/* Files left in processing/: a crash, or a spool call that failed. */
static int
scan_processing(filedrop_t *fd)
{
    DIR *d = opendir(fd->dirs[FD_PROCESSING]);
    if (d == NULL) {
        pt_log_error("filedrop.scan", "folder %s: cannot read it: %s", fd->dirs[FD_PROCESSING],
                     strerror(errno));
        return -errno;
    }
    int moved = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && !fd->closing) {
        char path[FD_PATH_MAX], marker[FD_PATH_MAX];
        struct stat st;
        if (ent->d_name[0] == '.' || join(path, fd->dirs[FD_PROCESSING], ent->d_name, NULL) != 0 ||
            lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (fd->opt.convention == PT_FILEDROP_MARKER &&
            join(marker, fd->opt.inbox, ent->d_name, ".done") == 0)
            unlink(marker); /* a crash between the claim and the marker's removal */
        pt_log_info("filedrop.resume", "file %s: resumed from %s/", ent->d_name,
                    fd->dirs[FD_PROCESSING]);
        if (process_file(fd, ent->d_name, true) > 0)
            moved++;
    }
    closedir(d);
    return moved;
}

int
filedrop_scan(filedrop_t *fd)
{
    int a = scan_processing(fd);
    if (a < 0)
        return a;
    int b = scan_inbox(fd);
    return b < 0 ? b : a + b;
}

/* ---- the loop ---- */

static void
on_scan_timer(uv_timer_t *t)
{
    filedrop_scan(t->data);
}

static void
on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)name;
    (void)events;
    (void)status;
    filedrop_t *fd = h->data;
    if (!fd->closing && !uv_is_active((uv_handle_t *)&fd->kick_timer))
        uv_timer_start(&fd->kick_timer, on_scan_timer, FD_KICK_MS, 0);
}

/* Makes dir (0700) if missing and checks that it is a writable folder on the inbox's
 * filesystem, saying what to fix otherwise. */
static int
prepare_dir(const char *dir, dev_t dev, bool check_dev, dev_t *out_dev, pt_error_t *err)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return pt_error_set(err, -errno, dir,
                            "cannot create the folder: %s; create it (mode 0700) for the "
                            "adapter's user",
                            strerror(errno));
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return pt_error_set(err, PT_ECONFIG, dir,
                            "is not a folder; remove it or set another inbox");
    if (access(dir, R_OK | W_OK | X_OK) != 0)
        return pt_error_set(err, -errno, dir,
                            "the adapter cannot read and write this folder: %s; give its user "
                            "rwx on it",
                            strerror(errno));
    if (check_dev && st.st_dev != dev)
        return pt_error_set(err, PT_ECONFIG, dir,
                            "is on another filesystem than the inbox, so a rename into it is "
                            "not atomic; make it a plain folder of the inbox");
    *out_dev = st.st_dev;
    return 0;
}

static const filedrop_codec_t *const default_codecs[] = {&filedrop_codec_json,
                                                         &filedrop_codec_jsonl};

static int
set_options(filedrop_t *fd, const filedrop_options_t *opt, pt_error_t *err)
{
    if (opt->inbox == NULL || opt->inbox[0] == '\0')
        return pt_error_set(err, PT_ECONFIG, "inbox", "no inbox folder given");
    if (strlen(opt->inbox) > FD_PATH_MAX - 64)
        return pt_error_set(err, PT_ECONFIG, "inbox", "the folder's path is too long");
    fd->opt = *opt;
    fd->max_file_set = opt->max_file_size;
    fd->max_records_set = opt->max_records;
    if (fd->opt.stable_ms == 0)
        fd->opt.stable_ms = 5000;
    if (fd->opt.report_mode == 0)
        fd->opt.report_mode = 0600;
    if (fd->opt.scan_ms == 0)
        fd->opt.scan_ms = 2000;
    if (fd->opt.max_file_size == 0)
        fd->opt.max_file_size = PT_FILEDROP_MAX_FILE;
    if (fd->opt.max_records == 0)
        fd->opt.max_records = PT_FILEDROP_MAX_RECORDS;
    if (fd->opt.codecs == NULL || fd->opt.n_codecs == 0) {
        fd->opt.codecs = default_codecs;
        fd->opt.n_codecs = sizeof default_codecs / sizeof default_codecs[0];
    }
    dev_t dev = 0;
    int rc = prepare_dir(opt->inbox, 0, false, &dev, err);
    for (int i = 0; rc == 0 && i < FD_NDIRS; i++) {
        join(fd->dirs[i], opt->inbox, fd_subdirs[i], NULL);
        dev_t sub;
        rc = prepare_dir(fd->dirs[i], dev, true, &sub, err);
    }
    return rc;
}

static int
start_watch(filedrop_t *fd)
{
    uv_fs_event_init(fd->loop, &fd->event);
    uv_timer_init(fd->loop, &fd->scan_timer);
    uv_timer_init(fd->loop, &fd->kick_timer);
    fd->event.data = fd->scan_timer.data = fd->kick_timer.data = fd;
    fd->open_handles = 3;
    int rc = uv_fs_event_start(&fd->event, on_fs_event, fd->opt.inbox, 0);
    if (rc != 0) /* e.g. inotify watches exhausted: the periodic scan still finds files */
        pt_log_warn("filedrop.watch", "inbox %s: no change events (%s); scanning every %u ms",
                    fd->opt.inbox, uv_strerror(rc), fd->opt.scan_ms);
    return uv_timer_start(&fd->scan_timer, on_scan_timer, 0, fd->opt.scan_ms);
}

int
filedrop_open(filedrop_t **out, uv_loop_t *loop, const filedrop_options_t *opt,
              const filedrop_ops_t *ops, void *ctx, pt_error_t *err)
{
    *out = NULL;
    if (ops == NULL || ops->spool == NULL)
        return pt_error_set(err, PT_ECONFIG, NULL, "filedrop: no spool callback");
    if (opt->spool != NULL && ops->commit == NULL)
        return pt_error_set(err, PT_ECONFIG, NULL, "filedrop: a staging spool needs commit");
    if (sodium_init() < 0)
        return pt_error_set(err, PT_EINTERNAL, NULL, "libsodium cannot start");
    filedrop_t *fd = calloc(1, sizeof *fd);
    if (fd == NULL)
        return pt_error_set(err, -ENOMEM, NULL, "out of memory");
    fd->loop = loop;
    fd->ops = ops;
    fd->ctx = ctx;
    int rc = set_options(fd, opt, err);
    if (rc != 0) {
        free(fd);
        return rc;
    }
    start_watch(fd);
    *out = fd;
    return 0;
}

static void
on_close(uv_handle_t *h)
{
    filedrop_t *fd = h->data;
    if (--fd->open_handles > 0)
        return;
    for (size_t i = 0; i < fd->n_stable; i++)
        free(fd->stable[i].name);
    free(fd->stable);
    free(fd);
}

void
filedrop_close(filedrop_t **p)
{
    if (p == NULL || *p == NULL)
        return;
    filedrop_t *fd = *p;
    *p = NULL;
    fd->closing = true;
    uv_close((uv_handle_t *)&fd->event, on_close);
    uv_close((uv_handle_t *)&fd->scan_timer, on_close);
    uv_close((uv_handle_t *)&fd->kick_timer, on_close);
}
