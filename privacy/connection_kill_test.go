package privacy_test

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestConnectionKilledOnEveryAttempt (security-bar #91): PostgreSQL ends
// the worker's connection (pg_terminate_backend, as a DBA or a failover
// does) inside the transaction that writes a delete's outcome, its
// receipt included. A delete run absorbs one such kill (the claim's batch
// fails whole and its requests run again alone); killed again, the
// attempt fails and is recorded with its back-off. Killed on every
// attempt, the request ends in Error after MaxAttempts with each failure
// in its audit, never dropped or stuck. When even the failure's record
// is killed, the run stops with the request held: the lease gives it back
// and the next run finishes it. Whatever the attempts deleted (a request
// that runs alone deletes in transactions of its own, resumable), its
// receipt counts exactly what plain SQL finds gone, table by table, none
// of a rolled-back attempt's counts; a completed request leaves no row of
// its subject; the audit and the log never hold the e-mail.
func TestConnectionKilledOnEveryAttempt(t *testing.T) {
	for _, c := range []struct {
		name  string
		kills []int // backends to terminate in each delete run, in order
		want  privacy.Status
	}{
		{"once a run", []int{1}, privacy.StatusComplete},
		{"every attempt", []int{2, 2, 2}, privacy.StatusError},
		{"the first two attempts", []int{2, 2, 0}, privacy.StatusComplete},
		{"the failure's record too", []int{3, 0}, privacy.StatusComplete},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := storetest.Config(t, store.Postgres)
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			app := "cp_kill_" + hex.EncodeToString(b)
			base := cfg.DatabaseURL
			cfg.DatabaseURL = withApplicationName(t, base, app)
			clock := storetest.NewClock()
			db := storetest.OpenConfig(t, cfg, clock.Now)
			admin, err := sql.Open("pgx", base)
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			var (
				mu     sync.Mutex
				left   int   // kills left in this run
				killed []int // backends each kill ended
				errs   []error
			)
			f := newFixture(t, store.Postgres, servertest.Options{DB: db, Clock: clock, Privacy: func(p *privacy.Config) {
				withReceipts(p)
				p.MaxAttempts = 3
				p.Failpoint = func(name string) error {
					mu.Lock()
					defer mu.Unlock()
					if name != "batch-item" || left == 0 {
						return nil
					}
					left--
					n, err := terminateInTransaction(admin, app)
					killed = append(killed, n)
					if err != nil {
						errs = append(errs, err)
					}
					return nil // the worker finds out at its next statement
				}
			}})
			conn := storetest.SQLOf(t, db)
			rcp := recipientID(t, f, 3)
			id := f.create(t, "defaultNamespace1", demodata.Email(3), privacy.TypeDelete, false)
			if rep := f.run(t, privacy.Collect); rep.Processed != 1 {
				t.Fatalf("collect: %v", rep)
			}
			before := tableCounts(t, f)
			failed := 0 // attempts recorded as failed
			for run, kills := range c.kills {
				mu.Lock()
				left = kills
				mu.Unlock()
				_, err := f.env.Privacy.Run(f.ctx, privacy.Delete)
				s := f.status(t, id)
				mu.Lock()
				if left != 0 {
					t.Fatalf("run %d: %d of its %d kills not done (status %s)", run+1, left, kills, s)
				}
				mu.Unlock()
				switch {
				case run == len(c.kills)-1:
				case kills == 3:
					// The failure's record was killed: the run stops, the
					// request held until its lease ends.
					if err == nil || s != privacy.StatusDeleteInProgress {
						t.Fatalf("run %d, its failure's record killed: %v, %s", run+1, err, s)
					}
				case kills == 2:
					// The attempt failed, recorded: back to waiting, after
					// its back-off, the attempt counted.
					failed++
					r, rerr := f.env.DB.FindRequestByID(f.ctx, id)
					if err != nil || rerr != nil || s != privacy.StatusDeletePending || r.RetryCount != failed {
						t.Fatalf("run %d, its attempt killed: %v, %s, retryCount %d (want %d) %v", run+1, err, s, r.RetryCount, failed, rerr)
					}
					if rep := f.run(t, privacy.Delete); rep.Processed+rep.Failed != 0 {
						t.Fatalf("run %d: retried before its back-off: %v", run+1, rep)
					}
				case err != nil || s != privacy.StatusComplete:
					t.Fatalf("run %d, one kill: %v, %s", run+1, err, s)
				}
				clock.Advance(time.Hour) // past the back-off and the lease
			}
			mu.Lock()
			if len(errs) > 0 {
				t.Fatalf("terminating the worker's backend: %v", errs)
			}
			for i, n := range killed {
				// The worker's, and sometimes another of the service's
				// open at that moment: a connection lost anyway.
				if n < 1 {
					t.Fatalf("kill %d ended no transaction of the service (%v)", i+1, killed)
				}
			}
			mu.Unlock()
			if s := f.status(t, id); s != c.want {
				t.Fatalf("after the runs: %s, want %s", s, c.want)
			}
			r, err := f.env.DB.FindRequestByID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if c.want == privacy.StatusError {
				if r.RetryCount != 3 {
					t.Fatalf("retryCount %d, want 3", r.RetryCount)
				}
				for n := 1; n <= 2; n++ {
					if !strings.Contains(r.Audit, fmt.Sprintf("Attempt %d failed", n)) {
						t.Fatalf("the audit does not record attempt %d's failure:\n%s", n, r.Audit)
					}
				}
				// What an alert watches (README, Metrics).
				resp, err := http.Get(f.env.URL + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !strings.Contains(string(body), `campaign_privacy_requests{status="error"} 1`+"\n") {
					t.Fatalf("/metrics does not count the request in error:\n%s", body)
				}
			}
			for _, text := range []string{r.Audit, f.env.Logs.String()} {
				if strings.Contains(text, demodata.Email(3)) {
					t.Fatalf("the subject's e-mail is written in the audit or the log:\n%s", text)
				}
			}
			after := tableCounts(t, f)
			if c.want == privacy.StatusComplete {
				for _, q := range []string{"SELECT count(*) FROM nms_recipient WHERE id = ?", "SELECT count(*) FROM nms_broad_log_rcp WHERE recipient_id = ?"} {
					if n, err := conn.Int(f.ctx, q, rcp); err != nil || n != 0 {
						t.Fatalf("%s: %d left (%v)", q, n, err)
					}
				}
			}
			deleted := map[string]int64{}
			_, err = f.env.Privacy.Receipt(f.ctx, id)
			switch {
			case apperr.CodeOf(err) == apperr.NotFound && c.want == privacy.StatusError:
				// No receipt: then nothing may be gone.
			case err != nil:
				t.Fatalf("receipt: %v", err)
			default:
				_, claims := f.receiptOf(t, id)
				for _, tb := range claims.Tables {
					s, ok := f.env.Registry.Schema(tb.Table)
					if !ok || s.Data == nil {
						t.Fatalf("the receipt names %s, not a table's schema", tb.Table)
					}
					deleted[s.Data.Table] += tb.Deleted
				}
			}
			gone := int64(0)
			for table := range before {
				if got := before[table] - after[table]; got != deleted[table] {
					t.Errorf("%s: plain SQL finds %d row(s) gone, the receipt counts %d deleted", table, got, deleted[table])
				}
				gone += before[table] - after[table]
			}
			if c.want == privacy.StatusComplete && gone == 0 {
				t.Fatal("the completed delete removed nothing")
			}
		})
	}
}

// terminateInTransaction ends the backends of application app that are
// inside a transaction, waits until they are gone, and returns how many
// it ended.
func terminateInTransaction(admin *sql.DB, app string) (int, error) {
	rows, err := admin.Query(`SELECT pid FROM (SELECT pid FROM pg_stat_activity
		WHERE application_name = $1 AND state LIKE 'idle in transaction%' OFFSET 0) s WHERE pg_terminate_backend(pid)`, app)
	if err != nil {
		return 0, err
	}
	var pids []int64
	for rows.Next() {
		var pid int64
		if err := rows.Scan(&pid); err != nil {
			rows.Close()
			return 0, err
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var left int
		if err := admin.QueryRow("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)", pids).Scan(&left); err != nil {
			return 0, err
		}
		if left == 0 {
			return len(pids), nil
		}
		if time.Now().After(deadline) {
			return 0, errors.New("the terminated backends are still there after 10 s")
		}
	}
}

// tableCounts counts, with plain SQL, every table of the data model (the
// registry's schemas with a table of their own, not the service's).
func tableCounts(t *testing.T, f *fixture) map[string]int64 {
	t.Helper()
	counts := map[string]int64{}
	for _, s := range f.env.Registry.Schemas() {
		if s.Data != nil && s.Data.Table != "" && !s.Data.View {
			counts[s.Data.Table] = f.count(t, s.Data.Table)
		}
	}
	return counts
}

// withApplicationName returns the PostgreSQL URL u with its sessions'
// application_name set to app, so that a test finds them in
// pg_stat_activity.
func withApplicationName(t *testing.T, u, app string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return u + " application_name=" + app
	}
	q := p.Query()
	q.Set("application_name", app)
	p.RawQuery = q.Encode()
	return p.String()
}
