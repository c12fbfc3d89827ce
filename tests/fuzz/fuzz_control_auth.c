/* tests/fuzz/fuzz_control_auth.c — libFuzzer target: the Authorization header
 * of every request (Bearer and Basic schemes, token format, lookup, hash
 * comparison). Only the token made at start may pass. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/auth.h"

static dm_auth_t *auth;
static char token[128];

static void setup(void)
{
    char dir[] = "/tmp/dm-fuzz-auth-XXXXXX", path[64];
    if (!mkdtemp(dir)) abort();
    snprintf(path, sizeof(path), "%s/controller.db", dir);
    dm_error_t err = {0};
    dm_store_t *s = dm_store_open(path, &err);
    auth = s ? dm_auth_new(s, &(dm_auth_options_t){.enabled = true}, &err) : NULL;
    dm_store_token_t row;
    if (!auth || dm_auth_token_create(auth, "fuzz", DM_ROLE_EDITOR, 0, NULL, token, sizeof(token),
                                      &row, &err))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!auth) setup();
    char *h = malloc(size + 1);
    memcpy(h, data, size);
    h[size] = '\0';
    dm_principal_t p = {0};
    dm_error_t err = {0};
    dm_err_t rc = dm_auth_authenticate(auth, h, &p, &err);
    if (rc == DM_OK && !strstr(h, token)) abort();          /* a token nobody made passed */
    if (rc != DM_OK && strstr(err.message, token)) abort(); /* an error echoed it */
    free(h);
    return 0;
}
