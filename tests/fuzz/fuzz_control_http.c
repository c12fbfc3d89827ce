/* tests/fuzz/fuzz_control_http.c — libFuzzer target: the whole HTTP request
 * path of a running controller. Each input is the raw bytes of one client
 * connection, sent to a controller started in this process with --auth
 * (libmicrohttpd parses it, the router matches it, the guard authenticates and
 * authorizes it, the handler runs: apply, ingest, produce, records, registry,
 * lineage, …). "$TOKEN" in the input is replaced by the admin token, so the
 * fuzzer reaches the handlers behind the guard; "$EDITOR" by an editor token of
 * team "fuzz".
 *
 * Fails on: a crash or sanitizer report on any server thread, a 500 answer (an
 * unexpected error; 503 "not ready" is an answer), a hang (no answer within 20 s:
 * libFuzzer's -timeout should be above that), or a token in an answer that is
 * not the token endpoint's. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control/auth.h"
#include "control/controller.h"
#include "core/log.h"

static dm_controller_t *ctl;
static uint16_t port;
static char admin[160], editor[160];
static char data_dir[] = "/tmp/dm-fuzz-http-XXXXXX";

static void read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(out, (int)cap, f)) abort();
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
}

/* Sends one request and returns the answer's status (0: no status line). */
static int roundtrip(const uint8_t *data, size_t size, char *reply, size_t cap, size_t *got)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) abort();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) abort();
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0) break; /* the server may close early (a refused header) */
        off += (size_t)n;
    }
    shutdown(fd, SHUT_WR); /* a truncated request ends here, as a client that goes away */
    *got = 0;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) == 1) {
            ssize_t n = recv(fd, reply + *got, cap - 1 - *got, 0);
            if (n <= 0) break;
            *got += (size_t)n;
            if (*got == cap - 1) break;
        }
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 20) {
            fprintf(stderr, "fuzz_control_http: no answer within 20 s\n");
            abort();
        }
    }
    close(fd);
    reply[*got] = '\0';
    int status = 0;
    if (*got >= 12 && memcmp(reply, "HTTP/1.", 7) == 0) status = atoi(reply + 9);
    return status;
}

/* At the end of a run: the controller stopped and its data directory gone. */
static void teardown(void)
{
    dm_controller_stop(ctl);
    ctl = NULL;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data_dir);
    if (system(cmd)) fprintf(stderr, "fuzz_control_http: could not remove %s\n", data_dir);
}

static void setup(void)
{
    dm_log_set_level(DM_LOG_ERROR);
    if (!mkdtemp(data_dir)) abort();
    dm_error_t err = {0};
    ctl = dm_controller_start(
        &(dm_controller_options_t){.data_dir = data_dir, .listen = "127.0.0.1:0", .auth = true},
        &err);
    if (!ctl) {
        fprintf(stderr, "fuzz_control_http: %s\n", err.message);
        abort();
    }
    port = dm_controller_port(ctl);
    atexit(teardown);
    char path[128];
    snprintf(path, sizeof(path), "%s/admin.token", data_dir);
    read_token(path, admin, sizeof(admin));
    /* an editor of team fuzz, made through the API as a user would */
    char req[1024], reply[65536];
    const char *body = "{\"owner\":\"fuzz\",\"role\":\"editor\"}";
    int n = snprintf(req, sizeof(req),
                     "POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\nConnection: "
                     "close\r\n\r\n%s",
                     admin, strlen(body), body);
    size_t got;
    if (roundtrip((const uint8_t *)req, (size_t)n, reply, sizeof(reply), &got) != 201) abort();
    const char *t = strstr(reply, "\"token\":\"");
    if (!t) abort();
    t += 9;
    size_t len = strcspn(t, "\"");
    if (len >= sizeof(editor)) abort();
    memcpy(editor, t, len);
    editor[len] = '\0';
}

/* Copies in to out replacing $TOKEN and $EDITOR; returns the length. */
static size_t expand(const uint8_t *in, size_t size, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < size;) {
        if (size - i >= 6 && memcmp(in + i, "$TOKEN", 6) == 0) {
            memcpy(out + o, admin, strlen(admin));
            o += strlen(admin);
            i += 6;
        } else if (size - i >= 7 && memcmp(in + i, "$EDITOR", 7) == 0) {
            memcpy(out + o, editor, strlen(editor));
            o += strlen(editor);
            i += 7;
        } else {
            out[o++] = in[i++];
        }
    }
    return o;
}

/* Whether the tokens appear in the request only in header lines
 * "Authorization: Bearer TOKEN" (a token the input put in the path or a body
 * may be echoed back as the value it was given: that is not a leak). */
static bool only_as_bearer(const uint8_t *req, size_t n)
{
    const char *tokens[] = {admin, editor};
    static const char header[] = "\nAuthorization: Bearer ";
    size_t hl = sizeof(header) - 1;
    for (int t = 0; t < 2; t++) {
        size_t len = strlen(tokens[t]);
        for (const uint8_t *p = req; (p = memmem(p, n - (size_t)(p - req), tokens[t], len));
             p += len)
            if ((size_t)(p - req) < hl || strncasecmp((const char *)p - hl, header, hl) != 0)
                return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ctl) setup();
    if (size > (1u << 20)) return -1;
    /* each placeholder grows by at most the token's length */
    uint8_t *req = malloc(size * 40 + 1);
    size_t n = expand(data, size, req);
    static char reply[1 << 20];
    size_t got;
    int status = roundtrip(req, n, reply, sizeof(reply), &got);
    if (status == 500) {
        fprintf(stderr, "fuzz_control_http: 500 answer:\n%.2000s\n", reply);
        abort();
    }
    bool token_route = memmem(req, n, "/api/v1/tokens", 14) != NULL;
    if (!token_route && only_as_bearer(req, n) && (strstr(reply, admin) || strstr(reply, editor))) {
        fprintf(stderr, "fuzz_control_http: a token in an answer:\n%.2000s\n", reply);
        abort();
    }
    free(req);
    return 0;
}
