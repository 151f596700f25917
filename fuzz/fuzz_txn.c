/*
 * libFuzzer harness: the body parser and field rules with the default
 * mapping, held against cJSON (the parser txval used before its own
 * scanner) as an oracle; then the verdict writer on whatever parsed; the
 * replay path's id guess and body hash.
 *
 * The oracle is the old pipeline: the lexical checks
 * (ngx_http_txval_json_lexical), cJSON, nothing but white space after the
 * value, an object. Both must accept the same bodies, except one with a
 * \u escape that is not 4 hex digits: cJSON read it as a NUL, the scanner
 * refuses it. On a body both accept, the outcome must agree with cJSON's
 * tree: a card number key anywhere is pan_not_accepted, a field twice at
 * the top is refused, and a transaction accepted has cJSON's values.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_digest.h"
#include "ngx_http_txval_output.h"


static const char  *names[] = {
    "id", "amount", "currency", "merchant_id", "card_token", "card_bin",
    "country"
};


static int
bad_u_escape(const uint8_t *p, size_t n)
{
    size_t  i, j;

    for (i = 0; i < n; i++) {
        if (p[i] != '\\') {
            continue;
        }

        if (i + 1 < n && p[i + 1] == 'u') {
            for (j = i + 2; j < i + 6; j++) {
                if (j >= n || !((p[j] >= '0' && p[j] <= '9')
                                || (p[j] >= 'a' && p[j] <= 'f')
                                || (p[j] >= 'A' && p[j] <= 'F')))
                {
                    return 1;
                }
            }
        }

        i++;
    }

    return 0;
}


static int
has_pan(const cJSON *item)
{
    for ( /* void */ ; item; item = item->next) {
        if (item->string && (strcmp(item->string, "pan") == 0
                             || strcmp(item->string, "card_number") == 0))
        {
            return 1;
        }

        if (item->child && has_pan(item->child)) {
            return 1;
        }
    }

    return 0;
}


static cJSON *
old_parse(const uint8_t *data, size_t size)
{
    size_t       i;
    cJSON       *root;
    const char  *end;

    if (size == 0 || ngx_http_txval_json_lexical(data, size) != NULL) {
        return NULL;
    }

    end = NULL;
    root = cJSON_ParseWithLengthOpts((const char *) data, size, &end, 0);

    if (root == NULL) {
        return NULL;
    }

    for (i = (size_t) (end - (const char *) data); i < size; i++) {
        if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n'
            && data[i] != '\r')
        {
            cJSON_Delete(root);
            return NULL;
        }
    }

    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return NULL;
    }

    return root;
}


/* a string field as cJSON sees it: equal to what the parser kept */

static void
same_string(const cJSON *item, const char *kept, size_t len)
{
    if (!cJSON_IsString(item) || strlen(item->valuestring) != len
        || memcmp(item->valuestring, kept, len) != 0)
    {
        __builtin_trap();
    }
}


static void
oracle(const uint8_t *data, size_t size, ngx_http_txval_parse_rc_e rc,
    const ngx_http_txval_txn_t *txn, const ngx_http_txval_parse_error_t *err)
{
    int           n, count[7];
    char         *end;
    cJSON        *root, *item, *found[7];
    const char   *s;

    root = old_parse(data, size);

    if ((root != NULL) != (rc != NGX_HTTP_TXVAL_PARSE_INVALID_JSON)) {
        if (root && bad_u_escape(data, size)) {
            cJSON_Delete(root);
            return;         /* cJSON read a NUL, the scanner refused */
        }

        __builtin_trap();
    }

    if (root == NULL) {
        return;
    }

    if ((rc == NGX_HTTP_TXVAL_PARSE_PAN) != has_pan(root->child)) {
        __builtin_trap();
    }

    memset(found, 0, sizeof(found));
    memset(count, 0, sizeof(count));

    for (item = root->child; item; item = item->next) {
        for (n = 0; n < 7; n++) {
            if (strcmp(item->string, names[n]) == 0) {
                found[n] = found[n] ? found[n] : item;
                count[n]++;
            }
        }
    }

    if (rc == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD) {
        /* the field named exists, and a field twice is a refusal */
        for (n = 0; n < 7; n++) {
            if (strcmp(err->field, names[n]) == 0) {
                break;
            }
        }

        if (n == 7) {
            __builtin_trap();
        }

        if (strcmp(err->detail, "a field appears more than once") == 0
            && count[n] < 2)
        {
            __builtin_trap();
        }
    }

    if (rc != NGX_HTTP_TXVAL_PARSE_OK) {
        cJSON_Delete(root);
        return;
    }

    for (n = 0; n < 7; n++) {
        if (count[n] > 1) {
            __builtin_trap();
        }
    }

    same_string(found[0], txn->id, txn->id_len);
    same_string(found[2], txn->currency, 3);
    same_string(found[3], txn->merchant_id, txn->merchant_id_len);
    same_string(found[4], txn->card_token, txn->card_token_len);

    if (txn->card_bin_len) {
        same_string(found[5], txn->card_bin, txn->card_bin_len);

    } else if (found[5] && !cJSON_IsNull(found[5])) {
        __builtin_trap();
    }

    if (txn->country[0]) {
        same_string(found[6], txn->country, 2);

    } else if (found[6] && !cJSON_IsNull(found[6])) {
        __builtin_trap();
    }

    /* the amount: a number, or a numeric string, of the same value */

    item = found[1];

    if (cJSON_IsNumber(item)) {
        if (item->valuedouble != (double) txn->amount) {
            __builtin_trap();
        }

    } else if (cJSON_IsString(item)) {
        s = item->valuestring;

        if (strtod(s, &end) != (double) txn->amount || *end != '\0') {
            __builtin_trap();
        }

    } else {
        __builtin_trap();
    }

    cJSON_Delete(root);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t                        id_len;
    unsigned char                 out[NGX_HTTP_TXVAL_BODY_MAX];
    const unsigned char          *id;
    ngx_http_txval_txn_t          txn, again;
    ngx_http_txval_parse_rc_e     rc;
    ngx_http_txval_result_t       res;
    ngx_http_txval_parse_error_t  err;

    static const unsigned char    key[16];

    if (ngx_http_txval_txn_peek_id(data, size, NULL, NULL, &id, &id_len) == 0
        && (id < data || id + id_len > data + size || id_len == 0
            || id_len > NGX_HTTP_TXVAL_ID_MAX))
    {
        __builtin_trap();
    }

    {
        uint64_t  raw[2], raw2[2];

        ngx_http_txval_siphash128(key, data, size, raw);
        ngx_http_txval_txn_raw(key, data, size, NULL, NULL, raw2);

        if (raw[0] != raw2[0] || raw[1] != raw2[1]) {
            __builtin_trap();
        }
    }

    rc = ngx_http_txval_txn_parse(data, size, NULL, NULL, &txn, &err);

    if (rc != NGX_HTTP_TXVAL_PARSE_OK && (err.detail == NULL
                                          || strlen(err.detail) == 0))
    {
        __builtin_trap();
    }

    oracle(data, size, rc, &txn, &err);

    if (rc == NGX_HTTP_TXVAL_PARSE_OK) {
        /* the same body, the same transaction */
        if (ngx_http_txval_txn_parse(data, size, NULL, NULL, &again, &err)
            != NGX_HTTP_TXVAL_PARSE_OK
            || memcmp(again.fingerprint, txn.fingerprint,
                      NGX_HTTP_TXVAL_DIGEST_LEN) != 0)
        {
            __builtin_trap();
        }

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
