/* card_util.c — ids for the network tokenization use cases: digital card and
 * operation ids ("dc_"/"op_" + 22 base62 characters). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "crypto/crypto.h"
#include "service/cards.h"

#define ID_BODY_LEN 22 /* 22 base62 characters carry 130 random bits */

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* prefix + 22 base62 characters. Bytes ≥ 248 are drawn again: 248 = 4 × 62,
 * so the remaining bytes map onto the alphabet without bias. */
static void new_base62_id(const char *prefix, char out[65])
{
    size_t pl = strlen(prefix), n = 0;
    memcpy(out, prefix, pl);
    while (n < ID_BODY_LEN) {
        uint8_t buf[32];
        td_random_bytes(buf, sizeof buf);
        for (size_t i = 0; i < sizeof buf && n < ID_BODY_LEN; i++)
            if (buf[i] < 248) out[pl + n++] = B62[buf[i] % 62];
    }
    out[pl + n] = '\0';
}

void td_new_dcard_id(char out[65])
{
    new_base62_id("dc_", out);
}

void td_new_operation_id(char out[65])
{
    new_base62_id("op_", out);
}
