package main

// Product-only load scenarios of security-bar.md §3-H (no ceilings, no
// peers), and the soak:
//
//	go run ./bench/soap -scenarios mixed,hostile -conns 10,50 -store sqlite,postgres
//	go run ./bench/soap -soak 30m        # mixed, PostgreSQL, 10 connections
//
//   - mixed (L-Mixed): each connection is one virtual operator (vop01…,
//     privacyRight) on its own keep-alive connection. Its 1st, 51st, 101st…
//     call is a Logon (the calls after it use the new token; sessions are not
//     logged off); of the others ~20 % CreateRequestByName (a distinct value
//     per call), ~70 % ExecuteQuery get of @status by @id over the seeded
//     requests, ~10 % GetUserInfo (a fixed pseudo-random sequence per
//     connection). Reported per operation kind: calls, p50, p99, errors.
//   - hostile (L-Hostile): half of the connections (rounded up) are
//     legitimate operators alternating CreateRequestByName and ExecuteQuery
//     get; the other half loop over the hostile cases below, each connection
//     starting at a different case. Every hostile answer is checked against
//     the exact fault expected (HTTP status, faultcode, ACC code and the
//     detail sentence); anything else is a mismatch. Afterwards no request
//     may exist with a hostile value, and the process must still be alive.
//   - ramped (L-Mixed as security-bar #109 writes it): each connection is one
//     virtual operator that logs on once, the connections' Logons spread
//     evenly over the first 5 s (half the run when it is shorter), then
//     loops over CreateRequestByName (a distinct value per call) and an
//     ExecuteQuery get of the @status of the request it created. mixed is
//     the harder load: a Logon every 50 calls, ~40 a second at 2,000 calls a
//     second, most of two cores hashing.
//   - l-create (L-Create-10 and L-Create-50 of security-bar #106, #107, at
//     10 and 50 connections): each connection is one virtual operator,
//     logged on before the run, sending CreateRequestByName (a distinct
//     value per call) in a closed loop.
//
// The soak runs mixed for the given time and samples every -soak-interval:
// the window's req/s, p99 and errors, and the process's VmRSS, Threads (the
// OS threads of the Go runtime: the binary exposes no goroutine count), open
// FDs (/proc/<pid>/fd) and PostgreSQL backends (pg_stat_activity by the
// application_name the benchmark gives the product). After a 5 s drain it
// samples again and says whether RSS, threads and FDs stayed flat (mean of
// the last quarter's samples within 20 % of the second quarter's).

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var productOnlyScenarios = []string{"mixed", "ramped", "l-create", "hostile", "storm", "logon-rate"}

func splitScenarios(all []string) (classic, productOnly []string) {
	for _, s := range all {
		switch {
		case slices.Contains(productOnlyScenarios, s):
			productOnly = append(productOnly, s)
		case s == "logon" || s == "create" || s == "query":
			classic = append(classic, s)
		default:
			fail("unknown scenario %q", s)
		}
	}
	return classic, productOnly
}

// ---------------------------------------------------------------- bodies

func userInfoBody(token string) []byte {
	return []byte(envelope(`<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string">` + token + `</sessiontoken></m:GetUserInfo>`))
}

// countBody counts the privacy requests whose value starts with prefix.
func countBody(token, prefix string) []byte {
	return []byte(envelope(`<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken xsi:type="xsd:string">` + token +
		`</sessiontoken><entity xsi:type="ns:Element"><queryDef schema="nms:privacyRequest" operation="count"><where><condition expr="@reconciliationValue LIKE '` +
		prefix + `%'"/></where></queryDef></entity></m:ExecuteQuery>`))
}

// countStored counts, through the API, the privacy requests whose value
// starts with prefix ("" and the error when the count failed).
func countStored(p *product, prefix string) string {
	status, body, err := call(http.DefaultClient, p.soap, "xtk:queryDef#ExecuteQuery", countBody(p.token, prefix))
	if cnt := between(body, `count="`, `"`); err == nil && status == 200 && cnt != nil {
		return string(cnt)
	}
	return fmt.Sprintf("count failed: %d %v %.200s", status, err, body)
}

// ---------------------------------------------------------------- driver

// op is one call of a connection; check judges the answer and reports an
// outcome: "" (as expected), "busy" (hostile only: an allowed Busy fault) or
// a description of what went wrong.
type op struct {
	kind   int
	action string
	body   []byte
	check  func(status int, body []byte) string
}

// kindTally accumulates the calls of one kind.
type kindTally struct {
	lats       []time.Duration // of the calls as expected
	bad, busy  int64
	firstBad   string
	transport  int64 // of bad: no HTTP answer at all
	firstTrans string
}

func (k *kindTally) merge(o *kindTally) {
	k.lats = append(k.lats, o.lats...)
	k.bad += o.bad
	k.busy += o.busy
	k.transport += o.transport
	if k.firstBad == "" {
		k.firstBad = o.firstBad
	}
	if k.firstTrans == "" {
		k.firstTrans = o.firstTrans
	}
}

// add counts a call that took lat: outcome "" (as expected), "busy", or
// what was wrong, transport when no HTTP answer came.
func (k *kindTally) add(lat time.Duration, outcome string, transport bool) {
	switch {
	case outcome == "":
		k.lats = append(k.lats, lat)
	case outcome == "busy":
		k.busy++
	default:
		k.bad++
		if transport {
			k.transport++
			if k.firstTrans == "" {
				k.firstTrans = outcome
			}
		}
		if k.firstBad == "" {
			k.firstBad = outcome
		}
	}
}

func (k *kindTally) calls() int64 { return int64(len(k.lats)) + k.bad + k.busy }

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, len(sorted)*p/100)]
}

// driver runs one script per connection, each on its own keep-alive
// connection (its own Transport), bounded by a deadline and a request cap.
type driver struct {
	url     string
	nkinds  int
	scripts []func() op
	clients []*http.Client
	mu      []sync.Mutex
	tallies [][]kindTally // [conn][kind], swapped out by collect
	issued  atomic.Int64
	max     int64
	base    int // first client address number of this driver's connections
}

// drivers numbers the drivers, so each run's clients have fresh addresses
// (a hostile run's spent logon budgets do not follow into the next run).
var drivers atomic.Int64

func newDriver(u string, nkinds int, scripts []func() op, max int64) *driver {
	d := &driver{url: u, nkinds: nkinds, scripts: scripts, max: max, base: int(drivers.Add(1)) * 64,
		mu: make([]sync.Mutex, len(scripts)), tallies: make([][]kindTally, len(scripts))}
	for i := range scripts {
		tr := &http.Transport{MaxIdleConns: 1, MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1,
			DisableCompression: true, IdleConnTimeout: time.Minute}
		d.clients = append(d.clients, &http.Client{Transport: tr, Timeout: 30 * time.Second})
		d.tallies[i] = make([]kindTally, nkinds)
	}
	return d
}

func (d *driver) close() {
	for _, c := range d.clients {
		c.Transport.(*http.Transport).CloseIdleConnections()
	}
}

// run drives every connection until the deadline (or the cap) and returns
// when all are done.
func (d *driver) run(until time.Time) {
	var wg sync.WaitGroup
	for w := range d.scripts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := d.clients[w]
			buf := bytes.NewBuffer(make([]byte, 0, 8192))
			for time.Now().Before(until) {
				if d.issued.Add(1) > d.max {
					return
				}
				o := d.scripts[w]()
				// Each connection is its own client behind the loopback proxy
				// (the product trusts 127.0.0.1), as users behind a load
				// balancer are: the per-address logon limit applies per client.
				req := soapRequest(d.url, o.action, o.body, clientAddr(d.base+w))
				t0 := time.Now()
				resp, err := client.Do(req)
				status := 0
				buf.Reset()
				if err == nil {
					status = resp.StatusCode
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
				}
				lat := time.Since(t0)
				outcome := ""
				if err != nil {
					outcome = "transport: " + err.Error()
				} else {
					outcome = o.check(status, buf.Bytes())
				}
				d.mu[w].Lock()
				d.tallies[w][o.kind].add(lat, outcome, err != nil)
				d.mu[w].Unlock()
			}
		}()
	}
	wg.Wait()
}

// collect returns the tallies since the last collect, merged over the
// connections, latencies sorted.
func (d *driver) collect() []kindTally {
	out := make([]kindTally, d.nkinds)
	for w := range d.scripts {
		d.mu[w].Lock()
		cur := d.tallies[w]
		d.tallies[w] = make([]kindTally, d.nkinds)
		d.mu[w].Unlock()
		for k := range cur {
			out[k].merge(&cur[k])
		}
	}
	for k := range out {
		slices.Sort(out[k].lats)
	}
	return out
}

// ---------------------------------------------------------------- probes

type procSample struct {
	rss, hwm     int64 // kB
	threads, fds int
	pgBackends   int // -1: not measured
	alive        bool
}

func sampleProc(pid int, admin *sql.DB, appName string) procSample {
	s := procSample{pgBackends: -1}
	s.hwm, s.rss = memory(pid)
	s.alive = s.rss >= 0
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Threads:"); ok {
				s.threads, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(ents)
	}
	if admin != nil && appName != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var n int
		if err := admin.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", appName).Scan(&n); err == nil {
			s.pgBackends = n
		}
	}
	return s
}

// peakWatch samples VmRSS (and PostgreSQL backends) every 250 ms until
// stopped, for the peak within a run.
func peakWatch(pid int, admin *sql.DB, appName string) (stop func() (peakRSS int64, peakBackends int)) {
	var peak int64
	peakB := -1
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i++ {
			_, rss := memory(pid)
			peak = max(peak, rss)
			if admin != nil && i%4 == 0 { // once a second
				s := sampleProc(pid, admin, appName)
				peakB = max(peakB, s.pgBackends)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() (int64, int) {
		close(done)
		<-finished
		return peak, peakB
	}
}

// ---------------------------------------------------------------- scripts

var mixedKinds = []string{"Logon", "CreateRequestByName", "ExecuteQuery get", "GetUserInfo"}

const (
	kLogon = iota
	kCreate
	kQuery
	kUserInfo
)

func expectResponse(elem string) func(int, []byte) string {
	want := []byte(elem)
	return func(status int, b []byte) string {
		if status != http.StatusOK || bytes.Contains(b, fault) || !bytes.Contains(b, want) {
			return fmt.Sprintf("HTTP %d %.300s", status, b)
		}
		return ""
	}
}

// mixedScript is the L-Mixed script of one connection: operator o, seed w.
func mixedScript(p *product, o operator, w int, tag string) func() op {
	rng := rand.New(rand.NewPCG(uint64(w)+1, 0x5eed))
	token := ""
	var k, n int64
	okCreate := expectResponse("CreateRequestByNameResponse")
	okQuery := expectResponse("ExecuteQueryResponse")
	okInfo := expectResponse("GetUserInfoResponse")
	logonBodyBytes := logonBody(o.login, o.password)
	return func() op {
		k++
		if (k-1)%50 == 0 || token == "" {
			return logonOp(logonBodyBytes, &token)
		}
		switch r := rng.IntN(100); {
		case r < 20:
			n++
			return op{kCreate, "nms:privacyRequest#CreateRequestByName", createBody(token, tag)(n), okCreate}
		case r < 90:
			return op{kQuery, "xtk:queryDef#ExecuteQuery", queryBody(token, p.ids)(int64(rng.IntN(len(p.ids)))), okQuery}
		default:
			return op{kUserInfo, "xtk:session#GetUserInfo", userInfoBody(token), okInfo}
		}
	}
}

// logonOp is a Logon whose session token, when it is answered, goes to
// token.
func logonOp(body []byte, token *string) op {
	return op{kLogon, "xtk:session#Logon", body, func(status int, b []byte) string {
		t := between(b, "<pstrSessionToken xsi:type='xsd:string'>", "<")
		if status != http.StatusOK || bytes.Contains(b, fault) || len(t) == 0 {
			return fmt.Sprintf("HTTP %d %.300s", status, b)
		}
		*token = string(t)
		return ""
	}}
}

// rampedScript is the script of connection w of conns in the ramped
// scenario: after w×ramp/conns its operator logs on, then it creates a
// request and asks for that request's status, again and again.
func rampedScript(p *product, o operator, w, conns int, ramp time.Duration, tag string) func() op {
	token := ""
	var n, created int64
	started := false
	okQuery := expectResponse("ExecuteQueryResponse")
	logonBodyBytes := logonBody(o.login, o.password)
	return func() op {
		if !started {
			started = true
			time.Sleep(time.Duration(w) * ramp / time.Duration(conns))
		}
		if token == "" {
			return logonOp(logonBodyBytes, &token)
		}
		if created == 0 {
			n++
			return op{kCreate, "nms:privacyRequest#CreateRequestByName", createBody(token, tag)(n), func(status int, b []byte) string {
				id, err := strconv.ParseInt(string(between(b, "<id xsi:type='xsd:int'>", "<")), 10, 64)
				if status != http.StatusOK || bytes.Contains(b, fault) || err != nil || id <= 0 {
					return fmt.Sprintf("HTTP %d %.300s", status, b)
				}
				created = id
				return ""
			}}
		}
		id := created
		created = 0
		return op{kQuery, "xtk:queryDef#ExecuteQuery", queryBody(token, []int64{id})(0), okQuery}
	}
}

// A hostile case: what is sent and the one answer expected.
type hostileCase struct {
	name, expect string
	action       string
	body         []byte
	faultcode    string
	code         string   // ACC code at the start of the faultstring
	details      []string // one of these in the detail ("" = not checked)
	busyAllowed  bool     // a Busy Server fault is an allowed answer (Logon's hash queue)
}

func (h *hostileCase) check(status int, b []byte) string {
	if h.busyAllowed && status == http.StatusOK && bytes.Contains(b, []byte("<faultcode>SOAP-ENV:Server</faultcode>")) &&
		bytes.Contains(b, []byte("The server is busy")) {
		return "busy"
	}
	okDetail := len(h.details) == 0
	for _, d := range h.details {
		okDetail = okDetail || bytes.Contains(b, []byte(d))
	}
	if status != http.StatusOK || !bytes.Contains(b, []byte("<faultcode>"+h.faultcode+"</faultcode>")) ||
		!bytes.Contains(b, []byte("<faultstring xsi:type='xsd:string'>"+h.code)) || !okDetail {
		return fmt.Sprintf("HTTP %d %.400s", status, b)
	}
	return ""
}

// hostileValuePrefix starts every reconciliation value a hostile call
// carries; none may ever be stored.
const hostileValuePrefix = "hostile-"

func signToken(key []byte, claims jwt.RegisteredClaims, method jwt.SigningMethod) string {
	t := jwt.NewWithClaims(method, claims)
	var s string
	var err error
	if method == jwt.SigningMethodNone {
		s, err = t.SignedString(jwt.UnsafeAllowNoneSignatureType)
	} else {
		s, err = t.SignedString(key)
	}
	check(err, "sign token")
	return s
}

func hostileCases(p *product) []hostileCase {
	env := func(inner string) string { return envelope(inner) }
	query := func(token string) []byte { return queryBody(token, p.ids)(0) }
	create := func(token, value string) []byte {
		return []byte(env(`<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken xsi:type="xsd:string">` + token +
			`</sessiontoken><namespaceName xsi:type="xsd:string">defaultNamespace1</namespaceName><reconciliationValue xsi:type="xsd:string">` + value +
			`</reconciliationValue><type xsi:type="xsd:int">1</type><confirmDeletePending xsi:type="xsd:boolean">false</confirmDeletePending><regulation xsi:type="xsd:int">1</regulation></m:CreateRequestByName>`))
	}

	// DOCTYPE with nested entities (billion laughs) and an external one.
	var dt strings.Builder
	dt.WriteString(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY xxe SYSTEM "file:///etc/passwd"><!ENTITY lol0 "lol">`)
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&dt, `<!ENTITY lol%d "%s">`, i, strings.Repeat(fmt.Sprintf("&lol%d;", i-1), 10))
	}
	dt.WriteString(`]>`)
	dt.WriteString(env(`<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken xsi:type="xsd:string">` + p.token +
		`</sessiontoken><namespaceName xsi:type="xsd:string">defaultNamespace1</namespaceName><reconciliationValue xsi:type="xsd:string">` +
		hostileValuePrefix + `&lol9;&xxe;</reconciliationValue><type xsi:type="xsd:int">1</type></m:CreateRequestByName>`))

	// 300 KiB: a CreateRequestByName whose value makes the body 300 KiB.
	big := create(p.token, hostileValuePrefix+strings.Repeat("a", 300<<10-len(create(p.token, hostileValuePrefix))))

	// Nesting: the whole document 40 elements deep (Envelope, Body, method, 37 more).
	deep := []byte(env(`<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken xsi:type="xsd:string">` + p.token +
		`</sessiontoken>` + strings.Repeat("<x>", 37) + strings.Repeat("</x>", 37) + `</m:ExecuteQuery>`))

	// 60,000 siblings (240 KB, under the 256 KiB body limit).
	wide := []byte(env(`<m:ExecuteQuery xmlns:m="urn:xtk:queryDef"><sessiontoken xsi:type="xsd:string">` + p.token +
		`</sessiontoken><entity xsi:type="ns:Element"><queryDef schema="nms:gdprRequest" operation="get">` + strings.Repeat("<n/>", 60_000) +
		`</queryDef></entity></m:ExecuteQuery>`))

	// Malformed: a mismatched end tag.
	malformed := []byte(env(`<m:GetUserInfo xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string">` + p.token + `</m:GetUserInfo>`))

	now := time.Now()
	claims := func(iat, exp time.Time, jti string) jwt.RegisteredClaims {
		return jwt.RegisteredClaims{Issuer: "campaign-privacy", Subject: "1", Audience: jwt.ClaimStrings{"acc-session"},
			IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(exp), ID: jti}
	}
	otherKey := make([]byte, 32)
	copy(otherKey, randomHex(16))
	forged := signToken(otherKey, claims(now, now.Add(time.Hour), randomHex(18)), jwt.SigningMethodHS256)
	algNone := signToken(nil, claims(now, now.Add(time.Hour), randomHex(18)), jwt.SigningMethodNone)
	expired := signToken(p.key, claims(now.Add(-25*time.Hour), now.Add(-time.Hour), randomHex(18)), jwt.SigningMethodHS256)
	unknown := signToken(p.key, claims(now, now.Add(time.Hour), randomHex(18)), jwt.SigningMethodHS256)

	const client, sop1, sessionBad = "SOAP-ENV:Client", "SOP-330001", "XSV-350008"
	return []hostileCase{
		{name: "malformed XML", expect: "Client SOP-330001, not well-formed", action: "xtk:session#GetUserInfo", body: malformed,
			faultcode: client, code: sop1, details: []string{"not well-formed"}},
		{name: "DOCTYPE + entities", expect: "Client SOP-330001, DOCTYPE refused", action: "nms:privacyRequest#CreateRequestByName", body: []byte(dt.String()),
			faultcode: client, code: sop1, details: []string{"DOCTYPE and entity declarations are not allowed"}},
		{name: "300 KiB body", expect: "Client SOP-330001, larger than 262144 bytes", action: "nms:privacyRequest#CreateRequestByName", body: big,
			faultcode: client, code: sop1, details: []string{"The request is larger than"}},
		{name: "depth 40", expect: "Client SOP-330001, nesting depth limit", action: "xtk:queryDef#ExecuteQuery", body: deep,
			faultcode: client, code: sop1, details: []string{"nesting depth limit"}},
		{name: "60,000 siblings", expect: "Client SOP-330001, token/children/element limit", action: "xtk:queryDef#ExecuteQuery", body: wide,
			faultcode: client, code: sop1, details: []string{"token count limit", "children per element limit", "element count limit"}},
		{name: "wrong SOAPAction", expect: "Client SOP-330001, SOAPAction names another method", action: "xtk:queryDef#ExecuteQuery",
			body: create(p.token, hostileValuePrefix+"wrong-action@example.com"), faultcode: client, code: sop1, details: []string{"The SOAPAction names"}},
		{name: "forged token (other key)", expect: "Client XSV-350008", action: "xtk:queryDef#ExecuteQuery", body: query(forged),
			faultcode: client, code: sessionBad},
		{name: "forged token (alg none)", expect: "Client XSV-350008", action: "xtk:queryDef#ExecuteQuery", body: query(algNone),
			faultcode: client, code: sessionBad},
		{name: "expired token (real key)", expect: "Client XSV-350008", action: "xtk:queryDef#ExecuteQuery", body: query(expired),
			faultcode: client, code: sessionBad},
		{name: "unknown session (real key)", expect: "Client XSV-350008", action: "xtk:queryDef#ExecuteQuery", body: query(unknown),
			faultcode: client, code: sessionBad},
		{name: "wrong password Logon", expect: "Client XSV-350012 (Busy allowed)", action: "xtk:session#Logon",
			body: logonBody(p.victim, "Wrong-"+randomHex(8)), faultcode: client, code: "XSV-350012", busyAllowed: true},
	}
}

// ---------------------------------------------------------------- runs

type mixedRow struct {
	store        string
	conns        int
	elapsed      time.Duration
	kinds        []kindTally
	hwm, peakRSS int64 // kB
	pgBackends   int
	alive        bool // the process was still running at the end
	// creates answered with an id (warm-up included) and the requests
	// stored with this run's values: equal when none is lost or duplicated.
	createsAnswered int64
	createsStored   string
}

type hostileRow struct {
	mixedRow
	legit  int
	cases  []hostileCase
	stored string // hostile values found stored ("0" expected)
}

func logonAll(p *product, ops []operator) []string {
	tokens := make([]string, len(ops))
	for i, o := range ops {
		status, body, err := call(http.DefaultClient, p.soap, "xtk:session#Logon", logonBody(o.login, o.password))
		t := between(body, "<pstrSessionToken xsi:type='xsd:string'>", "<")
		if err != nil || status != 200 || len(t) == 0 {
			fail("logon %s on product-%s: %d %v %.300s", o.login, p.store, status, err, body)
		}
		tokens[i] = string(t)
	}
	return tokens
}

func runMixed(p *product, conns int, d, warm time.Duration, max int64, admin *sql.DB, tag string) mixedRow {
	scripts := make([]func() op, conns)
	for w := range conns {
		scripts[w] = mixedScript(p, p.ops[w%len(p.ops)], w, fmt.Sprintf("%s-%d", tag, w))
	}
	return runScripts(p, scripts, d, warm, max, admin, tag)
}

// runRamped runs the ramped scenario for d, its Logons included (no
// warm-up: each operator logs on once, at the start).
func runRamped(p *product, conns int, d time.Duration, admin *sql.DB, tag string) mixedRow {
	ramp := min(rampTime, d/2)
	scripts := make([]func() op, conns)
	for w := range conns {
		scripts[w] = rampedScript(p, p.ops[w%len(p.ops)], w, conns, ramp, fmt.Sprintf("%s-%d", tag, w))
	}
	return runScripts(p, scripts, d, 0, requestCap(d), admin, tag)
}

// requestCap bounds the requests of a run of d that lasts the bar's
// minutes, not a round's seconds: -max-requests, or more for a long run
// (20,000 a second, which no product here reaches).
func requestCap(d time.Duration) int64 { return max(*maxRequests, int64(d.Seconds()*20_000)) }

// rampTime is the time over which the ramped scenario's operators log on.
const rampTime = 5 * time.Second

// runCreates runs l-create: conns operators, logged on before, each
// creating requests in a closed loop.
func runCreates(p *product, conns int, d, warm time.Duration, admin *sql.DB, tag string) mixedRow {
	tokens := logonAll(p, p.ops[:min(conns, len(p.ops))])
	ok := expectResponse("CreateRequestByNameResponse")
	scripts := make([]func() op, conns)
	for w := range conns {
		mk := createBody(tokens[w%len(tokens)], fmt.Sprintf("%s-%d", tag, w))
		var n int64
		scripts[w] = func() op {
			n++
			return op{kCreate, "nms:privacyRequest#CreateRequestByName", mk(n), ok}
		}
	}
	return runScripts(p, scripts, d, warm, requestCap(d), admin, tag)
}

// runScripts drives scripts (calls of mixedKinds, one script a connection,
// their creates' values starting with tag-) for warm, then measures them
// for d, and counts the creates answered and stored.
func runScripts(p *product, scripts []func() op, d, warm time.Duration, maxReq int64, admin *sql.DB, tag string) mixedRow {
	dr := newDriver(p.soap, len(mixedKinds), scripts, maxReq)
	defer dr.close()
	var warmCreates int64
	if warm > 0 {
		dr.run(time.Now().Add(warm))
		warmCreates = int64(len(dr.collect()[kCreate].lats))
	}
	row := measure(p, dr, len(scripts), d, admin)
	row.createsStored = countStored(p, tag+"-")
	row.createsAnswered = warmCreates + int64(len(row.kinds[kCreate].lats))
	return row
}

// measure runs dr for d and returns what it measured of the product: the
// calls, its peak memory and PostgreSQL backends, whether it is alive.
func measure(p *product, dr *driver, conns int, d time.Duration, admin *sql.DB) mixedRow {
	stop := peakWatch(p.proc.pid(), pgAdmin(p, admin), p.appName)
	began := time.Now()
	dr.run(began.Add(d))
	row := mixedRow{store: p.store, conns: conns, elapsed: time.Since(began), kinds: dr.collect()}
	row.ended(p, stop)
	return row
}

// ended records the product's peaks (stop ends peakWatch) and whether it
// is still running.
func (r *mixedRow) ended(p *product, stop func() (int64, int)) {
	r.peakRSS, r.pgBackends = stop()
	r.hwm, _ = memory(p.proc.pid())
	select {
	case <-p.proc.done:
	default:
		r.alive = true
	}
}

// printWrong prints, for each kind of call of r that got a wrong answer,
// how many and the first.
func printWrong(r mixedRow, names []string) {
	for k, name := range names {
		if t := r.kinds[k]; t.firstBad != "" {
			fmt.Printf("\n%s %d conns, %s: %d wrong (%d without an HTTP answer); first: %s\n", r.store, r.conns, name, t.bad, t.transport, oneLine(t.firstBad))
			if t.firstTrans != "" && t.firstTrans != t.firstBad {
				fmt.Printf("  first without an HTTP answer: %s\n", oneLine(t.firstTrans))
			}
		}
	}
}

func pgAdmin(p *product, admin *sql.DB) *sql.DB {
	if p.store != "postgres" {
		return nil
	}
	return admin
}

func runHostile(p *product, conns int, d, warm time.Duration, max int64, admin *sql.DB, tag string) hostileRow {
	legit := (conns + 1) / 2
	cases := hostileCases(p)
	tokens := logonAll(p, p.ops[:min(legit, len(p.ops))])
	scripts := make([]func() op, conns)
	okCreate := expectResponse("CreateRequestByNameResponse")
	okQuery := expectResponse("ExecuteQueryResponse")
	for w := range conns {
		if w < legit {
			token := tokens[w%len(tokens)]
			mk := createBody(token, fmt.Sprintf("%s-%d", tag, w))
			mq := queryBody(token, p.ids)
			var k int64
			scripts[w] = func() op {
				k++
				if k%2 == 1 {
					return op{0, "nms:privacyRequest#CreateRequestByName", mk(k), okCreate}
				}
				return op{1, "xtk:queryDef#ExecuteQuery", mq(k*7 + int64(w)), okQuery}
			}
			continue
		}
		i := w - legit
		scripts[w] = func() op {
			c := &cases[i%len(cases)]
			k := 2 + i%len(cases)
			i++
			return op{k, c.action, c.body, c.check}
		}
	}
	dr := newDriver(p.soap, 2+len(cases), scripts, max)
	defer dr.close()
	var warmCreates int64
	if warm > 0 {
		dr.run(time.Now().Add(warm))
		warmCreates = int64(len(dr.collect()[0].lats))
	}
	row := hostileRow{mixedRow: measure(p, dr, conns, d, admin), legit: legit, cases: cases}
	// Invariants: no hostile value was stored; every legitimate create
	// answered is stored once.
	row.stored = countStored(p, hostileValuePrefix)
	row.createsStored = countStored(p, tag+"-")
	row.createsAnswered = warmCreates + int64(len(row.kinds[0].lats))
	return row
}

func runProductOnly(products []*product, scenarios []string, conns []int, admin *sql.DB) {
	runTag := randomHex(4)
	began := time.Now()
	var mixed, ramped, creates []mixedRow
	var hostile []hostileRow
	var storm []stormRow
	var logonRates []logonRateRow
	for _, sc := range scenarios {
		if sc == "logon-rate" { // an open loop: no connection count
			for _, p := range products {
				logonRates = append(logonRates, runLogonRate(p, *logonRate, *duration, admin))
			}
			continue
		}
		for _, c := range conns {
			for _, p := range products {
				tag := fmt.Sprintf("m%s-%s-%d", runTag, p.store, c)
				switch sc {
				case "mixed":
					r := runMixed(p, c, *duration, *warmup, *maxRequests, admin, tag)
					fmt.Fprintf(os.Stderr, "mixed   conns=%-3d product-%-8s %7.1f req/s  errors %d\n", c, p.store, rps(r.kinds, r.elapsed), errorsOf(r.kinds))
					mixed = append(mixed, r)
				case "ramped":
					r := runRamped(p, c, *duration, admin, "r"+tag)
					fmt.Fprintf(os.Stderr, "ramped  conns=%-3d product-%-8s %7.1f req/s  errors %d\n", c, p.store, rps(r.kinds, r.elapsed), errorsOf(r.kinds))
					ramped = append(ramped, r)
				case "l-create":
					r := runCreates(p, c, *duration, *warmup, admin, "c"+tag)
					fmt.Fprintf(os.Stderr, "l-create conns=%-3d product-%-8s %7.1f req/s  errors %d\n", c, p.store, rps(r.kinds, r.elapsed), errorsOf(r.kinds))
					creates = append(creates, r)
				case "storm":
					storm = append(storm, runStorm(p, c, *duration, *warmup, *maxRequests, admin))
				case "hostile":
					r := runHostile(p, c, *duration, *warmup, *maxRequests, admin, "h"+tag)
					fmt.Fprintf(os.Stderr, "hostile conns=%-3d product-%-8s legit %7.1f req/s  errors %d  mismatches %d\n", c, p.store,
						rps(r.kinds[:2], r.elapsed), errorsOf(r.kinds[:2]), errorsOf(r.kinds[2:]))
					hostile = append(hostile, r)
				}
			}
		}
	}
	fmt.Printf("\nLoad scenarios (product only), %s, GOMAXPROCS %d, %s per run (+%s warm-up), measured in %s\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), *duration, *warmup, time.Since(began).Round(time.Second))
	if len(mixed) > 0 {
		reportMixed(mixed)
	}
	if len(ramped) > 0 {
		reportRamped(ramped)
	}
	if len(creates) > 0 {
		reportCreates(creates)
	}
	if len(hostile) > 0 {
		reportHostile(hostile)
	}
	if len(storm) > 0 {
		reportStorm(storm)
	}
	if len(logonRates) > 0 {
		reportLogonRate(logonRates)
	}
}

func rps(ks []kindTally, d time.Duration) float64 {
	var n int64
	for i := range ks {
		n += int64(len(ks[i].lats))
	}
	return float64(n) / d.Seconds()
}

func errorsOf(ks []kindTally) int64 {
	var n int64
	for i := range ks {
		n += ks[i].bad
	}
	return n
}

func mergeAll(ks []kindTally) kindTally {
	var all kindTally
	for i := range ks {
		all.merge(&ks[i])
	}
	slices.Sort(all.lats)
	return all
}

func mib(kb int64) float64 { return float64(kb) / 1024 }

func reportMixed(rows []mixedRow) {
	reportLoad("L-Mixed (every 50th call a Logon; ~20 % create, ~70 % query get, ~10 % GetUserInfo)", rows, []int{kLogon, kCreate, kQuery, kUserInfo})
}

func reportRamped(rows []mixedRow) {
	reportLoad(fmt.Sprintf("L-Mixed as security-bar #109 writes it (each operator logs on once, the Logons spread over the first %s; then create and the created request's status, in a loop; no warm-up)",
		min(rampTime, *duration/2)), rows, []int{kLogon, kCreate, kQuery})
}

// reportCreates prints l-create's runs, judged by security-bar #106 (10
// connections) or #107 (50; other counts by the nearer).
func reportCreates(rows []mixedRow) {
	fmt.Printf("\n#### L-Create (security-bar #106, #107: one operator a connection, CreateRequestByName in a closed loop)\n\n")
	fmt.Println("| store | conns | req/s | errors | p50 ms | p99 ms | creates answered / stored | VmHWM / peak VmRSS MiB | PG backends (peak) | bar |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		t := r.kinds[kCreate]
		p99, rate := 30*time.Millisecond, 500.0 // #106
		if r.conns > 30 {
			p99, rate = 100*time.Millisecond, 400 // #107
		}
		met := errorsOf(r.kinds) == 0 && pct(t.lats, 99) <= p99 && rps(r.kinds, r.elapsed) >= rate && r.pgBackends <= poolMax
		bar := fmt.Sprintf("0 errors, p99 ≤ %.0f ms, ≥ %.0f req/s", ms(p99), rate)
		if r.pgBackends >= 0 {
			bar += fmt.Sprintf(", ≤ %d backends", poolMax)
		}
		fmt.Printf("| %s | %d | %.0f | %d | %.2f | %.2f | %d / %s | %.0f / %.0f | %s | %s: %s |\n",
			r.store, r.conns, rps(r.kinds, r.elapsed), errorsOf(r.kinds), ms(pct(t.lats, 50)), ms(pct(t.lats, 99)), r.createsAnswered, r.createsStored,
			mib(r.hwm), mib(r.peakRSS), backends(r.pgBackends), bar, metStr(met))
	}
	for _, r := range rows {
		if t := r.kinds[kCreate]; t.firstBad != "" {
			fmt.Printf("\n%s %d conns: %d errors (%d without an HTTP answer); first: %s\n", r.store, r.conns, t.bad, t.transport, oneLine(t.firstBad))
		}
	}
}

// poolMax is the product's PostgreSQL pool size as the benchmark starts it
// (the default, CP_DB_MAX_CONNS unset).
const poolMax = 10

// reportLoad prints a table of runs of mixedKinds' calls (those of kinds),
// judged by security-bar #109's bar.
func reportLoad(title string, rows []mixedRow, kinds []int) {
	fmt.Printf("\n#### %s\n\n", title)
	head := "| store | conns | req/s | errors |"
	for _, k := range kinds {
		head += fmt.Sprintf(" %s n / p50 / p99 ms |", mixedKinds[k])
	}
	fmt.Println(head + " all p99 ms | creates answered / stored | VmHWM / peak VmRSS MiB | PG backends (peak) | bar: 0 errors, create p99 ≤ 100 ms, Logon p99 ≤ 500 ms |")
	fmt.Println("|---|---|---|---|" + strings.Repeat("---|", len(kinds)) + "---|---|---|---|---|")
	for _, r := range rows {
		line := fmt.Sprintf("| %s | %d | %.0f | %d |", r.store, r.conns, rps(r.kinds, r.elapsed), errorsOf(r.kinds))
		for _, k := range kinds {
			t := r.kinds[k]
			line += fmt.Sprintf(" %d / %.2f / %.2f |", len(t.lats), ms(pct(t.lats, 50)), ms(pct(t.lats, 99)))
		}
		all := mergeAll(r.kinds)
		met := errorsOf(r.kinds) == 0 && pct(r.kinds[kCreate].lats, 99) <= 100*time.Millisecond && pct(r.kinds[kLogon].lats, 99) <= 500*time.Millisecond
		line += fmt.Sprintf(" %.2f | %d / %s | %.0f / %.0f | %s | %s |", ms(pct(all.lats, 99)), r.createsAnswered, r.createsStored,
			mib(r.hwm), mib(r.peakRSS), backends(r.pgBackends), metStr(met))
		fmt.Println(line)
	}
	for _, r := range rows {
		for k, name := range mixedKinds {
			if t := r.kinds[k]; t.firstBad != "" {
				fmt.Printf("\n%s %d conns, %s: %d errors (%d without an HTTP answer); first: %s\n", r.store, r.conns, name, t.bad, t.transport, oneLine(t.firstBad))
			}
		}
	}
}

func backends(n int) string {
	if n < 0 {
		return "–"
	}
	return strconv.Itoa(n)
}

func metStr(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func reportHostile(rows []hostileRow) {
	fmt.Printf("\n#### L-Hostile (half the connections legitimate create/query, half hostile)\n\n")
	fmt.Println("| store | conns (legit + hostile) | legit req/s | legit p50 ms | legit p99 ms | legit errors | hostile calls | as expected | busy | mismatches | hostile values stored | legit creates answered / stored | alive | VmHWM / peak VmRSS MiB | PG backends (peak) | bar: legit 0 errors, p99 ≤ 250 ms, RSS ≤ 512 MiB, no crash |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		legit := mergeAll(r.kinds[:2])
		var calls, asExpected, busy, bad int64
		for k := 2; k < len(r.kinds); k++ {
			t := r.kinds[k]
			calls += t.calls()
			asExpected += int64(len(t.lats))
			busy += t.busy
			bad += t.bad
		}
		met := legit.bad == 0 && pct(legit.lats, 99) <= 250*time.Millisecond && r.hwm <= 512*1024 && r.alive
		fmt.Printf("| %s | %d (%d + %d) | %.0f | %.2f | %.2f | %d | %d | %d | %d | %d | %s | %d / %s | %v | %.0f / %.0f | %s | %s |\n",
			r.store, r.conns, r.legit, r.conns-r.legit, rps(r.kinds[:2], r.elapsed), ms(pct(legit.lats, 50)), ms(pct(legit.lats, 99)), legit.bad,
			calls, asExpected, busy, bad, r.stored, r.createsAnswered, r.createsStored, r.alive, mib(r.hwm), mib(r.peakRSS), backends(r.pgBackends), metStr(met))
	}
	fmt.Printf("\nPer hostile case: calls / mismatches (p99 ms of the expected answers), per run\n\n")
	head, sep := "| case | expected answer |", "|---|---|"
	for _, r := range rows {
		head += fmt.Sprintf(" %s %d |", r.store, r.conns)
		sep += "---|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for i, c := range rows[0].cases {
		line := fmt.Sprintf("| %s | %s |", c.name, c.expect)
		for _, r := range rows {
			t := r.kinds[2+i]
			cell := fmt.Sprintf(" %d / %d (%.1f)", t.calls(), t.bad, ms(pct(t.lats, 99)))
			if t.busy > 0 {
				cell += fmt.Sprintf(", busy %d", t.busy)
			}
			line += cell + " |"
		}
		fmt.Println(line)
	}
	for _, r := range rows {
		names := []string{"legit CreateRequestByName", "legit ExecuteQuery"}
		for _, c := range r.cases {
			names = append(names, c.name)
		}
		printWrong(r.mixedRow, names)
	}
}

// ---------------------------------------------------------------- soak

type soakSample struct {
	at       time.Duration
	reqs     float64
	p99      time.Duration
	errs     int64
	proc     procSample
	kindP99s [4]time.Duration
}

func runSoak(p *product, conns int, d, every time.Duration, admin *sql.DB) {
	if every <= 0 || every > d {
		fail("bad -soak-interval %s for -soak %s", every, d)
	}
	pid := p.proc.pid()
	padmin := pgAdmin(p, admin)
	// Settle, then the baseline.
	time.Sleep(2 * time.Second)
	base := sampleProc(pid, padmin, p.appName)
	fmt.Fprintf(os.Stderr, "soak: mixed on product-%s, %d connections, %s, sample every %s; baseline RSS %.0f MiB, threads %d, FDs %d, PG backends %s\n",
		p.store, conns, d, every, mib(base.rss), base.threads, base.fds, backends(base.pgBackends))

	scripts := make([]func() op, conns)
	tag := "s" + randomHex(4)
	for w := range conns {
		scripts[w] = mixedScript(p, p.ops[w%len(p.ops)], w, fmt.Sprintf("%s-%d", tag, w))
	}
	capReq := requestCap(d)
	dr := newDriver(p.soap, len(mixedKinds), scripts, capReq)
	began := time.Now()
	done := make(chan struct{})
	go func() {
		dr.run(began.Add(d))
		close(done)
	}()
	var samples []soakSample
	var total kindTally
	var totalByKind [4]kindTally
	last := began
	fmt.Println()
	fmt.Printf("Soak, %s, GOMAXPROCS %d: mixed on product-%s, %d connections, %s, sampled every %s (request cap %d)\n\n",
		time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0), p.store, conns, d, every, capReq)
	fmt.Println("| t | req/s | p99 ms | errors | VmRSS MiB | VmHWM MiB | threads | FDs | PG backends |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	fmt.Printf("| baseline | | | | %.0f | %.0f | %d | %d | %s |\n", mib(base.rss), mib(base.hwm), base.threads, base.fds, backends(base.pgBackends))
	tick := time.NewTicker(every)
	defer tick.Stop()
	finished := false
	for !finished {
		select {
		case <-tick.C:
		case <-done:
			finished = true
		}
		now := time.Now()
		ks := dr.collect()
		all := mergeAll(ks)
		ps := sampleProc(pid, padmin, p.appName)
		s := soakSample{at: now.Sub(began), reqs: float64(len(all.lats)) / now.Sub(last).Seconds(), p99: pct(all.lats, 99), errs: all.bad, proc: ps}
		for k := range ks {
			s.kindP99s[k] = pct(ks[k].lats, 99)
			totalByKind[k].merge(&ks[k])
		}
		total.merge(&all)
		if finished && now.Sub(last) < every/2 && len(samples) > 0 {
			break // a sliver after the last tick: in the totals only
		}
		last = now
		samples = append(samples, s)
		fmt.Printf("| %s | %.0f | %.2f | %d | %.0f | %.0f | %d | %d | %s |\n", s.at.Round(time.Second), s.reqs, ms(s.p99), s.errs,
			mib(ps.rss), mib(ps.hwm), ps.threads, ps.fds, backends(ps.pgBackends))
		if !ps.alive {
			fmt.Println("\nthe product process is gone")
			break
		}
	}
	<-done
	dr.close()
	time.Sleep(5 * time.Second)
	drained := sampleProc(pid, padmin, p.appName)
	fmt.Printf("| after 5 s drain | | | | %.0f | %.0f | %d | %d | %s |\n", mib(drained.rss), mib(drained.hwm), drained.threads, drained.fds, backends(drained.pgBackends))

	slices.Sort(total.lats)
	elapsed := time.Since(began) - 5*time.Second
	fmt.Printf("\nWhole soak: %d calls as expected (%.0f req/s), %d errors, p50 %.2f ms, p99 %.2f ms; per kind p99:",
		len(total.lats), float64(len(total.lats))/elapsed.Seconds(), total.bad, ms(pct(total.lats, 50)), ms(pct(total.lats, 99)))
	for k, name := range mixedKinds {
		slices.Sort(totalByKind[k].lats)
		fmt.Printf(" %s %.2f ms (n %d, errors %d);", name, ms(pct(totalByKind[k].lats, 99)), len(totalByKind[k].lats), totalByKind[k].bad)
	}
	fmt.Println()
	if total.firstBad != "" {
		fmt.Printf("first error: %s\n", oneLine(total.firstBad))
	}

	// Flatness: the samples of the last quarter against those of the
	// second, each sample placed by the middle of its window.
	quarter := func(q int) []procSample {
		var out []procSample
		for _, s := range samples {
			if min(int((s.at-every/2)*4/d)+1, 4) == q {
				out = append(out, s.proc)
			}
		}
		return out
	}
	q2, q4 := quarter(2), quarter(4)
	mean := func(ss []procSample, f func(procSample) float64) float64 {
		var t float64
		for _, s := range ss {
			t += f(s)
		}
		return t / float64(len(ss))
	}
	if len(q2) == 0 || len(q4) == 0 {
		fmt.Println("\nToo few samples for the flatness check (need one in the second and one in the last quarter).")
		return
	}
	fmt.Printf("\nFlatness (mean of the last quarter's samples vs the second quarter's, %d vs %d samples; flat = within 20 %%):\n\n", len(q4), len(q2))
	fmt.Println("| measure | 2nd quarter | last quarter | change | flat | slope per 10 min (linear fit, all samples) |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, m := range []struct {
		name string
		f    func(procSample) float64
	}{
		{"VmRSS MiB", func(s procSample) float64 { return mib(s.rss) }},
		{"open FDs", func(s procSample) float64 { return float64(s.fds) }},
		{"threads", func(s procSample) float64 { return float64(s.threads) }},
	} {
		a, b := mean(q2, m.f), mean(q4, m.f)
		change := (b - a) / a
		flat := change <= 0.2 && change >= -0.2
		fmt.Printf("| %s | %.1f | %.1f | %+.1f %% | %v | %+.2f |\n", m.name, a, b, 100*change, flat, slope(samples, m.f)*600)
	}
	peakB := -1
	for _, s := range samples {
		peakB = max(peakB, s.proc.pgBackends)
	}
	if peakB >= 0 {
		fmt.Printf("\nPostgreSQL backends of the product: at most %d in the samples (pool max 10).\n", peakB)
	}
	fmt.Printf("\nAfter the drain vs the baseline: VmRSS %+.0f MiB, threads %+d, FDs %+d, PG backends %s → %s.\n",
		mib(drained.rss-base.rss), drained.threads-base.threads, drained.fds-base.fds, backends(base.pgBackends), backends(drained.pgBackends))
}

// slope is the least-squares slope of f over the samples, per second.
func slope(ss []soakSample, f func(procSample) float64) float64 {
	if len(ss) < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, s := range ss {
		x, y := s.at.Seconds(), f(s.proc)
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	n := float64(len(ss))
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

// clientAddr is the address connection w claims through the trusted
// loopback proxy.
func clientAddr(w int) string { return fmt.Sprintf("10.%d.%d.1", (w/250)%250, w%250) }
