/* daemon: start and stop real ptibusd processes for tests. */
#include "daemon.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>

#include "keys.h"
#include "testutil.h"

const char *const td_partners[] = {"departement", "pole_emploi", "caf", "msa",
                                   "region",      "ml_nord",     NULL};

static const char *const td_may_send[] = {
    "[orientation, sanction, referral, referral_status, reorientation_answer]",
    "[sanction, referral, referral_status, reorientation_request]",
    "[beneficiary_event, referral_status]",
    "[beneficiary_event, referral_status]",
    "[training_offer, referral_status]",
    "[referral, referral_status, reorientation_request]",
};

/* The Meuse routes of deploy/broker.yaml. */
static const char td_routes[] =
    "routes:\n"
    "  - type: orientation\n"
    "    to: [pole_emploi]\n"
    "    to_field: {field: referent_org.partner_id, allow: [pole_emploi, ml_nord]}\n"
    "    by_field: {field: person.payer, map: {PAYER_CAF: caf, PAYER_MSA: msa}}\n"
    "  - type: reorientation_request\n    to: [departement]\n"
    "  - type: reorientation_answer\n    to_correlated_sender: true\n"
    "  - type: referral\n"
    "    to_field:\n      field: target_org.partner_id\n"
    "      allow: [departement, pole_emploi, region, ml_nord]\n"
    "  - type: referral_status\n    to_correlated_sender: true\n"
    "  - type: sanction\n"
    "    when: {field: phase, equals: SANCTION_PHASE_PROPOSAL}\n"
    "    to: [departement]\n"
    "  - type: sanction\n"
    "    when: {field: phase, equals: SANCTION_PHASE_DECISION}\n"
    "    to: [pole_emploi]\n"
    "    by_field: {field: person.payer, map: {PAYER_CAF: caf, PAYER_MSA: msa}}\n"
    "  - type: training_offer\n    to_subscribers: true\n"
    "  - type: beneficiary_event\n    to: [departement]\n";

static void
die(const char *what, const pt_error_t *err)
{
    fprintf(stderr, "td: %s: %s\n", what, err ? err->msg : strerror(errno));
    abort();
}

static void
td_keys(td_net_t *n)
{
    char kdir[4200];
    pt_error_t err;
    snprintf(kdir, sizeof kdir, "%s/keys", n->dir);
    mkdir(kdir, 0700);
    if (keys_curve_generate(kdir, "broker", &err) || keys_sign_generate(kdir, "journal", &err) ||
        keys_hmac_generate(kdir, "person-index", &err) ||
        keys_curve_generate(kdir, "intruder", &err) || keys_curve_generate(kdir, "admin", &err))
        die("keys", &err);
    for (int i = 0; td_partners[i]; i++)
        if (keys_curve_generate(kdir, td_partners[i], &err))
            die("keys", &err);
    char path[4300];
    snprintf(path, sizeof path, "%s/broker.pub", kdir);
    if (keys_read(path, n->server_pk, 32, false, &err))
        die("keys", &err);
}

void
td_net_configure(td_net_t *n, const td_net_options_t *o)
{
    if (o != NULL)
        n->opts = *o;
    else
        memset(&n->opts, 0, sizeof n->opts);
    FILE *f = fopen(n->config, "w");
    if (f == NULL)
        die(n->config, NULL);
    char admin_pub[128] = "", path[4300];
    snprintf(path, sizeof path, "%s/keys/admin.pub", n->dir);
    FILE *k = fopen(path, "r");
    if (k == NULL || fgets(admin_pub, sizeof admin_pub, k) == NULL)
        die(path, NULL);
    fclose(k);
    admin_pub[strcspn(admin_pub, "\n")] = '\0';
    fprintf(f, "listen: \"%s\"\n", n->endpoint);
    if (o && o->admin_name)
        fprintf(f,
                "admin:\n  listen: \"%s\"\n  keys:\n    - name: %s\n"
                "      public_key_file: keys/admin.pub\n",
                n->admin_endpoint, o->admin_name);
    else
        fprintf(f, "admin:\n  listen: \"%s\"\n  keys: [\"%s\"]\n", n->admin_endpoint, admin_pub);
    fprintf(f, "metrics:\n  listen: \"127.0.0.1:%d\"\n", n->metrics_port);
    fprintf(f, "journal:\n  dir: \"%s\"\n  checkpoint_interval: 1s\n", n->journal_dir);
    if (o && o->journal_max_size)
        fprintf(f, "  max_size: %s\n", o->journal_max_size);
    if (o && o->journal_initial_size)
        fprintf(f, "  initial_size: %s\n", o->journal_initial_size);
    if (o && o->extra_journal)
        fputs(o->extra_journal, f);
    fprintf(f, "keys:\n  server_secret: keys/broker.key\n  signing_secret: keys/journal.sign\n"
               "  person_index_hmac: keys/person-index.hmac\n");
    fprintf(f, "limits:\n  heartbeat_interval: 1s\n");
    if (o && o->max_message_size)
        fprintf(f, "  max_message_size: %s\n", o->max_message_size);
    if (o && o->extra_limits)
        fputs(o->extra_limits, f);
    fprintf(f,
            "delivery:\n  ack_timeout: %s\n  max_attempts: %s\n"
            "  backoff_initial: 100ms\n  backoff_max: 400ms\n",
            o && o->ack_timeout ? o->ack_timeout : "1s",
            o && o->max_attempts ? o->max_attempts : "3");
    fprintf(f, "partners:\n");
    for (int i = 0; td_partners[i]; i++)
        fprintf(f,
                "  - id: %s\n    public_key_file: keys/%s.pub\n    may_send: %s\n"
                "    subscribe: %s\n",
                td_partners[i], td_partners[i], td_may_send[i],
                strcmp(td_partners[i], "region") ? "[training_offer]" : "[]");
    fputs(td_routes, f);
    if (o && o->extra_config)
        fputs(o->extra_config, f);
    fclose(f);
}

/* Free ports now; another process may take one before the broker binds it (see
 * td_broker_start). */
static void
pick_ports(td_net_t *n)
{
    n->port = tu_free_port();
    snprintf(n->endpoint, sizeof n->endpoint, "tcp://127.0.0.1:%d", n->port);
    snprintf(n->admin_endpoint, sizeof n->admin_endpoint, "tcp://127.0.0.1:%d", tu_free_port());
    n->metrics_port = tu_free_port();
}

void
td_net_init(td_net_t *n, const char *tag, const td_net_options_t *opts)
{
    memset(n, 0, sizeof *n);
    n->dir = tu_tmpdir(tag);
    pick_ports(n);
    snprintf(n->config, sizeof n->config, "%s/broker.yaml", n->dir);
    snprintf(n->journal_dir, sizeof n->journal_dir, "%s/journal", n->dir);
    n->notify_fd = -1;
    td_keys(n);
    td_net_configure(n, opts);
}

/* The brokers started and not yet reaped, killed at exit: a test without a teardown
 * whose assertion fails skips its td_net_fini, and an orphan broker would hold ctest's
 * pipe until the test's timeout. Pids, not nets (a net may live on a dead stack frame);
 * only a pid that is still our running child is killed. */
#define TD_LIVE_MAX 64
static pid_t td_live[TD_LIVE_MAX];

/* 1: our child and running; 0: exited, not yet reaped; -1: not our child (reaped). Never
 * reaps (WNOWAIT): the tests' own waitpid calls still see it. */
static int
child_state(pid_t pid)
{
    siginfo_t si = {0};
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
        return -1;
    return si.si_pid == 0 ? 1 : 0;
}

static void
td_kill_orphans(void)
{
    for (size_t i = 0; i < TD_LIVE_MAX; i++)
        if (td_live[i] > 0 && child_state(td_live[i]) == 1)
            kill(td_live[i], SIGKILL);
}

static void
td_track(pid_t pid)
{
    static bool registered;
    if (!registered)
        registered = atexit(td_kill_orphans) == 0;
    for (size_t i = 0; i < TD_LIVE_MAX; i++)
        if (td_live[i] <= 0 || child_state(td_live[i]) < 0) {
            td_live[i] = pid; /* a free slot, or one whose broker is gone */
            return;
        }
}

void
td_net_share_keys(td_net_t *n, const td_net_t *from, const td_net_options_t *opts)
{
    char src[4300], dst[4300];
    snprintf(src, sizeof src, "%s/keys", from->dir);
    DIR *d = opendir(src);
    if (d == NULL)
        die(src, NULL);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        uint8_t *data = NULL;
        size_t len = 0;
        snprintf(src, sizeof src, "%s/keys/%s", from->dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/keys/%s", n->dir, e->d_name);
        if (tu_read_file(src, &data, &len) != 0 || tu_write_file(dst, data, len) != 0)
            die(dst, NULL);
        free(data);
    }
    closedir(d);
    memcpy(n->server_pk, from->server_pk, sizeof n->server_pk);
    td_net_configure(n, opts);
}

void
td_net_fini(td_net_t *n)
{
    if (n->pid > 0)
        td_broker_kill9(n);
    if (n->notify_fd >= 0)
        close(n->notify_fd);
    n->notify_fd = -1;
    tu_rmtree(n->dir);
    n->dir = NULL;
}

static int
notify_socket(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        die("notify socket path too long", NULL);
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("notify socket", NULL);
    return fd;
}

static void
print_log(td_net_t *n)
{
    char path[4300], line[1024];
    snprintf(path, sizeof path, "%s/broker.log", n->dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    fprintf(stderr, "---- %s\n", path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* PTIBUS_TEST_WRAPPER: a command line (words separated by spaces, no quoting) that
 * every broker a test starts runs under, e.g. "valgrind --error-exitcode=99". */
#define TD_WRAPPER_MAX 32

/* Splits the wrapper into argv (in the child: the copy of the environment is its own);
 * returns the number of words. */
static size_t
wrapper_split(char **argv)
{
    const char *w = getenv("PTIBUS_TEST_WRAPPER");
    size_t k = 0;
    char *copy = w != NULL ? strdup(w) : NULL, *save = NULL;
    for (char *t = copy ? strtok_r(copy, " ", &save) : NULL; t && k < TD_WRAPPER_MAX;
         t = strtok_r(NULL, " ", &save))
        argv[k++] = t;
    return k;
}

/* How long a broker may take to say READY=1: 10 s, 120 s under a wrapper (valgrind
 * runs it some 20 to 50 times slower). */
static int64_t
ready_timeout_ms(void)
{
    const char *w = getenv("PTIBUS_TEST_WRAPPER");
    return w != NULL && *w ? 120000 : 10000;
}

static void
td_exec(td_net_t *n, const char *notify_path)
{
    char log[4300];
    snprintf(log, sizeof log, "%s/broker.log", n->dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    setenv("NOTIFY_SOCKET", notify_path, 1);
    setenv("PTIBUS_LOG_LEVEL", "debug", 1);
    for (size_t i = 0; n->env != NULL && n->env[i] != NULL; i++)
        putenv((char *)n->env[i]); /* the child's own copy of the environment */
    char *argv[TD_WRAPPER_MAX + 4];
    size_t k = wrapper_split(argv);
    bool wrapped = k > 0;
    argv[k++] = wrapped ? (char *)PT_PTIBUSD_PATH : (char *)"ptibusd";
    argv[k++] = (char *)"--config";
    argv[k++] = n->config;
    argv[k] = NULL;
    if (wrapped)
        execvp(argv[0], argv);
    else
        execv(PT_PTIBUSD_PATH, argv);
    _exit(127);
}

/* Waits for a notification containing what on the notify socket while the child is
 * alive. */
static int
wait_notify(td_net_t *n, int fd, const char *what, int ms)
{
    int64_t deadline = tu_now_ms() + ms;
    while (tu_now_ms() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            char buf[256];
            ssize_t r = recv(fd, buf, sizeof buf - 1, 0);
            if (r > 0) {
                buf[r] = '\0';
                if (strstr(buf, what))
                    return 0;
            }
        }
        int status;
        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = 0;
            return -1;
        }
    }
    return -1;
}

static int
wait_ready(td_net_t *n, int fd)
{
    return wait_notify(n, fd, "READY=1", ready_timeout_ms());
}

static pid_t
spawn(td_net_t *n, const char *notify_path)
{
    n->pid = fork();
    if (n->pid > 0)
        td_track(n->pid);
    if (n->pid < 0)
        die("fork", NULL);
    if (n->pid == 0)
        td_exec(n, notify_path);
    return n->pid;
}

int
td_broker_spawn(td_net_t *n)
{
    char notify_path[4300];
    snprintf(notify_path, sizeof notify_path, "%s/notify", n->dir);
    if (n->notify_fd >= 0)
        close(n->notify_fd);
    n->notify_fd = notify_socket(notify_path);
    return spawn(n, notify_path) > 0 ? 0 : -1;
}

int
td_broker_wait_notify(td_net_t *n, const char *what, int ms)
{
    if (n->pid <= 0 || n->notify_fd < 0)
        return -1;
    return wait_notify(n, n->notify_fd, what, ms);
}

static int broker_start_once(td_net_t *n);

/* Starts the broker; when one of its ports was taken meanwhile (tests run in parallel,
 * and a free port may become some connection's local port), picks new ones and tries
 * again. */
int
td_broker_start(td_net_t *n)
{
    int rc = broker_start_once(n);
    for (int i = 0; rc != 0 && i < 3 && td_log_contains(n, "Address already in use"); i++) {
        pick_ports(n);
        td_net_configure(n, &n->opts);
        rc = broker_start_once(n);
    }
    return rc;
}

static int
broker_start_once(td_net_t *n)
{
    char notify_path[4300];
    snprintf(notify_path, sizeof notify_path, "%s/notify", n->dir);
    int fd = notify_socket(notify_path);
    spawn(n, notify_path);
    int rc = wait_ready(n, fd);
    close(fd);
    if (rc != 0) {
        print_log(n);
        if (n->pid > 0)
            td_broker_kill9(n);
    }
    return rc;
}

int
td_broker_stop(td_net_t *n)
{
    if (n->pid <= 0)
        return -1;
    kill(n->pid, SIGTERM);
    int status = 0;
    pid_t r = waitpid(n->pid, &status, 0);
    n->pid = 0;
    if (r < 0 || !WIFEXITED(status)) {
        print_log(n);
        return -1;
    }
    return WEXITSTATUS(status);
}

void
td_broker_kill9(td_net_t *n)
{
    if (n->pid <= 0)
        return;
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = 0;
}

/* Connects to endpoint with the key pair keys/<keyname>.{key,pub}. */
static int
td_open(td_net_t *n, const char *endpoint, const char *keyname, const client_options_t *extra,
        client_t **out)
{
    uint8_t sk[32], pk[32];
    char path[4300];
    pt_error_t err;
    snprintf(path, sizeof path, "%s/keys/%s.key", n->dir, keyname);
    if (keys_read(path, sk, 32, true, &err))
        die("client key", &err);
    snprintf(path, sizeof path, "%s/keys/%s.pub", n->dir, keyname);
    if (keys_read(path, pk, 32, false, &err))
        die("client key", &err);
    client_options_t o = *extra;
    o.endpoint = endpoint;
    o.server_pk = n->server_pk;
    o.client_sk = sk;
    o.client_pk = pk;
    o.client_name = "ptibus-test";
    return client_open(&o, out, &err);
}

int
td_client_open(td_net_t *n, const char *partner, bool curve, client_t **out)
{
    client_options_t o = {.no_curve = !curve};
    return td_open(n, n->endpoint, partner, &o, out);
}

int
td_admin_open(td_net_t *n, const char *keyname, client_t **out)
{
    client_options_t o = {0};
    return td_open(n, n->admin_endpoint, keyname, &o, out);
}

int
td_client_session(td_net_t *n, const char *partner, uint32_t initial_credit, client_t **out)
{
    pt_error_t err;
    char who[64];
    client_options_t o = {.initial_credit = initial_credit};
    if (td_open(n, n->endpoint, partner, &o, out) != 0)
        return -1;
    if (client_hello(*out, 5000, who, sizeof who, &err) != 0 || strcmp(who, partner) != 0) {
        fprintf(stderr, "td: hello as %s: %s\n", partner, err.msg);
        client_close(out);
        return -1;
    }
    return 0;
}

bool
td_log_contains(td_net_t *n, const char *s)
{
    return td_log_count(n, s) > 0;
}

int
td_log_count(td_net_t *n, const char *s)
{
    char path[4300];
    snprintf(path, sizeof path, "%s/broker.log", n->dir);
    uint8_t *buf;
    size_t len;
    if (tu_read_file(path, &buf, &len) != 0)
        return 0;
    int k = 0;
    for (char *p = strstr((char *)buf, s); p != NULL; p = strstr(p + 1, s))
        k++;
    free(buf);
    return k;
}

typedef struct body {
    char *text;
    size_t len;
} body_t;

static size_t
on_body(char *data, size_t size, size_t n, void *arg)
{
    body_t *b = arg;
    char *t = realloc(b->text, b->len + size * n + 1);
    if (t == NULL)
        return 0;
    memcpy(t + b->len, data, size * n);
    b->len += size * n;
    t[b->len] = '\0';
    b->text = t;
    return size * n;
}

long
td_metrics_scrape(td_net_t *n, char **text)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", n->metrics_port);
    body_t b = {0};
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    *text = b.text;
    return status;
}

double
td_metric_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}
