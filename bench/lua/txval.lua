-- txval.lua: an OpenResty-style transaction gate, for bench/run.sh.
--
-- What a team would write with Debian's libnginx-mod-http-lua,
-- lua-nginx-redis (lua-resty-redis, "nginx.redis") and lua-cjson, to do
-- txval's job (../../../shared/SPEC.md) without a C module: the same
-- fields and rules, the same verdict JSON and headers, lua_shared_dict as
-- the shm verdict cache, Redis as the shared cache and for velocity, with
-- the same keys ({prefix}v:{id}, {prefix}vel:{card}:{window}, INCR +
-- EXPIRE pipelined). No Postgres: Debian has no non-blocking Postgres
-- driver for ngx_lua (the merchant, card and BIN rules do not apply, as
-- in txval without txval_postgres).
--
-- Differences from txval, none of them on the measured paths: cjson's
-- JSON (duplicate keys and other strictness not checked), `pan` and
-- `card_number` refused at the top level only, a 32-bit fingerprint
-- (ngx.crc32_long) in the stored record.
--
-- nginx.conf (bench/lua/nginx-http.conf has the http-level part):
--
--   init_by_lua_block { require("txval").configure{ redis_port = 6379 } }
--   location = /pay  {                      # gate, as txval_gate
--       access_by_lua_block { require("txval").gate(true) }
--       proxy_pass http://processor;
--   }
--   location = /v    {                      # verdict, as txval
--       content_by_lua_block { require("txval").verdict(true) }
--   }
--
-- gate(use_shm) / verdict(use_shm): use_shm false skips lua_shared_dict
-- (a cold shm: every replay goes to Redis).

local cjson = require "cjson.safe"
local redis = require "nginx.redis"
local bit = require "bit"

local ngx = ngx
local re_find = ngx.re.find
local floor = math.floor
local concat = table.concat
local tonumber = tonumber
local type = type
local bor, band, lshift = bit.bor, bit.band, bit.lshift

local _M = {}

local config = {
    redis_host = "127.0.0.1",
    redis_port = 6379,
    prefix = "txval:",
    ttl = 600,                  -- seconds: shm and Redis verdicts
    limits = { USD = { 100, 500000 } },
    velocity_count = 0,         -- 0: off
    velocity_window = 60,
    risk_threshold = 70,
    decline_status = 402,
    pool_size = 64,             -- idle Redis connections kept per worker
    connect_timeout = 100,      -- ms
    timeout = 50,               -- ms, each command
}
_M.config = config

function _M.configure(t)
    for k, v in pairs(t) do
        config[k] = v
    end
end

local reason_names = {
    "currency_not_supported",
    "amount_out_of_range",
    "merchant_unknown",
    "merchant_inactive",
    "merchant_limit_exceeded",
    "currency_not_allowed",
    "card_blocked",
    "bin_blocked",
    "velocity_exceeded",
    "risk_too_high",
}
local R_CURRENCY_NOT_SUPPORTED = 0
local R_AMOUNT_OUT_OF_RANGE = 1
local R_VELOCITY_EXCEEDED = 8
local R_RISK_TOO_HIGH = 9

local MAX_SAFE = 9007199254740991

local errors = {
    method = { 405, "method_not_allowed", "only POST is accepted" },
    media = { 415, "unsupported_media_type",
              "the Content-Type must be application/json" },
    json = { 400, "invalid_json", "the body is not valid JSON" },
    object = { 400, "invalid_json", "the body is not a JSON object" },
    field = { 400, "invalid_field", "the field is missing or breaks its rule" },
    pan = { 400, "pan_not_accepted",
            "card numbers are not accepted: send a card_token" },
    conflict = { 409, "idempotency_conflict",
                 "this id was already used for a transaction with " ..
                 "different content" },
    backend = { 503, "backend_unavailable",
                "a backend this transaction needs is unavailable, " ..
                "retry later" },
}

-- --- the answer: ngx.exit() in the access phase ends the request

local function send(status, body, verdict, source)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    if verdict then
        ngx.header["X-Txval-Verdict"] = verdict
        ngx.header["X-Txval-Source"] = source
    end
    if status == 405 then
        ngx.header["Allow"] = "POST"
    elseif status == 503 then
        ngx.header["Retry-After"] = "1"
    end
    ngx.print(body)
    return ngx.exit(ngx.HTTP_OK)
end

local function fail(e, field, id)
    local t = { error = e[2], detail = e[3] }
    if field then
        t.field = field
    end
    if id then
        t.id = id
    end
    return send(e[1], cjson.encode(t))
end

local function verdict_body(id, reasons, risk, source)
    local names, n = {}, 0
    for i = 0, #reason_names - 1 do
        if band(reasons, lshift(1, i)) ~= 0 then
            n = n + 1
            names[n] = '"' .. reason_names[i + 1] .. '"'
        end
    end
    return concat({ '{"id":"', id, '","verdict":"',
                    reasons == 0 and "approved" or "declined",
                    '","reasons":[', concat(names, ","), '],"risk_score":',
                    risk, ',"source":"', source, '"}\n' })
end

-- --- the transaction

local function id_ok(s, max)
    return type(s) == "string" and #s >= 1 and #s <= max
           and not re_find(s, "[^A-Za-z0-9._:-]", "jo")
end

local function parse(body)
    if not body or body == "" then
        return nil, errors.json
    end
    local t = cjson.decode(body)
    if type(t) ~= "table" then
        return nil, t == nil and errors.json or errors.object
    end
    -- (Debian's lua-cjson 2.1.0 decodes [] and {} alike)
    if not body:find("^%s*{") then
        return nil, errors.object
    end
    if t.pan ~= nil or t.card_number ~= nil then
        return nil, errors.pan
    end
    if not id_ok(t.id, 64) then
        return nil, errors.field, "id"
    end
    local a = t.amount
    if type(a) ~= "number" or a ~= floor(a) or a < 1 or a > MAX_SAFE then
        return nil, errors.field, "amount"
    end
    local cur = t.currency
    if type(cur) ~= "string" or not re_find(cur, "^[A-Z]{3}$", "jo") then
        return nil, errors.field, "currency"
    end
    if not id_ok(t.merchant_id, 64) then
        return nil, errors.field, "merchant_id"
    end
    if not id_ok(t.card_token, 128) then
        return nil, errors.field, "card_token"
    end
    local bin = t.card_bin
    if bin ~= nil and (type(bin) ~= "string"
                       or not re_find(bin, "^[0-9]{6,8}$", "jo")) then
        return nil, errors.field, "card_bin"
    end
    local cty = t.country
    if cty ~= nil and (type(cty) ~= "string"
                       or not re_find(cty, "^[A-Z]{2}$", "jo")) then
        return nil, errors.field, "country"
    end
    t.fp = ngx.crc32_long(concat({ t.id, string.format("%.0f", a), cur,
                                   t.merchant_id, t.card_token, bin or "",
                                   cty or "" }, "\0"))
    return t
end

-- "1;{reasons hex};{risk};{fingerprint}", as txval's record
local function encode(reasons, risk, fp)
    return string.format("1;%x;%d;%08x", reasons, risk, fp)
end

local function decode(v)
    local r, s, fp = v:match("^1;(%x+);(%d+);(%x+)$")
    if not r then
        return nil
    end
    return tonumber(r, 16), tonumber(s), tonumber(fp, 16)
end

-- --- the rules (config and velocity; no Postgres)

local function evaluate(t, count)
    local reasons, score = 0, 0
    local limit = config.limits[t.currency]
    local cap
    if next(config.limits) and not limit then
        reasons = bor(reasons, lshift(1, R_CURRENCY_NOT_SUPPORTED))
    end
    if limit then
        if t.amount < limit[1] or t.amount > limit[2] then
            reasons = bor(reasons, lshift(1, R_AMOUNT_OUT_OF_RANGE))
        end
        cap = limit[2]
    end
    local vc = config.velocity_count
    if count and vc > 0 then
        if count > vc then
            reasons = bor(reasons, lshift(1, R_VELOCITY_EXCEEDED))
        end
        if 2 * count > vc then
            score = score + 20
        end
    end
    if cap and 2 * t.amount >= cap then
        score = score + 30
    end
    if score > 100 then
        score = 100
    end
    if score >= config.risk_threshold then
        reasons = bor(reasons, lshift(1, R_RISK_TOO_HIGH))
    end
    return reasons, score
end

-- --- Redis

local function connect()
    local red = redis:new()
    red:set_timeouts(config.connect_timeout, config.timeout, config.timeout)
    local ok, err = red:connect(config.redis_host, config.redis_port)
    if not ok then
        ngx.log(ngx.ERR, "txval.lua: redis connect: ", err)
        return nil
    end
    return red
end

local function release(red)
    local ok, err = red:set_keepalive(60000, config.pool_size)
    if not ok then
        ngx.log(ngx.WARN, "txval.lua: redis keepalive: ", err)
    end
end

-- --- the request: returns reasons, risk, source of a verdict (after
-- answering any error itself)

local function validate(use_shm)
    if ngx.req.get_method() ~= "POST" then
        return fail(errors.method)
    end
    local ct = ngx.var.http_content_type
    if not ct or not re_find(ct, [[^application/json(?:[;\s]|$)]], "joi") then
        return fail(errors.media)
    end

    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        local file = ngx.req.get_body_file()
        if file then
            local f = io.open(file, "rb")
            if f then
                body = f:read("*a")
                f:close()
            end
        end
    end

    local t, e, field = parse(body)
    if not t then
        return fail(e, field)
    end

    -- the shm cache
    local shm = ngx.shared.txval
    if use_shm then
        local v = shm:get(t.id)
        if v then
            local reasons, risk, fp = decode(v)
            if fp ~= t.fp then
                return fail(errors.conflict, nil, t.id)
            end
            return t, reasons, risk, "shm"
        end
    end

    -- Redis: the verdict cache, then velocity
    local red = connect()
    if not red then
        return fail(errors.backend)
    end
    local vkey = config.prefix .. "v:" .. t.id
    local v = red:get(vkey)
    if type(v) == "string" then
        local reasons, risk, fp = decode(v)
        if reasons then
            release(red)
            if fp ~= t.fp then
                return fail(errors.conflict, nil, t.id)
            end
            if use_shm then
                shm:set(t.id, v, config.ttl)
            end
            return t, reasons, risk, "redis"
        end
    end

    local count
    if config.velocity_count > 0 then
        local key = config.prefix .. "vel:" .. t.card_token .. ":"
                    .. floor(ngx.time() / config.velocity_window)
        red:init_pipeline(2)
        red:incr(key)
        red:expire(key, config.velocity_window)
        local res = red:commit_pipeline()
        count = res and tonumber(res[1])
        if not count then
            red:close()
            return fail(errors.backend)
        end
    end

    local reasons, risk = evaluate(t, count)
    local rec = encode(reasons, risk, t.fp)
    if use_shm then
        shm:set(t.id, rec, config.ttl)
    end
    return t, reasons, risk, "computed", red, vkey, rec
end

local function store(red, vkey, rec)
    local ok = red:set(vkey, rec, "EX", config.ttl)
    if ok then
        release(red)
    else
        red:close()
    end
end

-- gate mode (access phase): approved requests go on to the content
-- handler with X-Txval-* headers, the rest are answered here
function _M.gate(use_shm)
    ngx.req.clear_header("X-Txval-Verdict")
    ngx.req.clear_header("X-Txval-Risk-Score")
    ngx.req.clear_header("X-Txval-Source")

    local t, reasons, risk, source, red, vkey, rec = validate(use_shm)
    if red then
        -- the verdict is stored before the request goes on (the access
        -- phase cannot answer first)
        store(red, vkey, rec)
    end
    if reasons ~= 0 then
        return send(config.decline_status,
                    verdict_body(t.id, reasons, risk, source),
                    "declined", source)
    end
    ngx.req.set_header("X-Txval-Verdict", "approved")
    ngx.req.set_header("X-Txval-Risk-Score", tostring(risk))
    ngx.req.set_header("X-Txval-Source", source)
end

-- verdict mode (content phase): answer, then store the verdict in Redis
function _M.verdict(use_shm)
    local t, reasons, risk, source, red, vkey, rec = validate(use_shm)
    ngx.status = reasons == 0 and 200 or config.decline_status
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Txval-Verdict"] = reasons == 0 and "approved" or "declined"
    ngx.header["X-Txval-Source"] = source
    ngx.print(verdict_body(t.id, reasons, risk, source))
    if red then
        ngx.eof()
        store(red, vkey, rec)
    end
end

return _M
