// txval-fresh: freshness under load, for bench/run.sh (issue 19).
//
// While the realistic mix runs against txval (lookup cache with
// notify=), this changes rows at -rate changes a second: every other
// change blocks a card (or, one time in five, suspends a merchant) that
// txval has just cached, and is measured; the others put back one
// changed before. A measured change:
//
//  1. prime: a new transaction of the victim (and a fixed merchant, or
//     the victim merchant and a fixed card), which must be approved: the
//     row is then in txval's lookup cache;
//  2. the UPDATE, autocommit; the clock starts when the UPDATE is sent
//     (so the lag includes the statement and its commit);
//  3. new transactions of the victim, back to back, until one is refused
//     for it (card_blocked, merchant_inactive): the clock stops when that
//     answer is read.
//
// Lines "FRESH <key> <value>" on stdout: samples, p50_us, p90_us, p99_us,
// max_us, mean_us, the count per bucket (le_1ms ... le_500ms, over), lost
// (no refusal within 5 s), skipped (the priming transaction was not
// approved), then "FRESH sample <us>" for each measured change.
//
//	txval-fresh -pg CONNINFO -url http://127.0.0.1:18493/v -rate 20 \
//	            -duration 10s -run ID
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v4/pgxpool"
)

type victim struct {
	merchant bool
	key      string
}

type prober struct {
	url    string
	run    string
	pg     *pgxpool.Pool
	client *http.Client

	mu      sync.Mutex
	seq     int
	lags    []time.Duration
	lost    int
	skipped int
}

func (p *prober) tx(v victim) []byte {
	p.mu.Lock()
	p.seq++
	n := p.seq
	p.mu.Unlock()

	merchant, card := "m_z_1", "tok_z_1"
	if v.merchant {
		merchant = v.key
	} else {
		card = v.key
	}

	return []byte(fmt.Sprintf(`{"id":"fresh_%s_%d","amount":1500,`+
		`"currency":"USD","merchant_id":"%s","card_token":"%s",`+
		`"card_bin":"400001","country":"US"}`, p.run, n, merchant, card))
}

// the status and body of one transaction
func (p *prober) post(v victim) (int, string, error) {
	res, err := p.client.Post(p.url, "application/json",
		bytes.NewReader(p.tx(v)))
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(res.Body)
	res.Body.Close()
	return res.StatusCode, string(body), err
}

func (p *prober) update(v victim, bad bool) error {
	var sql string
	switch {
	case v.merchant && bad:
		sql = "UPDATE merchants SET status = 'suspended' WHERE id = $1"
	case v.merchant:
		sql = "UPDATE merchants SET status = 'active' WHERE id = $1"
	case bad:
		sql = "UPDATE cards SET status = 'blocked' WHERE token = $1"
	default:
		sql = "UPDATE cards SET status = 'active' WHERE token = $1"
	}
	_, err := p.pg.Exec(context.Background(), sql, v.key)
	return err
}

func (p *prober) measure(v victim) {
	reason := `"card_blocked"`
	if v.merchant {
		reason = `"merchant_inactive"`
	}

	// 1. cached, and approved
	status, _, err := p.post(v)
	if err != nil || status != 200 {
		p.mu.Lock()
		p.skipped++
		p.mu.Unlock()
		return
	}

	// 2. the change
	start := time.Now()
	if err := p.update(v, true); err != nil {
		log.Printf("update: %v", err)
		p.mu.Lock()
		p.skipped++
		p.mu.Unlock()
		return
	}

	// 3. until refused for it
	for time.Since(start) < 5*time.Second {
		status, body, err := p.post(v)
		if err == nil && status == 402 && strings.Contains(body, reason) {
			lag := time.Since(start)
			p.mu.Lock()
			p.lags = append(p.lags, lag)
			p.mu.Unlock()
			return
		}
	}

	p.mu.Lock()
	p.lost++
	p.mu.Unlock()
}

func pct(s []time.Duration, q float64) time.Duration {
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func main() {
	conninfo := flag.String("pg", "", "libpq connection string")
	url := flag.String("url", "", "txval's verdict location")
	rate := flag.Float64("rate", 20, "changes a second (half of them measured)")
	duration := flag.Duration("duration", 10*time.Second, "how long")
	run := flag.String("run", fmt.Sprint(time.Now().Unix()), "makes ids unique")
	cards := flag.Int("cards", 1000000, "victims are tok_z_2 .. tok_z_N")
	merchants := flag.Int("merchants", 10000, "and m_z_2 .. m_z_N")
	flag.Parse()

	pool, err := pgxpool.Connect(context.Background(), *conninfo)
	if err != nil {
		log.Fatalf("postgres: %v", err)
	}
	defer pool.Close()

	p := &prober{
		url: *url,
		run: *run,
		pg:  pool,
		client: &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: 64,
				MaxConnsPerHost: 64},
		},
	}

	var (
		wg      sync.WaitGroup
		changed []victim
		measure int
	)

	// victims in a stride over the ranks: each one used once
	nextCard, nextMerchant := 2, 2
	tick := time.NewTicker(time.Duration(float64(time.Second) / *rate))
	defer tick.Stop()
	end := time.Now().Add(*duration)

	for k := 0; time.Now().Before(end); k++ {
		<-tick.C

		if k%2 == 1 && len(changed) > 0 {
			// put one back (a change too, not measured)
			v := changed[0]
			changed = changed[1:]
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.update(v, false)
			}()
			continue
		}

		var v victim
		if measure%5 == 4 {
			v = victim{merchant: true, key: fmt.Sprintf("m_z_%d", nextMerchant)}
			nextMerchant = 2 + (nextMerchant-2+7919)%(*merchants-1)
		} else {
			v = victim{key: fmt.Sprintf("tok_z_%d", nextCard)}
			nextCard = 2 + (nextCard-2+104729)%(*cards-1)
		}
		measure++
		changed = append(changed, v)

		wg.Add(1)
		go func() {
			defer wg.Done()
			p.measure(v)
		}()
	}

	wg.Wait()

	for _, v := range changed {
		p.update(v, false)
	}

	sort.Slice(p.lags, func(i, j int) bool { return p.lags[i] < p.lags[j] })

	var sum time.Duration
	for _, l := range p.lags {
		sum += l
	}
	mean := time.Duration(0)
	if len(p.lags) > 0 {
		mean = sum / time.Duration(len(p.lags))
	}

	fmt.Printf("FRESH samples %d\n", len(p.lags))
	fmt.Printf("FRESH lost %d\n", p.lost)
	fmt.Printf("FRESH skipped %d\n", p.skipped)
	fmt.Printf("FRESH p50_us %d\n", pct(p.lags, 0.50).Microseconds())
	fmt.Printf("FRESH p90_us %d\n", pct(p.lags, 0.90).Microseconds())
	fmt.Printf("FRESH p99_us %d\n", pct(p.lags, 0.99).Microseconds())
	fmt.Printf("FRESH max_us %d\n", pct(p.lags, 1).Microseconds())
	fmt.Printf("FRESH mean_us %d\n", mean.Microseconds())

	bounds := []int{1, 2, 5, 10, 20, 50, 100, 200, 500}
	counts := make([]int, len(bounds)+1)
	for _, l := range p.lags {
		i := 0
		for i < len(bounds) && l > time.Duration(bounds[i])*time.Millisecond {
			i++
		}
		counts[i]++
	}
	for i, b := range bounds {
		fmt.Printf("FRESH le_%dms %d\n", b, counts[i])
	}
	fmt.Printf("FRESH over %d\n", counts[len(bounds)])

	for _, l := range p.lags {
		fmt.Printf("FRESH sample %d\n", l.Microseconds())
	}
}
