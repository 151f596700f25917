/*
 * libFuzzer harness: the body parser and field rules, then the verdict
 * writer on whatever parsed.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_output.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char                 out[NGX_HTTP_TXVAL_BODY_MAX];
    ngx_http_txval_txn_t          txn;
    ngx_http_txval_result_t       res;
    ngx_http_txval_parse_error_t  err;

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
