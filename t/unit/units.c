/*
 * Unit tests of txval's pure C units (no nginx): the parser and field
 * rules, the rules and risk score, the verdict and record writers and
 * the record decoder, the Prometheus writer. TAP output; run by
 * t/050-units.t.
 */

#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "ngx_http_txval_txn.h"
#include "ngx_http_txval_rules.h"
#include "ngx_http_txval_output.h"
#include "ngx_http_txval_prometheus.h"
#include "ngx_http_txval_slot.h"


static int  tests, failed;

/* SHA-256 of "txval:1", then each field of tx_1 after its length byte */
#define FP_TX1  "b71472bcd4bdc5ad2dfa41e5b076c539"


static void
ok(int cond, const char *name)
{
    tests++;
    if (!cond) {
        failed++;
    }
    printf("%sok %d - %s\n", cond ? "" : "not ", tests, name);
}


static void
is_str(const char *got, const char *want, const char *name)
{
    ok(strcmp(got, want) == 0, name);
    if (strcmp(got, want) != 0) {
        printf("#   got:  %s\n#   want: %s\n", got, want);
    }
}


static ngx_http_txval_parse_rc_e
parse(const char *body, ngx_http_txval_txn_t *txn,
    ngx_http_txval_parse_error_t *err)
{
    return ngx_http_txval_txn_parse((const unsigned char *) body,
                                    strlen(body), NULL, NULL, txn, err);
}


static void
hex16(const unsigned char *p, char *out)
{
    int  i;

    for (i = 0; i < 16; i++) {
        sprintf(out + 2 * i, "%02x", p[i]);
    }
}


static void
test_parse(void)
{
    char                          fp[33];
    ngx_http_txval_txn_t          a, b;
    ngx_http_txval_parse_error_t  err;

    ok(parse("{\"id\":\"tx_1\",\"amount\":1e3,\"currency\":\"USD\","
             "\"merchant_id\":\"m\",\"card_token\":\"t\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_OK, "parse: valid, 1e3");
    ok(a.amount == 1000 && a.id_len == 4 && strcmp(a.currency, "USD") == 0,
       "parse: fields copied");

    ok(parse("{\"card_token\":\"t\",\"merchant_id\":\"m\",\"currency\":\"USD\","
             "\"amount\":1000.0,\"id\":\"tx_1\",\"x\":[1,{}]}", &b, &err)
       == NGX_HTTP_TXVAL_PARSE_OK, "parse: other order, unknown fields");
    ok(memcmp(a.fingerprint, b.fingerprint, sizeof(a.fingerprint)) == 0,
       "fingerprint: same content, same fingerprint");

    parse("{\"id\":\"tx_1\",\"amount\":1000,\"currency\":\"USD\","
          "\"merchant_id\":\"m\",\"card_token\":\"t\",\"country\":\"US\"}",
          &b, &err);
    ok(memcmp(a.fingerprint, b.fingerprint, sizeof(a.fingerprint)) != 0,
       "fingerprint: an added field differs");

    /* fields cannot shift into each other: "m"+"tx" is not "mt"+"x" */

    parse("{\"id\":\"tx_1\",\"amount\":1000,\"currency\":\"USD\","
          "\"merchant_id\":\"m\",\"card_token\":\"tx\"}", &a, &err);
    parse("{\"id\":\"tx_1\",\"amount\":1000,\"currency\":\"USD\","
          "\"merchant_id\":\"mt\",\"card_token\":\"x\"}", &b, &err);
    ok(memcmp(a.fingerprint, b.fingerprint, sizeof(a.fingerprint)) != 0,
       "fingerprint: fields are length-prefixed");

    /* the digest is a SHA-256 of the fields, the same on every host */

    parse("{\"id\":\"tx_1\",\"amount\":1000,\"currency\":\"USD\","
          "\"merchant_id\":\"m\",\"card_token\":\"t\"}", &a, &err);
    hex16(a.fingerprint, fp);
    is_str(fp, FP_TX1, "fingerprint: the first 128 bits of the SHA-256");

    parse("{\"id\":\"tx_1\",\"amount\":1000,\"currency\":\"USD\","
          "\"merchant_id\":\"mt\",\"card_token\":\"\"}", &b, &err);
    ok(err.field && strcmp(err.field, "card_token") == 0,
       "parse: empty card_token refused");

    ok(parse("", &a, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_JSON
       && strcmp(err.detail, "the body is empty") == 0, "parse: empty");
    ok(parse("[]", &a, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
       "parse: not an object");
    ok(parse("{} x", &a, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
       "parse: trailing garbage");
    ok(parse("{\"a\":01}", &a, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
       "parse: leading zero");
    ok(parse("{\"a\":\"\\u0000\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_JSON, "parse: escaped NUL");
    ok(parse("{\"a\":\"\xc3\x28\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_JSON, "parse: bad UTF-8");
    ok(parse("z\"id\":\"tx{:_\\", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_JSON,
       "parse: a body ending inside an escape (fuzz regression)");
    ok(parse("{\"x\":{\"pan\":1},\"id\":\"\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_PAN, "parse: nested pan before fields");
    ok(parse("{\"id\":\"tx_1\",\"amount\":1.0000000000000001,\"currency\":"
             "\"USD\",\"merchant_id\":\"m\",\"card_token\":\"t\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "amount") == 0,
       "amount: a fraction a double rounds away is still a fraction");
    ok(parse("{\"id\":\"tx_1\",\"amount\":1500.00e-1,\"currency\":"
             "\"USD\",\"merchant_id\":\"m\",\"card_token\":\"t\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_OK && a.amount == 150,
       "amount: 1500.00e-1 is 150");
    ok(parse("{\"id\":\"tx_1\",\"amount\":15.5e1,\"x\":{\"amount\":0.5},"
             "\"currency\":\"USD\",\"merchant_id\":\"m\",\"card_token\":\"t\"}",
             &a, &err)
       == NGX_HTTP_TXVAL_PARSE_OK && a.amount == 155,
       "amount: 15.5e1 is 155; a nested amount is not the amount");
    ok(parse("{\"id\":\"tx_1\",\"amount\":100.000000000000000000001e2,"
             "\"currency\":\"USD\",\"merchant_id\":\"m\",\"card_token\":\"t\"}",
             &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD,
       "amount: a fraction far below a double's precision");
    ok(parse("{\"id\":\"a\",\"id\":\"b\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "id") == 0, "parse: duplicate key");
    ok(parse("{\"id\":\"a\",\"amount\":9007199254740992,\"currency\":\"USD\","
             "\"merchant_id\":\"m\",\"card_token\":\"t\"}", &a, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "amount") == 0, "parse: amount above 2^53-1");
}


static void
test_rules(void)
{
    ngx_http_txval_txn_t          txn;
    ngx_http_txval_facts_t        facts;
    ngx_http_txval_policy_t       policy;
    ngx_http_txval_result_t       res;
    ngx_http_txval_limit_t        limit = { "USD", 100, 10000 };
    ngx_http_txval_parse_error_t  err;

    parse("{\"id\":\"r\",\"amount\":5000,\"currency\":\"USD\","
          "\"merchant_id\":\"m\",\"card_token\":\"t\",\"country\":\"FR\"}",
          &txn, &err);

    memset(&policy, 0, sizeof(policy));
    memset(&facts, 0, sizeof(facts));
    policy.limits = &limit;
    policy.nlimits = 1;
    policy.risk_threshold = 70;

    ngx_http_txval_rules_eval(&txn, &policy, &facts, &res);
    ok(res.reasons == 0 && res.risk_score == 30,
       "rules: 2 x amount = max gives 30, no reason");

    facts.pg = 1;
    facts.merchant_found = 1;
    facts.merchant_active = 1;
    facts.merchant_has_max = 1;
    facts.merchant_max = 4000;
    facts.currency_allowed = 1;
    facts.card_found = 1;
    memcpy(facts.card_country, "US", 3);
    policy.velocity_count = 3;
    facts.velocity = 1;
    facts.velocity_count = 4;

    ngx_http_txval_rules_eval(&txn, &policy, &facts, &res);
    ok(res.reasons == ((1u << NGX_HTTP_TXVAL_MERCHANT_LIMIT_EXCEEDED)
                       | (1u << NGX_HTTP_TXVAL_VELOCITY_EXCEEDED)
                       | (1u << NGX_HTTP_TXVAL_RISK_TOO_HIGH)),
       "rules: limit, velocity, risk");
    ok(res.risk_score == 80, "rules: 30 cap + 30 country + 20 velocity");

    facts.merchant_found = 0;
    facts.card_found = 0;
    facts.card_country[0] = '\0';
    facts.velocity = 0;
    ngx_http_txval_rules_eval(&txn, &policy, &facts, &res);
    ok(res.reasons == (1u << NGX_HTTP_TXVAL_MERCHANT_UNKNOWN)
       && res.risk_score == 50,
       "rules: unknown merchant, new card, cap from config only");
}


static void
test_output(void)
{
    char                     buf[NGX_HTTP_TXVAL_BODY_MAX + 1];
    size_t                   n;
    ngx_http_txval_record_t  rec, back;
    ngx_http_txval_result_t  res, none;

    res.reasons = (1u << NGX_HTTP_TXVAL_CARD_BLOCKED)
                  | (1u << NGX_HTTP_TXVAL_RISK_TOO_HIGH);
    res.risk_score = 70;

    n = ngx_http_txval_verdict_json((unsigned char *) buf, sizeof(buf) - 1,
                                    "tx_1", 4, &res, "computed", 1);
    buf[n] = '\0';
    is_str(buf, "{\"id\":\"tx_1\",\"verdict\":\"declined\",\"reasons\":"
                "[\"card_blocked\",\"risk_too_high\"],\"risk_score\":70,"
                "\"source\":\"computed\",\"degraded\":true}\n",
           "verdict body");

    ok(ngx_http_txval_verdict_json((unsigned char *) buf, 20, "tx_1", 4,
                                   &res, "computed", 0) == 0,
       "verdict body: too small a buffer gives 0");

    none.reasons = 0;
    none.risk_score = 0;
    n = ngx_http_txval_verdict_json((unsigned char *) buf, sizeof(buf) - 1,
                                    "tx_2", 4, &none, "shm",
                                    NGX_HTTP_TXVAL_OUT_DEGRADED
                                    | NGX_HTTP_TXVAL_OUT_DRY_RUN);
    buf[n] = '\0';
    is_str(buf, "{\"id\":\"tx_2\",\"verdict\":\"approved\",\"reasons\":[],"
                "\"risk_score\":0,\"source\":\"shm\",\"degraded\":true,"
                "\"dry_run\":true}\n", "verdict body: degraded, dry run");

    n = ngx_http_txval_error_json((unsigned char *) buf, sizeof(buf) - 1,
                                  "backend_unavailable", NULL, NULL, "retry",
                                  NGX_HTTP_TXVAL_OUT_DRY_RUN);
    buf[n] = '\0';
    is_str(buf, "{\"error\":\"backend_unavailable\",\"detail\":\"retry\","
                "\"dry_run\":true}\n", "error body: dry run");

    n = ngx_http_txval_error_json((unsigned char *) buf, sizeof(buf) - 1,
                                  "invalid_field", "amount", NULL, "bad", 0);
    buf[n] = '\0';
    is_str(buf, "{\"error\":\"invalid_field\",\"field\":\"amount\","
                "\"detail\":\"bad\"}\n", "error body");

    memcpy(rec.fingerprint, "\x01\x23\x45\x67\x89\xab\xcd\xef"
                            "\xfe\xdc\xba\x98\x76\x54\x32\x10", 16);
    rec.reasons = (uint16_t) res.reasons;
    rec.risk_score = 70;
    n = ngx_http_txval_record_encode((unsigned char *) buf, sizeof(buf), &rec);
    buf[n] = '\0';
    is_str(buf, "2;240;70;0123456789abcdeffedcba9876543210", "record encoded");
    ok(ngx_http_txval_record_decode((unsigned char *) buf, n, &back)
       && memcmp(back.fingerprint, rec.fingerprint, 16) == 0
       && back.reasons == rec.reasons
       && back.risk_score == 70, "record decodes to itself");

#define REC(s)  (unsigned char *) s, sizeof(s) - 1
    ok(!ngx_http_txval_record_decode(
                     REC("2;240;101;0123456789abcdeffedcba9876543210"), &back),
       "record: score above 100");
    ok(!ngx_http_txval_record_decode(
                     REC("2;fffff;1;0123456789abcdeffedcba9876543210"), &back),
       "record: unknown reasons");
    ok(!ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba987654321"), &back),
       "record: short fingerprint");
    ok(!ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba9876543210f"), &back),
       "record: long fingerprint");
    ok(!ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba987654321g"), &back),
       "record: not hex");
    ok(!ngx_http_txval_record_decode(REC("1;0;0;0123456789abcdef"), &back),
       "record: the older format (64-bit fingerprint) is a miss");
    ok(!ngx_http_txval_record_decode(REC("garbage"), &back),
       "record: garbage");
#undef REC

    {
        uint64_t  token[2] = { 0x0102030405060708ULL, 0x1112131415161718ULL };

        n = ngx_http_txval_pending_encode((unsigned char *) buf, sizeof(buf),
                                          token);
        buf[n] = '\0';
        is_str(buf, "p;01020304050607081112131415161718", "mark encoded");
        ok(ngx_http_txval_is_pending((unsigned char *) buf, n),
           "mark recognised");
        ok(!ngx_http_txval_record_decode((unsigned char *) buf, n, &back),
           "a mark is not a verdict");
        ok(!ngx_http_txval_is_pending(
                  (unsigned char *) "2;0;0;0123456789abcdeffedcba9876543210",
                  38), "a verdict is not a mark");
    }
}


static void
test_prometheus(void)
{
    char                       *buf;
    size_t                      n;
    ngx_http_txval_snapshot_t   s;

    memset(&s, 0, sizeof(s));
    s.requests[0] = 5;
    s.duration.buckets[0] = 2;
    s.duration.buckets[3] = 3;
    s.duration.sum_ns = 1500000;
    s.backend_duration[1].buckets[1] = 4;
    s.backend_duration[1].sum_ns = 800000;
    s.errors[6] = 7;
    s.dry_run[1] = 2;
    s.version = "1.2.3";
    s.nginx = "1.22.1";

    buf = malloc(NGX_HTTP_TXVAL_PROMETHEUS_MAX + 1);
    n = ngx_http_txval_prometheus((unsigned char *) buf,
                                  NGX_HTTP_TXVAL_PROMETHEUS_MAX, &s);
    buf[n] = '\0';

    ok(strstr(buf, "txval_requests_total{verdict=\"approved\"} 5\n") != NULL,
       "prometheus: counter");
    ok(strstr(buf, "txval_request_duration_seconds_bucket{le=\"0.001\"} 5\n")
       != NULL, "prometheus: buckets are cumulative");
    ok(strstr(buf, "txval_request_duration_seconds_sum 0.001500000\n") != NULL,
       "prometheus: sum in seconds");
    ok(strstr(buf, "# TYPE txval_pool_connections gauge\n") != NULL,
       "prometheus: TYPE lines");
    ok(strstr(buf, "txval_backend_duration_seconds_bucket{backend=\"postgres\","
                   "le=\"0.00025\"} 4\n") != NULL
       && strstr(buf, "txval_backend_duration_seconds_sum{backend=\"postgres\"}"
                      " 0.000800000\n") != NULL
       && strstr(buf, "txval_backend_duration_seconds_count{backend=\"redis\"}"
                      " 0\n") != NULL,
       "prometheus: a histogram per backend");
    ok(strstr(buf, "txval_errors_total{error=\"idempotency_in_progress\"} 7\n")
       != NULL, "prometheus: errors by code");
    ok(strstr(buf, "txval_dry_run_total{verdict=\"declined\"} 2\n") != NULL,
       "prometheus: dry run by verdict");
    ok(strstr(buf, "txval_build_info{version=\"1.2.3\",nginx=\"1.22.1\"} 1\n")
       != NULL, "prometheus: build info");
    ok(strcmp(ngx_http_txval_error_name(8), "backend_unavailable") == 0
       && ngx_http_txval_error_name(0)[0] == '\0',
       "prometheus: error names");
    ok(ngx_http_txval_prometheus((unsigned char *) buf, 100, &s) == 0,
       "prometheus: too small a buffer gives 0");
    ok(ngx_http_txval_bucket(100000) == 0 && ngx_http_txval_bucket(100001) == 1
       && ngx_http_txval_bucket(2000000000ULL) == NGX_HTTP_TXVAL_BUCKETS,
       "prometheus: bucket bounds");

    /* the lookup cache */

    n = ngx_http_txval_prometheus((unsigned char *) buf,
                                  NGX_HTTP_TXVAL_PROMETHEUS_MAX, &s);
    buf[n] = '\0';

    ok(n > 0 && strstr(buf, "txval_lookup_listener_up") == NULL
       && strstr(buf, "txval_lookup_cache_total{result=\"hit\"} 0\n")
          != NULL,
       "prometheus: no listener, no txval_lookup_listener_up");

    s.lookup_results[0] = 11;
    s.lookup_results[3] = 2;
    s.lookup_notify = 1;
    s.lookup_listener_up = 1;
    s.lookup_entries = 9;
    s.lookup_bytes_total = 1048576;
    s.lookup_lag.buckets[2] = 6;
    s.lookup_lag.sum_ns = 1800000;

    n = ngx_http_txval_prometheus((unsigned char *) buf,
                                  NGX_HTTP_TXVAL_PROMETHEUS_MAX, &s);
    buf[n] = '\0';

    ok(strstr(buf, "# TYPE txval_lookup_cache_total counter\n"
                   "txval_lookup_cache_total{result=\"hit\"} 11\n"
                   "txval_lookup_cache_total{result=\"miss\"} 0\n"
                   "txval_lookup_cache_total{result=\"invalidated\"} 0\n"
                   "txval_lookup_cache_total{result=\"flushed\"} 2\n")
       != NULL, "prometheus: lookup cache results");
    ok(strstr(buf, "# TYPE txval_lookup_listener_up gauge\n"
                   "txval_lookup_listener_up 1\n") != NULL
       && strstr(buf, "txval_lookup_cache_entries 9\n") != NULL
       && strstr(buf, "txval_lookup_cache_size_bytes 1048576\n") != NULL
       && strstr(buf, "txval_lookup_cache_evictions_total 0\n") != NULL,
       "prometheus: lookup cache gauges");
    ok(strstr(buf, "txval_lookup_notify_lag_seconds_bucket{le=\"0.0005\"} 6\n")
       != NULL
       && strstr(buf, "txval_lookup_notify_lag_seconds_sum 0.001800000\n")
          != NULL
       && strstr(buf, "txval_lookup_notify_lag_seconds_count 6\n") != NULL,
       "prometheus: notification lag histogram");

    free(buf);
}


static void
test_rows(void)
{
    ngx_http_txval_txn_t           txn;
    ngx_http_txval_rows_t          rows, part;
    ngx_http_txval_facts_t         f;
    ngx_http_txval_merchant_row_t  m;

#define C(t)  ngx_http_txval_currencies_parse(t, sizeof(t) - 1, &m)

    ok(C("{USD,EUR,USD}") == 0 && m.restricted && m.listed
       && m.ncurrencies == 2 && memcmp(m.currencies, "EURUSD", 6) == 0,
       "currencies: sorted, once each");
    ok(ngx_http_txval_currency_allowed(&m, "USD")
       && ngx_http_txval_currency_allowed(&m, "EUR")
       && !ngx_http_txval_currency_allowed(&m, "GBP"),
       "currencies: allowed or not");
    ok(C("{}") == 0 && !m.restricted && m.ncurrencies == 0
       && ngx_http_txval_currency_allowed(&m, "JPY"),
       "currencies: an empty list allows every currency");
    ok(C("{usd,NULL,\"\",\"US D\"}") == 0 && m.restricted
       && m.ncurrencies == 0 && !ngx_http_txval_currency_allowed(&m, "USD"),
       "currencies: elements that match no code still restrict");
    ok(C("{\"X,USD,Y\",GBP}") == 0 && m.ncurrencies == 1
       && memcmp(m.currencies, "GBP", 3) == 0,
       "currencies: a comma inside quotes is no separator");
    ok(C("{\"a\\\"b\",\"CHF\"}") == 0 && m.ncurrencies == 1
       && memcmp(m.currencies, "CHF", 3) == 0,
       "currencies: escapes inside quotes");
    ok(C("[0:1]={{USD,EUR},{JPY,KWD}}") == 0 && m.ncurrencies == 4
       && memcmp(m.currencies, "EURJPYKWDUSD", 12) == 0,
       "currencies: bounds and nested arrays");
    ok(C("USD") == -1 && C("[0:1]") == -1, "currencies: not an array");
    ok(C("{AAA,AAB,AAC,AAD,AAE,AAF,AAG,AAH,AAI,AAJ,AAK,AAL,AAM,AAN,AAO,AAP,"
         "AAQ,AAR,AAS,AAT,AAU,AAV,AAW,AAX,AAY,AAZ,ABA,ABB,ABC,ABD,ABE,ABF}")
       == 0 && m.listed && m.ncurrencies == 32,
       "currencies: 32 fit");
    ok(C("{AAA,AAB,AAC,AAD,AAE,AAF,AAG,AAH,AAI,AAJ,AAK,AAL,AAM,AAN,AAO,AAP,"
         "AAQ,AAR,AAS,AAT,AAU,AAV,AAW,AAX,AAY,AAZ,ABA,ABB,ABC,ABD,ABE,ABF,"
         "ABG}") == 0 && !m.listed,
       "currencies: 33 do not (the row is not kept)");

#undef C

    memset(&txn, 0, sizeof(txn));
    strcpy(txn.currency, "USD");
    strcpy(txn.card_bin, "1234567");
    txn.card_bin_len = 7;

    ok(ngx_http_txval_rows_wanted(&txn)
       == (NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_CARD
           | NGX_HTTP_TXVAL_ROW_BIN6 | NGX_HTTP_TXVAL_ROW_BIN7),
       "rows: a 7-digit BIN wants two prefixes");
    txn.card_bin_len = 0;
    ok(ngx_http_txval_rows_wanted(&txn)
       == (NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_CARD),
       "rows: no BIN, no prefix");

    /* the cache's part and Postgres' part, merged */

    memset(&rows, 0, sizeof(rows));
    rows.have = NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_BIN6;
    rows.merchant.found = 1;
    rows.merchant.active = 1;
    rows.merchant.has_max = 1;
    rows.merchant.max = 5000;
    rows.merchant.currency_allowed = 1;

    memset(&part, 0, sizeof(part));
    part.have = NGX_HTTP_TXVAL_ROW_CARD | NGX_HTTP_TXVAL_ROW_BIN7;
    part.card.found = 1;
    part.card.blocked = 1;
    strcpy(part.card.country, "FR");
    part.bins = NGX_HTTP_TXVAL_ROW_BIN7;

    ngx_http_txval_rows_merge(&rows, &part);

    ok(rows.have == (NGX_HTTP_TXVAL_ROW_MERCHANT | NGX_HTTP_TXVAL_ROW_CARD
                     | NGX_HTTP_TXVAL_ROW_BIN6 | NGX_HTTP_TXVAL_ROW_BIN7)
       && rows.merchant.max == 5000 && rows.card.blocked
       && rows.bins == NGX_HTTP_TXVAL_ROW_BIN7,
       "rows: merged");

    memset(&f, 0, sizeof(f));
    ngx_http_txval_rows_facts(&txn, &rows, &f);

    ok(f.pg && f.merchant_found && f.merchant_active && f.merchant_has_max
       && f.merchant_max == 5000 && f.currency_allowed && f.card_found
       && f.card_blocked && strcmp(f.card_country, "FR") == 0
       && f.bin_blocked, "rows: facts");

    rows.merchant.found = 0;
    rows.card.found = 0;
    rows.bins = 0;
    ngx_http_txval_rows_facts(&txn, &rows, &f);

    ok(!f.merchant_found && !f.merchant_has_max && !f.currency_allowed
       && !f.card_found && !f.card_blocked && f.card_country[0] == '\0'
       && !f.bin_blocked, "rows: absent rows are no facts");
}


static void
test_slot(void)
{
    ngx_http_txval_redirect_t  rd;

#define S(k)  ngx_http_txval_slot((const unsigned char *) k, sizeof(k) - 1)
#define R(e)  ngx_http_txval_redirect(e, sizeof(e) - 1, &rd)

    /* the values Redis' CLUSTER KEYSLOT gives */
    ok(S("123456789") == 12739, "slot: the CRC16 check value");
    ok(S("foo") == 12182 && S("bar") == 5061, "slot: foo, bar");
    ok(S("{user1000}.following") == S("{user1000}.followers")
       && S("{user1000}.a") == S("user1000"), "slot: a hash tag");
    ok(S("foo{}{bar}") == 8363, "slot: an empty tag hashes the whole key");
    ok(S("foo{{bar}}zap") == 4015, "slot: the tag ends at the first }");
    ok(S("{bar") == 4015, "slot: an unclosed { hashes the whole key");

    ok(R("MOVED 3999 127.0.0.1:6381") == 0 && rd.slot == 3999
       && rd.port == 6381 && !rd.ask && strcmp(rd.host, "127.0.0.1") == 0,
       "redirect: MOVED");
    ok(R("ASK 16383 ::1:7000") == 0 && rd.ask && rd.slot == 16383
       && rd.port == 7000 && strcmp(rd.host, "::1") == 0,
       "redirect: ASK, an IPv6 address");
    ok(R("MOVED 16384 127.0.0.1:6381") == -1, "redirect: slot out of range");
    ok(R("MOVED 1 127.0.0.1:") == -1 && R("MOVED 1 127.0.0.1") == -1
       && R("MOVED 1 :80") == -1 && R("MOVED 1 h:123456") == -1
       && R("MOVED 1 h:0") == -1 && R("MOVED x h:1") == -1
       && R("MOVED 1  h:1") == -1 && R("MOVED 1 h:1 x") == -1,
       "redirect: malformed");
    ok(R("ERR unknown") == -1 && R("MOVED") == -1 && R("ASK ") == -1,
       "redirect: other errors");

#undef S
#undef R
}


static void
test_peek(void)
{
    size_t                i, n;
    uint64_t              h[2];
    unsigned char         key[16], in[64];
    const unsigned char  *id;

#define P(b)  ngx_http_txval_txn_peek_id((const unsigned char *) b,          \
                                         sizeof(b) - 1, NULL, NULL, &id, &n)

    ok(P("{\"amount\":1,\"id\" : \"tx_1\",\"x\":2}") == 0 && n == 4
       && memcmp(id, "tx_1", 4) == 0, "peek: the id");
    ok(P("{\"idx\":\"a\",\"id\":\"b\"}") == 0 && n == 1 && *id == 'b',
       "peek: another key that starts with id");
    ok(P("{\"id\":\"a\\u0041\"}") == -1, "peek: an escape: no guess");
    ok(P("{\"id\":7}") == -1 && P("{\"id\":\"\"}") == -1
       && P("{\"id\":\"abc") == -1 && P("{\"id\"") == -1 && P("") == -1,
       "peek: not a plain string");
    ok(P("{\"id\":\"0123456789012345678901234567890123456789"
         "012345678901234567890123456789\"}") == -1, "peek: too long");

#undef P

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char) i;
    }

    for (i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char) i;
    }

    /* the 128-bit reference vectors of the SipHash reference code */
    ngx_http_txval_siphash128(key, in, 0, h);
    ok(h[0] == 0xe6a825ba047f81a3ULL && h[1] == 0x930255c71472f66dULL,
       "siphash128: the empty input");
    ngx_http_txval_siphash128(key, in, 15, h);
    ok(h[0] == 0x11a8b03399e99354ULL && h[1] == 0xd9c3cf970fec087eULL,
       "siphash128: 15 bytes");
    ngx_http_txval_siphash128(key, in, 63, h);
    ok(h[0] == 0x4a83502f77d15051ULL && h[1] == 0x7cbd3f979a063e50ULL,
       "siphash128: 63 bytes");
}


int
main(void)
{
    test_parse();
    test_rules();
    test_output();
    test_prometheus();
    test_rows();
    test_slot();
    test_peek();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
