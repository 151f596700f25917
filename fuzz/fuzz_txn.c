/*
 * libFuzzer harness: the body parser and field rules, then the verdict
 * writer on whatever parsed; the replay path's id guess and body hash.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_output.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                        id_len;
    unsigned char                 out[NGX_HTTP_TXVAL_BODY_MAX];
    const unsigned char          *id;
    ngx_http_txval_txn_t          txn;
    ngx_http_txval_result_t       res;
    ngx_http_txval_parse_error_t  err;

    static const unsigned char    key[16];

    if (ngx_http_txval_txn_peek_id(data, size, &id, &id_len) == 0
        && (id < data || id + id_len > data + size || id_len == 0
            || id_len > NGX_HTTP_TXVAL_ID_MAX))
    {
        __builtin_trap();
    }

    {
        uint64_t  raw[2];

        ngx_http_txval_siphash128(key, data, size, raw);
    }

    if (ngx_http_txval_txn_parse(data, size, &txn, &err)
        == NGX_HTTP_TXVAL_PARSE_OK)
    {
        res.reasons = txn.amount & NGX_HTTP_TXVAL_REASONS_ALL;
        res.risk_score = txn.amount % 101;

        if (ngx_http_txval_verdict_json(out, sizeof(out), txn.id, txn.id_len,
                                        &res, "computed", 1) == 0)
        {
            __builtin_trap();
        }
    }

    return 0;
}
