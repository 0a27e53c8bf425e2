/* partner_add_cmd: `partner add`, the administrator's side of welcoming a partner: checks
 * the partner id (keygen's rule) and the public key file it sent (the broker's reader;
 * a secret key file refused), copies the key into the broker's keys folder (atomically,
 * never over a different key unless --replace: the rotation case), and writes the
 * broker.yaml fragment to review, add, check and reload (docs/operations.md, "Keys"). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "atomicfile.h"
#include "codec.h"
#include "keys.h"
#include "validate.h"

#define PA_DEFAULT_KEYS_DIR "/etc/ptibus/keys"
#define PA_MAX_TYPES 32

typedef struct add_args {
    const char *pub, *dir, *to;
    const char *may_send[PA_MAX_TYPES], *subscribe[PA_MAX_TYPES];
    size_t n_may_send, n_subscribe;
    bool replace;
} add_args_t;

/* A message type as bconfig checks it (codec_envelope_case), not listed twice. */
static int
add_type(const char *opt, const char *v, const char **list, size_t *n)
{
    char valid[512];
    if (codec_envelope_case(v) == PTIBUS__V1__ENVELOPE__BODY__NOT_SET) {
        codec_envelope_type_list(valid, sizeof valid);
        fprintf(stderr, "ptibusctl: partner add: %s \"%.40s\" is not a message type (valid: %s)\n",
                opt, v, valid);
        return CTL_USAGE;
    }
    for (size_t i = 0; i < *n; i++)
        if (strcmp(list[i], v) == 0) {
            fprintf(stderr, "ptibusctl: partner add: %s %s is given twice\n", opt, v);
            return CTL_USAGE;
        }
    if (*n == PA_MAX_TYPES) {
        fprintf(stderr, "ptibusctl: partner add: more than %d %s\n", PA_MAX_TYPES, opt);
        return CTL_USAGE;
    }
    list[(*n)++] = v;
    return 0;
}

static int
add_opt(ctl_t *c, int code, const char *v, void *arg)
{
    (void)c;
    add_args_t *a = arg;
    if (code == 'k')
        a->pub = v;
    else if (code == 'd')
        a->dir = v;
    else if (code == 'o')
        a->to = v;
    else if (code == 'r')
        a->replace = true;
    else if (code == 'm')
        return add_type("--may-send", v, a->may_send, &a->n_may_send);
    else if (code == 's')
        return add_type("--subscribe", v, a->subscribe, &a->n_subscribe);
    else
        return CTL_USAGE;
    return 0;
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The partner's public key from path, with the broker's reader; a file that looks like a
 * secret key (its name, or a mode no one else may read) is refused: a secret never
 * travels, and one that did must be replaced, not installed. */
static int
read_partner_key(const char *path, uint8_t pk[PT_KEY_LEN])
{
    static const char *const secret_suffixes[] = {".key", ".sign", ".hmac"};
    pt_error_t err;
    for (size_t i = 0; i < sizeof secret_suffixes / sizeof *secret_suffixes; i++)
        if (ends_with(path, secret_suffixes[i])) {
            fprintf(stderr,
                    "ptibusctl: partner add: %s: a secret key file (%s), refused: ask the "
                    "partner for its .pub file; a secret key that left its site must be "
                    "replaced (keygen a new pair there)\n",
                    path, secret_suffixes[i]);
            return CTL_REFUSED;
        }
    if (keys_read(path, pk, PT_KEY_LEN, false, &err) != 0)
        return fail(&err);
    struct stat st;
    if (lstat(path, &st) == 0 && (st.st_mode & 0044) == 0) {
        fprintf(stderr,
                "ptibusctl: partner add: %s: mode %04o, as a secret key file is: refused (a "
                "public key file is 0644; if this really is the partner's public key, chmod "
                "644 it)\n",
                path, (unsigned)(st.st_mode & 0777));
        return CTL_REFUSED;
    }
    return CTL_OK;
}

/* Copies pk to DIR/ID.pub: nothing to do when the same key is there, a different one
 * kept unless replace. */
static int
install_key(const char *path, const uint8_t pk[PT_KEY_LEN], bool replace, const char **what)
{
    uint8_t old[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1];
    pt_error_t err;
    int rc = keys_read(path, old, PT_KEY_LEN, false, &err);
    *what = "installed";
    if (rc == 0 && memcmp(old, pk, PT_KEY_LEN) == 0) {
        *what = "already installed (same key)";
        return CTL_OK;
    }
    if (rc == 0 && !replace) {
        keys_fingerprint(old, fp);
        fprintf(stderr,
                "ptibusctl: partner add: %s holds a different key (fingerprint %s): refused "
                "without --replace (the rotation of this partner's key)\n",
                path, fp);
        return CTL_REFUSED;
    }
    if (rc == 0)
        *what = "replaced (key rotation: the old key is refused after the reload)";
    else if (rc != -ENOENT)
        return fail(&err);
    return keys_write_public(path, pk, PT_KEY_LEN, &err) == 0 ? CTL_OK : fail(&err);
}

static void
yaml_list(char *buf, size_t cap, const char *key, const char *const *list, size_t n)
{
    size_t len = strlen(buf);
    len += (size_t)snprintf(buf + len, cap - len, "    %s: [", key);
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? ", " : "", list[i]);
    if (len < cap)
        snprintf(buf + len, cap - len, "]\n");
}

/* The fragment for broker.yaml's partners list. */
static void
fragment(char *buf, size_t cap, const char *id, const char *key_file, const char *fp,
         const add_args_t *a)
{
    snprintf(buf, cap,
             "# partner %s, key fingerprint %s (written by ptibusctl partner add).\n"
             "# Add under `partners:` in broker.yaml, then check and reload:\n"
             "#   ptibusd --check-config && systemctl reload ptibusd\n"
             "  - id: %s\n"
             "    public_key_file: %s\n",
             id, fp, id, key_file);
    yaml_list(buf, cap, "may_send", a->may_send, a->n_may_send);
    yaml_list(buf, cap, "subscribe", a->subscribe, a->n_subscribe);
}

static int
emit_fragment(const char *to, const char *text)
{
    pt_error_t err;
    if (to == NULL) {
        fputs(text, stdout);
        return CTL_OK;
    }
    if (atomicfile_write(to, text, strlen(text), 0644, &err) != 0)
        return fail(&err);
    printf("# wrote %s\n", to);
    return CTL_OK;
}

static const struct option add_opts[] = {{"public-key", required_argument, NULL, 'k'},
                                         {"keys-dir", required_argument, NULL, 'd'},
                                         {"to", required_argument, NULL, 'o'},
                                         {"replace", no_argument, NULL, 'r'},
                                         {"may-send", required_argument, NULL, 'm'},
                                         {"subscribe", required_argument, NULL, 's'},
                                         CTL_COMMON_OPTS,
                                         {NULL, 0, NULL, 0}};

/* partner add ID --public-key FILE [--may-send T]... [--subscribe T]... [--keys-dir DIR]
 * [--replace] [--to FILE] */
int
cmd_partner_add(ctl_t *c, int argc, char **argv)
{
    add_args_t a = {.dir = NULL};
    int rc = ctl_parse(c, argc, argv, add_opts, add_opt, &a);
    if (rc != 0)
        return rc;
    if (optind + 1 != argc || a.pub == NULL)
        return CTL_USAGE;
    const char *id = argv[optind];
    if (!validate_is_partner_id(id))
        return ctl_error(c, CTL_USAGE,
                         "\"%.40s\" is not a valid partner id: 1 to 32 of a-z, 0-9 and _", id);
    uint8_t pk[PT_KEY_LEN];
    char fp[PT_FINGERPRINT_LEN + 1], dest[4200], key_file[4300], text[8192];
    if ((rc = read_partner_key(a.pub, pk)) != CTL_OK)
        return rc;
    keys_fingerprint(pk, fp);
    const char *dir = a.dir ? a.dir : PA_DEFAULT_KEYS_DIR;
    if ((size_t)snprintf(dest, sizeof dest, "%s/%s.pub", dir, id) >= sizeof dest)
        return ctl_error(c, CTL_USAGE, "--keys-dir is too long");
    const char *what;
    if ((rc = install_key(dest, pk, a.replace, &what)) != CTL_OK)
        return rc;
    /* A comment, so that stdout stays a YAML fragment. */
    printf("# partner %s: key fingerprint %s, %s at %s\n", id, fp, what, dest);
    /* The default folder is broker.yaml's keys/; another one is named by its full path. */
    char *abs = a.dir ? realpath(dest, NULL) : NULL;
    if (a.dir)
        snprintf(key_file, sizeof key_file, "%s", abs ? abs : dest);
    else
        snprintf(key_file, sizeof key_file, "keys/%s.pub", id);
    free(abs);
    fragment(text, sizeof text, id, key_file, fp, &a);
    return emit_fragment(a.to, text);
}
