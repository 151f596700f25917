-- wrk script: POST a transaction with a new id every time (a full miss),
-- spread over many cards and merchants of the demo seed.
-- TXVAL_BENCH_RUN makes ids unique across runs and scenarios.
local run = os.getenv("TXVAL_BENCH_RUN") or tostring(os.time())
local counter = 0
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)   -- a global in the thread's own state
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  local card = counter % 10000 + 1
  local merchant = counter % 1000 + 1
  local body = string.format(
    '{"id":"b%s_%d_%d","amount":%d,"currency":"USD",' ..
    '"merchant_id":"m_bench_%d","card_token":"tok_bench_%d",' ..
    '"card_bin":"424242","country":"US"}',
    run, tid, counter, 1000 + counter % 5000, merchant, card)
  return wrk.format(nil, nil, nil, body)
end
