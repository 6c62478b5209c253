package server_test

import (
	"context"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestQueryResultIsBounded: one ExecuteQuery of a few kilobytes may
// ask for MaxRows (10,000) rows of MaxSelectNodes (256) columns, each a
// 255-character field under its own alias. Nothing bounds the result: the
// service builds it whole in memory (etree, then a bytes.Buffer). One
// caller's call must stay within the bar's memory budget (security-bar.md
// L-Hostile: peak RSS ≤ 512 MiB for the whole process) or be refused with a
// clear fault.
func TestQueryResultIsBounded(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		ctx := context.Background()
		address := strings.Repeat("x", 255)
		rows := make([][]any, 10_000)
		for i := range rows {
			rows[i] = []any{"r" + strconv.Itoa(i) + "@example.com", address}
		}
		if err := env.DB.InsertRows(ctx, "nms_recipient", []string{"email", "address"}, rows); err != nil {
			t.Fatal(err)
		}
		var q strings.Builder
		q.WriteString(`<queryDef schema="nms:recipient" operation="select" lineCount="10000"><select>`)
		for i := 0; i < 256; i++ {
			q.WriteString(`<node expr="@address" alias="@a` + strconv.Itoa(i) + `"/>`)
		}
		q.WriteString(`</select></queryDef>`)
		t.Logf("queryDef: %d bytes", q.Len())

		runtime.GC()
		var base runtime.MemStats
		runtime.ReadMemStats(&base)
		var peak atomic.Uint64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var m runtime.MemStats
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
				}
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > peak.Load() {
					peak.Store(m.HeapAlloc)
				}
			}
		}()
		start := time.Now()
		status, body := env.Post(t, "xtk:queryDef#ExecuteQuery", queryCall(token, "entity", q.String()))
		close(stop)
		wg.Wait()
		grew := int64(peak.Load()) - int64(base.HeapAlloc)
		t.Logf("status %d, answer %d bytes in %v, heap grew %d MiB", status, len(body), time.Since(start), grew>>20)
		if strings.Contains(body, "<ExecuteQueryResponse") && (len(body) > 512<<20 || grew > 512<<20) {
			t.Fatalf("one ExecuteQuery answered %d MiB (heap +%d MiB): the result is not bounded", len(body)>>20, grew>>20)
		}
		if !strings.Contains(body, "The result is larger than") {
			t.Fatalf("no clear fault for a result beyond the bound: %.300s", body)
		}
	})
}
