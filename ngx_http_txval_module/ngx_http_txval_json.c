
/*
 * txval: the strict JSON scanner.
 *
 * Pure C: see ngx_http_txval_json.h.
 *
 * One pass and no tree. The scanner keeps a bit per open container
 * (object or array) and, for the first NGX_HTTP_TXVAL_JSON_TOKENS levels,
 * the set of paths whose tokens so far lead into the container (a bit
 * mask, "alive"). A member whose key, or index, matches the next token of
 * a live path carries that path on; a path whose tokens are all matched
 * has found its value there, and its span is recorded. Below the deepest
 * path only the syntax and the card number keys are checked.
 *
 * It accepts what txval accepted when it parsed with cJSON behind a
 * strict prescan (fuzz/fuzz_txn.c holds it against cJSON), with one
 * difference: an escape \u with other than 4 hex digits, which cJSON read
 * as a NUL character that cut the string, is refused. The messages are
 * those of the prescan too: on an error, its lexical checks run over the
 * whole body (ngx_http_txval_json_why), and only when they find nothing
 * is the error a structural one.
 */


#include <string.h>

#include "ngx_http_txval_json.h"


#define NGX_HTTP_TXVAL_JSON_WORDS  (NGX_HTTP_TXVAL_JSON_DEPTH_MAX / 64 + 1)

#define ngx_http_txval_json_ws(c)                                            \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')


static const char *ngx_http_txval_json_why(const unsigned char *buf,
    size_t len, const char *structural);
static const unsigned char *ngx_http_txval_json_string(
    const unsigned char *p, const unsigned char *end, unsigned *escaped);
static const unsigned char *ngx_http_txval_json_utf8(const unsigned char *p,
    const unsigned char *end);
static int32_t ngx_http_txval_json_hex4(const unsigned char *p,
    const unsigned char *end);
static unsigned ngx_http_txval_json_key(ngx_http_txval_json_scan_t *scan,
    unsigned alive, unsigned depth, const unsigned char *key, size_t len,
    unsigned escaped, uint16_t *seen);
static unsigned ngx_http_txval_json_element(ngx_http_txval_json_scan_t *scan,
    unsigned alive, unsigned depth, uint32_t index);
static void ngx_http_txval_json_found(ngx_http_txval_json_scan_t *scan,
    unsigned match, unsigned type, const unsigned char *data, size_t len,
    unsigned escaped);


/* true, false and null */

typedef struct {
    const char                *text;
    size_t                     len;
    unsigned                   type;
} ngx_http_txval_json_lit_t;

static const ngx_http_txval_json_lit_t  ngx_http_txval_json_literals[] = {
    { "true", 4, NGX_HTTP_TXVAL_JSON_TRUE },
    { "false", 5, NGX_HTTP_TXVAL_JSON_FALSE },
    { "null", 4, NGX_HTTP_TXVAL_JSON_NULL }
};


/* the bytes a string may hold as they are: printable ASCII but " and \ */

static const unsigned char  ngx_http_txval_json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    /* 0x80 - 0xff: 0, UTF-8 is checked */
};


const char *
ngx_http_txval_json_scan(const unsigned char *buf, size_t len,
    ngx_http_txval_json_scan_t *scan)
{
    uint8_t                           alive[NGX_HTTP_TXVAL_JSON_TOKENS + 1];
    uint8_t                           ends[NGX_HTTP_TXVAL_JSON_TOKENS + 1];
    unsigned                          f, depth, pending, rest, match;
    unsigned                          escaped, top;
    uint16_t                          seen[NGX_HTTP_TXVAL_JSON_PATHS];
    uint32_t                          index[NGX_HTTP_TXVAL_JSON_TOKENS + 1];
    uint64_t                          objects[NGX_HTTP_TXVAL_JSON_WORDS];
    const unsigned char              *p, *q, *end;
    const ngx_http_txval_json_lit_t  *lit;

    memset(scan->spans, 0, sizeof(scan->spans));
    memset(seen, 0, sizeof(seen));
    memset(ends, 0, sizeof(ends));
    scan->duplicate = -1;
    scan->pan = 0;

    /* every path leads into the top-level value */

    pending = 0;

    for (f = 0; f < NGX_HTTP_TXVAL_JSON_PATHS; f++) {
        if (scan->paths[f] && scan->paths[f]->ntokens >= 1
            && scan->paths[f]->ntokens <= NGX_HTTP_TXVAL_JSON_TOKENS)
        {
            pending |= 1u << f;
            ends[scan->paths[f]->ntokens] |= 1u << f;
        }
    }

    p = buf;
    end = buf + len;
    depth = 0;
    top = 0;

    /* a byte order mark, which RFC 8259 lets a parser ignore */

    if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
    }

value:

    /* a value, a member of the container at depth; pending: its paths */

    while (p < end && ngx_http_txval_json_ws(*p)) {
        p++;
    }

    if (p == end) {
        goto invalid;
    }

    if (depth == 0) {
        top = *p;
    }

    match = pending & ends[depth <= NGX_HTTP_TXVAL_JSON_TOKENS ? depth : 0];
    rest = pending & ~match;

    switch (*p) {

    case '{':
    case '[':
        if (depth == NGX_HTTP_TXVAL_JSON_DEPTH_MAX) {
            goto invalid;
        }

        depth++;

        if (*p == '{') {
            objects[depth / 64] |= (uint64_t) 1 << (depth % 64);

        } else {
            objects[depth / 64] &= ~((uint64_t) 1 << (depth % 64));
        }

        if (match) {
            ngx_http_txval_json_found(scan, match,
                                      *p == '{' ? NGX_HTTP_TXVAL_JSON_OBJECT
                                                : NGX_HTTP_TXVAL_JSON_ARRAY,
                                      p, 1, 0);
        }

        if (depth <= NGX_HTTP_TXVAL_JSON_TOKENS) {
            alive[depth] = (uint8_t) rest;
            index[depth] = 0;
        }

        for (q = p++; p < end && ngx_http_txval_json_ws(*p); p++) {
            /* void */
        }

        if (p == end) {
            goto invalid;
        }

        if (*q == '{') {
            if (*p == '}') {
                p++;
                depth--;
                goto next;
            }

            goto key;
        }

        if (*p == ']') {
            p++;
            depth--;
            goto next;
        }

        pending = (depth <= NGX_HTTP_TXVAL_JSON_TOKENS && alive[depth])
                  ? ngx_http_txval_json_element(scan, alive[depth], depth, 0)
                  : 0;
        goto value;

    case '"':
        q = ngx_http_txval_json_string(p + 1, end, &escaped);
        if (q == NULL) {
            goto invalid;
        }

        if (match) {
            ngx_http_txval_json_found(scan, match, NGX_HTTP_TXVAL_JSON_STRING,
                                      p + 1, q - p - 1, escaped);
        }

        p = q + 1;
        goto next;

    case 't':
    case 'f':
    case 'n':
        lit = &ngx_http_txval_json_literals[*p == 't' ? 0 : *p == 'f' ? 1 : 2];

        if ((size_t) (end - p) < lit->len
            || memcmp(p, lit->text, lit->len) != 0)
        {
            goto invalid;
        }

        if (match) {
            ngx_http_txval_json_found(scan, match, lit->type, p, lit->len, 0);
        }

        p += lit->len;
        goto next;

    default:
        q = ngx_http_txval_json_number(p, end);
        if (q == NULL) {
            goto invalid;
        }

        if (match) {
            ngx_http_txval_json_found(scan, match, NGX_HTTP_TXVAL_JSON_NUMBER,
                                      p, q - p, 0);
        }

        p = q;
        goto next;
    }

key:

    /* a member's key, p at its opening quote (or what stands there) */

    if (*p != '"') {
        goto invalid;
    }

    q = ngx_http_txval_json_string(p + 1, end, &escaped);
    if (q == NULL) {
        goto invalid;
    }

    pending = ngx_http_txval_json_key(scan,
                                      depth <= NGX_HTTP_TXVAL_JSON_TOKENS
                                      ? alive[depth] : 0,
                                      depth, p + 1, q - p - 1, escaped, seen);

    for (p = q + 1; p < end && ngx_http_txval_json_ws(*p); p++) {
        /* void */
    }

    if (p == end || *p != ':') {
        goto invalid;
    }

    p++;
    goto value;

next:

    /* after a value: the end, or a comma or the end of its container */

    if (depth == 0) {
        goto done;
    }

    while (p < end && ngx_http_txval_json_ws(*p)) {
        p++;
    }

    if (p == end) {
        goto invalid;
    }

    if (objects[depth / 64] & ((uint64_t) 1 << (depth % 64))) {

        if (*p == '}') {
            p++;
            depth--;
            goto next;
        }

        if (*p != ',') {
            goto invalid;
        }

        for (p++; p < end && ngx_http_txval_json_ws(*p); p++) {
            /* void */
        }

        if (p == end) {
            goto invalid;
        }

        goto key;
    }

    if (*p == ']') {
        p++;
        depth--;
        goto next;
    }

    if (*p != ',') {
        goto invalid;
    }

    p++;
    pending = 0;

    if (depth <= NGX_HTTP_TXVAL_JSON_TOKENS && alive[depth]) {
        pending = ngx_http_txval_json_element(scan, alive[depth], depth,
                                              ++index[depth]);
    }

    goto value;

done:

    while (p < end && ngx_http_txval_json_ws(*p)) {
        p++;
    }

    if (p != end) {
        return ngx_http_txval_json_why(buf, len,
                                       "the body has data after the JSON "
                                       "value");
    }

    if (top != '{') {
        return ngx_http_txval_json_why(buf, len,
                                       "the body is not a JSON object");
    }

    return NULL;

invalid:

    return ngx_http_txval_json_why(buf, len, "the body is not valid JSON");
}


/*
 * A member's key: a card number key is noted, and the live paths whose
 * next token it is go on into its value. A key that one of them already
 * matched in this object is a duplicate: which of the two values a path
 * means is not defined.
 */

static unsigned
ngx_http_txval_json_key(ngx_http_txval_json_scan_t *scan, unsigned alive,
    unsigned depth, const unsigned char *key, size_t len, unsigned escaped,
    uint16_t *seen)
{
    ssize_t                             n;
    unsigned                            f, match, bit;
    unsigned char                       buf[NGX_HTTP_TXVAL_JSON_TOKEN_MAX];
    const ngx_http_txval_json_token_t  *tok;

    if (escaped) {
        n = ngx_http_txval_json_unescape(key, len, buf, sizeof(buf));

        if (n < 0) {
            /* longer than any token, and than "card_number" */
            return 0;
        }

        key = buf;
        len = (size_t) n;
    }

    if ((len == 3 && memcmp(key, "pan", 3) == 0)
        || (len == 11 && memcmp(key, "card_number", 11) == 0))
    {
        scan->pan = 1;
    }

    match = 0;

    for (f = 0; alive; f++, alive >>= 1) {

        if (!(alive & 1)) {
            continue;
        }

        tok = &scan->paths[f]->tokens[depth - 1];

        if (tok->len == len && memcmp(tok->text, key, len) == 0) {
            match |= 1u << f;
        }
    }

    if (match == 0) {
        return 0;
    }

    bit = 1u << (depth - 1);

    for (f = 0; f < NGX_HTTP_TXVAL_JSON_PATHS; f++) {

        if (!(match & (1u << f))) {
            continue;
        }

        if ((seen[f] & bit) && scan->duplicate < 0) {
            scan->duplicate = (int) f;
        }

        seen[f] |= bit;
    }

    return match;
}


/* an array's element: the live paths whose next token is its index */

static unsigned
ngx_http_txval_json_element(ngx_http_txval_json_scan_t *scan, unsigned alive,
    unsigned depth, uint32_t index)
{
    unsigned                            f, match;
    const ngx_http_txval_json_token_t  *tok;

    match = 0;

    for (f = 0; alive; f++, alive >>= 1) {

        if (!(alive & 1)) {
            continue;
        }

        tok = &scan->paths[f]->tokens[depth - 1];

        if (tok->is_index && tok->index == index) {
            match |= 1u << f;
        }
    }

    return match;
}


static void
ngx_http_txval_json_found(ngx_http_txval_json_scan_t *scan, unsigned match,
    unsigned type, const unsigned char *data, size_t len, unsigned escaped)
{
    unsigned                     f;
    ngx_http_txval_json_span_t  *span;

    for (f = 0; match; f++, match >>= 1) {

        if (!(match & 1)) {
            continue;
        }

        span = &scan->spans[f];
        span->data = data;
        span->len = len;
        span->type = (uint8_t) type;
        span->escaped = (uint8_t) escaped;
    }
}


/*
 * A string's content from p (after its opening quote): the closing quote,
 * or NULL when the string is not valid: a raw control character, invalid
 * UTF-8, an unknown escape, \u without 4 hex digits, \u0000, a lone or
 * unpaired surrogate, or no closing quote.
 */

static const unsigned char *
ngx_http_txval_json_string(const unsigned char *p, const unsigned char *end,
    unsigned *escaped)
{
    int32_t  c, lo;

    *escaped = 0;

    for ( ;; ) {

        while (p < end && ngx_http_txval_json_plain[*p]) {
            p++;
        }

        if (p == end) {
            return NULL;
        }

        if (*p == '"') {
            return p;
        }

        if (*p == '\\') {
            *escaped = 1;

            if (end - p < 2) {
                return NULL;
            }

            switch (p[1]) {

            case '"': case '\\': case '/':
            case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                continue;

            case 'u':
                c = ngx_http_txval_json_hex4(p + 2, end);

                /* not hex, a NUL, or a low surrogate first */
                if (c <= 0 || (c >= 0xdc00 && c <= 0xdfff)) {
                    return NULL;
                }

                p += 6;

                if (c >= 0xd800 && c <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') {
                        return NULL;
                    }

                    lo = ngx_http_txval_json_hex4(p + 2, end);

                    if (lo < 0xdc00 || lo > 0xdfff) {
                        return NULL;
                    }

                    p += 6;
                }

                continue;

            default:
                return NULL;
            }
        }

        if (*p < 0x20) {
            return NULL;
        }

        p = ngx_http_txval_json_utf8(p, end);
        if (p == NULL) {
            return NULL;
        }
    }
}


/* a multi-byte UTF-8 sequence at p: its end, or NULL when not valid */

static const unsigned char *
ngx_http_txval_json_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t    n, i;
    uint32_t  cp;

    if (*p >= 0xc2 && *p <= 0xdf) {
        n = 1;
        cp = *p & 0x1f;

    } else if (*p >= 0xe0 && *p <= 0xef) {
        n = 2;
        cp = *p & 0x0f;

    } else if (*p >= 0xf0 && *p <= 0xf4) {
        n = 3;
        cp = *p & 0x07;

    } else {
        return NULL;
    }

    if ((size_t) (end - p) <= n) {
        return NULL;
    }

    for (i = 1; i <= n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return NULL;
        }

        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
        || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
    {
        return NULL;
    }

    return p + n + 1;
}


/* 4 hex digits at p: their value, or -1 */

static int32_t
ngx_http_txval_json_hex4(const unsigned char *p, const unsigned char *end)
{
    int      i;
    int32_t  c, n;

    if (end - p < 4) {
        return -1;
    }

    n = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else if (c >= 'a' && c <= 'f') {
            c -= 'a' - 10;

        } else if (c >= 'A' && c <= 'F') {
            c -= 'A' - 10;

        } else {
            return -1;
        }

        n = n * 16 + c;
    }

    return n;
}


const unsigned char *
ngx_http_txval_json_number(const unsigned char *p, const unsigned char *end)
{
    if (p < end && *p == '-') {
        p++;
    }

    if (p == end || *p < '0' || *p > '9') {
        return NULL;
    }

    if (*p++ != '0') {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && *p == '.') {
        if (++p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return NULL;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    return p;
}


ssize_t
ngx_http_txval_json_unescape(const unsigned char *s, size_t len,
    unsigned char *dst, size_t size)
{
    int32_t               c, lo;
    unsigned char        *d, *last;
    const unsigned char  *end;

    d = dst;
    last = dst + size;
    end = s + len;

    while (s < end) {

        if (*s != '\\') {
            if (d == last) {
                return -1;
            }

            *d++ = *s++;
            continue;
        }

        if (end - s < 2) {
            return -1;
        }

        switch (s[1]) {
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;

        case 'u':
            c = ngx_http_txval_json_hex4(s + 2, end);
            if (c < 0) {
                return -1;
            }

            s += 4;

            if (c >= 0xd800 && c <= 0xdbff) {
                lo = ngx_http_txval_json_hex4(s + 4, end);
                if (lo < 0xdc00 || lo > 0xdfff || s[2] != '\\'
                    || s[3] != 'u')
                {
                    return -1;
                }

                c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
                s += 6;
            }

            break;

        default:            /* " \ / */
            c = s[1];
            break;
        }

        s += 2;

        /* as UTF-8 */

        if (c < 0x80) {
            if (last - d < 1) {
                return -1;
            }

            *d++ = (unsigned char) c;

        } else if (c < 0x800) {
            if (last - d < 2) {
                return -1;
            }

            *d++ = (unsigned char) (0xc0 | (c >> 6));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));

        } else if (c < 0x10000) {
            if (last - d < 3) {
                return -1;
            }

            *d++ = (unsigned char) (0xe0 | (c >> 12));
            *d++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));

        } else {
            if (last - d < 4) {
                return -1;
            }

            *d++ = (unsigned char) (0xf0 | (c >> 18));
            *d++ = (unsigned char) (0x80 | ((c >> 12) & 0x3f));
            *d++ = (unsigned char) (0x80 | ((c >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (c & 0x3f));
        }
    }

    return d - dst;
}


int
ngx_http_txval_json_printable(const unsigned char *text, size_t len,
    const char **why)
{
    const unsigned char  *p, *q, *end;

    end = text + len;

    for (p = text; p < end; /* void */ ) {
        if (*p < 0x20 || *p == 0x7f) {
            *why = "it holds a control character";
            return -1;
        }

        if (*p < 0x80) {
            p++;
            continue;
        }

        q = ngx_http_txval_json_utf8(p, end);
        if (q == NULL) {
            *why = "it is not valid UTF-8";
            return -1;
        }

        p = q;
    }

    return 0;
}


int
ngx_http_txval_json_pointer(const unsigned char *text, size_t len,
    ngx_http_txval_json_path_t *path, const char **why)
{
    size_t                        n, i;
    uint32_t                      index;
    unsigned char                 c;
    const unsigned char          *p, *end;
    ngx_http_txval_json_token_t  *tok;

    memset(path, 0, sizeof(ngx_http_txval_json_path_t));

    if (len == 0 || text[0] != '/') {
        *why = "it must start with \"/\"";
        return -1;
    }

    if (ngx_http_txval_json_printable(text, len, why) != 0) {
        return -1;
    }

    end = text + len;

    for (p = text; p < end; /* void */ ) {

        p++;        /* the '/' */

        if (path->ntokens == NGX_HTTP_TXVAL_JSON_TOKENS) {
            *why = "it has more than 8 tokens";
            return -1;
        }

        tok = &path->tokens[path->ntokens++];
        n = 0;

        while (p < end && *p != '/') {
            c = *p++;

            if (c == '~') {
                if (p == end || (*p != '0' && *p != '1')) {
                    *why = "\"~\" must be followed by \"0\" or \"1\"";
                    return -1;
                }

                c = (*p++ == '0') ? '~' : '/';
            }

            if (n == NGX_HTTP_TXVAL_JSON_TOKEN_MAX) {
                *why = "a token is longer than 64 bytes";
                return -1;
            }

            tok->text[n++] = c;
        }

        tok->len = (uint8_t) n;

        /* an array index: 0, or up to 9 digits without a leading zero */

        if (n == 0 || n > 9 || (tok->text[0] == '0' && n > 1)) {
            continue;
        }

        index = 0;

        for (i = 0; i < n; i++) {
            if (tok->text[i] < '0' || tok->text[i] > '9') {
                break;
            }

            index = index * 10 + (tok->text[i] - '0');
        }

        if (i == n) {
            tok->is_index = 1;
            tok->index = index;
        }
    }

    return 0;
}


/*
 * What is wrong with a body the scanner refused: what a lexical look at
 * all of it finds first, else the structural error the scanner found.
 */

static const char *
ngx_http_txval_json_why(const unsigned char *buf, size_t len,
    const char *structural)
{
    const char  *why;

    why = ngx_http_txval_json_lexical(buf, len);

    return why ? why : structural;
}


/*
 * In the order of the bytes: invalid UTF-8, raw control characters (tab,
 * CR and LF only between tokens), escaped NULs, numbers outside JSON's
 * grammar (01000, 1., .5, +1, 1.e3).
 */

const char *
ngx_http_txval_json_lexical(const unsigned char *p, size_t len)
{
    int                   in_string;
    const unsigned char  *end, *class, *q;

    /*
     * 0: nothing to check, 1: control character, 2: '"', 3: '\\',
     * 4: not ASCII, 5: a number's first character, 6: tab, CR, LF
     */

#define NGX_HTTP_TXVAL_CLASS_HIGH                                            \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,                      \
        4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4

    /* between tokens */
    static const unsigned char  value_class[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 6, 6, 1, 1, 6, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0,
        5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        NGX_HTTP_TXVAL_CLASS_HIGH
    };

    /* inside a string */
    static const unsigned char  string_class[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        NGX_HTTP_TXVAL_CLASS_HIGH
    };

#undef NGX_HTTP_TXVAL_CLASS_HIGH

    end = p + len;
    in_string = 0;
    class = value_class;

    for ( ;; ) {

        while (p < end && class[*p] == 0) {
            p++;
        }

        if (p >= end) {
            return NULL;
        }

        switch (class[*p]) {

        case 1:
            return "the body holds a control character";

        case 2:
            in_string = !in_string;
            class = in_string ? string_class : value_class;
            p++;
            continue;

        case 3:
            if (in_string) {
                if (end - p >= 6 && p[1] == 'u' && p[2] == '0'
                    && p[3] == '0' && p[4] == '0' && p[5] == '0')
                {
                    return "the body holds an escaped NUL character";
                }

                if (p + 1 == end) {
                    return "the body is not valid JSON";
                }

                if (string_class[p[1]] == 1) {
                    return "the body holds a control character";
                }

                p++;        /* the escaped character: '"' or '\\' too */
            }

            p++;
            continue;

        case 5:
            /* a number, followed by the end, white space, ',' ']' '}' */

            q = ngx_http_txval_json_number(p, end);

            if (q == NULL
                || (q < end && !ngx_http_txval_json_ws(*q) && *q != ','
                    && *q != ']' && *q != '}'))
            {
                return "the body is not valid JSON";
            }

            p = q;
            continue;

        case 6:
            p++;
            continue;

        default:
            break;
        }

        p = ngx_http_txval_json_utf8(p, end);
        if (p == NULL) {
            return "the body is not valid UTF-8";
        }
    }
}
