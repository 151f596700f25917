
/*
 * txval: the verdict record and the in-progress mark (Redis values).
 *
 * Pure C: see ngx_http_txval_record.h.
 */


#include <string.h>

#include "ngx_http_txval_record.h"


static unsigned char *ngx_http_txval_hex_bytes(unsigned char *p,
    const unsigned char *in, size_t len);
static int ngx_http_txval_hex_value(int c);


static const char  ngx_http_txval_hex_digits[] = "0123456789abcdef";


size_t
ngx_http_txval_record_encode(unsigned char *buf, size_t size,
    const ngx_http_txval_record_t *rec)
{
    int             i;
    unsigned        n, score;
    unsigned char  *p;

    if (size < NGX_HTTP_TXVAL_RECORD_MAX) {
        return 0;
    }

    p = buf;
    *p++ = '2';
    *p++ = ';';

    /* reasons: hex without leading zeros (at most 4 digits) */

    n = rec->reasons;

    for (i = 12; i > 0 && (n >> i) == 0; i -= 4) { /* void */ }

    for ( /* void */ ; i >= 0; i -= 4) {
        *p++ = ngx_http_txval_hex_digits[(n >> i) & 0xf];
    }

    *p++ = ';';

    /* the score: 0-100, decimal */

    score = rec->risk_score;

    if (score >= 100) {
        *p++ = '0' + score / 100;
    }

    if (score >= 10) {
        *p++ = '0' + score / 10 % 10;
    }

    *p++ = '0' + score % 10;
    *p++ = ';';

    p = ngx_http_txval_hex_bytes(p, rec->fingerprint,
                                 NGX_HTTP_TXVAL_DIGEST_LEN);

    return p - buf;
}


int
ngx_http_txval_record_decode(const unsigned char *buf, size_t len,
    ngx_http_txval_record_t *rec)
{
    int                   digits, hi, lo;
    uint64_t              n;
    const unsigned char  *p, *end;

    p = buf;
    end = buf + len;

    if (len < 2 || p[0] != '2' || p[1] != ';') {
        return -1;
    }

    p += 2;

    /* reasons: 1-4 hex digits */

    for (n = 0, digits = 0; p < end && *p != ';'; p++, digits++) {
        if (digits == 4 || ngx_http_txval_hex_value(*p) < 0) {
            return -1;
        }

        n = n * 16 + ngx_http_txval_hex_value(*p);
    }

    if (digits == 0 || p == end || (n & ~NGX_HTTP_TXVAL_REASONS_ALL)) {
        return -1;
    }

    rec->reasons = (uint16_t) n;
    p++;

    /* risk score: 1-3 decimal digits, at most 100 */

    for (n = 0, digits = 0; p < end && *p != ';'; p++, digits++) {
        if (digits == 3 || *p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (*p - '0');
    }

    if (digits == 0 || p == end || n > 100) {
        return -1;
    }

    rec->risk_score = (uint8_t) n;
    p++;

    /* fingerprint: exactly 32 hex digits, then the end */

    if (end - p != 2 * NGX_HTTP_TXVAL_DIGEST_LEN) {
        return -1;
    }

    for (digits = 0; p < end; p += 2, digits++) {
        hi = ngx_http_txval_hex_value(p[0]);
        lo = ngx_http_txval_hex_value(p[1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        rec->fingerprint[digits] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


size_t
ngx_http_txval_pending_encode(unsigned char *buf, size_t size,
    const uint64_t token[2])
{
    int            i, j;
    unsigned char  t[16];

    if (size < NGX_HTTP_TXVAL_PENDING_LEN) {
        return 0;
    }

    for (i = 0; i < 2; i++) {
        for (j = 0; j < 8; j++) {
            t[i * 8 + j] = (unsigned char) (token[i] >> (56 - 8 * j));
        }
    }

    buf[0] = 'p';
    buf[1] = ';';

    return ngx_http_txval_hex_bytes(buf + 2, t, sizeof(t)) - buf;
}


int
ngx_http_txval_is_pending(const unsigned char *buf, size_t len)
{
    return len == NGX_HTTP_TXVAL_PENDING_LEN && buf[0] == 'p'
           && buf[1] == ';';
}


/* bytes as two lowercase hex digits each */

static unsigned char *
ngx_http_txval_hex_bytes(unsigned char *p, const unsigned char *in,
    size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        *p++ = ngx_http_txval_hex_digits[in[i] >> 4];
        *p++ = ngx_http_txval_hex_digits[in[i] & 0xf];
    }

    return p;
}


static int
ngx_http_txval_hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
