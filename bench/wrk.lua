-- wrk script for bench/run.sh: one scenario's requests, optional pacing,
-- and a machine-readable summary (p50, p99, p99.9, errors).
--
-- Environment:
--   TXVAL_BENCH_MODE   replay   the same transaction every time (a replay
--                               after the first request)
--                      unique   a new id every time, spread over the demo
--                               seed's 1,000 bench merchants and 10,000
--                               bench cards (a miss everywhere)
--                      invalid  malformed JSON (400 invalid_json expected;
--                               any other status counts as an error)
--                      known    a new id every time, over 100 bench
--                               merchants and 1,000 bench cards (once seen,
--                               all of them in txval's lookup cache)
--                      mix      a new id every time: cards of bench/data.sql
--                               (tok_z_1 .. tok_z_1000000) by a Zipf law
--                               (s = 1: rank = floor((N + 1)^u), u uniform
--                               in [0, 1)), one transaction in ten a card
--                               never seen (not in Postgres), merchants
--                               m_z_1 .. m_z_10000 uniformly, a BIN among
--                               1,000 (400000 + rank mod 1000)
--                      mapped, mapped_unique  replay and unique with the
--                               same fields in a nested, Adyen-like body
--                               (for a location that maps them:
--                               bench/callgrind.sh)
--                      parsed, mapped_parsed  the replayed transaction
--                               (flat, nested) with a counter in an unknown
--                               member: the same content in other bytes,
--                               parsed every time
--   TXVAL_BENCH_RUN    makes unique ids unique across runs and cells
--   TXVAL_BENCH_RATE   total requests/s to pace at (0 or unset: as fast as
--                      possible). wrk has no constant-rate mode and wrk2 is
--                      not in Debian: each wrk thread keeps a schedule of
--                      RATE/threads requests/s and delay() holds a
--                      connection until its request's slot (millisecond
--                      timer resolution). Latency is counted from the
--                      moment a request is sent, as wrk does (not from its
--                      slot: no coordinated-omission correction).
--   TXVAL_BENCH_THREADS  wrk's -t (for the pacing), default 2
--
-- done() prints lines "TXVAL <key> <value>" that run.sh reads.

local mode = os.getenv("TXVAL_BENCH_MODE") or "replay"
local run = os.getenv("TXVAL_BENCH_RUN") or tostring(os.time())
local rate = tonumber(os.getenv("TXVAL_BENCH_RATE") or "0") or 0
local nthreads_cfg = tonumber(os.getenv("TXVAL_BENCH_THREADS") or "2") or 2

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local replay_body =
  '{"id":"tx_bench_replay","amount":2500,"currency":"USD",' ..
  '"merchant_id":"m_acme","card_token":"tok_4242","card_bin":"424242",' ..
  '"country":"US"}'

local mapped_body =
  '{"amount":{"currency":"USD","value":2500},"reference":"tx_bench_replay",' ..
  '"paymentMethod":{"type":"scheme","storedPaymentMethodId":"tok_4242"},' ..
  '"merchantAccount":"m_acme","cardBin":"424242","countryCode":"US"}'

local invalid_body =
  '{"id":"tx_bench_bad","amount":2500,"currency":"USD",' ..
  '"merchant_id":"m_acme","card_token":"tok_4242","card_bin":"424242",' ..
  '"country":"US"'

local threads = {}
local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end

local counter = 0
bad = 0

if mode == "unique" then
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
elseif mode == "known" then
  function request()
    counter = counter + 1
    local body = string.format(
      '{"id":"k%s_%d_%d","amount":%d,"currency":"USD",' ..
      '"merchant_id":"m_bench_%d","card_token":"tok_bench_%d",' ..
      '"card_bin":"424242","country":"US"}',
      run, tid, counter, 1000 + counter % 5000, counter % 100 + 1,
      counter % 1000 + 1)
    return wrk.format(nil, nil, nil, body)
  end
elseif mode == "mix" then
  local ncards = 1000000
  local lnN = math.log(ncards + 1)
  local seeded = false
  function request()
    if not seeded then
      math.randomseed(os.time() * 7919 + (tid or 1) * 104729)
      seeded = true
    end
    counter = counter + 1
    local rank = math.floor(math.exp(math.random() * lnN))
    if rank < 1 then rank = 1 elseif rank > ncards then rank = ncards end
    local card
    if math.random() < 0.1 then
      card = string.format("tok_new_%s_%d_%d", run, tid, counter)
    else
      card = "tok_z_" .. rank
    end
    local body = string.format(
      '{"id":"z%s_%d_%d","amount":%d,"currency":"USD",' ..
      '"merchant_id":"m_z_%d","card_token":"%s",' ..
      '"card_bin":"%d","country":"US"}',
      run, tid, counter, 1000 + counter % 5000, math.random(1, 10000), card,
      400000 + rank % 1000)
    return wrk.format(nil, nil, nil, body)
  end
elseif mode == "mapped_unique" then
  function request()
    counter = counter + 1
    local card = counter % 10000 + 1
    local merchant = counter % 1000 + 1
    local body = string.format(
      '{"amount":{"currency":"USD","value":%d},"reference":"b%s_%d_%d",' ..
      '"paymentMethod":{"type":"scheme","storedPaymentMethodId":' ..
      '"tok_bench_%d"},"merchantAccount":"m_bench_%d",' ..
      '"cardBin":"424242","countryCode":"US"}',
      1000 + counter % 5000, run, tid, counter, card, merchant)
    return wrk.format(nil, nil, nil, body)
  end
elseif mode == "mapped" then
  wrk.body = mapped_body
elseif mode == "parsed" or mode == "mapped_parsed" then
  local base = (mode == "parsed") and replay_body or mapped_body
  function request()
    counter = counter + 1
    local body = base:sub(1, -2) .. string.format(',"n":%d}', counter)
    return wrk.format(nil, nil, nil, body)
  end
elseif mode == "invalid" then
  wrk.body = invalid_body
  function response(status, headers, body)
    if status ~= 400 then
      bad = bad + 1
    end
  end
else
  wrk.body = replay_body
end

if rate > 0 then
  local ffi = require("ffi")
  pcall(ffi.cdef, [[
    typedef struct { long tv_sec; long tv_nsec; } txval_timespec;
    int clock_gettime(int clk_id, txval_timespec *tp);
  ]])
  local ts = ffi.new("txval_timespec")
  local function now_us()
    ffi.C.clock_gettime(1, ts)             -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
  end
  local interval = 1e6 * nthreads_cfg / rate   -- us between this thread's
  local slot = nil                             -- requests

  function delay()
    local now = now_us()
    if slot == nil then
      slot = now
    else
      slot = slot + interval
    end
    local d = (slot - now) / 1000
    if d < 0 then
      return 0
    end
    return math.floor(d)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local unexpected = 0
  for _, t in ipairs(threads) do
    unexpected = unexpected + (t:get("bad") or 0)
  end
  io.write(string.format("TXVAL requests %d\n", summary.requests))
  io.write(string.format("TXVAL duration_us %d\n", summary.duration))
  io.write(string.format("TXVAL rps %.1f\n",
                         summary.requests / summary.duration * 1e6))
  io.write(string.format("TXVAL p50_us %d\n", latency:percentile(50)))
  io.write(string.format("TXVAL p99_us %d\n", latency:percentile(99)))
  io.write(string.format("TXVAL p999_us %d\n", latency:percentile(99.9)))
  io.write(string.format("TXVAL status_errors %d\n", e.status))
  io.write(string.format("TXVAL socket_errors %d\n",
                         e.connect + e.read + e.write + e.timeout))
  io.write(string.format("TXVAL unexpected %d\n", unexpected))
end
