package server_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestBurstOfGuessesOverSOAP: the lock-out bans an account after 3
// failed logons (SECURITY-CATALOGUE #39, "≤ 3 failures per ban"). A burst
// of guesses sent at once over SOAP is judged on the operator row each
// read before waiting for a hash slot: 12 wrong guesses lock the account
// (several times over), and the right password sent just after them —
// hashed after every one of them — still gets a session.
func TestBurstOfGuessesOverSOAP(t *testing.T) {
	env := servertest.New(t, store.SQLite, servertest.Options{Session: func(c *session.Config) { c.HashSlots = 1 }})
	env.Operator(t, "ana", "correct horse", session.RightPrivacy)
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "wrong guess")))
			if !strings.Contains(body, badLogon) {
				t.Errorf("a wrong guess: %s", body)
			}
		}()
	}
	time.Sleep(30 * time.Millisecond)
	_, right := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("ana", "correct horse")))
	wg.Wait()
	logs := env.Logs.String()
	firstLock := strings.Index(logs, "operator locked after repeated logon failures")
	session := strings.Index(logs, "msg=logon ")
	if firstLock < 0 {
		t.Skip("the burst did not lock the account")
	}
	if strings.Contains(right, "<LogonResponse") && session > firstLock {
		t.Fatalf("the right password logged on after the account was locked (%d lock-outs logged in all): a burst of guesses is not bound by the 3-failure lock-out",
			strings.Count(logs, "operator locked after repeated logon failures"))
	}
}
