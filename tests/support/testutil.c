/* testutil: temporary directories, files, ports and clocks for tests. */
#include "testutil.h"

#include "keys.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

char *
tu_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/ptibus-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return strdup(tmpl);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void
tu_rmtree(char *path)
{
    if (path == NULL)
        return;
    if (getenv("PTIBUS_KEEP_TMP") == NULL)
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(path);
}

int
tu_read_file(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -errno;
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            uint8_t *nb = realloc(buf, cap * 2 + 1);
            if (nb == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf == NULL)
        return -ENOMEM;
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int
tu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, data, len);
    int rc = (w == (ssize_t)len) ? 0 : -EIO;
    close(fd);
    return rc;
}

int
tu_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        perror("tu_free_port");
        abort();
    }
    close(fd);
    return ntohs(a.sin_port);
}

int64_t
tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *const tu_deploy_partners[] = {"departement", "pole_emploi", "caf",    "msa",
                                          "region",      "ml_nord",     "ml_sud", NULL};

static void
must(int rc, const char *what, const pt_error_t *err)
{
    if (rc != 0) {
        fprintf(stderr, "tu_deploy_example: %s: %s\n", what, err ? err->msg : strerror(-rc));
        abort();
    }
}

char *
tu_deploy_example(const char *tag, char *config, size_t cap)
{
    char *dir = tu_tmpdir(tag);
    char keydir[4200];
    uint8_t *text;
    size_t len;
    pt_error_t err;
    must(tu_read_file(PT_SOURCE_DIR "/deploy/broker.yaml", &text, &len), "read", NULL);
    snprintf(config, cap, "%s/broker.yaml", dir);
    must(tu_write_file(config, text, len), "write", NULL);
    free(text);
    snprintf(keydir, sizeof keydir, "%s/keys", dir);
    must(mkdir(keydir, 0700) != 0 ? -errno : 0, "mkdir", NULL);
    for (int i = 0; tu_deploy_partners[i]; i++)
        must(keys_curve_generate(keydir, tu_deploy_partners[i], &err), "keys", &err);
    must(keys_curve_generate(keydir, "broker", &err), "keys", &err);
    must(keys_sign_generate(keydir, "broker", &err), "keys", &err);
    must(keys_hmac_generate(keydir, "person_index", &err), "keys", &err);
    return dir;
}

long
tu_rss_anon_kib(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f != NULL && fgets(line, sizeof line, f))
        if (strncmp(line, "RssAnon:", 8) == 0)
            kib = strtol(line + 8, NULL, 10);
    if (f != NULL)
        fclose(f);
    return kib;
}
