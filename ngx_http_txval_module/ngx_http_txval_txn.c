
/*
 * txval: parsing and validating the transaction body.
 *
 * Pure C (cJSON, no nginx): see ngx_http_txval_txn.h.
 */


#include <stdlib.h>
#include <string.h>
#include <cJSON.h>

/* SHA256_Init() and friends: direct, without the EVP provider look-ups */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "ngx_http_txval_txn.h"


typedef enum {
    NGX_HTTP_TXVAL_F_ID = 0,
    NGX_HTTP_TXVAL_F_AMOUNT,
    NGX_HTTP_TXVAL_F_CURRENCY,
    NGX_HTTP_TXVAL_F_MERCHANT_ID,
    NGX_HTTP_TXVAL_F_CARD_TOKEN,
    NGX_HTTP_TXVAL_F_CARD_BIN,
    NGX_HTTP_TXVAL_F_COUNTRY,
    NGX_HTTP_TXVAL_F_PAN,
    NGX_HTTP_TXVAL_F_CARD_NUMBER,
    NGX_HTTP_TXVAL_F_COUNT
} ngx_http_txval_field_e;


typedef struct {
    const char              *name;
    const char              *detail;
} ngx_http_txval_field_t;


/*
 * The alphabets of the fields: a bit per alphabet for every byte.
 * id alphabet: A-Z a-z 0-9 . _ : -
 */

#define NGX_HTTP_TXVAL_A_ID     1
#define NGX_HTTP_TXVAL_A_DIGIT  2
#define NGX_HTTP_TXVAL_A_UPPER  4

static const unsigned char  ngx_http_txval_alphabet[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0'] = 3, ['1'] = 3, ['2'] = 3, ['3'] = 3, ['4'] = 3,
    ['5'] = 3, ['6'] = 3, ['7'] = 3, ['8'] = 3, ['9'] = 3,
    ['A'] = 5, ['B'] = 5, ['C'] = 5, ['D'] = 5, ['E'] = 5, ['F'] = 5,
    ['G'] = 5, ['H'] = 5, ['I'] = 5, ['J'] = 5, ['K'] = 5, ['L'] = 5,
    ['M'] = 5, ['N'] = 5, ['O'] = 5, ['P'] = 5, ['Q'] = 5, ['R'] = 5,
    ['S'] = 5, ['T'] = 5, ['U'] = 5, ['V'] = 5, ['W'] = 5, ['X'] = 5,
    ['Y'] = 5, ['Z'] = 5,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
    ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
    ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1
};


static void ngx_http_txval_delete(cJSON *root);
static void *ngx_http_txval_arena_alloc(size_t size);
static void ngx_http_txval_arena_free(void *p);
static int ngx_http_txval_field_index(const char *name);
static const char *ngx_http_txval_prescan(const unsigned char *p,
    size_t len);
static const unsigned char *ngx_http_txval_number(const unsigned char *p,
    const unsigned char *end);
static int ngx_http_txval_has_pan(const cJSON *item);
static int ngx_http_txval_copy_string(const cJSON *item, char *dst,
    size_t min, size_t max, unsigned char alphabet);
static int ngx_http_txval_amount(const cJSON *item, int64_t *amount);
static int ngx_http_txval_amount_text(const unsigned char *buf, size_t len);
static unsigned char *ngx_http_txval_digest_field(unsigned char *p,
    const void *data, size_t len);


/*
 * cJSON mallocs every node and string. A parse is synchronous and a worker
 * has one thread, so the parse runs on a static bump arena installed for
 * its duration only (cJSON_InitHooks), with malloc() beyond it; the arena
 * is reset when the tree is deleted.
 */

#define NGX_HTTP_TXVAL_ARENA_SIZE  16384

static unsigned char  ngx_http_txval_arena[NGX_HTTP_TXVAL_ARENA_SIZE]
    __attribute__((aligned(16)));
static size_t         ngx_http_txval_arena_used;

static cJSON_Hooks    ngx_http_txval_arena_hooks = {
    ngx_http_txval_arena_alloc,
    ngx_http_txval_arena_free
};


static const ngx_http_txval_field_t  ngx_http_txval_fields[] = {
    { "id",
      "id must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -" },
    { "amount",
      "amount must be an integral number of minor units "
      "from 1 to 9007199254740991" },
    { "currency",
      "currency must be 3 uppercase letters (ISO 4217)" },
    { "merchant_id",
      "merchant_id must be a string of 1-64 characters "
      "from A-Z a-z 0-9 . _ : -" },
    { "card_token",
      "card_token must be a string of 1-128 characters "
      "from A-Z a-z 0-9 . _ : -" },
    { "card_bin",
      "card_bin must be a string of 6-8 digits" },
    { "country",
      "country must be 2 uppercase letters (ISO 3166-1 alpha-2)" },
    { "pan", NULL },
    { "card_number", NULL }
};


static const char *ngx_http_txval_missing[] = {
    "id is required",
    "amount is required",
    "currency is required",
    "merchant_id is required",
    "card_token is required"
};


ngx_http_txval_parse_rc_e
ngx_http_txval_txn_parse(const unsigned char *buf, size_t len,
    ngx_http_txval_txn_t *txn, ngx_http_txval_parse_error_t *err)
{
    int                         n, ok;
    size_t                      i;
    cJSON                      *root, *item, *found[NGX_HTTP_TXVAL_F_COUNT];
    const char                 *end, *why;
    ngx_http_txval_parse_rc_e   rc;

    memset(txn, 0, sizeof(ngx_http_txval_txn_t));
    err->field = NULL;

    if (len == 0) {
        err->detail = "the body is empty";
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    why = ngx_http_txval_prescan(buf, len);
    if (why != NULL) {
        err->detail = why;
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    end = NULL;

    cJSON_InitHooks(&ngx_http_txval_arena_hooks);
    root = cJSON_ParseWithLengthOpts((const char *) buf, len, &end, 0);

    if (root == NULL) {
        cJSON_InitHooks(NULL);
        ngx_http_txval_arena_used = 0;
        err->detail = "the body is not valid JSON";
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    /* nothing but white space may follow the value */

    for (i = (size_t) (end - (const char *) buf); i < len; i++) {
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n'
            && buf[i] != '\r')
        {
            ngx_http_txval_delete(root);
            err->detail = "the body has data after the JSON value";
            return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
        }
    }

    if (!cJSON_IsObject(root)) {
        ngx_http_txval_delete(root);
        err->detail = "the body is not a JSON object";
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    memset(found, 0, sizeof(found));
    rc = NGX_HTTP_TXVAL_PARSE_OK;

    for (item = root->child; item; item = item->next) {

        n = ngx_http_txval_field_index(item->string);

        if (n == NGX_HTTP_TXVAL_F_COUNT) {
            continue;       /* unknown fields are ignored */
        }

        if (found[n] != NULL && rc == NGX_HTTP_TXVAL_PARSE_OK) {
            /* a duplicate key is refused: which one wins is not defined */
            rc = NGX_HTTP_TXVAL_PARSE_INVALID_FIELD;
            err->field = ngx_http_txval_fields[n].name;
            err->detail = "a field appears more than once";
        }

        found[n] = item;
    }

    if (found[NGX_HTTP_TXVAL_F_PAN] || found[NGX_HTTP_TXVAL_F_CARD_NUMBER]
        || ngx_http_txval_has_pan(root->child))
    {
        ngx_http_txval_delete(root);
        err->field = NULL;
        err->detail = "card numbers are not accepted: send a card_token";
        return NGX_HTTP_TXVAL_PARSE_PAN;
    }

    if (rc != NGX_HTTP_TXVAL_PARSE_OK) {
        ngx_http_txval_delete(root);
        return rc;
    }

    for (n = NGX_HTTP_TXVAL_F_ID; n <= NGX_HTTP_TXVAL_F_COUNTRY; n++) {

        item = found[n];

        if (item == NULL || cJSON_IsNull(item)) {
            if (n <= NGX_HTTP_TXVAL_F_CARD_TOKEN) {
                err->field = ngx_http_txval_fields[n].name;
                err->detail = ngx_http_txval_missing[n];
                ngx_http_txval_delete(root);
                return NGX_HTTP_TXVAL_PARSE_INVALID_FIELD;
            }

            continue;       /* optional and absent */
        }

        switch (n) {

        case NGX_HTTP_TXVAL_F_ID:
            ok = ngx_http_txval_copy_string(item, txn->id, 1,
                                            NGX_HTTP_TXVAL_ID_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->id_len = (uint8_t) (ok > 0 ? ok : 0);
            break;

        case NGX_HTTP_TXVAL_F_AMOUNT:
            ok = ngx_http_txval_amount(item, &txn->amount)
                 && ngx_http_txval_amount_text(buf, len);
            break;

        case NGX_HTTP_TXVAL_F_CURRENCY:
            ok = ngx_http_txval_copy_string(item, txn->currency, 3, 3,
                                            NGX_HTTP_TXVAL_A_UPPER);
            break;

        case NGX_HTTP_TXVAL_F_MERCHANT_ID:
            ok = ngx_http_txval_copy_string(item, txn->merchant_id, 1,
                                            NGX_HTTP_TXVAL_MERCHANT_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->merchant_id_len = (uint8_t) (ok > 0 ? ok : 0);
            break;

        case NGX_HTTP_TXVAL_F_CARD_TOKEN:
            ok = ngx_http_txval_copy_string(item, txn->card_token, 1,
                                            NGX_HTTP_TXVAL_TOKEN_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->card_token_len = (uint8_t) (ok > 0 ? ok : 0);
            break;

        case NGX_HTTP_TXVAL_F_CARD_BIN:
            ok = ngx_http_txval_copy_string(item, txn->card_bin,
                                            NGX_HTTP_TXVAL_BIN_MIN,
                                            NGX_HTTP_TXVAL_BIN_MAX,
                                            NGX_HTTP_TXVAL_A_DIGIT);
            txn->card_bin_len = (uint8_t) (ok > 0 ? ok : 0);
            break;

        default: /* NGX_HTTP_TXVAL_F_COUNTRY */
            ok = ngx_http_txval_copy_string(item, txn->country, 2, 2,
                                            NGX_HTTP_TXVAL_A_UPPER);
            break;
        }

        if (ok <= 0) {
            err->field = ngx_http_txval_fields[n].name;
            err->detail = ngx_http_txval_fields[n].detail;
            ngx_http_txval_delete(root);
            return NGX_HTTP_TXVAL_PARSE_INVALID_FIELD;
        }
    }

    ngx_http_txval_delete(root);

    ngx_http_txval_txn_fingerprint(txn, txn->fingerprint);

    return NGX_HTTP_TXVAL_PARSE_OK;
}


static void
ngx_http_txval_delete(cJSON *root)
{
    cJSON_Delete(root);
    cJSON_InitHooks(NULL);
    ngx_http_txval_arena_used = 0;
}


static void *
ngx_http_txval_arena_alloc(size_t size)
{
    void  *p;

    size = (size + 15) & ~(size_t) 15;

    if (size > NGX_HTTP_TXVAL_ARENA_SIZE - ngx_http_txval_arena_used) {
        return malloc(size);
    }

    p = ngx_http_txval_arena + ngx_http_txval_arena_used;
    ngx_http_txval_arena_used += size;

    return p;
}


static void
ngx_http_txval_arena_free(void *p)
{
    if ((unsigned char *) p >= ngx_http_txval_arena
        && (unsigned char *) p
           < ngx_http_txval_arena + NGX_HTTP_TXVAL_ARENA_SIZE)
    {
        return;
    }

    free(p);
}


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


/* the known field's number, or NGX_HTTP_TXVAL_F_COUNT */

static int
ngx_http_txval_field_index(const char *name)
{
    int  n;

    switch (name[0]) {
    case 'i': n = NGX_HTTP_TXVAL_F_ID; break;
    case 'a': n = NGX_HTTP_TXVAL_F_AMOUNT; break;
    case 'm': n = NGX_HTTP_TXVAL_F_MERCHANT_ID; break;
    case 'p': n = NGX_HTTP_TXVAL_F_PAN; break;
    case 'c':
        switch (name[1]) {
        case 'u': n = NGX_HTTP_TXVAL_F_CURRENCY; break;
        case 'o': n = NGX_HTTP_TXVAL_F_COUNTRY; break;
        case 'a':
            if (strncmp(name, "card_", 5) != 0) {
                return NGX_HTTP_TXVAL_F_COUNT;
            }

            switch (name[5]) {
            case 't': n = NGX_HTTP_TXVAL_F_CARD_TOKEN; break;
            case 'b': n = NGX_HTTP_TXVAL_F_CARD_BIN; break;
            case 'n': n = NGX_HTTP_TXVAL_F_CARD_NUMBER; break;
            default: return NGX_HTTP_TXVAL_F_COUNT;
            }
            break;
        default: return NGX_HTTP_TXVAL_F_COUNT;
        }
        break;
    default: return NGX_HTTP_TXVAL_F_COUNT;
    }

    return strcmp(name, ngx_http_txval_fields[n].name) == 0
           ? n : NGX_HTTP_TXVAL_F_COUNT;
}


/*
 * What cJSON accepts but JSON (RFC 8259) does not, or what would let two
 * different bodies look alike after cJSON: invalid UTF-8, raw control
 * characters (tab, CR and LF only between tokens), escaped NULs (cJSON
 * would cut the string there), and numbers outside JSON's grammar
 * (01000, 1., .5, +1, 1.e3 all parse in cJSON).
 */

static const char *
ngx_http_txval_prescan(const unsigned char *p, size_t len)
{
    int                   in_string;
    size_t                n, i;
    uint32_t              cp;
    const unsigned char  *end, *class;

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
            p = ngx_http_txval_number(p, end);
            if (p == NULL) {
                return "the body is not valid JSON";
            }

            continue;

        case 6:
            p++;
            continue;

        default:
            break;
        }

        /* a multi-byte UTF-8 sequence */

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
            return "the body is not valid UTF-8";
        }

        if ((size_t) (end - p) <= n) {
            return "the body is not valid UTF-8";
        }

        for (i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return "the body is not valid UTF-8";
            }

            cp = (cp << 6) | (p[i] & 0x3f);
        }

        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff)))
            || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
        {
            return "the body is not valid UTF-8";
        }

        p += n + 1;
    }
}


/*
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? followed by the end,
 * white space, ',', ']' or '}': returns the end of the number, or NULL.
 */

static const unsigned char *
ngx_http_txval_number(const unsigned char *p, const unsigned char *end)
{
    if (*p == '-') {
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

    if (p < end && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r'
        && *p != ',' && *p != ']' && *p != '}')
    {
        return NULL;
    }

    return p;
}


/* a card number anywhere in the body, at any depth */

static int
ngx_http_txval_has_pan(const cJSON *item)
{
    for ( /* void */ ; item; item = item->next) {

        if (item->string
            && ((item->string[0] == 'p' && strcmp(item->string, "pan") == 0)
                || (item->string[0] == 'c'
                    && strcmp(item->string, "card_number") == 0)))
        {
            return 1;
        }

        if (item->child && ngx_http_txval_has_pan(item->child)) {
            return 1;
        }
    }

    return 0;
}


/* returns the length copied, or 0 when the value breaks the rule */

static int
ngx_http_txval_copy_string(const cJSON *item, char *dst, size_t min,
    size_t max, unsigned char alphabet)
{
    size_t       n;
    const char  *s;

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        return 0;
    }

    s = item->valuestring;

    for (n = 0; s[n] != '\0'; n++) {
        if (n == max
            || !(ngx_http_txval_alphabet[(unsigned char) s[n]] & alphabet))
        {
            return 0;
        }

        dst[n] = s[n];
    }

    if (n < min) {
        return 0;
    }

    dst[n] = '\0';

    return (int) n;
}


/*
 * The amount as written: a double cannot tell 1.0000000000000001 from 1,
 * the text can. Finds the top-level "amount" key in the body (valid JSON
 * by now) and checks that its number has no fractional part: digits D
 * with F of them after the point, times 10^E, is integral when E - F plus
 * D's trailing zeros is not negative. 1: integral, or the key is written
 * with escapes (then the double's check stands alone).
 */

static int
ngx_http_txval_amount_text(const unsigned char *buf, size_t len)
{
    int                   depth, esc, neg;
    long                  e, f, zeros;
    const unsigned char  *p, *end, *start;

    end = buf + len;
    depth = 0;

    for (p = buf; p < end; p++) {

        if (*p == '{' || *p == '[') {
            depth++;
            continue;
        }

        if (*p == '}' || *p == ']') {
            depth--;
            continue;
        }

        if (*p != '"') {
            continue;
        }

        start = ++p;
        esc = 0;

        while (p < end && *p != '"') {
            if (*p == '\\') {
                esc = 1;
                p++;
            }

            p++;
        }

        if (p >= end) {
            return 1;
        }

        if (depth != 1 || esc || p - start != 6
            || memcmp(start, "amount", 6) != 0)
        {
            continue;
        }

        for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\n'
                              || *p == '\r'); p++) { /* void */ }

        if (p == end || *p != ':') {
            continue;       /* a value "amount", not the key */
        }

        for (p++; p < end && (*p == ' ' || *p == '\t' || *p == '\n'
                              || *p == '\r'); p++) { /* void */ }

        /* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, as prescanned */

        if (p < end && *p == '-') {
            p++;
        }

        f = 0;
        zeros = 0;

        for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
            zeros = (*p == '0') ? zeros + 1 : 0;
        }

        if (p < end && *p == '.') {
            for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
                zeros = (*p == '0') ? zeros + 1 : 0;
                f++;
            }
        }

        e = 0;

        if (p < end && (*p == 'e' || *p == 'E')) {
            p++;
            neg = 0;

            if (p < end && (*p == '+' || *p == '-')) {
                neg = (*p++ == '-');
            }

            for ( /* void */ ; p < end && *p >= '0' && *p <= '9'; p++) {
                if (e < 100000) {
                    e = e * 10 + (*p - '0');
                }
            }

            if (neg) {
                e = -e;
            }
        }

        return e - f + zeros >= 0;
    }

    return 1;
}


/* 1000, 1e3 and 1000.0 are the same number; 1000.5, 0 and 1e400 are not */

static int
ngx_http_txval_amount(const cJSON *item, int64_t *amount)
{
    double  d;

    if (!cJSON_IsNumber(item)) {
        return 0;
    }

    d = item->valuedouble;

    /* also false for NaN and infinities */

    if (!(d >= 1.0 && d <= (double) NGX_HTTP_TXVAL_AMOUNT_MAX)) {
        return 0;
    }

    *amount = (int64_t) d;

    return (double) *amount == d;
}


int
ngx_http_txval_txn_peek_id(const unsigned char *buf, size_t len,
    const unsigned char **id, size_t *id_len)
{
    const unsigned char  *p, *end, *start;

    end = buf + len;

    for (p = buf; end - p > 4; p++) {

        p = memchr(p, '"', end - p - 4);
        if (p == NULL) {
            return -1;
        }

        if (p[1] != 'i' || p[2] != 'd' || p[3] != '"') {
            continue;
        }

        for (p += 4; p < end && (*p == ' ' || *p == '\t' || *p == '\n'
                                 || *p == '\r'); p++) { /* void */ }

        if (p == end || *p++ != ':') {
            return -1;
        }

        for ( /* void */ ; p < end && (*p == ' ' || *p == '\t'
                                       || *p == '\n' || *p == '\r'); p++)
        { /* void */ }

        if (p == end || *p++ != '"') {
            return -1;
        }

        start = p;

        while (p < end && *p != '"' && *p != '\\') {
            p++;
        }

        if (p == end || *p != '"' || p == start
            || p - start > NGX_HTTP_TXVAL_ID_MAX)
        {
            return -1;
        }

        *id = start;
        *id_len = p - start;

        return 0;
    }

    return -1;
}


#define NGX_HTTP_TXVAL_ROTL(x, b)  (uint64_t) (((x) << (b)) | ((x) >> (64 - (b))))

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
    int                   i;
    size_t                left;
    uint64_t              k0, k1, v0, v1, v2, v3, m, b;
    const unsigned char  *end;

    k0 = ngx_http_txval_le64(key);
    k1 = ngx_http_txval_le64(key + 8);

    v0 = 0x736f6d6570736575ULL ^ k0;
    v1 = 0x646f72616e646f6dULL ^ k1 ^ 0xee;
    v2 = 0x6c7967656e657261ULL ^ k0;
    v3 = 0x7465646279746573ULL ^ k1;

    left = len & 7;
    end = in + len - left;

    for ( /* void */ ; in != end; in += 8) {
        m = ngx_http_txval_le64(in);
        v3 ^= m;
        NGX_HTTP_TXVAL_SIPROUND;
        NGX_HTTP_TXVAL_SIPROUND;
        v0 ^= m;
    }

    b = (uint64_t) len << 56;

    for (i = (int) left - 1; i >= 0; i--) {
        b |= (uint64_t) in[i] << (8 * i);
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
