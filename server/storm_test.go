package server_test

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestLogonStormLeavesRoomForOtherCalls (security-bar #45): logons waiting
// for a hash slot do not count against the calls in flight, so a storm of
// them cannot get every other call refused as busy. Here 3 calls may be in
// flight and one hash runs at a time, and 20 clients log on again and
// again for 1.5 s; the other calls made meanwhile must all be answered.
func TestLogonStormLeavesRoomForOtherCalls(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{
		Session: func(c *session.Config) { c.HashSlots, c.HashWait = 1, 2*time.Second },
		Server: func(c *server.Config) {
			c.Limits = server.DefaultLimits
			c.Limits.MaxInFlight = 3
		},
	})
	env.Operator(t, "storm", "Storm-password-1")
	token, _ := env.Logon(t, "storm", "Storm-password-1")

	var ok, busy atomic.Int32
	var wg sync.WaitGroup
	until := time.Now().Add(1500 * time.Millisecond)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(until) {
				switch body := postAny(env, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("storm", "Storm-password-1"))); {
				case strings.Contains(body, "<LogonResponse"):
					ok.Add(1)
				case strings.Contains(body, "The server is busy"):
					busy.Add(1)
				}
			}
		}()
	}
	t.Cleanup(wg.Wait)
	time.Sleep(300 * time.Millisecond)
	for i := range 5 {
		if body := postAny(env, "xtk:session#GetUserInfo", userInfoCall(token)); !strings.Contains(body, "<GetUserInfoResponse") {
			t.Fatalf("call %d during the logon storm: %s", i, body)
		}
	}
	wg.Wait()
	if ok.Load() == 0 {
		t.Fatalf("no logon went through the storm (%d busy)", busy.Load())
	}
}

// postAny sends a SOAP call from any goroutine and returns the answer's body
// (or the transport error's text).
func postAny(env *servertest.Env, action, envelope string) string {
	_, body, err := servertest.Send(http.DefaultClient, env.URL, action, envelope)
	if err != nil {
		return err.Error()
	}
	return body
}
