
/*
 * txval: the field mapping, the field rules, the amounts.
 *
 * Pure C (no nginx): see ngx_http_txval_txn.h. The body is read in one
 * pass by the JSON scanner (ngx_http_txval_json.c), which finds every
 * mapped field's value; the rules then read each value where it lies in
 * the body: strings unescaped into the transaction's fixed buffers,
 * numbers from their text (exact integer arithmetic, never a double).
 */


#include <stdio.h>
#include <string.h>

#include "ngx_http_txval_digest.h"


/* a field's value for the rules: a JSON value, or a supplied one */
typedef struct {
    const unsigned char     *data;
    size_t                   len;
    unsigned                 type;       /* ngx_http_txval_json_type_e */
    unsigned                 escaped;    /* JSON escapes to decode */
} ngx_http_txval_field_value_t;



/*
 * The alphabets of the fields: a bit per alphabet for every byte.
 * id alphabet: A-Z a-z 0-9 . _ : -
 */

#define NGX_HTTP_TXVAL_A_ID     1
#define NGX_HTTP_TXVAL_A_DIGIT  2
#define NGX_HTTP_TXVAL_A_UPPER  4
#define NGX_HTTP_TXVAL_A_LOWER  8

static const unsigned char  ngx_http_txval_alphabet[256] = {
    ['-'] = 1, ['.'] = 1, [':'] = 1, ['_'] = 1,
    ['0'] = 3, ['1'] = 3, ['2'] = 3, ['3'] = 3, ['4'] = 3,
    ['5'] = 3, ['6'] = 3, ['7'] = 3, ['8'] = 3, ['9'] = 3,
    ['A'] = 5, ['B'] = 5, ['C'] = 5, ['D'] = 5, ['E'] = 5, ['F'] = 5,
    ['G'] = 5, ['H'] = 5, ['I'] = 5, ['J'] = 5, ['K'] = 5, ['L'] = 5,
    ['M'] = 5, ['N'] = 5, ['O'] = 5, ['P'] = 5, ['Q'] = 5, ['R'] = 5,
    ['S'] = 5, ['T'] = 5, ['U'] = 5, ['V'] = 5, ['W'] = 5, ['X'] = 5,
    ['Y'] = 5, ['Z'] = 5,
    ['a'] = 9, ['b'] = 9, ['c'] = 9, ['d'] = 9, ['e'] = 9, ['f'] = 9,
    ['g'] = 9, ['h'] = 9, ['i'] = 9, ['j'] = 9, ['k'] = 9, ['l'] = 9,
    ['m'] = 9, ['n'] = 9, ['o'] = 9, ['p'] = 9, ['q'] = 9, ['r'] = 9,
    ['s'] = 9, ['t'] = 9, ['u'] = 9, ['v'] = 9, ['w'] = 9, ['x'] = 9,
    ['y'] = 9, ['z'] = 9
};


static void ngx_http_txval_mapping_set(ngx_http_txval_source_t *src,
    int from, ngx_http_txval_json_path_t *path, const unsigned char *text,
    size_t len);
static ngx_http_txval_parse_rc_e ngx_http_txval_txn_fields(
    const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_field_value_t *v, ngx_http_txval_txn_t *txn,
    ngx_http_txval_parse_error_t *err);
static int ngx_http_txval_copy_string(const ngx_http_txval_field_value_t *v,
    char *dst, size_t min, size_t max, unsigned char alphabet);
static int ngx_http_txval_currency(const ngx_http_txval_field_value_t *v,
    unsigned any, char *dst);
static int ngx_http_txval_amount_text(const ngx_http_txval_field_value_t *v,
    unsigned char *buf, size_t size, const unsigned char **num, size_t *len);
static ngx_http_txval_parse_rc_e ngx_http_txval_fail(
    ngx_http_txval_parse_error_t *err, const ngx_http_txval_mapping_t *map,
    int field, const char *rule);


static const char  *ngx_http_txval_field_names[] = {
    "id", "amount", "currency", "merchant_id", "card_token", "card_bin",
    "country"
};


/* what a value must be, after the field's name (and its source) */

#define NGX_HTTP_TXVAL_RULE_ID                                               \
    "must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -"
#define NGX_HTTP_TXVAL_RULE_MINOR                                            \
    "must be an integral number of minor units from 1 to 9007199254740991"
#define NGX_HTTP_TXVAL_RULE_DECIMAL                                          \
    "must be a decimal number of major units, as a JSON number or a string"
#define NGX_HTTP_TXVAL_RULE_UPPER                                            \
    "must be 3 uppercase letters (ISO 4217)"
#define NGX_HTTP_TXVAL_RULE_ANY                                              \
    "must be 3 letters (ISO 4217)"
#define NGX_HTTP_TXVAL_RULE_EXPONENT                                         \
    "must be an ISO 4217 code with a minor unit, to scale a decimal amount"
#define NGX_HTTP_TXVAL_RULE_MERCHANT                                         \
    "must be a string of 1-64 characters from A-Z a-z 0-9 . _ : -"
#define NGX_HTTP_TXVAL_RULE_TOKEN                                            \
    "must be a string of 1-128 characters from A-Z a-z 0-9 . _ : -"
#define NGX_HTTP_TXVAL_RULE_BIN                                              \
    "must be a string of 6-8 digits"
#define NGX_HTTP_TXVAL_RULE_COUNTRY                                          \
    "must be 2 uppercase letters (ISO 3166-1 alpha-2)"


/* each field at the top-level key of its name */

#define NGX_HTTP_TXVAL_DEFAULT(name)                                         \
    { NGX_HTTP_TXVAL_FROM_DEFAULT, sizeof(name),                             \
      { 1, { { 0, sizeof(name) - 1, 0, name } } }, "/" name }

static const ngx_http_txval_mapping_t  ngx_http_txval_default_mapping = {
    { NGX_HTTP_TXVAL_DEFAULT("id"),
      NGX_HTTP_TXVAL_DEFAULT("amount"),
      NGX_HTTP_TXVAL_DEFAULT("currency"),
      NGX_HTTP_TXVAL_DEFAULT("merchant_id"),
      NGX_HTTP_TXVAL_DEFAULT("card_token"),
      NGX_HTTP_TXVAL_DEFAULT("card_bin"),
      NGX_HTTP_TXVAL_DEFAULT("country") },
    NGX_HTTP_TXVAL_AMOUNT_MINOR,
    NGX_HTTP_TXVAL_CASE_UPPER,
    0,
    0
};

#undef NGX_HTTP_TXVAL_DEFAULT


/*
 * The ISO 4217 minor unit of every current currency (and of those in
 * their withdrawal period), sorted: a code and its exponent per 4 bytes.
 * The codes without one (XAU, XDR, XXX, ...) are not here.
 */

static const char  ngx_http_txval_currencies[] =
    "AED2AFN2ALL2AMD2ANG2AOA2ARS2AUD2AWG2"
    "AZN2BAM2BBD2BDT2BGN2BHD3BIF0BMD2BND2"
    "BOB2BOV2BRL2BSD2BTN2BWP2BYN2BZD2CAD2"
    "CDF2CHE2CHF2CHW2CLF4CLP0CNY2COP2COU2"
    "CRC2CUC2CUP2CVE2CZK2DJF0DKK2DOP2DZD2"
    "EGP2ERN2ETB2EUR2FJD2FKP2GBP2GEL2GHS2"
    "GIP2GMD2GNF0GTQ2GYD2HKD2HNL2HTG2HUF2"
    "IDR2ILS2INR2IQD3IRR2ISK0JMD2JOD3JPY0"
    "KES2KGS2KHR2KMF0KPW2KRW0KWD3KYD2KZT2"
    "LAK2LBP2LKR2LRD2LSL2LYD3MAD2MDL2MGA2"
    "MKD2MMK2MNT2MOP2MRU2MUR2MVR2MWK2MXN2"
    "MXV2MYR2MZN2NAD2NGN2NIO2NOK2NPR2NZD2"
    "OMR3PAB2PEN2PGK2PHP2PKR2PLN2PYG0QAR2"
    "RON2RSD2RUB2RWF0SAR2SBD2SCR2SDG2SEK2"
    "SGD2SHP2SLE2SLL2SOS2SRD2SSP2STN2SVC2"
    "SYP2SZL2THB2TJS2TMT2TND3TOP2TRY2TTD2"
    "TWD2TZS2UAH2UGX0USD2USN2UYI0UYU2UYW4"
    "UZS2VED2VES2VND0VUV0WST2XAF0XCD2XCG2"
    "XOF0XPF0YER2ZAR2ZMW2ZWG2ZWL2";


void
ngx_http_txval_mapping_init(ngx_http_txval_mapping_t *map)
{
    memcpy(map, &ngx_http_txval_default_mapping,
           sizeof(ngx_http_txval_mapping_t));
}


int
ngx_http_txval_mapping_field(const unsigned char *name, size_t len)
{
    int  n;

    for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {
        if (strlen(ngx_http_txval_field_names[n]) == len
            && memcmp(ngx_http_txval_field_names[n], name, len) == 0)
        {
            return n;
        }
    }

    return -1;
}


const char *
ngx_http_txval_field_name(int field)
{
    return ngx_http_txval_field_names[field];
}


int
ngx_http_txval_mapping_pointer(ngx_http_txval_mapping_t *map, int field,
    const unsigned char *text, size_t len, const char **why)
{
    ngx_http_txval_json_path_t  path;

    if (len > NGX_HTTP_TXVAL_SOURCE_MAX) {
        *why = "it is longer than 256 bytes";
        return -1;
    }

    if (ngx_http_txval_json_pointer(text, len, &path, why) != 0) {
        return -1;      /* the source as it was */
    }

    ngx_http_txval_mapping_set(&map->fields[field],
                               NGX_HTTP_TXVAL_FROM_POINTER, &path, text, len);

    return 0;
}


int
ngx_http_txval_mapping_value(ngx_http_txval_mapping_t *map, int field,
    const unsigned char *text, size_t len, const char **why)
{
    if (len > NGX_HTTP_TXVAL_SOURCE_MAX) {
        *why = "it is longer than 256 bytes";
        return -1;
    }

    /* it is named in error details */

    if (ngx_http_txval_json_printable(text, len, why) != 0) {
        return -1;
    }

    ngx_http_txval_mapping_set(&map->fields[field],
                               NGX_HTTP_TXVAL_FROM_VALUE, NULL, text, len);

    return 0;
}


/*
 * A source checked: where it reads from (a pointer's path, or NULL), and
 * its text for error details.
 */

static void
ngx_http_txval_mapping_set(ngx_http_txval_source_t *src, int from,
    ngx_http_txval_json_path_t *path, const unsigned char *text, size_t len)
{
    if (path) {
        src->path = *path;

    } else {
        memset(&src->path, 0, sizeof(ngx_http_txval_json_path_t));
    }

    src->from = from;
    src->text_len = (uint16_t) len;
    memcpy(src->text, text, len);
    src->text[len] = '\0';
}


/*
 * The supplied fields, and the tag: a hash of everything that decides
 * what a body means (each source, the amount format, the currency case),
 * so that the same bytes read by two mappings never hash alike. The
 * default mapping's tag is 0.
 */

void
ngx_http_txval_mapping_done(ngx_http_txval_mapping_t *map)
{
    int                       n, dflt;
    uint64_t                  out[2];
    unsigned char             b[3];
    ngx_http_txval_siphash_t  s;

    static const unsigned char  key[16] = "txval mapping 1";

    map->values = 0;
    dflt = (map->amount_format == NGX_HTTP_TXVAL_AMOUNT_MINOR
            && map->currency_case == NGX_HTTP_TXVAL_CASE_UPPER);

    ngx_http_txval_siphash_init(&s, key);

    for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {

        if (map->fields[n].from == NGX_HTTP_TXVAL_FROM_VALUE) {
            map->values |= (uint8_t) (1u << n);
        }

        if (map->fields[n].from != NGX_HTTP_TXVAL_FROM_DEFAULT) {
            dflt = 0;
        }

        b[0] = map->fields[n].from;
        b[1] = (unsigned char) (map->fields[n].text_len & 0xff);
        b[2] = (unsigned char) (map->fields[n].text_len >> 8);

        ngx_http_txval_siphash_update(&s, b, 3);
        ngx_http_txval_siphash_update(&s,
                                      (const unsigned char *)
                                          map->fields[n].text,
                                      map->fields[n].text_len);
    }

    b[0] = map->amount_format;
    b[1] = map->currency_case;
    ngx_http_txval_siphash_update(&s, b, 2);
    ngx_http_txval_siphash_final(&s, out);

    map->tag = dflt ? 0 : (out[0] ? out[0] : 1);
}


int
ngx_http_txval_mapping_check(int field, const unsigned char *data,
    size_t len, const char **why)
{
    int                           ok;
    char                          buf[NGX_HTTP_TXVAL_TOKEN_MAX + 1];
    size_t                        n;
    const unsigned char          *num;
    ngx_http_txval_field_value_t  v;

    v.data = data;
    v.len = len;
    v.type = NGX_HTTP_TXVAL_JSON_STRING;
    v.escaped = 0;

    switch (field) {

    case NGX_HTTP_TXVAL_FIELD_ID:
        ok = ngx_http_txval_copy_string(&v, buf, 1, NGX_HTTP_TXVAL_ID_MAX,
                                        NGX_HTTP_TXVAL_A_ID);
        *why = NGX_HTTP_TXVAL_RULE_ID;
        break;

    case NGX_HTTP_TXVAL_FIELD_AMOUNT:
        ok = (ngx_http_txval_amount_text(&v, (unsigned char *) buf,
                                         sizeof(buf), &num, &n) == 0);
        *why = "must be a number";
        break;

    case NGX_HTTP_TXVAL_FIELD_CURRENCY:
        ok = (ngx_http_txval_currency(&v, 1, buf) == 0);
        *why = NGX_HTTP_TXVAL_RULE_ANY;
        break;

    case NGX_HTTP_TXVAL_FIELD_MERCHANT_ID:
        ok = ngx_http_txval_copy_string(&v, buf, 1,
                                        NGX_HTTP_TXVAL_MERCHANT_MAX,
                                        NGX_HTTP_TXVAL_A_ID);
        *why = NGX_HTTP_TXVAL_RULE_MERCHANT;
        break;

    case NGX_HTTP_TXVAL_FIELD_CARD_TOKEN:
        ok = ngx_http_txval_copy_string(&v, buf, 1, NGX_HTTP_TXVAL_TOKEN_MAX,
                                        NGX_HTTP_TXVAL_A_ID);
        *why = NGX_HTTP_TXVAL_RULE_TOKEN;
        break;

    case NGX_HTTP_TXVAL_FIELD_CARD_BIN:
        ok = ngx_http_txval_copy_string(&v, buf, NGX_HTTP_TXVAL_BIN_MIN,
                                        NGX_HTTP_TXVAL_BIN_MAX,
                                        NGX_HTTP_TXVAL_A_DIGIT);
        *why = NGX_HTTP_TXVAL_RULE_BIN;
        break;

    default: /* NGX_HTTP_TXVAL_FIELD_COUNTRY */
        ok = ngx_http_txval_copy_string(&v, buf, 2, 2, NGX_HTTP_TXVAL_A_UPPER);
        *why = NGX_HTTP_TXVAL_RULE_COUNTRY;
        break;
    }

    return ok > 0 ? 0 : -1;
}


ngx_http_txval_parse_rc_e
ngx_http_txval_txn_parse(const unsigned char *buf, size_t len,
    const ngx_http_txval_mapping_t *map, const ngx_http_txval_value_t *values,
    ngx_http_txval_txn_t *txn, ngx_http_txval_parse_error_t *err)
{
    int                           n;
    const char                   *why;
    ngx_http_txval_json_span_t   *span;
    ngx_http_txval_json_scan_t    scan;
    ngx_http_txval_field_value_t  v[NGX_HTTP_TXVAL_NFIELDS];

    if (map == NULL) {
        map = &ngx_http_txval_default_mapping;
    }

    memset(txn, 0, sizeof(ngx_http_txval_txn_t));
    err->field = NULL;

    if (len == 0) {
        err->detail = "the body is empty";
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    for (n = 0; n < NGX_HTTP_TXVAL_JSON_PATHS; n++) {
        scan.paths[n] = (n < NGX_HTTP_TXVAL_NFIELDS
                         && map->fields[n].from != NGX_HTTP_TXVAL_FROM_VALUE)
                        ? &map->fields[n].path : NULL;
    }

    why = ngx_http_txval_json_scan(buf, len, &scan);

    if (why != NULL) {
        err->detail = why;
        return NGX_HTTP_TXVAL_PARSE_INVALID_JSON;
    }

    if (scan.pan) {
        err->detail = "card numbers are not accepted: send a card_token";
        return NGX_HTTP_TXVAL_PARSE_PAN;
    }

    if (scan.duplicate >= 0) {
        /* which of the two values is meant is not defined */
        n = scan.duplicate;

        return ngx_http_txval_fail(err, map, n, NULL);
    }

    for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {

        if (map->fields[n].from == NGX_HTTP_TXVAL_FROM_VALUE) {
            v[n].data = values ? values[n].data : NULL;
            v[n].len = values ? values[n].len : 0;
            v[n].type = v[n].len ? NGX_HTTP_TXVAL_JSON_STRING
                                 : NGX_HTTP_TXVAL_JSON_ABSENT;
            v[n].escaped = 0;
            continue;
        }

        span = &scan.spans[n];
        v[n].data = span->data;
        v[n].len = span->len;
        v[n].type = span->type;
        v[n].escaped = span->escaped;

        if (v[n].type == NGX_HTTP_TXVAL_JSON_NULL) {
            v[n].type = NGX_HTTP_TXVAL_JSON_ABSENT;
        }
    }

    return ngx_http_txval_txn_fields(map, v, txn, err);
}


/*
 * The rules, field by field in the order errors are reported. In decimal
 * mode the amount's scale needs the currency: the amount's form is
 * checked in its turn, its scale once the currency is known.
 */

static ngx_http_txval_parse_rc_e
ngx_http_txval_txn_fields(const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_field_value_t *v, ngx_http_txval_txn_t *txn,
    ngx_http_txval_parse_error_t *err)
{
    int                   n, ok, exponent;
    char                  scale[128];
    size_t                num_len;
    const char           *rule;
    unsigned char         num_buf[64];
    const unsigned char  *num;

    num = NULL;
    num_len = 0;

    for (n = 0; n < NGX_HTTP_TXVAL_NFIELDS; n++) {

        if (v[n].type == NGX_HTTP_TXVAL_JSON_ABSENT) {
            if (n > NGX_HTTP_TXVAL_FIELD_CARD_TOKEN) {
                continue;       /* optional and absent */
            }

            return ngx_http_txval_fail(err, map, n, "");
        }

        switch (n) {

        case NGX_HTTP_TXVAL_FIELD_ID:
            ok = ngx_http_txval_copy_string(&v[n], txn->id, 1,
                                            NGX_HTTP_TXVAL_ID_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->id_len = (uint8_t) (ok > 0 ? ok : 0);
            rule = NGX_HTTP_TXVAL_RULE_ID;
            break;

        case NGX_HTTP_TXVAL_FIELD_AMOUNT:
            ok = (ngx_http_txval_amount_text(&v[n], num_buf, sizeof(num_buf),
                                             &num, &num_len) == 0);

            if (ok && map->amount_format == NGX_HTTP_TXVAL_AMOUNT_MINOR) {
                ok = (ngx_http_txval_amount_value(num, num_len, -1,
                                                  &txn->amount) == 0);
            }

            rule = (map->amount_format == NGX_HTTP_TXVAL_AMOUNT_MINOR)
                   ? NGX_HTTP_TXVAL_RULE_MINOR : NGX_HTTP_TXVAL_RULE_DECIMAL;
            break;

        case NGX_HTTP_TXVAL_FIELD_CURRENCY:
            ok = (ngx_http_txval_currency(&v[n],
                                 map->currency_case == NGX_HTTP_TXVAL_CASE_ANY,
                                 txn->currency) == 0);
            rule = (map->currency_case == NGX_HTTP_TXVAL_CASE_ANY)
                   ? NGX_HTTP_TXVAL_RULE_ANY : NGX_HTTP_TXVAL_RULE_UPPER;
            break;

        case NGX_HTTP_TXVAL_FIELD_MERCHANT_ID:
            ok = ngx_http_txval_copy_string(&v[n], txn->merchant_id, 1,
                                            NGX_HTTP_TXVAL_MERCHANT_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->merchant_id_len = (uint8_t) (ok > 0 ? ok : 0);
            rule = NGX_HTTP_TXVAL_RULE_MERCHANT;
            break;

        case NGX_HTTP_TXVAL_FIELD_CARD_TOKEN:
            ok = ngx_http_txval_copy_string(&v[n], txn->card_token, 1,
                                            NGX_HTTP_TXVAL_TOKEN_MAX,
                                            NGX_HTTP_TXVAL_A_ID);
            txn->card_token_len = (uint8_t) (ok > 0 ? ok : 0);
            rule = NGX_HTTP_TXVAL_RULE_TOKEN;
            break;

        case NGX_HTTP_TXVAL_FIELD_CARD_BIN:
            ok = ngx_http_txval_copy_string(&v[n], txn->card_bin,
                                            NGX_HTTP_TXVAL_BIN_MIN,
                                            NGX_HTTP_TXVAL_BIN_MAX,
                                            NGX_HTTP_TXVAL_A_DIGIT);
            txn->card_bin_len = (uint8_t) (ok > 0 ? ok : 0);
            rule = NGX_HTTP_TXVAL_RULE_BIN;
            break;

        default: /* NGX_HTTP_TXVAL_FIELD_COUNTRY */
            ok = ngx_http_txval_copy_string(&v[n], txn->country, 2, 2,
                                            NGX_HTTP_TXVAL_A_UPPER);
            rule = NGX_HTTP_TXVAL_RULE_COUNTRY;
            break;
        }

        if (ok <= 0) {
            return ngx_http_txval_fail(err, map, n, rule);
        }

        if (n != NGX_HTTP_TXVAL_FIELD_CURRENCY
            || map->amount_format != NGX_HTTP_TXVAL_AMOUNT_DECIMAL)
        {
            continue;
        }

        /* decimal: the amount's scale, now that the currency is known */

        exponent = ngx_http_txval_currency_exponent(txn->currency);

        if (exponent < 0) {
            return ngx_http_txval_fail(err, map, n,
                                       NGX_HTTP_TXVAL_RULE_EXPONENT);
        }

        if (ngx_http_txval_amount_value(num, num_len, exponent,
                                        &txn->amount)
            != 0)
        {
            (void) snprintf(scale, sizeof(scale),
                            "must be a decimal number of major units with "
                            "at most %d decimals for %s, of 1 to "
                            "9007199254740991 minor units", exponent,
                            txn->currency);

            return ngx_http_txval_fail(err, map, NGX_HTTP_TXVAL_FIELD_AMOUNT,
                                       scale);
        }
    }

    ngx_http_txval_txn_fingerprint(txn, txn->fingerprint);

    return NGX_HTTP_TXVAL_PARSE_OK;
}


/*
 * An invalid_field error for a field, the detail naming its source unless
 * it is the default: rule NULL, a key on its path appears twice; rule "",
 * it is missing; else it breaks the rule ("amount at /amount/value must
 * be ...", "id from $http_idempotency_key must be ...").
 */

static ngx_http_txval_parse_rc_e
ngx_http_txval_fail(ngx_http_txval_parse_error_t *err,
    const ngx_http_txval_mapping_t *map, int field, const char *rule)
{
    const char                     *name, *text;
    const ngx_http_txval_source_t  *src;

    name = ngx_http_txval_field_names[field];
    src = &map->fields[field];
    text = src->text;

    err->field = name;
    err->detail = err->buf;

    if (rule == NULL) {
        if (src->from == NGX_HTTP_TXVAL_FROM_DEFAULT) {
            err->detail = "a field appears more than once";

        } else {
            (void) snprintf(err->buf, sizeof(err->buf),
                            "a key on the path %s appears more than once",
                            text);
        }

        return NGX_HTTP_TXVAL_PARSE_INVALID_FIELD;
    }

    switch (src->from) {

    case NGX_HTTP_TXVAL_FROM_DEFAULT:
        if (rule[0] == '\0') {
            (void) snprintf(err->buf, sizeof(err->buf), "%s is required",
                            name);

        } else {
            (void) snprintf(err->buf, sizeof(err->buf), "%s %s", name, rule);
        }

        break;

    case NGX_HTTP_TXVAL_FROM_POINTER:
        if (rule[0] == '\0') {
            (void) snprintf(err->buf, sizeof(err->buf), "%s is missing at %s",
                            name, text);

        } else {
            (void) snprintf(err->buf, sizeof(err->buf), "%s at %s %s", name,
                            text, rule);
        }

        break;

    default: /* NGX_HTTP_TXVAL_FROM_VALUE */
        if (rule[0] == '\0') {
            (void) snprintf(err->buf, sizeof(err->buf),
                            "%s is missing (%s is empty)", name, text);

        } else {
            (void) snprintf(err->buf, sizeof(err->buf), "%s from %s %s",
                            name, text, rule);
        }

        break;
    }

    return NGX_HTTP_TXVAL_PARSE_INVALID_FIELD;
}


/*
 * A string field copied, unescaped, into dst (room for max bytes and a
 * NUL): its length, or 0 when the value breaks the rule. The alphabets
 * are ASCII: an escape of any other character breaks it.
 */

static int
ngx_http_txval_copy_string(const ngx_http_txval_field_value_t *v, char *dst,
    size_t min, size_t max, unsigned char alphabet)
{
    size_t   i;
    ssize_t  n;

    if (v->type != NGX_HTTP_TXVAL_JSON_STRING) {
        return 0;
    }

    if (v->escaped) {
        n = ngx_http_txval_json_unescape(v->data, v->len,
                                         (unsigned char *) dst, max);

    } else if (v->len <= max) {
        n = (ssize_t) v->len;
        memcpy(dst, v->data, v->len);

    } else {
        n = -1;
    }

    if (n < (ssize_t) min) {
        return 0;
    }

    for (i = 0; i < (size_t) n; i++) {
        if (!(ngx_http_txval_alphabet[(unsigned char) dst[i]] & alphabet)) {
            return 0;
        }
    }

    dst[n] = '\0';

    return (int) n;
}


/* 3 letters, uppercase or (any) of either case, kept uppercase; 0 or -1 */

static int
ngx_http_txval_currency(const ngx_http_txval_field_value_t *v, unsigned any,
    char *dst)
{
    int            i;
    unsigned char  letters;

    letters = any ? (NGX_HTTP_TXVAL_A_UPPER | NGX_HTTP_TXVAL_A_LOWER)
                  : NGX_HTTP_TXVAL_A_UPPER;

    if (ngx_http_txval_copy_string(v, dst, 3, 3, letters) != 3) {
        return -1;
    }

    for (i = 0; i < 3; i++) {
        if (dst[i] >= 'a' && dst[i] <= 'z') {
            dst[i] = (char) (dst[i] - 'a' + 'A');
        }
    }

    return 0;
}


/*
 * An amount's text: a JSON number as written, or a string that holds
 * one ("1000", "10.50"). 0 and num, or -1.
 */

static int
ngx_http_txval_amount_text(const ngx_http_txval_field_value_t *v,
    unsigned char *buf, size_t size, const unsigned char **num, size_t *len)
{
    ssize_t  n;

    if (v->type == NGX_HTTP_TXVAL_JSON_NUMBER) {
        *num = v->data;
        *len = v->len;
        return 0;
    }

    if (v->type != NGX_HTTP_TXVAL_JSON_STRING) {
        return -1;
    }

    if (v->escaped) {
        n = ngx_http_txval_json_unescape(v->data, v->len, buf, size);

        if (n <= 0) {
            return -1;
        }

        *num = buf;
        *len = (size_t) n;

    } else {
        *num = v->data;
        *len = v->len;
    }

    if (*len == 0 || ngx_http_txval_json_number(*num, *num + *len)
                     != *num + *len)
    {
        return -1;
    }

    return 0;
}


/*
 * The digits D (integer and fraction digits together), F of them after
 * the point, times 10^E: D's significant digits S (leading and trailing
 * zeros dropped, T trailing ones) times 10^(E - F + T). Minor units: that
 * power must not be negative. Decimal: F - E decimals as written, at most
 * the exponent, and the value times 10^exponent. In range when S has at
 * most 16 digits with the power, and is at most 2^53-1.
 */

int
ngx_http_txval_amount_value(const unsigned char *num, size_t len,
    int exponent, int64_t *amount)
{
    int                   neg;
    size_t                nint, nfrac, ndigits, i, first, last;
    int64_t               e, k;
    uint64_t              value;
    const unsigned char  *p, *end, *ip, *fp;

    end = num + len;

    if (len == 0 || ngx_http_txval_json_number(num, end) != end
        || *num == '-')
    {
        /* not a number, or negative (-0 too): below 1 */
        return -1;
    }

    ip = num;

    for (p = num; p < end && *p >= '0' && *p <= '9'; p++) {
        /* void */
    }

    nint = p - ip;
    fp = p;
    nfrac = 0;

    if (p < end && *p == '.') {
        fp = ++p;

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }

        nfrac = p - fp;
    }

    e = 0;

    if (p < end) {
        /* [eE][+-]?[0-9]+, saturated far beyond any amount */
        p++;
        neg = 0;

        if (*p == '+' || *p == '-') {
            neg = (*p++ == '-');
        }

        for ( /* void */ ; p < end; p++) {
            if (e < 1000000) {
                e = e * 10 + (*p - '0');
            }
        }

        if (neg) {
            e = -e;
        }
    }

    if (exponent >= 0 && (int64_t) nfrac - e > exponent) {
        return -1;
    }

#define NGX_HTTP_TXVAL_DIGIT(i)                                              \
    ((i) < nint ? ip[i] - '0' : fp[(i) - nint] - '0')

    ndigits = nint + nfrac;

    for (first = 0; first < ndigits; first++) {
        if (NGX_HTTP_TXVAL_DIGIT(first) != 0) {
            break;
        }
    }

    if (first == ndigits) {
        return -1;          /* zero */
    }

    for (last = ndigits - 1; NGX_HTTP_TXVAL_DIGIT(last) == 0; last--) {
        /* void */
    }

    k = e - (int64_t) nfrac + (int64_t) (ndigits - 1 - last)
        + (exponent > 0 ? exponent : 0);

    if (k < 0 || (int64_t) (last - first + 1) + k > 16) {
        return -1;
    }

    value = 0;

    for (i = first; i <= last; i++) {
        value = value * 10 + NGX_HTTP_TXVAL_DIGIT(i);
    }

#undef NGX_HTTP_TXVAL_DIGIT

    while (k--) {
        value *= 10;
    }

    if (value > (uint64_t) NGX_HTTP_TXVAL_AMOUNT_MAX) {
        return -1;
    }

    *amount = (int64_t) value;

    return 0;
}


int
ngx_http_txval_currency_exponent(const char *code)
{
    int          cmp;
    size_t       lo, hi, mid;
    const char  *c;

    lo = 0;
    hi = (sizeof(ngx_http_txval_currencies) - 1) / 4;

    while (lo < hi) {
        mid = (lo + hi) / 2;
        c = ngx_http_txval_currencies + mid * 4;

        cmp = memcmp(code, c, 3);

        if (cmp == 0) {
            return c[3] - '0';
        }

        if (cmp < 0) {
            hi = mid;

        } else {
            lo = mid + 1;
        }
    }

    return -1;
}


int
ngx_http_txval_txn_peek_id(const unsigned char *buf, size_t len,
    const ngx_http_txval_mapping_t *map, const ngx_http_txval_value_t *values,
    const unsigned char **id, size_t *id_len)
{
    size_t                              i, n;
    const unsigned char                *p, *end, *start;
    const ngx_http_txval_source_t      *src;
    const ngx_http_txval_json_token_t  *tok;

    if (map == NULL) {
        map = &ngx_http_txval_default_mapping;
    }

    src = &map->fields[NGX_HTTP_TXVAL_FIELD_ID];

    if (src->from == NGX_HTTP_TXVAL_FROM_VALUE) {
        if (values == NULL || values[NGX_HTTP_TXVAL_FIELD_ID].len == 0
            || values[NGX_HTTP_TXVAL_FIELD_ID].len > NGX_HTTP_TXVAL_ID_MAX)
        {
            return -1;
        }

        *id = values[NGX_HTTP_TXVAL_FIELD_ID].data;
        *id_len = values[NGX_HTTP_TXVAL_FIELD_ID].len;

        return 0;
    }

    /* the key the id's pointer ends with, as written without escapes */

    tok = &src->path.tokens[src->path.ntokens - 1];
    n = tok->len;

    for (i = 0; i < n; i++) {
        if (tok->text[i] == '"' || tok->text[i] == '\\'
            || tok->text[i] < 0x20)
        {
            return -1;
        }
    }

    end = buf + len;

    for (p = buf; (size_t) (end - p) > n + 2; p++) {

        p = memchr(p, '"', end - p - n - 2);
        if (p == NULL) {
            return -1;
        }

        if (p[n + 1] != '"' || (n && (p[1] != tok->text[0]
                                      || memcmp(p + 1, tok->text, n) != 0)))
        {
            continue;
        }

        for (p += n + 2; p < end && (*p == ' ' || *p == '\t' || *p == '\n'
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
