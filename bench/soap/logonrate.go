package main

import (
	"bytes"
	"database/sql"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// L-Logon as security-bar.md §3-H #108 writes it: an open loop of -logon-rate
// Logons a second for the run's time, each sent at its appointed moment
// whether or not the ones before have been answered (as many clients do,
// not as a fixed set of connections waiting their turn), the virtual
// operators in turn, each from an address of its own. A Logon's latency
// runs from its appointed moment, so a server that falls behind is charged
// for the wait. The bar: 0 errors, p99 ≤ 150 ms, RSS ≤ 256 MiB.
//
//	go run ./bench/soap -scenarios logon-rate -duration 60s -store sqlite,postgres

var logonRate = flag.Float64("logon-rate", 20, "Logons a second of the logon-rate scenario (security-bar #108: 20)")

type logonRateRow struct {
	mixedRow
	rate float64
	late time.Duration // the latest a Logon was sent after its moment
}

func runLogonRate(p *product, rate float64, d time.Duration, admin *sql.DB) logonRateRow {
	if rate <= 0 || rate > 1000 {
		fail("-logon-rate %g: between 0 and 1000 Logons a second", rate)
	}
	tr := &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256, DisableCompression: true, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	// Warm the product up, and a few connections with it, unmeasured.
	for i := range 4 {
		o := p.ops[i%len(p.ops)]
		if status, body, err := call(client, p.soap, "xtk:session#Logon", logonBody(o.login, o.password)); err != nil || status != http.StatusOK || bytes.Contains(body, fault) {
			fail("logon-rate warm-up on product-%s: %d %v %.300s", p.store, status, err, body)
		}
	}

	var mu sync.Mutex
	var t kindTally
	var late time.Duration
	var wg sync.WaitGroup
	check := expectResponse("LogonResponse")
	every := time.Duration(float64(time.Second) / rate)
	stop := peakWatch(p.proc.pid(), pgAdmin(p, admin), p.appName)
	began := time.Now()
	for i := 0; ; i++ {
		at := began.Add(time.Duration(i) * every)
		if at.After(began.Add(d)) {
			break
		}
		time.Sleep(time.Until(at))
		o := p.ops[i%len(p.ops)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			sent := time.Now()
			status, body, err := callFrom(client, p.soap, "xtk:session#Logon", logonBody(o.login, o.password), clientAddr(i%len(p.ops)))
			outcome := ""
			if err != nil {
				outcome = "transport: " + err.Error()
			} else {
				outcome = check(status, body)
			}
			lat := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			late = max(late, sent.Sub(at))
			t.add(lat, outcome, err != nil)
		}()
	}
	wg.Wait()
	row := logonRateRow{rate: rate, mixedRow: mixedRow{store: p.store, elapsed: time.Since(began)}}
	row.ended(p, stop)
	slices.Sort(t.lats)
	row.kinds = []kindTally{t}
	row.late = late
	fmt.Fprintf(os.Stderr, "logon-rate %.0f/s product-%-8s p99 %.1f ms  errors %d\n", rate, p.store, ms(pct(t.lats, 99)), t.bad)
	return row
}

func reportLogonRate(rows []logonRateRow) {
	fmt.Printf("\n#### L-Logon as security-bar #108 writes it (an open loop: each Logon sent at its moment, its latency from that moment)\n\n")
	fmt.Println("| store | Logons/s asked | run s | Logons answered | errors | p50 ms | p99 ms | max ms | latest send after its moment ms | VmHWM / peak VmRSS MiB | alive | bar: 0 errors, p99 ≤ 150 ms, RSS ≤ 256 MiB |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		t := r.kinds[0]
		met := t.bad == 0 && pct(t.lats, 99) <= 150*time.Millisecond && max(r.hwm, r.peakRSS) <= 256*1024 && r.alive
		fmt.Printf("| %s | %.0f | %.0f | %d | %d | %.2f | %.2f | %.2f | %.2f | %.0f / %.0f | %v | %s |\n", r.store, r.rate, r.elapsed.Seconds(),
			len(t.lats), t.bad, ms(pct(t.lats, 50)), ms(pct(t.lats, 99)), ms(pct(t.lats, 100)), ms(r.late), mib(r.hwm), mib(r.peakRSS), r.alive, metStr(met))
	}
	for _, r := range rows {
		if t := r.kinds[0]; t.firstBad != "" {
			fmt.Printf("\n%s: %d errors (%d without an HTTP answer); first: %s\n", r.store, t.bad, t.transport, oneLine(t.firstBad))
		}
	}
}
