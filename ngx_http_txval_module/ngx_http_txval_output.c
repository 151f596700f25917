
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
static void ngx_http_txval_flags(ngx_http_txval_out_t *o, unsigned flags);
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
