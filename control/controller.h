/* control/controller.h — the control plane process: data directory, HTTP API.
 *
 * Grows with the control plane issue (specs, reconciler, catalog, registry API);
 * today it owns the data directory (locked against a second controller) and
 * serves the fixed endpoint GET /healthz.
 */
#ifndef DM_CONTROL_CONTROLLER_H
#define DM_CONTROL_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/error.h"

typedef struct dm_controller dm_controller_t;

typedef struct dm_controller_options {
    const char *data_dir; /* default ./.datamesh */
    const char *listen;   /* default 127.0.0.1:8080 */
    bool demo;
    const char *transport;   /* transport URL (kafka://…); NULL: the embedded log */
    bool external_tasks;     /* pipeline tasks run in `datamesh worker` processes */
    bool auth;               /* require API tokens (control/auth.h) */
    bool insecure;           /* allow a non-loopback listen address without auth */
    const char *tls_cert;    /* PEM certificate file: serve HTTPS (with tls_key) */
    const char *tls_key;     /* PEM private key file */
    const char *openlineage; /* send OpenLineage events there (http(s)://, file://); NULL: none */

    /* alerts (control/api_alerts.h) */
    const char *alert_webhook; /* Alertmanager-format webhook receiver; NULL: none */
    int64_t alert_interval_ms; /* how often the rules are evaluated; 0: 15 s */
} dm_controller_options_t;

/* Creates the data directory if needed, takes its lock and starts serving.
 * NULL with err set when the directory is unusable or locked by another
 * controller, the address cannot be bound, or it is not a loopback address
 * while neither auth nor insecure is set. */
dm_controller_t *dm_controller_start(const dm_controller_options_t *opt, dm_error_t *err);

/* The HTTP port in use. */
uint16_t dm_controller_port(const dm_controller_t *c);

/* The controller's HTTP server (its routes are what tests enumerate). */
struct dm_http_server;
const struct dm_http_server *dm_controller_http(const dm_controller_t *c);

/* Stops serving, releases the lock and frees the controller. */
void dm_controller_stop(dm_controller_t *c);

#endif
