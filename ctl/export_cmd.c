/* export_cmd: the journal's audit fields for analysis elsewhere, streamed (the filters
 * of journal list), as JSON Lines or CSV; with --with-payloads also each message as
 * proto3 JSON: personal data, so that export is recorded by the broker first (operator,
 * filter, reason), as journal show is. */
#include "ctl.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec.h"
#include "jquery.h"
#include "pjson.h"
#include "utf8.h"

typedef struct export_ctx {
    out_t o;
    bool payloads;
} export_ctx_t;

/* The message of a RECEIVED record as compact proto3 JSON (caller frees), or NULL. */
static char *
export_message(const journal_view_t *v)
{
    if (v->kind != PT_REC_RECEIVED || v->payload_len == 0)
        return NULL;
    ProtobufCMessage *m = NULL;
    char *json = NULL;
    pt_error_t err;
    if (codec_unpack_lenient(&ptibus__v1__envelope__descriptor, v->payload, v->payload_len,
                             v->payload_len, &m, &err) == 0)
        pjson_to_string(m, &json, &err);
    codec_free(&m);
    return json;
}

/* JSON Lines with payloads: the row's object and "message" as an object. */
static void
export_json(const char *const *vals, const char *message)
{
    json_t *o = json_object();
    for (size_t i = 0; i < JOURNAL_LIST_COLS; i++) {
        const char *v = vals[i];
        json_t *x = v == NULL || v[0] == '\0'     ? json_null()
                    : journal_list_cols[i].number ? json_integer((json_int_t)strtoll(v, NULL, 10))
                                                  : json_string(utf8_valid(v) ? v : esc(v));
        json_object_set_new(o, journal_list_cols[i].name, x);
    }
    json_t *m = message ? json_loads(message, 0, NULL) : NULL;
    json_object_set_new(o, "message", m ? m : json_null());
    json_dumpf(o, stdout, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
}

static int
export_row(const jq_row_t *r, void *arg)
{
    export_ctx_t *x = arg;
    char bufs[4][32];
    const char *vals[JOURNAL_LIST_COLS + 1];
    journal_row_values(r, bufs, vals);
    if (!x->payloads) {
        out_row(&x->o, vals);
        return 0;
    }
    char *message = export_message(r->v);
    if (x->o.fmt == CTL_FMT_JSON) {
        export_json(vals, message);
        x->o.rows++;
    } else {
        vals[JOURNAL_LIST_COLS] = message;
        out_row(&x->o, vals);
    }
    free(message);
    return 0;
}

/* The filter as typed, for the audit record (at most 200 bytes, one line, no reason). */
static void
export_what(int argc, char **argv, char *out, size_t cap)
{
    char buf[1024] = "export --with-payloads";
    size_t off = strlen(buf);
    for (int i = 1; i < argc && off + 2 < sizeof buf; i++) {
        if (strcmp(argv[i], "--reason") == 0 || strcmp(argv[i], "--with-payloads") == 0) {
            i += strcmp(argv[i], "--reason") == 0;
            continue;
        }
        off += (size_t)snprintf(buf + off, sizeof buf - off, " %s", argv[i]);
    }
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
    utf8_truncate(out, cap, buf, 200);
}

static int
export_audit(const ctl_t *c, int argc, char **argv, const char *reason)
{
    char what[201];
    uint64_t seq = 0;
    export_what(argc, argv, what, sizeof what);
    int rc = admin_audit_read(c, what, reason, &seq);
    if (rc != 0) {
        fprintf(stderr,
                "ptibusctl: %s: nothing exported: the read could not be recorded by the "
                "broker\n",
                c->name);
        return rc == CTL_USAGE ? rc : CTL_UNAUDITED;
    }
    fprintf(stderr, "ptibusctl: %s: this export is journaled as ADMIN record %" PRIu64 "\n",
            c->name, seq);
    return 0;
}

/* export [journal filters] [--format json|jsonl|csv|tsv] [--with-payloads --reason TEXT] */
int
cmd_export(ctl_t *c, int argc, char **argv)
{
    static out_col_t cols[JOURNAL_LIST_COLS + 1];
    jq_filter_t f = {0};
    const char *reason = NULL;
    export_ctx_t x = {0};
    journal_extra_t ex = {.reason = &reason, .payloads = &x.payloads};
    c->fmt = CTL_FMT_JSON; /* the default of export: JSON Lines */
    int rc = journal_filter_parse(c, argc, argv, &f, &ex);
    if (rc == 0 && x.payloads && (reason == NULL || reason[0] == '\0'))
        rc = ctl_error(c, CTL_USAGE,
                       "--with-payloads needs --reason TEXT: the read of personal "
                       "data is journaled with it");
    if (rc == 0 && reason && !x.payloads)
        rc = ctl_error(c, CTL_USAGE, "--reason: only with --with-payloads");
    if (rc == 0 && c->fmt == CTL_FMT_HTML)
        rc = ctl_error(c, CTL_USAGE, "--format json (JSON Lines), csv or tsv");
    if (rc == 0)
        rc = x.payloads ? admin_settings(c) : 0;
    if (rc == 0)
        rc = journal_settings(c);
    journal_t *j = NULL;
    if (rc != 0 || (rc = jq_open(c->set.journal, &j)) != 0)
        return rc;
    if (x.payloads && (rc = export_audit(c, argc, argv, reason)) != 0) {
        journal_close(&j);
        return rc;
    }
    memcpy(cols, journal_list_cols, sizeof journal_list_cols);
    cols[JOURNAL_LIST_COLS] = (out_col_t){"message", 0, false};
    if (x.payloads && c->fmt != CTL_FMT_JSON)
        out_begin(&x.o, c->fmt, cols, JOURNAL_LIST_COLS + 1);
    else
        out_begin(&x.o, c->fmt, journal_list_cols, JOURNAL_LIST_COLS);
    uint64_t n;
    pt_error_t err;
    rc = jq_run(j, &f, export_row, &x, &n, &err);
    out_end(&x.o);
    journal_close(&j);
    return rc == 0 ? CTL_OK : fail(&err);
}
