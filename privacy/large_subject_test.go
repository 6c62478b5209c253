package privacy_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestSubjectOf100000RowsResumed (security-bar #89): a subject with
// 100,000 delivery-log rows, deleted in batches of 10,000, whose worker
// dies right after its third batch. The batches it committed stay
// committed (30,000 rows gone, the rest there), the next run resumes from
// what was recorded and completes, the subject's rows are all gone by
// plain counts and nobody else's row is touched. The time between two
// batch commits of a run (at most what a batch holds its locks) is logged,
// and measured by BenchmarkSubjectOf100000RowsLocks.
func TestSubjectOf100000RowsResumed(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) { subjectOf100000Rows(t, dialect) })
}

// BenchmarkSubjectOf100000RowsLocks measures the bound the test logs: the
// longest time between two batch commits of a run, which bounds how long
// a batch holds its locks (the bar: no lock on a hot table held > 5 s). By
// hand: CP_BENCH_SLOW=1 go test -run '^$' -bench SubjectOf100000 -benchtime 2x ./privacy
// (bench/README "A subject of 100,000 rows").
func BenchmarkSubjectOf100000RowsLocks(b *testing.B) {
	storetest.WorstOnEachStore(b, "longest-batch-s", func(b *testing.B, dialect string) time.Duration { return subjectOf100000Rows(b, dialect) })
}

// subjectOf100000Rows runs the case and returns the longest time between
// two batch commits of one run.
func subjectOf100000Rows(t testing.TB, dialect string) time.Duration {
	const n, batch = 100_000, 10_000
	crashCtx, crash := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex
		commits []time.Time
	)
	f := newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
		c.DeleteBatch = batch
		c.Failpoint = func(name string) error {
			if name != "delete-after-batch" {
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			commits = append(commits, time.Now())
			if len(commits) == 3 && crashCtx.Err() == nil {
				crash()
			}
			return nil
		}
	}})
	conn := storetest.SQLOf(t, f.env.DB)
	now := f.env.Clock.Now()
	if err := f.env.DB.InsertRows(f.ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(100), "big@example.com"}}); err != nil {
		t.Fatal(err)
	}
	logs := make([][]any, 0, n)
	for i := int64(1); i <= n; i++ {
		logs = append(logs, []any{1000 + i, int64(100), "big@example.com", now})
	}
	if err := f.env.DB.InsertRows(f.ctx, "nms_broad_log_rcp", []string{"id", "recipient_id", "address", "event_date"}, logs); err != nil {
		t.Fatal(err)
	}
	logsWhere := func(where string) int64 { // plain SQL, not the service's counts
		t.Helper()
		c, err := conn.Int(f.ctx, "SELECT count(*) FROM nms_broad_log_rcp WHERE "+where)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	subject := func() int64 { return logsWhere("recipient_id = 100") }
	others := func() int64 { return logsWhere("recipient_id <> 100") }
	neighbours := others()
	id := f.create(t, "defaultNamespace1", "big@example.com", privacy.TypeDelete, false)
	f.run(t, privacy.Collect)
	if _, err := f.env.Privacy.Run(crashCtx, privacy.Delete); err == nil {
		t.Fatal("the run its worker died in reported success")
	}
	if s := f.status(t, id); s != privacy.StatusDeleteInProgress {
		t.Fatalf("after the crash: %s", s)
	}
	if left := subject(); left != n-3*batch {
		t.Fatalf("after three committed batches of %d: %d of the subject's %d rows left, want %d", batch, left, n, n-3*batch)
	}
	if rep := f.run(t, privacy.Delete); rep.Processed != 1 {
		t.Fatalf("resume: %v", rep)
	}
	if s := f.status(t, id); s != privacy.StatusComplete {
		t.Fatalf("after the resume: %s", s)
	}
	if left, rcp := subject(), f.rows(t, "email", "big@example.com"); left != 0 || rcp != 0 {
		t.Fatalf("after the resume: %d of the subject's delivery logs and %d recipient rows left", left, rcp)
	}
	if o := others(); o != neighbours {
		t.Fatalf("the other recipients' delivery logs went from %d to %d", neighbours, o)
	}
	mu.Lock()
	defer mu.Unlock()
	longest := time.Duration(0)
	for i := 1; i < len(commits); i++ {
		if i != 3 { // not from the crashed run's last to the resumed run's first
			longest = max(longest, commits[i].Sub(commits[i-1]))
		}
	}
	t.Logf("%d batch commits; the longest between two of one run: %s", len(commits), longest)
	return longest
}
