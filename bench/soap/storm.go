package main

import (
	"bytes"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"time"
)

// The logon storm (security-bar.md §3-H #45): all but stormLegit of the
// connections log on without pause, half of them as logonOp with its
// password, half as the throw-away operator with a wrong one, each from an
// address of its own; stormLegit connections meanwhile run ExecuteQuery get
// with a token taken before. The bar: at most GOMAXPROCS hashes in flight,
// a wait of at most 2 s then a Server fault "busy", RSS ≤ 300 MiB, no
// crash, and the other calls' p99 ≤ 250 ms.
//
//	go run ./bench/soap -scenarios storm -conns 500 -duration 10s -store sqlite,postgres

const stormLegit = 10

// Kinds of the storm's calls.
const (
	kStormQuery = iota
	kStormLogon
	kStormWrong
)

type stormRow struct{ mixedRow }

// answered is expect, with a fault's faultstring and detail in the
// outcome instead of the envelope's head.
func answered(expect func(int, []byte) string) func(int, []byte) string {
	return func(status int, b []byte) string {
		out := expect(status, b)
		if out != "" && bytes.Contains(b, fault) {
			return fmt.Sprintf("HTTP %d fault %s %s", status, between(b, "<faultstring xsi:type='xsd:string'>", "<"), between(b, "<detail xsi:type='xsd:string'>", "<"))
		}
		return out
	}
}

// logonCheck accepts a Logon's answer (a session token, or for wrong the
// bad-credentials fault) or the hash queue's Busy fault.
func logonCheck(wrong bool) func(int, []byte) string {
	ok := expectResponse("LogonResponse")
	busy := []byte("The server is busy")
	bad := []byte("XSV-350012")
	return func(status int, b []byte) string {
		switch {
		case status == http.StatusOK && bytes.Contains(b, fault) && bytes.Contains(b, busy):
			return "busy"
		case wrong && status == http.StatusOK && bytes.Contains(b, fault) && bytes.Contains(b, bad):
			return ""
		case wrong:
			return fmt.Sprintf("HTTP %d %.300s", status, b)
		}
		return ok(status, b)
	}
}

func runStorm(p *product, conns int, d, warm time.Duration, max int64, admin *sql.DB) stormRow {
	legit := min(stormLegit, conns/2)
	okQuery := answered(expectResponse("ExecuteQueryResponse"))
	mq := queryBody(p.token, p.ids)
	right := logonBody(p.logonOp.login, p.logonOp.password)
	wrong := logonBody(p.victim, "Wrong-"+randomHex(8))
	okLogon, okWrong := logonCheck(false), logonCheck(true)
	scripts := make([]func() op, conns)
	for w := range conns {
		switch {
		case w < legit:
			var k int64
			scripts[w] = func() op {
				k++
				return op{kStormQuery, "xtk:queryDef#ExecuteQuery", mq(k*7 + int64(w)), okQuery}
			}
		case w%2 == 0:
			scripts[w] = func() op { return op{kStormLogon, "xtk:session#Logon", right, okLogon} }
		default:
			scripts[w] = func() op { return op{kStormWrong, "xtk:session#Logon", wrong, okWrong} }
		}
	}
	dr := newDriver(p.soap, 3, scripts, max)
	defer dr.close()
	if warm > 0 {
		dr.run(time.Now().Add(warm))
		dr.collect()
	}
	row := stormRow{measure(p, dr, conns, d, admin)}
	fmt.Fprintf(os.Stderr, "storm   conns=%-3d product-%-8s query p99 %.1f ms  logons %d  busy %d  errors %d\n", conns, p.store,
		ms(pct(row.kinds[kStormQuery].lats, 99)), len(row.kinds[kStormLogon].lats)+len(row.kinds[kStormWrong].lats),
		row.kinds[kStormLogon].busy+row.kinds[kStormWrong].busy, errorsOf(row.kinds))
	return row
}

func reportStorm(rows []stormRow) {
	fmt.Printf("\n#### Logon storm (security-bar #45: %d connections ExecuteQuery get, the rest Logon, half with a wrong password)\n\n", stormLegit)
	fmt.Println("| store | conns | query n / p50 / p99 ms | query errors | Logon ok / busy / wrong answer | wrong password: refused / busy / wrong answer | VmHWM / peak VmRSS MiB | alive | bar: query p99 ≤ 250 ms and 0 errors, RSS ≤ 300 MiB, no crash |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		q, l, w := r.kinds[kStormQuery], r.kinds[kStormLogon], r.kinds[kStormWrong]
		met := q.bad == 0 && len(q.lats) > 0 && pct(q.lats, 99) <= 250*time.Millisecond && r.hwm <= 300*1024 && r.alive
		fmt.Printf("| %s | %d | %d / %.2f / %.2f | %d | %d / %d / %d | %d / %d / %d | %.0f / %.0f | %v | %s |\n", r.store, r.conns,
			len(q.lats), ms(pct(q.lats, 50)), ms(pct(q.lats, 99)), q.bad, len(l.lats), l.busy, l.bad, len(w.lats), w.busy, w.bad,
			mib(r.hwm), mib(r.peakRSS), r.alive, metStr(met))
	}
	for _, r := range rows {
		printWrong(r.mixedRow, []string{"ExecuteQuery", "Logon", "wrong-password Logon"})
	}
}
