/* settings: where things are for ptibusctl: the config file (--config, else
 * $PTIBUS_CONFIG, else /etc/ptibus/ptibusctl.yaml), each value replaced by its option
 * when one is given; and the options every command shares (see ctl.h). */
#include "ctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* The config file's keys: section, key, and the setting it fills. */
typedef struct conf_key {
    const char *section, *key;
    size_t off; /* offsetof(ctl_settings_t, ...) */
    bool path;  /* a file name: relative to the config file's folder */
} conf_key_t;

#define SET(f) offsetof(ctl_settings_t, f)
static const conf_key_t conf_keys[] = {
    {"broker", "endpoint", SET(endpoint), false},
    {"broker", "admin", SET(admin), false},
    {"broker", "public_key", SET(server_pub), true},
    {"journal", "dir", SET(journal), true},
    {"journal", "sign_public_key", SET(sign_pub), true},
    {"journal", "person_index_key", SET(person_key), true},
    {"operator", "name", SET(operator_name), false},
    {"operator", "key", SET(admin_key), true},
    {"operator", "public_key", SET(admin_pub), true},
    {"partners", "keys_dir", SET(partner_keys), true},
};
#define N_CONF_KEYS (sizeof conf_keys / sizeof conf_keys[0])

static const char **
field(ctl_settings_t *s, size_t off)
{
    return (const char **)((char *)s + off);
}

static const char *
keep(ctl_t *c, char *s)
{
    char **v = s ? realloc(c->owned, (c->n_owned + 1) * sizeof *v) : NULL;
    if (v == NULL) {
        free(s);
        return NULL;
    }
    c->owned = v;
    c->owned[c->n_owned++] = s;
    return s;
}

/* A relative file name in the config is relative to the config file's folder. */
static const char *
resolve(ctl_t *c, const char *value)
{
    const char *slash = strrchr(c->config_path, '/');
    if (value[0] == '/' || slash == NULL)
        return keep(c, strdup(value)); /* the config tree is freed after the load */
    size_t n = (size_t)(slash - c->config_path) + 1 + strlen(value) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%.*s/%s", (int)(slash - c->config_path), c->config_path, value);
    return keep(c, s);
}

static int
load_sections(ctl_t *c, const config_t *cfg, pt_error_t *err)
{
    static const char *const sections[] = {"broker", "journal", "operator", "partners", NULL};
    const config_node_t *root = config_root(cfg);
    if (root == NULL)
        return 0;
    int rc = config_expect_map(cfg, root, err);
    if (rc == 0)
        rc = config_check_keys(cfg, root, sections, err);
    for (size_t s = 0; rc == 0 && sections[s]; s++) {
        const config_node_t *m = NULL;
        const char *allowed[8];
        size_t n = 0;
        for (size_t i = 0; i < N_CONF_KEYS; i++)
            if (strcmp(conf_keys[i].section, sections[s]) == 0)
                allowed[n++] = conf_keys[i].key;
        allowed[n] = NULL;
        const config_node_t *raw = config_map_get(root, sections[s]);
        if (raw && config_node_kind(raw) == CONFIG_SCALAR && config_node_is_null(raw))
            continue; /* a section left empty (its keys commented out) */
        rc = config_get_map(cfg, root, sections[s], false, &m, err);
        if (rc == 0 && m)
            rc = config_check_keys(cfg, m, allowed, err);
        for (size_t i = 0; rc == 0 && m && i < N_CONF_KEYS; i++) {
            const char *v = NULL;
            if (strcmp(conf_keys[i].section, sections[s]) != 0)
                continue;
            rc = config_get_string(cfg, m, conf_keys[i].key, false, &v, err);
            if (rc == 0 && v)
                v = conf_keys[i].path ? resolve(c, v) : keep(c, strdup(v));
            if (rc == 0 && v == NULL && config_map_get(m, conf_keys[i].key))
                rc = pt_error_set(err, -ENOMEM, "config", "out of memory");
            if (rc == 0 && v)
                *field(&c->set, conf_keys[i].off) = v;
        }
    }
    return rc;
}

static const char *
key_path(ctl_t *c, const char *suffix)
{
    size_t n = strlen(c->set.partner_keys) + strlen(c->as) + strlen(suffix) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s%s", c->set.partner_keys, c->as, suffix);
    return keep(c, s);
}

/* The partner key pair: --key/--pub, or --as NAME in partners.keys_dir. */
static int
as_keys(ctl_t *c)
{
    c->set.key = c->over.key;
    c->set.pub = c->over.pub;
    if (c->as == NULL)
        return 0;
    if (!ctl_need(c, c->set.partner_keys, "--key and --pub", "partners.keys_dir"))
        return CTL_USAGE;
    c->set.key = key_path(c, ".key");
    c->set.pub = key_path(c, ".pub");
    if (c->set.key == NULL || c->set.pub == NULL) {
        fprintf(stderr, "ptibusctl: out of memory\n");
        return CTL_FAILED;
    }
    return 0;
}

int
ctl_load(ctl_t *c)
{
    if (c->config_path == NULL) {
        const char *env = getenv("PTIBUS_CONFIG");
        c->config_given = env && env[0];
        c->config_path = c->config_given ? env : CTL_DEFAULT_CONFIG;
    }
    config_t *cfg = NULL;
    pt_error_t err;
    int rc = config_load_file(c->config_path, &cfg, &err);
    if (rc == -ENOENT && !c->config_given)
        rc = 0; /* no file at the default place: options only */
    else if (rc == 0)
        rc = load_sections(c, cfg, &err);
    config_destroy(&cfg);
    if (rc != 0)
        return fail(&err);
    for (size_t i = 0; i < N_CONF_KEYS; i++)
        if (*field(&c->over, conf_keys[i].off))
            *field(&c->set, conf_keys[i].off) = *field(&c->over, conf_keys[i].off);
    return as_keys(c);
}

void
ctl_fini(ctl_t *c)
{
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    c->owned = NULL;
    c->n_owned = 0;
}

static int
set_format(ctl_t *c, const char *v)
{
    static const char *const names[] = {"table", "tsv", "csv", "json", "html"};
    if (strcmp(v, "jsonl") == 0)
        v = "json"; /* JSON Lines is what json writes */
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcmp(v, names[i]) == 0) {
            c->fmt = (ctl_format_t)i;
            return 0;
        }
    fprintf(stderr, "ptibusctl: %s: --format %.20s is not table, tsv, csv, json or html\n", c->name,
            v);
    return CTL_USAGE;
}

/* --as NAME: NAME.key and NAME.pub in partners.keys_dir (resolved after the load). */
static int
set_as(ctl_t *c, const char *name)
{
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-')) {
            fprintf(stderr, "ptibusctl: %s: --as %.40s is not a partner id\n", c->name, name);
            return CTL_USAGE;
        }
    c->as = name;
    return 0;
}

int
ctl_option(ctl_t *c, int code, const char *v)
{
    switch (code) {
    case CTL_OPT_CONFIG:
        c->config_path = v;
        c->config_given = true;
        return 0;
    case CTL_OPT_FORMAT:
        return set_format(c, v);
    case CTL_OPT_HELP:
        ctl_print_help(c, stdout);
        return -1;
    case CTL_OPT_VERSION:
        printf("ptibusctl %s\n", PTIBUS_VERSION);
        return -1;
    case CTL_OPT_ENDPOINT:
        c->over.endpoint = v;
        return 0;
    case CTL_OPT_ADMIN:
        c->over.admin = v;
        return 0;
    case CTL_OPT_SERVER_KEY:
        c->over.server_pub = v;
        return 0;
    case CTL_OPT_KEY:
        c->over.key = c->over.admin_key = v;
        return 0;
    case CTL_OPT_PUB:
        c->over.pub = c->over.admin_pub = v;
        return 0;
    case CTL_OPT_AS:
        return set_as(c, v);
    case CTL_OPT_JOURNAL:
        c->over.journal = v;
        return 0;
    case CTL_OPT_OPERATOR:
        c->over.operator_name = v;
        return 0;
    }
    return CTL_USAGE;
}

int
ctl_parse(ctl_t *c, int argc, char **argv, const void *longopts, ctl_opt_fn fn, void *arg)
{
    int code, rc = 0;
    optind = 0; /* glibc: a full re-initialisation */
    opterr = 1;
    while (rc == 0 && (code = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (code == '?' || code == ':')
            rc = CTL_USAGE;
        else if (code >= CTL_OPT_BASE)
            rc = ctl_option(c, code, optarg);
        else
            rc = fn ? fn(c, code, optarg, arg) : CTL_USAGE;
    }
    return rc;
}

bool
ctl_need(const ctl_t *c, const char *value, const char *option, const char *key)
{
    if (value && value[0])
        return true;
    fprintf(stderr, "ptibusctl: %s: no %s: give %s or set %s in %s\n", c->name, key, option, key,
            c->config_path ? c->config_path : CTL_DEFAULT_CONFIG);
    return false;
}

void
ctl_print_help(const ctl_t *c, FILE *out)
{
    fprintf(out,
            "usage: ptibusctl %s %s\n\n%s\n\ncommon options: --config FILE (default %s or "
            "$PTIBUS_CONFIG), --format table|tsv|csv|json|html, --help\nsee man ptibusctl or "
            "docs/ptibusctl.md\n",
            c->name, c->usage, c->help, CTL_DEFAULT_CONFIG);
}

/* config show: the settings in effect, for a person checking the file. */
int
cmd_config_show(ctl_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CTL_COMMON_OPTS, CTL_CONN_OPTS, {NULL, 0, NULL, 0}};
    static const out_col_t cols[] = {{"key", 24, false}, {"value", 0, false}};
    int rc = ctl_parse(c, argc, argv, opts, NULL, NULL);
    if (rc == 0 && optind != argc)
        rc = CTL_USAGE;
    if (rc == 0)
        rc = ctl_load(c);
    if (rc != 0)
        return rc;
    out_t o;
    out_begin(&o, c->fmt, cols, 2);
    const char *file[] = {"config", c->config_path};
    out_row(&o, file);
    for (size_t i = 0; i < N_CONF_KEYS; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s.%s", conf_keys[i].section, conf_keys[i].key);
        const char *row[] = {key, *field(&c->set, conf_keys[i].off)};
        out_row(&o, row);
    }
    out_end(&o);
    return CTL_OK;
}
