package web_test

import (
	"flag"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

var (
	downloadStore = flag.String("download.store", "sqlite", "the store BenchmarkDownload runs on: sqlite or postgres")
	downloadLogs  = flag.Int("download.logs", 3000, "delivery logs of BenchmarkDownload's subject (3,000: about 0.8 MB)")
)

// BenchmarkDownload: GET /nms/gdpr.jssp of one collected file of about
// 1 MB (3,000 varied delivery logs, SQLite; -download.store and
// -download.logs for others) over HTTP with the session's
// tokens, as an operator's client downloads it: the path whose fixed
// cost (the session check, the request's and the export's rows, the
// key, the first chunk) bench/download measures against ServeContent.
//
//	go test -run '^$' -bench Download -benchtime 2000x -cpuprofile /tmp/dl.pprof ./web
//	scripts/with-test-postgres go test -run '^$' -bench Download -benchtime 300x ./web -args -download.store postgres -download.logs 30000
func BenchmarkDownload(b *testing.B) {
	env := servertest.New(b, *downloadStore, servertest.Options{})
	env.VariedSubject(b, *downloadLogs)
	env.Operator(b, "ana", "ana password", session.RightPrivacy)
	id := env.CollectedAccess(b, &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}, servertest.BigSubjectEmail)
	token, security := env.Logon(b, "ana", "ana password")
	client := &http.Client{Timeout: 30 * time.Second}
	get := func() int64 {
		req, _ := http.NewRequest(http.MethodGet, env.URL+"/nms/gdpr.jssp?id="+strconv.FormatInt(id, 10), nil)
		req.Header.Set("X-Session-Token", token)
		req.Header.Set("X-Security-Token", security)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("download: %d, %d bytes, %v", resp.StatusCode, n, err)
		}
		return n
	}
	b.SetBytes(get())
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
}
