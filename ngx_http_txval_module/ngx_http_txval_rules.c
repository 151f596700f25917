
/*
 * txval: the rules and the risk score (SPEC "Rules and reasons").
 *
 * Pure C: see ngx_http_txval_rules.h.
 */


#include <string.h>

#include "ngx_http_txval_rules.h"


#define NGX_HTTP_TXVAL_RISK_AMOUNT      30
#define NGX_HTTP_TXVAL_RISK_NEW_CARD    20
#define NGX_HTTP_TXVAL_RISK_COUNTRY     30
#define NGX_HTTP_TXVAL_RISK_VELOCITY    20


static const char  *ngx_http_txval_reason_names[] = {
    "currency_not_supported",
    "amount_out_of_range",
    "merchant_unknown",
    "merchant_inactive",
    "merchant_limit_exceeded",
    "currency_not_allowed",
    "card_blocked",
    "bin_blocked",
    "velocity_exceeded",
    "risk_too_high"
};


void
ngx_http_txval_rules_eval(const ngx_http_txval_txn_t *txn,
    const ngx_http_txval_policy_t *policy,
    const ngx_http_txval_facts_t *facts, ngx_http_txval_result_t *result)
{
    int                            have_cap;
    size_t                         i;
    int64_t                        cap;
    uint32_t                       reasons, score;
    const ngx_http_txval_limit_t  *limit;

    reasons = 0;
    score = 0;
    cap = 0;
    have_cap = 0;

    /* config: the currency's amount range */

    limit = NULL;

    for (i = 0; i < policy->nlimits; i++) {
        if (memcmp(policy->limits[i].currency, txn->currency, 3) == 0) {
            limit = &policy->limits[i];
            break;
        }
    }

    if (policy->nlimits && limit == NULL) {
        reasons |= 1u << NGX_HTTP_TXVAL_CURRENCY_NOT_SUPPORTED;
    }

    if (limit) {
        if (txn->amount < limit->min || txn->amount > limit->max) {
            reasons |= 1u << NGX_HTTP_TXVAL_AMOUNT_OUT_OF_RANGE;
        }

        cap = limit->max;
        have_cap = 1;
    }

    /* Postgres: merchant, card, BIN */

    if (facts->pg) {

        if (!facts->merchant_found) {
            reasons |= 1u << NGX_HTTP_TXVAL_MERCHANT_UNKNOWN;

        } else {
            if (!facts->merchant_active) {
                reasons |= 1u << NGX_HTTP_TXVAL_MERCHANT_INACTIVE;
            }

            if (facts->merchant_has_max) {
                if (txn->amount > facts->merchant_max) {
                    reasons |= 1u << NGX_HTTP_TXVAL_MERCHANT_LIMIT_EXCEEDED;
                }

                if (!have_cap || facts->merchant_max < cap) {
                    cap = facts->merchant_max;
                    have_cap = 1;
                }
            }

            if (!facts->currency_allowed) {
                reasons |= 1u << NGX_HTTP_TXVAL_CURRENCY_NOT_ALLOWED;
            }
        }

        if (facts->card_blocked) {
            reasons |= 1u << NGX_HTTP_TXVAL_CARD_BLOCKED;
        }

        if (facts->bin_blocked) {
            reasons |= 1u << NGX_HTTP_TXVAL_BIN_BLOCKED;
        }

        if (!facts->card_found) {
            score += NGX_HTTP_TXVAL_RISK_NEW_CARD;
        }

        if (txn->country[0] && facts->card_country[0]
            && memcmp(txn->country, facts->card_country, 2) != 0)
        {
            score += NGX_HTTP_TXVAL_RISK_COUNTRY;
        }
    }

    /* Redis: velocity */

    if (facts->velocity && policy->velocity_count) {
        if (facts->velocity_count > policy->velocity_count) {
            reasons |= 1u << NGX_HTTP_TXVAL_VELOCITY_EXCEEDED;
        }

        if (2 * facts->velocity_count > policy->velocity_count) {
            score += NGX_HTTP_TXVAL_RISK_VELOCITY;
        }
    }

    /* the amount signal: 2 x amount >= the effective cap */

    if (have_cap && txn->amount * 2 >= cap) {
        score += NGX_HTTP_TXVAL_RISK_AMOUNT;
    }

    if (score > 100) {
        score = 100;
    }

    if (score >= policy->risk_threshold) {
        reasons |= 1u << NGX_HTTP_TXVAL_RISK_TOO_HIGH;
    }

    result->reasons = reasons;
    result->risk_score = score;
}


const char *
ngx_http_txval_reason_name(unsigned reason)
{
    if (reason >= NGX_HTTP_TXVAL_NREASONS) {
        return NULL;
    }

    return ngx_http_txval_reason_names[reason];
}
