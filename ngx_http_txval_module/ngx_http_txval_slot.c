
/*
 * txval: Redis Cluster's key slots and redirections.
 */


#include <string.h>

#include "ngx_http_txval_slot.h"


/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, as Redis Cluster */

static unsigned
ngx_http_txval_crc16(const unsigned char *p, size_t len)
{
    int       bit;
    unsigned  crc;

    crc = 0;

    while (len--) {
        crc ^= (unsigned) *p++ << 8;

        for (bit = 0; bit < 8; bit++) {
            crc = (crc & 0x8000) ? ((crc << 1) ^ 0x1021) : (crc << 1);
        }
    }

    return crc & 0xffff;
}


unsigned
ngx_http_txval_slot(const unsigned char *key, size_t len)
{
    size_t  open, close;

    for (open = 0; open < len; open++) {
        if (key[open] == '{') {
            break;
        }
    }

    if (open < len) {
        for (close = open + 1; close < len; close++) {
            if (key[close] == '}') {
                break;
            }
        }

        /* "{}" or an unclosed "{": the whole key */
        if (close < len && close > open + 1) {
            key += open + 1;
            len = close - open - 1;
        }
    }

    return ngx_http_txval_crc16(key, len) & (NGX_HTTP_TXVAL_SLOTS - 1);
}


int
ngx_http_txval_redirect(const char *err, size_t len,
    ngx_http_txval_redirect_t *rd)
{
    size_t       i, colon, host_len;
    unsigned     n;
    const char  *p, *end, *host;

    if (len > 6 && memcmp(err, "MOVED ", 6) == 0) {
        rd->ask = 0;
        p = err + 6;

    } else if (len > 4 && memcmp(err, "ASK ", 4) == 0) {
        rd->ask = 1;
        p = err + 4;

    } else {
        return -1;
    }

    end = err + len;

    /* the slot */

    n = 0;

    for (i = 0; p < end && *p >= '0' && *p <= '9'; p++, i++) {
        n = n * 10 + (*p - '0');

        if (n >= NGX_HTTP_TXVAL_SLOTS) {
            return -1;
        }
    }

    if (i == 0 || p == end || *p++ != ' ') {
        return -1;
    }

    rd->slot = n;

    /* ip:port, the port after the last colon (an IPv6 address has more) */

    host = p;
    colon = 0;

    for (i = 0; p + i < end; i++) {
        if (p[i] == ':') {
            colon = i;

        } else if (p[i] == ' ' || p[i] == '\0') {
            return -1;
        }
    }

    host_len = colon;

    if (host_len == 0 || host_len >= NGX_HTTP_TXVAL_HOST_MAX
        || colon + 1 >= i || i - colon - 1 > 5)
    {
        return -1;
    }

    n = 0;

    for (p += colon + 1; p < end; p++) {
        if (*p < '0' || *p > '9') {
            return -1;
        }

        n = n * 10 + (*p - '0');
    }

    if (n == 0 || n > 65535) {
        return -1;
    }

    rd->port = n;
    memcpy(rd->host, host, host_len);
    rd->host[host_len] = '\0';

    return 0;
}
