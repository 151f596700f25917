/*
 * libFuzzer harness: the decoder of verdicts stored in Redis (any value
 * may be there), and the round trip of what it accepts.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ngx_http_txval_record.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                   n;
    unsigned char            buf[64];
    ngx_http_txval_record_t  rec, back;

    if (ngx_http_txval_record_decode(data, size, &rec) != 0) {
        return 0;
    }

    n = ngx_http_txval_record_encode(buf, sizeof(buf), &rec);

    if (n == 0 || ngx_http_txval_record_decode(buf, n, &back) != 0
        || memcmp(back.fingerprint, rec.fingerprint,
                  sizeof(rec.fingerprint)) != 0
        || back.reasons != rec.reasons || back.risk_score != rec.risk_score)
    {
        __builtin_trap();
    }

    return 0;
}
