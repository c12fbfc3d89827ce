/* tests/unit/test_control_http.c — the router under concurrent requests.
 *
 * The server's thread pool matches routes at the same time; a router with
 * shared state (strtok's, once) answered a worker's GET /schemas/ids/1 with
 * "no such endpoint" when another request was matched at that moment. Eight
 * clients here send requests to parameterized routes at once and every answer
 * must come from the right route with the right parameters. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "control/http.h"

static uint16_t port;

static void on_echo(void *ctx, const dm_http_request_t *req, dm_http_response_t *res)
{
    const char *tag = ctx;
    const char *a = dm_http_param(req, "a"), *b = dm_http_param(req, "b");
    char text[256];
    int n = snprintf(text, sizeof(text), "%s %s %s", tag, a ? a : "-", b ? b : "-");
    res->content_type = "text/plain";
    dm_buf_append(&res->body, text, (size_t)n);
}

static size_t collect(char *data, size_t size, size_t n, void *userdata)
{
    dm_buf_t *b = userdata;
    dm_buf_append(b, data, size * n);
    return size * n;
}

typedef struct client {
    int id;
    int wrong; /* answers from the wrong route, with wrong parameters, or not 200 */
    char first_wrong[300];
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    CURL *h = curl_easy_init();
    if (!h) {
        c->wrong = -1;
        return NULL;
    }
    for (int i = 0; i < 1000; i++) {
        char url[200], want[200];
        switch ((c->id + i) % 3) {
        case 0:
            snprintf(url, sizeof(url), "http://127.0.0.1:%u/schemas/ids/%d", port, i);
            snprintf(want, sizeof(want), "ids %d -", i);
            break;
        case 1:
            snprintf(url, sizeof(url), "http://127.0.0.1:%u/api/v1/pipelines/p%d/segment/s%d", port,
                     c->id, i);
            snprintf(want, sizeof(want), "deep p%d s%d", c->id, i);
            break;
        default:
            snprintf(url, sizeof(url), "http://127.0.0.1:%u/subjects/x%d-value/versions", port, i);
            snprintf(want, sizeof(want), "versions x%d-value -", i);
        }
        dm_buf_t body = {0};
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
        long status = 0;
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        dm_buf_append(&body, "", 1);
        if (rc != CURLE_OK || status != 200 || strcmp((char *)body.data, want) != 0) {
            if (!c->wrong)
                snprintf(c->first_wrong, sizeof(c->first_wrong), "%s -> %ld '%s' (want '%s')", url,
                         status, rc == CURLE_OK ? (char *)body.data : curl_easy_strerror(rc), want);
            c->wrong++;
        }
        dm_buf_free(&body);
    }
    curl_easy_cleanup(h);
    return NULL;
}

static void test_concurrent_routing(void)
{
    dm_error_t err = {0};
    dm_http_server_t *s =
        dm_http_server_new(&(dm_http_options_t){.listen = "127.0.0.1:0", .threads = 4}, &err);
    REQUIRE(s);
    REQUIRE(dm_http_route(s, "GET", "/schemas/ids/{a}", on_echo, "ids") == DM_OK);
    REQUIRE(dm_http_route(s, "GET", "/api/v1/pipelines/{a}/segment/{b}", on_echo, "deep") == DM_OK);
    REQUIRE(dm_http_route(s, "GET", "/subjects/{a}/versions", on_echo, "versions") == DM_OK);
    REQUIRE(dm_http_server_start(s, &err) == DM_OK);
    port = dm_http_server_port(s);
    enum { N = 8 };
    client_t c[N] = {0};
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        c[i].id = i;
        REQUIRE(pthread_create(&t[i], NULL, client_main, &c[i]) == 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (c[i].wrong)
            fprintf(stderr, "client %d: %d wrong, first %s\n", i, c[i].wrong, c[i].first_wrong);
        CHECK_EQ_INT(c[i].wrong, 0);
    }
    dm_http_server_free(s);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    RUN(test_concurrent_routing);
    curl_global_cleanup();
    return check_summary();
}
