package privacy_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestLeaseExpiredCollectKeepsCompletedFiles: one collect run,
// two workers (PostgreSQL's default is 4). Worker X claims ten access
// requests under one lease and is slow on the first (here: stopped after
// writing its file). The lease, never renewed during a collect, runs out;
// worker Y — same process, same claimed_by — takes the ten back, writes
// their files and completes them: their files download. Then X goes on
// with the rest of its stale claim: for each request it calls
// BeginExport, which deletes the completed file and starts a new,
// unfinished one, with no check that X still holds the request; X's final
// commit is refused by the fence, but the files are already gone. The
// requests stay `complete` with no file to download.
func TestLeaseExpiredCollectKeepsCompletedFiles(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		xBlocked, xGo := make(chan struct{}), make(chan struct{})
		var blockOnce, advanceOnce sync.Once
		var f *fixture
		f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 2
			c.Lease = time.Minute
			c.Failpoint = func(name string) error {
				if name != "collect-after-export" {
					return nil
				}
				first := false
				blockOnce.Do(func() { first = true })
				if first {
					// X, after the file of the first request of its claim.
					close(xBlocked)
					<-xGo
				}
				return nil
			}
			c.Progress = func(r privacy.Report) {
				// Y has finished its own claim (the one request not
				// found): the lease of X's claim runs out now.
				advanceOnce.Do(func() {
					<-xBlocked
					f.env.Clock.Advance(2 * time.Minute)
				})
			}
		}})
		// Ten access requests with a file (five subjects, two regulations),
		// claimed first, by one worker; then one whose subject does not
		// exist (no file), claimed by the other.
		var ids []int64
		for n := int64(1); n <= 5; n++ {
			for _, reg := range []int64{1, 2} {
				id, err := f.env.Privacy.CreateRequestByName(f.ctx, operator, privacy.CreateRequest{
					NamespaceName: "defaultNamespace1", ReconciliationValue: demodata.Email(n), Type: privacy.TypeAccess,
					Regulation: reg, DownloadURL: "http://x/nms/gdpr.jssp?id=",
				})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
		}
		f.create(t, "defaultNamespace1", "nobody@example.com", privacy.TypeAccess, false)

		done := make(chan error, 1)
		go func() {
			_, err := f.env.Privacy.Run(context.Background(), privacy.Collect)
			done <- err
		}()
		select {
		case <-xBlocked:
		case <-time.After(30 * time.Second):
			t.Fatal("no worker reached the first file")
		}
		// Y takes X's expired claim and completes the ten requests.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			all := true
			for _, id := range ids {
				if f.status(t, id) != privacy.StatusComplete {
					all = false
				}
			}
			if all {
				break
			}
			if time.Now().After(deadline) {
				close(xGo)
				t.Fatal("the ten requests were not taken back and completed after the lease")
			}
		}
		for _, id := range ids {
			if _, r, err := f.env.Privacy.OpenExport(f.ctx, id); err != nil {
				t.Fatalf("request %d complete, file not open before X resumes: %v", id, err)
			} else {
				r.Close()
			}
		}
		// X resumes with its stale claim.
		close(xGo)
		if err := <-done; err != nil {
			t.Logf("run: %v", err)
		}
		var lost []int64
		for _, id := range ids {
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Errorf("request %d: %s", id, s)
			}
			if _, r, err := f.env.Privacy.OpenExport(f.ctx, id); err != nil {
				t.Logf("request %d is complete; its file: %v", id, err)
				lost = append(lost, id)
			} else {
				r.Close()
			}
		}
		if len(lost) > 0 {
			t.Fatalf("%d complete access request(s) lost their file to the worker whose lease had run out: %v", len(lost), lost)
		}
	})
}

// TestSameProcessWorkersAreFenced: the claim's fence is
// claimed_by, and every worker goroutine of a process claims under the
// same name (Config.Worker). In one delete run with two workers, worker X
// is slow on the first request of its claim of ten (stopped after its
// lookup); the lease runs out and worker Y, same process, takes the ten
// back and deletes them (each left deleteInProgress, held for the run's
// residue purge). X then goes on with its stale claim, and its batch
// commit passes the fence — claimed_by is the same name — so every
// request gets a second delete attempt recorded over the first: a second
// "Checked: no record of the subject remains" and "Records deleted" in
// its audit and on the audit chain. With two processes the fence refuses
// X's commit.
func TestSameProcessWorkersAreFenced(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		xBlocked, xGo := make(chan struct{}), make(chan struct{})
		var blockOnce, advanceOnce sync.Once
		var armed atomic.Bool
		var env *servertest.Env
		env = servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 2
			c.Lease = time.Minute
			c.Failpoint = func(name string) error {
				if name != "delete-lookup" || !armed.Load() {
					return nil
				}
				first := false
				blockOnce.Do(func() { first = true })
				if first {
					close(xBlocked)
					<-xGo
				}
				return nil
			}
			c.Progress = func(r privacy.Report) {
				if r.Workflow != privacy.Delete || !armed.Load() {
					return
				}
				advanceOnce.Do(func() {
					<-xBlocked
					env.Clock.Advance(2 * time.Minute)
				})
			}
		}})
		f := &fixture{env: env, ctx: context.Background()}
		g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 7}
		if _, _, err := g.Generate(f.ctx, 11, nil); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for n := int64(1); n <= 11; n++ {
			ids = append(ids, f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false))
		}
		f.run(t, privacy.Collect)
		// The eleventh (the other worker's claim) fails before its lookup
		// and is released for a later retry: that worker holds nothing,
		// and its failure tells the Progress hook it is done.
		if err := storetest.SQLOf(t, env.DB).Exec(f.ctx, "UPDATE privacy_requests SET reconciliation_value = '' WHERE id = ?", ids[10]); err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		done := make(chan error, 1)
		go func() {
			_, err := env.Privacy.Run(context.Background(), privacy.Delete)
			done <- err
		}()
		select {
		case <-xBlocked:
		case <-time.After(30 * time.Second):
			t.Fatal("no worker reached a lookup")
		}
		audit := func(id int64) string {
			r, err := env.DB.FindRequestByID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			return r.Audit
		}
		// Y takes X's expired claim back and deletes the ten.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			all := true
			for _, id := range ids[:10] {
				if !strings.Contains(audit(id), "Records deleted;") {
					all = false
				}
			}
			if all {
				break
			}
			if time.Now().After(deadline) {
				close(xGo)
				t.Fatal("the ten requests were not taken back and deleted after the lease")
			}
		}
		close(xGo)
		if err := <-done; err != nil {
			t.Logf("run: %v", err)
		}
		var twice []int64
		for _, id := range ids[:10] {
			a := audit(id)
			if n := strings.Count(a, "Checked: no record of the subject remains"); n != 1 {
				twice = append(twice, id)
				if len(twice) == 1 {
					t.Logf("request %d (%s), audit:\n%s", id, f.status(t, id), a)
				}
			}
		}
		if len(twice) > 0 {
			t.Fatalf("%d request(s) deleted and checked twice, by two workers of one process that both passed the claimed_by fence: %v", len(twice), twice)
		}
	})
}

// TestRunLongerThanLeaseKeepsItsDeletes: a delete waits, held, for the
// residue purge at its run's end, its claim's lease begun at its delete.
// A run that lasts longer than the lease (here: one worker, eleven
// requests, the clock moved past the lease after the first claim's ten)
// must not claim its own deleted requests back as a crashed worker's and
// delete and check each again.
func TestRunLongerThanLeaseKeepsItsDeletes(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var advanceOnce sync.Once
		var env *servertest.Env
		env = servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 1
			c.Lease = time.Minute
			c.Progress = func(r privacy.Report) {
				if r.Workflow == privacy.Delete && r.Processed == 10 {
					advanceOnce.Do(func() { env.Clock.Advance(2 * time.Minute) })
				}
			}
		}})
		f := &fixture{env: env, ctx: context.Background()}
		g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 7}
		if _, _, err := g.Generate(f.ctx, 11, nil); err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for n := int64(1); n <= 11; n++ {
			ids = append(ids, f.create(t, "defaultNamespace1", demodata.Email(n), privacy.TypeDelete, false))
		}
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		for _, id := range ids {
			a, err := env.DB.FindRequestByID(f.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(a.Audit, "Checked: no record of the subject remains"); n != 1 {
				t.Errorf("request %d (%s): its delete checked %d time(s) in one run, audit:\n%s", id, f.status(t, id), n, a.Audit)
			}
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Errorf("request %d: %s", id, s)
			}
		}
	})
}
