// txval-go: the Go service design that txval replaces, for bench/run.sh.
//
// The same contract as the nginx module (../../../shared/SPEC.md) as far
// as the benchmark needs it: the same fields and rules, the same verdict
// JSON and headers, the same Redis keys ({prefix}v:{id},
// {prefix}vel:{card}:{window}) and record format (so its records and
// txval's are interchangeable), the same Postgres query as
// ngx_http_txval_pg.c, fail closed (503) on a backend error.
//
// As teams build it: net/http, a pooled Redis client (redigo), a pooled
// Postgres client (pgx v4 pgxpool, prepared statements cached per
// connection), an in-process sharded map with a TTL as the local cache,
// and, on a miss, the Postgres lookup and the velocity count run
// concurrently (goroutines). Storing a new verdict in Redis does not hold
// up the answer.
//
// Built offline from Debian's packaged sources (GO111MODULE=off,
// GOPATH=/usr/share/gocode): see bench/go/build.sh.
//
//	txval-go -listen 127.0.0.1:18485 -redis 127.0.0.1:18482 -prefix go: \
//	         -pg "host=127.0.0.1 port=18483 ..." -ttl 1h
//
// Paths: /v  local cache, Redis and Postgres (txval with a cache zone)
//
//	/vr Redis only, no local cache, no Postgres (txval without a zone
//	    and without txval_postgres)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/jackc/pgx/v4/pgxpool"
)

// the rules' configuration: as bench/run.sh configures txval
const (
	limitCurrency  = "USD"
	limitMin       = 100
	limitMax       = 500000
	riskThreshold  = 70
	declineStatus  = 402
	maxBody        = 64 << 10
	maxSafeInteger = 9007199254740991
)

var (
	velocityCount  uint64 = 100000000
	velocityWindow int64  = 60
)

// the reasons, in SPEC order (bit i = reason i)
var reasonNames = []string{
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

const (
	rCurrencyNotSupported = iota
	rAmountOutOfRange
	rMerchantUnknown
	rMerchantInactive
	rMerchantLimitExceeded
	rCurrencyNotAllowed
	rCardBlocked
	rBinBlocked
	rVelocityExceeded
	rRiskTooHigh
)

// the Postgres lookup of ngx_http_txval_pg.c, one round trip
const pgQuery = "SELECT m.status, m.max_amount," +
	" (m.currencies IS NULL OR cardinality(m.currencies) = 0" +
	"  OR $2::text = ANY (m.currencies))," +
	" c.status, c.country," +
	" EXISTS (SELECT 1 FROM blocked_bins b" +
	"  WHERE length($4::text) >= 6" +
	"  AND b.bin IN (left($4::text, 6), left($4::text, 7)," +
	"                left($4::text, 8)))" +
	" FROM (VALUES (1)) AS one (x)" +
	" LEFT JOIN merchants m ON m.id = $1::text" +
	" LEFT JOIN cards c ON c.token = $3::text"

type txn struct {
	id, currency, merchant, card, bin, country string
	amount                                     int64
	fp                                         uint64
}

type record struct {
	fp      uint64
	reasons uint16
	risk    uint8
}

type facts struct {
	pg              bool
	merchantFound   bool
	merchantActive  bool
	merchantHasMax  bool
	merchantMax     int64
	currencyAllowed bool
	cardFound       bool
	cardBlocked     bool
	cardCountry     string
	binBlocked      bool
	velocity        bool
	velocityCount   uint64
}

// --- the local cache: a sharded map, entries with a deadline

const nshards = 64

type entry struct {
	rec      record
	deadline int64 // unix nanoseconds
}

type shard struct {
	sync.RWMutex
	m map[string]entry
}

type localCache struct {
	shards   [nshards]shard
	ttl      time.Duration
	perShard int
}

func newLocalCache(ttl time.Duration, max int) *localCache {
	c := &localCache{ttl: ttl, perShard: max / nshards}
	for i := range c.shards {
		c.shards[i].m = make(map[string]entry)
	}
	go func() {
		for range time.Tick(10 * time.Second) {
			c.sweep()
		}
	}()
	return c
}

func (c *localCache) shard(id string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h ^= uint32(id[i])
		h *= 16777619
	}
	return &c.shards[h%nshards]
}

func (c *localCache) get(id string) (record, bool) {
	s := c.shard(id)
	s.RLock()
	e, ok := s.m[id]
	s.RUnlock()
	if !ok || e.deadline < time.Now().UnixNano() {
		return record{}, false
	}
	return e.rec, true
}

func (c *localCache) put(id string, rec record) {
	s := c.shard(id)
	s.Lock()
	if len(s.m) >= c.perShard {
		// full: drop an arbitrary entry (map order is random)
		for k := range s.m {
			delete(s.m, k)
			break
		}
	}
	s.m[id] = entry{rec, time.Now().Add(c.ttl).UnixNano()}
	s.Unlock()
}

func (c *localCache) sweep() {
	now := time.Now().UnixNano()
	for i := range c.shards {
		s := &c.shards[i]
		s.Lock()
		for k, e := range s.m {
			if e.deadline < now {
				delete(s.m, k)
			}
		}
		s.Unlock()
	}
}

// --- the service

type server struct {
	redis  *redis.Pool
	pg     *pgxpool.Pool
	cache  *localCache
	prefix string
	ttl    int64 // seconds, Redis verdicts
	pgTO   time.Duration
}

type httpError struct {
	status int
	code   string
	field  string
	detail string
}

func (e *httpError) Error() string { return e.code }

func fieldError(field, detail string) *httpError {
	return &httpError{http.StatusBadRequest, "invalid_field", field, detail}
}

var (
	errMethod    = &httpError{http.StatusMethodNotAllowed, "method_not_allowed", "", "only POST is accepted"}
	errMediaType = &httpError{http.StatusUnsupportedMediaType, "unsupported_media_type", "", "the Content-Type must be application/json"}
	errTooLarge  = &httpError{http.StatusRequestEntityTooLarge, "request_entity_too_large", "", "the body is too large"}
	errConflict  = &httpError{http.StatusConflict, "idempotency_conflict", "", "this id was already used for a transaction with different content"}
	errBackend   = &httpError{http.StatusServiceUnavailable, "backend_unavailable", "", "a backend this transaction needs is unavailable, retry later"}
	errPan       = &httpError{http.StatusBadRequest, "pan_not_accepted", "", "card numbers are not accepted: send a card_token"}
)

func invalidJSON(detail string) *httpError {
	return &httpError{http.StatusBadRequest, "invalid_json", "", detail}
}

func (s *server) handler(full bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, rec, source, err := s.validate(w, r, full)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				he = errBackend
			}
			writeError(w, he, t)
			return
		}
		writeVerdict(w, t, rec, source)
	}
}

func (s *server) validate(w http.ResponseWriter, r *http.Request, full bool) (*txn, record, string, error) {
	if r.Method != http.MethodPost {
		return nil, record{}, "", errMethod
	}
	ct := r.Header.Get("Content-Type")
	if len(ct) < 16 || !strings.EqualFold(ct[:16], "application/json") ||
		(len(ct) > 16 && ct[16] != ';' && ct[16] != ' ' && ct[16] != '\t') {
		return nil, record{}, "", errMediaType
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, record{}, "", errTooLarge
	}
	t, err := parse(body)
	if err != nil {
		return nil, record{}, "", err
	}

	// the local cache, then Redis
	if full {
		if rec, ok := s.cache.get(t.id); ok {
			if rec.fp != t.fp {
				return t, record{}, "", errConflict
			}
			return t, rec, "shm", nil
		}
	}
	if rec, ok := s.redisGet(t); ok {
		if rec.fp != t.fp {
			return t, record{}, "", errConflict
		}
		if full {
			s.cache.put(t.id, rec)
		}
		return t, rec, "redis", nil
	}

	// a new transaction: Postgres and the velocity count at once
	var f facts
	var wg sync.WaitGroup
	var pgErr, velErr error
	if full {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pgErr = s.pgLookup(r.Context(), t, &f)
		}()
	}
	if velocityCount > 0 {
		f.velocityCount, velErr = s.velocity(t)
		f.velocity = velErr == nil
	}
	wg.Wait()
	if pgErr != nil || velErr != nil {
		return t, record{}, "", errBackend
	}

	rec := evaluate(t, &f)
	if full {
		s.cache.put(t.id, rec)
	}
	go s.redisStore(t, rec)
	return t, rec, "computed", nil
}

// --- the transaction

type txnJSON struct {
	ID         *string         `json:"id"`
	Amount     json.RawMessage `json:"amount"`
	Currency   *string         `json:"currency"`
	MerchantID *string         `json:"merchant_id"`
	CardToken  *string         `json:"card_token"`
	CardBin    *string         `json:"card_bin"`
	Country    *string         `json:"country"`
	Pan        json.RawMessage `json:"pan"`
	CardNumber json.RawMessage `json:"card_number"`
}

func idChars(s string, max int) bool {
	if len(s) < 1 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func allIn(s string, n int, lo, hi byte) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < n; i++ {
		if s[i] < lo || s[i] > hi {
			return false
		}
	}
	return true
}

func parse(body []byte) (*txn, error) {
	if len(body) == 0 {
		return nil, invalidJSON("the body is empty")
	}
	var j txnJSON
	if err := json.Unmarshal(body, &j); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return nil, invalidJSON("the body is not a JSON object")
			}
			return nil, fieldError(te.Field, "wrong type")
		}
		return nil, invalidJSON("the body is not valid JSON")
	}
	if j.Pan != nil || j.CardNumber != nil {
		return nil, errPan
	}

	t := &txn{}
	if j.ID == nil || !idChars(*j.ID, 64) {
		return nil, fieldError("id", "1-64 characters of A-Z a-z 0-9 . _ : -")
	}
	t.id = *j.ID

	a := j.Amount
	if len(a) == 0 || !(a[0] == '-' || a[0] >= '0' && a[0] <= '9') {
		return nil, fieldError("amount", "a number is required")
	}
	if n, err := strconv.ParseInt(string(a), 10, 64); err == nil {
		t.amount = n
	} else if f, err := strconv.ParseFloat(string(a), 64); err == nil && f == math.Trunc(f) &&
		f >= -maxSafeInteger && f <= maxSafeInteger {
		t.amount = int64(f)
	} else {
		return nil, fieldError("amount", "an integral number of minor units")
	}
	if t.amount < 1 || t.amount > maxSafeInteger {
		return nil, fieldError("amount", "1 to 9007199254740991 minor units")
	}

	if j.Currency == nil || !allIn(*j.Currency, 3, 'A', 'Z') {
		return nil, fieldError("currency", "3 uppercase letters")
	}
	t.currency = *j.Currency
	if j.MerchantID == nil || !idChars(*j.MerchantID, 64) {
		return nil, fieldError("merchant_id", "1-64 characters of A-Z a-z 0-9 . _ : -")
	}
	t.merchant = *j.MerchantID
	if j.CardToken == nil || !idChars(*j.CardToken, 128) {
		return nil, fieldError("card_token", "1-128 characters of A-Z a-z 0-9 . _ : -")
	}
	t.card = *j.CardToken
	if j.CardBin != nil {
		b := *j.CardBin
		if !(allIn(b, 6, '0', '9') || allIn(b, 7, '0', '9') || allIn(b, 8, '0', '9')) {
			return nil, fieldError("card_bin", "6-8 digits")
		}
		t.bin = b
	}
	if j.Country != nil {
		if !allIn(*j.Country, 2, 'A', 'Z') {
			return nil, fieldError("country", "2 uppercase letters")
		}
		t.country = *j.Country
	}
	t.fp = fingerprint(t)
	return t, nil
}

// FNV-1a 64 over the fields as ngx_http_txval_txn_fingerprint() hashes
// them, so that records are interchangeable with txval's
func fingerprint(t *txn) uint64 {
	h := uint64(0xcbf29ce484222325)
	add := func(b byte) {
		h ^= uint64(b)
		h *= 0x100000001b3
	}
	str := func(s string, n int) {
		for i := 0; i < len(s); i++ {
			add(s[i])
		}
		for i := len(s); i < n; i++ {
			add(0)
		}
	}
	str(t.id, len(t.id)+1)
	for i := 0; i < 8; i++ {
		add(byte(uint64(t.amount) >> (8 * i)))
	}
	str(t.currency, 4)
	str(t.merchant, len(t.merchant)+1)
	str(t.card, len(t.card)+1)
	str(t.bin, len(t.bin)+1)
	str(t.country, 3)
	return h
}

// --- the rules (ngx_http_txval_rules.c)

func evaluate(t *txn, f *facts) record {
	var reasons uint16
	var score uint64
	capKnown := false
	var cap int64

	if t.currency != limitCurrency {
		reasons |= 1 << rCurrencyNotSupported
	} else {
		if t.amount < limitMin || t.amount > limitMax {
			reasons |= 1 << rAmountOutOfRange
		}
		cap, capKnown = limitMax, true
	}

	if f.pg {
		if !f.merchantFound {
			reasons |= 1 << rMerchantUnknown
		} else {
			if !f.merchantActive {
				reasons |= 1 << rMerchantInactive
			}
			if f.merchantHasMax {
				if t.amount > f.merchantMax {
					reasons |= 1 << rMerchantLimitExceeded
				}
				if !capKnown || f.merchantMax < cap {
					cap, capKnown = f.merchantMax, true
				}
			}
			if !f.currencyAllowed {
				reasons |= 1 << rCurrencyNotAllowed
			}
		}
		if f.cardBlocked {
			reasons |= 1 << rCardBlocked
		}
		if f.binBlocked {
			reasons |= 1 << rBinBlocked
		}
		if !f.cardFound {
			score += 20
		}
		if t.country != "" && f.cardCountry != "" && t.country != f.cardCountry {
			score += 30
		}
	}

	if f.velocity && velocityCount > 0 {
		if f.velocityCount > velocityCount {
			reasons |= 1 << rVelocityExceeded
		}
		if 2*f.velocityCount > velocityCount {
			score += 20
		}
	}

	if capKnown && t.amount*2 >= cap {
		score += 30
	}
	if score > 100 {
		score = 100
	}
	if score >= riskThreshold {
		reasons |= 1 << rRiskTooHigh
	}
	return record{fp: t.fp, reasons: reasons, risk: uint8(score)}
}

// --- Redis

func (s *server) redisGet(t *txn) (record, bool) {
	c := s.redis.Get()
	defer c.Close()
	v, err := redis.Bytes(c.Do("GET", s.prefix+"v:"+t.id))
	if err != nil {
		return record{}, false // a failed lookup is a miss, as in txval
	}
	return decodeRecord(v)
}

func (s *server) velocity(t *txn) (uint64, error) {
	key := s.prefix + "vel:" + t.card + ":" +
		strconv.FormatInt(time.Now().Unix()/velocityWindow, 10)
	c := s.redis.Get()
	defer c.Close()
	c.Send("INCR", key)
	c.Send("EXPIRE", key, velocityWindow)
	if err := c.Flush(); err != nil {
		return 0, err
	}
	n, err := redis.Int64(c.Receive())
	if _, err2 := c.Receive(); err == nil {
		err = err2
	}
	if err != nil {
		return 0, err
	}
	return uint64(n), nil
}

func (s *server) redisStore(t *txn, rec record) {
	c := s.redis.Get()
	defer c.Close()
	if _, err := c.Do("SET", s.prefix+"v:"+t.id, encodeRecord(rec), "EX", s.ttl); err != nil {
		log.Printf("redis SET: %v", err)
	}
}

// "1;{reasons hex};{risk};{fingerprint, 16 hex}", as txval stores it
func encodeRecord(rec record) []byte {
	b := make([]byte, 0, 32)
	b = append(b, '1', ';')
	b = strconv.AppendUint(b, uint64(rec.reasons), 16)
	b = append(b, ';')
	b = strconv.AppendUint(b, uint64(rec.risk), 10)
	b = append(b, ';')
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		b = append(b, hex[(rec.fp>>(60-4*i))&0xf])
	}
	return b
}

func decodeRecord(v []byte) (record, bool) {
	p := strings.Split(string(v), ";")
	if len(p) != 4 || p[0] != "1" || len(p[3]) != 16 {
		return record{}, false
	}
	reasons, err1 := strconv.ParseUint(p[1], 16, 16)
	risk, err2 := strconv.ParseUint(p[2], 10, 8)
	fp, err3 := strconv.ParseUint(p[3], 16, 64)
	if err1 != nil || err2 != nil || err3 != nil || risk > 100 ||
		reasons >= 1<<len(reasonNames) {
		return record{}, false
	}
	return record{fp: fp, reasons: uint16(reasons), risk: uint8(risk)}, true
}

// --- Postgres

func (s *server) pgLookup(ctx context.Context, t *txn, f *facts) error {
	ctx, cancel := context.WithTimeout(ctx, s.pgTO)
	defer cancel()
	var mStatus, cStatus, cCountry *string
	var mMax *int64
	var curOK *bool
	var binBlocked bool
	err := s.pg.QueryRow(ctx, pgQuery, t.merchant, t.currency, t.card, t.bin).
		Scan(&mStatus, &mMax, &curOK, &cStatus, &cCountry, &binBlocked)
	if err != nil {
		return err
	}
	f.pg = true
	if mStatus != nil {
		f.merchantFound = true
		f.merchantActive = *mStatus == "active"
		if mMax != nil {
			f.merchantHasMax, f.merchantMax = true, *mMax
		}
		f.currencyAllowed = curOK != nil && *curOK
	}
	if cStatus != nil {
		f.cardFound = true
		switch *cStatus {
		case "blocked", "lost", "stolen":
			f.cardBlocked = true
		}
		if cCountry != nil {
			f.cardCountry = *cCountry
		}
	}
	f.binBlocked = binBlocked
	return nil
}

// --- answers

func writeVerdict(w http.ResponseWriter, t *txn, rec record, source string) {
	b := make([]byte, 0, 256)
	b = append(b, `{"id":"`...)
	b = append(b, t.id...)
	verdict := "approved"
	status := http.StatusOK
	if rec.reasons != 0 {
		verdict, status = "declined", declineStatus
	}
	b = append(b, `","verdict":"`...)
	b = append(b, verdict...)
	b = append(b, `","reasons":[`...)
	first := true
	for i, name := range reasonNames {
		if rec.reasons&(1<<i) != 0 {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, '"')
			b = append(b, name...)
			b = append(b, '"')
		}
	}
	b = append(b, `],"risk_score":`...)
	b = strconv.AppendUint(b, uint64(rec.risk), 10)
	b = append(b, `,"source":"`...)
	b = append(b, source...)
	b = append(b, "\"}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["X-Txval-Verdict"] = []string{verdict}
	h["X-Txval-Source"] = []string{source}
	w.WriteHeader(status)
	w.Write(b)
}

func writeError(w http.ResponseWriter, e *httpError, t *txn) {
	b := make([]byte, 0, 256)
	b = append(b, `{"error":"`...)
	b = append(b, e.code...)
	b = append(b, '"')
	if e.field != "" {
		b = append(b, `,"field":`...)
		b = strconv.AppendQuote(b, e.field)
	}
	if t != nil && e == errConflict {
		b = append(b, `,"id":"`...)
		b = append(b, t.id...)
		b = append(b, '"')
	}
	b = append(b, `,"detail":`...)
	b = strconv.AppendQuote(b, e.detail)
	b = append(b, "}\n"...)
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	switch e.status {
	case http.StatusMethodNotAllowed:
		h["Allow"] = []string{"POST"}
	case http.StatusServiceUnavailable:
		h["Retry-After"] = []string{"1"}
	}
	w.WriteHeader(e.status)
	w.Write(b)
}

func main() {
	listen := flag.String("listen", "127.0.0.1:18485", "address to listen on")
	redisAddr := flag.String("redis", "127.0.0.1:6379", "Redis host:port")
	prefix := flag.String("prefix", "txval:", "Redis key prefix")
	conninfo := flag.String("pg", "", "Postgres connection string")
	ttl := flag.Duration("ttl", 10*time.Minute, "verdict ttl (local cache and Redis)")
	cacheMax := flag.Int("cache-entries", 262144, "local cache size (entries)")
	redisPool := flag.Int("redis-pool", 256, "most Redis connections")
	pgPool := flag.Int("pg-pool", 16, "most Postgres connections")
	redisTO := flag.Duration("redis-timeout", 50*time.Millisecond, "Redis command timeout")
	pgTO := flag.Duration("pg-timeout", 200*time.Millisecond, "Postgres query timeout")
	flag.Parse()

	s := &server{
		prefix: *prefix,
		ttl:    int64(ttl.Seconds()),
		cache:  newLocalCache(*ttl, *cacheMax),
		pgTO:   *pgTO,
		redis: &redis.Pool{
			MaxIdle:     *redisPool,
			MaxActive:   *redisPool,
			Wait:        true,
			IdleTimeout: 60 * time.Second,
			Dial: func() (redis.Conn, error) {
				return redis.Dial("tcp", *redisAddr,
					redis.DialConnectTimeout(100*time.Millisecond),
					redis.DialReadTimeout(*redisTO),
					redis.DialWriteTimeout(*redisTO))
			},
		},
	}

	if *conninfo != "" {
		cfg, err := pgxpool.ParseConfig(*conninfo)
		if err != nil {
			log.Fatalf("pg: %v", err)
		}
		cfg.MaxConns = int32(*pgPool)
		cfg.MinConns = int32(*pgPool)
		pool, err := pgxpool.ConnectConfig(context.Background(), cfg)
		if err != nil {
			log.Fatalf("pg: %v", err)
		}
		s.pg = pool
	}

	mux := http.NewServeMux()
	if s.pg != nil {
		mux.HandleFunc("/v", s.handler(true))
	}
	mux.HandleFunc("/vr", s.handler(false))
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	})

	srv := &http.Server{
		Addr:              *listen,
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	log.Printf("txval-go on %s", *listen)
	log.Fatal(srv.ListenAndServe())
}
