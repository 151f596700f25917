
/*
 * txval: a strict JSON scanner that finds the transaction's fields.
 *
 * Pure C, no nginx types, no allocation: one pass over the body validates
 * it (RFC 8259, UTF-8, no raw control characters, no escaped NUL, at most
 * NGX_HTTP_TXVAL_JSON_DEPTH_MAX nested containers, nothing after the
 * value, an object at the top), notes a "pan" or "card_number" key at any
 * depth, and records where each path's value is (compiled JSON pointers,
 * RFC 6901) and whether a key on a path appears twice.
 */


#ifndef _NGX_HTTP_TXVAL_JSON_H_INCLUDED_
#define _NGX_HTTP_TXVAL_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>


#define NGX_HTTP_TXVAL_JSON_DEPTH_MAX  1000    /* nested containers */
#define NGX_HTTP_TXVAL_JSON_PATHS      8       /* paths per scan */
#define NGX_HTTP_TXVAL_JSON_TOKENS     8       /* tokens per path */
#define NGX_HTTP_TXVAL_JSON_TOKEN_MAX  64      /* bytes per token */


typedef enum {
    NGX_HTTP_TXVAL_JSON_ABSENT = 0,
    NGX_HTTP_TXVAL_JSON_NULL,
    NGX_HTTP_TXVAL_JSON_FALSE,
    NGX_HTTP_TXVAL_JSON_TRUE,
    NGX_HTTP_TXVAL_JSON_NUMBER,
    NGX_HTTP_TXVAL_JSON_STRING,
    NGX_HTTP_TXVAL_JSON_OBJECT,
    NGX_HTTP_TXVAL_JSON_ARRAY
} ngx_http_txval_json_type_e;


/*
 * A reference token: matched against an object's keys (unescaped), and,
 * when it is an array index ("0", "1", ... without leading zeros),
 * against that element of an array.
 */
typedef struct {
    uint32_t                     index;
    uint8_t                      len;
    uint8_t                      is_index;
    unsigned char                text[NGX_HTTP_TXVAL_JSON_TOKEN_MAX];
} ngx_http_txval_json_token_t;


typedef struct {
    uint8_t                      ntokens;    /* 1 to _TOKENS */
    ngx_http_txval_json_token_t  tokens[NGX_HTTP_TXVAL_JSON_TOKENS];
} ngx_http_txval_json_path_t;


/*
 * Where a value is: a string's content between its quotes as written
 * (escapes not decoded), a number's text; containers and literals by
 * their type only.
 */
typedef struct {
    const unsigned char         *data;
    size_t                       len;
    uint8_t                      type;       /* ngx_http_txval_json_type_e */
    uint8_t                      escaped;    /* a string with a backslash */
} ngx_http_txval_json_span_t;


typedef struct {
    /* in: the paths looked for (NULL: none at that index) */
    const ngx_http_txval_json_path_t  *paths[NGX_HTTP_TXVAL_JSON_PATHS];

    /* out */
    ngx_http_txval_json_span_t   spans[NGX_HTTP_TXVAL_JSON_PATHS];
    int                          duplicate;  /* a path a key appeared
                                                twice on, the first in
                                                the body; -1: none */
    unsigned                     pan;        /* a card number key */
} ngx_http_txval_json_scan_t;


/*
 * NULL: the body is a valid JSON object, and scan's out fields are set;
 * else a sentence for the client that says what is wrong with it.
 */
const char *ngx_http_txval_json_scan(const unsigned char *buf, size_t len,
    ngx_http_txval_json_scan_t *scan);

/*
 * The lexical checks alone, over the whole body (what txval's prescan did
 * before cJSON): invalid UTF-8, raw control characters, escaped NULs,
 * numbers outside JSON's grammar. NULL, or the first thing wrong.
 */
const char *ngx_http_txval_json_lexical(const unsigned char *buf,
    size_t len);

/*
 * The content of a string the scanner accepted, unescaped into dst: its
 * length, or -1 when it is longer than size bytes.
 */
ssize_t ngx_http_txval_json_unescape(const unsigned char *s, size_t len,
    unsigned char *dst, size_t size);

/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? from p: the end of the
 * number, or NULL when p does not start with one.
 */
const unsigned char *ngx_http_txval_json_number(const unsigned char *p,
    const unsigned char *end);

/*
 * Text that may stand in a JSON string as it is but for '"' and '\':
 * valid UTF-8 without control characters. 0, or -1 with *why.
 */
int ngx_http_txval_json_printable(const unsigned char *text, size_t len,
    const char **why);

/*
 * Compiles an RFC 6901 JSON pointer ("/a/0/b~1c"): 0, or -1 with *why, a
 * sentence for nginx -t.
 */
int ngx_http_txval_json_pointer(const unsigned char *text, size_t len,
    ngx_http_txval_json_path_t *path, const char **why);


#endif /* _NGX_HTTP_TXVAL_JSON_H_INCLUDED_ */
