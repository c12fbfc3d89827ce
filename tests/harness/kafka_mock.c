/* tests/harness/kafka_mock.c — a librdkafka mock cluster as a process.
 *
 * usage: dm_kafka_mock [BROKERS]   (default 3)
 * Prints "bootstrap=HOST:PORT,..." on stdout once the brokers listen on
 * loopback, then runs until stdin reaches EOF or SIGTERM/SIGINT arrives.
 * Topics can be created through the mock: "topic NAME PARTITIONS" lines on stdin
 * (the mock does not implement CreateTopics).
 */
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop;

/* Only sets the flag (fclose(stdin) here deadlocked on the lock fgets holds,
 * and the harness waited for the mock forever). Installed without
 * SA_RESTART, so a blocked read returns EINTR and fgets gives up. */
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int brokers = argc > 1 ? atoi(argv[1]) : 3;
    if (brokers < 1 || brokers > 9) {
        fprintf(stderr, "dm_kafka_mock: BROKERS must be 1..9\n");
        return 2;
    }
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!rk) {
        fprintf(stderr, "dm_kafka_mock: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "dm_kafka_mock: cannot create mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("bootstrap=%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    char line[512];
    while (!stop && fgets(line, sizeof(line), stdin)) {
        char name[256];
        int parts = 1, repl = 1;
        if (sscanf(line, "topic %255s %d %d", name, &parts, &repl) >= 2) {
            rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, name, parts, repl);
            printf("%s %s\n", e ? "error" : "created", e ? rd_kafka_err2str(e) : name);
            fflush(stdout);
        }
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
