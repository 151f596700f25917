/*
 * libFuzzer harness: field mapping. JSON pointer compilation (a pointer
 * that compiles encodes back to its text), extraction by the one-pass
 * scanner held against cJSON's tree resolved by the same pointer, values
 * supplied from variables, the amount formats and currency case, the
 * replay hash over values; and the amount scaling held against a
 * reference in 128-bit integers.
 *
 * Input: a flags byte (bit 0 decimal amounts, bit 1 any currency case,
 * bits 2-4 a field supplied as a value, 7: none), then up to two
 * "<field byte><pointer>\n" lines, then the body.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cJSON.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_digest.h"


/* the amount of a number text, exactly, by another road; -1: none */

static int
reference(const uint8_t *s, size_t n, int exponent, int64_t *out)
{
    int        neg, eneg;
    size_t     i, f, digits;
    long       e, p;
    __int128   v;

    i = 0;
    neg = (i < n && s[i] == '-');
    i += neg;

    if (i == n || s[i] < '0' || s[i] > '9' || (s[i] == '0' && i + 1 < n
                                               && s[i + 1] >= '0'
                                               && s[i + 1] <= '9'))
    {
        return -2;      /* not for the reference: grammar is the scanner's */
    }

    v = 0;
    digits = 0;
    f = 0;

    for ( /* void */ ; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        v = (++digits <= 36) ? v * 10 + (s[i] - '0') : v;
    }

    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            v = (++digits <= 36) ? v * 10 + (s[i] - '0') : v;
            f++;
        }

        if (f == 0) {
            return -2;
        }
    }

    e = 0;

    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        eneg = 0;

        if (i < n && (s[i] == '+' || s[i] == '-')) {
            eneg = (s[i++] == '-');
        }

        if (i == n) {
            return -2;
        }

        for ( /* void */ ; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            e = e * 10 + (s[i] - '0');

            if (e > 60) {
                return -2;
            }
        }

        e = eneg ? -e : e;
    }

    if (i != n || digits > 36) {
        return -2;
    }

    if (neg) {
        return -1;
    }

    if (exponent >= 0 && (long) f - e > exponent) {
        return -1;
    }

    p = e - (long) f + (exponent > 0 ? exponent : 0);

    for ( /* void */ ; p > 0; p--) {
        if (v > (__int128) 1 << 70) {
            return -1;
        }

        v *= 10;
    }

    /* trailing zeros of the fraction drop out: 4.000…0 is 4, however long */

    for ( /* void */ ; p < 0; p++) {
        if (v % 10 != 0) {
            return -1;
        }

        v /= 10;
    }

    if (v < 1 || v > NGX_HTTP_TXVAL_AMOUNT_MAX) {
        return -1;
    }

    *out = (int64_t) v;

    return 0;
}


static void
check_amount(const uint8_t *data, size_t size)
{
    int      e, want;
    int64_t  a, b;

    if (size > 80) {
        return;
    }

    for (e = -1; e <= 4; e++) {
        want = reference(data, size, e, &b);

        if (want == -2) {
            return;
        }

        a = 0;

        if (ngx_http_txval_amount_value(data, size, e, &a) != want
            || (want == 0 && a != b))
        {
            __builtin_trap();
        }
    }
}


/* a compiled pointer written back with ~0 ~1: the text it came from */

static void
check_pointer(const uint8_t *text, size_t len,
    const ngx_http_txval_json_path_t *path)
{
    size_t          i, j, n;
    unsigned char   buf[NGX_HTTP_TXVAL_JSON_TOKENS
                        * (2 * NGX_HTTP_TXVAL_JSON_TOKEN_MAX + 1)];

    n = 0;

    if (path->ntokens < 1 || path->ntokens > NGX_HTTP_TXVAL_JSON_TOKENS) {
        __builtin_trap();
    }

    for (i = 0; i < path->ntokens; i++) {
        buf[n++] = '/';

        for (j = 0; j < path->tokens[i].len; j++) {
            if (path->tokens[i].text[j] == '~') {
                buf[n++] = '~';
                buf[n++] = '0';

            } else if (path->tokens[i].text[j] == '/') {
                buf[n++] = '~';
                buf[n++] = '1';

            } else {
                buf[n++] = path->tokens[i].text[j];
            }
        }
    }

    if (n != len || memcmp(buf, text, len) != 0) {
        __builtin_trap();
    }
}


/* cJSON's tree resolved by a compiled pointer */

static cJSON *
resolve(cJSON *item, const ngx_http_txval_json_path_t *path)
{
    size_t                              i;
    cJSON                              *c;
    const ngx_http_txval_json_token_t  *tok;

    for (i = 0; item && i < path->ntokens; i++) {
        tok = &path->tokens[i];

        if (cJSON_IsArray(item)) {
            item = tok->is_index ? cJSON_GetArrayItem(item, (int) tok->index)
                                 : NULL;
            continue;
        }

        if (!cJSON_IsObject(item)) {
            return NULL;
        }

        for (c = item->child; c; c = c->next) {
            if (strlen(c->string) == tok->len
                && memcmp(c->string, tok->text, tok->len) == 0)
            {
                break;
            }
        }

        item = c;
    }

    return item;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                           field, valued, lines;
    size_t                        id_len, i;
    cJSON                        *root, *item;
    uint64_t                      raw1[2], raw2[2];
    const char                   *why;
    const uint8_t                *p, *end, *nl;
    const unsigned char          *id;
    ngx_http_txval_txn_t          txn, again;
    ngx_http_txval_value_t        values[NGX_HTTP_TXVAL_NFIELDS];
    ngx_http_txval_mapping_t      map;
    ngx_http_txval_parse_rc_e     rc;
    ngx_http_txval_parse_error_t  err;

    static const unsigned char    key[16] = "0123456789abcdef";

    check_amount(data, size);

    if (size < 1) {
        return 0;
    }

    ngx_http_txval_mapping_init(&map);

    map.amount_format = (data[0] & 1) ? NGX_HTTP_TXVAL_AMOUNT_DECIMAL
                                      : NGX_HTTP_TXVAL_AMOUNT_MINOR;
    map.currency_case = (data[0] & 2) ? NGX_HTTP_TXVAL_CASE_ANY
                                      : NGX_HTTP_TXVAL_CASE_UPPER;
    valued = (data[0] >> 2) & 7;

    memset(values, 0, sizeof(values));

    if (valued < NGX_HTTP_TXVAL_NFIELDS) {
        if (ngx_http_txval_mapping_value(&map, valued,
                                         (const unsigned char *) "$v", 2,
                                         &why) != 0)
        {
            __builtin_trap();
        }
    }

    p = data + 1;
    end = data + size;

    for (lines = 0; lines < 2 && p < end; lines++) {
        nl = memchr(p + 1, '\n', end - p - 1 > 0 ? end - p - 1 : 0);
        if (nl == NULL) {
            break;
        }

        field = p[0] % NGX_HTTP_TXVAL_NFIELDS;

        if (ngx_http_txval_mapping_pointer(&map, field, p + 1, nl - p - 1,
                                           &why)
            == 0)
        {
            check_pointer(p + 1, nl - p - 1, &map.fields[field].path);
        }

        p = nl + 1;
    }

    ngx_http_txval_mapping_done(&map);

    /* a value supplied: part of the input, as a header would be */

    if (map.values) {
        for (i = 0; i < NGX_HTTP_TXVAL_NFIELDS; i++) {
            if (map.values & (1u << i)) {
                values[i].data = (const unsigned char *) "tx_Ab1";
                values[i].len = (size_t) (data[0] >> 5) % 7;
            }
        }
    }

    if (ngx_http_txval_txn_peek_id(p, end - p, &map, values, &id, &id_len)
        == 0
        && (id_len == 0 || id_len > NGX_HTTP_TXVAL_ID_MAX))
    {
        __builtin_trap();
    }

    rc = ngx_http_txval_txn_parse(p, end - p, &map, values, &txn, &err);

    if (rc != NGX_HTTP_TXVAL_PARSE_OK) {
        if (err.detail == NULL || strlen(err.detail) == 0
            || (rc == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD && err.field == NULL))
        {
            __builtin_trap();
        }

        return 0;
    }

    if (txn.amount < 1 || txn.amount > NGX_HTTP_TXVAL_AMOUNT_MAX
        || txn.id_len < 1 || strlen(txn.currency) != 3
        || txn.currency[0] < 'A' || txn.currency[0] > 'Z')
    {
        __builtin_trap();
    }

    if (ngx_http_txval_txn_parse(p, end - p, &map, values, &again, &err)
        != NGX_HTTP_TXVAL_PARSE_OK
        || memcmp(again.fingerprint, txn.fingerprint,
                  NGX_HTTP_TXVAL_DIGEST_LEN) != 0)
    {
        __builtin_trap();
    }

    /* the replay hash covers the values: another value, another hash */

    if (map.values && (data[0] >> 5) % 7) {
        ngx_http_txval_txn_raw(key, p, end - p, &map, values, raw1);

        for (i = 0; i < NGX_HTTP_TXVAL_NFIELDS; i++) {
            if (map.values & (1u << i)) {
                values[i].data = (const unsigned char *) "ux_Ab2";
            }
        }

        ngx_http_txval_txn_raw(key, p, end - p, &map, values, raw2);

        if (raw1[0] == raw2[0] && raw1[1] == raw2[1]) {
            __builtin_trap();
        }
    }

    /* a field read by a pointer is what cJSON finds there */

    root = cJSON_ParseWithLengthOpts((const char *) p, end - p, NULL, 0);

    if (root == NULL) {
        __builtin_trap();
    }

    for (i = 0; i < NGX_HTTP_TXVAL_NFIELDS; i++) {
        if (map.fields[i].from == NGX_HTTP_TXVAL_FROM_VALUE) {
            continue;
        }

        item = resolve(root, &map.fields[i].path);

        switch (i) {

        case NGX_HTTP_TXVAL_FIELD_ID:
            if (!cJSON_IsString(item)
                || strcmp(item->valuestring, txn.id) != 0)
            {
                __builtin_trap();
            }
            break;

        case NGX_HTTP_TXVAL_FIELD_AMOUNT:
            if (!cJSON_IsNumber(item) && !cJSON_IsString(item)) {
                __builtin_trap();
            }
            break;

        case NGX_HTTP_TXVAL_FIELD_MERCHANT_ID:
            if (!cJSON_IsString(item)
                || strcmp(item->valuestring, txn.merchant_id) != 0)
            {
                __builtin_trap();
            }
            break;

        case NGX_HTTP_TXVAL_FIELD_CARD_TOKEN:
            if (!cJSON_IsString(item)
                || strcmp(item->valuestring, txn.card_token) != 0)
            {
                __builtin_trap();
            }
            break;

        default:
            break;
        }
    }

    cJSON_Delete(root);

    return 0;
}
