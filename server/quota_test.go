package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// quotaCounter records the OnQuotaRefused calls (the metrics hook).
type quotaCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (q *quotaCounter) inc(quota string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.n[quota]++
}

func (q *quotaCounter) get(quota string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n[quota]
}

func countRequests(t *testing.T, env *servertest.Env) int64 {
	t.Helper()
	_, n, err := env.DB.FindRequests(context.Background(), store.RequestFilter{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// scrapedMetric fails unless GET /metrics has the line want.
func scrapedMetric(t *testing.T, env *servertest.Env, want string) {
	t.Helper()
	resp, err := http.Get(env.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == want {
			return
		}
	}
	t.Fatalf("/metrics has no line %q:\n%s", want, b)
}

// TestCreateRequestQuota: an operator past its request-creation quota gets
// a Busy fault naming the limit, nothing is stored, the refusal is logged
// without the value and counted; another operator is not affected, and the
// bucket refills with time.
func TestCreateRequestQuota(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		q := &quotaCounter{n: map[string]int{}}
		env := servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.CreateRate, c.CreateBurst, c.OnQuotaRefused = 1, 3, q.inc
		}})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "battery staple", session.RightPrivacy)
		ana, _ := env.Logon(t, "ana", "correct horse")
		bob, _ := env.Logon(t, "bob", "battery staple")
		create := func(token, value string) string {
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", token, "defaultNamespace1", value, "1", "false", ""))
			return body
		}
		for i := range 3 {
			created(t, create(ana, fmt.Sprintf("ana%d@example.com", i)))
		}
		before := countRequests(t, env)
		status, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall("nms:privacyRequest", ana, "defaultNamespace1", "flood@example.com", "1", "false", ""))
		if status != 200 {
			t.Fatalf("status %d", status)
		}
		mustContain(t, body, "SOP-330011")
		mustContain(t, body, "Too many privacy requests created by this operator: at most 1 per second (bursts of 3)")
		if n := countRequests(t, env); n != before {
			t.Fatalf("a refused create changed the requests: %d -> %d", before, n)
		}
		if got := q.get("requests"); got != 1 {
			t.Fatalf("quota hook: %d refusals, want 1", got)
		}
		scrapedMetric(t, env, `campaign_privacy_quota_refusals_total{quota="requests"} 1`)
		scrapedMetric(t, env, `campaign_privacy_quota_refusals_total{quota="sessions"} 0`)
		logs := env.Logs.String()
		if !strings.Contains(logs, "request quota: CreateRequestByName refused") {
			t.Fatalf("refusal not logged:\n%s", logs)
		}
		if strings.Contains(logs, "flood@example.com") {
			t.Fatal("the refused value was logged")
		}
		// Another operator has its own bucket.
		created(t, create(bob, "bob@example.com"))
		// A second later, one more call is allowed again.
		env.Clock.Advance(time.Second)
		created(t, create(ana, "ana-later@example.com"))
	})
}

// TestSessionQuota: a Logon beyond the open-sessions quota revokes the
// operator's oldest session (its next call gets the XSV-350008 fault), the
// newer ones keep working, another operator's sessions are untouched, and
// the eviction is logged and counted.
func TestSessionQuota(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		q := &quotaCounter{n: map[string]int{}}
		env := servertest.New(t, dialect, servertest.Options{Session: func(c *session.Config) {
			c.MaxSessions, c.OnQuotaRefused = 3, q.inc
		}})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		env.Operator(t, "bob", "battery staple", session.RightPrivacy)
		bob, _ := env.Logon(t, "bob", "battery staple")
		works := func(token string) bool {
			_, body := env.Post(t, "xtk:session#GetUserInfo", userInfoCall(token))
			if strings.Contains(body, "GetUserInfoResponse") {
				return true
			}
			mustContain(t, body, "XSV-350008")
			return false
		}
		var tokens []string
		for range 3 {
			env.Clock.Advance(time.Second)
			tok, _ := env.Logon(t, "ana", "correct horse")
			tokens = append(tokens, tok)
		}
		for i, tok := range tokens {
			if !works(tok) {
				t.Fatalf("session %d refused within the quota", i)
			}
		}
		if q.get("sessions") != 0 {
			t.Fatal("quota hook called within the quota")
		}
		env.Clock.Advance(time.Second)
		tok, _ := env.Logon(t, "ana", "correct horse")
		tokens = append(tokens, tok)
		if works(tokens[0]) {
			t.Fatal("the oldest session still works after the 4th Logon with a quota of 3")
		}
		for i, tok := range tokens[1:] {
			if !works(tok) {
				t.Fatalf("session %d refused", i+1)
			}
		}
		if !works(bob) {
			t.Fatal("another operator's session was revoked")
		}
		if got := q.get("sessions"); got != 1 {
			t.Fatalf("quota hook: %d, want 1", got)
		}
		scrapedMetric(t, env, `campaign_privacy_quota_refusals_total{quota="sessions"} 1`)
		if logs := env.Logs.String(); !strings.Contains(logs, "session quota: oldest sessions revoked") || strings.Contains(logs, tok) {
			t.Fatalf("eviction not logged, or a token logged:\n%s", logs)
		}

		// The session a Logon issues is never the one its quota revokes,
		// whatever the clock says: logons within one tick, then with the
		// clock set back (each new token works at once).
		for i := range 8 {
			if i == 4 {
				env.Clock.Advance(-time.Hour)
			}
			tok, _ := env.Logon(t, "ana", "correct horse")
			if !works(tok) {
				t.Fatalf("Logon %d (clock %v): its own session was revoked by the quota", i, env.Clock.Now())
			}
		}
	})
}
