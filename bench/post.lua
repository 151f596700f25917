-- wrk script: POST one transaction (a replay after the first request).
-- TXVAL_BODY in the environment overrides the body.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("TXVAL_BODY") or
  '{"id":"tx_bench_replay","amount":2500,"currency":"USD",' ..
  '"merchant_id":"m_acme","card_token":"tok_4242","card_bin":"424242",' ..
  '"country":"US"}'
