
/*
 * txval: verdict and error bodies (SPEC "The verdict", "Errors").
 *
 * Pure C: see ngx_http_txval_output.h.
 */


#include <string.h>

#include "ngx_http_txval_output.h"


typedef struct {
    unsigned char           *pos;
    unsigned char           *end;
    int                      overflow;
} ngx_http_txval_out_t;


static void ngx_http_txval_put(ngx_http_txval_out_t *o, const char *s,
    size_t len);
static void ngx_http_txval_puts(ngx_http_txval_out_t *o, const char *s);
static void ngx_http_txval_put_escaped(ngx_http_txval_out_t *o,
    const char *s);
static void ngx_http_txval_put_uint(ngx_http_txval_out_t *o, uint64_t n);
static void ngx_http_txval_put_hex(ngx_http_txval_out_t *o, uint64_t n);
static void ngx_http_txval_put_bytes(ngx_http_txval_out_t *o,
    const unsigned char *p, size_t len);
static void ngx_http_txval_flags(ngx_http_txval_out_t *o, unsigned flags);
static int ngx_http_txval_hex(int c);
static size_t ngx_http_txval_done(ngx_http_txval_out_t *o,
    unsigned char *start);


size_t
ngx_http_txval_verdict_json(unsigned char *buf, size_t size, const char *id,
    size_t id_len, const ngx_http_txval_result_t *result, const char *source,
    unsigned flags)
{
    size_t                n;
    ngx_http_txval_out_t  o;

    o.pos = buf;
    o.end = buf + size;
    o.overflow = 0;

    ngx_http_txval_puts(&o, "{\"id\":\"");
    ngx_http_txval_put(&o, id, id_len);
    ngx_http_txval_puts(&o, result->reasons ? "\",\"verdict\":\"declined\""
                                            : "\",\"verdict\":\"approved\"");
    ngx_http_txval_puts(&o, ",\"reasons\":[");
    if (!o.overflow) {
        n = ngx_http_txval_reasons_list(o.pos, o.end - o.pos,
                                        result->reasons, ',', 1);
        o.overflow = (n == 0 && result->reasons);
        o.pos += n;
    }

    ngx_http_txval_puts(&o, "],\"risk_score\":");
    ngx_http_txval_put_uint(&o, result->risk_score);
    ngx_http_txval_puts(&o, ",\"source\":\"");
    ngx_http_txval_puts(&o, source);
    ngx_http_txval_puts(&o, "\"");
    ngx_http_txval_flags(&o, flags);

    return ngx_http_txval_done(&o, buf);
}


size_t
ngx_http_txval_error_json(unsigned char *buf, size_t size, const char *error,
    const char *field, const char *id, const char *detail, unsigned flags)
{
    ngx_http_txval_out_t  o;

    o.pos = buf;
    o.end = buf + size;
    o.overflow = 0;

    ngx_http_txval_puts(&o, "{\"error\":\"");
    ngx_http_txval_puts(&o, error);

    if (field) {
        ngx_http_txval_puts(&o, "\",\"field\":\"");
        ngx_http_txval_puts(&o, field);
    }

    if (id) {
        ngx_http_txval_puts(&o, "\",\"id\":\"");
        ngx_http_txval_puts(&o, id);
    }

    ngx_http_txval_puts(&o, "\",\"detail\":\"");
    ngx_http_txval_put_escaped(&o, detail);
    ngx_http_txval_puts(&o, "\"");
    ngx_http_txval_flags(&o, flags);

    return ngx_http_txval_done(&o, buf);
}


/* the body's end: ,"degraded":true ,"dry_run":true } and a newline */

static void
ngx_http_txval_flags(ngx_http_txval_out_t *o, unsigned flags)
{
    if (flags & NGX_HTTP_TXVAL_OUT_DEGRADED) {
        ngx_http_txval_puts(o, ",\"degraded\":true");
    }

    if (flags & NGX_HTTP_TXVAL_OUT_DRY_RUN) {
        ngx_http_txval_puts(o, ",\"dry_run\":true");
    }

    ngx_http_txval_puts(o, "}\n");
}


size_t
ngx_http_txval_reasons_list(unsigned char *buf, size_t size,
    uint32_t reasons, char sep, int quoted)
{
    unsigned              i;
    ngx_http_txval_out_t  o;

    o.pos = buf;
    o.end = buf + size;
    o.overflow = 0;

    for (i = 0; i < NGX_HTTP_TXVAL_NREASONS; i++) {

        if (!(reasons & (1u << i))) {
            continue;
        }

        if (o.pos != buf) {
            ngx_http_txval_put(&o, &sep, 1);
        }

        if (quoted) {
            ngx_http_txval_put(&o, "\"", 1);
        }

        ngx_http_txval_puts(&o, ngx_http_txval_reason_name(i));

        if (quoted) {
            ngx_http_txval_put(&o, "\"", 1);
        }
    }

    return ngx_http_txval_done(&o, buf);
}


size_t
ngx_http_txval_record_encode(unsigned char *buf, size_t size,
    const ngx_http_txval_record_t *rec)
{
    ngx_http_txval_out_t  o;

    o.pos = buf;
    o.end = buf + size;
    o.overflow = 0;

    ngx_http_txval_put(&o, "2;", 2);
    ngx_http_txval_put_hex(&o, rec->reasons);
    ngx_http_txval_put(&o, ";", 1);
    ngx_http_txval_put_uint(&o, rec->risk_score);
    ngx_http_txval_put(&o, ";", 1);
    ngx_http_txval_put_bytes(&o, rec->fingerprint, NGX_HTTP_TXVAL_DIGEST_LEN);

    return ngx_http_txval_done(&o, buf);
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
        return 0;
    }

    p += 2;

    /* reasons: 1-4 hex digits */

    for (n = 0, digits = 0; p < end && *p != ';'; p++, digits++) {
        if (digits == 4 || ngx_http_txval_hex(*p) < 0) {
            return 0;
        }

        n = n * 16 + ngx_http_txval_hex(*p);
    }

    if (digits == 0 || p == end || (n & ~NGX_HTTP_TXVAL_REASONS_ALL)) {
        return 0;
    }

    rec->reasons = (uint16_t) n;
    p++;

    /* risk score: 1-3 decimal digits, at most 100 */

    for (n = 0, digits = 0; p < end && *p != ';'; p++, digits++) {
        if (digits == 3 || *p < '0' || *p > '9') {
            return 0;
        }

        n = n * 10 + (*p - '0');
    }

    if (digits == 0 || p == end || n > 100) {
        return 0;
    }

    rec->risk_score = (uint8_t) n;
    p++;

    /* fingerprint: exactly 32 hex digits, then the end */

    if (end - p != 2 * NGX_HTTP_TXVAL_DIGEST_LEN) {
        return 0;
    }

    for (digits = 0; p < end; p += 2, digits++) {
        hi = ngx_http_txval_hex(p[0]);
        lo = ngx_http_txval_hex(p[1]);

        if (hi < 0 || lo < 0) {
            return 0;
        }

        rec->fingerprint[digits] = (unsigned char) (hi << 4 | lo);
    }

    return 1;
}


size_t
ngx_http_txval_pending_encode(unsigned char *buf, size_t size,
    const uint64_t token[2])
{
    int                   i, j;
    unsigned char         t[16];
    ngx_http_txval_out_t  o;

    for (i = 0; i < 2; i++) {
        for (j = 0; j < 8; j++) {
            t[i * 8 + j] = (unsigned char) (token[i] >> (56 - 8 * j));
        }
    }

    o.pos = buf;
    o.end = buf + size;
    o.overflow = 0;

    ngx_http_txval_put(&o, "p;", 2);
    ngx_http_txval_put_bytes(&o, t, sizeof(t));

    return ngx_http_txval_done(&o, buf);
}


int
ngx_http_txval_is_pending(const unsigned char *buf, size_t len)
{
    return len == NGX_HTTP_TXVAL_PENDING_LEN && buf[0] == 'p'
           && buf[1] == ';';
}


static int
ngx_http_txval_hex(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


static void
ngx_http_txval_put_hex(ngx_http_txval_out_t *o, uint64_t n)
{
    char   tmp[16];
    char  *p;

    static const char  hex[] = "0123456789abcdef";

    p = tmp + sizeof(tmp);

    do {
        *--p = hex[n & 0xf];
        n >>= 4;
    } while (n);

    ngx_http_txval_put(o, p, tmp + sizeof(tmp) - p);
}


/* bytes as two lowercase hex digits each */

static void
ngx_http_txval_put_bytes(ngx_http_txval_out_t *o, const unsigned char *p,
    size_t len)
{
    char    pair[2];
    size_t  i;

    static const char  hex[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        pair[0] = hex[p[i] >> 4];
        pair[1] = hex[p[i] & 0xf];
        ngx_http_txval_put(o, pair, 2);
    }
}


static void
ngx_http_txval_put(ngx_http_txval_out_t *o, const char *s, size_t len)
{
    if (o->overflow || (size_t) (o->end - o->pos) < len) {
        o->overflow = 1;
        return;
    }

    memcpy(o->pos, s, len);
    o->pos += len;
}


static void
ngx_http_txval_puts(ngx_http_txval_out_t *o, const char *s)
{
    ngx_http_txval_put(o, s, strlen(s));
}


/* a JSON string's content: " and \ escaped, control characters too */

static void
ngx_http_txval_put_escaped(ngx_http_txval_out_t *o, const char *s)
{
    char                  esc[6];
    const unsigned char  *p;

    static const char     hex[] = "0123456789abcdef";

    for (p = (const unsigned char *) s; *p; p++) {

        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char) *p;
            ngx_http_txval_put(o, esc, 2);

        } else if (*p < 0x20) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            ngx_http_txval_put(o, esc, 6);

        } else {
            ngx_http_txval_put(o, (const char *) p, 1);
        }
    }
}


static void
ngx_http_txval_put_uint(ngx_http_txval_out_t *o, uint64_t n)
{
    char   tmp[20];
    char  *p;

    p = tmp + sizeof(tmp);

    do {
        *--p = (char) ('0' + n % 10);
        n /= 10;
    } while (n);

    ngx_http_txval_put(o, p, tmp + sizeof(tmp) - p);
}


static size_t
ngx_http_txval_done(ngx_http_txval_out_t *o, unsigned char *start)
{
    return o->overflow ? 0 : (size_t) (o->pos - start);
}
