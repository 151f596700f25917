/*
 * libFuzzer harness: rules and risk on arbitrary facts and policy, and
 * the Prometheus writer on arbitrary counters. Invariants: the score stays
 * within 0-100, reasons within the known set, and the writer's output
 * fits its documented maximum.
 */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ngx_http_txval_rules.h"
#include "ngx_http_txval_prometheus.h"


static unsigned char  text[NGX_HTTP_TXVAL_PROMETHEUS_MAX];


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ngx_http_txval_txn_t       txn;
    ngx_http_txval_facts_t     facts;
    ngx_http_txval_limit_t     limits[2];
    ngx_http_txval_policy_t    policy;
    ngx_http_txval_result_t    res;
    ngx_http_txval_snapshot_t  snap;

    if (size < sizeof(txn.amount) + sizeof(facts) + sizeof(limits) + 4) {
        return 0;
    }

    memset(&txn, 0, sizeof(txn));
    memcpy(&txn.amount, data, sizeof(txn.amount));
    data += sizeof(txn.amount);
    txn.amount = (int64_t) ((uint64_t) txn.amount
                            % NGX_HTTP_TXVAL_AMOUNT_MAX) + 1;
    memcpy(txn.currency, "USD", 4);
    memcpy(txn.country, data, 2);
    txn.country[2] = '\0';

    memcpy(&facts, data, sizeof(facts));
    data += sizeof(facts);
    facts.card_country[2] = '\0';

    memcpy(limits, data, sizeof(limits));
    data += sizeof(limits);
    limits[0].currency[3] = '\0';
    limits[1].currency[3] = '\0';

    policy.limits = limits;
    policy.nlimits = data[0] % 3;
    policy.risk_threshold = data[1] % 101;
    policy.velocity_count = data[2];

    ngx_http_txval_rules_eval(&txn, &policy, &facts, &res);

    if (res.risk_score > 100 || (res.reasons & ~NGX_HTTP_TXVAL_REASONS_ALL)) {
        __builtin_trap();
    }

    /* every counter at its largest, the longest versions it may carry */
    memset(&snap, 0xff, sizeof(snap));
    snap.version = "999.999.999";
    snap.nginx = "999.999.999";

    if (ngx_http_txval_prometheus(text, sizeof(text), &snap) == 0) {
        __builtin_trap();
    }

    return 0;
}
