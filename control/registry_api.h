/* control/registry_api.h — the Confluent Schema Registry REST API, served at
 * the root of the controller's port (/subjects, /schemas/ids/{id},
 * /compatibility/…, /config, /mode) with its content type and error codes, so
 * existing registry clients and serializers work against datamesh. */
#ifndef DM_CONTROL_REGISTRY_API_H
#define DM_CONTROL_REGISTRY_API_H

#include "control/http.h"

typedef struct dm_registry_api dm_registry_api_t;

/* Opens the registry store at db_path and registers the routes on http. The
 * mode (READWRITE / READONLY) is kept in mode_path. Free with
 * dm_registry_api_free after the server stops. */
dm_err_t dm_registry_api_new(dm_http_server_t *http, const char *db_path, const char *mode_path,
                             dm_registry_api_t **out, dm_error_t *err);

void dm_registry_api_free(dm_registry_api_t *api);

#endif
