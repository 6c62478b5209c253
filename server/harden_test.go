package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// clientFrom is an HTTP client whose connections come from a loopback
// address of its own (127.0.0.0/8 is all local on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}}
}

func soapLogon(c *http.Client, url, login, password string) (string, error) {
	_, body, err := servertest.Send(c, url, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall(login, password)))
	return body, err
}

// TestDistributedLogonDenial: 160 failing logons at a time from 40
// addresses (each under the per-address limit) must not make a clean
// client's correct logons fail as busy: failing addresses hash in a
// smaller pool of their own.
func TestDistributedLogonDenial(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{Session: func(c *session.Config) {
				c.HashSlots, c.HashWait, c.AddressFailures = 2, 2*time.Second, 100_000
			}})
			env.Operator(t, "admin", "admin password", session.RightAdmin)
			env.Operator(t, "ana", "ana password", session.RightPrivacy)
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var attempts, failedOnce atomic.Int64
			for a := range 40 {
				var first sync.Once
				c := clientFrom(fmt.Sprintf("127.0.0.%d", 10+a))
				for g := range 4 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := 0; ctx.Err() == nil; i++ {
							// Unknown logins and wrong passwords (not admin's: its
							// lock-out is another defence).
							login := fmt.Sprintf("nobody%d-%d-%d", a, g, i)
							if i%2 == 1 {
								login = "ana"
							}
							if body, err := soapLogon(c, env.URL, login, "wrong"); err == nil {
								attempts.Add(1)
								if strings.Contains(body, "Invalid login or password") {
									first.Do(func() { failedOnce.Add(1) })
								}
							}
						}
					}()
				}
			}
			defer func() { stop(); wg.Wait() }()
			// Every attacking address has failed at least once.
			for deadline := time.Now().Add(20 * time.Second); failedOnce.Load() < 40 && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
			}
			// Each address's first wave had no failure behind it, so it queued
			// with the clean clients; it is done within HashWait.
			time.Sleep(2 * time.Second)
			admin := clientFrom("127.0.0.200")
			ok, busy := 0, 0
			const tries = 20
			for range tries {
				body, err := soapLogon(admin, env.URL, "admin", "admin password")
				switch {
				case err == nil && strings.Contains(body, "<LogonResponse"):
					ok++
				case strings.Contains(body, "busy"):
					busy++
					t.Logf("busy after %d: %s", ok, body)
				default:
					t.Logf("failed after %d: %v %s", ok, err, body)
				}
			}
			stop()
			wg.Wait()
			t.Logf("%s: admin %d/%d logons, %d busy, during %d failed attempts", dialect, ok, tries, busy, attempts.Load())
			if ok < tries-1 { // one may meet a noisy machine; before the fix most failed
				t.Fatalf("admin's correct logons: %d of %d got through (%d busy)", ok, tries, busy)
			}
		})
	}
}
