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
#include "ngx_http_txval_digest.h"
#include "ngx_http_txval_rules.h"
#include "ngx_http_txval_output.h"
#include "ngx_http_txval_record.h"
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

    n = ngx_http_txval_error_json((unsigned char *) buf, sizeof(buf) - 1,
                                  "invalid_field", "id", NULL,
                                  "id at /a\"b\\c\t must be", 0);
    buf[n] = '\0';
    is_str(buf, "{\"error\":\"invalid_field\",\"field\":\"id\","
                "\"detail\":\"id at /a\\\"b\\\\c\\u0009 must be\"}\n",
           "error body: the detail escaped");

    memcpy(rec.fingerprint, "\x01\x23\x45\x67\x89\xab\xcd\xef"
                            "\xfe\xdc\xba\x98\x76\x54\x32\x10", 16);
    rec.reasons = (uint16_t) res.reasons;
    rec.risk_score = 70;
    n = ngx_http_txval_record_encode((unsigned char *) buf, sizeof(buf), &rec);
    buf[n] = '\0';
    is_str(buf, "2;240;70;0123456789abcdeffedcba9876543210", "record encoded");
    ok(ngx_http_txval_record_decode((unsigned char *) buf, n, &back) == 0
       && memcmp(back.fingerprint, rec.fingerprint, 16) == 0
       && back.reasons == rec.reasons
       && back.risk_score == 70, "record decodes to itself");

#define REC(s)  (unsigned char *) s, sizeof(s) - 1
    ok(-1 == ngx_http_txval_record_decode(
                     REC("2;240;101;0123456789abcdeffedcba9876543210"), &back),
       "record: score above 100");
    ok(-1 == ngx_http_txval_record_decode(
                     REC("2;fffff;1;0123456789abcdeffedcba9876543210"), &back),
       "record: unknown reasons");
    ok(-1 == ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba987654321"), &back),
       "record: short fingerprint");
    ok(-1 == ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba9876543210f"), &back),
       "record: long fingerprint");
    ok(-1 == ngx_http_txval_record_decode(
                     REC("2;0;0;0123456789abcdeffedcba987654321g"), &back),
       "record: not hex");
    ok(-1 == ngx_http_txval_record_decode(REC("1;0;0;0123456789abcdef"), &back),
       "record: the older format (64-bit fingerprint) is a miss");
    ok(-1 == ngx_http_txval_record_decode(REC("garbage"), &back),
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
        ok(-1 == ngx_http_txval_record_decode((unsigned char *) buf, n, &back),
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


static ngx_http_txval_parse_rc_e
parse_map(const char *body, const ngx_http_txval_mapping_t *map,
    const ngx_http_txval_value_t *values, ngx_http_txval_txn_t *txn,
    ngx_http_txval_parse_error_t *err)
{
    return ngx_http_txval_txn_parse((const unsigned char *) body,
                                    strlen(body), map, values, txn, err);
}


static int
ptr(const char *text, ngx_http_txval_json_path_t *path, const char **why)
{
    return ngx_http_txval_json_pointer((const unsigned char *) text,
                                       strlen(text), path, why);
}


static int
amount(const char *num, int exponent, int64_t *a)
{
    return ngx_http_txval_amount_value((const unsigned char *) num,
                                       strlen(num), exponent, a);
}


static void
test_pointer(void)
{
    const char                  *why;
    ngx_http_txval_json_path_t   p;

    ok(ptr("/amount/value", &p, &why) == 0 && p.ntokens == 2
       && p.tokens[0].len == 6 && memcmp(p.tokens[0].text, "amount", 6) == 0
       && p.tokens[1].len == 5 && !p.tokens[1].is_index,
       "pointer: two keys");
    ok(ptr("/purchase_units/0/amount", &p, &why) == 0 && p.ntokens == 3
       && p.tokens[1].is_index && p.tokens[1].index == 0,
       "pointer: an array index");
    ok(ptr("/a/10/b/007/-", &p, &why) == 0 && p.tokens[1].is_index
       && p.tokens[1].index == 10 && !p.tokens[3].is_index
       && !p.tokens[4].is_index,
       "pointer: 10 is an index; 007 and - are keys only");
    ok(ptr("/a~1b/m~0n/~01", &p, &why) == 0 && p.ntokens == 3
       && p.tokens[0].len == 3 && memcmp(p.tokens[0].text, "a/b", 3) == 0
       && memcmp(p.tokens[1].text, "m~n", 3) == 0
       && p.tokens[2].len == 2 && memcmp(p.tokens[2].text, "~1", 2) == 0,
       "pointer: ~1 is /, ~0 is ~, ~01 is ~1 (RFC 6901 order)");
    ok(ptr("/", &p, &why) == 0 && p.ntokens == 1 && p.tokens[0].len == 0,
       "pointer: / is the empty key");
    ok(ptr("/a//b/", &p, &why) == 0 && p.ntokens == 4
       && p.tokens[1].len == 0 && p.tokens[3].len == 0,
       "pointer: empty tokens");
    ok(ptr("/9999999999", &p, &why) == 0 && !p.tokens[0].is_index,
       "pointer: 10 digits: a key only");

    ok(ptr("", &p, &why) == -1 && strcmp(why, "it must start with \"/\"") == 0,
       "pointer: empty (the whole document) refused");
    ok(ptr("amount/value", &p, &why) == -1, "pointer: no leading /");
    ok(ptr("/a~2", &p, &why) == -1 && ptr("/a~", &p, &why) == -1
       && strcmp(why, "\"~\" must be followed by \"0\" or \"1\"") == 0,
       "pointer: ~ not followed by 0 or 1");
    ok(ptr("/a/b/c/d/e/f/g/h", &p, &why) == 0
       && ptr("/a/b/c/d/e/f/g/h/i", &p, &why) == -1,
       "pointer: 8 tokens, not 9");
#define A31  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    ok(ptr("/" A31 A31 "~0~1", &p, &why) == 0 && p.tokens[0].len == 64
       && ptr("/" A31 A31 "aaa", &p, &why) == -1,
       "pointer: a token of 64 bytes (after escapes), not 65");
#undef A31
    ok(ptr("/a\tb", &p, &why) == -1 && ptr("/caf\xc3", &p, &why) == -1,
       "pointer: control characters and bad UTF-8 refused");
    ok(ptr("/caf\xc3\xa9", &p, &why) == 0 && p.tokens[0].len == 5,
       "pointer: UTF-8 keys");
}


static void
test_scan(void)
{
    const char                  *why;
    ngx_http_txval_json_path_t   pa, pb, pc;
    ngx_http_txval_json_scan_t   sc;

#define SCAN(b)  ngx_http_txval_json_scan((const unsigned char *) b,          \
                                          sizeof(b) - 1, &sc)

    memset(&sc, 0, sizeof(sc));
    ptr("/a/1/b", &pa, &why);
    ptr("/x", &pb, &why);
    ptr("/a/0", &pc, &why);
    sc.paths[0] = &pa;
    sc.paths[1] = &pb;
    sc.paths[5] = &pc;

    ok(SCAN("{\"x\":\"s\\u0041\",\"a\":[{\"b\":1},{\"b\":2.5e1}]}") == NULL
       && sc.spans[0].type == NGX_HTTP_TXVAL_JSON_NUMBER
       && sc.spans[0].len == 5 && memcmp(sc.spans[0].data, "2.5e1", 5) == 0
       && sc.spans[1].type == NGX_HTTP_TXVAL_JSON_STRING
       && sc.spans[1].escaped && sc.spans[1].len == 7
       && sc.spans[5].type == NGX_HTTP_TXVAL_JSON_OBJECT
       && sc.duplicate == -1 && !sc.pan,
       "scan: spans of an array element's member, a string, a container");
    ok(SCAN("{\"a\":{\"1\":{\"b\":true}}}") == NULL
       && sc.spans[0].type == NGX_HTTP_TXVAL_JSON_TRUE
       && sc.spans[1].type == NGX_HTTP_TXVAL_JSON_ABSENT,
       "scan: an index token matches an object key too");
    ok(SCAN("{\"a\":[1],\"x\":null}") == NULL
       && sc.spans[0].type == NGX_HTTP_TXVAL_JSON_ABSENT
       && sc.spans[1].type == NGX_HTTP_TXVAL_JSON_NULL,
       "scan: past the end is absent; null is null");
    ok(SCAN("{\"a\":[{},{\"b\":1,\"b\":2}]}") == NULL && sc.duplicate == 0,
       "scan: a duplicate key at a path's end");
    ok(SCAN("{\"a\":[],\"\\u0061\":[]}") == NULL && sc.duplicate == 0,
       "scan: a duplicate container on a path, one key escaped");
    ok(SCAN("{\"a\":[{\"c\":1,\"c\":2},{\"b\":1}],\"y\":1,\"y\":2}") == NULL
       && sc.duplicate == -1, "scan: duplicates off the paths are ignored");
    ok(SCAN("{\"q\":[[{\"z\":{\"card_number\":1}}]]}") == NULL && sc.pan,
       "scan: a card_number key deep down");
    ok(SCAN("{\"p\\u0061n\":1}") == NULL && sc.pan, "scan: an escaped pan key");
    ok(SCAN("{\"pan_id\":1,\"xpan\":2,\"pa\":3}") == NULL && !sc.pan,
       "scan: keys that only look like pan");
    ok(SCAN("\xef\xbb\xbf{}") == NULL, "scan: a byte order mark");
    ok(SCAN("{\"a\":\"\\u00G1\"}") != NULL
       && strcmp(SCAN("{\"a\":\"\\u00G1\"}"),
                 "the body is not valid JSON") == 0,
       "scan: \\u without 4 hex digits is refused (cJSON read a NUL)");
    ok(SCAN("{\"a\":\"\\ud800\"}") != NULL
       && SCAN("{\"a\":\"\\udc00x\"}") != NULL
       && SCAN("{\"a\":\"\\ud83d\\ude00\"}") == NULL,
       "scan: lone surrogates refused, a pair accepted");
    ok(strcmp(SCAN("{\"a\":1,}"), "the body is not valid JSON") == 0
       && strcmp(SCAN("[1] x"), "the body has data after the JSON value") == 0
       && strcmp(SCAN("\"s\""), "the body is not a JSON object") == 0
       && strcmp(SCAN("{\"a\" 1, \"b\":\"\x01\"}"),
                 "the body holds a control character") == 0
       && strcmp(SCAN("{\"a\":01}"), "the body is not valid JSON") == 0
       && strcmp(SCAN("{\"a\":1} \xff"), "the body is not valid UTF-8") == 0,
       "scan: messages, a lexical fault anywhere first");

#undef SCAN

    {
        /* 1000 nested containers, not 1001 */
        static char  deep[2 * 1001 + 8];
        size_t       i, n;

        n = 0;
        deep[n++] = '{';
        deep[n++] = '"';
        deep[n++] = 'a';
        deep[n++] = '"';
        deep[n++] = ':';

        for (i = 0; i < 999; i++) {
            deep[n++] = '[';
        }

        for (i = 0; i < 999; i++) {
            deep[n++] = ']';
        }

        deep[n++] = '}';

        ok(ngx_http_txval_json_scan((unsigned char *) deep, n, &sc) == NULL,
           "scan: 1000 nested containers");

        /* one more pair: {"a":[[...]]} */

        memmove(deep + 6, deep + 5, n - 5);
        deep[5] = '[';
        deep[n] = ']';
        deep[n + 1] = '}';

        ok(ngx_http_txval_json_scan((unsigned char *) deep, n + 2, &sc)
           != NULL, "scan: 1001 refused");
    }
}


static void
test_amount(void)
{
    int64_t  a;

    ok(amount("1000", -1, &a) == 0 && a == 1000
       && amount("1e3", -1, &a) == 0 && a == 1000
       && amount("1000.0", -1, &a) == 0 && a == 1000
       && amount("0.1e4", -1, &a) == 0 && a == 1000
       && amount("10000e-1", -1, &a) == 0 && a == 1000,
       "minor: 1000 written five ways");
    ok(amount("1.0000000000000001", -1, &a) == -1
       && amount("0", -1, &a) == -1 && amount("-0", -1, &a) == -1
       && amount("-5", -1, &a) == -1 && amount("1e400", -1, &a) == -1
       && amount("1e-400", -1, &a) == -1,
       "minor: fractions, zero, negatives, out of range");
    ok(amount("9007199254740991", -1, &a) == 0 && a == 9007199254740991LL
       && amount("9007199254740992", -1, &a) == -1
       && amount("9.007199254740991e15", -1, &a) == 0
       && amount("90071992547409910e-1", -1, &a) == 0,
       "minor: 2^53-1 and not above");
    ok(amount("01", -1, &a) == -1 && amount("1.", -1, &a) == -1
       && amount(".5", -1, &a) == -1 && amount("+1", -1, &a) == -1
       && amount("", -1, &a) == -1 && amount("1 ", -1, &a) == -1,
       "minor: not JSON numbers");

    ok(amount("1000", 0, &a) == 0 && a == 1000
       && amount("1000.0", 0, &a) == -1 && amount("1000.5", 0, &a) == -1
       && amount("1e3", 0, &a) == 0 && a == 1000,
       "decimal, exponent 0 (JPY): no decimals as written");
    ok(amount("10.50", 2, &a) == 0 && a == 1050
       && amount("10.5", 2, &a) == 0 && a == 1050
       && amount("10", 2, &a) == 0 && a == 1000
       && amount("0.01", 2, &a) == 0 && a == 1
       && amount("10.500", 2, &a) == -1 && amount("0.00", 2, &a) == -1
       && amount("0.001", 2, &a) == -1,
       "decimal, exponent 2 (USD): up to 2 decimals, at least one cent");
    ok(amount("1.005e1", 2, &a) == 0 && a == 1005
       && amount("1050e-2", 2, &a) == 0 && a == 1050
       && amount("1e-3", 2, &a) == -1 && amount("1.0005e1", 2, &a) == -1,
       "decimal: decimals as written, after the exponent");
    ok(amount("90071992547409.91", 2, &a) == 0 && a == 9007199254740991LL
       && amount("90071992547409.92", 2, &a) == -1,
       "decimal: the largest amount");
    ok(amount("1.234", 3, &a) == 0 && a == 1234
       && amount("1.2345", 3, &a) == -1 && amount("1.2345", 4, &a) == 0
       && a == 12345 && amount("-1.00", 2, &a) == -1,
       "decimal, exponents 3 and 4");

    ok(ngx_http_txval_currency_exponent("JPY") == 0
       && ngx_http_txval_currency_exponent("USD") == 2
       && ngx_http_txval_currency_exponent("KWD") == 3
       && ngx_http_txval_currency_exponent("CLF") == 4
       && ngx_http_txval_currency_exponent("AED") == 2
       && ngx_http_txval_currency_exponent("ZWL") == 2
       && ngx_http_txval_currency_exponent("XXX") == -1
       && ngx_http_txval_currency_exponent("XAU") == -1
       && ngx_http_txval_currency_exponent("usd") == -1,
       "ISO 4217 exponents: the first, the last, none for XXX and XAU");

    {
        static const char  *zero[] = { "BIF", "CLP", "DJF", "GNF", "ISK",
            "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
            "XAF", "XOF", "XPF" };
        static const char  *three[] = { "BHD", "IQD", "JOD", "KWD", "LYD",
            "OMR", "TND" };
        size_t  i;
        int     good;

        good = 1;

        for (i = 0; i < sizeof(zero) / sizeof(zero[0]); i++) {
            good &= (ngx_http_txval_currency_exponent(zero[i]) == 0);
        }

        for (i = 0; i < sizeof(three) / sizeof(three[0]); i++) {
            good &= (ngx_http_txval_currency_exponent(three[i]) == 3);
        }

        ok(good && ngx_http_txval_currency_exponent("UYW") == 4,
           "ISO 4217: every 0 and 3 exponent, UYW 4");
    }
}


static void
test_mapping(void)
{
    const char                    *why;
    uint64_t                       r1[2], r2[2];
    unsigned char                  key[16];
    ngx_http_txval_txn_t           txn, flat;
    ngx_http_txval_value_t         values[NGX_HTTP_TXVAL_NFIELDS];
    ngx_http_txval_mapping_t       map, dflt;
    ngx_http_txval_parse_error_t   err;

#define PTR(m, f, t)  ngx_http_txval_mapping_pointer(m, f,                   \
                          (const unsigned char *) t, sizeof(t) - 1, &why)
#define VAL(m, f, t)  ngx_http_txval_mapping_value(m, f,                     \
                          (const unsigned char *) t, sizeof(t) - 1, &why)

    memset(key, 7, sizeof(key));
    memset(values, 0, sizeof(values));

    ngx_http_txval_mapping_init(&dflt);
    ngx_http_txval_mapping_done(&dflt);
    ok(dflt.tag == 0 && dflt.values == 0, "mapping: the default's tag is 0");

    ngx_http_txval_mapping_init(&map);
    ok(PTR(&map, NGX_HTTP_TXVAL_FIELD_ID, "/reference") == 0
       && PTR(&map, NGX_HTTP_TXVAL_FIELD_AMOUNT, "/amount/value") == 0
       && PTR(&map, NGX_HTTP_TXVAL_FIELD_CURRENCY, "/amount/currency") == 0
       && PTR(&map, NGX_HTTP_TXVAL_FIELD_CARD_TOKEN, "/pm/0/token") == 0,
       "mapping: pointers set");
    ok(PTR(&map, NGX_HTTP_TXVAL_FIELD_MERCHANT_ID, "merchant") == -1
       && map.fields[NGX_HTTP_TXVAL_FIELD_MERCHANT_ID].from
          == NGX_HTTP_TXVAL_FROM_DEFAULT,
       "mapping: a pointer refused leaves the source as it was");
    ngx_http_txval_mapping_done(&map);
    ok(map.tag != 0, "mapping: another mapping, another tag");

    ok(parse_map("{\"reference\":\"r_1\",\"amount\":{\"value\":1000,"
                 "\"currency\":\"USD\"},\"merchant_id\":\"m_1\","
                 "\"pm\":[{\"token\":\"tok_1\"}],\"id\":\"decoy\"}",
                 &map, NULL, &txn, &err) == NGX_HTTP_TXVAL_PARSE_OK
       && strcmp(txn.id, "r_1") == 0 && txn.amount == 1000
       && strcmp(txn.card_token, "tok_1") == 0,
       "mapping: nested fields read");
    ok(parse("{\"id\":\"r_1\",\"amount\":1000,\"currency\":\"USD\","
             "\"merchant_id\":\"m_1\",\"card_token\":\"tok_1\"}", &flat, &err)
       == NGX_HTTP_TXVAL_PARSE_OK
       && memcmp(flat.fingerprint, txn.fingerprint, 16) == 0,
       "mapping: the fingerprint is of the fields, wherever they were");

    ok(parse_map("{\"reference\":\"r_1\",\"amount\":{\"currency\":\"USD\"},"
                 "\"merchant_id\":\"m_1\",\"pm\":[{\"token\":\"tok_1\"}]}",
                 &map, NULL, &txn, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "amount") == 0
       && strcmp(err.detail, "amount is missing at /amount/value") == 0,
       "mapping: missing, the pointer named");
    ok(parse_map("{\"reference\":7,"
                 "\"amount\":{\"value\":1,\"currency\":\"USD\"}}",
                 &map, NULL, &txn, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.detail, "id at /reference must be a string of 1-64 "
                 "characters from A-Z a-z 0-9 . _ : -") == 0,
       "mapping: the rule, the pointer named");
    ok(parse_map("{\"reference\":\"r\",\"amount\":{\"value\":1},\"amount\":{}}",
                 &map, NULL, &txn, &err) == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "amount") == 0
       && strcmp(err.detail, "a key on the path /amount/value appears more "
                 "than once") == 0,
       "mapping: a duplicate on the path, the first field through it");
    ok(parse_map("{\"pm\":[{\"token\":{\"pan\":\"4111111111111111\"}}]}",
                 &map, NULL, &txn, &err) == NGX_HTTP_TXVAL_PARSE_PAN,
       "mapping: a card number under a mapped path");

    /* values from variables */

    ok(VAL(&map, NGX_HTTP_TXVAL_FIELD_MERCHANT_ID, "$http_x_merchant") == 0
       && VAL(&map, NGX_HTTP_TXVAL_FIELD_ID, "$http_idempotency_key") == 0,
       "mapping: values set");
    map.currency_case = NGX_HTTP_TXVAL_CASE_ANY;
    map.amount_format = NGX_HTTP_TXVAL_AMOUNT_DECIMAL;
    ngx_http_txval_mapping_done(&map);
    ok(map.values == ((1 << NGX_HTTP_TXVAL_FIELD_ID)
                      | (1 << NGX_HTTP_TXVAL_FIELD_MERCHANT_ID)),
       "mapping: the supplied fields");

    values[NGX_HTTP_TXVAL_FIELD_ID].data = (const unsigned char *) "key-1";
    values[NGX_HTTP_TXVAL_FIELD_ID].len = 5;
    values[NGX_HTTP_TXVAL_FIELD_MERCHANT_ID].data =
                                              (const unsigned char *) "m_h";
    values[NGX_HTTP_TXVAL_FIELD_MERCHANT_ID].len = 3;

    ok(parse_map("{\"amount\":{\"value\":\"10.50\",\"currency\":\"usd\"},"
                 "\"pm\":[{\"token\":\"tok_1\"}]}", &map, values, &txn, &err)
       == NGX_HTTP_TXVAL_PARSE_OK && strcmp(txn.id, "key-1") == 0
       && strcmp(txn.merchant_id, "m_h") == 0 && txn.amount == 1050
       && strcmp(txn.currency, "USD") == 0,
       "mapping: values, a decimal string, a lowercase currency");
    ok(parse_map("{\"amount\":{\"value\":\"10.505\",\"currency\":\"usd\"},"
                 "\"pm\":[{\"token\":\"tok_1\"}]}", &map, values, &txn, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.detail, "amount at /amount/value must be a decimal "
                 "number of major units with at most 2 decimals for USD, "
                 "of 1 to 9007199254740991 minor units") == 0,
       "mapping: too many decimals, the exponent and currency named");
    ok(parse_map("{\"amount\":{\"value\":\"10\",\"currency\":\"xxx\"},"
                 "\"pm\":[{\"token\":\"tok_1\"}]}", &map, values, &txn, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.field, "currency") == 0,
       "mapping: no exponent known for the currency");

    values[NGX_HTTP_TXVAL_FIELD_ID].len = 0;
    ok(parse_map("{}", &map, values, &txn, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strcmp(err.detail,
                 "id is missing ($http_idempotency_key is empty)") == 0,
       "mapping: an empty value is missing, the variable named");
    values[NGX_HTTP_TXVAL_FIELD_ID].data = (const unsigned char *) "a\"b";
    values[NGX_HTTP_TXVAL_FIELD_ID].len = 3;
    ok(parse_map("{}", &map, values, &txn, &err)
       == NGX_HTTP_TXVAL_PARSE_INVALID_FIELD
       && strncmp(err.detail, "id from $http_idempotency_key must be", 37)
          == 0, "mapping: a bad value, the variable named");

    /* the replay guess and hash follow the mapping */

    {
        size_t                n;
        const unsigned char  *id;

        values[NGX_HTTP_TXVAL_FIELD_ID].data = (const unsigned char *) "k-9";

        ok(ngx_http_txval_txn_peek_id((const unsigned char *) "{}", 2, &map,
                                      values, &id, &n) == 0
           && n == 3 && memcmp(id, "k-9", 3) == 0,
           "peek: a supplied id, without looking at the body");

        ngx_http_txval_mapping_init(&dflt);
        PTR(&dflt, NGX_HTTP_TXVAL_FIELD_ID, "/payment/reference");
        ngx_http_txval_mapping_done(&dflt);

        ok(ngx_http_txval_txn_peek_id(
                (const unsigned char *) "{\"payment\":{\"reference\":\"r9\"}}",
                31, &dflt, NULL, &id, &n) == 0 && n == 2
           && memcmp(id, "r9", 2) == 0,
           "peek: the key the id's pointer ends with");
    }

    ngx_http_txval_txn_raw(key, (const unsigned char *) "{}", 2, &map,
                           values, r1);
    values[NGX_HTTP_TXVAL_FIELD_MERCHANT_ID].data =
                                              (const unsigned char *) "m_i";
    ngx_http_txval_txn_raw(key, (const unsigned char *) "{}", 2, &map,
                           values, r2);
    ok(r1[0] != r2[0] || r1[1] != r2[1],
       "raw: another value, another hash");
    values[NGX_HTTP_TXVAL_FIELD_MERCHANT_ID].len = 2;
    values[NGX_HTTP_TXVAL_FIELD_ID].len = 4;
    ngx_http_txval_txn_raw(key, (const unsigned char *) "{}", 2, &map,
                           values, r1);
    ok(r1[0] != r2[0] || r1[1] != r2[1],
       "raw: values are length-prefixed (k-9m / m_ vs k-9 / m_i)");

    ngx_http_txval_txn_raw(key, (const unsigned char *) "{}", 2, NULL, NULL,
                           r1);
    ngx_http_txval_siphash128(key, (const unsigned char *) "{}", 2, r2);
    ok(r1[0] == r2[0] && r1[1] == r2[1],
       "raw: the default mapping hashes the body alone");

    ok(ngx_http_txval_mapping_check(NGX_HTTP_TXVAL_FIELD_CURRENCY,
                                    (const unsigned char *) "eur", 3, &why)
       == 0
       && ngx_http_txval_mapping_check(NGX_HTTP_TXVAL_FIELD_CURRENCY,
                                       (const unsigned char *) "EU1", 3, &why)
          == -1
       && ngx_http_txval_mapping_check(NGX_HTTP_TXVAL_FIELD_AMOUNT,
                                       (const unsigned char *) "10.5", 4,
                                       &why) == 0
       && ngx_http_txval_mapping_check(NGX_HTTP_TXVAL_FIELD_COUNTRY,
                                       (const unsigned char *) "FR", 2, &why)
          == 0,
       "mapping: constants checked");

#undef PTR
#undef VAL
}


static void
test_siphash_pieces(void)
{
    size_t          i, cut;
    uint64_t        a[2], b[2];
    unsigned char   key[16], in[40];
    ngx_http_txval_mapping_t      map;
    ngx_http_txval_value_t        v[NGX_HTTP_TXVAL_NFIELDS];
    const char                   *why;

    for (i = 0; i < 16; i++) {
        key[i] = (unsigned char) (i * 3);
    }

    for (i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char) (i * 7);
    }

    /*
     * a body and one supplied value are hashed in two parts: the same as
     * hashing them at once
     */

    ngx_http_txval_mapping_init(&map);
    ngx_http_txval_mapping_value(&map, NGX_HTTP_TXVAL_FIELD_ID,
                                 (const unsigned char *) "$x", 2, &why);
    ngx_http_txval_mapping_done(&map);
    memset(v, 0, sizeof(v));

    for (cut = 0; cut <= 17; cut++) {
        unsigned char  all[64];
        size_t         n;

        v[NGX_HTTP_TXVAL_FIELD_ID].data = in + cut;
        v[NGX_HTTP_TXVAL_FIELD_ID].len = 17 - cut;

        ngx_http_txval_txn_raw(key, in, cut, &map, v, a);

        n = 0;
        memcpy(all + n, in, cut);
        n += cut;

        for (i = 0; i < 8; i++) {
            all[n++] = (unsigned char) ((17 - cut) >> (8 * i));
        }

        memcpy(all + n, in + cut, 17 - cut);
        n += 17 - cut;

        for (i = 0; i < 8; i++) {
            all[n++] = (unsigned char) (map.tag >> (8 * i));
        }

        ngx_http_txval_siphash128(key, all, n, b);

        if (a[0] != b[0] || a[1] != b[1]) {
            break;
        }
    }

    ok(cut == 18, "siphash in pieces: the same as at once, every cut");
}


int
main(void)
{
    test_parse();
    test_pointer();
    test_scan();
    test_amount();
    test_mapping();
    test_siphash_pieces();
    test_rules();
    test_output();
    test_prometheus();
    test_rows();
    test_slot();
    test_peek();

    printf("1..%d\n", tests);

    return failed ? 1 : 0;
}
