
/*
 * txval: the transaction's digests.
 *
 * Pure C: see ngx_http_txval_digest.h. The content fingerprint is a
 * SHA-256 (OpenSSL's, called directly) over a buffer that holds every
 * field after its length; the request's hash is SipHash-2-4 with its
 * 128-bit output, written here so that a body can be hashed in pieces.
 */


#include <string.h>

/* SHA256_Init() and friends: direct, without the EVP provider look-ups */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "ngx_http_txval_digest.h"


static unsigned char *ngx_http_txval_digest_field(unsigned char *p,
    const void *data, size_t len);


void
ngx_http_txval_txn_fingerprint(const ngx_http_txval_txn_t *txn,
    unsigned char *fp)
{
    int            i;
    unsigned char  buf[7 + 7 + 8 + NGX_HTTP_TXVAL_ID_MAX + 3
                       + NGX_HTTP_TXVAL_MERCHANT_MAX
                       + NGX_HTTP_TXVAL_TOKEN_MAX + NGX_HTTP_TXVAL_BIN_MAX
                       + 2];
    unsigned char  md[SHA256_DIGEST_LENGTH], *p;
    SHA256_CTX     sha;

    /*
     * a version, then each field after its length (fields cannot shift
     * into each other), the amount as 8 little-endian bytes; hashed in one
     * call
     */

    p = (unsigned char *) memcpy(buf, "txval:1", 7) + 7;

    p = ngx_http_txval_digest_field(p, txn->id, txn->id_len);

    *p++ = 8;
    for (i = 0; i < 8; i++) {
        *p++ = (unsigned char) ((uint64_t) txn->amount >> (i * 8));
    }

    p = ngx_http_txval_digest_field(p, txn->currency, 3);
    p = ngx_http_txval_digest_field(p, txn->merchant_id,
                                    txn->merchant_id_len);
    p = ngx_http_txval_digest_field(p, txn->card_token,
                                    txn->card_token_len);
    p = ngx_http_txval_digest_field(p, txn->card_bin, txn->card_bin_len);
    p = ngx_http_txval_digest_field(p, txn->country, strlen(txn->country));

    /* not SHA256(): in OpenSSL 3 it looks the digest up on every call */

    SHA256_Init(&sha);
    SHA256_Update(&sha, buf, p - buf);
    SHA256_Final(md, &sha);

    memcpy(fp, md, NGX_HTTP_TXVAL_DIGEST_LEN);
}


static unsigned char *
ngx_http_txval_digest_field(unsigned char *p, const void *data, size_t len)
{
    /* every field is at most 128 bytes long */
    *p++ = (unsigned char) len;

    return (unsigned char *) memcpy(p, data, len) + len;
}


void
ngx_http_txval_txn_raw(const unsigned char *key, const unsigned char *buf,
    size_t len, const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, uint64_t raw[2])
{
    int                       n, i;
    size_t                    vlen;
    unsigned char             b[8];
    ngx_http_txval_siphash_t  s;

    ngx_http_txval_siphash_init(&s, key);
    ngx_http_txval_siphash_update(&s, buf, len);

    if (map && map->tag) {

        for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {

            if (!(map->values & (1u << n))) {
                continue;
            }

            vlen = values ? values[n].len : 0;

            for (i = 0; i < 8; i++) {
                b[i] = (unsigned char) ((uint64_t) vlen >> (i * 8));
            }

            ngx_http_txval_siphash_update(&s, b, 8);

            if (vlen) {
                ngx_http_txval_siphash_update(&s, values[n].data, vlen);
            }
        }

        for (i = 0; i < 8; i++) {
            b[i] = (unsigned char) (map->tag >> (i * 8));
        }

        ngx_http_txval_siphash_update(&s, b, 8);
    }

    ngx_http_txval_siphash_final(&s, raw);
}


#define NGX_HTTP_TXVAL_ROTL(x, b)                                            \
    (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

#define NGX_HTTP_TXVAL_SIPROUND                                              \
    v0 += v1; v1 = NGX_HTTP_TXVAL_ROTL(v1, 13); v1 ^= v0;                    \
    v0 = NGX_HTTP_TXVAL_ROTL(v0, 32);                                        \
    v2 += v3; v3 = NGX_HTTP_TXVAL_ROTL(v3, 16); v3 ^= v2;                    \
    v0 += v3; v3 = NGX_HTTP_TXVAL_ROTL(v3, 21); v3 ^= v0;                    \
    v2 += v1; v1 = NGX_HTTP_TXVAL_ROTL(v1, 17); v1 ^= v2;                    \
    v2 = NGX_HTTP_TXVAL_ROTL(v2, 32)


static inline uint64_t
ngx_http_txval_le64(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)
    uint64_t  v;

    memcpy(&v, p, 8);

    return v;
#else
    return (uint64_t) p[0] | (uint64_t) p[1] << 8 | (uint64_t) p[2] << 16
           | (uint64_t) p[3] << 24 | (uint64_t) p[4] << 32
           | (uint64_t) p[5] << 40 | (uint64_t) p[6] << 48
           | (uint64_t) p[7] << 56;
#endif
}


void
ngx_http_txval_siphash128(const unsigned char *key, const unsigned char *in,
    size_t len, uint64_t out[2])
{
    ngx_http_txval_siphash_t  s;

    ngx_http_txval_siphash_init(&s, key);
    ngx_http_txval_siphash_update(&s, in, len);
    ngx_http_txval_siphash_final(&s, out);
}


/* SipHash-2-4-128 in pieces: the input may come in several parts */

void
ngx_http_txval_siphash_init(ngx_http_txval_siphash_t *s,
    const unsigned char *key)
{
    uint64_t  k0, k1;

    k0 = ngx_http_txval_le64(key);
    k1 = ngx_http_txval_le64(key + 8);

    s->v0 = 0x736f6d6570736575ULL ^ k0;
    s->v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
    s->v2 = 0x6c7967656e657261ULL ^ k0;
    s->v3 = 0x7465646279746573ULL ^ k1;
    s->total = 0;
    s->nbuf = 0;
}


void
ngx_http_txval_siphash_update(ngx_http_txval_siphash_t *s,
    const unsigned char *in, size_t len)
{
    size_t                n;
    uint64_t              v0, v1, v2, v3, m;
    const unsigned char  *end;

    s->total += len;

    v0 = s->v0;
    v1 = s->v1;
    v2 = s->v2;
    v3 = s->v3;

    if (s->nbuf) {
        n = 8 - s->nbuf;

        if (len < n) {
            memcpy(s->buf + s->nbuf, in, len);
            s->nbuf += len;
            return;
        }

        memcpy(s->buf + s->nbuf, in, n);
        in += n;
        len -= n;
        s->nbuf = 0;

        m = ngx_http_txval_le64(s->buf);
        v3 ^= m;
        NGX_HTTP_TXVAL_SIPROUND;
        NGX_HTTP_TXVAL_SIPROUND;
        v0 ^= m;
    }

    end = in + (len & ~(size_t) 7);

    for ( /* void */ ; in != end; in += 8) {
        m = ngx_http_txval_le64(in);
        v3 ^= m;
        NGX_HTTP_TXVAL_SIPROUND;
        NGX_HTTP_TXVAL_SIPROUND;
        v0 ^= m;
    }

    s->nbuf = len & 7;
    memcpy(s->buf, in, s->nbuf);

    s->v0 = v0;
    s->v1 = v1;
    s->v2 = v2;
    s->v3 = v3;
}


void
ngx_http_txval_siphash_final(ngx_http_txval_siphash_t *s, uint64_t out[2])
{
    int       i;
    uint64_t  v0, v1, v2, v3, b;

    v0 = s->v0;
    v1 = s->v1;
    v2 = s->v2;
    v3 = s->v3;

    b = s->total << 56;

    for (i = (int) s->nbuf - 1; i >= 0; i--) {
        b |= (uint64_t) s->buf[i] << (8 * i);
    }

    v3 ^= b;
    NGX_HTTP_TXVAL_SIPROUND;
    NGX_HTTP_TXVAL_SIPROUND;
    v0 ^= b;

    v2 ^= 0xee;

    for (i = 0; i < 4; i++) {
        NGX_HTTP_TXVAL_SIPROUND;
    }

    out[0] = v0 ^ v1 ^ v2 ^ v3;

    v1 ^= 0xdd;

    for (i = 0; i < 4; i++) {
        NGX_HTTP_TXVAL_SIPROUND;
    }

    out[1] = v0 ^ v1 ^ v2 ^ v3;
}
