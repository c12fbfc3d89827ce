/* tests/unit/test_core_hex.c — dm_hex_encode. */
#include "check.h"
#include "core/hex.h"

static void test_encodes_every_byte(void)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char out[513];
    dm_hex_encode(all, sizeof(all), out);
    CHECK_EQ_INT(strlen(out), 512);
    char want[3];
    for (int i = 0; i < 256; i++) {
        snprintf(want, sizeof(want), "%02x", i);
        CHECK(out[2 * i] == want[0] && out[2 * i + 1] == want[1]);
    }
}

static void test_empty(void)
{
    char out[1] = {'x'};
    dm_hex_encode("", 0, out);
    CHECK_EQ_INT(out[0], '\0');
}

int main(void)
{
    RUN(test_encodes_every_byte);
    RUN(test_empty);
    return check_summary();
}
