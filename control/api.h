/* control/api.h — the REST API under /api/v1 for every kind. */
#ifndef DM_CONTROL_API_H
#define DM_CONTROL_API_H

#include "control/http.h"
#include "control/store.h"

/* Registers the /api/v1 routes on the server; handlers use store (which must
 * outlive the server). */
dm_err_t dm_api_register(dm_http_server_t *http, dm_store_t *store);

/* The HTTP status for an error code (400, 404, 409, 500, …). */
int dm_api_status(dm_err_t code);

#endif
