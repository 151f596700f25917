-- wrk script for the fault suite and the soak: a mix of transactions, and
-- a count of every status seen.
--
--   TXVAL_RUN       makes ids unique across runs (required)
--   TXVAL_MIX       "faults" (default): 2 of 3 new ids, 1 of 3 a replay
--                   "soak": of every 20 requests 12 new ids, 5 replays of
--                   this thread's recent ids, 1 conflict (a recent id with
--                   another amount: 409), 1 invalid JSON, 1 invalid field
--                   (400)
--   TXVAL_REPLAY_ID the id replayed by "faults" (primed by the caller)
--   TXVAL_LIMIT     stop each thread after this many responses (0: no limit)
--
-- done() prints, for the caller to check:
--   wrk-status CODE COUNT          one line per status seen
--   wrk-errors connect N read N write N timeout N

local run = os.getenv("TXVAL_RUN") or tostring(os.time())
local mix = os.getenv("TXVAL_MIX") or "faults"
local replay_id = os.getenv("TXVAL_REPLAY_ID") or ("fault_replay_" .. run)
local limit = tonumber(os.getenv("TXVAL_LIMIT") or "0")
local responses = 0

local threads = {}
local counter = 0
statuses = {}   -- a global: done() reads it from each thread

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local function tx(id, n)
  return string.format(
    '{"id":"%s","amount":2500,"currency":"USD",' ..
    '"merchant_id":"m_bench_%d","card_token":"tok_bench_%d",' ..
    '"card_bin":"424242","country":"US"}',
    id, 1 + n % 1000, 1 + n % 10000)
end

function request()
  counter = counter + 1
  local body

  if mix == "soak" then
    local k = counter % 20
    if k < 12 then
      body = tx(string.format("s%s_%d_%d", run, tid, counter), counter)
    elseif k < 17 then
      -- a replay (same id, same body) of one of the new ids of this
      -- thread's previous 20
      local n = counter - k - 20 + (k - 12)
      if n < 1 then
        body = tx(string.format("s%s_%d_%d", run, tid, counter), counter)
      else
        body = tx(string.format("s%s_%d_%d", run, tid, n), n)
      end
    elseif k == 17 then
      -- the same id as one of those, another amount
      local n = counter - k - 20 + 5
      if n < 1 then n = counter end
      body = string.format('{"id":"s%s_%d_%d","amount":2501,"currency":"USD",' ..
        '"merchant_id":"m_bench_%d","card_token":"tok_bench_%d",' ..
        '"card_bin":"424242","country":"US"}',
        run, tid, n, 1 + n % 1000, 1 + n % 10000)
    elseif k == 18 then
      body = '{"id":"bad_json",'
    else
      body = string.format('{"id":"s%s_%d_%d","amount":-5,"currency":"USD",' ..
        '"merchant_id":"m_bench_1","card_token":"tok_bench_1"}',
        run, tid, counter)
    end
  else
    if counter % 3 == 0 then
      body = tx(replay_id, 0)
    else
      body = tx(string.format("f%s_%d_%d", run, tid, counter), counter)
    end
  end

  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  responses = responses + 1
  if limit > 0 and responses >= limit then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for code, n in pairs(s) do
        total[code] = (total[code] or 0) + n
      end
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("wrk-status %d %d\n", code, n))
  end
  local e = summary.errors
  io.write(string.format("wrk-errors connect %d read %d write %d timeout %d\n",
                         e.connect, e.read, e.write, e.timeout))
end
