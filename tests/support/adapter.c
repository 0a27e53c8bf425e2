/* adapter: a real adapter daemon for integration tests (see adapter.h). */
#include "adapter.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "pjson.h"
#include "testutil.h"

static void
die(const char *what, const char *path)
{
    fprintf(stderr, "adapter test support: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) || close(fd) != 0)
        die("cannot write", path);
    chmod(path, mode);
}

static void
default_binary(td_adapter_t *a, const td_adapter_options_t *o)
{
    if (o != NULL && o->binary != NULL)
        snprintf(a->binary, sizeof a->binary, "%s", o->binary);
    else if (strncmp(a->partner, "ml_", 3) == 0)
        snprintf(a->binary, sizeof a->binary, "mission-locale");
    else {
        snprintf(a->binary, sizeof a->binary, "%s", a->partner);
        for (char *p = a->binary; *p; p++)
            if (*p == '_')
                *p = '-';
    }
}

static void
write_config(td_adapter_t *a, const td_adapter_options_t *o)
{
    FILE *f = fopen(a->config, "w");
    if (f == NULL)
        die("cannot write", a->config);
    char endpoint[512];
    if (o != NULL && o->broker_endpoints != NULL)
        snprintf(endpoint, sizeof endpoint, "  endpoints: %s\n", o->broker_endpoints);
    else
        snprintf(endpoint, sizeof endpoint, "  endpoint: \"%s\"\n", a->net->endpoint);
    fprintf(f,
            "id: %s\nbroker:\n%s%s  server_public_key_file: ../keys/broker.pub\n"
            "  secret_key_file: ../keys/%s.key\n  public_key_file: ../keys/%s.pub\n"
            "  credit: %u\nspool:\n  dir: %s\n  retention: 24h\n%s%s%s"
            "http:\n  listen: \"127.0.0.1:%d\"\n  tokens_file: tokens\n"
            "inbox:\n  dir: inbox\n  scan_interval: 200ms\n  codecs: %s\n%s",
            a->partner, endpoint, o && o->extra_broker ? o->extra_broker : "", a->partner,
            a->partner, o && o->credit ? o->credit : 64u,
            o && o->spool_dir ? o->spool_dir : "spool", o && o->spool_max ? "  max_size: " : "",
            o && o->spool_max ? o->spool_max : "", o && o->spool_max ? "\n" : "", a->http_port,
            o && o->codecs ? o->codecs : "[json, jsonl]",
            o && o->extra_inbox ? o->extra_inbox : "");
    if (o != NULL && o->pull)
        fprintf(f, "egress:\n  kind: pull\n");
    else if (o != NULL && o->webhook_url != NULL)
        fprintf(
            f,
            "egress:\n  kind: webhook\n  webhook:\n    url: \"%s\"\n"
            "    secret_file: webhook.secret\n    timeout: 5s\n    final_statuses: [400, 422]\n",
            o->webhook_url);
    else
        fprintf(f, "egress:\n  kind: outbox\n  outbox: outbox\n  receipts: true\n%s",
                o && o->extra_egress ? o->extra_egress : "");
    fclose(f);
}

void
td_adapter_init(td_adapter_t *a, td_net_t *n, const char *partner, const td_adapter_options_t *o)
{
    memset(a, 0, sizeof *a);
    a->net = n;
    snprintf(a->partner, sizeof a->partner, "%s", partner);
    default_binary(a, o);
    snprintf(a->dir, sizeof a->dir, "%s/adapter-%s", n->dir, partner);
    snprintf(a->config, sizeof a->config, "%s/adapter.yaml", a->dir);
    snprintf(a->outbox, sizeof a->outbox, "%s/outbox", a->dir);
    snprintf(a->inbox, sizeof a->inbox, "%s/inbox", a->dir);
    snprintf(a->log, sizeof a->log, "%s/adapter.log", a->dir);
    snprintf(a->token, sizeof a->token, "tok-%s-%08x", partner, (unsigned)rand());
    if (mkdir(a->dir, 0700) != 0 && errno != EEXIST)
        die("cannot make", a->dir);
    a->http_port = tu_free_port();
    char path[4400], line[80];
    snprintf(path, sizeof path, "%s/tokens", a->dir);
    snprintf(line, sizeof line, "%s\n", a->token);
    write_text(path, line, 0600);
    snprintf(path, sizeof path, "%s/webhook.secret", a->dir);
    write_text(path, TD_WEBHOOK_SECRET "\n", 0600);
    write_config(a, o);
}

static void
print_log(const td_adapter_t *a)
{
    uint8_t *text = NULL;
    size_t len = 0;
    if (tu_read_file(a->log, &text, &len) == 0)
        fprintf(stderr, "---- %s\n%s", a->log, (char *)text);
    free(text);
}

int
td_adapter_start(td_adapter_t *a)
{
    char bin[4400];
    snprintf(bin, sizeof bin, "%s/ptibus-adapter-%s", PT_ADAPTER_BIN_DIR, a->binary);
    a->pid = fork();
    if (a->pid == 0) {
        int fd = open(a->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        setenv("PTIBUS_LOG_LEVEL", "debug", 1);
        for (size_t i = 0; a->env != NULL && a->env[i] != NULL; i++)
            putenv((char *)a->env[i]); /* the child's own copy of the environment */
        execl(bin, bin, "--config", a->config, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 200; i++) {
        if (td_adapter_http(a, "GET", "/healthz", NULL, 0, NULL) == 200)
            return 0;
        int status;
        if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
            a->pid = 0;
            break;
        }
        usleep(50 * 1000);
    }
    print_log(a);
    return -1;
}

int
td_adapter_stop(td_adapter_t *a)
{
    if (a->pid <= 0)
        return -1;
    int status = 0;
    kill(a->pid, SIGTERM);
    pid_t r = waitpid(a->pid, &status, 0);
    a->pid = 0;
    return r > 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void
td_adapter_kill9(td_adapter_t *a)
{
    if (a->pid <= 0)
        return;
    kill(a->pid, SIGKILL);
    waitpid(a->pid, NULL, 0);
    a->pid = 0;
}

bool
td_adapter_exited(td_adapter_t *a, int *status)
{
    if (a->pid <= 0 || waitpid(a->pid, status, WNOHANG) != a->pid)
        return a->pid <= 0;
    a->pid = 0;
    return true;
}

bool
td_adapter_wait_ready(td_adapter_t *a, int ms)
{
    int64_t end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        if (td_adapter_http(a, "GET", "/readyz", NULL, 0, NULL) == 200)
            return true;
        usleep(50 * 1000);
    }
    return false;
}

typedef struct buf {
    char *p;
    size_t n;
} buf_t;

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    buf_t *b = arg;
    size_t k = size * nmemb;
    char *p = realloc(b->p, b->n + k + 1);
    if (p == NULL)
        return 0;
    memcpy(p + b->n, data, k);
    b->p = p;
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

long
td_adapter_http(td_adapter_t *a, const char *method, const char *path, const char *data, size_t len,
                char **body)
{
    return td_adapter_http_h(a, method, path, data, len, NULL, body);
}

long
td_adapter_http_h(td_adapter_t *a, const char *method, const char *path, const char *data,
                  size_t len, const char *header, char **body)
{
    return td_adapter_http_hh(a, method, path, data, len, header, body, NULL);
}

long
td_adapter_http_hh(td_adapter_t *a, const char *method, const char *path, const char *data,
                   size_t len, const char *header, char **body, char **resp_headers)
{
    CURL *c = curl_easy_init();
    char url[256], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", a->http_port, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->token);
    struct curl_slist *h = curl_slist_append(NULL, auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    if (header != NULL)
        h = curl_slist_append(h, header);
    buf_t b = {0}, hb = {0};
    if (resp_headers != NULL) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    if (data != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    if (body != NULL)
        *body = b.p;
    else
        free(b.p);
    if (resp_headers != NULL)
        *resp_headers = hb.p;
    return status;
}

long
td_adapter_post_env(td_adapter_t *a, const Ptibus__V1__Envelope *env, char **body)
{
    json_t *doc = NULL;
    pt_error_t err;
    pt_error_clear(&err);
    if (pjson_from_message(&env->base, &doc, &err) != 0)
        return 0;
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    long st = td_adapter_http(a, "POST", "/v1/messages", text, strlen(text), body);
    free(text);
    return st;
}

static bool
is_delivery(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' && n > 5 && strcmp(name + n - 5, ".json") == 0;
}

size_t
td_outbox_count(const td_adapter_t *a)
{
    DIR *d = opendir(a->outbox);
    size_t n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        n += e->d_type == DT_REG && is_delivery(e->d_name);
    if (d != NULL)
        closedir(d);
    return n;
}

bool
td_outbox_has(const td_adapter_t *a, const char *message_id)
{
    DIR *d = opendir(a->outbox);
    bool found = false;
    char tail[128];
    snprintf(tail, sizeof tail, "-%s.json", message_id);
    for (struct dirent *e; !found && d != NULL && (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name), k = strlen(tail);
        found = n > k && strcmp(e->d_name + n - k, tail) == 0;
    }
    if (d != NULL)
        closedir(d);
    return found;
}

size_t
td_outbox_wait(const td_adapter_t *a, size_t n, int ms)
{
    int64_t end = tu_now_ms() + ms;
    size_t got = td_outbox_count(a);
    while (got < n && tu_now_ms() < end) {
        usleep(50 * 1000);
        got = td_outbox_count(a);
    }
    return got;
}

void
td_adapter_drop(const td_adapter_t *a, const char *name, const void *data, size_t len)
{
    char tmp[4400], final[4400];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", a->inbox, name);
    snprintf(final, sizeof final, "%s/%s", a->inbox, name);
    if (tu_write_file(tmp, data, len) != 0 || rename(tmp, final) != 0)
        die("cannot drop", final);
}
