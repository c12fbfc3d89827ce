/* cli/cmd_up.c — `datamesh up`: the controller and workers in one process. */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "control/controller.h"
#include "core/config.h"
#include "core/log.h"
#include "engine/state.h"

int dm_cmd_up(int argc, char **argv)
{
    dm_controller_options_t opt = {.data_dir = "./.datamesh", .listen = "127.0.0.1:8080"};
    static const struct option longopts[] = {{"data", required_argument, NULL, 'd'},
                                             {"listen", required_argument, NULL, 'l'},
                                             {"demo", no_argument, NULL, 'D'},
                                             {"transport", required_argument, NULL, 'T'},
                                             {"external-workers", no_argument, NULL, 'X'},
                                             {"state-memory", required_argument, NULL, 'M'},
                                             {"auth", no_argument, NULL, 'A'},
                                             {"insecure", no_argument, NULL, 'I'},
                                             {"tls-cert", required_argument, NULL, 'C'},
                                             {"tls-key", required_argument, NULL, 'K'},
                                             {"openlineage", required_argument, NULL, 'O'},
                                             {"alert-webhook", required_argument, NULL, 'W'},
                                             {"alert-interval", required_argument, NULL, 'E'},
                                             {NULL, 0, NULL, 0}};
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd': opt.data_dir = optarg; break;
        case 'l': opt.listen = optarg; break;
        case 'D': opt.demo = true; break;
        case 'T': opt.transport = optarg; break;
        case 'X': opt.external_tasks = true; break;
        case 'A': opt.auth = true; break;
        case 'I': opt.insecure = true; break;
        case 'C': opt.tls_cert = optarg; break;
        case 'K': opt.tls_key = optarg; break;
        case 'O': opt.openlineage = optarg; break;
        case 'W': opt.alert_webhook = optarg; break;
        case 'E':
            if (dm_parse_duration_ms(optarg, &opt.alert_interval_ms) ||
                opt.alert_interval_ms < 100) {
                dm_cli_errorf("up",
                              "--alert-interval: '%s' is not a duration of 100ms or more "
                              "(like 15s or 1m)",
                              optarg);
                return DM_EXIT_USAGE;
            }
            break;
        case 'M': {
            int64_t bytes;
            if (dm_parse_size(optarg, &bytes) || bytes < 0) {
                dm_cli_errorf("up", "--state-memory: '%s' is not a size (like 512MiB or 2GiB)",
                              optarg);
                return DM_EXIT_USAGE;
            }
            dm_state_set_budget((size_t)bytes);
            break;
        }
        default: return DM_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        dm_cli_errorf("up", "unexpected argument '%s'", argv[optind]);
        return DM_EXIT_USAGE;
    }
    if (opt.external_tasks && (!opt.transport || strncmp(opt.transport, "kafka://", 8))) {
        dm_cli_errorf("up", "--external-workers needs --transport kafka://...: workers share "
                            "partitions through Kafka consumer groups");
        return DM_EXIT_USAGE;
    }

    /* Block the stop signals in every thread; this one waits for them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    dm_error_t err = {0};
    dm_controller_t *c = dm_controller_start(&opt, &err);
    if (!c) {
        dm_cli_errorf("up", "%s", err.message);
        return DM_EXIT_FAILED;
    }
    printf("datamesh up: serving %s://%s (data %s, topics on %s%s); Ctrl-C stops\n",
           opt.tls_cert ? "https" : "http", opt.listen, opt.data_dir,
           opt.transport ? "kafka" : "the embedded log", opt.auth ? ", API tokens required" : "");
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    DM_INFO("control", "signal=%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    dm_controller_stop(c);
    return DM_EXIT_OK;
}
