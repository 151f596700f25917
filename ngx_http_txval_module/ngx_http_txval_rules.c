
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


unsigned
ngx_http_txval_rows_wanted(const ngx_http_txval_txn_t *txn)
{
    unsigned  want, len;

    want = NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_CARD;

    for (len = NGX_HTTP_TXVAL_BIN_MIN; len <= txn->card_bin_len; len++) {
        want |= NGX_HTTP_TXVAL_ROW_BIN(len);
    }

    return want;
}


void
ngx_http_txval_rows_facts(const ngx_http_txval_txn_t *txn,
    const ngx_http_txval_rows_t *rows, ngx_http_txval_facts_t *facts)
{
    const ngx_http_txval_card_row_t      *c;
    const ngx_http_txval_merchant_row_t  *m;

    (void) txn;

    m = &rows->merchant;
    c = &rows->card;

    facts->pg = 1;

    facts->merchant_found = m->found;
    facts->merchant_active = m->found && m->active;
    facts->merchant_has_max = m->found && m->has_max;
    facts->merchant_max = (m->found && m->has_max) ? m->max : 0;
    facts->currency_allowed = m->found && m->currency_allowed;

    facts->card_found = c->found;
    facts->card_blocked = c->found && c->blocked;

    if (c->found) {
        memcpy(facts->card_country, c->country, 3);

    } else {
        facts->card_country[0] = '\0';
    }

    facts->bin_blocked = (rows->bins != 0);
}


/* a character of the text[] literal that ends an unquoted element */

static int
ngx_http_txval_array_delim(char ch)
{
    return ch == ',' || ch == '{' || ch == '}';
}


int
ngx_http_txval_currencies_parse(const char *text, size_t len,
    ngx_http_txval_merchant_row_t *m)
{
    int          quoted;
    char         code[3];
    size_t       n, k, j;
    const char  *p, *end;

    m->restricted = 0;
    m->listed = 1;
    m->ncurrencies = 0;

    p = text;
    end = text + len;

    /* "[1:2]={...}": the bounds of an array not based at 1 */

    if (p < end && *p == '[') {
        p = memchr(p, '=', end - p);
        if (p == NULL) {
            return -1;
        }

        p++;
    }

    if (p == end || *p != '{') {
        return -1;
    }

    while (p < end) {

        /* between elements: braces (nested arrays), commas */

        if (*p == '{' || *p == '}' || *p == ',' || *p == ' ') {
            p++;
            continue;
        }

        /* an element: quoted ("...", with \-escapes) or plain */

        quoted = (*p == '"');
        n = 0;

        if (quoted) {
            p++;
        }

        while (p < end) {
            if (quoted) {
                if (*p == '\\' && p + 1 < end) {
                    p++;

                } else if (*p == '"') {
                    p++;
                    break;
                }

            } else if (ngx_http_txval_array_delim(*p)) {
                break;
            }

            if (n < 3) {
                code[n] = *p;
            }

            n++;
            p++;
        }

        /* any element restricts; NULL or a malformed one matches nothing */

        m->restricted = 1;

        if (n != 3
            || code[0] < 'A' || code[0] > 'Z'
            || code[1] < 'A' || code[1] > 'Z'
            || code[2] < 'A' || code[2] > 'Z')
        {
            continue;
        }

        /* sorted, once each */

        for (k = 0; k < m->ncurrencies; k++) {
            if (memcmp(&m->currencies[3 * k], code, 3) >= 0) {
                break;
            }
        }

        if (k < m->ncurrencies && memcmp(&m->currencies[3 * k], code, 3) == 0)
        {
            continue;
        }

        if (m->ncurrencies == NGX_HTTP_TXVAL_CURRENCIES_MAX) {
            m->listed = 0;
            continue;
        }

        for (j = m->ncurrencies; j > k; j--) {
            memcpy(&m->currencies[3 * j], &m->currencies[3 * (j - 1)], 3);
        }

        memcpy(&m->currencies[3 * k], code, 3);
        m->ncurrencies++;
    }

    return 0;
}


int
ngx_http_txval_currency_allowed(const ngx_http_txval_merchant_row_t *m,
    const char *currency)
{
    int       rc;
    unsigned  lo, hi, mid;

    if (!m->restricted) {
        return 1;
    }

    lo = 0;
    hi = m->ncurrencies;

    while (lo < hi) {
        mid = (lo + hi) / 2;
        rc = memcmp(&m->currencies[3 * mid], currency, 3);

        if (rc == 0) {
            return 1;
        }

        if (rc < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    return 0;
}


void
ngx_http_txval_rows_merge(ngx_http_txval_rows_t *into,
    const ngx_http_txval_rows_t *from)
{
    if (from->have & NGX_HTTP_TXVAL_ROW_MERCHANT) {
        into->merchant = from->merchant;
    }

    if (from->have & NGX_HTTP_TXVAL_ROW_CARD) {
        into->card = from->card;
    }

    into->bins = (into->bins & ~from->have) | (from->bins & from->have);
    into->have |= from->have;
}
