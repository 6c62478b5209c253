package main

import (
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestSIGTERMUnderCreateLoad (security-bar #12): 50 clients create
// requests against the real binary, each value its own, when it gets
// SIGTERM. The creates are held 5 s in their handlers (CP_FAILPOINT: the
// first sleeps, the others wait for it), and the signal comes 1 s in, so
// that the calls are surely in flight at it. It exits 0 within 30 s, and
// every call it took before the signal is answered with its id after it,
// never a fault: each id answered is stored, whole, with its value, the
// audit chain verifies, and no value whose call ended without an answer
// (a connection closed or refused after the signal) was stored — a call
// the server took is never left in doubt.
func TestSIGTERMUnderCreateLoad(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env, url, token, cmd, out := createsBinary(t, dialect, "CP_FAILPOINT=soap:nms:privacyRequest#CreateRequestByName:sleep=5s")
			var (
				mu         sync.Mutex
				answered   = map[int64]string{}
				unanswered = map[string]bool{}
				faults     []string
				count      atomic.Int64
				signalled  atomic.Bool
				after      int // ids answered after the signal: calls in flight at it
				wg         sync.WaitGroup
			)
			client := &http.Client{Timeout: 30 * time.Second}
			for g := range 50 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						value := fmt.Sprintf("term-%d-%d@example.com", g, i)
						body, err := soapCall(client, url, "nms:privacyRequest#CreateRequestByName", createCall(token, value))
						mu.Lock()
						if err != nil {
							unanswered[value] = true
							mu.Unlock()
							return // the server stopped taking calls
						}
						id, perr := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
						if perr != nil {
							faults = append(faults, body)
						} else {
							answered[id] = value
							if signalled.Load() {
								after++
							}
						}
						mu.Unlock()
						count.Add(1)
					}
				}()
			}
			time.Sleep(time.Second) // the creates are held in their handlers
			if n := count.Load(); n != 0 {
				t.Fatalf("%d calls answered before the signal: the creates were not held\n%s", n, out)
			}
			at := time.Now()
			signalled.Store(true)
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case err := <-exited:
				var exit *exec.ExitError
				if errors.As(err, &exit) || err != nil {
					t.Fatalf("exit after SIGTERM: %v\n%s", err, out)
				}
			case <-time.After(30 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("still running 30 s after SIGTERM\n%s", out)
			}
			stopped := time.Since(at)
			wg.Wait()
			mu.Lock()
			defer mu.Unlock()
			if after == 0 {
				t.Fatal("no call held in its handler at the signal was answered")
			}
			if len(faults) > 0 {
				t.Fatalf("%d calls answered with a fault under the shutdown, the first:\n%s", len(faults), faults[0])
			}
			byID, total := storedRequests(t, env)
			for id, value := range answered {
				if r, ok := byID[id]; !ok || r.ReconciliationValue != value {
					t.Fatalf("request %d was answered for %s but is not stored with it", id, value)
				}
			}
			for _, r := range byID {
				if unanswered[r.ReconciliationValue] {
					t.Fatalf("%s is stored, but its call ended without an answer: a call the server took was left in doubt", r.ReconciliationValue)
				}
			}
			t.Logf("%d ids answered (%d rows stored; %d of them after the signal), %d calls unanswered; exited %s after the signal",
				len(answered), total, after, len(unanswered), stopped.Round(time.Millisecond))
		})
	}
}
