package main

// The product's SOAP handler in-process (internal/servertest on PostgreSQL,
// or SQLite with -soap.store sqlite; logging at warn as the benchmark's
// server), under the calls of the load driver, ten at a time on two cores —
// for a CPU profile of where a call's time goes (create, query, logon):
//
//	go test -run '^$' -bench Profile/create -benchtime 15000x ./bench/soap -args -soap.cpuprofile /tmp/soap.pprof
//	go tool pprof -top -nodecount 25 /tmp/soap.pprof.create
//	go test -run '^$' -bench Profile/logon -benchtime 300x ./bench/soap -args -soap.store sqlite -soap.cpuprofile /tmp/soap.pprof
//
// -soap.cpuprofile covers only the timed calls (not the set-up: operator,
// logon, the requests a query reads). The profile holds the HTTP client too
// (same process); read the server's part with -focus handleSOAP.

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

var profileStore = flag.String("soap.store", "postgres", "the store BenchmarkProfile runs on: postgres or sqlite")

var profileCallers = flag.Int("soap.callers", 10, "concurrent callers of BenchmarkProfile (a multiple of GOMAXPROCS)")

var cpuProfile = flag.String("soap.cpuprofile", "", "write a CPU profile of the timed calls of each BenchmarkProfile sub-benchmark to this file (the sub-benchmark's name is appended)")

func BenchmarkProfile(b *testing.B) {
	for _, sc := range []string{"create", "query", "logon"} {
		b.Run(sc, func(b *testing.B) { profileScenario(b, sc) })
	}
}

func profileScenario(b *testing.B, scenario string) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	env := servertest.New(b, *profileStore, servertest.Options{
		Session: func(c *session.Config) { c.Logger = quiet },
		// The create quota off, as the benchmark's server has it
		// (CP_CREATE_RATE=0): throughput, not the quota.
		Privacy: func(c *privacy.Config) { c.Logger, c.CreateRate = quiet, -1 },
		Server:  func(c *server.Config) { c.Logger = quiet },
		Web:     func(c *web.Config) { c.Logger = quiet },
	})
	const password = "Bench-password-123"
	env.Operator(b, "bench", password, "privacyRight")
	token, _ := env.Logon(b, "bench", password)
	u := env.URL + "/nl/jsp/soaprouter.jsp"
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	action := "nms:privacyRequest#CreateRequestByName"
	mk := createBody(token, "profile-"+randomHex(4))
	if scenario == "query" {
		var ids []int64
		for i := range 1000 {
			status, body, err := call(client, u, action, createBody(token, "seed")(int64(i)))
			id, perr := strconv.ParseInt(string(between(body, "<id xsi:type='xsd:int'>", "<")), 10, 64)
			if err != nil || status != 200 || perr != nil {
				b.Fatalf("seed: %d %v %s", status, err, body)
			}
			ids = append(ids, id)
		}
		action, mk = "xtk:queryDef#ExecuteQuery", queryBody(token, ids)
	}
	if scenario == "logon" {
		action, mk = "xtk:session#Logon", func(int64) []byte { return logonBody("bench", password) }
	}
	var n, errs atomic.Int64
	b.SetParallelism(*profileCallers / runtime.GOMAXPROCS(0)) // 10 callers on two cores by default
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile + "." + scenario)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			status, body, err := call(client, u, action, mk(n.Add(1)))
			if err != nil || status != 200 || bytes.Contains(body, fault) {
				errs.Add(1)
			}
		}
	})
	b.StopTimer()
	if e := errs.Load(); e > 0 {
		b.Fatalf("%d errors", e)
	}
	if batches, rows := env.DB.CreateBatches(); scenario == "create" && batches > 0 {
		b.ReportMetric(float64(rows)/float64(batches), "creates/batch")
	}
}
