/*
 * What the content fingerprint and the body hash cost, natively (callgrind
 * runs OpenSSL's SHA-256 without the CPU's SHA instructions, so its counts
 * overstate the digest): nanoseconds per call over a typical transaction,
 * next to the parse that precedes them. bench/digest.sh builds and runs it.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_digest.h"


#define N  1000000


static double
ns_since(const struct timespec *a)
{
    struct timespec  b;

    clock_gettime(CLOCK_MONOTONIC, &b);

    return ((b.tv_sec - a->tv_sec) * 1e9 + (b.tv_nsec - a->tv_nsec)) / N;
}


int
main(void)
{
    int                           i;
    uint64_t                      raw[2];
    unsigned char                 fp[NGX_HTTP_TXVAL_DIGEST_LEN];
    struct timespec               t;
    ngx_http_txval_txn_t          txn;
    ngx_http_txval_parse_error_t  err;

    static const unsigned char    key[16] = "0123456789abcdef";
    static const char             body[] =
        "{\"id\":\"tx_bench_replay\",\"amount\":2500,\"currency\":\"USD\","
        "\"merchant_id\":\"m_acme\",\"card_token\":\"tok_4242\","
        "\"card_bin\":\"424242\",\"country\":\"US\"}";

    if (ngx_http_txval_txn_parse((const unsigned char *) body,
                                 sizeof(body) - 1, NULL, NULL, &txn, &err)
        != NGX_HTTP_TXVAL_PARSE_OK)
    {
        fprintf(stderr, "digest: the body does not parse\n");
        return 1;
    }

    clock_gettime(CLOCK_MONOTONIC, &t);
    for (i = 0; i < N; i++) {
        (void) ngx_http_txval_txn_parse((const unsigned char *) body,
                                        sizeof(body) - 1, NULL, NULL, &txn,
                                        &err);
    }
    printf("parse, fingerprint included: %6.1f ns\n", ns_since(&t));

    clock_gettime(CLOCK_MONOTONIC, &t);
    for (i = 0; i < N; i++) {
        txn.amount = 2500 + (i & 1);
        ngx_http_txval_txn_fingerprint(&txn, fp);
    }
    printf("fingerprint (SHA-256, 128 bits): %6.1f ns\n", ns_since(&t));

    clock_gettime(CLOCK_MONOTONIC, &t);
    for (i = 0; i < N; i++) {
        ngx_http_txval_siphash128(key, (const unsigned char *) body,
                                  sizeof(body) - 1 - (i & 1), raw);
    }
    printf("body hash (SipHash-2-4-128, %zu bytes): %6.1f ns\n",
           sizeof(body) - 1, ns_since(&t));

    return 0;
}
